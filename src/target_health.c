/*
 * target_health.c
 *		The live figures of each target (in flight, queued, tokens, effective rate,
 *		circuit and its window), copied from the worker's scheduler into shared memory,
 *		and integration._target_health(), which reads them for the current tenant.
 *
 * Why shared memory, not a table.  These figures change with every request that
 * starts or ends: in flight, queued, tokens.  A table would have to be written at a
 * bounded rate, each write a transaction whose commit waits for a WAL flush (about a
 * millisecond on the development machine), a dead tuple per target and write, and
 * figures as stale as the interval; it would also have to be reconciled at every
 * start.  Here the worker copies the targets that changed once per turn of its loop,
 * under one exclusive LWLock acquisition (SchedulerPublish()).  Measured with
 * bench/run delivery (100,000 deliveries to one endpoint, 64 in flight, timing
 * SchedulerPublish() with instr_time): 4,000 publishes, one per loop turn with a
 * change, 0.06 us each, 0.002 us per delivery; the SQL of a delivery costs 28 us.  A
 * reader takes the lock shared and copies what its tenant may see.  What must survive a
 * restart, an open circuit, is not here but in integration.target_circuits
 * (circuit_store.c), which the worker writes at each transition; the view reads both.
 *
 * Size.  integration.max_tracked_endpoints slots (5,000 by default, 424 bytes
 * each: 2.1 MB), shared by every database's worker.  A worker holds a slot for each
 * target it keeps state for: one with requests queued or in flight, a circuit not
 * closed, a slow-down, or requests counted within integration.circuit_window.  When
 * every slot is taken, further targets are not shown (the view then reports their
 * configured rate and stored circuit only) and the worker logs it once; the limiter
 * and the breaker themselves work as ever, in the worker's memory.
 *
 * Slots are found by the worker through the index it keeps per target, so a publish
 * never searches; a new target takes the first free slot from a moving hint.  A
 * worker releases its slots as it forgets targets, and all of them when it exits.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "target_health.h"

typedef struct TargetHealthSlot
{
	bool		in_use;
	TargetHealth h;
} TargetHealthSlot;

typedef struct TargetHealthShared
{
	LWLock	   *lock;
	int			nslots;
	int			hint;			/* where to look for a free slot first */
	TargetHealthSlot slots[FLEXIBLE_ARRAY_MEMBER];
} TargetHealthShared;

int			integration_max_tracked_endpoints = 5000;

static TargetHealthShared *health = NULL;
static bool full_logged = false;

