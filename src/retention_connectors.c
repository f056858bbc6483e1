/*
 * retention_connectors.c
 *		Retention of the connector framework's tables: handled inbound events,
 *		finished connector calls and the synced records of deleted connectors expire.
 *		retention.c schedules the passes and runs these walks after its own, in the
 *		same batches (its header explains the
 *		schedule, the batches and why rows are deleted rather than partitions dropped).
 *
 * What expires.  An inbound event that is processed or skipped, integration.
 * retention_delivered after it was handled (processed_at); a failed one,
 * integration.retention_failed after it failed (processed_at too: the handler worker
 * sets it whenever an event leaves pending, and clears it when reprocess_inbound()
 * makes one pending again, so only a row written by hand can be finished without it;
 * such a row counts from received_at).  A succeeded connector call integration.
 * retention_delivered after it finished (finished_at), a failed one integration.
 * retention_failed after it failed.  A pending event and a pending or sending call
 * never expire.  A call's completion event (external id call:<id>) is an inbound
 * event like any other, and goes by its own times, before or after its call.
 *
 * Deduplication comes first.  An inbound event is also the record of its external id:
 * receive_webhook() answers a later receipt of the id with "duplicate" while the row
 * is live (not dedupe_expired) and was received within its connector's dedupe window
 * (connectors.dedupe_window, else integration.inbound_dedupe_window).  Were the row
 * removed inside that window, a platform's retry would be stored again and handed to
 * the handlers a second time.  So a row that still counts is never removed, whatever
 * its period: it goes once it is dedupe_expired (a later receipt replaced it) or was
 * received longer than its connector's window ago.  The window is read from the
 * connector at each pass (a window made longer keeps rows longer from then on; rows
 * already removed do not come back), and where the connector has none, from
 * integration.inbound_dedupe_window as the worker has it, i.e. as the server and the
 * database set it: a longer window that a session or role SETs for its own
 * receive_webhook() calls is not seen here, which the documentation says (give the
 * connector its dedupe_window instead).  The two sides agree on time as well:
 * receive_webhook() judges the window by the clock when it looks (connector_inbound.c),
 * and a row removed here was older than the window at the start of this transaction,
 * before its commit: a receipt that no longer finds the row would have judged it out
 * of its window anyway.
 *
 * Idempotency keys.  A call's key is unique per connector among the calls kept, and
 * call_connector() answers a repeated key with the first call.  Once that call has
 * expired, its key is free: the same key queues a new call, which is sent again.
 * Platforms keep keys for far shorter (Stripe 24 hours), so the periods, 7 and 30 days
 * by default, are well past the point where a key could protect anything.
 *
 * Finding rows.  Each table has an index of its finished rows by when they finished,
 * inbound_events_expiry_idx (COALESCE(processed_at, received_at), id) WHERE status <>
 * 'pending' and connector_calls_expiry_idx (finished_at, id) WHERE finished_at IS NOT
 * NULL, and the walk goes through it oldest first, a window of rows at a time (each
 * window read by a statement of its own, RetentionCallsWindow()), keeping its
 * place across passes like the walk of events in retention.c: rows kept back (failed
 * ones, kept longer; events still inside their dedupe window; rows locked) are looked
 * at again when a pass starts over from the oldest.  Neither index
 * costs a HOT update: the worker's write of an outcome changes status, next_attempt_at
 * and (calls) lease_expires_at, which the claims' partial indexes already cover, so
 * that write was never HOT; each index adds one entry per finished row.
 *
 * The claims never meet what is removed: the handler worker's claim walks
 * inbound_events_due_idx (next_attempt_at IS NOT NULL: pending events only) and checks
 * the order of an object's events in inbound_events_pending_idx (status = 'pending'),
 * and the calls' claim and reconciliation walk connector_calls_pending_idx and
 * connector_calls_sending_idx (pending, sending); none holds a finished row, so none
 * holds a dead entry of a removed one.  What does step over dead entries until a
 * vacuum: a receipt of an expired row's external id (one entry of
 * inbound_events_dedupe_idx), a call_connector() with an expired call's key (one
 * entry of the key's unique index), and the tenants' list queries and backlog views.
 *
 * Synced records of deleted connectors.  delete_connector() is a soft delete, and a
 * connector's integration.external_records (the latest version of every record it
 * pulled or received, as many as the platform holds) would otherwise stay forever.
 * They go integration.retention_delivered after the delete, as the events they became
 * go after being handled, which leaves the tenant that long to read them.  No
 * deduplication is lost: the records are the gate between pulled pages and webhooks,
 * and a deleted connector has neither (receive_webhook() does not find it, its streams
 * went with the delete, sql/sync.sql, and a page in flight then is not processed); the
 * inbound events' own deduplication is theirs, above.  A live connector's records never
 * expire here.  The walk goes through the deleted connectors by connectors_deleted_idx
 * (deleted_at, id), oldest first, removing a window of one connector's records at a
 * time through their primary key's (tenant_id, connector_id) prefix, and moves past a
 * connector once a window of its records came back short.  A connector counts as one
 * row looked at when none of its records is left, so a batch steps past at most its
 * rows' worth of them.  sync_streams rows are not walked: they go at the delete, in
 * its transaction (a few rows, and their going is what stops a run).
 *
 * Locks.  As in retention.c: a window is read without locks, its expired rows are
 * then locked FOR UPDATE SKIP LOCKED with their conditions checked again on the row
 * as it is when locked (a reprocessed event is pending again, and stays), and
 * deleted by ctid in the statement that locked them.  A row someone holds is left for
 * a later pass; nothing waits.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

#include "connector.h"
#include "retention_connectors.h"
#include "spi_plan.h"


/*
 * Kept, and made again as the tables grow (KeptPlanGet(), spi_plan.c): planned on
 * empty tables, each delete found its window's rows by ctid with a sequential scan
 * of the whole table (10,524 pages a window of 100 inbound events at 200,000, and
 * 103,756 for calls, whose lock walked connector_calls_created_idx too; 1,100 and
 * 800 planned again).
 */
