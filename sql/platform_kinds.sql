------------------------------------------------------------------------------------------
-- The platform kinds shipped with the extension (appended after connectors.sql by the
-- Makefile; docs/connector-kinds.md): shopify, woocommerce, stripe, hubspot, adyen and odoo.
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

-- Pull pages (../notes/sync-design.md, docs/connectors.md "Incremental pull"): the
-- operation pull takes {"stream", "since", "page"} and a succeeded outcome's result is
-- {"records": [{"id", "updated_at", "payload", "topic"?}], "next_page", "wait"?}.  A
-- response adapter is not told which request it judges, so every next_page below is
-- derived from the response alone (its records, headers, or what the platform echoes).

-- The stream a pull payload names, one of the kind's, or raise.
CREATE FUNCTION integration._pull_stream(kind text, payload jsonb, streams text[]) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	stream text := payload ->> 'stream';
BEGIN
	IF stream IS NULL OR NOT stream = ANY (streams) THEN
		RAISE EXCEPTION 'unknown % pull stream "%"', kind, coalesce(stream, '')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = format('The %s kind''s streams: %s.', kind, array_to_string(streams, ', '));
	END IF;
	RETURN stream;
END
$$;
COMMENT ON FUNCTION integration._pull_stream(text, jsonb, text[]) IS
	'The stream of a pull payload when it is one of streams; raises invalid_parameter_value naming them otherwise (internal).';

