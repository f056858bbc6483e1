-- The SQL API called the way an application calls it: as the app role (row-level
-- security applies), with named arguments, with the tenant selected per transaction or
-- per session.  Ids, secrets and timestamps vary from run to run: they are captured with
-- \gset and compared, never printed.
\set SHOW_CONTEXT never
-- Ids in messages are stable whatever ran before: this file numbers from 1001.
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 1001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 1001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 1001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 1001;
SET ROLE integration_test_app;

-- register_webhook: generated secret, shown in full this once.
BEGIN;
SET LOCAL integration.tenant_id = 'api-1';
SELECT id AS ep1, secret AS ep1_secret, created_at = updated_at AS ep1_times_equal,
	   created_at = now() AS ep1_created_now
  FROM integration.register_webhook(name => 'orders', url => 'https://hooks.example.invalid/orders',
									 events => '["order.*"]') \gset
COMMIT;
SELECT :'ep1_secret' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_secret_shape,
	   :'ep1_times_equal' AS created_equals_updated, :'ep1_created_now' AS created_now;
-- The generated secret is what is stored, encrypted (test/regress.conf sets a key;
-- secrets_at_rest.sql has the details), and a valid Standard Webhooks secret.
BEGIN;
SET LOCAL integration.tenant_id = 'api-1';
SELECT integration.secret_key_id(secret) IS NOT NULL AS stored_encrypted,
	   strpos(secret, substr(:'ep1_secret', 7, 20)) = 0 AS not_stored_in_plain,
	   integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, id::text)
		 = integration.mask_secret(:'ep1_secret') AS stored_secret_is_returned_secret,
	   integration.validate_secret(:'ep1_secret') IS NOT NULL AS valid
  FROM integration.webhook_endpoints WHERE id = :ep1;
COMMIT;

-- The rest of the file selects the tenant for the session.
SET integration.tenant_id = 'api-1';

-- Given secret and headers are kept; explicit NULLs mean "generate" and "none".
SELECT id AS ep2 FROM integration.register_webhook(
	name => 'billing', url => 'http://billing.example.invalid:8080/in?x=1',
	events => '["invoice.paid", "invoice.**"]',
	secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
	headers => '{"Authorization": "Bearer t0ken", "X-Team": "billing"}') \gset
SELECT name, url, events, secret, headers, is_active, disabled_reason
  FROM integration.show_webhook(id => :ep2);
SELECT id AS ep3, secret AS ep3_secret, headers AS ep3_headers
  FROM integration.register_webhook(name => 'everything', url => 'https://all.example.invalid/',
									 events => '["*"]', secret => NULL, headers => NULL) \gset
SELECT :'ep3_secret' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_secret_shape,
	   :'ep3_secret' <> :'ep1_secret' AS secrets_differ, :'ep3_headers' AS headers;

-- list_webhooks: oldest first, secrets masked to their last four characters.
SELECT id = :ep1 AS is_ep1, id = :ep2 AS is_ep2, id = :ep3 AS is_ep3, name, url, events,
	   secret LIKE 'whsec\_********____' AS masked, headers, is_active
  FROM integration.list_webhooks();
SELECT secret = 'whsec_********' || right(:'ep1_secret', 4) AS masked_shows_last_four
  FROM integration.list_webhooks() WHERE id = :ep1;
SELECT secret AS masked_given_secret FROM integration.list_webhooks() WHERE id = :ep2;
SELECT count(*) AS listings_leaking_a_secret
  FROM integration.list_webhooks() w
 WHERE strpos(w.secret, substr(:'ep1_secret', 7, 20)) > 0
	OR strpos(w.secret, substr(:'ep3_secret', 7, 20)) > 0
	OR strpos(w.secret, 'MfKQ9r8GKYqrTwjU') > 0;

-- show_webhook: one endpoint, secret masked.
SELECT name, url, events, secret = 'whsec_********' || right(:'ep1_secret', 4) AS masked,
	   headers, is_active, disabled_reason
  FROM integration.show_webhook(id => :ep1);
SELECT * FROM integration.show_webhook(id => -1);
\echo :LAST_ERROR_SQLSTATE

-- update_webhook: only the given fields change; NULL leaves a field unchanged.
BEGIN;
SELECT name, url, events, secret LIKE 'whsec\_********%' AS masked, headers, is_active,
	   updated_at = now() AS updated_now, created_at < now() AS created_before
  FROM integration.update_webhook(id => :ep1, name => 'orders v2');
