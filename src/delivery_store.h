/*
 * delivery_store.h
 *		The worker's SQL: fan-out, claiming, recording results.
 */
#ifndef INTEGRATION_DELIVERY_STORE_H
#define INTEGRATION_DELIVERY_STORE_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/* A delivery claimed for sending, with what the request needs. */
typedef struct ClaimedDelivery
{
	char	   *tenant_id;
	int64		id;
	int64		event_id;
	int64		endpoint_id;
	int			attempts;		/* attempts made before this one */
	char	   *event;
	char	   *payload;
	int			payload_len;
	char	   *url;
	char	   *secret;
	Jsonb	   *headers;
	int			timeout_ms;		/* 0: integration.request_timeout */
	char	   *retry_schedule; /* NULL: integration.retry_schedule */
	bool		usable;			/* endpoint active and not deleted */
} ClaimedDelivery;

/* The outcome of one attempt, as written back. */
typedef struct DeliveryResult
{
	char	   *tenant_id;
	int64		id;
	int64		endpoint_id;
	const char *outcome;		/* delivered, pending (retry) or failed */
	int			attempt;
	TimestampTz started_at;
	int			duration_ms;
	int			status_code;	/* 0: none */
	const char *error_class;	/* NULL when delivered */
	char	   *error;
	char	   *response;
	TimestampTz next_attempt_at;	/* for pending */
} DeliveryResult;

extern void store_begin(const char *activity);
extern void store_commit(void);
extern bool store_extension_present(void);
extern void store_forget_plans(void);
extern int	store_reconcile_leases(bool all);
extern int	store_fan_out(int limit);
extern int	store_claim(int limit, int lease_ms, int64 *excluded, int nexcluded,
						ClaimedDelivery **out, MemoryContext mcxt);
extern TimestampTz store_next_due(void);
extern void store_record(DeliveryResult *results, int n);

#endif
