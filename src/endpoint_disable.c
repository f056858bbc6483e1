/*
 * endpoint_disable.c
 *		Endpoints the worker disables, and the streaks of failures that lead there.
 *
 * An endpoint is disabled when its receiver answers 410 Gone, or when every attempt to
 * it has failed for integration.disable_after (5 days by default).  The start of each
 * endpoint's streak of failures is kept in integration.endpoint_failures: its row
 * appears at the first failure after a success (failing_since) and goes at the next
 * success.  Both are written in the store transaction that writes the outcomes
 * (StoreRecord() calls EndpointOutcomesRecorded()), from what the batch says:
 *   - a batch of successes to endpoints that are not failing runs no statement: the
 *     worker remembers which endpoints may have a row (the failing set: read from the
 *     table when first needed, and again after any failed store transaction, since
 *     the set may hold what that transaction did not commit), and deletes only theirs;
 *   - a batch with failures runs one statement, which adds the new streaks and returns
 *     the endpoints whose streak began integration.disable_after ago or earlier;
 *   - those, and the endpoints that answered 410, are disabled by one more statement,
 *     which sets disabled_reason and disabled_at and logs webhook.disabled; then the
 *     tenant's other endpoints that subscribe to endpoint.disabled get that event
 *     (publish.c), in the same transaction.
 * A failure is an attempt that did not deliver, except those that sent no request for a
 * reason of the worker's or the operator's (a secret that does not decrypt, a request
 * libcurl refused, an endpoint disabled through the API): those say nothing about the
 * receiver.  A skipped delivery is neither a success nor a failure.
 *
 * An endpoint the worker disabled (disabled_at set) keeps its subscriptions: its
 * deliveries are recorded as skipped, without a request (delivery_fan_out.c), until
 * enable_webhook() enables it again, ends its streak, and can replay them.
 *
 * Locks: the worker skips rows others hold locked, except in endpoint_failures, where
 * a streak that an open transaction of the API is ending (enable_webhook(),
 * update_webhook(), delete_webhook()) is waited for, up to the worker's lock_timeout:
 * neither the insert of a new streak nor the delete of the old one can skip it without
 * leaving a streak that would disable a healthy endpoint, or none for a failing one.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "endpoint_disable.h"
#include "publish.h"
#include "spi_plan.h"
#include "tenant.h"

int			integration_disable_after_s = 5 * SECS_PER_DAY;

/* An endpoint of a tenant, as a hash key. */
typedef struct EndpointKey
{
	int64		id;
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
} EndpointKey;

/* What one batch of outcomes says about one endpoint. */
typedef struct EndpointOutcomes
{
	EndpointKey key;			/* hash key */
	TimestampTz last_success;	/* 0: none in the batch */
	TimestampTz first_failure;	/* the first failure after last_success; 0:
								 * none */
	bool		gone;			/* it answered 410 Gone */
} EndpointOutcomes;

/* The endpoints that may have a row in endpoint_failures; NULL: not read yet. */
static HTAB *failing = NULL;

static SPIPlanPtr load_plan = NULL;
static SPIPlanPtr recovered_plan = NULL;
static SPIPlanPtr streak_plan = NULL;
static SPIPlanPtr disable_plan = NULL;

