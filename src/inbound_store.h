/*
 * inbound_store.h
 *		The SQL of inbound handlers: which pending inbound events to run next (fair
 *		across tenants, in order per object), and running a batch of them in the
 *		caller's transaction with their outcomes recorded.
 *
 * Contract.  Every function here runs inside a transaction with SPI connected, as a
 * superuser (the worker, or integration._run_inbound()).  InboundClaim() reads and
 * locks nothing; InboundRun() locks each event it runs and calls its handlers in a
 * subtransaction of its own, through InboundInvokeHandler() (inbound_invoke.c), so a
 * handler's writes and the event's new status commit together, or neither does.
 */
#ifndef INTEGRATION_INBOUND_STORE_H
#define INTEGRATION_INBOUND_STORE_H

#include "datatype/timestamp.h"

#include "inbound_pacer.h"
#include "tenant.h"

/* One inbound event, as the worker holds it between its claim and its run. */
typedef struct InboundRef
{
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
	int64		id;
	int64		connector_id;
} InboundRef;

/* What a claim is asked for. */
typedef struct InboundClaimRequest
{
	int			limit;			/* events at most */
	const int64 *held;			/* ids not to claim (held already), any order */
	int			nheld;
	char	  **skip_tenants;	/* tenants not to claim for (they hold enough) */
	int			nskip;
	TimestampTz now;
	char		cursor[TENANT_ID_MAX_LEN + 1];	/* in/out: tenants after this
												 * first; "": from the start */
	TimestampTz next_due;		/* out: when the earliest event not due now
								 * is; 0: none, or not known */
} InboundClaimRequest;

/* What became of an event in a run. */
typedef enum InboundStatus
{
	INBOUND_GONE,				/* not run: no longer pending, or locked */
	INBOUND_DEFERRED,			/* not run: the pacer ended the run first */
	INBOUND_PROCESSED,			/* every matching handler ran */
	INBOUND_SKIPPED,			/* no handler matched */
	INBOUND_RETRY,				/* a handler failed; tried again later */
	INBOUND_FAILED				/* a handler failed, no attempt left */
} InboundStatus;

typedef struct InboundOutcome
{
	InboundStatus status;
	int			attempts;		/* after the run */
	char	   *error;			/* for RETRY and FAILED */
	TimestampTz next_attempt_at;	/* for RETRY */
} InboundOutcome;

extern int	InboundClaim(InboundClaimRequest *req, InboundRef *out);
extern void InboundRun(const InboundRef *refs, int n, int handler_timeout_ms,
					   InboundPacer *pacer, InboundOutcome *out);
extern void InboundRecordFailure(const InboundRef *ref, const char *error,
								 InboundOutcome *out);
extern const char *InboundStatusName(InboundStatus status);
extern void InboundForgetPlans(void);
extern void InboundAnalyzeIfStale(void);

/* Calling one handler (inbound_invoke.c). */
extern void InboundInvokeHandler(Oid handler, Oid role, const char *tenant_id, Datum row,
								 Oid row_type, int timeout_ms);

#endif
