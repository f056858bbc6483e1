/*
 * retention.c
 *		Finished deliveries, their events and attempts, and log rows expire: the worker
 *		removes them in short transactions on a schedule, and integration.purge_expired()
 *		runs one pass on demand.  The connector framework's tables, inbound events,
 *		connector calls and deleted connectors' synced records, expire in the same
 *		passes and batches, by the walks of retention_connectors.c (which says what of
 *		them expires, and when).
 *
 * What expires.  A delivered delivery integration.retention_delivered after it was
 * delivered; a failed one integration.retention_failed after its last attempt; a
 * skipped one (its endpoint disabled by the worker, endpoint_disable.c) as long as a
 * failed one, after it was skipped: both are what enable_webhook(replay_since) sends
 * again, and the longer period keeps a replay possible for as long as failures are
 * kept.  Their attempts go with them (the foreign key's ON DELETE CASCADE).  An event
 * goes once none of its deliveries remains and it is not queued for fan-out.  A log row
 * goes integration.retention_logs after it was written.  A pending or sending delivery
 * (claimed, in flight, or waiting for a retry) never expires, and so neither does its
 * event.  A period of 0 or -1 keeps its rows forever.
 *
 * Why deletes in batches, not partitions.  Dropping time partitions leaves nothing
 * behind, but the worker writes each result back by the claim's ctid
 * (delivery_outcome.c), and every key and reference here (the attempts' foreign key, the
 * statement triggers of delivery_references.c, the unique key that makes fan-out
 * idempotent) would have to include the partition key: a rewrite of the whole store.  A
 * deleted row instead leaves a dead tuple and dead index entries until autovacuum
 * reclaims them, and what matters is that nothing the worker does per delivery walks
 * them.  Its hot statements find their rows through indexes that never hold a finished
 * delivery: the claim and the next-due lookup walk deliveries_due_idx (partial: pending
 * rows only), the fan-out walks the queue's index and reaches events by key, results
 * are written by ctid, and every insert lands at the right edge of its indexes.  This
 * code removes only finished rows and the events and logs the worker never reads again,
 * so the dead tuples it leaves are never on the worker's way; autovacuum makes their
 * space free for new rows and the tables stop growing.  Measured with EXPLAIN (ANALYZE,
 * BUFFERS) on the worker's own statements (integration._claim_due() and _fan_out()
 * under auto_explain, bench/retention_plans.sql): right after a pass that removed
 * 200,000 deliveries and 100,000 events, before any vacuum, the claim of 256 due
 * deliveries and each statement of the fan-out of 256 events read exactly as many
 * buffers as in a copy of the database that was not purged
 * (bench/README.md#retention).  What does step over the dead entries until a vacuum:
 * this walk when it starts over from the oldest event, and tenants' list queries.
 *
 * How rows are found.  Deliveries have no index on when they finished, and one would
 * cost the worker dearly: the result's update would change an indexed column and stop
 * being HOT (see the fillfactor of integration.deliveries).  So the walk goes through
 * the events, which are never younger than their deliveries, and reaches each event's
 * deliveries through their unique key.  It reads the events through
 * webhook_events_created_idx (tenant_id, created_at, id), which list_deliveries(since
 * => ...) needs anyway: tenant by tenant, from the greatest tenant_id down, and in each
 * tenant its oldest first, keyset (created_at, id).  One index probe finds the greatest
 * tenant below the last (a loose index scan: a recursive CTE, as StoreClaim()'s claim
 * of other endpoints does), and each tenant's expired events are one range of the
 * index, which ends at the cutoff: a pass never reads a tenant's young events, and a
 * tenant with nothing expired costs two probes.  The probe, a backward scan of the
 * primary key (tenant_id, id), goes down because the entries it lands on are then a
 * tenant's highest ids, normally its newest events, which retention has not deleted;
 * going up, it would land on the lowest, the ones the passes before deleted, and step
 * over each of them (read_window()).  A tenant all of whose events expired is dead
 * entries from end to end until a vacuum, and a probe steps over them either way.  An
 * index of its own, (created_at, id) across
 * tenants, cost publishing one more index entry per event, about 12% of the rate of a
 * bulk INSERT into a tracked table (bench/README.md).  Log rows are found by
 * integration_logs_expiry_idx (created_at), partial on created_at < 'infinity', which
 * the statement here states and the tenants' list queries never do, so that the planner
 * keeps to the lists' own per-tenant indexes for those (see sql/integration.sql).
 *
 * A pass keeps its place in the walk from batch to batch, the tenant it stands in and
 * (created_at, id) in it, and a pass hands the next one a time: the events' cutoff of
 * its own first window.  In every tenant, a pass looked at all the events older than
 * that (those visible then), so the next pass looks in each tenant only at the events
 * from that time on, those that became old enough since, and not at those kept before
 * (an event with a delivery still retrying, or only failed deliveries, which are kept
 * longer).  Those are looked at again when the walk starts over from the oldest event:
 * at the first pass after an eighth of the shorter period (and no more often than every
 * pass).  So a delivery that finished long after its event was published can stay up to
 * an eighth of its period longer than the period.
 *
 * Locks.  Nothing here waits for a row lock: deliveries and events are locked FOR UPDATE
 * SKIP LOCKED before they are deleted, and a row someone holds is left until the walk
 * starts over from the oldest event (a log row, for the next pass).  An event is deleted
 * only after a second look, with a snapshot taken once it is locked, finds no delivery
 * and no queue row: a delivery inserted for it by hand and committed in between would
 * otherwise go with it (delete_event_deliveries() cascades), and one inserted after the
 * lock waits for it and then fails its reference check, as against any deleted event.
 *
 * The worker runs a pass every integration.retention_interval as a periodic task of its
 * loop (worker.c): one batch per transaction and per turn of the loop, and a batch ends
 * early, after the window of events at hand, when a commit sets the worker's latch, so
 * fresh events wait for one statement at most.  After a batch the task waits twice as
 * long as the batch took, three times while deliveries are in flight or queued: it
 * takes at most a third of the worker's time, a quarter while it delivers, and no
 * request slot.  An idle worker removed 200,000 deliveries and their 100,000 events
 * that way in 601 transactions and 20.7 s (bench/retention_backlog, 2 shared cores).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "delivery_store.h"
#include "retention.h"
#include "retention_connectors.h"
#include "spi_plan.h"
#include "worker_slots.h"

/*
 * Rows deleted, and events (or tenants without any expired) looked at, per transaction
 * at most: about 11.5 ms of the
 * worker's time on the development machine (bench/retention_backlog: 300,000 rows in
 * 601 transactions and 20.7 s, each followed by a pause twice its length), and a commit
 * that wakes the worker waits for one window at most (run_batch()).  The events are
 * taken EVENT_WINDOW at a time: the window's deliveries, then its events, each deleted
 * in one statement.
 */
