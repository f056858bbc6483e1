-- Connectors: the catalogue of kinds and its checks, a kind written only in SQL by a
-- user, the connector API with its errors, and receive_webhook(): accepted, duplicate,
-- rejected with a log row that says why and quotes no secret.  Secrets and times vary
-- from run to run: they are compared, never printed.
\set SHOW_CONTEXT never
ALTER TABLE integration.connectors ALTER COLUMN id RESTART WITH 1001;
ALTER TABLE integration.inbound_events ALTER COLUMN id RESTART WITH 1001;

-- Helpers for the adapters below.
SELECT integration.header('{"Webhook-ID": "a", "other": 1}', 'webhook-id') AS any_case,
	   integration.header('{"a": "1", "A": "2"}', 'a') IS NULL AS twice_is_null,
	   integration.header('{"a": 1}', 'a') IS NULL AS not_a_string,
	   integration.header('[]', 'a') IS NULL AS not_an_object;
SELECT integration.try_jsonb('{"a": [1, 2]}') AS json, integration.try_jsonb('{"a": ') IS NULL AS broken,
	   integration.try_jsonb('"\u0000"') IS NULL AS nul_escape, integration.try_jsonb('"\\u0000"') AS escaped_backslash;
-- One parse, the cast's result: scalars alone, nesting, duplicate keys; not JSON: NULL.
SELECT count(*) AS valid, count(*) FILTER (WHERE integration.try_jsonb(t) = t::jsonb) AS as_cast
  FROM unnest(ARRAY['3', '"x"', 'null', 'true', ' [1, {"b": [false, null, "\u00e9\n"]}, -1.5e3] ',
					'{"k": {}, "a": [], "a": 2}', '-0.50']) AS t;
SELECT t, integration.try_jsonb(t) IS NULL AS is_null
  FROM unnest(ARRAY['', ' ', '[1,', '{"a" 1}', 'nul', '[1] 2', '{"a": "\u0000"}']) AS t;
-- The one masking rule (src/secret_mask.c): eight stars, after a whsec_ prefix, then
-- the last four characters only of a value of 16 characters (not bytes) or more; the
-- credentials' listing masks each value by the same rule, prefix included.
SELECT s, integration.mask_secret(s) AS masked
  FROM unnest(ARRAY['', 'abc', 'whsec', 'whsec_', 'whsec_short', '123456789012345',
					'1234567890123456', 'whsec_0123456789abcdef', 'ééééééééééééééé',
					'éééééééééééééé€1']) AS s;
SELECT integration._mask_credentials('{"a": "whsec_0123456789abcdef", "b": "short"}', 'nobody', 0)
	   AS credentials_masked;

------------------------------------------------------------------------------------------
-- The catalogue: the generic kind ships (the platform kinds: platform_kinds.sql);
-- everyone reads it; only superusers write it.
------------------------------------------------------------------------------------------
SELECT name, auth, signature_scheme, verify_function, normalise_function,
	   build_request_function, interpret_response_function
  FROM integration.connector_kinds WHERE name = 'generic';

-- A kind written in SQL by a user: functions of an ordinary role, registered by a
-- superuser.  Webhooks signed as GitHub signs them (X-Hub-Signature-256); the topic in
-- a header; a body that is one event or an array of them; no id: a hash of the body.
SET ROLE integration_test_app;
CREATE FUNCTION public.acme_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$
	SELECT e ->> 'id', integration.header(headers, 'x-acme-topic'), e ->> 'order', e
	  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body::jsonb) = 'array' THEN body::jsonb
									 ELSE jsonb_build_array(body::jsonb) END) AS e
$$;
CREATE FUNCTION public.acme_build(c integration.connector_context, operation text, payload jsonb,
								  idempotency_key text)
	RETURNS integration.connector_request LANGUAGE sql STABLE
AS $$ SELECT 'GET', '/ping', NULL::jsonb, NULL::jsonb, NULL::text $$;
CREATE FUNCTION public.acme_interpret(c integration.connector_context, operation text, status integer,
									  headers jsonb, body text)
	RETURNS integration.connector_outcome LANGUAGE sql STABLE
