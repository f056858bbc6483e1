/*-------------------------------------------------------------------------
 *
 * signature.c
 *	  The signer table: one entry per webhook signature scheme senders use
 *	  (Standard Webhooks, Stripe, Shopify, WooCommerce, GitHub, HubSpot v3
 *	  and Adyen), each with how its secret becomes keys, its sign and verify
 *	  functions and its header names; and the random secrets and message ids.
 *
 * Callers are the SQL functions in signature_sql.c and the delivery worker,
 * so nothing here ereports for a bad secret or a malformed request: a bad
 * secret is reported through *error, and verifiers answer false.  Received
 * values are parsed with explicit lengths (jsonb strings are not
 * NUL-terminated) and every signature is compared with CRYPTO_memcmp, as
 * decoded bytes rather than text.
 *
 * Key rotation: for "standard" and "stripe" the secret may be several
 * secrets separated by spaces (neither format can contain a space); signing
 * emits one signature per secret and verifying accepts a match with any of
 * them.  Shopify, WooCommerce and GitHub secrets are arbitrary strings that
 * may contain spaces (GitHub's own example does), so for them the whole
 * string is the one key.  HubSpot's client secret is one key too; Adyen's
 * HMAC keys are hex, so they can be a list like Stripe's.
 *
 * HubSpot v3 signs the request method and URI as well as the body: verify
 * reads them from the pseudo-headers ":method" and ":uri" (signature.h).
 * Adyen signs each item of a notification inside the JSON body, so its
 * verify function lives with the notification parser (adyen_notification.c)
 * and the scheme has no sign function here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "adyen_notification.h"
#include "common/base64.h"
#include "hmac.h"
#include "lib/stringinfo.h"
#include "signature.h"

/* A secret as HMAC key bytes */
typedef struct WebhookKey
{
	const unsigned char *data;
	size_t		len;
} WebhookKey;

/* See signature.h */
struct WebhookKeySet
{
	int			nkeys;
	unsigned char *material;	/* decoded keys, wiped when freed; or NULL */
	size_t		materiallen;
	WebhookKey	keys[FLEXIBLE_ARRAY_MEMBER];
};

/* Positions in the signer table */
typedef enum SignerIndex
{
	SIGNER_STANDARD,
	SIGNER_STRIPE,
	SIGNER_SHOPIFY,
	SIGNER_WOOCOMMERCE,
	SIGNER_GITHUB,
	SIGNER_HUBSPOT,
	SIGNER_ADYEN
} SignerIndex;

/* Positions of the Standard Webhooks headers */
typedef enum StandardHeader
{
	STANDARD_ID,
	STANDARD_TIMESTAMP,
	STANDARD_SIGNATURE
} StandardHeader;

/* Decoded Standard Webhooks keys are 24 to 64 bytes */
#define STANDARD_KEY_MIN 24
#define STANDARD_KEY_MAX 64
#define STANDARD_SECRET_PREFIX "whsec_"
#define GENERATED_SECRET_BYTES 32

/* HMAC-SHA256 sizes */
#define SHA256_LEN 32
#define SHA256_B64_LEN 44		/* padded base64 of 32 bytes */
#define SHA256_HEX_LEN 64

/* Timestamps: at most 12 digits, so converting to microseconds cannot overflow */
#define MAX_TIMESTAMP_DIGITS 12
/* Millisecond timestamps (hubspot): at most 15 digits, for the same reason */
#define MAX_TIMESTAMP_MS_DIGITS 15
#define UNIX_EPOCH_OFFSET_SECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* Room for a formatted int64 */
#define TIMESTAMP_BUFSIZE 32

static const char error_empty[] = "webhook secret is empty";
static const char error_base64[] = "webhook secret is not valid base64";
static const char error_urlsafe[] = "webhook secret uses the URL-safe base64 alphabet";
static const char error_padding[] = "webhook secret is base64 without its \"=\" padding";
static const char error_count[] = "too many webhook secrets";
static const char error_size[] = "webhook secret must decode to 24 to 64 bytes";
static const char error_hmac[] = "could not compute HMAC";
static const char error_msg_id[] = "webhook message id is empty";
static const char error_hex[] = "HMAC key is not hexadecimal";
static const char error_hex_odd[] = "HMAC key has an odd number of hex digits";
static const char error_hex_size[] = "HMAC key is longer than 128 bytes";

