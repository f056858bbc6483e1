-- HubSpot v3 and Adyen signatures through sign_request()/verify() and the adyen_*
-- functions.  Known answers are the platforms' own: HubSpot's from the test suite of
-- its Python SDK (HubSpot/hubspot-api-python tests/spec/utils/test_signature.py),
-- Adyen's from the test suites of its Node and Python libraries
-- (Adyen/adyen-node-api-library src/__tests__/hmacValidator.spec.ts,
-- Adyen/adyen-python-api-library test/UtilTest.py and the three captured
-- notifications of test/mocks/util/).  Other values were computed with Python's hmac
-- module and are noted where used.

--
-- HubSpot v3
--
\set hs_secret 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy'
\set hs_uri 'https://www.example.com/webhook_uri'
\set hs_body '{''example_field'':''example_value''}'
-- hubspot-api-python test_get_signature__v3: timestamp 15000000 ms, POST
\set hs_headers '{"X-HubSpot-Signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "X-HubSpot-Request-Timestamp": "15000000", ":method": "POST", ":uri": "https://www.example.com/webhook_uri"}'
\set hs_now 'to_timestamp(15000)'

SELECT integration.sign_request('hubspot', :'hs_secret', 'POST', :'hs_uri', :'hs_body', 15000000);
SELECT integration.verify('hubspot', :'hs_secret', :'hs_headers', :'hs_body', '5 minutes', :hs_now) AS sdk_vector;
-- header names in any case, as received
SELECT integration.verify('hubspot', :'hs_secret',
         '{"x-hubspot-signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "x-hubspot-request-timestamp": "15000000", ":METHOD": "POST", ":uri": "https://www.example.com/webhook_uri"}',
         :'hs_body', '5 minutes', :hs_now) AS lower_case_names;

-- what is signed: each part changed fails
SELECT label, integration.verify('hubspot', :'hs_secret', h, b, '5 minutes', :hs_now) AS verifies
  FROM (VALUES
    ('as signed', :'hs_headers'::jsonb, :'hs_body'),
    ('body + one space', :'hs_headers'::jsonb, :'hs_body' || ' '),
    ('method GET', jsonb_set(:'hs_headers', '{:method}', '"GET"'), :'hs_body'),
    ('method post', jsonb_set(:'hs_headers', '{:method}', '"post"'), :'hs_body'),
    ('http://', jsonb_set(:'hs_headers', '{:uri}', '"http://www.example.com/webhook_uri"'), :'hs_body'),
    ('trailing slash', jsonb_set(:'hs_headers', '{:uri}', '"https://www.example.com/webhook_uri/"'), :'hs_body'),
    ('timestamp + 1 ms', jsonb_set(:'hs_headers', '{X-HubSpot-Request-Timestamp}', '"15000001"'), :'hs_body'),
    ('another secret', :'hs_headers'::jsonb, :'hs_body')
  ) AS t(label, h, b)
 WHERE label <> 'another secret'
