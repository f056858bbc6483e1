/*
 * delivery_job.c
 *		Webhook deliveries as a kind of work of the worker.
 *
 * Where deliveries come from.  One store transaction at a time (a cycle): it writes back
 * the outcomes of finished requests, then fans new events out into deliveries and
 * claims due ones (retries, dispatches, redeliveries).  Fan-out has two lanes
 * (StoreFanOutAndClaim()): the backlog lane takes the oldest events and runs while
 * the scheduler wants work; the fresh lane takes what was published after a backlog
 * began and runs whenever a commit wakes the worker, so a fresh event never waits
 * behind another tenant's backlog.  A delivery is claimed ('sending' with a lease)
 * only while its endpoint has room in the scheduler; beyond that it waits in the
 * table, pending, and is claimed when the endpoint has room again (slot_released()).
 *
 * Where they go.  Each claim becomes a DeliveryItem queued in the scheduler under its
 * endpoint (the target); the scheduler decides when it starts.  A finished request's
 * outcome keeps its slot of the worker until it is committed, so at most
 * integration.max_concurrency deliveries are ever sent but not recorded, which bounds
 * the duplicates a crash can cause; a delivered request's endpoint and tenant slots go
 * back when it ends (SchedulerEnded()), so a healthy endpoint's next requests do not
 * wait for that commit.  Results whose rows someone else holds locked are
 * kept for later and give their slots up, so those locks stall nobody else.
 *
 * Locks.  No store statement waits for a row lock that others hold: they skip such
 * rows (SKIP LOCKED) and say which they skipped; the job retries those results every
 * LOCKED_RETRY_MS (deferred), and the fan-out puts back events whose endpoint is
 * locked and comes back to them (fanout.retry_at).  lock_timeout stays only as a
 * backstop for the waits no statement can skip (a foreign-key check of an event that
 * an open transaction is deleting; a duplicate delivery inserted by hand in an open
 * transaction): past it the transaction fails, is logged, and is retried after
 * ERROR_PAUSE_MS with its results kept, results alone first.
 *
 * Endpoint protection.  Each outcome is reported to the scheduler as what it means to
 * the endpoint (TargetOutcomeOfHttp()): a 429 slows the endpoint down, and failures
 * feed its circuit.  When a circuit opens, the claims queued for its endpoint are
 * given back to 'pending' unsent, without using an attempt (StoreReturnClaims()); while
 * it is open the endpoint gets no claim, and what is published for it waits pending.
 * When it goes half open the job claims one due delivery for it, the probe
 * (StoreClaimProbes()); when the probe closes it, its backlog is claimed as room frees
 * up.  Each cycle stores the circuits' transitions (circuit_store.c), and a starting
 * worker reads back the circuits that were not closed.
 *
 * Claims wait in the scheduler, up to many rounds of requests: an endpoint changed
 * meanwhile (a new URL, secret or headers; disabled; deleted) must apply to them, as to
 * any attempt that starts after the change committed; prepare() re-reads the settings
 * of their endpoints when the endpoints generation moved.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "circuit_store.h"
#include "delivery_job.h"
#include "delivery_claim.h"
#include "delivery_fan_out.h"
#include "delivery_outcome.h"
#include "delivery_request.h"
#include "delivery_store.h"
#include "endpoint_settings.h"
#include "integration.h"
#include "retry_policy.h"
#include "sending_counts.h"
#include "shared_state.h"
#include "worker_slots.h"

#define RESULT_BATCH 512
#define RESULT_FLUSH_MS 10
/* Full fan-out batches continued from where the last ended before one from the start. */
#define FANOUT_RESTART_ROUNDS 16
/* Claims held ahead per endpoint, in units of its concurrency limit. */
#define HOLD_ROUNDS 8
#define ERROR_PAUSE_MS 1000
#define LOCKED_RETRY_MS 1000
#define LOCKED_RETRY_MAX_MS 10000
#define RECORD_MAX_FAILURES 3
#define LEASE_MARGIN_MS 60000

/* The claims of one store transaction: their memory goes when the last is recorded. */
typedef struct ClaimBatch
{
	MemoryContext cxt;
	int			refs;
} ClaimBatch;

/* One claimed delivery, queued in the scheduler and then in flight. */
typedef struct DeliveryItem
{
	SchedItem	item;			/* first: the scheduler hands this back */
	HttpRequest req;
	ClaimedDelivery *claim;
	ClaimBatch *batch;
	const RetrySchedule *policy;
	dlist_node	flight;			/* in DeliveryJob.in_flight while its request
								 * runs */
} DeliveryItem;

/*
 * An endpoint by its key, with its own copy of the tenant id, as it outlives the
 * transaction that read it: an endpoint the backlog lane waits for (paced_until()),
 * the key of refresh_step()'s table.
 */
typedef struct EndpointId
{
	int64		id;
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
} EndpointId;

/* The fan-out's two lanes and their cursors (StoreFanOutAndClaim()). */
typedef struct FanOut
{
	bool		needed;			/* the backlog lane has events to take */
	int64		after;			/* its cursor; PG_INT64_MIN: from the start */
	int			continued;		/* batches since the last from the start */
	bool		fresh_on;		/* a backlog is draining: the fresh lane runs */
	bool		fresh_needed;	/* a commit woke the worker since the fresh
								 * lane ran */
	int64		fresh_after;	/* the fresh lane's cursor */
	bool		fresh_went_first;	/* the last cycle was the fresh lane's
									 * alone */
	bool		sweep_put_back; /* this sweep from the start queued events
								 * again */
	int			retry_ms;		/* delay of the last retry; 0: the next waits
								 * LOCKED_RETRY_MS */
	TimestampTz retry_at;		/* events were queued again for a locked
								 * endpoint */
	/* The endpoints the last backlog batch left short of room (paced_until()) */
	EndpointId	short_of_room[FANOUT_SHORT_MAX];
	int			nshort;
	TimestampTz short_since;	/* when that batch noted them */
} FanOut;

typedef struct DeliveryJob
{
	WorkerServices *svc;
	dlist_head	in_flight;

	/* Outcomes not written yet; results[0..ndeferred) had their rows locked. */
	MemoryContext results_cxt;
	DeliveryResult *results;
	int			nresults;
	int			maxresults;
	int			ndeferred;
	TimestampTz first_result_at;
	TimestampTz deferred_retry_at;
	int			record_failures;	/* consecutive */

	/* What to look for in the next cycle. */
	bool		scan_needed;	/* claim or fan out: something may be waiting */
	bool		due_needed;		/* pending deliveries may be due */
	bool		reconcile_needed;	/* look for expired leases */
	TransactionId startup_xid;	/* the first transaction's, or the adopting
								 * one's (sending_counts.c) */
	bool		adopt_needed;	/* the counts wait for writers to end */
	TimestampTz reconcile_at;	/* when to, after results were dropped; 0:
								 * never */
	TimestampTz next_due;		/* 0: nothing pending */
	bool		next_due_stale; /* claims ran since next_due was read */
	TimestampTz claimed_at;		/* now() of the last claim */
	int64	   *skipped;		/* endpoints the last claim left out, full;
								 * sorted */
	int			nskipped;
	TimestampTz next_recheck;
	bool		purge_needed;	/* delete retired secrets that expired (at
								 * each idle recheck) */
	FanOut		fanout;

	/* After a failure. */
	TimestampTz pause_until;
	bool		lock_timed_out; /* the last failed transaction waited too long */
	bool		record_alone;	/* after a lock timeout: results first, then
								 * claims */

	uint64		endpoints_seen; /* endpoints generation the queued claims are
								 * as of */
	bool		extension_gone;

	int			transition_failures;	/* consecutive */

	/* Claims to give back unsent: their endpoints' circuits opened. */
	ReturnedClaim *returned;
	int			nreturned;
	int			maxreturned;
} DeliveryJob;

