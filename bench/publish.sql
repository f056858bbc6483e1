-- Publishing cost on the business write, run by bench/run (psql -X -f, database with
-- the extension and no delivery worker, so only the writes are measured).
--
-- Three copies of one orders table: plain; tracked by integration.track_table() with 3
-- matching endpoints; and, as the baseline users write by hand, a PL/pgSQL row trigger
-- inserting one delivery row per matching endpoint into a deliveries table of the usual
-- shape.  Each is loaded with one INSERT of :rows rows, best of 3 interleaved rounds.  The one-row
-- transaction figures come from pgbench in bench/run.

\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
SET integration.tenant_id = 'bench';

-- Setup prints nothing; the figures come at the end.
\o /dev/null
SELECT count(*) AS endpoints FROM (
	SELECT integration.register_webhook(name => 'bench ' || i, url => 'https://bench.invalid/' || i,
										events => '["order.*"]')
	  FROM generate_series(1, 3) AS i) AS r;

CREATE TABLE orders_plain (
	tenant_id	text NOT NULL,
	id			bigint PRIMARY KEY,
	customer	text NOT NULL,
	amount		numeric(12, 2) NOT NULL,
	status		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders_tracked (LIKE orders_plain INCLUDING ALL);
CREATE TABLE orders_plpgsql (LIKE orders_plain INCLUDING ALL);
SELECT integration.track_table('orders_tracked', 'order');

-- The hand-written alternative: one delivery row per matching endpoint.
CREATE TABLE naive_deliveries (
	tenant_id	text NOT NULL,
	id			bigint GENERATED ALWAYS AS IDENTITY,
	endpoint_id bigint NOT NULL,
	event		text NOT NULL,
	payload		jsonb NOT NULL,
	status		text NOT NULL DEFAULT 'pending',
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ON naive_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE FUNCTION naive_publish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO naive_deliveries (tenant_id, endpoint_id, event, payload)
	SELECT NEW.tenant_id, e.id, 'order.created',
		   jsonb_build_object('type', 'order.created', 'timestamp', now(), 'data', to_jsonb(NEW))
	  FROM integration.webhook_endpoints e
	 WHERE e.tenant_id = NEW.tenant_id AND e.is_active AND e.deleted_at IS NULL
	   AND integration.event_matches(e.events, 'order.created');
	RETURN NULL;
END
$$;
CREATE TRIGGER naive_publish AFTER INSERT ON orders_plpgsql
	FOR EACH ROW EXECUTE FUNCTION naive_publish();

-- One timed load; three rounds interleave the three tables so that all see the same
-- conditions (WAL recycling, checkpoints, page cache), each run after a checkpoint and
-- on empty tables.  Each run also checks that publishing wrote what it should.
CREATE TEMP TABLE runs (tbl text, rows_per_s float8, complete boolean);
CREATE FUNCTION pg_temp.load(tbl text, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	rate float8;
BEGIN
	TRUNCATE orders_plain, orders_tracked, orders_plpgsql, naive_deliveries;
	TRUNCATE integration.webhook_events;
	t0 := clock_timestamp();
	EXECUTE format('INSERT INTO %I (tenant_id, id, customer, amount, status)'
				   ' SELECT ''bench'', g, ''customer '' || g, g * 1.25, ''new'''
				   '   FROM generate_series(1, %s) AS g', tbl, n);
	rate := n / extract(epoch FROM clock_timestamp() - t0);
	INSERT INTO runs SELECT tbl, rate,
		CASE tbl WHEN 'orders_tracked' THEN (SELECT count(*) FROM integration.webhook_events) = n
				 WHEN 'orders_plpgsql' THEN (SELECT count(*) FROM naive_deliveries) = 3 * n
				 ELSE true END;
END
$$;

\if :{?rows}
\else
\set rows 100000
\endif

SELECT cmd
  FROM generate_series(1, 3) AS round,
	   unnest(ARRAY['orders_plain', 'orders_tracked', 'orders_plpgsql']) AS t,
	   unnest(ARRAY['CHECKPOINT', format('SELECT pg_temp.load(%L, %s)', t, :rows)]) AS cmd
\gexec
\o

SELECT max(rows_per_s) FILTER (WHERE tbl = 'orders_plain') AS plain,
	   max(rows_per_s) FILTER (WHERE tbl = 'orders_tracked') AS tracked,
	   max(rows_per_s) FILTER (WHERE tbl = 'orders_plpgsql') AS plpgsql,
	   bool_and(complete) FILTER (WHERE tbl = 'orders_tracked') AS all_published,
	   bool_and(complete) FILTER (WHERE tbl = 'orders_plpgsql') AS naive_complete
  FROM runs \gset

\echo
\echo 'publishing: one INSERT of' :rows 'rows, 3 matching endpoints, best of 3 interleaved rounds'
SELECT format('%-28s %12s %10s', 'table', 'rows/s', 'of plain')
UNION ALL SELECT format('%-28s %12s %9s%%', 'plain (the ceiling)', round(:plain), 100)
UNION ALL SELECT format('%-28s %12s %9s%%', 'tracked by integration', round(:tracked), round(100 * :tracked / :plain, 1))
UNION ALL SELECT format('%-28s %12s %9s%%', 'PL/pgSQL row trigger', round(:plpgsql), round(100 * :plpgsql / :plain, 1))
UNION ALL SELECT format('tracked / PL/pgSQL: %sx   (events complete: %s, naive rows complete: %s)',
						round(:tracked / :plpgsql, 2), :'all_published', :'naive_complete') \g (tuples_only=on format=unaligned)
