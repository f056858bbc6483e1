/*
 * publish.c
 *		Transactional event publishing: publish_event() and the table trigger.
 *
 * An event is one row in integration.webhook_events written in the publisher's own
 * transaction, so it exists if and only if the business write commits.  The row holds
 * the payload once (the exact bytes the worker will sign and send) and the ids of the
 * endpoints it goes to; the worker fans it out into per-endpoint deliveries after
 * commit.  Writing one narrow row per event, rather than one row per endpoint, is what
 * keeps tracked writes cheap.
 *
 * publish_row_event() works as a row trigger and, for bulk statements, as a statement
 * trigger with transition tables (what track_table() installs): then one call sees all
 * rows of the statement, serialises them with one cached column plan, finds each
 * tenant's endpoints once, and writes the events in bulk (event_store.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/tuplestore.h"

#include "endpoint_cache.h"
#include "event_store.h"
#include "event_pattern.h"
#include "json_schema.h"
#include "publish.h"
#include "row_json.h"
#include "spi_plan.h"
#include "tenant.h"
#include "validate.h"
#include "wakeup.h"

/* Events buffered before InsertEvents() writes them. */
#define PUBLISH_BATCH_ROWS 5000


/*
 * Events waiting to be written, of any tenants and event names, in the order they were
 * published; and the target the next ones go to, a tenant and an event name with the
 * endpoints it goes to.  Changing target is a lookup in the endpoint cache, not a write:
 * rows that alternate between tenants are written together, as the rows of one tenant
 * are (issue #20).
 */
typedef struct EventBatch
{
	/* The current target; tenant[0] and event[0] are '\0' when there is none. */
	char		tenant[TENANT_ID_MAX_LEN + 1];
	char		event[EVENT_NAME_MAX_LEN + 1];
	int			nendpoints;
	Datum		tenant_d;		/* text, in rows_cxt */
	Datum		event_d;		/* text, in rows_cxt */
	Datum		endpoints_d;	/* int8[], in rows_cxt: the active ones first */
	int			nactive;		/* of them; the others get skipped deliveries */

	int			nrows;
	int			maxrows;
	EventRow   *rows;
	int64		queued;			/* deliveries of the rows buffered, to active
								 * endpoints */
	int64		published;		/* the same, of the rows written */
	MemoryContext mcxt;			/* where the batch's memory lives */
	MemoryContext rows_cxt;		/* the rows' datums, reset at each flush */
	StringInfoData prefix;		/* the envelope up to "data": for prefix_event */
	char		prefix_event[EVENT_NAME_MAX_LEN + 1];
} EventBatch;


/*
 * A role bound by row-level security may publish only for its own tenant: say so
 * clearly rather than let the policy's WITH CHECK fail on webhook_events.
 */
static void
check_publish_tenant(const char *tenant, bool rls_applies)
{
	const char *mine;

	if (!rls_applies)
		return;
	mine = CurrentTenant();
	if (mine == NULL || strcmp(mine, tenant) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot publish an event for tenant \"%s\"", tenant),
				 mine ? errdetail("The current tenant is \"%s\"; row-level security applies to role \"%s\".",
								  mine, GetUserNameFromId(GetUserId(), false))
				 : errdetail("No tenant is selected; row-level security applies to role \"%s\".",
							 GetUserNameFromId(GetUserId(), false)),
				 errhint("Set integration.tenant_id to the row's tenant, or publish as a role with BYPASSRLS.")));
}

static bool
rls_applies_to_events(void)
{
	Oid			nsp = get_namespace_oid("integration", false);
	Oid			relid = get_relname_relid("webhook_events", nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "integration.webhook_events does not exist");
	return check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED;
}

static void
batch_init(EventBatch *b)
{
	memset(b, 0, sizeof(EventBatch));
	b->mcxt = CurrentMemoryContext;
	b->rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "integration event batch",
										ALLOCSET_DEFAULT_SIZES);
}

/* Writes the batch's events (event_store.c) and empties it. */
static void
flush_batch(EventBatch *b)
{
	if (b->nrows == 0)
		return;
	InsertEvents(b->rows, b->nrows);
	b->published += b->queued;
	b->queued = 0;
	b->nrows = 0;
	MemoryContextReset(b->rows_cxt);
	/* The target's datums were in rows_cxt: the next row looks it up again. */
	b->tenant[0] = '\0';
	b->event[0] = '\0';
	WakeWorkerAtCommit();
}

