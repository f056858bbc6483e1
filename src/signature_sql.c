/*-------------------------------------------------------------------------
 *
 * signature_sql.c
 *	  The SQL functions sign(), sign_request(), verify(), generate_secret()
 *	  and validate_secret(), over the signer table of signature.c.
 *
 * The scheme and the secret are supplied by the operator, so an unknown
 * scheme or a bad secret is an error, raised before anything else is
 * looked at and never echoing the secret.  Headers and body come from
 * whoever sent the request, so verify() answers false to anything
 * malformed and never raises.
 *
 * Finding a scheme's headers in the jsonb object is done here, once for
 * every scheme: names match case-insensitively, a scheme may accept an
 * alias for a name (standard: Svix's svix-id for webhook-id, and so on),
 * and a header whose value is ambiguous answers false, as does one longer
 * than WEBHOOK_VERIFY_MAX_HEADER_BYTES.  A scheme that signs the request
 * line (hubspot) finds the method and the URI the same way, under the
 * pseudo-header names ":method" and ":uri"; sign_request() takes them as
 * arguments, and sign() refuses such a scheme.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "message_id.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(integration_sign);
PG_FUNCTION_INFO_V1(integration_sign_request);
PG_FUNCTION_INFO_V1(integration_verify);
PG_FUNCTION_INFO_V1(integration_generate_secret);
PG_FUNCTION_INFO_V1(integration_validate_secret);

#define UNIX_EPOCH_OFFSET_SECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* Current wall-clock time in unix seconds */
static int64
UnixNow(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		secs = now / USECS_PER_SEC;

	if (now < 0 && now % USECS_PER_SEC != 0)
		secs--;
	return secs + UNIX_EPOCH_OFFSET_SECS;
}

/* "standard, stripe, ... and github": the table's schemes, for hints */
static char *
SchemeList(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < webhook_num_signers; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf,
								   i == webhook_num_signers - 1 ? " and " : ", ");
		appendStringInfoString(&buf, webhook_signers[i].name);
	}
	return buf.data;
}

/* Signer from a SQL argument, or raise */
static const WebhookSigner *
SignerFromText(text *name)
{
	char	   *cname = text_to_cstring(name);
	const WebhookSigner *s = WebhookSignerLookup(cname);

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown webhook signature scheme \"%s\"", cname),
				 errhint("Supported schemes are %s.", SchemeList())));
	pfree(cname);
	return s;
}

/* Raise the error for a bad Standard Webhooks secret */
static void
ReportBadSecret(const char *error)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", error),
			 errhint("%s", WebhookSecretErrorHint(error) ? WebhookSecretErrorHint(error) :
					 "A Standard Webhooks secret is \"whsec_\" followed by the base64 encoding of 24 to 64 random bytes; separate several secrets with spaces.")));
}

/*
 * Keys from a SQL secret argument, or raise (never echoing the secret).
 * Raw keys point into secret, so it must stay until the keys are freed.
 */
static WebhookKeySet *
KeysFromText(const WebhookSigner *s, text *secret)
{
	const char *error = NULL;
	WebhookKeySet *keys;

	keys = WebhookSignerParseSecret(s, VARDATA_ANY(secret),
									VARSIZE_ANY_EXHDR(secret), &error);
	if (keys == NULL)
	{
		if (s->key_format == WEBHOOK_KEY_STANDARD)
			ReportBadSecret(error);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", error),
				 WebhookSecretErrorHint(error) ?
				 errhint("%s", WebhookSecretErrorHint(error)) : 0));
	}
	return keys;
}

/* Raise if a required argument is NULL */
static void
RequireArgument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* Add one string member to an object under construction */
static void
PushHeader(JsonbParseState **state, const char *name,
		   const char *value, int valuelen)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) name;
	v.val.string.len = strlen(name);
	pushJsonbValue(state, WJB_KEY, &v);

	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = valuelen;
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* Raise that OpenSSL failed */
static void
ReportHmacFailure(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("could not compute HMAC")));
}

