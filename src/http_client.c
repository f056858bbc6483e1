/*
 * http_client.c
 *		Concurrent HTTP POSTs with libcurl multi, driven from the worker's wait loop:
 *		the HttpClient API and its two modes.
 *
 * The caller (worker.c) waits on HttpClientFd() in its WaitEventSet, next to the
 * latch and postmaster death, for at most HttpClientTimeoutMs(); then calls
 * HttpClientDrive() and takes finished requests with HttpClientNextDone().  So a
 * finished request, SIGTERM, a reload and a commit all wake it at once, whichever mode
 * is on.  integration.http_thread (read once, when the client is created) chooses:
 *
 * Single-threaded (off).  libcurl runs on the calling thread, as core's libpq-oauth
 * client does.  HttpClientFd() is the epoll set that holds libcurl's sockets
 * (an epoll fd is readable when any of its sockets is ready), libcurl's timer is
 * HttpClientTimeoutMs(), and HttpClientDrive() runs epoll_wait(..., 0), hands the
 * ready sockets and an expired timer to curl_multi_socket_action and collects the
 * finished transfers.  HttpClientStart() adds the transfer and runs libcurl's timer
 * at once, so that the request is on the wire before the caller's next transaction.
 *
 * Threaded (on).  libcurl runs on a thread of its own (http_thread.c, which states
 * what that thread may and may not call); HttpClientFd() is an eventfd the thread
 * writes when requests finish, and HttpClientDrive() takes them.
 *
 * Both modes share everything that touches libcurl (http_curl.c): the callbacks, the
 * easy handle pool, the response buffer, the error classes.  Requests come back in
 * the order they finish, each exactly once, including a request that libcurl refuses
 * outright (as an invalid request).
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "http_client.h"
#include "http_curl.h"
#include "http_thread.h"
#include "worker.h"

/* Passes over libcurl's ready sockets per drive: enough for 1024 connections. */
#define HTTP_DRIVE_PASSES 16

struct HttpClient
{
	HttpCurl	curl;			/* the HTTP thread's while it runs */
	HttpThread *thread;			/* NULL: single-threaded */

	/* The main thread's own. */
	int			in_flight;
	dlist_head	ready;			/* finished, not yet returned */
	bool		via_proxy;		/* integration.proxy is set */
};

static HttpClient *create_client(int max_connections, const char *proxy, bool threaded);

/* Creates the client in the current memory context, in the mode the setting says. */
HttpClient *
HttpClientCreate(int max_connections, const char *proxy)
{
	return create_client(max_connections, proxy, integration_http_thread);
}

/*
 * Creates a single-threaded client, whatever the setting: for a backend that makes a
 * request of its own (test_connector(), connector_call.c) and waits for it in its
 * own wait loop, where a thread would be out of place.
 */
HttpClient *
HttpClientCreateInline(int max_connections, const char *proxy)
{
	return create_client(max_connections, proxy, false);
}

