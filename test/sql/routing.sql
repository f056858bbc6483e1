-- Routing a published event to a tenant's endpoints through the endpoint cache's index
-- of patterns (src/pattern_index.c): the same endpoints as event_matches() finds
-- trying every pattern, for every kind of pattern; and every change of an endpoint
-- reaches the next publish of this session, inside its own transaction too
-- (test/specs/routing_changes.spec has other sessions).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET ROLE integration_test_app;
SET integration.tenant_id = 'route';

-- One endpoint per pattern, and endpoints with several, overlapping patterns.
SELECT count(*) AS endpoints FROM (
	SELECT integration.register_webhook('p ' || p, 'https://route.example.invalid/' || n, jsonb_build_array(p))
	  FROM unnest(ARRAY['*', '**', 'a', 'b', 'a.b', 'a.c', 'b.b', 'a.*', 'a.**', '*.b', '*.*',
						'*.**', 'a.*.c', 'a.*.**', '*.b.**', '*.*.*', 'a.b.c', 'a.b.**', 'a.b.c.d',
						'x.**', 'x.*.z', '*.y.*', 'a-b.c_d', 'A.b', 'a.b.c.*', '*.*.c.**'])
		   WITH ORDINALITY AS t(p, n)) r;
SELECT count(*) AS with_several FROM (
	SELECT integration.register_webhook('several ' || n, 'https://route.example.invalid/s' || n, ps)
	  FROM (VALUES (1, '["a.b", "a.*", "a.**"]'::jsonb), (2, '["x.y.z", "*.y.*", "b"]'),
				   (3, '["a.b.c", "a.b.c"]'), (4, '["q", "*"]')) AS v(n, ps)) r;
-- Not routed to: a disabled endpoint and a deleted one, both with "*".
SELECT id AS route_off FROM integration.register_webhook('off', 'https://route.example.invalid/off', '["*"]') \gset
SELECT is_active FROM integration.update_webhook(:route_off, is_active => false);
SELECT id AS route_gone FROM integration.register_webhook('gone', 'https://route.example.invalid/gone', '["*"]') \gset
SELECT integration.delete_webhook(:route_gone);

-- Every event below, published once; its endpoint_ids against event_matches() applied
-- to every active endpoint.
CREATE TEMP TABLE route_events (event text);
INSERT INTO route_events VALUES ('a'), ('b'), ('q'), ('x'), ('a.b'), ('a.c'), ('b.b'), ('a.x'),
	('x.y'), ('A.b'), ('a.B'), ('a.b.c'), ('a.x.c'), ('x.y.z'), ('b.y.z'), ('x.q.z'),
	('a.b.c.d'), ('a.b.x.d'), ('q.q.c.q'), ('a.b.c.d.e'), ('a-b.c_d'), ('a_b.c-d'),
	('x.y.z.w.v'), ('zz.b.yy');
SELECT coalesce(max(id), 0) AS route_mark FROM integration.webhook_events \gset
SELECT count(integration.publish_event(event, '{}')) AS published FROM route_events;
WITH expected AS (
	SELECT r.event,
		   ARRAY(SELECT w.id FROM integration.webhook_endpoints w
				  WHERE w.is_active AND w.deleted_at IS NULL AND integration.event_matches(w.events, r.event)
				  ORDER BY w.id) AS ids
	  FROM route_events r)
SELECT x.event, cardinality(x.ids) AS endpoints,
	   coalesce(e.endpoint_ids = x.ids, cardinality(x.ids) = 0) AS same_as_event_matches
  FROM expected x
  LEFT JOIN integration.webhook_events e ON e.event = x.event AND e.id > :route_mark
 ORDER BY x.event COLLATE "C";

-- A tenant's answers are kept per event name: a thousand names and more, each asked
-- twice, are routed alike the second time.
SELECT coalesce(max(id), 0) AS route_mark FROM integration.webhook_events \gset
SELECT count(*) AS published FROM (
	SELECT integration.publish_event('a.n' || g % 1500, '{}') FROM generate_series(1, 3000) g) p;
SELECT count(DISTINCT endpoint_ids) AS distinct_routes, count(*) AS events,
	   bool_and(endpoint_ids = ARRAY(SELECT w.id FROM integration.webhook_endpoints w
									  WHERE w.is_active AND w.deleted_at IS NULL
										AND integration.event_matches(w.events, 'a.n1')
									  ORDER BY w.id)) AS all_as_event_matches
  FROM integration.webhook_events WHERE id > :route_mark;

