# A request built ahead for a sync run's next page (src/call_job.c: request_ahead())
# whose build fails the whole store transaction (an error no call is to blame for, here
# a lock wait past the worker's lock_timeout) leaves nothing of it in the worker's
# memory.  The worker is a background worker, so pg_backend_memory_contexts cannot see
# it; pg_log_backend_memory_contexts() makes it log its contexts, where every call
# attempt held has a context of its own ("integration connector call"): once the run
# has ended and nothing is in flight, there is none.
#
# The first page's answer comes 2 s after its request; meanwhile the test holds
# integration.connector_kinds locked, which only building a request reads, so the
# transaction that records the page fails where it builds the next page's request
# ahead, until the lock goes.

use strict;
use warnings;

use IntegrationTest;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('sched_mend', "integration.request_timeout = '20s'");
my $shop = PlatformServer->start('shopify');
my $orders_path = '/admin/api/2025-01/orders.json';

sub sql { return tenant_psql($node, "SET ROLE mend_app;\n$_[0]", 'mend-tenant'); }

# Waits for the log, from byte $from on, to match $re; returns the log from $from.
sub log_until
{
	my ($from, $re) = @_;
	my $log = '';
	for (1 .. 200)
	{
		$log = slurp_file($node->logfile, $from);
		last if $log =~ $re;
		usleep(50_000);
	}
	return $log;
}

create_app_role($node, 'mend_app');
is($shop->seed('orders', count => 500, per_second => 100, start => '2025-01-01T00:00:00Z')->{total},
	500, 'the store has 500 orders: two pages of 250');
my $token = $shop->credential('access_token');
my $conn = sql("SELECT id FROM integration.create_connector('shopify', 'mend', '" . $shop->url
	  . "', '{\"access_token\": \"$token\"}', '{\"sync_interval\": 0, \"sync_streams\": [\"orders\"]}')");

$shop->fault('delay', count => 1, ms => 2000, match => { path => $orders_path });
sql("SELECT integration.sync_now($conn, 'orders')");
is(scalar($shop->wait_for_requests(1, 20, path => $orders_path)), 1, 'the first page is asked for');
my $log_at = -s $node->logfile;
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE integration.connector_kinds IN ACCESS EXCLUSIVE MODE');
like(log_until($log_at, qr/making connector calls failed: canceling statement due to lock timeout/),
	qr/making connector calls failed: canceling statement due to lock timeout/,
	'recording the first page fails while the lock is held');
$locker->query_safe('COMMIT');
$locker->quit;

ok($node->poll_query_until('postgres',
		"SELECT status = 'idle' AND runs = 1 AND pages = 2 AND errors = 0
		   FROM integration.sync_streams WHERE connector_id = $conn"),
	'once the lock is gone, the run ends with both pages');
is($node->safe_psql('postgres', "SELECT count(*) FROM integration.external_records WHERE connector_id = $conn"),
	'500', 'each order stored');
ok($node->poll_query_until('postgres',
		"SELECT in_flight = 0 FROM integration._target_health('connector') WHERE target_id = $conn"),
	'nothing in flight');

my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
$log_at = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)"), 't',
	'the worker is asked to log its memory contexts');
my $contexts = log_until($log_at, qr/Grand total:/);
like($contexts, qr/level: \d+; integration connector calls: /, 'the worker logged its contexts');
my $attempts = () = $contexts =~ /level: \d+; integration connector call: /g;
is($attempts, 0, 'no call attempt\'s memory is left');

$node->stop;
done_testing();
