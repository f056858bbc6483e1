-- Endpoints the worker disabled, and enable_webhook() (issue #15, item 5).  The worker
-- is off here: it disabling an endpoint is written by hand, as the superuser, the way
-- src/endpoint_disable.c writes it; the fan-out runs through integration._fan_out().
-- The worker itself (streaks of failures, endpoint.disabled, the replay delivered) is
-- in test/t/017_auto_disable.pl.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 9001;
-- (Event and delivery ids are not shown: publishing.sql counts on its own being the
-- newest.)

SET ROLE integration_test_app;
SET integration.tenant_id = 'dis-a';
SELECT id AS ep FROM integration.register_webhook(name => 'shop', url => 'https://shop.example.invalid/',
												  events => '["order.*"]') \gset
SELECT id AS watcher FROM integration.register_webhook(name => 'ops', url => 'https://ops.example.invalid/',
													   events => '["order.*", "endpoint.disabled"]') \gset
SELECT is_active, disabled_reason, disabled_at FROM integration.show_webhook(id => :ep);

-- The worker disables the endpoint: reason and time recorded, shown by the API.
RESET ROLE;
UPDATE integration.webhook_endpoints
   SET is_active = false, disabled_reason = 'every attempt failed', disabled_at = now()
 WHERE tenant_id = 'dis-a' AND id = :ep;
INSERT INTO integration.endpoint_failures (tenant_id, endpoint_id, failing_since)
VALUES ('dis-a', :ep, now() - interval '6 days');
SET ROLE integration_test_app;
SELECT is_active, disabled_reason, disabled_at IS NOT NULL AS disabled_at_set
  FROM integration.show_webhook(id => :ep);
SELECT id = :ep AS is_ep, is_active, disabled_reason, disabled_at IS NOT NULL AS disabled_at_set
  FROM integration.list_webhooks() ORDER BY id;

-- Still subscribed: events go to it, and the fan-out records its deliveries as skipped,
-- without a claim; the other endpoint's is claimed as usual.  publish_event() counts
-- only the deliveries it enqueues for sending.
SELECT integration.publish_event('order.created', '{"n": 1}') AS deliveries;
RESET ROLE;
SELECT count(*) AS claimed FROM integration._fan_out(10);
SET ROLE integration_test_app;
SELECT endpoint_id = :ep AS is_ep, status, attempts, next_attempt_at IS NULL AS not_scheduled,
	   last_error
  FROM integration.list_deliveries() ORDER BY endpoint_id;

-- An endpoint disabled through the API is unsubscribed instead: no delivery at all.
SELECT is_active FROM integration.update_webhook(id => :watcher, is_active => false);
SELECT integration.publish_event('order.created', '{"n": 2}') AS deliveries_with_watcher_off;
SELECT is_active, disabled_at FROM integration.update_webhook(id => :watcher, is_active => true);

-- enable_webhook() without replay_since: enabled, reason and time cleared, its streak
-- forgotten, nothing requeued.
SELECT integration.enable_webhook(id => :ep) AS requeued;
SELECT is_active, disabled_reason, disabled_at FROM integration.show_webhook(id => :ep);
SELECT count(*) AS streaks FROM integration.endpoint_failures WHERE endpoint_id = :ep;
SELECT level, source, event, message, context - 'endpoint_id' AS context
  FROM integration.list_integration_logs(1);
-- (The second event is not fanned out yet: the view shows it pending.)
SELECT status FROM integration.list_deliveries(endpoint_id => :ep);

-- Deliveries of every status, old and new, and enable_webhook() with replay_since:
-- those not delivered since then (four here, and the one skipped above) are requeued,
-- due now, with a fresh budget; delivered ones, older ones and one being sent are left
-- alone.
RESET ROLE;
INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids)
SELECT 'dis-a', 'order.created', integration.envelope('order.created', jsonb_build_object('n', g)), '{}'
  FROM generate_series(10, 17) g;
DELETE FROM integration.webhook_event_queue WHERE tenant_id = 'dis-a';
INSERT INTO integration.deliveries (tenant_id, event_id, endpoint_id, status, attempts,
									next_attempt_at, lease_expires_at, created_at, last_error)
