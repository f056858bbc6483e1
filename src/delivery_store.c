/*
 * delivery_store.c
 *		The worker's store transactions and the plans of their statements.
 *
 * The worker's SQL runs in short transactions of its own (StoreBegin() /
 * StoreCommit()), each a few set-based statements over a batch: the fan-out of events
 * into deliveries (delivery_fan_out.c), the claims of due ones (delivery_claim.c), the
 * outcomes written back (delivery_outcome.c), all with the endpoint settings of one
 * reader (endpoint_settings.c).  No transaction is open while HTTP is in flight.
 *
 * Their statements keep generic plans (spi_plan.c).  This file owns when those are
 * made again: each module names the tables its plans' shapes depend on
 * (StorePlanSlot), and the plans that read a table are dropped when it has doubled;
 * the worker's tables with statistics gone stale are analyzed (table_statistics.c).
 *
 * Rows are found again by ctid (stable while locked or claimed), which keeps every
 * statement an index or TID lookup however large the tables grow.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "delivery_claim.h"
#include "delivery_fan_out.h"
#include "delivery_outcome.h"
#include "delivery_store.h"
#include "endpoint_disable.h"
#include "endpoint_settings.h"
#include "integration.h"
#include "spi_plan.h"
#include "table_statistics.h"
#include "worker.h"
#include "worker_slots.h"

/*
 * How often StoreReplanIfStale() looks at the tables' sizes, except while one grows
 * from a small size (REPLAN_YOUNG_BLOCKS), when it looks before every store
 * transaction.
 */
#define REPLAN_CHECK_MS 200
#define REPLAN_YOUNG_BLOCKS 1024

/* The running store transaction: what it is for, and when it and its commit began. */
static const char *store_activity = NULL;
static TimestampTz store_began = 0;

/*
 * The transaction bracket of worker_spi.c, in its order.  Its commit shows in
 * worker_status() as the state committing (the WAL flush waits for the disk), and a
 * transaction that takes integration.log_min_duration or longer is logged with its
 * time in statements and in the commit: a worker that stops sending for a while says
 * where it was.
 */
