/*
 * call_store.c
 *		The worker's statements on integration.connector_calls.
 *
 * Claims are reads.  A claim takes due calls per connector (at most per_connector of
 * each, in the order they come due) and writes nothing: the worker holds them in
 * memory, queued in its scheduler, and a crash loses nothing.  It walks the connectors
 * that may be called (active, or deleted: their calls fail) with one probe of
 * connector_calls_pending_idx each, so no connector's backlog keeps another's calls
 * from being claimed, and a paused connector's calls are not looked at.
 *
 * An attempt begins when the scheduler lets the call start: the row is locked,
 * 'sending' with a lease, its attempts counted (CallStoreBeginAttempt()), and the
 * transaction commits before the request goes out.  So a call that is 'sending' when
 * the worker dies may have reached the platform; the next worker takes it back
 * (CallStoreReconcile()) and sends it again with the same idempotency key.
 *
 * An outcome is recorded only over the attempt it belongs to (the row's attempts
 * still those it began with); a call that ends writes its completion event in the
 * same statement, an integration.inbound_events row <kind>.call.succeeded or
 * <kind>.call.failed that the inbound handlers take, its payload made by
 * integration._call_completion_payload() as cancel_connector_call()'s is (the table's
 * inbound_events_written trigger wakes the handler worker at commit).  A page of a sync
 * run (sync_stream set) writes none: the sync_page_ended trigger (sql/sync.sql) turns
 * its records into the events, in the same statement, and queues the next page's call,
 * whose id the statement hands back so that the worker may begin it at once
 * (call_job.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "call_store.h"
#include "connector_request.h"
#include "spi_plan.h"
#include "table_statistics.h"

/*
 * The statements' plans, kept and made again once a table they read has more than
 * doubled (KeptPlanGet(), spi_plan.c).  Made while connector_calls was nearly empty and
 * never analyzed, as a new worker makes them, and kept until an ANALYZE, they read
 * every call of the tenant for each call at 200,000 calls: the record of an outcome
 * walked connector_calls_created_idx (1,019 pages a call, against 37 planned again),
 * the take-back of a dead worker's attempts the same for each of them (10,076 pages
 * for 10 calls, against 224); test/t/045_connector_plans.pl.
 */
static KeptPlan claim_plan;
static KeptPlan probe_plan;
static KeptPlan next_due_plan;
static KeptPlan lock_plan;
static KeptPlan begin_plan;
static KeptPlan record_plan;
static KeptPlan reconcile_plan;

/*
 * The tables that a large transaction fills under the calls' statements (see
 * table_statistics.c): connector_calls, which a bulk call_connector() fills.  On
 * statistics taken while 5,000 calls were being queued in one transaction, the record
 * of an outcome found its call through connector_calls_idempotency_key on tenant_id
 * alone, reading every call of the tenant (5,053 buffers, against 4 through the
 * primary key once analyzed), and the lock and begin of a call walked
 * connector_calls_pending_idx.  A sync run's pages are calls too; its records
 * (external_records) have no index but their primary key, by which every statement
 * reaches them, so no plan of theirs depends on the statistics.
 */
static WatchedTable watched_tables[] =
{
	{
		"connector_calls", InvalidBlockNumber
	}
};
static TimestampTz watched_at = 0;

/*
 * Analyzes the calls' tables whose statistics look stale, in a transaction of its
 * own, outside the cycle's (table_statistics.c).
 */
void
CallStoreAnalyzeIfStale(void)
{
	AnalyzeStaleTables(watched_tables, lengthof(watched_tables), &watched_at,
					   "analyzing connector_calls");
}

/* Fills *ref from columns (tenant_id, id, connector_id, rate, burst) of row. */
static void
ref_from_row(HeapTuple row, TupleDesc desc, CallRef *ref)
{
	bool		isnull;

	memset(ref, 0, sizeof(CallRef));
	strlcpy(ref->tenant_id, SPI_getvalue(row, desc, 1), sizeof(ref->tenant_id));
	ref->id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	ref->connector_id = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	ref->rate_limit = DatumGetInt32(SPI_getbinval(row, desc, 4, &isnull));
	ref->rate_limit_burst = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
}

