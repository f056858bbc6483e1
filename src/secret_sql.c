/*
 * secret_sql.c
 *		SQL functions over secrets encrypted at rest: which key a stored value needs,
 *		which keys the server holds, and a stored value, or each value of a stored JSON
 *		object of secrets, masked for listings.
 *
 * None of them returns a plaintext secret: that is shown once, by register_webhook()
 * (and update_webhook() for the headers it is given), from the value it was given or
 * generated, and otherwise only the worker decrypts.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "connector.h"
#include "secret_box.h"
#include "secret_mask.h"
#include "secret_object.h"

#define MASK_UNAVAILABLE "(unavailable)"

PG_FUNCTION_INFO_V1(integration_secret_key_id);

/* secret_key_id(stored): the key id of a sealed value; NULL for a plain one. */
Datum
integration_secret_key_id(PG_FUNCTION_ARGS)
{
	char	   *stored = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		id[SECRET_KEY_ID_LEN + 1];

	if (!SecretIsSealed(stored))
		PG_RETURN_NULL();
	if (!SecretSealedKeyId(stored, id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed encrypted secret"),
				 errdetail("A value that starts with \"%s\" must be one that integration encrypted.",
						   SECRET_SEALED_PREFIX)));
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

PG_FUNCTION_INFO_V1(integration_encryption_keys);

/* encryption_keys(): the ids of the keys loaded, the one that encrypts first. */
Datum
integration_encryption_keys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < SecretKeyCount(); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(SecretKeyAt(i)->id);
		values[1] = BoolGetDatum(i == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Raises if the purpose argument names connector credentials. */
static void
refuse_credentials(FunctionCallInfo fcinfo, const char *function)
{
	if (strcmp(text_to_cstring(PG_GETARG_TEXT_PP(1)), CONNECTOR_CREDENTIALS_PURPOSE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s does not mask connector credentials", function),
				 errhint("Connector listings show them masked value by value.")));
}

/*
 * The context of a stored value from the arguments (purpose, VARIADIC identity) of the
 * mask functions; false when a part of the identity is NULL (nothing decrypts then).
 */
static bool
context_from_args(FunctionCallInfo fcinfo, SecretContext *cxt)
{
	char	   *purpose = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	const char **identity;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	identity = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			return false;
		identity[i] = TextDatumGetCString(elems[i]);
	}
	SecretContextInit(cxt, purpose, identity, n);
	return true;
}

/* A stored value masked (SecretMasked()), or "(unavailable)" when it does not open for cxt. */
static text *
mask_stored(const char *stored, const SecretContext *cxt)
{
	char	   *plain;
	int			plainlen;
	text	   *result;

	switch (SecretOpen(stored, cxt, &plain, &plainlen))
	{
		case SECRET_PLAIN:
		case SECRET_OPENED:
			result = cstring_to_text(SecretMasked(plain, plainlen));
			SecretFree(plain, plainlen);
			return result;
		default:
			return cstring_to_text(MASK_UNAVAILABLE);
	}
}

PG_FUNCTION_INFO_V1(integration_mask_stored_secret);

/*
 * mask_stored_secret(stored, purpose, VARIADIC identity): the stored value of a secret
 * column masked as mask_secret() masks a plain one, or "(unavailable)" when it is
 * encrypted and does not decrypt here.
 */
Datum
integration_mask_stored_secret(PG_FUNCTION_ARGS)
{
	char	   *stored = text_to_cstring(PG_GETARG_TEXT_PP(0));
	SecretContext cxt;

	/*
	 * Credentials are a JSON object: masked whole, its last four characters
	 * would show the end of the last value, which _mask_credentials() shows
	 * of none shorter than 16 characters.
	 */
	refuse_credentials(fcinfo, "mask_stored_secret()");
	if (!context_from_args(fcinfo, &cxt))
		PG_RETURN_TEXT_P(cstring_to_text(MASK_UNAVAILABLE));
	PG_RETURN_TEXT_P(mask_stored(stored, &cxt));
}

/* mask_stored() for one value of a JSON object of secrets, for SecretObjectMap(). */
static char *
mask_key_value(void *arg, const char *key, int keylen, char *value)
{
	const SecretContext *row = arg;
	SecretContext cxt;

	if (row == NULL)
		return MASK_UNAVAILABLE;
	SecretContextForKey(&cxt, row, key, keylen);
	return text_to_cstring(mask_stored(value, &cxt));
}

PG_FUNCTION_INFO_V1(integration_mask_stored_secrets);

/*
 * mask_stored_secrets(stored jsonb, purpose, VARIADIC identity): a stored JSON object
 * of secrets (secret_object.h) with each value masked as mask_stored_secret() masks
 * one, and its keys as they are.
 */
Datum
integration_mask_stored_secrets(PG_FUNCTION_ARGS)
{
	Jsonb	   *stored = PG_GETARG_JSONB_P(0);
	SecretContext cxt;
	bool		ok;

	/*
	 * Connector credentials are one value, not an object of them: masked as
	 * one, a key taken for the last part of the row's identity would show the
	 * end of the credentials (see mask_stored_secret()).
	 */
	refuse_credentials(fcinfo, "mask_stored_secrets()");
	ok = context_from_args(fcinfo, &cxt);

	PG_RETURN_JSONB_P(SecretObjectMap(stored, mask_key_value, ok ? &cxt : NULL));
}
