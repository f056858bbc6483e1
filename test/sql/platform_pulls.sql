-- Pull pages of the platform kinds (woocommerce, stripe, hubspot, odoo) and the odoo
-- kind's calls: the request each page builds from {stream, since, page}, and what each
-- canned response (status, headers, body) comes to: the records, the next page, the
-- wait, or the failure.  Adapters are called directly, as the worker calls them; the
-- pages end to end against the loopback servers are t/026_platform_pulls.pl.
\set SHOW_CONTEXT never
SET TimeZone = 'America/New_York';	-- updated_at is UTC whatever the session's zone

CREATE FUNCTION pg_temp.ctx(kind text, settings jsonb DEFAULT '{}')
	RETURNS integration.connector_context
	LANGUAGE sql AS $$ SELECT ROW(1, 't', kind, kind, 'https://x.example', settings)::integration.connector_context $$;
-- A request as one line: method, path, query and body.
CREATE FUNCTION pg_temp.req(k text, op text, payload jsonb, settings jsonb DEFAULT '{}') RETURNS TABLE (method text, path text, query jsonb, body jsonb)
	LANGUAGE sql AS $$
	SELECT r.method, r.path, r.query, r.body::jsonb
	  FROM (SELECT * FROM integration.woocommerce_build_request(pg_temp.ctx(k, settings), op, payload, NULL) WHERE k = 'woocommerce'
					UNION ALL SELECT * FROM integration.stripe_build_request(pg_temp.ctx(k, settings), op, payload, NULL) WHERE k = 'stripe'
					UNION ALL SELECT * FROM integration.hubspot_build_request(pg_temp.ctx(k, settings), op, payload, NULL) WHERE k = 'hubspot'
					UNION ALL SELECT * FROM integration.odoo_build_request(pg_temp.ctx(k, settings), op, payload, NULL) WHERE k = 'odoo') AS r $$;
-- A pull response's outcome, its page taken apart: record ids, updated_at and topics,
-- next_page, wait.
CREATE FUNCTION pg_temp.page(o integration.connector_outcome)
	RETURNS TABLE (outcome text, retry_after interval, ids text, updated text, topics text, next_page jsonb, wait jsonb, error text)
	LANGUAGE sql AS $$
	SELECT o.outcome, o.retry_after,
		   (SELECT CASE WHEN count(*) > 4 THEN format('%s: %s .. %s', count(*), min(r ->> 'id') FILTER (WHERE i = 1), min(r ->> 'id') FILTER (WHERE i = n))
						ELSE string_agg(r ->> 'id', ',' ORDER BY i) END
			  FROM jsonb_array_elements(o.result -> 'records') WITH ORDINALITY AS x(r, i), jsonb_array_length(o.result -> 'records') AS n),
		   (SELECT CASE WHEN count(DISTINCT r ->> 'updated_at') > 3
						THEN format('%s .. %s', min(r ->> 'updated_at') FILTER (WHERE i = 1), min(r ->> 'updated_at') FILTER (WHERE i = n))
						ELSE string_agg(DISTINCT r ->> 'updated_at', ',') END
			  FROM jsonb_array_elements(o.result -> 'records') WITH ORDINALITY AS x(r, i), jsonb_array_length(o.result -> 'records') AS n),
		   (SELECT string_agg(DISTINCT coalesce(r ->> 'topic', '-'), ',') FROM jsonb_array_elements(o.result -> 'records') AS r),
		   o.result -> 'next_page', o.result -> 'wait', o.error $$;

-- The kinds that pull, and odoo's auth: the key into the body at a JSON pointer.
SELECT name, auth, signature_scheme, build_request_function IS NOT NULL AS outbound,
	   normalise_function IS NOT NULL AS inbound
  FROM integration.connector_kinds WHERE name = 'odoo';
SELECT a, integration._is_auth(a) AS valid, integration._auth_style(a) AS style, integration._auth_keys(a) AS keys
  FROM unnest(ARRAY['json:/params/args/2(api_key)', 'json:/token', 'json:/a b', 'json:', 'json:/x/(k)',
					'json:/params/args/2(api_key,uid)']) AS a;

------------------------------------------------------------------------------------------
-- WooCommerce
------------------------------------------------------------------------------------------

