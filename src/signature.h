/*-------------------------------------------------------------------------
 *
 * signature.h
 *	  Webhook signature schemes: Standard Webhooks secrets and signatures
 *	  for the delivery worker.  The SQL functions sign() and verify() cover
 *	  the other schemes (stripe, shopify, woocommerce, github).
 *
 * webhook_standard_signature() and webhook_secret_is_valid() report a bad
 * secret through *error instead of ereport, so that the worker can store
 * the problem as the result of one delivery.  They still palloc, in the
 * caller's memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_SIGNATURE_H
#define INTEGRATION_SIGNATURE_H

/*
 * Value of the webhook-signature header ("v1,<base64> v1,<base64> ...", one
 * entry per space-separated secret, in order) for msg_id, timestamp (unix
 * seconds) and body.  Returns NULL and sets *error to a static message if a
 * secret is bad.
 */
extern char *webhook_standard_signature(const char *secrets,
										const char *msg_id,
										int64 timestamp,
										const char *body, size_t bodylen,
										const char **error);

/*
 * True if secrets is a non-empty space-separated list of Standard Webhooks
 * secrets ("whsec_" optional, base64 of 24 to 64 bytes); otherwise false
 * with *error set to a static message.
 */
extern bool webhook_secret_is_valid(const char *secrets, const char **error);

/* A fresh "whsec_" secret holding 32 random bytes; ereports on failure */
extern char *webhook_generate_secret(void);

#endif							/* INTEGRATION_SIGNATURE_H */
