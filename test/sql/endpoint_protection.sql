-- Endpoint protection's SQL surface (#15): rate_limit and rate_limit_burst of
-- register_webhook() and update_webhook() and their CHECK constraints, the circuits
-- the worker stores (target_circuits), and the endpoint_health view: its columns, what
-- it shows from the tables alone, and row-level security.  The worker is off here
-- (test/regress.conf); test/t/018_endpoint_protection.pl runs it.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 15001;
SET ROLE integration_test_app;
SET integration.tenant_id = 'prot-a';

-- A limit with a burst, a limit alone (the burst is then the rate), and none.
SELECT id AS lim FROM integration.register_webhook(name => 'limited', url => 'https://a.example.invalid/l',
	events => '["x.*"]', rate_limit => 5, rate_limit_burst => 10) \gset
SELECT id AS lim2 FROM integration.register_webhook(name => 'slow', url => 'https://a.example.invalid/s',
	events => '["x.*"]', rate_limit => 2) \gset
SELECT id AS free FROM integration.register_webhook(name => 'free', url => 'https://a.example.invalid/f',
	events => '["x.*"]') \gset
SELECT name, rate_limit, rate_limit_burst FROM integration.webhook_endpoints ORDER BY id;
SELECT context -> 'name' AS name, context -> 'rate_limit' AS rate_limit,
	   context -> 'rate_limit_burst' AS rate_limit_burst
  FROM integration.integration_logs WHERE event = 'webhook.registered' ORDER BY id;

-- Refused by CHECK constraints (23514), at registration: no limit is 0 or negative or
-- above 100,000 per second, and a burst needs a limit.
SELECT id FROM integration.register_webhook(name => 'zero', url => 'https://a.example.invalid/z',
	events => '["x.*"]', rate_limit => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'negative', url => 'https://a.example.invalid/n',
	events => '["x.*"]', rate_limit => -5);
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'huge', url => 'https://a.example.invalid/h',
	events => '["x.*"]', rate_limit => 100001);
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'burst only', url => 'https://a.example.invalid/b',
	events => '["x.*"]', rate_limit_burst => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'no burst', url => 'https://a.example.invalid/b0',
	events => '["x.*"]', rate_limit => 5, rate_limit_burst => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS endpoints_after_refusals FROM integration.webhook_endpoints;

-- update_webhook: NULL keeps a value, a number sets it, 0 removes it (and a limit's
-- removal takes its burst along).
SELECT name FROM integration.update_webhook(id => :free, rate_limit => 7);
SELECT rate_limit, rate_limit_burst FROM integration.webhook_endpoints WHERE id = :free;
SELECT name FROM integration.update_webhook(id => :free, rate_limit_burst => 20);
SELECT name FROM integration.update_webhook(id => :free, name => 'renamed');
SELECT name, rate_limit, rate_limit_burst FROM integration.webhook_endpoints WHERE id = :free;
SELECT name FROM integration.update_webhook(id => :free, rate_limit => 0);
SELECT rate_limit, rate_limit_burst FROM integration.webhook_endpoints WHERE id = :free;
SELECT name FROM integration.update_webhook(id => :lim, rate_limit_burst => 0);
SELECT rate_limit, rate_limit_burst FROM integration.webhook_endpoints WHERE id = :lim;
SELECT context -> 'changed' AS changed FROM integration.integration_logs
 WHERE event = 'webhook.updated' ORDER BY id;
-- Refused, and nothing changed.
SELECT name FROM integration.update_webhook(id => :free, rate_limit_burst => 3);
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM integration.update_webhook(id => :lim, rate_limit => -1);
\echo :LAST_ERROR_SQLSTATE
-- Plain SQL meets the same constraints.
UPDATE integration.webhook_endpoints SET rate_limit = 0 WHERE id = :lim;
\echo :LAST_ERROR_SQLSTATE
-- NULL, no limit, passes them.
UPDATE integration.webhook_endpoints SET rate_limit = NULL WHERE id = :lim2;
UPDATE integration.webhook_endpoints SET rate_limit = 2 WHERE id = :lim2;
SELECT name, rate_limit, rate_limit_burst FROM integration.webhook_endpoints ORDER BY id;

