-- Publishing: publish_event(), tracked tables and hand-made triggers, all in the
-- writer's transaction.  An event is one row of webhook_events; webhook_deliveries shows
-- one row per (event, endpoint), so counts there are deliveries.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 4001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 4001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 4001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 4001;
-- :since_mark counts the events and deliveries (of the tenants the role sees) newer than
-- the last mark.
\set since_mark 'SELECT (SELECT count(*) FROM integration.webhook_events WHERE id > :mark) AS events, (SELECT count(*) FROM integration.webhook_deliveries WHERE event_id > :mark) AS deliveries'

SET ROLE integration_test_app;
SET integration.tenant_id = 'pub-a';
SELECT id AS e_all FROM integration.register_webhook(name => 'all', url => 'https://all.example.invalid/', events => '["*"]') \gset
SELECT id AS e_one FROM integration.register_webhook(name => 'order.*', url => 'https://one.example.invalid/', events => '["order.*"]') \gset
SELECT id AS e_deep FROM integration.register_webhook(name => 'order.**', url => 'https://deep.example.invalid/', events => '["order.**"]') \gset
SELECT id AS e_off FROM integration.register_webhook(name => 'inactive', url => 'https://off.example.invalid/', events => '["*"]') \gset
SELECT id AS e_gone FROM integration.register_webhook(name => 'deleted', url => 'https://gone.example.invalid/', events => '["*"]') \gset
SELECT is_active FROM integration.update_webhook(id => :e_off, is_active => false);
SELECT integration.delete_webhook(id => :e_gone);
SET integration.tenant_id = 'pub-b';
SELECT id AS e_b FROM integration.register_webhook(name => 'b all', url => 'https://b.example.invalid/', events => '["*"]') \gset
SET integration.tenant_id = 'pub-a';

-- publish_event returns the number of deliveries and enqueues exactly that many, all
-- sharing one event; inactive and deleted endpoints get nothing.
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
SELECT clock_timestamp() AS t_before \gset
SELECT integration.publish_event(event => 'order.created', payload => '{"order": 1, "tags": ["x"]}') AS order_created;
:since_mark;
SELECT endpoint_id = :e_all AS e_all, endpoint_id = :e_one AS e_one, endpoint_id = :e_deep AS e_deep,
	   event, status, id IS NULL AS not_fanned_out_yet
  FROM integration.webhook_deliveries WHERE event_id > :mark ORDER BY endpoint_id;
SELECT count(DISTINCT event_id) AS distinct_events FROM integration.webhook_deliveries WHERE event_id > :mark;
-- The envelope.
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload::jsonb) k) AS envelope_keys,
	   payload::jsonb ->> 'type' AS type,
	   payload::jsonb -> 'data' = '{"order": 1, "tags": ["x"]}' AS data_is_payload,
	   payload::jsonb ->> 'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS timestamp_shape,
	   (payload::jsonb ->> 'timestamp')::timestamptz BETWEEN :'t_before' AND created_at AS timestamp_is_publish_time,
	   endpoint_ids = ARRAY[:e_all, :e_one, :e_deep]::bigint[] AS endpoint_ids
  FROM integration.webhook_events WHERE id > :mark;
-- Patterns: * matches everything, order.* one more segment, order.** one or more.
SELECT integration.publish_event(event => 'order.item.added', payload => '{}') AS order_item_added,
	   integration.publish_event(event => 'customer.created', payload => '{}') AS customer_created,
	   integration.publish_event(event => 'order', payload => '{}') AS bare_order,
	   integration.publish_event(event => 'Order.created', payload => '{}') AS case_sensitive;
SELECT event, array_agg(endpoint_id = :e_all ORDER BY endpoint_id) AS to_all,
	   array_agg(endpoint_id = :e_deep ORDER BY endpoint_id) AS to_deep
  FROM integration.webhook_deliveries WHERE event_id > :mark GROUP BY event ORDER BY event;
