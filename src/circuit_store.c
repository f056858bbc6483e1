/*
 * circuit_store.c
 *		The worker's SQL for circuits: each transition upserts its target's row of
 *		integration.target_circuits and logs a row to the tenant's integration_logs, in
 *		one statement per batch, inside the kind's store transaction; a starting worker
 *		reads back the circuits that are not closed, so that a restart never hammers an
 *		endpoint whose circuit was open.
 *
 * Transitions are rare (at most a few per endpoint and cooldown), so the statements are
 * planned at each run rather than kept.  Each kind stores its own with
 * CircuitStoreTransitions(), in a subtransaction of its store transaction.  Every
 * function here runs inside the caller's StoreBegin() / StoreCommit()
 * (delivery_store.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "circuit_store.h"
#include "delivery_store.h"
#include "spi_plan.h"
#include "subtransaction.h"
#include "worker.h"

#define TRANSITION_COLUMNS 14
/* Calls in a row that may fail to store the same transitions before they are dropped. */
#define TRANSITION_MAX_FAILURES 3

static void
set_time(Datum *values, bool *nulls, int i, TimestampTz t)
{
	if (t == 0)
		nulls[i] = true;
	else
		values[i] = CStringGetTextDatum(timestamptz_to_str(t));
}

/*
 * Stores n transitions (oldest first; all of one kind): each target's row takes its
 * latest, and every one is logged to its tenant's integration_logs.
 */
void
CircuitStoreWrite(const SchedTransition *transitions, int n)
{
	Oid			types[TRANSITION_COLUMNS];
	Datum		args[TRANSITION_COLUMNS];
	Datum	   *cols[TRANSITION_COLUMNS];
	bool	   *nulls[TRANSITION_COLUMNS];
	int			rc;

	if (n == 0)
		return;
	for (int c = 0; c < TRANSITION_COLUMNS; c++)
	{
		types[c] = TEXTARRAYOID;
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		const SchedTransition *t = &transitions[i];

		cols[0][i] = CStringGetTextDatum(t->tenant_id);
		cols[1][i] = CStringGetTextDatum(psprintf(INT64_FORMAT, t->id));
		cols[2][i] = CStringGetTextDatum(CircuitStateName(t->from));
		cols[3][i] = CStringGetTextDatum(CircuitStateName(t->to));
		set_time(cols[4], nulls[4], i, t->at);
		set_time(cols[5], nulls[5], i, t->opened_at);
		set_time(cols[6], nulls[6], i, t->next_probe_at);
		cols[7][i] = CStringGetTextDatum(psprintf(INT64_FORMAT, t->cooldown_ms));
		cols[8][i] = CStringGetTextDatum(psprintf("%d", t->requests));
		cols[9][i] = CStringGetTextDatum(psprintf("%d", t->failures));
		set_time(cols[10], nulls[10], i, t->last_success_at);
		set_time(cols[11], nulls[11], i, t->last_failure_at);
		cols[12][i] = CStringGetTextDatum(t->kind->target);
		if (t->reason)
			cols[13][i] = CStringGetTextDatum(t->reason);
		else
			nulls[13][i] = true;
	}
	for (int c = 0; c < TRANSITION_COLUMNS; c++)
		args[c] = ArrayParam(cols[c], nulls[c], n, TEXTOID);

	rc = SPI_execute_with_args(
							   "WITH r AS ("
							   "  SELECT r.tenant_id, r.kind, r.id::bigint AS id, r.from_state, r.to_state,"
							   "         r.at::timestamptz AS at, r.opened_at::timestamptz AS opened_at,"
							   "         r.next_probe_at::timestamptz AS next_probe_at,"
							   "         r.cooldown_ms::bigint AS cooldown_ms, r.requests::integer AS requests,"
							   "         r.failures::integer AS failures,"
							   "         r.last_success_at::timestamptz AS last_success_at,"
							   "         r.last_failure_at::timestamptz AS last_failure_at, r.reason, r.n"
							   "    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
							   "                    pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
							   "                    pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9),"
							   "                    pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12),"
							   "                    pg_catalog.unnest($13), pg_catalog.unnest($14)) WITH ORDINALITY"
							   "      AS r(tenant_id, id, from_state, to_state, at, opened_at, next_probe_at, cooldown_ms,"
							   "           requests, failures, last_success_at, last_failure_at, kind, reason, n)),"
							   " latest AS ("
							   "  SELECT DISTINCT ON (r.tenant_id, r.kind, r.id) r.* FROM r"
							   "   ORDER BY r.tenant_id, r.kind, r.id, r.n DESC),"
							   " stored AS ("
							   "  INSERT INTO integration.target_circuits AS c (tenant_id, kind, target_id, state,"
							   "         opened_at, next_probe_at, cooldown_ms, last_success_at, last_failure_at,"
							   "         updated_at)"
							   "  SELECT l.tenant_id, l.kind, l.id, l.to_state, l.opened_at, l.next_probe_at,"
							   "         l.cooldown_ms, l.last_success_at, l.last_failure_at, l.at FROM latest l"
							   "  ON CONFLICT (tenant_id, kind, target_id) DO UPDATE"
							   "     SET state = excluded.state, opened_at = excluded.opened_at,"
							   "         next_probe_at = excluded.next_probe_at, cooldown_ms = excluded.cooldown_ms,"
							   "         last_success_at = excluded.last_success_at,"
							   "         last_failure_at = excluded.last_failure_at, updated_at = excluded.updated_at)"
							   " INSERT INTO integration.integration_logs (tenant_id, level, source, event, message,"
							   "        context, created_at)"
							   " SELECT r.tenant_id, CASE WHEN r.to_state = 'open' THEN 'warning' ELSE 'info' END, 'worker',"
							   "        CASE r.to_state WHEN 'open' THEN 'circuit.opened'"
							   "                        WHEN 'half_open' THEN 'circuit.half_opened'"
							   "                        ELSE 'circuit.closed' END,"
							   "        CASE WHEN r.to_state = 'open' AND r.from_state = 'closed' THEN"
							   "               pg_catalog.format('%s %s: circuit opened: %s of %s requests failed within integration.circuit_window; no request until the probe at %s',"
							   "                   r.kind, r.id, r.failures, r.requests, r.next_probe_at)"
							   "             WHEN r.to_state = 'open' THEN"
							   "               pg_catalog.format('%s %s: probe failed, circuit open again; next probe in %s at %s',"
							   "                   r.kind, r.id, pg_catalog.make_interval(secs => r.cooldown_ms / 1000.0),"
							   "                   r.next_probe_at)"
							   "             WHEN r.reason IS NOT NULL THEN"
							   "               pg_catalog.format('%s %s: circuit closed: %s', r.kind, r.id, r.reason)"
							   "             WHEN r.to_state = 'half_open' THEN"
							   "               pg_catalog.format('%s %s: circuit half open: the next request is a probe', r.kind, r.id)"
							   "             ELSE pg_catalog.format('%s %s: probe succeeded, circuit closed', r.kind, r.id) END,"
							   "        pg_catalog.jsonb_build_object('target', r.kind, 'target_id', r.id,"
							   "            'from', r.from_state, 'to', r.to_state, 'requests', r.requests,"
							   "            'failures', r.failures, 'opened_at', r.opened_at,"
							   "            'next_probe_at', r.next_probe_at, 'cooldown_ms', r.cooldown_ms)"
							   "        || CASE r.kind WHEN 'webhook' THEN pg_catalog.jsonb_build_object('endpoint_id', r.id)"
							   "                       WHEN 'connector' THEN pg_catalog.jsonb_build_object('connector_id', r.id)"
							   "                       ELSE '{}'::jsonb END"
							   "        || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('reason', r.reason)),"
							   "        r.at"
							   "   FROM r ORDER BY r.n",
							   TRANSITION_COLUMNS, types, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "recording circuit transitions failed: %s", SPI_result_code_string(rc));
}

