/*
 * connector_call.c
 *		integration.test_connector(id): one call to a connector's API (the kind's
 *		operation test), built, authenticated and judged as every call is
 *		(connector_request.c), and sent from the calling backend.
 *
 * The call is made from this backend, on its own thread: a single-threaded HTTP client
 * (http_client.c) whose libcurl sockets are waited on with the latch and postmaster
 * death, so a cancel or a shutdown ends the wait at once.  Every address it connects to
 * passes the network policy (network_policy.c), as the worker's requests do: a blocked
 * address or scheme is the call's error, not an exception.  Queued calls
 * (call_connector()) go through the worker instead (call_job.c).
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "connector_request.h"
#include "http_client.h"
#include "spi_plan.h"
#include "tenant.h"
#include "worker.h"

static SPIPlanPtr log_plan;

/* Sends req and waits for it, with the latch and postmaster death; interruptible. */
static void
send_and_wait(HttpRequest *req)
{
	HttpClient *client = HttpClientCreateInline(1, integration_proxy);
	HttpRequest *done = NULL;

	PG_TRY();
	{
		HttpClientStart(client, req);
		while ((done = HttpClientNextDone(client)) == NULL)
		{
			long		timeout = HttpClientTimeoutMs(client);

			if (timeout != 0)
				(void) WaitLatchOrSocket(MyLatch,
										 WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH |
										 (timeout > 0 ? WL_TIMEOUT : 0),
										 HttpClientFd(client), timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			HttpClientDrive(client);
		}
	}
	PG_FINALLY();
	{
		/*
		 * A request cancelled in flight leaves its handle to the client's
		 * cleanup.
		 */
		HttpClientDestroy(client);
	}
	PG_END_TRY();
}

/* What the test call came to. */
typedef struct CallResult
{
	bool		ok;
	int			status;
	int64		duration_us;
	char	   *error;			/* redacted; NULL: none */
} CallResult;

/* Builds, authenticates, sends and judges the test call (runs with creds open). */
static void
call_once(const ConnectorTarget *t, const ConnectorCredentials *creds, HttpRequest *req,
		  CallResult *res)
{
	Jsonb	   *empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	ConnectorVerdict v;

	ConnectorRequestBuild(t, "test", empty, NULL, creds, 0, req);
	send_and_wait(req);
	ConnectorJudge(t, "test", req, creds, 0, &v);
	res->ok = v.outcome == CONNECTOR_SUCCEEDED;
	res->status = (int) req->status_code;
	res->duration_us = req->duration_us;
	res->error = v.error;
}

PG_FUNCTION_INFO_V1(integration_test_connector);

/*
 * test_connector(id bigint, OUT ok boolean, OUT status integer, OUT latency interval,
 *				  OUT error text)
 */
Datum
integration_test_connector(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt = CurrentMemoryContext;
	ConnectorTarget t = {0};
	TupleDesc	tupdesc;
	ConnectorCredentials *creds;
	HttpRequest req = {0};
	CallResult	res = {false, 0, 0, NULL};
	Interval   *latency = palloc0(sizeof(Interval));
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Oid			log_types[6] = {TEXTOID, INT8OID, BOOLOID, INT4OID, INT8OID, TEXTOID};
	Datum		log_args[6];
	char		log_nulls[6] = "      ";

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "test_connector must return a record");
	t.id = PG_GETARG_INT64(0);
	t.tenant = RequireTenant();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) ConnectorTargetLoad(&t, false);
	ConnectorTargetCheckCalls(&t);
	creds = ConnectorCredentialsOpen(&t);
	PG_TRY();
	{
		call_once(&t, creds, &req, &res);
	}
	PG_FINALLY();
	{
		ConnectorCredentialsFree(creds);
		ConnectorRequestRelease(&req);
	}
	PG_END_TRY();

	log_args[0] = CStringGetTextDatum(res.ok ? "info" : "warning");
	log_args[1] = Int64GetDatum(t.id);
	log_args[2] = BoolGetDatum(res.ok);
	log_args[3] = Int32GetDatum(res.status);
	log_args[4] = Int64GetDatum(res.duration_us / 1000);
	if (res.error)
		log_args[5] = CStringGetTextDatum(res.error);
	else
		log_nulls[5] = 'n';
	if (SPI_execute_plan(SavedPlan(&log_plan,
								   "INSERT INTO integration.integration_logs (level, source, event, message, context)"
								   " SELECT $1, 'api', 'connector.tested',"
								   "  pg_catalog.format('connector %s tested: %s', $2,"
								   "   CASE WHEN $3 THEN 'ok' ELSE COALESCE($6, 'failed') END),"
								   "  pg_catalog.jsonb_build_object('connector_id', $2, 'ok', $3, 'status', $4,"
								   "   'latency_ms', $5, 'error', $6)",
								   6, log_types, CURSOR_OPT_GENERIC_PLAN),
						 log_args, log_nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not log a connector test");
	/* SPI's memory goes with SPI_finish(). */
	if (res.error)
		res.error = MemoryContextStrdup(callcxt, res.error);
	SPI_finish();

	latency->time = res.duration_us;
	values[0] = BoolGetDatum(res.ok);
	values[1] = Int32GetDatum(res.status);
	values[2] = IntervalPGetDatum(latency);
	if (res.error)
		values[3] = CStringGetTextDatum(res.error);
	else
		nulls[3] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
