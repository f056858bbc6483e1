/*
 * tenant_binding.c
 *		Tenants bound to roles: the rows of integration.tenant_roles, and which tenant a
 *		session may act as.
 *
 * integration.tenant_id is a user setting, so whoever can run SQL can name any tenant.
 * A binding (role, tenant) closes that for the roles it names.  A session may act as
 * tenant T only if each bound role among its session user, the role set by SET ROLE and
 * the current user (the owner, inside a SECURITY DEFINER function) is bound to T, itself
 * or as a member of a bound role (pg_has_role's MEMBER: whether it inherits or not).
 * All three, because each alone leaves a way out: a tenant's login role could SET ROLE
 * to an unbound group role it belongs to, a request role (PostgREST) is not the session
 * user, and an unbound owner's SECURITY DEFINER function would otherwise act as any
 * tenant its bound caller names.  With the setting empty the session acts as the one
 * tenant left, when exactly one is.  Superusers and BYPASSRLS roles count as unbound:
 * row-level security does not apply to them, so a binding could not narrow what they see.
 *
 * Enforcement is where the tenant is used, TenantBindingResolve() under CurrentTenant()
 * (current_tenant() in every policy, require_tenant() in every API function,
 * publishing).  A GUC check hook alone could not do it: it also runs outside any
 * transaction (startup, PGOPTIONS) and for ALTER ROLE ... SET, where the catalogs cannot
 * or must not be read, and SET ROLE after SET changes the answer without touching the
 * setting.  The check hook still refuses an interactive SET early (tenant.c), through
 * TenantBindingAllowsSet().
 *
 * current_tenant() runs for every row a policy filters, so nothing here may cost a
 * lookup per call.  Two caches, per backend:
 *	- the bindings: all rows of the table, read on first use and after each
 *	  invalidation of the table.  A statement trigger on the table sends a relcache
 *	  invalidation for it (integration_tenant_roles_written), which this backend sees
 *	  at its next command and the others at their next transaction start or lock, the
 *	  rule catalog caches follow.  The rows are read directly with the catalog snapshot,
 *	  which is taken afresh after every invalidation, so a reload never misses a commit
 *	  it was invalidated for, and neither the caller's privileges nor the table's own
 *	  row-level security apply.
 *	- the last answer, keyed by the three roles and the requested tenant, reset with the
 *	  bindings and by every change to pg_authid or pg_auth_members (role attributes,
 *	  memberships, DROP ROLE).  A hit costs three role ids and a string comparison.
 * A backend whose database has no bindings answers from the first cache alone.
 *
 * The workers.  A worker runs a tenant's code (an inbound handler, a kind's adapters
 * for a queued call) as the role that registered or queued it (TenantActAs()), in a
 * session whose user is the bootstrap superuser, never bound.  There that role stands
 * in for the session user (TenantBindingActing()): without it, the code could call
 * an unbound owner's SECURITY DEFINER function, where none of the three roles is
 * bound, and act as any tenant, which a session of the role itself cannot.  And the
 * tenant it runs for is the only one it may set or use, whoever the role: a worker
 * acts for one tenant at a time, and an unbound role's code (a handler registered by
 * the application's shared role, whose function a tenant that is a member of that
 * role could replace) must not reach the others through the setting.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "tenant.h"
#include "tenant_binding.h"

/* The roles of a session, in the order they are checked and named in errors. */
#define SESSION_ROLES 3

typedef struct TenantBinding
{
	Oid			role;
	char		tenant[TENANT_ID_MAX_LEN + 1];
} TenantBinding;

typedef enum TenantVerdict
{
	TENANT_ACTS_AS,				/* allowed (or not bound at all) */
	TENANT_UNCHOSEN,			/* setting empty, not exactly one tenant left */
	TENANT_REFUSED				/* setting names a tenant not allowed */
} TenantVerdict;

/* The last answer of TenantBindingResolve(). */
typedef struct TenantResolution
{
	bool		valid;
	Oid			roles[SESSION_ROLES];
	bool		requested_set;
	char		requested[TENANT_ID_MAX_LEN + 1];
	TenantVerdict verdict;
	bool		from_binding;	/* effective is the one bound tenant */
	char		effective[TENANT_ID_MAX_LEN + 1];
} TenantResolution;

/* What the bindings say about one session and one requested tenant. */
typedef struct BindingAnalysis
{
	bool		restricted;		/* some role of the session is bound */
	const char **allowed;		/* sorted; every bound role is bound to them */
	int			nallowed;
	Oid			refusing_role;	/* first bound role not bound to the request */
	const char **refusing_tenants;	/* and its tenants */
	int			nrefusing;
	Oid			bound_roles[SESSION_ROLES];
	int			nbound_roles;
} BindingAnalysis;

