/*
 * inbound_store.c
 *		The SQL of inbound handlers: the claim of pending inbound events, fair across
 *		tenants and in order per object, and the run of a batch of them, in which each
 *		event's handlers and its new status commit together.
 *
 * Claiming.  Nothing is locked or written: a claim reads which events to run next,
 * and the run locks each again (an event claimed twice runs once, see below).  Two
 * statements:
 *   1. the tenants with pending events, one index probe each (a loose scan of
 *      inbound_events_due_idx, which also gives each tenant's earliest next_attempt_at),
 *      from a cursor on, until enough tenants with due events are found;
 *   2. for each such tenant, a cursor over its due events, oldest due first, from
 *      which a share of the claim is fetched; the shares are interleaved (the first of
 *      every tenant, then the second, ...) up to the limit.  So one tenant's backlog
 *      takes its share of a claim and no more; the cursor moves on to the next tenants
 *      when a claim had more tenants than room.
 * An event is due when next_attempt_at has come, and runnable when no earlier event
 * (received_at, then id) of its connector and object is pending: a later event of an
 * object waits while an earlier one is pending or waiting for a retry.  Events without
 * an object are not ordered.  Order across sessions that receive at the same time, or
 * commit out of order, is the order in which the worker sees them committed.
 * Two things keep statement 2 a walk of inbound_events_due_idx that stops after its
 * share, however stale the table's statistics: the check of earlier events sits under
 * an OR, where the planner keeps it a probe of inbound_events_pending_idx per candidate
 * (as a plain NOT EXISTS it became an anti-join over all of a tenant's pending events,
 * planned on statistics from before a backlog: 4 s per claim of a 5,000-event
 * backlog, against 0.3 ms); and it is fetched through a cursor planned for its first
 * rows (CURSOR_OPT_FAST_PLAN, cursor_tuple_fraction), where a LIMIT planned on those
 * statistics read and sorted the whole backlog (20 ms per claim of 5,000).
 * Every statement here takes a new snapshot (SPI's read_only false): a claim in the
 * transaction of a run sees what the run wrote, and the events it unblocked.
 *
 * Running.  One call runs a batch in the caller's transaction:
 *   1. each event is locked (FOR UPDATE SKIP LOCKED) if still pending, and read whole;
 *      one locked by another session, or no longer pending, is left alone (GONE);
 *   2. its handlers are the tenant's whose patterns match its name (event_matches(),
 *      as for webhook endpoints) and whose connector is its own or none, by id;
 *   3. each event's handlers run in a subtransaction of its own
 *      (InboundInvokeHandler()); an error rolls that event's handlers back, and only
 *      that: the attempt is counted and the event scheduled again by the retry
 *      schedule (retry_policy.c), or failed when no attempt is left.  The handler
 *      worker's pacer (inbound_pacer.c) picks the order and may end the run before
 *      every event ran: the others are left as they were (DEFERRED), for the next;
 *   4. one statement writes the new status of every event run, and a log row per
 *      failed attempt.
 * The handlers' writes and the status commit with the caller's transaction, or roll
 * back with it: after a crash the event is still pending and runs again, from scratch.
 * That is exactly once for whatever a handler writes in the database.  A subtransaction
 * per event that writes takes a subtransaction id; the worker keeps batches below the 64
 * that a backend caches (PGPROC_MAX_CACHED_SUBXIDS), past which every other snapshot of
 * the server gets slower while the transaction is open (INBOUND_BATCH, inbound_job.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "function_signature.h"
#include "inbound_store.h"
#include "retry_policy.h"
#include "spi_plan.h"
#include "subtransaction.h"
#include "table_statistics.h"

/* Tenants read per fetch of the loose scan. */
#define TENANT_FETCH 64
/* Longest error message kept of a handler's error. */
#define ERROR_MAX_LEN 2000

static SPIPlanPtr tenants_plan;
static SPIPlanPtr claim_plan;
static SPIPlanPtr lock_plan;
static SPIPlanPtr handlers_plan;
static SPIPlanPtr record_plan;

/*
 * The tables that a large transaction fills (see table_statistics.c): inbound_events,
 * which a batch of receive_webhook() calls, or of events inserted, fills in one
 * transaction.  The statements here keep their plans on statistics that count none
 * of its rows: the claim by design (see above), and a run reaches each event by its
 * primary key (a batch of 32 was still locked through it on such statistics, taken
 * while 5,000 events were being inserted).  The handlers' own SQL, receive_webhook()'s
 * deduplication and the backlog views read the table too, on the same statistics;
 * the handler worker, which every such insert wakes, analyzes it, as the delivery
 * worker does its own tables.
 */
