-- The API contract: every function's exact signature, argument names, return type and
-- volatility; every table's key columns; every key and foreign key leads with tenant_id.
BEGIN;
SELECT plan(142);

CREATE TEMP TABLE api (name name, args name[], argnames text[], returns text, volatility text)
	ON COMMIT DROP;
INSERT INTO api VALUES
	('register_webhook', '{text,text,jsonb,text,jsonb,integer,integer}', '{name,url,events,secret,headers,rate_limit,rate_limit_burst}', 'integration.webhook', 'volatile'),
	('list_webhooks', '{}', NULL, 'setof integration.webhook', 'stable'),
	('show_webhook', '{bigint}', '{id}', 'integration.webhook', 'stable'),
	('update_webhook', '{bigint,text,text,jsonb,text,jsonb,boolean,integer,integer}', '{id,name,url,events,secret,headers,is_active,rate_limit,rate_limit_burst}', 'integration.webhook', 'volatile'),
	('delete_webhook', '{bigint}', '{id}', 'boolean', 'volatile'),
	('dispatch_webhook', '{bigint,text,jsonb}', '{id,event,payload}', 'bigint', 'volatile'),
	('list_deliveries', '{integer,bigint,text,text,"timestamp with time zone",bigint,bigint}', '{limit,endpoint_id,status,event,since,before_event_id,before_endpoint_id}', 'setof integration.webhook_deliveries', 'stable'),
	('list_integration_logs', '{integer,text,text,text,"timestamp with time zone",bigint}', '{limit,level,source,event,since,before_id}', 'setof integration.integration_logs', 'stable'),
	('publish_event', '{text,jsonb}', '{event,payload}', 'integer', 'volatile'),
	('track_table', '{regclass,text,text}', '{tbl,event_prefix,tenant_column}', 'void', 'volatile'),
	('untrack_table', '{regclass}', '{tbl}', 'boolean', 'volatile'),
	('hmac', '{bytea,bytea,text}', '{key,data,algorithm}', 'bytea', 'immutable'),
	('sign', '{text,text,text,text,bigint}', '{scheme,secret,body,msg_id,timestamp}', 'jsonb', 'volatile'),
	('verify', '{text,text,jsonb,text,interval,"timestamp with time zone"}', '{scheme,secret,headers,body,tolerance,now}', 'boolean', 'immutable'),
	('event_matches', '{jsonb,text}', '{patterns,event}', 'boolean', 'immutable'),
	('bind_role', '{regrole,text}', '{role,tenant}', 'boolean', 'volatile'),
	('unbind_role', '{regrole,text}', '{role,tenant}', 'integer', 'volatile'),
	('bound_tenants', '{}', NULL, 'text[]', 'stable');

-- 18 functions x 4 assertions
SELECT has_function('integration', a.name, a.args, format('integration.%s(%s) exists', a.name, array_to_string(a.args, ', ')))
  FROM api a ORDER BY a.name;
SELECT function_returns('integration', a.name, a.args, a.returns) FROM api a ORDER BY a.name;
SELECT volatility_is('integration', a.name, a.args, a.volatility) FROM api a ORDER BY a.name;
SELECT is((SELECT p.proargnames::text[]
			 FROM pg_proc p
			WHERE p.pronamespace = 'integration'::regnamespace AND p.proname = a.name),
		  a.argnames, format('integration.%s has argument names %s', a.name, coalesce(a.argnames::text, 'none')))
  FROM api a ORDER BY a.name;
-- One overload each: named-argument calls are never ambiguous.  (1)
SELECT is_empty($$SELECT proname FROM pg_proc WHERE pronamespace = 'integration'::regnamespace
				   GROUP BY proname HAVING count(*) > 1$$, 'no API function is overloaded');
-- Defaults: only the trailing optional arguments have them.  (6)
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.register_webhook(text,text,jsonb,text,jsonb,integer,integer)'::regprocedure), 4, 'register_webhook: secret, headers, rate_limit and rate_limit_burst are optional');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.update_webhook(bigint,text,text,jsonb,text,jsonb,boolean,integer,integer)'::regprocedure), 8, 'update_webhook: every field is optional');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.list_deliveries(integer,bigint,text,text,timestamptz,bigint,bigint)'::regprocedure), 7, 'list_deliveries: "limit", every filter and the page cursor are optional');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.list_integration_logs(integer,text,text,text,timestamptz,bigint)'::regprocedure), 6, 'list_integration_logs: "limit", every filter and the page cursor are optional');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.track_table(regclass,text,text)'::regprocedure), 1, 'track_table: tenant_column is optional');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = 'integration.unbind_role(regrole,text)'::regprocedure), 1, 'unbind_role: tenant is optional (all of the role''s bindings)');
-- No SECURITY DEFINER anywhere: row-level security scopes every call.  (1)
SELECT is_empty($$SELECT oid::regprocedure FROM pg_proc
				   WHERE pronamespace = 'integration'::regnamespace AND prosecdef$$,
				'no function is SECURITY DEFINER');

