------------------------------------------------------------------------------------------
-- Row-level security for every tenant-scoped table of integration.sql and its parts
-- (the Makefile appends this file last): forced, so even the tables' owner is bound
-- unless superuser or BYPASSRLS.
------------------------------------------------------------------------------------------

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_events', 'webhook_event_queue',
							 'deliveries', 'delivery_attempts', 'integration_logs',
							 'event_schemas', 'target_circuits', 'retired_secrets', 'endpoint_failures',
							 'connectors', 'inbound_events', 'inbound_handlers', 'connector_calls',
							 'external_records', 'sync_streams']
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE integration.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE pg_catalog.format('ALTER TABLE integration.%I FORCE ROW LEVEL SECURITY', t);
		EXECUTE pg_catalog.format(
			'CREATE POLICY tenant_isolation ON integration.%I
				USING (tenant_id = integration.current_tenant())
				WITH CHECK (tenant_id = integration.current_tenant())', t);
		EXECUTE pg_catalog.format(
			'CREATE TRIGGER require_tenant BEFORE INSERT OR UPDATE OR DELETE ON integration.%I
				FOR EACH STATEMENT EXECUTE FUNCTION integration.require_tenant_for_write()', t);
	END LOOP;
END
$$;