AS $$ SELECT CASE WHEN status = 200 THEN 'succeeded' ELSE 'failed' END, NULL::interval, NULL::jsonb, NULL::text $$;
-- A shared-token "signature" checked by the kind's own verify function.
CREATE FUNCTION public.token_verify(c integration.connector_context, secret text, headers jsonb,
									body text, tolerance interval)
	RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT integration.header(headers, 'x-token') = secret $$;
CREATE FUNCTION public.wrong_normalise(headers jsonb, body text) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION public.table_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS TABLE (external_id text, topic text, object_id text, payload jsonb)
	LANGUAGE sql AS $$ SELECT NULL, NULL, NULL, NULL::jsonb $$;
CREATE PROCEDURE public.proc_build(c integration.connector_context, operation text, payload jsonb,
								   idempotency_key text)
	LANGUAGE sql AS $$ SELECT 1 $$;

-- Not a superuser: the kinds are read, never written.
SELECT count(*) > 0 AS app_reads_kinds FROM integration.connector_kinds;
SELECT integration.register_connector_kind('acme', 'bearer', 'github', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.connector_kinds (name, auth, signature_scheme, normalise_function)
VALUES ('sneaky', 'none', 'none', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.connector_kinds SET auth = 'none' WHERE name = 'generic';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM integration.connector_kinds;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Adapters are checked when the kind is registered.
SELECT integration.register_connector_kind('bad', 'none', 'none', normalise => 'public.wrong_normalise(jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'none', normalise => 'public.table_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'none',
	build_request => 'public.proc_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'public.acme_interpret(integration.connector_context, text, integer, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'none',
	build_request => 'public.acme_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'public.acme_build(integration.connector_context, text, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'adapter',
	normalise => 'public.acme_normalise(integration.connector_context, jsonb, text)',
	verify => 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
-- And the kind itself.
SELECT integration.register_connector_kind('Bad', 'none', 'none', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'token', 'none', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'ebay', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'adapter', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'none',
	build_request => 'public.acme_build(integration.connector_context, text, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('bad', 'none', 'none');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('generic', 'none', 'none', 'public.acme_normalise(integration.connector_context, jsonb, text)');
\echo :LAST_ERROR_SQLSTATE

SELECT name, auth, signature_scheme, normalise_function
  FROM integration.register_connector_kind('acme', 'header:X-Acme-Key', 'github',
	normalise => 'public.acme_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.acme_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'public.acme_interpret(integration.connector_context, text, integer, jsonb, text)',
	description => 'A platform of our own');
SELECT name, signature_scheme, verify_function
  FROM integration.register_connector_kind('tokenhook', 'none', 'adapter',
	normalise => 'public.acme_normalise(integration.connector_context, jsonb, text)',
	verify => 'public.token_verify(integration.connector_context, text, jsonb, text, interval)');
SELECT name, auth FROM integration.register_connector_kind('tokenhook', 'basic', 'adapter',
	normalise => 'public.acme_normalise(integration.connector_context, jsonb, text)',
	verify => 'public.token_verify(integration.connector_context, text, jsonb, text, interval)',
	replace => true);

------------------------------------------------------------------------------------------
-- The connector API, as the app role.
------------------------------------------------------------------------------------------
SET ROLE integration_test_app;
SET integration.tenant_id = 'con-a';

SELECT id, kind, name, base_url, settings, credentials, inbound_secret, is_active
  FROM integration.create_connector('generic', 'shop', 'https://api.example.invalid/v1/',
	'{"token": "gen-token-0123456789abcdef"}', '{"test_path": "/health"}',
	'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT id, kind, name, credentials, inbound_secret
  FROM integration.create_connector(kind => 'acme', name => 'acme', base_url => 'https://acme.example.invalid',
	credentials => '{"token": "short"}', inbound_secret => 'It''s a Secret to Everybody');
SELECT id, kind, credentials, inbound_secret
  FROM integration.create_connector(kind => 'tokenhook', name => 'tokens', base_url => NULL,
	credentials => '{"username": "u", "password": "p"}', inbound_secret => 'tok-current');
-- Credentials and secrets are stored encrypted (test/regress.conf sets a key).
SELECT name, integration.secret_key_id(credentials) IS NOT NULL AS credentials_encrypted,
	   integration.secret_key_id(inbound_secret) IS NOT NULL AS secret_encrypted,
	   strpos(credentials, 'gen-token') = 0 AND strpos(inbound_secret, 'MfKQ9r8') = 0 AS nothing_plain
  FROM integration.connectors ORDER BY id;
SELECT id, name, credentials, inbound_secret FROM integration.list_connectors();
SELECT name, credentials FROM integration.show_connector(1002);

-- Errors.
SELECT integration.create_connector('nosuch', 'x', 'https://x.example.invalid', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', ' ', 'https://x.example.invalid', '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'shop', 'https://x.example.invalid', '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid/?key=abc', '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://10.1.2.3/api', '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'ftp://x.example.invalid', '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', NULL, '{"token": "t"}');
\echo :LAST_ERROR_SQLSTATE
-- Credential errors name keys, never values.
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"password": "hunter2-secret"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": 12345}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '["hunter2-secret"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('tokenhook', 'x', NULL, '{"username": "u"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": "t"}', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": "t"}', '{}', 'whsec_not-base64-hunter2');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'x', 'https://x.example.invalid', '{"token": "t"}', dedupe_window => '0');
\echo :LAST_ERROR_SQLSTATE
-- Plain SQL is held to the same rules, and never shown the value.
INSERT INTO integration.connectors (kind, name, credentials) VALUES ('generic', 'raw', 'hunter2-not-json');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.connectors (kind, name, base_url) VALUES ('generic', 'raw', 'https://x.example.invalid/?q');
\echo :LAST_ERROR_SQLSTATE

-- update_connector: only the given fields; each change logged by name, with no value.
SELECT name, base_url, credentials, settings, dedupe_window, is_active
  FROM integration.update_connector(1001, credentials => '{"token": "gen-token-new-value-9876"}',
									settings => '{"test_path": "/v2/health"}', dedupe_window => '1 day');
SELECT name FROM integration.update_connector(1001);
SELECT integration.update_connector(1001, base_url => 'https://10.0.0.1');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(1001, credentials => '{"user": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(1001, name => 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(-1, name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.show_connector(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.delete_connector(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.test_connector(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.test_connector(1003);
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------------------
-- receive_webhook: the generic kind (Standard Webhooks).
------------------------------------------------------------------------------------------
SELECT '{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ord_1","total":"9.50"}}' AS body1 \gset
SELECT integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'body1', 'msg_one') AS h1 \gset
SELECT * FROM integration.receive_webhook(1001, :'h1', :'body1');
-- The same delivery again (a platform's retry): stored once.
SELECT * FROM integration.receive_webhook(1001, :'h1', :'body1');
-- Svix spells the headers svix-*: the same message id, so a duplicate.
SELECT * FROM integration.receive_webhook(1001,
	(SELECT jsonb_object_agg(replace(key, 'webhook-', 'svix-'), value) FROM jsonb_each(:'h1'::jsonb)), :'body1');
SELECT id, connector_id, external_id, object_id, topic, event, payload, status, attempts,
	   next_attempt_at = received_at AS due_at_receipt, last_error, dedupe_expired
  FROM integration.inbound_events ORDER BY id;

-- Rejected: each with its reason in the log, and nothing stored.
SELECT * FROM integration.receive_webhook(1001, :'h1', :'body1' || ' ');
SELECT * FROM integration.receive_webhook(1001, '{"content-type": "application/json"}', :'body1');
SELECT * FROM integration.receive_webhook(1001,
	integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'body1', 'msg_old',
					 extract(epoch FROM now())::bigint - 301), :'body1');
SELECT * FROM integration.receive_webhook(1001,
	integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'not json', 'msg_nj'), 'not json');
SELECT * FROM integration.receive_webhook(1001,
	integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '{"data":{}}', 'msg_nt'), '{"data":{}}');
SELECT * FROM integration.receive_webhook(1001,
	integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '{"type":"a b"}', 'msg_sp'), '{"type":"a b"}');
SELECT * FROM integration.receive_webhook(1001, :'h1', NULL);
SELECT * FROM integration.receive_webhook(NULL, :'h1', :'body1');
SELECT * FROM integration.receive_webhook(1001, '[]', :'body1');
SELECT * FROM integration.receive_webhook(999999, :'h1', :'body1');
SELECT level, message, context - 'header_names' AS context, context -> 'header_names' AS header_names
  FROM integration.integration_logs WHERE event = 'inbound.rejected' ORDER BY id;
SELECT count(*) AS rows_quoting_a_secret_or_signature FROM integration.integration_logs
 WHERE strpos(message || context::text, 'MfKQ9r8') > 0 OR strpos(message || context::text, 'gen-token') > 0
	OR strpos(message || context::text, split_part(:'h1'::jsonb ->> 'webhook-signature', ',', 2)) > 0;
SELECT count(*) AS events_stored FROM integration.inbound_events;

-- Tolerance is a setting.
SET integration.inbound_tolerance = '10min';
SELECT status FROM integration.receive_webhook(1001,
	integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'body1', 'msg_old',
					 extract(epoch FROM now())::bigint - 301), :'body1');
RESET integration.inbound_tolerance;

-- The dedupe window: a delivery id older than it is a new event, stored again.
UPDATE integration.inbound_events SET received_at = now() - interval '2 days' WHERE external_id = 'msg_one';
SELECT status, inbound_id FROM integration.receive_webhook(1001, :'h1', :'body1');
SELECT id, external_id, dedupe_expired FROM integration.inbound_events WHERE external_id = 'msg_one' ORDER BY id;
SELECT status, inbound_id FROM integration.receive_webhook(1001, :'h1', :'body1');

------------------------------------------------------------------------------------------
-- receive_webhook: the kind written in SQL (GitHub-style signature, batches, no ids).
------------------------------------------------------------------------------------------
SELECT '[{"id": "e-1", "order": "o-7", "n": 1}, {"id": "e-2", "order": "o-7", "n": 2}]' AS batch \gset
SELECT integration.sign('github', 'It''s a Secret to Everybody', :'batch')
	|| '{"X-Acme-Topic": "orders/paid"}' AS hb \gset
SELECT * FROM integration.receive_webhook(1002, :'hb', :'batch');
SELECT * FROM integration.receive_webhook(1002, :'hb', :'batch');
SELECT '{"order": "o-8"}' AS noid \gset
SELECT integration.sign('github', 'It''s a Secret to Everybody', :'noid') || '{"X-Acme-Topic": "orders/create"}' AS hn \gset
SELECT status, event FROM integration.receive_webhook(1002, :'hn', :'noid');
SELECT status, event FROM integration.receive_webhook(1002, :'hn', :'noid');
SELECT external_id = 'sha256:' || encode(sha256(convert_to(:'noid', 'UTF8')), 'hex') AS id_is_body_hash,
	   object_id, event FROM integration.inbound_events WHERE connector_id = 1002 AND object_id = 'o-8';
-- An empty batch verifies and stores nothing.
SELECT * FROM integration.receive_webhook(1002,
	integration.sign('github', 'It''s a Secret to Everybody', '[]') || '{"X-Acme-Topic": "x"}', '[]');
-- The order of one object's events is the order received.
SELECT id, external_id, object_id, event, payload ->> 'n' AS n
  FROM integration.inbound_events WHERE connector_id = 1002 AND object_id = 'o-7' ORDER BY id;

------------------------------------------------------------------------------------------
-- Inbound secret rotation: both verify during the grace period.
------------------------------------------------------------------------------------------
SELECT '{"k": 1}' AS tb \gset
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-current", "X-Acme-Topic": "t"}', :'tb');
SELECT inbound_secret, previous_secret_expires_at > now() + interval '59 minutes' AS grace_ends_in_an_hour
  FROM integration.rotate_inbound_secret(1003, 'tok-next-value-0001', grace => '1 hour');
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-current", "X-Acme-Topic": "t"}', '{"k": 2}');
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-next-value-0001", "X-Acme-Topic": "t"}', '{"k": 3}');
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-wrong", "X-Acme-Topic": "t"}', '{"k": 4}');
SELECT integration.secret_key_id(previous_inbound_secret) IS NOT NULL AS previous_encrypted
  FROM integration.connectors WHERE id = 1003;
-- The grace period over, only the new one.
UPDATE integration.connectors SET previous_secret_expires_at = now() - interval '1 second' WHERE id = 1003;
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-current", "X-Acme-Topic": "t"}', '{"k": 5}');
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-next-value-0001", "X-Acme-Topic": "t"}', '{"k": 6}');
-- Without grace, the old secret stops at once.
SELECT previous_secret_expires_at FROM integration.rotate_inbound_secret(1003, 'tok-third', grace => '0');
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-next-value-0001", "X-Acme-Topic": "t"}', '{"k": 7}');
SELECT integration.rotate_inbound_secret(1001, 'whsec_short');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.rotate_inbound_secret(1003, 'x', grace => '-1 hour');
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------------------
-- Disabled and deleted connectors receive nothing.
------------------------------------------------------------------------------------------
SELECT is_active FROM integration.update_connector(1003, is_active => false);
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-third", "X-Acme-Topic": "t"}', '{"k": 8}');
SELECT integration.delete_connector(1003);
SELECT integration._mask_credentials(credentials, tenant_id, id) = '{}' AS credentials_erased, inbound_secret IS NULL AS secret_erased, deleted_at IS NOT NULL AS deleted
  FROM integration.connectors WHERE id = 1003;
SELECT status FROM integration.receive_webhook(1003, '{"X-Token": "tok-third", "X-Acme-Topic": "t"}', '{"k": 9}');
SELECT name FROM integration.list_connectors();
SELECT integration.delete_connector(1003);
\echo :LAST_ERROR_SQLSTATE
-- Its events stay.
SELECT count(*) AS events_kept FROM integration.inbound_events WHERE connector_id = 1003;

-- Every change wrote a log row, and none of them holds a secret.
SELECT event, message, context - 'previous_valid_until' AS context,
	   context -> 'previous_valid_until' IS NOT NULL AS previous_valid_until_given
  FROM integration.integration_logs WHERE source = 'api' ORDER BY id;
SELECT count(*) AS log_rows_with_secrets FROM integration.integration_logs
 WHERE message || context::text ~ '(gen-token|MfKQ9r8|Secret to Everybody|tok-current|tok-next|tok-third|hunter2)';
SELECT reason, count(*) FROM (SELECT context ->> 'reason' AS reason FROM integration.integration_logs
							  WHERE event = 'inbound.rejected') r GROUP BY 1 ORDER BY 1;
RESET ROLE;

SELECT integration.unregister_connector_kind('tokenhook');
\echo :LAST_ERROR_SQLSTATE

-- reencrypt_secrets() covers the connectors' columns: a value written past the trigger
-- (as a restore with session_replication_role = replica does) is found and encrypted.
SET session_replication_role = replica;
UPDATE integration.connectors SET credentials = '{"token": "restored-plain-token"}' WHERE id = 1002;
RESET session_replication_role;
SELECT integration.secret_key_id(credentials) IS NULL AS plain_before FROM integration.connectors WHERE id = 1002;
SELECT integration.reencrypt_secrets() AS reencrypted;
SELECT integration.secret_key_id(credentials) IS NOT NULL AS encrypted_after,
	   integration._mask_credentials(credentials, tenant_id, id) AS masked
  FROM integration.connectors WHERE id = 1002;
-- Credentials are masked value by value: mask_stored_secret() would show the end of
-- the JSON object, the last value's last characters whatever its length.
SELECT integration.mask_stored_secret(credentials, 'connectors.credentials', tenant_id, id::text)
  FROM integration.connectors WHERE id = 1002;
\echo :LAST_ERROR_SQLSTATE
-- Nor mask_stored_secrets(), whose key would stand for the last part of the identity.
SELECT integration.mask_stored_secrets(jsonb_build_object(id::text, credentials), 'connectors.credentials', tenant_id)
  FROM integration.connectors WHERE id = 1002;
\echo :LAST_ERROR_SQLSTATE

-- A kind no connector uses can go.
SELECT (integration.register_connector_kind('spare', 'none', 'none', 'public.acme_normalise(integration.connector_context, jsonb, text)')).name AS registered;
SELECT integration.unregister_connector_kind('spare'), integration.unregister_connector_kind('spare');
