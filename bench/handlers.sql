-- Inbound handlers: the fixture of bench/run's handlers benchmark.  Run with
--   psql -X -v workdir=DIR -f bench/handlers.sql     (extension installed, tenant 'bench' set)
--
-- An unsigned connector kind, an application role whose handler does one INSERT of the
-- event's payload, and bench_plain_rows, where the plain INSERT of the same row goes.
-- bench/run loads pending events with load_events(n) and times the worker through them.

\set ON_ERROR_STOP 1
\set QUIET 1

CREATE FUNCTION public.bench_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT NULL::text, 'order/created', NULL::text, body::jsonb $$;
SELECT integration.register_connector_kind('benchhook', 'none', 'none',
	'public.bench_normalise(integration.connector_context, jsonb, text)') \gset

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_app') THEN
		CREATE ROLE bench_app NOLOGIN;
	END IF;
END
$$;
GRANT USAGE ON SCHEMA integration TO bench_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO bench_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO bench_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO bench_app;

-- As an application's tables of handled payloads would be: tenant first, an id.
CREATE TABLE public.bench_handled (
	tenant_id	text NOT NULL,
	id			bigint GENERATED ALWAYS AS IDENTITY,
	event_id	bigint NOT NULL,
	body		jsonb NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE public.bench_plain_rows (LIKE public.bench_handled INCLUDING ALL);
GRANT ALL ON public.bench_handled, public.bench_plain_rows TO bench_app;
CREATE FUNCTION public.bench_handle(e integration.inbound_events) RETURNS void
	LANGUAGE sql
AS $$ INSERT INTO public.bench_handled (tenant_id, event_id, body) VALUES (e.tenant_id, e.id, e.payload) $$;
GRANT EXECUTE ON FUNCTION public.bench_handle(integration.inbound_events) TO bench_app;

-- The same payload, about 1 kB, for every event and every plain row.
CREATE TABLE public.bench_payload AS
SELECT jsonb_build_object('type', 'order.created', 'data', jsonb_build_object('id', 1, 'customer', 'customer 1',
		'lines', (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || i, 'qty', i, 'price', '9.99'))
				  FROM generate_series(1, 20) AS i))) AS body;

SET ROLE bench_app;
SELECT id AS connector FROM integration.create_connector('benchhook', 'bench', NULL, '{}') \gset
SELECT name FROM integration.on_inbound('bench', '["benchhook.**"]', 'public.bench_handle(integration.inbound_events)') \gset
RESET ROLE;

-- n pending events of the connector, in the caller's transaction: their handlers run
-- when it commits.
CREATE FUNCTION public.load_events(n integer) RETURNS bigint
	LANGUAGE sql
AS $$
	WITH i AS (
		INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload)
		SELECT 'bench', c.id, 'bench-' || pg_catalog.gen_random_uuid(), 'order/created',
			   'benchhook.order.created', p.body
		  FROM generate_series(1, n), integration.connectors c, public.bench_payload p
		 WHERE c.name = 'bench'
		RETURNING 1)
	SELECT count(*) FROM i
$$;

SELECT pg_catalog.format('payload: %s bytes', length(body::text)) FROM bench_payload \g (tuples_only=on format=unaligned)

-- pgbench script of the plain INSERT, written next to this file by bench/run:
\o :workdir/handlers_plain.pgbench
\qecho 'INSERT INTO public.bench_plain_rows (tenant_id, event_id, body) SELECT ''bench'', 1, p.body FROM public.bench_payload p;'
\o