/* Starts an envelope {"type":<event>,"timestamp":<now UTC>,"data": in buf. */
static void
envelope_start(StringInfo buf, const char *event)
{
	resetStringInfo(buf);
	/* Room for the varlena header, so the text datum is built in place. */
	appendStringInfoSpaces(buf, VARHDRSZ);
	appendStringInfoString(buf, "{\"type\":");
	escape_json(buf, event);
	appendStringInfoString(buf, ",\"timestamp\":");
	AppendJsonUtcTimestamp(buf, GetCurrentStatementStartTimestamp());
	appendStringInfoString(buf, ",\"data\":");
}

/*
 * Makes (tenant, event) the batch's target.  Returns false when no endpoint of the
 * tenant wants the event.
 */
static bool
batch_target(EventBatch *b, const char *tenant, const char *event)
{
	ArrayType  *ids;
	MemoryContext old;
	bool		same_tenant = strcmp(b->tenant, tenant) == 0;

	if (same_tenant && strcmp(b->event, event) == 0)
		return b->nendpoints > 0;

	b->nendpoints = EndpointsMatching(tenant, event, strlen(event), &ids, &b->nactive);
	old = MemoryContextSwitchTo(b->rows_cxt);
	if (!same_tenant)
	{
		strlcpy(b->tenant, tenant, sizeof(b->tenant));
		b->tenant_d = CStringGetTextDatum(tenant);
	}
	if (strcmp(b->event, event) != 0)
	{
		strlcpy(b->event, event, sizeof(b->event));
		b->event_d = CStringGetTextDatum(event);
	}
	/* The cache's array is valid until its next lookup: the rows keep a copy. */
	b->endpoints_d = b->nendpoints > 0 ? datumCopy(PointerGetDatum(ids), false, -1) : (Datum) 0;
	MemoryContextSwitchTo(old);

	/* Every event of one name shares its envelope's start: build it once. */
	if (b->nendpoints > 0 && strcmp(b->prefix_event, event) != 0)
	{
		old = MemoryContextSwitchTo(b->mcxt);
		if (b->prefix.data == NULL)
			initStringInfo(&b->prefix);
		envelope_start(&b->prefix, event);
		strlcpy(b->prefix_event, event, sizeof(b->prefix_event));
		MemoryContextSwitchTo(old);
	}
	return b->nendpoints > 0;
}

/* Adds one envelope (allocated in rows_cxt) for the batch's target. */
static void
batch_add(EventBatch *b, text *payload)
{
	EventRow   *r;

	if (b->nrows == b->maxrows)
	{
		b->maxrows = Max(16, b->maxrows * 2);
		if (b->rows)
			b->rows = repalloc(b->rows, sizeof(EventRow) * b->maxrows);
		else
			b->rows = MemoryContextAlloc(b->mcxt, sizeof(EventRow) * b->maxrows);
	}
	r = &b->rows[b->nrows++];
	r->tenant = b->tenant_d;
	r->event = b->event_d;
	r->endpoint_ids = b->endpoints_d;
	r->payload = PointerGetDatum(payload);
	b->queued += b->nactive;
	if (b->nrows >= PUBLISH_BATCH_ROWS)
		flush_batch(b);
}

/* Closes the envelope and returns it as a text allocated in mcxt, checking its size. */
static text *
envelope_finish(StringInfo buf, MemoryContext mcxt)
{
	text	   *t;

	appendStringInfoChar(buf, '}');
	CheckPayloadSize(buf->len - VARHDRSZ);
	t = (text *) MemoryContextAlloc(mcxt, buf->len);
	memcpy(t, buf->data, buf->len);
	SET_VARSIZE(t, buf->len);
	return t;
}

static text *
build_envelope(const char *event, Jsonb *payload)
{
	StringInfoData buf;

	initStringInfo(&buf);
	envelope_start(&buf, event);
	(void) JsonbToCString(&buf, &payload->root, VARSIZE(payload));
	return envelope_finish(&buf, CurrentMemoryContext);
}

PG_FUNCTION_INFO_V1(integration_envelope);

/* The envelope publish_event() sends for (event, payload): for dispatch_webhook(). */
Datum
integration_envelope(PG_FUNCTION_ARGS)
{
	text	   *event = PG_GETARG_TEXT_PP(0);
	Jsonb	   *payload = PG_GETARG_JSONB_P(1);
	char	   *ev = text_to_cstring(event);

	ValidateEventName(ev, strlen(ev));
	PG_RETURN_TEXT_P(build_envelope(ev, payload));
}