#define BATCH_ROWS 500
#define EVENT_WINDOW 100

/* A pass that failed is tried again after this, or the interval if shorter. */
#define FAILED_PASS_RETRY_S 10

/* Settings. */
int			integration_retention_delivered_s = 7 * SECS_PER_DAY;
int			integration_retention_failed_s = 30 * SECS_PER_DAY;
int			integration_retention_logs_s = 30 * SECS_PER_DAY;
int			integration_retention_interval_s = 60;

void
RetentionDefineGucs(void)
{
	DefineCustomIntVariable("integration.retention_delivered",
							"How long delivered deliveries are kept after delivery, with their attempts; 0 or -1: forever.",
							NULL, &integration_retention_delivered_s, 7 * SECS_PER_DAY,
							-1, INT_MAX, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.retention_failed",
							"How long failed deliveries are kept after their last attempt, and skipped ones after they were skipped, with their attempts; 0 or -1: forever.",
							NULL, &integration_retention_failed_s, 30 * SECS_PER_DAY,
							-1, INT_MAX, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.retention_logs",
							"How long integration_logs rows are kept; 0 or -1: forever.",
							NULL, &integration_retention_logs_s, 30 * SECS_PER_DAY,
							-1, INT_MAX, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.retention_interval",
							"How often a delivery worker removes the rows whose retention period has passed.",
							NULL, &integration_retention_interval_s, 60,
							1, SECS_PER_DAY, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------------------
 * One pass, a batch at a time
 * ------------------------------------------------------------------------------------ */

typedef struct RetentionRemoved
{
	int64		deliveries;
	int64		events;
	int64		logs;
	int64		inbound_events;
	int64		connector_calls;
	int64		external_records;
} RetentionRemoved;

/* Where a pass stands. */
typedef struct RetentionPass
{
	MemoryContext cxt;			/* holds after_tenant */
	char	   *after_tenant;	/* the event walk continues in after_tenant
								 * after (after_at, after_id), then in the
								 * tenants before it; '': in the greatest */
	TimestampTz after_at;
	int64		after_id;
	TimestampTz since;			/* in the tenants before it, from this time on */
	TimestampTz first_cutoff;	/* the events' cutoff of the pass's first
								 * window: the next pass's since */
	bool		events_done;
	ExpiryWalk	inbound;		/* retention_connectors.c's walks */
	ExpiryWalk	calls;
	ExpiryWalk	records;
	bool		logs_done;
	bool		yield;			/* the worker's: end a batch early when its
								 * latch is set */
	RetentionRemoved removed;
} RetentionPass;

/*
 * Kept, and made again as the tables grow (KeptPlanGet(), spi_plan.c): planned on empty
 * tables, the deletes found their rows by ctid with a sequential scan of the whole
 * table (at 200,000 rows, 4,486 pages for 100 log rows, against 306 by TID planned
 * again; 6,954 for 100 deliveries).
 */
static KeptPlan window_plan;
static KeptPlan deliveries_plan;
static KeptPlan lock_events_plan;
static KeptPlan delete_events_plan;
static KeptPlan logs_plan;

static void
forget_plans(void)
{
	SPIPlanPtr *plans[] = {&window_plan.plan, &deliveries_plan.plan, &lock_events_plan.plan,
	&delete_events_plan.plan, &logs_plan.plan};

	ForgetPlans(plans, lengthof(plans));
	RetentionConnectorsForgetPlans();
}

static TimestampTz
cutoff(TimestampTz now, int period_s)
{
	TimestampTz t;

	if (period_s <= 0)
	{
		TIMESTAMP_NOBEGIN(t);
		return t;
	}
	return now - (TimestampTz) period_s * USECS_PER_SEC;
}

/* The cutoffs of the settings in force, as of now. */
static void
compute_cutoffs(RetentionCutoffs *c, TimestampTz now)
{
	c->now = now;
	c->delivered = cutoff(now, integration_retention_delivered_s);
	c->failed = cutoff(now, integration_retention_failed_s);
	c->logs = cutoff(now, integration_retention_logs_s);
	c->events = Max(c->delivered, c->failed);
}

/* Sets where the event walk continues: in tenant, after (at, id); tenant '': none yet. */
static void
set_event_place(RetentionPass *p, const char *tenant, TimestampTz at, int64 id)
{
	if (p->after_tenant == NULL || strcmp(p->after_tenant, tenant) != 0)
	{
		if (p->after_tenant != NULL)
			pfree(p->after_tenant);
		p->after_tenant = MemoryContextStrdup(p->cxt, tenant);
	}
	p->after_at = at;
	p->after_id = id;
}

/*
 * A pass from the oldest event, or from the first window of the pass before, with
 * nothing to do for what is kept forever.  p->after_tenant lives in cxt.
 */
static void
start_pass(RetentionPass *p, bool from_oldest, MemoryContext cxt)
{
	ExpiryWalk *walks[] = {&p->inbound, &p->calls, &p->records};

	if (p->cxt != cxt)
	{
		p->cxt = cxt;
		p->after_tenant = NULL;
	}
	if (from_oldest)
		TIMESTAMP_NOBEGIN(p->since);
	else
		p->since = p->first_cutoff;
	TIMESTAMP_NOBEGIN(p->first_cutoff);

	/*
	 * No tenant yet ('': tenant ids are never empty, a CHECK of the table):
	 * the walk starts in the greatest tenant, from since.
	 */
	set_event_place(p, "", p->since, PG_INT64_MIN);
	if (from_oldest)
	{
		for (int i = 0; i < lengthof(walks); i++)
		{
			TIMESTAMP_NOBEGIN(walks[i]->after_at);
			walks[i]->after_id = PG_INT64_MIN;
		}
	}
	p->events_done = integration_retention_delivered_s <= 0 &&
		integration_retention_failed_s <= 0;
	/* The connector tables expire by the same two periods. */
	for (int i = 0; i < lengthof(walks); i++)
		walks[i]->done = p->events_done;
	p->logs_done = integration_retention_logs_s <= 0;
	p->yield = false;
	memset(&p->removed, 0, sizeof(p->removed));
}

/*
 * The next window of events old enough to expire, tenants in descending tenant_id
 * order and each tenant's events in the order of webhook_events_created_idx
 * (created_at, id), as arrays of their tenants and ids; advances nothing.  Returns how
 * many rows it looked at: the events, and one for each tenant probed that has none
 * (left), at most EVENT_WINDOW; *nevents is how many events, and *last the place after
 * the window.
 *
 * The tenants come one index probe each, the greatest below the one before (a loose
 * index scan, as StoreClaim()'s claim of other endpoints does), the first being the
 * one the walk stands in, or the greatest tenant when it stands in none yet ('');
 * each tenant's events from where the walk stands in it, or from p->since, to the
 * cutoff, oldest first, in one range of the index.  A tenant's young events are never
 * read, and a tenant with nothing expired costs two probes.
 *
 * Why descending: retention deletes each tenant's oldest events, and until a vacuum
 * their dead entries are the first of the tenant in the indexes that hold tenant_id
 * first.  An ascending probe (tenant_id > t ORDER BY tenant_id LIMIT 1) lands on them
 * and steps over every one, a heap visit each the first time (an index scan that finds
 * a tuple dead to every snapshot marks its entry, and later scans skip it without the
 * visit while no old snapshot holds the horizon back); a descending one, the primary
 * key read backward, lands on a tenant's highest ids, normally its newest events, which
 * retention has not deleted.  Not so for a tenant whose events all expired (a tenant
 * that left): its entries are all dead, and the probe steps over them, as it would
 * going up.  The range read in each tenant starts at p->since, so it rereads only what
 * the pass before deleted after its first window.  One window over 30 tenants read
 * about 250 buffers before and after the oldest half of each tenant's events was
 * deleted in the same transaction (so no entry was marked dead), and about 9,000 after
 * it when probing up (the bounds of test/sql/worker_plans.sql).
 *
 * The rows come in the order of the tenants, and each tenant's in the index's order,
 * with no ORDER BY over the result (a sort would read every tenant first): the order
 * rests on the executor's nested loop, with the recursive CTE outside it keeping the
 * order the recursion produced its tenants in, which the test's plan and rows guard.
 */
static int
read_window(RetentionPass *p, const RetentionCutoffs *c, Datum *tenants, Datum *ids, int *nevents,
			char **last_tenant, TimestampTz *last_at, int64 *last_id)
{
	Oid			types[6] = {TEXTOID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID};
	Datum		args[6];
	Datum	   *t;
	Datum	   *i;
	int			n;
	int			ne = 0;

	args[0] = CStringGetTextDatum(p->after_tenant);
	args[1] = TimestampTzGetDatum(p->after_at);
	args[2] = Int64GetDatum(p->after_id);
	args[3] = TimestampTzGetDatum(p->since);
	args[4] = TimestampTzGetDatum(c->events);
	args[5] = Int64GetDatum(EVENT_WINDOW);
	KeptPlanGet(&window_plan,
				"WITH RECURSIVE t(tenant_id, after_at, after_id) AS ("
				"   SELECT $1 COLLATE \"C\", $2, $3 WHERE $1 <> ''"
				"  UNION ALL"
				"   SELECT g.tenant_id, $2, $3 FROM ("
				"     SELECT e.tenant_id FROM integration.webhook_events e"
				"      WHERE $1 = '' ORDER BY e.tenant_id DESC LIMIT 1) g"
				"  UNION ALL"
				"   SELECT x.tenant_id, $4, '-9223372036854775808'::pg_catalog.int8"
				"     FROM t CROSS JOIN LATERAL ("
				"     SELECT e.tenant_id FROM integration.webhook_events e"
				"      WHERE e.tenant_id < t.tenant_id ORDER BY e.tenant_id DESC LIMIT 1) x)"
				" SELECT t.tenant_id, w.id, w.created_at FROM t LEFT JOIN LATERAL ("
				"   SELECT e.id, e.created_at FROM integration.webhook_events e"
				"    WHERE e.tenant_id = t.tenant_id"
				"      AND (e.created_at, e.id) > (t.after_at, t.after_id) AND e.created_at < $5"
				"    ORDER BY e.created_at, e.id LIMIT $6) w ON true"
				" LIMIT $6",
				6, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(window_plan.plan, args, false, SPI_OK_SELECT, "reading events old enough to expire");
	n = (int) SPI_processed;
	*nevents = 0;
	if (n == 0)
		return 0;
	t = palloc(sizeof(Datum) * n);
	i = palloc(sizeof(Datum) * n);
	for (int r = 0; r < n; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		bool		no_event;
		Datum		tenant = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
		Datum		id = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &no_event);

		if (r == n - 1)
		{
			*last_tenant = TextDatumGetCString(tenant);
			if (no_event)
			{
				/* Nothing (more) of this tenant: the walk goes on after it. */
				*last_at = DT_NOEND;
				*last_id = PG_INT64_MAX;
			}
			else
			{
				*last_id = DatumGetInt64(id);
				*last_at = DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
			}
		}
		if (no_event)
			continue;
		t[ne] = PointerGetDatum(DatumGetTextPCopy(tenant));
		i[ne] = id;
		ne++;
	}
	if (ne > 0)
	{
		*tenants = ArrayParam(t, NULL, ne, TEXTOID);
		*ids = ArrayParam(i, NULL, ne, INT8OID);
	}
	*nevents = ne;
	return n;
}

/* Deletes up to limit expired deliveries of the events; returns how many. */
static int
delete_deliveries(Datum tenants, Datum ids, const RetentionCutoffs *c, int limit)
{
	Oid			types[5] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID};
	Datum		args[5] = {tenants, ids, TimestampTzGetDatum(c->delivered),
	TimestampTzGetDatum(c->failed), Int64GetDatum(limit)};

	/* LATERAL: one probe of the deliveries' unique key per event. */
	KeptPlanGet(&deliveries_plan,
				"WITH doomed AS ("
				"  SELECT d.ctid FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(tenant_id, id)"
				"  CROSS JOIN LATERAL (SELECT d.ctid FROM integration.deliveries d"
				"                       WHERE d.tenant_id = k.tenant_id AND d.event_id = k.id"
				"                         AND ((d.status = 'delivered' AND d.delivered_at < $3)"
				"                              OR (d.status IN ('failed', 'skipped')"
				"                                  AND coalesce(d.last_attempt_at, d.created_at) < $4))"
				"                         FOR UPDATE SKIP LOCKED) d"
				"  LIMIT $5)"
				" DELETE FROM integration.deliveries d"
				"  WHERE d.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed))",
				5, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(deliveries_plan.plan, args, false, SPI_OK_DELETE, "deleting expired deliveries");
	return (int) SPI_processed;
}

/*
 * Deletes the events that have no delivery left and are not queued; returns how many.
 * Two statements: the second looks again with a snapshot taken after the first
 * locked them (see the top of the file).
 */
static int
delete_events(Datum tenants, Datum ids)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2] = {tenants, ids};
	Oid			tid_types[1] = {TIDARRAYOID};
	Datum		tid_args[1];

#define NOTHING_LEFT \
	"NOT EXISTS (SELECT FROM integration.deliveries d" \
	"             WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id)" \
	" AND NOT EXISTS (SELECT FROM integration.webhook_event_queue q" \
	"                  WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id)"
	KeptPlanGet(&lock_events_plan,
				"SELECT e.ctid FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(tenant_id, id)"
				" CROSS JOIN LATERAL (SELECT e.ctid FROM integration.webhook_events e"
				"                      WHERE e.tenant_id = k.tenant_id AND e.id = k.id AND " NOTHING_LEFT
				"                        FOR UPDATE SKIP LOCKED) e",
				2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(lock_events_plan.plan, args, false, SPI_OK_SELECT, "locking events to expire");
	if (SPI_processed == 0)
		return 0;
	tid_args[0] = ResultTids(1);
	KeptPlanGet(&delete_events_plan,
				"DELETE FROM integration.webhook_events e WHERE e.ctid = ANY ($1) AND " NOTHING_LEFT,
				1, tid_types, CURSOR_OPT_GENERIC_PLAN);
#undef NOTHING_LEFT
	RunPlan(delete_events_plan.plan, tid_args, false, SPI_OK_DELETE, "deleting expired events");
	return (int) SPI_processed;
}

/* Deletes up to limit expired log rows, oldest first; returns how many. */
static int
delete_logs(const RetentionCutoffs *c, int limit)
{
	Oid			types[2] = {TIMESTAMPTZOID, INT8OID};
	Datum		args[2] = {TimestampTzGetDatum(c->logs), Int64GetDatum(limit)};

	KeptPlanGet(&logs_plan,
				"WITH doomed AS ("
				"  SELECT l.ctid FROM integration.integration_logs l"
				"   WHERE l.created_at < $1 AND l.created_at < 'infinity'"	/* integration_logs_expiry_idx */
				"   ORDER BY l.created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
				" DELETE FROM integration.integration_logs l"
				"  WHERE l.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed))",
				2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(logs_plan.plan, args, false, SPI_OK_DELETE, "deleting expired log rows");
	return (int) SPI_processed;
}

/*
 * Windows of one of retention_connectors.c's walks, until the walk is done or the
 * batch's rows are spent.  Returns false when the batch is to end early (see
 * run_batch()).
 */
static bool
walk_connector_table(RetentionPass *p, ExpiryWalk *w,
					 RetentionWindowFn window,
					 const RetentionCutoffs *c, int *budget, int *looked, int64 *removed)
{
	while (!w->done && *budget > 0 && *looked < BATCH_ROWS)
	{
		int			n;
		int			deleted = window(w, c, Min(EVENT_WINDOW, *budget), &n);

		*looked += n;
		*budget -= deleted;
		*removed += deleted;
		if (!w->done && p->yield && MyLatch->is_set)
			return false;
	}
	return true;
}

/*
 * One batch of pass p, up to BATCH_ROWS rows deleted and rows looked at: windows of
 * events, each the expired deliveries and then the events left without any; when the
 * events are done, windows of inbound events, of connector calls and of deleted
 * connectors' synced records (retention_connectors.c); and then log rows.  In the
 * worker, a batch ends after the window during which the worker's latch was set.  Must run with SPI connected.
 * Returns true when the pass is complete.
 */
static bool
run_batch(RetentionPass *p, const RetentionCutoffs *c)
{
	int			budget = BATCH_ROWS;
	int			looked = 0;

	while (!p->events_done && budget > 0 && looked < BATCH_ROWS)
	{
		Datum		tenants;
		Datum		ids;
		int			nevents;
		char	   *last_tenant = NULL;
		TimestampTz last_at = 0;
		int64		last_id = 0;
		int			n;

		/* The next pass looks again from the first window's cutoff on. */
		if (TIMESTAMP_IS_NOBEGIN(p->first_cutoff))
			p->first_cutoff = c->events;
		n = read_window(p, c, &tenants, &ids, &nevents, &last_tenant, &last_at, &last_id);
		looked += n;
		if (nevents > 0)
		{
			int			deleted = delete_deliveries(tenants, ids, c, budget);

			p->removed.deliveries += deleted;
			budget -= deleted;
			/* Perhaps more in this window: the same window again next time. */
			if (budget == 0)
				return false;
			deleted = delete_events(tenants, ids);
			p->removed.events += deleted;
			budget -= deleted;
		}
		if (n > 0)
			set_event_place(p, last_tenant, last_at, last_id);
		if (n < EVENT_WINDOW)
			p->events_done = true;

		/*
		 * A commit woke the worker: its deliveries first, after one window
		 * rather than a whole batch (the loop resets the latch).
		 */
		else if (p->yield && MyLatch->is_set)
			return false;
	}
	if (!p->events_done)
		return false;
	if (!walk_connector_table(p, &p->inbound, RetentionInboundWindow, c, &budget, &looked,
							  &p->removed.inbound_events) ||
		!walk_connector_table(p, &p->calls, RetentionCallsWindow, c, &budget, &looked,
							  &p->removed.connector_calls) ||
		!walk_connector_table(p, &p->records, RetentionRecordsWindow, c, &budget, &looked,
							  &p->removed.external_records))
		return false;
	if (p->inbound.done && p->calls.done && p->records.done && !p->logs_done && budget > 0)
	{
		int			deleted = delete_logs(c, budget);

		p->removed.logs += deleted;
		if (deleted < budget)
			p->logs_done = true;
	}
	return p->events_done && p->inbound.done && p->calls.done && p->records.done &&
		p->logs_done;
}

/* ------------------------------------------------------------------------------------
 * integration.purge_expired()
 * ------------------------------------------------------------------------------------ */

/* Raises unless the current user owns the table (superusers own everything). */
static void
check_owner(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "table integration.%s does not exist", name);
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s to purge expired rows", name),
				 errdetail("Expired rows are removed for every tenant at once."),
				 errhint("Run integration.purge_expired() as a superuser or as the owner of the extension's tables.")));
}

