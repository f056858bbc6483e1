-- The worker's statements that read the head of a backlog take the index-ordered plan
-- whatever the statistics say.  The hazard: the last ANALYZE saw no pending delivery
-- (a new table, or a backlog that arrived after it), so next_attempt_at is all NULL
-- to the planner and every path to the due rows looks like one row.  A plan chosen by
-- those estimates can read the whole backlog (a full scan of another partial index,
-- an aggregate or a sort over it) where it wants its first rows.
--
-- Everything happens in one transaction that is rolled back: the other files'
-- deliveries are hidden by a DELETE of this transaction (ANALYZE does not sample rows
-- its own transaction deleted), and the statistics ANALYZE writes go with the rollback.
-- The ANALYZE holds off autovacuum's until then.  The statements are those of
-- src/delivery_claim.c, text for text.
\set SHOW_CONTEXT never
BEGIN;
-- Loaded without the triggers that check tenants and references: only plans are shown.
SET LOCAL session_replication_role = replica;
DELETE FROM integration.deliveries;
-- 2,000 delivered deliveries when ANALYZE runs, then 20,000 pending ones.
INSERT INTO integration.deliveries (tenant_id, id, event_id, endpoint_id, status,
									next_attempt_at, created_at, delivered_at)
	OVERRIDING SYSTEM VALUE
	SELECT 'plans', 900000 + g, 900000 + g, g % 20, 'delivered', NULL,
		   now() - interval '1 day', now() - interval '1 day'
	  FROM generate_series(1, 2000) g;
ANALYZE integration.deliveries;
SELECT null_frac FROM pg_stats
 WHERE schemaname = 'integration' AND tablename = 'deliveries' AND attname = 'next_attempt_at';
INSERT INTO integration.deliveries (tenant_id, id, event_id, endpoint_id, status,
									next_attempt_at, created_at)
	OVERRIDING SYSTEM VALUE
	SELECT 'plans', 900000 + g, 900000 + g, g % 20, 'pending',
		   now() - g * interval '1 ms', now()
	  FROM generate_series(2001, 22000) g;

-- StoreNextDue(), as it was: min() reads every pending row, an aggregate over a full
-- scan of a partial index of another purpose.  (It was planned at each execution,
-- which aggregated a full scan all the same; the generic plan is the one shown, since
-- with "one row" the three partial indexes on pending rows cost nearly the same, and
-- which one a plan for each execution takes depends on what the other files left.)
SET LOCAL plan_cache_mode = force_generic_plan;
PREPARE next_due_min(timestamptz, int8[]) AS
	SELECT pg_catalog.min(next_attempt_at) FROM integration.deliveries
	 WHERE next_attempt_at > $1 AND NOT (endpoint_id = ANY ($2));
EXPLAIN (COSTS OFF) EXECUTE next_due_min('-infinity', '{3}');

-- StoreNextDue() now: the head of deliveries_due_idx, the earliest row of those left.
-- Its generic plan, and its plan for the first rows (CURSOR_OPT_FAST_PLAN, which a NO
-- SCROLL cursor gets).
PREPARE next_due(timestamptz, int8[]) AS
	SELECT d.next_attempt_at FROM integration.deliveries d
	 WHERE d.next_attempt_at > $1 AND NOT (d.endpoint_id = ANY ($2))
	 ORDER BY d.next_attempt_at LIMIT 1;
EXPLAIN (COSTS OFF) EXECUTE next_due('-infinity', '{3}');
EXECUTE next_due('-infinity', '{3}') \gset
SELECT :'next_attempt_at'::timestamptz = min(next_attempt_at) AS the_earliest
  FROM integration.deliveries WHERE endpoint_id <> 3;
EXPLAIN (COSTS OFF) DECLARE c NO SCROLL CURSOR FOR
	SELECT d.next_attempt_at FROM integration.deliveries d
	 WHERE d.next_attempt_at > '-infinity' AND NOT (d.endpoint_id = ANY ('{3}'))
	 ORDER BY d.next_attempt_at LIMIT 1;

-- The claim's head (pick_due_around()).  Its generic plan for all its rows, as it was
-- before it asked for its first rows: a sort of a full scan of deliveries_pending_idx,
-- every pending row at each claim.  Then the plan for its first rows: the ordered scan
-- of deliveries_due_idx.  (In PostgreSQL 15, EXPLAIN shows a generic plan only for
-- all its rows, and a cursor's plan only with its parameters' values; the worker's plan
-- is both generic and for its first rows.)
PREPARE claim_head(int8) AS
	SELECT d.ctid, d.endpoint_id FROM integration.deliveries d
	 WHERE d.next_attempt_at <= pg_catalog.now()
	 ORDER BY d.next_attempt_at LIMIT $1;