-- A record's updated_at as pages carry it: ISO 8601 in UTC with Z, whatever TimeZone is.
CREATE FUNCTION integration._utc_iso(t timestamptz) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$ SELECT (to_jsonb(t AT TIME ZONE 'UTC') #>> '{}') || 'Z' $$;
COMMENT ON FUNCTION integration._utc_iso(timestamptz) IS
	't as ISO 8601 in UTC with a Z, fractions of a second only when there are some (internal).';

-- The target of the Link header's entry whose rel includes rel (RFC 8288), e.g. next.
CREATE FUNCTION integration._link_url(headers jsonb, rel text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT m[1]
	  FROM regexp_matches(coalesce(integration.header(headers, 'Link'), ''), '<([^>]*)>([^<]*)', 'g') AS m
	 WHERE rel = ANY (string_to_array(lower(substring(m[2] FROM ';\s*rel\s*=\s*"?([^";,]+)')), ' '))
	 LIMIT 1
$$;
COMMENT ON FUNCTION integration._link_url(jsonb, text) IS
	'The URL of the Link header entry with that rel, or NULL (internal).';

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

-- A page of a pull: the list's objects as items (id and updated_at at their own keys),
-- next_page from the Link header's rel="next" URL, and a wait while the call-limit
-- bucket (X-Shopify-Shop-Api-Call-Limit: used/size, leaking 2 calls a second) has fewer
-- than 4 calls of room, so that a run never empties it for the store's other callers.
-- The items' topic is the webhook topic of a change of them: orders/updated,
-- customers/update, products/update.
CREATE FUNCTION integration._shopify_page(headers jsonb, j jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	stream text;
	next_url text := integration._link_url(headers, 'next');
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
	-- The list as it came, not a record built per order: a page of 250 orders is 170 kB
	-- of JSON, and copying it record by record took 17 ms a page (bench/run sync).
	RETURN jsonb_build_object(
		'items', j -> stream, 'item_id', 'id', 'item_updated_at', 'updated_at',
		'item_topic', stream || CASE stream WHEN 'orders' THEN '/updated' ELSE '/update' END,
		'next_page', CASE WHEN q ? 'page_info'
						  THEN jsonb_strip_nulls(jsonb_build_object('page_info', q ->> 'page_info',
																	'limit', q ->> 'limit')) END,
		'wait', CASE WHEN room < 4 THEN (4 - room) * 0.5 END);
END
$$;
COMMENT ON FUNCTION integration._shopify_page(jsonb, jsonb) IS
	'A Shopify list response as a pull page: its objects as items (item_id id, item_updated_at updated_at, item_topic), next_page (page_info and limit of the Link rel="next" URL), and wait (seconds) while the call-limit bucket has fewer than 4 calls of room (internal).';

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

-- The record a webhook is about (sync-design.md, record_function), so that a change
-- that comes both ways is handed on once: order.*, product.*, customer.* and coupon.* carry the REST representation
-- a pull reads (id, date_modified_gmt); a deleted one carries only {"id"}, and action.*
-- topics are about no record.
CREATE FUNCTION integration.woocommerce_record(connector integration.connector_context,
											   topic text, payload jsonb)
	RETURNS integration.external_record
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN split_part(topic, '.', 1) IN ('order', 'product', 'customer', 'coupon')
					 AND payload ->> 'id' IS NOT NULL AND payload ->> 'date_modified_gmt' IS NOT NULL
				THEN ROW(split_part(topic, '.', 1) || 's', payload ->> 'id',
						 ((payload ->> 'date_modified_gmt') || 'Z')::timestamptz, payload)::integration.external_record
		   END
$$;
COMMENT ON FUNCTION integration.woocommerce_record(integration.connector_context, text, jsonb) IS
	'The woocommerce kind''s record function: an order, product, customer or coupon webhook is that record (stream orders, products, customers, coupons) at its date_modified_gmt; deleted and action.* topics are no record.';

-- Pull: orders, products and coupons by date_modified_gmt, customers by id.
--
-- Orders, products and coupons are read oldest change first (orderby=modified&order=asc,
-- which WooCommerce makes "modified ID"), 100 a page, modified_after in GMT with
-- dates_are_gmt=true.  Not page=2, 3, ... of one listing: a record changed during the
-- run moves to its end, and every record behind it one place forward, so the record on
-- a page boundary would be passed over.  Each page is instead the first page after the
-- last one's newest second (modified_after is exclusive and whole seconds, so that
-- second is read again: repeats, which the sync gate drops).  A page that lies in one
-- second is followed by that second's own listing, page=2, 3, ... (modified_after and
-- modified_before around it, X-WP-TotalPages ending it), then by the seconds after it.
-- That listing is 99 a page: its page 2 then begins with the page before's last record
-- (a repeat), so it is never past the end, even for a second of exactly 100 records,
-- where a store may answer a page past the end with 400 (WordPress's posts controller
-- does: rest_post_invalid_page_number), and has a Link rel="prev" that names it.
-- page is {"after": <GMT second>} or {"second": <GMT second>, "page": N}; the Link
-- header, which repeats the request's query, tells the response adapter which it was.
-- X-WP-TotalPages of 1 ends the run.
--
-- A store whose modified_after and modified_before include their bound (WooCommerce's
-- do not: WP_Date_Query's after and before are exclusive) would give the same page back
-- for ever: after the newest second minus one is that second minus one again, and a
-- second's listing would take in its neighbours.  Such a store shows itself by a record
-- at the request's modified_after; the next page is then after the newest second itself,
-- and a second's listing is {"second", "page", "inclusive": true}: modified_after and
-- modified_before both that second, then after the second past it.
--
-- Customers are WordPress users: modified_after does not apply to them, nor orderby
-- modified.  Every run reads them all by id (page=N, stable while they change); the
-- sync gate hands on only those whose date_modified_gmt moved.
CREATE FUNCTION integration._woocommerce_pull_request(payload jsonb)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	stream text := integration._pull_stream('woocommerce', payload, '{orders,customers,products,coupons}');
	pg jsonb := CASE WHEN jsonb_typeof(payload -> 'page') = 'object' THEN payload -> 'page' ELSE '{}' END;
	fmt constant text := 'YYYY-MM-DD"T"HH24:MI:SS';
	q jsonb := '{"per_page": "100", "order": "asc"}';
	second timestamp;
	after timestamp;
BEGIN
	IF stream = 'customers' THEN
		q := q || jsonb_build_object('orderby', 'id', 'page', coalesce((pg ->> 'page')::integer, 1)::text);
	ELSIF pg ? 'second' THEN
		second := date_trunc('second', (pg ->> 'second')::timestamp);
		q := q || jsonb_build_object('per_page', '99', 'orderby', 'modified', 'dates_are_gmt', 'true',
									 'modified_after', to_char(second - CASE WHEN (pg ->> 'inclusive')::boolean
																		   THEN interval '0' ELSE interval '1 second' END, fmt),
									 'modified_before', to_char(second + CASE WHEN (pg ->> 'inclusive')::boolean
																			THEN interval '0' ELSE interval '1 second' END, fmt),
									 'page', (pg ->> 'page')::integer::text);
	ELSE
		after := coalesce((pg ->> 'after')::timestamp, (payload ->> 'since')::timestamptz AT TIME ZONE 'UTC');
		q := q || jsonb_build_object('orderby', 'modified', 'dates_are_gmt', 'true', 'page', '1');
		IF after IS NOT NULL THEN
			q := q || jsonb_build_object('modified_after', to_char(after, fmt));
		END IF;
	END IF;
	RETURN ('GET', '/wp-json/wc/v3/' || stream, q, '{"Accept": "application/json"}', NULL)::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration._woocommerce_pull_request(jsonb) IS
	'The woocommerce kind''s pull request of a page: orders, products, coupons by modified_after (GMT), customers by id (internal).';

-- The page a pull response is: records (id, updated_at from date_modified_gmt, topic
-- order.updated or order.created as the webhooks name them), and next_page as above.
-- NULL: not a JSON array.
CREATE FUNCTION integration._woocommerce_pull_page(headers jsonb, rows jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	next_url text := integration._link_url(headers, 'next');
	prev_url text := integration._link_url(headers, 'prev');
	link text := coalesce(next_url, prev_url);
	page integer := coalesce((integration._query_params(next_url) ->> 'page')::integer - 1,
							 (integration._query_params(prev_url) ->> 'page')::integer + 1, 1);
	pages integer;
	before timestamp := (integration._query_params(link) ->> 'modified_before')::timestamp;
	bound timestamp := (integration._query_params(link) ->> 'modified_after')::timestamp;
	fmt constant text := 'YYYY-MM-DD"T"HH24:MI:SS';
	resource text;
	records jsonb;
	n integer;
	seconds timestamp[];
	next jsonb;
BEGIN
	IF jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
		RETURN NULL;
	END IF;
	pages := coalesce(integration.header(headers, 'X-WP-TotalPages')::integer,
					  CASE WHEN next_url IS NOT NULL THEN page + 1 ELSE page END);
	SELECT coalesce(jsonb_agg(jsonb_build_object('id', r ->> 'id',
												 'updated_at', integration._utc_iso(m AT TIME ZONE 'UTC'),
												 'payload', r)
							  || CASE WHEN res IS NOT NULL
									  THEN jsonb_build_object('topic', rtrim(res, 's') || CASE
										  WHEN r ->> 'date_created_gmt' = r ->> 'date_modified_gmt' THEN '.created'
										  ELSE '.updated' END)
									  ELSE '{}' END
							  ORDER BY o), '[]'),
		   count(*), array_agg(date_trunc('second', m) ORDER BY o), min(res)
	  INTO records, n, seconds, resource
	  FROM jsonb_array_elements(rows) WITH ORDINALITY AS x(r, o),
		   LATERAL (SELECT coalesce(r ->> 'date_modified_gmt', r ->> 'date_created_gmt')::timestamp AS m,
						   substring(r #>> '{_links,self,0,href}' FROM '/wc/v[0-9]+/([a-z_]+)/') AS res) AS y;
	resource := coalesce(substring(link FROM '/wc/v[0-9]+/([a-z_]+)'), resource);
	IF before IS NOT NULL AND before = bound THEN
		-- A page of one second's listing from a store that includes the bounds.
		next := CASE WHEN page < pages
					 THEN jsonb_build_object('second', to_char(before, fmt), 'page', page + 1, 'inclusive', true)
					 ELSE jsonb_build_object('after', to_char(before + interval '1 second', fmt)) END;
	ELSIF before IS NOT NULL THEN
		-- A page of one second's listing: its next page, else the seconds after it.
		next := CASE WHEN page < pages
					 THEN jsonb_build_object('second', to_char(before - interval '1 second', fmt), 'page', page + 1)
					 ELSE jsonb_build_object('after', to_char(before - interval '1 second', fmt)) END;
	ELSIF n = 0 OR page >= pages THEN
		next := NULL;
	ELSIF resource = 'customers' THEN
		next := jsonb_build_object('page', page + 1);
	ELSIF seconds[1] = seconds[n] THEN
		next := jsonb_build_object('second', to_char(seconds[n], fmt), 'page', 2)
				|| CASE WHEN seconds[1] <= bound THEN '{"inclusive": true}'::jsonb ELSE '{}' END;
	ELSE
		next := jsonb_build_object('after', to_char(seconds[n] - CASE WHEN seconds[1] <= bound
																	  THEN interval '0' ELSE interval '1 second' END, fmt));
	END IF;
	RETURN jsonb_build_object('records', records, 'next_page', next);
END
$$;
COMMENT ON FUNCTION integration._woocommerce_pull_page(jsonb, jsonb) IS
	'The pull page of a WooCommerce listing response: records and next_page (internal).';

-- Operations (wc/v3):
--   pull                 GET  {stream}?per_page=100&...           (above)
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
	WHEN 'pull' THEN
		RETURN integration._woocommerce_pull_request(p);
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
			'{pull,test,product.create,product.update,variation.update,order.update,order_note.create}');
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.woocommerce_build_request(integration.connector_context, text, jsonb, text) IS
	'The woocommerce kind''s request builder: pull (orders, customers, products, coupons), test, product.create, product.update, variation.update, order.update, order_note.create against /wp-json/wc/v3.';

-- WooCommerce's errors: {"code": "woocommerce_rest_product_invalid_id", "message": ...,
-- "data": {"status": 404}}.
CREATE FUNCTION integration.woocommerce_interpret_response(connector integration.connector_context,
														   operation text, status integer,
														   headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	o integration.connector_outcome;
BEGIN
	o := integration._http_outcome(status, headers,
			coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END),
			format('HTTP %s', status)
			|| coalesce(': ' || nullif(concat_ws(' ', j ->> 'message', '(' || (j ->> 'code') || ')'), ''), ''));
	IF operation = 'pull' AND o.outcome = 'succeeded' THEN
		o.result := integration._woocommerce_pull_page(headers, j);
		IF o.result IS NULL THEN
			o := ('failed', NULL, NULL, format('HTTP %s: the listing is not a JSON array', status))::integration.connector_outcome;
		END IF;
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION integration.woocommerce_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The woocommerce kind''s response interpreter: 2xx succeeded (pull: the page of records and the next page); 429 and 5xx retry; 400, 401, 404 failed with WooCommerce''s message and code.';

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

-- The record a webhook is about: an event is a record of the stream events of its own (id, created).
CREATE FUNCTION integration.stripe_record(connector integration.connector_context,
										  topic text, payload jsonb)
	RETURNS integration.external_record
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN payload ->> 'id' IS NOT NULL AND jsonb_typeof(payload -> 'created') = 'number'
				THEN ROW('events', payload ->> 'id', to_timestamp((payload ->> 'created')::double precision),
						 payload)::integration.external_record
		   END
$$;
COMMENT ON FUNCTION integration.stripe_record(integration.connector_context, text, jsonb) IS
	'The stripe kind''s record function: every event is the record of stream events with its id, at its created.';

-- Pull: the stream events, GET /v1/events?limit=100&created[gt]=<since>, newest first,
-- starting_after the last (oldest) event of the page while has_more.  Newest first is
-- why the sync cursor moves only when a run ends.  An event is a record of its own
-- (id, created), topic its type, so that a pulled event is named as its webhook is
-- (stripe.payment_intent.succeeded) and the one of the two that comes second is a
-- duplicate (stripe_record()).  Stripe keeps events for 30 days: a connector whose
-- cursor is older than that has lost what happened before (docs/connectors-payments.md).
CREATE FUNCTION integration._stripe_pull_page(j jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN jsonb_typeof(j -> 'data') = 'array' THEN jsonb_build_object(
		'records', coalesce((SELECT jsonb_agg(jsonb_build_object(
										'id', e ->> 'id',
										'updated_at', integration._utc_iso(to_timestamp((e ->> 'created')::double precision)),
										'topic', e ->> 'type',
										'payload', e) ORDER BY o)
							   FROM jsonb_array_elements(j -> 'data') WITH ORDINALITY AS x(e, o)), '[]'),
		'next_page', CASE WHEN j ->> 'has_more' = 'true' AND jsonb_array_length(j -> 'data') > 0
						  THEN jsonb_build_object('starting_after', j -> 'data' -> -1 ->> 'id') END)
	END
$$;
COMMENT ON FUNCTION integration._stripe_pull_page(jsonb) IS
	'The pull page of a Stripe event list: each event a record (id, created, topic its type), next_page starting_after its last event while has_more; NULL: not a list (internal).';

-- Operations, form-encoded as Stripe encodes them (stripe_form_encode()); every POST
-- carries the call's Idempotency-Key, the same on every retry, so a retried charge is
-- answered with the first one's result and never charges twice: the kind's
-- idempotency_header, which the caller sends (src/connector_request.c).
--   pull                      GET  /v1/events                   (above)
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
	WHEN 'pull' THEN
		PERFORM integration._pull_stream('stripe', p, '{events}');
		RETURN ('GET', '/v1/events',
				jsonb_strip_nulls(jsonb_build_object(
					'limit', '100',
					'created[gt]', floor(extract(epoch FROM (p ->> 'since')::timestamptz))::bigint::text,
					'starting_after', p #>> '{page,starting_after}')),
				hdrs, NULL)::integration.connector_request;
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
			'{pull,test,payment_intent.create,payment_intent.capture,payment_intent.cancel,refund.create,customer.create,customer.update}');
	END CASE;
	RETURN ('POST', path, NULL, hdrs || '{"Content-Type": "application/x-www-form-urlencoded"}',
			integration.stripe_form_encode(p))::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration.stripe_build_request(integration.connector_context, text, jsonb, text) IS
	'The stripe kind''s request builder: pull (events), test, payment_intent.create, payment_intent.capture, payment_intent.cancel, refund.create, customer.create, customer.update; form-encoded bodies (the call''s key goes in the kind''s idempotency_header, Idempotency-Key, on every POST).';

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
	IF operation = 'pull' AND o.outcome = 'succeeded' THEN
		o.result := integration._stripe_pull_page(j);
		IF o.result IS NULL THEN
			o := ('failed', NULL, NULL, format('HTTP %s: not a list of events', status))::integration.connector_outcome;
		END IF;
	END IF;
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
	'The stripe kind''s response interpreter: 2xx succeeded (pull: the page of events); Stripe-Should-Retry decides when present; else 409, 429 and 5xx retry and the rest (card declines included) failed with the error''s type, code, decline code and message.';

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

-- The record a webhook is about: a contact's, company's or deal's creation or property change is that record
-- (objectId) at occurredAt, the moment HubSpot stamps as its last modification.  An
-- update of several properties sends one propertyChange per property, all with one
-- occurredAt: one version of the record, handed on once (the first event).  Deletions
-- are no record (a pull never sees a deleted object).
CREATE FUNCTION integration.hubspot_record(connector integration.connector_context,
										   topic text, payload jsonb)
	RETURNS integration.external_record
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN split_part(topic, '.', 2) IN ('creation', 'propertyChange')
					 AND s IS NOT NULL AND payload ->> 'objectId' IS NOT NULL
					 AND payload ->> 'occurredAt' ~ '^[0-9]{1,15}$'
				THEN ROW(s, payload ->> 'objectId', to_timestamp((payload ->> 'occurredAt')::bigint / 1000.0),
						 payload)::integration.external_record
		   END
	  FROM (SELECT CASE split_part(topic, '.', 1) WHEN 'contact' THEN 'contacts'
						WHEN 'company' THEN 'companies' WHEN 'deal' THEN 'deals' END AS s) AS x
$$;
COMMENT ON FUNCTION integration.hubspot_record(integration.connector_context, text, jsonb) IS
	'The hubspot kind''s record function: a contact, company or deal creation or propertyChange event is that record (streams contacts, companies, deals) at occurredAt; deletions are no record.';

-- Pull: contacts, companies and deals through POST /crm/v3/objects/{stream}/search,
-- sorted by the last-modified date ascending (lastmodifieddate for contacts,
-- hs_lastmodifieddate for the others), 100 a page.  A search sees 10,000 results at
-- most (an after of 10,000 is refused), and a response adapter is not told the search
-- it judges, so a page is not "after" of one long search: each page restarts the
-- search from the last record's date (GTE, the cursor moving with every page; the
-- records of that millisecond come again and the sync gate drops them).  A page whose
-- records all share one millisecond is followed by that millisecond's own search (EQ,
-- paged by after), then by the search past it (GT).  page is {"since": ms},
-- {"eq": ms, "after": n} or {"gt": ms}.  More than 10,000 records changed in one
-- millisecond cannot be paged: that page fails, saying so.  Search answers carry no
-- rate-limit headers and HubSpot allows 5 searches a second: wait 0.2 s between pages,
-- longer when X-HubSpot-RateLimit-(Secondly-)Remaining says a window is spent.
CREATE FUNCTION integration._hubspot_pull_request(connector integration.connector_context, payload jsonb)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	stream text := integration._pull_stream('hubspot', payload, '{contacts,companies,deals}');
	prop text := CASE stream WHEN 'contacts' THEN 'lastmodifieddate' ELSE 'hs_lastmodifieddate' END;
	pg jsonb := CASE WHEN jsonb_typeof(payload -> 'page') = 'object' THEN payload -> 'page' ELSE '{}' END;
	props jsonb := (connector).settings -> 'pull_properties' -> stream;
	f jsonb;
	b jsonb;
BEGIN
	f := CASE
		WHEN pg ? 'eq' THEN jsonb_build_array('EQ', (pg ->> 'eq')::bigint::text)
		WHEN pg ? 'gt' THEN jsonb_build_array('GT', (pg ->> 'gt')::bigint::text)
		WHEN pg ? 'since' THEN jsonb_build_array('GTE', (pg ->> 'since')::bigint::text)
		WHEN payload ->> 'since' IS NOT NULL
			THEN jsonb_build_array('GTE', floor(extract(epoch FROM (payload ->> 'since')::timestamptz) * 1000)::bigint::text)
	END;
	b := jsonb_build_object('sorts', jsonb_build_array(jsonb_build_object('propertyName', prop, 'direction', 'ASCENDING')),
							'limit', 100);
	IF f IS NOT NULL THEN
		b := b || jsonb_build_object('filterGroups', jsonb_build_array(jsonb_build_object('filters', jsonb_build_array(
					jsonb_build_object('propertyName', prop, 'operator', f ->> 0, 'value', f ->> 1)))));
	END IF;
	IF pg ? 'eq' AND pg ? 'after' THEN
		b := b || jsonb_build_object('after', (pg ->> 'after')::bigint::text);
	END IF;
	-- settings.pull_properties: {"contacts": ["email", ...]}, the date always among them.
	IF jsonb_typeof(props) = 'array' THEN
		b := b || jsonb_build_object('properties', props || to_jsonb(prop));
	END IF;
	RETURN ('POST', '/crm/v3/objects/' || stream || '/search', NULL,
			'{"Accept": "application/json", "Content-Type": "application/json"}', b::text)::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration._hubspot_pull_request(integration.connector_context, jsonb) IS
	'The hubspot kind''s pull request of a page: the CRM search sorted by the last-modified date, from the page''s or the run''s date (internal).';

-- The page a search response is (NULL: not a search response; a text: why it cannot go
-- on, in "error").
CREATE FUNCTION integration._hubspot_pull_page(headers jsonb, j jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	after text := j #>> '{paging,next,after}';
	records jsonb;
	n integer;
	ms bigint[];
	next jsonb;
	wait numeric;
BEGIN
	IF jsonb_typeof(j -> 'results') IS DISTINCT FROM 'array' THEN
		RETURN NULL;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('id', r ->> 'id',
												 'updated_at', integration._utc_iso(to_timestamp(m / 1000.0)),
												 'payload', r) ORDER BY o), '[]'),
		   count(*), array_agg(m ORDER BY o)
	  INTO records, n, ms
	  FROM jsonb_array_elements(j -> 'results') WITH ORDINALITY AS x(r, o),
		   LATERAL (SELECT coalesce(r #>> '{properties,lastmodifieddate}', r #>> '{properties,hs_lastmodifieddate}',
									r ->> 'updatedAt') AS v) AS y,
		   LATERAL (SELECT CASE WHEN v ~ '^[0-9]+$' THEN v::bigint
								ELSE floor(extract(epoch FROM v::timestamptz) * 1000)::bigint END AS m) AS z;
	IF n = 0 THEN
		next := NULL;
	ELSIF after IS NULL THEN
		-- The last page of a search: of one millisecond's (or all on one), go past it.
		next := CASE WHEN ms[1] = ms[n] THEN jsonb_build_object('gt', ms[n]::text) END;
	ELSIF ms[1] = ms[n] THEN
		IF after::bigint >= 10000 THEN
			RETURN jsonb_build_object('error', format('more than 10,000 records were changed at %s, which HubSpot''s search cannot page',
													  integration._utc_iso(to_timestamp(ms[n] / 1000.0))));
		END IF;
		next := jsonb_build_object('eq', ms[n]::text, 'after', after);
	ELSE
		next := jsonb_build_object('since', ms[n]::text);
	END IF;
	wait := CASE
		WHEN integration.header(headers, 'X-HubSpot-RateLimit-Remaining') = '0'
			THEN coalesce(integration.header(headers, 'X-HubSpot-RateLimit-Interval-Milliseconds')::float8 / 1000, 10)
		WHEN integration.header(headers, 'X-HubSpot-RateLimit-Secondly-Remaining') = '0' THEN 1
		ELSE 0.2
	END;
	RETURN jsonb_build_object('records', records, 'next_page', next, 'wait', wait);
END
$$;
COMMENT ON FUNCTION integration._hubspot_pull_page(jsonb, jsonb) IS
	'The pull page of a HubSpot CRM search response: records, next_page (restarting from the last record''s date) and wait (internal).';

-- Operations:
--   pull                    POST /crm/v3/objects/{stream}/search   (above)
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
	WHEN 'pull' THEN
		RETURN integration._hubspot_pull_request(connector, payload);
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
		PERFORM integration._unknown_operation('hubspot', operation, '{pull,test,contacts.batch_upsert}');
	END CASE;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION integration.hubspot_build_request(integration.connector_context, text, jsonb, text) IS
	'The hubspot kind''s request builder: pull (contacts, companies, deals), test, contacts.batch_upsert (1 to 100 contacts upserted by email).';

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
	IF operation = 'pull' AND o.outcome = 'succeeded' THEN
		o.result := integration._hubspot_pull_page(headers, j);
		IF o.result IS NULL OR o.result ? 'error' THEN
			o := ('failed', NULL, NULL, format('HTTP %s: %s', status,
					coalesce(o.result ->> 'error', 'not a search response')))::integration.connector_outcome;
		END IF;
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION integration.hubspot_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The hubspot kind''s response interpreter: 2xx (207 included) succeeded (pull: the page of records); 429 retried after Retry-After, else 1 s for the secondly limit, else the rolling window (X-HubSpot-RateLimit-Interval-Milliseconds, 10 s); 5xx retry; the rest failed with HubSpot''s category and message.';

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
-- odoo: an Odoo-style ERP over JSON-RPC (POST /jsonrpc, object.execute_kw; wire facts §8).
-- base_url is the server's origin; settings.database and settings.uid (the user id
-- common.authenticate returns for the key's user) are not secret and go in the body as
-- the adapter builds it (odoo_execute_kw_request()); the credential api_key goes there
-- too, in its third argument, put there by the caller (auth json:/params/args/2), so
-- the adapter never sees it.  No webhooks.
------------------------------------------------------------------------------------------

-- The fields a pull reads when settings.pull_fields names none for the model: what a
-- sale, a customer and a product are to an integration, not every field (product
-- images would come with every page otherwise).
CREATE FUNCTION integration._odoo_pull_fields(connector integration.connector_context, model text)
	RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN jsonb_typeof(f) = 'array' AND NOT f ? 'write_date' THEN f || '["write_date"]' ELSE f END
	  FROM (SELECT coalesce((connector).settings -> 'pull_fields' -> model, CASE model
				WHEN 'sale.order' THEN '["name", "partner_id", "state", "date_order", "client_order_ref", "order_line", "amount_untaxed", "amount_total", "create_date", "write_date"]'
				WHEN 'res.partner' THEN '["name", "email", "phone", "is_company", "ref", "street", "city", "zip", "active", "create_date", "write_date"]'
				WHEN 'product.product' THEN '["name", "default_code", "list_price", "active", "create_date", "write_date"]'
			 END::jsonb) AS f) AS x
$$;
COMMENT ON FUNCTION integration._odoo_pull_fields(integration.connector_context, text) IS
	'The fields the odoo kind''s pull reads of a model: settings.pull_fields.<model> (write_date added), else a default list (internal).';

-- Pull: sale.order, res.partner and product.product by write_date, with id to break
-- ties.  write_date is kept with fractions of a second but read as whole seconds
-- ("YYYY-MM-DD HH:MM:SS"), so a domain on the value read, write_date = W AND id > I,
-- misses the records of second W that sort after the last one read by fraction yet
-- have a smaller id.  Pages are therefore: write_date >= <second> ordered
-- 'write_date asc, id asc' (the last page's newest second read again, repeats the sync
-- gate drops), and when a whole page lies in one second, that second's records by id
-- (W <= write_date < W + 1 s AND id > I, 'id asc'), then the seconds after it.  page
-- is {"from": second} or {"second": second, "id": I}.  Which of the two a response
-- answers is in its JSON-RPC id, which Odoo echoes: 0, or the second in epoch seconds.
-- Archived records are read too (active_test false): archiving is how Odoo deletes.
CREATE FUNCTION integration._odoo_pull_call(connector integration.connector_context, payload jsonb,
											OUT model text, OUT args jsonb, OUT kwargs jsonb,
											OUT request_id bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	pg jsonb := CASE WHEN jsonb_typeof(payload -> 'page') = 'object' THEN payload -> 'page' ELSE '{}' END;
	fmt constant text := 'YYYY-MM-DD HH24:MI:SS';
	second timestamp;
	domain jsonb;
BEGIN
	model := integration._pull_stream('odoo', payload, '{sale.order,res.partner,product.product}');
	kwargs := jsonb_build_object('fields', integration._odoo_pull_fields(connector, model), 'limit', 100,
								 'context', '{"active_test": false}'::jsonb);
	IF pg ? 'second' THEN
		second := date_trunc('second', (pg ->> 'second')::timestamp);
		domain := jsonb_build_array(
			jsonb_build_array('write_date', '>=', to_char(second, fmt)),
			jsonb_build_array('write_date', '<', to_char(second + interval '1 second', fmt)),
			jsonb_build_array('id', '>', coalesce((pg ->> 'id')::bigint, 0)));
		kwargs := kwargs || '{"order": "id asc"}';
		request_id := extract(epoch FROM second)::bigint;
	ELSE
		second := coalesce((pg ->> 'from')::timestamp, (payload ->> 'since')::timestamptz AT TIME ZONE 'UTC');
		domain := CASE WHEN second IS NULL THEN '[]'
					   ELSE jsonb_build_array(jsonb_build_array('write_date', '>=', to_char(second, fmt))) END;
		kwargs := kwargs || '{"order": "write_date asc, id asc"}';
		request_id := 0;
	END IF;
	args := jsonb_build_array(domain);
END
$$;
COMMENT ON FUNCTION integration._odoo_pull_call(integration.connector_context, jsonb) IS
	'The execute_kw search_read of a pull page of the odoo kind: model, args, kwargs and the JSON-RPC id that tells its response which kind of page it is (internal).';

-- The page a search_read result is.  NULL: not a list of records.
CREATE FUNCTION integration._odoo_pull_page(rpc_id bigint, rows jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	fmt constant text := 'YYYY-MM-DD HH24:MI:SS';
	records jsonb;
	n integer;
	seconds timestamp[];
	last_id bigint;
	second timestamp := CASE WHEN rpc_id > 0 THEN to_timestamp(rpc_id) AT TIME ZONE 'UTC' END;
	next jsonb;
BEGIN
	IF jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
		RETURN NULL;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('id', r ->> 'id',
												 'updated_at', integration._utc_iso(m AT TIME ZONE 'UTC'),
												 'payload', r) ORDER BY o), '[]'),
		   count(*), array_agg(date_trunc('second', m) ORDER BY o), (array_agg((r ->> 'id')::bigint ORDER BY o DESC))[1]
	  INTO records, n, seconds, last_id
	  FROM jsonb_array_elements(rows) WITH ORDINALITY AS x(r, o),
		   LATERAL (SELECT (r ->> 'write_date')::timestamp AS m) AS y;
	IF second IS NOT NULL THEN
		-- A page of one second's records by id: its next, else the seconds after it.
		next := CASE WHEN n >= 100 THEN jsonb_build_object('second', to_char(second, fmt), 'id', last_id)
					 ELSE jsonb_build_object('from', to_char(second + interval '1 second', fmt)) END;
	ELSIF n < 100 THEN
		next := NULL;
	ELSIF seconds[1] = seconds[n] THEN
		next := jsonb_build_object('second', to_char(seconds[n], fmt), 'id', 0);
	ELSE
		next := jsonb_build_object('from', to_char(seconds[n], fmt));
	END IF;
	RETURN jsonb_build_object('records', records, 'next_page', next);
END
$$;
COMMENT ON FUNCTION integration._odoo_pull_page(bigint, jsonb) IS
	'The pull page of an odoo search_read result: records (updated_at from write_date, UTC) and next_page (internal).';

-- Operations, each one execute_kw:
--   test       res.partner search [[]] limit 1 (the database, uid and key are checked)
--   create     payload {"model", "values"}: model.create(values); values an object (or
--              a list of them), x2many fields as Odoo's commands, e.g. a sale order
--              with lines {"partner_id": 7, "order_line": [[0, 0, {"product_id": 3,
--              "product_uom_qty": 2, "price_unit": 9.5}]]}; the result is the new id
--   write      payload {"model", "ids" (or "id"), "values"}: model.write(ids, values),
--              order_line commands [1, id, {...}] update, [2, id, 0] delete, ...
--   pull       search_read (above)
CREATE FUNCTION integration.odoo_build_request(connector integration.connector_context,
											   operation text, payload jsonb,
											   idempotency_key text)
	RETURNS integration.connector_request
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	settings jsonb := (connector).settings;
	p jsonb := coalesce(payload, '{}');
	model text;
	args jsonb;
	kwargs jsonb := '{}';
	request_id bigint := 1;
	method text := operation;
	ids jsonb;
BEGIN
	IF jsonb_typeof(settings -> 'database') IS DISTINCT FROM 'string'
	   OR jsonb_typeof(settings -> 'uid') IS DISTINCT FROM 'number'
	   OR (settings ->> 'uid') !~ '^[1-9][0-9]{0,9}$' THEN
		RAISE EXCEPTION 'an odoo connector needs settings.database and settings.uid'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'execute_kw takes the database name, a string, and the user id, a positive integer, before the API key.',
				  HINT = 'Set them with integration.update_connector(id => ..., settings => ''{"database": "...", "uid": 2}''); the uid is what common.authenticate returns for the key''s user.';
	END IF;
	CASE operation
	WHEN 'test' THEN
		model := 'res.partner';
		method := 'search';
		args := '[[]]';
		kwargs := '{"limit": 1}';
	WHEN 'create', 'write' THEN
		model := p ->> 'model';
		IF model IS NULL OR model !~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$' THEN
			RAISE EXCEPTION 'operation % needs "model", an Odoo model name', operation
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('"model" is %s.', coalesce('"' || model || '"', 'missing')),
					  HINT = 'e.g. {"model": "sale.order", "values": {...}}.';
		END IF;
		IF jsonb_typeof(p -> 'values') IS DISTINCT FROM 'object'
		   AND NOT (operation = 'create' AND jsonb_typeof(p -> 'values') = 'array') THEN
			RAISE EXCEPTION 'operation % needs "values", a JSON object of field values', operation
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF operation = 'create' THEN
			args := jsonb_build_array(p -> 'values');
		ELSE
			ids := CASE WHEN jsonb_typeof(p -> 'ids') = 'array' THEN p -> 'ids'
						WHEN jsonb_typeof(p -> 'id') = 'number' THEN jsonb_build_array(p -> 'id') END;
			IF ids IS NULL OR jsonb_array_length(ids) = 0
			   OR EXISTS (SELECT FROM jsonb_array_elements(ids) AS i WHERE i::text !~ '^[1-9][0-9]{0,18}$') THEN
				RAISE EXCEPTION 'operation write needs "ids", a non-empty array of record ids (or "id")'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			args := jsonb_build_array(ids, p -> 'values');
		END IF;
	WHEN 'pull' THEN
		SELECT c.model, c.args, c.kwargs, c.request_id INTO model, args, kwargs, request_id
		  FROM integration._odoo_pull_call(connector, p) AS c;
		method := 'search_read';
	ELSE
		PERFORM integration._unknown_operation('odoo', operation, '{test,create,write,pull}');
	END CASE;
	-- The key's place holds a placeholder: the caller puts the credential there.
	RETURN ('POST', '/jsonrpc', NULL, '{"Accept": "application/json", "Content-Type": "application/json"}',
			integration.odoo_execute_kw_request(settings ->> 'database', (settings ->> 'uid')::integer,
												'(api_key)', model, method, args, kwargs,
												request_id)::text)::integration.connector_request;
END
$$;
COMMENT ON FUNCTION integration.odoo_build_request(integration.connector_context, text, jsonb, text) IS
	'The odoo kind''s request builder: test, create, write and pull as execute_kw calls to /jsonrpc with settings.database and settings.uid; the API key is put into the body by the caller (auth json:/params/args/2).';

-- Odoo answers 200 with a JSON-RPC error envelope; odoo_classify_response() reads it:
-- a concurrency or availability failure is retried, anything else (access, validation,
-- a missing record, a user error) fails for good.  Another status (a proxy's 502, a
-- 404 page) is judged as any HTTP response is.
CREATE FUNCTION integration.odoo_interpret_response(connector integration.connector_context,
													operation text, status integer,
													headers jsonb, body text)
	RETURNS integration.connector_outcome
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb := integration.try_jsonb(body);
	c record;
	err jsonb;
	page jsonb;
BEGIN
	IF status NOT BETWEEN 200 AND 299 THEN
		RETURN integration._http_outcome(status, headers, coalesce(j, CASE WHEN body <> '' THEN to_jsonb(body) END),
										 format('HTTP %s', status));
	END IF;
	SELECT * INTO c FROM integration.odoo_classify_response(j);
	IF c.outcome = 'succeeded' THEN
		IF operation <> 'pull' THEN
			RETURN ('succeeded', NULL, c.result, NULL)::integration.connector_outcome;
		END IF;
		page := integration._odoo_pull_page(CASE WHEN j ->> 'id' ~ '^[0-9]{1,18}$' THEN (j ->> 'id')::bigint ELSE 0 END,
											c.result);
		IF page IS NULL THEN
			RETURN ('failed', NULL, NULL, 'Odoo: search_read did not answer a list of records')::integration.connector_outcome;
		END IF;
		RETURN ('succeeded', NULL, page, NULL)::integration.connector_outcome;
	END IF;
	-- The traceback stays on the server.
	err := CASE WHEN jsonb_typeof(j -> 'error') = 'object' THEN (j -> 'error') #- '{data,debug}' END;
	RETURN (CASE c.outcome WHEN 'retriable' THEN 'retry' ELSE 'failed' END, NULL, err,
			format('Odoo %s error%s: %s', c.error_class,
				   coalesce(' (' || (j #>> '{error,data,name}') || ')', ''), rtrim(c.message, E'\n')))::integration.connector_outcome;
END
$$;
COMMENT ON FUNCTION integration.odoo_interpret_response(integration.connector_context, text, integer, jsonb, text) IS
	'The odoo kind''s response interpreter: a JSON-RPC result succeeded (pull: the page of records); an error envelope retried when odoo_classify_response() calls it retriable (concurrency, unavailable), else failed with its class, exception and message; other statuses as HTTP.';

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
	 NULL, NULL, NULL),
	('odoo', 'An Odoo-style ERP over JSON-RPC: execute_kw with settings.database, settings.uid and the api_key credential in the body; create and write out, and a pull of sale.order, res.partner and product.product by write_date.',
	 'json:/params/args/2(api_key)', 'none', NULL, NULL,
	 'integration.odoo_build_request(integration.connector_context, text, jsonb, text)',
	 'integration.odoo_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	 NULL);

-- The kinds that pull, and tell which pulled record a webhook is about (sql/sync.sql).
UPDATE integration.connector_kinds
   SET pull_streams = '{orders,customers,products}',
	   record_function = 'integration.shopify_record(integration.connector_context, text, jsonb)',
	   records_as_pulled = true
 WHERE name = 'shopify';
UPDATE integration.connector_kinds
   SET pull_streams = '{orders,customers,products,coupons}',
	   record_function = 'integration.woocommerce_record(integration.connector_context, text, jsonb)',
	   records_as_pulled = true
 WHERE name = 'woocommerce';
UPDATE integration.connector_kinds
   SET pull_streams = '{events}',
	   record_function = 'integration.stripe_record(integration.connector_context, text, jsonb)'
 WHERE name = 'stripe';
UPDATE integration.connector_kinds
   SET pull_streams = '{contacts,companies,deals}',
	   record_function = 'integration.hubspot_record(integration.connector_context, text, jsonb)'
 WHERE name = 'hubspot';
UPDATE integration.connector_kinds
   SET pull_streams = '{sale.order,res.partner,product.product}'
 WHERE name = 'odoo';

-- pg_dump keeps the kinds users register; the shipped ones are the extension's.
SELECT pg_catalog.pg_extension_config_dump('integration.connector_kinds',
	'WHERE name NOT IN (''generic'', ''shopify'', ''woocommerce'', ''stripe'', ''hubspot'', ''adyen'', ''odoo'')');

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA integration FROM PUBLIC;
