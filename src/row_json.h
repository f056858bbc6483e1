/*
 * row_json.h
 *		Serialises table rows to JSON objects with per-statement cached column plans.
 */
#ifndef INTEGRATION_ROW_JSON_H
#define INTEGRATION_ROW_JSON_H

#include "executor/tuptable.h"
#include "lib/stringinfo.h"

typedef struct RowJsonWriter RowJsonWriter;

extern RowJsonWriter *RowJsonWriterCreate(TupleDesc desc, MemoryContext mcxt);
extern void RowJsonAppend(RowJsonWriter *writer, StringInfo buf, TupleTableSlot *slot);
extern void AppendJsonUtcTimestamp(StringInfo buf, TimestampTz ts);

#endif
