-- The OpenAPI document and the event-type catalogue: derived from the catalog, so a
-- tracked table's columns, a registered schema and the functions' arguments show up as
-- they are; registered schemas checked when registered and, with
-- integration.validate_payloads on, against published payloads.
\set SHOW_CONTEXT never
CREATE TYPE public.oa_status AS ENUM ('open', 'paid');
CREATE TABLE public.oa_invoices (
	tenant_id text NOT NULL,
	id bigint PRIMARY KEY,
	amount numeric(12, 2) NOT NULL CHECK (amount >= 0),
	issued_at timestamptz NOT NULL DEFAULT now(),
	lines jsonb,
	tags text[],
	status public.oa_status NOT NULL DEFAULT 'open',
	kind text CHECK (kind IN ('sale', 'refund')),
	note varchar(20)
);
COMMENT ON COLUMN public.oa_invoices.amount IS 'Total, in the invoice''s currency';
GRANT ALL ON public.oa_invoices TO integration_test_app;
SELECT integration.track_table(tbl => 'public.oa_invoices', event_prefix => 'oa_invoice');

SET ROLE integration_test_app;
SET integration.tenant_id = 'oa-a';

-- The tracked table's three events, with the row's columns as the data schema.
SELECT event, source, source_table FROM integration.event_types WHERE event LIKE 'oa\_%' ORDER BY event;
SELECT jsonb_pretty(schema -> 'properties' -> 'new') AS created_row
  FROM integration.event_types WHERE event = 'oa_invoice.created';
SELECT schema -> 'required' AS updated_required, schema -> 'properties' ? 'old' AS updated_has_old
  FROM integration.event_types WHERE event = 'oa_invoice.updated';

-- The document: OpenAPI 3.1, the eight routes, each naming its function.
SELECT integration.openapi('https://erp.example.com') ->> 'openapi' AS openapi,
       integration.openapi('https://erp.example.com') -> 'servers' AS servers,
       integration.openapi() ? 'servers' AS servers_without_url;
SELECT p.key AS path, m.key AS method, m.value ->> 'operationId' AS operation,
       m.value ->> 'x-sql-function' AS sql_function
  FROM jsonb_each(integration.openapi() -> 'paths') p, jsonb_each(p.value) m
 ORDER BY 1, 2;

-- Every operation's function exists, and every parameter and body property is one of
-- its arguments (path and query parameters other than the tenant header).
WITH ops AS (
	SELECT m.value AS op, (m.value ->> 'x-sql-function')::regprocedure AS fn
	  FROM jsonb_each(integration.openapi() -> 'paths') p, jsonb_each(p.value) m),
names AS (
	SELECT o.fn, prm ->> 'name' AS name FROM ops o, jsonb_array_elements(o.op -> 'parameters') prm
	 WHERE prm ? 'name'
	UNION ALL
	SELECT o.fn, b.key FROM ops o,
		   jsonb_each(o.op #> '{requestBody,content,application/json,schema,properties}') b)
SELECT n.fn, n.name
  FROM names n JOIN pg_proc p ON p.oid = n.fn
 WHERE NOT n.name = ANY (p.proargnames);
-- Query parameters of list_deliveries: required only where the function has no default.
SELECT prm ->> 'name' AS name, prm ->> 'in' AS "in", prm -> 'required' AS required, prm -> 'schema' AS schema
  FROM jsonb_array_elements(integration.openapi() #> '{paths,/api/v1/integration/deliveries,get,parameters}') prm
 WHERE prm ? 'name';
SELECT jsonb_pretty(integration.openapi() #> '{paths,/api/v1/integration/webhooks,post,requestBody}') AS register_body;
-- A connector's credentials and inbound secret are write-only; the call route's body.
SELECT p.key AS property, p.value ->> 'writeOnly' AS write_only
  FROM jsonb_each(integration.openapi() #> '{paths,/api/v1/integration/connectors,post,requestBody,content,application/json,schema,properties}') p
 ORDER BY 1;
SELECT integration.openapi() #> ARRAY['paths', '/api/v1/integration/connectors/{connector_id}/calls', 'post',
									   'requestBody', 'content', 'application/json', 'schema', 'required'] AS call_required;
SELECT integration.openapi() #> '{components,schemas,Delivery,properties,status}' AS delivery_status,
       integration.openapi() #> '{components,schemas,LogEntry,properties,level,enum}' AS log_levels;

-- The webhook of a tracked event: the envelope, the signature headers, the row.
SELECT jsonb_pretty(integration.openapi() -> 'webhooks' -> 'oa_invoice.deleted') AS deleted_webhook;

-- A column added to the table is in the next document.
RESET ROLE;
ALTER TABLE public.oa_invoices ADD COLUMN due_on date;
SET ROLE integration_test_app;
SELECT integration.openapi() #> '{webhooks,oa_invoice.created,post,requestBody,content,application/json,schema,properties,data,properties,new,properties,due_on}' AS due_on;

-- Registered event types: a schema checked when registered.
SELECT event, schema, description
  FROM integration.register_event_type('customer.merged',
		'{"type": "object", "required": ["into", "from"], "additionalProperties": false,
		  "properties": {"into": {"type": "integer", "minimum": 1},
						 "from": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
						 "reason": {"type": ["string", "null"], "maxLength": 10, "pattern": "^[a-z]+$"}}}',
		'Two customers became one');
SELECT integration.register_event_type('customer.bad', '{"type": "object", "$ref": "#/x"}');
SELECT integration.register_event_type('customer.bad', '{"type": "text"}');
SELECT integration.register_event_type('customer.bad', '{"properties": {"a": {"minLength": -1}}}');
SELECT integration.register_event_type('customer.bad', '{"pattern": "("}');
SELECT integration.register_event_type('not an event', '{}');
SELECT event, source, schema ->> 'type' AS type FROM integration.event_types
 WHERE event LIKE 'customer.%' ORDER BY event;

-- validate_payloads: off by default; on, a payload must match its event's schema.
SHOW integration.validate_payloads;
SELECT integration.publish_event('customer.merged', '{"into": "x"}') AS published_unchecked;
SET integration.validate_payloads = on;
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1, 2], "reason": "dup"}') AS published;
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1, 2], "reason": null}') AS published_null_reason;
SELECT integration.publish_event('customer.merged', '{"into": "7", "from": [1]}');
SELECT integration.publish_event('customer.merged', '{"into": 0, "from": [1]}');
SELECT integration.publish_event('customer.merged', '{"into": 7}');
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": []}');
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1, "2"]}');
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1], "extra": true}');
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1], "reason": "Has Caps"}');
SELECT integration.publish_event('customer.merged', '{"into": 7, "from": [1], "reason": "muchtoolongreason"}');
SELECT integration.publish_event('customer.merged', '[1]');
-- Events without a registered schema are not checked.
SELECT integration.publish_event('customer.other', '{"anything": [1]}') AS unregistered;
RESET integration.validate_payloads;