/* What one store transaction is asked to do, and what it found. */
typedef struct Cycle
{
	DeliveryJob *job;
	bool		record;
	bool		claim;
	bool		fresh_only;		/* claim: only the fresh lane */
	int			deferred;		/* out: results left for later */
	bool		put_back;		/* out: events queued again */
	ClaimList	claims;			/* out */
	int			inserted;		/* out: claims[0..inserted) the fan-out made */
	TransactionId xid;			/* out: the transaction's, if it wrote */
	int			returned;		/* out: claims given back */
	uint64		transitions_upto;	/* out: circuit transitions stored */
	SchedTarget **disabled;		/* out: the endpoints the worker disabled (in
								 * TopMemoryContext) */
	int			ndisabled;
} Cycle;

static bool delivery_start(SchedItem *item, void *arg);
static void request_ended(DeliveryJob *j, SchedTarget *target, int64 endpoint_id);

const JobKind delivery_job_kind = {
	.name = "delivery",
	.target = "webhook",
	.start = delivery_start,
};

static int
lease_ms(void)
{
	return integration_request_timeout_ms + LEASE_MARGIN_MS;
}

/*
 * Events fanned out, or due deliveries claimed, by one cycle: one round of requests
 * (integration.max_concurrency), within [16, STORE_BATCH].  Requests that finish while
 * a cycle runs keep their slots until the next one commits, so a cycle that writes
 * more than a round of deliveries leaves the slots idle for its last part: at 64 in
 * flight, batches of 64 delivered about a sixth more per second than batches of 256
 * (bench/run, interleaved rounds), with fewer commits per delivery.
 */
static int
cycle_batch(void)
{
	return Min(Max(integration_max_concurrency, 16), STORE_BATCH);
}

/* ------------------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------------------ */

static void
add_result(DeliveryJob *j, DeliveryItem *di, const char *outcome, TimestampTz started,
		   int64 duration_us, int status_code, const char *error_class, const char *error,
		   const char *response, size_t response_len, TimestampTz next_at)
{
	MemoryContext old = MemoryContextSwitchTo(j->results_cxt);
	ClaimedDelivery *c = di->claim;
	DeliveryResult *r;

	if (j->nresults == j->maxresults)
	{
		j->maxresults = Max(64, j->maxresults * 2);
		j->results = j->results ? repalloc(j->results, sizeof(DeliveryResult) * j->maxresults)
			: palloc(sizeof(DeliveryResult) * j->maxresults);
	}
	if (j->nresults == j->ndeferred)
		j->first_result_at = GetCurrentTimestamp();
	r = &j->results[j->nresults++];
	r->tenant_id = pstrdup(c->tenant_id);
	r->id = c->id;
	r->endpoint_id = c->endpoint_id;
	r->outcome = outcome;
	/* A skipped delivery made no request: it keeps its attempts. */
	r->attempt = strcmp(outcome, "skipped") == 0 ? c->attempts : c->attempts + 1;
	r->started_at = started;
	r->duration_ms = (int) Min(duration_us / 1000, (int64) PG_INT32_MAX);
	r->status_code = status_code;
	r->error_class = error_class;
	r->error = error ? StorableText(error, strlen(error)) : NULL;
	r->response = response ? StorableText(response, response_len) : NULL;
	r->next_attempt_at = next_at;
	ItemPointerCopy(&c->tid, &r->tid);
	r->lease = c->lease;
	r->claim_xmax = c->claim_xmax;
	r->slot = di->item.target;	/* the worker's slot, given back once recorded */
	MemoryContextSwitchTo(old);

	/*
	 * A delivered request frees its endpoint's slot now; one that failed
	 * keeps it until recorded, so a failing endpoint gets no more requests at
	 * once than its concurrency before its circuit opens (t/018).
	 */
	r->slot_ended = strcmp(outcome, "delivered") == 0;
	if (r->slot_ended)
		request_ended(j, di->item.target, c->endpoint_id);

	if (strcmp(outcome, "skipped") != 0)
		WorkerSlotCountOutcome(strcmp(outcome, "delivered") == 0);
}

/* Records a failed attempt: scheduled again, or failed for good (retry_policy.c). */
static void
add_failure(DeliveryJob *j, DeliveryItem *di, TimestampTz started, int64 duration_us,
			const DeliveryVerdict *v, const char *response, size_t response_len)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		delay = RetryDecide(di->policy, di->claim->attempts + 1, &v->failure, now,
									pg_prng_double(&pg_global_prng_state));

	add_result(j, di, delay < 0 ? "failed" : "pending", started, duration_us, v->status_code,
			   v->error_class, v->error, response, response_len,
			   delay < 0 ? 0 : TimestampTzPlusMilliseconds(now, delay));
}

static void
batch_unref(ClaimBatch *batch)
{
	if (--batch->refs == 0)
		MemoryContextDelete(batch->cxt);
}

/*
 * A request is over: its endpoint's and tenant's slots go back to the scheduler (the
 * worker's slot stays with the result until it is recorded: release_slot()).  If the
 * last claim left its endpoint out for being at its limit and it is below it now, its
 * due deliveries can be claimed: this, not a timer, brings them in, so a full endpoint
 * with a backlog never makes the worker spin.
 */
static void
request_ended(DeliveryJob *j, SchedTarget *target, int64 endpoint_id)
{
	if (SchedulerEnded(j->svc->scheduler, target, GetCurrentTimestamp()) &&
		j->nskipped > 0 &&
		bsearch(&endpoint_id, j->skipped, j->nskipped, sizeof(int64), int64_cmp))
	{
		j->nskipped = 0;
		j->due_needed = true;
		j->scan_needed = true;
	}
}

/*
 * Gives a result's slot of the worker back to the scheduler once the result is
 * recorded (or dropped): at most integration.max_concurrency deliveries are sent and
 * not recorded.
 */
static void
release_slot(DeliveryJob *j, DeliveryResult *r)
{
	if (r->slot == NULL)
		return;
	if (!r->slot_ended)
		request_ended(j, (SchedTarget *) r->slot, r->endpoint_id);
	SchedulerRecorded(j->svc->scheduler);
	r->slot = NULL;
}

