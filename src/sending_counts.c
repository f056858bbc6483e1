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
 * when fewer are in flight, 25 to 28 ms at 200,000 deliveries.  But a delivery becomes
 * 'sending' by a claim of this database's worker (a database has one, and it returns a
 * dead one's claims to 'pending' when it starts) or by an INSERT, and both can be
 * counted as they happen.
 *
 * The counts are an upper bound of what any snapshot that may use them sees:
 *  - a delivery is counted before the transaction that makes it 'sending' commits, so
 *    a snapshot that sees it 'sending' sees it counted; if that transaction (or the
 *    subtransaction that counted it) rolls back, at once uncounted.  Every row
 *    inserted 'sending' is counted by a statement trigger on deliveries (the worker's
 *    fan-out, integration._fan_out(), a hand-written INSERT or COPY alike), and each
 *    claim of a pending delivery (an UPDATE) by the worker, or by _claim_due();
 *  - a delivery that stops being 'sending' (its outcome written, its claim given back,
 *    or its row found gone) is uncounted only after every snapshot that may still see
 *    it 'sending' has ended: once the oldest xmin of the cluster has reached the next
 *    transaction id as read after the commit that ended it.  Until then the worker
 *    looks again, 10 ms later and then less often (up to 1 s); an old snapshot (a long
 *    REPEATABLE READ transaction, a replication slot's xmin, though not a logical
 *    slot's catalog_xmin) keeps the counts high, never low;
 *  - they may be used by a snapshot that sees the worker's first transaction committed
 *    (sending_since), which returned every claim left 'sending' to 'pending'.  That
 *    holds only if no transaction that made rows 'sending' before the worker took its
 *    slot (counted by the worker before, or by none) commits after the first
 *    transaction: such rows are counted by nobody and were not returned.  So the first
 *    transaction notes who is writing deliveries (their locks) once the slot is taken;
 *    if anyone is, the counts wait until all of them have ended, and then one
 *    transaction counts every row 'sending' as well (SendingCountsAdopt()), and
 *    becomes sending_since.  Those counts are never taken back: high, never low.
 * So a bound is never too small for the snapshot reading it: the listing asks for at
 * most that many rows and stops there, and for none when it is 0.  Where the worker
 * cannot tell it stays high: claims whose outcome could not be written and that a
 * lease reconcile later returns stay counted until the worker restarts.  Tenants share
 * a bucket when their ids hash alike: while two have rows counted in one, neither gets
 * a bound (tenant_key()), so that no tenant reads another's count.
 *
 * Not counted: a delivery set to 'sending' by a hand-written UPDATE (docs/limitations.md):
 * a trigger on every UPDATE would cost the worker's outcome UPDATE, its hottest
 * statement, about 3% (see deliveries_keys_fixed).  Claims of integration._claim_due()
 * and rows inserted 'sending' by anyone but the worker are counted and never uncounted.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sending_counts.h"
#include "shared_state.h"
#include "spi_plan.h"
#include "tenant.h"
#include "worker_slots.h"

#define RELEASE_FIRST_MS 10
#define RELEASE_MAX_MS 1000
#define WRITERS_CHECK_MS 100
#define WAITING_FOLD_AT 16384	/* 256 kB of endings waiting */
#define SINCE_CHECK_MS 60000
#define SINCE_MAX_AGE (1 << 30)

/* Deliveries that stopped being 'sending' in a committed transaction. */
typedef struct EndedSending
{
	TransactionId after;		/* uncounted once every xmin has reached it */
	int			bucket;
	int32		n;
} EndedSending;

/*
 * Counts this backend added in its transaction, to take back if it rolls back: the
 * worker's slot they went to (the slot's pid tells whether that worker still runs).
 */
typedef struct CountedSending
{
	IntegrationWorkerSlot *slot;
	pid_t		pid;
	TimestampTz started_at;
	int			bucket;
	int32		n;
	SubTransactionId subxid;
} CountedSending;

static CountedSending *counted = NULL;
static int	ncounted = 0;
static int	maxcounted = 0;
static bool callbacks_registered = false;

/*
 * The worker's side: the store transaction under way (the buckets whose endings it
 * wrote, and how many) and the endings waiting for old snapshots to end.
 */
static int32 cycle_ended[SENDING_COUNT_BUCKETS];
static int	cycle_buckets[SENDING_COUNT_BUCKETS];
static int	ncycle_buckets = 0;
static EndedSending *waiting = NULL;
static int	nwaiting = 0;
static int	maxwaiting = 0;
static TimestampTz release_at = 0;
static TimestampTz since_checked_at = 0;
static TransactionId last_committed = InvalidTransactionId; /* since sending_since */
static int	release_ms = RELEASE_FIRST_MS;

/*
 * The transactions that held deliveries locked for writing when the worker started,
 * not known to have ended; writers_check_at: when to look again (0: none).
 */
static VirtualTransactionId *writers = NULL;
static int	nwriters = 0;
static TimestampTz writers_check_at = 0;

/*
 * Where a tenant is counted: its bucket, and the tag that tells it from the other
 * tenants of that bucket.  A bucket counts for one tenant at a time: a second tenant's
 * count makes it TAG_SHARED until it is back at 0, and a shared bucket gives no bound
 * (the listing reads the deliveries), so that one tenant never reads the number of
 * another's deliveries in flight.
 */
#define TAG_NONE 0
#define TAG_SHARED PG_UINT32_MAX

typedef struct TenantKey
{
	int			bucket;
	uint32		tag;
} TenantKey;

static int
tenant_bucket(const char *tenant_id)
{
	return (int) (hash_bytes((const unsigned char *) tenant_id, (int) strlen(tenant_id)) %
				  SENDING_COUNT_BUCKETS);
}

static TenantKey
tenant_key(const char *tenant_id)
{
	TenantKey	k;

	k.bucket = tenant_bucket(tenant_id);
	k.tag = (uint32) hash_bytes_extended((const unsigned char *) tenant_id, (int) strlen(tenant_id),
										 0x73656e64);
	if (k.tag == TAG_NONE || k.tag == TAG_SHARED)
		k.tag = 1;
	return k;
}

static inline uint64
bucket_word(uint32 tag, uint32 n)
{
	return ((uint64) tag << 32) | n;
}

/* Adds n for tag (TAG_SHARED: several tenants) to bucket b of slot. */
static void
bucket_add(IntegrationWorkerSlot *slot, int b, uint32 tag, uint32 n)
{
	pg_atomic_uint64 *w = &slot->sending[b];
	uint64		old = pg_atomic_read_u64(w);

	for (;;)
	{
		uint32		count = (uint32) old;
		uint32		owner = (uint32) (old >> 32);

		if (count == 0)
			owner = tag;
		else if (owner != tag)
			owner = TAG_SHARED;
		if (pg_atomic_compare_exchange_u64(w, &old, bucket_word(owner, count + n)))
			return;
	}
}

/* Takes n off bucket b of slot; at 0 the bucket belongs to no tenant. */
static void
bucket_sub(IntegrationWorkerSlot *slot, int b, uint32 n)
{
	pg_atomic_uint64 *w = &slot->sending[b];
	uint64		old = pg_atomic_read_u64(w);

	for (;;)
	{
		uint32		count = (uint32) old - n;

		if (pg_atomic_compare_exchange_u64(w, &old,
										   bucket_word(count == 0 ? TAG_NONE : (uint32) (old >> 32), count)))
			return;
	}
}

/* Takes back the counts this backend added since subtransaction subxid began. */
static void
uncount(SubTransactionId subxid)
{
	int			kept = 0;

	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	for (int i = 0; i < ncounted; i++)
	{
		CountedSending *c = &counted[i];

		if (subxid != InvalidSubTransactionId && c->subxid < subxid)
		{
			counted[kept++] = *c;
			continue;
		}

		/*
		 * A worker started since has counts of its own, which hold none of
		 * these.
		 */
		if (c->slot->in_use && c->slot->pid == c->pid && c->slot->started_at == c->started_at)
			bucket_sub(c->slot, c->bucket, (uint32) c->n);
	}
	LWLockRelease(integration_shared->slots_lock);
	ncounted = kept;
}

static void
sending_xact_callback(XactEvent event, void *arg)
{
	if (ncounted == 0)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		uncount(InvalidSubTransactionId);
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
			 event == XACT_EVENT_PREPARE)
		ncounted = 0;
}

