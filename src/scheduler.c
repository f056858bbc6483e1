/*
 * scheduler.c
 *		Which queued piece of work gets the next request slot: fair across tenants,
 *		within each target's rate limit and circuit, and never behind a target that
 *		has no room.
 *
 * State.  Every target (one destination of one kind of work, of one tenant) has its
 * own FIFO queue and its own counts; every tenant has a ring of its targets that have
 * queued work, and the scheduler a ring of such tenants.  All per-target state (in
 * flight, back-off, rate limiter, circuit breaker) lives in SchedTarget and is judged
 * by one function, judge() (SchedulerMaySend(), and SchedulerMayHandOver() for a request
 * that would take over its predecessor's slot): "may I send to this target now, and if
 * not, why, and until when".  Every request on its way holds a slot until its kind
 * gives it back (SchedulerFinished(), or its two halves SchedulerEnded() and
 * SchedulerRecorded() for a kind that keeps the worker's slot until the outcome is
 * stored), whoever started it: what is not counted cannot be limited.
 *
 * Order.  SchedulerNext() walks the tenants round-robin and, within a tenant, its
 * targets round-robin, and hands out the first item of the first target that may send.
 * So work for a target with room never waits behind work for a target without any: a
 * slow endpoint's backlog stays in its own queue.  It walks twice: first only tenants
 * below their fair share of the slots (max_concurrency divided by the tenants that have
 * work queued or in flight), then any tenant.  A tenant alone gets every slot its cap
 * allows; a tenant that holds more than its share gets no new slot while another tenant
 * below its share has work that can start.  So a fresh piece of work of one tenant
 * waits at most for one request of another to give its slot back, however much that
 * other tenant has queued.
 *
 * Caps.  No target holds more than per_target requests in flight; no tenant more than
 * per_tenant, which is below max_concurrency by default so that a tenant whose
 * endpoints hang (and keep their slots until the request timeout) always leaves slots
 * for the others.  Those slots alone would not do: a second such tenant took them all
 * (48 and 16 of 64 slots hanging), and a third tenant's fresh event waited 18.8 s, for
 * the request timeout of 20 s (test/t/039_fair_reserve.pl).  So the last few free
 * slots (reserve: a sixteenth of max_concurrency, at most what per_tenant leaves) go
 * only to tenants that hold none: each of that many more tenants can still start a
 * request at once, however many tenants' requests hang.  Claims held ahead in memory
 * are bounded per target (hold_rounds rounds of per_target, SchedulerRoom()) and
 * overall (QUEUE_LIMIT_ROUNDS rounds of max_concurrency): what does not fit stays in
 * the database, pending.
 *
 * Rate limits and circuits (rate_limiter.c, circuit_breaker.c).  A target without a
 * token, held back by a Retry-After, or whose circuit is open, is "later": its work
 * waits in its queue, holds no request slot and uses no attempt, and
 * SchedulerNextWake() tells the worker when the earliest of them may send.  Such a
 * target also holds fewer claims: what its bucket lets go in RATE_HOLD_AHEAD_S, one
 * probe for a half-open circuit, none for an open one (SchedulerRoom()); the kind
 * claims nothing else for it while its circuit is not closed
 * (SchedulerSaturatedTargets()), and looks for a probe when SchedulerProbesWanted()
 * says so.  The kind reports each outcome (SchedulerReport()); the changes of a
 * circuit are kept as transitions for the kind to store and log.
 *
 * Targets are kept while they hold work or state (a circuit not closed, a slow-down, a
 * back-off, outcomes counted in the circuit window, a bucket not full), and forgotten
 * after: at once when their last request ends, or by a sweep every SWEEP_INTERVAL_MS.
 * What changed is copied to shared memory once per turn of the loop (SchedulerPublish(),
 * target_health.c).
 *
 * The scheduler does no SQL; it is driven by the worker's loop and by the kinds of
 * work, all in one process, so it needs no locks but the one of the shared copy.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "integration.h"
#include "rate_limiter.h"
#include "scheduler.h"
#include "target_health.h"

/* Claims held in memory in all, in units of max_concurrency. */
#define QUEUE_LIMIT_ROUNDS 16
/* Claims held for a rate-limited target: its bucket plus this many seconds of rate. */
#define RATE_HOLD_AHEAD_S 2
/* How often targets kept only for their state are looked at again. */
#define SWEEP_INTERVAL_MS 10000
/* Transitions kept while they cannot be recorded; past that the oldest go. */
#define MAX_TRANSITIONS 10000

/* SchedTarget.health_slot: none yet; and none to be had (every slot taken). */
#define NO_HEALTH_SLOT (-1)
#define HEALTH_SLOTS_FULL (-2)

typedef struct SchedTenant
{
	char		tenant_id[TENANT_ID_MAX_LEN + 1];	/* hash key */
	int			in_flight;
	int			queued;
	dlist_head	targets;		/* its targets with queued work, round-robin */
	dlist_node	ring;			/* in Scheduler.tenants while queued > 0 */
	bool		in_ring;
} SchedTenant;

struct SchedTarget
{
	SchedTargetKey key;			/* hash key */
	SchedTenant *tenant;		/* while it holds work (queued or in flight);
								 * else NULL */
	int			in_flight;
	int			queued;
	TimestampTz not_before;		/* back-off (Retry-After); 0: none */
	dlist_head	queue;			/* SchedItems, oldest first */
	dlist_node	ring;			/* in tenant->targets while queued > 0 */
	bool		in_ring;
	RateLimiter limiter;
	CircuitBreaker breaker;

