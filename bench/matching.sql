-- What matching an event to a tenant's endpoints costs publishing, run by bench/run
-- publish (psql -X -f, a database with the extension and no delivery worker).
--
-- Tenant m-small has 10 endpoints, 3 of them subscribed to order.*; tenant m-big has
-- the same 3 and 10,000 that do not match order.created: exact names, patterns with
-- "*" and "**", a third of them under order.* itself (order.<n>.created,
-- order.<n>.**) and some starting with "*" (*.<n>.updated); tenant m-5k the same 3
-- and the first 5,000 of those (bench/run's one-row transactions).  Tenants bulk-1 to
-- bulk-1000 have 3 matching endpoints each.  Printed: the cost of one publish_event()
-- call in each of the first two tenants (20,000 calls in one statement, after one to
-- fill the endpoint cache; best of 3), and one INSERT of 100,000 rows into a tracked
-- table whose rows go to 1,000 tenants, once alternating (row g to tenant g % 1000) and
-- once grouped (100 rows of a tenant, then the next), best of 3 interleaved rounds.
-- bench/run times one-row INSERT transactions in m-small and m-big with pgbench.

\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
\o /dev/null

SET integration.tenant_id = 'm-small';
SELECT integration.register_webhook('order ' || i, 'https://bench.invalid/' || i, '["order.*"]')
  FROM generate_series(1, 3) i;
SELECT integration.register_webhook('other ' || i, 'https://bench.invalid/o' || i,
									jsonb_build_array('customer.' || i || '.created'))
  FROM generate_series(1, 7) i;
CREATE FUNCTION pg_temp.big_tenant(tenant text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	PERFORM integration.register_webhook('order ' || i, 'https://bench.invalid/' || i, '["order.*"]')
	   FROM generate_series(1, 3) i;
	INSERT INTO integration.webhook_endpoints (name, url, events)
	SELECT 'other ' || i, 'https://bench.invalid/o' || i,
		   jsonb_build_array(CASE i % 6
							 WHEN 0 THEN 'customer.' || i || '.created'
							 WHEN 1 THEN 'customer.' || i || '.*'
							 WHEN 2 THEN 'invoice.' || i || '.**'
							 WHEN 3 THEN 'order.' || i || '.created'
							 WHEN 4 THEN 'order.' || i || '.**'
							 ELSE '*.' || i || '.updated' END)
	  FROM generate_series(1, n) i;
END
$$;
SELECT pg_temp.big_tenant('m-big', 10000);
SELECT pg_temp.big_tenant('m-5k', 5000);
DO $$
BEGIN
	FOR t IN 1..1000 LOOP
		PERFORM set_config('integration.tenant_id', 'bulk-' || t, true);
		PERFORM integration.register_webhook('order ' || i, 'https://bench.invalid/' || i, '["order.*"]')
		   FROM generate_series(1, 3) i;
	END LOOP;
END
$$;
RESET integration.tenant_id;

CREATE TABLE orders_m (
	tenant_id	text NOT NULL,
	id			bigint PRIMARY KEY,
	customer	text NOT NULL,
	amount		numeric(12, 2) NOT NULL
);
SELECT integration.track_table('orders_m', 'order');
CREATE SEQUENCE orders_m_ids;
CHECKPOINT;

-- One publish_event() call, in microseconds: n calls in one statement.
CREATE FUNCTION pg_temp.publish_us(tenant text, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	us float8;
BEGIN
	PERFORM set_config('integration.tenant_id', tenant, true);
	PERFORM integration.publish_event('order.created', '{}');
	t0 := clock_timestamp();
	PERFORM count(integration.publish_event('order.created', jsonb_build_object('n', g)))
	   FROM generate_series(1, n) g;
	us := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
	PERFORM set_config('integration.tenant_id', '', true);
	RETURN us;
END
$$;
CREATE TEMP TABLE calls (tenant text, us float8);
INSERT INTO calls SELECT t, pg_temp.publish_us(t, 20000)
  FROM generate_series(1, 3), unnest(ARRAY['m-small', 'm-big']) t;
TRUNCATE integration.webhook_events;

-- One INSERT of n rows to 1,000 tenants, in rows/s.
CREATE FUNCTION pg_temp.bulk(alternating boolean, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	rate float8;
BEGIN
	TRUNCATE orders_m;
	TRUNCATE integration.webhook_events;
	t0 := clock_timestamp();
	INSERT INTO orders_m (tenant_id, id, customer, amount)
	SELECT 'bulk-' || CASE WHEN alternating THEN 1 + g % 1000 ELSE 1 + g / (n / 1000) % 1000 END,
		   g, 'customer ' || g, g * 1.25
	  FROM generate_series(0, n - 1) g;
	rate := n / extract(epoch FROM clock_timestamp() - t0);
	IF (SELECT count(*) FROM integration.webhook_events) <> n THEN
		RAISE EXCEPTION 'bulk insert published % events of %',
			(SELECT count(*) FROM integration.webhook_events), n;
	END IF;
	RETURN rate;
END
$$;
CREATE TEMP TABLE bulks (alternating boolean, rate float8);
-- A first round fills this backend's endpoint cache with the 1,000 tenants.
SELECT pg_temp.bulk(true, 10000);
SELECT cmd
  FROM generate_series(1, 3) AS round,
	   unnest(ARRAY['true', 'false']) AS alt,
	   unnest(ARRAY['CHECKPOINT', format('INSERT INTO bulks SELECT %s, pg_temp.bulk(%s, 100000)', alt, alt)]) AS cmd
\gexec
TRUNCATE orders_m;
TRUNCATE integration.webhook_events;
\o

SELECT min(us) FILTER (WHERE tenant = 'm-small') AS small_us,
	   min(us) FILTER (WHERE tenant = 'm-big') AS big_us
  FROM calls \gset
SELECT max(rate) FILTER (WHERE alternating) AS alternating,
	   max(rate) FILTER (WHERE NOT alternating) AS grouped
  FROM bulks \gset

\echo
\echo 'matching: publish_event(''order.created'') with 3 matching endpoints, 20,000 calls in one statement, best of 3'
SELECT format('%-50s %10s', 'tenant', 'us a call')
UNION ALL SELECT format('%-50s %10s', '10 endpoints', round(:small_us::numeric, 2))
UNION ALL SELECT format('%-50s %10s', '10,003 endpoints, 10,000 not matching', round(:big_us::numeric, 2))
UNION ALL SELECT format('10,003 / 10 endpoints: %sx', round((:big_us / :small_us)::numeric, 2)) \g (tuples_only=on format=unaligned)
\echo
\echo 'matching: one INSERT of 100,000 rows to 1,000 tenants (3 matching endpoints each), best of 3 interleaved rounds'
SELECT format('%-50s %10s', 'rows', 'rows/s')
UNION ALL SELECT format('%-50s %10s', 'grouped by tenant', round(:grouped))
UNION ALL SELECT format('%-50s %10s', 'alternating between tenants', round(:alternating))
UNION ALL SELECT format('alternating / grouped: %s', round((:alternating / :grouped)::numeric, 2)) \g (tuples_only=on format=unaligned)