-- The combinators and the rest, through json_schema_matches().
SELECT s, v, integration.json_schema_matches(s::jsonb, v::jsonb) AS matches
  FROM (VALUES
	('{"enum": [1, "a", null, {"x": [1]}]}', '{"x": [1]}'),
	('{"enum": [1, "a", null]}', '1.0'),
	('{"enum": [1, "a", null]}', '"b"'),
	('{"const": {"a": 1}}', '{"a": 1}'),
	('{"const": {"a": 1}}', '{"a": 2}'),
	('{"type": "integer"}', '2.0'),
	('{"type": "integer"}', '2.5'),
	('{"anyOf": [{"type": "string"}, {"type": "integer"}]}', '3'),
	('{"oneOf": [{"type": "number"}, {"type": "integer"}]}', '3'),
	('{"oneOf": [{"type": "number"}, {"type": "integer"}]}', '3.5'),
	('{"allOf": [{"minimum": 1}, {"maximum": 2}]}', '3'),
	('{"not": {"type": "null"}}', 'null'),
	('{"exclusiveMaximum": 5}', '5'),
	('{"maxProperties": 1}', '{"a": 1, "b": 2}'),
	('{"minLength": 2}', '"é"'),
	('{"minLength": 2}', '"éé"'),
	('false', '1'),
	('true', '{"anything": 1}')) AS t(s, v);

-- Another tenant sees none of A's registered types.
SET integration.tenant_id = 'oa-b';
SELECT count(*) AS b_sees_a_types FROM integration.event_types WHERE source = 'registered';
SELECT integration.openapi() -> 'webhooks' ? 'customer.merged' AS b_document_has_a_type;
SET integration.tenant_id = 'oa-a';

-- The extension's own event, known to every tenant, its schema matching what the worker
-- publishes; subscribing to it draws no notice, and the document lists it.
SELECT event, source, source_table FROM integration.event_types WHERE source = 'builtin';
SELECT integration.json_schema_matches(schema,
		'{"endpoint_id": 7, "name": "n", "url": "https://x.example/", "reason": "r",
		  "failing_since": "2026-12-01T00:00:00+00:00", "disabled_at": "2026-12-06T00:00:00+00:00"}') AS disabled_payload_ok,
       integration.json_schema_matches(schema, '{"endpoint_id": "7"}') AS bad_payload_ok
  FROM integration.event_types WHERE event = 'endpoint.disabled';
SELECT id AS oa_watch FROM integration.register_webhook(name => 'watch', url => 'https://watch.example.invalid/',
														events => '["endpoint.disabled"]') \gset
SELECT integration.openapi() -> 'webhooks' ? 'endpoint.disabled' AS document_has_builtin;
SELECT integration.delete_webhook(:oa_watch) IS NOT NULL AS watch_deleted;

-- Patterns that match no known event type draw a NOTICE.
SELECT id AS oa_ep FROM integration.register_webhook(name => 'typo', url => 'https://typo.example.invalid/',
													 events => '["ordr.*", "customer.*", "oa_invoice.created"]') \gset
SELECT name FROM integration.update_webhook(id => :oa_ep, events => '["oa_invoce.**"]');
SELECT name FROM integration.update_webhook(id => :oa_ep, name => 'no patterns changed');

SELECT integration.unregister_event_type('customer.merged') AS unregistered,
       integration.unregister_event_type('customer.merged') AS again;
RESET ROLE;
SELECT integration.untrack_table(tbl => 'public.oa_invoices');
DROP TABLE public.oa_invoices;
DROP TYPE public.oa_status;
