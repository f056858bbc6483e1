/*
 * http_curl.c
 *		The libcurl side of the HTTP client, the same in both of its modes: the multi
 *		handle and its socket and timer callbacks, the easy handle pool, the response
 *		buffer, and how a finished transfer becomes an HttpRequest's outcome.
 *
 * Whoever drives an HttpCurl (the HTTP thread, or the worker's main thread in
 * single-threaded mode) waits on its epoll set with HttpCurlTimerMs() as the timeout,
 * passes each ready socket to HttpCurlSocketReady(), then calls HttpCurlRunTimer() and
 * HttpCurlCollect().  Nothing here calls PostgreSQL (see http_curl.h), except
 * HttpCurlInit().
 *
 * libcurl callbacks never palloc: the response buffer grows with malloc as the body
 * arrives and is freed by HttpRequestRelease(), and the body is capped: past
 * max_response_bytes the transfer is ended, keeping the status code.  Easy handles
 * are pooled with the options all requests share; connections live in the multi
 * handle's cache, so requests to the same host reuse keep-alive connections.
 *
 * Every address libcurl connects to, after DNS, goes through the request's network
 * policy first (opensocket_callback()), and so does every connection before a request
 * is sent on it (prereq_callback()): see network_policy.c.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "utils/timestamp.h"

#include "http_curl.h"

/* Microseconds since the PostgreSQL epoch, like GetCurrentTimestamp(), for any thread. */
int64
HttpNowUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64) ts.tv_sec - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + ts.tv_nsec / 1000;
}

/* libcurl's CURLMOPT_SOCKETFUNCTION: mirrors what it waits for in the epoll set. */
static int
socket_callback(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	HttpCurl   *hc = (HttpCurl *) userp;
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		/*
		 * The socket may already be closed, and then it left the set by
		 * itself.
		 */
		(void) epoll_ctl(hc->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(hc->epfd, EPOLL_CTL_MOD, s, &ev) < 0)
	{
		if (errno != ENOENT || epoll_ctl(hc->epfd, EPOLL_CTL_ADD, s, &ev) < 0)
			return -1;
	}
	return 0;
}

/* libcurl's CURLMOPT_TIMERFUNCTION: one deadline, or none. */
static int
timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	HttpCurl   *hc = (HttpCurl *) userp;

	if (timeout_ms < 0)
		hc->timer_deadline_us = 0;
	else
		hc->timer_deadline_us = HttpNowUs() + (int64) timeout_ms * 1000;
	return 0;
}

/*
 * Keeps the first max_response_bytes of the body; past that, ends the transfer.  The
 * buffer grows with malloc as the body arrives: most receivers answer with a few
 * bytes, and max_response_bytes per request would be wasted.
 */
static size_t
write_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpRequest *req = (HttpRequest *) userp;
	size_t		n = size * nmemb;
	size_t		room = req->max_response_bytes - req->response_len;
	size_t		take = Min(n, room);

	if (req->response_len + take + 1 > req->response_cap)
	{
		size_t		cap = Max(req->response_cap * 2, 256);
		char	   *grown;

		cap = Min(Max(cap, req->response_len + take + 1), req->max_response_bytes + 1);
		grown = realloc(req->response, cap);
		if (grown == NULL)
			return 0;			/* CURLE_WRITE_ERROR: a network error */
		req->response = grown;
		req->response_cap = cap;
	}
	memcpy(req->response + req->response_len, data, take);
	req->response_len += take;
	req->response[req->response_len] = '\0';
	if (take < n)
	{
		req->response_truncated = true;
		return 0;				/* CURLE_WRITE_ERROR: stop reading */
	}
	return n;
}

/* Notes, once per request, which address was refused and why. */
static void
note_blocked(HttpRequest *req, const NetAddr *addr, const NetVerdict *why)
{
	if (req->blocked[0] == '\0')
		NetRefusalFormat(addr, why, req->via_proxy, req->blocked, sizeof(req->blocked));
}

/*
 * libcurl's CURLOPT_OPENSOCKETFUNCTION, the socket(2) of every connection it opens:
 * called after DNS with the very address it is about to connect to, for each address
 * it tries (both families, and the next one when one fails), and for the proxy's when
 * there is a proxy.  A blocked address gets no socket, so not one packet leaves for
 * it; libcurl goes on to the next address, or fails with CURLE_COULDNT_CONNECT.
 * CURLOPT_SOCKOPTFUNCTION would not do: it is given the descriptor only, not the
 * address.  A check of the URL's host text would miss a name that resolves to an
 * internal address.
 */
