# Sync (incremental pull) end to end, against the loopback Shopify-compatible server
# (test/platforms/shopify.mjs, Link page_info pagination, the call-limit bucket):
#
#   1. 10,000 orders over 40 pages of 250, 100 orders a second (ties straddle every page
#      boundary), with a 429 (Retry-After), a 500 and a SIGKILL of the worker while a
#      page is in flight: every order stored once in external_records, every order
#      handed to an application's on_inbound() handler once, sync_state's figures exact
#      (one run, 40 pages, 10,000 seen and changed, the cursor the latest updated_at).
#   2. A second run after changes to 5 orders: it reads back from the cursor minus the
#      overlap, and hands on exactly those 5.
#   3. A change that comes both by webhook and by pull is handled once, whichever comes
#      first.
#   4. Same-second updates straddling the cursor: a record updated within the second of
#      the cursor after the run that set it, and another update of a record in that same
#      second: the overlap brings both, each handed on once, nothing else.
#   5. Scheduled runs (settings.sync_interval): the worker starts them by itself;
#      worker_status() counts them.

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Time::Local qw(timegm);

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('sync',
	"integration.request_timeout = '20s'",
	'restart_after_crash = on');
my $shop = PlatformServer->start('shopify');
my $orders_path = '/admin/api/2025-01/orders.json';

sub sql { return tenant_psql($node, "SET ROLE sync_app;\n$_[0]", 'shop-tenant'); }
sub dq { return '$q$' . $_[0] . '$q$'; }

# The request log's times (ISO 8601, UTC) in seconds.
sub epoch
{
	my ($y, $mo, $d, $h, $mi, $sec) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):([\d.]+)Z$/ or die "bad time $_[0]";
	return timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

# The handler's log so far.
sub handled_upto { return $node->safe_psql('postgres', 'SELECT coalesce(max(n), 0) FROM public.handled'); }

# As a superuser, who sees every tenant's rows.
sub poll
{
	my ($query, $name) = @_;
	ok($node->poll_query_until('postgres', $query), $name);
}

# The application: its role, and a handler of the orders' events that logs each one.
create_app_role($node, 'sync_app');
$node->safe_psql('postgres', q{
	CREATE TABLE public.handled (n bigserial, event text, external_id text, order_id text,
								 updated_at text, note text);
	GRANT ALL ON public.handled, public.handled_n_seq TO sync_app;
	CREATE FUNCTION public.on_order(e integration.inbound_events) RETURNS void LANGUAGE sql
	AS $$ INSERT INTO public.handled (event, external_id, order_id, updated_at, note)
		  VALUES (e.event, e.external_id, e.payload ->> 'id', e.payload ->> 'updated_at', e.payload ->> 'note') $$;
});
sql(q{SELECT integration.on_inbound('orders', '["shopify.orders.*"]', 'public.on_order(integration.inbound_events)')});

my $token = $shop->credential('access_token');
my $secret = $shop->credential('app_secret');
my $conn = sql("SELECT id FROM integration.create_connector('shopify', 'loopback', '" . $shop->url . "',
	'{\"access_token\": \"$token\"}',
	'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"],
	  \"retry_schedule\": \"200ms, 200ms, 500ms, 1s, 1s\"}', '$secret')");

