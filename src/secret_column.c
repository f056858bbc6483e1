/*
 * secret_column.c
 *		Columns that hold secrets encrypted at rest: the trigger that encrypts every value
 *		written to one, and integration.reencrypt_secrets(), which moves them all to the
 *		current key.
 *
 * A column is made a secret column by one trigger, so a later table (a connector's
 * credentials) needs nothing else:
 *
 *   CREATE TRIGGER ... BEFORE INSERT OR UPDATE OF <column>, <identity columns...>
 *     ON <table> FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
 *       '<purpose>', '<column>', '<validator regprocedure, or empty>', '<identity column>'...);
 *
 * The purpose and the row's identity columns (as text) are the value's additional
 * authenticated data (secret_box.h).  Every write path goes through the trigger: the
 * API functions, plain INSERT and UPDATE by any role, COPY and restores.  What it does
 * with the value written:
 *   - plain text: checked by the validator first (its error, which never echoes the
 *     value), then sealed under the current key; stored as it is when no key file is set;
 *   - sealed under a key the server holds: opened (for an unchanged value of an UPDATE,
 *     with the old row's identity) and sealed again when the key is not the current one
 *     or the row's identity changed; a value that does not open for the row is refused;
 *   - sealed under a key the server does not hold (a restore into a cluster without it):
 *     stored as it is, and every use reports the missing key.
 * The column's CHECK constraint accepts a well-formed sealed value or a valid plain
 * one, for writes that skip triggers (session_replication_role = replica).
 *
 * A jsonb column holds a JSON object whose string values are each such a value
 * (secret_object.h: an endpoint's custom headers), sealed with the value's key
 * appended to the row's context; "unchanged" is then per key: the old object's value
 * under the same key.  The validator sees the whole object, when a value is plain.
 *
 * reencrypt_secrets() runs, for every secret column, one UPDATE that sets the column
 * to itself where the value (for a jsonb column, one of its values) is plain or under a
 * non-current key the server holds; the trigger does the work.  It runs as each
 * table's owner with row-level security off, as PostgreSQL's referential checks do, so
 * it reaches every tenant; a concurrent writer of the same row is waited for and, in
 * READ COMMITTED, the newer row version is the one re-encrypted.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"

#include "secret_box.h"
#include "secret_object.h"

/* The trigger's arguments before the identity columns. */
#define ARG_PURPOSE 0
#define ARG_COLUMN 1
#define ARG_VALIDATOR 2
#define ARG_FIRST_IDENTITY 3

/*
 * tup's identity columns as text, into *identity (the trigger's count of them).  False
 * when one is NULL in a NOT NULL column (the constraint refuses the row after the
 * trigger).
 */
static bool
row_identity(Trigger *trig, Relation rel, HeapTuple tup, const char ***identity)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			n = trig->tgnargs - ARG_FIRST_IDENTITY;
	const char **parts = palloc(sizeof(char *) * n);

	for (int i = 0; i < n; i++)
	{
		const char *col = trig->tgargs[ARG_FIRST_IDENTITY + i];
		int			attnum = SPI_fnumber(desc, col);

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), col),
					 errhint("Check the arguments of trigger \"%s\".", trig->tgname)));
		parts[i] = SPI_getvalue(tup, desc, attnum);
		if (parts[i] == NULL)
		{
			if (TupleDescAttr(desc, attnum - 1)->attnotnull)
				return false;
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("column \"%s\" of a row with an encrypted secret must not be null", col),
					 errdetail("The row's identity columns authenticate its encrypted secret.")));
		}
	}
	*identity = parts;
	return true;
}

