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

/*
 * A kept plan made again once a table it reads has more than doubled (spi_plan.c):
 * the plan, and the tables it reads with their sizes when it was made.  Zeroed: none
 * yet; ForgetPlans(&slot.plan) drops it.
 */
#define KEPT_PLAN_TABLES 4
typedef struct KeptPlan
{
	SPIPlanPtr	plan;
	int			ntables;
	Oid			tables[KEPT_PLAN_TABLES];
	BlockNumber blocks[KEPT_PLAN_TABLES];
} KeptPlan;

extern SPIPlanPtr KeptPlanGet(KeptPlan *slot, const char *sql, int nargs, Oid *argtypes,
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
