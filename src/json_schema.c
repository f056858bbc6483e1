/*
 * json_schema.c
 *		Checks event data against a JSON Schema: the part of draft 2020-12 that
 *		describes data (types, enums, object properties, array items, string
 *		lengths and patterns, numeric bounds, combinators).
 *
 * A schema registered with register_event_type() is checked when it is registered
 * (validate_json_schema(), a CHECK constraint of event_schemas): a keyword this file
 * does not implement is refused there, with the list of those it does, rather than
 * silently ignored when a payload is checked.  Annotations (title, description,
 * format, examples, ...) are accepted and do not constrain.  References ($ref) are
 * not supported: a registered schema is self-contained.
 *
 * publish_event() checks a payload against its event's registered schema when
 * integration.validate_payloads is on (publish.c); a mismatch is an error naming the
 * JSON pointer of the first offending value.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/varlena.h"

#include "json_schema.h"

bool		integration_validate_payloads = false;

/* Keywords that constrain, and annotations that do not. */
static const char *const constraint_keywords[] = {
	"type", "enum", "const", "properties", "required", "additionalProperties", "items",
	"minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
	"exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "not",
	"minProperties", "maxProperties",
};
static const char *const annotation_keywords[] = {
	"$schema", "$id", "$comment", "title", "description", "default", "examples",
	"format", "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
};

void
JsonSchemaDefineGucs(void)
{
	DefineCustomBoolVariable("integration.validate_payloads",
							 "Checks publish_event() payloads against their event's registered JSON Schema.",
							 "Schemas are registered with integration.register_event_type().",
							 &integration_validate_payloads, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------------------
 * Reading JSON values
 * ------------------------------------------------------------------------------------ */

/* The value of document jb: its root container (jbvBinary), or its scalar. */
static void
document_value(Jsonb *jb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&jb->root, 0);

		*out = *v;
		return;
	}
	out->type = jbvBinary;
	out->val.binary.data = &jb->root;
	out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
}

static bool
is_object(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
is_array(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* Member key of object schema, or false. */
static bool
member(const JsonbValue *obj, const char *key, JsonbValue *out)
{
	JsonbValue *v;

	if (!is_object(obj))
		return false;
	v = getKeyJsonValueFromContainer(obj->val.binary.data, key, strlen(key), out);
	return v != NULL;
}

static int
json_array_size(const JsonbValue *arr)
{
	return JsonContainerSize(arr->val.binary.data);
}

static void
array_element(const JsonbValue *arr, int i, JsonbValue *out)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr->val.binary.data, i);

	*out = *v;
}

static const char *
type_name(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvBool:
			return "boolean";
		case jbvNumeric:
			return "number";
		case jbvString:
			return "string";
		default:
			return is_object(v) ? "object" : "array";
	}
}

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
numeric_is_integral(Numeric n)
{
	Numeric		t = DatumGetNumeric(DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
														Int32GetDatum(0)));

	return !numeric_is_nan(n) && !numeric_is_inf(n) && num_cmp(n, t) == 0;
}

static bool
has_type(const JsonbValue *v, const char *type)
{
	if (strcmp(type, "integer") == 0)
		return v->type == jbvNumeric && numeric_is_integral(v->val.numeric);
	return strcmp(type, type_name(v)) == 0;
}

/* JSON equality, as enum and const mean it. */
static bool
json_equal(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvNumeric:
			return num_cmp(a->val.numeric, b->val.numeric) == 0;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvBinary:
			return JsonContainerIsObject(a->val.binary.data) == JsonContainerIsObject(b->val.binary.data) &&
				compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			return false;
	}
}

static char *
value_text(const JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb((JsonbValue *) v);
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	if (strlen(s) > 60)
		strcpy(s + 57, "...");
	return s;
}

/* ------------------------------------------------------------------------------------
 * Checking a schema
 * ------------------------------------------------------------------------------------ */

static bool
in_list(const char *key, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(key, list[i]) == 0)
			return true;
	return false;
}

static void schema_error(const char *path, const char *fmt,...) pg_attribute_printf(2, 3);

static void
schema_error(const char *path, const char *fmt,...)
{
	StringInfoData msg;

	initStringInfo(&msg);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&msg, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid JSON Schema at %s: %s", path[0] ? path : "/", msg.data),
			 errhint("Supported keywords: type, enum, const, properties, required, additionalProperties, items, minItems, maxItems, minProperties, maxProperties, minLength, maxLength, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, oneOf, allOf, not, and the annotations title, description, format, default, examples.")));
}

