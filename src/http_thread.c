/*
 * http_thread.c
 *		The HTTP client's threaded mode (integration.http_thread = on): libcurl's event
 *		loop on a dedicated thread of the worker process.
 *
 * The delivery worker spends its time in two kinds of work that do not depend on each
 * other from one request to the next: SQL (claiming, recording) and HTTP (libcurl,
 * the kernel's TCP stack).  Done by one thread they take turns on one core; in this
 * mode libcurl's event loop runs on a thread of its own, so that the two may overlap
 * on two cores.  The figures that decide whether this pays are in bench/README.md
 * (Performance); single-threaded mode (http_client.c) is the other choice.
 *
 * The thread's contract.  It calls libcurl, epoll, eventfd, pthread and libc, and
 * nothing of PostgreSQL: no palloc, no elog, no latches, no shared memory, no
 * CHECK_FOR_INTERRUPTS.  Of this project's code it runs only http_thread_main() below,
 * http_curl.c and the pure functions of network_policy.c, which keep the same rule.  It
 * starts with every signal blocked, so PostgreSQL's handlers (die, reload, latch
 * wake-ups) always run on the main thread.
 * Everything it touches besides its own HttpCurl is an HttpRequest that the main
 * thread filled in completely and does not touch again until the thread hands it
 * back (with the NetworkPolicy it points to, which the main thread keeps alive and
 * unchanged until then), and the fields of HttpThread marked as shared, under the
 * mutex.  (libcurl's
 * threaded DNS resolver already runs threads in this process under the same rules.)
 *
 * Hand-over.  Two lists under one mutex: submitted (main -> thread) and done
 * (thread -> main), each with an eventfd that is written when its list stops being
 * empty.  The thread waits in epoll on libcurl's sockets and its eventfd, with
 * libcurl's timer as the timeout; the main thread puts its eventfd in the worker's
 * WaitEventSet next to the latch and postmaster death, so a finished request, SIGTERM,
 * a reload and a commit all wake it at once.  A request libcurl refuses comes back
 * through the done list like any other, marked as an invalid request.
 *
 * The thread is stopped and joined when the process exits (before_shmem_exit), or by
 * HttpThreadStop().
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "storage/ipc.h"

#include "http_thread.h"

#define HTTP_START_BATCH 8

struct HttpThread
{
	/* Shared between the threads, under lock. */
	pthread_mutex_t lock;
	dlist_head	submitted;
	dlist_head	done;
	bool		stop;
	bool		config_changed;
	long		max_connections;
	char		proxy[HTTP_PROXY_MAX];

	int			to_thread_fd;	/* eventfd: submitted is no longer empty, or
								 * stop */
	int			to_main_fd;		/* eventfd: done is no longer empty */

	/* The HTTP thread's own once it runs. */
	HttpCurl   *curl;

	/* The main thread's own. */
	pthread_t	thread;
	bool		running;
	bool		holding;		/* HttpThreadHold(): signals put off */
	bool		signal_owed;	/* submitted went from empty while holding */
	int			held;			/* submitted while holding, since the last
								 * signal */
};

