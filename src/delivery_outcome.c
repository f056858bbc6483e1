/*
 * delivery_outcome.c
 *		Attempt outcomes written back into their deliveries, failed attempts into their
 *		history and the log, and claims given back unsent.
 *
 * Results are written in batches through arrays: one UPDATE of the deliveries, found
 * by the claim's ctid and lease, and one statement that writes the failed attempts
 * into delivery_attempts and integration_logs; what outcomes mean for their endpoints
 * (streaks of failures, endpoints disabled) is endpoint_disable.c's, in the same
 * transaction.  The worker never waits for a row lock here: a row someone else holds
 * is tried again later (StoreRecord()).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "delivery_outcome.h"
#include "delivery_store.h"
#include "endpoint_disable.h"
#include "sending_counts.h"
#include "spi_plan.h"
#include "wakeup.h"

static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr record_by_key_plan = NULL;
static SPIPlanPtr record_lock_plan = NULL;
static SPIPlanPtr record_failures_plan = NULL;
static SPIPlanPtr confirm_skipped_plan = NULL;

/* The plans kept here, and the tables whose size their shape depends on. */
static const StorePlanSlot plans[] = {
	{&record_plan, STORE_DELIVERIES},
	{&record_by_key_plan, 0},
	{&record_lock_plan, 0},
	{&record_failures_plan, 0},
	{&confirm_skipped_plan, 0},
};

/* Size-dependent statements are planned at each execution (see spi_plan.c). */
#define prepare(slot, sql, nargs, argtypes) \
	SavedPlan(slot, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN)

void
OutcomeForgetPlans(int tables)
{
	StoreForgetPlansOf(plans, lengthof(plans), tables);
}

#define RECORD_COLUMNS 12
/* The arrays of the outcome statements: RECORD_SET's. */
#define RECORD_ARRAYS 13

/* An outcome that goes to the attempts history: not delivered, and a request tried. */
static bool
is_failed_attempt(const DeliveryResult *r)
{
	return strcmp(r->outcome, "delivered") != 0 && strcmp(r->outcome, "skipped") != 0;
}

/*
 * Failed attempts go to the attempts history and the log, in one statement over text
 * arrays of the failed results only; the delivering attempt lives on the delivery row,
 * and a skipped delivery made none, so a batch that only delivered builds and runs
 * nothing here.  results are those just written to their deliveries, which this
 * transaction has locked.
 */