static KeptPlan inbound_window_plan;
static KeptPlan inbound_delete_plan;
static KeptPlan calls_window_plan;
static KeptPlan calls_delete_plan;
static KeptPlan records_plan;

void
RetentionConnectorsForgetPlans(void)
{
	SPIPlanPtr *plans[] = {&inbound_window_plan.plan, &inbound_delete_plan.plan, &calls_window_plan.plan, &calls_delete_plan.plan, &records_plan.plan};

	ForgetPlans(plans, lengthof(plans));
}

/*
 * The window parameters both walks by an expiry index share: $1, $2 the walk's place;
 * $3 the walk's end (rows finished since may not have expired under any period); $4
 * the window's size; $5, $6 the cutoffs of retention_delivered and retention_failed.
 */
static void
window_args(Datum *args, const ExpiryWalk *w, const RetentionCutoffs *c, int limit)
{
	args[0] = TimestampTzGetDatum(w->after_at);
	args[1] = Int64GetDatum(w->after_id);
	args[2] = TimestampTzGetDatum(c->events);
	args[3] = Int64GetDatum(limit);
	args[4] = TimestampTzGetDatum(c->delivered);
	args[5] = TimestampTzGetDatum(c->failed);
}

/*
 * Reads a window of finished rows by its statement (window_args()'s parameters; its
 * columns tenant_id, id, the row's time, whether it has expired) and moves the walk past
 * it; returns how many of its rows have expired, with their keys as arrays in args[0]
 * and args[1] (copies: the window's rows are freed).
 */
