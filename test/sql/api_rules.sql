-- The API's rules hold for every caller and every path (issue #13, items 5 and 7):
-- reads with no tenant fail like writes; superusers and BYPASSRLS roles who set a
-- tenant get that tenant's rows only from the API; positional list calls mean "limit";
-- a row written into webhook_events with plain SQL meets the rules publish_event()
-- and dispatch_webhook() apply.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 5001;
SET integration.tenant_id = 'rules-a';
SELECT id AS ep_a FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/',
                                                    events => '["*"]') \gset
SELECT integration.dispatch_webhook(id => :ep_a, event => 'rules.one', payload => '{}') IS NOT NULL AS dispatched;
SELECT integration.dispatch_webhook(id => :ep_a, event => 'rules.two', payload => '{}') IS NOT NULL AS dispatched;
SET integration.tenant_id = 'rules-b';
SELECT id AS ep_b FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/',
                                                    events => '["*"]') \gset
SELECT integration.dispatch_webhook(id => :ep_b, event => 'rules.b', payload => '{}') IS NOT NULL AS dispatched;

-- No tenant: every read function fails as writes do, for the app role, the BYPASSRLS
-- admin and the superuser alike.
RESET integration.tenant_id;
SET ROLE integration_test_app;
SELECT * FROM integration.list_webhooks();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.list_deliveries();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.list_integration_logs();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.show_webhook(id => :ep_a);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.list_delivery_attempts(delivery_id => 1);
\echo :LAST_ERROR_SQLSTATE
SET ROLE integration_test_admin;
SELECT count(*) FROM integration.list_webhooks();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM integration.list_deliveries();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM integration.list_webhooks();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM integration.list_integration_logs();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM integration.list_delivery_attempts(delivery_id => 1);
\echo :LAST_ERROR_SQLSTATE
-- Administration across tenants stays possible through the tables and views.
SELECT tenant_id, count(*) AS deliveries FROM integration.webhook_deliveries
 WHERE tenant_id LIKE 'rules-%' GROUP BY 1 ORDER BY 1;

-- A superuser and a BYPASSRLS role who set a tenant get that tenant's rows only.
SET integration.tenant_id = 'rules-a';
SELECT name FROM integration.list_webhooks();
SELECT event FROM integration.list_deliveries() ORDER BY event;
SELECT DISTINCT tenant_id FROM integration.list_integration_logs();
SELECT * FROM integration.show_webhook(id => :ep_b);
\echo :LAST_ERROR_SQLSTATE
SET ROLE integration_test_admin;
SELECT name FROM integration.list_webhooks();
SELECT event FROM integration.list_deliveries() ORDER BY event;
SELECT count(*) AS b_attempts FROM integration.list_delivery_attempts(
	delivery_id => (SELECT min(id) FROM integration.deliveries WHERE tenant_id = 'rules-b'));
RESET ROLE;

-- Positional calls: the first argument of the list functions is "limit".
SELECT event FROM integration.list_deliveries(1);
SELECT count(*) AS two FROM integration.list_deliveries(2);
SELECT count(*) AS one FROM integration.list_integration_logs(1);
SELECT count(*) AS named FROM integration.list_deliveries(endpoint_id => :ep_a, "limit" => 1);

-- Plain SQL into webhook_events, as the application role.
SET ROLE integration_test_app;
SELECT count(*) AS events_before FROM integration.webhook_events \gset
-- Larger than integration.max_payload_bytes (256 kB): refused before it is parsed.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.big', '{"type":"rules.big","timestamp":"t","data":"' || repeat('x', 300000) || '"}', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
-- Not JSON.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.text', 'hello, receiver', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
-- JSON, but not an envelope.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.array', '[1, 2]', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.bare', '{"id": 1}', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.twice', '{"type":"rules.twice","type":"rules.twice","timestamp":"t","data":1}', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
-- An envelope of another event, and one whose timestamp is not a string.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.real', integration.envelope('rules.other', '{}'), ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.ts', '{"type":"rules.ts","timestamp":1,"data":null}', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
-- An invalid event name.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('bad name', '{"type":"bad name","timestamp":"t","data":null}', ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
-- Another tenant's endpoint, and one that does not exist.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.steal', integration.envelope('rules.steal', '{}'), ARRAY[:ep_b]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.ghost', integration.envelope('rules.ghost', '{}'), ARRAY[:ep_a, -1]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) - :events_before AS events_added FROM integration.webhook_events;
-- A row that follows the rules is accepted and queued.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('rules.manual', integration.envelope('rules.manual', '{"n": 1}'), ARRAY[:ep_a]::bigint[]);
SELECT e.event, e.payload::jsonb -> 'data' AS data,
       EXISTS (SELECT FROM integration.webhook_event_queue q
                WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id) AS queued
  FROM integration.webhook_events e WHERE e.event = 'rules.manual';
RESET ROLE;
-- The superuser is held to the same rules, whichever tenant it names.
INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)
VALUES ('rules-b', 'rules.cross', integration.envelope('rules.cross', '{}'), ARRAY[:ep_a]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)
VALUES ('rules-b', 'rules.admin', integration.envelope('rules.admin', '{}'), ARRAY[:ep_b]::bigint[]);
SELECT tenant_id, event FROM integration.webhook_events WHERE event = 'rules.admin';

-- The size limit follows the setting, as for publish_event().
SET integration.max_payload_bytes = '1kB';
SELECT integration.validate_envelope('rules.x', '{"type":"rules.x","timestamp":"t","data":"' || repeat('x', 1100) || '"}') IS NOT NULL AS ok;
\echo :LAST_ERROR_SQLSTATE
RESET integration.max_payload_bytes;
SELECT integration.validate_envelope('rules.x', '{"type":"rules.x","timestamp":"t","data":"' || repeat('x', 1100) || '"}') IS NOT NULL AS ok;

-- Clean up what the other files count.
DELETE FROM integration.webhook_events WHERE tenant_id LIKE 'rules-%';
DELETE FROM integration.integration_logs WHERE tenant_id LIKE 'rules-%';
RESET integration.tenant_id;
