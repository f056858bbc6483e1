# Outbound calls of the platform kinds end to end: integration.call_connector(), the
# worker, the kinds' adapters (sql/platform_kinds.sql) and the loopback platform servers
# of test/platforms, which check what they receive as the platforms do.
#
#   1. stripe: payment_intent.create's form body as the server receives and parses it
#      (nested metadata and hashes, arrays, "" unsetting a metadata key); a card
#      declined is the call's permanent result after one attempt, Stripe's error mapped;
#      a 500 the server stored under an idempotency key fails the call (Stripe-Should-
#      Retry: false), and the same key from another connector gets that 500 replayed;
#      (at the end) the worker killed with SIGKILL after the request reached the server
#      and before its answer came back: the call is sent again with the same
#      Idempotency-Key, the server replays the first answer, and the customer is
#      charged once.
#   2. shopify inventory_level.set and woocommerce product.update (stock_quantity,
#      regular_price): the request each platform documents (method, path, auth header,
#      content type, body) and the store's stock and price after it; 422, 404, 401
#      (and WooCommerce's 400 for an unknown product) fail at once with the platform's
#      error text; 429 and 5xx are retried.
#   3. hubspot contacts.batch_upsert: 100 contacts in one request as HubSpot documents
#      batch upsert by email, 101 refused when queued; a 429 is retried after the wait
#      its own headers give: one second for the secondly limit, the ten-second
#      window for the rolling limit.

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('platform_calls',
	"integration.retry_schedule = '200ms, 200ms, 200ms'",
	"integration.request_timeout = '30s'",
	'restart_after_crash = on');

my $stripe = PlatformServer->start('stripe');
my $shop = PlatformServer->start('shopify');
my $woo = PlatformServer->start('woocommerce');
my $hub = PlatformServer->start('hubspot');

sub sql { return tenant_psql($node, $_[0]); }
# Dollar-quoted JSON of a Perl structure.  Strings here are bytes (UTF-8 as one character
# per byte, as the servers' answers arrive); JSON::PP may hand back an upgraded string,
# which would go to psql encoded twice.
sub dq
{
	my $text = $json->encode($_[0]);
	utf8::downgrade($text);
	return '$q$' . $text . '$q$';
}

sub call_row
{
	my ($id) = @_;
	my $row = sql("SELECT row_to_json(k) FROM integration.connector_calls k WHERE id = $id");
	return $row eq '' ? undef : $json->decode($row);
}

# Waits until the call has ended and returns its row.
sub ended
{
	my ($id) = @_;
	$node->poll_query_until('postgres',
		"SELECT status IN ('succeeded', 'failed') FROM integration.connector_calls WHERE id = $id")
	  or diag("call $id did not end");
	return call_row($id);
}

# Queues a call; returns its id.
sub call
{
	my ($conn, $op, $payload, $key) = @_;
	return sql("SELECT integration.call_connector($conn, '$op', " . dq($payload) . '::jsonb'
		  . (defined $key ? ", '$key'" : '') . ')');
}

sub connector
{
	my ($kind, $name, $url, $credentials) = @_;
	return sql("SELECT id FROM integration.create_connector('$kind', '$name', '$url', "
		  . dq($credentials) . ')');
}

