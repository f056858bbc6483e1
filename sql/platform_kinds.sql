------------------------------------------------------------------------------------------
-- The platform kinds shipped with the extension (appended after connectors.sql by the
-- Makefile; docs/connector-kinds.md): shopify, woocommerce, stripe, hubspot and adyen.
--
-- Each is an ordinary kind whose adapters are SQL and PL/pgSQL, the same contract a
-- user's kind is held to (register_connector_kind()).  Inbound: the platform's own
-- signature scheme, its topic as the event name, and its idea of a delivery's identity
-- as the dedupe key.  Outbound: the operations the e-commerce, payment and CRM issues
-- name, built as the platform's API expects them, and its error envelope read into
-- succeeded, retry (with the platform's delay) or a permanent failure.  Wire facts are
-- in ../shared/reference/connector-wire-details.md, sections 1 to 5.
------------------------------------------------------------------------------------------

-- An object id of a path segment: refused rather than spliced into a URL.
CREATE FUNCTION integration._path_id(payload jsonb, key text, operation text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v text := payload ->> key;
BEGIN
	IF v IS NULL OR v !~ '^[A-Za-z0-9_-]{1,255}$' THEN
		RAISE EXCEPTION 'operation % needs "%" in its payload', operation, key
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('"%s" is %s.', key,
								  CASE WHEN v IS NULL THEN 'missing' ELSE 'not an id of letters, digits, _ and -' END);
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION integration._path_id(jsonb, text, text) IS
	'The id under key in an operation''s payload, for a URL path; raises invalid_parameter_value when it is missing or not letters, digits, _ and - (internal).';

-- The operations a kind knows, for the error of an unknown one.
CREATE FUNCTION integration._unknown_operation(kind text, operation text, known text[]) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'unknown % operation "%"', kind, operation
		USING ERRCODE = 'invalid_parameter_value',
			  HINT = format('The %s kind''s operations: %s.', kind, array_to_string(known, ', '));
END
$$;
COMMENT ON FUNCTION integration._unknown_operation(text, text, text[]) IS
	'Raises invalid_parameter_value naming the operations a kind knows (internal).';

-- The common judgement of a JSON API's response; each kind adds its own error text and
-- retry hints.  2xx succeeded; 408, 409, 425, 429 and 5xx retry (Retry-After honoured);
-- anything else, a 401, a 404 or a 422, failed for good.
CREATE FUNCTION integration._http_outcome(status integer, headers jsonb, result jsonb, error text)
	RETURNS integration.connector_outcome
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN status BETWEEN 200 AND 299
			THEN ('succeeded', NULL, result, NULL)::integration.connector_outcome
		WHEN status IN (408, 409, 425, 429) OR status >= 500 OR status = 0
			THEN ('retry', integration.retry_after(integration.header(headers, 'Retry-After')),
				  result, error)::integration.connector_outcome
		ELSE ('failed', NULL, result, error)::integration.connector_outcome
	END
$$;
COMMENT ON FUNCTION integration._http_outcome(integer, jsonb, jsonb, text) IS
	'succeeded for 2xx; retry for 408, 409, 425, 429 and 5xx with the Retry-After delay; failed otherwise (internal).';

CREATE FUNCTION integration._percent_decode(v text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(convert_from(string_agg(CASE WHEN m[1] IS NOT NULL THEN decode(substr(m[1], 2), 'hex')
												 ELSE convert_to(m[2], 'UTF8') END, ''::bytea ORDER BY n), 'UTF8'), '')
	  FROM regexp_matches(replace(v, '+', ' '), '(%[0-9A-Fa-f]{2})|([^%]+|%)', 'g') WITH ORDINALITY AS t(m, n)
$$;
COMMENT ON FUNCTION integration._percent_decode(text) IS
	'A URL component percent-decoded as UTF-8, "+" read as a space (internal).';

-- The query parameters of a URL as a JSON object of strings, percent-decoded ("+" is a
-- space); a name given twice keeps its last value.  For the next-page links of
-- paginated APIs, whose parameters must be sent back as they are.
CREATE FUNCTION integration._query_params(url text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(jsonb_object_agg(integration._percent_decode(split_part(kv, '=', 1)),
									 integration._percent_decode(substr(kv, length(split_part(kv, '=', 1)) + 2))
									 ORDER BY n), '{}')
	  FROM regexp_split_to_table(substring(url FROM '\?([^#]*)'), '&') WITH ORDINALITY AS p(kv, n)
	 WHERE kv <> ''
$$;
COMMENT ON FUNCTION integration._query_params(text) IS
	'The query parameters of a URL as a JSON object of strings, percent-decoded (internal).';

------------------------------------------------------------------------------------------
-- shopify: a Shopify-compatible store (Admin REST API).  base_url is the store's origin,
-- e.g. https://shop1.myshopify.com; settings.api_version (default 2025-01).
------------------------------------------------------------------------------------------

-- One event per delivery.  The dedupe key is X-Shopify-Event-Id when present (one per
-- event, the same in every subscription's delivery of it), else X-Shopify-Webhook-Id
-- (one per delivery, kept across its retries); the Events deliveries' lower-case
-- headers are read too.  The topic "orders/create" becomes shopify.orders.create.
CREATE FUNCTION integration.shopify_normalise(connector integration.connector_context,
											  headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(integration.header(headers, 'X-Shopify-Event-Id'),
					integration.header(headers, 'shopify-event-id'),
					integration.header(headers, 'X-Shopify-Webhook-Id')),
		   coalesce(integration.header(headers, 'X-Shopify-Topic'),
					integration.header(headers, 'shopify-topic')),
		   coalesce(p ->> 'id', p ->> 'admin_graphql_api_id'),
		   p
	  FROM (SELECT body::jsonb AS p OFFSET 0) AS b
$$;
COMMENT ON FUNCTION integration.shopify_normalise(integration.connector_context, jsonb, text) IS
	'The shopify kind''s normaliser: one event per delivery, id X-Shopify-Event-Id (else X-Shopify-Webhook-Id), topic X-Shopify-Topic, object the payload''s id.';

-- Operations:
--   test                        GET  shop.json
--   product.create              POST products.json                     {"product": payload}
--   product.update              PUT  products/{id}.json                {"product": payload}
--   variant.update              PUT  variants/{id}.json                {"variant": payload} (price)
--   inventory_level.set         POST inventory_levels/set.json         payload: inventory_item_id, location_id, available
--   order.close, order.open     POST orders/{id}/close.json, open.json
--   order.cancel                POST orders/{id}/cancel.json           payload: reason, email, ...
--   fulfillment.create          POST fulfillments.json                 {"fulfillment": payload}
--   pull                        GET  {stream}.json                     a sync run's page:
--       the first page limit=250, order=updated_at asc, updated_at_min=since (orders:
--       status=any, or only open ones come); the next ones only the page_info and limit
--       of the Link rel="next" URL, as Shopify requires, sent back as they came.
CREATE FUNCTION integration.shopify_build_request(connector integration.connector_context,
												  operation text, payload jsonb,
												  idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	api text := '/admin/api/' || coalesce((connector).settings ->> 'api_version', '2025-01');
	hdrs constant jsonb := '{"Accept": "application/json", "Content-Type": "application/json"}';
	p jsonb := coalesce(payload, '{}');
BEGIN
	IF api !~ '^/admin/api/([0-9]{4}-[0-9]{2}|unstable)$' THEN
		RAISE EXCEPTION 'invalid Shopify api_version "%"', (connector).settings ->> 'api_version'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A Shopify API version looks like 2025-01.';
	END IF;
	CASE operation
	WHEN 'test' THEN
		RETURN ('GET', api || '/shop.json', NULL, hdrs - 'Content-Type', NULL)::integration.connector_request;
	WHEN 'product.create' THEN
		RETURN ('POST', api || '/products.json', NULL, hdrs,
				jsonb_build_object('product', p)::text)::integration.connector_request;
	WHEN 'product.update' THEN
		RETURN ('PUT', api || '/products/' || integration._path_id(p, 'id', operation) || '.json',
				NULL, hdrs, jsonb_build_object('product', p)::text)::integration.connector_request;
	WHEN 'variant.update' THEN
		RETURN ('PUT', api || '/variants/' || integration._path_id(p, 'id', operation) || '.json',
				NULL, hdrs, jsonb_build_object('variant', p)::text)::integration.connector_request;
	WHEN 'inventory_level.set' THEN
		PERFORM integration._path_id(p, 'inventory_item_id', operation),
				integration._path_id(p, 'location_id', operation);
		IF jsonb_typeof(p -> 'available') IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'operation inventory_level.set needs "available", a number'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		RETURN ('POST', api || '/inventory_levels/set.json', NULL, hdrs, p::text)::integration.connector_request;
	WHEN 'order.close', 'order.open', 'order.cancel' THEN
		RETURN ('POST', api || '/orders/' || integration._path_id(p, 'id', operation) || '/'
				|| split_part(operation, '.', 2) || '.json', NULL, hdrs, (p - 'id')::text)::integration.connector_request;
	WHEN 'fulfillment.create' THEN
		RETURN ('POST', api || '/fulfillments.json', NULL, hdrs,
				jsonb_build_object('fulfillment', p)::text)::integration.connector_request;
	WHEN 'pull' THEN
		IF (p ->> 'stream') IS NULL OR NOT (p ->> 'stream') = ANY ('{orders,customers,products}'::text[]) THEN
			RAISE EXCEPTION 'unknown shopify stream "%"', p ->> 'stream'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'The shopify kind''s streams: orders, customers, products.';
		END IF;
		RETURN ('GET', api || '/' || (p ->> 'stream') || '.json',
				CASE WHEN jsonb_typeof(p -> 'page') = 'object'
					 THEN jsonb_build_object('limit', coalesce(p #>> '{page,limit}', '250'),
											 'page_info', p #>> '{page,page_info}')
					 ELSE jsonb_build_object('limit', '250', 'order', 'updated_at asc')
						  || CASE WHEN p ->> 'since' IS NOT NULL
								  THEN jsonb_build_object('updated_at_min', p ->> 'since') ELSE '{}'::jsonb END
						  || CASE WHEN p ->> 'stream' = 'orders' THEN '{"status": "any"}'::jsonb ELSE '{}'::jsonb END
				END,
				hdrs - 'Content-Type', NULL)::integration.connector_request;
	ELSE
		PERFORM integration._unknown_operation('shopify', operation,
			'{test,product.create,product.update,variant.update,inventory_level.set,order.close,order.open,order.cancel,fulfillment.create,pull}');
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.shopify_build_request(integration.connector_context, text, jsonb, text) IS
	'The shopify kind''s request builder: test, product.create, product.update, variant.update, inventory_level.set, order.close, order.open, order.cancel, fulfillment.create, and pull (a sync run''s page of orders, customers or products) against /admin/api/<settings.api_version>.';

-- Shopify's errors: {"errors": "Not Found"}, {"errors": {"title": ["can't be blank"]}}
-- or {"errors": ["..."]}; a 429 carries Retry-After in seconds with a fraction ("2.0").
CREATE FUNCTION integration.shopify_interpret_response(connector integration.connector_context,
													   operation text, status integer,
													   headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	e jsonb := j -> 'errors';
	msg text;
BEGIN
	msg := CASE jsonb_typeof(e)
		WHEN 'string' THEN e #>> '{}'
		WHEN 'array' THEN (SELECT string_agg(x, '; ') FROM jsonb_array_elements_text(e) AS x)
		WHEN 'object' THEN (SELECT string_agg(k || ' ' || CASE jsonb_typeof(v)
											  WHEN 'array' THEN (SELECT string_agg(y, ', ') FROM jsonb_array_elements_text(v) AS y)
											  ELSE v #>> '{}' END, '; ' ORDER BY k)
							  FROM jsonb_each(e) AS x(k, v))
		END;
	IF operation = 'pull' AND status BETWEEN 200 AND 299 THEN
		RETURN ('succeeded', NULL, integration._shopify_page(headers, j), NULL)::integration.connector_outcome;
	END IF;
	RETURN integration._http_outcome(status, headers,
		coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END),
		format('HTTP %s', status) || coalesce(': ' || msg, ''));
END
$$;
COMMENT ON FUNCTION integration.shopify_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The shopify kind''s response interpreter: 2xx succeeded (a pull: the page of records); 429 (Retry-After) and 5xx retry; 401, 403, 404, 422 failed with Shopify''s errors as the message.';

-- A page of a pull: the list's records, next_page from the Link header's rel="next"
-- URL, and a wait while the call-limit bucket (X-Shopify-Shop-Api-Call-Limit:
-- used/size, leaking 2 calls a second) has fewer than 4 calls of room, so that a run
-- never empties it for the store's other callers.  Records carry their own topic, the
-- webhook topic of a change of them: orders/updated, customers/update, products/update.
CREATE FUNCTION integration._shopify_page(headers jsonb, j jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	stream text;
	next_url text := substring(integration.header(headers, 'Link') FROM '<([^<>]*)>; *rel="next"');
	used text[] := regexp_match(integration.header(headers, 'X-Shopify-Shop-Api-Call-Limit'),
								'^ *([0-9]+) */ *([0-9]+) *$');
	room integer := used[2]::integer - used[1]::integer;
	q jsonb;
BEGIN
	SELECT k INTO stream FROM jsonb_object_keys(j) AS k
	 WHERE k IN ('orders', 'customers', 'products') AND jsonb_typeof(j -> k) = 'array';
	IF stream IS NULL THEN
		RAISE EXCEPTION 'a Shopify list response has an array of orders, customers or products'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF next_url IS NOT NULL THEN
		q := integration._query_params(next_url);
	END IF;
	RETURN jsonb_build_object(
		'records', coalesce((SELECT jsonb_agg(jsonb_build_object(
									'id', r ->> 'id', 'updated_at', r ->> 'updated_at',
									'topic', stream || CASE stream WHEN 'orders' THEN '/updated' ELSE '/update' END,
									'payload', r) ORDER BY n)
							   FROM jsonb_array_elements(j -> stream) WITH ORDINALITY AS x(r, n)), '[]'),
		'next_page', CASE WHEN q ? 'page_info'
						  THEN jsonb_strip_nulls(jsonb_build_object('page_info', q ->> 'page_info',
																	'limit', q ->> 'limit')) END,
		'wait', CASE WHEN room < 4 THEN (4 - room) * 0.5 END);
END
$$;
COMMENT ON FUNCTION integration._shopify_page(jsonb, jsonb) IS
	'A Shopify list response as a pull page: records (id, updated_at, topic, payload), next_page (page_info and limit of the Link rel="next" URL), and wait (seconds) while the call-limit bucket has fewer than 4 calls of room (internal).';

-- The record a webhook is about: orders/*, customers/* and products/* payloads are the
-- records themselves, with id and updated_at.  A delete carries only the id: no record.
CREATE FUNCTION integration.shopify_record(connector integration.connector_context,
										   topic text, payload jsonb)
	RETURNS integration.external_record
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN split_part(topic, '/', 1) IN ('orders', 'customers', 'products')
					 AND payload ->> 'id' IS NOT NULL AND payload ->> 'updated_at' IS NOT NULL
				THEN ROW(split_part(topic, '/', 1), payload ->> 'id',
						 (payload ->> 'updated_at')::timestamptz, payload)::integration.external_record
		   END
$$;
COMMENT ON FUNCTION integration.shopify_record(integration.connector_context, text, jsonb) IS
	'The shopify kind''s record adapter: a webhook of topic orders/*, customers/* or products/* whose payload has id and updated_at is about that record of that stream.';

------------------------------------------------------------------------------------------
-- woocommerce: a WooCommerce store (REST API v3).  base_url is the site's origin;
-- credentials consumer_key and consumer_secret, sent as Basic over HTTPS.
------------------------------------------------------------------------------------------

-- WooCommerce signs every delivery except the ping it sends when a webhook is created:
-- a form body webhook_id=<id> without any X-WC-Webhook-* header.  That request is
-- accepted (the store disables a webhook whose ping fails) and stores nothing; a
-- request with a topic or a delivery id must carry a valid signature.
CREATE FUNCTION integration._woocommerce_is_ping(headers jsonb, body text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT body ~ '^webhook_id=[0-9]{1,19}$'
	   AND NOT EXISTS (SELECT FROM jsonb_object_keys(headers) AS k WHERE lower(k) LIKE 'x-wc-webhook-%')
$$;
COMMENT ON FUNCTION integration._woocommerce_is_ping(jsonb, text) IS
	'Whether a request is WooCommerce''s unsigned ping: the form body webhook_id=<id> and no X-WC-Webhook-* header (internal).';

CREATE FUNCTION integration.woocommerce_verify(connector integration.connector_context,
											   secret text, headers jsonb, body text,
											   tolerance interval)
	RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN integration._woocommerce_is_ping(headers, body) THEN true
		ELSE integration.verify('woocommerce', secret, headers, body, tolerance)
	END
$$;
COMMENT ON FUNCTION integration.woocommerce_verify(integration.connector_context, text, jsonb, text, interval) IS
	'The woocommerce kind''s verifier: X-WC-Webhook-Signature over the body, or WooCommerce''s unsigned ping (webhook_id=<id>, no X-WC-Webhook-* header), which stores nothing.';

-- One event per delivery.  X-WC-Webhook-Delivery-ID is a hash of the webhook and the
-- time of sending, a new one for every send of the same event, so it cannot
-- deduplicate; the key is the webhook, the topic, the resource's id and its
-- date_modified_gmt, and where the payload has no such pair (a deleted resource's
-- {"id"}, an action.* topic) the webhook and a hash of the body.
CREATE FUNCTION integration.woocommerce_normalise(connector integration.connector_context,
												  headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT concat_ws(':', integration.header(headers, 'X-WC-Webhook-ID'),
					 CASE WHEN p ->> 'id' IS NOT NULL AND p ->> 'date_modified_gmt' IS NOT NULL
						  THEN concat_ws(':', t, p ->> 'id', p ->> 'date_modified_gmt')
						  ELSE encode(sha256(convert_to(body, 'UTF8')), 'hex') END),
		   t,
		   p ->> 'id',
		   p
	  FROM (SELECT body::jsonb AS p, integration.header(headers, 'X-WC-Webhook-Topic') AS t
			 WHERE NOT integration._woocommerce_is_ping(headers, body) OFFSET 0) AS b
$$;
COMMENT ON FUNCTION integration.woocommerce_normalise(integration.connector_context, jsonb, text) IS
	'The woocommerce kind''s normaliser: nothing for the ping; else one event, topic X-WC-Webhook-Topic (order.created), object the payload''s id, id the webhook with topic, id and date_modified_gmt (or a hash of the body).';

-- Operations (wc/v3):
--   test                 GET  products?per_page=1
--   product.create       POST products                              payload as the product
--   product.update       PUT  products/{id}                         e.g. regular_price, stock_quantity
--   variation.update     PUT  products/{product_id}/variations/{id}
--   order.update         PUT  orders/{id}                           e.g. status
--   order_note.create    POST orders/{id}/notes                     note, customer_note
CREATE FUNCTION integration.woocommerce_build_request(connector integration.connector_context,
													  operation text, payload jsonb,
													  idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	api constant text := '/wp-json/wc/v3';
	hdrs constant jsonb := '{"Accept": "application/json", "Content-Type": "application/json"}';
	p jsonb := coalesce(payload, '{}');
BEGIN
	CASE operation
	WHEN 'test' THEN
		RETURN ('GET', api || '/products', '{"per_page": "1"}', hdrs - 'Content-Type', NULL)::integration.connector_request;
	WHEN 'product.create' THEN
		RETURN ('POST', api || '/products', NULL, hdrs, p::text)::integration.connector_request;
	WHEN 'product.update' THEN
		RETURN ('PUT', api || '/products/' || integration._path_id(p, 'id', operation), NULL, hdrs,
				(p - 'id')::text)::integration.connector_request;
	WHEN 'variation.update' THEN
		RETURN ('PUT', api || '/products/' || integration._path_id(p, 'product_id', operation)
				|| '/variations/' || integration._path_id(p, 'id', operation), NULL, hdrs,
				(p - 'id' - 'product_id')::text)::integration.connector_request;
	WHEN 'order.update' THEN
		RETURN ('PUT', api || '/orders/' || integration._path_id(p, 'id', operation), NULL, hdrs,
				(p - 'id')::text)::integration.connector_request;
	WHEN 'order_note.create' THEN
		RETURN ('POST', api || '/orders/' || integration._path_id(p, 'order_id', operation) || '/notes',
				NULL, hdrs, (p - 'order_id')::text)::integration.connector_request;
	ELSE
		PERFORM integration._unknown_operation('woocommerce', operation,
			'{test,product.create,product.update,variation.update,order.update,order_note.create}');
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.woocommerce_build_request(integration.connector_context, text, jsonb, text) IS
	'The woocommerce kind''s request builder: test, product.create, product.update, variation.update, order.update, order_note.create against /wp-json/wc/v3.';

-- WooCommerce's errors: {"code": "woocommerce_rest_product_invalid_id", "message": ...,
-- "data": {"status": 404}}.
CREATE FUNCTION integration.woocommerce_interpret_response(connector integration.connector_context,
														   operation text, status integer,
														   headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT integration._http_outcome(status, headers,
			   coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END),
			   format('HTTP %s', status)
			   || coalesce(': ' || concat_ws(' ', j ->> 'message', '(' || (j ->> 'code') || ')'), ''))
	  FROM (SELECT integration.try_jsonb(body) AS j OFFSET 0) AS b
$$;
COMMENT ON FUNCTION integration.woocommerce_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The woocommerce kind''s response interpreter: 2xx succeeded; 429 and 5xx retry; 400, 401, 404 failed with WooCommerce''s message and code.';

------------------------------------------------------------------------------------------
-- stripe: Stripe-compatible payments.  base_url https://api.stripe.com; credentials
-- secret_key, sent as Bearer; settings.api_version, when set, as Stripe-Version.
------------------------------------------------------------------------------------------

-- One event per delivery: Stripe's event id, its type (payment_intent.succeeded), the
-- object it is about.  A v2 thin event ("object": "v2.core.event") carries no data and
-- is refused, as Stripe's libraries refuse it in constructEvent.
CREATE FUNCTION integration.stripe_normalise(connector integration.connector_context,
											 headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p jsonb := body::jsonb;
BEGIN
	IF p ->> 'object' IS DISTINCT FROM 'event' THEN
		RAISE EXCEPTION 'not a Stripe event: "object" is %', coalesce(p ->> 'object', 'missing')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Thin (v2) events are not received: point a snapshot event destination at the connector.';
	END IF;
	RETURN QUERY SELECT p ->> 'id', p ->> 'type', p #>> '{data,object,id}', p;
END
$$;
COMMENT ON FUNCTION integration.stripe_normalise(integration.connector_context, jsonb, text) IS
	'The stripe kind''s normaliser: one event per delivery, id the event''s id, topic its type, object data.object.id; thin (v2) events refused.';

-- Operations, form-encoded as Stripe encodes them (stripe_form_encode()); every POST
-- carries the call's Idempotency-Key, the same on every retry, so a retried charge is
-- answered with the first one's result and never charges twice: the kind's
-- idempotency_header, which the caller sends (src/connector_request.c).
--   test                      GET  /v1/balance
--   payment_intent.create     POST /v1/payment_intents
--   payment_intent.capture    POST /v1/payment_intents/{id}/capture
--   payment_intent.cancel     POST /v1/payment_intents/{id}/cancel
--   refund.create             POST /v1/refunds
--   customer.create           POST /v1/customers
--   customer.update           POST /v1/customers/{id}
CREATE FUNCTION integration.stripe_build_request(connector integration.connector_context,
												 operation text, payload jsonb,
												 idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p jsonb := coalesce(payload, '{}');
	hdrs jsonb := jsonb_strip_nulls(jsonb_build_object(
		'Accept', 'application/json',
		'Stripe-Version', (connector).settings ->> 'api_version'));
	path text;
BEGIN
	IF jsonb_typeof(p) <> 'object' THEN
		RAISE EXCEPTION 'a Stripe operation''s payload must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	CASE operation
	WHEN 'test' THEN
		RETURN ('GET', '/v1/balance', NULL, hdrs, NULL)::integration.connector_request;
	WHEN 'payment_intent.create' THEN path := '/v1/payment_intents';
	WHEN 'payment_intent.capture', 'payment_intent.cancel' THEN
		path := '/v1/payment_intents/' || integration._path_id(p, 'id', operation) || '/'
				|| split_part(operation, '.', 2);
		p := p - 'id';
	WHEN 'refund.create' THEN path := '/v1/refunds';
	WHEN 'customer.create' THEN path := '/v1/customers';
	WHEN 'customer.update' THEN
		path := '/v1/customers/' || integration._path_id(p, 'id', operation);
		p := p - 'id';
	ELSE
		PERFORM integration._unknown_operation('stripe', operation,
			'{test,payment_intent.create,payment_intent.capture,payment_intent.cancel,refund.create,customer.create,customer.update}');
	END CASE;
	RETURN ('POST', path, NULL, hdrs || '{"Content-Type": "application/x-www-form-urlencoded"}',
			integration.stripe_form_encode(p))::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration.stripe_build_request(integration.connector_context, text, jsonb, text) IS
	'The stripe kind''s request builder: test, payment_intent.create, payment_intent.capture, payment_intent.cancel, refund.create, customer.create, customer.update; form-encoded bodies (the call''s key goes in the kind''s idempotency_header, Idempotency-Key, on every POST).';

-- Stripe-Should-Retry, when present, decides over the status code: a card declined
-- (402, card_error) is the call's result, never retried; an idempotency_error (the key
-- reused with other parameters) is permanent; 409 (the same key in flight), 429 and
-- 5xx are retried.
CREATE FUNCTION integration.stripe_interpret_response(connector integration.connector_context,
													  operation text, status integer,
													  headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	e jsonb := j -> 'error';
	should text := lower(integration.header(headers, 'Stripe-Should-Retry'));
	err text;
	o integration.connector_outcome;
BEGIN
	err := format('HTTP %s', status);
	IF jsonb_typeof(e) = 'object' THEN
		err := err || ': ' || concat_ws(' ', e ->> 'type',
			'(' || nullif(concat_ws(', ', e ->> 'code', e ->> 'decline_code'), '') || ')',
			e ->> 'message');
	END IF;
	o := integration._http_outcome(status, headers, coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END), err);
	IF o.outcome <> 'succeeded' AND should = 'true' THEN
		o.outcome := 'retry';
	ELSIF o.outcome <> 'succeeded' AND should = 'false' THEN
		o.outcome := 'failed';
		o.retry_after := NULL;
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION integration.stripe_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The stripe kind''s response interpreter: 2xx succeeded; Stripe-Should-Retry decides when present; else 409, 429 and 5xx retry and the rest (card declines included) failed with the error''s type, code, decline code and message.';

------------------------------------------------------------------------------------------
-- hubspot: a HubSpot-style CRM (CRM v3).  base_url https://api.hubapi.com; credentials
-- access_token (a private app's), sent as Bearer.  Inbound: v3 signatures, which cover
-- the method and URI: the HTTP front passes them as the ":method" and ":uri" headers.
------------------------------------------------------------------------------------------

-- A delivery is a JSON array of up to 100 events; one event each, id eventId, topic the
-- subscriptionType (contact.propertyChange), object the objectId.
CREATE FUNCTION integration.hubspot_normalise(connector integration.connector_context,
											  headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p jsonb := body::jsonb;
BEGIN
	IF jsonb_typeof(p) <> 'array' THEN
		RAISE EXCEPTION 'a HubSpot webhook body is a JSON array of events'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
		SELECT e ->> 'eventId', e ->> 'subscriptionType', e ->> 'objectId', e
		  FROM jsonb_array_elements(p) AS e;
END
$$;
COMMENT ON FUNCTION integration.hubspot_normalise(integration.connector_context, jsonb, text) IS
	'The hubspot kind''s normaliser: one event per element of the delivered array, id eventId, topic subscriptionType, object objectId.';

-- Operations:
--   test                    GET  /crm/v3/objects/contacts?limit=1
--   contacts.batch_upsert   POST /crm/v3/objects/contacts/batch/upsert
--       payload {"inputs": [{"email": ..., "properties": {...}}, ...]}, 1 to 100 inputs,
--       each upserted by email (idProperty email)
CREATE FUNCTION integration.hubspot_build_request(connector integration.connector_context,
												  operation text, payload jsonb,
												  idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	hdrs constant jsonb := '{"Accept": "application/json", "Content-Type": "application/json"}';
	inputs jsonb := payload -> 'inputs';
	n integer;
BEGIN
	CASE operation
	WHEN 'test' THEN
		RETURN ('GET', '/crm/v3/objects/contacts', '{"limit": "1"}', hdrs - 'Content-Type', NULL)::integration.connector_request;
	WHEN 'contacts.batch_upsert' THEN
		n := CASE WHEN jsonb_typeof(inputs) = 'array' THEN jsonb_array_length(inputs) END;
		IF n IS NULL OR n NOT BETWEEN 1 AND 100 THEN
			RAISE EXCEPTION 'contacts.batch_upsert takes 1 to 100 inputs'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('The payload has %s.', coalesce(n || ' inputs', 'no "inputs" array')),
					  HINT = 'Split larger batches into several calls: HubSpot refuses more than 100 in one request.';
		END IF;
		IF EXISTS (SELECT FROM jsonb_array_elements(inputs) AS i
					WHERE jsonb_typeof(i -> 'email') IS DISTINCT FROM 'string') THEN
			RAISE EXCEPTION 'every input of contacts.batch_upsert needs "email", a string'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		RETURN ('POST', '/crm/v3/objects/contacts/batch/upsert', NULL, hdrs,
				jsonb_build_object('inputs',
					(SELECT jsonb_agg(jsonb_build_object(
								'idProperty', 'email', 'id', i ->> 'email',
								'properties', coalesce(i -> 'properties', '{}') || jsonb_build_object('email', i ->> 'email'))
							ORDER BY o)
					   FROM jsonb_array_elements(inputs) WITH ORDINALITY AS x(i, o)))::text)::integration.connector_request;
	ELSE
		PERFORM integration._unknown_operation('hubspot', operation, '{test,contacts.batch_upsert}');
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.hubspot_build_request(integration.connector_context, text, jsonb, text) IS
	'The hubspot kind''s request builder: test, contacts.batch_upsert (1 to 100 contacts upserted by email).';

-- HubSpot's errors: {"status": "error", "message": ..., "category": "VALIDATION_ERROR",
-- "correlationId": ...}.  A 429 names the limit it hit in policyName (SECONDLY,
-- TEN_SECONDLY_ROLLING, DAILY) and carries the X-HubSpot-RateLimit-* headers: the
-- secondly limit frees up within a second (Secondly-Remaining 0 while the window still
-- has room), the rolling window within its Interval-Milliseconds (10 s).  Retry-After,
-- when present, wins; without any of these the wait is the ten-second window.
CREATE FUNCTION integration.hubspot_interpret_response(connector integration.connector_context,
													   operation text, status integer,
													   headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	window_ms text := integration.header(headers, 'X-HubSpot-RateLimit-Interval-Milliseconds');
	o integration.connector_outcome;
BEGIN
	o := integration._http_outcome(status, headers, coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END),
		format('HTTP %s', status)
		|| coalesce(': ' || concat_ws(' ', j ->> 'category', j ->> 'message'), ''));
	IF o.outcome = 'retry' AND status = 429 AND o.retry_after IS NULL THEN
		o.retry_after := CASE
			WHEN j ->> 'policyName' = 'SECONDLY'
				 OR (integration.header(headers, 'X-HubSpot-RateLimit-Secondly-Remaining') = '0'
					 AND integration.header(headers, 'X-HubSpot-RateLimit-Remaining') <> '0')
				THEN interval '1 second'
			WHEN window_ms ~ '^[0-9]{1,8}$' AND window_ms::integer > 0
				THEN make_interval(secs => window_ms::integer / 1000.0)
			ELSE interval '10 seconds'
		END;
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION integration.hubspot_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The hubspot kind''s response interpreter: 2xx (207 included) succeeded; 429 retried after Retry-After, else 1 s for the secondly limit, else the rolling window (X-HubSpot-RateLimit-Interval-Milliseconds, 10 s); 5xx retry; the rest failed with HubSpot''s category and message.';

------------------------------------------------------------------------------------------
-- adyen: Adyen-style payment notifications (inbound only).  The inbound secret is the
-- HMAC key in hex; every item's additionalData.hmacSignature is verified (verify()'s
-- adyen scheme).  The HTTP front answers an accepted request with
-- integration.adyen_acknowledgement(), "[accepted]", as Adyen expects.
------------------------------------------------------------------------------------------

-- One event per NotificationRequestItem.  Adyen's identity of a notification is its
-- pspReference and eventCode; success is part of the key because Adyen may send the
-- same pair again with the outcome changed, which must not be dropped as a duplicate.
CREATE FUNCTION integration.adyen_normalise(connector integration.connector_context,
											headers jsonb, body text)
	RETURNS SETOF integration.normalised_event
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p jsonb := body::jsonb;
BEGIN
	IF jsonb_typeof(p -> 'notificationItems') IS DISTINCT FROM 'array' THEN
		RAISE EXCEPTION 'an Adyen notification has a "notificationItems" array'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
		SELECT concat_ws(':', i ->> 'pspReference', i ->> 'eventCode', i ->> 'success'),
			   lower(i ->> 'eventCode'),
			   coalesce(i ->> 'originalReference', i ->> 'pspReference'),
			   i
		  FROM jsonb_array_elements(p -> 'notificationItems') AS x(w),
			   LATERAL (SELECT w -> 'NotificationRequestItem' AS i) AS y;
END
$$;
COMMENT ON FUNCTION integration.adyen_normalise(integration.connector_context, jsonb, text) IS
	'The adyen kind''s normaliser: one event per NotificationRequestItem, id pspReference:eventCode:success, topic the event code in lower case, object the original (else the PSP) reference.';

------------------------------------------------------------------------------------------
-- The catalogue rows.
------------------------------------------------------------------------------------------

-- Of these platforms, Stripe alone takes an idempotency key, in Idempotency-Key.
INSERT INTO integration.connector_kinds (name, description, auth, signature_scheme, verify_function,
										 normalise_function, build_request_function,
										 interpret_response_function, idempotency_header)
VALUES
	('shopify', 'A Shopify-compatible store: X-Shopify-Hmac-Sha256 webhooks in; Admin REST calls with X-Shopify-Access-Token out (settings.api_version, default 2025-01); pulls orders, customers and products.',
	 'header:X-Shopify-Access-Token(access_token)', 'shopify', NULL,
	 'integration.shopify_normalise(integration.connector_context, jsonb, text)',
	 'integration.shopify_build_request(integration.connector_context, text, jsonb, text)',
	 'integration.shopify_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	 NULL),
	('woocommerce', 'A WooCommerce store: X-WC-Webhook-Signature webhooks (and the unsigned ping) in; REST API v3 calls with the consumer key and secret as Basic out.',
	 'basic(consumer_key,consumer_secret)', 'adapter',
	 'integration.woocommerce_verify(integration.connector_context, text, jsonb, text, interval)',
	 'integration.woocommerce_normalise(integration.connector_context, jsonb, text)',
	 'integration.woocommerce_build_request(integration.connector_context, text, jsonb, text)',
	 'integration.woocommerce_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	 NULL),
	('stripe', 'Stripe-compatible payments: Stripe-Signature webhooks in; form-encoded API calls with the secret key as Bearer and a stable Idempotency-Key out.',
	 'bearer(secret_key)', 'stripe', NULL,
	 'integration.stripe_normalise(integration.connector_context, jsonb, text)',
	 'integration.stripe_build_request(integration.connector_context, text, jsonb, text)',
	 'integration.stripe_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	 'Idempotency-Key'),
	('hubspot', 'A HubSpot-style CRM: v3-signed webhooks in (":method" and ":uri" passed as headers); CRM v3 calls with a private app''s access token as Bearer out.',
	 'bearer(access_token)', 'hubspot', NULL,
	 'integration.hubspot_normalise(integration.connector_context, jsonb, text)',
	 'integration.hubspot_build_request(integration.connector_context, text, jsonb, text)',
	 'integration.hubspot_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	 NULL),
	('adyen', 'Adyen-style payment notifications in, each item''s HMAC signature verified; answer an accepted request with integration.adyen_acknowledgement().',
	 'none', 'adyen', NULL,
	 'integration.adyen_normalise(integration.connector_context, jsonb, text)',
	 NULL, NULL, NULL);

-- The kinds that pull, and tell which pulled record a webhook is about (sql/sync.sql).
UPDATE integration.connector_kinds
   SET pull_streams = '{orders,customers,products}',
	   record_function = 'integration.shopify_record(integration.connector_context, text, jsonb)'
 WHERE name = 'shopify';

-- pg_dump keeps the kinds users register; the shipped ones are the extension's.
SELECT pg_catalog.pg_extension_config_dump('integration.connector_kinds',
	'WHERE name NOT IN (''generic'', ''shopify'', ''woocommerce'', ''stripe'', ''hubspot'', ''adyen'')');

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA integration FROM PUBLIC;
