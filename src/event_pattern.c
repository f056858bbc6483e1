/*-------------------------------------------------------------------------
 *
 * event_pattern.c
 *	  Matching event names against subscription patterns, and the SQL
 *	  functions event_matches(), ValidateEventPatterns() and
 *	  ValidateEventName().
 *
 * Matching runs for every (event, subscription) pair, so it walks the
 * pattern and the name once, side by side, without allocating, and reads
 * the jsonb array in place instead of converting it to text.  Invalid names
 * and invalid patterns never match rather than raise: patterns are checked
 * when a subscription is written (ValidateEventPatterns), and one bad row
 * must not abort the transaction that publishes an event.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "event_pattern.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(integration_event_matches);
PG_FUNCTION_INFO_V1(integration_validate_event_patterns);
PG_FUNCTION_INFO_V1(integration_validate_event_name);

/* Is c allowed inside an event name segment? */
static inline bool
IsSegmentChar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Length of the segment starting at s, up to the next dot or end */
static inline int
SegmentLength(const char *s, const char *end)
{
	const char *p = s;

	while (p < end && *p != '.')
		p++;
	return p - s;
}

/*
 * True if name[0..len) is one or more non-empty dot-separated segments of
 * [A-Za-z0-9_-].
 */
bool
EventNameIsValid(const char *name, int len)
{
	bool		segment_start = true;

	if (name == NULL || len <= 0)
		return false;

	for (int i = 0; i < len; i++)
	{
		char		c = name[i];

		if (c == '.')
		{
			if (segment_start)
				return false;	/* empty segment */
			segment_start = true;
		}
		else if (IsSegmentChar(c))
			segment_start = false;
		else
			return false;
	}
	return !segment_start;		/* a trailing dot leaves an empty segment */
}

/*
 * True if pat[0..len) is a valid pattern: segments that are literal
 * segments or "*", with an optional final "**".
 */
bool
EventPatternIsValid(const char *pat, int len)
{
	const char *p = pat;
	const char *end = pat + len;

	if (pat == NULL || len <= 0)
		return false;

	for (;;)
	{
		int			seglen = SegmentLength(p, end);
		bool		last = (p + seglen == end);

		if (seglen == 0)
			return false;
		if (seglen == 2 && p[0] == '*' && p[1] == '*')
		{
			if (!last)
				return false;
		}
		else if (!(seglen == 1 && p[0] == '*'))
		{
			for (int i = 0; i < seglen; i++)
				if (!IsSegmentChar(p[i]))
					return false;
		}
		if (last)
			return true;
		p += seglen + 1;		/* skip the dot */
	}
}

/*
 * Does the event name match the pattern?  False if either is invalid.
 */
bool
EventPatternMatches(const char *pat, int patlen,
					const char *event, int eventlen)
{
	const char *p = pat;
	const char *pend = pat + patlen;
	const char *e = event;
	const char *eend = event + eventlen;

	if (pat == NULL || patlen <= 0 || !EventNameIsValid(event, eventlen))
		return false;

	/* The lone "*" is the catch-all, not "exactly one segment" */
	if (patlen == 1 && pat[0] == '*')
		return true;

	/*
	 * Each turn consumes one segment of each.  The event is known valid, so a
	 * literal pattern segment that equals an event segment is valid too; only
	 * wildcards and empty segments need separate checks.
	 */
	for (;;)
	{
		int			pseglen = SegmentLength(p, pend);
		int			eseglen;
		bool		plast = (p + pseglen == pend);
		bool		elast;

		if (pseglen == 2 && p[0] == '*' && p[1] == '*')
		{
			/* one or more remaining event segments, and "**" must be last */
			return plast;
		}

		eseglen = SegmentLength(e, eend);
		elast = (e + eseglen == eend);

		if (pseglen == 1 && p[0] == '*')
		{
			/* any one segment */
		}
		else if (pseglen != eseglen || memcmp(p, e, pseglen) != 0)
			return false;

		if (plast || elast)
		{
			/*
			 * Both must end here, except that a pattern with one segment left
			 * may continue with "**"; that still needs an event segment,
			 * which elast says there is not.
			 */
			return plast && elast;
		}
		p += pseglen + 1;
		e += eseglen + 1;
	}
}

