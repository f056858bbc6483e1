-- The tenant isolation matrix in pgTAP form, under the app role, rolled back at the end.
BEGIN;
SELECT plan(41);

-- Roles are cluster-wide and may exist already (pg_regress creates them); grants are
-- per database, so they are made here and rolled back with the rest.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_app') THEN
		CREATE ROLE integration_test_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_admin') THEN
		CREATE ROLE integration_test_admin NOLOGIN NOSUPERUSER BYPASSRLS;
	END IF;
END
$$;
GRANT USAGE ON SCHEMA integration TO integration_test_app, integration_test_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO integration_test_app, integration_test_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO integration_test_app, integration_test_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO integration_test_app, integration_test_admin;
SELECT has_role('integration_test_app', 'the app role exists');

-- Fixture, written by each tenant through the API.  Ids are kept in a temp table the app
-- role can read.
CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint);
GRANT ALL ON ids TO integration_test_app, integration_test_admin;
SET LOCAL ROLE integration_test_app;
SET LOCAL integration.tenant_id = 'tap-a';
INSERT INTO ids SELECT 'ep_a', id FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/', events => '["*"]');
INSERT INTO ids SELECT 'd_a', integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_a'), event => 'a.x', payload => '{}');
SET LOCAL integration.tenant_id = 'tap-b';
INSERT INTO ids SELECT 'ep_b', id FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/', events => '["*"]');
INSERT INTO ids SELECT 'd_b', integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_b'), event => 'b.x', payload => '{}');
SELECT is(integration.publish_event(event => 'b.published', payload => '{}'), 1, 'B publishes to its one endpoint');
INSERT INTO ids SELECT 'ev_b', event_id FROM integration.deliveries WHERE id = (SELECT v FROM ids WHERE k = 'd_b');

