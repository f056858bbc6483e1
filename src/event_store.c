/*
 * event_store.c
 *		Writes published events into integration.webhook_events, and queues them for
 *		fan-out in integration.webhook_event_queue.
 *
 * Publishing sits on the business write, and its cost is mostly writing the event rows.
 * So they are written the way COPY writes: table_multi_insert() with a bulk-insert
 * state (one WAL record per page of rows, no executor per row), then the index
 * entries.  This bypasses what a plain INSERT would do for us, so the fast path is taken
 * only when that is nothing we need:
 *   - both tables have exactly the columns the extension created (a DBA who added one
 *     gets the plain INSERT, with its defaults and constraints);
 *   - every INSERT trigger that would fire on them is one of the extension's two
 *     statement triggers whose work the fast path does itself: RequireTenant, whose
 *     check publish.c makes first, and events_queued, one queue row per event.  They
 *     are known by the C function they run, which fmgr resolves to its address, and
 *     by how they fire (statement level, timing, transition table, no WHEN clause or
 *     arguments), never by a name: a trigger of anyone else's, a foreign key's
 *     included, or one of ours attached differently, gets the plain INSERT;
 *   - the caller has INSERT on both (else the plain INSERT reports the error).
 * Row-level security needs no evaluation here: callers publish only for the current
 * tenant when RLS applies to them (publish.c checks it, with a clearer message), which
 * is exactly what the table's policy allows.  The CHECK constraints (a non-empty tenant,
 * a flat list of endpoint ids without NULLs, a printable message id) hold by
 * construction, and the message id is the column default's, new_message_id().
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "event_queue.h"
#include "event_store.h"
#include "message_id.h"
#include "spi_plan.h"
#include "tenant.h"

#define EVENT_STORE_MULTI_INSERT 1000

typedef struct ColumnSpec
{
	const char *name;
	Oid			type;
} ColumnSpec;

/* The columns of integration.webhook_events as the extension creates them. */
static const ColumnSpec event_columns[] = {
	{"tenant_id", TEXTOID},
	{"id", INT8OID},
	{"message_id", TEXTOID},
	{"event", TEXTOID},
	{"payload", TEXTOID},
	{"endpoint_ids", INT8ARRAYOID},
	{"created_at", TIMESTAMPTZOID},
};

/* And of integration.webhook_event_queue. */
static const ColumnSpec queue_columns[] = {
	{"tenant_id", TEXTOID},
	{"event_id", INT8OID},
};

static SPIPlanPtr insert_plan = NULL;

/* Whether rel has exactly the columns cols, in order. */
static bool
has_columns(Relation rel, const ColumnSpec *cols, int ncols)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (desc->natts != ncols)
		return false;
	for (int i = 0; i < ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != cols[i].type ||
			strcmp(NameStr(att->attname), cols[i].name) != 0)
			return false;
	}
	return true;
}

/* Whether trigger t fires in this session (trigger.c's TriggerEnabled, first part). */
static bool
trigger_fires(const Trigger *t)
{
	if (t->tgenabled == TRIGGER_DISABLED)
		return false;
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return t->tgenabled != TRIGGER_FIRES_ON_ORIGIN;
	return t->tgenabled != TRIGGER_FIRES_ON_REPLICA;
}

/*
 * The address fmgr calls for trigger t's function: the C function itself, or for
 * another language its handler (which a plain INSERT would load to fire it anyway).
 */
static PGFunction
trigger_function(const Trigger *t)
{
	FmgrInfo	flinfo;

	fmgr_info(t->tgfoid, &flinfo);
	return flinfo.fn_addr;
}

/*
 * Whether every INSERT trigger on rel that fires in this session is one whose work the
 * bulk path does itself (see the file header): the extension's RequireTenant, and on
 * webhook_events (events true) exactly one events_queued.
 */
