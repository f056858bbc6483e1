/*
 * worker_slots.c
 *		The registry of running worker processes: one slot per process in shared memory,
 *		each a database's process of one role (WorkerRole).
 *
 * Locking.  slots_lock guards which slot belongs to which database and role (in_use,
 * dboid, role, wake_mask, pid, latch, stop_requested) and the last error; taking a slot
 * holds it exclusively, so a database never gets two processes of one role.  Everything
 * a worker updates on every turn of its loop (its activity, requests in flight,
 * counters) is an atomic that only that worker
 * writes, so neither its loop nor the committing backends that wake it contend for the
 * lock beyond a shared acquisition.  A released slot is announced on the
 * slot_released condition variable, which DROP DATABASE sleeps on while the database's
 * worker exits.
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "commands/dbcommands.h"

#include "secret_key.h"
#include "shared_state.h"
#include "worker.h"
#include "worker_slots.h"

static IntegrationWorkerSlot *my_slot = NULL;

static const char *const activity_names[] = {
	[WORKER_STARTING] = "starting",
	[WORKER_IDLE] = "idle",
	[WORKER_SENDING] = "sending",
	[WORKER_CLAIMING] = "claiming",
	[WORKER_RECORDING] = "recording",
	[WORKER_REFRESHING] = "refreshing",
	[WORKER_PURGING] = "purging",
	[WORKER_COMMITTING] = "committing",
	[WORKER_HANDLING] = "handling",
	[WORKER_CALLING] = "calling",
};

/*
 * The slot of dboid's worker of role (WORKER_ROLE_ANY: the first of any), or NULL.  The
 * caller holds slots_lock, for as long as it uses the slot.
 */
IntegrationWorkerSlot *
WorkerSlotOf(Oid dboid, WorkerRole role)
{
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (slot->in_use && slot->dboid == dboid &&
			(role == WORKER_ROLE_ANY || slot->role == (int) role))
			return slot;
	}
	return NULL;
}

/* Whether a worker of role (WORKER_ROLE_ANY: of any) holds a slot for dboid. */
bool
WorkerSlotExists(Oid dboid, WorkerRole role)
{
	bool		found;

	if (integration_shared == NULL)
		return false;
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	found = WorkerSlotOf(dboid, role) != NULL;
	LWLockRelease(integration_shared->slots_lock);
	return found;
}

/*
 * Sets the latch of each worker of database dboid whose kinds of work answer one of
 * requests (WorkerWakeRequest bits: what the commit made to do; 0: not said, every
 * worker), if it runs.  Latches are idempotent, so many commits in a burst share one
 * wake-up of a worker.  The bits are left in the slot for its kinds of work, which look
 * for that work only (a wake-up for published events alone only fans out), and a
 * worker none of whose kinds answers is not woken at all: a webhook received does not
 * wake the delivery worker, nor an event published the handler worker.
 */
void
WakeDatabaseWorker(Oid dboid, uint32 requests)
{
	if (integration_shared == NULL)
		return;
	pg_atomic_fetch_add_u64(&integration_shared->commits_signalled, 1);
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (!slot->in_use || slot->dboid != dboid || slot->latch == NULL)
			continue;
		if (requests != 0 && (requests & slot->wake_mask) == 0)
			continue;
		if (requests != 0)
			pg_atomic_fetch_or_u32(&slot->wake_requests, requests);

		/*
		 * Set under the lock: a worker releases its slot, and its latch, only
		 * exclusively.
		 */
		SetLatch(slot->latch);
		pg_atomic_fetch_add_u64(&integration_shared->workers_woken, 1);
	}
	LWLockRelease(integration_shared->slots_lock);
}

/*
 * Asks the workers of dboid (of every role) to exit for good and waits up to timeout_ms
 * for them to go, sleeping on the slot_released condition variable (interruptible).
 * Their claims return to 'pending' when workers start again.  Returns whether they
 * are gone.
 */
