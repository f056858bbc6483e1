/*
 * sync_page.c
 *		A pull page's records as the page trigger holds them, read in one pass.
 *
 * sql/sync.sql's page trigger reads a page's entries, checks them, keeps one per id
 * and hashes their payloads before it writes anything.  In SQL that was a set-returning
 * SQL function (parsed and planned again in every transaction, as SQL functions are),
 * a sort, and two aggregates building the arrays: 1.7 ms of the pulling worker's time
 * a page of 250 orders (bench/run sync, pg_stat_statements), for what a loop over the
 * page's array does.  This is that loop, with the same results:
 *
 * - the entries: each element of "records" ({"id", "updated_at", "payload", "topic"}:
 *   r ->> 'id', r -> 'updated_at', r -> 'payload', r ->> 'topic' or the default
 *   topic), or of "items", the platform's objects (x #>> id_path, x #> updated_at_path,
 *   x itself, the page's item topic); numbered from 1 in the page's order;
 * - bad: the first entry without an id of 1 to 255 characters, a string at
 *   updated_at, or a payload; seen: their number;
 * - unless one is bad, one per id (its latest updated_at, then the first seen) in the
 *   order of the ids' bytes, the order of external_records' keys (COLLATE "C"), as
 *   integration._sync_page_record values with the payload's content hash
 *   (content_hash.c), and the ids alone; both NULL for a page of none.
 *
 * The SQL it replaces: the trigger's history in git (_sync_page_entries()).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "content_hash.h"

/* One entry of the page. */
typedef struct PageEntry
{
	int64		n;
	text	   *id;				/* NULL: none */
	Jsonb	   *updated_at;		/* NULL: none */
	Jsonb	   *payload;		/* NULL: none */
	text	   *topic;
	TimestampTz at;
} PageEntry;

