/*
 * restore_mode.h
 *		Whether the current statement loads a dump (pg_restore, or pg_dump's script
 *		run by psql), for the triggers that must then store rows exactly as dumped.
 */
#ifndef RESTORE_MODE_H
#define RESTORE_MODE_H

#include "fmgr.h"

extern bool RestoreSession(void);
extern bool RestoreInProgress(void);

extern PGDLLEXPORT Datum integration_restoring(PG_FUNCTION_ARGS);

#endif							/* RESTORE_MODE_H */