typedef struct TransitionsArg
{
	SchedTransition *tr;
	int			n;
} TransitionsArg;

static void
write_transitions(void *arg)
{
	TransitionsArg *a = arg;

	CircuitStoreWrite(a->tr, a->n);
}

/*
 * Stores and logs the circuit transitions of kind not stored yet, in a subtransaction:
 * they must never keep the results of the store transaction they join from being
 * written.  What fails is tried again by the next call, and dropped with a WARNING
 * after TRANSITION_MAX_FAILURES calls in a row (*failures counts them; a restart then
 * finds the circuit as last stored).  Returns the seq up to which the kind hands them
 * to SchedulerTransitionsRecorded() once its transaction commits; 0: none.
 */
uint64
CircuitStoreTransitions(Scheduler *s, const JobKind *kind, int *failures)
{
	TransitionsArg a;
	ErrorData  *edata;

	a.n = SchedulerTransitions(s, kind, &a.tr);
	if (a.n == 0)
		return 0;
	if (RunInSubtransaction(write_transitions, &a, CurrentMemoryContext, &edata))
	{
		*failures = 0;
		return a.tr[a.n - 1].seq;
	}
	ereport(LOG,
			(errmsg("%s: recording %d %s circuit transitions failed: %s",
					WorkerName(), a.n, kind->target, edata->message)));
	FreeErrorData(edata);
	if (++*failures < TRANSITION_MAX_FAILURES)
		return 0;
	ereport(WARNING,
			(errmsg("%s: dropping %d %s circuit transitions that could not be recorded",
					WorkerName(), a.n, kind->target)));
	*failures = 0;
	return a.tr[a.n - 1].seq;
}

static TimestampTz
time_column(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Hands each stored circuit of kind that is not closed to restore; returns how many.
 * A row whose state no longer parses (written by hand) is skipped.
 */
int
CircuitStoreLoad(const char *kind, CircuitRestoreFn restore, void *arg)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	int			rc;
	int			n = 0;

	args[0] = CStringGetTextDatum(kind);
	rc = SPI_execute_with_args("SELECT tenant_id, target_id, state, opened_at, next_probe_at,"
							   "       cooldown_ms, last_success_at, last_failure_at"
							   "  FROM integration.target_circuits"
							   " WHERE kind = $1 AND state <> 'closed'",
							   1, types, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading stored circuits failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		CircuitBreaker cb;
		bool		isnull;
		char	   *tenant = SPI_getvalue(tup, desc, 1);
		char	   *state = SPI_getvalue(tup, desc, 3);

		CircuitInit(&cb);
		if (tenant == NULL || state == NULL || !CircuitStateFromName(state, &cb.state))
			continue;
		cb.opened_at = time_column(tup, desc, 4);
		cb.next_probe_at = time_column(tup, desc, 5);
		cb.cooldown_ms = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		if (isnull)
			cb.cooldown_ms = 0;
		cb.last_success_at = time_column(tup, desc, 7);
		cb.last_failure_at = time_column(tup, desc, 8);
		restore(tenant, DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)), &cb, arg);
		n++;
	}
	return n;
}
