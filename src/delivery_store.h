/*
 * delivery_store.h
 *		The worker's store transactions, the plans of their statements, and what the
 *		fan-out, the claims and the outcomes of deliveries hand each other.
 */
#ifndef INTEGRATION_DELIVERY_STORE_H
#define INTEGRATION_DELIVERY_STORE_H

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/itemptr.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

#include "endpoint_settings.h"

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
	TransactionId claim_xmax;	/* xmax of that row version: the claim's own
								 * lock, kept by its update; none for a row
								 * inserted claimed (row_unlocked.c) */
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
	TransactionId claim_xmax;	/* ClaimedDelivery.claim_xmax */
	void	   *slot;			/* the worker's: the request slot it holds;
								 * NULL: none */
	bool		slot_ended;		/* its endpoint's and tenant's share given
								 * back already (SchedulerEnded()) */
} DeliveryResult;

/*
 * The last_error of a delivery skipped because the worker disabled its endpoint (status
 * 'skipped': no request, no attempt used); enable_webhook() can replay it.
 */
#define DELIVERY_SKIPPED_ERROR "skipped: the endpoint is disabled"

/* Most events fanned out, or deliveries claimed, by one statement. */
#define STORE_BATCH 256

/* Endpoints named by tenant and id, in the memory context of whoever filled them in. */
typedef struct EndpointRefs
{
	int			n;
	char	  **tenant_ids;
	int64	   *ids;
} EndpointRefs;

/*
 * The tables whose size the worker's generic plans depend on, as bits: a module's
 * ForgetPlans function drops the plans that read any table in its argument, and with
 * STORE_ALL_TABLES every plan it keeps.
 */
#define STORE_DELIVERIES	0x01
#define STORE_EVENT_QUEUE	0x02
#define STORE_EVENTS		0x04
#define STORE_ENDPOINTS		0x08
#define STORE_ALL_TABLES	0xFF

/* A kept plan and the tables its plan's shape depends on (0: none). */
typedef struct StorePlanSlot
{
	SPIPlanPtr *plan;
	int			reads;
} StorePlanSlot;

extern void StoreBegin(const char *activity);
extern void StoreCommit(void);
extern void StoreCommitWithoutFlush(void);
extern bool StoreExtensionPresent(void);
extern void StoreForgetPlans(void);
extern void StoreReplanIfStale(void);
extern void StoreForgetPlansOf(const StorePlanSlot *slots, int n, int tables);
extern TimestampTz StoreLeaseExpiry(int lease_ms);
extern HTAB *StoreBatchHash(const char *name, long nelem, Size keysize, Size entrysize,
							HashValueFunc hash, HashCompareFunc match);

#endif