static WatchedTable watched_tables[] =
{
	{
		"inbound_events", InvalidBlockNumber
	}
};
static TimestampTz watched_at = 0;

/* After DROP/CREATE EXTENSION the kept plans point at dropped relations. */
void
InboundForgetPlans(void)
{
	SPIPlanPtr *plans[] = {&tenants_plan, &claim_plan, &lock_plan, &handlers_plan, &record_plan};

	ForgetPlans(plans, lengthof(plans));
}

/*
 * Analyzes the handlers' tables whose statistics look stale, in a transaction of its
 * own, outside the cycle's (table_statistics.c).
 */
void
InboundAnalyzeIfStale(void)
{
	AnalyzeStaleTables(watched_tables, lengthof(watched_tables), &watched_at,
					   "analyzing inbound_events");
}

const char *
InboundStatusName(InboundStatus status)
{
	switch (status)
	{
		case INBOUND_GONE:
			return "gone";
		case INBOUND_DEFERRED:
			return "deferred";
		case INBOUND_PROCESSED:
			return "processed";
		case INBOUND_SKIPPED:
			return "skipped";
		case INBOUND_RETRY:
			return "pending";
		case INBOUND_FAILED:
			return "failed";
	}
	return "unknown";
}

/* ------------------------------------------------------------------------------------
 * Claiming
 * ------------------------------------------------------------------------------------ */

/* Whether the claim is to leave tenant out (req->skip_tenants). */
static bool
skipped(const InboundClaimRequest *req, const char *tenant)
{
	for (int i = 0; i < req->nskip; i++)
		if (strcmp(req->skip_tenants[i], tenant) == 0)
			return true;
	return false;
}

/*
 * Statement 1: up to req->limit tenants with due events after the cursor, into
 * tenants, those it is to skip left out; sets req->next_due when the scan saw every
 * tenant after the cursor.  Returns how many; *ended: the scan reached the last tenant.
 */
