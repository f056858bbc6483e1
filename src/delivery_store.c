/*
 * delivery_store.c
 *		The worker's SQL: fan-out of events into deliveries, claiming due deliveries, and
 *		writing results back, each as one set-based statement per batch.
 *
 * Claiming sets status 'sending' with a lease (lease_expires_at) under FOR UPDATE SKIP
 * LOCKED, so two workers never send the same delivery at the same time, and commits
 * before any request starts: no transaction is open while HTTP is in flight.  Fresh
 * events are fanned out straight into claimed deliveries, so a first attempt costs one
 * INSERT and one UPDATE of the delivery row, not two UPDATEs more; the fan-out takes
 * its events by deleting their rows of webhook_event_queue by ctid, which a concurrent
 * taker would find gone and skip, so an event is fanned out once however many run it.  Rows are found again
 * by ctid (stable while locked or claimed), which keeps every statement an index or TID
 * lookup however large the tables grow.  A worker
 * that dies leaves its claims 'sending'; StoreReconcileLeases() returns them to
 * 'pending' when the next worker starts (or when their lease expires), so a delivery
 * whose transaction committed is sent at least once.
 *
 * Results are written in batches through arrays: one UPDATE of the deliveries, and one
 * statement that writes the failed attempts into their history and integration_logs;
 * what outcomes mean for their endpoints (streaks of failures, endpoints disabled) is
 * endpoint_disable.c's, in the same transaction.  An endpoint the worker disabled keeps
 * getting deliveries, recorded 'skipped' without a request, by the fan-out and by a
 * claim that finds it disabled, so that enable_webhook() can replay exactly those.
 *
 * Every function here runs inside StoreBegin() / StoreCommit().
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "access/relation.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "common/hashfn.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "delivery_store.h"
#include "endpoint_disable.h"
#include "integration.h"
#include "secret_box.h"
#include "spi_plan.h"
#include "subtransaction.h"
#include "table_statistics.h"
#include "wakeup.h"
#include "worker.h"
#include "worker_slots.h"

static SPIPlanPtr fan_out_plan = NULL;
static SPIPlanPtr fan_out_lanes_plan = NULL;
static SPIPlanPtr fan_out_endpoints_plan = NULL;
static SPIPlanPtr fan_out_insert_plan = NULL;
static SPIPlanPtr fan_out_insert_safe_plan = NULL;
static SPIPlanPtr next_due_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr record_by_key_plan = NULL;
static SPIPlanPtr read_endpoints_plan = NULL;
static SPIPlanPtr record_lock_plan = NULL;
static SPIPlanPtr fan_out_endpoints_skip_plan = NULL;
static SPIPlanPtr fan_out_put_back_plan = NULL;
static SPIPlanPtr record_failures_plan = NULL;
static SPIPlanPtr newest_queued_plan = NULL;
static SPIPlanPtr fan_out_locked_events_plan = NULL;
static SPIPlanPtr claim_head_plan = NULL;
static SPIPlanPtr claim_others_plan = NULL;
static SPIPlanPtr claim_tids_plan = NULL;
static SPIPlanPtr confirm_skipped_plan = NULL;
static SPIPlanPtr purge_retired_plan = NULL;

static void store_forget_plans_only(void);

/*
 * How often StoreReplanIfStale() looks at the tables' sizes, except while one grows
 * from a small size (REPLAN_YOUNG_BLOCKS), when it looks before every store
 * transaction.
 */
#define REPLAN_CHECK_MS 200
#define REPLAN_YOUNG_BLOCKS 1024

/* The running store transaction: what it is for, and when it and its commit began. */
static const char *store_activity = NULL;
static TimestampTz store_began = 0;

/*
 * The transaction bracket of worker_spi.c, in its order.  Its commit shows in
 * worker_status() as the state committing (the WAL flush waits for the disk), and a
 * transaction that takes integration.log_min_duration or longer is logged with its
 * time in statements and in the commit: a worker that stops sending for a while says
 * where it was.
 */