static void
record_failed_attempts(DeliveryResult *results, int n)
{
	Oid			argtypes[RECORD_COLUMNS];
	Datum		args[RECORD_COLUMNS];
	Datum	   *cols[RECORD_COLUMNS];
	bool	   *nulls[RECORD_COLUMNS];
	int			nfailed = 0;

	for (int i = 0; i < n; i++)
		if (is_failed_attempt(&results[i]))
			nfailed++;
	if (nfailed == 0)
		return;
	for (int c = 0; c < RECORD_COLUMNS; c++)
	{
		argtypes[c] = TEXTARRAYOID;
		cols[c] = palloc(sizeof(Datum) * nfailed);
		nulls[c] = palloc0(sizeof(bool) * nfailed);
	}

#define SET_TEXT(c, i, s) \
	do { \
		if ((s) == NULL) nulls[c][i] = true; \
		else cols[c][i] = CStringGetTextDatum(s); \
	} while (0)

	nfailed = 0;
	for (int j = 0; j < n; j++)
	{
		DeliveryResult *r = &results[j];
		int			i = nfailed;

		if (!is_failed_attempt(r))
			continue;
		nfailed++;
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
		args[c] = ArrayParam(cols[c], nulls[c], nfailed, TEXTOID);

	prepare(&record_failures_plan,
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
			"           status_code, error_class, error, response, next_attempt_at)"
			"   WHERE r.outcome <> 'delivered'),"
			" att AS ("
			"  INSERT INTO integration.delivery_attempts (tenant_id, delivery_id, attempt,"
			"         started_at, duration_ms, status_code, error_class, error, response_excerpt)"
			"  SELECT r.tenant_id, r.id, r.attempt, r.started_at, r.duration_ms, r.status_code,"
			"         r.error_class, r.error, r.response FROM r)"
			" INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, context)"
			" SELECT tenant_id, CASE WHEN outcome = 'failed' THEN 'error' ELSE 'warning' END, 'worker',"
			"        CASE WHEN outcome = 'failed' THEN 'delivery.failed' ELSE 'delivery.retrying' END,"
			"        pg_catalog.format('delivery %s to webhook %s: attempt %s %s%s', id, endpoint_id, attempt,"
			"            CASE WHEN outcome = 'failed' THEN 'failed for good' ELSE 'failed, retrying' END,"
			"            coalesce(': ' || error, '')),"
			"        pg_catalog.jsonb_build_object('delivery_id', id, 'endpoint_id', endpoint_id,"
			"            'attempt', attempt, 'status_code', status_code, 'error_class', error_class,"
			"            'error', error, 'next_attempt_at', next_attempt_at)"
			"   FROM r",
			RECORD_COLUMNS, argtypes);
	RunPlan(record_failures_plan, args, false, SPI_OK_INSERT, "recording failed attempts");
}

#define RECORD_SET \
	"UPDATE integration.deliveries d" \
	"   SET (status, attempts, last_attempt_at, last_duration_ms, last_status_code," \
	"        last_error, last_response, next_attempt_at, lease_expires_at, delivered_at) =" \
	"       (r.status, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error," \
	"        r.response, r.next_attempt_at, NULL::timestamptz, r.delivered_at)" \
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)," \
	"                  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)," \
	"                  pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9)," \
	"                  pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12)," \
	"                  pg_catalog.unnest($13))"
#define RECORD_COLUMNS_OUT \
	"status, attempt, started_at, duration_ms, status_code, error, response," \
	" next_attempt_at, delivered_at, lease, claim_xmax)"

/*
 * Writes outcomes into their deliveries, reached by the claim's ctid, or with by_key by
 * (tenant_id, id), and leaves the keys of the deliveries written in SPI_tuptable.
 *
 * A result belongs to one claim: its row must still carry the lease that claim set
 * (a delivery requeued and claimed again has another lease, or none).  The ctid way
 * runs for every batch: the batch's arrays drive a nested loop whose inner side is a
 * TID lookup.  A plan made while the table looked tiny (just after TRUNCATE, or on a
 * new install) once took a full scan of deliveries_endpoint_idx for every row instead,
 * and kept it until the next ANALYZE, which made the worker deliver a tenth as fast:
 * StoreReplanIfStale() plans it again as the table grows.
 */
