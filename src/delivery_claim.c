/*
 * delivery_claim.c
 *		Due deliveries claimed for sending, and claims whose lease ran out given back.
 *
 * Claiming sets status 'sending' with a lease (lease_expires_at) under FOR UPDATE SKIP
 * LOCKED, so two workers never send the same delivery at the same time, and commits
 * before any request starts.  A worker that dies leaves its claims 'sending';
 * StoreReconcileLeases() returns them to 'pending' when the next worker starts (or
 * when their lease expires), so a delivery whose transaction committed is sent at
 * least once.  Claims of fresh events are made by the fan-out (delivery_fan_out.c);
 * here are the claims of due pending deliveries (retries, dispatches, redeliveries,
 * the overflow of a busy endpoint) and of the probes of half-open circuits.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "delivery_claim.h"
#include "delivery_store.h"
#include "endpoint_settings.h"
#include "integration.h"
#include "spi_plan.h"

static SPIPlanPtr claim_head_plan = NULL;
static SPIPlanPtr claim_others_plan = NULL;
static SPIPlanPtr claim_tids_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;

/* The plans kept here, and the tables whose size their shape depends on. */
static const StorePlanSlot plans[] = {
	{&claim_head_plan, STORE_DELIVERIES},
	{&claim_others_plan, STORE_DELIVERIES},
	{&claim_tids_plan, 0},
	{&next_due_plan, 0},
};

/* An endpoint of the claims, read once for all of them. */
typedef struct ClaimEndpoint
{
	EndpointSettingsKey key;	/* hash key */
	EndpointSettings *settings;
} ClaimEndpoint;

void
ClaimForgetPlans(int tables)
{
	StoreForgetPlansOf(plans, lengthof(plans), tables);
}

/*
 * Returns claims to 'pending': at start every claim of this database (a database has
 * one worker, so they belong to a dead one); later only expired leases, except the
 * deliveries this worker still holds (held, nheld ids).
 */
int
StoreReconcileLeases(bool all, int64 *held, int nheld)
{
	int			rc;

	if (all)
		rc = SPI_execute("UPDATE integration.deliveries SET status = 'pending', lease_expires_at = NULL,"
						 " next_attempt_at = pg_catalog.now()"
						 " WHERE status = 'sending'", false, 0);
	else
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		Datum		args[1];

		args[0] = Int8ArrayParam(held, nheld);
		/* Never waits: a row someone holds locked is theirs to finish. */
		rc = SPI_execute_with_args("UPDATE integration.deliveries SET status = 'pending',"
								   " lease_expires_at = NULL, next_attempt_at = pg_catalog.now()"
								   " WHERE ctid = ANY (ARRAY("
								   "   SELECT ctid FROM integration.deliveries"
								   "    WHERE status = 'sending' AND lease_expires_at < pg_catalog.now()"
								   "      AND NOT (id = ANY ($1))"
								   "      FOR NO KEY UPDATE SKIP LOCKED))",
								   1, argtypes, args, NULL, false, 0);
	}
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "reconciling leases failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Appends SPI's result rows (tenant_id, id, event_id, endpoint_id, attempts, event,
 * payload, ctid, message_id, xmax), claimed with lease, to list, copied into its context;
 * their endpoints' settings come later (claims_read_endpoints()).  The xmax is the
 * claim's own lock, which its update kept in the row version (row_unlocked.c).
 */
