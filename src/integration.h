/*
 * integration.h
 *		Declarations shared across the integration extension's C files.
 */
#ifndef INTEGRATION_H
#define INTEGRATION_H

#include "postgres.h"

#define INTEGRATION_USER_AGENT "pg-integration/" EXTVERSION

/* For qsort() and bsearch() of int64 ids. */
static inline int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* integration.c */
extern bool integration_loaded_at_preload;


#endif							/* INTEGRATION_H */
