/*
 * delivery_request.h
 *		The HTTP request of one claimed delivery (headers, Standard Webhooks signature),
 *		and what its answer means.
 */
#ifndef INTEGRATION_DELIVERY_REQUEST_H
#define INTEGRATION_DELIVERY_REQUEST_H

#include "delivery_store.h"
#include "http_client.h"
#include "retry_policy.h"

/* What an answer (or its absence) means for the delivery. */
typedef struct DeliveryVerdict
{
	bool		delivered;
	int			status_code;	/* 0: no response */
	const char *error_class;	/* NULL when delivered */
	char	   *error;			/* message, palloc'd; NULL when delivered */
	AttemptFailure failure;		/* for RetryDecide() */
} DeliveryVerdict;

/* The error class of an attempt whose endpoint secret does not decrypt. */
#define DELIVERY_SECRET_UNAVAILABLE "secret_unavailable"

extern bool DeliveryRequestBuild(ClaimedDelivery *c, HttpRequest *req,
								 const char **error_class, const char **error);
extern void DeliveryRequestJudge(const HttpRequest *req, DeliveryVerdict *verdict);
extern char *StorableText(const char *s, size_t len);

#endif
