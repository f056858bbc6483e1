/*-------------------------------------------------------------------------
 *
 * adyen_sql.c
 *	  The SQL functions over adyen_notification.c: adyen_verify_item(),
 *	  adyen_verify_notification(), adyen_signing_string() and
 *	  adyen_hmac_signature().  (adyen_sign_item(), adyen_sign_notification()
 *	  and adyen_acknowledgement() are SQL over these.)
 *
 * As with sign() and verify(), the key is the operator's: a missing or bad
 * key is an error that never echoes it.  What a notification holds comes
 * from the sender, so the verify functions answer false to anything
 * malformed; the signing functions are the operator's tools (a test server,
 * a replay) and raise 22023 for an item they cannot sign.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "adyen_notification.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(integration_adyen_verify_item);
PG_FUNCTION_INFO_V1(integration_adyen_verify_notification);
PG_FUNCTION_INFO_V1(integration_adyen_signing_string);
PG_FUNCTION_INFO_V1(integration_adyen_hmac_signature);

/* The HMAC key argument (a space-separated list of hex keys), or raise */
static WebhookKeySet *
AdyenKeysFromArgument(FunctionCallInfo fcinfo, int argno)
{
	text	   *key;
	WebhookKeySet *keys;
	const char *error = NULL;
	const char *hint;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hmac_key must not be null")));
	key = PG_GETARG_TEXT_PP(argno);
	keys = WebhookSignerParseSecret(WebhookSignerLookup("adyen"),
									VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									&error);
	if (keys == NULL)
	{
		hint = WebhookSecretErrorHint(error);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", error),
				 hint ? errhint("%s", hint) : 0));
	}
	return keys;
}

/* The jsonb argument as JSON text, for the parser */
static char *
JsonbArgumentText(FunctionCallInfo fcinfo, int argno, int *len)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(argno);
	StringInfoData buf;

	initStringInfo(&buf);
	JsonbToCString(&buf, &jb->root, VARSIZE(jb));
	*len = buf.len;
	return buf.data;
}

/* Verify a jsonb argument holding root; NULL answers false */
static Datum
VerifyArgument(FunctionCallInfo fcinfo, AdyenJsonRoot root)
{
	WebhookKeySet *keys = AdyenKeysFromArgument(fcinfo, 0);
	char	   *json;
	int			len;
	bool		result = false;

	if (!PG_ARGISNULL(1))
	{
		json = JsonbArgumentText(fcinfo, 1, &len);
		result = AdyenVerifyJson(keys, json, len, root);
		pfree(json);
	}
	WebhookSignerFreeKeys(keys);
	PG_RETURN_BOOL(result);
}

/*
 * integration.adyen_verify_item(hmac_key text, item jsonb) RETURNS boolean
 *
 * Not strict, for the reason verify() is not: a NULL item answers false.
 */
Datum
integration_adyen_verify_item(PG_FUNCTION_ARGS)
{
	return VerifyArgument(fcinfo, ADYEN_ROOT_ITEM);
}

/*
 * integration.adyen_verify_notification(hmac_key text, notification jsonb)
 *	   RETURNS boolean
 */
Datum
integration_adyen_verify_notification(PG_FUNCTION_ARGS)
{
	return VerifyArgument(fcinfo, ADYEN_ROOT_NOTIFICATION);
}

/* The signing string of the item argument, or raise */
static char *
SigningStringOfArgument(FunctionCallInfo fcinfo, int argno)
{
	int			len;
	char	   *json = JsonbArgumentText(fcinfo, argno, &len);
	StringInfoData data;
	const char *error;

	initStringInfo(&data);
	error = AdyenItemSigningString(json, len, &data);
	if (error != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", error),
				 errdetail("Adyen signs pspReference, originalReference, merchantAccountCode, merchantReference, amount.value, amount.currency, eventCode and success, each a string, a number, a boolean or null."),
				 errhint("Pass the NotificationRequestItem object itself, not the notification or its wrapper.")));
	pfree(json);
	return data.data;
}

/*
 * integration.adyen_signing_string(item jsonb) RETURNS text
 */
Datum
integration_adyen_signing_string(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(SigningStringOfArgument(fcinfo, 0)));
}

/*
 * integration.adyen_hmac_signature(hmac_key text, item jsonb) RETURNS text
 *
 * Signed with the first key of a list: during a rotation the new key goes
 * first, and receivers that know either key verify.
 */
Datum
integration_adyen_hmac_signature(PG_FUNCTION_ARGS)
{
	WebhookKeySet *keys = AdyenKeysFromArgument(fcinfo, 0);
	char	   *data;
	WebhookHmacPart part;
	char		sig[WEBHOOK_SHA256_BASE64_LEN + 1];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item must not be null")));
	data = SigningStringOfArgument(fcinfo, 1);
	part.data = data;
	part.len = strlen(data);
	if (!WebhookSha256Base64(keys, 0, &part, 1, sig))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not compute HMAC")));
	WebhookSignerFreeKeys(keys);
	PG_RETURN_TEXT_P(cstring_to_text(sig));
}