EXPLAIN (COSTS OFF) EXECUTE claim_head(256);
EXPLAIN (COSTS OFF) DECLARE c NO SCROLL CURSOR FOR
	SELECT d.ctid, d.endpoint_id FROM integration.deliveries d
	 WHERE d.next_attempt_at <= pg_catalog.now()
	 ORDER BY d.next_attempt_at LIMIT 256;

-- The claim of the rows the head picked (StoreClaim()), as it was: with the still-due
-- condition on the table, a scan of a whole partial index filtered by ctid.  Now: the
-- rows found by ctid alone (a TID scan) in a FOR UPDATE CTE, which is not inlined, and
-- the condition asked of what it locked.
PREPARE claim_by_ctid_was(tid[]) AS
	SELECT d.ctid FROM integration.deliveries d
	 WHERE d.ctid = ANY ($1) AND d.next_attempt_at <= pg_catalog.now()
	   FOR UPDATE SKIP LOCKED;
EXPLAIN (COSTS OFF) EXECUTE claim_by_ctid_was('{"(0,1)"}');
PREPARE claim_by_ctid(tid[]) AS
	WITH locked AS (
	  SELECT d.ctid, d.next_attempt_at FROM integration.deliveries d
	   WHERE d.ctid = ANY ($1)
	   FOR UPDATE SKIP LOCKED),
	 due AS (SELECT l.ctid FROM locked l
	          WHERE l.next_attempt_at <= pg_catalog.now())
	SELECT due.ctid FROM due;
EXPLAIN (COSTS OFF) EXECUTE claim_by_ctid('{"(0,1)"}');

-- Retention's walks (src/retention_connectors.c), on statistics from before their
-- backlog.  Calls: analyzed while all were pending (finished_at all NULL), then
-- finished.  Records: analyzed with none live (deleted by this transaction), then
-- stored again: a live connector's records ahead of a deleted connector's in key order.
-- Connectors: as they are when analyzed, a live one and one deleted 60 days ago.
DELETE FROM integration.connectors;
DELETE FROM integration.connector_calls;
DELETE FROM integration.external_records;
INSERT INTO integration.connectors (tenant_id, id, kind, name, deleted_at)
	OVERRIDING SYSTEM VALUE
	VALUES ('plans', 900001, 'generic', 'live', NULL),
		   ('plans', 900002, 'generic', 'gone', now() - interval '60 days');
INSERT INTO integration.connector_calls (tenant_id, id, connector_id, operation, status,
										 next_attempt_at, created_at)
	OVERRIDING SYSTEM VALUE
	SELECT 'plans', 900000 + g, 900001, 'GET /x', 'pending', now(), now() - interval '61 days'
	  FROM generate_series(1, 20000) g;
INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
										  external_updated_at, payload, content_hash, source)
	SELECT 'plans', 900001 + (g > 20000)::int, 'orders', lpad(g::text, 8, '0'), now(), '{}',
		   sha256(g::text::bytea), 'pull'
	  FROM generate_series(1, 20050) g;
DELETE FROM integration.external_records;
ANALYZE integration.connectors, integration.connector_calls, integration.external_records;
SELECT attname, null_frac FROM pg_stats
 WHERE schemaname = 'integration' AND tablename = 'connector_calls' AND attname = 'finished_at';
SELECT reltuples FROM pg_class WHERE oid = 'integration.external_records'::regclass;
UPDATE integration.connector_calls
   SET status = 'succeeded', next_attempt_at = NULL,
	   finished_at = now() - interval '60 days' + (id - 900000) * interval '1 ms';
INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
										  external_updated_at, payload, content_hash, source)
	SELECT 'plans', 900001 + (g > 20000)::int, 'orders', lpad(g::text, 8, '0'), now(), '{}',
		   sha256(g::text::bytea), 'pull'
	  FROM generate_series(1, 20050) g;

