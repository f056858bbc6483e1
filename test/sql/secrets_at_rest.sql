-- Endpoint secrets encrypted at rest (issue #14, item 7).  test/regress.conf sets
-- integration.encryption_key_file, so this server holds one key.  Secrets, key ids and
-- ciphertexts vary from run to run: they are captured with \gset and compared, never
-- printed.  Rotation and the worker's side are in test/t/011_secrets_at_rest.pl.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 7001;
\set known 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ0Fb6qZ7Lw8='

-- One key, which encrypts.
SELECT count(*) AS keys, bool_and(key_id ~ '^[0-9a-f]{8}$') AS key_id_shape,
	   bool_and(encrypts) AS it_encrypts
  FROM integration.encryption_keys();
SELECT key_id AS current_key FROM integration.encryption_keys() WHERE encrypts \gset

SET ROLE integration_test_app;
SET integration.tenant_id = 'sec-a';

-- register_webhook shows the secret it was given, and stores it encrypted.
SELECT id AS ep1, secret = :'known' AS shown_in_full
  FROM integration.register_webhook(name => 'a1', url => 'https://a.example.invalid/1',
									 events => '["*"]', secret => :'known') \gset
SELECT :'shown_in_full' AS shown_in_full;
SELECT secret ~ '^enc:v1:[0-9a-f]{8}:[A-Za-z0-9+/]+={0,2}$' AS stored_format,
	   integration.secret_key_id(secret) = :'current_key' AS under_current_key,
	   strpos(secret, substr(:'known', 7, 16)) = 0 AS no_plaintext_inside,
	   length(secret) AS stored_length
  FROM integration.webhook_endpoints WHERE id = :ep1;
-- The same secret twice: two ciphertexts (a random nonce per value).
SELECT id AS ep2 FROM integration.register_webhook(name => 'a2', url => 'https://a.example.invalid/2',
												   events => '["*"]', secret => :'known') \gset
SELECT count(DISTINCT secret) AS distinct_ciphertexts
  FROM integration.webhook_endpoints WHERE id IN (:ep1, :ep2);
-- A generated secret: shown once, stored encrypted.
SELECT id AS ep3, secret AS ep3_secret
  FROM integration.register_webhook(name => 'a3', url => 'https://a.example.invalid/3',
									 events => '["*"]') \gset
SELECT :'ep3_secret' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_shape,
	   (SELECT integration.secret_key_id(secret) = :'current_key'
		  FROM integration.webhook_endpoints WHERE id = :ep3) AS generated_stored_encrypted;

-- Listings decrypt only to mask: the last four characters of the secret itself.
SELECT id = :ep1 AS is_ep1, secret FROM integration.list_webhooks() WHERE id IN (:ep1, :ep2) ORDER BY id;
SELECT secret = 'whsec_********' || right(:'ep3_secret', 4) AS masked_generated
  FROM integration.show_webhook(id => :ep3);

-- Plain SQL by the app role: INSERT and UPDATE store ciphertext too, RETURNING included.
INSERT INTO integration.webhook_endpoints (name, url, events, secret)
VALUES ('plain', 'https://a.example.invalid/plain', '["*"]', :'known')
RETURNING id AS ep4, integration.secret_key_id(secret) = :'current_key' AS returned_encrypted \gset
SELECT :'returned_encrypted' AS returned_encrypted;
INSERT INTO integration.webhook_endpoints (name, url, events)
VALUES ('default', 'https://a.example.invalid/default', '["*"]')
RETURNING integration.secret_key_id(secret) = :'current_key' AS default_secret_encrypted;
UPDATE integration.webhook_endpoints SET secret = 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
 WHERE id = :ep4
RETURNING integration.secret_key_id(secret) = :'current_key' AS updated_encrypted,
		  strpos(secret, 'AAAAAAAA') = 0 AS no_plaintext_inside;
SELECT secret AS masked_after_plain_update FROM integration.show_webhook(id => :ep4);
-- update_webhook too, and it shows the mask.
SELECT secret AS masked FROM integration.update_webhook(id => :ep2, secret => 'whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB');
SELECT integration.secret_key_id(secret) = :'current_key' AS api_update_encrypted
  FROM integration.webhook_endpoints WHERE id = :ep2;

-- The plaintext is validated before it is encrypted, with the validator's own error,
-- which never echoes the secret.
UPDATE integration.webhook_endpoints SET secret = 'hunter2' WHERE id = :ep4;
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_webhook(id => :ep4, secret => 'whsec_yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=');
\echo :LAST_ERROR_SQLSTATE

-- A value that looks encrypted but is not one of ours is refused.
UPDATE integration.webhook_endpoints SET secret = 'enc:v1:zz:abc' WHERE id = :ep4;
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET secret = 'enc:v9:00000000:AAAA' WHERE id = :ep4;
\echo :LAST_ERROR_SQLSTATE

-- Setting a secret to itself keeps it as it is (nothing to encrypt again).
SELECT secret AS ep1_stored FROM integration.webhook_endpoints WHERE id = :ep1 \gset
UPDATE integration.webhook_endpoints SET secret = secret WHERE id = :ep1;
SELECT secret = :'ep1_stored' AS unchanged FROM integration.webhook_endpoints WHERE id = :ep1;

-- A ciphertext is bound to its row: copied to another endpoint of the same tenant, it
-- does not decrypt, and the write is refused.  (Terse: the detail names the key id.)
\set VERBOSITY terse
UPDATE integration.webhook_endpoints SET secret = :'ep1_stored' WHERE id = :ep2;
\echo :LAST_ERROR_SQLSTATE

-- ... nor to another tenant's endpoint with the same id (as a superuser, who may write
-- any tenant's rows).
RESET ROLE;
SET integration.tenant_id = 'sec-b';
INSERT INTO integration.webhook_endpoints (tenant_id, id, name, url, events, secret)
	OVERRIDING SYSTEM VALUE
VALUES ('sec-b', :ep1, 'b1', 'https://b.example.invalid/1', '["*"]', :'ep1_stored');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- Skipping triggers (replica mode) stores the copy, and it still does not decrypt.
SET session_replication_role = replica;
INSERT INTO integration.webhook_endpoints (tenant_id, id, name, url, events, secret)
	OVERRIDING SYSTEM VALUE
VALUES ('sec-b', :ep1, 'b1', 'https://b.example.invalid/1', '["*"]', :'ep1_stored');
RESET session_replication_role;
SELECT secret AS masked_copy FROM integration.show_webhook(id => :ep1);
SELECT integration.mask_stored_secret(:'ep1_stored', 'webhook_endpoints.secret', 'sec-a', :'ep1') AS right_row,
	   integration.mask_stored_secret(:'ep1_stored', 'webhook_endpoints.secret', 'sec-b', :'ep1') AS other_tenant,
	   integration.mask_stored_secret(:'ep1_stored', 'webhook_endpoints.secret', 'sec-a', :'ep2') AS other_id,
	   integration.mask_stored_secret(:'ep1_stored', 'connector.token', 'sec-a', :'ep1') AS other_purpose;
DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'sec-b';

-- Moving a row to another tenant (superusers only) re-encrypts its secret for it.
UPDATE integration.webhook_endpoints SET tenant_id = 'sec-b' WHERE tenant_id = 'sec-a' AND id = :ep1;
SELECT secret <> :'ep1_stored' AS reencrypted, integration.secret_key_id(secret) = :'current_key' AS current
  FROM integration.webhook_endpoints WHERE tenant_id = 'sec-b' AND id = :ep1;
SELECT secret AS masked_after_move FROM integration.show_webhook(id => :ep1);
UPDATE integration.webhook_endpoints SET tenant_id = 'sec-a' WHERE tenant_id = 'sec-b' AND id = :ep1;
SET integration.tenant_id = 'sec-a';
SELECT secret AS masked_back FROM integration.show_webhook(id => :ep1);

-- Writes that skip triggers still meet the CHECK: a valid plaintext or a well-formed
-- encrypted value, nothing else.
SET session_replication_role = replica;
UPDATE integration.webhook_endpoints SET secret = 'hunter2' WHERE id = :ep3;
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET secret = 'enc:v1:0000' WHERE id = :ep3;
\echo :LAST_ERROR_SQLSTATE
-- Two secrets left in plain text and one under a key this server does not hold, as a
-- server without a key file, or a restore from another cluster, leaves them.
UPDATE integration.webhook_endpoints SET secret = :'known' WHERE id IN (:ep3, :ep4);
UPDATE integration.webhook_endpoints
   SET secret = 'enc:v1:00000000:' || encode(decode(repeat('00', 40), 'hex'), 'base64')
 WHERE id = :ep2;
RESET session_replication_role;
SELECT id = :ep2 AS is_ep2, integration.secret_key_id(secret) AS key_id,
	   integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, id::text) AS masked
  FROM integration.webhook_endpoints
 WHERE id IN (:ep2, :ep3, :ep4) ORDER BY id;
