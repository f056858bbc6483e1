/*
 * time_limit.h
 *		A call of the tenants' own code in a worker (an inbound handler, a connector
 *		kind's adapter) cut short after a time limit, so that it fails alone instead of
 *		stalling the worker (time_limit.c).
 */
#ifndef INTEGRATION_TIME_LIMIT_H
#define INTEGRATION_TIME_LIMIT_H

typedef void (*TimeLimitedFn) (void *arg);

extern void RunWithTimeLimit(TimeLimitedFn fn, void *arg, int timeout_ms, const char *what,
							 const char *setting);
extern bool TimeLimitExceeded(const ErrorData *edata);

#endif