static bool
insert_triggers_known(Relation rel, bool events)
{
	TriggerDesc *trig = rel->trigdesc;
	int			queueing = 0;

	for (int i = 0; trig != NULL && i < trig->numtriggers; i++)
	{
		Trigger    *t = &trig->triggers[i];
		PGFunction	fn;

		if (!TRIGGER_FOR_INSERT(t->tgtype) || !trigger_fires(t))
			continue;
		if (TRIGGER_FOR_ROW(t->tgtype) || t->tgqual != NULL || t->tgnargs != 0)
			return false;
		fn = trigger_function(t);
		if (TRIGGER_FOR_BEFORE(t->tgtype) && fn == integration_require_tenant_for_write)
			continue;
		if (events && TRIGGER_FOR_AFTER(t->tgtype) && t->tgnewtable != NULL &&
			fn == integration_queue_events)
		{
			queueing++;
			continue;
		}
		return false;
	}
	/* Without it (disabled, say) a plain INSERT queues nothing. */
	return !events || queueing == 1;
}

/* Whether events and their queue can take the fast path (see the file header). */
static bool
fast_path_allowed(Relation events, Relation queue)
{
	return has_columns(events, event_columns, lengthof(event_columns)) &&
		has_columns(queue, queue_columns, lengthof(queue_columns)) &&
		insert_triggers_known(events, true) && insert_triggers_known(queue, false) &&
		pg_class_aclcheck(RelationGetRelid(events), GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
		pg_class_aclcheck(RelationGetRelid(queue), GetUserId(), ACL_INSERT) == ACLCHECK_OK;
}

/* Rows written to one table the way COPY writes them. */
typedef struct BulkTarget
{
	Relation	rel;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot *slots[EVENT_STORE_MULTI_INSERT];
	int			nslots;			/* slots created so far */
} BulkTarget;

static void
bulk_open(BulkTarget *t, Relation rel)
{
	memset(t, 0, sizeof(*t));
	t->rel = rel;
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, rel, 1, NULL, 0);
	CheckValidResultRel(t->rri, CMD_INSERT);
	ExecOpenIndices(t->rri, false);
	t->bistate = GetBulkInsertState();
}

/* Slot i, emptied, for the caller to fill. */
static TupleTableSlot *
bulk_slot(BulkTarget *t, int i)
{
	if (i == t->nslots)
		t->slots[t->nslots++] = table_slot_create(t->rel, NULL);
	ExecClearTuple(t->slots[i]);
	memset(t->slots[i]->tts_isnull, false, sizeof(bool) * RelationGetDescr(t->rel)->natts);
	return t->slots[i];
}

/* Writes slots [0, n) and their index entries. */
static void
bulk_write(BulkTarget *t, int n, CommandId cid, EState *estate)
{
	for (int i = 0; i < n; i++)
		ExecStoreVirtualTuple(t->slots[i]);
	table_multi_insert(t->rel, t->slots, n, cid, 0, t->bistate);
	for (int i = 0; i < n; i++)
	{
		ResetPerTupleExprContext(estate);
		(void) ExecInsertIndexTuples(t->rri, t->slots[i], estate, false, false, NULL, NIL);
	}
}

static void
bulk_close(BulkTarget *t)
{
	for (int i = 0; i < t->nslots; i++)
		ExecDropSingleTupleTableSlot(t->slots[i]);
	FreeBulkInsertState(t->bistate);
	table_finish_bulk_insert(t->rel, 0);
	ExecCloseIndices(t->rri);
	table_close(t->rel, NoLock);
}

