------------------------------------------------------------------------------------------
-- Sync: incremental pull of connectors' records (appended after calls.sql by the
-- Makefile; docs/connectors.md#sync-incremental-pull).
--
-- A kind names the streams it pulls (connector_kinds.pull_streams); every connector of
-- it has one integration.sync_streams row per stream, with the stream's cursor (the
-- latest updated_at a finished run saw) and the state of its run.  A run is a chain of
-- connector calls of operation pull, one per page: the kind's build_request is given
-- {"stream", "since" (the cursor minus settings.sync_overlap), "page" (what the last
-- page said comes next)} and its interpret_response returns the page, {"records",
-- "next_page", "wait"}.  So a page is queued, rate-limited, sent, retried (429 and its
-- Retry-After, 5xx) and taken back after a crash of the worker by the call machinery
-- (sql/calls.sql, src/call_job.c), and nothing here sends anything.
--
-- A page is processed when its call ends, by the sync_page_ended trigger, in the
-- transaction that records the call's outcome: each record goes through the gate
-- (_sync_gate()), each change becomes an inbound event for the handlers, and either the
-- next page's call is queued or the run ends and the cursor moves.  The call row and
-- the stream's row move together, so a crash anywhere leaves either the page not
-- recorded (its call is sent again) or recorded with all its consequences.
--
-- Runs start from integration.sync_now() in the caller's transaction, or from the
-- worker when a stream's next_run_at comes (src/sync_schedule.c, every
-- settings.sync_interval).  receive_webhook() passes webhook events about records
-- (the kind's record_function) through the same gate, so a change that arrives both
-- ways is handed to the handlers once.
------------------------------------------------------------------------------------------

-- The records pulled or received, one row per record of a stream of a connector: its
-- latest version known.
CREATE TABLE integration.external_records (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	connector_id	bigint NOT NULL,
	stream			text COLLATE "C" NOT NULL,
	external_id		text COLLATE "C" NOT NULL,
	external_updated_at timestamptz NOT NULL,
	payload			jsonb NOT NULL,
	content_hash	bytea NOT NULL,
	source			text NOT NULL,
	synced_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, connector_id, stream, external_id),
	-- No foreign key to connectors: the triggers below check what it would, a
	-- statement at a time (src/connector_references.c, as for inbound_events).
	CONSTRAINT external_records_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT external_records_external_id_check CHECK (length(external_id) BETWEEN 1 AND 255),
	CONSTRAINT external_records_content_hash_check CHECK (length(content_hash) = 32),
	CONSTRAINT external_records_source_check CHECK (source IN ('pull', 'webhook'))
);
COMMENT ON TABLE integration.external_records IS
	'The latest known version of each record of each connector''s pull streams, pulled or received by webhook: what decides whether a record seen again is a change (docs/connectors.md#sync-incremental-pull).';
COMMENT ON COLUMN integration.external_records.external_updated_at IS
	'The platform''s moment of this version (e.g. Shopify''s updated_at).';
COMMENT ON COLUMN integration.external_records.content_hash IS
	'SHA-256 of payload::text: a version pulled again with another content but the same moment (two changes in one second) is a change.';
COMMENT ON COLUMN integration.external_records.source IS
	'Where the stored version came from: pull or webhook.';
CREATE TRIGGER external_records_references_checked AFTER INSERT ON integration.external_records
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_connector_references();
-- Every UPDATE, not UPDATE OF the key (see inbound_events_rekeyed_checked).
CREATE TRIGGER external_records_rekeyed_checked AFTER UPDATE
	ON integration.external_records
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
					   OR OLD.connector_id IS DISTINCT FROM NEW.connector_id)
	EXECUTE FUNCTION integration.check_connector_references();
DO $$
BEGIN
	ALTER TABLE integration.external_records ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END
$$;

-- Each connector's streams: the cursor, the run under way, and figures.
CREATE TABLE integration.sync_streams (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	connector_id	bigint NOT NULL,
	stream			text COLLATE "C" NOT NULL,
	cursor_at		timestamptz,
	run_since		timestamptz,
	run_high		timestamptz,
	run_page		jsonb,
	status			text NOT NULL DEFAULT 'idle',
	current_call_id	bigint,
	-- Set by the sync_stream_written trigger: whose role runs the kind's adapters.
	queued_by		regrole NOT NULL DEFAULT CURRENT_USER::regrole,
	next_run_at		timestamptz,
	last_run_started_at timestamptz,
	last_run_finished_at timestamptz,
	runs			bigint NOT NULL DEFAULT 0,
	pages			bigint NOT NULL DEFAULT 0,
	records_seen	bigint NOT NULL DEFAULT 0,
	records_changed	bigint NOT NULL DEFAULT 0,
	run_pages		integer NOT NULL DEFAULT 0,
	run_records_seen bigint NOT NULL DEFAULT 0,
	run_records_changed bigint NOT NULL DEFAULT 0,
	errors			bigint NOT NULL DEFAULT 0,
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, connector_id, stream),
	FOREIGN KEY (tenant_id, connector_id) REFERENCES integration.connectors (tenant_id, id),
	CONSTRAINT sync_streams_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT sync_streams_status_check CHECK (status IN ('idle', 'running')),
	CONSTRAINT sync_streams_running_check
		CHECK ((status = 'running') = (current_call_id IS NOT NULL)),
	-- A running stream is not scheduled: its next run is set when this one ends.
	CONSTRAINT sync_streams_next_run_check CHECK (status = 'idle' OR next_run_at IS NULL)
);
COMMENT ON TABLE integration.sync_streams IS
	'Each connector''s pull streams (one row per stream of its kind, or of settings.sync_streams): the cursor, the run under way (status running, current_call_id the page''s call), when the next scheduled run starts, and figures. Read it through integration.sync_state.';
COMMENT ON COLUMN integration.sync_streams.cursor_at IS
	'The latest updated_at of the records the last finished run saw; the next run pulls from it minus settings.sync_overlap. NULL: never pulled (the first run pulls everything).';
COMMENT ON COLUMN integration.sync_streams.run_since IS
	'The run''s since: cursor_at minus the overlap when it started.';
COMMENT ON COLUMN integration.sync_streams.run_high IS
	'The latest updated_at the run has seen so far: the cursor when it ends.';
COMMENT ON COLUMN integration.sync_streams.run_page IS
	'The page the run''s current call pulls, as the last page''s next_page said (NULL: the first).';
