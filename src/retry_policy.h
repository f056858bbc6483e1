/*
 * retry_policy.h
 *		When a failed delivery is tried again: the backoff schedule, jitter and Retry-After.
 */
#ifndef INTEGRATION_RETRY_POLICY_H
#define INTEGRATION_RETRY_POLICY_H

#include "datatype/timestamp.h"

#define RETRY_SCHEDULE_MAX_STEPS 32

/* A parsed schedule: delay in ms after attempt 1, 2, ...; attempts allowed = nsteps + 1. */
typedef struct RetrySchedule
{
	int			nsteps;
	int64		delay_ms[RETRY_SCHEDULE_MAX_STEPS];
} RetrySchedule;

extern char *integration_retry_schedule_string;
extern int	integration_max_retry_after_s;

extern void RetryPolicyDefineGucs(void);
extern const RetrySchedule *DefaultRetrySchedule(void);
extern bool ParseRetrySchedule(const char *s, RetrySchedule *out, const char **error);
extern int64 RetryAfterMs(const char *header, TimestampTz now);
extern int64 NextRetryDelayMs(const RetrySchedule *schedule, int attempts_done,
							  int64 retry_after, double jitter_unit);

/* A failed attempt, as far as the retry decision needs to know it. */
typedef struct AttemptFailure
{
	int			status_code;	/* the response's status; 0: no response
								 * arrived */
	const char *retry_after;	/* its Retry-After header, or NULL */
} AttemptFailure;

extern const RetrySchedule *RetryPolicyFor(const char *schedule_text, MemoryContext mcxt);
extern bool RetryIsFinal(const AttemptFailure *failure);
extern int64 RetryDecide(const RetrySchedule *schedule, int attempts_done,
						 const AttemptFailure *failure, TimestampTz now, double jitter_unit);

#endif