void
TargetHealthDefineGucs(void)
{
	DefineCustomIntVariable("integration.max_tracked_endpoints",
							"Endpoints whose live figures (in flight, rate, circuit) integration.endpoint_health can show at once, over all databases.",
							NULL, &integration_max_tracked_endpoints, 5000, 16, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

Size
TargetHealthShmemSize(void)
{
	return add_size(offsetof(TargetHealthShared, slots),
					mul_size(sizeof(TargetHealthSlot), integration_max_tracked_endpoints));
}

/* In the shmem startup hook, under AddinShmemInitLock. */
void
TargetHealthShmemInit(void)
{
	bool		found;

	health = ShmemInitStruct("integration target health", TargetHealthShmemSize(), &found);
	if (!found)
	{
		memset(health, 0, TargetHealthShmemSize());
		health->lock = &(GetNamedLWLockTranche("integration target health"))->lock;
		health->nslots = integration_max_tracked_endpoints;
	}
}

void
TargetHealthBeginPublish(void)
{
	LWLockAcquire(health->lock, LW_EXCLUSIVE);
}

void
TargetHealthEndPublish(void)
{
	LWLockRelease(health->lock);
}

/*
 * Copies h into its slot (slot -1: a new one) and returns the slot, or -1 when every
 * slot is taken.  The caller holds the lock (TargetHealthBeginPublish()).
 */
int
TargetHealthWrite(int slot, const TargetHealth *h)
{
	if (slot < 0)
	{
		for (int n = 0; n < health->nslots; n++)
		{
			int			i = (health->hint + n) % health->nslots;

			if (!health->slots[i].in_use)
			{
				slot = i;
				health->hint = (i + 1) % health->nslots;
				break;
			}
		}
		if (slot < 0)
		{
			if (!full_logged)
				ereport(LOG,
						(errmsg("integration worker: all %d slots of integration.max_tracked_endpoints are taken; endpoint_health shows no live figures for further endpoints",
								health->nslots)));
			full_logged = true;
			return -1;
		}
		health->slots[slot].in_use = true;
	}
	health->slots[slot].h = *h;
	return slot;
}

/* Frees a slot; the caller holds the lock. */
void
TargetHealthRelease(int slot)
{
	if (slot >= 0 && slot < health->nslots)
		health->slots[slot].in_use = false;
}

/* Frees every slot this process holds: at its exit. */
void
TargetHealthReleaseMine(void)
{
	if (health == NULL)
		return;
	LWLockAcquire(health->lock, LW_EXCLUSIVE);
	for (int i = 0; i < health->nslots; i++)
		if (health->slots[i].in_use && health->slots[i].h.pid == MyProcPid)
			health->slots[i].in_use = false;
	LWLockRelease(health->lock);
	full_logged = false;
}

PG_FUNCTION_INFO_V1(integration_target_health);

/*
 * _target_health(kind): the live figures of this database's targets of that kind, as
 * the worker last published them and as of now (tokens, effective rate and window
 * counts move with time).  As row-level security would show them: every tenant's to
 * a role that bypasses it (a superuser, BYPASSRLS), else only the current tenant's,
 * and none without a tenant.
 */
Datum
integration_target_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *tenant = CurrentTenant();
	bool		all = superuser() || has_bypassrls_privilege(GetUserId());
	TimestampTz now = GetCurrentTimestamp();
	CircuitSettings cs;
	TargetHealth *copies;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (health == NULL || (tenant == NULL && !all))
		return (Datum) 0;
	CircuitCurrentSettings(&cs);

	copies = palloc(sizeof(TargetHealth) * health->nslots);
	LWLockAcquire(health->lock, LW_SHARED);
	for (int i = 0; i < health->nslots; i++)
	{
		TargetHealth *h = &health->slots[i].h;

		if (!health->slots[i].in_use || h->dboid != MyDatabaseId ||
			strcmp(h->kind, kind) != 0 || (!all && strcmp(h->tenant_id, tenant) != 0))
			continue;
		copies[n++] = *h;
	}
	LWLockRelease(health->lock);

	for (int i = 0; i < n; i++)
	{
		TargetHealth *h = &copies[i];
		Datum		values[15];
		bool		nulls[15] = {0};
		int			requests;
		int			failures;
		double		rate = RateLimiterEffectiveRate(&h->limiter, now);

		CircuitWindowCounts(&h->breaker.window, now, cs.window_ms, &requests, &failures);
		values[0] = CStringGetTextDatum(h->tenant_id);
		values[1] = Int64GetDatum(h->target_id);
		values[2] = CStringGetTextDatum(CircuitStateName(h->breaker.state));
		values[3] = TimestampTzGetDatum(h->breaker.opened_at);
		nulls[3] = h->breaker.opened_at == 0;
		values[4] = TimestampTzGetDatum(h->breaker.next_probe_at);
		nulls[4] = h->breaker.state != CIRCUIT_OPEN;
		values[5] = Int32GetDatum(requests);
		values[6] = Int32GetDatum(failures);
		values[7] = Float8GetDatum(rate);
		nulls[7] = rate <= 0;
		values[8] = Float8GetDatum(RateLimiterTokens(&h->limiter, now));
		nulls[8] = rate <= 0;
		values[9] = Float8GetDatum(RateLimiterBurst(&h->limiter, now));
		nulls[9] = rate <= 0;
		values[10] = Int32GetDatum(h->in_flight);
		values[11] = Int32GetDatum(h->queued);
		values[12] = TimestampTzGetDatum(h->oldest_queued_at);
		nulls[12] = h->oldest_queued_at == 0;
		values[13] = TimestampTzGetDatum(h->breaker.last_success_at);
		nulls[13] = h->breaker.last_success_at == 0;
		values[14] = TimestampTzGetDatum(h->breaker.last_failure_at);
		nulls[14] = h->breaker.last_failure_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
