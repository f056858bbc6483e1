/*
 * connector.h
 *		Connectors (sql/connectors.sql, docs/connectors.md): the settings of inbound
 *		webhooks, the SQL-callable helpers adapters use, and what receive_webhook()
 *		(connector_inbound.c) and test_connector() (connector_call.c) share.
 *
 * Contract.  Credentials and inbound secrets are opened here only: from the row they
 * are stored in, into palloc'd memory that is wiped (SecretFree()) as soon as the call
 * that needs it returns.  No message built here quotes one.
 */
#ifndef INTEGRATION_CONNECTOR_H
#define INTEGRATION_CONNECTOR_H

#include "executor/spi.h"
#include "secret_box.h"
#include "utils/jsonb.h"

/* The purposes of the secret columns of integration.connectors (their triggers'). */
#define CONNECTOR_CREDENTIALS_PURPOSE "connectors.credentials"
#define CONNECTOR_INBOUND_SECRET_PURPOSE "connectors.inbound_secret"

/* Settings (connector_inbound.c). */
extern int	integration_inbound_dedupe_window_s;
extern int	integration_inbound_tolerance_s;
extern int	integration_inbound_max_body_bytes;

extern void ConnectorDefineGucs(void);

/*
 * Whether value is a JSON object whose values are all non-empty strings; parses
 * without raising (connector_sql.c).
 */
extern bool CredentialsAreValid(const char *value, int len);

/* The kept plan that calls a kind's adapter function (connector_request.c). */
extern SPIPlanPtr ConnectorAdapterPlan(const char *kind, const char *column,
									   const char *signature, const char *sqlfmt,
									   int nargs, Oid *argtypes);

#endif							/* INTEGRATION_CONNECTOR_H */
