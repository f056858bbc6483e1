-- Every input the API refuses, with its message and SQLSTATE, and proof that a refused
-- call wrote nothing.  Plain DML meets the same rules (CHECK constraints call the same
-- validators).
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 2001;
ALTER TABLE integration.webhook_events ALTER COLUMN id RESTART WITH 2001;
ALTER TABLE integration.deliveries ALTER COLUMN id RESTART WITH 2001;
ALTER TABLE integration.integration_logs ALTER COLUMN id RESTART WITH 2001;
SET ROLE integration_test_app;
SET integration.tenant_id = 'val';
\set counts 'SELECT (SELECT count(*) FROM integration.webhook_endpoints) AS endpoints, (SELECT count(*) FROM integration.webhook_events) AS events, (SELECT count(*) FROM integration.deliveries) AS deliveries, (SELECT count(*) FROM integration.integration_logs) AS logs'

-- One good endpoint to update and dispatch to.
SELECT name FROM integration.register_webhook(name => 'good', url => 'https://ok.example.invalid/in',
											   events => '["order.*"]',
											   secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
:counts;

-- URLs
SELECT integration.register_webhook(name => 'n', url => 'ftp://files.example.invalid/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => '/hooks/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'example.invalid/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https:///path', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'HTTP:///path', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://?q=1', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'http:/example.invalid/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://user:pass@example.invalid/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://user@example.invalid/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/in#top', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/a b', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => E'https://example.invalid/a\tb', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => ' https://example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/' || repeat('a', 2025), events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => '', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'javascript:alert(1)', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'file:///etc/passwd', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
-- Port 0, however written, is refused; so is it by plain validate_url().
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid:0/in', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_url('http://127.0.0.1:00/');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_url('http://127.0.0.1:1/') AS port_1_ok,
	   integration.validate_url('http://127.0.0.1:10/') AS port_10_ok,
	   integration.validate_url('http://127.0.0.1:65535/') AS port_65535_ok;
-- 2048 characters is the limit, and is accepted; so are ports, queries and IPs.
SELECT length(url) AS url_length
  FROM integration.register_webhook(name => 'long url', url => 'https://example.invalid/' || repeat('a', 2024), events => '["*"]');
SELECT integration.validate_url('HTTPS://EXAMPLE.INVALID:8443/p?q=1&r=%20') AS ok_url,
	   integration.validate_url('http://127.0.0.1:9/') AS ok_ip,
	   integration.validate_url('http://[::1]:9/x') AS ok_ipv6;
:counts;

-- Names
SELECT integration.register_webhook(name => '', url => 'https://example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => '   ', url => 'https://example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => repeat('n', 201), url => 'https://example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => NULL, url => 'https://example.invalid/', events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => NULL, events => '["*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => NULL);
\echo :LAST_ERROR_SQLSTATE
:counts;

-- Event patterns
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '{"order": "*"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '"order.created"');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["order.created", 1]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '[["order.created"]]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["order."]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["**.x"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["ord*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '[""]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["order created"]');
\echo :LAST_ERROR_SQLSTATE
:counts;

-- Custom headers
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '"X-A: b"');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X-A": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X-A": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X-A": "a\r\nX-Injected: 1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X-A": "a\nb"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X A": "v"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"X-A:": "v"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"": "v"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"Content-Type": "text/plain"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"webhook-signature": "v1,x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"USER-AGENT": "me"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"user-agent": "me"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', headers => '{"Host": "evil.example"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]',
									headers => (SELECT jsonb_object_agg('X-H' || i, 'v') FROM generate_series(1, 51) i));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]',
									headers => jsonb_build_object('X-Big', repeat('v', 4097)));
\echo :LAST_ERROR_SQLSTATE
-- A header name has at most 256 bytes (the message shows the first 100).
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]',
									headers => jsonb_build_object('X-' || repeat('n', 255), 'v'));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_headers(jsonb_build_object('X-' || repeat('n', 254), 'v')) IS NOT NULL AS name_256_ok;
-- 50 headers, a 4096-byte value and a tab are accepted.
SELECT (SELECT count(*) FROM jsonb_object_keys(headers)) AS header_count
  FROM integration.register_webhook(name => 'many headers', url => 'https://example.invalid/', events => '["*"]',
									headers => (SELECT jsonb_object_agg('X-H' || i, 'v') FROM generate_series(1, 50) i));
