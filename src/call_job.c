/*
 * call_job.c
 *		Connectors' queued API calls (call_connector()) as a kind of work of the worker.
 *
 * Where calls come from.  call_connector() wakes the worker at commit
 * (WORKER_WAKE_CALLS); a retry coming due and the idle recheck wake it by timer.  A
 * claim (CallStoreClaim(), call_store.c) reads due calls, at most per-target's worth
 * per connector, and queues each in the scheduler under its tenant and connector (the
 * target), like a delivery: the scheduler's round-robin over tenants and its caps
 * decide when each starts, and its request slots are shared with deliveries.  Nothing
 * is written by a claim.
 *
 * How a call goes out.  JobKind.start only moves the call to the ready list: building
 * it runs its kind's request adapter, SQL, which needs a transaction.  The next store
 * transaction locks each ready call, counts its attempt and marks it 'sending'
 * (CallStoreBeginAttempt()), and builds its request as the role that queued it, with
 * its tenant selected (connector_request.c); once that commits, the requests start on
 * the worker's HTTP client, as deliveries do, and the loop never waits for them.  A
 * call built when it is sent goes out with its connector as it is then.
 *
 * How it ends.  A finished request waits in the done list for the next store
 * transaction, which judges it through the kind's response adapter and records it
 * (CallStoreRecord()): succeeded, failed, or pending again after a delay: the
 * platform's (the adapter's retry_after, else the response's Retry-After), else the
 * retry schedule's (the connector's settings.retry_schedule, else
 * integration.retry_schedule).  A platform's delay also holds the connector's other
 * calls back (SchedulerBackOff()): it speaks for the account, not for one call.  A
 * call's request slot is given back once its outcome is committed.
 *
 * A sync run's pages.  Recording a page (sql/sync.sql's page trigger) queues the next
 * page's call in the same transaction; the worker begins that call there too, in the
 * finished page's request slot (begin_next(), SchedulerMayHandOver()), when the
 * connector's limits would let it start now and no other work waits for the slot, so
 * that it goes out at commit: one transaction between two pages, not a record, a claim
 * and a begin.  Otherwise it is claimed as any call is.  Nothing changes for a crash:
 * the next page's call is 'sending' once that transaction commits, and is taken back
 * like any call.  Better still, when the response adapter has named the next page and
 * it is a GET, its request is built and sent at once, before the page goes through the
 * gate (request_ahead()): the page is written while the next one is on its way, and
 * begin_next() gives the call that request if it was built from the same payload.  A
 * GET sent for a call that a crash or a failed transaction then never wrote is sent
 * again by the next run or attempt, which a GET allows; its response is dropped
 * (CALL_ORPHAN).  Begun or not, a request sent ahead holds a request slot of its
 * connector from the commit that would have begun its call until it is back: the
 * finished page's, or one of its own when that transaction failed (the page keeps
 * its slot to be recorded again); the scheduler's limits count what is on its way.
 * A token taken for a next page whose request then does not go (not built, or its
 * transaction failed) goes back (SchedulerHandOverUndone()).
 *
 * One transaction per step does it all: record, take back, begin, claim.  Each call's
 * adapters run in a subtransaction, so what one raises fails that call (a request
 * adapter's object_not_in_prerequisite_state, a connector not ready yet, is retried on
 * the schedule instead), never the others.  Errors that are no call's fault (lock
 * waits, cancels, serialization failures) fail the transaction, which is tried again
 * after a pause; after RECORD_MAX_FAILURES failures in a row the calls held are
 * dropped, and their leases bring those that were in flight back.
 *
 * Time.  The adapters are the tenants' code, run in this process, which runs every
 * tenant's deliveries and calls: each adapter call is cut short after
 * integration.adapter_timeout (connector_request.c, time_limit.c).  That cancel is the
 * call's fault, not the worker's: a failed attempt of that call, rolled back with its
 * subtransaction and retried on its schedule like a 5xx, while the transaction goes on
 * for the other calls.  So is a lock wait of an adapter's own SQL past the worker's
 * lock_timeout (1 s, which ends it first while the limit is longer), or a deadlock it
 * lost: otherwise a tenant whose adapter waits on a lock it holds elsewhere would fail
 * every transaction, and every other call in it, for as long.  A real cancel of the
 * worker still fails the transaction.
 *
 * Crashes.  A call 'sending' when a worker died may have reached the platform: the
 * next worker's first transaction makes it pending again, and it is sent again with
 * the same idempotency key.  Its attempt counts, so a call that kills the worker every
 * time runs out of attempts instead of killing it for ever.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "call_job.h"
#include "call_store.h"
#include "circuit_store.h"
#include "connector_request.h"
#include "delivery_store.h"
#include "integration.h"
#include "retry_policy.h"
#include "subtransaction.h"
#include "time_limit.h"
#include "worker_slots.h"

#define ERROR_PAUSE_MS 1000
/* How long a call found locked by another session is not claimed again. */
#define PASSED_OVER_MS 1000
#define MAX_PASSED_OVER 64
#define RECORD_MAX_FAILURES 3
#define LEASE_MARGIN_MS 60000

typedef enum CallItemState
{
	CALL_QUEUED,				/* in the scheduler */
	CALL_READY,					/* started by the scheduler, to build */
	CALL_IN_FLIGHT,				/* its request runs */
	CALL_DONE,					/* its request came back, to record */
	CALL_AHEAD,					/* a sync run's next page, its request sent
								 * before its call is begun (request_ahead()) */
	CALL_ORPHAN					/* such a request whose call was not begun: it
								 * holds a request slot until its response,
								 * which counts for its connector's rate and
								 * circuit only, is back */
} CallItemState;

/* One claimed call. */
typedef struct CallItem
{
	SchedItem	item;			/* first: the scheduler hands this back */
	CallRef		ref;
	CallItemState state;
	dlist_node	node;			/* in CallJob.ready, in_flight or done */
	struct CallItem *ahead;		/* during a cycle that records it: the request
								 * sent ahead for the next page */
	bool		handed_token;	/* during a cycle that records it: the next
								 * page begun in its slot took a token
								 * (build_one()), which goes back if no
								 * request goes */

	/* Its attempt, from when it is built until it is recorded (cxt != NULL). */
	MemoryContext cxt;
	ConnectorTarget target;
	ConnectorCredentials *creds;	/* for redaction; wiped with the attempt */
	char	   *operation;
	Oid			queued_by;
	Jsonb	   *payload;		/* its call's */
	int			attempts;		/* this one included */
	const RetrySchedule *policy;
	HttpRequest req;
} CallItem;