static void
sending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		uncount(mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < ncounted; i++)
			if (counted[i].subxid == mySubid)
				counted[i].subxid = parentSubid;
	}
}

/*
 * Adds n for the tenant of key to the delivery worker's slot, until the end of the
 * transaction: taken back if it rolls back.  The caller holds slots_lock or is the
 * slot's worker.
 */
static void
count(IntegrationWorkerSlot *slot, TenantKey key, int n)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(sending_xact_callback, NULL);
		RegisterSubXactCallback(sending_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (ncounted == maxcounted)
	{
		maxcounted = Max(16, maxcounted * 2);
		counted = counted ? repalloc(counted, sizeof(CountedSending) * maxcounted) :
			MemoryContextAlloc(TopMemoryContext, sizeof(CountedSending) * maxcounted);
	}
	counted[ncounted].slot = slot;
	counted[ncounted].pid = slot->pid;
	counted[ncounted].started_at = slot->started_at;
	counted[ncounted].bucket = key.bucket;
	counted[ncounted].n = n;
	counted[ncounted].subxid = GetCurrentSubTransactionId();
	ncounted++;
	bucket_add(slot, key.bucket, key.tag, (uint32) n);
}

/* The running delivery worker's slot of this database; the caller holds slots_lock. */
static IntegrationWorkerSlot *
database_worker(void)
{
	return WorkerSlotOf(MyDatabaseId, WORKER_ROLE_DELIVERY);
}

