-- Routing in a tenant with more endpoints than the endpoint cache reads whole
-- (src/endpoint_cache.c, ENDPOINT_CACHE_WHOLE_MAX = 100): each event name's endpoints
-- are looked up through the index of pattern keys (src/pattern_keys.c) and then matched
-- exactly.  The same endpoints as event_matches() finds trying every pattern, in a new
-- backend, a warm one, after committed changes and inside a transaction that makes
-- them; active endpoints first, then those the worker disabled; never a deleted one or
-- another tenant's.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- The keys: a pattern that matches an event name has one of the name's keys, for every
-- pair of these patterns and names (the same pairs as test/sql/event_matching.sql and
-- routing.sql, and deeper ones).
CREATE TABLE public.key_patterns (p text);
INSERT INTO key_patterns
SELECT unnest(ARRAY['*', '**', 'a', 'b', 'a.b', 'a.c', 'b.b', 'a.*', 'a.**', '*.b', '*.*',
					'*.**', 'a.*.c', 'a.*.**', '*.b.**', '*.*.*', 'a.b.c', 'a.b.**', 'a.b.c.d',
					'x.**', 'x.*.z', '*.y.*', 'a-b.c_d', 'A.b', 'a.b.c.*', '*.*.c.**',
					'a.b.c.**', 'a.b.c.d.**', '*.*.*.**', '*.*.*.*.**', 'a.b.c.d.e', 'a.*.c.d.e',
					'*.*.*.*', 'a.b.c.x', 'q.*', '*.q', 'order.**', 'order.*.created',
					-- invalid: no key, never a match
					'order.', 'ord*', '**.x', 'a.**.b', '']);
CREATE TABLE public.key_events (e text);
INSERT INTO key_events
SELECT unnest(ARRAY['a', 'b', 'q', 'x', 'a.b', 'a.c', 'b.b', 'a.x', 'x.y', 'A.b', 'a.B',
					'a.b.c', 'a.x.c', 'x.y.z', 'b.y.z', 'x.q.z', 'a.b.c.d', 'a.b.x.d',
					'q.q.c.q', 'a.b.c.d.e', 'a.b.c.x', 'a.x.c.d.e', 'a.b.c.d.e.f', 'a-b.c_d',
					'x.y.z.w.v', 'zz.b.yy', 'order.created', 'order.line.created',
					'a' || repeat('.b', 50),
					-- invalid: no key
					'', 'a.', 'a..b', 'a.*']);
SELECT count(*) FILTER (WHERE matches) AS matching_pairs,
	   count(*) FILTER (WHERE matches AND NOT candidate) AS matching_without_a_key,
	   count(*) FILTER (WHERE candidate) AS candidate_pairs
  FROM (SELECT integration.event_matches(jsonb_build_array(p), e) AS matches,
			   integration._event_pattern_keys('t', jsonb_build_array(p))
				 && integration._event_name_keys('t', e) AS candidate
		  FROM key_patterns, key_events) k;
-- Other tenants' keys never meet: not for a tenant whose name is a prefix of another's.
SELECT count(*) AS across_tenants
  FROM key_patterns, key_events
 WHERE integration._event_pattern_keys('t', jsonb_build_array(p))
	   && integration._event_name_keys('t1', e)
	OR integration._event_pattern_keys('t1', jsonb_build_array(p))
	   && integration._event_name_keys('t', e);
-- The keys as written, and at most 24 a name.
SELECT integration._event_pattern_keys('t', '["*", "**", "a.b", "a.*.c.d", "a.**", "a.b.c.d.**", "ord*", 3]') AS pattern_keys;
SELECT integration._event_name_keys('t', 'a.b') AS name_keys;
SELECT max(cardinality(integration._event_name_keys('t', e))) AS most_keys FROM key_events;

