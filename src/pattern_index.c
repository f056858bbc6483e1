/*-------------------------------------------------------------------------
 *
 * pattern_index.c
 *	  A trie of subscription patterns, so that matching an event costs what its
 *	  segments cost, however many endpoints a tenant has (issue #20).
 *
 * A pattern is a path of segments from the root: a literal segment, "*" (any
 * one segment) or, last, "**" (one or more segments).  Each node has its
 * literal children, found in one hash table for the whole index keyed by
 * (parent node, segment); a child for "*"; the values of the patterns that end
 * at the node; and the values of those that end at it with a final "**".  The
 * lone pattern "*", which matches every event, is kept apart.
 *
 * Matching an event of n segments walks down from the root one segment at a
 * time, into the literal child for that segment and into the "*" child.  At
 * each node it reaches before the end it takes the "**" values (one or more
 * segments are left for them), and at the nodes it reaches after the last
 * segment the values of the patterns that end there.  A node is reached by one
 * path only, so a walk visits each node at most once, and only nodes whose
 * path matches the start of the event: the literal patterns of other events
 * are never looked at.  This is event_pattern.c's grammar, and
 * EventPatternMatches() applied to every pattern gives the same values
 * (test/sql/event_matching.sql compares the two).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "event_pattern.h"
#include "pattern_index.h"

typedef struct ValueList
{
	int		   *values;
	int			n;
	int			max;
} ValueList;

typedef struct TrieNode
{
	int			star;			/* the "*" child; -1 when none */
	ValueList	ends;			/* patterns that end here */
	ValueList	rest;			/* patterns that end here with "**" */
} TrieNode;

/* A literal child: the segment points into memory of the index. */
typedef struct ChildKey
{
	int			parent;
	int			len;
	const char *segment;
} ChildKey;

typedef struct ChildEntry
{
	ChildKey	key;			/* hash key */
	int			child;
} ChildEntry;

struct PatternIndex
{
	MemoryContext mcxt;
	TrieNode   *nodes;
	int			nnodes;
	int			maxnodes;
	HTAB	   *children;
	ValueList	all;			/* the lone "*" */
};

/* The event's segments while it is matched. */
typedef struct EventSegments
{
	const char *start[EVENT_NAME_MAX_LEN];
	int			len[EVENT_NAME_MAX_LEN];
	int			n;
} EventSegments;

static uint32
child_hash(const void *key, Size keysize)
{
	const ChildKey *k = (const ChildKey *) key;

	return hash_combine(hash_uint32((uint32) k->parent),
						hash_bytes((const unsigned char *) k->segment, k->len));
}

static int
child_match(const void *key1, const void *key2, Size keysize)
{
	const ChildKey *a = (const ChildKey *) key1;
	const ChildKey *b = (const ChildKey *) key2;

	if (a->parent != b->parent || a->len != b->len)
		return 1;
	return memcmp(a->segment, b->segment, a->len);
}

static void
list_add(MemoryContext mcxt, ValueList *list, int value)
{
	if (list->n == list->max)
	{
		list->max = Max(4, list->max * 2);
		list->values = list->values
			? repalloc(list->values, sizeof(int) * list->max)
			: MemoryContextAlloc(mcxt, sizeof(int) * list->max);
	}
	list->values[list->n++] = value;
}

static int
new_node(PatternIndex *index)
{
	TrieNode   *node;

	if (index->nnodes == index->maxnodes)
	{
		index->maxnodes *= 2;
		index->nodes = repalloc(index->nodes, sizeof(TrieNode) * index->maxnodes);
	}
	node = &index->nodes[index->nnodes];
	memset(node, 0, sizeof(TrieNode));
	node->star = -1;
	return index->nnodes++;
}

