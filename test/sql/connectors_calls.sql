-- Queued connector calls: call_connector() and its errors, idempotency keys, what a
-- queued call looks like, the kinds' idempotency header, connectors' retry schedules and
-- rate limits, list_connector_calls(), the backlog and health views.  The worker is off
-- (test/regress.conf): calls stay queued; test/t/023_connector_calls.pl makes them.
-- The connectors' ids are put back as they were at the end, for the files after this.
\set SHOW_CONTEXT never
SELECT coalesce(last_value::text, '') AS connectors_last FROM pg_sequences
 WHERE schemaname = 'integration' AND sequencename = 'connectors_id_seq' \gset
ALTER TABLE integration.connectors ALTER COLUMN id RESTART WITH 2001;
ALTER TABLE integration.connector_calls ALTER COLUMN id RESTART WITH 1;

------------------------------------------------------------------------------------------
-- Kinds name the header their idempotency key goes in.
------------------------------------------------------------------------------------------
SELECT name, idempotency_header FROM integration.connector_kinds WHERE name = 'generic';
CREATE FUNCTION public.calls_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT NULL::text, 'x', NULL::text, '{}'::jsonb $$;
CREATE FUNCTION public.calls_build(c integration.connector_context, operation text, payload jsonb,
								   idempotency_key text)
	RETURNS integration.connector_request LANGUAGE plpgsql STABLE
AS $$
BEGIN
	-- The test call sets the kind's idempotency header, which no adapter may set.
	IF operation = 'test' THEN
		RETURN ('GET', '/', NULL, '{"x-request-key": "mine"}', NULL)::integration.connector_request;
	END IF;
	IF operation <> 'ping' THEN
		RAISE EXCEPTION 'calls_build knows no operation "%"', operation
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN ('POST', '/ping', NULL, NULL, payload::text)::integration.connector_request;
END
$$;
SELECT name, idempotency_header FROM integration.register_connector_kind('calls_key', 'none', 'none',
	build_request => 'public.calls_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	idempotency_header => 'X-Request-Key');
SELECT name, idempotency_header FROM integration.register_connector_kind('calls_inbound', 'none', 'none',
	normalise => 'public.calls_normalise(integration.connector_context, jsonb, text)');
-- A header name, for a kind that makes calls.
SELECT integration.register_connector_kind('calls_bad', 'none', 'none',
	build_request => 'public.calls_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	idempotency_header => 'Idempotency Key');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('calls_bad', 'none', 'none',
	normalise => 'public.calls_normalise(integration.connector_context, jsonb, text)',
	idempotency_header => 'Idempotency-Key');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
UPDATE integration.connector_kinds SET idempotency_header = 'a:b' WHERE name = 'calls_key';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

------------------------------------------------------------------------------------------
-- Connectors' own retry schedules.
------------------------------------------------------------------------------------------
SET ROLE integration_test_app;
SET integration.tenant_id = 'calls-a';
SELECT id, name, settings FROM integration.create_connector('generic', 'api', 'https://api.example.invalid/v1',
	'{"token": "calls-token-0123456789"}', '{"retry_schedule": "10s, 1min"}');
SELECT id, name FROM integration.create_connector('calls_key', 'keyed', 'https://keyed.example.invalid', '{}');
SELECT id, name FROM integration.create_connector('calls_inbound', 'inbound', NULL, '{}');
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": "t"}',
	'{"retry_schedule": "5 parsecs"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": "t"}',
	'{"retry_schedule": 10}');
