/*-------------------------------------------------------------------------
 *
 * signature.c
 *	  Signing and verifying webhook requests in the schemes senders use:
 *	  Standard Webhooks, Stripe, Shopify, WooCommerce and GitHub, and the
 *	  SQL functions sign(), verify(), generate_secret() and
 *	  validate_secret().
 *
 * The secret is supplied by the operator, so a bad secret or an unknown
 * scheme is an error.  Headers and body come from whoever sent the request,
 * so verify() answers false to anything malformed and never raises: every
 * header value is parsed with explicit lengths (jsonb strings are not
 * NUL-terminated) and every signature is compared with CRYPTO_memcmp.
 *
 * Key rotation: for "standard" and "stripe" the secret may be several
 * secrets separated by spaces (neither format can contain a space); sign()
 * emits one signature per secret and verify() accepts a match with any of
 * them.  Shopify, WooCommerce and GitHub secrets are arbitrary strings that
 * may contain spaces (GitHub's own example does), so for them the whole
 * string is the one key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "common/int128.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "hmac.h"
#include "lib/stringinfo.h"
#include "signature.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(integration_sign);
PG_FUNCTION_INFO_V1(integration_verify);
PG_FUNCTION_INFO_V1(integration_generate_secret);
PG_FUNCTION_INFO_V1(integration_validate_secret);

typedef enum WebhookScheme
{
	SCHEME_STANDARD,
	SCHEME_STRIPE,
	SCHEME_SHOPIFY,
	SCHEME_WOOCOMMERCE,
	SCHEME_GITHUB
} WebhookScheme;

static const char *const scheme_names[] = {
	[SCHEME_STANDARD] = "standard",
	[SCHEME_STRIPE] = "stripe",
	[SCHEME_SHOPIFY] = "shopify",
	[SCHEME_WOOCOMMERCE] = "woocommerce",
	[SCHEME_GITHUB] = "github",
};

#define NUM_SCHEMES lengthof(scheme_names)

/* A secret as HMAC key bytes */
typedef struct WebhookKey
{
	const unsigned char *data;
	size_t		len;
} WebhookKey;

/* Decoded Standard Webhooks keys are 24 to 64 bytes */
#define STANDARD_KEY_MIN 24
#define STANDARD_KEY_MAX 64
#define STANDARD_SECRET_PREFIX "whsec_"
#define GENERATED_SECRET_BYTES 32
#define MSG_ID_PREFIX "msg_"
#define MSG_ID_RANDOM_CHARS 24

/* HMAC-SHA256 sizes */
#define SHA256_LEN 32
#define SHA256_B64_LEN 44		/* padded base64 of 32 bytes */
#define SHA256_HEX_LEN 64

/* Timestamps: at most 12 digits, so converting to microseconds cannot overflow */
#define MAX_TIMESTAMP_DIGITS 12
#define UNIX_EPOCH_OFFSET_SECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

static const char error_empty[] = "webhook secret is empty";
static const char error_base64[] = "webhook secret is not valid base64";
static const char error_size[] = "webhook secret must decode to 24 to 64 bytes";
static const char error_hmac[] = "could not compute HMAC";

/* Is c a separator in a list of secrets or of signatures? */
static inline bool
IsListSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Value of a base64 or base64url character, or -1 */
static inline int
Base64Value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * Decode base64 (standard or url-safe alphabet, padding optional but
 * correct if present) into dst, which holds dstlen bytes.  Returns the
 * decoded length, or -1 if the input is not base64 or does not fit.
 */
