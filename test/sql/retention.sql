-- Retention (src/retention.c): integration.purge_expired() runs the pass the worker runs
-- every integration.retention_interval.  The rows of this file are made old by setting
-- their times; the other files' rows are all younger than a day, and no period here is
-- shorter than that, so they stay.  The worker is off (test/regress.conf).
\set SHOW_CONTEXT never
-- Ids are stable whatever ran before: this file numbers from 8001.
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.connectors ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.inbound_events ALTER COLUMN id RESTART WITH 8001;
ALTER TABLE integration.connector_calls ALTER COLUMN id RESTART WITH 8001;

-- The settings and their defaults.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'integration.retention%' ORDER BY name;
SHOW integration.retention_delivered;
SHOW integration.retention_failed;
SHOW integration.retention_logs;
SHOW integration.retention_interval;
SET integration.retention_delivered = -2;
SET integration.retention_interval = '1min';

-- Events of tenant "retention", published 40 days ago unless said otherwise:
--   8001 a delivered 8 days ago                 -> delivery and event removed
--   8002 a delivered 6 days ago                 -> kept
--   8003 a failed 31 days ago, 2 attempts       -> removed with its attempts
--   8004 a failed 29 days ago, 1 attempt        -> kept
--   8005 a pending: retries in an hour          -> kept
--   8006 a sending: claimed                     -> kept
--   8007 a delivered 8 days ago, b pending      -> a's removed, the event stays for b's
--   8008 a and b delivered 8 days ago           -> both removed, and the event
--   8009 a delivered a day ago (redelivered)    -> kept
--   8010 to c, deleted before fan-out: none     -> event removed
--   8011 to c, the same, published a day ago    -> kept: younger than 7 days
--   8012 a, still queued for fan-out            -> kept
-- and of tenant "retention2", whose endpoint the worker disabled:
--   8013 delivered 8 days ago                     -> removed
--   8014 skipped at a claim 31 days ago           -> removed, as a failed one would be
--   8015 skipped at fan-out 29 days ago           -> kept (retention_failed, 30 days)
SET ROLE integration_test_app;
SET integration.tenant_id = 'retention';
SELECT id AS ep_a FROM integration.register_webhook('a', 'https://a.example.invalid/', '["order.*"]') \gset
SELECT id AS ep_b FROM integration.register_webhook('b', 'https://b.example.invalid/', '["order.paid"]') \gset
SELECT id AS ep_c FROM integration.register_webhook('c', 'https://c.example.invalid/', '["invoice.*"]') \gset
SELECT integration.publish_event(e.event, jsonb_build_object('n', e.n))
  FROM (VALUES (1, 'order.created'), (2, 'order.created'), (3, 'order.created'),
			   (4, 'order.created'), (5, 'order.created'), (6, 'order.created'),
			   (7, 'order.paid'), (8, 'order.paid'), (9, 'order.created'),
			   (10, 'invoice.sent'), (11, 'invoice.sent')) AS e(n, event)
 ORDER BY e.n;
RESET ROLE;
UPDATE integration.webhook_events SET created_at = now() - interval '40 days'
 WHERE tenant_id = 'retention' AND id <> 8011;
UPDATE integration.webhook_events SET created_at = now() - interval '1 day'
 WHERE tenant_id = 'retention' AND id = 8011;
DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'retention' AND id = :ep_c;
SET ROLE integration_test_app;
SELECT count(*) AS deliveries_claimed FROM integration._fan_out(100);
SELECT integration.publish_event('order.created', '{"n": 12}') AS queued;
SET integration.tenant_id = 'retention2';
SELECT id AS ep_r2 FROM integration.register_webhook('r2', 'https://r2.example.invalid/', '["order.*"]') \gset
SELECT integration.publish_event('order.created', jsonb_build_object('n', n))
  FROM generate_series(13, 15) n ORDER BY n;
SELECT count(*) AS deliveries_claimed FROM integration._fan_out(100);
RESET ROLE;
RESET integration.tenant_id;
UPDATE integration.webhook_events SET created_at = now() - interval '40 days'
 WHERE tenant_id = 'retention2' OR (tenant_id = 'retention' AND id = 8012);

