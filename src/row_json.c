/*
 * row_json.c
 *		Serialises table rows to JSON objects, fast enough for bulk triggers.
 *
 * row_to_json() looks up each column's type category and output function for every row
 * it serialises.  A writer does those lookups once per tuple descriptor (once per
 * statement in a trigger) and keeps each column's name pre-escaped, so serialising a
 * row is a single pass over its values.  The output matches row_to_json(): the same
 * JSON types for numbers, booleans, json/jsonb, date/time values (ISO 8601) and
 * arrays/composites (delegated to array_to_json/row_to_json).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "row_json.h"

typedef enum ColumnKind
{
	COL_SKIP,					/* dropped column */
	COL_BOOL,
	COL_INTEGER,				/* always a valid JSON number */
	COL_NUMERIC,				/* number unless NaN or infinity */
	COL_TEXT,
	COL_JSON,
	COL_JSONB,
	COL_DATETIME,
	COL_ARRAY,
	COL_COMPOSITE,
	COL_OTHER					/* output function, quoted */
} ColumnKind;

typedef struct ColumnPlan
{
	ColumnKind	kind;
	Oid			typid;			/* base type for domains */
	char	   *key;			/* "name": pre-escaped, with its comma */
	int			keylen;
	FmgrInfo	output;
} ColumnPlan;

struct RowJsonWriter
{
	int			natts;
	ColumnPlan *cols;
};

static ColumnKind
classify(Oid typid)
{
	switch (typid)
	{
		case BOOLOID:
			return COL_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
			return COL_INTEGER;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			return COL_NUMERIC;
		case TEXTOID:
		case VARCHAROID:
			return COL_TEXT;
		case JSONOID:
			return COL_JSON;
		case JSONBOID:
			return COL_JSONB;
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return COL_DATETIME;
		default:
			break;
	}
	if (OidIsValid(get_element_type(typid)))
		return COL_ARRAY;
	if (type_is_rowtype(typid))
		return COL_COMPOSITE;
	return COL_OTHER;
}

/* Plans every column of desc once; the writer lives in mcxt. */
RowJsonWriter *
RowJsonWriterCreate(TupleDesc desc, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	RowJsonWriter *w = palloc(sizeof(RowJsonWriter));
	bool		first = true;

	w->natts = desc->natts;
	w->cols = palloc0(sizeof(ColumnPlan) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ColumnPlan *c = &w->cols[i];
		StringInfoData key;

		if (att->attisdropped)
		{
			c->kind = COL_SKIP;
			continue;
		}
		c->typid = getBaseType(att->atttypid);
		c->kind = classify(c->typid);
		if (c->kind == COL_NUMERIC || c->kind == COL_OTHER || c->kind == COL_INTEGER)
		{
			Oid			outfn;
			bool		varlena;

			getTypeOutputInfo(c->typid, &outfn, &varlena);
			fmgr_info_cxt(outfn, &c->output, mcxt);
		}
		initStringInfo(&key);
		if (!first)
			appendStringInfoChar(&key, ',');
		escape_json(&key, NameStr(att->attname));
		appendStringInfoChar(&key, ':');
		c->key = key.data;
		c->keylen = key.len;
		first = false;
	}
	MemoryContextSwitchTo(old);
	return w;
}

static void
append_text_value(StringInfo buf, Datum value)
{
	text	   *t = DatumGetTextPP(value);
	char	   *s = text_to_cstring(t);

	escape_json(buf, s);
	pfree(s);
	if ((Pointer) t != DatumGetPointer(value))
		pfree(t);
}

/* Appends the row in slot to buf as a JSON object. */
void
RowJsonAppend(RowJsonWriter *w, StringInfo buf, TupleTableSlot *slot)
{
	slot_getallattrs(slot);
	appendStringInfoChar(buf, '{');
	for (int i = 0; i < w->natts; i++)
	{
		ColumnPlan *c = &w->cols[i];
		Datum		v = slot->tts_values[i];
		char	   *s;

		if (c->kind == COL_SKIP)
			continue;
		appendBinaryStringInfo(buf, c->key, c->keylen);
		if (slot->tts_isnull[i])
		{
			appendStringInfoString(buf, "null");
			continue;
		}
		switch (c->kind)
		{
			case COL_BOOL:
				appendStringInfoString(buf, DatumGetBool(v) ? "true" : "false");
				break;
			case COL_INTEGER:
				s = OutputFunctionCall(&c->output, v);
				appendStringInfoString(buf, s);
				pfree(s);
				break;
			case COL_NUMERIC:
				s = OutputFunctionCall(&c->output, v);
				if (IsValidJsonNumber(s, strlen(s)))
					appendStringInfoString(buf, s);
				else
					escape_json(buf, s);
				pfree(s);
				break;
			case COL_TEXT:
				append_text_value(buf, v);
				break;
			case COL_JSON:
				{
					text	   *t = DatumGetTextPP(v);

					appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				}
				break;
			case COL_JSONB:
				{
					Jsonb	   *jb = DatumGetJsonbP(v);

					(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
				}
				break;
			case COL_DATETIME:
				{
					char		dtbuf[MAXDATELEN + 1];

					JsonEncodeDateTime(dtbuf, v, c->typid, NULL);
					appendStringInfoChar(buf, '"');
					appendStringInfoString(buf, dtbuf);
					appendStringInfoChar(buf, '"');
				}
				break;
			case COL_ARRAY:
				{
					text	   *t = DatumGetTextPP(DirectFunctionCall1(array_to_json, v));

					appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				}
				break;
			case COL_COMPOSITE:
				{
					text	   *t = DatumGetTextPP(DirectFunctionCall1(row_to_json, v));

					appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				}
				break;
			case COL_OTHER:
				s = OutputFunctionCall(&c->output, v);
				escape_json(buf, s);
				pfree(s);
				break;
			case COL_SKIP:
				break;
		}
	}
	appendStringInfoChar(buf, '}');
}

/* Appends ts as a quoted ISO 8601 UTC timestamp with microseconds, e.g. "2026-01-02T03:04:05.123456Z". */
void
AppendJsonUtcTimestamp(StringInfo buf, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	appendStringInfo(buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}
