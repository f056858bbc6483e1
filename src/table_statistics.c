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
 */
#include "postgres.h"

#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "table_statistics.h"

/* Smaller tables are read whole by any plan: their statistics do not matter. */
#define STALE_MIN_PAGES 64

/*
 * Whether rel's statistics describe it as far emptier than its nblocks pages can be:
 * analyzed (reltuples >= 0) with pages, and fewer rows than pages, a density the
 * planner carries over to the table's size now.  The queue is that sparse when it has
 * drained and not been vacuumed yet; it is then analyzed once, which costs little.
 */
bool
StatisticsLookStale(Relation rel, BlockNumber nblocks)
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
bool
AnalyzeWithoutWaiting(Oid relid)
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