static int
read_window(KeptPlan *slot, const char *sql, ExpiryWalk *w, const RetentionCutoffs *c,
			int limit, int *looked, Datum *args)
{
	Oid			types[6] = {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, INT8OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID};
	TupleDesc	desc;
	bool		isnull;
	Datum	   *tenants;
	Datum	   *ids;
	int			n;
	int			ndoomed = 0;

	window_args(args, w, c, limit);
	RunPlan(KeptPlanGet(slot, sql, 6, types, CURSOR_OPT_GENERIC_PLAN | CURSOR_OPT_FAST_PLAN), args, false, SPI_OK_SELECT, "reading expired connector rows");
	n = (int) SPI_processed;
	desc = SPI_tuptable->tupdesc;
	*looked = n;
	if (n > 0)
	{
		HeapTuple	last = SPI_tuptable->vals[n - 1];

		w->after_at = DatumGetTimestampTz(SPI_getbinval(last, desc, 3, &isnull));
		w->after_id = DatumGetInt64(SPI_getbinval(last, desc, 2, &isnull));
	}
	if (n < limit)
		w->done = true;
	tenants = palloc(sizeof(Datum) * Max(n, 1));
	ids = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		Datum		expired = SPI_getbinval(row, desc, 4, &isnull);

		if (isnull || !DatumGetBool(expired))
			continue;
		tenants[ndoomed] = SPI_getbinval(row, desc, 1, &isnull);
		ids[ndoomed] = SPI_getbinval(row, desc, 2, &isnull);
		ndoomed++;
	}
	if (ndoomed > 0)
	{
		args[0] = ArrayParam(tenants, NULL, ndoomed, TEXTOID);
		args[1] = ArrayParam(ids, NULL, ndoomed, INT8OID);
	}
	SPI_freetuptable(SPI_tuptable);
	return ndoomed;
}

/* The count a delete statement returns. */
static int
deleted_count(SPIPlanPtr plan, Datum *args, const char *what)
{
	bool		isnull;

	RunPlan(plan, args, false, SPI_OK_SELECT, what);
	if (SPI_processed != 1)
		elog(ERROR, "%s returned " UINT64_FORMAT " rows", what, SPI_processed);
	return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull));
}

/*
 * The inbound events' window, by inbound_events_expiry_idx (its predicate and
 * expression spelled as in the index), read and deleted as the calls' window is (see
 * RetentionCallsWindow() for why two statements): the window for its first rows, then
 * its expired rows each by its primary key, locked, and deleted when, as locked, they
 * are still expired and past their connector's dedupe window.
 */
