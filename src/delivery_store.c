/*
 * delivery_store.c
 *		The worker's SQL: fan-out of events into deliveries, claiming due deliveries, and
 *		writing results back, each as one set-based statement per batch.
 *
 * Claiming sets status 'sending' with a lease (lease_expires_at) under FOR UPDATE SKIP
 * LOCKED, so two workers never send the same delivery at the same time, and commits
 * before any request starts: no transaction is open while HTTP is in flight.  A worker
 * that dies leaves its claims 'sending'; store_reconcile_leases() returns them to
 * 'pending' when the next worker starts (or when their lease expires), so a delivery
 * whose transaction committed is sent at least once.
 *
 * Results are written in batches through arrays: one UPDATE of the deliveries, one
 * INSERT into the attempts history, failures into integration_logs and endpoints that
 * answered 410 Gone disabled, all in one statement.
 *
 * Every function here runs inside store_begin() / store_commit().
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "delivery_store.h"

static SPIPlanPtr fan_out_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr record_plan = NULL;

/* The transaction bracket of worker_spi.c, in its order. */
void
store_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
store_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

bool
store_extension_present(void)
{
	return OidIsValid(get_extension_oid("integration", true));
}

/* After DROP/CREATE EXTENSION the saved plans point at dropped relations. */
void
store_forget_plans(void)
{
	fan_out_plan = claim_plan = next_due_plan = record_plan = NULL;
}

