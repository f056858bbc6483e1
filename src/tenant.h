/*
 * tenant.h
 *		The current tenant (integration.tenant_id) and its validation.
 */
#ifndef INTEGRATION_TENANT_H
#define INTEGRATION_TENANT_H

#include "fmgr.h"

#define TENANT_ID_MAX_LEN 64

extern bool TenantIdIsValid(const char *s, size_t len);
extern void TenantDefineGucs(void);
extern const char *CurrentTenant(void);
extern const char *RequireTenant(void);
extern void RequireTenantForWrite(Oid relid);

/*
 * Whom a worker acts for (TenantActAs(), tenant_binding.c): the role that stands in
 * for the session user, and the one tenant it may act as; InvalidOid and "": none.
 */
typedef struct TenantActing
{
	Oid			role;
	char		tenant[TENANT_ID_MAX_LEN + 1];
} TenantActing;

/* What TenantActAs() switched from, for TenantActAsEnd(). */
typedef struct TenantIdentity
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	TenantActing save_acting;	/* TenantBindingActing()'s */
} TenantIdentity;

extern void TenantActAs(TenantIdentity *saved, const char *tenant_id, Oid role);
extern void TenantActAsEnd(const TenantIdentity *saved);

/* BEFORE ... FOR EACH STATEMENT on every extension table. */
extern PGDLLEXPORT Datum integration_require_tenant_for_write(PG_FUNCTION_ARGS);

#endif
