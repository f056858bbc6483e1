------------------------------------------------------------------------------------------
-- Connectors (appended to integration.sql by the Makefile; docs/connectors.md).
--
-- A connector kind is an adapter in a catalogue: how requests to the platform are
-- authenticated, how its webhooks are signed, and the functions that turn its requests
-- into events and build and judge its API calls.  A connector is one tenant's
-- connection to one account of a kind.  Inbound webhooks are verified, deduplicated and
-- stored by receive_webhook() (src/connector_inbound.c) in integration.inbound_events,
-- where the worker's handlers take them from.
--
-- Adapters never see a credential: the request builder says what to send, and the
-- caller (test_connector(), the worker) adds the authentication the kind names.  Only a
-- kind's own verifier is given the inbound secret, which is why only superusers
-- register kinds.
------------------------------------------------------------------------------------------

-- What every adapter is given about its connector: never a credential or secret.
CREATE TYPE integration.connector_context AS (
	id				bigint,
	tenant_id		text,
	kind			text,
	name			text,
	base_url		text,
	settings		jsonb
);
COMMENT ON TYPE integration.connector_context IS
	'What a kind''s adapter functions are told about the connector: its id, tenant, kind, name, base URL and settings (never its credentials or secrets).';

-- What a normaliser returns, one row per event in the request.
CREATE TYPE integration.normalised_event AS (
	external_id		text,
	topic			text,
	object_id		text,
	payload			jsonb
);
COMMENT ON TYPE integration.normalised_event IS
	'One event a normaliser found in an inbound request: the platform''s id for it (NULL: a hash of the body is used), its topic (e.g. orders/create), the external object it is about (events of one object are handled in the order received), and its payload.';

-- What a request builder returns.
CREATE TYPE integration.connector_request AS (
	method			text,
	path			text,
	query			jsonb,
	headers			jsonb,
	body			text
);
COMMENT ON TYPE integration.connector_request IS
	'An HTTP request an adapter built for an operation: method, path under the connector''s base URL (starting with /), query parameters (a JSON object of strings, or NULL), headers (a JSON object of strings, or NULL) and body (NULL: none). Authentication is added by the caller.';

-- What a response interpreter returns.
CREATE TYPE integration.connector_outcome AS (
	outcome			text,
	retry_after		interval,
	result			jsonb,
	error			text
);
COMMENT ON TYPE integration.connector_outcome IS
	'How an adapter judged a response: outcome succeeded, retry (retry_after: the platform''s own delay, NULL for the retry schedule) or failed; the result to keep; the error to record.';

-- What a record adapter returns for a webhook event about a synced record (sql/sync.sql).
CREATE TYPE integration.external_record AS (
	stream			text,
	external_id		text,
	updated_at		timestamptz,
	payload			jsonb
);
COMMENT ON TYPE integration.external_record IS
	'A record of a connector''s pull stream as a webhook event carries it: the stream (one of the kind''s pull_streams), the platform''s id of the record, the moment of its version (updated_at) and its payload; receive_webhook() passes it through the same gate as pulled records, so one change is handed to handlers once.';

------------------------------------------------------------------------------------------
-- Helpers for adapters, in C (src/connector_sql.c)
------------------------------------------------------------------------------------------

