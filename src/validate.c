/*
 * validate.c
 *		Validation of endpoint URLs, custom headers, payload sizes and event envelopes.
 *
 * The checks are exposed as raising SQL functions that the tables use in CHECK
 * constraints, so a row written through the API and a row written with plain DML meet
 * the same rules with the same messages.  URLs are parsed with libcurl's own parser: the
 * worker sends exactly what was validated here.
 */
#include "postgres.h"

#include <arpa/inet.h>

#include <curl/curl.h>

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "integration.h"
#include "network_policy.h"
#include "restore_mode.h"
#include "secret_box.h"
#include "validate.h"

int			integration_max_payload_bytes = 256 * 1024;

/* Headers the extension sets itself, or that only the transport may set. */
static const char *const reserved_headers[] = {
	"content-type", "content-length", "user-agent", "host", "connection",
	"transfer-encoding", "expect", "upgrade", "te", "trailer", "keep-alive",
	"proxy-authorization", "proxy-connection",
	"webhook-id", "webhook-timestamp", "webhook-signature",
	NULL
};

void
ValidateDefineGucs(void)
{
	DefineCustomIntVariable("integration.max_payload_bytes",
							"Largest event payload, serialised, that may be published or dispatched.",
							NULL,
							&integration_max_payload_bytes,
							256 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/* Errors out when a serialised payload is larger than integration.max_payload_bytes. */
void
CheckPayloadSize(size_t len)
{
	if (len > (size_t) integration_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("payload is too large: %zu bytes", len),
				 errdetail("The limit integration.max_payload_bytes is %d bytes.",
						   integration_max_payload_bytes),
				 errhint("Send a reference to the data instead of the data itself, or raise integration.max_payload_bytes.")));
}

bool
HeaderNameIsReserved(const char *name, size_t len)
{
	for (int i = 0; reserved_headers[i] != NULL; i++)
		if (strlen(reserved_headers[i]) == len &&
			pg_strncasecmp(reserved_headers[i], name, len) == 0)
			return true;
	return false;
}

static void
url_error(const char *url, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid webhook url \"%s\"", url),
			 errdetail("%s", detail),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * Raises unless url is an absolute http(s) URL without credentials or fragment.  If
 * host is not NULL, sets *host to the host as libcurl reads it (IPv4 numbers in dotted
 * form, IPv6 in brackets, without a zone id) and *https to whether the scheme is https.
 */
static void
validate_url(const char *url, size_t len, char **host, bool *https)
{
	CURLU	   *h;
	CURLUcode	rc;
	char	   *part = NULL;

	if (len == 0)
		url_error(url, "The URL is empty.", NULL);
	if (len > ENDPOINT_URL_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook url: %zu characters is too long", len),
				 errdetail("A webhook URL has at most %d characters.", ENDPOINT_URL_MAX_LEN)));
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) url[i];

		if (c <= 0x20 || c == 0x7f)
			url_error(url, "The URL contains a space or a control character.",
					  "Percent-encode it.");
	}

	h = curl_url();
	if (h == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

	/* Without a scheme libcurl would guess one; a webhook URL must say it. */
	rc = curl_url_set(h, CURLUPART_URL, url, 0);
	if (rc != CURLUE_OK)
	{
		const char *why = curl_url_strerror(rc);

		curl_url_cleanup(h);
		url_error(url, psprintf("It is not an absolute URL: %s.", why),
				  "Write it as https://host/path.");
	}

#define URL_PART_PRESENT(which) \
	(curl_url_get(h, (which), &part, 0) == CURLUE_OK && (curl_free(part), part = NULL, true))

	if (curl_url_get(h, CURLUPART_SCHEME, &part, 0) == CURLUE_OK)
	{
		bool		ok = (strcmp(part, "http") == 0 || strcmp(part, "https") == 0);

		if (https)
			*https = strcmp(part, "https") == 0;
		curl_free(part);
		part = NULL;
		if (!ok)
		{
			curl_url_cleanup(h);
			url_error(url, "Only http and https URLs are allowed.", NULL);
		}
	}
	if (URL_PART_PRESENT(CURLUPART_USER) || URL_PART_PRESENT(CURLUPART_PASSWORD))
	{
		curl_url_cleanup(h);
		url_error(url, "The URL contains credentials.",
				  "Put credentials in a custom header such as Authorization.");
	}
	if (URL_PART_PRESENT(CURLUPART_FRAGMENT))
	{
		curl_url_cleanup(h);
		url_error(url, "The URL contains a fragment (#...), which is never sent to the server.", NULL);
	}
	if (!URL_PART_PRESENT(CURLUPART_HOST))
	{
		curl_url_cleanup(h);
		url_error(url, "The URL has no host.", NULL);
	}
#undef URL_PART_PRESENT

	/* libcurl parses port 0 (also written "00"), which no server listens on. */
	if (curl_url_get(h, CURLUPART_PORT, &part, 0) == CURLUE_OK)
	{
		bool		zero = part[0] != '\0' && strspn(part, "0") == strlen(part);

		curl_free(part);
		part = NULL;
		if (zero)
		{
			curl_url_cleanup(h);
			url_error(url, "Port 0 is not a port a server can listen on.",
					  "Leave the port out for the scheme's default, or write the receiver's port, as in https://host:8443/path.");
		}
	}

	if (host && curl_url_get(h, CURLUPART_HOST, &part, 0) == CURLUE_OK)
	{
		*host = pstrdup(part);
		curl_free(part);
		part = NULL;
	}
	curl_url_cleanup(h);

	/*
	 * curl accepts "http:/x" and "http:x"; a stored URL should be
	 * unambiguous.
	 */
	if (!(pg_strncasecmp(url, "http://", 7) == 0 || pg_strncasecmp(url, "https://", 8) == 0))
		url_error(url, "It is not an absolute URL.", "Write it as https://host/path.");

	/* curl reads "https:///x" as host "x"; an empty authority has no host. */
	{
		const char *authority = url + (pg_strncasecmp(url, "https://", 8) == 0 ? 8 : 7);

		if (*authority == '\0' || *authority == '/' || *authority == '?' || *authority == '#')
			url_error(url, "The URL has no host.", NULL);
	}
}