UPDATE integration.deliveries d
   SET status = s.status, attempts = s.attempts, lease_expires_at = NULL,
	   next_attempt_at = CASE WHEN s.status = 'pending' THEN now() + interval '1 hour' END,
	   last_attempt_at = now() - s.age, delivered_at = CASE WHEN s.status = 'delivered' THEN now() - s.age END,
	   last_error = CASE WHEN s.status IN ('failed', 'skipped') THEN 'HTTP 500' END,
	   created_at = now() - interval '40 days'
  FROM (VALUES (8001, :ep_a, 'delivered', 1, interval '8 days'),
			   (8002, :ep_a, 'delivered', 1, interval '6 days'),
			   (8003, :ep_a, 'failed', 2, interval '31 days'),
			   (8004, :ep_a, 'failed', 1, interval '29 days'),
			   (8005, :ep_a, 'pending', 1, interval '10 days'),
			   (8007, :ep_a, 'delivered', 1, interval '8 days'),
			   (8007, :ep_b, 'pending', 1, interval '10 days'),
			   (8008, :ep_a, 'delivered', 1, interval '8 days'),
			   (8008, :ep_b, 'delivered', 1, interval '8 days'),
			   (8009, :ep_a, 'delivered', 1, interval '1 day'),
			   (8013, :ep_r2, 'delivered', 1, interval '8 days'),
			   (8014, :ep_r2, 'skipped', 2, interval '31 days'))
	   AS s(event_id, endpoint_id, status, attempts, age)
 WHERE d.event_id = s.event_id AND d.endpoint_id = s.endpoint_id
   AND d.tenant_id IN ('retention', 'retention2');
-- 8006 stays as the fan-out left it: sending, claimed.  A delivery the fan-out skips
-- has no attempt: it was skipped when it was created.
UPDATE integration.deliveries
   SET status = 'skipped', lease_expires_at = NULL, next_attempt_at = NULL,
	   last_error = 'endpoint disabled', created_at = now() - interval '29 days'
 WHERE tenant_id = 'retention2' AND event_id = 8015;
UPDATE integration.webhook_endpoints SET disabled_at = now() - interval '31 days',
	   disabled_reason = 'gone', is_active = false
 WHERE tenant_id = 'retention2';
INSERT INTO integration.delivery_attempts (tenant_id, delivery_id, attempt, started_at, duration_ms,
										   status_code, error_class)
SELECT d.tenant_id, d.id, a, d.last_attempt_at, 5, 500, 'http_status'
  FROM integration.deliveries d, generate_series(1, d.attempts) a
 WHERE d.tenant_id = 'retention' AND d.event_id IN (8003, 8004, 8005);
-- Log rows: 31 days old (removed), 29 days old (kept), and the fresh ones the API wrote.
INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, created_at)
VALUES ('retention', 'info', 'api', 'test.old', 'removed', now() - interval '31 days'),
	   ('retention2', 'info', 'api', 'test.old', 'removed', now() - interval '31 days'),
	   ('retention', 'info', 'api', 'test.kept', 'kept', now() - interval '29 days');

\set state 'SELECT e.tenant_id, e.id AS event_id, (SELECT string_agg(d.endpoint_id || \':\' || d.status, \', \' ORDER BY d.endpoint_id) FROM integration.deliveries d WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id) AS deliveries, (SELECT count(*) FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id) AS attempts, EXISTS (SELECT FROM integration.webhook_event_queue q WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id) AS queued FROM integration.webhook_events e WHERE e.tenant_id IN (\'retention\', \'retention2\') ORDER BY e.id'
:state;
SELECT count(*) AS attempts FROM integration.delivery_attempts WHERE tenant_id = 'retention';
SELECT tenant_id, event FROM integration.integration_logs
 WHERE tenant_id IN ('retention', 'retention2') AND event LIKE 'test.%' ORDER BY id;

-- Periods of 0 and -1 keep everything.
BEGIN;
SET LOCAL integration.retention_delivered = 0;
SET LOCAL integration.retention_failed = -1;
SET LOCAL integration.retention_logs = 0;
SELECT * FROM integration.purge_expired();
ROLLBACK;

-- Only the superuser or the tables' owner may purge: every tenant's rows go.
SET ROLE integration_test_admin;
SELECT * FROM integration.purge_expired();
RESET ROLE;

