/*
 * inbound_pacer.h
 *		Which ready inbound event the handler worker runs next, and when its transaction
 *		commits: fair across tenants by the time their handlers take, so that one
 *		tenant's slow handlers delay another tenant's events by one handler call at most.
 *
 * Contract.  The caller begins a transaction's run with InboundPacerBeginRun(), then
 * asks InboundPacerNext() for the next event among those not run yet, runs it and
 * reports the time its handlers took with InboundPacerCharge(), until Next() says to
 * stop; then it commits.  The pacer does no SQL and reads no clock: every time is
 * given to it, so its decisions can be tested without sleeping
 * (integration._inbound_pacer_plan(), inbound_sql.c).
 */
#ifndef INTEGRATION_INBOUND_PACER_H
#define INTEGRATION_INBOUND_PACER_H

typedef struct InboundPacer InboundPacer;

extern InboundPacer *InboundPacerCreate(MemoryContext mcxt, int64 budget_us);
extern void InboundPacerBeginRun(InboundPacer *p);
extern int	InboundPacerNext(InboundPacer *p, const char *const *tenants, const bool *candidate,
							 int n);
extern void InboundPacerCharge(InboundPacer *p, const char *tenant_id, int64 elapsed_us);
extern bool InboundPacerSlow(InboundPacer *p, const char *tenant_id);

#endif