void
EndpointDisableDefineGucs(void)
{
	DefineCustomIntVariable("integration.disable_after",
							"How long every attempt to an endpoint must have failed before the worker disables it; 0: never.",
							NULL, &integration_disable_after_s, 5 * SECS_PER_DAY, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

/*
 * Forgets the failing set and the saved plans, after a store transaction failed (the
 * set may hold what it did not commit) or the extension was dropped.
 */
void
EndpointFailuresForget(void)
{
	SPIPlanPtr *plans[] = {&load_plan, &recovered_plan, &streak_plan, &disable_plan};

	if (failing != NULL)
		hash_destroy(failing);
	failing = NULL;
	ForgetPlans(plans, lengthof(plans));
}

static void
make_key(EndpointKey *key, const char *tenant_id, int64 id)
{
	memset(key, 0, sizeof(*key));
	key->id = id;
	strlcpy(key->tenant_id, tenant_id, sizeof(key->tenant_id));
}

/* A hash table of entries of entrysize keyed by EndpointKey, in mcxt. */
static HTAB *
endpoint_hash(const char *name, Size entrysize, MemoryContext mcxt)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(EndpointKey);
	ctl.entrysize = entrysize;
	ctl.hcxt = mcxt;
	return hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* The failing set, read from endpoint_failures (every tenant's) when not known. */
static HTAB *
failing_set(void)
{
	if (failing != NULL)
		return failing;
	failing = endpoint_hash("integration failing endpoints", sizeof(EndpointKey),
							TopMemoryContext);
	SavedPlan(&load_plan, "SELECT tenant_id, endpoint_id FROM integration.endpoint_failures",
			  0, NULL, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(load_plan, NULL, false, SPI_OK_SELECT, "reading failing endpoints");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		EndpointKey key;
		char	   *tenant = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		make_key(&key, tenant,
				 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2,
											 &isnull)));
		(void) hash_search(failing, &key, HASH_ENTER, NULL);
	}
	return failing;
}

/*
 * Whether an outcome says the receiver failed: not delivered, and not for want of a
 * request the worker itself could not make (see the banner).
 */
static bool
receiver_failed(const DeliveryResult *r)
{
	if (strcmp(r->outcome, "pending") != 0 && strcmp(r->outcome, "failed") != 0)
		return false;
	return r->error_class == NULL ||
		(strcmp(r->error_class, "secret_unavailable") != 0 &&
		 strcmp(r->error_class, "invalid_request") != 0 &&
		 strcmp(r->error_class, "endpoint_disabled") != 0);
}

/* What the batch says about each endpoint it names (EndpointOutcomes by key). */
static HTAB *
summarise(DeliveryResult *results, int n)
{
	HTAB	   *eps = endpoint_hash("integration batch endpoints", sizeof(EndpointOutcomes),
									CurrentMemoryContext);

	/* First the last success of each, then the failures after it. */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < n; i++)
		{
			DeliveryResult *r = &results[i];
			EndpointKey key;
			EndpointOutcomes *e;
			bool		found;

			make_key(&key, r->tenant_id, r->endpoint_id);
			e = hash_search(eps, &key, HASH_ENTER, &found);
			if (!found)
			{
				e->last_success = e->first_failure = 0;
				e->gone = false;
			}
			if (pass == 0)
			{
				if (strcmp(r->outcome, "delivered") == 0)
					e->last_success = Max(e->last_success, r->started_at);
				e->gone = e->gone || r->status_code == 410;
			}
			else if (receiver_failed(r) && r->started_at >= e->last_success &&
					 (e->first_failure == 0 || r->started_at < e->first_failure))
				e->first_failure = r->started_at;
		}
	}
	return eps;
}

/* The arrays of a statement's parameters: tenants, endpoint ids, times. */
typedef struct EndpointArrays
{
	int			n;
	Datum	   *tenants;
	Datum	   *ids;
	Datum	   *times;
	bool	   *time_nulls;
	Datum	   *flags;
} EndpointArrays;

static void
arrays_init(EndpointArrays *a, int max)
{
	a->n = 0;
	a->tenants = palloc(sizeof(Datum) * Max(max, 1));
	a->ids = palloc(sizeof(Datum) * Max(max, 1));
	a->times = palloc(sizeof(Datum) * Max(max, 1));
	a->time_nulls = palloc(sizeof(bool) * Max(max, 1));
	a->flags = palloc(sizeof(Datum) * Max(max, 1));
}

static void
arrays_add(EndpointArrays *a, const EndpointKey *key, TimestampTz t, bool flag)
{
	a->tenants[a->n] = CStringGetTextDatum(key->tenant_id);
	a->ids[a->n] = Int64GetDatum(key->id);
	a->times[a->n] = TimestampTzGetDatum(t);
	a->time_nulls[a->n] = (t == 0);
	a->flags[a->n] = BoolGetDatum(flag);
	a->n++;
}

/* Ends the streaks of the endpoints in a (a success came after their failures). */
static void
end_streaks(EndpointArrays *a)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];

	args[0] = ArrayParam(a->tenants, NULL, a->n, TEXTOID);
	args[1] = ArrayParam(a->ids, NULL, a->n, INT8OID);
	SavedPlan(&recovered_plan,
			  "DELETE FROM integration.endpoint_failures f"
			  " USING ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(tenant_id, endpoint_id)"
			  " WHERE f.tenant_id = r.tenant_id AND f.endpoint_id = r.endpoint_id",
			  2, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(recovered_plan, args, false, SPI_OK_DELETE, "ending streaks of failures");
}

