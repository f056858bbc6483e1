-- The list functions at a given size, run by bench/run lists (psql -X -f, a database
-- with the extension and no delivery worker, -v deliveries=N).
--
-- Tenant bench gets N deliveries: N/2 events of four names at ten a second, each to
-- two of 19 endpoints, one event in 10,000 named rare.event and sent to a 20th
-- endpoint only; all but the newest 500 events fanned out, 1 delivery in 50 failed,
-- 1 in 1,000 pending, 1 in 5,000 being sent, the others delivered; and N log rows, 1 in
-- 100 an error, 1 in 3 from the API, 1 in 5,000 webhook.updated.  Another tenant holds
-- a fifth as much, interleaved.  Each list call asks for 50 rows; the figure is the
-- median of 7 calls in one session (planning included), and the slowest of them.

\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;

\o /dev/null
CREATE FUNCTION pg_temp.load(tenant text, n bigint, neps integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	PERFORM integration.register_webhook('ep ' || i, 'https://bench.invalid/' || i,
			CASE WHEN i = neps THEN '["rare.*"]' ELSE '["order.*", "invoice.*", "rare.*"]' END::jsonb)
	  FROM generate_series(1, neps) i;
	CREATE TEMP TABLE eps ON COMMIT DROP AS
		SELECT id, row_number() OVER (ORDER BY id) AS k FROM integration.webhook_endpoints WHERE tenant_id = tenant;
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids, created_at)
	SELECT ev, integration.envelope(ev, jsonb_build_object('n', g)),
		   CASE WHEN ev = 'rare.event' THEN ARRAY[(SELECT id FROM eps WHERE k = neps)]
				ELSE ARRAY[(SELECT id FROM eps WHERE k = 1 + g % (neps - 1)),
						   (SELECT id FROM eps WHERE k = 1 + (g + 1) % (neps - 1))] END,
		   now() - interval '1 second' * (n / 2 - g) / 10
	  FROM generate_series(1, n / 2) g,
		   LATERAL (SELECT CASE WHEN g % 10000 = 0 THEN 'rare.event'
								ELSE (ARRAY['order.created', 'order.updated', 'invoice.paid', 'invoice.sent'])[1 + g % 4]
						   END AS ev) x;
	WITH q AS (
		DELETE FROM integration.webhook_event_queue q
		 WHERE q.tenant_id = tenant
		   AND q.event_id <= (SELECT max(id) - 500 FROM integration.webhook_events WHERE tenant_id = tenant)
		RETURNING q.event_id)
	INSERT INTO integration.deliveries (event_id, endpoint_id, status, attempts, next_attempt_at,
										lease_expires_at, last_error, created_at, delivered_at)
	SELECT e.id, u.ep, s.st, 1, CASE WHEN s.st = 'pending' THEN now() + interval '1 hour' END,
		   CASE WHEN s.st = 'sending' THEN now() + interval '90 seconds' END,
		   CASE WHEN s.st IN ('failed', 'pending') THEN 'HTTP 500' END, e.created_at,
		   CASE WHEN s.st = 'delivered' THEN e.created_at END
	  FROM q JOIN integration.webhook_events e ON e.tenant_id = tenant AND e.id = q.event_id
	 CROSS JOIN LATERAL unnest(e.endpoint_ids) u(ep)
	 CROSS JOIN LATERAL (SELECT CASE WHEN e.id % 50 = 7 THEN 'failed' WHEN e.id % 1000 = 3 THEN 'pending'
									 WHEN e.id % 5000 = 11 THEN 'sending' ELSE 'delivered' END AS st) s;
	INSERT INTO integration.integration_logs (level, source, event, message, created_at)
	SELECT CASE WHEN g % 100 = 0 THEN 'error' WHEN g % 10 = 0 THEN 'warning' ELSE 'info' END,
		   CASE WHEN g % 3 = 0 THEN 'api' ELSE 'worker' END,
		   CASE WHEN g % 5000 = 1 THEN 'webhook.updated' WHEN g % 100 = 0 THEN 'delivery.failed'
				ELSE 'delivery.retrying' END,
		   'message ' || g, now() - interval '1 second' * (n - g) / 20
	  FROM generate_series(1, n) g;
