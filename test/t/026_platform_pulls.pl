# The platform kinds' pulls and the odoo kind, end to end against the loopback servers
# of test/platforms:
#
#   1. odoo calls through call_connector(): test_connector() and a sale order created
#      with lines (Odoo's line commands), then written, over JSON-RPC execute_kw with
#      settings.database and settings.uid and the api_key credential put into the body
#      by the caller (auth json:/params/args/2); a validation error fails at once, a
#      serialization failure is retried and then succeeds; a wrong key is AccessDenied,
#      and no error text quotes the key.
#   2. Pulls (when the sync core is there: sync_now() and page processing): woocommerce
#      orders across several pages, stripe events across pages, hubspot contacts across
#      the 10,000-result window, odoo partners across pages whose write_dates tie within
#      seconds; every record stored once, each change handed on once, nothing lost.

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
	"SELECT id FROM integration.create_connector('odoo', 'erp', '%s', '{\"api_key\": \"%s\"}', '{\"database\": \"%s\", \"uid\": %d}')",
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
	"SELECT id FROM integration.create_connector('odoo', 'erp-wrong', '%s', '{\"api_key\": \"wrong-key-0123456789\"}', '{\"database\": \"%s\", \"uid\": %d}')",
	$odoo->url, $odb, $ouid));
is(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($wrong)"),
	'f|200|Odoo access error (odoo.exceptions.AccessDenied): Access Denied', 'odoo: a wrong key is AccessDenied');
my $noset = sql(sprintf(
	"SELECT id FROM integration.create_connector('odoo', 'erp-noset', '%s', '{\"api_key\": \"%s\"}')", $odoo->url, $okey));
my ($rc, $out, $err) = $node->psql('postgres', "SET integration.tenant_id = 'acme';
	SELECT integration.call_connector($noset, 'create', '{\"model\": \"res.partner\", \"values\": {\"name\": \"X\"}}')");
like($err, qr/ERROR:  an odoo connector needs settings\.database and settings\.uid/,
	'odoo: call_connector() refuses a connector without settings.database and uid, saying what is missing');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM integration.connector_calls WHERE last_error LIKE '%$okey%' OR last_error LIKE '%wrong-key-0123456789%'})
	+ $node->safe_psql('postgres', qq{SELECT count(*) FROM integration.integration_logs WHERE message LIKE '%$okey%' OR context::text LIKE '%$okey%'}),
	0, 'odoo: no stored error or log quotes an API key');

$odoo->stop;

done_testing();