-- The first page: modified_after the cursor (GMT, whole seconds), oldest change first.
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "orders", "since": "2025-03-01T12:00:30.75Z", "page": null}');
-- The first run: everything.  Customers: by id, every run (modified_after does not apply).
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "products", "since": null, "page": null}');
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "customers", "since": "2025-03-01T12:00:00Z", "page": {"page": 3}}');
-- Next pages: after a second (the cursor moved), or one second's listing by page.
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "orders", "since": "2025-03-01T12:00:00Z", "page": {"after": "2025-03-01T13:00:04"}}');
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "coupons", "since": null, "page": {"second": "2025-03-01T13:00:05", "page": 2}}');
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "refunds", "since": null, "page": null}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE

-- Responses.  A full page spanning seconds: the next starts at its last second (read
-- again); topics as the webhooks name them.
CREATE FUNCTION pg_temp.woo_rows(resource text, first integer, n integer, at timestamp, per_second integer)
	RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(jsonb_build_object('id', i, 'date_created_gmt', to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS'),
			 'date_modified_gmt', to_char(at + ((i - first) / per_second) * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS'),
			 '_links', jsonb_build_object('self', jsonb_build_array(jsonb_build_object('href', 'https://x.example/wp-json/wc/v3/' || resource || '/' || i))))
			 ORDER BY i)
	  FROM generate_series(first, first + n - 1) AS i $$;
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?per_page=100&order=asc&orderby=modified&dates_are_gmt=true&page=2&modified_after=2025-03-01T12%3A00%3A30>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 1, 100, '2025-03-01 12:00:31', 40)::text));
-- Everything after the cursor on this page (X-WP-TotalPages 1): the run is over.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "2", "x-wp-totalpages": "1"}', pg_temp.woo_rows('products', 7, 2, '2025-03-01 12:00:31', 1)::text));
-- A full page in one second: that second's listing, page 2.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "300", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=2&modified_after=2025-03-01T12%3A00%3A30>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 1, 100, '2025-03-01 12:00:31', 1000)::text));
-- Page 2 of 3 of that second (the Link repeats modified_before): page 3; the last page
-- of it: the seconds after it.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=1&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A32>; rel=\"prev\", <https://x.example/wp-json/wc/v3/orders?page=3&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A32>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 101, 100, '2025-03-01 12:00:31', 1000)::text));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=2&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A32>; rel=\"prev\""}',
	pg_temp.woo_rows('orders', 201, 50, '2025-03-01 12:00:31', 1000)::text));
-- Customers: page after page by the Link, until X-WP-TotalPages.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/customers?orderby=id&page=1>; rel=\"prev\", <https://x.example/wp-json/wc/v3/customers?orderby=id&page=3>; rel=\"next\""}',
	pg_temp.woo_rows('customers', 101, 3, '2025-03-01 12:00:31', 1)::text));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/customers?orderby=id&page=2>; rel=\"prev\""}',
	pg_temp.woo_rows('customers', 201, 2, '2025-03-01 12:00:31', 1)::text));
-- A store whose date bounds are inclusive (not WooCommerce's) shows itself by a record
-- at the request's modified_after: a page spanning seconds goes on after its newest
-- second itself; a page in one second goes on with that second's listing, both bounds
-- at it, whose pages go on likewise and whose last goes on after the second past it.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=2&modified_after=2025-03-01T12%3A00%3A30>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 1, 100, '2025-03-01 12:00:30', 60)::text));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=2&modified_after=2025-03-01T12%3A00%3A30>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 1, 100, '2025-03-01 12:00:30', 1000)::text));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=1&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A30>; rel=\"prev\", <https://x.example/wp-json/wc/v3/orders?page=3&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A30>; rel=\"next\""}',
	pg_temp.woo_rows('orders', 101, 100, '2025-03-01 12:00:30', 1000)::text));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "250", "x-wp-totalpages": "3", "link": "<https://x.example/wp-json/wc/v3/orders?page=2&modified_after=2025-03-01T12%3A00%3A30&modified_before=2025-03-01T12%3A00%3A30>; rel=\"prev\""}',
	pg_temp.woo_rows('orders', 201, 50, '2025-03-01 12:00:30', 1000)::text));
