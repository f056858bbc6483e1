-- Tenants bound to roles (integration.bind_role): a bound role cannot act as another
-- tenant through any API function, table or view, whether it sets the tenant itself or
-- finds it set; membership binds; with no tenant set it acts as its only tenant; bound
-- to two it must choose; unbinding restores today's behaviour.  Rolled back at the end.
BEGIN;
SELECT plan(109);

-- Roles are cluster-wide; this cluster is throwaway and the transaction rolls them back.
CREATE ROLE rb_app NOLOGIN NOSUPERUSER NOBYPASSRLS;	-- holds the grants
CREATE ROLE rb_a NOLOGIN IN ROLE rb_app;				-- bound to rb-a
CREATE ROLE rb_b NOLOGIN IN ROLE rb_app;				-- bound to rb-b
CREATE ROLE rb_ab NOLOGIN IN ROLE rb_app;				-- bound to rb-a and rb-b
CREATE ROLE rb_group NOLOGIN;							-- bound to rb-a
CREATE ROLE rb_member NOLOGIN IN ROLE rb_app, rb_group;	-- bound through rb_group
CREATE ROLE rb_noinherit NOLOGIN NOINHERIT IN ROLE rb_group;
CREATE ROLE rb_bypass NOLOGIN BYPASSRLS IN ROLE rb_app, rb_group;
CREATE ROLE rb_free NOLOGIN IN ROLE rb_app;			-- never bound
CREATE ROLE rb_owner NOLOGIN;							-- will own integration.tenant_roles
GRANT USAGE ON SCHEMA integration TO rb_app, rb_noinherit, rb_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO rb_app, rb_noinherit;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO rb_app, rb_noinherit;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO rb_app, rb_noinherit, rb_owner;

-- Fixture: rows of every tenant-scoped table for tenants rb-a and rb-b, written as the
-- superuser, with the ids in a table every role can read.
CREATE TEMP TABLE ids (k text PRIMARY KEY, v bigint);
GRANT ALL ON ids TO PUBLIC;
SET LOCAL integration.tenant_id = 'rb-b';
INSERT INTO ids SELECT 'ep_b', id FROM integration.register_webhook(name => 'b', url => 'https://b.example.invalid/', events => '["*"]');
INSERT INTO ids SELECT 'd_b', integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_b'), event => 'b.x', payload => '{}');
INSERT INTO ids SELECT 'd_b2', integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_b'), event => 'b.y', payload => '{}');
INSERT INTO ids SELECT 'published_b', integration.publish_event(event => 'b.queued', payload => '{}');	-- a queue row
UPDATE integration.deliveries SET status = 'failed', next_attempt_at = NULL, attempts = 1, last_error = 'HTTP 500' WHERE id = (SELECT v FROM ids WHERE k = 'd_b');
UPDATE integration.deliveries SET status = 'sending', next_attempt_at = NULL, lease_expires_at = now() - interval '1 hour'
 WHERE id = (SELECT v FROM ids WHERE k = 'd_b2');
INSERT INTO integration.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
VALUES ((SELECT v FROM ids WHERE k = 'd_b'), 1, now(), 5, 500);
SET LOCAL integration.tenant_id = 'rb-a';
INSERT INTO ids SELECT 'ep_a', id FROM integration.register_webhook(name => 'a', url => 'https://a.example.invalid/', events => '["*"]');
INSERT INTO ids SELECT 'd_a', integration.dispatch_webhook(id => (SELECT v FROM ids WHERE k = 'ep_a'), event => 'a.x', payload => '{}');
-- A business table whose writes publish events for the row's tenant.
CREATE TABLE public.rb_orders (tenant_id text NOT NULL, id int NOT NULL);
GRANT ALL ON public.rb_orders TO rb_app;
SELECT integration.track_table('public.rb_orders', 'order');
-- A SECURITY DEFINER function of an unbound role: inside it, current_user is its owner.
CREATE FUNCTION public.rb_count_endpoints() RETURNS bigint LANGUAGE sql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	RETURN (SELECT count(*) FROM integration.webhook_endpoints);
ALTER FUNCTION public.rb_count_endpoints() OWNER TO rb_free;
GRANT EXECUTE ON FUNCTION public.rb_count_endpoints() TO PUBLIC;
SET LOCAL integration.tenant_id = '';

