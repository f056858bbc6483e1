/*
 * kind_dependencies.c
 *		A connector kind keeps its adapter functions: the sql_drop event trigger
 *		integration_adapter_dropped refuses to drop a function that a row of
 *		integration.connector_kinds names, the way PostgreSQL refuses to drop a function
 *		a view uses, and removes the kind along with it where the drop cascades.
 *
 * The rule.  A kind names its adapters (build_request_function,
 * interpret_response_function, normalise_function, verify_function, record_function) by
 * signature, schema-qualified, as a regprocedure prints under search_path pg_catalog,
 * pg_temp (not by OID, which pg_upgrade would not keep: sql/connectors.sql), and a
 * dropped one leaves a signature that every later call of the kind fails on.  A dropped
 * function is matched by that signature: its identity from
 * pg_event_trigger_dropped_objects() (schema-qualified name and argument types) without
 * the pg_catalog. of argument types, which is the same text.  So, at the end of every
 * command that dropped functions:
 *   - a function the command named (DROP FUNCTION, DROP ROUTINE, DROP OWNED BY) without
 *     CASCADE: ERROR 2BP01 (dependent_objects_still_exist), the detail naming each kind
 *     and column, and nothing is dropped;
 *   - otherwise, i.e. DROP ... CASCADE, or the function went as part of something else
 *     (a member of an extension being dropped, a schema dropped with CASCADE): the
 *     kinds that name it are unregistered too, each with a NOTICE, as a view goes with
 *     its function ("drop cascades to ..."); unless connectors of the kind exist
 *     (deleted ones included, as for unregister_connector_kind(), since they keep their
 *     inbound events): then ERROR 2BP01 as well, as the connectors are tenants' data,
 *     not objects a DROP may take along.
 * DROP EXTENSION integration (or its schema) drops this trigger with the catalogue, and
 * the trigger does not fire for the command that dropped it.
 *
 * Why an event trigger and not pg_depend.  pg_depend records dependencies between
 * catalogued objects; a kind is a row of an extension's table, not one.  The nearest
 * thing, recording the column connector_kinds.build_request_function as depending on
 * the function (recordDependencyOn() from register_connector_kind()), would name the
 * column in the error rather than the kind, make DROP ... CASCADE drop that column for
 * every kind, and leave entries to keep in step with each re-registration, unregister,
 * TRUNCATE and restore by hand: pg_dump writes no pg_depend rows, so a restored kind
 * would have none, and kinds are restored as the extension's configuration data
 * (pg_extension_config_dump), after the functions they name.  The event trigger keeps
 * no state: it reads the catalogue as it stands when a drop ends, in the dropping
 * transaction, so an ERROR undoes the drop, and it belongs to the extension, which a
 * restore creates again.  It is written in C because only the parse tree tells a DROP
 * ... CASCADE from a plain one (plpgsql event triggers are not given it).
 *
 * Limits, as for any event trigger: none fires in single-user mode, while the trigger is
 * disabled (ALTER EVENT TRIGGER integration_adapter_dropped DISABLE), or under
 * session_replication_role = replica, which is how a restore that drops functions first
 * (pg_restore --clean into a database that has kinds) gets past it (docs/connectors.md).
 *
 * Privileges.  The trigger runs as whoever dropped, but its statements run as the owner
 * of the function (the superuser who created the extension, who owns the catalogue),
 * without forced row-level security, as purge_expired() does (retention.c), rather than
 * the whole function being SECURITY DEFINER (none of the extension's is): whether
 * connectors of a kind exist is a question about every tenant's, and the owner of a
 * function a kind uses may drop it with CASCADE, which unregisters the kind although
 * only superusers write the catalogue otherwise (the connector_kinds_written trigger),
 * as PostgreSQL drops a dependent view whoever owns it.  Nothing else can be done
 * through it: it runs only as an event trigger, and only removes kinds whose functions
 * the current command dropped.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/syscache.h"

#include "spi_plan.h"

/*
 * Whether the command asked for CASCADE: a DROP, DROP OWNED, or an ALTER TABLE one of
 * whose subcommands did (dropping a column drops the SQL-standard functions that use
 * it only with CASCADE).  Any other command drops only what it was asked to.
 */
static bool
DropCascades(Node *parsetree)
{
	if (parsetree == NULL)
		return false;
	switch (nodeTag(parsetree))
	{
		case T_DropStmt:
			return ((DropStmt *) parsetree)->behavior == DROP_CASCADE;
		case T_DropOwnedStmt:
			return ((DropOwnedStmt *) parsetree)->behavior == DROP_CASCADE;
		case T_AlterTableStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->behavior == DROP_CASCADE)
						return true;
				}
				return false;
			}
		default:
			return false;
	}
}

/*
 * Each use of a dropped function by a kind, in the order the error lists them: the
 * kind, the column, the function (its identity without the pg_catalog. of argument
 * types, as PostgreSQL's own messages name a function), whether the command named the
 * function itself, and whether connectors of the kind exist (as the extension's
 * owner: every tenant's).
 */
