/*
 * retry_policy.c
 *		When a failed delivery is tried again.
 *
 * The schedule is a list of delays after the first, second, ... attempt, each a whole
 * number and a unit ("5s, 5min, 30min, 2h, 5h, 10h, 10h" by default: 8 attempts in
 * about 27 hours).  It is parsed without palloc or ereport because GUC check hooks run
 * in the postmaster too.  Each delay gets +/-20% jitter so that endpoints recovering from an
 * outage are not hit by a synchronized wave of retries.  A Retry-After header (seconds
 * or an HTTP date) replaces the scheduled delay, clamped to [1 s,
 * integration.max_retry_after].
 *
 * Everything here is a pure function of its arguments (the clock and the random draw
 * are passed in), so schedules are tested from SQL through integration.retry_delay()
 * without sleeping.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "integration.h"
#include "retry_policy.h"

#define RETRY_JITTER 0.20

char	   *integration_retry_schedule_string = NULL;
int			integration_max_retry_after_s = 3600;

static RetrySchedule current_schedule;

/* Parses one delay such as "500ms", "5s", "5min", "2h" or "1d" into ms; -1 if invalid. */
static int64
parse_delay_ms(const char *s)
{
	int64		n = 0;
	const char *p = s;
	static const struct
	{
		const char *unit;
		int64		ms;
	}			units[] = {
		{"ms", 1}, {"s", 1000}, {"sec", 1000}, {"m", 60000}, {"min", 60000},
		{"h", 3600000}, {"d", 86400000}, {NULL, 0}
	};

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
	{
		n = n * 10 + (*p - '0');
		if (n > (int64) 1000 * 86400 * 1000)
			return -1;
	}
	while (*p == ' ')
		p++;
	for (int i = 0; units[i].unit != NULL; i++)
	{
		size_t		len = strlen(units[i].unit);

		if (strncmp(p, units[i].unit, len) == 0)
		{
			const char *q = p + len;

			while (*q == ' ')
				q++;
			if (*q == '\0')
				return n * units[i].ms;
		}
	}
	return -1;
}

/* Parses "5s, 5min, 2h" into ms delays; false with *error set when malformed. */
bool
ParseRetrySchedule(const char *s, RetrySchedule *out, const char **error)
{
	char	   *copy = strdup(s);
	char	   *tok;
	bool		ok = true;

	if (copy == NULL)
	{
		*error = "Out of memory.";
		return false;
	}
	out->nsteps = 0;

	/* An empty entry ("5s,,10s") is refused. */
	for (char *next = copy; next != NULL;)
	{
		int64		ms;

		tok = NextListEntry(&next);
		if (*tok == '\0' && next == NULL && out->nsteps == 0)
			break;				/* the empty schedule: no retries */
		if (out->nsteps >= RETRY_SCHEDULE_MAX_STEPS)
		{
			*error = "The list has more than 32 entries.";
			ok = false;
			break;
		}
		ms = parse_delay_ms(tok);
		if (ms < 0 || ms > (int64) 30 * 86400 * 1000)
		{
			*error = "Each entry is a whole number and a unit (ms, s, min, h, d), at most 30 days.";
			ok = false;
			break;
		}
		out->delay_ms[out->nsteps++] = ms;
	}
	free(copy);
	return ok;
}

static bool
check_retry_schedule(char **newval, void **extra, GucSource source)
{
	RetrySchedule *parsed;
	const char *error = NULL;

	parsed = malloc(sizeof(RetrySchedule));
	if (parsed == NULL)
		return false;
	if (!ParseRetrySchedule(*newval ? *newval : "", parsed, &error))
	{
		free(parsed);
		GUC_check_errdetail("%s", error);
		return false;
	}
	*extra = parsed;
	return true;
}

static void
assign_retry_schedule(const char *newval, void *extra)
{
	current_schedule = *(RetrySchedule *) extra;
}

