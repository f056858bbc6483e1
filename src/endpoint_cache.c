/*
 * endpoint_cache.c
 *		Per-backend cache of the endpoints each tenant's events go to, and of the events
 *		they match.
 *
 * Publishing sits on every tracked business write, so it must not query
 * webhook_endpoints for every row, nor try every endpoint's patterns: a tenant may have
 * thousands of endpoints.  This cache holds, per tenant, the endpoints that receive
 * events: the active ones, and those the worker disabled (disabled_at set), whose
 * deliveries the fan-out records as skipped so that enable_webhook() can replay exactly
 * what they missed; an index of their event patterns (pattern_index.c); and the answer
 * for each event name already asked about: the endpoints it goes to, as the int8[] an
 * event row stores, active ones first.  So a publish costs a hash lookup once the event name has
 * been seen, and the first time a walk of the pattern index, whatever the number of
 * endpoints (issue #20; bench/README.md has the figures).
 *
 * Validity rule: a commit that changed a tenant's webhook_endpoints bumps that tenant's
 * generation counter in shared memory (wakeup.c, shared_state.h) after it became
 * visible; a backend that sees a new generation for a tenant it cached drops that
 * tenant's entry, and only that one, so one tenant changing its endpoints in a loop
 * costs the others' publishes nothing.  A TRUNCATE bumps a counter that drops the
 * whole cache.  The counters are read first and the endpoints then under a fresh
 * snapshot, so a change committed in between only causes one extra rebuild, never a
 * stale entry.  Routing therefore uses the endpoints committed when
 * the event is published, whatever the publishing transaction's isolation level.  A
 * transaction that itself changed endpoints bypasses the cache, since only it can see
 * its uncommitted changes.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "endpoint_cache.h"
#include "event_pattern.h"
#include "pattern_index.h"
#include "shared_state.h"
#include "spi_plan.h"
#include "tenant.h"
#include "wakeup.h"

/* Tenants cached at most; past that the cache starts over. */
#define ENDPOINT_CACHE_MAX_TENANTS 4096
/* Event names remembered per tenant; past that the tenant's answers start over. */
#define ENDPOINT_CACHE_MAX_EVENTS 1024

typedef struct CachedEndpoint
{
	int64		id;
	bool		active;			/* false: disabled by the worker */
	Jsonb	   *events;
} CachedEndpoint;

/* The endpoints an event name goes to. */
typedef struct EventTargets
{
	char		event[EVENT_NAME_MAX_LEN + 1];	/* hash key */
	int			count;
	int			nactive;		/* the first nactive ids are active endpoints' */
	ArrayType  *ids;			/* int8[]: active ones, then disabled, each
								 * ascending */
} EventTargets;

typedef struct TenantEndpoints
{
	char		tenant[TENANT_ID_MAX_LEN + 1];	/* hash key */
	uint64		generation;		/* the tenant's generation when loaded */
	MemoryContext cxt;			/* everything below */
	int			count;
	CachedEndpoint *endpoints;	/* by ascending id */
	PatternIndex *patterns;		/* values: positions in endpoints */
	MemoryContext targets_cxt;	/* targets and their arrays */
	HTAB	   *targets;		/* EventTargets by event name */
} TenantEndpoints;

static MemoryContext cache_context = NULL;
static HTAB *cache = NULL;
static uint64 cache_truncated = 0;	/* endpoints_truncated when started */
static SPIPlanPtr load_plan = NULL;