static int
due_tenants(InboundClaimRequest *req, char **tenants, bool *ended)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	Portal		portal;
	int			n = 0;
	TimestampTz next_due = 0;

	args[0] = CStringGetTextDatum(req->cursor);
	SavedPlan(&tenants_plan,
			  "WITH RECURSIVE t(tenant_id, first_at) AS ("
			  "  (SELECT e.tenant_id, e.next_attempt_at FROM integration.inbound_events e"
			  "    WHERE e.next_attempt_at IS NOT NULL AND e.tenant_id > $1"
			  "    ORDER BY e.tenant_id, e.next_attempt_at LIMIT 1)"
			  "  UNION ALL"
			  "  SELECT n.tenant_id, n.next_attempt_at FROM t,"
			  "   LATERAL (SELECT e.tenant_id, e.next_attempt_at FROM integration.inbound_events e"
			  "             WHERE e.next_attempt_at IS NOT NULL AND e.tenant_id > t.tenant_id"
			  "             ORDER BY e.tenant_id, e.next_attempt_at LIMIT 1) n)"
			  " SELECT t.tenant_id, t.first_at FROM t",
			  1, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	portal = SPI_cursor_open(NULL, tenants_plan, args, NULL, false);
	*ended = false;
	while (n < req->limit)
	{
		SPI_cursor_fetch(portal, true, TENANT_FETCH);
		if (SPI_processed == 0)
		{
			*ended = true;
			break;
		}
		for (uint64 i = 0; i < SPI_processed && n < req->limit; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			bool		isnull;
			TimestampTz first_at = DatumGetTimestampTz(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));

			if (first_at <= req->now)
			{
				char	   *tenant = SPI_getvalue(row, SPI_tuptable->tupdesc, 1);

				if (!skipped(req, tenant))
					tenants[n++] = tenant;
			}
			else if (next_due == 0 || first_at < next_due)
				next_due = first_at;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	req->next_due = *ended ? next_due : 0;
	return n;
}

/*
 * Statement 2, for one tenant: up to share of its due, runnable events not held
 * already, oldest due first, into out; returns how many.
 */
static int
tenant_share(InboundClaimRequest *req, const char *tenant, Datum held, int share,
			 InboundRef *out)
{
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[3];
	Portal		portal;
	int			n = 0;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = TimestampTzGetDatum(req->now);
	args[2] = held;
	SavedPlan(&claim_plan,
			  "SELECT e.id, e.connector_id FROM integration.inbound_events e"
			  " WHERE e.tenant_id = $1 AND e.next_attempt_at <= $2 AND e.id <> ALL ($3)"
			  "   AND (e.object_id IS NULL OR NOT EXISTS ("
			  "        SELECT FROM integration.inbound_events p"
			  "         WHERE p.tenant_id = e.tenant_id AND p.connector_id = e.connector_id"
			  "           AND p.object_id = e.object_id AND p.status = 'pending'"
			  "           AND (p.received_at, p.id) < (e.received_at, e.id)))"
			  " ORDER BY e.next_attempt_at, e.id",
			  3, argtypes, CURSOR_OPT_CUSTOM_PLAN | CURSOR_OPT_FAST_PLAN);
	portal = SPI_cursor_open(NULL, claim_plan, args, NULL, false);
	SPI_cursor_fetch(portal, true, share);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;

		strlcpy(out[n].tenant_id, tenant, sizeof(out[n].tenant_id));
		out[n].id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		out[n].connector_id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		n++;
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	return n;
}

/*
 * Up to req->limit due, runnable events not held already, fair across tenants (see the
 * banner), into out; returns how many.  The cursor moves past the tenants of this claim
 * when more were waiting than it took, and back to the start when the scan ended.
 */
int
InboundClaim(InboundClaimRequest *req, InboundRef *out)
{
	char	  **tenants;
	int			ntenants;
	bool		ended;
	int			share;
	Datum		held;
	InboundRef **shares;
	int		   *counts;
	int			n = 0;

	req->next_due = 0;
	if (req->limit <= 0)
		return 0;
	tenants = palloc(sizeof(char *) * req->limit);
	ntenants = due_tenants(req, tenants, &ended);
	if (ended)
		req->cursor[0] = '\0';
	else if (ntenants > 0)
		strlcpy(req->cursor, tenants[ntenants - 1], sizeof(req->cursor));
	if (ntenants == 0)
		return 0;

	/*
	 * Twice an even share each, so that tenants with fewer leave room to the
	 * others.
	 */
	share = (2 * req->limit + ntenants - 1) / ntenants;
	held = Int8ArrayParam(req->held, req->nheld);
	shares = palloc(sizeof(InboundRef *) * ntenants);
	counts = palloc(sizeof(int) * ntenants);
	for (int t = 0; t < ntenants; t++)
	{
		shares[t] = palloc(sizeof(InboundRef) * share);
		counts[t] = tenant_share(req, tenants[t], held, share, shares[t]);
	}
	/* Interleaved: the first of every tenant's share, then the second, ... */
	for (int round = 0; round < share && n < req->limit; round++)
		for (int t = 0; t < ntenants && n < req->limit; t++)
			if (round < counts[t])
				out[n++] = shares[t][round];
	return n;
}

/* ------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------ */

/* One matching handler of an event. */
typedef struct RunHandler
{
	char	   *name;
	char	   *fn;				/* by signature (function_signature.c) */
	Oid			role;
} RunHandler;

/* One locked event of a run. */
typedef struct RunEvent
{
	int			index;			/* into the refs and outcomes */
	char	   *event;
	int			attempts;		/* before this run */
	Datum		row;			/* integration.inbound_events */
	RunHandler *handlers;
	int			nhandlers;
} RunEvent;

/* Locks and reads the events of refs still pending; returns them, in refs' order. */
static RunEvent *
lock_events(const InboundRef *refs, int n, int *nlocked, Oid *row_type)
{
	Oid			argtypes[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	char	  **tenants = palloc(sizeof(char *) * n);
	int64	   *ids = palloc(sizeof(int64) * n);
	RunEvent   *events = palloc0(sizeof(RunEvent) * n);
	bool	   *locked = palloc0(sizeof(bool) * n);
	RunEvent   *found = palloc0(sizeof(RunEvent) * n);
	int			count = 0;

	for (int i = 0; i < n; i++)
	{
		tenants[i] = (char *) refs[i].tenant_id;
		ids[i] = refs[i].id;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = Int8ArrayParam(ids, n);

	/*
	 * By the primary key alone: "status = 'pending'" here would let the
	 * planner pick inbound_events_pending_idx, and walk it for every key, on
	 * statistics from before a backlog.  The status is checked on the locked
	 * row instead.
	 */
	RunPlan(SavedPlan(&lock_plan,
					  "SELECT e.tenant_id, e.id, e.event, e.attempts, e.status = 'pending', e"
					  "  FROM unnest($1, $2) AS r(tenant_id, id)"
					  "  JOIN integration.inbound_events e ON e.tenant_id = r.tenant_id AND e.id = r.id"
					  "   FOR UPDATE OF e SKIP LOCKED",
					  2, argtypes, CURSOR_OPT_CUSTOM_PLAN),
			args, false, SPI_OK_SELECT, "locking inbound events");
	*row_type = SPI_gettypeid(SPI_tuptable->tupdesc, 6);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	row = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *tenant = SPI_getvalue(row, desc, 1);
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));

		if (!DatumGetBool(SPI_getbinval(row, desc, 5, &isnull)))
			continue;			/* done meanwhile */

		for (int i = 0; i < n; i++)
		{
			if (locked[i] || refs[i].id != id || strcmp(refs[i].tenant_id, tenant) != 0)
				continue;
			locked[i] = true;
			found[i].index = i;
			found[i].event = SPI_getvalue(row, desc, 3);
			found[i].attempts = DatumGetInt32(SPI_getbinval(row, desc, 4, &isnull));
			found[i].row = datumCopy(SPI_getbinval(row, desc, 6, &isnull), false, -1);
			break;
		}
	}
	for (int i = 0; i < n; i++)
		if (locked[i])
			events[count++] = found[i];
	*nlocked = count;
	return events;
}

