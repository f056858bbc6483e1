------------------------------------------------------------------------------------------
-- Connector calls (appended to integration.sql by the Makefile, after connectors.sql;
-- docs/connectors.md#calls).
--
-- call_connector() queues a call to a connector's API in the caller's transaction.  The
-- worker builds it through the kind's request adapter, authenticates and sends it with
-- its HTTP client, judges the response through the kind's response adapter, retries
-- what the kind calls retriable, and records the outcome here (src/call_job.c,
-- src/call_store.c, src/connector_request.c).  A call that ends writes an inbound
-- event, <kind>.call.succeeded or <kind>.call.failed, for the application's handlers.
--
-- The idempotency key is fixed when the call is queued and sent with every attempt,
-- after a crash of the worker too, in the header the kind names
-- (connector_kinds.idempotency_header).
------------------------------------------------------------------------------------------

CREATE TABLE integration.connector_calls (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	connector_id	bigint NOT NULL,
	operation		text NOT NULL,
	payload			jsonb NOT NULL DEFAULT '{}',
	idempotency_key	text COLLATE "C" NOT NULL DEFAULT pg_catalog.gen_random_uuid()::text,
	-- Set by the connector_call_written trigger: who queued the call.
	queued_by		regrole NOT NULL DEFAULT CURRENT_USER::regrole,
	status			text NOT NULL DEFAULT 'pending',
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz DEFAULT pg_catalog.now(),
	lease_expires_at timestamptz,
	last_attempt_at	timestamptz,
	last_status_code integer,
	result			jsonb,
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	finished_at		timestamptz,
	-- A page of a sync run (sql/sync.sql): the stream it pulls; NULL: an ordinary call.
	sync_stream		text COLLATE "C",
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, connector_id) REFERENCES integration.connectors (tenant_id, id),
	-- One call per key and connector: call_connector() answers a repeated key with the
	-- call it made first.
	CONSTRAINT connector_calls_idempotency_key UNIQUE (tenant_id, connector_id, idempotency_key),
	CONSTRAINT connector_calls_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT connector_calls_operation_check CHECK (length(operation) BETWEEN 1 AND 1000),
	-- Visible ASCII: it is sent as a header value.  Stripe takes up to 255 characters.
	CONSTRAINT connector_calls_idempotency_key_check CHECK (idempotency_key ~ '^[!-~]{1,255}$'),
	CONSTRAINT connector_calls_status_check
		CHECK (status IN ('pending', 'sending', 'succeeded', 'failed')),
	CONSTRAINT connector_calls_attempts_check CHECK (attempts >= 0),
	CONSTRAINT connector_calls_scheduled_check
		CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	CONSTRAINT connector_calls_lease_check
		CHECK ((status = 'sending') = (lease_expires_at IS NOT NULL)),
	CONSTRAINT connector_calls_finished_check
		CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)),
	-- Operation pull is a sync run's page, and only that.
	CONSTRAINT connector_calls_sync_stream_check
		CHECK ((operation = 'pull') = (sync_stream IS NOT NULL))
);
COMMENT ON TABLE integration.connector_calls IS
	'Calls to connectors'' APIs queued by call_connector(), one row each, and what became of them: pending (next_attempt_at), sending (an attempt in flight, until lease_expires_at), succeeded (result) or failed (last_error).';
COMMENT ON COLUMN integration.connector_calls.operation IS
	'What the kind''s request adapter is asked to do, e.g. ''POST /orders'' for the generic kind.';
COMMENT ON COLUMN integration.connector_calls.idempotency_key IS
	'Sent with every attempt of the call in the kind''s idempotency_header, the same after a crash of the worker; given to call_connector() or generated (a UUID).';
COMMENT ON COLUMN integration.connector_calls.queued_by IS
	'The role that queued the call: the worker runs the kind''s adapters for it as this role, with its tenant selected.';
COMMENT ON COLUMN integration.connector_calls.attempts IS
	'Attempts started, an attempt cut short by a crash of the worker included.';
COMMENT ON COLUMN integration.connector_calls.sync_stream IS
	'For a page of a sync run (operation pull, queued by sync_now() or the schedule): the stream pulled; when the call ends, its page is processed in the same transaction (integration.sync_streams). NULL: an ordinary call.';