static MemoryContext binding_context = NULL;
static TenantBinding *bindings = NULL;	/* sorted by tenant */
static int	nbindings = 0;
static Oid	bindings_relid = InvalidOid;	/* InvalidOid: no such table */
static bool bindings_valid = false;
static uint64 bindings_invalidations = 0;
static uint64 roles_invalidations = 0;
static bool callbacks_registered = false;

static TenantResolution resolution;

/* A change to the bindings table, or to all relations: both caches go. */
static void
bindings_relcache_callback(Datum arg, Oid relid)
{
	/*
	 * Without the table (an older SQL definition), any relation may be the
	 * one that ALTER EXTENSION UPDATE creates: start over on every
	 * invalidation.
	 */
	if (relid == InvalidOid || relid == bindings_relid || !OidIsValid(bindings_relid))
	{
		bindings_valid = false;
		bindings_invalidations++;
		resolution.valid = false;
	}
}

/* A role's attributes or memberships changed: the answer may have. */
static void
roles_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	roles_invalidations++;
	resolution.valid = false;
}

static int
binding_cmp(const void *a, const void *b)
{
	const TenantBinding *x = a;
	const TenantBinding *y = b;
	int			c = strcmp(x->tenant, y->tenant);

	if (c != 0)
		return c;
	return (x->role > y->role) - (x->role < y->role);
}

/* Reads every row of integration.tenant_roles into bindings, sorted by tenant. */
static void
load_bindings(void)
{
	if (!IsTransactionState())
		elog(ERROR, "tenant bindings read outside a transaction");

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(bindings_relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, roles_syscache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, roles_syscache_callback, (Datum) 0);
		binding_context = AllocSetContextCreate(TopMemoryContext, "integration tenant bindings",
												ALLOCSET_SMALL_SIZES);
		callbacks_registered = true;
	}

	/*
	 * An invalidation while reading (table_open accepts them) means: read
	 * again.
	 */
	while (!bindings_valid)
	{
		uint64		start = bindings_invalidations;
		Oid			nsp = get_namespace_oid("integration", true);
		Oid			relid = OidIsValid(nsp) ? get_relname_relid("tenant_roles", nsp) : InvalidOid;
		int			allocated = 16;

		MemoryContextReset(binding_context);
		bindings = MemoryContextAlloc(binding_context, sizeof(TenantBinding) * allocated);
		nbindings = 0;

		if (OidIsValid(relid))
		{
			Relation	rel = table_open(relid, AccessShareLock);
			TupleDesc	desc = RelationGetDescr(rel);
			SysScanDesc scan;
			HeapTuple	tuple;

			if (desc->natts < 2 ||
				TupleDescAttr(desc, 0)->atttypid != TEXTOID ||
				TupleDescAttr(desc, 1)->atttypid != REGROLEOID)
				elog(ERROR, "integration.tenant_roles does not start with (tenant_id text, role regrole)");

			/*
			 * No index and no snapshot: a heap scan under the catalog
			 * snapshot.
			 */
			scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
			while ((tuple = systable_getnext(scan)) != NULL)
			{
				bool		isnull[2];
				Datum		tenant = heap_getattr(tuple, 1, desc, &isnull[0]);
				Datum		role = heap_getattr(tuple, 2, desc, &isnull[1]);
				text	   *t;

				if (isnull[0] || isnull[1])
					continue;
				if (nbindings == allocated)
				{
					allocated *= 2;
					bindings = repalloc(bindings, sizeof(TenantBinding) * allocated);
				}
				t = DatumGetTextPP(tenant);
				bindings[nbindings].role = DatumGetObjectId(role);
				text_to_cstring_buffer(t, bindings[nbindings].tenant, TENANT_ID_MAX_LEN + 1);
				nbindings++;
			}
			systable_endscan(scan);

			/*
			 * Released now, as catalog scans do: the cache follows changes
			 * through invalidations, so holding the lock to the end of the
			 * transaction would only make a TRUNCATE of the bindings wait for
			 * idle transactions.
			 */
			table_close(rel, AccessShareLock);
		}
		qsort(bindings, nbindings, sizeof(TenantBinding), binding_cmp);
		bindings_relid = relid;
		bindings_valid = (bindings_invalidations == start);
	}
}

/*
 * The tenants role is bound to, itself or as a member of a bound role, sorted and
 * without duplicates; none for superusers and BYPASSRLS roles.
 */
