/*
 * delivery_request.c
 *		Builds the HTTP request of a claimed delivery and judges its answer.
 *
 * A request carries the event's payload as its body, the Standard Webhooks headers
 * (webhook-id, webhook-timestamp, webhook-signature over "id.timestamp.body" with
 * every secret of the endpoint, and with the secrets rotate_secret() retired until
 * their grace ends) and the endpoint's own headers.  Nothing here ereports
 * for a bad secret or header: the caller stores the problem as the delivery's failed
 * attempt, so one endpoint's bad setting never takes the worker down.
 */
#include "postgres.h"

#include <time.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "delivery_request.h"
#include "integration.h"
#include "signature.h"
#include "worker.h"

/* Appends "name: value" to list (HttpHeaderLine()); *ok false when libcurl cannot. */
static struct curl_slist *
append_header(struct curl_slist *list, const char *name, int namelen,
			  const char *value, int valuelen, bool *ok)
{
	char	   *line;
	struct curl_slist *next;

	if (!*ok)
		return list;
	line = HttpHeaderLine(name, namelen, value, valuelen);
	next = curl_slist_append(list, line);
	pfree(line);
	if (next == NULL)
		*ok = false;
	return next ? next : list;
}

/* How many secrets a space-separated list holds. */
static int
count_secrets(const char *list)
{
	int			n = 0;
	bool		in = false;

	for (const char *p = list; *p; p++)
	{
		bool		blank = (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r');

		n += (!blank && !in);
		in = !blank;
	}
	return n;
}

/*
 * The secrets that sign c's request, as one list: its endpoint's own, then the retired
 * ones whose grace has not ended by now, newest first, each added while the list stays
 * within WEBHOOK_MAX_SECRETS (an endpoint's own may be a long list).  The caller wipes
 * it; NULL when c has no retired secret to add, and its own list signs alone.
 */
static char *
signing_secrets(const ClaimedDelivery *c)
{
	TimestampTz now;
	StringInfoData buf;
	int			n;

	if (c->retired.count == 0)
		return NULL;
	now = GetCurrentTimestamp();
	initStringInfo(&buf);
	appendStringInfoString(&buf, c->secret);
	n = count_secrets(c->secret);
	for (int i = 0; i < c->retired.count; i++)
	{
		int			more = count_secrets(c->retired.secrets[i]);

		if (c->retired.expires[i] <= now || n + more > WEBHOOK_MAX_SECRETS)
			continue;
		appendStringInfoChar(&buf, ' ');
		appendStringInfoString(&buf, c->retired.secrets[i]);
		n += more;
	}
	return buf.data;
}

/*
 * Fills in req (the caller's, zeroed) for claim c.  Returns false, with the error's
 * class and message, when the delivery cannot be sent: its endpoint is disabled or
 * gone, its event gone, its secret undecryptable (DELIVERY_SECRET_UNAVAILABLE) or
 * unusable, or its headers unbuildable.
 */
bool
DeliveryRequestBuild(ClaimedDelivery *c, HttpRequest *req, const char **error_class,
					 const char **error)
{
	WebhookHeader signed_headers[WEBHOOK_SIGNER_MAX_HEADERS];
	int			nsigned = 0;
	const char *sig_error = NULL;
	int64		now_s = (int64) time(NULL);
	char	   *secrets;
	bool		signed_ok;
	bool		ok = true;
	struct curl_slist *h = NULL;
	struct curl_slist *next;

	if (!c->usable)
	{
		*error_class = "endpoint_disabled";
		*error = c->payload ? "the endpoint is disabled or deleted" : "the event no longer exists";
		return false;
	}

	/*
	 * A secret that does not decrypt (a key missing from the key file, a
	 * value altered or copied from another endpoint) never signs: no request
	 * goes out, and the attempt fails with a class of its own, retried on the
	 * schedule since the operator can restore the key.
	 */
	if (c->secret_error != NULL)
	{
		*error_class = DELIVERY_SECRET_UNAVAILABLE;
		*error = c->secret_error;
		return false;
	}

	/*
	 * The same signer table as sign() and verify(): the Standard Webhooks
	 * scheme.
	 */
	secrets = signing_secrets(c);
	signed_ok = WebhookSignerHeaders(WebhookSignerLookup("standard"), secrets ? secrets : c->secret,
									 c->message_id, now_s, c->payload, c->payload_len,
									 signed_headers, &nsigned, &sig_error);
	if (secrets)
	{
		explicit_bzero(secrets, strlen(secrets));
		pfree(secrets);
	}
	if (!signed_ok)
	{
		*error_class = "invalid_request";
		*error = sig_error ? sig_error : "the endpoint secret cannot sign";
		return false;
	}

	h = append_header(h, "Content-Type", 12, "application/json", 16, &ok);
	h = append_header(h, "User-Agent", 10, INTEGRATION_USER_AGENT, strlen(INTEGRATION_USER_AGENT), &ok);
	for (int i = 0; i < nsigned; i++)
		h = append_header(h, signed_headers[i].name, strlen(signed_headers[i].name),
						  signed_headers[i].value, strlen(signed_headers[i].value), &ok);

	/*
	 * No "Expect: 100-continue" round trip for larger bodies ("Expect:"
	 * removes it).
	 */
	if (ok && (next = curl_slist_append(h, "Expect:")) != NULL)
		h = next;
	else
		ok = false;
	if (c->headers != NULL && JB_ROOT_IS_OBJECT(c->headers))
	{
		JsonbIterator *it = JsonbIteratorInit(&c->headers->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *name = NULL;
		int			namelen = 0;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				name = v.val.string.val;
				namelen = v.val.string.len;
			}
			else if (tok == WJB_VALUE && v.type == jbvString)
				h = append_header(h, name, namelen, v.val.string.val, v.val.string.len, &ok);
		}
	}
	if (!ok)
	{
		curl_slist_free_all(h);
		*error_class = "invalid_request";
		*error = "could not build the request headers";
		return false;
	}

	req->url = c->url;
	req->body = c->payload;
	req->body_len = c->payload_len;
	req->headers = h;
	req->connect_timeout_ms = integration_connect_timeout_ms;
	req->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : integration_request_timeout_ms;
	req->max_response_bytes = integration_max_response_bytes;
	return true;
}

