# The HTTP client's other mode: every other TAP test runs the worker with the default
# of integration.http_thread, so this one runs a few deliveries with the opposite
# value (libcurl on the worker's main thread, or on a thread of its own): a success, a
# 500 that is retried, a timeout, and an idle wait with a request in flight.

# test/run: alone (its checks bound a timeout's duration and the worker's CPU ticks).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('http_modes',
	"integration.retry_schedule = '100ms, 100ms'");
my $default = $node->safe_psql('postgres',
	"SELECT boot_val FROM pg_settings WHERE name = 'integration.http_thread'");
my $mode = $default eq 'on' ? 'off' : 'on';
$node->append_conf('postgresql.conf', "integration.http_thread = $mode\n");
$node->restart;
is($node->safe_psql('postgres', 'SHOW integration.http_thread'), $mode,
	"integration.http_thread = $mode, the default being $default");

my $recv = start_receiver();

sub q1 { return tenant_psql($node, $_[0]); }

sub poll_ok
{
	my ($sql, $what) = @_;
	ok($node->poll_query_until('postgres', $sql), $what);
}

sub requests_to
{
	my ($path) = @_;
	return grep { $_->{path_only} eq $path } read_log_settled($recv);
}

sub register
{
	my ($name, $url, $events, %opt) = @_;
	my $id = q1(qq{SELECT id FROM integration.register_webhook(name => '$name',
		url => '$url', events => '$events')});
	my @set;
	push @set, "timeout_ms = $opt{timeout_ms}" if defined $opt{timeout_ms};
	push @set, "retry_schedule = '$opt{retry_schedule}'" if defined $opt{retry_schedule};
	q1("UPDATE integration.webhook_endpoints SET " . join(', ', @set) . " WHERE id = $id")
	  if @set;
	return $id;
}

poll_ok("SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery'", 'the worker runs');
my $worker_pid = q1("SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");

# Threads of the worker process: 1 when libcurl runs on its main thread.
sub threads
{
	opendir(my $d, "/proc/$worker_pid/task") or return -1;
	my $n = grep { /^\d+$/ } readdir($d);
	closedir($d);
	return $n;
}

sub cpu_ticks
{
	my @f = split ' ', slurp_file("/proc/$worker_pid/stat") =~ s/^.*\) //sr;
	return $f[11] + $f[12];    # utime + stime
}

# 1. Successes, more of them than one endpoint takes at a time (16).
my $ok = register('ok', receiver_url($recv, '/ok'), '["ok.*"]');
q1(q{SELECT count(integration.publish_event('ok.x', jsonb_build_object('i', i))) FROM generate_series(1, 40) i});
poll_ok("SELECT count(*) = 40 AND bool_and(status = 'delivered' AND attempts = 1) FROM integration.deliveries WHERE endpoint_id = $ok",
	'40 deliveries, each delivered at the first attempt');
is(scalar(requests_to('/ok')), 40, 'the receiver saw 40 requests');
if ($mode eq 'off')
{
	is(threads(), 1, 'the worker process has one thread');
}
else
{
	cmp_ok(threads(), '>=', 2, 'the worker process has its HTTP thread');
}

# 2. 500 once, then 200: retried.
my $retry = register('retry', receiver_url($recv, '/retry', status => '500x1'), '["retry.*"]');
q1(q{SELECT integration.publish_event('retry.x', '{}')});
poll_ok("SELECT status = 'delivered' AND attempts = 2 FROM integration.deliveries WHERE endpoint_id = $retry",
	'500 then 200: delivered at the second attempt');
is(q1(qq{SELECT string_agg(attempt || ':' || coalesce(status_code::text, '-') || ':'
								|| coalesce(error_class, '-'), ',' ORDER BY attempt)
		   FROM integration.webhook_delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		  WHERE d.endpoint_id = $retry}),
	'1:500:http_status,2:200:-', 'attempts: 500, then 200');
is(scalar(requests_to('/retry')), 2, 'the receiver saw two requests');

# 3. A timeout: only libcurl's timer can end this request, nothing else wakes the worker.
my $slow = register('timeout', receiver_url($recv, '/timeout', delay_ms => 3000),
	'["timeout.*"]', timeout_ms => 300, retry_schedule => '');
my $t0 = time();
q1(q{SELECT integration.publish_event('timeout.x', '{}')});
poll_ok("SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $slow",
	'the slow request fails');
ok(time() - $t0 < 2.5, 'well before the receiver would have answered');
is(q1(qq{SELECT a.error_class || '|' || (a.duration_ms BETWEEN 250 AND 1500) || '|' || (a.status_code IS NULL)
		   FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		  WHERE d.endpoint_id = $slow}),
	'timeout|true|true', 'error class timeout, after about 300 ms');

# 4. A request in flight that takes its time: the worker waits without spinning (a
# client fd that stayed readable, or a timeout of 0, would use a core: about 100
# ticks a second), and the answer still comes.
my $hang = register('hang', receiver_url($recv, '/hang', delay_ms => 1500), '["hang.*"]');
q1(q{SELECT integration.publish_event('hang.x', '{}')});
poll_ok("SELECT in_flight = 1 FROM integration.worker_status() WHERE role = 'delivery'", 'a request in flight');
my $ticks0 = cpu_ticks();
usleep(1_000_000);
my $ticks = cpu_ticks() - $ticks0;
cmp_ok($ticks, '<', 20, "the worker idles meanwhile ($ticks CPU ticks in 1 s)");
poll_ok("SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $hang",
	'then the answer is recorded');

# The worker stops on SIGTERM at once, its request loop included.
$t0 = time();
$node->stop('fast');
ok(time() - $t0 < 5, 'the server stops fast');

stop_receiver($recv);
done_testing();
