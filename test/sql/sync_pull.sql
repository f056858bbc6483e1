-- Sync (incremental pull): the catalogue's pull streams and record functions, the streams
-- of connectors and their settings, sync_now() and its errors, the shopify kind's pull
-- requests and pages, and the page-ended trigger, driven by completing pull calls by
-- hand as the worker would (it is off here: test/regress.conf); the gate between pulls
-- and webhooks.  test/t/025_sync.pl runs it all against the loopback Shopify server.
-- The connectors' ids are put back as they were at the end, for the files after this.
\set SHOW_CONTEXT never
SELECT coalesce(last_value::text, '') AS connectors_last FROM pg_sequences
 WHERE schemaname = 'integration' AND sequencename = 'connectors_id_seq' \gset
ALTER TABLE integration.connectors ALTER COLUMN id RESTART WITH 3001;
ALTER TABLE integration.connector_calls ALTER COLUMN id RESTART WITH 3001;

------------------------------------------------------------------------------------------
-- The catalogue.
------------------------------------------------------------------------------------------
SELECT name, pull_streams, record_function FROM integration.connector_kinds
 WHERE pull_streams IS NOT NULL OR record_function IS NOT NULL ORDER BY name;

CREATE FUNCTION public.sync_build(c integration.connector_context, operation text, payload jsonb,
								  idempotency_key text)
	RETURNS integration.connector_request LANGUAGE sql STABLE
AS $$ SELECT ('GET', '/items', NULL, NULL, NULL)::integration.connector_request $$;
CREATE FUNCTION public.sync_normalise(c integration.connector_context, headers jsonb, body text)
	RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
AS $$ SELECT NULL::text, 'items/updated', NULL::text, body::jsonb $$;
CREATE FUNCTION public.sync_record(c integration.connector_context, topic text, payload jsonb)
	RETURNS integration.external_record LANGUAGE sql STABLE
AS $$ SELECT ROW(coalesce(payload ->> 'stream', 'items'), payload ->> 'id', (payload ->> 'updated_at')::timestamptz, payload)::integration.external_record $$;
CREATE FUNCTION public.sync_record_bad(c integration.connector_context, topic text, payload jsonb)
	RETURNS jsonb LANGUAGE sql STABLE
AS $$ SELECT payload $$;

-- Streams need request adapters; names are words of lower-case letters; distinct.
SELECT name, pull_streams FROM integration.register_connector_kind('sync_kind', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items,sale.order}',
	record => 'public.sync_record(integration.connector_context, text, jsonb)');
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	pull_streams => '{items}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{Items,items}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items,items}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items}', record => 'public.sync_record(integration.connector_context, text, jsonb)');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items}', record => 'public.sync_record_bad(integration.connector_context, text, jsonb)');
\echo :LAST_ERROR_SQLSTATE
-- records_as_pulled: with a record function only; replace => true sets it, and back.
SELECT integration.register_connector_kind('sync_bad', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items}', records_as_pulled => true);
\echo :LAST_ERROR_SQLSTATE
SELECT name, records_as_pulled FROM integration.register_connector_kind('sync_kind', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items,sale.order}',
	record => 'public.sync_record(integration.connector_context, text, jsonb)',
	replace => true, records_as_pulled => true);
SELECT name, records_as_pulled FROM integration.register_connector_kind('sync_kind', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items,sale.order}',
	record => 'public.sync_record(integration.connector_context, text, jsonb)',
	replace => true);
\set VERBOSITY terse
UPDATE integration.connector_kinds SET pull_streams = '{}' WHERE name = 'sync_kind';
UPDATE integration.connector_kinds SET build_request_function = NULL, interpret_response_function = NULL
 WHERE name = 'sync_kind';
\set VERBOSITY default

------------------------------------------------------------------------------------------
-- Connectors' streams and settings.
------------------------------------------------------------------------------------------
SET ROLE integration_test_app;
SET integration.tenant_id = 'sync-a';
SELECT id AS shop, kind FROM integration.create_connector('shopify', 'shop', 'https://shop.myshopify.example',
	'{"access_token": "shpat_0123456789abcdef0123"}', '{"sync_overlap": 60}', 'shopify-client-secret') \gset
\echo :shop
-- One row per stream, idle, first run one interval (default 300 s) after creation.
SELECT stream, status, cursor_at, queued_by,
	   next_run_at BETWEEN now() + interval '299 s' AND now() + interval '301 s' AS in_five_minutes
  FROM integration.sync_streams ORDER BY stream;

