/*-------------------------------------------------------------------------
 *
 * pattern_index.h
 *	  An index of subscription patterns: which of many patterns an event name
 *	  matches, at a cost that does not grow with the number of patterns.
 *
 * Patterns are added with an integer value each (an endpoint's position, say);
 * PatternIndexMatch() returns the values of the patterns an event matches,
 * sorted and without repeats, exactly as event_pattern.h's
 * EventPatternMatches() would find them one by one.  Invalid patterns are
 * ignored, as EventPatternMatches() never matches them.  The index lives in
 * the memory context it was created in; nothing in it ereports on any input.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTEGRATION_PATTERN_INDEX_H
#define INTEGRATION_PATTERN_INDEX_H

#include "utils/jsonb.h"

typedef struct PatternIndex PatternIndex;

extern PatternIndex *PatternIndexCreate(MemoryContext mcxt);
extern void PatternIndexAdd(PatternIndex *index, const char *pat, int patlen, int value);
extern void PatternIndexAddArray(PatternIndex *index, Jsonb *patterns, int value);
extern int	PatternIndexMatch(PatternIndex *index, const char *event, int eventlen,
							  int **values);

#endif							/* INTEGRATION_PATTERN_INDEX_H */