/* Raise unless sign() (or sign_request(), with_target) can sign in scheme s */
static void
RequireSignable(const WebhookSigner *s, bool with_target)
{
	if (s->sign == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("scheme \"%s\" does not sign with headers", s->name),
				 errhint("%s", s->sign_hint)));
	if (s->signs_request_target && !with_target)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("scheme \"%s\" signs the request method and URI", s->name),
				 errhint("Use integration.sign_request(), which takes them.")));
	if (!s->signs_request_target && with_target)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("scheme \"%s\" does not sign the request method and URI", s->name),
				 errhint("Use integration.sign().")));
}

/* The current time in the unit of the scheme's timestamp */
static int64
SchemeNow(const WebhookSigner *s)
{
	if (s->timestamp_ms)
		return (GetCurrentTimestamp() / 1000) +
			UNIX_EPOCH_OFFSET_SECS * INT64CONST(1000);
	return UnixNow();
}

/*
 * The headers that sign msg (whose method and uri are set, if s signs them)
 * with the secret argument: the common part of sign() and sign_request().
 * The body is argument body_arg, the timestamp ts_arg, the message id
 * msg_id_arg (or -1).
 */
static Datum
SignMessage(FunctionCallInfo fcinfo, const WebhookSigner *s,
			WebhookMessage *msg, int body_arg, int ts_arg, int msg_id_arg)
{
	text	   *body = PG_GETARG_TEXT_PP(body_arg);
	WebhookKeySet *keys;
	WebhookHeader headers[WEBHOOK_SIGNER_MAX_HEADERS];
	int			nheaders;
	const char *error = NULL;
	JsonbParseState *state = NULL;
	JsonbValue *res;
	Jsonb	   *result;

	keys = KeysFromText(s, PG_GETARG_TEXT_PP(1));
	msg->body = VARDATA_ANY(body);
	msg->bodylen = VARSIZE_ANY_EXHDR(body);

	if (PG_ARGISNULL(ts_arg))
		msg->timestamp = SchemeNow(s);
	else
	{
		msg->timestamp = PG_GETARG_INT64(ts_arg);
		if (msg->timestamp < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timestamp must not be negative"),
					 s->timestamp_ms ?
					 errdetail("The timestamp of scheme \"%s\" is in milliseconds since 1970-01-01 00:00:00 UTC.", s->name) :
					 errdetail("The timestamp is in seconds since 1970-01-01 00:00:00 UTC.")));
	}

	/* Schemes that sign no id ignore msg_id, even an empty one */
	msg->msg_id = NULL;
	if (s->signs_msg_id)
	{
		Assert(msg_id_arg >= 0);
		if (PG_ARGISNULL(msg_id_arg))
			msg->msg_id = MessageIdGenerate();
		else
			msg->msg_id = text_to_cstring(PG_GETARG_TEXT_PP(msg_id_arg));
		if (msg->msg_id[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("msg_id must not be empty"),
					 errhint("Pass NULL to generate a message id.")));
	}

	if (!WebhookSignerSign(s, keys, msg, headers, &nheaders, &error))
		ReportHmacFailure();

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < nheaders; i++)
		PushHeader(&state, headers[i].name, headers[i].value,
				   strlen(headers[i].value));
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	result = JsonbValueToJsonb(res);	/* copies the strings pushed above */

	for (int i = 0; i < nheaders; i++)
		pfree(headers[i].value);
	WebhookSignerFreeKeys(keys);
	PG_RETURN_JSONB_P(result);
}

/*
 * integration.sign(scheme text, secret text, body text, msg_id text,
 *					"timestamp" bigint) RETURNS jsonb
 */
