/*-------------------------------------------------------------------------
 *
 * pattern_keys.h
 *	  Index keys of subscription patterns and of the event names they may
 *	  match: a pattern that matches a name has one of the name's keys
 *	  (pattern_keys.c has the scheme).
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_PATTERN_KEYS_H
#define INTEGRATION_PATTERN_KEYS_H

#include "utils/array.h"
#include "utils/jsonb.h"

extern ArrayType *EventPatternKeys(const char *tenant, int tenantlen, Jsonb *patterns);
extern ArrayType *EventNameKeys(const char *tenant, int tenantlen, const char *event,
								int eventlen);

#endif							/* INTEGRATION_PATTERN_KEYS_H */