SELECT * FROM pg_temp.req('woocommerce', 'pull', '{"stream": "orders", "since": null, "page": {"second": "2025-03-01T12:00:30", "page": 2, "inclusive": true}}');
-- Nothing new; a 429 (Retry-After); a 401; a body that is not a listing.
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200,
	'{"x-wp-total": "0", "x-wp-totalpages": "0"}', '[]'));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 429,
	'{"retry-after": "3"}', ''));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 401, '{}',
	'{"code":"woocommerce_rest_authentication_error","message":"Consumer secret is invalid.","data":{"status":401}}'));
SELECT * FROM pg_temp.page(integration.woocommerce_interpret_response(pg_temp.ctx('woocommerce'), 'pull', 200, '{}', '{"orders": []}'));

------------------------------------------------------------------------------------------
-- Stripe
------------------------------------------------------------------------------------------

SELECT * FROM pg_temp.req('stripe', 'pull', '{"stream": "events", "since": "2025-03-01T12:00:30.75Z", "page": null}');
SELECT * FROM pg_temp.req('stripe', 'pull', '{"stream": "events", "since": "2025-03-01T12:00:30Z", "page": {"starting_after": "evt_3"}}');
SELECT * FROM pg_temp.req('stripe', 'pull', '{"stream": "events", "since": null, "page": null}');
SELECT * FROM pg_temp.req('stripe', 'pull', '{"stream": "charges", "since": null, "page": null}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
-- Newest first: the next page starts after the last (oldest) event; topics are types.
SELECT * FROM pg_temp.page(integration.stripe_interpret_response(pg_temp.ctx('stripe'), 'pull', 200, '{}',
	'{"object":"list","url":"/v1/events","has_more":true,"data":[{"id":"evt_9","object":"event","type":"payment_intent.succeeded","created":1740830500,"data":{"object":{"id":"pi_1"}}},{"id":"evt_8","object":"event","type":"charge.refunded","created":1740830431,"data":{"object":{"id":"ch_1"}}}]}'));
SELECT * FROM pg_temp.page(integration.stripe_interpret_response(pg_temp.ctx('stripe'), 'pull', 200, '{}',
	'{"object":"list","url":"/v1/events","has_more":false,"data":[{"id":"evt_7","object":"event","type":"customer.created","created":1740830400,"data":{"object":{"id":"cus_1"}}}]}'));
SELECT * FROM pg_temp.page(integration.stripe_interpret_response(pg_temp.ctx('stripe'), 'pull', 200, '{}',
	'{"object":"list","url":"/v1/events","has_more":false,"data":[]}'));
SELECT * FROM pg_temp.page(integration.stripe_interpret_response(pg_temp.ctx('stripe'), 'pull', 400, '{}',
	'{"error":{"type":"invalid_request_error","message":"No such event: ''evt_gone''","param":"starting_after"}}'));
SELECT * FROM pg_temp.page(integration.stripe_interpret_response(pg_temp.ctx('stripe'), 'pull', 200, '{}', '{"object":"event"}'));

------------------------------------------------------------------------------------------
-- HubSpot
------------------------------------------------------------------------------------------

-- The search, sorted by the last-modified date (contacts: lastmodifieddate), from the
-- run's since (epoch ms); settings.pull_properties adds properties.
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "contacts", "since": "2025-03-01T12:00:30.75Z", "page": null}');
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "deals", "since": null, "page": null}', '{"pull_properties": {"deals": ["amount", "dealstage"]}}');
-- Next pages: restarted from a record's date; one millisecond's own search; past it.
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "companies", "since": "2025-03-01T12:00:00Z", "page": {"since": "1740830431500"}}');
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "companies", "since": "2025-03-01T12:00:00Z", "page": {"eq": "1740830431500", "after": "200"}}');
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "companies", "since": "2025-03-01T12:00:00Z", "page": {"gt": "1740830431500"}}');
SELECT * FROM pg_temp.req('hubspot', 'pull', '{"stream": "tickets", "since": null, "page": null}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
CREATE FUNCTION pg_temp.hs_body(first integer, n integer, ms bigint, step integer, after text, prop text DEFAULT 'hs_lastmodifieddate')
	RETURNS text LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object('total', 20000, 'results',
			 (SELECT jsonb_agg(jsonb_build_object('id', i::text, 'properties',
						 jsonb_build_object(prop, integration._utc_iso(to_timestamp((ms + (i - first) * step) / 1000.0)), 'hs_object_id', i::text),
						 'createdAt', '2025-01-01T00:00:00Z', 'updatedAt', '2025-01-01T00:00:00Z', 'archived', false) ORDER BY i)
				FROM generate_series(first, first + n - 1) AS i),
			 'paging', CASE WHEN after IS NOT NULL THEN jsonb_build_object('next', jsonb_build_object('after', after)) END))::text $$;
