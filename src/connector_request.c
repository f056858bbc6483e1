/*
 * connector_request.c
 *		One call to a connector's API: the connector and its kind looked up, the request
 *		built by the kind's request adapter, authenticated from the credentials and
 *		checked under the outbound safety rules, and the response judged by the kind's
 *		response adapter.  test_connector() (connector_call.c) and the worker's queued
 *		calls (call_job.c) send what is built here, each its own way.
 *
 * The request.  The kind's build_request(context, operation, payload, idempotency key)
 * says the method, the path under the base URL, the query and the headers; the
 * credentials, opened here and nowhere else, are added as the kind's auth says: a
 * header (basic, bearer, header:<name>), query parameters (query), or one value of the
 * JSON body (json:<pointer>, for JSON-RPC APIs such as Odoo's that take the key as an
 * argument: the adapter puts a placeholder where the pointer points, and the
 * credential, as a JSON string, replaces it).  The idempotency
 * key goes in the header the kind names (connector_kinds.idempotency_header), where it
 * names one.  The adapter never sees the credentials, and may not set the headers that
 * they or the key go in.
 *
 * No error text of a call quotes a credential: the URL is checked before query
 * credentials join it, and every message returned or stored has each credential value
 * replaced by ******** (ConnectorRedact()).
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_authid.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "connector.h"
#include "connector_request.h"
#include "function_signature.h"
#include "integration.h"
#include "spi_plan.h"
#include "time_limit.h"
#include "worker.h"

extern Datum integration_validate_url(PG_FUNCTION_ARGS);

/* Settings. */
int			integration_connector_max_response_bytes = 1024 * 1024;
int			integration_adapter_timeout_ms = 5000;

/* Kept, and made again as connectors grows (KeptPlanGet(), spi_plan.c). */
static KeptPlan connector_plan;

void
ConnectorRequestDefineGucs(void)
{
	DefineCustomIntVariable("integration.connector_max_response_bytes",
							"Bytes of each response of a connector's API read and given to its kind's response adapter; reading stops there.",
							NULL, &integration_connector_max_response_bytes, 1024 * 1024,
							1024, 64 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("integration.adapter_timeout",
							"Longest time one call of a connector kind's build_request or interpret_response adapter may take in the delivery worker; longer, it is cancelled and the call's attempt fails. 0: no limit.",
							NULL, &integration_adapter_timeout_ms, 5000, 0, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* The HTTP request the adapter built, as C strings. */
typedef struct BuiltRequest
{
	char	   *method;
	char	   *path;
	Jsonb	   *query;
	Jsonb	   *headers;
	char	   *body;
} BuiltRequest;

/* One credential: a key and its value, NUL-terminated (values are JSON strings). */
typedef struct Credential
{
	char	   *key;
	char	   *value;
} Credential;

/* A connector's credentials, opened. */
struct ConnectorCredentials
{
	int			n;
	Credential *items;
};

/* Whether s is an HTTP token (RFC 9110). */
static bool
is_token(const char *s, int len)
{
	if (len == 0)
		return false;
	for (int i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || strchr("!#$%&'*+-.^_`|~", s[i]) != NULL))
			return false;
	return true;
}

static bool
has_control(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Opens the stored credentials of t; raises (never quoting them) if they do not open. */
ConnectorCredentials *
ConnectorCredentialsOpen(const ConnectorTarget *t)
{
	SecretContext cxt;
	char	   *plain;
	int			plainlen;
	SecretOpenStatus st;
	ConnectorCredentials *c = palloc0(sizeof(ConnectorCredentials));
	Jsonb	   *j;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	SecretContextForRow(&cxt, CONNECTOR_CREDENTIALS_PURPOSE, t->tenant, t->id);
	st = SecretOpen(t->credentials, &cxt, &plain, &plainlen);
	if (st != SECRET_PLAIN && st != SECRET_OPENED)
	{
		char	   *why = SecretOpenError(st, t->credentials);

		why[0] = pg_toupper((unsigned char) why[0]);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the credentials of connector %lld cannot be decrypted", (long long) t->id),
				 errdetail("%s.", why),
				 errhint("Set them again with integration.update_connector(id => %lld, credentials => ...).",
						 (long long) t->id)));
	}
	if (!CredentialsAreValid(plain, plainlen))
	{
		SecretFree(plain, plainlen);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the credentials of connector %lld are not a JSON object of strings",
						(long long) t->id)));
	}
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(plain)));
	SecretFree(plain, plainlen);
	c->items = palloc0(sizeof(Credential) * Max(JsonContainerSize(&j->root), 1));
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			c->items[c->n].key = key;
			c->items[c->n].value = pnstrdup(v.val.string.val, v.val.string.len);
			explicit_bzero(v.val.string.val, v.val.string.len);
			c->n++;
		}
	}
	return c;
}

