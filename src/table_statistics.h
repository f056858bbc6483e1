/*
 * table_statistics.h
 *		Statistics that say a table is nearly empty while it is not (table_statistics.c).
 */
#ifndef INTEGRATION_TABLE_STATISTICS_H
#define INTEGRATION_TABLE_STATISTICS_H

#include "storage/block.h"
#include "utils/relcache.h"

extern bool StatisticsLookStale(Relation rel, BlockNumber nblocks);
extern bool AnalyzeWithoutWaiting(Oid relid);

#endif							/* INTEGRATION_TABLE_STATISTICS_H */