/* An empty index whose memory lives in mcxt. */
PatternIndex *
PatternIndexCreate(MemoryContext mcxt)
{
	PatternIndex *index = MemoryContextAllocZero(mcxt, sizeof(PatternIndex));
	HASHCTL		ctl;

	index->mcxt = mcxt;
	index->maxnodes = 16;
	index->nodes = MemoryContextAlloc(mcxt, sizeof(TrieNode) * index->maxnodes);
	(void) new_node(index);		/* the root */

	ctl.keysize = sizeof(ChildKey);
	ctl.entrysize = sizeof(ChildEntry);
	ctl.hash = child_hash;
	ctl.match = child_match;
	ctl.hcxt = mcxt;
	index->children = hash_create("integration pattern index", 64, &ctl,
								  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	return index;
}

/* The literal child of parent for a segment, made if make; -1 when there is none. */
static int
literal_child(PatternIndex *index, int parent, const char *segment, int len, bool make)
{
	ChildKey	key;
	ChildEntry *entry;
	bool		found;
	int			child;
	char	   *copy;

	key.parent = parent;
	key.len = len;
	key.segment = segment;
	entry = hash_search(index->children, &key, make ? HASH_ENTER : HASH_FIND, &found);
	if (entry == NULL)
		return -1;
	if (found)
		return entry->child;

	/* The key points into the caller's pattern: keep a copy of the segment. */
	copy = MemoryContextAlloc(index->mcxt, len + 1);
	memcpy(copy, segment, len);
	copy[len] = '\0';
	entry->key.segment = copy;
	child = new_node(index);
	entry->child = child;
	return child;
}

/* Adds pattern pat[0..patlen) with value; an invalid pattern is ignored. */
void
PatternIndexAdd(PatternIndex *index, const char *pat, int patlen, int value)
{
	const char *p = pat;
	const char *end = pat + patlen;
	int			node = 0;

	if (!EventPatternIsValid(pat, patlen))
		return;
	if (patlen == 1 && pat[0] == '*')
	{
		list_add(index->mcxt, &index->all, value);
		return;
	}
	for (;;)
	{
		const char *dot = memchr(p, '.', end - p);
		int			len = (dot ? dot : end) - p;

		if (len == 2 && p[0] == '*' && p[1] == '*')
		{
			/* Valid patterns have "**" last only. */
			list_add(index->mcxt, &index->nodes[node].rest, value);
			return;
		}
		if (len == 1 && p[0] == '*')
		{
			if (index->nodes[node].star < 0)
			{
				int			child = new_node(index);

				index->nodes[node].star = child;
			}
			node = index->nodes[node].star;
		}
		else
			node = literal_child(index, node, p, len, true);
		if (dot == NULL)
		{
			list_add(index->mcxt, &index->nodes[node].ends, value);
			return;
		}
		p = dot + 1;
	}
}

/*
 * Adds every pattern of a jsonb array with value.  Anything but an array adds
 * nothing, and elements that are not strings are skipped, as EventPatternsMatch()
 * skips them.
 */
void
PatternIndexAddArray(PatternIndex *index, Jsonb *patterns, int value)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (patterns == NULL || !JB_ROOT_IS_ARRAY(patterns) || JB_ROOT_IS_SCALAR(patterns))
		return;
	it = JsonbIteratorInit(&patterns->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM && v.type == jbvString)
			PatternIndexAdd(index, v.val.string.val, v.val.string.len, value);
}

static void
list_append(ValueList *out, const ValueList *from)
{
	if (from->n == 0)
		return;
	if (out->n + from->n > out->max)
	{
		out->max = Max(out->n + from->n, out->max * 2);
		out->values = out->values ? repalloc(out->values, sizeof(int) * out->max)
			: palloc(sizeof(int) * out->max);
	}
	memcpy(out->values + out->n, from->values, sizeof(int) * from->n);
	out->n += from->n;
}

static void
walk(PatternIndex *index, int node, const EventSegments *ev, int i, ValueList *out)
{
	const TrieNode *t = &index->nodes[node];
	int			child;

	check_stack_depth();
	if (i == ev->n)
	{
		list_append(out, &t->ends);
		return;
	}
	list_append(out, &t->rest);
	child = literal_child(index, node, ev->start[i], ev->len[i], false);
	if (child >= 0)
		walk(index, child, ev, i + 1, out);
	if (t->star >= 0)
		walk(index, t->star, ev, i + 1, out);
}

static int
int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/*
 * The values of the patterns event[0..eventlen) matches, sorted and distinct, in
 * *values (palloc'd in the current memory context); returns how many.  An invalid
 * event name matches nothing.
 */
int
PatternIndexMatch(PatternIndex *index, const char *event, int eventlen, int **values)
{
	EventSegments ev;
	ValueList	out = {NULL, 0, 0};
	const char *p = event;
	const char *end = event + eventlen;
	int			n = 0;

	*values = NULL;
	if (eventlen > EVENT_NAME_MAX_LEN || !EventNameIsValid(event, eventlen))
		return 0;
	ev.n = 0;
	for (;;)
	{
		const char *dot = memchr(p, '.', end - p);

		ev.start[ev.n] = p;
		ev.len[ev.n] = (dot ? dot : end) - p;
		ev.n++;
		if (dot == NULL)
			break;
		p = dot + 1;
	}

	list_append(&out, &index->all);
	walk(index, 0, &ev, 0, &out);
	if (out.n == 0)
		return 0;
	qsort(out.values, out.n, sizeof(int), int_cmp);
	for (int i = 0; i < out.n; i++)
		if (n == 0 || out.values[i] != out.values[n - 1])
			out.values[n++] = out.values[i];
	*values = out.values;
	return n;
}
