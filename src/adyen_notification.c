/*-------------------------------------------------------------------------
 *
 * adyen_notification.c
 *	  Adyen's per-item HMAC of standard notifications: the fields an item
 *	  signs are read from JSON text by PostgreSQL's JSON parser, driven by
 *	  the semantic actions below, and the signature is checked by
 *	  signature.c's constant-time comparison under every key.
 *
 * The signing string is what Adyen's own libraries compute
 * (Adyen/adyen-node-api-library src/utils/hmacValidator.ts getDataToSign,
 * Adyen/adyen-python-api-library Adyen/util.py generate_notification_sig):
 *
 *	 pspReference:originalReference:merchantAccountCode:merchantReference:
 *	 amount.value:amount.currency:eventCode:success
 *
 * joined raw, without escaping (a ':' or '\' inside a value is signed as it
 * is; Adyen's captured notifications with such references prove it).  A
 * missing field or a JSON null is the empty string, as JavaScript's join()
 * makes it; a string is its decoded value, a number its text as sent, true
 * and false their names.  A signed field that is an object or an array, or
 * an amount that is not an object, makes the item unverifiable.
 *
 * Reading follows JSON.parse and Python's json where it matters: when a key
 * occurs twice in an object, the last value counts.  The parser recurses once
 * per nesting level and raises past the stack limit, so the text's depth is
 * measured first and a deeper text is refused as malformed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "adyen_notification.h"

/* The fields of an item that matter, the signed ones first and in order */
typedef enum AdyenField
{
	FIELD_PSP_REFERENCE,
	FIELD_ORIGINAL_REFERENCE,
	FIELD_MERCHANT_ACCOUNT_CODE,
	FIELD_MERCHANT_REFERENCE,
	FIELD_VALUE,				/* amount.value */
	FIELD_CURRENCY,				/* amount.currency */
	FIELD_EVENT_CODE,
	FIELD_SUCCESS,
	FIELD_HMAC_SIGNATURE,		/* additionalData.hmacSignature */
	NUM_FIELDS
} AdyenField;

#define NUM_SIGNED_FIELDS FIELD_HMAC_SIGNATURE

/* The member names of the fields read directly from the item */
static const char *const item_field_names[] = {
	[FIELD_PSP_REFERENCE] = "pspReference",
	[FIELD_ORIGINAL_REFERENCE] = "originalReference",
	[FIELD_MERCHANT_ACCOUNT_CODE] = "merchantAccountCode",
	[FIELD_MERCHANT_REFERENCE] = "merchantReference",
	[FIELD_EVENT_CODE] = "eventCode",
	[FIELD_SUCCESS] = "success",
};

/* What is known of one field */
typedef enum FieldState
{
	FIELD_ABSENT,				/* signed as "" */
	FIELD_PRESENT,				/* value holds its text */
	FIELD_UNUSABLE				/* an object or array, or a signature that is
								 * not a string */
} FieldState;

/* One NotificationRequestItem as read */
typedef struct AdyenItem
{
	bool		found;			/* its wrapper held an item object */
	bool		amount_unusable;	/* amount is not an object */
	FieldState	state[NUM_FIELDS];
	const char *value[NUM_FIELDS];
} AdyenItem;

/* What the container open at one depth is */
typedef enum AdyenContainer
{
	IN_OTHER,					/* nothing in it is read */
	IN_NOTIFICATION,			/* the root object of a notification */
	IN_ITEM_LIST,				/* notificationItems */
	IN_WRAPPER,					/* {"NotificationRequestItem": ...} */
	IN_ITEM,					/* a NotificationRequestItem */
	IN_AMOUNT,
	IN_ADDITIONAL_DATA
} AdyenContainer;

/*
 * Nesting a notification never needs (it uses five levels); deeper text is
 * refused before the parser sees it
 */
#define MAX_DEPTH 64

/* Items one notification may carry (Adyen sends batches of a few) */
#define MAX_ITEMS 1000