	/*
	 * Half open with nothing queued: when its kind should look for a probe;
	 * 0: now, DT_NOEND: not until SchedulerProbesRecheck().
	 */
	TimestampTz probe_claim_at;
	dlist_node	circuit_node;	/* in Scheduler.circuits while not closed */
	bool		in_circuits;
	dlist_node	idle_node;		/* in Scheduler.idle: no work, kept for its
								 * state */
	bool		in_idle;
	dlist_node	dirty_node;		/* in Scheduler.dirty: to publish */
	bool		dirty;
	int			health_slot;	/* in shared memory (target_health.c) */
	TimestampTz last_ended;		/* its last request's end; 0: none yet */
	int64		ending_gap_us;	/* between two ends, a moving average */
};

struct Scheduler
{
	MemoryContext mcxt;
	SchedLimits limits;
	HTAB	   *targets;
	HTAB	   *tenants;
	dlist_head	tenants_ring;	/* tenants with queued work, round-robin */
	int			in_flight;
	int			queued;
	int			active_tenants; /* with work queued or in flight */
	int			reserve;		/* the last free slots, for tenants that hold
								 * none */

	dlist_head	circuits;		/* targets whose circuit is not closed */
	dlist_head	idle;			/* targets without work, kept for their state */
	dlist_head	dirty;			/* targets changed since the last publish */
	int		   *released;		/* health slots to free at the next publish */
	int			nreleased;
	int			maxreleased;
	TimestampTz next_sweep;

	SchedTransition *transitions;	/* not recorded yet, oldest first */
	int			ntransitions;
	int			maxtransitions;
	uint64		next_seq;
	bool		transitions_dropped;
};