/*
 * A pending delivery the worker's transaction under way claims (an UPDATE): counted
 * now, before it commits.  Rows the fan-out inserts 'sending' are counted by the
 * trigger (integration_count_inserted_sending()).
 */
void
SendingCountsClaimed(const char *tenant_id)
{
	count(WorkerSlotOwn(), tenant_key(tenant_id), 1);
}

/* A claim that the store transaction under way ends: uncounted after it commits. */
void
SendingCountsEnded(const char *tenant_id)
{
	int			b = tenant_bucket(tenant_id);

	if (cycle_ended[b] == 0)
		cycle_buckets[ncycle_buckets++] = b;
	cycle_ended[b]++;
}

static void
cycle_reset(void)
{
	for (int i = 0; i < ncycle_buckets; i++)
		cycle_ended[cycle_buckets[i]] = 0;
	ncycle_buckets = 0;
}

/*
 * Folds the endings waiting into one per bucket, all released with the newest of them:
 * later, never earlier.  While an old snapshot holds the horizon back (a transaction
 * open for hours, a physical slot whose standby is gone) every commit adds endings,
 * which must not pile up without end.
 */
static void
fold_waiting(void)
{
	TransactionId newest = waiting[nwaiting - 1].after;
	int32	   *sums = palloc0(sizeof(int32) * SENDING_COUNT_BUCKETS);
	int			n = 0;

	for (int i = 0; i < nwaiting; i++)
		sums[waiting[i].bucket] += waiting[i].n;
	for (int b = 0; b < SENDING_COUNT_BUCKETS; b++)
	{
		if (sums[b] == 0)
			continue;
		waiting[n].after = newest;
		waiting[n].bucket = b;
		waiting[n].n = sums[b];
		n++;
	}
	nwaiting = n;
	pfree(sums);
}

