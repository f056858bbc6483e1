/*
 * scheduler.c
 *		Which queued piece of work gets the next request slot: fair across tenants, and
 *		never behind a target that has no room.
 *
 * State.  Every target (one destination of one kind of work, of one tenant) has its
 * own FIFO queue and its own counts; every tenant has a ring of its targets that have
 * queued work, and the scheduler a ring of such tenants.  All per-target state (in
 * flight, limits, back-off) lives in SchedTarget and is judged by one function,
 * SchedulerMaySend(): "may I send to this target now, and if not, why, and until when".
 * Later limits (rate limits, circuit breakers) join there and nowhere else.
 *
 * Order.  SchedulerNext() walks the tenants round-robin and, within a tenant, its
 * targets round-robin, and hands out the first item of the first target that may send.
 * So work for a target with room never waits behind work for a target without any: a
 * slow endpoint's backlog stays in its own queue.  It walks twice: first only tenants
 * below their fair share of the slots (max_concurrency divided by the tenants that have
 * work queued or in flight), then any tenant.  A tenant alone gets every slot its cap
 * allows; a tenant that holds more than its share gets no new slot while another tenant
 * below its share has work that can start.
 *
 * Caps.  No target holds more than per_target requests in flight; no tenant more than
 * per_tenant, which is below max_concurrency by default so that a tenant whose
 * endpoints hang (and keep their slots until the request timeout) always leaves slots
 * for the others.  Claims held ahead in memory are bounded per target (hold_rounds
 * rounds of per_target, SchedulerRoom()) and overall (QUEUE_LIMIT_ROUNDS rounds of
 * max_concurrency): what does not fit stays in the database, pending.
 *
 * The scheduler does no I/O and no SQL; it is driven by the worker's loop and by the
 * kinds of work, all in one process, so it needs no locks.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "integration.h"
#include "scheduler.h"

/* Claims held in memory in all, in units of max_concurrency. */
#define QUEUE_LIMIT_ROUNDS 16

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
	SchedTenant *tenant;
	int			in_flight;
	int			queued;
	TimestampTz not_before;		/* back-off; 0: none */
	dlist_head	queue;			/* SchedItems, oldest first */
	dlist_node	ring;			/* in tenant->targets while queued > 0 */
	bool		in_ring;
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
};

Scheduler *
SchedulerCreate(MemoryContext mcxt, const SchedLimits *limits)
{
	Scheduler  *s = MemoryContextAllocZero(mcxt, sizeof(Scheduler));
	HASHCTL		ctl;

	s->mcxt = mcxt;
	dlist_init(&s->tenants_ring);
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
}

static int	hold_limit(Scheduler *s);

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

/* The target of kind, tenant and id, made when first asked for. */
SchedTarget *
SchedulerTarget(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id)
{
	SchedTargetKey key;
	SchedTarget *t;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.kind = kind;
	key.id = id;
	strlcpy(key.tenant_id, tenant_id, sizeof(key.tenant_id));
	t = hash_search(s->targets, &key, HASH_ENTER, &found);
	if (!found)
	{
		t->tenant = tenant_entry(s, tenant_id);
		t->in_flight = t->queued = 0;
		t->not_before = 0;
		dlist_init(&t->queue);
		t->in_ring = false;
	}
	else if (t->in_flight == 0 && t->queued == 0)
	{
		/*
		 * Kept for its back-off only: its tenant may have been forgotten
		 * meanwhile.
		 */
		t->tenant = tenant_entry(s, tenant_id);
	}
	return t;
}

static SchedTarget *
find_target(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id)
{
	SchedTargetKey key;

	memset(&key, 0, sizeof(key));
	key.kind = kind;
	key.id = id;
	strlcpy(key.tenant_id, tenant_id, sizeof(key.tenant_id));
	return hash_search(s->targets, &key, HASH_FIND, NULL);
}

/* Forgets a target, and its tenant, once they hold nothing and wait for nothing. */
static void
forget_if_idle(Scheduler *s, SchedTarget *t)
{
	SchedTenant *tenant = t->tenant;

	if (t->in_flight > 0 || t->queued > 0)
		return;
	if (tenant->in_flight == 0 && tenant->queued == 0)
	{
		s->active_tenants--;
		hash_search(s->tenants, tenant->tenant_id, HASH_REMOVE, NULL);
	}
	if (t->not_before == 0)
		hash_search(s->targets, &t->key, HASH_REMOVE, NULL);
}

void
SchedulerEnqueue(Scheduler *s, SchedTarget *t, SchedItem *item)
{
	SchedTenant *tenant = t->tenant;

	if (tenant->in_flight == 0 && tenant->queued == 0)
		s->active_tenants++;
	item->target = t;
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
}

/* The most slots a tenant may hold now, however many others have work. */
static int
tenant_fair_share(Scheduler *s)
{
	int			active = Max(s->active_tenants, 1);

	return (s->limits.max_concurrency + active - 1) / active;
}

/*
 * May a request to t start now?  SCHED_LATER sets *when to the time it may; the other
 * refusals end when one of the requests that hold the slots finishes.
 */