bool
StopDatabaseWorker(Oid dboid, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	bool		gone = false;

	LWLockAcquire(integration_shared->slots_lock, LW_EXCLUSIVE);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (slot->in_use && slot->dboid == dboid)
		{
			slot->stop_requested = true;
			if (slot->latch)
				SetLatch(slot->latch);
		}
	}
	LWLockRelease(integration_shared->slots_lock);

	ConditionVariablePrepareToSleep(&integration_shared->slot_released);
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (!WorkerSlotExists(dboid, WORKER_ROLE_ANY))
		{
			gone = true;
			break;
		}
		if (left <= 0)
			break;
		(void) ConditionVariableTimedSleep(&integration_shared->slot_released, left,
										   PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return gone;
}

/*
 * Records that dboid is being dropped (dropping), or that it is not after all, or may
 * have a worker again (!dropping).  DROP DATABASE records it before the database goes,
 * so a worker for it that exited a moment ago and waits for the postmaster to start it
 * again (after DROP EXTENSION, pg_terminate_backend(), a crash) stops for good.
 */
void
DatabaseDropping(Oid dboid, bool dropping)
{
	if (integration_shared == NULL)
		return;
	LWLockAcquire(integration_shared->slots_lock, LW_EXCLUSIVE);
	for (int i = 0; i < INTEGRATION_DROPPED_DBS; i++)
		if (integration_shared->dropped_dbs[i] == dboid)
			integration_shared->dropped_dbs[i] = InvalidOid;
	if (dropping)
	{
		integration_shared->dropped_dbs[integration_shared->dropped_next] = dboid;
		integration_shared->dropped_next =
			(integration_shared->dropped_next + 1) % INTEGRATION_DROPPED_DBS;
	}
	LWLockRelease(integration_shared->slots_lock);
}

/* Whether dboid was dropped (or is being): its worker must not connect. */
bool
DatabaseDropped(Oid dboid)
{
	bool		dropped = false;

	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	for (int i = 0; i < INTEGRATION_DROPPED_DBS && !dropped; i++)
		dropped = integration_shared->dropped_dbs[i] == dboid;
	LWLockRelease(integration_shared->slots_lock);
	return dropped;
}

static void
release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(integration_shared->slots_lock, LW_EXCLUSIVE);
	my_slot->in_use = false;
	my_slot->latch = NULL;
	my_slot->pid = 0;
	LWLockRelease(integration_shared->slots_lock);
	my_slot = NULL;
	ConditionVariableBroadcast(&integration_shared->slot_released);
}

/*
 * Takes a free slot for dboid's worker of role, which answers the wake-ups of
 * wake_mask; released when the process exits.  False when the database already has a
 * worker of that role or no slot is free (WorkerSlotExists() tells which).
 */
bool
WorkerSlotTake(Oid dboid, WorkerRole role, uint32 wake_mask)
{
	IntegrationWorkerSlot *free_slot = NULL;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(integration_shared->slots_lock, LW_EXCLUSIVE);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (slot->in_use && slot->dboid == dboid && slot->role == (int) role)
		{
			LWLockRelease(integration_shared->slots_lock);
			return false;
		}
		if (!slot->in_use && free_slot == NULL)
			free_slot = slot;
	}
	if (free_slot)
	{
		free_slot->in_use = true;
		free_slot->dboid = dboid;
		free_slot->role = (int) role;
		free_slot->wake_mask = wake_mask;
		free_slot->pid = MyProcPid;
		free_slot->latch = MyLatch;
		free_slot->stop_requested = false;
		free_slot->started_at = now;
		free_slot->last_error[0] = '\0';
		free_slot->last_error_at = 0;
		pg_atomic_write_u32(&free_slot->wake_requests, 0);
		pg_atomic_write_u32(&free_slot->activity, WORKER_STARTING);
		pg_atomic_write_u64(&free_slot->activity_since, (uint64) now);
		pg_atomic_write_u32(&free_slot->in_flight, 0);
		pg_atomic_write_u64(&free_slot->sent, 0);
		pg_atomic_write_u64(&free_slot->delivered, 0);
		pg_atomic_write_u64(&free_slot->failed_attempts, 0);
		pg_atomic_write_u64(&free_slot->inbound_handled, 0);
		pg_atomic_write_u64(&free_slot->inbound_failed_attempts, 0);
		pg_atomic_write_u32(&free_slot->inbound_held, 0);
		pg_atomic_write_u64(&free_slot->calls_succeeded, 0);
		pg_atomic_write_u64(&free_slot->calls_failed_attempts, 0);
		pg_atomic_write_u32(&free_slot->calls_held, 0);
		pg_atomic_write_u64(&free_slot->sync_runs_started, 0);
		pg_atomic_write_u32(&free_slot->sending_since, InvalidTransactionId);
		for (int b = 0; b < SENDING_COUNT_BUCKETS; b++)
			pg_atomic_write_u64(&free_slot->sending[b], 0);
	}
	LWLockRelease(integration_shared->slots_lock);
	if (free_slot == NULL)
		return false;
	my_slot = free_slot;
	before_shmem_exit(release_slot, 0);
	return true;
}