-- A page with more behind it: restart from its last record's date; the wait paces searches.
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200, '{}',
	pg_temp.hs_body(1, 100, 1740830400000, 7, '100', 'lastmodifieddate')));
-- The search's end: the run is over.
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200, '{}',
	pg_temp.hs_body(101, 3, 1740830400000, 7, NULL)));
-- A full page in one millisecond: that millisecond's search, paged; its last page: past it.
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200, '{}',
	pg_temp.hs_body(201, 100, 1740830431500, 0, '300')));
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200, '{}',
	pg_temp.hs_body(301, 40, 1740830431500, 0, NULL)));
-- 10,000 records in one millisecond: HubSpot cannot page past that; said so.
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200, '{}',
	pg_temp.hs_body(401, 100, 1740830431500, 0, '10000')));
-- Rate limits: a spent ten-second window waits it out; a secondly 429 retries in 1 s.
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 200,
	'{"x-hubspot-ratelimit-remaining": "0", "x-hubspot-ratelimit-interval-milliseconds": "10000"}',
	pg_temp.hs_body(1, 2, 1740830400000, 7, '2')));
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 429, '{}',
	'{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","policyName":"SECONDLY","category":"RATE_LIMITS"}'));
SELECT * FROM pg_temp.page(integration.hubspot_interpret_response(pg_temp.ctx('hubspot'), 'pull', 400, '{}',
	'{"status":"error","message":"The search window of 10000 results is exceeded","category":"VALIDATION_ERROR"}'));

------------------------------------------------------------------------------------------
-- Odoo
------------------------------------------------------------------------------------------