COMMIT;
SELECT name, url, events, headers FROM integration.show_webhook(id => :ep1);
SELECT name, url, events, headers
  FROM integration.update_webhook(id => :ep1, url => 'https://hooks.example.invalid/v2',
								  events => '["order.created", "order.updated"]',
								  headers => '{"X-Env": "test"}');
SELECT name, url, events, headers
  FROM integration.update_webhook(id => :ep1, name => NULL, url => NULL, events => NULL,
								  secret => NULL, headers => NULL, is_active => NULL);
-- A new secret is stored and shown masked.
SELECT secret AS masked_new_secret
  FROM integration.update_webhook(id => :ep1, secret => 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
SELECT integration.secret_key_id(secret) IS NOT NULL
	   AND integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, id::text)
		   = 'whsec_********AAAA' AS new_secret_stored
  FROM integration.webhook_endpoints WHERE id = :ep1;
-- is_active toggles; re-enabling clears disabled_reason.
SELECT is_active, disabled_reason FROM integration.update_webhook(id => :ep1, is_active => false);
SELECT is_active FROM integration.list_webhooks() WHERE id = :ep1;
RESET ROLE;
UPDATE integration.webhook_endpoints SET disabled_reason = 'too many failures'
 WHERE tenant_id = 'api-1' AND id = :ep1;
SET ROLE integration_test_app;
SELECT is_active, disabled_reason FROM integration.show_webhook(id => :ep1);
SELECT is_active, disabled_reason FROM integration.update_webhook(id => :ep1, is_active => true);
SELECT * FROM integration.update_webhook(id => -1, name => 'x');
\echo :LAST_ERROR_SQLSTATE

-- dispatch_webhook: returns the delivery id; the delivery is pending with the envelope.
BEGIN;
SELECT integration.dispatch_webhook(id => :ep1, event => 'order.created',
									payload => '{"order": 42, "total": "9.99"}') AS d1 \gset
SELECT id = :d1 AS is_returned_id, endpoint_id = :ep1 AS to_ep1, event, status, attempts,
	   payload::jsonb - 'timestamp' AS envelope_without_timestamp,
	   payload::jsonb ->> 'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS timestamp_shape,
	   created_at = now() AS created_now
  FROM integration.webhook_deliveries WHERE endpoint_id = :ep1;
-- The envelope keeps the payload's JSON intact, whatever its type.
SELECT integration.dispatch_webhook(id => :ep2, event => 'invoice.paid', payload => '[1, "two", null]') AS d2 \gset
SELECT integration.dispatch_webhook(id => :ep2, event => 'ping', payload => 'null') AS d3 \gset
SELECT event, status, payload::jsonb -> 'data' AS data
  FROM integration.webhook_deliveries WHERE id IN (:d2, :d3) ORDER BY id;
