------------------------------------------------------------------------------------------
-- Platform wire formats (appended to integration.sql by the Makefile): the building blocks
-- the payment and ERP connectors use, each usable on its own from SQL.
--
--   Adyen     the HMAC inside each item of a standard notification, and the acknowledgement
--             (src/adyen_notification.c, src/adyen_sql.c; verify('adyen', ...) also)
--   Stripe    request parameters as the form body Stripe's libraries send (src/stripe_form.c)
--   Odoo      the JSON-RPC execute_kw call, and its error envelope classified (SQL below)
--
-- docs/signing.md and docs/connectors-payments.md describe them.
------------------------------------------------------------------------------------------

-- Adyen ---------------------------------------------------------------------------------

CREATE FUNCTION integration.adyen_verify_item(hmac_key text, item jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_adyen_verify_item'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION integration.adyen_verify_item(text, jsonb) IS
	'True if the NotificationRequestItem carries in additionalData.hmacSignature the HMAC of its signed fields under one of the hex keys (space-separated); false for anything malformed; raises for a missing or bad key.';

CREATE FUNCTION integration.adyen_verify_notification(hmac_key text, notification jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'integration_adyen_verify_notification'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION integration.adyen_verify_notification(text, jsonb) IS
	'True if the notification has at least one item and every item verifies with adyen_verify_item(); false for anything malformed.';

CREATE FUNCTION integration.adyen_signing_string(item jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_adyen_signing_string'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.adyen_signing_string(jsonb) IS
	'The string an Adyen NotificationRequestItem signs: pspReference, originalReference, merchantAccountCode, merchantReference, amount.value, amount.currency, eventCode and success joined by ":" (missing or null: empty); raises 22023 for an item that cannot be signed.';

CREATE FUNCTION integration.adyen_hmac_signature(hmac_key text, item jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_adyen_hmac_signature'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION integration.adyen_hmac_signature(text, jsonb) IS
	'The base64 HMAC-SHA256 of adyen_signing_string(item) under the first hex key of hmac_key.';

CREATE FUNCTION integration.adyen_sign_item(hmac_key text, item jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.jsonb_set(item, '{additionalData}',
		CASE WHEN pg_catalog.jsonb_typeof(item -> 'additionalData') = 'object'
			 THEN item -> 'additionalData' ELSE '{}' END
		|| pg_catalog.jsonb_build_object('hmacSignature', integration.adyen_hmac_signature(hmac_key, item)))
$$;
COMMENT ON FUNCTION integration.adyen_sign_item(text, jsonb) IS
	'The NotificationRequestItem with additionalData.hmacSignature set to adyen_hmac_signature(hmac_key, item), as Adyen sends it.';

CREATE FUNCTION integration.adyen_sign_notification(hmac_key text, notification jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	items jsonb := notification -> 'notificationItems';
	signed jsonb := '[]';
	wrapper jsonb;
BEGIN
	IF jsonb_typeof(items) IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'notification has no notificationItems array'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An Adyen notification is {"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}.';
	END IF;
	FOR wrapper IN SELECT e FROM jsonb_array_elements(items) AS e LOOP
		IF jsonb_typeof(wrapper -> 'NotificationRequestItem') IS DISTINCT FROM 'object' THEN
			RAISE EXCEPTION 'an element of notificationItems has no NotificationRequestItem object'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		signed := signed || jsonb_build_array(jsonb_set(wrapper, '{NotificationRequestItem}',
			integration.adyen_sign_item(hmac_key, wrapper -> 'NotificationRequestItem')));
	END LOOP;
	RETURN jsonb_set(notification, '{notificationItems}', signed);
END
$$;
COMMENT ON FUNCTION integration.adyen_sign_notification(text, jsonb) IS
	'The notification with every item signed by adyen_sign_item(), as a test server or a replay sends it.';

CREATE FUNCTION integration.adyen_acknowledgement() RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT '[accepted]'::text $$;
COMMENT ON FUNCTION integration.adyen_acknowledgement() IS
	'The body Adyen expects in the HTTP 200 answer to a standard notification: [accepted]. Without it Adyen retries the delivery.';

-- Stripe --------------------------------------------------------------------------------

CREATE FUNCTION integration.stripe_form_encode(payload jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'integration_stripe_form_encode'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION integration.stripe_form_encode(jsonb) IS
	'The application/x-www-form-urlencoded body Stripe''s Node library sends for the parameters: a[b][c]=, indexed arrays a[0]=, "" and null as a=, numbers as JavaScript writes them; raises 22023 for a non-object or a number JavaScript would change.';

-- Odoo ----------------------------------------------------------------------------------

CREATE FUNCTION integration.odoo_execute_kw_request(db text, uid integer, api_key text, model text,
													 method text, args jsonb, kwargs jsonb DEFAULT '{}',
													 request_id bigint DEFAULT 1)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text := CASE WHEN db IS NULL THEN 'db' WHEN uid IS NULL THEN 'uid'
						 WHEN api_key IS NULL THEN 'api_key' WHEN model IS NULL THEN 'model'
						 WHEN method IS NULL THEN 'method' WHEN args IS NULL THEN 'args'
						 WHEN kwargs IS NULL THEN 'kwargs' WHEN request_id IS NULL THEN 'request_id' END;
BEGIN
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION '% must not be null', missing USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF db = '' OR api_key = '' OR model = '' OR method = '' THEN
		RAISE EXCEPTION 'db, api_key, model and method must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF uid <= 0 THEN
		RAISE EXCEPTION 'uid must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The uid is the user id common.authenticate returns (false when the login fails).';
	END IF;
	IF jsonb_typeof(args) <> 'array' THEN
		RAISE EXCEPTION 'args must be a JSON array'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'execute_kw passes args as the method''s positional arguments, e.g. [[["is_company", "=", true]]] for search_read or [{"name": "Acme"}] for create.';
	END IF;
	IF jsonb_typeof(kwargs) <> 'object' THEN
		RAISE EXCEPTION 'kwargs must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'execute_kw passes kwargs as the method''s keyword arguments, e.g. {"fields": ["name"], "limit": 100}.';
	END IF;
	RETURN jsonb_build_object(
		'jsonrpc', '2.0',
		'method', 'call',
		'id', request_id,
		'params', jsonb_build_object(
			'service', 'object',
			'method', 'execute_kw',
			'args', jsonb_build_array(db, uid, api_key, model, method, args, kwargs)));
END
$$;
COMMENT ON FUNCTION integration.odoo_execute_kw_request(text, integer, text, text, text, jsonb, jsonb, bigint) IS
	'The JSON-RPC 2.0 body to POST to Odoo''s /jsonrpc that calls object.execute_kw(db, uid, api_key, model, method, args, kwargs); raises 22004 or 22023 for a missing or malformed argument, never echoing the key.';

-- Which failures of an Odoo call are worth another attempt, from error.data.name (the
-- exception's module and class, odoo/http.py serialize_exception) and error.code.  The
-- table is in docs/connectors-payments.md; a class that is not listed is a bug or a
-- business rule on the server, which the same request would hit again.
CREATE FUNCTION integration._odoo_error_class(name text, code text, message text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN n IN ('odoo.exceptions.AccessError', 'odoo.exceptions.AccessDenied') THEN 'access'
		WHEN n = 'odoo.exceptions.ValidationError' THEN 'validation'
		WHEN n IN ('odoo.exceptions.UserError', 'odoo.exceptions.Warning',
				   'odoo.exceptions.RedirectWarning', 'odoo.exceptions.except_orm') THEN 'user'
		WHEN n = 'odoo.exceptions.MissingError' THEN 'missing'
		WHEN n = 'odoo.exceptions.ConcurrencyError'
			 OR n ~ '^psycopg2?\.(errors|extensions)\.(SerializationFailure|TransactionRollbackError|DeadlockDetected|LockNotAvailable)$'
			 OR message ~* '(could not serialize access|concurrent update|deadlock detected)' THEN 'concurrency'
		WHEN n ~ '^psycopg2?\.((errors|extensions)\.)?(OperationalError|InterfaceError|QueryCanceled|AdminShutdown|CannotConnectNow|TooManyConnections)$'
			 OR n ~ '^werkzeug\.exceptions\.(InternalServerError|BadGateway|ServiceUnavailable|GatewayTimeout|TooManyRequests)$'
			 THEN 'unavailable'
		WHEN n = 'odoo.http.SessionExpiredException' OR code = '100' THEN 'session'
		WHEN n = 'werkzeug.exceptions.NotFound' OR code = '404' THEN 'not_found'
		WHEN n ~ '^werkzeug\.exceptions\.(Unauthorized|Forbidden)$' THEN 'access'
		WHEN n LIKE 'werkzeug.exceptions.%' THEN 'request'
		WHEN n IS NOT NULL THEN 'server_error'
		ELSE 'unknown'
	END
	  FROM (SELECT regexp_replace(name, '^openerp\.', 'odoo.') AS n) AS legacy
$$;
COMMENT ON FUNCTION integration._odoo_error_class(text, text, text) IS
	'The class of an Odoo JSON-RPC error from its error.data.name, error.code and message (internal, for odoo_classify_response()).';

CREATE FUNCTION integration.odoo_classify_response(body jsonb, OUT outcome text, OUT result jsonb,
												   OUT error_class text, OUT message text)
	LANGUAGE plpgsql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	err jsonb;
BEGIN
	IF jsonb_typeof(body -> 'error') = 'object' THEN
		NULL;	-- an error, classified below
	ELSIF jsonb_typeof(body) = 'object' AND body ? 'result' THEN
		outcome := 'succeeded';
		result := body -> 'result';
		RETURN;
	ELSE
		outcome := 'permanent';
		error_class := 'protocol';
		message := 'the response is not a JSON-RPC 2.0 response object';
		RETURN;
	END IF;
	err := body -> 'error';
	message := coalesce(err #>> '{data,message}', err ->> 'message');
	error_class := integration._odoo_error_class(err #>> '{data,name}', err ->> 'code', message);
	outcome := CASE WHEN error_class IN ('concurrency', 'unavailable') THEN 'retriable' ELSE 'permanent' END;
END
$$;
COMMENT ON FUNCTION integration.odoo_classify_response(jsonb) IS
	'An Odoo JSON-RPC response as outcome succeeded (result set), retriable (concurrency, unavailable) or permanent (access, validation, user, missing, session, not_found, request, server_error, unknown, protocol), with the error''s class and message.';

REVOKE ALL ON FUNCTION integration.adyen_verify_item(text, jsonb),
	integration.adyen_verify_notification(text, jsonb), integration.adyen_signing_string(jsonb),
	integration.adyen_hmac_signature(text, jsonb), integration.adyen_sign_item(text, jsonb),
	integration.adyen_sign_notification(text, jsonb), integration.adyen_acknowledgement(),
	integration.stripe_form_encode(jsonb),
	integration.odoo_execute_kw_request(text, integer, text, text, text, jsonb, jsonb, bigint),
	integration._odoo_error_class(text, text, text), integration.odoo_classify_response(jsonb)
	FROM PUBLIC;
