-- The platform kinds shipped with the extension: shopify, woocommerce, stripe, hubspot
-- and adyen.  Inbound: requests signed as each platform signs them, received, stored
-- once, refused when changed; WooCommerce's unsigned ping.  Outbound: the request each
-- operation builds and the verdict on each kind of response, adapters called directly
-- (the worker and test_connector() call them the same way).  Credentials named the
-- platforms' way.
\set SHOW_CONTEXT never
ALTER TABLE integration.connectors ALTER COLUMN id RESTART WITH 2001;
ALTER TABLE integration.inbound_events ALTER COLUMN id RESTART WITH 2001;

SELECT name, auth, signature_scheme, verify_function IS NOT NULL AS own_verify,
	   normalise_function IS NOT NULL AS inbound, build_request_function IS NOT NULL AS outbound
  FROM integration.connector_kinds
 WHERE name IN ('shopify', 'woocommerce', 'stripe', 'hubspot', 'adyen') ORDER BY name;

-- The auth grammar: credential names in parentheses.
SELECT a, integration._is_auth(a) AS valid, integration._auth_style(a) AS style,
	   integration._auth_keys(a) AS keys
  FROM unnest(ARRAY['basic', 'basic(consumer_key,consumer_secret)', 'bearer(secret_key)',
					'header:X-Shopify-Access-Token(access_token)', 'query', 'none',
					'basic(a)', 'basic(a,a)', 'bearer(Key)', 'none(x)', 'query(x)', 'bearer()']) AS a;

-- Retry-After as adapters read it: seconds, with a fraction (Shopify), an HTTP date.
SELECT integration.retry_after('2.0') AS shopify, integration.retry_after('120') AS seconds,
	   integration.retry_after('1.25') AS fraction, integration.retry_after('soon') IS NULL AS not_one,
	   integration.retry_after('99999999') AS capped;

SET ROLE integration_test_app;
SET integration.tenant_id = 'kinds-a';

-- Credentials under the platforms' own names; the generic names are refused.
SELECT id, kind, credentials
  FROM integration.create_connector('shopify', 'shop1', 'https://shop1.myshopify.example',
	'{"access_token": "shpat_0123456789abcdef0123"}', '{}', 'shopify-client-secret');
