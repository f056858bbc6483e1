/*
 * circuit_breaker.c
 *		When a target that keeps failing is left alone, and how it is tried again.
 *
 * States.  Closed: requests go out, and each counted outcome lands in a sliding
 * window of integration.circuit_window, kept as CIRCUIT_BUCKETS slices (so the window
 * is between nine and ten tenths of the setting long).  When, within the window, at
 * least integration.circuit_min_requests requests were counted and at least
 * integration.circuit_failure_ratio of them failed, the circuit opens: no request goes
 * out for integration.circuit_cooldown.  Then it is half open: exactly one request, the
 * probe, goes out.  A probe that succeeds closes the circuit (with an empty window); a
 * probe that fails opens it again for twice the last wait, up to 10 minutes.
 *
 * What counts.  A failure is a timeout, a connection or transport error, a 5xx, a 408
 * or a 429; any other answer, 4xx included, shows a target that is up and counts as a
 * success.  A request that never reached the target (refused before sending: a blocked
 * address, a secret that does not decrypt, an invalid request) counts for nothing; if it
 * was the probe, the next request is the probe.  Requests that were in flight when the
 * circuit opened finish as they will and count for nothing either: only the probe
 * decides while it is open.
 *
 * Everything is a function of the state, the settings and the time passed in.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "circuit_breaker.h"

int			integration_circuit_window_ms = 5 * 60 * 1000;
int			integration_circuit_min_requests = 10;
double		integration_circuit_failure_ratio = 0.7;
int			integration_circuit_cooldown_ms = 30 * 1000;

void
CircuitBreakerDefineGucs(void)
{
	DefineCustomIntVariable("integration.circuit_window",
							"Span of recent requests over which an endpoint's failure ratio is judged.",
							NULL, &integration_circuit_window_ms, 5 * 60 * 1000, 1000, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.circuit_min_requests",
							"Fewest requests within integration.circuit_window that can open an endpoint's circuit; 0: circuits never open.",
							NULL, &integration_circuit_min_requests, 10, 0, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("integration.circuit_failure_ratio",
							 "Share of failed requests within integration.circuit_window that opens an endpoint's circuit.",
							 NULL, &integration_circuit_failure_ratio, 0.7, 0.01, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.circuit_cooldown",
							"Wait before the first probe of an open circuit; it doubles after each failed probe, up to 10 minutes.",
							NULL, &integration_circuit_cooldown_ms, 30 * 1000, 100, CIRCUIT_MAX_COOLDOWN_MS,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

void
CircuitCurrentSettings(CircuitSettings *cs)
{
	cs->window_ms = integration_circuit_window_ms;
	cs->min_requests = integration_circuit_min_requests;
	cs->failure_ratio = integration_circuit_failure_ratio;
	cs->cooldown_ms = integration_circuit_cooldown_ms;
	cs->max_cooldown_ms = Max((int64) CIRCUIT_MAX_COOLDOWN_MS, cs->cooldown_ms);
}

void
CircuitInit(CircuitBreaker *cb)
{
	memset(cb, 0, sizeof(*cb));
}

/* An open circuit whose wait is over goes half open; returns whether it did. */
bool
CircuitProbeDue(CircuitBreaker *cb, TimestampTz now)
{
	if (cb->state != CIRCUIT_OPEN || now < cb->next_probe_at)
		return false;
	cb->state = CIRCUIT_HALF_OPEN;
	cb->probe_in_flight = false;
	return true;
}

static void
window_reset(CircuitWindow *w, int64 bucket_us)
{
	memset(w, 0, sizeof(*w));
	w->bucket_us = bucket_us;
}

static void
window_add(CircuitWindow *w, TimestampTz now, int64 window_ms, bool failed)
{
	int64		width = Max(window_ms * 1000 / CIRCUIT_BUCKETS, (int64) 1);
	TimestampTz start = now - now % width;
	int			i = (int) ((now / width) % CIRCUIT_BUCKETS);

	/* A changed setting starts a new window: the slices no longer line up. */
	if (w->bucket_us != width)
		window_reset(w, width);
	if (w->start[i] != start)
	{
		w->start[i] = start;
		w->requests[i] = w->failures[i] = 0;
	}
	w->requests[i]++;
	if (failed)
		w->failures[i]++;
}