/* The handlers of each locked event, in the order of their ids. */
static void
find_handlers(const InboundRef *refs, RunEvent *events, int n)
{
	Oid			argtypes[3] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[3];
	char	  **tenants = palloc(sizeof(char *) * n);
	char	  **names = palloc(sizeof(char *) * n);
	int64	   *connectors = palloc(sizeof(int64) * n);
	uint64		r = 0;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		tenants[i] = (char *) refs[events[i].index].tenant_id;
		names[i] = events[i].event;
		connectors[i] = refs[events[i].index].connector_id;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = TextArrayParam(names, n);
	args[2] = Int8ArrayParam(connectors, n);
	RunPlan(SavedPlan(&handlers_plan,
					  "SELECT r.ord, h.name, h.handler, h.run_as::oid"
					  "  FROM unnest($1, $2, $3) WITH ORDINALITY AS r(tenant_id, event, connector_id, ord)"
					  "  JOIN integration.inbound_handlers h ON h.tenant_id = r.tenant_id"
					  " WHERE (h.connector_id IS NULL OR h.connector_id = r.connector_id)"
					  "   AND integration.event_matches(h.events, r.event)"
					  " ORDER BY r.ord, h.id",
					  3, argtypes, CURSOR_OPT_CUSTOM_PLAN),
			args, false, SPI_OK_SELECT, "finding inbound handlers");
	for (int i = 0; i < n; i++)
	{
		RunEvent   *ev = &events[i];
		uint64		first = r;

		while (r < SPI_processed)
		{
			bool		isnull;

			if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)) != i + 1)
				break;
			r++;
		}
		ev->nhandlers = (int) (r - first);
		ev->handlers = palloc(sizeof(RunHandler) * Max(ev->nhandlers, 1));
		for (int h = 0; h < ev->nhandlers; h++)
		{
			HeapTuple	row = SPI_tuptable->vals[first + h];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;

			ev->handlers[h].name = SPI_getvalue(row, desc, 2);
			ev->handlers[h].fn = SPI_getvalue(row, desc, 3);
			ev->handlers[h].role = DatumGetObjectId(SPI_getbinval(row, desc, 4, &isnull));
		}
	}
}

/* One event's handlers, for run_handlers(). */
typedef struct HandlersRun
{
	const InboundRef *ref;
	RunEvent   *ev;
	Oid			row_type;
	int			timeout_ms;
	int			current;		/* the handler running */
} HandlersRun;

static void
invoke_handlers(void *arg)
{
	HandlersRun *hr = arg;
	RunEvent   *ev = hr->ev;

	for (hr->current = 0; hr->current < ev->nhandlers; hr->current++)
	{
		RunHandler *h = &ev->handlers[hr->current];
		Oid			fn = FunctionBySignature(h->fn);

		if (!OidIsValid(fn))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("function %s of inbound handler \"%s\" does not exist", h->fn, h->name),
					 errdetail("Column handler names the function by signature: it was renamed, moved or dropped since the handler was registered."),
					 errhint("Register the handler again with integration.on_inbound(..., replace => true).")));
		/* It sees what the handlers before it wrote. */
		CommandCounterIncrement();
		PushActiveSnapshot(GetTransactionSnapshot());
		InboundInvokeHandler(fn, h->role, hr->ref->tenant_id, ev->row, hr->row_type,
							 hr->timeout_ms);
		PopActiveSnapshot();
	}
}

