# The delivery worker's transactions keep the isolation and durability its design
# rests on, whatever the server's or the database's defaults say (worker.c,
# pin_session_settings()).
#
#   1. default_transaction_isolation = serializable: the worker's statements lock rows
#      a tenant may update meanwhile (its endpoint, FOR KEY SHARE, at every fan-out).
#      Under READ COMMITTED a lock follows the newer version; under REPEATABLE READ or
#      SERIALIZABLE it fails the whole cycle with "could not serialize access", and the
#      worker pauses a second before trying again, for every tenant.  While tenant A
#      updates its endpoint in a loop and publishes to it, tenant B's events arrive,
#      and the server log holds no serialization failure of the worker.
#   2. synchronous_commit = off: a delivery's outcome is recorded by a commit that
#      waits for its WAL flush, so what a crash can send twice stays within
#      integration.max_concurrency (t/002).  The commit that records an outcome is in
#      the flushed WAL (pg_walinspect) as soon as the outcome can be seen, while the
#      WAL writer, the only other flusher here, waits 10 s between rounds.

use strict;
use warnings;

use IntegrationTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('session_defaults',
	"default_transaction_isolation = 'serializable'",
	'synchronous_commit = off',
	'wal_writer_delay = 10000ms');
my $recv = start_receiver();

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery' AND pid IS NOT NULL"),
	'the delivery worker runs');
is($node->safe_psql('postgres', 'SHOW default_transaction_isolation'), 'serializable',
	"the server's default isolation is serializable");

my $a_ep = register_for($node, 'tenant_a', 'busy', receiver_url($recv, '/busy'), '["sa.*"]');
my $b_ep = register_for($node, 'tenant_b', 'calm', receiver_url($recv, '/calm'), '["sb.*"]');

########################################################################
# 1. Tenant A changes its endpoint while publishing to it; B's events arrive.
########################################################################

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', qq{
CREATE PROCEDURE public.churn(seconds float8) LANGUAGE plpgsql AS \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
	i integer := 0;
BEGIN
	PERFORM set_config('integration.tenant_id', 'tenant_a', false);
	WHILE clock_timestamp() < t0 + seconds * interval '1 second' LOOP
		i := i + 1;
		PERFORM integration.update_webhook($a_ep, headers => jsonb_build_object('X-Round', i::text));
		COMMIT;
		PERFORM integration.publish_event('sa.tick', jsonb_build_object('i', i));
		COMMIT;
	END LOOP;
END
\$\$});
my ($out, $err) = ('', '');
my $churn = IPC::Run::start(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', 'CALL public.churn(6)' ],
	'>', \$out, '2>', \$err);
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 50 FROM integration.deliveries WHERE endpoint_id = $a_ep AND status = 'delivered'"),
	"tenant A's endpoint changes while its events are delivered");

my $b_started = time;
for my $round (1 .. 20)
{
	tenant_psql($node, qq{SELECT count(integration.publish_event('sb.tick', jsonb_build_object('r', $round, 'n', g)))
		FROM generate_series(1, 10) g}, 'tenant_b');
	usleep(100_000);
}
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 200 FROM integration.deliveries WHERE endpoint_id = $b_ep AND status = 'delivered'"),
	"tenant B's 200 events were delivered");
$churn->finish;
is($?, 0, "tenant A's changes ran to their end") or diag($err);
my $updates = $node->safe_psql('postgres',
	"SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $a_ep");
cmp_ok($updates, '>', 100, "tenant A changed its endpoint and published $updates times");

my $log = slurp_file($node->logfile, $log_offset);
my @serialization = grep { /integration worker.*could not serialize/ } split /\n/, $log;
is(scalar(@serialization), 0, 'no cycle of the worker failed to serialize')
  or diag(join("\n", @serialization[0 .. ($#serialization < 4 ? $#serialization : 4)]));

########################################################################
# 2. An outcome's commit is flushed before the outcome can be seen.
########################################################################

$node->safe_psql('postgres', 'CREATE EXTENSION pg_walinspect');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM integration.deliveries WHERE status <> 'delivered'"),
	'nothing is left to deliver');
my $start = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
tenant_psql($node, q{SELECT integration.publish_event('sb.once', '{"once": true}')}, 'tenant_b');
my $xid;
my $flushed;
my $deadline = time + 30;
while (time < $deadline)
{
	# One statement: the outcome seen, and the flush position read right after.
	my $row = $node->safe_psql('postgres', q{
		SELECT d.xmin, pg_current_wal_flush_lsn()
		  FROM integration.deliveries d JOIN integration.webhook_events e
		    ON e.tenant_id = d.tenant_id AND e.id = d.event_id
		 WHERE e.event = 'sb.once' AND d.status = 'delivered'});
	if ($row ne '')
	{
		($xid, $flushed) = split /\|/, $row;
		last;
	}
	usleep(5_000);
}
ok(defined $xid, 'the single event was delivered');
# pg_walinspect reads the flushed WAL only: nothing flushed since the publish, no commit.
my $commits = $node->safe_psql('postgres', "SELECT '$flushed'::pg_lsn > '$start'::pg_lsn") eq 't'
  ? $node->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_get_wal_records_info('$start', '$flushed')
		 WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT' AND xid = '$xid'})
  : 0;
is($commits, 1,
	"the commit that recorded the outcome (transaction $xid) was flushed when it could be seen");

stop_receiver($recv);
$node->stop;
done_testing();