/* The scheduler's JobKind.start: builds and starts the request of a queued delivery. */
static bool
delivery_start(SchedItem *item, void *arg)
{
	DeliveryJob *j = arg;
	DeliveryItem *di = (DeliveryItem *) item;
	const char *error_class = NULL;
	const char *error = NULL;
	MemoryContext old = MemoryContextSwitchTo(di->batch->cxt);
	bool		ok;

	memset(&di->req, 0, sizeof(di->req));
	ok = DeliveryRequestBuild(di->claim, &di->req, &error_class, &error);
	MemoryContextSwitchTo(old);
	if (!ok)
		(void) SchedulerReport(j->svc->scheduler, item, TARGET_NOT_SENT, -1, GetCurrentTimestamp());
	if (!ok && !di->claim->usable && di->claim->payload != NULL)
	{
		/*
		 * Disabled or deleted: its circuit is moot, and what waits for it
		 * must fail in batches, not a probe at a time.
		 */
		SchedulerCloseCircuit(j->svc->scheduler, item->target, "the endpoint is disabled or deleted",
							  GetCurrentTimestamp());
		j->due_needed = j->scan_needed = true;
	}
	if (!ok && strcmp(error_class, DELIVERY_SECRET_UNAVAILABLE) == 0)
	{
		/* Retried on the schedule: a key put back in the key file cures it. */
		DeliveryVerdict v;

		memset(&v, 0, sizeof(v));
		v.error_class = error_class;
		v.error = (char *) error;
		add_failure(j, di, GetCurrentTimestamp(), 0, &v, NULL, 0);
		batch_unref(di->batch);
		return false;
	}
	if (!ok && di->claim->suspended)
	{
		/*
		 * The worker disabled its endpoint: skipped, for enable_webhook() to
		 * replay (the record checks the endpoint is still disabled).
		 */
		add_result(j, di, "skipped", GetCurrentTimestamp(), 0, 0, NULL,
				   DELIVERY_SKIPPED_ERROR, NULL, 0, 0);
		batch_unref(di->batch);
		return false;
	}
	if (!ok)
	{
		add_result(j, di, "failed", GetCurrentTimestamp(), 0, 0, error_class, error, NULL, 0, 0);
		batch_unref(di->batch);
		return false;
	}
	di->req.owner = di;
	dlist_push_tail(&j->in_flight, &di->flight);
	WorkerSlotCountSent();
	HttpClientStart(j->svc->client, &di->req);
	return true;
}

/* Keeps a queued claim to give back (its endpoint's circuit opened). */
static void
give_back(SchedItem *item, void *arg)
{
	DeliveryJob *j = arg;
	DeliveryItem *di = (DeliveryItem *) item;
	ReturnedClaim *r;

	if (j->nreturned == j->maxreturned)
	{
		j->maxreturned = Max(64, j->maxreturned * 2);
		j->returned = j->returned ?
			repalloc(j->returned, sizeof(ReturnedClaim) * j->maxreturned) :
			MemoryContextAlloc(TopMemoryContext, sizeof(ReturnedClaim) * j->maxreturned);
	}
	r = &j->returned[j->nreturned++];
	ItemPointerCopy(&di->claim->tid, &r->tid);
	r->id = di->claim->id;
	r->lease = di->claim->lease;
	r->claim_xmax = di->claim->claim_xmax;
	/* Due since it was queued, as it was then. */
	r->due = item->queued_at;
	batch_unref(di->batch);
}

/* Tells the scheduler what the endpoint made of a request (WorkerReportRequest()). */
static void
report_outcome(DeliveryJob *j, SchedItem *item, const HttpRequest *req)
{
	SchedReportAction action = WorkerReportRequest(j->svc->scheduler, item, req);

	if (action == SCHED_REPORT_OPENED)
		SchedulerTakeQueued(j->svc->scheduler, item->target, give_back, j, GetCurrentTimestamp());
	else if (action == SCHED_REPORT_CLOSED)
	{
		/* Its backlog, pending while the circuit was open, may be claimed. */
		j->due_needed = true;
		j->scan_needed = true;
	}
}

/* WorkerKindOps.finished: a request came back; its outcome waits to be written. */
static void
delivery_finished(void *state, SchedItem *item, HttpRequest *req)
{
	DeliveryJob *j = state;
	DeliveryItem *di = (DeliveryItem *) item;
	DeliveryVerdict v;

	report_outcome(j, item, req);
	DeliveryRequestJudge(req, &v);
	if (v.delivered)
		add_result(j, di, "delivered", req->started_at, req->duration_us, v.status_code,
				   NULL, NULL, req->response, req->response_len, 0);
	else
		add_failure(j, di, req->started_at, req->duration_us, &v,
					v.status_code ? req->response : NULL,
					v.status_code ? req->response_len : 0);
	HttpRequestRelease(req);
	dlist_delete(&di->flight);
	batch_unref(di->batch);
}

/* ------------------------------------------------------------------------------------
 * Store transactions
 * ------------------------------------------------------------------------------------ */

/*
 * Runs one store transaction (WorkerRunTransaction()); false when it failed and was
 * rolled back.  The caller keeps its state and tries again later.
 */