void
StoreBegin(const char *activity)
{
	store_activity = activity;
	store_began = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
StoreCommit(void)
{
	TimestampTz committing = GetCurrentTimestamp();
	TimestampTz done;

	WorkerSlotSetActivity(WORKER_COMMITTING);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	done = GetCurrentTimestamp();
	if (integration_log_min_duration_ms >= 0 &&
		TimestampDifferenceExceeds(store_began, done, integration_log_min_duration_ms))
		ereport(LOG,
				(errmsg("%s: %s took %ld ms: %ld ms in statements, %ld ms committing",
						WorkerName(), store_activity,
						(long) TimestampDifferenceMilliseconds(store_began, done),
						(long) TimestampDifferenceMilliseconds(store_began, committing),
						(long) TimestampDifferenceMilliseconds(committing, done))));
}

/*
 * The running store transaction writes nothing whose loss in a crash matters: its
 * commit does not wait for the WAL flush (synchronous_commit = off for this
 * transaction alone, as a function's SET clause would).  Its WAL reaches the disk with
 * the next commit that waits, or the WAL writer's next round.
 */
void
StoreCommitWithoutFlush(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Whether the extension this worker started with is still installed.  A DROP and
 * CREATE EXTENSION in one transaction leaves an extension of the same name whose
 * tables reuse the old ids and ctids: results of requests sent from the old tables
 * must never be written into the new ones.  So after the first call, which looks the
 * extension up, this compares the deliveries table with the one seen then: two
 * syscache lookups, cheap enough for every store transaction.
 */
bool
StoreExtensionPresent(void)
{
	static Oid	started_with = InvalidOid;
	Oid			nsp;
	Oid			deliveries;

	/*
	 * The weakest lock that a DROP conflicts with, taken first: a DROP that
	 * has not committed yet waits for this transaction, and one that has is
	 * seen below.
	 */
	if (OidIsValid(started_with))
		LockRelationOid(started_with, AccessShareLock);
	nsp = get_namespace_oid("integration", true);
	deliveries = OidIsValid(nsp) ? get_relname_relid("deliveries", nsp) : InvalidOid;
	if (!OidIsValid(started_with))
	{
		if (!OidIsValid(get_extension_oid("integration", true)))
			return false;
		started_with = deliveries;
	}
	return OidIsValid(deliveries) && deliveries == started_with;
}

/*
 * The tables whose size decides the worker's generic plans, the plans that read each
 * (the others are planned at every execution, see prepare()), and the table's size
 * in blocks when those plans were last dropped (InvalidBlockNumber: not known); each
 * also has its statistics checked (table_statistics.c).
 */
typedef struct PlannedTable
{
	WatchedTable table;			/* its name, and its size when last analyzed */
	SPIPlanPtr *plans[4];
	BlockNumber blocks;			/* its size when its plans were made */
	BlockNumber looked;			/* its size at the last look */
	TimestampTz changed_at;		/* the look that found it changed */
	bool		young;			/* small, and changed lately */
} PlannedTable;

static PlannedTable planned_tables[] = {
	{{"deliveries", InvalidBlockNumber},
	{&record_plan, &claim_head_plan, &claim_others_plan}, InvalidBlockNumber},
	{{"webhook_event_queue", InvalidBlockNumber},
	{&fan_out_plan, &fan_out_lanes_plan, &newest_queued_plan}, InvalidBlockNumber},
	{{"webhook_events", InvalidBlockNumber},
	{&fan_out_plan, &fan_out_lanes_plan, &fan_out_locked_events_plan}, InvalidBlockNumber},
	{{"webhook_endpoints", InvalidBlockNumber},
	{&read_endpoints_plan, &fan_out_endpoints_plan, &fan_out_endpoints_skip_plan},
	InvalidBlockNumber},
};

/*
 * After DROP/CREATE EXTENSION the saved plans point at dropped relations; after a
 * failed transaction its ANALYZEs were rolled back.
 */
void
StoreForgetPlans(void)
{
	for (int i = 0; i < lengthof(planned_tables); i++)
	{
		planned_tables[i].blocks = InvalidBlockNumber;
		planned_tables[i].looked = 0;
		planned_tables[i].young = false;
		planned_tables[i].table.analyzed = InvalidBlockNumber;
	}
	store_forget_plans_only();
	/* And what the worker knows of endpoint failures: read again when needed. */
	EndpointFailuresForget();
}

/*
 * Drops the saved plans that read a table once it has more than doubled since they
 * were made, so that each is planned again for the size the table has now; and
 * analyzes a table whose statistics count fewer rows than it has pages
 * (table_statistics.c), which no amount of planning again corrects.
 *
 * The worker's statements keep generic plans (spi_plan.c), and PostgreSQL's plan cache
 * re-plans them when ANALYZE changes the tables' statistics.  Between two ANALYZEs a
 * plan made while a table was empty stays: made after VACUUM emptied the queue, the
 * fan-out's "ORDER BY event_id LIMIT n" became a sequential scan and a sort, and every
 * batch then read the whole of a 100,000-event backlog.  The planner estimates a
 * table's rows from its current number of blocks, so a plan made again now is the
 * right one; this asks for that, instead of switching plan types off for the session.
 * Cost: one smgrnblocks() per table and look, and a new plan of the statements that
 * read a table each time it doubles.
 *
 * It looks every REPLAN_CHECK_MS, and before every store transaction while a table
 * under REPLAN_YOUNG_BLOCKS is changing: a small table doubles within a few batches.
 * The outcome statement planned on a just-created or just-truncated deliveries table
 * joins each batch to a sequential scan of it.  Looked at every 200 ms only,
 * deliveries grew to about 3,600 rows (130 to 150 pages) before that plan was made
 * again, and every batch until then read the whole table: the first third of a
 * 10,000-delivery round after bench/run's TRUNCATE, which cost the outcome statement
 * 10.1 us per delivery against 5.7 us (bench/profile; bench/README.md).  Planned again
 * at about 10 and 30 pages, it reads the batch's rows by ctid from there on.
 */
void
StoreReplanIfStale(void)
{
	static TimestampTz checked_at = 0;
	TimestampTz now_ts = GetCurrentTransactionStartTimestamp();
	bool		young = false;
	Oid			nsp;

	for (int i = 0; i < lengthof(planned_tables); i++)
		young = young || planned_tables[i].young;
	/* A large table doubles in no less than that while the worker writes it. */
	if (!young && now_ts < TimestampTzPlusMilliseconds(checked_at, REPLAN_CHECK_MS))
		return;
	checked_at = now_ts;
	nsp = get_namespace_oid("integration", true);
	if (!OidIsValid(nsp))
		return;
	for (int i = 0; i < lengthof(planned_tables); i++)
	{
		PlannedTable *t = &planned_tables[i];
		Oid			relid = get_relname_relid(t->table.name, nsp);
		BlockNumber now;

		if (!OidIsValid(relid))
			return;
		now = AnalyzeIfStale(relid, &t->table);

		/*
		 * Shrunk counts: a truncated table grows again from nothing.  It
		 * grows in steps (a fan-out batch, then cycles that only record
		 * outcomes), so it stays young while it changed in the last
		 * REPLAN_CHECK_MS.
		 */
		if (now != t->looked)
			t->changed_at = now_ts;
		t->looked = now;
		t->young = now < REPLAN_YOUNG_BLOCKS &&
			now_ts < TimestampTzPlusMilliseconds(t->changed_at, REPLAN_CHECK_MS);
		if (t->blocks == InvalidBlockNumber || now < t->blocks / 2)
		{
			/*
			 * Not known yet, or shrunk (TRUNCATE; VACUUM giving pages back):
			 * the plan cache plans again for the small table by itself, so
			 * growth counts from here.
			 */
			t->blocks = now;
		}
		else if (now > 2 * t->blocks + 8)
		{
			for (int p = 0; p < lengthof(t->plans) && t->plans[p] != NULL; p++)
				ForgetPlans(&t->plans[p], 1);
			t->blocks = now;
		}
	}
}

/* Drops the saved plans; they are made again on their next use. */
static void
store_forget_plans_only(void)
{
	SPIPlanPtr *plans[] = {&fan_out_plan, &fan_out_endpoints_plan, &fan_out_insert_plan, &fan_out_insert_safe_plan, &next_due_plan, &record_plan, &record_by_key_plan, &read_endpoints_plan, &record_lock_plan, &fan_out_endpoints_skip_plan, &fan_out_put_back_plan,
		&record_failures_plan, &newest_queued_plan, &fan_out_locked_events_plan,
		&fan_out_lanes_plan, &claim_head_plan, &claim_others_plan, &claim_tids_plan,
	&confirm_skipped_plan, &purge_retired_plan};

	ForgetPlans(plans, lengthof(plans));
}

/* Size-dependent statements are planned at each execution (see spi_plan.c). */
#define prepare(slot, sql, nargs, argtypes) \
	SavedPlan(slot, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN)

/*
 * Returns claims to 'pending': at start every claim of this database (a database has
 * one worker, so they belong to a dead one); later only expired leases, except the
 * deliveries this worker still holds (held, nheld ids).
 */
int
StoreReconcileLeases(bool all, int64 *held, int nheld)
{
	int			rc;

	if (all)
		rc = SPI_execute("UPDATE integration.deliveries SET status = 'pending', lease_expires_at = NULL,"
						 " next_attempt_at = pg_catalog.now()"
						 " WHERE status = 'sending'", false, 0);
	else
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		Datum		args[1];

		args[0] = Int8ArrayParam(held, nheld);
		/* Never waits: a row someone holds locked is theirs to finish. */
		rc = SPI_execute_with_args("UPDATE integration.deliveries SET status = 'pending',"
								   " lease_expires_at = NULL, next_attempt_at = pg_catalog.now()"
								   " WHERE ctid = ANY (ARRAY("
								   "   SELECT ctid FROM integration.deliveries"
								   "    WHERE status = 'sending' AND lease_expires_at < pg_catalog.now()"
								   "      AND NOT (id = ANY ($1))"
								   "      FOR NO KEY UPDATE SKIP LOCKED))",
								   1, argtypes, args, NULL, false, 0);
	}
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "reconciling leases failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

static char *
copy_text(HeapTuple tup, TupleDesc desc, int col, int *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	text	   *t;
	char	   *s;

	if (isnull)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	t = DatumGetTextPP(d);
	s = palloc(VARSIZE_ANY_EXHDR(t) + 1);
	memcpy(s, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	s[VARSIZE_ANY_EXHDR(t)] = '\0';
	if (len)
		*len = VARSIZE_ANY_EXHDR(t);
	return s;
}

/*
 * Copies into ep the endpoint columns every claim needs, which start at col: url,
 * secret, headers, timeout_ms, retry_schedule, whether the endpoint is usable, whether
 * the worker disabled it, its retired secrets with their expiries (two arrays, newest
 * first, at most RETIRED_SECRETS_MAX), rate_limit and rate_limit_burst.  Secrets stay
 * as stored.
 */
static void
copy_endpoint_columns(HeapTuple tup, TupleDesc desc, int col, EndpointSettings *ep)
{
	bool		isnull;
	Datum		d;

	ep->url = copy_text(tup, desc, col, NULL);
	ep->secret = copy_text(tup, desc, col + 1, NULL);
	d = SPI_getbinval(tup, desc, col + 2, &isnull);
	ep->headers = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(tup, desc, col + 3, &isnull);
	ep->timeout_ms = isnull ? 0 : DatumGetInt32(d);
	ep->retry_schedule = copy_text(tup, desc, col + 4, NULL);
	d = SPI_getbinval(tup, desc, col + 5, &isnull);
	ep->usable = !isnull && DatumGetBool(d);
	d = SPI_getbinval(tup, desc, col + 6, &isnull);
	ep->suspended = !ep->usable && !isnull && DatumGetBool(d);

	ep->retired.count = 0;
	d = SPI_getbinval(tup, desc, col + 7, &isnull);
	if (!isnull)
	{
		Datum	   *secrets;
		Datum	   *expires;
		bool	   *nulls;
		int			n;
		int			nexp;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &secrets, &nulls, &n);
		d = SPI_getbinval(tup, desc, col + 8, &isnull);
		deconstruct_array(DatumGetArrayTypeP(d), TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &expires, &nulls, &nexp);
		for (int i = 0; i < Min(Min(n, nexp), RETIRED_SECRETS_MAX); i++)
		{
			ep->retired.secrets[i] = TextDatumGetCString(secrets[i]);
			ep->retired.expires[i] = DatumGetTimestampTz(expires[i]);
			ep->retired.count++;
		}
	}
	d = SPI_getbinval(tup, desc, col + 9, &isnull);
	ep->rate_limit = isnull ? 0 : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, col + 10, &isnull);
	ep->rate_limit_burst = isnull ? 0 : DatumGetInt32(d);
}

/*
 * Appends SPI's result rows (tenant_id, id, event_id, endpoint_id, attempts, event,
 * payload, ctid, message_id), claimed with lease, to list, copied into its context; their
 * endpoints' settings come later (claims_read_endpoints()).
 */
static int
append_claims(ClaimList *list, TimestampTz lease)
{
	MemoryContext old;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	int			n = (int) SPI_processed;

	if (n == 0)
		return 0;
	old = MemoryContextSwitchTo(list->mcxt);
	if (list->count + n > list->capacity)
	{
		list->capacity = Max(list->count + n, list->capacity * 2);
		list->items = list->items ? repalloc(list->items, sizeof(ClaimedDelivery) * list->capacity)
			: palloc(sizeof(ClaimedDelivery) * list->capacity);
	}
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		ClaimedDelivery *c = &list->items[list->count++];
		bool		isnull;
		Datum		d;

		memset(c, 0, sizeof(*c));
		c->tenant_id = copy_text(tup, desc, 1, NULL);
		c->id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		c->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		c->endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		c->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		c->event = copy_text(tup, desc, 6, NULL);
		c->payload = copy_text(tup, desc, 7, &c->payload_len);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		ItemPointerCopy((ItemPointer) DatumGetPointer(d), &c->tid);
		c->message_id = copy_text(tup, desc, 9, NULL);
		c->lease = lease;
	}
	MemoryContextSwitchTo(old);
	return n;
}

