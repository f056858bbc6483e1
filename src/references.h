/*
 * references.h
 *		Running the statements of the reference checks that stand in for foreign keys
 *		(references.c; the checks: delivery_references.c, connector_references.c).
 */
#ifndef INTEGRATION_REFERENCES_H
#define INTEGRATION_REFERENCES_H

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

extern void ReferenceExecuteAsOwner(Relation rel, const char *sql, int nargs, Oid *argtypes,
									Datum *args, Snapshot snapshot, Snapshot crosscheck,
									long limit, int expected);
extern bool ReferenceFirstRow(Relation rel, const char *sql, int nargs, Oid *argtypes,
							  Datum *args, bool latest, char **a, char **b);

/*
 * A table that refers to another's key (tenant_id, id) through a column, as the
 * statements that check it from the referenced side read it.
 */
typedef struct ReferringTable
{
	const char *table;
	const char *gone_sql;		/* keys of "gone" it still refers to, its rows
								 * locked */
	const char *key_sql;		/* a row of its with the key $1, $2, locked */
	const char *any_sql;		/* any row of its */
	const char *truncate_hint;	/* how to truncate the referenced table */
} ReferringTable;

extern void ReferencesCheckUnreferenced(FunctionCallInfo fcinfo, const char *function,
										const ReferringTable *referrers, int nreferrers,
										const char *delete_hint);

extern void ReferenceMissing(TriggerData *trigdata, const char *referenced,
							 const char *column, const char *tenant,
							 const char *key) pg_attribute_noreturn();

#endif