static void
reset_cache(void)
{
	HASHCTL		ctl;

	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(TopMemoryContext, "integration endpoint cache",
											  ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(cache_context);

	ctl.keysize = TENANT_ID_MAX_LEN + 1;
	ctl.entrysize = sizeof(TenantEndpoints);
	ctl.hcxt = cache_context;
	cache = hash_create("integration endpoint cache", 64, &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * Reads the endpoints a tenant's events go to into te, allocating in mcxt.  For the cache
 * (latest = true) they are read under a snapshot taken after the caller read the
 * generation counter: every change whose commit bumped the counter before that is
 * visible, even in a REPEATABLE READ transaction with an older snapshot.
 */
static void
load_tenant(const char *tenant, TenantEndpoints *te, MemoryContext mcxt, bool latest)
{
	Datum		arg = CStringGetTextDatum(tenant);
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			argtypes[1] = {TEXTOID};

		SavedPlan(&load_plan,
				  "SELECT id, events, is_active FROM integration.webhook_endpoints"
				  " WHERE tenant_id = $1 AND deleted_at IS NULL"
				  "   AND (is_active OR disabled_at IS NOT NULL)"
				  " ORDER BY id", 1, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	if (latest)
		rc = SPI_execute_snapshot(load_plan, &arg, NULL, GetLatestSnapshot(), InvalidSnapshot,
								  true, false, 0);
	else
		rc = SPI_execute_plan(load_plan, &arg, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));

	te->count = (int) SPI_processed;
	te->endpoints = MemoryContextAlloc(mcxt, sizeof(CachedEndpoint) * Max(te->count, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Jsonb	   *events;
		MemoryContext old;

		te->endpoints[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		te->endpoints[i].active = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		events = DatumGetJsonbP(SPI_getbinval(tup, desc, 2, &isnull));
		old = MemoryContextSwitchTo(mcxt);
		te->endpoints[i].events = (Jsonb *) palloc(VARSIZE(events));
		memcpy(te->endpoints[i].events, events, VARSIZE(events));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/* Empties te's remembered answers (a new tenant entry's, or a full one's). */
static void
reset_targets(TenantEndpoints *te)
{
	HASHCTL		ctl;

	if (te->targets_cxt == NULL)
		te->targets_cxt = AllocSetContextCreate(te->cxt, "integration event targets",
												ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(te->targets_cxt);
	ctl.keysize = EVENT_NAME_MAX_LEN + 1;
	ctl.entrysize = sizeof(EventTargets);
	ctl.hcxt = te->targets_cxt;
	te->targets = hash_create("integration event targets", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * The ids at positions[0..n) (ascending) of te's endpoints, as an int8[] allocated in
 * mcxt: the active endpoints' first, *nactive of them, then the disabled ones'.
 */
static ArrayType *
ids_array(TenantEndpoints *te, int *positions, int n, MemoryContext mcxt, int *nactive)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	Datum	   *ids = palloc(sizeof(Datum) * Max(n, 1));
	ArrayType  *a;
	int			k = 0;

	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < n; i++)
			if (te->endpoints[positions[i]].active == (pass == 0))
				ids[k++] = Int64GetDatum(te->endpoints[positions[i]].id);
		if (pass == 0)
			*nactive = k;
	}
	a = construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	pfree(ids);
	MemoryContextSwitchTo(old);
	return a;
}

/*
 * What a tenant's cached entry answers for event: found in its targets, or matched
 * through its pattern index and remembered.
 */
static EventTargets *
cached_targets(TenantEndpoints *te, const char *event, int eventlen)
{
	char		key[EVENT_NAME_MAX_LEN + 1];
	EventTargets *t;
	bool		found;
	int		   *positions;
	int			n;

	if (eventlen > EVENT_NAME_MAX_LEN)
	{
		/* No event name: it matches nothing, and is not remembered. */
		t = palloc0(sizeof(EventTargets));
		t->ids = construct_empty_array(INT8OID);
		return t;
	}
	memset(key, 0, sizeof(key));
	memcpy(key, event, eventlen);
	t = hash_search(te->targets, key, HASH_FIND, &found);
	if (found)
		return t;

	if (te->patterns == NULL)
	{
		te->patterns = PatternIndexCreate(te->cxt);
		for (int i = 0; i < te->count; i++)
			PatternIndexAddArray(te->patterns, te->endpoints[i].events, i);
	}
	n = PatternIndexMatch(te->patterns, event, eventlen, &positions);

	if (hash_get_num_entries(te->targets) >= ENDPOINT_CACHE_MAX_EVENTS)
		reset_targets(te);
	t = hash_search(te->targets, key, HASH_ENTER, &found);
	t->count = n;
	t->ids = ids_array(te, positions, n, te->targets_cxt, &t->nactive);
	if (positions)
		pfree(positions);
	return t;
}

/*
 * The endpoints of tenant that subscribe to event and receive it (see the banner), as
 * the int8[] of their ids in *ids: the active ones first, *nactive of them, then those
 * the worker disabled, each in ascending order; returns how many.  The array is the
 * cache's: valid until the next call, and not to be changed.
 */
int
EndpointsMatching(const char *tenant, const char *event, int eventlen, ArrayType **ids,
				  int *nactive)
{
	TenantEndpoints local;
	TenantEndpoints *te;
	EventTargets *t;

	if (integration_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integration is not loaded via shared_preload_libraries"),
				 errdetail("Publishing needs the extension's shared memory."),
				 errhint("Add integration to shared_preload_libraries and restart the server.")));

	if (EndpointsChangedInThisXact())
	{
		/* Read afresh each time, and matched one endpoint after another. */
		int		   *positions;
		int			n = 0;

		load_tenant(tenant, &local, CurrentMemoryContext, false);
		positions = palloc(sizeof(int) * Max(local.count, 1));
		for (int i = 0; i < local.count; i++)
			if (EventPatternsMatch(local.endpoints[i].events, event, eventlen))
				positions[n++] = i;
		*ids = ids_array(&local, positions, n, CurrentMemoryContext, nactive);
		return n;
	}

	{
		uint64		truncated = pg_atomic_read_u64(&integration_shared->endpoints_truncated);
		pg_atomic_uint64 *slot =
		&integration_shared->tenant_endpoints_generation[EndpointGenerationSlot(tenant)];
		uint64		gen;
		bool		found;

		if (cache == NULL || truncated != cache_truncated ||
			hash_get_num_entries(cache) >= ENDPOINT_CACHE_MAX_TENANTS)
		{
			reset_cache();
			cache_truncated = truncated;
		}
		gen = pg_atomic_read_u64(slot);
		te = hash_search(cache, tenant, HASH_FIND, &found);
		if (found && te->generation != gen)
		{
			MemoryContextDelete(te->cxt);
			hash_search(cache, tenant, HASH_REMOVE, NULL);
			found = false;
		}
		if (!found)
		{
			/*
			 * Load first, then enter: an error while loading leaves no half
			 * entry, and its memory goes with the transaction's.  The pattern
			 * index is built when first needed.
			 */
			local.cxt = AllocSetContextCreate(CurrentMemoryContext, "integration tenant endpoints",
											  ALLOCSET_SMALL_SIZES);
			load_tenant(tenant, &local, local.cxt, true);
			local.patterns = NULL;
			local.targets_cxt = NULL;
			reset_targets(&local);
			MemoryContextSetParent(local.cxt, cache_context);
			ereport(DEBUG1,
					(errmsg_internal("endpoint cache: read %d endpoints of tenant \"%s\"",
									 local.count, tenant)));
			te = hash_search(cache, tenant, HASH_ENTER, &found);
			te->generation = gen;
			te->cxt = local.cxt;
			te->count = local.count;
			te->endpoints = local.endpoints;
			te->patterns = local.patterns;
			te->targets_cxt = local.targets_cxt;
			te->targets = local.targets;
		}
	}

	t = cached_targets(te, event, eventlen);
	*ids = t->ids;
	*nactive = t->nactive;
	return t->count;
}