void
RetryPolicyDefineGucs(void)
{
	DefineCustomStringVariable("integration.retry_schedule",
							   "Delays before each retry of a failed delivery, as a comma-separated list of intervals.",
							   "A delivery is attempted once plus once per entry; an endpoint's retry_schedule overrides it.",
							   &integration_retry_schedule_string,
							   "5s, 5min, 30min, 2h, 5h, 10h, 10h",
							   PGC_SIGHUP, 0,
							   check_retry_schedule, assign_retry_schedule, NULL);
	DefineCustomIntVariable("integration.max_retry_after",
							"Longest Retry-After delay honoured; longer ones are clamped.",
							NULL,
							&integration_max_retry_after_s,
							3600, 1, 7 * 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

const RetrySchedule *
DefaultRetrySchedule(void)
{
	return &current_schedule;
}

/*
 * The delay a Retry-After header asks for, in ms, or -1 when absent or unparsable.
 * Both forms of RFC 9110 are accepted: delay-seconds and an HTTP date.
 */
int64
RetryAfterMs(const char *header, TimestampTz now)
{
	const char *p = header;
	int64		secs = 0;

	if (header == NULL)
		return -1;
	while (*p == ' ')
		p++;
	if (*p >= '0' && *p <= '9')
	{
		int64		ms = 0;

		for (; *p >= '0' && *p <= '9'; p++)
		{
			secs = secs * 10 + (*p - '0');
			if (secs > (int64) 365 * 86400)
				return (int64) 365 * 86400 * 1000;
		}

		/*
		 * Not RFC 9110's delay-seconds, but what Shopify sends ("2.0"): a
		 * fraction is read to the millisecond rather than the header ignored.
		 */
		if (*p == '.')
		{
			int			scale = 100;

			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				ms += (*p - '0') * scale;
		}
		while (*p == ' ')
			p++;
		return *p == '\0' ? secs * 1000 + ms : -1;
	}
	else
	{
		/*
		 * An HTTP date, IMF-fixdate only ("Wed, 21 Oct 2015 07:28:00 GMT"),
		 * parsed by hand: the header comes from a receiver, and PostgreSQL's
		 * date parser can raise an error (an unknown time zone), which would
		 * take the worker down.
		 */
		static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
		char		wday[4];
		char		mon[4];
		int			day,
					year,
					hh,
					mm,
					ss,
					consumed = 0;
		struct pg_tm tm;
		TimestampTz when;

		if (sscanf(p, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n",
				   wday, &day, mon, &year, &hh, &mm, &ss, &consumed) != 7 || consumed == 0)
			return -1;
		while (p[consumed] == ' ')
			consumed++;
		if (p[consumed] != '\0')
			return -1;
		memset(&tm, 0, sizeof(tm));
		tm.tm_mon = 0;
		for (int i = 0; i < 12; i++)
			if (pg_strcasecmp(mon, months[i]) == 0)
				tm.tm_mon = i + 1;
		if (tm.tm_mon == 0 || day < 1 || day > 31 || year < 1970 || year > 9999 ||
			hh > 23 || mm > 59 || ss > 60)
			return -1;
		tm.tm_mday = day;
		tm.tm_year = year;
		tm.tm_hour = hh;
		tm.tm_min = mm;
		tm.tm_sec = ss;
		if (tm2timestamp(&tm, 0, NULL, &when) != 0)
			return -1;
		return when > now ? (when - now) / 1000 : 0;
	}
}

/*
 * Delay in ms before the next attempt after attempts_done attempts, or -1 when the
 * schedule is exhausted.  retry_after is a Retry-After delay in ms (or -1);
 * jitter_unit is a draw from [0, 1).
 */
int64
NextRetryDelayMs(const RetrySchedule *schedule, int attempts_done, int64 retry_after,
				 double jitter_unit)
{
	int64		base;
	double		factor;

	if (attempts_done < 1 || attempts_done > schedule->nsteps)
		return -1;
	if (retry_after >= 0)
		return Max((int64) 1000, Min(retry_after, (int64) integration_max_retry_after_s * 1000));

	base = schedule->delay_ms[attempts_done - 1];
	factor = 1.0 - RETRY_JITTER + 2.0 * RETRY_JITTER * jitter_unit;
	return (int64) llround((double) base * factor);
}

PG_FUNCTION_INFO_V1(integration_retry_delay);

/*
 * The schedule of an endpoint's retry_schedule text, parsed into mcxt (claims carry it
 * parsed); the default schedule when the text is NULL or no longer parses (the
 * endpoint's CHECK constraint refuses such text, so only a changed grammar gets here).
 */
const RetrySchedule *
RetryPolicyFor(const char *schedule_text, MemoryContext mcxt)
{
	RetrySchedule *own;
	const char *error;

	if (schedule_text == NULL)
		return DefaultRetrySchedule();
	own = MemoryContextAlloc(mcxt, sizeof(RetrySchedule));
	if (!ParseRetrySchedule(schedule_text, own, &error))
	{
		pfree(own);
		return DefaultRetrySchedule();
	}
	return own;
}

/*
 * Whether a failure is never worth another attempt, whatever the schedule: 410 Gone
 * (the receiver asks never to be called again).  Every other status, a redirect (they
 * are not followed) and every transport error may be transient.
 */
bool
RetryIsFinal(const AttemptFailure *failure)
{
	return failure->status_code == 410;
}

/*
 * The delay before the next attempt after a failed one (attempts_done includes it),
 * in ms, with jitter and the response's Retry-After; -1: the delivery fails for good.
 */
int64
RetryDecide(const RetrySchedule *schedule, int attempts_done, const AttemptFailure *failure,
			TimestampTz now, double jitter_unit)
{
	if (RetryIsFinal(failure))
		return -1;
	return NextRetryDelayMs(schedule, attempts_done,
							failure->retry_after ? RetryAfterMs(failure->retry_after, now) : -1,
							jitter_unit);
}

/*
 * retry_after(value): the delay a Retry-After header value asks for, as an interval,
 * capped by integration.max_retry_after; NULL when it is not one.  For adapters written
 * in SQL, which judge their platform's responses.
 */
PG_FUNCTION_INFO_V1(integration_retry_after);
Datum
integration_retry_after(PG_FUNCTION_ARGS)
{
	int64		ms = RetryAfterMs(text_to_cstring(PG_GETARG_TEXT_PP(0)), GetCurrentTimestamp());
	Interval   *result;

	if (ms < 0)
		PG_RETURN_NULL();
	ms = Min(ms, (int64) integration_max_retry_after_s * 1000);
	result = palloc0(sizeof(Interval));
	result->time = ms * 1000;
	PG_RETURN_INTERVAL_P(result);
}

/*
 * retry_delay(attempts_done, schedule, retry_after, jitter): the interval before the
 * next attempt, or NULL when no attempt is left.  For tests and for planning schedules.
 */
Datum
integration_retry_delay(PG_FUNCTION_ARGS)
{
	int32		attempts_done = PG_GETARG_INT32(0);
	RetrySchedule parsed;
	const RetrySchedule *schedule = DefaultRetrySchedule();
	int64		ra = -1;
	double		jitter;
	int64		ms;
	Interval   *result;

	if (!PG_ARGISNULL(1))
	{
		const char *error = NULL;
		char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(1));

		if (!ParseRetrySchedule(s, &parsed, &error))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid retry schedule \"%s\"", s),
					 errdetail("%s", error)));
		schedule = &parsed;
	}
	if (!PG_ARGISNULL(2))
		ra = RetryAfterMs(text_to_cstring(PG_GETARG_TEXT_PP(2)), GetCurrentTimestamp());
	if (!PG_ARGISNULL(3))
	{
		jitter = PG_GETARG_FLOAT8(3);
		if (jitter < 0 || jitter >= 1 || isnan(jitter))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("jitter must be in [0, 1)")));
	}
	else
		jitter = pg_prng_double(&pg_global_prng_state);

	ms = NextRetryDelayMs(schedule, attempts_done, ra, jitter);
	if (ms < 0)
		PG_RETURN_NULL();
	result = palloc0(sizeof(Interval));
	result->time = ms * 1000;
	PG_RETURN_INTERVAL_P(result);
}
