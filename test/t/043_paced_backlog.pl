# The backlog lane's wait for a fast endpoint's room (paced_until() in
# src/delivery_job.c) is bounded per batch, whoever else takes that room.  The lane waits
# while an endpoint its last batch left short of room will have room for another batch
# within moments (SchedulerRoomSoon()); but the fresh lane, which never waits, claims
# the same endpoint's room as it frees, so while that endpoint's tenant keeps
# publishing, the room the wait expects never comes, and the ends of requests that keep
# coming kept the wait "soon" for as long as the tenant published: the backlog lane
# stopped, and another tenant's events behind the backlog stayed in the queue.
#
#   1. Tenant A publishes three events a commit for 20 s (a stream, through the fresh lane
#      once a backlog drains) to an endpoint that answers in 1 ms, one request at a
#      time: it stays full, its requests ending a millisecond or two apart.
#   2. Meanwhile one transaction queues 3,000 events of tenant A and then 5 of tenant B
#      (to an endpoint of B's that answers at once): a backlog, drained batch by batch.
#   3. B's 5 events are delivered within 8 s of that commit, while A still publishes
#      (at SCHED_ROOM_SOON_MS, 10 ms, a batch, the backlog's 47 batches wait half a
#      second in all).  Before the bound, they waited until A's stream ended.

# test/run: alone (its stream takes a core for 20 s, and its check bounds a latency).

use strict;
use warnings;

use IntegrationTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('paced_backlog', 'integration.max_concurrency_per_endpoint = 1');
my $recv = start_receiver();

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery' AND pid IS NOT NULL"),
	'the delivery worker runs');

my $a_url = receiver_url($recv, '/stream', delay_ms => 1);
my $b_url = receiver_url($recv, '/behind');
my $a_ep = register_for($node, 'tenant_a', 'stream', $a_url, '["pa.*"]');
my $b_ep = register_for($node, 'tenant_b', 'behind', $b_url, '["pb.*"]');

########################################################################
# 1. Tenant A's stream: three events a commit, for 20 s.
########################################################################

$node->safe_psql('postgres', q{
CREATE PROCEDURE public.stream_events(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	PERFORM set_config('integration.tenant_id', 'tenant_a', false);
	WHILE clock_timestamp() < t0 + seconds * interval '1 second' LOOP
		PERFORM integration.publish_event('pa.stream', '{}') FROM generate_series(1, 3);
		COMMIT;
		PERFORM pg_sleep(0.001);
	END LOOP;
END
$$});
my $stream_started = time;
my ($out, $err) = ('', '');
my $stream = IPC::Run::start(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', 'CALL public.stream_events(20)' ],
	'>', \$out, '2>', \$err);
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 200 FROM integration.deliveries WHERE endpoint_id = $a_ep AND status = 'delivered'"),
	"tenant A's endpoint is busy with its stream");

########################################################################
# 2. A backlog: 3,000 events of A, then 5 of B, in one transaction.
########################################################################

$node->safe_psql('postgres', q{
BEGIN;
SET LOCAL integration.tenant_id = 'tenant_a';
SELECT count(integration.publish_event('pa.backlog', jsonb_build_object('n', g))) FROM generate_series(1, 3000) g;
SET LOCAL integration.tenant_id = 'tenant_b';
SELECT count(integration.publish_event('pb.behind', jsonb_build_object('n', g))) FROM generate_series(1, 5) g;
COMMIT;
});
my $committed = time;

########################################################################
# 3. B's events, behind the backlog, while A still publishes.
########################################################################

my $b_seconds;
while (time - $committed < 15)
{
	if ($node->safe_psql('postgres',
			"SELECT count(*) = 5 FROM integration.deliveries WHERE endpoint_id = $b_ep AND status = 'delivered'")
		eq 't')
	{
		$b_seconds = time - $committed;
		last;
	}
	usleep(50_000);
}
my $streaming = defined $b_seconds && $committed + $b_seconds - $stream_started < 20;
ok(defined $b_seconds && $b_seconds < 8,
	sprintf("tenant B's 5 events behind the backlog were delivered within 8 s (%s)",
		defined $b_seconds ? sprintf('%.1f s', $b_seconds) : 'not within 15 s'))
  or diag('events still queued: '
	  . $node->safe_psql('postgres', 'SELECT count(*) FROM integration.webhook_event_queue'));
ok($streaming, 'while tenant A still published');

$stream->finish;
is($?, 0, "tenant A's stream ran to its end") or diag($err);
cmp_ok($node->safe_psql('postgres',
		"SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $a_ep AND status = 'delivered'"),
	'>', 1000, "tenant A's endpoint kept delivering");

stop_receiver($recv);
$node->stop;
done_testing();
