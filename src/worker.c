/*
 * worker.c
 *		The workers' settings and their main loop: each database that has the extension
 *		gets one background worker process of each role, the delivery worker and the
 *		handler worker, which run the same loop over different kinds of work.
 *
 * Roles.  A role is the list of kinds of work its process runs (WorkerRoles[] below):
 *   - the delivery worker: webhook deliveries (delivery_job.c), connectors' queued API
 *     calls (call_job.c), the removal of expired rows (retention.c) and the start of
 *     scheduled sync runs (sync_schedule.c), whose pages are connector calls; every
 *     kind that sends HTTP requests belongs here.  A call's kind adapters are tenants'
 *     SQL run here too, each cut short after integration.adapter_timeout (time_limit.c);
 *   - the handler worker: the handlers of inbound events (inbound_job.c), which are the
 *     tenants' own SQL and run in this process, up to integration.handler_timeout a
 *     call.  In a process of their own they never stop the deliveries of anyone.
 * The loop knows nothing of roles: it runs the kinds it is given.  A worker has an HTTP
 * client only when one of its kinds sends (WorkerKindOps.sends), and a commit wakes
 * only the workers whose kinds answer what it asks for (WorkerKindOps.wakes).  The
 * launcher starts, stops and restarts the workers of every role together
 * (worker_launcher.c); each has its own slot and row in worker_status().
 *
 * The loop.  One WaitEventSet holds the latch, postmaster death and, in a worker that
 * sends, the HTTP client's fd (HttpClientFd()): the eventfd its libcurl thread writes
 * when requests finish (integration.http_thread = on, the default: SQL here and HTTP
 * there overlap on two cores), or the epoll set of libcurl's own sockets, driven on
 * this thread (off).  Each turn:
 *   1. hand finished requests to their kind of work (WorkerKindOps.finished);
 *   2. let each kind run at most one store transaction (step): write results back,
 *      claim more work, run handlers;
 *   3. ask the scheduler what to start next (SchedulerNext()) while it has something
 *      that may start, and start it through its kind (JobKind.start);
 *   4. copy what changed of the targets into shared memory (integration.endpoint_health),
 *      and sleep until the earliest time a kind, the scheduler (a token, a back-off, a
 *      circuit's probe) or libcurl needs the loop.
 * Committing transactions set the latch (wakeup.c), so new work is claimed within
 * milliseconds, and nothing polls a table on a short timer.  No transaction is open
 * while requests are in flight, and locks are held only for the duration of each
 * short transaction, so the worker never blocks DDL.
 *
 * The kinds of work.  A new kind (a sync pull) is a JobKind
 * for the scheduler plus a WorkerKindOps for the loop, added to its role's list below;
 * nothing else here changes.  Committers say what they made to do (WorkerWakeRequest
 * bits, wakeup.c), and each kind looks for its own work only.  A periodic task that
 * sends nothing (retention.c) is a WorkerKindOps without a JobKind in the same list: it
 * runs its transactions from step() and sleeps through next_wake(), and takes no slot.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "call_job.h"
#include "delivery_job.h"
#include "delivery_store.h"
#include "http_client.h"
#include "inbound_job.h"
#include "integration.h"
#include "retention.h"
#include "retry_policy.h"
#include "scheduler.h"
#include "shared_state.h"
#include "sync_schedule.h"
#include "target_health.h"
#include "worker.h"
#include "worker_slots.h"

/* Settings. */
bool		integration_worker_enabled = true;
char	   *integration_database_name = NULL;
int			integration_max_concurrency = 64;
int			integration_max_concurrency_per_endpoint = 16;
int			integration_max_concurrency_per_tenant = 0;
int			integration_connect_timeout_ms = 5000;
int			integration_request_timeout_ms = 30000;
int			integration_max_response_bytes = 16 * 1024;
char	   *integration_proxy = NULL;
int			integration_idle_recheck_ms = 60000;
bool		integration_http_thread = true;
int			integration_log_min_duration_ms = 1000;

