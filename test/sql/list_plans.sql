-- The list functions read a tenant's newest rows in index order, whatever its history
-- holds: the plan of every filter is an index scan under a Limit, never a sort of the
-- tenant's rows (the statements come from _list_deliveries_sql() and
-- _list_integration_logs_sql(), which list_deliveries() and list_integration_logs()
-- run).  And pages given by the keyset arguments concatenate to the whole list, in
-- order, without a row twice or a row missing, ties included.
--
-- The tables are loaded below ANALYZE's sample size, so their statistics, and the
-- plans, are the same on every run.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- Ids from 700001 here, and back where they were at the end, for the files after.
CREATE TEMP TABLE lp_sequences AS
	SELECT format('%I.%I', schemaname, sequencename) AS seq, last_value
	  FROM pg_sequences
	 WHERE format('%I.%I', schemaname, sequencename) IN (pg_get_serial_sequence('integration.webhook_endpoints', 'id'),
							pg_get_serial_sequence('integration.webhook_events', 'id'),
							pg_get_serial_sequence('integration.deliveries', 'id'),
							pg_get_serial_sequence('integration.integration_logs', 'id'));
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 700001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 700001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 700001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 700001;

-- Tenant lp: 20 endpoints, the last one subscribed to rare.* only; 8,000 events at 40
-- per second, so each second's events share created_at as one transaction's do; each
-- to two endpoints, the rare.event ones (one in a thousand) to the last endpoint.  All
-- but the newest 40 events are fanned out: 1 delivery in 20 failed, 1 in 300 skipped,
-- 1 in 200 pending, 1 in 400 being sent, the others delivered.  Tenant lp-other has
-- its own rows in between, which no listing of lp may show.
SET ROLE integration_test_app;
SET integration.tenant_id = 'lp';
SELECT count(*) AS lp_endpoints FROM (
	SELECT integration.register_webhook('lp ' || i, 'https://lp.example.invalid/' || i,
			CASE WHEN i = 20 THEN '["rare.*"]' ELSE '["order.*", "rare.*"]' END::jsonb)
	  FROM generate_series(1, 20) i) r;
SET integration.tenant_id = 'lp-other';
SELECT id AS lp_other_ep FROM integration.register_webhook('other', 'https://lp.example.invalid/o', '["*"]') \gset
RESET ROLE;
RESET integration.tenant_id;
CREATE TEMP TABLE lp_eps AS
	SELECT id, row_number() OVER (ORDER BY id) AS n FROM integration.webhook_endpoints WHERE tenant_id = 'lp';
INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids, created_at)
SELECT t, ev, integration.envelope(ev, jsonb_build_object('n', g)),
	   CASE WHEN t = 'lp-other' THEN ARRAY[:lp_other_ep]
			WHEN ev = 'rare.event' THEN ARRAY[(SELECT id FROM lp_eps WHERE n = 20)]
			ELSE ARRAY[(SELECT id FROM lp_eps WHERE n = 1 + g % 19),
					   (SELECT id FROM lp_eps WHERE n = 1 + (g + 7) % 19)] END,
	   timestamptz '2026-03-01 12:00:00+00' + (g / 40) * interval '1 second'
  FROM generate_series(1, 8400) g,
	   LATERAL (SELECT CASE WHEN g % 21 = 0 THEN 'lp-other' ELSE 'lp' END AS t,
					   CASE WHEN g % 1000 = 0 THEN 'rare.event'
							ELSE (ARRAY['order.created', 'order.updated', 'order.paid'])[1 + g % 3] END AS ev) x;
WITH taken AS (
	DELETE FROM integration.webhook_event_queue q
	 WHERE q.event_id <= (SELECT max(id) - 40 FROM integration.webhook_events WHERE tenant_id IN ('lp', 'lp-other'))
	   AND q.tenant_id IN ('lp', 'lp-other')
	RETURNING q.tenant_id, q.event_id)
INSERT INTO integration.deliveries (tenant_id, event_id, endpoint_id, status, attempts, next_attempt_at,
									lease_expires_at, last_error, created_at, delivered_at)
