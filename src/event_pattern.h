/*-------------------------------------------------------------------------
 *
 * event_pattern.h
 *	  Event names and the subscription patterns that select them.
 *
 * An event name is one or more non-empty dot-separated segments of
 * [A-Za-z0-9_-].  A pattern segment is a literal segment, "*" for exactly
 * one segment, or, as the last segment only, "**" for one or more
 * segments.  The lone pattern "*" matches every event.
 *
 * Only ValidateEventPatterns() and ValidateEventName() ereport; the other functions are safe to
 * call from the delivery worker on any input.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_EVENT_PATTERN_H
#define INTEGRATION_EVENT_PATTERN_H

#include "utils/jsonb.h"

extern bool EventNameIsValid(const char *name, int len);
extern bool EventPatternIsValid(const char *pat, int len);
extern bool EventPatternMatches(const char *pat, int patlen,
								const char *event, int eventlen);
extern bool EventPatternsMatch(Jsonb *patterns,
							   const char *event, int eventlen);
extern void ValidateEventPatterns(Jsonb *patterns);
extern void ValidateEventName(const char *name, int len);

/* Longest event name (publish, dispatch, track_table prefixes + ".created"). */
#define EVENT_NAME_MAX_LEN 200

#endif							/* INTEGRATION_EVENT_PATTERN_H */