static void
record_outcomes(DeliveryResult *results, int n, bool by_key)
{
	Oid			types[RECORD_ARRAYS] = {TIDARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TIMESTAMPTZARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, XIDARRAYOID};
	Datum		v[RECORD_ARRAYS];
	Datum	   *col[RECORD_ARRAYS];
	bool	   *isnull[RECORD_ARRAYS];
	struct
	{
		Oid			type;
		int			len;
		bool		byval;
		char		align;
	}			elem[RECORD_ARRAYS] = {
		{TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT},
		{INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{INT4OID, 4, true, TYPALIGN_INT},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{INT4OID, 4, true, TYPALIGN_INT},
		{INT4OID, 4, true, TYPALIGN_INT},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{XIDOID, sizeof(TransactionId), true, TYPALIGN_INT},
	};

	/* By key, the first array holds the tenants instead of the ctids. */
	if (by_key)
	{
		types[0] = TEXTARRAYOID;
		elem[0].type = TEXTOID;
		elem[0].len = -1;
		elem[0].byval = false;
		elem[0].align = TYPALIGN_INT;
	}
	for (int c = 0; c < RECORD_ARRAYS; c++)
	{
		col[c] = palloc(sizeof(Datum) * n);
		isnull[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		DeliveryResult *r = &results[i];

		col[0][i] = by_key ? CStringGetTextDatum(r->tenant_id) : PointerGetDatum(&r->tid);
		col[1][i] = Int64GetDatum(r->id);
		col[2][i] = CStringGetTextDatum(r->outcome);
		col[3][i] = Int32GetDatum(r->attempt);
		col[4][i] = TimestampTzGetDatum(r->started_at);
		col[5][i] = Int32GetDatum(r->duration_ms);
		col[6][i] = Int32GetDatum(r->status_code);
		isnull[6][i] = (r->status_code == 0);
		col[7][i] = r->error ? CStringGetTextDatum(r->error) : (Datum) 0;
		isnull[7][i] = (r->error == NULL);
		col[8][i] = r->response ? CStringGetTextDatum(r->response) : (Datum) 0;
		isnull[8][i] = (r->response == NULL);
		col[9][i] = TimestampTzGetDatum(r->next_attempt_at);
		isnull[9][i] = (r->next_attempt_at == 0);
		col[10][i] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(r->started_at, r->duration_ms));
		isnull[10][i] = (strcmp(r->outcome, "delivered") != 0);
		col[11][i] = TimestampTzGetDatum(r->lease);
		col[12][i] = TransactionIdGetDatum(r->claim_xmax);
	}
	for (int c = 0; c < RECORD_ARRAYS; c++)
	{
		int			dims[1] = {n};
		int			lbs[1] = {1};

		v[c] = PointerGetDatum(construct_md_array(col[c], isnull[c], 1, dims, lbs,
												  elem[c].type, elem[c].len,
												  elem[c].byval, elem[c].align));
	}

	if (!by_key)
	{
		SavedPlan(&record_plan,
				  RECORD_SET
				  "       AS r(tid, id, " RECORD_COLUMNS_OUT
				  " WHERE d.ctid = r.tid AND d.id = r.id"
				  "   AND d.lease_expires_at = r.lease"

		/*
		 * Whatever join is chosen, deliveries is read only at the batch's
		 * rows.
		 */
				  "   AND d.ctid = ANY ($1)"

		/*
		 * And only rows that nobody has locked since the claim wrote them: a
		 * row version that a SELECT ... FOR UPDATE locks gets that locker's
		 * xmax, and the worker must not wait for it (StoreRecord()).  The
		 * claim's own version has none, or the claim's own lock (claim_xmax),
		 * so this costs nothing where there is no lock, unlike a locking
		 * subquery (FOR NO KEY UPDATE SKIP LOCKED), which wrote a WAL record
		 * per row more.  A row whose xmax another finished locker left behind
		 * goes the slower way.  Through row_unlocked(), which the planner
		 * expects to hold for every row: estimated as "xmax = 0", a batch
		 * looked like one row (row_unlocked.c).
		 */
				  "   AND integration.row_unlocked(d.xmax, r.claim_xmax)"
				  " RETURNING d.tenant_id, d.id",
				  RECORD_ARRAYS, types, CURSOR_OPT_GENERIC_PLAN);
		RunPlan(record_plan, v, false, SPI_OK_UPDATE_RETURNING, "recording delivery results");
	}
	else
	{
		/* Rare (see StoreRecord()), so planned for its arrays each time. */
		prepare(&record_by_key_plan,
				RECORD_SET
				"       AS r(tenant_id, id, " RECORD_COLUMNS_OUT
				" WHERE d.tenant_id = r.tenant_id AND d.id = r.id"
				"   AND d.lease_expires_at = r.lease"
				" RETURNING d.tenant_id, d.id",
				RECORD_ARRAYS, types);
		RunPlan(record_by_key_plan, v, false, SPI_OK_UPDATE_RETURNING, "recording moved delivery results");
	}
}

/* A delivery's key, as the record statements return it. */
typedef struct DeliveryKey
{
	int64		id;
	char	   *tenant_id;
} DeliveryKey;

static int
delivery_key_cmp(const void *a, const void *b)
{
	const DeliveryKey *x = a;
	const DeliveryKey *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return strcmp(x->tenant_id, y->tenant_id);
}

/* The keys in SPI_tuptable, sorted. */
static DeliveryKey *
returned_keys(int *n)
{
	DeliveryKey *keys = palloc(sizeof(DeliveryKey) * Max(SPI_processed, 1));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		keys[i].tenant_id = ResultText(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, NULL);
		keys[i].id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	*n = (int) SPI_processed;
	qsort(keys, *n, sizeof(DeliveryKey), delivery_key_cmp);
	return keys;
}

static bool
was_written(DeliveryResult *r, DeliveryKey *keys, int n)
{
	DeliveryKey key = {r->id, r->tenant_id};

	return bsearch(&key, keys, n, sizeof(DeliveryKey), delivery_key_cmp) != NULL;
}

/*
 * The rows of results that someone else holds locked.  Locks the others (SKIP LOCKED,
 * never waiting) and returns the keys of those it could not lock but that still carry
 * their claim's lease (sorted), their number in *nheld.
 */
static DeliveryKey *
lock_for_recording(DeliveryResult *results, int n, int *nheld)
{
	Oid			types[3] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	char	  **tenants = palloc(sizeof(char *) * n);
	int64	   *ids = palloc(sizeof(int64) * n);
	Datum	   *leases = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
	{
		tenants[i] = results[i].tenant_id;
		ids[i] = results[i].id;
		leases[i] = TimestampTzGetDatum(results[i].lease);
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = Int8ArrayParam(ids, n);
	args[2] = ArrayParam(leases, NULL, n, TIMESTAMPTZOID);
	/* Rare: planned for its arrays each time. */
	prepare(&record_lock_plan,
			"WITH r AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			"                                    pg_catalog.unnest($3)) AS r(tenant_id, id, lease)),"
			" mine AS (SELECT d.tenant_id, d.id FROM integration.deliveries d, r"
			"           WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.lease_expires_at = r.lease"
			"             FOR NO KEY UPDATE OF d SKIP LOCKED)"
			" SELECT d.tenant_id, d.id FROM integration.deliveries d, r"
			"  WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.lease_expires_at = r.lease"
			"    AND (d.tenant_id, d.id) NOT IN (SELECT tenant_id, id FROM mine)",
			3, types);
	RunPlan(record_lock_plan, args, false, SPI_OK_SELECT, "locking deliveries to record");
	return returned_keys(nheld);
}