SELECT e.tenant_id, e.id, u.ep, s.st, 1,
	   CASE WHEN s.st = 'pending' THEN e.created_at + interval '1 hour' END,
	   CASE WHEN s.st = 'sending' THEN e.created_at + interval '90 seconds' END,
	   CASE WHEN s.st IN ('failed', 'pending') THEN 'HTTP 500'
			WHEN s.st = 'skipped' THEN 'skipped: the endpoint is disabled' END,
	   e.created_at, CASE WHEN s.st = 'delivered' THEN e.created_at END
  FROM taken t
  JOIN integration.webhook_events e ON e.tenant_id = t.tenant_id AND e.id = t.event_id
 CROSS JOIN LATERAL unnest(e.endpoint_ids) WITH ORDINALITY AS u(ep, k)
 CROSS JOIN LATERAL (SELECT CASE WHEN (e.id + k) % 20 = 7 THEN 'failed'
								 WHEN (e.id + k) % 300 = 5 THEN 'skipped'
								 WHEN (e.id + k) % 200 = 3 THEN 'pending'
								 WHEN (e.id + k) % 400 = 11 THEN 'sending'
								 ELSE 'delivered' END AS st) s;
-- 12,000 log rows of lp, 300 per created_at, and some of lp-other.
INSERT INTO integration.integration_logs (tenant_id, level, source, event, message, created_at)
SELECT CASE WHEN g % 13 = 0 THEN 'lp-other' ELSE 'lp' END,
	   CASE WHEN g % 100 = 0 THEN 'error' WHEN g % 10 = 0 THEN 'warning' ELSE 'info' END,
	   CASE WHEN g % 4 = 0 THEN 'api' ELSE 'worker' END,
	   CASE WHEN g % 1000 = 1 THEN 'webhook.updated' ELSE 'delivery.retrying' END,
	   'line ' || g, timestamptz '2026-03-01 12:00:00+00' + (g / 300) * interval '1 second'
  FROM generate_series(1, 13000) g;
VACUUM ANALYZE integration.webhook_endpoints, integration.webhook_events, integration.webhook_event_queue,
	integration.deliveries, integration.integration_logs;
SELECT status, count(*) FROM integration.webhook_deliveries WHERE tenant_id = 'lp' GROUP BY 1 ORDER BY 1;
SELECT min(id) + 4 AS lp_ep5, max(id) AS lp_ep20 FROM lp_eps \gset

