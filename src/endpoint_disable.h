/*
 * endpoint_disable.h
 *		Endpoints the worker disables: a receiver that answers 410 Gone, or one whose every
 *		attempt has failed for integration.disable_after.
 */
#ifndef INTEGRATION_ENDPOINT_DISABLE_H
#define INTEGRATION_ENDPOINT_DISABLE_H

#include "delivery_store.h"

/* The event the tenant gets when the worker disables one of its endpoints. */
#define ENDPOINT_DISABLED_EVENT "endpoint.disabled"

extern int	integration_disable_after_s;

extern void EndpointDisableDefineGucs(void);
extern void EndpointOutcomesRecorded(DeliveryResult *results, int n, EndpointRefs *disabled);
extern void EndpointFailuresForget(void);

#endif
