/*
 * worker.c
 *		The delivery worker: a launcher plus one background worker per database that has
 *		the extension, each draining integration.deliveries over HTTP.
 *
 * Processes.  The launcher is a static worker registered from _PG_init.  It reads
 * pg_database once and starts a database worker for each database that accepts
 * connections (or only integration.database_name); a database worker that finds no
 * extension exits with code 0, which unregisters it.  CREATE EXTENSION starts the
 * worker of its database when it commits (integration.start_worker()), and a worker
 * exits when the extension is dropped.  Shared memory has one slot per running worker;
 * taking a slot is serialised, so a database never has two workers.
 *
 * The loop.  One WaitEventSet holds the latch, postmaster death and the eventfd the
 * HTTP client's thread writes when requests finish (http_client.c runs libcurl on a
 * thread of its own, so SQL here and HTTP there overlap); its timeout is the earliest
 * of the next due retry, the result-flush deadline and the idle recheck.
 * Publishing transactions set the latch at commit (wakeup.c), so new events are claimed
 * within milliseconds, and nothing polls a table on a short timer.  Each turn:
 *   1. take the requests the HTTP thread has finished; turn them into results;
 *   2. write results back in one transaction when a batch is full, nothing is in
 *      flight, or the oldest result has waited RESULT_FLUSH_MS;
 *   3. when woken, due, or capacity freed up: fan out new events and claim due
 *      deliveries in one transaction, then start their requests.
 * No transaction is open while requests are in flight, and locks are held only for the
 * duration of each short transaction, so the worker never blocks DDL.
 *
 * Failure containment.  A request libcurl refuses, an endpoint that was disabled, a
 * secret that no longer parses: each becomes that delivery's failed attempt.  A failed
 * transaction (a deadlock, a dropped table) is caught, logged, recorded as the worker's
 * last error and retried after a pause, with its results kept, so no single delivery
 * can crash the loop.  If the worker dies anyway, its claims ('sending') go back to
 * 'pending' when the next one starts: every committed delivery is sent at least once.
 */
#include "postgres.h"

#include <sys/epoll.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "mb/pg_wchar.h"

#include "delivery_store.h"
#include "http_client.h"
#include "integration.h"
#include "retry_policy.h"
#include "shared_state.h"
#include "signature.h"
#include "tenant.h"
#include "wakeup.h"
#include "worker.h"

#define RESULT_BATCH 512
#define RESULT_FLUSH_MS 10
/* Claimed deliveries kept ahead of the request slots, in units of max_concurrency. */
#define PREFETCH_ROUNDS 8
/* While slow endpoints block the queue, claim for others up to this many rounds. */
#define QUEUE_LIMIT_ROUNDS 16
/* Full fan-out batches continued from where the last ended before one from the start. */
#define FANOUT_RESTART_ROUNDS 16
#define ERROR_PAUSE_MS 1000
/*
 * Longest wait for a lock in a store transaction.  Past it the transaction fails and
 * the worker turns careful for CAREFUL_MS: it stops waiting for row locks held by
 * others, and retries what they hold every LOCKED_RETRY_MS.
 */
#define WORKER_LOCK_TIMEOUT "1s"
#define CAREFUL_MS 60000
#define LOCKED_RETRY_MS 1000
#define LOCKED_RETRY_MAX_MS 10000
#define RECORD_MAX_FAILURES 3
#define LEASE_MARGIN_MS 60000

/* Settings. */
static bool integration_worker_enabled = true;
static char *integration_database_name = NULL;
static int	integration_max_concurrency = 64;
static int	integration_max_concurrency_per_endpoint = 16;
static int	integration_connect_timeout_ms = 5000;
static int	integration_request_timeout_ms = 30000;
static int	integration_max_response_bytes = 16 * 1024;
static char *integration_proxy = NULL;
static int	integration_idle_recheck_ms = 60000;

void
worker_define_gucs(void)
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
	DefineCustomStringVariable("integration.proxy",
							   "Proxy for webhook requests, e.g. http://proxy:3128; empty: none, whatever the environment says.",
							   NULL, &integration_proxy, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.idle_recheck_interval",
							"How often an idle worker looks for work nobody woke it for (e.g. prepared transactions).",
							NULL, &integration_idle_recheck_ms, 60000, 1000, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------------------
 * Starting workers
 * ------------------------------------------------------------------------------------ */

PGDLLEXPORT void integration_launcher_main(Datum arg);
PGDLLEXPORT void integration_database_worker_main(Datum arg);

void
worker_register_launcher(void)
{
	BackgroundWorker bgw;

	if (!integration_worker_enabled)
		return;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	strlcpy(bgw.bgw_library_name, "integration", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "integration_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "integration launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "integration launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

/* Asks the postmaster for a worker for dboid; false when no slot is free. */
static bool
start_database_worker(Oid dboid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	strlcpy(bgw.bgw_library_name, "integration", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "integration_database_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "integration worker for database %u", dboid);
	strlcpy(bgw.bgw_type, "integration worker", BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	bgw.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&bgw, &handle);
}

static bool
database_has_worker(Oid dboid)
{
	bool		found = false;

	for (int i = 0; i < INTEGRATION_MAX_WORKERS && !found; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		SpinLockAcquire(&slot->mutex);
		found = slot->in_use && slot->dboid == dboid;
		SpinLockRelease(&slot->mutex);
	}
	return found;
}

/* The launcher: starts a worker per database, then waits for shutdown. */
void
integration_launcher_main(Datum arg)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	ListCell   *lc;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/* No database: pg_database is a shared catalog. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate)
			continue;
		if (integration_database_name[0] != '\0' &&
			strcmp(NameStr(db->datname), integration_database_name) != 0)
			continue;
		dbs = lappend_oid(dbs, db->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach(lc, dbs)
	{
		if (!database_has_worker(lfirst_oid(lc)) && !start_database_worker(lfirst_oid(lc)))
			ereport(WARNING,
					(errmsg("integration launcher could not start a worker for database %u",
							lfirst_oid(lc)),
					 errhint("Raise max_worker_processes.")));
	}
	ereport(LOG, (errmsg("integration launcher checked %d databases", list_length(dbs))));

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

static bool start_at_commit = false;
static bool start_callback_registered = false;

static void
start_worker_xact_callback(XactEvent event, void *arg)
{
	if (!start_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT && !database_has_worker(MyDatabaseId))
	{
		if (!start_database_worker(MyDatabaseId))
			ereport(WARNING,
					(errmsg("could not start the integration worker for this database"),
					 errhint("Raise max_worker_processes, then restart the server.")));
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		start_at_commit = false;
}

PG_FUNCTION_INFO_V1(integration_start_worker);

/*
 * start_worker(): this database's worker starts when the transaction commits (so it
 * sees the extension CREATE EXTENSION just made).  Returns false when it already runs
 * or integration.database_name names another database.
 */
Datum
integration_start_worker(PG_FUNCTION_ARGS)
{
	if (integration_shared == NULL || !integration_worker_enabled)
		PG_RETURN_BOOL(false);
	if (integration_database_name[0] != '\0' &&
		strcmp(get_database_name(MyDatabaseId), integration_database_name) != 0)
		PG_RETURN_BOOL(false);
	if (database_has_worker(MyDatabaseId))
		PG_RETURN_BOOL(false);
	if (!start_callback_registered)
	{
		RegisterXactCallback(start_worker_xact_callback, NULL);
		start_callback_registered = true;
	}
	start_at_commit = true;
	PG_RETURN_BOOL(true);
}

/* ------------------------------------------------------------------------------------
 * The database worker
 * ------------------------------------------------------------------------------------ */

static IntegrationWorkerSlot *my_slot = NULL;

static void
slot_set_state(const char *state)
{
	SpinLockAcquire(&my_slot->mutex);
	strlcpy(my_slot->state, state, WORKER_STATE_LEN);
	SpinLockRelease(&my_slot->mutex);
}

static void
slot_set_error(const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&my_slot->mutex);
	strlcpy(my_slot->last_error, error, WORKER_ERROR_LEN);
	my_slot->last_error_at = now;
	SpinLockRelease(&my_slot->mutex);
}

static void
release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&my_slot->mutex);
	my_slot->in_use = false;
	my_slot->latch = NULL;
	my_slot->pid = 0;
	SpinLockRelease(&my_slot->mutex);
	my_slot = NULL;
}

/* Takes a free slot for dboid; NULL when the database already has a worker. */
static IntegrationWorkerSlot *
take_slot(Oid dboid)
{
	IntegrationWorkerSlot *free_slot = NULL;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&integration_shared->slots_mutex);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		if (slot->in_use && slot->dboid == dboid)
		{
			SpinLockRelease(&integration_shared->slots_mutex);
			return NULL;
		}
		if (!slot->in_use && free_slot == NULL)
			free_slot = slot;
	}
	if (free_slot)
	{
		SpinLockAcquire(&free_slot->mutex);
		free_slot->in_use = true;
		free_slot->dboid = dboid;
		free_slot->pid = MyProcPid;
		free_slot->latch = MyLatch;
		free_slot->stop_requested = false;
		free_slot->due_requested = false;
		strlcpy(free_slot->state, "starting", WORKER_STATE_LEN);
		free_slot->in_flight = 0;
		free_slot->sent = free_slot->delivered = free_slot->failed_attempts = 0;
		free_slot->started_at = now;
		free_slot->last_error[0] = '\0';
		free_slot->last_error_at = 0;
		SpinLockRelease(&free_slot->mutex);
	}
	SpinLockRelease(&integration_shared->slots_mutex);
	return free_slot;
}

