/*
 * rate_limiter.c
 *		How fast one target may be sent requests: a token bucket for its configured
 *		limit, and an adaptive slow-down after it answered 429 Too Many Requests.
 *
 * The bucket.  A target limited to `rate` requests per second holds at most `burst`
 * tokens, refilled continuously at the rate; each request takes one, and a request
 * without a token waits until one has grown (RateLimiterMaySend() says when).  So in
 * any interval of T seconds at most burst + rate * T requests start, which is what a
 * receiver that counts per second sees.
 *
 * The slow-down.  A 429 halves the target's effective rate: the configured rate, or
 * for a target without a limit the rate it was being sent requests at (counted over
 * the last second or two).  The bucket shrinks in proportion.  Recovery is additive
 * and in steps: every RECOVERY_STEP_MS after the response's Retry-After has passed,
 * another tenth of the rate it recovers to comes back, so a single 429 is forgotten in
 * five seconds and a deep slow-down (several halvings) in about ten.  Requests that
 * were already on their way when a 429 halved the rate answer for the old rate: their
 * 429s do not halve it again, so sixteen concurrent 429s count as one.
 *
 * Everything is a function of the state and the time passed in; nothing here reads a
 * clock, allocates or reports, so the scheduler can judge a target as often as it
 * likes.
 */
#include "postgres.h"

#include <math.h>

#include "rate_limiter.h"

#define RECOVERY_STEP_MS 1000
#define RECOVERY_STEPS 10
#define USECS_PER_SEC_F 1000000.0

void
RateLimiterInit(RateLimiter *rl)
{
	memset(rl, 0, sizeof(*rl));
}

/* Sets the configured limit (rate 0: none; burst 0: the rate). */
void
RateLimiterConfigure(RateLimiter *rl, int rate, int burst)
{
	rate = Max(rate, 0);
	burst = rate > 0 ? Max(burst > 0 ? burst : rate, 1) : 0;
	if (rate == rl->rate && burst == rl->burst)
		return;
	rl->rate = rate;
	rl->burst = burst;
	/* A slow-down under way now recovers to the new limit. */
	if (rl->throttled && rate > 0)
	{
		rl->ceiling = rate;
		rl->throttle_rate = Min(rl->throttle_rate, (double) rate);
	}
	/* The next refill caps the tokens at the new bucket. */
}

/* The rate a slow-down has recovered to by now. */
static double
recovered_rate(const RateLimiter *rl, TimestampTz now)
{
	int64		steps = 0;

	if (now > rl->recover_from)
		steps = (now - rl->recover_from) / ((int64) RECOVERY_STEP_MS * 1000);
	return rl->throttle_rate + (double) steps * rl->ceiling / RECOVERY_STEPS;
}

/*
 * Requests per second the target may be sent now; 0: unlimited.  Ends a slow-down
 * that has recovered.
 */
double
RateLimiterEffectiveRate(RateLimiter *rl, TimestampTz now)
{
	if (rl->throttled)
	{
		double		r = recovered_rate(rl, now);

		if (r < rl->ceiling)
			return rl->rate > 0 ? Min(r, (double) rl->rate) : r;
		rl->throttled = false;
	}
	return rl->rate;
}

/* The bucket's size now: the configured burst, shrunk with the rate; 0: unlimited. */
double
RateLimiterBurst(RateLimiter *rl, TimestampTz now)
{
	double		eff = RateLimiterEffectiveRate(rl, now);

	if (eff <= 0)
		return 0;
	if (rl->rate > 0)
		return Max(1.0, rl->burst * eff / rl->rate);
	return Max(1.0, eff);
}

static void
refill(RateLimiter *rl, TimestampTz now)
{
	double		eff = RateLimiterEffectiveRate(rl, now);
	double		burst = RateLimiterBurst(rl, now);

	if (eff <= 0)
	{
		/* Unlimited: a bucket that appears later starts full. */
		rl->refilled_at = 0;
		return;
	}
	if (rl->refilled_at == 0)
		rl->tokens = burst;
	else if (now > rl->refilled_at)
		rl->tokens += eff * (double) (now - rl->refilled_at) / USECS_PER_SEC_F;
	rl->tokens = Min(rl->tokens, burst);
	rl->refilled_at = Max(now, rl->refilled_at);
}

/* Tokens in the bucket now; 0 when unlimited. */
double
RateLimiterTokens(RateLimiter *rl, TimestampTz now)
{
	refill(rl, now);
	return rl->refilled_at == 0 ? 0 : rl->tokens;
}

