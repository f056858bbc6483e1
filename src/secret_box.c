/*
 * secret_box.c
 *		Seals and opens stored secrets: AES-256-GCM through OpenSSL's EVP interface, in
 *		the text format of secret_box.h.
 *
 * Why GCM with a random nonce: it authenticates as well as encrypts, so a value that
 * was altered, or moved to another row (the row's identity is the additional
 * authenticated data), fails to open instead of opening to garbage that would then
 * sign requests with a wrong key.  A 96-bit random nonce per value is safe for far more
 * values than one key will ever seal (the usual bound is 2^32 per key).
 *
 * Each call makes and frees its own EVP_CIPHER_CTX: sealing happens on endpoint writes
 * and opening once per endpoint and worker batch, so a kept context would save nothing
 * measurable.  EVP_CIPHER_CTX_free wipes the expanded key.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "lib/stringinfo.h"

#include "secret_box.h"

#define SEALED_V1_PREFIX "enc:v1:"
#define NONCE_BYTES 12
#define TAG_BYTES 16
/* Versions the additional authenticated data together with the format. */
#define AAD_LABEL "integration secret v1"

/*
 * The additional authenticated data of a value: a label, the purpose and each part of
 * the row's identity, separated by NUL bytes, which text values cannot contain.
 */
void
SecretContextInit(SecretContext *cxt, const char *purpose, const char *const *identity,
				  int nidentity)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, AAD_LABEL, strlen(AAD_LABEL) + 1);
	appendBinaryStringInfo(&buf, purpose, strlen(purpose));
	for (int i = 0; i < nidentity; i++)
	{
		appendStringInfoChar(&buf, '\0');
		appendBinaryStringInfo(&buf, identity[i], strlen(identity[i]));
	}
	cxt->data = buf.data;
	cxt->len = buf.len;
}

/* The context of a secret column whose trigger names tenant_id, then id. */
void
SecretContextForRow(SecretContext *cxt, const char *purpose, const char *tenant_id, int64 id)
{
	char		idtext[32];
	const char *identity[2];

	snprintf(idtext, sizeof(idtext), INT64_FORMAT, id);
	identity[0] = tenant_id;
	identity[1] = idtext;
	SecretContextInit(cxt, purpose, identity, 2);
}

/* The context of webhook_endpoints.secret. */
void
SecretContextForEndpoint(SecretContext *cxt, const char *tenant_id, int64 id)
{
	SecretContextForRow(cxt, ENDPOINT_SECRET_PURPOSE, tenant_id, id);
}

/*
 * The context of one value of a JSON object of secrets (secret_object.h): its row's
 * context with the value's key appended, separated as the identity's parts are.  Keys
 * come last, so no key can make one value's context another's.
 */
void
SecretContextForKey(SecretContext *cxt, const SecretContext *row, const char *key, int keylen)
{
	cxt->len = row->len + 1 + keylen;
	cxt->data = palloc(cxt->len + 1);
	memcpy(cxt->data, row->data, row->len);
	cxt->data[row->len] = '\0';
	memcpy(cxt->data + row->len + 1, key, keylen);
	cxt->data[cxt->len] = '\0';
}

/* Whether a stored value is in the sealed format (well formed or not). */
bool
SecretIsSealed(const char *stored)
{
	return strncmp(stored, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)) == 0;
}

static bool
is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '+' || c == '/';
}

/*
 * Splits a v1 sealed value into its key id (into id, SECRET_KEY_ID_LEN + 1 bytes) and
 * its base64 body; false when it is not a well-formed one.
 */
static bool
parse_sealed(const char *stored, char *id, const char **body, int *bodylen)
{
	const size_t plen = strlen(SEALED_V1_PREFIX);
	const char *p;
	size_t		len;
	int			pad = 0;

	if (strncmp(stored, SEALED_V1_PREFIX, plen) != 0)
		return false;
	p = stored + plen;
	for (int i = 0; i < SECRET_KEY_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	if (p[SECRET_KEY_ID_LEN] != ':')
		return false;
	memcpy(id, p, SECRET_KEY_ID_LEN);
	id[SECRET_KEY_ID_LEN] = '\0';
	p += SECRET_KEY_ID_LEN + 1;
	len = strlen(p);
	if (len == 0 || len % 4 != 0 || len > PG_INT32_MAX / 2)
		return false;
	while (pad < 2 && p[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!is_base64_char(p[i]))
			return false;
	/* Nonce and tag at least. */
	if ((len / 4) * 3 - pad < NONCE_BYTES + TAG_BYTES)
		return false;
	*body = p;
	*bodylen = (int) len;
	return true;
}

/* The key id of a well-formed sealed value (into id); false for anything else. */
bool
SecretSealedKeyId(const char *stored, char *id)
{
	const char *body;
	int			bodylen;

	return parse_sealed(stored, id, &body, &bodylen);
}

/*
 * Seals len bytes of plain under the current key for cxt: a palloc'd sealed value.
 * The caller checks that a key is loaded.
 */
char *
SecretSeal(const char *plain, int len, const SecretContext *cxt)
{
	const SecretKey *key = SecretKeyCurrent();
	int			rawlen = NONCE_BYTES + len + TAG_BYTES;
	unsigned char *raw;
	EVP_CIPHER_CTX *ctx;
	int			outl = 0;
	int			finl = 0;
	bool		ok;
	int			enclen;
	char	   *result;
	size_t		headlen;

	if (key == NULL)
		elog(ERROR, "no encryption key is loaded");
	raw = palloc(rawlen);
	if (RAND_bytes(raw, NONCE_BYTES) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));

	ctx = EVP_CIPHER_CTX_new();
	ok = ctx != NULL &&
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key->key, raw) == 1 &&
		EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *) cxt->data, cxt->len) == 1 &&
		EVP_EncryptUpdate(ctx, raw + NONCE_BYTES, &outl, (const unsigned char *) plain, len) == 1 &&
		EVP_EncryptFinal_ex(ctx, raw + NONCE_BYTES + outl, &finl) == 1 &&
		outl + finl == len &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, raw + NONCE_BYTES + len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt a secret"),
				 errdetail("OpenSSL's AES-256-GCM failed.")));

	headlen = strlen(SEALED_V1_PREFIX) + SECRET_KEY_ID_LEN + 1;
	enclen = pg_b64_enc_len(rawlen);
	result = palloc(headlen + enclen + 1);
	snprintf(result, headlen + 1, "%s%s:", SEALED_V1_PREFIX, key->id);
	enclen = pg_b64_encode((const char *) raw, rawlen, result + headlen, enclen);
	if (enclen < 0)
		elog(ERROR, "could not encode a sealed secret");
	result[headlen + enclen] = '\0';
	pfree(raw);
	return result;
}

