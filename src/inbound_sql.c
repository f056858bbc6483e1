/*
 * inbound_sql.c
 *		integration._run_inbound(max): the worker's run of inbound handlers, from SQL, in
 *		the caller's transaction, for tests and operators.
 *
 * It claims as the worker does (InboundClaim(): due events, fair across tenants, in
 * order per object), runs them as the worker does (InboundRun(): each event's handlers
 * in a subtransaction, as their roles, with the event's tenant selected) and returns
 * what became of each.  It holds nothing and has no handler timeout: the session's own
 * statement_timeout applies.  Superusers only, as the worker: it runs other roles' code
 * as those roles.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inbound_store.h"

/* Most events one call runs: a subtransaction id each, see inbound_store.c. */
#define RUN_MAX 1000

PG_FUNCTION_INFO_V1(integration_run_inbound);

/*
 * _run_inbound(max integer)
 *		RETURNS TABLE (tenant_id text, id bigint, status text, attempts integer, error text)
 */
Datum
integration_run_inbound(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max = PG_GETARG_INT32(0);
	InboundClaimRequest req;
	InboundRef *refs;
	InboundOutcome *outcomes;
	int			n;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may run inbound handlers"),
				 errdetail("It runs every tenant's handlers, each as the role that registered it."),
				 errhint("The worker runs them; integration.reprocess_inbound() asks it to run one again.")));
	if (max < 0 || max > RUN_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 0 and %d", RUN_MAX),
				 errdetail("The max given was %d.", max)));

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(&req, 0, sizeof(req));
	req.limit = max;
	req.now = GetCurrentTimestamp();
	refs = palloc(sizeof(InboundRef) * Max(max, 1));
	outcomes = palloc(sizeof(InboundOutcome) * Max(max, 1));
	n = InboundClaim(&req, refs);
	InboundRun(refs, n, 0, outcomes);
	for (int i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, outcomes[i].error == NULL};

		values[0] = CStringGetTextDatum(refs[i].tenant_id);
		values[1] = Int64GetDatum(refs[i].id);
		values[2] = CStringGetTextDatum(InboundStatusName(outcomes[i].status));
		values[3] = Int32GetDatum(outcomes[i].attempts);
		values[4] = outcomes[i].error ? CStringGetTextDatum(outcomes[i].error) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
