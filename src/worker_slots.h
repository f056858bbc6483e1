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
	WORKER_COMMITTING
} WorkerActivity;

/* Any backend. */
extern bool WorkerSlotExists(Oid dboid);
extern void WakeDatabaseWorker(Oid dboid, bool due);
extern bool StopDatabaseWorker(Oid dboid, int timeout_ms);
extern void DatabaseDropping(Oid dboid, bool dropping);
extern bool DatabaseDropped(Oid dboid);

/* The worker itself, about its own slot. */
extern bool WorkerSlotTake(Oid dboid);
extern bool WorkerSlotStopRequested(void);
extern bool WorkerSlotTakeDueRequest(void);
extern void WorkerSlotSetActivity(WorkerActivity activity);
extern void WorkerSlotSetError(const char *message);
extern void WorkerSlotSetInFlight(int n);
extern void WorkerSlotCountSent(void);
extern void WorkerSlotCountOutcome(bool delivered);

#endif