COMMENT ON COLUMN integration.sync_streams.queued_by IS
	'The role whose calls pull the stream: the worker runs the kind''s adapters as this role, with its tenant selected (the connector''s creator, or the last caller of sync_now()).';
COMMENT ON COLUMN integration.sync_streams.next_run_at IS
	'When the worker starts the next scheduled run (idle streams only); NULL: none (settings.sync_interval 0).';
COMMENT ON COLUMN integration.sync_streams.pages IS
	'Pages processed, over all runs; run_pages, run_records_seen and run_records_changed count the current or last run.';

-- The worker's "what next, and when": idle streams by when they are due.
CREATE INDEX sync_streams_due_idx ON integration.sync_streams (next_run_at)
	WHERE status = 'idle' AND next_run_at IS NOT NULL;

-- Whoever writes a stream's queued_by names their own role, as for a call (a superuser
-- may name another).
CREATE TRIGGER sync_stream_written BEFORE INSERT OR UPDATE OF queued_by
	ON integration.sync_streams
	FOR EACH ROW EXECUTE FUNCTION integration._connector_call_written();

CREATE VIEW integration.sync_state WITH (security_invoker = true) AS
	SELECT s.tenant_id, s.connector_id, c.name AS connector_name, c.kind, s.stream, s.status,
		   s.cursor_at, s.last_run_started_at, s.last_run_finished_at, s.next_run_at,
		   s.runs, s.pages, s.records_seen, s.records_changed,
		   s.run_pages, s.run_records_seen, s.run_records_changed,
		   s.errors, s.last_error, s.current_call_id
	  FROM integration.sync_streams s
	  JOIN integration.connectors c ON c.tenant_id = s.tenant_id AND c.id = s.connector_id
	 WHERE c.deleted_at IS NULL;
COMMENT ON VIEW integration.sync_state IS
	'Per live connector of the current tenant and stream: status (idle or running), the cursor, the last run''s start and end, the next scheduled run, runs, pages, records seen and changed (in all and in the current or last run), errors and the last one, and the call of the page being pulled.';

------------------------------------------------------------------------------------------
-- Settings: sync_interval, sync_overlap (seconds, or interval text) and sync_streams.
------------------------------------------------------------------------------------------

