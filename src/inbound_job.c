/*
 * inbound_job.c
 *		The handlers of inbound events as a kind of work: the only one of the handler
 *		worker, a process of its own per database (WORKER_ROLE_HANDLER, worker.c).
 *
 * Why a process of its own.  Handlers are the tenants' SQL and run in the process that
 * runs them, up to integration.handler_timeout a call.  In the delivery worker, one
 * tenant's slow handler stopped every tenant's deliveries for that long: nothing was
 * claimed or recorded meanwhile.  In a process of their own they hold up nothing but
 * other handlers, and the pacer (inbound_pacer.c) keeps that to one call.
 *
 * Where events come from.  receive_webhook() and reprocess_inbound() wake this worker
 * at commit (WORKER_WAKE_INBOUND, which wakes no other); a retry coming due, and the
 * idle recheck, wake it by timer.  A claim (InboundClaim(), inbound_store.c) reads up
 * to a batch of due events, fair across tenants and in order per object, and queues
 * each in the scheduler under its tenant and connector (the target): the scheduler's
 * round-robin over tenants and its fair share of the INBOUND_BATCH slots decide which
 * become ready.  Nothing is locked or written by a claim, so a crash loses nothing
 * held here.  A tenant whose events run one per transaction (InboundPacerSlow()) holds
 * at most SLOW_HOLD of them: claims leave its other events pending in the table, so
 * that they do not take the room of other tenants' events.
 *
 * How they run.  JobKind.start only moves an event to the ready list: the handlers are
 * SQL, run in this process, in the next store transaction.  Each step runs at most one
 * transaction that runs ready events (InboundRun(): each event's handlers in a
 * subtransaction, its status in the same transaction) in the order the pacer picks,
 * until it says to commit, and then claims what fits in the room the events run left;
 * their slots are given back when it commits, and the events it did not get to stay
 * ready for the next.  At most INBOUND_BATCH events are held, which keeps the
 * subtransactions of a transaction within what a backend caches (inbound_store.c).
 *
 * When a transaction fails.  A handler's error fails that event's attempt only, inside
 * the transaction.  A failure of the transaction itself (at commit, when a handler left
 * a deferred constraint violated; a lock wait past lock_timeout) cannot be pinned on
 * one event: the events of the failed batch then run one per transaction, and an event
 * whose transaction fails alone gets a failed attempt recorded, in a transaction of its
 * own, with the error, so one bad event never keeps the others from running and never
 * stalls the worker.  Waits for locks and serialization failures are tried again after
 * a pause instead: they are no event's fault.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "delivery_store.h"
#include "inbound_job.h"
#include "inbound_pacer.h"
#include "inbound_store.h"
#include "integration.h"
#include "worker_slots.h"

/* Events held at most: claimed, queued and ready (see inbound_store.c). */
#define INBOUND_BATCH 32

/*
 * Handler time after which a transaction commits (inbound_pacer.c): what the events of
 * a transaction may wait for their commit, a handler that overruns it aside.  A
 * one-INSERT handler takes about 0.1 ms, so batches of quick handlers are bounded by
 * INBOUND_BATCH long before this.
 */
#define RUN_BUDGET_MS 100
/* Events held at most for a tenant whose events run one per transaction. */
#define SLOW_HOLD 1
#define ERROR_PAUSE_MS 1000
/* How long an event found locked by another session is not claimed again. */
#define PASSED_OVER_MS 1000

int			integration_handler_timeout_ms = 5000;

