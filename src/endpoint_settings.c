/*
 * endpoint_settings.c
 *		An endpoint's request settings, as the worker reads them: the one reader of
 *		webhook_endpoints that every path making or refreshing a claim uses.
 *
 * The fan-out (which locks the endpoints it makes deliveries for), the claims of due
 * deliveries and the worker's refresh of claims it holds all read an endpoint's url,
 * secrets, headers, timeout, retry schedule, rate limit and state through one
 * statement (READ_ENDPOINTS), and copy its columns in one place
 * (copy_endpoint_columns()): a column added to what a request needs is added here
 * once.  Secrets and custom header values are decrypted here, once per read of an
 * endpoint, on the worker's main thread in its store transaction; the HTTP thread
 * never sees a key.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "delivery_store.h"
#include "endpoint_settings.h"
#include "secret_box.h"
#include "secret_object.h"
#include "spi_plan.h"

static SPIPlanPtr read_endpoints_plan = NULL;
static SPIPlanPtr lock_endpoints_plan = NULL;
static SPIPlanPtr purge_retired_plan = NULL;

/* The plans kept here, and the tables whose size their shape depends on. */
static const StorePlanSlot plans[] = {
	{&read_endpoints_plan, STORE_ENDPOINTS},
	{&lock_endpoints_plan, STORE_ENDPOINTS},
	{&purge_retired_plan, 0},
};

void
EndpointSettingsForgetPlans(int tables)
{
	StoreForgetPlansOf(plans, lengthof(plans), tables);
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

	ep->url = ResultText(tup, desc, col, NULL);
	ep->secret = ResultText(tup, desc, col + 1, NULL);
	d = SPI_getbinval(tup, desc, col + 2, &isnull);
	ep->headers = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(tup, desc, col + 3, &isnull);
	ep->timeout_ms = isnull ? 0 : DatumGetInt32(d);
	ep->retry_schedule = ResultText(tup, desc, col + 4, NULL);
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

static uint32
endpoint_key_hash(const void *key, Size keysize)
{
	const EndpointSettingsKey *k = key;

	return hash_combine(hash_bytes_uint32((uint32) k->id ^ (uint32) (k->id >> 32)),
						hash_bytes((const unsigned char *) k->tenant_id, strlen(k->tenant_id)));
}

static int
endpoint_key_match(const void *a, const void *b, Size keysize)
{
	const EndpointSettingsKey *x = a;
	const EndpointSettingsKey *y = b;

	return x->id == y->id && strcmp(x->tenant_id, y->tenant_id) == 0 ? 0 : 1;
}

/*
 * A hash table, in the current memory context, of entries of entrysize bytes that
 * begin with an EndpointSettingsKey.
 */
HTAB *
EndpointSettingsTable(const char *name, long nelem, Size entrysize)
{
	return StoreBatchHash(name, nelem, sizeof(EndpointSettingsKey), entrysize, endpoint_key_hash,
						  endpoint_key_match);
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

/* Wipes ep's decrypted secrets: it has none, and ep->secret_error says why. */
static void
forget_secrets(EndpointSettings *ep)
{
	if (ep->secret)
		SecretFree(ep->secret, strlen(ep->secret));
	for (int i = 0; i < ep->retired.count; i++)
		if (ep->retired.secrets[i])
			SecretFree(ep->retired.secrets[i], strlen(ep->retired.secrets[i]));
	ep->secret = NULL;
	ep->retired.count = 0;
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
		forget_secrets(ep);
}

/* What open_header_value() needs: the endpoint and its headers' row context. */
typedef struct HeaderOpening
{
	EndpointSettings *ep;
	SecretContext row;
	bool		opened;			/* every value so far opened */
} HeaderOpening;

/* One custom header's value decrypted, for SecretObjectMap(). */
static char *
open_header_value(void *arg, const char *key, int keylen, char *value)
{
	HeaderOpening *ho = arg;
	SecretContext cxt;
	char	   *plain;
	int			plainlen;
	SecretOpenStatus status;

	if (!SecretIsSealed(value))
		return value;
	SecretContextForKey(&cxt, &ho->row, key, keylen);
	status = SecretOpen(value, &cxt, &plain, &plainlen);
	pfree(cxt.data);
	if (status == SECRET_OPENED)
		return plain;
	if (ho->opened && ho->ep->secret_error == NULL)
		ho->ep->secret_error = psprintf("custom header \"%.*s\": %s", Min(keylen, 100), key,
										SecretOpenError(status, value));
	ho->opened = false;
	return value;
}

/*
 * Decrypts ep's custom headers, each sealed on its own (secret_object.h), once per
 * read of the endpoint as its secret is.  If one does not decrypt, the endpoint's
 * deliveries fail with secret_unavailable, as for its secret, rather than go out
 * without a header (an Authorization, say) that the receiver needs.
 */
static void
open_endpoint_headers(EndpointSettings *ep)
{
	HeaderOpening ho;
	Jsonb	   *opened;

	if (ep->headers == NULL || JB_ROOT_COUNT(ep->headers) == 0)
		return;
	ho.ep = ep;
	ho.opened = true;
	SecretContextForRow(&ho.row, ENDPOINT_HEADERS_PURPOSE, ep->tenant_id, ep->id);
	opened = SecretObjectMap(ep->headers, open_header_value, &ho);
	pfree(ho.row.data);
	if (!ho.opened)
	{
		forget_secrets(ep);
		if (opened != ep->headers)
			pfree(opened);
		opened = NULL;
	}
	if (opened != ep->headers)
		pfree(ep->headers);
	ep->headers = opened;
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
 * into mcxt; an endpoint that does not exist gets url NULL and is unusable.  lock: lock
 * them FOR KEY SHARE, as a foreign key check would, SKIP LOCKED: an endpoint someone
 * else holds locked counts as not found instead of being waited for.
 */
static void
read_endpoint_settings(EndpointSettings *eps, int n, MemoryContext mcxt, bool lock)
{
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	char	  **tenants = palloc(sizeof(char *) * Max(n, 1));
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	SPIPlanPtr *plan = lock ? &lock_endpoints_plan : &read_endpoints_plan;

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
	SavedPlan(plan, lock ? READ_ENDPOINTS(" FOR KEY SHARE SKIP LOCKED") : READ_ENDPOINTS(""),
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
		open_endpoint_headers(ep);
		MemoryContextSwitchTo(old);
	}
}

/*
 * The current settings of the endpoints keyed in eps, for claims made earlier: a plain
 * read, since the worker sends with whatever the latest committed change says.
 */
void
StoreReadEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt)
{
	read_endpoint_settings(eps, n, mcxt, false);
}

/*
 * The settings of the endpoints keyed in eps, locked FOR KEY SHARE as a foreign key
 * check would lock them, for deliveries about to be made: an endpoint someone else
 * holds locked (perhaps on its way out) comes back not found (url NULL), never waited
 * for; StoreReadEndpoints() tells such an endpoint from one that is gone.
 */
void
StoreLockEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt)
{
	read_endpoint_settings(eps, n, mcxt, true);
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
