/*
 * delivery_fan_out.c
 *		Published events fanned out into deliveries, one per endpoint, claimed at once
 *		where the endpoint has room in the worker.
 *
 * Fresh events are fanned out straight into claimed deliveries ('sending' with a
 * lease), so a first attempt costs one INSERT and one UPDATE of the delivery row, not
 * two UPDATEs more.  The fan-out takes its events by deleting their rows of
 * webhook_event_queue by ctid, which a concurrent taker would find gone and skip, so
 * an event is fanned out once however many run it.  StoreFanOutAndClaim() runs in
 * phases, each a function of its own, that hand one FanOutBatch on: take the events,
 * lock their endpoints, plan the deliveries, queue back what must wait, insert and
 * claim.  An endpoint the worker disabled keeps getting deliveries, recorded 'skipped'
 * without a request, so that enable_webhook() can replay exactly those.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "delivery_claim.h"
#include "delivery_fan_out.h"
#include "delivery_store.h"
#include "endpoint_settings.h"
#include "spi_plan.h"
#include "subtransaction.h"

static SPIPlanPtr fan_out_plan = NULL;
static SPIPlanPtr fan_out_lanes_plan = NULL;
static SPIPlanPtr fan_out_insert_plan = NULL;
static SPIPlanPtr fan_out_insert_safe_plan = NULL;
static SPIPlanPtr fan_out_put_back_plan = NULL;
static SPIPlanPtr fan_out_locked_events_plan = NULL;
static SPIPlanPtr newest_queued_plan = NULL;

/* The plans kept here, and the tables whose size their shape depends on. */
static const StorePlanSlot plans[] = {
	{&fan_out_plan, STORE_EVENT_QUEUE | STORE_EVENTS},
	{&fan_out_lanes_plan, STORE_EVENT_QUEUE | STORE_EVENTS},
	{&fan_out_insert_plan, 0},
	{&fan_out_insert_safe_plan, 0},
	{&fan_out_put_back_plan, 0},
	{&fan_out_locked_events_plan, STORE_EVENTS},
	{&newest_queued_plan, STORE_EVENT_QUEUE},
};

void
FanOutForgetPlans(int tables)
{
	StoreForgetPlansOf(plans, lengthof(plans), tables);
}

/* A published event taken for fan-out, and the endpoints it goes to. */
typedef struct FanOutEvent
{
	char	   *tenant_id;
	int64		id;
	char	   *message_id;
	char	   *event;
	char	   *payload;
	int			payload_len;
	int64	   *endpoint_ids;
	int			nendpoints;
	TimestampTz created_at;
} FanOutEvent;

/* An endpoint some event of the batch goes to, with what its requests need. */
typedef struct FanOutEndpoint
{
	EndpointSettingsKey key;	/* hash key */
	EndpointSettings *settings; /* url NULL: no such endpoint (hard-deleted) */
	bool		locked;			/* someone else holds it locked */
	int			room;			/* claims it may still take; -1: not asked yet */
} FanOutEndpoint;

/* A delivery the fan-out creates: which tenant's event and endpoint. */
typedef struct FanOutKey
{
	int64		event_id;
	int64		endpoint_id;
	const char *tenant_id;
} FanOutKey;

typedef struct FanOutCandidate
{
	FanOutKey	key;			/* hash key */
	FanOutEvent *ev;
	FanOutEndpoint *ep;
} FanOutCandidate;

static uint32
delivery_key_hash(const void *key, Size keysize)
{
	const FanOutKey *k = key;

	return hash_combine(hash_combine(hash_bytes_uint32((uint32) k->event_id ^ (uint32) (k->event_id >> 32)),
									 hash_bytes_uint32((uint32) k->endpoint_id ^ (uint32) (k->endpoint_id >> 32))),
						hash_bytes((const unsigned char *) k->tenant_id, strlen(k->tenant_id)));
}

static int
delivery_key_match(const void *a, const void *b, Size keysize)
{
	const FanOutKey *x = a;
	const FanOutKey *y = b;

	return x->event_id == y->event_id && x->endpoint_id == y->endpoint_id &&
		strcmp(x->tenant_id, y->tenant_id) == 0 ? 0 : 1;
}

