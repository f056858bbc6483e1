/*
 * table_statistics.c
 *		Statistics that say a table is nearly empty while it is not, noticed by the
 *		worker and corrected the way PostgreSQL corrects statistics: ANALYZE.
 *
 * The planner estimates a table's rows as its pg_class density (reltuples per
 * relpages) times the blocks the table has now.  An ANALYZE that runs while a large
 * transaction is still inserting counts none of its rows, since they are not yet
 * committed, but records the blocks they fill: autovacuum analyzing webhook_events in
 * the middle of a 100,000-event publish left reltuples at 0 over all those pages.
 * Until autovacuum analyzed it again (a minute later), every estimate on the table was
 * "one row", and the worker's probes of an event by its key (tenant_id, id) became
 * scans of webhook_events_created_idx on tenant_id alone, which cost the same as the
 * primary key at one row: each probe then read all of the tenant's events, and the
 * worker delivered at a twentieth of its rate (bench/README.md, "A round at 600 us").
 * Growth does not reveal this state (the table does not grow), and planning again
 * gives the same plans: only statistics taken after the commit do.
 *
 * So the worker checks its tables' statistics with their sizes, and analyzes a table
 * whose statistics count fewer rows than it has pages (no live table of the
 * extension's is that sparse: a row of the widest, webhook_events, keeps its payload
 * in TOAST past about 2 kB).  It does so without waiting for a lock: a table being
 * vacuumed, analyzed or altered is left for the next check.
 *
 * Every kind of work has tables that a large transaction fills: a publish the
 * delivery tables, a bulk call_connector() connector_calls, a batch of received
 * webhooks inbound_events.  Each kind names its own in a list of WatchedTable, which
 * remembers the size at which the worker last analyzed each, and checks them before
 * its cycle, in a transaction of their own (AnalyzeStaleTables()): the cycles of the
 * calls and the handlers run users' code (a connector's SQL adapters, inbound
 * handlers), and an ANALYZE holds its table's SHARE UPDATE EXCLUSIVE lock until its
 * transaction ends, so a DBA's VACUUM or ALTER TABLE, with every statement queued
 * behind it, would otherwise wait for a slow handler.  When that transaction fails,
 * the ANALYZE is rolled back with it, and what it analyzed is forgotten so that it
 * runs again.  The delivery kind, which also plans again as its tables grow, checks
 * one table at a time (AnalyzeIfStale()) from its claim's transaction, which runs no
 * user code.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "table_statistics.h"
#include "worker.h"

/* Smaller tables are read whole by any plan: their statistics do not matter. */
#define STALE_MIN_PAGES 64

/*
 * How often AnalyzeStaleTables() looks at a kind's tables: a look costs two syscache
 * lookups and one smgrnblocks() per table, and statistics gone stale slow the worker
 * down for no longer than this once their table is free to analyze.
 */
#define STATISTICS_CHECK_MS 200

/*
 * Whether rel's statistics describe it as far emptier than its nblocks pages can be:
 * analyzed (reltuples >= 0) with pages, and fewer rows than pages, a density the
 * planner carries over to the table's size now.  The queue is that sparse when it has
 * drained and not been vacuumed yet; it is then analyzed once, which costs little.
 */
static bool
statistics_look_stale(Relation rel, BlockNumber nblocks)
{
	double		reltuples = rel->rd_rel->reltuples;
	double		relpages = rel->rd_rel->relpages;

	if (nblocks < STALE_MIN_PAGES || reltuples < 0 || relpages <= 0)
		return false;
	return reltuples < relpages;
}

/*
 * Analyzes relid, in the caller's transaction, unless another session holds a lock
 * that ANALYZE would wait for (VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, most of
 * ALTER TABLE): then returns false, and the caller tries again later.  The new
 * statistics invalidate the plans that read the table, which the plan cache then
 * makes again.  Must be called while SPI is connected.
 */