-- A plain UPDATE of a row whose secret is under a missing key keeps it as it is.
UPDATE integration.webhook_endpoints SET secret = secret, name = 'a2 renamed' WHERE id = :ep2;
SELECT integration.secret_key_id(secret) AS still_missing_key FROM integration.webhook_endpoints WHERE id = :ep2;
-- ... and refuses to move it to another identity, which would need the key.
UPDATE integration.webhook_endpoints SET tenant_id = 'sec-b' WHERE id = :ep2;
\echo :LAST_ERROR_SQLSTATE

-- reencrypt_secrets(): the tables' owner or a superuser only.
SET ROLE integration_test_app;
SELECT integration.reencrypt_secrets();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- It encrypts the two plain ones, across tenants and whatever the tenant setting,
-- and warns about the one it cannot decrypt.
RESET integration.tenant_id;
SELECT integration.reencrypt_secrets() AS changed;
SELECT integration.reencrypt_secrets() AS changed_again;
SET integration.tenant_id = 'sec-a';
SELECT id = :ep2 AS is_ep2, integration.secret_key_id(secret) = :'current_key' AS current
  FROM integration.webhook_endpoints WHERE id IN (:ep2, :ep3, :ep4) ORDER BY id;
SELECT secret AS masked_after_reencrypt FROM integration.show_webhook(id => :ep4);