PG_FUNCTION_INFO_V1(integration_purge_expired);

/*
 * purge_expired(): one whole pass from the oldest event, in the caller's transaction,
 * with the periods (and the default dedupe window) in force in the session; returns
 * how many deliveries, events, log rows, inbound events, connector calls and synced
 * records it removed.  As the tables' owner, row-level security does not apply.
 */
Datum
integration_purge_expired(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	Oid			save_userid;
	int			save_sec_context;
	RetentionCutoffs c;
	RetentionPass p;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "purge_expired() must return a record");
	check_owner(nsp, "deliveries");
	check_owner(nsp, "webhook_events");
	check_owner(nsp, "integration_logs");
	check_owner(nsp, "inbound_events");
	check_owner(nsp, "connector_calls");
	check_owner(nsp, "external_records");

	compute_cutoffs(&c, GetCurrentTransactionStartTimestamp());
	memset(&p, 0, sizeof(p));
	start_pass(&p, true, CurrentMemoryContext);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(save_userid, save_sec_context | SECURITY_NOFORCE_RLS);
	while (!run_batch(&p, &c))
		CHECK_FOR_INTERRUPTS();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();

	values[0] = Int64GetDatum(p.removed.deliveries);
	values[1] = Int64GetDatum(p.removed.events);
	values[2] = Int64GetDatum(p.removed.logs);
	values[3] = Int64GetDatum(p.removed.inbound_events);
	values[4] = Int64GetDatum(p.removed.connector_calls);
	values[5] = Int64GetDatum(p.removed.external_records);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ------------------------------------------------------------------------------------
 * The worker's periodic task
 * ------------------------------------------------------------------------------------ */

