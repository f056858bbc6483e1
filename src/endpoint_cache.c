/*
 * endpoint_cache.c
 *		Per-backend cache of each tenant's active endpoints and their event patterns.
 *
 * Publishing sits on every tracked business write, so it must not query
 * webhook_endpoints for every row.  This cache holds, per tenant, the id and event
 * patterns of each endpoint that receives events: the active ones, and those the worker
 * disabled (disabled_at set), whose deliveries the fan-out records as skipped so that
 * enable_webhook() can replay exactly what they missed.  Validity rule: a commit that changed
 * webhook_endpoints bumps a generation counter in shared memory (wakeup.c) after it
 * became visible; a backend that sees a new generation drops the whole cache.  The
 * counter is read first and the endpoints then under a fresh snapshot, so a change
 * committed in between only causes one extra rebuild, never a stale entry.  Routing
 * therefore uses the endpoints committed when the event is published, whatever the
 * publishing transaction's isolation level.  A
 * transaction that itself changed endpoints bypasses the cache, since only it can see
 * its uncommitted changes.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "endpoint_cache.h"
#include "event_pattern.h"
#include "shared_state.h"
#include "spi_plan.h"
#include "tenant.h"
#include "wakeup.h"

/* Tenants cached at most; past that the cache starts over. */
#define ENDPOINT_CACHE_MAX_TENANTS 4096

typedef struct CachedEndpoint
{
	int64		id;
	bool		active;			/* false: disabled by the worker */
	Jsonb	   *events;
} CachedEndpoint;

typedef struct TenantEndpoints
{
	char		tenant[TENANT_ID_MAX_LEN + 1];	/* hash key */
	int			count;
	CachedEndpoint *endpoints;
} TenantEndpoints;

static MemoryContext cache_context = NULL;
static HTAB *cache = NULL;
static uint64 cache_generation = 0;
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

/*
 * The ids (as int8 Datums, palloc'd in the caller's context) of tenant's endpoints
 * that receive events (see the banner) whose event patterns match event: the active
 * ones first, *nactive of them, then those the worker disabled.  Returns how many.
 */
int
EndpointsMatching(const char *tenant, const char *event, int eventlen, Datum **ids,
				  int *nactive)
{
	TenantEndpoints local;
	TenantEndpoints *te;
	int			n = 0;

	if (integration_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integration is not loaded via shared_preload_libraries"),
				 errdetail("Publishing needs the extension's shared memory."),
				 errhint("Add integration to shared_preload_libraries and restart the server.")));

	if (EndpointsChangedInThisXact())
	{
		te = &local;
		load_tenant(tenant, te, CurrentMemoryContext, false);
	}
	else
	{
		uint64		gen = pg_atomic_read_u64(&integration_shared->endpoints_generation);
		bool		found;

		if (cache == NULL || gen != cache_generation ||
			hash_get_num_entries(cache) >= ENDPOINT_CACHE_MAX_TENANTS)
		{
			reset_cache();
			cache_generation = gen;
		}
		te = hash_search(cache, tenant, HASH_FIND, &found);
		if (!found)
		{
			/*
			 * Load first, then enter: an error while loading leaves no half
			 * entry.
			 */
			load_tenant(tenant, &local, cache_context, true);
			te = hash_search(cache, tenant, HASH_ENTER, &found);
			te->count = local.count;
			te->endpoints = local.endpoints;
		}
	}

	*ids = palloc(sizeof(Datum) * Max(te->count, 1));
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < te->count; i++)
			if (te->endpoints[i].active == (pass == 0) &&
				EventPatternsMatch(te->endpoints[i].events, event, eventlen))
				(*ids)[n++] = Int64GetDatum(te->endpoints[i].id);
		if (pass == 0)
			*nactive = n;
	}
	return n;
}
