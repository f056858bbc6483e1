-- Tenant isolation of connector calls, in pgTAP form under the app role, rolled back at
-- the end: a tenant cannot call another tenant's connector, nor see, change or plant
-- its calls; the role a call runs its adapters as is whoever queued it.
BEGIN;
SELECT plan(29);

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_app') THEN
		CREATE ROLE integration_test_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
END
$$;
GRANT USAGE ON SCHEMA integration TO integration_test_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO integration_test_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO integration_test_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO integration_test_app;

CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint);
GRANT ALL ON ids TO integration_test_app;
SET LOCAL ROLE integration_test_app;

-- Each tenant has a connector; B queues a call.
SET LOCAL integration.tenant_id = 'tap-calls-a';
INSERT INTO ids SELECT 'c_a', id FROM integration.create_connector('generic', 'a', 'https://a.example.invalid',
	'{"token": "token-of-tenant-a-0001"}');
SET LOCAL integration.tenant_id = 'tap-calls-b';
INSERT INTO ids SELECT 'c_b', id FROM integration.create_connector('generic', 'b', 'https://b.example.invalid',
	'{"token": "token-of-tenant-b-0002"}');
INSERT INTO ids SELECT 'call_b', integration.call_connector((SELECT v FROM ids WHERE k = 'c_b'),
	'POST /orders', '{"sku": "B-1"}', 'b-key-1');
SELECT results_eq($$SELECT operation, idempotency_key COLLATE "default", queued_by::text FROM integration.list_connector_calls()$$,
				  $$VALUES ('POST /orders', 'b-key-1', 'integration_test_app')$$,
				  'B lists its call, queued by its role');

-- As tenant A.
SET LOCAL integration.tenant_id = 'tap-calls-a';
SELECT throws_ok(format('SELECT integration.call_connector(%s, %L, %L)', (SELECT v FROM ids WHERE k = 'c_b'), 'POST /orders', '{}'),
				 'P0002', NULL, 'A cannot call B''s connector');
SELECT throws_ok(format('SELECT integration.call_connector(%s, %L, %L, %L)', (SELECT v FROM ids WHERE k = 'c_b'), 'POST /orders', '{"sku": "B-1"}', 'b-key-1'),
				 'P0002', NULL, 'not even with B''s key, operation and payload');
SELECT is_empty($$SELECT * FROM integration.connector_calls$$, 'A sees none of B''s calls');
SELECT is_empty($$SELECT * FROM integration.list_connector_calls()$$, 'list_connector_calls shows A nothing');
SELECT is_empty($$SELECT * FROM integration.connector_call_backlog WHERE connector_id <> (SELECT v FROM ids WHERE k = 'c_a')$$,
				'the backlog view shows A its own connector only');
SELECT is_empty($$UPDATE integration.connector_calls SET status = 'failed', finished_at = now(), next_attempt_at = NULL RETURNING id$$,
				'A''s UPDATE of calls touches none of B''s');
SELECT is_empty($$DELETE FROM integration.connector_calls RETURNING id$$, 'A''s DELETE of calls touches none of B''s');
SELECT throws_ok(format($$INSERT INTO integration.connector_calls (tenant_id, connector_id, operation) VALUES ('tap-calls-b', %s, 'GET /x')$$,
						(SELECT v FROM ids WHERE k = 'c_b')),
				 '42501', NULL, 'A cannot plant a call for B');
SELECT throws_ok(format($$INSERT INTO integration.connector_calls (connector_id, operation) VALUES (%s, 'GET /x')$$,
						(SELECT v FROM ids WHERE k = 'c_b')),
				 '23503', NULL, 'A cannot queue a call of its own to B''s connector: the key pairs tenant and connector');
-- A's own call, with the key B used: keys are per connector.
INSERT INTO ids SELECT 'call_a', integration.call_connector((SELECT v FROM ids WHERE k = 'c_a'), 'POST /orders', '{}', 'b-key-1');
SELECT results_eq($$SELECT connector_id, idempotency_key COLLATE "default" FROM integration.connector_calls$$,
				  $$SELECT v, 'b-key-1'::text FROM ids WHERE k = 'c_a'$$,
				  'A queues its own call with the same key, and sees only it');
SELECT is((SELECT pending FROM integration.connector_call_backlog WHERE connector_id = (SELECT v FROM ids WHERE k = 'c_a')),
		  1::bigint, 'A''s backlog counts its one call');

