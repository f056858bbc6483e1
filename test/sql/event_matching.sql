-- Event names and subscription patterns: exact names, "*" for exactly one
-- segment, a final "**" for one or more, and the lone "*" for everything.

SELECT p AS pattern, e AS event, integration.event_matches(jsonb_build_array(p), e) AS matches
  FROM (VALUES
    ('order.created', 'order.created'),
    ('order.created', 'order.updated'),
    ('order.created', 'order.created.v2'),
    ('order.created', 'order'),
    ('order.created', 'Order.created'),
    ('order.*', 'order.created'),
    ('order.*', 'order'),
    ('order.*', 'order.line.created'),
    ('order.*', 'orders.created'),
    ('order.*', 'order_x.created'),
    ('*.created', 'order.created'),
    ('*.created', 'created'),
    ('*.created', 'order.line.created'),
    ('order.*.created', 'order.line.created'),
    ('order.*.created', 'order.created'),
    ('*.*', 'a.b'),
    ('*.*', 'a'),
    ('*.*', 'a.b.c'),
    ('order.**', 'order.a'),
    ('order.**', 'order.a.b'),
    ('order.**', 'order.a.b.c.d'),
    ('order.**', 'order'),
    ('order.**', 'orders.a'),
    ('*.**', 'a'),
    ('*.**', 'a.b'),
    ('*.**', 'a.b.c'),
    ('**', 'a'),
    ('**', 'a.b.c'),
    ('*', 'order'),
    ('*', 'order.created'),
    ('*', 'a.b.c.d.e'),
    ('a-b_c.D9', 'a-b_c.D9'),
    ('a-b_c.D9', 'a-b_c.d9'),
    -- invalid patterns never match
    ('order.', 'order'),
    ('order.', 'order.x'),
    ('.order', 'order'),
    ('order..created', 'order.created'),
    ('ord*', 'order'),
    ('ord*', 'ord*'),
    ('order.**.created', 'order.a.created'),
    ('**.created', 'order.created'),
    ('order.***', 'order.a'),
    ('', 'order'),
    ('order created', 'order created'),
    -- invalid event names never match, not even "*"
    ('*', ''),
    ('*', 'order.'),
    ('*', '.order'),
    ('*', 'order..created'),
    ('*', 'order created'),
    ('*', 'order.*'),
    ('**', 'order.'),
    ('order.*', 'order.'),
    ('order.*', 'order.*'),
    ('order.**', 'order.**'),
    ('*', 'order%'),
    ('*', 'order/created')
  ) AS t(p, e);

-- several patterns: any may match
SELECT integration.event_matches('["invoice.paid", "order.*"]', 'order.created') AS second_matches,
       integration.event_matches('["invoice.paid", "order.*"]', 'invoice.paid') AS first_matches,
       integration.event_matches('["invoice.paid", "order.*"]', 'invoice.voided') AS none_matches,
       integration.event_matches('[]', 'order.created') AS empty_array;

-- anything but an array of strings does not match; non-strings are skipped
SELECT integration.event_matches('"order.created"', 'order.created') AS scalar_string,
       integration.event_matches('{"order.created": true}', 'order.created') AS object,
       integration.event_matches('null', 'order.created') AS json_null,
       integration.event_matches('[1, null, ["order.created"], {"a": "order.created"}]', 'order.created') AS non_strings,
       integration.event_matches('[1, null, "order.created"]', 'order.created') AS string_after_non_strings,
       integration.event_matches('["ord*", "order.created"]', 'order.created') AS valid_after_invalid;
SELECT integration.event_matches(NULL, 'order.created') IS NULL AS strict_patterns,
       integration.event_matches('["*"]', NULL) IS NULL AS strict_event;

-- many patterns, and a long event name
SELECT integration.event_matches(
         (SELECT jsonb_agg('topic' || i || '.*') FROM generate_series(1, 1000) AS i),
         'topic1000.created') AS last_of_1000;
SELECT integration.event_matches('["a.**"]', 'a' || repeat('.b', 10000)) AS deep_name;

--
-- validate_event_patterns
--
SELECT integration.validate_event_patterns('["order.*", "invoice.**", "*", "user.created"]');
SELECT integration.validate_event_patterns('["order.", "x"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('["order.*", "ord*"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('["order.**.created"]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('[""]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('["order.*", 42]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('"order.*"');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_patterns('{"pattern": "order.*"}');
\echo :LAST_ERROR_SQLSTATE

--
-- validate_event_name
--
SELECT integration.validate_event_name('order.line_item.created-v2');
SELECT integration.validate_event_name('order');
SELECT integration.validate_event_name('order.');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_name('order.*');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_name('');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.validate_event_name('order..created');
\echo :LAST_ERROR_SQLSTATE