-- Settings: durations in seconds or interval text, from 0; streams of the kind.
SELECT integration.create_connector('shopify', 'shop2', 'https://shop.myshopify.example',
	'{"access_token": "x"}', '{"sync_interval": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('shopify', 'shop2', 'https://shop.myshopify.example',
	'{"access_token": "x"}', '{"sync_overlap": "soon"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('shopify', 'shop2', 'https://shop.myshopify.example',
	'{"access_token": "x"}', '{"sync_streams": "orders"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('shopify', 'shop2', 'https://shop.myshopify.example',
	'{"access_token": "x"}', '{"sync_streams": ["orders", "refunds"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.create_connector('generic', 'plain', 'https://api.example', '{"token": "t"}',
	'{"sync_streams": ["orders"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.update_connector(:shop, settings => '{"sync_interval": "400 days"}');
\echo :LAST_ERROR_SQLSTATE

-- A stream left out loses its row; the interval counts from the last run (none yet).
SELECT id FROM integration.update_connector(:shop,
	settings => '{"sync_overlap": 60, "sync_streams": ["orders", "products"], "sync_interval": "10 minutes"}');
SELECT stream, next_run_at BETWEEN now() + interval '599 s' AND now() + interval '601 s' AS in_ten_minutes
  FROM integration.sync_streams ORDER BY stream;
SELECT id FROM integration.update_connector(:shop, settings => '{"sync_overlap": 60, "sync_interval": 0}');
SELECT stream, next_run_at FROM integration.sync_streams ORDER BY stream;

------------------------------------------------------------------------------------------
-- sync_now() and its errors.
------------------------------------------------------------------------------------------
SELECT id AS plain FROM integration.create_connector('generic', 'plain', 'https://api.example', '{"token": "t"}') \gset
SELECT * FROM integration.sync_now(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.sync_now(9999);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.sync_now(:plain);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM integration.sync_now(:shop, 'refunds');
\echo :LAST_ERROR_SQLSTATE
-- Another tenant's connector is not found, as by show_connector().
SET integration.tenant_id = 'sync-b';
SELECT * FROM integration.sync_now(:shop);
\echo :LAST_ERROR_SQLSTATE
SET integration.tenant_id = 'sync-a';
-- A pull call is a run's page: call_connector() refuses the operation.
SELECT integration.call_connector(:shop, 'pull', '{"stream": "orders"}');
\echo :LAST_ERROR_SQLSTATE

-- The orders stream runs: its first page is a pull call, since null (never pulled).
SELECT stream, status, run_pages, current_call_id FROM integration.sync_now(:shop, 'orders');
SELECT id, operation, payload, status, sync_stream, queued_by FROM integration.connector_calls ORDER BY id;
-- Again: a running stream is left running; the other streams start.
SELECT stream, status, current_call_id FROM integration.sync_now(:shop);
SELECT id, payload ->> 'stream' AS stream FROM integration.connector_calls ORDER BY id;

-- The request the shopify kind builds for a first page, and for a next one.
SELECT r.method, r.path, r.query, r.headers
  FROM integration.connector_calls k, integration.connectors c,
	   LATERAL integration.shopify_build_request(integration._connector_context(c), k.operation, k.payload, k.idempotency_key) r
 WHERE k.id = 3001 AND c.id = :shop;
SELECT r.path, r.query
  FROM integration.connectors c,
	   LATERAL integration.shopify_build_request(integration._connector_context(c), 'pull',
		'{"stream": "customers", "since": "2025-01-01T00:00:00Z", "page": null}', 'k') r
 WHERE c.id = :shop;
SELECT r.path, r.query
  FROM integration.connectors c,
	   LATERAL integration.shopify_build_request(integration._connector_context(c), 'pull',
		'{"stream": "orders", "since": "2025-01-01T00:00:00Z", "page": {"page_info": "eyJs-_", "limit": "250"}}', 'k') r
 WHERE c.id = :shop;
SELECT integration.shopify_build_request(integration._connector_context(c), 'pull', '{"stream": "refunds"}', 'k')
  FROM integration.connectors c WHERE c.id = :shop;
\echo :LAST_ERROR_SQLSTATE

-- A page as the shopify kind reads it: the list's orders as they came (items, their id
-- and updated_at at those keys, the topic of their webhooks), next_page from the Link
-- header's rel="next" URL (percent-decoded), and a wait when the bucket is nearly full.
SELECT o.outcome, o.result -> 'next_page' AS next_page, o.result -> 'wait' AS wait,
	   jsonb_path_query_array(o.result, '$.items[*].id') AS ids,
	   o.result -> 'item_id' AS item_id, o.result -> 'item_updated_at' AS item_updated_at,
	   o.result ->> 'item_topic' AS topic, o.result #>> '{items,0,updated_at}' AS updated_at
  FROM integration.connectors c,
	   LATERAL integration.shopify_interpret_response(integration._connector_context(c), 'pull', 200,
		'{"link": "<https://shop.myshopify.example/admin/api/2025-01/orders.json?limit=250&page_info=abc%2Ddef>; rel=\"previous\", <https://shop.myshopify.example/admin/api/2025-01/orders.json?limit=250&page_info=nExT_1>; rel=\"next\"", "x-shopify-shop-api-call-limit": "39/40"}',
		'{"orders": [{"id": 5000000000001, "updated_at": "2025-01-01T00:00:00-05:00"}, {"id": 5000000000002, "updated_at": "2025-01-01T00:00:01-05:00"}]}') o
 WHERE c.id = :shop;
SELECT o.result -> 'next_page' AS next_page, o.result -> 'wait' AS wait, o.result ->> 'item_topic' AS topic
  FROM integration.connectors c,
	   LATERAL integration.shopify_interpret_response(integration._connector_context(c), 'pull', 200,
		'{"x-shopify-shop-api-call-limit": "3/40"}', '{"products": [{"id": 7, "updated_at": "2025-01-01T00:00:00Z"}]}') o
 WHERE c.id = :shop;
SELECT o.outcome, o.retry_after
  FROM integration.connectors c,
	   LATERAL integration.shopify_interpret_response(integration._connector_context(c), 'pull', 429,
		'{"retry-after": "2.0"}', '{"errors": "Exceeded 2 calls per second for api client."}') o
 WHERE c.id = :shop;
RESET ROLE;

-- A record's content hash is SHA-256 of its payload's text, byte for byte: every
-- escape, numbers as numeric prints them, nesting, a scalar alone, UTF-8.
SELECT count(*) AS payloads,
	   count(*) FILTER (WHERE integration._content_hash(p) = sha256(convert_to(p::text, 'UTF8'))) AS same_hash
  FROM unnest(ARRAY[
	'{}', '[]', '3', '"x"', 'null', 'true', 'false', '-0.50', '1e3', '123456789012345678901234567890.000',
	'{"a": [1, {"b": [false, null, "é ü 中"]}, -1.5e3], "": {}, "k": []}',
	'["\b\f\n\r\t\"\\/", "\u0001\u001f\u007f", "\ud83d\ude00", "tail\\"]',
	'{"z": 1, "a": {"y": [[], [[]], {}], "x": "x"}, "aa": null}',
	'[{"id": 5000000000001, "total_price": "10.00", "line_items": [{"quantity": 1, "price": 1.10}]}]'
	]::jsonb[]) AS p;

-- A page's records as the page trigger holds them (src/sync_page.c): one per id, the
-- latest version and of two as late the first seen, in the order of the ids' bytes
-- (COLLATE "C", the keys' order), a number as id read as its text, the default topic
-- unless the record has its own, with the payload's content hash.
SELECT p.bad, p.seen, p.ids, r.n, r.id, r.updated_at AT TIME ZONE 'UTC' AS updated_at_utc,
	   r.payload, r.topic, r.hash = sha256(convert_to(r.payload::text, 'UTF8')) AS hashed
  FROM integration._sync_page_records('{"records": [
			{"id": "b", "updated_at": "2025-01-01T00:00:01Z", "payload": {"v": 1}},
			{"id": "a", "updated_at": "2025-01-01T00:00:00Z", "payload": {"v": 2}, "topic": "t/own"},
			{"id": "b", "updated_at": "2025-01-01T00:00:02Z", "payload": {"v": 3}},
			{"id": "B", "updated_at": "2025-01-01T00:00:00Z", "payload": {"v": 4}},
			{"id": "b", "updated_at": "2025-01-01T01:00:02+01:00", "payload": {"v": 5}},
			{"id": "é", "updated_at": "2025-01-01T00:00:00Z", "payload": {"v": 6}},
			{"id": "ab", "updated_at": "2025-01-01T00:00:00Z", "payload": {"v": 7}},
			{"id": 7, "updated_at": "2025-01-01T00:00:00Z", "payload": null}]}',
		 'orders/updated', 'unused', NULL, NULL) p, unnest(p.recs) r
 ORDER BY r.id COLLATE "C";