-- A role cannot make a call run as another.
SELECT is((SELECT queued_by::text FROM integration.connector_calls
			WHERE id = (SELECT v FROM ids WHERE k = 'call_a')), 'integration_test_app',
		  'the call runs its adapters as the role that queued it');
SELECT results_eq($$UPDATE integration.connector_calls SET queued_by = 'postgres' RETURNING queued_by::text$$,
				  $$VALUES ('integration_test_app')$$, 'and an UPDATE cannot name another role');
SELECT results_eq($$INSERT INTO integration.connector_calls (connector_id, operation, queued_by)
					SELECT v, 'GET /x', 'postgres' FROM ids WHERE k = 'c_a' RETURNING queued_by::text$$,
				  $$VALUES ('integration_test_app')$$, 'nor an INSERT');

-- An operator's retry and cancel, of A's own calls only.
SELECT throws_ok(format('SELECT integration.retry_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_b')),
				 'P0002', format('connector call %s not found', (SELECT v FROM ids WHERE k = 'call_b')),
				 'A cannot retry B''s call');
SELECT throws_ok(format('SELECT integration.cancel_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_b')),
				 'P0002', NULL, 'nor cancel it');
SELECT throws_ok(format('SELECT integration.retry_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_a')),
				 '55000', format('connector call %s is pending', (SELECT v FROM ids WHERE k = 'call_a')),
				 'a pending call is not retried');
UPDATE integration.connector_calls SET status = 'sending', next_attempt_at = NULL,
	   lease_expires_at = now() + interval '1 minute' WHERE id = (SELECT v FROM ids WHERE k = 'call_a');
SELECT throws_ok(format('SELECT integration.cancel_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_a')),
				 '55000', format('connector call %s is being sent right now', (SELECT v FROM ids WHERE k = 'call_a')),
				 'a call in flight is not cancelled');
UPDATE integration.connector_calls SET status = 'pending', next_attempt_at = now(), lease_expires_at = NULL
 WHERE id = (SELECT v FROM ids WHERE k = 'call_a');
SELECT results_eq(format('SELECT status, attempts, last_error FROM integration.cancel_connector_call(%s)',
						 (SELECT v FROM ids WHERE k = 'call_a')),
				  $$VALUES ('failed'::text, 0, 'cancelled by integration_test_app'::text)$$,
				  'a pending call is cancelled: failed, saying by whom');
SELECT results_eq($$SELECT event, payload ->> 'error', dedupe_expired FROM integration.inbound_events$$,
				  $$VALUES ('generic.call.failed'::text, 'cancelled by integration_test_app'::text, false)$$,
				  'with its completion event, as the worker writes one');
SELECT throws_ok(format('SELECT integration.cancel_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_a')),
				 '55000', format('connector call %s is failed', (SELECT v FROM ids WHERE k = 'call_a')),
				 'a call that ended is not cancelled');
SELECT results_eq(format('SELECT status, attempts, next_attempt_at IS NOT NULL, finished_at IS NULL, idempotency_key COLLATE "default" FROM integration.retry_connector_call(%s)',
						 (SELECT v FROM ids WHERE k = 'call_a')),
				  $$VALUES ('pending'::text, 0, true, true, 'b-key-1'::text)$$,
				  'a failed call is retried: pending, due, with its idempotency key');
SELECT results_eq($$SELECT dedupe_expired FROM integration.inbound_events$$, $$VALUES (true)$$,
				  'its completion event no longer counts for deduplication');
SELECT results_eq($$SELECT event FROM integration.integration_logs WHERE event LIKE 'call.%' ORDER BY id$$,
				  $$VALUES ('call.cancelled'::text), ('call.retried')$$, 'both logged');
SELECT throws_ok(format('SELECT integration.retry_connector_call(%s)', -1), 'P0002', NULL, 'no such call');

-- No tenant, no calls.
SET LOCAL integration.tenant_id = '';
SELECT throws_ok(format('SELECT integration.retry_connector_call(%s)', (SELECT v FROM ids WHERE k = 'call_a')),
				 '42501', NULL, 'without a tenant, retry_connector_call() refuses');
SELECT throws_ok(format('SELECT integration.call_connector(%s, %L, %L)', (SELECT v FROM ids WHERE k = 'c_a'), 'GET /x', '{}'),
				 '42501', NULL, 'without a tenant, call_connector() refuses');
SELECT is_empty($$SELECT * FROM integration.connector_calls$$, 'and the table shows nothing');

SELECT * FROM finish();
ROLLBACK;
