-- Incremental pull: the fixture of bench/run's sync benchmark.  Run with
--   psql -X -v orders=FILE -f bench/sync.sql      (extension installed, tenant 'bench' set)
--
-- FILE is the loopback store's orders as its control API lists them ({"records": [...]},
-- each order as the REST API renders it).  The plain side of the comparison writes the
-- same JSON, a page of 250 per transaction, with INSERT ... ON CONFLICT into a table
-- shaped like integration.external_records: what an application would write if it
-- pulled the pages itself and did nothing else.

\set ON_ERROR_STOP 1
\set QUIET 1

CREATE TABLE public.bench_sync_json (n integer PRIMARY KEY, rec jsonb NOT NULL);
INSERT INTO public.bench_sync_json
SELECT x.n, x.rec FROM jsonb_array_elements(pg_read_file(:'orders')::jsonb -> 'records')
	WITH ORDINALITY AS x(rec, n);

CREATE TABLE public.bench_sync_plain (
	tenant_id			text NOT NULL,
	connector_id		bigint NOT NULL,
	stream				text NOT NULL,
	external_id			text NOT NULL,
	external_updated_at	timestamptz NOT NULL,
	payload				jsonb NOT NULL,
	synced_at			timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, connector_id, stream, external_id)
);

-- Every order, page_size a transaction; returns the seconds it took.
CREATE PROCEDURE public.bench_sync_plain_load(page_size integer, INOUT seconds float8 DEFAULT NULL)
	LANGUAGE plpgsql
AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	total integer := (SELECT count(*) FROM public.bench_sync_json);
	lo integer := 0;
BEGIN
	WHILE lo < total LOOP
		INSERT INTO public.bench_sync_plain AS p
		SELECT 'bench', 1, 'orders', j.rec ->> 'id', (j.rec ->> 'updated_at')::timestamptz, j.rec, now()
		  FROM public.bench_sync_json j
		 WHERE j.n > lo AND j.n <= lo + page_size
		ON CONFLICT (tenant_id, connector_id, stream, external_id) DO UPDATE
		SET external_updated_at = EXCLUDED.external_updated_at, payload = EXCLUDED.payload,
			synced_at = EXCLUDED.synced_at
		WHERE p.external_updated_at < EXCLUDED.external_updated_at;
		COMMIT;
		lo := lo + page_size;
	END LOOP;
	seconds := extract(epoch FROM clock_timestamp() - t0);
END
$$;
