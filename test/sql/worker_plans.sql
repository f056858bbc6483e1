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
-- src/delivery_store.c, text for text.
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
ROLLBACK;