/* The parse state the semantic actions share */
typedef struct AdyenParse
{
	AdyenJsonRoot root;
	int			depth;			/* containers open */
	AdyenContainer in[MAX_DEPTH + 1];	/* in[d]: the container at depth d */
	const char *member[MAX_DEPTH + 1];	/* name of the value that comes next
										 * in container d; NULL in an array */
	bool		malformed;		/* not shaped like what root says */
	bool		have_item_list;
	AdyenItem  *items;
	int			nitems;
	int			maxitems;
} AdyenParse;

/* Is the member whose value comes next named name? */
static inline bool
MemberIs(const AdyenParse *p, const char *name)
{
	const char *m = p->member[p->depth];

	return m != NULL && strcmp(m, name) == 0;
}

/* The item being read: the last one started */
static inline AdyenItem *
CurrentItem(AdyenParse *p)
{
	Assert(p->nitems > 0);
	return &p->items[p->nitems - 1];
}

/* Start a new item, or mark the text malformed when there are too many */
static void
StartItem(AdyenParse *p)
{
	if (p->nitems == MAX_ITEMS)
	{
		p->malformed = true;
		return;
	}
	if (p->nitems == p->maxitems)
	{
		p->maxitems *= 2;
		p->items = repalloc(p->items, sizeof(AdyenItem) * p->maxitems);
	}
	memset(&p->items[p->nitems++], 0, sizeof(AdyenItem));
}

/* The item field a member of an item names, or -1 */
static int
ItemField(const AdyenParse *p)
{
	for (int f = 0; f < lengthof(item_field_names); f++)
		if (item_field_names[f] != NULL && MemberIs(p, item_field_names[f]))
			return f;
	return -1;
}

/*
 * The field the value that comes next is, in the current container, or -1.
 * The containers that hold fields exist only inside an item.
 */
static int
FieldOfMember(const AdyenParse *p)
{
	switch (p->in[p->depth])
	{
		case IN_ITEM:
			return ItemField(p);
		case IN_AMOUNT:
			return MemberIs(p, "value") ? FIELD_VALUE :
				MemberIs(p, "currency") ? FIELD_CURRENCY : -1;
		case IN_ADDITIONAL_DATA:
			return MemberIs(p, "hmacSignature") ? FIELD_HMAC_SIGNATURE : -1;
		default:
			return -1;
	}
}

/*
 * A member begins: forget what an earlier member of the same name said, so
 * that the last occurrence of a key counts
 */
static void
OnMemberStart(void *state, char *fname, bool isnull)
{
	AdyenParse *p = state;
	AdyenContainer in = p->in[p->depth];
	int			f;

	p->member[p->depth] = fname;
	if (p->malformed || fname == NULL)
		return;

	if (in == IN_NOTIFICATION && MemberIs(p, "notificationItems"))
	{
		p->nitems = 0;
		p->have_item_list = false;
	}
	else if (in == IN_WRAPPER && MemberIs(p, "NotificationRequestItem"))
		memset(CurrentItem(p), 0, sizeof(AdyenItem));
	else if (in == IN_ITEM && MemberIs(p, "amount"))
	{
		CurrentItem(p)->amount_unusable = false;
		CurrentItem(p)->state[FIELD_VALUE] = FIELD_ABSENT;
		CurrentItem(p)->state[FIELD_CURRENCY] = FIELD_ABSENT;
	}
	else if (in == IN_ITEM && MemberIs(p, "additionalData"))
		CurrentItem(p)->state[FIELD_HMAC_SIGNATURE] = FIELD_ABSENT;
	else if ((f = FieldOfMember(p)) >= 0)
		CurrentItem(p)->state[f] = FIELD_ABSENT;
}

/* An array element begins: it has no name */
static void
OnElementStart(void *state, bool isnull)
{
	AdyenParse *p = state;

	p->member[p->depth] = NULL;
}