static bool
run_transaction(DeliveryJob *j, WorkerTransactionStep step, void *arg, const char *activity)
{
	int			sqlerrcode;

	if (WorkerRunTransaction(step, arg, activity, &sqlerrcode, NULL))
		return true;
	if (sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
	{
		j->lock_timed_out = true;
		j->record_alone = true; /* the claim part may be what waited */
	}
	StoreForgetPlans();
	return false;
}

/* Ids of the deliveries this worker holds (queued, in flight, or answered). */
typedef struct HeldIds
{
	int64	   *ids;
	int			n;
} HeldIds;

static void
collect_queued_id(SchedItem *item, void *arg)
{
	HeldIds    *held = arg;

	if (item->kind == &delivery_job_kind)
		held->ids[held->n++] = ((DeliveryItem *) item)->claim->id;
}

static int
held_deliveries(DeliveryJob *j, int64 **out)
{
	HeldIds		held;
	dlist_iter	iter;

	held.ids = palloc(sizeof(int64) * Max(SchedulerInFlight(j->svc->scheduler) +
										  SchedulerQueued(j->svc->scheduler) + j->nresults +
										  j->nreturned, 1));
	held.n = 0;
	dlist_foreach(iter, &j->in_flight)
		held.ids[held.n++] = dlist_container(DeliveryItem, flight, iter.cur)->claim->id;
	SchedulerForEachQueued(j->svc->scheduler, collect_queued_id, &held);
	/* Answered, not written yet (deferred ones included). */
	for (int i = 0; i < j->nresults; i++)
		held.ids[held.n++] = j->results[i].id;
	/* To give back, still 'sending' with this worker's lease. */
	for (int i = 0; i < j->nreturned; i++)
		held.ids[held.n++] = j->returned[i].id;
	*out = held.ids;
	return held.n;
}

/* FanOutRoom for the store: how many more claims the scheduler takes for an endpoint. */
static int
endpoint_room(void *arg, const EndpointSettings *ep)
{
	DeliveryJob *j = arg;

	return SchedulerRoom(j->svc->scheduler, &delivery_job_kind, ep->tenant_id, ep->id,
						 ep->rate_limit, ep->rate_limit_burst, GetCurrentTimestamp());
}

/*
 * Until when the backlog lane waits for room, 0 when it need not: its last batch left
 * each of its few endpoints with room for less than another batch
 * (FanOutLanes.short_of_room), and each will have that room within moments, as it
 * answers fast (SchedulerRoomSoon(); the ends of their requests wake the loop before
 * that time, and each wake asks again).  Taken at once, the next batch's deliveries
 * beyond the room would go in pending, each row written twice (inserted, then claimed:
 * a second heap version and its index entries): one endpoint at the default cap
 * draining a backlog had three of four deliveries made that way (bench/README.md).
 * The fresh lane and the claims of due deliveries never wait, and take that room as it
 * frees: while the endpoint's tenant keeps publishing, the room the wait expects may
 * never come, though ends keep saying it is moments away.  So a batch waits at most
 * SCHED_ROOM_SOON_MS from when it noted its endpoints, whoever takes their room; else
 * the backlog lane, and every tenant's events behind it, stopped for as long as that
 * tenant published (t/043_paced_backlog.pl).
 */
static TimestampTz
paced_until(DeliveryJob *j, TimestampTz now)
{
	FanOut	   *f = &j->fanout;
	TimestampTz until;

	if (f->nshort == 0)
		return 0;
	until = TimestampTzPlusMilliseconds(f->short_since, SCHED_ROOM_SOON_MS);
	if (now >= until)
	{
		f->nshort = 0;
		return 0;
	}
	for (int i = 0; i < f->nshort; i++)
	{
		TimestampTz at = SchedulerRoomSoon(j->svc->scheduler, &delivery_job_kind,
										   f->short_of_room[i].tenant_id, f->short_of_room[i].id,
										   cycle_batch(), now);

		/* Room now, or not soon: the lane goes on, and notes afresh. */
		if (at == 0 || at <= now)
		{
			f->nshort = 0;
			return 0;
		}
		until = Min(until, at);
	}
	return until;
}

/* Notes the endpoints a backlog batch left short of room, if few, at now. */
static void
keep_short_of_room(FanOut *f, const FanOutLanes *lanes, TimestampTz now)
{
	f->nshort = 0;
	f->short_since = now;
	if (lanes->short_more)
		return;
	for (int i = 0; i < lanes->nshort; i++)
	{
		f->short_of_room[i].id = lanes->short_of_room[i].id;
		strlcpy(f->short_of_room[i].tenant_id, lanes->short_of_room[i].tenant_id,
				sizeof(f->short_of_room[i].tenant_id));
	}
	f->nshort = lanes->nshort;
}

/*
 * The fan-out of one cycle: the backlog lane when the scheduler wants work and it
 * need not wait for room (paced_until()), the fresh lane while a backlog drains.  A
 * full backlog batch continues after its last event, from the start every
 * FANOUT_RESTART_ROUNDS; a batch that was not full ends the sweep, after one more
 * from the start if this one was continued, unless this sweep queued events again:
 * those would fill that pass again and again, so the next pass from the start waits
 * for fanout.retry_at.
 */
static void
fan_out(Cycle *cy)
{
	DeliveryJob *j = cy->job;
	FanOut	   *f = &j->fanout;
	int			batch = cycle_batch();
	bool		backlog = f->needed && !cy->fresh_only &&
	paced_until(j, GetCurrentTimestamp()) == 0;
	bool		from_start = (f->after == PG_INT64_MIN);
	FanOutLanes lanes;

	memset(&lanes, 0, sizeof(lanes));
	lanes.after = f->after;
	lanes.limit = backlog ? batch : 0;
	lanes.fresh_after = f->fresh_after;

	/*
	 * The fresh lane only when a commit woke the worker since it last ran:
	 * else it finds nothing, and its index scan and UNION in every backlog
	 * batch cost the worker about a microsecond per delivery
	 * (bench/README.md).
	 */
	lanes.fresh_limit = f->fresh_on && f->fresh_needed ? batch : 0;
	if (lanes.limit == 0 && lanes.fresh_limit == 0)
		return;
	(void) StoreFanOutAndClaim(lease_ms(), &lanes, endpoint_room, j, &cy->claims);
	cy->put_back = lanes.put_back;
	if (backlog)
		keep_short_of_room(f, &lanes, GetCurrentTimestamp());
	if (lanes.overflowed)
		j->due_needed = true;	/* what went in pending is claimed as room
								 * frees up */

	if (f->fresh_on)
	{
		f->fresh_after = lanes.fresh_after;
		f->fresh_needed = lanes.fresh_taken >= batch;

		/*
		 * The fresh lane has a backlog of its own: it joins the backlog
		 * lane's.
		 */
		if (lanes.fresh_taken >= batch)
			f->fresh_after = Max(f->fresh_after, StoreNewestQueued());
	}
	else
		f->fresh_needed = false;
	if (!backlog)
		return;

	if (from_start)
	{
		/* The last sweep put nothing back: the locks are gone. */
		if (!f->sweep_put_back)
			f->retry_ms = 0;
		f->sweep_put_back = false;
	}
	if (lanes.put_back)
		f->sweep_put_back = true;
	f->needed = lanes.taken >= batch || (!from_start && !f->sweep_put_back);
	/* Events put back sit at the front: a restart would only take them again. */
	if (lanes.taken >= batch &&
		(++f->continued < FANOUT_RESTART_ROUNDS || f->sweep_put_back))
		f->after = lanes.after;
	else
	{
		f->after = PG_INT64_MIN;
		f->continued = 0;
	}

	/*
	 * And a sweep that put events back keeps its place: the fan-outs that new
	 * events wake continue past those, and only fanout.retry_at starts over.
	 */
	if (f->sweep_put_back && lanes.taken < batch)
		f->after = lanes.after;

	/*
	 * A full batch means a backlog: what is published from now on goes
	 * through the fresh lane, which starts above the newest event queued now.
	 * A backlog lane that took less than a batch has reached the fresh lane's
	 * events: one lane again.
	 */
	if (lanes.taken >= batch && !f->fresh_on)
	{
		f->fresh_on = true;
		f->fresh_after = Max(StoreNewestQueued(), lanes.after);
	}
	else if (f->fresh_on && lanes.taken < batch)
	{
		f->fresh_on = false;
		f->fresh_needed = false;
		if (f->after != PG_INT64_MIN)
			f->after = Max(f->after, f->fresh_after);
	}
}

/*
 * Claims one delivery to probe with for each endpoint whose circuit is half open and
 * has none; an endpoint with none due is asked about again when its next comes due.
 */
static void
claim_probes(Cycle *cy)
{
	Scheduler  *s = cy->job->svc->scheduler;
	SchedTarget **targets;
	ProbeRequest *probes;
	int			n = SchedulerProbesWanted(s, &delivery_job_kind, GetCurrentTimestamp(), &targets);

	if (n == 0)
		return;
	probes = palloc(sizeof(ProbeRequest) * n);
	for (int i = 0; i < n; i++)
	{
		const SchedTargetKey *key = SchedulerTargetKeyOf(targets[i]);

		probes[i].tenant_id = key->tenant_id;
		probes[i].endpoint_id = key->id;
	}
	StoreClaimProbes(lease_ms(), probes, n, &cy->claims);
	for (int i = 0; i < n; i++)
		SchedulerProbeLookedFor(s, targets[i], probes[i].found, probes[i].next_at);
}

/* The cycle's work: record results, then fan out and claim. */
static void
cycle_work(Cycle *cy)
{
	DeliveryJob *j = cy->job;
	int			batch = cycle_batch();
	bool		durable;

	/*
	 * Dropped, or dropped and created again: nothing here belongs to its
	 * tables.
	 */
	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}
	StoreReplanIfStale();
	if (cy->record)
	{
		EndpointRefs disabled;

		cy->deferred = StoreRecord(j->results, j->nresults, &disabled);
		/* Written, or their rows gone: no longer 'sending' once this commits. */
		for (int i = cy->deferred; i < j->nresults; i++)
			SendingCountsEnded(j->results[i].tenant_id);
		if (disabled.n > 0)
		{
			cy->disabled = MemoryContextAlloc(TopMemoryContext, sizeof(SchedTarget *) * disabled.n);
			for (int i = 0; i < disabled.n; i++)
				cy->disabled[i] = SchedulerTarget(j->svc->scheduler, &delivery_job_kind,
												  disabled.tenant_ids[i], disabled.ids[i]);
			cy->ndisabled = disabled.n;
		}
	}
	if (j->nreturned > 0)
		cy->returned = StoreReturnClaims(j->returned, j->nreturned);
	cy->transitions_upto = CircuitStoreTransitions(j->svc->scheduler, &delivery_job_kind,
												   &j->transition_failures);
	durable = (cy->record && j->nresults > 0) || cy->transitions_upto != 0;
	if (j->purge_needed)
	{
		(void) StorePurgeRetiredSecrets();
		j->purge_needed = false;
		durable = true;
	}

	/*
	 * A cycle that only fans out and claims does not wait for its WAL flush
	 * before its requests start: a crash that loses it leaves the events
	 * queued and the claims pending, and each request sent from it keeps its
	 * slot until a commit that does wait records its outcome (and flushes
	 * this one's WAL with it), so a crash repeats no more deliveries than
	 * before.  What saves: the flush on the way from a commit to its request
	 * (0.2 to 0.6 ms here, several ms on a busy disk).  Outcomes, circuits
	 * and secrets wait, as before.
	 */
	if (!durable)
		StoreCommitWithoutFlush();
	if (!cy->claim)
		return;

	if (j->reconcile_needed && !cy->fresh_only)
	{
		int64	   *ids;
		int			n = held_deliveries(j, &ids);

		(void) StoreReconcileLeases(false, ids, n);
		j->reconcile_needed = false;

		/*
		 * It skips rows others hold locked: while some are (deferred
		 * results), again later.
		 */
		if (j->ndeferred > 0)
			j->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60000);
	}
	if (!cy->fresh_only)
		j->scan_needed = false;
	fan_out(cy);
	cy->inserted = cy->claims.count;
	if (cy->fresh_only)
		return;

	/*
	 * Due deliveries appear when a retry comes due, someone requeues (both
	 * wake the worker) or a fan-out had no room for some; endpoints left out
	 * for being full keep this on, so their deliveries are claimed once they
	 * have room.
	 */
	if (cy->claims.count < batch && j->due_needed)
	{
		int64	   *ids;
		int			n;
		int			claimed;

		n = SchedulerSaturatedTargets(j->svc->scheduler, &delivery_job_kind, GetCurrentTimestamp(),
									  &ids);
		if (j->skipped)
			pfree(j->skipped);
		j->skipped = ids;		/* kept before the claim, which may throw */
		/* In the scheduler's context: it outlives this transaction. */
		j->nskipped = n;
		claimed = StoreClaim(lease_ms(), batch, ids, n, &cy->claims);
		j->next_due_stale = true;
		j->claimed_at = GetCurrentTransactionStartTimestamp();
		/* A full batch: more may be due now. */
		j->due_needed = claimed >= batch;
	}
	claim_probes(cy);

	/*
	 * Continue a fan-out, or a claim that is still owed; else sleep until the
	 * next delivery comes due.  Only claims change which pending delivery
	 * that is (the retries that results schedule are folded in by
	 * run_cycle()).
	 */
	if (j->fanout.needed || j->due_needed)
		j->scan_needed = true;
	if (!j->scan_needed && j->next_due_stale)
	{
		/*
		 * Endpoints the claim left out count only once they have room
		 * (release_slot()).
		 */
		j->next_due = StoreNextDue(j->claimed_at, j->skipped, j->nskipped);
		j->next_due_stale = false;
	}
}