/* The requests of one claim: their memory goes when the last one is recorded. */
typedef struct ClaimBatch
{
	MemoryContext cxt;
	int			refs;
} ClaimBatch;

typedef struct InFlight
{
	HttpRequest req;
	ClaimedDelivery *claim;
	ClaimBatch *batch;
	dlist_node node;
} InFlight;

/* A claimed delivery waiting for a free request slot. */
typedef struct Queued
{
	ClaimedDelivery *claim;
	ClaimBatch *batch;
} Queued;

/* Deliveries this worker holds for one endpoint; no entry while it holds none. */
typedef struct EndpointLoad
{
	int64		endpoint_id;	/* hash key */
	int			in_flight;
	int			queued;
} EndpointLoad;

typedef struct WorkerState
{
	HttpClient *client;
	dlist_head	in_flight;
	int			n_in_flight;
	HTAB	   *endpoint_load;
	Queued	   *queue;			/* claimed, not started, in claim order */
	int			queue_len;
	int			queue_cap;
	bool		queue_blocked;	/* free slots, but every queued endpoint is at its limit */
	bool		fanout_needed;
	int64		fanout_after;	/* fan out events above this id; PG_INT64_MIN: all */
	int			fanout_continued;	/* batches since the last from the start */
	int			record_failures;	/* consecutive */
	bool		reconcile_needed;	/* look for expired leases */
	TimestampTz reconcile_at;	/* when to, after results were dropped; 0: never */
	MemoryContext results_cxt;
	DeliveryResult *results;
	int			nresults;
	int			maxresults;
	TimestampTz first_result_at;
	TimestampTz next_due;		/* 0: nothing pending */
	TimestampTz next_recheck;
	bool		scan_needed;
	bool		due_needed;		/* pending deliveries may be due: claim them */
	bool		next_due_stale; /* claims ran since next_due was last read */
	TimestampTz claimed_at;		/* now() of the last claim: what was due then it took */
	int64	   *skipped;		/* endpoints the last claim left out, at their limit */
	int			nskipped;
	uint64		endpoints_seen; /* endpoints generation the queued claims are as of */
	TimestampTz careful_until;	/* after a lock wait timed out: skip locked rows */
	int			ndeferred;		/* results[0..ndeferred): their rows were locked */
	TimestampTz deferred_retry_at;
	TimestampTz fanout_retry_at;	/* events were queued again for a locked endpoint */
	bool		lock_timed_out; /* the last failed transaction waited too long */
	bool		record_alone;	/* after a lock timeout: results first, then claims */
	bool		fanout_put_back;	/* this fan-out sweep queued events again */
	int			fanout_retry_ms;	/* delay of the last retry; 0: the next waits LOCKED_RETRY_MS */
	bool		extension_gone;
	ClaimList	claims;			/* by the last cycle */
	char	   *dbname;
} WorkerState;

static EndpointLoad *
endpoint_load(WorkerState *ws, int64 endpoint_id, bool create)
{
	bool		found;
	EndpointLoad *load;

	load = hash_search(ws->endpoint_load, &endpoint_id, create ? HASH_ENTER : HASH_FIND, &found);
	if (create && !found)
		load->in_flight = load->queued = 0;
	return load;
}

/* Text safe to store: valid UTF-8 without NULs (invalid bytes become '?'). */
static char *
storable_text(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		i = 0;

	while (i < len)
	{
		int			l = pg_utf_mblen((const unsigned char *) s + i);

		if (s[i] != '\0' && i + l <= len && pg_utf8_islegal((const unsigned char *) s + i, l))
		{
			memcpy(out + i, s + i, l);
			i += l;
		}
		else
			out[i++] = '?';
	}
	out[len] = '\0';
	return out;
}

static void
add_result(WorkerState *ws, ClaimedDelivery *c, const char *outcome, int attempt,
		   TimestampTz started, int64 duration_us, int status_code, const char *error_class,
		   const char *error, const char *response, size_t response_len, TimestampTz next_at)
{
	MemoryContext old = MemoryContextSwitchTo(ws->results_cxt);
	DeliveryResult *r;

	if (ws->nresults == ws->maxresults)
	{
		ws->maxresults = Max(64, ws->maxresults * 2);
		ws->results = ws->results ? repalloc(ws->results, sizeof(DeliveryResult) * ws->maxresults)
			: palloc(sizeof(DeliveryResult) * ws->maxresults);
	}
	if (ws->nresults == ws->ndeferred)
		ws->first_result_at = GetCurrentTimestamp();
	r = &ws->results[ws->nresults++];
	r->tenant_id = pstrdup(c->tenant_id);
	r->id = c->id;
	r->endpoint_id = c->endpoint_id;
	r->outcome = outcome;
	r->attempt = attempt;
	r->started_at = started;
	r->duration_ms = (int) Min(duration_us / 1000, (int64) PG_INT32_MAX);
	r->status_code = status_code;
	r->error_class = error_class;
	r->error = error ? storable_text(error, strlen(error)) : NULL;
	r->response = response ? storable_text(response, response_len) : NULL;
	r->next_attempt_at = next_at;
	ItemPointerCopy(&c->tid, &r->tid);
	r->lease = c->lease;
	MemoryContextSwitchTo(old);

	SpinLockAcquire(&my_slot->mutex);
	if (strcmp(outcome, "delivered") == 0)
		my_slot->delivered++;
	else
		my_slot->failed_attempts++;
	SpinLockRelease(&my_slot->mutex);
}

