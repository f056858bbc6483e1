/*
 * content_hash.c
 *		A record's content hash, SHA-256 of its payload's text, for the sync gate.
 *
 * external_records.content_hash is sha256(convert_to(payload::text, 'UTF8')): what
 * tells a version pulled again with another content from the same one (sql/sync.sql).
 * Computed in SQL, the text output was most of it: jsonb's output function escapes
 * each character of each string with a call of its own and copies every string
 * first, 0.8 ms a page of 250 orders, where SHA-256 of the same text is 0.05 ms
 * (bench/README.md).  This writes the very same text, byte for byte (core's
 * JsonbToCString() without indentation: ", " between elements, ": " after a key,
 * strings through escape_json()'s rules, numbers through numeric_out()), copying
 * each string's runs of characters that need no escape at once, and hashes it.  The
 * regression test compares the two on payloads that exercise every rule.
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "content_hash.h"

/* Appends a JSON string as escape_json() writes it. */
static void
append_escaped(StringInfo out, const char *s, int len)
{
	const char *run = s;
	const char *end = s + len;

	appendStringInfoCharMacro(out, '"');
	for (const char *p = s; p < end; p++)
	{
		unsigned char c = (unsigned char) *p;
		const char *esc;

		if (c >= ' ' && c != '"' && c != '\\')
			continue;
		if (p > run)
			appendBinaryStringInfo(out, run, p - run);
		run = p + 1;
		switch (c)
		{
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			case '\0':
				/* escape_json() stops at a NUL, which jsonb never holds */
				appendStringInfoCharMacro(out, '"');
				return;
			default:
				appendStringInfo(out, "\\u%04x", (int) c);
				continue;
		}
		appendBinaryStringInfo(out, esc, 2);
	}
	if (end > run)
		appendBinaryStringInfo(out, run, end - run);
	appendStringInfoCharMacro(out, '"');
}

/* Appends a scalar as jsonb's output function writes it. */
static void
append_scalar(StringInfo out, const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendBinaryStringInfo(out, "null", 4);
			break;
		case jbvString:
			append_escaped(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			{
				char	   *n = DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(v->val.numeric)));

				appendStringInfoString(out, n);
				pfree(n);
				break;
			}
		case jbvBool:
			if (v->val.boolean)
				appendBinaryStringInfo(out, "true", 4);
			else
				appendBinaryStringInfo(out, "false", 5);
			break;
		default:
			elog(ERROR, "unknown jsonb scalar type");
	}
}

/* payload::text into out: JsonbToCString()'s walk, without indentation. */
static void
append_jsonb_text(StringInfo out, JsonbContainer *in)
{
	JsonbIterator *it = JsonbIteratorInit(in);
	JsonbValue	v;
	JsonbIteratorToken type;
	bool		first = true;
	bool		raw_scalar = false;

	while ((type = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (type)
		{
			case WJB_BEGIN_ARRAY:
				if (!first)
					appendBinaryStringInfo(out, ", ", 2);
				if (!v.val.array.rawScalar)
					appendStringInfoCharMacro(out, '[');
				else
					raw_scalar = true;
				first = true;
				break;
			case WJB_BEGIN_OBJECT:
				if (!first)
					appendBinaryStringInfo(out, ", ", 2);
				appendStringInfoCharMacro(out, '{');
				first = true;
				break;
			case WJB_KEY:
				if (!first)
					appendBinaryStringInfo(out, ", ", 2);
				append_escaped(out, v.val.string.val, v.val.string.len);
				appendBinaryStringInfo(out, ": ", 2);
				/* a container value follows without a comma, as after a key */
				first = true;
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (!first)
					appendBinaryStringInfo(out, ", ", 2);
				append_scalar(out, &v);
				first = false;
				break;
			case WJB_END_ARRAY:
				if (!raw_scalar)
					appendStringInfoCharMacro(out, ']');
				first = false;
				break;
			case WJB_END_OBJECT:
				appendStringInfoCharMacro(out, '}');
				first = false;
				break;
			default:
				elog(ERROR, "unknown jsonb iterator token type");
		}
	}
}

/* sha256(convert_to(payload::text, 'UTF8')), the same 32 bytes, as bytea. */
bytea *
ContentHash(Jsonb *payload)
{
	StringInfoData buf;
	const char *utf8;
	pg_cryptohash_ctx *ctx;
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	initStringInfo(&buf);
	enlargeStringInfo(&buf, VARSIZE(payload));
	append_jsonb_text(&buf, &payload->root);
	utf8 = pg_server_to_any(buf.data, buf.len, PG_UTF8);

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) utf8, strlen(utf8)) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	if (utf8 != buf.data)
		pfree((char *) utf8);
	pfree(buf.data);
	return result;
}

PG_FUNCTION_INFO_V1(integration_content_hash);

/* _content_hash(payload jsonb): ContentHash(). */
Datum
integration_content_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(ContentHash(PG_GETARG_JSONB_P(0)));
}