-- endpoint_health has exactly these columns.
SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = 'integration.endpoint_health'::regclass AND a.attnum > 0
 ORDER BY a.attnum;

-- From the tables alone (no worker runs here): every circuit closed, nothing counted,
-- the effective rate the configured one; pending counts the deliveries due now.
SELECT integration.dispatch_webhook(id => :lim, event => 'x.a', payload => '{}') AS d1 \gset
SELECT integration.dispatch_webhook(id => :lim, event => 'x.b', payload => '{}') AS d2 \gset
SELECT integration.dispatch_webhook(id => :lim2, event => 'x.c', payload => '{}') AS d3 \gset
-- One of them is not due before an hour from now: not pending in the view's sense.
UPDATE integration.deliveries SET next_attempt_at = now() + interval '1 hour' WHERE id = :d2;
SELECT endpoint_id - :lim AS endpoint, circuit, opened_at, next_probe_at, requests, failures,
	   failure_ratio, rate_limit, effective_rate, in_flight, pending,
	   oldest_pending_at = (SELECT min(d.next_attempt_at) FROM integration.deliveries d
							 WHERE d.endpoint_id = h.endpoint_id AND d.next_attempt_at <= now())
		 AS oldest_is_the_earliest_due,
	   last_success_at, last_failure_at
  FROM integration.endpoint_health h ORDER BY endpoint_id;
-- Deleted endpoints are not listed.
SELECT integration.delete_webhook(id => :free);
SELECT count(*) AS endpoints_listed FROM integration.endpoint_health;

-- A circuit the worker stored (written here as it would write it) shows as stored.
RESET ROLE;
INSERT INTO integration.target_circuits (tenant_id, kind, target_id, state, opened_at,
										 next_probe_at, cooldown_ms, last_failure_at)
VALUES ('prot-a', 'webhook', :lim2, 'open', '2026-01-01 00:00:00+00', '2026-01-01 00:01:00+00',
		60000, '2026-01-01 00:00:59+00');
SET ROLE integration_test_app;
SELECT endpoint_id - :lim AS endpoint, circuit, opened_at = '2026-01-01 00:00:00+00' AS opened_as_stored,
	   next_probe_at = '2026-01-01 00:01:00+00' AS probe_as_stored,
	   last_failure_at = '2026-01-01 00:00:59+00' AS failure_as_stored
  FROM integration.endpoint_health ORDER BY endpoint_id;
-- A stored state that is not a circuit state is refused (23514).
UPDATE integration.target_circuits SET state = 'ajar' WHERE target_id = :lim2;
\echo :LAST_ERROR_SQLSTATE

-- Row-level security: another tenant sees none of it, and cannot write a circuit for
-- this one (42501); without a tenant the application role sees nothing.
SET integration.tenant_id = 'prot-b';
SELECT count(*) AS health_rows, (SELECT count(*) FROM integration.target_circuits) AS circuits
  FROM integration.endpoint_health;
INSERT INTO integration.target_circuits (tenant_id, kind, target_id, state)
VALUES ('prot-a', 'webhook', :lim, 'open');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS live_rows FROM integration._target_health('webhook');
RESET integration.tenant_id;
SELECT count(*) AS health_rows_without_tenant FROM integration.endpoint_health;
-- The BYPASSRLS administrator sees every tenant's.
SET ROLE integration_test_admin;
SELECT count(*) AS health_rows_for_admin FROM integration.endpoint_health
 WHERE endpoint_id IN (:lim, :lim2);
RESET ROLE;

-- The settings, as the worker reads them.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name IN ('integration.circuit_window', 'integration.circuit_min_requests',
				'integration.circuit_failure_ratio', 'integration.circuit_cooldown',
				'integration.max_tracked_endpoints')
 ORDER BY name;
SET integration.circuit_cooldown = '5s';
\echo :LAST_ERROR_SQLSTATE
