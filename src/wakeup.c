/*
 * wakeup.c
 *		Wakes the workers when a transaction that gave them work commits.
 *
 * The first publish in a transaction arms a flag; the transaction callback, registered
 * once per backend (RegisterXactCallback keeps registrations for the life of the
 * backend), sets the workers' latches at COMMIT and does nothing on ABORT.  The same
 * callback publishes "these tenants' webhook_endpoints changed" to other backends by
 * bumping the shared generation of each such tenant (shared_state.h), so their cached
 * endpoints of those tenants, and only those, are read again on next use; a TRUNCATE
 * drops every cache.
 *
 * Each wake-up says what the transaction made to do (WorkerWakeRequest bits, which the
 * workers' kinds of work read), and goes only to the worker of the database whose kinds
 * answer it (WakeDatabaseWorker()): publishing asks the delivery worker for a fan-out;
 * the SQL API's requeues and dispatches (integration._wake_worker_at_commit()) also for
 * due deliveries, a scan that publishing alone does not need; a write that makes
 * inbound events pending (the inbound_events_written trigger: receive_webhook(),
 * reprocess_inbound(), plain SQL, and a connector call's completion event) asks the
 * handler worker for inbound events alone; call_connector(), and changes of connectors
 * that decide whether their calls go out (integration._wake_calls_at_commit()), ask the
 * delivery worker for connector calls alone.
 * DROP EXTENSION and DROP SCHEMA wake every worker, which then find the extension gone.
 *
 * A prepared transaction cannot wake anyone when COMMIT PREPARED runs elsewhere; the
 * worker's idle recheck (integration.idle_recheck_interval) picks its events up.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "shared_state.h"
#include "worker_slots.h"
#include "wakeup.h"

static bool callback_registered = false;
static uint32 wake_armed = 0;	/* WorkerWakeRequest bits */
static bool endpoints_dirty = false;

/* The tenants whose endpoints this transaction changed, by generation slot. */
static uint64 dirty_slots[ENDPOINT_GENERATION_SLOTS / 64];
static bool dirty_all = false;	/* webhook_endpoints truncated */

/* Tells the other backends which tenants' endpoints this transaction changed. */
static void
bump_endpoint_generations(void)
{
	if (dirty_all)
		pg_atomic_fetch_add_u64(&integration_shared->endpoints_truncated, 1);
	else
	{
		for (int w = 0; w < lengthof(dirty_slots); w++)
			for (int b = 0; dirty_slots[w] != 0 && b < 64; b++)
				if (dirty_slots[w] & (UINT64CONST(1) << b))
					pg_atomic_fetch_add_u64(&integration_shared->tenant_endpoints_generation[w * 64 + b], 1);
	}
	pg_atomic_fetch_add_u64(&integration_shared->endpoints_generation, 1);
}

static void
forget_endpoint_changes(void)
{
	if (endpoints_dirty)
		memset(dirty_slots, 0, sizeof(dirty_slots));
	endpoints_dirty = false;
	dirty_all = false;
}

static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (endpoints_dirty && integration_shared != NULL)
				bump_endpoint_generations();
			if (wake_armed != 0)
				WakeDatabaseWorker(MyDatabaseId, wake_armed);
			wake_armed = 0;
			forget_endpoint_changes();
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
			forget_endpoint_changes();
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

/* The same, for a transaction that queued connector calls or changed connectors. */
void
WakeWorkerForCallsAtCommit(void)
{
	arm(WORKER_WAKE_CALLS);
}

/* The same, for every worker and all of its work: the extension may be dropped. */
void
WakeAllWorkersAtCommit(void)
{
	arm(WORKER_WAKE_ALL);
}

/*
 * Called when this transaction writes webhook_endpoints of tenant_id, or with NULL
 * when it truncates the table.
 */
void
EndpointsChangedInXact(const char *tenant_id)
{
	ensure_callback();
	endpoints_dirty = true;
	if (tenant_id == NULL)
		dirty_all = true;
	else
	{
		int			slot = EndpointGenerationSlot(tenant_id);

		dirty_slots[slot / 64] |= UINT64CONST(1) << (slot % 64);
	}
}

/* Marks the tenant of tuple (a row of webhook_endpoints) changed. */
static void
tuple_changed(TriggerData *trigdata, HeapTuple tuple)
{
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	int			attno = SPI_fnumber(desc, "tenant_id");
	bool		isnull;
	Datum		tenant;

	if (attno <= 0)
		elog(ERROR, "webhook_endpoints has no column tenant_id");
	tenant = heap_getattr(tuple, attno, desc, &isnull);
	if (!isnull)
		EndpointsChangedInXact(TextDatumGetCString(tenant));
}

bool
EndpointsChangedInThisXact(void)
{
	return endpoints_dirty;
}

PG_FUNCTION_INFO_V1(integration_endpoints_changed);

/*
 * Row trigger on webhook_endpoints (and statement trigger for TRUNCATE): at commit, the
 * cached endpoints of the rows' tenants (of every tenant after a TRUNCATE) are dropped
 * in every backend.
 */
Datum
integration_endpoints_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("endpoints_changed() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		EndpointsChangedInXact(NULL);
	else
	{
		tuple_changed(trigdata, trigdata->tg_trigtuple);
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			tuple_changed(trigdata, trigdata->tg_newtuple);
	}
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

PG_FUNCTION_INFO_V1(integration_wake_calls_at_commit);

Datum
integration_wake_calls_at_commit(PG_FUNCTION_ARGS)
{
	WakeWorkerForCallsAtCommit();
	PG_RETURN_VOID();
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