static SPIPlanPtr
prepare(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* Returns claims of dead workers to 'pending'; with all, every claim of this database. */
int
store_reconcile_leases(bool all)
{
	int			rc;

	rc = SPI_execute(all ?
					 "UPDATE integration.deliveries SET status = 'pending', lease_expires_at = NULL"
					 " WHERE status = 'sending'" :
					 "UPDATE integration.deliveries SET status = 'pending', lease_expires_at = NULL"
					 " WHERE status = 'sending' AND lease_expires_at < pg_catalog.now()",
					 false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "reconciling leases failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* Creates one pending delivery per endpoint for up to limit published events. */
int
store_fan_out(int limit)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(limit)};
	int			rc;

	prepare(&fan_out_plan,
			"WITH ev AS ("
			"  SELECT e.tenant_id, e.id, e.endpoint_ids, e.created_at"
			"    FROM integration.webhook_events e"
			"   WHERE e.fanout_pending"
			"   ORDER BY e.id LIMIT $1"
			"   FOR UPDATE SKIP LOCKED),"
			" done AS ("
			"  UPDATE integration.webhook_events e SET fanout_pending = false"
			"    FROM ev WHERE e.tenant_id = ev.tenant_id AND e.id = ev.id)"
			" INSERT INTO integration.deliveries"
			"   (tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at)"
			" SELECT ev.tenant_id, ev.id, ep.id, 'pending', pg_catalog.now(), ev.created_at"
			"   FROM ev CROSS JOIN LATERAL pg_catalog.unnest(ev.endpoint_ids) AS u(endpoint_id)"
			"   JOIN integration.webhook_endpoints ep"
			"     ON ep.tenant_id = ev.tenant_id AND ep.id = u.endpoint_id"
			" ON CONFLICT DO NOTHING",
			1, argtypes);
	rc = SPI_execute_plan(fan_out_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "fan-out failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

static char *
copy_text(HeapTuple tup, TupleDesc desc, int col, int *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	text	   *t;
	char	   *s;

	if (isnull)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	t = DatumGetTextPP(d);
	s = palloc(VARSIZE_ANY_EXHDR(t) + 1);
	memcpy(s, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	s[VARSIZE_ANY_EXHDR(t)] = '\0';
	if (len)
		*len = VARSIZE_ANY_EXHDR(t);
	return s;
}

/*
 * Claims up to limit due deliveries, skipping endpoints in excluded, and returns them
 * in *out, allocated in mcxt (SPI_finish frees SPI's own memory).
 */
int
store_claim(int limit, int lease_ms, int64 *excluded, int nexcluded, ClaimedDelivery **out,
			MemoryContext mcxt)
{
	Oid			argtypes[3] = {INT4OID, INT4OID, INT8ARRAYOID};
	Datum		args[3];
	Datum	   *ex;
	int			rc;

	ex = palloc(sizeof(Datum) * Max(nexcluded, 1));
	for (int i = 0; i < nexcluded; i++)
		ex[i] = Int64GetDatum(excluded[i]);
	args[0] = Int32GetDatum(limit);
	args[1] = Int32GetDatum(lease_ms);
	args[2] = PointerGetDatum(construct_array(ex, nexcluded, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));

	prepare(&claim_plan,
			"WITH due AS ("
			"  SELECT d.tenant_id, d.id FROM integration.deliveries d"
			"   WHERE d.status = 'pending' AND d.next_attempt_at <= pg_catalog.now()"
			"     AND NOT (d.endpoint_id = ANY ($3))"
			"   ORDER BY d.next_attempt_at LIMIT $1"
			"   FOR UPDATE SKIP LOCKED),"
			" claimed AS ("
			"  UPDATE integration.deliveries d"
			"     SET status = 'sending',"
			"         lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => $2 / 1000.0)"
			"    FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id"
			"  RETURNING d.tenant_id, d.id, d.event_id, d.endpoint_id, d.attempts)"
			" SELECT c.tenant_id, c.id, c.event_id, c.endpoint_id, c.attempts, e.event, e.payload,"
			"        ep.url, ep.secret, ep.headers, ep.timeout_ms, ep.retry_schedule,"
			"        (ep.is_active AND ep.deleted_at IS NULL)"
			"   FROM claimed c"
			"   JOIN integration.webhook_events e ON e.tenant_id = c.tenant_id AND e.id = c.event_id"
			"   JOIN integration.webhook_endpoints ep"
			"     ON ep.tenant_id = c.tenant_id AND ep.id = c.endpoint_id",
			3, argtypes);
	rc = SPI_execute_plan(claim_plan, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "claiming deliveries failed: %s", SPI_result_code_string(rc));

	*out = NULL;
	if (SPI_processed == 0)
		return 0;

	{
		/* Copy into the caller's context: SPI_finish frees SPI's. */
		MemoryContext spicxt = MemoryContextSwitchTo(mcxt);
		ClaimedDelivery *claims = palloc0(sizeof(ClaimedDelivery) * SPI_processed);
		TupleDesc	desc = SPI_tuptable->tupdesc;

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			ClaimedDelivery *c = &claims[i];
			bool		isnull;
			Datum		d;

			c->tenant_id = copy_text(tup, desc, 1, NULL);
			c->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			c->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
			c->endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
			c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
			c->event = copy_text(tup, desc, 6, NULL);
			c->payload = copy_text(tup, desc, 7, &c->payload_len);
			c->url = copy_text(tup, desc, 8, NULL);
			c->secret = copy_text(tup, desc, 9, NULL);
			d = SPI_getbinval(tup, desc, 10, &isnull);
			c->headers = isnull ? NULL : DatumGetJsonbPCopy(d);
			d = SPI_getbinval(tup, desc, 11, &isnull);
			c->timeout_ms = isnull ? 0 : DatumGetInt32(d);
			c->retry_schedule = copy_text(tup, desc, 12, NULL);
			d = SPI_getbinval(tup, desc, 13, &isnull);
			c->usable = !isnull && DatumGetBool(d);
		}
		MemoryContextSwitchTo(spicxt);
		*out = claims;
	}
	return (int) SPI_processed;
}

/* When the earliest pending delivery is due; 0 when none is pending. */
TimestampTz
store_next_due(void)
{
	int			rc;
	bool		isnull;
	Datum		d;

	prepare(&next_due_plan,
			"SELECT pg_catalog.min(next_attempt_at) FROM integration.deliveries"
			" WHERE status = 'pending'", 0, NULL);
	rc = SPI_execute_plan(next_due_plan, NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "finding the next due delivery failed: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

#define RECORD_COLUMNS 12

static Datum
text_array(Datum *values, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/* Writes a batch of attempt outcomes back in one statement. */
void
store_record(DeliveryResult *results, int n)
{
	Oid			argtypes[RECORD_COLUMNS];
	Datum		args[RECORD_COLUMNS];
	Datum	   *cols[RECORD_COLUMNS];
	bool	   *nulls[RECORD_COLUMNS];
	int			rc;

	if (n == 0)
		return;
	for (int c = 0; c < RECORD_COLUMNS; c++)
	{
		argtypes[c] = TEXTARRAYOID;
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}

#define SET_TEXT(c, i, s) \
	do { \
		if ((s) == NULL) nulls[c][i] = true; \
		else cols[c][i] = CStringGetTextDatum(s); \
	} while (0)

	for (int i = 0; i < n; i++)
	{
		DeliveryResult *r = &results[i];

		SET_TEXT(0, i, r->tenant_id);
		SET_TEXT(1, i, psprintf(INT64_FORMAT, r->id));
		SET_TEXT(2, i, psprintf(INT64_FORMAT, r->endpoint_id));
		SET_TEXT(3, i, r->outcome);
		SET_TEXT(4, i, psprintf("%d", r->attempt));
		SET_TEXT(5, i, timestamptz_to_str(r->started_at));
		SET_TEXT(6, i, psprintf("%d", r->duration_ms));
		SET_TEXT(7, i, r->status_code ? psprintf("%d", r->status_code) : NULL);
		SET_TEXT(8, i, r->error_class);
		SET_TEXT(9, i, r->error);
		SET_TEXT(10, i, r->response);
		SET_TEXT(11, i, r->next_attempt_at ? timestamptz_to_str(r->next_attempt_at) : NULL);
	}
#undef SET_TEXT
	for (int c = 0; c < RECORD_COLUMNS; c++)
		args[c] = text_array(cols[c], nulls[c], n);

	prepare(&record_plan,
			"WITH r AS ("
			"  SELECT r.tenant_id, r.id::bigint AS id, r.endpoint_id::bigint AS endpoint_id,"
			"         r.outcome, r.attempt::integer AS attempt,"
			"         r.started_at::timestamptz AS started_at, r.duration_ms::integer AS duration_ms,"
			"         r.status_code::integer AS status_code, r.error_class, r.error, r.response,"
			"         r.next_attempt_at::timestamptz AS next_attempt_at"
			"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
			"                    pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
			"                    pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9),"
			"                    pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12))"
			"      AS r(tenant_id, id, endpoint_id, outcome, attempt, started_at, duration_ms,"
			"           status_code, error_class, error, response, next_attempt_at)),"
			" upd AS ("
			"  UPDATE integration.deliveries d"
			"     SET status = r.outcome, attempts = r.attempt, last_attempt_at = r.started_at,"
			"         last_status_code = r.status_code, last_error = r.error,"
			"         last_response = r.response,"
			"         next_attempt_at = coalesce(r.next_attempt_at, d.next_attempt_at),"
			"         lease_expires_at = NULL,"
			"         delivered_at = CASE WHEN r.outcome = 'delivered'"
			"             THEN r.started_at + pg_catalog.make_interval(secs => r.duration_ms / 1000.0) END"
			"    FROM r WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.status = 'sending'),"
			" att AS ("
			"  INSERT INTO integration.delivery_attempts (tenant_id, delivery_id, attempt,"
			"         started_at, duration_ms, status_code, error_class, error, response_excerpt)"
			"  SELECT tenant_id, id, attempt, started_at, duration_ms, status_code, error_class,"
			"         error, response FROM r),"
			" logs AS ("
			"  INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, context)"
			"  SELECT tenant_id, CASE WHEN outcome = 'failed' THEN 'error' ELSE 'warning' END, 'worker',"
			"         CASE WHEN outcome = 'failed' THEN 'delivery.failed' ELSE 'delivery.retrying' END,"
			"         pg_catalog.format('delivery %s to webhook %s: attempt %s %s%s', id, endpoint_id, attempt,"
			"             CASE WHEN outcome = 'failed' THEN 'failed for good' ELSE 'failed, retrying' END,"
			"             coalesce(': ' || error, '')),"
			"         pg_catalog.jsonb_build_object('delivery_id', id, 'endpoint_id', endpoint_id,"
			"             'attempt', attempt, 'status_code', status_code, 'error_class', error_class,"
			"             'error', error, 'next_attempt_at', next_attempt_at)"
			"    FROM r WHERE outcome <> 'delivered'"
			"  UNION ALL"
			"  SELECT DISTINCT tenant_id, 'warning', 'worker', 'webhook.disabled',"
			"         pg_catalog.format('webhook %s disabled: the receiver answered 410 Gone', endpoint_id),"
			"         pg_catalog.jsonb_build_object('endpoint_id', endpoint_id)"
			"    FROM r WHERE status_code = 410)"
			" UPDATE integration.webhook_endpoints ep"
			"    SET is_active = false, disabled_reason = 'the receiver answered 410 Gone',"
			"        updated_at = pg_catalog.now()"
			"   FROM (SELECT DISTINCT tenant_id, endpoint_id FROM r WHERE status_code = 410) g"
			"  WHERE ep.tenant_id = g.tenant_id AND ep.id = g.endpoint_id AND ep.is_active",
			RECORD_COLUMNS, argtypes);
	rc = SPI_execute_plan(record_plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "recording delivery results failed: %s", SPI_result_code_string(rc));
}