static int
role_tenants(Oid role, const char ***out)
{
	const char **tenants = palloc(sizeof(char *) * Max(nbindings, 1));
	int			n = 0;

	*out = tenants;
	if (!OidIsValid(role) || has_bypassrls_privilege(role))
		return 0;
	for (int i = 0; i < nbindings; i++)
	{
		if (n > 0 && strcmp(tenants[n - 1], bindings[i].tenant) == 0)
			continue;
		if (bindings[i].role == role || is_member_of_role_nosuper(role, bindings[i].role))
			tenants[n++] = bindings[i].tenant;
	}
	return n;
}

static bool
tenants_contain(const char **tenants, int n, const char *tenant)
{
	for (int i = 0; i < n; i++)
		if (strcmp(tenants[i], tenant) == 0)
			return true;
	return false;
}

/* Keeps in a (sorted) only what is also in b (sorted); returns the new length. */
static int
tenants_intersect(const char **a, int na, const char **b, int nb)
{
	int			n = 0;
	int			j = 0;

	for (int i = 0; i < na; i++)
	{
		while (j < nb && strcmp(b[j], a[i]) < 0)
			j++;
		if (j < nb && strcmp(b[j], a[i]) == 0)
			a[n++] = a[i];
	}
	return n;
}

/*
 * Whom a worker acts for (TenantActAs()): the role in place of its session user, and
 * the one tenant it may act as ("" and InvalidOid when none).  acting_level: the
 * transaction nest level it was set at, so that the abort of that (sub)transaction
 * forgets it, whatever the caller restores.
 */
static TenantActing acting =
{
	InvalidOid, ""
};
static int	acting_level = 0;
static bool acting_callbacks = false;

static void
acting_forget(void)
{
	acting.role = InvalidOid;
	acting.tenant[0] = '\0';
}

static void
acting_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && GetCurrentTransactionNestLevel() <= acting_level)
		acting_forget();
}

static void
acting_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		acting_forget();
}

/*
 * Makes *to (NULL: nobody) whom this backend acts for, until this is called again or
 * the (sub)transaction aborts: its role stands in for the session user in every
 * binding check, and no other tenant than its own may be set or used.  *previous gets
 * what it replaces, for the caller to put back.
 */
void
TenantBindingActing(const TenantActing *to, TenantActing *previous)
{
	if (!acting_callbacks)
	{
		RegisterSubXactCallback(acting_subxact_callback, NULL);
		RegisterXactCallback(acting_xact_callback, NULL);
		acting_callbacks = true;
	}
	if (previous)
		*previous = acting;
	if (to)
		acting = *to;
	else
		acting_forget();
	acting_level = GetCurrentTransactionNestLevel();
}

/* Raises unless requested (NULL: none) is the tenant the worker acts for, if any. */
static void
check_acting_tenant(const char *requested)
{
	if (acting.tenant[0] != '\0' && requested != NULL && strcmp(requested, acting.tenant) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("code run for tenant \"%s\" cannot act as tenant \"%s\"",
						acting.tenant, requested),
				 errdetail("A worker runs an inbound handler or a connector kind's adapter for one tenant, the one whose event or call it is.")));
}

static void
session_roles(Oid *roles)
{
	roles[0] = OidIsValid(acting.role) ? acting.role : GetSessionUserId();
	roles[1] = GetOuterUserId();
	roles[2] = GetUserId();
}

/* What the bindings allow the session's roles, and whether requested is allowed. */
static void
analyse(const Oid *roles, const char *requested, BindingAnalysis *a)
{
	memset(a, 0, sizeof(BindingAnalysis));
	load_bindings();
	if (nbindings == 0)
		return;
	for (int i = 0; i < SESSION_ROLES; i++)
	{
		const char **mine;
		int			n;
		bool		seen = false;

		for (int j = 0; j < i; j++)
			seen |= (roles[j] == roles[i]);
		if (seen)
			continue;
		n = role_tenants(roles[i], &mine);
		if (n == 0)
			continue;
		a->bound_roles[a->nbound_roles++] = roles[i];
		if (requested != NULL && !OidIsValid(a->refusing_role) &&
			!tenants_contain(mine, n, requested))
		{
			a->refusing_role = roles[i];
			a->refusing_tenants = mine;
			a->nrefusing = n;
		}
		if (!a->restricted)
		{
			a->restricted = true;
			a->allowed = palloc(sizeof(char *) * n);
			memcpy(a->allowed, mine, sizeof(char *) * n);
			a->nallowed = n;
		}
		else
			a->nallowed = tenants_intersect(a->allowed, a->nallowed, mine, n);
	}
}