PG_FUNCTION_INFO_V1(integration_validate_url);

Datum
integration_validate_url(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	validate_url(text_to_cstring(t), VARSIZE_ANY_EXHDR(t), NULL, NULL);
	PG_RETURN_TEXT_P(t);
}

PG_FUNCTION_INFO_V1(integration_validate_destination);

/*
 * validate_destination(url text) RETURNS text: what register_webhook() and
 * update_webhook() check of a URL beyond validate_url(), under the settings in force:
 * https when integration.https_only is on, and a host that is not an IP address, in
 * any spelling, that the worker would refuse to connect to (network_policy.c).  A
 * host name is judged when the worker connects, after DNS.
 *
 * Not a CHECK constraint, unlike validate_url(): the settings change, and an endpoint
 * stored under other ones must stay updatable (is_active, name) and restorable.  What
 * gets past it, by plain DML or a change of settings, still meets the worker's check
 * of every connection.
 */
Datum
integration_validate_destination(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	char	   *url = text_to_cstring(t);
	char	   *host = NULL;
	bool		https = false;
	NetworkPolicy *policy;
	NetAddr		addr;
	NetVerdict	why;
	bool		https_only;
	bool		blocked;
	char		addr_text[INET6_ADDRSTRLEN];
	char		reason[256];

	validate_url(url, VARSIZE_ANY_EXHDR(t), &host, &https);

	/*
	 * The verdict is formatted before the policy is given back, and raised
	 * after.
	 */
	policy = NetworkPolicyAcquire();
	https_only = NetworkPolicyHttpsOnly(policy);
	blocked = host != NULL && NetAddrFromUrlHost(host, &addr) &&
		NetworkPolicyBlocks(policy, &addr, &why);
	if (blocked)
	{
		NetAddrFormat(&addr, addr_text, sizeof(addr_text));
		NetVerdictFormat(&addr, &why, reason, sizeof(reason));
	}
	NetworkPolicyRelease(policy);

	if (!https && https_only)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook url \"%s\" is not https", url),
				 errdetail("integration.https_only is on: webhooks are sent over https only."),
				 errhint("Write the URL as https://host/path.")));
	if (blocked)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook url \"%s\" points to a blocked address", url),
				 errdetail("The host is the address %s: %s.", addr_text, reason),
				 why.by_setting ?
				 errhint("integration.blocked_networks wins over integration.allowed_networks.") :
				 errhint("Webhooks may not reach internal addresses; an administrator can open a range on purpose with integration.allowed_networks.")));
	PG_RETURN_TEXT_P(t);
}