static void check_schema(const JsonbValue *s, const char *path);

static void
check_schema_array(const JsonbValue *v, const char *path, const char *key, bool of_schemas)
{
	char	   *sub = psprintf("%s/%s", path, key);

	if (!is_array(v) || json_array_size(v) == 0)
		schema_error(sub, "must be a non-empty array");
	for (int i = 0; of_schemas && i < json_array_size(v); i++)
	{
		JsonbValue	e;

		array_element(v, i, &e);
		check_schema(&e, psprintf("%s/%d", sub, i));
	}
}

static void
check_count(const JsonbValue *v, const char *path, const char *key)
{
	if (v->type != jbvNumeric || !numeric_is_integral(v->val.numeric) ||
		num_cmp(v->val.numeric, int64_to_numeric(0)) < 0)
		schema_error(psprintf("%s/%s", path, key), "must be a non-negative integer");
}

static void
check_schema(const JsonbValue *s, const char *path)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (s->type == jbvBool)
		return;					/* true: anything; false: nothing */
	if (!is_object(s))
		schema_error(path, "a schema must be an object or a boolean");
	it = JsonbIteratorInit(s->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (in_list(key, annotation_keywords, lengthof(annotation_keywords)))
			continue;
		if (!in_list(key, constraint_keywords, lengthof(constraint_keywords)))
			schema_error(path, "keyword \"%s\" is not supported", key);
		if (strcmp(key, "type") == 0)
		{
			static const char *const types[] = {"null", "boolean", "object", "array", "number", "string", "integer"};
			int			n = v.type == jbvString ? 1 : is_array(&v) ? json_array_size(&v) : 0;

			if (n == 0)
				schema_error(path, "\"type\" must be a type name or a non-empty array of them");
			for (int i = 0; i < n; i++)
			{
				JsonbValue	t;
				char	   *name;

				if (v.type == jbvString)
					t = v;
				else
					array_element(&v, i, &t);
				if (t.type != jbvString)
					schema_error(path, "\"type\" must name types");
				name = pnstrdup(t.val.string.val, t.val.string.len);
				if (!in_list(name, types, lengthof(types)))
					schema_error(path, "unknown type \"%s\"", name);
			}
		}
		else if (strcmp(key, "enum") == 0)
			check_schema_array(&v, path, key, false);
		else if (strcmp(key, "properties") == 0)
		{
			JsonbIterator *pit;
			JsonbValue	pk;
			JsonbValue	pv;

			if (!is_object(&v))
				schema_error(path, "\"properties\" must be an object");
			pit = JsonbIteratorInit(v.val.binary.data);
			while ((tok = JsonbIteratorNext(&pit, &pk, true)) != WJB_DONE)
			{
				if (tok != WJB_KEY)
					continue;
				(void) JsonbIteratorNext(&pit, &pv, true);
				check_schema(&pv, psprintf("%s/properties/%.*s", path, pk.val.string.len, pk.val.string.val));
			}
		}
		else if (strcmp(key, "required") == 0)
		{
			if (!is_array(&v))
				schema_error(path, "\"required\" must be an array of names");
			for (int i = 0; i < json_array_size(&v); i++)
			{
				JsonbValue	e;

				array_element(&v, i, &e);
				if (e.type != jbvString)
					schema_error(path, "\"required\" must be an array of names");
			}
		}
		else if (strcmp(key, "additionalProperties") == 0 || strcmp(key, "items") == 0 ||
				 strcmp(key, "not") == 0)
			check_schema(&v, psprintf("%s/%s", path, key));
		else if (strcmp(key, "anyOf") == 0 || strcmp(key, "oneOf") == 0 || strcmp(key, "allOf") == 0)
			check_schema_array(&v, path, key, true);
		else if (strcmp(key, "pattern") == 0)
		{
			if (v.type != jbvString)
				schema_error(path, "\"pattern\" must be a string");
			/* Compiles it, reporting a bad regular expression now. */
			(void) RE_compile_and_execute(cstring_to_text_with_len(v.val.string.val, v.val.string.len),
										  "", 0, REG_ADVANCED, C_COLLATION_OID, 0, NULL);
		}
		else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0 ||
				 strcmp(key, "exclusiveMinimum") == 0 || strcmp(key, "exclusiveMaximum") == 0)
		{
			if (v.type != jbvNumeric)
				schema_error(path, "\"%s\" must be a number", key);
		}
		else if (strcmp(key, "const") != 0)
			check_count(&v, path, key); /* min/max Items, Length, Properties */
	}
}

