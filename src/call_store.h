/*
 * call_store.h
 *		The worker's statements on integration.connector_calls (call_store.c): which
 *		calls are due, an attempt begun, an outcome recorded with its completion event,
 *		and attempts of a dead worker taken back.  Each runs in the caller's
 *		transaction, with SPI connected.
 */
#ifndef INTEGRATION_CALL_STORE_H
#define INTEGRATION_CALL_STORE_H

#include "datatype/timestamp.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

#include "tenant.h"

/* A call the worker holds in memory: nothing is written when it is claimed. */
typedef struct CallRef
{
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
	int64		id;
	int64		connector_id;
	int			rate_limit;		/* its connector's settings.rate_limit; 0:
								 * none */
	int			rate_limit_burst;	/* settings.rate_limit_burst; 0: the rate */
} CallRef;

/* What a claim asks for. */
typedef struct CallClaimRequest
{
	TimestampTz now;
	int			limit;			/* calls in all */
	int			per_connector;	/* calls of one connector */
	const int64 *held;			/* calls to leave out (held, passed over) */
	int			nheld;
	const int64 *full;			/* connectors to leave out (no room) */
	int			nfull;
	TimestampTz next_due;		/* out: when the next call left pending is
								 * due; 0: none */
} CallClaimRequest;

/* A pending call, locked for its attempt (CallStoreLockPending()). */
typedef struct CallPending
{
	char	   *operation;
	Jsonb	   *payload;
	char	   *idempotency_key;
	Oid			queued_by;
	int			attempts;		/* before this one */
	TimestampTz next_attempt_at;	/* when it is due */
	ItemPointerData tid;		/* of the locked row, for its begin */
} CallPending;

/* What an attempt came to. */
typedef enum CallStatus
{
	CALL_PENDING,				/* retried at next_attempt_at */
	CALL_SUCCEEDED,
	CALL_FAILED
} CallStatus;

typedef struct CallOutcome
{
	CallStatus	status;
	int			attempts_before;	/* the row's attempts, as last read or set */
	int			attempts;		/* what they become */
	TimestampTz next_attempt_at;	/* CALL_PENDING */
	int			status_code;	/* 0: no response */
	Jsonb	   *result;
	const char *error;
} CallOutcome;

extern int	CallStoreClaim(CallClaimRequest *req, CallRef *out);
extern bool CallStoreClaimProbe(const char *tenant_id, int64 connector_id, const int64 *held,
								int nheld, TimestampTz now, CallRef *out,
								TimestampTz *next_at);
extern bool CallStoreLockPending(const CallRef *ref, CallPending *out);
extern void CallStoreBeginAttempt(const CallRef *ref, const CallPending *locked, int lease_ms);
extern bool CallStoreRecord(const CallRef *ref, const CallOutcome *o, int64 *next_call);
extern int	CallStoreReconcile(bool all, const int64 *held, int nheld);
extern void CallStoreAnalyzeIfStale(void);

#endif							/* INTEGRATION_CALL_STORE_H */
