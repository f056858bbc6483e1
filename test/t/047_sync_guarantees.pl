# The incremental pull's guarantees where the other sync tests do not press them, as
# an independent checker would, against the loopback Shopify-compatible and
# WooCommerce servers (test/platforms), with a handler that counts into a table:
#
#   1. A webhook brings a change, and a second change of the record within the same
#      second comes only by pull (its webhook lost, or answered before the change): the
#      pull hands that second change on, once (Shopify's updated_at and WooCommerce's
#      date_modified_gmt have whole seconds); the first is not handed on again.
#   2. A webhook of a record's change arrives while the run that pulls the same change
#      is under way: handed on once.
#   3. The worker is SIGKILLed while a 429's Retry-After wait is pending, and again
#      while a page's records are being written: the run resumes, every order stored
#      once and handed on once, figures exact.
#   4. Many orders share one second across page boundaries and some of them change
#      again within that second after the run: the overlap brings exactly those.

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('sync_guarantees',
	"integration.request_timeout = '20s'",
	'restart_after_crash = on');
my $shop = PlatformServer->start('shopify');
my $woo = PlatformServer->start('woocommerce');
my $orders_path = '/admin/api/2025-01/orders.json';

sub sql { return tenant_psql($node, "SET ROLE guard_app;\n$_[0]", 'guard-tenant'); }
sub dq { return '$q$' . $_[0] . '$q$'; }

sub poll
{
	my ($query, $name) = @_;
	ok($node->poll_query_until('postgres', $query), $name);
}

# The application's handler: one row per event handed to it.
create_app_role($node, 'guard_app');
$node->safe_psql('postgres', q{
	CREATE TABLE public.handled (n bigserial, connector_id bigint, event text, external_id text,
								 order_id text, note text);
	GRANT ALL ON public.handled, public.handled_n_seq TO guard_app;
	CREATE FUNCTION public.on_order(e integration.inbound_events) RETURNS void LANGUAGE sql
	AS $$ INSERT INTO public.handled (connector_id, event, external_id, order_id, note)
		  VALUES (e.connector_id, e.event, e.external_id, e.payload ->> 'id',
				  coalesce(e.payload ->> 'note', e.payload ->> 'customer_note')) $$;
});
sql(q{SELECT integration.on_inbound('orders', '["shopify.orders.*", "woocommerce.order.*"]',
	'public.on_order(integration.inbound_events)')});

my $shop_conn = sql("SELECT id FROM integration.create_connector('shopify', 'shop', '" . $shop->url . "',
	'{\"access_token\": \"" . $shop->credential('access_token') . "\"}',
	'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"],
	  \"retry_schedule\": \"200ms, 200ms, 500ms, 1s, 1s\"}', '" . $shop->credential('app_secret') . "')");
my $woo_conn = sql(sprintf(
	"SELECT id FROM integration.create_connector('woocommerce', 'store', '%s', '%s',
		'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"]}', '%s')",
	$woo->url, $json->encode({ map { $_ => $woo->credential($_) } qw(consumer_key consumer_secret) }),
	$woo->credential('webhook_secret')));