/*
 * Gives claim c the request settings of its endpoint.  Every path that makes or
 * refreshes a claim (fan-out, claim of due deliveries, the worker's refresh) reads
 * them with read_endpoint_settings() and hands them over here; the strings are
 * shared, not copied.  A claim whose event is gone stays unusable.
 */
void
StoreClaimTakeSettings(ClaimedDelivery *c, const EndpointSettings *ep)
{
	c->url = ep->url;
	c->secret = ep->secret;
	c->secret_error = ep->secret_error;
	c->retired = ep->retired;
	c->headers = ep->headers;
	c->timeout_ms = ep->timeout_ms;
	c->retry_schedule = ep->retry_schedule;
	c->rate_limit = ep->rate_limit;
	c->rate_limit_burst = ep->rate_limit_burst;
	c->usable = ep->url != NULL && ep->usable && c->payload != NULL;
	c->suspended = ep->url != NULL && ep->suspended && c->payload != NULL;
}

/* A deep copy of src's strings into mcxt, for claims that outlive the read. */
void
EndpointSettingsCopy(EndpointSettings *dst, const EndpointSettings *src, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);

	*dst = *src;
	if (src->url != NULL)
	{
		dst->url = pstrdup(src->url);
		dst->secret = src->secret ? pstrdup(src->secret) : NULL;
		dst->secret_error = src->secret_error ? pstrdup(src->secret_error) : NULL;
		for (int i = 0; i < src->retired.count; i++)
			dst->retired.secrets[i] = pstrdup(src->retired.secrets[i]);
		dst->headers = src->headers ?
			(Jsonb *) pg_detoast_datum_copy((struct varlena *) src->headers) : NULL;
		dst->retry_schedule = src->retry_schedule ? pstrdup(src->retry_schedule) : NULL;
	}
	MemoryContextSwitchTo(old);
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

/* An endpoint of a tenant; a key of its own so that no event reaches another's. */
typedef struct FanOutEndpointKey
{
	int64		id;
	const char *tenant_id;
} FanOutEndpointKey;

/* An endpoint some event of the batch goes to, with what its requests need. */
typedef struct FanOutEndpoint
{
	FanOutEndpointKey key;		/* hash key */
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
endpoint_key_hash(const void *key, Size keysize)
{
	const FanOutEndpointKey *k = key;

	return hash_combine(hash_bytes_uint32((uint32) k->id ^ (uint32) (k->id >> 32)),
						hash_bytes((const unsigned char *) k->tenant_id, strlen(k->tenant_id)));
}

static int
endpoint_key_match(const void *a, const void *b, Size keysize)
{
	const FanOutEndpointKey *x = a;
	const FanOutEndpointKey *y = b;

	return x->id == y->id && strcmp(x->tenant_id, y->tenant_id) == 0 ? 0 : 1;
}

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

/* A hash table for one fan-out batch, in the current (SPI) memory context. */
static HTAB *
batch_hash(const char *name, long nelem, Size keysize, Size entrysize,
		   HashValueFunc hash, HashCompareFunc match)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hash = hash;
	ctl.match = match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * When a lease taken now runs out.  now() in SQL is the transaction's start, so the
 * expiry is computed once here and passed in, rather than per row.
 */
static TimestampTz
lease_expiry(int lease_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTransactionStartTimestamp(), lease_ms);
}

/*
 * Replaces a stored secret of ep (its own, or a retired one, which is sealed for the
 * same context) with its plaintext, in the current memory context.  Returns false with
 * the reason in ep->secret_error when it does not decrypt.
 */
static bool
open_stored_secret(EndpointSettings *ep, const SecretContext *cxt, char **secret)
{
	char	   *plain;
	int			plainlen;
	SecretOpenStatus status;

	if (*secret == NULL || !SecretIsSealed(*secret))
		return true;
	status = SecretOpen(*secret, cxt, &plain, &plainlen);
	if (status != SECRET_OPENED && ep->secret_error == NULL)
		ep->secret_error = SecretOpenError(status, *secret);
	pfree(*secret);
	*secret = status == SECRET_OPENED ? plain : NULL;
	return status == SECRET_OPENED;
}

/*
 * Decrypts ep's secret and its retired secrets.  If one does not decrypt, the endpoint
 * has no secret and the reason is in secret_error, which fails that endpoint's
 * deliveries (secret_unavailable) and nothing else: a receiver that still knows only a
 * retired secret must not get requests it cannot verify.  Here, on the worker's main
 * thread, in its store transaction: the HTTP thread never sees a key.
 */
static void
open_endpoint_secret(EndpointSettings *ep)
{
	SecretContext cxt;
	bool		opened;

	SecretContextForEndpoint(&cxt, ep->tenant_id, ep->id);
	opened = open_stored_secret(ep, &cxt, &ep->secret);
	for (int i = 0; i < ep->retired.count; i++)
		opened = open_stored_secret(ep, &cxt, &ep->retired.secrets[i]) && opened;
	pfree(cxt.data);
	if (!opened)
	{
		if (ep->secret)
			SecretFree(ep->secret, strlen(ep->secret));
		for (int i = 0; i < ep->retired.count; i++)
			if (ep->retired.secrets[i])
				SecretFree(ep->retired.secrets[i], strlen(ep->retired.secrets[i]));
		ep->secret = NULL;
		ep->retired.count = 0;
	}
}

/*
 * The retired secrets are those not expired at the transaction's start, newest first;
 * the request leaves out any that expires before it starts (delivery_request.c).  An
 * index probe of an empty index for an endpoint never rotated.  Each fan-out batch
 * runs this for its endpoints, so its plan is kept small: two array subqueries (a
 * Limit over an index scan each), where a LATERAL join to two array_agg()s was
 * planned as a Memoize over an Aggregate, whose hash table and sorts were set up at
 * every execution for one endpoint; and it names the columns it reads, where "SELECT *"
 * built every column of the table into each node's tuple descriptor at every start.
 */
#define RETIRED(col) \
	"       ARRAY(SELECT r." col " FROM integration.retired_secrets r" \
	"              WHERE r.tenant_id = ep.tenant_id AND r.endpoint_id = ep.id" \
	"                AND r.expires_at > pg_catalog.now()" \
	"              ORDER BY r.id DESC LIMIT " CppAsString2(RETIRED_SECRETS_MAX) ")"
#define READ_ENDPOINTS(lock) \
	"SELECT k.i, ep.url, ep.secret, ep.headers, ep.timeout_ms, ep.retry_schedule," \
	"       ep.is_active AND ep.deleted_at IS NULL," \
	"       ep.disabled_at IS NOT NULL AND ep.deleted_at IS NULL," \
	RETIRED("secret") "," RETIRED("expires_at") ", ep.rate_limit, ep.rate_limit_burst" \
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))" \
	"       WITH ORDINALITY AS k(tenant_id, id, i)" \
	"  JOIN LATERAL (SELECT ep.tenant_id, ep.id, ep.url, ep.secret, ep.headers, ep.timeout_ms," \
	"                       ep.retry_schedule, ep.is_active, ep.deleted_at, ep.disabled_at," \
	"                       ep.rate_limit, ep.rate_limit_burst" \
	"                  FROM integration.webhook_endpoints ep" \
	"                 WHERE ep.tenant_id = k.tenant_id AND ep.id = k.id LIMIT 1" \
	lock ") ep ON true"

/*
 * Fills in the settings of the endpoints keyed in eps (n of them, distinct), copied
 * into mcxt; an endpoint that does not exist gets url NULL and is unusable.  key_share:
 * lock them FOR KEY SHARE, as a foreign key check would; skip_locked: an endpoint
 * someone else holds locked counts as not found instead of being waited for.
 */