COMMENT ON COLUMN integration.connector_calls.result IS
	'What the kind''s response adapter made of the last response (for the generic kind, its JSON body).';

-- Due calls per connector, for the worker's claims (src/call_store.c) and the backlog.
CREATE INDEX connector_calls_pending_idx
	ON integration.connector_calls (tenant_id, connector_id, next_attempt_at, id)
	WHERE status = 'pending';
-- Attempts in flight, for the worker to take back those of a worker that died.
CREATE INDEX connector_calls_sending_idx ON integration.connector_calls (lease_expires_at)
	WHERE status = 'sending';
-- Failures per connector, for the backlog view.
CREATE INDEX connector_calls_failed_idx
	ON integration.connector_calls (tenant_id, connector_id, finished_at)
	WHERE status = 'failed';
-- Retention (src/retention_connectors.c) walks the finished calls across tenants, by
-- when they finished; like inbound_events_expiry_idx, one entry per finished call, added
-- by a write that was never a HOT update.
CREATE INDEX connector_calls_expiry_idx ON integration.connector_calls (finished_at, id)
	WHERE finished_at IS NOT NULL;
-- list_connector_calls() lists newest first, by id: one index per filter, each ending in
-- id, so that every filter reads its first rows in order and stops at the limit however
-- rare its value (_list_connector_calls_sql()).  The claim and the outcome of a call
-- change status, a column of the partial indexes above, and were never HOT updates:
-- each costs these an entry, as the insert does.  Keys all distinct: no deduplication.
CREATE INDEX connector_calls_connector_idx ON integration.connector_calls (tenant_id, connector_id, id)
	WITH (deduplicate_items = off);
CREATE INDEX connector_calls_status_idx ON integration.connector_calls (tenant_id, status, id)
	WITH (deduplicate_items = off);
CREATE INDEX connector_calls_created_idx ON integration.connector_calls (tenant_id, created_at, id)
	WITH (deduplicate_items = off);

-- A call runs its kind's adapters as whoever queued it: nobody else may name that role
-- (a superuser may, e.g. in a restore).
CREATE FUNCTION integration._connector_call_written() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (TG_OP = 'INSERT' OR NEW.queued_by IS DISTINCT FROM OLD.queued_by)
	   AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false) THEN
		NEW.queued_by := current_user::regrole;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._connector_call_written() IS
	'Row trigger on connector_calls: queued_by is the role that wrote it, unless a superuser names another (internal).';
CREATE TRIGGER connector_call_written BEFORE INSERT OR UPDATE OF queued_by
	ON integration.connector_calls
	FOR EACH ROW EXECUTE FUNCTION integration._connector_call_written();

CREATE FUNCTION integration._wake_calls_at_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'integration_wake_calls_at_commit'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration._wake_calls_at_commit() IS
	'Wakes the worker for connector calls when the transaction commits (internal).';