/*
 * Whether a request may start now; if not, *when is the time its token will have
 * grown (never earlier, so a caller that sleeps until then finds it).
 */
bool
RateLimiterMaySend(RateLimiter *rl, TimestampTz now, TimestampTz *when)
{
	double		eff = RateLimiterEffectiveRate(rl, now);
	double		wait_us;

	if (eff <= 0)
		return true;
	refill(rl, now);
	if (rl->tokens >= 1.0 - 1e-9)
		return true;
	wait_us = ceil((1.0 - rl->tokens) / eff * USECS_PER_SEC_F);
	if (when)
		*when = now + Max((int64) wait_us, (int64) 1);
	return false;
}

/* Requests started in about the last second, for an unlimited target. */
static double
send_rate(const RateLimiter *rl, TimestampTz now)
{
	double		elapsed;

	if (rl->slot_start == 0 || now < rl->slot_start)
		return rl->slot_count;
	elapsed = (double) (now - rl->slot_start) / USECS_PER_SEC_F;
	if (elapsed < 1.0)
		return rl->prev_count * (1.0 - elapsed) + rl->slot_count;
	if (elapsed < 2.0)
		return rl->slot_count * (2.0 - elapsed);
	return 0;
}

/* A request starts: it takes a token and counts towards the measured rate. */
void
RateLimiterTake(RateLimiter *rl, TimestampTz now)
{
	if (rl->slot_start == 0 || now - rl->slot_start >= (int64) USECS_PER_SEC)
	{
		rl->prev_count = (rl->slot_start != 0 && now - rl->slot_start < 2 * (int64) USECS_PER_SEC) ?
			rl->slot_count : 0;
		rl->slot_start = now;
		rl->slot_count = 0;
	}
	rl->slot_count++;
	if (RateLimiterEffectiveRate(rl, now) > 0)
	{
		refill(rl, now);
		rl->tokens -= 1.0;
	}
}

/*
 * A token RateLimiterTake() took for a request that then did not start goes back, up
 * to the bucket's size, which the bucket would not have grown past had it not been
 * taken.
 */
void
RateLimiterGiveBack(RateLimiter *rl, TimestampTz now)
{
	if (rl->slot_count > 0)
		rl->slot_count--;
	if (RateLimiterEffectiveRate(rl, now) > 0)
	{
		refill(rl, now);
		rl->tokens = Min(rl->tokens + 1.0, RateLimiterBurst(rl, now));
	}
}

/*
 * The target answered 429 to a request started at started_at: halve its rate, unless
 * an earlier 429 already did after that request started.  hold_ms (-1: none) is the
 * response's Retry-After, after which recovery begins.
 */
void
RateLimiterThrottle(RateLimiter *rl, TimestampTz started_at, TimestampTz now, int64 hold_ms)
{
	TimestampTz hold_until = now + Max(hold_ms, (int64) 0) * 1000;
	double		current;

	if (started_at < rl->throttled_at)
	{
		rl->recover_from = Max(rl->recover_from, hold_until);
		return;
	}
	refill(rl, now);
	current = RateLimiterEffectiveRate(rl, now);
	if (current <= 0)
		current = Max(send_rate(rl, now), 2 * RATE_LIMITER_FLOOR);
	if (!rl->throttled)
		rl->ceiling = rl->rate > 0 ? (double) rl->rate : current;
	rl->throttle_rate = Max(RATE_LIMITER_FLOOR, current / 2);
	rl->throttled = true;
	rl->throttled_at = now;
	rl->recover_from = hold_until;
	refill(rl, now);
}

/* Whether the limiter holds nothing a new one would not: no slow-down, a full bucket. */
bool
RateLimiterIsIdle(RateLimiter *rl, TimestampTz now)
{
	(void) RateLimiterEffectiveRate(rl, now);	/* ends a recovered slow-down */
	if (rl->throttled)
		return false;
	if (rl->rate == 0)
		return true;
	refill(rl, now);
	return rl->tokens >= RateLimiterBurst(rl, now) - 1e-9;
}

/*
 * How many requests are worth holding ready for the target: what the bucket lets go
 * at once plus what it lets go in the given seconds; INT_MAX when unlimited.
 */
int
RateLimiterHoldAhead(RateLimiter *rl, TimestampTz now, int seconds)
{
	double		eff = RateLimiterEffectiveRate(rl, now);

	if (eff <= 0)
		return PG_INT32_MAX;
	return (int) Min(ceil(RateLimiterBurst(rl, now) + eff * seconds), (double) PG_INT32_MAX);
}