-- Binding.  (9)
SELECT ok(integration.bind_role(role => 'rb_a', tenant => 'rb-a'), 'bind_role binds a role to a tenant');
SELECT is(integration.bind_role('rb_a', 'rb-a'), false, 'binding the same pair again changes nothing');
SELECT ok(integration.bind_role('rb_b', 'rb-b') AND integration.bind_role('rb_ab', 'rb-a')
		  AND integration.bind_role('rb_ab', 'rb-b') AND integration.bind_role('rb_group', 'rb-a'),
		  'more bindings: rb_b, rb_ab to two tenants, the group rb_group');
SELECT throws_ok($$SELECT integration.bind_role('postgres', 'rb-a')$$, '22023', 'role "postgres" cannot be bound to a tenant',
				 'a superuser cannot be bound: row-level security does not apply to it');
SELECT throws_ok($$SELECT integration.bind_role('rb_bypass', 'rb-a')$$, '22023', 'role "rb_bypass" cannot be bound to a tenant',
				 'a BYPASSRLS role cannot be bound');
SELECT throws_ok($$SELECT integration.bind_role('rb_a', 'not a tenant')$$, '22023', 'invalid tenant id "not a tenant"',
				 'a tenant id is checked as the setting checks it');
SELECT throws_ok($$SELECT integration.bind_role('rb_a', NULL)$$, '22004', NULL, 'a NULL tenant is refused');
SELECT results_eq($$SELECT tenant_id::text COLLATE "default", role::text FROM integration.tenant_roles ORDER BY 1, 2$$,
				  $$VALUES ('rb-a', 'rb_a'), ('rb-a', 'rb_ab'), ('rb-a', 'rb_group'), ('rb-b', 'rb_ab'), ('rb-b', 'rb_b')$$,
				  'integration.tenant_roles holds the bindings, roles by name');
SELECT lives_ok($$ALTER ROLE rb_a SET integration.tenant_id = 'rb-b'$$,
				'ALTER ROLE ... SET of another tenant is accepted: the check is where the value is used');
ALTER ROLE rb_a RESET integration.tenant_id;

-- A bound role that sets another tenant: refused at once.  (4)
SET LOCAL ROLE rb_a;
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, '42501', NULL, 'rb_a: SET of another tenant fails');
SELECT throws_ok($$SELECT set_config('integration.tenant_id', 'rb-b', true)$$, '42501', NULL, 'rb_a: set_config() of another tenant fails');
SELECT is(current_setting('integration.tenant_id'), '', 'the refused SET left the setting as it was');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-a'$$, 'rb_a: SET of its own tenant works');
RESET ROLE;

-- A bound role that finds another tenant set (SET before SET ROLE, a connection option,
-- ALTER ROLE ... SET): every API function fails with 42501.  (20)
SET LOCAL integration.tenant_id = 'rb-b';
SET LOCAL ROLE rb_a;
SELECT throws_ok($$SELECT integration.current_tenant()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'current_tenant() refuses');
SELECT throws_ok($$SELECT integration.require_tenant()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'require_tenant() refuses');
SELECT throws_ok($$SELECT integration.register_webhook(name => 'x', url => 'https://x.example.invalid/', events => '["*"]')$$,
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'register_webhook() refuses');
SELECT throws_ok($$SELECT * FROM integration.list_webhooks()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'list_webhooks() refuses');
SELECT throws_ok(format('SELECT integration.show_webhook(id => %s)', (SELECT v FROM ids WHERE k = 'ep_b')),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'show_webhook() refuses');
SELECT throws_ok(format('SELECT integration.update_webhook(id => %s, name => %L)', (SELECT v FROM ids WHERE k = 'ep_b'), 'stolen'),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'update_webhook() refuses');
SELECT throws_ok(format('SELECT integration.delete_webhook(id => %s)', (SELECT v FROM ids WHERE k = 'ep_b')),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'delete_webhook() refuses');
SELECT throws_ok(format('SELECT integration.dispatch_webhook(id => %s, event => %L, payload => %L)', (SELECT v FROM ids WHERE k = 'ep_b'), 'b.x', '{}'),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'dispatch_webhook() refuses');
SELECT throws_ok($$SELECT integration.publish_event(event => 'b.x', payload => '{}')$$,
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'publish_event() refuses');
SELECT throws_ok($$SELECT * FROM integration.list_deliveries()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'list_deliveries() refuses');
SELECT throws_ok(format('SELECT * FROM integration.list_delivery_attempts(delivery_id => %s)', (SELECT v FROM ids WHERE k = 'd_b')),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'list_delivery_attempts() refuses');
SELECT throws_ok($$SELECT * FROM integration.list_integration_logs()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'list_integration_logs() refuses');
SELECT throws_ok(format('SELECT integration.redeliver(delivery_id => %s)', (SELECT v FROM ids WHERE k = 'd_b')),
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'redeliver() refuses');
SELECT throws_ok($$SELECT integration.retry_failed()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'retry_failed() refuses');
SELECT throws_ok($$SELECT integration.log('info', 'api', 'x.y', 'm')$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'log() refuses');
SELECT throws_ok($$INSERT INTO public.rb_orders VALUES ('rb-b', 1)$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"',
				 'a tracked table''s trigger (publish_row_event) refuses');
