-- Tenant isolation of inbound handlers, in pgTAP form, rolled back at the end: one
-- tenant's handler never runs for, nor sees, another tenant's events, and one tenant
-- cannot read, change, remove or reprocess another's handlers and events.  The worker
-- is off here: _run_inbound() runs the handlers with the worker's code.
BEGIN;
SELECT plan(37);

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_app') THEN
		CREATE ROLE integration_test_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
END
$$;
GRANT USAGE ON SCHEMA integration TO integration_test_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO integration_test_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO integration_test_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO integration_test_app;

-- An unsigned kind: a body is a JSON array of events.
CREATE FUNCTION public.tap_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT e ->> 'id', e ->> 'topic', e ->> 'object', e FROM jsonb_array_elements(body::jsonb) AS e $$;
SELECT lives_ok($$SELECT integration.register_connector_kind('taphook', 'none', 'none',
	'public.tap_normalise(integration.connector_context, jsonb, text)')$$, 'a superuser registers an unsigned kind');

-- What each tenant's handler saw, one row per call.
CREATE TABLE public.tap_seen (
	handler_of		text,
	event_tenant	text,
	tenant_selected	text,
	who				text,
	events_visible	bigint,
	foreign_events	bigint,
	foreign_handlers bigint,
	foreign_connectors bigint
);
GRANT ALL ON public.tap_seen TO integration_test_app;
CREATE FUNCTION public.tap_seen_by(owner text, e integration.inbound_events) RETURNS void
	LANGUAGE sql
AS $$
	INSERT INTO public.tap_seen
	SELECT owner, e.tenant_id, integration.current_tenant(), current_user,
		   (SELECT count(*) FROM integration.inbound_events),
		   (SELECT count(*) FROM integration.inbound_events x WHERE x.tenant_id <> e.tenant_id),
		   (SELECT count(*) FROM integration.inbound_handlers x WHERE x.tenant_id <> e.tenant_id),
		   (SELECT count(*) FROM integration.connectors x WHERE x.tenant_id <> e.tenant_id)
$$;
CREATE FUNCTION public.tap_handler_a(e integration.inbound_events) RETURNS void
	LANGUAGE sql AS $$ SELECT public.tap_seen_by('tap-ha', e) $$;
CREATE FUNCTION public.tap_handler_b(e integration.inbound_events) RETURNS void
	LANGUAGE sql AS $$ SELECT public.tap_seen_by('tap-hb', e) $$;
GRANT EXECUTE ON FUNCTION public.tap_seen_by(text, integration.inbound_events),
	public.tap_handler_a(integration.inbound_events), public.tap_handler_b(integration.inbound_events)
	TO integration_test_app;

CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint);
GRANT ALL ON ids TO integration_test_app;
SET LOCAL ROLE integration_test_app;

-- Each tenant: a connector, a handler of every event, and events received.
SET LOCAL integration.tenant_id = 'tap-ha';
INSERT INTO ids SELECT 'c_a', id FROM integration.create_connector('taphook', 'a', NULL, '{}');
INSERT INTO ids SELECT 'h_a', id FROM integration.on_inbound('everything', '["*"]', 'public.tap_handler_a(integration.inbound_events)');
SELECT is((SELECT count(*) FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_a'), '{}',
			'[{"id": "a1", "topic": "order/created", "object": "o1"}, {"id": "a2", "topic": "order/paid", "object": "o1"},
			  {"id": "a3", "topic": "refund/created"}]') WHERE status = 'accepted'),
		  3::bigint, 'A receives three events');
SET LOCAL integration.tenant_id = 'tap-hb';
INSERT INTO ids SELECT 'c_b', id FROM integration.create_connector('taphook', 'b', NULL, '{}');
INSERT INTO ids SELECT 'h_b', id FROM integration.on_inbound('everything', '["*"]', 'public.tap_handler_b(integration.inbound_events)');
SELECT is((SELECT count(*) FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_b'), '{}',
			'[{"id": "b1", "topic": "order/created", "object": "o1"}, {"id": "b2", "topic": "order/created"}]')
			WHERE status = 'accepted'),
		  2::bigint, 'B receives two events, one with the same external object id as A''s');
INSERT INTO ids SELECT 'e_b', id FROM integration.inbound_events WHERE external_id = 'b2';

-- As A: B's handlers and events do not exist.
SET LOCAL integration.tenant_id = 'tap-ha';
SELECT results_eq($$SELECT name, handler::text FROM integration.list_inbound_handlers()$$,
				  $$VALUES ('everything', 'public.tap_handler_a(integration.inbound_events)')$$,
				  'A lists only its own handler');
SELECT is_empty($$SELECT * FROM integration.inbound_handlers WHERE tenant_id <> 'tap-ha'$$,
				'A reads none of B''s handlers');
