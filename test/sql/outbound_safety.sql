-- Where webhooks may be sent (network_policy.c, validate.c).  Registration refuses a
-- URL whose host is an IP address in a blocked range, in every spelling the resolver
-- accepts, and http when integration.https_only is on; host names are left to the
-- worker's check of each connection (test/t/010_outbound_safety.pl).  The settings
-- are reloadable only, so this file changes them with ALTER SYSTEM and a reload, waits
-- until this session sees them (up to 10 s, one statement per 50 ms, since a backend
-- takes a reload between statements), and resets them at the end.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 3001;
SET integration.tenant_id = 'net';
\set counts 'SELECT (SELECT count(*) FROM integration.webhook_endpoints) AS endpoints, (SELECT count(*) FROM integration.integration_logs) AS logs'

-- One URL's verdict: "accepted", or the SQLSTATE and the detail of the refusal.
CREATE FUNCTION pg_temp.verdict(url text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	PERFORM integration.validate_destination(url);
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || detail;
END
$$;

-- The defaults: nothing opened, nothing added, http allowed.
SHOW integration.allowed_networks;
SHOW integration.blocked_networks;
SHOW integration.https_only;

-- Loopback, however it is written: decimal, hex, octal, short forms, a trailing dot,
-- percent-encoding, IPv6, IPv4-mapped, -compatible, NAT64 and 6to4 forms.
SELECT u AS url, pg_temp.verdict(u) AS verdict
  FROM unnest(ARRAY[
	'http://127.0.0.1/',
	'https://127.0.0.1:8443/hooks',
	'http://2130706433/',
	'http://0x7f000001/',
	'http://0x7f.1/',
	'http://0x7f.0x0.0x0.0x1/',
	'http://0177.0.0.1/',
	'http://017700000001/',
	'http://127.000.000.001/',
	'http://127.1/',
	'http://127.0.1/',
	'http://127.0.0.1./',
	'http://%31%32%37.0.0.1/',
	'http://127.255.255.254:5432/',
	'http://0/',
	'http://[::1]/',
	'http://[0:0:0:0:0:0:0:1]:8080/',
	'http://[::ffff:127.0.0.1]/',
	'http://[::ffff:7f00:1]/',
	'http://[0:0:0:0:0:ffff:127.0.0.1]/',
	'http://[::127.0.0.1]/',
	'http://[64:ff9b::127.0.0.1]/',
	'http://[2002:7f00:1::]/',
	'http://[::]/']) u;

-- Cloud metadata, private, shared, multicast, broadcast, reserved and documentation
-- ranges; IPv6 link-local with a zone id, unique local, multicast, documentation,
-- Teredo (the first one's client, inverted, is 127.0.0.1) and benchmarking.
SELECT u AS url, pg_temp.verdict(u) AS verdict
  FROM unnest(ARRAY[
	'http://169.254.169.254/latest/meta-data/',
	'http://2852039166/latest/meta-data/',
	'http://0xa9fea9fe/',
	'http://0251.0376.0251.0376/',
	'http://169.254.43518/',
	'http://[::ffff:169.254.169.254]/',
	'http://10.0.0.1/',
	'http://10.1/',
	'http://172.16.0.1/',
	'http://172.31.255.255/',
	'http://192.168.1.1/',
	'http://100.64.0.1/',
	'http://100.127.255.254/',
	'http://0.1.2.3/',
	'http://224.0.0.1/',
	'http://239.255.255.250/',
	'http://255.255.255.255/',
	'http://4294967295/',
	'http://240.0.0.1/',
	'http://192.0.0.8/',
	'http://192.0.2.1/',
	'http://198.18.0.1/',
	'http://198.19.255.255/',
	'http://198.51.100.1/',
	'http://203.0.113.1/',
	'http://[fe80::1%25eth0]/',
	'http://[fe80::1]/',
	'http://[febf::1]/',
	'http://[fc00::1]/',
	'http://[fd12:3456::1]/',
	'http://[ff02::1]/',
	'http://[2001:db8::1]/',
	'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/',
	'http://[2001::1]/',
	'http://[2001:0:ffff:ffff:ffff:ffff:ffff:ffff]/',
	'http://[2001:2::1]/',
	'http://[64:ff9b::a00:1]/',
	'http://[2002:c0a8:101::1]/']) u;

-- Public addresses and every host name pass; names are checked when the worker
-- connects.  256.1, 1.2.3.4.5, 09.1.1.1 and 0x are not addresses to the resolver either.
SELECT u AS url, pg_temp.verdict(u) AS verdict
  FROM unnest(ARRAY[
	'https://hooks.example.com/in',
	'http://localhost:8080/',
	'http://localhost./',
	'http://8.8.8.8/',
	'http://134744072/',
	'http://100.63.255.255/',
	'http://100.128.0.0/',
	'http://172.32.0.1/',
	'http://169.255.0.1/',
	'http://223.255.255.255/',
	'http://[2606:4700:4700::1111]/',
	'http://[2001:4860:4860::8888]/',
	'http://[2001:1::1]/',
	'http://[2001:200::1]/',
	'http://[::ffff:8.8.8.8]/',
	'http://[64:ff9b::808:808]/',
	'http://256.1/',
	'http://1.2.3.4.5/',
	'http://09.1.1.1/',
	'http://0x/']) u;

-- What register_webhook() and update_webhook() say, in full; nothing is written.
SET ROLE integration_test_app;
:counts;
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://2130706433:5432/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://[fe80::1%25eth0]:80/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://[::ffff:169.254.169.254]/latest/meta-data/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
-- A bad URL is refused for its syntax first, with validate_url()'s message.
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://127.0.0.1:0/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT id AS ep FROM integration.register_webhook(name => 'public', url => 'https://hooks.example.com/in', events => '["*"]') \gset
SELECT url FROM integration.update_webhook(id => :ep, url => 'http://0x7f.1/');
\echo :LAST_ERROR_SQLSTATE
SELECT url FROM integration.update_webhook(id => :ep, url => 'http://[::1]/');
\echo :LAST_ERROR_SQLSTATE
:counts;

-- The check is not a CHECK constraint (the settings change; a stored row must stay
-- updatable and restorable): plain DML can store such a URL, and the worker refuses
-- to connect to it.
INSERT INTO integration.webhook_endpoints (name, url, events)
VALUES ('by dml', 'http://127.0.0.1:9/', '["*"]') RETURNING name, url;
SELECT name, url FROM integration.update_webhook(id => :ep, name => 'renamed');
RESET ROLE;

-- integration.allowed_networks opens ranges on purpose, for the address and for the
-- IPv4 address an IPv6 one carries; the rest of each built-in range stays blocked.
ALTER SYSTEM SET integration.allowed_networks = '127.0.0.1/32, fd00::/8, 169.254.0.0/17';
SELECT pg_reload_conf();
\set ECHO none
\o /dev/null
SELECT 'SELECT pg_sleep(0.05) WHERE current_setting(''integration.allowed_networks'') = ''''' FROM generate_series(1, 200) \gexec
\o
\set ECHO all
SHOW integration.allowed_networks;
SELECT u AS url, pg_temp.verdict(u) AS verdict
  FROM unnest(ARRAY[
	'http://127.0.0.1:8080/',
	'http://2130706433/',
	'http://127.1/',
	'http://[::ffff:127.0.0.1]/',
	'http://127.0.0.2/',
	'http://[::1]/',
	'http://[fd12:3456::1]/',
	'http://[fc00::1]/',
	'http://169.254.169.254/',
	'http://169.254.128.1/']) u;
SET ROLE integration_test_app;
SELECT name, url FROM integration.register_webhook(name => 'local receiver', url => 'http://127.0.0.1:8080/hooks', events => '["*"]');
SELECT name, url FROM integration.update_webhook(id => :ep, url => 'http://0x7f000001:8080/hooks');
RESET ROLE;

-- integration.blocked_networks adds ranges and wins over allowed_networks, for the
-- IPv4 address inside an IPv6 one too.
ALTER SYSTEM SET integration.blocked_networks = '127.0.0.0/24, 8.8.8.0/24, 2606:4700::/32';
SELECT pg_reload_conf();
\set ECHO none
\o /dev/null
SELECT 'SELECT pg_sleep(0.05) WHERE current_setting(''integration.blocked_networks'') = ''''' FROM generate_series(1, 200) \gexec
\o
\set ECHO all
SHOW integration.blocked_networks;
SELECT u AS url, pg_temp.verdict(u) AS verdict
  FROM unnest(ARRAY[
	'http://127.0.0.1:8080/',
	'http://8.8.8.8/',
	'http://[::ffff:8.8.8.8]/',
	'http://[2606:4700:4700::1111]/',
	'http://8.8.4.4/',
	'http://[fd12:3456::1]/']) u;
SET ROLE integration_test_app;
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://127.0.0.1:8080/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A bad network is refused when set, with what is wrong and how to write it.  The
-- settings are reloadable only: SET is refused whatever the value.
ALTER SYSTEM SET integration.allowed_networks = 'localhost';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0/33';
ALTER SYSTEM SET integration.allowed_networks = '::1/129';
ALTER SYSTEM SET integration.allowed_networks = '10.1.0.0/8';
ALTER SYSTEM SET integration.allowed_networks = 'fd00::1/8';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0/8,,fd00::/8';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0/8,';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0/';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0/x';
ALTER SYSTEM SET integration.allowed_networks = '127.1/32';
ALTER SYSTEM SET integration.allowed_networks = '010.0.0.0/8';
ALTER SYSTEM SET integration.allowed_networks = '10.0.0.0 /8';
ALTER SYSTEM SET integration.allowed_networks = 'fe80::1%eth0';
ALTER SYSTEM SET integration.blocked_networks = '192.168.0.0/16; 10.0.0.0/8';
SET integration.allowed_networks = '127.0.0.1/32';
-- Blanks around entries are fine; so is 0.0.0.0/0 (everything, on purpose).
ALTER SYSTEM SET integration.allowed_networks = ' 10.0.0.0/8 ,192.168.0.0/16,	::1 ';
ALTER SYSTEM SET integration.allowed_networks = '0.0.0.0/0, ::/0';
SELECT name, setting FROM pg_file_settings
 WHERE name LIKE 'integration.%\_networks' ORDER BY name;

-- integration.https_only: http URLs are refused at registration.
ALTER SYSTEM RESET integration.allowed_networks;
ALTER SYSTEM RESET integration.blocked_networks;
ALTER SYSTEM SET integration.https_only = on;
SELECT pg_reload_conf();
\set ECHO none
\o /dev/null
SELECT 'SELECT pg_sleep(0.05) WHERE current_setting(''integration.https_only'') = ''off''' FROM generate_series(1, 200) \gexec
\o
\set ECHO all
SHOW integration.https_only;
SET ROLE integration_test_app;
:counts;
SELECT id FROM integration.register_webhook(name => 'n', url => 'http://hooks.example.com/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM integration.register_webhook(name => 'n', url => 'HTTP://hooks.example.com/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT url FROM integration.update_webhook(id => :ep, url => 'http://hooks.example.com/v2');
\echo :LAST_ERROR_SQLSTATE
:counts;
SELECT name, url FROM integration.register_webhook(name => 'tls', url => 'HTTPS://hooks.example.com/in', events => '["*"]');
-- An endpoint stored with an http URL stays updatable (the worker refuses to send to it).
SELECT name, url FROM integration.update_webhook(id => :ep, name => 'still http');
RESET ROLE;

-- Back to the defaults.
ALTER SYSTEM RESET integration.https_only;
SELECT pg_reload_conf();
\set ECHO none
\o /dev/null
SELECT 'SELECT pg_sleep(0.05) WHERE current_setting(''integration.https_only'') = ''on''' FROM generate_series(1, 200) \gexec
\o
\set ECHO all
SHOW integration.allowed_networks;
SHOW integration.blocked_networks;
SHOW integration.https_only;

-- integration.proxy may carry the proxy's credentials (http://user:password@proxy:3128):
-- hidden from the application role, shown to superusers.
SET ROLE integration_test_app;
SHOW integration.proxy;
SELECT current_setting('integration.proxy');
SELECT count(*) FROM pg_settings WHERE name = 'integration.proxy';
RESET ROLE;
SELECT count(*) FROM pg_settings WHERE name = 'integration.proxy';

DELETE FROM integration.integration_logs WHERE tenant_id = 'net';
DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'net';
RESET integration.tenant_id;