typedef struct CallJob
{
	WorkerServices *svc;
	MemoryContext cxt;			/* the items */
	dlist_head	ready;
	int			nready;
	dlist_head	in_flight;
	dlist_head	done;
	int			ndone;
	int			nheld;			/* in any state */

	bool		claim_needed;	/* due calls may be waiting */
	bool		reconcile_all;	/* the first transaction: take back every
								 * 'sending' call */
	bool		reconcile_needed;	/* take back calls whose lease ran out */
	TimestampTz reconcile_at;	/* when to, after calls were dropped; 0: never */
	TimestampTz next_due;		/* 0: nothing pending */
	TimestampTz next_recheck;

	/*
	 * Calls an attempt found locked by others, left out of claims for a
	 * while.
	 */
	int64		passed_over[MAX_PASSED_OVER];
	int			npassed;
	TimestampTz passed_until;

	TimestampTz pause_until;
	int			failures;		/* transactions in a row */
	int			transition_failures;	/* storing circuit transitions, in a
										 * row */
	bool		extension_gone;
} CallJob;

/* What became of a ready call in a store transaction. */
typedef enum BuildResult
{
	BUILD_SENT,					/* built and begun: its request starts at
								 * commit */
	BUILD_WAITS,				/* its connector is disabled: it stays pending */
	BUILD_PASSED,				/* locked by another session, or not pending;
								 * a next page: not due, or not let start in
								 * the slot of the page before */
	BUILD_ENDED					/* recorded without a request */
} BuildResult;

/* What one store transaction is asked to do, and what it found. */
typedef struct CallCycle
{
	CallJob    *job;
	CallItem  **record;			/* done calls to record */
	int			nrecord;
	TimestampTz *back_off;		/* per recorded call: hold its connector
								 * until; 0: no */
	CallItem  **next;			/* per recorded call: the next page begun in
								 * its slot; NULL: none */
	CallItem  **build;			/* ready calls to begin */
	int			nbuild;
	BuildResult *built;
	bool	   *gone;			/* per call begun: its connector was deleted */
	bool		reconcile;
	bool		reconcile_all;
	int64	   *held;			/* ids of the calls held, and passed over */
	int			nheld;
	bool		claim;
	CallClaimRequest req;
	CallRef    *claimed;		/* out; room for req.limit + probe_room */
	int			probe_room;
	int			nclaimed;		/* out */
	TimestampTz next_retry;		/* out: the first retry it scheduled; 0: none */
	uint64		transitions_upto;	/* out: circuit transitions stored; 0:
									 * none */
	int			succeeded;		/* out */
	int			failed_attempts;	/* out */
} CallCycle;

static bool call_start(SchedItem *item, void *arg);

const JobKind call_job_kind = {
	.name = "call",
	.target = "connector",
	.start = call_start,
};

/* How long a call may stay 'sending' before another worker may take it back. */
static int
lease_ms(void)
{
	return integration_request_timeout_ms + LEASE_MARGIN_MS;
}

/* Calls held in memory at most, in all states. */
static int
hold_limit(void)
{
	return Max(2 * integration_max_concurrency, 16);
}

/* ------------------------------------------------------------------------------------
 * Items
 * ------------------------------------------------------------------------------------ */

/* Forgets what an attempt holds: the credentials wiped, the request released. */
static void
attempt_release(CallItem *ci)
{
	if (ci->cxt == NULL)
		return;
	if (ci->creds)
		ConnectorCredentialsFree(ci->creds);
	ConnectorRequestRelease(&ci->req);
	MemoryContextDelete(ci->cxt);
	ci->cxt = NULL;
	ci->creds = NULL;
	memset(&ci->target, 0, sizeof(ci->target));
	memset(&ci->req, 0, sizeof(ci->req));
	ci->operation = NULL;
	ci->payload = NULL;
	ci->policy = NULL;
}

/*
 * Gives a request's slot back and frees it; its node is off every list.  A slot that
 * leaves its connector room asks for a claim, unless ask_claim is false.
 */
static void
request_forget(CallJob *j, CallItem *ci, bool ask_claim)
{
	if (SchedulerFinished(j->svc->scheduler, ci->item.target, GetCurrentTimestamp()) &&
		ask_claim)
		j->claim_needed = true; /* its connector has room again */
	attempt_release(ci);
	pfree(ci);
}

/* Gives a call's request slot back and forgets it; its node is off every list. */
static void
item_forget(CallJob *j, CallItem *ci, bool ask_claim)
{
	j->nheld--;
	request_forget(j, ci, ask_claim);
}

/* The scheduler's JobKind.start: the call is built in the next store transaction. */
static bool
call_start(SchedItem *item, void *arg)
{
	CallJob    *j = arg;
	CallItem   *ci = (CallItem *) item;

	ci->state = CALL_READY;
	dlist_push_tail(&j->ready, &ci->node);
	j->nready++;
	return true;
}

/* SchedItemVisitor: a queued call its connector's opened circuit gives back. */
static void
give_back(SchedItem *item, void *arg)
{
	CallJob    *j = arg;

	/* Nothing was written for it: it waits in the table, pending. */
	j->nheld--;
	pfree(item);
}

/*
 * Tells the scheduler what the connector made of a request, for its rate limit and
 * circuit (WorkerReportRequest()): a Retry-After holds all the connector's calls back.
 */
static void
report_outcome(CallJob *j, SchedItem *item, const HttpRequest *req)
{
	SchedReportAction action = WorkerReportRequest(j->svc->scheduler, item, req);

	if (action == SCHED_REPORT_OPENED)
		SchedulerTakeQueued(j->svc->scheduler, item->target, give_back, j, GetCurrentTimestamp());
	else if (action == SCHED_REPORT_CLOSED)
		j->claim_needed = true; /* what waited while it was open */
}

/* WorkerKindOps.finished: a request came back; it is judged in the next transaction. */
static void
call_finished(void *state, SchedItem *item, HttpRequest *req)
{
	CallJob    *j = state;
	CallItem   *ci = (CallItem *) item;

	Assert(req == &ci->req);
	/* The cycle that sent a request ahead makes it a call's or an orphan. */
	Assert(ci->state != CALL_AHEAD);
	report_outcome(j, item, req);
	if (ci->state == CALL_ORPHAN)
	{
		/*
		 * Sent ahead for a call that was not begun: nobody's response, but
		 * the connector's answer all the same, and its slot goes back only
		 * now.
		 */
		dlist_delete(&ci->node);
		request_forget(j, ci, true);
		return;
	}
	Assert(ci->state == CALL_IN_FLIGHT);
	dlist_delete(&ci->node);
	ci->state = CALL_DONE;
	dlist_push_tail(&j->done, &ci->node);
	j->ndone++;
}

typedef struct HeldIds
{
	int64	   *ids;
	int			n;
} HeldIds;

static void
collect_queued(SchedItem *item, void *arg)
{
	HeldIds    *held = arg;

	if (item->kind == &call_job_kind)
		held->ids[held->n++] = ((CallItem *) item)->ref.id;
}

static void
collect_list(HeldIds *held, dlist_head *list)
{
	dlist_iter	iter;

	dlist_foreach(iter, list)
	{
		CallItem   *ci = dlist_container(CallItem, node, iter.cur);

		/*
		 * A request sent ahead holds no call (nor a place in nheld): begun,
		 * it is CALL_IN_FLIGHT by the next cycle; not begun, an orphan.
		 */
		if (ci->state == CALL_AHEAD || ci->state == CALL_ORPHAN)
			continue;
		held->ids[held->n++] = ci->ref.id;
	}
}

