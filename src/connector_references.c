/*
 * connector_references.c
 *		What foreign keys from integration.external_records and inbound_events to
 *		connectors would enforce, as triggers that check a statement at a time.
 *
 * A sync run's page writes a record and an event for each of up to 250 records, and
 * a foreign key checks each of those rows with a query of its own: 500 queries a
 * page, 1.7 ms of the pulling worker's 12.5 ms (13%; bench/run sync with and without
 * the two keys, bench/README.md), for what is one connector.  So, as for deliveries
 * (delivery_references.c, whose rules these follow; both run their statements through
 * references.c), each insert statement is checked once over its transition table,
 * every distinct connector key looked up and locked once.
 *
 * The checks behave like PostgreSQL's own (ri_triggers.c): they run as the table's
 * owner with row-level security off, since a reference is a fact about keys and not
 * about what the caller may see; the insert check locks the connectors it finds FOR
 * KEY SHARE, so a concurrent delete waits for the inserting transaction; a row whose
 * key is updated is checked alone (rare: nothing of the extension does it).  On the
 * referenced side a connector that records or events refer to cannot be deleted, get
 * another key or be truncated (ON DELETE NO ACTION; delete_connector() soft-deletes,
 * and the retention pass removes its rows first), read with a fresh snapshot so that a
 * serializable caller also sees rows committed after its snapshot.  The rows found
 * there are locked FOR KEY SHARE, as ri_triggers.c's NO ACTION check locks them: a
 * record or event that another transaction is deleting (or moving to another
 * connector) is waited for, and counts only if that transaction rolls back, where
 * reading it unlocked counted it still and failed the delete.  Not in a restore
 * (restore_mode.c), whose data loads in no particular order of tables.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "references.h"
#include "restore_mode.h"

#define ADDED_SQL(t) \
	"SELECT a.tenant_id, a.connector_id" \
	"  FROM (SELECT DISTINCT tenant_id, connector_id FROM added) a /* " t " */" \
	" WHERE NOT EXISTS (SELECT FROM integration.connectors c" \
	"                    WHERE c.tenant_id OPERATOR(pg_catalog.=) a.tenant_id" \
	"                      AND c.id OPERATOR(pg_catalog.=) a.connector_id" \
	"                      FOR KEY SHARE OF c)"
#define GONE_SQL(t) \
	"SELECT g.tenant_id, g.id FROM gone g" \
	" WHERE EXISTS (SELECT FROM integration." t " r" \
	"                WHERE r.tenant_id OPERATOR(pg_catalog.=) g.tenant_id" \
	"                  AND r.connector_id OPERATOR(pg_catalog.=) g.id" \
	"                  FOR KEY SHARE OF r)"
#define ANY_SQL(t) \
	"SELECT r.tenant_id, r.connector_id FROM integration." t " r LIMIT 1"
#define KEY_SQL(t) \
	"SELECT r.tenant_id, r.connector_id FROM integration." t " r" \
	" WHERE r.tenant_id OPERATOR(pg_catalog.=) $1" \
	"   AND r.connector_id OPERATOR(pg_catalog.=) $2 LIMIT 1 FOR KEY SHARE OF r"

#define TRUNCATE_HINT(t) "Truncate integration." t " too, in the same command."

/* What refers to connectors, as the referenced side's checks read it. */
static const ReferringTable referrers[] = {
	{"external_records", GONE_SQL("external_records"), KEY_SQL("external_records"),
	ANY_SQL("external_records"), TRUNCATE_HINT("external_records")},
	{"inbound_events", GONE_SQL("inbound_events"), KEY_SQL("inbound_events"),
	ANY_SQL("inbound_events"), TRUNCATE_HINT("inbound_events")},
};

/* The check of an insert into each of them: keys of "added" not in connectors, locked. */
static const char *const added_sql[] = {
	ADDED_SQL("external_records"),
	ADDED_SQL("inbound_events"),
};

/* The statement that checks an insert into the table a trigger fired on. */
static const char *
added_sql_of(Relation rel)
{
	for (int i = 0; i < lengthof(referrers); i++)
		if (strcmp(RelationGetRelationName(rel), referrers[i].table) == 0)
			return added_sql[i];
	elog(ERROR, "table \"%s\" does not refer to connectors", RelationGetRelationName(rel));
	return NULL;				/* keep the compiler quiet */
}

PG_FUNCTION_INFO_V1(integration_check_connector_references);

/*
 * On external_records and inbound_events: AFTER INSERT ... FOR EACH STATEMENT
 * (transition table "added"), and AFTER UPDATE ... FOR
 * EACH ROW when the key changed: every row refers to a connector of its own tenant.
 */
Datum
integration_check_connector_references(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *sql;
	char	   *tenant;
	char	   *key;
	bool		missing;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("check_connector_references() must be an AFTER trigger")));
	if (RestoreInProgress())
		return PointerGetDatum(NULL);
	sql = added_sql_of(trigdata->tg_relation);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		HeapTuple	row = trigdata->tg_newtuple;
		TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		args[2];
		bool		isnull;

		args[0] = heap_getattr(row, SPI_fnumber(desc, "tenant_id"), desc, &isnull);
		args[1] = heap_getattr(row, SPI_fnumber(desc, "connector_id"), desc, &isnull);
		missing = !ReferenceFirstRow(trigdata->tg_relation,
									 "SELECT c.tenant_id, c.id FROM integration.connectors c"
									 " WHERE c.tenant_id OPERATOR(pg_catalog.=) $1"
									 "   AND c.id OPERATOR(pg_catalog.=) $2 FOR KEY SHARE OF c",
									 2, types, args, false, &tenant, &key);
		if (missing)
		{
			tenant = TextDatumGetCString(args[0]);
			key = psprintf(INT64_FORMAT, DatumGetInt64(args[1]));
		}
	}
	else if (trigdata->tg_newtable != NULL)
	{
		SPI_register_trigger_data(trigdata);
		missing = ReferenceFirstRow(trigdata->tg_relation, sql,
									0, NULL, NULL, false, &tenant, &key);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("check_connector_references() on INSERT needs the transition table \"added\"")));
	if (missing)
		ReferenceMissing(trigdata, "connectors", "connector_id", tenant, key);
	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(integration_check_connector_unreferenced);

/*
 * On connectors: AFTER DELETE ... FOR EACH STATEMENT (transition table "gone"), AFTER
 * UPDATE ... FOR EACH ROW (when the key changed) and AFTER TRUNCATE:
 * no record or event refers to a connector key that is gone.
 */
Datum
integration_check_connector_unreferenced(PG_FUNCTION_ARGS)
{
	ReferencesCheckUnreferenced(fcinfo, "check_connector_unreferenced()",
								referrers, lengthof(referrers),
								"integration.delete_connector() soft-deletes a connector; retention removes its records and events.");
	return PointerGetDatum(NULL);
}