/*
 * The cycle's transaction.  Its claims of pending deliveries are counted as 'sending'
 * before it commits (sending_counts.c); the rows its fan-out inserted 'sending' were
 * counted by the trigger that counts every such insert.
 */
static void
cycle_step(void *arg)
{
	Cycle	   *cy = arg;

	cycle_work(cy);
	for (int i = cy->inserted; i < cy->claims.count; i++)
		SendingCountsClaimed(cy->claims.items[i].tenant_id);
	cy->xid = GetTopTransactionIdIfAny();
}

/*
 * After a store transaction wrote the results: drops them, except the first n, whose
 * rows someone else held locked; those stay, without their request slots, and are
 * tried again after LOCKED_RETRY_MS.  More than integration.max_concurrency of them
 * are not kept, which bounds the duplicates a crash can add.
 */
static void
keep_deferred_results(DeliveryJob *j, int n)
{
	MemoryContext cxt;
	DeliveryResult *kept;

	for (int i = 0; i < j->nresults; i++)
		release_slot(j, &j->results[i]);
	if (n > integration_max_concurrency)
	{
		/* As after failed writes (run_cycle()): their leases bring them back. */
		ereport(WARNING,
				(errmsg("integration worker: dropping %d delivery results whose rows stay locked",
						n - integration_max_concurrency)));
		n = integration_max_concurrency;
		j->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), lease_ms() + 1000);
	}

	if (n == 0)
	{
		MemoryContextReset(j->results_cxt);
		j->results = NULL;
		j->nresults = j->maxresults = j->ndeferred = 0;
		return;
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "integration results", ALLOCSET_DEFAULT_SIZES);
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		kept = palloc(sizeof(DeliveryResult) * Max(n, 64));
		for (int i = 0; i < n; i++)
		{
			DeliveryResult *r = &j->results[i];

			kept[i] = *r;
			kept[i].tenant_id = pstrdup(r->tenant_id);
			kept[i].error = r->error ? pstrdup(r->error) : NULL;
			kept[i].response = r->response ? pstrdup(r->response) : NULL;
		}
		MemoryContextSwitchTo(old);
		j->deferred_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LOCKED_RETRY_MS);
	}
	MemoryContextDelete(j->results_cxt);
	j->results_cxt = cxt;
	j->results = kept;
	j->nresults = j->ndeferred = n;
	j->maxresults = Max(n, 64);
}

/* Drops every result not written; their leases bring their deliveries back. */
static void
drop_results(DeliveryJob *j)
{
	for (int i = 0; i < j->nresults; i++)
		release_slot(j, &j->results[i]);
	MemoryContextReset(j->results_cxt);
	j->results = NULL;
	j->nresults = j->maxresults = j->ndeferred = 0;
	j->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), lease_ms() + 1000);
}