void
InboundJobDefineGucs(void)
{
	DefineCustomIntVariable("integration.handler_timeout",
							"Longest time one inbound handler call may take in the handler worker; longer, it is cancelled and the attempt fails. 0: no limit.",
							NULL, &integration_handler_timeout_ms, 5000, 0, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/*
 * The handler worker's scheduler (WorkerRoleDef.limits): INBOUND_BATCH slots, each an
 * event held until the transaction that runs it commits; a tenant alone may take them
 * all, and tenants with events waiting share them evenly.
 */
void
InboundJobLimits(SchedLimits *limits)
{
	limits->max_concurrency = INBOUND_BATCH;
	limits->per_tenant = INBOUND_BATCH;
	limits->per_target = INBOUND_BATCH;
	limits->hold_rounds = 1;
}

/* One claimed event, queued in the scheduler and then ready to run. */
typedef struct InboundItem
{
	SchedItem	item;			/* first: the scheduler hands this back */
	InboundRef	ref;
	dlist_node	ready;			/* in InboundJob.ready once started */
} InboundItem;

typedef struct InboundJob
{
	WorkerServices *svc;
	InboundPacer *pacer;
	MemoryContext cxt;			/* the items */
	dlist_head	ready;			/* started by the scheduler, to run */
	int			nready;
	int			nheld;			/* queued in the scheduler, or ready */

	bool		claim_needed;	/* due events may be waiting */
	char		cursor[TENANT_ID_MAX_LEN + 1];	/* InboundClaimRequest.cursor */
	TimestampTz next_due;		/* a retry or a known event comes due; 0: none */
	TimestampTz next_recheck;

	/*
	 * Events a run found locked by others, left out of claims until
	 * passed_until.
	 */
	int64		passed_over[INBOUND_BATCH];
	int			npassed;
	TimestampTz passed_until;

	bool		claimed_first;	/* the last cycle only claimed
								 * (inbound_step()) */

	/* After a failure. */
	TimestampTz pause_until;
	int			solo;			/* runs left that take one event each */
	bool		extension_gone;
} InboundJob;

/* What one store transaction is asked to do, and what it found. */
typedef struct InboundCycle
{
	InboundJob *job;
	InboundItem **run;			/* the events to run */
	int			nrun;
	InboundOutcome *outcomes;	/* out: per event run */
	int			handled;		/* out: processed or skipped */
	int			failed_attempts;	/* out */
	bool		claim;
	InboundClaimRequest req;	/* its limit set once the run is over */
	InboundRef *claimed;		/* out; room for INBOUND_BATCH */
	int			nclaimed;		/* out */
	const char *failure;		/* record this failure of run[0] instead of
								 * running it */
} InboundCycle;

static bool inbound_start(SchedItem *item, void *arg);

const JobKind inbound_job_kind = {
	.name = "inbound",
	.target = "inbound",		/* a tenant's connector, for its handlers */
	.start = inbound_start,
};

/* The scheduler's JobKind.start: the event runs in the next store transaction. */
static bool
inbound_start(SchedItem *item, void *arg)
{
	InboundJob *j = arg;
	InboundItem *ii = (InboundItem *) item;

	dlist_push_tail(&j->ready, &ii->ready);
	j->nready++;
	return true;
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

	if (item->kind == &inbound_job_kind)
		held->ids[held->n++] = ((InboundItem *) item)->ref.id;
}

/*
 * Ids a claim must leave out: the events held here (queued in the scheduler, or ready,
 * those about to run included) and the events passed over.
 */
static HeldIds
left_out_ids(InboundJob *j)
{
	HeldIds		held;
	dlist_iter	iter;

	held.ids = palloc(sizeof(int64) * (j->nheld + j->npassed + 1));
	held.n = 0;
	SchedulerForEachQueued(j->svc->scheduler, collect_queued, &held);
	dlist_foreach(iter, &j->ready)
		held.ids[held.n++] = dlist_container(InboundItem, ready, iter.cur)->ref.id;
	for (int i = 0; i < j->npassed; i++)
		held.ids[held.n++] = j->passed_over[i];
	return held;
}

/* One tenant's count of events held. */
typedef struct TenantHeld
{
	const char *tenant_id;
	int			n;
} TenantHeld;

typedef struct HeldCount
{
	TenantHeld *tenants;
	int			ntenants;
} HeldCount;

static void
count_tenant(HeldCount *hc, const char *tenant_id, int delta)
{
	for (int i = 0; i < hc->ntenants; i++)
		if (strcmp(hc->tenants[i].tenant_id, tenant_id) == 0)
		{
			hc->tenants[i].n += delta;
			return;
		}
	hc->tenants[hc->ntenants].tenant_id = tenant_id;
	hc->tenants[hc->ntenants++].n = delta;
}

static void
count_queued(SchedItem *item, void *arg)
{
	if (item->kind == &inbound_job_kind)
		count_tenant(arg, ((InboundItem *) item)->ref.tenant_id, 1);
}

/*
 * The tenants a claim after the run must leave out: those whose events run one per
 * transaction and that still hold SLOW_HOLD of them, once the events the run got to
 * are done.
 */
static void
slow_tenants_held(InboundCycle *cy)
{
	InboundJob *j = cy->job;
	HeldCount	hc;
	dlist_iter	iter;

	hc.tenants = palloc(sizeof(TenantHeld) * (j->nheld + 1));
	hc.ntenants = 0;
	SchedulerForEachQueued(j->svc->scheduler, count_queued, &hc);
	dlist_foreach(iter, &j->ready)
		count_tenant(&hc, dlist_container(InboundItem, ready, iter.cur)->ref.tenant_id, 1);
	for (int i = 0; i < cy->nrun; i++)
		if (cy->outcomes[i].status != INBOUND_DEFERRED)
			count_tenant(&hc, cy->run[i]->ref.tenant_id, -1);
	cy->req.skip_tenants = palloc(sizeof(char *) * (hc.ntenants + 1));
	cy->req.nskip = 0;
	for (int i = 0; i < hc.ntenants; i++)
		if (hc.tenants[i].n >= SLOW_HOLD && InboundPacerSlow(j->pacer, hc.tenants[i].tenant_id))
			cy->req.skip_tenants[cy->req.nskip++] = (char *) hc.tenants[i].tenant_id;
}

/* The cycle's transaction: run ready events, then claim more. */
static void
cycle_step(void *arg)
{
	InboundCycle *cy = arg;
	InboundJob *j = cy->job;

	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}
	if (cy->failure != NULL)
	{
		InboundRef	ref = cy->run[0]->ref;

		InboundRecordFailure(&ref, cy->failure, &cy->outcomes[0]);
		cy->failed_attempts = cy->outcomes[0].status == INBOUND_GONE ? 0 : 1;
		return;
	}
	if (cy->nrun > 0)
	{
		InboundRef *refs = palloc(sizeof(InboundRef) * cy->nrun);

		for (int i = 0; i < cy->nrun; i++)
			refs[i] = cy->run[i]->ref;
		WorkerSlotSetActivity(WORKER_HANDLING);
		InboundRun(refs, cy->nrun, integration_handler_timeout_ms, j->pacer, cy->outcomes);
		for (int i = 0; i < cy->nrun; i++)
		{
			InboundStatus st = cy->outcomes[i].status;

			/* What ran, or is gone, makes room for the claim. */
			if (st != INBOUND_DEFERRED)
				cy->req.limit++;

			if (st == INBOUND_PROCESSED || st == INBOUND_SKIPPED)
				cy->handled++;
			else if (st == INBOUND_RETRY || st == INBOUND_FAILED)
				cy->failed_attempts++;

			/*
			 * Only the time is kept: the error strings go with the
			 * transaction.
			 */
			cy->outcomes[i].error = NULL;
		}
	}
	if (cy->claim)
	{
		WorkerSlotSetActivity(WORKER_CLAIMING);
		slow_tenants_held(cy);

		/*
		 * Now, not when the transaction began: events received while a slow
		 * handler ran are due, and run next, not after the next slow one.
		 */
		cy->req.now = GetCurrentTimestamp();
		cy->nclaimed = InboundClaim(&cy->req, cy->claimed);
	}
}

/* Gives the slot of a run event back and forgets it. */
static void
finish_item(InboundJob *j, InboundItem *ii)
{
	(void) SchedulerFinished(j->svc->scheduler, ii->item.target, GetCurrentTimestamp());
	dlist_delete(&ii->ready);
	j->nready--;
	j->nheld--;
	pfree(ii);
}

/* After a committed cycle: gives back the slots of the events run, queues the claimed. */
static void
cycle_done(InboundJob *j, InboundCycle *cy)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < cy->nrun; i++)
	{
		InboundOutcome *o = &cy->outcomes[i];

		/* Not run this time: it stays ready, in its slot. */
		if (o->status == INBOUND_DEFERRED)
			continue;
		if (o->status == INBOUND_RETRY)
			j->next_due = EarliestTime(j->next_due, o->next_attempt_at);
		else if (o->status == INBOUND_GONE && j->npassed < INBOUND_BATCH)
		{
			/* Locked by another session (or done already): not at once again. */
			j->passed_over[j->npassed++] = cy->run[i]->ref.id;
			j->passed_until = TimestampTzPlusMilliseconds(now, PASSED_OVER_MS);
		}
		finish_item(j, cy->run[i]);
	}
	WorkerSlotCountInbound(cy->handled, cy->failed_attempts);
	if (!cy->claim)
		return;

	/* A full claim, or one that started mid-way: more may be due. */
	j->claim_needed = cy->nclaimed >= cy->req.limit || cy->req.cursor[0] != '\0';
	if (cy->req.next_due != 0)
		j->next_due = EarliestTime(j->next_due, cy->req.next_due);
	strlcpy(j->cursor, cy->req.cursor, sizeof(j->cursor));
	for (int i = 0; i < cy->nclaimed; i++)
	{
		InboundRef *ref = &cy->claimed[i];
		InboundItem *ii;

		/* No room for its target: it waits in the table, pending. */
		/* Handlers have no rate limit: 0 is none. */
		if (SchedulerRoom(j->svc->scheduler, &inbound_job_kind, ref->tenant_id,
						  ref->connector_id, 0, 0, now) == 0)
			continue;
		ii = MemoryContextAllocZero(j->cxt, sizeof(InboundItem));
		ii->item.kind = &inbound_job_kind;
		ii->ref = *ref;
		SchedulerEnqueue(j->svc->scheduler,
						 SchedulerTarget(j->svc->scheduler, &inbound_job_kind, ref->tenant_id,
										 ref->connector_id),
						 &ii->item, now);
		j->nheld++;
	}
}