-- As tenant A.
SET LOCAL integration.tenant_id = 'tap-a';
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('a')$$, 'A lists only its endpoint');
SELECT throws_ok(format('SELECT integration.show_webhook(id => %s)', (SELECT v FROM ids WHERE k = 'ep_b')), 'P0002', NULL, 'A cannot show B''s endpoint');
SELECT throws_ok(format('SELECT integration.update_webhook(id => %s, name => %L)', (SELECT v FROM ids WHERE k = 'ep_b'), 'x'), 'P0002', NULL, 'A cannot update B''s endpoint');
SELECT throws_ok(format('SELECT integration.delete_webhook(id => %s)', (SELECT v FROM ids WHERE k = 'ep_b')), 'P0002', NULL, 'A cannot delete B''s endpoint');
SELECT throws_ok(format('SELECT integration.dispatch_webhook(id => %s, event => %L, payload => %L)', (SELECT v FROM ids WHERE k = 'ep_b'), 'a.x', '{}'), 'P0002', NULL, 'A cannot dispatch to B''s endpoint');
SELECT is_empty($$SELECT * FROM integration.webhook_endpoints WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s webhook_endpoints');
SELECT is_empty($$SELECT * FROM integration.webhook_events WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s webhook_events');
SELECT is_empty($$SELECT * FROM integration.deliveries WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s deliveries');
SELECT is_empty($$SELECT * FROM integration.integration_logs WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s integration_logs');
SELECT is_empty($$SELECT * FROM integration.webhook_deliveries WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s webhook_deliveries');
SELECT is_empty(format('SELECT * FROM integration.list_deliveries(endpoint_id => %s)', (SELECT v FROM ids WHERE k = 'ep_b')), 'list_deliveries shows A nothing of B''s endpoint');
SELECT results_eq($$SELECT event FROM integration.list_deliveries()$$, $$VALUES ('a.x')$$, 'A lists only its delivery');
SELECT throws_ok($$INSERT INTO integration.webhook_endpoints (tenant_id, name, url, events) VALUES ('tap-b', 'p', 'https://p.example.invalid/', '["*"]')$$,
				 '42501', NULL, 'A cannot insert an endpoint for B');
SELECT throws_ok($$INSERT INTO integration.integration_logs (tenant_id, source, event, message) VALUES ('tap-b', 's', 'e', 'm')$$,
				 '42501', NULL, 'A cannot insert a log row for B');
SELECT throws_ok(format('UPDATE integration.webhook_endpoints SET tenant_id = %L WHERE id = %s', 'tap-b', (SELECT v FROM ids WHERE k = 'ep_a')),
				 '42501', NULL, 'A cannot move its endpoint to B');
SELECT is_empty(format('UPDATE integration.webhook_endpoints SET name = %L WHERE id = %s RETURNING id', 'x', (SELECT v FROM ids WHERE k = 'ep_b')),
				'A''s UPDATE of B''s endpoint touches no row');
SELECT is_empty(format('DELETE FROM integration.deliveries WHERE id = %s RETURNING id', (SELECT v FROM ids WHERE k = 'd_b')),
				'A''s DELETE of B''s delivery touches no row');
SELECT throws_ok(format('INSERT INTO integration.deliveries (event_id, endpoint_id) SELECT event_id, %s FROM integration.deliveries WHERE id = %s',
						(SELECT v FROM ids WHERE k = 'ep_b'), (SELECT v FROM ids WHERE k = 'd_a')),
				 '23503', NULL, 'A cannot attach a delivery to B''s endpoint (the reference includes tenant_id)');
SELECT throws_ok(format('INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES (%s, %s)',
						(SELECT v FROM ids WHERE k = 'ev_b'), (SELECT v FROM ids WHERE k = 'ep_a')),
				 '23503', NULL, 'A cannot attach a delivery to B''s event');
SELECT lives_ok(format('INSERT INTO integration.webhook_endpoints (id, name, url, events) OVERRIDING SYSTEM VALUE VALUES (%s, %L, %L, %L)',
					   (SELECT v FROM ids WHERE k = 'ep_b'), 'probe', 'https://a.example.invalid/', '["*"]'),
				'reusing B''s endpoint id as A collides with nothing (keys include tenant_id)');

-- No tenant selected.
SET LOCAL integration.tenant_id = '';
SELECT is_empty($$SELECT * FROM integration.webhook_endpoints$$, 'no tenant: no endpoints visible');
SELECT is_empty($$SELECT * FROM integration.webhook_deliveries$$, 'no tenant: no deliveries visible');
SELECT is_empty($$SELECT * FROM integration.integration_logs$$, 'no tenant: no logs visible');
SELECT throws_ok($$SELECT integration.register_webhook(name => 'x', url => 'https://x.example.invalid/', events => '["*"]')$$,
				 '42501', 'no tenant selected', 'no tenant: register_webhook fails');
SELECT throws_ok($$SELECT integration.publish_event(event => 'x.y', payload => '{}')$$,
				 '42501', 'no tenant selected', 'no tenant: publish_event fails');
SELECT throws_ok($$INSERT INTO integration.webhook_endpoints (tenant_id, name, url, events) VALUES ('tap-a', 'x', 'https://x.example.invalid/', '["*"]')$$,
				 '42501', 'no tenant selected for write to webhook_endpoints', 'no tenant: plain INSERT fails');
SELECT throws_ok($$UPDATE integration.deliveries SET attempts = 0$$,
				 '42501', 'no tenant selected for write to deliveries', 'no tenant: plain UPDATE fails');
SELECT throws_ok($$DELETE FROM integration.integration_logs$$,
				 '42501', 'no tenant selected for write to integration_logs', 'no tenant: plain DELETE fails');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'a b'$$, '22023', NULL, 'a tenant id with a space is refused');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'$$, '22023', NULL, 'a 65-character tenant id is refused');
SELECT is(integration.current_tenant(), NULL, 'a refused SET leaves no tenant');

-- The BYPASSRLS admin and the superuser see both tenants.
SET LOCAL ROLE integration_test_admin;
SELECT results_eq($$SELECT tenant_id::text COLLATE "default", count(*) FROM integration.webhook_endpoints WHERE tenant_id IN ('tap-a', 'tap-b') GROUP BY 1 ORDER BY 1$$,
				  $$VALUES ('tap-a', 2::bigint), ('tap-b', 1::bigint)$$, 'the BYPASSRLS admin sees both tenants'' endpoints');
SELECT results_eq($$SELECT tenant_id::text COLLATE "default", count(*) FROM integration.webhook_deliveries WHERE tenant_id IN ('tap-a', 'tap-b') GROUP BY 1 ORDER BY 1$$,
				  $$VALUES ('tap-a', 1::bigint), ('tap-b', 2::bigint)$$, 'the BYPASSRLS admin sees both tenants'' deliveries');
RESET ROLE;
SELECT results_eq($$SELECT tenant_id::text COLLATE "default", count(*) FROM integration.integration_logs WHERE tenant_id IN ('tap-a', 'tap-b') GROUP BY 1 ORDER BY 1$$,
				  $$VALUES ('tap-a', 2::bigint), ('tap-b', 2::bigint)$$, 'the superuser sees both tenants'' logs (publishing writes none)');

-- Catalog: forced row-level security, no unlogged table.  The catalogue of connector
-- kinds is not tenant data: read by all, written by superusers (test/pgtap/connectors.sql).
SELECT is_empty($$SELECT relname FROM pg_class WHERE relnamespace = 'integration'::regnamespace AND relkind IN ('r', 'p')
				   AND relname <> 'connector_kinds'
				   AND NOT (relrowsecurity AND relforcerowsecurity)$$, 'every table but connector_kinds has forced row-level security');
SELECT is_empty($$SELECT relname FROM pg_class WHERE relnamespace = 'integration'::regnamespace AND relkind IN ('r', 'p')
				   AND relpersistence <> 'p'$$, 'no table is unlogged or temporary');
SELECT policies_are('integration', t, ARRAY['tenant_isolation'], format('%s has the tenant_isolation policy', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries']::name[]) t;

SELECT * FROM finish();
ROLLBACK;
