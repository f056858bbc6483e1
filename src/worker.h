/*
 * worker.h
 *		The workers: settings, launcher, the per-database worker processes and their
 *		roles, and the seam through which kinds of work join a worker's loop.
 */
#ifndef INTEGRATION_WORKER_H
#define INTEGRATION_WORKER_H

#include "datatype/timestamp.h"

#include "http_client.h"
#include "scheduler.h"
#include "worker_slots.h"

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
extern bool WorkerErrorIsTransient(int sqlerrcode);

/* What a finished request tells the scheduler about its target. */
extern SchedReportAction WorkerReportRequest(Scheduler *s, SchedItem *item,
											 const HttpRequest *req);

/* worker_launcher.c */
extern void WorkerRegisterLauncher(void);
extern void WorkerInstallHooks(void);
extern bool StartDatabaseWorkers(Oid dboid);

typedef struct WorkerServices WorkerServices;

/*
 * A kind of work's part in a worker's loop, besides the scheduler's JobKind.start.
 * create() makes its state when its worker starts, and startup() runs once before the
 * loop; false makes the worker exit to be started again.  Each turn the loop calls,
 * for every kind: woken() when its latch was set, with what committers asked for since
 * (WorkerWakeRequest bits, worker_slots.h; 0: not said), reload() after a SIGHUP,
 * prepare() before requests start (false holds every kind's requests back), step() to
 * run at most one store transaction, and next_wake() for how long it may sleep.  A
 * finished request goes to its kind's finished().  Only create(), step() and
 * next_wake() are required; a kind with nothing to do at the others leaves them NULL,
 * and one that sends nothing has no finished().  A periodic task that sends no
 * requests has no JobKind (kind NULL).  wakes names the
 * wake-ups the kind answers, so that a commit wakes only the worker that runs it; sends
 * says that it makes HTTP requests, so that its worker has a client.
 */
typedef struct WorkerKindOps
{
	const JobKind *kind;
	uint32		wakes;			/* WorkerWakeRequest bits */
	bool		sends;
	void	   *(*create) (WorkerServices *svc);
	bool		(*startup) (void *state);
	void		(*woken) (void *state, uint32 requests);
	void		(*reload) (void *state);
	bool		(*prepare) (void *state, TimestampTz now);
	bool		(*step) (void *state, TimestampTz now);
	void		(*finished) (void *state, SchedItem *item, HttpRequest *req);
	TimestampTz (*next_wake) (void *state, TimestampTz now);
} WorkerKindOps;

/*
 * What every kind gets from its worker: its scheduler and HTTP client (NULL in a worker
 * none of whose kinds sends).
 */
struct WorkerServices
{
	Scheduler  *scheduler;
	HttpClient *client;
	char	   *dbname;
};

/*
 * What a worker process of one role runs (WorkerRole, worker_slots.h): the kinds of
 * work of its loop, and how many of them its scheduler lets run at once.  Every
 * database has one process of each role (worker.c's WorkerRoles[]).
 */
typedef struct WorkerRoleDef
{
	const char *name;			/* worker_status().role */
	const char *type;			/* pg_stat_activity.backend_type, and its log
								 * lines' prefix */
	const WorkerKindOps *const *kinds;
	int			nkinds;
	void		(*limits) (SchedLimits *limits);	/* its scheduler's, read
													 * again on SIGHUP */
} WorkerRoleDef;

extern const WorkerRoleDef WorkerRoles[WORKER_NUM_ROLES];
extern const char *WorkerName(void);
extern void WorkerExitExtensionGone(WorkerServices *svc) pg_attribute_noreturn();

#endif