END
$$;
-- Tenants bench-mix and bench-failed get N deliveries each, made for combinations that
-- match few rows of either filter: N/2 events, the even ones order.a to endpoints 1 and
-- 2, the odd ones order.b to two of endpoints 3 to 20.  In bench-mix every order.a
-- delivery is delivered and every order.b one failed, except the 10 oldest events of
-- each (order.a failed, order.b delivered), and endpoint 1 gets the 10 oldest order.b
-- events: failed with order.a, delivered with order.b, endpoint 1 with order.b or with
-- failed each match 10-20 rows, each filter alone half the tenant.  In bench-failed
-- every delivery failed but the 6 oldest.
CREATE FUNCTION pg_temp.load_mix(tenant text, n bigint, all_failed boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	PERFORM integration.register_webhook('ep ' || i, 'https://bench.invalid/' || i, '["order.*"]'::jsonb)
	  FROM generate_series(1, 20) i;
	CREATE TEMP TABLE eps ON COMMIT DROP AS
		SELECT id, row_number() OVER (ORDER BY id) AS k FROM integration.webhook_endpoints WHERE tenant_id = tenant;
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids, created_at)
	SELECT CASE WHEN g % 2 = 0 THEN 'order.a' ELSE 'order.b' END,
		   integration.envelope(CASE WHEN g % 2 = 0 THEN 'order.a' ELSE 'order.b' END, jsonb_build_object('n', g)),
		   CASE WHEN g % 2 = 0 THEN ARRAY[(SELECT id FROM eps WHERE k = 1), (SELECT id FROM eps WHERE k = 2)]
				WHEN g < 20 THEN ARRAY[(SELECT id FROM eps WHERE k = 1), (SELECT id FROM eps WHERE k = 3)]
				ELSE ARRAY[(SELECT id FROM eps WHERE k = 3 + g % 9), (SELECT id FROM eps WHERE k = 12 + g % 9)] END,
		   now() - interval '1 second' * (n / 2 - g) / 10
	  FROM generate_series(1, n / 2) g;
	-- Without statistics of the new events, the planner looked each one up through
	-- webhook_events_created_idx, a walk of the tenant's events each: quadratic in N.
	ANALYZE integration.webhook_events;
	WITH q AS (
		DELETE FROM integration.webhook_event_queue q WHERE q.tenant_id = tenant RETURNING q.event_id),
	e AS (SELECT e.*, row_number() OVER (ORDER BY e.id) AS g
			FROM q JOIN integration.webhook_events e ON e.tenant_id = tenant AND e.id = q.event_id)
	INSERT INTO integration.deliveries (event_id, endpoint_id, status, attempts, next_attempt_at,
										lease_expires_at, last_error, created_at, delivered_at)
	SELECT e.id, u.ep, s.st, 1, NULL, NULL, CASE WHEN s.st = 'failed' THEN 'HTTP 500' END, e.created_at,
		   CASE WHEN s.st = 'delivered' THEN e.created_at END
	  FROM e CROSS JOIN LATERAL unnest(e.endpoint_ids) u(ep)
	 CROSS JOIN LATERAL (SELECT CASE WHEN all_failed THEN CASE WHEN e.g <= 3 THEN 'delivered' ELSE 'failed' END
									 WHEN (e.event = 'order.b') <> (e.g <= 20) THEN 'failed'
									 ELSE 'delivered' END AS st) s;
