/*
 * sync_schedule.c
 *		The worker's schedule of sync runs: it starts the runs of connectors' pull
 *		streams that come due (integration.sync_streams.next_run_at, every
 *		settings.sync_interval), and does nothing else.
 *
 * A run is a chain of connector calls of operation pull (sql/sync.sql): this task only
 * queues the first page's call, through integration._sync_start(), in a transaction of
 * its own; the calls are then claimed, sent, retried and recorded by call_job.c like any
 * other, and the page-ended trigger queues the next page or ends the run, setting the
 * stream's next_run_at.  So this is a periodic task of the delivery worker's loop
 * without a JobKind (as retention.c): it sends nothing and holds no request slot.
 *
 * What next, and when.  The schedule keeps one time, the earliest next_run_at of the
 * idle streams of live, active connectors (one probe of sync_streams_due_idx), read
 * again after each transaction of its own and whenever the worker is woken for
 * connector calls (WORKER_WAKE_CALLS): sync_now(), a run that ends, a connector created
 * or changed all commit one.  The idle recheck (integration.idle_recheck_interval)
 * covers a commit nobody woke the worker for.  A step starts at most START_BATCH due
 * runs, locking their streams SKIP LOCKED (sync_now() may hold one), and reads the next
 * time in the same transaction; a full batch looks again at once.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "delivery_store.h"
#include "spi_plan.h"
#include "sync_schedule.h"
#include "worker.h"
#include "worker_slots.h"

/* Runs started per transaction at most. */
#define START_BATCH 100
/* A transaction that failed is tried again after this. */
#define ERROR_PAUSE_MS 5000
/* Due streams that could not be started (locked) are looked at again after this. */
#define LOCKED_RECHECK_MS 1000

typedef struct SyncSchedule
{
	WorkerServices *svc;
	bool		look;			/* read the schedule again */
	TimestampTz next_run_at;	/* the earliest due run; 0: none */
	TimestampTz next_recheck;
	TimestampTz pause_until;
	int			started;		/* out of the last transaction */
	bool		more;			/* out: a full batch, more may be due */
} SyncSchedule;

/*
 * Kept, and made again as sync_streams and connectors grow (KeptPlanGet(),
 * spi_plan.c): planned on a few streams, the start joined all of them by a hash (3,637
 * pages a step at 200,000 streams, against about 400 planned again).
 */
static KeptPlan start_plan;
static KeptPlan next_plan;

/* The transaction: starts the due runs, then reads when the next one is due. */
static void
schedule_step(void *arg)
{
	SyncSchedule *s = arg;
	Oid			types[1] = {INT4OID};
	Datum		args[1];
	bool		isnull;
	Datum		d;

	s->started = 0;
	s->more = false;
	s->next_run_at = 0;
	if (!StoreExtensionPresent())
		return;					/* the call job makes the worker exit */
	WorkerSlotSetActivity(WORKER_CLAIMING);
	args[0] = Int32GetDatum(START_BATCH);
	RunPlan(KeptPlanGet(&start_plan,
						"SELECT pg_catalog.count(*) FILTER (WHERE integration._sync_start(d.tenant_id, d.connector_id, d.stream))"
						"  FROM (SELECT s.tenant_id, s.connector_id, s.stream"
						"          FROM integration.sync_streams s"
						"          JOIN integration.connectors c"
						"            ON c.tenant_id OPERATOR(pg_catalog.=) s.tenant_id"
						"           AND c.id OPERATOR(pg_catalog.=) s.connector_id"
						"         WHERE s.status OPERATOR(pg_catalog.=) 'idle'"
						"           AND s.next_run_at IS NOT NULL"
						"           AND s.next_run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
						"           AND c.is_active AND c.deleted_at IS NULL"
						"         ORDER BY s.next_run_at"
						"         LIMIT $1"
						"           FOR UPDATE OF s SKIP LOCKED) d",
						1, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "starting sync runs");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	s->started = isnull ? 0 : (int) DatumGetInt64(d);
	s->more = s->started >= START_BATCH;

	RunPlan(KeptPlanGet(&next_plan,
						"SELECT s.next_run_at"
						"  FROM integration.sync_streams s"
						"  JOIN integration.connectors c"
						"    ON c.tenant_id OPERATOR(pg_catalog.=) s.tenant_id"
						"   AND c.id OPERATOR(pg_catalog.=) s.connector_id"
						" WHERE s.status OPERATOR(pg_catalog.=) 'idle' AND s.next_run_at IS NOT NULL"
						"   AND c.is_active AND c.deleted_at IS NULL"
						" ORDER BY s.next_run_at LIMIT 1",
						0, NULL, CURSOR_OPT_GENERIC_PLAN),
			NULL, false, SPI_OK_SELECT, "looking for the next sync run");
	if (SPI_processed > 0)
		s->next_run_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));
}