/* Records a failed attempt of c: scheduled again, or failed for good. */
static void
add_failure(WorkerState *ws, ClaimedDelivery *c, TimestampTz started, int64 duration_us,
			int status_code, const char *error_class, const char *error,
			const char *response, size_t response_len, const char *retry_after, bool final)
{
	int			attempt = c->attempts + 1;
	const RetrySchedule *schedule = default_retry_schedule();
	RetrySchedule own;
	int64		delay = -1;
	TimestampTz now = GetCurrentTimestamp();

	if (c->retry_schedule != NULL)
	{
		const char *perr;

		if (parse_retry_schedule(c->retry_schedule, &own, &perr))
			schedule = &own;
	}
	if (!final)
		delay = next_retry_delay_ms(schedule, attempt, retry_after_ms(retry_after, now),
									pg_prng_double(&pg_global_prng_state));
	if (delay < 0)
		add_result(ws, c, "failed", attempt, started, duration_us, status_code, error_class,
				   error, response, response_len, 0);
	else
		add_result(ws, c, "pending", attempt, started, duration_us, status_code, error_class,
				   error, response, response_len, TimestampTzPlusMilliseconds(now, delay));
}

static void
batch_unref(ClaimBatch *batch)
{
	if (--batch->refs == 0)
		MemoryContextDelete(batch->cxt);
}

/*
 * Called when the worker holds one delivery fewer for endpoint_id (held now).  If the
 * last claim left that endpoint out for being at its limit and it has room again, its
 * due deliveries can be claimed now.  This, not a timer, is what brings them in: a
 * saturated endpoint with a backlog never makes the worker spin.
 */
static void
endpoint_has_room(WorkerState *ws, int64 endpoint_id, int held)
{
	if (ws->nskipped > 0 && held < integration_max_concurrency_per_endpoint &&
		bsearch(&endpoint_id, ws->skipped, ws->nskipped, sizeof(int64), int64_cmp))
	{
		ws->nskipped = 0;
		ws->due_needed = true;
		ws->scan_needed = true;
	}
}

/* Turns a finished request into a result. */
static void
finish_request(WorkerState *ws, InFlight *f)
{
	HttpRequest *req = &f->req;
	ClaimedDelivery *c = f->claim;

	if (req->error_class == HTTP_OK && req->status_code >= 200 && req->status_code < 300)
		add_result(ws, c, "delivered", c->attempts + 1, req->started_at, req->duration_us,
				   (int) req->status_code, NULL, NULL, req->response, req->response_len, 0);
	else if (req->error_class == HTTP_OK)
	{
		char		msg[128];

		if (req->status_code >= 300 && req->status_code < 400)
			snprintf(msg, sizeof(msg), "HTTP %ld: redirects are not followed", req->status_code);
		else
			snprintf(msg, sizeof(msg), "HTTP %ld", req->status_code);
		add_failure(ws, c, req->started_at, req->duration_us, (int) req->status_code,
					req->status_code >= 300 && req->status_code < 400 ? "redirect" : "http_status",
					msg, req->response, req->response_len, req->retry_after,
					req->status_code == 410);
	}
	else
		add_failure(ws, c, req->started_at, req->duration_us, 0,
					http_error_class_name(req->error_class), req->error, NULL, 0, NULL, false);

	http_request_release(req);
	dlist_delete(&f->node);
	ws->n_in_flight--;
	{
		EndpointLoad *load = endpoint_load(ws, c->endpoint_id, false);
		int			held = 0;

		if (load)
		{
			load->in_flight--;
			held = load->in_flight + load->queued;
			if (held <= 0)
				hash_search(ws->endpoint_load, &c->endpoint_id, HASH_REMOVE, NULL);
		}

		endpoint_has_room(ws, c->endpoint_id, held);
	}
	batch_unref(f->batch);
}

static struct curl_slist *
append_header(struct curl_slist *list, const char *name, int namelen,
			  const char *value, int valuelen, bool *ok)
{
	char	   *line;
	struct curl_slist *next;
	int			blanks = 0;

	if (!*ok)
		return list;
	/*
	 * To libcurl "Name:" (blanks after the colon included) means: leave the header out;
	 * "Name;" sends it empty.  A value of blanks is the empty value in HTTP anyway.
	 */
	while (blanks < valuelen && (value[blanks] == ' ' || value[blanks] == '\t'))
		blanks++;
	line = blanks < valuelen ? psprintf("%.*s: %.*s", namelen, name, valuelen, value)
		: psprintf("%.*s;", namelen, name);
	next = curl_slist_append(list, line);
	pfree(line);
	if (next == NULL)
		*ok = false;
	return next ? next : list;
}

/*
 * Builds and starts the request for claim c; a delivery that cannot be sent fails here.
 * Returns whether a request started.
 */
static bool
start_request(WorkerState *ws, ClaimedDelivery *c, ClaimBatch *batch)
{
	InFlight   *f;
	char		msg_id[32];
	char		ts[24];
	const char *sig_error = NULL;
	char	   *signature;
	int64		now_s = (int64) time(NULL);
	bool		ok = true;
	struct curl_slist *h = NULL;
	struct curl_slist *next;
	TimestampTz now = GetCurrentTimestamp();

	if (!c->usable)
	{
		add_result(ws, c, "failed", c->attempts + 1, now, 0, 0, "endpoint_disabled",
				   c->payload ? "the endpoint is disabled or deleted" : "the event no longer exists",
				   NULL, 0, 0);
		return false;
	}

	snprintf(msg_id, sizeof(msg_id), "evt_" INT64_FORMAT, c->event_id);
	snprintf(ts, sizeof(ts), INT64_FORMAT, now_s);
	signature = webhook_standard_signature(c->secret, msg_id, now_s, c->payload,
										   c->payload_len, &sig_error);
	if (signature == NULL)
	{
		add_result(ws, c, "failed", c->attempts + 1, now, 0, 0, "invalid_request",
				   sig_error ? sig_error : "the endpoint secret cannot sign", NULL, 0, 0);
		return false;
	}

	h = append_header(h, "Content-Type", 12, "application/json", 16, &ok);
	h = append_header(h, "User-Agent", 10, INTEGRATION_USER_AGENT, strlen(INTEGRATION_USER_AGENT), &ok);
	h = append_header(h, "webhook-id", 10, msg_id, strlen(msg_id), &ok);
	h = append_header(h, "webhook-timestamp", 17, ts, strlen(ts), &ok);
	h = append_header(h, "webhook-signature", 17, signature, strlen(signature), &ok);
	/* No "Expect: 100-continue" round trip for larger bodies ("Expect:" removes it). */
	if (ok && (next = curl_slist_append(h, "Expect:")) != NULL)
		h = next;
	else
		ok = false;
	if (c->headers != NULL && JB_ROOT_IS_OBJECT(c->headers))
	{
		JsonbIterator *it = JsonbIteratorInit(&c->headers->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *name = NULL;
		int			namelen = 0;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				name = v.val.string.val;
				namelen = v.val.string.len;
			}
			else if (tok == WJB_VALUE && v.type == jbvString)
				h = append_header(h, name, namelen, v.val.string.val, v.val.string.len, &ok);
		}
	}
	if (!ok)
	{
		curl_slist_free_all(h);
		add_result(ws, c, "failed", c->attempts + 1, now, 0, 0, "invalid_request",
				   "could not build the request headers", NULL, 0, 0);
		return false;
	}

	f = MemoryContextAllocZero(batch->cxt, sizeof(InFlight));
	f->claim = c;
	f->batch = batch;
	f->req.owner = f;
	f->req.url = c->url;
	f->req.body = c->payload;
	f->req.body_len = c->payload_len;
	f->req.headers = h;
	f->req.connect_timeout_ms = integration_connect_timeout_ms;
	f->req.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : integration_request_timeout_ms;
	f->req.max_response_bytes = integration_max_response_bytes;

	batch->refs++;				/* released in finish_request() */
	dlist_push_tail(&ws->in_flight, &f->node);
	ws->n_in_flight++;
	endpoint_load(ws, c->endpoint_id, true)->in_flight++;	/* queued-- in start_queued() */
	SpinLockAcquire(&my_slot->mutex);
	my_slot->sent++;
	SpinLockRelease(&my_slot->mutex);

	http_client_start(ws->client, &f->req);
	return true;
}