static int
append_claims(ClaimList *list, TimestampTz lease)
{
	MemoryContext old;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	int			n = (int) SPI_processed;

	if (n == 0)
		return 0;
	old = MemoryContextSwitchTo(list->mcxt);
	if (list->count + n > list->capacity)
	{
		list->capacity = Max(list->count + n, list->capacity * 2);
		list->items = list->items ? repalloc(list->items, sizeof(ClaimedDelivery) * list->capacity)
			: palloc(sizeof(ClaimedDelivery) * list->capacity);
	}
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		ClaimedDelivery *c = &list->items[list->count++];
		bool		isnull;
		Datum		d;

		memset(c, 0, sizeof(*c));
		c->tenant_id = ResultText(tup, desc, 1, NULL);
		c->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		c->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		c->endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		c->event = ResultText(tup, desc, 6, NULL);
		c->payload = ResultText(tup, desc, 7, &c->payload_len);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		ItemPointerCopy((ItemPointer) DatumGetPointer(d), &c->tid);
		c->message_id = ResultText(tup, desc, 9, NULL);
		c->lease = lease;
		c->claim_xmax = DatumGetTransactionId(SPI_getbinval(tup, desc, 10, &isnull));
	}
	MemoryContextSwitchTo(old);
	return n;
}

/*
 * Gives claim c the request settings of its endpoint.  Every path that makes or
 * refreshes a claim (fan-out, claim of due deliveries, the worker's refresh) reads
 * them with endpoint_settings.c's reader and hands them over here; the strings are
 * shared, not copied.  A claim whose event is gone stays unusable.
 */
void
StoreClaimTakeSettings(ClaimedDelivery *c, const EndpointSettings *ep)
{
	c->url = ep->url;
	c->secret = ep->secret;
	c->secret_error = ep->secret_error;
	c->retired = ep->retired;
	c->headers = ep->headers;
	c->timeout_ms = ep->timeout_ms;
	c->retry_schedule = ep->retry_schedule;
	c->rate_limit = ep->rate_limit;
	c->rate_limit_burst = ep->rate_limit_burst;
	c->usable = ep->url != NULL && ep->usable && c->payload != NULL;
	c->suspended = ep->url != NULL && ep->suspended && c->payload != NULL;
}

/*
 * Gives the claims list->items[first..] their endpoints' settings: each endpoint read
 * once, by the reader every path uses (endpoint_settings.c).
 */
static void
claims_read_endpoints(ClaimList *list, int first)
{
	HTAB	   *index;
	EndpointSettings *eps;
	int			n = 0;

	if (list->count == first)
		return;
	index = EndpointSettingsTable("integration claimed endpoints", 64, sizeof(ClaimEndpoint));
	eps = palloc(sizeof(EndpointSettings) * (list->count - first));
	for (int i = first; i < list->count; i++)
	{
		EndpointSettingsKey key = {list->items[i].endpoint_id, list->items[i].tenant_id};
		bool		found;
		ClaimEndpoint *ep = hash_search(index, &key, HASH_ENTER, &found);

		if (!found)
		{
			eps[n].tenant_id = list->items[i].tenant_id;
			eps[n].id = list->items[i].endpoint_id;
			ep->settings = &eps[n++];
		}
	}
	StoreReadEndpoints(eps, n, list->mcxt);
	for (int i = first; i < list->count; i++)
	{
		EndpointSettingsKey key = {list->items[i].endpoint_id, list->items[i].tenant_id};

		StoreClaimTakeSettings(&list->items[i],
							   ((ClaimEndpoint *) hash_search(index, &key, HASH_FIND, NULL))->settings);
	}
}

/*
 * Claims the deliveries whose ctids the CTE due selects (locked; due_ctes are the CTEs
 * that end with it), leases them
 * until $2, and returns what append_claims() reads: a claim whose event vanished is
 * returned all the same, to fail, never to hang.  LATERAL: one index probe per claimed
 * row, never a scan of all events.
 */
#define CLAIM_DUE(due_ctes) \
	"WITH " due_ctes "," \
	" claimed AS (" \
	"  UPDATE integration.deliveries d" \
	"     SET status = 'sending', next_attempt_at = NULL," \
	"         lease_expires_at = $2" \
	"   WHERE d.ctid = ANY (ARRAY(SELECT due.ctid FROM due))" \
	"  RETURNING d.ctid, d.xmax, d.tenant_id, d.id, d.event_id, d.endpoint_id, d.attempts)" \
	" SELECT c.tenant_id, c.id, c.event_id, c.endpoint_id, c.attempts, e.event, e.payload," \
	"        c.ctid, e.message_id, c.xmax" \
	"   FROM claimed c" \
	"   LEFT JOIN LATERAL (SELECT e.event, e.payload, e.message_id FROM integration.webhook_events e" \
	"                       WHERE e.tenant_id = c.tenant_id AND e.id = c.event_id) e ON true"

