-- A connector kind keeps its adapter functions (src/kind_dependencies.c): dropping one
-- is refused with 2BP01 as dropping a function a view uses is; DROP ... CASCADE, or the
-- function's schema dropped with CASCADE, unregisters the kinds that name it, unless
-- connectors of them exist; DROP EXTENSION integration still works.  In a database of
-- its own, so that its kinds, connectors and ids touch no other file's.
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_kind_dependencies TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
\c regress_kind_dependencies
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION integration;
RESET client_min_messages;
CREATE ROLE kdep_owner NOLOGIN NOSUPERUSER;
GRANT USAGE ON SCHEMA integration TO kdep_owner;
CREATE SCHEMA kdep AUTHORIZATION kdep_owner;

-- The adapters of two kinds, owned by an ordinary role; the kinds registered by a superuser.
SET ROLE kdep_owner;
CREATE FUNCTION kdep.normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT NULL::text, 'thing/updated', NULL::text, body::jsonb $$;
CREATE FUNCTION kdep.build(c integration.connector_context, operation text, payload jsonb,
						   idempotency_key text)
	RETURNS integration.connector_request LANGUAGE sql STABLE
AS $$ SELECT 'GET', '/things', NULL::jsonb, NULL::jsonb, NULL::text $$;
CREATE FUNCTION kdep.interpret(c integration.connector_context, operation text, status integer,
							   headers jsonb, body text)
	RETURNS integration.connector_outcome LANGUAGE sql STABLE
AS $$ SELECT 'succeeded', NULL::interval, '{"records": [], "next_page": null}'::jsonb, NULL::text $$;
CREATE FUNCTION kdep.verify(c integration.connector_context, secret text, headers jsonb, body text,
							tolerance interval)
	RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT integration.header(headers, 'x-token') = secret $$;
CREATE FUNCTION kdep.record(c integration.connector_context, topic text, payload jsonb)
	RETURNS integration.external_record LANGUAGE sql STABLE
AS $$ SELECT ROW('things', payload ->> 'id', now(), payload)::integration.external_record $$;
RESET ROLE;
SELECT (integration.register_connector_kind('kdep_one', 'none', 'adapter',
	normalise => 'kdep.normalise(integration.connector_context, jsonb, text)',
	build_request => 'kdep.build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'kdep.interpret(integration.connector_context, text, integer, jsonb, text)',
	verify => 'kdep.verify(integration.connector_context, text, jsonb, text, interval)',
	pull_streams => '{things}',
	record => 'kdep.record(integration.connector_context, text, jsonb)')).name;
SELECT (integration.register_connector_kind('kdep_two', 'bearer', 'none',
	build_request => 'kdep.build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)')).name;

------------------------------------------------------------------------------------------
-- Without CASCADE: refused, whoever drops it, whatever names it.
------------------------------------------------------------------------------------------
SET ROLE kdep_owner;
DROP FUNCTION kdep.record(integration.connector_context, text, jsonb);
\echo :LAST_ERROR_SQLSTATE
-- Two kinds name build: both are listed.
DROP FUNCTION kdep.build(integration.connector_context, text, jsonb, text);
\echo :LAST_ERROR_SQLSTATE
DROP ROUTINE kdep.verify(integration.connector_context, text, jsonb, text, interval);
\echo :LAST_ERROR_SQLSTATE
-- Several functions in one command: the first use named, every one detailed.
DROP FUNCTION kdep.interpret(integration.connector_context, text, integer, jsonb, text),
			  kdep.normalise(integration.connector_context, jsonb, text);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY kdep_owner;
\echo :LAST_ERROR_SQLSTATE
-- The same as a DO block sees it.
DO $$
BEGIN
	DROP FUNCTION kdep.normalise(integration.connector_context, jsonb, text);
EXCEPTION WHEN dependent_objects_still_exist THEN
	RAISE NOTICE 'refused: %', SQLERRM;
END
$$;
-- Nothing was dropped, and the kinds still name their functions.
SELECT count(*) AS functions_left FROM pg_proc WHERE pronamespace = 'kdep'::regnamespace;
SELECT name, normalise_function, build_request_function, interpret_response_function,
	   verify_function, record_function
  FROM integration.connector_kinds WHERE name LIKE 'kdep\_%' ORDER BY name;