Datum
integration_sign(PG_FUNCTION_ARGS)
{
	const WebhookSigner *s;
	WebhookMessage msg = {0};

	RequireArgument(fcinfo, 0, "scheme");
	RequireArgument(fcinfo, 1, "secret");
	RequireArgument(fcinfo, 2, "body");

	s = SignerFromText(PG_GETARG_TEXT_PP(0));
	RequireSignable(s, false);
	return SignMessage(fcinfo, s, &msg, 2, 4, 3);
}

/*
 * integration.sign_request(scheme text, secret text, method text, uri text,
 *							body text, "timestamp" bigint) RETURNS jsonb
 *
 * For schemes that sign the request line (hubspot).  The timestamp is in
 * the unit of the scheme's header: milliseconds for hubspot.
 */
Datum
integration_sign_request(PG_FUNCTION_ARGS)
{
	const WebhookSigner *s;
	WebhookMessage msg = {0};

	RequireArgument(fcinfo, 0, "scheme");
	RequireArgument(fcinfo, 1, "secret");
	RequireArgument(fcinfo, 2, "method");
	RequireArgument(fcinfo, 3, "uri");
	RequireArgument(fcinfo, 4, "body");

	s = SignerFromText(PG_GETARG_TEXT_PP(0));
	RequireSignable(s, true);
	msg.method = text_to_cstring(PG_GETARG_TEXT_PP(2));
	msg.uri = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (msg.method[0] == '\0' || msg.uri[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method and uri must not be empty"),
				 errdetail("Scheme \"%s\" signs the request method and the full URI the request is sent to.", s->name)));
	return SignMessage(fcinfo, s, &msg, 4, 5, -1);
}

/* How often one header name was found in the request, and its value */
typedef struct HeaderMatch
{
	const char *val;
	int			len;
	int			count;			/* keys matching the name */
	bool		is_string;
} HeaderMatch;

/* A signer's name for a header, and its alias */
#define HEADER_SPELLINGS 2

/* How many values verify reads: the signer's headers, then the request line */
static int
VerifyValueCount(const WebhookSigner *s)
{
	return s->nheaders +
		(s->signs_request_target ? WEBHOOK_REQUEST_TARGET_VALUES : 0);
}

/* The spelling of value i that matches a jsonb key, or -1 */
static int
MatchSpelling(const WebhookSigner *s, int i, const JsonbValue *key)
{
	const char *names[HEADER_SPELLINGS] = {NULL, NULL};

	if (i < s->nheaders)
	{
		names[0] = s->headers[i];
		names[1] = s->aliases[i];
	}
	else
		names[0] = i == s->nheaders ? WEBHOOK_PSEUDO_METHOD : WEBHOOK_PSEUDO_URI;

	for (int j = 0; j < HEADER_SPELLINGS; j++)
	{
		if (names[j] != NULL &&
			strlen(names[j]) == (size_t) key->val.string.len &&
			pg_strncasecmp(names[j], key->val.string.val,
						   key->val.string.len) == 0)
			return j;
	}
	return -1;
}

/*
 * Find the signer's headers in a jsonb object, matching names
 * case-insensitively, into values (in the signer's order, then the method
 * and the URI for a signer of the request line).  Returns false unless
 * headers is an object and every header occurs, under its name or its
 * alias, with a string value.
 *
 * A name sent twice in different cases is ambiguous, so false.  A header
 * sent under both its name and its alias (webhook-id and svix-id) is
 * accepted only if both carry the same value: otherwise the application
 * could act on the one that was not verified.  receive_webhook() (connector_inbound.c)
 * finds a connector's headers the same way.
 */