-- Credentials: the API key alone; the database and uid are settings.  (Rolled back, the
-- connectors' ids left as they were: the files after this one count them.)
SELECT last_value AS conn_last, is_called AS conn_called FROM integration.connectors_id_seq \gset
BEGIN;
SET ROLE integration_test_app;
SET integration.tenant_id = 'pulls-a';
SELECT kind, credentials, settings
  FROM integration.create_connector('odoo', 'erp', 'https://erp.example',
	'{"api_key": "0123456789abcdef0123456789abcdef01234567"}', '{"database": "prod", "uid": 2}');
ROLLBACK;
SET ROLE integration_test_app;
SET integration.tenant_id = 'pulls-a';
SELECT integration.create_connector('odoo', 'erp2', 'https://erp.example',
	'{"database": "prod", "uid": "2", "api_key": "k"}', '{}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
RESET ROLE;
SELECT setval('integration.connectors_id_seq', :conn_last, :'conn_called') \gset

-- json:<pointer>: the caller puts the credential where the adapter put a placeholder; a
-- body without a value there, or no body, is refused before anything is sent.  (A probe
-- kind and connector, rolled back.)
SELECT last_value AS conn_last, is_called AS conn_called FROM integration.connectors_id_seq \gset
\set ON_ERROR_ROLLBACK on
BEGIN;
CREATE FUNCTION public.jp_build(c integration.connector_context, operation text, payload jsonb, key text)
	RETURNS integration.connector_request LANGUAGE sql
	AS $$ SELECT ('POST', '/rpc', NULL, NULL, c.settings ->> 'body')::integration.connector_request $$;
CREATE FUNCTION public.jp_judge(c integration.connector_context, operation text, status integer,
								headers jsonb, body text)
	RETURNS integration.connector_outcome LANGUAGE sql
	AS $$ SELECT ('succeeded', NULL, NULL, NULL)::integration.connector_outcome $$;
SELECT name, auth FROM integration.register_connector_kind('json_probe', 'json:/params/args/2(key)', 'none',
	build_request => 'public.jp_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'public.jp_judge(integration.connector_context, text, integer, jsonb, text)');
SET integration.tenant_id = 'pulls-b';
SELECT id AS probe FROM integration.create_connector('json_probe', 'probe', 'https://rpc.example',
	'{"key": "k-0123456789"}', '{"body": "{\"params\": {\"args\": [\"db\", 2]}}"}') \gset
SELECT * FROM integration.test_connector(:probe);
SELECT (integration.update_connector(:probe, settings => '{"body": "[1, 2, 3]"}')).kind;
SELECT * FROM integration.test_connector(:probe);
SELECT (integration.update_connector(:probe, settings => '{}')).kind;
SELECT * FROM integration.test_connector(:probe);
ROLLBACK;
\set ON_ERROR_ROLLBACK off
SELECT setval('integration.connectors_id_seq', :conn_last, :'conn_called') \gset

-- Every request is execute_kw; the key's place holds a placeholder the caller replaces.
SELECT * FROM pg_temp.req('odoo', 'test', '{}', '{"database": "prod", "uid": 2}');
SELECT * FROM pg_temp.req('odoo', 'create', '{"model": "sale.order", "values": {"partner_id": 7, "order_line": [[0, 0, {"product_id": 3, "product_uom_qty": 2, "price_unit": 9.5}]]}}', '{"database": "prod", "uid": 2}');
SELECT * FROM pg_temp.req('odoo', 'write', '{"model": "sale.order", "id": 12, "values": {"order_line": [[1, 40, {"product_uom_qty": 3}], [2, 41, 0]]}}', '{"database": "prod", "uid": 2}');
-- What a call cannot be.
SELECT * FROM pg_temp.req('odoo', 'test', '{}', '{"database": "prod"}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
SELECT * FROM pg_temp.req('odoo', 'create', '{"model": "Sale Order", "values": {}}', '{"database": "prod", "uid": 2}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
SELECT * FROM pg_temp.req('odoo', 'write', '{"model": "sale.order", "ids": [], "values": {}}', '{"database": "prod", "uid": 2}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE
SELECT * FROM pg_temp.req('odoo', 'unlink', '{}', '{"database": "prod", "uid": 2}');
\echo :LAST_ERROR_SQLSTATE :LAST_ERROR_MESSAGE

-- Pull: write_date >= the cursor's second, oldest first, id breaking ties; then one
-- second's records by id; then the seconds after it.
SELECT * FROM pg_temp.req('odoo', 'pull', '{"stream": "sale.order", "since": "2025-03-01T12:00:30.75Z", "page": null}', '{"database": "prod", "uid": 2}');
SELECT * FROM pg_temp.req('odoo', 'pull', '{"stream": "res.partner", "since": null, "page": {"second": "2025-03-01 12:00:31", "id": 140}}', '{"database": "prod", "uid": 2, "pull_fields": {"res.partner": ["name"]}}');
SELECT * FROM pg_temp.req('odoo', 'pull', '{"stream": "product.product", "since": null, "page": {"from": "2025-03-01 12:00:32"}}', '{"database": "prod", "uid": 2}');
CREATE FUNCTION pg_temp.odoo_body(rpc_id bigint, ids integer[], at timestamp, per_second integer)
	RETURNS text LANGUAGE sql AS $$
	SELECT jsonb_build_object('jsonrpc', '2.0', 'id', rpc_id, 'result',
			 coalesce((SELECT jsonb_agg(jsonb_build_object('id', i, 'name', 'S' || i,
						 'write_date', to_char(at + ((o - 1) / per_second) * interval '1 second', 'YYYY-MM-DD HH24:MI:SS')) ORDER BY o)
				 FROM unnest(ids) WITH ORDINALITY AS u(i, o)), '[]'))::text $$;
-- A full page over several seconds: from its last second.
SELECT * FROM pg_temp.page(integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}',
	pg_temp.odoo_body(0, ARRAY(SELECT generate_series(1, 100)), '2025-03-01 12:00:30', 60)));
-- A full page in one second (ids out of order, as the fractions sorted them): that
-- second by id from 0; a full page of it: on from its last id; its end: the next second.
SELECT * FROM pg_temp.page(integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}',
	pg_temp.odoo_body(0, ARRAY(SELECT 201 - generate_series(1, 100)), '2025-03-01 12:00:31', 1000)));
SELECT * FROM pg_temp.page(integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}',
	pg_temp.odoo_body(extract(epoch FROM timestamptz '2025-03-01 12:00:31Z')::bigint, ARRAY(SELECT generate_series(101, 200)), '2025-03-01 12:00:31', 1000)));