/*
 * Runs one cycle, which runs ready events when run and claims when claim; on failure
 * decides what the next ones do (see the banner).
 */
static void
run_cycle(InboundJob *j, bool claim, bool run)
{
	InboundCycle cy;
	int			sqlerrcode;
	char	   *message;
	int			nrun;
	dlist_iter	iter;
	int			i = 0;

	/*
	 * The events of the failed batch are ready until run: none left, none
	 * owed.
	 */
	if (j->nready == 0)
		j->solo = 0;

	/*
	 * Not in the cycle's transaction, which runs handlers
	 * (table_statistics.c).
	 */
	InboundAnalyzeIfStale();
	nrun = !run ? 0 : j->solo > 0 ? 1 : j->nready;
	memset(&cy, 0, sizeof(cy));
	cy.job = j;
	cy.run = palloc(sizeof(InboundItem *) * Max(nrun, 1));
	dlist_foreach(iter, &j->ready)
	{
		if (i == nrun)
			break;
		cy.run[i++] = dlist_container(InboundItem, ready, iter.cur);
	}
	cy.nrun = nrun;
	cy.outcomes = palloc0(sizeof(InboundOutcome) * Max(nrun, 1));
	cy.claim = claim && j->solo == 0;
	if (cy.claim)
	{
		HeldIds		held = left_out_ids(j);

		cy.req.held = held.ids;
		cy.req.nheld = held.n;
		/* What runs in the same transaction adds to this (cycle_step()). */
		cy.req.limit = INBOUND_BATCH - j->nheld;
		strlcpy(cy.req.cursor, j->cursor, sizeof(cy.req.cursor));
		cy.claimed = palloc(sizeof(InboundRef) * INBOUND_BATCH);
	}

	if (WorkerRunTransaction(cycle_step, &cy, nrun > 0 ? "running inbound handlers" : "claiming inbound events",
							 &sqlerrcode, &message))
	{
		if (j->extension_gone)
			WorkerExitExtensionGone(j->svc);
		if (j->solo > 0 && nrun > 0)
			j->solo--;
		cycle_done(j, &cy);
		return;
	}

	/*
	 * The plans may point at a dropped extension's tables: made again next
	 * time.
	 */
	InboundForgetPlans();
	if (WorkerErrorIsTransient(sqlerrcode) || nrun == 0)
	{
		j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		return;
	}
	if (nrun > 1)
	{
		/* Which event's transaction fails: each of them alone, next. */
		j->solo = nrun;
		return;
	}

	/*
	 * It fails alone: a failed attempt of its own, recorded in a transaction
	 * of its own.
	 */
	memset(&cy, 0, sizeof(cy));
	cy.job = j;
	cy.run = palloc(sizeof(InboundItem *));
	cy.run[0] = dlist_container(InboundItem, ready, dlist_head_node(&j->ready));
	cy.nrun = 1;
	cy.outcomes = palloc0(sizeof(InboundOutcome));
	cy.failure = message;
	if (!WorkerRunTransaction(cycle_step, &cy, "recording a failed inbound event", &sqlerrcode, NULL))
	{
		j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		return;
	}
	if (j->extension_gone)
		WorkerExitExtensionGone(j->svc);
	if (j->solo > 0)
		j->solo--;
	cycle_done(j, &cy);
}

