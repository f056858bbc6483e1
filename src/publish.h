/*
 * publish.h
 *		Publishing from C: the worker's own events (publish.c).
 */
#ifndef INTEGRATION_PUBLISH_H
#define INTEGRATION_PUBLISH_H

#include "utils/jsonb.h"

extern int64 PublishWorkerEvent(const char *tenant, const char *event, Jsonb *payload,
								int64 except_endpoint);

#endif
