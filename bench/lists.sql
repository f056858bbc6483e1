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
-- The other tenant first and last, so that the two interleave in every index.
SELECT pg_temp.load('bench-other', :deliveries / 10, 5);
SELECT pg_temp.load('bench', :deliveries, 20);
SELECT pg_temp.load('bench-other2', :deliveries / 10, 5);
VACUUM ANALYZE;
\o

SET integration.tenant_id = 'bench';
CREATE TEMP TABLE marks AS
	SELECT (SELECT min(id) + 4 FROM integration.webhook_endpoints WHERE tenant_id = 'bench') AS ep,
		   (SELECT max(id) FROM integration.webhook_endpoints WHERE tenant_id = 'bench') AS rare_ep,
		   (SELECT max(id) - :deliveries / 4 FROM integration.webhook_events WHERE tenant_id = 'bench') AS mid_event,
		   (SELECT max(id) - :deliveries / 2 FROM integration.integration_logs WHERE tenant_id = 'bench') AS mid_log;
CREATE TEMP TABLE q (n serial, label text, sql text);
INSERT INTO q (label, sql) VALUES
	('list_deliveries(50)', 'SELECT * FROM integration.list_deliveries(50)'),
	('  endpoint_id => one of 19', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT ep FROM marks))'),
	('  endpoint_id => the rare one', 'SELECT * FROM integration.list_deliveries(50, endpoint_id => (SELECT rare_ep FROM marks))'),
	('  status => ''failed''', 'SELECT * FROM integration.list_deliveries(50, status => ''failed'')'),
	('  status => ''pending''', 'SELECT * FROM integration.list_deliveries(50, status => ''pending'')'),
	('  status => ''delivered''', 'SELECT * FROM integration.list_deliveries(50, status => ''delivered'')'),
	('  status => ''sending'' (no index)', 'SELECT * FROM integration.list_deliveries(50, status => ''sending'')'),
	('  event => one of 4', 'SELECT * FROM integration.list_deliveries(50, event => ''order.created'')'),
	('  event => ''rare.event''', 'SELECT * FROM integration.list_deliveries(50, event => ''rare.event'')'),
	('  since => 1 minute ago', 'SELECT * FROM integration.list_deliveries(50, since => now() - interval ''1 minute'')'),
	('  since => 1 second ago', 'SELECT * FROM integration.list_deliveries(50, since => now() - interval ''1 second'')'),
	('list_integration_logs(50)', 'SELECT * FROM integration.list_integration_logs(50)'),
	('  level => ''error''', 'SELECT * FROM integration.list_integration_logs(50, level => ''error'')'),
	('  source => ''api''', 'SELECT * FROM integration.list_integration_logs(50, source => ''api'')'),
	('  event => ''webhook.updated''', 'SELECT * FROM integration.list_integration_logs(50, event => ''webhook.updated'')'),
	('  since => 1 second ago', 'SELECT * FROM integration.list_integration_logs(50, since => now() - interval ''1 second'')');
-- The keyset arguments, where this version has them (bench/ab runs older builds too).
INSERT INTO q (label, sql)
SELECT '  a page in the middle', 'SELECT * FROM integration.list_deliveries(50, before_event_id => (SELECT mid_event FROM marks), before_endpoint_id => 0)'
 WHERE EXISTS (SELECT FROM pg_proc WHERE proname = 'list_deliveries' AND 'before_event_id' = ANY (proargnames));
INSERT INTO q (label, sql)
SELECT '  a page in the middle (logs)', 'SELECT * FROM integration.list_integration_logs(50, before_id => (SELECT mid_log FROM marks))'
 WHERE EXISTS (SELECT FROM pg_proc WHERE proname = 'list_integration_logs' AND 'before_id' = ANY (proargnames));

CREATE TEMP TABLE timings (n int, label text, rows bigint, median_ms numeric, max_ms numeric);
DO $$
DECLARE
	r record;
	t timestamptz;
	ms float8[];
	c bigint;
BEGIN
	FOR r IN SELECT * FROM q ORDER BY n LOOP
		ms := '{}';
		FOR i IN 1..7 LOOP
			t := clock_timestamp();
			EXECUTE 'SELECT count(*) FROM (' || r.sql || ') s' INTO c;
			ms := ms || extract(epoch FROM clock_timestamp() - t) * 1000;
		END LOOP;
		INSERT INTO timings
		SELECT r.n, r.label, c, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2),
			   round(max(x)::numeric, 2)
		  FROM unnest(ms) x;
	END LOOP;
END
$$;

\echo
\echo 'lists:' :deliveries 'deliveries and' :deliveries 'log rows in the tenant, 50 rows a call, median (max) of 7 calls'
SELECT format('%-38s %5s %10s %10s', 'call', 'rows', 'median ms', 'max ms')
UNION ALL
SELECT format('%-38s %5s %10s %10s', label, rows, median_ms, max_ms) FROM (SELECT * FROM timings ORDER BY n) t
\g (tuples_only=on format=unaligned)