/* Queues the claims of a committed cycle in the scheduler, under their endpoints. */
static void
queue_claims(DeliveryJob *j, ClaimList *claims)
{
	ClaimBatch *batch;
	MemoryContext old;
	TimestampTz now = GetCurrentTimestamp();
	SchedTarget *t;

	batch = MemoryContextAllocZero(claims->mcxt, sizeof(ClaimBatch));
	batch->cxt = claims->mcxt;
	batch->refs = claims->count;
	old = MemoryContextSwitchTo(batch->cxt);
	for (int i = 0; i < claims->count; i++)
	{
		ClaimedDelivery *c = &claims->items[i];
		DeliveryItem *di = palloc0(sizeof(DeliveryItem));

		di->item.kind = &delivery_job_kind;
		di->claim = c;
		di->batch = batch;
		di->policy = RetryPolicyFor(c->retry_schedule, batch->cxt);
		t = SchedulerTarget(j->svc->scheduler, &delivery_job_kind, c->tenant_id, c->endpoint_id);
		SchedulerConfigureTarget(j->svc->scheduler, t, c->rate_limit, c->rate_limit_burst);
		SchedulerEnqueue(j->svc->scheduler, t, &di->item, now);
	}
	MemoryContextSwitchTo(old);
}

/*
 * One store transaction: writes back finished results and/or fans out and claims.
 * Returns false when it failed; results are then kept and retried after a pause.
 */
static bool
run_cycle(DeliveryJob *j, bool record, bool claim, bool fresh_only)
{
	/* Read before the cycle's snapshot, as in refresh_queued(). */
	uint64		generation = pg_atomic_read_u64(&integration_shared->endpoints_generation);
	bool		queue_was_empty = (SchedulerQueued(j->svc->scheduler) == 0);
	Cycle		cy;

	memset(&cy, 0, sizeof(cy));
	cy.job = j;
	cy.record = record;
	cy.claim = claim;
	cy.fresh_only = fresh_only;
	j->lock_timed_out = false;
	WorkerSlotSetActivity(claim ? WORKER_CLAIMING : WORKER_RECORDING);
	if (claim)
		cy.claims.mcxt = AllocSetContextCreate(TopMemoryContext, "integration claim batch",
											   ALLOCSET_DEFAULT_SIZES);
	if (!run_transaction(j, cycle_step, &cy, claim ? "claiming deliveries" : "recording delivery results"))
	{
		SendingCountsRolledBack();
		if (cy.claims.mcxt)
			MemoryContextDelete(cy.claims.mcxt);
		if (cy.disabled)
			pfree(cy.disabled);

		/*
		 * What the rolled-back cycle took is there to take again, after the
		 * pause.
		 */
		if (claim)
		{
			j->scan_needed = j->fanout.needed = j->due_needed = true;
			SchedulerProbesRecheck(j->svc->scheduler, &delivery_job_kind);
		}
		/* Its fan-out is undone too: the events it took are queued again. */
		j->fanout.after = PG_INT64_MIN;
		j->fanout.continued = 0;
		j->fanout.fresh_on = false;

		/*
		 * Results that cannot be written after several tries (their
		 * deliveries were deleted mid-flight, say) must not stall the worker:
		 * drop them.  Their deliveries, if any remain, are still 'sending'
		 * and go back to 'pending' when their lease expires, so at worst they
		 * are sent again.
		 */
		if (record && !j->lock_timed_out && ++j->record_failures >= RECORD_MAX_FAILURES)
		{
			ereport(WARNING,
					(errmsg("integration worker: dropping %d delivery results that could not be recorded",
							j->nresults)));
			drop_results(j);
			/* And the claims to give back: their leases bring them back too. */
			j->nreturned = 0;
			j->record_failures = 0;
		}
		return false;
	}
	SendingCountsCommitted(cy.xid);
	if (record)
	{
		/*
		 * The retries just scheduled: sleep no longer than until the first is
		 * due.
		 */
		for (int i = cy.deferred; i < j->nresults; i++)
			if (j->results[i].next_attempt_at != 0 &&
				(j->next_due == 0 || j->results[i].next_attempt_at < j->next_due))
				j->next_due = j->results[i].next_attempt_at;
		j->record_failures = 0;
		keep_deferred_results(j, cy.deferred);
	}
	if (j->nreturned > 0)
	{
		/*
		 * What was not given back (locked, moved) returns when its lease runs
		 * out.
		 */
		if (cy.returned < j->nreturned)
			j->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), lease_ms() + 1000);
		j->nreturned = 0;
	}
	if (cy.transitions_upto != 0)
		SchedulerTransitionsRecorded(j->svc->scheduler, &delivery_job_kind, cy.transitions_upto);
	if (cy.ndisabled > 0)
	{
		/*
		 * Disabled by the worker: their circuits are moot, and what waits for
		 * them (held while a circuit was open) is claimed and skipped now,
		 * not at the next probe, which may be ten minutes away.
		 */
		for (int i = 0; i < cy.ndisabled; i++)
			SchedulerCloseCircuit(j->svc->scheduler, cy.disabled[i],
								  "the worker disabled the endpoint", GetCurrentTimestamp());
		j->due_needed = j->scan_needed = true;
	}
	if (cy.disabled)
		pfree(cy.disabled);
	if (cy.put_back && j->fanout.retry_at == 0)
	{
		/*
		 * Each retry takes every event put back again: while the lock lasts,
		 * less often.
		 */
		j->fanout.retry_ms = j->fanout.retry_ms == 0 ? LOCKED_RETRY_MS :
			Min(j->fanout.retry_ms * 2, LOCKED_RETRY_MAX_MS);
		j->fanout.retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), j->fanout.retry_ms);
	}
	j->record_alone = false;
	if (!claim)
		return true;
	if (cy.claims.count == 0)
	{
		MemoryContextDelete(cy.claims.mcxt);
		return true;
	}
	if (queue_was_empty)
		j->endpoints_seen = generation;
	queue_claims(j, &cy.claims);
	return true;
}

/* ------------------------------------------------------------------------------------
 * Refreshing queued claims
 * ------------------------------------------------------------------------------------ */

typedef struct QueuedEndpoint
{
	EndpointId	key;
	int			index;			/* into the settings read */
} QueuedEndpoint;

/* The settings of one endpoint, copied once into one batch's context. */
typedef struct BatchCopyKey
{
	ClaimBatch *batch;
	int			index;
} BatchCopyKey;

typedef struct BatchCopy
{
	BatchCopyKey key;
	EndpointSettings settings;
} BatchCopy;

typedef struct QueuedItems
{
	DeliveryItem **items;
	int			n;
} QueuedItems;

static void
collect_queued_item(SchedItem *item, void *arg)
{
	QueuedItems *q = arg;

	if (item->kind == &delivery_job_kind)
		q->items[q->n++] = (DeliveryItem *) item;
}

static void
endpoint_key(EndpointId *key, ClaimedDelivery *c)
{
	memset(key, 0, sizeof(*key));
	key->id = c->endpoint_id;
	strlcpy(key->tenant_id, c->tenant_id, sizeof(key->tenant_id));
}