-- The defaults: 7 days after delivery, 30 days after the last failed attempt or the
-- skip, log rows after 30 days.
SELECT * FROM integration.purge_expired();
:state;
SELECT count(*) AS attempts FROM integration.delivery_attempts WHERE tenant_id = 'retention';
SELECT tenant_id, event FROM integration.integration_logs
 WHERE tenant_id IN ('retention', 'retention2') AND event LIKE 'test.%' ORDER BY id;
-- The API's fresh log rows stay.
SELECT event, count(*) FROM integration.integration_logs
 WHERE tenant_id IN ('retention', 'retention2') AND event NOT LIKE 'test.%' GROUP BY 1 ORDER BY 1;

-- Nothing more has expired.
SELECT * FROM integration.purge_expired();

-- Shorter periods, set for this session: 8002 (delivered 6 days ago), 8004 (failed
-- 29 days ago, with its attempt) and 8015 (skipped 29 days ago) go, and then their
-- events; so does the log row written 29 days ago.
SET integration.retention_delivered = '5d';
SET integration.retention_failed = '28d';
SET integration.retention_logs = '28d';
SELECT * FROM integration.purge_expired();
:state;
SELECT count(*) AS attempts FROM integration.delivery_attempts WHERE tenant_id = 'retention';
SELECT tenant_id, event FROM integration.integration_logs
 WHERE tenant_id IN ('retention', 'retention2') AND event LIKE 'test.%' ORDER BY id;
RESET integration.retention_delivered;
RESET integration.retention_failed;
RESET integration.retention_logs;

-- A pending delivery is never removed, however old: finished, it goes like the others.
UPDATE integration.deliveries
   SET status = 'delivered', next_attempt_at = NULL, delivered_at = now() - interval '8 days'
 WHERE tenant_id = 'retention' AND event_id IN (8005, 8007);
SELECT * FROM integration.purge_expired();
:state;

------------------------------------------------------------------------------------------
-- The connector framework's tables: inbound events and connector calls.
------------------------------------------------------------------------------------------
-- Tenant "retention3": connector 8001 keeps the default dedupe window (7 days),
-- 8002 has one of 45 days, longer than either period.
SET ROLE integration_test_app;
SET integration.tenant_id = 'retention3';
SELECT id, dedupe_window FROM integration.create_connector('generic', 'default window',
	'https://r3.example.invalid/', '{"token": "t"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT id, dedupe_window FROM integration.create_connector('generic', 'long window',
	'https://r3.example.invalid/', '{"token": "t"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
	dedupe_window => '45 days');
-- Two webhooks received for real by 8002, made old below: ret-kept and ret-gone.
SELECT '{"type":"order.created","data":{"id":"o-1"}}' AS rbody \gset
SELECT integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'rbody', 'ret-kept') AS hkept \gset
SELECT integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'rbody', 'ret-gone') AS hgone \gset
SELECT status, inbound_id FROM integration.receive_webhook(8002, :'hkept', :'rbody');
SELECT status, inbound_id FROM integration.receive_webhook(8002, :'hgone', :'rbody');
RESET ROLE;
RESET integration.tenant_id;

-- Inbound events (received, handled: days ago):
--   8001 ret-kept   8002 processed 40, 40   -> kept: inside 8002's 45-day dedupe window
--   8002 ret-gone   8002 processed 50, 50   -> removed
--   8003 a-proc-old 8001 processed  9,  8   -> removed
--   8004 a-proc-new 8001 processed  8,  6   -> kept: handled 6 days ago
--   8005 a-skip     8001 skipped    8,  8   -> removed
--   8006 a-skip-raw 8001 skipped    8, NULL -> removed: counts from when it was received
--   8007 a-fail-old 8001 failed    40, 31   -> removed
--   8008 a-fail-new 8001 failed    40, 29   -> kept: failed 29 days ago
--   8009 a-pending  8001 pending   60, -    -> kept, however old
--   8010 b-replaced 8002 processed 40, 40, dedupe_expired -> removed: no longer counts
--   8011 b-fail     8002 failed    44, 31   -> kept: inside the dedupe window
UPDATE integration.inbound_events
   SET status = 'processed', next_attempt_at = NULL,
	   received_at = now() - CASE external_id WHEN 'ret-kept' THEN interval '40 days' ELSE interval '50 days' END,
	   processed_at = now() - CASE external_id WHEN 'ret-kept' THEN interval '40 days' ELSE interval '50 days' END
 WHERE tenant_id = 'retention3';
INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload,
										status, next_attempt_at, received_at, processed_at, dedupe_expired)
SELECT 'retention3', c, x, 'order.created', 'generic.order.created', '{}', s,
	   CASE WHEN s = 'pending' THEN now() + interval '1 hour' END,
	   now() - r * interval '1 day', now() - h * interval '1 day', d
  FROM (VALUES (3, 8001, 'a-proc-old', 'processed', 9, 8, false),
			   (4, 8001, 'a-proc-new', 'processed', 8, 6, false),
			   (5, 8001, 'a-skip', 'skipped', 8, 8, false),
			   (6, 8001, 'a-skip-raw', 'skipped', 8, NULL, false),
			   (7, 8001, 'a-fail-old', 'failed', 40, 31, false),
			   (8, 8001, 'a-fail-new', 'failed', 40, 29, false),
			   (9, 8001, 'a-pending', 'pending', 60, NULL, false),
			   (10, 8002, 'b-replaced', 'processed', 40, 40, true),
			   (11, 8002, 'b-fail', 'failed', 44, 31, false)) AS v(n, c, x, s, r, h, d)
 ORDER BY n;

-- Connector calls of 8001 (finished: days ago):
--   8001 k-ok-old   succeeded  8 -> removed        8002 k-ok-new  succeeded  6 -> kept
--   8003 k-fail-old failed    31 -> removed        8004 k-fail-new failed   29 -> kept
--   8005 k-pending  pending, queued 60 days ago, retries in an hour -> kept
--   8006 k-sending  sending, queued 60 days ago, its lease run out  -> kept
INSERT INTO integration.connector_calls (tenant_id, connector_id, operation, payload, idempotency_key,
										 status, attempts, next_attempt_at, lease_expires_at,
										 created_at, finished_at)
SELECT 'retention3', 8001, 'POST /orders', '{"n": 1}', k, s, 1,
	   CASE WHEN s = 'pending' THEN now() + interval '1 hour' END,
	   CASE WHEN s = 'sending' THEN now() - interval '1 day' END,
	   now() - interval '60 days', now() - f * interval '1 day'
  FROM (VALUES (1, 'k-ok-old', 'succeeded', 8), (2, 'k-ok-new', 'succeeded', 6),
			   (3, 'k-fail-old', 'failed', 31), (4, 'k-fail-new', 'failed', 29),
			   (5, 'k-pending', 'pending', NULL), (6, 'k-sending', 'sending', NULL)) AS v(n, k, s, f)
 ORDER BY n;

\set inbound 'SELECT id, connector_id, external_id, status, dedupe_expired FROM integration.inbound_events WHERE tenant_id = \'retention3\' ORDER BY id'
\set calls 'SELECT id, idempotency_key, status FROM integration.connector_calls WHERE tenant_id = \'retention3\' ORDER BY id'
:inbound;
:calls;

-- Periods of 0 and -1 keep them too.
BEGIN;
SET LOCAL integration.retention_delivered = 0;
SET LOCAL integration.retention_failed = -1;
SELECT * FROM integration.purge_expired();
ROLLBACK;

-- The defaults.
SELECT * FROM integration.purge_expired();
:inbound;
:calls;
SELECT * FROM integration.purge_expired();

-- The platform sends ret-kept again, 40 days after it was received: still a duplicate of
-- the row kept for it.  ret-gone, 50 days after, is a new event (past the window anyway).
SET ROLE integration_test_app;
SET integration.tenant_id = 'retention3';
SELECT status, inbound_id, event FROM integration.receive_webhook(8002, :'hkept', :'rbody');
SELECT status, inbound_id > 8011 AS new_row, event FROM integration.receive_webhook(8002, :'hgone', :'rbody');
-- An expired call's idempotency key is free again: the same key is a new call.  A kept
-- call's key still answers with that call.
SELECT integration.call_connector(8001, 'POST /orders', '{"n": 1}', 'k-ok-old') > 8006 AS new_call;
SELECT integration.call_connector(8001, 'POST /orders', '{"n": 1}', 'k-ok-new') AS same_call;
RESET ROLE;
RESET integration.tenant_id;
DELETE FROM integration.inbound_events WHERE tenant_id = 'retention3' AND id > 8011;
DELETE FROM integration.connector_calls WHERE tenant_id = 'retention3' AND id > 8006;