/*
 * Starts the streaks of the endpoints in a that have none (times: their first failure)
 * and adds to due those whose streak started at threshold or earlier.
 */
static void
record_streaks(EndpointArrays *a, TimestampTz threshold, EndpointArrays *due)
{
	Oid			types[4] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID};
	Datum		args[4];

	args[0] = ArrayParam(a->tenants, NULL, a->n, TEXTOID);
	args[1] = ArrayParam(a->ids, NULL, a->n, INT8OID);
	args[2] = ArrayParam(a->times, NULL, a->n, TIMESTAMPTZOID);
	args[3] = TimestampTzGetDatum(threshold);

	/*
	 * The SELECT sees endpoint_failures as it was before the INSERT: the
	 * streaks begun before this batch.
	 */
	SavedPlan(&streak_plan,
			  "WITH r AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			  "                                    pg_catalog.unnest($3))"
			  "             AS r(tenant_id, endpoint_id, since)),"
			  " started AS (INSERT INTO integration.endpoint_failures (tenant_id, endpoint_id, failing_since)"
			  "             SELECT r.tenant_id, r.endpoint_id, r.since FROM r ON CONFLICT DO NOTHING)"
			  " SELECT f.tenant_id, f.endpoint_id, f.failing_since"
			  "   FROM integration.endpoint_failures f JOIN r"
			  "     ON f.tenant_id = r.tenant_id AND f.endpoint_id = r.endpoint_id"
			  "  WHERE f.failing_since <= $4",
			  4, types, CURSOR_OPT_GENERIC_PLAN);
	RunPlan(streak_plan, args, false, SPI_OK_SELECT, "recording streaks of failures");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		EndpointKey key;

		make_key(&key, SPI_getvalue(tup, desc, 1),
				 DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)));
		arrays_add(due, &key, DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull)), false);
	}
}

/* An endpoint the disable statement disabled, and the payload of its event. */
typedef struct DisabledEndpoint
{
	char	   *tenant_id;
	int64		id;
	Jsonb	   *payload;
} DisabledEndpoint;

/*
 * Disables the endpoints in d (times: when their streak began, NULL for one that
 * answered 410 only; flags: it answered 410) that are still active and not locked by
 * anyone, logs each, and publishes endpoint.disabled for each to the tenant's other
 * endpoints that subscribe to it.  Those it disabled go into disabled.
 */
static void
disable_endpoints(EndpointArrays *d, EndpointRefs *disabled)
{
	Oid			types[5] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, BOOLARRAYOID, TEXTOID};
	Datum		args[5];
	DisabledEndpoint *off;
	int			noff;

	/* With its unit, as SHOW shows it. */
	const char *after = GetConfigOptionByName("integration.disable_after", NULL, false);

	args[0] = ArrayParam(d->tenants, NULL, d->n, TEXTOID);
	args[1] = ArrayParam(d->ids, NULL, d->n, INT8OID);
	args[2] = ArrayParam(d->times, d->time_nulls, d->n, TIMESTAMPTZOID);
	args[3] = ArrayParam(d->flags, NULL, d->n, BOOLOID);
	args[4] = CStringGetTextDatum(after);
	/* Rare: planned for its arrays each time. */
	SavedPlan(&disable_plan,
			  "WITH d AS (SELECT d.tenant_id, d.id, d.since,"
			  "                  CASE WHEN d.gone THEN 'the receiver answered 410 Gone'"
			  "                       ELSE pg_catalog.format('every attempt failed for longer than"
			  " integration.disable_after (%s), since %s', $5, d.since) END AS reason"
			  "             FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
			  "                             pg_catalog.unnest($3), pg_catalog.unnest($4))"
			  "                  AS d(tenant_id, id, since, gone)),"
			  " off AS ("
			  "  UPDATE integration.webhook_endpoints e"
			  "     SET is_active = false, disabled_reason = d.reason,"
			  "         disabled_at = pg_catalog.now(), updated_at = pg_catalog.now()"
			  "    FROM d"
			  "   WHERE e.tenant_id = d.tenant_id AND e.id = d.id"
	/* Never waits: an endpoint someone holds is disabled at a later failure. */
			  "     AND e.ctid = ANY (ARRAY(SELECT x.ctid FROM integration.webhook_endpoints x, d"
			  "                              WHERE x.tenant_id = d.tenant_id AND x.id = d.id"
			  "                                AND x.is_active AND x.deleted_at IS NULL"
			  "                                FOR NO KEY UPDATE OF x SKIP LOCKED))"
			  "  RETURNING e.tenant_id, e.id, e.name, e.url, e.disabled_at, d.reason, d.since),"
			  " logged AS ("
			  "  INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, context)"
			  "  SELECT o.tenant_id, 'warning', 'worker', 'webhook.disabled',"
			  "         pg_catalog.format('webhook %s disabled: %s', o.id, o.reason),"
			  "         pg_catalog.jsonb_build_object('endpoint_id', o.id, 'reason', o.reason,"
			  "                                       'failing_since', o.since)"
			  "    FROM off o)"
			  " SELECT o.tenant_id, o.id,"
			  "        pg_catalog.jsonb_build_object('endpoint_id', o.id, 'name', o.name, 'url', o.url,"
			  "                                      'reason', o.reason, 'failing_since', o.since,"
			  "                                      'disabled_at', o.disabled_at)"
			  "   FROM off o",
			  5, types, CURSOR_OPT_CUSTOM_PLAN);
	RunPlan(disable_plan, args, false, SPI_OK_SELECT, "disabling endpoints");

	/* Copied out first: publishing runs statements of its own. */
	noff = (int) SPI_processed;
	off = palloc(sizeof(DisabledEndpoint) * Max(noff, 1));
	for (int i = 0; i < noff; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		off[i].tenant_id = SPI_getvalue(tup, desc, 1);
		off[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		off[i].payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	}
	disabled->tenant_ids = palloc(sizeof(char *) * Max(noff, 1));
	disabled->ids = palloc(sizeof(int64) * Max(noff, 1));
	for (int i = 0; i < noff; i++)
	{
		disabled->tenant_ids[i] = off[i].tenant_id;
		disabled->ids[i] = off[i].id;
	}
	disabled->n = noff;
	for (int i = 0; i < noff; i++)
		(void) PublishWorkerEvent(off[i].tenant_id, ENDPOINT_DISABLED_EVENT, off[i].payload,
								  off[i].id);
}

