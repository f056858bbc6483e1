------------------------------------------------------------------------------------------
-- Backup (the Makefile appends this file after sql/tenant_isolation.sql): every table
-- that holds the tenants' data or the worker's state is extension configuration, so
-- that pg_dump writes its rows after CREATE EXTENSION, as it does for any table, and
-- its identity sequence with them (a sequence marked so is dumped with its current
-- value: rows inserted after a restore get ids after the restored ones).  pg_dump loads
-- the rows into tables whose triggers exist; the triggers that would act on them
-- recognise a restore (src/restore_mode.c, integration._restoring()).  tenant_roles
-- and the users' connector_kinds are marked where they are created.
-- docs/operations.md#backup-and-restore.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._restoring() RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_restoring'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION integration._restoring() IS
	'Whether this session loads a dump: check_function_bodies is off, as pg_dump''s script and pg_restore set it, the role is a superuser or bypasses row-level security, and the client''s statement is a COPY or INSERT; triggers then store the rows as dumped (internal).';
-- As every function of the extension: granted by the administrator, with the others.
REVOKE ALL ON FUNCTION integration._restoring() FROM PUBLIC;

DO $$
DECLARE
	t text;
	seq regclass;
BEGIN
	-- Every row of each, whole: none holds rows the extension creates by itself.
	--   webhook_endpoints, retired_secrets: endpoints and the secrets still signing
	--     beside a rotated one, sealed as stored (the key file decrypts them again);
	--   webhook_events, webhook_event_queue: the events, and those not fanned out yet
	--     (without the queue they would never be);
	--   deliveries, delivery_attempts, integration_logs: outcomes, retries pending and
	--     history, which the tenants' list functions read;
	--   endpoint_failures, target_circuits: derived from outcomes, but the worker keeps
	--     them across a restart for a reason (a failing streak that leads to
	--     integration.disable_after, an open circuit that must not be hammered at once);
	--     a restore is treated like a restart, and both are a few rows per endpoint;
	--   connectors, inbound_events, inbound_handlers, connector_calls,
	--     external_records, sync_streams: connections, received events, handlers,
	--     queued calls, synced records and the cursors that make the next pull
	--     incremental;
	--   event_schemas: the schemas tenants registered.
	FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'retired_secrets', 'endpoint_failures',
							 'webhook_events', 'webhook_event_queue', 'deliveries',
							 'delivery_attempts', 'integration_logs', 'target_circuits',
							 'connectors', 'inbound_events', 'inbound_handlers',
							 'connector_calls', 'external_records', 'sync_streams',
							 'event_schemas']
	LOOP
		PERFORM pg_catalog.pg_extension_config_dump(pg_catalog.format('integration.%I', t)::regclass, '');
		SELECT pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)::regclass INTO seq
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid = pg_catalog.format('integration.%I', t)::regclass AND a.attidentity <> '';
		IF seq IS NOT NULL THEN
			PERFORM pg_catalog.pg_extension_config_dump(seq, '');
		END IF;
	END LOOP;
END
$$;
