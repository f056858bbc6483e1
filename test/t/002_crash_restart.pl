# At-least-once delivery across a crash: 5,000 deliveries are in flight to a slow
# receiver when the postmaster is killed with SIGKILL.  After a restart every
# delivery arrives, none is left pending or sending, and the duplicates (requests
# that reached the receiver but whose result was never recorded) are bounded by
# integration.max_concurrency.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $max_concurrency = 32;
my $n_events = 1000;
my $n_endpoints = 5;
my $total = $n_events * $n_endpoints;

my $node = new_integration_node('crash',
	"integration.max_concurrency = $max_concurrency",
	"integration.retry_schedule = '100ms, 100ms, 100ms'",
	'restart_after_crash = on');
my $recv = start_receiver();

my @endpoints;
for my $i (1 .. $n_endpoints)
{
	my $url = receiver_url($recv, "/ep$i", delay_ms => 20);
	push @endpoints, tenant_psql($node, qq{
		SELECT id FROM integration.register_webhook(name => 'ep$i', url => '$url',
			events => '["load.*"]')});
}

# One transaction, 1,000 events, each fanned out to 5 endpoints by the worker.
is(tenant_psql($node, qq{
	SELECT sum(integration.publish_event('load.tick', jsonb_build_object('i', i)))
	  FROM generate_series(1, $n_events) i}),
	$total, "$total deliveries published");

my @before = wait_for_requests($recv, 500, 30);
my $pm_pid = $node->{_pid};
my @children = split ' ', `ps --ppid $pm_pid -o pid=`;
$node->kill9;
my $arrived_before = scalar(read_log($recv));
note "requests arrived when the postmaster was killed: $arrived_before";
ok($arrived_before >= 500 && $arrived_before < $total,
	'the crash came while deliveries were in flight');

# The old children notice the postmaster's death and exit; only then can a new
# postmaster take the data directory.
my $deadline = time() + 30;
while (time() < $deadline && grep { kill(0, $_) } @children)
{
	usleep(50_000);
}
ok(!(grep { kill(0, $_) } @children), 'the old server processes are gone');
$node->start;

ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM integration.deliveries WHERE status IN ('pending', 'sending')"
		  . " OR (SELECT count(*) FROM integration.webhook_event_queue) > 0",
		'0'),
	'after the restart no delivery is left pending or sending');
is($node->safe_psql('postgres',
		"SELECT status || ':' || count(*) FROM integration.deliveries GROUP BY status"),
	"delivered:$total", "all $total deliveries are delivered");

# What the receiver saw: requests per (path, webhook-id).
stop_receiver($recv);    # writes out its log
my %seen;
my $requests = 0;
for my $r (read_log($recv))
{
	$seen{"$r->{path_only} $r->{headers}{'webhook-id'}"}++;
	$requests++;
}

my %expected;
for my $row (split /\n/, $node->safe_psql('postgres', q{
	SELECT regexp_replace(ep.url, '^http://[^/]+(/[^?]*).*$', '\1') || ' ' || e.message_id
	  FROM integration.deliveries d
	  JOIN integration.webhook_endpoints ep ON ep.tenant_id = d.tenant_id AND ep.id = d.endpoint_id
	  JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id}))
{
	$expected{$row} = 1;
}
is(scalar(keys %expected), $total, "$total distinct (endpoint, webhook-id) pairs expected");
my @missing = grep { !$seen{$_} } keys %expected;
is(scalar @missing, 0, 'every delivery arrived at least once')
  or diag('missing e.g. ' . join(', ', (sort @missing)[0 .. ($#missing < 4 ? $#missing : 4)]));
my @unexpected = grep { !$expected{$_} } keys %seen;
is(scalar @unexpected, 0, 'nothing arrived that was not published');

my $duplicates = 0;
$duplicates += $_ - 1 for values %seen;
note "requests received: $requests, distinct: " . scalar(keys %seen)
  . ", duplicates: $duplicates, max_concurrency: $max_concurrency";
ok($duplicates <= $max_concurrency,
	"duplicates ($duplicates) <= integration.max_concurrency ($max_concurrency)");
is($requests, $total + $duplicates, 'requests = deliveries + duplicates');

$node->stop;
done_testing();
