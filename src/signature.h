/*-------------------------------------------------------------------------
 *
 * signature.h
 *	  Webhook signature schemes as one table of signers: Standard Webhooks,
 *	  Stripe, Shopify, WooCommerce, GitHub, HubSpot (v3) and Adyen.  The SQL
 *	  functions sign() and verify() and the delivery worker look schemes up
 *	  in the same table, so a scheme is added in one place.
 *
 * Nothing here ereports because of a bad secret or a malformed request:
 * a bad secret comes back through *error (a static message that never
 * echoes the secret), so that the worker can store the problem as the
 * result of one delivery, and verifiers answer false.  Functions still
 * palloc, in the caller's memory context; only the random generators
 * ereport, when OpenSSL cannot produce random bytes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_SIGNATURE_H
#define INTEGRATION_SIGNATURE_H

#include "common/int128.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "hmac.h"

/* Most headers one scheme produces or reads (standard: id, timestamp, signature) */
#define WEBHOOK_SIGNER_MAX_HEADERS 3

/*
 * Most secrets in one space-separated list (standard, stripe), and so most
 * signatures one header carries: verify answers false to a header with
 * more, or to a header value longer than WEBHOOK_VERIFY_MAX_HEADER_BYTES,
 * so that a hostile request costs little.  64 signatures of the largest
 * kind fit in the header limit.
 */
#define WEBHOOK_MAX_SECRETS 64
#define WEBHOOK_VERIFY_MAX_HEADER_BYTES 8192

/*
 * A scheme that signs the request line (hubspot) is verified with the
 * method and the URI the request was sent to, which a receiver passes in the
 * headers object under these two pseudo-header names.  No header a sender
 * sets can collide with them: a colon cannot start an HTTP/1.1 field name,
 * and HTTP/2 reserves such names for its own pseudo-headers.
 */
#define WEBHOOK_PSEUDO_METHOD ":method"
#define WEBHOOK_PSEUDO_URI ":uri"
#define WEBHOOK_REQUEST_TARGET_VALUES 2

/* Most values a verify function reads: the headers, then the request line */
#define WEBHOOK_VERIFY_MAX_VALUES \
	(WEBHOOK_SIGNER_MAX_HEADERS + WEBHOOK_REQUEST_TARGET_VALUES)

/* How a scheme turns the operator's secret string into HMAC keys */
typedef enum WebhookKeyFormat
{
	/*
	 * space-separated list of "whsec_" (optional) + standard, padded base64
	 * of 24 to 64 bytes: what the Standard Webhooks libraries decode
	 */
	WEBHOOK_KEY_STANDARD,
	/* space-separated list of strings, each used as it is (stripe) */
	WEBHOOK_KEY_RAW_LIST,
	/* the whole string is one key, spaces included */
	WEBHOOK_KEY_RAW,
	/* space-separated list of hex strings, each decoded to its bytes (adyen) */
	WEBHOOK_KEY_HEX_LIST
} WebhookKeyFormat;

/* A secret parsed into HMAC keys (see WebhookSignerParseSecret) */
typedef struct WebhookKeySet WebhookKeySet;

/* What a sender signs */
typedef struct WebhookMessage
{
	const char *msg_id;			/* NUL-terminated; only for schemes that sign
								 * it */
	int64		timestamp;		/* unix seconds (milliseconds for a signer
								 * with timestamp_ms); only for schemes that
								 * sign it */
	const char *body;
	size_t		bodylen;
	const char *method;			/* NUL-terminated; only for schemes that sign
								 * the request line */
	const char *uri;			/* likewise */
} WebhookMessage;

/* One outbound header: the name is the signer table's, the value palloc'd */
typedef struct WebhookHeader
{
	const char *name;
	char	   *value;
} WebhookHeader;

/* A header value as received: not NUL-terminated (jsonb strings are not) */
typedef struct WebhookHeaderValue
{
	const char *val;
	int			len;
} WebhookHeaderValue;

/*
 * A received timestamp is accepted within tolerance microseconds of now,
 * in either direction.  128 bits because both may be anywhere in their
 * ranges (an interval of 1000 years, a now near the end of time).
 */
typedef struct WebhookTimeWindow
{
	TimestampTz now;
	INT128		tolerance;		/* non-negative */
} WebhookTimeWindow;

/*
 * Sign msg with every key: values[i] gets the palloc'd value of header i of
 * the signer.  False only if HMAC fails.
 */
typedef bool (*WebhookSignFunction) (const WebhookKeySet *keys,
									 const WebhookMessage *msg,
									 char **values);

/*
 * Does any key's signature of body match the received headers (headers[i]
 * is header i of the signer, found by the caller, followed for a signer with
 * signs_request_target by the values of WEBHOOK_PSEUDO_METHOD and
 * WEBHOOK_PSEUDO_URI)?  False for anything malformed and for a timestamp
 * outside window.
 */
typedef bool (*WebhookVerifyFunction) (const WebhookKeySet *keys,
									   const WebhookHeaderValue *headers,
									   const char *body, size_t bodylen,
									   const WebhookTimeWindow *window);