/* Longest hex key accepted, in bytes (Adyen's are 32) */
#define HEX_KEY_MAX 128

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
 *
 * Only what the official Standard Webhooks libraries decode to the same
 * key is accepted: the standard alphabet with its padding.  Python's
 * b64decode() drops "-" and "_" and so decodes another key, and refuses
 * missing padding; a secret that the receiver cannot use is refused here
 * rather than signing deliveries nobody can verify.
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
		if (s[i] == '-' || s[i] == '_')
		{
			*error = error_urlsafe;
			return -1;
		}
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
	if (len % 4 != 0)
	{
		explicit_bzero(buf, sizeof(buf));
		*error = error_padding;
		return -1;
	}
	memcpy(dst, buf, n);
	explicit_bzero(buf, sizeof(buf));
	return n;
}

/*
 * Decode the space-separated hex keys of secret into set (whose nkeys is
 * their number), in one wiped allocation.  False with *error set, and set
 * freed, if one is not an even number of hex digits or is too long.
 */
static bool
ParseHexKeys(WebhookKeySet *set, const char *secret, size_t len,
			 const char **error)
{
	size_t		pos = 0;
	const char *tok;
	size_t		toklen;

	set->materiallen = (size_t) set->nkeys * HEX_KEY_MAX;
	set->material = palloc(set->materiallen);
	for (int i = 0; NextToken(secret, len, &pos, &tok, &toklen); i++)
	{
		unsigned char *dst = set->material + (size_t) i * HEX_KEY_MAX;

		*error = toklen % 2 != 0 ? error_hex_odd :
			toklen / 2 > HEX_KEY_MAX ? error_hex_size :
			!HexDecode(tok, toklen / 2, dst) ? error_hex : NULL;
		if (*error != NULL)
		{
			WebhookSignerFreeKeys(set);
			return false;
		}
		set->keys[i].data = dst;
		set->keys[i].len = toklen / 2;
	}
	return true;
}

/*
 * See signature.h.  Keys are counted first so that one allocation holds
 * them all.
 */
WebhookKeySet *
WebhookSignerParseSecret(const WebhookSigner *s, const char *secret,
						 size_t len, const char **error)
{
	WebhookKeySet *set;
	int			n;
	size_t		pos = 0;
	const char *tok;
	size_t		toklen;

	if (s->key_format == WEBHOOK_KEY_RAW)
	{
		if (len == 0)
		{
			*error = error_empty;
			return NULL;
		}
		set = palloc0(offsetof(WebhookKeySet, keys) + sizeof(WebhookKey));
		set->nkeys = 1;
		set->keys[0].data = (const unsigned char *) secret;
		set->keys[0].len = len;
		return set;
	}

	n = CountTokens(secret, len);
	if (n == 0)
	{
		*error = error_empty;
		return NULL;
	}
	if (n > WEBHOOK_MAX_SECRETS)
	{
		*error = error_count;
		return NULL;
	}
	set = palloc0(offsetof(WebhookKeySet, keys) + sizeof(WebhookKey) * n);
	set->nkeys = n;

	if (s->key_format == WEBHOOK_KEY_RAW_LIST)
	{
		for (int i = 0; NextToken(secret, len, &pos, &tok, &toklen); i++)
		{
			set->keys[i].data = (const unsigned char *) tok;
			set->keys[i].len = toklen;
		}
		return set;
	}

	if (s->key_format == WEBHOOK_KEY_HEX_LIST)
		return ParseHexKeys(set, secret, len, error) ? set : NULL;

	Assert(s->key_format == WEBHOOK_KEY_STANDARD);
	set->materiallen = (size_t) n * STANDARD_KEY_MAX;
	set->material = palloc(set->materiallen);
	for (int i = 0; NextToken(secret, len, &pos, &tok, &toklen); i++)
	{
		unsigned char *dst = set->material + (size_t) i * STANDARD_KEY_MAX;
		int			keylen = DecodeStandardSecret(tok, toklen, dst, error);

		if (keylen < 0)
		{
			WebhookSignerFreeKeys(set);
			return NULL;
		}
		set->keys[i].data = dst;
		set->keys[i].len = keylen;
	}
	return set;
}

