/*
 * inbound_invoke.c
 *		Calls one inbound handler: as the role that registered it, with the event's
 *		tenant selected, the way PostgreSQL runs maintenance commands as a table's owner.
 *
 * The worker is a superuser, and a handler is a tenant's code: run as the worker it
 * would bypass row-level security and see every tenant's rows.  So each call
 *   - checks the role again (it may have become a superuser, or been dropped, since
 *     the handler was registered; inbound_handler_written refused such roles then),
 *     and that it may still execute the function, which takes the event row;
 *   - opens a GUC nest level and sets integration.tenant_id to the event's tenant
 *     there, before the switch, so that the setting's check runs for the worker, and
 *     switches the current user with SECURITY_LOCAL_USERID_CHANGE |
 *     SECURITY_RESTRICTED_OPERATION, as VACUUM, ANALYZE and REFRESH MATERIALIZED VIEW
 *     do (TenantActAs(), tenant.c, which a connector call's adapters go through too):
 *     the handler cannot SET ROLE back, create temporary objects or leave session
 *     state behind;
 *   - bounds the call by integration.handler_timeout (RunWithTimeLimit(), time_limit.c),
 *     so a handler that hangs ends as a failed attempt instead of stalling the worker;
 *   - calls the function through fmgr (its SET clauses and SECURITY DEFINER apply);
 *   - restores the user and pops the nest level, discarding whatever the handler SET.
 * On error the caller's subtransaction abort restores the GUCs; the user is restored
 * here, and the timer by RunWithTimeLimit(), before the error goes on.  Row-level
 * security then shows the handler its tenant's rows only, and current_tenant() answers
 * the event's tenant, under the role's tenant bindings (tenant_binding.c) like any
 * session of that role.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "inbound_store.h"
#include "tenant.h"
#include "tenant_binding.h"
#include "time_limit.h"

/* Raises unless role may run handler with the event row (see the banner). */
static void
check_handler(Oid handler, Oid role, Oid row_type)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		fits;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role of the handler (OID %u) no longer exists", role),
				 errhint("Register the handler again as the role it should run as.")));
	if (superuser_arg(role) || has_bypassrls_privilege(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("inbound handlers do not run as role \"%s\"", GetUserNameFromId(role, false)),
				 errdetail("The role is a superuser or bypasses row-level security: the handler would see every tenant's rows."),
				 errhint("Register the handler again as an application role.")));

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler function (OID %u) no longer exists", handler),
				 errhint("Register the handler again with integration.on_inbound(..., replace => true).")));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	fits = proc->prokind == PROKIND_FUNCTION && !proc->proretset && proc->pronargs == 1 &&
		proc->proargtypes.values[0] == row_type;
	ReleaseSysCache(tup);
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("%s cannot be an inbound handler", format_procedure(handler)),
				 errdetail("A handler is a function (integration.inbound_events) returning one value.")));
	if (pg_proc_aclcheck(handler, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not execute %s", GetUserNameFromId(role, false),
						format_procedure(handler)),
				 errdetail("A handler runs as the role that registered it.")));
}

/* The handler's call, for RunWithTimeLimit(). */
static void
invoke(void *arg)
{
	FunctionCallInfo fcinfo = arg;

	(void) FunctionCallInvoke(fcinfo);
}

/*
 * Calls handler(row) as role with integration.tenant_id set to tenant_id; row is an
 * integration.inbound_events value of type row_type.  timeout_ms > 0 bounds the call
 * (RunWithTimeLimit(): the caller must let cancels through); 0: no bound.
 */
void
InboundInvokeHandler(Oid handler, Oid role, const char *tenant_id, Datum row, Oid row_type,
					 int timeout_ms)
{
	TenantIdentity saved;
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fcinfo, 1);

	check_handler(handler, role, row_type);

	TenantActAs(&saved, tenant_id, role);
	PG_TRY();
	{
		fmgr_info(handler, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = row;
		fcinfo->args[0].isnull = false;
		InvokeFunctionExecuteHook(handler);
		RunWithTimeLimit(invoke, fcinfo, timeout_ms, "the handler",
						 "integration.handler_timeout");
	}
	PG_CATCH();
	{
		SetUserIdAndSecContext(saved.save_userid, saved.save_sec_context);
		TenantBindingActing(&saved.save_acting, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	TenantActAsEnd(&saved);
}
