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
