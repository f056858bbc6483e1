-- Inbound handlers: on_inbound() and the rest of its API with their errors, and the
-- handlers run by the worker's own code through _run_inbound() (the worker is off in
-- these suites): processed, skipped, retried and failed, in order per object, fair
-- across tenants, as the role that registered them with the event's tenant selected;
-- reprocess_inbound() and its bulk form; the backlog view.  Times vary from run to run:
-- they are compared, never printed.
\set SHOW_CONTEXT never
ALTER TABLE integration.inbound_events ALTER COLUMN id RESTART WITH 5001;
-- Events other files left pending have no handlers: skipped, out of the way (a run
-- takes one event per object, so as many runs as the longest chain).
CREATE TEMP TABLE others AS SELECT * FROM integration._run_inbound(1000) WHERE false;
DO $$
BEGIN
	LOOP
		INSERT INTO others SELECT * FROM integration._run_inbound(1000);
		EXIT WHEN NOT FOUND;
	END LOOP;
END
$$;
SELECT coalesce(bool_and(status = 'skipped'), true) AS others_skipped FROM others;

-- A kind written in SQL, unsigned: a body is a JSON array of events.
CREATE FUNCTION public.ih_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT e ->> 'id', e ->> 'topic', e ->> 'object', e FROM jsonb_array_elements(body::jsonb) AS e $$;
SELECT name FROM integration.register_connector_kind('hshop', auth => 'none', signature_scheme => 'none',
	normalise => 'public.ih_normalise(integration.connector_context, jsonb, text)');

-- What the handlers write, and a role of their own for the checks made when they run.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_handler') THEN
		CREATE ROLE integration_test_handler NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
END
$$;
GRANT integration_test_app TO integration_test_handler;
CREATE TABLE public.ih_log (
	n				serial,
	handler			text,
	tenant_id		text,
	event_id		bigint,
	event			text,
	who				text,
	tenant_seen		text,
	visible_events	bigint,
	other_tenants	bigint,
	search_path		text
);
GRANT ALL ON public.ih_log, public.ih_log_n_seq TO integration_test_app;
-- One the app role may not execute.
CREATE FUNCTION public.ih_private(e integration.inbound_events) RETURNS void
	LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION public.ih_private(integration.inbound_events) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.ih_private(integration.inbound_events) TO integration_test_handler;

SET ROLE integration_test_app;
-- Records what it sees: its role, its tenant, the inbound events it can read.
CREATE FUNCTION public.ih_record(e integration.inbound_events) RETURNS void
	LANGUAGE plpgsql
AS $$
BEGIN
	INSERT INTO public.ih_log (handler, tenant_id, event_id, event, who, tenant_seen, visible_events,
							   other_tenants, search_path)
	VALUES ('record', e.tenant_id, e.id, e.event, current_user, integration.current_tenant(),
			(SELECT count(*) FROM integration.inbound_events),
			(SELECT count(*) FROM integration.inbound_events x WHERE x.tenant_id <> e.tenant_id),
			current_setting('search_path'));
END
$$;
-- Fails while the event's payload says so, or when the table fail_next holds its id.
CREATE TABLE public.ih_fail_next (event_id bigint);
CREATE FUNCTION public.ih_flaky(e integration.inbound_events) RETURNS text
	LANGUAGE plpgsql
AS $$
BEGIN
	INSERT INTO public.ih_log (handler, tenant_id, event_id, event, who)
	VALUES ('flaky', e.tenant_id, e.id, e.event, current_user);
	IF (e.payload ->> 'fail')::boolean OR EXISTS (SELECT FROM public.ih_fail_next f WHERE f.event_id = e.id) THEN
		RAISE EXCEPTION 'cannot handle %', e.external_id USING ERRCODE = 'check_violation';
	END IF;
	RETURN 'ok';