-- secret_key_id(): NULL for a plain value, an error for a malformed encrypted one.
SELECT integration.secret_key_id(:'known') IS NULL AS plain_has_no_key;
SELECT integration.secret_key_id('enc:v1:nothex00:AAAA');
\echo :LAST_ERROR_SQLSTATE

-- Custom headers: each value encrypted at rest like the secret, bound to the tenant,
-- the endpoint and the header's name; the names stay readable.
SET ROLE integration_test_app;
SET integration.tenant_id = 'sec-a';
\set token 'Bearer tok-4f9a2c7e-secret-value'
SELECT id AS eph, headers = jsonb_build_object('Authorization', :'token', 'X-Team', 'billing')
		AS register_shows_headers_as_given
  FROM integration.register_webhook(name => 'h1', url => 'https://a.example.invalid/h1', events => '["*"]',
									 headers => jsonb_build_object('Authorization', :'token',
																   'X-Team', 'billing')) \gset
SELECT :'register_shows_headers_as_given' AS register_shows_headers_as_given;
-- The row holds the names and a ciphertext per value, under the current key; no byte
-- of the table's row holds the value.
SELECT array(SELECT jsonb_object_keys(headers) ORDER BY 1) AS stored_names,
	   (SELECT bool_and(v ~ '^enc:v1:[0-9a-f]{8}:[A-Za-z0-9+/]+={0,2}$'
						AND integration.secret_key_id(v) = :'current_key')
		  FROM jsonb_each_text(headers) AS e(k, v)) AS each_value_encrypted,
	   strpos(w::text, 'tok-4f9a2c7e') = 0 AND strpos(w::text, 'billing') = 0 AS no_plaintext_in_row
  FROM integration.webhook_endpoints w WHERE id = :eph;
SELECT headers AS eph_stored FROM integration.webhook_endpoints WHERE id = :eph \gset
-- Listings show each name with its value masked as a secret is: a value of 16
-- characters or more with its last four, a shorter one (billing) with none.
SELECT headers AS shown FROM integration.show_webhook(id => :eph);
SELECT headers AS listed FROM integration.list_webhooks() WHERE id = :eph;
-- Changing another field keeps the stored headers as they are, and shows them masked.
SELECT name, headers AS returned FROM integration.update_webhook(id => :eph, name => 'h1 renamed');
SELECT headers = :'eph_stored' AS headers_kept FROM integration.webhook_endpoints WHERE id = :eph;
-- New headers: returned as given, stored encrypted, masked afterwards.
SELECT headers AS returned_as_given
  FROM integration.update_webhook(id => :eph, headers => '{"X-Api-Key": "key-77aa-secret-91"}');
SELECT strpos(headers::text, 'key-77aa') = 0 AS no_plaintext_inside,
	   integration.secret_key_id(headers->>'X-Api-Key') = :'current_key' AS update_encrypted
  FROM integration.webhook_endpoints WHERE id = :eph;