SchedVerdict
SchedulerMaySend(Scheduler *s, SchedTarget *t, TimestampTz now, TimestampTz *when)
{
	if (t->not_before != 0 && now < t->not_before)
	{
		if (when)
			*when = t->not_before;
		return SCHED_LATER;
	}
	if (t->in_flight >= s->limits.per_target)
		return SCHED_TARGET_FULL;
	if (s->in_flight >= s->limits.max_concurrency)
		return SCHED_NO_SLOT;
	if (t->tenant->in_flight >= s->limits.per_tenant)
		return SCHED_TENANT_FULL;
	return SCHED_SEND;
}

/* Holds t's requests back until the given time. */
void
SchedulerBackOff(Scheduler *s, SchedTarget *t, TimestampTz until)
{
	t->not_before = until;
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
 * their rings.
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
				return item;
			}
		}
	}
	return NULL;
}

/*
 * A request SchedulerNext() handed out has given its slot back (it ended, or never
 * started).  Returns whether its target is below its concurrency limit now, counting
 * what it holds queued (SchedulerSaturatedTargets()).
 */
bool
SchedulerFinished(Scheduler *s, SchedTarget *t)
{
	bool		room;

	Assert(t->in_flight > 0);
	t->in_flight--;
	t->tenant->in_flight--;
	s->in_flight--;
	room = !SchedulerTargetSaturated(s, t);
	forget_if_idle(s, t);
	return room;
}

static int
hold_limit(Scheduler *s)
{
	return s->limits.per_target * s->limits.hold_rounds;
}

/*
 * How many more claims the target of kind, tenant and id may hold (queued plus in
 * flight).  While the worker holds QUEUE_LIMIT_ROUNDS rounds in all, a target still
 * gets enough to fill its own slots, so an idle target is never refused.
 */
int
SchedulerRoom(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id)
{
	SchedTarget *t = find_target(s, kind, tenant_id, id);
	int			held = t ? t->in_flight + t->queued : 0;
	int			limit = hold_limit(s);

	if (s->queued >= QUEUE_LIMIT_ROUNDS * s->limits.max_concurrency)
		limit = s->limits.per_target;
	return Max(limit - held, 0);
}

bool
SchedulerTargetFull(Scheduler *s, SchedTarget *t)
{
	return t->in_flight + t->queued >= hold_limit(s);
}

/* Whether what t holds, queued and in flight, fills its concurrency limit. */
bool
SchedulerTargetSaturated(Scheduler *s, SchedTarget *t)
{
	return t->in_flight + t->queued >= s->limits.per_target;
}

/* Calls visit for every target with queued work, until it returns false. */
typedef bool (*TargetVisitor) (Scheduler *s, SchedTarget *t, void *arg);

static void
visit_waiting_targets(Scheduler *s, TargetVisitor visit, void *arg)
{
	dlist_iter	ti;

	dlist_foreach(ti, &s->tenants_ring)
	{
		SchedTenant *tenant = dlist_container(SchedTenant, ring, ti.cur);
		dlist_iter	gi;

		dlist_foreach(gi, &tenant->targets)
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

	if (!SchedulerTargetFull(s, t) &&
		(v == SCHED_SEND || v == SCHED_NO_SLOT || (v == SCHED_TARGET_FULL && wc->slots_taken)))
		wc->waiting += t->queued;
	return wc->waiting < s->limits.max_concurrency;
}

/*
 * Whether claiming more work is worth it: less than a round of work waits that could
 * use the slots as they free up.  What waits for a target that holds all the claims
 * it may, for a tenant at its cap, for a back-off, or for a target at its own limit
 * while other slots are free, does not count: it cannot use the slots others leave
 * free, and must not keep a fresh event to another target from being claimed.
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
 * Ids of kind's targets whose claims fill their concurrency limit, sorted: a claim of
 * due work skips them, and what is due for them stays in the database until one of
 * their requests gives its slot back.  (Fresh work, fanned out, may be held up to
 * SchedulerRoom(): it is claimed in the same statement that creates it.)
 */
int
SchedulerSaturatedTargets(Scheduler *s, const JobKind *kind, int64 **ids)
{
	HASH_SEQ_STATUS seq;
	SchedTarget *t;
	int64	   *out = MemoryContextAlloc(s->mcxt, sizeof(int64) * Max(hash_get_num_entries(s->targets), 1));
	int			n = 0;

	hash_seq_init(&seq, s->targets);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->key.kind == kind && SchedulerTargetSaturated(s, t))
			out[n++] = t->key.id;
	qsort(out, n, sizeof(int64), int64_cmp);
	*ids = out;
	return n;
}

static bool
earliest_back_off(Scheduler *s, SchedTarget *t, void *arg)
{
	TimestampTz *wake = arg;

	if (t->not_before != 0 && (*wake == 0 || t->not_before < *wake))
		*wake = t->not_before;
	return true;
}

/* When a held-back target with queued work may send again; 0: none is held back. */
TimestampTz
SchedulerNextWake(Scheduler *s)
{
	TimestampTz wake = 0;

	visit_waiting_targets(s, earliest_back_off, &wake);
	return wake;
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