/*
 * Whether this process is a worker that wake-ups with requests (WorkerWakeRequest bits)
 * go to: waking it for what it writes itself would only make it look again.
 */
bool
WorkerSlotAnswers(uint32 requests)
{
	return my_slot != NULL && (my_slot->wake_mask & requests) != 0;
}

bool
WorkerSlotStopRequested(void)
{
	bool		stop;

	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	stop = my_slot->stop_requested;
	LWLockRelease(integration_shared->slots_lock);
	return stop;
}

/* What committers asked for since the last call (WorkerWakeRequest bits). */
uint32
WorkerSlotTakeWakeRequests(void)
{
	return pg_atomic_exchange_u32(&my_slot->wake_requests, 0);
}

/*
 * Whether a wake-up or a stop request is waiting to be taken, whether or not the latch
 * that came with it is still set.
 */
bool
WorkerSlotWakePending(void)
{
	return pg_atomic_read_u32(&my_slot->wake_requests) != 0 || WorkerSlotStopRequested();
}

/*
 * What the worker does now; worker_status() shows it with the time it began, so a
 * worker stuck in one step (a commit waiting for the disk, a statement waiting for a
 * lock) shows which and for how long.  Many calls per turn of the loop repeat the
 * activity it has: the clock is read only when it changes.
 */
void
WorkerSlotSetActivity(WorkerActivity activity)
{
	if (pg_atomic_read_u32(&my_slot->activity) == (uint32) activity)
		return;
	pg_atomic_write_u64(&my_slot->activity_since, (uint64) GetCurrentTimestamp());
	pg_atomic_write_u32(&my_slot->activity, (uint32) activity);
}

void
WorkerSlotSetError(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(integration_shared->slots_lock, LW_EXCLUSIVE);
	strlcpy(my_slot->last_error, message, WORKER_ERROR_LEN);
	my_slot->last_error_at = now;
	LWLockRelease(integration_shared->slots_lock);
}

void
WorkerSlotSetInFlight(int n)
{
	pg_atomic_write_u32(&my_slot->in_flight, (uint32) n);
}

void
WorkerSlotCountSent(void)
{
	pg_atomic_fetch_add_u64(&my_slot->sent, 1);
}

void
WorkerSlotCountOutcome(bool delivered)
{
	pg_atomic_fetch_add_u64(delivered ? &my_slot->delivered : &my_slot->failed_attempts, 1);
}

/* Inbound events whose handlers ran and committed, and attempts that failed. */
void
WorkerSlotCountInbound(int handled, int failed_attempts)
{
	if (handled > 0)
		pg_atomic_fetch_add_u64(&my_slot->inbound_handled, handled);
	if (failed_attempts > 0)
		pg_atomic_fetch_add_u64(&my_slot->inbound_failed_attempts, failed_attempts);
}

/* Inbound events held in memory for their handlers (queued or about to run). */
void
WorkerSlotSetInboundHeld(int n)
{
	pg_atomic_write_u32(&my_slot->inbound_held, (uint32) n);
}

/* Connector calls that succeeded, and attempts that did not (recorded). */
void
WorkerSlotCountCalls(int succeeded, int failed_attempts)
{
	if (succeeded > 0)
		pg_atomic_fetch_add_u64(&my_slot->calls_succeeded, succeeded);
	if (failed_attempts > 0)
		pg_atomic_fetch_add_u64(&my_slot->calls_failed_attempts, failed_attempts);
}

/* This process's slot; NULL in a process that is not a worker. */
IntegrationWorkerSlot *
WorkerSlotOwn(void)
{
	return my_slot;
}

/* Scheduled sync runs started (sync_schedule.c). */
void
WorkerSlotCountSyncRuns(int started)
{
	pg_atomic_fetch_add_u64(&my_slot->sync_runs_started, started);
}