-- The worker's statements, callable by an application role that was granted them.
SELECT throws_ok($$SELECT * FROM integration._claim_due(10)$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', '_claim_due() refuses');
SELECT throws_ok($$SELECT * FROM integration._fan_out(10)$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', '_fan_out() refuses');
SELECT throws_ok($$SELECT integration._reconcile_leases()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', '_reconcile_leases() refuses');
SELECT is(integration.bound_tenants(), ARRAY['rb-a'], 'bound_tenants() says what rb_a may act as');

-- ... and every tenant-scoped table and view, for reads and writes.  (13)
SELECT throws_ok(format('SELECT count(*) FROM integration.%I', t), '42501', 'role "rb_a" cannot act as tenant "rb-b"',
				 format('reading %s refuses', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'webhook_event_queue', 'deliveries', 'delivery_attempts',
					'integration_logs', 'webhook_deliveries', 'webhook_delivery_attempts']) t;
SELECT throws_ok($$INSERT INTO integration.webhook_endpoints (tenant_id, name, url, events) VALUES ('rb-b', 'p', 'https://p.example.invalid/', '["*"]')$$,
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'inserting an endpoint refuses');
SELECT throws_ok($$INSERT INTO integration.webhook_events (tenant_id, event, payload, endpoint_ids) VALUES ('rb-b', 'b.x', integration.envelope('b.x', '{}'), '{}')$$,
				 '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'inserting an event refuses');
SELECT throws_ok($$UPDATE integration.deliveries SET attempts = 0$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'updating deliveries refuses');
SELECT throws_ok($$DELETE FROM integration.integration_logs$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'deleting logs refuses');
SELECT throws_ok($$DELETE FROM integration.delivery_attempts$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"', 'deleting attempts refuses');

-- Inside a SECURITY DEFINER function owned by an unbound role, the caller's binding still
-- holds: the role set by SET ROLE is bound.  (2)
SELECT throws_ok($$SELECT public.rb_count_endpoints()$$, '42501', 'role "rb_a" cannot act as tenant "rb-b"',
				 'an unbound owner''s SECURITY DEFINER function does not lift the binding');
RESET ROLE;
SET LOCAL integration.tenant_id = '';
SET LOCAL ROLE rb_a;
SELECT is(public.rb_count_endpoints(), 1::bigint, 'with no tenant set, the function acts as the caller''s one tenant');

-- No tenant set: a role bound to one tenant acts as it.  (8)
SELECT is(integration.current_tenant(), 'rb-a', 'rb_a, no tenant set: current_tenant() is rb-a');
SELECT is(integration.require_tenant(), 'rb-a', 'rb_a, no tenant set: require_tenant() is rb-a');
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('a')$$, 'list_webhooks() lists rb-a''s endpoint');
SELECT results_eq($$SELECT event FROM integration.list_deliveries()$$, $$VALUES ('a.x')$$, 'list_deliveries() lists rb-a''s delivery');
SELECT is((SELECT count(*) FROM integration.webhook_endpoints), 1::bigint, 'the table shows rb-a''s one endpoint');
SELECT is(integration.publish_event(event => 'a.published', payload => '{}'), 1, 'publish_event() publishes to rb-a''s endpoint');
INSERT INTO ids SELECT 'ep_a2', id FROM integration.register_webhook(name => 'a2', url => 'https://a2.example.invalid/', events => '["*"]');
INSERT INTO public.rb_orders VALUES ('rb-a', 1);
RESET ROLE;
SELECT is((SELECT tenant_id::text FROM integration.webhook_endpoints WHERE name = 'a2'), 'rb-a', 'register_webhook() registered for rb-a');
SELECT is((SELECT count(*) FROM integration.webhook_events WHERE tenant_id = 'rb-a' AND event = 'order.created'), 1::bigint,
		  'a tracked write of an rb-a row published for rb-a');
SET LOCAL integration.tenant_id = '';

-- Bound to two tenants: it must choose, and can choose only those.  (10)
SET LOCAL ROLE rb_ab;
SELECT is(integration.current_tenant(), NULL, 'rb_ab, no tenant set: no tenant (it sees no rows)');
SELECT throws_ok($$SELECT integration.require_tenant()$$, '42501', 'no tenant selected', 'rb_ab, no tenant set: require_tenant() fails');
SELECT throws_ok($$SELECT * FROM integration.list_webhooks()$$, '42501', 'no tenant selected', 'rb_ab, no tenant set: list_webhooks() fails');
SELECT is_empty($$SELECT * FROM integration.webhook_endpoints$$, 'rb_ab, no tenant set: the table shows nothing');
SELECT throws_ok($$DELETE FROM integration.integration_logs$$, '42501', 'no tenant selected for write to integration_logs',
				 'rb_ab, no tenant set: a write fails');
SELECT is(integration.bound_tenants(), ARRAY['rb-a', 'rb-b'], 'bound_tenants() lists both');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, 'rb_ab may choose rb-b');
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('b')$$, 'and then acts as rb-b');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-a'$$, 'rb_ab may choose rb-a');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'rb-c'$$, '42501', NULL, 'rb_ab may not choose rb-c');
RESET ROLE;
SET LOCAL integration.tenant_id = '';

-- Through membership (MEMBER, inheriting or not); a BYPASSRLS member is not bound.  (7)
SET LOCAL ROLE rb_member;
SELECT is(integration.current_tenant(), 'rb-a', 'a member of a bound group acts as the group''s tenant');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, '42501', NULL, 'and cannot set another');
RESET ROLE;
SET LOCAL ROLE rb_noinherit;
SELECT is(integration.current_tenant(), 'rb-a', 'a NOINHERIT member is bound too');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, '42501', NULL, 'and cannot set another');
RESET ROLE;
SET LOCAL ROLE rb_bypass;
SELECT is(integration.bound_tenants(), NULL, 'a BYPASSRLS member of a bound group is not bound');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, 'and may set any tenant');
SELECT is((SELECT count(*) FROM integration.webhook_endpoints WHERE tenant_id IN ('rb-a', 'rb-b')), 3::bigint,
		  'it sees every tenant''s rows anyway');
