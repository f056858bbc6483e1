/*
 * sending_counts.c
 *		How many of a tenant's deliveries may be 'sending': counts the delivery worker
 *		keeps in shared memory, so that list_deliveries(status => 'sending') stops once
 *		it has found them all instead of reading every delivery of the tenant.
 *
 * Why.  'sending' and 'delivered' differ only in columns the worker's outcome UPDATE
 * sets, and an index that told them apart would make that UPDATE non-HOT (every
 * outcome writing every index of the table).  Without one, the listing read the
 * tenant's deliveries newest first until it had found "limit" of them: all of them
 * when fewer are in flight, 25 to 28 ms at 200,000 deliveries.  But a delivery is
 * 'sending' only because this database's worker claimed it (a database has one, and
 * it returns a dead one's claims to 'pending' when it starts), so the worker can say
 * how many there are.
 *
 * The counts are an upper bound of what any snapshot that may use them sees:
 *  - a claim is counted before the transaction that makes it commits, so a snapshot
 *    that sees the claim sees it counted; if that transaction rolls back, at once
 *    uncounted;
 *  - a delivery that stops being 'sending' (its outcome written, its claim given back,
 *    or its row found gone) is uncounted only after every snapshot that may still see
 *    it 'sending' has ended: once the oldest xmin of the cluster has reached the next
 *    transaction id as read after the commit that ended it.  Until then the worker
 *    looks again, 10 ms later and then less often (up to 1 s); an old snapshot (a long
 *    REPEATABLE READ transaction, a replication slot's xmin) keeps the counts high,
 *    never low;
 *  - they may be used by a snapshot that sees the worker's first transaction committed
 *    (sending_since), which returned every claim left 'sending' to 'pending'.
 * So a bound is never too small for the snapshot reading it: the listing asks for at
 * most that many rows and stops there, and for none when it is 0.  Where the worker
 * cannot tell it stays high: claims whose outcome could not be written and that a
 * lease reconcile later returns stay counted until the worker restarts.  Tenants share
 * a bucket when their ids hash alike, which only makes a bound larger.
 *
 * Not counted: a delivery set to 'sending' by hand (an UPDATE of the table, not a
 * worker's claim); docs/limitations.md.  integration._claim_due() and _fan_out(), the
 * worker's statements for tests and operators, count their claims and never uncount
 * them.
 */
#include "postgres.h"

#include "access/transam.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sending_counts.h"
#include "shared_state.h"
#include "tenant.h"
#include "worker_slots.h"

#define RELEASE_FIRST_MS 10
#define RELEASE_MAX_MS 1000

/* Deliveries that stopped being 'sending' in a committed transaction. */
typedef struct EndedSending
{
	TransactionId after;		/* uncounted once every xmin has reached it */
	int			bucket;
	int32		n;
}			EndedSending;

/*
 * The worker's side: the store transaction under way (the buckets it touched, its
 * claims and its endings) and the endings waiting for old snapshots to end.
 */
static int32 cycle_claimed[SENDING_COUNT_BUCKETS];
static int32 cycle_ended[SENDING_COUNT_BUCKETS];
static int	cycle_buckets[SENDING_COUNT_BUCKETS];
static int	ncycle_buckets = 0;
static EndedSending * waiting = NULL;
static int	nwaiting = 0;
static int	maxwaiting = 0;
static TimestampTz release_at = 0;
static int	release_ms = RELEASE_FIRST_MS;

static int
bucket_of(const char *tenant_id)
{
	return (int) (hash_bytes((const unsigned char *) tenant_id, (int) strlen(tenant_id)) %
				  SENDING_COUNT_BUCKETS);
}

static void
touch(int b)
{
	if (cycle_claimed[b] == 0 && cycle_ended[b] == 0)
		cycle_buckets[ncycle_buckets++] = b;
}

static void
cycle_reset(void)
{
	for (int i = 0; i < ncycle_buckets; i++)
		cycle_claimed[cycle_buckets[i]] = cycle_ended[cycle_buckets[i]] = 0;
	ncycle_buckets = 0;
}

/* A claim of the store transaction under way: counted now, before it commits. */
void
SendingCountsClaimed(const char *tenant_id)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();
	int			b = bucket_of(tenant_id);

	touch(b);
	cycle_claimed[b]++;
	pg_atomic_fetch_add_u32(&slot->sending[b], 1);
}

/* A claim that the store transaction under way ends: uncounted after it commits. */
void
SendingCountsEnded(const char *tenant_id)
{
	int			b = bucket_of(tenant_id);

	touch(b);
	cycle_ended[b]++;
}

