/*
 * endpoint_cache.h
 *		Per-backend cache of the endpoints each tenant's events go to, for publishing.
 */
#ifndef INTEGRATION_ENDPOINT_CACHE_H
#define INTEGRATION_ENDPOINT_CACHE_H

#include "utils/array.h"

extern int	EndpointsMatching(const char *tenant, const char *event, int eventlen,
							  ArrayType **ids, int *nactive);

#endif
