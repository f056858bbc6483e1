/*
 * worker_slots.h
 *		The registry of running delivery workers in shared memory: one slot per worker,
 *		what it is doing, its counters, and the requests made to it (wake, stop).
 */
#ifndef INTEGRATION_WORKER_SLOTS_H
#define INTEGRATION_WORKER_SLOTS_H

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
 * What a wake-up asks of the worker, as bits: each kind of work looks for the work its
 * bits name (WorkerKindOps.woken), and a wake-up without bits for all of it.
 */
typedef enum WorkerWakeRequest
{
	WORKER_WAKE_PUBLISHED = 1 << 0, /* events were published: fan out */
	WORKER_WAKE_DUE = 1 << 1,	/* deliveries were requeued or dispatched */
	WORKER_WAKE_INBOUND = 1 << 2,	/* inbound events became pending */
	WORKER_WAKE_CALLS = 1 << 3	/* connector calls were queued, or their
								 * connectors changed */
} WorkerWakeRequest;

/* Any backend. */
extern bool WorkerSlotExists(Oid dboid);
extern void WakeDatabaseWorker(Oid dboid, uint32 requests);
extern bool StopDatabaseWorker(Oid dboid, int timeout_ms);
extern void DatabaseDropping(Oid dboid, bool dropping);
extern bool DatabaseDropped(Oid dboid);

/* The worker itself, about its own slot. */
extern bool WorkerSlotTake(Oid dboid);
extern bool WorkerSlotHeld(void);
extern bool WorkerSlotStopRequested(void);
extern uint32 WorkerSlotTakeWakeRequests(void);
extern void WorkerSlotSetActivity(WorkerActivity activity);
extern void WorkerSlotSetError(const char *message);
extern void WorkerSlotSetInFlight(int n);
extern void WorkerSlotCountSent(void);
extern void WorkerSlotCountOutcome(bool delivered);
extern void WorkerSlotCountInbound(int handled, int failed_attempts);
extern void WorkerSlotSetInboundHeld(int n);
extern void WorkerSlotCountCalls(int succeeded, int failed_attempts);
extern void WorkerSlotSetCallsHeld(int n);

#endif
