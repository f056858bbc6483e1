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
 * And the rows come from the statement the client sent, a COPY FROM (or an INSERT, with
 * --inserts): a dump loads data with nothing else.  Without this, the session's settings
 * alone would make every write of a superuser's session with check_function_bodies off
 * (a migration script made from a dump, another extension's script) store rows as if
 * dumped: an event published through the plain INSERT left unqueued, a connector
 * created with no sync streams.  An API function (SELECT integration.create_connector())
 * and an UPDATE or DELETE get every trigger; a hand-written top-level INSERT into a
 * table of the extension, in such a session, is taken as a restore
 * (docs/operations.md#backup-and-restore).
 *
 * CREATE EXTENSION and ALTER EXTENSION UPDATE turn check_function_bodies off while
 * their script runs, but a script is no COPY or INSERT statement.  The session's own
 * value is back when the script ends, which is how the start of the workers at CREATE
 * EXTENSION's commit tells a restore (RestoreSession(), worker_launcher.c).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/portal.h"

#include "restore_mode.h"

/* Whether this session's settings and role are those of a restore (see the top). */
bool
RestoreSession(void)
{
	Oid			role = GetUserId();

	return !check_function_bodies &&
		(superuser_arg(role) || has_bypassrls_privilege(role));
}

/*
 * Whether the current statement loads a dump: a restore's session, and the client's
 * statement is a COPY or an INSERT (see the top of this file).
 */
bool
RestoreInProgress(void)
{
	return RestoreSession() && ActivePortal != NULL &&
		(ActivePortal->commandTag == CMDTAG_COPY ||
		 ActivePortal->commandTag == CMDTAG_INSERT);
}

PG_FUNCTION_INFO_V1(integration_restoring);

/* RestoreInProgress() for the triggers written in PL/pgSQL. */
Datum
integration_restoring(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(RestoreInProgress());
}
