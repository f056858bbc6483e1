-- Tenant isolation under the app role: tenant A can neither read, change nor detect
-- tenant B's rows, through the API or plain SQL; with no tenant selected nothing is
-- visible and every write fails loudly.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 3001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 3001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 3001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 3001;
SET ROLE integration_test_app;
\set visible 'SELECT (SELECT count(*) FROM integration.webhook_endpoints) AS endpoints, (SELECT count(*) FROM integration.webhook_events) AS events, (SELECT count(*) FROM integration.deliveries) AS deliveries, (SELECT count(*) FROM integration.integration_logs) AS logs, (SELECT count(*) FROM integration.webhook_deliveries) AS webhook_deliveries'

-- Each tenant registers an endpoint, dispatches to it and publishes once.
BEGIN;
SET LOCAL integration.tenant_id = 'ten-a';
SELECT id AS ep_a FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/', events => '["*"]') \gset
SELECT integration.dispatch_webhook(id => :ep_a, event => 'a.hello', payload => '{}') AS d_a \gset
SELECT integration.publish_event(event => 'a.published', payload => '{}') AS published_a;
COMMIT;
BEGIN;
SET LOCAL integration.tenant_id = 'ten-b';
SELECT id AS ep_b FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/', events => '["*"]') \gset
SELECT integration.dispatch_webhook(id => :ep_b, event => 'b.hello', payload => '{}') AS d_b \gset
SELECT integration.publish_event(event => 'b.published', payload => '{}') AS published_b;
SELECT event_id AS ev_b FROM integration.deliveries WHERE id = :d_b \gset
SELECT id AS log_b FROM integration.integration_logs ORDER BY id DESC LIMIT 1 \gset
COMMIT;
-- SET LOCAL ended with the transaction.
SELECT integration.current_tenant() IS NULL AS no_tenant_after_commit;

-- A sees its own rows only, in every table and view.
SET integration.tenant_id = 'ten-a';
:visible;
SELECT count(*) AS rows_of_other_tenants FROM (
	SELECT tenant_id FROM integration.webhook_endpoints UNION ALL
	SELECT tenant_id FROM integration.webhook_events UNION ALL
	SELECT tenant_id FROM integration.deliveries UNION ALL
	SELECT tenant_id FROM integration.integration_logs UNION ALL
	SELECT tenant_id FROM integration.webhook_deliveries) t
 WHERE tenant_id <> 'ten-a';
SELECT count(*) AS b_endpoint_by_id FROM integration.webhook_endpoints WHERE id = :ep_b;
SELECT count(*) AS b_delivery_by_id FROM integration.webhook_deliveries WHERE id = :d_b OR endpoint_id = :ep_b;
SELECT name FROM integration.list_webhooks();
SELECT event FROM integration.list_deliveries() ORDER BY event;
SELECT count(*) AS b_deliveries_listed FROM integration.list_deliveries(endpoint_id => :ep_b);
SELECT event FROM integration.list_integration_logs() ORDER BY event;

-- The API treats B's endpoint as nonexistent.
SELECT * FROM integration.show_webhook(id => :ep_b);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.update_webhook(id => :ep_b, name => 'stolen');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.delete_webhook(id => :ep_b);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :ep_b, event => 'a.steal', payload => '{}');
\echo :LAST_ERROR_SQLSTATE