static void
read_endpoint_settings(EndpointSettings *eps, int n, MemoryContext mcxt, bool key_share,
					   bool skip_locked)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	char	  **tenants = palloc(sizeof(char *) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	SPIPlanPtr *plan = !key_share ? &read_endpoints_plan :
	skip_locked ? &fan_out_endpoints_skip_plan : &fan_out_endpoints_plan;

	for (int i = 0; i < n; i++)
	{
		tenants[i] = (char *) eps[i].tenant_id;
		ids[i] = eps[i].id;
		/* Not found: no settings at all, and unusable. */
		eps[i].url = NULL;
		eps[i].secret = NULL;
		eps[i].secret_error = NULL;
		eps[i].headers = NULL;
		eps[i].timeout_ms = 0;
		eps[i].retry_schedule = NULL;
		eps[i].rate_limit = eps[i].rate_limit_burst = 0;
		eps[i].usable = false;
		eps[i].suspended = false;
		eps[i].retired.count = 0;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = Int8ArrayParam(ids, n);
	SavedPlan(plan, !key_share ? READ_ENDPOINTS("") :
			  skip_locked ? READ_ENDPOINTS(" FOR KEY SHARE SKIP LOCKED") : READ_ENDPOINTS(" FOR KEY SHARE"),
			  2, types, CURSOR_OPT_GENERIC_PLAN);
	/* Not read-only: a fresh snapshot, the one a locking read would use. */
	RunPlan(*plan, args, false, SPI_OK_SELECT, "reading endpoints");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		int64		i = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)) - 1;
		EndpointSettings *ep = &eps[i];
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		copy_endpoint_columns(tup, SPI_tuptable->tupdesc, 2, ep);
		open_endpoint_secret(ep);
		MemoryContextSwitchTo(old);
	}
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
			unread_tenants[nunread] = copy_text(tup, desc, 8, NULL);
			unread_ids[nunread++] = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
			continue;
		}
		b->nevents++;
		old = MemoryContextSwitchTo(b->list->mcxt);
		ev->tenant_id = copy_text(tup, desc, 1, NULL);
		ev->event = copy_text(tup, desc, 3, NULL);
		ev->payload = copy_text(tup, desc, 4, &ev->payload_len);
		ev->message_id = copy_text(tup, desc, 9, NULL);
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
			FanOutEndpointKey key;
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

			put_back_later(b, copy_text(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, NULL),
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
	read_endpoint_settings(eps, n, b->list->mcxt, true, true);

	again = palloc(sizeof(EndpointSettings) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (eps[i].url == NULL)
			again[nagain++] = eps[i];
	if (nagain == 0)
		return;
	read_endpoint_settings(again, nagain, CurrentMemoryContext, false, false);
	for (int i = 0; i < nagain; i++)
	{
		FanOutEndpointKey key = {again[i].id, again[i].tenant_id};

		if (again[i].url != NULL)
			((FanOutEndpoint *) hash_search(b->endpoints, &key, HASH_FIND, NULL))->locked = true;
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
	b->candidates = batch_hash("integration fan-out deliveries", 256, sizeof(FanOutKey),
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
			FanOutEndpointKey epkey = {ev->endpoint_ids[j], ev->tenant_id};
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
			FanOutEndpointKey epkey = {ev->endpoint_ids[j], ev->tenant_id};
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
	TimestampTz lease = lease_expiry(lease_ms);
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
		key.tenant_id = copy_text(tup, desc, 5, NULL);
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
 * (lanes->overflowed), to be claimed when their endpoint has room.  Claims are appended
 * to list.  An event with an endpoint someone else holds locked is queued again, not
 * waited for, and lanes->put_back set.  Returns how many events it took.
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
	lanes->put_back = lanes->overflowed = false;
	memset(&b, 0, sizeof(b));
	b.list = list;

	taken = take_events(lanes, lanes->fresh_limit > 0 ? lanes->fresh_after : PG_INT64_MAX);
	if (taken == 0)
		return 0;
	b.endpoints = batch_hash("integration fan-out endpoints", 16, sizeof(FanOutEndpointKey),
							 sizeof(FanOutEndpoint), endpoint_key_hash, endpoint_key_match);
	read_taken_events(&b, taken);
	lock_endpoints(&b);
	plan_deliveries(&b, lanes, room, room_arg);
	put_back(&b, lanes);

	/*
	 * No delivery: every endpoint of these events is gone or held, or none
	 * was named.
	 */
	if (b.ncand > 0)
		insert_and_claim(&b, lease_ms);
	return taken;
}

/*
 * Deletes the retired secrets whose grace has ended, of every tenant; returns how many.
 * The reads leave them out already (READ_ENDPOINTS): this only keeps no more secrets
 * at rest than sign.  A sequential scan of a table of at most three rows per endpoint
 * rotated lately.
 */
int
StorePurgeRetiredSecrets(void)
{
	SavedPlan(&purge_retired_plan,
			  "DELETE FROM integration.retired_secrets WHERE expires_at <= pg_catalog.now()",
			  0, NULL, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(purge_retired_plan, NULL, false, SPI_OK_DELETE, "purging expired secrets");
	return (int) SPI_processed;
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

/*
 * The current settings of the endpoints keyed in eps, for claims made earlier: a plain
 * read, since the worker sends with whatever the latest committed change says.
 */
void
StoreReadEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt)
{
	read_endpoint_settings(eps, n, mcxt, false, false);
}

/*
 * Gives the claims list->items[first..] their endpoints' settings: each endpoint read
 * once, by the reader every path uses (read_endpoint_settings()).
 */
static void
claims_read_endpoints(ClaimList *list, int first)
{
	HTAB	   *index;
	EndpointSettings *eps;
	int			n = 0;

	if (list->count == first)
		return;
	index = batch_hash("integration claimed endpoints", 64, sizeof(FanOutEndpointKey),
					   sizeof(FanOutEndpoint), endpoint_key_hash, endpoint_key_match);
	eps = palloc(sizeof(EndpointSettings) * (list->count - first));
	for (int i = first; i < list->count; i++)
	{
		FanOutEndpointKey key = {list->items[i].endpoint_id, list->items[i].tenant_id};
		bool		found;
		FanOutEndpoint *ep = hash_search(index, &key, HASH_ENTER, &found);

		if (!found)
		{
			eps[n].tenant_id = list->items[i].tenant_id;
			eps[n].id = list->items[i].endpoint_id;
			ep->settings = &eps[n++];
		}
	}
	read_endpoint_settings(eps, n, list->mcxt, false, false);
	for (int i = first; i < list->count; i++)
	{
		FanOutEndpointKey key = {list->items[i].endpoint_id, list->items[i].tenant_id};

		StoreClaimTakeSettings(&list->items[i],
							   ((FanOutEndpoint *) hash_search(index, &key, HASH_FIND, NULL))->settings);
	}
}

/*
 * Claims the deliveries whose ctids the CTE due selects (locked; due_ctes are the CTEs
 * that end with it), leases them
 * until $2, and returns what append_claims() reads: a claim whose event vanished is
 * returned all the same, to fail, never to hang.  LATERAL: one index probe per claimed
 * row, never a scan of all events.
 */
#define CLAIM_DUE(due_ctes) \
	"WITH " due_ctes "," \
	" claimed AS (" \
	"  UPDATE integration.deliveries d" \
	"     SET status = 'sending', next_attempt_at = NULL," \
	"         lease_expires_at = $2" \
	"   WHERE d.ctid = ANY (ARRAY(SELECT due.ctid FROM due))" \
	"  RETURNING d.ctid, d.tenant_id, d.id, d.event_id, d.endpoint_id, d.attempts)" \
	" SELECT c.tenant_id, c.id, c.event_id, c.endpoint_id, c.attempts, e.event, e.payload," \
	"        c.ctid, e.message_id" \
	"   FROM claimed c" \
	"   LEFT JOIN LATERAL (SELECT e.event, e.payload, e.message_id FROM integration.webhook_events e" \
	"                       WHERE e.tenant_id = c.tenant_id AND e.id = c.event_id) e ON true"

/*
 * The pending deliveries of endpoint k (a row with tenant_id and endpoint_id) whose
 * next_attempt_at is op bound, as conditions on deliveries d that only
 * deliveries_endpoint_due_idx can serve: a plain "d.next_attempt_at <= now()" lets the
 * planner, which cannot tell one endpoint's share of the rows from another's, walk
 * deliveries_due_idx and filter, that is all of an endpoint's backlog, for every probe.
 */
#define ENDPOINT_DUE(k, op, bound) \
	"d.tenant_id = " k ".tenant_id AND d.endpoint_id = " k ".endpoint_id" \
	" AND d.next_attempt_at IS NOT NULL" \
	" AND (d.tenant_id, d.endpoint_id, d.next_attempt_at) " op \
	" (" k ".tenant_id, " k ".endpoint_id, " bound ")"

/* Rows of the due index a claim that leaves endpoints out reads, in units of its limit. */
#define CLAIM_HEAD_FACTOR 4

/* Appends the ctid in column col of each SPI row to tids, once each; returns the count. */
static int
collect_ctids(ItemPointerData * tids, int n, int max, int col, int64 *excluded, int nexcluded)
{
	for (uint64 r = 0; r < SPI_processed && n < max; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, SPI_tuptable->tupdesc,
																	  col, &isnull));
		int64		endpoint = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, col + 1,
														   &isnull));
		bool		seen = false;

		if (bsearch(&endpoint, excluded, nexcluded, sizeof(int64), int64_cmp))
			continue;
		for (int i = 0; i < n && !seen; i++)
			seen = ItemPointerEquals(&tids[i], tid);
		if (!seen)
			ItemPointerCopy(tid, &tids[n++]);
	}
	return n;
}