/* Wipes opened credentials. */
void
ConnectorCredentialsFree(ConnectorCredentials *c)
{
	for (int i = 0; i < c->n; i++)
		SecretFree(c->items[i].value, strlen(c->items[i].value));
	c->n = 0;
}

/* The credential called key, or raise (the kind's auth needs it). */
static const char *
credential(const ConnectorCredentials *c, const char *key, const ConnectorTarget *t)
{
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->items[i].key, key) == 0)
		{
			if (has_control(c->items[i].value, strlen(c->items[i].value)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("credential \"%s\" of connector %lld contains a control character",
								key, (long long) t->id),
						 errhint("Set the credentials again with integration.update_connector().")));
			return c->items[i].value;
		}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("connector %lld has no credential \"%s\", which %s authentication needs",
					(long long) t->id, key, t->auth),
			 errhint("Set the credentials with integration.update_connector().")));
	return NULL;
}

/* msg with every credential value of 4 or more bytes replaced by ********. */
char *
ConnectorRedact(const char *msg, const ConnectorCredentials *c)
{
	char	   *out = pstrdup(msg);

	for (int i = 0; i < c->n; i++)
	{
		const char *v = c->items[i].value;
		size_t		vlen = strlen(v);
		char	   *hit;

		if (vlen < 4)
			continue;
		while ((hit = strstr(out, v)) != NULL)
		{
			StringInfoData buf;

			initStringInfo(&buf);
			appendBinaryStringInfo(&buf, out, hit - out);
			appendStringInfoString(&buf, "********");
			appendStringInfoString(&buf, hit + vlen);
			out = buf.data;
		}
	}
	return out;
}

/*
 * Appends line to *list, then wipes it; raises when libcurl is out of memory, leaving
 * *list as it was, for its owner to free.
 */
static void
append_line(struct curl_slist **list, char *line)
{
	struct curl_slist *next = curl_slist_append(*list, line);

	explicit_bzero(line, strlen(line));
	if (next == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	*list = next;
}

/* Appends "name: value" to *list (HttpHeaderLine()). */
static void
add_header(struct curl_slist **list, const char *name, int namelen, const char *value, int valuelen)
{
	append_line(list, HttpHeaderLine(name, namelen, value, valuelen));
}

/* The header the kind's auth sets, or NULL (none, query). */
static const char *
auth_header_name(const char *auth)
{
	if (strcmp(auth, "basic") == 0 || strcmp(auth, "bearer") == 0)
		return "Authorization";
	if (strncmp(auth, "header:", 7) == 0)
		return auth + 7;
	return NULL;
}

static bool
header_named(const char *header, const char *name, int len)
{
	return header != NULL && strlen(header) == len && pg_strncasecmp(header, name, len) == 0;
}

/*
 * Whether the adapter may not set header name: the client, the kind's auth or its
 * idempotency key sets it.
 */
static bool
header_is_reserved(const ConnectorTarget *t, const char *name, int len)
{
	static const char *const reserved[] = {"Host", "Content-Length", "Transfer-Encoding",
	"Connection", "Expect", "User-Agent"};

	for (int i = 0; i < lengthof(reserved); i++)
		if (header_named(reserved[i], name, len))
			return true;
	return header_named(auth_header_name(t->auth), name, len) ||
		header_named(t->idempotency_header, name, len);
}

/* The adapter's headers, checked, appended to *list. */
static void
adapter_headers(struct curl_slist **list, const BuiltRequest *r, const ConnectorTarget *t)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue	key = {0};

	add_header(list, "User-Agent", 10, INTEGRATION_USER_AGENT, strlen(INTEGRATION_USER_AGENT));

	/*
	 * No "Expect: 100-continue" round trip for larger bodies: "Expect:" drops
	 * it.
	 */
	append_line(list, pstrdup("Expect:"));
	if (r->headers == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(r->headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter returned headers that are not a JSON object", t->kind)));
	it = JsonbIteratorInit(&r->headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = v;
			if (!is_token(key.val.string.val, key.val.string.len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the %s request adapter returned an invalid header name \"%.*s\"",
								t->kind, key.val.string.len, key.val.string.val)));
			if (header_is_reserved(t, key.val.string.val, key.val.string.len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the %s request adapter may not set header \"%.*s\"", t->kind,
								key.val.string.len, key.val.string.val),
						 header_named(t->idempotency_header, key.val.string.val, key.val.string.len) ?
						 errdetail("The header carries the call's idempotency key: it is the kind's idempotency_header.") :
						 errdetail("The header is set by the HTTP client or by the kind's %s authentication.",
								   t->auth)));
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString || has_control(v.val.string.val, v.val.string.len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the %s request adapter returned an invalid value for header \"%.*s\"",
								t->kind, key.val.string.len, key.val.string.val),
						 errdetail("A header value is a string without control characters.")));
			add_header(list, key.val.string.val, key.val.string.len,
					   v.val.string.val, v.val.string.len);
		}
	}
}

