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
#include "utils/rel.h"

#include "event_queue.h"

PG_FUNCTION_INFO_V1(integration_queue_events);

/*
 * AFTER INSERT ... FOR EACH STATEMENT on webhook_events (transition table "added"):
 * every new event is queued for fan-out, as the caller (who needs INSERT on the queue).
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
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_register_trigger_data(trigdata);
	rc = SPI_execute("INSERT INTO integration.webhook_event_queue (tenant_id, event_id)"
					 " SELECT a.tenant_id, a.id FROM added a", false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "queueing events failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	return PointerGetDatum(NULL);
}