/*
 * The pending deliveries of endpoint k (a row with tenant_id and endpoint_id) whose
 * next_attempt_at is op bound, as conditions on deliveries d that only
 * deliveries_endpoint_due_idx can serve: a plain "d.next_attempt_at <= now()" lets the
 * planner, which cannot tell one endpoint's share of the rows from another's, walk
 * deliveries_due_idx and filter, that is all of an endpoint's backlog, for every probe.
 */
#define ENDPOINT_DUE(k, op, bound) \
	"d.tenant_id = " k ".tenant_id AND d.endpoint_id = " k ".endpoint_id" \
	" AND d.next_attempt_at IS NOT NULL" \
	" AND (d.tenant_id, d.endpoint_id, d.next_attempt_at) " op \
	" (" k ".tenant_id, " k ".endpoint_id, " bound ")"

/* Rows of the due index a claim that leaves endpoints out reads, in units of its limit. */
#define CLAIM_HEAD_FACTOR 4

/* Appends the ctid in column col of each SPI row to tids, once each; returns the count. */
static int
collect_ctids(ItemPointerData * tids, int n, int max, int col, int64 *excluded, int nexcluded)
{
	for (uint64 r = 0; r < SPI_processed && n < max; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, SPI_tuptable->tupdesc,
																	  col, &isnull));
		int64		endpoint = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, col + 1,
														   &isnull));
		bool		seen = false;

		/* bsearch() of no array at all is undefined, even of nothing in it. */
		if (nexcluded > 0 && bsearch(&endpoint, excluded, nexcluded, sizeof(int64), int64_cmp))
			continue;
		for (int i = 0; i < n && !seen; i++)
			seen = ItemPointerEquals(&tids[i], tid);
		if (!seen)
			ItemPointerCopy(tid, &tids[n++]);
	}
	return n;
}

/*
 * Picks up to limit due deliveries of endpoints not in excluded (sorted), without
 * locking them, and returns their ctids.  It reads a bounded head of the due index,
 * oldest first: the due backlog of an endpoint left out (at its limit, or its circuit
 * open) may be a million rows long, and the plain claim statement, whose filter is
 * checked row by row, walked all of it at every claim (46 ms at 194,000 rows, all in
 * cache).  Only when that head is all theirs are the other endpoints' due rows found,
 * one probe of deliveries_endpoint_due_idx per endpoint with pending rows, whatever
 * their backlogs.
 *
 * The head is planned for its first rows (CURSOR_OPT_FAST_PLAN), which is what it
 * wants: a bounded number of rows in index order.  Planned for all of them, its plan
 * depended on statistics.  Where the last ANALYZE saw no pending row (a new table, or
 * one whose backlog came after it), every plan reads "one row", an ordered scan of
 * deliveries_due_idx and a sort of what a full scan of deliveries_endpoint_due_idx
 * returns cost about the same, and the planner took the second: each claim then read
 * and sorted the whole backlog, 46% of the worker's time while it fanned 200,000
 * events out to a saturated endpoint (bench/run protection, perf), and the claim grew
 * with the backlog.  Planned for its first rows, the sort's start-up cost (all of its
 * input) weighs against it, and the ordered scan is taken on such statistics too
 * (regress worker_plans shows both plans).  That is a comparison of costs, not a
 * guarantee: it holds because the alternatives here cost more from the start.
 */
