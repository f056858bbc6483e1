/*
 * http_client.h
 *		Concurrent HTTP POSTs with libcurl multi; the caller waits on HttpClientFd()
 *		in its PostgreSQL wait loop, for at most HttpClientTimeoutMs(), then calls
 *		HttpClientDrive() and takes finished requests with HttpClientNextDone().
 *		libcurl runs on the calling thread or on a thread of its own, as
 *		integration.http_thread says (http_client.c).
 */
#ifndef INTEGRATION_HTTP_CLIENT_H
#define INTEGRATION_HTTP_CLIENT_H

#include <curl/curl.h>

#include "datatype/timestamp.h"
#include "lib/ilist.h"

#include "network_policy.h"

typedef struct HttpClient HttpClient;

/* How a request ended, beyond its HTTP status. */
typedef enum HttpErrorClass
{
	HTTP_OK = 0,				/* a response was received (any status) */
	HTTP_ERR_TIMEOUT,
	HTTP_ERR_CONNECT,
	HTTP_ERR_DNS,
	HTTP_ERR_TLS,
	HTTP_ERR_INVALID_REQUEST,	/* URL or option libcurl rejects */
	HTTP_ERR_NETWORK,			/* reset, empty reply, other transport error */
	HTTP_ERR_PROTOCOL,			/* the answer is not HTTP libcurl can read */
	HTTP_ERR_BLOCKED_ADDRESS,	/* the address is blocked: no connection made */
	HTTP_ERR_BLOCKED_SCHEME		/* http:// under integration.https_only */
} HttpErrorClass;

typedef struct HttpRequest
{
	/* Set by the caller before HttpClientStart(); owned by the caller. */
	void	   *owner;
	const char *method;			/* NULL or "POST": POST; else GET, PUT, PATCH
								 * or DELETE (with body, if any) */
	bool		keep_headers;	/* collect the response headers */
	const char *url;
	const char *body;
	size_t		body_len;
	struct curl_slist *headers; /* freed by HttpRequestRelease() */
	long		connect_timeout_ms;
	long		timeout_ms;
	size_t		max_response_bytes;

	/* Results, valid once the request is returned by HttpClientNextDone(). */
	TimestampTz started_at;
	int64		duration_us;
	long		status_code;	/* 0 when no response arrived */
	HttpErrorClass error_class;
	char		error[CURL_ERROR_SIZE];
	char	   *response;		/* NUL-terminated, at most max_response_bytes */
	size_t		response_len;
	size_t		response_cap;	/* malloc'd size of response; 0: not malloc'd */
	bool		response_truncated;
	char		retry_after[64];	/* the Retry-After header, or "" */
	char	   *response_headers;	/* keep_headers: "name: value\n" lines,
									 * malloc'd, or NULL */

	/* Internal. */
	CURL	   *easy;
	dlist_node	node;
	NetworkPolicy *policy;		/* what it may connect to; read-only on the
								 * HTTP thread */
	bool		via_proxy;
	int			sockets_opened; /* connections libcurl was let open */
	char		blocked[CURL_ERROR_SIZE];	/* why refused, or "" */
} HttpRequest;

extern HttpClient *HttpClientCreate(int max_connections, const char *proxy);
extern HttpClient *HttpClientCreateInline(int max_connections, const char *proxy);
extern void HttpClientConfigure(HttpClient *client, int max_connections, const char *proxy);
extern void HttpClientDestroy(HttpClient *client);
extern void HttpClientStart(HttpClient *client, HttpRequest *req);
extern void HttpClientHoldStarts(HttpClient *client, bool hold);
extern int	HttpClientFd(HttpClient *client);
extern long HttpClientTimeoutMs(HttpClient *client);
extern void HttpClientDrive(HttpClient *client);
extern HttpRequest *HttpClientNextDone(HttpClient *client);
extern int	HttpClientInFlight(HttpClient *client);
extern void HttpRequestRelease(HttpRequest *req);
extern char *HttpHeaderLine(const char *name, int namelen, const char *value, int valuelen);
extern const char *HttpErrorClassName(HttpErrorClass c);
extern bool HttpErrorNotSent(HttpErrorClass c);

#endif