bool
WebhookFindHeaders(Jsonb *headers, const WebhookSigner *s, WebhookHeaderValue *values)
{
	HeaderMatch matches[WEBHOOK_VERIFY_MAX_VALUES][HEADER_SPELLINGS];
	int			nvalues = VerifyValueCount(s);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	HeaderMatch *current = NULL;

	if (!JB_ROOT_IS_OBJECT(headers))
		return false;

	memset(matches, 0, sizeof(matches));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			current = NULL;
			for (int i = 0; i < nvalues && current == NULL; i++)
			{
				int			j = MatchSpelling(s, i, &v);

				if (j >= 0)
				{
					current = &matches[i][j];
					current->count++;
				}
			}
		}
		else if (tok == WJB_VALUE && current != NULL)
		{
			if (v.type == jbvString)
			{
				current->is_string = true;
				current->val = v.val.string.val;
				current->len = v.val.string.len;
			}
			else
				current->is_string = false;
			current = NULL;
		}
	}

	for (int i = 0; i < nvalues; i++)
	{
		const HeaderMatch *found = NULL;

		for (int j = 0; j < HEADER_SPELLINGS; j++)
		{
			const HeaderMatch *m = &matches[i][j];

			if (m->count == 0)
				continue;
			if (m->count != 1 || !m->is_string)
				return false;
			if (found != NULL &&
				(found->len != m->len ||
				 memcmp(found->val, m->val, m->len) != 0))
				return false;
			found = m;
		}
		if (found == NULL || found->len > WEBHOOK_VERIFY_MAX_HEADER_BYTES)
			return false;
		values[i].val = found->val;
		values[i].len = found->len;
	}
	return true;
}

/*
 * integration.verify(scheme text, secret text, headers jsonb, body text,
 *					  tolerance interval, now timestamptz) RETURNS boolean
 *
 * Not strict: a NULL from a strict function would read as "not false" in
 * IF NOT verify(...), so missing headers or body answer false, and missing
 * operator arguments raise.
 */
Datum
integration_verify(PG_FUNCTION_ARGS)
{
	const WebhookSigner *s;
	WebhookKeySet *keys;
	Interval   *tolerance_iv;
	WebhookTimeWindow window;
	INT128		zero = int64_to_int128(0);
	Jsonb	   *headers;
	text	   *body;
	WebhookHeaderValue values[WEBHOOK_VERIFY_MAX_VALUES];
	bool		result;

	RequireArgument(fcinfo, 0, "scheme");
	RequireArgument(fcinfo, 1, "secret");
	RequireArgument(fcinfo, 4, "tolerance");
	RequireArgument(fcinfo, 5, "now");

	s = SignerFromText(PG_GETARG_TEXT_PP(0));

	tolerance_iv = PG_GETARG_INTERVAL_P(4);
	window.tolerance = int64_to_int128(tolerance_iv->time);
	int128_add_int64_mul_int64(&window.tolerance, tolerance_iv->day,
							   USECS_PER_DAY);
	int128_add_int64_mul_int64(&window.tolerance, tolerance_iv->month,
							   (int64) DAYS_PER_MONTH * USECS_PER_DAY);
	if (int128_compare(window.tolerance, zero) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance must not be negative")));

	window.now = PG_GETARG_TIMESTAMPTZ(5);
	if (TIMESTAMP_NOT_FINITE(window.now))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("now must be finite")));

	keys = KeysFromText(s, PG_GETARG_TEXT_PP(1));

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		WebhookSignerFreeKeys(keys);
		PG_RETURN_BOOL(false);
	}
	headers = PG_GETARG_JSONB_P(2);
	body = PG_GETARG_TEXT_PP(3);

	result = WebhookFindHeaders(headers, s, values) &&
		s->verify(keys, values, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
				  &window);

	WebhookSignerFreeKeys(keys);
	PG_FREE_IF_COPY(body, 3);
	PG_RETURN_BOOL(result);
}

/*
 * integration.generate_secret() RETURNS text
 */
Datum
integration_generate_secret(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(WebhookGenerateSecret()));
}

/*
 * integration.validate_secret(secret text) RETURNS text
 */
Datum
integration_validate_secret(PG_FUNCTION_ARGS)
{
	text	   *secret = PG_GETARG_TEXT_PP(0);

	WebhookSignerFreeKeys(KeysFromText(WebhookSignerLookup("standard"),
									   secret));
	PG_RETURN_TEXT_P(secret);
}
