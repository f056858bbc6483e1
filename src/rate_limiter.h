/*
 * rate_limiter.h
 *		A target's request rate: a token bucket for its configured limit, and the
 *		adaptive slow-down after it answered 429.  Pure functions of the state and the
 *		time passed in; the scheduler owns one per target.
 */
#ifndef INTEGRATION_RATE_LIMITER_H
#define INTEGRATION_RATE_LIMITER_H

#include "datatype/timestamp.h"

/* The slowest a 429 can make a target: one request in ten seconds. */
#define RATE_LIMITER_FLOOR 0.1

typedef struct RateLimiter
{
	int			rate;			/* configured requests per second; 0:
								 * unlimited */
	int			burst;			/* configured bucket size (>= 1 when rate > 0) */
	double		tokens;			/* as of refilled_at */
	TimestampTz refilled_at;	/* 0: never (a full bucket) */

	/* The slow-down after a 429: recovers in steps towards ceiling. */
	bool		throttled;
	double		ceiling;		/* the rate it recovers to */
	double		throttle_rate;	/* the rate right after the last halving */
	TimestampTz throttled_at;	/* requests started before it do not halve
								 * again */
	TimestampTz recover_from;	/* recovery steps count from here (after any
								 * Retry-After) */

	/* Requests started per second, for an unlimited target's first halving. */
	TimestampTz slot_start;
	int			slot_count;
	int			prev_count;
} RateLimiter;

extern void RateLimiterInit(RateLimiter *rl);
extern void RateLimiterConfigure(RateLimiter *rl, int rate, int burst);
extern double RateLimiterEffectiveRate(RateLimiter *rl, TimestampTz now);
extern double RateLimiterBurst(RateLimiter *rl, TimestampTz now);
extern double RateLimiterTokens(RateLimiter *rl, TimestampTz now);
extern bool RateLimiterMaySend(RateLimiter *rl, TimestampTz now, TimestampTz *when);
extern void RateLimiterTake(RateLimiter *rl, TimestampTz now);
extern void RateLimiterGiveBack(RateLimiter *rl, TimestampTz now);
extern void RateLimiterThrottle(RateLimiter *rl, TimestampTz started_at, TimestampTz now,
								int64 hold_ms);
extern bool RateLimiterIsIdle(RateLimiter *rl, TimestampTz now);
extern int	RateLimiterHoldAhead(RateLimiter *rl, TimestampTz now, int seconds);

#endif
