/*-------------------------------------------------------------------------
 *
 * pattern_keys.c
 *	  Index keys of subscription patterns, so that the endpoints an event name
 *	  may match are found by an index lookup rather than by reading all of a
 *	  tenant's endpoints (issue #20), and the SQL function
 *	  _event_pattern_keys() that the GIN index on webhook_endpoints is built on.
 *
 * Every valid pattern gets one key, and every event name a small set of keys,
 * such that a pattern that matches the name (event_pattern.c) has one of the
 * name's keys.  The converse need not hold: the keys select candidates, and
 * EventPatternsMatch() decides.  A key is the tenant, the number of segments
 * the pattern matches, and at most its first KEY_SEGMENTS segments as
 * written ("*" kept as "*"):
 *
 *	 <len>:<tenant>=<k>|<s1>.<s2>...	a pattern of k segments without "**":
 *										events of exactly k segments
 *	 <len>:<tenant>+<f>|<s1>...<sf>		a pattern of f segments and a final "**"
 *										(f < KEY_SEGMENTS): events of more than f
 *	 <len>:<tenant>+<D>|<s1>...<sD>		the same for f >= D = KEY_SEGMENTS
 *	 <len>:<tenant>*					the lone "*": every event
 *
 * An event name of m segments gets, for its exact class, each way of writing
 * its first min(m, D) segments with some of them replaced by "*", and for
 * each "**" class f < m (f <= D) each way of writing its first f segments
 * so; with D = 3 that is at most 1 + 8 + 15 = 24 keys whatever the name.  A
 * pattern that matches the name has exactly its segments where the name's
 * have "*", so its key is among them.  Patterns of other first segments,
 * other lengths or other literals in their first three segments are never
 * candidates.
 *
 * The tenant is written with its length first so that no tenant's keys can
 * be read as another's.  Invalid patterns, elements that are not strings and
 * anything but an array get no key: they never match.
 *
 * The keys are stored in webhook_endpoints_pattern_keys_idx: a change of this
 * scheme (KEY_SEGMENTS, the format) needs an upgrade script that rebuilds it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "event_pattern.h"
#include "pattern_keys.h"

PG_FUNCTION_INFO_V1(integration_event_pattern_keys);
PG_FUNCTION_INFO_V1(integration_event_name_keys);

/* The leading segments a key holds (the D above); 2^D keys per class. */
#define KEY_SEGMENTS 3

/* Appends the tenant part of every key. */
static void
append_tenant(StringInfo buf, const char *tenant, int tenantlen)
{
	appendStringInfo(buf, "%d:", tenantlen);
	appendBinaryStringInfo(buf, tenant, tenantlen);
}

/*
 * The key of the valid pattern pat[0..len) for tenant, as text; NULL for an invalid
 * pattern.
 */
static text *
pattern_key(const char *tenant, int tenantlen, const char *pat, int len)
{
	StringInfoData buf;
	const char *p = pat;
	const char *end = pat + len;
	int			nseg = 0;
	bool		rest = false;
	int			keyend = -1;	/* bytes of pat the key holds */
	text	   *key;

	if (!EventPatternIsValid(pat, len))
		return NULL;
	initStringInfo(&buf);
	append_tenant(&buf, tenant, tenantlen);
	if (len == 1 && pat[0] == '*')
	{
		appendStringInfoChar(&buf, '*');
		goto done;
	}

	/* Count the segments, note a final "**" and where the D-th segment ends. */
	for (;;)
	{
		const char *s = p;

		while (p < end && *p != '.')
			p++;
		if (p - s == 2 && s[0] == '*' && s[1] == '*')
			rest = true;		/* valid: only ever last */
		else
		{
			nseg++;
			if (nseg == KEY_SEGMENTS)
				keyend = p - pat;
		}
		if (p == end)
			break;
		p++;
	}
	if (keyend < 0)
	{
		/*
		 * All fixed segments fit: the pattern up to its "**", without the
		 * dot.
		 */
		keyend = rest ? Max(len - 3, 0) : len;
	}
	if (rest)
		appendStringInfo(&buf, "+%d|", Min(nseg, KEY_SEGMENTS));
	else
		appendStringInfo(&buf, "=%d|", nseg);
	appendBinaryStringInfo(&buf, pat, keyend);

done:
	key = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);
	return key;
}

static int
compare_text_ptrs(const void *a, const void *b)
{
	text	   *x = *(text *const *) a;
	text	   *y = *(text *const *) b;
	int			lx = VARSIZE_ANY_EXHDR(x);
	int			ly = VARSIZE_ANY_EXHDR(y);
	int			c = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return c != 0 ? c : (lx > ly) - (lx < ly);
}

