/*-------------------------------------------------------------------------
 *
 * hmac.h
 *	  HMAC primitive shared by the SQL hmac() function and the webhook
 *	  signature schemes.  Nothing here calls ereport, so the delivery
 *	  worker may use it on every request.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_HMAC_H
#define INTEGRATION_HMAC_H

/* Largest digest any supported algorithm produces (SHA-512) */
#define WEBHOOK_HMAC_MAX_LENGTH 64

typedef enum WebhookHmacAlgorithm
{
	WEBHOOK_HMAC_SHA1,
	WEBHOOK_HMAC_SHA256,
	WEBHOOK_HMAC_SHA384,
	WEBHOOK_HMAC_SHA512
} WebhookHmacAlgorithm;

#define WEBHOOK_HMAC_NUM_ALGORITHMS (WEBHOOK_HMAC_SHA512 + 1)

/* One piece of a message that is authenticated as one concatenated string */
typedef struct WebhookHmacPart
{
	const void *data;
	size_t		len;
} WebhookHmacPart;

extern bool WebhookHmacAlgorithmLookup(const char *name, int len,
									   WebhookHmacAlgorithm *algorithm);
extern bool WebhookHmac(WebhookHmacAlgorithm algorithm,
						const void *key, size_t keylen,
						const WebhookHmacPart *parts, int nparts,
						unsigned char *out, size_t *outlen);

#endif							/* INTEGRATION_HMAC_H */