/* fn(a, b) of a strict function that may return NULL: NULL for NULL. */
static Datum
call2(PGFunction fn, Datum a, Datum b, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = a;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = b;
	fcinfo->args[1].isnull = false;
	result = (*fn) (fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/* The array at key of the page (NULL: no such key), raising as jsonb_array_elements(). */
static JsonbContainer *
page_array(Jsonb *page, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&page->root, key, strlen(key), NULL);

	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot extract elements from a scalar")));
	if (JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot extract elements from an object")));
	return v->val.binary.data;
}

/* Appends the entries of one of the page's arrays; items: the platform's objects. */
static int
read_entries(JsonbContainer *array, bool items, text *default_topic, text *item_topic,
			 Datum id_path, bool id_path_null, Datum at_path, bool at_path_null,
			 PageEntry *entries)
{
	JsonbIterator *it = JsonbIteratorInit(array);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			count = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		PageEntry  *e;
		Datum		x;
		Datum		d;
		bool		isnull;

		if (tok != WJB_ELEM)
			continue;
		e = &entries[count++];
		memset(e, 0, sizeof(*e));
		e->n = count;
		x = JsonbPGetDatum(JsonbValueToJsonb(&v));
		if (items)
		{
			e->payload = DatumGetJsonbP(x);
			e->topic = item_topic;
			if (!id_path_null)
			{
				d = call2(jsonb_extract_path_text, x, id_path, &isnull);
				e->id = isnull ? NULL : DatumGetTextPP(d);
			}
			if (!at_path_null)
			{
				d = call2(jsonb_extract_path, x, at_path, &isnull);
				e->updated_at = isnull ? NULL : DatumGetJsonbP(d);
			}
			continue;
		}
		d = call2(jsonb_object_field_text, x, CStringGetTextDatum("id"), &isnull);
		e->id = isnull ? NULL : DatumGetTextPP(d);
		d = call2(jsonb_object_field, x, CStringGetTextDatum("updated_at"), &isnull);
		e->updated_at = isnull ? NULL : DatumGetJsonbP(d);
		d = call2(jsonb_object_field, x, CStringGetTextDatum("payload"), &isnull);
		e->payload = isnull ? NULL : DatumGetJsonbP(d);
		d = call2(jsonb_object_field_text, x, CStringGetTextDatum("topic"), &isnull);
		e->topic = isnull ? default_topic : DatumGetTextPP(d);
	}
	return count;
}

/* Whether an entry is not a record: what the trigger reports. */
static bool
entry_is_bad(const PageEntry *e)
{
	int			chars;
	JsonbValue	s;

	if (e->id == NULL || e->payload == NULL || e->updated_at == NULL)
		return true;
	chars = pg_mbstrlen_with_len(VARDATA_ANY(e->id), VARSIZE_ANY_EXHDR(e->id));
	if (chars < 1 || chars > 255)
		return true;
	/* jsonb_typeof(updated_at) = 'string' */
	return !JsonbExtractScalar(&e->updated_at->root, &s) || s.type != jbvString;
}

/* By id's bytes, then the latest updated_at first, then the page's order. */
static int
entry_cmp(const void *a, const void *b)
{
	const PageEntry *x = a;
	const PageEntry *y = b;
	int			xl = VARSIZE_ANY_EXHDR(x->id);
	int			yl = VARSIZE_ANY_EXHDR(y->id);
	int			c = memcmp(VARDATA_ANY(x->id), VARDATA_ANY(y->id), Min(xl, yl));

	if (c != 0)
		return c;
	if (xl != yl)
		return xl < yl ? -1 : 1;
	if (x->at != y->at)
		return x->at > y->at ? -1 : 1;
	return x->n < y->n ? -1 : (x->n > y->n ? 1 : 0);
}

PG_FUNCTION_INFO_V1(integration_sync_page_records);

/*
 * _sync_page_records(page jsonb, default_topic text, item_topic text,
 *					  id_path text[], updated_at_path text[],
 *					  OUT bad bigint, OUT seen bigint,
 *					  OUT recs integration._sync_page_record[], OUT ids text[])
 */
Datum
integration_sync_page_records(PG_FUNCTION_ARGS)
{
	Jsonb	   *page;
	TupleDesc	resdesc;
	TupleDesc	recdesc;
	Oid			rectype;
	JsonbContainer *records;
	JsonbContainer *items;
	JsonbContainer *array;
	PageEntry  *entries;
	int			count;
	int			kept = 0;
	int64		bad = 0;
	Datum		result[4] = {0};
	bool		result_null[4] = {true, false, true, true};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		elog(ERROR, "_sync_page_records() needs a page and its topics");
	page = PG_GETARG_JSONB_P(0);
	if (get_call_result_type(fcinfo, NULL, &resdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_sync_page_records() must return a record");
	resdesc = BlessTupleDesc(resdesc);
	rectype = get_element_type(TupleDescAttr(resdesc, 2)->atttypid);
	if (!JB_ROOT_IS_OBJECT(page))
		elog(ERROR, "a pull page is an object");

	records = page_array(page, "records");
	items = page_array(page, "items");
	array = records != NULL ? records : items;
	count = array != NULL ? JsonContainerSize(array) : 0;
	if (records != NULL && items != NULL)
		count += JsonContainerSize(items);
	entries = palloc(sizeof(PageEntry) * Max(count, 1));
	count = 0;
	if (records != NULL)
		count = read_entries(records, false, PG_GETARG_TEXT_PP(1), NULL,
							 (Datum) 0, true, (Datum) 0, true, entries);
	if (items != NULL)
		count += read_entries(items, true, NULL, PG_GETARG_TEXT_PP(2),
							  PG_GETARG_DATUM(3), PG_ARGISNULL(3),
							  PG_GETARG_DATUM(4), PG_ARGISNULL(4), entries + count);

	for (int i = 0; i < count && bad == 0; i++)
		if (entry_is_bad(&entries[i]))
			bad = entries[i].n;
	result[1] = Int64GetDatum(count);
	if (bad != 0)
	{
		result[0] = Int64GetDatum(bad);
		result_null[0] = false;
	}
	else if (count > 0)
	{
		Datum	   *recs = palloc(sizeof(Datum) * count);
		Datum	   *ids = palloc(sizeof(Datum) * count);
		int16		typlen;
		bool		typbyval;
		char		typalign;

		for (int i = 0; i < count; i++)
		{
			Jsonb	   *at = entries[i].updated_at;
			JsonbValue	s;
			char	   *at_text;

			/* (updated_at #>> '{}')::timestamptz */
			if (!JsonbExtractScalar(&at->root, &s) || s.type != jbvString)
				elog(ERROR, "updated_at is not a string");
			at_text = pnstrdup(s.val.string.val, s.val.string.len);
			entries[i].at = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																	CStringGetDatum(at_text),
																	ObjectIdGetDatum(InvalidOid),
																	Int32GetDatum(-1)));
		}
		qsort(entries, count, sizeof(PageEntry), entry_cmp);

		recdesc = lookup_rowtype_tupdesc(rectype, -1);
		for (int i = 0; i < count; i++)
		{
			PageEntry  *e = &entries[i];
			Datum		values[6];
			bool		nulls[6] = {0};

			if (i > 0 && VARSIZE_ANY_EXHDR(e->id) == VARSIZE_ANY_EXHDR(entries[i - 1].id) &&
				memcmp(VARDATA_ANY(e->id), VARDATA_ANY(entries[i - 1].id),
					   VARSIZE_ANY_EXHDR(e->id)) == 0)
				continue;		/* a version of the same id, not the latest */
			values[0] = Int64GetDatum(e->n);
			values[1] = PointerGetDatum(e->id);
			values[2] = TimestampTzGetDatum(e->at);
			values[3] = JsonbPGetDatum(e->payload);
			values[4] = PointerGetDatum(e->topic);
			values[5] = PointerGetDatum(ContentHash(e->payload));
			recs[kept] = HeapTupleGetDatum(heap_form_tuple(recdesc, values, nulls));
			ids[kept] = PointerGetDatum(e->id);
			kept++;
		}
		ReleaseTupleDesc(recdesc);

		get_typlenbyvalalign(rectype, &typlen, &typbyval, &typalign);
		result[2] = PointerGetDatum(construct_array(recs, kept, rectype, typlen, typbyval, typalign));
		result[3] = PointerGetDatum(construct_array(ids, kept, TEXTOID, -1, false, TYPALIGN_INT));
		result_null[2] = result_null[3] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(resdesc, result, result_null)));
}
