# The loopback platform servers of test/platforms, which the connector tests, the demo and
# the benchmarks run against, checked against what each platform documents: with plain
# HTTP from this test, with the extension's own platform functions where they exist
# (verify(), stripe_form_encode(), odoo_execute_kw_request(), odoo_classify_response()),
# and with the platforms' npm libraries (stripe, @hubspot/api-client, @shopify/shopify-api
# through test/interop/platform_servers.mjs).
#
#   Shopify      auth, versions, page_info pagination followed verbatim (and the 400s for
#                anything else), the status filter, the call-limit bucket and its 429,
#                injected faults, inventory level set, products, fulfillment, signed
#                webhooks sent out of order and twice, subscriptions (loopback only),
#                the request log's filters, config and reset
#   WooCommerce  auth and its errors, modified_after (exclusive, GMT or local), totals,
#                pages past the end, customers, product and order updates, signed
#                webhooks with their delivery ids, the unsigned ping
#   Stripe       auth, the form body the extension encodes, Idempotency-Key replay (a
#                stored 500 included), mismatch, 409 while in flight, 24 h expiry, card
#                declines, the events list, signed webhooks
#   HubSpot      auth, search with filters and sorts, the 10,000-result window, batch
#                upsert, rate-limit headers and 429s, v3-signed webhooks
#   Odoo         common service, AccessDenied, search_read by write_date with id
#                tiebreak, unstable ties without it, sale orders with line commands, the
#                error envelope classified by the extension, an injected serialization
#                failure
#
# Node and the npm packages are required: without them this test fails, it never skips.

use strict;
use warnings;

use Digest::MD5 qw(md5);
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex sha256_hex);
use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PlatformServer;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $J = JSON::PP->new->canonical;

my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -f "$interop/platform_servers.mjs", 'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
for my $p (qw(stripe @hubspot/api-client @shopify/shopify-api))
{
	ok(defined $interop && -f "$interop/node_modules/$p/package.json", "npm package $p is installed")
	  or diag('run scripts/install-deps, which runs npm ci in test/interop');
}
ok(-f PlatformServer::platforms_dir() . '/server.mjs', 'the platform servers are where PlatformServer looks');
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

my $node = new_integration_node('platforms');
my $recv = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub dq { return '$pq$' . $_[0] . '$pq$'; }

# A request to a server, its JSON body decoded (bytes kept as bytes).
sub call
{
	my ($srv, $method, $path, %o) = @_;
	my $r = $srv->http($method, $path, %o);
	$r->{json} = eval { $J->decode($r->{content}) };
	return $r;
}

