/*-------------------------------------------------------------------------
 *
 * stripe_form.c
 *	  integration.stripe_form_encode(): a JSON object as the
 *	  application/x-www-form-urlencoded body Stripe's v1 API takes, byte for
 *	  byte what the official Node library (stripe-node, src/utils.ts
 *	  stringifyRequestData) sends for the same object.
 *
 * The rules, all stripe-node's:
 *
 *	 - an object nests as key[member], an array as key[0], key[1], ...; an
 *	   empty object or array sends nothing;
 *	 - a string is sent as it is, so "" sends "key=" (how Stripe is told to
 *	   unset a value, or to clear a list or metadata); null sends "key=" too;
 *	   true and false are sent as their names;
 *	 - a number is sent as JavaScript writes it (String(n)): 1.50 as 1.5,
 *	   1e21 as 1e+21 (encoded, like any value: 1e%2B21), 0.0000001 as 1e-7.  A
 *	   number JavaScript cannot hold exactly (more than 17 significant digits,
 *	   beyond 2^53 for an integer)
 *	   would reach Stripe changed, so it is refused: send it as a string;
 *	 - names and values are percent-encoded as encodeURIComponent() does,
 *	   then !'()* are encoded too and [ ] decoded again: only A-Z a-z 0-9
 *	   - _ . ~ [ ] are sent as they are, and a space is %20, not +.
 *
 * Members are sent in the order stripe-node would send the same object
 * parsed from the jsonb's text: names that are array indexes ("0", "7") in
 * numeric order first, as JavaScript orders them, then the others in jsonb's
 * order (shorter names first).  Stripe reads the body into a map, so the
 * order carries no meaning; it is fixed only so that the output can be
 * compared byte for byte.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(integration_stripe_form_encode);

/* The largest array index in JavaScript: 2^32 - 2 */
#define JS_MAX_ARRAY_INDEX UINT64CONST(4294967294)

/* Digits of a number as JavaScript writes it: up to 17 significant, 21 places */
#define JS_NUMBER_BUFSIZE 64

/*
 * Append s[0..len) percent-encoded as stripe-node encodes names and values:
 * everything but A-Z a-z 0-9 - _ . ~ [ ] as %XX of its UTF-8 bytes
 */
static void
AppendFormEncoded(StringInfo buf, const char *s, int len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			c == '~' || c == '[' || c == ']')
			appendStringInfoChar(buf, (char) c);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[c >> 4]);
			appendStringInfoChar(buf, hex[c & 0x0f]);
		}
	}
}

/*
 * Write a finite double as JavaScript's Number::toString does (ECMA-262
 * 6.1.6.1.20): the shortest digits that read back as the same double, in
 * positional notation from 1e-7 to 1e21 and exponential outside.  The
 * digits come from PostgreSQL's shortest round-trip conversion (Ryu).
 */
static void
AppendJsNumber(StringInfo buf, double d)
{
	char		shortest[JS_NUMBER_BUFSIZE];
	char		digits[JS_NUMBER_BUFSIZE];
	int			k = 0;			/* significant digits */
	int			n;				/* the decimal point is after digit n */
	int			intdigits = 0;
	int			exponent = 0;
	bool		seen_point = false;
	char	   *p;

	if (d == 0)
	{
		appendStringInfoChar(buf, '0'); /* -0 too */
		return;
	}
	if (d < 0)
	{
		appendStringInfoChar(buf, '-');
		d = -d;
	}

	/* shortest is [digits][.digits][e[+-]digits]; take it apart */
	double_to_shortest_decimal_buf(d, shortest);
	for (p = shortest; *p != '\0' && *p != 'e'; p++)
	{
		if (*p == '.')
			seen_point = true;
		else
		{
			if (!seen_point)
				intdigits++;
			if (k > 0 || *p != '0')
				digits[k++] = *p;
			else
				intdigits--;	/* a leading zero moves the point */
		}
	}
	if (*p == 'e')
		exponent = atoi(p + 1);
	while (k > 1 && digits[k - 1] == '0')
		k--;
	n = intdigits + exponent;

	if (k <= n && n <= 21)
	{
		appendBinaryStringInfo(buf, digits, k);
		for (int i = k; i < n; i++)
			appendStringInfoChar(buf, '0');
	}
	else if (0 < n && n <= 21)
	{
		appendBinaryStringInfo(buf, digits, n);
		appendStringInfoChar(buf, '.');
		appendBinaryStringInfo(buf, digits + n, k - n);
	}
	else if (-6 < n && n <= 0)
	{
		appendStringInfoString(buf, "0.");
		for (int i = n; i < 0; i++)
			appendStringInfoChar(buf, '0');
		appendBinaryStringInfo(buf, digits, k);
	}
	else
	{
		appendStringInfoChar(buf, digits[0]);
		if (k > 1)
		{
			appendStringInfoChar(buf, '.');
			appendBinaryStringInfo(buf, digits + 1, k - 1);
		}
		appendStringInfo(buf, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
}

/* s, or its first 40 characters and "...", for a message */
static const char *
Abbreviated(const char *s)
{
	return strlen(s) <= 40 ? s : psprintf("%.40s...", s);
}

/*
 * Append a jsonb number as stripe-node would send it, or raise if that
 * would change its value.  Like every value it is percent-encoded after
 * being written: the "+" of 1e+21 goes as %2B.
 */
static void
AppendNumber(StringInfo buf, Numeric num, const char *key)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(num)));
	double		d = strtod(text, NULL);
	char		shortest[JS_NUMBER_BUFSIZE];
	StringInfoData js;
	bool		same = false;

	/* Does the double JavaScript would hold read back as the same number? */
	if (isfinite(d))
	{
		Numeric		back;

		double_to_shortest_decimal_buf(d, shortest);
		back = DatumGetNumeric(DirectFunctionCall3(numeric_in,
												   CStringGetDatum(shortest),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
		same = DatumGetBool(DirectFunctionCall2(numeric_eq,
												NumericGetDatum(num),
												NumericGetDatum(back)));
	}
	if (!same)
	{
		initStringInfo(&js);
		if (isfinite(d))
			AppendJsNumber(&js, d);
		else
			appendStringInfoString(&js, "Infinity");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number at \"%s\" would reach Stripe changed", key),
				 errdetail("Stripe's Node library sends numbers as JavaScript numbers (doubles): %s would be sent as %s.",
						   Abbreviated(text), Abbreviated(js.data)),
				 errhint("Pass the number as a JSON string to send it exactly.")));
	}
	initStringInfo(&js);
	AppendJsNumber(&js, d);
	AppendFormEncoded(buf, js.data, js.len);
	pfree(js.data);
	pfree(text);
}