SELECT is_empty(format('UPDATE integration.inbound_handlers SET events = %L WHERE id = %s RETURNING id',
					   '["taphook.x"]', (SELECT v FROM ids WHERE k = 'h_b')),
				'A''s UPDATE of B''s handler touches no row');
SELECT is_empty(format('DELETE FROM integration.inbound_handlers WHERE id = %s RETURNING id', (SELECT v FROM ids WHERE k = 'h_b')),
				'A''s DELETE of B''s handler touches no row');
SELECT throws_ok($$INSERT INTO integration.inbound_handlers (tenant_id, name, events, handler)
				   VALUES ('tap-hb', 'planted', '["*"]', 'public.tap_handler_a(integration.inbound_events)')$$,
				 '42501', NULL, 'A cannot plant a handler among B''s');
SELECT throws_ok(format('SELECT integration.on_inbound(%L, %L, %L, connector_id => %s)', 'spy', '["*"]',
						'public.tap_handler_a(integration.inbound_events)', (SELECT v FROM ids WHERE k = 'c_b')),
				 'P0002', NULL, 'A cannot register a handler of B''s connector');
SELECT throws_ok(format('SELECT integration.reprocess_inbound(%s)', (SELECT v FROM ids WHERE k = 'e_b')),
				 'P0002', NULL, 'A cannot reprocess B''s event');
-- Both handlers are named "everything": removing A's leaves B's.
SELECT lives_ok($$SELECT integration.remove_inbound('everything')$$, 'A removes its own handler');
SELECT lives_ok($$SELECT integration.on_inbound('everything', '["*"]', 'public.tap_handler_a(integration.inbound_events)')$$,
				'and registers it again');

-- The handlers run: each tenant's for its own events only.
RESET ROLE;
SELECT is((SELECT count(*) FROM integration._run_inbound(100) WHERE status = 'processed'),
		  4::bigint, 'one run processes the four events not waiting for an earlier one');
SELECT is((SELECT count(*) FROM integration._run_inbound(100) WHERE status = 'processed'),
		  1::bigint, 'the next run processes a2, which waited for a1');
SELECT results_eq($$SELECT handler_of, event_tenant, count(*) FROM public.tap_seen GROUP BY 1, 2 ORDER BY 1, 2$$,
				  $$VALUES ('tap-ha', 'tap-ha', 3::bigint), ('tap-hb', 'tap-hb', 2::bigint)$$,
				  'A''s handler ran for A''s three events only, B''s for B''s two only');
SELECT is_empty($$SELECT * FROM public.tap_seen WHERE tenant_selected IS DISTINCT FROM event_tenant$$,
				'every handler ran with its event''s tenant selected');
SELECT is_empty($$SELECT * FROM public.tap_seen WHERE who <> 'integration_test_app'$$,
				'every handler ran as the role that registered it');
SELECT is_empty($$SELECT * FROM public.tap_seen WHERE foreign_events <> 0 OR foreign_handlers <> 0 OR foreign_connectors <> 0$$,
				'no handler saw another tenant''s events, handlers or connectors');
SELECT results_eq($$SELECT event_tenant, max(events_visible) FROM public.tap_seen GROUP BY 1 ORDER BY 1$$,
				  $$VALUES ('tap-ha', 3::bigint), ('tap-hb', 2::bigint)$$,
				  'each saw its own tenant''s events');

-- As A again: bulk reprocessing reaches A's events only, and so does the next run.
SET LOCAL ROLE integration_test_app;
SET LOCAL integration.tenant_id = 'tap-ha';
SELECT is(integration.reprocess_inbound_events(status => 'processed'), 3, 'A requeues its three processed events');
SELECT is_empty($$SELECT * FROM integration.list_inbound_events() WHERE tenant_id <> 'tap-ha'$$,
				'list_inbound_events shows A nothing of B''s');
RESET ROLE;
SELECT is((SELECT count(*) FROM integration.inbound_events WHERE tenant_id = 'tap-hb' AND status = 'processed'),
		  2::bigint, 'B''s events stay processed');
DELETE FROM public.tap_seen;
SELECT is((SELECT count(*) FROM integration._run_inbound(100)), 2::bigint, 'a run takes a1 and a3');
SELECT is((SELECT count(*) FROM integration._run_inbound(100)), 1::bigint, 'and the next a2');
SELECT results_eq($$SELECT handler_of, event_tenant, count(*) FROM public.tap_seen GROUP BY 1, 2$$,
				  $$VALUES ('tap-ha', 'tap-ha', 3::bigint)$$,
				  'the requeued events run A''s handler again, and B''s handler not at all');