CREATE FUNCTION integration.call_connector(connector_id bigint, operation text, payload jsonb,
										   idempotency_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	c integration.connectors;
	fn text;
	body jsonb := coalesce(call_connector.payload, '{}');
	key text := coalesce(call_connector.idempotency_key, gen_random_uuid()::text);
	call_id bigint;
	first integration.connector_calls;
BEGIN
	IF call_connector.connector_id IS NULL OR call_connector.operation IS NULL THEN
		RAISE EXCEPTION 'connector_id and operation must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF length(call_connector.operation) NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'invalid operation'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An operation has 1 to 1000 characters.';
	END IF;
	IF call_connector.operation = 'pull' THEN
		RAISE EXCEPTION 'operation pull is reserved for sync runs'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A pull call is a page of a stream''s sync run, queued by the run and processed when it ends.',
				  HINT = 'Start a run with integration.sync_now(connector_id, stream).';
	END IF;
	IF key !~ '^[!-~]{1,255}$' THEN
		RAISE EXCEPTION 'invalid idempotency key'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An idempotency key is 1 to 255 visible ASCII characters, without spaces: it is sent as a header value.';
	END IF;
	SELECT * INTO c FROM integration.connectors x
	 WHERE x.tenant_id = tenant AND x.id = call_connector.connector_id AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(call_connector.connector_id);
	END IF;
	SELECT k.build_request_function INTO fn
	  FROM integration.connector_kinds k WHERE k.name = c.kind;
	IF fn IS NULL THEN
		RAISE EXCEPTION 'connector kind % makes no API calls', c.kind
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'The kind has no build_request adapter.';
	END IF;
	-- The kind names it by signature (sql/connectors.sql), which a rename breaks.
	IF to_regprocedure(fn) IS NULL THEN
		RAISE EXCEPTION 'function % of connector kind "%" does not exist', fn, c.kind
			USING ERRCODE = 'undefined_function',
				  DETAIL = 'Column build_request_function of the kind names the function by signature: it was renamed, moved or dropped since the kind was registered.',
				  HINT = 'Register the kind again with integration.register_connector_kind(..., replace => true).';
	END IF;
	fn := to_regprocedure(fn)::oid::regproc::text;

	-- The request is built now too, in the caller's transaction, so that an operation or
	-- payload the kind refuses is the caller's error at once, not a failed call later.
	-- The worker builds it again when it sends it, from the connector as it is then.
	EXECUTE format('SELECT %s($1, $2, $3, $4)', fn)
		USING integration._connector_context(c), call_connector.operation, body, key;

	INSERT INTO integration.connector_calls AS k (connector_id, operation, payload, idempotency_key)
	VALUES (c.id, call_connector.operation, body, key)
	ON CONFLICT ON CONSTRAINT connector_calls_idempotency_key DO NOTHING
	RETURNING k.id INTO call_id;
	IF call_id IS NULL THEN
		-- The key was used before: the same call is that call; another is an error, as
		-- the platforms that take idempotency keys answer it.
		SELECT * INTO first FROM integration.connector_calls k
		 WHERE k.tenant_id = tenant AND k.connector_id = c.id AND k.idempotency_key = key;
		IF first.operation = call_connector.operation AND first.payload = body THEN
			RETURN first.id;
		END IF;
		RAISE EXCEPTION 'idempotency key "%" was used for another call to connector %', key, c.id
			USING ERRCODE = 'unique_violation',
				  DETAIL = format('Call %s has that key, with another operation or payload.', first.id),
				  HINT = 'Use a new key for a new call.';
	END IF;
	PERFORM integration._wake_calls_at_commit();
	RETURN call_id;
END
$$;
COMMENT ON FUNCTION integration.call_connector(bigint, text, jsonb, text) IS
	'Queues a call of operation with payload to one of the current tenant''s connectors, in the caller''s transaction, for the worker to make; returns its id. The idempotency key (generated when NULL) is sent with every attempt; the same key, operation and payload again return the first call.';

-- The statement list_connector_calls() runs, written for the filters given and planned
-- for their values by EXECUTE, as _list_deliveries_sql() does: one fixed statement with
-- "filter IS NULL OR ..." had one plan for every filter, which walked the tenant's calls
-- newest first and tested each, all of them for a rare value (30-39 ms at 200,000).
-- Each filter has an index ending in id (a call a sync page, not a record, so they cost
-- little), and since counts the calls queued that recently through
-- connector_calls_created_idx first, up to a thousand.
CREATE FUNCTION integration._list_connector_calls_sql(tenant text, "limit" integer,
													  connector_id bigint, status text,
													  since timestamptz, before_id bigint)
	RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w text := format('k.tenant_id = %L', tenant);
	recent bigint[];
BEGIN
	IF connector_id IS NOT NULL THEN
		w := w || format(' AND k.connector_id = %L', connector_id);
	END IF;
	IF status IS NOT NULL THEN
		w := w || format(' AND k.status = %L', status);
	END IF;
	IF before_id IS NOT NULL THEN
		-- A keyset page: the calls after the last one listed, through the same index.
		w := w || format(' AND k.id < %L', before_id);
	END IF;
	IF since IS NOT NULL THEN
		SELECT pg_catalog.array_agg(r.id) INTO recent
		  FROM (SELECT k.id FROM integration.connector_calls k
				 WHERE k.tenant_id = tenant AND k.created_at >= since
				 ORDER BY k.created_at LIMIT 1001) r;
		IF coalesce(pg_catalog.cardinality(recent), 0) <= 1000 THEN
			recent := coalesce(recent, '{}');
		ELSE
			recent := NULL;
			w := w || format(' AND k.created_at - %L::timestamptz >= interval ''0''', since);
		END IF;
	END IF;
	IF recent IS NOT NULL THEN
		-- At most a thousand rows, each looked up by key, then sorted: tested in id
		-- order instead, the planner may walk the tenant's rows newest first for them.
		RETURN format('SELECT k.* FROM pg_catalog.unnest(%L::bigint[]) AS r(id)'
					  ' CROSS JOIN LATERAL (SELECT * FROM integration.connector_calls k'
					  ' WHERE k.tenant_id = %L AND k.id = r.id OFFSET 0) AS k'
					  ' WHERE %s ORDER BY k.id DESC LIMIT %s',
					  recent, tenant, w, greatest(coalesce("limit", 0), 0));
	END IF;
	RETURN format('SELECT k.* FROM integration.connector_calls k WHERE %s ORDER BY k.id DESC LIMIT %s',
				  w, greatest(coalesce("limit", 0), 0));
END
$$;
COMMENT ON FUNCTION integration._list_connector_calls_sql(text, integer, bigint, text, timestamptz, bigint) IS
	'The statement list_connector_calls() runs for a tenant and its arguments (internal; the tests EXPLAIN it).';

CREATE FUNCTION integration.list_connector_calls("limit" integer DEFAULT 100,
												 connector_id bigint DEFAULT NULL,
												 status text DEFAULT NULL,
												 since timestamptz DEFAULT NULL,
												 before_id bigint DEFAULT NULL)
	RETURNS SETOF integration.connector_calls
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY EXECUTE integration._list_connector_calls_sql(
		integration.require_tenant(), list_connector_calls."limit", list_connector_calls.connector_id,
		list_connector_calls.status, list_connector_calls.since, list_connector_calls.before_id);
END
$$;
COMMENT ON FUNCTION integration.list_connector_calls(integer, bigint, text, timestamptz, bigint) IS
	'The current tenant''s newest connector calls, at most "limit", optionally filtered by connector, status and time queued; before_id, the id of the last call of a page, gives the next page.';

-- The payload of a call's completion event, <kind>.call.succeeded or .call.failed (external
-- id call:<id>), that the inbound handlers take: written by the worker when a call ends
-- (src/call_store.c) and by cancel_connector_call(), from the call as it ended.  A SQL
-- function the planner inlines into either statement, which is why it has no SET
-- search_path (that would keep it from being inlined) and names pg_catalog itself.
CREATE FUNCTION integration._call_completion_payload(k integration.connector_calls)
	RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.jsonb_build_object('call_id', k.id, 'operation', k.operation, 'status', k.status,
							  'status_code', k.last_status_code, 'attempts', k.attempts,
							  'idempotency_key', k.idempotency_key, 'result', k.result,
							  'error', k.last_error)
