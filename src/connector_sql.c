/*
 * connector_sql.c
 *		Small SQL functions of the connector framework: header lookup and lenient JSON
 *		parsing for adapters written in SQL, and the checks and masks of a connector's
 *		credentials and inbound secret.
 *
 * Credentials are a JSON object of strings, stored encrypted as text (the
 * credentials_encrypted trigger, secret_column.c).  Everything here that sees one
 * answers without quoting it: a bad one gets a message that names what is wrong with
 * its shape, never a value, and a listing gets each value masked.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "connector.h"
#include "secret_mask.h"
#include "signature.h"

#define MASK_UNAVAILABLE "(unavailable)"

PG_FUNCTION_INFO_V1(integration_header);

/*
 * header(headers jsonb, name text): the string value of the header called name, in any
 * case; NULL when it is absent, not a string, or there twice (in two cases).
 */
Datum
integration_header(PG_FUNCTION_ARGS)
{
	Jsonb	   *headers = PG_GETARG_JSONB_P(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	const char *want = VARDATA_ANY(name);
	int			wantlen = VARSIZE_ANY_EXHDR(name);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		matched = false;
	int			found = 0;
	JsonbValue	value = {0};

	if (!JB_ROOT_IS_OBJECT(headers))
		PG_RETURN_NULL();
	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			matched = v.val.string.len == wantlen &&
				pg_strncasecmp(v.val.string.val, want, wantlen) == 0;
		else if (tok == WJB_VALUE && matched)
		{
			found++;
			value = v;
			matched = false;
		}
	}
	if (found != 1 || value.type != jbvString)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(value.val.string.val, value.val.string.len));
}

/*
 * try_jsonb()'s parse: jsonb_in()'s semantic actions (static in core's jsonb.c), so
 * that a body is parsed once, into jsonb, by a parse that reports a syntax error
 * instead of raising it.  Validating first and then casting parsed a pull page of
 * 250 orders (170 kB) twice: 0.5 ms of the 1.5 ms the cast takes (bench/run sync).
 */
typedef struct TryJsonbState
{
	JsonbParseState *parse;
	JsonbValue *res;
} TryJsonbState;

/* A string's length, checked as jsonb_in() does. */
static int
try_jsonb_string_len(size_t len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string"),
				 errdetail("Due to an implementation restriction, jsonb strings cannot exceed %d bytes.",
						   JENTRY_OFFLENMASK)));
	return (int) len;
}

/* A container's start or end, pushed as the parse meets it. */
static void
try_jsonb_push(void *state, JsonbIteratorToken token)
{
	TryJsonbState *st = state;

	st->res = pushJsonbValue(&st->parse, token, NULL);
}

static void
try_jsonb_object_start(void *state)
{
	try_jsonb_push(state, WJB_BEGIN_OBJECT);
}

static void
try_jsonb_object_end(void *state)
{
	try_jsonb_push(state, WJB_END_OBJECT);
}

static void
try_jsonb_array_start(void *state)
{
	try_jsonb_push(state, WJB_BEGIN_ARRAY);
}

static void
try_jsonb_array_end(void *state)
{
	try_jsonb_push(state, WJB_END_ARRAY);
}

static void
try_jsonb_field_start(void *state, char *fname, bool isnull)
{
	TryJsonbState *st = state;
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.len = try_jsonb_string_len(strlen(fname));
	v.val.string.val = fname;
	st->res = pushJsonbValue(&st->parse, WJB_KEY, &v);
}

static void
try_jsonb_scalar(void *state, char *token, JsonTokenType tokentype)
{
	TryJsonbState *st = state;
	JsonbValue	v;

	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.len = try_jsonb_string_len(strlen(token));
			v.val.string.val = token;
			break;
		case JSON_TOKEN_NUMBER:
			/* Out of numeric's range: raises, as the cast does. */
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
			v.type = jbvBool;
			v.val.boolean = true;
			break;
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = false;
			break;
		case JSON_TOKEN_NULL:
			v.type = jbvNull;
			break;
		default:
			elog(ERROR, "invalid json token type");
	}
	if (st->parse == NULL)
	{
		/* A scalar alone: jsonb's raw scalar, a one-element pseudo array. */
		JsonbValue	va;

		va.type = jbvArray;
		va.val.array.rawScalar = true;
		va.val.array.nElems = 1;
		st->res = pushJsonbValue(&st->parse, WJB_BEGIN_ARRAY, &va);
		st->res = pushJsonbValue(&st->parse, WJB_ELEM, &v);
		st->res = pushJsonbValue(&st->parse, WJB_END_ARRAY, NULL);
	}
	else if (st->parse->contVal.type == jbvArray)
		st->res = pushJsonbValue(&st->parse, WJB_ELEM, &v);
	else
		st->res = pushJsonbValue(&st->parse, WJB_VALUE, &v);
}

PG_FUNCTION_INFO_V1(integration_try_jsonb);

/*
 * try_jsonb(value text): value as jsonb, NULL when it is not JSON.  JSON jsonb cannot
 * hold (a \u0000 escape) is NULL too: the parse that keeps escapes reports it.  A
 * number beyond numeric's range still raises, as the cast does (also in a text that
 * turns out not to be JSON after it: the parse builds as it goes).
 */
Datum
integration_try_jsonb(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	JsonLexContext *lex;
	JsonSemAction sem = {0};
	TryJsonbState st = {0};

	lex = makeJsonLexContextCstringLen(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
									   GetDatabaseEncoding(), true);
	sem.semstate = &st;
	sem.object_start = try_jsonb_object_start;
	sem.object_end = try_jsonb_object_end;
	sem.array_start = try_jsonb_array_start;
	sem.array_end = try_jsonb_array_end;
	sem.object_field_start = try_jsonb_field_start;
	sem.scalar = try_jsonb_scalar;
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(JsonbValueToJsonb(st.res));
}

