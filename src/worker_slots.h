/*
 * worker_slots.h
 *		The registry of running worker processes in shared memory: one slot per process
 *		(a database's delivery worker and its handler worker), what it is doing, its
 *		counters, and the requests made to it (wake, stop).
 */
#ifndef INTEGRATION_WORKER_SLOTS_H
#define INTEGRATION_WORKER_SLOTS_H

/*
 * What a worker process runs: each database has one process of each role, started,
 * stopped and restarted together by the launcher (worker_launcher.c).  Which kinds of
 * work each role runs is worker.c's table (WorkerRoles[]).
 */
typedef enum WorkerRole
{
	WORKER_ROLE_ANY = -1,		/* in lookups: a process of any role */
	WORKER_ROLE_DELIVERY = 0,	/* sends: webhook deliveries; and retention */
	WORKER_ROLE_HANDLER,		/* runs the handlers of inbound events */
	WORKER_NUM_ROLES
} WorkerRole;

/* What a worker is doing, as worker_status() shows it. */
typedef enum WorkerActivity
{
	WORKER_STARTING = 0,
	WORKER_IDLE,
	WORKER_SENDING,
	WORKER_CLAIMING,
	WORKER_RECORDING,
	WORKER_REFRESHING,
	WORKER_PURGING,
	WORKER_COMMITTING,
	WORKER_HANDLING,
	WORKER_CALLING
} WorkerActivity;

/*
 * What a wake-up asks of the worker, as bits: it goes to the processes whose kinds of
 * work answer one of its bits (WorkerKindOps.wakes), each kind looks for the work its
 * bits name (WorkerKindOps.woken), and a wake-up without bits goes to every process, for
 * all of its work (so does WORKER_WAKE_ALL).
 */
typedef enum WorkerWakeRequest
{
	WORKER_WAKE_PUBLISHED = 1 << 0, /* events were published: fan out */
	WORKER_WAKE_DUE = 1 << 1,	/* deliveries were requeued or dispatched */
	WORKER_WAKE_INBOUND = 1 << 2,	/* inbound events became pending */
	WORKER_WAKE_CALLS = 1 << 3	/* connector calls were queued, or their
								 * connectors changed */
} WorkerWakeRequest;

#define WORKER_WAKE_ALL PG_UINT32_MAX	/* every bit: the extension may be
										 * gone */

/* Any backend. */
extern struct IntegrationWorkerSlot *WorkerSlotOf(Oid dboid, WorkerRole role);
extern bool WorkerSlotExists(Oid dboid, WorkerRole role);
extern void WakeDatabaseWorker(Oid dboid, uint32 requests);
extern bool StopDatabaseWorker(Oid dboid, int timeout_ms);
extern void DatabaseDropping(Oid dboid, bool dropping);
extern bool DatabaseDropped(Oid dboid);

/* The worker itself, about its own slot. */
extern bool WorkerSlotTake(Oid dboid, WorkerRole role, uint32 wake_mask);
extern bool WorkerSlotAnswers(uint32 requests);
extern bool WorkerSlotStopRequested(void);
extern uint32 WorkerSlotTakeWakeRequests(void);
extern bool WorkerSlotWakePending(void);
extern void WorkerSlotSetActivity(WorkerActivity activity);
extern void WorkerSlotSetError(const char *message);
extern void WorkerSlotSetInFlight(int n);
extern void WorkerSlotCountSent(void);
extern void WorkerSlotCountOutcome(bool delivered);
extern void WorkerSlotCountInbound(int handled, int failed_attempts);
extern void WorkerSlotSetInboundHeld(int n);
extern void WorkerSlotCountCalls(int succeeded, int failed_attempts);
extern void WorkerSlotSetCallsHeld(int n);
extern void WorkerSlotCountSyncRuns(int started);
extern struct IntegrationWorkerSlot *WorkerSlotOwn(void);

#endif
