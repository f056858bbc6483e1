-- Tenant isolation of connectors and inbound events, and who may write the catalogue of
-- kinds, in pgTAP form under the app role, rolled back at the end.
BEGIN;
SELECT plan(38);

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

CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint, t text);
GRANT ALL ON ids TO integration_test_app;
SET LOCAL ROLE integration_test_app;

-- Each tenant creates a connector, and B receives one webhook.
SET LOCAL integration.tenant_id = 'tap-a';
INSERT INTO ids (k, v) SELECT 'c_a', id FROM integration.create_connector('generic', 'a', 'https://a.example.invalid',
	'{"token": "token-of-tenant-a-0001"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SET LOCAL integration.tenant_id = 'tap-b';
INSERT INTO ids (k, v) SELECT 'c_b', id FROM integration.create_connector('generic', 'b', 'https://b.example.invalid',
	'{"token": "token-of-tenant-b-0002"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
INSERT INTO ids (k, t) VALUES ('body', '{"type":"order.created","data":{"id":1}}');
INSERT INTO ids (k, t) SELECT 'headers', integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
	(SELECT t FROM ids WHERE k = 'body'), 'msg_b1')::text;
SELECT is((SELECT status FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_b'),
			(SELECT t::jsonb FROM ids WHERE k = 'headers'), (SELECT t FROM ids WHERE k = 'body'))),
		  'accepted', 'B receives into its own connector');

-- As tenant A: B's connector does not exist.
SET LOCAL integration.tenant_id = 'tap-a';
SELECT results_eq($$SELECT name FROM integration.list_connectors()$$, $$VALUES ('a')$$, 'A lists only its connector');
SELECT throws_ok(format('SELECT integration.show_connector(%s)', (SELECT v FROM ids WHERE k = 'c_b')), 'P0002', NULL, 'A cannot show B''s connector');
SELECT throws_ok(format('SELECT integration.update_connector(%s, name => %L)', (SELECT v FROM ids WHERE k = 'c_b'), 'x'), 'P0002', NULL, 'A cannot update B''s connector');
SELECT throws_ok(format('SELECT integration.rotate_inbound_secret(%s, %L)', (SELECT v FROM ids WHERE k = 'c_b'), 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), 'P0002', NULL, 'A cannot rotate B''s secret');
SELECT throws_ok(format('SELECT integration.delete_connector(%s)', (SELECT v FROM ids WHERE k = 'c_b')), 'P0002', NULL, 'A cannot delete B''s connector');
SELECT throws_ok(format('SELECT integration.test_connector(%s)', (SELECT v FROM ids WHERE k = 'c_b')), 'P0002', NULL, 'A cannot call B''s connector');
SELECT is((SELECT status FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_b'),
			(SELECT t::jsonb FROM ids WHERE k = 'headers'), (SELECT t FROM ids WHERE k = 'body'))),
		  'rejected', 'A cannot receive into B''s connector, even with B''s signed request');
SELECT is((SELECT context ->> 'reason' FROM integration.integration_logs WHERE event = 'inbound.rejected'),
		  'connector_not_found', 'and A''s log says the connector was not found');
SELECT is_empty($$SELECT * FROM integration.connectors WHERE tenant_id <> 'tap-a'$$, 'A sees no other tenant''s connectors');
SELECT is_empty($$SELECT * FROM integration.inbound_events$$, 'A sees no inbound events: B''s are B''s');
SELECT is_empty($$SELECT * FROM integration.list_inbound_events()$$, 'list_inbound_events shows A nothing');
SELECT is_empty(format('UPDATE integration.connectors SET name = %L WHERE id = %s RETURNING id', 'x', (SELECT v FROM ids WHERE k = 'c_b')),
				'A''s UPDATE of B''s connector touches no row');
SELECT is_empty($$UPDATE integration.inbound_events SET status = 'skipped' RETURNING id$$, 'A''s UPDATE of inbound events touches none of B''s');
SELECT is_empty(format('DELETE FROM integration.connectors WHERE id = %s RETURNING id', (SELECT v FROM ids WHERE k = 'c_b')),
				'A''s DELETE of B''s connector touches no row');
SELECT throws_ok($$INSERT INTO integration.connectors (tenant_id, kind, name) VALUES ('tap-b', 'generic', 'p')$$,
				 '42501', NULL, 'A cannot insert a connector for B');
SELECT throws_ok(format($$INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload)
						  VALUES ('tap-b', %s, 'forged', 't', 'generic.t', '{}')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '42501', NULL, 'A cannot insert an inbound event for B');
SELECT throws_ok(format($$INSERT INTO integration.inbound_events (connector_id, external_id, topic, event, payload)
						  VALUES (%s, 'forged', 't', 'generic.t', '{}')$$, (SELECT v FROM ids WHERE k = 'c_b')),
				 '23503', NULL, 'nor an event of its own on B''s connector');