/*
 * The deliveries of results that a claim skipped because the worker had disabled their
 * endpoint stay skipped only if it is still disabled, which this checks under FOR KEY
 * SHARE of the endpoint, held to commit.  enable_webhook() locks it FOR UPDATE before
 * it replays: either this commits first and the replay sees the skipped row, or the
 * endpoint is found enabled (or locked, so perhaps being enabled) and the delivery goes
 * back to pending, due now, for the worker to claim again.  Only results with the
 * outcome skipped, so nothing runs in a batch without them.
 */
static void
confirm_skipped(DeliveryResult *results, int n)
{
	Oid			types[3] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		args[3];
	char	  **tenants = NULL;
	int64	   *ids = NULL;
	int64	   *endpoints = NULL;
	int			nskipped = 0;

	for (int i = 0; i < n; i++)
	{
		if (strcmp(results[i].outcome, "skipped") != 0)
			continue;
		if (tenants == NULL)
		{
			tenants = palloc(sizeof(char *) * n);
			ids = palloc(sizeof(int64) * n);
			endpoints = palloc(sizeof(int64) * n);
		}
		tenants[nskipped] = results[i].tenant_id;
		ids[nskipped] = results[i].id;
		endpoints[nskipped++] = results[i].endpoint_id;
	}
	if (nskipped == 0)
		return;
	args[0] = TextArrayParam(tenants, nskipped);
	args[1] = Int8ArrayParam(ids, nskipped);
	args[2] = Int8ArrayParam(endpoints, nskipped);
	/* Rare: planned for its arrays each time. */
	prepare(&confirm_skipped_plan,
			"WITH r AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			"                                    pg_catalog.unnest($3)) AS r(tenant_id, id, endpoint_id)),"
			" still AS (SELECT e.tenant_id, e.id FROM integration.webhook_endpoints e"
			"            WHERE (e.tenant_id, e.id) IN (SELECT r.tenant_id, r.endpoint_id FROM r)"
			"              AND NOT e.is_active AND e.disabled_at IS NOT NULL AND e.deleted_at IS NULL"
			"              FOR KEY SHARE SKIP LOCKED)"
			" UPDATE integration.deliveries d"
			"    SET status = 'pending', next_attempt_at = pg_catalog.now(), last_error = NULL"
			"   FROM r"
			"  WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.status = 'skipped'"
			"    AND (r.tenant_id, r.endpoint_id) NOT IN (SELECT s.tenant_id, s.id FROM still s)",
			3, types);
	RunPlan(confirm_skipped_plan, args, false, SPI_OK_UPDATE, "confirming skipped deliveries");
	if (SPI_processed > 0)
		WakeWorkerForDueAtCommit();
}

