-- Tenant isolation of the sync objects (sql/sync.sql): external_records, sync_streams,
-- the sync_state view and sync_now(), in pgTAP form under the app role, rolled back at
-- the end.  Each tenant has a shopify connector (streams orders, customers, products)
-- with a synced record; A then tries to see and touch B's.
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

-- Each tenant's connector and one record of its orders stream, written as the tenant.
SET LOCAL integration.tenant_id = 'tap-a';
INSERT INTO ids SELECT 'c_a', id FROM integration.create_connector('shopify', 'a', 'https://a.myshopify.example',
	'{"access_token": "shpat_a000000000000000000a"}', '{}', 'shopify-secret-a');
INSERT INTO integration.external_records (connector_id, stream, external_id, external_updated_at, payload, content_hash, source)
SELECT v, 'orders', 'a-1', '2025-01-01', '{"id": "a-1"}', sha256('a'), 'pull' FROM ids WHERE k = 'c_a';
SET LOCAL integration.tenant_id = 'tap-b';
INSERT INTO ids SELECT 'c_b', id FROM integration.create_connector('shopify', 'b', 'https://b.myshopify.example',
	'{"access_token": "shpat_b000000000000000000b"}', '{}', 'shopify-secret-b');
INSERT INTO integration.external_records (connector_id, stream, external_id, external_updated_at, payload, content_hash, source)
SELECT v, 'orders', 'b-1', '2025-01-01', '{"id": "b-1"}', sha256('b'), 'pull' FROM ids WHERE k = 'c_b';
SELECT results_eq($$SELECT stream::text COLLATE "default", status FROM integration.sync_state ORDER BY 1$$,
				  $$VALUES ('customers', 'idle'), ('orders', 'idle'), ('products', 'idle')$$,
				  'B sees its own three streams, idle');

-- As tenant A.
SET LOCAL integration.tenant_id = 'tap-a';
SELECT is_empty($$SELECT * FROM integration.external_records WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s external_records');
SELECT results_eq($$SELECT external_id::text COLLATE "default" FROM integration.external_records$$, $$VALUES ('a-1')$$, 'A sees its own record');
SELECT is_empty($$SELECT * FROM integration.sync_streams WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s sync_streams');
SELECT is_empty($$SELECT * FROM integration.sync_state WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s sync_state');
SELECT results_eq($$SELECT count(*) FROM integration.sync_state$$, $$VALUES (3::bigint)$$, 'A''s sync_state has its three streams');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'integration.sync_state'::regclass), '{security_invoker=true}',
		  'sync_state runs with the caller''s row-level security');

-- sync_now() of B's connector: not found, as show_connector(); nothing started.
SELECT throws_ok(format('SELECT * FROM integration.sync_now(%s)', (SELECT v FROM ids WHERE k = 'c_b')),
				 'P0002', NULL, 'A cannot start B''s sync');
SELECT throws_ok(format('SELECT * FROM integration.sync_now(%s, %L)', (SELECT v FROM ids WHERE k = 'c_b'), 'orders'),
				 'P0002', NULL, 'A cannot start one of B''s streams');
SELECT is_empty($$SELECT * FROM integration.connector_calls$$, 'A''s attempts queued no call');
SELECT results_eq(format('SELECT stream::text COLLATE "default", status FROM integration.sync_now(%s, %L)', (SELECT v FROM ids WHERE k = 'c_a'), 'orders'),
				  $$VALUES ('orders', 'running')$$, 'A starts its own stream');

-- Writes: B's rows are out of reach, and a row of A's cannot name B or B's connector.
SELECT is_empty($$UPDATE integration.external_records SET payload = '{}' WHERE tenant_id = 'tap-b' RETURNING external_id$$,
				'A''s UPDATE of B''s external_records touches no row');
SELECT is_empty($$DELETE FROM integration.external_records WHERE external_id = 'b-1' RETURNING external_id$$,
				'A''s DELETE of B''s external_records touches no row');
SELECT is_empty(format('UPDATE integration.sync_streams SET next_run_at = now() WHERE connector_id = %s RETURNING stream', (SELECT v FROM ids WHERE k = 'c_b')),
				'A''s UPDATE of B''s sync_streams touches no row');
SELECT is_empty(format('DELETE FROM integration.sync_streams WHERE connector_id = %s RETURNING stream', (SELECT v FROM ids WHERE k = 'c_b')),
				'A''s DELETE of B''s sync_streams touches no row');
SELECT throws_ok(format($$INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id, external_updated_at, payload, content_hash, source)
						  VALUES ('tap-b', %s, 'orders', 'x', now(), '{}', sha256('x'), 'pull')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '42501', NULL, 'A cannot insert a record for B');
SELECT throws_ok(format($$INSERT INTO integration.external_records (connector_id, stream, external_id, external_updated_at, payload, content_hash, source)
						  VALUES (%s, 'orders', 'x', now(), '{}', sha256('x'), 'pull')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '23503', NULL, 'A cannot insert a record of its own into B''s connector (the reference includes tenant_id)');
SELECT throws_ok($$UPDATE integration.external_records SET tenant_id = 'tap-b'$$,
				 '42501', NULL, 'A cannot move its record to B');
SELECT throws_ok(format($$INSERT INTO integration.sync_streams (tenant_id, connector_id, stream) VALUES ('tap-b', %s, 'extra')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '42501', NULL, 'A cannot insert a stream for B');
SELECT throws_ok(format($$INSERT INTO integration.sync_streams (connector_id, stream) VALUES (%s, 'extra')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '23503', NULL, 'A cannot add a stream of its own to B''s connector');
SELECT throws_ok($$UPDATE integration.sync_streams SET tenant_id = 'tap-b'$$,
				 '42501', NULL, 'A cannot move its streams to B');

-- B's rows are as B left them.
SET LOCAL integration.tenant_id = 'tap-b';
SELECT results_eq($$SELECT external_id::text COLLATE "default", payload FROM integration.external_records$$, $$VALUES ('b-1', '{"id": "b-1"}'::jsonb)$$,
				  'B''s record is untouched');
SELECT results_eq($$SELECT stream::text COLLATE "default", status, next_run_at > now() FROM integration.sync_streams ORDER BY 1$$,
				  $$VALUES ('customers', 'idle', true), ('orders', 'idle', true), ('products', 'idle', true)$$,
				  'B''s streams are untouched: idle, scheduled as they were');

-- No tenant selected: nothing visible, sync_now() refused.
SET LOCAL integration.tenant_id = '';
SELECT is_empty($$SELECT * FROM integration.external_records$$, 'no tenant: no external_records visible');
SELECT is_empty($$SELECT * FROM integration.sync_streams$$, 'no tenant: no sync_streams visible');
SELECT is_empty($$SELECT * FROM integration.sync_state$$, 'no tenant: no sync_state visible');
SELECT throws_ok(format('SELECT * FROM integration.sync_now(%s)', (SELECT v FROM ids WHERE k = 'c_a')),
				 '42501', 'no tenant selected', 'no tenant: sync_now fails');
RESET ROLE;

SELECT policies_are('integration', t, ARRAY['tenant_isolation'], format('%s has the tenant_isolation policy', t))
  FROM unnest(ARRAY['external_records', 'sync_streams']::name[]) t;

SELECT * FROM finish();
ROLLBACK;
