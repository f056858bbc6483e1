-- Request bodies for the payment and ERP platforms: Stripe's form encoding and Odoo's
-- JSON-RPC envelope, and the classification of Odoo's answers.  The Stripe vectors
-- marked "stripe-node" are the expectations of the queryStringifyRequestData tests in
-- stripe/stripe-node test/utils.spec.ts; test/t/015_platform_interop.pl checks many
-- more payloads byte for byte against what stripe-node itself sends.

--
-- stripe_form_encode
--
-- stripe-node "Handles basic types"
SELECT integration.stripe_form_encode('{"a": 1, "b": "foo"}');
-- stripe-node "Handles deeply nested object"
SELECT integration.stripe_form_encode('{"a": {"b": {"c": {"d": 2}}}}');
-- stripe-node "Handles arrays of objects"
SELECT integration.stripe_form_encode('{"a": [{"b": "c"}, {"b": "d"}]}');
-- stripe-node "Handles indexed arrays"
SELECT integration.stripe_form_encode('{"a": {"0": {"b": "c"}, "1": {"b": "d"}}}');
-- stripe-node "Creates a string from an object, handling shallow nested objects": the
-- same pairs; jsonb keeps members shorter names first, so the order differs (Stripe
-- reads the body into a map)
SELECT integration.stripe_form_encode(
         '{"test": 1, "foo": "baz", "somethingElse": "::\"\"%&", "nested": {"1": 2, "a n o t h e r": null}}') AS encoded;
SELECT (SELECT array_agg(p ORDER BY p) FROM unnest(string_to_array(integration.stripe_form_encode(
          '{"test": 1, "foo": "baz", "somethingElse": "::\"\"%&", "nested": {"1": 2, "a n o t h e r": null}}'), '&')) AS p)
     = (SELECT array_agg(p ORDER BY p) FROM unnest(string_to_array(
          'test=1&foo=baz&somethingElse=%3A%3A%22%22%25%26&nested[1]=2&nested[a%20n%20o%20t%20h%20e%20r]=', '&')) AS p)
       AS same_pairs_as_stripe_node;

-- a payment intent as the stripe kind sends it
SELECT integration.stripe_form_encode('{"amount": 2000, "currency": "usd", "customer": "cus_123",
         "payment_method_types": ["card", "sepa_debit"], "capture_method": "manual", "confirm": true,
         "metadata": {"order_id": "SO123", "note": "Zoë & co. (gift)"}}');
-- empty values: "" unsets (clears a list or metadata), null sends the same, empty
-- containers send nothing
SELECT integration.stripe_form_encode('{"description": "", "metadata": "", "email": null, "tax_ids": [], "shipping": {}, "a": [[], {}, null, ""]}');
-- booleans, and arrays of arrays
SELECT integration.stripe_form_encode('{"t": true, "f": false, "m": [[1, 2], [3]]}');
-- numbers as JavaScript writes them
SELECT n, integration.stripe_form_encode(jsonb_build_object('n', n::jsonb)) AS encoded
  FROM unnest(ARRAY['0', '-0', '1.50', '100', '-12.345', '0.1', '1e3', '9007199254740992', '123456789012345680',
                    '1e20', '1e21', '1.5e300', '0.000001', '0.0000001', '1.2e-7', '5e-324']) AS n;