-- The plan of a statement, with its literals (ids, times) masked.
CREATE FUNCTION pg_temp.plan(statement text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || statement LOOP
		RETURN NEXT regexp_replace(line, '''[^'']*''::(bigint|timestamp with time zone)', '...', 'g');
	END LOOP;
END
$$;

-- A Memoize over the lookups of each delivery's event by key comes and goes with the
-- statistics the files before this one leave in webhook_events; it changes no scan.
SET enable_memoize = off;
-- As the application: row-level security adds its own condition to every scan.
SET ROLE integration_test_app;
SET integration.tenant_id = 'lp';

-- Deliveries.  Unfiltered: the newest events' deliveries by the unique key, merged with
-- the newest queued events (their pending deliveries, not fanned out yet).
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, NULL, NULL, NULL, NULL));
-- One endpoint: deliveries_endpoint_idx, and the queued events that go to it.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, :lp_ep5, NULL, NULL, NULL, NULL, NULL));
-- Failed and pending: their partial indexes, read in order, each delivery's event looked
-- up by key.  Failed for 50 of its 800: with a status test the planner could estimate,
-- it expected fewer failed rows than the limit (the shares of status and last_error
-- multiplied) and read and sorted all of them, as it did for 4,000 of 200,000 (13-25
-- ms); and the events joined plainly, it could merge them with the tenant's events read
-- newest first, down to the last failed delivery listed, however old.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, 'failed', NULL, NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, 'pending', NULL, NULL, NULL, NULL));
-- Delivered, most of them: the unique key, filtered.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, 'delivered', NULL, NULL, NULL, NULL));
-- An event name: its events newest first (webhook_events_event_idx), each joined to
-- its deliveries.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, 'rare.event', NULL, NULL, NULL));
-- An event name with a status that has its index, or with an endpoint: the keys of
-- both indexes, read from the indexes alone and merged, each key in both looked up.
-- Read through one and tested on the other, a combination rare in both read every row.
-- list_deliveries() runs its statements with enable_hashjoin off.
SET enable_hashjoin = off;
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, 'failed', 'order.paid', NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, :lp_ep5, NULL, 'order.paid', NULL, 703000, 700005));
RESET enable_hashjoin;
-- Since a time: the events that recent are counted first (webhook_events_created_idx).
-- A few: those events, by id.  More than a thousand: the newest events, filtered.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, NULL, '2026-03-01 12:03:20+00', NULL, NULL));
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, NULL, '2026-03-01 12:00:00+00', NULL, NULL));
-- The next page: the same scans, started at the cursor.
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, NULL, NULL, 703000, 700005));
-- Since a time with more than a thousand events, on a page: the deliveries from the
-- cursor on, not the tenant's events from the newest down to the cursor (which cost a
-- page deep in 200,000 deliveries 56 ms).
SELECT pg_temp.plan(integration._list_deliveries_sql('lp', 50, NULL, NULL, NULL, '2026-03-01 12:00:00+00', 703000, 700005));

-- Logs: one index per filter, each in (created_at, id) order.
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, NULL, NULL, NULL, NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, 'error', NULL, NULL, NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, NULL, 'api', NULL, NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, NULL, NULL, 'webhook.updated', NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, NULL, NULL, NULL, '2026-03-01 12:00:40+00', NULL, NULL));
SELECT pg_temp.plan(integration._list_integration_logs_sql('lp', 50, NULL, NULL, NULL, NULL, '2026-03-01 12:00:20+00', 705000));

-- Pages.  Each listing is read in pages of 7, each page after the last row of the one
-- before, and compared with the view (or the table) in full.
CREATE FUNCTION pg_temp.delivery_pages(endpoint_id bigint DEFAULT NULL, status text DEFAULT NULL,
									   event text DEFAULT NULL, since timestamptz DEFAULT NULL)
	RETURNS TABLE (pages integer, listed bigint, expected bigint, same_rows_in_order boolean)
	LANGUAGE plpgsql AS $$
DECLARE
	got bigint[] := '{}';
	want bigint[];
	page record;
	b_event bigint;
	b_endpoint bigint;
	n integer := 0;
	k integer;
BEGIN
	LOOP
		k := 0;
		FOR page IN SELECT * FROM integration.list_deliveries(7, endpoint_id, status, event, since,
															   b_event, b_endpoint) LOOP
			got := got || ARRAY[page.event_id, page.endpoint_id];
			b_event := page.event_id;
			b_endpoint := page.endpoint_id;
			k := k + 1;
		END LOOP;
		EXIT WHEN k = 0;
		n := n + 1;
	END LOOP;
	SELECT coalesce(array_agg(x ORDER BY d.event_id DESC, d.endpoint_id DESC, o), '{}') INTO want
	  FROM integration.webhook_deliveries d,
		   LATERAL (VALUES (1, d.event_id), (2, d.endpoint_id)) AS v(o, x)
	 WHERE d.tenant_id = 'lp'
	   AND (delivery_pages.endpoint_id IS NULL OR d.endpoint_id = delivery_pages.endpoint_id)
	   AND (delivery_pages.status IS NULL OR d.status = delivery_pages.status)
	   AND (delivery_pages.event IS NULL OR d.event = delivery_pages.event)
	   AND (delivery_pages.since IS NULL OR d.created_at >= delivery_pages.since);
	RETURN QUERY SELECT n, cardinality(got)::bigint / 2, cardinality(want)::bigint / 2, got = want;
END
$$;
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep5);
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep20);
SELECT * FROM pg_temp.delivery_pages(status => 'failed');
SELECT * FROM pg_temp.delivery_pages(status => 'pending');
SELECT * FROM pg_temp.delivery_pages(status => 'sending');
SELECT * FROM pg_temp.delivery_pages(status => 'skipped');
SELECT * FROM pg_temp.delivery_pages(event => 'rare.event');
SELECT * FROM pg_temp.delivery_pages(since => '2026-03-01 12:03:20+00');
SELECT * FROM pg_temp.delivery_pages(since => '2026-03-01 12:02:30+00');
SELECT * FROM pg_temp.delivery_pages(status => 'failed', since => '2026-03-01 12:02:30+00');
SELECT * FROM pg_temp.delivery_pages(status => 'failed', event => 'order.paid');
SELECT * FROM pg_temp.delivery_pages(status => 'skipped', event => 'order.created');
SELECT * FROM pg_temp.delivery_pages(status => 'pending', event => 'order.updated');
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep5, event => 'order.paid');
-- A name with "e." in it, which the statement must quote as it is.
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep20, event => 'rare.event');
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep5, status => 'failed', event => 'order.updated');
SELECT * FROM pg_temp.delivery_pages(endpoint_id => :lp_ep5, status => 'delivered', event => 'order.updated');
SELECT * FROM pg_temp.delivery_pages(status => 'sending', event => 'order.created');
SELECT * FROM pg_temp.delivery_pages(status => 'failed', event => 'order.paid', since => '2026-03-01 12:02:30+00');
-- Every delivery of lp, some 2,300 pages.
SELECT * FROM pg_temp.delivery_pages();

CREATE FUNCTION pg_temp.log_pages(level text DEFAULT NULL, source text DEFAULT NULL,
								  event text DEFAULT NULL, since timestamptz DEFAULT NULL)
	RETURNS TABLE (pages integer, listed bigint, expected bigint, same_rows_in_order boolean)
	LANGUAGE plpgsql AS $$
DECLARE
	got bigint[] := '{}';
	want bigint[];
	page record;
	b_id bigint;
	n integer := 0;
	k integer;
BEGIN
	LOOP
		k := 0;
		FOR page IN SELECT * FROM integration.list_integration_logs(7, level, source, event, since, b_id) LOOP
			got := got || page.id;
			b_id := page.id;
			k := k + 1;
		END LOOP;
		EXIT WHEN k = 0;
		n := n + 1;
	END LOOP;
	SELECT coalesce(array_agg(l.id ORDER BY l.created_at DESC, l.id DESC), '{}') INTO want
	  FROM integration.integration_logs l
	 WHERE l.tenant_id = 'lp'
	   AND (log_pages.level IS NULL OR l.level = log_pages.level)
	   AND (log_pages.source IS NULL OR l.source = log_pages.source)
	   AND (log_pages.event IS NULL OR l.event = log_pages.event)
	   AND (log_pages.since IS NULL OR l.created_at >= log_pages.since);
	RETURN QUERY SELECT n, cardinality(got)::bigint, cardinality(want)::bigint, got = want;
END
$$;
SELECT * FROM pg_temp.log_pages(level => 'error');
SELECT * FROM pg_temp.log_pages(source => 'api');
SELECT * FROM pg_temp.log_pages(event => 'webhook.updated');
SELECT * FROM pg_temp.log_pages(since => '2026-03-01 12:00:39+00');
SELECT * FROM pg_temp.log_pages();

-- The arguments a caller can get wrong.
SELECT * FROM integration.list_deliveries(status => 'lost');
SELECT * FROM integration.list_deliveries(before_endpoint_id => 1);
SELECT * FROM integration.list_integration_logs(level => 'fatal');
SELECT * FROM integration.list_integration_logs(before_id => 1);
-- Another tenant's row is no cursor either.
SELECT min(id) AS other_log FROM integration.integration_logs \gset
SET integration.tenant_id = 'lp-other';
SELECT count(*) FROM integration.list_integration_logs(before_id => :other_log);
RESET ROLE;
RESET integration.tenant_id;
RESET enable_memoize;

-- The other files count events by id: this file's go.
DELETE FROM integration.webhook_events WHERE tenant_id IN ('lp', 'lp-other');
DELETE FROM integration.integration_logs WHERE tenant_id IN ('lp', 'lp-other');
DELETE FROM integration.webhook_endpoints WHERE tenant_id IN ('lp', 'lp-other');
SELECT count(setval(seq, coalesce(last_value, 1), last_value IS NOT NULL)) AS sequences_restored FROM lp_sequences;
