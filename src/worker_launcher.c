/*
 * worker_launcher.c
 *		Starting and stopping the workers: the launcher, CREATE EXTENSION's start at
 *		commit, and DROP DATABASE's stop.
 *
 * Each database has one worker process of each role (WorkerRole: the delivery worker
 * and the handler worker, worker.c), started, stopped and restarted together: every
 * place here that starts "the database's workers" starts each role's that does not run,
 * and every stop stops them all.  The postmaster restarts each one that dies on its
 * own.
 *
 * The launcher is a static worker registered from _PG_init.  It reads pg_database once
 * and starts the workers of each database that accepts connections (or only
 * integration.database_name); a worker that finds no extension exits with code 0, which
 * unregisters it.  CREATE EXTENSION starts the workers of its database when it commits
 * (integration.start_worker()), and they exit when the extension is dropped.  DROP
 * DATABASE refuses while anyone is connected, and the workers always are: the utility
 * hook stops them first.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "restore_mode.h"
#include "shared_state.h"
#include "wakeup.h"
#include "worker.h"
#include "worker_slots.h"

/* How long DROP DATABASE waits for the database's workers to exit. */
#define STOP_WAIT_MS 10000

PGDLLEXPORT void integration_launcher_main(Datum arg);

void
WorkerRegisterLauncher(void)
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

/* Asks the postmaster for dboid's worker of role; false when no slot is free. */
static bool
start_worker_of_role(Oid dboid, WorkerRole role)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	strlcpy(bgw.bgw_library_name, "integration", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "integration_database_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "%s for database %u", WorkerRoles[role].type, dboid);
	strlcpy(bgw.bgw_type, WorkerRoles[role].type, BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	StaticAssertStmt(sizeof(role) <= BGW_EXTRALEN, "a role fits in bgw_extra");
	memcpy(bgw.bgw_extra, &role, sizeof(role));
	bgw.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&bgw, &handle);
}

/*
 * Asks the postmaster for each worker of dboid that does not run; false when one could
 * not be had (no free background worker slot).
 */
bool
StartDatabaseWorkers(Oid dboid)
{
	bool		ok = true;

	for (int role = 0; role < WORKER_NUM_ROLES; role++)
		if (!WorkerSlotExists(dboid, role) && !start_worker_of_role(dboid, role))
			ok = false;
	return ok;
}

/* Whether every worker of dboid runs. */
static bool
all_workers_run(Oid dboid)
{
	for (int role = 0; role < WORKER_NUM_ROLES; role++)
		if (!WorkerSlotExists(dboid, role))
			return false;
	return true;
}

/* The launcher: starts the workers of each database, then waits for shutdown. */
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

		/*
		 * It exists: an old record of a dropped database with its oid is
		 * stale.
		 */
		DatabaseDropping(db->oid, false);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach(lc, dbs)
	{
		if (!StartDatabaseWorkers(lfirst_oid(lc)))
			ereport(WARNING,
					(errmsg("integration launcher could not start the workers for database %u",
							lfirst_oid(lc)),
					 errhint("Raise max_worker_processes: each database needs %d.",
							 WORKER_NUM_ROLES)));
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
static bool start_by_extension_script = false;
static bool start_callback_registered = false;

/*
 * At commit, start the workers start_worker() asked for; not those of CREATE EXTENSION
 * in a restore.  pg_restore and pg_dump's script create the extension in a transaction
 * of its own, then load each table in the next ones: started then, a worker would act
 * on half the data (fan out queued events whose rows are not there yet, skip inbound
 * events whose handlers are not).  The session's own check_function_bodies tells,
 * before the commit: CREATE EXTENSION turns it off for its script only
 * (RestoreSession(), restore_mode.c).
 */
static void
start_worker_xact_callback(XactEvent event, void *arg)
{
	if (!start_at_commit)
		return;
	/* Before the commit: catalog lookups, and a warning the client sees. */
	if (event == XACT_EVENT_PRE_COMMIT && start_by_extension_script && RestoreSession())
	{
		ereport(WARNING,
				(errmsg("the integration workers of database \"%s\" do not start while a dump is restored",
						get_database_name(MyDatabaseId)),
				 errhint("When the restore is complete, run SELECT integration.start_worker(); in the database, or restart the server.")));
		start_at_commit = false;
	}
	else if (event == XACT_EVENT_COMMIT)
	{
		if (!StartDatabaseWorkers(MyDatabaseId))
			ereport(WARNING,
					(errmsg("could not start the integration workers for this database"),
					 errhint("Raise max_worker_processes (each database needs %d), then restart the server.",
							 WORKER_NUM_ROLES)));
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		start_at_commit = false;
}

PG_FUNCTION_INFO_V1(integration_start_worker);

/*
 * start_worker(): this database's workers start when the transaction commits (so they
 * see the extension CREATE EXTENSION just made).  Returns false when they already run
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

	/*
	 * This database exists: an old record of a dropped one with its oid is
	 * stale.
	 */
	DatabaseDropping(MyDatabaseId, false);
	if (all_workers_run(MyDatabaseId))
		PG_RETURN_BOOL(false);
	if (!start_callback_registered)
	{
		RegisterXactCallback(start_worker_xact_callback, NULL);
		start_callback_registered = true;
	}
	start_at_commit = true;
	start_by_extension_script = creating_extension;
	PG_RETURN_BOOL(true);
}

static ProcessUtility_hook_type prev_process_utility = NULL;

static void
call_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							 dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
}

/*
 * DROP DATABASE: stop the database's workers first.  DROP EXTENSION (or DROP SCHEMA)
 * wakes them at commit, so they see the extension is gone.  If the drop then fails,
 * the database's workers are started again.
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

		/*
		 * Only for a drop that can succeed: anyone else must not stop the
		 * workers.
		 */
		if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()))
		{
			bool		had_worker = WorkerSlotExists(dboid, WORKER_ROLE_ANY);

			/*
			 * First, so that a worker that has just exited and waits to be
			 * started again stops for good instead of failing to connect
			 * forever.
			 */
			DatabaseDropping(dboid, true);
			if (had_worker)
				(void) StopDatabaseWorker(dboid, STOP_WAIT_MS);
			PG_TRY();
			{
				call_process_utility(pstmt, queryString, readOnlyTree, context, params,
									 queryEnv, dest, qc);
			}
			PG_CATCH();
			{
				/* The database stays: so does its worker. */
				DatabaseDropping(dboid, false);
				if (had_worker)
					(void) StartDatabaseWorkers(dboid);
				PG_RE_THROW();
			}
			PG_END_TRY();
			return;
		}
	}

	/*
	 * An idle worker only looks for its extension when it scans: wake them
	 * all when a transaction that may drop the extension commits, so they
	 * exit at once instead of at the next idle recheck.  A needless wake-up
	 * costs each one scan.
	 */
	if (integration_shared != NULL && IsA(parsetree, DropStmt) &&
		(((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION ||
		 ((DropStmt *) parsetree)->removeType == OBJECT_SCHEMA))
		WakeAllWorkersAtCommit();
	call_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
						 dest, qc);
}

void
WorkerInstallHooks(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = integration_process_utility;
}