SELECT 'dis-a', e.id, :ep, s.status, 3,
	   CASE WHEN s.status = 'pending' THEN now() + interval '1 hour' END,
	   CASE WHEN s.status = 'sending' THEN now() + interval '1 minute' END,
	   now() - s.age,
	   CASE s.status WHEN 'failed' THEN 'HTTP 500' WHEN 'skipped' THEN 'skipped: the endpoint is disabled' END
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM integration.webhook_events
		 WHERE tenant_id = 'dis-a' AND payload ~ '"n": 1[0-7]}') e
  JOIN (VALUES (1, 'failed', interval '3 days'), (2, 'failed', interval '1 hour'),
			   (3, 'skipped', interval '2 hours'), (4, 'skipped', interval '4 days'),
			   (5, 'delivered', interval '1 hour'), (6, 'pending', interval '1 hour'),
			   (7, 'sending', interval '1 hour'), (8, 'skipped', interval '1 minute'))
	   AS s(n, status, age) ON s.n = e.n;
UPDATE integration.webhook_endpoints SET is_active = false, disabled_at = now(),
	   disabled_reason = 'the receiver answered 410 Gone'
 WHERE tenant_id = 'dis-a' AND id = :ep;
INSERT INTO integration.endpoint_failures (tenant_id, endpoint_id, failing_since)
VALUES ('dis-a', :watcher, now());
SET ROLE integration_test_app;
SELECT integration.enable_webhook(id => :ep, replay_since => now() - interval '1 day') AS requeued;
SELECT d.status, d.attempts, d.next_attempt_at <= now() AS due_now,
	   count(*) AS deliveries
  FROM integration.deliveries d WHERE d.endpoint_id = :ep
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT message ~ '^webhook \d+ enabled, 5 deliveries since .* requeued$' AS message,
	   context ->> 'requeued' AS requeued, context ->> 'was_active' AS was_active,
	   context ->> 'previous_reason' AS previous_reason
  FROM integration.list_integration_logs(1);
-- Enabled and fresh events go out as usual.
SELECT integration.publish_event('order.created', '{"n": 3}') AS deliveries;
RESET ROLE;
SELECT count(*) AS claimed FROM integration._fan_out(10);
SET ROLE integration_test_app;

-- Errors, as for every call: unknown, another tenant's, deleted, no tenant.
SELECT integration.enable_webhook(id => 999999);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'dis-b';
SELECT integration.enable_webhook(id => :ep, replay_since => '-infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS streaks_visible_to_other_tenant FROM integration.endpoint_failures;
SET integration.tenant_id = 'dis-a';
SELECT endpoint_id = :watcher AS is_watcher FROM integration.endpoint_failures;
SELECT integration.delete_webhook(id => :watcher);
SELECT count(*) AS streaks_after_delete FROM integration.endpoint_failures;
SELECT integration.enable_webhook(id => :watcher);
\echo :LAST_ERROR_SQLSTATE
RESET integration.tenant_id;
SELECT integration.enable_webhook(id => :ep);
\echo :LAST_ERROR_SQLSTATE

-- 'skipped' is a status of its own: no request, so next_attempt_at is not set.
RESET ROLE;
\set VERBOSITY terse
UPDATE integration.deliveries SET status = 'skipped', next_attempt_at = now(),
	   last_error = 'skipped: the endpoint is disabled'
 WHERE tenant_id = 'dis-a' AND endpoint_id = :ep AND status = 'delivered';
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.deliveries SET status = 'skipped', last_error = 'skipped: the endpoint is disabled'
 WHERE tenant_id = 'dis-a' AND endpoint_id = :ep AND status = 'delivered'
RETURNING status;
UPDATE integration.deliveries SET status = 'gone'
 WHERE tenant_id = 'dis-a' AND endpoint_id = :ep AND status = 'skipped';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

DELETE FROM integration.webhook_events WHERE tenant_id = 'dis-a';
DELETE FROM integration.endpoint_failures WHERE tenant_id = 'dis-a';
DELETE FROM integration.integration_logs WHERE tenant_id = 'dis-a';
