/*
 * http_client.c
 *		Concurrent HTTP POSTs with libcurl multi, driven from a PostgreSQL wait loop.
 *
 * The worker must see SIGTERM, reloads, postmaster death and new commits while requests
 * are in flight, so it never blocks inside libcurl.  libcurl tells us through its socket
 * callback which sockets it wants watched; we keep them in a private epoll set whose
 * descriptor the worker adds to its WaitEventSet next to its latch.  When the epoll
 * descriptor becomes readable, http_client_drive() collects the ready sockets and hands
 * each to curl_multi_socket_action(); libcurl's timer callback gives the deadline the
 * wait loop must not sleep past.  (The same design as core's libpq-oauth curl code.)
 *
 * libcurl callbacks never palloc or ereport: a longjmp through libcurl would corrupt
 * it.  The response buffer is allocated before the transfer starts, and the body is
 * capped: past max_response_bytes the transfer is ended, keeping the status code.
 *
 * Easy handles are pooled; connections live in the multi handle's cache, so requests
 * to the same host reuse keep-alive connections.
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <unistd.h>

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http_client.h"
#include "integration.h"

#define HTTP_POOL_MAX 256
#define HTTP_EPOLL_BATCH 64

struct HttpClient
{
	CURLM	   *multi;
	int			epfd;
	TimestampTz timer_deadline; /* 0 when libcurl has no timer */
	int			in_flight;
	dlist_head	done;
	char	   *proxy;
	int			npool;
	CURL	   *pool[HTTP_POOL_MAX];
};

static int
socket_callback(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	HttpClient *client = (HttpClient *) userp;
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		/* The socket may already be closed, and then it left the set by itself. */
		(void) epoll_ctl(client->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(client->epfd, EPOLL_CTL_MOD, s, &ev) < 0)
	{
		if (errno != ENOENT || epoll_ctl(client->epfd, EPOLL_CTL_ADD, s, &ev) < 0)
			return -1;
	}
	return 0;
}

static int
timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	HttpClient *client = (HttpClient *) userp;

	if (timeout_ms < 0)
		client->timer_deadline = 0;
	else
		client->timer_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/* Keeps the first max_response_bytes of the body; past that, ends the transfer. */
static size_t
write_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpRequest *req = (HttpRequest *) userp;
	size_t		n = size * nmemb;
	size_t		room = req->max_response_bytes - req->response_len;

	if (n > room)
	{
		memcpy(req->response + req->response_len, data, room);
		req->response_len += room;
		req->response[req->response_len] = '\0';
		req->response_truncated = true;
		return 0;				/* CURLE_WRITE_ERROR: stop reading */
	}
	memcpy(req->response + req->response_len, data, n);
	req->response_len += n;
	req->response[req->response_len] = '\0';
	return n;
}

HttpClient *
http_client_create(int max_connections, const char *proxy)
{
	HttpClient *client = palloc0(sizeof(HttpClient));

	client->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (client->epfd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create epoll descriptor: %m")));
	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("curl_multi_init failed")));
	dlist_init(&client->done);
	client->proxy = pstrdup(proxy ? proxy : "");	/* same context as client */

	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_connections);
	curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, (long) max_connections);
	return client;
}

/* Applies reloaded settings: later requests use them; requests in flight keep theirs. */
void
http_client_configure(HttpClient *client, int max_connections, const char *proxy)
{
	curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_connections);
	curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, (long) max_connections);
	if (strcmp(client->proxy, proxy ? proxy : "") != 0)
	{
		pfree(client->proxy);
		client->proxy = MemoryContextStrdup(GetMemoryChunkContext(client), proxy ? proxy : "");
	}
}

void
http_client_destroy(HttpClient *client)
{
	for (int i = 0; i < client->npool; i++)
		curl_easy_cleanup(client->pool[i]);
	curl_multi_cleanup(client->multi);
	close(client->epfd);
	pfree(client->proxy);
	pfree(client);
}

int
http_client_fd(HttpClient *client)
{
	return client->epfd;
}

int
http_client_in_flight(HttpClient *client)
{
	return client->in_flight;
}

/* Milliseconds until libcurl needs a call without socket activity; -1 for never. */
long
http_client_timeout_ms(HttpClient *client)
{
	TimestampTz now;

	if (client->timer_deadline == 0)
		return -1;
	now = GetCurrentTimestamp();
	if (now >= client->timer_deadline)
		return 0;
	return (long) ((client->timer_deadline - now + 999) / 1000);
}

static HttpErrorClass
classify(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_OK:
			return HTTP_OK;
		case CURLE_OPERATION_TIMEDOUT:
			return HTTP_ERR_TIMEOUT;
		case CURLE_COULDNT_CONNECT:
			return HTTP_ERR_CONNECT;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
			return HTTP_ERR_DNS;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
			return HTTP_ERR_TLS;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_BAD_FUNCTION_ARGUMENT:
			return HTTP_ERR_INVALID_REQUEST;
		default:
			return HTTP_ERR_NETWORK;
	}
}