static void
eventfd_signal(int fd)
{
	uint64		one = 1;

	/*
	 * Fails only when the counter would overflow, and then the fd is readable
	 * anyway.
	 */
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

/* ------------------------------------------------------------------------------------
 * The HTTP thread
 * ------------------------------------------------------------------------------------ */

static void *
http_thread_main(void *arg)
{
	HttpThread *th = (HttpThread *) arg;
	HttpCurl   *hc = th->curl;
	struct epoll_event evs[HTTP_EPOLL_BATCH];
	dlist_head	incoming;
	dlist_head	finished;

	dlist_init(&incoming);
	dlist_init(&finished);
	for (;;)
	{
		int			timeout;
		int			n;
		bool		stop;

		timeout = dlist_is_empty(&incoming) ? (int) HttpCurlTimerMs(hc) : 0;
		n = epoll_wait(hc->epfd, evs, HTTP_EPOLL_BATCH, timeout);
		for (int i = 0; i < n; i++)
		{
			if (evs[i].data.fd == th->to_thread_fd)
				eventfd_drain(th->to_thread_fd);
			else
				HttpCurlSocketReady(hc, &evs[i]);
		}
		HttpCurlRunTimer(hc);

		pthread_mutex_lock(&th->lock);
		stop = th->stop;
		while (!dlist_is_empty(&th->submitted))
			dlist_push_tail(&incoming, dlist_pop_head_node(&th->submitted));
		if (th->config_changed)
		{
			HttpCurlConfigure(hc, th->max_connections, th->proxy);
			th->config_changed = false;
		}
		pthread_mutex_unlock(&th->lock);
		if (stop)
			break;

		/*
		 * Start a few at a time, and read what has arrived in between: a
		 * burst of new requests would otherwise keep every earlier response
		 * waiting until the last of them is sent.
		 */
		for (int i = 0; i < HTTP_START_BATCH && !dlist_is_empty(&incoming); i++)
			HttpCurlStart(hc, dlist_container(HttpRequest, node,
											  dlist_pop_head_node(&incoming)),
						  &finished);
		/* Let new transfers start now rather than at the next turn. */
		HttpCurlRunTimer(hc);
		HttpCurlCollect(hc, &finished);

		if (!dlist_is_empty(&finished))
		{
			bool		was_empty;

			pthread_mutex_lock(&th->lock);
			was_empty = dlist_is_empty(&th->done);
			while (!dlist_is_empty(&finished))
				dlist_push_tail(&th->done, dlist_pop_head_node(&finished));
			pthread_mutex_unlock(&th->lock);
			if (was_empty)
				eventfd_signal(th->to_main_fd);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------
 * The main thread's side
 * ------------------------------------------------------------------------------------ */

static void
join_thread(HttpThread *th)
{
	if (!th->running)
		return;
	pthread_mutex_lock(&th->lock);
	th->stop = true;
	pthread_mutex_unlock(&th->lock);
	eventfd_signal(th->to_thread_fd);
	pthread_join(th->thread, NULL);
	th->running = false;
}

static void
join_thread_at_exit(int code, Datum arg)
{
	join_thread((HttpThread *) DatumGetPointer(arg));
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

/*
 * Starts a thread that drives hc from now on, in the current memory context.  hc
 * belongs to the thread until HttpThreadStop().
 */
HttpThread *
HttpThreadStart(HttpCurl *hc)
{
	HttpThread *th = palloc0(sizeof(HttpThread));
	struct epoll_event ev;
	sigset_t	all;
	sigset_t	old;
	int			rc;

	pthread_mutex_init(&th->lock, NULL);
	dlist_init(&th->submitted);
	dlist_init(&th->done);
	th->curl = hc;
	th->to_thread_fd = make_eventfd();
	th->to_main_fd = make_eventfd();
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = th->to_thread_fd;
	if (epoll_ctl(hc->epfd, EPOLL_CTL_ADD, th->to_thread_fd, &ev) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not watch the HTTP thread's eventfd: %m")));

	/* The thread inherits this mask: every signal stays with the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&th->thread, NULL, http_thread_main, th);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the HTTP thread: %s", strerror(rc))));
	th->running = true;
	before_shmem_exit(join_thread_at_exit, PointerGetDatum(th));
	return th;
}

/* Stops and joins the thread and frees th; its HttpCurl is the caller's again. */
void
HttpThreadStop(HttpThread *th)
{
	join_thread(th);
	cancel_before_shmem_exit(join_thread_at_exit, PointerGetDatum(th));
	(void) epoll_ctl(th->curl->epfd, EPOLL_CTL_DEL, th->to_thread_fd, NULL);
	close(th->to_thread_fd);
	close(th->to_main_fd);
	pthread_mutex_destroy(&th->lock);
	pfree(th);
}

/* Passes reloaded settings to the thread, which applies them to later requests. */
void
HttpThreadConfigure(HttpThread *th, long max_connections, const char *proxy)
{
	pthread_mutex_lock(&th->lock);
	th->max_connections = max_connections;
	strlcpy(th->proxy, proxy ? proxy : "", sizeof(th->proxy));
	th->config_changed = true;
	pthread_mutex_unlock(&th->lock);
	eventfd_signal(th->to_thread_fd);
}

/*
 * Hands req to the thread; the main thread must not touch it until it comes back.
 * The thread is signalled when submitted stops being empty; while held
 * (HttpThreadHold()), once per HTTP_START_BATCH requests and at the release instead.
 */
void
HttpThreadSubmit(HttpThread *th, HttpRequest *req)
{
	bool		was_empty;

	pthread_mutex_lock(&th->lock);
	was_empty = dlist_is_empty(&th->submitted);
	dlist_push_tail(&th->submitted, &req->node);
	pthread_mutex_unlock(&th->lock);
	if (!th->holding)
	{
		if (was_empty)
			eventfd_signal(th->to_thread_fd);
		return;
	}
	th->signal_owed |= was_empty;
	if (++th->held >= HTTP_START_BATCH && th->signal_owed)
	{
		eventfd_signal(th->to_thread_fd);
		th->signal_owed = false;
		th->held = 0;
	}
}

/*
 * Puts off (hold) or gives (!hold) the signals of HttpThreadSubmit(), for a burst of
 * submissions: one write to the eventfd, and one wake-up of the thread, per
 * HTTP_START_BATCH requests instead of up to one per request (the thread empties
 * submitted as soon as it wakes, so each request found it empty again).  A request
 * waits at most for the next HTTP_START_BATCH - 1 to be built.
 */
void
HttpThreadHold(HttpThread *th, bool hold)
{
	if (!hold && th->signal_owed)
		eventfd_signal(th->to_thread_fd);
	th->holding = hold;
	th->signal_owed = false;
	th->held = 0;
}

/* Moves the requests the thread has finished to ready; never blocks for long. */
void
HttpThreadTakeDone(HttpThread *th, dlist_head *ready)
{
	/* Drain first: a hand-over after this point signals again. */
	eventfd_drain(th->to_main_fd);
	pthread_mutex_lock(&th->lock);
	while (!dlist_is_empty(&th->done))
		dlist_push_tail(ready, dlist_pop_head_node(&th->done));
	pthread_mutex_unlock(&th->lock);
}

/* Readable when finished requests wait for HttpThreadTakeDone(). */
int
HttpThreadFd(HttpThread *th)
{
	return th->to_main_fd;
}