-- The first entry that is not a record names itself, and nothing is held; an id has 1
-- to 255 characters (not bytes), updated_at is a string, a payload is there.
SELECT c.what, p.bad, p.seen, p.recs IS NULL AS no_recs, p.ids IS NULL AS no_ids
  FROM (VALUES
		('none', '{"records": []}'::jsonb),
		('255 two-byte characters', jsonb_build_object('records', jsonb_build_array(
			jsonb_build_object('id', repeat('é', 255), 'updated_at', '2025-01-01', 'payload', '{}')))),
		('256 characters', jsonb_build_object('records', jsonb_build_array(
			jsonb_build_object('id', 'x', 'updated_at', '2025-01-01', 'payload', '{}'),
			jsonb_build_object('id', repeat('x', 256), 'updated_at', '2025-01-01', 'payload', '{}')))),
		('empty id third', '{"records": [{"id": "x", "updated_at": "2025-01-01", "payload": {}},
			{"id": "x", "updated_at": "2025-01-01", "payload": {}}, {"id": "", "updated_at": "2025-01-01", "payload": {}},
			{"id": null, "updated_at": "2025-01-01", "payload": {}}]}'),
		('updated_at a number', '{"records": [{"id": "x", "updated_at": 5, "payload": {}}]}'),
		('no payload', '{"records": [{"id": "x", "updated_at": "2025-01-01"}]}'),
		('not an object', '{"records": [3]}')) AS c(what, page),
	   integration._sync_page_records(c.page, 'orders/updated', 'unused', NULL, NULL) p;