static SPIPlanPtr schema_plan = NULL;

/*
 * With integration.validate_payloads on, checks payload against the schema the tenant
 * registered for event (register_event_type()), if any.  Read as the caller, so
 * row-level security gives the tenant's own schema.
 */
static void
check_registered_schema(const char *tenant, const char *event, Jsonb *payload)
{
	Datum		args[2];
	bool		isnull;
	Datum		schema;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		SavedPlan(&schema_plan,
				  "SELECT s.schema FROM integration.event_schemas s"
				  " WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND s.event OPERATOR(pg_catalog.=) $2",
				  2, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(event);
	RunPlan(schema_plan, args, true, SPI_OK_SELECT, "reading the event's schema");
	if (SPI_processed == 1)
	{
		schema = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			JsonSchemaCheckValue(DatumGetJsonbP(schema), payload, psprintf("event %s", event));
	}
	SPI_finish();
}

PG_FUNCTION_INFO_V1(integration_publish_event);

/*
 * publish_event(event, payload): one event for every active endpoint of the current
 * tenant that subscribes to it, in the caller's transaction.  Returns the number of
 * deliveries enqueued; endpoints the worker disabled get the event too, recorded as
 * skipped (endpoint_cache.c), and are not counted.
 */
Datum
integration_publish_event(PG_FUNCTION_ARGS)
{
	text	   *event_t;
	Jsonb	   *payload;
	char	   *event;
	const char *tenant = RequireTenant();
	EventBatch	batch;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event name must not be null")));
	event_t = PG_GETARG_TEXT_PP(0);
	event = text_to_cstring(event_t);

	/*
	 * A NULL payload is sent as JSON null rather than silently publishing
	 * nothing.
	 */
	payload = PG_ARGISNULL(1) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("null")))
		: PG_GETARG_JSONB_P(1);

	ValidateEventName(event, strlen(event));
	if (integration_validate_payloads)
		check_registered_schema(tenant, event, payload);

	batch_init(&batch);
	if (batch_target(&batch, tenant, event))
	{
		MemoryContext old = MemoryContextSwitchTo(batch.rows_cxt);
		text	   *envelope = build_envelope(event, payload);

		MemoryContextSwitchTo(old);
		batch_add(&batch, envelope);
		flush_batch(&batch);
	}

	/*
	 * No log row: the event is the record of itself, and a row per event
	 * doubled what publishing wrote (issue #20).  Logs are for changes of
	 * configuration, failures and operators' actions.
	 */
	PG_RETURN_INT32((int32) batch.published);
}

/*
 * Publishes an event of the worker's own (endpoint.disabled) for tenant as
 * publish_event() does, through the same routing and writes, to every endpoint that
 * subscribes to it except except_endpoint (the one it is about).  The worker's store
 * transaction calls it: no tenant is selected there and row-level security does not
 * apply, and no registered schema is checked, since the extension defines the payload.
 * Returns the number of deliveries enqueued.
 */