/*
 * Runs one store transaction; on error, logs it, records it as the worker's last error,
 * rolls back and returns false.  The caller keeps its state and tries again later.
 */
typedef void (*StoreStep) (WorkerState *ws);

static bool
run_transaction(WorkerState *ws, StoreStep step, const char *activity)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		store_begin(activity);
		/* Cancels count from here on; one that came in between transactions is void. */
		QueryCancelPending = false;
		RESUME_CANCEL_INTERRUPTS();
		step(ws);
		HOLD_CANCEL_INTERRUPTS();
		store_commit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * Held again, whatever the error left: logging checks for interrupts, and
		 * lock_timeout signals twice, so a cancel can still be pending here.
		 */
		QueryCancelHoldoffCount = 1;
		QueryCancelPending = false;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("integration worker: %s failed: %s", activity, edata->message)));
		slot_set_error(edata->message);
		if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		{
			ws->careful_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CAREFUL_MS);
			ws->lock_timed_out = true;
			ws->record_alone = true;	/* the claim part may be what waited */
		}
		FreeErrorData(edata);
		store_forget_plans();
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

/* What one store transaction does: record results, then fan out and claim. */
typedef struct CycleRequest
{
	bool		record;
	bool		claim;
	bool		careful;
	int			deferred;		/* out: results left for later */
	bool		put_back;		/* out: events queued again */
} CycleRequest;

/* Whether store transactions should skip rows others hold locked (see CAREFUL_MS). */
static bool
careful(WorkerState *ws)
{
	return ws->ndeferred > 0 || GetCurrentTimestamp() < ws->careful_until;
}

static CycleRequest cycle_request;

/* Ids of the deliveries this worker holds (queued, in flight, or answered). */
static int
held_deliveries(WorkerState *ws, int64 **out)
{
	int64	   *ids = palloc(sizeof(int64) * Max(ws->n_in_flight + ws->queue_len + ws->nresults, 1));
	int			n = 0;
	dlist_iter	iter;

	dlist_foreach(iter, &ws->in_flight)
		ids[n++] = dlist_container(InFlight, node, iter.cur)->claim->id;
	for (int i = 0; i < ws->queue_len; i++)
		ids[n++] = ws->queue[i].claim->id;
	/* Answered, not written yet (deferred ones included). */
	for (int i = 0; i < ws->nresults; i++)
		ids[n++] = ws->results[i].id;
	*out = ids;
	return n;
}

/*
 * Endpoints whose queued plus in-flight deliveries reach the per-endpoint limit,
 * sorted, in TopMemoryContext (they are kept in ws->skipped).
 */
static int
saturated_endpoints(WorkerState *ws, int64 **out)
{
	int64	   *sat = MemoryContextAlloc(TopMemoryContext,
										 sizeof(int64) * Max(hash_get_num_entries(ws->endpoint_load), 1));
	int			nsat = 0;
	HASH_SEQ_STATUS seq;
	EndpointLoad *load;

	hash_seq_init(&seq, ws->endpoint_load);
	while ((load = hash_seq_search(&seq)) != NULL)
		if (load->in_flight + load->queued >= integration_max_concurrency_per_endpoint)
			sat[nsat++] = load->endpoint_id;
	qsort(sat, nsat, sizeof(int64), int64_cmp);
	*out = sat;
	return nsat;
}

/*
 * Events fanned out, or due deliveries claimed, by one cycle: one round of requests
 * (integration.max_concurrency), within [16, STORE_BATCH].  Requests that finish while
 * a cycle runs keep their slots until the next one commits, so a cycle that writes
 * more than a round of deliveries leaves the slots idle for its last part: at 64 in
 * flight, batches of 64 delivered about a sixth more per second than batches of 256
 * (bench/run, interleaved rounds), with fewer commits per delivery.
 */
static int
cycle_batch(void)
{
	return Min(Max(integration_max_concurrency, 16), STORE_BATCH);
}

static void
step_cycle(WorkerState *ws)
{
	int			lease_ms = integration_request_timeout_ms + LEASE_MARGIN_MS;
	int			batch = cycle_batch();

	/* Dropped, or dropped and created again: nothing here belongs to its tables. */
	if (!store_extension_present())
	{
		ws->extension_gone = true;
		return;
	}
	if (cycle_request.record)
		cycle_request.deferred = store_record(ws->results, ws->nresults, cycle_request.careful);
	if (cycle_request.claim)
	{
		int			want = Max(PREFETCH_ROUNDS * integration_max_concurrency -
							   ws->queue_len - ws->n_in_flight, integration_max_concurrency);
		int64	   *ids;
		int			n;

		if (ws->reconcile_needed)
		{
			n = held_deliveries(ws, &ids);
			(void) store_reconcile_leases(false, ids, n);
			ws->reconcile_needed = false;
			/* It skips locked rows: look again while locks are around. */
			if (cycle_request.careful)
				ws->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CAREFUL_MS);
		}
		ws->scan_needed = false;
		if (ws->fanout_needed)
		{
			bool		from_start = (ws->fanout_after == PG_INT64_MIN);
			int64		last = ws->fanout_after;
			int			taken = store_fan_out_and_claim(lease_ms, batch, &last, cycle_request.careful,
														&cycle_request.put_back, &ws->claims);

			/*
			 * A full batch: continue after its last event, from the start every
			 * FANOUT_RESTART_ROUNDS.  A batch that was not full ends the fan-out, after
			 * one more from the start if this one was continued, unless this sweep
			 * queued events again: those would fill that pass again and again, so the
			 * next one from the start waits for fanout_retry_at.
			 */
			if (from_start)
			{
				/* The last sweep put nothing back: the locks are gone. */
				if (!ws->fanout_put_back)
					ws->fanout_retry_ms = 0;
				ws->fanout_put_back = false;
			}
			if (cycle_request.put_back)
				ws->fanout_put_back = true;
			ws->fanout_needed = taken >= batch || (!from_start && !ws->fanout_put_back);
			ws->fanout_after = PG_INT64_MIN;
			/* Events put back sit at the front: a restart would only take them again. */
			if (taken >= batch &&
				(++ws->fanout_continued < FANOUT_RESTART_ROUNDS || ws->fanout_put_back))
				ws->fanout_after = last;
			else
				ws->fanout_continued = 0;
			/*
			 * And a sweep that put events back keeps its place: the fan-outs that new
			 * events wake continue past those, and only fanout_retry_at starts over.
			 */
			if (ws->fanout_put_back && taken < batch)
				ws->fanout_after = last;
		}
		/*
		 * Due deliveries appear when a retry comes due or someone requeues (both wake
		 * the worker), not because events were fanned out: a cycle that only
		 * continues a fan-out skips this scan.  Endpoints left out for being at their
		 * limit keep it on, so their deliveries are claimed once they have room.
		 */
		if (ws->claims.count < want && ws->due_needed)
		{
			int			claimed;

			/*
			 * Endpoints at their limit are left out, and their due deliveries stay
			 * pending until one of their requests finishes (finish_request()).
			 */
			n = saturated_endpoints(ws, &ids);
			if (ws->skipped)
				pfree(ws->skipped);
			ws->skipped = ids;	/* kept here before the claim, which may throw */
			ws->nskipped = n;
			claimed = store_claim(lease_ms, batch, ids, n, &ws->claims);
			ws->next_due_stale = true;
			ws->claimed_at = GetCurrentTransactionStartTimestamp();
			/* A full batch: more may be due now. */
			ws->due_needed = claimed >= batch;
		}

		/*
		 * Continue a fan-out, or a claim that is still owed (a full batch, or one the
		 * queue had no room for: it runs once the queue drains); else sleep until the
		 * next delivery comes due.  Only claims change which pending delivery that is
		 * (the retries that results schedule are folded in by run_cycle()), so a cycle
		 * that only fans out skips the query.
		 */
		if (ws->fanout_needed || ws->due_needed)
			ws->scan_needed = true;
		if (!ws->scan_needed && ws->next_due_stale)
		{
			/*
			 * Due after the last claim looked, perhaps in an earlier transaction (a
			 * fan-out continued meanwhile): what came due since is in the past now,
			 * and wakes the worker at once.  Endpoints the claim left out count only
			 * once they have room (endpoint_has_room()).
			 */
			ws->next_due = store_next_due(ws->claimed_at, ws->skipped, ws->nskipped);
			ws->next_due_stale = false;
		}
	}
}