/*
 * Writes a batch of attempt outcomes back, without ever waiting for a row lock.
 * Results whose delivery is gone (its event was deleted) or no longer holds their
 * claim are dropped, attempts history and logs included.  Results whose row someone
 * else holds locked (a hand-run UPDATE in an open transaction, say) are not written but
 * moved to the front of results, to be tried again, and their number is returned.
 *
 * The common case is one statement: every row is found at its ctid and written.  Only
 * for the rows it did not write does a second statement tell the locked ones (held by
 * someone else, still carrying their claim's lease) from the others, which it locks;
 * those go by key, as a row that moved while its request was out (VACUUM FULL,
 * CLUSTER, an UPDATE by hand) is not at its ctid any more, and would otherwise stay
 * 'sending' until the worker restarted.
 *
 * disabled gets the endpoints that the outcomes made the worker disable
 * (endpoint_disable.c), in the current memory context.
 */
int
StoreRecord(DeliveryResult *results, int n, EndpointRefs *disabled)
{
	int			nkeys;
	DeliveryKey *keys;
	DeliveryResult *written = results;
	int			nwritten = n;
	int			ndeferred = 0;

	disabled->n = 0;
	if (n == 0)
		return 0;
	record_outcomes(results, n, false);
	if (SPI_processed < (uint64) n)
	{
		DeliveryResult *left = palloc(sizeof(DeliveryResult) * n);
		DeliveryResult *deferred = palloc(sizeof(DeliveryResult) * n);
		DeliveryKey *held;
		int			nleft = 0;

		keys = returned_keys(&nkeys);
		written = palloc(sizeof(DeliveryResult) * n);
		nwritten = 0;
		for (int i = 0; i < n; i++)
		{
			if (was_written(&results[i], keys, nkeys))
				written[nwritten++] = results[i];
			else
				left[nleft++] = results[i];
		}
		held = lock_for_recording(left, nleft, &nkeys);
		{
			DeliveryResult *rest = palloc(sizeof(DeliveryResult) * Max(nleft, 1));
			int			nrest = 0;

			for (int i = 0; i < nleft; i++)
			{
				if (was_written(&left[i], held, nkeys))
					deferred[ndeferred++] = left[i];
				else
					rest[nrest++] = left[i];
			}
			if (nrest > 0)
			{
				record_outcomes(rest, nrest, true);
				keys = returned_keys(&nkeys);
				for (int i = 0; i < nrest; i++)
					if (was_written(&rest[i], keys, nkeys))
						written[nwritten++] = rest[i];
			}
		}
		/* The deferred ones first, as the caller keeps results[0..ndeferred). */
		if (ndeferred > 0)
		{
			DeliveryResult *others = palloc(sizeof(DeliveryResult) * n);
			int			nothers = 0;

			keys = palloc(sizeof(DeliveryKey) * ndeferred);
			for (int i = 0; i < ndeferred; i++)
			{
				keys[i].id = deferred[i].id;
				keys[i].tenant_id = deferred[i].tenant_id;
			}
			qsort(keys, ndeferred, sizeof(DeliveryKey), delivery_key_cmp);
			for (int i = 0; i < n; i++)
				if (!was_written(&results[i], keys, ndeferred))
					others[nothers++] = results[i];
			memcpy(results, deferred, sizeof(DeliveryResult) * ndeferred);
			memcpy(results + ndeferred, others, sizeof(DeliveryResult) * nothers);
		}
	}

	record_failed_attempts(written, nwritten);
	confirm_skipped(written, nwritten);
	EndpointOutcomesRecorded(written, nwritten, disabled);
	return ndeferred;
}

