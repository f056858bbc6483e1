-- The worker's own statements called from SQL (src/store_sql.c): _fan_out(),
-- _claim_due() and _reconcile_leases(), one call at a time.  They run as the app role,
-- so row-level security keeps them to this file's tenant and leaves the other files'
-- deliveries alone.  What concurrent calls see and who waits for whom is in the
-- isolation specs (test/specs).
\set SHOW_CONTEXT never
-- Ids are stable whatever ran before: this file numbers from 7001.
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 7001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 7001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 7001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 7001;
SET ROLE integration_test_app;
SET integration.tenant_id = 'store';
SELECT id AS ep_a FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/',
													 events => '["order.*"]') \gset
SELECT id AS ep_b FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/',
													 events => '["order.*"]') \gset
\set state 'SELECT id, event_id, endpoint_id, status, next_attempt_at IS NOT NULL AS due, lease_expires_at IS NOT NULL AS leased FROM integration.deliveries ORDER BY id'

-- Fan-out: up to max events, oldest first; one delivery per event and endpoint, each
-- created claimed ('sending', with a lease from the transaction's start); the events
-- taken leave the queue.
SELECT integration.publish_event('order.created', '{"n": 1}') AS deliveries;
SELECT integration.publish_event('order.created', '{"n": 2}') AS deliveries;
SELECT event_id FROM integration.webhook_event_queue ORDER BY 1;
BEGIN;
SELECT * FROM integration._fan_out(1, lease => '10 min') ORDER BY id;
SELECT count(*) AS leased_10_min FROM integration.deliveries
 WHERE lease_expires_at = now() + interval '10 min';
COMMIT;
BEGIN;
SELECT * FROM integration._fan_out(10) ORDER BY id;
SELECT count(*) AS leased_90_s FROM integration.deliveries
 WHERE lease_expires_at = now() + interval '90 s';
COMMIT;
SELECT event_id FROM integration.webhook_event_queue ORDER BY 1;
SELECT * FROM integration._fan_out(10);
:state;

-- Nothing is due and no lease has run out: neither claims nor reconciling change a row.
SELECT * FROM integration._claim_due(10);
SELECT integration._reconcile_leases() AS returned;

-- A claim with a lease of 0 runs out at once: the next transaction's reconcile returns
-- it to pending, due now, and a claim takes it again.  A claim reports whether its
-- endpoint is usable: a disabled one is claimed all the same (the worker fails it).
SELECT integration.dispatch_webhook(:ep_a, 'order.shipped', '{}') AS dispatched_a;
SELECT integration.dispatch_webhook(:ep_b, 'order.shipped', '{}') AS dispatched_b;
SELECT is_active FROM integration.update_webhook(:ep_b, is_active => false);
SELECT * FROM integration._claim_due(10, lease => '0') ORDER BY id;
:state;
SELECT integration._reconcile_leases() AS returned;
:state;
SELECT integration._reconcile_leases() AS returned_again;
SELECT * FROM integration._claim_due(1) ORDER BY id;
SELECT * FROM integration._claim_due(10) ORDER BY id;
:state;

-- max counts claimed deliveries (_claim_due) or events taken (_fan_out), across batches
-- of the worker's size (256).
SELECT count(integration.dispatch_webhook(:ep_a, 'order.bulk', jsonb_build_object('n', g))) AS dispatched
  FROM generate_series(1, 300) g;
SELECT count(*) AS claimed FROM integration._claim_due(280);
SELECT count(*) AS claimed FROM integration._claim_due(1000);
SELECT is_active FROM integration.update_webhook(:ep_b, is_active => true);
SELECT sum(integration.publish_event('order.bulk', jsonb_build_object('n', g))) AS published
  FROM generate_series(1, 300) g;
SELECT count(*) AS deliveries, count(DISTINCT (id)) AS distinct_ids, bool_and(usable) AS usable
  FROM integration._fan_out(270);
SELECT count(*) AS deliveries FROM integration._fan_out(1000);
SELECT count(*) AS queued FROM integration.webhook_event_queue;
SELECT status, count(*) FROM integration.deliveries GROUP BY status ORDER BY status;

-- Row-level security: another tenant's calls see none of these rows; with no tenant
-- the claim's UPDATE is refused.
UPDATE integration.deliveries SET status = 'pending', next_attempt_at = now(), lease_expires_at = NULL
 WHERE event_id = (SELECT min(event_id) FROM integration.deliveries WHERE status = 'sending');
SET integration.tenant_id = 'store-other';
SELECT * FROM integration._claim_due(10);
SELECT integration._reconcile_leases() AS returned;
RESET integration.tenant_id;
SELECT * FROM integration._claim_due(10);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'store';
SELECT count(*) AS still_due FROM integration.deliveries WHERE status = 'pending';

-- Refused arguments; NULL ones (STRICT) claim nothing.
SELECT * FROM integration._claim_due(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration._claim_due(1, lease => '-1 s');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration._fan_out(1, lease => '1 mon');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration._fan_out(1, lease => '24 days 00:00:00.001');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS claimed FROM integration._claim_due(NULL);
SELECT count(*) AS claimed FROM integration._claim_due(10, lease => NULL);
SELECT count(*) AS still_due FROM integration.deliveries WHERE status = 'pending';
RESET ROLE;
RESET integration.tenant_id;

-- row_unlocked(xmax, claim_xmax): whether nobody has locked, updated or deleted a row
-- version since its claim wrote it.  The worker writes an outcome only into such a row,
-- so that it never waits for another session; the planner takes it to hold for every
-- row, where "xmax = 0" looked like 0.5% of them (src/row_unlocked.c).
CREATE TABLE unlocked_demo (i int, claimed bool NOT NULL DEFAULT false);
INSERT INTO unlocked_demo SELECT generate_series(1, 1000);
ANALYZE unlocked_demo;
SELECT count(*) FILTER (WHERE integration.row_unlocked(xmax, '0')) AS unlocked FROM unlocked_demo;
-- A claim locks its rows, then updates them, as the worker's claim of pending
-- deliveries does: the new versions keep the claim's lock, its xid in xmax, after it
-- commits.  Unlocked for that claim, not for another.
BEGIN;
WITH locked AS (SELECT ctid FROM unlocked_demo WHERE i <= 3 FOR UPDATE SKIP LOCKED)
UPDATE unlocked_demo SET claimed = true WHERE ctid = ANY (ARRAY(SELECT ctid FROM locked));
SELECT pg_current_xact_id()::xid AS claim_xmax \gset
COMMIT;
SELECT count(*) FILTER (WHERE xmax = :'claim_xmax') AS carrying_the_claim,
	   count(*) FILTER (WHERE integration.row_unlocked(xmax, :'claim_xmax')) AS unlocked,
	   count(*) FILTER (WHERE integration.row_unlocked(xmax, '0')) AS unlocked_without_claim
  FROM unlocked_demo WHERE claimed;
-- Anyone else's lock, on claimed rows too.
BEGIN;
SELECT i FROM unlocked_demo WHERE i <= 5 FOR UPDATE;
SELECT count(*) FILTER (WHERE integration.row_unlocked(xmax, :'claim_xmax')) AS unlocked FROM unlocked_demo;
ROLLBACK;
-- The worker learns that xmax from the claim's own RETURNING (CLAIM_DUE in
-- src/delivery_claim.c), which reads the row version the update made: the claiming
-- transaction's xid, or its subtransaction's where the claim runs in one, which the row
-- still carries once all has committed.
BEGIN;
SELECT pg_current_xact_id()::xid AS top_xid \gset
WITH locked AS (SELECT ctid FROM unlocked_demo WHERE i BETWEEN 11 AND 13 FOR UPDATE SKIP LOCKED),
	 claimed AS (UPDATE unlocked_demo SET claimed = true
				  WHERE ctid = ANY (ARRAY(SELECT ctid FROM locked)) RETURNING xmax)
SELECT count(*) FILTER (WHERE xmax = :'top_xid') AS returned_the_xid FROM claimed;
SAVEPOINT claim;
WITH locked AS (SELECT ctid FROM unlocked_demo WHERE i BETWEEN 21 AND 23 FOR UPDATE SKIP LOCKED),
	 claimed AS (UPDATE unlocked_demo SET claimed = true
				  WHERE ctid = ANY (ARRAY(SELECT ctid FROM locked)) RETURNING xmax)
SELECT (array_agg(xmax))[1] AS sub_xmax, count(DISTINCT xmax::text) AS sub_xmaxes FROM claimed \gset
RELEASE SAVEPOINT claim;
COMMIT;
SELECT :sub_xmaxes AS sub_xmaxes, :'sub_xmax'::xid = :'top_xid'::xid AS sub_is_top,
	   count(*) FILTER (WHERE i <= 13 AND integration.row_unlocked(xmax, :'top_xid')) AS top_unlocked,
	   count(*) FILTER (WHERE i >= 21 AND xmax = :'sub_xmax') AS sub_carrying,
	   count(*) FILTER (WHERE i >= 21 AND integration.row_unlocked(xmax, :'sub_xmax')) AS sub_unlocked,
	   count(*) FILTER (WHERE i >= 21 AND integration.row_unlocked(xmax, :'top_xid')) AS sub_unlocked_for_top
  FROM unlocked_demo WHERE i BETWEEN 11 AND 13 OR i BETWEEN 21 AND 23;
CREATE FUNCTION pg_temp.estimated_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
	RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END
$$;
SELECT pg_temp.estimated_rows('SELECT * FROM unlocked_demo WHERE integration.row_unlocked(xmax, ''0'')') AS row_unlocked,
	   pg_temp.estimated_rows('SELECT * FROM unlocked_demo WHERE xmax = 0') AS xmax_0;
DROP TABLE unlocked_demo;