-- Items, the platform's objects: the id and updated_at at their paths, the item itself
-- the payload, the page's item topic; without a path, no item is a record.
SELECT p.bad, p.seen, p.ids, r.n, r.payload, r.topic
  FROM integration._sync_page_records('{"items": [{"x": {"id": 5}, "at": "2025-01-01"},
										{"x": {"id": "5"}, "at": "2025-01-02"}, {"x": {"id": 4}, "at": "2025-01-01"}]}',
									  'orders/updated', 'products/update', '{x,id}', '{at}') p,
	   unnest(p.recs) r;
SELECT p.bad, p.seen FROM integration._sync_page_records('{"items": [{"id": 5, "at": "2025-01-01"}]}',
														 'orders/updated', 'products/update', NULL, '{at}') p;

------------------------------------------------------------------------------------------
-- Pages, as the worker records them: each record through the gate, each change an
-- inbound event, the next page queued, the cursor moved at the end.
------------------------------------------------------------------------------------------
-- Completes a pull call as the worker would (src/call_store.c).
CREATE FUNCTION public.sync_complete(call_id bigint, status text, result jsonb, error text DEFAULT NULL)
	RETURNS void LANGUAGE sql
AS $$
	UPDATE integration.connector_calls
	   SET status = sync_complete.status, attempts = attempts + 1, next_attempt_at = NULL,
		   result = sync_complete.result, last_error = sync_complete.error, finished_at = now(),
		   last_status_code = CASE WHEN sync_complete.status = 'succeeded' THEN 200 ELSE 500 END
	 WHERE id = call_id
$$;
CREATE FUNCTION public.sync_order(id bigint, updated_at text, note text DEFAULT NULL) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
AS $$
	SELECT jsonb_build_object('id', id::text, 'updated_at', updated_at, 'topic', 'orders/updated',
		'payload', jsonb_build_object('id', id, 'updated_at', updated_at, 'note', note))