/* One signature scheme */
typedef struct WebhookSigner
{
	const char *name;			/* lower case; looked up case-insensitively */
	WebhookKeyFormat key_format;
	bool		signs_msg_id;	/* WebhookMessage.msg_id is signed and sent */
	bool		signs_timestamp;	/* WebhookMessage.timestamp is signed and
									 * sent */
	int			nheaders;
	/* names sign produces and verify reads, in this order */
	const char *headers[WEBHOOK_SIGNER_MAX_HEADERS];
	/* another name verify accepts for headers[i], or NULL */
	const char *aliases[WEBHOOK_SIGNER_MAX_HEADERS];
	/* NULL for a scheme whose signature is not in headers (adyen) */
	WebhookSignFunction sign;
	WebhookVerifyFunction verify;
	/* why sign() cannot, and what to use instead, when sign is NULL */
	const char *sign_hint;
	/* the request method and URI are signed: see WEBHOOK_PSEUDO_METHOD */
	bool		signs_request_target;
	/* the timestamp is in milliseconds, not seconds */
	bool		timestamp_ms;
} WebhookSigner;

/* The table, in the order error hints list the schemes */
extern const WebhookSigner webhook_signers[];
extern const int webhook_num_signers;

/* The signer of a scheme name (case-insensitive), or NULL if unknown */
extern const WebhookSigner *WebhookSignerLookup(const char *scheme);

/*
 * Parse the operator's secret (len bytes, not necessarily NUL-terminated)
 * as the signer's keys.  Returns NULL with *error set if it is bad.  Raw
 * keys point into secret, which must outlive the result.
 */
extern WebhookKeySet *WebhookSignerParseSecret(const WebhookSigner *s,
											   const char *secret,
											   size_t len,
											   const char **error);

/* Wipe decoded key material and free a key set */
extern void WebhookSignerFreeKeys(WebhookKeySet *keys);

/* How many keys a set holds */
extern int	WebhookKeyCount(const WebhookKeySet *keys);

/*
 * For schemes whose signed content is assembled outside this file (adyen):
 * does the received base64 HMAC-SHA256 (44 characters, padded) equal the
 * HMAC of the concatenated parts under any of the keys?  Constant-time; false
 * for a malformed signature or if HMAC fails.
 */
extern bool WebhookSha256Base64Matches(const WebhookKeySet *keys,
									   const WebhookHmacPart *parts,
									   int nparts,
									   const char *received,
									   size_t receivedlen);

/*
 * The padded base64 HMAC-SHA256 of the concatenated parts under key k of
 * the set, into out (WEBHOOK_SHA256_BASE64_LEN + 1 bytes, NUL-terminated).
 * False if HMAC fails.
 */
#define WEBHOOK_SHA256_BASE64_LEN 44
extern bool WebhookSha256Base64(const WebhookKeySet *keys, int k,
								const WebhookHmacPart *parts, int nparts,
								char *out);

/*
 * The headers signing msg under keys: out (room for
 * WEBHOOK_SIGNER_MAX_HEADERS) gets *nout = s->nheaders headers, in the
 * signer's order.  False with *error set if HMAC fails.
 */
extern bool WebhookSignerSign(const WebhookSigner *s,
							  const WebhookKeySet *keys,
							  const WebhookMessage *msg,
							  WebhookHeader *out, int *nout,
							  const char **error);

/*
 * The outbound headers of one message, for the worker: the secret is
 * parsed and msg_id, timestamp (unix seconds) and body signed with every
 * key.  out has room for WEBHOOK_SIGNER_MAX_HEADERS; *nout gets the
 * number filled.  False with *error set, never an ereport, if the secret
 * is bad, msg_id is missing for a scheme that signs it, or HMAC fails.
 */
extern bool WebhookSignerHeaders(const WebhookSigner *s,
								 const char *secret,
								 const char *msg_id,
								 int64 timestamp,
								 const char *body, size_t len,
								 WebhookHeader *out, int *nout,
								 const char **error);

/*
 * Value of the webhook-signature header ("v1,<base64> v1,<base64> ...", one
 * entry per space-separated secret, in order) for msg_id, timestamp (unix
 * seconds) and body.  Returns NULL and sets *error to a static message if a
 * secret is bad.  The "standard" entry of the table, for existing callers.
 */
extern char *WebhookStandardSignature(const char *secrets,
									  const char *msg_id,
									  int64 timestamp,
									  const char *body, size_t bodylen,
									  const char **error);

/*
 * True if secrets is a non-empty space-separated list of at most
 * WEBHOOK_MAX_SECRETS Standard Webhooks secrets ("whsec_" optional,
 * standard padded base64 of 24 to 64 bytes); otherwise false with *error
 * set to a static message.
 */
extern bool WebhookSecretIsValid(const char *secrets, const char **error);

/*
 * The hint that goes with a secret error from this file when it has one of
 * its own (a URL-safe or unpadded secret, too many secrets), else NULL
 */
extern const char *WebhookSecretErrorHint(const char *error);

/*
 * Find the signer's headers in a jsonb object of headers (names matched
 * case-insensitively, aliases accepted) into values, in the signer's order.
 * False unless every header occurs once with a string value of at most
 * WEBHOOK_VERIFY_MAX_HEADER_BYTES (signature_sql.c).
 */
extern bool WebhookFindHeaders(Jsonb *headers, const WebhookSigner *s,
							   WebhookHeaderValue *values);

/* A fresh "whsec_" secret holding 32 random bytes; ereports on failure */
extern char *WebhookGenerateSecret(void);

#endif							/* INTEGRATION_SIGNATURE_H */