/* The answer for the current roles and requested, from the cache or computed. */
static const TenantResolution *
resolve(const char *requested)
{
	Oid			roles[SESSION_ROLES];
	BindingAnalysis a;
	uint64		start;

	session_roles(roles);
	if (resolution.valid &&
		resolution.roles[0] == roles[0] && resolution.roles[1] == roles[1] &&
		resolution.roles[2] == roles[2] &&
		resolution.requested_set == (requested != NULL) &&
		(requested == NULL || strcmp(resolution.requested, requested) == 0))
		return &resolution;

	start = roles_invalidations;
	analyse(roles, requested, &a);
	resolution.valid = false;
	memcpy(resolution.roles, roles, sizeof(roles));
	resolution.requested_set = (requested != NULL);
	strlcpy(resolution.requested, requested ? requested : "", sizeof(resolution.requested));
	resolution.from_binding = false;
	resolution.effective[0] = '\0';
	if (!a.restricted)
		resolution.verdict = TENANT_ACTS_AS;
	else if (requested != NULL)
		resolution.verdict = OidIsValid(a.refusing_role) ? TENANT_REFUSED : TENANT_ACTS_AS;
	else if (a.nallowed == 1)
	{
		resolution.verdict = TENANT_ACTS_AS;
		resolution.from_binding = true;
		strlcpy(resolution.effective, a.allowed[0], sizeof(resolution.effective));
	}
	else
		resolution.verdict = TENANT_UNCHOSEN;

	/*
	 * Kept only if no invalidation came while it was computed (reading the
	 * table accepts them): otherwise the next call computes it again.
	 */
	resolution.valid = bindings_valid && roles_invalidations == start;
	return &resolution;
}

static char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/* "a", "b", "c" */
static char *
quoted_list(const char **tenants, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
		appendStringInfo(&buf, "%s\"%s\"", i > 0 ? ", " : "", tenants[i]);
	return buf.data;
}

/*
 * The message, detail and hint for a request the bindings refuse; false when they no
 * longer do (the bindings changed since the cached answer: the new one wins).
 */
static bool
describe_refusal(const char *requested, char **message, char **detail, char **hint)
{
	Oid			roles[SESSION_ROLES];
	BindingAnalysis a;

	session_roles(roles);
	analyse(roles, requested, &a);
	if (!OidIsValid(a.refusing_role))
		return false;
	*message = psprintf("role \"%s\" cannot act as tenant \"%s\"",
						role_name(a.refusing_role), requested);
	*detail = psprintf(a.nrefusing == 1
					   ? "Role \"%s\" is bound to tenant %s in integration.tenant_roles."
					   : "Role \"%s\" is bound to tenants %s in integration.tenant_roles.",
					   role_name(a.refusing_role),
					   quoted_list(a.refusing_tenants, a.nrefusing));
	if (a.nallowed == 1)
		*hint = psprintf("Leave integration.tenant_id empty or set it to \"%s\", the one tenant this session may act as.",
						 a.allowed[0]);
	else if (a.nallowed > 1)
		*hint = psprintf("Set integration.tenant_id to one of the tenants this session may act as: %s.",
						 quoted_list(a.allowed, a.nallowed));
	else
		*hint = pstrdup("The roles of this session are bound to no tenant in common: act as one role only, or ask an administrator to change the bindings.");
	return true;
}

const char *
TenantBindingResolve(const char *requested)
{
	const TenantResolution *r;

	check_acting_tenant(requested);

	/*
	 * Code run for a tenant that RESETs the setting (which no check hook
	 * sees) still acts for that tenant, not for whatever its role's bindings
	 * would choose.
	 */
	if (requested == NULL && acting.tenant[0] != '\0')
		requested = acting.tenant;
	/* A database without bindings, once they are loaded: the setting alone. */
	if (bindings_valid && nbindings == 0)
		return requested;

	r = resolve(requested);
	switch (r->verdict)
	{
		case TENANT_ACTS_AS:
			return r->from_binding ? r->effective : requested;
		case TENANT_UNCHOSEN:
			return NULL;
		case TENANT_REFUSED:
			{
				char	   *message;
				char	   *detail;
				char	   *hint;

				if (!describe_refusal(requested, &message, &detail, &hint))
					return requested;
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg_internal("%s", message),
						 errdetail_internal("%s", detail),
						 errhint("%s", hint)));
			}
	}
	pg_unreachable();
}

/*
 * For the check hook of integration.tenant_id: whether the session may act as
 * requested (never NULL here), with a detail and hint when not.  Only where the
 * catalogs can be read: inside a transaction, not while a parallel worker starts.
 */