static int
Base64Decode(const char *src, size_t len, unsigned char *dst, size_t dstlen)
{
	size_t		npad = 0;
	size_t		ndata;
	size_t		out = 0;
	uint32		acc = 0;
	int			bits = 0;

	while (npad < 2 && npad < len && src[len - 1 - npad] == '=')
		npad++;
	ndata = len - npad;
	if (ndata % 4 == 1)
		return -1;
	if (npad > 0 && (ndata + npad) % 4 != 0)
		return -1;
	if (ndata / 4 * 3 + (ndata % 4 ? ndata % 4 - 1 : 0) > dstlen)
		return -1;

	for (size_t i = 0; i < ndata; i++)
	{
		int			v = Base64Value((unsigned char) src[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			dst[out++] = (unsigned char) (acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	return (int) out;
}

/* Standard padded base64 of src into dst; returns the encoded length */
static int
Base64Encode(const unsigned char *src, int len, char *dst, int dstlen)
{
	int			n = pg_b64_encode((const char *) src, len, dst, dstlen);

	if (n < 0)
		elog(ERROR, "base64 buffer too small");
	return n;
}

/* Lower-case hex of src into dst (2 * len bytes, not terminated) */
static void
HexEncode(const unsigned char *src, size_t len, char *dst)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 0x0f];
	}
}

/* Value of a hex digit of either case, or -1 */
static inline int
HexValue(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode exactly 2 * len hex digits into dst; false if any is not hex */
static bool
HexDecode(const char *src, size_t len, unsigned char *dst)
{
	for (size_t i = 0; i < len; i++)
	{
		int			hi = HexValue((unsigned char) src[2 * i]);
		int			lo = HexValue((unsigned char) src[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		dst[i] = (unsigned char) ((hi << 4) | lo);
	}
	return true;
}

/*
 * Decode a received base64 HMAC-SHA256 (44 characters, padded, as every
 * sender writes it) into 32 bytes.  The unused low bits of the last
 * character must be zero, so that each MAC has exactly one accepted
 * spelling.  Comparing decoded bytes, rather than base64 text, keeps the
 * expected MAC out of the table lookups of an encoder.
 */
static bool
DecodeSha256Base64(const char *s, size_t len, unsigned char *dst)
{
	unsigned char buf[SHA256_LEN + 2];

	if (len != SHA256_B64_LEN || s[SHA256_B64_LEN - 1] != '=' ||
		s[SHA256_B64_LEN - 2] == '=')
		return false;
	if ((Base64Value((unsigned char) s[SHA256_B64_LEN - 2]) & 0x03) != 0)
		return false;
	if (Base64Decode(s, len, buf, sizeof(buf)) != SHA256_LEN)
		return false;
	memcpy(dst, buf, SHA256_LEN);
	return true;
}

/* Look up a scheme name, case-insensitively; false if unknown */
static bool
LookupScheme(const char *name, int len, WebhookScheme *scheme)
{
	for (int i = 0; i < (int) NUM_SCHEMES; i++)
	{
		if (strlen(scheme_names[i]) == (size_t) len &&
			pg_strncasecmp(scheme_names[i], name, len) == 0)
		{
			*scheme = (WebhookScheme) i;
			return true;
		}
	}
	return false;
}

/* Count the non-empty space-separated tokens of s[0..len) */
static int
CountTokens(const char *s, size_t len)
{
	int			n = 0;
	size_t		i = 0;

	while (i < len)
	{
		while (i < len && IsListSpace(s[i]))
			i++;
		if (i == len)
			break;
		n++;
		while (i < len && !IsListSpace(s[i]))
			i++;
	}
	return n;
}

/*
 * Find the next space-separated token of s[*pos..len); false when none is
 * left.
 */
static bool
NextToken(const char *s, size_t len, size_t *pos,
		  const char **tok, size_t *toklen)
{
	size_t		i = *pos;
	size_t		start;

	while (i < len && IsListSpace(s[i]))
		i++;
	if (i == len)
	{
		*pos = i;
		return false;
	}
	start = i;
	while (i < len && !IsListSpace(s[i]))
		i++;
	*tok = s + start;
	*toklen = i - start;
	*pos = i;
	return true;
}

/*
 * Decode one Standard Webhooks secret into dst (STANDARD_KEY_MAX bytes).
 * Returns the key length, or -1 with *error set.
 */
static int
DecodeStandardSecret(const char *s, size_t len, unsigned char *dst,
					 const char **error)
{
	const size_t prefixlen = sizeof(STANDARD_SECRET_PREFIX) - 1;
	unsigned char buf[STANDARD_KEY_MAX + 3];
	int			n;

	if (len >= prefixlen && memcmp(s, STANDARD_SECRET_PREFIX, prefixlen) == 0)
	{
		s += prefixlen;
		len -= prefixlen;
	}
	if (len == 0)
	{
		*error = error_empty;
		return -1;
	}

	/* Decode into a roomier buffer so "too long" and "not base64" differ */
	for (size_t i = 0; i < len; i++)
	{
		if (Base64Value((unsigned char) s[i]) < 0 && s[i] != '=')
		{
			*error = error_base64;
			return -1;
		}
	}
	if (len > ((STANDARD_KEY_MAX + 2) / 3) * 4)
	{
		*error = error_size;
		return -1;
	}
	n = Base64Decode(s, len, buf, sizeof(buf));
	if (n < 0)
	{
		*error = error_base64;
		return -1;
	}
	if (n < STANDARD_KEY_MIN || n > STANDARD_KEY_MAX)
	{
		explicit_bzero(buf, sizeof(buf));
		*error = error_size;
		return -1;
	}
	memcpy(dst, buf, n);
	explicit_bzero(buf, sizeof(buf));
	return n;
}

/*
 * Turn the operator's secret string into HMAC keys for a scheme.  Returns
 * the number of keys (at least one) with *keys palloc'd, or 0 with *error
 * set.  Raw keys point into secret; decoded ones live in *keybuf, which the
 * caller zeroes and frees with FreeKeys.
 */
static int
ParseKeys(WebhookScheme scheme, const char *secret, size_t len,
		  WebhookKey **keys, unsigned char **keybuf, const char **error)
{
	int			n;
	size_t		pos = 0;
	const char *tok;
	size_t		toklen;
	WebhookKey *result;

	*keys = NULL;
	*keybuf = NULL;

	if (scheme == SCHEME_SHOPIFY || scheme == SCHEME_WOOCOMMERCE ||
		scheme == SCHEME_GITHUB)
	{
		if (len == 0)
		{
			*error = error_empty;
			return 0;
		}
		result = palloc(sizeof(WebhookKey));
		result[0].data = (const unsigned char *) secret;
		result[0].len = len;
		*keys = result;
		return 1;
	}

	n = CountTokens(secret, len);
	if (n == 0)
	{
		*error = error_empty;
		return 0;
	}
	result = palloc(sizeof(WebhookKey) * n);

	if (scheme == SCHEME_STRIPE)
	{
		for (int i = 0; NextToken(secret, len, &pos, &tok, &toklen); i++)
		{
			result[i].data = (const unsigned char *) tok;
			result[i].len = toklen;
		}
		*keys = result;
		return n;
	}

	Assert(scheme == SCHEME_STANDARD);
	*keybuf = palloc((size_t) n * STANDARD_KEY_MAX);
	for (int i = 0; NextToken(secret, len, &pos, &tok, &toklen); i++)
	{
		unsigned char *dst = *keybuf + (size_t) i * STANDARD_KEY_MAX;
		int			keylen = DecodeStandardSecret(tok, toklen, dst, error);

		if (keylen < 0)
		{
			explicit_bzero(*keybuf, (size_t) n * STANDARD_KEY_MAX);
			pfree(*keybuf);
			pfree(result);
			*keybuf = NULL;
			return 0;
		}
		result[i].data = dst;
		result[i].len = keylen;
	}
	*keys = result;
	return n;
}

/* Release what ParseKeys allocated, wiping decoded key material */
static void
FreeKeys(WebhookKey *keys, unsigned char *keybuf, int nkeys)
{
	if (keybuf != NULL)
	{
		explicit_bzero(keybuf, (size_t) nkeys * STANDARD_KEY_MAX);
		pfree(keybuf);
	}
	if (keys != NULL)
		pfree(keys);
}

/* HMAC-SHA256 over up to three parts joined by dots, then the body */
static bool
Sha256Mac(const WebhookKey *key, const char *id, size_t idlen,
		  const char *ts, size_t tslen, const char *body, size_t bodylen,
		  unsigned char *mac)
{
	WebhookHmacPart parts[5];
	int			nparts = 0;
	size_t		maclen;

	if (id != NULL)
	{
		parts[nparts].data = id;
		parts[nparts++].len = idlen;
		parts[nparts].data = ".";
		parts[nparts++].len = 1;
	}
	if (ts != NULL)
	{
		parts[nparts].data = ts;
		parts[nparts++].len = tslen;
		parts[nparts].data = ".";
		parts[nparts++].len = 1;
	}
	parts[nparts].data = body;
	parts[nparts++].len = bodylen;

	if (!webhook_hmac(WEBHOOK_HMAC_SHA256, key->data, key->len,
					  parts, nparts, mac, &maclen))
		return false;
	Assert(maclen == SHA256_LEN);
	return true;
}

/*
 * Append the Standard Webhooks signature list for the given keys to buf.
 * False if HMAC fails.
 */
static bool
AppendStandardSignatures(StringInfo buf, const WebhookKey *keys, int nkeys,
						 const char *id, size_t idlen,
						 const char *ts, size_t tslen,
						 const char *body, size_t bodylen)
{
	for (int i = 0; i < nkeys; i++)
	{
		unsigned char mac[SHA256_LEN];
		char		b64[SHA256_B64_LEN + 1];
		int			n;

		if (!Sha256Mac(&keys[i], id, idlen, ts, tslen, body, bodylen, mac))
			return false;
		n = Base64Encode(mac, SHA256_LEN, b64, sizeof(b64));
		if (i > 0)
			appendStringInfoChar(buf, ' ');
		appendStringInfoString(buf, "v1,");
		appendBinaryStringInfo(buf, b64, n);
	}
	return true;
}

/* See signature.h */
char *
webhook_standard_signature(const char *secrets, const char *msg_id,
						   int64 timestamp, const char *body, size_t bodylen,
						   const char **error)
{
	WebhookKey *keys;
	unsigned char *keybuf;
	int			nkeys;
	char		ts[32];
	int			tslen;
	StringInfoData buf;
	bool		ok;

	Assert(msg_id != NULL);
	if (secrets == NULL)
	{
		*error = error_empty;
		return NULL;
	}
	nkeys = ParseKeys(SCHEME_STANDARD, secrets, strlen(secrets),
					  &keys, &keybuf, error);
	if (nkeys == 0)
		return NULL;

	tslen = snprintf(ts, sizeof(ts), INT64_FORMAT, timestamp);
	initStringInfo(&buf);
	ok = AppendStandardSignatures(&buf, keys, nkeys, msg_id, strlen(msg_id),
								  ts, tslen, body, bodylen);
	FreeKeys(keys, keybuf, nkeys);
	if (!ok)
	{
		pfree(buf.data);
		*error = error_hmac;
		return NULL;
	}
	return buf.data;
}

/* See signature.h */
bool
webhook_secret_is_valid(const char *secrets, const char **error)
{
	WebhookKey *keys;
	unsigned char *keybuf;
	int			nkeys;

	if (secrets == NULL)
	{
		*error = error_empty;
		return false;
	}
	nkeys = ParseKeys(SCHEME_STANDARD, secrets, strlen(secrets),
					  &keys, &keybuf, error);
	if (nkeys == 0)
		return false;
	FreeKeys(keys, keybuf, nkeys);
	return true;
}

/* Fill dst with n random bytes or raise */
static void
RandomBytes(unsigned char *dst, int n)
{
	if (RAND_bytes(dst, n) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
}

/* See signature.h */
char *
webhook_generate_secret(void)
{
	const size_t prefixlen = sizeof(STANDARD_SECRET_PREFIX) - 1;
	unsigned char raw[GENERATED_SECRET_BYTES];
	int			enclen = pg_b64_enc_len(GENERATED_SECRET_BYTES);
	char	   *result = palloc(prefixlen + enclen + 1);
	int			n;

	RandomBytes(raw, sizeof(raw));
	memcpy(result, STANDARD_SECRET_PREFIX, prefixlen);
	n = Base64Encode(raw, sizeof(raw), result + prefixlen, enclen);
	result[prefixlen + n] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return result;
}

/*
 * A fresh message id: "msg_" and base62 characters, drawn from RAND_bytes
 * with rejection sampling so that every character is equally likely.
 */
static char *
GenerateMessageId(void)
{
	static const char alphabet[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const size_t prefixlen = sizeof(MSG_ID_PREFIX) - 1;
	char	   *result = palloc(prefixlen + MSG_ID_RANDOM_CHARS + 1);
	int			filled = 0;

	memcpy(result, MSG_ID_PREFIX, prefixlen);
	while (filled < MSG_ID_RANDOM_CHARS)
	{
		unsigned char raw[32];

		RandomBytes(raw, sizeof(raw));
		for (int i = 0; i < (int) sizeof(raw) && filled < MSG_ID_RANDOM_CHARS; i++)
		{
			/* 248 = 4 * 62: bytes above it would favour the first letters */
			if (raw[i] < 248)
				result[prefixlen + filled++] = alphabet[raw[i] % 62];
		}
	}
	result[prefixlen + MSG_ID_RANDOM_CHARS] = '\0';
	return result;
}

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

/* Raise the error for a bad secret */
static void
ReportBadSecret(const char *error)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", error),
			 errhint("A Standard Webhooks secret is \"whsec_\" followed by the base64 encoding of 24 to 64 random bytes; separate several secrets with spaces.")));
}

/* Scheme from a SQL argument, or raise */
static WebhookScheme
SchemeFromText(text *name)
{
	WebhookScheme scheme;

	if (!LookupScheme(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), &scheme))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown webhook signature scheme \"%s\"",
						text_to_cstring(name)),
				 errhint("Supported schemes are standard, stripe, shopify, woocommerce and github.")));
	return scheme;
}