/* Skipped: for an endpoint the worker disabled (see plan_deliveries()). */
#define FAN_OUT_INSERT \
	"INSERT INTO integration.deliveries (tenant_id, event_id, endpoint_id, status," \
	"       next_attempt_at, lease_expires_at, created_at, last_error)" \
	" SELECT r.tenant_id, r.event_id, r.endpoint_id," \
	"        CASE WHEN r.claimed THEN 'sending' WHEN r.skipped THEN 'skipped' ELSE 'pending' END," \
	"        CASE WHEN r.claimed OR r.skipped THEN NULL ELSE pg_catalog.now() END," \
	"        CASE WHEN r.claimed THEN $5 END, r.created_at," \
	"        CASE WHEN r.skipped THEN '" DELIVERY_SKIPPED_ERROR "' END" \
	"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)," \
	"                   pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($6)," \
	"                   pg_catalog.unnest($7))" \
	"        AS r(tenant_id, event_id, endpoint_id, created_at, claimed, skipped)"
#define FAN_OUT_RETURNING " RETURNING ctid, id, event_id, endpoint_id, tenant_id, lease_expires_at IS NOT NULL"

/*
 * Inserts the fan-out's deliveries (tenants, event ids, endpoint ids, created_at, lease
 * expiry, claimed, skipped in args) and leaves them in SPI_tuptable.
 *
 * A delivery can only exist already if someone inserted it by hand for an event still
 * to be fanned out, so the plain INSERT runs first, in a subtransaction: ON CONFLICT's
 * speculative insertion would cost every delivery an extra index probe and WAL record.
 * If it hits a unique key, the batch is inserted again with ON CONFLICT DO NOTHING.
 */
typedef struct FanOutInsert
{
	Datum	   *args;
	int			rc;				/* out */
} FanOutInsert;

static void
run_fan_out_insert(void *arg)
{
	FanOutInsert *fi = arg;

	fi->rc = SPI_execute_plan(fan_out_insert_plan, fi->args, NULL, false, 0);
}

static void
insert_fanned_out(Datum *args)
{
	static const Oid types[7] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZOID, BOOLARRAYOID, BOOLARRAYOID};
	FanOutInsert fi = {args, 0};
	ErrorData  *edata;

	SavedPlan(&fan_out_insert_plan, FAN_OUT_INSERT FAN_OUT_RETURNING,
			  7, (Oid *) types, CURSOR_OPT_GENERIC_PLAN);
	if (!RunInSubtransaction(run_fan_out_insert, &fi, CurrentMemoryContext, &edata))
	{
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		SavedPlan(&fan_out_insert_safe_plan,
				  FAN_OUT_INSERT
				  " ON CONFLICT DO NOTHING"
				  FAN_OUT_RETURNING,
				  7, (Oid *) types, CURSOR_OPT_GENERIC_PLAN);
		fi.rc = SPI_execute_plan(fan_out_insert_safe_plan, args, NULL, false, 0);
	}
	if (fi.rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "creating deliveries failed: %s", SPI_result_code_string(fi.rc));
}

/* One fan-out batch, handed from phase to phase of StoreFanOutAndClaim(). */
typedef struct FanOutBatch
{
	ClaimList  *list;			/* claims go here; the batch's strings live in
								 * its context */
	FanOutEvent *events;		/* the events read */
	int			nevents;
	HTAB	   *endpoints;		/* FanOutEndpoint by tenant and id */
	HTAB	   *candidates;		/* FanOutCandidate by tenant, event and
								 * endpoint */
	char	  **back_tenants;	/* events to queue again: locked, or an
								 * endpoint locked */
	int64	   *back_ids;
	int			nback;
	/* The deliveries to insert, as the insert's arrays. */
	int			ncand;
	char	  **tenants;
	int64	   *event_ids;
	int64	   *endpoint_ids;
	Datum	   *created;
	Datum	   *claimed;
	Datum	   *skipped;
} FanOutBatch;