bool
TenantBindingAllowsSet(const char *requested, char **detail, char **hint)
{
	char	   *message;

	if (acting.tenant[0] != '\0' && strcmp(requested, acting.tenant) != 0)
	{
		*detail = psprintf("Code run for tenant \"%s\" cannot act as tenant \"%s\".",
						   acting.tenant, requested);
		*hint = pstrdup("A worker runs an inbound handler or a connector kind's adapter for one tenant, the one whose event or call it is.");
		return false;
	}
	if (!IsTransactionState() || IsParallelWorker() || InitializingParallelWorker ||
		!OidIsValid(MyDatabaseId))
		return true;
	if (resolve(requested)->verdict != TENANT_REFUSED ||
		!describe_refusal(requested, &message, detail, hint))
		return true;
	*detail = psprintf("%s: %s", message, *detail);
	return false;
}

/*
 * Why no tenant is selected although the setting is empty and the session is bound:
 * it is bound to several tenants, or to none in common.  NULL when it is not bound.
 */
char *
TenantBindingUnchosenDetail(void)
{
	Oid			roles[SESSION_ROLES];
	BindingAnalysis a;
	const char *names[SESSION_ROLES];

	session_roles(roles);
	analyse(roles, NULL, &a);
	if (!a.restricted)
		return NULL;
	if (a.nallowed > 1)
		return psprintf("The setting integration.tenant_id is empty, and this session may act as %d tenants: %s.",
						a.nallowed, quoted_list(a.allowed, a.nallowed));
	for (int i = 0; i < a.nbound_roles; i++)
		names[i] = role_name(a.bound_roles[i]);
	return psprintf("The setting integration.tenant_id is empty, and the bound roles of this session (%s) share no tenant.",
					quoted_list(names, a.nbound_roles));
}

PG_FUNCTION_INFO_V1(integration_bound_tenants);

/* bound_tenants(): the tenants this session may act as; NULL when it is not bound. */
Datum
integration_bound_tenants(PG_FUNCTION_ARGS)
{
	Oid			roles[SESSION_ROLES];
	BindingAnalysis a;
	Datum	   *elems;

	session_roles(roles);
	analyse(roles, NULL, &a);
	if (!a.restricted)
		PG_RETURN_NULL();
	elems = palloc(sizeof(Datum) * Max(a.nallowed, 1));
	for (int i = 0; i < a.nallowed; i++)
		elems[i] = PointerGetDatum(cstring_to_text(a.allowed[i]));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, a.nallowed, TEXTOID, -1, false, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(integration_role_bound_to);

/*
 * _role_bound_to(role regrole, tenant text): whether role is bound to tenant, itself
 * or as a member of a bound role (false for superusers and BYPASSRLS roles).
 */
Datum
integration_role_bound_to(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char **tenants;
	int			n;

	load_bindings();
	n = role_tenants(role, &tenants);
	PG_RETURN_BOOL(tenants_contain(tenants, n, tenant));
}

/* Superusers and roles with the privileges of the table's owner may change bindings. */
static bool
may_change_bindings(Oid relowner)
{
	return has_privs_of_role(GetUserId(), relowner);
}

PG_FUNCTION_INFO_V1(integration_may_bind_roles);

/* may_bind_roles(): whether the current user may change the bindings (their policy). */
Datum
integration_may_bind_roles(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_namespace_oid("integration", false);
	Oid			relid = get_relname_relid("tenant_roles", nsp);
	HeapTuple	tuple;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "integration.tenant_roles does not exist");
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	PG_RETURN_BOOL(may_change_bindings(owner));
}

PG_FUNCTION_INFO_V1(integration_tenant_roles_written);

/*
 * BEFORE INSERT, UPDATE, DELETE or TRUNCATE, for each statement, on tenant_roles: only
 * an administrator changes bindings, whatever was granted on the table, and every
 * backend's cache learns of the change (this one at its next command, the others when
 * the transaction commits).
 */
Datum
integration_tenant_roles_written(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tenant_roles_written() must be called as a trigger")));
	rel = trigdata->tg_relation;
	if (!may_change_bindings(rel->rd_rel->relowner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to change tenant bindings"),
				 errdetail("Only superusers and roles with the privileges of role \"%s\", the owner of integration.tenant_roles, may bind roles to tenants.",
						   role_name(rel->rd_rel->relowner)),
				 errhint("Ask an administrator to run integration.bind_role() or integration.unbind_role().")));
	CacheInvalidateRelcache(rel);
	return PointerGetDatum(NULL);
}