$$;
CREATE FUNCTION public.sync_call(connector_id bigint, stream text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT current_call_id FROM integration.sync_streams s WHERE s.connector_id = $1 AND s.stream = $2 $$;
-- The state the tests look at.
CREATE VIEW public.sync_view AS
	SELECT stream, status, cursor_at, run_since, run_high, run_page, current_call_id,
		   runs, pages, records_seen, records_changed, run_pages, run_records_seen,
		   run_records_changed, errors, last_error, next_run_at IS NOT NULL AS scheduled
	  FROM integration.sync_streams WHERE connector_id = :shop ORDER BY stream;
SET TIME ZONE 'UTC';

-- Page 1 of orders: three records, one twice in the page.
SELECT public.sync_complete(3001, 'succeeded', jsonb_build_object(
	'records', jsonb_build_array(public.sync_order(1, '2025-01-01T00:00:00Z'),
								 public.sync_order(2, '2025-01-01T00:00:01Z'),
								 public.sync_order(1, '2025-01-01T00:00:00Z')),
	'next_page', '{"page_info": "p2", "limit": "250"}'::jsonb, 'wait', 2));
SELECT * FROM public.sync_view WHERE stream = 'orders';
SELECT external_id, object_id, topic, event, payload ->> 'id' AS id FROM integration.inbound_events
 WHERE connector_id = :shop ORDER BY id;
SELECT stream, external_id, external_updated_at, source FROM integration.external_records
 WHERE connector_id = :shop ORDER BY 1, 2;
-- The next page waits as asked, with the same since.
SELECT id, payload, sync_stream, next_attempt_at BETWEEN now() + interval '1.9 s' AND now() + interval '2.1 s' AS waits
  FROM integration.connector_calls WHERE id = public.sync_call(:shop, 'orders');
-- Recording the same outcome again does nothing: the call is not the run's any more.
UPDATE integration.connector_calls SET status = 'pending', next_attempt_at = now(), finished_at = NULL WHERE id = 3001;
SELECT public.sync_complete(3001, 'succeeded', '{"records": [], "next_page": null}');
SELECT stream, status, pages, current_call_id FROM public.sync_view WHERE stream = 'orders';

-- Page 2, the last: order 2 again unchanged, order 1 changed, order 3 new.
SELECT public.sync_complete(3004, 'succeeded', jsonb_build_object(
	'records', jsonb_build_array(public.sync_order(2, '2025-01-01T00:00:01Z'),
								 public.sync_order(1, '2025-01-01T00:00:05Z', 'changed'),
								 public.sync_order(3, '2025-01-01T00:00:03Z')),
	'next_page', NULL));
SELECT * FROM public.sync_view WHERE stream = 'orders';
SELECT external_id, object_id, payload ->> 'note' AS note FROM integration.inbound_events
 WHERE connector_id = :shop ORDER BY id;
-- No completion event for a pull call: its records are the events.
SELECT count(*) AS call_events FROM integration.inbound_events WHERE connector_id = :shop AND event LIKE '%.call.%';

-- The second run starts at the cursor minus the overlap (60 s).
SET ROLE integration_test_app;
SET integration.tenant_id = 'sync-a';
SELECT stream, status FROM integration.sync_now(:shop, 'orders');
RESET ROLE;
SELECT payload FROM integration.connector_calls
 WHERE id = public.sync_call(:shop, 'orders');
-- The overlap brings back what was seen: nothing is a change, but order 1 changed again
-- within the same second (another content, the same updated_at): a change, whose event
-- id tells it from the first.  A version older than stored is nothing.
SELECT public.sync_complete(public.sync_call(:shop, 'orders'),
	'succeeded', jsonb_build_object(
	'records', jsonb_build_array(public.sync_order(2, '2025-01-01T00:00:01Z'),
								 public.sync_order(3, '2025-01-01T00:00:03Z'),
								 public.sync_order(3, '2025-01-01T00:00:02Z', 'older'),
								 public.sync_order(1, '2025-01-01T00:00:05Z', 'changed twice')),
	'next_page', NULL));
SELECT stream, status, cursor_at, runs, pages, records_seen, records_changed, run_pages,
	   run_records_seen, run_records_changed FROM public.sync_view WHERE stream = 'orders';
SELECT external_id, payload ->> 'note' AS note FROM integration.inbound_events
 WHERE connector_id = :shop AND external_id LIKE 'pull:orders:1:%' ORDER BY id;
SELECT external_id, external_updated_at, payload ->> 'note' AS note, source
  FROM integration.external_records WHERE connector_id = :shop AND stream = 'orders' ORDER BY external_id;

-- A page that fails ends the run with its error; the cursor stays.
SELECT public.sync_complete(public.sync_call(:shop, 'customers'),
	'failed', NULL, 'HTTP 401: [API] Invalid API key or access token');
SELECT * FROM public.sync_view WHERE stream = 'customers';
-- A page the trigger cannot read fails the call's recording (the worker then records
-- the call failed, with this error).
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"products": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"records": [{"id": "7", "payload": {}}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"records": [{"id": "7", "updated_at": "2025-01-01", "payload": {}, "topic": "products/bad topic"}]}');
\echo :LAST_ERROR_SQLSTATE
-- A page of items (the platform's objects as they came): both paths are given, and each
-- item has a text at each.
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"items": [{"id": 7}], "item_id": "id"}');
\echo :LAST_ERROR_SQLSTATE
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"items": [{"id": 7}], "records": [], "item_id": "id", "item_updated_at": "updated_at"}');
\echo :LAST_ERROR_SQLSTATE
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"items": [{"id": 7, "meta": {"at": 5}}], "item_id": "id", "item_updated_at": ["meta", "at"]}');
\echo :LAST_ERROR_SQLSTATE
-- The item is the record's payload; its id and updated_at may be nested.
SELECT public.sync_complete(public.sync_call(:shop, 'products'),
	'succeeded', '{"items": [{"id": 7, "meta": {"at": "2025-01-01T00:00:00Z"}}], "item_id": ["id"], "item_updated_at": ["meta", "at"], "item_topic": "products/update", "next_page": null}');
SELECT external_id, external_updated_at, payload FROM integration.external_records
 WHERE connector_id = :shop AND stream = 'products';
SELECT stream, status, cursor_at, runs, records_changed, errors FROM public.sync_view;
SELECT event FROM integration.inbound_events WHERE connector_id = :shop AND object_id = 'products:7';

------------------------------------------------------------------------------------------
-- Webhooks through the same gate.
------------------------------------------------------------------------------------------
SET ROLE integration_test_app;
SET integration.tenant_id = 'sync-a';
-- Order 3 as pulled (the version stored): a duplicate, nothing stored.
SELECT '{"id":3,"note":null,"updated_at":"2025-01-01T00:00:03Z"}' AS b3 \gset
SELECT integration.sign('shopify', 'shopify-client-secret', :'b3')
	   || '{"X-Shopify-Topic": "orders/updated", "X-Shopify-Event-Id": "ev-3", "X-Shopify-Webhook-Id": "wh-3"}' AS h3 \gset
