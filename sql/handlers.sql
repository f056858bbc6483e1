------------------------------------------------------------------------------------------
-- Inbound handlers (appended to integration.sql by the Makefile, after connectors.sql;
-- docs/connectors.md#handlers).
--
-- A handler is a function handler(integration.inbound_events) that a tenant registers
-- for event patterns.  The worker calls every matching handler of a pending inbound
-- event in one transaction with marking the event processed (src/inbound_job.c,
-- src/inbound_store.c), as the role that registered it and with the event's tenant
-- selected (src/inbound_invoke.c), so a handler's writes happen exactly once.
------------------------------------------------------------------------------------------

CREATE TABLE integration.inbound_handlers (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	name			text NOT NULL,
	events			jsonb NOT NULL,
	-- The function's signature, not a regprocedure: see the trigger below.
	handler			text NOT NULL,
	-- Set by the inbound_handler_written trigger: who wrote the row.
	run_as			regrole NOT NULL,
	connector_id	bigint,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT inbound_handlers_name_key UNIQUE (tenant_id, name),
	FOREIGN KEY (tenant_id, connector_id) REFERENCES integration.connectors (tenant_id, id),
	CONSTRAINT inbound_handlers_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT inbound_handlers_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
	CONSTRAINT inbound_handlers_events_check
		CHECK (integration.validate_event_patterns(events) IS NOT NULL)
);
COMMENT ON TABLE integration.inbound_handlers IS
	'Each tenant''s handlers of inbound events: a function handler(integration.inbound_events) called by the worker for every pending event whose name matches events (and of connector_id, when set), as the role run_as with the event''s tenant selected.';
COMMENT ON COLUMN integration.inbound_handlers.handler IS
	'The function called: handler(integration.inbound_events), any return type (ignored); stored as its schema-qualified signature, so a function renamed since is not found.';
COMMENT ON COLUMN integration.inbound_handlers.run_as IS
	'The role the handler runs as: the role that last wrote the row (a superuser may name another); never a superuser or a role that bypasses row-level security.';
COMMENT ON COLUMN integration.inbound_handlers.connector_id IS
	'Only events of this connector; NULL: of every connector of the tenant.';

-- Every write, by on_inbound() or plain SQL, is checked here: the function takes the
-- event row, the role may execute it, and the role is bound by row-level security.
-- A handler runs as whoever wrote it, so nobody can make it run as someone else; only
-- a superuser may name another role (an administrator registering for an application
-- role, a restore).  The handler is stored as its schema-qualified signature (the text
-- of a regprocedure under search_path pg_catalog, pg_temp), not as a regprocedure: that
-- is an OID, which pg_upgrade does not keep, so it refuses such columns; the worker
-- resolves the text when it calls the handler (src/inbound_store.c).
CREATE FUNCTION integration._inbound_handler_written() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	writer_is_superuser boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
	fn regprocedure := NEW.handler::regprocedure;
	p record;
	role record;
BEGIN
	IF NEW.run_as IS NULL OR NOT coalesce(writer_is_superuser, false) THEN
		NEW.run_as := current_user::regrole;
	END IF;
	NEW.handler := fn::text;

	SELECT pr.prokind, pr.proretset, pr.prorettype, pr.provariadic,
		   ARRAY(SELECT unnest(pr.proargtypes::oid[])) AS argtypes
	  INTO p FROM pg_proc pr WHERE pr.oid = fn;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'function with OID % does not exist', fn::oid
			USING ERRCODE = 'undefined_function';
	END IF;
	IF p.prokind <> 'f' OR p.argtypes IS DISTINCT FROM ARRAY['integration.inbound_events'::regtype::oid]
	   OR p.proretset OR p.provariadic <> 0
	   OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype) THEN
		RAISE EXCEPTION '% cannot be an inbound handler', fn
			USING ERRCODE = 'invalid_function_definition',
				  DETAIL = format('A handler is a function (integration.inbound_events) returning one value of any type (void, typically); %s is %s(%s) RETURNS %s%s.',
								  fn,
								  CASE p.prokind WHEN 'f' THEN 'a function ' WHEN 'p' THEN 'a procedure '
												 WHEN 'a' THEN 'an aggregate ' ELSE 'a window function ' END,
								  pg_get_function_identity_arguments(fn),
								  CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END,
								  format_type(p.prorettype, NULL)),
				  HINT = 'Declare it as FUNCTION name(event integration.inbound_events) RETURNS void.';
	END IF;

	SELECT r.rolname, r.rolsuper, r.rolbypassrls INTO role FROM pg_roles r WHERE r.oid = NEW.run_as;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role with OID % does not exist', NEW.run_as::oid
			USING ERRCODE = 'undefined_object';
	END IF;
	-- A superuser's restore loads the handler as dumped: its role may have become a
	-- superuser or BYPASSRLS after it registered, and the worker refuses to run it as
	-- such (src/inbound_invoke.c), as it did before the dump.
	IF (role.rolsuper OR role.rolbypassrls)
	   AND NOT (coalesce(writer_is_superuser, false) AND integration._restoring()) THEN
		RAISE EXCEPTION 'an inbound handler cannot run as role "%"', role.rolname
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Role "%s" is a superuser or bypasses row-level security: its handler would see every tenant''s rows.',
								  role.rolname),
				  HINT = 'SET ROLE to the application role whose privileges the handler should have, then register it.';
	END IF;
	-- The worker runs the handler as run_as, in a session of its own where no login
	-- role's binding holds: a bound session's handler must run as a role bound to the
	-- tenant, or it could act as any tenant there (SET ROLE to an unbound group role,
	-- then register).
	IF integration.bound_tenants() IS NOT NULL
	   AND NOT integration._role_bound_to(NEW.run_as, NEW.tenant_id) THEN
		RAISE EXCEPTION 'an inbound handler of tenant "%" cannot run as role "%"', NEW.tenant_id, role.rolname
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Role "%s" is not bound to tenant "%s", and this session is bound to tenants: the handler would run in the handler worker with no binding.',
								  role.rolname, NEW.tenant_id),
				  HINT = 'Register it as a role bound to the tenant (RESET ROLE, or SET ROLE to that role).';
	END IF;
	IF NOT has_function_privilege(NEW.run_as, fn, 'EXECUTE') THEN
		RAISE EXCEPTION 'role "%" may not execute %', role.rolname, fn
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'A handler runs as the role that registered it.',
				  HINT = format('GRANT EXECUTE ON FUNCTION %s TO %I.', fn, role.rolname);
	END IF;
	-- A restore keeps the time dumped (sql/dump.sql).
	IF NOT integration._restoring() THEN
		NEW.updated_at := now();
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._inbound_handler_written() IS
	'Row trigger on inbound_handlers: sets run_as to the writing role (a superuser may name another) and checks the handler''s signature and the role (internal).';
