/*
 * endpoint_cache.c
 *		Per-backend cache of the endpoints each tenant's events go to, and of the events
 *		they match.
 *
 * Publishing sits on every tracked business write, so it must not query
 * webhook_endpoints for every row, nor try every endpoint's patterns: a tenant may have
 * thousands of endpoints.  This cache holds, per tenant, the answer for each event name
 * already asked about: the endpoints it goes to, as the int8[] an event row stores,
 * active ones first.  Those are the active endpoints whose patterns match, and the
 * matching ones the worker disabled (disabled_at set), whose deliveries the fan-out
 * records as skipped so that enable_webhook() can replay exactly what they missed.  So
 * a publish costs a hash lookup once the event name has been seen.
 *
 * The first time, the answer comes one of two ways, so that it costs the same whatever
 * the number of the tenant's endpoints (issue #20; bench/README.md has the figures).  A
 * tenant's first event reads at most ENDPOINT_CACHE_WHOLE_MAX + 1 of its receiving
 * endpoints.  If that is all of them, they are kept with an index of their patterns
 * (pattern_index.c), and a new event name costs a walk of it.  Otherwise none is kept,
 * and each new event name is one lookup in webhook_endpoints_pattern_keys_idx, a GIN
 * index of every pattern's key (pattern_keys.c): the candidates, endpoints whose
 * patterns share the name's length and first segments, are read and matched with
 * EventPatternsMatch().  Endpoints of other event names are never read; a new backend,
 * or every backend after an endpoint change, pays for what the event matches, not for
 * the tenant's size.
 *
 * Validity rule: a commit that changed a tenant's webhook_endpoints bumps that tenant's
 * generation counter in shared memory (wakeup.c, shared_state.h) after it became
 * visible; a backend that sees a new generation for a tenant it cached drops that
 * tenant's entry, and only that one, so one tenant changing its endpoints in a loop
 * costs the others' publishes nothing.  A TRUNCATE bumps a counter that drops the
 * whole cache.  The counters are read first and the endpoints then under a fresh
 * snapshot, so a change committed in between only causes one extra rebuild, never a
 * stale entry.  Routing therefore uses the endpoints committed when the event is
 * published, whatever the publishing transaction's isolation level.  An answer looked
 * up later for a large tenant is read under a snapshot taken after its own publish
 * read the counters, so the same holds for it.  A transaction that itself changed
 * endpoints bypasses the cache, since only it can see its uncommitted changes: it
 * looks each event up in the index under its own snapshot.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "endpoint_cache.h"
#include "event_pattern.h"
#include "pattern_index.h"
#include "pattern_keys.h"
#include "shared_state.h"
#include "tenant.h"
#include "wakeup.h"

/* Tenants cached at most; past that the cache starts over. */
#define ENDPOINT_CACHE_MAX_TENANTS 4096
/* Event names remembered per tenant; past that the tenant's answers start over. */
#define ENDPOINT_CACHE_MAX_EVENTS 1024

/*
 * Receiving endpoints a tenant may have and still be read whole; a tenant with more is
 * asked about each event name through the index of patterns (see the banner).
 */
#define ENDPOINT_CACHE_WHOLE_MAX 100

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
	bool		whole;			/* false: more than ENDPOINT_CACHE_WHOLE_MAX,
								 * not read; each event name looked up */
	int			count;
	CachedEndpoint *endpoints;	/* by ascending id; whole only */
	PatternIndex *patterns;		/* values: positions in endpoints */
	MemoryContext targets_cxt;	/* targets and their arrays */
	HTAB	   *targets;		/* EventTargets by event name */
} TenantEndpoints;

static MemoryContext cache_context = NULL;
static HTAB *cache = NULL;
static uint64 cache_truncated = 0;	/* endpoints_truncated when started */

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

/* The oid of relation name of the integration schema. */
static Oid
integration_relid(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("integration", false));

	if (!OidIsValid(relid))
		elog(ERROR, "integration.%s does not exist", name);
	return relid;
}

/* The columns of webhook_endpoints that routing reads. */
typedef struct EndpointColumns
{
	AttrNumber	tenant_id;
	AttrNumber	id;
	AttrNumber	events;
	AttrNumber	is_active;
	AttrNumber	disabled_at;
	AttrNumber	deleted_at;
} EndpointColumns;