SELECT throws_ok(format('UPDATE integration.connectors SET tenant_id = %L WHERE id = %s', 'tap-b', (SELECT v FROM ids WHERE k = 'c_a')),
				 '42501', NULL, 'A cannot move its connector to B');

-- A's credentials go only to the server they were given for: a base_url moved elsewhere
-- would send them to whoever runs it, so the move takes them again.
SELECT throws_ok(format('SELECT integration.update_connector(%s, base_url => %L)', (SELECT v FROM ids WHERE k = 'c_a'), 'https://collector.example.invalid'),
				 '22023', format('connector %s cannot move to another server, kind or identity without its credentials', (SELECT v FROM ids WHERE k = 'c_a')),
				 'A cannot move its base_url to another host without giving the credentials again');
SELECT throws_ok(format('UPDATE integration.connectors SET base_url = %L WHERE id = %s', 'https://a.example.invalid:8443', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', NULL, 'nor to another port, with plain DML');
SELECT throws_ok(format('UPDATE integration.connectors SET base_url = %L, credentials = credentials WHERE id = %s', 'http://a.example.invalid', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', NULL, 'nor to another scheme, the stored credentials copied along');
SELECT is((SELECT base_url FROM integration.connectors WHERE id = (SELECT v FROM ids WHERE k = 'c_a')), 'https://a.example.invalid',
		  'the base_url stayed');
-- Nor around the rule: "given again" is decided before the credentials are encrypted.
SELECT throws_ok(format('UPDATE integration.connectors SET id = DEFAULT WHERE id = %s', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', NULL, 'nor under a new id, which would encrypt the stored credentials again for it');
SELECT throws_ok(format('UPDATE integration.connectors SET base_url = %L, credentials = %L WHERE id = %s',
						'https://collector.example.invalid', 'enc:v1:another-spelling', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', NULL, 'nor with a ciphertext written back in another spelling');
SELECT throws_ok(format('UPDATE integration.connectors SET kind = %L WHERE id = %s', 'shopify', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', NULL, 'nor to another kind');
SELECT throws_ok(format($$INSERT INTO integration.connectors (kind, name, base_url, credentials)
						  SELECT kind, 'copy', %L, credentials FROM integration.connectors WHERE id = %s$$,
						'https://collector.example.invalid', (SELECT v FROM ids WHERE k = 'c_a')),
				 '22023', 'the credentials of a new connector cannot be an encrypted value',
				 'nor inserted again elsewhere with the stored ciphertext');
SELECT lives_ok(format('SELECT integration.update_connector(%s, base_url => %L)', (SELECT v FROM ids WHERE k = 'c_a'), 'https://A.example.invalid/v2'),
				'a new path on the same server keeps the credentials');
SELECT lives_ok(format('SELECT integration.update_connector(%s, base_url => %L, credentials => %L)', (SELECT v FROM ids WHERE k = 'c_a'),
					   'https://collector.example.invalid', '{"token": "token-for-the-new-server-03"}'),
				'with the credentials given again, the base_url moves');
SELECT is((SELECT base_url FROM integration.connectors WHERE id = (SELECT v FROM ids WHERE k = 'c_a')), 'https://collector.example.invalid',
		  'to the new server');

-- As tenant B: its event is there, and A's request left nothing.
SET LOCAL integration.tenant_id = 'tap-b';
SELECT results_eq($$SELECT external_id, event FROM integration.inbound_events$$,
				  $$VALUES ('msg_b1', 'generic.order.created')$$, 'B has its one event');
SELECT is_empty($$SELECT * FROM integration.integration_logs WHERE event = 'inbound.rejected'$$, 'B''s log has no rejection');

-- No tenant: nothing.
RESET integration.tenant_id;
SELECT throws_ok('SELECT * FROM integration.list_connectors()', '42501', NULL, 'without a tenant, list_connectors() refuses');
SELECT throws_ok('SELECT * FROM integration.receive_webhook(1, ''{}'', ''{}'')', '42501', NULL, 'and receive_webhook() refuses');

-- The catalogue of kinds: read by all, written by superusers only.
SELECT ok((SELECT count(*) FROM integration.connector_kinds WHERE name = 'generic') = 1, 'the app role reads the kinds');
SELECT throws_ok($$INSERT INTO integration.connector_kinds (name, auth, signature_scheme, normalise_function)
				   VALUES ('x', 'none', 'none', 'integration.generic_normalise(integration.connector_context, jsonb, text)')$$,
				 '42501', NULL, 'the app role cannot add a kind, whatever it was granted');
SELECT throws_ok($$UPDATE integration.connector_kinds SET signature_scheme = 'none'$$, '42501', NULL, 'nor weaken one');
SELECT throws_ok($$SELECT integration.register_connector_kind('x', 'none', 'none', 'integration.generic_normalise(integration.connector_context, jsonb, text)')$$,
				 '42501', NULL, 'nor register one');

SELECT * FROM finish();
ROLLBACK;
