-- rotate_secret() (issue #15, item 6): a new generated secret, shown once; the old one
-- kept as a retired secret, encrypted as it was, until its grace ends; at most three;
-- tenant-scoped like every call.  Secrets and ciphertexts vary from run to run: they
-- are captured with \gset and compared, never printed.  What the worker signs with,
-- checked by the official libraries, is in test/t/016_secret_rotation.pl.
\set SHOW_CONTEXT never
ALTER TABLE integration.webhook_endpoints ALTER COLUMN id RESTART WITH 8001;
\set known 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ0Fb6qZ7Lw8='
SELECT key_id AS current_key FROM integration.encryption_keys() WHERE encrypts \gset

SET ROLE integration_test_app;
SET integration.tenant_id = 'rot-a';
SELECT id AS ep FROM integration.register_webhook(name => 'r', url => 'https://r.example.invalid/',
												  events => '["*"]', secret => :'known') \gset
SELECT secret AS stored_before FROM integration.webhook_endpoints WHERE id = :ep \gset

-- A rotation returns a new generated secret, which the endpoint now has (stored
-- encrypted, listed masked).
SELECT integration.rotate_secret(id => :ep) AS new1 \gset
SELECT :'new1' ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_shape, :'new1' <> :'known' AS differs;
SELECT secret = 'whsec_********' || right(:'new1', 4) AS listed_masked
  FROM integration.show_webhook(id => :ep);
SELECT integration.secret_key_id(secret) = :'current_key' AS new_stored_encrypted,
	   strpos(secret, substr(:'new1', 7, 16)) = 0 AS no_plaintext_inside,
	   updated_at > created_at OR updated_at = now() AS updated
  FROM integration.webhook_endpoints WHERE id = :ep;
-- The old secret is retired with its very ciphertext (it decrypts for the same tenant
-- and endpoint), for the default grace of 24 hours.
SELECT secret = :'stored_before' AS same_ciphertext,
	   integration.secret_key_id(secret) = :'current_key' AS encrypted,
	   integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, endpoint_id::text)
		 = integration.mask_secret(:'known') AS is_the_old_secret,
	   expires_at - retired_at AS grace
  FROM integration.retired_secrets WHERE endpoint_id = :ep;
-- The log says when the old one stops signing, and shows no secret.
SELECT level, source, event, message ~ '^webhook \d+ has a new secret; the old one signs until ' AS message,
	   context - 'endpoint_id' - 'old_secret_expires_at' AS context,
	   (context ->> 'endpoint_id')::bigint = :ep AS endpoint,
	   strpos(l::text, substr(:'new1', 7, 12)) = 0 AND strpos(l::text, substr(:'known', 7, 12)) = 0
		 AS no_secret_logged
  FROM integration.list_integration_logs(1) l;

-- More rotations keep the three secrets retired last; the oldest goes first.
SELECT integration.rotate_secret(id => :ep, grace => '1 hour') AS new2 \gset
SELECT integration.rotate_secret(id => :ep, grace => '2 hours') AS new3 \gset
SELECT integration.rotate_secret(id => :ep, grace => '3 hours') AS new4 \gset
SELECT count(*) AS retired,
	   array_agg(expires_at - retired_at ORDER BY id) AS graces,
	   bool_and(integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, endpoint_id::text)
				<> integration.mask_secret(:'known')) AS first_secret_dropped
  FROM integration.retired_secrets WHERE endpoint_id = :ep;
SELECT context ->> 'retired_secrets' AS retired, context ->> 'dropped' AS dropped
  FROM integration.list_integration_logs(1);
-- The secrets retired are those the rotations returned, in order.
SELECT array_agg(integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, endpoint_id::text)
				 ORDER BY id)
		 = ARRAY[integration.mask_secret(:'new1'), integration.mask_secret(:'new2'),
				 integration.mask_secret(:'new3')] AS retired_in_order
  FROM integration.retired_secrets WHERE endpoint_id = :ep;

-- A grace of 0 retires nothing: the replaced secret stops signing at once, and the
-- others keep their own grace.
SELECT integration.rotate_secret(id => :ep, grace => '0') AS new5 \gset
SELECT count(*) AS retired, bool_and(integration.mask_stored_secret(secret, 'webhook_endpoints.secret',
																	 tenant_id, endpoint_id::text)
									  <> integration.mask_secret(:'new4')) AS replaced_not_kept
  FROM integration.retired_secrets WHERE endpoint_id = :ep;
SELECT context ->> 'old_secret_expires_at' AS expires, message ~ 'the old one signs until now$' AS message
  FROM integration.list_integration_logs(1);

-- Expired ones are purged by the next rotation (and by the worker).
RESET ROLE;
UPDATE integration.retired_secrets SET expires_at = now() - interval '1 second'
 WHERE endpoint_id = :ep AND expires_at - retired_at = interval '1 hour';
