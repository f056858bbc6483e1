/*
 * scheduler.h
 *		The worker's scheduler: which piece of work gets the next request slot, and when
 *		the worker must look again.  Knows targets and tenants, not what the work is.
 *
 * A target is one destination of requests of one kind of work (today a webhook
 * endpoint) that belongs to one tenant.  Work waits in its target's queue until
 * SchedulerNext() hands it out; the kind of work (a JobKind) then starts it, reports
 * what the target made of it with SchedulerReport(), and gives the slot back with
 * SchedulerFinished().  Each target has a rate limiter and a circuit breaker
 * (rate_limiter.h, circuit_breaker.h), which SchedulerMaySend() consults with its other
 * limits.
 */
#ifndef INTEGRATION_SCHEDULER_H
#define INTEGRATION_SCHEDULER_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"

#include "circuit_breaker.h"
#include "tenant.h"

typedef struct Scheduler Scheduler;
typedef struct SchedTarget SchedTarget;
typedef struct JobKind JobKind;

/* One piece of queued work: embedded in the kind's own struct. */
typedef struct SchedItem
{
	dlist_node	node;			/* in its target's queue */
	SchedTarget *target;
	const JobKind *kind;
	TimestampTz queued_at;		/* set by SchedulerEnqueue() */
	TimestampTz started_at;		/* set by SchedulerNext() */
	bool		probe;			/* the probe of a half-open circuit */
} SchedItem;

/* The seam through which a kind of work joins the worker. */
struct JobKind
{
	const char *name;			/* of the work, e.g. "delivery" */
	const char *target;			/* of its targets, e.g. "webhook"; at most 15
								 * bytes */

	/*
	 * Starts item's request; false when it ended at once (its outcome is
	 * recorded).
	 */
	bool		(*start) (SchedItem *item, void *arg);
};

/* Identifies a target: the kind of work, the tenant and the kind's id for it. */
typedef struct SchedTargetKey
{
	const JobKind *kind;
	int64		id;
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
} SchedTargetKey;

/* The answer to "may I send to this target now?". */
typedef enum SchedVerdict
{
	SCHED_SEND,					/* yes */
	SCHED_TARGET_FULL,			/* its own requests in flight are at its limit */
	SCHED_TENANT_FULL,			/* its tenant holds its share of the slots, or
								 * the slots left are kept for tenants that
								 * hold none */
	SCHED_NO_SLOT,				/* every request slot is taken */
	SCHED_LATER,				/* not before *when: back-off, rate limit or
								 * open circuit */
	SCHED_PROBING				/* its half-open circuit's probe is out */
} SchedVerdict;

/* Settings, re-read on SIGHUP. */
typedef struct SchedLimits
{
	int			max_concurrency;	/* request slots in all */
	int			per_tenant;		/* most slots one tenant may hold */
	int			per_target;		/* most requests in flight to one target */
	int			hold_rounds;	/* claims held per target, in units of
								 * per_target */
} SchedLimits;

/* What SchedulerReport() asks of the kind. */
typedef enum SchedReportAction
{
	SCHED_REPORT_NONE,
	SCHED_REPORT_OPENED,		/* the circuit opened: take its queued work
								 * back (SchedulerTakeQueued()) */
	SCHED_REPORT_CLOSED			/* the circuit closed: its waiting work may be
								 * claimed */
} SchedReportAction;

/* A change of a target's circuit, for its kind to store and log. */
typedef struct SchedTransition
{
	uint64		seq;
	const JobKind *kind;
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
	int64		id;
	CircuitState from;
	CircuitState to;
	TimestampTz at;
	TimestampTz opened_at;
	TimestampTz next_probe_at;	/* to open */
	int64		cooldown_ms;
	int			requests;		/* in the window, when it opened */
	int			failures;
	TimestampTz last_success_at;
	TimestampTz last_failure_at;
	const char *reason;			/* closed without a probe: why; else NULL */
} SchedTransition;

extern Scheduler *SchedulerCreate(MemoryContext mcxt, const SchedLimits *limits);
extern void SchedulerConfigure(Scheduler *s, const SchedLimits *limits);

extern SchedTarget *SchedulerTarget(Scheduler *s, const JobKind *kind, const char *tenant_id,
									int64 id);
