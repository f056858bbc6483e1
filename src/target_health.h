/*
 * target_health.h
 *		What the worker's scheduler knows of each target (in flight, queued, its rate
 *		limiter and circuit breaker), copied into shared memory for SQL to read: the
 *		figures of integration.endpoint_health that live only in the worker.
 */
#ifndef INTEGRATION_TARGET_HEALTH_H
#define INTEGRATION_TARGET_HEALTH_H

#include "circuit_breaker.h"
#include "rate_limiter.h"
#include "tenant.h"

#define TARGET_KIND_LEN 16

/* One target's figures, as its worker last published them. */
typedef struct TargetHealth
{
	Oid			dboid;
	int			pid;			/* the worker that publishes it */
	char		kind[TARGET_KIND_LEN];	/* JobKind.target, e.g. "webhook" */
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
	int64		target_id;
	int			in_flight;
	int			queued;
	TimestampTz oldest_queued_at;	/* 0: nothing queued */
	RateLimiter limiter;
	CircuitBreaker breaker;
} TargetHealth;

extern int	integration_max_tracked_endpoints;

extern void TargetHealthDefineGucs(void);
extern Size TargetHealthShmemSize(void);
extern void TargetHealthShmemInit(void);

/* The worker's side: one exclusive lock per batch of changes. */
extern void TargetHealthBeginPublish(void);
extern int	TargetHealthWrite(int slot, const TargetHealth *h);
extern void TargetHealthRelease(int slot);
extern void TargetHealthEndPublish(void);
extern void TargetHealthReleaseMine(void);

#endif