/* Ids a claim or a take-back must leave out: every call held here, and those passed over. */
static HeldIds
held_ids(CallJob *j)
{
	HeldIds		held;

	held.ids = palloc(sizeof(int64) * (j->nheld + j->npassed + 1));
	held.n = 0;
	SchedulerForEachQueued(j->svc->scheduler, collect_queued, &held);
	collect_list(&held, &j->ready);
	collect_list(&held, &j->in_flight);
	collect_list(&held, &j->done);
	for (int i = 0; i < j->npassed; i++)
		held.ids[held.n++] = j->passed_over[i];
	return held;
}

/* ------------------------------------------------------------------------------------
 * One call's part of a store transaction, in a subtransaction
 * ------------------------------------------------------------------------------------ */

/*
 * Whether an error of a call's subtransaction is the call's fault even though
 * WorkerErrorIsTransient() says no work's: an adapter cut short by
 * integration.adapter_timeout (a cancel's SQLSTATE), and a lock wait past
 * lock_timeout, a deadlock or a serialization failure met by the adapter's own SQL.  A
 * real cancel or shutdown of the worker stays the worker's, wherever it lands.
 */
static bool
adapter_fault(const ErrorData *edata)
{
	if (TimeLimitExceeded(edata))
		return true;
	return ConnectorAdapterRaised() && edata->sqlerrcode != ERRCODE_QUERY_CANCELED &&
		edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN;
}

/*
 * Runs fn(arg) in a subtransaction.  An error that is no call's fault goes on and
 * fails the transaction; any other is rolled back and returned in *error (copied into
 * errcxt), and false returned.
 */
static bool
in_subtransaction(SubtransactionFn fn, void *arg, MemoryContext errcxt, ErrorData **error)
{
	ConnectorAdapterForget();
	if (RunInSubtransaction(fn, arg, errcxt, error))
		return true;
	if (WorkerErrorIsTransient((*error)->sqlerrcode) && !adapter_fault(*error))
		ReThrowError(*error);
	return false;
}

/*
 * in_subtransaction() building ci, a call item this cycle made and nothing holds yet
 * (begin_next(), request_ahead()).  An error that fails the transaction goes on
 * without it: no failure path (run_cycle()) can find it, so its attempt (the
 * credentials wiped, the request released, its context deleted) and the item itself
 * are freed on the way, or the job's long-lived context would keep them.
 */
static bool
build_unheld(CallItem *ci, SubtransactionFn fn, void *arg, MemoryContext errcxt,
			 ErrorData **error)
{
	volatile bool built = false;

	PG_TRY();
	{
		built = in_subtransaction(fn, arg, errcxt, error);
	}
	PG_CATCH();
	{
		attempt_release(ci);
		pfree(ci);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return built;
}

/*
 * Whether an adapter's error is worth another attempt on the schedule: its time limit,
 * and the errors that are transient by nature (a lock wait, a deadlock), which
 * in_subtransaction() let through as the call's.
 */
static bool
adapter_retriable(const ErrorData *edata)
{
	return TimeLimitExceeded(edata) || WorkerErrorIsTransient(edata->sqlerrcode);
}

/*
 * A failed attempt that the schedule may try again: pending again after its delay,
 * or failed when the schedule has no attempt left.
 */
static void
outcome_retry(CallOutcome *o, const RetrySchedule *policy)
{
	int64		delay = NextRetryDelayMs(policy, o->attempts, -1,
										 pg_prng_double(&pg_global_prng_state));

	if (delay >= 0)
	{
		o->status = CALL_PENDING;
		o->next_attempt_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	}
}

/* A call that failed for good before or after its request, as outcome o. */
static void
outcome_failed(CallOutcome *o, int attempts_before, int attempts, const char *error)
{
	memset(o, 0, sizeof(*o));
	o->status = CALL_FAILED;
	o->attempts_before = attempts_before;
	o->attempts = attempts;
	o->error = error;
}

typedef struct BuildArg
{
	CallItem   *ci;
	bool		due_only;		/* a call not due yet is passed */
	Scheduler  *scheduler;		/* with from */
	SchedItem  *from;			/* a next page to begin in this request's slot
								 * (begin_next()); NULL: none */
	BuildResult result;
	bool		gone;			/* out: its connector was deleted */
	bool		locked;			/* out: the row is the worker's, pending */
	int			attempts_before;	/* out, when locked */
} BuildArg;

/* Reads a call's connector as it is now into *t; false when it was deleted. */
static bool
load_target(const CallItem *ci, ConnectorTarget *t)
{
	memset(t, 0, sizeof(*t));
	t->id = ci->ref.connector_id;
	t->tenant = ci->ref.tenant_id;
	return ConnectorTargetLoad(t, true);
}

/* Begins the attempt of a ready call and builds its request (see the banner). */
static void
build_one(void *arg)
{
	BuildArg   *b = arg;
	CallItem   *ci = b->ci;
	CallPending p;
	ConnectorTarget t;
	TenantIdentity id;
	CallOutcome o;
	MemoryContext old;

	if (!CallStoreLockPending(&ci->ref, &p))
	{
		b->result = BUILD_PASSED;
		return;
	}
	if (b->due_only && p.next_attempt_at > GetCurrentTimestamp())
	{
		b->result = BUILD_PASSED;
		return;
	}
	/* A request sent ahead is this call's only if it was built from the same. */
	if (ci->state == CALL_AHEAD &&
		(p.queued_by != ci->queued_by || strcmp(p.operation, ci->operation) != 0 ||
		 !DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(p.payload),
										   JsonbPGetDatum(ci->payload)))))
	{
		b->result = BUILD_PASSED;
		return;
	}
	b->locked = true;
	b->attempts_before = p.attempts;
	if (!load_target(ci, &t))
	{
		outcome_failed(&o, p.attempts, p.attempts,
					   psprintf("connector %lld was deleted", (long long) ci->ref.connector_id));
		(void) CallStoreRecord(&ci->ref, &o, NULL);
		b->result = BUILD_ENDED;
		b->gone = true;
		return;
	}
	if (!t.is_active)
	{
		b->result = BUILD_WAITS;
		return;
	}
	ci->policy = RetryPolicyFor(t.retry_schedule, ci->cxt);
	if (p.attempts > ci->policy->nsteps)
	{
		/* Its last attempt was cut short by a crash, and there is no other. */
		outcome_failed(&o, p.attempts, p.attempts,
					   psprintf("no attempt left after attempt %d was cut short", p.attempts));
		(void) CallStoreRecord(&ci->ref, &o, NULL);
		b->result = BUILD_ENDED;
		return;
	}

	/*
	 * A next page asks for the slot of the page before only now: due (a page
	 * with a wait takes its token when it goes, not here and again then), and
	 * judged under its connector's rate limit as it is now, not as it was
	 * when the run's first page was claimed.
	 */
	if (b->from != NULL)
	{
		SchedulerConfigureTarget(b->scheduler, b->from->target, t.rate_limit,
								 t.rate_limit_burst);
		if (!SchedulerMayHandOver(b->scheduler, b->from, GetCurrentTimestamp()))
		{
			b->result = BUILD_PASSED;
			return;
		}
		/* Known to from, whatever becomes of this transaction. */
		((CallItem *) b->from)->handed_token = true;
	}
	CallStoreBeginAttempt(&ci->ref, &p, lease_ms());
	if (ci->state == CALL_AHEAD)
	{
		/* Its request is on its way already. */
		ci->attempts = p.attempts + 1;
		b->result = BUILD_SENT;
		return;
	}

	old = MemoryContextSwitchTo(ci->cxt);
	ConnectorTargetCopy(&ci->target, &t, ci->cxt);
	ci->operation = pstrdup(p.operation);
	ci->queued_by = p.queued_by;
	ci->payload = DatumGetJsonbPCopy(JsonbPGetDatum(p.payload));
	ci->attempts = p.attempts + 1;
	ci->creds = ConnectorCredentialsOpen(&ci->target);
	ConnectorActAs(&id, ci->ref.tenant_id, ci->queued_by);
	ConnectorRequestBuild(&ci->target, ci->operation, p.payload, p.idempotency_key, ci->creds,
						  integration_adapter_timeout_ms, &ci->req);
	TenantActAsEnd(&id);
	MemoryContextSwitchTo(old);
	b->result = BUILD_SENT;
}

