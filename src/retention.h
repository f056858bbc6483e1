/*
 * retention.h
 *		Expiry of finished deliveries, their events and attempts, log rows, handled
 *		inbound events and finished connector calls: the settings, the worker's
 *		periodic task, and one pass on demand (integration.purge_expired()).
 */
#ifndef INTEGRATION_RETENTION_H
#define INTEGRATION_RETENTION_H

#include "worker.h"

/* Settings, in seconds; 0 or -1: kept forever. */
extern int	integration_retention_delivered_s;
extern int	integration_retention_failed_s;
extern int	integration_retention_logs_s;
extern int	integration_retention_interval_s;

extern void RetentionDefineGucs(void);

/* The worker's periodic task: WorkerKindOps without a JobKind (it sends nothing). */
extern const WorkerKindOps retention_ops;

#endif
