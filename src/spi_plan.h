/*
 * spi_plan.h
 *		SPI plans prepared once per backend and kept, and what their results hand on.
 */
#ifndef INTEGRATION_SPI_PLAN_H
#define INTEGRATION_SPI_PLAN_H

#include "executor/spi.h"
#include "storage/block.h"

extern SPIPlanPtr SavedPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
							int cursor_options);
extern void ForgetPlans(SPIPlanPtr *const *slots, int n);
extern bool PlanOutgrown(BlockNumber *planned, BlockNumber now);
extern void RunPlan(SPIPlanPtr plan, Datum *args, bool read_only, int expected,
					const char *what);
extern Datum ResultTids(int col);
extern char *ResultText(HeapTuple tup, TupleDesc desc, int col, int *len);

/* Array parameters of statements, built in the current memory context. */
extern Datum ArrayParam(Datum *values, bool *nulls, int n, Oid elemtype);
extern Datum Int8ArrayParam(const int64 *values, int n);
extern Datum TextArrayParam(char *const *values, int n);

#endif