/* Appends key=value, URL-encoded, to the query of h. */
static void
append_query(CURLU *h, const char *key, int keylen, const char *value, int valuelen)
{
	char	   *kv = psprintf("%.*s=%.*s", keylen, key, valuelen, value);
	CURLUcode	rc = curl_url_set(h, CURLUPART_QUERY, kv, CURLU_APPENDQUERY | CURLU_URLENCODE);

	explicit_bzero(kv, strlen(kv));
	if (rc != CURLUE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not add query parameter \"%.*s\": %s", keylen, key,
						curl_url_strerror(rc))));
}

/* The adapter's query parameters, appended to the query of h. */
static void
adapter_query(CURLU *h, const BuiltRequest *r, const ConnectorTarget *t)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key = {0};
	JsonbIteratorToken tok;

	if (r->query == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(r->query))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter returned a query that is not a JSON object", t->kind)));
	it = JsonbIteratorInit(&r->query->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = v;
		else if (tok == WJB_VALUE)
		{
			char	   *val;

			if (v.type == jbvString)
				val = pnstrdup(v.val.string.val, v.val.string.len);
			else if (v.type == jbvNumeric || v.type == jbvBool)
				val = JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, 0);
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("query parameter \"%.*s\" of the %s request adapter is not a string, number or boolean",
								key.val.string.len, key.val.string.val, t->kind)));
			append_query(h, key.val.string.val, key.val.string.len, val, strlen(val));
		}
	}
}

/* The URL h holds, palloc'd; wipes libcurl's copy. */
static char *
url_of(CURLU *h)
{
	char	   *full = NULL;
	char	   *result;

	if (curl_url_get(h, CURLUPART_URL, &full, 0) != CURLUE_OK)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	result = pstrdup(full);
	explicit_bzero(full, strlen(full));
	curl_free(full);
	return result;
}

/*
 * The URL: base URL, adapter's path and query, checked as endpoint URLs are; then the
 * credentials of query auth, which no message may quote.  Returned palloc'd.
 */
static char *
request_url(const BuiltRequest *r, const ConnectorTarget *t, const ConnectorCredentials *creds)
{
	size_t		baselen = strlen(t->base_url);
	char	   *url;
	CURLU	   *h;
	char	   *volatile result = NULL;

	if (r->path == NULL || r->path[0] != '/' || has_control(r->path, strlen(r->path)) ||
		strpbrk(r->path, " ?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter returned an invalid path", t->kind),
				 errdetail("A path starts with \"/\" and has no spaces, control characters, \"?\" or \"#\"; query parameters go in query.")));
	while (baselen > 0 && t->base_url[baselen - 1] == '/')
		baselen--;
	url = psprintf("%.*s%s", (int) baselen, t->base_url, r->path);
	/* Checked as an endpoint's URL is, before any credential is in it. */
	DirectFunctionCall1(integration_validate_url, CStringGetTextDatum(url));

	h = curl_url();
	if (h == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	PG_TRY();
	{
		if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid request URL \"%s\"", url)));
		adapter_query(h, r, t);
		DirectFunctionCall1(integration_validate_url, CStringGetTextDatum(url_of(h)));
		if (strcmp(t->auth, "query") == 0)
			for (int i = 0; i < creds->n; i++)
				append_query(h, creds->items[i].key, strlen(creds->items[i].key),
							 creds->items[i].value, strlen(creds->items[i].value));
		result = url_of(h);
	}
	PG_FINALLY();
	{
		curl_url_cleanup(h);
	}
	PG_END_TRY();
	return result;
}