CREATE FUNCTION integration.header(headers jsonb, name text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_header'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.header(jsonb, text) IS
	'The value of a header in a JSON object of headers, its name matched case-insensitively; NULL when absent, not a string, or present twice.';

CREATE FUNCTION integration.try_jsonb(value text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'integration_try_jsonb'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.try_jsonb(text) IS
	'value as jsonb, or NULL when it is not JSON (where a cast would raise).';

CREATE FUNCTION integration.is_signature_scheme(scheme text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_is_signature_scheme'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.is_signature_scheme(text) IS
	'Whether scheme is one verify() knows (standard, stripe, shopify, woocommerce, github, hubspot, adyen), lower case.';

CREATE FUNCTION integration._validate_inbound_secret(scheme text, secret text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_inbound_secret'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._validate_inbound_secret(text, text) IS
	'Returns secret when verify() could use it under scheme; raises invalid_parameter_value, never echoing it, otherwise (internal).';

CREATE FUNCTION integration._validate_credentials(credentials text) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_validate_credentials'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._validate_credentials(text) IS
	'Returns credentials when it is a JSON object of non-empty strings; raises invalid_parameter_value, never echoing it, otherwise (internal).';

CREATE FUNCTION integration._mask_credentials(stored text, tenant_id text, id bigint) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'integration_mask_credentials'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration._mask_credentials(text, text, bigint) IS
	'A connector''s stored credentials as listings show them: each value masked as mask_secret() masks one (******** after its whsec_ prefix, if any, and its last four characters only when it has 16 or more); "(unavailable)" when they do not decrypt (internal).';

------------------------------------------------------------------------------------------
-- Authentication styles.  auth is a style, optionally followed by the names of the
-- credentials it takes, in parentheses: basic(consumer_key,consumer_secret) sends
-- those two as the user and password of Basic; bearer(secret_key) and
-- header:X-Shopify-Access-Token(access_token) send that one.  Without names, basic
-- takes username and password, bearer and header:<name> take token.  Platforms name
-- their credentials their own way, and users paste them under those names.
-- json:<pointer> is for JSON-RPC APIs that take the key as an argument in the body (Odoo's
-- execute_kw): the adapter puts a placeholder at the pointer (RFC 6901, e.g.
-- /params/args/2) and the caller replaces it with the credential, a JSON string, so the
-- adapter still never sees it; without a name it takes token.
------------------------------------------------------------------------------------------

CREATE FUNCTION integration._is_auth(auth text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT length(auth) <= 400
	   AND (auth IN ('none', 'query')
			OR auth ~ '^(basic(\([a-z][a-z0-9_]{0,62},[a-z][a-z0-9_]{0,62}\))?|(bearer|header:[!#$%&''*+.^_`|~0-9A-Za-z-]+|json:(/[A-Za-z0-9_-]{1,64}){1,16})(\([a-z][a-z0-9_]{0,62}\))?)$')
	   AND NOT auth ~ '^basic\(([a-z0-9_]+),\1\)$'
$$;
COMMENT ON FUNCTION integration._is_auth(text) IS
	'Whether auth is an authentication style: none, query, basic, bearer, header:<name> or json:<pointer>, the last four optionally with the names of their credentials in parentheses (internal).';

CREATE FUNCTION integration._auth_style(auth text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT regexp_replace(auth, '\(.*\)$', '') $$;
COMMENT ON FUNCTION integration._auth_style(text) IS
	'The style of an auth value without its credential names: none, query, basic, bearer, header:<name> or json:<pointer> (internal).';

CREATE FUNCTION integration._auth_keys(auth text) RETURNS text[]
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN auth ~ '\)$' THEN string_to_array(substring(auth FROM '\(([^()]*)\)$'), ',')
		WHEN auth = 'basic' THEN '{username,password}'::text[]
		WHEN auth = 'bearer' OR auth LIKE 'header:%' OR auth LIKE 'json:%' THEN '{token}'::text[]
		WHEN auth = 'none' THEN '{}'::text[]
	END
$$;
COMMENT ON FUNCTION integration._auth_keys(text) IS
	'The credentials an auth value takes, in the order it sends them (basic: user, then password); NULL for query, which takes any (internal).';

------------------------------------------------------------------------------------------
-- The catalogue of kinds: not tenant-scoped, read by everyone, written by superusers.
------------------------------------------------------------------------------------------

-- A kind's pull streams: one or more distinct names of lower-case words joined by dots.
CREATE FUNCTION integration._are_stream_names(streams text[]) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT cardinality(streams) BETWEEN 1 AND 100
	   AND array_ndims(streams) = 1
	   AND NOT EXISTS (SELECT FROM unnest(streams) AS s
					    WHERE s IS NULL OR length(s) > 63
						   OR s !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$')
	   AND (SELECT count(DISTINCT s) FROM unnest(streams) AS s) = cardinality(streams)
$$;
COMMENT ON FUNCTION integration._are_stream_names(text[]) IS
	'Whether streams are 1 to 100 distinct stream names: lower-case letters, digits and underscores, words joined by dots, starting with a letter, up to 63 characters (internal).';

-- A kind names its adapter functions by signature, in the text a regprocedure has under
-- search_path pg_catalog, pg_temp: schema-qualified, e.g.
-- integration.generic_normalise(integration.connector_context,jsonb,text).  Not by
-- regprocedure, an OID: pg_upgrade keeps no function's OID, so pg_upgrade --check refuses
-- every table with a regproc or regprocedure column, and kinds stored so would stop each
-- major-version upgrade of the database.  The connector_kind_signatures trigger brings
-- every write to that form; whoever calls an adapter resolves the text again (src/
-- adapter_function.c), so a function renamed or moved since no longer serves the kind.
CREATE TABLE integration.connector_kinds (
	name				text COLLATE "C" PRIMARY KEY,
	description			text NOT NULL DEFAULT '',
	auth				text NOT NULL,
	signature_scheme	text NOT NULL,
	verify_function		text,
	normalise_function	text,
	build_request_function text,
	interpret_response_function text,
	idempotency_header	text,
	pull_streams		text[],
	record_function		text,
	-- Set for the shipped kinds whose webhook bodies are the REST representation.
	records_as_pulled	boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- The first segment of every event name the kind's webhooks become.
	CONSTRAINT connector_kinds_name_check CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
	CONSTRAINT connector_kinds_auth_check CHECK (integration._is_auth(auth)),
	CONSTRAINT connector_kinds_signature_scheme_check
		CHECK (signature_scheme IN ('none', 'adapter')
			   OR integration.is_signature_scheme(signature_scheme)),
	CONSTRAINT connector_kinds_verify_check
		CHECK ((signature_scheme = 'adapter') = (verify_function IS NOT NULL)),
	CONSTRAINT connector_kinds_outbound_check
		CHECK ((build_request_function IS NULL) = (interpret_response_function IS NULL)),
	CONSTRAINT connector_kinds_adapters_check
		CHECK (normalise_function IS NOT NULL OR build_request_function IS NOT NULL),
	-- An HTTP header name, sent only with calls (src/connector_request.c).
	CONSTRAINT connector_kinds_idempotency_header_check
		CHECK (idempotency_header IS NULL
			   OR (idempotency_header ~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]{1,255}$'
				   AND build_request_function IS NOT NULL)),
	-- Pull pages are calls of operation pull (sql/sync.sql); a stream's name is part of
	-- its events' names (<kind>.<stream>.updated).
	CONSTRAINT connector_kinds_pull_streams_check
		CHECK (pull_streams IS NULL
			   OR (build_request_function IS NOT NULL
				   AND integration._are_stream_names(pull_streams))),
	-- The webhook/pull dedupe: a record of a webhook event is one of a pull stream's.
	CONSTRAINT connector_kinds_record_check
		CHECK (record_function IS NULL
			   OR (normalise_function IS NOT NULL AND pull_streams IS NOT NULL))
);
COMMENT ON TABLE integration.connector_kinds IS
	'Connector kinds: how a platform authenticates API calls (auth: none, basic, bearer, header:<name>, json:<pointer> or query), how its webhooks are signed (signature_scheme: a verify() scheme, none, or adapter with verify_function), and its adapter functions, each named by its schema-qualified signature (text, not regprocedure, so that pg_upgrade can carry it over). Readable by every role; written by superusers through register_connector_kind().';
COMMENT ON COLUMN integration.connector_kinds.auth IS
	'How API calls are authenticated from the connector''s credentials: none ({}), basic ({"username","password"}), bearer ({"token"}), header:<name> ({"token"} sent as that header), json:<pointer> ({"token"} replacing the value the adapter put at that JSON pointer of its body) or query (every credential a query parameter); all but none and query may name their credentials in parentheses, e.g. basic(consumer_key,consumer_secret) or json:/params/args/2(api_key).';
COMMENT ON COLUMN integration.connector_kinds.verify_function IS
	'For signature_scheme adapter: verify(connector_context, secret text, headers jsonb, body text, tolerance interval) RETURNS boolean.';
COMMENT ON COLUMN integration.connector_kinds.normalise_function IS
	'normalise(connector_context, headers jsonb, body text) RETURNS SETOF normalised_event; NULL: the kind receives no webhooks.';
COMMENT ON COLUMN integration.connector_kinds.build_request_function IS
	'build_request(connector_context, operation text, payload jsonb, idempotency_key text) RETURNS connector_request; NULL: the kind makes no API calls.';
COMMENT ON COLUMN integration.connector_kinds.interpret_response_function IS
	'interpret_response(connector_context, operation text, status integer, headers jsonb, body text) RETURNS connector_outcome.';
COMMENT ON COLUMN integration.connector_kinds.pull_streams IS
	'The streams the kind pulls incrementally (e.g. {orders,customers,products}); each page is a call of operation pull to its build_request and interpret_response (docs/connectors.md#sync-incremental-pull). NULL: the kind pulls nothing.';
COMMENT ON COLUMN integration.connector_kinds.record_function IS
	'record(connector_context, topic text, payload jsonb) RETURNS external_record: the synced record a webhook event is about, or NULL when it is about none; receive_webhook() then hands a version of a record that was already pulled or received as a duplicate. NULL: no such dedupe.';
COMMENT ON COLUMN integration.connector_kinds.records_as_pulled IS
	'Whether the record function''s payload is the record as the pull renders it (shopify and woocommerce: their webhook bodies are the REST representation): a pulled version with a webhook''s updated_at, the same top-level keys and another content is then a second change within that moment, handed on. false: a pulled version of a webhook''s moment is that version.';
COMMENT ON COLUMN integration.connector_kinds.idempotency_header IS
	'The header a call''s idempotency key is sent in (e.g. Idempotency-Key), the same key on every attempt of the call; NULL: the platform takes none, and adapters may put the key elsewhere.';
-- Kinds that users register are configuration: pg_dump keeps them (the shipped ones are
-- the extension's).
SELECT pg_catalog.pg_extension_config_dump('integration.connector_kinds', 'WHERE name <> ''generic''');

-- Whatever was granted on the table (GRANT ... ON ALL TABLES IN SCHEMA integration
-- includes it), only superusers write it, TRUNCATE included: a kind's functions run in
-- every tenant's requests, and its verifier is given their inbound secrets.
CREATE FUNCTION integration._connector_kinds_written() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = current_user AND r.rolsuper) THEN
		RAISE EXCEPTION 'only superusers may change connector kinds'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'A kind''s adapter functions run in every tenant''s requests, and its verifier is given their inbound secrets.',
				  HINT = 'Ask a superuser to call integration.register_connector_kind().';
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration._connector_kinds_written() IS
	'Statement trigger on connector_kinds: only superusers change it (internal).';
CREATE TRIGGER connector_kinds_written BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON integration.connector_kinds
	FOR EACH STATEMENT EXECUTE FUNCTION integration._connector_kinds_written();

-- The signature of the existing function sig names, in the form connector_kinds keeps
-- (above); raises undefined_function when there is none.  Under search_path pg_catalog,
-- pg_temp, so that the text names the same function whatever the reader's search_path.
CREATE FUNCTION integration._adapter_signature(sig text) RETURNS text
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	fn regprocedure := sig::regprocedure;
BEGIN
	-- A number is taken as an OID without looking it up.
	IF NOT EXISTS (SELECT FROM pg_proc p WHERE p.oid = fn) THEN
		RAISE EXCEPTION 'function with OID % does not exist', fn::oid
			USING ERRCODE = 'undefined_function';
	END IF;
	RETURN fn::text;
END
$$;
COMMENT ON FUNCTION integration._adapter_signature(text) IS
	'The schema-qualified signature of the function sig names, as connector_kinds stores adapters (internal).';

CREATE FUNCTION integration._connector_kind_signatures() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.verify_function := integration._adapter_signature(NEW.verify_function);
	NEW.normalise_function := integration._adapter_signature(NEW.normalise_function);
	NEW.build_request_function := integration._adapter_signature(NEW.build_request_function);
	NEW.interpret_response_function := integration._adapter_signature(NEW.interpret_response_function);
	NEW.record_function := integration._adapter_signature(NEW.record_function);
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._connector_kind_signatures() IS
	'Row trigger on connector_kinds: stores each adapter function as its schema-qualified signature, refusing one that does not exist (internal).';
CREATE TRIGGER connector_kind_signatures
	BEFORE INSERT OR UPDATE OF verify_function, normalise_function, build_request_function,
		interpret_response_function, record_function
	ON integration.connector_kinds
	FOR EACH ROW EXECUTE FUNCTION integration._connector_kind_signatures();

-- Raises unless fn takes exactly the argument types args and returns ret (a set of them
-- when retset).  Adapters are passed as regprocedure, so that a missing function or a
-- wrong signature is the caller's error at once; the kind then stores the function's
-- signature, not its OID, which pg_upgrade would not keep (connector_kinds above).
CREATE FUNCTION integration._check_adapter(fn regprocedure, role text, args regtype[],
										   ret regtype, retset boolean)
	RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	want text;
BEGIN
	IF fn IS NULL THEN
		RETURN;
	END IF;
	want := format('(%s) RETURNS %s%s',
				   (SELECT string_agg(format_type(a, NULL), ', ' ORDER BY o)
					  FROM unnest(args::oid[]) WITH ORDINALITY AS u(a, o)),
				   CASE WHEN retset THEN 'SETOF ' ELSE '' END, format_type(ret, NULL));
	-- ARRAY(unnest()): an oidvector cast to oid[] keeps its lower bound of 0.
	SELECT pr.prokind, pr.proretset, pr.prorettype,
		   ARRAY(SELECT unnest(pr.proargtypes::oid[])) AS argtypes,
		   pr.provariadic
	  INTO p FROM pg_proc pr WHERE pr.oid = fn;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'function with OID % does not exist', fn::oid
			USING ERRCODE = 'undefined_function';
	END IF;
	IF p.prokind <> 'f' OR p.argtypes IS DISTINCT FROM args::oid[]
	   OR p.prorettype <> ret OR p.proretset <> retset OR p.provariadic <> 0 THEN
		RAISE EXCEPTION '% cannot be the % adapter of a connector kind', fn, role
			USING ERRCODE = 'invalid_function_definition',
				  DETAIL = format('A %s adapter is a function %s; %s is %s(%s) RETURNS %s%s.',
								  role, want,
								  fn,
								  CASE p.prokind WHEN 'f' THEN 'a function ' WHEN 'p' THEN 'a procedure '
												 WHEN 'a' THEN 'an aggregate ' ELSE 'a window function ' END,
								  pg_get_function_identity_arguments(fn),
								  CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END,
								  format_type(p.prorettype, NULL)),
				  HINT = format('Declare it as FUNCTION name%s.', want);
	END IF;
END
$$;
COMMENT ON FUNCTION integration._check_adapter(regprocedure, text, regtype[], regtype, boolean) IS
	'Raises invalid_function_definition unless fn has exactly the given argument types and return type (internal).';

CREATE FUNCTION integration.register_connector_kind(name text, auth text, signature_scheme text,
													normalise regprocedure DEFAULT NULL,
													build_request regprocedure DEFAULT NULL,
													interpret_response regprocedure DEFAULT NULL,
													verify regprocedure DEFAULT NULL,
													description text DEFAULT '',
													replace boolean DEFAULT false,
													idempotency_header text DEFAULT NULL,
													pull_streams text[] DEFAULT NULL,
													record regprocedure DEFAULT NULL,
													records_as_pulled boolean DEFAULT false)
	RETURNS integration.connector_kinds
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	ctx constant regtype := 'integration.connector_context';
	k integration.connector_kinds;
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = current_user AND r.rolsuper) THEN
		RAISE EXCEPTION 'only superusers may register connector kinds'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'A kind''s adapter functions run in every tenant''s requests, and its verifier is given their inbound secrets.',
				  HINT = 'Ask a superuser to register the kind.';
	END IF;
	IF register_connector_kind.name IS NULL OR register_connector_kind.auth IS NULL
	   OR register_connector_kind.signature_scheme IS NULL THEN
		RAISE EXCEPTION 'name, auth and signature_scheme must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass signature_scheme => ''none'' for a kind whose webhooks are not signed.';
	END IF;
	IF register_connector_kind.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
		RAISE EXCEPTION 'invalid connector kind name "%"', register_connector_kind.name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A kind name is 1 to 63 lower-case letters, digits and underscores, starting with a letter: it begins every event name its webhooks become.';
	END IF;
	IF NOT integration._is_auth(register_connector_kind.auth) THEN
		RAISE EXCEPTION 'invalid auth "%"', register_connector_kind.auth
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use none, basic, bearer, header:<header name>, json:<JSON pointer into the body> or query; all but none and query may name their credentials, e.g. basic(consumer_key,consumer_secret), bearer(secret_key) or json:/params/args/2(api_key).';
	END IF;
	IF NOT (register_connector_kind.signature_scheme IN ('none', 'adapter')
			OR integration.is_signature_scheme(register_connector_kind.signature_scheme)) THEN
		RAISE EXCEPTION 'unknown signature scheme "%"', register_connector_kind.signature_scheme
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use one of verify()''s schemes (standard, stripe, shopify, woocommerce, github, hubspot, adyen), none, or adapter with a verify function.';
	END IF;
	IF (register_connector_kind.signature_scheme = 'adapter') <> (register_connector_kind.verify IS NOT NULL) THEN
		RAISE EXCEPTION 'a verify function goes with signature_scheme adapter, and only with it'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (register_connector_kind.build_request IS NULL) <> (register_connector_kind.interpret_response IS NULL) THEN
		RAISE EXCEPTION 'build_request and interpret_response go together'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A kind that makes API calls must both build them and judge their responses.';
	END IF;
	IF register_connector_kind.normalise IS NULL AND register_connector_kind.build_request IS NULL THEN
		RAISE EXCEPTION 'a connector kind needs a normalise adapter, request adapters, or both'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF register_connector_kind.idempotency_header IS NOT NULL
	   AND (register_connector_kind.idempotency_header !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]{1,255}$'
			OR register_connector_kind.build_request IS NULL) THEN
		RAISE EXCEPTION 'invalid idempotency_header "%"', register_connector_kind.idempotency_header
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An idempotency header is an HTTP header name, for a kind that makes API calls.',
				  HINT = 'Stripe, for one, takes Idempotency-Key.';
	END IF;

	IF register_connector_kind.pull_streams IS NOT NULL
	   AND NOT integration._are_stream_names(register_connector_kind.pull_streams) THEN
		RAISE EXCEPTION 'invalid pull_streams %', register_connector_kind.pull_streams
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'pull_streams is an array of 1 to 100 distinct stream names, each of lower-case letters, digits and underscores (words may be joined by dots), starting with a letter, up to 63 characters: a stream''s name is part of its events'' names.',
				  HINT = 'For example ''{orders,customers,products}''; pass NULL for a kind that pulls nothing.';
	END IF;
	IF register_connector_kind.pull_streams IS NOT NULL AND register_connector_kind.build_request IS NULL THEN
		RAISE EXCEPTION 'a kind with pull_streams needs build_request and interpret_response'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Each page of a pull is a call of operation pull, built and judged by the kind''s request adapters.';
	END IF;
	IF register_connector_kind.record IS NOT NULL
	   AND (register_connector_kind.normalise IS NULL OR register_connector_kind.pull_streams IS NULL) THEN
		RAISE EXCEPTION 'a record function goes with a normalise adapter and pull_streams'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'It tells which pulled record a webhook event is about, so that one change is handed to handlers once.';
	END IF;
	IF register_connector_kind.records_as_pulled AND register_connector_kind.record IS NULL THEN
		RAISE EXCEPTION 'records_as_pulled goes with a record function'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'It says that the record function''s payload is the record as the pull renders it.';
	END IF;

	PERFORM integration._check_adapter(register_connector_kind.normalise, 'normalise',
		ARRAY[ctx, 'jsonb', 'text']::regtype[], 'integration.normalised_event', true);
	PERFORM integration._check_adapter(register_connector_kind.build_request, 'build_request',
		ARRAY[ctx, 'text', 'jsonb', 'text']::regtype[], 'integration.connector_request', false);
	PERFORM integration._check_adapter(register_connector_kind.interpret_response, 'interpret_response',
		ARRAY[ctx, 'text', 'integer', 'jsonb', 'text']::regtype[], 'integration.connector_outcome', false);
	PERFORM integration._check_adapter(register_connector_kind.verify, 'verify',
		ARRAY[ctx, 'text', 'jsonb', 'text', 'interval']::regtype[], 'boolean', false);
	PERFORM integration._check_adapter(register_connector_kind.record, 'record',
		ARRAY[ctx, 'text', 'jsonb']::regtype[], 'integration.external_record', false);

	INSERT INTO integration.connector_kinds AS c
		(name, description, auth, signature_scheme, verify_function, normalise_function,
		 build_request_function, interpret_response_function, idempotency_header,
		 pull_streams, record_function, records_as_pulled)
	VALUES (register_connector_kind.name, coalesce(register_connector_kind.description, ''),
			register_connector_kind.auth, register_connector_kind.signature_scheme,
			register_connector_kind.verify::text, register_connector_kind.normalise::text,
			register_connector_kind.build_request::text,
			register_connector_kind.interpret_response::text,
			register_connector_kind.idempotency_header, register_connector_kind.pull_streams,
			register_connector_kind.record::text,
			coalesce(register_connector_kind.records_as_pulled, false))
	ON CONFLICT ON CONSTRAINT connector_kinds_pkey DO UPDATE
	   SET description = EXCLUDED.description, auth = EXCLUDED.auth,
		   signature_scheme = EXCLUDED.signature_scheme, verify_function = EXCLUDED.verify_function,
		   normalise_function = EXCLUDED.normalise_function,
		   build_request_function = EXCLUDED.build_request_function,
		   interpret_response_function = EXCLUDED.interpret_response_function,
		   idempotency_header = EXCLUDED.idempotency_header,
		   pull_streams = EXCLUDED.pull_streams,
		   record_function = EXCLUDED.record_function,
		   records_as_pulled = EXCLUDED.records_as_pulled,
		   updated_at = now()
	 WHERE register_connector_kind.replace
	RETURNING c.* INTO k;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'connector kind "%" already exists', register_connector_kind.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass replace => true to change it.';
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION integration.register_connector_kind(text, text, text, regprocedure, regprocedure, regprocedure, regprocedure, text, boolean, text, text[], regprocedure, boolean) IS
	'Registers a connector kind (superusers only), checking each adapter''s argument and return types; replace => true changes an existing one; idempotency_header names the header calls send their idempotency key in; pull_streams the streams it pulls (operation pull), record the function that tells which pulled record a webhook event is about; records_as_pulled that its payload is the record as the pull renders it (a pulled version of a webhook''s moment with the same top-level keys and another content is then a second change).';

CREATE FUNCTION integration.unregister_connector_kind(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- Superusers see every tenant's connectors.
	IF EXISTS (SELECT FROM integration.connectors c WHERE c.kind = unregister_connector_kind.name) THEN
		RAISE EXCEPTION 'connector kind "%" is in use', unregister_connector_kind.name
			USING ERRCODE = 'dependent_objects_still_exist',
				  DETAIL = 'Connectors of this kind exist, deleted ones included: they keep their inbound events.';
	END IF;
	DELETE FROM integration.connector_kinds k WHERE k.name = unregister_connector_kind.name;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION integration.unregister_connector_kind(text) IS
	'Removes a connector kind no connector uses (superusers only); false when there was none.';

-- A kind keeps its adapter functions: dropping one refuses (2BP01) as dropping a
-- function a view uses does, and DROP ... CASCADE, or dropping the schema or extension
-- the function belongs to, unregisters the kinds that name it (none while connectors of
-- them exist).  An event trigger rather than pg_depend rows: a kind is a row, not a
-- catalogued object, and the trigger keeps no state a dump or restore could lose
-- (src/kind_dependencies.c explains the choice).  Its statements run as its owner: the
-- owner of a function may drop it with CASCADE and its kinds go along, as a view would.
CREATE FUNCTION integration._adapter_dropped() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'integration_adapter_dropped'
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION integration._adapter_dropped() IS
	'sql_drop event trigger: refuses to drop a function a connector kind names, unless with CASCADE or along with its schema or extension, which unregister the kind (internal).';
-- No WHEN TAG filter: functions are also dropped by the cascades of DROP TYPE, DROP
-- TABLE (a row type argument), DROP LANGUAGE, DROP OWNED and ALTER TABLE DROP COLUMN.
CREATE EVENT TRIGGER integration_adapter_dropped ON sql_drop
	EXECUTE FUNCTION integration._adapter_dropped();
COMMENT ON EVENT TRIGGER integration_adapter_dropped IS
	'Keeps connector kinds from naming dropped functions (integration._adapter_dropped()).';

------------------------------------------------------------------------------------------
-- The generic kind: Standard Webhooks in, JSON REST calls with a bearer token out.
------------------------------------------------------------------------------------------

-- One event per request: the webhook-id header (svix-id, as Svix sends it) and the
-- envelope {"type", "timestamp", "data"} of the Standard Webhooks specification.  SQL
-- that the planner inlines into receive_webhook()'s query; OFFSET 0 keeps the body
-- parsed once, not once per column that uses it.
CREATE FUNCTION integration.generic_normalise(connector integration.connector_context,
											  headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT coalesce(integration.header(headers, 'webhook-id'), integration.header(headers, 'svix-id')),
		   p OPERATOR(pg_catalog.->>) 'type',
		   p OPERATOR(pg_catalog.#>>) '{data,id}',
		   p
	  FROM (SELECT body::pg_catalog.jsonb AS p OFFSET 0) AS b
$$;
COMMENT ON FUNCTION integration.generic_normalise(integration.connector_context, jsonb, text) IS
	'The generic kind''s normaliser: one event per Standard Webhooks request, id from webhook-id (or svix-id), topic from "type", object from data.id.';

-- Operations: test (GET settings.test_path, default /), or "<METHOD> /path".  The
-- idempotency key is sent by the caller in the kind's idempotency_header.
CREATE FUNCTION integration.generic_build_request(connector integration.connector_context,
												  operation text, payload jsonb,
												  idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text[];
	method text;
	path text;
	hdrs jsonb := '{"Accept": "application/json"}';
BEGIN
	IF operation = 'test' THEN
		RETURN ('GET', coalesce((connector).settings ->> 'test_path', '/'), NULL, hdrs, NULL)::integration.connector_request;
	END IF;
	m := regexp_match(operation, '^(GET|POST|PUT|PATCH|DELETE) (/[^ ]*)$');
	IF m IS NULL THEN
		RAISE EXCEPTION 'invalid generic operation "%"', operation
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A generic operation is test or "<METHOD> /path" with METHOD one of GET, POST, PUT, PATCH, DELETE.';
	END IF;
	method := m[1];
	path := m[2];
	IF method IN ('GET', 'DELETE') THEN
		RETURN (method, path,
				CASE WHEN jsonb_typeof(payload) = 'object' AND payload <> '{}' THEN payload END,
				hdrs, NULL)::integration.connector_request;
	END IF;
	RETURN (method, path, NULL, hdrs || '{"Content-Type": "application/json"}',
			coalesce(payload, '{}')::text)::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration.generic_build_request(integration.connector_context, text, jsonb, text) IS
	'The generic kind''s request builder: operation test (GET settings.test_path, default /) or "<METHOD> /path"; the payload is the JSON body, or the query of a GET or DELETE (the idempotency key goes in the kind''s idempotency_header, Idempotency-Key).';

CREATE FUNCTION integration.generic_interpret_response(connector integration.connector_context,
													   operation text, status integer,
													   headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	err text;
BEGIN
	IF status BETWEEN 200 AND 299 THEN
		RETURN ('succeeded', NULL,
				coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END), NULL)::integration.connector_outcome;
	END IF;
	err := format('HTTP %s', status);
	IF jsonb_typeof(j) = 'object' THEN
		err := err || coalesce(': ' || coalesce(j #>> '{error,message}', j ->> 'message',
												CASE WHEN jsonb_typeof(j -> 'error') = 'string' THEN j ->> 'error' END), '');
	END IF;
	IF status IN (408, 425, 429) OR status >= 500 THEN
		RETURN ('retry', NULL, j, err)::integration.connector_outcome;
	END IF;
	RETURN ('failed', NULL, j, err)::integration.connector_outcome;
END
$$;
COMMENT ON FUNCTION integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The generic kind''s response interpreter: 2xx succeeded (result: the JSON body), 408, 425, 429 and 5xx retry, anything else failed; the error quotes the body''s error message.';

INSERT INTO integration.connector_kinds (name, description, auth, signature_scheme,
										 normalise_function, build_request_function,
										 interpret_response_function, idempotency_header)
VALUES ('generic', 'Standard Webhooks in (webhook-id, webhook-timestamp, webhook-signature); JSON REST calls with a bearer token out.',
		'bearer', 'standard',
		'integration.generic_normalise(integration.connector_context, jsonb, text)',
		'integration.generic_build_request(integration.connector_context, text, jsonb, text)',
		'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
		'Idempotency-Key');

------------------------------------------------------------------------------------------
-- Connectors: tenant-scoped (row-level security: sql/tenant_isolation.sql).
------------------------------------------------------------------------------------------

CREATE TABLE integration.connectors (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	kind			text COLLATE "C" NOT NULL REFERENCES integration.connector_kinds (name),
	name			text NOT NULL,
	base_url		text,
	credentials		text NOT NULL DEFAULT '{}',
	settings		jsonb NOT NULL DEFAULT '{}',
	inbound_secret	text,
	previous_inbound_secret text,
	previous_secret_expires_at timestamptz,
	dedupe_window	interval,
	is_active		boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	deleted_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT connectors_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT connectors_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
	-- No query or fragment: paths are appended to it, and credentials go elsewhere.
	CONSTRAINT connectors_base_url_check
		CHECK (base_url IS NULL OR (integration.validate_url(base_url) IS NOT NULL
									AND base_url !~ '[?#]')),
	CONSTRAINT connectors_settings_check CHECK (jsonb_typeof(settings) = 'object'),
	-- As for webhook_endpoints.secret: for writes that skip the triggers below.
	CONSTRAINT connectors_credentials_check
		CHECK (CASE WHEN integration.secret_key_id(credentials) IS NOT NULL THEN true
					ELSE integration._validate_credentials(credentials) IS NOT NULL END),
	CONSTRAINT connectors_dedupe_window_check CHECK (dedupe_window > interval '0'),
	CONSTRAINT connectors_previous_secret_check
		CHECK ((previous_inbound_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
COMMENT ON TABLE integration.connectors IS
	'Each tenant''s connections to external accounts, one kind each; deleted_at marks a soft delete. Credentials and inbound secrets are encrypted at rest and never shown.';
COMMENT ON COLUMN integration.connectors.credentials IS
	'The JSON object of credentials the kind''s auth needs, encrypted at rest (enc:v1:...) when integration.encryption_key_file is set. Write the JSON itself: the credentials_encrypted trigger encrypts it.';
COMMENT ON COLUMN integration.connectors.inbound_secret IS
	'The secret inbound webhooks are verified with, encrypted at rest like credentials.';
COMMENT ON COLUMN integration.connectors.previous_inbound_secret IS
	'The secret before the last rotation, which still verifies until previous_secret_expires_at.';
COMMENT ON COLUMN integration.connectors.dedupe_window IS
	'How long a delivery id received once is a duplicate; NULL: integration.inbound_dedupe_window.';

-- Names are unique among a tenant's live connectors.
CREATE UNIQUE INDEX connectors_name_idx ON integration.connectors (tenant_id, name)
	WHERE deleted_at IS NULL;

-- The retention pass's walk of deleted connectors, whose synced records it removes
-- (src/retention_connectors.c).  A delete already changes the predicate's column of
-- connectors_name_idx, so this costs no HOT update; one entry per deleted connector.
CREATE INDEX connectors_deleted_idx ON integration.connectors (deleted_at, id)
	WHERE deleted_at IS NOT NULL;

-- What adapters are told of a connector; SQL the planner inlines into the callers'
-- lookups (src/connector_inbound.c, src/connector_call.c).
CREATE FUNCTION integration._connector_context(c integration.connectors)
	RETURNS integration.connector_context
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN ROW(c.id, c.tenant_id, c.kind, c.name, c.base_url, c.settings)::integration.connector_context;
COMMENT ON FUNCTION integration._connector_context(integration.connectors) IS
	'The connector_context of a connector row: never its credentials or secrets (internal).';

-- Every write of a secret is validated and encrypted, bound to its tenant and connector
-- id (src/secret_column.c).  The two inbound secret columns share a purpose: a rotation
-- moves the current secret, as stored, to the previous one.
CREATE TRIGGER credentials_encrypted BEFORE INSERT OR UPDATE OF credentials, tenant_id, id
	ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'connectors.credentials', 'credentials', 'integration._validate_credentials(text)', 'tenant_id', 'id');
CREATE TRIGGER inbound_secret_encrypted BEFORE INSERT OR UPDATE OF inbound_secret, tenant_id, id
	ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'connectors.inbound_secret', 'inbound_secret', '', 'tenant_id', 'id');
CREATE TRIGGER previous_inbound_secret_encrypted
	BEFORE INSERT OR UPDATE OF previous_inbound_secret, tenant_id, id
	ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration.encrypt_secret(
		'connectors.inbound_secret', 'previous_inbound_secret', '', 'tenant_id', 'id');

-- Credentials go only to the server they were given for.  Stored encrypted, they are
-- never shown again, but a connector moved to another server (base_url's scheme, host
-- or port), to another kind (which may send them another way, or to another base_url
-- later without this check: one with auth none), or to another id (which encrypts
-- them again for it) would send them where they were not given: so each of those
-- takes the credentials again, in the same write, as the JSON itself
-- (update_connector(id, base_url => ..., credentials => ...), or plain DML that sets
-- both).  "Again" is decided before credentials_encrypted runs (BEFORE triggers fire
-- in name order): a stored ciphertext, the old one or any other spelling of it, is not
-- the credentials given again.  An INSERT of a ciphertext (a row deleted and inserted
-- again with the same id, to move it) is a restore's alone (_may_write_ciphertext()).
-- Credentials stored
-- unencrypted (no integration.encryption_key_file) are readable by the tenant anyway,
-- and a move between two kinds with auth none sends none.  Another tenant is row-level
-- security's to refuse (a superuser moving a connector can read its credentials anyway).
CREATE FUNCTION integration._credentials_follow_server() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		IF starts_with(NEW.credentials, 'enc:') AND NOT integration._may_write_ciphertext() THEN
			RAISE EXCEPTION 'the credentials of a new connector cannot be an encrypted value'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'An encrypted value is stored as it is only when a dump is restored.',
					  HINT = 'Write the JSON object of credentials itself; it is encrypted when written.';
		END IF;
		RETURN NEW;
	END IF;
	IF (integration._url_origin(NEW.base_url) IS DISTINCT FROM integration._url_origin(OLD.base_url)
		OR NEW.kind IS DISTINCT FROM OLD.kind
		OR NEW.id IS DISTINCT FROM OLD.id)
	   AND starts_with(OLD.credentials, 'enc:')
	   AND (NEW.credentials IS NOT DISTINCT FROM OLD.credentials OR starts_with(NEW.credentials, 'enc:'))
	   AND NOT (EXISTS (SELECT FROM integration.connector_kinds k WHERE k.name = OLD.kind AND k.auth = 'none')
				AND EXISTS (SELECT FROM integration.connector_kinds k WHERE k.name = NEW.kind AND k.auth = 'none')) THEN
		RAISE EXCEPTION 'connector % cannot move to another server, kind or identity without its credentials', OLD.id
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Its requests would go to %s (kind %s) instead of %s (kind %s), with the credentials given for the latter.',
								  coalesce(integration._url_origin(NEW.base_url), 'nowhere'), NEW.kind,
								  coalesce(integration._url_origin(OLD.base_url), 'nowhere'), OLD.kind),
				  HINT = format('Give the credentials again, as the JSON object itself, in the same write: integration.update_connector(id => %s, base_url => ..., credentials => ...).', OLD.id);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION integration._credentials_follow_server() IS
	'Trigger on connectors: refuses a connector moved to another server (scheme, host or port of base_url), kind or identity unless the same write gives the credentials again, and an encrypted value inserted by a role that could not be restoring a dump, so that encrypted credentials never reach a server they were not given for (internal).';
-- Named to fire before credentials_encrypted, which turns what was given into ciphertext.
CREATE TRIGGER a_credentials_follow_server
	BEFORE INSERT OR UPDATE OF base_url, kind, id ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION integration._credentials_follow_server();

------------------------------------------------------------------------------------------
-- Inbound events: tenant-scoped (sql/tenant_isolation.sql).
------------------------------------------------------------------------------------------

CREATE TABLE integration.inbound_events (
	tenant_id		text COLLATE "C" NOT NULL DEFAULT integration.require_tenant(),
	id				bigint GENERATED ALWAYS AS IDENTITY (CACHE 100),
	connector_id	bigint NOT NULL,
	external_id		text NOT NULL,
	object_id		text,
	topic			text NOT NULL,
	event			text NOT NULL,
	payload			jsonb NOT NULL,
	received_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	status			text NOT NULL DEFAULT 'pending',
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz DEFAULT pg_catalog.now(),
	last_error		text,
	processed_at	timestamptz,
	-- Set when the same external id arrived again after the dedupe window: the later
	-- event is stored, and this one no longer counts for deduplication.
	dedupe_expired	boolean NOT NULL DEFAULT false,
	PRIMARY KEY (tenant_id, id),
	-- No foreign key to connectors: its per-row checks were 13% of the pulling
	-- worker's time a page (bench/README.md).  The triggers below enforce what it would,
	-- a statement at a time (src/connector_references.c).
	CONSTRAINT inbound_events_tenant_check CHECK (tenant_id <> ''),
	CONSTRAINT inbound_events_external_id_check CHECK (length(external_id) BETWEEN 1 AND 255),
	CONSTRAINT inbound_events_event_check CHECK (integration.validate_event_name(event) IS NOT NULL),
	CONSTRAINT inbound_events_status_check
		CHECK (status IN ('pending', 'processed', 'failed', 'skipped')),
	CONSTRAINT inbound_events_attempts_check CHECK (attempts >= 0),
	CONSTRAINT inbound_events_scheduled_check
		CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
COMMENT ON TABLE integration.inbound_events IS
	'Webhooks received by connectors, verified and deduplicated, one row per event: the normalised name (<kind>.<topic with dots>), the payload, and the state of its handling.';
COMMENT ON COLUMN integration.inbound_events.external_id IS
	'The platform''s id of the event or delivery, or sha256:<hex> of the body where it has none; unique per connector within the dedupe window.';
COMMENT ON COLUMN integration.inbound_events.object_id IS
	'The external object the event is about: events of one object of one connector are handled in the order received.';
COMMENT ON COLUMN integration.inbound_events.status IS
	'pending: waiting for handlers (next_attempt_at); processed; failed: out of attempts (last_error); skipped: no handler wanted it.';

-- Payloads are JSON of a few kB, just past the size at which a row is compressed: lz4
-- compresses them in a fraction of pglz's time (pglz took an eighth of
-- receive_webhook()'s time for a 2.3 kB body, bench/README.md).  Where the server was
-- built without lz4, the default stays.
DO $$
BEGIN
	ALTER TABLE integration.inbound_events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END
$$;

-- What foreign keys to connectors would check, once per statement instead of once per
-- row: a sync run's page inserts a record and an event for each of its records
-- (src/connector_references.c).  external_records (sql/sync.sql) has the same.
CREATE FUNCTION integration.check_connector_references() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_check_connector_references'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.check_connector_references() IS
	'Trigger on inbound_events and external_records: every row refers to a connector of its own tenant (what a foreign key would check, a statement at a time).';
CREATE TRIGGER inbound_events_references_checked AFTER INSERT ON integration.inbound_events
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_connector_references();
-- Every UPDATE, not UPDATE OF the key: a column-specific trigger misses a key that a
-- BEFORE trigger changes without the statement naming it, which a foreign key's check
-- (it compares the old and the new key of every updated row) would catch.  The WHEN
-- clause keeps the others cheap.
CREATE TRIGGER inbound_events_rekeyed_checked AFTER UPDATE
	ON integration.inbound_events
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
					   OR OLD.connector_id IS DISTINCT FROM NEW.connector_id)
	EXECUTE FUNCTION integration.check_connector_references();

-- ON DELETE NO ACTION for connectors: a connector that events or records refer to
-- keeps its key and cannot be deleted or truncated (delete_connector() soft-deletes).
CREATE FUNCTION integration.check_connector_unreferenced() RETURNS trigger
	AS 'MODULE_PATHNAME', 'integration_check_connector_unreferenced'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.check_connector_unreferenced() IS
	'Trigger on connectors: no inbound event or external record refers to a connector key that was deleted, changed or truncated.';
CREATE TRIGGER connectors_deleted_unreferenced AFTER DELETE ON integration.connectors
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_connector_unreferenced();
-- Every UPDATE, as for inbound_events_rekeyed_checked: a key a BEFORE trigger changes
-- is a changed key too.
CREATE TRIGGER connectors_rekeyed_unreferenced AFTER UPDATE
	ON integration.connectors
	FOR EACH ROW WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id OR OLD.id IS DISTINCT FROM NEW.id)
	EXECUTE FUNCTION integration.check_connector_unreferenced();
CREATE TRIGGER connectors_truncated_unreferenced AFTER TRUNCATE ON integration.connectors
	FOR EACH STATEMENT EXECUTE FUNCTION integration.check_connector_unreferenced();

-- Deduplication: one live row per delivery id and connector, whatever races.
CREATE UNIQUE INDEX inbound_events_dedupe_idx
	ON integration.inbound_events (tenant_id, connector_id, external_id)
	WHERE NOT dedupe_expired;
-- A tenant's pending events per connector and external object, in the order received
-- (received_at, then id: ids come from a cached identity, so sessions take them out of
-- order): an event waits while an earlier one of its object is pending
-- (src/inbound_store.c).
CREATE INDEX inbound_events_pending_idx
	ON integration.inbound_events (tenant_id, connector_id, object_id, received_at, id)
	WHERE status = 'pending';
-- What is due, per tenant, for the worker: it walks the tenants with pending events
-- (one probe each, which also gives each tenant's earliest next_attempt_at) and takes a
-- share of each one's due events, so one tenant's backlog never fills a claim.
CREATE INDEX inbound_events_due_idx ON integration.inbound_events (tenant_id, next_attempt_at, id)
	WHERE next_attempt_at IS NOT NULL;
-- Failed events per connector, for the backlog view and reprocess_inbound_events().
CREATE INDEX inbound_events_failed_idx
	ON integration.inbound_events (tenant_id, connector_id, received_at)
	WHERE status = 'failed';
-- Retention (src/retention_connectors.c) walks the handled events across tenants, by
-- when they were handled (received_at for a finished row written without processed_at).
-- Only finished rows: the handler worker's write of an outcome, which adds this entry,
-- changes columns of the claim's partial indexes and was never a HOT update.
CREATE INDEX inbound_events_expiry_idx
	ON integration.inbound_events ((COALESCE(processed_at, received_at)), id)
	WHERE status <> 'pending';
-- list_inbound_events() has no index per filter: each would cost every stored event an
-- entry, a sync page 250 of them.  The four that made
-- every filter read in index order (by connector, status, event and received_at, each
-- ending in id) took a sync from 22,384 and 22,392 records/s to 18,680 and 17,764
-- (bench/run sync, two interleaved pairs, 2026-12-07) and the handler worker 8% (its
-- outcome UPDATE, never HOT, adds an entry to each): more than a listing of a rare value
-- saves (22-33 ms at 200,000 events of a tenant, which retention bounds).

------------------------------------------------------------------------------------------
-- The connector API.  SECURITY INVOKER throughout: row-level security scopes every call
-- to the caller's tenant.
------------------------------------------------------------------------------------------

CREATE TYPE integration.connector AS (
	id				bigint,
	kind			text,
	name			text,
	base_url		text,
	settings		jsonb,
	credentials		jsonb,
	inbound_secret	text,
	previous_secret_expires_at timestamptz,
	dedupe_window	interval,
	is_active		boolean,
	created_at		timestamptz,
	updated_at		timestamptz
);
COMMENT ON TYPE integration.connector IS
	'A connector as the API shows it: credentials and inbound secret masked.';

CREATE FUNCTION integration._connector_view(c integration.connectors) RETURNS integration.connector
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN ROW(c.id, c.kind, c.name, c.base_url, c.settings,
			   integration._mask_credentials(c.credentials, c.tenant_id, c.id),
			   integration.mask_stored_secret(c.inbound_secret, 'connectors.inbound_secret',
											  c.tenant_id, c.id::text),
			   c.previous_secret_expires_at, c.dedupe_window, c.is_active, c.created_at,
			   c.updated_at)::integration.connector;
COMMENT ON FUNCTION integration._connector_view(integration.connectors) IS
	'A connector row as the API shows it, secrets masked (internal).';

-- Raises unless credentials fit the kind's auth; never echoes a value.
CREATE FUNCTION integration._check_credentials(auth text, credentials jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	want text[];
	have text[];
BEGIN
	IF jsonb_typeof(credentials) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'credentials must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO have FROM jsonb_object_keys(credentials) AS k;
	SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO want
	  FROM unnest(integration._auth_keys(auth)) AS k;
	IF auth = 'query' THEN
		IF cardinality(have) = 0 THEN
			RAISE EXCEPTION 'credentials for query authentication must not be empty'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Each credential is sent as a query parameter, e.g. {"consumer_key": "...", "consumer_secret": "..."}.';
		END IF;
		IF EXISTS (SELECT FROM unnest(have) k WHERE k !~ '^[A-Za-z0-9_.~-]{1,128}$') THEN
			RAISE EXCEPTION 'invalid query parameter name in credentials'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'A credential sent as a query parameter is named with letters, digits and _ . ~ - only.';
		END IF;
	ELSIF have IS DISTINCT FROM want THEN
		RAISE EXCEPTION 'credentials for % authentication must have exactly the keys %',
			  integration._auth_style(auth),
			  CASE WHEN cardinality(want) = 0 THEN 'none (pass {})' ELSE array_to_string(want, ' and ') END
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The credentials have %s.',
								  CASE WHEN cardinality(have) = 0 THEN 'no key'
									   ELSE 'the keys ' || array_to_string(have, ', ') END);
	END IF;
	IF EXISTS (SELECT FROM jsonb_each(credentials) e
				WHERE jsonb_typeof(e.value) <> 'string' OR e.value = '""') THEN
		RAISE EXCEPTION 'every credential must be a non-empty string'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION integration._check_credentials(text, jsonb) IS
	'Raises invalid_parameter_value unless credentials have the keys the auth style needs, as non-empty strings; never echoes a value (internal).';

-- The outbound rules of webhook endpoints (validate_destination()), and no query or
-- fragment: the adapters' paths are appended to it.
CREATE FUNCTION integration._check_base_url(url text) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM integration.validate_destination(url);
	IF url ~ '[?#]' THEN
		RAISE EXCEPTION 'invalid connector base_url "%"', url
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A base URL has no query string or fragment: the kind''s request paths are appended to it.',
				  HINT = 'Credentials sent as query parameters belong in credentials, for a kind with auth query.';
	END IF;
END
$$;
COMMENT ON FUNCTION integration._check_base_url(text) IS
	'Raises invalid_parameter_value unless url may be a connector''s base URL under the outbound rules in force (internal).';

-- The settings the extension itself reads (docs/connectors.md#settings-of-a-connector);
-- a kind's adapters read the others as they please.
CREATE FUNCTION integration._check_connector_settings(settings jsonb) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k text;
	n numeric;
BEGIN
	IF settings IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(settings) <> 'object' THEN
		RAISE EXCEPTION 'settings must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings ? 'retry_schedule' THEN
		IF jsonb_typeof(settings -> 'retry_schedule') <> 'string' THEN
			RAISE EXCEPTION 'settings.retry_schedule must be a string'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'A retry schedule is a string of delays, e.g. "10s, 1min, 1h"; empty: no retries.';
		END IF;
		-- Raises invalid_parameter_value, saying what is wrong, for one that does not parse.
		IF settings ->> 'retry_schedule' <> '' THEN
			PERFORM integration.retry_delay(1, settings ->> 'retry_schedule', NULL, 0);
		END IF;
	END IF;
	-- As webhook_endpoints.rate_limit and rate_limit_burst (src/call_store.c reads them).
	FOREACH k IN ARRAY ARRAY['rate_limit', 'rate_limit_burst'] LOOP
		CONTINUE WHEN NOT settings ? k;
		IF jsonb_typeof(settings -> k) <> 'number' THEN
			n := NULL;
		ELSE
			n := (settings ->> k)::numeric;
		END IF;
		IF n IS NULL OR n <> trunc(n) OR n NOT BETWEEN 1 AND 100000 THEN
			RAISE EXCEPTION 'settings.% must be a whole number from 1 to 100000', k
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'rate_limit is the most calls per second to the connector; rate_limit_burst how many may go at once after a quiet spell (the bucket''s size).';
		END IF;
	END LOOP;
	IF settings ? 'rate_limit_burst' AND NOT settings ? 'rate_limit' THEN
		RAISE EXCEPTION 'settings.rate_limit_burst goes with a rate_limit'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION integration._check_connector_settings(jsonb) IS
	'Raises invalid_parameter_value unless settings is a JSON object whose retry_schedule, if any, is a retry schedule, and whose rate_limit and rate_limit_burst, if any, are whole numbers from 1 to 100000 (internal).';

CREATE FUNCTION integration._connector_not_found(id bigint) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'connector % not found', id
		USING ERRCODE = 'no_data_found',
			  HINT = 'integration.list_connectors() lists the current tenant''s connectors.';
END
$$;
COMMENT ON FUNCTION integration._connector_not_found(bigint) IS
	'Raises no_data_found for a connector the current tenant does not have (internal).';

CREATE FUNCTION integration.create_connector(kind text, name text, base_url text,
											 credentials jsonb, settings jsonb DEFAULT '{}',
											 inbound_secret text DEFAULT NULL,
											 dedupe_window interval DEFAULT NULL)
	RETURNS integration.connector
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k integration.connector_kinds;
	c integration.connectors;
BEGIN
	PERFORM integration.require_tenant();
	SELECT * INTO k FROM integration.connector_kinds ck WHERE ck.name = create_connector.kind;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'connector kind "%" does not exist', create_connector.kind
			USING ERRCODE = 'undefined_object',
				  HINT = 'SELECT name FROM integration.connector_kinds lists the kinds.';
	END IF;
	IF create_connector.name IS NULL OR length(btrim(create_connector.name)) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid connector name'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A connector name has 1 to 200 characters and is not blank.';
	END IF;
	IF create_connector.base_url IS NOT NULL THEN
		PERFORM integration._check_base_url(create_connector.base_url);
	ELSIF k.build_request_function IS NOT NULL THEN
		RAISE EXCEPTION 'a % connector needs a base_url', k.name
			USING ERRCODE = 'null_value_not_allowed',
				  DETAIL = 'Its kind makes API calls, which go to paths under the base URL.';
	END IF;
	PERFORM integration._check_credentials(k.auth, coalesce(create_connector.credentials, '{}'));
	PERFORM integration._check_connector_settings(create_connector.settings);
	IF create_connector.inbound_secret IS NOT NULL THEN
		PERFORM integration._validate_inbound_secret(k.signature_scheme, create_connector.inbound_secret);
	END IF;
	IF create_connector.dedupe_window <= interval '0' THEN
		RAISE EXCEPTION 'dedupe_window must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM integration.connectors x
				WHERE x.tenant_id = integration.current_tenant() AND x.name = create_connector.name
				  AND x.deleted_at IS NULL) THEN
		RAISE EXCEPTION 'connector "%" already exists', create_connector.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Connector names are unique among a tenant''s connectors.';
	END IF;

	INSERT INTO integration.connectors AS x (kind, name, base_url, credentials, settings,
											 inbound_secret, dedupe_window)
	VALUES (create_connector.kind, create_connector.name, create_connector.base_url,
			coalesce(create_connector.credentials, '{}')::text,
			coalesce(create_connector.settings, '{}'), create_connector.inbound_secret,
			create_connector.dedupe_window)
	RETURNING x.* INTO c;

	PERFORM integration.log('info', 'api', 'connector.created',
							format('connector %s created', c.id),
							jsonb_build_object('connector_id', c.id, 'kind', c.kind, 'name', c.name,
											   'base_url', c.base_url,
											   'inbound_secret', c.inbound_secret IS NOT NULL));
	RETURN integration._connector_view(c);
END
$$;
COMMENT ON FUNCTION integration.create_connector(text, text, text, jsonb, jsonb, text, interval) IS
	'Creates a connector of a kind for the current tenant; credentials (checked against the kind''s auth) and the inbound secret are stored encrypted and never shown again.';

CREATE FUNCTION integration.list_connectors() RETURNS SETOF integration.connector
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	RETURN QUERY
		SELECT v.*
		  FROM integration.connectors c, LATERAL integration._connector_view(c) v
		 WHERE c.tenant_id = tenant AND c.deleted_at IS NULL
		 ORDER BY c.created_at, c.id;
END
$$;
COMMENT ON FUNCTION integration.list_connectors() IS
	'The current tenant''s connectors that are not deleted, credentials and secrets masked.';

CREATE FUNCTION integration.show_connector(id bigint) RETURNS integration.connector
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
	c integration.connectors;
BEGIN
	SELECT * INTO c FROM integration.connectors x
	 WHERE x.tenant_id = tenant AND x.id = show_connector.id AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(show_connector.id);
	END IF;
	RETURN integration._connector_view(c);
END
$$;
COMMENT ON FUNCTION integration.show_connector(bigint) IS
	'One connector of the current tenant, credentials and secrets masked; raises no_data_found when there is none.';

CREATE FUNCTION integration.update_connector(id bigint, name text DEFAULT NULL,
											 base_url text DEFAULT NULL,
											 credentials jsonb DEFAULT NULL,
											 settings jsonb DEFAULT NULL,
											 inbound_secret text DEFAULT NULL,
											 dedupe_window interval DEFAULT NULL,
											 is_active boolean DEFAULT NULL)
	RETURNS integration.connector
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c integration.connectors;
	k integration.connector_kinds;
	changed text[];
BEGIN
	PERFORM integration.require_tenant();
	changed := array_remove(ARRAY[
		CASE WHEN update_connector.name IS NOT NULL THEN 'name' END,
		CASE WHEN update_connector.base_url IS NOT NULL THEN 'base_url' END,
		CASE WHEN update_connector.credentials IS NOT NULL THEN 'credentials' END,
		CASE WHEN update_connector.settings IS NOT NULL THEN 'settings' END,
		CASE WHEN update_connector.inbound_secret IS NOT NULL THEN 'inbound_secret' END,
		CASE WHEN update_connector.dedupe_window IS NOT NULL THEN 'dedupe_window' END,
		CASE WHEN update_connector.is_active IS NOT NULL THEN 'is_active' END], NULL);
	SELECT * INTO c FROM integration.connectors x
	 WHERE x.tenant_id = integration.current_tenant() AND x.id = update_connector.id
	   AND x.deleted_at IS NULL
	   FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(update_connector.id);
	END IF;
	IF cardinality(changed) = 0 THEN
		-- Nothing to change: no write, no log row.
		RETURN integration._connector_view(c);
	END IF;
	SELECT * INTO k FROM integration.connector_kinds ck WHERE ck.name = c.kind;

	IF update_connector.name IS NOT NULL AND length(btrim(update_connector.name)) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid connector name'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A connector name has 1 to 200 characters and is not blank.';
	END IF;
	IF update_connector.name IS NOT NULL AND EXISTS (
			SELECT FROM integration.connectors x
			 WHERE x.tenant_id = c.tenant_id AND x.name = update_connector.name
			   AND x.deleted_at IS NULL AND x.id <> c.id) THEN
		RAISE EXCEPTION 'connector "%" already exists', update_connector.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Connector names are unique among a tenant''s connectors.';
	END IF;
	IF update_connector.base_url IS NOT NULL THEN
		PERFORM integration._check_base_url(update_connector.base_url);
	END IF;
	IF update_connector.credentials IS NOT NULL THEN
		PERFORM integration._check_credentials(k.auth, update_connector.credentials);
	END IF;
	PERFORM integration._check_connector_settings(update_connector.settings);
	IF update_connector.inbound_secret IS NOT NULL THEN
		PERFORM integration._validate_inbound_secret(k.signature_scheme, update_connector.inbound_secret);
	END IF;
	IF update_connector.dedupe_window <= interval '0' THEN
		RAISE EXCEPTION 'dedupe_window must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- A new inbound secret replaces the old one at once; rotate_inbound_secret() keeps
	-- the old one verifying for a while.
	UPDATE integration.connectors AS x
	   SET name = coalesce(update_connector.name, x.name),
		   base_url = coalesce(update_connector.base_url, x.base_url),
		   credentials = coalesce(update_connector.credentials::text, x.credentials),
		   settings = coalesce(update_connector.settings, x.settings),
		   inbound_secret = coalesce(update_connector.inbound_secret, x.inbound_secret),
		   previous_inbound_secret = CASE WHEN update_connector.inbound_secret IS NULL
										  THEN x.previous_inbound_secret END,
		   previous_secret_expires_at = CASE WHEN update_connector.inbound_secret IS NULL
											 THEN x.previous_secret_expires_at END,
		   dedupe_window = coalesce(update_connector.dedupe_window, x.dedupe_window),
		   is_active = coalesce(update_connector.is_active, x.is_active),
		   updated_at = now()
	 WHERE x.tenant_id = c.tenant_id AND x.id = c.id
	RETURNING x.* INTO c;

	PERFORM integration.log('info', 'api', 'connector.updated',
							format('connector %s updated', c.id),
							jsonb_build_object('connector_id', c.id, 'changed', to_jsonb(changed)));
	-- Its queued calls go out with what changed, and wait while it is disabled.
	PERFORM integration._wake_calls_at_commit();
	RETURN integration._connector_view(c);
END
$$;
COMMENT ON FUNCTION integration.update_connector(bigint, text, text, jsonb, jsonb, text, interval, boolean) IS
	'Changes the given fields of a connector (NULL leaves a field unchanged); a new inbound secret replaces the old one at once. Returns it, secrets masked.';

CREATE FUNCTION integration.rotate_inbound_secret(id bigint, new_secret text,
												  grace interval DEFAULT '1 day')
	RETURNS integration.connector
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c integration.connectors;
	scheme text;
BEGIN
	PERFORM integration.require_tenant();
	IF new_secret IS NULL OR grace IS NULL THEN
		RAISE EXCEPTION 'new_secret and grace must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF grace < interval '0' THEN
		RAISE EXCEPTION 'grace must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT k.signature_scheme INTO scheme
	  FROM integration.connectors x JOIN integration.connector_kinds k ON k.name = x.kind
	 WHERE x.tenant_id = integration.current_tenant() AND x.id = rotate_inbound_secret.id
	   AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(rotate_inbound_secret.id);
	END IF;
	PERFORM integration._validate_inbound_secret(scheme, new_secret);

	-- The current secret moves to previous as it is stored: both columns are encrypted
	-- for the same purpose and row.
	UPDATE integration.connectors AS x
	   SET previous_inbound_secret = CASE WHEN grace > interval '0' THEN x.inbound_secret END,
		   previous_secret_expires_at = CASE WHEN grace > interval '0' AND x.inbound_secret IS NOT NULL
											 THEN now() + grace END,
		   inbound_secret = new_secret,
		   updated_at = now()
	 WHERE x.tenant_id = integration.current_tenant() AND x.id = rotate_inbound_secret.id
	RETURNING x.* INTO c;

	PERFORM integration.log('info', 'api', 'connector.secret_rotated',
							format('inbound secret of connector %s rotated', c.id),
							jsonb_build_object('connector_id', c.id,
											   'previous_valid_until', c.previous_secret_expires_at));
	RETURN integration._connector_view(c);
END
$$;
COMMENT ON FUNCTION integration.rotate_inbound_secret(bigint, text, interval) IS
	'Makes new_secret the connector''s inbound secret; the old one still verifies for grace (0: not at all).';

CREATE FUNCTION integration.delete_connector(id bigint) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM integration.require_tenant();
	-- Soft: its inbound events stay.  Its credentials and secrets go now.
	UPDATE integration.connectors AS x
	   SET deleted_at = now(), updated_at = now(), is_active = false, credentials = '{}',
		   inbound_secret = NULL, previous_inbound_secret = NULL, previous_secret_expires_at = NULL
	 WHERE x.tenant_id = integration.current_tenant() AND x.id = delete_connector.id
	   AND x.deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM integration._connector_not_found(delete_connector.id);
	END IF;
	PERFORM integration.log('info', 'api', 'connector.deleted',
							format('connector %s deleted', delete_connector.id),
							jsonb_build_object('connector_id', delete_connector.id));
	-- Its queued calls fail, each with its completion event (src/call_job.c).
	PERFORM integration._wake_calls_at_commit();
	RETURN true;
END
$$;
COMMENT ON FUNCTION integration.delete_connector(bigint) IS
	'Soft-deletes a connector of the current tenant: it receives, calls and pulls nothing more (its queued calls fail, its sync streams go, which stops a run), its credentials and secrets are erased, its inbound events and calls stay until they expire, and its synced records (external_records) go integration.retention_delivered after the delete.';

CREATE FUNCTION integration.test_connector(id bigint, OUT ok boolean, OUT status integer,
										   OUT latency interval, OUT error text)
	AS 'MODULE_PATHNAME', 'integration_test_connector'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.test_connector(bigint) IS
	'Makes the kind''s test call (operation test) to the connector''s API, authenticated, under the outbound safety rules, and returns whether the kind judged it a success, the HTTP status (0: no response), how long it took and the error.';

CREATE FUNCTION integration.receive_webhook(connector_id bigint, headers jsonb, body text)
	RETURNS TABLE (status text, inbound_id bigint, event text)
	AS 'MODULE_PATHNAME', 'integration_receive_webhook'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION integration.receive_webhook(bigint, jsonb, text) IS
	'Verifies an inbound webhook of one of the current tenant''s connectors on its raw body, deduplicates it and stores its events; one row per event: accepted or duplicate with the inbound event id and name; rejected (with a log row saying why) for a request that does not verify or cannot be read. Never raises for a bad request.';

CREATE FUNCTION integration.list_inbound_events("limit" integer DEFAULT 100,
												connector_id bigint DEFAULT NULL,
												status text DEFAULT NULL,
												event text DEFAULT NULL,
												since timestamptz DEFAULT NULL,
												before_id bigint DEFAULT NULL)
	RETURNS SETOF integration.inbound_events
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := integration.require_tenant();
BEGIN
	-- One statement for every filter, which walks the tenant's events newest first:
	-- see inbound_events' indexes for why no filter has one of its own.  A keyset
	-- page (before_id, the id of the last event of the page before) starts its walk
	-- there in the primary key.
	RETURN QUERY
		SELECT e.*
		  FROM integration.inbound_events e
		 WHERE e.tenant_id = tenant
		   AND e.id < coalesce(list_inbound_events.before_id, 9223372036854775807)
		   AND (list_inbound_events.connector_id IS NULL OR e.connector_id = list_inbound_events.connector_id)
		   AND (list_inbound_events.status IS NULL OR e.status = list_inbound_events.status)
		   AND (list_inbound_events.event IS NULL OR e.event = list_inbound_events.event)
		   AND (list_inbound_events.since IS NULL OR e.received_at >= list_inbound_events.since)
		 ORDER BY e.id DESC
		 LIMIT greatest(list_inbound_events."limit", 0);
END
$$;
COMMENT ON FUNCTION integration.list_inbound_events(integer, bigint, text, text, timestamptz, bigint) IS
	'The current tenant''s newest inbound events, at most "limit", optionally filtered by connector, status, event and time; before_id, the id of the last event of a page, gives the next page.';

------------------------------------------------------------------------------------------
-- Privileges: the catalogue of kinds is readable by every role; nothing else is granted
-- to PUBLIC (docs/tenancy-and-security.md lists an application role's grants).
------------------------------------------------------------------------------------------

REVOKE ALL ON TABLE integration.connector_kinds, integration.connectors,
	integration.inbound_events FROM PUBLIC;
GRANT SELECT ON TABLE integration.connector_kinds TO PUBLIC;
REVOKE ALL ON FUNCTION
	integration.header(jsonb, text), integration.try_jsonb(text),
	integration.is_signature_scheme(text), integration._validate_inbound_secret(text, text),
	integration._validate_credentials(text), integration._mask_credentials(text, text, bigint),
	integration._connector_kinds_written(), integration._adapter_signature(text),
	integration._connector_kind_signatures(),
	integration.check_connector_references(), integration.check_connector_unreferenced(),
	integration._check_adapter(regprocedure, text, regtype[], regtype, boolean),
	integration.register_connector_kind(text, text, text, regprocedure, regprocedure, regprocedure, regprocedure, text, boolean, text, text[], regprocedure, boolean),
	integration._are_stream_names(text[]),
	integration.unregister_connector_kind(text), integration._adapter_dropped(),
	integration.generic_normalise(integration.connector_context, jsonb, text),
	integration.generic_build_request(integration.connector_context, text, jsonb, text),
	integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text),
	integration._connector_view(integration.connectors), integration._connector_context(integration.connectors),
	integration._check_credentials(text, jsonb), integration._connector_not_found(bigint),
	integration._check_base_url(text), integration._check_connector_settings(jsonb),
	integration.create_connector(text, text, text, jsonb, jsonb, text, interval),
	integration.list_connectors(), integration.show_connector(bigint),
	integration.update_connector(bigint, text, text, jsonb, jsonb, text, interval, boolean),
	integration.rotate_inbound_secret(bigint, text, interval),
	integration.delete_connector(bigint), integration.test_connector(bigint),
	integration.receive_webhook(bigint, jsonb, text),
	integration.list_inbound_events(integer, bigint, text, text, timestamptz, bigint)
	FROM PUBLIC;