END
$$;
-- Tenant bench also gets N inbound events of two connectors and N connector calls, ten
-- a second: the rare connector, the event generic.rare.x, failed and pending one in
-- 10,000 each (the oldest of each ten thousand), the others processed or skipped
-- (succeeded for calls).
CREATE FUNCTION pg_temp.load_connectors(tenant text, n bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	ca bigint;
	cb bigint;
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	SELECT id INTO ca FROM integration.create_connector('generic', 'common', 'https://a.bench.invalid', '{"token": "t"}');
	SELECT id INTO cb FROM integration.create_connector('generic', 'rare', 'https://b.bench.invalid', '{"token": "t"}');
	INSERT INTO integration.inbound_events (connector_id, external_id, topic, event, payload, received_at,
											status, next_attempt_at, last_error, processed_at)
	SELECT CASE WHEN g % 10000 = 1 THEN cb ELSE ca END, 'x' || g, 't',
		   CASE WHEN g % 10000 = 2 THEN 'generic.rare.x' ELSE 'generic.order.created' END, '{}'::jsonb,
		   now() - interval '1 second' * (n - g) / 10,
		   s, CASE WHEN s = 'pending' THEN now() END, CASE WHEN s = 'failed' THEN 'boom' END,
		   CASE WHEN s <> 'pending' THEN now() END
	  FROM generate_series(1, n) g,
		   LATERAL (SELECT CASE WHEN g % 10000 = 3 THEN 'failed' WHEN g % 10000 = 4 THEN 'pending'
								WHEN g % 3 = 0 THEN 'skipped' ELSE 'processed' END AS s) x;
	INSERT INTO integration.connector_calls (connector_id, operation, status, next_attempt_at, created_at,
											 finished_at, last_error)
	SELECT CASE WHEN g % 10000 = 1 THEN cb ELSE ca END, 'POST /x', s,
		   CASE WHEN s = 'pending' THEN now() END, now() - interval '1 second' * (n - g) / 10,
		   CASE WHEN s <> 'pending' THEN now() END, CASE WHEN s = 'failed' THEN 'boom' END
	  FROM generate_series(1, n) g,
		   LATERAL (SELECT CASE WHEN g % 10000 = 3 THEN 'failed' WHEN g % 10000 = 4 THEN 'pending'
								ELSE 'succeeded' END AS s) x;
END
$$;
-- The other tenant first and last, so that the two interleave in every index.
SELECT pg_temp.load('bench-other', :deliveries / 10, 5);
SELECT pg_temp.load('bench', :deliveries, 20);
SELECT pg_temp.load('bench-other2', :deliveries / 10, 5);
SELECT pg_temp.load_mix('bench-mix', :deliveries, false);
SELECT pg_temp.load_mix('bench-failed', :deliveries, true);
-- Older builds have no connectors (bench/ab runs them too).
SELECT pg_temp.load_connectors('bench', :deliveries)
 WHERE to_regprocedure('integration.list_connector_calls(integer,bigint,text,timestamptz)') IS NOT NULL;
VACUUM ANALYZE;
\o

SET integration.tenant_id = 'bench';
CREATE TEMP TABLE marks AS
	SELECT (SELECT min(id) + 4 FROM integration.webhook_endpoints WHERE tenant_id = 'bench') AS ep,
		   (SELECT max(id) FROM integration.webhook_endpoints WHERE tenant_id = 'bench') AS rare_ep,
		   (SELECT max(id) - :deliveries / 4 FROM integration.webhook_events WHERE tenant_id = 'bench') AS mid_event,
		   (SELECT max(id) - :deliveries / 2 FROM integration.integration_logs WHERE tenant_id = 'bench') AS mid_log;
CREATE TEMP TABLE mix AS
	SELECT tenant_id, min(id) AS ep1, min(id) + 2 AS ep3 FROM integration.webhook_endpoints
	 WHERE tenant_id IN ('bench-mix', 'bench-failed') GROUP BY tenant_id;
CREATE TEMP TABLE q (n serial, label text, sql text, tenant text DEFAULT 'bench');
INSERT INTO q (label, sql) VALUES
	('list_deliveries(50)', 'SELECT * FROM integration.list_deliveries(50)'),
	('  endpoint_id => one of 19', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep FROM marks))'),
	('  endpoint_id => the rare one', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT rare_ep FROM marks))'),
	('  status => ''failed''', 'SELECT * FROM integration.list_deliveries(50, status => ''failed'')'),
	('  status => ''pending''', 'SELECT * FROM integration.list_deliveries(50, status => ''pending'')'),
	('  status => ''delivered''', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'')'),
	('  status => ''sending'' (no index)', 'SELECT * FROM integration.list_deliveries(50, status => ''sending'')'),
	('  status => ''sending'', event => one of 4', 'SELECT * FROM integration.list_deliveries(50, status => ''sending'', event => ''order.created'')'),
	('  status => ''skipped'' (none)', 'SELECT * FROM integration.list_deliveries(50, status => ''skipped'')'),
	('  event => one of 4', 'SELECT * FROM integration.list_deliveries(50, event => ''order.created'')'),
	('  event => ''rare.event''', 'SELECT * FROM integration.list_deliveries(50, event => ''rare.event'')'),
	('  since => 1 minute ago', 'SELECT * FROM integration.list_deliveries(50, since => now() - interval ''1 minute'')'),
	('  since => 1 second ago', 'SELECT * FROM integration.list_deliveries(50, since => now() - interval ''1 second'')'),
	('list_integration_logs(50)', 'SELECT * FROM integration.list_integration_logs(50)'),
	('  level => ''error''', 'SELECT * FROM integration.list_integration_logs(50, level => ''error'')'),
	('  source => ''api''', 'SELECT * FROM integration.list_integration_logs(50, source => ''api'')'),
	('  event => ''webhook.updated''', 'SELECT * FROM integration.list_integration_logs(50, event => ''webhook.updated'')'),
	('  since => 1 second ago', 'SELECT * FROM integration.list_integration_logs(50, since => now() - interval ''1 second'')');