/* The authentication header of basic, bearer and header:<name>, appended to *list. */
static void
auth_headers(struct curl_slist **list, const ConnectorTarget *t, const ConnectorCredentials *creds)
{
	const char *name = auth_header_name(t->auth);

	if (strcmp(t->auth, "basic") == 0)
	{
		char	   *pair = psprintf("%s:%s", credential(creds, t->auth_key[0], t),
									credential(creds, t->auth_key[1], t));
		int			len = pg_b64_enc_len(strlen(pair));
		char	   *value = palloc(strlen("Basic ") + len + 1);
		int			n;

		strcpy(value, "Basic ");
		n = pg_b64_encode(pair, strlen(pair), value + 6, len);
		explicit_bzero(pair, strlen(pair));
		if (n < 0)
			elog(ERROR, "could not encode credentials");
		value[6 + n] = '\0';
		add_header(list, name, strlen(name), value, strlen(value));
		explicit_bzero(value, strlen(value));
	}
	else if (strcmp(t->auth, "bearer") == 0)
	{
		char	   *value = psprintf("Bearer %s", credential(creds, t->auth_key[0], t));

		add_header(list, name, strlen(name), value, strlen(value));
		explicit_bzero(value, strlen(value));
	}
	else if (name != NULL)
	{
		const char *token = credential(creds, t->auth_key[0], t);

		add_header(list, name, strlen(name), token, strlen(token));
	}
}

/*
 * The JSON container value the pointer tokens reach in j, or NULL: object members by
 * name, array elements by decimal index, as RFC 6901 reads them (no ~ escapes: the
 * auth grammar allows none).
 */
static JsonbValue *
json_pointer_value(Jsonb *j, char **tokens, int n)
{
	JsonbContainer *c = &j->root;
	JsonbValue *v = NULL;

	if (JB_ROOT_IS_SCALAR(j))
		return NULL;
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
		{
			if (v->type != jbvBinary)
				return NULL;
			c = v->val.binary.data;
		}
		if (JsonContainerIsObject(c))
		{
			JsonbValue	k;

			k.type = jbvString;
			k.val.string.val = tokens[i];
			k.val.string.len = strlen(tokens[i]);
			v = findJsonbValueFromContainer(c, JB_FOBJECT, &k);
		}
		else if (JsonContainerIsArray(c) && strspn(tokens[i], "0123456789") == strlen(tokens[i]) &&
				 strlen(tokens[i]) <= 9)
			v = getIthJsonbValueFromContainer(c, (uint32) atoi(tokens[i]));
		else
			v = NULL;
		if (v == NULL)
			return NULL;
	}
	return v;
}

/*
 * The body of json:<pointer> authentication: the adapter's JSON body with the value
 * the pointer names replaced by the credential, a JSON string.  The adapter must have
 * put a value there: a credential is never added where the adapter did not ask for
 * one, so a body the adapter copied from a payload cannot receive it elsewhere.
 */
static char *
json_auth_body(const BuiltRequest *r, const ConnectorTarget *t, const ConnectorCredentials *creds)
{
	char	   *pointer = pstrdup(t->auth + 5);
	char	  **tokens = palloc(sizeof(char *) * (strlen(pointer) + 1));
	Datum	   *elems;
	int			n = 0;
	Jsonb	   *body;
	JsonbValue	cred;
	Jsonb	   *credj;
	Jsonb	   *result;
	char	   *text;

	for (char *tok = strtok(pointer, "/"); tok; tok = strtok(NULL, "/"))
		tokens[n++] = tok;
	if (r->body == NULL || n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter returned no body for %s authentication",
						t->kind, t->auth),
				 errdetail("The kind's credential goes into the JSON body, at the value the adapter puts at %s.",
						   t->auth + 5)));
	body = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(r->body)));
	if (json_pointer_value(body, tokens, n) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter's body has no value at %s", t->kind, t->auth + 5),
				 errdetail("With %s authentication the adapter puts a placeholder there, which the credential replaces.",
						   t->auth)));
	cred.type = jbvString;
	cred.val.string.val = (char *) credential(creds, t->auth_key[0], t);
	cred.val.string.len = strlen(cred.val.string.val);
	credj = JsonbValueToJsonb(&cred);
	elems = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(tokens[i]);
	result = DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(body),
												PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
																				TYPALIGN_INT)),
												JsonbPGetDatum(credj), BoolGetDatum(false)));
	text = JsonbToCString(NULL, &result->root, VARSIZE(result));

	explicit_bzero(credj, VARSIZE(credj));
	explicit_bzero(result, VARSIZE(result));
	return text;
}