SELECT * FROM integration.receive_webhook(:shop, :'h3', :'b3');
-- A later version of order 3 comes first by webhook: accepted, stored as the webhook's.
SELECT '{"id":3,"note":"paid","updated_at":"2025-01-01T00:01:00Z"}' AS b3b \gset
SELECT integration.sign('shopify', 'shopify-client-secret', :'b3b')
	   || '{"X-Shopify-Topic": "orders/paid", "X-Shopify-Event-Id": "ev-3b", "X-Shopify-Webhook-Id": "wh-3b"}' AS h3b \gset
SELECT status, event FROM integration.receive_webhook(:shop, :'h3b', :'b3b');
-- Its retry, and orders/updated of the same version: duplicates (the retry's id is the first's).
SELECT status, inbound_id IS NOT NULL AS has_id, event FROM integration.receive_webhook(:shop, :'h3b', :'b3b');
SELECT status, inbound_id IS NOT NULL AS has_id, event FROM integration.receive_webhook(:shop,
	jsonb_set(jsonb_set(:'h3b', '{X-Shopify-Topic}', '"orders/updated"'), '{X-Shopify-Event-Id}', '"ev-3c"'), :'b3b');
-- An older version arriving late: a duplicate.
SELECT '{"id":3,"note":"old","updated_at":"2025-01-01T00:00:30Z"}' AS b3c \gset
SELECT status FROM integration.receive_webhook(:shop,
	integration.sign('shopify', 'shopify-client-secret', :'b3c') || '{"X-Shopify-Topic": "orders/updated", "X-Shopify-Event-Id": "ev-3d"}', :'b3c');
-- A delete carries no updated_at: not a record, stored as before.
SELECT status, event FROM integration.receive_webhook(:shop,
	integration.sign('shopify', 'shopify-client-secret', '{"id":3}') || '{"X-Shopify-Topic": "orders/delete", "X-Shopify-Event-Id": "ev-3e"}', '{"id":3}');
SELECT external_id, external_updated_at, payload ->> 'note' AS note, source
  FROM integration.external_records WHERE connector_id = :shop AND stream = 'orders' AND external_id = '3';
RESET ROLE;
-- The pull then brings the version the webhook brought: not a change; the pulled copy
-- replaces the stored one.
SET ROLE integration_test_app;
SELECT stream, status FROM integration.sync_now(:shop, 'orders');
RESET ROLE;
SELECT public.sync_complete(public.sync_call(:shop, 'orders'),
	'succeeded', jsonb_build_object(
	'records', jsonb_build_array(jsonb_build_object('id', '3', 'updated_at', '2025-01-01T00:01:00Z',
		'payload', '{"id": 3, "note": "paid", "updated_at": "2025-01-01T00:01:00Z", "pulled": true}'::jsonb)),
	'next_page', NULL));
SELECT stream, cursor_at, run_records_seen, run_records_changed FROM public.sync_view WHERE stream = 'orders';
SELECT external_id, payload ->> 'pulled' AS pulled, source FROM integration.external_records
 WHERE connector_id = :shop AND stream = 'orders' AND external_id = '3';
SELECT count(*) AS order_3_events FROM integration.inbound_events WHERE connector_id = :shop AND payload ->> 'id' = '3';

-- A record function that names a stream the kind does not pull: the request is rejected.
SET ROLE integration_test_app;
SELECT id AS items FROM integration.create_connector('sync_kind', 'items', 'https://items.example', '{}') \gset
SELECT status, event FROM integration.receive_webhook(:items, '{}', '{"id": "a", "updated_at": "2025-01-01T00:00:00Z"}');
SELECT status, inbound_id IS NOT NULL AS has_id, event FROM integration.receive_webhook(:items, '{}', '{"id": "a", "updated_at": "2025-01-01T00:00:00Z"}');
SELECT status, event FROM integration.receive_webhook(:items, '{}', '{"id": "b", "stream": "nope", "updated_at": "2025-01-01T00:00:00Z"}');
SELECT context ->> 'reason' AS reason, context ->> 'detail' AS detail FROM integration.integration_logs
 WHERE event = 'inbound.rejected' ORDER BY id DESC LIMIT 1;
SELECT stream, external_id, source FROM integration.external_records WHERE connector_id = :items;
-- The view, through row-level security.
SELECT connector_id, connector_name, kind, stream, status, runs, pages, records_seen, records_changed,
	   errors, last_error FROM integration.sync_state ORDER BY connector_id, stream;
SET integration.tenant_id = 'sync-b';
SELECT count(*) AS other_tenant_streams FROM integration.sync_state;
SELECT count(*) AS other_tenant_records FROM integration.external_records;

