-- list_connector_calls() reads a tenant's newest rows in index order, whatever its
-- history holds: every filter has an index ending in id, read backward under the
-- Limit, never a walk of the tenant's rows tested one by one (which a rare connector or
-- recent time read in full: 22-33 ms at 200,000 rows).  Its statements come from
-- _list_connector_calls_sql().  list_inbound_events() walks (sql/connectors.sql says
-- why).  Every filter of both, and pairs of them, list exactly the rows the table
-- holds, in order.
--
-- The tables are loaded below ANALYZE's sample size, so their statistics, and the
-- plans, are the same on every run.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- Tenant lpc: connectors common and rare; 6,000 inbound events and 6,000 calls, ten a
-- second, one in 1,000 of the rare connector, one in 1,000 named generic.rare.x, one in
-- 1,000 failed and one in 1,000 pending (the others processed or skipped, succeeded
-- for the calls).  Tenant lpc-other has rows in between, which no listing of lpc may
-- show.
SET ROLE integration_test_app;
SET integration.tenant_id = 'lpc';
SELECT id AS lpc_common FROM integration.create_connector('generic', 'lpc common', 'https://lpc.example.invalid/a',
	'{"token": "t"}') \gset
SELECT id AS lpc_rare FROM integration.create_connector('generic', 'lpc rare', 'https://lpc.example.invalid/b',
	'{"token": "t"}') \gset
SET integration.tenant_id = 'lpc-other';
SELECT id AS lpc_other FROM integration.create_connector('generic', 'lpc other', 'https://lpc.example.invalid/o',
	'{"token": "t"}') \gset
RESET ROLE;
RESET integration.tenant_id;
INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload, received_at,
										status, next_attempt_at, last_error, processed_at)
SELECT t, CASE WHEN t = 'lpc-other' THEN :lpc_other WHEN g % 1000 = 1 THEN :lpc_rare ELSE :lpc_common END,
	   'lpc-' || g, 't', CASE WHEN g % 1000 = 2 THEN 'generic.rare.x' ELSE 'generic.order.created' END, '{}',
	   timestamptz '2026-03-01 12:00:00+00' + (g / 10) * interval '1 second',
	   s, CASE WHEN s = 'pending' THEN timestamptz '2026-03-01 13:00:00+00' END,
	   CASE WHEN s = 'failed' THEN 'boom' END, CASE WHEN s <> 'pending' THEN timestamptz '2026-03-01 13:00:00+00' END
  FROM generate_series(1, 6300) g,
	   LATERAL (SELECT CASE WHEN g % 21 = 0 THEN 'lpc-other' ELSE 'lpc' END AS t,
					   CASE WHEN g % 1000 = 3 THEN 'failed' WHEN g % 1000 = 4 THEN 'pending'
							WHEN g % 3 = 0 THEN 'skipped' ELSE 'processed' END AS s) x;
INSERT INTO integration.connector_calls (tenant_id, connector_id, operation, status, next_attempt_at, created_at,
										 finished_at, last_error)
SELECT t, CASE WHEN t = 'lpc-other' THEN :lpc_other WHEN g % 1000 = 1 THEN :lpc_rare ELSE :lpc_common END,
	   'POST /x', s, CASE WHEN s = 'pending' THEN timestamptz '2026-03-01 13:00:00+00' END,
	   timestamptz '2026-03-01 12:00:00+00' + (g / 10) * interval '1 second',
	   CASE WHEN s <> 'pending' THEN timestamptz '2026-03-01 13:00:00+00' END, CASE WHEN s = 'failed' THEN 'boom' END
  FROM generate_series(1, 6300) g,
	   LATERAL (SELECT CASE WHEN g % 21 = 0 THEN 'lpc-other' ELSE 'lpc' END AS t,
					   CASE WHEN g % 1000 = 3 THEN 'failed' WHEN g % 1000 = 4 THEN 'pending'
							ELSE 'succeeded' END AS s) x;
ANALYZE integration.inbound_events, integration.connector_calls;

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

SET ROLE integration_test_app;
SET integration.tenant_id = 'lpc';
-- Calls.  Unfiltered: the primary key.  A rare connector, status or recent time: its own
-- index, backward.
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, NULL, NULL, NULL, NULL));
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, :lpc_rare, NULL, NULL, NULL));
-- A keyset page: the same index, from the last id listed.
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, :lpc_rare, NULL, NULL, 5000));
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, NULL, 'failed', NULL, NULL));
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, NULL, NULL, '2026-03-01 12:09:50+00', NULL));
SELECT pg_temp.plan(integration._list_connector_calls_sql('lpc', 50, NULL, NULL, '2026-03-01 12:00:00+00', NULL));

-- Results: every filter and pair of filters lists what the table holds, newest first,
-- up to the limit (here 50, and all of them), and only lpc's rows.
CREATE TEMP TABLE lpc_args AS
	SELECT c AS connector_id, s AS status, e AS event, t AS since
	  FROM (VALUES (NULL::bigint), (:lpc_common), (:lpc_rare), (:lpc_other)) c(c),
		   (VALUES (NULL::text), ('failed'), ('pending'), ('skipped'), ('processed')) s(s),
		   (VALUES (NULL::text), ('generic.rare.x'), ('generic.order.created')) e(e),
		   (VALUES (NULL::timestamptz), ('2026-03-01 12:09:50+00'), ('2026-03-01 12:01:00+00')) t(t);