-- a number a double cannot hold is refused (stripe-node would send another value)
SELECT integration.stripe_form_encode('{"amount": 9007199254740993}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode('{"amount": 123456789012345678}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode('{"x": {"y": [0.12345678901234567890]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode('{"big": 1e400}');
\echo :LAST_ERROR_SQLSTATE
-- percent-encoding: only A-Z a-z 0-9 - _ . ~ [ ] stay; a space is %20; UTF-8 bytes
SELECT integration.stripe_form_encode(jsonb_build_object('s', string_agg(chr(c), '' ORDER BY c)))
  FROM generate_series(32, 126) AS c;
SELECT integration.stripe_form_encode('{"name": "Zoë ☃ 日本 😀", "k[x]": "v[0]", "a b": "+&=?#/"}');
-- member order: names that are array indexes first, by number, as JavaScript lists them;
-- then jsonb's order
SELECT integration.stripe_form_encode('{"metadata": {"x": "a", "10": "b", "2": "c", "02": "d", "-1": "e", "4294967294": "f", "4294967295": "g"}}');
-- an empty name
SELECT integration.stripe_form_encode('{"": {"": 1}, "a": {"": 2}}');
-- deep nesting is fine up to the stack limit
SELECT length(integration.stripe_form_encode(('{"a": ' || repeat('[', 200) || '1' || repeat(']', 200) || '}')::jsonb)) AS deep;
-- errors
SELECT integration.stripe_form_encode('[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode('"amount=1"');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode('null');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.stripe_form_encode(NULL) IS NULL AS strict;

--
-- odoo_execute_kw_request
--
-- the search_read of connector-wire-details.md §8
SELECT integration.odoo_execute_kw_request('mydb', 2, 'api-key-1', 'sale.order', 'search_read',
         '[[["write_date", ">", "2025-01-01 00:00:00"]]]',
         '{"fields": ["name", "partner_id", "amount_total", "write_date"], "order": "write_date asc, id asc", "limit": 100, "offset": 0}',
         2) AS search_read;
-- a sale order with lines, and the defaults
SELECT integration.odoo_execute_kw_request('mydb', 2, 'api-key-1', 'sale.order', 'create',
         '[{"partner_id": 7, "order_line": [[0, 0, {"product_id": 3, "product_uom_qty": 2, "price_unit": 9.5}]]}]') AS create_order;
-- errors name the argument, never the key
SELECT integration.odoo_execute_kw_request('mydb', 2, 'secret-key', 'res.partner', 'read', '{"ids": [1]}');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.odoo_execute_kw_request('mydb', 2, 'secret-key', 'res.partner', 'read', '[[1]]', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.odoo_execute_kw_request('mydb', 0, 'secret-key', 'res.partner', 'read', '[[1]]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.odoo_execute_kw_request('mydb', 2, '', 'res.partner', 'read', '[[1]]');
\echo :LAST_ERROR_SQLSTATE
SELECT integration.odoo_execute_kw_request('mydb', 2, 'secret-key', 'res.partner', 'read', '[[1]]', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT integration.odoo_execute_kw_request(NULL, 2, 'secret-key', 'res.partner', 'read', '[[1]]');
\echo :LAST_ERROR_SQLSTATE

--
-- odoo_classify_response
--
SELECT label, r.*
  FROM (VALUES
    ('result', '{"jsonrpc": "2.0", "id": 1, "result": [{"id": 5, "name": "Deco Addict"}]}'::jsonb),
    ('result false', '{"jsonrpc": "2.0", "id": 1, "result": false}'),
    ('result null', '{"jsonrpc": "2.0", "id": 1, "result": null}'),
    ('AccessError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.AccessError", "message": "You are not allowed to access ''Sales Order'' (sale.order) records.", "arguments": [], "context": {}, "debug": "Traceback ..."}}}'),
    ('AccessDenied', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.AccessDenied", "message": "Access Denied"}}}'),
    ('ValidationError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.ValidationError", "message": "The operation cannot be completed"}}}'),
    ('UserError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.UserError", "message": "You can not delete a sent quotation"}}}'),
    ('MissingError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.MissingError", "message": "Record does not exist or has been deleted."}}}'),
    ('legacy openerp name', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "OpenERP Server Error", "data": {"name": "openerp.exceptions.ValidationError", "message": "x"}}}'),
    ('SerializationFailure', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "psycopg2.errors.SerializationFailure", "message": "could not serialize access due to concurrent update"}}}'),
    ('TransactionRollbackError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "psycopg2.extensions.TransactionRollbackError", "message": "deadlock detected"}}}'),
    ('psycopg 3 LockNotAvailable', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "psycopg.errors.LockNotAvailable", "message": "could not obtain lock"}}}'),
    ('ConcurrencyError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "odoo.exceptions.ConcurrencyError", "message": "x"}}}'),
    ('concurrent update in a message', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "builtins.Exception", "message": "ERROR: could not serialize access due to concurrent update"}}}'),
    ('OperationalError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "psycopg2.OperationalError", "message": "server closed the connection unexpectedly"}}}'),
    ('InternalServerError', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "werkzeug.exceptions.InternalServerError", "message": "x"}}}'),
    ('ServiceUnavailable', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "werkzeug.exceptions.ServiceUnavailable", "message": "x"}}}'),
    ('NotFound', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 404, "message": "404: Not Found", "data": {"name": "werkzeug.exceptions.NotFound", "message": "x"}}}'),
    ('BadRequest', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "werkzeug.exceptions.BadRequest", "message": "x"}}}'),
    ('session expired', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 100, "message": "Odoo Session Expired", "data": {"name": "odoo.http.SessionExpiredException", "message": "Session expired"}}}'),
    ('a bug on the server', '{"jsonrpc": "2.0", "id": 1, "error": {"code": 200, "message": "Odoo Server Error", "data": {"name": "builtins.KeyError", "message": "''partner_idd''"}}}'),
    ('error without data', '{"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": "Invalid Request"}}'),
    ('both, error wins', '{"jsonrpc": "2.0", "id": 1, "result": 1, "error": {"code": 200, "data": {"name": "odoo.exceptions.UserError", "message": "no"}}}'),
    ('result and null error', '{"jsonrpc": "2.0", "id": 1, "result": 1, "error": null}'),
    ('neither', '{"jsonrpc": "2.0", "id": 1}'),
    ('error a string', '{"jsonrpc": "2.0", "id": 1, "error": "boom"}'),
    ('an array', '[]'),
    ('null', NULL)
  ) AS t(label, body)
 CROSS JOIN LATERAL integration.odoo_classify_response(body) AS r;