SELECT integration.validate_headers(jsonb_build_object('X-Big', repeat('v', 4096))) IS NOT NULL AS big_ok,
	   integration.validate_headers(E'{"X-Tab": "a\\tb", "x!#$%&''*+-.^_`|~": "v"}') IS NOT NULL AS tab_and_token_chars_ok;
:counts;

-- Secrets
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'hunter2');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'whsec_');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'whsec_c2hvcnQ=');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'whsec_!!!!MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => '');
\echo :LAST_ERROR_SQLSTATE
-- URL-safe or unpadded base64: the Standard Webhooks libraries cannot use them.
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'whsec_yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_webhook(name => 'n', url => 'https://example.invalid/', events => '["*"]', secret => 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8');
\echo :LAST_ERROR_SQLSTATE
:counts;

-- update_webhook applies the same rules, and a refused update changes nothing.
SELECT id AS good FROM integration.list_webhooks() WHERE name = 'good' \gset
SELECT integration.update_webhook(id => :good, url => 'ftp://x.example.invalid/');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, name => ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, events => '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, headers => '{"Content-Length": "1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, secret => 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, secret => 'whsec_yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, url => 'https://ok.example.invalid:0/in');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, headers => jsonb_build_object(repeat('h', 257), 'v'));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :good, name => 'renamed', url => 'https://x.example.invalid/#frag');
\echo :LAST_ERROR_SQLSTATE
SELECT name, url, events, secret, headers, is_active FROM integration.show_webhook(id => :good);
:counts;

-- Plain DML meets the same checks.
INSERT INTO integration.webhook_endpoints (name, url, events) VALUES ('dml', 'ftp://x.example.invalid/', '["*"]');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_endpoints (name, url, events, headers)
VALUES ('dml', 'https://x.example.invalid/', '["*"]', '{"Webhook-Id": "x"}');
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET events = '["a..b"]' WHERE id = :good;
\echo :LAST_ERROR_SQLSTATE
-- An event's endpoint list is a flat list of ids, without NULLs.
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('order.dml', '{}', ARRAY[NULL, :good]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
VALUES ('order.dml', '{}', ARRAY[[:good], [:good]]::bigint[]);
\echo :LAST_ERROR_SQLSTATE
:counts;

-- Event names at dispatch and publish.
SELECT integration.dispatch_webhook(id => :good, event => NULL, payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :good, event => 'order.', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :good, event => '', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :good, event => 'order.*', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :good, event => 'order created', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.dispatch_webhook(id => :good, event => repeat('a', 201), payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => 'order.', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => '.order', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => '*', payload => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => repeat('a', 201), payload => '{}');
\echo :LAST_ERROR_SQLSTATE
-- 200 characters is the limit.
SELECT integration.publish_event(event => repeat('a', 200), payload => '{}') AS published_200_chars;
:counts;

-- Payload size: integration.max_payload_bytes is superuser-only.
SET integration.max_payload_bytes = '4kB';
\echo :LAST_ERROR_SQLSTATE
SHOW integration.max_payload_bytes;
RESET ROLE;
SET integration.max_payload_bytes = '2kB';
SET ROLE integration_test_app;
SHOW integration.max_payload_bytes;
SET integration.max_payload_bytes = '1MB';
\echo :LAST_ERROR_SQLSTATE
RESET integration.max_payload_bytes;
\echo :LAST_ERROR_SQLSTATE
SHOW integration.max_payload_bytes;
SELECT integration.dispatch_webhook(id => :good, event => 'order.created',
									payload => jsonb_build_object('blob', repeat('x', 3000)));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.publish_event(event => 'order.created',
								 payload => jsonb_build_object('blob', repeat('x', 3000)));
\echo :LAST_ERROR_SQLSTATE
-- The limit counts the whole envelope, which here is under 2kB.
SELECT integration.publish_event(event => 'order.created',
								 payload => jsonb_build_object('blob', repeat('x', 1900))) AS published_under_limit;
SELECT length(payload) <= 2048 AS within_limit FROM integration.webhook_events ORDER BY id DESC LIMIT 1;
:counts;
RESET ROLE;
RESET integration.max_payload_bytes;
SHOW integration.max_payload_bytes;
SET integration.max_payload_bytes = 100;
\echo :LAST_ERROR_SQLSTATE

-- The tenant setting itself.
SET integration.tenant_id = 'a b';
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'x';
SET integration.tenant_id = 'valid.id:with_all-chars';
SHOW integration.tenant_id;
RESET integration.tenant_id;