# The outcome of an ended call as status|attempts|status code|error.
sub outcome
{
	my ($row) = @_;
	return join('|', map { $_ // '' } @$row{qw(status attempts last_status_code last_error)});
}

########################################################################
# 1. stripe
########################################################################

my $sk = $stripe->credential('secret_key');
my $pay = connector('stripe', 'payments', $stripe->url, { secret_key => $sk });
is(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($pay)"), 't|200',
	'test_connector() of a stripe connector: GET /v1/balance with the secret key');

# The form body: what the server received, byte for byte, and what it made of it.
my $intent_payload = {
	amount => 2000,
	currency => 'usd',
	description => 'Order #1001',
	payment_method_types => [ 'card', 'sepa_debit' ],
	metadata => { order_id => 'SO 1001', note => 'a&b=c/ü', dropped => '' },
	shipping => { name => 'Jo Bloggs', address => { line1 => '1 Main St', city => 'Zürich', country => 'CH' } },
};
my $form = call($pay, 'payment_intent.create', $intent_payload, 'form-1001');
my $row = ended($form);
is(outcome($row), 'succeeded|1|200|', 'payment_intent.create succeeded at the first attempt');
my ($req) = $stripe->requests(path => '/v1/payment_intents', method => 'POST');
is($req->{body},
	'amount=2000&currency=usd&metadata[note]=a%26b%3Dc%2F%C3%BC&metadata[dropped]=&metadata[order_id]=SO%201001'
	  . '&shipping[name]=Jo%20Bloggs&shipping[address][city]=Z%C3%BCrich&shipping[address][line1]=1%20Main%20St'
	  . '&shipping[address][country]=CH&description=Order%20%231001'
	  . '&payment_method_types[0]=card&payment_method_types[1]=sepa_debit',
	'the body is form-encoded as Stripe encodes it: nested names in brackets, arrays indexed, reserved bytes percent-encoded');
is_deeply([ @{ $req->{headers} }{qw(authorization content-type idempotency-key)} ],
	[ "Bearer $sk", 'application/x-www-form-urlencoded', 'form-1001' ],
	'with the secret key as Bearer, the form content type and the call\'s Idempotency-Key');
my $pi = $stripe->get('payment_intents', $row->{result}{id});
is_deeply([ $pi->{amount}, $pi->{currency}, $pi->{description}, $pi->{payment_method_types}, $pi->{metadata} ],
	[ 2000, 'usd', 'Order #1001', [ 'card', 'sepa_debit' ], { order_id => 'SO 1001', note => 'a&b=c/ü' } ],
	'and the server read the amount, the array and the metadata back as sent, the empty metadata value '
	  . 'unsetting its key (the nested shipping hash it validates but does not keep)');

# A card declined: the call's result, at once.
my $declined = call($pay, 'payment_intent.create',
	{ amount => 1500, currency => 'usd', payment_method => 'pm_card_chargeDeclinedInsufficientFunds', confirm => JSON::PP::true },
	'decline-1');
$row = ended($declined);
is(outcome($row), 'failed|1|402|HTTP 402: card_error (card_declined, insufficient_funds) Your card has insufficient funds.',
	'a card declined fails the call at the first attempt, with Stripe\'s type, code, decline code and message');
is($row->{result}{error}{payment_intent}{status}, 'requires_payment_method',
	'the result keeps Stripe\'s error object, with the payment intent');
sleep 1;
is(scalar(grep { ($_->{headers}{'idempotency-key'} // '') eq 'decline-1' } $stripe->requests(path => '/v1/payment_intents')),
	1, 'and it is not tried again');
is(sql("SELECT concat_ws('|', event, payload ->> 'status_code') FROM integration.inbound_events WHERE external_id = 'call:$declined'"),
	'stripe.call.failed|402', 'its completion event is stripe.call.failed');

# A 500 stored under the key: Stripe replays it to every retry, so the call fails;
# the same key from elsewhere gets the same 500, replayed.
$stripe->fault('500', match => { method => 'POST', path => '/v1/customers' });
my $customer = { email => 'jo@example.com', name => 'Jo', metadata => { erp_id => 'C-7' } };
my $broken = call($pay, 'customer.create', $customer, 'customer-c7');
$row = ended($broken);
is(outcome($row), 'failed|1|500|HTTP 500: api_error An unknown error occurred',
	'a 500 Stripe stored under the key (Stripe-Should-Retry: false) fails the call without a retry');
my $pay2 = connector('stripe', 'payments-again', $stripe->url, { secret_key => $sk });
my $again = call($pay2, 'customer.create', $customer, 'customer-c7');
$row = ended($again);
is(outcome($row), 'failed|1|500|HTTP 500: api_error An unknown error occurred',
	'the same key and parameters again get the stored 500');
my @cust = $stripe->requests(path => '/v1/customers', method => 'POST');
is_deeply([ map { [ $_->{status}, $_->{fault} // '', $_->{response_headers}{'Idempotent-Replayed'} // '' ] } @cust ],
	[ [ 500, '500', '' ], [ 500, '', 'true' ] ],
	'the server saw two requests: the 500, then its replay (Idempotent-Replayed: true)');
is(scalar($stripe->list('customers')), 0, 'and created no customer');

########################################################################
# 2. shopify and woocommerce: stock and price out
########################################################################

my $token = $shop->credential('access_token');
my $store = connector('shopify', 'store', $shop->url, { access_token => $token });
my ($product_id) = @{ $shop->seed('products', count => 1)->{ids} };
my $item = $shop->get('products', $product_id)->{variants}[0]{inventory_item_id};
my $location = 65544149101;
is(sql("SELECT concat_ws('|', ok, status) FROM integration.test_connector($store)"), 't|200',
	'test_connector() of a shopify connector');

my $set = call($store, 'inventory_level.set', { inventory_item_id => $item, location_id => $location, available => 42 });
$row = ended($set);
is(outcome($row), 'succeeded|1|200|', 'shopify inventory_level.set succeeded');
($req) = $shop->requests(path => '/admin/api/2025-01/inventory_levels/set.json');
is_deeply([ $req->{method}, $req->{path}, $req->{query}, @{ $req->{headers} }{qw(x-shopify-access-token content-type accept)} ],
	[ 'POST', '/admin/api/2025-01/inventory_levels/set.json', '', $token, 'application/json', 'application/json' ],
	'as a POST to /admin/api/2025-01/inventory_levels/set.json with X-Shopify-Access-Token and JSON');
is($req->{body}, qq({"available": 42, "location_id": $location, "inventory_item_id": $item}),
	'whose body is the inventory item, the location and the quantity available');
ok(!exists $req->{headers}{'idempotency-key'} && !exists $req->{headers}{authorization},
	'and nothing else of ours: no idempotency key, no Authorization');
is($shop->get('inventory_levels', undef, inventory_item_id => $item, location_id => $location)->{available}, 42,
	'the store has 42 available at the location');
is($row->{result}{inventory_level}{available}, 42, 'and the call\'s result is the inventory level');

$row = ended(call($store, 'inventory_level.set', { inventory_item_id => 999, location_id => $location, available => 1 }));
is(outcome($row), 'failed|1|422|HTTP 422: Inventory item does not exist', 'a 422 fails at once, with Shopify\'s errors');
$row = ended(call($store, 'product.update', { id => 1, title => 'Gone' }));
is(outcome($row), 'failed|1|404|HTTP 404: Not Found', 'a 404 fails at once');
my $bad_store = connector('shopify', 'bad token', $shop->url, { access_token => 'shpat_wrong' });
$row = ended(call($bad_store, 'inventory_level.set', { inventory_item_id => $item, location_id => $location, available => 1 }));
is(outcome($row), 'failed|1|401|HTTP 401: [API] Invalid API key or access token (unrecognized login or wrong password)',
	'a 401 fails at once');

my $seq = $shop->last_seq;
$shop->fault('429', match => { path => '/admin/api/2025-01/inventory_levels/set.json' }, retry_after => '1.0');
$shop->fault('503', match => { path => '/admin/api/2025-01/inventory_levels/set.json' });
$row = ended(call($store, 'inventory_level.set', { inventory_item_id => $item, location_id => $location, available => 40 }));
is(outcome($row), 'succeeded|3|200|', 'a 429 and a 503 are retried, then the call succeeds');
my @tries = $shop->requests(since => $seq, path => '/admin/api/2025-01/inventory_levels/set.json');
is_deeply([ map { $_->{status} } @tries ], [ 429, 503, 200 ], 'three attempts: 429, 503, 200');
my $gap = (str2t($tries[1]{t}) - str2t($tries[0]{t}));
cmp_ok($gap, '>=', 0.95, "the retry after the 429 waited for its Retry-After: 1.0 (${gap}s)");
is($shop->get('inventory_levels', undef, inventory_item_id => $item, location_id => $location)->{available}, 40,
	'and the store has 40 available');

# ISO time of the request log → seconds.
sub str2t
{
	my ($iso) = @_;
	my ($h, $m, $s) = $iso =~ /T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z$/ or die "bad time $iso";
	return $h * 3600 + $m * 60 + $s;
}

my ($ck, $cs) = ($woo->credential('consumer_key'), $woo->credential('consumer_secret'));
my $wc = connector('woocommerce', 'wc', $woo->url, { consumer_key => $ck, consumer_secret => $cs });
my ($wc_product) = @{ $woo->seed('products', count => 1)->{ids} };
is(sql("SELECT concat_ws('|', ok, status) FROM integration.test_connector($wc)"), 't|200',
	'test_connector() of a woocommerce connector');
my $upd = call($wc, 'product.update', { id => $wc_product, stock_quantity => 7, regular_price => '19.99' });
$row = ended($upd);
is(outcome($row), 'succeeded|1|200|', 'woocommerce product.update succeeded');
($req) = $woo->requests(path => "/wp-json/wc/v3/products/$wc_product");
is_deeply([ $req->{method}, $req->{query}, @{ $req->{headers} }{qw(authorization content-type accept)} ],
	[ 'PUT', '', 'Basic ' . encode_base64("$ck:$cs", ''), 'application/json', 'application/json' ],
	"as a PUT to /wp-json/wc/v3/products/$wc_product with the consumer key and secret as Basic, JSON");
is($req->{body}, '{"regular_price": "19.99", "stock_quantity": 7}', 'whose body is the new price and stock');
my $p = $woo->get('products', $wc_product);
is_deeply([ $p->{stock_quantity}, $p->{regular_price}, $p->{stock_status} ], [ 7, '19.99', 'instock' ],
	'the store has the product at 19.99 with 7 in stock');
is($row->{result}{id}, $wc_product, 'and the call\'s result is the product');

$row = ended(call($wc, 'product.update', { id => 999999, stock_quantity => 1 }));
is(outcome($row), 'failed|1|400|HTTP 400: Invalid ID. (woocommerce_rest_product_invalid_id)',
	'an unknown product (400, as WooCommerce answers an update of one) fails at once');
my $wc_bad = connector('woocommerce', 'wc bad secret', $woo->url, { consumer_key => $ck, consumer_secret => 'cs_wrong' });
$row = ended(call($wc_bad, 'product.update', { id => $wc_product, stock_quantity => 1 }));
is(outcome($row), 'failed|1|401|HTTP 401: Consumer secret is invalid. (woocommerce_rest_authentication_error)',
	'a 401 fails at once');
my $wc_lost = connector('woocommerce', 'wc wrong site', $woo->url('/shop'), { consumer_key => $ck, consumer_secret => $cs });
$row = ended(call($wc_lost, 'product.update', { id => $wc_product, stock_quantity => 1 }));
is(outcome($row), 'failed|1|404|HTTP 404: No route was found matching the URL and request method. (rest_no_route)',
	'a 404 fails at once');
is($woo->get('products', $wc_product)->{stock_quantity}, 7, 'none of them changed the stock');

$seq = $woo->last_seq;
$woo->fault('500', match => { path => "/wp-json/wc/v3/products/$wc_product" });
$woo->fault('429', match => { path => "/wp-json/wc/v3/products/$wc_product" }, retry_after => '1');
$row = ended(call($wc, 'product.update', { id => $wc_product, stock_quantity => 3 }));
is(outcome($row), 'succeeded|3|200|', 'a 500 and a 429 are retried, then the call succeeds');
is_deeply([ map { $_->{status} } $woo->requests(since => $seq) ], [ 500, 429, 200 ], 'three attempts: 500, 429, 200');
is($woo->get('products', $wc_product)->{stock_quantity}, 3, 'and the store has 3 in stock');

########################################################################
# 3. hubspot contacts.batch_upsert
########################################################################

my $hs_token = $hub->credential('access_token');
my $crm = connector('hubspot', 'crm', $hub->url, { access_token => $hs_token });
is(sql("SELECT concat_ws('|', ok, status) FROM integration.test_connector($crm)"), 't|200',
	'test_connector() of a hubspot connector');
my @inputs = map { { email => sprintf('c%03d@example.com', $_), properties => { firstname => sprintf('C%03d', $_) } } }
  1 .. 100;
my $batch = call($crm, 'contacts.batch_upsert', { inputs => \@inputs });
$row = ended($batch);
is(outcome($row), 'succeeded|1|200|', 'hubspot contacts.batch_upsert of 100 contacts succeeded');
my @ups = $hub->requests(path => '/crm/v3/objects/contacts/batch/upsert');
is(scalar @ups, 1, 'in one request');
is_deeply([ $ups[0]{method}, @{ $ups[0]{headers} }{qw(authorization content-type accept)} ],
	[ 'POST', "Bearer $hs_token", 'application/json', 'application/json' ],
	'a POST to /crm/v3/objects/contacts/batch/upsert with the access token as Bearer, JSON');
is_deeply($json->decode($ups[0]{body}),
	{ inputs => [ map { { idProperty => 'email', id => $_->{email},
					properties => { %{ $_->{properties} }, email => $_->{email} } } } @inputs ] },
	'whose body has each contact as HubSpot\'s batch upsert takes it: idProperty email, id the address, its properties');
is(scalar($hub->list('contacts')), 100, 'the CRM has the 100 contacts');
is(scalar @{ $row->{result}{results} }, 100, 'and the call\'s result lists them');

my ($ok, $out, $err) = $node->psql('postgres', "SET integration.tenant_id = 'acme';
	SELECT integration.call_connector($crm, 'contacts.batch_upsert', "
	  . dq({ inputs => [ @inputs, { email => 'c101@example.com' } ] }) . ')',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: contacts\.batch_upsert takes 1 to 100 inputs/, '101 contacts are refused when queued (22023)');

# The secondly limit's 429, as HubSpot sends it: wait a second, not ten.
$seq = $hub->last_seq;
$hub->fault('status', match => { path => '/crm/v3/objects/contacts/batch/upsert' }, status => 429,
	headers => {
		'Content-Type' => 'application/json;charset=utf-8',
		'X-HubSpot-RateLimit-Interval-Milliseconds' => '10000',
		'X-HubSpot-RateLimit-Max' => '100',
		'X-HubSpot-RateLimit-Remaining' => '93',
		'X-HubSpot-RateLimit-Secondly' => '10',
		'X-HubSpot-RateLimit-Secondly-Remaining' => '0',
	},
	body => '{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT",'
	  . '"correlationId":"c0ffee00-0000-4000-8000-000000000000","policyName":"SECONDLY","groupName":"api-calls:54321"}');
$row = ended(call($crm, 'contacts.batch_upsert', { inputs => [ { email => 'c001@example.com', properties => { lastname => 'One' } } ] }));
is(outcome($row), 'succeeded|2|200|', 'a 429 of the secondly limit is retried, then the call succeeds');
@tries = $hub->requests(since => $seq);
$gap = str2t($tries[1]{t}) - str2t($tries[0]{t});
ok($gap >= 0.95 && $gap < 5, "after a second, as its policy says, not ten (${gap}s)");

# The rolling ten-second limit, spent: HubSpot's own 429 and its headers.
$hub->config(ten_second_max => 1);
$hub->http('GET', '/crm/v3/objects/contacts?limit=1', headers => { Authorization => "Bearer $hs_token" });
$seq = $hub->last_seq;
my $t0 = time();
$row = ended(call($crm, 'contacts.batch_upsert', { inputs => [ { email => 'c002@example.com', properties => { lastname => 'Two' } } ] }));
is(outcome($row), 'succeeded|2|200|', 'a 429 of the ten-second window is retried, then the call succeeds');
@tries = $hub->requests(since => $seq);
is_deeply([ map { [ $_->{status}, $_->{response_headers}{'X-HubSpot-RateLimit-Remaining'} ] } @tries ],
	[ [ 429, '0' ], [ 200, '0' ] ], 'the first attempt was refused with X-HubSpot-RateLimit-Remaining: 0');
$gap = str2t($tries[1]{t}) - str2t($tries[0]{t});
cmp_ok($gap, '>=', 9.5, "the retry waited out the window of X-HubSpot-RateLimit-Interval-Milliseconds (${gap}s)");
is($hub->get('contacts', (grep { $_->{properties}{email} eq 'c002@example.com' } $hub->list('contacts'))[0]{id})
	  ->{properties}{lastname}, 'Two', 'and the contact was updated');

########################################################################
# 1 (end). stripe: the worker killed after the request was sent
########################################################################

# The server handles the request (the payment intent is created and charged) and holds
# its answer back, as a slow network would, until the worker is killed.
$stripe->fault('hang_after', match => { method => 'POST', path => '/v1/payment_intents' });
$seq = $stripe->last_seq;
my $charge = call($pay, 'payment_intent.create',
	{ amount => 4200, currency => 'eur', payment_method => 'pm_card_visa', confirm => JSON::PP::true,
	  metadata => { order_id => 'SO-1002' } },
	'SO-1002-charge');
my @sent = $stripe->wait_for_requests(1, 10, since => $seq, path => '/v1/payment_intents');
is_deeply([ map { [ $_->{status}, $_->{fault} ] } @sent ], [ [ 200, 'hang_after' ] ],
	'the request reached the server, which charged the card and holds the answer back');
is(call_row($charge)->{status}, 'sending', 'the call is sending');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
kill 'KILL', $pid;
ok(poll_across_crash($node, 'postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $pid) FROM integration.worker_status() WHERE role = 'delivery'"),
	'the server restarted after the crash, with a new worker');
$row = ended($charge);
is(outcome($row), 'succeeded|2|200|', 'the call succeeded at its second attempt');
@sent = $stripe->requests(since => $seq, path => '/v1/payment_intents');
is_deeply([ map { [ $_->{headers}{'idempotency-key'}, $_->{response_headers}{'Idempotent-Replayed'} // '' ] } @sent ],
	[ [ 'SO-1002-charge', '' ], [ 'SO-1002-charge', 'true' ] ],
	'both attempts carried the same Idempotency-Key, and the second was answered with the first one\'s result');
my @intents = grep { ($_->{metadata}{order_id} // '') eq 'SO-1002' } $stripe->list('payment_intents');
is(scalar @intents, 1, 'the server has one payment intent for the order');
is_deeply([ $intents[0]{id}, $intents[0]{status}, $intents[0]{amount_received} ], [ $row->{result}{id}, 'succeeded', 4200 ],
	'the call\'s result is that intent, succeeded, 42.00 received');
is(scalar(grep { $_->{payment_intent} eq $intents[0]{id} } $stripe->list('charges')), 1, 'charged once');
is(sql("SELECT concat_ws('|', event, payload ->> 'attempts') FROM integration.inbound_events WHERE external_id = 'call:$charge'"),
	'stripe.call.succeeded|2', 'its completion event is stripe.call.succeeded, after two attempts');

$_->stop for ($stripe, $shop, $woo, $hub);
$node->stop;
done_testing();
