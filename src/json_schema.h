/*
 * json_schema.h
 *		Checks event data against a JSON Schema (the subset json_schema.c implements).
 */
#ifndef INTEGRATION_JSON_SCHEMA_H
#define INTEGRATION_JSON_SCHEMA_H

#include "utils/jsonb.h"

extern bool integration_validate_payloads;

extern void JsonSchemaDefineGucs(void);

/* ereports 22023, naming what (e.g. "event order.created") and where, on a mismatch */
extern void JsonSchemaCheckValue(Jsonb *schema, Jsonb *value, const char *what);

#endif
