/*
 * connector_request.h
 *		One call to a connector's API as its kind's adapters make it: the connector and
 *		kind looked up, the request built by the kind's build_request adapter and
 *		authenticated from the credentials, and the response judged by its
 *		interpret_response adapter (connector_request.c).
 *
 * Two callers send what is built here: test_connector() from the calling backend
 * (connector_call.c), and the worker's queued calls through its HTTP client
 * (call_job.c).  Every function here runs SQL through SPI, which the caller has
 * connected; what it returns is palloc'd in the caller's current memory context, which
 * is current again on return (SPI would leave its own current).
 *
 * Time.  The worker bounds each adapter call by integration.adapter_timeout
 * (adapter_timeout_ms; RunWithTimeLimit(), time_limit.c): it runs every tenant's calls
 * and deliveries in one process, and an adapter that sleeps would stall them all.
 * test_connector() passes 0: it runs in the caller's session, under the caller's own
 * statement_timeout, whose timer the limit would take over.
 */
#ifndef INTEGRATION_CONNECTOR_REQUEST_H
#define INTEGRATION_CONNECTOR_REQUEST_H

#include "http_client.h"
#include "tenant.h"
#include "utils/jsonb.h"

/*
 * A connector's rate limit setting (key: rate_limit, rate_limit_burst) as the worker
 * takes it, an SQL expression over integration.connectors c: a number within the range
 * create_connector() checks, else none (0), so that settings written by hand can never
 * make a worker's statement fail.
 */
#define CONNECTOR_SETTING_RATE(key) \
	"CASE WHEN pg_catalog.jsonb_typeof(c.settings OPERATOR(pg_catalog.->) '" key "')" \
	"          OPERATOR(pg_catalog.=) 'number'" \
	"     THEN LEAST(GREATEST(pg_catalog.round(" \
	"            (c.settings OPERATOR(pg_catalog.->>) '" key "')::pg_catalog.numeric), 0), 100000)::pg_catalog.int4" \
	"     ELSE 0 END"

/* The connector and kind a call goes to. */
typedef struct ConnectorTarget
{
	int64		id;
	const char *tenant;
	Datum		context;		/* integration.connector_context */
	Oid			context_type;
	char	   *kind;
	char	   *base_url;
	char	   *credentials;	/* as stored */
	char	   *auth;			/* the style: none, basic, bearer,
								 * header:<name>, query, json:<pointer> */
	char	   *auth_key[2];	/* the credentials it sends: basic's user,
								 * password */
	char	   *idempotency_header; /* NULL: the kind takes no idempotency key */
	char	   *retry_schedule; /* settings.retry_schedule; NULL: the default */
	bool		is_active;
	int			rate_limit;		/* settings.rate_limit; 0: none */
	int			rate_limit_burst;	/* settings.rate_limit_burst; 0: the rate */
	/* adapters, by signature (function_signature.c); NULL: none */
	char	   *build_fn;
	char	   *interpret_fn;
} ConnectorTarget;

/* A connector's credentials, opened; ConnectorCredentialsFree() wipes them. */
typedef struct ConnectorCredentials ConnectorCredentials;

/* What the kind made of a response, or of its absence. */
typedef enum ConnectorOutcome
{
	CONNECTOR_SUCCEEDED,
	CONNECTOR_RETRY,
	CONNECTOR_FAILED
} ConnectorOutcome;

typedef struct ConnectorVerdict
{
	ConnectorOutcome outcome;
	int64		retry_after_ms; /* the adapter's own delay; -1: none given */
	Jsonb	   *result;			/* NULL: none */
	char	   *error;			/* credentials redacted; NULL: none */
} ConnectorVerdict;

/* Settings. */
extern int	integration_connector_max_response_bytes;
extern int	integration_adapter_timeout_ms;

extern void ConnectorRequestDefineGucs(void);

extern bool ConnectorTargetLoad(ConnectorTarget *t, bool missing_ok);
extern void ConnectorTargetCheckCalls(const ConnectorTarget *t);
extern void ConnectorTargetCopy(ConnectorTarget *dst, const ConnectorTarget *src,
								MemoryContext cxt);

extern ConnectorCredentials *ConnectorCredentialsOpen(const ConnectorTarget *t);
extern void ConnectorCredentialsFree(ConnectorCredentials *c);
extern char *ConnectorRedact(const char *msg, const ConnectorCredentials *c);

extern void ConnectorRequestBuild(const ConnectorTarget *t, const char *operation,
								  Jsonb *payload, const char *idempotency_key,
								  const ConnectorCredentials *creds, int adapter_timeout_ms,
								  HttpRequest *req);
extern void ConnectorRequestRelease(HttpRequest *req);
extern bool ConnectorAdapterRaised(void);
extern void ConnectorAdapterForget(void);
extern void ConnectorJudge(const ConnectorTarget *t, const char *operation,
						   const HttpRequest *req, const ConnectorCredentials *creds,
						   int adapter_timeout_ms, ConnectorVerdict *v);

/* Running adapters as a role with a tenant selected (the worker's calls). */
extern void ConnectorActAs(TenantIdentity *saved, const char *tenant, Oid role);

#endif							/* INTEGRATION_CONNECTOR_REQUEST_H */