static HttpClient *
create_client(int max_connections, const char *proxy, bool threaded)
{
	HttpClient *client = palloc0(sizeof(HttpClient));

	/* Before any thread exists: libcurl's global state is set up once, here. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("curl_global_init failed")));
	dlist_init(&client->ready);
	client->via_proxy = proxy != NULL && proxy[0] != '\0';
	HttpCurlInit(&client->curl, (long) max_connections, proxy);
	if (threaded)
		client->thread = HttpThreadStart(&client->curl);
	return client;
}

/* Applies reloaded settings: later requests use them; requests in flight keep theirs. */
void
HttpClientConfigure(HttpClient *client, int max_connections, const char *proxy)
{
	client->via_proxy = proxy != NULL && proxy[0] != '\0';
	if (client->thread)
		HttpThreadConfigure(client->thread, (long) max_connections, proxy);
	else
		HttpCurlConfigure(&client->curl, (long) max_connections, proxy);
}

void
HttpClientDestroy(HttpClient *client)
{
	if (client->thread)
		HttpThreadStop(client->thread);
	HttpCurlCleanup(&client->curl);
	pfree(client);
}

/* What the caller waits on: readable when HttpClientDrive() has work. */
int
HttpClientFd(HttpClient *client)
{
	return client->thread ? HttpThreadFd(client->thread) : client->curl.epfd;
}

int
HttpClientInFlight(HttpClient *client)
{
	return client->in_flight;
}

/*
 * How long the caller may wait on HttpClientFd() before calling
 * HttpClientDrive(): libcurl's timer, or 0 when finished requests wait already.
 * -1: as long as it likes (the HTTP thread runs libcurl's timers itself).
 */
long
HttpClientTimeoutMs(HttpClient *client)
{
	if (!dlist_is_empty(&client->ready))
		return 0;
	if (client->thread)
		return -1;
	return HttpCurlTimerMs(&client->curl);
}

/*
 * Refuses req, before any connection, for what the socket callback (http_curl.c)
 * cannot see: an http URL under integration.https_only; and, through a proxy, whose
 * address is all that callback sees, a URL whose host is a blocked IP address.  A host
 * name sent through a proxy is the proxy's to resolve, and to filter.
 */
static bool
refuse_before_connect(HttpRequest *req)
{
	NetAddr		addr;
	NetVerdict	why;

	if (NetworkPolicyHttpsOnly(req->policy) && pg_strncasecmp(req->url, "https://", 8) != 0)
	{
		req->error_class = HTTP_ERR_BLOCKED_SCHEME;
		strlcpy(req->error, "not sent: the URL is not https and integration.https_only is on",
				sizeof(req->error));
		return true;
	}
	if (req->via_proxy && NetAddrFromUrl(req->url, &addr) &&
		NetworkPolicyBlocks(req->policy, &addr, &why))
	{
		req->error_class = HTTP_ERR_BLOCKED_ADDRESS;
		NetRefusalFormat(&addr, &why, false, req->error, sizeof(req->error));
		return true;
	}
	return false;
}

/*
 * Starts req.  Its outcome, including a request that libcurl refuses outright, comes
 * back through HttpClientNextDone().  It is judged by the network policy in force now
 * (network_policy.c), to the end, whatever a reload changes meanwhile.
 */
void
HttpClientStart(HttpClient *client, HttpRequest *req)
{
	req->status_code = 0;
	req->error_class = HTTP_OK;
	req->error[0] = '\0';
	req->response = NULL;		/* malloc'd by libcurl's write callback as the
								 * body arrives */
	req->response_cap = 0;
	req->response_len = 0;
	req->response_truncated = false;
	req->retry_after[0] = '\0';
	req->response_headers = NULL;
	req->easy = NULL;
	req->started_at = GetCurrentTimestamp();
	req->policy = NetworkPolicyAcquire();
	req->via_proxy = client->via_proxy;
	req->sockets_opened = 0;
	req->blocked[0] = '\0';
	client->in_flight++;

	if (refuse_before_connect(req))
	{
		req->duration_us = 0;
		dlist_push_tail(&client->ready, &req->node);
		return;
	}

	if (client->thread)
	{
		HttpThreadSubmit(client->thread, req);
		return;
	}
	HttpCurlStart(&client->curl, req, &client->ready);

	/*
	 * Connect, or send on a kept-alive connection, now rather than at the
	 * next wait.
	 */
	HttpCurlRunTimer(&client->curl);
	HttpCurlCollect(&client->curl, &client->ready);
}

/*
 * Brackets a burst of HttpClientStart() calls (hold, then !hold): in threaded mode the
 * thread is woken once per few requests rather than once per request
 * (HttpThreadHold()).  Single-threaded, each request starts at once regardless.
 */
void
HttpClientHoldStarts(HttpClient *client, bool hold)
{
	if (client->thread)
		HttpThreadHold(client->thread, hold);
}

/* Moves what has finished to the ready list; never blocks. */
void
HttpClientDrive(HttpClient *client)
{
	HttpCurl   *hc = &client->curl;
	struct epoll_event evs[HTTP_EPOLL_BATCH];

	if (client->thread)
	{
		HttpThreadTakeDone(client->thread, &client->ready);
		return;
	}
	for (int pass = 0; pass < HTTP_DRIVE_PASSES; pass++)
	{
		int			n = epoll_wait(hc->epfd, evs, HTTP_EPOLL_BATCH, 0);

		for (int i = 0; i < n; i++)
			HttpCurlSocketReady(hc, &evs[i]);
		if (n < HTTP_EPOLL_BATCH)
			break;
	}
	HttpCurlRunTimer(hc);
	HttpCurlCollect(hc, &client->ready);
}

HttpRequest *
HttpClientNextDone(HttpClient *client)
{
	HttpRequest *req;

	if (dlist_is_empty(&client->ready))
		return NULL;
	client->in_flight--;
	req = dlist_container(HttpRequest, node, dlist_pop_head_node(&client->ready));
	/* Back on the main thread, where the reference was taken. */
	NetworkPolicyRelease(req->policy);
	req->policy = NULL;
	if (req->response == NULL)
		req->response = "";		/* an empty body; response_cap 0: nothing to
								 * free */
	return req;
}

/* Frees what a finished request holds outside palloc. */
void
HttpRequestRelease(HttpRequest *req)
{
	if (req->headers)
		curl_slist_free_all(req->headers);
	req->headers = NULL;
	if (req->response_cap > 0)
		free(req->response);
	req->response = NULL;
	req->response_cap = 0;
	free(req->response_headers);
	req->response_headers = NULL;
}

/*
 * The line of a request header for its curl_slist, palloc'd: "name: value", or
 * "name;" for an empty or blank value, which libcurl sends as an empty header ("name:"
 * would make it leave the header out, and drop its own header of that name).
 */
char *
HttpHeaderLine(const char *name, int namelen, const char *value, int valuelen)
{
	int			blanks = 0;

	while (blanks < valuelen && (value[blanks] == ' ' || value[blanks] == '\t'))
		blanks++;
	return blanks < valuelen ? psprintf("%.*s: %.*s", namelen, name, valuelen, value)
		: psprintf("%.*s;", namelen, name);
}
