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

# Waits for the run under way to end; its sync_state row.
sub run_sync_wait
{
	my ($conn) = @_;
	poll("SELECT status = 'idle' AND runs + errors > 0 FROM integration.sync_streams
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

########################################################################
# 2. A webhook while the run that pulls the same change is under way; an order
#    changed twice during the run.
########################################################################

# A second connector of the same store: its first run reads all 600 orders, three
# pages; the second page's answer is held back 2 s.
sub shop_connector
{
	my ($name) = @_;
	return sql("SELECT id FROM integration.create_connector('shopify', '$name', '" . $shop->url . "',
		'{\"access_token\": \"" . $shop->credential('access_token') . "\"}',
		'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"],
		  \"retry_schedule\": \"200ms, 200ms, 500ms, 1s, 1s\"}', '" . $shop->credential('app_secret') . "')");
}
my $shop2 = shop_connector('shop2');
$shop->clear_log;
$shop->fault('delay', after => 1, ms => 2000, match => { path => $orders_path });
sql("SELECT count(*) FROM integration.sync_now($shop2, 'orders')");
my @delayed;
for (my $i = 0; $i < 600 && !@delayed; $i++)
{
	@delayed = grep { ($_->{fault} // '') eq 'delay' } $shop->requests(path => $orders_path);
	usleep(50_000) unless @delayed;
}
is(scalar @delayed, 1, 'shopify: the second page\'s answer is held back');
# An order of the third page: its webhook now, its pull later.  One of the first page,
# already pulled: a duplicate.  Another of the first page changes twice meanwhile.
my $late = $sids[580];
my $early = $sids[30];
my $twice = $sids[40];
my ($wl) = $shop->webhook(events => [ { topic => 'orders/updated', id => $late } ], send => 0);
my ($we) = $shop->webhook(events => [ { topic => 'orders/updated', id => $early } ], send => 0);
is(deliver($shop2, $wl), 'accepted', 'shopify: a webhook of an order of a page not pulled yet: accepted');
poll("SELECT run_pages >= 1 FROM integration.sync_state WHERE connector_id = $shop2 AND stream = 'orders'",
	'shopify: the first page is recorded');
is(deliver($shop2, $we), 'duplicate', 'shopify: a webhook of an order the first page brought: a duplicate');
$shop->update('orders', $twice, { note => 'twice 1' }, '2031-06-01T00:00:00Z');
$shop->update('orders', $twice, { note => 'twice 2' }, '2031-06-01T00:00:01Z');
$st = run_sync_wait($shop2);
settled($shop2);
is(once_each($shop2), '600|600|601|601', 'shopify: 600 orders stored once; 601 changes handed on once each');
is($node->safe_psql('postgres', "SELECT string_agg(order_id || ':' || coalesce(note, '-'), ',' ORDER BY order_id::numeric, n)
		FROM public.handled WHERE connector_id = $shop2 AND order_id IN ('$late', '$twice')"),
	"$twice:-,$twice:twice 2,$late:-",
	'shopify: the webhook\'s order once; the order changed twice during the run: its first version and its latest');

########################################################################
# 3. SIGKILL while a 429's Retry-After is pending, and while a page is being written.
########################################################################

# Kills the delivery worker and waits for its successor.
sub kill_worker
{
	my ($why) = @_;
	my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
	kill 'KILL', $pid;
	ok(poll_across_crash($node, 'postgres',
			"SELECT count(*) = 1 AND bool_and(pid <> $pid) FROM integration.worker_status() WHERE role = 'delivery'"),
		"$why: the server restarted with a new worker");
}

my $shop3 = shop_connector('shop3');
$shop->clear_log;
$shop->fault('429', after => 1, match => { path => $orders_path }, retry_after => '4.0');
sql("SELECT count(*) FROM integration.sync_now($shop3, 'orders')");
my @throttled;
for (my $i = 0; $i < 600 && !@throttled; $i++)
{
	@throttled = grep { $_->{status} eq '429' } $shop->requests(path => $orders_path);
	usleep(50_000) unless @throttled;
}
is(scalar @throttled, 1, 'shopify: the second page is throttled (Retry-After 4 s)');
is(sql("SELECT string_agg(status, ',') FROM integration.connector_calls WHERE connector_id = $shop3 AND status <> 'succeeded'"),
	'pending', 'its call waits for the Retry-After');
kill_worker('during a Retry-After wait');
$st = run_sync_wait($shop3);
settled($shop3);
is(once_each($shop3), '600|600|600|600', 'shopify: after the kill, 600 orders stored once and handed on once');
is(join('|', @$st{qw(runs pages records_seen records_changed errors)}), '1|3|600|600|0',
	'shopify: one run of three pages, 600 orders seen and changed, no error');

# A page's write held up in a trigger, and the worker killed there.
$node->safe_psql('postgres', q{
	CREATE SEQUENCE public.written;
	CREATE FUNCTION public.slow_record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog
	AS $$ BEGIN IF nextval('public.written') = 251 THEN PERFORM pg_sleep(30); END IF; RETURN NULL; END $$;
});
my $shop4 = shop_connector('shop4');
$node->safe_psql('postgres', "CREATE TRIGGER slow_record AFTER INSERT ON integration.external_records
	FOR EACH ROW WHEN (NEW.connector_id = $shop4) EXECUTE FUNCTION public.slow_record()");
sql("SELECT count(*) FROM integration.sync_now($shop4, 'orders')");
poll("SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'
	   AND pid = (SELECT pid FROM integration.worker_status() WHERE role = 'delivery')",
	'shopify: the worker is writing the second page');
kill_worker('while a page is written');
$st = run_sync_wait($shop4);
settled($shop4);
is(once_each($shop4), '600|600|600|600', 'shopify: after the kill, 600 orders stored once and handed on once');
is(join('|', @$st{qw(runs pages errors)}), '1|3|0', 'shopify: one run of three pages, no error');
$node->safe_psql('postgres', 'DROP TRIGGER slow_record ON integration.external_records');

########################################################################
# 4. Many orders in one second across page boundaries, some changed again in it.
########################################################################

my $s = '2032-01-01T00:00:00Z';
my @tie = @{ $shop->seed('orders', count => 400, per_second => 400, start => $s)->{ids} };
$st = run_sync($shop_conn);
settled($shop_conn);
is($st->{run_records_changed}, 401, 'shopify: 400 orders of one second over two pages, and the order changed twice');
$mark = mark();
my @again = @tie[ 0, 249, 250, 399 ];
$shop->update('orders', $_, { note => "again $_" }, $s) for @again;
$st = run_sync($shop_conn);
settled($shop_conn);
is($st->{run_records_changed}, 4, 'shopify: the overlap brings the four changed again within that second');
is(handled_since($shop_conn, $mark), join(',', map { "$_:again $_" } sort { $a <=> $b } @again),
	'shopify: each handed on once, nothing else');

my @wtie = @{ $woo->seed('orders', count => 150, per_second => 150, start => $s)->{ids} };
$st = run_sync($woo_conn);
settled($woo_conn);
is($st->{run_records_changed}, 150, 'woocommerce: 150 orders of one second');
$mark = mark();
my @wagain = @wtie[ 0, 99, 100, 149 ];
$woo->update('orders', $_, { customer_note => "again $_" }, $s) for @wagain;
$st = run_sync($woo_conn);
settled($woo_conn);
is($st->{run_records_changed}, 4, 'woocommerce: the overlap brings the four changed again within that second');
is(handled_since($woo_conn, $mark), join(',', map { "$_:again $_" } sort { $a <=> $b } @wagain),
	'woocommerce: each handed on once, nothing else');

is(once_each($shop_conn), '1000|1000|1009|1009', 'shopify: in all, 1,000 orders stored once, 1,009 changes handed on once');
is(once_each($woo_conn), '450|450|456|456', 'woocommerce: in all, 450 orders stored once, 456 changes handed on once');

$shop->stop;
$woo->stop;
$node->stop;
done_testing();