int
RetentionInboundWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit, int *looked)
{
	Oid			types[6] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[6];

	if (read_window(&inbound_window_plan,
					"SELECT e.tenant_id, e.id, COALESCE(e.processed_at, e.received_at),"
					"       (e.status IN ('processed', 'skipped')"
					"        AND COALESCE(e.processed_at, e.received_at) < $5)"
					"       OR (e.status = 'failed' AND COALESCE(e.processed_at, e.received_at) < $6)"
					"  FROM integration.inbound_events e"
					" WHERE e.status <> 'pending'"
					"   AND (COALESCE(e.processed_at, e.received_at), e.id) > ($1, $2)"
					"   AND COALESCE(e.processed_at, e.received_at) < $3"
					" ORDER BY COALESCE(e.processed_at, e.received_at), e.id LIMIT $4",
					w, c, limit, looked, args) == 0)
		return 0;
	args[2] = TimestampTzGetDatum(c->delivered);
	args[3] = TimestampTzGetDatum(c->failed);
	args[4] = TimestampTzGetDatum(c->now);
	args[5] = TimestampTzGetDatum(c->now - (TimestampTz) integration_inbound_dedupe_window_s * USECS_PER_SEC);
	KeptPlanGet(&inbound_delete_plan,
				"WITH locked AS MATERIALIZED ("
				"  SELECT x.ctid, x.tenant_id, x.connector_id, x.status, x.processed_at,"
				"         x.received_at, x.dedupe_expired"
				"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS w(tenant_id, id)"
				"   CROSS JOIN LATERAL ("
				"     SELECT e.ctid, e.tenant_id, e.connector_id, e.status, e.processed_at,"
				"            e.received_at, e.dedupe_expired"
				"       FROM integration.inbound_events e"
				"      WHERE e.tenant_id = w.tenant_id AND e.id = w.id"
				"        FOR UPDATE SKIP LOCKED) x),"
				" gone AS (DELETE FROM integration.inbound_events x"
				"           WHERE x.ctid = ANY (ARRAY("
				"             SELECT l.ctid FROM locked l"
				"               JOIN integration.connectors k"
				"                 ON k.tenant_id = l.tenant_id AND k.id = l.connector_id"
				"              WHERE ((l.status IN ('processed', 'skipped')"
				"                      AND COALESCE(l.processed_at, l.received_at) < $3)"
				"                     OR (l.status = 'failed'"
				"                         AND COALESCE(l.processed_at, l.received_at) < $4))"
				"                AND (l.dedupe_expired"
				"                     OR l.received_at < CASE WHEN k.dedupe_window IS NULL THEN $6"
				"                                             ELSE $5 - k.dedupe_window END)))"
				"          RETURNING 1)"
				" SELECT count(*) FROM gone",
				6, types, CURSOR_OPT_GENERIC_PLAN);
	return deleted_count(inbound_delete_plan.plan, args, "deleting expired inbound events");
}

/*
 * The calls' window, read by connector_calls_expiry_idx, oldest first, by a statement
 * of its own with a generic plan for its first rows; then its expired rows, each by
 * its primary key, locked and deleted by a second statement.
 *
 * As a CTE of one statement (the form both windows had), the window was planned for
 * all its rows, which FAST_PLAN does not change (a CTE's plan is its cheapest in
 * total), and its plan depended on statistics: where the last ANALYZE saw no finished
 * call (a new table, or a backlog finished since), the window, and each row's lookup,
 * estimate one row.  The planner then read the window by a bitmap scan of the whole
 * walk ahead plus a sort, and looked each row up by a scan of all of
 * connector_calls_expiry_idx (its id is the index's second column) instead of the
 * primary key: with 100,000 expired calls a window of 100 read all 100,000 and took
 * 179 ms, and deleting a backlog was quadratic.  Now 100 rows, 0.7 ms and 0.8 ms for
 * the two statements (auto_explain; test/sql/worker_plans.sql shows both plans).  For its
 * first rows the sort costs all of its input before its first row, the ordered scan
 * almost nothing: on those statistics the sort's plan costs 2.8 times more.  That is
 * a comparison of costs, as for the claim's head in delivery_claim.c, not a guarantee.
 * The lookup names no finished_at, so no index of finished rows is implied: a LATERAL
 * probe by the primary key, or a read of the whole table at its whole cost.  Whether
 * a row is deleted is asked of it as locked (the CTE is not inlined).
 */