$$;
COMMENT ON FUNCTION integration._call_completion_payload(integration.connector_calls) IS
	'The payload of a finished connector call''s completion event: call_id, operation, status, status_code, attempts, idempotency_key, result, error (internal).';

-- An operator's hands on one call: the current tenant's, locked, an ordinary call (a
-- sync run's page belongs to its run), in status wanted, for what action says (e.g.
-- 'retried').  Raises what the API raises.
CREATE FUNCTION integration._lock_connector_call(id bigint, wanted text, action text)
	RETURNS integration.connector_calls
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k integration.connector_calls;
BEGIN
	SELECT * INTO k FROM integration.connector_calls x
	 WHERE x.tenant_id = integration.require_tenant() AND x.id = _lock_connector_call.id
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'connector call % not found', _lock_connector_call.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_connector_calls() lists the current tenant''s calls.';
	END IF;
	IF k.sync_stream IS NOT NULL THEN
		RAISE EXCEPTION 'connector call % is a page of a sync run', k.id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A sync run''s pages end with their run; the next run resumes from the stream''s cursor.',
				  HINT = 'Start a run with integration.sync_now(connector_id, stream).';
	END IF;
	IF k.status = 'sending' THEN
		RAISE EXCEPTION 'connector call % is being sent right now', k.id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('An attempt is in flight until %s; its outcome decides what comes next.',
								  k.lease_expires_at),
				  HINT = 'Wait for the attempt to end.';
	END IF;
	IF k.status <> wanted THEN
		RAISE EXCEPTION 'connector call % is %', k.id, k.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('Only a %s call can be %s.', wanted, action);
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION integration._lock_connector_call(bigint, text, text) IS
	'Locks one of the current tenant''s connector calls for retry_connector_call() or cancel_connector_call(); raises when it is not found, is a sync run''s page or is in flight (internal).';