-- Whoever writes a stream's queued_by names their own role.
SET integration.tenant_id = 'sync-a';
UPDATE integration.sync_streams SET queued_by = 'postgres' WHERE connector_id = :items AND stream = 'items';
SELECT stream, queued_by FROM integration.sync_streams WHERE connector_id = :items ORDER BY stream;
RESET ROLE;
-- A kind registered again with other streams: its connectors' streams follow.
SELECT name, pull_streams FROM integration.register_connector_kind('sync_kind', 'none', 'none',
	normalise => 'public.sync_normalise(integration.connector_context, jsonb, text)',
	build_request => 'public.sync_build(integration.connector_context, text, jsonb, text)',
	interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
	pull_streams => '{items,invoices}',
	record => 'public.sync_record(integration.connector_context, text, jsonb)', replace => true);
SELECT stream, status, queued_by FROM integration.sync_streams WHERE connector_id = :items ORDER BY stream;
SET ROLE integration_test_app;

-- A deleted connector pulls nothing more: its streams go with the delete, and a run
-- with them.  A run of items under way, its first page's call queued:
SET integration.tenant_id = 'sync-a';
SELECT id FROM integration.update_connector(:items, settings => '{"sync_interval": 60}');
SELECT stream, next_run_at IS NOT NULL AS scheduled FROM integration.sync_streams WHERE connector_id = :items ORDER BY stream;
SELECT stream, status FROM integration.sync_now(:items, 'items');
SELECT public.sync_call(:items, 'items') AS items_call \gset
SELECT integration.delete_connector(:items);
SELECT count(*) AS streams_left FROM integration.sync_streams WHERE connector_id = :items;
SELECT count(*) AS shown FROM integration.sync_state WHERE connector_id = :items;
SELECT integration.sync_now(:items);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- The page in flight at the delete comes back with a record and a next page: it is not
-- processed, and no page is queued after it.  Nor does the page name the worker's next
-- call: next_call_id is the trigger's word alone, never the adapter's.
SELECT public.sync_complete(:items_call, 'succeeded', jsonb_build_object(
	'records', jsonb_build_array(jsonb_build_object('id', 'z', 'updated_at', '2025-02-01T00:00:00Z',
													'payload', '{"id": "z"}'::jsonb)),
	'next_page', '{"page": 2}'::jsonb, 'next_call_id', 1));
SELECT id = :items_call AS the_page, status, result ? 'next_call_id' AS names_a_next_call
  FROM integration.connector_calls WHERE connector_id = :items ORDER BY id;
SELECT stream, external_id FROM integration.external_records WHERE connector_id = :items ORDER BY 1, 2;
SELECT count(*) AS events_of_z FROM integration.inbound_events WHERE connector_id = :items AND object_id = 'items:z';

-- Its synced records go in the retention pass, integration.retention_delivered (7 days)
-- after the delete (src/retention_connectors.c), a window of 100 at a time: 250 more
-- here.  A live connector's records stay, however old.
INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
										  external_updated_at, payload, content_hash, source)
SELECT 'sync-a', :items, 'invoices', 'inv-' || n, '2025-01-01', '{}', sha256(''), 'pull'
  FROM generate_series(1, 250) AS n;
UPDATE integration.external_records SET synced_at = now() - interval '1 year' WHERE connector_id = :shop;
SELECT count(*) AS shop_records_before FROM integration.external_records WHERE connector_id = :shop;
SELECT external_records AS removed_just_deleted FROM integration.purge_expired();
UPDATE integration.connectors SET deleted_at = now() - interval '6 days' WHERE id = :items;
SELECT external_records AS removed_6_days_after FROM integration.purge_expired();
UPDATE integration.connectors SET deleted_at = now() - interval '8 days' WHERE id = :items;
BEGIN;
SET LOCAL integration.retention_delivered = 0;
SELECT external_records AS removed_kept_forever FROM integration.purge_expired();
ROLLBACK;
SELECT external_records AS removed_8_days_after FROM integration.purge_expired();
SELECT count(*) AS items_records FROM integration.external_records WHERE connector_id = :items;
SELECT count(*) AS shop_records_after FROM integration.external_records WHERE connector_id = :shop;

-- Records and events refer to a connector of their own tenant, as foreign keys would
-- have them (checked a statement at a time, src/connector_references.c): not to one
-- that does not exist or is another tenant's, and a connector they refer to keeps its
-- key and is neither deleted nor truncated.
\set VERBOSITY terse
INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
										  external_updated_at, payload, content_hash, source)
VALUES ('sync-a', :shop, 'orders', 'ref-1', '2025-01-01', '{}', sha256(''), 'pull'),
	   ('sync-a', 999999, 'orders', 'ref-2', '2025-01-01', '{}', sha256(''), 'pull');
-- The error names the table and the check, as a foreign key's names its constraint
-- (what client libraries read).
DO $$
DECLARE
	t text;
	c text;
	n text;