/* RFC 9110 token characters. */
static bool
is_token_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return strchr("!#$%&'*+-.^_`|~", c) != NULL && c != '\0';
}

static void
header_error(const char *name, int namelen, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid custom header \"%.*s\"", Min(namelen, 100), name),
			 errdetail("%s", detail)));
}

/*
 * Raises unless headers is a JSON object of valid header names to safe string values,
 * each of which may be encrypted at rest (well formed, then).
 */
static void
validate_headers(Jsonb *headers)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			count = 0;
	char	   *name = NULL;
	int			namelen = 0;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("custom headers must be a JSON object"),
				 errdetail("Write them as {\"Header-Name\": \"value\"}.")));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			name = v.val.string.val;
			namelen = v.val.string.len;
			if (++count > ENDPOINT_MAX_HEADERS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("too many custom headers"),
						 errdetail("An endpoint has at most %d custom headers.", ENDPOINT_MAX_HEADERS)));
			if (namelen == 0)
				header_error(name, namelen, "A header name cannot be empty.");
			if (namelen > HEADER_NAME_MAX_LEN)
				header_error(name, namelen, psprintf("A header name has at most %d bytes.",
													 HEADER_NAME_MAX_LEN));
			for (int i = 0; i < namelen; i++)
				if (!is_token_char((unsigned char) name[i]))
					header_error(name, namelen,
								 "A header name consists of letters, digits and !#$%&'*+-.^_`|~ only.");
			if (HeaderNameIsReserved(name, namelen))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("custom header \"%.*s\" is reserved", namelen, name),
						 errdetail("The extension sets this header itself on every delivery.")));
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString)
				header_error(name, namelen, "A header value must be a JSON string.");
			if (v.val.string.len >= (int) strlen(SECRET_SEALED_PREFIX) &&
				strncmp(v.val.string.val, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)) == 0)
			{
				/*
				 * Encrypted at rest (the column's encrypt_secret() trigger):
				 * the plain value was checked before it was sealed.
				 */
				char		id[SECRET_KEY_ID_LEN + 1];

				if (!SecretSealedKeyId(pnstrdup(v.val.string.val, v.val.string.len), id))
					header_error(name, namelen,
								 "A header value that starts with \"" SECRET_SEALED_PREFIX "\" must be one that integration encrypted.");
				continue;
			}
			if (v.val.string.len > HEADER_VALUE_MAX_LEN)
				header_error(name, namelen, psprintf("A header value has at most %d bytes.",
													 HEADER_VALUE_MAX_LEN));
			for (int i = 0; i < v.val.string.len; i++)
			{
				unsigned char c = (unsigned char) v.val.string.val[i];

				if (c == '\r' || c == '\n' || c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
					header_error(name, namelen,
								 "A header value cannot contain CR, LF, NUL or other control characters.");
			}
		}
	}
}

PG_FUNCTION_INFO_V1(integration_validate_headers);

Datum
integration_validate_headers(PG_FUNCTION_ARGS)
{
	Jsonb	   *headers = PG_GETARG_JSONB_P(0);

	validate_headers(headers);
	PG_RETURN_JSONB_P(headers);
}

/* What the parse of an event payload found at the top level of the envelope. */
typedef struct EnvelopeScan
{
	int			depth;			/* objects and arrays open */
	bool		top_is_object;
	const char *field;			/* the top-level field whose value comes next */
	int			ntype;
	int			ntimestamp;
	int			ndata;
	bool		type_is_string;
	bool		timestamp_is_string;
	char	   *type;
} EnvelopeScan;

