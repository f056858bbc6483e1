/*
 * circuit_breaker.h
 *		A target's circuit breaker: closed, open (no request goes out) and half open
 *		(one probe goes out), judged from the outcomes of its recent requests.  Pure
 *		functions of the state, the settings and the time passed in; the scheduler owns
 *		one per target.
 */
#ifndef INTEGRATION_CIRCUIT_BREAKER_H
#define INTEGRATION_CIRCUIT_BREAKER_H

#include "datatype/timestamp.h"

typedef enum CircuitState
{
	CIRCUIT_CLOSED = 0,
	CIRCUIT_OPEN,
	CIRCUIT_HALF_OPEN
} CircuitState;

/* What one request's outcome means to its target's limiter and breaker. */
typedef enum TargetOutcome
{
	TARGET_SUCCEEDED,			/* it answered, and not with a failure */
	TARGET_FAILED,				/* timeout, connection error, 5xx, 408:
								 * counted */
	TARGET_THROTTLED,			/* 429: counted, and slows the target down */
	TARGET_NOT_SENT				/* nothing reached the target: not counted */
} TargetOutcome;

/* Requests and failures of the last circuit_window, in CIRCUIT_BUCKETS slices. */
#define CIRCUIT_BUCKETS 10
typedef struct CircuitWindow
{
	int64		bucket_us;		/* width of a slice; 0: empty */
	TimestampTz start[CIRCUIT_BUCKETS];
	int32		requests[CIRCUIT_BUCKETS];
	int32		failures[CIRCUIT_BUCKETS];
} CircuitWindow;

typedef struct CircuitBreaker
{
	CircuitState state;
	bool		probe_in_flight;	/* half open: the probe is out */
	TimestampTz opened_at;		/* when it opened (kept while it reopens) */
	TimestampTz next_probe_at;	/* open: when it goes half open */
	int64		cooldown_ms;	/* open: the wait before the next probe */
	CircuitWindow window;
	TimestampTz last_success_at;
	TimestampTz last_failure_at;
} CircuitBreaker;

/* The settings (integration.circuit_*), as the worker has them now. */
typedef struct CircuitSettings
{
	int64		window_ms;
	int			min_requests;	/* 0: the breaker never opens */
	double		failure_ratio;
	int64		cooldown_ms;
	int64		max_cooldown_ms;
} CircuitSettings;

/* The longest wait between probes, however often they fail. */
#define CIRCUIT_MAX_COOLDOWN_MS (10 * 60 * 1000)

extern void CircuitBreakerDefineGucs(void);
extern void CircuitCurrentSettings(CircuitSettings *cs);

extern void CircuitInit(CircuitBreaker *cb);
extern bool CircuitProbeDue(CircuitBreaker *cb, TimestampTz now);
extern bool CircuitRecord(CircuitBreaker *cb, TargetOutcome outcome, bool probe,
						  TimestampTz now, const CircuitSettings *cs);
extern void CircuitWindowCounts(const CircuitWindow *w, TimestampTz now, int64 window_ms,
								int *requests, int *failures);
extern bool CircuitIsIdle(const CircuitBreaker *cb, TimestampTz now, const CircuitSettings *cs);
extern const char *CircuitStateName(CircuitState state);
extern bool CircuitStateFromName(const char *name, CircuitState *state);
extern TargetOutcome TargetOutcomeOfHttp(int status_code, bool reached);

#endif
