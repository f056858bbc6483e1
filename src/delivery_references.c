/*
 * delivery_references.c
 *		What foreign keys from integration.deliveries to webhook_events and
 *		webhook_endpoints would enforce, as triggers that check a statement at a time.
 *
 * A foreign key checks every inserted row with a query and a row lock of its own, and
 * the worker inserts thousands of deliveries a second.  Measured against real foreign
 * keys (bench/ab, bench/README.md), those per-row checks took the worker's
 * SQL thread from about 23 to 33-38 us per delivery and its deliveries/s down by 20% to
 * 30%, beyond the 10% that keys were allowed to cost.  So every insert, the worker's
 * fan-out included, is checked once per statement over its transition table: one
 * set-based query per batch.
 *
 * The checks behave like PostgreSQL's own (ri_triggers.c): they run as the table's
 * owner with row-level security off, since a reference is a fact about keys and not
 * about what the caller may see; the insert check locks the rows it finds FOR KEY
 * SHARE, so a concurrent delete waits for the inserting transaction; and the
 * checks on the referenced side read with a fresh snapshot, so a serializable caller
 * also sees deliveries committed after its snapshot was taken, and lock the
 * deliveries they find FOR KEY SHARE, as ri_triggers.c's NO ACTION check does: a
 * delivery that another transaction is deleting is waited for, and counts only if
 * that transaction rolls back.  On the referenced
 * side, an endpoint that deliveries refer to cannot be deleted, get another key or be
 * truncated (ON DELETE NO ACTION); deleting events deletes their queue rows and
 * deliveries (ON DELETE CASCADE), and in a REPEATABLE READ or SERIALIZABLE transaction
 * a delivery committed after its snapshot makes the delete fail with a serialization
 * failure instead of being left behind, as ri_triggers.c's cascade does.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "references.h"
#include "restore_mode.h"
#include "spi_plan.h"

PG_FUNCTION_INFO_V1(integration_check_delivery_references);

/*
 * AFTER INSERT ... FOR EACH STATEMENT on deliveries (transition table "added"): every
 * new delivery refers to an event and an endpoint of its own tenant.  Each key is
 * looked up and locked once however many of the rows carry it: a batch of the
 * fan-out has one endpoint for many deliveries, and an event for each of its
 * endpoints.  Not in a restore (restore_mode.c): pg_dump orders the tables' data by
 * foreign keys only, so deliveries load before the events and endpoints they refer
 * to, all as they were when dumped.
 */
Datum
integration_check_delivery_references(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	char	   *tenant;
	char	   *key;

	if (!CALLED_AS_TRIGGER(fcinfo) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("check_delivery_references() must be an AFTER INSERT statement trigger with a transition table")));
	if (RestoreInProgress())
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_register_trigger_data(trigdata);
	if (ReferenceFirstRow(trigdata->tg_relation,
						  "SELECT a.tenant_id, a.event_id"
						  "  FROM (SELECT DISTINCT tenant_id, event_id FROM added) a"
						  " WHERE NOT EXISTS (SELECT FROM integration.webhook_events e"
						  "                    WHERE e.tenant_id OPERATOR(pg_catalog.=) a.tenant_id"
						  "                      AND e.id OPERATOR(pg_catalog.=) a.event_id"
						  "                      FOR KEY SHARE OF e)",
						  0, NULL, NULL, false, &tenant, &key))
		ReferenceMissing(trigdata, "webhook_events", "event_id", tenant, key);
	if (ReferenceFirstRow(trigdata->tg_relation,
						  "SELECT a.tenant_id, a.endpoint_id"
						  "  FROM (SELECT DISTINCT tenant_id, endpoint_id FROM added) a"
						  " WHERE NOT EXISTS (SELECT FROM integration.webhook_endpoints w"
						  "                    WHERE w.tenant_id OPERATOR(pg_catalog.=) a.tenant_id"
						  "                      AND w.id OPERATOR(pg_catalog.=) a.endpoint_id"
						  "                      FOR KEY SHARE OF w)",
						  0, NULL, NULL, false, &tenant, &key))
		ReferenceMissing(trigdata, "webhook_endpoints", "endpoint_id", tenant, key);
	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(integration_check_endpoint_unreferenced);

/* What refers to webhook_endpoints: the deliveries. */
static const ReferringTable endpoint_referrers[] = {
	{"deliveries",
		"SELECT g.tenant_id, g.id FROM gone g"
		" WHERE EXISTS (SELECT FROM integration.deliveries d"
		"                WHERE d.tenant_id OPERATOR(pg_catalog.=) g.tenant_id"
		"                  AND d.endpoint_id OPERATOR(pg_catalog.=) g.id"
		"                FOR KEY SHARE OF d)",
		"SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d"
		" WHERE d.tenant_id OPERATOR(pg_catalog.=) $1"
		"   AND d.endpoint_id OPERATOR(pg_catalog.=) $2 LIMIT 1"
		" FOR KEY SHARE OF d",
		"SELECT d.tenant_id, d.endpoint_id FROM integration.deliveries d LIMIT 1",
	"Truncate integration.webhook_events first, which truncates the deliveries too, or name it before webhook_endpoints in the same command."},
};

/*
 * On webhook_endpoints: AFTER DELETE ... FOR EACH STATEMENT (transition table "gone"),
 * AFTER UPDATE ... FOR EACH ROW (when the key changed, whatever the statement names)
 * and AFTER TRUNCATE: no delivery refers to an endpoint key that is gone.
 */