PG_FUNCTION_INFO_V1(integration_validate_json_schema);

/*
 * integration.validate_json_schema(schema jsonb) returns jsonb: the schema, or an
 * error (22023) naming what is wrong with it.
 */
Datum
integration_validate_json_schema(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema = PG_GETARG_JSONB_P(0);
	JsonbValue	root;

	document_value(schema, &root);
	check_schema(&root, "");
	PG_RETURN_JSONB_P(schema);
}

/* ------------------------------------------------------------------------------------
 * Checking a value
 * ------------------------------------------------------------------------------------ */

typedef struct Mismatch
{
	char	   *path;
	char	   *reason;
} Mismatch;

static bool validate(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m);

static bool
fail(Mismatch *m, const char *path, char *reason)
{
	if (m != NULL && m->reason == NULL)
	{
		m->path = pstrdup(path[0] ? path : "/");
		m->reason = reason;
	}
	return false;
}

static bool
validate_type(const JsonbValue *t, const JsonbValue *v, const char *path, Mismatch *m)
{
	int			n = t->type == jbvString ? 1 : json_array_size(t);

	for (int i = 0; i < n; i++)
	{
		JsonbValue	e;

		if (t->type == jbvString)
			e = *t;
		else
			array_element(t, i, &e);
		if (has_type(v, pnstrdup(e.val.string.val, e.val.string.len)))
			return true;
	}
	return fail(m, path, psprintf("%s is not of type %s", value_text(v), value_text(t)));
}

static bool
validate_object(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m)
{
	JsonbValue	props;
	JsonbValue	req;
	JsonbValue	addl;
	JsonbValue	x;
	bool		has_props = member(s, "properties", &props);
	bool		has_addl = member(s, "additionalProperties", &addl);
	int			count = JsonContainerSize(v->val.binary.data);
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (member(s, "required", &req))
	{
		for (int i = 0; i < json_array_size(&req); i++)
		{
			array_element(&req, i, &e);
			if (!getKeyJsonValueFromContainer(v->val.binary.data, e.val.string.val, e.val.string.len, &x))
				return fail(m, path, psprintf("required property \"%.*s\" is missing",
											  e.val.string.len, e.val.string.val));
		}
	}
	if (member(s, "minProperties", &x) &&
		count < DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("has %d properties, fewer than minProperties", count));
	if (member(s, "maxProperties", &x) &&
		count > DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("has %d properties, more than maxProperties", count));

	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		JsonbValue	ps;
		char	   *sub;

		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &e, true);
		sub = psprintf("%s/%.*s", path, k.val.string.len, k.val.string.val);
		if (has_props &&
			getKeyJsonValueFromContainer(props.val.binary.data, k.val.string.val, k.val.string.len, &ps))
		{
			if (!validate(&ps, &e, sub, m))
				return false;
		}
		else if (has_addl)
		{
			if (addl.type == jbvBool && !addl.val.boolean)
				return fail(m, path, psprintf("property \"%.*s\" is not allowed",
											  k.val.string.len, k.val.string.val));
			if (!validate(&addl, &e, sub, m))
				return false;
		}
	}
	return true;
}

static bool
validate_array(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m)
{
	JsonbValue	items;
	JsonbValue	x;
	int			n = json_array_size(v);

	if (member(s, "minItems", &x) &&
		n < DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("has %d items, fewer than minItems", n));
	if (member(s, "maxItems", &x) &&
		n > DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("has %d items, more than maxItems", n));
	if (member(s, "items", &items))
	{
		for (int i = 0; i < n; i++)
		{
			JsonbValue	e;

			array_element(v, i, &e);
			if (!validate(&items, &e, psprintf("%s/%d", path, i), m))
				return false;
		}
	}
	return true;
}

static bool
validate_string(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m)
{
	JsonbValue	x;
	int			chars = pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);

	if (member(s, "minLength", &x) &&
		chars < DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("%s is shorter than minLength", value_text(v)));
	if (member(s, "maxLength", &x) &&
		chars > DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(x.val.numeric))))
		return fail(m, path, psprintf("%s is longer than maxLength", value_text(v)));
	if (member(s, "pattern", &x) &&
		!RE_compile_and_execute(cstring_to_text_with_len(x.val.string.val, x.val.string.len),
								v->val.string.val, v->val.string.len, REG_ADVANCED,
								C_COLLATION_OID, 0, NULL))
		return fail(m, path, psprintf("%s does not match the pattern %s", value_text(v), value_text(&x)));
	return true;
}

