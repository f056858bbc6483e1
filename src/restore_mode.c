/*
 * restore_mode.c
 *		Recognises a restore of pg_dump's output, for the triggers that must then store
 *		the rows as dumped instead of acting on them.
 *
 * pg_dump marks every table that holds the users' state as extension configuration,
 * so a dump loads their rows with COPY (or INSERT, with --inserts) into tables whose
 * triggers already exist, in an order pg_dump derives from foreign keys alone.  Some
 * triggers act on a new row as if an application had just written it: they queue a new
 * event, check the references of a delivery (which stand in for foreign keys pg_dump
 * does not see), create a connector's sync streams, or stamp a handler's updated_at.
 * Loading a dump, each would add rows the dump also holds, refuse a table loaded
 * before the one it refers to, or change what was dumped.
 *
 * A restore is a session with check_function_bodies off, which pg_dump's script and
 * pg_restore set at the start of every session they load data in, documented as what
 * restoring a dump does, run by a role to which row-level security does not apply (a
 * superuser or BYPASSRLS role): only such a role can load every tenant's rows (COPY
 * FROM refuses a table whose policies apply), and only it could write those rows
 * anyway.  A tenant's role that turns check_function_bodies off gets every check, since
 * the condition is false for it.  Constraints and the other triggers (secrets stay
 * sealed as dumped, row-level security, the superuser checks) apply to a restore as to
 * any write.
 *
 * CREATE EXTENSION and ALTER EXTENSION UPDATE turn check_function_bodies off while
 * their script runs, so to an extension script every superuser's write looks like a
 * restore: a script that writes rows through these triggers must mind it.  The
 * session's own value is back when the script ends, which is how the start of the
 * workers at CREATE EXTENSION's commit tells a restore (worker_launcher.c).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "restore_mode.h"

/* Whether this session loads a dump (see the top of this file). */
bool
RestoreInProgress(void)
{
	Oid			role = GetUserId();

	return !check_function_bodies &&
		(superuser_arg(role) || has_bypassrls_privilege(role));
}

PG_FUNCTION_INFO_V1(integration_restoring);

/* RestoreInProgress() for the triggers written in PL/pgSQL. */
Datum
integration_restoring(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(RestoreInProgress());
}