typedef struct QueuedEndpointKey
{
	int64		id;
	char		tenant_id[TENANT_ID_MAX_LEN + 1];
} QueuedEndpointKey;

typedef struct QueuedEndpoint
{
	QueuedEndpointKey key;
	int			index;			/* into the settings read */
} QueuedEndpoint;

/* The settings of one endpoint, copied once into one batch's context. */
typedef struct BatchCopyKey
{
	ClaimBatch *batch;
	int			index;
} BatchCopyKey;

typedef struct BatchCopy
{
	BatchCopyKey key;
	EndpointSettings settings;
} BatchCopy;

/*
 * Claims wait in the queue for a slot, up to many rounds of requests: an endpoint
 * changed meanwhile (a new URL, secret or headers; disabled; deleted) must apply to
 * them, as to any attempt that starts after the change committed.  Re-reads the
 * settings of their endpoints; the queue keeps its order.
 */
static void
step_refresh_endpoints(WorkerState *ws)
{
	HASHCTL		ctl;
	HTAB	   *endpoints;
	HTAB	   *copies;
	EndpointSettings *eps = palloc(sizeof(EndpointSettings) * ws->queue_len);
	int			n = 0;

	/* Dropped, or dropped and created again: these claims have no endpoints left. */
	if (!store_extension_present())
	{
		ws->extension_gone = true;
		return;
	}
	ctl.keysize = sizeof(QueuedEndpointKey);
	ctl.entrysize = sizeof(QueuedEndpoint);
	ctl.hcxt = CurrentMemoryContext;
	endpoints = hash_create("integration queued endpoints", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(BatchCopyKey);
	ctl.entrysize = sizeof(BatchCopy);
	copies = hash_create("integration refreshed settings", 64, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < ws->queue_len; i++)
	{
		ClaimedDelivery *c = ws->queue[i].claim;
		QueuedEndpointKey key;
		bool		found;
		QueuedEndpoint *ep;

		memset(&key, 0, sizeof(key));
		key.id = c->endpoint_id;
		strlcpy(key.tenant_id, c->tenant_id, sizeof(key.tenant_id));
		ep = hash_search(endpoints, &key, HASH_ENTER, &found);
		if (found)
			continue;
		ep->index = n;
		eps[n].tenant_id = c->tenant_id;
		eps[n].id = c->endpoint_id;
		n++;
	}
	store_read_endpoints(eps, n, CurrentMemoryContext);

	for (int i = 0; i < ws->queue_len; i++)
	{
		Queued		q = ws->queue[i];
		ClaimedDelivery *c = q.claim;
		QueuedEndpointKey key;
		BatchCopyKey copy_key;
		BatchCopy  *copy;
		bool		found;

		memset(&key, 0, sizeof(key));
		key.id = c->endpoint_id;
		strlcpy(key.tenant_id, c->tenant_id, sizeof(key.tenant_id));
		memset(&copy_key, 0, sizeof(copy_key));
		copy_key.batch = q.batch;
		copy_key.index = ((QueuedEndpoint *) hash_search(endpoints, &key, HASH_FIND, NULL))->index;
		copy = hash_search(copies, &copy_key, HASH_ENTER, &found);
		if (!found)
		{
			/* Into the batch, as the claim's own strings; nothing in flight points at the old ones. */
			EndpointSettings *ep = &eps[copy_key.index];
			MemoryContext old = MemoryContextSwitchTo(q.batch->cxt);

			copy->settings = *ep;
			if (ep->url != NULL)
			{
				copy->settings.url = pstrdup(ep->url);
				copy->settings.secret = ep->secret ? pstrdup(ep->secret) : NULL;
				copy->settings.headers = ep->headers ?
					(Jsonb *) pg_detoast_datum_copy((struct varlena *) ep->headers) : NULL;
				copy->settings.retry_schedule = ep->retry_schedule ? pstrdup(ep->retry_schedule) : NULL;
			}
			MemoryContextSwitchTo(old);
		}
		if (copy->settings.url == NULL)
		{
			c->usable = false;	/* the endpoint was hard-deleted */
			continue;
		}
		/* A claim whose event is gone stays unusable, whatever its endpoint says. */
		c->usable = copy->settings.usable && c->payload != NULL;
		c->url = copy->settings.url;
		c->secret = copy->settings.secret;
		c->headers = copy->settings.headers;
		c->timeout_ms = copy->settings.timeout_ms;
		c->retry_schedule = copy->settings.retry_schedule;
	}
}

/*
 * Refreshes the queued claims, read as of an older endpoints generation, to the
 * given one.  Returns false when that failed: the claims must not go out as they are.
 */
static bool
refresh_queued_endpoints(WorkerState *ws, uint64 generation)
{
	/* generation was read before the snapshot: a change committed later is seen next time. */
	if (!run_transaction(ws, step_refresh_endpoints, "reading changed endpoints"))
		return false;
	ws->endpoints_seen = generation;
	return true;
}

static void
exit_extension_gone(WorkerState *ws)
{
	ereport(LOG,
			(errmsg("integration worker: extension dropped or created again in database \"%s\", exiting",
					ws->dbname)));

	/*
	 * Exit code 1: the postmaster starts the worker once more a second later.  If
	 * CREATE EXTENSION ran meanwhile (its start request saw this worker still
	 * running), that worker carries on; else it finds no extension and exits for good.
	 */
	proc_exit(1);
}

static void start_queued(WorkerState *ws);

/*
 * Starts what the queue holds, with the endpoints' settings of now; after a failed
 * transaction the refresh, and so the queue, waits for the end of the pause.
 */
static void
start_requests(WorkerState *ws, TimestampTz *pause_until)
{
	bool		fresh = true;
	uint64		generation = pg_atomic_read_u64(&integration_shared->endpoints_generation);

	if (ws->queue_len > 0 && generation != ws->endpoints_seen)
	{
		fresh = false;
		if (GetCurrentTimestamp() >= *pause_until)
		{
			fresh = refresh_queued_endpoints(ws, generation);
			if (!fresh)
				*pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
		}
	}
	if (ws->extension_gone)
		exit_extension_gone(ws);
	/* Until the refresh works (a table lock, say), the queue waits. */
	if (fresh)
		start_queued(ws);
}

/*
 * Starts queued deliveries, in claim order, while request slots are free, skipping
 * endpoints at integration.max_concurrency_per_endpoint: a slow endpoint waits for its
 * own slots and never holds up the others.
 *
 * A finished request keeps its slot until its result is committed.  So at most
 * integration.max_concurrency deliveries are ever sent but not recorded, which bounds
 * the duplicates a crash can cause; results whose rows someone else holds locked
 * (keep_deferred_results()) give their slots up, so those locks stall nobody else,
 * and add at most as many again.
 */
static void
start_queued(WorkerState *ws)
{
	MemoryContext old = CurrentMemoryContext;
	int			kept = 0;
	int			i;

	ws->queue_blocked = false;
	for (i = 0; i < ws->queue_len &&
		 ws->n_in_flight + ws->nresults - ws->ndeferred < integration_max_concurrency; i++)
	{
		Queued		q = ws->queue[i];
		EndpointLoad *load = endpoint_load(ws, q.claim->endpoint_id, false);	/* queue_push() made it */
		int			held;

		if (load->in_flight >= integration_max_concurrency_per_endpoint)
		{
			ws->queue[kept++] = q;
			continue;
		}
		held = --load->queued + load->in_flight;
		if (held <= 0)
			hash_search(ws->endpoint_load, &q.claim->endpoint_id, HASH_REMOVE, NULL);
		MemoryContextSwitchTo(q.batch->cxt);
		if (!start_request(ws, q.claim, q.batch))
			endpoint_has_room(ws, q.claim->endpoint_id, held);	/* it failed at once */
		MemoryContextSwitchTo(old);
		batch_unref(q.batch);	/* the queue's reference; a started request holds its own */
	}
	if (i < ws->queue_len)
		memmove(&ws->queue[kept], &ws->queue[i], sizeof(Queued) * (ws->queue_len - i));
	else if (kept > 0)
		ws->queue_blocked = true;
	ws->queue_len = kept + (ws->queue_len - i);
}

static void
queue_push(WorkerState *ws, ClaimedDelivery *c, ClaimBatch *batch)
{
	if (ws->queue_len == ws->queue_cap)
	{
		ws->queue_cap = Max(256, ws->queue_cap * 2);
		ws->queue = ws->queue ? repalloc(ws->queue, sizeof(Queued) * ws->queue_cap)
			: MemoryContextAlloc(TopMemoryContext, sizeof(Queued) * ws->queue_cap);
	}
	ws->queue[ws->queue_len].claim = c;
	ws->queue[ws->queue_len].batch = batch;
	ws->queue_len++;
	endpoint_load(ws, c->endpoint_id, true)->queued++;
}

/*
 * After a store transaction wrote the results: drops them, except the first n, whose
 * rows someone else held locked; those stay, without their request slots, and are
 * tried again after LOCKED_RETRY_MS.  More than integration.max_concurrency of them
 * are not kept, which bounds the duplicates a crash can add.
 */
static void
keep_deferred_results(WorkerState *ws, int n)
{
	MemoryContext cxt;
	DeliveryResult *kept;

	if (n > integration_max_concurrency)
	{
		/* As after failed writes (run_cycle()): their leases bring them back. */
		ereport(WARNING,
				(errmsg("integration worker: dropping %d delivery results whose rows stay locked",
						n - integration_max_concurrency)));
		n = integration_max_concurrency;
		ws->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   integration_request_timeout_ms + LEASE_MARGIN_MS + 1000);
	}

	if (n == 0)
	{
		MemoryContextReset(ws->results_cxt);
		ws->results = NULL;
		ws->nresults = ws->maxresults = ws->ndeferred = 0;
		return;
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "integration results", ALLOCSET_DEFAULT_SIZES);
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		kept = palloc(sizeof(DeliveryResult) * Max(n, 64));
		for (int i = 0; i < n; i++)
		{
			DeliveryResult *r = &ws->results[i];

			kept[i] = *r;
			kept[i].tenant_id = pstrdup(r->tenant_id);
			kept[i].error = r->error ? pstrdup(r->error) : NULL;
			kept[i].response = r->response ? pstrdup(r->response) : NULL;
		}
		MemoryContextSwitchTo(old);
		ws->deferred_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LOCKED_RETRY_MS);
	}
	MemoryContextDelete(ws->results_cxt);
	ws->results_cxt = cxt;
	ws->results = kept;
	ws->nresults = ws->ndeferred = n;
	ws->maxresults = Max(n, 64);
}

