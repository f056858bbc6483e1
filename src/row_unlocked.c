/*
 * row_unlocked.c
 *		integration.row_unlocked(xmax, claim_xmax): whether no transaction has locked,
 *		updated or deleted a row version since the claim wrote it, and what the planner
 *		should expect of it.
 *
 * The worker records an outcome only into a delivery row that nobody holds locked, so
 * that it never waits for another session (delivery_outcome.c, record_outcomes()): the
 * row version its claim wrote has no xmax until someone locks it, but the claim's own.
 * A claim of a pending delivery locks the row (FOR UPDATE SKIP LOCKED) before it
 * updates it, and PostgreSQL keeps a transaction's lock in the row version its update
 * makes (heap_update(): "the only locker is ourselves ... must preserve our locking
 * information"), so that version's xmax is the claiming transaction, committed and
 * holding nothing by the time the outcome is written.  The claim returns that xmax
 * (claim_xmax; none for a delivery inserted claimed), and a row version that carries
 * it, or none, is unlocked.  Tested as "no xmax" alone, the outcome of every retry and
 * of every delivery claimed from the backlog missed its row and took the slow way, two
 * more statements planned at each cycle: about a fifth of the worker's time a delivery
 * where one endpoint drains a backlog (bench/README.md).  Written as
 * "d.xmax = 0", that test took the default selectivity of an equality on a column
 * without statistics (a system column never has any), 0.5%, so a batch's rows looked
 * like one row.  On a table that looked small (just created, or just truncated), the
 * generic plan then joined the batch to a sequential scan of deliveries in a nested
 * loop, reading every claimed row against every result: quadratic in the batch, and
 * the worker's outcome statement took five times as long per row for the first
 * thousand deliveries after bench/run's TRUNCATE (bench/README.md).  Almost every row
 * the worker records is unlocked, so this function tells the planner exactly that
 * through its support function, the interface PostgreSQL offers for a predicate the
 * planner cannot estimate; the plans are then the ones the statement was written for.
 */
#include "postgres.h"

#include "access/transam.h"
#include "fmgr.h"
#include "nodes/supportnodes.h"

PG_FUNCTION_INFO_V1(integration_row_unlocked);
PG_FUNCTION_INFO_V1(integration_row_unlocked_support);

/*
 * row_unlocked(xmax xid, claim_xmax xid): true when the row version has no xmax, or the
 * one its claim left.  Anyone else's lock, a multixact included, is another value.
 */
Datum
integration_row_unlocked(PG_FUNCTION_ARGS)
{
	TransactionId xmax = DatumGetTransactionId(PG_GETARG_DATUM(0));
	TransactionId claim_xmax = DatumGetTransactionId(PG_GETARG_DATUM(1));

	PG_RETURN_BOOL(!TransactionIdIsValid(xmax) || TransactionIdEquals(xmax, claim_xmax));
}

/* The planner's estimate of row_unlocked(): true for every row, as good as. */
Datum
integration_row_unlocked_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);

	if (IsA(rawreq, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) rawreq;

		req->selectivity = 1.0;
		PG_RETURN_POINTER(req);
	}
	PG_RETURN_POINTER(NULL);
}