COMMIT;
-- A disabled endpoint refuses, and writes nothing.
SELECT is_active FROM integration.update_webhook(id => :ep3, is_active => false);
SELECT count(*) AS deliveries_before FROM integration.webhook_deliveries \gset
SELECT integration.dispatch_webhook(id => :ep3, event => 'order.created', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :deliveries_before AS nothing_written FROM integration.webhook_deliveries;
SELECT is_active FROM integration.update_webhook(id => :ep3, is_active => true);
SELECT integration.dispatch_webhook(id => -1, event => 'order.created', payload => '{}');
\echo :LAST_ERROR_SQLSTATE

-- delete_webhook: a soft delete.
SELECT integration.delete_webhook(id => :ep3) AS deleted;
SELECT count(*) AS ep3_listed FROM integration.list_webhooks() WHERE id = :ep3;
SELECT * FROM integration.show_webhook(id => :ep3);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.delete_webhook(id => :ep3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.update_webhook(id => :ep3, name => 'back');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :ep3, event => 'order.created', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM integration.list_webhooks();
-- The row is still there, marked deleted, for an admin.
SET ROLE integration_test_admin;
RESET integration.tenant_id;
SELECT tenant_id, name, is_active, deleted_at IS NOT NULL AS has_deleted_at,
	   deleted_at = updated_at AS deleted_at_is_updated_at
  FROM integration.webhook_endpoints WHERE id = :ep3;
SET ROLE integration_test_app;
SET integration.tenant_id = 'api-1';

-- list_deliveries and its filters.  Deliveries dispatched from here on are created
-- after t0.
SELECT clock_timestamp() AS t0 \gset
BEGIN;
SELECT integration.dispatch_webhook(id => :ep1, event => 'order.updated', payload => '{"n": 1}') AS d4 \gset
SELECT integration.dispatch_webhook(id => :ep1, event => 'order.updated', payload => '{"n": 2}') AS d5 \gset
SELECT integration.dispatch_webhook(id => :ep2, event => 'invoice.paid', payload => '{"n": 3}') AS d6 \gset
SELECT count(*) AS all_deliveries FROM integration.list_deliveries();
SELECT count(*) AS since_t0 FROM integration.list_deliveries(since => :'t0');
-- Newest first: same created_at here, so by event id, descending.
SELECT id = :d6 AS d6, id = :d5 AS d5, id = :d4 AS d4, event, payload::jsonb -> 'data' AS data
  FROM integration.list_deliveries(since => :'t0');
SELECT payload::jsonb -> 'data' AS data
  FROM integration.list_deliveries(endpoint_id => :ep1, since => :'t0');
SELECT count(*) AS ep1_all FROM integration.list_deliveries(endpoint_id => :ep1);
SELECT count(*) AS ep2_all FROM integration.list_deliveries(endpoint_id => :ep2);
SELECT count(*) AS ep3_all FROM integration.list_deliveries(endpoint_id => :ep3);
SELECT payload::jsonb -> 'data' AS data
  FROM integration.list_deliveries(event => 'invoice.paid', since => :'t0');
SELECT count(*) AS invoice_paid_all FROM integration.list_deliveries(event => 'invoice.paid');
SELECT count(*) AS pending_since_t0 FROM integration.list_deliveries(status => 'pending', since => :'t0');
SELECT count(*) AS delivered FROM integration.list_deliveries(status => 'delivered');
SELECT count(*) AS unknown_event FROM integration.list_deliveries(event => 'nope');
SELECT payload::jsonb -> 'data' AS data
  FROM integration.list_deliveries(endpoint_id => :ep1, status => 'pending',
								   event => 'order.updated', since => :'t0', "limit" => 1);
SELECT count(*) AS limit_2 FROM integration.list_deliveries("limit" => 2);
SELECT count(*) AS limit_0 FROM integration.list_deliveries("limit" => 0);
SELECT count(*) AS limit_negative FROM integration.list_deliveries("limit" => -5);
SELECT count(*) AS future FROM integration.list_deliveries(since => now() + interval '1 second');
COMMIT;

-- Every mutation wrote one log row: 3 registered, 8 updates that succeeded (including the
-- no-op and the enable/disable pairs), 1 delete, 6 dispatches.
SELECT event, level, source, count(*)
  FROM integration.list_integration_logs("limit" => 1000)
 GROUP BY 1, 2, 3 ORDER BY 1;
SELECT context - 'endpoint_id' AS update_context, context -> 'endpoint_id' = to_jsonb(:ep1) AS about_ep1
  FROM integration.list_integration_logs(event => 'webhook.updated', "limit" => 1000)
 WHERE (context ->> 'endpoint_id')::bigint = :ep1
 ORDER BY id;
SELECT message, context - 'endpoint_id' AS context
  FROM integration.list_integration_logs(event => 'webhook.registered') ORDER BY id;
SELECT context ->> 'event' AS event, (context ->> 'delivery_id')::bigint = :d6 AS is_d6
  FROM integration.list_integration_logs(event => 'webhook.dispatched', "limit" => 1);
SELECT count(*) AS dispatched_since_t0
  FROM integration.list_integration_logs(event => 'webhook.dispatched', since => :'t0');
SELECT count(*) AS deleted_logs, min(message) = 'webhook ' || :ep3 || ' deleted' AS message_names_ep3
  FROM integration.list_integration_logs(level => 'info', source => 'api', event => 'webhook.deleted');
SELECT count(*) AS warnings FROM integration.list_integration_logs(level => 'warning');
SELECT count(*) AS other_source FROM integration.list_integration_logs(source => 'worker');
SELECT count(*) AS limit_3 FROM integration.list_integration_logs("limit" => 3);
-- Failed calls above wrote no log row: no row mentions id -1.
SELECT count(*) AS logs_for_missing_ids
  FROM integration.list_integration_logs("limit" => 1000) WHERE context ->> 'endpoint_id' = '-1';

-- Another tenant sees none of it.
SET integration.tenant_id = 'api-2';
SELECT count(*) AS webhooks FROM integration.list_webhooks();
SELECT count(*) AS deliveries FROM integration.list_deliveries();
SELECT count(*) AS logs FROM integration.list_integration_logs();

RESET integration.tenant_id;
RESET ROLE;
