/*
 * tenant.c
 *		The current tenant: the integration.tenant_id setting and the checks built on it.
 *
 * Every table of the extension carries tenant_id and a forced row-level security policy
 * comparing it with integration.CurrentTenant().  The setting is meant to be set per
 * transaction (SET LOCAL) so it works behind transaction-mode poolers.  An empty value
 * means "no tenant": RLS-bound roles then see nothing, and require_tenant_for_write()
 * turns their writes into a clear error instead of a silent no-op.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rls.h"

#include "integration.h"
#include "tenant.h"

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

static bool
check_tenant_id(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!TenantIdIsValid(*newval, strlen(*newval)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("A tenant id is 1 to %d characters from A-Z, a-z, 0-9, \"_\", \"-\", \".\" and \":\".",
							TENANT_ID_MAX_LEN);
		return false;
	}
	return true;
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

/* The current tenant, or NULL when none is set. */
const char *
CurrentTenant(void)
{
	if (integration_tenant_id == NULL || integration_tenant_id[0] == '\0')
		return NULL;
	return integration_tenant_id;
}

/* The current tenant; an error when none is set. */
const char *
RequireTenant(void)
{
	const char *t = CurrentTenant();

	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no tenant selected"),
				 errdetail("The setting integration.tenant_id is empty."),
				 errhint("Run SET LOCAL integration.tenant_id = '<tenant>' in the transaction first.")));
	return t;
}

PG_FUNCTION_INFO_V1(integration_current_tenant);

Datum
integration_current_tenant(PG_FUNCTION_ARGS)
{
	const char *t = CurrentTenant();

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

	if (CurrentTenant() == NULL &&
		check_enable_rls(RelationGetRelid(trigdata->tg_relation), InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no tenant selected for write to %s",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("The setting integration.tenant_id is empty, and row-level security applies to role \"%s\".",
						   GetUserNameFromId(GetUserId(), false)),
				 errhint("Run SET LOCAL integration.tenant_id = '<tenant>' in the transaction first.")));

	return PointerGetDatum(NULL);
}