int64
PublishWorkerEvent(const char *tenant, const char *event, Jsonb *payload,
				   int64 except_endpoint)
{
	EventBatch	batch;
	ArrayType  *all;
	int64	   *ids;
	Datum	   *kept;
	int			n = 0;
	int			nactive = 0;

	batch_init(&batch);
	if (!batch_target(&batch, tenant, event))
		return 0;
	/* The batch's copy of the endpoints, without except_endpoint. */
	all = DatumGetArrayTypeP(batch.endpoints_d);
	ids = (int64 *) ARR_DATA_PTR(all);
	kept = palloc(sizeof(Datum) * batch.nendpoints);
	for (int i = 0; i < batch.nendpoints; i++)
		if (ids[i] != except_endpoint)
		{
			nactive += (i < batch.nactive);
			kept[n++] = Int64GetDatum(ids[i]);
		}
	batch.nendpoints = n;
	batch.nactive = nactive;
	if (n > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(batch.rows_cxt);
		text	   *envelope = build_envelope(event, payload);

		batch.endpoints_d = PointerGetDatum(construct_array(kept, n, INT8OID, sizeof(int64),
															FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		MemoryContextSwitchTo(old);
		batch_add(&batch, envelope);
		flush_batch(&batch);
	}
	pfree(kept);
	return batch.published;
}

/* What a trigger needs to know about its table, planned once per statement. */
typedef struct TriggerPlan
{
	Oid			relid;
	int			tenant_attno;
	FmgrInfo	tenant_output;
	bool		tenant_is_text;
	RowJsonWriter *writer;
	bool		rls_applies;
	char		created[EVENT_NAME_MAX_LEN + 1];
	char		updated[EVENT_NAME_MAX_LEN + 1];
	char		deleted[EVENT_NAME_MAX_LEN + 1];
} TriggerPlan;

static TriggerPlan *
plan_trigger(FunctionCallInfo fcinfo, TriggerData *trigdata)
{
	TriggerPlan *plan = (TriggerPlan *) fcinfo->flinfo->fn_extra;
	Relation	rel = trigdata->tg_relation;
	Trigger    *trigger = trigdata->tg_trigger;
	TupleDesc	desc = RelationGetDescr(rel);
	const char *prefix;
	const char *tenant_col;
	MemoryContext old;

	if (plan != NULL && plan->relid == RelationGetRelid(rel))
		return plan;

	if (trigger->tgnargs < 1 || trigger->tgnargs > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("publish_row_event() takes an event prefix and optionally a tenant column"),
				 errhint("For example: EXECUTE FUNCTION integration.publish_row_event('order', 'tenant_id').")));
	prefix = trigger->tgargs[0];
	tenant_col = trigger->tgnargs > 1 ? trigger->tgargs[1] : "tenant_id";

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	plan = palloc0(sizeof(TriggerPlan));
	plan->relid = RelationGetRelid(rel);
	snprintf(plan->created, sizeof(plan->created), "%s.created", prefix);
	snprintf(plan->updated, sizeof(plan->updated), "%s.updated", prefix);
	snprintf(plan->deleted, sizeof(plan->deleted), "%s.deleted", prefix);
	if (strlen(prefix) + strlen(".created") > EVENT_NAME_MAX_LEN)
		ValidateEventName(prefix, EVENT_NAME_MAX_LEN + 1);
	ValidateEventName(plan->created, strlen(plan->created));

	plan->tenant_attno = 0;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), tenant_col) == 0)
		{
			Oid			outfn;
			bool		varlena;

			plan->tenant_attno = i + 1;
			plan->tenant_is_text = (att->atttypid == TEXTOID || att->atttypid == VARCHAROID);
			getTypeOutputInfo(att->atttypid, &outfn, &varlena);
			fmgr_info_cxt(outfn, &plan->tenant_output, fcinfo->flinfo->fn_mcxt);
			break;
		}
	}
	if (plan->tenant_attno == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no tenant column \"%s\"",
						RelationGetRelationName(rel), tenant_col),
				 errhint("Name the table's tenant column as the trigger's second argument.")));

	plan->writer = RowJsonWriterCreate(desc, fcinfo->flinfo->fn_mcxt);
	plan->rls_applies = rls_applies_to_events();
	MemoryContextSwitchTo(old);

	fcinfo->flinfo->fn_extra = plan;
	return plan;
}

/* The row's tenant as a validated C string in tenant (TENANT_ID_MAX_LEN + 1 bytes). */
static void
row_tenant(TriggerPlan *plan, TriggerData *trigdata, TupleTableSlot *slot, char *tenant)
{
	bool		isnull;
	Datum		v = slot_getattr(slot, plan->tenant_attno, &isnull);
	char	   *s;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("cannot publish an event for a row of \"%s\" without a tenant",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("Its tenant column is NULL.")));
	s = plan->tenant_is_text ? TextDatumGetCString(v) : OutputFunctionCall(&plan->tenant_output, v);
	if (!TenantIdIsValid(s, strlen(s)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant id \"%s\" in a row of \"%s\"", s,
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("A tenant id is 1 to %d characters from A-Z, a-z, 0-9, \"_\", \"-\", \".\" and \":\".",
						   TENANT_ID_MAX_LEN)));
	strlcpy(tenant, s, TENANT_ID_MAX_LEN + 1);
	pfree(s);
}

