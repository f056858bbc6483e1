/*
 * inbound_sql.c
 *		integration._run_inbound(max): the worker's run of inbound handlers, from SQL, in
 *		the caller's transaction, for tests and operators; and
 *		integration._inbound_pacer_plan(): the handler worker's pacing, for tests.
 *
 * It claims as the worker does (InboundClaim(): due events, fair across tenants, in
 * order per object), runs them as the worker does (InboundRun(): each event's handlers
 * in a subtransaction, as their roles, with the event's tenant selected) and returns
 * what became of each.  It holds nothing and has no handler timeout: the session's own
 * statement_timeout applies.  Superusers only, as the worker: it runs other roles' code
 * as those roles.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
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
	InboundRun(refs, n, 0, NULL, outcomes);
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

PG_FUNCTION_INFO_V1(integration_inbound_pacer_plan);

/*
 * _inbound_pacer_plan(budget_ms integer, tenants text[], costs_ms integer[]) RETURNS text
 *		How the handler worker's pacer (inbound_pacer.c) would run the events whose
 *		tenants and handler times are given, all ready at once, with a fresh pacer:
 *		the transactions in order, separated by " | ", each its events as tenant and
 *		1-based position, e.g. "a1 | b4 b5 | a2".  No clock, no SQL: for tests.
 */
Datum
integration_inbound_pacer_plan(PG_FUNCTION_ARGS)
{
	int32		budget_ms = PG_GETARG_INT32(0);
	ArrayType  *tenants_arr = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *costs_arr = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *tenant_d;
	bool	   *tenant_nulls;
	Datum	   *cost_d;
	bool	   *cost_nulls;
	int			n;
	int			ncosts;
	const char **tenants;
	bool	   *candidate;
	InboundPacer *pacer;
	StringInfoData out;
	int			left;

	if (budget_ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("budget_ms must be positive"),
				 errdetail("The budget_ms given was %d.", budget_ms)));
	deconstruct_array(tenants_arr, TEXTOID, -1, false, TYPALIGN_INT, &tenant_d, &tenant_nulls, &n);
	deconstruct_array(costs_arr, INT4OID, 4, true, TYPALIGN_INT, &cost_d, &cost_nulls, &ncosts);
	if (n != ncosts || array_contains_nulls(tenants_arr) || array_contains_nulls(costs_arr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenants and costs_ms must be arrays of the same length without nulls"),
				 errdetail("tenants has %d elements and costs_ms %d.", n, ncosts)));

	tenants = palloc(sizeof(char *) * Max(n, 1));
	candidate = palloc(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		tenants[i] = TextDatumGetCString(tenant_d[i]);
		candidate[i] = true;
	}
	pacer = InboundPacerCreate(CurrentMemoryContext, (int64) budget_ms * 1000);
	initStringInfo(&out);
	for (left = n; left > 0;)
	{
		int			i;

		if (out.len > 0)
			appendStringInfoString(&out, " |");
		InboundPacerBeginRun(pacer);
		while ((i = InboundPacerNext(pacer, tenants, candidate, n)) >= 0)
		{
			candidate[i] = false;
			left--;
			InboundPacerCharge(pacer, tenants[i], (int64) DatumGetInt32(cost_d[i]) * 1000);
			appendStringInfo(&out, "%s%s%d", out.len > 0 ? " " : "", tenants[i], i + 1);
		}
	}
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}