/* The response headers ("name: value" lines) as a jsonb object, names in lower case. */
static Jsonb *
headers_jsonb(const char *lines)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	while (lines && *lines)
	{
		const char *nl = strchr(lines, '\n');
		const char *colon = strchr(lines, ':');
		int			linelen = nl ? nl - lines : strlen(lines);

		if (colon && colon < lines + linelen &&
			pg_verifymbstr(lines, linelen, true))
		{
			JsonbValue	k;
			JsonbValue	v;
			const char *val = colon + 1;

			while (*val == ' ')
				val++;
			k.type = jbvString;
			k.val.string.val = pnstrdup(lines, colon - lines);
			k.val.string.len = colon - lines;
			for (int i = 0; i < k.val.string.len; i++)
				k.val.string.val[i] = pg_ascii_tolower((unsigned char) k.val.string.val[i]);
			v.type = jbvString;
			v.val.string.val = (char *) val;
			v.val.string.len = lines + linelen - val;
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
		}
		lines += linelen + (nl ? 1 : 0);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * Looks up the connector t->id of tenant t->tenant and its kind (deleted connectors
 * are not found).  Not found: false when missing_ok, else raises as the other
 * connector functions do.
 */
bool
ConnectorTargetLoad(ConnectorTarget *t, bool missing_ok)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	Datum		args[2];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	args[0] = CStringGetTextDatum(t->tenant);
	args[1] = Int64GetDatum(t->id);
	RunPlan(KeptPlanGet(&connector_plan,
						"SELECT integration._connector_context(c),"
						" c.kind, c.base_url, c.credentials, integration._auth_style(k.auth),"
						" k.idempotency_header,"
						" c.settings OPERATOR(pg_catalog.->>) 'retry_schedule', c.is_active,"
						" k.build_request_function, k.interpret_response_function,"
						" (integration._auth_keys(k.auth))[1], (integration._auth_keys(k.auth))[2],"
						" " CONNECTOR_SETTING_RATE("rate_limit") ", " CONNECTOR_SETTING_RATE("rate_limit_burst")
						" FROM integration.connectors c"
						" JOIN integration.connector_kinds k ON k.name OPERATOR(pg_catalog.=) c.kind"
						" WHERE c.tenant_id OPERATOR(pg_catalog.=) $1 AND c.id OPERATOR(pg_catalog.=) $2"
						"   AND c.deleted_at IS NULL",
						2, argtypes, CURSOR_OPT_GENERIC_PLAN),
			args, true, SPI_OK_SELECT, "looking up the connector");

	/*
	 * SPI leaves its procedure context current: the row is copied into the
	 * caller's.
	 */
	MemoryContextSwitchTo(cxt);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("connector %lld not found", (long long) t->id),
				 errhint("integration.list_connectors() lists the current tenant's connectors.")));
	}
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	t->context = datumCopy(SPI_getbinval(row, desc, 1, &isnull), false, -1);
	t->context_type = SPI_gettypeid(desc, 1);
	t->kind = SPI_getvalue(row, desc, 2);
	t->base_url = SPI_getvalue(row, desc, 3);
	t->credentials = SPI_getvalue(row, desc, 4);
	t->auth = SPI_getvalue(row, desc, 5);
	t->idempotency_header = SPI_getvalue(row, desc, 6);
	t->retry_schedule = SPI_getvalue(row, desc, 7);
	t->is_active = DatumGetBool(SPI_getbinval(row, desc, 8, &isnull));
	t->build_fn = SPI_getvalue(row, desc, 9);
	t->interpret_fn = SPI_getvalue(row, desc, 10);
	t->auth_key[0] = SPI_getvalue(row, desc, 11);
	t->auth_key[1] = SPI_getvalue(row, desc, 12);
	t->rate_limit = DatumGetInt32(SPI_getbinval(row, desc, 13, &isnull));
	t->rate_limit_burst = DatumGetInt32(SPI_getbinval(row, desc, 14, &isnull));
	return true;
}

/* Raises unless t can be called: its kind builds requests, and it has a base URL. */
void
ConnectorTargetCheckCalls(const ConnectorTarget *t)
{
	if (t->build_fn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("connector kind %s makes no API calls", t->kind),
				 errdetail("The kind has no build_request adapter.")));
	if (t->base_url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("connector %lld has no base_url", (long long) t->id),
				 errhint("Set one with integration.update_connector(id => %lld, base_url => ...).",
						 (long long) t->id)));
}

static char *
copy_text(const char *s, MemoryContext cxt)
{
	return s ? MemoryContextStrdup(cxt, s) : NULL;
}