/* Append "&" unless buf is empty, then the encoded key and "=" */
static void
AppendPairStart(StringInfo out, const StringInfo key)
{
	if (out->len > 0)
		appendStringInfoChar(out, '&');
	appendBinaryStringInfo(out, key->data, key->len);
	appendStringInfoChar(out, '=');
}

/*
 * Is a member name a JavaScript array index ("0" to "4294967294", written
 * without leading zeros)?  Such names come first, in numeric order, when
 * JavaScript lists an object's keys.  *index gets its value.
 */
static bool
IsArrayIndexName(const char *s, int len, uint64 *index)
{
	uint64		v = 0;

	if (len < 1 || len > 10 || (len > 1 && s[0] == '0'))
		return false;
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*index = v;
	return v <= JS_MAX_ARRAY_INDEX;
}

/* One member of an object, while its members are put in sending order */
typedef struct FormMember
{
	JsonbValue	name;
	JsonbValue	value;
	bool		is_index;
	uint64		index;
	int			position;		/* in jsonb's order */
} FormMember;

/* Array-index names first, by number; then jsonb's order */
static int
CompareMembers(const void *a, const void *b)
{
	const FormMember *x = a;
	const FormMember *y = b;

	if (x->is_index != y->is_index)
		return x->is_index ? -1 : 1;
	if (x->is_index && x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->position - y->position;
}

static void EncodeValue(StringInfo out, StringInfo key, const JsonbValue *v);

/*
 * Encode the members of an object under key; at the top (the payload
 * itself) there is no key, and members are named without brackets
 */
static void
EncodeObject(StringInfo out, StringInfo key, JsonbContainer *container,
			 bool top)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbIteratorToken tok;
	JsonbValue	v;
	FormMember *members = NULL;
	int			n = 0;
	int			size = 0;
	int			keylen = key->len;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			if (n == size)
			{
				size = size == 0 ? 8 : size * 2;
				members = members == NULL ? palloc(sizeof(FormMember) * size) :
					repalloc(members, sizeof(FormMember) * size);
			}
			members[n].name = v;
			members[n].position = n;
			members[n].is_index = IsArrayIndexName(v.val.string.val,
												   v.val.string.len,
												   &members[n].index);
		}
		else if (tok == WJB_VALUE)
			members[n++].value = v;
	}
	if (n == 0)
		return;
	qsort(members, n, sizeof(FormMember), CompareMembers);

	for (int i = 0; i < n; i++)
	{
		if (!top)
			appendStringInfoChar(key, '[');
		AppendFormEncoded(key, members[i].name.val.string.val,
						  members[i].name.val.string.len);
		if (!top)
			appendStringInfoChar(key, ']');
		EncodeValue(out, key, &members[i].value);
		key->len = keylen;
		key->data[keylen] = '\0';
	}
	pfree(members);
}

/* Encode the elements of an array under key, as key[0], key[1], ... */
static void
EncodeArray(StringInfo out, StringInfo key, JsonbContainer *container)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			keylen = key->len;
	int			i = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		appendStringInfo(key, "[%d]", i++);
		EncodeValue(out, key, &v);
		key->len = keylen;
		key->data[keylen] = '\0';
	}
}

/* Encode one value under key (already percent-encoded) */
static void
EncodeValue(StringInfo out, StringInfo key, const JsonbValue *v)
{
	check_stack_depth();
	switch (v->type)
	{
		case jbvBinary:
			if (JsonContainerIsObject(v->val.binary.data))
				EncodeObject(out, key, v->val.binary.data, false);
			else
				EncodeArray(out, key, v->val.binary.data);
			break;
		case jbvNull:
			AppendPairStart(out, key);
			break;
		case jbvString:
			AppendPairStart(out, key);
			AppendFormEncoded(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			AppendPairStart(out, key);
			AppendNumber(out, v->val.numeric, key->data);
			break;
		case jbvBool:
			AppendPairStart(out, key);
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * integration.stripe_form_encode(payload jsonb) RETURNS text
 */
Datum
integration_stripe_form_encode(PG_FUNCTION_ARGS)
{
	Jsonb	   *payload = PG_GETARG_JSONB_P(0);
	StringInfoData out;
	StringInfoData key;

	if (!JB_ROOT_IS_OBJECT(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Stripe request parameters must be a JSON object"),
				 errdetail("Stripe's v1 API takes named parameters, such as {\"amount\": 2000, \"currency\": \"usd\"}.")));

	initStringInfo(&out);
	initStringInfo(&key);
	EncodeObject(&out, &key, &payload->root, true);
	pfree(key.data);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