/*
 * Runs the handlers of ev in a subtransaction; false with *error set when one raised,
 * whose effects, and those of the handlers before it, are then undone.
 */
static bool
run_handlers(const InboundRef *ref, RunEvent *ev, Oid row_type, int timeout_ms, char **error)
{
	HandlersRun hr = {ref, ev, row_type, timeout_ms, 0};
	ErrorData  *edata;

	if (RunInSubtransaction(invoke_handlers, &hr, CurrentMemoryContext, &edata))
		return true;
	*error = psprintf("handler %s: %.*s (SQLSTATE %s)", ev->handlers[hr.current].name,
					  ERROR_MAX_LEN, edata->message, unpack_sql_state(edata->sqlerrcode));
	FreeErrorData(edata);
	return false;
}

/* A failed attempt: scheduled again by the retry schedule, or failed for good. */
static void
attempt_failed(InboundOutcome *out, int attempts_before, char *error)
{
	AttemptFailure failure = {0, NULL};
	TimestampTz now = GetCurrentTimestamp();
	int64		delay;

	out->attempts = attempts_before + 1;
	out->error = error;
	delay = RetryDecide(DefaultRetrySchedule(), out->attempts, &failure, now,
						pg_prng_double(&pg_global_prng_state));
	if (delay < 0)
	{
		out->status = INBOUND_FAILED;
		out->next_attempt_at = 0;
	}
	else
	{
		out->status = INBOUND_RETRY;
		out->next_attempt_at = TimestampTzPlusMilliseconds(now, delay);
	}
}