-- Again, as the same call: the idempotency key it was queued with goes with every attempt,
-- so a platform that took an earlier attempt (a timeout that was a success) answers this
-- one as a repeat, which a new call_connector() with a new key could not tell it.
CREATE FUNCTION integration.retry_connector_call(id bigint) RETURNS integration.connector_calls
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k integration.connector_calls :=
		integration._lock_connector_call(retry_connector_call.id, 'failed', 'retried');
BEGIN
	IF NOT EXISTS (SELECT FROM integration.connectors c
					WHERE c.tenant_id = k.tenant_id AND c.id = k.connector_id AND c.deleted_at IS NULL) THEN
		PERFORM integration._connector_not_found(k.connector_id);
	END IF;
	-- Its completion event (external id call:<id>) no longer counts for deduplication:
	-- the retry's own is another event for the handlers.
	UPDATE integration.inbound_events e SET dedupe_expired = true
	 WHERE e.tenant_id = k.tenant_id AND e.connector_id = k.connector_id
	   AND e.external_id = 'call:' || k.id AND NOT e.dedupe_expired;
	UPDATE integration.connector_calls x
	   SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
	 WHERE x.tenant_id = k.tenant_id AND x.id = k.id
	RETURNING * INTO k;
	PERFORM integration.log('info', 'api', 'call.retried',
							format('connector call %s queued again', k.id),
							jsonb_build_object('call_id', k.id, 'connector_id', k.connector_id,
											   'last_error', k.last_error));
	PERFORM integration._wake_calls_at_commit();
	RETURN k;
END
$$;
COMMENT ON FUNCTION integration.retry_connector_call(bigint) IS
	'Queues one of the current tenant''s failed connector calls again, due now, with attempts cleared and the same idempotency key; returns it. Its completion event is written again when it ends.';

-- A call that waits (its connector disabled, its circuit open, a retry not yet due) ends
-- as failed, with the completion event the worker would write, so that the
-- application's handlers learn its end as of any other failed call.
CREATE FUNCTION integration.cancel_connector_call(id bigint) RETURNS integration.connector_calls
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k integration.connector_calls :=
		integration._lock_connector_call(cancel_connector_call.id, 'pending', 'cancelled');
BEGIN
	UPDATE integration.connector_calls x
	   SET status = 'failed', next_attempt_at = NULL, finished_at = now(),
		   last_error = format('cancelled by %s', current_user)
	 WHERE x.tenant_id = k.tenant_id AND x.id = k.id
	RETURNING * INTO k;
	INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload)
	SELECT k.tenant_id, k.connector_id, 'call:' || k.id, 'call.failed', c.kind || '.call.failed',
		   integration._call_completion_payload(k)
	  FROM integration.connectors c
	 WHERE c.tenant_id = k.tenant_id AND c.id = k.connector_id;
	PERFORM integration.log('info', 'api', 'call.cancelled',
							format('connector call %s cancelled', k.id),
							jsonb_build_object('call_id', k.id, 'connector_id', k.connector_id,
											   'attempts', k.attempts));
	RETURN k;
END
$$;
COMMENT ON FUNCTION integration.cancel_connector_call(bigint) IS
	'Ends one of the current tenant''s pending connector calls as failed, without another attempt, and writes its completion event <kind>.call.failed; returns it.';