static bool
validate_number(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m)
{
	static const struct
	{
		const char *key;
		int			ok_min;		/* cmp(value, bound) must be >= this */
		int			ok_max;		/* and <= this */
	}			bounds[] = {
		{"minimum", 0, 1}, {"exclusiveMinimum", 1, 1}, {"maximum", -1, 0}, {"exclusiveMaximum", -1, -1},
	};

	for (int i = 0; i < lengthof(bounds); i++)
	{
		JsonbValue	x;
		int			c;

		if (!member(s, bounds[i].key, &x))
			continue;
		c = num_cmp(v->val.numeric, x.val.numeric);
		c = c < 0 ? -1 : c > 0 ? 1 : 0;
		if (c < bounds[i].ok_min || c > bounds[i].ok_max)
			return fail(m, path, psprintf("%s violates %s %s", value_text(v), bounds[i].key, value_text(&x)));
	}
	return true;
}

static bool
validate(const JsonbValue *s, const JsonbValue *v, const char *path, Mismatch *m)
{
	JsonbValue	x;

	if (s->type == jbvBool)
		return s->val.boolean ? true : fail(m, path, psprintf("%s is not allowed here", value_text(v)));
	if (member(s, "type", &x) && !validate_type(&x, v, path, m))
		return false;
	if (member(s, "const", &x) && !json_equal(&x, v))
		return fail(m, path, psprintf("%s is not %s", value_text(v), value_text(&x)));
	if (member(s, "enum", &x))
	{
		bool		found = false;

		for (int i = 0; i < json_array_size(&x) && !found; i++)
		{
			JsonbValue	e;

			array_element(&x, i, &e);
			found = json_equal(&e, v);
		}
		if (!found)
			return fail(m, path, psprintf("%s is not one of %s", value_text(v), value_text(&x)));
	}
	if (is_object(v) && !validate_object(s, v, path, m))
		return false;
	if (is_array(v) && !validate_array(s, v, path, m))
		return false;
	if (v->type == jbvString && !validate_string(s, v, path, m))
		return false;
	if (v->type == jbvNumeric && !validate_number(s, v, path, m))
		return false;
	if (member(s, "allOf", &x))
	{
		for (int i = 0; i < json_array_size(&x); i++)
		{
			JsonbValue	e;

			array_element(&x, i, &e);
			if (!validate(&e, v, path, m))
				return false;
		}
	}
	if (member(s, "anyOf", &x) || member(s, "oneOf", &x))
	{
		bool		one = !member(s, "anyOf", &x) && member(s, "oneOf", &x);
		int			matched = 0;

		for (int i = 0; i < json_array_size(&x); i++)
		{
			JsonbValue	e;

			array_element(&x, i, &e);
			if (validate(&e, v, path, NULL))
				matched++;
		}
		if (matched == 0 || (one && matched > 1))
			return fail(m, path, psprintf("%s matches %d of the schemas of %s", value_text(v), matched,
										  one ? "oneOf" : "anyOf"));
	}
	if (member(s, "not", &x) && validate(&x, v, path, NULL))
		return fail(m, path, psprintf("%s matches the schema of \"not\"", value_text(v)));
	return true;
}

/* See json_schema.h */
void
JsonSchemaCheckValue(Jsonb *schema, Jsonb *value, const char *what)
{
	JsonbValue	s;
	JsonbValue	v;
	Mismatch	m = {NULL, NULL};

	document_value(schema, &s);
	document_value(value, &v);
	if (!validate(&s, &v, "", &m))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload does not match the registered schema of %s", what),
				 errdetail("At %s: %s.", m.path, m.reason),
				 errhint("integration.event_types shows the schema; integration.validate_payloads = off publishes without checking.")));
}

PG_FUNCTION_INFO_V1(integration_json_schema_matches);

/*
 * integration.json_schema_matches(schema jsonb, value jsonb) returns boolean: whether
 * value matches schema (which must be a valid schema).
 */
Datum
integration_json_schema_matches(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema = PG_GETARG_JSONB_P(0);
	Jsonb	   *value = PG_GETARG_JSONB_P(1);
	JsonbValue	s;
	JsonbValue	v;

	document_value(schema, &s);
	check_schema(&s, "");
	document_value(value, &v);
	PG_RETURN_BOOL(validate(&s, &v, "", NULL));
}