/* The store transaction committed: its endings wait for the snapshots before it. */
void
SendingCountsCommitted(TransactionId xid)
{
	TransactionId after;

	if (TransactionIdIsNormal(xid))
		last_committed = xid;

	if (ncycle_buckets == 0)
		return;
	after = ReadNextTransactionId();
	if (nwaiting >= WAITING_FOLD_AT)
		fold_waiting();
	for (int i = 0; i < ncycle_buckets; i++)
	{
		int			b = cycle_buckets[i];

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

/*
 * The store transaction rolled back: its endings never happened (its claims were
 * taken back with it).
 */
void
SendingCountsRolledBack(void)
{
	cycle_reset();
}

/*
 * In the worker's first transaction, its slot taken, before it returns the claims left
 * 'sending': the transactions writing deliveries now (holding a lock that a SHARE lock
 * waits for).  One of them may have made rows 'sending' before the slot was taken, and
 * commit after this transaction; any that comes later counts in this worker's slot.
 */
void
SendingCountsStartup(void)
{
	Oid			nsp = get_namespace_oid("integration", false);
	Oid			deliveries = get_relname_relid("deliveries", nsp);
	LOCKTAG		tag;
	VirtualTransactionId *vxids;
	int			n;

	if (!OidIsValid(deliveries))
		elog(ERROR, "integration.deliveries not found");
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, deliveries);
	vxids = GetLockConflicts(&tag, ShareLock, &n);
	if (writers)
		pfree(writers);
	writers = MemoryContextAlloc(TopMemoryContext, sizeof(VirtualTransactionId) * Max(n, 1));
	memcpy(writers, vxids, sizeof(VirtualTransactionId) * n);
	nwriters = n;
	writers_check_at = 0;
}

/*
 * Whether a transaction that SendingCountsStartup() found writing may still run; looked
 * at every WRITERS_CHECK_MS, never waiting.
 */
bool
SendingCountsWritersOpen(TimestampTz now)
{
	if (nwriters == 0)
		return false;
	if (now < writers_check_at)
		return true;
	while (nwriters > 0 && VirtualXactLock(writers[nwriters - 1], false))
		nwriters--;
	writers_check_at = nwriters > 0 ? TimestampTzPlusMilliseconds(now, WRITERS_CHECK_MS) : 0;
	return nwriters > 0;
}

/*
 * In a transaction that began after every writer SendingCountsStartup() found had
 * ended: counts every delivery 'sending' now, the ones those made included, never to be
 * uncounted (the worker's own claims are counted twice: high, never low).  One read of
 * the whole table, once, and only when someone was writing as the worker started.
 */
void
SendingCountsAdopt(void)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();
	int			rc;

	rc = SPI_execute("SELECT tenant_id, pg_catalog.count(*)::integer FROM integration.deliveries"
					 " WHERE status = 'sending' GROUP BY tenant_id", false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "counting sending deliveries failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *tenant_id = ResultText(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, NULL);
		int32		n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													2, &isnull));

		count(slot, tenant_key(tenant_id), n);
	}
}

/*
 * The worker's first transaction, or the one that adopted the rows of the writers it
 * waited for, xid, committed: no row is left 'sending' uncounted for snapshots that see
 * it.
 */
void
SendingCountsUsableFrom(TransactionId xid)
{
	Assert(nwriters == 0);
	pg_atomic_write_u32(&WorkerSlotOwn()->sending_since, xid);
	since_checked_at = 0;
	last_committed = InvalidTransactionId;
}

/*
 * Keeps sending_since within reach of the snapshots' xid arithmetic, which is modulo
 * 2^32: past 2^31 transactions a committed xid reads as one in the future, and the
 * counts would go unused until the worker restarted (about 2.5 days at 10,000
 * transactions a second).  So once it is 2^30 transactions old it is replaced by a
 * later one that every snapshot seeing it finished also sees the first transaction
 * committed: this worker's last committed store transaction (after the first one), or
 * else the next xid as read now (a snapshot that sees that one finished was taken
 * after this read; until whoever gets it ends, the counts go unused).  Looked at once
 * a minute.
 */