static void
put_back_later(FanOutBatch *b, char *tenant_id, int64 event_id)
{
	b->back_tenants[b->nback] = tenant_id;
	b->back_ids[b->nback++] = event_id;
}

/*
 * Phase 1: takes the lanes' events: their queue rows, oldest event first in each lane,
 * and the events themselves, locked FOR KEY SHARE SKIP LOCKED (as the foreign key to
 * them will be).  Within one statement the lanes' row locks are this transaction's
 * own, so a row in both is not skipped by either: the UNION takes it once.  Leaves the
 * rows in SPI_tuptable and returns how many queue rows were taken.
 */
static int
take_events(FanOutLanes *lanes, int64 fresh_from)
{
	Oid			types[4] = {INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		args[4];
	SPIPlanPtr	plan;

	/* Most batches have no fresh lane: a statement without it plans no UNION. */
#define TAKE_EVENTS(from, ctids) \
	"WITH " from ", taken AS (" \
	"  DELETE FROM integration.webhook_event_queue q" \
	"   WHERE q.ctid = ANY (ARRAY(" ctids "))" \
	"  RETURNING q.tenant_id, q.event_id)" \
	" SELECT e.tenant_id, e.id, e.event, e.payload, e.endpoint_ids, e.created_at," \
	"        t.event_id, t.tenant_id, e.message_id" \
	"   FROM taken t" \
	"   LEFT JOIN LATERAL (SELECT * FROM integration.webhook_events e" \
	"                       WHERE e.tenant_id = t.tenant_id AND e.id = t.event_id" \
	"                       LIMIT 1 FOR KEY SHARE SKIP LOCKED) e ON true"
#define BACKLOG_LANE \
	"backlog AS (" \
	"  SELECT p.ctid FROM integration.webhook_event_queue p" \
	"   WHERE p.event_id > $2" \
	"   ORDER BY p.event_id LIMIT $1" \
	"   FOR UPDATE SKIP LOCKED)"
#define FRESH_LANE \
	"fresh AS (" \
	"  SELECT p.ctid FROM integration.webhook_event_queue p" \
	"   WHERE p.event_id > $3" \
	"   ORDER BY p.event_id LIMIT $4" \
	"   FOR UPDATE SKIP LOCKED)"
	if (lanes->fresh_limit > 0)
		plan = SavedPlan(&fan_out_lanes_plan,
						 TAKE_EVENTS(BACKLOG_LANE ", " FRESH_LANE,
									 "SELECT ctid FROM backlog UNION SELECT ctid FROM fresh"),
						 4, types, CURSOR_OPT_GENERIC_PLAN);
	else
		plan = SavedPlan(&fan_out_plan, TAKE_EVENTS(BACKLOG_LANE, "SELECT ctid FROM backlog"),
						 2, types, CURSOR_OPT_GENERIC_PLAN);
#undef TAKE_EVENTS
#undef BACKLOG_LANE
#undef FRESH_LANE
	args[0] = Int64GetDatum(Min(lanes->limit, STORE_BATCH));
	args[1] = Int64GetDatum(lanes->after);
	args[2] = Int64GetDatum(fresh_from);
	args[3] = Int64GetDatum(Min(lanes->fresh_limit, STORE_BATCH));
	RunPlan(plan, args, false, SPI_OK_SELECT, "fan-out");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													 7, &isnull));

		/*
		 * Above the fresh lane's start, an event is the fresh lane's, whoever
		 * took it.
		 */
		if (id > fresh_from)
		{
			lanes->fresh_taken++;
			lanes->fresh_after = Max(lanes->fresh_after, id);
		}
		else
		{
			lanes->taken++;
			lanes->after = Max(lanes->after, id);
		}
	}
	return (int) SPI_processed;
}

/*
 * Phase 1, continued: copies the events in SPI_tuptable into the batch, and notes
 * each endpoint they name once.  An event the statement could not read was deleted
 * (its queue row went with it) or is locked by someone else: a plain read tells which,
 * and a locked one goes back to the queue.
 */