END
$$;
-- Functions that are not handlers.
CREATE FUNCTION public.ih_two_args(e integration.inbound_events, x integer) RETURNS void
	LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION public.ih_set(e integration.inbound_events) RETURNS SETOF integer
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE public.ih_proc(e integration.inbound_events) LANGUAGE sql AS $$ SELECT $$;

SET integration.tenant_id = 'ih-a';
SELECT id AS conn_a FROM integration.create_connector('hshop', 'shop a', NULL, '{}') \gset
SELECT id AS conn_a2 FROM integration.create_connector('hshop', 'shop a2', NULL, '{}') \gset
SET integration.tenant_id = 'ih-b';
SELECT id AS conn_b FROM integration.create_connector('hshop', 'shop b', NULL, '{}') \gset

------------------------------------------------------------------------------------------
-- Registering: on_inbound() and its errors.
------------------------------------------------------------------------------------------
SET integration.tenant_id = 'ih-a';
SELECT tenant_id, name, events, handler, run_as, connector_id
  FROM integration.on_inbound('orders', '["hshop.order.**"]', 'public.ih_record(integration.inbound_events)');
SELECT tenant_id, name, events, handler, run_as, connector_id
  FROM integration.on_inbound('flaky', '["hshop.order.paid", "hshop.flaky"]', 'public.ih_flaky(integration.inbound_events)');
-- Of one connector only.
SELECT name, connector_id = :conn_a2 AS of_a2
  FROM integration.on_inbound('a2 only', '["hshop.**"]', 'public.ih_record(integration.inbound_events)',
							  connector_id => :conn_a2);
-- A pattern no kind's events can match is accepted, with a notice.
SELECT name FROM integration.on_inbound('misspelt', '["shop.order.*"]', 'public.ih_record(integration.inbound_events)');