/* WorkerKindOps.step: one transaction when the schedule is to be read or a run is due. */
static bool
schedule_run(void *state, TimestampTz now)
{
	SyncSchedule *s = state;
	int			sqlerrcode;

	if (now >= s->next_recheck)
	{
		s->look = true;
		s->next_recheck = TimestampTzPlusMilliseconds(now, integration_idle_recheck_ms);
	}
	if (now < s->pause_until)
		return false;
	if (!s->look && (s->next_run_at == 0 || now < s->next_run_at))
		return false;
	if (!WorkerRunTransaction(schedule_step, s, "starting sync runs", &sqlerrcode, NULL))
	{
		s->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		s->look = true;
		return false;
	}
	if (s->started > 0)
		WorkerSlotCountSyncRuns(s->started);
	s->look = s->more;

	/*
	 * Due, yet none started: their streams are locked (a sync_now() under
	 * way), or were started meanwhile.  Not again at once.
	 */
	now = GetCurrentTimestamp();
	if (!s->more && s->next_run_at != 0 && s->next_run_at <= now)
		s->next_run_at = TimestampTzPlusMilliseconds(now, LOCKED_RECHECK_MS);
	return false;
}

/* WorkerKindOps.woken: calls were queued or connectors changed: the schedule may have. */
static void
schedule_woken(void *state, uint32 requests)
{
	SyncSchedule *s = state;

	if (requests == 0 || (requests & WORKER_WAKE_CALLS) != 0)
		s->look = true;
}

static void
schedule_reload(void *state)
{
	SyncSchedule *s = state;

	s->look = true;
}

static bool
schedule_prepare(void *state, TimestampTz now)
{
	return true;
}

static void
schedule_finished(void *state, SchedItem *item, HttpRequest *req)
{
	elog(ERROR, "the sync schedule sends no requests");
}

/* WorkerKindOps.next_wake: now when it must look; else the next run, or the recheck. */
static TimestampTz
schedule_next_wake(void *state, TimestampTz now)
{
	SyncSchedule *s = state;
	TimestampTz wake = s->next_recheck;

	if (now < s->pause_until)
		return s->pause_until;
	if (s->look)
		return now;
	if (s->next_run_at != 0 && s->next_run_at < wake)
		wake = s->next_run_at;
	return wake;
}

/* WorkerKindOps.create: no SQL; the first step reads the schedule. */
static void *
schedule_create(WorkerServices *svc)
{
	SyncSchedule *s = MemoryContextAllocZero(TopMemoryContext, sizeof(SyncSchedule));

	s->svc = svc;
	s->look = true;
	s->next_recheck = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  integration_idle_recheck_ms);
	return s;
}

const WorkerKindOps sync_schedule_ops = {
	.kind = NULL,
	.wakes = WORKER_WAKE_CALLS,
	.sends = false,
	.create = schedule_create,
	.startup = NULL,
	.woken = schedule_woken,
	.reload = schedule_reload,
	.prepare = schedule_prepare,
	.step = schedule_run,
	.finished = schedule_finished,
	.next_wake = schedule_next_wake,
};