RESET ROLE;
SET LOCAL integration.tenant_id = '';

-- An unbound role behaves as before bindings existed.  (6)
SET LOCAL ROLE rb_free;
SELECT is(integration.bound_tenants(), NULL, 'rb_free is not bound');
SELECT is(integration.current_tenant(), NULL, 'rb_free, no tenant set: no tenant');
SELECT throws_ok($$SELECT integration.require_tenant()$$, '42501', 'no tenant selected', 'rb_free, no tenant set: require_tenant() fails');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, 'rb_free may set rb-b');
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('b')$$, 'rb_free acts as rb-b');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-c'$$, 'rb_free may set a tenant nobody is bound to');
RESET ROLE;
SET LOCAL integration.tenant_id = '';

-- The PostgREST pattern: one session switches between request roles with
-- set_config('role', ..., true); each acts as its own tenant only.  (11)
SELECT is(set_config('role', 'rb_a', true), 'rb_a', 'a request switches to rb_a');
SELECT is(integration.current_tenant(), 'rb-a', 'request as rb_a: rb-a');
SELECT is(set_config('role', 'rb_b', true), 'rb_b', 'the next request switches to rb_b');
SELECT is(integration.current_tenant(), 'rb-b', 'request as rb_b: rb-b');
SELECT results_eq($$SELECT name FROM integration.list_webhooks()$$, $$VALUES ('b')$$, 'rb_b lists rb-b''s endpoint');
SELECT is(set_config('role', 'rb_a', true), 'rb_a', 'back to rb_a');
SELECT is(set_config('integration.tenant_id', 'rb-a', true), 'rb-a', 'rb_a sets its tenant');
SELECT is(set_config('role', 'rb_b', true), 'rb_b', 'then switches to rb_b, the setting left as it is');
SELECT throws_ok($$SELECT integration.current_tenant()$$, '42501', 'role "rb_b" cannot act as tenant "rb-a"',
				 'rb_b cannot act as rb-a: refused where the tenant is used');
