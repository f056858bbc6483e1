/*
 * connector_call.c
 *		integration.test_connector(id): one call to a connector's API, built by its
 *		kind's request adapter, authenticated from its credentials, sent with libcurl
 *		under the outbound safety rules, and judged by the kind's response adapter.
 *
 * The request.  The kind's build_request(context, 'test', '{}', NULL) says the method,
 * the path under the base URL, the query and the headers; the credentials, opened here
 * and nowhere else, are added as the kind's auth says (ConnectorRequestAuthenticate()):
 * a header (basic, bearer, header:<name>) or query parameters (query).  The adapter
 * never sees them, and may not set the headers they go in.
 *
 * The call is made from this backend, on its own thread: a single-threaded HTTP client
 * (http_client.c) whose libcurl sockets are waited on with the latch and postmaster
 * death, so a cancel or a shutdown ends the wait at once.  Every address it connects to
 * passes the network policy (network_policy.c), as the worker's requests do: a blocked
 * address or scheme is the call's error, not an exception.
 *
 * No error text of the call quotes a credential: the URL is checked before query
 * credentials join it, and every message returned or logged has each credential value
 * replaced by ********.
 */
#include "postgres.h"

#include <ctype.h>

#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "connector.h"
#include "http_client.h"
#include "integration.h"
#include "spi_plan.h"
#include "tenant.h"
#include "worker.h"

extern Datum integration_validate_url(PG_FUNCTION_ARGS);

static SPIPlanPtr connector_plan;
static SPIPlanPtr log_plan;

/* One credential: a key and its value, NUL-terminated (values are JSON strings). */
typedef struct Credential
{
	char	   *key;
	char	   *value;
} Credential;

/* A connector's credentials, opened; wiped by free_credentials(). */
typedef struct Credentials
{
	int			n;
	Credential *items;
} Credentials;

/* The connector and kind test_connector() works from. */
typedef struct CallTarget
{
	int64		id;
	const char *tenant;
	Datum		context;
	Oid			context_type;
	char	   *kind;
	char	   *base_url;
	char	   *credentials;	/* stored */
	char	   *auth;			/* the style: none, basic, bearer,
								 * header:<name>, query */
	char	   *auth_key[2];	/* the credentials it sends: basic's user,
								 * password */
	Oid			build_fn;
	Oid			interpret_fn;
} CallTarget;

/* The HTTP request the adapter built, as C strings. */
typedef struct BuiltRequest
{
	char	   *method;
	char	   *path;
	Jsonb	   *query;
	Jsonb	   *headers;
	char	   *body;
} BuiltRequest;

/* Raises unless name is an HTTP token (RFC 9110). */
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

/* Opens stored credentials of target; raises (never quoting them) if they do not open. */
static Credentials
open_credentials(const CallTarget *t)
{
	SecretContext cxt;
	char	   *plain;
	int			plainlen;
	SecretOpenStatus st;
	Credentials c = {0, NULL};
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
	c.items = palloc0(sizeof(Credential) * Max(JsonContainerSize(&j->root), 1));
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			c.items[c.n].key = key;
			c.items[c.n].value = pnstrdup(v.val.string.val, v.val.string.len);
			explicit_bzero(v.val.string.val, v.val.string.len);
			c.n++;
		}
	}
	return c;
}

static void
free_credentials(Credentials *c)
{
	for (int i = 0; i < c->n; i++)
		SecretFree(c->items[i].value, strlen(c->items[i].value));
	c->n = 0;
}

/* The credential called key, or raise (the kind's auth needs it). */
static const char *
credential(const Credentials *c, const char *key, const CallTarget *t)
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
static char *
redact(const char *msg, const Credentials *c)
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
 * Appends "name: value" to *list; raises when libcurl is out of memory, leaving *list
 * as it was, for its owner to free.
 */