Scheduler *
SchedulerCreate(MemoryContext mcxt, const SchedLimits *limits)
{
	Scheduler  *s = MemoryContextAllocZero(mcxt, sizeof(Scheduler));
	HASHCTL		ctl;

	s->mcxt = mcxt;
	dlist_init(&s->tenants_ring);
	dlist_init(&s->circuits);
	dlist_init(&s->idle);
	dlist_init(&s->dirty);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(SchedTargetKey);
	ctl.entrysize = sizeof(SchedTarget);
	ctl.hcxt = mcxt;
	s->targets = hash_create("integration scheduler targets", 256, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = TENANT_ID_MAX_LEN + 1;
	ctl.entrysize = sizeof(SchedTenant);
	s->tenants = hash_create("integration scheduler tenants", 64, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	SchedulerConfigure(s, limits);
	return s;
}

void
SchedulerConfigure(Scheduler *s, const SchedLimits *limits)
{
	s->limits = *limits;
	s->limits.max_concurrency = Max(s->limits.max_concurrency, 1);
	s->limits.per_target = Max(s->limits.per_target, 1);
	s->limits.per_tenant = Min(Max(s->limits.per_tenant, 1), s->limits.max_concurrency);
	s->limits.hold_rounds = Max(s->limits.hold_rounds, 1);
	/* None when a tenant may hold every slot (one tenant's deployment, say). */
	s->reserve = Min(Max(s->limits.max_concurrency / 16, 1),
					 s->limits.max_concurrency - s->limits.per_tenant);
}

static SchedTenant *
tenant_entry(Scheduler *s, const char *tenant_id)
{
	char		key[TENANT_ID_MAX_LEN + 1];
	SchedTenant *tenant;
	bool		found;

	memset(key, 0, sizeof(key));
	strlcpy(key, tenant_id, sizeof(key));
	tenant = hash_search(s->tenants, key, HASH_ENTER, &found);
	if (!found)
	{
		tenant->in_flight = tenant->queued = 0;
		dlist_init(&tenant->targets);
		tenant->in_ring = false;
	}
	return tenant;
}

static void
mark_dirty(Scheduler *s, SchedTarget *t)
{
	if (!t->dirty)
	{
		dlist_push_tail(&s->dirty, &t->dirty_node);
		t->dirty = true;
	}
}

/* The target of kind, tenant and id; NULL when unknown and not create. */
static SchedTarget *
target_lookup(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id, bool create)
{
	SchedTargetKey key;
	SchedTarget *t;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.kind = kind;
	key.id = id;
	strlcpy(key.tenant_id, tenant_id, sizeof(key.tenant_id));
	t = hash_search(s->targets, &key, create ? HASH_ENTER : HASH_FIND, &found);
	if (t != NULL && !found)
	{
		t->tenant = NULL;
		t->in_flight = t->queued = 0;
		t->not_before = 0;
		dlist_init(&t->queue);
		t->in_ring = false;
		RateLimiterInit(&t->limiter);
		CircuitInit(&t->breaker);
		t->probe_claim_at = 0;
		t->in_circuits = t->in_idle = t->dirty = false;
		t->health_slot = NO_HEALTH_SLOT;
		t->last_ended = 0;
		t->ending_gap_us = 0;
		mark_dirty(s, t);
	}
	return t;
}

/* The target of kind, tenant and id, made when first asked for, ready to take work. */
SchedTarget *
SchedulerTarget(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id)
{
	SchedTarget *t = target_lookup(s, kind, tenant_id, id, true);

	if (t->tenant == NULL)
		t->tenant = tenant_entry(s, tenant_id);
	return t;
}

const SchedTargetKey *
SchedulerTargetKeyOf(SchedTarget *t)
{
	return &t->key;
}

/* Sets t's configured rate limit (rate 0: none; burst 0: the rate). */
void
SchedulerConfigureTarget(Scheduler *s, SchedTarget *t, int rate, int burst)
{
	if (rate != t->limiter.rate || (rate > 0 && Max(burst > 0 ? burst : rate, 1) != t->limiter.burst))
	{
		RateLimiterConfigure(&t->limiter, rate, burst);
		mark_dirty(s, t);
	}
}

/* Whether t holds state that a new target would not have, so must be kept. */
static bool
target_has_state(SchedTarget *t, TimestampTz now)
{
	CircuitSettings cs;

	CircuitCurrentSettings(&cs);
	return t->not_before > now || !CircuitIsIdle(&t->breaker, now, &cs) ||
		!RateLimiterIsIdle(&t->limiter, now);
}

static void
forget_target(Scheduler *s, SchedTarget *t)
{
	if (t->in_idle)
		dlist_delete(&t->idle_node);
	if (t->in_circuits)
		dlist_delete(&t->circuit_node);
	if (t->dirty)
		dlist_delete(&t->dirty_node);
	if (t->health_slot >= 0)
	{
		if (s->nreleased == s->maxreleased)
		{
			s->maxreleased = Max(64, s->maxreleased * 2);
			s->released = s->released ? repalloc(s->released, sizeof(int) * s->maxreleased)
				: MemoryContextAlloc(s->mcxt, sizeof(int) * s->maxreleased);
		}
		s->released[s->nreleased++] = t->health_slot;
	}
	hash_search(s->targets, &t->key, HASH_REMOVE, NULL);
}

/*
 * t holds no work any more (nothing queued or in flight): its tenant goes once it holds
 * none either, and t too unless it keeps state.  t may be freed.
 */
static void
target_went_idle(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	SchedTenant *tenant = t->tenant;

	if (t->in_flight > 0 || t->queued > 0)
		return;
	if (tenant != NULL && tenant->in_flight == 0 && tenant->queued == 0)
	{
		s->active_tenants--;
		hash_search(s->tenants, tenant->tenant_id, HASH_REMOVE, NULL);
	}
	t->tenant = NULL;
	if (!target_has_state(t, now))
		forget_target(s, t);
	else if (!t->in_idle)
	{
		dlist_push_tail(&s->idle, &t->idle_node);
		t->in_idle = true;
	}
}

void
SchedulerEnqueue(Scheduler *s, SchedTarget *t, SchedItem *item, TimestampTz now)
{
	SchedTenant *tenant = t->tenant;

	Assert(tenant != NULL);
	if (t->in_idle)
	{
		dlist_delete(&t->idle_node);
		t->in_idle = false;
	}
	if (tenant->in_flight == 0 && tenant->queued == 0)
		s->active_tenants++;
	item->target = t;
	item->queued_at = now;
	item->started_at = 0;
	item->probe = false;
	dlist_push_tail(&t->queue, &item->node);
	t->queued++;
	tenant->queued++;
	s->queued++;
	if (!t->in_ring)
	{
		dlist_push_tail(&tenant->targets, &t->ring);
		t->in_ring = true;
	}
	if (!tenant->in_ring)
	{
		dlist_push_tail(&s->tenants_ring, &tenant->ring);
		tenant->in_ring = true;
	}
	mark_dirty(s, t);
}

/* The most slots a tenant may hold now, however many others have work. */
static int
tenant_fair_share(Scheduler *s)
{
	int			active = Max(s->active_tenants, 1);

	return (s->limits.max_concurrency + active - 1) / active;
}

/*
 * Remembers a change of t's circuit (from the state it had) for its kind to record;
 * reason says why it closed without a probe.
 */
static void
circuit_changed(Scheduler *s, SchedTarget *t, CircuitState from, const char *reason,
				TimestampTz now)
{
	SchedTransition *tr;
	CircuitSettings cs;

	if (t->breaker.state != CIRCUIT_CLOSED && !t->in_circuits)
	{
		dlist_push_tail(&s->circuits, &t->circuit_node);
		t->in_circuits = true;
	}
	else if (t->breaker.state == CIRCUIT_CLOSED && t->in_circuits)
	{
		dlist_delete(&t->circuit_node);
		t->in_circuits = false;
	}
	if (t->breaker.state == CIRCUIT_HALF_OPEN)
		t->probe_claim_at = 0;
	mark_dirty(s, t);

	if (s->ntransitions == MAX_TRANSITIONS)
	{
		if (!s->transitions_dropped)
			ereport(LOG,
					(errmsg("integration worker: more than %d circuit transitions could not be recorded; the oldest are dropped",
							MAX_TRANSITIONS)));
		s->transitions_dropped = true;
		memmove(s->transitions, s->transitions + 1, sizeof(SchedTransition) * (s->ntransitions - 1));
		s->ntransitions--;
	}
	if (s->ntransitions == s->maxtransitions)
	{
		s->maxtransitions = Max(16, s->maxtransitions * 2);
		s->transitions = s->transitions ?
			repalloc(s->transitions, sizeof(SchedTransition) * s->maxtransitions) :
			MemoryContextAlloc(s->mcxt, sizeof(SchedTransition) * s->maxtransitions);
	}
	tr = &s->transitions[s->ntransitions++];
	memset(tr, 0, sizeof(*tr));
	tr->seq = ++s->next_seq;
	tr->kind = t->key.kind;
	strlcpy(tr->tenant_id, t->key.tenant_id, sizeof(tr->tenant_id));
	tr->id = t->key.id;
	tr->from = from;
	tr->to = t->breaker.state;
	tr->at = now;
	tr->opened_at = t->breaker.opened_at;
	tr->next_probe_at = t->breaker.state == CIRCUIT_OPEN ? t->breaker.next_probe_at : 0;
	tr->cooldown_ms = t->breaker.cooldown_ms;
	CircuitCurrentSettings(&cs);
	CircuitWindowCounts(&t->breaker.window, now, cs.window_ms, &tr->requests, &tr->failures);
	tr->last_success_at = t->breaker.last_success_at;
	tr->last_failure_at = t->breaker.last_failure_at;
	tr->reason = reason;
}

static void
half_open_if_due(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	if (CircuitProbeDue(&t->breaker, now))
		circuit_changed(s, t, CIRCUIT_OPEN, NULL, now);
}

/*
 * May a request to t start now, once the asker has given back the slots it holds on t
 * (held: 0, or 1 for a request that would follow its own on t, SchedulerMayHandOver())?
 * Every limit as it is now: a lowered one (a reload, a connector's new rate) counts at
 * once, whoever asks.
 */
static SchedVerdict
judge(Scheduler *s, SchedTarget *t, TimestampTz now, TimestampTz *when, int held)
{
	TimestampTz token_at = 0;

	half_open_if_due(s, t, now);
	if (t->breaker.state == CIRCUIT_OPEN)
	{
		if (when)
			*when = t->breaker.next_probe_at;
		return SCHED_LATER;
	}
	if (t->breaker.state == CIRCUIT_HALF_OPEN && t->breaker.probe_in_flight)
		return SCHED_PROBING;
	if (t->not_before != 0 && now < t->not_before)
	{
		if (when)
			*when = t->not_before;
		return SCHED_LATER;
	}
	if (!RateLimiterMaySend(&t->limiter, now, &token_at))
	{
		if (when)
			*when = token_at;
		return SCHED_LATER;
	}
	if (t->in_flight - held >= s->limits.per_target)
		return SCHED_TARGET_FULL;
	if (s->in_flight - held >= s->limits.max_concurrency)
		return SCHED_NO_SLOT;
	if (t->tenant->in_flight - held >= s->limits.per_tenant)
		return SCHED_TENANT_FULL;
	/* The last free slots are for tenants that hold none (see the top). */
	if (t->tenant->in_flight - held > 0 &&
		s->limits.max_concurrency - (s->in_flight - held) <= s->reserve)
		return SCHED_TENANT_FULL;
	return SCHED_SEND;
}

/*
 * May a request to t start now?  SCHED_LATER sets *when to the time it may; the other
 * refusals end when one of the requests that hold the slots (or the probe) finishes.
 */
SchedVerdict
SchedulerMaySend(Scheduler *s, SchedTarget *t, TimestampTz now, TimestampTz *when)
{
	return judge(s, t, now, when, 0);
}

/* Holds t's requests back until the given time. */
void
SchedulerBackOff(Scheduler *s, SchedTarget *t, TimestampTz until)
{
	t->not_before = until;
	mark_dirty(s, t);
}

static void
take_item(Scheduler *s, SchedTarget *t, SchedItem *item)
{
	SchedTenant *tenant = t->tenant;

	dlist_delete(&item->node);
	t->queued--;
	tenant->queued--;
	s->queued--;
	if (t->queued == 0)
	{
		dlist_delete(&t->ring);
		t->in_ring = false;
	}
	if (tenant->queued == 0)
	{
		dlist_delete(&tenant->ring);
		tenant->in_ring = false;
	}
}

/*
 * The next piece of work to start, taken off its queue and counted in flight; NULL
 * when nothing may start now.  The tenant and target it came from go to the back of
 * their rings.  It takes a token, and is the probe if its circuit is half open.
 */
SchedItem *
SchedulerNext(Scheduler *s, TimestampTz now)
{
	int			share = tenant_fair_share(s);

	if (s->in_flight >= s->limits.max_concurrency)
		return NULL;
	for (int pass = 0; pass < 2; pass++)
	{
		dlist_mutable_iter ti;

		dlist_foreach_modify(ti, &s->tenants_ring)
		{
			SchedTenant *tenant = dlist_container(SchedTenant, ring, ti.cur);
			dlist_mutable_iter gi;

			if (pass == 0 && tenant->in_flight >= share)
				continue;
			if (tenant->in_flight >= s->limits.per_tenant)
				continue;
			dlist_foreach_modify(gi, &tenant->targets)
			{
				SchedTarget *t = dlist_container(SchedTarget, ring, gi.cur);
				SchedItem  *item;

				if (SchedulerMaySend(s, t, now, NULL) != SCHED_SEND)
					continue;
				item = dlist_container(SchedItem, node, dlist_head_node(&t->queue));
				/* Round-robin: the next call starts with the others. */
				dlist_move_tail(&tenant->targets, &t->ring);
				dlist_move_tail(&s->tenants_ring, &tenant->ring);
				take_item(s, t, item);
				t->in_flight++;
				tenant->in_flight++;
				s->in_flight++;
				item->started_at = now;
				item->probe = (t->breaker.state == CIRCUIT_HALF_OPEN);
				if (item->probe)
					t->breaker.probe_in_flight = true;
				RateLimiterTake(&t->limiter, now);
				mark_dirty(s, t);
				return item;
			}
		}
	}
	return NULL;
}

/*
 * What the target made of a request SchedulerNext() handed out (before its slot is
 * given back): its outcome, and a Retry-After in ms (-1: none), which holds the whole
 * target back.  A 429 slows the target down; counted outcomes feed its circuit.
 * Returns what the kind must do about a circuit that opened or closed.
 */
SchedReportAction
SchedulerReport(Scheduler *s, SchedItem *item, TargetOutcome outcome, int64 retry_after_ms,
				TimestampTz now)
{
	SchedTarget *t = item->target;
	CircuitState from = t->breaker.state;
	CircuitSettings cs;

	if (retry_after_ms > 0)
		t->not_before = Max(t->not_before, now + retry_after_ms * 1000);
	if (outcome == TARGET_THROTTLED)
		RateLimiterThrottle(&t->limiter, item->started_at, now, retry_after_ms);
	mark_dirty(s, t);
	CircuitCurrentSettings(&cs);
	if (!CircuitRecord(&t->breaker, outcome, item->probe, now, &cs))
		return SCHED_REPORT_NONE;
	circuit_changed(s, t, from, NULL, now);
	if (t->breaker.state == CIRCUIT_OPEN)
		return SCHED_REPORT_OPENED;
	return t->breaker.state == CIRCUIT_CLOSED ? SCHED_REPORT_CLOSED : SCHED_REPORT_NONE;
}

/*
 * A request SchedulerNext() handed out has given its slot back (it ended, or never
 * started).  Returns whether its target is below its claim limit now, counting what it
 * holds queued (SchedulerSaturatedTargets()).
 */
bool
SchedulerFinished(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	SchedulerRecorded(s);
	return SchedulerEnded(s, t, now);
}

/*
 * For a kind that keeps the worker's slot of a request until its outcome is stored
 * (deliveries: that bounds what a crash sends twice to max_concurrency), the two
 * halves of SchedulerFinished().  SchedulerEnded(): the request is over (answered,
 * failed, or never sent), so its target's and tenant's slots are free for their next
 * request, as the per-endpoint and per-tenant caps count requests at the endpoint;
 * returns what SchedulerFinished() returns.  SchedulerRecorded(): its outcome is
 * stored, and the worker's slot is free.  Held until the commit, the target's slots
 * made each round of one endpoint's requests wait for a commit and its WAL flush: a
 * single endpoint at the default cap of 16 drained 200,000 deliveries at about 7,000 a
 * second, against about 9,300 with the slots given back in halves (bench/README.md).
 */
bool
SchedulerEnded(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	bool		room;

	Assert(t->in_flight > 0);
	t->in_flight--;
	t->tenant->in_flight--;
	/* Ends that come together count as such: the average is of ends per time. */
	if (t->last_ended != 0)
		t->ending_gap_us = t->ending_gap_us == 0 ? now - t->last_ended :
			(7 * t->ending_gap_us + (now - t->last_ended)) / 8;
	t->last_ended = Max(t->last_ended, now);
	room = !SchedulerTargetSaturated(s, t, now);
	mark_dirty(s, t);
	target_went_idle(s, t, now);
	return room;
}

void
SchedulerRecorded(Scheduler *s)
{
	Assert(s->in_flight > 0);
	s->in_flight--;
}

/*
 * May a request that follows from's on its target (a sync run's next page) start now
 * in from's slot, which from, ended and reported, has not given back?  If so, its
 * token is taken, so the caller asks only for a request that is to go now (due, and
 * built or buildable).  Two things must hold.  Nothing else wants that slot: the target
 * has nothing queued (which goes first), and the slot would not otherwise go to another
 * tenant or another target of this one, nor this tenant hold more than its share while
 * others wait.  And the target may be sent to, as SchedulerMaySend() would say once
 * from's slot is free, under every limit as it is now: a concurrency cap lowered by a
 * reload, or a rate lowered since from started (SchedulerConfigureTarget() first),
 * stops a chain of hand-overs at once instead of when it ends.  A circuit that is not
 * closed has its probes started by SchedulerNext() alone.
 */
bool
SchedulerMayHandOver(Scheduler *s, SchedItem *from, TimestampTz now)
{
	SchedTarget *t = from->target;

	Assert(t->in_flight > 0);
	if (t->queued > 0 || t->breaker.state != CIRCUIT_CLOSED)
		return false;
	if (s->queued > 0 &&
		(s->in_flight >= s->limits.max_concurrency || t->tenant->in_flight > tenant_fair_share(s)))
		return false;
	/* The tenant's other targets wait for its slots: the next one's turn. */
	if (t->tenant->queued > 0 && t->tenant->in_flight >= s->limits.per_tenant)
		return false;
	if (judge(s, t, now, NULL, 1) != SCHED_SEND)
		return false;

	/*
	 * The token is taken now, not when the request starts: two pages of one
	 * target judged in one transaction never share one.  A hand-over that
	 * does not happen after all (its request is not built, or its transaction
	 * fails) gives it back (SchedulerHandOverUndone()).
	 */
	RateLimiterTake(&t->limiter, now);
	mark_dirty(s, t);
	return true;
}

/*
 * A hand-over SchedulerMayHandOver() allowed does not happen: no request went out
 * (it was not built, or the transaction that began it failed), and from keeps its
 * slot.  The token it took goes back, else a page begun again after a failed
 * transaction would have taken one for each try.
 */
void
SchedulerHandOverUndone(Scheduler *s, SchedItem *from, TimestampTz now)
{
	SchedTarget *t = from->target;

	Assert(t->in_flight > 0);
	RateLimiterGiveBack(&t->limiter, now);
	mark_dirty(s, t);
}

/*
 * from gives its slot to to, which SchedulerMayHandOver() allowed: to is in flight on
 * from's target, as if SchedulerNext() had handed it out; from is done with the
 * scheduler (no SchedulerFinished() for it).
 */
void
SchedulerHandOver(Scheduler *s, SchedItem *from, SchedItem *to, TimestampTz now)
{
	SchedTarget *t = from->target;

	Assert(t->in_flight > 0);
	to->target = t;
	to->queued_at = now;
	/* A request sent ahead started when it was sent. */
	if (to->started_at == 0)
		to->started_at = now;
	to->probe = false;
	mark_dirty(s, t);
}

/*
 * to, a request that SchedulerMayHandOver() let go out on from's target (sent ahead of
 * its call), cannot have from's slot after all: from keeps it, its outcome not recorded
 * (the transaction that would have handed it over failed).  to is on its way, so it is
 * counted in flight on its own, beyond the target's limits if need be, until its kind
 * calls SchedulerFinished() for it: what the scheduler does not count, it cannot limit.
 */
void
SchedulerAddInFlight(Scheduler *s, SchedItem *from, SchedItem *to, TimestampTz now)
{
	SchedTarget *t = from->target;

	Assert(t->in_flight > 0 && t->tenant != NULL);
	t->in_flight++;
	t->tenant->in_flight++;
	s->in_flight++;
	SchedulerHandOver(s, from, to, now);
}

static int
hold_limit(Scheduler *s)
{
	return s->limits.per_target * s->limits.hold_rounds;
}

/*
 * The most claims t may hold, queued and in flight, now, under limit: none while its
 * circuit is open, one probe more than it has in flight when half open, and what its
 * bucket lets go in RATE_HOLD_AHEAD_S when rate-limited.
 */
static int
claim_limit(Scheduler *s, SchedTarget *t, TimestampTz now, int limit)
{
	half_open_if_due(s, t, now);
	switch (t->breaker.state)
	{
		case CIRCUIT_OPEN:
			return 0;
		case CIRCUIT_HALF_OPEN:
			return (t->breaker.probe_in_flight || t->queued > 0) ? 0 : t->in_flight + 1;
		case CIRCUIT_CLOSED:
			break;
	}
	return Min(limit, RateLimiterHoldAhead(&t->limiter, now, RATE_HOLD_AHEAD_S));
}

/*
 * How many more claims the target of kind, tenant and id may hold (queued plus in
 * flight), with the given configured rate limit (rate 0: none).  While the worker
 * holds QUEUE_LIMIT_ROUNDS rounds in all, a target still gets enough to fill its own
 * slots, so an idle target is never refused.
 */
int
SchedulerRoom(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id,
			  int rate, int burst, TimestampTz now)
{
	SchedTarget *t = target_lookup(s, kind, tenant_id, id, false);
	int			held = t ? t->in_flight + t->queued : 0;
	int			limit = hold_limit(s);

	if (s->queued >= QUEUE_LIMIT_ROUNDS * s->limits.max_concurrency)
		limit = s->limits.per_target;
	if (t != NULL)
	{
		SchedulerConfigureTarget(s, t, rate, burst);
		limit = claim_limit(s, t, now, limit);
	}
	else if (rate > 0)
	{
		RateLimiter rl;

		RateLimiterInit(&rl);
		RateLimiterConfigure(&rl, rate, burst);
		limit = Min(limit, RateLimiterHoldAhead(&rl, now, RATE_HOLD_AHEAD_S));
	}
	return Max(limit - held, 0);
}

/*
 * Whether the target of kind, tenant and id will have room for want more claims (at
 * most half of what it may hold) within SCHED_ROOM_SOON_MS: now when it has it already
 * or is not known (it holds nothing); else until when to wait for it, each end of one
 * of its requests waking the worker's loop before then; 0 when not that soon.  Told
 * from the gaps between its requests' ends: a target that answers fast gives want
 * slots back within moments, and work fanned out for it meanwhile would go to the
 * database pending, to be claimed again (a second write of every row, with its index
 * entries), while work held in memory is sent without one.  A target that gives back
 * nothing or little (slow, hanging, rate-limited, its circuit not closed) is never
 * waited for, so that the work behind its backlog, other targets' included, reaches
 * its own queues as before; waiting at most SCHED_ROOM_SOON_MS a batch (the caller's
 * bound: others may take the room as it frees, paced_until() in delivery_job.c), the
 * fan-out goes on at a batch per SCHED_ROOM_SOON_MS or faster whatever a backlog
 * holds.
 */
TimestampTz
SchedulerRoomSoon(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id,
				  int want, TimestampTz now)
{
	SchedTarget *t = target_lookup(s, kind, tenant_id, id, false);
	int			limit;
	int			room;

	if (t == NULL)
		return now;
	limit = claim_limit(s, t, now, hold_limit(s));
	room = limit - (t->in_flight + t->queued);
	want = Max(Min(want, limit / 2), 1);
	if (room >= want)
		return now;
	if (t->breaker.state != CIRCUIT_CLOSED || t->last_ended == 0 || t->ending_gap_us <= 0)
		return 0;

	/*
	 * The ends still to come, at the average gap; or it has stopped giving
	 * back.
	 */
	if ((int64) (want - room) * t->ending_gap_us > SCHED_ROOM_SOON_MS * INT64CONST(1000) ||
		now - t->last_ended >= SCHED_ROOM_SOON_MS * INT64CONST(1000))
		return 0;
	return t->last_ended + SCHED_ROOM_SOON_MS * INT64CONST(1000);
}

bool
SchedulerTargetFull(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	return t->in_flight + t->queued >= claim_limit(s, t, now, hold_limit(s));
}

/*
 * Whether what t holds, queued and in flight, fills its concurrency limit (or its
 * claim limit, if lower); always, while its circuit is not closed.
 */
bool
SchedulerTargetSaturated(Scheduler *s, SchedTarget *t, TimestampTz now)
{
	int			limit = claim_limit(s, t, now, s->limits.per_target);

	return t->breaker.state != CIRCUIT_CLOSED || t->in_flight + t->queued >= limit;
}

/* Calls visit for every target with queued work, until it returns false. */
typedef bool (*TargetVisitor) (Scheduler *s, SchedTarget *t, void *arg);

static void
visit_waiting_targets(Scheduler *s, TargetVisitor visit, void *arg)
{
	dlist_mutable_iter ti;

	dlist_foreach_modify(ti, &s->tenants_ring)
	{
		SchedTenant *tenant = dlist_container(SchedTenant, ring, ti.cur);
		dlist_mutable_iter gi;

		dlist_foreach_modify(gi, &tenant->targets)
		{
			if (!visit(s, dlist_container(SchedTarget, ring, gi.cur), arg))
				return;
		}
	}
}

typedef struct WaitingCount
{
	TimestampTz now;
	bool		slots_taken;
	int			waiting;
} WaitingCount;

static bool
count_waiting(Scheduler *s, SchedTarget *t, void *arg)
{
	WaitingCount *wc = arg;
	SchedVerdict v = SchedulerMaySend(s, t, wc->now, NULL);

	if (!SchedulerTargetFull(s, t, wc->now) &&
		(v == SCHED_SEND || v == SCHED_NO_SLOT || (v == SCHED_TARGET_FULL && wc->slots_taken)))
		wc->waiting += t->queued;
	return wc->waiting < s->limits.max_concurrency;
}

/*
 * Whether claiming more work is worth it: less than a round of work waits that could
 * use the slots as they free up.  What waits for a target that holds all the claims
 * it may, for a tenant at its cap, for a back-off, a token or a circuit, or for a
 * target at its own limit while other slots are free, does not count: it cannot use
 * the slots others leave free, and must not keep a fresh event to another target from
 * being claimed.
 */
bool
SchedulerWantsWork(Scheduler *s, TimestampTz now)
{
	WaitingCount wc;

	if (s->queued >= QUEUE_LIMIT_ROUNDS * s->limits.max_concurrency)
		return false;
	wc.now = now;
	wc.slots_taken = s->in_flight >= s->limits.max_concurrency;
	wc.waiting = 0;
	visit_waiting_targets(s, count_waiting, &wc);
	return wc.waiting < s->limits.max_concurrency;
}

/*
 * Ids of kind's targets whose claims fill their limit, or whose circuit is not closed,
 * sorted: a claim of due work skips them, and what is due for them stays in the
 * database until one of their requests gives its slot back, or their circuit closes
 * (a half-open circuit's probe is claimed on its own: SchedulerProbesWanted()).
 * (Fresh work, fanned out, may be held up to SchedulerRoom(): it is claimed in the
 * same statement that creates it.)
 */
int
SchedulerSaturatedTargets(Scheduler *s, const JobKind *kind, TimestampTz now, int64 **ids)
{
	HASH_SEQ_STATUS seq;
	SchedTarget *t;
	int64	   *out = MemoryContextAlloc(s->mcxt, sizeof(int64) * Max(hash_get_num_entries(s->targets), 1));
	int			n = 0;

	hash_seq_init(&seq, s->targets);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->key.kind == kind && SchedulerTargetSaturated(s, t, now))
			out[n++] = t->key.id;
	qsort(out, n, sizeof(int64), int64_cmp);
	*ids = out;
	return n;
}

typedef struct WakeSearch
{
	TimestampTz now;
	TimestampTz wake;
} WakeSearch;

static bool
earliest_later(Scheduler *s, SchedTarget *t, void *arg)
{
	WakeSearch *ws = arg;
	TimestampTz when = 0;

	if (SchedulerMaySend(s, t, ws->now, &when) == SCHED_LATER)
		ws->wake = EarliestTime(ws->wake, when);
	return true;
}

/*
 * When the worker must look again for the targets' sake: the earliest time a target
 * with queued work that is held back (back-off, token, open circuit) may send, an open
 * circuit goes half open, or a half-open circuit's kind should look for a probe again;
 * 0: none of these.
 */
TimestampTz
SchedulerNextWake(Scheduler *s, TimestampTz now)
{
	WakeSearch	ws = {now, 0};
	dlist_iter	ci;

	visit_waiting_targets(s, earliest_later, &ws);
	dlist_foreach(ci, &s->circuits)
	{
		SchedTarget *t = dlist_container(SchedTarget, circuit_node, ci.cur);

		if (t->breaker.state == CIRCUIT_OPEN)
			ws.wake = EarliestTime(ws.wake, t->breaker.next_probe_at);
		else if (!t->breaker.probe_in_flight && t->queued == 0 && t->probe_claim_at != 0 &&
				 t->probe_claim_at != DT_NOEND)
			ws.wake = EarliestTime(ws.wake, t->probe_claim_at);
	}
	return ws.wake;
}

int
SchedulerInFlight(Scheduler *s)
{
	return s->in_flight;
}

int
SchedulerQueued(Scheduler *s)
{
	return s->queued;
}

typedef struct ItemVisit
{
	SchedItemVisitor visit;
	void	   *arg;
} ItemVisit;

static bool
visit_items(Scheduler *s, SchedTarget *t, void *arg)
{
	ItemVisit  *iv = arg;
	dlist_iter	ii;

	dlist_foreach(ii, &t->queue)
		iv->visit(dlist_container(SchedItem, node, ii.cur), iv->arg);
	return true;
}

void
SchedulerForEachQueued(Scheduler *s, SchedItemVisitor visit, void *arg)
{
	ItemVisit	iv = {visit, arg};

	visit_waiting_targets(s, visit_items, &iv);
}

/*
 * Takes every item queued for t off the scheduler and hands each to visit, for its kind
 * to give back (the circuit opened: SCHED_REPORT_OPENED).  t may be forgotten after.
 */
void
SchedulerTakeQueued(Scheduler *s, SchedTarget *t, SchedItemVisitor visit, void *arg,
					TimestampTz now)
{
	dlist_mutable_iter ii;

	if (t->queued == 0)
		return;
	dlist_foreach_modify(ii, &t->queue)
	{
		SchedItem  *item = dlist_container(SchedItem, node, ii.cur);

		take_item(s, t, item);
		visit(item, arg);
	}
	mark_dirty(s, t);
	target_went_idle(s, t, now);
}

/*
 * Once per turn of the worker's loop: open circuits whose wait is over go half open,
 * and now and then the targets kept only for their state are forgotten once it is gone.
 */
void
SchedulerTick(Scheduler *s, TimestampTz now)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &s->circuits)
		half_open_if_due(s, dlist_container(SchedTarget, circuit_node, it.cur), now);
	if (now < s->next_sweep)
		return;
	s->next_sweep = now + (int64) SWEEP_INTERVAL_MS * 1000;
	dlist_foreach_modify(it, &s->idle)
	{
		SchedTarget *t = dlist_container(SchedTarget, idle_node, it.cur);

		if (!target_has_state(t, now))
			forget_target(s, t);
		else if (t->health_slot == HEALTH_SLOTS_FULL)
		{
			/* Slots may have come free meanwhile. */
			t->health_slot = NO_HEALTH_SLOT;
			mark_dirty(s, t);
		}
	}
}

