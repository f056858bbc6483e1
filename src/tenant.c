/*
 * tenant.c
 *		The current tenant: the integration.tenant_id setting and the checks built on it.
 *
 * Every table of the extension carries tenant_id and a forced row-level security policy
 * comparing it with integration.CurrentTenant().  The setting is meant to be set per
 * transaction (SET LOCAL) so it works behind transaction-mode poolers.  An empty value
 * means "no tenant": RLS-bound roles then see nothing, and require_tenant_for_write()
 * turns their writes into a clear error instead of a silent no-op.  Roles bound to
 * tenants (tenant_binding.c) may act only as those: CurrentTenant() enforces it, and
 * the check hook refuses an interactive SET of another tenant early.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/rls.h"

#include "integration.h"
#include "tenant.h"
#include "tenant_binding.h"

char	   *integration_tenant_id = NULL;

/* Tenant ids are short identifiers (numbers, slugs, UUIDs): nothing to quote or escape. */
bool
TenantIdIsValid(const char *s, size_t len)
{
	if (len == 0 || len > TENANT_ID_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

/*
 * A bound role's SET of another tenant fails here already, for SET and set_config()
 * (PGC_S_SESSION) only: other sources come at startup or from ALTER ROLE/DATABASE SET,
 * where the roles that will use the value are not known yet.  CurrentTenant() checks
 * every use whatever the source.
 */
static bool
check_tenant_id(char **newval, void **extra, GucSource source)
{
	char	   *detail;
	char	   *hint;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!TenantIdIsValid(*newval, strlen(*newval)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("A tenant id is 1 to %d characters from A-Z, a-z, 0-9, \"_\", \"-\", \".\" and \":\".",
							TENANT_ID_MAX_LEN);
		return false;
	}
	if (source == PGC_S_SESSION && !TenantBindingAllowsSet(*newval, &detail, &hint))
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errdetail("%s", detail);
		GUC_check_errhint("%s", hint);
		return false;
	}
	return true;
}

PG_FUNCTION_INFO_V1(integration_validate_tenant_id);

/* validate_tenant_id(tenant): the rule of the setting, for tables that store tenant ids. */
Datum
integration_validate_tenant_id(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	if (!TenantIdIsValid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant id \"%s\"", text_to_cstring(t)),
				 errdetail("A tenant id is 1 to %d characters from A-Z, a-z, 0-9, \"_\", \"-\", \".\" and \":\".",
						   TENANT_ID_MAX_LEN),
				 errhint("Use the value integration.tenant_id is set to for this tenant.")));
	PG_RETURN_TEXT_P(t);
}

void
TenantDefineGucs(void)
{
	DefineCustomStringVariable("integration.tenant_id",
							   "The tenant whose rows this session reads and writes.",
							   "Set it per transaction with SET LOCAL; empty means no tenant.",
							   &integration_tenant_id,
							   "",
							   PGC_USERSET,
							   0,
							   check_tenant_id, NULL, NULL);
}

/*
 * The tenant the session acts as, by the setting and the bindings of its roles, or
 * NULL; a pointer valid until the next call.
 */
static const char *
resolve_tenant(void)
{
	const char *requested = integration_tenant_id;

	if (requested != NULL && requested[0] == '\0')
		requested = NULL;
	return TenantBindingResolve(requested);
}

/*
 * The current tenant, or NULL when none is set (or the session is bound to several
 * and the setting is empty); an error when the setting names a tenant the session's
 * roles are not bound to.
 */
const char *
CurrentTenant(void)
{
	const char *t = resolve_tenant();

	/*
	 * The one bound tenant lives in the binding cache, which the next call
	 * may reuse.
	 */
	if (t != NULL && t != integration_tenant_id)
		return pstrdup(t);
	return t;
}

/* The "no tenant selected" error, saying why when the session is bound. */
static void
report_no_tenant(void)
{
	char	   *bound = TenantBindingUnchosenDetail();

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("no tenant selected"),
			 bound ? errdetail_internal("%s", bound)
			 : errdetail("The setting integration.tenant_id is empty."),
			 errhint("Run SET LOCAL integration.tenant_id = '<tenant>' in the transaction first.")));
}

/* The current tenant; an error when none is set. */
const char *
RequireTenant(void)
{
	const char *t = CurrentTenant();

	if (t == NULL)
		report_no_tenant();
	return t;
}

PG_FUNCTION_INFO_V1(integration_current_tenant);

/* current_tenant(): in every policy, so for every row; no copy in between. */
Datum
integration_current_tenant(PG_FUNCTION_ARGS)
{
	const char *t = resolve_tenant();

	if (t == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(t));
}

PG_FUNCTION_INFO_V1(integration_require_tenant);

Datum
integration_require_tenant(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(RequireTenant()));
}

PG_FUNCTION_INFO_V1(integration_require_tenant_for_write);

/*
 * BEFORE ... FOR EACH STATEMENT trigger on every extension table: a role bound by
 * row-level security that writes with no tenant selected gets an error, where RLS alone
 * would report "UPDATE 0" and leave the caller believing it worked.
 */
Datum
integration_require_tenant_for_write(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("require_tenant_for_write() must be called as a trigger")));

	RequireTenantForWrite(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/*
 * Raises when the current role is bound by row-level security on relation relid and
 * no tenant is selected: what every statement that writes to it checks first.
 */
void
RequireTenantForWrite(Oid relid)
{
	if (resolve_tenant() == NULL && check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
	{
		char	   *bound = TenantBindingUnchosenDetail();

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no tenant selected for write to %s", get_rel_name(relid)),
				 bound ? errdetail_internal("%s", bound)
				 : errdetail("The setting integration.tenant_id is empty, and row-level security applies to role \"%s\".",
							 GetUserNameFromId(GetUserId(), false)),
				 errhint("Run SET LOCAL integration.tenant_id = '<tenant>' in the transaction first.")));
	}
}

/*
 * Runs what follows as role with integration.tenant_id set to tenant_id, as a session
 * of that role would, until TenantActAsEnd(): how the worker runs tenants' code (an
 * inbound handler, a connector kind's adapters for a queued call).  The tenant is set
 * before the switch, in a GUC nest level of its own, so that the setting's check runs
 * for the worker; the switch forbids what would outlive the call (SET ROLE, temporary
 * objects), as maintenance commands do.  The caller checks the role first.  On error,
 * the caller's subtransaction abort restores both.
 */
void
TenantActAs(TenantIdentity *saved, const char *tenant_id, Oid role)
{
	TenantActing acting;

	GetUserIdAndSecContext(&saved->save_userid, &saved->save_sec_context);
	saved->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("integration.tenant_id", tenant_id, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	/*
	 * role's bindings hold as a session's login role's would, and no other
	 * tenant may be set (tenant_binding.c).
	 */
	acting.role = role;
	strlcpy(acting.tenant, tenant_id, sizeof(acting.tenant));
	TenantBindingActing(&acting, &saved->save_acting);
	SetUserIdAndSecContext(role, saved->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* Back to the user of TenantActAs(), whatever was SET since discarded. */
void
TenantActAsEnd(const TenantIdentity *saved)
{
	SetUserIdAndSecContext(saved->save_userid, saved->save_sec_context);
	TenantBindingActing(&saved->save_acting, NULL);
	AtEOXact_GUC(false, saved->save_nestlevel);
}