-- A function no kind names drops as ever, and a function of the same name and other
-- arguments is another function.
CREATE FUNCTION kdep.build(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;
DROP FUNCTION kdep.build(text);

------------------------------------------------------------------------------------------
-- CASCADE: the kinds go with their function, unless connectors of them exist.
------------------------------------------------------------------------------------------
SET integration.tenant_id = 'kdep-tenant';
SELECT (integration.create_connector('kdep_one', 'one', 'https://one.example.invalid',
									 '{}', inbound_secret => 'tok')).kind AS connector_of;
RESET integration.tenant_id;
SET ROLE kdep_owner;
DROP FUNCTION kdep.record(integration.connector_context, text, jsonb) CASCADE;
\echo :LAST_ERROR_SQLSTATE
-- build is named by kdep_one (in use) and kdep_two (not): nothing goes.
DROP FUNCTION kdep.build(integration.connector_context, text, jsonb, text) CASCADE;
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM integration.connector_kinds WHERE name LIKE 'kdep\_%' ORDER BY name;
RESET ROLE;

-- kdep_one registered again with other functions: build is kdep_two's alone, and its
-- owner's CASCADE unregisters kdep_two (although only superusers write the catalogue).
SELECT (integration.register_connector_kind('kdep_one', 'none', 'none',
	normalise => 'integration.generic_normalise(integration.connector_context, jsonb, text)',
	replace => true)).name;
SET ROLE kdep_owner;
DROP FUNCTION kdep.build(integration.connector_context, text, jsonb, text) CASCADE;
RESET ROLE;
SELECT name FROM integration.connector_kinds WHERE name LIKE 'kdep\_%' ORDER BY name;

-- A schema dropped with CASCADE takes the kinds made of its functions along.
SELECT (integration.register_connector_kind('kdep_three', 'none', 'adapter',
	normalise => 'kdep.normalise(integration.connector_context, jsonb, text)',
	verify => 'kdep.verify(integration.connector_context, text, jsonb, text, interval)')).name;
SET client_min_messages = warning;		-- PostgreSQL's own list of what cascades
DROP SCHEMA kdep CASCADE;
RESET client_min_messages;
SELECT name FROM integration.connector_kinds WHERE name LIKE 'kdep\_%' ORDER BY name;
SELECT count(*) AS functions_left FROM pg_proc WHERE proname IN ('normalise', 'verify', 'interpret', 'record')
   AND pronamespace NOT IN ('integration'::regnamespace, 'pg_catalog'::regnamespace);

-- A kind in use keeps the schema from going.
CREATE SCHEMA kdep AUTHORIZATION kdep_owner;
CREATE FUNCTION kdep.normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT NULL::text, 'thing/updated', NULL::text, body::jsonb $$;
SELECT (integration.register_connector_kind('kdep_one', 'none', 'none',
	normalise => 'kdep.normalise(integration.connector_context, jsonb, text)', replace => true)).name;
SET client_min_messages = warning;
DROP SCHEMA kdep CASCADE;
\echo :LAST_ERROR_SQLSTATE
RESET client_min_messages;
SELECT normalise_function FROM integration.connector_kinds WHERE name = 'kdep_one';

-- Restores and replication apply with session_replication_role = replica, under which
-- event triggers do not fire (docs/connectors.md: pg_restore --clean).
BEGIN;
SET LOCAL session_replication_role = replica;
DROP FUNCTION kdep.normalise(integration.connector_context, jsonb, text);
SELECT normalise_function, to_regprocedure(normalise_function) IS NULL AS left_dangling
  FROM integration.connector_kinds WHERE name = 'kdep_one';
ROLLBACK;

-- The trigger is the extension's, and only fires as one.
SELECT evtname, evtevent, evtenabled, evttags IS NULL AS every_command,
	   evtfoid::regprocedure, pg_describe_object(d.refclassid, d.refobjid, 0) AS member_of
  FROM pg_event_trigger e
  JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e'
 WHERE evtname = 'integration_adapter_dropped';
SELECT integration._adapter_dropped();

------------------------------------------------------------------------------------------
-- DROP EXTENSION integration, with kinds of the users' functions and connectors of them:
-- the trigger goes with the catalogue and does not stand in the way.
------------------------------------------------------------------------------------------
-- The users' functions depend on the extension's types: CASCADE drops them too.
SET client_min_messages = warning;
DROP EXTENSION integration CASCADE;
RESET client_min_messages;
SELECT count(*) AS event_triggers FROM pg_event_trigger;
SELECT count(*) AS functions_left FROM pg_proc WHERE pronamespace = 'kdep'::regnamespace;
CREATE EXTENSION integration;
DROP EXTENSION integration;
SELECT count(*) AS event_triggers FROM pg_event_trigger;

\c :regress_db
DROP DATABASE regress_kind_dependencies;
DROP ROLE kdep_owner;
