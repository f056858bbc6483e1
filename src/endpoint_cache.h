/*
 * endpoint_cache.h
 *		Per-backend cache of each tenant's active endpoints, for publishing.
 */
#ifndef INTEGRATION_ENDPOINT_CACHE_H
#define INTEGRATION_ENDPOINT_CACHE_H

extern int	EndpointsMatching(const char *tenant, const char *event, int eventlen,
							  Datum **ids);

#endif