typedef struct RetentionTask
{
	WorkerServices *svc;
	RetentionPass pass;
	bool		in_pass;
	bool		extension_gone;
	TimestampTz pass_started;
	int			batches;		/* of the pass running */
	TimestampTz next_pass_at;
	TimestampTz next_batch_at;	/* in a pass */
	TimestampTz restart_at;		/* from then on, passes walk from the oldest
								 * event */
} RetentionTask;

static void *
RetentionCreate(WorkerServices *svc)
{
	RetentionTask *t = MemoryContextAllocZero(TopMemoryContext, sizeof(RetentionTask));

	t->svc = svc;
	/* The first pass soon after start, once the deliveries are under way. */
	t->next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  Min(integration_retention_interval_s, 10) * 1000);
	return t;
}

/* How long passes go on from where the last one ended before one starts over. */
static int64
restart_every_us(void)
{
	int			shortest = INT_MAX;

	if (integration_retention_delivered_s > 0)
		shortest = Min(shortest, integration_retention_delivered_s);
	if (integration_retention_failed_s > 0)
		shortest = Min(shortest, integration_retention_failed_s);
	return Max((int64) integration_retention_interval_s, (int64) shortest / 8) * USECS_PER_SEC;
}

static void
batch_step(void *arg)
{
	RetentionTask *t = arg;
	RetentionCutoffs c;

	/*
	 * Dropped, or dropped and created again: the delivery job exits the
	 * worker.
	 */
	if (!StoreExtensionPresent())
	{
		t->extension_gone = true;
		return;
	}

	/*
	 * Not worth a WAL flush: a batch lost to a crash is deleted again by the
	 * next pass.
	 */
	StoreCommitWithoutFlush();
	compute_cutoffs(&c, GetCurrentTransactionStartTimestamp());
	if (run_batch(&t->pass, &c))
		t->in_pass = false;
}