static void
add_header(struct curl_slist **list, const char *name, int namelen, const char *value, int valuelen)
{
	char	   *line = psprintf("%.*s: %.*s", namelen, name, valuelen, value);
	struct curl_slist *next = curl_slist_append(*list, line);

	explicit_bzero(line, strlen(line));
	if (next == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	*list = next;
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

/* Whether the adapter may not set header name: the client or the kind's auth sets it. */
static bool
header_is_reserved(const CallTarget *t, const char *name, int len)
{
	static const char *const reserved[] = {"Host", "Content-Length", "Transfer-Encoding",
	"Connection", "Expect", "User-Agent"};
	const char *auth_name = auth_header_name(t->auth);

	for (int i = 0; i < lengthof(reserved); i++)
		if (strlen(reserved[i]) == len && pg_strncasecmp(reserved[i], name, len) == 0)
			return true;
	return auth_name != NULL && strlen(auth_name) == len &&
		pg_strncasecmp(auth_name, name, len) == 0;
}

/* The adapter's headers, checked, appended to *list. */
static void
adapter_headers(struct curl_slist **list, const BuiltRequest *r, const CallTarget *t)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue	key = {0};

	add_header(list, "User-Agent", 10, INTEGRATION_USER_AGENT, strlen(INTEGRATION_USER_AGENT));
	/* No "Expect: 100-continue" round trip for larger bodies. */
	add_header(list, "Expect", 6, "", 0);
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
adapter_query(CURLU *h, const BuiltRequest *r, const CallTarget *t)
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
request_url(const BuiltRequest *r, const CallTarget *t, const Credentials *creds)
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
auth_headers(struct curl_slist **list, const CallTarget *t, const Credentials *creds)
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

/* Sends req and waits for it, with the latch and postmaster death; interruptible. */
static void
send_and_wait(HttpRequest *req)
{
	HttpClient *client = HttpClientCreateInline(1, integration_proxy);
	HttpRequest *done = NULL;

	PG_TRY();
	{
		HttpClientStart(client, req);
		while ((done = HttpClientNextDone(client)) == NULL)
		{
			long		timeout = HttpClientTimeoutMs(client);

			if (timeout != 0)
				(void) WaitLatchOrSocket(MyLatch,
										 WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH |
										 (timeout > 0 ? WL_TIMEOUT : 0),
										 HttpClientFd(client), timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			HttpClientDrive(client);
		}
	}
	PG_FINALLY();
	{
		/*
		 * A request cancelled in flight leaves its handle to the client's
		 * cleanup.
		 */
		HttpClientDestroy(client);
	}
	PG_END_TRY();
}

/* The connector and its kind, or raise as the other connector functions do. */
static void
load_target(CallTarget *t)
{
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	Datum		args[2];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	args[0] = CStringGetTextDatum(t->tenant);
	args[1] = Int64GetDatum(t->id);
	RunPlan(SavedPlan(&connector_plan,
					  "SELECT integration._connector_context(c),"
					  " c.kind, c.base_url, c.credentials, integration._auth_style(k.auth),"
					  " k.build_request_function::pg_catalog.oid,"
					  " k.interpret_response_function::pg_catalog.oid,"
					  " (integration._auth_keys(k.auth))[1], (integration._auth_keys(k.auth))[2]"
					  " FROM integration.connectors c"
					  " JOIN integration.connector_kinds k ON k.name OPERATOR(pg_catalog.=) c.kind"
					  " WHERE c.tenant_id OPERATOR(pg_catalog.=) $1 AND c.id OPERATOR(pg_catalog.=) $2"
					  "   AND c.deleted_at IS NULL",
					  2, argtypes, CURSOR_OPT_GENERIC_PLAN),
			args, true, SPI_OK_SELECT, "looking up the connector");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("connector %lld not found", (long long) t->id),
				 errhint("integration.list_connectors() lists the current tenant's connectors.")));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	t->context = SPI_datumTransfer(SPI_getbinval(row, desc, 1, &isnull), false, -1);
	t->context_type = SPI_gettypeid(desc, 1);
	t->kind = SPI_getvalue(row, desc, 2);
	t->base_url = SPI_getvalue(row, desc, 3);
	t->credentials = SPI_getvalue(row, desc, 4);
	t->auth = SPI_getvalue(row, desc, 5);
	t->auth_key[0] = SPI_getvalue(row, desc, 8);
	t->auth_key[1] = SPI_getvalue(row, desc, 9);
	d = SPI_getbinval(row, desc, 6, &isnull);
	t->build_fn = isnull ? InvalidOid : DatumGetObjectId(d);
	d = SPI_getbinval(row, desc, 7, &isnull);
	t->interpret_fn = isnull ? InvalidOid : DatumGetObjectId(d);
	if (!OidIsValid(t->build_fn))
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

/* "schema.name" of a function, quoted, to call it in SQL. */
static char *
function_sql_name(Oid fn)
{
	char	   *name = get_func_name(fn);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("adapter function with OID %u does not exist", fn),
				 errhint("Register the kind again with integration.register_connector_kind(..., replace => true).")));
	return quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)), name);
}

