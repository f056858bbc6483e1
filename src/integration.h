/*
 * integration.h
 *		Declarations shared across the integration extension's C files.
 */
#ifndef INTEGRATION_H
#define INTEGRATION_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define INTEGRATION_USER_AGENT "pg-integration/" EXTVERSION

/* For qsort() and bsearch() of int64 ids. */
static inline int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* The earlier of two times, 0 standing for "none". */
static inline TimestampTz
EarliestTime(TimestampTz a, TimestampTz b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return Min(a, b);
}

/*
 * Splits a comma-separated list in place, for the parsers of list settings, which
 * run in GUC check hooks and so without palloc: returns the entry at *cursor with its
 * blanks trimmed and moves *cursor past it (NULL after the last entry).  Unlike
 * strtok(), it returns empty entries ("a,,b"), so that the caller can refuse them.
 */
static inline char *
NextListEntry(char **cursor)
{
	char	   *entry = *cursor;
	char	   *comma = strchr(entry, ',');
	char	   *end;

	if (comma)
		*comma++ = '\0';
	*cursor = comma;
	while (*entry == ' ' || *entry == '\t')
		entry++;
	end = entry + strlen(entry);
	while (end > entry && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return entry;
}

/* integration.c */
extern bool integration_loaded_at_preload;


#endif							/* INTEGRATION_H */
