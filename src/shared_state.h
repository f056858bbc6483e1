/*
 * shared_state.h
 *		The extension's shared memory: wake-up counters, the endpoint-cache generation and
 *		one slot per delivery worker.
 */
#ifndef INTEGRATION_SHARED_STATE_H
#define INTEGRATION_SHARED_STATE_H

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define INTEGRATION_MAX_WORKERS 32
#define WORKER_ERROR_LEN 256
#define WORKER_STATE_LEN 24

typedef struct IntegrationWorkerSlot
{
	slock_t		mutex;			/* protects every field below */
	bool		in_use;
	Oid			dboid;
	pid_t		pid;
	Latch	   *latch;
	bool		stop_requested; /* exit with code 0: not restarted */
	bool		due_requested;	/* deliveries were requeued or dispatched: scan for due ones */
	char		state[WORKER_STATE_LEN];
	int			in_flight;
	uint64		sent;
	uint64		delivered;
	uint64		failed_attempts;
	TimestampTz started_at;
	TimestampTz last_error_at;
	char		last_error[WORKER_ERROR_LEN];
} IntegrationWorkerSlot;

typedef struct IntegrationSharedState
{
	/* Commits that published something, and how many found a worker to wake. */
	pg_atomic_uint64 commits_signalled;
	pg_atomic_uint64 workers_woken;
	/* Bumped by every commit that changed webhook_endpoints: backends drop their caches. */
	pg_atomic_uint64 endpoints_generation;
	/* Serialises taking a worker slot, so a database never gets two workers. */
	slock_t		slots_mutex;
	IntegrationWorkerSlot workers[INTEGRATION_MAX_WORKERS];
} IntegrationSharedState;

extern IntegrationSharedState *integration_shared;

extern void shared_state_request(void);
extern void wake_database_worker(Oid dboid, bool due);

#endif