/*
 * One store transaction: writes back finished results and/or claims more deliveries.
 * Returns false when it failed; results are then kept and retried after a pause.
 */
static bool
run_cycle(WorkerState *ws, bool record, bool claim)
{
	ClaimBatch *batch;

	/* Read before the cycle's snapshot, as in refresh_queued_endpoints(). */
	uint64		generation = pg_atomic_read_u64(&integration_shared->endpoints_generation);
	bool		queue_was_empty = (ws->queue_len == 0);

	cycle_request.record = record;
	cycle_request.claim = claim;
	cycle_request.careful = careful(ws);
	cycle_request.deferred = 0;
	cycle_request.put_back = false;
	ws->lock_timed_out = false;
	slot_set_state(claim ? "claiming" : "recording");
	memset(&ws->claims, 0, sizeof(ws->claims));
	if (claim)
		ws->claims.mcxt = AllocSetContextCreate(TopMemoryContext, "integration claim batch",
												ALLOCSET_DEFAULT_SIZES);
	if (!run_transaction(ws, step_cycle, claim ? "claiming deliveries" : "recording delivery results"))
	{
		if (ws->claims.mcxt)
			MemoryContextDelete(ws->claims.mcxt);
		memset(&ws->claims, 0, sizeof(ws->claims));
		/* What the rolled-back cycle took is there to take again, after the pause. */
		if (claim)
			ws->scan_needed = ws->fanout_needed = ws->due_needed = true;
		/* Its fan-out is undone too: the events it took are queued again. */
		ws->fanout_after = PG_INT64_MIN;
		ws->fanout_continued = 0;

		/*
		 * Results that cannot be written after several tries (their deliveries were
		 * deleted mid-flight, say) must not stall the worker: drop them.  Their
		 * deliveries, if any remain, are still 'sending' and go back to 'pending'
		 * when their lease expires, so at worst they are sent again.
		 */
		if (record && !ws->lock_timed_out && ++ws->record_failures >= RECORD_MAX_FAILURES)
		{
			ereport(WARNING,
					(errmsg("integration worker: dropping %d delivery results that could not be recorded",
							ws->nresults)));
			MemoryContextReset(ws->results_cxt);
			ws->results = NULL;
			ws->nresults = ws->maxresults = ws->ndeferred = 0;
			ws->record_failures = 0;
			ws->reconcile_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   integration_request_timeout_ms + LEASE_MARGIN_MS + 1000);
		}
		return false;
	}
	if (record)
	{
		int			deferred = cycle_request.deferred;

		/* The retries just scheduled: sleep no longer than until the first is due. */
		for (int i = deferred; i < ws->nresults; i++)
			if (ws->results[i].next_attempt_at != 0 &&
				(ws->next_due == 0 || ws->results[i].next_attempt_at < ws->next_due))
				ws->next_due = ws->results[i].next_attempt_at;
		ws->record_failures = 0;
		keep_deferred_results(ws, deferred);
	}
	if (cycle_request.put_back && ws->fanout_retry_at == 0)
	{
		/*
		 * Each retry takes every event put back again; while the lock lasts, retry
		 * less often, up to LOCKED_RETRY_MAX_MS apart.
		 */
		ws->fanout_retry_ms = ws->fanout_retry_ms == 0 ? LOCKED_RETRY_MS :
			Min(ws->fanout_retry_ms * 2, LOCKED_RETRY_MAX_MS);
		ws->fanout_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ws->fanout_retry_ms);
	}
	/* Locks are still around: stay careful a while longer. */
	if (cycle_request.put_back || cycle_request.deferred > 0)
		ws->careful_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CAREFUL_MS);
	ws->record_alone = false;
	if (!claim)
		return true;
	if (ws->claims.count == 0)
	{
		MemoryContextDelete(ws->claims.mcxt);
		memset(&ws->claims, 0, sizeof(ws->claims));
		return true;
	}

	if (queue_was_empty)
		ws->endpoints_seen = generation;
	batch = MemoryContextAllocZero(ws->claims.mcxt, sizeof(ClaimBatch));
	batch->cxt = ws->claims.mcxt;
	batch->refs = ws->claims.count;
	for (int i = 0; i < ws->claims.count; i++)
		queue_push(ws, &ws->claims.items[i], batch);
	memset(&ws->claims, 0, sizeof(ws->claims));
	return true;
}