\echo :LAST_ERROR_SQLSTATE
SELECT settings FROM integration.update_connector(2001, settings => '{"retry_schedule": ""}');
SELECT integration.update_connector(2001, settings => '{"retry_schedule": "1s,,2s"}');
\echo :LAST_ERROR_SQLSTATE
-- And their rate limits, as webhook endpoints have them.
SELECT settings FROM integration.update_connector(2001, settings => '{"rate_limit": 5, "rate_limit_burst": 10}');
SELECT integration.update_connector(2001, settings => '{"rate_limit": 0.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(2001, settings => '{"rate_limit": "5"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(2001, settings => '{"rate_limit_burst": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(2001, settings => '{"rate_limit": 200000}');
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------------------
-- call_connector(): queued in the caller's transaction.
------------------------------------------------------------------------------------------
BEGIN;
SELECT integration.call_connector(2001, 'POST /orders', '{"sku": "A-1"}') AS first_call \gset
SELECT id, connector_id, operation, payload, status, attempts, queued_by,
	   idempotency_key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS key_is_a_uuid,
	   next_attempt_at = created_at AS due_at_once, lease_expires_at, last_attempt_at,
	   last_status_code, result, last_error, finished_at
  FROM integration.connector_calls WHERE id = :first_call;
ROLLBACK;
SELECT count(*) AS rolled_back FROM integration.connector_calls;

SELECT integration.call_connector(2001, 'POST /orders', '{"sku": "A-1"}', 'order-1-create');
-- The same key, operation and payload: the same call.  Another call with the key: an error.
SELECT integration.call_connector(2001, 'POST /orders', '{"sku": "A-1"}', 'order-1-create');
SELECT integration.call_connector(2001, 'POST /orders', '{"sku": "A-2"}', 'order-1-create');
\echo :LAST_ERROR_SQLSTATE
-- Keys are per connector; no payload is {}.
SELECT integration.call_connector(2002, 'ping', NULL, 'order-1-create');
SELECT id, connector_id, operation, payload, idempotency_key, status
  FROM integration.connector_calls ORDER BY id;

-- Errors.
SELECT integration.call_connector(2001, NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(NULL, 'GET /x', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2001, '', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2001, 'GET /x', '{}', 'has space');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2001, 'GET /x', '{}', repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2001, 'GET /x', '{}', '');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(-1, 'GET /x', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2003, 'GET /x', '{}');
\echo :LAST_ERROR_SQLSTATE
-- The kind's request adapter refuses an operation when the call is queued.
SELECT integration.call_connector(2001, 'FETCH /x', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.call_connector(2002, 'pong', '{}');
\echo :LAST_ERROR_SQLSTATE
-- Another tenant's connector does not exist.
SET integration.tenant_id = 'calls-b';
SELECT integration.call_connector(2001, 'GET /x', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS calls_b_sees FROM integration.connector_calls;
RESET integration.tenant_id;
SELECT integration.call_connector(2001, 'GET /x', '{}');
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'calls-a';

-- The header the key goes in is the caller's: the adapter may not set it.
SELECT integration.test_connector(2002);
\echo :LAST_ERROR_SQLSTATE

-- A disabled connector's calls are queued (they wait); a deleted one's are not.
SELECT is_active FROM integration.update_connector(2002, is_active => false);
SELECT integration.call_connector(2002, 'ping', '{"n": 2}', 'while-disabled');
SELECT integration.delete_connector(2002);
SELECT integration.call_connector(2002, 'ping', '{"n": 3}');
\echo :LAST_ERROR_SQLSTATE

-- The table holds its invariants whoever writes it.
INSERT INTO integration.connector_calls (connector_id, operation, status) VALUES (2001, 'GET /x', 'sending');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.connector_calls (connector_id, operation, status, next_attempt_at)
VALUES (2001, 'GET /x', 'succeeded', NULL);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.connector_calls (connector_id, operation, idempotency_key) VALUES (2001, 'GET /x', 'tab	key');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.connector_calls (connector_id, operation) VALUES (9999, 'GET /x');
\echo :LAST_ERROR_SQLSTATE
-- queued_by is whoever writes the row.
INSERT INTO integration.connector_calls (connector_id, operation, queued_by)
VALUES (2001, 'GET /direct', 'postgres') RETURNING operation, queued_by;
UPDATE integration.connector_calls SET queued_by = 'postgres' WHERE operation = 'GET /direct'
RETURNING operation, queued_by;

------------------------------------------------------------------------------------------
-- Listing and the backlog.
------------------------------------------------------------------------------------------
SELECT id, operation, status FROM integration.list_connector_calls();
SELECT id, operation FROM integration.list_connector_calls("limit" => 1);
SELECT id, operation FROM integration.list_connector_calls(connector_id => 2002);
SELECT count(*) FROM integration.list_connector_calls(status => 'failed');
SELECT connector_id, name, kind, is_active, pending, due, sending, oldest_created_at IS NOT NULL AS has_oldest,
	   next_attempt_at <= now() AS next_due_now, failed_last_day, last_failed_at
  FROM integration.connector_call_backlog ORDER BY connector_id;
RESET ROLE;
-- A superuser sees every tenant's backlog (here, those of this file): the view runs
-- with the caller's rights.
SELECT tenant_id, connector_id, pending FROM integration.connector_call_backlog
 WHERE tenant_id LIKE 'calls-%' ORDER BY connector_id;
SELECT relname, reloptions FROM pg_class
 WHERE oid IN ('integration.connector_call_backlog'::regclass, 'integration.connector_health'::regclass)
 ORDER BY relname;
-- With the worker off, the health of each connector is its settings and stored circuit.
SET ROLE integration_test_app;
SET integration.tenant_id = 'calls-a';
SELECT connector_id, circuit, requests, failures, failure_ratio, rate_limit, effective_rate, in_flight, queued
  FROM integration.connector_health ORDER BY connector_id;
RESET ROLE;

SELECT setval('integration.connectors_id_seq', coalesce(nullif(:'connectors_last', '')::bigint, 1),
			  nullif(:'connectors_last', '') IS NOT NULL) > 0 AS connector_ids_put_back;
