/*
 * http_thread.h
 *		The HTTP client's threaded mode: libcurl driven on a thread of the worker
 *		process, requests handed over through two lists (http_thread.c).
 */
#ifndef INTEGRATION_HTTP_THREAD_H
#define INTEGRATION_HTTP_THREAD_H

#include "http_curl.h"

typedef struct HttpThread HttpThread;

extern HttpThread *HttpThreadStart(HttpCurl *hc);
extern void HttpThreadStop(HttpThread *th);
extern void HttpThreadConfigure(HttpThread *th, long max_connections, const char *proxy);
extern void HttpThreadSubmit(HttpThread *th, HttpRequest *req);
extern void HttpThreadHold(HttpThread *th, bool hold);
extern void HttpThreadTakeDone(HttpThread *th, dlist_head *ready);
extern int	HttpThreadFd(HttpThread *th);

#endif