UNION ALL
SELECT 'another secret', integration.verify('hubspot', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz', :'hs_headers', :'hs_body', '5 minutes', :hs_now);

-- the request line is required
SELECT label, integration.verify('hubspot', :'hs_secret', h, :'hs_body', '5 minutes', :hs_now) AS verifies
  FROM (VALUES
    ('no :method', :'hs_headers'::jsonb - ':method'),
    ('no :uri', :'hs_headers'::jsonb - ':uri'),
    ('empty :method', jsonb_set(:'hs_headers', '{:method}', '""')),
    ('empty :uri', jsonb_set(:'hs_headers', '{:uri}', '""')),
    ('method without colon', (:'hs_headers'::jsonb - ':method') || '{"method": "POST"}'),
    (':uri twice', :'hs_headers'::jsonb || '{":URI": "https://www.example.com/webhook_uri"}'),
    ('no timestamp', :'hs_headers'::jsonb - 'X-HubSpot-Request-Timestamp'),
    ('no signature', :'hs_headers'::jsonb - 'X-HubSpot-Signature-v3'),
    ('timestamp not digits', jsonb_set(:'hs_headers', '{X-HubSpot-Request-Timestamp}', '"15000000.0"')),
    ('timestamp 16 digits', jsonb_set(:'hs_headers', '{X-HubSpot-Request-Timestamp}', '"0000000015000000"')),
    ('signature unpadded', jsonb_set(:'hs_headers', '{X-HubSpot-Signature-v3}', '"HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw"')),
    ('signature hex', jsonb_set(:'hs_headers', '{X-HubSpot-Signature-v3}', to_jsonb(encode(decode('HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=', 'base64'), 'hex')))),
    ('signature a number', jsonb_set(:'hs_headers', '{X-HubSpot-Signature-v3}', '42'))
  ) AS t(label, h);

-- the window: HubSpot rejects requests older than five minutes; tolerance applies both ways
SELECT offset_ms, integration.verify('hubspot', :'hs_secret', :'hs_headers', :'hs_body', '5 minutes',
                                     to_timestamp((15000000 + offset_ms) / 1000.0)) AS verifies
  FROM unnest(ARRAY[-300001, -300000, 0, 299999, 300000, 300001]) AS offset_ms;
SELECT integration.verify('hubspot', :'hs_secret', :'hs_headers', :'hs_body', '0', :hs_now) AS zero_tolerance_exact;

-- URI: HubSpot decodes %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B (either case of
-- hex) before signing, and nothing else.  Signature computed with Python's hmac over
-- POST + https://www.example.com/webhook_uri?q=a:b/c?d@e!f$g'h(i)j*k,l;m%20n%26o%3D + body + 1700000000000.
\set hs_decoded_sig 'Y8aFskj4FrpwgnKixFADwmRTm5y84t0R7hyAPLnUJuQ='
SELECT label, integration.verify('hubspot', :'hs_secret',
         jsonb_build_object('X-HubSpot-Signature-v3', :'hs_decoded_sig',
                            'X-HubSpot-Request-Timestamp', '1700000000000',
                            ':method', 'POST', ':uri', uri),
         '{"example_field":"example_value"}', '5 minutes', to_timestamp(1700000000)) AS verifies
  FROM (VALUES
    ('as HubSpot sends it', 'https://www.example.com/webhook_uri?q=a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm%20n%26o%3D'),
    ('lower-case hex', 'https://www.example.com/webhook_uri?q=a%3ab%2fc%3fd%40e%21f%24g%27h%28i%29j%2ak%2cl%3bm%20n%26o%3D'),
    ('already decoded', 'https://www.example.com/webhook_uri?q=a:b/c?d@e!f$g''h(i)j*k,l;m%20n%26o%3D'),
    ('%20 decoded too', 'https://www.example.com/webhook_uri?q=a:b/c?d@e!f$g''h(i)j*k,l;m n%26o%3D'),
    ('%26 decoded too', 'https://www.example.com/webhook_uri?q=a:b/c?d@e!f$g''h(i)j*k,l;m%20n&o%3D'),
    ('truncated escape', 'https://www.example.com/webhook_uri?q=a:b/c?d@e!f$g''h(i)j*k,l;m%20n%26o%3')
  ) AS t(label, uri);
SELECT integration.sign_request('hubspot', :'hs_secret', 'POST',
         'https://www.example.com/webhook_uri?q=a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm%20n%26o%3D',
         '{"example_field":"example_value"}', 1700000000000) ->> 'X-HubSpot-Signature-v3' = :'hs_decoded_sig' AS sign_decodes_the_same;

-- a GET with an empty body, timestamp not a whole second (Python's hmac)
SELECT integration.sign_request('hubspot', :'hs_secret', 'GET', :'hs_uri', '', 1700000000123);
SELECT integration.verify('hubspot', :'hs_secret',
         '{"X-HubSpot-Signature-v3": "ua24BeQ039dQlD8Cium5IsBvZeRPeBgzgXdkpIxnCvI=", "X-HubSpot-Request-Timestamp": "1700000000123", ":method": "GET", ":uri": "https://www.example.com/webhook_uri"}',
         '', '5 minutes', to_timestamp(1700000000)) AS get_verifies;

-- generated timestamp: now, in milliseconds
WITH s AS (SELECT integration.sign_request('hubspot', :'hs_secret', 'POST', :'hs_uri', 'x') AS h)
SELECT abs((h ->> 'X-HubSpot-Request-Timestamp')::bigint - extract(epoch FROM now()) * 1000) < 600000 AS timestamp_is_now_ms,
       integration.verify('hubspot', :'hs_secret', h || '{":method": "POST", ":uri": "https://www.example.com/webhook_uri"}', 'x') AS verifies
  FROM s;

-- errors: sign() cannot sign the request line, sign_request() signs only that
SELECT integration.sign('hubspot', :'hs_secret', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign_request('stripe', 'whsec_x', 'POST', :'hs_uri', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign_request('hubspot', :'hs_secret', '', :'hs_uri', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign_request('hubspot', :'hs_secret', 'POST', NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign_request('hubspot', :'hs_secret', 'POST', :'hs_uri', 'x', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign_request('hubspot', '', 'POST', :'hs_uri', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('hubspot', '', :'hs_headers', :'hs_body');
\echo :LAST_ERROR_SQLSTATE

--
-- Adyen
--
-- adyen-node-api-library hmacValidator.spec.ts
\set ad_node_key 'DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00'
\set ad_node_item '{"pspReference": "pspReference", "originalReference": "originalReference", "merchantAccountCode": "merchantAccount", "merchantReference": "reference", "amount": {"currency": "EUR", "value": 1000}, "eventCode": "CAPTURE", "eventDate": "1970-01-01T00:00:00.000Z", "paymentMethod": "VISA", "reason": "reason", "success": "true", "additionalData": {"hmacSignature": "xhpHvYq2u2Np0rstbZ6QjLGu7JWhvf7Iwaa6EviJSX0="}}'
SELECT integration.adyen_signing_string(:'ad_node_item') AS node_data_to_sign;
SELECT integration.adyen_hmac_signature(:'ad_node_key', :'ad_node_item') AS node_signature;
SELECT integration.adyen_verify_item(:'ad_node_key', :'ad_node_item') AS node_valid;
-- "should have invalid hmac"
SELECT integration.adyen_verify_item(:'ad_node_key',
         jsonb_set(:'ad_node_item', '{additionalData}', '{"hmacSignature": "notValidSign"}')) AS node_invalid;

-- adyen-python-api-library UtilTest.test_notification_request_item_hmac (also Adyen's
-- documented example: the key and the signing string of its HMAC guide)
\set ad_py_key '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056'
\set ad_py_item '{"pspReference": "7914073381342284", "merchantReference": "TestPayment-1407325143704", "merchantAccountCode": "TestMerchant", "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION", "success": "true", "eventDate": "2019-05-06T17:15:34.121+02:00", "operations": ["CANCEL", "CAPTURE", "REFUND"], "paymentMethod": "visa"}'
SELECT integration.adyen_signing_string(:'ad_py_item') AS python_signing_string;
SELECT integration.adyen_hmac_signature(:'ad_py_key', :'ad_py_item') AS python_signature;
SELECT integration.adyen_sign_item(:'ad_py_key', :'ad_py_item') -> 'additionalData' AS signed_additional_data;
SELECT integration.adyen_verify_item(:'ad_py_key', integration.adyen_sign_item(:'ad_py_key', :'ad_py_item')) AS signed_item_verifies;
SELECT integration.adyen_verify_item(lower(:'ad_py_key'), integration.adyen_sign_item(:'ad_py_key', :'ad_py_item')) AS lower_case_key;

-- Three notifications Adyen sent, captured in adyen-python-api-library
-- test/mocks/util/{backslash,colon,forwardslash}_notification.json: the merchant
-- references hold \\, : and //, signed without escaping.
\set ad_key '74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174'
CREATE TEMP TABLE adyen_captured (name text, item jsonb);
INSERT INTO adyen_captured VALUES
('backslash', '{"additionalData": {"acquirerCode": "TestPmmAcquirer", "acquirerReference": "DZMKWLXW6N6", "authCode": "076181", "avsResult": "5 No AVS data provided", "avsResultRaw": "5", "cardSummary": "1111", "checkout.cardAddedBrand": "visa", "cvcResult": "1 Matches", "cvcResultRaw": "M", "expiryDate": "03/2030", "hmacSignature": "nIgT81gaB5oJpn2jPXupDq68iRo2wUlBsuYjtYfwKqo=", "paymentMethod": "visa", "refusalReasonRaw": "AUTHORISED", "retry.attempt1.acquirer": "TestPmmAcquirer", "retry.attempt1.acquirerAccount": "TestPmmAcquirerAccount", "retry.attempt1.avsResultRaw": "5", "retry.attempt1.rawResponse": "AUTHORISED", "retry.attempt1.responseCode": "Approved", "retry.attempt1.scaExemptionRequested": "lowValue", "scaExemptionRequested": "lowValue"}, "amount": {"currency": "EUR", "value": 1000}, "eventCode": "AUTHORISATION", "eventDate": "2023-01-09T16:27:29+01:00", "merchantAccountCode": "AntoniStroinski", "merchantReference": "\\\\slashes are fun", "operations": ["CANCEL", "CAPTURE", "REFUND"], "paymentMethod": "visa", "pspReference": "T7FD4VM4D3RZNN82", "reason": "076181:1111:03/2030", "success": "true"}'),
('colon', '{"additionalData": {"acquirerCode": "TestPmmAcquirer", "acquirerReference": "8NQH5BNF58M", "authCode": "039404", "avsResult": "5 No AVS data provided", "avsResultRaw": "5", "cardSummary": "1111", "checkout.cardAddedBrand": "visa", "cvcResult": "1 Matches", "cvcResultRaw": "M", "expiryDate": "03/2030", "hmacSignature": "2EQYm7YJpKO4EtHSPu55SQTyWf8dkW5u2nD1tJFpViA=", "paymentMethod": "visa", "refusalReasonRaw": "AUTHORISED", "retry.attempt1.acquirer": "TestPmmAcquirer", "retry.attempt1.acquirerAccount": "TestPmmAcquirerAccount", "retry.attempt1.avsResultRaw": "5", "retry.attempt1.rawResponse": "AUTHORISED", "retry.attempt1.responseCode": "Approved", "retry.attempt1.scaExemptionRequested": "lowValue", "scaExemptionRequested": "lowValue"}, "amount": {"currency": "EUR", "value": 1000}, "eventCode": "AUTHORISATION", "eventDate": "2023-01-10T13:40:54+01:00", "merchantAccountCode": "AntoniStroinski", "merchantReference": ":slashes are fun", "operations": ["CANCEL", "CAPTURE", "REFUND"], "paymentMethod": "visa", "pspReference": "M8NB66SBZSGLNK82", "reason": "039404:1111:03/2030", "success": "true"}'),
('forwardslash', '{"amount": {"value": 1000, "currency": "EUR"}, "reason": "087330:1111:03/2030", "success": "true", "eventCode": "AUTHORISATION", "eventDate": "2023-01-10T13:37:30+01:00", "operations": ["CANCEL", "CAPTURE", "REFUND"], "pspReference": "X3GWNS6KJ8NKGK82", "paymentMethod": "visa", "additionalData": {"authCode": "087330", "avsResult": "5 No AVS data provided", "cvcResult": "1 Matches", "expiryDate": "03/2030", "cardSummary": "1111", "acquirerCode": "TestPmmAcquirer", "avsResultRaw": "5", "cvcResultRaw": "M", "hmacSignature": "9Z0xdpG9Xi3zcmXv14t/BvMBut77O/Xq9D4CQXSDUi4=", "paymentMethod": "visa", "refusalReasonRaw": "AUTHORISED", "acquirerReference": "HHCCC326PH6", "scaExemptionRequested": "lowValue", "checkout.cardAddedBrand": "visa", "retry.attempt1.acquirer": "TestPmmAcquirer", "retry.attempt1.rawResponse": "AUTHORISED", "retry.attempt1.avsResultRaw": "5", "retry.attempt1.responseCode": "Approved", "retry.attempt1.acquirerAccount": "TestPmmAcquirerAccount", "retry.attempt1.scaExemptionRequested": "lowValue"}, "merchantReference": "//slashes are fun", "merchantAccountCode": "AntoniStroinski"}');
SELECT name, integration.adyen_signing_string(item), integration.adyen_verify_item(:'ad_key', item) AS verifies
  FROM adyen_captured ORDER BY name;
-- escaping the way the library's generic getDataToSign() does (\ -> \\, : -> \:) would not match
SELECT name, integration.adyen_verify_item(:'ad_key',
         jsonb_set(item, '{merchantReference}', to_jsonb(replace(replace(item ->> 'merchantReference', '\', '\\'), ':', '\:')))) AS escaped_verifies
  FROM adyen_captured WHERE name IN ('backslash', 'colon') ORDER BY name;

-- The three as one notification: all verify, so it does; one changed item spoils it
\set ad_notification '(SELECT jsonb_build_object(''live'', ''false'', ''notificationItems'', jsonb_agg(jsonb_build_object(''NotificationRequestItem'', item) ORDER BY name)) FROM adyen_captured)'
SELECT integration.adyen_verify_notification(:'ad_key', :ad_notification) AS notification_verifies;
SELECT integration.verify('adyen', :'ad_key', '{}', :ad_notification::text) AS verify_scheme;
SELECT integration.verify('adyen', 'AAAA ' || :'ad_key', '{}', :ad_notification::text) AS rotation_list;
SELECT integration.verify('adyen', 'AAAA', '{}', :ad_notification::text) AS other_key;
SELECT integration.adyen_verify_notification(:'ad_key',
         jsonb_set(:ad_notification, '{notificationItems,1,NotificationRequestItem,amount,value}', '1001')) AS one_amount_changed;
SELECT integration.adyen_verify_notification(:'ad_key',
         jsonb_set(:ad_notification, '{notificationItems,2,NotificationRequestItem,success}', '"false"')) AS one_success_changed;

-- The raw body as Adyen sends it: verified before any parsing, pretty-printed or not.
\set ad_raw '{\n  "live": "false",\n  "notificationItems": [\n    {\n      "NotificationRequestItem": {\n        "amount": {"currency": "EUR", "value": 1130},\n        "eventCode": "AUTHORISATION",\n        "merchantAccountCode": "TestMerchant",\n        "merchantReference": "TestPayment-1407325143704",\n        "pspReference": "7914073381342284",\n        "success": "true",\n        "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="}\n      }\n    }\n  ]\n}\n'
SELECT integration.verify('adyen', :'ad_py_key', '{}', replace(:'ad_raw', '\n', E'\n')) AS raw_body;
-- a key given twice counts once, the last time, as in JSON.parse
SELECT label, integration.verify('adyen', :'ad_py_key', '{}', replace(b, '\n', E'\n')) AS verifies
  FROM (VALUES
    ('pspReference twice, right one last', replace(:'ad_raw', '"pspReference": "7914073381342284"', '"pspReference": "forged", "pspReference": "7914073381342284"')),
    ('pspReference twice, right one first', replace(:'ad_raw', '"pspReference": "7914073381342284"', '"pspReference": "7914073381342284", "pspReference": "forged"')),
    ('amount twice, right one last', replace(:'ad_raw', '"amount": {"currency": "EUR", "value": 1130}', '"amount": {"currency": "EUR", "value": 1}, "amount": {"currency": "EUR", "value": 1130}')),
    ('amount twice, right one first', replace(:'ad_raw', '"amount": {"currency": "EUR", "value": 1130}', '"amount": {"currency": "EUR", "value": 1130}, "amount": {"currency": "EUR"}')),
    ('escaped member name', replace(:'ad_raw', '"pspReference"', '"psp\u0052eference"')),
    ('escaped value', replace(:'ad_raw', '"TestMerchant"', '"\u0054estMerchant"'))
  ) AS t(label, b);

-- Nesting: a notification is five levels deep; up to 64 are read, deeper is refused
SELECT levels, integration.verify('adyen', :'ad_py_key', '{}',
         replace(replace(:'ad_raw', '\n', E'\n'), '"eventCode"',
                 '"x": ' || repeat('[', levels - 4) || repeat(']', levels - 4) || ', "eventCode"')) AS verifies
  FROM unnest(ARRAY[64, 65]) AS levels;

-- Anything malformed is false, never an error
SELECT label, integration.verify('adyen', :'ad_py_key', '{}', b) AS verifies
  FROM (VALUES
    ('empty', ''),
    ('not JSON', 'not json'),
    ('truncated', left(replace(:'ad_raw', '\n', ''), 100)),
    ('an array', '[]'),
    ('no notificationItems', '{"live": "false"}'),
    ('no items', '{"live": "false", "notificationItems": []}'),
    ('items an object', '{"notificationItems": {}}'),
    ('items a string', '{"notificationItems": "x"}'),
    ('wrapper without item', '{"notificationItems": [{}]}'),
    ('wrapper a string', '{"notificationItems": ["x"]}'),
    ('item a string', '{"notificationItems": [{"NotificationRequestItem": "x"}]}'),
    ('item without signature', '{"notificationItems": [{"NotificationRequestItem": {"pspReference": "1"}}]}'),
    ('signature a number', '{"notificationItems": [{"NotificationRequestItem": {"additionalData": {"hmacSignature": 1}}}]}'),
    ('\u0000 in a value', '{"notificationItems": [{"NotificationRequestItem": {"pspReference": "\u0000"}}]}'),
    ('lone surrogate', '{"notificationItems": [{"NotificationRequestItem": {"pspReference": "\ud800"}}]}'),
    ('huge exponent', '{"notificationItems": [{"NotificationRequestItem": {"amount": {"value": 1e999999999}}}]}'),
    ('100000 levels deep', repeat('[', 100000) || repeat(']', 100000))
  ) AS t(label, b);

-- Items: what is signed, and what makes one unverifiable
\set ad_min '{"pspReference": "P", "merchantAccountCode": "M", "amount": {"value": 5, "currency": "EUR"}, "eventCode": "REFUND", "success": true}'
SELECT label, integration.adyen_signing_string(i) AS signing_string
  FROM (VALUES
    ('minimal, success a boolean', :'ad_min'::jsonb),
    ('null fields are empty', :'ad_min'::jsonb || '{"originalReference": null, "merchantReference": null}'),
    ('no amount', :'ad_min'::jsonb - 'amount'),
    ('amount without value', jsonb_set(:'ad_min', '{amount}', '{"currency": "EUR"}')),
    ('numeric value as sent', jsonb_set(:'ad_min', '{amount,value}', '1.50')),
    ('string value', jsonb_set(:'ad_min', '{amount,value}', '"5"')),
    ('unicode', jsonb_set(:'ad_min', '{merchantReference}', '"Zoë ☃ 日本"'))
  ) AS t(label, i);
SELECT integration.adyen_signing_string('[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_signing_string(jsonb_build_object('NotificationRequestItem', :'ad_min'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_signing_string(jsonb_set(:'ad_min', '{amount}', '"5 EUR"'));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_signing_string(jsonb_set(:'ad_min', '{eventCode}', '["REFUND"]'));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_verify_item(:'ad_py_key', x) AS verifies
  FROM (VALUES ('[]'::jsonb), ('"x"'), ('{}'), (NULL)) AS t(x);

-- signing a whole notification; items lose nothing else
SELECT jsonb_pretty(integration.adyen_sign_notification(:'ad_py_key',
         jsonb_build_object('live', 'false', 'notificationItems',
           jsonb_build_array(jsonb_build_object('NotificationRequestItem', :'ad_py_item'::jsonb),
                             jsonb_build_object('NotificationRequestItem', :'ad_min'::jsonb || '{"additionalData": {"x": "kept"}}'))))) AS signed;
SELECT integration.adyen_verify_notification(:'ad_py_key',
         integration.adyen_sign_notification(:'ad_py_key', :ad_notification)) AS resigned_verifies;
SELECT integration.adyen_sign_notification(:'ad_py_key', '{"live": "false"}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_sign_notification(:'ad_py_key', '{"notificationItems": [{"x": 1}]}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_acknowledgement();

-- keys: hex, one or more; errors never echo the key
SELECT integration.adyen_hmac_signature('44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA05', :'ad_py_item');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_hmac_signature('44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA05G', :'ad_py_item');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_hmac_signature(repeat('ab', 129), :'ad_py_item');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_verify_item('', :'ad_py_item');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.adyen_verify_item(NULL, :'ad_py_item');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('adyen', 'secret', '{}', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('adyen', :'ad_py_key', '{}');
\echo :LAST_ERROR_SQLSTATE
-- the first key of a list signs
SELECT integration.adyen_hmac_signature(:'ad_py_key' || ' ' || :'ad_node_key', :'ad_py_item') AS first_key_signs;