/* *src copied into cxt, to outlive the transaction that loaded it. */
void
ConnectorTargetCopy(ConnectorTarget *dst, const ConnectorTarget *src, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	*dst = *src;
	dst->tenant = pstrdup(src->tenant);
	dst->context = datumCopy(src->context, false, -1);
	MemoryContextSwitchTo(old);
	dst->kind = copy_text(src->kind, cxt);
	dst->base_url = copy_text(src->base_url, cxt);
	dst->credentials = copy_text(src->credentials, cxt);
	dst->auth = copy_text(src->auth, cxt);
	dst->auth_key[0] = copy_text(src->auth_key[0], cxt);
	dst->auth_key[1] = copy_text(src->auth_key[1], cxt);
	dst->idempotency_header = copy_text(src->idempotency_header, cxt);
	dst->retry_schedule = copy_text(src->retry_schedule, cxt);
	dst->build_fn = copy_text(src->build_fn, cxt);
	dst->interpret_fn = copy_text(src->interpret_fn, cxt);
}

/* Adapter plans kept per backend. */
#define ADAPTER_PLANS_MAX 64

/* The kept call of an adapter function: by function, statement and role. */
typedef struct AdapterPlan
{
	Oid			fn;
	const char *sqlfmt;
	Oid			role;
	SPIPlanPtr	plan;
} AdapterPlan;

static AdapterPlan adapter_plans[ADAPTER_PLANS_MAX];
static int	n_adapter_plans;

/* The last adapter call raised (ConnectorAdapterRaised()). */
static bool adapter_raised = false;

/*
 * The plan that calls adapter fn with sqlfmt ("SELECT ... %s($1, ...)", a string
 * constant), prepared on first use and kept: each adapter runs for every call and
 * every inbound webhook, and would otherwise be looked up, parsed and planned each
 * time.  The plan cache plans it again when fn changes.  Kept per role too: the
 * planner checks the right to execute a SQL function it inlines once, when it plans,
 * and the worker calls adapters as the role that queued each call.  The kind names fn
 * in column by signature (function_signature.c): raises, naming the kind, the column
 * and the signature, when that no longer names a function (renamed, moved, dropped).
 */
SPIPlanPtr
ConnectorAdapterPlan(const char *kind, const char *column, const char *signature,
					 const char *sqlfmt, int nargs, Oid *argtypes)
{
	Oid			role = GetUserId();
	Oid			fn = FunctionBySignature(signature);
	char	   *name;
	char	   *nsp;
	SPIPlanPtr	plan;

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s of connector kind \"%s\" does not exist", signature, kind),
				 errdetail("Column %s of the kind names the function by signature: it was renamed, moved or dropped since the kind was registered.",
						   column),
				 errhint("Register the kind again with integration.register_connector_kind(..., replace => true).")));

	for (int i = 0; i < n_adapter_plans; i++)
		if (adapter_plans[i].fn == fn && adapter_plans[i].sqlfmt == sqlfmt &&
			adapter_plans[i].role == role)
			return adapter_plans[i].plan;
	name = get_func_name(fn);
	nsp = OidIsValid(get_func_namespace(fn)) ? get_namespace_name(get_func_namespace(fn)) : NULL;
	if (name == NULL || nsp == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("adapter function with OID %u does not exist", fn),
				 errhint("Register the kind again with integration.register_connector_kind(..., replace => true).")));
	plan = SPI_prepare_cursor(psprintf(sqlfmt, quote_qualified_identifier(nsp, name)), nargs,
							  argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "could not prepare the call of adapter %s: %s", name,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	if (n_adapter_plans == ADAPTER_PLANS_MAX)
	{
		/* Many kinds or roles in one backend: start over rather than grow. */
		for (int i = 0; i < n_adapter_plans; i++)
			SPI_freeplan(adapter_plans[i].plan);
		n_adapter_plans = 0;
	}
	adapter_plans[n_adapter_plans].fn = fn;
	adapter_plans[n_adapter_plans].sqlfmt = sqlfmt;
	adapter_plans[n_adapter_plans].role = role;
	adapter_plans[n_adapter_plans].plan = plan;
	n_adapter_plans++;
	return plan;
}

/* One execution of an adapter's plan, for RunWithTimeLimit(). */
typedef struct AdapterRun
{
	SPIPlanPtr	plan;
	Datum	   *args;
	const char *nulls;
	int			rc;				/* out: SPI_execute_plan()'s */
} AdapterRun;

static void
adapter_run(void *arg)
{
	AdapterRun *a = arg;

	a->rc = SPI_execute_plan(a->plan, a->args, a->nulls, false, 1);
}

/*
 * Runs the plan of t's adapter named role ("build_request", "interpret_response") with
 * args, cut short after timeout_ms (0: no limit; RunWithTimeLimit()), and returns
 * SPI_execute_plan()'s result.
 */
