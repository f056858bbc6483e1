/*
 * store_sql.c
 *		SQL-callable entry points into the delivery store (delivery_*.c), for tests
 *		and operators: integration._claim_due(), _fan_out() and _reconcile_leases().
 *
 * Each runs the worker's own statement, through the worker's own code, in the caller's
 * transaction: it connects to SPI, runs the statement and disconnects; it never starts,
 * commits or aborts a transaction.  So an isolation spec can keep a claim open in one
 * session while another claims, publishes or changes an endpoint, and shows what the
 * worker's statement does then.  What the worker decides around a statement is stood
 * in for by the simplest choice: every endpoint has room for the fan-out's claims, no
 * endpoint is left out of a claim, and the caller holds no delivery when it reconciles.
 *
 * They are SECURITY INVOKER: row-level security scopes them to the caller's tenant,
 * unless the caller bypasses it as the worker (a superuser) does.  A claim made here
 * is a real one: nothing sends it, and it stays 'sending' until its lease runs out and
 * a reconcile (this one's or the worker's) returns it to 'pending'.
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "delivery_claim.h"
#include "delivery_fan_out.h"
#include "delivery_store.h"
#include "sending_counts.h"
#include "tenant.h"

PG_FUNCTION_INFO_V1(integration_claim_due);
PG_FUNCTION_INFO_V1(integration_fan_out);
PG_FUNCTION_INFO_V1(integration_reconcile_leases);

/* The longest lease accepted: lease_ms is an int. */
#define MAX_LEASE_DAYS 24

/* The lease argument in milliseconds; raises for a negative or too long one. */
static int
LeaseMs(Interval *lease)
{
	double		days = (double) lease->month * DAYS_PER_MONTH + lease->day;
	double		ms = lease->time / 1000.0 + days * SECS_PER_DAY * 1000.0;

	if (!(ms >= 0 && ms <= (double) MAX_LEASE_DAYS * SECS_PER_DAY * 1000.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease must be between 0 and %d days", MAX_LEASE_DAYS),
				 errdetail("The lease given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(lease)))),
				 errhint("A claim stays sending until its lease runs out; a lease of 0 runs out at once.")));
	return (int) ms;
}

/* Raises unless max is a number of rows. */
static void
CheckMax(int32 max)
{
	if (max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must not be negative"),
				 errdetail("The max given was %d.", max),
				 errhint("Pass how many rows to take at most, or 0 for none.")));
}

/* Returns the claims in list as the rows (id, usable) of the function's result set. */
static void
EmitClaims(FunctionCallInfo fcinfo, ClaimList *list)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	for (int i = 0; i < list->count; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(list->items[i].id);
		values[1] = BoolGetDatum(list->items[i].usable);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* FanOutRoom for the SQL fan-out: every endpoint has room. */
static int
EveryEndpointHasRoom(void *arg, const EndpointSettings *endpoint)
{
	return INT_MAX;
}

/*
 * integration._claim_due(max, lease): claims up to max due pending deliveries with
 * StoreClaim(), in batches of at most STORE_BATCH, and returns them.
 */
Datum
integration_claim_due(PG_FUNCTION_ARGS)
{
	int32		max = PG_GETARG_INT32(0);
	int			lease_ms = LeaseMs(PG_GETARG_INTERVAL_P(1));
	ClaimList	list;

	CheckMax(max);
	InitMaterializedSRF(fcinfo, 0);
	memset(&list, 0, sizeof(list));
	list.mcxt = CurrentMemoryContext;

	/*
	 * A claim writes deliveries, whether or not any is due: with no tenant,
	 * the caller learns so, rather than that none was.
	 */
	RequireTenantForWrite(get_relname_relid("deliveries",
											get_namespace_oid("integration", false)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	while (list.count < max)
	{
		int			want = Min(max - list.count, STORE_BATCH);

		if (StoreClaim(lease_ms, want, NULL, 0, &list) < want)
			break;
	}
	SPI_finish();
	/* 'sending' now: counted in the database's worker (sending_counts.c). */
	for (int i = 0; i < list.count; i++)
		SendingCountsClaimedElsewhere(list.items[i].tenant_id, 1);

	EmitClaims(fcinfo, &list);
	return (Datum) 0;
}

/*
 * integration._fan_out(max, lease): fans out up to max queued events, oldest first,
 * with StoreFanOutAndClaim()'s backlog lane alone, and returns the deliveries it
 * created, all claimed.
 */
Datum
integration_fan_out(PG_FUNCTION_ARGS)
{
	int32		max = PG_GETARG_INT32(0);
	int			lease_ms = LeaseMs(PG_GETARG_INTERVAL_P(1));
	ClaimList	list;
	FanOutLanes lanes;
	int			taken = 0;

	CheckMax(max);
	InitMaterializedSRF(fcinfo, 0);
	memset(&list, 0, sizeof(list));
	list.mcxt = CurrentMemoryContext;
	memset(&lanes, 0, sizeof(lanes));
	lanes.after = PG_INT64_MIN;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	while (taken < max)
	{
		/* The cursor moves past each batch; events put back stay behind it. */
		lanes.limit = Min(max - taken, STORE_BATCH);
		lanes.fresh_limit = 0;
		(void) StoreFanOutAndClaim(lease_ms, &lanes, EveryEndpointHasRoom, NULL, &list);
		taken += lanes.taken;
		if (lanes.taken < lanes.limit)
			break;
	}
	SPI_finish();

	EmitClaims(fcinfo, &list);
	return (Datum) 0;
}

/*
 * integration._reconcile_leases(): returns claims whose lease ran out to 'pending' with
 * StoreReconcileLeases(), skipping rows others hold locked; returns how many.
 */
Datum
integration_reconcile_leases(PG_FUNCTION_ARGS)
{
	int			n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = StoreReconcileLeases(false, NULL, 0);
	SPI_finish();
	PG_RETURN_INT32(n);
}