static void
read_taken_events(FanOutBatch *b, int taken)
{
	char	  **unread_tenants = palloc(sizeof(char *) * taken);
	int64	   *unread_ids = palloc(sizeof(int64) * taken);
	int			nunread = 0;

	b->events = palloc(sizeof(FanOutEvent) * taken);
	b->nevents = 0;
	for (int i = 0; i < taken; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		FanOutEvent *ev = &b->events[b->nevents];
		bool		isnull;
		ArrayType  *arr;
		Datum	   *elems;
		bool	   *elem_nulls;
		int			nelems;
		MemoryContext old;

		(void) SPI_getbinval(tup, desc, 2, &isnull);
		if (isnull)
		{
			unread_tenants[nunread] = ResultText(tup, desc, 8, NULL);
			unread_ids[nunread++] = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
			continue;
		}
		b->nevents++;
		old = MemoryContextSwitchTo(b->list->mcxt);
		ev->tenant_id = ResultText(tup, desc, 1, NULL);
		ev->event = ResultText(tup, desc, 3, NULL);
		ev->payload = ResultText(tup, desc, 4, &ev->payload_len);
		ev->message_id = ResultText(tup, desc, 9, NULL);
		MemoryContextSwitchTo(old);
		ev->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		ev->created_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 6, &isnull));
		arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull));
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &elem_nulls, &nelems);
		ev->endpoint_ids = palloc(sizeof(int64) * Max(nelems, 1));
		ev->nendpoints = 0;
		for (int j = 0; j < nelems; j++)
		{
			EndpointSettingsKey key;
			bool		found;
			FanOutEndpoint *ep;

			/*
			 * Refused by a CHECK constraint; an event written before it names
			 * no one.
			 */
			if (elem_nulls[j])
				continue;
			key.id = DatumGetInt64(elems[j]);
			key.tenant_id = ev->tenant_id;
			ep = hash_search(b->endpoints, &key, HASH_ENTER, &found);
			if (!found)
				ep->settings = NULL;
			ev->endpoint_ids[ev->nendpoints++] = key.id;
		}
	}

	b->back_tenants = palloc(sizeof(char *) * Max(taken, 1));
	b->back_ids = palloc(sizeof(int64) * Max(taken, 1));
	b->nback = 0;
	if (nunread > 0)
	{
		Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
		Datum		args[2];

		args[0] = TextArrayParam(unread_tenants, nunread);
		args[1] = Int8ArrayParam(unread_ids, nunread);
		SavedPlan(&fan_out_locked_events_plan,
				  "SELECT e.tenant_id, e.id"
				  "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(tenant_id, id)"
				  "  JOIN LATERAL (SELECT e.tenant_id, e.id FROM integration.webhook_events e"
				  "                 WHERE e.tenant_id = k.tenant_id AND e.id = k.id LIMIT 1) e ON true",
				  2, types, CURSOR_OPT_GENERIC_PLAN);
		RunPlan(fan_out_locked_events_plan, args, false, SPI_OK_SELECT, "finding locked events");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;

			put_back_later(b, ResultText(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, NULL),
						   DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													   SPI_tuptable->tupdesc, 2, &isnull)));
		}
	}
}

/*
 * Phase 2: reads and locks each endpoint once, FOR KEY SHARE as the foreign key will:
 * an endpoint deleted first gets no delivery, and a delete that comes later waits for
 * this transaction and then finds the deliveries it made.  SKIP LOCKED: an endpoint
 * someone else holds locked is not waited for but marked, and a plain read tells it
 * from one that does not exist.
 */