static bool
same_context(const SecretContext *a, const SecretContext *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/*
 * What to store for stored, a value written to a row whose context is cxt_new (see the
 * banner); old: the value the row held before an UPDATE, whose context is cxt_old
 * (NULL: none).  Returns stored itself when it is stored as it is.  what names the
 * value in errors ("column \"secret\"").
 */
static char *
seal_value(char *stored, const char *old, const SecretContext *cxt_old,
		   const SecretContext *cxt_new, const char *what)
{
	const SecretKey *current = SecretKeyCurrent();
	char		id[SECRET_KEY_ID_LEN + 1];
	bool		use_old;
	char	   *plain;
	int			plainlen;
	SecretOpenStatus status;
	char	   *sealed;

	if (!SecretIsSealed(stored))
	{
		if (current == NULL)
			return stored;
		sealed = SecretSeal(stored, strlen(stored), cxt_new);
		explicit_bzero(stored, strlen(stored));
		return sealed;
	}

	if (!SecretSealedKeyId(stored, id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed encrypted secret in %s", what),
				 errdetail("A value that starts with \"%s\" must be one that integration encrypted.",
						   SECRET_SEALED_PREFIX),
				 errhint("Store the secret itself; it is encrypted when written.")));

	/* An UPDATE that keeps the value keeps the old row's context. */
	use_old = old != NULL && strcmp(old, stored) == 0;
	if (SecretKeyFind(id) == NULL)
	{
		if (use_old && !same_context(cxt_old, cxt_new))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot change the identity of a row whose secret is encrypted under key %s", id),
					 errdetail("The key is not in integration.encryption_key_file, so the secret cannot be encrypted again for the row's new identity."),
					 errhint("Add the key to the key file and restart the server first.")));
		return stored;
	}
	if (use_old && same_context(cxt_old, cxt_new) && strcmp(id, current->id) == 0)
		return stored;

	status = SecretOpen(stored, use_old ? cxt_old : cxt_new, &plain, &plainlen);
	if (status != SECRET_OPENED)
	{
		char	   *why = SecretOpenError(status, stored);

		why[0] = pg_toupper((unsigned char) why[0]);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("encrypted secret in %s does not decrypt for this row", what),
				 errdetail("%s.", why),
				 errhint("An encrypted value can be stored only in the row it was encrypted for; store the secret itself instead.")));
	}
	if (strcmp(id, current->id) == 0 && (!use_old || same_context(cxt_old, cxt_new)))
	{
		SecretFree(plain, plainlen);
		return stored;
	}
	sealed = SecretSeal(plain, plainlen, cxt_new);
	SecretFree(plain, plainlen);
	return sealed;
}

/* What seal_key_value() needs besides the value: the row's contexts and old object. */
typedef struct ObjectSealing
{
	const SecretContext *row_new;
	const SecretContext *row_old;	/* NULL: no old row */
	Jsonb	   *old;			/* the old row's object (NULL: none) */
	const char *column;
} ObjectSealing;

/* seal_value() for one value of a JSON object of secrets, as SecretObjectMap() calls it. */
static char *
seal_key_value(void *arg, const char *key, int keylen, char *value)
{
	ObjectSealing *os = arg;
	SecretContext cxt_new;
	SecretContext cxt_old;
	char	   *old = NULL;

	SecretContextForKey(&cxt_new, os->row_new, key, keylen);
	if (os->old != NULL && JB_ROOT_IS_OBJECT(os->old) && !JB_ROOT_IS_SCALAR(os->old))
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&os->old->root, key, keylen, NULL);

		if (v != NULL && v->type == jbvString)
		{
			old = pnstrdup(v->val.string.val, v->val.string.len);
			SecretContextForKey(&cxt_old, os->row_old, key, keylen);
		}
	}
	return seal_value(value, old, &cxt_old, &cxt_new,
					  psprintf("the value of \"%.*s\" in column \"%s\"", keylen, key, os->column));
}

/* tup with column attnum set to d. */
static HeapTuple
with_value(Relation rel, HeapTuple tup, int attnum, Datum d)
{
	bool		isnull = false;

	return heap_modify_tuple_by_cols(tup, RelationGetDescr(rel), 1, &attnum, &d, &isnull);
}

/* Calls the trigger's validator, if it names one, on d as written. */
static void
validate(Trigger *trig, Datum d)
{
	const char *validator = trig->tgargs[ARG_VALIDATOR];

	if (validator[0] != '\0')
		OidFunctionCall1(DatumGetObjectId(DirectFunctionCall1(regprocedurein,
															  CStringGetDatum(validator))),
						 d);
}

PG_FUNCTION_INFO_V1(integration_encrypt_secret);