/*
 * Called by StoreRecord() with the outcomes it just wrote, in its transaction: keeps
 * the streaks of failures current and disables the endpoints that answered 410 or whose
 * streak has lasted integration.disable_after (see the banner).  The endpoints it
 * disabled go into disabled, for the worker to close their circuits once this commits.
 */
void
EndpointOutcomesRecorded(DeliveryResult *results, int n, EndpointRefs *disabled)
{
	HTAB	   *eps;
	HTAB	   *set;
	HASH_SEQ_STATUS seq;
	EndpointOutcomes *e;
	EndpointArrays recovered;
	EndpointArrays failed;
	EndpointArrays due;
	long		neps;

	disabled->n = 0;
	if (n == 0)
		return;
	eps = summarise(results, n);
	neps = hash_get_num_entries(eps);
	set = failing_set();
	arrays_init(&recovered, neps);
	arrays_init(&failed, neps);
	arrays_init(&due, neps);

	hash_seq_init(&seq, eps);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->last_success != 0 && hash_search(set, &e->key, HASH_FIND, NULL) != NULL)
		{
			arrays_add(&recovered, &e->key, 0, false);
			(void) hash_search(set, &e->key, HASH_REMOVE, NULL);
		}
		if (e->first_failure != 0)
		{
			arrays_add(&failed, &e->key, e->first_failure, false);
			/* Before the insert: the set holds at least what the table does. */
			(void) hash_search(set, &e->key, HASH_ENTER, NULL);
		}
	}
	if (recovered.n > 0)
		end_streaks(&recovered);
	if (failed.n > 0)
		record_streaks(&failed, integration_disable_after_s > 0 ?
					   GetCurrentTransactionStartTimestamp() -
					   (TimestampTz) integration_disable_after_s * USECS_PER_SEC :
					   DT_NOBEGIN, &due);

	/* 410: disabled at once, whatever the streak. */
	hash_seq_init(&seq, eps);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!e->gone)
			continue;
		for (int i = 0; i < due.n; i++)
			if (DatumGetInt64(due.ids[i]) == e->key.id &&
				strcmp(TextDatumGetCString(due.tenants[i]), e->key.tenant_id) == 0)
			{
				due.flags[i] = BoolGetDatum(true);
				e->gone = false;
			}
		if (e->gone)
			arrays_add(&due, &e->key, 0, true);
	}
	if (due.n > 0)
		disable_endpoints(&due, disabled);
}
