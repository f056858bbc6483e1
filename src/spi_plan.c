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

#include "catalog/pg_type.h"
#include "utils/array.h"

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

/*
 * The ctids in column col of SPI_tuptable, copied into a tid[] in the current memory
 * context, for a statement that reaches those rows by ctid next.
 */
Datum
ResultTids(int col)
{
	int			n = (int) SPI_processed;
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * Max(n, 1));
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, col,
																	&isnull)), &tids[i]);
		d[i] = PointerGetDatum(&tids[i]);
	}
	return PointerGetDatum(construct_array(d, n, TIDOID, sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}