static void
lock_endpoints(FanOutBatch *b)
{
	EndpointSettings *eps = palloc(sizeof(EndpointSettings) *
								   Max(hash_get_num_entries(b->endpoints), 1));
	EndpointSettings *again;
	int			nagain = 0;
	HASH_SEQ_STATUS seq;
	FanOutEndpoint *ep;
	int			n = 0;

	hash_seq_init(&seq, b->endpoints);
	while ((ep = hash_seq_search(&seq)) != NULL)
	{
		eps[n].tenant_id = ep->key.tenant_id;
		eps[n].id = ep->key.id;
		ep->settings = &eps[n++];
		ep->locked = false;
		ep->room = -1;
	}
	StoreLockEndpoints(eps, n, b->list->mcxt);

	again = palloc(sizeof(EndpointSettings) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (eps[i].url == NULL)
			again[nagain++] = eps[i];
	if (nagain == 0)
		return;
	StoreReadEndpoints(again, nagain, CurrentMemoryContext);
	for (int i = 0; i < nagain; i++)
	{
		EndpointSettingsKey key = {again[i].id, again[i].tenant_id};

		if (again[i].url != NULL)
			((FanOutEndpoint *) hash_search(b->endpoints, &key, HASH_FIND, NULL))->locked = true;
	}
}

/*
 * Names the endpoints of the batch left with room for less than another batch
 * (lanes->short_of_room): the next batch could not claim all it holds for them.
 */
static void
note_short_of_room(FanOutBatch *b, FanOutLanes *lanes)
{
	int			batch = Max(lanes->limit, lanes->fresh_limit);
	HASH_SEQ_STATUS seq;
	FanOutEndpoint *ep;

	hash_seq_init(&seq, b->endpoints);
	while ((ep = hash_seq_search(&seq)) != NULL)
	{
		/* Not asked: no delivery to make, or skipped (disabled). */
		if (ep->room < 0 || ep->room >= batch)
			continue;
		if (lanes->nshort < FANOUT_SHORT_MAX)
			lanes->short_of_room[lanes->nshort++] = ep->key;
		else
			lanes->short_more = true;
	}
}

/*
 * Phase 3: one delivery per event and endpoint of the same tenant (an id listed twice
 * counts once), claimed while its endpoint has room (room(), asked once per endpoint),
 * else pending.  An event with an endpoint someone holds locked (it may be on its way
 * out) goes back to the queue whole, for a later fan-out.
 */
static void
plan_deliveries(FanOutBatch *b, FanOutLanes *lanes, FanOutRoom room, void *room_arg)
{
	int			max = 0;

	for (int i = 0; i < b->nevents; i++)
		max += b->events[i].nendpoints;
	b->candidates = StoreBatchHash("integration fan-out deliveries", 256, sizeof(FanOutKey),
								   sizeof(FanOutCandidate), delivery_key_hash, delivery_key_match);
	b->tenants = palloc(sizeof(char *) * Max(max, 1));
	b->event_ids = palloc(sizeof(int64) * Max(max, 1));
	b->endpoint_ids = palloc(sizeof(int64) * Max(max, 1));
	b->created = palloc(sizeof(Datum) * Max(max, 1));
	b->claimed = palloc(sizeof(Datum) * Max(max, 1));
	b->skipped = palloc(sizeof(Datum) * Max(max, 1));
	b->ncand = 0;

	for (int i = 0; i < b->nevents; i++)
	{
		FanOutEvent *ev = &b->events[i];
		bool		wait = false;

		for (int j = 0; j < ev->nendpoints; j++)
		{
			EndpointSettingsKey epkey = {ev->endpoint_ids[j], ev->tenant_id};
			FanOutEndpoint *ep = hash_search(b->endpoints, &epkey, HASH_FIND, NULL);

			wait = wait || (ep != NULL && ep->locked);
		}
		if (wait)
		{
			put_back_later(b, ev->tenant_id, ev->id);
			continue;
		}
		for (int j = 0; j < ev->nendpoints; j++)
		{
			EndpointSettingsKey epkey = {ev->endpoint_ids[j], ev->tenant_id};
			FanOutEndpoint *ep = hash_search(b->endpoints, &epkey, HASH_FIND, NULL);
			FanOutKey	key;
			FanOutCandidate *cand;
			bool		found;
			int			k = b->ncand;

			if (ep == NULL || ep->settings->url == NULL)
				continue;
			key.event_id = ev->id;
			key.endpoint_id = ep->key.id;
			key.tenant_id = ev->tenant_id;
			cand = hash_search(b->candidates, &key, HASH_ENTER, &found);
			if (found)
				continue;
			cand->ev = ev;
			cand->ep = ep;
			b->tenants[k] = ev->tenant_id;
			b->event_ids[k] = ev->id;
			b->endpoint_ids[k] = ep->key.id;
			b->created[k] = TimestampTzGetDatum(ev->created_at);
			b->ncand++;

			/*
			 * Disabled by the worker: recorded as skipped, under the
			 * endpoint's lock, which enable_webhook() waits for before it
			 * replays.
			 */
			b->skipped[k] = BoolGetDatum(ep->settings->suspended);
			if (ep->settings->suspended)
			{
				b->claimed[k] = BoolGetDatum(false);
				continue;
			}
			if (ep->room < 0)
				ep->room = room(room_arg, ep->settings);
			b->claimed[k] = BoolGetDatum(ep->room > 0);
			if (ep->room > 0)
				ep->room--;
			else
				lanes->overflowed = true;
		}
	}
}

/* Phase 4: queues again the events put aside (put_back_later()). */
static void
put_back(FanOutBatch *b, FanOutLanes *lanes)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];

	if (b->nback == 0)
		return;
	args[0] = TextArrayParam(b->back_tenants, b->nback);
	args[1] = Int8ArrayParam(b->back_ids, b->nback);
	SavedPlan(&fan_out_put_back_plan,
			  "INSERT INTO integration.webhook_event_queue (tenant_id, event_id)"
			  " SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))",
			  2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(fan_out_put_back_plan, args, false, SPI_OK_INSERT, "queueing events again");
	lanes->put_back = true;
}

