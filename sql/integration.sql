-- integration: tenant-scoped webhooks, published in the writer's transaction and
-- delivered by a background worker.  This is the one hand-edited source of the install
-- script; `make` copies it to sql/integration--<version>.sql.

\echo Use "CREATE EXTENSION integration" to load this file. \quit

------------------------------------------------------------------------------------------
-- Preconditions
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._is_preloaded() RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_is_preloaded'
	LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION integration._is_preloaded() IS
	'Whether the library was loaded through shared_preload_libraries (internal).';

DO $$
BEGIN
	IF NOT integration._is_preloaded() THEN
		RAISE EXCEPTION 'integration must be loaded via shared_preload_libraries'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'The delivery worker and the commit-time wake-up need shared memory, which exists only when the library is preloaded.',
				  HINT = 'Add integration to shared_preload_libraries in postgresql.conf, restart the server, then run CREATE EXTENSION again.';
	END IF;
	IF pg_catalog.current_setting('server_encoding') <> 'UTF8' THEN
		RAISE EXCEPTION 'integration needs a UTF8 database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('This database''s encoding is %s; webhook payloads are UTF-8 JSON sent byte for byte.',
											 pg_catalog.current_setting('server_encoding')),
				  HINT = 'Create the extension in a database created with ENCODING ''UTF8''.';
	END IF;
END
$$;

