/*
 * references.h
 *		Running the statements of the reference checks that stand in for foreign keys
 *		(references.c; the checks: delivery_references.c, connector_references.c).
 */
#ifndef INTEGRATION_REFERENCES_H
#define INTEGRATION_REFERENCES_H

#include "utils/rel.h"
#include "utils/snapshot.h"

extern void ReferenceExecuteAsOwner(Relation rel, const char *sql, int nargs, Oid *argtypes,
									Datum *args, Snapshot snapshot, Snapshot crosscheck,
									long limit, int expected);
extern bool ReferenceFirstRow(Relation rel, const char *sql, int nargs, Oid *argtypes,
							  Datum *args, bool latest, char **a, char **b);

#endif
