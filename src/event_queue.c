/*
 * event_queue.c
 *		The trigger that queues every new event of integration.webhook_events in
 *		integration.webhook_event_queue for fan-out.  (Deleting or truncating events
 *		takes their queue rows along: delivery_references.c.)
 *
 * integration_queue_events is also how event_store.c recognises the extension's own
 * queueing trigger, by the function it runs rather than by any name.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "event_queue.h"
#include "restore_mode.h"

/*
 * Raises unless every endpoint that the new or changed events (the trigger's NEW
 * transition table) list is one of their own tenant's, as publish_event() and
 * dispatch_webhook() choose them.  NULLs are the CHECK constraint's to refuse.
 * The lookup runs as the table's owner without row-level security, as ri_triggers.c
 * checks a foreign key, so it compares tenants explicitly whoever the caller is.
 * Publishing's bulk path (event_store.c) writes only endpoints taken from the
 * tenant's own endpoint cache, and does the work of this trigger itself.
 */
static void
check_event_endpoints(TriggerData *trigdata)
{
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	rc = SPI_execute(psprintf("SELECT a.tenant_id, u.endpoint_id::pg_catalog.text"
							  "  FROM %s a CROSS JOIN LATERAL pg_catalog.unnest(a.endpoint_ids) AS u(endpoint_id)"
							  " WHERE u.endpoint_id IS NOT NULL"
							  "   AND NOT EXISTS (SELECT FROM integration.webhook_endpoints w"
							  "                    WHERE w.tenant_id OPERATOR(pg_catalog.=) a.tenant_id"
							  "                      AND w.id OPERATOR(pg_catalog.=) u.endpoint_id)"
							  " LIMIT 1", quote_identifier(trigdata->tg_trigger->tgnewtable)),
					 true, 1);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "checking the events' endpoints failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		char	   *tenant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *endpoint = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("webhook %s of an event is not an endpoint of tenant \"%s\"",
						endpoint, tenant),
				 errdetail("An event goes only to endpoints of its own tenant."),
				 errhint("Publish with integration.publish_event() or integration.dispatch_webhook(), which choose the endpoints.")));
	}
}

PG_FUNCTION_INFO_V1(integration_queue_events);

/*
 * AFTER INSERT ... FOR EACH STATEMENT on webhook_events (transition table "added"):
 * the new events' endpoints are checked, and every new event is queued for fan-out,
 * as the caller (who needs INSERT on the queue).  Neither in a restore, which loads
 * webhook_event_queue as dumped (restore_mode.c).
 */
Datum
integration_queue_events(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("queue_events() must be an AFTER INSERT statement trigger with a transition table")));

	/*
	 * A restore loads the queue as dumped, and the endpoints perhaps after
	 * the events.
	 */
	if (RestoreInProgress())
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_register_trigger_data(trigdata);
	check_event_endpoints(trigdata);
	rc = SPI_execute("INSERT INTO integration.webhook_event_queue (tenant_id, event_id)"
					 " SELECT a.tenant_id, a.id FROM added a", false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "queueing events failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(integration_check_event_endpoints);

/*
 * AFTER UPDATE ... FOR EACH STATEMENT on webhook_events, with a NEW transition table:
 * a changed event still goes only to endpoints of its own tenant (new events are
 * checked by queue_events()).
 */
Datum
integration_check_event_endpoints(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("check_event_endpoints() must be an AFTER statement trigger with a NEW transition table")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_register_trigger_data(trigdata);
	check_event_endpoints(trigdata);
	SPI_finish();
	return PointerGetDatum(NULL);
}
