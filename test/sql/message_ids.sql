-- Message ids: every event's webhook-id is msg_ and a time-ordered 128-bit random
-- number, unique across databases and re-created extensions (where a counter would
-- start again at 1), the same for every endpoint of the event, and visible in
-- webhook_deliveries.
\set SHOW_CONTEXT never
CREATE TABLE public.msgid_orders (tenant_id text, id int PRIMARY KEY);
GRANT ALL ON public.msgid_orders TO integration_test_app;
SELECT integration.track_table(tbl => 'public.msgid_orders', event_prefix => 'order');
SET ROLE integration_test_app;
SET integration.tenant_id = 'msgid-a';
SELECT id AS m_ep1 FROM integration.register_webhook(name => 'one', url => 'https://one.example.invalid/', events => '["*"]') \gset
SELECT id AS m_ep2 FROM integration.register_webhook(name => 'two', url => 'https://two.example.invalid/', events => '["*"]') \gset
SELECT coalesce(max(id), 0) AS mark FROM integration.webhook_events \gset

-- publish_event, the bulk path of a tracked table (1,500 rows in one statement: two
-- batches of its multi-insert) and the plain INSERT path (dispatch_webhook) all give
-- ids of the promised shape, all distinct.
SELECT integration.publish_event('order.created', jsonb_build_object('n', n))
  FROM generate_series(1, 3) n;
INSERT INTO public.msgid_orders SELECT 'msgid-a', i FROM generate_series(1, 1500) i;
SELECT integration.dispatch_webhook(id => :m_ep1, event => 'order.created', payload => '{}') IS NOT NULL AS dispatched;
SELECT count(*) AS events,
       count(*) FILTER (WHERE message_id ~ '^msg_[0-9A-Za-z]{22}$') AS well_formed,
       count(DISTINCT message_id) AS distinct_ids
  FROM integration.webhook_events WHERE id > :mark;

-- One event, one id: both of its deliveries show it (001_delivery.pl checks what is sent).
SELECT count(*) AS deliveries, count(DISTINCT d.message_id) AS ids,
       bool_and(d.message_id = e.message_id) AS the_events_id
  FROM integration.webhook_deliveries d
  JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
 WHERE d.event_id = (SELECT min(id) FROM integration.webhook_events WHERE id > :mark);

-- Time-ordered: the first 48 bits are milliseconds, so an id made later sorts after
-- (in the C collation of the column).
SELECT integration.new_message_id() AS id_before \gset
SELECT pg_sleep(0.002);
SELECT integration.new_message_id() AS id_after \gset
SELECT :'id_before' < :'id_after' COLLATE "C" AS later_sorts_after;
SELECT count(DISTINCT integration.new_message_id()) AS distinct_in_one_millisecond
  FROM generate_series(1, 10000);

-- A row written with plain SQL gets one too, or may bring its own; but it goes out as
-- a header, so it must be printable ASCII without spaces.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('order.created', '{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":null}', '{}')
RETURNING message_id ~ '^msg_' AS defaulted;
INSERT INTO integration.webhook_events (event, payload, endpoint_ids, message_id)
VALUES ('order.created', '{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":null}', '{}', 'imported-42')
RETURNING message_id;
INSERT INTO integration.webhook_events (event, payload, endpoint_ids, message_id)
VALUES ('order.created', '{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":null}', '{}', E'x\r\nX-Injected: 1');
INSERT INTO integration.webhook_events (event, payload, endpoint_ids, message_id)
VALUES ('order.created', '{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":null}', '{}', '');
RESET ROLE;
DROP TABLE public.msgid_orders;

-- Another database, and the extension dropped and created again there: each starts
-- its events at id 1, and each event 1 has an id of its own.
SELECT message_id AS here_first FROM integration.webhook_events ORDER BY id LIMIT 1 \gset
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_message_ids TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
\c regress_message_ids
SET client_min_messages = warning;
CREATE EXTENSION integration;
SET integration.tenant_id = 'msgid-a';
SELECT id IS NOT NULL AS registered FROM integration.register_webhook(name => 'one', url => 'https://one.example.invalid/', events => '["*"]');
SELECT integration.publish_event('order.created', '{"n": 1}');
SELECT id AS first_event, message_id AS there_first FROM integration.webhook_events \gset
DROP EXTENSION integration;
CREATE EXTENSION integration;
SELECT id IS NOT NULL AS registered FROM integration.register_webhook(name => 'one', url => 'https://one.example.invalid/', events => '["*"]');
SELECT integration.publish_event('order.created', '{"n": 1}');
SELECT id = :first_event AS same_event_id,
       message_id <> :'there_first' AS new_id_after_recreate,
       message_id <> :'here_first' AND :'there_first' <> :'here_first' AS other_database_other_id
  FROM integration.webhook_events;
\c :regress_db
SET client_min_messages = warning;
DROP DATABASE regress_message_ids;
