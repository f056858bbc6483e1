/*
 * references.c
 *		Running the statements of the reference checks that stand in for foreign keys
 *		(delivery_references.c, connector_references.c): as the checked table's owner,
 *		without row-level security, with plans kept for the life of the backend; and
 *		their errors, worded and filled in as a foreign key's.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "references.h"
#include "spi_plan.h"

static void ReferenceStillUsed(TriggerData *trigdata, const char *referrer, const char *tenant,
							   const char *key, const char *hint) pg_attribute_noreturn();

/*
 * The checks' statements, prepared once per backend and kept, as PL/pgSQL keeps the
 * plans of a trigger function (a plan may read the transition tables the trigger
 * registers anew each time).  The worker runs the insert check for every batch it
 * fans out: parsed and planned each time, its two statements cost more than the
 * checking.  Keyed by the address of the statement's text, which is always a string
 * literal of the caller (delivery_references.c, connector_references.c: 18 in all).
 * A statement past the last slot is prepared each time it runs.
 *
 * A kept plan is made again once a table it reads has more than doubled since it was
 * made (KeptPlanGet(), spi_plan.c), by the rule the worker's own plans follow
 * (PlanOutgrown()).  PostgreSQL's plan cache plans again when ANALYZE changes a
 * table's statistics, and until then keeps a plan made for the size the table had:
 * the worker's first fan-out, while webhook_events held a few hundred events, planned
 * the event check as a walk of the whole table per probe, and after 20,000 events
 * were published at once, each batch's check read 2,100 pages and took 9 ms, then
 * 30 ms as the probes reached further in, with every other tenant's events waiting
 * behind those cycles (bench/run protection: p99 30 ms; bench/README.md).  Cost: an
 * smgrnblocks() per table a statement reads, at each run.
 */
#define KEPT_PLANS 24
static struct
{
	const char *sql;
	KeptPlan	kept;			/* its plan, and the tables it reads, as
								 * planned */
}			kept_plans[KEPT_PLANS];

/* The slot of sql's plan, or a free one taken for it; NULL when none is left. */
static KeptPlan *
plan_slot(const char *sql)
{
	for (int i = 0; i < KEPT_PLANS; i++)
		if (kept_plans[i].sql == sql)
			return &kept_plans[i].kept;
	for (int i = 0; i < KEPT_PLANS; i++)
	{
		if (kept_plans[i].sql == NULL)
		{
			kept_plans[i].sql = sql;
			return &kept_plans[i].kept;
		}
	}
	return NULL;
}

/*
 * Runs sql (reading the trigger's transition tables, with up to nargs parameters) as
 * rel's owner without row-level security, as ri_triggers.c does: a reference is a fact
 * about keys, not about what the caller may see.  snapshot and crosscheck as for
 * SPI_execute_snapshot(); the result must be expected.  sql is a literal: its plan
 * is kept by its address.
 */
