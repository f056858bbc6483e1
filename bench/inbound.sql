-- Inbound webhooks: the fixture of bench/run's inbound benchmark.  Run with
--   psql -X -v rows=N -f bench/inbound.sql     (extension installed, tenant 'bench' set)
--
-- A generic connector, and N Standard Webhooks deliveries signed now, each a 2 kB
-- JSON body with its own webhook-id, in bench_inbound; bench_plain is the table the
-- plain INSERT of the same bodies goes to.  Each pgbench transaction takes the next
-- delivery by a sequence (recv_seq or plain_seq), so both sides pay the same lookup.

\set ON_ERROR_STOP 1
\set QUIET 1

SELECT id AS connector FROM integration.create_connector('generic', 'bench', 'https://api.example.invalid',
	'{"token": "bench-token"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') \gset

CREATE TABLE bench_inbound (n integer PRIMARY KEY, headers jsonb NOT NULL, body text NOT NULL);
-- As an application's table of received payloads would be: tenant first, an id.
CREATE TABLE bench_plain (
	tenant_id	text NOT NULL,
	id			bigint GENERATED ALWAYS AS IDENTITY,
	body		text NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE SEQUENCE recv_seq;
CREATE SEQUENCE plain_seq;

INSERT INTO bench_inbound
SELECT g, integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', b, 'msg_bench_' || g), b
  FROM generate_series(1, :rows) AS g,
	   LATERAL (SELECT pg_catalog.json_build_object(
					'type', 'order.created', 'timestamp', '2026-01-01T00:00:00Z',
					'data', pg_catalog.json_build_object('id', g, 'customer', 'customer ' || g,
						'lines', (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
									'sku', 'SKU-' || (g * 7 + i) % 100000, 'qty', i, 'price', '9.99'))
								  FROM generate_series(1, 42) AS i)))::text AS b) AS x;
VACUUM ANALYZE bench_inbound;

SELECT pg_catalog.format('bodies: %s of %s to %s bytes (mean %s)', count(*), min(length(body)),
						 max(length(body)), round(avg(length(body))))
  FROM bench_inbound \g (tuples_only=on format=unaligned)

-- pgbench scripts, written next to this file by bench/run:
\o :workdir/plain.pgbench
\qecho 'WITH s AS MATERIALIZED (SELECT pg_catalog.nextval(''plain_seq'')::integer AS n) INSERT INTO bench_plain (tenant_id, body) SELECT ''bench'', b.body FROM s JOIN bench_inbound b ON b.n = s.n;'
\o :workdir/receive.pgbench
\qecho 'WITH s AS MATERIALIZED (SELECT pg_catalog.nextval(''recv_seq'')::integer AS n) SELECT r.status FROM s JOIN bench_inbound b ON b.n = s.n, LATERAL integration.receive_webhook(' :connector ', b.headers, b.body) AS r;'
\o
