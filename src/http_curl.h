/*
 * http_curl.h
 *		The libcurl side of the HTTP client, shared by its two modes (http_client.c):
 *		a multi handle whose sockets sit in one epoll set, its timer, and a pool of
 *		easy handles.
 *
 * Contract.  Everything declared here may run on the HTTP thread (http_thread.c): it
 * calls libcurl, epoll, libc and the pure functions of network_policy.h, and nothing of
 * PostgreSQL (no palloc, no elog), except HttpCurlInit(), which runs on the main thread
 * before any HTTP thread exists.  An
 * HttpCurl belongs to exactly one thread at a time: the HTTP thread in threaded mode,
 * the worker's main thread in single-threaded mode.
 */
#ifndef INTEGRATION_HTTP_CURL_H
#define INTEGRATION_HTTP_CURL_H

#include <sys/epoll.h>

#include "http_client.h"

#define HTTP_POOL_MAX 256
#define HTTP_EPOLL_BATCH 64
#define HTTP_PROXY_MAX 1024

typedef struct HttpCurl
{
	CURLM	   *multi;
	int			epfd;			/* libcurl's sockets (and the thread's
								 * eventfd) */
	int64		timer_deadline_us;	/* 0 when libcurl has no timer */
	char		proxy[HTTP_PROXY_MAX];	/* what requests started from now on
										 * use */
	int			npool;
	CURL	   *pool[HTTP_POOL_MAX];
} HttpCurl;

extern int64 HttpNowUs(void);
extern void HttpCurlInit(HttpCurl *hc, long max_connections, const char *proxy);
extern void HttpCurlConfigure(HttpCurl *hc, long max_connections, const char *proxy);
extern void HttpCurlCleanup(HttpCurl *hc);
extern void HttpCurlStart(HttpCurl *hc, HttpRequest *req, dlist_head *finished);
extern void HttpCurlSocketReady(HttpCurl *hc, const struct epoll_event *ev);
extern void HttpCurlRunTimer(HttpCurl *hc);
extern long HttpCurlTimerMs(HttpCurl *hc);
extern void HttpCurlCollect(HttpCurl *hc, dlist_head *finished);

#endif
