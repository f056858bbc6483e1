/*
 * delivery_store.h
 *		The worker's SQL: fan-out, claiming, recording results.
 */
#ifndef INTEGRATION_DELIVERY_STORE_H
#define INTEGRATION_DELIVERY_STORE_H

#include "datatype/timestamp.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

/*
 * Secrets that rotate_secret() retired and that still sign until their expiry: at most
 * RETIRED_SECRETS_MAX, newest first, decrypted.
 */
#define RETIRED_SECRETS_MAX 3
typedef struct RetiredSecrets
{
	int			count;
	char	   *secrets[RETIRED_SECRETS_MAX];
	TimestampTz expires[RETIRED_SECRETS_MAX];
} RetiredSecrets;

/* A delivery claimed for sending, with what the request needs. */
typedef struct ClaimedDelivery
{
	char	   *tenant_id;
	int64		id;
	int64		event_id;
	int64		endpoint_id;
	int			attempts;		/* attempts made before this one */
	char	   *message_id;		/* the webhook-id; NULL when the event is gone */
	char	   *event;
	char	   *payload;
	int			payload_len;
	char	   *url;
	char	   *secret;			/* decrypted; NULL with secret_error set when
								 * it does not decrypt */
	char	   *secret_error;
	RetiredSecrets retired;		/* old secrets that still sign */
	Jsonb	   *headers;
	int			timeout_ms;		/* 0: integration.request_timeout */
	char	   *retry_schedule; /* NULL: integration.retry_schedule */
	int			rate_limit;		/* requests per second; 0: unlimited */
	int			rate_limit_burst;	/* 0: rate_limit */
	bool		usable;			/* endpoint active and not deleted, event
								 * present */
	bool		suspended;		/* not usable: the worker disabled its
								 * endpoint, so it is skipped */
	ItemPointerData tid;		/* of the claimed row version, for the result
								 * update */
	TimestampTz lease;			/* lease_expires_at the claim set: identifies
								 * the claim */
} ClaimedDelivery;

/* Claimed deliveries, growing in mcxt. */
typedef struct ClaimList
{
	MemoryContext mcxt;
	ClaimedDelivery *items;
	int			count;
	int			capacity;
} ClaimList;

/* The outcome of one attempt, as written back. */
typedef struct DeliveryResult
{
	char	   *tenant_id;
	int64		id;
	int64		endpoint_id;
	const char *outcome;		/* delivered, pending (retry), failed or
								 * skipped */
	int			attempt;
	TimestampTz started_at;
	int			duration_ms;
	int			status_code;	/* 0: none */
	const char *error_class;	/* NULL when delivered */
	char	   *error;
	char	   *response;
	TimestampTz next_attempt_at;	/* for pending */
	ItemPointerData tid;		/* ClaimedDelivery.tid */
	TimestampTz lease;			/* ClaimedDelivery.lease */
	void	   *slot;			/* the worker's: the request slot it holds;
								 * NULL: none */
} DeliveryResult;

/* An endpoint's request settings now, as StoreReadEndpoints() finds them. */
typedef struct EndpointSettings
{
	const char *tenant_id;		/* the key, filled in by the caller */
	int64		id;
	char	   *url;			/* NULL: no such endpoint any more */
	char	   *secret;			/* decrypted (secret_box.h) */
	char	   *secret_error;	/* why secret is NULL: it, or a retired one,
								 * does not decrypt */
	RetiredSecrets retired;
	Jsonb	   *headers;
	int			timeout_ms;
	char	   *retry_schedule;
	int			rate_limit;		/* 0: unlimited */
	int			rate_limit_burst;	/* 0: rate_limit */
	bool		usable;
	bool		suspended;		/* disabled by the worker, not deleted */
} EndpointSettings;

extern void StoreBegin(const char *activity);
extern void StoreCommit(void);
extern void StoreCommitWithoutFlush(void);
extern bool StoreExtensionPresent(void);
extern void StoreForgetPlans(void);
extern void StoreReplanIfStale(void);
extern int	StoreReconcileLeases(bool all, int64 *held, int nheld);
extern void StoreReadEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt);
extern void StoreClaimTakeSettings(ClaimedDelivery *c, const EndpointSettings *ep);
extern void EndpointSettingsCopy(EndpointSettings *dst, const EndpointSettings *src,
								 MemoryContext mcxt);
extern int	StorePurgeRetiredSecrets(void);

/*
 * The last_error of a delivery skipped because the worker disabled its endpoint (status
 * 'skipped': no request, no attempt used); enable_webhook() can replay it.
 */
#define DELIVERY_SKIPPED_ERROR "skipped: the endpoint is disabled"

/* Most events fanned out, or deliveries claimed, by one statement. */
#define STORE_BATCH 256

/* The two lanes of one fan-out (StoreFanOutAndClaim()). */
typedef struct FanOutLanes
{
	int64		after;			/* in/out: the backlog lane takes events above
								 * this */
	int			limit;			/* its batch; 0: it takes none */
	int64		fresh_after;	/* in/out: the fresh lane takes events above
								 * this */
	int			fresh_limit;	/* its batch; 0: no fresh lane */
	int			taken;			/* out: events the backlog lane took */
	int			fresh_taken;	/* out: events the fresh lane took */
	bool		put_back;		/* out: events were queued again (an endpoint
								 * was locked) */
	bool		overflowed;		/* out: deliveries went in pending, for want
								 * of room */
} FanOutLanes;

/* How many more claims the worker takes for an endpoint (asked once per batch). */
typedef int (*FanOutRoom) (void *arg, const EndpointSettings *endpoint);

extern int	StoreFanOutAndClaim(int lease_ms, FanOutLanes *lanes, FanOutRoom room,
								void *room_arg, ClaimList *list);
extern int64 StoreNewestQueued(void);
extern int	StoreClaim(int lease_ms, int limit, int64 *excluded, int nexcluded, ClaimList *list);
extern TimestampTz StoreNextDue(TimestampTz after, int64 *excluded, int nexcluded);

/* Endpoints named by tenant and id, in the memory context of whoever filled them in. */
typedef struct EndpointRefs
{
	int			n;
	char	  **tenant_ids;
	int64	   *ids;
} EndpointRefs;

extern int	StoreRecord(DeliveryResult *results, int n, EndpointRefs *disabled);

/* A claim given back unsent, without using an attempt (its endpoint's circuit opened). */
typedef struct ReturnedClaim
{
	ItemPointerData tid;		/* ClaimedDelivery.tid */
	int64		id;
	TimestampTz lease;			/* ClaimedDelivery.lease */
	TimestampTz due;			/* next_attempt_at it goes back with */
} ReturnedClaim;

extern int	StoreReturnClaims(const ReturnedClaim *claims, int n);

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

#endif