-- Tables and views.  (6)
SELECT has_table('integration', t, format('table integration.%s exists', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;
SELECT has_view('integration', 'webhook_deliveries', 'view integration.webhook_deliveries exists');
SELECT has_view('integration', 'tracked_tables', 'view integration.tracked_tables exists');

-- Key columns of every table.  (4 tables x 5 = 20)
SELECT col_type_is('integration', t, 'tenant_id', 'text', format('%s.tenant_id is text', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;
SELECT col_not_null('integration', t, 'tenant_id', format('%s.tenant_id is NOT NULL', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;
SELECT col_type_is('integration', t, 'id', 'bigint', format('%s.id is bigint', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;
SELECT col_is_pk('integration', t, ARRAY['tenant_id', 'id']::name[], format('%s has primary key (tenant_id, id)', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;
SELECT is((SELECT attidentity FROM pg_attribute
			WHERE attrelid = format('integration.%I', t)::regclass AND attname = 'id'),
		  'a'::"char", format('%s.id is GENERATED ALWAYS AS IDENTITY', t))
  FROM unnest(ARRAY['webhook_endpoints', 'webhook_events', 'deliveries', 'integration_logs']::name[]) t;

-- Other columns the API and the worker rely on.  (18)
SELECT col_type_is('integration', 'webhook_endpoints', c, ty, format('webhook_endpoints.%s is %s', c, ty))
  FROM (VALUES ('name'::name, 'text'), ('url', 'text'), ('events', 'jsonb'), ('secret', 'text'),
			   ('headers', 'jsonb'), ('is_active', 'boolean'), ('deleted_at', 'timestamp with time zone')) v(c, ty);
SELECT col_type_is('integration', 'webhook_events', c, ty, format('webhook_events.%s is %s', c, ty))
  FROM (VALUES ('event'::name, 'text'), ('payload', 'text'), ('endpoint_ids', 'bigint[]'),
			   ('message_id', 'text')) v(c, ty);
SELECT col_type_is('integration', 'webhook_deliveries', 'message_id', 'text',
				   'webhook_deliveries.message_id is text: the webhook-id sent');
SELECT col_type_is('integration', 'deliveries', c, ty, format('deliveries.%s is %s', c, ty))
  FROM (VALUES ('event_id'::name, 'bigint'), ('endpoint_id', 'bigint'), ('status', 'text'),
			   ('attempts', 'integer'), ('next_attempt_at', 'timestamp with time zone')) v(c, ty);
SELECT col_type_is('integration', 'integration_logs', 'context', 'jsonb', 'integration_logs.context is jsonb');

-- Functions are kept by signature (text), not regproc/regprocedure: pg_upgrade keeps no
-- function's OID and refuses such columns (t/032_pg_upgrade.pl).  (7)
SELECT col_type_is('integration', 'connector_kinds', c, 'text', format('connector_kinds.%s is text', c))
  FROM unnest(ARRAY['verify_function', 'normalise_function', 'build_request_function',
					'interpret_response_function', 'record_function']::name[]) c;
SELECT col_type_is('integration', 'inbound_handlers', 'handler', 'text', 'inbound_handlers.handler is text');
SELECT is_empty($$
	WITH RECURSIVE refused(oid) AS (
		SELECT t.oid FROM pg_type t
		 WHERE t.typnamespace = 'pg_catalog'::regnamespace
		   AND t.typname IN ('regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig',
							 'regdictionary', 'regnamespace', 'regcollation')
		UNION
		SELECT t.oid FROM pg_type t, refused r
		 WHERE (t.typtype = 'd' AND t.typbasetype = r.oid)
			OR (t.typelem = r.oid AND t.typlen = -1)
			OR (t.typtype = 'c' AND t.typrelid IN
				(SELECT a.attrelid FROM pg_attribute a WHERE a.atttypid = r.oid)))
	SELECT c.oid::regclass, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	 WHERE c.relkind IN ('r', 'm', 'i') AND a.attnum > 0 AND NOT a.attisdropped
	   AND c.relnamespace = 'integration'::regnamespace
	   AND a.atttypid IN (SELECT oid FROM refused)$$,
	'no column of the extension''s tables is of a reg* type pg_upgrade refuses');

-- Every primary key, unique constraint and unique index leads with tenant_id, and every
-- foreign key pairs tenant_id with tenant_id.  The one exception is the catalogue of
-- connector kinds, which is not tenant data (a reference table, were the schema
-- distributed with Citus): its key, and the foreign key that names a connector's kind.
-- (4)
SELECT is_empty($$
	SELECT c.conname FROM pg_constraint c
	 WHERE c.connamespace = 'integration'::regnamespace AND c.contype IN ('p', 'u', 'f')
	   AND c.conrelid <> 'integration.connector_kinds'::regclass
	   AND c.confrelid <> 'integration.connector_kinds'::regclass
	   AND (SELECT attname FROM pg_attribute WHERE attrelid = c.conrelid AND attnum = c.conkey[1]) <> 'tenant_id'$$,
	'every key and foreign key starts with tenant_id, but for the catalogue of connector kinds');
SELECT is_empty($$
	SELECT c.conname FROM pg_constraint c
	 WHERE c.connamespace = 'integration'::regnamespace AND c.contype = 'f'
	   AND c.confrelid <> 'integration.connector_kinds'::regclass
	   AND (SELECT attname FROM pg_attribute WHERE attrelid = c.confrelid AND attnum = c.confkey[1]) <> 'tenant_id'$$,
	'every foreign key references tenant_id first, but the one to the catalogue of connector kinds');
SELECT is_empty($$
	SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
	 WHERE t.relnamespace = 'integration'::regnamespace AND i.indisunique
	   AND t.oid <> 'integration.connector_kinds'::regclass
	   AND (SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0]) IS DISTINCT FROM 'tenant_id'$$,
	'every unique index starts with tenant_id, but the catalogue of connector kinds''s');
SELECT results_eq($$
	SELECT c.conrelid::regclass::text, c.confrelid::regclass::text,
		   (SELECT array_agg(attname::text COLLATE "default" ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
			  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n)
	  FROM pg_constraint c
	 WHERE c.connamespace = 'integration'::regnamespace AND c.contype = 'f' ORDER BY 2, 1$$,
	$$VALUES ('integration.connectors', 'integration.connector_kinds', ARRAY['kind']),
			 ('integration.connector_calls', 'integration.connectors', ARRAY['tenant_id', 'connector_id']),
			 ('integration.inbound_handlers', 'integration.connectors', ARRAY['tenant_id', 'connector_id']),
			 ('integration.sync_streams', 'integration.connectors', ARRAY['tenant_id', 'connector_id']),
			 ('integration.delivery_attempts', 'integration.deliveries', ARRAY['tenant_id', 'delivery_id']),
			 ('integration.retired_secrets', 'integration.webhook_endpoints', ARRAY['tenant_id', 'endpoint_id'])$$,
	'the foreign keys are connectors (kind), connector_calls, inbound_handlers and sync_streams (tenant_id, connector_id), delivery_attempts (tenant_id, delivery_id) and retired_secrets (tenant_id, endpoint_id); deliveries -> events and endpoints, and external_records and inbound_events -> connectors, are checked per statement by triggers (test/sql/sync_pull.sql)');

-- What those triggers enforce, as foreign keys would, whoever asks.  (7)
SET LOCAL integration.tenant_id = 'tap-ref';
CREATE TEMP TABLE ref_ids ON COMMIT DROP AS
	SELECT w.id AS ep, integration.dispatch_webhook(w.id, 'ref.x', '{}') AS d
	  FROM integration.register_webhook('ref', 'https://ref.example.invalid/', '["*"]') w;
SELECT throws_ok(format('INSERT INTO integration.deliveries (event_id, endpoint_id) SELECT event_id, %s + 1000 FROM integration.deliveries WHERE id = %s',
						(SELECT ep FROM ref_ids), (SELECT d FROM ref_ids)),
				 '23503', 'insert or update on table "deliveries" violates the reference to webhook_endpoints',
				 'a delivery must refer to an existing endpoint');
SELECT throws_ok(format('DELETE FROM integration.webhook_endpoints WHERE id = %s', (SELECT ep FROM ref_ids)),
				 '23503', 'update or delete on table "webhook_endpoints" violates the reference from table "deliveries"',
				 'an endpoint that deliveries refer to cannot be deleted');
SELECT throws_ok(format('UPDATE integration.webhook_endpoints SET id = DEFAULT WHERE id = %s', (SELECT ep FROM ref_ids)),
				 '23503', 'update or delete on table "webhook_endpoints" violates the reference from table "deliveries"',
				 'an endpoint that deliveries refer to keeps its key');
SELECT throws_ok(format('UPDATE integration.deliveries SET endpoint_id = endpoint_id + 1000 WHERE id = %s', (SELECT d FROM ref_ids)),
				 '0A000', 'the tenant, event and endpoint of a delivery cannot change',
				 'a delivery keeps its endpoint: checking inserts is enough');
-- A key a BEFORE trigger changes, the UPDATE naming other columns only.
CREATE FUNCTION pg_temp.rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.tenant_id := 'tap-ref-2';
	RETURN NEW;
END
$$;
CREATE TRIGGER rekey BEFORE UPDATE ON integration.webhook_endpoints
	FOR EACH ROW EXECUTE FUNCTION pg_temp.rekey();
SELECT throws_ok(format('UPDATE integration.webhook_endpoints SET name = name WHERE id = %s', (SELECT ep FROM ref_ids)),
				 '23503', 'update or delete on table "webhook_endpoints" violates the reference from table "deliveries"',
				 'an endpoint keeps its key when a BEFORE trigger changes it');
DROP TRIGGER rekey ON integration.webhook_endpoints;
SELECT throws_ok('TRUNCATE integration.webhook_endpoints', '0A000', NULL,
				 'webhook_endpoints cannot be truncated while deliveries refer to it');
SELECT ok(integration.delete_webhook((SELECT ep FROM ref_ids)),
		  'delete_webhook() soft-deletes an endpoint that deliveries refer to');

SELECT * FROM finish();
ROLLBACK;