/*
 * The targets of kind whose half-open circuit waits for a probe with nothing queued,
 * and that their kind should look for one for now, into *targets (palloc'd in the
 * caller's context); with targets NULL, only how many: the loop asks that every turn.
 */
int
SchedulerProbesWanted(Scheduler *s, const JobKind *kind, TimestampTz now,
					  SchedTarget ***targets)
{
	dlist_iter	ci;
	int			n = 0;

	if (targets != NULL)
	{
		dlist_foreach(ci, &s->circuits)
			n++;
		*targets = palloc(sizeof(SchedTarget *) * Max(n, 1));
		n = 0;
	}
	dlist_foreach(ci, &s->circuits)
	{
		SchedTarget *t = dlist_container(SchedTarget, circuit_node, ci.cur);

		if (t->key.kind != kind || t->breaker.state != CIRCUIT_HALF_OPEN ||
			t->breaker.probe_in_flight || t->queued > 0 || t->probe_claim_at > now)
			continue;
		if (targets != NULL)
			(*targets)[n] = t;
		n++;
	}
	return n;
}

/*
 * The kind looked for a probe for t: when it found none, it asks again at next_at (the
 * next time one comes due; 0: not until SchedulerProbesRecheck()).
 */
void
SchedulerProbeLookedFor(Scheduler *s, SchedTarget *t, bool found, TimestampTz next_at)
{
	if (!found)
		t->probe_claim_at = next_at != 0 ? next_at : DT_NOEND;
}

