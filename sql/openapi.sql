------------------------------------------------------------------------------------------
-- Event types and the OpenAPI 3.1 document (appended to integration.sql by the Makefile).
--
-- The document is derived from the catalog each time it is asked for: the routes' request
-- and response schemas from the SQL functions that serve them (argument names, types
-- and defaults, the composite types and views they return, CHECK constraints that
-- translate), and the webhooks from the event types the calling tenant can receive (the
-- tracked tables' columns, the schemas registered with register_event_type(), and the
-- names the tenant published lately).  Nothing is written down twice, so the document
-- cannot drift from the code.
------------------------------------------------------------------------------------------

-- The subset of JSON Schema (2020-12) that src/json_schema.c implements.
CREATE FUNCTION integration.validate_json_schema(schema jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'integration_validate_json_schema'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_json_schema(jsonb) IS
	'Returns the schema, or raises 22023 naming a keyword it does not support or a malformed part.';

CREATE FUNCTION integration.json_schema_matches(schema jsonb, value jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_json_schema_matches'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.json_schema_matches(jsonb, jsonb) IS
	'Whether value matches the JSON Schema, with the checks publish_event() makes when integration.validate_payloads is on.';

-- Schemas of the data of events published with publish_event(), per tenant.
CREATE TABLE integration.event_schemas (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	event			text NOT NULL,
	schema			jsonb,
	description		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, event),
	CONSTRAINT event_schemas_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT event_schemas_event_check CHECK (integration.validate_event_name(event) IS NOT NULL),
	CONSTRAINT event_schemas_schema_check
		CHECK (schema IS NULL OR integration.validate_json_schema(schema) IS NOT NULL)
);
COMMENT ON TABLE integration.event_schemas IS
	'JSON Schemas of the data of events a tenant publishes with publish_event(); written by register_event_type().';

-- Tenant isolation like the other tenant-scoped tables: sql/tenant_isolation.sql.

-- The JSON Schema (2020-12, as OpenAPI 3.1 uses) of a value of type typ as the
-- extension serialises it (row_to_json()'s rendering, src/row_json.c).
CREATE FUNCTION integration.json_schema_of_type(typ oid, typmod integer DEFAULT -1)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t pg_type;
BEGIN
	SELECT * INTO t FROM pg_type WHERE oid = typ;
	IF NOT FOUND THEN
		RETURN '{}';
	END IF;
	IF t.typtype = 'd' THEN
		RETURN integration.json_schema_of_type(t.typbasetype, t.typtypmod);
	END IF;
	IF t.typtype = 'e' THEN
		RETURN jsonb_build_object('type', 'string', 'enum',
			(SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = typ));
	END IF;
	IF t.typcategory = 'A' AND t.typelem <> 0 THEN
		RETURN jsonb_build_object('type', 'array', 'items', integration.json_schema_of_type(t.typelem, typmod));
	END IF;
	IF t.typtype = 'c' THEN
		RETURN integration.json_schema_of_relation(t.typrelid);
	END IF;
	RETURN CASE typ
		WHEN 'smallint'::regtype THEN '{"type": "integer", "format": "int32"}'
		WHEN 'integer'::regtype THEN '{"type": "integer", "format": "int32"}'
		WHEN 'bigint'::regtype THEN '{"type": "integer", "format": "int64"}'
		WHEN 'oid'::regtype THEN '{"type": "integer", "format": "int64"}'
		WHEN 'real'::regtype THEN '{"type": "number", "format": "float"}'
		WHEN 'double precision'::regtype THEN '{"type": "number", "format": "double"}'
		WHEN 'numeric'::regtype THEN '{"type": "number"}'
		WHEN 'boolean'::regtype THEN '{"type": "boolean"}'
		WHEN 'uuid'::regtype THEN '{"type": "string", "format": "uuid"}'
		WHEN 'date'::regtype THEN '{"type": "string", "format": "date"}'
		WHEN 'timestamp with time zone'::regtype THEN '{"type": "string", "format": "date-time"}'
		WHEN 'timestamp without time zone'::regtype
			THEN '{"type": "string", "description": "ISO 8601 date and time without a time zone"}'
		WHEN 'time without time zone'::regtype
			THEN '{"type": "string", "description": "ISO 8601 time without a time zone"}'
		WHEN 'time with time zone'::regtype THEN '{"type": "string", "format": "time"}'
		WHEN 'interval'::regtype THEN '{"type": "string", "description": "PostgreSQL interval"}'
		WHEN 'json'::regtype THEN '{}'
		WHEN 'jsonb'::regtype THEN '{}'
		WHEN 'bytea'::regtype THEN '{"type": "string", "description": "hex, \\x followed by two digits per byte"}'
		WHEN 'character varying'::regtype THEN
			CASE WHEN typmod >= 4 THEN jsonb_build_object('type', 'string', 'maxLength', typmod - 4)
				 ELSE '{"type": "string"}' END
		WHEN 'character'::regtype THEN
			CASE WHEN typmod >= 4 THEN jsonb_build_object('type', 'string', 'maxLength', typmod - 4)
				 ELSE '{"type": "string"}' END
		ELSE '{"type": "string"}'
	END::jsonb;
END
$$;
COMMENT ON FUNCTION integration.json_schema_of_type(oid, integer) IS
	'The JSON Schema of a value of a PostgreSQL type as row_to_json() renders it.';

-- Allows null in schema s.
CREATE FUNCTION integration._json_schema_nullable(s jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN s ? 'enum' THEN jsonb_set(s, '{enum}', (s -> 'enum') || '[null]')
			|| CASE WHEN s ? 'type' THEN jsonb_build_object('type', jsonb_build_array(s -> 'type', 'null'))
					ELSE '{}' END
		WHEN jsonb_typeof(s -> 'type') = 'string' THEN jsonb_set(s, '{type}', jsonb_build_array(s -> 'type', 'null'))
		ELSE s
	END
$$;

-- What a CHECK constraint on one column says about its values, where it translates:
-- "col IN ('a', 'b')" becomes enum, "col >= n" / "col > n" a minimum.
CREATE FUNCTION integration._json_schema_of_checks(rel oid, attnum smallint) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result jsonb := '{}';
	def text;
	m text[];
BEGIN
	FOR def IN
		SELECT pg_get_constraintdef(c.oid)
		  FROM pg_constraint c
		 WHERE c.conrelid = rel AND c.contype = 'c' AND c.conkey = ARRAY[attnum]
	LOOP
		m := regexp_match(def, '^CHECK \(\(\(?\w+\)? = ANY \(\(?ARRAY\[(.*)\]\)?(::\w+\[\])?\)\)\)$');
		IF m IS NOT NULL THEN
			result := result || jsonb_build_object('enum',
				(SELECT jsonb_agg(replace(x[1], '''''', '''') ORDER BY n)
				   FROM regexp_matches(m[1], '''((?:[^'']|'''')*)''', 'g') WITH ORDINALITY AS r(x, n)));
			CONTINUE;
		END IF;
		m := regexp_match(def, '^CHECK \(\(\w+ (>=|>) \(?(-?[0-9]+(?:\.[0-9]+)?)\)?(?:::[a-z ]+)?\)\)$');
		IF m IS NOT NULL THEN
			result := result || jsonb_build_object(
				CASE m[1] WHEN '>=' THEN 'minimum' ELSE 'exclusiveMinimum' END, m[2]::numeric);
		END IF;
	END LOOP;
	RETURN result;
END
$$;

-- A literal default expression as JSON, or NULL when it is not a literal.
CREATE FUNCTION integration._json_of_default(expr text, typ oid) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text[];
BEGIN
	IF expr IS NULL OR expr ~ '^NULL(::|$)' THEN
		RETURN NULL;
	END IF;
	IF expr ~ '^\(?-?[0-9]+(\.[0-9]+)?\)?(::.+)?$' THEN
		RETURN to_jsonb(regexp_replace(expr, '[()]|::.*$', '', 'g')::numeric);
	END IF;
	IF expr IN ('true', 'false') THEN
		RETURN to_jsonb(expr::boolean);
	END IF;
	m := regexp_match(expr, '^''((?:[^'']|'''')*)''(::[^'']+)?$');
	IF m IS NOT NULL THEN
		IF typ IN ('json'::regtype, 'jsonb'::regtype) THEN
			RETURN replace(m[1], '''''', '''')::jsonb;
		END IF;
		RETURN to_jsonb(replace(m[1], '''''', ''''));
	END IF;
	RETURN NULL;
END
$$;

-- The JSON Schema of a row of rel (a table, view or composite type): one property per
-- column, in order, every one present (row_to_json() writes them all), null allowed
-- where the column allows it.
CREATE FUNCTION integration.json_schema_of_relation(rel oid) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	props jsonb := '{}';
	required jsonb := '[]';
	a record;
	s jsonb;
BEGIN
	FOR a IN
		SELECT att.attname, att.atttypid, att.atttypmod, att.attnotnull, att.attnum,
			   col_description(att.attrelid, att.attnum) AS description,
			   pg_get_expr(d.adbin, d.adrelid) AS default_expr
		  FROM pg_attribute att
		  LEFT JOIN pg_attrdef d ON d.adrelid = att.attrelid AND d.adnum = att.attnum
		 WHERE att.attrelid = rel AND att.attnum > 0 AND NOT att.attisdropped
		 ORDER BY att.attnum
	LOOP
		s := integration.json_schema_of_type(a.atttypid, a.atttypmod)
			 || integration._json_schema_of_checks(rel, a.attnum);
		IF a.description IS NOT NULL THEN
			s := s || jsonb_build_object('description', a.description);
		END IF;
		IF integration._json_of_default(a.default_expr, a.atttypid) IS NOT NULL THEN
			s := s || jsonb_build_object('default', integration._json_of_default(a.default_expr, a.atttypid));
		END IF;
		IF NOT a.attnotnull THEN
			s := integration._json_schema_nullable(s);
		END IF;
		props := props || jsonb_build_object(a.attname, s);
		required := required || to_jsonb(a.attname::text);
	END LOOP;
	RETURN jsonb_build_object('type', 'object', 'properties', props, 'required', required);
END
$$;
COMMENT ON FUNCTION integration.json_schema_of_relation(oid) IS
	'The JSON Schema of a row of a table, view or composite type as row_to_json() renders it.';

-- Every event type the current tenant can receive: the events of tracked tables (and of
-- hand-made publish_row_event() triggers), the types registered with
-- register_event_type(), and the names among the tenant's last 10,000 events that
-- neither knows (with free-form data).  security_invoker: the caller's row-level
-- security applies.
CREATE VIEW integration.event_types WITH (security_invoker = true) AS
	WITH tracked AS (
		SELECT DISTINCT t.tgrelid::regclass AS source_table,
			   split_part(encode(t.tgargs, 'escape'), '\000', 1) || '.' || op.name AS event,
			   op.name AS operation
		  FROM pg_catalog.pg_trigger t
		 CROSS JOIN LATERAL (VALUES ('created', 4), ('updated', 16), ('deleted', 8)) AS op(name, bit)
		 WHERE t.tgfoid = 'integration.publish_row_event()'::pg_catalog.regprocedure
		   AND NOT t.tgisinternal
		   -- An UPDATE that moves a row to another tenant publishes created and deleted.
		   AND (t.tgtype::integer & op.bit <> 0 OR (t.tgtype::integer & 16 <> 0 AND op.name <> 'updated'))),
	registered AS (
		SELECT s.event, s.schema, s.description FROM integration.event_schemas s
		 WHERE s.tenant_id = integration.current_tenant()),
	-- Events the extension itself publishes to the tenant's endpoints.
	builtin(event, schema, description) AS (VALUES
		('endpoint.disabled',
		 '{"type": "object",
		   "properties": {"endpoint_id": {"type": "integer"}, "name": {"type": "string"},
						  "url": {"type": "string"}, "reason": {"type": "string"},
						  "failing_since": {"type": ["string", "null"], "format": "date-time"},
						  "disabled_at": {"type": "string", "format": "date-time"}},
		   "required": ["endpoint_id", "name", "url", "reason", "disabled_at"]}'::jsonb,
		 'An endpoint of the tenant was disabled: it answered 410 Gone, or every attempt failed for longer than integration.disable_after. enable_webhook() enables it again.')),
	published AS (
		SELECT DISTINCT e.event
		  FROM (SELECT e.event FROM integration.webhook_events e
				 WHERE e.tenant_id = integration.current_tenant()
				 ORDER BY e.id DESC LIMIT 10000) e)
	SELECT tr.event, 'tracked_table'::text AS source, tr.source_table,
		   jsonb_build_object('type', 'object',
			   'properties',
				   CASE tr.operation
					   WHEN 'created' THEN jsonb_build_object('new', integration.json_schema_of_relation(tr.source_table))
					   WHEN 'deleted' THEN jsonb_build_object('old', integration.json_schema_of_relation(tr.source_table))
					   ELSE jsonb_build_object('new', integration.json_schema_of_relation(tr.source_table),
											   'old', integration.json_schema_of_relation(tr.source_table))
				   END,
			   'required',
				   CASE tr.operation WHEN 'created' THEN '["new"]'::jsonb WHEN 'deleted' THEN '["old"]'::jsonb
						ELSE '["new", "old"]'::jsonb END) AS schema,
		   format('A row of %s was %s: %s.', tr.source_table, tr.operation,
				  CASE tr.operation WHEN 'created' THEN 'the new row'
						WHEN 'deleted' THEN 'the old row' ELSE 'the row after and before' END) AS description
	  FROM tracked tr
	 WHERE tr.event NOT IN (SELECT r.event FROM registered r)
	UNION ALL
	SELECT r.event, 'registered', NULL::regclass, coalesce(r.schema, '{}'), r.description
	  FROM registered r
	UNION ALL
	SELECT b.event, 'builtin', NULL::regclass, b.schema, b.description
	  FROM builtin b
	UNION ALL
	SELECT p.event, 'published', NULL::regclass, '{}'::jsonb,
		   'Published with publish_event(); no schema registered.'
	  FROM published p
	 WHERE p.event NOT IN (SELECT r.event FROM registered r)
	   AND p.event NOT IN (SELECT tr.event FROM tracked tr)
	   AND p.event NOT IN (SELECT b.event FROM builtin b);
COMMENT ON VIEW integration.event_types IS
	'Every event type the current tenant can receive: tracked tables'' events, registered types, the extension''s own events and recently published names, with the JSON Schema of their data.';

CREATE FUNCTION integration.register_event_type(event text, schema jsonb DEFAULT NULL,
												description text DEFAULT NULL)
	RETURNS integration.event_schemas
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	result integration.event_schemas;
BEGIN
	INSERT INTO integration.event_schemas AS s (tenant_id, event, schema, description)
	VALUES (tenant, register_event_type.event, register_event_type.schema,
			register_event_type.description)
	ON CONFLICT ON CONSTRAINT event_schemas_pkey DO UPDATE
		SET schema = excluded.schema, description = excluded.description, updated_at = now()
	RETURNING s.* INTO result;
	PERFORM integration.log('info', 'api', 'event_type.registered',
							format('event type %s registered', register_event_type.event),
							jsonb_build_object('event', register_event_type.event));
	RETURN result;
END
$$;
COMMENT ON FUNCTION integration.register_event_type(text, jsonb, text) IS
	'Registers (or replaces) the JSON Schema and description of the data of an event the current tenant publishes; publish_event() checks payloads against it when integration.validate_payloads is on.';

CREATE FUNCTION integration.unregister_event_type(event text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	DELETE FROM integration.event_schemas s
	 WHERE s.tenant_id = tenant AND s.event = unregister_event_type.event;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM integration.log('info', 'api', 'event_type.unregistered',
							format('event type %s unregistered', unregister_event_type.event),
							jsonb_build_object('event', unregister_event_type.event));
	RETURN true;
END
$$;
COMMENT ON FUNCTION integration.unregister_event_type(text) IS
	'Forgets the registered schema of an event type of the current tenant; returns whether there was one.';

-- register_webhook() and update_webhook(): a pattern that matches no known event type is
-- most likely a typo ("ordr.*"), said at once, once the catalogue knows event types.
CREATE FUNCTION integration._notice_unknown_patterns(patterns jsonb) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p jsonb;
	known text[];
	tenant_known boolean;
BEGIN
	IF patterns IS NULL OR jsonb_typeof(patterns) <> 'array' THEN
		RETURN;
	END IF;
	-- The extension's own events are always known; a tenant that has none of its own
	-- yet gets no notice (it is setting up endpoints before publishing).
	SELECT array_agg(t.event ORDER BY t.event), coalesce(bool_or(t.source <> 'builtin'), false)
	  INTO known, tenant_known
	  FROM integration.event_types t;
	IF NOT tenant_known THEN
		RETURN;
	END IF;
	FOR p IN SELECT * FROM jsonb_array_elements(patterns)
	LOOP
		IF NOT EXISTS (SELECT FROM unnest(known) k WHERE integration.event_matches(jsonb_build_array(p), k)) THEN
			RAISE NOTICE 'pattern % matches no known event type', p #>> '{}'
				USING DETAIL = format('Known event types: %s.',
									  array_to_string(known[1:20], ', ') ||
									  CASE WHEN cardinality(known) > 20 THEN ', ...' ELSE '' END),
					  HINT = 'integration.event_types lists them; register_event_type() adds one.';
		END IF;
	END LOOP;
END
$$;

-- The routes of the original REST API, the connector framework's, and the functions that
-- serve them.
CREATE FUNCTION integration._openapi_routes()
	RETURNS TABLE (path text, method text, fn regprocedure, operation_id text, summary text,
				   success text, body_args text[])
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	VALUES
	('/webhooks', 'get', 'integration.list_webhooks()'::regprocedure, 'listWebhooks',
	 'List the tenant''s webhooks (secrets and header values masked)', '200', NULL::text[]),
	('/webhooks', 'post', 'integration.register_webhook(text,text,jsonb,text,jsonb,integer,integer)'::regprocedure,
	 'registerWebhook', 'Register a webhook; the response shows its secret and header values, once', '201',
	 '{name,url,events,secret,headers,rate_limit,rate_limit_burst}'),
	('/webhooks/{id}', 'get', 'integration.show_webhook(bigint)'::regprocedure, 'showWebhook',
	 'Show one webhook (secret and header values masked)', '200', NULL),
	('/webhooks/{id}', 'put', 'integration.update_webhook(bigint,text,text,jsonb,text,jsonb,boolean,integer,integer)'::regprocedure,
	 'updateWebhook', 'Change a webhook; omitted fields keep their values; the response masks the secret, and the header values unless it sets them', '200',
	 '{name,url,events,secret,headers,is_active,rate_limit,rate_limit_burst}'),
	('/webhooks/{id}', 'delete', 'integration.delete_webhook(bigint)'::regprocedure, 'deleteWebhook',
	 'Delete a webhook (its deliveries stay listed)', '200', NULL),
	('/webhooks/{id}/dispatch', 'post', 'integration.dispatch_webhook(bigint,text,jsonb)'::regprocedure,
	 'dispatchWebhook', 'Send one event to this webhook, whatever its patterns; returns the delivery id',
	 '201', '{event,payload}'),
	('/webhooks/{id}/enable', 'post', 'integration.enable_webhook(bigint,timestamptz)'::regprocedure,
	 'enableWebhook', 'Enable a webhook; with replay_since, send again what it did not receive since then; returns how many',
	 '200', '{replay_since}'),
	('/webhooks/{id}/rotate-secret', 'post', 'integration.rotate_secret(bigint,interval)'::regprocedure,
	 'rotateWebhookSecret', 'Give a webhook a new secret, shown once; the old one signs too until the grace ends',
	 '200', '{grace}'),
	('/logs', 'get', 'integration.list_integration_logs(integer,text,text,text,timestamptz,bigint)'::regprocedure,
	 'listLogs', 'List the tenant''s log, newest first', '200', NULL),
	('/deliveries', 'get', 'integration.list_deliveries(integer,bigint,text,text,timestamptz,bigint,bigint)'::regprocedure,
	 'listDeliveries', 'List the tenant''s deliveries, newest event first', '200', NULL),
	-- The connector framework (docs/connectors.md): routes of its own, in the same style.
	('/connectors', 'get', 'integration.list_connectors()'::regprocedure, 'listConnectors',
	 'List the tenant''s connectors (credentials never shown)', '200', NULL),
	('/connectors', 'post', 'integration.create_connector(text,text,text,jsonb,jsonb,text,interval)'::regprocedure,
	 'createConnector', 'Create a connector; its credentials are write-only', '201',
	 '{kind,name,base_url,credentials,settings,inbound_secret,dedupe_window}'),
	('/connectors/{id}', 'get', 'integration.show_connector(bigint)'::regprocedure, 'showConnector',
	 'Show one connector (credentials never shown)', '200', NULL),
	('/connectors/{id}', 'put', 'integration.update_connector(bigint,text,text,jsonb,jsonb,text,interval,boolean)'::regprocedure,
	 'updateConnector', 'Change a connector; omitted fields keep their values', '200',
	 '{name,base_url,credentials,settings,inbound_secret,dedupe_window,is_active}'),
	('/connectors/{id}', 'delete', 'integration.delete_connector(bigint)'::regprocedure, 'deleteConnector',
	 'Delete a connector (its events and calls stay listed; its queued calls fail)', '200', NULL),
	('/connectors/{id}/test', 'post', 'integration.test_connector(bigint)'::regprocedure, 'testConnector',
	 'Make one cheap authenticated call to the connector''s platform', '200', NULL),
	('/connectors/{connector_id}/webhooks', 'post', 'integration.receive_webhook(bigint,jsonb,text)'::regprocedure,
	 'receiveWebhook', 'A platform''s webhook as received (headers and raw body): verified, deduplicated and stored',
	 '200', '{headers,body}'),
	('/connectors/{connector_id}/calls', 'post', 'integration.call_connector(bigint,text,jsonb,text)'::regprocedure,
	 'callConnector', 'Queue a call to the connector''s API in this transaction; returns the call id', '201',
	 '{operation,payload,idempotency_key}'),
	('/connectors/{connector_id}/sync', 'post', 'integration.sync_now(bigint,text)'::regprocedure,
	 'syncConnector', 'Start a pull of the connector''s streams (or of one) now; returns their sync state', '200',
	 '{stream}'),
	('/connector-calls', 'get', 'integration.list_connector_calls(integer,bigint,text,timestamptz,bigint)'::regprocedure,
	 'listConnectorCalls', 'List the tenant''s connector calls, newest first', '200', NULL),
	('/connector-calls/{id}/retry', 'post', 'integration.retry_connector_call(bigint)'::regprocedure,
	 'retryConnectorCall', 'Queue a failed call again, with the same idempotency key', '200', NULL),
	('/connector-calls/{id}/cancel', 'post', 'integration.cancel_connector_call(bigint)'::regprocedure,
	 'cancelConnectorCall', 'End a pending call as failed, without another attempt', '200', NULL),
	('/inbound-events', 'get', 'integration.list_inbound_events(integer,bigint,text,text,timestamptz,bigint)'::regprocedure,
	 'listInboundEvents', 'List the tenant''s received events, newest first', '200', NULL),
	('/inbound-events/{id}/reprocess', 'post', 'integration.reprocess_inbound(bigint)'::regprocedure,
	 'reprocessInboundEvent', 'Hand a received event to the handlers again', '200', NULL),
	('/inbound-handlers', 'get', 'integration.list_inbound_handlers()'::regprocedure, 'listInboundHandlers',
	 'List the tenant''s handlers of received events', '200', NULL),
	('/inbound-handlers', 'post', 'integration.on_inbound(text,jsonb,regprocedure,bigint,boolean)'::regprocedure,
	 'registerInboundHandler', 'Register a SQL function as the handler of received events matching patterns', '201',
	 '{name,events,handler,connector_id,replace}'),
	('/inbound-handlers/{name}', 'delete', 'integration.remove_inbound(text)'::regprocedure, 'removeInboundHandler',
	 'Remove a handler', '200', NULL)
$$;

-- The JSON Schema of what fn returns, with $refs to the named schemas of the document.
CREATE FUNCTION integration._openapi_result_schema(fn regprocedure) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p pg_proc;
	s jsonb;
BEGIN
	SELECT * INTO p FROM pg_proc WHERE oid = fn;
	s := CASE p.prorettype
		WHEN 'integration.webhook'::regtype THEN '{"$ref": "#/components/schemas/Webhook"}'
		WHEN 'integration.webhook_deliveries'::regtype THEN '{"$ref": "#/components/schemas/Delivery"}'
		WHEN 'integration.integration_logs'::regtype THEN '{"$ref": "#/components/schemas/LogEntry"}'
		ELSE integration.json_schema_of_type(p.prorettype)
	END::jsonb;
	IF p.proretset THEN
		s := jsonb_build_object('type', 'array', 'items', s);
	END IF;
	RETURN s;
END
$$;

-- The arguments of fn: name, JSON Schema (with its literal default) and whether required.
CREATE FUNCTION integration._openapi_args(fn regprocedure)
	RETURNS TABLE (name text, schema jsonb, required boolean)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.name,
		   integration.json_schema_of_type(a.typ)
			|| CASE WHEN d.value IS NULL THEN '{}' ELSE jsonb_build_object('default', d.value) END,
		   a.n <= p.pronargs - p.pronargdefaults
	  FROM pg_proc p
	 CROSS JOIN LATERAL unnest(p.proargnames, p.proargtypes::oid[]) WITH ORDINALITY AS a(name, typ, n)
	 CROSS JOIN LATERAL (SELECT integration._json_of_default(
							 pg_get_function_arg_default(p.oid, a.n::integer), a.typ) AS value) d
	 WHERE p.oid = fn
	 ORDER BY a.n
$$;

CREATE FUNCTION integration.openapi(server_url text DEFAULT NULL) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	paths jsonb := '{}';
	webhooks jsonb := '{}';
	r record;
	op jsonb;
	params jsonb;
	body_props jsonb;
	body_required jsonb;
	a record;
	doc jsonb;
	errors jsonb := jsonb_build_object(
		'400', jsonb_build_object('$ref', '#/components/responses/BadRequest'),
		'403', jsonb_build_object('$ref', '#/components/responses/Forbidden'),
		'404', jsonb_build_object('$ref', '#/components/responses/NotFound'),
		'default', jsonb_build_object('$ref', '#/components/responses/Error'));
BEGIN
	FOR r IN SELECT * FROM integration._openapi_routes() LOOP
		params := jsonb_build_array(jsonb_build_object('$ref', '#/components/parameters/TenantId'));
		body_props := '{}';
		body_required := '[]';
		FOR a IN SELECT * FROM integration._openapi_args(r.fn) LOOP
			IF r.path LIKE '%{' || a.name || '}%' THEN
				params := params || jsonb_build_object('name', a.name, 'in', 'path', 'required', true,
													   'schema', a.schema);
			ELSIF a.name = ANY (r.body_args) THEN
				-- A connector's credentials and inbound secret are never answered back.
				body_props := body_props || jsonb_build_object(a.name, a.schema
					|| CASE WHEN r.path LIKE '/connectors%' AND a.name IN ('credentials', 'inbound_secret')
							THEN '{"writeOnly": true}'::jsonb ELSE '{}' END);
				IF a.required THEN
					body_required := body_required || to_jsonb(a.name);
				END IF;
			ELSE
				params := params || jsonb_build_object('name', a.name, 'in', 'query',
													   'required', a.required, 'schema', a.schema);
			END IF;
		END LOOP;
		op := jsonb_build_object(
			'operationId', r.operation_id,
			'summary', r.summary,
			'description', coalesce(obj_description(r.fn, 'pg_proc'), r.summary),
			'tags', jsonb_build_array(split_part(r.path, '/', 2)),
			'x-sql-function', r.fn::text,
			'parameters', params,
			'responses', jsonb_build_object(r.success, jsonb_build_object(
				'description', CASE r.success WHEN '201' THEN 'Created' ELSE 'OK' END,
				'content', jsonb_build_object('application/json',
					jsonb_build_object('schema', integration._openapi_result_schema(r.fn))))) || errors);
		IF r.body_args IS NOT NULL THEN
			op := op || jsonb_build_object('requestBody', jsonb_build_object(
				'required', true,
				'content', jsonb_build_object('application/json', jsonb_build_object(
					'schema', jsonb_build_object('type', 'object', 'properties', body_props)
							  || CASE WHEN jsonb_array_length(body_required) > 0
									  THEN jsonb_build_object('required', body_required) ELSE '{}' END))));
		END IF;
		paths := jsonb_set(paths, ARRAY[r.path], coalesce(paths -> r.path, '{}') || jsonb_build_object(r.method, op));
	END LOOP;

	FOR r IN SELECT * FROM integration.event_types ORDER BY event LOOP
		webhooks := webhooks || jsonb_build_object(r.event, jsonb_build_object('post', jsonb_build_object(
			'operationId', 'event_' || regexp_replace(r.event, '[^A-Za-z0-9_]', '_', 'g'),
			'summary', r.event,
			'description', coalesce(r.description, r.event),
			'x-event-source', r.source,
			'parameters', jsonb_build_array(
				jsonb_build_object('$ref', '#/components/parameters/WebhookId'),
				jsonb_build_object('$ref', '#/components/parameters/WebhookTimestamp'),
				jsonb_build_object('$ref', '#/components/parameters/WebhookSignature')),
			'requestBody', jsonb_build_object('required', true, 'content', jsonb_build_object(
				'application/json', jsonb_build_object('schema', jsonb_build_object(
					'type', 'object',
					'required', jsonb_build_array('type', 'timestamp', 'data'),
					'properties', jsonb_build_object(
						'type', jsonb_build_object('const', r.event),
						'timestamp', jsonb_build_object('type', 'string', 'format', 'date-time',
							'description', 'When the event was published, UTC, microseconds'),
						'data', r.schema))))),
			'responses', jsonb_build_object(
				'2XX', jsonb_build_object('description', 'Any 2xx status acknowledges the delivery.'),
				'default', jsonb_build_object('description',
					'Anything else, or no answer within the timeout, is retried on the endpoint''s schedule; 410 Gone disables the endpoint.')))));
	END LOOP;

	doc := jsonb_build_object(
		'openapi', '3.1.0',
		'info', jsonb_build_object(
			'title', 'integration',
			'version', (SELECT extversion FROM pg_extension WHERE extname = 'integration'),
			'description', 'Webhook endpoints per tenant and the events they receive, and connectors to other platforms: their webhooks received, handled and their APIs called. The API is SQL: each operation names the function that serves it (x-sql-function); an HTTP layer such as PostgREST or an application server puts it on HTTP, setting integration.tenant_id from the tenant header.'),
		'paths', '{}'::jsonb,
		'webhooks', webhooks,
		'components', jsonb_build_object(
			'schemas', jsonb_build_object(
				'Webhook', integration.json_schema_of_type('integration.webhook'::regtype),
				'Delivery', integration.json_schema_of_relation('integration.webhook_deliveries'::regclass)
					|| jsonb_build_object('properties',
						integration.json_schema_of_relation('integration.webhook_deliveries'::regclass) -> 'properties'
						|| jsonb_build_object('status', integration.json_schema_of_relation('integration.deliveries'::regclass) #> '{properties,status}')),
				'LogEntry', integration.json_schema_of_relation('integration.integration_logs'::regclass),
				'Error', jsonb_build_object(
					'type', 'object',
					'required', jsonb_build_array('sqlstate', 'message'),
					'properties', jsonb_build_object(
						'sqlstate', jsonb_build_object('type', 'string', 'pattern', '^[0-9A-Z]{5}$',
							'description', 'The SQLSTATE of the error, e.g. 22023 invalid_parameter_value, 42501 no tenant selected, P0002 not found'),
						'message', jsonb_build_object('type', 'string'),
						'detail', jsonb_build_object('type', jsonb_build_array('string', 'null')),
						'hint', jsonb_build_object('type', jsonb_build_array('string', 'null'))))),
			'parameters', jsonb_build_object(
				'TenantId', jsonb_build_object('name', 'X-Tenant-Id', 'in', 'header', 'required', true,
					'description', 'The tenant the call acts for: the HTTP layer sets integration.tenant_id to it for the call.',
					'schema', jsonb_build_object('type', 'string', 'minLength', 1)),
				'WebhookId', jsonb_build_object('name', 'webhook-id', 'in', 'header', 'required', true,
					'description', 'The event''s message id: the same on every retry and redelivery; deduplicate on it.',
					'schema', jsonb_build_object('type', 'string')),
				'WebhookTimestamp', jsonb_build_object('name', 'webhook-timestamp', 'in', 'header', 'required', true,
					'description', 'Unix seconds at which this attempt was signed.',
					'schema', jsonb_build_object('type', 'string', 'pattern', '^[0-9]+$')),
				'WebhookSignature', jsonb_build_object('name', 'webhook-signature', 'in', 'header', 'required', true,
					'description', 'Standard Webhooks signature: space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>, one per secret of the endpoint.',
					'schema', jsonb_build_object('type', 'string'))),
			'responses', jsonb_build_object(
				'BadRequest', jsonb_build_object('description', 'Invalid input (SQLSTATE class 22 or 23).',
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', jsonb_build_object('$ref', '#/components/schemas/Error')))),
				'Forbidden', jsonb_build_object('description', 'No tenant selected, or not allowed (SQLSTATE 42501).',
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', jsonb_build_object('$ref', '#/components/schemas/Error')))),
				'NotFound', jsonb_build_object('description', 'No such webhook, connector or event for this tenant (SQLSTATE P0002).',
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', jsonb_build_object('$ref', '#/components/schemas/Error')))),
				'Error', jsonb_build_object('description', 'Any other error.',
					'content', jsonb_build_object('application/json', jsonb_build_object('schema', jsonb_build_object('$ref', '#/components/schemas/Error')))))));
	-- Routes under the original API's prefix.
	doc := jsonb_set(doc, '{paths}', (SELECT coalesce(jsonb_object_agg('/api/v1/integration' || k, v), '{}')
										FROM jsonb_each(paths) AS e(k, v)));
	IF server_url IS NOT NULL THEN
		doc := doc || jsonb_build_object('servers', jsonb_build_array(jsonb_build_object('url', server_url)));
	END IF;
	RETURN doc;
END
$$;
COMMENT ON FUNCTION integration.openapi(text) IS
	'An OpenAPI 3.1 document of the API (the original REST routes, each mapped to its SQL function) and of every event the current tenant can receive (webhooks), derived from the catalog.';

COMMENT ON FUNCTION integration._json_schema_nullable(jsonb) IS
	'Schema s, allowing null as well (internal, for the JSON Schemas of columns).';
COMMENT ON FUNCTION integration._json_schema_of_checks(oid, smallint) IS
	'What the CHECK constraints on one column translate to in JSON Schema: enum, minimum (internal).';
COMMENT ON FUNCTION integration._json_of_default(text, oid) IS
	'A literal default expression as JSON; NULL when it is not a literal (internal).';
COMMENT ON FUNCTION integration._notice_unknown_patterns(jsonb) IS
	'Raises a NOTICE for each pattern that matches no known event type, once any is known (internal, for register_webhook() and update_webhook()).';
COMMENT ON FUNCTION integration._openapi_routes() IS
	'The original REST routes, the connector framework''s, and the SQL functions that serve them (internal, for openapi()).';
COMMENT ON FUNCTION integration._openapi_result_schema(regprocedure) IS
	'The JSON Schema of what a function of the API returns (internal, for openapi()).';
COMMENT ON FUNCTION integration._openapi_args(regprocedure) IS
	'The arguments of a function of the API: name, JSON Schema with its literal default, and whether required (internal, for openapi()).';

REVOKE ALL ON TABLE integration.event_schemas FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.validate_json_schema(jsonb),
	integration.json_schema_matches(jsonb, jsonb), integration.json_schema_of_type(oid, integer),
	integration.json_schema_of_relation(oid),
	integration._json_schema_nullable(jsonb), integration._json_schema_of_checks(oid, smallint),
	integration._json_of_default(text, oid), integration.register_event_type(text, jsonb, text),
	integration.unregister_event_type(text), integration._notice_unknown_patterns(jsonb),
	integration._openapi_routes(), integration._openapi_result_schema(regprocedure),
	integration._openapi_args(regprocedure), integration.openapi(text)
	FROM PUBLIC;