-- Changes reach the next publish of this session: a new endpoint, a changed pattern, a
-- deleted endpoint.  Each step changes the endpoint "<tag>", then the next statement
-- publishes and shows the deliveries made; one transaction a statement first (the
-- endpoint cache follows committed changes), then all in one transaction (the
-- transaction's own changes).
CREATE FUNCTION pg_temp.step(tag text, step int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	ep bigint := (SELECT w.id FROM integration.webhook_endpoints w WHERE w.name = tag AND w.deleted_at IS NULL);
BEGIN
	CASE step
		WHEN 1 THEN
			RETURN 'before';
		WHEN 2 THEN
			PERFORM integration.register_webhook(tag, 'https://route.example.invalid/' || tag,
												 jsonb_build_array(tag || '.*'));
			RETURN 'registered';
		WHEN 3 THEN
			PERFORM integration.update_webhook(ep, events => jsonb_build_array(tag || '.other'));
			RETURN 'pattern changed';
		ELSE
			PERFORM integration.delete_webhook(ep);
			RETURN 'deleted';
	END CASE;
END
$$;
CREATE FUNCTION pg_temp.published(tag text) RETURNS text LANGUAGE sql
	RETURN format('%s.thing %s, %s.other %s', tag, integration.publish_event(tag || '.thing', '{}'),
				  tag, integration.publish_event(tag || '.other', '{}'));
SELECT format('SELECT pg_temp.step(%L, %s) AS step', 'new', n) AS statement,
	   format('SELECT pg_temp.published(%L) AS deliveries', 'new') AS publish
  FROM generate_series(1, 4) n \gexec
-- Inside one transaction, each change reaches the next publish of that transaction;
-- rolled back, they are forgotten.
BEGIN;
SELECT format('SELECT pg_temp.step(%L, %s) AS step', 'inside', n) AS statement,
	   format('SELECT pg_temp.published(%L) AS deliveries', 'inside') AS publish
  FROM generate_series(1, 4) n \gexec
ROLLBACK;
SELECT integration.publish_event('inside.thing', '{}') AS after_rollback;

-- A statement whose rows alternate between tenants routes each row to its own
-- tenant's endpoints, in the order of the rows.
RESET ROLE;
CREATE TABLE public.route_rows (tenant_id text, id int PRIMARY KEY);
SELECT integration.track_table('public.route_rows', 'row');
SET integration.tenant_id = 'route-1';
SELECT id AS r1 FROM integration.register_webhook('r1', 'https://route.example.invalid/r1', '["row.*"]') \gset
SET integration.tenant_id = 'route-2';
SELECT id AS r2 FROM integration.register_webhook('r2', 'https://route.example.invalid/r2', '["row.created"]') \gset
SELECT id AS r2b FROM integration.register_webhook('r2b', 'https://route.example.invalid/r2b', '["row.**"]') \gset
RESET integration.tenant_id;
SELECT coalesce(max(id), 0) AS route_mark FROM integration.webhook_events \gset
INSERT INTO public.route_rows
SELECT CASE WHEN i % 3 = 0 THEN 'route-3' ELSE 'route-' || (1 + i % 2) END, i FROM generate_series(1, 7000) i;
SELECT tenant_id, count(*) AS events,
	   bool_and(endpoint_ids = CASE tenant_id WHEN 'route-1' THEN ARRAY[:r1]::bigint[]
								ELSE ARRAY[:r2, :r2b]::bigint[] END) AS own_endpoints,
	   bool_and((payload::jsonb #>> '{data,new,tenant_id}') = tenant_id) AS own_rows
  FROM integration.webhook_events WHERE id > :route_mark GROUP BY 1 ORDER BY 1;
-- In the order of the rows: event ids ascend with the row ids.
SELECT bool_and(ordered) AS in_row_order FROM (
	SELECT lag((payload::jsonb #>> '{data,new,id}')::int) OVER (ORDER BY id)
			< (payload::jsonb #>> '{data,new,id}')::int AS ordered
	  FROM integration.webhook_events WHERE id > :route_mark) o
 WHERE ordered IS NOT NULL;
SELECT integration.untrack_table('public.route_rows');
DROP TABLE public.route_rows;

-- One tenant's endpoint changes leave the other tenants' cached endpoints alone: a
-- commit that changed tenant cache-a's endpoints makes this session read cache-a's
-- again (DEBUG1 names each read), and not cache-b's.  The two tenants have different
-- generation slots (a shared slot would only cost cache-b an extra read).
SET ROLE integration_test_app;
SET integration.tenant_id = 'cache-a';
SELECT id AS cache_a FROM integration.register_webhook('a', 'https://route.example.invalid/ca', '["c.*"]') \gset
SET integration.tenant_id = 'cache-b';
SELECT id AS cache_b FROM integration.register_webhook('b', 'https://route.example.invalid/cb', '["c.*"]') \gset
SET client_min_messages = debug1;
SET integration.tenant_id = 'cache-a';
SELECT integration.publish_event('c.one', '{}') AS a_first;
SELECT integration.publish_event('c.one', '{}') AS a_cached;
SET integration.tenant_id = 'cache-b';
SELECT integration.publish_event('c.one', '{}') AS b_first;
SELECT integration.publish_event('c.one', '{}') AS b_cached;
SET integration.tenant_id = 'cache-a';
SET client_min_messages = warning;
SELECT id AS cache_a2 FROM integration.register_webhook('a2', 'https://route.example.invalid/ca2', '["c.one"]') \gset
SET client_min_messages = debug1;
SET integration.tenant_id = 'cache-b';
SELECT integration.publish_event('c.one', '{}') AS b_after_a_changed;
SET integration.tenant_id = 'cache-a';
SELECT integration.publish_event('c.one', '{}') AS a_after_a_changed;
SET client_min_messages = warning;
RESET ROLE;