BEGIN
	INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
											  external_updated_at, payload, content_hash, source)
	VALUES ('sync-a', 999999, 'orders', 'ref-2', '2025-01-01', '{}', sha256(''), 'pull');
EXCEPTION WHEN foreign_key_violation THEN
	GET STACKED DIAGNOSTICS n = SCHEMA_NAME, t = TABLE_NAME, c = CONSTRAINT_NAME;
	RAISE NOTICE 'schema %, table %, constraint %', n, t, c;
END
$$;
INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event, payload)
VALUES ('sync-b', :shop, 'ref-3', 'orders/updated', 'shopify.orders.updated', '{}');
UPDATE integration.external_records SET connector_id = 999999
 WHERE connector_id = :shop AND external_id = (SELECT min(external_id) FROM integration.external_records
												WHERE connector_id = :shop);
UPDATE integration.inbound_events SET connector_id = 999999
 WHERE id = (SELECT min(id) FROM integration.inbound_events WHERE connector_id = :shop);
BEGIN;
TRUNCATE integration.connectors CASCADE;
ROLLBACK;
-- (The foreign keys of its calls, streams and handlers are real ones.)
BEGIN;
DELETE FROM integration.connector_calls WHERE connector_id = :shop;
DELETE FROM integration.sync_streams WHERE connector_id = :shop;
DELETE FROM integration.inbound_handlers WHERE connector_id = :shop;
SAVEPOINT s;
DELETE FROM integration.connectors WHERE id = :shop;
ROLLBACK TO s;
SAVEPOINT s;
UPDATE integration.connectors SET tenant_id = 'sync-b' WHERE id = :shop;
ROLLBACK TO s;
DELETE FROM integration.external_records WHERE connector_id = :shop;
SAVEPOINT s;
DELETE FROM integration.connectors WHERE id = :shop;
ROLLBACK TO s;
DELETE FROM integration.inbound_events WHERE connector_id = :shop;
DELETE FROM integration.connectors WHERE id = :shop RETURNING id = :shop AS deleted_once_unreferenced;
ROLLBACK;
-- A key that a BEFORE trigger changes, the statement naming other columns only, is
-- checked too, as a foreign key compares every updated row's old and new key.
CREATE FUNCTION public.sync_rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_TABLE_NAME = 'connectors' THEN
		NEW.tenant_id := 'sync-b';
	ELSE
		NEW.connector_id := 999999;
	END IF;
	RETURN NEW;
END
$$;
BEGIN;
CREATE TRIGGER rekey BEFORE UPDATE ON integration.external_records
	FOR EACH ROW EXECUTE FUNCTION public.sync_rekey();
CREATE TRIGGER rekey BEFORE UPDATE ON integration.inbound_events
	FOR EACH ROW EXECUTE FUNCTION public.sync_rekey();
CREATE TRIGGER rekey BEFORE UPDATE ON integration.connectors
	FOR EACH ROW EXECUTE FUNCTION public.sync_rekey();
SAVEPOINT s;
UPDATE integration.external_records SET synced_at = now() WHERE connector_id = :shop;
ROLLBACK TO s;
UPDATE integration.inbound_events SET attempts = attempts WHERE connector_id = :shop;
ROLLBACK TO s;
-- (The foreign keys of its calls, streams and handlers are real ones.)
DELETE FROM integration.connector_calls WHERE connector_id = :shop;
DELETE FROM integration.sync_streams WHERE connector_id = :shop;
DELETE FROM integration.inbound_handlers WHERE connector_id = :shop;
UPDATE integration.connectors SET name = name WHERE id = :shop;
ROLLBACK;
DROP FUNCTION public.sync_rekey();
-- Rows of an existing connector go in, in one statement or one by one.
BEGIN;
INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
										  external_updated_at, payload, content_hash, source)
SELECT 'sync-a', :shop, 'orders', 'ref-' || n, '2025-01-01', '{}', sha256(''), 'pull'
  FROM generate_series(1, 3) AS n RETURNING external_id;
UPDATE integration.inbound_events SET connector_id = :shop
 WHERE id = (SELECT min(id) FROM integration.inbound_events WHERE connector_id = :shop)
RETURNING connector_id = :shop AS same_connector;
ROLLBACK;
\set VERBOSITY default

-- Put back what the files after this expect.
DROP VIEW public.sync_view;
DROP FUNCTION public.sync_complete(bigint, text, jsonb, text), public.sync_order(bigint, text, text),
	public.sync_call(bigint, text);
RESET TIME ZONE;
SELECT setval('integration.connectors_id_seq', coalesce(nullif(:'connectors_last', '')::bigint, 1),
			  nullif(:'connectors_last', '') IS NOT NULL) > 0 AS connector_ids_put_back;
