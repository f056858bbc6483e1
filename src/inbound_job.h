/*
 * inbound_job.h
 *		The handlers of inbound events as a kind of work, the handler worker's: pending
 *		events claimed from the database, queued in the scheduler, and run in paced
 *		batches.
 */
#ifndef INTEGRATION_INBOUND_JOB_H
#define INTEGRATION_INBOUND_JOB_H

#include "worker.h"

/* Settings (inbound_job.c). */
extern int	integration_handler_timeout_ms;

extern void InboundJobDefineGucs(void);

extern const JobKind inbound_job_kind;
extern const WorkerKindOps inbound_job_ops;

extern void InboundJobLimits(SchedLimits *limits);

#endif