/* The kind's request for operation test. */
static BuiltRequest
build_request(const CallTarget *t)
{
	Oid			argtypes[1] = {t->context_type};
	Datum		args[1] = {t->context};
	BuiltRequest r = {0};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			rc;

	rc = SPI_execute_with_args(psprintf("SELECT r.method, r.path, r.query, r.headers, r.body"
										" FROM %s($1, 'test', '{}', NULL) AS r",
										function_sql_name(t->build_fn)),
							   1, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the request adapter of kind %s returned no row", t->kind);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r.method = SPI_getvalue(row, desc, 1);
	r.path = SPI_getvalue(row, desc, 2);
	d = SPI_getbinval(row, desc, 3, &isnull);
	r.query = isnull ? NULL : DatumGetJsonbP(SPI_datumTransfer(d, false, -1));
	d = SPI_getbinval(row, desc, 4, &isnull);
	r.headers = isnull ? NULL : DatumGetJsonbP(SPI_datumTransfer(d, false, -1));
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

/* The kind's verdict on the response: whether it succeeded, and its error. */
static bool
interpret_response(const CallTarget *t, const HttpRequest *req, char **error)
{
	Oid			argtypes[4] = {t->context_type, INT4OID, JSONBOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	HeapTuple	row;
	TupleDesc	desc;
	char	   *outcome;
	int			rc;

	args[0] = t->context;
	args[1] = Int32GetDatum((int32) req->status_code);
	args[2] = JsonbPGetDatum(headers_jsonb(req->response_headers));
	/* A body that is not text of this database is not passed on. */
	if (pg_verifymbstr(req->response, req->response_len, true))
		args[3] = PointerGetDatum(cstring_to_text_with_len(req->response, req->response_len));
	else
		nulls[3] = 'n';
	rc = SPI_execute_with_args(psprintf("SELECT o.outcome, o.error FROM %s($1, 'test', $2, $3, $4) AS o",
										function_sql_name(t->interpret_fn)),
							   4, argtypes, args, nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the response adapter of kind %s returned no row", t->kind);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	outcome = SPI_getvalue(row, desc, 1);
	*error = SPI_getvalue(row, desc, 2);
	if (outcome == NULL ||
		!(strcmp(outcome, "succeeded") == 0 || strcmp(outcome, "retry") == 0 ||
		  strcmp(outcome, "failed") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s response adapter returned an invalid outcome", t->kind),
				 errdetail("An outcome is succeeded, retry or failed.")));
	if (strcmp(outcome, "succeeded") != 0 && *error == NULL)
		*error = psprintf("HTTP %ld: %s", req->status_code, outcome);
	return strcmp(outcome, "succeeded") == 0;
}

/* What one call came to. */
typedef struct CallResult
{
	bool		ok;
	int			status;
	int64		duration_us;
	char	   *error;			/* redacted; NULL: none */
} CallResult;

/* Builds, authenticates, sends and judges the test call (runs with creds open). */
static void
call_once(const CallTarget *t, const BuiltRequest *r, const Credentials *creds,
		  HttpRequest *req, CallResult *res)
{
	char	   *url = request_url(r, t, creds);

	adapter_headers(&req->headers, r, t);
	auth_headers(&req->headers, t, creds);
	req->method = r->method;
	req->url = url;
	req->body = r->body ? r->body : "";
	req->body_len = r->body ? strlen(r->body) : 0;
	req->keep_headers = true;
	req->connect_timeout_ms = integration_connect_timeout_ms;
	req->timeout_ms = integration_request_timeout_ms;
	req->max_response_bytes = integration_max_response_bytes;
	send_and_wait(req);
	explicit_bzero(url, strlen(url));

	res->status = (int) req->status_code;
	res->duration_us = req->duration_us;
	if (req->error_class != HTTP_OK)
		res->error = psprintf("%s: %s", HttpErrorClassName(req->error_class), req->error);
	else
		res->ok = interpret_response(t, req, &res->error);
	if (res->error)
		res->error = redact(res->error, creds);
}

PG_FUNCTION_INFO_V1(integration_test_connector);

/*
 * test_connector(id bigint, OUT ok boolean, OUT status integer, OUT latency interval,
 *				  OUT error text)
 */
Datum
integration_test_connector(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt = CurrentMemoryContext;
	CallTarget	t = {0};
	TupleDesc	tupdesc;
	BuiltRequest r;
	Credentials creds;
	HttpRequest req = {0};
	CallResult	res = {false, 0, 0, NULL};
	Interval   *latency = palloc0(sizeof(Interval));
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Oid			log_types[6] = {TEXTOID, INT8OID, BOOLOID, INT4OID, INT8OID, TEXTOID};
	Datum		log_args[6];
	char		log_nulls[6] = "      ";

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "test_connector must return a record");
	t.id = PG_GETARG_INT64(0);
	t.tenant = RequireTenant();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	load_target(&t);
	r = build_request(&t);
	creds = open_credentials(&t);
	PG_TRY();
	{
		call_once(&t, &r, &creds, &req, &res);
	}
	PG_FINALLY();
	{
		free_credentials(&creds);
		for (struct curl_slist *l = req.headers; l; l = l->next)
			explicit_bzero(l->data, strlen(l->data));
		HttpRequestRelease(&req);
	}
	PG_END_TRY();

	log_args[0] = CStringGetTextDatum(res.ok ? "info" : "warning");
	log_args[1] = Int64GetDatum(t.id);
	log_args[2] = BoolGetDatum(res.ok);
	log_args[3] = Int32GetDatum(res.status);
	log_args[4] = Int64GetDatum(res.duration_us / 1000);
	if (res.error)
		log_args[5] = CStringGetTextDatum(res.error);
	else
		log_nulls[5] = 'n';
	if (SPI_execute_plan(SavedPlan(&log_plan,
								   "INSERT INTO integration.integration_logs (level, source, event, message, context)"
								   " SELECT $1, 'api', 'connector.tested',"
								   "  pg_catalog.format('connector %s tested: %s', $2,"
								   "   CASE WHEN $3 THEN 'ok' ELSE COALESCE($6, 'failed') END),"
								   "  pg_catalog.jsonb_build_object('connector_id', $2, 'ok', $3, 'status', $4,"
								   "   'latency_ms', $5, 'error', $6)",
								   6, log_types, CURSOR_OPT_GENERIC_PLAN),
						 log_args, log_nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not log a connector test");
	/* SPI's memory goes with SPI_finish(). */
	if (res.error)
		res.error = MemoryContextStrdup(callcxt, res.error);
	SPI_finish();

	latency->time = res.duration_us;
	values[0] = BoolGetDatum(res.ok);
	values[1] = Int32GetDatum(res.status);
	values[2] = IntervalPGetDatum(latency);
	if (res.error)
		values[3] = CStringGetTextDatum(res.error);
	else
		nulls[3] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