extern const SchedTargetKey *SchedulerTargetKeyOf(SchedTarget *t);
extern void SchedulerConfigureTarget(Scheduler *s, SchedTarget *t, int rate, int burst);
extern void SchedulerEnqueue(Scheduler *s, SchedTarget *t, SchedItem *item, TimestampTz now);
extern SchedVerdict SchedulerMaySend(Scheduler *s, SchedTarget *t, TimestampTz now,
									 TimestampTz *when);
extern void SchedulerBackOff(Scheduler *s, SchedTarget *t, TimestampTz until);
extern SchedItem *SchedulerNext(Scheduler *s, TimestampTz now);
extern SchedReportAction SchedulerReport(Scheduler *s, SchedItem *item, TargetOutcome outcome,
										 int64 retry_after_ms, TimestampTz now);
extern bool SchedulerFinished(Scheduler *s, SchedTarget *t, TimestampTz now);
extern bool SchedulerEnded(Scheduler *s, SchedTarget *t, TimestampTz now);
extern void SchedulerRecorded(Scheduler *s);
extern bool SchedulerMayHandOver(Scheduler *s, SchedItem *from, TimestampTz now);
extern void SchedulerHandOverUndone(Scheduler *s, SchedItem *from, TimestampTz now);
extern void SchedulerHandOver(Scheduler *s, SchedItem *from, SchedItem *to, TimestampTz now);
extern void SchedulerAddInFlight(Scheduler *s, SchedItem *from, SchedItem *to, TimestampTz now);

extern int	SchedulerRoom(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id,
						  int rate, int burst, TimestampTz now);

/* The longest the fan-out waits for a target's room, a batch (SchedulerRoomSoon()). */
#define SCHED_ROOM_SOON_MS 10

extern TimestampTz SchedulerRoomSoon(Scheduler *s, const JobKind *kind, const char *tenant_id,
									 int64 id, int want, TimestampTz now);
extern bool SchedulerWantsWork(Scheduler *s, TimestampTz now);
extern int	SchedulerSaturatedTargets(Scheduler *s, const JobKind *kind, TimestampTz now,
									  int64 **ids);
extern bool SchedulerTargetSaturated(Scheduler *s, SchedTarget *t, TimestampTz now);
extern bool SchedulerTargetFull(Scheduler *s, SchedTarget *t, TimestampTz now);
extern TimestampTz SchedulerNextWake(Scheduler *s, TimestampTz now);
extern int	SchedulerInFlight(Scheduler *s);
extern int	SchedulerQueued(Scheduler *s);

/* Visits every queued item, in no particular order. */
typedef void (*SchedItemVisitor) (SchedItem *item, void *arg);
extern void SchedulerForEachQueued(Scheduler *s, SchedItemVisitor visit, void *arg);
extern void SchedulerTakeQueued(Scheduler *s, SchedTarget *t, SchedItemVisitor visit, void *arg,
								TimestampTz now);

/* Circuits: timers, probes, restart, and the transitions to record. */
extern void SchedulerTick(Scheduler *s, TimestampTz now);
extern int	SchedulerProbesWanted(Scheduler *s, const JobKind *kind, TimestampTz now,
								  SchedTarget ***targets);
extern void SchedulerProbeLookedFor(Scheduler *s, SchedTarget *t, bool found,
									TimestampTz next_at);
extern void SchedulerProbesRecheck(Scheduler *s, const JobKind *kind);
extern void SchedulerCloseCircuit(Scheduler *s, SchedTarget *t, const char *reason,
								  TimestampTz now);
extern void SchedulerRestoreCircuit(Scheduler *s, const JobKind *kind, const char *tenant_id,
									int64 id, const CircuitBreaker *cb);
extern int	SchedulerTransitions(Scheduler *s, const JobKind *kind, SchedTransition **out);
extern bool SchedulerTransitionsPending(Scheduler *s, const JobKind *kind);
extern void SchedulerTransitionsRecorded(Scheduler *s, const JobKind *kind, uint64 upto_seq);

/* Copies what changed into shared memory, for integration.endpoint_health. */
extern void SchedulerPublish(Scheduler *s, TimestampTz now);

#endif