-- A role bound to tap-ha, logged in (SET SESSION AUTHORIZATION), member of the unbound
-- application role.  Its handlers run without its login, in the handler worker's
-- session, and must stay bound there: registered under SET ROLE to the unbound role,
-- a handler could set another tenant; nor may it reach another tenant through an
-- unbound owner's SECURITY DEFINER function.
CREATE ROLE tap_bound NOLOGIN IN ROLE integration_test_app;
SELECT integration.bind_role('tap_bound', 'tap-ha');
CREATE FUNCTION public.tap_switch(e integration.inbound_events) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', 'tap-hb', true);
	PERFORM public.tap_seen_by('tap-definer', e);
END
$$;
ALTER FUNCTION public.tap_switch(integration.inbound_events) OWNER TO integration_test_app;
CREATE FUNCTION public.tap_via_definer(e integration.inbound_events) RETURNS void
	LANGUAGE sql AS $$ SELECT public.tap_switch(e) $$;
GRANT EXECUTE ON FUNCTION public.tap_via_definer(integration.inbound_events) TO tap_bound;
DELETE FROM public.tap_seen;
SET LOCAL SESSION AUTHORIZATION tap_bound;
INSERT INTO ids SELECT 'c_bound', id FROM integration.create_connector('taphook', 'bound', NULL, '{}');
SET LOCAL ROLE integration_test_app;
SELECT is(integration.current_tenant(), 'tap-ha', 'under SET ROLE to the unbound role, the session acts as its login role''s tenant');
SELECT throws_ok(format('SELECT integration.on_inbound(%L, %L, %L, connector_id => %s)', 'unbound', '["*"]',
						'public.tap_handler_a(integration.inbound_events)', (SELECT v FROM ids WHERE k = 'c_bound')),
				 '42501', 'an inbound handler of tenant "tap-ha" cannot run as role "integration_test_app"',
				 'but it cannot register a handler that would run as the unbound role');
RESET ROLE;
SELECT lives_ok(format('SELECT integration.on_inbound(%L, %L, %L, connector_id => %s)', 'via-definer', '["*"]',
					   'public.tap_via_definer(integration.inbound_events)', (SELECT v FROM ids WHERE k = 'c_bound')),
				'as itself, it registers a handler that calls the unbound role''s SECURITY DEFINER function');
SELECT is((SELECT count(*) FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_bound'), '{}',
			'[{"id": "z1", "topic": "order/created"}]') WHERE status = 'accepted'), 1::bigint, 'an event arrives');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM integration._run_inbound(100)), 1::bigint, 'a run takes it');
SELECT is_empty($$SELECT * FROM public.tap_seen WHERE handler_of = 'tap-definer'$$,
				'run without the login, the handler did not reach tenant tap-hb');
SELECT matches((SELECT last_error FROM integration.inbound_events WHERE external_id = 'z1'),
			   '^handler via-definer: invalid value for parameter "integration.tenant_id": "tap-hb" \(SQLSTATE 42501\)$',
			   'its attempt failed: the role it runs as is bound to tap-ha');


-- Whoever the role, a handler acts for its event's tenant only: one registered by the
-- unbound application role, whose function any member of that role could replace,
-- cannot set another tenant in the worker either.
CREATE FUNCTION public.tap_switcher(e integration.inbound_events) RETURNS void
	LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM set_config('integration.tenant_id', 'tap-hb', true);
	PERFORM public.tap_seen_by('tap-switcher', e);
END
$$;
GRANT EXECUTE ON FUNCTION public.tap_switcher(integration.inbound_events) TO integration_test_app;
SET LOCAL ROLE integration_test_app;
SET LOCAL integration.tenant_id = 'tap-ha';
INSERT INTO ids SELECT 'c_shared', id FROM integration.create_connector('taphook', 'shared', NULL, '{}');
SELECT lives_ok(format('SELECT integration.on_inbound(%L, %L, %L, connector_id => %s)', 'switcher', '["*"]',
					   'public.tap_switcher(integration.inbound_events)', (SELECT v FROM ids WHERE k = 'c_shared')),
				'the unbound application role registers a handler that sets another tenant');
SELECT is((SELECT count(*) FROM integration.receive_webhook((SELECT v FROM ids WHERE k = 'c_shared'), '{}',
			'[{"id": "z2", "topic": "order/created"}]') WHERE status = 'accepted'), 1::bigint, 'an event arrives for it');
RESET ROLE;
SELECT is((SELECT count(*) FROM integration._run_inbound(100)), 1::bigint, 'a run takes it');
SELECT matches((SELECT last_error FROM integration.inbound_events WHERE external_id = 'z2'),
			   '^handler switcher: invalid value for parameter "integration.tenant_id": "tap-hb" \(SQLSTATE 42501\)$',
			   'the handler could not set tenant tap-hb: it runs for tap-ha''s event');
SELECT is_empty($$SELECT * FROM public.tap_seen WHERE handler_of = 'tap-switcher'$$, 'and saw nothing of tap-hb');

SELECT * FROM finish();
ROLLBACK;
