/*
 * event_store.c
 *		Writes published events into integration.webhook_events.
 *
 * Publishing sits on the business write, and its cost is mostly writing the event rows.
 * So they are written the way COPY writes: table_multi_insert() with a bulk-insert
 * state (one WAL record per page of rows, no executor per row), then the index
 * entries.  This bypasses what a plain INSERT would do for us, so the fast path is taken
 * only when that is nothing we need:
 *   - the table has exactly the columns the extension created (a DBA who added one
 *     gets the plain INSERT, with its defaults and constraints);
 *   - no row-level or transition-table INSERT trigger exists on it;
 *   - the caller has INSERT on the table (else the plain INSERT reports the error).
 * Row-level security needs no evaluation here: callers publish only for the current
 * tenant when RLS applies to them (publish.c checks it, with a clearer message), which
 * is exactly what the table's policy allows.  The CHECK constraint (a non-empty tenant)
 * holds by construction.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "event_store.h"
#include "spi_plan.h"

#define EVENT_STORE_MULTI_INSERT 1000

/* The columns of integration.webhook_events as the extension creates them. */
static const struct
{
	const char *name;
	Oid			type;
}			event_columns[] = {
	{"tenant_id", TEXTOID},
	{"id", INT8OID},
	{"event", TEXTOID},
	{"payload", TEXTOID},
	{"endpoint_ids", INT8ARRAYOID},
	{"fanout_pending", BOOLOID},
	{"created_at", TIMESTAMPTZOID},
};

#define EVENT_NATTS lengthof(event_columns)

static SPIPlanPtr insert_plan = NULL;

/* Whether rel can take the fast path (see the file header). */
static bool
fast_path_allowed(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	if (desc->natts != EVENT_NATTS)
		return false;
	for (int i = 0; i < EVENT_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != event_columns[i].type ||
			strcmp(NameStr(att->attname), event_columns[i].name) != 0)
			return false;
	}
	if (trig && (trig->trig_insert_before_row || trig->trig_insert_after_row ||
				 trig->trig_insert_instead_row || trig->trig_insert_new_table))
		return false;
	return pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) == ACLCHECK_OK;
}

/* The plain INSERT, through SPI: for tables the fast path must not bypass. */
static void
insert_events_spi(const char *tenant, const char *event, Datum endpoints, Datum payloads)
{
	Datum		args[4];
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			argtypes[4] = {TEXTOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID};

		saved_plan(&insert_plan,
				   "INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)"
				   " SELECT $1, $2, p, $3 FROM pg_catalog.unnest($4) AS p",
				   4, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(event);
	args[2] = endpoints;
	args[3] = payloads;
	rc = SPI_execute_plan(insert_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "inserting events failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * Inserts one event row per payload (text datums), all for tenant, event and the
 * endpoints endpoint_ids (int8 datums).
 */
void
insert_events(const char *tenant, const char *event, Datum *endpoint_ids, int nendpoints,
			  Datum *payloads, int npayloads)
{
	Oid			nsp = get_namespace_oid("integration", false);
	Oid			relid = get_relname_relid("webhook_events", nsp);
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot *slots[EVENT_STORE_MULTI_INSERT];
	CommandId	cid;
	Oid			seqid;
	Datum		tenant_d;
	Datum		event_d;
	Datum		endpoints_d;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			nslots = 0;

	if (!OidIsValid(relid))
		elog(ERROR, "integration.webhook_events does not exist");
	endpoints_d = PointerGetDatum(construct_array(endpoint_ids, nendpoints, INT8OID, 8,
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rel = table_open(relid, RowExclusiveLock);
	if (!fast_path_allowed(rel))
	{
		table_close(rel, NoLock);
		insert_events_spi(tenant, event, endpoints_d,
						  PointerGetDatum(construct_array(payloads, npayloads, TEXTOID, -1,
														  false, TYPALIGN_INT)));
		return;
	}

	seqid = getIdentitySequence(relid, 2, false);
	tenant_d = CStringGetTextDatum(tenant);
	event_d = CStringGetTextDatum(event);
	cid = GetCurrentCommandId(true);

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	CheckValidResultRel(rri, CMD_INSERT);
	ExecOpenIndices(rri, false);
	bistate = GetBulkInsertState();

	for (int done = 0; done < npayloads; done += nslots)
	{
		nslots = Min(npayloads - done, EVENT_STORE_MULTI_INSERT);
		for (int i = 0; i < nslots; i++)
		{
			TupleTableSlot *slot;

			if (done == 0)
				slots[i] = table_slot_create(rel, NULL);
			slot = slots[i];
			ExecClearTuple(slot);
			memset(slot->tts_isnull, false, sizeof(bool) * EVENT_NATTS);
			slot->tts_values[0] = tenant_d;
			slot->tts_values[1] = Int64GetDatum(nextval_internal(seqid, true));
			slot->tts_values[2] = event_d;
			slot->tts_values[3] = payloads[done + i];
			slot->tts_values[4] = endpoints_d;
			slot->tts_values[5] = BoolGetDatum(true);
			slot->tts_values[6] = TimestampTzGetDatum(now);
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(rel, slots, nslots, cid, 0, bistate);
		for (int i = 0; i < nslots; i++)
		{
			ResetPerTupleExprContext(estate);
			(void) ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
		}
	}

	for (int i = 0; i < Min(npayloads, EVENT_STORE_MULTI_INSERT); i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, 0);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}