static curl_socket_t
opensocket_callback(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	HttpRequest *req = (HttpRequest *) clientp;
	NetAddr		addr;
	NetVerdict	why;
	curl_socket_t s;

	if (!NetAddrFromSockaddr(&address->addr, &addr))
	{
		/* Only IP connections are expected: refuse anything else. */
		if (req->blocked[0] == '\0')
			snprintf(req->blocked, sizeof(req->blocked),
					 "connection refused: address family %d is not IPv4 or IPv6", address->family);
		return CURL_SOCKET_BAD;
	}
	if (NetworkPolicyBlocks(req->policy, &addr, &why))
	{
		note_blocked(req, &addr, &why);
		return CURL_SOCKET_BAD;
	}
	s = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
	if (s != CURL_SOCKET_BAD)
		req->sockets_opened++;
	return s;
}

/*
 * libcurl's CURLOPT_PREREQFUNCTION, called before the request is sent on a connection,
 * new or kept alive.  A kept-alive connection was opened under the policy of an
 * earlier request: after a reload that blocks its address, no request may be sent on
 * it.  (On a new connection this agrees with opensocket_callback().)
 */
static int
prereq_callback(void *clientp, char *primary_ip, char *local_ip, int primary_port,
				int local_port)
{
	HttpRequest *req = (HttpRequest *) clientp;
	NetAddr		addr;
	NetVerdict	why;

	if (!NetAddrFromText(primary_ip, &addr))
	{
		if (req->blocked[0] == '\0')
			snprintf(req->blocked, sizeof(req->blocked),
					 "connection refused: peer address \"%s\" is not IPv4 or IPv6", primary_ip);
		return CURL_PREREQFUNC_ABORT;
	}
	if (NetworkPolicyBlocks(req->policy, &addr, &why))
	{
		note_blocked(req, &addr, &why);
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/*
 * The class of a transfer that ended with rc.  libcurl reports an answer it
 * cannot read with the codes it also uses before anything is sent: a status
 * line that is not HTTP is CURLE_UNSUPPORTED_PROTOCOL (as is a URL scheme
 * outside CURLOPT_PROTOCOLS_STR), and response headers past its 100 kB limit
 * are CURLE_OUT_OF_MEMORY.  Once the request has gone out, neither can come
 * from the request, so they are the receiver's protocol errors.
 */
static HttpErrorClass
classify(CURL *easy, CURLcode rc)
{
	long		request_size = 0;

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
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_OUT_OF_MEMORY:
			if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size) == CURLE_OK &&
				request_size > 0)
				return HTTP_ERR_PROTOCOL;
			return rc == CURLE_OUT_OF_MEMORY ? HTTP_ERR_NETWORK : HTTP_ERR_INVALID_REQUEST;
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_BAD_CONTENT_ENCODING:
			return HTTP_ERR_PROTOCOL;
		case CURLE_URL_MALFORMAT:
		case CURLE_BAD_FUNCTION_ARGUMENT:
			return HTTP_ERR_INVALID_REQUEST;
		default:
			return HTTP_ERR_NETWORK;
	}
}

const char *
HttpErrorClassName(HttpErrorClass c)
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
		case HTTP_ERR_PROTOCOL:
			return "protocol";
		case HTTP_ERR_BLOCKED_ADDRESS:
			return "blocked_address";
		case HTTP_ERR_BLOCKED_SCHEME:
			return "blocked_scheme";
	}
	return "network";
}

/*
 * Whether a request that failed with c was never sent: refused before any connection
 * (a blocked address or scheme) or by libcurl (an invalid request).  Its target had no
 * part in the failure, and no retry can change it.
 */
bool
HttpErrorNotSent(HttpErrorClass c)
{
	return c == HTTP_ERR_BLOCKED_ADDRESS || c == HTTP_ERR_BLOCKED_SCHEME ||
		c == HTTP_ERR_INVALID_REQUEST;
}

/*
 * Creates the epoll set and the multi handle.  On the main thread, before any HTTP
 * thread exists: the only function here that may ereport.
 */
