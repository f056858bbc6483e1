-- Included by bench/lists.sql and bench/sending.sql (\ir): times each statement of temp
-- table q (n, label, sql, tenant) 7 times, as its tenant, each in a snapshot of its own,
-- and prints the rows it returned with the median and slowest time, in order of n.
CREATE TEMP TABLE timings (n int, label text, rows bigint, median_ms numeric, max_ms numeric);
DO $$
DECLARE
	r record;
	t timestamptz;
	ms float8[];
	c bigint;
BEGIN
	FOR r IN SELECT * FROM q ORDER BY n LOOP
		PERFORM set_config('integration.tenant_id', r.tenant, false);
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
SELECT format('%-46s %5s %10s %10s', 'call', 'rows', 'median ms', 'max ms')
UNION ALL
SELECT format('%-46s %5s %10s %10s', label, rows, median_ms, max_ms) FROM (SELECT * FROM timings ORDER BY n) t
\g (tuples_only=on format=unaligned)