static void
end_pass(RetentionTask *t, TimestampTz now)
{
	RetentionRemoved *r = &t->pass.removed;

	ereport(DEBUG1,
			(errmsg("integration worker: removed " INT64_FORMAT " deliveries, " INT64_FORMAT " events, " INT64_FORMAT " log rows, " INT64_FORMAT " inbound events, " INT64_FORMAT " connector calls and " INT64_FORMAT " synced records past their retention in %d transactions, %ld ms",
					r->deliveries, r->events, r->logs, r->inbound_events, r->connector_calls,
					r->external_records, t->batches,
					(long) ((now - t->pass_started) / 1000))));
	t->in_pass = false;
	t->next_pass_at = Max(TimestampTzPlusMilliseconds(t->pass_started,
													  integration_retention_interval_s * 1000),
						  now);
}

/*
 * WorkerKindOps.step: at most one batch, when a pass is due or under way and the
 * deliveries have had their share of the loop since the last batch.
 */
static bool
retention_step(void *state, TimestampTz now)
{
	RetentionTask *t = state;
	TimestampTz started;
	TimestampTz ended;
	bool		busy;
	int			sqlerrcode;

	if (!t->in_pass)
	{
		if (now < t->next_pass_at)
			return false;
		t->in_pass = true;
		t->pass_started = now;
		t->batches = 0;
		t->next_batch_at = now;
		start_pass(&t->pass, now >= t->restart_at, TopMemoryContext);
		if (now >= t->restart_at)
			t->restart_at = now + restart_every_us();
		t->pass.yield = true;
		if (t->pass.events_done && t->pass.inbound.done && t->pass.calls.done &&
			t->pass.logs_done)
		{
			end_pass(t, now);	/* everything is kept forever */
			return false;
		}
	}
	if (now < t->next_batch_at)
		return false;

	busy = SchedulerInFlight(t->svc->scheduler) > 0 || SchedulerQueued(t->svc->scheduler) > 0;
	WorkerSlotSetActivity(WORKER_PURGING);
	started = GetCurrentTimestamp();
	if (!WorkerRunTransaction(batch_step, t, "removing expired rows", &sqlerrcode, NULL))
	{
		/* Tried again by a pass that starts over, a little later. */
		forget_plans();
		t->restart_at = 0;
		t->pass_started = started;
		end_pass(t, started);
		t->next_pass_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  Min(integration_retention_interval_s, FAILED_PASS_RETRY_S) * 1000);
		return false;
	}
	ended = GetCurrentTimestamp();
	t->batches++;
	if (t->extension_gone)
	{
		/* The delivery job sees it too, and exits the worker. */
		t->extension_gone = false;
		t->in_pass = false;
	}
	if (!t->in_pass)
		end_pass(t, ended);
	else
		t->next_batch_at = ended + (busy ? 3 : 2) * (ended - started);
	return false;
}

/* WorkerKindOps.next_wake: the next batch of a pass, or the next pass. */
static TimestampTz
retention_next_wake(void *state, TimestampTz now)
{
	RetentionTask *t = state;

	return t->in_pass ? t->next_batch_at : t->next_pass_at;
}

/* WorkerKindOps.reload: new periods apply from the oldest event at the next pass. */
static void
retention_reload(void *state)
{
	RetentionTask *t = state;
	TimestampTz soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   integration_retention_interval_s * 1000);

	t->restart_at = 0;
	if (!t->in_pass)
		t->next_pass_at = Min(t->next_pass_at, soon);
}

const WorkerKindOps retention_ops = {
	.kind = NULL,
	.wakes = 0,					/* it runs on its own schedule */
	.sends = false,
	.create = RetentionCreate,
	.startup = NULL,
	.woken = NULL,
	.reload = retention_reload,
	.prepare = NULL,
	.step = retention_step,
	.finished = NULL,
	.next_wake = retention_next_wake,
};