SELECT count(*) AS combinations,
	   count(*) FILTER (WHERE got50 = want50) AS first_50_right,
	   count(*) FILTER (WHERE gotall = wantall) AS all_right,
	   count(*) FILTER (WHERE cardinality(wantall) BETWEEN 1 AND 49) AS listing_fewer_than_50,
	   sum(cardinality(wantall)) AS rows_listed
  FROM lpc_args a,
	   LATERAL (SELECT coalesce(array_agg(l.id), '{}') AS got50
				  FROM integration.list_inbound_events(50, a.connector_id, a.status, a.event, a.since) l) g50,
	   LATERAL (SELECT coalesce(array_agg(l.id), '{}') AS gotall
				  FROM integration.list_inbound_events(100000, a.connector_id, a.status, a.event, a.since) l) ga,
	   LATERAL (SELECT coalesce(array_agg(x.id ORDER BY x.id DESC), '{}') AS wantall
				  FROM integration.inbound_events x
				 WHERE x.tenant_id = 'lpc'
				   AND (a.connector_id IS NULL OR x.connector_id = a.connector_id)
				   AND (a.status IS NULL OR x.status = a.status)
				   AND (a.event IS NULL OR x.event = a.event)
				   AND (a.since IS NULL OR x.received_at >= a.since)) w,
	   LATERAL (SELECT wantall[1:50] AS want50) w50;
SELECT count(*) AS combinations,
	   count(*) FILTER (WHERE got50 = want50) AS first_50_right,
	   count(*) FILTER (WHERE gotall = wantall) AS all_right,
	   count(*) FILTER (WHERE cardinality(wantall) BETWEEN 1 AND 49) AS listing_fewer_than_50,
	   sum(cardinality(wantall)) AS rows_listed
  FROM (SELECT DISTINCT connector_id, CASE WHEN status = 'processed' THEN 'succeeded' ELSE status END AS status, since
		  FROM lpc_args WHERE status IS DISTINCT FROM 'skipped') a,
	   LATERAL (SELECT coalesce(array_agg(l.id), '{}') AS got50
				  FROM integration.list_connector_calls(50, a.connector_id, a.status, a.since) l) g50,
	   LATERAL (SELECT coalesce(array_agg(l.id), '{}') AS gotall
				  FROM integration.list_connector_calls(100000, a.connector_id, a.status, a.since) l) ga,
	   LATERAL (SELECT coalesce(array_agg(x.id ORDER BY x.id DESC), '{}') AS wantall
				  FROM integration.connector_calls x
				 WHERE x.tenant_id = 'lpc'
				   AND (a.connector_id IS NULL OR x.connector_id = a.connector_id)
				   AND (a.status IS NULL OR x.status = a.status)
				   AND (a.since IS NULL OR x.created_at >= a.since)) w,
	   LATERAL (SELECT wantall[1:50] AS want50) w50;
-- Keyset pages (before_id, the last id of the page before) of 50 concatenate to the
-- whole list, for each combination above: no row twice, none missing, in order.
CREATE FUNCTION pg_temp.paged(kind text, a lpc_args) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
	got bigint[] := '{}';
	page bigint[];
	last bigint;
BEGIN
	LOOP
		IF kind = 'inbound' THEN
			SELECT coalesce(array_agg(l.id), '{}') INTO page
			  FROM integration.list_inbound_events(50, a.connector_id, a.status, a.event, a.since, last) l;
		ELSE
			SELECT coalesce(array_agg(l.id), '{}') INTO page
			  FROM integration.list_connector_calls(50, a.connector_id,
					CASE WHEN a.status = 'processed' THEN 'succeeded' ELSE a.status END, a.since, last) l;
		END IF;
		got := got || page;
		EXIT WHEN cardinality(page) < 50;
		last := page[50];
	END LOOP;
	RETURN got;
END
$$;
SELECT count(*) AS combinations,
	   count(*) FILTER (WHERE pg_temp.paged('inbound', a) = ARRAY(
		   SELECT l.id FROM integration.list_inbound_events(100000, a.connector_id, a.status, a.event, a.since) l))
		   AS inbound_pages_right,
	   count(*) FILTER (WHERE a.event IS NULL AND a.status IS DISTINCT FROM 'skipped')
		   AS call_combinations,
	   count(*) FILTER (WHERE a.event IS NULL AND a.status IS DISTINCT FROM 'skipped'
						  AND pg_temp.paged('calls', a) = ARRAY(
		   SELECT l.id FROM integration.list_connector_calls(100000, a.connector_id,
				CASE WHEN a.status = 'processed' THEN 'succeeded' ELSE a.status END, a.since) l))
		   AS call_pages_right
  FROM lpc_args a;
RESET ROLE;
RESET integration.tenant_id;

-- The rows go, for the files after.
DELETE FROM integration.connector_calls WHERE tenant_id IN ('lpc', 'lpc-other');
DELETE FROM integration.inbound_events WHERE tenant_id IN ('lpc', 'lpc-other');
DELETE FROM integration.connectors WHERE tenant_id IN ('lpc', 'lpc-other');