-- A tenant with no endpoints publishes nothing.
SET integration.tenant_id = 'pub-nobody';
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS nobody;
:since_mark;
SET integration.tenant_id = 'pub-a';

-- Transactions: a rollback publishes nothing; a rolled-back savepoint drops only its events.
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
BEGIN;
SELECT integration.publish_event(event => 'order.created', payload => '{"n": "rolled back"}');
ROLLBACK;
:since_mark;
BEGIN;
SELECT integration.publish_event(event => 'order.created', payload => '{"n": 1}');
SAVEPOINT s;
SELECT integration.publish_event(event => 'order.created', payload => '{"n": 2}');
ROLLBACK TO SAVEPOINT s;
SELECT integration.publish_event(event => 'order.created', payload => '{"n": 3}');
COMMIT;
SELECT payload::jsonb -> 'data' AS data, count(*) AS deliveries
  FROM integration.webhook_deliveries WHERE event_id > :mark GROUP BY 1 ORDER BY 1::text;

-- wakeup_stats: one signal per committed transaction that published, however many
-- events; none for a rollback or for a transaction that published nothing.
SELECT commits_signalled AS c0 FROM integration.wakeup_stats() \gset
BEGIN;
SELECT count(integration.publish_event(event => 'order.created', payload => jsonb_build_object('i', i))) AS published
  FROM generate_series(1, 50) i;
COMMIT;
SELECT commits_signalled - :c0 AS after_commit FROM integration.wakeup_stats();
BEGIN;
SELECT integration.publish_event(event => 'order.created', payload => '{}');
ROLLBACK;
SELECT commits_signalled - :c0 AS after_rollback FROM integration.wakeup_stats();
SET integration.tenant_id = 'pub-nobody';
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS unmatched;
SET integration.tenant_id = 'pub-a';
SELECT commits_signalled - :c0 AS after_unmatched FROM integration.wakeup_stats();
SELECT integration.dispatch_webhook(id => :e_one, event => 'order.created', payload => '{}') IS NOT NULL AS dispatched;
SELECT commits_signalled - :c0 AS after_dispatch FROM integration.wakeup_stats();

-- The endpoint cache follows endpoint changes at once, in this session too.
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS before_changes;
SELECT integration.delete_webhook(id => :e_one);
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS after_delete;
SELECT name FROM integration.update_webhook(id => :e_deep, events => '["customer.*"]');
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS order_after_update,
	   integration.publish_event(event => 'customer.created', payload => '{}') AS customer_after_update;
SELECT is_active FROM integration.update_webhook(id => :e_all, is_active => false);
SELECT integration.publish_event(event => 'customer.created', payload => '{}') AS after_disable;
SELECT is_active FROM integration.update_webhook(id => :e_all, is_active => true);
SELECT integration.publish_event(event => 'customer.created', payload => '{}') AS after_enable;
-- A change seen inside its own transaction, and forgotten when rolled back.
BEGIN;
SELECT name FROM integration.update_webhook(id => :e_deep, events => '["order.**"]');
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS inside_uncommitted_change;
ROLLBACK;
SELECT integration.publish_event(event => 'order.created', payload => '{}') AS after_rollback_of_change;
-- Restore the first set-up for the table tests below.
SELECT name FROM integration.update_webhook(id => :e_deep, events => '["order.**"]');
SELECT id AS e_one FROM integration.register_webhook(name => 'order.* again', url => 'https://one.example.invalid/', events => '["order.*"]') \gset

-- track_table
RESET ROLE;
CREATE TABLE public.orders (tenant_id text, id int, amount numeric, note text, placed date,
							PRIMARY KEY (id));