/*
 * Whether to fan out and claim now: something may be waiting and the queue has room.
 * After a failure the results are retried alone first: a claim may be what fails.
 */
static bool
claim_wanted(WorkerState *ws)
{
	return ws->scan_needed && ws->record_failures == 0 && !(ws->record_alone && ws->nresults > ws->ndeferred) &&
		(ws->queue_len < integration_max_concurrency ||
		 (ws->queue_blocked && ws->queue_len < QUEUE_LIMIT_ROUNDS * integration_max_concurrency));
}

static long
ms_until(TimestampTz when, TimestampTz now)
{
	if (when <= now)
		return 0;
	return (long) Min((when - now + 999) / 1000, (int64) LONG_MAX);
}

static void
update_slot_counts(WorkerState *ws, const char *state)
{
	SpinLockAcquire(&my_slot->mutex);
	my_slot->in_flight = ws->n_in_flight;
	strlcpy(my_slot->state, state, WORKER_STATE_LEN);
	SpinLockRelease(&my_slot->mutex);
}

static void
step_start(WorkerState *ws)
{
	ws->dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	if (!store_extension_present())
	{
		ws->extension_gone = true;
		return;
	}
	(void) store_reconcile_leases(true, NULL, 0);
}

void
integration_database_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	WorkerState ws;
	WaitEventSet *set;
	MemoryContext loop_cxt;
	TimestampTz pause_until = 0;	/* after a failed transaction */

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/*
	 * Cancels (pg_cancel_backend(), and lock_timeout, which works by one) end the store
	 * transaction running, whose failure the loop handles; between transactions there
	 * is nothing to cancel, and they are held off and dropped (run_transaction()).
	 */
	pqsignal(SIGINT, StatementCancelHandler);
	HOLD_CANCEL_INTERRUPTS();	/* run_transaction() lets them in */
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * The worker runs as the bootstrap superuser: objects that users may create in
	 * other schemas (an operator, a function) must never be picked up by its queries.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker's statements are prepared once with generic plans and touch a few
	 * rows by index or ctid.  Planned while a table is empty, a sequential scan or a
	 * sort would look free and stay in the plan as the queue grows; forbid both in this
	 * session (every ORDER BY here has an index that provides the order).
	 */
	SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("enable_sort", "off", PGC_USERSET, PGC_S_SESSION);

	/*
	 * A row lock that another session holds for long (a SELECT ... FOR UPDATE left open)
	 * must not stall every tenant's deliveries: past this the store transaction fails
	 * and the worker goes around what is locked (careful()).
	 */
	SetConfigOption("lock_timeout", WORKER_LOCK_TIMEOUT, PGC_USERSET, PGC_S_OVERRIDE);

	my_slot = take_slot(dboid);
	if (my_slot == NULL)
	{
		if (!database_has_worker(dboid))
			ereport(WARNING,
					(errmsg("integration worker for database %u not started: all %d worker slots are in use",
							dboid, INTEGRATION_MAX_WORKERS),
					 errhint("Set integration.database_name to the database that needs delivery.")));
		proc_exit(0);			/* this database has its worker */
	}
	before_shmem_exit(release_slot, 0);

	memset(&ws, 0, sizeof(ws));
	dlist_init(&ws.in_flight);
	ws.results_cxt = AllocSetContextCreate(TopMemoryContext, "integration results",
										   ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "integration worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	if (!run_transaction(&ws, step_start, "starting"))
		proc_exit(1);
	if (ws.extension_gone)
	{
		ereport(LOG,
				(errmsg("integration worker: extension not installed in database \"%s\", exiting",
						ws.dbname)));
		proc_exit(0);
	}
	ereport(LOG,
			(errmsg("integration worker started for database \"%s\"", ws.dbname)));

	ws.client = http_client_create(integration_max_concurrency, integration_proxy);
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(EndpointLoad);
		ctl.hcxt = TopMemoryContext;
		ws.endpoint_load = hash_create("integration endpoint load", 256, &ctl,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	set = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(set, WL_SOCKET_READABLE, http_client_fd(ws.client), NULL, NULL);
	ws.scan_needed = true;
	ws.fanout_needed = true;
	ws.fanout_after = PG_INT64_MIN;
	ws.due_needed = true;

	for (;;)
	{
		WaitEvent	event;
		TimestampTz now;
		long		timeout;
		long		t;
		bool		record;
		bool		claim;
		int			fresh;
		HttpRequest *done;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);

		SpinLockAcquire(&my_slot->mutex);
		if (my_slot->stop_requested)
		{
			SpinLockRelease(&my_slot->mutex);
			ereport(LOG,
					(errmsg("integration worker for database \"%s\" stopping on request", ws.dbname)));
			proc_exit(0);
		}
		SpinLockRelease(&my_slot->mutex);

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			http_client_configure(ws.client, integration_max_concurrency, integration_proxy);
			ws.scan_needed = true;
			ws.due_needed = true;
		}

		http_client_drive(ws.client);
		while ((done = http_client_next_done(ws.client)) != NULL)
			finish_request(&ws, (InFlight *) done->owner);
		start_requests(&ws, &pause_until);

		now = GetCurrentTimestamp();
		if (ws.next_due != 0 && now >= ws.next_due)
		{
			ws.next_due = 0;
			ws.scan_needed = true;
			ws.due_needed = true;
		}
		if (now >= ws.next_recheck)
		{
			ws.scan_needed = true;
			ws.fanout_needed = true;
			ws.due_needed = true;
			ws.next_recheck = TimestampTzPlusMilliseconds(now, integration_idle_recheck_ms);
		}
		if (ws.fanout_retry_at != 0 && now >= ws.fanout_retry_at)
		{
			/* Events queued again while an endpoint was locked: from the start. */
			ws.fanout_retry_at = 0;
			ws.scan_needed = true;
			ws.fanout_needed = true;
			ws.fanout_after = PG_INT64_MIN;
			ws.fanout_continued = 0;
		}
		if (ws.reconcile_at != 0 && now >= ws.reconcile_at)
		{
			/* Results were dropped: their leases have run out by now. */
			ws.reconcile_needed = true;
			ws.scan_needed = true;
			ws.due_needed = true;
			ws.reconcile_at = 0;
		}

		/*
		 * Write results back when a batch is full, nothing else is in flight, or the
		 * oldest has waited RESULT_FLUSH_MS; claim more when the queue runs low.  Both
		 * share one transaction (one commit) when they fall together.
		 */
		fresh = ws.nresults - ws.ndeferred;
		record = (fresh > 0 &&
				  (ws.n_in_flight == 0 || fresh >= RESULT_BATCH ||
				   ws.n_in_flight + fresh >= integration_max_concurrency ||
				   now >= TimestampTzPlusMilliseconds(ws.first_result_at, RESULT_FLUSH_MS))) ||
			(ws.ndeferred > 0 && now >= ws.deferred_retry_at);
		claim = claim_wanted(&ws);
		if (now >= pause_until && (record || claim))
		{
			/* A claim also writes what has finished: one commit instead of two. */
			if (!run_cycle(&ws, record || ws.nresults > 0, claim))
				pause_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ERROR_PAUSE_MS);
			else if (ws.extension_gone)
				exit_extension_gone(&ws);
			start_requests(&ws, &pause_until);
		}
		update_slot_counts(&ws, ws.n_in_flight > 0 ? "sending" : "idle");

		/*
		 * Sleep until libcurl, a due retry, a flush or the recheck needs us; while
		 * paused after a failure, only libcurl and the end of the pause count.
		 */
		now = GetCurrentTimestamp();
		if (pause_until > now)
			timeout = ms_until(pause_until, now);
		else
		{
			timeout = ms_until(ws.next_recheck, now);
			if (ws.nresults > ws.ndeferred)
				timeout = Min(timeout, ms_until(TimestampTzPlusMilliseconds(ws.first_result_at, RESULT_FLUSH_MS), now));
			if (ws.ndeferred > 0)
				timeout = Min(timeout, ms_until(ws.deferred_retry_at, now));
			if (ws.fanout_retry_at != 0)
				timeout = Min(timeout, ms_until(ws.fanout_retry_at, now));
			if (ws.next_due != 0)
				timeout = Min(timeout, ms_until(ws.next_due, now));
			/* Asked again: the cycle just run may have been a retry of results alone. */
			if (claim_wanted(&ws))
				timeout = 0;
		}
		t = http_client_timeout_ms(ws.client);
		if (t >= 0)
			timeout = Min(timeout, t);

		if (WaitEventSetWait(set, timeout, &event, 1, PG_WAIT_EXTENSION) == 1 &&
			(event.events & WL_LATCH_SET))
		{
			ResetLatch(MyLatch);
			ws.scan_needed = true;
			ws.fanout_needed = true;
			/* Publishing needs only the fan-out; a requeue or dispatch also asks for this. */
			SpinLockAcquire(&my_slot->mutex);
			if (my_slot->due_requested)
				ws.due_needed = true;
			my_slot->due_requested = false;
			SpinLockRelease(&my_slot->mutex);
		}
	}
}

