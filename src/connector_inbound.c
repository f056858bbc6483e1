/*
 * connector_inbound.c
 *		integration.receive_webhook(connector_id, headers, body): an inbound webhook of
 *		one of the current tenant's connectors, verified on its raw body, deduplicated
 *		and stored as integration.inbound_events; and the settings of inbound webhooks.
 *
 * What an HTTP front calls for each request, with the tenant set.  The steps:
 *   1. the connector and its kind, under row-level security: another tenant's
 *      connector is not found;
 *   2. the signature, by the kind's scheme, on the body as received: one of verify()'s
 *      schemes (signature.c, with integration.inbound_tolerance where it has a
 *      timestamp) or the kind's verify function, with the inbound secret and, until it
 *      expires, the previous one;
 *   3. the kind's normaliser turns the request into events (external id, topic, object,
 *      payload); an event without an id gets one from a hash of the body;
 *   4. each event is inserted with ON CONFLICT DO NOTHING on the unique index of live
 *      (tenant, connector, external id): of two sessions receiving the same delivery,
 *      the second waits for the first and finds its row (test/specs/inbound_dedupe.spec).
 *      A row older than the dedupe window no longer counts: it is marked
 *      dedupe_expired and the insert tried again.  Retention removes a handled row
 *      only once it no longer counts (retention_connectors.c).  A stored event wakes
 *      the worker at commit (the inbound_events_written trigger), which runs its
 *      handlers.
 * For a kind that pulls (connector_kinds.record_function), step 3 also asks the kind
 * which synced record each event is about, and step 4 first passes that record through
 * the gate the pulled pages go through (integration._sync_gate(), sql/sync.sql): a
 * version already pulled or received is a duplicate, and nothing is stored for it; a
 * change is upserted into external_records and the event stored as above.  So a change
 * that comes both ways is handed to the handlers once, whichever comes first.
 *
 * Never raises for a bad request: whatever the request (no such connector, a wrong
 * signature, a body the normaliser cannot read), the answer is one row "rejected" and a
 * row in integration_logs saying why, which never quotes a secret or a header value.
 * Adapters run in a subtransaction, so their errors are caught the same way.  What
 * does raise: no tenant selected, and failures of the server itself.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "connector.h"
#include "event_pattern.h"
#include "signature.h"
#include "spi_plan.h"
#include "subtransaction.h"
#include "tenant.h"

/* Settings. */
int			integration_inbound_dedupe_window_s = 7 * SECS_PER_DAY;
int			integration_inbound_tolerance_s = 300;
int			integration_inbound_max_body_bytes = 1024 * 1024;

/* Longest external id stored as it is; a longer one is stored as its hash. */
#define EXTERNAL_ID_MAX_LEN 255
/* Inserts of one event tried before giving up (each lost race is a new round). */
#define STORE_ROUNDS 5
/* Longest adapter error message quoted in a log row. */
#define ERROR_QUOTE_MAX 500