static int
adapter_execute(const ConnectorTarget *t, const char *role, SPIPlanPtr plan, Datum *args,
				const char *nulls, int timeout_ms)
{
	AdapterRun	a = {plan, args, nulls, 0};

	adapter_raised = false;
	PG_TRY();
	{
		RunWithTimeLimit(adapter_run, &a, timeout_ms, psprintf("adapter %s.%s", t->kind, role),
						 "integration.adapter_timeout");
	}
	PG_CATCH();
	{
		adapter_raised = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	return a.rc;
}

/*
 * Whether the error being handled was raised by a kind's adapter (its own SQL, or its
 * time limit), not by what ran around it: true from an adapter's error until
 * ConnectorAdapterForget().  The worker counts an adapter's lock wait past
 * lock_timeout, or a deadlock it lost, against its call; the same errors elsewhere in
 * its transaction are no call's fault (call_job.c).
 */
bool
ConnectorAdapterRaised(void)
{
	return adapter_raised;
}

/* Forgets an adapter's error, before what may raise next. */
void
ConnectorAdapterForget(void)
{
	adapter_raised = false;
}

/* The kind's request for operation, checked; timeout_ms bounds the adapter (0: not). */
static BuiltRequest
build_request(const ConnectorTarget *t, const char *operation, Jsonb *payload,
			  const char *idempotency_key, int timeout_ms)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[4] = {t->context_type, TEXTOID, JSONBOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	BuiltRequest r = {0};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			rc;

	args[0] = t->context;
	args[1] = CStringGetTextDatum(operation);
	args[2] = JsonbPGetDatum(payload);
	if (idempotency_key)
		args[3] = CStringGetTextDatum(idempotency_key);
	else
		nulls[3] = 'n';
	rc = adapter_execute(t, "build_request",
						 ConnectorAdapterPlan(t->kind, "build_request_function", t->build_fn,
											  "SELECT r.method, r.path, r.query, r.headers, r.body"
											  " FROM %s($1, $2, $3, $4) AS r",
											  4, argtypes),
						 args, nulls, timeout_ms);
	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the request adapter of kind %s returned no row", t->kind);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r.method = SPI_getvalue(row, desc, 1);
	r.path = SPI_getvalue(row, desc, 2);
	d = SPI_getbinval(row, desc, 3, &isnull);
	r.query = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(row, desc, 4, &isnull);
	r.headers = isnull ? NULL : DatumGetJsonbPCopy(d);
	r.body = SPI_getvalue(row, desc, 5);
	if (r.method == NULL ||
		!(strcmp(r.method, "GET") == 0 || strcmp(r.method, "POST") == 0 ||
		  strcmp(r.method, "PUT") == 0 || strcmp(r.method, "PATCH") == 0 ||
		  strcmp(r.method, "DELETE") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s request adapter returned an invalid method", t->kind),
				 errdetail("A method is GET, POST, PUT, PATCH or DELETE, in upper case.")));
	return r;
}

/*
 * The HTTP request of operation on t, built by the kind's request adapter and
 * authenticated from creds, into *req (zeroed by the caller): URL, method, body,
 * headers and the limits of integration.connect_timeout, request_timeout and
 * connector_max_response_bytes.  Raises when the adapter does, or builds what may not
 * be sent, or outlives adapter_timeout_ms (0: no limit; see connector_request.h).
 * Release it with ConnectorRequestRelease().
 */
void
ConnectorRequestBuild(const ConnectorTarget *t, const char *operation, Jsonb *payload,
					  const char *idempotency_key, const ConnectorCredentials *creds,
					  int adapter_timeout_ms, HttpRequest *req)
{
	BuiltRequest r;

	ConnectorTargetCheckCalls(t);
	r = build_request(t, operation, payload, idempotency_key, adapter_timeout_ms);
	if (strncmp(t->auth, "json:", 5) == 0)
		r.body = json_auth_body(&r, t, creds);
	req->url = request_url(&r, t, creds);
	adapter_headers(&req->headers, &r, t);
	auth_headers(&req->headers, t, creds);
	/* Not with a GET, idempotent by definition (Stripe: "has no effect"). */
	if (t->idempotency_header != NULL && idempotency_key != NULL && strcmp(r.method, "GET") != 0)
		add_header(&req->headers, t->idempotency_header, strlen(t->idempotency_header),
				   idempotency_key, strlen(idempotency_key));
	req->method = r.method;
	req->body = r.body ? r.body : "";
	req->body_len = r.body ? strlen(r.body) : 0;
	req->keep_headers = true;
	req->connect_timeout_ms = integration_connect_timeout_ms;
	req->timeout_ms = integration_request_timeout_ms;
	req->max_response_bytes = integration_connector_max_response_bytes;
}

/*
 * Frees what a request holds, its URL, headers and body wiped first: they carry
 * credentials (the body with json:<pointer> authentication).
 */
void
ConnectorRequestRelease(HttpRequest *req)
{
	for (struct curl_slist *l = req->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	if (req->url)
		explicit_bzero((char *) req->url, strlen(req->url));
	if (req->body && req->body_len > 0)
		explicit_bzero((char *) req->body, req->body_len);
	HttpRequestRelease(req);
}

/* An interval as milliseconds, a month counted as 30 days; negative: 0. */
static int64
interval_ms(const Interval *iv)
{
	int64		us = iv->time + (int64) iv->day * USECS_PER_DAY +
	(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;

	return us <= 0 ? 0 : us / 1000;
}

/* The kind's verdict on a response that arrived; timeout_ms bounds the adapter (0: not). */
static void
interpret_response(const ConnectorTarget *t, const char *operation, const HttpRequest *req,
				   int timeout_ms, ConnectorVerdict *v)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[5] = {t->context_type, TEXTOID, INT4OID, JSONBOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = "     ";
	HeapTuple	row;
	TupleDesc	desc;
	char	   *outcome;
	bool		isnull;
	Datum		d;
	int			rc;

	args[0] = t->context;
	args[1] = CStringGetTextDatum(operation);
	args[2] = Int32GetDatum((int32) req->status_code);
	args[3] = JsonbPGetDatum(headers_jsonb(req->response_headers));
	/* A body that is not text of this database is not passed on. */
	if (pg_verifymbstr(req->response, req->response_len, true))
		args[4] = PointerGetDatum(cstring_to_text_with_len(req->response, req->response_len));
	else
		nulls[4] = 'n';
	rc = adapter_execute(t, "interpret_response",
						 ConnectorAdapterPlan(t->kind, "interpret_response_function", t->interpret_fn,
											  "SELECT o.outcome, o.retry_after, o.result, o.error"
											  " FROM %s($1, $2, $3, $4, $5) AS o",
											  5, argtypes),
						 args, nulls, timeout_ms);
	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the response adapter of kind %s returned no row", t->kind);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	outcome = SPI_getvalue(row, desc, 1);
	if (outcome != NULL && strcmp(outcome, "succeeded") == 0)
		v->outcome = CONNECTOR_SUCCEEDED;
	else if (outcome != NULL && strcmp(outcome, "retry") == 0)
		v->outcome = CONNECTOR_RETRY;
	else if (outcome != NULL && strcmp(outcome, "failed") == 0)
		v->outcome = CONNECTOR_FAILED;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s response adapter returned an invalid outcome", t->kind),
				 errdetail("An outcome is succeeded, retry or failed.")));
	d = SPI_getbinval(row, desc, 2, &isnull);
	v->retry_after_ms = isnull ? -1 : interval_ms(DatumGetIntervalP(d));
	d = SPI_getbinval(row, desc, 3, &isnull);
	v->result = isnull ? NULL : DatumGetJsonbPCopy(d);
	v->error = SPI_getvalue(row, desc, 4);
	if (v->outcome != CONNECTOR_SUCCEEDED && v->error == NULL)
		v->error = psprintf("HTTP %ld: %s", req->status_code, outcome);
}

/*
 * What a finished request came to, into *v.  No response: retry, but for what no
 * retry can cure (a blocked address or scheme, a request libcurl refuses), which
 * failed; the error names the error class.  A response: the kind's response adapter
 * judges it, within adapter_timeout_ms (0: no limit; see connector_request.h).  The
 * error is redacted.
 */
void
ConnectorJudge(const ConnectorTarget *t, const char *operation, const HttpRequest *req,
			   const ConnectorCredentials *creds, int adapter_timeout_ms, ConnectorVerdict *v)
{
	memset(v, 0, sizeof(*v));
	v->retry_after_ms = -1;
	if (req->error_class != HTTP_OK)
	{
		v->outcome = HttpErrorNotSent(req->error_class) ? CONNECTOR_FAILED : CONNECTOR_RETRY;
		v->error = psprintf("%s: %s", HttpErrorClassName(req->error_class), req->error);
	}
	else
		interpret_response(t, operation, req, adapter_timeout_ms, v);
	if (v->error)
		v->error = ConnectorRedact(v->error, creds);
}

/*
 * Runs what follows as role with tenant selected (TenantActAs()), until
 * TenantActAsEnd(): the worker calls a kind's adapters for a queued call as the role
 * that queued it, as call_connector() and test_connector() call them in that role's
 * session.
 */
void
ConnectorActAs(TenantIdentity *saved, const char *tenant, Oid role)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that queued the call (OID %u) no longer exists", role)));
	TenantActAs(saved, tenant, role);
}
