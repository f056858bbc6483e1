/*
 * worker.h
 *		The delivery worker: settings, launcher, per-database worker, and the seam through
 *		which kinds of work join its loop.
 */
#ifndef INTEGRATION_WORKER_H
#define INTEGRATION_WORKER_H

#include "datatype/timestamp.h"

#include "http_client.h"
#include "scheduler.h"

/* Settings (worker.c). */
extern bool integration_worker_enabled;
extern char *integration_database_name;
extern int	integration_max_concurrency;
extern int	integration_max_concurrency_per_endpoint;
extern int	integration_max_concurrency_per_tenant;
extern int	integration_connect_timeout_ms;
extern int	integration_request_timeout_ms;
extern int	integration_max_response_bytes;
extern char *integration_proxy;
extern int	integration_idle_recheck_ms;
extern bool integration_http_thread;
extern int	integration_log_min_duration_ms;

extern void WorkerDefineGucs(void);
extern void WorkerDropStrayCancel(void);

/* One transaction of a kind of work: what it does between begin and commit. */
typedef void (*WorkerTransactionStep) (void *arg);
extern bool WorkerRunTransaction(WorkerTransactionStep step, void *arg, const char *activity,
								 int *sqlerrcode, char **message);

/* What a finished request tells the scheduler about its target. */
extern SchedReportAction WorkerReportRequest(Scheduler *s, SchedItem *item,
											 const HttpRequest *req);

/* worker_launcher.c */
extern void WorkerRegisterLauncher(void);
extern void WorkerInstallHooks(void);
extern bool StartDatabaseWorker(Oid dboid);

/*
 * A kind of work's part in the worker's loop, besides the scheduler's JobKind.start.
 * Each turn the loop calls, for every kind: woken() when its latch was set, with what
 * committers asked for since (WorkerWakeRequest bits, worker_slots.h; 0: not said),
 * prepare() before requests start, step() to run at most one store transaction, and
 * next_wake() for how long it may sleep.  A finished request goes to its kind's
 * finished().  A periodic task that sends no requests has no JobKind (kind NULL).
 */
typedef struct WorkerKindOps
{
	const JobKind *kind;
	void		(*woken) (void *state, uint32 requests);
	void		(*reload) (void *state);
	bool		(*prepare) (void *state, TimestampTz now);
	bool		(*step) (void *state, TimestampTz now);
	void		(*finished) (void *state, SchedItem *item, HttpRequest *req);
	TimestampTz (*next_wake) (void *state, TimestampTz now);
} WorkerKindOps;

/* What every kind gets from the worker: its scheduler and HTTP client. */
typedef struct WorkerServices
{
	Scheduler  *scheduler;
	HttpClient *client;
	char	   *dbname;
} WorkerServices;

#endif