/* New work may have come due for any target of kind: look for probes again. */
void
SchedulerProbesRecheck(Scheduler *s, const JobKind *kind)
{
	dlist_iter	ci;

	dlist_foreach(ci, &s->circuits)
	{
		SchedTarget *t = dlist_container(SchedTarget, circuit_node, ci.cur);

		if (t->key.kind == kind)
			t->probe_claim_at = 0;
	}
}

/*
 * Closes t's circuit without a probe, for a reason that makes it moot (reason, a
 * static string, is logged): nothing will be sent to the target any more, and what
 * waits for it must be claimed, to fail, in batches rather than a probe at a time.
 */
void
SchedulerCloseCircuit(Scheduler *s, SchedTarget *t, const char *reason, TimestampTz now)
{
	CircuitState from = t->breaker.state;

	if (from == CIRCUIT_CLOSED)
		return;
	t->breaker.state = CIRCUIT_CLOSED;
	t->breaker.probe_in_flight = false;
	t->breaker.opened_at = t->breaker.next_probe_at = 0;
	t->breaker.cooldown_ms = 0;
	memset(&t->breaker.window, 0, sizeof(t->breaker.window));
	circuit_changed(s, t, from, reason, now);
}

/*
 * A circuit as it was stored before a restart (circuit_store.c).  A half-open one had
 * its probe out when the worker stopped: it is open again, and probes when its wait,
 * which is over, says.
 */