void
ConnectorDefineGucs(void)
{
	DefineCustomIntVariable("integration.inbound_dedupe_window",
							"How long an inbound webhook's delivery id, once received, makes another receipt of it a duplicate; a connector's dedupe_window overrides it.",
							NULL, &integration_inbound_dedupe_window_s, 7 * SECS_PER_DAY,
							1, INT_MAX, PGC_USERSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.inbound_tolerance",
							"How far from now the timestamp of a signed inbound webhook may be, either way, where the scheme signs one.",
							NULL, &integration_inbound_tolerance_s, 300,
							0, 7 * SECS_PER_DAY, PGC_USERSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.inbound_max_body_bytes",
							"Largest inbound webhook body receive_webhook() reads; a larger one is rejected.",
							NULL, &integration_inbound_max_body_bytes, 1024 * 1024,
							1024, 64 * 1024 * 1024, PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
}

/* One request and what is known of its connector. */
typedef struct Inbound
{
	MemoryContext cxt;			/* the call's: outlives SPI */
	const char *tenant;
	int64		connector_id;
	Jsonb	   *headers;
	text	   *body;

	/* The connector's row and kind (load_connector()). */
	Datum		context;		/* integration.connector_context */
	Oid			context_type;
	char	   *kind;
	char	   *secrets[2];		/* stored: current, previous (NULL: none) */
	Datum		window;			/* interval */
	char	   *scheme;
	/* The kind's adapters, by signature (function_signature.c). */
	char	   *verify_fn;
	char	   *normalise_fn;
	char	   *record_fn;		/* NULL: the kind's events are not records */
} Inbound;

/* One event the normaliser found. */
typedef struct InboundEvent
{
	char	   *external_id;
	char	   *topic;
	char	   *object_id;
	Datum		payload;		/* jsonb; 0 when NULL */
	char	   *event;
	/* The record it is about (the kind's record adapter); NULL stream: none. */
	char	   *rec_stream;
	char	   *rec_id;
	Datum		rec_updated_at; /* timestamptz */
	Datum		rec_payload;	/* jsonb; 0: the event's */
} InboundEvent;

/* Why a request is rejected: a reason code for programs, a detail for people. */
typedef struct Rejection
{
	const char *reason;
	const char *level;
	char	   *detail;
} Rejection;

/*
 * The lookups' plans are kept for the life of the backend (a pooled connection's: hours),
 * and made again as the tables they read grow (KeptPlanGet(), spi_plan.c): planned
 * while inbound_events was empty, the expiry of an event found it by scanning
 * inbound_events_dedupe_idx over all of the tenant's events (38,570 pages at
 * 200,000 events, against 20 planned again), and the connector's lookup read every
 * connector.
 */
static KeptPlan connector_plan;
static SPIPlanPtr insert_plan;
static KeptPlan existing_plan;
static KeptPlan expire_plan;
static SPIPlanPtr log_plan;
static SPIPlanPtr gate_plan;
static KeptPlan live_plan;

/* Sets *rej and returns false, for the callers' chains of steps. */
static bool
reject(Rejection *rej, const char *reason, const char *level, char *detail)
{
	rej->reason = reason;
	rej->level = level;
	rej->detail = detail;
	return false;
}

typedef void (*GuardedFunction) (Inbound *in, void *arg);

typedef struct Guarded
{
	GuardedFunction fn;
	Inbound    *in;
	void	   *arg;
} Guarded;

static void
call_guarded(void *arg)
{
	Guarded    *g = arg;

	g->fn(g->in, g->arg);
}

/*
 * Runs fn in a subtransaction; false with *error set (in in->cxt) if it raised, whose
 * effects are then undone.  What fn leaves in SPI_tuptable survives a commit of the
 * subtransaction; callers copy what they keep to in->cxt inside fn.
 */
static bool
run_guarded(Inbound *in, GuardedFunction fn, void *arg, ErrorData **error)
{
	Guarded		g = {fn, in, arg};

	return RunInSubtransaction(call_guarded, &g, in->cxt, error);
}

/* An interval of secs seconds. */
static Datum
seconds_interval(int64 secs)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = secs * USECS_PER_SEC;
	return IntervalPGetDatum(iv);
}

/* A column of the first row of SPI_tuptable, as text in in->cxt, or NULL. */
static char *
column_text(Inbound *in, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(in->cxt, v) : NULL;
}