-- RetentionCallsWindow(), as it was: one statement, the window a CTE.  A CTE is planned
-- for all its rows, and for "one row" that is a bitmap scan of all the walk ahead of it
-- plus a sort; each row of the window was then looked up by a scan of all of
-- connector_calls_expiry_idx (id is its second column), not by the primary key.  With
-- 100,000 expired calls so analyzed, a window of 100 read all 100,000 and took 179 ms
-- (the window alone: 19 ms in the audit's run), and a backlog's deletion was quadratic.
PREPARE calls_window_was(timestamptz, int8, timestamptz, int8, timestamptz, timestamptz) AS
	WITH w AS MATERIALIZED (
	  SELECT k.tenant_id, k.id, k.finished_at AS t
	    FROM integration.connector_calls k
	   WHERE k.finished_at IS NOT NULL
	     AND (k.finished_at, k.id) > ($1, $2) AND k.finished_at < $3
	   ORDER BY k.finished_at, k.id LIMIT $4),
	 doomed AS (
	  SELECT x.ctid FROM w CROSS JOIN LATERAL (
	    SELECT k.ctid FROM integration.connector_calls k
	     WHERE k.tenant_id = w.tenant_id AND k.id = w.id
	       AND ((k.status = 'succeeded' AND k.finished_at < $5)
	            OR (k.status = 'failed' AND k.finished_at < $6))
	       FOR UPDATE SKIP LOCKED) x),
	 gone AS (DELETE FROM integration.connector_calls x
	           WHERE x.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed)) RETURNING 1),
	 last AS (SELECT w.t, w.id FROM w ORDER BY w.t DESC, w.id DESC LIMIT 1)
	SELECT (SELECT count(*) FROM w), (SELECT last.t FROM last), (SELECT last.id FROM last),
	       (SELECT count(*) FROM gone);
EXPLAIN (COSTS OFF) EXECUTE calls_window_was('-infinity', 0, now(), 100,
											 now() - interval '7 days', now() - interval '30 days');

-- RetentionCallsWindow() now: the window a statement of its own, with a generic plan for
-- its first rows.  Planned for all its rows it is the same sort; as a cursor (for its
-- first rows) the ordered scan of connector_calls_expiry_idx, which is what the worker
-- runs (auto_explain: 100 rows read, 0.7 ms).  Then the window's expired rows, each
-- probed by its primary key (LATERAL), locked, and deleted if still expired as locked:
-- 0.8 ms for the window of 100.
PREPARE calls_window(timestamptz, int8, timestamptz, int8, timestamptz, timestamptz) AS
	SELECT k.tenant_id, k.id, k.finished_at,
	       (k.status = 'succeeded' AND k.finished_at < $5)
	       OR (k.status = 'failed' AND k.finished_at < $6)
	  FROM integration.connector_calls k
	 WHERE k.finished_at IS NOT NULL
	   AND (k.finished_at, k.id) > ($1, $2) AND k.finished_at < $3
	 ORDER BY k.finished_at, k.id LIMIT $4;
EXPLAIN (COSTS OFF) EXECUTE calls_window('-infinity', 0, now(), 100,
										 now() - interval '7 days', now() - interval '30 days');
EXPLAIN (COSTS OFF) DECLARE c NO SCROLL CURSOR FOR
	SELECT k.tenant_id, k.id, k.finished_at,
	       (k.status = 'succeeded' AND k.finished_at < now() - interval '7 days')
	       OR (k.status = 'failed' AND k.finished_at < now() - interval '30 days')
	  FROM integration.connector_calls k
	 WHERE k.finished_at IS NOT NULL
	   AND (k.finished_at, k.id) > ('-infinity', 0) AND k.finished_at < now()
	 ORDER BY k.finished_at, k.id LIMIT 100;
PREPARE calls_delete(text[], int8[], timestamptz, timestamptz) AS
	WITH locked AS MATERIALIZED (
	  SELECT x.ctid, x.status, x.finished_at
	    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS w(tenant_id, id)
	   CROSS JOIN LATERAL (
	     SELECT k.ctid, k.status, k.finished_at FROM integration.connector_calls k
	      WHERE k.tenant_id = w.tenant_id AND k.id = w.id
	        FOR UPDATE SKIP LOCKED) x),
	 gone AS (DELETE FROM integration.connector_calls x
	           WHERE x.ctid = ANY (ARRAY(
	             SELECT l.ctid FROM locked l
	              WHERE (l.status = 'succeeded' AND l.finished_at < $3)
	                 OR (l.status = 'failed' AND l.finished_at < $4)))
	          RETURNING 1)
	SELECT count(*) FROM gone;