/* Writes the outcomes of the events run, and a log row per failed attempt. */
static void
record(const InboundRef *refs, RunEvent *events, int n, InboundOutcome *out)
{
	Oid			argtypes[6] = {TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
	TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[6];
	char	  **tenants = palloc(sizeof(char *) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	char	  **statuses = palloc(sizeof(char *) * Max(n, 1));
	char	  **errors = palloc(sizeof(char *) * Max(n, 1));
	Datum	   *attempts = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *next_at = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *next_null = palloc(sizeof(bool) * Max(n, 1));

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		InboundOutcome *o = &out[events[i].index];

		tenants[i] = (char *) refs[events[i].index].tenant_id;
		ids[i] = refs[events[i].index].id;
		statuses[i] = (char *) InboundStatusName(o->status);
		errors[i] = o->error;
		attempts[i] = Int32GetDatum(o->attempts);
		next_at[i] = TimestampTzGetDatum(o->next_attempt_at);
		next_null[i] = o->status != INBOUND_RETRY;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = Int8ArrayParam(ids, n);
	args[2] = TextArrayParam(statuses, n);
	args[3] = ArrayParam(attempts, NULL, n, INT4OID);
	args[4] = TextArrayParam(errors, n);
	args[5] = ArrayParam(next_at, next_null, n, TIMESTAMPTZOID);
	RunPlan(SavedPlan(&record_plan,
					  "WITH r AS (SELECT * FROM unnest($1, $2, $3, $4, $5, $6)"
					  "             AS r(tenant_id, id, status, attempts, error, next_at)),"
					  " u AS (UPDATE integration.inbound_events e"
					  "          SET status = r.status, attempts = r.attempts, last_error = r.error,"
					  "              next_attempt_at = r.next_at,"
					  "              processed_at = CASE WHEN r.status = 'pending' THEN NULL ELSE now() END"
					  "         FROM r"
					  "        WHERE e.tenant_id = r.tenant_id AND e.id = r.id"
					  "    RETURNING e.tenant_id, e.id, e.connector_id, e.event, e.status, e.attempts,"
					  "              e.last_error, e.next_attempt_at)"
					  " INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, context)"
					  " SELECT u.tenant_id, CASE WHEN u.status = 'failed' THEN 'error' ELSE 'warning' END,"
					  "        'inbound', CASE WHEN u.status = 'failed' THEN 'inbound.failed'"
					  "                        ELSE 'inbound.handler_failed' END,"
					  "        format('inbound event %s (%s), attempt %s: %s', u.id, u.event, u.attempts,"
					  "               u.last_error),"
					  "        jsonb_build_object('inbound_id', u.id, 'connector_id', u.connector_id,"
					  "                           'event', u.event, 'attempt', u.attempts,"
					  "                           'error', u.last_error, 'next_attempt_at', u.next_attempt_at)"
					  "   FROM u WHERE u.last_error IS NOT NULL",
					  6, argtypes, CURSOR_OPT_CUSTOM_PLAN),
			args, false, SPI_OK_INSERT, "recording inbound outcomes");
}

/* Runs one locked event's handlers, if any, and sets its outcome. */
static void
run_event(const InboundRef *ref, RunEvent *ev, Oid row_type, int timeout_ms, InboundOutcome *o)
{
	char	   *error = NULL;

	if (ev->nhandlers == 0)
	{
		/* No handler wants it: done, without an attempt. */
		o->status = INBOUND_SKIPPED;
		o->attempts = ev->attempts;
	}
	else if (run_handlers(ref, ev, row_type, timeout_ms, &error))
	{
		o->status = INBOUND_PROCESSED;
		o->attempts = ev->attempts + 1;
	}
	else
		attempt_failed(o, ev->attempts, error);
}

/*
 * Runs the handlers of the events of refs (see the banner) and records their outcomes,
 * in the caller's transaction; out[i] is what became of refs[i].  timeout_ms bounds
 * each handler call (0: not at all; see InboundInvokeHandler()).  pacer, when not NULL,
 * picks the order and may end the run early (inbound_pacer.c): the events it did not
 * get to are DEFERRED, unchanged, their locks kept to the commit.  Without one, every
 * event runs, in the order of refs.  Reordering never breaks the order of an object's
 * events: a claim never takes an event while an earlier one of its object is pending.
 */
void
InboundRun(const InboundRef *refs, int n, int handler_timeout_ms, InboundPacer *pacer,
		   InboundOutcome *out)
{
	RunEvent   *events;
	int			nlocked;
	Oid			row_type;
	const char **tenants;
	bool	   *candidate;
	RunEvent   *ran;
	int			nran = 0;

	for (int i = 0; i < n; i++)
	{
		memset(&out[i], 0, sizeof(InboundOutcome));
		out[i].status = INBOUND_GONE;
	}
	if (n == 0)
		return;
	events = lock_events(refs, n, &nlocked, &row_type);
	find_handlers(refs, events, nlocked);
	tenants = palloc(sizeof(char *) * Max(nlocked, 1));
	candidate = palloc(sizeof(bool) * Max(nlocked, 1));
	ran = palloc(sizeof(RunEvent) * Max(nlocked, 1));
	for (int i = 0; i < nlocked; i++)
	{
		tenants[i] = refs[events[i].index].tenant_id;
		candidate[i] = true;
	}
	if (pacer != NULL)
		InboundPacerBeginRun(pacer);
	for (;;)
	{
		int			i;
		TimestampTz started;

		if (pacer != NULL)
			i = InboundPacerNext(pacer, tenants, candidate, nlocked);
		else
			i = nran < nlocked ? nran : -1;
		if (i < 0)
			break;
		candidate[i] = false;
		started = GetCurrentTimestamp();
		run_event(&refs[events[i].index], &events[i], row_type, handler_timeout_ms,
				  &out[events[i].index]);
		if (pacer != NULL)
			InboundPacerCharge(pacer, tenants[i], GetCurrentTimestamp() - started);
		ran[nran++] = events[i];
	}
	for (int i = 0; i < nlocked; i++)
		if (candidate[i])
			out[events[i].index].status = INBOUND_DEFERRED;
	record(refs, ran, nran, out);
}

/*
 * Records a failed attempt of ref's event whose cause is not one handler's error (the
 * transaction that ran it alone failed, at commit say): scheduled again or failed, as
 * for a handler's error.  GONE when it is no longer pending or someone holds it locked.
 */
void
InboundRecordFailure(const InboundRef *ref, const char *error, InboundOutcome *out)
{
	RunEvent   *events;
	int			nlocked;
	Oid			row_type;

	memset(out, 0, sizeof(InboundOutcome));
	out->status = INBOUND_GONE;
	events = lock_events(ref, 1, &nlocked, &row_type);
	if (nlocked == 0)
		return;
	attempt_failed(out, events[0].attempts,
				   psprintf("the transaction of its handlers failed: %.*s", ERROR_MAX_LEN, error));
	record(ref, events, 1, out);
}
