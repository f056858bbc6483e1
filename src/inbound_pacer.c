/*
 * inbound_pacer.c
 *		Which ready inbound event the handler worker runs next, and when the transaction
 *		that runs them commits.
 *
 * Why.  The handler worker is one process: while a handler runs, nothing else of its
 * runs, and the events that ran before in the same transaction are not committed
 * either (their handlers' writes and their status commit together; that is what makes
 * them exactly once).  Both are unavoidable for the call that is running.  What the
 * pacer decides is everything around it: whose event runs next, and whether to commit
 * first.
 *
 * Order: fair queueing by handler time.  Each tenant has the handler time charged to
 * it on a virtual clock; the next event is one of the tenant whose turn starts
 * earliest, its own time or the clock's, whichever is later (ties: the order the
 * events were handed in, the scheduler's round-robin).  The clock is where the last
 * turn started, so a tenant that had nothing to run for a while starts level with the
 * others instead of with credit saved up.  So a tenant whose handler took 5 s waits
 * until every other tenant with events ready has had 5 s of handler time too: another
 * tenant's quick events all run before its next slow one.
 *
 * Commits: a time budget per transaction.  A transaction runs events until their
 * handlers have taken budget_us, and never starts an event whose tenant's last event
 * took longer than what is left of the budget, unless it is the transaction's first:
 * an event that is likely slow runs in a transaction of its own, so it never holds
 * back the commit of quick events that ran before it, and the quick events that come
 * after it are committed in the next transaction.  (An event's first run has no
 * history: it may share a transaction and delay that commit once.)
 *
 * InboundPacerSlow() tells the job which tenants' events run one per transaction, so
 * that it holds few of them and leaves its room to other tenants' events.
 *
 * Tenants whose state says nothing the defaults would not (not ahead of the clock,
 * not slow) are forgotten when many are kept.
 */
#include "postgres.h"

#include "utils/hsearch.h"

#include "inbound_pacer.h"
#include "tenant.h"

/* Tenants kept before those that carry nothing are forgotten. */
#define PRUNE_AT 256

typedef struct PacerTenant
{
	char		tenant_id[TENANT_ID_MAX_LEN + 1];	/* hash key */
	int64		used_us;		/* on the virtual clock: where its next turn
								 * starts */
	int64		last_us;		/* its last event's handler time */
} PacerTenant;

struct InboundPacer
{
	HTAB	   *tenants;
	int64		budget_us;
	int64		clock_us;		/* where the last turn started */
	int64		run_used_us;	/* handler time of this transaction */
	int			run_events;
};

InboundPacer *
InboundPacerCreate(MemoryContext mcxt, int64 budget_us)
{
	InboundPacer *p = MemoryContextAllocZero(mcxt, sizeof(InboundPacer));
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = TENANT_ID_MAX_LEN + 1;
	ctl.entrysize = sizeof(PacerTenant);
	ctl.hcxt = mcxt;
	p->tenants = hash_create("integration inbound pacer", 64, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	p->budget_us = Max(budget_us, 1);
	return p;
}

static PacerTenant *
lookup(InboundPacer *p, const char *tenant_id, bool create)
{
	char		key[TENANT_ID_MAX_LEN + 1];
	PacerTenant *t;
	bool		found;

	memset(key, 0, sizeof(key));
	strlcpy(key, tenant_id, sizeof(key));
	t = hash_search(p->tenants, key, create ? HASH_ENTER : HASH_FIND, &found);
	if (t != NULL && !found)
	{
		t->used_us = p->clock_us;
		t->last_us = 0;
	}
	return t;
}

/* Forgets the tenants that would start level with the clock and are not slow. */
static void
prune(InboundPacer *p)
{
	HASH_SEQ_STATUS seq;
	PacerTenant *t;

	hash_seq_init(&seq, p->tenants);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->used_us <= p->clock_us && t->last_us <= p->budget_us)
			(void) hash_search(p->tenants, t->tenant_id, HASH_REMOVE, NULL);
}

/* A transaction's run begins. */
void
InboundPacerBeginRun(InboundPacer *p)
{
	p->run_used_us = 0;
	p->run_events = 0;
	if (hash_get_num_entries(p->tenants) > PRUNE_AT)
		prune(p);
}

/*
 * The index of the event to run next among those with candidate[i] (tenants[i] is its
 * tenant), or -1: commit now (see the banner).
 */
int
InboundPacerNext(InboundPacer *p, const char *const *tenants, const bool *candidate, int n)
{
	int			best = -1;
	int64		best_start = 0;
	PacerTenant *t;

	if (p->run_events > 0 && p->run_used_us >= p->budget_us)
		return -1;
	for (int i = 0; i < n; i++)
	{
		int64		start;

		if (!candidate[i])
			continue;
		t = lookup(p, tenants[i], false);
		start = Max(t ? t->used_us : 0, p->clock_us);
		if (best < 0 || start < best_start)
		{
			best = i;
			best_start = start;
		}
	}
	if (best < 0)
		return -1;
	t = lookup(p, tenants[best], false);
	if (p->run_events > 0 && t != NULL && t->last_us > p->budget_us - p->run_used_us)
		return -1;
	p->clock_us = best_start;
	return best;
}

/* The handlers of an event of tenant_id took elapsed_us. */
void
InboundPacerCharge(InboundPacer *p, const char *tenant_id, int64 elapsed_us)
{
	PacerTenant *t = lookup(p, tenant_id, true);

	elapsed_us = Max(elapsed_us, 0);
	t->used_us = Max(t->used_us, p->clock_us) + elapsed_us;
	t->last_us = elapsed_us;
	p->run_used_us += elapsed_us;
	p->run_events++;
}

/* Whether tenant_id's events run one per transaction: its last took the whole budget. */
bool
InboundPacerSlow(InboundPacer *p, const char *tenant_id)
{
	PacerTenant *t = lookup(p, tenant_id, false);

	return t != NULL && t->last_us > p->budget_us;
}
