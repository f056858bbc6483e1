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
 * A generic plan still depends on the sizes the tables had when it was made, and the
 * plan cache makes it again only when ANALYZE changes their statistics (autovacuum's,
 * a minute or more after a burst).  So a kept plan is made again once a table it reads
 * has more than doubled (PlanOutgrown()).  The delivery kind checks its four tables
 * every 200 ms and drops the plans that read one that doubled (StorePlanSlot,
 * delivery_store.c), which costs its statements nothing.  Everywhere else a kept plan
 * notes the tables it reads and checks their sizes at each use (KeptPlanGet(), the
 * reference checks' plans in references.c): that works in any backend, with no loop
 * to check from, at an smgrnblocks() per table and use.
 *
 * Batches go to a statement as arrays, one per column, unnested there: ArrayParam()
 * and its shorthands build them.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"

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
 * The size of relid now, locked as the statement that reads it will lock it;
 * InvalidBlockNumber when it is gone (the extension dropped and created again: the plan
 * cache would plan such a statement again by its text).
 */
static BlockNumber
table_blocks(Oid relid)
{
	Relation	r = try_relation_open(relid, AccessShareLock);
	BlockNumber n;

	if (r == NULL)
		return InvalidBlockNumber;
	/* A view or a partitioned table has no size of its own. */
	n = RELKIND_HAS_STORAGE(r->rd_rel->relkind) ? RelationGetNumberOfBlocks(r) : 0;
	relation_close(r, NoLock);
	return n;
}

/*
 * Notes the tables slot's plan reads (the first KEPT_PLAN_TABLES; a table read twice
 * counts once), and their sizes now.
 */
static void
note_plan_tables(KeptPlan *slot)
{
	ListCell   *lc;

	slot->ntables = 0;
	foreach(lc, SPI_plan_get_plan_sources(slot->plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
		ListCell   *rc;

		foreach(rc, ps->relationOids)
		{
			int			n = slot->ntables;
			bool		noted = false;

			for (int t = 0; t < n; t++)
				noted = noted || slot->tables[t] == lfirst_oid(rc);
			if (noted)
				continue;
			if (n == KEPT_PLAN_TABLES)
				return;
			slot->tables[n] = lfirst_oid(rc);
			slot->blocks[n] = table_blocks(lfirst_oid(rc));
			slot->ntables++;
		}
	}
}

/* Whether a table slot's plan reads has more than doubled since it was made, or is gone. */
static bool
kept_plan_outgrown(KeptPlan *slot)
{
	for (int t = 0; t < slot->ntables; t++)
	{
		BlockNumber now = table_blocks(slot->tables[t]);

		if (now == InvalidBlockNumber || PlanOutgrown(&slot->blocks[t], now))
			return true;
	}
	return false;
}

/*
 * slot's plan, prepared from sql as SavedPlan() does on first use, and made again
 * once a table it reads has more than doubled since it was made (see the top).  Must
 * be called while SPI is connected.
 */
SPIPlanPtr
KeptPlanGet(KeptPlan *slot, const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	if (slot->plan != NULL && kept_plan_outgrown(slot))
	{
		SPI_freeplan(slot->plan);
		slot->plan = NULL;
	}
	if (slot->plan == NULL)
	{
		SavedPlan(&slot->plan, sql, nargs, argtypes, cursor_options);
		note_plan_tables(slot);
	}
	return slot->plan;
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