/* Keys from a SQL secret argument, or raise (never echoing the secret) */
static int
KeysFromText(WebhookScheme scheme, text *secret,
			 WebhookKey **keys, unsigned char **keybuf)
{
	const char *error = NULL;
	int			nkeys;

	nkeys = ParseKeys(scheme, VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret),
					  keys, keybuf, &error);
	if (nkeys == 0)
	{
		if (scheme == SCHEME_STANDARD)
			ReportBadSecret(error);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", error)));
	}
	return nkeys;
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

/*
 * integration.sign(scheme text, secret text, body text, msg_id text,
 *					"timestamp" bigint) RETURNS jsonb
 */
Datum
integration_sign(PG_FUNCTION_ARGS)
{
	WebhookScheme scheme;
	text	   *secret;
	text	   *body;
	const char *bodyp;
	size_t		bodylen;
	WebhookKey *keys;
	unsigned char *keybuf;
	int			nkeys;
	JsonbParseState *state = NULL;
	JsonbValue *res;
	Jsonb	   *result;
	StringInfoData buf;
	char		ts[32];
	int			tslen;
	int64		timestamp;

	RequireArgument(fcinfo, 0, "scheme");
	RequireArgument(fcinfo, 1, "secret");
	RequireArgument(fcinfo, 2, "body");

	scheme = SchemeFromText(PG_GETARG_TEXT_PP(0));
	secret = PG_GETARG_TEXT_PP(1);
	body = PG_GETARG_TEXT_PP(2);
	bodyp = VARDATA_ANY(body);
	bodylen = VARSIZE_ANY_EXHDR(body);

	nkeys = KeysFromText(scheme, secret, &keys, &keybuf);

	if (PG_ARGISNULL(4))
		timestamp = UnixNow();
	else
	{
		timestamp = PG_GETARG_INT64(4);
		if (timestamp < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timestamp must not be negative"),
					 errdetail("The timestamp is in seconds since 1970-01-01 00:00:00 UTC.")));
	}
	tslen = snprintf(ts, sizeof(ts), INT64_FORMAT, timestamp);

	initStringInfo(&buf);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);

	switch (scheme)
	{
		case SCHEME_STANDARD:
			{
				char	   *msg_id;
				size_t		idlen;

				if (PG_ARGISNULL(3))
					msg_id = GenerateMessageId();
				else
					msg_id = text_to_cstring(PG_GETARG_TEXT_PP(3));
				idlen = strlen(msg_id);
				if (idlen == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("msg_id must not be empty"),
							 errhint("Pass NULL to generate a message id.")));

				if (!AppendStandardSignatures(&buf, keys, nkeys, msg_id, idlen,
											  ts, tslen, bodyp, bodylen))
					ReportHmacFailure();
				PushHeader(&state, "webhook-id", msg_id, idlen);
				PushHeader(&state, "webhook-timestamp", ts, tslen);
				PushHeader(&state, "webhook-signature", buf.data, buf.len);
				break;
			}

		case SCHEME_STRIPE:
			appendStringInfo(&buf, "t=%s", ts);
			for (int i = 0; i < nkeys; i++)
			{
				unsigned char mac[SHA256_LEN];
				char		hex[SHA256_HEX_LEN];

				if (!Sha256Mac(&keys[i], NULL, 0, ts, tslen, bodyp, bodylen, mac))
					ReportHmacFailure();
				HexEncode(mac, SHA256_LEN, hex);
				appendStringInfoString(&buf, ",v1=");
				appendBinaryStringInfo(&buf, hex, SHA256_HEX_LEN);
			}
			PushHeader(&state, "Stripe-Signature", buf.data, buf.len);
			break;

		case SCHEME_SHOPIFY:
		case SCHEME_WOOCOMMERCE:
			{
				unsigned char mac[SHA256_LEN];
				char		b64[SHA256_B64_LEN + 1];
				int			n;

				if (!Sha256Mac(&keys[0], NULL, 0, NULL, 0, bodyp, bodylen, mac))
					ReportHmacFailure();
				n = Base64Encode(mac, SHA256_LEN, b64, sizeof(b64));
				PushHeader(&state,
						   scheme == SCHEME_SHOPIFY ?
						   "X-Shopify-Hmac-Sha256" : "X-WC-Webhook-Signature",
						   b64, n);
				break;
			}

		case SCHEME_GITHUB:
			{
				unsigned char mac[SHA256_LEN];
				char		hex[SHA256_HEX_LEN];

				if (!Sha256Mac(&keys[0], NULL, 0, NULL, 0, bodyp, bodylen, mac))
					ReportHmacFailure();
				HexEncode(mac, SHA256_LEN, hex);
				appendStringInfoString(&buf, "sha256=");
				appendBinaryStringInfo(&buf, hex, SHA256_HEX_LEN);
				PushHeader(&state, "X-Hub-Signature-256", buf.data, buf.len);
				break;
			}
	}

	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	result = JsonbValueToJsonb(res);	/* copies the strings pushed above */

	FreeKeys(keys, keybuf, nkeys);
	pfree(buf.data);
	PG_FREE_IF_COPY(body, 2);
	PG_RETURN_JSONB_P(result);
}

