/*
 * wakeup.h
 *		Commit-time wake-up of the workers and endpoint-cache invalidation.
 */
#ifndef INTEGRATION_WAKEUP_H
#define INTEGRATION_WAKEUP_H

extern void WakeWorkerAtCommit(void);
extern void WakeWorkerForDueAtCommit(void);
extern void WakeWorkerForInboundAtCommit(void);
extern void WakeAllWorkersAtCommit(void);
extern void WakeWorkerForCallsAtCommit(void);
extern void EndpointsChangedInXact(const char *tenant_id);
extern bool EndpointsChangedInThisXact(void);

#endif