-- Shorter periods: a-proc-new (handled 6 days ago, received 8) and a-fail-new go, and
-- k-ok-new and k-fail-new; ret-kept and b-fail stay for their connector's window.
-- A default window longer than the period, here set for the session's purge, keeps
-- a-proc-new (received 8 days ago) until the window too has passed.
SET integration.retention_delivered = '5d';
SET integration.retention_failed = '28d';
SET integration.inbound_dedupe_window = '10d';
SELECT * FROM integration.purge_expired();
:inbound;
RESET integration.inbound_dedupe_window;
SELECT * FROM integration.purge_expired();
:inbound;
:calls;
-- The connector's window made shorter: ret-kept and b-fail no longer count, and go.
UPDATE integration.connectors SET dedupe_window = '30 days' WHERE tenant_id = 'retention3' AND id = 8002;
SELECT * FROM integration.purge_expired();
:inbound;
RESET integration.retention_delivered;
RESET integration.retention_failed;

-- A pending event and pending or sending calls are never removed, however old:
-- finished, they go like the others.
UPDATE integration.inbound_events
   SET status = 'processed', next_attempt_at = NULL, processed_at = now() - interval '8 days'
 WHERE tenant_id = 'retention3' AND external_id = 'a-pending';
UPDATE integration.connector_calls
   SET status = 'succeeded', next_attempt_at = NULL, lease_expires_at = NULL,
	   finished_at = now() - interval '8 days'
 WHERE tenant_id = 'retention3';
SELECT * FROM integration.purge_expired();
:inbound;
:calls;

-- The claims' indexes hold no finished row, and the retention walks' indexes only
-- finished rows, in the order the walks take them: each walk's statement is an ordered
-- scan of its index (other plans are switched off here: these tables are tiny).
SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) AS predicate
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname IN ('inbound_events_expiry_idx', 'inbound_events_due_idx',
					 'inbound_events_pending_idx', 'connector_calls_expiry_idx',
					 'connector_calls_pending_idx', 'connector_calls_sending_idx',
					 'connectors_deleted_idx')
 ORDER BY 1;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET enable_sort = off;
EXPLAIN (COSTS OFF)
SELECT e.tenant_id, e.id FROM integration.inbound_events e
 WHERE e.status <> 'pending'
   AND (COALESCE(e.processed_at, e.received_at), e.id) > ('-infinity', 0)
   AND COALESCE(e.processed_at, e.received_at) < now()
 ORDER BY COALESCE(e.processed_at, e.received_at), e.id LIMIT 100;
EXPLAIN (COSTS OFF)
SELECT k.tenant_id, k.id FROM integration.connector_calls k
 WHERE k.finished_at IS NOT NULL AND (k.finished_at, k.id) > ('-infinity', 0) AND k.finished_at < now()
 ORDER BY k.finished_at, k.id LIMIT 100;
EXPLAIN (COSTS OFF)
SELECT c.tenant_id, c.id FROM integration.connectors c
 WHERE c.deleted_at IS NOT NULL AND (c.deleted_at, c.id) > ('-infinity', 0) AND c.deleted_at < now()
 ORDER BY c.deleted_at, c.id LIMIT 1;
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

-- Clean up what is left of this file's tenants.
DELETE FROM integration.webhook_events WHERE tenant_id IN ('retention', 'retention2');
DELETE FROM integration.integration_logs WHERE tenant_id IN ('retention', 'retention2', 'retention3');
DELETE FROM integration.webhook_endpoints WHERE tenant_id IN ('retention', 'retention2');
DELETE FROM integration.inbound_events WHERE tenant_id = 'retention3';
DELETE FROM integration.connector_calls WHERE tenant_id = 'retention3';
DELETE FROM integration.connectors WHERE tenant_id = 'retention3';