/* Connector calls held in memory: queued, being built, in flight or to record. */
void
WorkerSlotSetCallsHeld(int n)
{
	pg_atomic_write_u32(&my_slot->calls_held, (uint32) n);
}

PG_FUNCTION_INFO_V1(integration_worker_status);

/*
 * worker_status(): one row per running worker process.
 *
 * A worker transaction's error can come from any tenant's work (a handler's own
 * message, a row's values in a constraint's detail), so last_error is shown only to
 * roles that may read every session's statistics, as pg_stat_activity shows other
 * roles' queries only to them; anyone else sees NULL.  The counters, states and wait
 * events say nothing about a tenant's data.
 */
Datum
integration_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		sees_errors = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	InitMaterializedSRF(fcinfo, 0);
	if (integration_shared == NULL)
		return (Datum) 0;

	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];
		Datum		values[23];
		bool		nulls[23] = {0};
		bool		in_use;
		Oid			dboid;
		int			role;
		pid_t		pid;
		TimestampTz started_at;
		TimestampTz last_error_at;
		char		last_error[WORKER_ERROR_LEN];
		uint32		activity;
		TimestampTz activity_since;
		PGPROC	   *proc;
		uint32		wait_event_info = 0;
		const char *wait_type;
		const char *wait_event;
		char	   *dbname;

		LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
		in_use = slot->in_use;
		dboid = slot->dboid;
		role = slot->role;
		pid = slot->pid;
		started_at = slot->started_at;
		last_error_at = slot->last_error_at;
		strlcpy(last_error, slot->last_error, sizeof(last_error));
		LWLockRelease(integration_shared->slots_lock);
		if (!in_use)
			continue;

		values[0] = Int32GetDatum(pid);
		dbname = get_database_name(dboid);
		if (dbname)
			values[1] = CStringGetTextDatum(dbname);
		else
			nulls[1] = true;
		values[2] = CStringGetTextDatum(role >= 0 && role < WORKER_NUM_ROLES ?
										WorkerRoles[role].name : "unknown");
		activity = pg_atomic_read_u32(&slot->activity);
		activity_since = (TimestampTz) pg_atomic_read_u64(&slot->activity_since);
		values[3] = CStringGetTextDatum(activity < lengthof(activity_names) ?
										activity_names[activity] : "unknown");
		values[4] = Int32GetDatum((int32) pg_atomic_read_u32(&slot->in_flight));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->sent));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->delivered));
		values[7] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->failed_attempts));
		values[8] = TimestampTzGetDatum(started_at);
		if (last_error[0] && sees_errors)
		{
			values[9] = CStringGetTextDatum(last_error);
			values[10] = TimestampTzGetDatum(last_error_at);
		}
		else
			nulls[9] = nulls[10] = true;
		/* The keys are the postmaster's, so every worker has the same. */
		values[11] = BoolGetDatum(SecretKeyCurrent() != NULL);
		if (SecretKeyCurrent() != NULL)
			values[12] = CStringGetTextDatum(SecretKeyCurrent()->id);
		else
			nulls[12] = true;

		/*
		 * What its main thread waits on now, as pg_stat_activity shows it
		 * (Extension while it sleeps in its loop).
		 */
		proc = BackendPidGetProc(pid);
		if (proc != NULL)
			wait_event_info = *((volatile uint32 *) &proc->wait_event_info);
		wait_type = pgstat_get_wait_event_type(wait_event_info);
		wait_event = pgstat_get_wait_event(wait_event_info);
		if (wait_type != NULL && wait_event != NULL)
		{
			values[13] = CStringGetTextDatum(wait_type);
			values[14] = CStringGetTextDatum(wait_event);
		}
		else
			nulls[13] = nulls[14] = true;
		values[15] = TimestampTzGetDatum(activity_since);
		values[16] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->inbound_handled));
		values[17] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->inbound_failed_attempts));
		values[18] = Int32GetDatum((int32) pg_atomic_read_u32(&slot->inbound_held));
		values[19] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->calls_succeeded));
		values[20] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->calls_failed_attempts));
		values[21] = Int32GetDatum((int32) pg_atomic_read_u32(&slot->calls_held));
		values[22] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->sync_runs_started));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
