-- Does a retention pass leave anything on the worker's way?  bench/run retention runs
-- this file in two databases without a worker (bench/README.md#retention):
--
--   psql -v phase=setup -v events=N    makes N old events of two endpoints each, all
--                                      delivered 10 days ago, and the live work: 1,000
--                                      queued events and 1,000 due pending deliveries;
--                                      the database is then copied (CREATE DATABASE
--                                      ... TEMPLATE), and only the copy is purged
--                                      (integration.purge_expired());
--   psql -v phase=measure              runs the worker's claim of 256 due deliveries
--                                      and fan-out of 256 events, through
--                                      integration._claim_due() and _fan_out(), which
--                                      run the worker's own statements, under
--                                      auto_explain with the buffers of each statement.
--
-- Autovacuum is off for the extension's tables, so the copy's dead tuples are all there
-- when it is measured.  The two measurements differ only by the retention pass.
\set ON_ERROR_STOP 1
\set QUIET 1

\if :{?phase}
\else
\echo 'run with -v phase=setup -v events=N, or -v phase=measure'
\quit
\endif

SELECT :'phase' = 'setup' AS setup \gset
\if :setup
SET integration.tenant_id = 'plans';
SELECT count(*) FROM (SELECT integration.register_webhook('ep' || g, 'https://ep' || g || '.example.invalid/',
														 '["order.*"]') FROM generate_series(1, 2) g) s;
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['webhook_events', 'webhook_event_queue', 'deliveries',
							 'delivery_attempts', 'integration_logs']
	LOOP
		EXECUTE format('ALTER TABLE integration.%I SET (autovacuum_enabled = off)', t);
	END LOOP;
END
$$;
-- The old events, each fanned out and delivered 10 days ago.
SELECT count(integration.publish_event('order.created', jsonb_build_object('id', g)))
  FROM generate_series(1, :events) g;
RESET integration.tenant_id;
SELECT count(*) FROM integration._fan_out(:events, '1h');
UPDATE integration.webhook_events SET created_at = now() - interval '10 days';
UPDATE integration.deliveries
   SET status = 'delivered', lease_expires_at = NULL, next_attempt_at = NULL,
	   attempts = 1, last_attempt_at = now() - interval '10 days',
	   delivered_at = now() - interval '10 days', created_at = now() - interval '10 days';
VACUUM ANALYZE;
-- The live work: 500 events fanned out into 1,000 pending deliveries due now, and
-- 1,000 events queued.
SET integration.tenant_id = 'plans';
SELECT count(integration.publish_event('order.created', jsonb_build_object('id', g)))
  FROM generate_series(1, 500) g;
RESET integration.tenant_id;
SELECT count(*) FROM integration._fan_out(500, '1h');
UPDATE integration.deliveries SET status = 'pending', lease_expires_at = NULL,
	   next_attempt_at = now() - interval '1 s'
 WHERE status = 'sending';
SET integration.tenant_id = 'plans';
SELECT count(integration.publish_event('order.created', jsonb_build_object('id', g)))
  FROM generate_series(1, 1000) g;
RESET integration.tenant_id;
VACUUM ANALYZE;
\else
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
\echo '-- claim'
SELECT count(*) AS claimed FROM integration._claim_due(256, '1h');
\echo '-- fan-out'
SELECT count(*) AS fanned_out FROM integration._fan_out(256, '1h');
\endif