/* BEFORE INSERT OR UPDATE row trigger: see the banner. */
Datum
integration_encrypt_secret(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *trig;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	newtup;
	int			attnum;
	Oid			type;
	int			nidentity;
	const char **identity_new;
	const char **identity_old;
	bool		isnull;
	Datum		d;
	Datum		old = (Datum) 0;
	bool		has_old = false;
	SecretContext cxt_new;
	SecretContext cxt_old;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("encrypt_secret() must be called as a BEFORE INSERT OR UPDATE row trigger")));
	trig = td->tg_trigger;
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	if (trig->tgnargs <= ARG_FIRST_IDENTITY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" needs a purpose, a column, a validator and identity columns",
						trig->tgname),
				 errhint("Pass encrypt_secret('<purpose>', '<column>', '<validator or empty>', '<identity column>', ...).")));
	attnum = SPI_fnumber(desc, trig->tgargs[ARG_COLUMN]);
	type = attnum > 0 ? TupleDescAttr(desc, attnum - 1)->atttypid : InvalidOid;
	if (type != TEXTOID && type != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" has no text or jsonb column \"%s\"", RelationGetRelationName(rel),
						trig->tgargs[ARG_COLUMN]),
				 errhint("Check the arguments of trigger \"%s\".", trig->tgname)));
	nidentity = trig->tgnargs - ARG_FIRST_IDENTITY;

	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	d = heap_getattr(newtup, attnum, desc, &isnull);
	if (isnull || !row_identity(trig, rel, newtup, &identity_new))
		return PointerGetDatum(newtup);
	SecretContextInit(&cxt_new, trig->tgargs[ARG_PURPOSE], identity_new, nidentity);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		old = heap_getattr(td->tg_trigtuple, attnum, desc, &isnull);
		has_old = !isnull && row_identity(trig, rel, td->tg_trigtuple, &identity_old);
		if (has_old)
			SecretContextInit(&cxt_old, trig->tgargs[ARG_PURPOSE], identity_old, nidentity);
	}

	if (type == TEXTOID)
	{
		char	   *stored = TextDatumGetCString(d);
		char	   *result;

		/* Checked as written, before anything is encrypted. */
		if (!SecretIsSealed(stored))
			validate(trig, d);
		result = seal_value(stored, has_old ? TextDatumGetCString(old) : NULL, &cxt_old,
							&cxt_new, psprintf("column \"%s\"", trig->tgargs[ARG_COLUMN]));
		if (result == stored)
			return PointerGetDatum(newtup);
		return PointerGetDatum(with_value(rel, newtup, attnum, CStringGetTextDatum(result)));
	}
	else
	{
		/*
		 * A JSON object of secrets: each string value on its own
		 * (secret_object.h).
		 */
		Jsonb	   *obj = DatumGetJsonbP(d);
		Jsonb	   *result;
		ObjectSealing os;

		if (SecretObjectHasPlainValue(obj))
			validate(trig, d);
		os.row_new = &cxt_new;
		os.row_old = has_old ? &cxt_old : NULL;
		os.old = has_old ? DatumGetJsonbP(old) : NULL;
		os.column = trig->tgargs[ARG_COLUMN];
		result = SecretObjectMap(obj, seal_key_value, &os);
		if (result == obj)
			return PointerGetDatum(newtup);
		return PointerGetDatum(with_value(rel, newtup, attnum, JsonbPGetDatum(result)));
	}
}

/* A secret column: a table and the column its encrypt_secret() trigger names. */
typedef struct SecretColumn
{
	Oid			relid;
	Oid			owner;
	char	   *column;
	bool		object;			/* jsonb: a JSON object of secrets */
} SecretColumn;

/*
 * Every column an enabled or disabled encrypt_secret() trigger (trigger_fn) names,
 * with its table locked ROW EXCLUSIVE; refuses a caller who owns not all of them.
 */
static List *
secret_columns(Oid trigger_fn)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(trigger_fn)};
	List	   *relids = NIL;
	List	   *columns = NIL;
	ListCell   *lc;

	if (SPI_execute_with_args("SELECT DISTINCT t.tgrelid FROM pg_catalog.pg_trigger t"
							  " WHERE t.tgfoid OPERATOR(pg_catalog.=) $1 ORDER BY 1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the secret columns");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1, &isnull)));
	}

	foreach(lc, relids)
	{
		Relation	rel = table_open(lfirst_oid(lc), RowExclusiveLock);

		if (!pg_class_ownercheck(RelationGetRelid(rel), GetUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s to re-encrypt its secrets",
							RelationGetRelationName(rel)),
					 errhint("Run integration.reencrypt_secrets() as a superuser or as the owner of the extension's tables.")));
		for (int i = 0; rel->trigdesc && i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *trig = &rel->trigdesc->triggers[i];
			SecretColumn *sc;

			if (trig->tgfoid != trigger_fn || trig->tgnargs <= ARG_FIRST_IDENTITY)
				continue;
			sc = palloc(sizeof(SecretColumn));
			sc->relid = RelationGetRelid(rel);
			sc->owner = rel->rd_rel->relowner;
			sc->column = pstrdup(trig->tgargs[ARG_COLUMN]);
			sc->object = get_atttype(sc->relid, get_attnum(sc->relid, sc->column)) == JSONBOID;
			columns = lappend(columns, sc);
		}
		/* Locked until the transaction ends. */
		table_close(rel, NoLock);
	}
	return columns;
}