/*
 * A ready call whose request could not be built: failed, but for a connector not
 * ready yet (object_not_in_prerequisite_state: credentials that do not decrypt, say)
 * and a request adapter cut short by integration.adapter_timeout or by a lock wait
 * (adapter_retriable(): a slow moment may pass), which are retried on the schedule.
 * Either way the attempt counts.  Returns when it is due again; 0: it failed.
 */
static TimestampTz
build_failed(CallItem *ci, const BuildArg *b, ErrorData *edata)
{
	bool		timed_out = TimeLimitExceeded(edata);
	char	   *error = timed_out ? pstrdup(edata->message) :
	psprintf("the request could not be built: %s", edata->message);
	CallOutcome o;

	if (ci->creds)
		error = ConnectorRedact(error, ci->creds);
	outcome_failed(&o, b->attempts_before, b->attempts_before + 1, error);
	if (edata->sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE || adapter_retriable(edata))
		outcome_retry(&o, ci->policy ? ci->policy : DefaultRetrySchedule());
	(void) CallStoreRecord(&ci->ref, &o, NULL);
	return o.status == CALL_PENDING ? o.next_attempt_at : 0;
}

typedef struct AheadArg
{
	CallItem   *ci;
	Jsonb	   *page;			/* the next page, as the page before named it */
} AheadArg;

/* Builds a request sent ahead: the kind's request adapter, as the role that pulls. */
static void
build_ahead(void *arg)
{
	AheadArg   *a = arg;
	CallItem   *ci = a->ci;
	ConnectorTarget t;
	TenantIdentity id;
	MemoryContext old;
	Datum		path = CStringGetTextDatum("page");

	if (!load_target(ci, &t) || !t.is_active)
		elog(ERROR, "connector %lld cannot be called", (long long) t.id);
	old = MemoryContextSwitchTo(ci->cxt);
	ConnectorTargetCopy(&ci->target, &t, ci->cxt);

	/*
	 * The next page's payload, as the page trigger writes it: the page
	 * replaced.
	 */
	ci->payload = DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(ci->payload),
													 PointerGetDatum(construct_array(&path, 1, TEXTOID, -1, false, TYPALIGN_INT)),
													 JsonbPGetDatum(a->page),
													 BoolGetDatum(true)));
	ci->creds = ConnectorCredentialsOpen(&ci->target);
	ConnectorActAs(&id, ci->ref.tenant_id, ci->queued_by);
	/* Cut short, it goes the ordinary way, where the limit fails its attempt. */
	ConnectorRequestBuild(&ci->target, ci->operation, ci->payload, NULL, ci->creds,
						  integration_adapter_timeout_ms, &ci->req);
	TenantActAsEnd(&id);
	MemoryContextSwitchTo(old);
}

/*
 * A sync run's page (from) that succeeded and names a next page, with no wait: that
 * page's request is built and sent at once, before the page is written, so that it is
 * on its way while the page goes through the gate.  Its call does not exist yet: the
 * page trigger queues it, and begin_next() begins it with this request when it was
 * built from the same payload, else the response is dropped (CALL_ORPHAN).  Only a GET
 * goes ahead: sent again after a crash that lost its call, it changes nothing.  It goes
 * when begin_next() would begin it (SchedulerMayHandOver(), which takes its token, under
 * the connector's rate limit as build_ahead() read it), in from's slot, which it keeps
 * whether its call is begun or not (cycle_done()): it is on its way either way.
 */
static CallItem *
request_ahead(CallCycle *cy, CallItem *from, Jsonb *page)
{
	CallJob    *j = cy->job;
	JsonbValue	v;
	Jsonb	   *next;
	CallItem   *ci;
	AheadArg	a;
	ErrorData  *edata;
	bool		built;

	if (!JB_ROOT_IS_OBJECT(page) ||
		getKeyJsonValueFromContainer(&page->root, "next_page", 9, &v) == NULL || v.type == jbvNull)
		return NULL;
	next = JsonbValueToJsonb(&v);
	if (getKeyJsonValueFromContainer(&page->root, "wait", 4, &v) != NULL &&
		!(v.type == jbvNull ||
		  (v.type == jbvNumeric &&
		   DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v.val.numeric),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) <= 0)))
		return NULL;

	ci = MemoryContextAllocZero(j->cxt, sizeof(CallItem));
	ci->item.kind = &call_job_kind;
	ci->ref = from->ref;		/* the same tenant and connector; no id yet */
	ci->ref.id = 0;
	ci->state = CALL_AHEAD;
	ci->cxt = AllocSetContextCreate(j->cxt, "integration connector call",
									ALLOCSET_SMALL_SIZES);
	ci->operation = MemoryContextStrdup(ci->cxt, from->operation);
	ci->queued_by = from->queued_by;
	ci->payload = from->payload;	/* replaced by the next page's in
									 * build_ahead() */
	a.ci = ci;
	a.page = next;
	/* Built first: a token is taken only for a request that goes. */
	built = build_unheld(ci, build_ahead, &a, CurrentMemoryContext, &edata);

	/*
	 * Whatever its adapter raised is not the page's: a lock wait of the page
	 * trigger after this must not be blamed on an adapter (adapter_fault()).
	 */
	ConnectorAdapterForget();
	if (built)
		SchedulerConfigureTarget(j->svc->scheduler, from->item.target, ci->target.rate_limit,
								 ci->target.rate_limit_burst);
	if (!built || ci->req.method == NULL || strcmp(ci->req.method, "GET") != 0 ||
		!SchedulerMayHandOver(j->svc->scheduler, &from->item, GetCurrentTimestamp()))
	{
		/* It goes the ordinary way, built when it is begun. */
		attempt_release(ci);
		pfree(ci);
		return NULL;
	}

	/*
	 * Known to from from here on, whatever becomes of this transaction: the
	 * request is on its way, and must hold a slot until it is back.
	 */
	from->ahead = ci;
	ci->item.started_at = GetCurrentTimestamp();
	ci->req.owner = ci;
	dlist_push_tail(&j->in_flight, &ci->node);
	HttpClientStart(j->svc->client, &ci->req);
	return ci;
}

