/*
 * wakeup.c
 *		Wakes the workers when a transaction that gave them work commits.
 *
 * The first publish in a transaction arms a flag; the transaction callback, registered
 * once per backend (RegisterXactCallback keeps registrations for the life of the
 * backend), sets the workers' latches at COMMIT and does nothing on ABORT.  The same
 * callback publishes "webhook_endpoints changed" to other backends by bumping a shared
 * generation counter, so their endpoint caches are rebuilt on next use.
 *
 * Each wake-up says what the transaction made to do (WorkerWakeRequest bits, which the
 * workers' kinds of work read), and goes only to the worker of the database whose kinds
 * answer it (WakeDatabaseWorker()): publishing asks the delivery worker for a fan-out;
 * the SQL API's requeues and dispatches (integration._wake_worker_at_commit()) also for
 * due deliveries, a scan that publishing alone does not need; a write that makes
 * inbound events pending (the inbound_events_written trigger: receive_webhook(),
 * reprocess_inbound(), plain SQL) asks the handler worker for inbound events alone.
 * DROP EXTENSION and DROP SCHEMA wake every worker, which then find the extension gone.
 *
 * A prepared transaction cannot wake anyone when COMMIT PREPARED runs elsewhere; the
 * worker's idle recheck (integration.idle_recheck_interval) picks its events up.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "commands/trigger.h"
#include "utils/builtins.h"

#include "shared_state.h"
#include "worker_slots.h"
#include "wakeup.h"

static bool callback_registered = false;
static uint32 wake_armed = 0;	/* WorkerWakeRequest bits */
static bool endpoints_dirty = false;

static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (endpoints_dirty && integration_shared != NULL)
				pg_atomic_fetch_add_u64(&integration_shared->endpoints_generation, 1);
			if (wake_armed != 0)
				WakeDatabaseWorker(MyDatabaseId, wake_armed);
			wake_armed = 0;
			endpoints_dirty = false;
			break;
		case XACT_EVENT_PRE_PREPARE:

			/*
			 * COMMIT PREPARED runs elsewhere: nobody would flush the endpoint
			 * caches.
			 */
			if (endpoints_dirty)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has changed webhook endpoints")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_armed = 0;
			endpoints_dirty = false;
			break;
		default:
			break;
	}
}

static void
ensure_callback(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(wakeup_xact_callback, NULL);
		callback_registered = true;
	}
}

/* Asks for the worker to be woken with requests when the transaction commits. */
static void
arm(uint32 requests)
{
	ensure_callback();
	wake_armed |= requests;
}

/* Called by every publish: the worker is woken once, when the transaction commits. */
void
WakeWorkerAtCommit(void)
{
	arm(WORKER_WAKE_PUBLISHED);
}

/* The same, for a transaction that made deliveries due. */
void
WakeWorkerForDueAtCommit(void)
{
	arm(WORKER_WAKE_PUBLISHED | WORKER_WAKE_DUE);
}

/* The same, for a transaction that stored or requeued inbound events. */
void
WakeWorkerForInboundAtCommit(void)
{
	arm(WORKER_WAKE_INBOUND);
}

/* The same, for every worker and all of its work: the extension may be dropped. */
void
WakeAllWorkersAtCommit(void)
{
	arm(WORKER_WAKE_ALL);
}

/* Called when this transaction writes webhook_endpoints. */
void
EndpointsChangedInXact(void)
{
	ensure_callback();
	endpoints_dirty = true;
}

bool
EndpointsChangedInThisXact(void)
{
	return endpoints_dirty;
}

PG_FUNCTION_INFO_V1(integration_endpoints_changed);

/* Statement trigger on webhook_endpoints: invalidate every backend's cache at commit. */
Datum
integration_endpoints_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("endpoints_changed() must be called as a trigger")));
	EndpointsChangedInXact();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(integration_wake_worker_at_commit);

Datum
integration_wake_worker_at_commit(PG_FUNCTION_ARGS)
{
	WakeWorkerForDueAtCommit();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(integration_inbound_events_written);

/*
 * Statement trigger on inbound_events: events may be pending, so the handler worker
 * looks at commit.  Not in the handler worker itself, whose own writes record what it
 * did; a write of another worker's (a connector call's outcome) wakes it like any.
 */
Datum
integration_inbound_events_written(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_inbound_events_written() must be called as a trigger")));
	if (!WorkerSlotAnswers(WORKER_WAKE_INBOUND))
		WakeWorkerForInboundAtCommit();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(integration_wakeup_stats);

/* The shared wake-up counters, for monitoring and tests. */
Datum
integration_wakeup_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (integration_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integration shared memory is not initialised"),
				 errhint("Add integration to shared_preload_libraries and restart.")));

	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&integration_shared->commits_signalled));
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&integration_shared->workers_woken));
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&integration_shared->endpoints_generation));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