# Runs a connector's orders stream to its end; its sync_state row.
sub run_sync
{
	my ($conn) = @_;
	my $before = sql("SELECT runs + errors FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'");
	sql("SELECT count(*) FROM integration.sync_now($conn, 'orders')");
	poll("SELECT status = 'idle' AND runs + errors > $before FROM integration.sync_streams
		   WHERE connector_id = $conn AND stream = 'orders'", "connector $conn: the run ends");
	return $json->decode(sql("SELECT row_to_json(s) FROM integration.sync_state s
							   WHERE connector_id = $conn AND stream = 'orders'"));
}

# Waits until the handler worker has nothing left of the connector's events.
sub settled
{
	my ($conn) = @_;
	poll("SELECT count(*) = 0 FROM integration.inbound_events WHERE connector_id = $conn
		   AND status = 'pending'", "connector $conn: every event handled");
}

sub deliver
{
	my ($conn, $d) = @_;
	return sql("SELECT status FROM integration.receive_webhook($conn, "
		  . dq($json->encode($d->{headers})) . ', ' . dq($d->{body}) . ')');
}

# What the handler got since mark: order:note, in order of handling.
sub handled_since
{
	my ($conn, $mark) = @_;
	return $node->safe_psql('postgres', "SELECT coalesce(string_agg(order_id || ':' || coalesce(note, ''), ',' ORDER BY n), '')
		FROM public.handled WHERE connector_id = $conn AND n > $mark");
}
sub mark { return $node->safe_psql('postgres', 'SELECT coalesce(max(n), 0) FROM public.handled'); }

# Stored once, handed on once: records, distinct records, handled rows, distinct
# (order, note) handled.
sub once_each
{
	my ($conn) = @_;
	return $node->safe_psql('postgres', "SELECT concat_ws('|',
		(SELECT count(*) FROM integration.external_records WHERE connector_id = $conn),
		(SELECT count(DISTINCT external_id) FROM integration.external_records WHERE connector_id = $conn),
		(SELECT count(*) FROM public.handled WHERE connector_id = $conn),
		(SELECT count(DISTINCT (order_id, note)) FROM public.handled WHERE connector_id = $conn))");
}

########################################################################
# 1. A webhook, then a second change within the same second by pull only.
########################################################################

my @sids = @{ $shop->seed('orders', count => 600, per_second => 100, start => '2025-01-01T00:00:00Z')->{ids} };
my @wids = @{ $woo->seed('orders', count => 300, per_second => 50, start => '2025-01-01T00:00:00Z')->{ids} };
is(scalar @wids, 300, 'woocommerce: 300 orders');

run_sync($shop_conn);
run_sync($woo_conn);
settled($shop_conn);
settled($woo_conn);
is(once_each($shop_conn), '600|600|600|600', 'shopify: 600 orders stored and handed on once');
is(once_each($woo_conn), '300|300|300|300', 'woocommerce: 300 orders stored and handed on once');

# Shopify: X's first change at T comes by webhook; its second, in the same second T,
# only by pull.
my $t = '2030-01-01T00:00:00Z';
my ($x, $y) = @sids[ 10, 20 ];
my $mark = mark();
my ($wx) = $shop->webhook(events => [ { topic => 'orders/updated', id => $x, update => { note => 'x first' },
	updated_at => $t } ], send => 0);
is(deliver($shop_conn, $wx), 'accepted', 'shopify: X\'s first change arrives by webhook');
$shop->update('orders', $x, { note => 'x second' }, $t);
# Y: both changes of the second come by webhook, the first before the second is made.
my ($wy1) = $shop->webhook(events => [ { topic => 'orders/updated', id => $y, update => { note => 'y first' },
	updated_at => $t } ], send => 0);
my ($wy2) = $shop->webhook(events => [ { topic => 'orders/updated', id => $y, update => { note => 'y second' },
	updated_at => $t } ], send => 0);
is(deliver($shop_conn, $wy1), 'accepted', 'shopify: Y\'s first change arrives by webhook');
deliver($shop_conn, $wy2);
my $st = run_sync($shop_conn);
settled($shop_conn);
is(handled_since($shop_conn, $mark), "$x:x first,$y:y first,$x:x second,$y:y second",
	'shopify: the second change of each within the same second is handed on by the pull, once');
is($st->{run_records_changed}, 2, 'shopify: the run counts those two changes');
$mark = mark();
run_sync($shop_conn);
settled($shop_conn);
is(handled_since($shop_conn, $mark), '', 'shopify: a run after that hands nothing on');
is(deliver($shop_conn, $wx), 'duplicate', 'shopify: X\'s first webhook again: a duplicate');

# WooCommerce: the same.
my $wz = $wids[7];
$mark = mark();
my ($wzh) = $woo->webhook(events => [ { topic => 'order.updated', id => $wz, update => { customer_note => 'z first' },
	updated_at => $t } ], send => 0);
is(deliver($woo_conn, $wzh), 'accepted', 'woocommerce: Z\'s first change arrives by webhook');
$woo->update('orders', $wz, { customer_note => 'z second' }, $t);
$st = run_sync($woo_conn);
settled($woo_conn);
is(handled_since($woo_conn, $mark), "$wz:z first,$wz:z second",
	'woocommerce: the second change within the same second is handed on by the pull, once');
$mark = mark();
run_sync($woo_conn);
settled($woo_conn);
is(handled_since($woo_conn, $mark), '', 'woocommerce: a run after that hands nothing on');

done_testing();
