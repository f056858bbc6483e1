# The platform kinds' pulls and the odoo kind, end to end against the loopback servers
# of test/platforms:
#
#   1. odoo calls through call_connector(): test_connector() and a sale order created
#      with lines (Odoo's line commands), then written, over JSON-RPC execute_kw with
#      settings.database and settings.uid and the api_key credential put into the body
#      by the caller (auth json:/params/args/2); a validation error fails at once, a
#      serialization failure is retried and then succeeds; a wrong key is AccessDenied,
#      and no error text quotes the key.
#   2. Pulls through sync_now() and the worker: woocommerce orders across several pages
#      (130 of them in one second), then three changed; customers by id, read in full
#      each run, handed on when changed; stripe events across pages, a webhook and a
#      pull of one event handled once; hubspot contacts across a search window lowered
#      to 500 and 150 contacts in one millisecond; odoo partners across pages whose
#      write_dates tie within seconds, fractions sorting against ids; every record
#      stored once and each change handed on once, nothing lost.

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('pulls',
	"integration.retry_schedule = '200ms, 200ms, 200ms'",
	"integration.request_timeout = '5s'");

sub sql { return tenant_psql($node, $_[0]); }

sub wait_call
{
	my ($id, $status) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT status = '$status' FROM integration.connector_calls WHERE id = $id"),
		"call $id is $status");
	return $json->decode(sql("SELECT row_to_json(k) FROM integration.connector_calls k WHERE id = $id"));
}

########################################################################
# 1. odoo: create and write through call_connector()
########################################################################

my $odoo = PlatformServer->start('odoo');
my ($odb, $okey, $ouid) = map { $odoo->credential($_) } qw(db api_key uid);
my $erp = sql(sprintf(
	"SELECT id FROM integration.create_connector('odoo', 'erp', '%s', '{\"api_key\": \"%s\"}', '{\"database\": \"%s\", \"uid\": %d, \"sync_interval\": 0}')",
	$odoo->url, $okey, $odb, $ouid));

is(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($erp)"), 't|200',
	'odoo: test_connector() succeeds with the key in the body');

my $partner = $odoo->seed('res.partner', records => [ { name => 'Acme', email => 'acme@example.com' } ])->{ids}[0];
my $product = $odoo->seed('product.product', records => [ { name => 'Mug', default_code => 'MUG', list_price => 4.5 } ])->{ids}[0];

my $since = $odoo->last_seq;
my $create = sql(sprintf(q{SELECT integration.call_connector(%d, 'create', '%s')}, $erp,
	$json->encode({ model => 'sale.order', values => { partner_id => $partner, client_order_ref => 'PO-1',
		order_line => [ [ 0, 0, { product_id => $product, product_uom_qty => 2, price_unit => 9.5 } ],
						[ 0, 0, { product_id => $product, product_uom_qty => 1 } ] ] } })));
my $row = wait_call($create, 'succeeded');
my ($req) = $odoo->requests(since => $since, path => '/jsonrpc');
my $sent = $json->decode($req->{body});
is_deeply([ @{ $sent->{params}{args} }[ 0 .. 4 ], $sent->{params}{service}, $sent->{params}{method} ],
	[ $odb, $ouid, $okey, 'sale.order', 'create', 'object', 'execute_kw' ],
	'odoo: execute_kw(database, uid (a number), the api_key put in by the caller, model, create)');
my $order_id = $row->{result};
like($order_id, qr/^\d+$/, 'odoo: the call\'s result is the new order\'s id');
my $order = $odoo->get('sale.order', $order_id);
is_deeply([ $order->{client_order_ref}, $order->{amount_total}, scalar @{ $order->{order_line} } ],
	[ 'PO-1', 23.5, 2 ], 'odoo: the order was created with its two lines (9.5 x 2 + 4.5)');

my @lines = @{ $order->{order_line} };
my $write = sql(sprintf(q{SELECT integration.call_connector(%d, 'write', '%s')}, $erp,
	$json->encode({ model => 'sale.order', id => $order_id + 0,
		values => { note => 'rush', order_line => [ [ 1, $lines[0], { product_uom_qty => 3 } ], [ 2, $lines[1], 0 ] ] } })));