const char *
http_error_class_name(HttpErrorClass c)
{
	switch (c)
	{
		case HTTP_OK:
			return NULL;
		case HTTP_ERR_TIMEOUT:
			return "timeout";
		case HTTP_ERR_CONNECT:
			return "connect";
		case HTTP_ERR_DNS:
			return "dns";
		case HTTP_ERR_TLS:
			return "tls";
		case HTTP_ERR_INVALID_REQUEST:
			return "invalid_request";
		case HTTP_ERR_NETWORK:
			return "network";
	}
	return "network";
}

/* Marks req as failed before it ever reached libcurl's event loop. */
static bool
fail_at_start(HttpClient *client, HttpRequest *req, CURLcode rc)
{
	req->error_class = HTTP_ERR_INVALID_REQUEST;
	if (req->error[0] == '\0')
		strlcpy(req->error, curl_easy_strerror(rc), sizeof(req->error));
	if (req->easy)
	{
		curl_easy_reset(req->easy);
		if (client->npool < HTTP_POOL_MAX)
			client->pool[client->npool++] = req->easy;
		else
			curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
	return false;
}

#define SETOPT(opt, val) \
	do { \
		CURLcode	rc_ = curl_easy_setopt(easy, (opt), (val)); \
		if (rc_ != CURLE_OK) \
			return fail_at_start(client, req, rc_); \
	} while (0)

/*
 * Starts POSTing req->body to req->url.  Returns false, with req->error set, when
 * libcurl refuses the request outright; the request is then already complete.
 */
bool
http_client_start(HttpClient *client, HttpRequest *req)
{
	CURL	   *easy;
	CURLMcode	mrc;

	req->status_code = 0;
	req->error_class = HTTP_OK;
	req->error[0] = '\0';
	req->response = palloc(req->max_response_bytes + 1);
	req->response[0] = '\0';
	req->response_len = 0;
	req->response_truncated = false;
	req->retry_after[0] = '\0';
	req->started_at = GetCurrentTimestamp();

	easy = client->npool > 0 ? client->pool[--client->npool] : curl_easy_init();
	if (easy == NULL)
	{
		strlcpy(req->error, "curl_easy_init failed", sizeof(req->error));
		return fail_at_start(client, req, CURLE_OUT_OF_MEMORY);
	}
	req->easy = easy;

	SETOPT(CURLOPT_ERRORBUFFER, req->error);
	SETOPT(CURLOPT_PRIVATE, req);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_PROXY, client->proxy);	/* "" ignores *_proxy variables */
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	SETOPT(CURLOPT_POSTFIELDS, req->body);
	SETOPT(CURLOPT_HTTPHEADER, req->headers);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SETOPT(CURLOPT_WRITEFUNCTION, write_callback);
	SETOPT(CURLOPT_WRITEDATA, req);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);

	mrc = curl_multi_add_handle(client->multi, easy);
	if (mrc != CURLM_OK)
	{
		strlcpy(req->error, curl_multi_strerror(mrc), sizeof(req->error));
		return fail_at_start(client, req, CURLE_FAILED_INIT);
	}
	client->in_flight++;
	return true;
}

/* Moves finished transfers to the done list. */
static void
collect_done(HttpClient *client)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(client->multi, &left)) != NULL)
	{
		HttpRequest *req = NULL;
		CURL	   *easy = msg->easy_handle;
		struct curl_header *h;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &req);
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status_code);
		req->duration_us = GetCurrentTimestamp() - req->started_at;

		/* A body cut at the cap is not a failure: the status decides. */
		if (msg->data.result == CURLE_WRITE_ERROR && req->response_truncated)
			req->error_class = HTTP_OK;
		else
			req->error_class = classify(msg->data.result);
		if (req->error_class != HTTP_OK)
		{
			if (req->error[0] == '\0')
				strlcpy(req->error, curl_easy_strerror(msg->data.result), sizeof(req->error));
			req->status_code = 0;
		}
		else
			req->error[0] = '\0';
		if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
			strlcpy(req->retry_after, h->value, sizeof(req->retry_after));

		curl_multi_remove_handle(client->multi, easy);
		curl_easy_reset(easy);
		if (client->npool < HTTP_POOL_MAX)
			client->pool[client->npool++] = easy;
		else
			curl_easy_cleanup(easy);
		req->easy = NULL;
		client->in_flight--;
		dlist_push_tail(&client->done, &req->node);
	}
}

/* Lets libcurl act on ready sockets and expired timers; never blocks. */
void
http_client_drive(HttpClient *client)
{
	struct epoll_event evs[HTTP_EPOLL_BATCH];
	int			running;
	int			n;

	do
	{
		n = epoll_wait(client->epfd, evs, HTTP_EPOLL_BATCH, 0);
		for (int i = 0; i < n; i++)
		{
			int			flags = 0;

			if (evs[i].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(client->multi, evs[i].data.fd, flags, &running);
		}
	} while (n == HTTP_EPOLL_BATCH);

	if (client->timer_deadline != 0 && GetCurrentTimestamp() >= client->timer_deadline)
	{
		client->timer_deadline = 0;
		curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	collect_done(client);
}

HttpRequest *
http_client_next_done(HttpClient *client)
{
	if (dlist_is_empty(&client->done))
		return NULL;
	return dlist_container(HttpRequest, node, dlist_pop_head_node(&client->done));
}

/* Frees what a finished request holds outside palloc. */
void
http_request_release(HttpRequest *req)
{
	if (req->headers)
		curl_slist_free_all(req->headers);
	req->headers = NULL;
}