-- Tenant route-big: one endpoint per pattern above, endpoints with several patterns,
-- 150 that match none of the events, two disabled by the worker, one disabled through
-- the API and one deleted.  Tenant route-twin has the same patterns: none of its
-- endpoints is ever routed to from route-big, nor the other way round.
CREATE FUNCTION pg_temp.fill(tenant text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	INSERT INTO integration.webhook_endpoints (name, url, events)
	SELECT 'p ' || n, 'https://route.example.invalid/' || n, jsonb_build_array(p)
	  FROM (SELECT p, row_number() OVER (ORDER BY p COLLATE "C") AS n FROM public.key_patterns
			 WHERE p NOT IN ('order.', 'ord*', '**.x', 'a.**.b', '')) AS t;
	INSERT INTO integration.webhook_endpoints (name, url, events)
	VALUES ('several 1', 'https://route.example.invalid/s1', '["a.b", "a.*", "a.**"]'),
		   ('several 2', 'https://route.example.invalid/s2', '["x.y.z", "*.y.*", "b"]'),
		   ('several 3', 'https://route.example.invalid/s3', '["a.b.c", "a.b.c"]'),
		   ('several 4', 'https://route.example.invalid/s4', '["q", "*"]');
	INSERT INTO integration.webhook_endpoints (name, url, events)
	SELECT 'filler ' || i, 'https://route.example.invalid/f' || i,
		   jsonb_build_array(CASE i % 5 WHEN 0 THEN 'a.b.c.f' || i WHEN 1 THEN 'a.f' || i || '.**'
							 WHEN 2 THEN '*.f' || i WHEN 3 THEN 'f' || i || '.*' ELSE 'a.*.f' || i END)
	  FROM generate_series(1, 150) i;
	INSERT INTO integration.webhook_endpoints (name, url, events, is_active, disabled_at, disabled_reason)
	VALUES ('worker-disabled 1', 'https://route.example.invalid/d1', '["a.*"]', false, now(), 'test'),
		   ('worker-disabled 2', 'https://route.example.invalid/d2', '["*"]', false, now(), 'test'),
		   ('api-disabled', 'https://route.example.invalid/off', '["*"]', false, NULL, NULL);
	INSERT INTO integration.webhook_endpoints (name, url, events, deleted_at)
	VALUES ('deleted', 'https://route.example.invalid/gone', '["*"]', now());
	PERFORM set_config('integration.tenant_id', '', true);
END
$$;
SELECT pg_temp.fill('route-big'), pg_temp.fill('route-twin');
SELECT tenant_id, count(*) FILTER (WHERE deleted_at IS NULL AND (is_active OR disabled_at IS NOT NULL)) AS receiving
  FROM integration.webhook_endpoints WHERE tenant_id IN ('route-big', 'route-twin') GROUP BY 1 ORDER BY 1;

-- What each event should go to: active endpoints, then those the worker disabled, each
-- by id, as event_matches() finds them.
CREATE VIEW public.route_expected AS
SELECT w.tenant_id, k.e AS event,
	   ARRAY(SELECT x.id FROM integration.webhook_endpoints x
			  WHERE x.tenant_id = w.tenant_id AND x.deleted_at IS NULL
				AND (x.is_active OR x.disabled_at IS NOT NULL) AND integration.event_matches(x.events, k.e)
			  ORDER BY NOT x.is_active, x.id) AS ids
  FROM (SELECT DISTINCT tenant_id FROM integration.webhook_endpoints) w,
	   (SELECT e FROM public.key_events WHERE integration.event_matches('["*"]', e)) k;
GRANT SELECT ON public.route_expected TO integration_test_app;

-- Publishes every valid event name once as tenant; returns how many events went where
-- event_matches() says, and how many elsewhere.
CREATE FUNCTION public.route_check(tenant text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	mark bigint;
	same int;
	other int;
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	mark := (SELECT coalesce(max(id), 0) FROM integration.webhook_events);
	PERFORM integration.publish_event(x.event, '{}') FROM public.route_expected x WHERE x.tenant_id = tenant;
	SELECT count(*) FILTER (WHERE coalesce(e.endpoint_ids = x.ids, cardinality(x.ids) = 0)),
		   count(*) FILTER (WHERE NOT coalesce(e.endpoint_ids = x.ids, cardinality(x.ids) = 0))
	  INTO same, other
	  FROM public.route_expected x
	  LEFT JOIN integration.webhook_events e ON e.event = x.event AND e.id > mark AND e.tenant_id = tenant
	 WHERE x.tenant_id = tenant;
	RETURN format('%s as event_matches, %s not', same, other);
END
$$;
GRANT EXECUTE ON FUNCTION public.route_check(text) TO integration_test_app;

-- A new backend: its first events of each tenant.
\c
SET client_min_messages = warning;
SET ROLE integration_test_app;
SELECT integration._endpoint_cache_state('route-big') AS cached_before;
SELECT public.route_check('route-big') AS route_big_new_backend,
	   integration._endpoint_cache_state('route-big') AS cached;
SELECT public.route_check('route-twin') AS route_twin;
-- Warm: remembered.
SELECT public.route_check('route-big') AS route_big_warm,
	   integration._endpoint_cache_state('route-big') AS cached;
RESET ROLE;
SELECT count(DISTINCT (e.tenant_id, e.event)) AS events_seen,
	   count(*) FILTER (WHERE w.tenant_id <> e.tenant_id OR w.deleted_at IS NOT NULL) AS to_deleted_or_other_tenants
  FROM integration.webhook_events e
  CROSS JOIN LATERAL unnest(e.endpoint_ids) u(id)
  JOIN integration.webhook_endpoints w ON w.id = u.id
 WHERE e.tenant_id IN ('route-big', 'route-twin');
SET ROLE integration_test_app;

-- Committed changes reach the next publish of this warm backend and of a new one: a new
-- endpoint, a changed pattern, a deleted one, one the worker disabled, one enabled.
SET integration.tenant_id = 'route-big';
SELECT count(*) AS registered FROM integration.register_webhook('new', 'https://route.example.invalid/new', '["a.*.c", "x.**"]');
SELECT count(*) AS changed FROM integration.update_webhook(
	(SELECT id FROM integration.webhook_endpoints WHERE name = 'p 5'), events => '["zz.*.yy"]');
SELECT integration.delete_webhook((SELECT id FROM integration.webhook_endpoints WHERE name = 'p 1')) AS deleted;
RESET ROLE;
SET integration.tenant_id = 'route-big';
UPDATE integration.webhook_endpoints SET is_active = false, disabled_at = now(), disabled_reason = 'test'
 WHERE tenant_id = 'route-big' AND name = 'p 8';
UPDATE integration.webhook_endpoints SET is_active = true, disabled_at = NULL, disabled_reason = NULL
 WHERE tenant_id = 'route-big' AND name = 'worker-disabled 1';
SET ROLE integration_test_app;
SELECT public.route_check('route-big') AS route_big_after_changes,
	   public.route_check('route-twin') AS route_twin_unchanged;
\c
SET client_min_messages = warning;
SET ROLE integration_test_app;
SELECT public.route_check('route-big') AS route_big_new_backend_after_changes;

-- Inside a transaction that changes endpoints: its own changes, read afresh each time;
-- rolled back, they are forgotten.
BEGIN;
SET LOCAL integration.tenant_id = 'route-big';
SELECT count(*) AS registered FROM integration.register_webhook('inside', 'https://route.example.invalid/in', '["*.b", "b.**"]');
SELECT count(*) AS changed FROM integration.update_webhook(
	(SELECT id FROM integration.webhook_endpoints WHERE name = 'p 7'), events => '["q.q.c.q"]');
SELECT integration.delete_webhook((SELECT id FROM integration.webhook_endpoints WHERE name = 'p 6')) AS deleted;
SELECT public.route_check('route-big') AS inside_transaction;
ROLLBACK;
SELECT public.route_check('route-big') AS after_rollback;

-- 101 receiving endpoints: looked up through the index; 100: read whole, without it.
RESET ROLE;
SET integration.tenant_id = 'route-twin';
DELETE FROM integration.webhook_endpoints
 WHERE tenant_id = 'route-twin' AND name LIKE 'filler %' AND substr(name, 8)::int > 57;
SELECT count(*) AS receiving FROM integration.webhook_endpoints
 WHERE tenant_id = 'route-twin' AND deleted_at IS NULL AND (is_active OR disabled_at IS NOT NULL);
SET ROLE integration_test_app;
SELECT public.route_check('route-twin') AS route_twin_101,
	   integration._endpoint_cache_state('route-twin') AS cached;
RESET ROLE;
DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'route-twin' AND name = 'filler 57';
SET ROLE integration_test_app;
SELECT public.route_check('route-twin') AS route_twin_100,
	   integration._endpoint_cache_state('route-twin') AS cached;

-- A lookup whose candidates outgrow work_mem gets a lossy bitmap: whole heap pages,
-- each read line pointer by line pointer, HOT chains followed.  4,800 endpoints about
-- two a page (fillfactor 15: some 2,400 pages, twice what 64kB holds exactly), most
-- of them matching, a fifth of them updated in place, under the smallest work_mem.
RESET ROLE;
ALTER TABLE integration.webhook_endpoints SET (fillfactor = 15);
SET integration.tenant_id = 'route-lossy';
INSERT INTO integration.webhook_endpoints (name, url, events, is_active, disabled_at, deleted_at)
SELECT 'lossy ' || i, 'https://route.example.invalid/l' || i,
	   jsonb_build_array(CASE i % 4 WHEN 0 THEN '*' WHEN 1 THEN 'a.**' WHEN 2 THEN 'a.*.x' ELSE '*.b' END),
	   i % 7 <> 0, CASE WHEN i % 14 = 0 THEN now() END, CASE WHEN i % 13 = 0 THEN now() END
  FROM generate_series(1, 4800) i;
BEGIN;
UPDATE integration.webhook_endpoints SET is_active = NOT is_active, updated_at = now()
 WHERE tenant_id = 'route-lossy' AND substr(name, 7)::int % 5 = 0 AND disabled_at IS NULL;
SELECT pg_stat_get_xact_tuples_hot_updated('integration.webhook_endpoints'::regclass) > 0 AS hot_updates;
COMMIT;
ALTER TABLE integration.webhook_endpoints RESET (fillfactor);
\c
SET client_min_messages = warning;
SET work_mem = '64kB';
-- The same lookup as a query, planned as a bitmap scan, shows its pages lossy.
SET enable_seqscan = off;
CREATE FUNCTION pg_temp.lossy_pages() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
		SELECT count(*) FROM integration.webhook_endpoints
		 WHERE integration._event_pattern_keys(tenant_id, events) && integration._event_name_keys('route-lossy', 'a.b')
		   AND deleted_at IS NULL
	LOOP
		IF line ~ 'lossy=[1-9]' THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.lossy_pages() AS lossy_pages;
RESET enable_seqscan;
SET ROLE integration_test_app;
SELECT public.route_check('route-lossy') AS route_lossy,
	   integration._endpoint_cache_state('route-lossy') AS cached;
RESET ROLE;
SELECT cardinality(endpoint_ids) AS endpoints FROM integration.webhook_events
 WHERE tenant_id = 'route-lossy' AND event = 'a.b';
RESET work_mem;

RESET ROLE;
DROP FUNCTION public.route_check(text);
DROP VIEW public.route_expected;
DROP TABLE public.key_patterns, public.key_events;
-- Nothing left for the tests after this one to fan out or list.
CREATE FUNCTION pg_temp.forget(tenant text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	DELETE FROM integration.webhook_event_queue q WHERE q.tenant_id = tenant;
	DELETE FROM integration.webhook_events e WHERE e.tenant_id = tenant;
	DELETE FROM integration.webhook_endpoints w WHERE w.tenant_id = tenant;
END
$$;
SELECT count(pg_temp.forget(t)) AS tenants_removed
  FROM unnest(ARRAY['route-big', 'route-twin', 'route-lossy']) t;
RESET integration.tenant_id;
