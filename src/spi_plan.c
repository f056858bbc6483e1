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
 *
 * Batches go to a statement as arrays, one per column, unnested there: ArrayParam()
 * and its shorthands build them.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

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
 * Whether a plan made while a table had *planned blocks should be made again now that
 * it has now: once the table has more than doubled (the planner sizes a table by its
 * blocks, so a plan made again fits it; PostgreSQL's plan cache waits for the next
 * ANALYZE).  A size not known yet, or a table that has shrunk to less than half
 * (TRUNCATE, VACUUM giving pages back), sets *planned to now: growth counts from
 * there.  A plan made again is made at now, which the caller records.
 */
bool
PlanOutgrown(BlockNumber *planned, BlockNumber now)
{
	if (*planned == InvalidBlockNumber || now < *planned / 2)
	{
		*planned = now;
		return false;
	}
	return now > 2 * *planned + 8;
}

/*
 * Frees the plans in the n slots and empties them, to be prepared again on their next
 * use (after the extension was dropped and created again, say).
 */
void
ForgetPlans(SPIPlanPtr *const *slots, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (*slots[i] != NULL)
			SPI_freeplan(*slots[i]);
		*slots[i] = NULL;
	}
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

/*
 * The text in column col of an SPI result row, as a C string in the current memory
 * context (NULL for NULL), and its length in *len when len is given.
 */
char *
ResultText(HeapTuple tup, TupleDesc desc, int col, int *len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	text	   *t;
	char	   *s;

	if (isnull)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	t = DatumGetTextPP(d);
	s = palloc(VARSIZE_ANY_EXHDR(t) + 1);
	memcpy(s, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	s[VARSIZE_ANY_EXHDR(t)] = '\0';
	if (len)
		*len = VARSIZE_ANY_EXHDR(t);
	return s;
}

/*
 * A one-dimensional array of n values of type elemtype (nulls[i]: NULL; nulls may be
 * NULL for none).  The types the worker's statements take are known here, so batches
 * cost no catalog lookup; another type is looked up.
 */
Datum
ArrayParam(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		len;
	bool		byval;
	char		align;

	switch (elemtype)
	{
		case TEXTOID:
			len = -1, byval = false, align = TYPALIGN_INT;
			break;
		case INT8OID:
		case TIMESTAMPTZOID:
			len = 8, byval = FLOAT8PASSBYVAL, align = TYPALIGN_DOUBLE;
			break;
		case INT4OID:
			len = 4, byval = true, align = TYPALIGN_INT;
			break;
		case BOOLOID:
			len = 1, byval = true, align = TYPALIGN_CHAR;
			break;
		default:
			get_typlenbyvalalign(elemtype, &len, &byval, &align);
			break;
	}
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, elemtype, len, byval,
											  align));
}

/* An int8[] of n values. */
Datum
Int8ArrayParam(const int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return ArrayParam(d, NULL, n, INT8OID);
}

/* A text[] of n C strings, a NULL element where values[i] is NULL. */
Datum
TextArrayParam(char *const *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		nulls[i] = values[i] == NULL;
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(values[i]);
	}
	return ArrayParam(d, nulls, n, TEXTOID);
}