Datum
integration_check_endpoint_unreferenced(PG_FUNCTION_ARGS)
{
	ReferencesCheckUnreferenced(fcinfo, "check_endpoint_unreferenced()",
								endpoint_referrers, lengthof(endpoint_referrers),
								"integration.delete_webhook() soft-deletes an endpoint and keeps its deliveries.");
	return PointerGetDatum(NULL);
}

/*
 * Deletes the rows that lock_sql (reading the transition table "gone") finds and locks
 * FOR UPDATE, returning their ctids, with delete_sql (ctids in $1), each as rel's owner.
 *
 * Why two statements.  As one join of "gone" with the table, the planner hashed the
 * whole table whenever that looked cheaper than a probe per event, and the plan cache
 * kept that plan for later, smaller deletes: at 200,000 deliveries, deleting 2,000
 * events that had none left took 52-63 ms (the hash read all 200,000), 100 events
 * 47-53 ms, and 2,000 events with their 4,000 deliveries 72-75 ms; this way 10-19 ms,
 * 3-6 ms and 43-66 ms (two runs of three, interleaved).  That is what deleting events
 * costs retention.c, batch after batch.  A LATERAL subquery is a probe of the table's
 * key per event, whatever the sizes.  Its rows are locked as they
 * are found, waiting for whoever holds them as the delete did, and a row updated
 * meanwhile is locked in its new version; the delete then reaches them by ctid, which
 * a locked row keeps, under a snapshot taken after the locks (a fresh one, or with
 * latest the latest checked against the transaction's, see below) that sees those
 * versions.
 */
static void
delete_locked(Relation rel, const char *lock_sql, const char *delete_sql, bool latest)
{
	Oid			argtypes[1] = {TIDARRAYOID};
	Datum		args[1];

	if (latest)
		CommandCounterIncrement();	/* the latest snapshot sees this
									 * statement's own deletes */
	ReferenceExecuteAsOwner(rel, lock_sql, 0, NULL, NULL,
							latest ? GetLatestSnapshot() : InvalidSnapshot, InvalidSnapshot,
							0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	args[0] = ResultTids(1);
	if (latest)
		CommandCounterIncrement();	/* the latest snapshot sees what was
									 * locked */
	ReferenceExecuteAsOwner(rel, delete_sql, 1, argtypes, args,
							latest ? GetLatestSnapshot() : InvalidSnapshot,
							latest ? GetTransactionSnapshot() : InvalidSnapshot,
							0, SPI_OK_DELETE);
}

PG_FUNCTION_INFO_V1(integration_delete_event_deliveries);

/*
 * On webhook_events: AFTER DELETE ... FOR EACH STATEMENT (transition table "gone") and
 * AFTER TRUNCATE.  Deleting events deletes their queue rows and deliveries (their
 * attempts go with them, by foreign key); truncating the events truncates the three.
 *
 * The queue rows go first: a fan-out of these events in progress holds them, so the
 * delete waits for it, and the deliveries it made are then found by the next statement.
 * In READ COMMITTED that statement's fresh snapshot sees them.  A transaction-snapshot
 * transaction reads with the latest snapshot instead, checked against its own as
 * ri_triggers.c does for ON DELETE CASCADE: a delivery committed after its snapshot
 * (one inserted by hand for an old event, say) ends it with a serialization failure,
 * where the transaction's snapshot would have left that delivery without its event.
 *
 * Each table's rows are found one event at a time (delete_locked()), so that the cost
 * follows the number of events deleted and not the size of the tables.
 */
Datum
integration_delete_event_deliveries(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("delete_event_deliveries() must be an AFTER ... FOR EACH STATEMENT trigger")));
	rel = trigdata->tg_relation;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		/* As the caller, who needs the right to truncate these too. */
		rc = SPI_execute("TRUNCATE integration.deliveries, integration.delivery_attempts,"
						 " integration.webhook_event_queue", false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "truncating the deliveries failed: %s", SPI_result_code_string(rc));
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) || trigdata->tg_oldtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("delete_event_deliveries() on DELETE needs the transition table \"gone\"")));

	SPI_register_trigger_data(trigdata);
	delete_locked(rel,
				  "SELECT x.ctid FROM gone g"
				  " CROSS JOIN LATERAL (SELECT x.ctid FROM integration.webhook_event_queue x"
				  "                      WHERE x.event_id OPERATOR(pg_catalog.=) g.id"
				  "                        AND x.tenant_id OPERATOR(pg_catalog.=) g.tenant_id"
				  "                        FOR UPDATE) x",
				  "DELETE FROM integration.webhook_event_queue q"
				  " WHERE q.ctid OPERATOR(pg_catalog.=) ANY ($1)",
				  false);
	delete_locked(rel,
				  "SELECT x.ctid FROM gone g"
				  " CROSS JOIN LATERAL (SELECT x.ctid FROM integration.deliveries x"
				  "                      WHERE x.tenant_id OPERATOR(pg_catalog.=) g.tenant_id"
				  "                        AND x.event_id OPERATOR(pg_catalog.=) g.id"
				  "                        FOR UPDATE) x",
				  "DELETE FROM integration.deliveries d"
				  " WHERE d.ctid OPERATOR(pg_catalog.=) ANY ($1)",
				  IsolationUsesXactSnapshot());
	SPI_finish();
	return PointerGetDatum(NULL);
}