-- A duration setting: a number of seconds, or interval text; NULL when it is neither,
-- or negative.
CREATE FUNCTION integration._sync_duration(value jsonb) RETURNS interval
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d interval;
BEGIN
	CASE jsonb_typeof(value)
	WHEN 'number' THEN
		IF (value #>> '{}')::numeric BETWEEN 0 AND 31536000 THEN
			RETURN make_interval(secs => (value #>> '{}')::float8);
		END IF;
	WHEN 'string' THEN
		BEGIN
			d := (value #>> '{}')::interval;
		EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
			RETURN NULL;
		END;
		IF d >= interval '0' AND d <= interval '365 days' THEN
			RETURN d;
		END IF;
	ELSE
		NULL;
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration._sync_duration(jsonb) IS
	'A sync duration setting as an interval: a number of seconds or interval text, from 0 to 365 days; NULL otherwise (internal).';

-- Between scheduled runs (NULL: none).  Read by the worker too, so a value written by
-- hand past the checks falls back to the default rather than failing anything.
CREATE FUNCTION integration._sync_interval(settings jsonb) RETURNS interval
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT nullif(coalesce(integration._sync_duration(settings -> 'sync_interval'),
						   interval '300 seconds'), interval '0')
$$;
COMMENT ON FUNCTION integration._sync_interval(jsonb) IS
	'The time between a stream''s scheduled runs from a connector''s settings.sync_interval (default 300 seconds); NULL for 0: no scheduled runs (internal).';

CREATE FUNCTION integration._sync_overlap(settings jsonb) RETURNS interval
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(integration._sync_duration(settings -> 'sync_overlap'), interval '60 seconds')
$$;
COMMENT ON FUNCTION integration._sync_overlap(jsonb) IS
	'How far before its cursor a run starts, from a connector''s settings.sync_overlap (default 60 seconds) (internal).';

-- The streams a connector pulls: its kind's, or those of them settings.sync_streams names.
CREATE FUNCTION integration._sync_stream_names(kind_streams text[], settings jsonb) RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN kind_streams IS NULL THEN '{}'::text[]
		WHEN jsonb_typeof(settings -> 'sync_streams') = 'array'
			THEN ARRAY(SELECT s FROM unnest(kind_streams) WITH ORDINALITY AS k(s, o)
						WHERE settings -> 'sync_streams' ? s ORDER BY o)
		ELSE kind_streams
	END
$$;
COMMENT ON FUNCTION integration._sync_stream_names(text[], jsonb) IS
	'The streams a connector pulls: its kind''s pull_streams, restricted to settings.sync_streams when that is given (internal).';

-- Raises invalid_parameter_value, saying what is wrong, for sync settings that are not.
CREATE FUNCTION integration._check_sync_settings(kind text, settings jsonb) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	streams text[] := (SELECT k.pull_streams FROM integration.connector_kinds k WHERE k.name = kind);
	k text;
	bad text;
BEGIN
	FOREACH k IN ARRAY ARRAY['sync_interval', 'sync_overlap'] LOOP
		CONTINUE WHEN NOT settings ? k;
		IF integration._sync_duration(settings -> k) IS NULL THEN
			RAISE EXCEPTION 'invalid settings.%: %', k, settings -> k
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('settings.%s is a number of seconds or an interval, from 0 to 365 days.', k),
					  HINT = CASE k WHEN 'sync_interval'
								THEN 'For example 300 or "5 minutes"; 0 turns scheduled runs off (integration.sync_now() still starts runs).'
								ELSE 'For example 60 or "1 minute": how far before its cursor each run starts pulling.' END;
		END IF;
	END LOOP;
	IF settings ? 'sync_streams' THEN
		IF jsonb_typeof(settings -> 'sync_streams') <> 'array'
		   OR EXISTS (SELECT FROM jsonb_array_elements(settings -> 'sync_streams') AS e
					   WHERE jsonb_typeof(e) <> 'string') THEN
			RAISE EXCEPTION 'settings.sync_streams must be an array of stream names'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = CASE WHEN streams IS NULL THEN format('Connector kind %s pulls nothing.', kind)
								  ELSE format('The %s kind''s streams: %s.', kind, array_to_string(streams, ', ')) END;
		END IF;
		SELECT e INTO bad FROM jsonb_array_elements_text(settings -> 'sync_streams') AS e
		 WHERE streams IS NULL OR NOT e = ANY (streams) LIMIT 1;
		IF bad IS NOT NULL THEN
			RAISE EXCEPTION 'unknown stream "%" in settings.sync_streams', bad
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'settings.sync_streams restricts the connector to some of its kind''s streams.',
					  HINT = CASE WHEN streams IS NULL THEN format('Connector kind %s pulls nothing.', kind)
								  ELSE format('The %s kind''s streams: %s.', kind, array_to_string(streams, ', ')) END;
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION integration._check_sync_settings(text, jsonb) IS
	'Raises invalid_parameter_value unless a connector''s settings.sync_interval and sync_overlap are durations (seconds or interval text, 0 to 365 days) and its sync_streams an array of its kind''s streams (internal).';

-- When a stream of connector c runs next on schedule, from now; NULL: never.
CREATE FUNCTION integration._sync_next_run(c integration.connectors) RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN CASE WHEN c.deleted_at IS NULL THEN now() + integration._sync_interval(c.settings) END;
COMMENT ON FUNCTION integration._sync_next_run(integration.connectors) IS
	'The next scheduled run of a connector''s stream, counted from now: NULL when runs are not scheduled or the connector is deleted (internal).';

-- A since for an adapter: ISO 8601 in UTC, whole seconds (rounded down, which only widens
-- the window).
CREATE FUNCTION integration._sync_iso(t timestamptz) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
COMMENT ON FUNCTION integration._sync_iso(timestamptz) IS
	'A moment as adapters are given it: ISO 8601 in UTC, whole seconds, e.g. 2025-01-01T00:00:00Z (internal).';

------------------------------------------------------------------------------------------
-- The connectors' streams follow their kind and settings.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._connector_sync_checked() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- A restore loads the settings as dumped (sql/dump.sql): valid when written, they
	-- may name a stream the kind, registered again since, no longer has.
	IF NEW.settings ?| ARRAY['sync_interval', 'sync_overlap', 'sync_streams']
	   AND NOT integration._restoring() THEN
		PERFORM integration._check_sync_settings(NEW.kind, NEW.settings);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._connector_sync_checked() IS
	'Row trigger on connectors: raises invalid_parameter_value for sync settings that are not valid (internal).';
CREATE TRIGGER connector_sync_checked BEFORE INSERT OR UPDATE OF kind, settings
	ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration._connector_sync_checked();

-- One row per stream the connector pulls; a stream left out by settings.sync_streams
-- loses its row (and its cursor).  New streams run first one interval after they
-- appear (sync_now() starts one at once); a new interval counts from the last run.
CREATE FUNCTION integration._connector_sync_streams() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	wanted text[];
	iv interval;
BEGIN
	-- A restore loads the streams as dumped, after their connectors (sql/dump.sql).
	IF integration._restoring() THEN
		RETURN NULL;
	END IF;
	IF NEW.deleted_at IS NOT NULL THEN
		-- Deleted: its streams go, and with them any run.  A page in flight when this
		-- commits finds no stream and is not processed (_sync_page_ended()), so no
		-- further page is queued; a page queued fails with its call, unsent (a call of a
		-- deleted connector, src/call_job.c).  A handful of rows, unlike its records,
		-- which the retention pass removes in batches (src/retention_connectors.c).
		DELETE FROM integration.sync_streams s
		 WHERE s.tenant_id = NEW.tenant_id AND s.connector_id = NEW.id;
		RETURN NULL;
	END IF;
	wanted := integration._sync_stream_names(
		(SELECT k.pull_streams FROM integration.connector_kinds k WHERE k.name = NEW.kind), NEW.settings);
	iv := integration._sync_interval(NEW.settings);
	IF TG_OP = 'UPDATE' THEN
		DELETE FROM integration.sync_streams s
		 WHERE s.tenant_id = NEW.tenant_id AND s.connector_id = NEW.id AND s.stream <> ALL (wanted);
		IF OLD.settings -> 'sync_interval' IS DISTINCT FROM NEW.settings -> 'sync_interval' THEN
			UPDATE integration.sync_streams s
			   SET next_run_at = coalesce(s.last_run_finished_at, now()) + iv
			 WHERE s.tenant_id = NEW.tenant_id AND s.connector_id = NEW.id AND s.status = 'idle'
			   AND s.next_run_at IS DISTINCT FROM coalesce(s.last_run_finished_at, now()) + iv;
		END IF;
	END IF;
	IF cardinality(wanted) > 0 THEN
		INSERT INTO integration.sync_streams AS s (tenant_id, connector_id, stream, next_run_at)
		SELECT NEW.tenant_id, NEW.id, w, now() + iv FROM unnest(wanted) AS w
		ON CONFLICT ON CONSTRAINT sync_streams_pkey DO NOTHING;
		-- The worker looks at the schedule again.
		PERFORM integration._wake_calls_at_commit();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration._connector_sync_streams() IS
	'Row trigger on connectors: one sync_streams row per stream the connector pulls, scheduled by settings.sync_interval; none once it is deleted, which stops a run (internal).';
CREATE TRIGGER connector_sync_streams AFTER INSERT OR UPDATE OF kind, settings, deleted_at
	ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration._connector_sync_streams();

-- A kind registered again with other streams: its connectors' streams follow, run by
-- the role that pulls the connector's other streams (a connector that pulls nothing yet
-- gets its rows from sync_now(), as its caller's).  Superusers alone write kinds, and
-- see every tenant's connectors.
CREATE FUNCTION integration._connector_kind_streams() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM integration.sync_streams s
	 USING integration.connectors c
	 WHERE c.tenant_id = s.tenant_id AND c.id = s.connector_id AND c.kind = NEW.name
	   AND NOT s.stream = ANY (integration._sync_stream_names(NEW.pull_streams, c.settings));
	INSERT INTO integration.sync_streams AS s (tenant_id, connector_id, stream, queued_by, next_run_at)
	SELECT c.tenant_id, c.id, w.stream, q.queued_by, now() + integration._sync_interval(c.settings)
	  FROM integration.connectors c
	 CROSS JOIN LATERAL (SELECT x.queued_by FROM integration.sync_streams x
						  WHERE x.tenant_id = c.tenant_id AND x.connector_id = c.id LIMIT 1) q
	 CROSS JOIN LATERAL unnest(integration._sync_stream_names(NEW.pull_streams, c.settings)) AS w(stream)
	 WHERE c.kind = NEW.name AND c.deleted_at IS NULL
	ON CONFLICT ON CONSTRAINT sync_streams_pkey DO NOTHING;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration._connector_kind_streams() IS
	'Row trigger on connector_kinds: when a kind''s pull_streams change, its connectors'' sync_streams rows follow (internal).';
CREATE TRIGGER connector_kind_streams AFTER UPDATE OF pull_streams ON integration.connector_kinds
	FOR EACH ROW WHEN (OLD.pull_streams IS DISTINCT FROM NEW.pull_streams)
	EXECUTE FUNCTION integration._connector_kind_streams();

------------------------------------------------------------------------------------------
-- The gate: whether a version of a record is a change.
------------------------------------------------------------------------------------------

-- The gate's judgement of a version (updated_at, hash) from source ('pull' or 'webhook')
-- of a record stored as (stored_at, stored_hash, stored_source): a later updated_at
-- changed it, an earlier one is stale; the same one with another content is a revision
-- when both are pulled (two updates within the platform's second), else the same
-- change seen twice.  A pulled version over a webhook's of the same moment is a
-- revision too when same_form says the webhook's payload is the record as the pull
-- renders it (the kind's records_as_pulled, and the same top-level keys): else the
-- first change of a second, received by webhook, would hide a second change of that
-- second from the pull for good.  The one rule of _sync_gate() and of a pulled page
-- (internal).
CREATE FUNCTION integration._sync_verdict(updated_at timestamptz, hash bytea, source text,
										  stored_at timestamptz, stored_hash bytea,
										  stored_source text, same_form boolean)
	RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN updated_at > stored_at THEN 'changed'
				WHEN updated_at < stored_at THEN 'stale'
				WHEN hash = stored_hash THEN 'unchanged'
				WHEN source = 'pull' AND stored_source = 'pull' THEN 'revised'
				WHEN source = 'pull' AND stored_source = 'webhook' AND same_form THEN 'revised'
				ELSE 'unchanged' END
$$;
COMMENT ON FUNCTION integration._sync_verdict(timestamptz, bytea, text, timestamptz, bytea, text, boolean) IS
	'changed, stale, unchanged or revised: a version of a record against the one stored; same_form: a stored webhook payload is rendered as the pull renders the record (internal).';

-- Whether a webhook's stored payload and a pulled one are one rendering of the record:
-- the same top-level keys.  A payload with other keys (another API version, or a
-- record function that keeps the webhook's own event, as hubspot's does) is another
-- rendering, whose content tells nothing about a second change.
CREATE FUNCTION integration._sync_same_form(pulled jsonb, stored jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT jsonb_typeof(pulled) = 'object' AND jsonb_typeof(stored) = 'object'
		   AND (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(pulled) AS k)
			   = (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(stored) AS k)
$$;
COMMENT ON FUNCTION integration._sync_same_form(jsonb, jsonb) IS
	'Whether two payloads of a record have the same top-level keys: one rendering of it (internal).';

-- Whether that version is written over the stored one: a change or a revision, and a
-- pulled copy of a version a webhook brought (the platform's own rendering is kept).
CREATE FUNCTION integration._sync_rewrites(updated_at timestamptz, hash bytea, source text,
										   stored_at timestamptz, stored_hash bytea,
										   stored_source text)
	RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT updated_at > stored_at
		   OR (updated_at = stored_at AND source = 'pull'
			   AND (stored_source = 'webhook' OR hash <> stored_hash))
$$;
COMMENT ON FUNCTION integration._sync_rewrites(timestamptz, bytea, text, timestamptz, bytea, text) IS
	'Whether a version of a record replaces the stored one (internal).';

-- A version's content hash: sha256(convert_to(payload::text, 'UTF8')), written in C
-- without the text output's per-character cost (src/content_hash.c).
CREATE FUNCTION integration._content_hash(payload jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'integration_content_hash'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._content_hash(jsonb) IS
	'SHA-256 of a payload''s text in UTF-8, as sha256(convert_to(payload::text, ''UTF8'')): the content hash of external_records (internal).';

-- Upserts a version of a record and says what it was:
--   new        the record was not known;
--   changed    a later updated_at than stored;
--   revised    the same updated_at, another content, over a pulled version: a second
--              change within the platform's clock resolution (pulls only);
--   unchanged  the version stored (by content), or, for a webhook, any version with
--              the stored updated_at; a pulled copy of a version a webhook brought
--              replaces the stored payload, and is not a change;
--   stale      an earlier updated_at than stored: nothing is written.
-- new, changed and revised are changes, handed to the handlers once.  A row lock on the
-- record orders concurrent pages and webhooks of one record.
CREATE FUNCTION integration._sync_gate(tenant_id text, connector_id bigint, stream text,
									   external_id text, updated_at timestamptz,
									   payload jsonb, source text)
	RETURNS text
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	h bytea := integration._content_hash(_sync_gate.payload);
	r integration.external_records;
	verdict text;
BEGIN
	FOR round IN 1..3 LOOP
		INSERT INTO integration.external_records AS x
			(tenant_id, connector_id, stream, external_id, external_updated_at, payload,
			 content_hash, source)
		VALUES (_sync_gate.tenant_id, _sync_gate.connector_id, _sync_gate.stream,
				_sync_gate.external_id, _sync_gate.updated_at, _sync_gate.payload, h,
				_sync_gate.source)
		ON CONFLICT ON CONSTRAINT external_records_pkey DO NOTHING;
		IF FOUND THEN
			RETURN 'new';
		END IF;
		SELECT * INTO r FROM integration.external_records x
		 WHERE x.tenant_id = _sync_gate.tenant_id AND x.connector_id = _sync_gate.connector_id
		   AND x.stream = _sync_gate.stream AND x.external_id = _sync_gate.external_id
		   FOR UPDATE;
		EXIT WHEN FOUND;		-- else deleted meanwhile: insert again
	END LOOP;
	IF r.tenant_id IS NULL THEN
		RAISE EXCEPTION 'record % of stream % keeps changing under the gate', external_id, stream
			USING ERRCODE = 'serialization_failure';
	END IF;

	-- A webhook never revises (several events of one version differ, as hubspot's
	-- propertyChange events do): a second change within a second comes by pull.
	verdict := integration._sync_verdict(_sync_gate.updated_at, h, _sync_gate.source,
										 r.external_updated_at, r.content_hash, r.source, false);
	IF NOT integration._sync_rewrites(_sync_gate.updated_at, h, _sync_gate.source,
									  r.external_updated_at, r.content_hash, r.source) THEN
		RETURN verdict;			-- nothing to write
	END IF;
	UPDATE integration.external_records x
	   SET external_updated_at = _sync_gate.updated_at, payload = _sync_gate.payload,
		   content_hash = h, source = _sync_gate.source, synced_at = now()
	 WHERE x.tenant_id = _sync_gate.tenant_id AND x.connector_id = _sync_gate.connector_id
	   AND x.stream = _sync_gate.stream AND x.external_id = _sync_gate.external_id;
	RETURN verdict;
END
$$;
COMMENT ON FUNCTION integration._sync_gate(text, bigint, text, text, timestamptz, jsonb, text) IS
	'Upserts a version of a record into external_records and returns new, changed or revised (a change), unchanged or stale (not one); the one gate of pulled pages and webhook events (internal).';

-- A record adapter's answer, checked: NULL when it names no record.
CREATE FUNCTION integration._check_external_record(kind text, r integration.external_record)
	RETURNS integration.external_record
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	streams text[] := (SELECT k.pull_streams FROM integration.connector_kinds k WHERE k.name = kind);
BEGIN
	IF r IS NULL OR r.external_id IS NULL THEN
		RETURN NULL;
	END IF;
	IF r.stream IS NULL OR streams IS NULL OR NOT r.stream = ANY (streams) THEN
		RAISE EXCEPTION 'the % record adapter named stream "%"', kind, r.stream
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('The %s kind''s streams: %s.', kind, coalesce(array_to_string(streams, ', '), 'none'));
	END IF;
	IF r.updated_at IS NULL OR length(r.external_id) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'the % record adapter returned a record without updated_at or with an id of more than 255 characters', kind
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN r;
END
$$;
COMMENT ON FUNCTION integration._check_external_record(text, integration.external_record) IS
	'A record adapter''s answer: NULL when it names no record (NULL, or no external_id); raises invalid_parameter_value for a stream the kind does not pull, or no updated_at (internal).';

------------------------------------------------------------------------------------------
-- Runs and pages.
------------------------------------------------------------------------------------------

-- Starts a run of an idle stream: the first page's call queued, in the caller's
-- transaction.  False when the stream is running already or not there.
CREATE FUNCTION integration._sync_start(tenant_id text, connector_id bigint, stream text)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s integration.sync_streams;
	settings jsonb;
	since timestamptz;
	call_id bigint;
BEGIN
	-- Only an idle stream is locked: a running one's row is its pages' to change, and a
	-- lock held here until the caller commits would hold the worker's page back.
	SELECT * INTO s FROM integration.sync_streams x
	 WHERE x.tenant_id = _sync_start.tenant_id AND x.connector_id = _sync_start.connector_id
	   AND x.stream = _sync_start.stream AND x.status = 'idle'
	   FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT c.settings INTO settings FROM integration.connectors c
	 WHERE c.tenant_id = s.tenant_id AND c.id = s.connector_id;
	since := s.cursor_at - integration._sync_overlap(settings);
	INSERT INTO integration.connector_calls AS k
		(tenant_id, connector_id, operation, payload, queued_by, sync_stream)
	VALUES (s.tenant_id, s.connector_id, 'pull',
			jsonb_build_object('stream', s.stream, 'since', integration._sync_iso(since), 'page', NULL),
			s.queued_by, s.stream)
	RETURNING k.id INTO call_id;
	UPDATE integration.sync_streams x
	   SET status = 'running', current_call_id = call_id, run_since = since, run_high = s.cursor_at,
		   run_page = NULL, next_run_at = NULL, last_run_started_at = now(),
		   run_pages = 0, run_records_seen = 0, run_records_changed = 0
	 WHERE x.tenant_id = s.tenant_id AND x.connector_id = s.connector_id AND x.stream = s.stream;
	PERFORM integration._wake_calls_at_commit();
	RETURN true;
END
$$;
COMMENT ON FUNCTION integration._sync_start(text, bigint, text) IS
	'Starts a run of an idle stream: queues its first page''s pull call (since: the cursor minus the overlap) as the stream''s queued_by role; false when it runs already (internal).';

-- One record of a pull page as the page trigger holds it.
CREATE TYPE integration._sync_page_record AS (
	n			bigint,
	id			text,
	updated_at	timestamptz,
	payload		jsonb,
	topic		text,
	hash		bytea
);
COMMENT ON TYPE integration._sync_page_record IS
	'A record of a pull page, with the SHA-256 of its payload the gate compares (internal).';

-- A pull page's records as the page trigger holds them, in one pass over its entries
-- (src/sync_page.c): each record of "records" ({id, updated_at, payload, topic}), or
-- each element of "items", the platform's own objects as they came, its id and
-- updated_at at the paths id_path and updated_at_path.  bad: the first entry that is
-- not a record (no id of 1 to 255 characters, no string at updated_at, no payload);
-- seen: the entries; unless one is bad, recs: one per id (of a record the page
-- repeats, its latest version, the first seen) in the order of the ids' bytes, with
-- updated_at cast and the payload's content hash, and ids: their ids (NULL for none).
CREATE FUNCTION integration._sync_page_records(page jsonb, default_topic text, item_topic text,
											   id_path text[], updated_at_path text[],
											   OUT bad bigint, OUT seen bigint,
											   OUT recs integration._sync_page_record[],
											   OUT ids text[])
	AS 'MODULE_PATHNAME', 'integration_sync_page_records'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION integration._sync_page_records(jsonb, text, text, text[], text[]) IS
	'A pull page''s records, from its records or its items (the platform''s objects, with the paths of their id and updated_at): the first bad entry, the number seen, and one record per id in key order with its content hash (internal).';

-- The page-ended trigger: a pull call that ended, processed in the transaction that
-- recorded it (see the banner).  A page the trigger cannot read raises, which fails the
-- call: the worker then records it failed, and the run ends with that error.
CREATE FUNCTION integration._sync_page_ended() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s integration.sync_streams;
	c integration.connectors;
	page jsonb := NEW.result;
	next_page jsonb;
	wait numeric;
	bad bigint;
	recs integration._sync_page_record[];
	ids text[];
	new_ids text[];
	seen bigint := 0;
	changed bigint := 0;
	high timestamptz;
	call_id bigint;
	patterns jsonb[];
	as_pulled boolean;
BEGIN
	-- next_call_id in the result names the call the worker begins next: only this
	-- trigger says it, never the adapter's page (a page not processed keeps its result).
	-- Only when it is there: removing a key rebuilds the whole page (a page of 250
	-- orders is 170 kB of jsonb; 2% of the worker's time a page, perf on bench/run sync).
	IF jsonb_typeof(NEW.result) = 'object' AND NEW.result ? 'next_call_id' THEN
		NEW.result := NEW.result - 'next_call_id';
	END IF;
	SELECT * INTO s FROM integration.sync_streams x
	 WHERE x.tenant_id = NEW.tenant_id AND x.connector_id = NEW.connector_id
	   AND x.stream = NEW.sync_stream
	   FOR UPDATE;
	IF NOT FOUND OR s.current_call_id IS DISTINCT FROM NEW.id THEN
		-- The stream was dropped (its connector deleted, or left out by its settings), or
		-- the call is not its run's: the page is not processed.
		RETURN NEW;
	END IF;
	SELECT * INTO c FROM integration.connectors x WHERE x.tenant_id = NEW.tenant_id AND x.id = NEW.connector_id;
	SELECT k.records_as_pulled INTO as_pulled FROM integration.connector_kinds k WHERE k.name = c.kind;
	as_pulled := coalesce(as_pulled, false);

	IF NEW.status = 'failed' THEN
		-- The cursor stays: the next run reads the pages stored so far again, and the
		-- gate makes them no-ops.
		UPDATE integration.sync_streams x
		   SET status = 'idle', current_call_id = NULL, run_page = NULL,
			   errors = x.errors + 1, last_error = coalesce(NEW.last_error, 'the pull call failed'),
			   last_run_finished_at = now(), next_run_at = integration._sync_next_run(c)
		 WHERE x.tenant_id = s.tenant_id AND x.connector_id = s.connector_id AND x.stream = s.stream;
		PERFORM integration._wake_calls_at_commit();
		RETURN NEW;
	END IF;

	IF jsonb_typeof(page) IS DISTINCT FROM 'object'
	   OR (jsonb_typeof(page -> 'records') IS NOT DISTINCT FROM 'array')
		  = (jsonb_typeof(page -> 'items') IS NOT DISTINCT FROM 'array')
	   OR (page ? 'items' AND (coalesce(jsonb_typeof(page -> 'item_id'), '') NOT IN ('string', 'array')
							   OR coalesce(jsonb_typeof(page -> 'item_updated_at'), '') NOT IN ('string', 'array')
							   OR jsonb_typeof(page -> 'item_topic') NOT IN ('string', 'null')))
	   OR (page ? 'next_page' AND jsonb_typeof(page -> 'next_page') NOT IN ('object', 'array', 'string', 'number', 'null'))
	   OR (page ? 'wait' AND jsonb_typeof(page -> 'wait') NOT IN ('number', 'null')) THEN
		RAISE EXCEPTION 'the % pull adapter returned no page', c.kind
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A succeeded pull''s result is {"records": [...], "next_page": ... or null, "wait": seconds (optional)}, or {"items": [...], "item_id": key or path, "item_updated_at": key or path, "item_topic": text (optional), "next_page": ..., "wait": ...}.';
	END IF;

	-- The page's records, checked at once (the first that is not a record names
	-- itself), then held one per id (of a record the page repeats, its latest version,
	-- the first seen) in key order, with their content hashes: one pass in C (a SQL
	-- function, a sort and two aggregates took 1.7 ms a page of 250 orders).
	SELECT p.bad, p.seen, p.recs, p.ids INTO bad, seen, recs, ids
	  FROM integration._sync_page_records(
			page, s.stream || '/updated', coalesce(page ->> 'item_topic', s.stream || '/updated'),
			CASE jsonb_typeof(page -> 'item_id')
				WHEN 'string' THEN ARRAY[page ->> 'item_id']
				WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(page -> 'item_id')) END,
			CASE jsonb_typeof(page -> 'item_updated_at')
				WHEN 'string' THEN ARRAY[page ->> 'item_updated_at']
				WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(page -> 'item_updated_at')) END) p;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'record % of the % pull page is not a record', bad, c.kind
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = CASE WHEN page ? 'items'
							   THEN 'An item has an id of 1 to 255 characters at item_id and a timestamp at item_updated_at.'
							   ELSE 'A record is {"id": text of 1 to 255 characters, "updated_at": a timestamp, "payload": {...}, "topic": text (optional)}.' END;
	END IF;
	recs := coalesce(recs, '{}');
	ids := coalesce(ids, '{}');

	-- The gate of _sync_gate(), a page at a time: a statement per step rather than per
	-- record, as a page is hundreds of them (bench/run sync).  Every statement reaches
	-- external_records by its whole key, a record at a time (the conflict arbiter, or a
	-- lateral lookup the planner cannot turn into a join), never by scanning the
	-- stream: a stream's rows grow with every run, and a plan that read them all per
	-- page made a run's time grow with the square of its records (250 ms a page at
	-- 10,000 orders, where looking each record up takes about 2 ms a page).
	-- First the records never seen: inserted, or found there (a webhook's, or one this
	-- run read on an earlier page); a row another session is inserting is waited for.
	WITH ins AS (
		INSERT INTO integration.external_records AS x
			(tenant_id, connector_id, stream, external_id, external_updated_at, payload,
			 content_hash, source)
		SELECT s.tenant_id, s.connector_id, s.stream, r.id, r.updated_at, r.payload, r.hash, 'pull'
		  FROM unnest(recs) r
		ON CONFLICT ON CONSTRAINT external_records_pkey DO NOTHING
		RETURNING x.external_id)
	SELECT coalesce(array_agg(ins.external_id), '{}') INTO new_ids FROM ins;
	-- The others, locked in key order before they are judged: a webhook of the same
	-- record waits for this page, and the judgement below, a statement later, reads
	-- their latest versions.
	IF cardinality(new_ids) < cardinality(ids) THEN
		PERFORM
		   FROM (SELECT i.id FROM unnest(ids) AS i(id)
				  WHERE i.id <> ALL (new_ids) ORDER BY i.id COLLATE "C") r
		  CROSS JOIN LATERAL (
				SELECT FROM integration.external_records x
				 WHERE x.tenant_id = s.tenant_id AND x.connector_id = s.connector_id
				   AND x.stream = s.stream AND x.external_id = r.id
				   FOR UPDATE) l;
	END IF;
	-- Whether a handler wants the page's events is decided as they are stored, from the
	-- patterns of the tenant's handlers of this connector or of all: an event none
	-- matches is stored skipped, processed_at set, and the handler worker never reads
	-- it (it took the handler worker 16 to 20 ms of CPU a page of 250 events to lock
	-- each, find no handler and write it again, bench/README.md).  The handlers are
	-- those this statement's snapshot sees, as for the handler worker, whose statement
	-- finds an event's handlers a moment before it commits the event's outcome: a
	-- registration that commits while the page is stored may miss the page's events,
	-- as one committing while the handler worker runs an event misses that one
	-- (reprocess_inbound_events(status => 'skipped') hands them over).  Nothing is
	-- locked or waited for: a page never waits for a tenant's transaction, which would
	-- hold up the worker's other calls.  Under REPEATABLE READ or SERIALIZABLE, whose
	-- snapshot may be older than the transaction's latest statement, the events stay
	-- pending and the handler worker decides, as for webhooks.
	IF current_setting('transaction_isolation') = 'read committed' THEN
		SELECT coalesce(array_agg(h.events), '{}') INTO patterns
		  FROM integration.inbound_handlers h
		 WHERE h.tenant_id = s.tenant_id AND (h.connector_id IS NULL OR h.connector_id = s.connector_id);
	END IF;
	-- Each record's verdict, as _sync_gate() gives it; the rows that change written, and
	-- each change an inbound event, in the page's order.
	WITH v AS (
		SELECT r.*,
			   CASE WHEN nw.id IS NOT NULL THEN 'new'
					ELSE integration._sync_verdict(r.updated_at, r.hash, 'pull', o.external_updated_at,
												   o.content_hash, o.source,
												   -- In this order: the keys are compared
												   -- only for a webhook's version of the
												   -- same moment with another content.
												   as_pulled AND o.source = 'webhook'
												   AND r.updated_at = o.external_updated_at
												   AND r.hash <> o.content_hash
												   AND integration._sync_same_form(r.payload, o.payload))
			   END AS verdict,
			   nw.id IS NULL
			   AND integration._sync_rewrites(r.updated_at, r.hash, 'pull', o.external_updated_at,
											  o.content_hash, o.source) AS write
		  FROM unnest(recs) r
		  LEFT JOIN unnest(new_ids) AS nw(id) ON nw.id = r.id
		  -- OFFSET 0: a lookup per record, never a join to the whole stream.
		  LEFT JOIN LATERAL (
				SELECT x.external_updated_at, x.content_hash, x.source, x.payload
				  FROM integration.external_records x
				 WHERE nw.id IS NULL AND x.tenant_id = s.tenant_id
				   AND x.connector_id = s.connector_id AND x.stream = s.stream
				   AND x.external_id = r.id
				OFFSET 0) o ON true
		 -- A record gone since the insert above (its connector purged): nothing.
		 WHERE nw.id IS NOT NULL OR o.external_updated_at IS NOT NULL),
	u AS (
		-- Rows that exist and are locked: the conflict arbiter finds each by its key.
		INSERT INTO integration.external_records AS x
			(tenant_id, connector_id, stream, external_id, external_updated_at, payload,
			 content_hash, source)
		SELECT s.tenant_id, s.connector_id, s.stream, v.id, v.updated_at, v.payload, v.hash, 'pull'
		  FROM v
		 WHERE v.write
		 ORDER BY v.id
		ON CONFLICT ON CONSTRAINT external_records_pkey DO UPDATE
		SET external_updated_at = EXCLUDED.external_updated_at, payload = EXCLUDED.payload,
			content_hash = EXCLUDED.content_hash, source = 'pull', synced_at = now()),
	e AS (
		INSERT INTO integration.inbound_events AS e
			(tenant_id, connector_id, external_id, object_id, topic, event, payload, status,
			 next_attempt_at, processed_at)
		SELECT s.tenant_id, s.connector_id,
			   CASE WHEN length(v.event_id) <= 255 THEN v.event_id
					ELSE 'pull:sha256:' || encode(sha256(convert_to(v.event_id, 'UTF8')), 'hex') END,
			   s.stream || ':' || v.id, v.topic, v.event, v.payload,
			   CASE WHEN v.wanted THEN 'pending' ELSE 'skipped' END,
			   CASE WHEN v.wanted THEN now() END, CASE WHEN NOT v.wanted THEN now() END
		  -- The event's id: a page pulled again finds its events there.
		  -- pull:<stream>:<id>:<epoch of updated_at>, and :<content hash prefix> for a
		  -- revision within the same second; hashed when longer than 255 characters.
		  FROM (SELECT v.*,
					   format('pull:%s:%s:%s', s.stream, v.id, trim_scale(extract(epoch FROM v.updated_at)))
					   || CASE WHEN v.verdict = 'revised' THEN ':' || encode(substr(v.hash, 1, 8), 'hex')
							   ELSE '' END AS event_id,
					   -- Undecided (patterns NULL), or a handler matches: pending.
					   patterns IS NULL
					   OR EXISTS (SELECT FROM unnest(patterns) p
								   WHERE integration.event_matches(p, v.event)) AS wanted
				  FROM (SELECT v.*, c.kind || '.' || replace(v.topic, '/', '.') AS event
						  FROM v
						 WHERE v.verdict IN ('new', 'changed', 'revised')) v) v
		 ORDER BY v.n
		ON CONFLICT (tenant_id, connector_id, external_id) WHERE NOT dedupe_expired DO NOTHING)
	SELECT count(*) FILTER (WHERE v.verdict IN ('new', 'changed', 'revised')), max(v.updated_at)
	  INTO changed, high
	  FROM v;

	next_page := nullif(page -> 'next_page', 'null');
	IF next_page IS NOT NULL THEN
		-- Shopify's call-limit bucket, say: the adapter asks for a pause.
		wait := least(greatest(coalesce((page ->> 'wait')::numeric, 0), 0), 3600);
		INSERT INTO integration.connector_calls AS k
			(tenant_id, connector_id, operation, payload, queued_by, sync_stream, next_attempt_at)
		VALUES (s.tenant_id, s.connector_id, 'pull',
				jsonb_build_object('stream', s.stream, 'since', integration._sync_iso(s.run_since),
								   'page', next_page),
				s.queued_by, s.stream, now() + wait * interval '1 second')
		RETURNING k.id INTO call_id;
	END IF;
	-- The next page's call, or the end of the run: the cursor moves to what it saw.
	UPDATE integration.sync_streams x
	   SET status = CASE WHEN call_id IS NULL THEN 'idle' ELSE 'running' END,
		   current_call_id = call_id, run_page = next_page,
		   run_high = greatest(x.run_high, high),
		   cursor_at = CASE WHEN call_id IS NULL THEN greatest(x.run_high, high) ELSE x.cursor_at END,
		   last_run_finished_at = CASE WHEN call_id IS NULL THEN now() ELSE x.last_run_finished_at END,
		   next_run_at = CASE WHEN call_id IS NULL THEN integration._sync_next_run(c) END,
		   runs = x.runs + CASE WHEN call_id IS NULL THEN 1 ELSE 0 END,
		   pages = x.pages + 1, records_seen = x.records_seen + seen,
		   records_changed = x.records_changed + changed,
		   run_pages = x.run_pages + 1, run_records_seen = x.run_records_seen + seen,
		   run_records_changed = x.run_records_changed + changed
	 WHERE x.tenant_id = s.tenant_id AND x.connector_id = s.connector_id AND x.stream = s.stream;
	-- The next page is claimed, or the schedule read again.
	PERFORM integration._wake_calls_at_commit();
	-- The call keeps what became of its page, not the page: its records are in
	-- external_records now, and a page of 250 orders is a few hundred kB.  next_call_id
	-- also tells the worker which call it may begin at once (src/call_job.c).
	NEW.result := jsonb_build_object('records', seen, 'changed', changed, 'next_page', next_page,
									 'next_call_id', call_id);
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._sync_page_ended() IS
	'Row trigger on connector_calls: a sync run''s page call that succeeded or failed is processed in the same transaction: records through the gate, changes as inbound events, then the next page queued or the run ended; the call''s result becomes {records, changed, next_page, next_call_id} (internal).';
-- BEFORE: the trigger replaces the page in the call's result with what became of it.
CREATE TRIGGER sync_page_ended BEFORE UPDATE OF status ON integration.connector_calls
	FOR EACH ROW
	WHEN (NEW.sync_stream IS NOT NULL AND NEW.status IN ('succeeded', 'failed')
		  AND OLD.status <> NEW.status)
	EXECUTE FUNCTION integration._sync_page_ended();

------------------------------------------------------------------------------------------
-- The API.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.sync_now(connector_id bigint, stream text DEFAULT NULL)
	RETURNS SETOF integration.sync_state
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	c integration.connectors;
	kind_streams text[];
	streams text[];
	st text;
BEGIN
	IF sync_now.connector_id IS NULL THEN
		RAISE EXCEPTION 'connector_id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- FOR SHARE: a delete_connector() committing meanwhile is waited for and seen (its
	-- streams gone, it is not found), or waits for this transaction and then removes the
	-- streams started here; either way no stream outlives the connector.
	SELECT * INTO c FROM integration.connectors x
	 WHERE x.tenant_id = tenant AND x.id = sync_now.connector_id AND x.deleted_at IS NULL
	   FOR SHARE;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(sync_now.connector_id);
	END IF;
	SELECT k.pull_streams INTO kind_streams FROM integration.connector_kinds k WHERE k.name = c.kind;
	IF kind_streams IS NULL THEN
		RAISE EXCEPTION 'connector kind % pulls nothing', c.kind
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The kind has no pull_streams.',
				  HINT = 'SELECT name, pull_streams FROM integration.connector_kinds lists the kinds that pull.';
	END IF;
	streams := integration._sync_stream_names(kind_streams, c.settings);
	IF sync_now.stream IS NOT NULL THEN
		IF NOT sync_now.stream = ANY (streams) THEN
			RAISE EXCEPTION 'connector % has no stream "%"', c.id, sync_now.stream
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = CASE WHEN sync_now.stream = ANY (kind_streams)
								   THEN 'Its settings.sync_streams leaves that stream out.'
								   ELSE format('Connector kind %s pulls no such stream.', c.kind) END,
					  HINT = format('Its streams: %s.', coalesce(nullif(array_to_string(streams, ', '), ''), 'none'));
		END IF;
		streams := ARRAY[sync_now.stream];
	END IF;
	FOREACH st IN ARRAY streams LOOP
		-- A kind given streams after the connector was made: its rows appear now.
		INSERT INTO integration.sync_streams AS s (tenant_id, connector_id, stream, next_run_at)
		VALUES (tenant, c.id, st, NULL)
		ON CONFLICT ON CONSTRAINT sync_streams_pkey DO NOTHING;
		-- The caller's role pulls, as it would make a call.
		UPDATE integration.sync_streams s SET queued_by = current_user::regrole
		 WHERE s.tenant_id = tenant AND s.connector_id = c.id AND s.stream = st AND s.status = 'idle'
		   AND s.queued_by <> current_user::regrole;
		PERFORM integration._sync_start(tenant, c.id, st);
	END LOOP;
	RETURN QUERY
		SELECT v.* FROM integration.sync_state v
		 WHERE v.tenant_id = tenant AND v.connector_id = c.id AND v.stream = ANY (streams)
		 ORDER BY array_position(streams, v.stream::text);
END
$$;
COMMENT ON FUNCTION integration.sync_now(bigint, text) IS
	'Starts a run of each idle stream of one of the current tenant''s connectors (or of the one named), in the caller''s transaction, as the caller''s role: the worker pulls its pages once the transaction commits. A stream already running is left running. Returns the streams'' sync_state.';

REVOKE ALL ON TABLE integration.external_records, integration.sync_streams, integration.sync_state
	FROM PUBLIC;
REVOKE ALL ON FUNCTION
	integration._sync_duration(jsonb), integration._sync_interval(jsonb),
	integration._sync_overlap(jsonb), integration._sync_stream_names(text[], jsonb),
	integration._check_sync_settings(text, jsonb), integration._sync_next_run(integration.connectors),
	integration._sync_iso(timestamptz), integration._connector_sync_checked(),
	integration._content_hash(jsonb),
	integration._connector_sync_streams(), integration._connector_kind_streams(),
	integration._sync_verdict(timestamptz, bytea, text, timestamptz, bytea, text, boolean),
	integration._sync_same_form(jsonb, jsonb),
	integration._sync_rewrites(timestamptz, bytea, text, timestamptz, bytea, text),
	integration._sync_gate(text, bigint, text, text, timestamptz, jsonb, text),
	integration._check_external_record(text, integration.external_record),
	integration._sync_start(text, bigint, text),
	integration._sync_page_records(jsonb, text, text, text[], text[]),
	integration._sync_page_ended(),
	integration.sync_now(bigint, text)
	FROM PUBLIC;