-- What waits for each connector: with row-level security, each tenant's own.
CREATE VIEW integration.connector_call_backlog WITH (security_invoker = true) AS
	SELECT c.tenant_id, c.id AS connector_id, c.name, c.kind, c.is_active,
		   coalesce(w.pending, 0) AS pending,
		   coalesce(w.due, 0) AS due,
		   coalesce(w.sending, 0) AS sending,
		   w.oldest_created_at,
		   w.next_attempt_at,
		   f.failed_last_day,
		   f.last_failed_at
	  FROM integration.connectors c
	  LEFT JOIN LATERAL (
			SELECT count(*) FILTER (WHERE k.status = 'pending') AS pending,
				   count(*) FILTER (WHERE k.status = 'pending' AND k.next_attempt_at <= now()) AS due,
				   count(*) FILTER (WHERE k.status = 'sending') AS sending,
				   min(k.created_at) AS oldest_created_at,
				   min(k.next_attempt_at) AS next_attempt_at
			  FROM integration.connector_calls k
			 WHERE k.tenant_id = c.tenant_id AND k.connector_id = c.id
			   AND k.status IN ('pending', 'sending')) w ON true
	  LEFT JOIN LATERAL (
			SELECT count(*) FILTER (WHERE k.finished_at > now() - interval '1 day') AS failed_last_day,
				   max(k.finished_at) AS last_failed_at
			  FROM integration.connector_calls k
			 WHERE k.tenant_id = c.tenant_id AND k.connector_id = c.id AND k.status = 'failed') f ON true
	 WHERE c.deleted_at IS NULL;
COMMENT ON VIEW integration.connector_call_backlog IS
	'Per live connector of the current tenant: calls pending (and of those, due now), in flight, when the oldest waiting call was queued, when the next is due, and failures in the last day.';

-- Each connector's circuit and rate as the worker holds them (integration._target_health(),
-- shared memory) or, between workers, as last stored (target_circuits): the limiter of
-- webhook endpoints (endpoint_health), applied per connector.
CREATE VIEW integration.connector_health WITH (security_invoker = true) AS
	SELECT c.tenant_id, c.id AS connector_id, c.name, c.kind, c.is_active,
		   coalesce(h.circuit, t.state, 'closed') AS circuit,
		   CASE WHEN coalesce(h.circuit, t.state, 'closed') <> 'closed'
				THEN coalesce(h.opened_at, t.opened_at) END AS opened_at,
		   CASE WHEN coalesce(h.circuit, t.state, 'closed') = 'open'
				THEN coalesce(h.next_probe_at, t.next_probe_at) END AS next_probe_at,
		   coalesce(h.requests, 0) AS requests,
		   coalesce(h.failures, 0) AS failures,
		   CASE WHEN h.requests > 0 THEN round(h.failures::numeric / h.requests, 3) END AS failure_ratio,
		   r.rate_limit,
		   CASE WHEN h.target_id IS NULL THEN r.rate_limit::float8 ELSE h.effective_rate END AS effective_rate,
		   coalesce(h.in_flight, 0) AS in_flight,
		   coalesce(h.queued, 0) AS queued,
		   greatest(h.last_success_at, t.last_success_at) AS last_success_at,
		   greatest(h.last_failure_at, t.last_failure_at) AS last_failure_at
	  FROM integration.connectors c
	 CROSS JOIN LATERAL (
			SELECT CASE WHEN jsonb_typeof(c.settings -> 'rate_limit') = 'number'
						THEN (c.settings ->> 'rate_limit')::numeric::integer END AS rate_limit) r
	  LEFT JOIN integration.target_circuits t
			 ON t.tenant_id = c.tenant_id AND t.kind = 'connector' AND t.target_id = c.id
	  LEFT JOIN integration._target_health('connector') h
			 ON h.tenant_id = c.tenant_id AND h.target_id = c.id
	 WHERE c.deleted_at IS NULL;
COMMENT ON VIEW integration.connector_health IS
	'Per live connector of the current tenant: its circuit (closed, open, half_open), when it opened and the next probe, calls and failures in integration.circuit_window and their ratio, the configured settings.rate_limit and the effective rate after 429 answers (NULL: unlimited), calls in flight and queued in the worker, and the last success and failure.';

REVOKE ALL ON TABLE integration.connector_calls, integration.connector_call_backlog,
	integration.connector_health FROM PUBLIC;
REVOKE ALL ON FUNCTION
	integration._connector_call_written(), integration._wake_calls_at_commit(),
	integration.call_connector(bigint, text, jsonb, text),
	integration._list_connector_calls_sql(text, integer, bigint, text, timestamptz, bigint),
	integration.list_connector_calls(integer, bigint, text, timestamptz, bigint),
	integration._lock_connector_call(bigint, text, text),
	integration._call_completion_payload(integration.connector_calls),
	integration.retry_connector_call(bigint), integration.cancel_connector_call(bigint)
	FROM PUBLIC;