-- Plain SQL: writing B's rows is refused or touches nothing.
INSERT INTO integration.webhook_endpoints (tenant_id, name, url, events)
VALUES ('ten-b', 'planted', 'https://evil.example.invalid/', '["*"]');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.integration_logs (tenant_id, source, event, message)
VALUES ('ten-b', 'evil', 'planted', 'x');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)
VALUES ('ten-b', 'b.forged', '{}', ARRAY[:ep_b]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
WITH w AS (UPDATE integration.webhook_endpoints SET url = 'https://evil.example.invalid/' WHERE id = :ep_b RETURNING 1)
SELECT count(*) AS b_endpoints_updated FROM w;
UPDATE integration.webhook_endpoints SET tenant_id = 'ten-b' WHERE id = :ep_a;
\echo :LAST_ERROR_SQLSTATE
WITH w AS (UPDATE integration.deliveries SET status = 'delivered' WHERE id = :d_b RETURNING 1)
SELECT count(*) AS b_deliveries_updated FROM w;
WITH w AS (DELETE FROM integration.integration_logs WHERE id = :log_b RETURNING 1)
SELECT count(*) AS b_logs_deleted FROM w;
WITH w AS (DELETE FROM integration.webhook_events WHERE id = :ev_b RETURNING 1)
SELECT count(*) AS b_events_deleted FROM w;
WITH w AS (DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'ten-b' RETURNING 1)
SELECT count(*) AS b_endpoints_deleted FROM w;
-- A delivery with A's tenant cannot point at B's endpoint or event: the references
-- include tenant_id.
SELECT event_id AS ev_a FROM integration.deliveries WHERE id = :d_a \gset
INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES (:ev_a, :ep_b);
\echo :LAST_ERROR_SQLSTATE
-- Named as a foreign key's constraint would be (the check, on its table).
SET integration_test.ep_b = :'ep_b';
SET integration_test.ev_a = :'ev_a';
DO $$
DECLARE
	t text;
	c text;
BEGIN
	INSERT INTO integration.deliveries (event_id, endpoint_id)
	VALUES (current_setting('integration_test.ev_a')::bigint, current_setting('integration_test.ep_b')::bigint);
EXCEPTION WHEN foreign_key_violation THEN
	GET STACKED DIAGNOSTICS t = TABLE_NAME, c = CONSTRAINT_NAME;
	RAISE NOTICE 'table %, constraint %', t, c;
END
$$;
INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES (:ev_b, :ep_a);
\echo :LAST_ERROR_SQLSTATE
-- Keys include tenant_id, so reusing B's ids collides with nothing and reveals nothing.
BEGIN;
INSERT INTO integration.integration_logs (id, source, event, message) OVERRIDING SYSTEM VALUE
VALUES (:log_b, 'test', 'probe', 'same id as a row of B');
INSERT INTO integration.webhook_endpoints (id, name, url, events) OVERRIDING SYSTEM VALUE
VALUES (:ep_b, 'probe', 'https://a.example.invalid/probe', '["*"]');
SELECT count(*) AS probes_inserted FROM (
	SELECT id FROM integration.integration_logs WHERE id = :log_b UNION ALL
	SELECT id FROM integration.webhook_endpoints WHERE id = :ep_b) t;
ROLLBACK;

-- B's rows are untouched.
SET integration.tenant_id = 'ten-b';
:visible;
SELECT name, url FROM integration.list_webhooks();
SELECT event, status FROM integration.list_deliveries() ORDER BY event;

-- No tenant selected: nothing is visible in the tables, the API's reads fail ...
RESET integration.tenant_id;
:visible;
SELECT count(*) AS listed FROM integration.list_webhooks();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS listed FROM integration.list_deliveries();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS listed FROM integration.list_integration_logs();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.show_webhook(id => :ep_a);
\echo :LAST_ERROR_SQLSTATE
-- ... and every write fails with insufficient_privilege.
SELECT integration.register_webhook(name => 'x', url => 'https://x.example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :ep_a, name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.delete_webhook(id => :ep_a);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :ep_a, event => 'x.y', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => 'x.y', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_endpoints (name, url, events) VALUES ('x', 'https://x.example.invalid/', '["*"]');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_endpoints (tenant_id, name, url, events) VALUES ('ten-a', 'x', 'https://x.example.invalid/', '["*"]');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.integration_logs (source, event, message) VALUES ('x', 'x', 'x');
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET name = 'x';
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.deliveries SET attempts = 1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM integration.webhook_events;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM integration.integration_logs;
\echo :LAST_ERROR_SQLSTATE

-- The setting accepts tenant ids only.
SET integration.tenant_id = 'a b';
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'ten-a''; --';
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('integration.tenant_id', 'ten-a/../ten-b', false);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.current_tenant() IS NULL AS still_no_tenant;
SET integration.tenant_id = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
SELECT length(integration.current_tenant()) AS max_length_accepted;
SET integration.tenant_id = '';
SELECT integration.current_tenant() IS NULL AS empty_means_none;

-- The BYPASSRLS admin and the superuser see both tenants.
SET ROLE integration_test_admin;
RESET integration.tenant_id;
SELECT tenant_id, count(*) AS endpoints FROM integration.webhook_endpoints
 WHERE tenant_id IN ('ten-a', 'ten-b') GROUP BY 1 ORDER BY 1;
SELECT tenant_id, count(*) AS deliveries FROM integration.webhook_deliveries
 WHERE tenant_id IN ('ten-a', 'ten-b') GROUP BY 1 ORDER BY 1;
RESET ROLE;
SELECT tenant_id, count(*) AS logs FROM integration.integration_logs
 WHERE tenant_id IN ('ten-a', 'ten-b') GROUP BY 1 ORDER BY 1;
SELECT tenant_id, count(*) AS events FROM integration.webhook_events
 WHERE tenant_id IN ('ten-a', 'ten-b') GROUP BY 1 ORDER BY 1;

-- Every table has forced row-level security and is crash-safe; the view over tenant data
-- runs as the invoker (tracked_tables shows only catalog data).  The catalogue of
-- connector kinds is not tenant data: read by all, written by superusers only
-- (docs/connectors.md), so no row-level security.
SELECT c.relname, c.relrowsecurity, has_table_privilege('public', c.oid, 'SELECT') AS public_reads
  FROM pg_class c WHERE c.oid = 'integration.connector_kinds'::regclass;
SELECT count(*) >= 4 AS has_tables,
	   count(*) FILTER (WHERE NOT c.relrowsecurity) AS without_rls,
	   count(*) FILTER (WHERE NOT c.relforcerowsecurity) AS without_forced_rls,
	   count(*) FILTER (WHERE c.relpersistence <> 'p') AS not_permanent,
	   count(*) FILTER (WHERE NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)) AS without_policy
  FROM pg_class c
 WHERE c.relnamespace = 'integration'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname <> 'connector_kinds';
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relpersistence
  FROM pg_class c
 WHERE c.relnamespace = 'integration'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname <> 'connector_kinds'
   AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND c.relpersistence = 'p');
SELECT c.reloptions AS webhook_deliveries_options
  FROM pg_class c WHERE c.oid = 'integration.webhook_deliveries'::regclass;