/* Requests and failures counted within the window that ends now. */
void
CircuitWindowCounts(const CircuitWindow *w, TimestampTz now, int64 window_ms,
					int *requests, int *failures)
{
	*requests = *failures = 0;
	if (w->bucket_us == 0)
		return;
	for (int i = 0; i < CIRCUIT_BUCKETS; i++)
		if (w->requests[i] > 0 && w->start[i] > now - window_ms * 1000 && w->start[i] <= now)
		{
			*requests += w->requests[i];
			*failures += w->failures[i];
		}
}

static void
open_circuit(CircuitBreaker *cb, TimestampTz now, int64 cooldown_ms)
{
	cb->state = CIRCUIT_OPEN;
	cb->probe_in_flight = false;
	cb->cooldown_ms = cooldown_ms;
	cb->next_probe_at = now + cooldown_ms * 1000;
}

/*
 * Counts the outcome of a request (probe: it was the half-open probe).  Returns
 * whether the circuit changed state.
 */
bool
CircuitRecord(CircuitBreaker *cb, TargetOutcome outcome, bool probe, TimestampTz now,
			  const CircuitSettings *cs)
{
	bool		failed = (outcome == TARGET_FAILED || outcome == TARGET_THROTTLED);
	int			requests;
	int			failures;

	if (outcome == TARGET_NOT_SENT)
	{
		/* No answer either way: the next request probes. */
		if (probe)
			cb->probe_in_flight = false;
		return false;
	}
	if (failed)
		cb->last_failure_at = now;
	else
		cb->last_success_at = now;

	if (probe)
	{
		cb->probe_in_flight = false;
		if (cb->state != CIRCUIT_HALF_OPEN)
			return false;
		if (!failed)
		{
			cb->state = CIRCUIT_CLOSED;
			cb->opened_at = cb->next_probe_at = 0;
			cb->cooldown_ms = 0;
			window_reset(&cb->window, 0);
		}
		else
			open_circuit(cb, now, Min(Max(cb->cooldown_ms, cs->cooldown_ms) * 2, cs->max_cooldown_ms));
		return true;
	}
	if (cb->state != CIRCUIT_CLOSED)
		return false;

	window_add(&cb->window, now, cs->window_ms, failed);
	if (!failed || cs->min_requests <= 0)
		return false;
	CircuitWindowCounts(&cb->window, now, cs->window_ms, &requests, &failures);
	if (requests < cs->min_requests ||
		(double) failures < cs->failure_ratio * requests - 1e-9)
		return false;
	cb->opened_at = now;
	open_circuit(cb, now, cs->cooldown_ms);
	return true;
}

/* Whether the breaker holds nothing a new one would not: closed, nothing counted. */
bool
CircuitIsIdle(const CircuitBreaker *cb, TimestampTz now, const CircuitSettings *cs)
{
	int			requests;
	int			failures;

	if (cb->state != CIRCUIT_CLOSED)
		return false;
	CircuitWindowCounts(&cb->window, now, cs->window_ms, &requests, &failures);
	return requests == 0;
}

const char *
CircuitStateName(CircuitState state)
{
	switch (state)
	{
		case CIRCUIT_CLOSED:
			return "closed";
		case CIRCUIT_OPEN:
			return "open";
		case CIRCUIT_HALF_OPEN:
			return "half_open";
	}
	return "closed";
}

bool
CircuitStateFromName(const char *name, CircuitState *state)
{
	if (strcmp(name, "closed") == 0)
		*state = CIRCUIT_CLOSED;
	else if (strcmp(name, "open") == 0)
		*state = CIRCUIT_OPEN;
	else if (strcmp(name, "half_open") == 0)
		*state = CIRCUIT_HALF_OPEN;
	else
		return false;
	return true;
}

/*
 * What an HTTP request's outcome means to its target: status_code 0 when no answer
 * came; reached false when nothing was sent (refused before connecting).
 */
TargetOutcome
TargetOutcomeOfHttp(int status_code, bool reached)
{
	if (!reached)
		return TARGET_NOT_SENT;
	if (status_code == 429)
		return TARGET_THROTTLED;
	if (status_code == 0 || status_code == 408 || status_code >= 500)
		return TARGET_FAILED;
	return TARGET_SUCCEEDED;
}