EXPLAIN (COSTS OFF) EXECUTE calls_delete('{plans}', '{900001}',
										 now() - interval '7 days', now() - interval '30 days');

-- RetentionRecordsWindow(), as it was: the deleted connector joined to its records with
-- the LIMIT outside.  For "one row" of records, the planner joined it to a full scan of
-- external_records_pkey with the connector as a join filter: 500 records of a deleted
-- connector behind a live connector's 300,000 in key order read 300,500 rows, 135 ms
-- (502 ms in the audit's run; 27 ms with fresh statistics).
PREPARE records_window_was(timestamptz, int8, timestamptz, int8) AS
	WITH k AS MATERIALIZED (
	  SELECT c.tenant_id, c.id, c.deleted_at FROM integration.connectors c
	   WHERE c.deleted_at IS NOT NULL
	     AND (c.deleted_at, c.id) > ($1, $2) AND c.deleted_at < $3
	   ORDER BY c.deleted_at, c.id LIMIT 1),
	 doomed AS (
	  SELECT r.ctid FROM k JOIN integration.external_records r
	    ON r.tenant_id = k.tenant_id AND r.connector_id = k.id
	   LIMIT $4 FOR UPDATE OF r SKIP LOCKED),
	 gone AS (DELETE FROM integration.external_records x
	           WHERE x.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed)) RETURNING 1)
	SELECT (SELECT count(*) FROM doomed), (SELECT k.deleted_at FROM k),
	       (SELECT k.id FROM k), (SELECT count(*) FROM gone);
EXPLAIN (COSTS OFF) EXECUTE records_window_was('-infinity', 0, now() - interval '7 days', 1000);

-- RetentionRecordsWindow() now: the records probed with the connector's key (LATERAL),
-- which a scan can only take as the primary key's prefix (or read the whole table, at
-- its whole cost): the window alone, 4 ms.
PREPARE records_window(timestamptz, int8, timestamptz, int8) AS
	WITH k AS MATERIALIZED (
	  SELECT c.tenant_id, c.id, c.deleted_at FROM integration.connectors c
	   WHERE c.deleted_at IS NOT NULL
	     AND (c.deleted_at, c.id) > ($1, $2) AND c.deleted_at < $3
	   ORDER BY c.deleted_at, c.id LIMIT 1),
	 doomed AS (
	  SELECT d.ctid FROM k CROSS JOIN LATERAL (
	    SELECT r.ctid FROM integration.external_records r
	     WHERE r.tenant_id = k.tenant_id AND r.connector_id = k.id
	     LIMIT $4 FOR UPDATE SKIP LOCKED) d),
	 gone AS (DELETE FROM integration.external_records x
	           WHERE x.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed)) RETURNING 1)
	SELECT (SELECT count(*) FROM doomed), (SELECT k.deleted_at FROM k),
	       (SELECT k.id FROM k), (SELECT count(*) FROM gone);
EXPLAIN (COSTS OFF) EXECUTE records_window('-infinity', 0, now() - interval '7 days', 1000);
EXECUTE records_window('-infinity', 0, now() - interval '7 days', 1000) \gset records_
SELECT :records_id AS connector,
	   count(*) FILTER (WHERE connector_id = 900001) AS live_left,
	   count(*) FILTER (WHERE connector_id = 900002) AS deleted_left
  FROM integration.external_records;

-- RetentionInboundWindow(): analyzed while every event is pending (no handled one,
-- status all 'pending' to the planner), then 20,000 handled 60 days ago.
DELETE FROM integration.inbound_events;
INSERT INTO integration.inbound_events (tenant_id, id, connector_id, external_id, topic,
										event, payload, received_at)
	OVERRIDING SYSTEM VALUE
	SELECT 'plans', 900000 + g, 900001, 'e' || g, 'orders/paid', 'generic.orders.paid', '{}',
		   now() - interval '61 days'
	  FROM generate_series(1, 20000) g;
ANALYZE integration.inbound_events;
UPDATE integration.inbound_events
   SET status = 'processed', next_attempt_at = NULL,
	   processed_at = now() - interval '60 days' + (id - 900000) * interval '1 ms';

