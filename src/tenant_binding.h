/*
 * tenant_binding.h
 *		Tenants bound to roles (integration.tenant_roles): which tenant a session may act as.
 *
 * Contract of TenantBindingResolve(requested), where requested is the value of
 * integration.tenant_id or NULL when it is empty:
 *	- no role of the session is bound: returns requested, as if bindings did not exist;
 *	- requested is a tenant every bound role of the session is bound to: returns requested;
 *	- requested is NULL and exactly one tenant is left: returns that tenant;
 *	- requested is NULL and several tenants (or none) are left: returns NULL;
 *	- requested is any other tenant: raises insufficient_privilege (42501).
 * The roles of a session are its session user, the role set by SET ROLE and the current
 * user; superusers and BYPASSRLS roles count as unbound.  Needs a transaction when the
 * answer is not cached.  A returned pointer other than requested stays valid until the
 * next call.
 */
#ifndef INTEGRATION_TENANT_BINDING_H
#define INTEGRATION_TENANT_BINDING_H

#include "fmgr.h"

#include "tenant.h"

extern const char *TenantBindingResolve(const char *requested);
extern bool TenantBindingAllowsSet(const char *requested, char **detail, char **hint);
extern char *TenantBindingUnchosenDetail(void);
extern void TenantBindingActing(const TenantActing *acting, TenantActing *previous);

/* BEFORE ... FOR EACH STATEMENT on integration.tenant_roles. */
extern PGDLLEXPORT Datum integration_tenant_roles_written(PG_FUNCTION_ARGS);

#endif