typedef struct RecordArg
{
	CallCycle  *cy;
	CallItem   *ci;
	CallStatus	status;			/* out */
	TimestampTz retry_at;		/* out: pending again until */
	TimestampTz back_off;		/* out: the platform asked for a delay until */
	int64		next_call;		/* out: the next page's call it queued; 0:
								 * none */
	CallItem   *ahead;			/* out: that page's request, sent ahead */
	bool		judged;			/* out: the response adapter returned */
} RecordArg;

/* Judges a finished request through the kind's response adapter, and records it. */
static void
record_one(void *arg)
{
	RecordArg  *r = arg;
	CallItem   *ci = r->ci;
	ConnectorVerdict v;
	TenantIdentity id;
	CallOutcome o;
	TimestampTz now = GetCurrentTimestamp();

	ConnectorActAs(&id, ci->ref.tenant_id, ci->queued_by);
	ConnectorJudge(&ci->target, ci->operation, &ci->req, ci->creds,
				   integration_adapter_timeout_ms, &v);
	TenantActAsEnd(&id);
	r->judged = true;
	if (v.outcome == CONNECTOR_SUCCEEDED && v.result != NULL && ci->payload != NULL &&
		strcmp(ci->operation, "pull") == 0)
		r->ahead = request_ahead(r->cy, ci, v.result);

	memset(&o, 0, sizeof(o));
	o.attempts_before = o.attempts = ci->attempts;
	o.status_code = (int) ci->req.status_code;
	o.result = v.result;
	o.error = v.error;
	if (v.outcome == CONNECTOR_SUCCEEDED)
		o.status = CALL_SUCCEEDED;
	else if (v.outcome == CONNECTOR_FAILED)
		o.status = CALL_FAILED;
	else
	{
		int64		header = RetryAfterMs(ci->req.retry_after[0] ? ci->req.retry_after : NULL,
										  now);
		int64		asked = v.retry_after_ms >= 0 ? v.retry_after_ms : header;
		int64		delay = NextRetryDelayMs(ci->policy, ci->attempts, asked,
											 pg_prng_double(&pg_global_prng_state));

		if (delay < 0)
			o.status = CALL_FAILED;
		else
		{
			o.status = CALL_PENDING;
			o.next_attempt_at = TimestampTzPlusMilliseconds(now, delay);
			r->retry_at = o.next_attempt_at;

			/*
			 * The adapter's own delay (a rate-limit window it read) holds the
			 * connector back too, as a Retry-After does (report_outcome()).
			 */
			if (v.retry_after_ms >= 0 && v.retry_after_ms > header)
				r->back_off = o.next_attempt_at;
		}
	}

	/*
	 * A pull page's call that ends runs the sync_page_ended trigger here
	 * (sql/sync.sql), with no time limit: it is the extension's PL/pgSQL, no
	 * adapter (the kind's record_function runs in receive_webhook(), in the
	 * caller's session), its work grows with the page the adapter returned,
	 * which a limit would fail for ever, and its row-lock waits end at the
	 * worker's lock_timeout.
	 */
	(void) CallStoreRecord(&ci->ref, &o, &r->next_call);
	r->status = o.status;
}

/*
 * A finished request whose response adapter raised: failed, with its error, but for
 * an adapter cut short by integration.adapter_timeout or by a lock wait
 * (adapter_retriable()), which is retried on the schedule (the request goes out
 * again, with the same idempotency key).  Or whose outcome could not be written once
 * the adapter had judged it: for a sync run's page, the page trigger refused it (a
 * page it cannot read, a record a constraint or a trigger on external_records
 * rejects), which is no adapter's doing and is said as such; failed too, as writing
 * the same page again would fail the same way.  Sets *r's status and retry time.
 */
static void
record_failed(CallItem *ci, ErrorData *edata, RecordArg *r)
{
	CallOutcome o;

	if (r->judged)
		outcome_failed(&o, ci->attempts, ci->attempts,
					   ConnectorRedact(psprintf(strcmp(ci->operation, "pull") == 0 ?
												"the page could not be stored: %s" :
												"the outcome could not be recorded: %s",
												edata->message), ci->creds));
	else if (TimeLimitExceeded(edata))
		outcome_failed(&o, ci->attempts, ci->attempts, pstrdup(edata->message));
	else
		outcome_failed(&o, ci->attempts, ci->attempts,
					   ConnectorRedact(psprintf("the %s response adapter failed: %s",
												ci->target.kind, edata->message), ci->creds));
	if (!r->judged && adapter_retriable(edata))
		outcome_retry(&o, ci->policy);
	o.status_code = (int) ci->req.status_code;
	(void) CallStoreRecord(&ci->ref, &o, NULL);
	r->status = o.status;
	r->retry_at = o.status == CALL_PENDING ? o.next_attempt_at : 0;
}

/* ------------------------------------------------------------------------------------
 * Store transactions
 * ------------------------------------------------------------------------------------ */

/* CircuitRestoreFn: a stored circuit goes back into the scheduler. */
static void
restore_circuit(const char *tenant_id, int64 id, const CircuitBreaker *cb, void *arg)
{
	CallJob    *j = arg;

	SchedulerRestoreCircuit(j->svc->scheduler, &call_job_kind, tenant_id, id, cb);
}

/*
 * Claims one call to probe with for each connector whose circuit is half open and has
 * none; a connector with none due is asked about again when its next comes due.
 */
static void
claim_probes(CallCycle *cy)
{
	Scheduler  *s = cy->job->svc->scheduler;
	SchedTarget **targets;
	int			n = SchedulerProbesWanted(s, &call_job_kind, cy->req.now, &targets);

	n = Min(n, cy->probe_room);
	for (int i = 0; i < n; i++)
	{
		const SchedTargetKey *key = SchedulerTargetKeyOf(targets[i]);
		TimestampTz next_at;
		bool		found;

		found = CallStoreClaimProbe(key->tenant_id, key->id, cy->req.held, cy->req.nheld,
									cy->req.now, &cy->claimed[cy->nclaimed], &next_at);
		if (found)
			cy->nclaimed++;
		SchedulerProbeLookedFor(s, targets[i], found, next_at);
	}
}

/* A request sent ahead whose call was not begun: its response will be dropped. */
static void
orphan(CallItem *ci)
{
	ci->state = CALL_ORPHAN;
	ci->ref.id = 0;
}

/*
 * The token a next page took to begin in from's slot (build_one()) goes back when its
 * request does not go after all: not built, or its transaction failed.
 */