/* What a finished request means: delivered (2xx), or a failed attempt and why. */
void
DeliveryRequestJudge(const HttpRequest *req, DeliveryVerdict *v)
{
	memset(v, 0, sizeof(*v));
	v->status_code = (int) req->status_code;
	if (req->error_class == HTTP_OK && req->status_code >= 200 && req->status_code < 300)
	{
		v->delivered = true;
		return;
	}
	if (req->error_class == HTTP_OK)
	{
		bool		redirect = req->status_code >= 300 && req->status_code < 400;

		v->error_class = redirect ? "redirect" : "http_status";
		v->error = redirect ?
			psprintf("HTTP %ld: redirects are not followed", req->status_code) :
			psprintf("HTTP %ld", req->status_code);
		v->failure.status_code = (int) req->status_code;
		v->failure.retry_after = req->retry_after;
	}
	else
	{
		v->status_code = 0;
		v->error_class = HttpErrorClassName(req->error_class);
		v->error = pstrdup(req->error);
	}
}

/* Text safe to store: valid UTF-8 without NULs (invalid bytes become '?'). */
char *
StorableText(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		i = 0;

	while (i < len)
	{
		int			l = pg_utf_mblen((const unsigned char *) s + i);

		if (s[i] != '\0' && i + l <= len && pg_utf8_islegal((const unsigned char *) s + i, l))
		{
			memcpy(out + i, s + i, l);
			i += l;
		}
		else
			out[i++] = '?';
	}
	out[len] = '\0';
	return out;
}