static void
envelope_container_start(void *state, bool object)
{
	EnvelopeScan *scan = state;

	if (scan->depth == 0)
		scan->top_is_object = object;
	scan->depth++;
}

static void
envelope_object_start(void *state)
{
	envelope_container_start(state, true);
}

static void
envelope_array_start(void *state)
{
	envelope_container_start(state, false);
}

static void
envelope_end(void *state)
{
	((EnvelopeScan *) state)->depth--;
}

static void
envelope_field_start(void *state, char *fname, bool isnull)
{
	EnvelopeScan *scan = state;

	if (scan->depth != 1)
		return;
	scan->field = NULL;
	if (strcmp(fname, "type") == 0)
	{
		scan->ntype++;
		scan->field = "type";
	}
	else if (strcmp(fname, "timestamp") == 0)
	{
		scan->ntimestamp++;
		scan->field = "timestamp";
	}
	else if (strcmp(fname, "data") == 0)
		scan->ndata++;
}

static void
envelope_scalar(void *state, char *token, JsonTokenType tokentype)
{
	EnvelopeScan *scan = state;

	if (scan->depth != 1 || scan->field == NULL)
		return;
	if (strcmp(scan->field, "type") == 0)
	{
		scan->type_is_string = (tokentype == JSON_TOKEN_STRING);
		scan->type = token;
	}
	else
		scan->timestamp_is_string = (tokentype == JSON_TOKEN_STRING);
}

static void
envelope_error(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid event payload"),
			 errdetail("%s", detail),
			 errhint("Publish with integration.publish_event(), or build the payload with integration.envelope(event, data).")));
}

/*
 * Raises unless payload, the bytes stored for event, is at most
 * integration.max_payload_bytes long (when check_size) and is the envelope that
 * integration.envelope() builds: a JSON object with exactly one "type" (the event's
 * name), one "timestamp" (a string) and one "data".  The size comes first, so an
 * oversized payload is never parsed.
 */
static void
ValidateEnvelope(const char *event, char *payload, int len, bool check_size)
{
	EnvelopeScan scan;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType rc;

	if (check_size)
		CheckPayloadSize(len);

	memset(&scan, 0, sizeof(scan));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &scan;
	sem.object_start = envelope_object_start;
	sem.object_end = envelope_end;
	sem.array_start = envelope_array_start;
	sem.array_end = envelope_end;
	sem.object_field_start = envelope_field_start;
	sem.scalar = envelope_scalar;
	lex = makeJsonLexContextCstringLen(payload, len, PG_UTF8, true);
	rc = pg_parse_json(lex, &sem);
	if (rc != JSON_SUCCESS)
		envelope_error(psprintf("The payload is not valid JSON: %s", json_errdetail(rc, lex)));
	if (!scan.top_is_object)
		envelope_error("The payload is not a JSON object.");
	if (scan.ntype != 1 || scan.ntimestamp != 1 || scan.ndata != 1)
		envelope_error("The payload does not have exactly one each of the fields \"type\", \"timestamp\" and \"data\".");
	if (!scan.type_is_string || strcmp(scan.type, event) != 0)
		envelope_error(psprintf("The payload's \"type\" is not the event's name \"%s\".", event));
	if (!scan.timestamp_is_string)
		envelope_error("The payload's \"timestamp\" is not a string.");
}

PG_FUNCTION_INFO_V1(integration_validate_envelope);

/*
 * validate_envelope(event text, payload text) RETURNS text: the CHECK constraint of
 * integration.webhook_events, so that a row written with plain SQL meets the rules of
 * publish_event() and dispatch_webhook().  Not the size in a restore
 * (restore_mode.c): the events met the limit of the server they were published on,
 * and a smaller one here (or since) must not make the whole table fail to load.
 */
Datum
integration_validate_envelope(PG_FUNCTION_ARGS)
{
	char	   *event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *payload = PG_GETARG_TEXT_PP(1);

	ValidateEnvelope(event, VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
					 !RestoreInProgress());
	PG_RETURN_TEXT_P(payload);
}
