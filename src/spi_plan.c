/*
 * spi_plan.c
 *		SPI plans prepared once per backend and kept.
 *
 * The extension's internal statements run thousands of times a second; each is parsed
 * once, on first use, and kept with SPI_keepplan.  The plan cache still re-checks a kept
 * plan when the objects it uses change (after DROP and CREATE EXTENSION, say).  Callers
 * choose CURSOR_OPT_GENERIC_PLAN for statements whose plan cannot depend on table sizes
 * (rows reached by key or ctid) and CURSOR_OPT_CUSTOM_PLAN for the others.
 * RunPlan() executes one and turns an unexpected result code into an error.
 */
#include "postgres.h"

#include "spi_plan.h"

/* *slot, prepared from sql on first use.  Must be called while SPI is connected. */
SPIPlanPtr
SavedPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/*
 * Executes plan with args (NULL for none); raises an error naming what unless SPI
 * returns expected.  The rows are left in SPI_tuptable.
 */
void
RunPlan(SPIPlanPtr plan, Datum *args, bool read_only, int expected, const char *what)
{
	int			rc = SPI_execute_plan(plan, args, NULL, read_only, 0);

	if (rc != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(rc));
}