/* The number of the column name of desc. */
static AttrNumber
attnum_of(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped &&
			strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
			return i + 1;
	elog(ERROR, "integration.webhook_endpoints has no column %s", name);
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

static void
endpoint_columns(Relation rel, EndpointColumns *cols)
{
	TupleDesc	desc = RelationGetDescr(rel);

	cols->tenant_id = attnum_of(desc, "tenant_id");
	cols->id = attnum_of(desc, "id");
	cols->events = attnum_of(desc, "events");
	cols->is_active = attnum_of(desc, "is_active");
	cols->disabled_at = attnum_of(desc, "disabled_at");
	cols->deleted_at = attnum_of(desc, "deleted_at");
}

/*
 * If the row in slot is an endpoint that receives events, active or disabled by the
 * worker (not deleted, not disabled through the API), fills *e with its events copied
 * into mcxt, and returns true.
 */
static bool
receiving_endpoint(TupleTableSlot *slot, const EndpointColumns *cols, CachedEndpoint *e,
				   MemoryContext mcxt)
{
	bool		isnull;
	bool		active;
	Jsonb	   *events;
	MemoryContext old;

	(void) slot_getattr(slot, cols->deleted_at, &isnull);
	if (!isnull)
		return false;
	active = DatumGetBool(slot_getattr(slot, cols->is_active, &isnull));
	(void) slot_getattr(slot, cols->disabled_at, &isnull);
	if (!active && isnull)
		return false;
	e->id = DatumGetInt64(slot_getattr(slot, cols->id, &isnull));
	e->active = active;
	old = MemoryContextSwitchTo(mcxt);
	events = DatumGetJsonbP(slot_getattr(slot, cols->events, &isnull));
	e->events = (Jsonb *) palloc(VARSIZE(events));
	memcpy(e->events, events, VARSIZE(events));
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Reads the endpoints a tenant's events go to into te, by ascending id, allocating in
 * mcxt, if there are at most ENDPOINT_CACHE_WHOLE_MAX of them; else leaves te->whole
 * false and reads no more than one past that, so a tenant's first event costs the same
 * whatever the number of its endpoints.  They are read under a snapshot taken after
 * the caller read the generation counter: every change whose commit bumped the counter
 * before that is visible, even in a REPEATABLE READ transaction with an older snapshot.
 *
 * A walk of the primary key (tenant_id, id) that stops there, not a query: with or
 * without statistics the planner found plans that read all of the tenant's rows, or
 * other tenants' (a sort before the limit, a sequential scan).  It reads the rows of
 * the tenant it is given whoever the caller is, without row-level security: callers
 * publish only for a tenant whose rows they may see (publish.c), so they are the rows
 * the policy would show.
 */
static void
load_tenant(const char *tenant, TenantEndpoints *te, MemoryContext mcxt)
{
	Relation	rel = table_open(integration_relid("webhook_endpoints"), AccessShareLock);
	Relation	pk;
	EndpointColumns cols;
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	MemoryContext probe_cxt = AllocSetContextCreate(CurrentMemoryContext,
													"integration endpoint probe",
													ALLOCSET_SMALL_SIZES);
	CachedEndpoint *found = MemoryContextAlloc(probe_cxt, sizeof(CachedEndpoint) *
											   (ENDPOINT_CACHE_WHOLE_MAX + 1));
	int			n = 0;
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot;

	endpoint_columns(rel, &cols);
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		elog(ERROR, "integration.webhook_endpoints has no primary key");
	pk = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(tenant));
	scan = index_beginscan(rel, pk, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(rel, NULL);
	while (n <= ENDPOINT_CACHE_WHOLE_MAX && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (receiving_endpoint(slot, &cols, &found[n], probe_cxt))
			n++;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(pk, AccessShareLock);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snapshot);

	te->whole = n <= ENDPOINT_CACHE_WHOLE_MAX;
	te->count = 0;
	te->endpoints = NULL;
	if (te->whole)
	{
		te->count = n;
		te->endpoints = MemoryContextAlloc(mcxt, sizeof(CachedEndpoint) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			te->endpoints[i] = found[i];
			te->endpoints[i].events = MemoryContextAlloc(mcxt, VARSIZE(found[i].events));
			memcpy(te->endpoints[i].events, found[i].events, VARSIZE(found[i].events));
		}
	}
	MemoryContextDelete(probe_cxt);
}

static int
compare_endpoint_ids(const void *a, const void *b)
{
	int64		x = ((const CachedEndpoint *) a)->id;
	int64		y = ((const CachedEndpoint *) b)->id;

	return (x > y) - (x < y);
}

/*
 * Reads into te, by ascending id, allocating in CurrentMemoryContext, the endpoints of
 * tenant that receive event, found through webhook_endpoints_pattern_keys_idx: the
 * candidates its keys select (pattern_keys.c), each tried with EventPatternsMatch().
 * Costs what the candidates cost, whatever the number of the tenant's other endpoints.
 * Under the latest snapshot for the cache (latest = true; see load_tenant()), else
 * under the active one, which sees the transaction's own changes.
 *
 * A bitmap scan of the index done here rather than a query, as load_tenant() walks
 * the primary key: a new backend would otherwise plan the query first, which costs
 * more than the lookup (opening every index of the table).  The rows are those of the
 * tenant it is given (compared again here, though the keys hold it), without
 * row-level security, as in load_tenant().
 */
static void
load_candidates(const char *tenant, const char *event, int eventlen, TenantEndpoints *te,
				bool latest)
{
	Relation	rel = table_open(integration_relid("webhook_endpoints"), AccessShareLock);
	Relation	gin = index_open(integration_relid("webhook_endpoints_pattern_keys_idx"),
								 AccessShareLock);
	EndpointColumns cols;
	Snapshot	snapshot = RegisterSnapshot(latest ? GetLatestSnapshot() :
											ActiveSnapshotSet() ? GetActiveSnapshot() :
											GetTransactionSnapshot());
	ScanKeyData key;
	IndexScanDesc scan;
	TIDBitmap  *tbm = tbm_create(work_mem * 1024L, NULL);
	TBMIterator *iterator;
	TBMIterateResult *page;
	struct IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	int			max = 8;

	endpoint_columns(rel, &cols);
	te->count = 0;
	te->endpoints = palloc(sizeof(CachedEndpoint) * max);

	/* The array operator && of array_ops, strategy 1 (GinOverlapStrategy). */
	ScanKeyEntryInitialize(&key, 0, 1, 1, InvalidOid, gin->rd_indcollation[0],
						   F_ARRAYOVERLAP,
						   PointerGetDatum(EventNameKeys(tenant, strlen(tenant), event,
														 eventlen)));
	scan = index_beginscan_bitmap(gin, snapshot, 1);
	index_rescan(scan, &key, 1, NULL, 0);
	(void) index_getbitmap(scan, tbm);
	index_endscan(scan);

	fetch = table_index_fetch_begin(rel);
	slot = table_slot_create(rel, NULL);
	iterator = tbm_begin_iterate(tbm);
	while ((page = tbm_iterate(iterator)) != NULL)
	{
		/*
		 * A lossy page: every line pointer, each a HOT chain's start or
		 * nothing.
		 */
		int			n = page->ntuples >= 0 ? page->ntuples : MaxHeapTuplesPerPage;

		for (int i = 0; i < n; i++)
		{
			ItemPointerData tid;
			bool		call_again = false;
			bool		isnull;
			text	   *row_tenant;

			CHECK_FOR_INTERRUPTS();
			ItemPointerSet(&tid, page->blockno,
						   page->ntuples >= 0 ? page->offsets[i] : FirstOffsetNumber + i);
			if (!table_index_fetch_tuple(fetch, &tid, snapshot, slot, &call_again, NULL))
				continue;
			row_tenant = DatumGetTextPP(slot_getattr(slot, cols.tenant_id, &isnull));
			if (VARSIZE_ANY_EXHDR(row_tenant) != strlen(tenant) ||
				memcmp(VARDATA_ANY(row_tenant), tenant, strlen(tenant)) != 0)
				continue;
			if (te->count == max)
			{
				max *= 2;
				te->endpoints = repalloc(te->endpoints, sizeof(CachedEndpoint) * max);
			}
			if (receiving_endpoint(slot, &cols, &te->endpoints[te->count], CurrentMemoryContext) &&
				EventPatternsMatch(te->endpoints[te->count].events, event, eventlen))
				te->count++;
		}
	}
	tbm_end_iterate(iterator);
	tbm_free(tbm);
	ExecDropSingleTupleTableSlot(slot);
	table_index_fetch_end(fetch);
	index_close(gin, AccessShareLock);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snapshot);
	if (te->count > 1)
		qsort(te->endpoints, te->count, sizeof(CachedEndpoint), compare_endpoint_ids);
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
 * The ids at positions[0..n) (ascending) of te's endpoints, or of its first n endpoints
 * when positions is NULL, as an int8[] allocated in mcxt: the active endpoints' first,
 * *nactive of them, then the disabled ones'.
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
		{
			CachedEndpoint *e = &te->endpoints[positions ? positions[i] : i];

			if (e->active == (pass == 0))
				ids[k++] = Int64GetDatum(e->id);
		}
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
	int		   *positions = NULL;
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

	if (hash_get_num_entries(te->targets) >= ENDPOINT_CACHE_MAX_EVENTS)
		reset_targets(te);
	if (te->whole)
	{
		if (te->patterns == NULL)
		{
			te->patterns = PatternIndexCreate(te->cxt);
			for (int i = 0; i < te->count; i++)
				PatternIndexAddArray(te->patterns, te->endpoints[i].events, i);
		}
		n = PatternIndexMatch(te->patterns, event, eventlen, &positions);
		t = hash_search(te->targets, key, HASH_ENTER, &found);
		t->count = n;
		t->ids = ids_array(te, positions, n, te->targets_cxt, &t->nactive);
	}
	else
	{
		/* Looked up before the entry is made: an error leaves no half entry. */
		TenantEndpoints matched;

		load_candidates(te->tenant, event, eventlen, &matched, true);
		n = matched.count;
		t = hash_search(te->targets, key, HASH_ENTER, &found);
		t->count = n;
		t->ids = ids_array(&matched, NULL, n, te->targets_cxt, &t->nactive);
	}
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
		/*
		 * Read afresh each time under the transaction's snapshot, which alone
		 * sees its changes: the candidates the index of patterns selects,
		 * each matched.
		 */
		if (eventlen > EVENT_NAME_MAX_LEN)
			local.count = 0;
		else
			load_candidates(tenant, event, eventlen, &local, false);
		*ids = ids_array(&local, NULL, local.count, CurrentMemoryContext, nactive);
		return local.count;
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
			load_tenant(tenant, &local, local.cxt);
			local.patterns = NULL;
			local.targets_cxt = NULL;
			reset_targets(&local);
			MemoryContextSetParent(local.cxt, cache_context);
			if (local.whole)
				ereport(DEBUG1,
						(errmsg_internal("endpoint cache: read %d endpoints of tenant \"%s\"",
										 local.count, tenant)));
			else
				ereport(DEBUG1,
						(errmsg_internal("endpoint cache: tenant \"%s\" has more than %d endpoints, each event name looked up",
										 tenant, ENDPOINT_CACHE_WHOLE_MAX)));
			te = hash_search(cache, tenant, HASH_ENTER, &found);
			te->whole = local.whole;
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

PG_FUNCTION_INFO_V1(integration_endpoint_cache_state);

/*
 * integration._endpoint_cache_state(tenant text) RETURNS text: what this backend's cache
 * holds for tenant, NULL when nothing (for tests).
 */
Datum
integration_endpoint_cache_state(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TenantEndpoints *te = NULL;
	bool		found = false;

	if (cache != NULL && strlen(tenant) <= TENANT_ID_MAX_LEN)
		te = hash_search(cache, tenant, HASH_FIND, &found);
	if (!found)
		PG_RETURN_NULL();
	if (te->whole)
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("read whole: %d endpoints, %ld event names",
												  te->count, hash_get_num_entries(te->targets))));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("looked up by event name: %ld event names",
											  hash_get_num_entries(te->targets))));
}