static int
pick_due_around(int limit, int64 *excluded, int nexcluded, ItemPointerData * tids)
{
	Oid			types[2] = {INT8OID, INT8ARRAYOID};
	Datum		args[2];
	int			head = nexcluded > 0 ? limit * CLAIM_HEAD_FACTOR : limit;
	int			n;

	args[0] = Int64GetDatum(head);
	SavedPlan(&claim_head_plan,
			  "SELECT d.ctid, d.endpoint_id FROM integration.deliveries d"
			  " WHERE d.next_attempt_at <= pg_catalog.now()"
			  " ORDER BY d.next_attempt_at LIMIT $1",
			  1, types, CURSOR_OPT_GENERIC_PLAN | CURSOR_OPT_FAST_PLAN);
	/* Not read-only: it must see what this transaction fanned out pending. */
	RunPlan(claim_head_plan, args, false, SPI_OK_SELECT, "finding due deliveries");
	n = collect_ctids(tids, 0, limit, 1, excluded, nexcluded);
	if (n == limit || SPI_processed < (uint64) head)
		return n;

	/*
	 * The endpoints with pending deliveries, one index probe each (a loose
	 * index scan), and the oldest due deliveries of those not left out.
	 */
	args[0] = Int64GetDatum(limit - n);
	args[1] = Int8ArrayParam(excluded, nexcluded);
	SavedPlan(&claim_others_plan,
			  "WITH RECURSIVE e(tenant_id, endpoint_id) AS ("
			  "   (SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d"
			  "     WHERE d.next_attempt_at IS NOT NULL"
			  "     ORDER BY d.tenant_id, d.endpoint_id LIMIT 1)"
			  "  UNION ALL"
			  "   SELECT x.tenant_id, x.endpoint_id FROM e CROSS JOIN LATERAL ("
			  "     SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d"
			  "      WHERE d.next_attempt_at IS NOT NULL"
			  "        AND (d.tenant_id, d.endpoint_id) > (e.tenant_id, e.endpoint_id)"
			  "      ORDER BY d.tenant_id, d.endpoint_id LIMIT 1) x)"
			  " SELECT r.ctid, e.endpoint_id FROM e CROSS JOIN LATERAL ("
			  "   SELECT d.ctid, d.next_attempt_at FROM integration.deliveries d"
			  "    WHERE " ENDPOINT_DUE("e", "<=", "pg_catalog.now()")
			  "    ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT $1) r"
			  "  WHERE NOT (e.endpoint_id = ANY ($2))"
			  "  ORDER BY r.next_attempt_at LIMIT $1",
			  2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(claim_others_plan, args, false, SPI_OK_SELECT, "finding other due deliveries");
	return collect_ctids(tids, n, limit, 1, excluded, nexcluded);
}

/*
 * Claims up to limit (at most STORE_BATCH) due pending deliveries (retries, dispatches,
 * redeliveries), oldest first, skipping endpoints in excluded (sorted), and appends
 * them to list.  Returns how many.  Due rows that someone else holds locked are
 * skipped, not waited for, and not replaced by later ones: they are claimed once free,
 * at the worker's next claim.
 */
int
StoreClaim(int lease_ms, int limit, int64 *excluded, int nexcluded, ClaimList *list)
{
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, TIDARRAYOID};
	Datum		args[3];
	ItemPointerData *tids;
	Datum	   *d;
	int			ntids;
	int			first;
	int			n;

	limit = Min(limit, STORE_BATCH);
	tids = palloc(sizeof(ItemPointerData) * limit);
	ntids = pick_due_around(limit, excluded, nexcluded, tids);
	if (ntids == 0)
		return 0;
	d = palloc(sizeof(Datum) * ntids);
	for (int i = 0; i < ntids; i++)
		d[i] = PointerGetDatum(&tids[i]);
	args[0] = Int64GetDatum(limit);
	args[1] = TimestampTzGetDatum(StoreLeaseExpiry(lease_ms));
	args[2] = PointerGetDatum(construct_array(d, ntids, TIDOID, sizeof(ItemPointerData),
											  false, TYPALIGN_SHORT));

	/*
	 * Locked by ctid: a row changed since it was read has another ctid and is
	 * not found; one locked by someone else is skipped.  The rows are found
	 * by their ctids alone (a TID scan), and whether each is still due is
	 * asked of the row locked, in the CTE's output.  Asked of the table, that
	 * condition implies the predicate of both partial indexes of pending
	 * rows, and on statistics from before a backlog (every path "one row")
	 * the planner scanned all of deliveries_endpoint_due_idx and filtered it
	 * by ctid: 120 to 200 ms a claim at 200,000 pending (auto_explain,
	 * bench/run protection). A CTE with FOR UPDATE is not inlined, so the
	 * condition stays outside.
	 */
	SavedPlan(&claim_tids_plan,
			  CLAIM_DUE("locked AS ("
						"  SELECT d.ctid, d.next_attempt_at FROM integration.deliveries d"
						"   WHERE d.ctid = ANY ($3)"
						"   FOR UPDATE SKIP LOCKED),"
						" due AS (SELECT l.ctid FROM locked l"
						"          WHERE l.next_attempt_at <= pg_catalog.now())"),
			  3, argtypes, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(claim_tids_plan, args, false, SPI_OK_SELECT, "claiming deliveries");
	first = list->count;
	n = append_claims(list, DatumGetTimestampTz(args[1]));
	claims_read_endpoints(list, first);
	return n;
}

/*
 * When the earliest pending delivery comes due after the given time (the last claim's
 * now()), leaving out endpoints in excluded; 0 when none will.  What was due by then
 * was the claim's to take: what it left behind is an excluded endpoint's, at its
 * limit, which the worker claims when that endpoint has room, or rows someone else
 * held locked.  Looking past them keeps this a short walk of the due index however
 * large the backlog of a saturated endpoint, and keeps the worker from waking for
 * rows it cannot take.
 *
 * It is the head of deliveries_due_idx, written as one (ORDER BY ... LIMIT 1), with a
 * generic plan for its first rows, as the claim's head is (pick_due_around()).  As
 * min() planned at each execution, its plan depended on statistics: where the last
 * ANALYZE saw no pending row, "next_attempt_at > $1" is one row, and the planner
 * aggregated a full scan of another partial index on pending rows
 * (deliveries_endpoint_due_idx or deliveries_pending_idx, whichever costs less)
 * instead of taking the first row of deliveries_due_idx.  With 100,000 pending
 * deliveries among 300,000 analyzed as none, a call read all 100,000: 41 ms, 120 ms
 * with an endpoint left out.  Now it reads the head of the index, 0.02 ms
 * (test/sql/worker_plans.sql shows the plans).
 *
 * Planned for its first row, it still took a sort where the last ANALYZE saw a few
 * pending rows among many (between two backlogs): "> $1" is then a third of a few
 * hundred rows, and a full scan of deliveries_pending_idx sorted cost less than the
 * ordered walk.  Beside a 100,000-event backlog to a saturated endpoint each call read
 * every pending delivery, 14 to 24 ms at 87,000 (auto_explain), at every claim cycle
 * of the drain, and those windows drained at 1,550 deliveries/s instead of 4,000
 * (bench/run backlog, bench/README.md).  So it is planned without a sort, as a SET
 * clause of a function would plan it: enable_sort off at a GUC nest level of its own
 * around its execution, hence around each planning of it, for this statement alone.
 * Without a sort, the only plan that returns rows in next_attempt_at order is the walk
 * of deliveries_due_idx.
 */
TimestampTz
StoreNextDue(TimestampTz after, int64 *excluded, int nexcluded)
{
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[2];
	bool		isnull;
	Datum		d;
	int			nestlevel;

	args[0] = TimestampTzGetDatum(after);
	args[1] = Int8ArrayParam(excluded, nexcluded);
	SavedPlan(&next_due_plan,
			  "SELECT d.next_attempt_at FROM integration.deliveries d"
			  " WHERE d.next_attempt_at > $1 AND NOT (d.endpoint_id = ANY ($2))"
			  " ORDER BY d.next_attempt_at LIMIT 1",
			  2, argtypes, CURSOR_OPT_GENERIC_PLAN | CURSOR_OPT_FAST_PLAN);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* Not read-only: it must see what this transaction claimed and requeued. */
	RunPlan(next_due_plan, args, false, SPI_OK_SELECT, "finding the next due delivery");
	AtEOXact_GUC(true, nestlevel);
	if (SPI_processed == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Claims one due delivery for each endpoint in probes (their circuits are half open),
 * the longest due first, through deliveries_endpoint_due_idx, and appends the claims
 * to list; for each endpoint that had none due, finds when its next one comes due.
 * Rows others hold locked are skipped, and such an endpoint is looked at again a
 * second later.
 */
void
StoreClaimProbes(int lease_ms, ProbeRequest *probes, int n, ClaimList *list)
{
	Oid			types[3] = {TEXTARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[3];
	char	  **tenants = palloc(sizeof(char *) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	int			first = list->count;
	int			nmissing = 0;
	int			rc;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		tenants[i] = (char *) probes[i].tenant_id;
		ids[i] = probes[i].endpoint_id;
		probes[i].found = false;
		probes[i].next_at = 0;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = TimestampTzGetDatum(StoreLeaseExpiry(lease_ms));
	args[2] = Int8ArrayParam(ids, n);
	rc = SPI_execute_with_args(CLAIM_DUE("due AS (SELECT p.ctid"
										 "    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($3))"
										 "         AS k(tenant_id, endpoint_id)"
										 "    CROSS JOIN LATERAL ("
										 "      SELECT d.ctid FROM integration.deliveries d"
										 "       WHERE " ENDPOINT_DUE("k", "<=", "pg_catalog.now()")
										 "       ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT 1"
										 "       FOR UPDATE SKIP LOCKED) p)"),
							   3, types, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "claiming probes failed: %s", SPI_result_code_string(rc));
	(void) append_claims(list, DatumGetTimestampTz(args[1]));
	claims_read_endpoints(list, first);
	for (int c = first; c < list->count; c++)
		for (int i = 0; i < n; i++)
			if (list->items[c].endpoint_id == probes[i].endpoint_id &&
				strcmp(list->items[c].tenant_id, probes[i].tenant_id) == 0)
				probes[i].found = true;

	for (int i = 0; i < n; i++)
		if (!probes[i].found)
		{
			tenants[nmissing] = (char *) probes[i].tenant_id;
			ids[nmissing++] = probes[i].endpoint_id;
		}
	if (nmissing == 0)
		return;
	args[0] = TextArrayParam(tenants, nmissing);
	args[1] = Int8ArrayParam(ids, nmissing);
	types[1] = INT8ARRAYOID;
	rc = SPI_execute_with_args("SELECT k.tenant_id, k.endpoint_id,"
							   "       (SELECT d.next_attempt_at FROM integration.deliveries d"
							   "         WHERE " ENDPOINT_DUE("k", ">=", "'-infinity'::timestamptz")
							   "         ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT 1)"
							   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
							   "       AS k(tenant_id, endpoint_id)",
							   2, types, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "finding due probes failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *tenant = SPI_getvalue(tup, desc, 1);
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		d = SPI_getbinval(tup, desc, 3, &isnull);
		TimestampTz next_at = isnull ? 0 : DatumGetTimestampTz(d);

		/* Due already, and skipped: someone holds it locked. */
		if (next_at != 0 && next_at <= GetCurrentTransactionStartTimestamp())
			next_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		for (int i = 0; i < n; i++)
			if (probes[i].endpoint_id == id && strcmp(probes[i].tenant_id, tenant) == 0)
				probes[i].next_at = next_at;
	}
}
