/*
 * function_signature.c
 *		The function a stored signature names, looked up once per backend.
 *
 * Tables of the extension name functions by signature, as text: connector_kinds its
 * adapters, inbound_handlers its handlers (sql/connectors.sql, sql/handlers.sql).  Not
 * by regprocedure, that is by OID: pg_upgrade keeps no function's OID and refuses every
 * table with such a column (pg_upgrade --check: "reg* data types in user tables"), so a
 * database with the extension could not be upgraded to a new major version.  The
 * signature is schema-qualified, the text of a regprocedure under search_path
 * pg_catalog, pg_temp, e.g. integration.generic_normalise(integration.connector_context,
 * jsonb,text), and is read back under that search_path whatever the caller's.
 *
 * Adapters run for every call and every webhook, handlers for every event: the OID of
 * each signature is kept, and all are forgotten when pg_proc, pg_namespace or pg_type
 * changes (a function dropped, renamed or moved, a schema or an argument's type
 * renamed), as a syscache callback tells.
 * A signature that no longer names a function, or names a temporary one, gives
 * InvalidOid; the caller, which knows whose column it is, raises.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "function_signature.h"

/* Signatures kept per backend. */
#define SIGNATURES_MAX 64

typedef struct KnownSignature
{
	char	   *signature;		/* in TopMemoryContext */
	Oid			fn;
}			KnownSignature;

static KnownSignature known[SIGNATURES_MAX];
static int	n_known;
static bool callbacks_registered = false;

/* Forgets every signature (a syscache callback). */
static void
ForgetSignatures(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int i = 0; i < n_known; i++)
		pfree(known[i].signature);
	n_known = 0;
}

/*
 * The function signature names, looked up as to_regprocedure() does, under search_path
 * pg_catalog.
 */
static Oid
LookupSignature(const char *signature)
{
	OverrideSearchPath path = {0};
	volatile Oid fn = InvalidOid;

	LOCAL_FCINFO(fcinfo, 1);

	path.schemas = NIL;
	path.addCatalog = true;
	path.addTemp = false;
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(signature);
	fcinfo->args[0].isnull = false;
	PushOverrideSearchPath(&path);
	PG_TRY();
	{
		Datum		d = to_regprocedure(fcinfo);

		if (!fcinfo->isnull)
			fn = DatumGetObjectId(d);
	}
	PG_FINALLY();
	{
		PopOverrideSearchPath();
	}
	PG_END_TRY();
	return fn;
}

/*
 * The function signature names (the form above), or InvalidOid when there is none.  A
 * type of its arguments that does not exist raises, as ::regprocedure does.
 */
Oid
FunctionBySignature(const char *signature)
{
	Oid			fn;

	if (!callbacks_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, ForgetSignatures, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, ForgetSignatures, (Datum) 0);
		/* An argument's type renamed: the signature names nothing any more. */
		CacheRegisterSyscacheCallback(TYPEOID, ForgetSignatures, (Datum) 0);
		callbacks_registered = true;
	}
	for (int i = 0; i < n_known; i++)
		if (strcmp(known[i].signature, signature) == 0)
			return known[i].fn;
	fn = LookupSignature(signature);

	/*
	 * Never a temporary function: a signature naming one would run whatever a
	 * session (a handler in this very worker, say) put in a temp schema.
	 */
	if (!OidIsValid(fn) || isAnyTempNamespace(get_func_namespace(fn)))
		return InvalidOid;
	if (n_known == SIGNATURES_MAX)
		ForgetSignatures((Datum) 0, PROCOID, 0);
	known[n_known].signature = MemoryContextStrdup(TopMemoryContext, signature);
	known[n_known].fn = fn;
	n_known++;
	return fn;
}