SELECT headers AS masked_after_update FROM integration.show_webhook(id => :eph);
-- Plain SQL stores ciphertext too.
UPDATE integration.webhook_endpoints SET headers = '{"X-Plain": "plain-sql-value-Pl41"}' WHERE id = :eph
RETURNING strpos(headers::text, 'plain-sql') = 0 AS plain_update_encrypted;
SELECT headers AS masked_after_plain_update FROM integration.show_webhook(id => :eph);
-- The values are validated before they are encrypted, with errors that name the header
-- and never echo the value.
SELECT integration.update_webhook(id => :eph, headers => jsonb_build_object('X-Bad', E'a\nb'));
SELECT integration.update_webhook(id => :eph, headers => '{"webhook-id": "x"}');
SELECT integration.update_webhook(id => :eph, headers => '{"X-Fake": "enc:v1:zz:abc"}');
\echo :LAST_ERROR_SQLSTATE
-- A ciphertext is bound to its header name and its endpoint: copied under another
-- name, or to another endpoint, it does not decrypt and the write is refused.
\set VERBOSITY terse
SELECT headers->>'X-Plain' AS xplain_stored FROM integration.webhook_endpoints WHERE id = :eph \gset
UPDATE integration.webhook_endpoints SET headers = jsonb_build_object('X-Other', :'xplain_stored')
 WHERE id = :eph;
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET headers = jsonb_build_object('X-Plain', :'xplain_stored')
 WHERE id = :ep3;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- ... while the same value under the same name of the same row is kept as it is.
UPDATE integration.webhook_endpoints SET headers = jsonb_build_object('X-Plain', :'xplain_stored')
 WHERE id = :eph
RETURNING headers->>'X-Plain' = :'xplain_stored' AS kept_as_is;
-- Header values go only to the server they were given for: url moved to another
-- server, or the endpoint to another id, takes them again, and a ciphertext is not
-- the values given again; a new path on the same server keeps them.
\set VERBOSITY terse
SELECT integration.update_webhook(id => :eph, url => 'https://elsewhere.example.invalid/h1');
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET url = 'http://a.example.invalid/h1', headers = headers WHERE id = :eph;
\echo :LAST_ERROR_SQLSTATE
UPDATE integration.webhook_endpoints SET id = DEFAULT WHERE id = :eph;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.webhook_endpoints (name, url, events, headers)
SELECT 'copy', 'https://elsewhere.example.invalid/h1', '["*"]', headers FROM integration.webhook_endpoints WHERE id = :eph;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT url AS same_server_new_path FROM integration.update_webhook(id => :eph, url => 'https://A.example.invalid/h1/v2');
SELECT url AS moved, headers AS with_its_values_again
  FROM integration.update_webhook(id => :eph, url => 'https://elsewhere.example.invalid/h1',
								  headers => '{"X-Plain": "plain-sql-value-Pl41"}');
SELECT headers->>'X-Plain' AS xplain_stored FROM integration.webhook_endpoints WHERE id = :eph \gset
SELECT integration.mask_stored_secrets(headers, 'webhook_endpoints.headers', 'sec-a', id::text) AS right_row,
	   integration.mask_stored_secrets(headers, 'webhook_endpoints.headers', 'sec-b', id::text) AS other_tenant,
	   integration.mask_stored_secrets(headers, 'webhook_endpoints.secret', 'sec-a', id::text) AS other_purpose
  FROM integration.webhook_endpoints WHERE id = :eph;
-- Another tenant sees neither the endpoint nor its headers.
SET integration.tenant_id = 'sec-b';
SELECT count(*) AS other_tenant_sees FROM integration.list_webhooks() WHERE id = :eph;
SELECT count(*) AS other_tenant_rows FROM integration.webhook_endpoints WHERE id = :eph;
SET integration.tenant_id = 'sec-a';
RESET ROLE;
-- Writes that skip triggers meet the CHECK: a well-formed ciphertext or a valid value.
SET session_replication_role = replica;
UPDATE integration.webhook_endpoints SET headers = '{"X-Plain": "enc:v1:0000"}' WHERE id = :eph;
\echo :LAST_ERROR_SQLSTATE
-- A value left in plain text, as a server without a key file leaves it.
UPDATE integration.webhook_endpoints
   SET headers = jsonb_build_object('X-Plain', :'xplain_stored', 'X-Left', 'left-plain-value-L3ft')
 WHERE id = :eph;
RESET session_replication_role;
SELECT headers AS masked_mixed FROM integration.show_webhook(id => :eph);
-- reencrypt_secrets() encrypts it (one row changed) and keeps the other value as it is
-- (the warning is for the secret left under a missing key above).
RESET integration.tenant_id;
SELECT integration.reencrypt_secrets() AS changed;
SET integration.tenant_id = 'sec-a';
SELECT integration.secret_key_id(headers->>'X-Left') = :'current_key' AS left_now_encrypted,
	   headers->>'X-Plain' = :'xplain_stored' AS other_value_kept
  FROM integration.webhook_endpoints WHERE id = :eph;
SELECT headers AS masked_after_reencrypt FROM integration.show_webhook(id => :eph);

DELETE FROM integration.webhook_endpoints WHERE tenant_id IN ('sec-a', 'sec-b');