/* What a container that opens here is, updating the items as it goes */
static AdyenContainer
ClassifyContainer(AdyenParse *p, bool is_object)
{
	int			f;

	if (p->depth == 0)
	{
		if (!is_object)
			p->malformed = true;
		else if (p->root == ADYEN_ROOT_NOTIFICATION)
			return IN_NOTIFICATION;
		else
		{
			StartItem(p);
			if (!p->malformed)
				CurrentItem(p)->found = true;
			return IN_ITEM;
		}
		return IN_OTHER;
	}

	switch (p->in[p->depth])
	{
		case IN_NOTIFICATION:
			if (!MemberIs(p, "notificationItems"))
				return IN_OTHER;
			if (is_object)
				p->malformed = true;
			p->have_item_list = !is_object;
			return IN_ITEM_LIST;
		case IN_ITEM_LIST:
			if (!is_object)
				p->malformed = true;
			StartItem(p);
			return IN_WRAPPER;
		case IN_WRAPPER:
			if (!MemberIs(p, "NotificationRequestItem"))
				return IN_OTHER;
			if (!is_object)
				p->malformed = true;
			else
				CurrentItem(p)->found = true;
			return IN_ITEM;
		case IN_ITEM:
			if (MemberIs(p, "amount"))
			{
				if (is_object)
					return IN_AMOUNT;
				CurrentItem(p)->amount_unusable = true;
				return IN_OTHER;
			}
			if (MemberIs(p, "additionalData"))
				return is_object ? IN_ADDITIONAL_DATA : IN_OTHER;
			break;
		default:
			break;
	}
	if ((f = FieldOfMember(p)) >= 0)
		CurrentItem(p)->state[f] = FIELD_UNUSABLE;
	return IN_OTHER;
}

/* An object or array opens */
static void
EnterContainer(AdyenParse *p, bool is_object)
{
	AdyenContainer in = IN_OTHER;

	if (!p->malformed)
		in = ClassifyContainer(p, is_object);
	if (p->depth == MAX_DEPTH)
	{
		/* unreachable: the depth was measured before parsing */
		p->malformed = true;
		return;
	}
	p->depth++;
	p->in[p->depth] = p->malformed ? IN_OTHER : in;
	p->member[p->depth] = NULL;
}

static void
OnObjectStart(void *state)
{
	EnterContainer(state, true);
}

static void
OnArrayStart(void *state)
{
	EnterContainer(state, false);
}

static void
OnContainerEnd(void *state)
{
	AdyenParse *p = state;

	if (p->depth > 0)
		p->depth--;
}

/* A scalar value: a field's text, or a sign that the shape is wrong */
static void
OnScalar(void *state, char *token, JsonTokenType type)
{
	AdyenParse *p = state;
	AdyenContainer in = p->in[p->depth];
	int			f;

	if (p->malformed)
		return;
	if (p->depth == 0 || in == IN_ITEM_LIST ||
		(in == IN_NOTIFICATION && MemberIs(p, "notificationItems")) ||
		(in == IN_WRAPPER && MemberIs(p, "NotificationRequestItem")))
	{
		p->malformed = true;
		return;
	}
	if (in == IN_ITEM && MemberIs(p, "amount"))
	{
		CurrentItem(p)->amount_unusable = true;
		return;
	}
	if ((f = FieldOfMember(p)) < 0)
		return;
	if (f == FIELD_HMAC_SIGNATURE && type != JSON_TOKEN_STRING)
		CurrentItem(p)->state[f] = FIELD_UNUSABLE;
	else
	{
		CurrentItem(p)->state[f] = FIELD_PRESENT;
		CurrentItem(p)->value[f] = type == JSON_TOKEN_NULL ? "" : token;
	}
}

/*
 * Is the nesting of the JSON text at most max levels deep?  Brackets inside
 * strings do not count; the scan follows the lexer's idea of a string, so
 * the parser never recurses deeper than this measures.
 */
static bool
DepthAtMost(const char *s, size_t len, int max)
{
	int			depth = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > max)
				return false;
		}
		else if (c == '}' || c == ']')
			depth--;
	}
	return true;
}

/*
 * Parse JSON text holding root into p.  False if it is not valid JSON, too
 * deep, or not shaped like root.
 */
