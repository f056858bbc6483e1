/*
 * wakeup.h
 *		Commit-time wake-up of the worker and endpoint-cache invalidation.
 */
#ifndef INTEGRATION_WAKEUP_H
#define INTEGRATION_WAKEUP_H

extern void WakeWorkerAtCommit(void);
extern void WakeWorkerForDueAtCommit(void);
extern void WakeWorkerForInboundAtCommit(void);
extern void EndpointsChangedInXact(void);
extern bool EndpointsChangedInThisXact(void);

#endif