/*
 * Does the event match any pattern of a jsonb array of strings?  Anything
 * but an array yields false; elements that are not strings or not valid
 * patterns are skipped.
 */
bool
EventPatternsMatch(Jsonb *patterns, const char *event, int eventlen)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (patterns == NULL || !JB_ROOT_IS_ARRAY(patterns) ||
		JB_ROOT_IS_SCALAR(patterns))
		return false;
	if (!EventNameIsValid(event, eventlen))
		return false;

	it = JsonbIteratorInit(&patterns->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM && v.type == jbvString &&
			EventPatternMatches(v.val.string.val, v.val.string.len,
								event, eventlen))
		{
			/*
			 * With skipNested there is only the one top-level iterator; free
			 * it since we leave before the iterator frees itself.
			 */
			pfree(it);
			return true;
		}
	}
	return false;
}

/*
 * Raise invalid_parameter_value unless patterns is a non-empty jsonb array
 * of valid pattern strings.
 */
void
ValidateEventPatterns(Jsonb *patterns)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			index = 0;

	if (!JB_ROOT_IS_ARRAY(patterns) || JB_ROOT_IS_SCALAR(patterns))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event patterns must be a JSON array of strings"),
				 errhint("Write for example '[\"order.created\", \"invoice.*\"]'.")));
	if (JB_ROOT_COUNT(patterns) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event patterns must not be empty"),
				 errhint("Use '[\"*\"]' to subscribe to every event.")));

	it = JsonbIteratorInit(&patterns->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event pattern %d is not a string", index + 1),
					 errhint("Event patterns must be a JSON array of strings.")));
		if (!EventPatternIsValid(v.val.string.val, v.val.string.len))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid event pattern \"%s\"",
							pnstrdup(v.val.string.val, v.val.string.len)),
					 errdetail("A pattern is dot-separated segments of letters, digits, \"_\" and \"-\", where a segment may be \"*\" for exactly one segment and the last segment may be \"**\" for one or more segments."),
					 errhint("Write for example \"order.*\" or \"order.**\".")));
		index++;
	}
}

/*
 * integration.event_matches(patterns jsonb, event text) RETURNS boolean
 */
Datum
integration_event_matches(PG_FUNCTION_ARGS)
{
	Jsonb	   *patterns = PG_GETARG_JSONB_P(0);
	text	   *event = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(EventPatternsMatch(patterns, VARDATA_ANY(event),
									  VARSIZE_ANY_EXHDR(event)));
}

/*
 * integration.ValidateEventPatterns(patterns jsonb) RETURNS jsonb
 */
Datum
integration_validate_event_patterns(PG_FUNCTION_ARGS)
{
	Jsonb	   *patterns = PG_GETARG_JSONB_P(0);

	ValidateEventPatterns(patterns);
	PG_RETURN_JSONB_P(patterns);
}

/*
 * integration.ValidateEventName(event text) RETURNS text
 */
Datum
integration_validate_event_name(PG_FUNCTION_ARGS)
{
	text	   *event = PG_GETARG_TEXT_PP(0);

	ValidateEventName(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event));
	PG_RETURN_TEXT_P(event);
}

/* Raises invalid_parameter_value unless name is a valid event name of at most EVENT_NAME_MAX_LEN bytes. */
void
ValidateEventName(const char *name, int len)
{
	if (len > EVENT_NAME_MAX_LEN || !EventNameIsValid(name, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid event name \"%.*s\"", Min(len, EVENT_NAME_MAX_LEN), name),
				 errdetail("An event name is dot-separated segments of letters, digits, \"_\" and \"-\", at most %d characters.",
						   EVENT_NAME_MAX_LEN),
				 errhint("For example: order.created.")));
}