/* Timers that came due: retries, the idle recheck, events passed over. */
static void
fire_timers(InboundJob *j, TimestampTz now)
{
	if (j->next_due != 0 && now >= j->next_due)
	{
		j->next_due = 0;
		j->claim_needed = true;
	}
	if (now >= j->next_recheck)
	{
		j->claim_needed = true;
		j->next_recheck = TimestampTzPlusMilliseconds(now, integration_idle_recheck_ms);
	}
	if (j->npassed > 0 && now >= j->passed_until)
	{
		j->npassed = 0;
		j->claim_needed = true;
	}
}

/* Whether a claim is wanted and there is room to hold what it takes. */
static bool
claim_wanted(InboundJob *j)
{
	return j->claim_needed && j->nheld < INBOUND_BATCH;
}

/* Whether an event of a tenant whose events run one per transaction is ready. */
static bool
slow_event_ready(InboundJob *j)
{
	dlist_iter	iter;

	dlist_foreach(iter, &j->ready)
		if (InboundPacerSlow(j->pacer, dlist_container(InboundItem, ready, iter.cur)->ref.tenant_id))
		return true;
	return false;
}

/*
 * WorkerKindOps.step: at most one store transaction, which runs the ready events and
 * claims more when wanted.  A run always claims too: the events it ran may have been
 * what later events of their objects waited for.  Woken for new events while a slow
 * tenant's event is ready, it claims them first, in a transaction of their own, so that
 * the pacer can run them before that event rather than after it; once, then it runs.
 */
