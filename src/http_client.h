/*
 * http_client.h
 *		Concurrent HTTP POSTs with libcurl multi; the caller waits on http_client_fd()
 *		in its PostgreSQL wait loop, for at most http_client_timeout_ms(), then calls
 *		http_client_drive() and takes finished requests with http_client_next_done().
 *		libcurl runs on the calling thread or on a thread of its own, as
 *		integration.http_thread says (http_client.c).
 */
#ifndef INTEGRATION_HTTP_CLIENT_H
#define INTEGRATION_HTTP_CLIENT_H

#include <curl/curl.h>

#include "datatype/timestamp.h"
#include "lib/ilist.h"

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
	HTTP_ERR_NETWORK			/* reset, empty reply, other transport error */
} HttpErrorClass;

typedef struct HttpRequest
{
	/* Set by the caller before http_client_start(); owned by the caller. */
	void	   *owner;
	const char *url;
	const char *body;
	size_t		body_len;
	struct curl_slist *headers; /* freed by http_request_release() */
	long		connect_timeout_ms;
	long		timeout_ms;
	size_t		max_response_bytes;

	/* Results, valid once the request is returned by http_client_next_done(). */
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

	/* Internal. */
	CURL	   *easy;
	dlist_node	node;
} HttpRequest;

extern HttpClient *http_client_create(int max_connections, const char *proxy);
extern void http_client_configure(HttpClient *client, int max_connections, const char *proxy);
extern void http_client_destroy(HttpClient *client);
extern void http_client_start(HttpClient *client, HttpRequest *req);
extern int	http_client_fd(HttpClient *client);
extern long http_client_timeout_ms(HttpClient *client);
extern void http_client_drive(HttpClient *client);
extern HttpRequest *http_client_next_done(HttpClient *client);
extern int	http_client_in_flight(HttpClient *client);
extern void http_request_release(HttpRequest *req);
extern const char *http_error_class_name(HttpErrorClass c);

#endif