SELECT integration.create_connector('shopify', 'shop2', 'https://shop2.myshopify.example',
	'{"token": "shpat_x"}', '{}', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT id, kind, credentials
  FROM integration.create_connector('woocommerce', 'store', 'https://store.example',
	'{"consumer_key": "ck_0123456789abcdef0123", "consumer_secret": "cs_0123456789abcdef0123"}',
	'{}', 'woo-webhook-secret');
SELECT integration.create_connector('woocommerce', 'store2', 'https://store.example',
	'{"username": "u", "password": "p"}', '{}', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT id, kind, credentials
  FROM integration.create_connector('stripe', 'payments', 'https://api.stripe.example',
	'{"secret_key": "sk_test_0123456789abcdef0123"}', '{"api_version": "2024-06-20"}',
	'whsec_test_secret');
SELECT id, kind, credentials
  FROM integration.create_connector('hubspot', 'crm', 'https://api.hubapi.example',
	'{"access_token": "pat-na1-0123456789abcdef"}', '{}', 'hubspot-client-secret');
SELECT id, kind, credentials
  FROM integration.create_connector('adyen', 'psp', NULL, '{}', '{}',
	'44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056');

------------------------------------------------------------------------------------------
-- Inbound.
------------------------------------------------------------------------------------------

-- Shopify: X-Shopify-Hmac-Sha256 over the body; the dedupe key is the event id, the
-- same in two subscriptions' deliveries (two webhook ids) of one event.
SELECT '{"id":820982911946154508,"email":"jon@example.com","total_price":"9.50"}' AS sbody \gset
SELECT integration.sign('shopify', 'shopify-client-secret', :'sbody')
	   || '{"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-1", "X-Shopify-Event-Id": "ev-1", "X-Shopify-Shop-Domain": "shop1.myshopify.example", "X-Shopify-API-Version": "2025-01"}' AS sh \gset
SELECT * FROM integration.receive_webhook(2001, :'sh', :'sbody');
SELECT * FROM integration.receive_webhook(2001, jsonb_set(:'sh', '{X-Shopify-Webhook-Id}', '"wh-2"'), :'sbody');
-- Without an event id, the webhook id: a retry of one delivery is a duplicate.
SELECT * FROM integration.receive_webhook(2001, :'sh'::jsonb - 'X-Shopify-Event-Id', :'sbody');
SELECT * FROM integration.receive_webhook(2001, :'sh'::jsonb - 'X-Shopify-Event-Id', :'sbody');
-- A changed body, a missing signature: rejected.
SELECT * FROM integration.receive_webhook(2001, :'sh', replace(:'sbody', '9.50', '0.01'));
SELECT * FROM integration.receive_webhook(2001, :'sh'::jsonb - 'X-Shopify-Hmac-Sha256', :'sbody');

-- WooCommerce: X-WC-Webhook-Signature, base64 HMAC-SHA256 of the body.
SELECT '{"id":727,"status":"processing","date_modified_gmt":"2026-12-01T10:00:00","total":"29.35"}' AS wbody \gset
SELECT integration.sign('woocommerce', 'woo-webhook-secret', :'wbody')
	   || '{"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Event": "updated", "X-WC-Webhook-ID": "15", "X-WC-Webhook-Delivery-ID": "d41d8cd98f00b204"}' AS wh \gset
SELECT * FROM integration.receive_webhook(2002, :'wh', :'wbody');
-- A resend has a new delivery id and is still the same event.
SELECT * FROM integration.receive_webhook(2002, jsonb_set(:'wh', '{X-WC-Webhook-Delivery-ID}', '"9e107d9d372bb682"'), :'wbody');
-- The ping, unsigned, is accepted and stores nothing; a ping with a topic must be signed.
SELECT * FROM integration.receive_webhook(2002, '{"Content-Type": "application/x-www-form-urlencoded"}', 'webhook_id=15');
SELECT * FROM integration.receive_webhook(2002, '{"X-WC-Webhook-Topic": "order.updated"}', 'webhook_id=15');
SELECT * FROM integration.receive_webhook(2002, '{}', '{"id": 727}');
-- A deleted resource carries only its id: the key is a hash of the body.
SELECT * FROM integration.receive_webhook(2002,
	integration.sign('woocommerce', 'woo-webhook-secret', '{"id":727}')
	|| '{"X-WC-Webhook-Topic": "order.deleted", "X-WC-Webhook-ID": "15"}', '{"id":727}');

-- Stripe: Stripe-Signature with its timestamp; the event id deduplicates.
SELECT '{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1700000000,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000}}}' AS pbody \gset
SELECT integration.sign('stripe', 'whsec_test_secret', :'pbody') AS ph \gset
SELECT * FROM integration.receive_webhook(2003, :'ph', :'pbody');
SELECT * FROM integration.receive_webhook(2003, :'ph', :'pbody');
-- Too old a timestamp, and a thin event: rejected.
SELECT * FROM integration.receive_webhook(2003, integration.sign('stripe', 'whsec_test_secret', :'pbody', NULL, 1600000000), :'pbody');
SELECT * FROM integration.receive_webhook(2003,
	integration.sign('stripe', 'whsec_test_secret', '{"id":"evt_2","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered"}'),
	'{"id":"evt_2","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered"}');

-- HubSpot v3: method, URI, body and timestamp signed; a delivery holds several events.
SELECT '[{"eventId":100,"subscriptionType":"contact.propertyChange","objectId":123,"propertyName":"email","occurredAt":1700000000000},{"eventId":101,"subscriptionType":"contact.creation","objectId":124,"occurredAt":1700000000001}]' AS hbody \gset
SELECT integration.sign_request('hubspot', 'hubspot-client-secret', 'POST', 'https://erp.example/hooks/hubspot', :'hbody')
	   || '{":method": "POST", ":uri": "https://erp.example/hooks/hubspot"}' AS hh \gset
SELECT * FROM integration.receive_webhook(2004, :'hh', :'hbody');
-- Another URI than the one signed: rejected.
SELECT * FROM integration.receive_webhook(2004, jsonb_set(:'hh', '{:uri}', '"https://erp.example/other"'), :'hbody');

-- Adyen: every item's HMAC inside the JSON; one event per item.
SELECT integration.adyen_sign_notification('44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056',
	'{"live":"false","notificationItems":[{"NotificationRequestItem":{"amount":{"currency":"EUR","value":1000},"eventCode":"AUTHORISATION","merchantAccountCode":"TestMerchant","merchantReference":"SO-1","pspReference":"7914073381342284","success":"true","additionalData":{}}},{"NotificationRequestItem":{"amount":{"currency":"EUR","value":1000},"eventCode":"REFUND","merchantAccountCode":"TestMerchant","merchantReference":"SO-1","originalReference":"7914073381342284","pspReference":"8835511211111111","success":"true","additionalData":{}}}]}')::text AS abody \gset
SELECT * FROM integration.receive_webhook(2005, '{}', :'abody');
SELECT * FROM integration.receive_webhook(2005, '{}', :'abody');
SELECT integration.adyen_acknowledgement();
SELECT * FROM integration.receive_webhook(2005, '{}', replace(:'abody', '1000', '1'));

SELECT id, connector_id, external_id, object_id, topic, event, status
  FROM integration.inbound_events ORDER BY id;
-- Each rejection logged with its reason, never a secret or a header's value.
SELECT context ->> 'connector_id' AS connector, context ->> 'reason' AS reason, context ->> 'detail' AS detail
  FROM integration.integration_logs WHERE event = 'inbound.rejected' ORDER BY id;

------------------------------------------------------------------------------------------
-- Outbound: requests, as the worker would send them (before authentication).
------------------------------------------------------------------------------------------
SELECT integration._connector_context(c) AS shop FROM integration.connectors c WHERE id = 2001 \gset
SELECT integration._connector_context(c) AS woo FROM integration.connectors c WHERE id = 2002 \gset
SELECT integration._connector_context(c) AS stripe FROM integration.connectors c WHERE id = 2003 \gset
SELECT integration._connector_context(c) AS crm FROM integration.connectors c WHERE id = 2004 \gset

SELECT op, (r).method, (r).path, (r).query, (r).body
  FROM (VALUES ('test', '{}'),
			   ('inventory_level.set', '{"inventory_item_id": 808950810, "location_id": 905684977, "available": 42}'),
			   ('variant.update', '{"id": 808950810, "price": "19.90"}'),
			   ('product.create', '{"title": "Burton Custom", "variants": [{"price": "10.00"}]}'),
			   ('order.close', '{"id": 450789469}'),
			   ('order.cancel', '{"id": 450789469, "reason": "customer"}'),
			   ('fulfillment.create', '{"line_items_by_fulfillment_order": [{"fulfillment_order_id": 1046000778}]}')) AS o(op, p),
	   LATERAL (SELECT integration.shopify_build_request(:'shop', op, p::jsonb, 'k1') AS r) AS x;
SELECT (integration.shopify_build_request(:'shop', 'test', NULL, NULL)).headers;
SELECT integration.shopify_build_request(:'shop', 'variant.update', '{"price": "1"}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.shopify_build_request(:'shop', 'variant.update', '{"id": "1/../../shop"}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.shopify_build_request(:'shop', 'refund.create', '{}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.shopify_build_request(:'shop', 'inventory_level.set', '{"inventory_item_id": 1, "location_id": 2, "available": "many"}', NULL);
\echo :LAST_ERROR_SQLSTATE

SELECT op, (r).method, (r).path, (r).query, (r).body
  FROM (VALUES ('test', '{}'),
			   ('product.update', '{"id": 794, "regular_price": "24.54", "stock_quantity": 7}'),
			   ('variation.update', '{"product_id": 22, "id": 733, "regular_price": "10"}'),
			   ('order.update', '{"id": 727, "status": "completed"}'),
			   ('order_note.create', '{"order_id": 727, "note": "Shipped from the ERP"}')) AS o(op, p),
	   LATERAL (SELECT integration.woocommerce_build_request(:'woo', op, p::jsonb, NULL) AS r) AS x;

-- Stripe: form-encoded, nested metadata, the idempotency key on every POST.
SELECT op, (r).method, (r).path, (r).headers, (r).body
  FROM (VALUES ('test', '{}'),
			   ('payment_intent.create', '{"amount": 2000, "currency": "usd", "customer": "cus_1", "metadata": {"order_id": "SO123"}, "payment_method_types": ["card"]}'),
			   ('payment_intent.capture', '{"id": "pi_1", "amount_to_capture": 1500}'),
			   ('payment_intent.cancel', '{"id": "pi_1"}'),
			   ('refund.create', '{"payment_intent": "pi_1", "amount": 500}'),
			   ('customer.update', '{"id": "cus_1", "email": "jon@example.com"}')) AS o(op, p),
	   LATERAL (SELECT integration.stripe_build_request(:'stripe', op, p::jsonb, 'call-77-key') AS r) AS x;

SELECT (r).method, (r).path, (r).body::jsonb
  FROM (SELECT integration.hubspot_build_request(:'crm', 'contacts.batch_upsert',
		'{"inputs": [{"email": "a@example.com", "properties": {"firstname": "Ann"}}, {"email": "b@example.com"}]}', NULL) AS r) AS x;
SELECT integration.hubspot_build_request(:'crm', 'contacts.batch_upsert',
	jsonb_build_object('inputs', (SELECT jsonb_agg(jsonb_build_object('email', i || '@example.com')) FROM generate_series(1, 101) AS i)), NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.hubspot_build_request(:'crm', 'contacts.batch_upsert', '{"inputs": [{"properties": {}}]}', NULL);
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------------------
-- Outbound: verdicts on responses.
------------------------------------------------------------------------------------------
SELECT status, h, (o).outcome, (o).retry_after, (o).error
  FROM (VALUES (200, '{}', '{"shop": {"id": 1}}'),
			   (429, '{"Retry-After": "2.0"}', '{"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}'),
			   (503, '{}', ''),
			   (404, '{}', '{"errors": "Not Found"}'),
			   (422, '{}', '{"errors": {"title": ["can''t be blank"], "price": ["must be a number", "is too low"]}}'),
			   (401, '{}', '{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}')) AS r(status, h, b),
	   LATERAL (SELECT integration.shopify_interpret_response(:'shop', 'test', status, h::jsonb, b) AS o) AS x;

SELECT status, (o).outcome, (o).error
  FROM (VALUES (201, '{"id": 794}'),
			   (400, '{"code": "woocommerce_rest_invalid_product_id", "message": "Invalid ID.", "data": {"status": 400}}'),
			   (500, '{"code": "internal_server_error", "message": "There has been a critical error on this website."}')) AS r(status, b),
	   LATERAL (SELECT integration.woocommerce_interpret_response(:'woo', 'product.update', status, '{}', b) AS o) AS x;

-- Stripe: a decline is the call's result, not a retry; Stripe-Should-Retry decides.
SELECT status, h, (o).outcome, (o).retry_after, (o).error, (o).result #>> '{error,decline_code}' AS decline
  FROM (VALUES (200, '{}', '{"id": "pi_1", "status": "succeeded"}'),
			   (402, '{}', '{"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}'),
			   (402, '{"Stripe-Should-Retry": "true"}', '{"error": {"type": "card_error", "code": "processing_error", "message": "An error occurred while processing your card."}}'),
			   (500, '{"Stripe-Should-Retry": "false"}', '{"error": {"type": "api_error", "message": "Something went wrong."}}'),
			   (409, '{}', '{"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use", "message": "There is currently another in-progress request using this Stateful-Idempotency-Key."}}'),
			   (400, '{}', '{"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}'),
			   (429, '{"Retry-After": "3"}', '{"error": {"type": "rate_limit_error"}}')) AS r(status, h, b),
	   LATERAL (SELECT integration.stripe_interpret_response(:'stripe', 'payment_intent.create', status, h::jsonb, b) AS o) AS x;

SELECT status, h, (o).outcome, (o).retry_after, (o).error
  FROM (VALUES (207, '{}', '{"status": "COMPLETE", "results": []}'),
			   (429, '{}', '{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "category": "RATE_LIMITS"}'),
			   (429, '{"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Remaining": "93", "X-HubSpot-RateLimit-Secondly-Remaining": "0"}',
				'{"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}'),
			   (429, '{"X-HubSpot-RateLimit-Interval-Milliseconds": "2500", "X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Secondly-Remaining": "0"}',
				'{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}'),
			   (429, '{"Retry-After": "4", "X-HubSpot-RateLimit-Secondly-Remaining": "0"}', '{"status": "error", "message": "You have reached your secondly limit.", "policyName": "SECONDLY"}'),
			   (400, '{}', '{"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"}')) AS r(status, h, b),
	   LATERAL (SELECT integration.hubspot_interpret_response(:'crm', 'contacts.batch_upsert', status, h::jsonb, b) AS o) AS x;

RESET ROLE;
RESET integration.tenant_id;