void
SchedulerRestoreCircuit(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id,
						const CircuitBreaker *cb)
{
	SchedTarget *t = target_lookup(s, kind, tenant_id, id, true);

	t->breaker = *cb;
	t->breaker.probe_in_flight = false;
	if (t->breaker.state == CIRCUIT_HALF_OPEN)
		t->breaker.state = CIRCUIT_OPEN;
	if (t->breaker.state != CIRCUIT_CLOSED && !t->in_circuits)
	{
		dlist_push_tail(&s->circuits, &t->circuit_node);
		t->in_circuits = true;
	}
	if (t->in_flight == 0 && t->queued == 0 && !t->in_idle)
	{
		dlist_push_tail(&s->idle, &t->idle_node);
		t->in_idle = true;
	}
	mark_dirty(s, t);
}

/*
 * The circuit transitions of kind's targets not recorded yet, oldest first, copied
 * into the caller's context; SchedulerTransitionsRecorded() drops them once stored.
 */
int
SchedulerTransitions(Scheduler *s, const JobKind *kind, SchedTransition **out)
{
	int			n = 0;

	*out = palloc(sizeof(SchedTransition) * Max(s->ntransitions, 1));
	for (int i = 0; i < s->ntransitions; i++)
		if (s->transitions[i].kind == kind)
			(*out)[n++] = s->transitions[i];
	return n;
}