/* The store transaction committed: its endings wait for the snapshots before it. */
void
SendingCountsCommitted(void)
{
	TransactionId after;

	if (ncycle_buckets == 0)
		return;
	after = ReadNextTransactionId();
	for (int i = 0; i < ncycle_buckets; i++)
	{
		int			b = cycle_buckets[i];

		if (cycle_ended[b] == 0)
			continue;
		if (nwaiting == maxwaiting)
		{
			maxwaiting = Max(64, maxwaiting * 2);
			waiting = waiting ? repalloc(waiting, sizeof(EndedSending) * maxwaiting) :
				MemoryContextAlloc(TopMemoryContext, sizeof(EndedSending) * maxwaiting);
		}
		waiting[nwaiting].after = after;
		waiting[nwaiting].bucket = b;
		waiting[nwaiting].n = cycle_ended[b];
		nwaiting++;
	}
	cycle_reset();
	if (nwaiting > 0 && release_at == 0)
	{
		release_ms = RELEASE_FIRST_MS;
		release_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), release_ms);
	}
}

/* The store transaction rolled back: its claims never were, its endings never happened. */
void
SendingCountsRolledBack(void)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();

	for (int i = 0; i < ncycle_buckets; i++)
	{
		int			b = cycle_buckets[i];

		if (cycle_claimed[b] > 0)
			pg_atomic_fetch_sub_u32(&slot->sending[b], (uint32) cycle_claimed[b]);
	}
	cycle_reset();
}

/*
 * The worker's first transaction, xid, committed: no claim of a worker before it is
 * left 'sending' for snapshots that see it.
 */
void
SendingCountsUsableFrom(TransactionId xid)
{
	pg_atomic_write_u32(&WorkerSlotOwn()->sending_since, xid);
}

/* Uncounts the endings that no running snapshot can miss any more. */
void
SendingCountsRelease(TimestampTz now)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();
	TransactionId horizon;
	int			done = 0;

	if (nwaiting == 0 || now < release_at)
		return;
	horizon = GetOldestNonRemovableTransactionId(NULL);
	/* In commit order, so in order of after. */
	while (done < nwaiting && !TransactionIdPrecedes(horizon, waiting[done].after))
	{
		pg_atomic_fetch_sub_u32(&slot->sending[waiting[done].bucket], (uint32) waiting[done].n);
		done++;
	}
	if (done > 0)
		memmove(waiting, waiting + done, sizeof(EndedSending) * (nwaiting - done));
	nwaiting -= done;
	if (nwaiting == 0)
		release_at = 0;
	else
	{
		release_ms = done > 0 ? RELEASE_FIRST_MS : Min(release_ms * 2, RELEASE_MAX_MS);
		release_at = TimestampTzPlusMilliseconds(now, release_ms);
	}
}

/* When SendingCountsRelease() wants to look again; 0: nothing waits. */
TimestampTz
SendingCountsNextRelease(void)
{
	return release_at;
}

/* n claims of tenant_id made by this session: counted in the database's worker, if any. */
void
SendingCountsClaimedElsewhere(const char *tenant_id, int n)
{
	int			b = bucket_of(tenant_id);

	if (integration_shared == NULL || n <= 0)
		return;
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (slot->in_use && slot->dboid == MyDatabaseId && slot->role == WORKER_ROLE_DELIVERY)
			pg_atomic_fetch_add_u32(&slot->sending[b], (uint32) n);
	}
	LWLockRelease(integration_shared->slots_lock);
}

PG_FUNCTION_INFO_V1(integration_sending_bound);

/*
 * integration._sending_bound(): at most how many of the current tenant's deliveries
 * the active snapshot sees 'sending'; NULL when the database's worker cannot tell (no
 * worker, or its first transaction not visible to this snapshot).
 */
Datum
integration_sending_bound(PG_FUNCTION_ARGS)
{
	const char *tenant_id = RequireTenant();
	int			b = bucket_of(tenant_id);
	Snapshot	snapshot;
	int32		bound = -1;

	if (integration_shared == NULL || !ActiveSnapshotSet())
		PG_RETURN_NULL();
	snapshot = GetActiveSnapshot();
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];
		TransactionId since;

		if (!slot->in_use || slot->dboid != MyDatabaseId || slot->role != WORKER_ROLE_DELIVERY)
			continue;
		since = pg_atomic_read_u32(&slot->sending_since);
		if (TransactionIdIsNormal(since) && !XidInMVCCSnapshot(since, snapshot))
			bound = (int32) pg_atomic_read_u32(&slot->sending[b]);
	}
	LWLockRelease(integration_shared->slots_lock);
	if (bound < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(bound);
}
