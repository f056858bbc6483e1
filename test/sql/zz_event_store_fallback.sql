-- Events are written in bulk (table_multi_insert) only while webhook_events is exactly
-- as the extension made it.  A column added by a DBA, or a row trigger on the table,
-- must still get its default and fire: the plain INSERT path is taken then.
-- (Runs last: it changes the extension's table.)
SET integration.tenant_id = 'fallback';
SELECT id AS ep FROM integration.register_webhook(name => 'fallback', url => 'https://example.invalid/fb',
                                                  events => '["fb.*"]') \gset

-- As created: the fast path; the rows are complete (the same values an INSERT gives).
BEGIN;
SELECT integration.publish_event('fb.fast', '{"n": 1}');
SELECT tenant_id, event, payload::jsonb -> 'data' AS data, endpoint_ids = ARRAY[:ep]::bigint[] AS routed,
       EXISTS (SELECT FROM integration.webhook_event_queue q WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id) AS queued,
       created_at = now() AS created_now, id IS NOT NULL AS has_id
  FROM integration.webhook_events e WHERE event = 'fb.fast';
COMMIT;

-- Which path a publish took shows in the calls of queue_events(): the fast path queues
-- the events itself, the plain INSERT fires the trigger.  The extension's triggers are
-- known by the function they run and how they fire, not by their names.
SET track_functions = 'all';
CREATE FUNCTION fb_calls() RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce((SELECT calls FROM pg_stat_xact_user_functions
					  WHERE funcid = 'integration.queue_events'::regproc), 0) $$;
CREATE TABLE fb_mark AS SELECT fb_calls() AS calls;
CREATE VIEW fb_path AS
SELECT fb_calls() - m.calls AS trigger_calls,
	   (SELECT count(*) FROM integration.webhook_event_queue q
		  JOIN integration.webhook_events e ON e.tenant_id = q.tenant_id AND e.id = q.event_id
		 WHERE e.event LIKE 'fb.path%') AS queue_rows
  FROM fb_mark m;
CREATE TABLE fb_statements (what text);
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_created', '{}');
SELECT * FROM fb_path;
ROLLBACK;
-- Renamed, both triggers are still the extension's: the fast path.
ALTER TRIGGER events_queued ON integration.webhook_events RENAME TO fb_renamed;
ALTER TRIGGER require_tenant ON integration.webhook_events RENAME TO fb_renamed_tenant;
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_renamed', '{}');
SELECT * FROM fb_path;
ROLLBACK;
-- queue_events() attached a second time: the plain INSERT, which queues twice.
CREATE TRIGGER fb_twice AFTER INSERT ON integration.webhook_events
	REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION integration.queue_events();
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_twice', '{}');
SELECT * FROM fb_path;
ROLLBACK;
DROP TRIGGER fb_twice ON integration.webhook_events;
-- The queueing trigger disabled: the plain INSERT, which queues nothing.
ALTER TABLE integration.webhook_events DISABLE TRIGGER fb_renamed;
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_disabled', '{}');
SELECT * FROM fb_path;
ROLLBACK;
ALTER TABLE integration.webhook_events ENABLE TRIGGER fb_renamed;
-- A statement trigger of someone else's, even one without a transition table, fires:
-- the plain INSERT.
CREATE FUNCTION fb_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO fb_statements VALUES ('statement on ' || TG_TABLE_NAME);
	RETURN NULL;
END $$;
CREATE TRIGGER fb_statement AFTER INSERT ON integration.webhook_event_queue
	FOR EACH STATEMENT EXECUTE FUNCTION fb_statement();
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_statement', '{}');
SELECT * FROM fb_path;
SELECT * FROM fb_statements;
ROLLBACK;
DROP TRIGGER fb_statement ON integration.webhook_event_queue;
ALTER TRIGGER fb_renamed ON integration.webhook_events RENAME TO events_queued;
ALTER TRIGGER fb_renamed_tenant ON integration.webhook_events RENAME TO require_tenant;
-- As created again: the fast path.
BEGIN;
UPDATE fb_mark SET calls = fb_calls();
SELECT integration.publish_event('fb.path_restored', '{}');
SELECT * FROM fb_path;
ROLLBACK;
RESET track_functions;

-- A column with a default, and a row trigger that audits inserts.
ALTER TABLE integration.webhook_events ADD COLUMN source text NOT NULL DEFAULT 'app';
CREATE TABLE fb_audit (event text);
CREATE FUNCTION fb_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO fb_audit VALUES (NEW.event);
	RETURN NEW;
END $$;
CREATE TRIGGER fb_audit AFTER INSERT ON integration.webhook_events
	FOR EACH ROW EXECUTE FUNCTION fb_audit();

SELECT integration.publish_event('fb.slow', '{"n": 2}');
SELECT event, source, payload::jsonb -> 'data' AS data, EXISTS (SELECT FROM integration.webhook_event_queue q WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id) AS queued
  FROM integration.webhook_events e WHERE event = 'fb.slow';
SELECT * FROM fb_audit;

-- Tracked tables take the same path.
CREATE TABLE fb_orders (tenant_id text, id int PRIMARY KEY);
SELECT integration.track_table('fb_orders', 'fb');
INSERT INTO fb_orders SELECT 'fallback', g FROM generate_series(1, 3) g;
SELECT count(*) AS created, bool_and(source = 'app') AS defaults_applied
  FROM integration.webhook_events WHERE event = 'fb.created';
SELECT count(*) AS audited FROM fb_audit WHERE event = 'fb.created';

-- Restored, the fast path is back (a dropped column still takes the plain path).
DROP TRIGGER fb_audit ON integration.webhook_events;
ALTER TABLE integration.webhook_events DROP COLUMN source;
INSERT INTO fb_orders VALUES ('fallback', 4);
SELECT count(*) AS created FROM integration.webhook_events WHERE event = 'fb.created';

-- A column added to the queue takes the plain path too: the trigger queues the event,
-- and the column gets its default.
ALTER TABLE integration.webhook_event_queue ADD COLUMN note text NOT NULL DEFAULT 'by trigger';
SELECT integration.publish_event('fb.queue', '{"n": 3}');
SELECT q.note FROM integration.webhook_event_queue q
  JOIN integration.webhook_events e ON e.tenant_id = q.tenant_id AND e.id = q.event_id
 WHERE e.event = 'fb.queue';
