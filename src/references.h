/*
 * references.h
 *		Running the statements of the reference checks that stand in for foreign keys
 *		(references.c; the checks: delivery_references.c, connector_references.c).
 */
#ifndef INTEGRATION_REFERENCES_H
#define INTEGRATION_REFERENCES_H

#include "commands/trigger.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

extern void ReferenceExecuteAsOwner(Relation rel, const char *sql, int nargs, Oid *argtypes,
									Datum *args, Snapshot snapshot, Snapshot crosscheck,
									long limit, int expected);
extern bool ReferenceFirstRow(Relation rel, const char *sql, int nargs, Oid *argtypes,
							  Datum *args, bool latest, char **a, char **b);

extern void ReferenceMissing(TriggerData *trigdata, const char *referenced,
							 const char *column, const char *tenant,
							 const char *key) pg_attribute_noreturn();
extern void ReferenceStillUsed(TriggerData *trigdata, const char *referrer,
							   const char *tenant, const char *key,
							   const char *hint) pg_attribute_noreturn();

#endif
