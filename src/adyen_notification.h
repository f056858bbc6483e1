/*-------------------------------------------------------------------------
 *
 * adyen_notification.h
 *	  Adyen's HMAC signatures of standard (payment) notifications.  Each
 *	  NotificationRequestItem carries additionalData.hmacSignature: the base64
 *	  HMAC-SHA256, under the hex-decoded key, of eight of the item's fields
 *	  joined by ':' (pspReference, originalReference, merchantAccountCode,
 *	  merchantReference, amount.value, amount.currency, eventCode, success).
 *
 * Items are read from JSON text with PostgreSQL's JSON parser, which reports
 * malformed input as a return code: nothing a sender writes makes
 * verification raise.  Like the other signers, nothing here ereports for a
 * bad request; functions palloc in the caller's memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_ADYEN_NOTIFICATION_H
#define INTEGRATION_ADYEN_NOTIFICATION_H

#include "lib/stringinfo.h"
#include "signature.h"

/* What a JSON text is expected to hold */
typedef enum AdyenJsonRoot
{
	/*
	 * {"live": ..., "notificationItems": [{"NotificationRequestItem":
	 * {...}}]}
	 */
	ADYEN_ROOT_NOTIFICATION,
	/* one NotificationRequestItem object */
	ADYEN_ROOT_ITEM
} AdyenJsonRoot;

/*
 * The verify function of the "adyen" signer: the body is a notification
 * with at least one item, and every item carries a signature that matches
 * under one of the keys.  The headers and the time window play no part.
 */
extern bool AdyenVerifyNotificationBody(const WebhookKeySet *keys,
										const WebhookHeaderValue *headers,
										const char *body, size_t bodylen,
										const WebhookTimeWindow *window);

/*
 * The same for JSON text holding a notification or one item (root); false
 * for anything malformed.
 */
extern bool AdyenVerifyJson(const WebhookKeySet *keys, const char *json,
							size_t len, AdyenJsonRoot root);

/*
 * Append the string an item signs (the item as JSON text) to out.  NULL on
 * success, else a static message saying why the item cannot be signed.
 */
extern const char *AdyenItemSigningString(const char *json, size_t len,
										  StringInfo out);

#endif							/* INTEGRATION_ADYEN_NOTIFICATION_H */
