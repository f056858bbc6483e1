/*
 * subtransaction.c
 *		One piece of work run in a subtransaction of its own, its error caught: the
 *		pattern of PL/pgSQL's exception blocks (pl_exec.c), written once.
 *
 * The worker and the SQL functions use it wherever one part of a transaction may fail
 * without failing the rest: a handler of one inbound event, the adapters of one
 * connector call, an insert that may hit a unique key, the circuit transitions that
 * must never keep results from being written.  The caller decides what an error means
 * (rethrow it with ReThrowError(), record it, log it); the subtransaction is rolled back
 * before it sees it, so whatever it does next runs in the caller's transaction.
 *
 * Memory and resources: the caller's memory context and resource owner are current
 * again on return, either way; what fn allocated in the caller's context stays.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "subtransaction.h"

/*
 * Runs fn(arg) in a subtransaction and commits it.  If fn raises, rolls the
 * subtransaction back and returns false; the error, copied into errcxt, goes to
 * *error, or is freed when error is NULL.
 */
bool
RunInSubtransaction(SubtransactionFn fn, void *arg, MemoryContext errcxt, ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (error != NULL)
			*error = edata;
		else
			FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