/* Re-reads the settings of the queued claims' endpoints, in one transaction. */
static void
refresh_step(void *arg)
{
	DeliveryJob *j = arg;
	HASHCTL		ctl;
	HTAB	   *endpoints;
	HTAB	   *copies;
	QueuedItems q;
	EndpointSettings *eps;
	int			n = 0;

	/*
	 * Dropped, or dropped and created again: these claims have no endpoints
	 * left.
	 */
	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}
	q.items = palloc(sizeof(DeliveryItem *) * Max(SchedulerQueued(j->svc->scheduler), 1));
	q.n = 0;
	SchedulerForEachQueued(j->svc->scheduler, collect_queued_item, &q);
	eps = palloc(sizeof(EndpointSettings) * Max(q.n, 1));

	ctl.keysize = sizeof(EndpointId);
	ctl.entrysize = sizeof(QueuedEndpoint);
	ctl.hcxt = CurrentMemoryContext;
	endpoints = hash_create("integration queued endpoints", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(BatchCopyKey);
	ctl.entrysize = sizeof(BatchCopy);
	copies = hash_create("integration refreshed settings", 64, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < q.n; i++)
	{
		ClaimedDelivery *c = q.items[i]->claim;
		EndpointId	key;
		bool		found;
		QueuedEndpoint *ep;

		endpoint_key(&key, c);
		ep = hash_search(endpoints, &key, HASH_ENTER, &found);
		if (found)
			continue;
		ep->index = n;
		eps[n].tenant_id = c->tenant_id;
		eps[n].id = c->endpoint_id;
		n++;
	}
	StoreReadEndpoints(eps, n, CurrentMemoryContext);

	for (int i = 0; i < q.n; i++)
	{
		DeliveryItem *di = q.items[i];
		ClaimedDelivery *c = di->claim;
		EndpointId	key;
		BatchCopyKey copy_key;
		BatchCopy  *copy;
		bool		found;

		endpoint_key(&key, c);
		memset(&copy_key, 0, sizeof(copy_key));
		copy_key.batch = di->batch;
		copy_key.index = ((QueuedEndpoint *) hash_search(endpoints, &key, HASH_FIND, NULL))->index;
		copy = hash_search(copies, &copy_key, HASH_ENTER, &found);
		if (!found)
		{
			/*
			 * Into the batch, as the claim's own strings; nothing in flight
			 * points at the old ones.
			 */
			EndpointSettingsCopy(&copy->settings, &eps[copy_key.index], di->batch->cxt);
		}
		/* Hard-deleted (no url): unusable; its event gone: unusable too. */
		StoreClaimTakeSettings(c, &copy->settings);
		di->policy = RetryPolicyFor(c->retry_schedule, di->batch->cxt);
		SchedulerConfigureTarget(j->svc->scheduler, di->item.target, c->rate_limit,
								 c->rate_limit_burst);
	}
}

/*
 * WorkerKindOps.prepare: brings queued claims up to the endpoints' latest settings.
 * Returns false while that fails (a table lock, say): the claims must not go out as
 * they are, and wait until the refresh works.
 */
static bool
delivery_prepare(void *state, TimestampTz now)
{
	DeliveryJob *j = state;
	uint64		generation = pg_atomic_read_u64(&integration_shared->endpoints_generation);
	bool		fresh = true;

	if (SchedulerQueued(j->svc->scheduler) > 0 && generation != j->endpoints_seen)
	{
		fresh = false;
		if (now >= j->pause_until)
		{
			/*
			 * generation was read before the snapshot: a later change is seen
			 * next time.
			 */
			WorkerSlotSetActivity(WORKER_REFRESHING);
			fresh = run_transaction(j, refresh_step, j, "reading changed endpoints");
			if (fresh)
				j->endpoints_seen = generation;
			else
				j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		}
	}
	if (j->extension_gone)
		WorkerExitExtensionGone(j->svc);
	return fresh;
}

/* ------------------------------------------------------------------------------------
 * The kind's part in the loop
 * ------------------------------------------------------------------------------------ */

/*
 * Whether to run the backlog lane and claim now: something may be waiting and the
 * scheduler wants work.  After a failure the results are retried alone first: a claim
 * may be what fails.
 */
static bool
claim_wanted(DeliveryJob *j)
{
	TimestampTz now = GetCurrentTimestamp();

	if (j->record_failures != 0 || (j->record_alone && j->nresults > j->ndeferred))
		return false;
	if (SchedulerProbesWanted(j->svc->scheduler, &delivery_job_kind, now, NULL) > 0)
		return true;
	if (!j->scan_needed || !SchedulerWantsWork(j->svc->scheduler, now))
		return false;
	/* Only the backlog lane, which waits for room: not yet. */
	return j->due_needed || j->reconcile_needed || !j->fanout.needed ||
		paced_until(j, now) == 0;
}

/* Whether the next cycle has claims to give back or circuit transitions to store. */
static bool
circuit_work(DeliveryJob *j)
{
	return j->nreturned > 0 || SchedulerTransitionsPending(j->svc->scheduler, &delivery_job_kind);
}

/* Whether the fresh lane has events to take, whatever the scheduler holds. */
static bool
fresh_wanted(DeliveryJob *j)
{
	return j->fanout.fresh_on && j->fanout.fresh_needed && j->record_failures == 0 &&
		!(j->record_alone && j->nresults > j->ndeferred);
}

static void
delivery_woken(void *state, uint32 requests)
{
	DeliveryJob *j = state;
	bool		due = (requests & WORKER_WAKE_DUE) != 0;

	/* A wake-up for another kind's work only; none says what: everything. */
	if (requests != 0 && (requests & (WORKER_WAKE_PUBLISHED | WORKER_WAKE_DUE)) == 0)
		return;
	j->scan_needed = true;
	j->fanout.needed = true;
	j->fanout.fresh_needed = true;

	/*
	 * Publishing needs only the fan-out; a requeue or dispatch also asks for
	 * this.
	 */
	if (due)
	{
		j->due_needed = true;

		/*
		 * A requeue may have given a half-open circuit something to probe
		 * with.
		 */
		SchedulerProbesRecheck(j->svc->scheduler, &delivery_job_kind);
	}
}

static void
delivery_reload(void *state)
{
	DeliveryJob *j = state;

	j->scan_needed = true;
	j->due_needed = true;
}

/* Timers that came due: retries, the idle recheck, put-back events, dropped results. */
static void
fire_timers(DeliveryJob *j, TimestampTz now)
{
	if (j->next_due != 0 && now >= j->next_due)
	{
		j->next_due = 0;
		j->scan_needed = true;
		j->due_needed = true;
	}
	if (now >= j->next_recheck)
	{
		j->scan_needed = true;
		j->fanout.needed = true;
		j->fanout.fresh_needed = true;
		j->due_needed = true;
		j->purge_needed = true;
		j->next_recheck = TimestampTzPlusMilliseconds(now, integration_idle_recheck_ms);
		SchedulerProbesRecheck(j->svc->scheduler, &delivery_job_kind);
	}
	if (j->fanout.retry_at != 0 && now >= j->fanout.retry_at)
	{
		/* Events queued again while an endpoint was locked: from the start. */
		j->fanout.retry_at = 0;
		j->scan_needed = true;
		j->fanout.needed = true;
		j->fanout.after = PG_INT64_MIN;
		j->fanout.continued = 0;
	}
	if (j->reconcile_at != 0 && now >= j->reconcile_at)
	{
		/* Results were dropped: their leases have run out by now. */
		j->reconcile_needed = true;
		j->scan_needed = true;
		j->due_needed = true;
		j->reconcile_at = 0;
	}
}

/*
 * Counts the rows left 'sending' by transactions that were writing deliveries when the
 * worker started, once they have all ended (sending_counts.c).
 */
static void
adopt_step(void *arg)
{
	DeliveryJob *j = arg;

	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}
	SendingCountsAdopt();
	j->startup_xid = GetTopTransactionId();
}