void
HttpCurlInit(HttpCurl *hc, long max_connections, const char *proxy)
{
	memset(hc, 0, sizeof(*hc));
	strlcpy(hc->proxy, proxy ? proxy : "", sizeof(hc->proxy));
	hc->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (hc->epfd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not create epoll descriptor: %m")));
	hc->multi = curl_multi_init();
	if (hc->multi == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("curl_multi_init failed")));
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
	curl_multi_setopt(hc->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
	curl_multi_setopt(hc->multi, CURLMOPT_MAXCONNECTS, max_connections);
}

/* Applies reloaded settings: later requests use them; requests in flight keep theirs. */
void
HttpCurlConfigure(HttpCurl *hc, long max_connections, const char *proxy)
{
	curl_multi_setopt(hc->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
	curl_multi_setopt(hc->multi, CURLMOPT_MAXCONNECTS, max_connections);
	strlcpy(hc->proxy, proxy ? proxy : "", sizeof(hc->proxy));
}

/* Frees the pool, the multi handle (closing its connections) and the epoll set. */
void
HttpCurlCleanup(HttpCurl *hc)
{
	for (int i = 0; i < hc->npool; i++)
		curl_easy_cleanup(hc->pool[i]);
	hc->npool = 0;
	curl_multi_cleanup(hc->multi);
	hc->multi = NULL;
	close(hc->epfd);
	hc->epfd = -1;
}

/*
 * A pooled handle keeps the options that every request shares; each request sets all
 * of the others, so nothing of the previous request survives.
 */
static CURL *
easy_new(void)
{
	CURL	   *easy = curl_easy_init();

	if (easy == NULL)
		return NULL;
	if (curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_callback) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_callback) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_callback) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK)
	{
		curl_easy_cleanup(easy);
		return NULL;
	}
	return easy;
}

static void
pool_put(HttpCurl *hc, CURL *easy)
{
	/* Nothing of the finished request, which is freed soon, stays referenced. */
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	if (hc->npool < HTTP_POOL_MAX)
		hc->pool[hc->npool++] = easy;
	else
		curl_easy_cleanup(easy);
}

/* Marks req as failed before it ever reached libcurl's event loop. */
static void
fail_at_start(HttpCurl *hc, HttpRequest *req, CURLcode rc, dlist_head *finished)
{
	req->error_class = HTTP_ERR_INVALID_REQUEST;
	if (req->error[0] == '\0')
		strlcpy(req->error, curl_easy_strerror(rc), sizeof(req->error));
	if (req->easy)
	{
		/* Never added to the multi handle. */
		pool_put(hc, req->easy);
		req->easy = NULL;
	}
	req->duration_us = HttpNowUs() - req->started_at;
	dlist_push_tail(finished, &req->node);
}

#define SETOPT(opt, val) \
	do { \
		CURLcode	rc_ = curl_easy_setopt(easy, (opt), (val)); \
		if (rc_ != CURLE_OK) \
		{ \
			fail_at_start(hc, req, rc_, finished); \
			return; \
		} \
	} while (0)

/*
 * Hands req to libcurl; a request it refuses goes to finished at once.  libcurl sets
 * a timer of 0 for a new transfer: HttpCurlRunTimer() starts it.
 */
void
HttpCurlStart(HttpCurl *hc, HttpRequest *req, dlist_head *finished)
{
	CURL	   *easy;
	CURLMcode	mrc;

	easy = hc->npool > 0 ? hc->pool[--hc->npool] : easy_new();
	if (easy == NULL)
	{
		strlcpy(req->error, "could not create a libcurl handle", sizeof(req->error));
		fail_at_start(hc, req, CURLE_OUT_OF_MEMORY, finished);
		return;
	}
	req->easy = easy;

	SETOPT(CURLOPT_ERRORBUFFER, req->error);
	SETOPT(CURLOPT_PRIVATE, req);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PROXY, hc->proxy);	/* "" ignores *_proxy variables */

	/*
	 * And "" here ignores no_proxy: with a proxy, every request goes through
	 * it, never straight to a host the server's environment exempts (the
	 * proxy's own address, opened in allowed_networks for it, or an internal
	 * domain).
	 */
	SETOPT(CURLOPT_NOPROXY, "");
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	SETOPT(CURLOPT_POSTFIELDS, req->body);
	SETOPT(CURLOPT_HTTPHEADER, req->headers);
	/* The method last: CURLOPT_HTTPGET undoes what POSTFIELDS implies. */
	if (req->method == NULL || strcmp(req->method, "POST") == 0)
	{
		SETOPT(CURLOPT_CUSTOMREQUEST, (char *) NULL);
		SETOPT(CURLOPT_POST, 1L);
	}
	else if (strcmp(req->method, "GET") == 0)
	{
		SETOPT(CURLOPT_CUSTOMREQUEST, (char *) NULL);
		SETOPT(CURLOPT_HTTPGET, 1L);
	}
	else
	{
		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
	}
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SETOPT(CURLOPT_WRITEDATA, req);
	SETOPT(CURLOPT_OPENSOCKETDATA, req);
	SETOPT(CURLOPT_PREREQDATA, req);

	mrc = curl_multi_add_handle(hc->multi, easy);
	if (mrc != CURLM_OK)
	{
		strlcpy(req->error, curl_multi_strerror(mrc), sizeof(req->error));
		/* Not added: nothing to remove. */
		pool_put(hc, easy);
		req->easy = NULL;
		fail_at_start(hc, req, CURLE_FAILED_INIT, finished);
	}
}

