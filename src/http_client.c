/*
 * http_client.c
 *		Concurrent HTTP POSTs with libcurl multi, on a thread of their own.
 *
 * The delivery worker spends its time in two kinds of work that do not depend on each
 * other from one request to the next: SQL (claiming, recording) and HTTP (libcurl,
 * the kernel's TCP stack).  Done by one process they take turns on one core; so
 * libcurl's event loop runs on a dedicated thread of the worker process, and the two
 * overlap on two cores.
 *
 * The thread's contract.  It calls libcurl, epoll, eventfd and libc, and nothing of
 * PostgreSQL: no palloc, no elog, no latches, no shared memory.  It starts with every
 * signal blocked, so PostgreSQL's handlers (die, reload, latch wake-ups) always run
 * on the main thread.  Everything it touches besides its own libcurl state is an
 * HttpRequest that the main thread filled in completely and does not touch again
 * until the thread hands it back.  (libcurl's threaded DNS resolver already runs threads in
 * this process under the same rules.)
 *
 * Hand-over.  Two lists under one mutex: submitted (main -> thread) and done
 * (thread -> main), each with an eventfd that is written when its list stops being
 * empty.  The thread waits in epoll on libcurl's sockets and its eventfd, with
 * libcurl's timer as the timeout; the main thread puts its eventfd in the worker's
 * WaitEventSet next to the latch and postmaster death, so a finished request, SIGTERM,
 * a reload and a commit all wake it at once.  A request libcurl refuses comes back
 * through the done list like any other, marked as an invalid request.
 *
 * libcurl callbacks never palloc: the response buffer grows with malloc on the HTTP
 * thread and is freed by http_request_release(), and the body is capped: past
 * max_response_bytes the transfer is ended, keeping the status code.  Easy handles
 * are pooled with the options all requests share; connections live in the multi
 * handle's cache, so requests to the same host reuse keep-alive connections.
 *
 * The thread is stopped and joined when the process exits (before_shmem_exit), or by
 * http_client_destroy().
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http_client.h"
#include "integration.h"

#define HTTP_POOL_MAX 256
#define HTTP_EPOLL_BATCH 64
#define HTTP_START_BATCH 8
#define HTTP_PROXY_MAX 1024

struct HttpClient
{
	/* Shared between the threads, under lock. */
	pthread_mutex_t lock;
	dlist_head	submitted;
	dlist_head	done;
	bool		stop;
	bool		config_changed;
	long		max_connections;
	char		proxy[HTTP_PROXY_MAX];

	int			to_thread_fd;	/* eventfd: submitted is no longer empty, or stop */
	int			to_main_fd;		/* eventfd: done is no longer empty */

	/* The HTTP thread's own. */
	pthread_t	thread;
	bool		thread_running;
	CURLM	   *multi;
	int			epfd;
	int64		timer_deadline_us;	/* 0 when libcurl has no timer */
	char		thread_proxy[HTTP_PROXY_MAX];
	int			npool;
	CURL	   *pool[HTTP_POOL_MAX];

	/* The main thread's own. */
	int			in_flight;
	dlist_head	ready;			/* taken from done, not yet returned */
};

/* Microseconds since the PostgreSQL epoch, like GetCurrentTimestamp(), for the thread. */
static int64
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64) ts.tv_sec - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + ts.tv_nsec / 1000;
}

static void
eventfd_signal(int fd)
{
	uint64		one = 1;

	/* Fails only when the counter would overflow, and then the fd is readable anyway. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

static void
eventfd_drain(int fd)
{
	uint64		n;

	/* EAGAIN: nothing was signalled. */
	if (read(fd, &n, sizeof(n)) < 0)
		return;
}

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
		client->timer_deadline_us = 0;
	else
		client->timer_deadline_us = now_us() + (int64) timeout_ms * 1000;
	return 0;
}