/*
 * WorkerKindOps.step: at most one store transaction.  Results are written when a batch
 * is full, nothing else is in flight, or the oldest has waited RESULT_FLUSH_MS; claims
 * are made when the scheduler wants work, and the fresh lane runs when a commit woke
 * the worker during a backlog: first, in a transaction of its own, then the backlog's
 * turn.
 */
static bool
delivery_step(void *state, TimestampTz now)
{
	DeliveryJob *j = state;
	int			fresh = j->nresults - j->ndeferred;
	int			in_flight = SchedulerInFlight(j->svc->scheduler);
	bool		record;
	bool		claim;
	bool		fresh_lane;

	fire_timers(j, now);
	SendingCountsRelease(now);
	SendingCountsKeepSince(now);
	if (now < j->pause_until)
		return false;
	if (j->adopt_needed && !SendingCountsWritersOpen(now))
	{
		/* The writers open at the start have ended: their rows are counted. */
		if (!run_transaction(j, adopt_step, j, "counting sending deliveries"))
		{
			j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
			return true;
		}
		if (j->extension_gone)
			WorkerExitExtensionGone(j->svc);
		SendingCountsUsableFrom(j->startup_xid);
		j->adopt_needed = false;
	}
	record = (fresh > 0 &&
			  (dlist_is_empty(&j->in_flight) || fresh >= RESULT_BATCH ||
			   in_flight >= integration_max_concurrency ||
			   now >= TimestampTzPlusMilliseconds(j->first_result_at, RESULT_FLUSH_MS))) ||
		(j->ndeferred > 0 && now >= j->deferred_retry_at) || circuit_work(j);
	claim = claim_wanted(j);

	/*
	 * The fresh lane goes first, in a cycle of its own: a fresh event then
	 * waits for the cycle under way and a short one, not for a backlog batch
	 * as well (beside 200,000 events fanned out to a saturated endpoint,
	 * bench/run protection measured a healthy endpoint's events at p50 8.7
	 * and 9.9 ms, against 10.2 and 10.3 ms when they shared the backlog's
	 * cycles; a busy machine).  While both want to run they take turns, so a
	 * stream of commits cannot hold the backlog lane back.
	 */
	fresh_lane = fresh_wanted(j) && !(claim && j->fanout.fresh_went_first);
	if (fresh_lane)
		claim = false;
	if (!record && !claim && !fresh_lane)
		return false;
	j->fanout.fresh_went_first = fresh_lane;
	/* A claim also writes what has finished: one commit instead of two. */
	if (!run_cycle(j, record || j->nresults > 0, claim || fresh_lane, fresh_lane))
		j->pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
	else if (j->extension_gone)
		WorkerExitExtensionGone(j->svc);
	return true;
}

/* WorkerKindOps.next_wake: the time this kind needs the loop again; now: at once. */
static TimestampTz
delivery_next_wake(void *state, TimestampTz now)
{
	DeliveryJob *j = state;
	TimestampTz wake;

	if (j->pause_until > now)
		return j->pause_until;
	wake = j->next_recheck;
	if (j->nresults > j->ndeferred)
		wake = EarliestTime(wake, TimestampTzPlusMilliseconds(j->first_result_at, RESULT_FLUSH_MS));
	if (j->ndeferred > 0)
		wake = EarliestTime(wake, j->deferred_retry_at);
	wake = EarliestTime(wake, j->fanout.retry_at);
	wake = EarliestTime(wake, j->next_due);
	wake = EarliestTime(wake, j->reconcile_at);
	wake = EarliestTime(wake, SendingCountsNextRelease());

	/*
	 * The backlog lane's wait for room; an end of a request wakes the loop
	 * too.
	 */
	if (j->fanout.needed)
		wake = EarliestTime(wake, paced_until(j, now));
	/* Asked again: the cycle just run may have been a retry of results alone. */
	if (claim_wanted(j) || fresh_wanted(j) || circuit_work(j))
		wake = now;
	return wake;
}

static void *delivery_create(WorkerServices *svc);
static bool delivery_startup(void *state);

const WorkerKindOps delivery_job_ops = {
	.kind = &delivery_job_kind,
	.wakes = WORKER_WAKE_PUBLISHED | WORKER_WAKE_DUE,
	.sends = true,
	.create = delivery_create,
	.startup = delivery_startup,
	.woken = delivery_woken,
	.reload = delivery_reload,
	.prepare = delivery_prepare,
	.step = delivery_step,
	.finished = delivery_finished,
	.next_wake = delivery_next_wake,
};

static void *
delivery_create(WorkerServices *svc)
{
	DeliveryJob *j = MemoryContextAllocZero(TopMemoryContext, sizeof(DeliveryJob));

	j->svc = svc;
	dlist_init(&j->in_flight);
	j->results_cxt = AllocSetContextCreate(TopMemoryContext, "integration results",
										   ALLOCSET_DEFAULT_SIZES);
	j->scan_needed = true;
	j->due_needed = true;
	j->fanout.needed = true;
	j->fanout.after = PG_INT64_MIN;
	j->fanout.fresh_after = PG_INT64_MIN;
	return j;
}

/* CircuitRestoreFn: a stored circuit goes back into the scheduler. */
static void
restore_circuit(const char *tenant_id, int64 id, const CircuitBreaker *cb, void *arg)
{
	DeliveryJob *j = arg;

	SchedulerRestoreCircuit(j->svc->scheduler, &delivery_job_kind, tenant_id, id, cb);
}

static void
startup_step(void *arg)
{
	DeliveryJob *j = arg;
	int			n;

	if (!StoreExtensionPresent())
	{
		j->extension_gone = true;
		return;
	}

	/*
	 * Who is writing deliveries now, the slot taken, before their rows are
	 * looked at (sending_counts.c).
	 */
	SendingCountsStartup();

	/*
	 * A database has one worker: every claim left 'sending' belongs to a dead
	 * one.
	 */
	(void) StoreReconcileLeases(true, NULL, 0);
	/* An id even when there was nothing to return (sending_counts.c). */
	j->startup_xid = GetTopTransactionId();

	/* Before any claim: an endpoint whose circuit was open gets none. */
	n = CircuitStoreLoad(delivery_job_kind.target, restore_circuit, j);
	if (n > 0)
		ereport(LOG,
				(errmsg("integration worker: %d endpoint circuits not closed at the last stop restored", n)));
}

/*
 * The first transaction: returns claims of a dead worker to 'pending'.  Exits when the
 * extension is not installed; false when the transaction failed.
 */
static bool
delivery_startup(void *state)
{
	DeliveryJob *j = state;

	if (!run_transaction(j, startup_step, j, "starting"))
		return false;
	if (j->extension_gone)
	{
		ereport(LOG,
				(errmsg("integration worker: extension not installed in database \"%s\", exiting",
						j->svc->dbname)));
		proc_exit(0);
	}

	/*
	 * A transaction that was writing deliveries may yet commit rows 'sending'
	 * that no count holds: the counts wait until it has ended, and then
	 * delivery_step() counts those rows too.
	 */
	if (SendingCountsWritersOpen(GetCurrentTimestamp()))
		j->adopt_needed = true;
	else
		SendingCountsUsableFrom(j->startup_xid);
	return true;
}
