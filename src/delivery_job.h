/*
 * delivery_job.h
 *		Webhook deliveries as a kind of work of the worker: claimed from the database,
 *		queued in the scheduler, sent, and their outcomes written back.
 */
#ifndef INTEGRATION_DELIVERY_JOB_H
#define INTEGRATION_DELIVERY_JOB_H

#include "worker.h"

extern const JobKind delivery_job_kind;
extern const WorkerKindOps delivery_job_ops;

#endif
