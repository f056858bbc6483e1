/*
 * time_limit.c
 *		A call of the tenants' own code in a worker cut short after a time limit: an
 *		inbound handler (integration.handler_timeout, inbound_invoke.c) or a connector
 *		kind's build_request and interpret_response adapters
 *		(integration.adapter_timeout, connector_request.c).
 *
 * A worker runs one transaction at a time, so code that sleeps, loops or waits holds
 * up every other tenant's work for as long.  The limit uses PostgreSQL's own interrupt
 * machinery: statement_timeout's timer, which nothing else arms in a background worker
 * (only a client's statements do, in postgres.c), is armed around the call, and its
 * cancel ends the call at the next CHECK_FOR_INTERRUPTS(), in a sleep, a loop or a lock
 * wait alike.  The caller must let cancels through (WorkerRunTransaction() does) and run
 * the call in a subtransaction, whose rollback undoes what the call wrote.
 *
 * The cancel the timer causes is told from any other (pg_cancel_backend(), say) by when
 * it comes: at or after the deadline, which only the timer reaches.  It becomes an
 * error of its own, query_canceled still, that names what ran too long and the setting
 * (TimeLimitExceeded() recognises it): the worker counts it against the call, where a
 * cancel of the worker is no call's fault (WorkerErrorIsTransient()).  A call that
 * catches the cancel itself (PL/pgSQL's EXCEPTION WHEN query_canceled) and returns
 * late fails the same way, and so does one whose cancel came after its last check of
 * interrupts: that cancel is taken here, not left to end the caller's transaction.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "time_limit.h"

/* The message of the error a limit raises, and its identity (TimeLimitExceeded()). */
#define TIME_LIMIT_MESSAGE "%s exceeded %s (%d ms)"

/*
 * Runs fn(arg), cut short after timeout_ms; 0: no limit.  Cut short (see the banner),
 * it raises query_canceled with "<what> exceeded <setting> (<timeout_ms> ms)"; any
 * other error of fn goes on as it is.  The timer is disarmed again either way.
 */
void
RunWithTimeLimit(TimeLimitedFn fn, void *arg, int timeout_ms, const char *what,
				 const char *setting)
{
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz deadline;
	volatile bool expired = false;

	if (timeout_ms <= 0)
	{
		fn(arg);
		return;
	}
	/* Nothing else arms it in a worker: arming it here would end that one. */
	Assert(!get_timeout_active(STATEMENT_TIMEOUT));
	enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
	deadline = get_timeout_finish_time(STATEMENT_TIMEOUT);
	PG_TRY();
	{
		bool		fired;

		fn(arg);
		fired = !get_timeout_active(STATEMENT_TIMEOUT);
		disable_timeout(STATEMENT_TIMEOUT, false);

		/*
		 * A cancel fn did not see: raised here, in the bracket (see the
		 * banner).
		 */
		CHECK_FOR_INTERRUPTS();
		/* Fired, but no cancel came through: fn caught it, and went on. */
		expired = fired;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED || GetCurrentTimestamp() < deadline)
			PG_RE_THROW();
		FlushErrorState();
		FreeErrorData(edata);
		expired = true;
	}
	PG_END_TRY();
	if (expired)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg(TIME_LIMIT_MESSAGE, what, setting, timeout_ms),
				 errdetail("It was cancelled, and what it wrote was rolled back."),
				 errhint("Make it return sooner, or raise %s.", setting)));
}

/* Whether edata is the error of a call RunWithTimeLimit() cut short. */
bool
TimeLimitExceeded(const ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_QUERY_CANCELED && edata->message_id != NULL &&
		strcmp(edata->message_id, TIME_LIMIT_MESSAGE) == 0;
}
