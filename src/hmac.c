/*-------------------------------------------------------------------------
 *
 * hmac.c
 *	  HMAC-SHA1/256/384/512 through OpenSSL's EVP_MAC interface, and the
 *	  SQL-callable integration.hmac().
 *
 * Fetching the HMAC implementation and the digest by name costs more than
 * authenticating a 1 kB body, so each backend keeps one EVP_MAC_CTX per
 * algorithm for its whole life and re-keys it for every message.  The
 * contexts live in OpenSSL's heap, not in a memory context: they are never
 * freed, which is fine for four small objects per process.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "fmgr.h"
#include "hmac.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(integration_hmac);

typedef struct HmacAlgorithmInfo
{
	const char *sqlname;		/* name accepted from SQL, case-insensitive */
	const char *digest;			/* OpenSSL digest name */
	size_t		length;			/* digest length in bytes */
} HmacAlgorithmInfo;

static const HmacAlgorithmInfo hmac_algorithms[WEBHOOK_HMAC_NUM_ALGORITHMS] = {
	[WEBHOOK_HMAC_SHA1] = {"sha1", "SHA1", 20},
	[WEBHOOK_HMAC_SHA256] = {"sha256", "SHA256", 32},
	[WEBHOOK_HMAC_SHA384] = {"sha384", "SHA384", 48},
	[WEBHOOK_HMAC_SHA512] = {"sha512", "SHA512", 64},
};

static EVP_MAC * hmac_impl = NULL;
static EVP_MAC_CTX * hmac_contexts[WEBHOOK_HMAC_NUM_ALGORITHMS];

/* Return this backend's context for an algorithm, creating it on first use */
static EVP_MAC_CTX *
HmacContext(WebhookHmacAlgorithm algorithm)
{
	EVP_MAC_CTX *ctx;
	OSSL_PARAM	params[2];

	if (hmac_contexts[algorithm] != NULL)
		return hmac_contexts[algorithm];

	if (hmac_impl == NULL)
	{
		hmac_impl = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
		if (hmac_impl == NULL)
			return NULL;
	}

	ctx = EVP_MAC_CTX_new(hmac_impl);
	if (ctx == NULL)
		return NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
												 (char *) hmac_algorithms[algorithm].digest,
												 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(ctx, params))
	{
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}

	hmac_contexts[algorithm] = ctx;
	return ctx;
}

/*
 * Map a case-insensitive algorithm name (sha1, sha256, sha384, sha512) to
 * its enum value.  Returns false for any other name.
 */
bool
WebhookHmacAlgorithmLookup(const char *name, int len,
						   WebhookHmacAlgorithm *algorithm)
{
	for (int i = 0; i < WEBHOOK_HMAC_NUM_ALGORITHMS; i++)
	{
		const char *candidate = hmac_algorithms[i].sqlname;

		if (strlen(candidate) == (size_t) len &&
			pg_strncasecmp(candidate, name, len) == 0)
		{
			*algorithm = (WebhookHmacAlgorithm) i;
			return true;
		}
	}
	return false;
}

/*
 * HMAC of the concatenation of parts, written to out (which must hold
 * WEBHOOK_HMAC_MAX_LENGTH bytes).  The parts avoid copying a large body
 * just to prepend an id and a timestamp.  Returns false if OpenSSL fails;
 * never ereports.
 */
bool
WebhookHmac(WebhookHmacAlgorithm algorithm,
			const void *key, size_t keylen,
			const WebhookHmacPart *parts, int nparts,
			unsigned char *out, size_t *outlen)
{
	static const unsigned char empty_key[1] = {0};
	EVP_MAC_CTX *ctx;

	Assert((int) algorithm < WEBHOOK_HMAC_NUM_ALGORITHMS);

	ctx = HmacContext(algorithm);
	if (ctx == NULL)
		return false;

	/*
	 * A NULL key tells EVP_MAC_init to keep the previous key, which on a
	 * reused context would be another message's secret.  An empty key must
	 * therefore still be passed as a non-NULL pointer.
	 */
	if (key == NULL || keylen == 0)
	{
		key = empty_key;
		keylen = 0;
	}
	if (!EVP_MAC_init(ctx, key, keylen, NULL))
		return false;

	for (int i = 0; i < nparts; i++)
	{
		if (parts[i].len > 0 &&
			!EVP_MAC_update(ctx, parts[i].data, parts[i].len))
			return false;
	}

	if (!EVP_MAC_final(ctx, out, outlen, WEBHOOK_HMAC_MAX_LENGTH))
		return false;

	Assert(*outlen == hmac_algorithms[algorithm].length);
	return true;
}

/*
 * integration.hmac(key bytea, data bytea, algorithm text) RETURNS bytea
 */
Datum
integration_hmac(PG_FUNCTION_ARGS)
{
	bytea	   *key = PG_GETARG_BYTEA_PP(0);
	bytea	   *data = PG_GETARG_BYTEA_PP(1);
	text	   *algname = PG_GETARG_TEXT_PP(2);
	WebhookHmacAlgorithm algorithm;
	WebhookHmacPart part;
	unsigned char mac[WEBHOOK_HMAC_MAX_LENGTH];
	size_t		maclen;
	bytea	   *result;

	if (!WebhookHmacAlgorithmLookup(VARDATA_ANY(algname),
									VARSIZE_ANY_EXHDR(algname),
									&algorithm))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported HMAC algorithm \"%s\"",
						text_to_cstring(algname)),
				 errhint("Supported algorithms are sha1, sha256, sha384 and sha512.")));

	part.data = VARDATA_ANY(data);
	part.len = VARSIZE_ANY_EXHDR(data);
	if (!WebhookHmac(algorithm, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
					 &part, 1, mac, &maclen))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not compute HMAC")));

	result = (bytea *) palloc(VARHDRSZ + maclen);
	SET_VARSIZE(result, VARHDRSZ + maclen);
	memcpy(VARDATA(result), mac, maclen);
	explicit_bzero(mac, sizeof(mac));

	PG_FREE_IF_COPY(data, 1);
	PG_RETURN_BYTEA_P(result);
}