SET ROLE integration_test_app;
SELECT integration.rotate_secret(id => :ep, grace => '10 minutes') AS new6 \gset
SELECT count(*) AS retired, count(*) FILTER (WHERE expires_at <= now()) AS expired,
	   array_agg(expires_at - retired_at ORDER BY id) AS graces
  FROM integration.retired_secrets WHERE endpoint_id = :ep;

-- Bad input.
SELECT integration.rotate_secret(id => :ep, grace => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.rotate_secret(id => :ep, grace => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.rotate_secret(id => :ep, grace => '30 days 1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.rotate_secret(id => 999999);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.rotate_secret(id => NULL);
\echo :LAST_ERROR_SQLSTATE
RESET integration.tenant_id;
SELECT integration.rotate_secret(id => :ep);
\echo :LAST_ERROR_SQLSTATE

-- Another tenant's endpoint is not found, as by every other call, and keeps its
-- secrets; that tenant sees none of them.
SET integration.tenant_id = 'rot-b';
SELECT integration.rotate_secret(id => :ep);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS retired_visible_to_other_tenant FROM integration.retired_secrets;
DELETE FROM integration.retired_secrets;
UPDATE integration.retired_secrets SET expires_at = now() + interval '30 days';
SET integration.tenant_id = 'rot-a';
SELECT (SELECT count(*) FROM integration.retired_secrets r WHERE r.endpoint_id = :ep) AS retired,
	   w.secret = 'whsec_********' || right(:'new6', 4) AS secret_unchanged
  FROM integration.show_webhook(id => :ep) w;
-- A tenant cannot put its rows on another's endpoint.
SET integration.tenant_id = 'rot-b';
INSERT INTO integration.retired_secrets (tenant_id, endpoint_id, secret, expires_at)
VALUES ('rot-a', :ep, :'known', now() + interval '1 hour');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.retired_secrets (endpoint_id, secret, expires_at)
VALUES (:ep, :'known', now() + interval '1 hour');
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'rot-a';

-- Written by hand, a retired secret is validated and encrypted like an endpoint's.
INSERT INTO integration.retired_secrets (endpoint_id, secret, expires_at)
VALUES (:ep, 'hunter2', now() + interval '1 hour');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO integration.retired_secrets (endpoint_id, secret, expires_at)
VALUES (:ep, :'known', now() + interval '1 hour')
RETURNING integration.secret_key_id(secret) = :'current_key' AS stored_encrypted,
		  strpos(secret, substr(:'known', 7, 16)) = 0 AS no_plaintext_inside;
-- A ciphertext of another endpoint does not decrypt for this one, and is refused.
SELECT id AS other FROM integration.register_webhook(name => 'o', url => 'https://o.example.invalid/',
													 events => '["*"]') \gset
\set VERBOSITY terse
INSERT INTO integration.retired_secrets (endpoint_id, secret, expires_at)
SELECT :other, secret, now() + interval '1 hour' FROM integration.webhook_endpoints WHERE id = :ep;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- reencrypt_secrets() reaches retired secrets (as it finds every column an
-- encrypt_secret() trigger names): one left in plain text is encrypted.
RESET ROLE;
SET session_replication_role = replica;
UPDATE integration.retired_secrets SET secret = :'known'
 WHERE id = (SELECT max(id) FROM integration.retired_secrets WHERE endpoint_id = :ep);
RESET session_replication_role;
SELECT count(*) FILTER (WHERE integration.secret_key_id(secret) IS NULL) AS plain_before
  FROM integration.retired_secrets WHERE endpoint_id = :ep;
SELECT integration.reencrypt_secrets() AS changed;
SELECT count(*) FILTER (WHERE integration.secret_key_id(secret) = :'current_key') AS encrypted_after,
	   count(*) AS retired
  FROM integration.retired_secrets WHERE endpoint_id = :ep;
SET ROLE integration_test_app;
SET integration.tenant_id = 'rot-a';

-- Setting a secret by hand ends every grace period, and so does a delete.
SELECT secret = 'whsec_********' || right(:'known', 4) AS masked
  FROM integration.update_webhook(id => :ep, secret => :'known');
SELECT count(*) AS retired_after_secret_set FROM integration.retired_secrets WHERE endpoint_id = :ep;
SELECT integration.rotate_secret(id => :other) IS NOT NULL AS rotated;
SELECT count(*) AS retired_before_delete FROM integration.retired_secrets WHERE endpoint_id = :other;
SELECT integration.delete_webhook(id => :other);
SELECT count(*) AS retired_after_delete FROM integration.retired_secrets WHERE endpoint_id = :other;
-- A deleted endpoint is not found.
SELECT integration.rotate_secret(id => :other);
\echo :LAST_ERROR_SQLSTATE

RESET ROLE;
DELETE FROM integration.retired_secrets WHERE tenant_id = 'rot-a';
DELETE FROM integration.webhook_endpoints WHERE tenant_id = 'rot-a';