-- As it was: one statement, the window a CTE planned for all its rows, and each row
-- looked up by a condition on its handled time that implies inbound_events_expiry_idx's
-- predicate: the lookup may scan that whole index for each row of the window.
PREPARE inbound_window_was(timestamptz, int8, timestamptz, int8, timestamptz, timestamptz,
						   timestamptz, timestamptz) AS
	WITH w AS MATERIALIZED (
	  SELECT e.tenant_id, e.id, COALESCE(e.processed_at, e.received_at) AS t
	    FROM integration.inbound_events e
	   WHERE e.status <> 'pending'
	     AND (COALESCE(e.processed_at, e.received_at), e.id) > ($1, $2)
	     AND COALESCE(e.processed_at, e.received_at) < $3
	   ORDER BY COALESCE(e.processed_at, e.received_at), e.id LIMIT $4),
	 doomed AS (
	  SELECT x.ctid FROM w CROSS JOIN LATERAL (
	    SELECT e.ctid FROM integration.inbound_events e
	      JOIN integration.connectors c ON c.tenant_id = e.tenant_id AND c.id = e.connector_id
	     WHERE e.tenant_id = w.tenant_id AND e.id = w.id
	       AND ((e.status IN ('processed', 'skipped')
	             AND COALESCE(e.processed_at, e.received_at) < $5)
	            OR (e.status = 'failed' AND COALESCE(e.processed_at, e.received_at) < $6))
	       AND (e.dedupe_expired
	            OR e.received_at < CASE WHEN c.dedupe_window IS NULL THEN $8
	                                    ELSE $7 - c.dedupe_window END)
	       FOR UPDATE OF e SKIP LOCKED) x),
	 gone AS (DELETE FROM integration.inbound_events x
	           WHERE x.ctid = ANY (ARRAY(SELECT doomed.ctid FROM doomed)) RETURNING 1)
	SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM gone);
EXPLAIN (COSTS OFF) EXECUTE inbound_window_was('-infinity', 0, now(), 100,
											   now() - interval '7 days', now() - interval '30 days',
											   now(), now() - interval '7 days');

-- Now, as the calls': the window a statement of its own for its first rows (the ordered
-- scan of inbound_events_expiry_idx), then its expired rows each probed by its primary
-- key, locked, and deleted when still expired and past the dedupe window as locked.
EXPLAIN (COSTS OFF) DECLARE c NO SCROLL CURSOR FOR
	SELECT e.tenant_id, e.id, COALESCE(e.processed_at, e.received_at),
	       (e.status IN ('processed', 'skipped')
	        AND COALESCE(e.processed_at, e.received_at) < now() - interval '7 days')
	       OR (e.status = 'failed'
	           AND COALESCE(e.processed_at, e.received_at) < now() - interval '30 days')
	  FROM integration.inbound_events e
	 WHERE e.status <> 'pending'
	   AND (COALESCE(e.processed_at, e.received_at), e.id) > ('-infinity', 0)
	   AND COALESCE(e.processed_at, e.received_at) < now()
	 ORDER BY COALESCE(e.processed_at, e.received_at), e.id LIMIT 100;
PREPARE inbound_delete(text[], int8[], timestamptz, timestamptz, timestamptz, timestamptz) AS
	WITH locked AS MATERIALIZED (
	  SELECT x.ctid, x.tenant_id, x.connector_id, x.status, x.processed_at,
	         x.received_at, x.dedupe_expired
	    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS w(tenant_id, id)
	   CROSS JOIN LATERAL (
	     SELECT e.ctid, e.tenant_id, e.connector_id, e.status, e.processed_at,
	            e.received_at, e.dedupe_expired
	       FROM integration.inbound_events e
	      WHERE e.tenant_id = w.tenant_id AND e.id = w.id
	        FOR UPDATE SKIP LOCKED) x),
	 gone AS (DELETE FROM integration.inbound_events x
	           WHERE x.ctid = ANY (ARRAY(
	             SELECT l.ctid FROM locked l
	               JOIN integration.connectors k
	                 ON k.tenant_id = l.tenant_id AND k.id = l.connector_id
	              WHERE ((l.status IN ('processed', 'skipped')
	                      AND COALESCE(l.processed_at, l.received_at) < $3)
	                     OR (l.status = 'failed'
	                         AND COALESCE(l.processed_at, l.received_at) < $4))
	                AND (l.dedupe_expired
	                     OR l.received_at < CASE WHEN k.dedupe_window IS NULL THEN $6
	                                             ELSE $5 - k.dedupe_window END)))
	          RETURNING 1)
	SELECT count(*) FROM gone;