int
RetentionCallsWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit, int *looked)
{
	Oid			delete_types[4] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[6];

	if (read_window(&calls_window_plan,
					"SELECT k.tenant_id, k.id, k.finished_at,"
					"       (k.status = 'succeeded' AND k.finished_at < $5)"
					"       OR (k.status = 'failed' AND k.finished_at < $6)"
					"  FROM integration.connector_calls k"
					" WHERE k.finished_at IS NOT NULL"
					"   AND (k.finished_at, k.id) > ($1, $2) AND k.finished_at < $3"
					" ORDER BY k.finished_at, k.id LIMIT $4",
					w, c, limit, looked, args) == 0)
		return 0;
	args[2] = TimestampTzGetDatum(c->delivered);
	args[3] = TimestampTzGetDatum(c->failed);
	KeptPlanGet(&calls_delete_plan,
				"WITH locked AS MATERIALIZED ("
				"  SELECT x.ctid, x.status, x.finished_at"
				"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS w(tenant_id, id)"
				"   CROSS JOIN LATERAL ("
				"     SELECT k.ctid, k.status, k.finished_at FROM integration.connector_calls k"
				"      WHERE k.tenant_id = w.tenant_id AND k.id = w.id"
				"        FOR UPDATE SKIP LOCKED) x),"
				" gone AS (DELETE FROM integration.connector_calls x"
				"           WHERE x.ctid = ANY (ARRAY("
				"             SELECT l.ctid FROM locked l"
				"              WHERE (l.status = 'succeeded' AND l.finished_at < $3)"
				"                 OR (l.status = 'failed' AND l.finished_at < $4)))"
				"          RETURNING 1)"
				" SELECT count(*) FROM gone",
				4, delete_types, CURSOR_OPT_GENERIC_PLAN);
	return deleted_count(calls_delete_plan.plan, args, "deleting expired connector calls");
}

int
RetentionRecordsWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit, int *looked)
{
	Oid			types[4] = {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		args[4];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	int			locked;
	int			deleted;

	args[0] = TimestampTzGetDatum(w->after_at);
	args[1] = Int64GetDatum(w->after_id);
	args[2] = TimestampTzGetDatum(c->delivered);
	args[3] = Int64GetDatum(limit);

	/*
	 * The next connector deleted before the cutoff by connectors_deleted_idx
	 * (its predicate spelled as in the index); a window of its records by
	 * their primary key, probed with the connector's key (LATERAL), which
	 * only an index can do without reading the table.  As a join of k and the
	 * records with the LIMIT outside, the plan depended on statistics: where
	 * the last ANALYZE saw no record, the planner joined k to a full scan of
	 * external_records_pkey with the connector as a join filter, and 500
	 * records of a deleted connector behind a live connector's 300,000 in key
	 * order read 300,500 rows, 135 ms (502 ms in the plan audit's run);
	 * probed, 4 ms for the window alone (test/sql/worker_plans.sql shows both
	 * plans).
	 */
	KeptPlanGet(&records_plan,
				"WITH k AS MATERIALIZED ("
				"  SELECT c.tenant_id, c.id, c.deleted_at FROM integration.connectors c"
				"   WHERE c.deleted_at IS NOT NULL"
				"     AND (c.deleted_at, c.id) > ($1, $2) AND c.deleted_at < $3"
				"   ORDER BY c.deleted_at, c.id LIMIT 1),"
				" doomed AS ("
				"  SELECT d.ctid FROM k CROSS JOIN LATERAL ("
				"    SELECT r.ctid FROM integration.external_records r"
				"     WHERE r.tenant_id = k.tenant_id AND r.connector_id = k.id"
				"     LIMIT $4 FOR UPDATE SKIP LOCKED) d),"
				" gone AS (DELETE FROM integration.external_records x"
				"           WHERE x.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed)) RETURNING 1)"
				" SELECT (SELECT count(*) FROM doomed), (SELECT k.deleted_at FROM k),"
				"        (SELECT k.id FROM k), (SELECT count(*) FROM gone)",
				4, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(records_plan.plan, args, false, SPI_OK_SELECT, "deleting the synced records of deleted connectors");
	if (SPI_processed != 1)
		elog(ERROR, "a retention window returned " UINT64_FORMAT " rows", SPI_processed);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	locked = (int) DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	deleted = (int) DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	(void) SPI_getbinval(row, desc, 3, &isnull);
	if (isnull)
	{
		/* No deleted connector left before the cutoff. */
		*looked = 0;
		w->done = true;
		return deleted;
	}
	*looked = Max(locked, 1);

	/*
	 * A short window: this connector is done (rows held by others wait a
	 * pass).
	 */
	if (locked < limit)
	{
		w->after_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		w->after_id = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	}
	return deleted;
}
