-- The API's rules for every caller and every write path (issue #13, items 5 and 7),
-- rolled back at the end.
BEGIN;
SELECT plan(22);

CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint);
SET LOCAL integration.tenant_id = 'rules-a';
INSERT INTO ids SELECT 'ep_a', id FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/', events => '["*"]');
SELECT integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_a'), event => 'a.one', payload => '{}');
SELECT integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_a'), event => 'a.two', payload => '{}');
SET LOCAL integration.tenant_id = 'rules-b';
INSERT INTO ids SELECT 'ep_b', id FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/', events => '["*"]');

-- Reads with no tenant fail as writes do, even for the superuser.  (6)
SET LOCAL integration.tenant_id = '';
SELECT throws_ok($$SELECT * FROM integration.list_webhooks()$$, '42501', 'no tenant selected', 'no tenant: list_webhooks fails');
SELECT throws_ok($$SELECT * FROM integration.list_deliveries()$$, '42501', 'no tenant selected', 'no tenant: list_deliveries fails');
SELECT throws_ok($$SELECT * FROM integration.list_integration_logs()$$, '42501', 'no tenant selected', 'no tenant: list_integration_logs fails');
SELECT throws_ok($$SELECT * FROM integration.list_delivery_attempts(1)$$, '42501', 'no tenant selected', 'no tenant: list_delivery_attempts fails');
SELECT throws_ok(format('SELECT * FROM integration.show_webhook(%s)', (SELECT v FROM ids WHERE k = 'ep_a')), '42501', 'no tenant selected', 'no tenant: show_webhook fails');
SELECT isnt_empty($$SELECT * FROM integration.webhook_deliveries WHERE tenant_id = 'rules-a'$$, 'no tenant: the superuser still reads the views');

-- The superuser who sets a tenant gets that tenant's rows only.  (3)
SET LOCAL integration.tenant_id = 'rules-a';
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('a')$$, 'superuser as A lists only A''s endpoints');
SELECT throws_ok(format('SELECT * FROM integration.show_webhook(%s)', (SELECT v FROM ids WHERE k = 'ep_b')), 'P0002', NULL, 'superuser as A cannot show B''s endpoint');
SELECT is_empty($$SELECT * FROM integration.list_integration_logs() WHERE tenant_id <> 'rules-a'$$, 'superuser as A lists only A''s log');

-- Positional calls: the first argument is "limit".  (2)
SELECT results_eq($$SELECT event FROM integration.list_deliveries(1)$$, $$VALUES ('a.two')$$, 'list_deliveries(1) is the newest delivery');
SELECT is((SELECT count(*) FROM integration.list_integration_logs(2)), 2::bigint, 'list_integration_logs(2) is two rows');

-- Plain INSERT into webhook_events meets the API's rules.  (11)
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.big', %L, '{%s}')$$,
						'{"type":"a.big","timestamp":"t","data":"' || repeat('x', 300000) || '"}', (SELECT v FROM ids WHERE k = 'ep_a')),
				 '54000', NULL, 'a payload over integration.max_payload_bytes is refused');
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.text', 'not json', '{%s}')$$,
						(SELECT v FROM ids WHERE k = 'ep_a')),
				 '22023', 'invalid event payload', 'a payload that is not JSON is refused');
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.bare', '{"id": 1}', '{%s}')$$,
						(SELECT v FROM ids WHERE k = 'ep_a')),
				 '22023', 'invalid event payload', 'a JSON object that is not an envelope is refused');
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.real', integration.envelope('a.other', '{}'), '{%s}')$$,
						(SELECT v FROM ids WHERE k = 'ep_a')),
				 '22023', 'invalid event payload', 'an envelope of another event is refused');
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a b', '{"type":"a b","timestamp":"t","data":1}', '{%s}')$$,
						(SELECT v FROM ids WHERE k = 'ep_a')),
				 '22023', NULL, 'an invalid event name is refused');
SELECT throws_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.steal', integration.envelope('a.steal', '{}'), '{%s}')$$,
						(SELECT v FROM ids WHERE k = 'ep_b')),
				 '23503', NULL, 'another tenant''s endpoint is refused');
SELECT throws_ok($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.ghost', integration.envelope('a.ghost', '{}'), '{-1}')$$,
				 '23503', NULL, 'an endpoint that does not exist is refused');
SELECT lives_ok(format($$INSERT INTO integration.webhook_events (event, payload, endpoint_ids) VALUES ('a.manual', integration.envelope('a.manual', '{}'), '{%s}')$$,
					   (SELECT v FROM ids WHERE k = 'ep_a')),
				'an event that follows the rules is accepted');
SELECT is((SELECT count(*) FROM integration.webhook_event_queue q JOIN integration.webhook_events e
			 ON e.tenant_id = q.tenant_id AND e.id = q.event_id WHERE e.event = 'a.manual'),
		  1::bigint, 'and queued for fan-out');
-- publish_event() still takes the bulk path and its rows meet the constraints.
SELECT is(integration.publish_event('a.published', '{"n": 1}'), 1, 'publish_event still publishes');
SELECT is_empty($$SELECT id FROM integration.webhook_events
				   WHERE tenant_id = 'rules-a' AND integration.validate_envelope(event, payload) IS NULL$$,
				'every published row meets the payload constraint');

SELECT * FROM finish();
ROLLBACK;