/* See signature.h */
void
WebhookSignerFreeKeys(WebhookKeySet *keys)
{
	if (keys == NULL)
		return;
	if (keys->material != NULL)
	{
		explicit_bzero(keys->material, keys->materiallen);
		pfree(keys->material);
	}
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

	if (!WebhookHmac(WEBHOOK_HMAC_SHA256, key->data, key->len,
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
AppendStandardSignatures(StringInfo buf, const WebhookKeySet *keys,
						 const char *id, size_t idlen,
						 const char *ts, size_t tslen,
						 const char *body, size_t bodylen)
{
	for (int i = 0; i < keys->nkeys; i++)
	{
		unsigned char mac[SHA256_LEN];
		char		b64[SHA256_B64_LEN + 1];
		int			n;

		if (!Sha256Mac(&keys->keys[i], id, idlen, ts, tslen, body, bodylen, mac))
			return false;
		n = Base64Encode(mac, SHA256_LEN, b64, sizeof(b64));
		if (i > 0)
			appendStringInfoChar(buf, ' ');
		appendStringInfoString(buf, "v1,");
		appendBinaryStringInfo(buf, b64, n);
	}
	return true;
}

/* Parse 1 to maxdigits decimal digits (at most 18); false if malformed */
static bool
ParseDigits(const char *s, int len, int maxdigits, int64 *result)
{
	int64		v = 0;

	if (len < 1 || len > maxdigits)
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

/* Parse a unix timestamp of 1 to 12 digits; false if malformed */
static bool
ParseTimestamp(const char *s, int len, int64 *result)
{
	return ParseDigits(s, len, MAX_TIMESTAMP_DIGITS, result);
}

/*
 * Is the time, in microseconds since the unix epoch, within the window's
 * tolerance of its now, in either direction?  128-bit arithmetic because both
 * now and the tolerance may be anywhere in their ranges.
 */
static bool
UnixUsecsWithinTolerance(int64 unix_usecs, const WebhookTimeWindow *window)
{
	TimestampTz now = window->now;
	INT128		tolerance = window->tolerance;
	int64		ts = unix_usecs - UNIX_EPOCH_OFFSET_SECS * USECS_PER_SEC;
	INT128		ahead = int64_to_int128(now);
	INT128		behind = int64_to_int128(ts);

	int128_add_int64(&ahead, -ts);	/* now - ts */
	int128_add_int64(&behind, -now);	/* ts - now */
	return int128_compare(ahead, tolerance) <= 0 &&
		int128_compare(behind, tolerance) <= 0;
}

/* The same for unix seconds */
static bool
TimestampWithinTolerance(int64 unix_secs, const WebhookTimeWindow *window)
{
	return UnixUsecsWithinTolerance(unix_secs * USECS_PER_SEC, window);
}

/* Does the value start with the given prefix? */
static inline bool
HasPrefix(const char *s, size_t len, const char *prefix)
{
	size_t		plen = strlen(prefix);

	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/* Decimal unix seconds into buf (TIMESTAMP_BUFSIZE); returns the length */
static int
FormatTimestamp(int64 timestamp, char *buf)
{
	return snprintf(buf, TIMESTAMP_BUFSIZE, INT64_FORMAT, timestamp);
}

/*
 * Any of the MACs expected under each key equal to got?  Every key is
 * compared, so the time taken does not tell which one matched.
 */
static bool
MatchesAnyKey(const unsigned char *got, const unsigned char *expected,
			  int nkeys)
{
	bool		match = false;

	for (int k = 0; k < nkeys; k++)
		if (CRYPTO_memcmp(got, expected + (size_t) k * SHA256_LEN,
						  SHA256_LEN) == 0)
			match = true;
	return match;
}

/*
 * Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature,
 * "v1,<base64>" of HMAC(id.timestamp.body) per key.
 */
static bool
SignStandard(const WebhookKeySet *keys, const WebhookMessage *msg,
			 char **values)
{
	char		ts[TIMESTAMP_BUFSIZE];
	int			tslen = FormatTimestamp(msg->timestamp, ts);
	StringInfoData buf;

	initStringInfo(&buf);
	if (!AppendStandardSignatures(&buf, keys, msg->msg_id, strlen(msg->msg_id),
								  ts, tslen, msg->body, msg->bodylen))
	{
		pfree(buf.data);
		return false;
	}
	values[STANDARD_ID] = pstrdup(msg->msg_id);
	values[STANDARD_TIMESTAMP] = pstrdup(ts);
	values[STANDARD_SIGNATURE] = buf.data;
	return true;
}

/* Verify Standard Webhooks headers */
static bool
VerifyStandard(const WebhookKeySet *keys, const WebhookHeaderValue *h,
			   const char *body, size_t bodylen,
			   const WebhookTimeWindow *window)
{
	const WebhookHeaderValue *id = &h[STANDARD_ID];
	const WebhookHeaderValue *tsh = &h[STANDARD_TIMESTAMP];
	int64		ts;
	unsigned char *expected;
	size_t		pos = 0;
	const char *tok;
	size_t		toklen;
	bool		match = false;

	if (id->len == 0 ||
		CountTokens(h[STANDARD_SIGNATURE].val,
					h[STANDARD_SIGNATURE].len) > WEBHOOK_MAX_SECRETS)
		return false;
	if (!ParseTimestamp(tsh->val, tsh->len, &ts) ||
		!TimestampWithinTolerance(ts, window))
		return false;

	expected = palloc((size_t) keys->nkeys * SHA256_LEN);
	for (int k = 0; k < keys->nkeys; k++)
	{
		if (!Sha256Mac(&keys->keys[k], id->val, id->len, tsh->val, tsh->len,
					   body, bodylen, expected + (size_t) k * SHA256_LEN))
		{
			pfree(expected);
			return false;
		}
	}

	/* Entries of other versions ("v1a,", "v2,") are skipped */
	while (NextToken(h[STANDARD_SIGNATURE].val, h[STANDARD_SIGNATURE].len,
					 &pos, &tok, &toklen))
	{
		unsigned char got[SHA256_LEN];

		if (!HasPrefix(tok, toklen, "v1,") ||
			!DecodeSha256Base64(tok + 3, toklen - 3, got))
			continue;
		if (MatchesAnyKey(got, expected, keys->nkeys))
			match = true;
	}
	pfree(expected);
	return match;
}

/* Stripe: Stripe-Signature, "t=<ts>,v1=<hex>" with one v1 per key */
static bool
SignStripe(const WebhookKeySet *keys, const WebhookMessage *msg,
		   char **values)
{
	char		ts[TIMESTAMP_BUFSIZE];
	int			tslen = FormatTimestamp(msg->timestamp, ts);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "t=%s", ts);
	for (int i = 0; i < keys->nkeys; i++)
	{
		unsigned char mac[SHA256_LEN];
		char		hex[SHA256_HEX_LEN];

		if (!Sha256Mac(&keys->keys[i], NULL, 0, ts, tslen,
					   msg->body, msg->bodylen, mac))
		{
			pfree(buf.data);
			return false;
		}
		HexEncode(mac, SHA256_LEN, hex);
		appendStringInfoString(&buf, ",v1=");
		appendBinaryStringInfo(&buf, hex, SHA256_HEX_LEN);
	}
	values[0] = buf.data;
	return true;
}

/* Verify a Stripe-Signature header: t=<ts>,v1=<hex>[,v1=<hex>][,v0=...] */
static bool
VerifyStripe(const WebhookKeySet *keys, const WebhookHeaderValue *h,
			 const char *body, size_t bodylen,
			 const WebhookTimeWindow *window)
{
	const char *s = h[0].val;
	size_t		len = h[0].len;
	const char *tsval = NULL;
	int			tslen = 0;
	int64		ts;
	unsigned char *expected;
	bool		match = false;
	int			nitems = 0;

	/*
	 * First pass: the single t= item, and the number of items: at most one
	 * signature per secret besides it
	 */
	for (size_t start = 0; start <= len;)
	{
		const char *comma = memchr(s + start, ',', len - start);
		size_t		end = comma ? (size_t) (comma - s) : len;

		if (++nitems > WEBHOOK_MAX_SECRETS + 1)
			return false;
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
		!TimestampWithinTolerance(ts, window))
		return false;

	expected = palloc((size_t) keys->nkeys * SHA256_LEN);
	for (int k = 0; k < keys->nkeys; k++)
	{
		if (!Sha256Mac(&keys->keys[k], NULL, 0, tsval, tslen, body, bodylen,
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
			HexDecode(s + start + 3, SHA256_LEN, got) &&
			MatchesAnyKey(got, expected, keys->nkeys))
			match = true;
		start = end + 1;
	}
	pfree(expected);
	return match;
}

/* Shopify and WooCommerce: one header, base64 of HMAC(body) */
static bool
SignBodyBase64(const WebhookKeySet *keys, const WebhookMessage *msg,
			   char **values)
{
	unsigned char mac[SHA256_LEN];
	char		b64[SHA256_B64_LEN + 1];
	int			n;

	if (!Sha256Mac(&keys->keys[0], NULL, 0, NULL, 0, msg->body, msg->bodylen,
				   mac))
		return false;
	n = Base64Encode(mac, SHA256_LEN, b64, sizeof(b64));
	values[0] = pnstrdup(b64, n);
	return true;
}

/* Verify a single base64 signature of the body */
static bool
VerifyBodyBase64(const WebhookKeySet *keys, const WebhookHeaderValue *h,
				 const char *body, size_t bodylen,
				 const WebhookTimeWindow *window)
{
	unsigned char mac[SHA256_LEN];
	unsigned char got[SHA256_LEN];

	if (!Sha256Mac(&keys->keys[0], NULL, 0, NULL, 0, body, bodylen, mac))
		return false;
	return DecodeSha256Base64(h[0].val, h[0].len, got) &&
		CRYPTO_memcmp(got, mac, SHA256_LEN) == 0;
}

/* GitHub: X-Hub-Signature-256, "sha256=<hex>" of HMAC(body) */
static bool
SignGithub(const WebhookKeySet *keys, const WebhookMessage *msg,
		   char **values)
{
	unsigned char mac[SHA256_LEN];
	char		hex[SHA256_HEX_LEN];
	StringInfoData buf;

	if (!Sha256Mac(&keys->keys[0], NULL, 0, NULL, 0, msg->body, msg->bodylen,
				   mac))
		return false;
	HexEncode(mac, SHA256_LEN, hex);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "sha256=");
	appendBinaryStringInfo(&buf, hex, SHA256_HEX_LEN);
	values[0] = buf.data;
	return true;
}

/* Verify a "sha256=<hex>" signature of the body */
static bool
VerifyGithub(const WebhookKeySet *keys, const WebhookHeaderValue *h,
			 const char *body, size_t bodylen,
			 const WebhookTimeWindow *window)
{
	unsigned char mac[SHA256_LEN];
	unsigned char got[SHA256_LEN];

	if (!Sha256Mac(&keys->keys[0], NULL, 0, NULL, 0, body, bodylen, mac))
		return false;
	return h[0].len == 7 + SHA256_HEX_LEN &&
		HasPrefix(h[0].val, h[0].len, "sha256=") &&
		HexDecode(h[0].val + 7, SHA256_LEN, got) &&
		CRYPTO_memcmp(got, mac, SHA256_LEN) == 0;
}

/* HMAC-SHA256 of the concatenated parts under one key */
static bool
Sha256Parts(const WebhookKey *key, const WebhookHmacPart *parts, int nparts,
			unsigned char *mac)
{
	size_t		maclen;

	if (!WebhookHmac(WEBHOOK_HMAC_SHA256, key->data, key->len,
					 parts, nparts, mac, &maclen))
		return false;
	Assert(maclen == SHA256_LEN);
	return true;
}

/* Positions of the HubSpot v3 headers, then of the request line */
typedef enum HubspotValue
{
	HUBSPOT_SIGNATURE,
	HUBSPOT_TIMESTAMP,
	HUBSPOT_METHOD,
	HUBSPOT_URI
} HubspotValue;

#define HUBSPOT_PARTS 4

/*
 * The characters HubSpot v3 decodes in the URI before signing when they
 * arrive percent-encoded, as its request-validation guide lists them; any
 * other percent-encoding is signed as it is.
 */
static const char hubspot_decoded_chars[] = ":/?@!$'()*,;";

/* Append the URI as HubSpot v3 signs it: the listed characters decoded */
static void
AppendHubspotUri(StringInfo buf, const char *uri, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (uri[i] == '%' && len - i >= 3)
		{
			int			hi = HexValue((unsigned char) uri[i + 1]);
			int			lo = HexValue((unsigned char) uri[i + 2]);

			/* Only a valid escape is decoded: -1 << 4 is undefined in C. */
			char		c = (hi >= 0 && lo >= 0) ? (char) ((hi << 4) | lo) : '\0';

			if (c != '\0' &&
				strchr(hubspot_decoded_chars, c) != NULL)
			{
				appendStringInfoChar(buf, c);
				i += 2;
				continue;
			}
		}
		appendStringInfoChar(buf, uri[i]);
	}
}

/*
 * The signed content of HubSpot v3, method + URI + body + timestamp, as
 * HMAC parts; uri is the URI already decoded by AppendHubspotUri
 */
static void
HubspotParts(WebhookHmacPart *parts, const char *method, size_t methodlen,
			 const StringInfo uri, const char *body, size_t bodylen,
			 const char *ts, size_t tslen)
{
	parts[0].data = method;
	parts[0].len = methodlen;
	parts[1].data = uri->data;
	parts[1].len = uri->len;
	parts[2].data = body;
	parts[2].len = bodylen;
	parts[3].data = ts;
	parts[3].len = tslen;
}

/*
 * HubSpot v3: X-HubSpot-Signature-v3, base64 of HMAC(method + URI + body +
 * timestamp), and X-HubSpot-Request-Timestamp in unix milliseconds
 */
static bool
SignHubspot(const WebhookKeySet *keys, const WebhookMessage *msg,
			char **values)
{
	char		ts[TIMESTAMP_BUFSIZE];
	int			tslen = FormatTimestamp(msg->timestamp, ts);
	StringInfoData uri;
	WebhookHmacPart parts[HUBSPOT_PARTS];
	unsigned char mac[SHA256_LEN];
	char		b64[SHA256_B64_LEN + 1];
	bool		ok;

	Assert(msg->method != NULL && msg->uri != NULL);
	initStringInfo(&uri);
	AppendHubspotUri(&uri, msg->uri, strlen(msg->uri));
	HubspotParts(parts, msg->method, strlen(msg->method), &uri,
				 msg->body, msg->bodylen, ts, tslen);
	ok = Sha256Parts(&keys->keys[0], parts, HUBSPOT_PARTS, mac);
	pfree(uri.data);
	if (!ok)
		return false;
	values[HUBSPOT_SIGNATURE] =
		pnstrdup(b64, Base64Encode(mac, SHA256_LEN, b64, sizeof(b64)));
	values[HUBSPOT_TIMESTAMP] = pstrdup(ts);
	return true;
}

/*
 * Verify HubSpot v3 headers against the request line.  HubSpot asks
 * receivers to reject timestamps older than five minutes; the window here is
 * the caller's tolerance, in both directions as for the other schemes.
 */
static bool
VerifyHubspot(const WebhookKeySet *keys, const WebhookHeaderValue *h,
			  const char *body, size_t bodylen,
			  const WebhookTimeWindow *window)
{
	const WebhookHeaderValue *tsh = &h[HUBSPOT_TIMESTAMP];
	int64		ms;
	StringInfoData uri;
	WebhookHmacPart parts[HUBSPOT_PARTS];
	bool		match;

	if (h[HUBSPOT_METHOD].len == 0 || h[HUBSPOT_URI].len == 0)
		return false;
	if (!ParseDigits(tsh->val, tsh->len, MAX_TIMESTAMP_MS_DIGITS, &ms) ||
		!UnixUsecsWithinTolerance(ms * INT64CONST(1000), window))
		return false;

	initStringInfo(&uri);
	AppendHubspotUri(&uri, h[HUBSPOT_URI].val, h[HUBSPOT_URI].len);
	HubspotParts(parts, h[HUBSPOT_METHOD].val, h[HUBSPOT_METHOD].len, &uri,
				 body, bodylen, tsh->val, tsh->len);
	match = WebhookSha256Base64Matches(keys, parts, HUBSPOT_PARTS,
									   h[HUBSPOT_SIGNATURE].val,
									   h[HUBSPOT_SIGNATURE].len);
	pfree(uri.data);
	return match;
}

/* The signer table (see signature.h) */
const WebhookSigner webhook_signers[] = {
	[SIGNER_STANDARD] = {
		.name = "standard",
		.key_format = WEBHOOK_KEY_STANDARD,
		.signs_msg_id = true,
		.signs_timestamp = true,
		.nheaders = 3,
		.headers = {
			[STANDARD_ID] = "webhook-id",
			[STANDARD_TIMESTAMP] = "webhook-timestamp",
			[STANDARD_SIGNATURE] = "webhook-signature",
		},

		/*
		 * The Svix-branded names of the same headers, which Svix's own
		 * libraries accept as well
		 */
		.aliases = {
			[STANDARD_ID] = "svix-id",
			[STANDARD_TIMESTAMP] = "svix-timestamp",
			[STANDARD_SIGNATURE] = "svix-signature",
		},
		.sign = SignStandard,
		.verify = VerifyStandard,
	},
	[SIGNER_STRIPE] = {
		.name = "stripe",
		.key_format = WEBHOOK_KEY_RAW_LIST,
		.signs_timestamp = true,
		.nheaders = 1,
		.headers = {"Stripe-Signature"},
		.sign = SignStripe,
		.verify = VerifyStripe,
	},
	[SIGNER_SHOPIFY] = {
		.name = "shopify",
		.key_format = WEBHOOK_KEY_RAW,
		.nheaders = 1,
		.headers = {"X-Shopify-Hmac-Sha256"},
		.sign = SignBodyBase64,
		.verify = VerifyBodyBase64,
	},
	[SIGNER_WOOCOMMERCE] = {
		.name = "woocommerce",
		.key_format = WEBHOOK_KEY_RAW,
		.nheaders = 1,
		.headers = {"X-WC-Webhook-Signature"},
		.sign = SignBodyBase64,
		.verify = VerifyBodyBase64,
	},
	[SIGNER_GITHUB] = {
		.name = "github",
		.key_format = WEBHOOK_KEY_RAW,
		.nheaders = 1,
		.headers = {"X-Hub-Signature-256"},
		.sign = SignGithub,
		.verify = VerifyGithub,
	},
	[SIGNER_HUBSPOT] = {
		.name = "hubspot",
		.key_format = WEBHOOK_KEY_RAW,
		.signs_timestamp = true,
		.timestamp_ms = true,
		.signs_request_target = true,
		.nheaders = 2,
		.headers = {
			[HUBSPOT_SIGNATURE] = "X-HubSpot-Signature-v3",
			[HUBSPOT_TIMESTAMP] = "X-HubSpot-Request-Timestamp",
		},
		.sign = SignHubspot,
		.verify = VerifyHubspot,
	},
	[SIGNER_ADYEN] = {
		.name = "adyen",
		.key_format = WEBHOOK_KEY_HEX_LIST,
		.nheaders = 0,
		.verify = AdyenVerifyNotificationBody,
		.sign_hint = "An Adyen notification carries one signature inside each of its items: add them with integration.adyen_sign_item().",
	},
};

const int	webhook_num_signers = lengthof(webhook_signers);

/* See signature.h */
const WebhookSigner *
WebhookSignerLookup(const char *scheme)
{
	for (int i = 0; i < webhook_num_signers; i++)
		if (pg_strcasecmp(webhook_signers[i].name, scheme) == 0)
			return &webhook_signers[i];
	return NULL;
}

/* See signature.h */
int
WebhookKeyCount(const WebhookKeySet *keys)
{
	return keys->nkeys;
}

/* See signature.h */
bool
WebhookSha256Base64Matches(const WebhookKeySet *keys,
						   const WebhookHmacPart *parts, int nparts,
						   const char *received, size_t receivedlen)
{
	unsigned char got[SHA256_LEN];
	unsigned char *expected;
	bool		match;

	if (!DecodeSha256Base64(received, receivedlen, got))
		return false;
	expected = palloc((size_t) keys->nkeys * SHA256_LEN);
	for (int k = 0; k < keys->nkeys; k++)
	{
		if (!Sha256Parts(&keys->keys[k], parts, nparts,
						 expected + (size_t) k * SHA256_LEN))
		{
			pfree(expected);
			return false;
		}
	}
	match = MatchesAnyKey(got, expected, keys->nkeys);
	pfree(expected);
	return match;
}

/* See signature.h */
bool
WebhookSha256Base64(const WebhookKeySet *keys, int k,
					const WebhookHmacPart *parts, int nparts, char *out)
{
	unsigned char mac[SHA256_LEN];
	int			n;

	Assert(k >= 0 && k < keys->nkeys);
	if (!Sha256Parts(&keys->keys[k], parts, nparts, mac))
		return false;
	n = Base64Encode(mac, SHA256_LEN, out, WEBHOOK_SHA256_BASE64_LEN + 1);
	out[n] = '\0';
	return true;
}

/* See signature.h */
bool
WebhookSignerSign(const WebhookSigner *s, const WebhookKeySet *keys,
				  const WebhookMessage *msg, WebhookHeader *out, int *nout,
				  const char **error)
{
	char	   *values[WEBHOOK_SIGNER_MAX_HEADERS];

	Assert(!s->signs_msg_id || msg->msg_id != NULL);
	if (!s->sign(keys, msg, values))
	{
		*error = error_hmac;
		return false;
	}
	for (int i = 0; i < s->nheaders; i++)
	{
		out[i].name = s->headers[i];
		out[i].value = values[i];
	}
	*nout = s->nheaders;
	return true;
}

/*
 * Sign one message with a secret string, for the worker.  An empty msg_id
 * is refused only when check_msg_id is set: WebhookStandardSignature()
 * has always signed whatever id it was given.
 */
static bool
SignWithSecret(const WebhookSigner *s, const char *secret, bool check_msg_id,
			   const WebhookMessage *msg, WebhookHeader *out, int *nout,
			   const char **error)
{
	WebhookKeySet *keys;
	bool		ok;

	if (secret == NULL)
	{
		*error = error_empty;
		return false;
	}
	keys = WebhookSignerParseSecret(s, secret, strlen(secret), error);
	if (keys == NULL)
		return false;
	if (s->signs_msg_id && check_msg_id &&
		(msg->msg_id == NULL || msg->msg_id[0] == '\0'))
	{
		WebhookSignerFreeKeys(keys);
		*error = error_msg_id;
		return false;
	}
	ok = WebhookSignerSign(s, keys, msg, out, nout, error);
	WebhookSignerFreeKeys(keys);
	return ok;
}

/* See signature.h */
bool
WebhookSignerHeaders(const WebhookSigner *s, const char *secret,
					 const char *msg_id, int64 timestamp,
					 const char *body, size_t len,
					 WebhookHeader *out, int *nout, const char **error)
{
	WebhookMessage msg;

	msg.msg_id = msg_id;
	msg.timestamp = timestamp;
	msg.body = body;
	msg.bodylen = len;
	return SignWithSecret(s, secret, true, &msg, out, nout, error);
}

/* See signature.h */
char *
WebhookStandardSignature(const char *secrets, const char *msg_id,
						 int64 timestamp, const char *body, size_t bodylen,
						 const char **error)
{
	const WebhookSigner *s = &webhook_signers[SIGNER_STANDARD];
	WebhookMessage msg;
	WebhookHeader out[WEBHOOK_SIGNER_MAX_HEADERS];
	int			nout;

	Assert(msg_id != NULL);
	msg.msg_id = msg_id;
	msg.timestamp = timestamp;
	msg.body = body;
	msg.bodylen = bodylen;
	if (!SignWithSecret(s, secrets, false, &msg, out, &nout, error))
		return NULL;
	pfree(out[STANDARD_ID].value);
	pfree(out[STANDARD_TIMESTAMP].value);
	return out[STANDARD_SIGNATURE].value;
}

/* See signature.h */
bool
WebhookSecretIsValid(const char *secrets, const char **error)
{
	WebhookKeySet *keys;

	if (secrets == NULL)
	{
		*error = error_empty;
		return false;
	}
	keys = WebhookSignerParseSecret(&webhook_signers[SIGNER_STANDARD],
									secrets, strlen(secrets), error);
	if (keys == NULL)
		return false;
	WebhookSignerFreeKeys(keys);
	return true;
}

/* See signature.h */
const char *
WebhookSecretErrorHint(const char *error)
{
	if (error == error_urlsafe)
		return "The Standard Webhooks libraries that receivers verify with decode only standard base64: replace \"-\" with \"+\" and \"_\" with \"/\", and keep the \"=\" padding, or make a new secret with integration.generate_secret().";
	if (error == error_padding)
		return "The Standard Webhooks libraries that receivers verify with refuse base64 without padding: add \"=\" until the length after \"whsec_\" is a multiple of 4.";
	if (error == error_count)
		return psprintf("A list holds at most %d secrets; remove those that receivers no longer use.",
						WEBHOOK_MAX_SECRETS);
	if (error == error_hex || error == error_hex_odd || error == error_hex_size)
		return "An Adyen HMAC key is the string of hex digits the Customer Area shows (64 for 32 bytes); separate several keys with spaces.";
	return NULL;
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
WebhookGenerateSecret(void)
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
