/*
 * delivery_outcome.h
 *		Attempt outcomes written back into their deliveries, and claims given back.
 */
#ifndef INTEGRATION_DELIVERY_OUTCOME_H
#define INTEGRATION_DELIVERY_OUTCOME_H

#include "delivery_store.h"

extern int	StoreRecord(DeliveryResult *results, int n, EndpointRefs *disabled);

/* A claim given back unsent, without using an attempt (its endpoint's circuit opened). */
typedef struct ReturnedClaim
{
	ItemPointerData tid;		/* ClaimedDelivery.tid */
	int64		id;
	TimestampTz lease;			/* ClaimedDelivery.lease */
	TransactionId claim_xmax;	/* ClaimedDelivery.claim_xmax */
	TimestampTz due;			/* next_attempt_at it goes back with */
} ReturnedClaim;

extern int	StoreReturnClaims(const ReturnedClaim *claims, int n);
extern void OutcomeForgetPlans(int tables);

#endif