/*
 * Picks up to limit due deliveries of endpoints not in excluded (sorted), without
 * locking them, and returns their ctids.  It reads a bounded head of the due index,
 * oldest first: the due backlog of an endpoint left out (at its limit, or its circuit
 * open) may be a million rows long, and the plain claim statement, whose filter is
 * checked row by row, walked all of it at every claim (46 ms at 194,000 rows, all in
 * cache).  Only when that head is all theirs are the other endpoints' due rows found,
 * one probe of deliveries_endpoint_due_idx per endpoint with pending rows, whatever
 * their backlogs.
 *
 * The head is planned for its first rows (CURSOR_OPT_FAST_PLAN), which is what it
 * wants: a bounded number of rows in index order.  Planned for all of them, its plan
 * depended on statistics.  Where the last ANALYZE saw no pending row (a new table, or
 * one whose backlog came after it), every plan reads "one row", an ordered scan of
 * deliveries_due_idx and a sort of what a full scan of deliveries_endpoint_due_idx
 * returns cost about the same, and the planner took the second: each claim then read
 * and sorted the whole backlog, 46% of the worker's time while it fanned 200,000
 * events out to a saturated endpoint (bench/run protection, perf), and the claim grew
 * with the backlog.  Planned for its first rows, the sort's start-up cost (all of its
 * input) weighs against it, and the ordered scan is taken on such statistics too
 * (regress worker_plans shows both plans).  That is a comparison of costs, not a
 * guarantee: it holds because the alternatives here cost more from the start.
 */
static int
pick_due_around(int limit, int64 *excluded, int nexcluded, ItemPointerData * tids)
{
	Oid			types[2] = {INT8OID, INT8ARRAYOID};
	Datum		args[2];
	int			head = nexcluded > 0 ? limit * CLAIM_HEAD_FACTOR : limit;
	int			n;

	args[0] = Int64GetDatum(head);
	SavedPlan(&claim_head_plan,
			  "SELECT d.ctid, d.endpoint_id FROM integration.deliveries d"
			  " WHERE d.next_attempt_at <= pg_catalog.now()"
			  " ORDER BY d.next_attempt_at LIMIT $1",
			  1, types, CURSOR_OPT_GENERIC_PLAN | CURSOR_OPT_FAST_PLAN);
	/* Not read-only: it must see what this transaction fanned out pending. */
	RunPlan(claim_head_plan, args, false, SPI_OK_SELECT, "finding due deliveries");
	n = collect_ctids(tids, 0, limit, 1, excluded, nexcluded);
	if (n == limit || SPI_processed < (uint64) head)
		return n;

	/*
	 * The endpoints with pending deliveries, one index probe each (a loose
	 * index scan), and the oldest due deliveries of those not left out.
	 */
	args[0] = Int64GetDatum(limit - n);
	args[1] = Int8ArrayParam(excluded, nexcluded);
	SavedPlan(&claim_others_plan,
			  "WITH RECURSIVE e(tenant_id, endpoint_id) AS ("
			  "   (SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d"
			  "     WHERE d.next_attempt_at IS NOT NULL"
			  "     ORDER BY d.tenant_id, d.endpoint_id LIMIT 1)"
			  "  UNION ALL"
			  "   SELECT x.tenant_id, x.endpoint_id FROM e CROSS JOIN LATERAL ("
			  "     SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d"
			  "      WHERE d.next_attempt_at IS NOT NULL"
			  "        AND (d.tenant_id, d.endpoint_id) > (e.tenant_id, e.endpoint_id)"
			  "      ORDER BY d.tenant_id, d.endpoint_id LIMIT 1) x)"
			  " SELECT r.ctid, e.endpoint_id FROM e CROSS JOIN LATERAL ("
			  "   SELECT d.ctid, d.next_attempt_at FROM integration.deliveries d"
			  "    WHERE " ENDPOINT_DUE("e", "<=", "pg_catalog.now()")
			  "    ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT $1) r"
			  "  WHERE NOT (e.endpoint_id = ANY ($2))"
			  "  ORDER BY r.next_attempt_at LIMIT $1",
			  2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(claim_others_plan, args, false, SPI_OK_SELECT, "finding other due deliveries");
	return collect_ctids(tids, n, limit, 1, excluded, nexcluded);
}

/*
 * Claims up to limit (at most STORE_BATCH) due pending deliveries (retries, dispatches,
 * redeliveries), oldest first, skipping endpoints in excluded (sorted), and appends
 * them to list.  Returns how many.  Due rows that someone else holds locked are
 * skipped, not waited for, and not replaced by later ones: they are claimed once free,
 * at the worker's next claim.
 */
int
StoreClaim(int lease_ms, int limit, int64 *excluded, int nexcluded, ClaimList *list)
{
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, TIDARRAYOID};
	Datum		args[3];
	ItemPointerData *tids;
	Datum	   *d;
	int			ntids;
	int			first;
	int			n;

	limit = Min(limit, STORE_BATCH);
	tids = palloc(sizeof(ItemPointerData) * limit);
	ntids = pick_due_around(limit, excluded, nexcluded, tids);
	if (ntids == 0)
		return 0;
	d = palloc(sizeof(Datum) * ntids);
	for (int i = 0; i < ntids; i++)
		d[i] = PointerGetDatum(&tids[i]);
	args[0] = Int64GetDatum(limit);
	args[1] = TimestampTzGetDatum(lease_expiry(lease_ms));
	args[2] = PointerGetDatum(construct_array(d, ntids, TIDOID, sizeof(ItemPointerData),
											  false, TYPALIGN_SHORT));

	/*
	 * Locked by ctid: a row changed since it was read has another ctid and is
	 * not found; one locked by someone else is skipped.  The rows are found
	 * by their ctids alone (a TID scan), and whether each is still due is
	 * asked of the row locked, in the CTE's output.  Asked of the table, that
	 * condition implies the predicate of both partial indexes of pending
	 * rows, and on statistics from before a backlog (every path "one row")
	 * the planner scanned all of deliveries_endpoint_due_idx and filtered it
	 * by ctid: 120 to 200 ms a claim at 200,000 pending (auto_explain,
	 * bench/run protection). A CTE with FOR UPDATE is not inlined, so the
	 * condition stays outside.
	 */
	SavedPlan(&claim_tids_plan,
			  CLAIM_DUE("locked AS ("
						"  SELECT d.ctid, d.next_attempt_at FROM integration.deliveries d"
						"   WHERE d.ctid = ANY ($3)"
						"   FOR UPDATE SKIP LOCKED),"
						" due AS (SELECT l.ctid FROM locked l"
						"          WHERE l.next_attempt_at <= pg_catalog.now())"),
			  3, argtypes, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(claim_tids_plan, args, false, SPI_OK_SELECT, "claiming deliveries");
	first = list->count;
	n = append_claims(list, DatumGetTimestampTz(args[1]));
	claims_read_endpoints(list, first);
	return n;
}

/*
 * When the earliest pending delivery comes due after the given time (the last claim's
 * now()), leaving out endpoints in excluded; 0 when none will.  What was due by then
 * was the claim's to take: what it left behind is an excluded endpoint's, at its
 * limit, which the worker claims when that endpoint has room, or rows someone else
 * held locked.  Looking past them keeps this a short walk of the due index however
 * large the backlog of a saturated endpoint, and keeps the worker from waking for
 * rows it cannot take.
 *
 * It is the head of deliveries_due_idx, written as one (ORDER BY ... LIMIT 1), with a
 * generic plan for its first rows, as the claim's head is (pick_due_around()).  As
 * min() planned at each execution, its plan depended on statistics: where the last
 * ANALYZE saw no pending row, "next_attempt_at > $1" is one row, and the planner
 * aggregated a full scan of another partial index on pending rows
 * (deliveries_endpoint_due_idx or deliveries_pending_idx, whichever costs less)
 * instead of taking the first row of deliveries_due_idx.  With 100,000 pending
 * deliveries among 300,000 analyzed as none, a call read all 100,000: 41 ms, 120 ms
 * with an endpoint left out.  Now it reads the head of the index, 0.02 ms
 * (test/sql/worker_plans.sql shows the plans).
 *
 * Planned for its first row, it still took a sort where the last ANALYZE saw a few
 * pending rows among many (between two backlogs): "> $1" is then a third of a few
 * hundred rows, and a full scan of deliveries_pending_idx sorted cost less than the
 * ordered walk.  Beside a 100,000-event backlog to a saturated endpoint each call read
 * every pending delivery, 14 to 24 ms at 87,000 (auto_explain), at every claim cycle
 * of the drain, and those windows drained at 1,550 deliveries/s instead of 4,000
 * (bench/run backlog, bench/README.md).  So it is planned without a sort, as a SET
 * clause of a function would plan it: enable_sort off at a GUC nest level of its own
 * around its execution, hence around each planning of it, for this statement alone.
 * Without a sort, the only plan that returns rows in next_attempt_at order is the walk
 * of deliveries_due_idx.
 */
TimestampTz
StoreNextDue(TimestampTz after, int64 *excluded, int nexcluded)
{
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[2];
	bool		isnull;
	Datum		d;
	int			nestlevel;

	args[0] = TimestampTzGetDatum(after);
	args[1] = Int8ArrayParam(excluded, nexcluded);
	SavedPlan(&next_due_plan,
			  "SELECT d.next_attempt_at FROM integration.deliveries d"
			  " WHERE d.next_attempt_at > $1 AND NOT (d.endpoint_id = ANY ($2))"
			  " ORDER BY d.next_attempt_at LIMIT 1",
			  2, argtypes, CURSOR_OPT_GENERIC_PLAN | CURSOR_OPT_FAST_PLAN);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* Not read-only: it must see what this transaction claimed and requeued. */
	RunPlan(next_due_plan, args, false, SPI_OK_SELECT, "finding the next due delivery");
	AtEOXact_GUC(true, nestlevel);
	if (SPI_processed == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

#define RECORD_COLUMNS 12

/* An outcome that goes to the attempts history: not delivered, and a request tried. */
static bool
is_failed_attempt(const DeliveryResult *r)
{
	return strcmp(r->outcome, "delivered") != 0 && strcmp(r->outcome, "skipped") != 0;
}

/*
 * Failed attempts go to the attempts history and the log, in one statement over text
 * arrays of the failed results only; the delivering attempt lives on the delivery row,
 * and a skipped delivery made none, so a batch that only delivered builds and runs
 * nothing here.  results are those just written to their deliveries, which this
 * transaction has locked.
 */
static void
record_failed_attempts(DeliveryResult *results, int n)
{
	Oid			argtypes[RECORD_COLUMNS];
	Datum		args[RECORD_COLUMNS];
	Datum	   *cols[RECORD_COLUMNS];
	bool	   *nulls[RECORD_COLUMNS];
	int			nfailed = 0;

	for (int i = 0; i < n; i++)
		if (is_failed_attempt(&results[i]))
			nfailed++;
	if (nfailed == 0)
		return;
	for (int c = 0; c < RECORD_COLUMNS; c++)
	{
		argtypes[c] = TEXTARRAYOID;
		cols[c] = palloc(sizeof(Datum) * nfailed);
		nulls[c] = palloc0(sizeof(bool) * nfailed);
	}

#define SET_TEXT(c, i, s) \
	do { \
		if ((s) == NULL) nulls[c][i] = true; \
		else cols[c][i] = CStringGetTextDatum(s); \
	} while (0)

	nfailed = 0;
	for (int j = 0; j < n; j++)
	{
		DeliveryResult *r = &results[j];
		int			i = nfailed;

		if (!is_failed_attempt(r))
			continue;
		nfailed++;
		SET_TEXT(0, i, r->tenant_id);
		SET_TEXT(1, i, psprintf(INT64_FORMAT, r->id));
		SET_TEXT(2, i, psprintf(INT64_FORMAT, r->endpoint_id));
		SET_TEXT(3, i, r->outcome);
		SET_TEXT(4, i, psprintf("%d", r->attempt));
		SET_TEXT(5, i, timestamptz_to_str(r->started_at));
		SET_TEXT(6, i, psprintf("%d", r->duration_ms));
		SET_TEXT(7, i, r->status_code ? psprintf("%d", r->status_code) : NULL);
		SET_TEXT(8, i, r->error_class);
		SET_TEXT(9, i, r->error);
		SET_TEXT(10, i, r->response);
		SET_TEXT(11, i, r->next_attempt_at ? timestamptz_to_str(r->next_attempt_at) : NULL);
	}
#undef SET_TEXT
	for (int c = 0; c < RECORD_COLUMNS; c++)
		args[c] = ArrayParam(cols[c], nulls[c], nfailed, TEXTOID);

	prepare(&record_failures_plan,
			"WITH r AS ("
			"  SELECT r.tenant_id, r.id::bigint AS id, r.endpoint_id::bigint AS endpoint_id,"
			"         r.outcome, r.attempt::integer AS attempt,"
			"         r.started_at::timestamptz AS started_at, r.duration_ms::integer AS duration_ms,"
			"         r.status_code::integer AS status_code, r.error_class, r.error, r.response,"
			"         r.next_attempt_at::timestamptz AS next_attempt_at"
			"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
			"                    pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
			"                    pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9),"
			"                    pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12))"
			"      AS r(tenant_id, id, endpoint_id, outcome, attempt, started_at, duration_ms,"
			"           status_code, error_class, error, response, next_attempt_at)"
			"   WHERE r.outcome <> 'delivered'),"
			" att AS ("
			"  INSERT INTO integration.delivery_attempts (tenant_id, delivery_id, attempt,"
			"         started_at, duration_ms, status_code, error_class, error, response_excerpt)"
			"  SELECT r.tenant_id, r.id, r.attempt, r.started_at, r.duration_ms, r.status_code,"
			"         r.error_class, r.error, r.response FROM r)"
			" INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, context)"
			" SELECT tenant_id, CASE WHEN outcome = 'failed' THEN 'error' ELSE 'warning' END, 'worker',"
			"        CASE WHEN outcome = 'failed' THEN 'delivery.failed' ELSE 'delivery.retrying' END,"
			"        pg_catalog.format('delivery %s to webhook %s: attempt %s %s%s', id, endpoint_id, attempt,"
			"            CASE WHEN outcome = 'failed' THEN 'failed for good' ELSE 'failed, retrying' END,"
			"            coalesce(': ' || error, '')),"
			"        pg_catalog.jsonb_build_object('delivery_id', id, 'endpoint_id', endpoint_id,"
			"            'attempt', attempt, 'status_code', status_code, 'error_class', error_class,"
			"            'error', error, 'next_attempt_at', next_attempt_at)"
			"   FROM r",
			RECORD_COLUMNS, argtypes);
	RunPlan(record_failures_plan, args, false, SPI_OK_INSERT, "recording failed attempts");
}

#define RECORD_SET \
	"UPDATE integration.deliveries d" \
	"   SET (status, attempts, last_attempt_at, last_duration_ms, last_status_code," \
	"        last_error, last_response, next_attempt_at, lease_expires_at, delivered_at) =" \
	"       (r.status, r.attempt, r.started_at, r.duration_ms, r.status_code, r.error," \
	"        r.response, r.next_attempt_at, NULL::timestamptz, r.delivered_at)" \
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)," \
	"                  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)," \
	"                  pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9)," \
	"                  pg_catalog.unnest($10), pg_catalog.unnest($11), pg_catalog.unnest($12))"