static void
handed_token_back(CallJob *j, CallItem *from)
{
	if (!from->handed_token)
		return;
	SchedulerHandOverUndone(j->svc->scheduler, &from->item, GetCurrentTimestamp());
	from->handed_token = false;
}

/*
 * A sync run's next page, which the page just recorded (from) queued: begun in this
 * transaction, to go out in from's request slot at commit, when it is due and the
 * scheduler lets it (SchedulerMayHandOver(), asked in build_one() once the call is
 * found due); with the request sent ahead for it, if any (ahead: request_ahead()).  So
 * a run's pages follow each other with one transaction between them, not three
 * (record, claim, begin).  NULL when it is left pending, to be claimed as any call is.
 */
static CallItem *
begin_next(CallCycle *cy, CallItem *from, int64 id, CallItem *ahead, MemoryContext errcxt)
{
	CallJob    *j = cy->job;
	CallItem   *ci = ahead;
	BuildArg	b;
	ErrorData  *edata;

	memset(&b, 0, sizeof(b));
	if (ci != NULL)
		ci->ref.id = id;		/* its token is taken */
	else
	{
		b.scheduler = j->svc->scheduler;
		b.from = &from->item;
		ci = MemoryContextAllocZero(j->cxt, sizeof(CallItem));
		ci->item.kind = &call_job_kind;
		ci->ref = from->ref;	/* the same tenant and connector */
		ci->ref.id = id;
		ci->state = CALL_READY;
		ci->cxt = AllocSetContextCreate(j->cxt, "integration connector call",
										ALLOCSET_SMALL_SIZES);
	}
	b.ci = ci;
	b.due_only = true;
	b.result = BUILD_PASSED;

	/*
	 * A request sent ahead is from's already (from->ahead), which a failed
	 * transaction makes an orphan; a new item is no one's yet.
	 */
	if (ci == ahead ? in_subtransaction(build_one, &b, errcxt, &edata) :
		build_unheld(ci, build_one, &b, errcxt, &edata))
	{
		if (b.result == BUILD_SENT)
			return ci;
		if (b.result == BUILD_ENDED)
			cy->failed_attempts++;
	}
	else if (b.locked)
	{
		cy->next_retry = EarliestTime(cy->next_retry, build_failed(ci, &b, edata));
		cy->failed_attempts++;
	}

	/*
	 * Not begun: whatever became of it, a claim finds it or its connector's
	 * others.  A token it took (its request failed to build) goes back.
	 */
	j->claim_needed = true;
	handed_token_back(j, from);
	if (ci == ahead)
	{
		orphan(ci);
		return NULL;
	}
	attempt_release(ci);
	pfree(ci);
	return NULL;
}

/* The cycle's transaction: record, take back, begin, claim. */
static void
cycle_step(void *arg)
{
	CallCycle  *cy = arg;
	CallJob    *j = cy->job;
	MemoryContext cxt = CurrentMemoryContext;

	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}
	WorkerSlotSetActivity(WORKER_CALLING);
	for (int i = 0; i < cy->nrecord; i++)
	{
		RecordArg	r = {cy, cy->record[i], CALL_FAILED, 0, 0, 0, NULL, false};
		ErrorData  *edata;

		if (!in_subtransaction(record_one, &r, cxt, &edata))
		{
			record_failed(cy->record[i], edata, &r);
			r.next_call = 0;
		}
		if (r.ahead != NULL && (r.next_call == 0 || r.status != CALL_SUCCEEDED))
		{
			orphan(r.ahead);
			r.ahead = NULL;
		}
		cy->back_off[i] = r.back_off;
		cy->next_retry = EarliestTime(cy->next_retry, r.retry_at);
		if (r.status == CALL_SUCCEEDED)
			cy->succeeded++;
		else
			cy->failed_attempts++;
		if (r.next_call != 0 && r.status == CALL_SUCCEEDED)
		{
			cy->next[i] = begin_next(cy, cy->record[i], r.next_call, r.ahead, cxt);
			/* It takes the room a claim would have had for it. */
			if (cy->next[i] != NULL && cy->claim && cy->req.limit > 0)
				cy->req.limit--;
		}
	}
	if (cy->reconcile)
		(void) CallStoreReconcile(cy->reconcile_all, cy->held, cy->nheld);
	if (cy->reconcile_all)
	{
		/* Before any claim: a connector whose circuit was open gets none. */
		int			n = CircuitStoreLoad(call_job_kind.target, restore_circuit, j);

		if (n > 0)
			ereport(LOG,
					(errmsg("integration worker: %d connector circuits not closed at the last stop restored", n)));
	}
	for (int i = 0; i < cy->nbuild; i++)
	{
		CallItem   *ci = cy->build[i];
		BuildArg	b = {ci, false, NULL, NULL, BUILD_PASSED, false, false, 0};
		ErrorData  *edata;

		memset(&ci->req, 0, sizeof(ci->req));
		ci->cxt = AllocSetContextCreate(j->cxt, "integration connector call",
										ALLOCSET_SMALL_SIZES);
		if (in_subtransaction(build_one, &b, cxt, &edata))
		{
			cy->built[i] = b.result;
			cy->gone[i] = b.gone;
		}
		else if (!b.locked)
		{
			/* The lock itself failed: the call is left for later. */
			ereport(LOG,
					(errmsg("integration worker: connector call %lld could not be begun: %s",
							(long long) ci->ref.id, edata->message)));
			cy->built[i] = BUILD_PASSED;
		}
		else
		{
			cy->next_retry = EarliestTime(cy->next_retry, build_failed(ci, &b, edata));
			cy->built[i] = BUILD_ENDED;
			cy->failed_attempts++;
		}
		if (cy->built[i] != BUILD_SENT)
			attempt_release(ci);
	}
	cy->transitions_upto = CircuitStoreTransitions(j->svc->scheduler, &call_job_kind,
												   &j->transition_failures);
	if (cy->claim)
	{
		WorkerSlotSetActivity(WORKER_CLAIMING);
		cy->nclaimed = CallStoreClaim(&cy->req, cy->claimed);
		claim_probes(cy);
	}
}

/* Queues claimed calls in the scheduler under their connectors. */
static void
queue_claims(CallJob *j, CallRef *claimed, int n)
{
	Scheduler  *s = j->svc->scheduler;
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < n; i++)
	{
		CallRef    *ref = &claimed[i];
		CallItem   *ci;

		SchedTarget *t;

		/*
		 * No room for its connector (its rate, its circuit): it waits,
		 * pending.
		 */
		if (SchedulerRoom(s, &call_job_kind, ref->tenant_id, ref->connector_id,
						  ref->rate_limit, ref->rate_limit_burst, now) == 0)
			continue;
		ci = MemoryContextAllocZero(j->cxt, sizeof(CallItem));
		ci->item.kind = &call_job_kind;
		ci->ref = *ref;
		ci->state = CALL_QUEUED;
		t = SchedulerTarget(s, &call_job_kind, ref->tenant_id, ref->connector_id);
		SchedulerConfigureTarget(s, t, ref->rate_limit, ref->rate_limit_burst);
		SchedulerEnqueue(s, t, &ci->item, now);
		j->nheld++;
	}
}

