/*
 * scheduler.h
 *		The worker's scheduler: which piece of work gets the next request slot, and when
 *		the worker must look again.  Knows targets and tenants, not what the work is.
 *
 * A target is one destination of requests of one kind of work (today a webhook
 * endpoint) that belongs to one tenant.  Work waits in its target's queue until
 * SchedulerNext() hands it out; the kind of work (a JobKind) then starts it and
 * reports back with SchedulerFinished().
 */
#ifndef INTEGRATION_SCHEDULER_H
#define INTEGRATION_SCHEDULER_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"

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
} SchedItem;

/* The seam through which a kind of work joins the worker. */
struct JobKind
{
	const char *name;

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
	SCHED_TENANT_FULL,			/* its tenant holds its share of the slots */
	SCHED_NO_SLOT,				/* every request slot is taken */
	SCHED_LATER					/* not before *when (back-off) */
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

extern Scheduler *SchedulerCreate(MemoryContext mcxt, const SchedLimits *limits);
extern void SchedulerConfigure(Scheduler *s, const SchedLimits *limits);

extern SchedTarget *SchedulerTarget(Scheduler *s, const JobKind *kind, const char *tenant_id,
									int64 id);
extern void SchedulerEnqueue(Scheduler *s, SchedTarget *t, SchedItem *item);
extern SchedVerdict SchedulerMaySend(Scheduler *s, SchedTarget *t, TimestampTz now,
									 TimestampTz *when);
extern void SchedulerBackOff(Scheduler *s, SchedTarget *t, TimestampTz until);
extern SchedItem *SchedulerNext(Scheduler *s, TimestampTz now);
extern void SchedulerStarted(Scheduler *s, SchedItem *item);
extern bool SchedulerFinished(Scheduler *s, SchedTarget *t);

extern int	SchedulerRoom(Scheduler *s, const JobKind *kind, const char *tenant_id, int64 id);
extern bool SchedulerWantsWork(Scheduler *s, TimestampTz now);
extern int	SchedulerSaturatedTargets(Scheduler *s, const JobKind *kind, int64 **ids);
extern bool SchedulerTargetSaturated(Scheduler *s, SchedTarget *t);
extern bool SchedulerTargetFull(Scheduler *s, SchedTarget *t);
extern TimestampTz SchedulerNextWake(Scheduler *s);
extern int	SchedulerInFlight(Scheduler *s);
extern int	SchedulerQueued(Scheduler *s);

/* Visits every queued item, in no particular order. */
typedef void (*SchedItemVisitor) (SchedItem *item, void *arg);
extern void SchedulerForEachQueued(Scheduler *s, SchedItemVisitor visit, void *arg);

#endif
