-- HMAC, webhook signing and verification.  Known answers come from the
-- Standard Webhooks and GitHub documentation, or were computed with
-- Python's hmac module; random values are only checked for their shape.

\set std_secret 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
\set std_body '{"test": 2432232314}'
\set std_sig 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
\set std_headers '{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330", "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}'
\set std_now 'to_timestamp(1614265330)'

--
-- integration.hmac
--
SELECT encode(integration.hmac('key', 'The quick brown fox jumps over the lazy dog'), 'hex') AS sha256_default;
SELECT alg, encode(integration.hmac('key', 'The quick brown fox jumps over the lazy dog', alg), 'hex')
  FROM unnest(ARRAY['sha1', 'SHA256', 'Sha384', 'sha512']) AS alg;
SELECT encode(integration.hmac('', ''), 'hex') AS empty_key_and_data;
SELECT encode(integration.hmac('It''s a Secret to Everybody', 'Hello, World!'), 'hex') AS github_answer;
SELECT integration.hmac('key', 'data', 'md5');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.hmac('key', 'data', NULL) IS NULL AS strict;

--
-- sign: known answers
--
SELECT integration.sign('standard', :'std_secret', :'std_body',
                        'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330);
-- the prefix is optional; base64 padding and the standard alphabet are not, as
-- the Standard Webhooks libraries decode neither unpadded nor URL-safe base64
SELECT integration.sign('standard', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'std_body',
                        'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330) ->> 'webhook-signature' AS without_prefix;
SELECT integration.sign('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
                        '{"type":"order.created","id":42}', 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', 1700000000) ->> 'webhook-signature' AS padded_32_bytes;
SELECT integration.sign('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
                        '{"type":"order.created","id":42}', 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', 1700000000) ->> 'webhook-signature' AS unpadded_32_bytes;
SELECT integration.sign('standard', 'whsec_yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc',
                        '{"type":"order.created","id":42}', 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', 1700000000) ->> 'webhook-signature' AS base64url_secret;
SELECT integration.sign('github', 'It''s a Secret to Everybody', 'Hello, World!');
SELECT integration.sign('stripe', 'whsec_test_secret', '{"id":"evt_1"}', NULL, 1700000000);
SELECT integration.sign('shopify', 'shpss_abc123', '{"id":820982911946154508}');
SELECT integration.sign('woocommerce', 'woo secret', '{"id":1}');
SELECT integration.sign('STANDARD', :'std_secret', :'std_body',
                        'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330) ->> 'webhook-signature' = :'std_sig' AS scheme_case_insensitive;

-- rotation: one signature per secret, in list order
SELECT integration.sign('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=  ' || :'std_secret',
                        '{"type":"order.created","id":42}', 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', 1700000000) ->> 'webhook-signature' AS two_secrets;
SELECT integration.sign('stripe', 'whsec_test_secret whsec_other', '{"id":"evt_1"}', NULL, 1700000000);

-- 1 MiB bodies
SELECT integration.sign('github', 'It''s a Secret to Everybody', repeat('x', 1048576));
SELECT integration.sign('standard', :'std_secret', repeat('x', 1048576), 'msg_big', 1614265330) ->> 'webhook-signature' AS big_standard;
SELECT integration.verify('standard', :'std_secret',
                          integration.sign('standard', :'std_secret', repeat('x', 1048576), 'msg_big', 1614265330),
                          repeat('x', 1048576), '5 minutes', :std_now) AS big_ok,
       integration.verify('standard', :'std_secret',
                          integration.sign('standard', :'std_secret', repeat('x', 1048576), 'msg_big', 1614265330),
                          repeat('x', 1048575) || 'y', '5 minutes', :std_now) AS big_last_byte_changed;

-- generated message id and timestamp
WITH s AS (SELECT integration.sign('standard', :'std_secret', 'hello') AS h)
SELECT h ->> 'webhook-id' ~ '^msg_[0-9A-Za-z]{22}$' AS id_shape,
       abs((h ->> 'webhook-timestamp')::bigint - extract(epoch FROM now())) < 600 AS timestamp_is_now,
       h ->> 'webhook-signature' ~ '^v1,[A-Za-z0-9+/]{43}=$' AS signature_shape,
       integration.verify('standard', :'std_secret', h, 'hello') AS verifies
  FROM s;
SELECT count(DISTINCT integration.sign('standard', :'std_secret', 'x', NULL, 1) ->> 'webhook-id') AS distinct_ids
  FROM generate_series(1, 100);
SELECT (integration.sign('stripe', 'whsec_x', 'x') ->> 'Stripe-Signature') ~ '^t=[0-9]{10},v1=[0-9a-f]{64}$' AS stripe_shape;
-- schemes without id or timestamp ignore them
SELECT integration.sign('github', 'It''s a Secret to Everybody', 'Hello, World!', 'msg_ignored', 1);

--
-- sign: errors (the secret is never echoed)
--
SELECT integration.sign('svix', :'std_secret', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', '', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', '   ', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', 'whsec_', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', 'whsec_not*base64!', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', 'whsec_MfKQ9r8GKY=qrTwjUPD8ILPZIo2LaLaSw', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS', 'x');
\echo :LAST_ERROR_SQLSTATE
-- 16 bytes: too short
SELECT integration.sign('standard', 'whsec_AAECAwQFBgcICQoLDA0ODw==', 'x');
\echo :LAST_ERROR_SQLSTATE
-- 65 bytes: too long
SELECT integration.sign('standard', 'whsec_' || encode(decode(repeat('ab', 65), 'hex'), 'base64'), 'x');
\echo :LAST_ERROR_SQLSTATE
-- 64 bytes: the largest accepted
SELECT length(integration.sign('standard', 'whsec_' || translate(encode(decode(repeat('ab', 64), 'hex'), 'base64'), E'\n', ''), 'x', 'msg_1', 1) ->> 'webhook-signature') AS max_key_ok;
-- one bad secret in a rotation list spoils it
SELECT integration.sign('standard', :'std_secret' || ' whsec_short', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('github', '', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('stripe', ' ', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', :'std_secret', 'x', '');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', :'std_secret', 'x', NULL, -1);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign(NULL, :'std_secret', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('standard', :'std_secret', NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- generate_secret and validate_secret
--
SELECT s ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_shape,
       integration.validate_secret(s) = s AS valid,
       s <> integration.generate_secret() AS fresh
  FROM integration.generate_secret() AS s;
SELECT integration.validate_secret(:'std_secret' || ' whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=') IS NOT NULL AS list_ok;
SELECT integration.validate_secret('whsec_AAECAwQFBgcICQoLDA0ODw==');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_secret('');
\echo :LAST_ERROR_SQLSTATE

--
-- verify: standard
--
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '5 minutes', :std_now) AS known_answer;
SELECT integration.verify('standard', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'std_headers', :'std_body', '5 minutes', :std_now) AS without_prefix;
-- header names are case-insensitive
SELECT integration.verify('standard', :'std_secret',
         '{"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "WEBHOOK-TIMESTAMP": "1614265330", "Webhook-Signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}',
         :'std_body', '5 minutes', :std_now) AS mixed_case_names;
-- extra headers are ignored
SELECT integration.verify('standard', :'std_secret',
         :'std_headers'::jsonb || '{"content-type": "application/json", "x": {"nested": [1]}}',
         :'std_body', '5 minutes', :std_now) AS extra_headers;

-- mutations and malformed input: all false
SELECT label, integration.verify('standard', :'std_secret', h, b, '5 minutes', :std_now)
  FROM (VALUES
    ('changed body byte', :'std_headers'::jsonb, '{"test": 2432232315}'),
    ('body with trailing newline', :'std_headers'::jsonb, :'std_body' || E'\n'),
    ('empty body', :'std_headers'::jsonb, ''),
    ('changed id', jsonb_set(:'std_headers', '{webhook-id}', '"msg_p5jXN8AQM9LWM0D4loKWxJeK"'), :'std_body'),
    ('empty id', jsonb_set(:'std_headers', '{webhook-id}', '""'), :'std_body'),
    ('changed timestamp', jsonb_set(:'std_headers', '{webhook-timestamp}', '"1614265331"'), :'std_body'),
    ('timestamp with leading zero', jsonb_set(:'std_headers', '{webhook-timestamp}', '"01614265330"'), :'std_body'),
    ('timestamp with sign', jsonb_set(:'std_headers', '{webhook-timestamp}', '"+1614265330"'), :'std_body'),
    ('timestamp with space', jsonb_set(:'std_headers', '{webhook-timestamp}', '" 1614265330"'), :'std_body'),
    ('timestamp with fraction', jsonb_set(:'std_headers', '{webhook-timestamp}', '"1614265330.0"'), :'std_body'),
    ('timestamp too long', jsonb_set(:'std_headers', '{webhook-timestamp}', '"99999999999999999999999"'), :'std_body'),
    ('empty timestamp', jsonb_set(:'std_headers', '{webhook-timestamp}', '""'), :'std_body'),
    ('numeric timestamp', jsonb_set(:'std_headers', '{webhook-timestamp}', '1614265330'), :'std_body'),
    ('truncated signature', jsonb_set(:'std_headers', '{webhook-signature}', '"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"'), :'std_body'),
    ('signature one char longer', jsonb_set(:'std_headers', '{webhook-signature}', '"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=="'), :'std_body'),
    ('changed signature char', jsonb_set(:'std_headers', '{webhook-signature}', '"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="'), :'std_body'),
    ('wrong version prefix', jsonb_set(:'std_headers', '{webhook-signature}', '"v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="'), :'std_body'),
    ('v1a prefix', jsonb_set(:'std_headers', '{webhook-signature}', '"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="'), :'std_body'),
    ('no version prefix', jsonb_set(:'std_headers', '{webhook-signature}', '"g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="'), :'std_body'),
    ('garbage base64', jsonb_set(:'std_headers', '{webhook-signature}', '"v1,!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"'), :'std_body'),
    ('only the prefix', jsonb_set(:'std_headers', '{webhook-signature}', '"v1,"'), :'std_body'),
    ('empty signature', jsonb_set(:'std_headers', '{webhook-signature}', '""'), :'std_body'),
    ('only spaces', jsonb_set(:'std_headers', '{webhook-signature}', '"   "'), :'std_body'),
    ('array signature', jsonb_set(:'std_headers', '{webhook-signature}', '["v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="]'), :'std_body'),
    ('null signature', jsonb_set(:'std_headers', '{webhook-signature}', 'null'), :'std_body'),
    ('missing signature', :'std_headers'::jsonb - 'webhook-signature', :'std_body'),
    ('missing id', :'std_headers'::jsonb - 'webhook-id', :'std_body'),
    ('missing timestamp', :'std_headers'::jsonb - 'webhook-timestamp', :'std_body'),
    ('duplicate name, other case', :'std_headers'::jsonb || '{"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek"}', :'std_body'),
    ('empty object', '{}'::jsonb, :'std_body'),
    ('array headers', '[]'::jsonb, :'std_body'),
    ('string headers', '"webhook-signature"'::jsonb, :'std_body'),
    ('number headers', '42'::jsonb, :'std_body'),
    ('json null headers', 'null'::jsonb, :'std_body'),
    ('sql null headers', NULL::jsonb, :'std_body'),
    ('sql null body', :'std_headers'::jsonb, NULL)
  ) AS t(label, h, b);

-- a different secret, or the right secret for another scheme, does not verify
SELECT integration.verify('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', :'std_headers', :'std_body', '5 minutes', :std_now) AS other_secret;
SELECT integration.verify('stripe', :'std_secret', :'std_headers', :'std_body', '5 minutes', :std_now) AS other_scheme;

-- multi-signature headers: any supported entry may match, others are skipped
SELECT label, integration.verify('standard', :'std_secret', jsonb_set(:'std_headers', '{webhook-signature}', to_jsonb(sig)), :'std_body', '5 minutes', :std_now)
  FROM (VALUES
    ('bad then good', 'v1,LWNXyPrvK+64LFb1orDAasBCHCVIOFaIcdNs1RM59BQ= ' || :'std_sig'),
    ('good then bad', :'std_sig' || ' v1,LWNXyPrvK+64LFb1orDAasBCHCVIOFaIcdNs1RM59BQ='),
    ('other versions first', 'v1a,AAAA v2,BBBB ' || :'std_sig'),
    ('several spaces', '  v1a,AAAA    ' || :'std_sig' || '  '),
    ('only other versions', 'v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='),
    ('two bad', 'v1,LWNXyPrvK+64LFb1orDAasBCHCVIOFaIcdNs1RM59BQ= v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='),
    ('comma separated', :'std_sig' || ',v1,AAAA')
  ) AS t(label, sig);

-- rotation: the verifier holds several secrets, any may match
SELECT integration.verify('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= ' || :'std_secret', :'std_headers', :'std_body', '5 minutes', :std_now) AS new_then_old;
SELECT integration.verify('standard', :'std_secret' || ' whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', :'std_headers', :'std_body', '5 minutes', :std_now) AS old_then_new;
WITH s AS (
  SELECT integration.sign('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= ' || :'std_secret', 'rotated', 'msg_rot', 1614265330) AS h
)
SELECT integration.verify('standard', :'std_secret', h, 'rotated', '5 minutes', :std_now) AS old_secret,
       integration.verify('standard', 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', h, 'rotated', '5 minutes', :std_now) AS new_secret,
       integration.verify('standard', 'whsec_yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=', h, 'rotated', '5 minutes', :std_now) AS unrelated_secret
  FROM s;

-- timestamp tolerance, both directions; exactly at the edge is accepted
SELECT offset_s, integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '5 minutes', to_timestamp(1614265330 + offset_s))
  FROM unnest(ARRAY[-301, -300, -1, 0, 1, 300, 301]) AS offset_s;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '5 minutes', to_timestamp(1614265630.000001)) AS one_microsecond_late;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '0', to_timestamp(1614265330)) AS zero_tolerance_exact;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '0', to_timestamp(1614265331)) AS zero_tolerance_late;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '1 day', to_timestamp(1614265330 + 86400)) AS day_tolerance;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '1000 years', now()) AS huge_tolerance;
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '5 minutes', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '5 minutes') AS default_now_rejects_2021;

--
-- verify: stripe
--
\set stripe_headers '{"Stripe-Signature": "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"}'
SELECT integration.verify('stripe', 'whsec_test_secret', :'stripe_headers', '{"id":"evt_1"}', '5 minutes', to_timestamp(1700000000)) AS known_answer;
SELECT integration.verify('stripe', 'whsec_other whsec_test_secret', :'stripe_headers', '{"id":"evt_1"}', '5 minutes', to_timestamp(1700000000)) AS rotation;
SELECT label, integration.verify('stripe', 'whsec_test_secret', jsonb_build_object('stripe-signature', v), '{"id":"evt_1"}', '5 minutes', to_timestamp(1700000000))
  FROM (VALUES
    ('lower-case name', 't=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('upper-case hex', 't=1700000000,v1=248A374F50F943A28B0F6AB50FAF9A7E7E29B710FA26DF9FB1618B9BF8EA9C9A'),
    ('v0 and bad v1 first', 't=1700000000,v0=abc,v1=d8d091c76b586cff4dbd317fc47ebddff4b86de3ce18d3c03753c3c1901d475a,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('t last', 'v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a,t=1700000000'),
    ('only v0', 't=1700000000,v0=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('other secret', 't=1700000000,v1=d8d091c76b586cff4dbd317fc47ebddff4b86de3ce18d3c03753c3c1901d475a'),
    ('changed timestamp', 't=1700000001,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('missing t', 'v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('two t', 't=1700000000,t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('empty t', 't=,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('truncated v1', 't=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9'),
    ('non-hex v1', 't=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9g'),
    ('space after comma', 't=1700000000, v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a'),
    ('only t', 't=1700000000'),
    ('commas only', ',,,'),
    ('empty', '')
  ) AS t(label, v);
SELECT offset_s, integration.verify('stripe', 'whsec_test_secret', :'stripe_headers', '{"id":"evt_1"}', '5 minutes', to_timestamp(1700000000 + offset_s))
  FROM unnest(ARRAY[-301, -300, 300, 301]) AS offset_s;
SELECT integration.verify('stripe', 'whsec_test_secret', :'stripe_headers', '{"id":"evt_2"}', '5 minutes', to_timestamp(1700000000)) AS changed_body;

--
-- verify: shopify, woocommerce, github (no timestamp)
--
SELECT integration.verify('shopify', 'shpss_abc123', '{"X-Shopify-Hmac-Sha256": "pEHxn8XPkdSTUcJeA6uukrN4Jt0BsZZZd6biEV8EehI="}', '{"id":820982911946154508}') AS shopify,
       integration.verify('shopify', 'shpss_abc123', '{"x-shopify-hmac-sha256": "pEHxn8XPkdSTUcJeA6uukrN4Jt0BsZZZd6biEV8EehI"}', '{"id":820982911946154508}') AS shopify_unpadded,
       integration.verify('shopify', 'shpss_abc123', '{"X-Shopify-Hmac-Sha256": "pEHxn8XPkdSTUcJeA6uukrN4Jt0BsZZZd6biEV8EehI="}', '{"id":820982911946154509}') AS shopify_changed_body;
SELECT integration.verify('woocommerce', 'woo secret', '{"X-WC-Webhook-Signature": "XOMeECZBt2vtjoISmHN30TcRfMYv0y9A2WUOQGBIt0M="}', '{"id":1}') AS woocommerce,
       integration.verify('woocommerce', 'woo', '{"X-WC-Webhook-Signature": "XOMeECZBt2vtjoISmHN30TcRfMYv0y9A2WUOQGBIt0M="}', '{"id":1}') AS woocommerce_secret_is_whole_string,
       integration.verify('woocommerce', 'woo secret', '{"X-Shopify-Hmac-Sha256": "XOMeECZBt2vtjoISmHN30TcRfMYv0y9A2WUOQGBIt0M="}', '{"id":1}') AS woocommerce_wrong_header;
SELECT label, integration.verify('github', 'It''s a Secret to Everybody', h, b)
  FROM (VALUES
    ('known answer', '{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}'::jsonb, 'Hello, World!'),
    ('lower-case name', '{"x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World!'),
    ('1 MiB body', '{"X-Hub-Signature-256": "sha256=5a25e88501f97a9bb5aa86e6ee6bf88f8eb9b791a7ec666885ad750085d6ac8a"}', repeat('x', 1048576)),
    ('changed body', '{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World?'),
    ('sha1 prefix', '{"X-Hub-Signature-256": "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World!'),
    ('no prefix', '{"X-Hub-Signature-256": "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World!'),
    ('truncated', '{"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1"}', 'Hello, World!'),
    ('old header name', '{"X-Hub-Signature": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World!'),
    ('number value', '{"X-Hub-Signature-256": 757107}', 'Hello, World!'),
    ('empty value', '{"X-Hub-Signature-256": ""}', 'Hello, World!')
  ) AS t(label, h, b);

--
-- verify: operator errors raise even when the request is garbage
--
SELECT integration.verify('standard', 'whsec_short', '{}', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('nope', :'std_secret', :'std_headers', :'std_body');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('github', '', '{}', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('standard', NULL, :'std_headers', :'std_body');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', '-1 second', :std_now);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.verify('standard', :'std_secret', :'std_headers', :'std_body', NULL, :std_now);
\echo :LAST_ERROR_SQLSTATE

--
-- verify: standard accepts Svix's names for its headers
--
\set svix_headers '{"svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "svix-timestamp": "1614265330", "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}'
SELECT integration.verify('standard', :'std_secret', :'svix_headers', :'std_body', '5 minutes', :std_now) AS svix_known_answer;
SELECT label, integration.verify('standard', :'std_secret', h, b, '5 minutes', :std_now)
  FROM (VALUES
    ('mixed-case names', '{"Svix-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "SVIX-TIMESTAMP": "1614265330", "Svix-Signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}'::jsonb, :'std_body'),
    ('both names, same values', :'std_headers'::jsonb || :'svix_headers'::jsonb, :'std_body'),
    ('webhook-id with svix timestamp and signature', (:'svix_headers'::jsonb - 'svix-id') || '{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek"}', :'std_body'),
    ('rotation list in svix-signature', jsonb_set(:'svix_headers', '{svix-signature}', to_jsonb('v1a,AAAA ' || :'std_sig')), :'std_body'),
    ('changed body', :'svix_headers'::jsonb, '{"test": 2432232315}'),
    ('changed id', jsonb_set(:'svix_headers', '{svix-id}', '"msg_p5jXN8AQM9LWM0D4loKWxJeK"'), :'std_body'),
    ('changed timestamp', jsonb_set(:'svix_headers', '{svix-timestamp}', '"1614265331"'), :'std_body'),
    ('empty id', jsonb_set(:'svix_headers', '{svix-id}', '""'), :'std_body'),
    ('both names, different ids', :'std_headers'::jsonb || jsonb_set(:'svix_headers', '{svix-id}', '"msg_other"'), :'std_body'),
    ('both names, different signatures', :'std_headers'::jsonb || jsonb_set(:'svix_headers', '{svix-signature}', '"v1,LWNXyPrvK+64LFb1orDAasBCHCVIOFaIcdNs1RM59BQ="'), :'std_body'),
    ('both names, one empty', :'std_headers'::jsonb || jsonb_set(:'svix_headers', '{svix-timestamp}', '""'), :'std_body'),
    ('both names, one not a string', :'std_headers'::jsonb || jsonb_set(:'svix_headers', '{svix-timestamp}', '1614265330'), :'std_body'),
    ('duplicate name, other case', :'svix_headers'::jsonb || '{"Svix-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek"}', :'std_body'),
    ('missing signature', :'svix_headers'::jsonb - 'svix-signature', :'std_body'),
    ('missing id', :'svix_headers'::jsonb - 'svix-id', :'std_body'),
    ('null signature', jsonb_set(:'svix_headers', '{svix-signature}', 'null'), :'std_body'),
    ('prefix only', '{"svix-": "msg_p5jXN8AQM9LWM0D4loKWxJek", "svix-timestamp": "1614265330", "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}', :'std_body')
  ) AS t(label, h, b);
-- the timestamp tolerance applies under either name
SELECT offset_s, integration.verify('standard', :'std_secret', :'svix_headers', :'std_body', '5 minutes', to_timestamp(1614265330 + offset_s))
  FROM unnest(ARRAY[-301, -300, 300, 301]) AS offset_s;
-- a signature made by sign() verifies after its headers are renamed
WITH s AS (SELECT integration.sign('standard', :'std_secret', 'renamed', 'msg_renamed', 1614265330) AS h)
SELECT integration.verify('standard', :'std_secret',
         jsonb_build_object('svix-id', h -> 'webhook-id', 'svix-timestamp', h -> 'webhook-timestamp',
                            'svix-signature', h -> 'webhook-signature'),
         'renamed', '5 minutes', :std_now) AS renamed_round_trip
  FROM s;
-- sign() still writes only the webhook- names; other schemes have no aliases
SELECT jsonb_object_keys(integration.sign('standard', :'std_secret', :'std_body', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330)) AS signed_names
 ORDER BY 1;
SELECT integration.verify('github', 'It''s a Secret to Everybody',
         '{"svix-signature": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}', 'Hello, World!') AS github_ignores_svix_names;

--
-- secrets the Standard Webhooks libraries cannot decode are refused (22023)
--
-- URL-safe alphabet, with or without padding
SELECT integration.validate_secret('whsec_yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_secret('yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc');
\echo :LAST_ERROR_SQLSTATE
-- missing padding
SELECT integration.validate_secret('whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8');
\echo :LAST_ERROR_SQLSTATE
-- the same keys in standard, padded base64 are accepted
SELECT integration.validate_secret('whsec_yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=') IS NOT NULL AS standard_alphabet_ok,
       integration.validate_secret('whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=') IS NOT NULL AS padded_ok;
-- at most 64 secrets in a rotation list, for standard and stripe
SELECT integration.validate_secret(rtrim(repeat(:'std_secret' || ' ', 64))) IS NOT NULL AS sixty_four_secrets_ok;
SELECT integration.validate_secret(rtrim(repeat(:'std_secret' || ' ', 65)));
\echo :LAST_ERROR_SQLSTATE
SELECT integration.sign('stripe', rtrim(repeat('sk ', 65)), 'x');
\echo :LAST_ERROR_SQLSTATE

--
-- verify: at most 64 signatures and 8192 bytes per header, else false
--
SELECT n, integration.verify('standard', :'std_secret',
         jsonb_set(:'std_headers', '{webhook-signature}',
                   to_jsonb(repeat('v1a,AAAA ', n - 1) || :'std_sig')),
         :'std_body', '5 minutes', :std_now) AS verifies
  FROM unnest(ARRAY[64, 65]) AS n;
SELECT len, integration.verify('standard', :'std_secret',
         jsonb_set(:'std_headers', '{webhook-signature}', to_jsonb(rpad(:'std_sig', len))),
         :'std_body', '5 minutes', :std_now) AS verifies
  FROM unnest(ARRAY[8192, 8193]) AS len;
-- the length cap holds for every header and under the svix- names
SELECT integration.verify('standard', :'std_secret',
         jsonb_set(:'svix_headers', '{svix-signature}', to_jsonb(rpad(:'std_sig', 8193))),
         :'std_body', '5 minutes', :std_now) AS long_svix_signature;
SELECT integration.verify('standard', :'std_secret',
         jsonb_set(:'std_headers', '{webhook-timestamp}', to_jsonb(rpad('1614265330', 8193))),
         :'std_body', '5 minutes', :std_now) AS long_timestamp;
-- stripe: t= and at most 64 signatures
WITH s AS (SELECT integration.sign('stripe', 'whsec_test_secret', '{"id":"evt_1"}', NULL, 1700000000) ->> 'Stripe-Signature' AS sig)
SELECT n, integration.verify('stripe', 'whsec_test_secret',
         jsonb_build_object('Stripe-Signature', sig || repeat(',v0=x', n - 1)),
         '{"id":"evt_1"}', '5 minutes', to_timestamp(1700000000)) AS verifies
  FROM s, unnest(ARRAY[64, 65]) AS n;