/* After a committed cycle: the requests built start, the calls that ended go. */
static void
cycle_done(CallJob *j, CallCycle *cy)
{
	TimestampTz now = GetCurrentTimestamp();

	/*
	 * The claim this cycle ran answered whoever asked for one; a call that
	 * ends from here on and leaves its connector room asks again
	 * (request_forget()). The claim ran while those calls still held their
	 * slots, so it passed over their connector as full, and no timer brings
	 * it back: a connector's calls then went out a round every few seconds.
	 */
	if (cy->claim)
		j->claim_needed = false;
	for (int i = 0; i < cy->nrecord; i++)
	{
		CallItem   *ci = cy->record[i];
		CallItem   *next = cy->next[i];

		Assert(next == NULL || ci->ahead == NULL || next == ci->ahead);
		if (cy->back_off[i] != 0)
			SchedulerBackOff(j->svc->scheduler, ci->item.target, cy->back_off[i]);
		dlist_delete(&ci->node);
		j->ndone--;
		if (next == NULL && ci->ahead != NULL)
		{
			/*
			 * A request sent ahead that no call took: it takes the slot,
			 * which goes back when its response is (call_finished()).
			 */
			Assert(ci->ahead->state == CALL_ORPHAN);
			SchedulerHandOver(j->svc->scheduler, &ci->item, &ci->ahead->item, now);
			j->nheld--;
			attempt_release(ci);
			pfree(ci);
			continue;
		}
		if (next == NULL)
		{
			item_forget(j, ci, true);
			continue;
		}
		/* The next page takes its slot (held: one call out, one in). */
		SchedulerHandOver(j->svc->scheduler, &ci->item, &next->item, now);
		attempt_release(ci);
		pfree(ci);
		if (next->state == CALL_AHEAD)
		{
			next->state = CALL_IN_FLIGHT;	/* on its way already */
			continue;
		}
		next->state = CALL_IN_FLIGHT;
		next->req.owner = next;
		dlist_push_tail(&j->in_flight, &next->node);
		HttpClientStart(j->svc->client, &next->req);
	}
	for (int i = 0; i < cy->nbuild; i++)
	{
		CallItem   *ci = cy->build[i];
		bool		unremembered;

		dlist_delete(&ci->node);
		j->nready--;
		if (cy->built[i] == BUILD_SENT)
		{
			ci->state = CALL_IN_FLIGHT;
			ci->req.owner = ci;
			dlist_push_tail(&j->in_flight, &ci->node);
			HttpClientStart(j->svc->client, &ci->req);
			continue;
		}
		unremembered = false;
		if (cy->built[i] == BUILD_PASSED && j->npassed < MAX_PASSED_OVER)
		{
			j->passed_over[j->npassed++] = ci->ref.id;
			j->passed_until = TimestampTzPlusMilliseconds(now, PASSED_OVER_MS);
		}
		else if (cy->built[i] == BUILD_PASSED)
			unremembered = true;

		/*
		 * No request: nothing for its rate or circuit (a probe not sent frees
		 * the way).
		 */
		(void) SchedulerReport(j->svc->scheduler, &ci->item, TARGET_NOT_SENT, -1, now);

		/*
		 * Deleted: its circuit is moot, and its other calls must fail in
		 * batches, not a probe at a time.
		 */
		if (cy->gone[i])
		{
			SchedulerCloseCircuit(j->svc->scheduler, ci->item.target, "the connector is deleted",
								  now);
			j->claim_needed = true;
		}

		/*
		 * A call passed over that the full list could not take must not ask
		 * for a claim with its slot: being among the oldest due, it would be
		 * claimed again at once, passed over again, and so on as fast as
		 * transactions go (70 calls held locked by another session made the
		 * worker run some 13,000 transactions a second).  The claim that
		 * passed_until brings takes it again, a second later.
		 */
		item_forget(j, ci, !unremembered);
	}
	WorkerSlotCountCalls(cy->succeeded, cy->failed_attempts);
	if (cy->transitions_upto != 0)
		SchedulerTransitionsRecorded(j->svc->scheduler, &call_job_kind, cy->transitions_upto);
	if (cy->reconcile)
	{
		j->reconcile_all = false;
		j->reconcile_needed = false;
	}
	if (cy->claim)
	{
		/* A full claim: more may be due now. */
		if (cy->nclaimed >= cy->req.limit)
			j->claim_needed = true;
		j->next_due = cy->req.next_due;

		/*
		 * Due, yet nothing could be claimed (its connector full, say): not at
		 * once.
		 */
		if (j->next_due != 0 && j->next_due <= now && cy->nclaimed == 0)
			j->next_due = TimestampTzPlusMilliseconds(now, PASSED_OVER_MS);
		queue_claims(j, cy->claimed, cy->nclaimed);
	}
	/* What this cycle scheduled again was held, so no claim looked at it. */
	j->next_due = EarliestTime(j->next_due, cy->next_retry);
}

/* Drops every call ready or done: their leases, or their pending rows, bring them back. */
static void
drop_held(CallJob *j)
{
	dlist_mutable_iter iter;
	int			n = j->nready + j->ndone;

	dlist_foreach_modify(iter, &j->ready)
	{
		dlist_delete(iter.cur);
		item_forget(j, dlist_container(CallItem, node, iter.cur), true);
	}
	dlist_foreach_modify(iter, &j->done)
	{
		dlist_delete(iter.cur);
		item_forget(j, dlist_container(CallItem, node, iter.cur), true);
	}
	j->nready = j->ndone = 0;
	j->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), lease_ms() + 1000);
	ereport(WARNING,
			(errmsg("integration worker: dropping %d connector calls whose transaction keeps failing", n)));
}

