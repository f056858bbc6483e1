/*
 * references.h
 *		What foreign keys would check, run by triggers a statement at a time
 *		(delivery_references.c, connector_references.c).
 */
#ifndef INTEGRATION_REFERENCES_H
#define INTEGRATION_REFERENCES_H

#include "utils/rel.h"

extern bool ReferenceFirstRow(Relation rel, const char *sql, int nargs, Oid *argtypes,
							  Datum *args, bool latest, char **a, char **b);

#endif