static bool
inbound_step(void *state, TimestampTz now)
{
	InboundJob *j = state;
	bool		run;

	fire_timers(j, now);
	if (now < j->pause_until)
		return false;
	if (j->nready == 0 && !claim_wanted(j))
		return false;
	run = j->claimed_first || !claim_wanted(j) || j->solo > 0 || !slow_event_ready(j);
	run_cycle(j, true, run);
	j->claimed_first = !run;
	WorkerSlotSetInboundHeld(j->nheld);
	return true;
}

static void
inbound_woken(void *state, uint32 requests)
{
	InboundJob *j = state;

	if (requests == 0 || (requests & WORKER_WAKE_INBOUND) != 0)
		j->claim_needed = true;
}

static void
inbound_reload(void *state)
{
	InboundJob *j = state;

	j->claim_needed = true;
}

/* WorkerKindOps.next_wake: the time this kind needs the loop again; now: at once. */
static TimestampTz
inbound_next_wake(void *state, TimestampTz now)
{
	InboundJob *j = state;
	TimestampTz wake;

	if (j->pause_until > now)
		return j->pause_until;
	if (j->nready > 0 || claim_wanted(j))
		return now;
	wake = EarliestTime(j->next_recheck, j->next_due);
	if (j->npassed > 0)
		wake = EarliestTime(wake, j->passed_until);
	return wake;
}

static void *inbound_create(WorkerServices *svc);

const WorkerKindOps inbound_job_ops = {
	.kind = &inbound_job_kind,
	.wakes = WORKER_WAKE_INBOUND,
	.sends = false,
	.create = inbound_create,
	.startup = NULL,
	.woken = inbound_woken,
	.reload = inbound_reload,
	.prepare = NULL,
	.step = inbound_step,
	.finished = NULL,			/* no event makes a request */
	.next_wake = inbound_next_wake,
};

static void *
inbound_create(WorkerServices *svc)
{
	InboundJob *j = MemoryContextAllocZero(TopMemoryContext, sizeof(InboundJob));

	j->svc = svc;
	j->pacer = InboundPacerCreate(TopMemoryContext, (int64) RUN_BUDGET_MS * 1000);
	j->cxt = AllocSetContextCreate(TopMemoryContext, "integration inbound events",
								   ALLOCSET_DEFAULT_SIZES);
	dlist_init(&j->ready);
	/* Events left pending by a previous worker run at once. */
	j->claim_needed = true;
	j->next_recheck = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  integration_idle_recheck_ms);
	return j;
}