/*
 * Gives claims back unsent: 'pending' again, due at their own due time, lease gone,
 * attempts untouched.  A row that is no longer the claim's (requeued, moved) or that
 * someone has locked since the claim wrote it is left alone, never waited for: it
 * stays 'sending' until its lease runs out and a reconcile returns it.  Returns how
 * many were given back.  Rare (an endpoint's circuit opened), so planned each time.
 */
int
StoreReturnClaims(const ReturnedClaim *claims, int n)
{
	Oid			types[5] = {TIDARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID,
	XIDARRAYOID};
	Datum		args[5];
	Datum	   *tids = palloc(sizeof(Datum) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	Datum	   *leases = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *dues = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *xmaxes = palloc(sizeof(Datum) * Max(n, 1));
	int			rc;

	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++)
	{
		tids[i] = PointerGetDatum(&claims[i].tid);
		ids[i] = claims[i].id;
		leases[i] = TimestampTzGetDatum(claims[i].lease);
		dues[i] = TimestampTzGetDatum(claims[i].due);
		xmaxes[i] = TransactionIdGetDatum(claims[i].claim_xmax);
	}
	args[0] = PointerGetDatum(construct_array(tids, n, TIDOID, sizeof(ItemPointerData), false,
											  TYPALIGN_SHORT));
	args[1] = Int8ArrayParam(ids, n);
	args[2] = ArrayParam(leases, NULL, n, TIMESTAMPTZOID);
	args[3] = ArrayParam(dues, NULL, n, TIMESTAMPTZOID);
	args[4] = ArrayParam(xmaxes, NULL, n, XIDOID);
	rc = SPI_execute_with_args("UPDATE integration.deliveries d"
							   "   SET status = 'pending', next_attempt_at = r.due, lease_expires_at = NULL"
							   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
							   "                  pg_catalog.unnest($3), pg_catalog.unnest($4),"
							   "                  pg_catalog.unnest($5))"
							   "       AS r(tid, id, lease, due, claim_xmax)"
							   " WHERE d.ctid = r.tid AND d.id = r.id AND d.lease_expires_at = r.lease"
							   "   AND d.ctid = ANY ($1) AND integration.row_unlocked(d.xmax, r.claim_xmax)"
							   " RETURNING d.tenant_id",
							   5, types, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "giving claims back failed: %s", SPI_result_code_string(rc));

	/*
	 * Pending again once this commits; those left stay counted
	 * (sending_counts.c).
	 */
	for (uint64 i = 0; i < SPI_processed; i++)
		SendingCountsEnded(ResultText(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, NULL));
	return (int) SPI_processed;
}