void
StoreBegin(const char *activity)
{
	store_activity = activity;
	store_began = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
StoreCommit(void)
{
	TimestampTz committing = GetCurrentTimestamp();
	TimestampTz done;

	WorkerSlotSetActivity(WORKER_COMMITTING);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	done = GetCurrentTimestamp();
	if (integration_log_min_duration_ms >= 0 &&
		TimestampDifferenceExceeds(store_began, done, integration_log_min_duration_ms))
		ereport(LOG,
				(errmsg("%s: %s took %ld ms: %ld ms in statements, %ld ms committing",
						WorkerName(), store_activity,
						(long) TimestampDifferenceMilliseconds(store_began, done),
						(long) TimestampDifferenceMilliseconds(store_began, committing),
						(long) TimestampDifferenceMilliseconds(committing, done))));
}

/*
 * The running store transaction writes nothing whose loss in a crash matters: its
 * commit does not wait for the WAL flush (synchronous_commit = off for this
 * transaction alone, as a function's SET clause would).  Its WAL reaches the disk with
 * the next commit that waits, or the WAL writer's next round.
 */
void
StoreCommitWithoutFlush(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Whether the extension this worker started with is still installed.  A DROP and
 * CREATE EXTENSION in one transaction leaves an extension of the same name whose
 * tables reuse the old ids and ctids: results of requests sent from the old tables
 * must never be written into the new ones.  So after the first call, which looks the
 * extension up, this compares the deliveries table with the one seen then: two
 * syscache lookups, cheap enough for every store transaction.
 */
bool
StoreExtensionPresent(void)
{
	static Oid	started_with = InvalidOid;
	Oid			nsp;
	Oid			deliveries;

	/*
	 * The weakest lock that a DROP conflicts with, taken first: a DROP that
	 * has not committed yet waits for this transaction, and one that has is
	 * seen below.
	 */
	if (OidIsValid(started_with))
		LockRelationOid(started_with, AccessShareLock);
	nsp = get_namespace_oid("integration", true);
	deliveries = OidIsValid(nsp) ? get_relname_relid("deliveries", nsp) : InvalidOid;
	if (!OidIsValid(started_with))
	{
		if (!OidIsValid(get_extension_oid("integration", true)))
			return false;
		started_with = deliveries;
	}
	return OidIsValid(deliveries) && deliveries == started_with;
}

/*
 * The tables whose size decides the worker's generic plans (the modules' StorePlanSlot
 * lists say which plans read which; statements planned at every execution read none),
 * and each table's size in blocks when those plans were last dropped
 * (InvalidBlockNumber: not known); each also has its statistics checked
 * (table_statistics.c).
 */
typedef struct PlannedTable
{
	WatchedTable table;			/* its name, and its size when last analyzed */
	int			bit;			/* STORE_DELIVERIES etc. */
	BlockNumber blocks;			/* its size when its plans were made */
	BlockNumber looked;			/* its size at the last look */
	TimestampTz changed_at;		/* the look that found it changed */
	bool		young;			/* small, and changed lately */
} PlannedTable;

static PlannedTable planned_tables[] = {
	{{"deliveries", InvalidBlockNumber}, STORE_DELIVERIES, InvalidBlockNumber},
	{{"webhook_event_queue", InvalidBlockNumber}, STORE_EVENT_QUEUE, InvalidBlockNumber},
	{{"webhook_events", InvalidBlockNumber}, STORE_EVENTS, InvalidBlockNumber},
	{{"webhook_endpoints", InvalidBlockNumber}, STORE_ENDPOINTS, InvalidBlockNumber},
};

/*
 * Drops the plans of every module of the store that read a table in tables (a set of
 * STORE_* bits; STORE_ALL_TABLES: all of them); they are made again on their next use.
 */
static void
forget_plans(int tables)
{
	FanOutForgetPlans(tables);
	ClaimForgetPlans(tables);
	OutcomeForgetPlans(tables);
	EndpointSettingsForgetPlans(tables);
}

/* Drops those of slots (n of them) that read a table in tables. */
void
StoreForgetPlansOf(const StorePlanSlot *slots, int n, int tables)
{
	for (int i = 0; i < n; i++)
		if (tables == STORE_ALL_TABLES || (slots[i].reads & tables) != 0)
			ForgetPlans(&slots[i].plan, 1);
}

/*
 * After DROP/CREATE EXTENSION the saved plans point at dropped relations; after a
 * failed transaction its ANALYZEs were rolled back.
 */
void
StoreForgetPlans(void)
{
	for (int i = 0; i < lengthof(planned_tables); i++)
	{
		planned_tables[i].blocks = InvalidBlockNumber;
		planned_tables[i].looked = 0;
		planned_tables[i].young = false;
		planned_tables[i].table.analyzed = InvalidBlockNumber;
	}
	forget_plans(STORE_ALL_TABLES);
	/* And what the worker knows of endpoint failures: read again when needed. */
	EndpointFailuresForget();
}

/*
 * Drops the saved plans that read a table once it has more than doubled since they
 * were made, so that each is planned again for the size the table has now; and
 * analyzes a table whose statistics count fewer rows than it has pages
 * (table_statistics.c), which no amount of planning again corrects.
 *
 * The worker's statements keep generic plans (spi_plan.c), and PostgreSQL's plan cache
 * re-plans them when ANALYZE changes the tables' statistics.  Between two ANALYZEs a
 * plan made while a table was empty stays: made after VACUUM emptied the queue, the
 * fan-out's "ORDER BY event_id LIMIT n" became a sequential scan and a sort, and every
 * batch then read the whole of a 100,000-event backlog.  The planner estimates a
 * table's rows from its current number of blocks, so a plan made again now is the
 * right one; this asks for that, instead of switching plan types off for the session.
 * Cost: one smgrnblocks() per table and look, and a new plan of the statements that
 * read a table each time it doubles.
 *
 * It looks every REPLAN_CHECK_MS, and before every store transaction while a table
 * under REPLAN_YOUNG_BLOCKS is changing: a small table doubles within a few batches.
 * The outcome statement planned on a just-created or just-truncated deliveries table
 * joins each batch to a sequential scan of it.  Looked at every 200 ms only,
 * deliveries grew to about 3,600 rows (130 to 150 pages) before that plan was made
 * again, and every batch until then read the whole table: the first third of a
 * 10,000-delivery round after bench/run's TRUNCATE, which cost the outcome statement
 * 10.1 us per delivery against 5.7 us (bench/profile; bench/README.md).  Planned again
 * at about 10 and 30 pages, it reads the batch's rows by ctid from there on.
 */
void
StoreReplanIfStale(void)
{
	static TimestampTz checked_at = 0;
	TimestampTz now_ts = GetCurrentTransactionStartTimestamp();
	bool		young = false;
	Oid			nsp;
	int			doubled = 0;

	for (int i = 0; i < lengthof(planned_tables); i++)
		young = young || planned_tables[i].young;
	/* A large table doubles in no less than that while the worker writes it. */
	if (!young && now_ts < TimestampTzPlusMilliseconds(checked_at, REPLAN_CHECK_MS))
		return;
	checked_at = now_ts;
	nsp = get_namespace_oid("integration", true);
	if (!OidIsValid(nsp))
		return;
	for (int i = 0; i < lengthof(planned_tables); i++)
	{
		PlannedTable *t = &planned_tables[i];
		Oid			relid = get_relname_relid(t->table.name, nsp);
		BlockNumber now;

		if (!OidIsValid(relid))
			return;
		now = AnalyzeIfStale(relid, &t->table);

		/*
		 * Shrunk counts: a truncated table grows again from nothing.  It
		 * grows in steps (a fan-out batch, then cycles that only record
		 * outcomes), so it stays young while it changed in the last
		 * REPLAN_CHECK_MS.
		 */
		if (now != t->looked)
			t->changed_at = now_ts;
		t->looked = now;
		t->young = now < REPLAN_YOUNG_BLOCKS &&
			now_ts < TimestampTzPlusMilliseconds(t->changed_at, REPLAN_CHECK_MS);

		/*
		 * After a TRUNCATE the plan cache plans again for the small table by
		 * itself; growth counts from there (PlanOutgrown()).
		 */
		if (PlanOutgrown(&t->blocks, now))
		{
			doubled |= t->bit;
			t->blocks = now;
		}
	}
	if (doubled != 0)
		forget_plans(doubled);
}

/*
 * When a lease taken now runs out.  now() in SQL is the transaction's start, so the
 * expiry is computed once here and passed in, rather than per row.
 */
TimestampTz
StoreLeaseExpiry(int lease_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTransactionStartTimestamp(), lease_ms);
}


/* A hash table for one batch, in the current (SPI) memory context. */
HTAB *
StoreBatchHash(const char *name, long nelem, Size keysize, Size entrysize,
			   HashValueFunc hash, HashCompareFunc match)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hash = hash;
	ctl.match = match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}
