/*
 * delivery_claim.h
 *		Due deliveries claimed for sending, under a lease, and leases that ran out.
 */
#ifndef INTEGRATION_DELIVERY_CLAIM_H
#define INTEGRATION_DELIVERY_CLAIM_H

#include "delivery_store.h"

extern int	StoreClaim(int lease_ms, int limit, int64 *excluded, int nexcluded, ClaimList *list);
extern TimestampTz StoreNextDue(TimestampTz after, int64 *excluded, int nexcluded);
extern int	StoreReconcileLeases(bool all, int64 *held, int nheld);
extern void StoreClaimTakeSettings(ClaimedDelivery *c, const EndpointSettings *ep);

/* An endpoint whose half-open circuit needs one delivery to probe with. */
typedef struct ProbeRequest
{
	const char *tenant_id;
	int64		endpoint_id;
	bool		found;			/* out: one was claimed */
	TimestampTz next_at;		/* out, when not found: when one comes due; 0:
								 * none pending */
} ProbeRequest;

extern void StoreClaimProbes(int lease_ms, ProbeRequest *probes, int n, ClaimList *list);
extern void ClaimForgetPlans(int tables);

#endif
