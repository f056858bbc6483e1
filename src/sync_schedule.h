/*
 * sync_schedule.h
 *		The worker's schedule of sync runs (sync_schedule.c): a periodic task that starts
 *		the runs of connectors' pull streams as they come due.
 */
#ifndef INTEGRATION_SYNC_SCHEDULE_H
#define INTEGRATION_SYNC_SCHEDULE_H

#include "worker.h"

/* WorkerKindOps without a JobKind: the pages of a run are connector calls. */
extern const WorkerKindOps sync_schedule_ops;

#endif