-- Errors, each with its SQLSTATE.
SELECT integration.on_inbound('orders', '["hshop.**"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 'public.ih_two_args(integration.inbound_events, integer)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 'public.ih_set(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 'public.ih_proc(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 'integration.require_tenant_for_write()');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 'public.ih_private(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.**"]', 123456789::regprocedure);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop..x"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '"hshop.x"', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound(' ', '["hshop.x"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', NULL, 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.on_inbound('x', '["hshop.x"]', 'public.ih_record(integration.inbound_events)', connector_id => :conn_b);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = '';
SELECT integration.on_inbound('x', '["hshop.x"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'ih-a';
RESET ROLE;
-- Superusers and roles that bypass row-level security would see every tenant's rows.
SELECT integration.on_inbound('x', '["hshop.x"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
SET ROLE integration_test_admin;
SELECT integration.on_inbound('x', '["hshop.x"]', 'public.ih_record(integration.inbound_events)');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A handler runs as whoever wrote it: plain SQL cannot name another role, but a
-- superuser may (an administrator registering for an application role).
SET ROLE integration_test_app;
INSERT INTO integration.inbound_handlers (name, events, handler, run_as)
VALUES ('sneaky', '["hshop.none"]', 'public.ih_record(integration.inbound_events)', 'postgres')
RETURNING name, run_as;
UPDATE integration.inbound_handlers SET run_as = 'integration_test_handler' WHERE name = 'sneaky'
RETURNING name, run_as;
RESET ROLE;
UPDATE integration.inbound_handlers SET run_as = 'integration_test_handler' WHERE name = 'sneaky'
RETURNING name, run_as;
UPDATE integration.inbound_handlers SET run_as = 'integration_test_admin' WHERE name = 'sneaky';
\echo :LAST_ERROR_SQLSTATE
SET ROLE integration_test_app;

-- list, replace, remove; each change is logged.
SELECT name, events, handler, run_as FROM integration.list_inbound_handlers();
SELECT name, events FROM integration.on_inbound('misspelt', '["hshop.typo"]', 'public.ih_record(integration.inbound_events)', replace => true);
SELECT integration.remove_inbound('misspelt'), integration.remove_inbound('sneaky');
SELECT integration.remove_inbound('misspelt');
\echo :LAST_ERROR_SQLSTATE
SELECT event, message, context - 'handler_id' AS context FROM integration.list_integration_logs()
 WHERE event LIKE 'inbound.handler%' ORDER BY id;
-- Another tenant sees none of them.
SET integration.tenant_id = 'ih-b';
SELECT count(*) AS b_sees FROM integration.list_inbound_handlers();
SELECT integration.remove_inbound('orders');
\echo :LAST_ERROR_SQLSTATE
SELECT name, run_as FROM integration.on_inbound('b orders', '["hshop.order.**"]', 'public.ih_record(integration.inbound_events)');

------------------------------------------------------------------------------------------
-- Running: receive_webhook() stores events pending; _run_inbound() runs their handlers.
------------------------------------------------------------------------------------------
SET integration.tenant_id = 'ih-a';
SELECT status, inbound_id, event FROM integration.receive_webhook(:conn_a, '{}', '[
	{"id": "a1", "topic": "order/created", "object": "o1"},
	{"id": "a2", "topic": "order/paid", "object": "o1"},
	{"id": "a3", "topic": "order/created", "object": "o2"},
	{"id": "a4", "topic": "refund/created", "object": "o3"}]');
SELECT status, inbound_id, event FROM integration.receive_webhook(:conn_a2, '{}', '[
	{"id": "a2-1", "topic": "customer/created", "object": "c1"}]');
SET integration.tenant_id = 'ih-b';
SELECT status, inbound_id, event FROM integration.receive_webhook(:conn_b, '{}', '[
	{"id": "b1", "topic": "order/created", "object": "o1"}]');
RESET ROLE;

-- Only superusers run handlers from SQL; max is bounded.
SET ROLE integration_test_app;
SELECT * FROM integration._run_inbound(10);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM integration._run_inbound(-1);
\echo :LAST_ERROR_SQLSTATE

-- One run: a2 waits for a1, the earlier event of its object; a4 has no handler.
SELECT tenant_id, id, status, attempts, error FROM integration._run_inbound(10) ORDER BY tenant_id, id;
-- Each handler ran as the role that registered it, with the event's tenant selected,
-- and saw that tenant's events only.
SELECT handler, tenant_id, event_id, event, who, tenant_seen, visible_events, other_tenants, search_path
  FROM public.ih_log ORDER BY n;
-- Next run: a1 is processed, so a2 runs; its second handler fails and rolls back the
-- first one's row too.
INSERT INTO public.ih_fail_next VALUES (5002);
SELECT max(n) AS log_mark FROM public.ih_log \gset
SELECT tenant_id, id, status, attempts, error FROM integration._run_inbound(10) ORDER BY tenant_id, id;
SELECT handler, event_id FROM public.ih_log WHERE n > :log_mark ORDER BY n;
SELECT id, status, attempts, last_error, next_attempt_at > now() AS retry_later, processed_at IS NULL AS not_done
  FROM integration.inbound_events WHERE id = 5002;
-- Not due yet: nothing runs.
SELECT count(*) AS ran FROM integration._run_inbound(10);

-- Due again, it fails until its attempts are used up (integration.retry_schedule: 8).
UPDATE integration.inbound_events SET next_attempt_at = now() WHERE id = 5002;
SELECT id, status, attempts FROM integration._run_inbound(10);
UPDATE integration.inbound_events SET next_attempt_at = now(), attempts = 7 WHERE id = 5002;
SELECT id, status, attempts, error FROM integration._run_inbound(10);
SELECT id, status, attempts, next_attempt_at IS NULL AS unscheduled, processed_at IS NOT NULL AS ended
  FROM integration.inbound_events WHERE id = 5002;
SELECT tenant_id, level, event, message, context - 'next_attempt_at' AS context
  FROM integration.integration_logs WHERE source = 'inbound' AND tenant_id LIKE 'ih-%' ORDER BY id;

-- Reprocessing: one event, and in bulk.  The handler works now.
DELETE FROM public.ih_fail_next;
SET ROLE integration_test_app;
SET integration.tenant_id = 'ih-a';
SELECT integration.reprocess_inbound(5002);
SELECT status, attempts, last_error, next_attempt_at <= now() AS due FROM integration.inbound_events WHERE id = 5002;
RESET ROLE;
SELECT tenant_id, id, status, attempts FROM integration._run_inbound(10);
SET ROLE integration_test_app;
SELECT integration.reprocess_inbound_events(connector_id => :conn_a, status => 'processed', event => 'hshop.order.created');
SELECT integration.reprocess_inbound_events();
SELECT integration.reprocess_inbound(1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.reprocess_inbound_events(status => 'pending');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.reprocess_inbound_events(status => NULL);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'ih-b';
SELECT integration.reprocess_inbound(5001);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'ih-a';
SELECT event, message FROM integration.list_integration_logs() WHERE event = 'inbound.reprocessed' ORDER BY id;
RESET ROLE;
SELECT tenant_id, id, status, attempts FROM integration._run_inbound(10) ORDER BY id;
SELECT handler, event_id, count(*) AS runs FROM public.ih_log WHERE tenant_id = 'ih-a' GROUP BY 1, 2 ORDER BY 2, 1;

------------------------------------------------------------------------------------------
-- Order per object, and fairness across tenants.
------------------------------------------------------------------------------------------
SET ROLE integration_test_app;
SET integration.tenant_id = 'ih-a';
-- The first event of o9 fails once: the two after it wait, and run in order after it.
SELECT count(*) AS accepted FROM integration.receive_webhook(:conn_a, '{}', '[
	{"id": "o9-1", "topic": "flaky", "object": "o9"},
	{"id": "o9-2", "topic": "order/created", "object": "o9"},
	{"id": "o9-3", "topic": "order/paid", "object": "o9"},
	{"id": "p1", "topic": "order/created"}]');
RESET ROLE;
INSERT INTO public.ih_fail_next SELECT id FROM integration.inbound_events WHERE external_id = 'o9-1';
SELECT e.external_id, r.status, r.attempts FROM integration._run_inbound(10) r
  JOIN integration.inbound_events e ON e.tenant_id = r.tenant_id AND e.id = r.id ORDER BY r.id;
DELETE FROM public.ih_fail_next;
UPDATE integration.inbound_events SET next_attempt_at = now() WHERE external_id = 'o9-1';
SELECT e.external_id, r.status FROM integration._run_inbound(10) r
  JOIN integration.inbound_events e ON e.tenant_id = r.tenant_id AND e.id = r.id ORDER BY r.id;
SELECT e.external_id, r.status FROM integration._run_inbound(10) r
  JOIN integration.inbound_events e ON e.tenant_id = r.tenant_id AND e.id = r.id ORDER BY r.id;
SELECT e.external_id, r.status FROM integration._run_inbound(10) r
  JOIN integration.inbound_events e ON e.tenant_id = r.tenant_id AND e.id = r.id ORDER BY r.id;
SELECT string_agg(external_id, ' ' ORDER BY first_run) AS handled_in_order
  FROM (SELECT e.external_id, min(l.n) AS first_run
		  FROM public.ih_log l JOIN integration.inbound_events e ON e.tenant_id = l.tenant_id AND e.id = l.event_id
		 WHERE e.object_id = 'o9' GROUP BY 1) s;

-- Tenant A's backlog of 40 events received first; tenant B's one after: B's runs in the
-- first claim of 8, which takes a share of each tenant's.
SET ROLE integration_test_app;
SET integration.tenant_id = 'ih-a';
SELECT count(*) AS a_backlog FROM integration.receive_webhook(:conn_a, '{}',
	(SELECT jsonb_agg(jsonb_build_object('id', 'bulk-' || g, 'topic', 'order/created'))::text
	   FROM generate_series(1, 40) g));
SET integration.tenant_id = 'ih-b';
SELECT count(*) AS b_one FROM integration.receive_webhook(:conn_b, '{}', '[{"id": "b-late", "topic": "order/created"}]');
RESET ROLE;
SELECT tenant_id, count(*) AS claimed FROM integration._run_inbound(8) GROUP BY 1 ORDER BY 1;

-- The backlog, per connector: superusers see every tenant's.
SELECT tenant_id, connector, kind, pending, retrying, oldest_pending_at IS NOT NULL AS has_oldest, failed
  FROM integration.inbound_backlog WHERE kind = 'hshop' ORDER BY tenant_id, connector;
SET ROLE integration_test_app;
SET integration.tenant_id = 'ih-b';
SELECT tenant_id, connector, pending, failed FROM integration.inbound_backlog ORDER BY connector;
RESET ROLE;
SELECT count(*) AS drained FROM integration._run_inbound(100);
SELECT tenant_id, connector, pending, failed FROM integration.inbound_backlog WHERE kind = 'hshop' ORDER BY 1, 2;

------------------------------------------------------------------------------------------
-- What is checked again when a handler runs: the role and the function.
------------------------------------------------------------------------------------------
SET ROLE integration_test_handler;
SET integration.tenant_id = 'ih-b';
SELECT name, run_as FROM integration.on_inbound('private', '["hshop.private"]', 'public.ih_private(integration.inbound_events)');
SELECT count(*) AS accepted FROM integration.receive_webhook(:conn_b, '{}', '[{"id": "pv1", "topic": "private"}, {"id": "pv2", "topic": "private"}, {"id": "pv3", "topic": "private"}]');
RESET ROLE;
-- Become a superuser after registering: refused.
ALTER ROLE integration_test_handler SUPERUSER;
SELECT status, error FROM integration._run_inbound(1);
ALTER ROLE integration_test_handler NOSUPERUSER;
-- Lose the right to execute it: refused.
REVOKE EXECUTE ON FUNCTION public.ih_private(integration.inbound_events) FROM integration_test_handler;
SELECT status, error FROM integration._run_inbound(1);
GRANT EXECUTE ON FUNCTION public.ih_private(integration.inbound_events) TO integration_test_handler;
SELECT status, error FROM integration._run_inbound(1);

------------------------------------------------------------------------------------------
-- The handler worker's pacing: whose event runs next, and when a transaction commits.
------------------------------------------------------------------------------------------
-- A slow tenant's events run one per transaction, and the other tenant's quick events
-- all run, and commit, between two of them.
SELECT integration._inbound_pacer_plan(100, '{a,a,a,b,b}', '{5000,5000,5000,1,1}') AS slow_beside_quick;
-- Quick events share a transaction until their handlers have taken the budget.
SELECT integration._inbound_pacer_plan(100, '{a,a,a,a}', '{30,30,30,30}') AS budget;
-- Fair by time, not by count: b's three 10 ms events before a's second 40 ms one.
SELECT integration._inbound_pacer_plan(100, '{a,a,a,b,b,b}', '{40,40,40,10,10,10}') AS by_time;
-- Handed in order (the scheduler's round-robin): equal tenants alternate.
SELECT integration._inbound_pacer_plan(100, '{a,b,a,b}', '{1,1,1,1}') AS alternate;
SELECT integration._inbound_pacer_plan(0, '{a}', '{1}');
SELECT integration._inbound_pacer_plan(100, '{a,b}', '{1}');

-- Clean up what is cluster-wide.
DELETE FROM integration.inbound_handlers WHERE run_as = 'integration_test_handler'::regrole;
REVOKE integration_test_app FROM integration_test_handler;
REVOKE ALL ON FUNCTION public.ih_private(integration.inbound_events) FROM integration_test_handler;
DROP ROLE integration_test_handler;