void
WorkerDefineGucs(void)
{
	DefineCustomBoolVariable("integration.worker_enabled",
							 "Whether delivery workers run; off leaves deliveries queued (e.g. for maintenance or tests).",
							 NULL, &integration_worker_enabled, true,
							 PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("integration.database_name",
							   "Only this database gets a delivery worker; empty: every database with the extension.",
							   NULL, &integration_database_name, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.max_concurrency",
							"Most HTTP requests a delivery worker has in flight.",
							NULL, &integration_max_concurrency, 64, 1, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.max_concurrency_per_endpoint",
							"Most requests in flight to one endpoint, so a slow endpoint cannot take every slot.",
							NULL, &integration_max_concurrency_per_endpoint, 16, 1, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.max_concurrency_per_tenant",
							"Most requests in flight for one tenant, so that one tenant's hanging endpoints always leave slots to the others; 0: three quarters of integration.max_concurrency.",
							NULL, &integration_max_concurrency_per_tenant, 0, 0, 1024,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.connect_timeout",
							"Time allowed to connect to an endpoint.",
							NULL, &integration_connect_timeout_ms, 5000, 1, 300000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.request_timeout",
							"Time allowed for a whole request; an endpoint's timeout_ms overrides it.",
							NULL, &integration_request_timeout_ms, 30000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.max_response_bytes",
							"Bytes of each response body read and stored; reading stops there.",
							NULL, &integration_max_response_bytes, 16 * 1024, 0, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);

	/*
	 * Superusers only (and pg_read_all_settings): the URL may carry the
	 * proxy's credentials, http://user:password@proxy:3128, which tenants
	 * must not read.
	 */
	DefineCustomStringVariable("integration.proxy",
							   "Proxy for webhook requests, e.g. http://proxy:3128; empty: none, whatever the environment says.",
							   NULL, &integration_proxy, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.idle_recheck_interval",
							"How often an idle worker looks for work nobody woke it for (e.g. prepared transactions).",
							NULL, &integration_idle_recheck_ms, 60000, 1000, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("integration.http_thread",
							 "Whether a delivery worker runs libcurl on a thread of its own; off: on its main thread, from its wait loop.",
							 NULL, &integration_http_thread, true,
							 PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.log_min_duration",
							"A worker transaction that takes at least this long is logged, with its time in statements and in its commit; -1: none.",
							NULL, &integration_log_min_duration_ms, 1000, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}


/*
 * Runs one transaction of a kind of work: the bracket of StoreBegin() / StoreCommit()
 * around step.  On error, logs it, records it as the worker's last error, rolls back
 * and returns false with the error's SQLSTATE in *sqlerrcode and, when message is not
 * NULL, its message (palloc'd in the caller's context) in *message.
 *
 * Cancel requests (pg_cancel_backend(), and lock_timeout, which works by one) are
 * held off everywhere but inside these transactions, so a cancel ends the transaction
 * running, whose failure the caller handles, and never the worker.
 */
bool
WorkerRunTransaction(WorkerTransactionStep step, void *arg, const char *activity,
					 int *sqlerrcode, char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool cancellable = false;
	volatile bool ok = true;

	*sqlerrcode = 0;
	if (message)
		*message = NULL;
	WorkerDropStrayCancel();
	PG_TRY();
	{
		StoreBegin(activity);
		RESUME_CANCEL_INTERRUPTS();
		cancellable = true;
		step(arg);
		HOLD_CANCEL_INTERRUPTS();
		cancellable = false;
		StoreCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * Held again before anything here can check for interrupts (logging
		 * does).
		 */
		if (cancellable)
			HOLD_CANCEL_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("%s: %s failed: %s", WorkerName(), activity, edata->message)));
		WorkerSlotSetError(edata->message);
		*sqlerrcode = edata->sqlerrcode;
		if (message)
			*message = pstrdup(edata->message);
		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

/*
 * Whether an error is no piece of work's fault (a lock wait past lock_timeout, a
 * cancel, a serialization failure or deadlock, a shutdown): the transaction that met it
 * is tried again later, and nothing is counted against the work it ran.
 */
bool
WorkerErrorIsTransient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;
}

/*
 * Tells the scheduler what a finished request's target made of it (SchedulerReport()),
 * for the target's rate limit and circuit: a Retry-After counts with a 429 or 503 only,
 * clamped like a retry's (integration.max_retry_after), and holds the whole target
 * back.  Returns what the kind must do about a circuit that opened or closed.
 */
SchedReportAction
WorkerReportRequest(Scheduler *s, SchedItem *item, const HttpRequest *req)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		reached = !HttpErrorNotSent(req->error_class);
	int			status = req->error_class == HTTP_OK ? (int) req->status_code : 0;
	int64		retry_after = -1;

	if (status == 429 || status == 503)
	{
		retry_after = RetryAfterMs(req->retry_after[0] ? req->retry_after : NULL, now);
		if (retry_after >= 0)
			retry_after = Min(retry_after, (int64) integration_max_retry_after_s * 1000);
	}
	return SchedulerReport(s, item, TargetOutcomeOfHttp(status, reached), retry_after, now);
}

/*
 * A kind found the extension this worker started with dropped, or dropped and created
 * again (StoreExtensionPresent()): nothing it holds belongs to the tables there now.
 * Exit code 1: the postmaster starts the worker once more a second later.  If CREATE
 * EXTENSION ran meanwhile (its start request saw this worker still running), that
 * worker carries on; else it finds no extension and exits for good.
 */
void
WorkerExitExtensionGone(WorkerServices *svc)
{
	ereport(LOG,
			(errmsg("%s: extension dropped or created again in database \"%s\", exiting",
					WorkerName(), svc->dbname)));
	proc_exit(1);
}

/*
 * Lets a cancel that came in while none was wanted (between transactions: cancel
 * interrupts are held there) take effect now, through ProcessInterrupts() like any
 * other, and drops it: there was nothing to cancel.  lock_timeout signals twice, so
 * its second signal often lands here.
 */
void
WorkerDropStrayCancel(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (!QueryCancelPending)
		return;
	RESUME_CANCEL_INTERRUPTS();
	PG_TRY();
	{
		CHECK_FOR_INTERRUPTS();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		ereport(DEBUG1,
				(errmsg("%s: cancel request between transactions ignored", WorkerName())));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	HOLD_CANCEL_INTERRUPTS();
}

PGDLLEXPORT void integration_database_worker_main(Datum arg);

/* The kinds of work of each role, and the roles (see the banner). */
static const WorkerKindOps *const delivery_kinds[] = {&delivery_job_ops, &call_job_ops,
&retention_ops, &sync_schedule_ops};
static const WorkerKindOps *const handler_kinds[] = {&inbound_job_ops};

static void delivery_limits(SchedLimits *limits);

const WorkerRoleDef WorkerRoles[WORKER_NUM_ROLES] = {
	[WORKER_ROLE_DELIVERY] = {
		.name = "delivery",
		.type = "integration worker",
		.kinds = delivery_kinds,
		.nkinds = lengthof(delivery_kinds),
		.limits = delivery_limits,
	},
	[WORKER_ROLE_HANDLER] = {
		.name = "handler",
		.type = "integration handler worker",
		.kinds = handler_kinds,
		.nkinds = lengthof(handler_kinds),
		.limits = InboundJobLimits,
	},
};

/* This process's role; NULL outside a worker. */
static const WorkerRoleDef *my_role = NULL;

/* What this worker calls itself in the server log: its backend type. */
const char *
WorkerName(void)
{
	return my_role != NULL ? my_role->type : "integration worker";
}

/* before_shmem_exit: the figures of a worker that stops are no one's any more. */
static void
release_health(int code, Datum arg)
{
	TargetHealthReleaseMine();
}

/* A kind of work in this worker, and its state. */
typedef struct WorkerKind
{
	const WorkerKindOps *ops;
	void	   *state;
} WorkerKind;

/* The delivery worker's scheduler: its request slots, from the HTTP settings. */
static void
delivery_limits(SchedLimits *limits)
{
	limits->max_concurrency = integration_max_concurrency;
	limits->per_target = integration_max_concurrency_per_endpoint;
	limits->per_tenant = integration_max_concurrency_per_tenant > 0 ?
		integration_max_concurrency_per_tenant :
		Max(integration_max_concurrency * 3 / 4, 1);
	limits->hold_rounds = 8;
}

static long
ms_until(TimestampTz when, TimestampTz now)
{
	if (when <= now)
		return 0;
	return (long) Min((when - now + 999) / 1000, (int64) LONG_MAX);
}

static void *
kind_state(WorkerKind *kinds, int nkinds, const JobKind *kind)
{
	for (int i = 0; i < nkinds; i++)
		if (kinds[i].ops->kind == kind)
			return kinds[i].state;
	elog(ERROR, "unknown kind of work \"%s\"", kind->name);
	return NULL;
}

/* Starts what the scheduler lets start now. */
static void
start_work(WorkerServices *svc, WorkerKind *kinds, int nkinds)
{
	TimestampTz now = GetCurrentTimestamp();
	SchedItem  *item;

	/*
	 * A kind whose queued work is out of date holds everything back (one kind
	 * today).
	 */
	for (int i = 0; i < nkinds; i++)
		if (kinds[i].ops->prepare != NULL && !kinds[i].ops->prepare(kinds[i].state, now))
			return;
	/* One wake-up of the HTTP thread per few requests, not one per request. */
	if (svc->client != NULL)
		HttpClientHoldStarts(svc->client, true);
	while ((item = SchedulerNext(svc->scheduler, now)) != NULL)
		(void) item->kind->start(item, kind_state(kinds, nkinds, item->kind));
	if (svc->client != NULL)
		HttpClientHoldStarts(svc->client, false);
}

/* Hands the requests that finished to their kinds; none without a client. */
static void
take_finished(WorkerServices *svc, WorkerKind *kinds, int nkinds)
{
	HttpRequest *done;

	if (svc->client == NULL)
		return;
	HttpClientDrive(svc->client);
	while ((done = HttpClientNextDone(svc->client)) != NULL)
	{
		SchedItem  *item = (SchedItem *) done->owner;
		int			i;

		for (i = 0; i < nkinds; i++)
			if (kinds[i].ops->kind == item->kind)
				break;
		if (i == nkinds || kinds[i].ops->finished == NULL)
			elog(ERROR, "work of kind \"%s\" made an HTTP request", item->kind->name);

		/*
		 * Nothing of the item or the request is touched after this: finished
		 * may free both (a delivery's claim batch goes with its last item).
		 */
		kinds[i].ops->finished(kinds[i].state, item, done);
	}
}

/* The extension's presence, checked before anything else runs. */
static void
check_extension(void *arg)
{
	*(bool *) arg = StoreExtensionPresent();
}

/*
 * A worker whose kinds send keeps two settings its design rests on, whatever the
 * server, the database or its role default to (postgresql.conf, ALTER DATABASE/ROLE
 * ... SET); session values, which a reload leaves alone.
 *
 * READ COMMITTED: its statements read and lock rows that tenants and publishers
 * write meanwhile (events, an endpoint FOR KEY SHARE at every fan-out, claims under
 * FOR UPDATE SKIP LOCKED), and at this level a lock follows the row's newer version.
 * Under REPEATABLE READ such a lock fails ("could not serialize access due to
 * concurrent update"), and under SERIALIZABLE those reads make the worker the victim of
 * others' writes ("... due to read/write dependencies"): the whole cycle fails, and
 * the worker pauses a second before trying again.  With the server's default at
 * serializable, one tenant changing its endpoint while publishing paused everyone's
 * deliveries five times in six seconds (test/t/046_session_defaults.pl).
 *
 * Commits that wait for their WAL flush: a request's outcome holds its slot of the
 * worker until a commit records it (delivery_job.c), which bounds what a crash sends
 * twice to integration.max_concurrency only if that commit is on disk when it returns.
 * synchronous_commit = off would let an operating-system crash lose the last 200 ms or
 * so of outcomes, and send all those requests again; the worker commits as 'on'
 * instead (a level above off is kept: remote_apply waits for standbys too).  Its
 * cycles that only claim still skip the wait, where nothing is lost
 * (StoreCommitWithoutFlush()).  The handler worker keeps the database's defaults: its
 * handlers are the application's SQL, and their effects commit with the event's
 * outcome, all or nothing.
 */
static void
pin_sending_session(void)
{
	SetConfigOption("default_transaction_isolation", "read committed", PGC_USERSET, PGC_S_SESSION);
	if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
		SetConfigOption("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION);
}

/* The most kinds of work one role runs. */
#define MAX_KINDS 8

/*
 * Everything before the loop: signals, the connection to dboid, this process's slot,
 * the extension's presence, the scheduler, the kinds' state and the HTTP client.
 * Exits the process when there is nothing for it to do (the database or the extension
 * is gone, or another process holds its slot).  Fills svc and kinds (my_role's).
 */
static void
worker_start(Oid dboid, WorkerRole role, WorkerServices *svc, WorkerKind *kinds)
{
	SchedLimits limits;
	int			nkinds = my_role->nkinds;
	uint32		wake_mask = 0;
	bool		sends = false;
	bool		present = false;
	int			sqlerrcode;

	for (int i = 0; i < nkinds; i++)
	{
		wake_mask |= my_role->kinds[i]->wakes;
		sends |= my_role->kinds[i]->sends;
	}

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);

	/*
	 * Cancels (pg_cancel_backend(), and lock_timeout, which works by one) end
	 * the store transaction running, whose failure its kind handles; between
	 * transactions there is nothing to cancel, and they are held off and
	 * dropped (delivery_job.c).
	 */
	pqsignal(SIGINT, StatementCancelHandler);
	HOLD_CANCEL_INTERRUPTS();
	BackgroundWorkerUnblockSignals();

	/*
	 * Its database was dropped while this worker waited to be started again:
	 * exit code 0 unregisters it.  Connecting would fail, and the postmaster
	 * would try again every second, forever.
	 */
	if (DatabaseDropped(dboid))
	{
		ereport(LOG,
				(errmsg("%s for database %u not started: the database was dropped",
						WorkerName(), dboid)));
		proc_exit(0);
	}
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * The worker runs as the bootstrap superuser: objects that users may
	 * create in other schemas (an operator, a function) must never be picked
	 * up by its queries.  A session value, not an override: the SET clause of
	 * an inbound handler (inbound_invoke.c) or of a connector kind's adapter
	 * (connector_request.c) must still take effect, and an override would
	 * silently win over it.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	/*
	 * No planner settings of its own: the store's statements are planned
	 * again as the tables grow (StoreReplanIfStale()).
	 */

	/*
	 * The store's statements skip rows that others hold locked instead of
	 * waiting for them (delivery_job.c).  A backstop for the waits no
	 * statement can skip (a foreign-key check of an event that an open
	 * transaction is deleting): past this the store transaction fails and is
	 * retried after a pause, and no other tenant's deliveries wait longer
	 * than that.  A handler's lock waits end there too, unless it sets its
	 * own.
	 */
	SetConfigOption("lock_timeout", "1s", PGC_USERSET, PGC_S_SESSION);
	if (sends)
		pin_sending_session();

	if (!WorkerSlotTake(dboid, role, wake_mask))
	{
		if (!WorkerSlotExists(dboid, role))
			ereport(WARNING,
					(errmsg("%s for database %u not started: all %d worker slots are in use",
							WorkerName(), dboid, INTEGRATION_MAX_WORKERS),
					 errhint("Set integration.database_name to the database that needs the workers.")));
		proc_exit(0);			/* this database has its worker of this role */
	}

	memset(svc, 0, sizeof(*svc));
	StartTransactionCommand();
	svc->dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	CommitTransactionCommand();

	/* Without the extension, exit code 0 unregisters the worker. */
	if (!WorkerRunTransaction(check_extension, &present, "starting", &sqlerrcode, NULL))
		proc_exit(1);
	if (!present)
	{
		ereport(LOG,
				(errmsg("%s: extension not installed in database \"%s\", exiting",
						WorkerName(), svc->dbname)));
		proc_exit(0);
	}

	my_role->limits(&limits);
	svc->scheduler = SchedulerCreate(TopMemoryContext, &limits);
	before_shmem_exit(release_health, (Datum) 0);
	for (int i = 0; i < nkinds; i++)
	{
		kinds[i].ops = my_role->kinds[i];
		kinds[i].state = kinds[i].ops->create(svc);
	}
	for (int i = 0; i < nkinds; i++)
		if (kinds[i].ops->startup != NULL && !kinds[i].ops->startup(kinds[i].state))
			proc_exit(1);
	ereport(LOG,
			(errmsg("%s started for database \"%s\"", WorkerName(), svc->dbname)));

	/* Only a worker whose kinds send has a client (and its thread). */
	if (sends)
		svc->client = HttpClientCreate(integration_max_concurrency, integration_proxy);
}

/*
 * How long the loop may sleep, in ms (-1: until woken): until the earliest time a
 * kind, the scheduler (a token, a back-off, a circuit's probe) or libcurl needs it.
 */
static long
loop_timeout(WorkerServices *svc, WorkerKind *kinds, int nkinds)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = SchedulerNextWake(svc->scheduler, now);
	long		timeout;

	for (int i = 0; i < nkinds; i++)
	{
		TimestampTz w = kinds[i].ops->next_wake(kinds[i].state, now);

		if (w != 0 && (wake == 0 || w < wake))
			wake = w;
	}
	timeout = wake == 0 ? -1 : ms_until(wake, now);
	if (svc->client != NULL)
	{
		long		t = HttpClientTimeoutMs(svc->client);

		if (t >= 0)
			timeout = timeout < 0 ? t : Min(timeout, t);
	}
	return timeout;
}

/* SIGHUP: the settings again, for the client, the scheduler and each kind. */
static void
reload_settings(WorkerServices *svc, WorkerKind *kinds, int nkinds)
{
	SchedLimits limits;

	ProcessConfigFile(PGC_SIGHUP);
	if (svc->client != NULL)
		HttpClientConfigure(svc->client, integration_max_concurrency, integration_proxy);
	my_role->limits(&limits);
	SchedulerConfigure(svc->scheduler, &limits);
	for (int i = 0; i < nkinds; i++)
		if (kinds[i].ops->reload != NULL)
			kinds[i].ops->reload(kinds[i].state);
}

void
integration_database_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	WorkerRole	role;
	WorkerServices svc;
	WorkerKind	kinds[MAX_KINDS];
	int			nkinds;
	WaitEventSet *set;
	MemoryContext loop_cxt;

	memcpy(&role, MyBgworkerEntry->bgw_extra, sizeof(role));
	if (role < 0 || role >= WORKER_NUM_ROLES)
		elog(ERROR, "unknown integration worker role %d", (int) role);
	my_role = &WorkerRoles[role];
	nkinds = my_role->nkinds;
	Assert(nkinds <= lengthof(kinds));
	worker_start(dboid, role, &svc, kinds);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "integration worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	if (svc.client != NULL)
		AddWaitEventToSet(set, WL_SOCKET_READABLE, HttpClientFd(svc.client), NULL, NULL);

	for (;;)
	{
		WaitEvent	event;
		TimestampTz now;
		long		timeout;
		int			in_flight;
		bool		latched;
		uint32		requests;

		CHECK_FOR_INTERRUPTS();
		WorkerDropStrayCancel();
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);

		if (WorkerSlotStopRequested())
		{
			ereport(LOG,
					(errmsg("%s for database \"%s\" stopping on request", WorkerName(),
							svc.dbname)));
			proc_exit(0);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			reload_settings(&svc, kinds, nkinds);
		}

		/* Open circuits whose wait is over go half open. */
		SchedulerTick(svc.scheduler, GetCurrentTimestamp());

		/* 1. Finished requests go to their kinds. */
		take_finished(&svc, kinds, nkinds);
		start_work(&svc, kinds, nkinds);

		/*
		 * 2. At most one store transaction per kind; 3. then start what may
		 * start.
		 */
		now = GetCurrentTimestamp();
		for (int i = 0; i < nkinds; i++)
			if (kinds[i].ops->step(kinds[i].state, now))
				start_work(&svc, kinds, nkinds);

		/* Slots held without a client are events held, not requests. */
		in_flight = svc.client != NULL ? SchedulerInFlight(svc.scheduler) : 0;
		WorkerSlotSetInFlight(in_flight);
		SchedulerPublish(svc.scheduler, GetCurrentTimestamp());
		WorkerSlotSetActivity(in_flight > 0 ? WORKER_SENDING : WORKER_IDLE);

		/* 4. Sleep until a kind, the scheduler or libcurl needs the loop. */
		timeout = loop_timeout(&svc, kinds, nkinds);

		/*
		 * Whatever waited on this process's latch during the turn (a
		 * handler's pg_sleep() or lock wait, a lock wait of the worker's own)
		 * reset it and swallowed the wake-ups that set it; their requests are
		 * still in the slot, and are not slept on.
		 */
		if (WorkerSlotWakePending())
			timeout = 0;
		latched = WaitEventSetWait(set, timeout, &event, 1, PG_WAIT_EXTENSION) == 1 &&
			(event.events & WL_LATCH_SET);
		if (latched)
			ResetLatch(MyLatch);
		requests = WorkerSlotTakeWakeRequests();
		if (latched || requests != 0)
			for (int i = 0; i < nkinds; i++)
				if (kinds[i].ops->woken != NULL)
					kinds[i].ops->woken(kinds[i].state, requests);
	}
}