/*
 * Keeps the first max_response_bytes of the body; past that, ends the transfer.  The
 * buffer grows with malloc on the HTTP thread as the body arrives: most receivers
 * answer with a few bytes, and max_response_bytes per request would be wasted.
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

/* ------------------------------------------------------------------------------------
 * The HTTP thread
 * ------------------------------------------------------------------------------------ */

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
pool_put(HttpClient *client, CURL *easy)
{
	/* Nothing of the finished request, which is freed soon, stays referenced. */
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
	if (client->npool < HTTP_POOL_MAX)
		client->pool[client->npool++] = easy;
	else
		curl_easy_cleanup(easy);
}

/* Marks req as failed before it ever reached libcurl's event loop. */
static void
fail_at_start(HttpClient *client, HttpRequest *req, CURLcode rc, dlist_head *finished)
{
	req->error_class = HTTP_ERR_INVALID_REQUEST;
	if (req->error[0] == '\0')
		strlcpy(req->error, curl_easy_strerror(rc), sizeof(req->error));
	if (req->easy)
	{
		/* Never added to the multi handle. */
		pool_put(client, req->easy);
		req->easy = NULL;
	}
	req->duration_us = now_us() - req->started_at;
	dlist_push_tail(finished, &req->node);
}

#define SETOPT(opt, val) \
	do { \
		CURLcode	rc_ = curl_easy_setopt(easy, (opt), (val)); \
		if (rc_ != CURLE_OK) \
		{ \
			fail_at_start(client, req, rc_, finished); \
			return; \
		} \
	} while (0)

/* Hands req to libcurl; a request it refuses goes to finished at once. */
static void
thread_start_request(HttpClient *client, HttpRequest *req, dlist_head *finished)
{
	CURL	   *easy;
	CURLMcode	mrc;

	easy = client->npool > 0 ? client->pool[--client->npool] : easy_new();
	if (easy == NULL)
	{
		strlcpy(req->error, "could not create a libcurl handle", sizeof(req->error));
		fail_at_start(client, req, CURLE_OUT_OF_MEMORY, finished);
		return;
	}
	req->easy = easy;

	SETOPT(CURLOPT_ERRORBUFFER, req->error);
	SETOPT(CURLOPT_PRIVATE, req);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_PROXY, client->thread_proxy);	/* "" ignores *_proxy variables */
	SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	SETOPT(CURLOPT_POSTFIELDS, req->body);
	SETOPT(CURLOPT_HTTPHEADER, req->headers);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SETOPT(CURLOPT_WRITEDATA, req);

	mrc = curl_multi_add_handle(client->multi, easy);
	if (mrc != CURLM_OK)
	{
		strlcpy(req->error, curl_multi_strerror(mrc), sizeof(req->error));
		/* Not added: nothing to remove. */
		pool_put(client, easy);
		req->easy = NULL;
		fail_at_start(client, req, CURLE_FAILED_INIT, finished);
	}
}

#undef SETOPT

/* Moves libcurl's finished transfers to finished. */
static void
thread_collect_done(HttpClient *client, dlist_head *finished)
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
		req->duration_us = now_us() - req->started_at;

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
		pool_put(client, easy);
		req->easy = NULL;
		dlist_push_tail(finished, &req->node);
	}
}