# http://127.0.0.1:PORT/x?y → /x?y
sub path_of { return $_[0] =~ s{^http://127\.0\.0\.1:\d+}{}r; }

# Link header → {rel => url}
sub links
{
	my ($h) = @_;
	my %l;
	for my $v (ref $h ? @$h : ($h // ()))
	{
		$l{$2} = $1 while $v =~ /<([^>]+)>; rel="([^"]+)"/g;
	}
	return \%l;
}

sub hmac_md5_hex
{
	my ($data, $key) = @_;
	$key = md5($key) if length($key) > 64;
	$key .= "\0" x (64 - length($key));
	my $inner = md5(($key ^ ("\x36" x 64)) . $data);
	return unpack('H*', md5(($key ^ ("\x5c" x 64)) . $inner));
}

sub ids_of { return [ map { $_->{id} } @{ $_[0] } ]; }

# integration.verify() of a request the server sent (headers as the receiver logged them,
# plus $extra), with more arguments in $args (SQL text).
sub ext_verify
{
	my ($scheme, $secret, $headers, $body, $extra, $args) = @_;
	my %h = (%$headers, %{ $extra // {} });
	return sql(sprintf("SELECT integration.verify('%s', %s, %s::jsonb, %s%s)",
		$scheme, dq($secret), dq($J->encode(\%h)), dq($body), $args // ''));
}

sub hsearch_on { return call($_[0], 'POST', '/crm/v3/objects/contacts/search', headers => $_[1], body => '{"limit":1}'); }

########################################################################
# The launcher
########################################################################

{
	my ($out, $err) = ('', '');
	my $st = IPC::Run::run([ 'node', PlatformServer::platforms_dir() . '/server.mjs', '--platform', 'shopify',
		'--port', '0', '--state-dir', PostgreSQL::Test::Utils::tempdir('refused'), '--host', '0.0.0.0' ],
		'>', \$out, '2>', \$err);
	ok(!$st && $err =~ /--host must be a 127\.x\.x\.x address/, 'the launcher refuses to listen beyond loopback');
}

########################################################################
# Shopify
########################################################################

my $shop = PlatformServer->start('shopify');
my %tok = ('X-Shopify-Access-Token' => $shop->credential('access_token'));
my $v = '/admin/api/2025-01';

{
	my $r = call($shop, 'GET', "$v/orders.json");
	is($r->{status}, 401, 'shopify: no access token is 401');
	is($r->{content}, '{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}',
		'shopify: with Shopify\'s error body');
	$r = call($shop, 'GET', "$v/orders.json", headers => { 'X-Shopify-Access-Token' => 'shpat_wrong' });
	is($r->{status}, 401, 'shopify: a wrong access token is 401');
	$r = call($shop, 'GET', '/admin/api/2023-01/shop.json', headers => \%tok);
	is_deeply([ $r->{status}, $r->{headers}{'x-shopify-api-version'} ], [ 200, '2024-10' ],
		'shopify: a retired version falls forward to the oldest supported one, and says so');
	$r = call($shop, 'GET', '/admin/api/2025-02/shop.json', headers => \%tok);
	is_deeply([ $r->{status}, $r->{content} ], [ 404, '{"errors":"Not Found"}' ], 'shopify: a version that never existed is 404');
}

# 1,000 orders, 100 in each second from 2025-01-01T00:00:00Z.
my @oids = @{ $shop->seed('orders', count => 1000, per_second => 100)->{ids} };
{
	my $first = "$v/orders.json?status=any&order=updated_at+asc&limit=250&updated_at_min=2024-12-31T19:00:03-05:00";
	my (@pages, @linksets);
	my $url = $first;
	while (defined $url && @pages < 10)
	{
		my $r = call($shop, 'GET', $url, headers => \%tok);
		last unless $r->{status} == 200;
		push @pages, $r->{json}{orders};
		push @linksets, links($r->{headers}{link});
		$url = $linksets[-1]{next} ? path_of($linksets[-1]{next}) : undef;
	}
	is_deeply([ map { scalar @$_ } @pages ], [ 250, 250, 200 ], 'shopify: 700 orders from the boundary second on, in pages of 250');
	is_deeply([ map { @{ ids_of($_) } } @pages ], [ @oids[ 300 .. 999 ] ],
		'shopify: each once, in updated_at order with the id tiebreak, the boundary second included');
	is($pages[0][0]{updated_at}, '2024-12-31T19:00:03-05:00', 'shopify: updated_at in the shop\'s zone with its offset');
	is_deeply([ map { join(',', sort keys %$_) } @linksets ], [ 'next', 'next,previous', 'previous' ],
		'shopify: Link has rel="next" until the last page and rel="previous" after the first');
	like($linksets[0]{next}, qr{^\Q${\ $shop->url("$v\/orders.json?limit=250&page_info=") }\E[A-Za-z0-9_-]+$},
		'shopify: the next link carries limit and an opaque page_info, nothing else');

	my $next = path_of($linksets[0]{next});
	my $r = call($shop, 'GET', path_of($linksets[2]{previous}), headers => \%tok);
	is_deeply(ids_of($r->{json}{orders}), ids_of($pages[1]), 'shopify: rel="previous" of the last page is the middle page');
	$r = call($shop, 'GET', "$next&status=any", headers => \%tok);
	is_deeply([ $r->{status}, $r->{content} ],
		[ 400, '{"errors":{"status":"status cannot be passed when page_info is present. See https://shopify.dev/api/usage/pagination-rest for more information."}}' ],
		'shopify: a filter beside page_info is 400');
	$r = call($shop, 'GET', "$next&updated_at_min=2025-01-01T00:00:00Z", headers => \%tok);
	is($r->{status}, 400, 'shopify: so is updated_at_min beside page_info');
	$r = call($shop, 'GET', ($next =~ s/limit=250/limit=100/r) . '&fields=id,updated_at', headers => \%tok);
	is_deeply([ $r->{status}, ids_of($r->{json}{orders}), [ sort keys %{ $r->{json}{orders}[0] } ] ],
		[ 200, [ @{ ids_of($pages[1]) }[ 0 .. 99 ] ], [ sort qw(id updated_at) ] ],
		'shopify: limit and fields may change beside page_info');
	(my $tampered = $next) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
	$r = call($shop, 'GET', $tampered, headers => \%tok);
	is_deeply([ $r->{status}, $r->{content} ], [ 400, '{"errors":{"page_info":"Invalid value."}}' ],
		'shopify: a page_info changed by one character is 400');
	$r = call($shop, 'GET', $next =~ s/orders\.json/products.json/r, headers => \%tok);
	is($r->{status}, 400, 'shopify: an orders page_info on products.json is 400');
	$r = call($shop, 'GET', "$v/orders.json?limit=251", headers => \%tok);
	is_deeply([ $r->{status}, $r->{content} ], [ 400, '{"errors":{"limit":"limit must be an integer between 1 and 250"}}' ],
		'shopify: limit above 250 is 400');

	$shop->clock(set => '2025-03-01T12:00:00Z');
	$r = call($shop, 'POST', "$v/orders/$oids[0]/close.json", headers => \%tok, body => '{}');
	is_deeply([ $r->{status}, @{ $r->{json}{order} }{qw(closed_at updated_at)} ], [ 200, '2025-03-01T07:00:00-05:00', '2025-03-01T07:00:00-05:00' ],
		'shopify: orders/<id>/close.json closes the order now (the server\'s clock), in the shop\'s zone');
	$shop->clock(real => 1);
	my @counts = map { call($shop, 'GET', "$v/orders/count.json$_", headers => \%tok)->{json}{count} } ('', '?status=any', '?status=closed');
	is_deeply(\@counts, [ 999, 1000, 1 ], 'shopify: without status=any a listing sees open orders only');
}

# The call-limit bucket, on a server of its own that does not leak.
{
	my $b = PlatformServer->start('shopify', config => { bucket_size => 5, leak_per_second => 0, retry_after => '1.0' });
	my @limits = map { my $r = call($b, 'GET', "$v/shop.json", headers => \%tok); "$r->{status} $r->{headers}{'x-shopify-shop-api-call-limit'}" } 1 .. 6;
	is_deeply(\@limits, [ '200 1/5', '200 2/5', '200 3/5', '200 4/5', '200 5/5', '429 5/5' ],
		'shopify: X-Shopify-Shop-Api-Call-Limit counts up to the bucket size, then 429');
	my $r = call($b, 'GET', "$v/shop.json", headers => \%tok);
	is_deeply([ $r->{status}, $r->{headers}{'retry-after'}, $r->{content} ],
		[ 429, '1.0', '{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}' ],
		'shopify: the 429 carries Retry-After and Shopify\'s message');
	$b->config(leak_per_second => 100);
	usleep(200_000);
	$r = call($b, 'GET', "$v/shop.json", headers => \%tok);
	is("$r->{status} $r->{headers}{'x-shopify-shop-api-call-limit'}", '200 1/5', 'shopify: the bucket leaks');
	$b->stop;
}

# Injected faults.
{
	my $path = "$v/orders.json?limit=1&status=any";
	$shop->fault('429', after => 1, match => { method => 'GET', path => "$v/orders.json" }, retry_after => '3.0');
	my @st = map { my $r = call($shop, 'GET', $path, headers => \%tok); "$r->{status}" . ($r->{headers}{'retry-after'} ? " $r->{headers}{'retry-after'}" : '') } 1 .. 3;
	is_deeply(\@st, [ '200', '429 3.0', '200' ], 'shopify: a 429 injected after one request, for one request');
	$shop->fault('500');
	my $r = call($shop, 'GET', $path, headers => \%tok);
	is_deeply([ $r->{status}, $r->{content} ], [ 500, '{"errors":"Internal Server Error"}' ], 'shopify: an injected 500');
	$shop->fault('502');
	$r = call($shop, 'GET', $path, headers => \%tok);
	ok($r->{status} == 502 && $r->{content} =~ m{<title>502 Bad Gateway</title>}, 'shopify: an injected 502 is a gateway\'s HTML page');
	$shop->fault('reset');
	$r = call($shop, 'GET', $path, headers => \%tok);
	is($r->{status}, 599, 'shopify: an injected reset fails the request');
	$shop->fault('hang');
	my $t0 = time();
	$r = call($shop, 'GET', $path, headers => \%tok, timeout => 1);
	ok($r->{status} == 599 && time() - $t0 >= 0.9, 'shopify: an injected hang never answers');
	$shop->fault('reset_after', match => { method => 'PUT' });
	$r = call($shop, 'PUT', "$v/orders/$oids[5].json", headers => { %tok, 'Content-Type' => 'application/json' },
		body => '{"order":{"id":' . $oids[5] . ',"note":"lost answer"}}');
	is($r->{status}, 599, 'shopify: reset_after loses the answer');
	is($shop->get('orders', $oids[5])->{note}, 'lost answer', 'shopify: but the update was made');
	my ($put) = $shop->requests(method => 'PUT');
	is_deeply([ @$put{qw(method path query body status fault)}, $put->{headers}{'x-shopify-access-token'}, $put->{headers}{'content-type'} ],
		[ 'PUT', "$v/orders/$oids[5].json", '', '{"order":{"id":' . $oids[5] . ',"note":"lost answer"}}', 200, 'reset_after',
		  $tok{'X-Shopify-Access-Token'}, 'application/json' ],
		'shopify: the request log has method, path, query, body, headers, status and fault');
	my @lines = split /\n/, PlatformServer::slurp($shop->dir . '/requests.jsonl');
	is(scalar @lines, $shop->state->{requests}, 'shopify: requests.jsonl in the state directory has a line per request');
}

# Writes: inventory, products, variants, fulfillment.
{
	my ($pid) = @{ $shop->seed('products', count => 1)->{ids} };
	my $product = $shop->get('products', $pid);
	my $item = $product->{variants}[0]{inventory_item_id};
	my $loc = 65544149101;
	my %json_tok = (%tok, 'Content-Type' => 'application/json');
	my $r = call($shop, 'POST', "$v/inventory_levels/set.json", headers => \%json_tok,
		body => qq({"location_id":$loc,"inventory_item_id":$item,"available":42}));
	is_deeply([ $r->{status}, @{ $r->{json}{inventory_level} }{qw(inventory_item_id location_id available admin_graphql_api_id)} ],
		[ 200, $item, $loc, 42, "gid://shopify/InventoryLevel/$loc?inventory_item_id=$item" ],
		'shopify: inventory_levels/set.json sets the level');
	$r = call($shop, 'GET', "$v/products/$pid.json", headers => \%tok);
	is($r->{json}{product}{variants}[0]{inventory_quantity}, 42, 'shopify: and the variant\'s inventory_quantity follows');
	$r = call($shop, 'POST', "$v/inventory_levels/set.json", headers => \%json_tok, body => qq({"inventory_item_id":$item,"available":1}));
	is_deeply([ $r->{status}, $r->{content} ], [ 400, '{"errors":{"location_id":"Required parameter missing or invalid"}}' ],
		'shopify: without location_id it is 400');
	$r = call($shop, 'POST', "$v/inventory_levels/set.json", headers => \%json_tok, body => qq({"location_id":$loc,"inventory_item_id":1,"available":1}));
	is_deeply([ $r->{status}, $r->{content} ], [ 422, '{"errors":["Inventory item does not exist"]}' ],
		'shopify: an unknown inventory item is 422');

	$r = call($shop, 'POST', "$v/products.json", headers => \%json_tok, body => '{"product":{"body_html":"x"}}');
	is_deeply([ $r->{status}, $r->{content} ], [ 422, '{"errors":{"title":["can\'t be blank"]}}' ], 'shopify: a product without a title is 422');
	$r = call($shop, 'POST', "$v/products.json", headers => \%json_tok, body => '{"product":{"title":"Mug","variants":[{"price":"12.5","sku":"MUG-1"}]}}');
	is_deeply([ $r->{status}, $r->{json}{product}{title}, $r->{json}{product}{variants}[0]{price}, $r->{json}{product}{variants}[0]{sku} ],
		[ 201, 'Mug', '12.50', 'MUG-1' ], 'shopify: POST products.json is 201 with the product');
	my $vid = $r->{json}{product}{variants}[0]{id};
	$r = call($shop, 'PUT', "$v/variants/$vid.json", headers => \%json_tok, body => qq({"variant":{"id":$vid,"price":"15.00"}}));
	is_deeply([ $r->{status}, $r->{json}{variant}{price} ], [ 200, '15.00' ], 'shopify: PUT variants/<id>.json changes the price');
	$r = call($shop, 'PUT', "$v/variants/$vid.json", headers => \%json_tok, body => '{"variant":{"price":"cheap"}}');
	is($r->{status}, 422, 'shopify: a price that is not a number is 422');

	my $oid = $oids[1];
	$r = call($shop, 'GET', "$v/orders/$oid/fulfillment_orders.json", headers => \%tok);
	my $fo = $r->{json}{fulfillment_orders}[0];
	is_deeply([ scalar @{ $r->{json}{fulfillment_orders} }, $fo->{status}, $fo->{order_id} ], [ 1, 'open', $oid ],
		'shopify: an order has an open fulfillment order');
	my $body = $J->encode({ fulfillment => { line_items_by_fulfillment_order => [ { fulfillment_order_id => $fo->{id} } ],
		tracking_info => { number => '1Z999', company => 'UPS' }, notify_customer => JSON::PP::false } });
	$r = call($shop, 'POST', "$v/fulfillments.json", headers => \%json_tok, body => $body);
	is_deeply([ $r->{status}, @{ $r->{json}{fulfillment} }{qw(status order_id tracking_number tracking_company)} ],
		[ 201, 'success', $oid, '1Z999', 'UPS' ], 'shopify: POST fulfillments.json fulfils it');
	is($shop->get('orders', $oid)->{fulfillment_status}, 'fulfilled', 'shopify: the order is fulfilled');
	$r = call($shop, 'POST', "$v/fulfillments.json", headers => \%json_tok, body => $body);
	is_deeply([ $r->{status}, $r->{content} ], [ 422, qq({"errors":["Fulfillment order $fo->{id} has an unfulfillable status= closed."]}) ],
		'shopify: a second fulfillment of it is 422');
}

# Webhooks: two updates of one order delivered in reverse order, the later one twice.
my $shop_webhook;
{
	my $secret = $shop->credential('app_secret');
	$shop->webhook(url => receiver_url($recv, '/shopify'), order => [ 1, 0, 1 ], events => [
		{ topic => 'orders/updated', id => $oids[2], update => { note => 'first' } },
		{ topic => 'orders/updated', id => $oids[2], update => { note => 'second' } } ]);
	my @got = wait_for_requests($recv, 3, 10, sub { $_[0]{path_only} eq '/shopify' });
	is(scalar @got, 3, 'shopify: three deliveries arrive');
	is_deeply([ map { $J->decode($_->{body})->{note} } @got ], [ 'second', 'first', 'second' ],
		'shopify: out of order, the later change twice');
	my @keys = qw(x-shopify-webhook-id x-shopify-event-id x-shopify-triggered-at x-shopify-hmac-sha256);
	is_deeply([ @{ $got[2]{headers} }{@keys}, $got[2]{body} ], [ @{ $got[0]{headers} }{@keys}, $got[0]{body} ],
		'shopify: the duplicate repeats ids, time, signature and body');
	isnt($got[0]{headers}{'x-shopify-event-id'}, $got[1]{headers}{'x-shopify-event-id'}, 'shopify: the two changes are two events');
	is_deeply([ map { $_->{headers}{'x-shopify-hmac-sha256'} eq encode_base64(hmac_sha256($_->{body}, $secret), '') ? 1 : 0 } @got ],
		[ 1, 1, 1 ], 'shopify: X-Shopify-Hmac-Sha256 is base64 HMAC-SHA256 of the raw body under the app secret');
	is_deeply([ @{ $got[0]{headers} }{qw(x-shopify-topic x-shopify-shop-domain x-shopify-api-version)} ],
		[ 'orders/updated', 'loopback-shop.myshopify.com', '2025-10' ], 'shopify: topic, shop domain and API version headers');
	is(ext_verify('shopify', $secret, $got[1]{headers}, $got[1]{body}), 't', 'shopify: integration.verify() accepts it');
	$shop_webhook = { headers => $got[0]{headers}, body => $got[0]{body}, secret => $secret };
}

# Subscriptions: changes made through the API are delivered as webhooks, to loopback
# addresses only; the request log's filters; reset.
{
	my $s = PlatformServer->start('shopify', config => { webhook_subscriptions => [
		{ topic => 'orders/updated', url => 'http://192.0.2.1/elsewhere' },
		{ topic => 'orders/updated', url => receiver_url($recv, '/subscribed') } ] });
	my ($oid) = @{ $s->seed('orders', count => 2)->{ids} };
	my $seq = $s->last_seq;
	my $r = call($s, 'PUT', "$v/orders/$oid.json", headers => { %tok, 'Content-Type' => 'application/json' },
		body => '{"order":{"note":"from the API"}}');
	is($r->{status}, 200, 'shopify subscriptions: an order updated through the API');
	my @got = wait_for_requests($recv, 1, 10, sub { $_[0]{path_only} eq '/subscribed' });
	is_deeply([ map { [ $_->{headers}{'x-shopify-topic'}, $J->decode($_->{body})->{id}, $J->decode($_->{body})->{note},
		$_->{headers}{'x-shopify-hmac-sha256'} eq encode_base64(hmac_sha256($_->{body}, $s->credential('app_secret')), '') ? 'signed' : 'unsigned' ] } @got ],
		[ [ 'orders/updated', $oid, 'from the API', 'signed' ] ], 'shopify subscriptions: delivered once, signed, with the change');
	like(PlatformServer::slurp($s->dir . '/server.log'), qr{webhook subscription orders/updated skipped: http://192\.0\.2\.1/elsewhere is not http on a loopback address},
		'shopify subscriptions: a subscription beyond loopback is skipped, and the server log says so');
	my @lines = map { $J->decode($_) } split /\n/, PlatformServer::slurp($s->dir . '/webhooks.jsonl');
	is_deeply([ map { [ $_->{url}, $_->{status} ] } @lines ], [ [ receiver_url($recv, '/subscribed'), 200 ] ],
		'shopify subscriptions: webhooks.jsonl records the delivery and its answer');

	call($s, 'GET', "$v/shop.json", headers => \%tok);
	is_deeply([ map { "$_->{seq} $_->{method} $_->{path}" } $s->requests(since => $seq) ],
		[ ($seq + 1) . " PUT $v/orders/$oid.json", ($seq + 2) . " GET $v/shop.json" ], 'shopify: requests since a seq, in order');
	is_deeply([ map { $_->{path} } $s->requests(path => "$v/shop"), $s->requests(method => 'put') ], [ "$v/shop.json", "$v/orders/$oid.json" ],
		'shopify: requests filtered by path prefix and by method');
	is($s->last_seq, $seq + 2, 'shopify: last_seq is the latest request\'s seq');

	$s->config(access_token => 'shpat_changed');
	is(call($s, 'GET', "$v/shop.json", headers => \%tok)->{status}, 401, 'shopify: config changes the access token the server wants');
	is($s->credential('access_token'), 'shpat_changed', 'shopify: and credential() follows');
	$s->reset;
	is_deeply([ $s->credential('access_token'), call($s, 'GET', "$v/shop.json", headers => \%tok)->{status} ], [ 'shpat_loopback_token', 200 ],
		'shopify: reset goes back to the configuration the server started with');
	is_deeply([ $s->state->{counts}, [ map { $_->{path} } $s->requests ] ], [ { orders => 0, products => 0, customers => 0 }, [ "$v/shop.json" ] ],
		'shopify: and forgets the data and the request log');
	$s->stop;
}

########################################################################
# WooCommerce
########################################################################

my $woo = PlatformServer->start('woocommerce');
my %basic = (Authorization => 'Basic ' . encode_base64($woo->credential('consumer_key') . ':' . $woo->credential('consumer_secret'), ''));
my $wc = '/wp-json/wc/v3';

{
	my $r = call($woo, 'GET', "$wc/orders");
	is_deeply([ $r->{status}, $r->{content} ],
		[ 401, '{"code":"woocommerce_rest_cannot_view","message":"Sorry, you cannot list resources.","data":{"status":401}}' ],
		'woocommerce: no credentials: 401 woocommerce_rest_cannot_view');
	$r = call($woo, 'GET', "$wc/orders", headers => { Authorization => 'Basic ' . encode_base64('ck_loopback_key:cs_wrong', '') });
	is_deeply([ $r->{status}, $r->{content} ],
		[ 401, '{"code":"woocommerce_rest_authentication_error","message":"Consumer secret is invalid.","data":{"status":401}}' ],
		'woocommerce: a wrong secret: 401 Consumer secret is invalid.');
	$r = call($woo, 'GET', "$wc/orders", headers => { Authorization => 'Basic ' . encode_base64('ck_other:cs_other', '') });
	is($r->{json}{code}, 'woocommerce_rest_cannot_view', 'woocommerce: an unknown key authenticates nobody');
	$r = call($woo, 'GET', "$wc/orders?consumer_key=ck_loopback_key&consumer_secret=cs_loopback_secret");
	is($r->{status}, 200, 'woocommerce: the keys as query parameters work');
}

my @wids = @{ $woo->seed('orders', count => 250, per_second => 100)->{ids} };
{
	my $q = 'modified_after=2025-01-01T00:00:00&dates_are_gmt=true&orderby=modified&order=asc&per_page=100';
	my $r1 = call($woo, 'GET', "$wc/orders?$q", headers => \%basic);
	my $l1 = links($r1->{headers}{link});
	my $r2 = call($woo, 'GET', path_of($l1->{next}), headers => \%basic);
	is_deeply([ @{ $r1->{headers} }{qw(x-wp-total x-wp-totalpages)}, scalar @{ $r1->{json} }, scalar @{ $r2->{json} } ],
		[ 150, 2, 100, 50 ], 'woocommerce: X-WP-Total and X-WP-TotalPages, pages of per_page');
	is_deeply([ @{ ids_of($r1->{json}) }, @{ ids_of($r2->{json}) } ], [ @wids[ 100 .. 249 ] ],
		'woocommerce: modified_after is exclusive: the boundary second is left out, the rest once each in order');
	is_deeply([ sort keys %$l1 ], ['next'], 'woocommerce: page 1 links rel="next" only');
	is($r1->{json}[0]{date_modified_gmt}, '2025-01-01T00:00:01', 'woocommerce: date_modified_gmt without a zone');
	my $r3 = call($woo, 'GET', "$wc/orders?$q&page=3", headers => \%basic);
	my $l3 = links($r3->{headers}{link});
	is_deeply([ $r3->{status}, $r3->{content}, @{ $r3->{headers} }{qw(x-wp-total x-wp-totalpages)}, [ sort keys %$l3 ] ],
		[ 200, '[]', 150, 2, ['prev'] ], 'woocommerce: a page past the end is an empty array with the totals');
	is($l3->{prev}, $woo->url("$wc/orders?" . ($q =~ s/:/%3A/gr) . '&page=2'),
		'woocommerce: whose rel="prev" is the last page, with the other parameters kept');
	my $r = call($woo, 'GET', "$wc/orders?per_page=101", headers => \%basic);
	is_deeply([ $r->{status}, $r->{content} ],
		[ 400, '{"code":"rest_invalid_param","message":"Invalid parameter(s): per_page","data":{"status":400,"params":{"per_page":"per_page must be between 1 (inclusive) and 100 (inclusive)"},"details":{"per_page":{"code":"rest_out_of_bounds","message":"per_page must be between 1 (inclusive) and 100 (inclusive)","data":null}}}}' ],
		'woocommerce: per_page above 100 is 400 rest_invalid_param');
	$r = call($woo, 'GET', "$wc/orders?modified_after=2025-01-01", headers => \%basic);
	is_deeply([ $r->{status}, $r->{json}{data}{params}{modified_after} ], [ 400, 'Invalid date.' ], 'woocommerce: a date without a time is 400');

	$woo->config(gmt_offset_minutes => 120);
	my @totals = map { call($woo, 'GET', "$wc/orders?modified_after=2025-01-01T01:00:00$_", headers => \%basic)->{headers}{'x-wp-total'} } ('', '&dates_are_gmt=true');
	is_deeply(\@totals, [ 250, 0 ], 'woocommerce: modified_after is site-local time unless dates_are_gmt=true');
	$woo->config(gmt_offset_minutes => 0);

	$woo->seed('customers', count => 3);
	$r = call($woo, 'GET', "$wc/customers?modified_after=2030-01-01T00:00:00", headers => \%basic);
	is(scalar @{ $r->{json} }, 3, 'woocommerce: customers ignore modified_after');
	$r = call($woo, 'GET', "$wc/customers?orderby=modified", headers => \%basic);
	is($r->{json}{data}{params}{orderby}, 'orderby is not one of id, include, name, and registered_date.',
		'woocommerce: and cannot be ordered by modified');
}

{
	my ($pid) = @{ $woo->seed('products', records => [ { name => "Caf\xc3\xa9 Cr\xc3\xa8me", sku => 'CAFE', regular_price => '9.00',
		manage_stock => JSON::PP::true, stock_quantity => 5, updated_at => '2025-02-01T00:00:00Z' } ])->{ids} };
	my %jb = (%basic, 'Content-Type' => 'application/json');
	$woo->clock(set => '2025-02-03T04:05:06Z');
	my $r = call($woo, 'PUT', "$wc/products/$pid", headers => \%jb, body => '{"regular_price":"12.50","stock_quantity":7}');
	is_deeply([ $r->{status}, @{ $r->{json} }{qw(regular_price price stock_quantity stock_status)} ],
		[ 200, '12.50', '12.50', 7, 'instock' ], 'woocommerce: PUT products/<id> with regular_price and stock_quantity');
	is_deeply([ @{ $r->{json} }{qw(date_created_gmt date_modified_gmt)} ], [ '2025-02-01T00:00:00', '2025-02-03T04:05:06' ],
		'woocommerce: and date_modified moves to the time of the change');
	like($r->{content}, qr/"name":"Caf\\u00e9 Cr\\u00e8me"/, 'woocommerce: bodies are written as PHP writes them (\\u00e9)');
	$r = call($woo, 'PUT', "$wc/products/$pid", headers => \%jb, body => '{"regular_price":12.5}');
	is_deeply([ $r->{status}, $r->{content} ],
		[ 400, '{"code":"rest_invalid_param","message":"Invalid parameter(s): regular_price","data":{"status":400,"params":{"regular_price":"regular_price is not of type string."},"details":{"regular_price":{"code":"rest_invalid_type","message":"regular_price is not of type string.","data":null}}}}' ],
		'woocommerce: a number for regular_price is 400');
	$r = call($woo, 'PUT', "$wc/products/$pid", headers => \%jb, body => '{"manage_stock":false,"stock_quantity":3}');
	is_deeply([ $r->{json}{manage_stock}, $r->{json}{stock_quantity} ], [ JSON::PP::false, undef ],
		'woocommerce: stock_quantity counts only while the product manages stock');
	$r = call($woo, 'PUT', "$wc/products/999999", headers => \%jb, body => '{"regular_price":"1.00"}');
	is_deeply([ $r->{status}, $r->{content} ], [ 400, '{"code":"woocommerce_rest_product_invalid_id","message":"Invalid ID.","data":{"status":400}}' ],
		'woocommerce: PUT of an unknown product is 400 Invalid ID.');
	$r = call($woo, 'GET', "$wc/products/999999", headers => \%basic);
	is($r->{status}, 404, 'woocommerce: GET of it is 404');
	$r = call($woo, 'POST', "$wc/products", headers => \%jb, body => '{"name":"Tea","regular_price":"3.00"}');
	is_deeply([ $r->{status}, $r->{headers}{location} ], [ 201, $woo->url("$wc/products/$r->{json}{id}") ],
		'woocommerce: POST products is 201 with Location');

	$r = call($woo, 'PUT', "$wc/orders/$wids[0]", headers => \%jb, body => '{"status":"completed"}');
	is_deeply([ $r->{status}, @{ $r->{json} }{qw(status date_completed_gmt date_modified_gmt)} ],
		[ 200, 'completed', '2025-02-03T04:05:06', '2025-02-03T04:05:06' ], 'woocommerce: PUT orders/<id> status completed');
	$woo->clock(real => 1);
	$r = call($woo, 'PUT', "$wc/orders/$wids[0]", headers => \%jb, body => '{"status":"shipped"}');
	is($r->{json}{data}{params}{status},
		'status is not one of pending, processing, on-hold, completed, cancelled, refunded, failed, and checkout-draft.',
		'woocommerce: an unknown status is 400');
	$woo->config(key_permissions => 'read');
	$r = call($woo, 'PUT', "$wc/orders/$wids[0]", headers => \%jb, body => '{"status":"processing"}');
	is_deeply([ $r->{status}, $r->{json}{message} ], [ 401, 'The API key provided does not have write permissions.' ],
		'woocommerce: a read-only key cannot write');
	$woo->config(key_permissions => 'read_write');

	# Webhooks under a frozen clock: the delivery id is wp_hash(id . time()).
	my $T = 1748779200;	# 2025-06-01T12:00:00Z
	$woo->clock(set => '2025-06-01T12:00:00Z');
	$woo->webhook(url => receiver_url($recv, '/woo'), order => [ 0, 0, 1 ],
		events => [ { topic => 'product.updated', id => $pid }, { ping => 1 } ]);
	$woo->clock(advance_s => 1);
	$woo->webhook(url => receiver_url($recv, '/woo'), events => [ { topic => 'product.updated', id => $pid } ]);
	my @got = wait_for_requests($recv, 4, 10, sub { $_[0]{path_only} eq '/woo' });
	my $secret = $woo->credential('webhook_secret');
	my $salt = 'loopback-nonce-salt';
	is_deeply([ map { $_->{headers}{'x-wc-webhook-delivery-id'} } @got[ 0, 1, 3 ] ],
		[ hmac_md5_hex("1$T", $salt), hmac_md5_hex("1$T", $salt), hmac_md5_hex('1' . ($T + 1), $salt) ],
		'woocommerce: X-WC-Webhook-Delivery-ID is made at send time: equal within a second, new a second later');
	is_deeply([ map { $_->{body} eq $got[0]{body} && $_->{headers}{'x-wc-webhook-signature'} eq $got[0]{headers}{'x-wc-webhook-signature'} ? 1 : 0 } @got[ 1, 3 ] ],
		[ 1, 1 ], 'woocommerce: the repeats carry the same body and signature');
	is($got[0]{headers}{'x-wc-webhook-signature'}, encode_base64(hmac_sha256($got[0]{body}, $secret), ''),
		'woocommerce: X-WC-Webhook-Signature is base64 HMAC-SHA256 of the raw body');
	is(ext_verify('woocommerce', $secret, $got[0]{headers}, $got[0]{body}), 't', 'woocommerce: integration.verify() accepts it');
	is_deeply([ @{ $got[0]{headers} }{qw(x-wc-webhook-topic x-wc-webhook-resource x-wc-webhook-event x-wc-webhook-id x-wc-webhook-source)} ],
		[ 'product.updated', 'product', 'updated', '1', $woo->url('/') ], 'woocommerce: topic, resource, event, id and source headers');
	ok(index($got[0]{body}, '"name":"Caf\u00e9 Cr\u00e8me"') >= 0 && index($got[0]{body}, '"permalink":"http:\/\/127.0.0.1') >= 0,
		'woocommerce: the signed body is PHP-encoded (\\u00e9, \\/), so only the raw bytes verify');
	is_deeply([ $got[2]{body}, $got[2]{headers}{'content-type'}, scalar grep { /^x-wc-/ } keys %{ $got[2]{headers} } ],
		[ 'webhook_id=1', 'application/x-www-form-urlencoded', 0 ], 'woocommerce: the ping is webhook_id=1 with no X-WC-* header');
	$woo->clock(real => 1);
}

########################################################################
# Stripe
########################################################################

my $stripe = PlatformServer->start('stripe');
my %bearer = (Authorization => 'Bearer ' . $stripe->credential('secret_key'));
my %form = (%bearer, 'Content-Type' => 'application/x-www-form-urlencoded');

sub intents { return scalar $stripe->list('payment_intents'); }

{
	my $r = call($stripe, 'POST', '/v1/customers', body => 'email=a@b.c');
	is_deeply([ $r->{status}, $r->{json}{error}{type}, substr($r->{json}{error}{message}, 0, 31) ],
		[ 401, 'invalid_request_error', 'You did not provide an API key.' ], 'stripe: no key is 401');
	$r = call($stripe, 'GET', '/v1/customers', headers => { Authorization => 'Bearer sk_test_wrongkey1234' });
	is($r->{json}{error}{message}, 'Invalid API Key provided: sk_test_********1234', 'stripe: a wrong key is 401, masked');

	my $payload = '{"email": "form@example.com", "metadata": {"order_id": "SO123", "note": "Zoë & co. (gift)"}, "address": {"line1": "Straße 1", "city": "Zürich"}, "preferred_locales": ["de", "fr"]}';
	my $body = sql('SELECT integration.stripe_form_encode(' . dq($payload) . '::jsonb)');
	$r = call($stripe, 'POST', '/v1/customers', headers => \%form, body => $body);
	is_deeply([ $r->{status}, $r->{json}{metadata}, $r->{json}{address}, $r->{json}{preferred_locales} ],
		[ 200, { order_id => 'SO123', note => "Zo\xc3\xab & co. (gift)" }, { line1 => "Stra\xc3\x9fe 1", city => "Z\xc3\xbcrich" }, [ 'de', 'fr' ] ],
		'stripe: the body stripe_form_encode() makes is read as Stripe reads it');
	my $cus = $r->{json}{id};
	$r = call($stripe, 'POST', "/v1/customers/$cus", headers => \%form, body => sql(q{SELECT integration.stripe_form_encode('{"metadata": {"note": ""}}')}));
	is_deeply($r->{json}{metadata}, { order_id => 'SO123' }, 'stripe: metadata[note]= removes that key');
	$r = call($stripe, 'POST', "/v1/customers/$cus", headers => \%form, body => sql(q{SELECT integration.stripe_form_encode('{"metadata": ""}')}));
	is_deeply($r->{json}{metadata}, {}, 'stripe: metadata= clears them all');
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => \%form, body => 'amount=100&currency=usd&foo=1');
	is_deeply([ $r->{status}, @{ $r->{json}{error} }{qw(type code param message)} ],
		[ 400, 'invalid_request_error', 'parameter_unknown', 'foo', 'Received unknown parameter: foo' ], 'stripe: an unknown parameter is 400');
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => \%form, body => 'currency=usd');
	is($r->{json}{error}{message}, 'Missing required param: amount.', 'stripe: a missing required parameter is 400');
}

{
	my $pi = 'amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true&metadata[order_id]=SO-7';
	my $r1 = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K1' }, body => $pi);
	my $n = intents();
	my $r2 = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K1' }, body => $pi);
	is_deeply([ $r1->{status}, $r1->{json}{status}, $r1->{headers}{'idempotent-replayed'} ], [ 200, 'succeeded', undef ],
		'stripe: a payment intent created and confirmed under an Idempotency-Key');
	is_deeply([ $r2->{status}, $r2->{content}, $r2->{headers}{'idempotent-replayed'}, $r2->{headers}{'original-request'}, intents() ],
		[ 200, $r1->{content}, 'true', $r1->{headers}{'request-id'}, $n ],
		'stripe: the same key and parameters replay the stored answer byte for byte, Idempotent-Replayed: true, nothing created');
	my $r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K1' }, body => $pi =~ s/1000/1001/r);
	is_deeply([ $r->{status}, $r->{json}{error}{type}, $r->{json}{error}{message} ],
		[ 400, 'idempotency_error', "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'K1' if you meant to execute a different request." ],
		'stripe: the same key with other parameters is 400 idempotency_error');
	$r = call($stripe, 'POST', '/v1/customers', headers => { %form, 'Idempotency-Key' => 'K1' }, body => 'email=x@y.z');
	is_deeply([ $r->{status}, $r->{json}{error}{type}, $r->{json}{error}{message} ],
		[ 400, 'idempotency_error', "Keys for idempotent requests can only be used for the same endpoint they were first used for ('POST /v1/payment_intents' vs 'POST /v1/customers'). Try using a key other than 'K1' if you meant to execute a different request." ],
		'stripe: and on another endpoint too');

	# A 500 inside the endpoint is stored and replayed.
	$stripe->fault('500', match => { method => 'POST', path => '/v1/payment_intents' });
	my $before = intents();
	my $f1 = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K2' }, body => $pi);
	my $f2 = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K2' }, body => $pi);
	is_deeply([ $f1->{status}, $f1->{json}, $f1->{headers}{'stripe-should-retry'} ],
		[ 500, { error => { message => 'An unknown error occurred', type => 'api_error' } }, 'false' ],
		'stripe: an injected 500 under a key: api_error, Stripe-Should-Retry: false');
	is_deeply([ $f2->{status}, $f2->{content}, $f2->{headers}{'idempotent-replayed'}, intents() ], [ 500, $f1->{content}, 'true', $before ],
		'stripe: its retry with the same key replays the 500 and charges nothing');
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K3' }, body => $pi);
	is_deeply([ $r->{status}, intents() ], [ 200, $before + 1 ], 'stripe: a new key executes');

	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K4' }, body => 'amount=abc&currency=usd');
	my $again = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K4' }, body => $pi);
	is_deeply([ $r->{status}, $r->{json}{error}{code}, $again->{status}, $again->{headers}{'idempotent-replayed'} ],
		[ 400, 'parameter_invalid_integer', 200, undef ], 'stripe: a request that fails validation is not stored under its key');

	# While the first request with a key runs, a second one with it is 409.
	$stripe->fault('delay', ms => 1500, match => { method => 'POST', path => '/v1/payment_intents' });
	my $seq = $stripe->last_seq;
	my $child = fork();
	if ($child == 0)
	{
		my $res = $stripe->http('POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K5' }, body => $pi);
		POSIX::_exit($res->{status} == 200 ? 0 : 1);
	}
	# The server has the first request (and holds it) once it is in the log.
	$stripe->wait_for_requests(1, 10, since => $seq, method => 'POST', path => '/v1/payment_intents');
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K5' }, body => $pi);
	waitpid($child, 0);
	is_deeply([ $r->{status}, $r->{json}{error}{type}, $r->{headers}{'stripe-should-retry'}, $? >> 8 ], [ 409, 'idempotency_error', 'true', 0 ],
		'stripe: a second request while the first with its key runs is 409, and the first completes');
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K5' }, body => $pi);
	is($r->{headers}{'idempotent-replayed'}, 'true', 'stripe: after that the key replays');

	# Declines.
	my $decl = 'amount=2000&currency=usd&payment_method=pm_card_chargeDeclined&confirm=true';
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K6' }, body => $decl);
	is_deeply([ $r->{status}, @{ $r->{json}{error} }{qw(type code decline_code message)}, $r->{json}{error}{payment_intent}{status}, $r->{headers}{'stripe-should-retry'} ],
		[ 402, 'card_error', 'card_declined', 'generic_decline', 'Your card was declined.', 'requires_payment_method', 'false' ],
		'stripe: pm_card_chargeDeclined is 402 card_error with the decline code and the payment intent');
	my $r6 = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K6' }, body => $decl);
	is_deeply([ $r6->{status}, $r6->{content}, $r6->{headers}{'idempotent-replayed'} ], [ 402, $r->{content}, 'true' ],
		'stripe: the decline is stored and replayed like any answer');

	# Capture, refund, cancel.
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => \%form, body => 'amount=5000&currency=usd&payment_method=pm_card_visa&confirm=true&capture_method=manual');
	my $id = $r->{json}{id};
	is($r->{json}{status}, 'requires_capture', 'stripe: capture_method=manual waits for capture');
	$r = call($stripe, 'POST', "/v1/payment_intents/$id/capture", headers => \%form, body => '');
	is_deeply([ $r->{json}{status}, $r->{json}{amount_received} ], [ 'succeeded', 5000 ], 'stripe: captured');
	$r = call($stripe, 'POST', "/v1/payment_intents/$id/cancel", headers => \%form, body => '');
	is_deeply([ $r->{status}, @{ $r->{json}{error} }{qw(type code message)} ],
		[ 400, 'invalid_request_error', 'payment_intent_unexpected_state', 'You cannot cancel this PaymentIntent because it has a status of succeeded. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.' ],
		'stripe: a succeeded intent cannot be canceled');
	$r = call($stripe, 'POST', '/v1/refunds', headers => \%form, body => "payment_intent=$id&amount=3000");
	is_deeply([ $r->{status}, $r->{json}{status}, $r->{json}{amount} ], [ 200, 'succeeded', 3000 ], 'stripe: a partial refund');
	$r = call($stripe, 'POST', '/v1/refunds', headers => \%form, body => "payment_intent=$id&amount=2001");
	is($r->{json}{error}{message}, 'Refund amount ($20.01) is greater than unrefunded amount on charge ($20.00)', 'stripe: a refund above the rest is 400');

	# Keys expire after 24 hours.
	$stripe->clock(advance_s => 86401);
	$r = call($stripe, 'POST', '/v1/payment_intents', headers => { %form, 'Idempotency-Key' => 'K1' }, body => $pi =~ s/1000/1001/r);
	is_deeply([ $r->{status}, $r->{json}{amount} ], [ 200, 1001 ], 'stripe: after 24 h a key is free for other parameters');
	$stripe->clock(real => 1);
}

# The events list, on a server of its own with a known history.
{
	my $s2 = PlatformServer->start('stripe');
	my $T = 1740787200;	# 2025-03-01T00:00:00Z
	$s2->seed('customers', count => 25, per_second => 10, start => '2025-03-01T00:00:00Z');
	$s2->clock(set => '2025-03-02T00:00:00Z');
	my @all = map { $_->{id} } reverse $s2->list('events');
	my (@seen, $after);
	for (1 .. 5)
	{
		my $r = call($s2, 'GET', '/v1/events?limit=10' . ($after ? "&starting_after=$after" : ''), headers => \%bearer);
		push @seen, @{ ids_of($r->{json}{data}) };
		$after = $r->{json}{data}[-1]{id};
		last unless $r->{json}{has_more};
	}
	is_deeply(\@seen, \@all, 'stripe: /v1/events newest first, paged with starting_after until has_more is false');
	my $r = call($s2, 'GET', "/v1/events?limit=100&created[gt]=$T", headers => \%bearer);
	is_deeply([ scalar @{ $r->{json}{data} }, $r->{json}{has_more}, $r->{json}{url} ], [ 15, JSON::PP::false, '/v1/events' ],
		'stripe: created[gt] leaves out the boundary second');
	$r = call($s2, 'GET', '/v1/events?created[gte]=' . ($T + 1) . '&created[lt]=' . ($T + 2), headers => \%bearer);
	is(scalar @{ $r->{json}{data} }, 10, 'stripe: created[gte] and created[lt] together');
	$r = call($s2, 'GET', '/v1/events?starting_after=evt_nope', headers => \%bearer);
	is_deeply([ $r->{status}, @{ $r->{json}{error} }{qw(code param message)} ], [ 404, 'resource_missing', 'starting_after', "No such event: 'evt_nope'" ],
		'stripe: an unknown starting_after is resource_missing');
	$s2->clock(set => '2025-04-15T00:00:00Z');
	$r = call($s2, 'GET', '/v1/events', headers => \%bearer);
	is(scalar @{ $r->{json}{data} }, 0, 'stripe: events older than 30 days are gone');

	# Webhooks: an event sent twice, each attempt signed with its own timestamp.
	$s2->clock(set => '2025-03-02T00:00:00Z');
	$s2->webhook(url => receiver_url($recv, '/stripe'), order => [ 0, 0 ], events => [ { event_id => $all[-1] } ]);
	my @got = wait_for_requests($recv, 2, 10, sub { $_[0]{path_only} eq '/stripe' });
	my $secret = $s2->credential('webhook_secret');
	my @checks = map {
		my ($t, $sig) = $_->{headers}{'stripe-signature'} =~ /^t=(\d+),v1=([0-9a-f]{64})$/;
		[ $t, $sig eq hmac_sha256_hex("$t.$_->{body}", $secret) ? 'valid' : 'invalid', $J->decode($_->{body})->{id} ]
	} @got;
	is_deeply(\@checks, [ [ $T + 86400, 'valid', $all[-1] ], [ $T + 86400, 'valid', $all[-1] ] ],
		'stripe: Stripe-Signature t=<unix>,v1=<hex HMAC-SHA256 of "t.body"> under the secret, whsec_ included');
	is(ext_verify('stripe', $secret, $got[0]{headers}, $got[0]{body}, {}, ", now => to_timestamp($checks[0][0])"), 't',
		'stripe: integration.verify() accepts it');
	$s2->stop;
}

########################################################################
# HubSpot
########################################################################

my $hub = PlatformServer->start('hubspot', config => { search_per_second => 1000 });
my %hb = (Authorization => 'Bearer ' . $hub->credential('access_token'), 'Content-Type' => 'application/json');
my $S0 = 1735689600000;	# 2025-01-01T00:00:00Z in ms

sub hsearch
{
	my ($type, $q) = @_;
	return call($hub, 'POST', "/crm/v3/objects/$type/search", headers => \%hb, body => $J->encode($q));
}

{
	my $r = call($hub, 'POST', '/crm/v3/objects/contacts/search', body => '{}');
	is_deeply([ $r->{status}, @{ $r->{json} }{qw(status category)} ], [ 401, 'error', 'INVALID_AUTHENTICATION' ], 'hubspot: no token is 401');

	# 10,050 contacts, 1,000 in each second.
	my @cids = @{ $hub->seed('contacts', count => 10050, per_second => 1000)->{ids} };
	my $all = { filterGroups => [ { filters => [ { propertyName => 'hs_lastmodifieddate', operator => 'GTE', value => "$S0" } ] } ],
		sorts => [ { propertyName => 'hs_lastmodifieddate', direction => 'ASCENDING' } ], limit => 200 };
	$r = hsearch('contacts', { %$all, after => '9800' });
	is_deeply([ $r->{json}{total}, ids_of($r->{json}{results}), $r->{json}{paging}{next}{after} ], [ 10050, [ @cids[ 9800 .. 9999 ] ], '10000' ],
		'hubspot: search sorts by hs_lastmodifieddate with the id tiebreak and pages by after');
	$r = hsearch('contacts', { %$all, after => '9900' });
	is_deeply([ scalar @{ $r->{json}{results} }, $r->{json}{paging}{next}{after} ], [ 100, '10000' ], 'hubspot: a page ends at the 10,000th result');
	$r = hsearch('contacts', { %$all, after => '10000' });
	is_deeply([ $r->{status}, $r->{json}{category} ], [ 400, 'VALIDATION_ERROR' ], 'hubspot: after=10000 is 400: the window is spent');
	my $win = { filterGroups => [ { filters => [
			{ propertyName => 'hs_lastmodifieddate', operator => 'GTE', value => '2025-01-01T00:00:10Z' },
			{ propertyName => 'hs_lastmodifieddate', operator => 'LT', value => '' . ($S0 + 11000) } ] } ], limit => 200 };
	$r = hsearch('contacts', $win);
	is_deeply([ $r->{json}{total}, $r->{json}{results}[0]{id} ], [ 50, $cids[10000] ], 'hubspot: GTE (ISO) and LT (ms) together narrow the window');
	is_deeply([ sort keys %{ $r->{json}{results}[0]{properties} } ], [ sort qw(createdate email firstname hs_object_id lastmodifieddate lastname) ],
		'hubspot: a contact comes with its default properties');
	$r = hsearch('contacts', { limit => 201 });
	is_deeply([ $r->{status}, $r->{json}{message} ], [ 400, 'limit must be between 1 and 200, but was 201.' ], 'hubspot: limit above 200 is 400');
	$r = hsearch('contacts', { filterGroups => [ map { { filters => [] } } 1 .. 6 ] });
	is($r->{status}, 400, 'hubspot: more than 5 filter groups is 400');
	is_deeply([ grep { /^x-hubspot-ratelimit/ } keys %{ $r->{headers} } ], [], 'hubspot: search answers carry no rate-limit headers');
	like($r->{headers}{'x-hubspot-correlation-id'}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
		'hubspot: only the correlation id, a UUID');

	$r = call($hub, 'POST', '/crm/v3/objects/contacts/batch/upsert', headers => \%hb,
		body => $J->encode({ inputs => [ map { { idProperty => 'email', id => "b$_\@example.com", properties => {} } } 1 .. 101 ] }));
	is_deeply([ $r->{status}, $r->{json}{category}, $r->{json}{message} ],
		[ 400, 'VALIDATION_ERROR', 'Batch input cannot contain more than 100 inputs, but 101 were provided.' ], 'hubspot: batch upsert of 101 is 400');
	$r = call($hub, 'POST', '/crm/v3/objects/contacts/batch/upsert', headers => \%hb,
		body => '{"inputs":[{"idProperty":"email","id":"dup@example.com","properties":{}},{"idProperty":"email","id":"DUP@example.com","properties":{}}]}');
	is($r->{json}{message}, 'Duplicate IDs found in batch input: [dup@example.com]. IDs must be unique', 'hubspot: duplicate ids in one batch are 400');
	$r = call($hub, 'POST', '/crm/v3/objects/contacts/batch/upsert', headers => \%hb,
		body => '{"inputs":[{"idProperty":"email","id":"Contact2@Example.com","properties":{"firstname":"Trinity"}},{"idProperty":"email","id":"neo@example.com","properties":{"firstname":"Neo"}}]}');
	is_deeply([ $r->{status}, $r->{json}{status}, map { [ $_->{id}, $_->{properties}{email}, $_->{properties}{firstname}, $_->{new} ? 1 : 0 ] } @{ $r->{json}{results} } ],
		[ 200, 'COMPLETE', [ $cids[1], 'contact2@example.com', 'Trinity', 0 ], [ $cids[-1] + 1, 'neo@example.com', 'Neo', 1 ] ],
		'hubspot: batch upsert by email updates one, creates the other');
	my @rem = map { call($hub, 'GET', "/crm/v3/objects/contacts/$cids[0]", headers => \%hb)->{headers}{'x-hubspot-ratelimit-remaining'} } 1 .. 2;
	is($rem[0] - $rem[1], 1, 'hubspot: other endpoints count down X-HubSpot-RateLimit-Remaining');
}

{
	my $h2 = PlatformServer->start('hubspot', config => { ten_second_max => 3 });
	$h2->seed('contacts', count => 1);
	my @st = map { my $r = call($h2, 'GET', '/crm/v3/objects/contacts/101', headers => \%hb);
		"$r->{status} " . ($r->{status} == 429 ? $r->{json}{policyName} : $r->{headers}{'x-hubspot-ratelimit-remaining'}) } 1 .. 4;
	is_deeply(\@st, [ '200 2', '200 1', '200 0', '429 TEN_SECONDLY_ROLLING' ], 'hubspot: the 10-second window, then 429 RATE_LIMIT');
	# Six searches within one second (a machine too busy for that gets two more tries).
	for my $try (1 .. 3)
	{
		usleep(1_100_000);
		my $t0 = time();
		@st = map { hsearch_on($h2, \%hb)->{status} } 1 .. 6;
		last if time() - $t0 < 0.9;
	}
	is_deeply(\@st, [ 200, 200, 200, 200, 200, 429 ], 'hubspot: search allows 5 requests a second');
	$h2->stop;
}

my ($hub_webhook);
{
	my $secret = $hub->credential('client_secret');
	my $url = receiver_url($recv, '/hubspot') . '?email=a%40b.c';
	$hub->webhook(url => $url, order => [ 0, 0 ], events => [ { subscriptionType => 'contact.propertyChange', objectId => 101, propertyName => 'firstname', propertyValue => 'Zoe' } ]);
	my @got = wait_for_requests($recv, 2, 10, sub { $_[0]{path_only} eq '/hubspot' });
	my @ev = map { $J->decode($_->{body})->[0] } @got;
	is_deeply([ map { [ @$_{qw(eventId subscriptionType objectId propertyName attemptNumber)} ] } @ev ],
		[ [ $ev[0]{eventId}, 'contact.propertyChange', 101, 'firstname', 0 ], [ $ev[0]{eventId}, 'contact.propertyChange', 101, 'firstname', 1 ] ],
		'hubspot: a retry carries the same eventId with attemptNumber counted up');
	(my $decoded = $url) =~ s/%40/@/;
	is_deeply([ map { $_->{headers}{'x-hubspot-signature-v3'} eq encode_base64(hmac_sha256("POST$decoded$_->{body}$_->{headers}{'x-hubspot-request-timestamp'}", $secret), '') ? 1 : 0 } @got ],
		[ 1, 1 ], 'hubspot: X-HubSpot-Signature-v3 over method, the decoded URI, body and the ms timestamp');
	is($got[0]{headers}{'x-hubspot-signature'}, sha256_hex($secret . $got[0]{body}), 'hubspot: with the v1 signature beside it');
	my $ts = $got[1]{headers}{'x-hubspot-request-timestamp'};
	is(ext_verify('hubspot', $secret, $got[1]{headers}, $got[1]{body}, { ':method' => 'POST', ':uri' => $url }), 't',
		'hubspot: integration.verify() accepts it with the URI as sent');
	# For the library, a URI with nothing to decode.
	my ($d) = $hub->webhook(url => 'http://127.0.0.1:9/hubspot/webhooks', send => JSON::PP::false,
		events => [ { subscriptionType => 'contact.creation', objectId => 101 } ]);
	$hub_webhook = { url => 'http://127.0.0.1:9/hubspot/webhooks', headers => $d->{headers}, body => $d->{body}, secret => $secret };
}

########################################################################
# Odoo
########################################################################

my $odoo = PlatformServer->start('odoo');
my ($odb, $okey) = ($odoo->credential('db'), $odoo->credential('api_key'));
my $rpc_id = 0;

# execute_kw through the body integration.odoo_execute_kw_request() builds.
sub kw
{
	my ($model, $method, $args, $kwargs, %o) = @_;
	my $body = sql(sprintf('SELECT integration.odoo_execute_kw_request(%s, %d, %s, %s, %s, %s::jsonb, %s::jsonb, %d)',
		dq($o{db} // $odb), $o{uid} // 2, dq($o{key} // $okey), dq($model), dq($method),
		dq($J->encode($args)), dq($J->encode($kwargs // {})), ++$rpc_id));
	my $r = call($odoo, 'POST', '/jsonrpc', headers => { 'Content-Type' => 'application/json' }, body => $body);
	return $r;
}

sub classify
{
	return sql('SELECT outcome || \' \' || coalesce(error_class, \'-\') FROM integration.odoo_classify_response(' . dq($_[0]) . '::jsonb)');
}

{
	my $r = call($odoo, 'POST', '/jsonrpc', body => '{"jsonrpc":"2.0","method":"call","id":1,"params":{"service":"common","method":"version","args":[]}}');
	is($r->{json}{result}{server_version}, '17.0', 'odoo: common.version needs no login');
	my @uids = map { call($odoo, 'POST', '/jsonrpc', body => qq({"jsonrpc":"2.0","method":"call","id":2,"params":{"service":"common","method":"authenticate","args":["odoo","admin","$_",{}]}}))->{json}{result} } ($okey, 'wrong');
	is_deeply(\@uids, [ 2, JSON::PP::false ], 'odoo: common.authenticate gives the uid, or false');

	$r = kw('res.partner', 'search_read', [ [] ], {}, key => 'wrong');
	is_deeply([ $r->{status}, $r->{json}{id}, $r->{json}{error}{code}, $r->{json}{error}{message}, @{ $r->{json}{error}{data} }{qw(name message arguments context)} ],
		[ 200, $rpc_id, 200, 'Odoo Server Error', 'odoo.exceptions.AccessDenied', 'Access Denied', ['Access Denied'], {} ],
		'odoo: a wrong API key is AccessDenied in the error envelope (HTTP 200)');
	is(classify($r->{content}), 'permanent access', 'odoo: which odoo_classify_response() calls permanent');

	# 120 partners, 40 in each second; keyset pages by (write_date, id).
	my @pids = @{ $odoo->seed('res.partner', count => 120, per_second => 40)->{ids} };
	my ($w, $last, @seen, @sizes) = ('2024-12-31 23:59:59', 0);
	for (1 .. 6)
	{
		$r = kw('res.partner', 'search_read', [ [ '|', [ 'write_date', '>', $w ], '&', [ 'write_date', '=', $w ], [ 'id', '>', $last ] ] ],
			{ fields => [ 'name', 'write_date' ], order => 'write_date asc, id asc', limit => 50 });
		my $rows = $r->{json}{result};
		push @sizes, scalar @$rows;
		last unless @$rows;
		push @seen, map { $_->{id} } @$rows;
		($w, $last) = ($rows->[-1]{write_date}, $rows->[-1]{id});
	}
	is_deeply([ \@sizes, \@seen ], [ [ 50, 50, 20, 0 ], \@pids ], 'odoo: search_read by (write_date, id): every partner once, in order, across equal write_dates');
	is($w, '2025-01-01 00:00:02', 'odoo: write_date as "YYYY-MM-DD HH:MM:SS"');
	my @offset = map { @{ kw('res.partner', 'search', [ [ [ 'write_date', '>=', '2025-01-01 00:00:00' ] ] ], { order => 'write_date asc, id asc', limit => 50, offset => $_ })->{json}{result} } } (0, 50, 100);
	is_deeply(\@offset, \@pids, 'odoo: offset paging with the id tiebreak too');
	my %firsts = map { join(',', sort { $a <=> $b } @{ kw('res.partner', 'search', [ [ [ 'write_date', '>=', '2025-01-01 00:00:00' ] ] ], { order => 'write_date asc', limit => 10 })->{json}{result} }) => 1 } 1 .. 10;
	cmp_ok(scalar keys %firsts, '>', 1, 'odoo: without the id tiebreak, rows that tie come back in no fixed order');

	my @prods = @{ $odoo->seed('product.product', records => [ { name => 'Mug', list_price => 4.5, write_date => '2025-01-02 00:00:00' }, { name => 'Tea', list_price => 3 } ])->{ids} };
	$r = kw('sale.order', 'create', [ { partner_id => $pids[0], order_line => [ [ 0, 0, { product_id => $prods[0], product_uom_qty => 2, price_unit => 9.5 } ], [ 0, 0, { product_id => $prods[1] } ] ] } ]);
	my $so = $r->{json}{result};
	$r = kw('sale.order', 'read', [ [$so] ], { fields => [ 'name', 'partner_id', 'amount_total', 'order_line', 'state' ] });
	my $row = $r->{json}{result}[0];
	is_deeply([ @$row{qw(name partner_id amount_total state)}, scalar @{ $row->{order_line} } ],
		[ 'S00001', [ $pids[0], 'Partner 7' ], 22, 'draft', 2 ], 'odoo: sale.order created with [0, 0, {...}] lines, the total computed');
	$r = kw('sale.order', 'write', [ [$so], { order_line => [ [ 1, $row->{order_line}[0], { product_uom_qty => 3 } ] ] } ]);
	is($r->{json}{result}, JSON::PP::true, 'odoo: write with [1, id, {...}] answers true');
	is(kw('sale.order', 'read', [ [$so] ], { fields => ['amount_total'] })->{json}{result}[0]{amount_total}, 31.5, 'odoo: and the total follows');
	$r = kw('sale.order', 'action_confirm', [ [$so] ]);
	is(kw('sale.order', 'read', [ [$so] ], { fields => ['state'] })->{json}{result}[0]{state}, 'sale', 'odoo: action_confirm');

	$r = kw('sale.order', 'create', [ { order_line => [] } ]);
	is_deeply([ $r->{json}{error}{data}{name}, classify($r->{content}) ], [ 'odoo.exceptions.ValidationError', 'permanent validation' ],
		'odoo: a sale order without a customer is a ValidationError, permanent');
	is($r->{json}{error}{data}{message},
		"The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: Sales Order (sale.order)\nField: Partner (partner_id)",
		'odoo: with Odoo\'s message naming the model and the field');
	$r = kw('res.partner', 'write', [ [999], { name => 'x' } ]);
	is_deeply([ $r->{json}{error}{data}{name}, $r->{json}{error}{data}{message}, classify($r->{content}) ],
		[ 'odoo.exceptions.MissingError', "Record does not exist or has been deleted.\n(Record: res.partner(999,), User: 2)", 'permanent missing' ],
		'odoo: writing a missing record is MissingError');
	$r = kw('foo.bar', 'search', [ [] ]);
	is_deeply([ @{ $r->{json}{error}{data} }{qw(name message)} ], [ 'odoo.exceptions.UserError', "Object foo.bar doesn't exist" ], 'odoo: an unknown model');
	$r = kw('res.partner', 'search', [ [ [ 'nope', '=', 1 ] ] ]);
	is($r->{json}{error}{data}{message}, "Invalid field 'nope' on model 'res.partner'", 'odoo: an unknown field in a domain');

	my $n = scalar $odoo->list('res.partner');
	$odoo->fault('serialization_failure');
	$r = kw('res.partner', 'create', [ { name => 'Retry me' } ]);
	is_deeply([ $r->{status}, $r->{json}{error}{data}{name}, classify($r->{content}), scalar $odoo->list('res.partner') ],
		[ 200, 'psycopg2.errors.SerializationFailure', 'retriable concurrency', $n ],
		'odoo: an injected serialization failure: retriable, and nothing was created');
	$r = kw('res.partner', 'create', [ { name => 'Retry me' } ]);
	is_deeply([ classify($r->{content}), scalar $odoo->list('res.partner') ], [ 'succeeded -', $n + 1 ], 'odoo: the retry creates it');
}

########################################################################
# The platforms' own libraries against the servers
########################################################################

{
	my $tmp = PostgreSQL::Test::Utils::tempdir('sdk');
	my ($event) = $stripe->list('events');
	my ($sd) = $stripe->webhook(events => [ { event_id => $event->{id} } ]);
	my $cases = {
		stripe => { port => $stripe->port, secret_key => $stripe->credential('secret_key'),
			webhook => { headers => $sd->{headers}, body => $sd->{body}, secret => $stripe->credential('webhook_secret') } },
		hubspot => { port => $hub->port, token => $hub->credential('access_token'), since_ms => $S0 + 9000, until_ms => $S0 + 11000,
			webhook => $hub_webhook },
		shopify => { webhook => $shop_webhook },
	};
	open(my $fh, '>', "$tmp/cases.json") or die $!;
	print $fh $J->encode($cases);
	close $fh;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'node', "$interop/platform_servers.mjs", "$tmp/cases.json" ], '>', \$out, '2>', \$err);
	ok($ok, 'platform_servers.mjs ran') or diag($err);
	my $res = eval { $J->decode($out) } // {};
	my $s = $res->{stripe} // {};
	is_deeply($s->{replay}, { same_id => JSON::PP::true, first_status => 'succeeded', first_replayed => undef, second_replayed => 'true', metadata => { order_id => 'SO-1' } },
		'stripe-node: the same Idempotency-Key twice gets the replay (Idempotent-Replayed: true), one payment intent');
	is_deeply($s->{mismatch}, { type => 'StripeIdempotencyError', status => 400, raw_type => 'idempotency_error' }, 'stripe-node: other parameters under it: StripeIdempotencyError');
	is_deeply($s->{decline}, { type => 'StripeCardError', status => 402, code => 'card_declined', decline_code => 'insufficient_funds', pi_status => 'requires_payment_method', should_retry => 'false' },
		'stripe-node: a decline is a StripeCardError with its decline_code');
	is_deeply($s->{capture}, { before => 'requires_capture', after => 'succeeded', received => 4000, refund_status => 'succeeded', refund_amount => 1500 },
		'stripe-node: capture and refund');
	is_deeply($s->{customer}, { email => 'sdk@example.com', name => "Zo\xc3\xab Sdk", address => { line1 => "Stra\xc3\x9fe 1", city => "Z\xc3\xbcrich" }, metadata_after_unset => { erp_id => '42' } },
		'stripe-node: customers with UTF-8, nested address and metadata unset by ""');
	my $events = $stripe->list('events');
	is_deeply($s->{events}, { first_page => 3, has_more => JSON::PP::true, total => $events, unique => $events },
		'stripe-node: the library pages through every event once');
	is_deeply([ $s->{webhook}{result}, $s->{webhook_tampered} ], [ 'ok', 'rejected' ], 'stripe-node: webhooks.constructEvent accepts a server webhook and rejects it changed');
	my $h = $res->{hubspot} // {};
	is_deeply($h->{search}, { pages => 6, total => 1050, seen => 1050, unique => 1050 }, '@hubspot/api-client: doSearch paged by after sees each contact once');
	is_deeply($h->{upsert}, { status => 'COMPLETE', results => [ { email => 'sdk.upsert@example.com', firstname => 'Sdk', new => JSON::PP::true }, { email => 'contact1@example.com', firstname => 'Changed', new => JSON::PP::false } ] },
		'@hubspot/api-client: batchApi.upsert by email');
	is_deeply($h->{too_many}, { code => 400, category => 'VALIDATION_ERROR' }, '@hubspot/api-client: 101 inputs are refused');
	is_deeply([ $h->{webhook}, $h->{webhook_tampered} ], [ 'ok', 'rejected' ], '@hubspot/api-client: Signature.isValid (v3) accepts a server webhook and rejects it changed');
	my $sh = $res->{shopify} // {};
	is_deeply([ $sh->{webhook}{result}, $sh->{webhook}{topic}, $sh->{webhook}{domain}, $sh->{webhook_tampered} ],
		[ 'ok', 'ORDERS_UPDATED', 'loopback-shop.myshopify.com', 'rejected' ], '@shopify/shopify-api: webhooks.validate accepts a server webhook and rejects it changed');
}

$_->stop for ($shop, $woo, $stripe, $hub, $odoo);
stop_receiver($recv);
$node->stop;
done_testing();
