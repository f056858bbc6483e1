/*
 * spi_plan.h
 *		SPI plans prepared once per backend and kept, and what their results hand on.
 */
#ifndef INTEGRATION_SPI_PLAN_H
#define INTEGRATION_SPI_PLAN_H

#include "executor/spi.h"

extern SPIPlanPtr SavedPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
							int cursor_options);
extern void RunPlan(SPIPlanPtr plan, Datum *args, bool read_only, int expected,
					const char *what);
extern Datum ResultTids(int col);

#endif
