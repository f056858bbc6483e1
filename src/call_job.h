/*
 * call_job.h
 *		Connectors' queued API calls as a kind of work of the worker: due calls claimed
 *		from the database, queued in the scheduler under their connector, built,
 *		sent through the worker's HTTP client, and their outcomes recorded.
 */
#ifndef INTEGRATION_CALL_JOB_H
#define INTEGRATION_CALL_JOB_H

#include "worker.h"

extern const JobKind call_job_kind;
extern const WorkerKindOps call_job_ops;

#endif