static bool
ParseAdyenJson(const char *json, size_t len, AdyenJsonRoot root, AdyenParse *p)
{
	JsonLexContext *lex;
	JsonSemAction sem;

	memset(p, 0, sizeof(*p));
	p->root = root;
	p->maxitems = 4;
	p->items = palloc(sizeof(AdyenItem) * p->maxitems);

	if (len > PG_INT32_MAX || !DepthAtMost(json, len, MAX_DEPTH))
		return false;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = p;
	sem.object_start = OnObjectStart;
	sem.object_end = OnContainerEnd;
	sem.array_start = OnArrayStart;
	sem.array_end = OnContainerEnd;
	sem.object_field_start = OnMemberStart;
	sem.array_element_start = OnElementStart;
	sem.scalar = OnScalar;

	/* need_escapes: strings and member names arrive decoded */
	lex = makeJsonLexContextCstringLen((char *) json, (int) len,
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS || p->malformed)
		return false;
	if (root == ADYEN_ROOT_NOTIFICATION && !p->have_item_list)
		return false;
	return true;
}

/*
 * Append the signing string of an item; NULL, or a static message saying
 * why the item cannot be signed
 */
static const char *
AppendSigningString(const AdyenItem *item, StringInfo out)
{
	if (!item->found)
		return "the notification item is not an object";
	if (item->amount_unusable)
		return "amount of the notification item is not an object";
	for (int f = 0; f < NUM_SIGNED_FIELDS; f++)
	{
		if (item->state[f] == FIELD_UNUSABLE)
			return "a signed field of the notification item is an object or an array";
		if (f > 0)
			appendStringInfoChar(out, ':');
		if (item->state[f] == FIELD_PRESENT)
			appendStringInfoString(out, item->value[f]);
	}
	return NULL;
}

/* Does the item carry a signature that matches under one of the keys? */
static bool
ItemVerifies(const WebhookKeySet *keys, const AdyenItem *item)
{
	StringInfoData data;
	WebhookHmacPart part;
	const char *sig = item->value[FIELD_HMAC_SIGNATURE];
	bool		match;

	if (item->state[FIELD_HMAC_SIGNATURE] != FIELD_PRESENT)
		return false;
	initStringInfo(&data);
	if (AppendSigningString(item, &data) != NULL)
	{
		pfree(data.data);
		return false;
	}
	part.data = data.data;
	part.len = data.len;
	match = WebhookSha256Base64Matches(keys, &part, 1, sig, strlen(sig));
	pfree(data.data);
	return match;
}

/* See adyen_notification.h */
bool
AdyenVerifyJson(const WebhookKeySet *keys, const char *json, size_t len,
				AdyenJsonRoot root)
{
	AdyenParse	p;
	bool		all = true;

	if (!ParseAdyenJson(json, len, root, &p) || p.nitems == 0)
		return false;

	/* Every item is checked, so the time taken does not tell which failed */
	for (int i = 0; i < p.nitems; i++)
		if (!ItemVerifies(keys, &p.items[i]))
			all = false;
	return all;
}

/* See adyen_notification.h */
bool
AdyenVerifyNotificationBody(const WebhookKeySet *keys,
							const WebhookHeaderValue *headers,
							const char *body, size_t bodylen,
							const WebhookTimeWindow *window)
{
	return AdyenVerifyJson(keys, body, bodylen, ADYEN_ROOT_NOTIFICATION);
}

/* See adyen_notification.h */
const char *
AdyenItemSigningString(const char *json, size_t len, StringInfo out)
{
	AdyenParse	p;

	bool		any = false;

	if (!ParseAdyenJson(json, len, ADYEN_ROOT_ITEM, &p) || p.nitems != 1)
		return "the notification item is not an object";

	/* Most likely the wrapper or the notification was passed, not the item */
	for (int f = 0; f < NUM_SIGNED_FIELDS; f++)
		if (p.items[0].state[f] != FIELD_ABSENT)
			any = true;
	if (!any)
		return "the notification item has none of the fields Adyen signs";
	return AppendSigningString(&p.items[0], out);
}