/* A header value found in the request: not NUL-terminated */
typedef struct HeaderValue
{
	const char *val;
	int			len;
	int			count;			/* keys matching the name */
	bool		is_string;
} HeaderValue;

/*
 * Find the named headers (lower-case names) in a jsonb object, matching
 * names case-insensitively.  Returns false unless headers is an object and
 * every name occurs exactly once with a string value.
 */
static bool
FindHeaders(Jsonb *headers, const char *const *names, int nnames,
			HeaderValue *values)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			current = -1;

	if (!JB_ROOT_IS_OBJECT(headers))
		return false;

	memset(values, 0, sizeof(HeaderValue) * nnames);

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			current = -1;
			for (int i = 0; i < nnames; i++)
			{
				if (strlen(names[i]) == (size_t) v.val.string.len &&
					pg_strncasecmp(names[i], v.val.string.val,
								   v.val.string.len) == 0)
				{
					current = i;
					values[i].count++;
					break;
				}
			}
		}
		else if (tok == WJB_VALUE && current >= 0)
		{
			if (v.type == jbvString)
			{
				values[current].is_string = true;
				values[current].val = v.val.string.val;
				values[current].len = v.val.string.len;
			}
			else
				values[current].is_string = false;
			current = -1;
		}
	}

	/* A header sent twice with different spellings is ambiguous */
	for (int i = 0; i < nnames; i++)
		if (values[i].count != 1 || !values[i].is_string)
			return false;
	return true;
}