INSERT INTO q (label, sql, tenant) VALUES
	('bench-mix: failed, event => order.a (20)', 'SELECT * FROM integration.list_deliveries(50, status => ''failed'', event => ''order.a'')', 'bench-mix'),
	('  delivered, event => order.b (20)', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'', event => ''order.b'')', 'bench-mix'),
	('  endpoint 1, event => order.b (10)', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep1 FROM mix WHERE tenant_id = ''bench-mix''), event => ''order.b'')', 'bench-mix'),
	('  endpoint 3, event => order.a (0)', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep3 FROM mix WHERE tenant_id = ''bench-mix''), event => ''order.a'')', 'bench-mix'),
	('  endpoint 1, failed (10)', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep1 FROM mix WHERE tenant_id = ''bench-mix''), status => ''failed'')', 'bench-mix'),
	('  endpoint 3, delivered (10)', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep3 FROM mix WHERE tenant_id = ''bench-mix''), status => ''delivered'')', 'bench-mix'),
	('  sending (none)', 'SELECT * FROM integration.list_deliveries(50, status => ''sending'')', 'bench-mix'),
	('  sending, event => order.a (none)', 'SELECT * FROM integration.list_deliveries(50, status => ''sending'', event => ''order.a'')', 'bench-mix'),
	('  skipped (none)', 'SELECT * FROM integration.list_deliveries(50, status => ''skipped'')', 'bench-mix'),
	('bench-failed: delivered (6)', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'')', 'bench-failed'),
	('  delivered, event => order.b (2)', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'', event => ''order.b'')', 'bench-failed'),
	('  delivered, endpoint 1 (3)', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'', endpoint_id => (SELECT ep1 FROM mix WHERE tenant_id = ''bench-failed''))', 'bench-failed');
INSERT INTO q (label, sql)
SELECT label, sql FROM (VALUES
	('list_inbound_events(50)', 'SELECT * FROM integration.list_inbound_events(50)'),
	('  connector_id => the rare one', 'SELECT * FROM integration.list_inbound_events(50, connector_id => (SELECT max(id) FROM integration.connectors WHERE tenant_id = ''bench''))'),
	('  status => ''failed''', 'SELECT * FROM integration.list_inbound_events(50, status => ''failed'')'),
	('  status => ''skipped''', 'SELECT * FROM integration.list_inbound_events(50, status => ''skipped'')'),
	('  event => ''generic.rare.x''', 'SELECT * FROM integration.list_inbound_events(50, event => ''generic.rare.x'')'),
	('  since => 1 second before the newest', 'SELECT * FROM integration.list_inbound_events(50, since => (SELECT max(received_at) - interval ''1 second'' FROM integration.inbound_events WHERE tenant_id = ''bench''))'),
	('  since => 1 minute ago', 'SELECT * FROM integration.list_inbound_events(50, since => now() - interval ''1 minute'')'),
	('list_connector_calls(50)', 'SELECT * FROM integration.list_connector_calls(50)'),
	('  connector_id => the rare one', 'SELECT * FROM integration.list_connector_calls(50, connector_id => (SELECT max(id) FROM integration.connectors WHERE tenant_id = ''bench''))'),
	('  status => ''failed''', 'SELECT * FROM integration.list_connector_calls(50, status => ''failed'')'),
	('  status => ''sending'' (none)', 'SELECT * FROM integration.list_connector_calls(50, status => ''sending'')'),
	('  since => 1 second before the newest', 'SELECT * FROM integration.list_connector_calls(50, since => (SELECT max(created_at) - interval ''1 second'' FROM integration.connector_calls WHERE tenant_id = ''bench''))')) v(label, sql)
 WHERE to_regprocedure('integration.list_connector_calls(integer,bigint,text,timestamptz)') IS NOT NULL;
-- The keyset arguments, where this version has them (bench/ab runs older builds too).
INSERT INTO q (label, sql)
SELECT '  a page in the middle', 'SELECT * FROM integration.list_deliveries(50, before_event_id => (SELECT mid_event FROM marks), before_endpoint_id => 0)'
 WHERE EXISTS (SELECT FROM pg_proc WHERE proname = 'list_deliveries' AND 'before_event_id' = ANY (proargnames));
INSERT INTO q (label, sql)
SELECT '  a page in the middle (logs)', 'SELECT * FROM integration.list_integration_logs(50, before_id => (SELECT mid_log FROM marks))'
 WHERE EXISTS (SELECT FROM pg_proc WHERE proname = 'list_integration_logs' AND 'before_id' = ANY (proargnames));

\echo
\echo 'lists:' :deliveries 'deliveries and' :deliveries 'log rows in the tenant, 50 rows a call, median (max) of 7 calls'
\ir time_calls.sql