sub state_of
{
	my ($cols) = @_;
	return sql("SELECT concat_ws('|', $cols) FROM integration.sync_state
		WHERE connector_id = $conn AND stream = 'orders'");
}

########################################################################
# 1. 10,000 orders, a 429, a 500 and a SIGKILL.
########################################################################

my $seeded = $shop->seed('orders', count => 10000, per_second => 100, start => '2025-01-01T00:00:00Z');
is($seeded->{total}, 10000, 'the store has 10,000 orders');

# The 9th page request is throttled, the 17th fails, the 26th hangs until the worker is
# killed.
$shop->fault('429', after => 8, match => { path => $orders_path }, retry_after => '1.0');
$shop->fault('500', after => 16, match => { path => $orders_path });
$shop->fault('hang', after => 25, match => { path => $orders_path });

is(sql("SELECT concat_ws('|', stream, status) FROM integration.sync_now($conn)"), 'orders|running',
	'sync_now() starts the run');

my @hung;
for (my $i = 0; $i < 1200 && !@hung; $i++)
{
	@hung = grep { ($_->{status} // '') eq 'hang' } $shop->requests(path => $orders_path);
	usleep(100_000) unless @hung;
}
is(scalar @hung, 1, 'a page request hangs mid-run');
is(sql("SELECT count(*) FROM integration.connector_calls WHERE connector_id = $conn AND status = 'sending'"),
	'1', 'its call is in flight');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
kill 'KILL', $pid;
ok(poll_across_crash($node, 'postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $pid) FROM integration.worker_status() WHERE role = 'delivery'"),
	'the server restarted after the crash, with a new worker');

poll("SELECT status = 'idle' AND runs = 1 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'the run ends');
is(state_of('status, runs, pages, records_seen, records_changed, run_pages, run_records_seen, run_records_changed, errors'),
	'idle|1|40|10000|10000|40|10000|10000|0',
	'sync_state: one run, 40 pages, 10,000 records seen and changed, no error');
is(state_of("to_char(cursor_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"), '2025-01-01 00:01:39',
	'the cursor is the latest updated_at');

my @reqs = $shop->requests(path => $orders_path);
my %status;
$status{ $_->{status} }++ for @reqs;
is_deeply(\%status, { 200 => 40, 429 => 1, 500 => 1, hang => 1 },
	'40 pages, one 429, one 500, one request cut short by the crash');
my @throttled = grep { $reqs[$_]{status} eq '429' } 0 .. $#reqs;
cmp_ok(epoch($reqs[ $throttled[0] + 1 ]{t}) - epoch($reqs[ $throttled[0] ]{t}), '>=', 0.95,
	'the page after the 429 waited for its Retry-After');
my ($first, @next) = @reqs;
like($first->{query}, qr/^limit=250&order=updated_at(\+|%20)asc&status=any$/, 'the first page: limit, order, every status');
my ($hang_idx) = grep { $reqs[$_]{status} eq 'hang' } 0 .. $#reqs;
is($reqs[ $hang_idx + 1 ]{query}, $reqs[$hang_idx]{query}, 'the page cut short is asked for again after the restart');
my @bad = grep { $_->{query} !~ /^limit=250&page_info=[A-Za-z0-9_-]+$/ } @next;
is(scalar @bad, 0, 'the next pages send only the page_info and limit of the Link header');
is(sql("SELECT count(*) FROM integration.connector_calls WHERE connector_id = $conn AND sync_stream = 'orders'
		AND status = 'succeeded'"), '40', 'one succeeded call per page');
is(sql("SELECT count(*) FROM integration.inbound_events WHERE connector_id = $conn AND event LIKE 'shopify.call.%'"),
	'0', 'pull calls write no completion events');

is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records
		WHERE connector_id = $conn AND stream = 'orders'"), '10000|10000', 'each order is stored once');
poll('SELECT count(*) >= 10000 FROM public.handled', 'the handler runs for every order');
sleep 1;
is($node->safe_psql('postgres', 'SELECT count(*) || \'|\' || count(DISTINCT order_id) FROM public.handled'),
	'10000|10000', 'each order is handed to the handler once');
is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT event, ',') FROM public.handled"),
	'shopify.orders.updated', 'as shopify.orders.updated, the name its webhook has');

########################################################################
# 2. A second run: exactly the changed orders.
########################################################################

my @ids = @{ $seeded->{ids} };
my @changed = @ids[ 0, 1, 2, 5000, 9999 ];
$shop->update('orders', $_, { note => "changed $_" }) for @changed;
my $since_s = 99 - 60;    # the cursor (00:01:39) minus the overlap
my $expect_seen = grep { $_ >= $since_s * 100 } 0 .. 9999;
$expect_seen += grep { $_ < $since_s * 100 } (0, 1, 2, 5000, 9999);

$shop->clear_log;
my $mark = handled_upto();
sql("SELECT integration.sync_now($conn, 'orders')");
poll("SELECT status = 'idle' AND runs = 2 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'the second run ends');
is(state_of('run_records_seen, run_records_changed, errors'), "$expect_seen|5|0",
	"it reads $expect_seen orders from the cursor minus the overlap, and 5 changed");
like(($shop->requests(path => $orders_path))[0]{query}, qr/updated_at_min=2025-01-01T00(%3A|:)00(%3A|:)39Z/i,
	'from updated_at_min: the cursor minus 60 s');
poll("SELECT count(*) >= 5 FROM public.handled WHERE n > $mark", 'the handler runs for the changes');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(order_id, ',' ORDER BY order_id::numeric) FROM public.handled WHERE n > $mark"),
	join(',', sort { $a <=> $b } @changed), 'exactly the changed orders are handed on, once each');
is($node->safe_psql('postgres', "SELECT count(*) FROM public.handled WHERE n > $mark AND note LIKE 'changed %'"),
	'5', 'with their new content');

########################################################################
# 3. Webhook and pull of the same change: handled once.
########################################################################

sub deliver
{
	my ($d) = @_;
	return sql('SELECT status FROM integration.receive_webhook(' . $conn . ', '
		  . dq($json->encode($d->{headers})) . ', ' . dq($d->{body}) . ')');
}

my ($a_id, $b_id) = @ids[ 100, 200 ];
my $handled_before = handled_upto();

# A: the webhook first, then the pull.
my ($wa) = $shop->webhook(events => [ { topic => 'orders/updated', id => $a_id, update => { note => 'webhook first' } } ],
	send => 0);
is(deliver($wa), 'accepted', 'order A\'s change arrives by webhook: accepted');
is(deliver($wa), 'duplicate', 'its retry is a duplicate');
# B: the pull first, then the webhook.
$shop->update('orders', $b_id, { note => 'pull first' });
sql("SELECT integration.sync_now($conn, 'orders')");
poll("SELECT status = 'idle' AND runs = 3 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'a run pulls both changes');
is(state_of('run_records_changed'), '1', 'of which only B is a change: A came by webhook');
my ($wb) = $shop->webhook(events => [ { topic => 'orders/updated', id => $b_id } ], send => 0);
is(deliver($wb), 'duplicate', 'order B\'s webhook after the pull is a duplicate');
my ($wb2) = $shop->webhook(events => [ { topic => 'orders/paid', id => $b_id } ], send => 0);
is(deliver($wb2), 'duplicate', 'and so is another topic about the same version');
is(sql("SELECT source FROM integration.external_records WHERE connector_id = $conn AND stream = 'orders'
		AND external_id = '$a_id'"), 'pull', 'A\'s stored version is the pulled copy now');
poll("SELECT count(*) >= 2 FROM public.handled WHERE n > $handled_before", 'the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(order_id || ':' || note, ',' ORDER BY order_id::numeric) FROM public.handled
		WHERE n > $handled_before"),
	"$a_id:webhook first,$b_id:pull first", 'each change is handled once: A\'s webhook, B\'s pull');

########################################################################
# 4. Same-second updates straddling the cursor.
########################################################################

# C is updated at second T and pulled: the cursor is T.  Then, within that same second,
# D is updated and C again: both have updated_at T, after the run that set the cursor.
my ($c_id, $d_id) = @ids[ 300, 400 ];
my $t = '2030-01-01T00:00:00Z';
$shop->update('orders', $c_id, { note => 'C at T' }, $t);
sql("SELECT integration.sync_now($conn, 'orders')");
poll("SELECT status = 'idle' AND runs = 4 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'a run pulls C');
is(state_of("run_records_changed, to_char(cursor_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"),
	'1|2030-01-01 00:00:00', 'the cursor is T');
poll("SELECT count(*) = 1 FROM public.handled WHERE note = 'C at T'", 'C\'s change is handled');
$shop->update('orders', $d_id, { note => 'D at T' }, $t);
$shop->update('orders', $c_id, { note => 'C again at T' }, $t);
$handled_before = handled_upto();
sql("SELECT integration.sync_now($conn, 'orders')");
poll("SELECT status = 'idle' AND runs = 5 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'the next run ends');
is(state_of('run_records_changed'), '2', 'the overlap brings both same-second updates, and nothing else');
sql("SELECT integration.sync_now($conn, 'orders')");
poll("SELECT status = 'idle' AND runs = 6 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'a run after that ends');
is(state_of('run_records_changed'), '0', 'which finds no change');
poll("SELECT count(*) >= 2 FROM public.handled WHERE n > $handled_before", 'the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(order_id || ':' || note, ',' ORDER BY order_id::numeric) FROM public.handled
		WHERE n > $handled_before"),
	join(',', sort { $a cmp $b } "$c_id:C again at T", "$d_id:D at T"),
	'each is handed on once: no loss, no duplicate');
is(state_of('runs, records_changed, errors'), '6|10009|0',
	'over six runs, 10,009 changes pulled (10,000, 5, B, C, then C and D), no error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.handled'), '10010',
	'and 10,010 handled: those, and A\'s webhook');

########################################################################
# 5. Scheduled runs.
########################################################################

sql("SELECT integration.update_connector($conn, settings => '{\"sync_interval\": 1, \"sync_overlap\": 60,
	\"sync_streams\": [\"orders\"], \"retry_schedule\": \"200ms\"}')");
poll("SELECT runs >= 8 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'with settings.sync_interval 1, the worker starts runs by itself');
cmp_ok($node->safe_psql('postgres', "SELECT sync_runs_started FROM integration.worker_status() WHERE role = 'delivery'"),
	'>=', 2, 'worker_status() counts the scheduled runs it started');
sql("SELECT integration.update_connector($conn, settings => '{\"sync_interval\": 0, \"sync_streams\": [\"orders\"]}')");
poll("SELECT status = 'idle' AND next_run_at IS NULL FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'sync_interval 0 stops them');
is(state_of('errors'), '0', 'and no run failed');

$shop->stop;
$node->stop;
done_testing();