/* Runs one cycle; on failure, a pause, and after several the calls held are dropped. */
static void
run_cycle(CallJob *j, bool claim)
{
	CallCycle	cy;
	dlist_iter	iter;
	int			sqlerrcode;
	HeldIds		held;

	/*
	 * Not in the cycle's transaction, which runs adapters
	 * (table_statistics.c).
	 */
	CallStoreAnalyzeIfStale();
	held = held_ids(j);
	memset(&cy, 0, sizeof(cy));
	cy.job = j;
	cy.record = palloc(sizeof(CallItem *) * Max(j->ndone, 1));
	cy.back_off = palloc0(sizeof(TimestampTz) * Max(j->ndone, 1));
	cy.next = palloc0(sizeof(CallItem *) * Max(j->ndone, 1));
	dlist_foreach(iter, &j->done)
		cy.record[cy.nrecord++] = dlist_container(CallItem, node, iter.cur);
	cy.build = palloc(sizeof(CallItem *) * Max(j->nready, 1));
	cy.built = palloc0(sizeof(BuildResult) * Max(j->nready, 1));
	cy.gone = palloc0(sizeof(bool) * Max(j->nready, 1));
	dlist_foreach(iter, &j->ready)
		cy.build[cy.nbuild++] = dlist_container(CallItem, node, iter.cur);
	cy.reconcile = j->reconcile_all || j->reconcile_needed;
	cy.reconcile_all = j->reconcile_all;
	cy.held = held.ids;
	cy.nheld = held.n;
	cy.claim = claim;
	if (claim)
	{
		/*
		 * What is recorded or ends in the same transaction leaves room for
		 * it.
		 */
		cy.req.limit = hold_limit() - j->nheld + cy.nrecord;
		cy.req.now = GetCurrentTimestamp();
		cy.req.per_connector = integration_max_concurrency_per_endpoint;
		cy.req.held = held.ids;
		cy.req.nheld = held.n;
		cy.req.nfull = SchedulerSaturatedTargets(j->svc->scheduler, &call_job_kind, cy.req.now,
												 (int64 **) &cy.req.full);
		cy.probe_room = SchedulerProbesWanted(j->svc->scheduler, &call_job_kind, cy.req.now,
											  NULL);
		cy.claimed = palloc(sizeof(CallRef) * Max(cy.req.limit + cy.probe_room, 1));
	}

	if (!WorkerRunTransaction(cycle_step, &cy,
							  j->ndone + j->nready > 0 ? "making connector calls" : "claiming connector calls",
							  &sqlerrcode, NULL))
	{
		/*
		 * Nothing it did stays: the calls built go back to ready, the next
		 * pages begun are forgotten (their rows were not written).
		 */
		for (int i = 0; i < cy.nbuild; i++)
			attempt_release(cy.build[i]);
		for (int i = 0; i < cy.nrecord; i++)
		{
			CallItem   *from = cy.record[i];

			/* The next page takes one when it is begun again. */
			handed_token_back(j, from);
			if (from->ahead != NULL)
			{
				/*
				 * Sent ahead, and on its way still: from keeps its slot (it
				 * is recorded again), so this request is counted on its own.
				 */
				orphan(from->ahead);
				SchedulerAddInFlight(j->svc->scheduler, &from->item, &from->ahead->item,
									 GetCurrentTimestamp());
				from->ahead = NULL;
			}
			else if (cy.next[i] != NULL)
			{
				attempt_release(cy.next[i]);
				pfree(cy.next[i]);
			}
		}
		j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		if (!WorkerErrorIsTransient(sqlerrcode) && ++j->failures >= RECORD_MAX_FAILURES)
		{
			drop_held(j);
			j->failures = 0;
		}
	}
	else
	{
		j->failures = 0;
		if (j->extension_gone)
			WorkerExitExtensionGone(j->svc);
		cycle_done(j, &cy);
	}
	if (cy.req.full)
		pfree((void *) cy.req.full);
}

/* ------------------------------------------------------------------------------------
 * The kind's part in the loop
 * ------------------------------------------------------------------------------------ */

/* Timers that came due: retries, the idle recheck, calls passed over, dropped calls. */
static void
fire_timers(CallJob *j, TimestampTz now)
{
	if (j->next_due != 0 && now >= j->next_due)
	{
		j->next_due = 0;
		j->claim_needed = true;
	}
	if (now >= j->next_recheck)
	{
		j->claim_needed = true;
		j->reconcile_needed = true;
		j->next_recheck = TimestampTzPlusMilliseconds(now, integration_idle_recheck_ms);
	}
	if (j->npassed > 0 && now >= j->passed_until)
	{
		j->npassed = 0;
		j->claim_needed = true;
	}
	if (j->reconcile_at != 0 && now >= j->reconcile_at)
	{
		j->reconcile_at = 0;
		j->reconcile_needed = true;
		j->claim_needed = true;
	}
}

/* Whether a claim is wanted and there is room to hold what it takes. */
static bool
claim_wanted(CallJob *j)
{
	if (j->nheld >= hold_limit())
		return false;
	return j->claim_needed ||
		SchedulerProbesWanted(j->svc->scheduler, &call_job_kind, GetCurrentTimestamp(),
							  NULL) > 0;
}

/*
 * WorkerKindOps.step: at most one store transaction, which records the calls done,
 * begins the ready ones and claims more when wanted.  Recording always claims too: a
 * connector that was full may have room now.
 */
static bool
call_step(void *state, TimestampTz now)
{
	CallJob    *j = state;
	bool		claim;

	fire_timers(j, now);
	if (now < j->pause_until)
		return false;
	claim = claim_wanted(j) || (j->ndone > 0 && j->nheld - j->ndone < hold_limit());
	if (j->ndone == 0 && j->nready == 0 && !claim && !j->reconcile_all && !j->reconcile_needed &&
		!SchedulerTransitionsPending(j->svc->scheduler, &call_job_kind))
		return false;
	run_cycle(j, claim);
	WorkerSlotSetCallsHeld(j->nheld);
	return true;
}

static void
call_woken(void *state, uint32 requests)
{
	CallJob    *j = state;

	if (requests == 0 || (requests & WORKER_WAKE_CALLS) != 0)
		j->claim_needed = true;
}

static void
call_reload(void *state)
{
	CallJob    *j = state;

	j->claim_needed = true;
}

/* WorkerKindOps.next_wake: the time this kind needs the loop again; now: at once. */
static TimestampTz
call_next_wake(void *state, TimestampTz now)
{
	CallJob    *j = state;
	TimestampTz wake;

	if (j->pause_until > now)
		return j->pause_until;
	if (j->nready > 0 || j->ndone > 0 || claim_wanted(j) || j->reconcile_all ||
		j->reconcile_needed || SchedulerTransitionsPending(j->svc->scheduler, &call_job_kind))
		return now;
	wake = EarliestTime(j->next_recheck, j->next_due);
	wake = EarliestTime(wake, j->reconcile_at);
	if (j->npassed > 0)
		wake = EarliestTime(wake, j->passed_until);
	return wake;
}

static void *call_create(WorkerServices *svc);

const WorkerKindOps call_job_ops = {
	.kind = &call_job_kind,
	.wakes = WORKER_WAKE_CALLS,
	.sends = true,
	.create = call_create,
	.startup = NULL,			/* its first transaction takes back what a
								 * dead worker left 'sending' */
	.woken = call_woken,
	.reload = call_reload,
	.prepare = NULL,
	.step = call_step,
	.finished = call_finished,
	.next_wake = call_next_wake,
};

/* WorkerKindOps.create: no SQL, which the first step runs. */
static void *
call_create(WorkerServices *svc)
{
	CallJob    *j = MemoryContextAllocZero(TopMemoryContext, sizeof(CallJob));

	j->svc = svc;
	j->cxt = AllocSetContextCreate(TopMemoryContext, "integration connector calls",
								   ALLOCSET_DEFAULT_SIZES);
	dlist_init(&j->ready);
	dlist_init(&j->in_flight);
	dlist_init(&j->done);

	/*
	 * A previous worker's attempts are taken back, and what is due claimed,
	 * at once.
	 */
	j->reconcile_all = true;
	j->claim_needed = true;
	j->next_recheck = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  integration_idle_recheck_ms);
	return j;
}