bool
SchedulerTransitionsPending(Scheduler *s, const JobKind *kind)
{
	for (int i = 0; i < s->ntransitions; i++)
		if (s->transitions[i].kind == kind)
			return true;
	return false;
}

void
SchedulerTransitionsRecorded(Scheduler *s, const JobKind *kind, uint64 upto_seq)
{
	int			kept = 0;

	for (int i = 0; i < s->ntransitions; i++)
		if (s->transitions[i].kind != kind || s->transitions[i].seq > upto_seq)
			s->transitions[kept++] = s->transitions[i];
	s->ntransitions = kept;
}

/*
 * Copies the targets that changed since the last call into shared memory, and frees the
 * slots of those forgotten, under one lock acquisition.
 */
void
SchedulerPublish(Scheduler *s, TimestampTz now)
{
	dlist_mutable_iter it;

	if (dlist_is_empty(&s->dirty) && s->nreleased == 0)
		return;
	TargetHealthBeginPublish();
	for (int i = 0; i < s->nreleased; i++)
		TargetHealthRelease(s->released[i]);
	s->nreleased = 0;
	dlist_foreach_modify(it, &s->dirty)
	{
		SchedTarget *t = dlist_container(SchedTarget, dirty_node, it.cur);
		TargetHealth h;

		dlist_delete(&t->dirty_node);
		t->dirty = false;
		if (t->health_slot == HEALTH_SLOTS_FULL)
			continue;
		memset(&h, 0, sizeof(h));
		h.dboid = MyDatabaseId;
		h.pid = MyProcPid;
		strlcpy(h.kind, t->key.kind->target, sizeof(h.kind));
		strlcpy(h.tenant_id, t->key.tenant_id, sizeof(h.tenant_id));
		h.target_id = t->key.id;
		h.in_flight = t->in_flight;
		h.queued = t->queued;
		h.oldest_queued_at = t->queued > 0 ?
			dlist_container(SchedItem, node, dlist_head_node(&t->queue))->queued_at : 0;
		h.limiter = t->limiter;
		h.breaker = t->breaker;
		t->health_slot = TargetHealthWrite(t->health_slot, &h);
		if (t->health_slot < 0)
			t->health_slot = HEALTH_SLOTS_FULL;
	}
	TargetHealthEndPublish();
}