/* keys[0..n) as a text[], sorted and without repeats. */
static ArrayType *
keys_array(text **keys, int n)
{
	Datum	   *datums = palloc(sizeof(Datum) * Max(n, 1));
	int			k = 0;

	if (n > 1)
		qsort(keys, n, sizeof(text *), compare_text_ptrs);
	for (int i = 0; i < n; i++)
		if (k == 0 || compare_text_ptrs(&keys[i], &keys[i - 1]) != 0)
			datums[k++] = PointerGetDatum(keys[i]);
	return construct_array(datums, k, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * The keys of the patterns of a jsonb array (see the banner), as a text[] sorted and
 * without repeats; empty for anything but an array.
 */
ArrayType *
EventPatternKeys(const char *tenant, int tenantlen, Jsonb *patterns)
{
	text	  **keys;
	int			n = 0;

	if (!JB_ROOT_IS_ARRAY(patterns) || JB_ROOT_IS_SCALAR(patterns))
		return construct_empty_array(TEXTOID);
	keys = palloc(sizeof(text *) * Max(JB_ROOT_COUNT(patterns), 1));
	for (int i = 0; i < JB_ROOT_COUNT(patterns); i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&patterns->root, i);
		text	   *key;

		if (v == NULL || v->type != jbvString)
			continue;
		key = pattern_key(tenant, tenantlen, v->val.string.val, v->val.string.len);
		if (key != NULL)
			keys[n++] = key;
	}
	return keys_array(keys, n);
}

/*
 * Appends to keys the keys of class cls ("=3", "+1") over the first nseg of the event's
 * segments (start[], len[]), each written with every subset of them as "*".
 */
static void
add_masked_keys(const char *tenant, int tenantlen, const char *cls,
				const char *const *start, const int *len, int nseg,
				text **keys, int *n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int mask = 0; mask < (1 << nseg); mask++)
	{
		resetStringInfo(&buf);
		append_tenant(&buf, tenant, tenantlen);
		appendStringInfo(&buf, "%s|", cls);
		for (int i = 0; i < nseg; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, '.');
			if (mask & (1 << i))
				appendStringInfoChar(&buf, '*');
			else
				appendBinaryStringInfo(&buf, start[i], len[i]);
		}
		keys[(*n)++] = cstring_to_text_with_len(buf.data, buf.len);
	}
	pfree(buf.data);
}

/*
 * The keys under which a tenant's patterns that may match the event name are filed
 * (see the banner), as a text[]; empty for an invalid name, which matches nothing.
 */
ArrayType *
EventNameKeys(const char *tenant, int tenantlen, const char *event, int eventlen)
{
	const char *start[KEY_SEGMENTS];
	int			len[KEY_SEGMENTS];
	int			nseg = 0;
	const char *p = event;
	const char *end = event + eventlen;
	text	   *keys[1 + (1 << KEY_SEGMENTS) + (1 << (KEY_SEGMENTS + 1)) - 1];
	int			n = 0;
	char		cls[16];
	StringInfoData buf;

	if (!EventNameIsValid(event, eventlen))
		return construct_empty_array(TEXTOID);

	/* The segments: the first KEY_SEGMENTS of them, and how many in all. */
	for (;;)
	{
		const char *s = p;

		while (p < end && *p != '.')
			p++;
		if (nseg < KEY_SEGMENTS)
		{
			start[nseg] = s;
			len[nseg] = p - s;
		}
		nseg++;
		if (p == end)
			break;
		p++;
	}

	initStringInfo(&buf);
	append_tenant(&buf, tenant, tenantlen);
	appendStringInfoChar(&buf, '*');
	keys[n++] = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);

	snprintf(cls, sizeof(cls), "=%d", nseg);
	add_masked_keys(tenant, tenantlen, cls, start, len, Min(nseg, KEY_SEGMENTS), keys, &n);
	for (int f = 0; f < nseg && f <= KEY_SEGMENTS; f++)
	{
		snprintf(cls, sizeof(cls), "+%d", f);
		add_masked_keys(tenant, tenantlen, cls, start, len, f, keys, &n);
	}
	return keys_array(keys, n);
}

/*
 * integration._event_pattern_keys(tenant text, events jsonb) RETURNS text[]
 */
Datum
integration_event_pattern_keys(PG_FUNCTION_ARGS)
{
	text	   *tenant = PG_GETARG_TEXT_PP(0);
	Jsonb	   *patterns = PG_GETARG_JSONB_P(1);

	PG_RETURN_ARRAYTYPE_P(EventPatternKeys(VARDATA_ANY(tenant), VARSIZE_ANY_EXHDR(tenant),
										   patterns));
}

/*
 * integration._event_name_keys(tenant text, event text) RETURNS text[]
 */
Datum
integration_event_name_keys(PG_FUNCTION_ARGS)
{
	text	   *tenant = PG_GETARG_TEXT_PP(0);
	text	   *event = PG_GETARG_TEXT_PP(1);

	PG_RETURN_ARRAYTYPE_P(EventNameKeys(VARDATA_ANY(tenant), VARSIZE_ANY_EXHDR(tenant),
										VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event)));
}