/* Runs sql ($1 the current key id, $2 every key id) as owner, RLS off; rows processed. */
static uint64
run_as_owner(Oid owner, const char *sql, int expected, Datum *args)
{
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS);
	rc = SPI_execute_with_args(sql, 2, argtypes, args, NULL, false, 0);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (rc != expected)
		elog(ERROR, "re-encrypting secrets failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

PG_FUNCTION_INFO_V1(integration_reencrypt_secrets);

/*
 * reencrypt_secrets(): encrypts every stored secret that is plain or under an older
 * key with the current key, across all tenants; returns how many it changed.
 */
Datum
integration_reencrypt_secrets(PG_FUNCTION_ARGS)
{
	const SecretKey *current = SecretKeyCurrent();
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
	const char *nspname = quote_identifier(get_namespace_name(nsp));
	Oid			trigger_fn;
	Datum		args[2];
	Datum	   *ids;
	List	   *columns;
	ListCell   *lc;
	int64		changed = 0;
	int64		unknown = 0;
	bool		isnull;

	if (current == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no encryption key is loaded"),
				 errdetail("integration.encryption_key_file is not set, so secrets are stored unencrypted."),
				 errhint("Set integration.encryption_key_file in postgresql.conf and restart the server.")));
	trigger_fn = LookupFuncName(list_make2(makeString(get_namespace_name(nsp)),
										   makeString("encrypt_secret")),
								0, NULL, false);

	ids = palloc(sizeof(Datum) * SecretKeyCount());
	for (int i = 0; i < SecretKeyCount(); i++)
		ids[i] = CStringGetTextDatum(SecretKeyAt(i)->id);
	args[0] = CStringGetTextDatum(current->id);
	args[1] = PointerGetDatum(construct_array(ids, SecretKeyCount(), TEXTOID, -1, false,
											  TYPALIGN_INT));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	columns = secret_columns(trigger_fn);
	foreach(lc, columns)
	{
		SecretColumn *sc = lfirst(lc);
		const char *rel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(sc->relid)),
													 get_rel_name(sc->relid));
		const char *col = quote_identifier(sc->column);
		const char *values;

		/* Each value: the column's, or those of its object (NULL: no secret). */
		values = sc->object ?
			psprintf("pg_catalog.jsonb_each_text(CASE WHEN pg_catalog.jsonb_typeof(t.%s)"
					 " OPERATOR(pg_catalog.=) 'object' THEN t.%s END) AS v(k, value)", col, col) :
			psprintf("(SELECT t.%s) AS v(value)", col);

		/* Plain, or under a key held that is not the current one. */
		changed += run_as_owner(sc->owner,
								psprintf("UPDATE %s AS t SET %s = t.%s"
										 " WHERE EXISTS (SELECT FROM %s"
										 "   WHERE v.value IS NOT NULL"
										 "     AND %s.secret_key_id(v.value) IS DISTINCT FROM $1"
										 "     AND (%s.secret_key_id(v.value) IS NULL"
										 "          OR %s.secret_key_id(v.value) OPERATOR(pg_catalog.=) ANY ($2)))",
										 rel, col, col, values, nspname, nspname, nspname),
								SPI_OK_UPDATE, args);
		run_as_owner(sc->owner,
					 psprintf("SELECT pg_catalog.count(*) FROM %s AS t, LATERAL %s"
							  " WHERE %s.secret_key_id(v.value) OPERATOR(pg_catalog.<>) ALL ($2)",
							  rel, values, nspname),
					 SPI_OK_SELECT, args);
		unknown += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));
	}
	SPI_finish();

	if (unknown > 0)
		ereport(WARNING,
				(errmsg_plural("%lld stored secret is encrypted under a key that integration.encryption_key_file does not hold",
							   "%lld stored secrets are encrypted under keys that integration.encryption_key_file does not hold",
							   unknown, (long long) unknown),
				 errdetail("They can be neither decrypted nor encrypted again."),
				 errhint("integration.secret_key_id() shows the key each one needs: add it to the key file, restart, and run integration.reencrypt_secrets() again.")));
	PG_RETURN_INT64(changed);
}