------------------------------------------------------------------------------------------
-- Tenancy (src/tenant.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'integration_current_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION integration.current_tenant() IS
	'The tenant this session acts as: integration.tenant_id, or when that is empty the one tenant its roles are bound to; NULL when none. Raises insufficient_privilege for a tenant a bound role of the session is not bound to.';

CREATE FUNCTION integration.require_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'integration_require_tenant'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION integration.require_tenant() IS
	'The tenant current_tenant() returns; raises insufficient_privilege when there is none.';

CREATE FUNCTION integration.require_tenant_for_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_require_tenant_for_write'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.require_tenant_for_write() IS
	'Statement trigger: a role bound by row-level security cannot write with no tenant selected.';

------------------------------------------------------------------------------------------
-- Tenants bound to roles (src/tenant_binding.c).  A bound role may act only as its
-- tenants: current_tenant() and require_tenant() refuse any other, whatever
-- integration.tenant_id says (docs/tenancy-and-security.md).
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.validate_tenant_id(tenant text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_tenant_id'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_tenant_id(text) IS
	'Returns tenant when it is a valid tenant id (1 to 64 characters from A-Z a-z 0-9 _ - . :); raises invalid_parameter_value otherwise.';

-- Not tenant-scoped: each row lets a role (and its members) act as a tenant.  The
-- library reads it directly into a per-backend cache, not through SQL, so neither the
-- reader's privileges nor the policy below stand in its way; the trigger keeps every
-- backend's cache current.  regrole, not a name: the binding follows ALTER ROLE
-- RENAME, and pg_dump writes the role's name, so a restore binds the same role.
CREATE TABLE integration.tenant_roles (
	tenant_id		text COLLATE "C" NOT NULL,
	role			regrole NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, role),
	CONSTRAINT tenant_roles_tenant_check CHECK (integration.validate_tenant_id(tenant_id) IS NOT NULL),
	CONSTRAINT tenant_roles_role_check CHECK (role::oid <> 0)
);
COMMENT ON TABLE integration.tenant_roles IS
	'Tenants bound to roles: a role listed here, or a member of it, may act only as the tenants listed for it. Change it with integration.bind_role() and integration.unbind_role().';
-- Configuration, not data of the extension: pg_dump keeps it.
SELECT pg_catalog.pg_extension_config_dump('integration.tenant_roles', '');

CREATE FUNCTION integration.may_bind_roles() RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_may_bind_roles'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.may_bind_roles() IS
	'Whether the current user may change tenant bindings: a superuser or a role with the privileges of the owner of integration.tenant_roles.';

CREATE FUNCTION integration.tenant_roles_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_tenant_roles_written'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.tenant_roles_written() IS
	'Statement trigger on tenant_roles: only integration.may_bind_roles() roles change bindings, and every backend''s binding cache learns of the change.';

-- Whatever was granted on the table (GRANT ... ON ALL TABLES IN SCHEMA integration
-- includes it), only administrators write it, TRUNCATE included; the others see none
-- of its rows (integration.bound_tenants() tells a session its own).
CREATE TRIGGER tenant_roles_written BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON integration.tenant_roles
	FOR EACH STATEMENT EXECUTE FUNCTION integration.tenant_roles_written();
ALTER TABLE integration.tenant_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration.tenant_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY administrators_only ON integration.tenant_roles
	USING (integration.may_bind_roles()) WITH CHECK (integration.may_bind_roles());

CREATE FUNCTION integration.bound_tenants() RETURNS text[]
	AS 'MODULE_PATHNAME', 'integration_bound_tenants'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION integration.bound_tenants() IS
	'The tenants this session may act as, sorted; NULL when none of its roles is bound (it may act as any tenant).';

CREATE FUNCTION integration._role_bound_to(role regrole, tenant text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_role_bound_to'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._role_bound_to(regrole, text) IS
	'Whether role is bound to tenant, itself or as a member of a bound role (internal, for the checks of the roles the workers run tenants'' code as).';

CREATE FUNCTION integration.bind_role(role regrole, tenant text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	attrs record;
	added integer;
BEGIN
	IF bind_role.role IS NULL OR bind_role.tenant IS NULL THEN
		RAISE EXCEPTION 'role and tenant must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM integration.validate_tenant_id(bind_role.tenant);
	SELECT r.rolname, r.rolsuper, r.rolbypassrls INTO attrs
	  FROM pg_catalog.pg_roles r WHERE r.oid = bind_role.role;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role with OID % does not exist', bind_role.role::oid
			USING ERRCODE = 'undefined_object',
				  HINT = 'Pass an existing role, e.g. ''tenant_acme''::regrole.';
	END IF;
	IF attrs.rolsuper OR attrs.rolbypassrls THEN
		RAISE EXCEPTION 'role "%" cannot be bound to a tenant', attrs.rolname
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Role "%s" is a superuser or has BYPASSRLS: row-level security does not apply to it, so it sees every tenant''s rows whatever it is bound to.', attrs.rolname),
				  HINT = 'Bind a role with NOSUPERUSER and NOBYPASSRLS.';
	END IF;
	-- A dropped role's rows bind nothing; a role created later with its OID must not
	-- inherit them.
	DELETE FROM integration.tenant_roles t
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = t.role);
	INSERT INTO integration.tenant_roles AS t (tenant_id, role)
	VALUES (bind_role.tenant, bind_role.role)
	ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS added = ROW_COUNT;
	RETURN added > 0;
END
$$;
COMMENT ON FUNCTION integration.bind_role(regrole, text) IS
	'Binds a role, and its members, to a tenant: sessions acting as it may act only as its tenants. Returns false when the binding existed. Superusers and roles with the privileges of the owner of integration.tenant_roles only.';

CREATE FUNCTION integration.unbind_role(role regrole, tenant text DEFAULT NULL) RETURNS integer
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	removed integer;
BEGIN
	IF unbind_role.role IS NULL THEN
		RAISE EXCEPTION 'role must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	DELETE FROM integration.tenant_roles t
	 WHERE t.role = unbind_role.role
	   AND (unbind_role.tenant IS NULL OR t.tenant_id = unbind_role.tenant);
	GET DIAGNOSTICS removed = ROW_COUNT;
	DELETE FROM integration.tenant_roles t
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = t.role);
	RETURN removed;
END
$$;
COMMENT ON FUNCTION integration.unbind_role(regrole, text) IS
	'Removes a role''s binding to a tenant, or all its bindings when tenant is NULL; returns how many. Without bindings a role may act as any tenant again.';

------------------------------------------------------------------------------------------
-- Validation (src/validate.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.validate_url(url text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_url'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_url(text) IS
	'Returns url when it is an absolute http(s) URL without credentials or fragment; raises invalid_parameter_value otherwise.';

-- STABLE, not IMMUTABLE, and no CHECK constraint: the answer depends on settings.
CREATE FUNCTION integration.validate_destination(url text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_destination'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_destination(text) IS
	'Returns url when validate_url() accepts it and the worker may send to it under the settings in force: https when integration.https_only is on, and a host that is not an IP address in a blocked range (see integration.allowed_networks); raises invalid_parameter_value otherwise. Host names are checked when the worker connects.';

CREATE FUNCTION integration.validate_headers(headers jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'integration_validate_headers'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_headers(jsonb) IS
	'Returns headers when it is a JSON object of valid, non-reserved header names to safe string values; raises invalid_parameter_value otherwise.';

-- STABLE, not IMMUTABLE: the size limit is the setting integration.max_payload_bytes.
CREATE FUNCTION integration.validate_envelope(event text, payload text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_envelope'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.validate_envelope(text, text) IS
	'Returns payload when it is at most integration.max_payload_bytes long and is the envelope integration.envelope() builds for event; raises program_limit_exceeded or invalid_parameter_value otherwise.';

------------------------------------------------------------------------------------------
-- Signing, verification and event matching (src/hmac.c, src/signature.c, src/signature_sql.c, src/event_pattern.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.hmac(key bytea, data bytea, algorithm text DEFAULT 'sha256')
RETURNS bytea
AS 'MODULE_PATHNAME', 'integration_hmac'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.hmac(bytea, bytea, text) IS
'HMAC of data under key with sha1, sha256, sha384 or sha512 (case-insensitive)';

CREATE FUNCTION integration.sign(scheme text, secret text, body text,
                                 msg_id text DEFAULT NULL, "timestamp" bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'integration_sign'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION integration.sign(text, text, text, text, bigint) IS
'Headers (name -> value) a sender attaches to sign body in scheme standard, stripe, shopify, woocommerce or github; msg_id and timestamp (unix seconds) are generated when NULL';

CREATE FUNCTION integration.sign_request(scheme text, secret text, method text, uri text, body text,
                                         "timestamp" bigint DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'integration_sign_request'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION integration.sign_request(text, text, text, text, text, bigint) IS
'Headers (name -> value) a sender attaches to sign a request in a scheme that signs the method and URI too (hubspot, v3); timestamp in the unit of the scheme''s header (milliseconds for hubspot), now when NULL';

CREATE FUNCTION integration.verify(scheme text, secret text, headers jsonb, body text,
                                   tolerance interval DEFAULT '5 minutes',
                                   now timestamptz DEFAULT now())
RETURNS boolean
AS 'MODULE_PATHNAME', 'integration_verify'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION integration.verify(text, text, jsonb, text, interval, timestamptz) IS
'True if headers (name -> value, names case-insensitive; the request line as ":method" and ":uri" for hubspot) carry a valid signature of body in the scheme (for adyen, every item of the notification body is signed), within tolerance of now; false for anything malformed';

CREATE FUNCTION integration.generate_secret()
RETURNS text
AS 'MODULE_PATHNAME', 'integration_generate_secret'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.generate_secret() IS
'A new Standard Webhooks secret: whsec_ followed by the base64 of 32 random bytes';

CREATE FUNCTION integration.validate_secret(secret text)
RETURNS text
AS 'MODULE_PATHNAME', 'integration_validate_secret'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.validate_secret(text) IS
'Returns its input if it is a space-separated list of valid Standard Webhooks secrets, raises invalid_parameter_value otherwise';

CREATE FUNCTION integration.event_matches(patterns jsonb, event text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'integration_event_matches'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.event_matches(jsonb, text) IS
'True if the event name matches any pattern of a JSON array: exact, * for one segment, a final ** for one or more, or * alone for all';

CREATE FUNCTION integration.validate_event_patterns(patterns jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'integration_validate_event_patterns'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.validate_event_patterns(jsonb) IS
'Returns its input if it is a non-empty JSON array of valid event patterns, raises invalid_parameter_value otherwise';

CREATE FUNCTION integration.validate_event_name(event text)
RETURNS text
AS 'MODULE_PATHNAME', 'integration_validate_event_name'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration.validate_event_name(text) IS
'Returns its input if it is a valid event name (dot-separated segments of [A-Za-z0-9_-]), raises invalid_parameter_value otherwise';

-- The index keys of an endpoint's patterns and of the event names they may match
-- (src/pattern_keys.c): publishing finds a large tenant's candidate endpoints for an
-- event name with the GIN index webhook_endpoints_pattern_keys_idx below.
CREATE FUNCTION integration._event_pattern_keys(tenant_id text, events jsonb)
RETURNS text[]
AS 'MODULE_PATHNAME', 'integration_event_pattern_keys'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration._event_pattern_keys(text, jsonb) IS
'The index key of each valid pattern of a JSON array, qualified by the tenant: a pattern that matches an event name has one of _event_name_keys() of that name (internal, for the index publishing looks endpoints up in)';

CREATE FUNCTION integration._event_name_keys(tenant_id text, event text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'integration_event_name_keys'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION integration._event_name_keys(text, text) IS
'The index keys under which the patterns of a tenant that may match an event name are filed by _event_pattern_keys(); at most 24, empty for an invalid name (internal, for tests)';

CREATE FUNCTION integration._endpoint_cache_state(tenant_id text)
RETURNS text
AS 'MODULE_PATHNAME', 'integration_endpoint_cache_state'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION integration._endpoint_cache_state(text) IS
'What this session''s endpoint cache holds for a tenant: its endpoints read whole, or its event names looked up one by one through the index of patterns; NULL when nothing (internal, for tests)';

CREATE FUNCTION integration.validate_name(name text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF length(btrim(name)) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid webhook name'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A webhook name has 1 to 200 characters and is not blank.';
	END IF;
	RETURN name;
END
$$;
COMMENT ON FUNCTION integration.validate_name(text) IS
	'Returns name when it is a non-blank endpoint name of at most 200 characters; raises invalid_parameter_value otherwise.';

------------------------------------------------------------------------------------------
-- Secrets encrypted at rest (src/secret_key.c, src/secret_box.c, src/secret_column.c,
-- src/secret_sql.c).  A column holds secrets encrypted at rest when an encrypt_secret()
-- trigger names it; the keys are read at server start from integration.encryption_key_file.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.secret_key_id(stored text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_secret_key_id'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.secret_key_id(text) IS
	'The id of the key a stored secret is encrypted with (enc:v1:<key id>:...), NULL for one stored unencrypted; raises invalid_parameter_value for a malformed encrypted value.';

CREATE FUNCTION integration.encryption_keys(OUT key_id text, OUT encrypts boolean)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'integration_encryption_keys'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.encryption_keys() IS
	'The ids of the keys read from integration.encryption_key_file at server start; encrypts is true for the first, which encrypts, and every key decrypts. No rows: secrets are stored unencrypted.';

CREATE FUNCTION integration.mask_stored_secret(stored text, purpose text, VARIADIC identity text[])
	RETURNS text
	AS 'MODULE_PATHNAME', 'integration_mask_stored_secret'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.mask_stored_secret(text, text, text[]) IS
	'A stored secret, encrypted or not, masked as mask_secret() masks one (its last four characters only when it has 16 or more); (unavailable) when it is encrypted and does not decrypt for that purpose and row identity.';

CREATE FUNCTION integration.mask_stored_secrets(stored jsonb, purpose text, VARIADIC identity text[])
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'integration_mask_stored_secrets'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.mask_stored_secrets(jsonb, text, text[]) IS
	'A stored JSON object of secrets (webhook_endpoints.headers) with its keys as they are and each value masked as mask_stored_secret() masks one, the key appended to the row identity.';

CREATE FUNCTION integration.encrypt_secret() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_encrypt_secret'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.encrypt_secret() IS
	'BEFORE INSERT OR UPDATE row trigger that validates and encrypts a secret column: text, or jsonb whose object values are each encrypted with their key added to the identity. Arguments: purpose, column, validator (regprocedure text or empty), identity columns.';

-- SET search_path: it runs statements as the tables' owner, with the caller's settings.
CREATE FUNCTION integration.reencrypt_secrets() RETURNS bigint
	AS 'MODULE_PATHNAME', 'integration_reencrypt_secrets'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION integration.reencrypt_secrets() IS
	'Encrypts every stored secret, of every tenant, that is unencrypted or encrypted under an older key with the current key; returns how many it changed. Superuser or the tables'' owner.';

------------------------------------------------------------------------------------------
-- Retry policy (src/retry_policy.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.retry_delay(attempts_done integer, schedule text DEFAULT NULL,
										retry_after text DEFAULT NULL,
										jitter double precision DEFAULT NULL)
	RETURNS interval
	AS 'MODULE_PATHNAME', 'integration_retry_delay'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION integration.retry_delay(integer, text, text, double precision) IS
	'The delay before the next attempt after attempts_done attempts (NULL: none left), for a schedule (default integration.retry_schedule), a Retry-After header value and a jitter draw in [0, 1) (default random).';

CREATE FUNCTION integration.retry_after(value text) RETURNS interval
	AS 'MODULE_PATHNAME', 'integration_retry_after'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.retry_after(text) IS
	'The delay a Retry-After header value asks for (seconds, also with a fraction as Shopify sends them, or an HTTP date), at most integration.max_retry_after; NULL when the value is neither. For connector kinds'' response adapters.';

------------------------------------------------------------------------------------------
-- Tables.  Every key starts with tenant_id, the distribution column if the schema is
-- ever distributed with Citus; every table has forced row-level security.
------------------------------------------------------------------------------------------

CREATE TABLE integration.webhook_endpoints (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	name			text NOT NULL,
	url				text NOT NULL,
	events			jsonb NOT NULL,
	secret			text NOT NULL DEFAULT integration.generate_secret(),
	headers			jsonb NOT NULL DEFAULT '{}',
	is_active		boolean NOT NULL DEFAULT true,
	disabled_reason text,
	disabled_at		timestamptz,
	timeout_ms		integer,
	retry_schedule	text,
	rate_limit		integer,
	rate_limit_burst integer,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	deleted_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT webhook_endpoints_timeout_check CHECK (timeout_ms BETWEEN 1 AND 600000),
	CONSTRAINT webhook_endpoints_rate_limit_check CHECK (rate_limit BETWEEN 1 AND 100000),
	-- A burst without a limit would mean nothing: refused rather than ignored.
	CONSTRAINT webhook_endpoints_rate_limit_burst_check
		CHECK (rate_limit_burst IS NULL OR (rate_limit_burst BETWEEN 1 AND 100000 AND rate_limit IS NOT NULL)),
	CONSTRAINT webhook_endpoints_retry_schedule_check
		CHECK (retry_schedule IS NULL OR integration.retry_delay(1, retry_schedule, NULL, 0) IS NOT NULL
			   OR retry_schedule = ''),
	CONSTRAINT webhook_endpoints_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT webhook_endpoints_name_check CHECK (integration.validate_name(name) IS NOT NULL),
	CONSTRAINT webhook_endpoints_url_check CHECK (integration.validate_url(url) IS NOT NULL),
	CONSTRAINT webhook_endpoints_events_check
		CHECK (integration.validate_event_patterns(events) IS NOT NULL),
	-- The encrypt_secret() trigger below validates a secret before it encrypts it; this
	-- holds for writes that skip triggers (session_replication_role = replica).  CASE,
	-- not OR: an encrypted value must never reach validate_secret().
	CONSTRAINT webhook_endpoints_secret_check
		CHECK (CASE WHEN integration.secret_key_id(secret) IS NOT NULL THEN true
					ELSE integration.validate_secret(secret) IS NOT NULL END),
	CONSTRAINT webhook_endpoints_headers_check CHECK (integration.validate_headers(headers) IS NOT NULL)
);
COMMENT ON TABLE integration.webhook_endpoints IS
	'Webhook endpoints of each tenant; deleted_at marks a soft delete.';
COMMENT ON COLUMN integration.webhook_endpoints.timeout_ms IS
	'Request timeout for this endpoint; NULL: integration.request_timeout.';
COMMENT ON COLUMN integration.webhook_endpoints.retry_schedule IS
	'Retry delays for this endpoint, e.g. ''10s, 1min, 1h''; empty: no retries; NULL: integration.retry_schedule.';
COMMENT ON COLUMN integration.webhook_endpoints.rate_limit IS
	'Most requests per second the worker sends this endpoint (a token bucket); NULL: no limit. A 429 answer slows any endpoint down for a while, limited or not.';
COMMENT ON COLUMN integration.webhook_endpoints.rate_limit_burst IS
	'Requests the endpoint may get at once after a quiet spell (the bucket''s size); NULL: rate_limit.';
COMMENT ON COLUMN integration.webhook_endpoints.disabled_reason IS
	'Why the worker disabled the endpoint (e.g. the receiver answered 410 Gone).';
COMMENT ON COLUMN integration.webhook_endpoints.disabled_at IS
	'When the worker disabled the endpoint (410 Gone, or only failures for integration.disable_after); NULL while it is active or when it was disabled through the API. While set, events it subscribes to are recorded for it as skipped deliveries, for enable_webhook() to replay.';

-- The per-tenant listing; the primary key already serves lookups by id.
CREATE INDEX webhook_endpoints_live_idx ON integration.webhook_endpoints (tenant_id, created_at)
	WHERE deleted_at IS NULL;

-- Publishing's lookup of the endpoints an event name may go to, in a tenant with more
-- endpoints than it reads whole (src/endpoint_cache.c): each pattern filed under its
-- tenant, length and first segments (src/pattern_keys.c).  No pending list: a lookup
-- must not read every endpoint added since the last vacuum.
CREATE INDEX webhook_endpoints_pattern_keys_idx ON integration.webhook_endpoints
	USING gin (integration._event_pattern_keys(tenant_id, events))
	WITH (fastupdate = off)
	WHERE deleted_at IS NULL;

-- Every write of a secret, by the API, plain SQL, COPY or a restore, is validated and
-- stored encrypted, bound to its tenant and endpoint id; a change of either re-encrypts
-- it for the new identity (src/secret_column.c).
CREATE TRIGGER secret_encrypted BEFORE INSERT OR UPDATE OF secret, tenant_id, id
	ON integration.webhook_endpoints
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'webhook_endpoints.secret', 'secret', 'integration.validate_secret(text)', 'tenant_id', 'id');
COMMENT ON COLUMN integration.webhook_endpoints.secret IS
	'The signing secret(s), encrypted at rest (enc:v1:<key id>:<base64>) when integration.encryption_key_file is set. Write the secret itself: the secret_encrypted trigger encrypts it.';

-- Custom headers are credentials as often as not (Authorization, an API key), so each
-- value is encrypted as the secret is: the same trigger, key and format, bound to the
-- tenant, the endpoint and the header's name, so a value copied to another header,
-- endpoint or tenant does not decrypt.  The names stay readable: they are not secret,
-- the CHECK above validates them for writes that skip triggers (reserved names, token
-- characters), and listings show which headers an endpoint sends.  Values are masked
-- there as the secret is (src/secret_sql.c); only the worker decrypts them.
CREATE TRIGGER headers_encrypted BEFORE INSERT OR UPDATE OF headers, tenant_id, id
	ON integration.webhook_endpoints
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'webhook_endpoints.headers', 'headers', 'integration.validate_headers(jsonb)', 'tenant_id', 'id');
COMMENT ON COLUMN integration.webhook_endpoints.headers IS
	'Custom headers sent with every delivery, {"Name": "value"}; each value encrypted at rest (enc:v1:<key id>:<base64>) when integration.encryption_key_file is set, the names as given. Write the values themselves: the headers_encrypted trigger encrypts them.';

-- The origin of a URL, scheme and authority in lower case ("https://api.example.com:8443"):
-- the server its requests go to.  NULL for NULL.
CREATE FUNCTION integration._url_origin(url text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*'));
COMMENT ON FUNCTION integration._url_origin(text) IS
	'The scheme and authority of a URL, in lower case: the server its requests go to (internal).';

-- Whether the current role may write an encrypted value as it is into a new row: a
-- restore's role (a superuser, or one that bypasses row-level security, as
-- integration._restoring() requires), which tenants' roles never are.  Anyone else
-- writes the secret itself, so that a ciphertext copied from a row deleted meanwhile
-- cannot move it elsewhere.
CREATE FUNCTION integration._may_write_ciphertext() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	RETURN EXISTS (SELECT FROM pg_catalog.pg_roles r
					WHERE r.rolname = current_user AND (r.rolsuper OR r.rolbypassrls));
COMMENT ON FUNCTION integration._may_write_ciphertext() IS
	'Whether the current role may insert an encrypted secret as it is, as a restore does: superuser or BYPASSRLS (internal).';

-- Header values go only to the server they were given for.  Shown once and masked
-- after, they are sent to whatever server url names, so moving url to another server
-- (scheme, host or port; a new path is the same server), or the endpoint to another
-- id (which encrypts them again for it), takes them again in the same write, as the
-- values themselves (update_webhook(id, url => ..., headers => ...)): a stored
-- ciphertext, the old one or another spelling of it, is not the values given again.
-- Decided before headers_encrypted runs (BEFORE triggers fire in name order).  An
-- INSERT of ciphertexts (an endpoint deleted and inserted again under its id, to move
-- it) is a restore's alone (_may_write_ciphertext()).  Values stored unencrypted (no
-- integration.encryption_key_file) are readable by the tenant anyway.  The same rule
-- as a connector's credentials (sql/connectors.sql, a_credentials_follow_server).
CREATE FUNCTION integration._has_sealed_value(obj jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN pg_catalog.jsonb_typeof(obj) = 'object'
				THEN EXISTS (SELECT FROM pg_catalog.jsonb_each_text(obj) h
							  WHERE pg_catalog.starts_with(h.value, 'enc:'))
				ELSE false END
$$;
COMMENT ON FUNCTION integration._has_sealed_value(jsonb) IS
	'Whether a JSON object of custom headers holds an encrypted value (internal).';
CREATE FUNCTION integration._headers_follow_url() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF integration._has_sealed_value(NEW.headers) AND NOT integration._may_write_ciphertext() THEN
			RAISE EXCEPTION 'the header values of a new webhook cannot be encrypted values'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'An encrypted value is stored as it is only when a dump is restored.',
					  HINT = 'Write the header values themselves; they are encrypted when written.';
		END IF;
		RETURN NEW;
	END IF;
	IF (integration._url_origin(NEW.url) IS DISTINCT FROM integration._url_origin(OLD.url)
		OR NEW.id IS DISTINCT FROM OLD.id)
	   AND integration._has_sealed_value(OLD.headers)
	   AND integration._has_sealed_value(NEW.headers) THEN
		RAISE EXCEPTION 'webhook % cannot move to another server or id without its header values', OLD.id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Its deliveries would go to %s instead of %s, with the header values given for the latter.',
								  coalesce(integration._url_origin(NEW.url), 'nowhere'),
								  coalesce(integration._url_origin(OLD.url), 'nowhere')),
				  HINT = format('Give the headers again, with their values, in the same write: integration.update_webhook(id => %s, url => ..., headers => ...).', OLD.id);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._headers_follow_url() IS
	'Trigger on webhook_endpoints: refuses a url moved to another server (scheme, host or port), or another id, unless the same write gives the header values again, and encrypted header values inserted by a role that could not be restoring a dump, so that they never reach a server they were not given for (internal).';
-- Named to fire before headers_encrypted, which turns what was given into ciphertext.
CREATE TRIGGER a_headers_follow_url BEFORE INSERT OR UPDATE OF url, id
	ON integration.webhook_endpoints
	FOR EACH ROW EXECUTE FUNCTION integration._headers_follow_url();


-- Secrets that rotate_secret() replaced and that still sign until their grace ends: the
-- worker signs every delivery with the endpoint's secret and these (at most three, the
-- newest), and purges them once expired.  A retired
-- secret is sealed as the endpoint's own secret is, with the same purpose and the same
-- tenant and endpoint as its authenticated data, so rotate_secret() moves the sealed
-- value as it is: no plaintext of an old secret is ever in SQL, and
-- reencrypt_secrets() finds this column through its trigger.
CREATE TABLE integration.retired_secrets (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	endpoint_id		bigint NOT NULL,
	secret			text NOT NULL,
	expires_at		timestamptz NOT NULL,
	retired_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, endpoint_id) REFERENCES integration.webhook_endpoints (tenant_id, id)
		ON DELETE CASCADE,
	CONSTRAINT retired_secrets_secret_check
		CHECK (CASE WHEN integration.secret_key_id(secret) IS NOT NULL THEN true
					ELSE integration.validate_secret(secret) IS NOT NULL END)
);
COMMENT ON TABLE integration.retired_secrets IS
	'Secrets replaced by rotate_secret(): deliveries are signed with them too until expires_at, then the worker purges them.';
COMMENT ON COLUMN integration.retired_secrets.secret IS
	'The replaced secret(s), encrypted at rest like webhook_endpoints.secret and bound to the same tenant and endpoint. Never returned by any function.';
CREATE INDEX retired_secrets_endpoint_idx ON integration.retired_secrets (tenant_id, endpoint_id, id);
CREATE TRIGGER secret_encrypted BEFORE INSERT OR UPDATE OF secret, tenant_id, endpoint_id
	ON integration.retired_secrets
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'webhook_endpoints.secret', 'secret', 'integration.validate_secret(text)', 'tenant_id', 'endpoint_id');

-- The worker's record of endpoints whose attempts all failed since failing_since: a row
-- appears at the first failure after a success and goes at the next success, so the
-- table holds only the endpoints failing now (src/endpoint_disable.c).  No foreign key:
-- its check would lock the endpoint, and the worker must never wait for a lock that
-- enable_webhook() or a delete holds.
CREATE TABLE integration.endpoint_failures (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	endpoint_id		bigint NOT NULL,
	failing_since	timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, endpoint_id)
);
COMMENT ON TABLE integration.endpoint_failures IS
	'Endpoints whose every attempt has failed since failing_since; the worker disables one once that lasts integration.disable_after.';

-- A webhook-id unique across databases, re-created extensions and restores, which a
-- sequence is not (src/message_id.c).
CREATE FUNCTION integration.new_message_id() RETURNS text
	AS 'MODULE_PATHNAME', 'integration_new_message_id'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.new_message_id() IS
	'A fresh message id: msg_ and 22 base62 characters, 48 bits of Unix milliseconds then 80 random bits.';

CREATE TABLE integration.webhook_events (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY (CACHE 100),
	message_id		text COLLATE "C" NOT NULL DEFAULT integration.new_message_id(),
	event			text NOT NULL,
	payload			text NOT NULL,
	endpoint_ids	bigint[] NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT webhook_events_tenant_check CHECK (tenant_id <> ''),
	-- It goes out as a header: printable ASCII without spaces, as new_message_id()
	-- makes, also where a row written with plain SQL sets its own.
	CONSTRAINT webhook_events_message_id_check CHECK (message_id ~ '^[!-~]{1,255}$'),
	-- The rules publish_event() and dispatch_webhook() apply, for rows written with
	-- plain SQL too (checked in name order: the event's name before the payload that
	-- must carry it).  Publishing's bulk path (src/event_store.c) meets them by
	-- construction.  The endpoints' tenant is checked by the events_queued trigger.
	-- Cost on the plain INSERT path (dispatch_webhook, hand-written rows, the bulk
	-- path's fallback): 20,000 events of 260 bytes in one INSERT took 180-280 ms with
	-- these two checks and 148-184 ms without (3 runs each, a busy machine), about
	-- 1-4 us per event; the bulk path pays nothing.
	CONSTRAINT webhook_events_event_check CHECK (integration.validate_event_name(event) IS NOT NULL),
	CONSTRAINT webhook_events_payload_check
		CHECK (integration.validate_envelope(event, payload) IS NOT NULL),
	-- A list of ids: one dimension, no NULLs.
	CONSTRAINT webhook_events_endpoint_ids_check CHECK (
		CASE WHEN pg_catalog.array_ndims(endpoint_ids) > 1 THEN false
			 ELSE pg_catalog.array_position(endpoint_ids, NULL) IS NULL END)
);
COMMENT ON TABLE integration.webhook_events IS
	'One row per published event: the payload bytes, serialised once, and the endpoints it goes to. The worker fans each event out into integration.deliveries.';
COMMENT ON COLUMN integration.webhook_events.message_id IS
	'The webhook-id the event is sent with, to every endpoint, on every attempt and redelivery; receivers deduplicate on it.';
COMMENT ON COLUMN integration.webhook_events.payload IS
	'The exact bytes sent and signed.';

-- list_deliveries(event => ...): a tenant's events of one name, newest first, each
-- joined to its deliveries by the unique key of deliveries; and list_deliveries(since =>
-- ...) when few events are that recent.  Publishing pays for them, each about 1.3 us of
-- CPU per event on the bulk path (bench/README.md); they are the only indexes of the
-- list functions on a table that publishing writes.  The keys of both are all distinct
-- (id is in them): deduplication would only scan each full page in vain before
-- splitting it, as for deliveries_endpoint_idx.
CREATE INDEX webhook_events_event_idx ON integration.webhook_events (tenant_id, event, id)
	WITH (deduplicate_items = off);
-- Retention (src/retention.c) finds expired events through this index too, tenant by
-- tenant from the greatest tenant_id down, each tenant's oldest first: one index probe
-- skips to the tenant below and a range of this index holds its expired events, so a
-- pass never reads a tenant's young events.  The probe (the primary key read backward)
-- goes down so that it lands on a tenant's highest ids, normally its newest events: its
-- oldest are the ones retention deleted, dead until a vacuum, and a probe up would step
-- over each of them (as any probe does over a tenant whose events all expired).  Events
-- are insert-only, and an index on
-- when a delivery finished would make the worker's update of every result non-HOT; an
-- index of its own (created_at, id) across tenants cost publishing another entry per
-- event, about 12% of the bulk rate (bench/README.md).
CREATE INDEX webhook_events_created_idx ON integration.webhook_events (tenant_id, created_at, id)
	WITH (deduplicate_items = off);

-- The events still to be fanned out, one narrow row each, deleted by the fan-out.  A
-- flag on webhook_events would cost every fan-out a non-HOT update of the whole event
-- row (a flag in an index predicate rules HOT out), that is a copy of the row, a new
-- primary-key entry and a WAL record the size of the payload; here it is a deleted
-- tuple.  Events stay insert-only.  No primary key, since nothing looks a row up by
-- key; REPLICA IDENTITY FULL lets logical replication carry the deletes.
CREATE TABLE integration.webhook_event_queue (
	tenant_id		text COLLATE "C" NOT NULL,
	event_id		bigint NOT NULL
);
ALTER TABLE integration.webhook_event_queue REPLICA IDENTITY FULL;
COMMENT ON TABLE integration.webhook_event_queue IS
	'Published events the worker has not fanned out into integration.deliveries yet.';
-- The fan-out takes events in id order, across tenants.
CREATE INDEX webhook_event_queue_order_idx ON integration.webhook_event_queue (event_id);

-- Events inserted by hand are queued like published ones.  Publishing writes events in
-- bulk and queues them itself when the only triggers on the two tables are this one
-- and require_tenant, which it recognises by the C function they run
-- (src/event_store.c, src/event_queue.c).
CREATE FUNCTION integration.queue_events() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_queue_events'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.queue_events() IS
	'Statement trigger: every new event goes only to endpoints of its own tenant, and is queued for fan-out.';

CREATE TRIGGER events_queued AFTER INSERT ON integration.webhook_events
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION integration.queue_events();

CREATE FUNCTION integration.check_event_endpoints() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_check_event_endpoints'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.check_event_endpoints() IS
	'Statement trigger: a changed event still goes only to endpoints of its own tenant.';

-- Events are insert-only for the extension; an UPDATE by hand is held to the rule that
-- queue_events() checks for new events.
CREATE TRIGGER events_endpoints_checked AFTER UPDATE ON integration.webhook_events
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_event_endpoints();

CREATE TABLE integration.deliveries (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY (CACHE 100),
	event_id		bigint NOT NULL,
	endpoint_id		bigint NOT NULL,
	status			text NOT NULL DEFAULT 'pending',
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz DEFAULT pg_catalog.now(),
	lease_expires_at timestamptz,
	last_attempt_at timestamptz,
	last_status_code integer,
	last_error		text,
	last_response	text,
	last_duration_ms integer,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	delivered_at	timestamptz,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, event_id, endpoint_id),
	-- No foreign keys to webhook_events and webhook_endpoints: their per-row checks
	-- took the worker's SQL thread from about 23 to 33-38 us per delivery and its
	-- deliveries/s down by 20% to 30% (bench/ab, bench/README.md), beyond
	-- the 10% keys were allowed to cost.  The statement triggers below enforce what the
	-- keys would, one set-based check per statement (src/delivery_references.c).
	CONSTRAINT deliveries_status_check
		CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'skipped')),
	CONSTRAINT deliveries_attempts_check CHECK (attempts >= 0),
	CONSTRAINT deliveries_scheduled_check CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
	-- A delivery that failed for good, or was skipped, says why.  The worker always
	-- records the error of a failed attempt, and the reason of a skip; this makes it a
	-- rule, which deliveries_failing_idx relies on to find the failed and skipped
	-- deliveries without an index on status (see below).
	CONSTRAINT deliveries_failed_reason_check
		CHECK (status NOT IN ('failed', 'skipped') OR last_error IS NOT NULL)
)
-- Room on each page for the worker's update of a delivery to stay HOT (no index
-- touched): none of the indexes below covers a column that a delivery's outcome sets.
-- The outcome makes a row about a fifth wider (its times, status code and response
-- excerpt), so at 50 the last rows of a page did not fit and one update in six
-- touched all three indexes; at 40 a page has room for a new version of every row.
WITH (fillfactor = 40);
COMMENT ON TABLE integration.deliveries IS
	'Delivery state of one event to one endpoint. Query integration.webhook_deliveries, which also shows events not yet fanned out.';
COMMENT ON COLUMN integration.deliveries.status IS
	'pending: waiting for next_attempt_at; sending: claimed by a worker until lease_expires_at; delivered; failed: out of attempts; skipped: not sent, its endpoint was disabled by the worker (enable_webhook() can replay it).';
COMMENT ON COLUMN integration.deliveries.next_attempt_at IS
	'When the next attempt is due; set exactly while the delivery is pending.';

-- What ON DELETE CASCADE would do, including a REPEATABLE READ or SERIALIZABLE
-- transaction's serialization failure when a delivery of these events committed after
-- its snapshot (src/delivery_references.c).
CREATE FUNCTION integration.delete_event_deliveries() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_delete_event_deliveries'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.delete_event_deliveries() IS
	'Statement trigger: deleting events deletes their deliveries and queue rows (what ON DELETE CASCADE would do); truncating them truncates both.';

-- What the foreign keys to webhook_events and webhook_endpoints would check, once per
-- statement instead of once per row, for every insert, the worker's fan-out included.
CREATE FUNCTION integration.check_delivery_references() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_check_delivery_references'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.check_delivery_references() IS
	'Statement trigger: every delivery refers to an event and an endpoint of its own tenant.';

CREATE TRIGGER deliveries_references_checked AFTER INSERT ON integration.deliveries
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_delivery_references();

-- Rows inserted 'sending' (the worker's fan-out, or anyone's INSERT) are counted in the
-- database's delivery worker, which list_deliveries(status => 'sending') asks how many
-- there can be (src/sending_counts.c, _sending_bound() below).  The same transition
-- table as the reference check: PostgreSQL captures it once for both.
CREATE FUNCTION integration.count_inserted_sending() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_count_inserted_sending'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.count_inserted_sending() IS
	'Statement trigger: the deliveries inserted sending are counted in the database''s delivery worker, for list_deliveries(status => ''sending'').';

CREATE TRIGGER deliveries_sending_counted AFTER INSERT ON integration.deliveries
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION integration.count_inserted_sending();

-- ON DELETE NO ACTION for webhook_endpoints: an endpoint that deliveries refer to keeps
-- its key and cannot be deleted or truncated (delete_webhook() soft-deletes).
CREATE FUNCTION integration.check_endpoint_unreferenced() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_check_endpoint_unreferenced'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.check_endpoint_unreferenced() IS
	'Trigger: no delivery refers to an endpoint key that was deleted, changed or truncated.';

CREATE TRIGGER endpoints_deleted_unreferenced AFTER DELETE ON integration.webhook_endpoints
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_endpoint_unreferenced();
-- Every UPDATE, not UPDATE OF the key: a column-specific trigger misses a key that a
-- BEFORE trigger changes without the statement naming it, which a foreign key's check
-- would catch.  The WHEN clause keeps the others cheap.
CREATE TRIGGER endpoints_rekeyed_unreferenced AFTER UPDATE
	ON integration.webhook_endpoints
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.id IS DISTINCT FROM NEW.id)
	EXECUTE FUNCTION integration.check_endpoint_unreferenced();
CREATE TRIGGER endpoints_truncated_unreferenced AFTER TRUNCATE ON integration.webhook_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_endpoint_unreferenced();

-- A delivery's keys never change: that keeps the check above to inserts.  An AFTER
-- trigger, not BEFORE: a BEFORE row trigger on UPDATE locks each old row before it
-- looks at the columns being set, so every outcome the worker records would pay for
-- a tuple lock; an AFTER trigger of columns the worker never sets costs a fetch.
-- UPDATE OF the keys, unlike endpoints_rekeyed_unreferenced, misses a key that a
-- BEFORE trigger changes under an UPDATE naming other columns; firing on every UPDATE
-- with a WHEN clause cost the worker's SQL thread 0.8 us a delivery (3%; bench/ab
-- 0b7dc20 27996a9, 24.8 -> 25.6 us), on its hottest statement, against a gap only
-- the table's owner can open (docs/limitations.md).
CREATE FUNCTION integration.forbid_key_change() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (NEW.tenant_id, NEW.event_id, NEW.endpoint_id) IS DISTINCT FROM
	   (OLD.tenant_id, OLD.event_id, OLD.endpoint_id) THEN
		RAISE EXCEPTION 'the tenant, event and endpoint of a delivery cannot change'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Dispatch a new delivery instead.';
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.forbid_key_change() IS
	'Row trigger: deliveries keep their tenant, event and endpoint.';

CREATE TRIGGER deliveries_keys_fixed AFTER UPDATE OF tenant_id, event_id, endpoint_id
	ON integration.deliveries
	FOR EACH ROW EXECUTE FUNCTION integration.forbid_key_change();

CREATE TRIGGER events_deleted AFTER DELETE ON integration.webhook_events
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION integration.delete_event_deliveries();
CREATE TRIGGER events_truncated AFTER TRUNCATE ON integration.webhook_events
	FOR EACH STATEMENT EXECUTE FUNCTION integration.delete_event_deliveries();

-- The worker writes an outcome only into a delivery row that nobody but its own claim
-- has locked (src/row_unlocked.c): this test, with the planner told that it holds for
-- almost every row, which "xmax = 0" could not tell it.
CREATE FUNCTION integration.row_unlocked_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'integration_row_unlocked_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.row_unlocked_support(internal) IS
	'Planner support of row_unlocked(): estimates that it is true for every row.';
CREATE FUNCTION integration.row_unlocked(xmax xid, claim_xmax xid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_row_unlocked'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	SUPPORT integration.row_unlocked_support;
COMMENT ON FUNCTION integration.row_unlocked(xid, xid) IS
	'Whether a row version with this xmax has been neither locked, updated nor deleted since the claim that left claim_xmax in it wrote it (internal, for the worker).';

-- The worker's due scan touches only pending rows, however many delivered rows pile up;
-- a delivery leaves the index when claimed and a delivered one never enters it.
CREATE INDEX deliveries_due_idx ON integration.deliveries (next_attempt_at)
	WHERE next_attempt_at IS NOT NULL;
-- The indexes of list_deliveries(), which lists a tenant's deliveries newest event first
-- (event_id, then endpoint_id, descending) in O(limit): the unique key above serves it
-- unfiltered, and these serve its filters.  None covers a column that the worker's
-- update of a delivered outcome changes (status, attempts, the last_* columns,
-- lease_expires_at, delivered_at), so that update stays HOT; that is why status has no
-- index of its own.  A pending delivery is one with next_attempt_at set (the scheduled
-- check above), which deliveries_due_idx already makes an indexed column; a failed or
-- skipped one has last_error set (deliveries_failed_reason_check), which a first
-- attempt that delivers leaves NULL, so only failing attempts (already non-HOT updates
-- when they schedule a retry) and skipped deliveries write these two partial indexes.
--
-- The endpoint filter; also what the reference checks of webhook_endpoints look up.
-- Its keys are all distinct (event_id is in them): deduplication would only scan each
-- full page in vain before splitting it.
CREATE INDEX deliveries_endpoint_idx ON integration.deliveries (tenant_id, endpoint_id, event_id)
	WITH (deduplicate_items = off);
-- status => 'pending'.
CREATE INDEX deliveries_pending_idx ON integration.deliveries (tenant_id, event_id, endpoint_id)
	WHERE next_attempt_at IS NOT NULL;
-- status => 'failed' and 'skipped': the deliveries whose last attempt failed or was
-- skipped, the failed (or skipped) among them.
CREATE INDEX deliveries_failing_idx ON integration.deliveries (tenant_id, event_id, endpoint_id)
	WHERE last_error IS NOT NULL;

CREATE TABLE integration.delivery_attempts (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	delivery_id		bigint NOT NULL,
	attempt			integer NOT NULL,
	started_at		timestamptz NOT NULL,
	duration_ms		integer NOT NULL,
	status_code		integer,
	error_class		text,
	error			text,
	response_excerpt text,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, delivery_id) REFERENCES integration.deliveries (tenant_id, id)
		ON DELETE CASCADE
);
COMMENT ON TABLE integration.delivery_attempts IS
	'Every attempt that did not deliver: when, how long, the status code or error class and message, and the start of the response. The delivering attempt is recorded on the delivery row; integration.webhook_delivery_attempts shows all attempts.';
COMMENT ON COLUMN integration.delivery_attempts.error_class IS
	'NULL when delivered; else http_status, redirect, timeout, connect, dns, tls, network, protocol, blocked_address, blocked_scheme, invalid_request, endpoint_disabled or secret_unavailable.';

CREATE INDEX delivery_attempts_delivery_idx ON integration.delivery_attempts (tenant_id, delivery_id);

CREATE TABLE integration.integration_logs (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	level			text NOT NULL DEFAULT 'info',
	source			text NOT NULL,
	event			text NOT NULL,
	message			text NOT NULL,
	context			jsonb NOT NULL DEFAULT '{}',
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT integration_logs_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT integration_logs_level_check
		CHECK (level IN ('debug', 'info', 'warning', 'error'))
);
COMMENT ON TABLE integration.integration_logs IS
	'What the API and the worker did, per tenant: changes to endpoints, dispatches, delivery failures.';

-- list_integration_logs() lists newest first, by (created_at, id): id breaks the ties of
-- one transaction's rows, which share created_at.  One index per filter, each ending
-- in the same order, so every filter reads its first rows in order, since included.
CREATE INDEX integration_logs_created_idx ON integration.integration_logs (tenant_id, created_at, id);
CREATE INDEX integration_logs_level_idx ON integration.integration_logs (tenant_id, level, created_at, id);
CREATE INDEX integration_logs_source_idx ON integration.integration_logs (tenant_id, source, created_at, id);
CREATE INDEX integration_logs_event_idx ON integration.integration_logs (tenant_id, event, created_at, id);
-- Retention (src/retention.c) removes log rows oldest first, across tenants.  Partial on
-- a condition that every row that can expire meets and that only retention's statement
-- states, so that the planner never offers this index to the tenants' list queries,
-- which have per-tenant indexes of their own: a plain index on created_at was taken for
-- list_integration_logs(since => ...) of a tenant holding most rows, with an
-- incremental sort (test/sql/list_plans.sql).
CREATE INDEX integration_logs_expiry_idx ON integration.integration_logs (created_at)
	WHERE created_at < 'infinity';

-- An endpoint's pending deliveries, for endpoint_health and for the probe of a half-open
-- circuit.  Partial like deliveries_due_idx: deliveries fanned out claimed never enter
-- it, and a claim takes a row out, so only pending rows cost an entry.
CREATE INDEX deliveries_endpoint_due_idx ON integration.deliveries (tenant_id, endpoint_id, next_attempt_at)
	WHERE next_attempt_at IS NOT NULL;

-- The circuit of each target (today: webhook endpoints) as of its last transition,
-- written by the worker (src/circuit_store.c) and read back when it starts, so that an
-- open circuit stays open across a restart.  The live figures are in shared memory
-- (integration.endpoint_health).
CREATE TABLE integration.target_circuits (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	kind			text NOT NULL,
	target_id		bigint NOT NULL,
	state			text NOT NULL,
	opened_at		timestamptz,
	next_probe_at	timestamptz,
	cooldown_ms		integer NOT NULL DEFAULT 0,
	last_success_at timestamptz,
	last_failure_at timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, kind, target_id),
	CONSTRAINT target_circuits_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT target_circuits_state_check CHECK (state IN ('closed', 'open', 'half_open')),
	CONSTRAINT target_circuits_cooldown_check CHECK (cooldown_ms >= 0)
);
COMMENT ON TABLE integration.target_circuits IS
	'The circuit breaker of each target (kind ''webhook'': an endpoint) as of its last transition, written by the worker and restored when it starts. integration.endpoint_health shows it with the live figures.';
COMMENT ON COLUMN integration.target_circuits.cooldown_ms IS
	'While open: the wait before the next probe (integration.circuit_cooldown, doubled after each failed probe, up to 10 minutes).';

-- Row-level security: sql/tenant_isolation.sql, run last, for every tenant-scoped table.

------------------------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------------------------

-- security_invoker: the caller's row-level security applies, not the view owner's.
-- created_at is the event's, which publishing sets and the fan-out copies into the
-- delivery: the time list_deliveries(since => ...) compares, through an index of
-- webhook_events, whether the event is fanned out yet or not.
CREATE VIEW integration.webhook_deliveries WITH (security_invoker = true) AS
	SELECT d.tenant_id, d.id, d.event_id, d.endpoint_id, e.event, e.payload, d.status,
		   d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code,
		   d.last_error, d.last_response, e.created_at, d.delivered_at, e.message_id
	  FROM integration.deliveries d
	  JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
	UNION ALL
	SELECT e.tenant_id, NULL::bigint, e.id, u.endpoint_id, e.event, e.payload, 'pending',
		   0, e.created_at, NULL::timestamptz, NULL::integer, NULL::text, NULL::text,
		   e.created_at, NULL::timestamptz, e.message_id
	  FROM integration.webhook_event_queue q
	  JOIN integration.webhook_events e ON e.tenant_id = q.tenant_id AND e.id = q.event_id
	 CROSS JOIN LATERAL pg_catalog.unnest(e.endpoint_ids) AS u(endpoint_id);
COMMENT ON VIEW integration.webhook_deliveries IS
	'Every delivery of an event to an endpoint with its event, payload and status; created_at is when the event was published. A delivery whose event the worker has not fanned out yet shows status pending and a NULL id.';

CREATE FUNCTION integration._target_health(kind text,
		OUT tenant_id text, OUT target_id bigint, OUT circuit text,
		OUT opened_at timestamptz, OUT next_probe_at timestamptz,
		OUT requests integer, OUT failures integer, OUT effective_rate float8,
		OUT tokens float8, OUT burst float8, OUT in_flight integer, OUT queued integer,
		OUT oldest_queued_at timestamptz, OUT last_success_at timestamptz,
		OUT last_failure_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'integration_target_health'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._target_health(text) IS
	'The live figures of this database''s targets of a kind (''webhook''), as the worker holds them in shared memory: circuit, requests and failures in integration.circuit_window, effective rate (NULL: unlimited), tokens and bucket size, requests in flight and queued. As row-level security would show them: every tenant''s to a role that bypasses it, else the current tenant''s only (internal, for endpoint_health).';

-- security_invoker: webhook_endpoints, target_circuits and deliveries are read under the
-- caller's row-level security, and _target_health() shows only the caller's tenant.
CREATE VIEW integration.endpoint_health WITH (security_invoker = true) AS
	SELECT w.id AS endpoint_id,
		   coalesce(h.circuit, c.state, 'closed') AS circuit,
		   CASE WHEN coalesce(h.circuit, c.state, 'closed') <> 'closed'
				THEN coalesce(h.opened_at, c.opened_at) END AS opened_at,
		   CASE WHEN coalesce(h.circuit, c.state, 'closed') = 'open'
				THEN coalesce(h.next_probe_at, c.next_probe_at) END AS next_probe_at,
		   coalesce(h.requests, 0) AS requests,
		   coalesce(h.failures, 0) AS failures,
		   CASE WHEN h.requests > 0 THEN round(h.failures::numeric / h.requests, 3) END AS failure_ratio,
		   w.rate_limit,
		   CASE WHEN h.target_id IS NULL THEN w.rate_limit::float8 ELSE h.effective_rate END AS effective_rate,
		   coalesce(h.in_flight, 0) AS in_flight,
		   p.pending + coalesce(h.queued, 0) AS pending,
		   CASE WHEN p.oldest IS NULL THEN h.oldest_queued_at
				WHEN h.oldest_queued_at IS NULL THEN p.oldest
				ELSE least(p.oldest, h.oldest_queued_at) END AS oldest_pending_at,
		   greatest(h.last_success_at, c.last_success_at) AS last_success_at,
		   greatest(h.last_failure_at, c.last_failure_at) AS last_failure_at
	  FROM integration.webhook_endpoints w
	  LEFT JOIN integration.target_circuits c
			 ON c.tenant_id = w.tenant_id AND c.kind = 'webhook' AND c.target_id = w.id
	  LEFT JOIN integration._target_health('webhook') h
			 ON h.tenant_id = w.tenant_id AND h.target_id = w.id
	 CROSS JOIN LATERAL (
			SELECT count(*) AS pending, min(d.next_attempt_at) AS oldest
			  FROM integration.deliveries d
			 WHERE d.tenant_id = w.tenant_id AND d.endpoint_id = w.id
			   AND d.next_attempt_at <= pg_catalog.now()) p
	 WHERE w.deleted_at IS NULL;
COMMENT ON VIEW integration.endpoint_health IS
	'Per endpoint of the current tenant: its circuit (closed, open, half_open), when it opened and the next probe, requests and failures in integration.circuit_window and their ratio, the configured rate_limit and the effective rate after 429 answers (NULL: unlimited), requests in flight, deliveries due and waiting (pending, in the table or queued in the worker) and since when, and the last success and failure.';

------------------------------------------------------------------------------------------
-- SQL API: mirrors the REST routes.  SECURITY INVOKER throughout, so row-level security
-- is what scopes every call to the caller's tenant.
------------------------------------------------------------------------------------------

CREATE TYPE integration.webhook AS (
	id				bigint,
	name			text,
	url				text,
	events			jsonb,
	secret			text,
	headers			jsonb,
	is_active		boolean,
	disabled_reason text,
	disabled_at		timestamptz,
	created_at		timestamptz,
	updated_at		timestamptz
);
COMMENT ON TYPE integration.webhook IS 'An endpoint as the API shows it.';

CREATE FUNCTION integration.mask_secret(secret text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_mask_secret'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.mask_secret(text) IS
	'A secret as listings show it: ******** (after its whsec_ prefix, if any), then its last four characters when it has 16 or more.';

CREATE FUNCTION integration.log(level text, source text, event text, message text,
								context jsonb DEFAULT '{}') RETURNS bigint
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	BEGIN ATOMIC
		INSERT INTO integration.integration_logs (level, source, event, message, context)
		VALUES (level, source, event, message, context)
		RETURNING id;
	END;
COMMENT ON FUNCTION integration.log(text, text, text, text, jsonb) IS
	'Writes one row to integration_logs for the current tenant.';

-- What the API forgets of an endpoint of the current tenant: with failures, its failing
-- streak (enabled again, it gets integration.disable_after afresh); with secrets, its
-- retired secrets (a secret set by hand, or a delete, ends every grace period).
CREATE FUNCTION integration._forget_endpoint_state(endpoint_id bigint, failures boolean,
												   secrets boolean) RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF failures THEN
		DELETE FROM integration.endpoint_failures f
		 WHERE f.tenant_id = integration.current_tenant()
		   AND f.endpoint_id = _forget_endpoint_state.endpoint_id;
	END IF;
	IF secrets THEN
		DELETE FROM integration.retired_secrets r
		 WHERE r.tenant_id = integration.current_tenant()
		   AND r.endpoint_id = _forget_endpoint_state.endpoint_id;
	END IF;
END
$$;
COMMENT ON FUNCTION integration._forget_endpoint_state(bigint, boolean, boolean) IS
	'Forgets an endpoint''s failing streak (failures) and its retired secrets (secrets), for the current tenant (internal).';

CREATE FUNCTION integration.register_webhook(name text, url text, events jsonb,
											 secret text DEFAULT NULL,
											 headers jsonb DEFAULT '{}',
											 rate_limit integer DEFAULT NULL,
											 rate_limit_burst integer DEFAULT NULL)
	RETURNS integration.webhook
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ep integration.webhook_endpoints;
	-- Kept to return: the row holds them encrypted.
	plain_secret text := coalesce(register_webhook.secret, integration.generate_secret());
	plain_headers jsonb := coalesce(register_webhook.headers, '{}');
BEGIN
	PERFORM integration.require_tenant();
	PERFORM integration.validate_destination(register_webhook.url);
	INSERT INTO integration.webhook_endpoints AS w (name, url, events, secret, headers,
												   rate_limit, rate_limit_burst)
	VALUES (register_webhook.name, register_webhook.url, register_webhook.events,
			plain_secret, plain_headers,
			register_webhook.rate_limit, register_webhook.rate_limit_burst)
	RETURNING w.* INTO ep;

	PERFORM integration._notice_unknown_patterns(register_webhook.events);
	PERFORM integration.log('info', 'api', 'webhook.registered',
							format('webhook %s registered', ep.id),
							jsonb_build_object('endpoint_id', ep.id, 'name', ep.name,
											   'url', ep.url, 'events', ep.events)
							|| jsonb_strip_nulls(jsonb_build_object('rate_limit', ep.rate_limit,
																	'rate_limit_burst', ep.rate_limit_burst)));
	-- The only time the whole secret and the headers' values are shown.
	RETURN (ep.id, ep.name, ep.url, ep.events, plain_secret, plain_headers, ep.is_active,
			ep.disabled_reason, ep.disabled_at, ep.created_at, ep.updated_at)::integration.webhook;
END
$$;
COMMENT ON FUNCTION integration.register_webhook(text, text, jsonb, text, jsonb, integer, integer) IS
	'Registers an endpoint for the current tenant and returns it with its full secret and header values, shown this once. rate_limit: most requests per second (NULL: none); rate_limit_burst: requests at once after a quiet spell (NULL: rate_limit).';

-- The read functions are PL/pgSQL so that require_tenant() runs first, whatever the
-- tables hold: in a query's WHERE clause it would not run over an empty table.
CREATE FUNCTION integration.list_webhooks() RETURNS SETOF integration.webhook
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	RETURN QUERY
		SELECT w.id, w.name, w.url, w.events,
			   integration.mask_stored_secret(w.secret, 'webhook_endpoints.secret', w.tenant_id, w.id::text),
			   integration.mask_stored_secrets(w.headers, 'webhook_endpoints.headers', w.tenant_id, w.id::text),
			   w.is_active, w.disabled_reason, w.disabled_at, w.created_at, w.updated_at
		  FROM integration.webhook_endpoints w
		 WHERE w.tenant_id = tenant AND w.deleted_at IS NULL
		 ORDER BY w.created_at, w.id;
END
$$;
COMMENT ON FUNCTION integration.list_webhooks() IS
	'The current tenant''s endpoints that are not deleted, secrets and header values masked.';

CREATE FUNCTION integration.show_webhook(id bigint) RETURNS integration.webhook
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	result integration.webhook;
BEGIN
	SELECT w.id, w.name, w.url, w.events,
		   integration.mask_stored_secret(w.secret, 'webhook_endpoints.secret', w.tenant_id, w.id::text),
		   integration.mask_stored_secrets(w.headers, 'webhook_endpoints.headers', w.tenant_id, w.id::text),
		   w.is_active, w.disabled_reason, w.disabled_at, w.created_at, w.updated_at
	  INTO result
	  FROM integration.webhook_endpoints w
	 WHERE w.tenant_id = tenant AND w.id = show_webhook.id
	   AND w.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', show_webhook.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;
	RETURN result;
END
$$;
COMMENT ON FUNCTION integration.show_webhook(bigint) IS
	'One endpoint of the current tenant, secret and header values masked; raises no_data_found when there is none.';

CREATE FUNCTION integration.update_webhook(id bigint, name text DEFAULT NULL,
										   url text DEFAULT NULL, events jsonb DEFAULT NULL,
										   secret text DEFAULT NULL, headers jsonb DEFAULT NULL,
										   is_active boolean DEFAULT NULL,
										   rate_limit integer DEFAULT NULL,
										   rate_limit_burst integer DEFAULT NULL)
	RETURNS integration.webhook
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ep integration.webhook_endpoints;
	changed text[];
BEGIN
	PERFORM integration.require_tenant();
	changed := array_remove(ARRAY[
		CASE WHEN update_webhook.name IS NOT NULL THEN 'name' END,
		CASE WHEN update_webhook.url IS NOT NULL THEN 'url' END,
		CASE WHEN update_webhook.events IS NOT NULL THEN 'events' END,
		CASE WHEN update_webhook.secret IS NOT NULL THEN 'secret' END,
		CASE WHEN update_webhook.headers IS NOT NULL THEN 'headers' END,
		CASE WHEN update_webhook.is_active IS NOT NULL THEN 'is_active' END,
		CASE WHEN update_webhook.rate_limit IS NOT NULL THEN 'rate_limit' END,
		CASE WHEN update_webhook.rate_limit_burst IS NOT NULL THEN 'rate_limit_burst' END], NULL);
	IF cardinality(changed) = 0 THEN
		-- Nothing to change: no write, no log row.
		RETURN integration.show_webhook(update_webhook.id);
	END IF;
	IF update_webhook.url IS NOT NULL THEN
		PERFORM integration.validate_destination(update_webhook.url);
	END IF;

	UPDATE integration.webhook_endpoints AS w
	   SET name = coalesce(update_webhook.name, w.name),
		   url = coalesce(update_webhook.url, w.url),
		   events = coalesce(update_webhook.events, w.events),
		   secret = coalesce(update_webhook.secret, w.secret),
		   headers = coalesce(update_webhook.headers, w.headers),
		   is_active = coalesce(update_webhook.is_active, w.is_active),
		   disabled_reason = CASE WHEN update_webhook.is_active THEN NULL ELSE w.disabled_reason END,
		   disabled_at = CASE WHEN update_webhook.is_active THEN NULL ELSE w.disabled_at END,
		   -- 0 removes the limit (NULL leaves it as it is), and the burst with it.
		   rate_limit = CASE WHEN update_webhook.rate_limit IS NULL THEN w.rate_limit
							 WHEN update_webhook.rate_limit = 0 THEN NULL
							 ELSE update_webhook.rate_limit END,
		   rate_limit_burst = CASE WHEN update_webhook.rate_limit = 0 THEN NULL
								   WHEN update_webhook.rate_limit_burst IS NULL THEN w.rate_limit_burst
								   WHEN update_webhook.rate_limit_burst = 0 THEN NULL
								   ELSE update_webhook.rate_limit_burst END,
		   updated_at = now()
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = update_webhook.id
	   AND w.deleted_at IS NULL
	RETURNING w.* INTO ep;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', update_webhook.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;

	PERFORM integration._forget_endpoint_state(ep.id, update_webhook.is_active,
											   update_webhook.secret IS NOT NULL);
	PERFORM integration._notice_unknown_patterns(update_webhook.events);
	PERFORM integration.log('info', 'api', 'webhook.updated',
							format('webhook %s updated', ep.id),
							jsonb_build_object('endpoint_id', ep.id, 'changed', to_jsonb(changed)));
	RETURN (ep.id, ep.name, ep.url, ep.events,
			integration.mask_stored_secret(ep.secret, 'webhook_endpoints.secret', ep.tenant_id, ep.id::text),
			-- Headers just given are shown as given, as register_webhook() shows them.
			coalesce(update_webhook.headers,
					 integration.mask_stored_secrets(ep.headers, 'webhook_endpoints.headers',
													 ep.tenant_id, ep.id::text)),
			ep.is_active, ep.disabled_reason, ep.disabled_at, ep.created_at, ep.updated_at)::integration.webhook;
END
$$;
COMMENT ON FUNCTION integration.update_webhook(bigint, text, text, jsonb, text, jsonb, boolean, integer, integer) IS
	'Changes the given fields of an endpoint (NULL leaves a field unchanged; rate_limit => 0 removes the limit, rate_limit_burst => 0 makes the burst the rate); returns it, secret masked, and header values masked unless headers were given (then shown as given).';

CREATE FUNCTION integration.delete_webhook(id bigint) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM integration.require_tenant();
	UPDATE integration.webhook_endpoints AS w
	   SET deleted_at = now(), updated_at = now(), is_active = false
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = delete_webhook.id
	   AND w.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', delete_webhook.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;
	PERFORM integration._forget_endpoint_state(delete_webhook.id, true, true);
	PERFORM integration.log('info', 'api', 'webhook.deleted',
							format('webhook %s deleted', delete_webhook.id),
							jsonb_build_object('endpoint_id', delete_webhook.id));
	RETURN true;
END
$$;
COMMENT ON FUNCTION integration.delete_webhook(bigint) IS
	'Soft-deletes an endpoint of the current tenant: it stops receiving events at once; its deliveries stay queryable.';

-- FOR UPDATE, not the UPDATE's own lock: it is the one row lock that conflicts with the
-- FOR KEY SHARE under which the worker decides to skip a delivery (fan-out, and the
-- check of a skipped outcome in src/endpoint_disable.c).  So a skip decided before this
-- commits is committed before the requeue below reads (READ COMMITTED: each statement
-- sees what committed before it), and after it commits the worker sends.
CREATE FUNCTION integration.enable_webhook(id bigint, replay_since timestamptz DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ep integration.webhook_endpoints;
	n integer := 0;
BEGIN
	PERFORM integration.require_tenant();
	SELECT w.* INTO ep FROM integration.webhook_endpoints w
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = enable_webhook.id
	   AND w.deleted_at IS NULL
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', enable_webhook.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;
	UPDATE integration.webhook_endpoints AS w
	   SET is_active = true, disabled_reason = NULL, disabled_at = NULL, updated_at = now()
	 WHERE w.tenant_id = ep.tenant_id AND w.id = ep.id;
	PERFORM integration._forget_endpoint_state(ep.id, true, false);

	IF enable_webhook.replay_since IS NOT NULL THEN
		-- Everything not delivered since then, pending ones included (they are due now,
		-- with a fresh budget too); 'sending' ones are the worker's to finish.
		UPDATE integration.deliveries d
		   SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_expires_at = NULL
		 WHERE d.tenant_id = ep.tenant_id AND d.endpoint_id = ep.id
		   AND d.status IN ('failed', 'skipped', 'pending')
		   AND d.created_at >= enable_webhook.replay_since;
		GET DIAGNOSTICS n = ROW_COUNT;
	END IF;
	PERFORM integration.log('info', 'api', 'webhook.enabled',
							format('webhook %s enabled%s', ep.id,
								   CASE WHEN enable_webhook.replay_since IS NULL THEN ''
										ELSE format(', %s deliveries since %s requeued', n,
													enable_webhook.replay_since) END),
							jsonb_build_object('endpoint_id', ep.id, 'was_active', ep.is_active,
											   'previous_reason', ep.disabled_reason,
											   'replay_since', enable_webhook.replay_since,
											   'requeued', n));
	PERFORM integration._wake_worker_at_commit();
	RETURN n;
END
$$;
COMMENT ON FUNCTION integration.enable_webhook(bigint, timestamptz) IS
	'Enables an endpoint of the current tenant (whoever disabled it) and, with replay_since, requeues its deliveries created since then that are failed, skipped or pending, due now with a fresh retry budget and the same webhook-id; returns how many were requeued.';

-- FOR NO KEY UPDATE: two rotations of one endpoint queue, so that the second retires
-- the secret the first made, not the one the first already retired.  The worker reads
-- the endpoint without a lock and is never held up by it.
CREATE FUNCTION integration.rotate_secret(id bigint, grace interval DEFAULT '24 hours')
	RETURNS text
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	max_retired constant integer := 3;
	-- Returned once, as register_webhook() returns a generated secret.
	new_secret text := integration.generate_secret();
	stored text;
	expires timestamptz := now() + rotate_secret.grace;
	dropped integer := 0;
	kept integer := 0;
BEGIN
	PERFORM integration.require_tenant();
	IF rotate_secret.grace IS NULL THEN
		RAISE EXCEPTION 'grace must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass ''0'' to stop signing with the old secret at once.';
	END IF;
	IF rotate_secret.grace < interval '0' OR rotate_secret.grace > interval '30 days' THEN
		RAISE EXCEPTION 'invalid grace period %', rotate_secret.grace
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The old secret keeps signing for 0 to 30 days after a rotation.',
				  HINT = 'Receivers need the grace period to change to the new secret; 24 hours is usual.';
	END IF;
	SELECT w.secret INTO stored FROM integration.webhook_endpoints w
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = rotate_secret.id
	   AND w.deleted_at IS NULL
	   FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', rotate_secret.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;

	DELETE FROM integration.retired_secrets r
	 WHERE r.tenant_id = integration.current_tenant() AND r.endpoint_id = rotate_secret.id
	   AND r.expires_at <= now();
	IF rotate_secret.grace > interval '0' THEN
		-- The stored value as it is, encrypted or not: the trigger keeps it, since it
		-- decrypts for the same tenant and endpoint.
		INSERT INTO integration.retired_secrets AS r (endpoint_id, secret, expires_at)
		VALUES (rotate_secret.id, stored, expires);
		-- Beyond the cap, the secrets retired longest ago stop signing.
		DELETE FROM integration.retired_secrets r
		 WHERE r.tenant_id = integration.current_tenant() AND r.endpoint_id = rotate_secret.id
		   AND r.id NOT IN (SELECT k.id FROM integration.retired_secrets k
							 WHERE k.tenant_id = integration.current_tenant()
							   AND k.endpoint_id = rotate_secret.id
							 ORDER BY k.id DESC LIMIT max_retired);
		GET DIAGNOSTICS dropped = ROW_COUNT;
	END IF;
	SELECT count(*) INTO kept FROM integration.retired_secrets r
	 WHERE r.tenant_id = integration.current_tenant() AND r.endpoint_id = rotate_secret.id;
	UPDATE integration.webhook_endpoints AS w
	   SET secret = new_secret, updated_at = now()
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = rotate_secret.id;

	-- Never a secret in the log, old or new.
	PERFORM integration.log('info', 'api', 'webhook.secret_rotated',
							format('webhook %s has a new secret; the old one signs until %s',
								   rotate_secret.id, CASE WHEN rotate_secret.grace > interval '0'
														  THEN expires::text ELSE 'now' END),
							jsonb_build_object('endpoint_id', rotate_secret.id,
											   'grace', rotate_secret.grace,
											   'old_secret_expires_at',
											   CASE WHEN rotate_secret.grace > interval '0' THEN expires END,
											   'retired_secrets', kept,
											   'dropped', dropped));
	RETURN new_secret;
END
$$;
COMMENT ON FUNCTION integration.rotate_secret(bigint, interval) IS
	'Gives an endpoint of the current tenant a new generated secret and returns it, shown this once; the old one keeps signing deliveries beside it for grace (0 to 30 days), with at most 3 old secrets at once (the oldest dropped first).';


------------------------------------------------------------------------------------------
-- Publishing (src/publish.c, src/wakeup.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.endpoints_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_endpoints_changed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.endpoints_changed() IS
	'Statement trigger on webhook_endpoints: every backend''s endpoint cache is dropped when the transaction commits.';

-- Row level: a statement that changes no endpoint must not flush every backend's cache.
CREATE TRIGGER endpoints_changed AFTER INSERT OR UPDATE OR DELETE
	ON integration.webhook_endpoints
	FOR EACH ROW EXECUTE FUNCTION integration.endpoints_changed();
CREATE TRIGGER endpoints_truncated AFTER TRUNCATE
	ON integration.webhook_endpoints
	FOR EACH STATEMENT EXECUTE FUNCTION integration.endpoints_changed();

CREATE FUNCTION integration._wake_worker_at_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'integration_wake_worker_at_commit'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration._wake_worker_at_commit() IS
	'Arms the commit-time wake-up of this database''s delivery worker (internal).';

CREATE FUNCTION integration.wakeup_stats(OUT commits_signalled bigint, OUT workers_woken bigint,
										 OUT endpoints_generation bigint)
	AS 'MODULE_PATHNAME', 'integration_wakeup_stats'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.wakeup_stats() IS
	'Commits that published events, how many of them woke a worker, and how many commits changed webhook endpoints (plus one).';

CREATE FUNCTION integration.envelope(event text, payload jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_envelope'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.envelope(text, jsonb) IS
	'The bytes sent for an event: {"type": event, "timestamp": statement time in UTC, "data": payload}.';

CREATE FUNCTION integration.publish_event(event text, payload jsonb) RETURNS integer
	AS 'MODULE_PATHNAME', 'integration_publish_event'
	LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.publish_event(text, jsonb) IS
	'Enqueues, in the caller''s transaction, one delivery of the event per active endpoint of the current tenant that subscribes to it; returns how many. Endpoints the worker disabled get it recorded as skipped, not counted.';

CREATE FUNCTION integration.publish_row_event() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_publish_row_event'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.publish_row_event() IS
	'AFTER INSERT/UPDATE/DELETE trigger (row level, or statement level with transition tables) publishing <prefix>.created/updated/deleted for the row''s tenant. Arguments: prefix [, tenant column].';

CREATE FUNCTION integration.dispatch_webhook(id bigint, event text, payload jsonb) RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	active boolean;
	new_event_id bigint;
	delivery_id bigint;
BEGIN
	PERFORM integration.require_tenant();
	IF dispatch_webhook.event IS NULL THEN
		RAISE EXCEPTION 'event name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT w.is_active INTO active
	  FROM integration.webhook_endpoints w
	 WHERE w.tenant_id = integration.current_tenant() AND w.id = dispatch_webhook.id
	   AND w.deleted_at IS NULL
	   FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'webhook % not found', dispatch_webhook.id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_webhooks() lists the current tenant''s webhooks.';
	END IF;
	IF NOT active THEN
		RAISE EXCEPTION 'webhook % is disabled', dispatch_webhook.id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Enable it with integration.enable_webhook(id => ...), which can also replay what it missed.';
	END IF;

	INSERT INTO integration.webhook_events AS e (event, payload, endpoint_ids)
	VALUES (dispatch_webhook.event,
			integration.envelope(dispatch_webhook.event, coalesce(dispatch_webhook.payload, 'null')),
			ARRAY[dispatch_webhook.id])
	RETURNING e.id INTO new_event_id;
	-- Its one delivery is made here: the event needs no fan-out.
	DELETE FROM integration.webhook_event_queue q
	 WHERE q.tenant_id = integration.current_tenant() AND q.event_id = new_event_id;
	INSERT INTO integration.deliveries AS d (event_id, endpoint_id)
	VALUES (new_event_id, dispatch_webhook.id)
	RETURNING d.id INTO delivery_id;

	PERFORM integration.log('info', 'api', 'webhook.dispatched',
							format('event %s dispatched to webhook %s', dispatch_webhook.event,
								   dispatch_webhook.id),
							jsonb_build_object('endpoint_id', dispatch_webhook.id,
											   'delivery_id', delivery_id,
											   'event_id', new_event_id,
											   'event', dispatch_webhook.event));
	PERFORM integration._wake_worker_at_commit();
	RETURN delivery_id;
END
$$;
COMMENT ON FUNCTION integration.dispatch_webhook(bigint, text, jsonb) IS
	'Enqueues one delivery of an event to one endpoint of the current tenant; returns the delivery id.';

CREATE FUNCTION integration.track_table(tbl regclass, event_prefix text,
										tenant_column text DEFAULT 'tenant_id')
	RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	kind "char";
BEGIN
	SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
	IF kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl
			USING ERRCODE = 'wrong_object_type';
	END IF;
	PERFORM integration.validate_event_name(event_prefix || '.created');
	PERFORM FROM pg_attribute a
	 WHERE a.attrelid = tbl AND a.attname = tenant_column
	   AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" has no tenant column "%"', tbl, tenant_column
			USING ERRCODE = 'undefined_column',
				  HINT = 'Pass the name of the table''s tenant column as tenant_column.';
	END IF;
	IF EXISTS (SELECT FROM pg_trigger t
			   WHERE t.tgrelid = tbl AND t.tgname LIKE 'integration\_publish\_%') THEN
		RAISE EXCEPTION 'table "%" is already tracked', tbl
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Call integration.untrack_table() first to change its prefix or tenant column.';
	END IF;

	-- Statement-level triggers with transition tables: one call per statement, however
	-- many rows it writes.
	EXECUTE format('CREATE TRIGGER integration_publish_insert AFTER INSERT ON %s'
				   ' REFERENCING NEW TABLE AS integration_new'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION integration.publish_row_event(%L, %L)',
				   tbl, event_prefix, tenant_column);
	EXECUTE format('CREATE TRIGGER integration_publish_update AFTER UPDATE ON %s'
				   ' REFERENCING OLD TABLE AS integration_old NEW TABLE AS integration_new'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION integration.publish_row_event(%L, %L)',
				   tbl, event_prefix, tenant_column);
	EXECUTE format('CREATE TRIGGER integration_publish_delete AFTER DELETE ON %s'
				   ' REFERENCING OLD TABLE AS integration_old'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION integration.publish_row_event(%L, %L)',
				   tbl, event_prefix, tenant_column);
END
$$;
COMMENT ON FUNCTION integration.track_table(regclass, text, text) IS
	'Publishes <event_prefix>.created/updated/deleted for every row written to the table, in the writer''s transaction.';

CREATE FUNCTION integration.untrack_table(tbl regclass) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	trg name;
	found_any boolean := false;
BEGIN
	FOR trg IN SELECT t.tgname FROM pg_trigger t
				WHERE t.tgrelid = tbl AND t.tgname LIKE 'integration\_publish\_%'
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', trg, tbl);
		found_any := true;
	END LOOP;
	RETURN found_any;
END
$$;
COMMENT ON FUNCTION integration.untrack_table(regclass) IS
	'Stops publishing events for the table; returns false when it was not tracked.';

CREATE VIEW integration.tracked_tables AS
	SELECT t.tgrelid::regclass AS table_name,
		   pg_catalog.split_part(pg_catalog.encode(t.tgargs, 'escape'), '\000', 1) AS event_prefix,
		   coalesce(nullif(pg_catalog.split_part(pg_catalog.encode(t.tgargs, 'escape'), '\000', 2), ''),
					'tenant_id') AS tenant_column,
		   pg_catalog.array_agg(t.tgname::text ORDER BY t.tgname) AS triggers
	  FROM pg_catalog.pg_trigger t
	 WHERE t.tgfoid = 'integration.publish_row_event()'::pg_catalog.regprocedure
	 GROUP BY 1, 2, 3;
COMMENT ON VIEW integration.tracked_tables IS
	'Tables whose writes publish events, with their event prefix and tenant column.';

-- The list functions read their first rows in index order, never the whole of a
-- tenant's history: each filter has an index that yields its rows in the order listed
-- (see the indexes of deliveries, webhook_events and integration_logs), and each call
-- is planned for its own arguments.  A statement with "filter IS NULL OR ..." for every
-- argument, or one planned once for all of them, leaves the planner one plan for every
-- filter, which reads and sorts everything; so the statement is written for the filters
-- given, and run with EXECUTE, which plans it for these values.  The statements are
-- built by the two functions below, which the tests EXPLAIN (test/sql/list_plans.sql).

-- The deliveries part and the queued part of webhook_deliveries are limited each in
-- their own order and then merged: PostgreSQL does not push ORDER BY ... LIMIT into
-- the view's UNION ALL.  The queued part exists only while the worker has events still
-- to fan out; it reads the queue newest first and looks each event up by key, which
-- is short when the worker keeps up (docs/sql-api.md says what a backlog of other
-- tenants costs it).
--
-- Two filters choose events, event and since, and a plan that filters the newest
-- deliveries by their event reads until it finds "limit" of them: all of the tenant's
-- history when the event name or the time is rare, or rare lately.  The planner cannot
-- tell (the statistics of webhook_events mix all tenants, and lag behind created_at,
-- which only grows), so these filters are not left to it:
--   - since: the events that recent are counted first, up to a thousand, through
--     webhook_events_created_idx.  If there are no more, the statement looks exactly
--     those events up by key and sorts their rows; if there are more, the time is no
--     rare one, and the newest
--     events are read in id order and filtered, the condition written so that no index
--     serves it and the planner estimates it as common (a third), as it then is;
--   - event: the tenant's events of that name are read newest first through
--     webhook_events_event_idx, each joined to its deliveries: the deliveries are a
--     LATERAL subquery behind OFFSET 0, which the planner cannot turn inside out.
CREATE FUNCTION integration._list_deliveries_sql(tenant text, "limit" integer,
												 endpoint_id bigint, status text, event text,
												 since timestamptz, before_event_id bigint,
												 before_endpoint_id bigint)
	RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := greatest(coalesce("limit", 0), 0);
	dw text := '';				-- conditions on the delivery d
	ew text := '';				-- on its event e
	-- The page's start on e as well as on d: the planner does not carry a bound of
	-- d.event_id over to e.id, and a plan that reads the tenant's events newest first
	-- (to filter them by since or event, or to merge them with the deliveries) would
	-- otherwise read every event newer than the page before its first row.
	be text := '';
	qw text := '';				-- on the queued part's q and its endpoints u
	recent bigint[];
	cols text := 'd.tenant_id, d.id, d.event_id, d.endpoint_id, e.event, e.payload, d.status,'
		' d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error,'
		' d.last_response, e.created_at, d.delivered_at, e.message_id';
	ecols text;					-- the same, keyed by the event e
	delivered text;
	kw text := '';				-- on the key k of a delivery, from an index alone
	kew text := '';				-- ew and be on the event ke of such a key
	st text := '';				-- the status test on d that no index answers
BEGIN
	ecols := replace(replace(cols, 'd.tenant_id', 'e.tenant_id'), 'd.event_id', 'e.id AS event_id');
	IF endpoint_id IS NOT NULL THEN
		dw := dw || format(' AND d.endpoint_id = %L', endpoint_id);
		kw := kw || format(' AND k.endpoint_id = %L', endpoint_id);
		qw := qw || format(' AND u.endpoint_id = %L', endpoint_id);
	END IF;
	-- Rows with next_attempt_at are the pending ones (deliveries_scheduled_check), and
	-- failed and skipped ones have last_error (deliveries_failed_reason_check): the
	-- conditions the partial indexes deliveries_pending_idx and deliveries_failing_idx
	-- are made of.  Most rows with last_error are failed, but the planner multiplies
	-- the two conditions' shares of the whole table (say 2% each) and expects a handful
	-- of rows, fewer than the limit; it then reads them all and sorts them (13-25 ms
	-- for 4,000 failed of 200,000).  The status test written as a CASE has no
	-- statistics, and counts for half of the rows in the index, as it then is.
	IF status = 'pending' THEN
		dw := dw || ' AND d.next_attempt_at IS NOT NULL';
		kw := kw || ' AND k.next_attempt_at IS NOT NULL';
	ELSIF status IN ('failed', 'skipped') THEN
		dw := dw || format(' AND CASE WHEN d.status = %L THEN true ELSE false END'
						   ' AND d.last_error IS NOT NULL', status);
		kw := kw || ' AND k.last_error IS NOT NULL';
		st := format(' AND CASE WHEN d.status = %L THEN true ELSE false END', status);
	ELSIF status = 'sending' THEN
		-- No index shows it (see docs/sql-api.md): the tenant's deliveries are read in
		-- order until "limit" are found.  Tested plainly, the status has statistics
		-- that say it is rare, and the planner scanned the whole table, every tenant's
		-- deliveries (76 ms beside 400,000 of other tenants, against 28 ms).
		dw := dw || ' AND CASE WHEN d.status = ''sending'' THEN true ELSE false END';
		st := ' AND CASE WHEN d.status = ''sending'' THEN true ELSE false END';
	ELSIF status IS NOT NULL THEN
		dw := dw || format(' AND d.status = %L', status);
		st := format(' AND d.status = %L', status);
	END IF;
	IF event IS NOT NULL THEN
		ew := ew || format(' AND e.event = %L', event);
		kew := kew || format(' AND ke.event = %L', event);
	END IF;
	IF since IS NOT NULL THEN
		SELECT pg_catalog.array_agg(r.id) INTO recent
		  FROM (SELECT e.id FROM integration.webhook_events e
				 WHERE e.tenant_id = tenant AND e.created_at >= since
				 ORDER BY e.created_at LIMIT 1001) r;
		IF coalesce(pg_catalog.cardinality(recent), 0) <= 1000 THEN
			recent := coalesce(recent, '{}');
			qw := qw || format(' AND q.event_id = ANY (%L::bigint[])', recent);
		ELSE
			recent := NULL;
			ew := ew || format(' AND e.created_at - %L::timestamptz >= interval ''0''', since);
			kew := kew || format(' AND ke.created_at - %L::timestamptz >= interval ''0''', since);
		END IF;
	END IF;
	IF before_event_id IS NOT NULL AND before_endpoint_id IS NULL THEN
		dw := dw || format(' AND d.event_id < %L', before_event_id);
		kw := kw || format(' AND k.event_id < %L', before_event_id);
		be := format(' AND e.id < %L', before_event_id);
		kew := kew || format(' AND ke.id < %L', before_event_id);
		qw := qw || format(' AND q.event_id < %L', before_event_id);
	ELSIF before_event_id IS NOT NULL THEN
		dw := dw || format(' AND (d.event_id, d.endpoint_id) < (%L, %L)', before_event_id, before_endpoint_id);
		kw := kw || format(' AND (k.event_id, k.endpoint_id) < (%L, %L)', before_event_id, before_endpoint_id);
		be := format(' AND e.id <= %L', before_event_id);
		kew := kew || format(' AND ke.id <= %L', before_event_id);
		qw := qw || format(' AND q.event_id <= %L AND (q.event_id, u.endpoint_id) < (%L, %L)',
						   before_event_id, before_event_id, before_endpoint_id);
	END IF;

	IF recent IS NOT NULL THEN
		-- At most a thousand events, each looked up by key, their rows sorted.
		delivered := format(
			'SELECT %s FROM pg_catalog.unnest(%L::bigint[]) AS r(id)'
			' CROSS JOIN LATERAL (SELECT e.* FROM integration.webhook_events e'
			' WHERE e.tenant_id = %L AND e.id = r.id OFFSET 0) AS e'
			' CROSS JOIN LATERAL (SELECT d.* FROM integration.deliveries d'
			' WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id%s OFFSET 0) AS d'
			' WHERE true%s%s ORDER BY e.id DESC, d.endpoint_id DESC LIMIT %s',
			ecols, recent, tenant, dw, ew, be, n);
	ELSIF event IS NOT NULL AND endpoint_id IS NULL AND (status IS NULL OR status = 'delivered') THEN
		delivered := format(
			'SELECT %s FROM integration.webhook_events e'
			' CROSS JOIN LATERAL (SELECT d.* FROM integration.deliveries d'
			' WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id%s OFFSET 0) AS d'
			' WHERE e.tenant_id = %L%s%s ORDER BY e.id DESC, d.endpoint_id DESC LIMIT %s',
			ecols, dw, tenant, ew, be, n);
	ELSIF event IS NULL OR status = 'sending' THEN
		-- The deliveries in order through the index of their filter, each one's event
		-- looked up by key.  Joined plainly, the planner may merge them with the
		-- tenant's events read newest first, all of them down to the last delivery
		-- listed: 100,000 events for the 6 failed deliveries of a tenant whose only
		-- failures were its first.  Sending with an event name too: the deliveries in
		-- flight are few, so the walk finds them and then tests only their events
		-- (read event by event, every delivery of that name was looked up: 67-115 ms
		-- at 200,000).
		delivered := format(
			'SELECT %s FROM integration.deliveries d'
			' CROSS JOIN LATERAL (SELECT e.* FROM integration.webhook_events e'
			' WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id OFFSET 0) AS e'
			' WHERE d.tenant_id = %L%s%s ORDER BY d.event_id DESC, d.endpoint_id DESC LIMIT %s',
			cols, tenant, dw, ew, n);
	ELSIF status = 'delivered' THEN
		-- An event name with an endpoint and a status that has no index: which of the
		-- two to read first is the planner's choice, by how rare each is.
		delivered := format(
			'SELECT %s FROM integration.deliveries d'
			' JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id'
			' WHERE d.tenant_id = %L%s%s%s ORDER BY d.event_id DESC, d.endpoint_id DESC LIMIT %s',
			cols, tenant, dw, ew, be, n);
	ELSE
		-- An event name with an endpoint, or with a status that has its index (pending,
		-- failed, skipped).  Read through one index and tested on the other, a
		-- combination that matches few rows of either read all of them (an event name
		-- with failed, 20 of 100,000 failed deliveries of 50,000 events of that name:
		-- 35-62 ms at 200,000 deliveries).  Here the keys of the deliveries (from the
		-- endpoint's index or the partial one of the status) and the tenant's events of
		-- that name (webhook_events_event_idx) are read side by side, both newest first
		-- and from the indexes alone, and merged; only the keys in both are looked up,
		-- tested on the status and listed.  That still reads the keys of both down to
		-- the limit's last row (10-14 ms for that combination), a tenth of the cost of
		-- reading each row.
		delivered := format(
			'SELECT %s FROM (SELECT k.event_id, k.endpoint_id FROM integration.deliveries k'
			' JOIN integration.webhook_events ke ON ke.tenant_id = k.tenant_id AND ke.id = k.event_id'
			' WHERE k.tenant_id = %L AND ke.tenant_id = %L%s%s'
			' ORDER BY k.event_id DESC, k.endpoint_id DESC) AS k'
			' CROSS JOIN LATERAL (SELECT d.* FROM integration.deliveries d'
			' WHERE d.tenant_id = %L AND d.event_id = k.event_id AND d.endpoint_id = k.endpoint_id%s'
			' OFFSET 0) AS d'
			' CROSS JOIN LATERAL (SELECT e.* FROM integration.webhook_events e'
			' WHERE e.tenant_id = %L AND e.id = k.event_id OFFSET 0) AS e'
			' ORDER BY k.event_id DESC, k.endpoint_id DESC LIMIT %s',
			cols, tenant, tenant, kw, kew, tenant, st, tenant, n);
	END IF;
	IF status IS NOT NULL AND status <> 'pending' THEN
		RETURN delivered;
	END IF;
	RETURN format(
		'SELECT * FROM ((%s) UNION ALL ('
		'SELECT q.tenant_id, NULL::bigint, q.event_id, u.endpoint_id, e.event, e.payload, ''pending''::text,'
		' 0, e.created_at, NULL::timestamptz, NULL::integer, NULL::text, NULL::text, e.created_at,'
		' NULL::timestamptz, e.message_id'
		' FROM integration.webhook_event_queue q'
		' CROSS JOIN LATERAL (SELECT e.* FROM integration.webhook_events e'
		' WHERE e.tenant_id = q.tenant_id AND e.id = q.event_id OFFSET 0) AS e'
		' CROSS JOIN LATERAL pg_catalog.unnest(e.endpoint_ids) AS u(endpoint_id)'
		' WHERE q.tenant_id = %L%s%s ORDER BY q.event_id DESC, u.endpoint_id DESC LIMIT %s)) AS x'
		' ORDER BY x.event_id DESC, x.endpoint_id DESC LIMIT %s', delivered, tenant, ew, qw, n, n);
END
$$;
COMMENT ON FUNCTION integration._list_deliveries_sql(text, integer, bigint, text, text, timestamptz, bigint, bigint) IS
	'The statement list_deliveries() runs for a tenant and its arguments (internal; the tests EXPLAIN it).';

-- What lets list_deliveries(status => 'sending') stop early: no index can tell 'sending'
-- from 'delivered' without making the worker's outcome UPDATE non-HOT (see the indexes
-- of deliveries), but the worker counts its claims (src/sending_counts.c).
CREATE FUNCTION integration._sending_bound() RETURNS integer
	AS 'MODULE_PATHNAME', 'integration_sending_bound'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION integration._sending_bound() IS
	'At most how many of the current tenant''s deliveries the current snapshot sees sending, as the database''s delivery worker counts them; NULL when no worker can tell (none running, or its start not yet visible, or transactions writing deliveries as it started not yet ended and counted). Internal, for list_deliveries().';

-- "limit" first: list_deliveries(10) means the ten newest, not endpoint 10.
CREATE FUNCTION integration.list_deliveries("limit" integer DEFAULT 100,
											endpoint_id bigint DEFAULT NULL,
											status text DEFAULT NULL,
											event text DEFAULT NULL,
											since timestamptz DEFAULT NULL,
											before_event_id bigint DEFAULT NULL,
											before_endpoint_id bigint DEFAULT NULL)
	RETURNS SETOF integration.webhook_deliveries
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	-- No statement of _list_deliveries_sql() wants a hash join: each reads in index
	-- order and stops at the limit.  The keys of an event name and an endpoint or a
	-- status (see there) are merged in that order; hashed, the planner read every row
	-- of both from the table and sorted them.
	SET enable_hashjoin = off
AS $$
DECLARE
	tenant text := integration.require_tenant();
	n integer := list_deliveries."limit";
	bound integer;
BEGIN
	IF list_deliveries.status NOT IN ('pending', 'sending', 'delivered', 'failed', 'skipped') THEN
		RAISE EXCEPTION 'invalid delivery status "%"', list_deliveries.status
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A delivery status is pending, sending, delivered, failed or skipped.';
	END IF;
	IF list_deliveries.before_endpoint_id IS NOT NULL AND list_deliveries.before_event_id IS NULL THEN
		RAISE EXCEPTION 'before_endpoint_id needs before_event_id'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the event_id and endpoint_id of the last row of the previous page.';
	END IF;
	IF list_deliveries.status = 'sending' THEN
		-- No more rows to find than the worker has claims: a walk of the tenant's
		-- deliveries that stops at the last of them, or none at all.  Read with this
		-- statement's snapshot, which the walk below shares (a STABLE function's).
		bound := integration._sending_bound();
		IF bound < n THEN
			n := bound;
		END IF;
	END IF;
	RETURN QUERY EXECUTE integration._list_deliveries_sql(
		tenant, n, list_deliveries.endpoint_id, list_deliveries.status,
		list_deliveries.event, list_deliveries.since, list_deliveries.before_event_id,
		list_deliveries.before_endpoint_id);
END
$$;
COMMENT ON FUNCTION integration.list_deliveries(integer, bigint, text, text, timestamptz, bigint, bigint) IS
	'The current tenant''s deliveries, newest event first (event_id, then endpoint_id, descending), at most "limit", optionally filtered by endpoint, status, event and publication time; before_event_id and before_endpoint_id (the last row of the previous page) give the next page.';

CREATE FUNCTION integration._list_integration_logs_sql(tenant text, "limit" integer,
													   level text, source text, event text,
													   since timestamptz,
													   before_created_at timestamptz,
													   before_id bigint)
	RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w text := format('l.tenant_id = %L', tenant);
BEGIN
	IF level IS NOT NULL THEN
		w := w || format(' AND l.level = %L', level);
	END IF;
	IF source IS NOT NULL THEN
		w := w || format(' AND l.source = %L', source);
	END IF;
	IF event IS NOT NULL THEN
		w := w || format(' AND l.event = %L', event);
	END IF;
	IF since IS NOT NULL THEN
		w := w || format(' AND l.created_at >= %L', since);
	END IF;
	IF before_id IS NOT NULL THEN
		w := w || format(' AND (l.created_at, l.id) < (%L, %L)', before_created_at, before_id);
	END IF;
	RETURN format('SELECT l.* FROM integration.integration_logs l WHERE %s'
				  ' ORDER BY l.created_at DESC, l.id DESC LIMIT %s',
				  w, greatest(coalesce("limit", 0), 0));
END
$$;
COMMENT ON FUNCTION integration._list_integration_logs_sql(text, integer, text, text, text, timestamptz, timestamptz, bigint) IS
	'The statement list_integration_logs() runs for a tenant and its arguments (internal; the tests EXPLAIN it).';

CREATE FUNCTION integration.list_integration_logs("limit" integer DEFAULT 100,
												  level text DEFAULT NULL,
												  source text DEFAULT NULL,
												  event text DEFAULT NULL,
												  since timestamptz DEFAULT NULL,
												  before_id bigint DEFAULT NULL)
	RETURNS SETOF integration.integration_logs
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	before_created_at timestamptz;
BEGIN
	IF list_integration_logs.level NOT IN ('debug', 'info', 'warning', 'error') THEN
		RAISE EXCEPTION 'invalid log level "%"', list_integration_logs.level
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A log level is debug, info, warning or error.';
	END IF;
	-- The page after row before_id: the rows listed after it, by (created_at, id).
	IF list_integration_logs.before_id IS NOT NULL THEN
		SELECT l.created_at INTO before_created_at
		  FROM integration.integration_logs l
		 WHERE l.tenant_id = tenant AND l.id = list_integration_logs.before_id;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'log row % not found', list_integration_logs.before_id
				USING ERRCODE = 'no_data_found',
					  DETAIL = 'before_id names the last row of the previous page, which must still exist.',
					  HINT = 'Start again from the first page.';
		END IF;
	END IF;
	RETURN QUERY EXECUTE integration._list_integration_logs_sql(
		tenant, list_integration_logs."limit", list_integration_logs.level,
		list_integration_logs.source, list_integration_logs.event, list_integration_logs.since,
		before_created_at, list_integration_logs.before_id);
END
$$;
COMMENT ON FUNCTION integration.list_integration_logs(integer, text, text, text, timestamptz, bigint) IS
	'The current tenant''s integration log rows, newest first (created_at, then id, descending), at most "limit", optionally filtered by level, source, event and time; before_id (the last row of the previous page) gives the next page.';


------------------------------------------------------------------------------------------
-- Worker controls (src/worker.c): each database has a delivery worker and a handler worker
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.start_worker() RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_start_worker'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.start_worker() IS
	'Starts this database''s workers (the delivery worker and the handler worker) when the transaction commits; false when both already run.';

CREATE FUNCTION integration.worker_status(OUT pid integer, OUT database text, OUT role text,
										  OUT state text,
										  OUT in_flight integer, OUT sent bigint,
										  OUT delivered bigint, OUT failed_attempts bigint,
										  OUT started_at timestamptz, OUT last_error text,
										  OUT last_error_at timestamptz,
										  OUT secrets_encrypted boolean,
										  OUT encryption_key_id text,
										  OUT wait_event_type text, OUT wait_event text,
										  OUT state_since timestamptz,
										  OUT inbound_handled bigint,
										  OUT inbound_failed_attempts bigint,
										  OUT inbound_held integer,
										  OUT calls_succeeded bigint,
										  OUT calls_failed_attempts bigint,
										  OUT calls_held integer,
										  OUT sync_runs_started bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'integration_worker_status'
	LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.worker_status() IS
	'One row per running worker process: pid, database, role (delivery: sends webhooks and connector calls; handler: runs inbound handlers), state, requests in flight, delivery counters since start, the last error (NULL unless the caller has the privileges of pg_read_all_stats), whether stored secrets are encrypted (with the id of the key that encrypts), what its main thread waits on now (as in pg_stat_activity) and since when it has been in its state, and inbound events handled, failed handler attempts and events held for their handlers, connector calls succeeded, call attempts that did not succeed and calls held, and the scheduled sync runs it started.';

CREATE VIEW integration.workers AS SELECT * FROM integration.worker_status();
COMMENT ON VIEW integration.workers IS 'The running worker processes, delivery and handler workers (integration.worker_status()).';

-- What the worker does every integration.retention_interval, on demand (src/retention.c).
CREATE FUNCTION integration.purge_expired(OUT deliveries bigint, OUT events bigint,
										  OUT logs bigint, OUT inbound_events bigint,
										  OUT connector_calls bigint, OUT external_records bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'integration_purge_expired'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION integration.purge_expired() IS
	'Removes, for every tenant, the delivered, failed and skipped deliveries (with their attempts), the events left without deliveries, the log rows, the processed, skipped and failed inbound events, the succeeded and failed connector calls and the synced records (external_records) of deleted connectors whose retention period has passed (a deleted connector''s records retention_delivered after its delete) (integration.retention_delivered, retention_failed, retention_logs as set in this session), in one pass in the caller''s transaction, as the delivery worker does every integration.retention_interval; returns how many of each. Pending and sending deliveries and their events, pending inbound events, pending and sending calls, and inbound events that still count for deduplication (received within their connector''s dedupe window) are never removed. Superuser or the tables'' owner.';

CREATE FUNCTION integration.redeliver(delivery_id bigint) RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	st text;
BEGIN
	PERFORM integration.require_tenant();
	SELECT d.status INTO st FROM integration.deliveries d
	 WHERE d.tenant_id = integration.current_tenant() AND d.id = redeliver.delivery_id
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'delivery % not found', redeliver.delivery_id
			USING ERRCODE = 'no_data_found',
				  HINT = 'integration.list_deliveries() lists the current tenant''s deliveries.';
	END IF;
	-- Even past its lease: a claim can wait in the worker's queue longer than that.
	IF st = 'sending' THEN
		RAISE EXCEPTION 'delivery % is being sent right now', redeliver.delivery_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Wait for the attempt to finish.';
	END IF;
	UPDATE integration.deliveries d
	   SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL,
		   lease_expires_at = NULL
	 WHERE d.tenant_id = integration.current_tenant() AND d.id = redeliver.delivery_id;
	PERFORM integration.log('info', 'api', 'delivery.redelivered',
							format('delivery %s requeued', redeliver.delivery_id),
							jsonb_build_object('delivery_id', redeliver.delivery_id,
											   'previous_status', st));
	PERFORM integration._wake_worker_at_commit();
	RETURN redeliver.delivery_id;
END
$$;
COMMENT ON FUNCTION integration.redeliver(bigint) IS
	'Requeues one delivery of the current tenant now, with a fresh retry schedule and the same event id (webhook-id).';

CREATE FUNCTION integration.retry_failed(endpoint_id bigint DEFAULT NULL, event text DEFAULT NULL,
										 since timestamptz DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	PERFORM integration.require_tenant();
	UPDATE integration.deliveries d
	   SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_expires_at = NULL
	 WHERE d.tenant_id = integration.current_tenant() AND d.status = 'failed'
	   AND (retry_failed.endpoint_id IS NULL OR d.endpoint_id = retry_failed.endpoint_id)
	   AND (retry_failed.since IS NULL OR d.created_at >= retry_failed.since)
	   AND (retry_failed.event IS NULL OR EXISTS (
			SELECT FROM integration.webhook_events e
			 WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id AND e.event = retry_failed.event));
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM integration.log('info', 'api', 'delivery.retried',
								format('%s failed deliveries requeued', n),
								jsonb_build_object('count', n, 'endpoint_id', retry_failed.endpoint_id,
												   'event', retry_failed.event, 'since', retry_failed.since));
		PERFORM integration._wake_worker_at_commit();
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION integration.retry_failed(bigint, text, timestamptz) IS
	'Requeues the current tenant''s failed deliveries, optionally only for one endpoint, event or since a time; returns how many.';

-- Every attempt: failed ones from delivery_attempts, the delivering one from the
-- delivery row (writing it twice would cost every delivery a row).
CREATE VIEW integration.webhook_delivery_attempts WITH (security_invoker = true) AS
	SELECT a.tenant_id, a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code,
		   a.error_class, a.error, a.response_excerpt
	  FROM integration.delivery_attempts a
	UNION ALL
	SELECT d.tenant_id, d.id, d.attempts, d.last_attempt_at, d.last_duration_ms,
		   d.last_status_code, NULL, NULL, d.last_response
	  FROM integration.deliveries d
	 WHERE d.status = 'delivered' AND d.last_attempt_at IS NOT NULL;
COMMENT ON VIEW integration.webhook_delivery_attempts IS
	'Every attempt of every delivery: when, how long, status code, error class and message, response excerpt.';

CREATE FUNCTION integration.list_delivery_attempts(delivery_id bigint)
	RETURNS SETOF integration.webhook_delivery_attempts
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	RETURN QUERY
		SELECT a.* FROM integration.webhook_delivery_attempts a
		 WHERE a.tenant_id = tenant
		   AND a.delivery_id = list_delivery_attempts.delivery_id
		 ORDER BY a.started_at, a.attempt;
END
$$;
COMMENT ON FUNCTION integration.list_delivery_attempts(bigint) IS
	'Every attempt of one delivery of the current tenant, oldest first.';

------------------------------------------------------------------------------------------
-- The worker's own statements, for tests and operators (src/store_sql.c).  Internal:
-- each runs what the worker runs, through the worker's code, in the caller's
-- transaction, so the isolation specs (test/specs) can interleave it with the API.  A
-- claim made here is real: nothing sends it, and it stays 'sending' until its lease
-- runs out and a reconcile returns it to 'pending'.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._claim_due(max integer, lease interval DEFAULT '90s')
	RETURNS TABLE (id bigint, usable boolean)
	AS 'MODULE_PATHNAME', 'integration_claim_due'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION integration._claim_due(integer, interval) FROM PUBLIC;
COMMENT ON FUNCTION integration._claim_due(integer, interval) IS
	'Claims up to max due pending deliveries with the worker''s statement (status sending, lease_expires_at the transaction''s start plus lease; rows others hold locked are skipped) and returns their ids and whether each one''s endpoint was active and not deleted. Nothing sends them (internal, for tests and operators).';

CREATE FUNCTION integration._fan_out(max integer, lease interval DEFAULT '90s')
	RETURNS TABLE (id bigint, usable boolean)
	AS 'MODULE_PATHNAME', 'integration_fan_out'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION integration._fan_out(integer, interval) FROM PUBLIC;
COMMENT ON FUNCTION integration._fan_out(integer, interval) IS
	'Fans out up to max queued events, oldest first, with the worker''s statements (queue rows others hold locked are skipped) and returns the deliveries created, all claimed as if every endpoint had room, with whether each one''s endpoint was active and not deleted. Nothing sends them (internal, for tests and operators).';

CREATE FUNCTION integration._reconcile_leases() RETURNS integer
	AS 'MODULE_PATHNAME', 'integration_reconcile_leases'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION integration._reconcile_leases() FROM PUBLIC;
COMMENT ON FUNCTION integration._reconcile_leases() IS
	'Returns claimed deliveries whose lease has run out to pending, due now, with the worker''s statement (rows others hold locked are skipped); returns how many (internal, for tests and operators).';

------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; docs/tenancy-and-security.md lists the grants an application role needs.
------------------------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA integration FROM PUBLIC;

-- This database's worker starts when CREATE EXTENSION commits.
SELECT integration.start_worker();