CREATE TRIGGER inbound_handler_written BEFORE INSERT OR UPDATE ON integration.inbound_handlers
	FOR EACH ROW EXECUTE FUNCTION integration._inbound_handler_written();

------------------------------------------------------------------------------------------
-- The worker's part, in C: the commit-time wake-up and its statements, for tests.
------------------------------------------------------------------------------------------

-- Whatever makes events pending (receive_webhook(), reprocess_inbound(), plain SQL)
-- wakes the worker when its transaction commits (src/wakeup.c).
CREATE FUNCTION integration._inbound_events_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_inbound_events_written'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration._inbound_events_written() IS
	'Statement trigger on inbound_events: wakes this database''s worker for pending inbound events when the transaction commits (internal).';
CREATE TRIGGER inbound_events_written AFTER INSERT OR UPDATE OF status, next_attempt_at
	ON integration.inbound_events
	FOR EACH STATEMENT EXECUTE FUNCTION integration._inbound_events_written();

CREATE FUNCTION integration._run_inbound(max integer DEFAULT 32)
	RETURNS TABLE (tenant_id text, id bigint, status text, attempts integer, error text)
	AS 'MODULE_PATHNAME', 'integration_run_inbound'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION integration._run_inbound(integer) IS
	'Runs the handlers of up to max due inbound events with the worker''s code, in the caller''s transaction: claims them fairly across tenants and in order per object, calls each one''s handlers as their roles with its tenant selected, and records the outcomes; returns them. Superusers only (internal, for tests and operators).';