EXPLAIN (COSTS OFF) EXECUTE inbound_delete('{plans}', '{900001}',
										   now() - interval '7 days', now() - interval '30 days',
										   now(), now() - interval '7 days');
EXECUTE inbound_delete('{plans,plans}', '{900001,900002}',
					   now() - interval '7 days', now() - interval '30 days',
					   now(), now() - interval '7 days');

-- Retention's walk of events (src/retention.c read_window()), on statistics that saw
-- them: 30 tenants of about 1,000 events, one each 20 minutes over 14 days, the older
-- half expired; five tenants (plans25 to plans29) only a day old.  The tenants come one
-- probe each (the recursive CTE), from the greatest down, and each tenant's expired
-- events are one range of webhook_events_created_idx from where the walk stands to the
-- cutoff, so no tenant's young events are read.
DELETE FROM integration.webhook_events;
INSERT INTO integration.webhook_events (tenant_id, id, event, payload, endpoint_ids, created_at)
	OVERRIDING SYSTEM VALUE
	SELECT 'plans' || g % 30, 900000 + g, 'order.created',
		   integration.envelope('order.created', '{}'), '{}',
		   CASE WHEN g % 30 >= 25 THEN now() - interval '1 day'
				ELSE now() - interval '14 days' + (g / 30) * interval '20 minutes' END
	  FROM generate_series(1, 30000) g;
ANALYZE integration.webhook_events;
PREPARE events_window(text, timestamptz, int8, timestamptz, timestamptz, int8) AS
	WITH RECURSIVE t(tenant_id, after_at, after_id) AS (
	   SELECT $1 COLLATE "C", $2, $3 WHERE $1 <> ''
	  UNION ALL
	   SELECT g.tenant_id, $2, $3 FROM (
	     SELECT e.tenant_id FROM integration.webhook_events e
	      WHERE $1 = '' ORDER BY e.tenant_id DESC LIMIT 1) g
	  UNION ALL
	   SELECT x.tenant_id, $4, '-9223372036854775808'::pg_catalog.int8
	     FROM t CROSS JOIN LATERAL (
	     SELECT e.tenant_id FROM integration.webhook_events e
	      WHERE e.tenant_id < t.tenant_id ORDER BY e.tenant_id DESC LIMIT 1) x)
	 SELECT t.tenant_id, w.id, w.created_at FROM t LEFT JOIN LATERAL (
	   SELECT e.id, e.created_at FROM integration.webhook_events e
	    WHERE e.tenant_id = t.tenant_id
	      AND (e.created_at, e.id) > (t.after_at, t.after_id) AND e.created_at < $5
	    ORDER BY e.created_at, e.id LIMIT $6) w ON true
	 LIMIT $6;
EXPLAIN (COSTS OFF) EXECUTE events_window('', '-infinity', 0, '-infinity',
										  now() - interval '7 days', 100);
-- The walk's order: tenants descending, each tenant's events ascending.
CREATE FUNCTION pg_temp.in_walk_order(t text, at timestamptz, id int8,
									  prev_t text, prev_at timestamptz, prev_id int8)
	RETURNS bool LANGUAGE sql IMMUTABLE
	RETURN prev_t IS NULL OR t < prev_t COLLATE "C" OR (t = prev_t AND (at, id) > (prev_at, prev_id));
-- A pass that stands in plans3 two hours before the cutoff, and whose pass before had
-- its cutoff an hour earlier: plans3's last six expired events, then three in each
-- tenant below it, in the walk's order, and one row without an event for each young
-- tenant; 65 rows, and the walk is through the tenants below plans3.
CREATE TEMP TABLE events_window_rows AS
	EXECUTE events_window('plans3', now() - interval '7 days 2 hours', 0,
						  now() - interval '7 days 1 hour', now() - interval '7 days', 100);
SELECT string_agg(tenant_id || ' ' || n, ', ' ORDER BY first_row) AS events_by_tenant
  FROM (SELECT tenant_id, count(id) AS n, min(ctid) AS first_row
		  FROM events_window_rows GROUP BY tenant_id) x;
SELECT count(*) AS rows_read, count(id) AS events,
	   bool_and(created_at >= now() - interval '7 days 2 hours'
				AND created_at < now() - interval '7 days') AS all_in_range,
	   bool_and(in_order) AS in_walk_order
  FROM (SELECT r.*, pg_temp.in_walk_order(tenant_id, created_at, id,
		  lag(tenant_id) OVER w, lag(created_at) OVER w, lag(id) OVER w) AS in_order
		  FROM events_window_rows r WINDOW w AS (ORDER BY r.ctid)) x;