/* True when an UPDATE changed no column: such an update publishes nothing. */
static bool
row_unchanged(TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	TupleDesc	desc = oldslot->tts_tupleDescriptor;

	slot_getallattrs(oldslot);
	slot_getallattrs(newslot);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (oldslot->tts_isnull[i] != newslot->tts_isnull[i])
			return false;
		if (!oldslot->tts_isnull[i] &&
			!datumIsEqual(oldslot->tts_values[i], newslot->tts_values[i],
						  att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/* Serialises and batches the event for one changed row. */
static void
publish_one(TriggerPlan *plan, TriggerData *trigdata, EventBatch *batch, StringInfo buf,
			TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	char		tenant[TENANT_ID_MAX_LEN + 1];
	const char *event;

	if (oldslot && newslot)
	{
		if (row_unchanged(oldslot, newslot))
			return;
		event = plan->updated;
	}
	else
		event = newslot ? plan->created : plan->deleted;

	row_tenant(plan, trigdata, newslot ? newslot : oldslot, tenant);
	if (oldslot && newslot)
	{
		char		old_tenant[TENANT_ID_MAX_LEN + 1];

		/*
		 * A row moved to another tenant: the old tenant sees it deleted and
		 * the new one sees it created, so neither receives the other's
		 * version of the row.
		 */
		row_tenant(plan, trigdata, oldslot, old_tenant);
		if (strcmp(old_tenant, tenant) != 0)
		{
			publish_one(plan, trigdata, batch, buf, oldslot, NULL);
			publish_one(plan, trigdata, batch, buf, NULL, newslot);
			return;
		}
	}
	check_publish_tenant(tenant, plan->rls_applies);
	if (!batch_target(batch, tenant, event))
		return;

	resetStringInfo(buf);
	appendBinaryStringInfo(buf, batch->prefix.data, batch->prefix.len);
	appendStringInfoChar(buf, '{');
	if (newslot)
	{
		appendStringInfoString(buf, "\"new\":");
		RowJsonAppend(plan->writer, buf, newslot);
	}
	if (oldslot)
	{
		appendStringInfoString(buf, newslot ? ",\"old\":" : "\"old\":");
		RowJsonAppend(plan->writer, buf, oldslot);
	}
	appendStringInfoChar(buf, '}');
	batch_add(batch, envelope_finish(buf, batch->rows_cxt));
}

PG_FUNCTION_INFO_V1(integration_publish_row_event);

/*
 * publish_row_event(prefix [, tenant_column]): AFTER INSERT/UPDATE/DELETE trigger,
 * FOR EACH ROW, or FOR EACH STATEMENT with transition tables.
 */
Datum
integration_publish_row_event(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerPlan *plan;
	EventBatch	batch;
	StringInfoData buf;
	TupleDesc	desc;
	MemoryContext rowcxt;
	MemoryContext old;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("publish_row_event() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("publish_row_event() must be fired AFTER INSERT, UPDATE or DELETE"),
				 errhint("Use integration.track_table() to create the triggers.")));

	plan = plan_trigger(fcinfo, trigdata);
	desc = RelationGetDescr(trigdata->tg_relation);
	batch_init(&batch);
	initStringInfo(&buf);

	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		TupleTableSlot *oldslot = NULL;
		TupleTableSlot *newslot = NULL;

		if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
			newslot = trigdata->tg_trigslot;
		else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
			oldslot = trigdata->tg_trigslot;
		else
		{
			oldslot = trigdata->tg_trigslot;
			newslot = trigdata->tg_newslot;
		}
		publish_one(plan, trigdata, &batch, &buf, oldslot, newslot);
		flush_batch(&batch);
		return PointerGetDatum(NULL);
	}

	/* Statement level: walk the transition tables. */
	{
		Tuplestorestate *olds = trigdata->tg_oldtable;
		Tuplestorestate *news = trigdata->tg_newtable;
		TupleTableSlot *oldslot = NULL;
		TupleTableSlot *newslot = NULL;

		if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? news == NULL :
			TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? olds == NULL :
			(olds == NULL || news == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("statement-level publish_row_event() needs transition tables"),
					 errhint("Use integration.track_table() to create the triggers.")));
		if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		{
			oldslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
			tuplestore_rescan(olds);
		}
		if (!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		{
			newslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
			tuplestore_rescan(news);
		}

		rowcxt = AllocSetContextCreate(CurrentMemoryContext, "integration publish row",
									   ALLOCSET_DEFAULT_SIZES);
		for (;;)
		{
			/* Old and new transition rows of an UPDATE are stored in step. */
			if (oldslot && !tuplestore_gettupleslot(olds, true, false, oldslot))
				break;
			if (newslot && !tuplestore_gettupleslot(news, true, false, newslot))
				break;
			old = MemoryContextSwitchTo(rowcxt);
			publish_one(plan, trigdata, &batch, &buf, oldslot, newslot);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		flush_batch(&batch);
		if (oldslot)
			ExecDropSingleTupleTableSlot(oldslot);
		if (newslot)
			ExecDropSingleTupleTableSlot(newslot);
		MemoryContextDelete(rowcxt);
	}
	return PointerGetDatum(NULL);
}
