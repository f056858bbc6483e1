/*
 * shared_state.h
 *		The extension's shared memory: wake-up counters, the endpoint caches' generations
 *		and one slot per worker process (worker_slots.c owns the slots).
 */
#ifndef INTEGRATION_SHARED_STATE_H
#define INTEGRATION_SHARED_STATE_H

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

/* Worker processes in all: two per database (WORKER_NUM_ROLES), for 32 databases. */
#define INTEGRATION_MAX_WORKERS 64
#define INTEGRATION_DROPPED_DBS 32
#define WORKER_ERROR_LEN 256

/*
 * Endpoint-cache generations per tenant, by a hash of the tenant id: two tenants that
 * share a slot only cause each other an extra reload.  8 kB of shared memory.
 */
#define ENDPOINT_GENERATION_SLOTS 1024

/*
 * The delivery worker's counts of 'sending' deliveries (sending_counts.c), by a hash of
 * the tenant id: as many buckets as the endpoint caches have, so that tenants seldom
 * share one.  Each bucket a count and the tag of the one tenant it counts for.  8 kB
 * per slot.
 */
#define SENDING_COUNT_BUCKETS 1024

/*
 * One running worker process: a database's delivery worker or its handler worker.  The
 * fields above the counters are written under slots_lock (exclusive) and read under it
 * (shared); the counters and flags below are atomics that only their slot's worker
 * writes (wake_requests: any committer sets bits).
 */
typedef struct IntegrationWorkerSlot
{
	bool		in_use;
	Oid			dboid;
	int			role;			/* a WorkerRole (worker_slots.h) */
	uint32		wake_mask;		/* WorkerWakeRequest bits its kinds of work
								 * answer */
	pid_t		pid;
	Latch	   *latch;
	bool		stop_requested; /* exit with code 0: not restarted */
	TimestampTz started_at;
	TimestampTz last_error_at;
	char		last_error[WORKER_ERROR_LEN];

	pg_atomic_uint32 wake_requests; /* WorkerWakeRequest bits, since the
									 * worker last took them */
	pg_atomic_uint32 activity;	/* a WorkerActivity */
	pg_atomic_uint64 activity_since;	/* TimestampTz: when it began */
	pg_atomic_uint32 in_flight;
	pg_atomic_uint64 sent;
	pg_atomic_uint64 delivered;
	pg_atomic_uint64 failed_attempts;
	pg_atomic_uint64 inbound_handled;
	pg_atomic_uint64 inbound_failed_attempts;
	pg_atomic_uint32 inbound_held;
	pg_atomic_uint64 calls_succeeded;
	pg_atomic_uint64 calls_failed_attempts;
	pg_atomic_uint32 calls_held;
	pg_atomic_uint64 sync_runs_started;

	/*
	 * A delivery worker's upper bound of its database's 'sending' deliveries
	 * per bucket of tenants (a tenant's tag in the high 32 bits, the count in
	 * the low ones), usable by a snapshot that sees transaction sending_since
	 * committed (InvalidTransactionId: not yet).  Reset when the slot is
	 * taken.
	 */
	pg_atomic_uint32 sending_since;
	pg_atomic_uint64 sending[SENDING_COUNT_BUCKETS];
} IntegrationWorkerSlot;

typedef struct IntegrationSharedState
{
	/* Commits that published something, and how many found a worker to wake. */
	pg_atomic_uint64 commits_signalled;
	pg_atomic_uint64 workers_woken;

	/*
	 * Bumped by every commit that changed webhook_endpoints: the worker
	 * refreshes the endpoint settings of the claims it holds.
	 */
	pg_atomic_uint64 endpoints_generation;

	/*
	 * The publishing backends' endpoint caches (endpoint_cache.c): a commit
	 * that changed a tenant's endpoints bumps that tenant's slot, and one
	 * that truncated webhook_endpoints bumps endpoints_truncated, which drops
	 * every cache.  So one tenant's endpoint changes never make the others'
	 * publishes reload.
	 */
	pg_atomic_uint64 endpoints_truncated;
	pg_atomic_uint64 tenant_endpoints_generation[ENDPOINT_GENERATION_SLOTS];
	/* Protects the slots' assignment; taking a slot holds it exclusively. */
	LWLock	   *slots_lock;

	/*
	 * Broadcast when a slot is released: DROP DATABASE waits on it for its
	 * worker.
	 */
	ConditionVariable slot_released;
	IntegrationWorkerSlot workers[INTEGRATION_MAX_WORKERS];

	/*
	 * Databases being or recently dropped, under slots_lock: a worker of one
	 * that the postmaster starts again finds its database here and stops for
	 * good before it connects (and fails), instead of being restarted
	 * forever.  A ring; an entry is cleared when a worker for that database
	 * is asked for again.
	 */
	Oid			dropped_dbs[INTEGRATION_DROPPED_DBS];
	int			dropped_next;
} IntegrationSharedState;

extern IntegrationSharedState *integration_shared;

extern void SharedStateRequest(void);
extern int	EndpointGenerationSlot(const char *tenant_id);

#endif