/*
 * Phase 5: inserts the deliveries and turns the claimed ones among the rows inserted
 * into claims, with what each request needs.
 */
static void
insert_and_claim(FanOutBatch *b, int lease_ms)
{
	TimestampTz lease = StoreLeaseExpiry(lease_ms);
	ClaimList  *list = b->list;
	Datum		args[7];
	MemoryContext old;

	args[0] = TextArrayParam(b->tenants, b->ncand);
	args[1] = Int8ArrayParam(b->event_ids, b->ncand);
	args[2] = Int8ArrayParam(b->endpoint_ids, b->ncand);
	args[3] = ArrayParam(b->created, NULL, b->ncand, TIMESTAMPTZOID);
	args[4] = TimestampTzGetDatum(lease);
	args[5] = ArrayParam(b->claimed, NULL, b->ncand, BOOLOID);
	args[6] = ArrayParam(b->skipped, NULL, b->ncand, BOOLOID);
	insert_fanned_out(args);

	old = MemoryContextSwitchTo(list->mcxt);
	if (list->count + (int) SPI_processed > list->capacity)
	{
		list->capacity = Max(list->count + (int) SPI_processed, list->capacity * 2);
		list->items = list->items ? repalloc(list->items, sizeof(ClaimedDelivery) * list->capacity)
			: palloc(sizeof(ClaimedDelivery) * list->capacity);
	}
	MemoryContextSwitchTo(old);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		FanOutKey	key;
		FanOutCandidate *cand;
		ClaimedDelivery *c;

		/*
		 * Went in pending, claimed later when its endpoint has room; or
		 * skipped.
		 */
		if (!DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)))
			continue;
		key.event_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		key.endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		key.tenant_id = ResultText(tup, desc, 5, NULL);
		cand = hash_search(b->candidates, &key, HASH_FIND, NULL);
		if (cand == NULL)
			elog(ERROR, "fan-out returned a delivery it did not insert");
		c = &list->items[list->count++];
		memset(c, 0, sizeof(*c));
		c->tenant_id = cand->ev->tenant_id;
		c->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		c->event_id = cand->ev->id;
		c->endpoint_id = cand->ep->key.id;
		c->attempts = 0;
		c->message_id = cand->ev->message_id;
		c->event = cand->ev->event;
		c->payload = cand->ev->payload;
		c->payload_len = cand->ev->payload_len;
		StoreClaimTakeSettings(c, cand->ep->settings);
		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 1, &isnull)), &c->tid);
		c->lease = lease;
		c->claim_xmax = InvalidTransactionId;	/* inserted: no lock */
	}
}