#define USES_SQL \
	"SELECT k.name::text, a.col, d.signature, d.original," \
	"       EXISTS (SELECT FROM integration.connectors c WHERE c.kind = k.name)" \
	"  FROM (SELECT pg_catalog.regexp_replace(o.object_identity, '([(,])pg_catalog\\.', '\\1', 'g')," \
	"               o.original" \
	"          FROM pg_catalog.pg_event_trigger_dropped_objects() o" \
	"         WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass) d(signature, original)" \
	"  JOIN (integration.connector_kinds k" \
	"        CROSS JOIN LATERAL (VALUES ('build_request_function', k.build_request_function)," \
	"                                   ('interpret_response_function', k.interpret_response_function)," \
	"                                   ('normalise_function', k.normalise_function)," \
	"                                   ('record_function', k.record_function)," \
	"                                   ('verify_function', k.verify_function)) a(col, fn))" \
	"    ON a.fn = d.signature" \
	" ORDER BY k.name, a.col"

typedef struct KindUse
{
	char	   *kind;
	char	   *column;
	char	   *function;
	bool		named;			/* the command named the function */
	bool		in_use;			/* connectors of the kind exist */
} KindUse;

/*
 * Raises 2BP01 for use u: its function was named without CASCADE, or (in_use) its kind
 * cannot go; the detail lists every use refused for the same reason.
 */
static void
RefuseDrop(KindUse *uses, int n, KindUse *u, bool in_use)
{
	StringInfoData detail;

	initStringInfo(&detail);
	for (int i = 0; i < n; i++)
	{
		if (in_use ? !uses[i].in_use : !uses[i].named)
			continue;
		if (detail.len > 0)
			appendStringInfoChar(&detail, '\n');
		appendStringInfo(&detail, "Connector kind \"%s\" names function %s in column %s.",
						 uses[i].kind, uses[i].function, uses[i].column);
	}
	if (in_use)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop function %s because connector kind \"%s\" uses it",
						u->function, u->kind),
				 errdetail("%s\nConnectors of the kind exist (deleted ones included: they keep their inbound events), so the kind cannot go with the function.",
						   detail.data),
				 errhint("Register the kind again with other functions first: integration.register_connector_kind(..., replace => true).")));
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop function %s because connector kind \"%s\" uses it",
					u->function, u->kind),
			 errdetail("%s", detail.data),
			 errhint("Unregister the kind first with integration.unregister_connector_kind(), or register it again with other functions (integration.register_connector_kind(..., replace => true)); DROP ... CASCADE unregisters a kind no connector uses.")));
}

/* The owner of function fn. */
static Oid
FunctionOwner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

PG_FUNCTION_INFO_V1(integration_adapter_dropped);

/* The sql_drop event trigger integration_adapter_dropped (see the banner). */
Datum
integration_adapter_dropped(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	bool		cascade;
	KindUse    *uses;
	int			n;
	Oid			gone_type = TEXTARRAYOID;
	Datum		gone;
	int			ngone = 0;
	char	  **names;
	Oid			save_userid;
	int			save_sec_context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("integration._adapter_dropped() may only be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	cascade = DropCascades(trigdata->parsetree);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* An ERROR on the way restores the user with the transaction's abort. */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(FunctionOwner(fcinfo->flinfo->fn_oid),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	if (SPI_execute(USES_SQL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the connector kinds of dropped functions");
	n = (int) SPI_processed;
	if (n == 0)
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		SPI_finish();
		PG_RETURN_NULL();
	}

	uses = palloc(sizeof(KindUse) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		uses[i].kind = SPI_getvalue(tup, desc, 1);
		uses[i].column = SPI_getvalue(tup, desc, 2);
		uses[i].function = SPI_getvalue(tup, desc, 3);
		uses[i].named = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		uses[i].in_use = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	}

	/*
	 * A function named without CASCADE first, as PostgreSQL reports a
	 * dependency.
	 */
	for (int i = 0; i < n; i++)
		if (!cascade && uses[i].named)
			RefuseDrop(uses, n, &uses[i], false);
	for (int i = 0; i < n; i++)
		if (uses[i].in_use)
			RefuseDrop(uses, n, &uses[i], true);

	/* The kinds go with their functions: each once (uses are sorted by kind). */
	names = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && strcmp(uses[i].kind, uses[i - 1].kind) == 0)
			continue;
		ereport(NOTICE,
				(errmsg("drop cascades to connector kind \"%s\"", uses[i].kind)));
		names[ngone++] = uses[i].kind;
	}
	gone = TextArrayParam(names, ngone);
	if (SPI_execute_with_args("DELETE FROM integration.connector_kinds k WHERE k.name = ANY ($1)",
							  1, &gone_type, &gone, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not unregister the connector kinds of dropped functions");
	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	PG_RETURN_NULL();
}