/*
 * Due calls, into out (room for req->limit), oldest due first; sets req->next_due to
 * when the first call left pending comes due.  Returns how many.  Not read-only: it
 * must see what the transaction wrote before (calls taken back, say).
 */
int
CallStoreClaim(CallClaimRequest *req, CallRef *out)
{
	Oid			types[5] = {TIMESTAMPTZOID, INT8ARRAYOID, INT4OID, INT8ARRAYOID, INT4OID};
	Oid			next_due_types[2] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		args[5];
	int64	   *left_out;
	int			n;
	bool		isnull;
	Datum		d;

	args[0] = TimestampTzGetDatum(req->now);
	args[1] = Int8ArrayParam(req->held, req->nheld);
	args[2] = Int32GetDatum(req->per_connector);
	args[3] = Int8ArrayParam(req->full, req->nfull);
	args[4] = Int32GetDatum(req->limit);
	RunPlan(KeptPlanGet(&claim_plan,
						"SELECT k.tenant_id, k.id, k.connector_id, " CONNECTOR_SETTING_RATE("rate_limit") ","
						"       " CONNECTOR_SETTING_RATE("rate_limit_burst")
						"  FROM integration.connectors c"
						" CROSS JOIN LATERAL ("
						"   SELECT k.tenant_id, k.id, k.connector_id, k.next_attempt_at"
						"     FROM integration.connector_calls k"
						"    WHERE k.tenant_id OPERATOR(pg_catalog.=) c.tenant_id"
						"      AND k.connector_id OPERATOR(pg_catalog.=) c.id"
						"      AND k.status OPERATOR(pg_catalog.=) 'pending'"
						"      AND k.next_attempt_at OPERATOR(pg_catalog.<=) $1"
						"      AND k.id OPERATOR(pg_catalog.<>) ALL ($2)"
						"    ORDER BY k.next_attempt_at, k.id"
						"    LIMIT $3) k"
						" WHERE (c.is_active OR c.deleted_at IS NOT NULL)"
						"   AND c.id OPERATOR(pg_catalog.<>) ALL ($4)"
						" ORDER BY k.next_attempt_at, k.id"
						" LIMIT $5",
						5, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "claiming connector calls");
	n = (int) SPI_processed;
	for (int i = 0; i < n; i++)
		ref_from_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &out[i]);

	/* What is left pending, the calls just claimed and the held ones apart. */
	left_out = palloc(sizeof(int64) * (req->nheld + n + 1));
	memcpy(left_out, req->held, sizeof(int64) * req->nheld);
	for (int i = 0; i < n; i++)
		left_out[req->nheld + i] = out[i].id;
	args[0] = Int8ArrayParam(left_out, req->nheld + n);
	args[1] = args[3];
	RunPlan(KeptPlanGet(&next_due_plan,
						"SELECT pg_catalog.min(n.next_attempt_at)"
						"  FROM integration.connectors c"
						" CROSS JOIN LATERAL ("
						"   SELECT k.next_attempt_at FROM integration.connector_calls k"
						"    WHERE k.tenant_id OPERATOR(pg_catalog.=) c.tenant_id"
						"      AND k.connector_id OPERATOR(pg_catalog.=) c.id"
						"      AND k.status OPERATOR(pg_catalog.=) 'pending'"
						"      AND k.id OPERATOR(pg_catalog.<>) ALL ($1)"
						"    ORDER BY k.next_attempt_at LIMIT 1) n"
						" WHERE (c.is_active OR c.deleted_at IS NOT NULL)"
						"   AND c.id OPERATOR(pg_catalog.<>) ALL ($2)",
						2, next_due_types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "looking for the next due connector call");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	req->next_due = isnull ? 0 : DatumGetTimestampTz(d);
	return n;
}

/*
 * The call to probe a connector's half-open circuit with: its first due call that is
 * not held, into *out.  None due: false, with *next_at when its first pending call
 * comes due (0: none is pending).
 */
bool
CallStoreClaimProbe(const char *tenant_id, int64 connector_id, const int64 *held, int nheld,
					TimestampTz now, CallRef *out, TimestampTz *next_at)
{
	Oid			types[3] = {TEXTOID, INT8OID, INT8ARRAYOID};
	Datum		args[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	TimestampTz due;

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = Int64GetDatum(connector_id);
	args[2] = Int8ArrayParam(held, nheld);
	RunPlan(KeptPlanGet(&probe_plan,
						"SELECT k.tenant_id, k.id, k.connector_id, " CONNECTOR_SETTING_RATE("rate_limit") ","
						"       " CONNECTOR_SETTING_RATE("rate_limit_burst") ", k.next_attempt_at"
						"  FROM integration.connector_calls k"
						"  JOIN integration.connectors c"
						"    ON c.tenant_id OPERATOR(pg_catalog.=) k.tenant_id AND c.id OPERATOR(pg_catalog.=) k.connector_id"
						" WHERE k.tenant_id OPERATOR(pg_catalog.=) $1 AND k.connector_id OPERATOR(pg_catalog.=) $2"
						"   AND k.status OPERATOR(pg_catalog.=) 'pending'"
						"   AND k.id OPERATOR(pg_catalog.<>) ALL ($3)"
						" ORDER BY k.next_attempt_at, k.id LIMIT 1",
						3, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "looking for a connector call to probe with");
	*next_at = 0;
	if (SPI_processed == 0)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	due = DatumGetTimestampTz(SPI_getbinval(row, desc, 6, &isnull));
	if (due > now)
	{
		*next_at = due;
		return false;
	}
	ref_from_row(row, desc, out);
	return true;
}

/*
 * Locks the call ref if it is still pending, and reads what its attempt needs into
 * *out; false when it is not pending any more, or another session holds it locked.
 */
bool
CallStoreLockPending(const CallRef *ref, CallPending *out)
{
	Oid			types[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		args[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	args[0] = CStringGetTextDatum(ref->tenant_id);
	args[1] = Int64GetDatum(ref->id);
	args[2] = Int64GetDatum(ref->connector_id);

	/*
	 * Of ref's connector too: a call is sent with its connector's target and
	 * credentials, which the caller loaded from ref.  By its key alone, the
	 * status checked on the locked row, as the handlers lock their events
	 * (inbound_store.c): "status = 'pending'" here lets the planner pick
	 * connector_calls_pending_idx, and walk all of the connector's pending
	 * calls for the one it wants, on statistics that count none of them (a
	 * table not analyzed yet: 306 pages a call with 50,000 pending, against 5
	 * by connector_calls_connector_idx).
	 */
	RunPlan(KeptPlanGet(&lock_plan,
						"SELECT k.operation, k.payload, k.idempotency_key,"
						"       k.queued_by::pg_catalog.oid, k.attempts, k.next_attempt_at,"
						"       k.status OPERATOR(pg_catalog.=) 'pending', k.ctid"
						"  FROM integration.connector_calls k"
						" WHERE k.tenant_id OPERATOR(pg_catalog.=) $1 AND k.id OPERATOR(pg_catalog.=) $2"
						"   AND k.connector_id OPERATOR(pg_catalog.=) $3"
						"   FOR UPDATE SKIP LOCKED",
						3, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "locking a connector call");
	if (SPI_processed == 0)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (!DatumGetBool(SPI_getbinval(row, desc, 7, &isnull)))
		return false;			/* no longer pending */
	out->operation = SPI_getvalue(row, desc, 1);
	out->payload = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 2, &isnull));
	out->idempotency_key = SPI_getvalue(row, desc, 3);
	out->queued_by = DatumGetObjectId(SPI_getbinval(row, desc, 4, &isnull));
	out->attempts = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
	out->next_attempt_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 6, &isnull));
	if (isnull)
		out->next_attempt_at = 0;
	ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(row, desc, 8, &isnull)), &out->tid);
	return true;
}