#undef SETOPT

/* Tells libcurl what epoll reported for one of its sockets. */
void
HttpCurlSocketReady(HttpCurl *hc, const struct epoll_event *ev)
{
	int			flags = 0;
	int			running;

	if (ev->events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (ev->events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (ev->events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(hc->multi, ev->data.fd, flags, &running);
}

/* Runs libcurl's timer if it has expired: new transfers start, timeouts fire. */
void
HttpCurlRunTimer(HttpCurl *hc)
{
	int			running;

	if (hc->timer_deadline_us != 0 && HttpNowUs() >= hc->timer_deadline_us)
	{
		/* Cleared first: libcurl sets it again from inside the call. */
		hc->timer_deadline_us = 0;
		curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* Milliseconds until libcurl's timer expires (rounded up), 0 if it has, -1: no timer. */
long
HttpCurlTimerMs(HttpCurl *hc)
{
	int64		left;

	if (hc->timer_deadline_us == 0)
		return -1;
	left = hc->timer_deadline_us - HttpNowUs();
	return left <= 0 ? 0 : (long) Min((left + 999) / 1000, (int64) INT_MAX);
}

/*
 * The response headers of the last response of easy as "name: value\n" lines, in a
 * malloc'd string of at most HTTP_HEADERS_MAX bytes; NULL if none (or out of memory).
 */
#define HTTP_HEADERS_MAX (64 * 1024)
static char *
collect_headers(CURL *easy)
{
	struct curl_header *h = NULL;
	char	   *buf = NULL;
	size_t		len = 0;

	while ((h = curl_easy_nextheader(easy, CURLH_HEADER, -1, h)) != NULL)
	{
		size_t		add = strlen(h->name) + 2 + strlen(h->value) + 1;
		char	   *grown;

		if (len + add + 1 > HTTP_HEADERS_MAX)
			break;
		grown = realloc(buf, len + add + 1);
		if (grown == NULL)
			break;
		buf = grown;
		len += snprintf(buf + len, add + 1, "%s: %s\n", h->name, h->value);
	}
	return buf;
}

/* Moves libcurl's finished transfers, with their outcomes, to finished. */
void
HttpCurlCollect(HttpCurl *hc, dlist_head *finished)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(hc->multi, &left)) != NULL)
	{
		HttpRequest *req = NULL;
		CURL	   *easy = msg->easy_handle;
		struct curl_header *h;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &req);
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->status_code);
		req->duration_us = HttpNowUs() - req->started_at;

		/* A body cut at the cap is not a failure: the status decides. */
		if (msg->data.result == CURLE_WRITE_ERROR && req->response_truncated)
			req->error_class = HTTP_OK;

		/*
		 * Refused by the policy, with no other connection tried (a refused
		 * address and another one that timed out is a timeout).
		 */
		else if (msg->data.result != CURLE_OK && req->blocked[0] != '\0' &&
				 (req->sockets_opened == 0 || msg->data.result == CURLE_ABORTED_BY_CALLBACK))
		{
			req->error_class = HTTP_ERR_BLOCKED_ADDRESS;
			strlcpy(req->error, req->blocked, sizeof(req->error));
		}
		else
			req->error_class = classify(easy, msg->data.result);
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
		if (req->keep_headers && req->error_class == HTTP_OK)
			req->response_headers = collect_headers(easy);

		curl_multi_remove_handle(hc->multi, easy);
		pool_put(hc, easy);
		req->easy = NULL;
		dlist_push_tail(finished, &req->node);
	}
}