CREATE TABLE public.no_tenant (id int);
CREATE VIEW public.orders_view AS SELECT * FROM public.orders;
GRANT ALL ON public.orders TO integration_test_app;
SELECT integration.track_table(tbl => 'public.orders', event_prefix => 'order');
SELECT integration.track_table(tbl => 'public.orders', event_prefix => 'order');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.track_table(tbl => 'public.no_tenant', event_prefix => 'thing');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.track_table(tbl => 'public.orders_view', event_prefix => 'order');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.track_table(tbl => 'public.no_tenant', event_prefix => 'bad prefix', tenant_column => 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.track_table(tbl => 'public.no_tenant', event_prefix => 'order.*', tenant_column => 'id');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.tracked_tables ORDER BY table_name::text;

SET ROLE integration_test_app;
SET integration.tenant_id = 'pub-a';
-- One statement, 1000 rows: 1000 events, each to the 3 endpoints wanting order.created.
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.orders SELECT 'pub-a', i, i * 1.5, 'bulk', date '2024-01-01' + i FROM generate_series(1, 1000) i;
:since_mark;
SELECT count(*) AS events_with_new_row FROM integration.webhook_events
 WHERE id > :mark AND event = 'order.created' AND payload::jsonb -> 'data' ? 'new'
   AND NOT payload::jsonb -> 'data' ? 'old';
SELECT payload::jsonb -> 'data' AS data FROM integration.webhook_events
 WHERE id > :mark AND (payload::jsonb #>> '{data,new,id}')::int IN (1, 1000) ORDER BY id;
-- An UPDATE that changes nothing publishes nothing.
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
UPDATE public.orders SET amount = amount, note = note WHERE id <= 10;
:since_mark;
-- An UPDATE publishes order.updated for changed rows only, with new and old.
UPDATE public.orders SET note = 'bulk' WHERE id <= 3;
UPDATE public.orders SET note = CASE WHEN id = 2 THEN 'bulk' ELSE 'changed' END WHERE id <= 3;
:since_mark;
SELECT event, payload::jsonb -> 'data' AS data FROM integration.webhook_events WHERE id > :mark ORDER BY id;
-- DELETE publishes order.deleted with the old row only.
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
DELETE FROM public.orders WHERE id = 1000;
:since_mark;
SELECT event, payload::jsonb -> 'data' AS data FROM integration.webhook_events WHERE id > :mark;

-- A row without a tenant is an error, not a silent drop, and the write is undone.
SELECT count(*) AS orders_before FROM public.orders \gset
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.orders VALUES (NULL, 2001, 1, 'no tenant');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO public.orders VALUES ('pub-a', 2002, 1, 'ok'), (NULL, 2003, 1, 'no tenant');
\echo :LAST_ERROR_SQLSTATE
UPDATE public.orders SET tenant_id = NULL WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
-- The app role may publish only for its own tenant.
INSERT INTO public.orders VALUES ('pub-b', 2004, 1, 'other tenant');
\echo :LAST_ERROR_SQLSTATE
UPDATE public.orders SET tenant_id = 'pub-b' WHERE id = 6;
\echo :LAST_ERROR_SQLSTATE
RESET integration.tenant_id;
INSERT INTO public.orders VALUES ('pub-a', 2005, 1, 'no tenant selected');
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'pub-a';
INSERT INTO public.orders VALUES ('pub a', 2006, 1, 'invalid tenant id');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :orders_before AS orders_unchanged, count(*) FILTER (WHERE tenant_id IS DISTINCT FROM 'pub-a') AS foreign_rows
  FROM public.orders;
:since_mark;

-- A superuser (no tenant, no row-level security) writing rows of two tenants in one
-- statement publishes to each tenant's own endpoints only.
RESET ROLE;
RESET integration.tenant_id;
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.orders VALUES ('pub-a', 3001, 1, 'mixed'), ('pub-b', 3002, 2, 'mixed'),
								 ('pub-a', 3003, 3, 'mixed'), ('pub-nobody', 3004, 4, 'mixed');
SELECT tenant_id, count(DISTINCT event_id) AS events, count(*) AS deliveries,
	   array_agg(DISTINCT (payload::jsonb #>> '{data,new,id}')::int) AS order_ids
  FROM integration.webhook_deliveries WHERE event_id > :mark GROUP BY 1 ORDER BY 1;
SELECT count(*) AS deliveries_to_another_tenants_endpoint
  FROM integration.webhook_deliveries d
 WHERE d.event_id > :mark
   AND NOT EXISTS (SELECT FROM integration.webhook_endpoints e
				   WHERE e.tenant_id = d.tenant_id AND e.id = d.endpoint_id);
SELECT count(*) AS b_deliveries FROM integration.webhook_deliveries WHERE event_id > :mark AND endpoint_id = :e_b;
-- And a superuser writing a row without a tenant fails all the same.
INSERT INTO public.orders VALUES (NULL, 3005, 1, 'no tenant');
\echo :LAST_ERROR_SQLSTATE

-- untrack_table stops publishing.
SELECT integration.untrack_table(tbl => 'public.orders') AS untracked;
SELECT integration.untrack_table(tbl => 'public.orders') AS untracked_again;
SELECT count(*) AS tracked FROM integration.tracked_tables WHERE table_name = 'public.orders'::regclass;
SET ROLE integration_test_app;
SET integration.tenant_id = 'pub-a';
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.orders VALUES ('pub-a', 4001, 1, 'untracked');
UPDATE public.orders SET note = 'untracked' WHERE id = 4001;
DELETE FROM public.orders WHERE id = 4001;
:since_mark;

-- A hand-made row trigger on a table whose tenant column is org_id (bigint or uuid).
RESET ROLE;
CREATE TABLE public.invoices (org_id bigint NOT NULL, no int, total numeric);
CREATE TRIGGER invoices_publish AFTER INSERT OR UPDATE OR DELETE ON public.invoices
	FOR EACH ROW EXECUTE FUNCTION integration.publish_row_event('invoice', 'org_id');
CREATE TABLE public.uuid_invoices (org_id uuid NOT NULL, no int);
CREATE TRIGGER uuid_invoices_publish AFTER INSERT ON public.uuid_invoices
	FOR EACH ROW EXECUTE FUNCTION integration.publish_row_event('invoice', 'org_id');
GRANT ALL ON public.invoices, public.uuid_invoices TO integration_test_app;
SELECT table_name, event_prefix, tenant_column, triggers FROM integration.tracked_tables ORDER BY table_name::text;
SET ROLE integration_test_app;
SET integration.tenant_id = '42';
SELECT id AS e_42 FROM integration.register_webhook(name => 'invoices', url => 'https://inv.example.invalid/', events => '["invoice.*"]') \gset
SET integration.tenant_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
SELECT id AS e_uuid FROM integration.register_webhook(name => 'uuid invoices', url => 'https://inv.example.invalid/', events => '["invoice.created"]') \gset
SET integration.tenant_id = '42';
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.invoices VALUES (42, 1, 10), (42, 2, 20);
UPDATE public.invoices SET total = 11 WHERE no = 1;
UPDATE public.invoices SET total = total WHERE no = 2;
DELETE FROM public.invoices WHERE no = 2;
SELECT tenant_id, event, endpoint_id = :e_42 AS to_e_42, payload::jsonb -> 'data' AS data
  FROM integration.webhook_deliveries WHERE event_id > :mark ORDER BY event_id;
INSERT INTO public.invoices VALUES (43, 3, 30);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset
INSERT INTO public.uuid_invoices VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1);
SELECT tenant_id, event, endpoint_id = :e_uuid AS to_e_uuid, payload::jsonb -> 'data' AS data
  FROM integration.webhook_deliveries WHERE event_id > :mark;

RESET integration.tenant_id;
RESET ROLE;
DROP TABLE public.orders, public.no_tenant, public.invoices, public.uuid_invoices CASCADE;