PG_FUNCTION_INFO_V1(integration_is_signature_scheme);

/* is_signature_scheme(scheme): one of verify()'s schemes, spelt in lower case. */
Datum
integration_is_signature_scheme(PG_FUNCTION_ARGS)
{
	char	   *scheme = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const WebhookSigner *s = WebhookSignerLookup(scheme);

	PG_RETURN_BOOL(s != NULL && strcmp(s->name, scheme) == 0);
}

PG_FUNCTION_INFO_V1(integration_validate_inbound_secret);

/*
 * _validate_inbound_secret(scheme, secret): the secret when verify() can use it under
 * scheme; for none and adapter, any non-empty secret.
 */
Datum
integration_validate_inbound_secret(PG_FUNCTION_ARGS)
{
	char	   *scheme = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *secret = PG_GETARG_TEXT_PP(1);
	const WebhookSigner *s = WebhookSignerLookup(scheme);
	const char *error = NULL;
	WebhookKeySet *keys;

	if (VARSIZE_ANY_EXHDR(secret) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbound secret must not be empty")));
	if (s == NULL)
		PG_RETURN_TEXT_P(secret);
	keys = WebhookSignerParseSecret(s, VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret), &error);
	if (keys == NULL)
	{
		char	   *why = pstrdup(error);

		why[0] = pg_toupper((unsigned char) why[0]);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid inbound secret for signature scheme %s", s->name),
				 errdetail("%s.", why),
				 WebhookSecretErrorHint(error) ? errhint("%s", WebhookSecretErrorHint(error)) :
				 s->key_format == WEBHOOK_KEY_STANDARD ?
				 errhint("A Standard Webhooks secret is \"whsec_\" followed by the base64 encoding of 24 to 64 random bytes.") : 0));
	}
	WebhookSignerFreeKeys(keys);
	PG_RETURN_TEXT_P(secret);
}

/* The parse of a credentials object: depth and whether it is still well formed. */
typedef struct CredentialsParse
{
	int			depth;
	bool		ok;
	bool		is_object;
} CredentialsParse;

static void
cred_object_start(void *state)
{
	CredentialsParse *p = state;

	if (p->depth == 0)
		p->is_object = true;
	else
		p->ok = false;			/* a value that is an object */
	p->depth++;
}

static void
cred_object_end(void *state)
{
	((CredentialsParse *) state)->depth--;
}

static void
cred_array_start(void *state)
{
	((CredentialsParse *) state)->ok = false;
}

static void
cred_scalar(void *state, char *token, JsonTokenType tokentype)
{
	CredentialsParse *p = state;

	if (p->depth != 1 || tokentype != JSON_TOKEN_STRING || token == NULL || token[0] == '\0')
		p->ok = false;
}

/* See connector.h */
bool
CredentialsAreValid(const char *value, int len)
{
	CredentialsParse p = {0, true, false};
	JsonSemAction sem = {0};
	JsonLexContext *lex;

	sem.semstate = &p;
	sem.object_start = cred_object_start;
	sem.object_end = cred_object_end;
	sem.array_start = cred_array_start;
	sem.scalar = cred_scalar;
	lex = makeJsonLexContextCstringLen(pnstrdup(value, len), len, GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &sem) == JSON_SUCCESS && p.ok && p.is_object;
}

PG_FUNCTION_INFO_V1(integration_validate_credentials);

/* _validate_credentials(credentials text): the trigger's validator of the column. */
Datum
integration_validate_credentials(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	if (!CredentialsAreValid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connector credentials must be a JSON object of non-empty strings"),
				 errdetail("The value written is not one; it is not shown, as it may hold secrets."),
				 errhint("Write credentials through integration.create_connector() or integration.update_connector().")));
	PG_RETURN_TEXT_P(t);
}

PG_FUNCTION_INFO_V1(integration_mask_credentials);

/*
 * _mask_credentials(stored, tenant_id, id): the keys of the stored credentials, each
 * value masked; the JSON string "(unavailable)" when they do not decrypt for the row.
 */
Datum
integration_mask_credentials(PG_FUNCTION_ARGS)
{
	char	   *stored = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		id = PG_GETARG_INT64(2);
	SecretContext cxt;
	char	   *plain;
	int			plainlen;
	SecretOpenStatus st;
	Jsonb	   *creds;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbParseState *state = NULL;
	JsonbValue *res = NULL;

	SecretContextForRow(&cxt, CONNECTOR_CREDENTIALS_PURPOSE, tenant, id);
	st = SecretOpen(stored, &cxt, &plain, &plainlen);
	if ((st != SECRET_PLAIN && st != SECRET_OPENED) || !CredentialsAreValid(plain, plainlen))
	{
		if (st == SECRET_PLAIN || st == SECRET_OPENED)
			SecretFree(plain, plainlen);
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum("\"" MASK_UNAVAILABLE "\"")));
	}
	creds = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(plain)));
	SecretFree(plain, plainlen);

	it = JsonbIteratorInit(&creds->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_VALUE && v.type == jbvString)
		{
			char	   *masked = SecretMasked(v.val.string.val, v.val.string.len);

			/* The copy jsonb_in made is wiped before it goes. */
			explicit_bzero(v.val.string.val, v.val.string.len);
			v.val.string.val = masked;
			v.val.string.len = strlen(masked);
		}
		res = pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}