CREATE FUNCTION integration._inbound_pacer_plan(budget_ms integer, tenants text[],
											   costs_ms integer[])
	RETURNS text
	AS 'MODULE_PATHNAME', 'integration_inbound_pacer_plan'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._inbound_pacer_plan(integer, text[], integer[]) IS
	'How the handler worker would pace events of the given tenants whose handlers take the given times, all ready at once: its transactions in order, separated by " | ", each its events as tenant and position (internal, for tests).';

------------------------------------------------------------------------------------------
-- The API.  SECURITY INVOKER: row-level security scopes every call to the caller's
-- tenant, and a handler registered through it runs as the caller.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._inbound_handler_not_found(name text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'inbound handler "%" not found', name
		USING ERRCODE = 'no_data_found',
			  HINT = 'integration.list_inbound_handlers() lists the current tenant''s handlers.';
END
$$;
COMMENT ON FUNCTION integration._inbound_handler_not_found(text) IS
	'Raises no_data_found for a handler the current tenant does not have (internal).';

CREATE FUNCTION integration.on_inbound(name text, events jsonb, handler regprocedure,
									   connector_id bigint DEFAULT NULL,
									   replace boolean DEFAULT false)
	RETURNS integration.inbound_handlers
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h integration.inbound_handlers;
	existing bigint;
	unknown text;
BEGIN
	PERFORM integration.require_tenant();
	IF on_inbound.name IS NULL OR on_inbound.events IS NULL OR on_inbound.handler IS NULL THEN
		RAISE EXCEPTION 'name, events and handler must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF length(btrim(on_inbound.name)) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid inbound handler name'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A handler name has 1 to 200 characters and is not blank.';
	END IF;
	PERFORM integration.validate_event_patterns(on_inbound.events);
	IF on_inbound.connector_id IS NOT NULL AND NOT EXISTS (
			SELECT FROM integration.connectors c
			 WHERE c.tenant_id = integration.current_tenant() AND c.id = on_inbound.connector_id
			   AND c.deleted_at IS NULL) THEN
		PERFORM integration._connector_not_found(on_inbound.connector_id);
	END IF;

	SELECT x.id INTO existing FROM integration.inbound_handlers x
	 WHERE x.tenant_id = integration.current_tenant() AND x.name = on_inbound.name
	   FOR UPDATE;
	IF FOUND AND NOT on_inbound.replace THEN
		RAISE EXCEPTION 'inbound handler "%" already exists', on_inbound.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass replace => true to change it.';
	END IF;
	IF FOUND THEN
		-- run_as NULL: the trigger sets the caller, as for a new handler.
		UPDATE integration.inbound_handlers AS x
		   SET events = on_inbound.events, handler = on_inbound.handler,
			   connector_id = on_inbound.connector_id, run_as = NULL
		 WHERE x.tenant_id = integration.current_tenant() AND x.id = existing
		RETURNING x.* INTO h;
	ELSE
		INSERT INTO integration.inbound_handlers AS x (name, events, handler, connector_id)
		VALUES (on_inbound.name, on_inbound.events, on_inbound.handler, on_inbound.connector_id)
		ON CONFLICT ON CONSTRAINT inbound_handlers_name_key DO NOTHING
		RETURNING x.* INTO h;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'inbound handler "%" already exists', on_inbound.name
				USING ERRCODE = 'duplicate_object',
					  HINT = 'Pass replace => true to change it.';
		END IF;
	END IF;

	-- Inbound event names start with a kind: a pattern that starts with none matches nothing.
	SELECT string_agg(p, ', ') INTO unknown
	  FROM jsonb_array_elements_text(on_inbound.events) AS p
	 WHERE split_part(p, '.', 1) NOT IN ('*', '**')
	   AND NOT EXISTS (SELECT FROM integration.connector_kinds k WHERE k.name = split_part(p, '.', 1));
	IF unknown IS NOT NULL THEN
		RAISE NOTICE 'no connector kind''s events match %', unknown
			USING HINT = 'Inbound event names are <kind>.<topic with dots>, e.g. generic.order.created.';
	END IF;

	PERFORM integration.log('info', 'api',
							CASE WHEN existing IS NULL THEN 'inbound.handler_registered'
								 ELSE 'inbound.handler_replaced' END,
							format('inbound handler %s %s', h.name,
								   CASE WHEN existing IS NULL THEN 'registered' ELSE 'replaced' END),
							jsonb_build_object('handler_id', h.id, 'name', h.name, 'events', h.events,
											   'handler', h.handler::text, 'run_as', h.run_as::text,
											   'connector_id', h.connector_id));
	RETURN h;
END
$$;
COMMENT ON FUNCTION integration.on_inbound(text, jsonb, regprocedure, bigint, boolean) IS
	'Registers a handler of the current tenant''s inbound events: the worker calls handler(integration.inbound_events) for every pending event whose name matches events (of connector_id only, when given), as the calling role, exactly once per successful run; replace => true changes an existing one.';

CREATE FUNCTION integration.list_inbound_handlers() RETURNS SETOF integration.inbound_handlers
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	RETURN QUERY
		SELECT h.* FROM integration.inbound_handlers h
		 WHERE h.tenant_id = tenant
		 ORDER BY h.id;
END
$$;
COMMENT ON FUNCTION integration.list_inbound_handlers() IS
	'The current tenant''s inbound handlers, in the order the worker calls them.';

CREATE FUNCTION integration.remove_inbound(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h integration.inbound_handlers;
BEGIN
	PERFORM integration.require_tenant();
	DELETE FROM integration.inbound_handlers x
	 WHERE x.tenant_id = integration.current_tenant() AND x.name = remove_inbound.name
	RETURNING x.* INTO h;
	IF NOT FOUND THEN
		PERFORM integration._inbound_handler_not_found(remove_inbound.name);
	END IF;
	PERFORM integration.log('info', 'api', 'inbound.handler_removed',
							format('inbound handler %s removed', h.name),
							jsonb_build_object('handler_id', h.id, 'name', h.name));
	RETURN true;
END
$$;
COMMENT ON FUNCTION integration.remove_inbound(text) IS
	'Removes an inbound handler of the current tenant: events handled from the next worker transaction on no longer call it.';

CREATE FUNCTION integration.reprocess_inbound(id bigint) RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st text;
BEGIN
	PERFORM integration.require_tenant();
	SELECT e.status INTO st FROM integration.inbound_events e
	 WHERE e.tenant_id = integration.current_tenant() AND e.id = reprocess_inbound.id
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'inbound event % not found', reprocess_inbound.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_inbound_events() lists the current tenant''s inbound events.';
	END IF;
	UPDATE integration.inbound_events e
	   SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
		   processed_at = NULL
	 WHERE e.tenant_id = integration.current_tenant() AND e.id = reprocess_inbound.id;
	PERFORM integration.log('info', 'api', 'inbound.reprocessed',
							format('inbound event %s requeued for its handlers', reprocess_inbound.id),
							jsonb_build_object('inbound_id', reprocess_inbound.id, 'previous_status', st));
	RETURN reprocess_inbound.id;
END
$$;
COMMENT ON FUNCTION integration.reprocess_inbound(bigint) IS
	'Sets one inbound event of the current tenant back to pending, due now with a fresh retry budget: the handlers that match it then run again.';

CREATE FUNCTION integration.reprocess_inbound_events(connector_id bigint DEFAULT NULL,
													 status text DEFAULT 'failed',
													 event text DEFAULT NULL,
													 since timestamptz DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	PERFORM integration.require_tenant();
	IF reprocess_inbound_events.status IS NULL
	   OR reprocess_inbound_events.status NOT IN ('failed', 'skipped', 'processed') THEN
		RAISE EXCEPTION 'cannot reprocess inbound events of status %',
			coalesce(quote_literal(reprocess_inbound_events.status), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass status failed, skipped or processed; pending events are run anyway.';
	END IF;
	UPDATE integration.inbound_events e
	   SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
		   processed_at = NULL
	 WHERE e.tenant_id = integration.current_tenant()
	   AND e.status = reprocess_inbound_events.status
	   AND (reprocess_inbound_events.connector_id IS NULL OR e.connector_id = reprocess_inbound_events.connector_id)
	   AND (reprocess_inbound_events.event IS NULL OR e.event = reprocess_inbound_events.event)
	   AND (reprocess_inbound_events.since IS NULL OR e.received_at >= reprocess_inbound_events.since);
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM integration.log('info', 'api', 'inbound.reprocessed',
								format('%s %s inbound events requeued for their handlers', n,
									   reprocess_inbound_events.status),
								jsonb_build_object('count', n, 'status', reprocess_inbound_events.status,
												   'connector_id', reprocess_inbound_events.connector_id,
												   'event', reprocess_inbound_events.event,
												   'since', reprocess_inbound_events.since));
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION integration.reprocess_inbound_events(bigint, text, text, timestamptz) IS
	'Sets the current tenant''s inbound events of a status (default failed) back to pending, optionally only of one connector, one event name or received since a time; returns how many.';

-- security_invoker: the caller's row-level security applies.  One row per connector that
-- is live or still has events waiting or failed; each count is read through a partial
-- index of its status.
CREATE VIEW integration.inbound_backlog WITH (security_invoker = true) AS
	SELECT c.tenant_id, c.id AS connector_id, c.name AS connector, c.kind,
		   p.pending, p.retrying, p.oldest_pending_at, p.next_attempt_at, f.failed
	  FROM integration.connectors c
	 CROSS JOIN LATERAL (
			SELECT count(*) AS pending,
				   count(*) FILTER (WHERE e.attempts > 0) AS retrying,
				   min(e.received_at) AS oldest_pending_at,
				   min(e.next_attempt_at) AS next_attempt_at
			  FROM integration.inbound_events e
			 WHERE e.tenant_id = c.tenant_id AND e.connector_id = c.id AND e.status = 'pending') p
	 CROSS JOIN LATERAL (
			SELECT count(*) AS failed
			  FROM integration.inbound_events e
			 WHERE e.tenant_id = c.tenant_id AND e.connector_id = c.id AND e.status = 'failed') f
	 WHERE c.deleted_at IS NULL OR p.pending > 0 OR f.failed > 0;
COMMENT ON VIEW integration.inbound_backlog IS
	'Per connector: inbound events waiting for their handlers (pending; retrying: after a failed attempt), when the oldest waiting one was received, when the next is due, and how many failed for good.';

------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC (docs/tenancy-and-security.md lists the grants).
------------------------------------------------------------------------------------------

REVOKE ALL ON TABLE integration.inbound_handlers, integration.inbound_backlog FROM PUBLIC;
REVOKE ALL ON FUNCTION
	integration._inbound_handler_written(), integration._inbound_events_written(),
	integration._run_inbound(integer), integration._inbound_handler_not_found(text),
	integration._inbound_pacer_plan(integer, text[], integer[]),
	integration.on_inbound(text, jsonb, regprocedure, bigint, boolean),
	integration.list_inbound_handlers(), integration.remove_inbound(text),
	integration.reprocess_inbound(bigint),
	integration.reprocess_inbound_events(bigint, text, text, timestamptz)
	FROM PUBLIC;