/*
 * Marks a call locked by CallStoreLockPending() (locked, in this transaction)
 * 'sending', its attempt counted.  By the locked row's ctid, which stays its own while
 * it is locked: by its key and "status = 'pending'", on statistics that count none of
 * the table's rows, the planner walked connector_calls_pending_idx over all of the
 * tenant's pending calls (62 pages at 6,400 calls, 100 at 25,600), however often it
 * planned again.
 */
void
CallStoreBeginAttempt(const CallRef *ref, const CallPending *locked, int lease_ms)
{
	Oid			types[2] = {TIDOID, INT4OID};
	Datum		args[2];

	args[0] = PointerGetDatum(&locked->tid);
	args[1] = Int32GetDatum(lease_ms);
	RunPlan(KeptPlanGet(&begin_plan,
						"UPDATE integration.connector_calls k"
						"   SET status = 'sending', attempts = k.attempts OPERATOR(pg_catalog.+) 1,"
						"       next_attempt_at = NULL, last_attempt_at = pg_catalog.now(),"
						"       lease_expires_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
						"         ($2 OPERATOR(pg_catalog.*) interval '1 ms')"
						" WHERE k.ctid OPERATOR(pg_catalog.=) $1"
						"   AND k.status OPERATOR(pg_catalog.=) 'pending'",
						2, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_UPDATE, "beginning a connector call");
	if (SPI_processed != 1)
		elog(ERROR, "connector call %lld is no longer pending", (long long) ref->id);
}

static const char *
status_name(CallStatus st)
{
	switch (st)
	{
		case CALL_PENDING:
			return "pending";
		case CALL_SUCCEEDED:
			return "succeeded";
		case CALL_FAILED:
			return "failed";
	}
	return NULL;
}

/*
 * Records what an attempt of ref came to, if the row is still at that attempt
 * (pending or sending, with o->attempts_before attempts); a call that ends writes its
 * completion event.  False when the row was not at that attempt (its outcome is
 * stale).  A sync run's page that succeeded and queued the next page's call sets
 * *next_call (when not NULL) to that call's id, as its result says; else 0.
 */
bool
CallStoreRecord(const CallRef *ref, const CallOutcome *o, int64 *next_call)
{
	Oid			types[9] = {TEXTOID, INT8OID, TEXTOID, INT4OID, INT4OID, TIMESTAMPTZOID,
	INT4OID, JSONBOID, TEXTOID};
	Datum		args[9];
	char		nulls[9] = "         ";
	bool		isnull;
	int64		recorded;

	args[0] = CStringGetTextDatum(ref->tenant_id);
	args[1] = Int64GetDatum(ref->id);
	args[2] = CStringGetTextDatum(status_name(o->status));
	args[3] = Int32GetDatum(o->attempts_before);
	args[4] = Int32GetDatum(o->attempts);
	if (o->status == CALL_PENDING)
		args[5] = TimestampTzGetDatum(o->next_attempt_at);
	else
		nulls[5] = 'n';
	if (o->status_code > 0)
		args[6] = Int32GetDatum(o->status_code);
	else
		nulls[6] = 'n';
	if (o->result)
		args[7] = JsonbPGetDatum(o->result);
	else
		nulls[7] = 'n';
	if (o->error)
		args[8] = CStringGetTextDatum(o->error);
	else
		nulls[8] = 'n';

	if (SPI_execute_plan(KeptPlanGet(&record_plan,
									 "WITH k AS ("
									 " UPDATE integration.connector_calls k"
									 "    SET status = $3, attempts = $5, next_attempt_at = $6,"
									 "        lease_expires_at = NULL, last_status_code = $7,"
									 "        result = $8, last_error = $9,"
									 "        finished_at = CASE WHEN $3 OPERATOR(pg_catalog.=) 'pending' THEN NULL"
									 "                           ELSE pg_catalog.now() END"
									 "  WHERE k.tenant_id OPERATOR(pg_catalog.=) $1 AND k.id OPERATOR(pg_catalog.=) $2"
									 "    AND k.attempts OPERATOR(pg_catalog.=) $4"
									 "    AND k.status OPERATOR(pg_catalog.=) ANY ('{pending,sending}'::pg_catalog.text[])"
									 " RETURNING k.*),"
									 " e AS ("
									 " INSERT INTO integration.inbound_events"
									 "        (tenant_id, connector_id, external_id, topic, event, payload)"
									 " SELECT k.tenant_id, k.connector_id, 'call:' OPERATOR(pg_catalog.||) k.id,"
									 "        'call.' OPERATOR(pg_catalog.||) k.status,"
									 "        c.kind OPERATOR(pg_catalog.||) '.call.' OPERATOR(pg_catalog.||) k.status,"
									 "        integration._call_completion_payload(ROW(k.*)::integration.connector_calls)"
									 "   FROM k JOIN integration.connectors c"
									 "     ON c.tenant_id OPERATOR(pg_catalog.=) k.tenant_id"
									 "    AND c.id OPERATOR(pg_catalog.=) k.connector_id"
									 "  WHERE k.status OPERATOR(pg_catalog.<>) 'pending'"
									 "    AND k.sync_stream IS NULL"
									 " RETURNING 1)"
									 " SELECT pg_catalog.count(*),"
									 "        pg_catalog.max((k.result OPERATOR(pg_catalog.->>) 'next_call_id')::pg_catalog.int8)"
									 "          FILTER (WHERE k.sync_stream IS NOT NULL AND k.status OPERATOR(pg_catalog.=) 'succeeded')"
									 "   FROM k",
									 9, types, CURSOR_OPT_GENERIC_PLAN),
						 args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "recording a connector call failed");
	recorded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (next_call)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		*next_call = isnull ? 0 : DatumGetInt64(d);
	}
	return recorded > 0;
}

/*
 * Takes attempts of a dead worker back: 'sending' calls become pending, due now, with
 * the attempt counted and said to be cut short.  all: every one (the worker starts, and
 * a database has one worker); else those whose lease ran out, but for the held ones.
 * Skips rows others hold locked.  Returns how many.
 */
int
CallStoreReconcile(bool all, const int64 *held, int nheld)
{
	Oid			types[2] = {BOOLOID, INT8ARRAYOID};
	Datum		args[2];

	args[0] = BoolGetDatum(all);
	args[1] = Int8ArrayParam(held, nheld);
	RunPlan(KeptPlanGet(&reconcile_plan,
						"UPDATE integration.connector_calls k"
						"   SET status = 'pending', next_attempt_at = pg_catalog.now(),"
						"       lease_expires_at = NULL,"
						"       last_error = pg_catalog.format('attempt %s was cut short: the worker stopped', k.attempts)"
						"  FROM (SELECT s.tenant_id, s.id FROM integration.connector_calls s"
						"         WHERE s.status OPERATOR(pg_catalog.=) 'sending'"
						"           AND ($1 OR (s.lease_expires_at OPERATOR(pg_catalog.<) pg_catalog.now()"
						"                       AND s.id OPERATOR(pg_catalog.<>) ALL ($2)))"
						"           FOR UPDATE SKIP LOCKED) s"
						" WHERE k.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND k.id OPERATOR(pg_catalog.=) s.id",
						2, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_UPDATE, "taking back connector calls");
	return (int) SPI_processed;
}