/*
 * Asks the worker of dboid to exit for good and waits up to 10 s for it to go.  Its
 * claims return to 'pending' when a worker starts again.  Returns whether it is gone.
 */
static bool
stop_database_worker(Oid dboid)
{
	bool		signalled = false;

	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];

		Latch	   *latch = NULL;

		SpinLockAcquire(&slot->mutex);
		if (slot->in_use && slot->dboid == dboid)
		{
			slot->stop_requested = true;
			latch = slot->latch;
			signalled = true;
		}
		SpinLockRelease(&slot->mutex);
		if (latch)
			SetLatch(latch);
	}
	if (!signalled)
		return true;
	for (int waited = 0; waited < 10000; waited += 10)
	{
		if (!database_has_worker(dboid))
			return true;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
	return false;
}

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * DROP DATABASE refuses while anyone is connected, and our worker always is: stop it
 * first.  DROP EXTENSION (or DROP SCHEMA) wakes the worker at commit, so it sees the
 * extension is gone.  If the drop then fails, the database has no worker until the server restarts
 * or someone runs integration.start_worker() there.
 */
static void
integration_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
							ProcessUtilityContext context, ParamListInfo params,
							QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (integration_shared != NULL && IsA(parsetree, DropdbStmt) &&
		context == PROCESS_UTILITY_TOPLEVEL && !IsTransactionBlock())
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);

		/* Only for a drop that can succeed: anyone else must not stop the worker. */
		if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()) &&
			database_has_worker(dboid))
		{
			(void) stop_database_worker(dboid);
			PG_TRY();
			{
				if (prev_process_utility)
					prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
										 queryEnv, dest, qc);
				else
					standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
											params, queryEnv, dest, qc);
			}
			PG_CATCH();
			{
				/* The database stays: so does its worker. */
				(void) start_database_worker(dboid);
				PG_RE_THROW();
			}
			PG_END_TRY();
			return;
		}
	}

	/*
	 * An idle worker only looks for its extension when it scans: wake it when a
	 * transaction that may drop the extension commits, so it exits at once instead
	 * of at the next idle recheck.  A needless wake-up costs one scan.
	 */
	if (integration_shared != NULL && IsA(parsetree, DropStmt) &&
		(((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION ||
		 ((DropStmt *) parsetree)->removeType == OBJECT_SCHEMA))
		wake_worker_at_commit();
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
}

void
worker_install_hooks(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = integration_process_utility;
}

PG_FUNCTION_INFO_V1(integration_worker_status);

/* worker_status(): one row per running delivery worker. */
Datum
integration_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (integration_shared == NULL)
		return (Datum) 0;

	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];
		IntegrationWorkerSlot copy;
		Datum		values[10];
		bool		nulls[10] = {0};
		char	   *dbname;

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(copy));
		SpinLockRelease(&slot->mutex);
		if (!copy.in_use)
			continue;

		values[0] = Int32GetDatum(copy.pid);
		dbname = get_database_name(copy.dboid);
		if (dbname)
			values[1] = CStringGetTextDatum(dbname);
		else
			nulls[1] = true;
		values[2] = CStringGetTextDatum(copy.state);
		values[3] = Int32GetDatum(copy.in_flight);
		values[4] = Int64GetDatum((int64) copy.sent);
		values[5] = Int64GetDatum((int64) copy.delivered);
		values[6] = Int64GetDatum((int64) copy.failed_attempts);
		values[7] = TimestampTzGetDatum(copy.started_at);
		if (copy.last_error[0])
		{
			values[8] = CStringGetTextDatum(copy.last_error);
			values[9] = TimestampTzGetDatum(copy.last_error_at);
		}
		else
			nulls[8] = nulls[9] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