$row = wait_call($write, 'succeeded');
is($json->encode($row->{result}), 'true', 'odoo: write answers true');
$order = $odoo->get('sale.order', $order_id);
is_deeply([ $order->{note}, $order->{amount_total}, scalar @{ $order->{order_line} } ], [ 'rush', 28.5, 1 ],
	'odoo: write updated one line (x3) and deleted the other');

# A validation error is the call's result at once; a serialization failure is retried.
my $bad = sql(sprintf(q{SELECT integration.call_connector(%d, 'create', '{"model": "sale.order", "values": {"note": "no partner"}}')}, $erp));
$row = wait_call($bad, 'failed');
is($row->{attempts}, 1, 'odoo: a ValidationError fails on the first attempt');
like($row->{last_error}, qr/^Odoo validation error \(odoo\.exceptions\.ValidationError\): The operation cannot be completed/,
	'odoo: with the exception and its message');
$odoo->fault('serialization_failure', match => { path => '/jsonrpc', body_contains => 'client_order_ref' });
my $retried = sql(sprintf(q{SELECT integration.call_connector(%d, 'create', '%s')}, $erp,
	$json->encode({ model => 'sale.order', values => { partner_id => $partner, client_order_ref => 'PO-2' } })));
$row = wait_call($retried, 'succeeded');
is($row->{attempts}, 2, 'odoo: a SerializationFailure is retried, and the second attempt creates the order');
is(scalar(grep { $_->{client_order_ref} eq 'PO-2' } $odoo->list('sale.order')), 1, 'odoo: once');

# A wrong key: AccessDenied, failed; the key appears in no error or log.
my $wrong = sql(sprintf(
	"SELECT id FROM integration.create_connector('odoo', 'erp-wrong', '%s', '{\"api_key\": \"wrong-key-0123456789\"}', '{\"database\": \"%s\", \"uid\": %d, \"sync_interval\": 0}')",
	$odoo->url, $odb, $ouid));
is(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($wrong)"),
	'f|200|Odoo access error (odoo.exceptions.AccessDenied): Access Denied', 'odoo: a wrong key is AccessDenied');
my $noset = sql(sprintf(
	"SELECT id FROM integration.create_connector('odoo', 'erp-noset', '%s', '{\"api_key\": \"%s\"}', '{\"sync_interval\": 0}')", $odoo->url, $okey));
my ($rc, $out, $err) = $node->psql('postgres', "SET integration.tenant_id = 'acme';
	SELECT integration.call_connector($noset, 'create', '{\"model\": \"res.partner\", \"values\": {\"name\": \"X\"}}')");
like($err, qr/ERROR:  an odoo connector needs settings\.database and settings\.uid/,
	'odoo: call_connector() refuses a connector without settings.database and uid, saying what is missing');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM integration.connector_calls WHERE last_error LIKE '%$okey%' OR last_error LIKE '%wrong-key-0123456789%'})
	+ $node->safe_psql('postgres', qq{SELECT count(*) FROM integration.integration_logs WHERE message LIKE '%$okey%' OR context::text LIKE '%$okey%'}),
	0, 'odoo: no stored error or log quotes an API key');

########################################################################
# 2. Pulls end to end: sync_now(), the pages through the worker, the gate
########################################################################

