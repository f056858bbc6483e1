/*
 * table_statistics.h
 *		Statistics that say a table is nearly empty while it is not (table_statistics.c).
 */
#ifndef INTEGRATION_TABLE_STATISTICS_H
#define INTEGRATION_TABLE_STATISTICS_H

#include "datatype/timestamp.h"
#include "storage/block.h"

/* A table of schema integration whose statistics a kind of work checks. */
typedef struct WatchedTable
{
	const char *name;
	BlockNumber analyzed;		/* its size when the worker last analyzed it;
								 * InvalidBlockNumber: not yet */
} WatchedTable;

extern BlockNumber AnalyzeIfStale(Oid relid, WatchedTable *t);
extern void AnalyzeStaleTables(WatchedTable *tables, int ntables, TimestampTz *checked_at,
							   const char *activity);

#endif							/* INTEGRATION_TABLE_STATISTICS_H */