void
SendingCountsKeepSince(TimestampTz now)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();
	TransactionId since = pg_atomic_read_u32(&slot->sending_since);
	TransactionId next;

	if (!TransactionIdIsNormal(since) || now < since_checked_at)
		return;
	since_checked_at = TimestampTzPlusMilliseconds(now, SINCE_CHECK_MS);
	next = ReadNextTransactionId();
	/* Unsigned: sending_since is always in the past, however long ago. */
	if ((uint32) (next - since) <= SINCE_MAX_AGE)
		return;
	if (TransactionIdIsNormal(last_committed) && (uint32) (next - last_committed) <= SINCE_MAX_AGE / 2)
		pg_atomic_write_u32(&slot->sending_since, last_committed);
	else
		pg_atomic_write_u32(&slot->sending_since, next);
}

/* Uncounts the endings that no running snapshot can miss any more. */
void
SendingCountsRelease(TimestampTz now)
{
	IntegrationWorkerSlot *slot = WorkerSlotOwn();
	TransactionId horizon;
	TransactionId catalog_xmin;
	int			done = 0;

	if (nwaiting == 0 || now < release_at)
		return;

	/*
	 * The oldest xid or xmin of every backend of every database, and the xmin
	 * of replication slots, which a snapshot exported while a slot was made
	 * or a standby's feedback may stand for.  Without the catalog_xmin of
	 * logical slots (GetOldestNonRemovableTransactionId(NULL) has it): it
	 * guards catalog rows for decoding, never a snapshot that reads
	 * deliveries, and a slot that nobody reads keeps it for good.
	 */
	GetReplicationHorizons(&horizon, &catalog_xmin);
	/* In commit order, so in order of after. */
	while (done < nwaiting && !TransactionIdPrecedes(horizon, waiting[done].after))
	{
		bucket_sub(slot, waiting[done].bucket, (uint32) waiting[done].n);
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

/*
 * When SendingCountsRelease() or SendingCountsWritersOpen() wants to look again; 0:
 * nothing waits.
 */
TimestampTz
SendingCountsNextRelease(void)
{
	if (writers_check_at != 0 && (release_at == 0 || writers_check_at < release_at))
		return writers_check_at;
	return release_at;
}

/*
 * n pending deliveries of tenant_id claimed by this session (integration._claim_due()):
 * counted in the database's worker, if one runs.
 */
void
SendingCountsClaimedElsewhere(const char *tenant_id, int n)
{
	IntegrationWorkerSlot *slot;

	if (integration_shared == NULL || n <= 0)
		return;
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	slot = database_worker();
	if (slot)
		count(slot, tenant_key(tenant_id), n);
	LWLockRelease(integration_shared->slots_lock);
}

PG_FUNCTION_INFO_V1(integration_count_inserted_sending);

/*
 * AFTER INSERT ... FOR EACH STATEMENT on deliveries (transition table "added"): the
 * rows inserted 'sending' are counted in the database's delivery worker, if one runs,
 * by bucket of tenants, before the transaction commits.  Read from the transition
 * table in C: for the fan-out's batches this costs a pass over rows the reference
 * check reads anyway.
 */
Datum
integration_count_inserted_sending(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Tuplestorestate *added;
	TupleDesc	desc;
	TupleTableSlot *row;
	IntegrationWorkerSlot *slot;
	int			tenant_att;
	int			status_att;
	int			readptr;
	char	   *run_tenant = NULL;
	TenantKey	run_key = {0, TAG_NONE};
	int32	   *sums;
	uint32	   *tags;
	int		   *touched;
	int			ntouched = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("count_inserted_sending() must be an AFTER INSERT statement trigger with a transition table")));
	if (integration_shared == NULL)
		return PointerGetDatum(NULL);
	desc = RelationGetDescr(trigdata->tg_relation);
	tenant_att = SPI_fnumber(desc, "tenant_id");
	status_att = SPI_fnumber(desc, "status");
	if (tenant_att <= 0 || status_att <= 0)
		elog(ERROR, "count_inserted_sending() needs columns tenant_id and status");

	/* Without a worker, nothing to count in: no pass over the rows. */
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	slot = database_worker();
	LWLockRelease(integration_shared->slots_lock);
	if (slot == NULL)
		return PointerGetDatum(NULL);

	/*
	 * The rows are read without slots_lock: an LWLock holds off interrupts
	 * and every worker's start and exit, and a COPY's rows may be millions,
	 * spilled to disk.  A worker that starts meanwhile waits for this
	 * transaction, which holds deliveries locked, before it trusts its counts
	 * (SendingCountsStartup()).
	 */
	added = trigdata->tg_newtable;
	row = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	sums = palloc0(sizeof(int32) * SENDING_COUNT_BUCKETS);
	tags = palloc(sizeof(uint32) * SENDING_COUNT_BUCKETS);
	touched = palloc(sizeof(int) * SENDING_COUNT_BUCKETS);

	/*
	 * A read pointer of its own: the other triggers' scans of "added" keep
	 * theirs.  Rewindable, as a scan of a transition table in a query asks
	 * (nodeNamedtuplestorescan.c): tuplestore_rescan() asserts it, and the
	 * store has the flag already, so asking costs nothing.
	 */
	readptr = tuplestore_alloc_read_pointer(added, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(added, readptr);
	tuplestore_rescan(added);
	/* A statement's rows come in runs of one tenant: one hash per run. */
	while (tuplestore_gettupleslot(added, true, false, row))
	{
		bool		isnull;
		Datum		status = slot_getattr(row, status_att, &isnull);
		text	   *t;
		char	   *tenant_id;

		if (isnull)
			continue;
		t = DatumGetTextPP(status);
		if (VARSIZE_ANY_EXHDR(t) != 7 || memcmp(VARDATA_ANY(t), "sending", 7) != 0)
			continue;
		tenant_id = TextDatumGetCString(slot_getattr(row, tenant_att, &isnull));
		if (run_tenant == NULL || strcmp(tenant_id, run_tenant) != 0)
		{
			run_tenant = tenant_id;
			run_key = tenant_key(tenant_id);
		}
		if (sums[run_key.bucket]++ == 0)
		{
			touched[ntouched++] = run_key.bucket;
			tags[run_key.bucket] = run_key.tag;
		}
		else if (tags[run_key.bucket] != run_key.tag)
			tags[run_key.bucket] = TAG_SHARED;
	}
	tuplestore_select_read_pointer(added, 0);
	ExecDropSingleTupleTableSlot(row);

	/* One count per bucket, in the worker running now. */
	if (ntouched > 0)
	{
		LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
		slot = database_worker();
		if (slot != NULL)
			for (int i = 0; i < ntouched; i++)
			{
				TenantKey	key = {touched[i], tags[touched[i]]};

				count(slot, key, sums[touched[i]]);
			}
		LWLockRelease(integration_shared->slots_lock);
	}
	pfree(sums);
	pfree(tags);
	pfree(touched);
	return PointerGetDatum(NULL);
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
	TenantKey	key = tenant_key(RequireTenant());
	Snapshot	snapshot;
	IntegrationWorkerSlot *slot;
	TransactionId since;
	int64		bound = -1;

	if (integration_shared == NULL || !ActiveSnapshotSet())
		PG_RETURN_NULL();
	snapshot = GetActiveSnapshot();
	LWLockAcquire(integration_shared->slots_lock, LW_SHARED);
	slot = database_worker();
	since = slot ? pg_atomic_read_u32(&slot->sending_since) : InvalidTransactionId;
	if (TransactionIdIsNormal(since) && !XidInMVCCSnapshot(since, snapshot))
	{
		uint64		w = pg_atomic_read_u64(&slot->sending[key.bucket]);
		uint32		count = (uint32) w;

		/* Another tenant's count, or several tenants': none to give. */
		if (count == 0)
			bound = 0;
		else if ((uint32) (w >> 32) == key.tag && count <= PG_INT32_MAX)
			bound = count;
	}
	LWLockRelease(integration_shared->slots_lock);
	if (bound < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32((int32) bound);
}
