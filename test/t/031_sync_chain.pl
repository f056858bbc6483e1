# A sync run's pages chained inside the worker (src/call_job.c, begin_next()): the next
# page's call begins in the transaction that records the page before it, in that page's
# request slot, and only as the connector's limits allow, against the loopback
# Shopify-compatible server:
#
#   1. A connector without limits: each page after the first began in the transaction
#      that recorded the one before (its last_attempt_at is that transaction's now(),
#      the finished_at of the page before), and every order is stored once.
#   2. A connector with settings.rate_limit 4 a second and a burst of 1: its ten page
#      requests still keep to the limit (at most 1 + 4t of them in any t seconds), and
#      every order is stored once.
#   3. The next page's request goes out before the page is written (request_ahead()):
#      with every page's answer 0.5 s late and every page's write made to take 0.5 s,
#      the ten requests follow each other about 0.5 s apart, not 1 s, and none is sent
#      twice.

# test/run: alone (its checks bound the page requests in any window of time).

use strict;
use warnings;

use IntegrationTest;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::Local qw(timegm);

my $node = new_integration_node('sync_chain');
my $shop = PlatformServer->start('shopify');
my $orders_path = '/admin/api/2025-01/orders.json';

sub sql { return tenant_psql($node, "SET ROLE chain_app;\n$_[0]", 'chain-tenant'); }

# The request log's times (ISO 8601, UTC) in seconds.
sub epoch
{
	my ($y, $mo, $d, $h, $mi, $sec) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):([\d.]+)Z$/ or die "bad time $_[0]";
	return timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

create_app_role($node, 'chain_app');
my $token = $shop->credential('access_token');
is($shop->seed('orders', count => 2500, per_second => 100, start => '2025-01-01T00:00:00Z')->{total},
	2500, 'the store has 2,500 orders: ten pages of 250');

# Runs a connector's orders stream to its end; returns the connector's id.
sub run_sync
{
	my ($name, $settings) = @_;
	my $conn = sql("SELECT id FROM integration.create_connector('shopify', '$name', '" . $shop->url . "',
		'{\"access_token\": \"$token\"}', '$settings')");
	sql("SELECT integration.sync_now($conn, 'orders')");
	ok($node->poll_query_until('postgres',
			"SELECT status = 'idle' AND runs = 1 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'"),
		"$name: the run ends");
	is(sql("SELECT concat_ws('|', pages, records_changed, errors) FROM integration.sync_state
			WHERE connector_id = $conn AND stream = 'orders'"),
		'10|2500|0', "$name: ten pages, 2,500 orders changed, no error");
	is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records
			WHERE connector_id = $conn"), '2500|2500', "$name: each order stored once");
	return $conn;
}

########################################################################
# 1. Without limits: each page begun where the one before was recorded.
########################################################################

$shop->clear_log;
my $free = run_sync('unlimited', '{"sync_interval": 0, "sync_streams": ["orders"]}');
is(sql("SELECT count(*) FILTER (WHERE k.last_attempt_at = k.before_finished) || '|' || count(*)
		  FROM (SELECT k.last_attempt_at, lag(k.finished_at) OVER (ORDER BY k.id) AS before_finished
				  FROM integration.connector_calls k WHERE k.connector_id = $free) k
		 WHERE k.before_finished IS NOT NULL"),
	'9|9', 'each page after the first began in the transaction that recorded the one before');
is(scalar(my @r = $shop->requests(path => $orders_path)), 10, 'ten requests: no page asked for twice');

########################################################################
# 2. A rate limit still holds: the chain waits for the connector's tokens.
########################################################################

$shop->clear_log;
run_sync('limited', '{"sync_interval": 0, "sync_streams": ["orders"], "rate_limit": 4, "rate_limit_burst": 1}');
my @t = map { epoch($_->{t}) } $shop->requests(path => $orders_path);
is(scalar @t, 10, 'ten requests');
my $worst = 0;
for my $i (0 .. $#t)
{
	for my $j ($i + 1 .. $#t)
	{
		# j - i + 1 requests within t[j] - t[i] seconds: at most 1 + 4 (t[j] - t[i]),
		# give or take the server's clock resolution.
		my $over = ($j - $i + 1) - (1 + 4 * ($t[$j] - $t[$i] + 0.01));
		$worst = $over if $over > $worst;
	}
}
is($worst, 0, 'at most 1 + 4t page requests in any t seconds');
cmp_ok($t[-1] - $t[0], '>=', 2.2, 'the ten requests take at least 9 / 4 s');

########################################################################
# 3. The next page's request on its way while the page is written.
########################################################################

$node->safe_psql('postgres', q{
	CREATE FUNCTION public.slow_write() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END $$;
	CREATE TRIGGER slow_write AFTER INSERT ON integration.external_records
		FOR EACH STATEMENT EXECUTE FUNCTION public.slow_write();
});
$shop->clear_log;
$shop->fault('delay', count => 100, ms => 500, match => { path => $orders_path });
my $slow = run_sync('slow', '{"sync_interval": 0, "sync_streams": ["orders"]}');
@t = map { epoch($_->{t}) } $shop->requests(path => $orders_path);
is(scalar @t, 10, 'ten requests: none sent twice');
my @gaps = map { $t[$_] - $t[ $_ - 1 ] } 1 .. $#t;
# In turn: 0.5 s for the answer, then 0.5 s to write the page (its two inserts into
# external_records), the next request sent meanwhile.
is(scalar(grep { $_ >= 0.8 } @gaps), 0, 'each request went out while the page before was written')
  or diag("gaps: @gaps");
is(sql("SELECT count(*) FILTER (WHERE attempts = 1) FROM integration.connector_calls WHERE connector_id = $slow"),
	'10', 'each page call made one attempt');
$node->safe_psql('postgres', 'DROP TRIGGER slow_write ON integration.external_records');

$node->stop;
done_testing();
