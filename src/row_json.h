/*
 * row_json.h
 *		Serialises table rows to JSON objects with per-statement cached column plans.
 */
#ifndef INTEGRATION_ROW_JSON_H
#define INTEGRATION_ROW_JSON_H

#include "executor/tuptable.h"
#include "lib/stringinfo.h"

typedef struct RowJsonWriter RowJsonWriter;

extern RowJsonWriter *row_json_writer_create(TupleDesc desc, MemoryContext mcxt);
extern void row_json_append(RowJsonWriter *writer, StringInfo buf, TupleTableSlot *slot);
extern void append_json_utc_timestamp(StringInfo buf, TimestampTz ts);

#endif