/* Parse a unix timestamp of 1 to 12 digits; false if malformed */
static bool
ParseTimestamp(const char *s, int len, int64 *result)
{
	int64		v = 0;

	if (len < 1 || len > MAX_TIMESTAMP_DIGITS)
		return false;
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*result = v;
	return true;
}

/*
 * Is the unix timestamp within tolerance (microseconds, non-negative) of
 * now, in either direction?  128-bit arithmetic because both now and the
 * tolerance may be anywhere in their ranges.
 */
static bool
TimestampWithinTolerance(int64 unix_secs, TimestampTz now, INT128 tolerance)
{
	int64		ts = (unix_secs - UNIX_EPOCH_OFFSET_SECS) * USECS_PER_SEC;
	INT128		ahead = int64_to_int128(now);
	INT128		behind = int64_to_int128(ts);

	int128_add_int64(&ahead, -ts);	/* now - ts */
	int128_add_int64(&behind, -now);	/* ts - now */
	return int128_compare(ahead, tolerance) <= 0 &&
		int128_compare(behind, tolerance) <= 0;
}

/* Does the value start with the given prefix? */
static inline bool
HasPrefix(const char *s, size_t len, const char *prefix)
{
	size_t		plen = strlen(prefix);

	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/* Verify Standard Webhooks headers */
static bool
VerifyStandard(Jsonb *headers, const WebhookKey *keys, int nkeys,
			   const char *body, size_t bodylen,
			   TimestampTz now, INT128 tolerance)
{
	static const char *const names[] = {
		"webhook-id", "webhook-timestamp", "webhook-signature"
	};
	HeaderValue h[3];
	int64		ts;
	unsigned char *expected;
	const char *sig;
	size_t		siglen;
	size_t		pos = 0;
	const char *tok;
	size_t		toklen;
	bool		match = false;

	if (!FindHeaders(headers, names, 3, h))
		return false;
	if (h[0].len == 0)
		return false;
	if (!ParseTimestamp(h[1].val, h[1].len, &ts) ||
		!TimestampWithinTolerance(ts, now, tolerance))
		return false;

	expected = palloc((size_t) nkeys * SHA256_LEN);
	for (int k = 0; k < nkeys; k++)
	{
		if (!Sha256Mac(&keys[k], h[0].val, h[0].len, h[1].val, h[1].len,
					   body, bodylen, expected + (size_t) k * SHA256_LEN))
		{
			pfree(expected);
			return false;
		}
	}

	/* Entries of other versions ("v1a,", "v2,") are skipped */
	sig = h[2].val;
	siglen = h[2].len;
	while (NextToken(sig, siglen, &pos, &tok, &toklen))
	{
		unsigned char got[SHA256_LEN];

		if (!HasPrefix(tok, toklen, "v1,") ||
			!DecodeSha256Base64(tok + 3, toklen - 3, got))
			continue;
		for (int k = 0; k < nkeys; k++)
			if (CRYPTO_memcmp(got, expected + (size_t) k * SHA256_LEN,
							  SHA256_LEN) == 0)
				match = true;
	}
	pfree(expected);
	return match;
}

/* Verify a Stripe-Signature header: t=<ts>,v1=<hex>[,v1=<hex>][,v0=...] */
static bool
VerifyStripe(Jsonb *headers, const WebhookKey *keys, int nkeys,
			 const char *body, size_t bodylen,
			 TimestampTz now, INT128 tolerance)
{
	static const char *const names[] = {"stripe-signature"};
	HeaderValue h;
	const char *s;
	size_t		len;
	const char *tsval = NULL;
	int			tslen = 0;
	int64		ts;
	unsigned char *expected;
	bool		match = false;

	if (!FindHeaders(headers, names, 1, &h))
		return false;
	s = h.val;
	len = h.len;

	/* First pass: the single t= item */
	for (size_t start = 0; start <= len;)
	{
		const char *comma = memchr(s + start, ',', len - start);
		size_t		end = comma ? (size_t) (comma - s) : len;

		if (HasPrefix(s + start, end - start, "t="))
		{
			if (tsval != NULL)
				return false;
			tsval = s + start + 2;
			tslen = end - start - 2;
		}
		start = end + 1;
	}
	if (tsval == NULL || !ParseTimestamp(tsval, tslen, &ts) ||
		!TimestampWithinTolerance(ts, now, tolerance))
		return false;

	expected = palloc((size_t) nkeys * SHA256_LEN);
	for (int k = 0; k < nkeys; k++)
	{
		if (!Sha256Mac(&keys[k], NULL, 0, tsval, tslen, body, bodylen,
					   expected + (size_t) k * SHA256_LEN))
		{
			pfree(expected);
			return false;
		}
	}

	/* Second pass: every v1= item; other schemes such as v0= are skipped */
	for (size_t start = 0; start <= len;)
	{
		const char *comma = memchr(s + start, ',', len - start);
		size_t		end = comma ? (size_t) (comma - s) : len;
		unsigned char got[SHA256_LEN];

		if (end - start == 3 + SHA256_HEX_LEN &&
			HasPrefix(s + start, end - start, "v1=") &&
			HexDecode(s + start + 3, SHA256_LEN, got))
		{
			for (int k = 0; k < nkeys; k++)
				if (CRYPTO_memcmp(got, expected + (size_t) k * SHA256_LEN,
								  SHA256_LEN) == 0)
					match = true;
		}
		start = end + 1;
	}
	pfree(expected);
	return match;
}

/* Verify a single base64 or "sha256=<hex>" signature of the body */
static bool
VerifyBodyOnly(WebhookScheme scheme, Jsonb *headers, const WebhookKey *key,
			   const char *body, size_t bodylen)
{
	const char *name;
	HeaderValue h;
	unsigned char mac[SHA256_LEN];

	switch (scheme)
	{
		case SCHEME_SHOPIFY:
			name = "x-shopify-hmac-sha256";
			break;
		case SCHEME_WOOCOMMERCE:
			name = "x-wc-webhook-signature";
			break;
		case SCHEME_GITHUB:
			name = "x-hub-signature-256";
			break;
		default:
			elog(ERROR, "unexpected webhook scheme %d", (int) scheme);
			return false;		/* keep compiler quiet */
	}

	if (!FindHeaders(headers, &name, 1, &h))
		return false;
	if (!Sha256Mac(key, NULL, 0, NULL, 0, body, bodylen, mac))
		return false;

	if (scheme == SCHEME_GITHUB)
	{
		unsigned char got[SHA256_LEN];

		return h.len == 7 + SHA256_HEX_LEN &&
			HasPrefix(h.val, h.len, "sha256=") &&
			HexDecode(h.val + 7, SHA256_LEN, got) &&
			CRYPTO_memcmp(got, mac, SHA256_LEN) == 0;
	}
	else
	{
		unsigned char got[SHA256_LEN];

		return DecodeSha256Base64(h.val, h.len, got) &&
			CRYPTO_memcmp(got, mac, SHA256_LEN) == 0;
	}
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
	WebhookScheme scheme;
	WebhookKey *keys;
	unsigned char *keybuf;
	int			nkeys;
	Interval   *tolerance_iv;
	TimestampTz now;
	INT128		tolerance;
	INT128		zero = int64_to_int128(0);
	Jsonb	   *headers;
	text	   *body;
	bool		result;

	RequireArgument(fcinfo, 0, "scheme");
	RequireArgument(fcinfo, 1, "secret");
	RequireArgument(fcinfo, 4, "tolerance");
	RequireArgument(fcinfo, 5, "now");

	scheme = SchemeFromText(PG_GETARG_TEXT_PP(0));

	tolerance_iv = PG_GETARG_INTERVAL_P(4);
	tolerance = int64_to_int128(tolerance_iv->time);
	int128_add_int64_mul_int64(&tolerance, tolerance_iv->day, USECS_PER_DAY);
	int128_add_int64_mul_int64(&tolerance, tolerance_iv->month,
							   (int64) DAYS_PER_MONTH * USECS_PER_DAY);
	if (int128_compare(tolerance, zero) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance must not be negative")));

	now = PG_GETARG_TIMESTAMPTZ(5);
	if (TIMESTAMP_NOT_FINITE(now))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("now must be finite")));

	nkeys = KeysFromText(scheme, PG_GETARG_TEXT_PP(1), &keys, &keybuf);

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		FreeKeys(keys, keybuf, nkeys);
		PG_RETURN_BOOL(false);
	}
	headers = PG_GETARG_JSONB_P(2);
	body = PG_GETARG_TEXT_PP(3);

	switch (scheme)
	{
		case SCHEME_STANDARD:
			result = VerifyStandard(headers, keys, nkeys, VARDATA_ANY(body),
									VARSIZE_ANY_EXHDR(body), now, tolerance);
			break;
		case SCHEME_STRIPE:
			result = VerifyStripe(headers, keys, nkeys, VARDATA_ANY(body),
								  VARSIZE_ANY_EXHDR(body), now, tolerance);
			break;
		default:
			result = VerifyBodyOnly(scheme, headers, &keys[0],
									VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
			break;
	}

	FreeKeys(keys, keybuf, nkeys);
	PG_FREE_IF_COPY(body, 3);
	PG_RETURN_BOOL(result);
}

/*
 * integration.generate_secret() RETURNS text
 */
Datum
integration_generate_secret(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(webhook_generate_secret()));
}

/*
 * integration.validate_secret(secret text) RETURNS text
 */
Datum
integration_validate_secret(PG_FUNCTION_ARGS)
{
	text	   *secret = PG_GETARG_TEXT_PP(0);
	WebhookKey *keys;
	unsigned char *keybuf;
	int			nkeys;

	nkeys = KeysFromText(SCHEME_STANDARD, secret, &keys, &keybuf);
	FreeKeys(keys, keybuf, nkeys);
	PG_RETURN_TEXT_P(secret);
}