/*
 * Opens a stored value for cxt.  SECRET_PLAIN and SECRET_OPENED return the plaintext,
 * palloc'd and NUL-terminated, in *plain (length *plainlen); any other status returns
 * nothing.  Never ereports except for lack of memory.
 */
SecretOpenStatus
SecretOpen(const char *stored, const SecretContext *cxt, char **plain, int *plainlen)
{
	char		id[SECRET_KEY_ID_LEN + 1];
	const char *body;
	int			bodylen;
	const SecretKey *key;
	unsigned char *raw;
	int			rawlen;
	int			ctlen;
	unsigned char *out;
	EVP_CIPHER_CTX *ctx;
	int			outl = 0;
	int			finl = 0;
	int			init_ok;
	int			final_rc = 0;

	*plain = NULL;
	*plainlen = 0;
	if (!SecretIsSealed(stored))
	{
		*plainlen = strlen(stored);
		*plain = pstrdup(stored);
		return SECRET_PLAIN;
	}
	if (!parse_sealed(stored, id, &body, &bodylen))
		return SECRET_MALFORMED;
	key = SecretKeyFind(id);
	if (key == NULL)
		return SECRET_NO_KEY;

	raw = palloc(pg_b64_dec_len(bodylen));
	rawlen = pg_b64_decode(body, bodylen, (char *) raw, pg_b64_dec_len(bodylen));
	if (rawlen < NONCE_BYTES + TAG_BYTES)
	{
		pfree(raw);
		return SECRET_MALFORMED;
	}
	ctlen = rawlen - NONCE_BYTES - TAG_BYTES;
	out = palloc(ctlen + 1);

	ctx = EVP_CIPHER_CTX_new();
	init_ok = ctx != NULL &&
		EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key->key, raw) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *) cxt->data, cxt->len) == 1 &&
		EVP_DecryptUpdate(ctx, out, &outl, raw + NONCE_BYTES, ctlen) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, raw + NONCE_BYTES + ctlen) == 1;
	/* The tag is checked here: nothing of out may be used before it passes. */
	if (init_ok)
		final_rc = EVP_DecryptFinal_ex(ctx, out + outl, &finl);
	EVP_CIPHER_CTX_free(ctx);
	pfree(raw);
	if (!init_ok || final_rc <= 0 || outl + finl != ctlen)
	{
		explicit_bzero(out, ctlen + 1);
		pfree(out);
		return init_ok ? SECRET_MISMATCH : SECRET_FAILED;
	}
	out[ctlen] = '\0';
	*plain = (char *) out;
	*plainlen = ctlen;
	return SECRET_OPENED;
}

/*
 * What went wrong opening stored, as a palloc'd message for an attempt's error, an
 * ereport or a log row.  It names the key id, never the value or the key.
 */
char *
SecretOpenError(SecretOpenStatus status, const char *stored)
{
	char		id[SECRET_KEY_ID_LEN + 1];

	if (!SecretSealedKeyId(stored, id))
		strlcpy(id, "?", sizeof(id));
	switch (status)
	{
		case SECRET_NO_KEY:
			if (SecretKeyCount() == 0)
				return psprintf("the secret is encrypted under key %s, and no integration.encryption_key_file is set", id);
			return psprintf("the secret is encrypted under key %s, which integration.encryption_key_file does not hold", id);
		case SECRET_MALFORMED:
			return pstrdup("the stored secret is not a valid encrypted value");
		case SECRET_MISMATCH:
			return psprintf("the secret encrypted under key %s does not decrypt for this row: it was altered, or copied from another row", id);
		case SECRET_FAILED:
			return pstrdup("the secret could not be decrypted: OpenSSL failed");
		case SECRET_PLAIN:
		case SECRET_OPENED:
			break;
	}
	return pstrdup("the secret was decrypted");
}

/* Wipes and frees a plaintext from SecretOpen(). */
void
SecretFree(char *plain, int len)
{
	if (plain == NULL)
		return;
	explicit_bzero(plain, len);
	pfree(plain);
}