static void *
http_thread_main(void *arg)
{
	HttpClient *client = (HttpClient *) arg;
	struct epoll_event evs[HTTP_EPOLL_BATCH];
	dlist_head	incoming;
	dlist_head	finished;
	int			running;

	dlist_init(&incoming);
	dlist_init(&finished);
	for (;;)
	{
		int			timeout = -1;
		int			n;
		bool		stop;

		if (!dlist_is_empty(&incoming))
			timeout = 0;
		else if (client->timer_deadline_us != 0)
		{
			int64		left = client->timer_deadline_us - now_us();

			timeout = left <= 0 ? 0 : (int) Min((left + 999) / 1000, (int64) INT_MAX);
		}
		n = epoll_wait(client->epfd, evs, HTTP_EPOLL_BATCH, timeout);
		for (int i = 0; i < n; i++)
		{
			int			flags = 0;

			if (evs[i].data.fd == client->to_thread_fd)
			{
				eventfd_drain(client->to_thread_fd);
				continue;
			}
			if (evs[i].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(client->multi, evs[i].data.fd, flags, &running);
		}
		if (client->timer_deadline_us != 0 && now_us() >= client->timer_deadline_us)
		{
			client->timer_deadline_us = 0;
			curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}

		pthread_mutex_lock(&client->lock);
		stop = client->stop;
		while (!dlist_is_empty(&client->submitted))
			dlist_push_tail(&incoming, dlist_pop_head_node(&client->submitted));
		if (client->config_changed)
		{
			curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, client->max_connections);
			curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, client->max_connections);
			strlcpy(client->thread_proxy, client->proxy, sizeof(client->thread_proxy));
			client->config_changed = false;
		}
		pthread_mutex_unlock(&client->lock);
		if (stop)
			break;

		/*
		 * Start a few at a time, and read what has arrived in between: a burst of new
		 * requests would otherwise keep every earlier response waiting until the last
		 * of them is sent.
		 */
		for (int i = 0; i < HTTP_START_BATCH && !dlist_is_empty(&incoming); i++)
			thread_start_request(client, dlist_container(HttpRequest, node,
														 dlist_pop_head_node(&incoming)),
								 &finished);
		/* Let new transfers start now rather than at the next timer tick. */
		if (client->timer_deadline_us != 0 && now_us() >= client->timer_deadline_us)
		{
			client->timer_deadline_us = 0;
			curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		thread_collect_done(client, &finished);

		if (!dlist_is_empty(&finished))
		{
			bool		was_empty;

			pthread_mutex_lock(&client->lock);
			was_empty = dlist_is_empty(&client->done);
			while (!dlist_is_empty(&finished))
				dlist_push_tail(&client->done, dlist_pop_head_node(&finished));
			pthread_mutex_unlock(&client->lock);
			if (was_empty)
				eventfd_signal(client->to_main_fd);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------
 * The main thread's interface
 * ------------------------------------------------------------------------------------ */

static void
stop_thread(HttpClient *client)
{
	if (!client->thread_running)
		return;
	pthread_mutex_lock(&client->lock);
	client->stop = true;
	pthread_mutex_unlock(&client->lock);
	eventfd_signal(client->to_thread_fd);
	pthread_join(client->thread, NULL);
	client->thread_running = false;
}

static void
stop_thread_at_exit(int code, Datum arg)
{
	stop_thread((HttpClient *) DatumGetPointer(arg));
}

static int
make_eventfd(void)
{
	int			fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not create eventfd: %m")));
	return fd;
}

/* Creates the client in the current memory context and starts its thread. */
HttpClient *
http_client_create(int max_connections, const char *proxy)
{
	HttpClient *client = palloc0(sizeof(HttpClient));
	struct epoll_event ev;
	sigset_t	all;
	sigset_t	old;
	int			rc;

	/* Before any thread exists: libcurl's global state is set up once, here. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("curl_global_init failed")));
	pthread_mutex_init(&client->lock, NULL);
	dlist_init(&client->submitted);
	dlist_init(&client->done);
	dlist_init(&client->ready);
	client->max_connections = max_connections;
	strlcpy(client->proxy, proxy ? proxy : "", sizeof(client->proxy));
	strlcpy(client->thread_proxy, client->proxy, sizeof(client->thread_proxy));

	client->to_thread_fd = make_eventfd();
	client->to_main_fd = make_eventfd();
	client->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (client->epfd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not create epoll descriptor: %m")));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = client->to_thread_fd;
	if (epoll_ctl(client->epfd, EPOLL_CTL_ADD, client->to_thread_fd, &ev) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not watch the HTTP thread's eventfd: %m")));

	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("curl_multi_init failed")));
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) max_connections);
	curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, (long) max_connections);

	/* The thread inherits this mask: every signal stays with the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&client->thread, NULL, http_thread_main, client);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the HTTP thread: %s", strerror(rc))));
	client->thread_running = true;
	before_shmem_exit(stop_thread_at_exit, PointerGetDatum(client));
	return client;
}

/* Applies reloaded settings: later requests use them; requests in flight keep theirs. */
void
http_client_configure(HttpClient *client, int max_connections, const char *proxy)
{
	pthread_mutex_lock(&client->lock);
	client->max_connections = max_connections;
	strlcpy(client->proxy, proxy ? proxy : "", sizeof(client->proxy));
	client->config_changed = true;
	pthread_mutex_unlock(&client->lock);
	eventfd_signal(client->to_thread_fd);
}

void
http_client_destroy(HttpClient *client)
{
	stop_thread(client);
	cancel_before_shmem_exit(stop_thread_at_exit, PointerGetDatum(client));
	for (int i = 0; i < client->npool; i++)
		curl_easy_cleanup(client->pool[i]);
	curl_multi_cleanup(client->multi);
	close(client->epfd);
	close(client->to_thread_fd);
	close(client->to_main_fd);
	pthread_mutex_destroy(&client->lock);
	pfree(client);
}

/* Readable when finished requests wait for http_client_drive(). */
int
http_client_fd(HttpClient *client)
{
	return client->to_main_fd;
}

int
http_client_in_flight(HttpClient *client)
{
	return client->in_flight;
}

/* libcurl's timers run on the HTTP thread: the main thread never needs a timeout. */
long
http_client_timeout_ms(HttpClient *client)
{
	return -1;
}

/*
 * Hands req to the HTTP thread.  Its outcome, including a request that libcurl
 * refuses outright, comes back through http_client_next_done().
 */
void
http_client_start(HttpClient *client, HttpRequest *req)
{
	bool		was_empty;

	req->status_code = 0;
	req->error_class = HTTP_OK;
	req->error[0] = '\0';
	req->response = NULL;		/* malloc'd by the HTTP thread as the body arrives */
	req->response_cap = 0;
	req->response_len = 0;
	req->response_truncated = false;
	req->retry_after[0] = '\0';
	req->easy = NULL;
	req->started_at = GetCurrentTimestamp();

	pthread_mutex_lock(&client->lock);
	was_empty = dlist_is_empty(&client->submitted);
	dlist_push_tail(&client->submitted, &req->node);
	pthread_mutex_unlock(&client->lock);
	if (was_empty)
		eventfd_signal(client->to_thread_fd);
	client->in_flight++;
}

/* Takes the requests the HTTP thread has finished; never blocks. */
void
http_client_drive(HttpClient *client)
{
	/* Drain first: a hand-over after this point signals again. */
	eventfd_drain(client->to_main_fd);
	pthread_mutex_lock(&client->lock);
	while (!dlist_is_empty(&client->done))
		dlist_push_tail(&client->ready, dlist_pop_head_node(&client->done));
	pthread_mutex_unlock(&client->lock);
}

HttpRequest *
http_client_next_done(HttpClient *client)
{
	HttpRequest *req;

	if (dlist_is_empty(&client->ready))
		return NULL;
	client->in_flight--;
	req = dlist_container(HttpRequest, node, dlist_pop_head_node(&client->ready));
	if (req->response == NULL)
		req->response = "";		/* an empty body; response_cap 0: nothing to free */
	return req;
}

/* Frees what a finished request holds outside palloc. */
void
http_request_release(HttpRequest *req)
{
	if (req->headers)
		curl_slist_free_all(req->headers);
	req->headers = NULL;
	if (req->response_cap > 0)
		free(req->response);
	req->response = NULL;
	req->response_cap = 0;
}
