/*
 * integration.h
 *		Declarations shared across the integration extension's C files.
 */
#ifndef INTEGRATION_H
#define INTEGRATION_H

#include "postgres.h"

#define INTEGRATION_USER_AGENT "pg-integration/" EXTVERSION

/* integration.c */
extern bool integration_loaded_at_preload;


#endif							/* INTEGRATION_H */