SELECT * FROM pg_temp.page(integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}',
	pg_temp.odoo_body(extract(epoch FROM timestamptz '2025-03-01 12:00:31Z')::bigint, ARRAY[201, 202], '2025-03-01 12:00:31', 1000)));
-- Fewer than a page: the run is over.
SELECT * FROM pg_temp.page(integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}',
	pg_temp.odoo_body(0, ARRAY[5, 6], '2025-03-01 12:00:30', 1)));
-- create, write; the error envelope: retried or failed, the traceback left out.
SELECT * FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'create', 200, '{}', '{"jsonrpc":"2.0","id":1,"result":42}');
SELECT * FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'write', 200, '{}', '{"jsonrpc":"2.0","id":1,"result":true}');
SELECT outcome, retry_after, result, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'write', 200, '{}',
	'{"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"psycopg2.errors.SerializationFailure","debug":"Traceback ...","message":"could not serialize access due to concurrent update\n","arguments":["could not serialize access due to concurrent update\n"],"context":{}}}}');
SELECT outcome, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'create', 200, '{}',
	'{"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.ValidationError","debug":"Traceback ...","message":"The operation cannot be completed: a mandatory field is not set.","arguments":[],"context":{}}}}');
SELECT outcome, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'test', 200, '{}',
	'{"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.AccessDenied","debug":"","message":"Access Denied","arguments":[],"context":{}}}}');
SELECT outcome, retry_after, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 502, '{}', '<html>Bad Gateway</html>');
SELECT outcome, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}', '<html>login</html>');
SELECT outcome, error FROM integration.odoo_interpret_response(pg_temp.ctx('odoo'), 'pull', 200, '{}', '{"jsonrpc":"2.0","id":0,"result":42}');

------------------------------------------------------------------------------------------
-- The kinds' streams, and the records their webhooks are about (so that a change that
-- comes both ways is handed on once): the stream, id, version and payload.
------------------------------------------------------------------------------------------

SELECT name, pull_streams, record_function
  FROM integration.connector_kinds
 WHERE name IN ('woocommerce', 'stripe', 'hubspot', 'odoo') ORDER BY name;
SELECT t AS topic, (r).stream, (r).external_id, (r).updated_at, (r).payload IS NOT NULL AS payload
  FROM (VALUES ('order.updated', '{"id": 727, "status": "processing", "date_modified_gmt": "2026-12-01T10:00:00"}'::jsonb),
			   ('product.created', '{"id": 15, "date_created_gmt": "2026-12-01T10:00:00", "date_modified_gmt": "2026-12-01T10:00:00"}'),
			   ('coupon.restored', '{"id": 3, "date_modified_gmt": "2026-12-01T10:00:01"}'),
			   ('order.deleted', '{"id": 727}'),
			   ('action.woocommerce_order_status_completed', '{"action": "woocommerce_order_status_completed", "arg": 727}')) AS v(t, p),
	   LATERAL (SELECT integration.woocommerce_record(pg_temp.ctx('woocommerce'), t, p) AS r) AS x;
SELECT (r).stream, (r).external_id, (r).updated_at
  FROM (SELECT integration.stripe_record(pg_temp.ctx('stripe'), 'payment_intent.succeeded',
			'{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "created": 1740830431}') AS r) AS x;
SELECT t AS topic, (r).stream, (r).external_id, (r).updated_at
  FROM (VALUES ('contact.propertyChange', '{"eventId": 100, "subscriptionType": "contact.propertyChange", "objectId": 123, "propertyName": "email", "occurredAt": 1740830431500}'::jsonb),
			   ('company.creation', '{"eventId": 101, "subscriptionType": "company.creation", "objectId": 5001, "occurredAt": 1740830431501}'),
			   ('deal.propertyChange', '{"eventId": 102, "subscriptionType": "deal.propertyChange", "objectId": 9, "occurredAt": 1740830431502}'),
			   ('contact.deletion', '{"eventId": 103, "subscriptionType": "contact.deletion", "objectId": 123, "occurredAt": 1740830431503}'),
			   ('ticket.creation', '{"eventId": 104, "subscriptionType": "ticket.creation", "objectId": 77, "occurredAt": 1740830431504}')) AS v(t, p),
	   LATERAL (SELECT integration.hubspot_record(pg_temp.ctx('hubspot'), t, p) AS r) AS x;