/* The plain INSERT, through SPI: for tables the fast path must not bypass. */
static void
insert_events_spi(Datum tenant, Datum event, Datum endpoints, Datum payloads)
{
	Datum		args[4];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		Oid			argtypes[4] = {TEXTOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID};

		SavedPlan(&insert_plan,
				  "INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)"
				  " SELECT $1, $2, p, $3 FROM pg_catalog.unnest($4) AS p",
				  4, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	args[0] = tenant;
	args[1] = event;
	args[2] = endpoints;
	args[3] = payloads;
	RunPlan(insert_plan, args, false, SPI_OK_INSERT, "inserting events");
	SPI_finish();
}

/*
 * The plain INSERT for rows: one statement per run of rows with the same tenant, event
 * and endpoints (the same datums, as publish.c builds them), so the events keep the
 * order of rows.
 */
static void
insert_rows_spi(EventRow *rows, int nrows)
{
	Datum	   *payloads = palloc(sizeof(Datum) * nrows);
	int			save_nestlevel = NewGUCNestLevel();

	/*
	 * Published events are queued whatever the session: with
	 * check_function_bodies off, a superuser's plain INSERT from a trigger of
	 * a business table's INSERT would otherwise look like a restore to
	 * events_queued (restore_mode.c).
	 */
	(void) set_config_option("check_function_bodies", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	for (int first = 0; first < nrows;)
	{
		int			n = 0;

		while (first + n < nrows &&
			   rows[first + n].tenant == rows[first].tenant &&
			   rows[first + n].event == rows[first].event &&
			   rows[first + n].endpoint_ids == rows[first].endpoint_ids)
		{
			payloads[n] = rows[first + n].payload;
			n++;
		}
		insert_events_spi(rows[first].tenant, rows[first].event, rows[first].endpoint_ids,
						  PointerGetDatum(construct_array(payloads, n, TEXTOID, -1,
														  false, TYPALIGN_INT)));
		first += n;
	}
	AtEOXact_GUC(true, save_nestlevel);
	pfree(payloads);
}

/*
 * Inserts rows into webhook_events, in order, and queues them for fan-out.  Rows of
 * different tenants and events may follow each other: a statement that writes the
 * rows of many tenants costs what one writing a single tenant's does.
 */
void
InsertEvents(EventRow *rows, int nrows)
{
	Oid			nsp = get_namespace_oid("integration", false);
	Oid			relid = get_relname_relid("webhook_events", nsp);
	Oid			queue_relid = get_relname_relid("webhook_event_queue", nsp);
	Relation	rel;
	Relation	queue_rel;
	EState	   *estate;
	BulkTarget	events;
	BulkTarget	queue;
	CommandId	cid;
	Oid			seqid;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	MemoryContext ids_cxt;

	if (nrows == 0)
		return;
	if (!OidIsValid(relid) || !OidIsValid(queue_relid))
		elog(ERROR, "integration.webhook_events or integration.webhook_event_queue does not exist");
	rel = table_open(relid, RowExclusiveLock);
	queue_rel = table_open(queue_relid, RowExclusiveLock);
	if (!fast_path_allowed(rel, queue_rel))
	{
		table_close(queue_rel, NoLock);
		table_close(rel, NoLock);
		insert_rows_spi(rows, nrows);
		return;
	}

	seqid = getIdentitySequence(relid, 2, false);
	cid = GetCurrentCommandId(true);

	estate = CreateExecutorState();
	bulk_open(&events, rel);
	bulk_open(&queue, queue_rel);

	ids_cxt = AllocSetContextCreate(CurrentMemoryContext, "event message ids",
									ALLOCSET_SMALL_SIZES);
	for (int done = 0; done < nrows;)
	{
		int			n = Min(nrows - done, EVENT_STORE_MULTI_INSERT);

		MemoryContextReset(ids_cxt);

		for (int i = 0; i < n; i++)
		{
			EventRow   *r = &rows[done + i];
			TupleTableSlot *ev = bulk_slot(&events, i);
			TupleTableSlot *q = bulk_slot(&queue, i);
			Datum		id = Int64GetDatum(nextval_internal(seqid, true));
			MemoryContext old = MemoryContextSwitchTo(ids_cxt);
			Datum		message_id = MessageIdGenerateText();

			MemoryContextSwitchTo(old);

			ev->tts_values[0] = r->tenant;
			ev->tts_values[1] = id;
			ev->tts_values[2] = message_id;
			ev->tts_values[3] = r->event;
			ev->tts_values[4] = r->payload;
			ev->tts_values[5] = r->endpoint_ids;
			ev->tts_values[6] = TimestampTzGetDatum(now);
			q->tts_values[0] = r->tenant;
			q->tts_values[1] = id;
		}
		bulk_write(&events, n, cid, estate);
		bulk_write(&queue, n, cid, estate);
		done += n;
	}

	bulk_close(&queue);
	bulk_close(&events);
	FreeExecutorState(estate);
	MemoryContextDelete(ids_cxt);
}