#define RECORD_COLUMNS_OUT \
	"status, attempt, started_at, duration_ms, status_code, error, response," \
	" next_attempt_at, delivered_at, lease)"

/*
 * Writes outcomes into their deliveries, reached by the claim's ctid, or with by_key by
 * (tenant_id, id), and leaves the keys of the deliveries written in SPI_tuptable.
 *
 * A result belongs to one claim: its row must still carry the lease that claim set
 * (a delivery requeued and claimed again has another lease, or none).  The ctid way
 * runs for every batch: the batch's arrays drive a nested loop whose inner side is a
 * TID lookup.  A plan made while the table looked tiny (just after TRUNCATE, or on a
 * new install) once took a full scan of deliveries_endpoint_idx for every row instead,
 * and kept it until the next ANALYZE, which made the worker deliver a tenth as fast:
 * StoreReplanIfStale() plans it again as the table grows.
 */
static void
record_outcomes(DeliveryResult *results, int n, bool by_key)
{
	Oid			types[12] = {TIDARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TIMESTAMPTZARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		v[12];
	Datum	   *col[12];
	bool	   *isnull[12];
	struct
	{
		Oid			type;
		int			len;
		bool		byval;
		char		align;
	}			elem[12] = {
		{TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT},
		{INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{INT4OID, 4, true, TYPALIGN_INT},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{INT4OID, 4, true, TYPALIGN_INT},
		{INT4OID, 4, true, TYPALIGN_INT},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{TEXTOID, -1, false, TYPALIGN_INT},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
		{TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	};

	/* By key, the first array holds the tenants instead of the ctids. */
	if (by_key)
	{
		types[0] = TEXTARRAYOID;
		elem[0].type = TEXTOID;
		elem[0].len = -1;
		elem[0].byval = false;
		elem[0].align = TYPALIGN_INT;
	}
	for (int c = 0; c < 12; c++)
	{
		col[c] = palloc(sizeof(Datum) * n);
		isnull[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		DeliveryResult *r = &results[i];

		col[0][i] = by_key ? CStringGetTextDatum(r->tenant_id) : PointerGetDatum(&r->tid);
		col[1][i] = Int64GetDatum(r->id);
		col[2][i] = CStringGetTextDatum(r->outcome);
		col[3][i] = Int32GetDatum(r->attempt);
		col[4][i] = TimestampTzGetDatum(r->started_at);
		col[5][i] = Int32GetDatum(r->duration_ms);
		col[6][i] = Int32GetDatum(r->status_code);
		isnull[6][i] = (r->status_code == 0);
		col[7][i] = r->error ? CStringGetTextDatum(r->error) : (Datum) 0;
		isnull[7][i] = (r->error == NULL);
		col[8][i] = r->response ? CStringGetTextDatum(r->response) : (Datum) 0;
		isnull[8][i] = (r->response == NULL);
		col[9][i] = TimestampTzGetDatum(r->next_attempt_at);
		isnull[9][i] = (r->next_attempt_at == 0);
		col[10][i] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(r->started_at, r->duration_ms));
		isnull[10][i] = (strcmp(r->outcome, "delivered") != 0);
		col[11][i] = TimestampTzGetDatum(r->lease);
	}
	for (int c = 0; c < 12; c++)
	{
		int			dims[1] = {n};
		int			lbs[1] = {1};

		v[c] = PointerGetDatum(construct_md_array(col[c], isnull[c], 1, dims, lbs,
												  elem[c].type, elem[c].len,
												  elem[c].byval, elem[c].align));
	}

	if (!by_key)
	{
		SavedPlan(&record_plan,
				  RECORD_SET
				  "       AS r(tid, id, " RECORD_COLUMNS_OUT
				  " WHERE d.ctid = r.tid AND d.id = r.id"
				  "   AND d.lease_expires_at = r.lease"

		/*
		 * Whatever join is chosen, deliveries is read only at the batch's
		 * rows.
		 */
				  "   AND d.ctid = ANY ($1)"

		/*
		 * And only rows that nobody has locked since the claim wrote them: a
		 * row version that a SELECT ... FOR UPDATE locks gets that locker's
		 * xmax, and the worker must not wait for it (StoreRecord()).  The
		 * claim's own version has none, so this costs nothing where there is
		 * no lock, unlike a locking subquery (FOR NO KEY UPDATE SKIP LOCKED),
		 * which wrote a WAL record per row more.  A row whose xmax a finished
		 * locker left behind goes the slower way.  Through row_unlocked(),
		 * which the planner expects to hold for every row: estimated as "xmax
		 * = 0", a batch looked like one row (row_unlocked.c).
		 */
				  "   AND integration.row_unlocked(d.xmax)"
				  " RETURNING d.tenant_id, d.id",
				  12, types, CURSOR_OPT_GENERIC_PLAN);
		RunPlan(record_plan, v, false, SPI_OK_UPDATE_RETURNING, "recording delivery results");
	}
	else
	{
		/* Rare (see StoreRecord()), so planned for its arrays each time. */
		prepare(&record_by_key_plan,
				RECORD_SET
				"       AS r(tenant_id, id, " RECORD_COLUMNS_OUT
				" WHERE d.tenant_id = r.tenant_id AND d.id = r.id"
				"   AND d.lease_expires_at = r.lease"
				" RETURNING d.tenant_id, d.id",
				12, types);
		RunPlan(record_by_key_plan, v, false, SPI_OK_UPDATE_RETURNING, "recording moved delivery results");
	}
}

/* A delivery's key, as the record statements return it. */
typedef struct DeliveryKey
{
	int64		id;
	char	   *tenant_id;
} DeliveryKey;

static int
delivery_key_cmp(const void *a, const void *b)
{
	const DeliveryKey *x = a;
	const DeliveryKey *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return strcmp(x->tenant_id, y->tenant_id);
}

/* The keys in SPI_tuptable, sorted. */
static DeliveryKey *
returned_keys(int *n)
{
	DeliveryKey *keys = palloc(sizeof(DeliveryKey) * Max(SPI_processed, 1));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		keys[i].tenant_id = copy_text(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, NULL);
		keys[i].id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	*n = (int) SPI_processed;
	qsort(keys, *n, sizeof(DeliveryKey), delivery_key_cmp);
	return keys;
}

static bool
was_written(DeliveryResult *r, DeliveryKey *keys, int n)
{
	DeliveryKey key = {r->id, r->tenant_id};

	return bsearch(&key, keys, n, sizeof(DeliveryKey), delivery_key_cmp) != NULL;
}

/*
 * The rows of results that someone else holds locked.  Locks the others (SKIP LOCKED,
 * never waiting) and returns the keys of those it could not lock but that still carry
 * their claim's lease (sorted), their number in *nheld.
 */
static DeliveryKey *
lock_for_recording(DeliveryResult *results, int n, int *nheld)
{
	Oid			types[3] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[3];
	char	  **tenants = palloc(sizeof(char *) * n);
	int64	   *ids = palloc(sizeof(int64) * n);
	Datum	   *leases = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
	{
		tenants[i] = results[i].tenant_id;
		ids[i] = results[i].id;
		leases[i] = TimestampTzGetDatum(results[i].lease);
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = Int8ArrayParam(ids, n);
	args[2] = ArrayParam(leases, NULL, n, TIMESTAMPTZOID);
	/* Rare: planned for its arrays each time. */
	prepare(&record_lock_plan,
			"WITH r AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			"                                    pg_catalog.unnest($3)) AS r(tenant_id, id, lease)),"
			" mine AS (SELECT d.tenant_id, d.id FROM integration.deliveries d, r"
			"           WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.lease_expires_at = r.lease"
			"             FOR NO KEY UPDATE OF d SKIP LOCKED)"
			" SELECT d.tenant_id, d.id FROM integration.deliveries d, r"
			"  WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.lease_expires_at = r.lease"
			"    AND (d.tenant_id, d.id) NOT IN (SELECT tenant_id, id FROM mine)",
			3, types);
	RunPlan(record_lock_plan, args, false, SPI_OK_SELECT, "locking deliveries to record");
	return returned_keys(nheld);
}

/*
 * The deliveries of results that a claim skipped because the worker had disabled their
 * endpoint stay skipped only if it is still disabled, which this checks under FOR KEY
 * SHARE of the endpoint, held to commit.  enable_webhook() locks it FOR UPDATE before
 * it replays: either this commits first and the replay sees the skipped row, or the
 * endpoint is found enabled (or locked, so perhaps being enabled) and the delivery goes
 * back to pending, due now, for the worker to claim again.  Only results with the
 * outcome skipped, so nothing runs in a batch without them.
 */
static void
confirm_skipped(DeliveryResult *results, int n)
{
	Oid			types[3] = {TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		args[3];
	char	  **tenants = NULL;
	int64	   *ids = NULL;
	int64	   *endpoints = NULL;
	int			nskipped = 0;

	for (int i = 0; i < n; i++)
	{
		if (strcmp(results[i].outcome, "skipped") != 0)
			continue;
		if (tenants == NULL)
		{
			tenants = palloc(sizeof(char *) * n);
			ids = palloc(sizeof(int64) * n);
			endpoints = palloc(sizeof(int64) * n);
		}
		tenants[nskipped] = results[i].tenant_id;
		ids[nskipped] = results[i].id;
		endpoints[nskipped++] = results[i].endpoint_id;
	}
	if (nskipped == 0)
		return;
	args[0] = TextArrayParam(tenants, nskipped);
	args[1] = Int8ArrayParam(ids, nskipped);
	args[2] = Int8ArrayParam(endpoints, nskipped);
	/* Rare: planned for its arrays each time. */
	prepare(&confirm_skipped_plan,
			"WITH r AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			"                                    pg_catalog.unnest($3)) AS r(tenant_id, id, endpoint_id)),"
			" still AS (SELECT e.tenant_id, e.id FROM integration.webhook_endpoints e"
			"            WHERE (e.tenant_id, e.id) IN (SELECT r.tenant_id, r.endpoint_id FROM r)"
			"              AND NOT e.is_active AND e.disabled_at IS NOT NULL AND e.deleted_at IS NULL"
			"              FOR KEY SHARE SKIP LOCKED)"
			" UPDATE integration.deliveries d"
			"    SET status = 'pending', next_attempt_at = pg_catalog.now(), last_error = NULL"
			"   FROM r"
			"  WHERE d.tenant_id = r.tenant_id AND d.id = r.id AND d.status = 'skipped'"
			"    AND (r.tenant_id, r.endpoint_id) NOT IN (SELECT s.tenant_id, s.id FROM still s)",
			3, types);
	RunPlan(confirm_skipped_plan, args, false, SPI_OK_UPDATE, "confirming skipped deliveries");
	if (SPI_processed > 0)
		WakeWorkerForDueAtCommit();
}

/*
 * Writes a batch of attempt outcomes back, without ever waiting for a row lock.
 * Results whose delivery is gone (its event was deleted) or no longer holds their
 * claim are dropped, attempts history and logs included.  Results whose row someone
 * else holds locked (a hand-run UPDATE in an open transaction, say) are not written but
 * moved to the front of results, to be tried again, and their number is returned.
 *
 * The common case is one statement: every row is found at its ctid and written.  Only
 * for the rows it did not write does a second statement tell the locked ones (held by
 * someone else, still carrying their claim's lease) from the others, which it locks;
 * those go by key, as a row that moved while its request was out (VACUUM FULL,
 * CLUSTER, an UPDATE by hand) is not at its ctid any more, and would otherwise stay
 * 'sending' until the worker restarted.
 *
 * disabled gets the endpoints that the outcomes made the worker disable
 * (endpoint_disable.c), in the current memory context.
 */
int
StoreRecord(DeliveryResult *results, int n, EndpointRefs *disabled)
{
	int			nkeys;
	DeliveryKey *keys;
	DeliveryResult *written = results;
	int			nwritten = n;
	int			ndeferred = 0;

	disabled->n = 0;
	if (n == 0)
		return 0;
	record_outcomes(results, n, false);
	if (SPI_processed < (uint64) n)
	{
		DeliveryResult *left = palloc(sizeof(DeliveryResult) * n);
		DeliveryResult *deferred = palloc(sizeof(DeliveryResult) * n);
		DeliveryKey *held;
		int			nleft = 0;

		keys = returned_keys(&nkeys);
		written = palloc(sizeof(DeliveryResult) * n);
		nwritten = 0;
		for (int i = 0; i < n; i++)
		{
			if (was_written(&results[i], keys, nkeys))
				written[nwritten++] = results[i];
			else
				left[nleft++] = results[i];
		}
		held = lock_for_recording(left, nleft, &nkeys);
		{
			DeliveryResult *rest = palloc(sizeof(DeliveryResult) * Max(nleft, 1));
			int			nrest = 0;

			for (int i = 0; i < nleft; i++)
			{
				if (was_written(&left[i], held, nkeys))
					deferred[ndeferred++] = left[i];
				else
					rest[nrest++] = left[i];
			}
			if (nrest > 0)
			{
				record_outcomes(rest, nrest, true);
				keys = returned_keys(&nkeys);
				for (int i = 0; i < nrest; i++)
					if (was_written(&rest[i], keys, nkeys))
						written[nwritten++] = rest[i];
			}
		}
		/* The deferred ones first, as the caller keeps results[0..ndeferred). */
		if (ndeferred > 0)
		{
			DeliveryResult *others = palloc(sizeof(DeliveryResult) * n);
			int			nothers = 0;

			keys = palloc(sizeof(DeliveryKey) * ndeferred);
			for (int i = 0; i < ndeferred; i++)
			{
				keys[i].id = deferred[i].id;
				keys[i].tenant_id = deferred[i].tenant_id;
			}
			qsort(keys, ndeferred, sizeof(DeliveryKey), delivery_key_cmp);
			for (int i = 0; i < n; i++)
				if (!was_written(&results[i], keys, ndeferred))
					others[nothers++] = results[i];
			memcpy(results, deferred, sizeof(DeliveryResult) * ndeferred);
			memcpy(results + ndeferred, others, sizeof(DeliveryResult) * nothers);
		}
	}

	record_failed_attempts(written, nwritten);
	confirm_skipped(written, nwritten);
	EndpointOutcomesRecorded(written, nwritten, disabled);
	return ndeferred;
}

/*
 * Gives claims back unsent: 'pending' again, due at their own due time, lease gone,
 * attempts untouched.  A row that is no longer the claim's (requeued, moved) or that
 * someone has locked since the claim wrote it is left alone, never waited for: it
 * stays 'sending' until its lease runs out and a reconcile returns it.  Returns how
 * many were given back.  Rare (an endpoint's circuit opened), so planned each time.
 */
int
StoreReturnClaims(const ReturnedClaim *claims, int n)
{
	Oid			types[4] = {TIDARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		args[4];
	Datum	   *tids = palloc(sizeof(Datum) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	Datum	   *leases = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *dues = palloc(sizeof(Datum) * Max(n, 1));
	int			rc;

	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++)
	{
		tids[i] = PointerGetDatum(&claims[i].tid);
		ids[i] = claims[i].id;
		leases[i] = TimestampTzGetDatum(claims[i].lease);
		dues[i] = TimestampTzGetDatum(claims[i].due);
	}
	args[0] = PointerGetDatum(construct_array(tids, n, TIDOID, sizeof(ItemPointerData), false,
											  TYPALIGN_SHORT));
	args[1] = Int8ArrayParam(ids, n);
	args[2] = ArrayParam(leases, NULL, n, TIMESTAMPTZOID);
	args[3] = ArrayParam(dues, NULL, n, TIMESTAMPTZOID);
	rc = SPI_execute_with_args("UPDATE integration.deliveries d"
							   "   SET status = 'pending', next_attempt_at = r.due, lease_expires_at = NULL"
							   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
							   "                  pg_catalog.unnest($3), pg_catalog.unnest($4))"
							   "       AS r(tid, id, lease, due)"
							   " WHERE d.ctid = r.tid AND d.id = r.id AND d.lease_expires_at = r.lease"
							   "   AND d.ctid = ANY ($1) AND integration.row_unlocked(d.xmax)",
							   4, types, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "giving claims back failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Claims one due delivery for each endpoint in probes (their circuits are half open),
 * the longest due first, through deliveries_endpoint_due_idx, and appends the claims
 * to list; for each endpoint that had none due, finds when its next one comes due.
 * Rows others hold locked are skipped, and such an endpoint is looked at again a
 * second later.
 */
void
StoreClaimProbes(int lease_ms, ProbeRequest *probes, int n, ClaimList *list)
{
	Oid			types[3] = {TEXTARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		args[3];
	char	  **tenants = palloc(sizeof(char *) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	int			first = list->count;
	int			nmissing = 0;
	int			rc;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		tenants[i] = (char *) probes[i].tenant_id;
		ids[i] = probes[i].endpoint_id;
		probes[i].found = false;
		probes[i].next_at = 0;
	}
	args[0] = TextArrayParam(tenants, n);
	args[1] = TimestampTzGetDatum(lease_expiry(lease_ms));
	args[2] = Int8ArrayParam(ids, n);
	rc = SPI_execute_with_args(CLAIM_DUE("due AS (SELECT p.ctid"
										 "    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($3))"
										 "         AS k(tenant_id, endpoint_id)"
										 "    CROSS JOIN LATERAL ("
										 "      SELECT d.ctid FROM integration.deliveries d"
										 "       WHERE " ENDPOINT_DUE("k", "<=", "pg_catalog.now()")
										 "       ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT 1"
										 "       FOR UPDATE SKIP LOCKED) p)"),
							   3, types, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "claiming probes failed: %s", SPI_result_code_string(rc));
	(void) append_claims(list, DatumGetTimestampTz(args[1]));
	claims_read_endpoints(list, first);
	for (int c = first; c < list->count; c++)
		for (int i = 0; i < n; i++)
			if (list->items[c].endpoint_id == probes[i].endpoint_id &&
				strcmp(list->items[c].tenant_id, probes[i].tenant_id) == 0)
				probes[i].found = true;

	for (int i = 0; i < n; i++)
		if (!probes[i].found)
		{
			tenants[nmissing] = (char *) probes[i].tenant_id;
			ids[nmissing++] = probes[i].endpoint_id;
		}
	if (nmissing == 0)
		return;
	args[0] = TextArrayParam(tenants, nmissing);
	args[1] = Int8ArrayParam(ids, nmissing);
	types[1] = INT8ARRAYOID;
	rc = SPI_execute_with_args("SELECT k.tenant_id, k.endpoint_id,"
							   "       (SELECT d.next_attempt_at FROM integration.deliveries d"
							   "         WHERE " ENDPOINT_DUE("k", ">=", "'-infinity'::timestamptz")
							   "         ORDER BY d.tenant_id, d.endpoint_id, d.next_attempt_at LIMIT 1)"
							   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
							   "       AS k(tenant_id, endpoint_id)",
							   2, types, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "finding due probes failed: %s", SPI_result_code_string(rc));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *tenant = SPI_getvalue(tup, desc, 1);
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		d = SPI_getbinval(tup, desc, 3, &isnull);
		TimestampTz next_at = isnull ? 0 : DatumGetTimestampTz(d);

		/* Due already, and skipped: someone holds it locked. */
		if (next_at != 0 && next_at <= GetCurrentTransactionStartTimestamp())
			next_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		for (int i = 0; i < n; i++)
			if (probes[i].endpoint_id == id && strcmp(probes[i].tenant_id, tenant) == 0)
				probes[i].next_at = next_at;
	}
}