void
ReferenceExecuteAsOwner(Relation rel, const char *sql, int nargs, Oid *argtypes, Datum *args,
						Snapshot snapshot, Snapshot crosscheck, long limit, int expected)
{
	Oid			save_userid;
	int			save_sec_context;
	KeptPlan   *slot;
	SPIPlanPtr	plan;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(rel->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	slot = plan_slot(sql);
	if (slot != NULL)
		plan = KeptPlanGet(slot, sql, nargs, argtypes, 0);
	else
	{
		plan = SPI_prepare(sql, nargs, argtypes);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	}
	rc = SPI_execute_snapshot(plan, args, NULL, snapshot, crosscheck, false, false, limit);
	if (rc != expected)
		elog(ERROR, "enforcing a reference failed: %s", SPI_result_code_string(rc));
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Runs sql (reading the trigger's transition tables, with up to two parameters) as
 * rel's owner without row-level security, and returns the first row's two columns
 * as text in *a and *b; false when it finds no row.  latest: read with a fresh
 * snapshot rather than the transaction's.  sql is a literal, as for
 * ReferenceExecuteAsOwner().
 */
bool
ReferenceFirstRow(Relation rel, const char *sql, int nargs, Oid *argtypes, Datum *args,
				  bool latest, char **a, char **b)
{
	ReferenceExecuteAsOwner(rel, sql, nargs, argtypes, args,
							latest ? GetLatestSnapshot() : InvalidSnapshot, InvalidSnapshot,
							1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*a = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*b = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return true;
}

/*
 * The check of a referenced table, by the trigger function called with fcinfo (named
 * function in its errors), for its AFTER DELETE ... FOR EACH STATEMENT (transition
 * table "gone"), AFTER UPDATE ... FOR EACH ROW (when its key changed, whatever the
 * statement names) and AFTER TRUNCATE triggers: no row of any of the referrers refers
 * to a key (tenant_id, id) that is gone.  The rows found are read with a fresh snapshot,
 * so that a serializable caller also sees rows committed after its snapshot, and locked
 * FOR KEY SHARE, as ri_triggers.c's NO ACTION check locks them: a row that another
 * transaction is deleting (or moving to another key) is waited for, and counts only if
 * that transaction rolls back.  delete_hint says what to do instead.
 */
void
ReferencesCheckUnreferenced(FunctionCallInfo fcinfo, const char *function,
							const ReferringTable *referrers, int nreferrers,
							const char *delete_hint)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	bool		truncated;
	bool		row;
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		args[2];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER trigger", function)));
	truncated = TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event);
	row = TRIGGER_FIRED_FOR_ROW(trigdata->tg_event);
	if (!truncated && !row && trigdata->tg_oldtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s on DELETE needs the transition table \"gone\"", function)));
	rel = trigdata->tg_relation;
	if (row)
	{
		HeapTuple	old = trigdata->tg_trigtuple;
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;

		args[0] = heap_getattr(old, SPI_fnumber(desc, "tenant_id"), desc, &isnull);
		args[1] = heap_getattr(old, SPI_fnumber(desc, "id"), desc, &isnull);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!truncated && !row)
		SPI_register_trigger_data(trigdata);

	for (int i = 0; i < nreferrers; i++)
	{
		const ReferringTable *r = &referrers[i];
		char	   *tenant;
		char	   *key;

		if (truncated)
		{
			if (ReferenceFirstRow(rel, r->any_sql, 0, NULL, NULL, true, &tenant, &key))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot truncate table \"%s\": table \"%s\" refers to it",
								RelationGetRelationName(rel), r->table),
						 errhint("%s", r->truncate_hint)));
		}
		else if (row ? ReferenceFirstRow(rel, r->key_sql, 2, types, args, true, &tenant, &key)
				 : ReferenceFirstRow(rel, r->gone_sql, 0, NULL, NULL, true, &tenant, &key))
			ReferenceStillUsed(trigdata, r->table, tenant, key, delete_hint);
	}
	SPI_finish();
}

/*
 * The error of a row the trigger's table added whose key (tenant_id, column) is not in
 * table referenced, as a foreign key raises it, the check's trigger standing for the
 * constraint.
 */
void
ReferenceMissing(TriggerData *trigdata, const char *referenced, const char *column,
				 const char *tenant, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errtableconstraint(trigdata->tg_relation, trigdata->tg_trigger->tgname),
			 errmsg("insert or update on table \"%s\" violates the reference to %s",
					RelationGetRelationName(trigdata->tg_relation), referenced),
			 errdetail("Key (tenant_id, %s)=(%s, %s) is not present in table \"%s\".",
					   column, tenant, key, referenced)));
	pg_unreachable();
}

/*
 * The error of a key (tenant_id, id) of the trigger's table that went while rows of
 * table referrer refer to it, as a foreign key raises it.
 */
static void
ReferenceStillUsed(TriggerData *trigdata, const char *referrer, const char *tenant,
				   const char *key, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
			 errtableconstraint(trigdata->tg_relation, trigdata->tg_trigger->tgname),
			 errmsg("update or delete on table \"%s\" violates the reference from table \"%s\"",
					RelationGetRelationName(trigdata->tg_relation), referrer),
			 errdetail("Key (tenant_id, id)=(%s, %s) is still referenced from table \"%s\".",
					   tenant, key, referrer),
			 errhint("%s", hint)));
	pg_unreachable();
}