/*
 * Fans out published events into deliveries, one per endpoint, from two lanes of the
 * queue (lanes): the backlog lane takes up to lanes->limit events above lanes->after,
 * oldest first; the fresh lane up to lanes->fresh_limit events above
 * lanes->fresh_after, the newest the worker knew of when a backlog began.  So an event
 * published while another tenant's million events drain is fanned out in the next
 * cycle, not after them.  Each lane's cursor moves to the largest event id it took,
 * and lanes->taken / fresh_taken tell how many each took.
 *
 * A delivery is created already claimed ('sending' with a lease) while its endpoint has
 * room in the worker (room(), asked once per endpoint and batch), since fresh
 * deliveries are due at once; the rest go in 'pending' and due now
 * (lanes->overflowed), to be claimed when their endpoint has room; the endpoints left
 * with room for less than another batch are named in lanes->short_of_room.  Claims are
 * appended to list.  An event with an endpoint someone else holds locked is queued
 * again, not waited for, and lanes->put_back set.  Returns how many events it took.
 *
 * Why cursors: every event taken leaves a dead entry in the queue's index until
 * VACUUM.  While a large backlog drains, a scan from the start walks all the entries
 * of the events taken so far, so each batch would cost more than the last; the worker
 * continues each lane from where it ended, and scans from the start only now and then,
 * for events committed late with lower ids.
 *
 * Three statements, each a plain index or TID walk with a generic plan, joined in C:
 * the events' queue rows are locked and deleted in one statement by ctid, which stays
 * valid while the lock is held (the ctid is the only condition, so no plan can walk
 * an index instead), and the events read by key and locked FOR KEY SHARE; their
 * endpoints are read and locked FOR KEY SHARE once each.  So the foreign-key checks of
 * the deliveries, inserted from arrays, find their event and endpoint locked already
 * and never wait.  Every lock is taken SKIP LOCKED: a queue row someone else holds is
 * left for a later batch, and an event or endpoint someone else holds (a DELETE of it
 * not yet committed, a SELECT ... FOR UPDATE) sends its event back to the queue; the
 * worker never blocks or deadlocks on them.  An endpoint that no longer exists gets no
 * delivery, and a delivery that already exists (inserted by hand for a pending event)
 * is not made twice, so no single row can make the batch fail.
 */
int
StoreFanOutAndClaim(int lease_ms, FanOutLanes *lanes, FanOutRoom room, void *room_arg,
					ClaimList *list)
{
	FanOutBatch b;
	int			taken;

	lanes->taken = lanes->fresh_taken = 0;
	lanes->put_back = lanes->overflowed = lanes->short_more = false;
	lanes->nshort = 0;
	memset(&b, 0, sizeof(b));
	b.list = list;

	taken = take_events(lanes, lanes->fresh_limit > 0 ? lanes->fresh_after : PG_INT64_MAX);
	if (taken == 0)
		return 0;
	b.endpoints = EndpointSettingsTable("integration fan-out endpoints", 16, sizeof(FanOutEndpoint));
	read_taken_events(&b, taken);
	lock_endpoints(&b);
	plan_deliveries(&b, lanes, room, room_arg);
	note_short_of_room(&b, lanes);
	put_back(&b, lanes);

	/*
	 * No delivery: every endpoint of these events is gone or held, or none
	 * was named.
	 */
	if (b.ncand > 0)
		insert_and_claim(&b, lease_ms);
	return taken;
}

/* The newest event waiting to be fanned out; PG_INT64_MIN when none. */
int64
StoreNewestQueued(void)
{
	bool		isnull;
	Datum		d;

	SavedPlan(&newest_queued_plan,
			  "SELECT pg_catalog.max(event_id) FROM integration.webhook_event_queue",
			  0, NULL, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(newest_queued_plan, NULL, true, SPI_OK_SELECT, "finding the newest queued event");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? PG_INT64_MIN : DatumGetInt64(d);
}