# Runs the stream once and waits for the run to end; its sync_state row.
sub run_sync
{
	my ($conn, $stream) = @_;
	my $before = sql("SELECT runs + errors FROM integration.sync_state WHERE connector_id = $conn AND stream = '$stream'") || 0;
	sql("SELECT count(*) FROM integration.sync_now($conn, '$stream')");
	ok($node->poll_query_until('postgres',
			"SELECT status = 'idle' AND runs + errors > $before FROM integration.sync_streams
			  WHERE connector_id = $conn AND stream = '$stream'"),
		"$stream: the run ends");
	return $json->decode(sql("SELECT row_to_json(s) FROM integration.sync_state s WHERE connector_id = $conn AND stream = '$stream'"));
}

# Records stored, distinct, and events handed on, of a connector's stream.
sub counts
{
	my ($conn, $stream, $event_like) = @_;
	return sql("SELECT concat_ws('|',
		(SELECT count(*) FROM integration.external_records WHERE connector_id = $conn AND stream = '$stream'),
		(SELECT count(*) FROM integration.inbound_events WHERE connector_id = $conn AND event LIKE '$event_like'),
		(SELECT count(DISTINCT object_id) FROM integration.inbound_events WHERE connector_id = $conn AND event LIKE '$event_like'))");
}

# --- WooCommerce: orders across pages, one second's own listing; customers by id ---

my $woo = PlatformServer->start('woocommerce');
my $store = sql(sprintf(
	"SELECT id FROM integration.create_connector('woocommerce', 'store', '%s', '%s', '{\"sync_interval\": 0}')",
	$woo->url, $json->encode({ map { $_ => $woo->credential($_) } qw(consumer_key consumer_secret) })));
$woo->seed('orders', count => 230, per_second => 40, start => '2025-01-01T00:00:00Z');
$woo->seed('orders', count => 130, per_second => 200, start => '2025-01-02T00:00:00Z');
my $st = run_sync($store, 'orders');
is_deeply([ @$st{qw(errors last_error)} ], [ 0, undef ], 'woocommerce orders: no error');
is(counts($store, 'orders', 'woocommerce.order.%'), '360|360|360',
	'woocommerce orders: 360 orders across pages stored once, each handed on once');
my @gets = $woo->requests(path => '/wp-json/wc/v3/orders');
cmp_ok(scalar @gets, '>=', 5, 'woocommerce orders: over ' . scalar(@gets) . ' pages');
is(scalar(grep { defined $_->{params}{modified_before} && $_->{params}{page} eq '2' } @gets), 1,
	'woocommerce orders: the 130 orders of one second read through that second\'s own listing');
is(sql("SELECT cursor_at = '2025-01-02 00:00:00Z' FROM integration.sync_state WHERE connector_id = $store AND stream = 'orders'"),
	't', 'woocommerce orders: the cursor is the newest order\'s date_modified_gmt');

my @oids = map { $_->{id} } grep { $_->{id} } ($woo->list('orders'))[ 0, 100, 300 ];
$woo->update('orders', $_, { status => 'completed' }) for @oids;
$st = run_sync($store, 'orders');
is(counts($store, 'orders', 'woocommerce.order.updated'), '360|3|3',
	'woocommerce orders: the next run hands on the three changed orders, once, as woocommerce.order.updated');

$woo->seed('customers', count => 150, per_second => 10);
$st = run_sync($store, 'customers');
is(counts($store, 'customers', 'woocommerce.customer.%'), '150|150|150', 'woocommerce customers: all 150 by id');
$st = run_sync($store, 'customers');
is(counts($store, 'customers', 'woocommerce.customer.%'), '150|150|150',
	'woocommerce customers: read again in full, nothing handed on twice');
$woo->update('customers', ($woo->list('customers'))[7]{id}, { first_name => 'Renamed' });
$st = run_sync($store, 'customers');
is(counts($store, 'customers', 'woocommerce.customer.updated'), '150|1|1', 'woocommerce customers: the changed one, once');
$woo->stop;

# --- Stripe: events across pages; a webhook and a pull of one event: once ---

my $stripe = PlatformServer->start('stripe');
my $whsec = $stripe->credential('webhook_secret');
my $pay = sql(sprintf(
	"SELECT id FROM integration.create_connector('stripe', 'payments', '%s', '{\"secret_key\": \"%s\"}', '{\"sync_interval\": 0}', '%s')",
	$stripe->url, $stripe->credential('secret_key'), $whsec));
$stripe->seed('payment_intents', count => 80, per_second => 2);
$st = run_sync($pay, 'events');
is_deeply([ @$st{qw(errors last_error)} ], [ 0, undef ], 'stripe events: no error');
is(counts($pay, 'events', 'stripe.%'), '240|240|240', 'stripe events: 240 events across pages, once each');
is(sql("SELECT count(*) FROM integration.inbound_events WHERE connector_id = $pay AND event = 'stripe.payment_intent.succeeded'"),
	80, 'stripe events: named as their webhooks are (stripe.payment_intent.succeeded)');
cmp_ok(scalar($stripe->requests(path => '/v1/events')), '>=', 3, 'stripe events: over several pages');

# A webhook of an event already pulled is a duplicate; one received first makes the
# pull of it a no-op.
sub stripe_webhook
{
	my ($event) = @_;
	my $body = $json->encode($event);
	(my $q = $body) =~ s/'/''/g;
	return sql("SELECT status FROM integration.receive_webhook($pay,
		integration.sign('stripe', '$whsec', '$q'), '$q')");
}
my ($pulled) = grep { $_->{type} eq 'charge.succeeded' } $stripe->list('events');
is(stripe_webhook($pulled), 'duplicate', 'stripe: the webhook of a pulled event is a duplicate');
my $new = $stripe->seed('payment_intents', count => 1)->{ids}[0];
my ($fresh) = grep { $_->{type} eq 'payment_intent.succeeded' && $_->{data}{object}{id} eq $new } $stripe->list('events');
is(stripe_webhook($fresh), 'accepted', 'stripe: a new event\'s webhook is accepted');
$st = run_sync($pay, 'events');
is(sql("SELECT count(*) FROM integration.inbound_events WHERE connector_id = $pay AND payload ->> 'id' = '$fresh->{id}'"),
	1, 'stripe: and the pull of the same event hands nothing more on');
is(counts($pay, 'events', 'stripe.%'), '243|243|243', 'stripe: the other two new events pulled');
$stripe->stop;

# --- HubSpot: more contacts than one search sees, and a millisecond of 150 ---

my $hub = PlatformServer->start('hubspot', config => { search_window_max => 500 });
my $crm = sql(sprintf(
	"SELECT id FROM integration.create_connector('hubspot', 'crm', '%s', '{\"access_token\": \"%s\"}', '{\"sync_interval\": 0}')",
	$hub->url, $hub->credential('access_token')));
$hub->seed('contacts', count => 1100, per_second => 100, spread_ms => 7, start => '2025-01-01T00:00:00Z');
$hub->seed('contacts', count => 150, per_second => 150, spread_ms => 0, start => '2025-01-02T00:00:00Z');
$st = run_sync($crm, 'contacts');
is_deeply([ @$st{qw(errors last_error)} ], [ 0, undef ], 'hubspot contacts: no error');
is(counts($crm, 'contacts', 'hubspot.%'), '1250|1250|1250',
	'hubspot contacts: 1,250 contacts through a 500-result search window, once each');
my @searches = $hub->requests(path => '/crm/v3/objects/contacts/search');
is(scalar(grep { $_->{status} ne '200' && $_->{status} ne '429' } @searches), 0, 'hubspot contacts: no search refused');
ok((grep { ($_->{body} // '') =~ /"EQ"/ } @searches), 'hubspot contacts: the millisecond of 150 through its own search');
$hub->stop;

# --- Odoo: partners whose write_dates tie within seconds, fractions against ids ---

$odoo->seed('res.partner', count => 230, per_second => 60, spread_ms => 3, start => '2025-01-01T00:00:00Z');
$odoo->seed('res.partner', records => [ map { { name => "Tie $_", write_date => sprintf('2025-01-02 00:00:00.%03d', 999 - $_) } } 0 .. 149 ]);
$st = run_sync($erp, 'res.partner');
is_deeply([ @$st{qw(errors last_error)} ], [ 0, undef ], 'odoo partners: no error');
my @partners = sort { $a <=> $b } map { $_->{id} } $odoo->list('res.partner');
my @stored = split /,/, sql("SELECT string_agg(external_id, ',' ORDER BY external_id::bigint) FROM integration.external_records
							  WHERE connector_id = $erp AND stream = 'res.partner'");
is_deeply(\@stored, [ map { "$_" } @partners ], 'odoo partners: every partner stored, none twice (' . scalar(@partners) . ')');
is(counts($erp, 'res.partner', 'odoo.res.partner.%'), join('|', scalar @partners, scalar @partners, scalar @partners),
	'odoo partners: each handed on once');
ok((grep { ($_->{body} // '') =~ /"order": ?"id asc"/ } $odoo->requests(path => '/jsonrpc')),
	'odoo partners: the 150 of one second paged by id');
$odoo->stop;

done_testing();