/* The connector and its kind (step 1). */
static bool
load_connector(Inbound *in, Rejection *rej)
{
	Oid			argtypes[3] = {TEXTOID, INT8OID, INTERVALOID};
	Datum		args[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;

	args[0] = CStringGetTextDatum(in->tenant);
	args[1] = Int64GetDatum(in->connector_id);
	args[2] = seconds_interval(integration_inbound_dedupe_window_s);
	RunPlan(KeptPlanGet(&connector_plan,
						"SELECT integration._connector_context(c),"
						" c.kind, c.is_active, c.inbound_secret,"
						" CASE WHEN c.previous_secret_expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
						"      THEN c.previous_inbound_secret END,"
						" COALESCE(c.dedupe_window, $3),"
						" k.signature_scheme, k.verify_function, k.normalise_function, k.record_function"
						" FROM integration.connectors c"
						" JOIN integration.connector_kinds k ON k.name OPERATOR(pg_catalog.=) c.kind"
						" WHERE c.tenant_id OPERATOR(pg_catalog.=) $1 AND c.id OPERATOR(pg_catalog.=) $2"
						"   AND c.deleted_at IS NULL",
						3, argtypes, CURSOR_OPT_GENERIC_PLAN),
			args, true, SPI_OK_SELECT, "looking up the connector");
	if (SPI_processed == 0)
		return reject(rej, "connector_not_found", "warning",
					  psprintf("The current tenant has no connector %lld.",
							   (long long) in->connector_id));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (!DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
		return reject(rej, "connector_disabled", "warning",
					  psprintf("Connector %lld is disabled.", (long long) in->connector_id));

	old = MemoryContextSwitchTo(in->cxt);
	in->context = datumCopy(SPI_getbinval(row, desc, 1, &isnull), false, -1);
	in->context_type = SPI_gettypeid(desc, 1);
	in->window = datumCopy(SPI_getbinval(row, desc, 6, &isnull), false, sizeof(Interval));
	MemoryContextSwitchTo(old);
	in->kind = column_text(in, 2);
	in->secrets[0] = column_text(in, 4);
	in->secrets[1] = column_text(in, 5);
	in->scheme = column_text(in, 7);
	in->verify_fn = column_text(in, 8);
	in->normalise_fn = column_text(in, 9);
	in->record_fn = column_text(in, 10);
	if (in->normalise_fn == NULL)
		return reject(rej, "no_inbound", "error",
					  psprintf("Connector kind %s receives no webhooks: it has no normalise adapter.",
							   in->kind));
	return true;
}

/* What the verify adapter is called with, and its answer. */
typedef struct AdapterVerify
{
	text	   *secret;
	bool		verified;
} AdapterVerify;

static void
call_verify_adapter(Inbound *in, void *arg)
{
	AdapterVerify *av = arg;
	Oid			argtypes[5] = {in->context_type, TEXTOID, JSONBOID, TEXTOID, INTERVALOID};
	Datum		args[5];
	bool		isnull;

	args[0] = in->context;
	args[1] = PointerGetDatum(av->secret);
	args[2] = JsonbPGetDatum(in->headers);
	args[3] = PointerGetDatum(in->body);
	args[4] = seconds_interval(integration_inbound_tolerance_s);
	RunPlan(ConnectorAdapterPlan(in->kind, "verify_function", in->verify_fn, "SELECT %s($1, $2, $3, $4, $5)", 5, argtypes),
			args, false, SPI_OK_SELECT, "verifying an inbound webhook");
	av->verified = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
		!isnull;
}

/* The signature, by the kind's scheme, under each secret in turn (step 2). */
static bool
verify_request(Inbound *in, Rejection *rej)
{
	const WebhookSigner *signer = NULL;
	WebhookHeaderValue values[WEBHOOK_VERIFY_MAX_VALUES];
	WebhookTimeWindow window;
	const char *body = VARDATA_ANY(in->body);
	size_t		bodylen = VARSIZE_ANY_EXHDR(in->body);
	int			unusable = 0;
	int			nsecrets = 0;

	if (strcmp(in->scheme, "none") == 0)
		return true;
	if (in->secrets[0] == NULL)
		return reject(rej, "no_inbound_secret", "error",
					  psprintf("Connector %lld has no inbound secret to verify signatures with.",
							   (long long) in->connector_id));
	if (strcmp(in->scheme, "adapter") != 0)
	{
		signer = WebhookSignerLookup(in->scheme);
		if (signer == NULL)
			elog(ERROR, "unknown signature scheme \"%s\" in connector_kinds", in->scheme);
		if (!WebhookFindHeaders(in->headers, signer, values))
			return reject(rej, "signature_missing", "warning",
						  psprintf("The request lacks the %s signature headers, or has one twice.",
								   signer->name));
		window.now = GetCurrentTimestamp();
		window.tolerance = int64_to_int128((int64) integration_inbound_tolerance_s * USECS_PER_SEC);
	}

	for (int i = 0; i < 2; i++)
	{
		SecretContext cxt;
		char	   *plain;
		int			plainlen;
		SecretOpenStatus st;
		bool		verified = false;

		if (in->secrets[i] == NULL)
			continue;
		nsecrets++;
		SecretContextForRow(&cxt, CONNECTOR_INBOUND_SECRET_PURPOSE, in->tenant,
							in->connector_id);
		st = SecretOpen(in->secrets[i], &cxt, &plain, &plainlen);
		if (st != SECRET_PLAIN && st != SECRET_OPENED)
		{
			unusable++;
			continue;
		}
		if (signer != NULL)
		{
			const char *error = NULL;
			WebhookKeySet *keys = WebhookSignerParseSecret(signer, plain, plainlen, &error);

			if (keys == NULL)
				unusable++;
			else
			{
				verified = signer->verify(keys, values, body, bodylen, &window);
				WebhookSignerFreeKeys(keys);
			}
		}
		else
		{
			AdapterVerify av;
			ErrorData  *error;

			av.secret = cstring_to_text_with_len(plain, plainlen);
			av.verified = false;
			if (!run_guarded(in, call_verify_adapter, &av, &error))
			{
				explicit_bzero(VARDATA(av.secret), plainlen);
				SecretFree(plain, plainlen);
				/* Its message could quote the secret it was given: not shown. */
				return reject(rej, "verify_failed", "error",
							  psprintf("The kind's verify function raised an error (SQLSTATE %s).",
									   unpack_sql_state(error->sqlerrcode)));
			}
			explicit_bzero(VARDATA(av.secret), plainlen);
			verified = av.verified;
		}
		SecretFree(plain, plainlen);
		if (verified)
			return true;
	}
	if (unusable == nsecrets)
		return reject(rej, "secret_unavailable", "error",
					  psprintf("The inbound secret of connector %lld does not decrypt or does not suit scheme %s.",
							   (long long) in->connector_id, in->scheme));
	return reject(rej, "signature_invalid", "warning",
				  pstrdup(signer != NULL && signer->signs_timestamp ?
						  "No signature matches the body under the connector's secrets, or the timestamp is outside integration.inbound_tolerance." :
						  "No signature matches the body under the connector's secrets."));
}

/* "sha256:" and the hex SHA-256 of data, or of data and then ":<n>" when n > 0. */
static char *
hash_id(const char *data, size_t len, int n)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	char	   *suffix = n > 0 ? psprintf(":%d", n) : "";

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[sizeof(hex) - 1] = '\0';
	return psprintf("sha256:%s%s", hex, suffix);
}

/* The normaliser's rows, copied to in->cxt (runs guarded). */
static void
call_normaliser(Inbound *in, void *arg)
{
	List	  **events = arg;
	Oid			argtypes[3] = {in->context_type, JSONBOID, TEXTOID};
	Datum		args[3];
	MemoryContext old;

	args[0] = in->context;
	args[1] = JsonbPGetDatum(in->headers);
	args[2] = PointerGetDatum(in->body);
	RunPlan(ConnectorAdapterPlan(in->kind, "normalise_function", in->normalise_fn,
								 "SELECT n.external_id, n.topic, n.object_id, n.payload FROM %s($1, $2, $3) AS n",
								 3, argtypes),
			args, false, SPI_OK_SELECT, "normalising an inbound webhook");
	old = MemoryContextSwitchTo(in->cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		InboundEvent *ev = palloc0(sizeof(InboundEvent));
		bool		isnull;
		Datum		payload = SPI_getbinval(row, desc, 4, &isnull);

		ev->external_id = SPI_getvalue(row, desc, 1);
		ev->topic = SPI_getvalue(row, desc, 2);
		ev->object_id = SPI_getvalue(row, desc, 3);
		ev->payload = isnull ? (Datum) 0 : datumCopy(payload, false, -1);
		*events = lappend(*events, ev);
	}
	MemoryContextSwitchTo(old);
}

/*
 * The record each event is about, by the kind's record adapter, checked
 * (integration._check_external_record()) and copied to in->cxt (runs guarded).  Its
 * fields are read one by one: a plan kept for the backend must not name the composite
 * type, which a new CREATE EXTENSION makes anew.
 */
static void
call_record_adapter(Inbound *in, void *arg)
{
	List	   *events = arg;
	Oid			argtypes[4] = {in->context_type, TEXTOID, JSONBOID, TEXTOID};
	Datum		args[4];
	ListCell   *lc;

	args[0] = in->context;
	args[3] = CStringGetTextDatum(in->kind);
	foreach(lc, events)
	{
		InboundEvent *ev = lfirst(lc);
		bool		isnull;
		Datum		d;
		HeapTuple	row;
		TupleDesc	desc;

		args[1] = CStringGetTextDatum(ev->topic);
		args[2] = ev->payload;
		RunPlan(ConnectorAdapterPlan(in->kind, "record_function", in->record_fn,
									 "SELECT (r.x).stream, (r.x).external_id, (r.x).updated_at, (r.x).payload"
									 " FROM (SELECT integration._check_external_record($4, %s($1, $2, $3)) AS x) AS r",
									 4, argtypes),
				args, false, SPI_OK_SELECT, "asking which record an inbound webhook is about");
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		ev->rec_stream = SPI_getvalue(row, desc, 1);
		if (ev->rec_stream == NULL)
			continue;			/* about no record */
		ev->rec_id = SPI_getvalue(row, desc, 2);
		ev->rec_updated_at = SPI_getbinval(row, desc, 3, &isnull);
		d = SPI_getbinval(row, desc, 4, &isnull);
		ev->rec_payload = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	}
}

/* The request as events, each with its id and name (step 3). */
static bool
normalise_request(Inbound *in, List **events, Rejection *rej)
{
	ErrorData  *error;
	ListCell   *lc;
	int			n = 0;

	if (!run_guarded(in, call_normaliser, events, &error))
		return reject(rej, "normalise_failed", "warning",
					  psprintf("The kind's normaliser could not read the request: %.*s",
							   ERROR_QUOTE_MAX, error->message));
	foreach(lc, *events)
	{
		InboundEvent *ev = lfirst(lc);
		char	   *topic;

		n++;
		if (ev->topic == NULL || ev->topic[0] == '\0')
			return reject(rej, "invalid_event", "warning",
						  psprintf("Event %d of the request has no topic.", n));
		if (ev->payload == (Datum) 0)
			return reject(rej, "invalid_event", "warning",
						  psprintf("Event %d of the request has no payload.", n));

		/*
		 * <kind>.<topic with dots>: shopify's orders/create is
		 * shopify.orders.create.
		 */
		topic = pstrdup(ev->topic);
		for (char *p = topic; *p; p++)
			if (*p == '/')
				*p = '.';
		ev->event = psprintf("%s.%s", in->kind, topic);
		if (strlen(ev->event) > EVENT_NAME_MAX_LEN || !EventNameIsValid(ev->event, strlen(ev->event)))
			return reject(rej, "invalid_event", "warning",
						  psprintf("Topic \"%.*s\" of event %d does not make a valid event name.",
								   EVENT_NAME_MAX_LEN, ev->topic, n));
		if (ev->external_id == NULL || ev->external_id[0] == '\0')
			ev->external_id = hash_id(VARDATA_ANY(in->body), VARSIZE_ANY_EXHDR(in->body),
									  list_length(*events) > 1 ? n : 0);
		else if (strlen(ev->external_id) > EXTERNAL_ID_MAX_LEN)
			ev->external_id = hash_id(ev->external_id, strlen(ev->external_id), 0);
	}
	if (in->record_fn != NULL && *events != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(in->cxt);
		bool		ok = run_guarded(in, call_record_adapter, *events, &error);

		MemoryContextSwitchTo(old);
		if (!ok)
			return reject(rej, "record_failed", "warning",
						  psprintf("The kind's record adapter could not read an event: %.*s",
								   ERROR_QUOTE_MAX, error->message));
	}
	return true;
}

/*
 * Whether the record an event is about is a change (step 4, before the event is
 * stored): the gate of pulled pages, which upserts it when it is.
 */
static bool
record_is_change(Inbound *in, InboundEvent *ev)
{
	Oid			types[6] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID};
	Datum		args[6];
	bool		isnull;

	args[0] = CStringGetTextDatum(in->tenant);
	args[1] = Int64GetDatum(in->connector_id);
	args[2] = CStringGetTextDatum(ev->rec_stream);
	args[3] = CStringGetTextDatum(ev->rec_id);
	args[4] = ev->rec_updated_at;
	args[5] = ev->rec_payload != (Datum) 0 ? ev->rec_payload : ev->payload;
	RunPlan(SavedPlan(&gate_plan,
					  "SELECT integration._sync_gate($1, $2, $3, $4, $5, $6, 'webhook')"
					  " OPERATOR(pg_catalog.=) ANY ('{new,changed,revised}'::pg_catalog.text[])",
					  6, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "passing an inbound record through the gate");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Adds one row of the result. */
static void
emit(ReturnSetInfo *rsinfo, const char *status, int64 id, const char *event)
{
	Datum		values[3];
	bool		nulls[3] = {false, id == 0, event == NULL};

	values[0] = CStringGetTextDatum(status);
	values[1] = Int64GetDatum(id);
	values[2] = event ? CStringGetTextDatum(event) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * A duplicate by its record: the live event with the same id, if any (a retry of the
 * delivery that brought the version), else none.
 */
static void
emit_record_duplicate(Inbound *in, InboundEvent *ev, ReturnSetInfo *rsinfo)
{
	Oid			types[3] = {TEXTOID, INT8OID, TEXTOID};
	Datum		args[3];
	bool		isnull;

	args[0] = CStringGetTextDatum(in->tenant);
	args[1] = Int64GetDatum(in->connector_id);
	args[2] = CStringGetTextDatum(ev->external_id);
	RunPlan(KeptPlanGet(&live_plan,
						"SELECT e.id FROM integration.inbound_events e"
						" WHERE e.tenant_id OPERATOR(pg_catalog.=) $1"
						"   AND e.connector_id OPERATOR(pg_catalog.=) $2"
						"   AND e.external_id OPERATOR(pg_catalog.=) $3 AND NOT e.dedupe_expired",
						3, types, CURSOR_OPT_GENERIC_PLAN),
			args, false, SPI_OK_SELECT, "looking up a received event");
	emit(rsinfo, "duplicate",
		 SPI_processed > 0 ?
		 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : 0,
		 ev->event);
}

/* Stores one event, or finds the live row with its id (step 4). */
static void
store_event(Inbound *in, InboundEvent *ev, ReturnSetInfo *rsinfo)
{
	Oid			insert_types[7] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Oid			existing_types[4] = {TEXTOID, INT8OID, TEXTOID, INTERVALOID};
	Oid			expire_types[2] = {TEXTOID, INT8OID};
	Datum		args[7];
	char		nulls[7] = "       ";
	Datum		existing_args[4];
	bool		isnull;

	args[0] = CStringGetTextDatum(in->tenant);
	args[1] = Int64GetDatum(in->connector_id);
	args[2] = CStringGetTextDatum(ev->external_id);
	if (ev->object_id)
		args[3] = CStringGetTextDatum(ev->object_id);
	else
		nulls[3] = 'n';
	args[4] = CStringGetTextDatum(ev->topic);
	args[5] = CStringGetTextDatum(ev->event);
	args[6] = ev->payload;
	existing_args[0] = args[0];
	existing_args[1] = args[1];
	existing_args[2] = args[2];
	existing_args[3] = in->window;

	for (int round = 0; round < STORE_ROUNDS; round++)
	{
		HeapTuple	row;
		TupleDesc	desc;
		int64		id;
		int			rc;

		SavedPlan(&insert_plan,
				  "INSERT INTO integration.inbound_events AS e"
				  " (tenant_id, connector_id, external_id, object_id, topic, event, payload)"
				  " VALUES ($1, $2, $3, $4, $5, $6, $7)"
				  " ON CONFLICT (tenant_id, connector_id, external_id) WHERE NOT dedupe_expired"
				  " DO NOTHING RETURNING e.id",
				  7, insert_types, CURSOR_OPT_GENERIC_PLAN);
		rc = SPI_execute_plan(insert_plan, args, nulls, false, 0);
		if (rc != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "storing an inbound event failed: %s", SPI_result_code_string(rc));
		if (SPI_processed == 1)
		{
			emit(rsinfo, "accepted",
				 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
				 ev->event);
			return;
		}

		/*
		 * A live row has the id: a statement of its own sees it once
		 * committed.  The window is judged by the clock, read after this
		 * statement's snapshot: retention removes a row only once it is out
		 * of the window at the start of its transaction
		 * (retention_connectors.c), so a row this lookup no longer sees was
		 * out of the window here too, however long ago this transaction
		 * started.
		 */
		RunPlan(KeptPlanGet(&existing_plan,
							"SELECT e.id, e.event,"
							" e.received_at OPERATOR(pg_catalog.>=) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $4)"
							" FROM integration.inbound_events e"
							" WHERE e.tenant_id OPERATOR(pg_catalog.=) $1"
							"   AND e.connector_id OPERATOR(pg_catalog.=) $2"
							"   AND e.external_id OPERATOR(pg_catalog.=) $3 AND NOT e.dedupe_expired",
							4, existing_types, CURSOR_OPT_GENERIC_PLAN),
				existing_args, false, SPI_OK_SELECT, "looking up a received event");
		if (SPI_processed == 0)
			continue;			/* it expired meanwhile, or its writer rolled
								 * back */
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		if (DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
		{
			emit(rsinfo, "duplicate", id, SPI_getvalue(row, desc, 2));
			return;
		}

		/*
		 * Older than the window: it stops counting, and the insert goes
		 * again.
		 */
		{
			Datum		expire_args[2] = {args[0], Int64GetDatum(id)};

			RunPlan(KeptPlanGet(&expire_plan,
								"UPDATE integration.inbound_events e SET dedupe_expired = true"
								" WHERE e.tenant_id OPERATOR(pg_catalog.=) $1"
								"   AND e.id OPERATOR(pg_catalog.=) $2 AND NOT e.dedupe_expired",
								2, expire_types, CURSOR_OPT_GENERIC_PLAN),
					expire_args, false, SPI_OK_UPDATE, "expiring a received event");
		}
	}
	elog(ERROR, "could not store inbound event \"%s\" after %d rounds", ev->external_id,
		 STORE_ROUNDS);
}

/* The log row of a rejected request: why, and nothing of its secrets or header values. */
static void
log_rejection(Inbound *in, const Rejection *rej)
{
	Oid			argtypes[6] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, JSONBOID, INT8OID};
	Datum		args[6];
	char		nulls[6] = "      ";

	args[0] = CStringGetTextDatum(rej->level);
	args[1] = CStringGetTextDatum(rej->reason);
	args[2] = Int64GetDatum(in->connector_id);
	if (in->connector_id == 0)
		nulls[2] = 'n';			/* none was given */
	args[3] = CStringGetTextDatum(rej->detail ? rej->detail : "");
	if (in->headers && JB_ROOT_IS_OBJECT(in->headers))
		args[4] = JsonbPGetDatum(in->headers);
	else
		nulls[4] = 'n';
	if (in->body)
		args[5] = Int64GetDatum(VARSIZE_ANY_EXHDR(in->body));
	else
		nulls[5] = 'n';
	if (SPI_execute_plan(SavedPlan(&log_plan,
								   "INSERT INTO integration.integration_logs (level, source, event, message, context)"
								   " SELECT $1, 'inbound', 'inbound.rejected',"
								   "  pg_catalog.format('webhook to connector %s rejected: %s', COALESCE($3::text, '(none)'), $2),"
								   "  pg_catalog.jsonb_build_object('connector_id', $3, 'reason', $2, 'detail', $4,"
								   "   'header_names', COALESCE((SELECT pg_catalog.jsonb_agg(k ORDER BY k)"
								   "                     FROM pg_catalog.jsonb_object_keys($5) AS k), '[]'),"
								   "   'body_bytes', $6)",
								   6, argtypes, CURSOR_OPT_GENERIC_PLAN),
						 args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not log a rejected inbound webhook");
}

/* The request itself: what an HTTP front must always pass. */
static bool
check_request(FunctionCallInfo fcinfo, Inbound *in, Rejection *rej)
{
	if (!PG_ARGISNULL(0))
		in->connector_id = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
		in->headers = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		in->body = PG_GETARG_TEXT_PP(2);
	if (PG_ARGISNULL(0))
		return reject(rej, "bad_request", "warning", pstrdup("No connector id was given."));
	if (in->body == NULL)
		return reject(rej, "bad_request", "warning", pstrdup("The request has no body."));
	if (in->headers == NULL)
		in->headers = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	if (!JB_ROOT_IS_OBJECT(in->headers))
		return reject(rej, "bad_request", "warning",
					  pstrdup("The headers are not a JSON object of names to values."));
	if (VARSIZE_ANY_EXHDR(in->body) > (Size) integration_inbound_max_body_bytes)
		return reject(rej, "body_too_large", "warning",
					  psprintf("The body has %zu bytes; integration.inbound_max_body_bytes is %d.",
							   (Size) VARSIZE_ANY_EXHDR(in->body),
							   integration_inbound_max_body_bytes));
	return true;
}

PG_FUNCTION_INFO_V1(integration_receive_webhook);

/*
 * receive_webhook(connector_id bigint, headers jsonb, body text)
 *		RETURNS TABLE (status text, inbound_id bigint, event text)
 */
Datum
integration_receive_webhook(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Inbound		in = {0};
	Rejection	rej = {0};
	List	   *events = NIL;

	InitMaterializedSRF(fcinfo, 0);
	in.cxt = CurrentMemoryContext;
	in.tenant = RequireTenant();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (check_request(fcinfo, &in, &rej) && load_connector(&in, &rej) &&
		verify_request(&in, &rej) && normalise_request(&in, &events, &rej))
	{
		ListCell   *lc;

		/* Verified, with nothing to store (a ping): accepted all the same. */
		if (events == NIL)
			emit(rsinfo, "accepted", 0, NULL);
		foreach(lc, events)
		{
			InboundEvent *ev = lfirst(lc);

			if (ev->rec_stream != NULL && !record_is_change(&in, ev))
				emit_record_duplicate(&in, ev, rsinfo);
			else
				store_event(&in, ev, rsinfo);
		}
	}
	else
	{
		log_rejection(&in, &rej);
		emit(rsinfo, "rejected", 0, NULL);
	}
	SPI_finish();
	return (Datum) 0;
}
