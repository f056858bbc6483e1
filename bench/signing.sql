-- Signing throughput, run with: psql -X -f bench/signing.sql (extension installed).
--
-- Every figure is a query "SELECT count(*) FROM generate_series(1, n) g
-- WHERE <expr>" timed with clock_timestamp(); the first line is the same
-- query with a trivial <expr>, the SQL-level ceiling that per-call overhead
-- should be compared with.  Each expression depends on g (through the HMAC
-- key, the message id or the event name) so that the planner cannot fold an
-- immutable call into a constant.  MB is 10^6 bytes of body.

\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;

CREATE FUNCTION pg_temp.bench(label text, expr text, n int, body_bytes bigint,
                              body text DEFAULT NULL, key bytea DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    secs float8;
    rows bigint;
BEGIN
    t0 := clock_timestamp();
    EXECUTE format('SELECT count(*) FROM generate_series(1, %s) AS g WHERE %s', n, expr)
        INTO rows USING body, key;
    secs := extract(epoch FROM clock_timestamp() - t0);
    IF rows <> n THEN
        RAISE EXCEPTION 'benchmark % counted % rows, expected %', label, rows, n;
    END IF;
    IF body_bytes > 0 THEN
        RAISE NOTICE '%: % calls in % s = % calls/s, % MB/s',
            rpad(label, 44), n, round(secs::numeric, 3),
            round((n / secs)::numeric), round((n * body_bytes / secs / 1e6)::numeric, 1);
    ELSE
        RAISE NOTICE '%: % calls in % s = % calls/s',
            rpad(label, 44), n, round(secs::numeric, 3), round((n / secs)::numeric);
    END IF;
END
$$;

DO $$
DECLARE
    body1k text := repeat('x', 1024);
    body1m text := repeat('x', 1048576);
    key bytea := '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
    n int := 100000;
    nfast int := 1000000;
    nbig int := 200;
    secret text := 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
BEGIN
    RAISE NOTICE 'baseline';
    PERFORM pg_temp.bench('generate_series only', 'g IS NOT NULL', n, 0);
    PERFORM pg_temp.bench('generate_series + text concat', '(''msg_'' || g) IS NOT NULL', n, 0);

    RAISE NOTICE 'raw HMAC-SHA256 (integration.hmac)';
    PERFORM pg_temp.bench('hmac 1 kB', 'integration.hmac(int4send(g), convert_to($1, ''UTF8'')) IS NOT NULL', n, 1024, body1k);
    PERFORM pg_temp.bench('hmac 1 MiB', 'integration.hmac(int4send(g), $2) IS NOT NULL', nbig, 1048576, NULL,
                          convert_to(body1m, 'UTF8'));

    RAISE NOTICE 'sign';
    PERFORM pg_temp.bench('sign standard 1 kB', format('integration.sign(''standard'', %L, $1, ''msg_'' || g, 1700000000) IS NOT NULL', secret), n, 1024, body1k);
    PERFORM pg_temp.bench('sign standard 1 kB, generated id and time', format('integration.sign(''standard'', %L, $1) IS NOT NULL AND g > 0', secret), n, 1024, body1k);
    PERFORM pg_temp.bench('sign standard 1 kB, 2 secrets', format('integration.sign(''standard'', %L, $1, ''msg_'' || g, 1700000000) IS NOT NULL', secret || ' ' || secret), n, 1024, body1k);
    PERFORM pg_temp.bench('sign stripe 1 kB', 'integration.sign(''stripe'', ''whsec_test'', $1, NULL, 1700000000 + g) IS NOT NULL', n, 1024, body1k);
    PERFORM pg_temp.bench('sign github 1 kB', 'integration.sign(''github'', ''secret'' || g, $1) IS NOT NULL', n, 1024, body1k);
    PERFORM pg_temp.bench('sign standard 1 MiB', format('integration.sign(''standard'', %L, $1, ''msg_'' || g, 1700000000) IS NOT NULL', secret), nbig, 1048576, body1m);

    RAISE NOTICE 'verify';
    PERFORM pg_temp.bench('verify standard 1 kB (valid)',
        format('integration.verify(''standard'', %L, integration.sign(''standard'', %L, $1, ''msg_'' || g, 1700000000), $1, ''5 minutes'', to_timestamp(1700000000))',
               secret, secret), n, 1024, body1k);
    PERFORM pg_temp.bench('verify standard 1 kB (forged)',
        format('NOT integration.verify(''standard'', %L, jsonb_build_object(''webhook-id'', ''msg_'' || g, ''webhook-timestamp'', ''1700000000'', ''webhook-signature'', ''v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=''), $1, ''5 minutes'', to_timestamp(1700000000))',
               secret), n, 1024, body1k);

    RAISE NOTICE 'event_matches';
    PERFORM pg_temp.bench('event_matches, 3 patterns',
        'integration.event_matches(''["invoice.*", "customer.**", "order.*"]'', CASE WHEN g % 2 = 0 THEN ''order.created'' ELSE ''customer.card.updated'' END)', nfast, 0);
    PERFORM pg_temp.bench('baseline for the above (CASE only)',
        '(CASE WHEN g % 2 = 0 THEN ''order.created'' ELSE ''customer.card.updated'' END) IS NOT NULL', nfast, 0);
END
$$;