SELECT throws_ok($$SELECT count(*) FROM integration.webhook_endpoints$$, '42501', 'role "rb_b" cannot act as tenant "rb-a"',
				 'nor read rb-a''s rows');
SELECT is(set_config('role', 'none', true) || integration.current_tenant(), 'nonerb-a',
		  'back to the (superuser) session role: unrestricted');
SET LOCAL integration.tenant_id = '';

-- The session user's binding holds whatever role it switches to: a tenant's login role
-- cannot shed its binding with SET ROLE to an unbound group it belongs to.  (3)
SET LOCAL SESSION AUTHORIZATION rb_a;
SET LOCAL ROLE rb_app;
SELECT is(integration.current_tenant(), 'rb-a', 'session user rb_a as rb_app: still rb-a');
SELECT throws_ok($$SET LOCAL integration.tenant_id = 'rb-b'$$, '42501', NULL, 'and still cannot set rb-b');
SELECT is((SELECT count(*) FROM integration.webhook_endpoints WHERE tenant_id = 'rb-b'), 0::bigint, 'nor see rb-b''s rows');
RESET SESSION AUTHORIZATION;

-- Who may bind: superusers and roles with the privileges of the table's owner; the
-- others cannot write the table whatever they were granted, and see none of its rows.  (7)
SET LOCAL ROLE rb_free;
SELECT throws_ok($$SELECT integration.bind_role('rb_free', 'rb-b')$$, '42501', 'permission denied to change tenant bindings',
				 'an application role cannot bind');
SELECT throws_ok($$SELECT integration.unbind_role('rb_a')$$, '42501', 'permission denied to change tenant bindings',
				 'nor unbind');
SELECT throws_ok($$INSERT INTO integration.tenant_roles (tenant_id, role) VALUES ('rb-b', 'rb_free')$$, '42501',
				 'permission denied to change tenant bindings', 'nor insert into tenant_roles, though granted INSERT');
SELECT throws_ok($$DELETE FROM integration.tenant_roles$$, '42501', 'permission denied to change tenant bindings',
				 'nor delete from it');
SELECT is_empty($$SELECT * FROM integration.tenant_roles$$, 'and sees none of its rows');
RESET ROLE;
ALTER TABLE integration.tenant_roles OWNER TO rb_owner;
SET LOCAL ROLE rb_owner;
SELECT ok(integration.bind_role('rb_free', 'rb-c'), 'the owner of tenant_roles may bind');
SELECT is(integration.unbind_role('rb_free'), 1, 'and unbind');
RESET ROLE;
ALTER TABLE integration.tenant_roles OWNER TO postgres;

-- Unbinding restores today's behaviour; bindings follow renames; a dropped role's
-- bindings are removed by the next bind_role() or unbind_role().  (9)
SELECT is(integration.unbind_role('rb_ab', 'rb-b'), 1, 'unbind_role(role, tenant) removes one binding');
SET LOCAL ROLE rb_ab;
SELECT is(integration.current_tenant(), 'rb-a', 'rb_ab, left with rb-a, acts as rb-a');
RESET ROLE;
SELECT is(integration.unbind_role('rb_ab'), 1, 'unbind_role(role) removes the rest');
SET LOCAL ROLE rb_ab;
SELECT is(integration.bound_tenants(), NULL, 'rb_ab is not bound any more');
SELECT lives_ok($$SET LOCAL integration.tenant_id = 'rb-c'$$, 'and may set any tenant again');
RESET ROLE;
SET LOCAL integration.tenant_id = '';
ALTER ROLE rb_b RENAME TO rb_b_renamed;
SET LOCAL ROLE rb_b_renamed;
SELECT is(integration.current_tenant(), 'rb-b', 'a renamed role keeps its binding');
RESET ROLE;
ALTER ROLE rb_b_renamed RENAME TO rb_b;
CREATE ROLE rb_gone NOLOGIN;
SELECT ok(integration.bind_role('rb_gone', 'rb-a'), 'a role to be dropped is bound');
DROP ROLE rb_gone;
SELECT is(integration.unbind_role('rb_free'), 0, 'unbind_role() of an unbound role removes nothing');
SELECT is_empty($$SELECT * FROM integration.tenant_roles t WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = t.role)$$,
				'and the dropped role''s binding is gone');

SELECT * FROM finish();
ROLLBACK;
