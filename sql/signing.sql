-- Signing, verification and event matching (issue 3).  To be pasted into
-- sql/integration.sql; every object lives in schema integration.

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

CREATE FUNCTION integration.verify(scheme text, secret text, headers jsonb, body text,
                                   tolerance interval DEFAULT '5 minutes',
                                   now timestamptz DEFAULT now())
RETURNS boolean
AS 'MODULE_PATHNAME', 'integration_verify'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION integration.verify(text, text, jsonb, text, interval, timestamptz) IS
'True if headers (name -> value, names case-insensitive) carry a valid signature of body in the scheme, within tolerance of now; false for anything malformed';

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