-- The start of a pass (no tenant yet): from the greatest tenant, plans9, three events
-- in each tenant from the cutoff of the pass before on.
CREATE TEMP TABLE events_start_rows AS
	EXECUTE events_window('', now() - interval '7 days 1 hour', '-9223372036854775808',
						  now() - interval '7 days 1 hour', now() - interval '7 days', 100);
SELECT count(*) AS rows_read, count(id) AS events,
	   (SELECT tenant_id FROM events_start_rows ORDER BY ctid LIMIT 1) AS first_tenant,
	   bool_and(in_order) AS in_walk_order
  FROM (SELECT r.*, pg_temp.in_walk_order(tenant_id, created_at, id,
		  lag(tenant_id) OVER w, lag(created_at) OVER w, lag(id) OVER w) AS in_order
		  FROM events_start_rows r WINDOW w AS (ORDER BY r.ctid)) x;
-- No event at all: no row.
SAVEPOINT empty;
DELETE FROM integration.webhook_events;
EXECUTE events_window('', '-infinity', 0, '-infinity', now() - interval '7 days', 100);
ROLLBACK TO SAVEPOINT empty;

-- The probes do not step over the dead entries the passes before left.  Retention
-- deleted every tenant's events older than the pass before's cutoff, the oldest half,
-- and no vacuum has run (the deletes are this transaction's, so no scan can mark their
-- index entries dead either).  Each tenant's oldest entries are then dead, in both
-- indexes that hold tenant_id first; a probe upwards (tenant_id > t ORDER BY tenant_id)
-- lands on them and visits the heap for each, a probe downwards lands on a tenant's
-- newest entries.  The buffers of one window before and after that delete, of the
-- statement above and of the same statement probing upwards (about 250 each before;
-- after, 250 downwards and 9,000 upwards when this was written): bounds, not counts,
-- for they follow the tables' layout.
PREPARE events_window_up(text, timestamptz, int8, timestamptz, timestamptz, int8) AS
	WITH RECURSIVE t(tenant_id, after_at, after_id) AS (
	   SELECT $1 COLLATE "C", $2, $3
	  UNION ALL
	   SELECT x.tenant_id, $4, '-9223372036854775808'::pg_catalog.int8
	     FROM t CROSS JOIN LATERAL (
	     SELECT e.tenant_id FROM integration.webhook_events e
	      WHERE e.tenant_id > t.tenant_id ORDER BY e.tenant_id LIMIT 1) x)
	 SELECT t.tenant_id, w.id, w.created_at FROM t LEFT JOIN LATERAL (
	   SELECT e.id, e.created_at FROM integration.webhook_events e
	    WHERE e.tenant_id = t.tenant_id
	      AND (e.created_at, e.id) > (t.after_at, t.after_id) AND e.created_at < $5
	    ORDER BY e.created_at, e.id LIMIT $6) w ON true
	 LIMIT $6;
CREATE FUNCTION pg_temp.window_buffers(statement text) RETURNS int8 LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF, FORMAT JSON) EXECUTE '
		|| statement || $a$('', now() - interval '7 days 1 hour', '-9223372036854775808',
			now() - interval '7 days 1 hour', now() - interval '7 days', 100)$a$
		INTO plan;
	RETURN (plan -> 0 -> 'Plan' ->> 'Shared Hit Blocks')::int8
		+ (plan -> 0 -> 'Plan' ->> 'Shared Read Blocks')::int8;
END
$$;
CREATE TEMP TABLE window_buffers_before AS
	SELECT pg_temp.window_buffers('events_window') AS down,
		   pg_temp.window_buffers('events_window_up') AS up;
DELETE FROM integration.webhook_events WHERE created_at < now() - interval '7 days 1 hour';
SELECT count(*) AS events_left FROM integration.webhook_events;
SELECT b.up BETWEEN b.down - 20 AND b.down + 20 AS same_before,
	   a.down <= b.down + 20 AS down_reads_no_dead_entry,
	   a.up > 10 * a.down AS up_steps_over_them
  FROM window_buffers_before b,
	   LATERAL (SELECT pg_temp.window_buffers('events_window') AS down,
					   pg_temp.window_buffers('events_window_up') AS up) a;
ROLLBACK;
