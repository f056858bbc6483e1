/*
 * secret_box.h
 *		Secrets sealed at rest: AES-256-GCM under the keys of secret_key.c, in a
 *		versioned text format, bound to the row they belong to.
 *
 * A sealed value is the text
 *		enc:v1:<key id>:<base64 of nonce (12 bytes) || ciphertext || tag (16 bytes)>
 * The nonce is random per value.  The additional authenticated data is the value's
 * context: a purpose (which column of which table) and the identity of its row (tenant
 * and id), so a value copied to another row, tenant or column does not open.
 *
 * Contract: SecretSeal() ereports (it runs on write paths, in a transaction);
 * SecretOpen() never does, besides palloc, and reports what went wrong as a status,
 * so that the worker can fail one delivery and go on.  Plaintext is palloc'd in the
 * caller's context; callers wipe it with explicit_bzero() when they are done where
 * they can.  Nothing here logs a plaintext, a key or a sealed value.
 */
#ifndef INTEGRATION_SECRET_BOX_H
#define INTEGRATION_SECRET_BOX_H

#include "secret_key.h"

/* What every sealed value starts with, whatever its version. */
#define SECRET_SEALED_PREFIX "enc:"

/* The purpose of webhook_endpoints.secret, as its trigger and the worker name it. */
#define ENDPOINT_SECRET_PURPOSE "webhook_endpoints.secret"
/* The purpose of each value of webhook_endpoints.headers (secret_object.h). */
#define ENDPOINT_HEADERS_PURPOSE "webhook_endpoints.headers"

/* The additional authenticated data of one value (SecretContextInit()). */
typedef struct SecretContext
{
	char	   *data;
	int			len;
} SecretContext;

/* What SecretOpen() found. */
typedef enum SecretOpenStatus
{
	SECRET_PLAIN,				/* not sealed: stored as it is, returned as is */
	SECRET_OPENED,				/* sealed, and opened */
	SECRET_NO_KEY,				/* sealed under a key not loaded (or no key
								 * file) */
	SECRET_MALFORMED,			/* starts like a sealed value but is not one */
	SECRET_MISMATCH,			/* does not authenticate: altered, or another
								 * row's */
	SECRET_FAILED				/* OpenSSL could not run (out of memory) */
} SecretOpenStatus;

extern void SecretContextInit(SecretContext *cxt, const char *purpose,
							  const char *const *identity, int nidentity);
extern void SecretContextForRow(SecretContext *cxt, const char *purpose, const char *tenant_id,
								int64 id);
extern void SecretContextForEndpoint(SecretContext *cxt, const char *tenant_id, int64 id);
extern void SecretContextForKey(SecretContext *cxt, const SecretContext *row, const char *key,
								int keylen);

extern bool SecretIsSealed(const char *stored);
extern bool SecretSealedKeyId(const char *stored, char *id);
extern char *SecretSeal(const char *plain, int len, const SecretContext *cxt);
extern SecretOpenStatus SecretOpen(const char *stored, const SecretContext *cxt,
								   char **plain, int *plainlen);
extern char *SecretOpenError(SecretOpenStatus status, const char *stored);
extern void SecretFree(char *plain, int len);

#endif							/* INTEGRATION_SECRET_BOX_H */