static bool
analyze_without_waiting(Oid relid)
{
	char	   *nspname;
	char	   *relname;
	char	   *sql;
	int			rc;

	if (!ConditionalLockRelationOid(relid, ShareUpdateExclusiveLock))
		return false;
	nspname = get_namespace_name(get_rel_namespace(relid));
	relname = get_rel_name(relid);
	if (nspname == NULL || relname == NULL)
	{
		UnlockRelationOid(relid, ShareUpdateExclusiveLock);
		return false;			/* dropped meanwhile */
	}
	sql = psprintf("ANALYZE %s", quote_qualified_identifier(nspname, relname));
	rc = SPI_execute(sql, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "ANALYZE of %s failed: %s", relname, SPI_result_code_string(rc));
	pfree(sql);
	return true;
}

/*
 * Whether a table analyzed at size "analyzed" (InvalidBlockNumber: never) may be
 * analyzed again at size now: once per doubling or halving, so that statistics that
 * still look stale after an ANALYZE (another large insert in progress) are not
 * analyzed again at every check.
 */
static bool
may_analyze_again(BlockNumber analyzed, BlockNumber now)
{
	return analyzed == InvalidBlockNumber || now > 2 * analyzed || now < analyzed / 2;
}

/*
 * Analyzes t, the table relid, if its statistics look stale and it was not analyzed
 * here at about its size (t->analyzed, set when it is), and says so in the server log.
 * Returns the table's size in blocks.  Must be called while SPI is connected.
 */
BlockNumber
AnalyzeIfStale(Oid relid, WatchedTable *t)
{
	Relation	rel;
	BlockNumber now;
	bool		stale;
	float4		reltuples;

	rel = relation_open(relid, AccessShareLock);
	now = RelationGetNumberOfBlocks(rel);
	stale = statistics_look_stale(rel, now);
	reltuples = rel->rd_rel->reltuples;
	relation_close(rel, NoLock);
	if (stale && may_analyze_again(t->analyzed, now) && analyze_without_waiting(relid))
	{
		ereport(LOG,
				(errmsg("%s analyzed table \"%s\": its statistics counted %.0f rows in its %u pages",
						WorkerName(), t->name, reltuples, now),
				 errdetail("Statistics taken while a transaction was still inserting count none of its rows, and plans made on them can read the whole table for each row they look up.")));
		t->analyzed = now;
	}
	return now;
}

/* A kind's tables, for the transaction of AnalyzeStaleTables(). */
typedef struct WatchedTables
{
	WatchedTable *tables;
	int			ntables;
}			WatchedTables;

static void
analyze_stale_step(void *arg)
{
	WatchedTables *w = arg;
	Oid			nsp = get_namespace_oid("integration", true);

	if (!OidIsValid(nsp))
		return;
	for (int i = 0; i < w->ntables; i++)
	{
		Oid			relid = get_relname_relid(w->tables[i].name, nsp);

		if (OidIsValid(relid))
			(void) AnalyzeIfStale(relid, &w->tables[i]);
	}
}

/*
 * Checks a kind's tables (those of schema integration named in tables), at most every
 * STATISTICS_CHECK_MS by *checked_at, and analyzes those whose statistics look stale
 * (AnalyzeIfStale()), in a transaction of its own (see the top); activity names it.
 * Called by a worker outside any transaction.
 */
void
AnalyzeStaleTables(WatchedTable *tables, int ntables, TimestampTz *checked_at,
				   const char *activity)
{
	TimestampTz now = GetCurrentTimestamp();
	WatchedTables w = {tables, ntables};
	int			sqlerrcode;

	if (now < TimestampTzPlusMilliseconds(*checked_at, STATISTICS_CHECK_MS))
		return;
	*checked_at = now;
	if (!WorkerRunTransaction(analyze_stale_step, &w, activity, &sqlerrcode, NULL))
	{
		/*
		 * Its ANALYZE was rolled back with it: the next check may run it
		 * again.
		 */
		for (int i = 0; i < ntables; i++)
			tables[i].analyzed = InvalidBlockNumber;
	}
}
