# The workers' life: restarted after pg_terminate_backend, a fast shutdown that does
# not wait for hanging requests (which are sent again after the restart), exit on DROP
# EXTENSION, start on CREATE EXTENSION, and DROP DATABASE of a database whose workers
# are running.  Each database has two, the delivery worker and the handler worker,
# which start and stop together; each is restarted on its own.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# 20 requests hang at one endpoint at once: allow that many per endpoint.  Circuit
# breakers off: the 20 timeouts of section 2 would open that endpoint's circuit, and
# its cooldown (30 s) would hold the redelivery to the fixed URL back for nothing that
# this test checks (018_endpoint_protection.pl tests circuits).
my $node = new_integration_node('lifecycle',
	"integration.retry_schedule = '100ms, 100ms'",
	'integration.max_concurrency_per_endpoint = 32',
	'integration.circuit_min_requests = 0');
my $recv = start_receiver();

sub worker_pid
{
	my ($db, $type) = @_;
	$type //= 'integration worker';
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity"
		  . " WHERE backend_type = '$type' AND datname = '$db'");
}

# The roles of the workers of $db, as worker_status() lists them.
sub roles
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(role, ',' ORDER BY role) FROM integration.worker_status() WHERE database = '$db'");
}

sub register
{
	my ($name, $url, $events, $extra) = @_;
	return tenant_psql($node, qq{
		SELECT id FROM integration.register_webhook(name => '$name', url => '$url',
			events => '$events')});
}

########################################################################
# 1. pg_terminate_backend: a new worker takes over.
########################################################################

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM integration.worker_status() WHERE database = 'postgres'"),
	'both workers of postgres run');
is(roles('postgres'), 'delivery,handler', 'a delivery worker and a handler worker');
my $pid1 = $node->safe_psql('postgres',
	"SELECT pid FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'");
my $hpid1 = $node->safe_psql('postgres',
	"SELECT pid FROM integration.worker_status() WHERE database = 'postgres' AND role = 'handler'");
ok($pid1 > 0, "delivery worker runs (pid $pid1)");
is(worker_pid('postgres'), $pid1, 'pg_stat_activity agrees');
is(worker_pid('postgres', 'integration handler worker'), $hpid1,
	"and lists the handler worker (pid $hpid1) as 'integration handler worker'");
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid1)"), 't',
	'delivery worker terminated');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $pid1) FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'"),
	'a new delivery worker appears');
my $pid2 = worker_pid('postgres');
isnt($pid2, $pid1, "new worker pid $pid2");
is(worker_pid('postgres', 'integration handler worker'), $hpid1, 'the handler worker ran on');
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($hpid1)"), 't',
	'handler worker terminated');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $hpid1) FROM integration.worker_status() WHERE database = 'postgres' AND role = 'handler'"),
	'a new handler worker appears');
is(worker_pid('postgres'), $pid2, 'the delivery worker ran on');

my $after = register('after', receiver_url($recv, '/after-terminate'), '["after.*"]');
tenant_psql($node, q{SELECT integration.publish_event('after.x', '{}')});
my @r = wait_for_requests($recv, 1, 10, sub { $_[0]{path_only} eq '/after-terminate' });
is(scalar @r, 1, 'a delivery published afterwards arrives');
ok($node->poll_query_until('postgres',
		"SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $after"),
	'and is recorded as delivered');

########################################################################
# 2. Fast shutdown with 20 requests hanging at the receiver.
########################################################################

# The endpoint's timeout bounds the second round of hanging after the restart.
my $hang = register('hang', receiver_url($recv, '/hang', hang => 1), '["hang.*"]');
tenant_psql($node, "UPDATE integration.webhook_endpoints SET timeout_ms = 3000 WHERE id = $hang");
tenant_psql($node, q{SELECT integration.publish_event('hang.x', jsonb_build_object('i', i))
					  FROM generate_series(1, 20) i});
@r = wait_for_requests($recv, 20, 10, sub { $_[0]{path_only} eq '/hang' });
is(scalar @r, 20, '20 requests hang at the receiver');
my %hung = map { $_->{headers}{'webhook-id'} => 1 } @r;
is(scalar(keys %hung), 20, '20 distinct webhook-ids');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $hang AND status = 'sending'"),
	'20', 'all 20 are sending');

my $t0 = time();
$node->stop('fast');
my $stop_s = time() - $t0;
note sprintf('fast shutdown took %.2f s', $stop_s);
ok($stop_s < 10, sprintf('fast shutdown completes within 10 s (%.2f s)', $stop_s));

$node->start;
# The new worker returns the stale claims to pending and sends them again: they hang
# once more (until the 3 s timeout), so point the endpoint somewhere that answers.
@r = wait_for_requests($recv, 40, 10, sub { $_[0]{path_only} eq '/hang' });
is(scalar @r, 40, 'after the restart the 20 hanging deliveries are sent again');
is_deeply([ sort map { $_->{headers}{'webhook-id'} } @r[20 .. 39] ], [ sort keys %hung ],
	'with the same webhook-ids');
tenant_psql($node, qq{SELECT integration.update_webhook(id => $hang,
						url => '@{[receiver_url($recv, '/hang-fixed')]}')});
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $hang AND status = 'delivered'",
		'20'),
	'all 20 are delivered in the end');
@r = wait_for_requests($recv, 20, 5, sub { $_[0]{path_only} eq '/hang-fixed' });
is_deeply([ sort map { $_->{headers}{'webhook-id'} } @r ], [ sort keys %hung ],
	'each arrived once at the fixed URL');
is($node->safe_psql('postgres', qq{
		SELECT string_agg(DISTINCT coalesce(a.error_class, 'ok'), ',' ORDER BY coalesce(a.error_class, 'ok'))
		  FROM integration.webhook_delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		 WHERE d.endpoint_id = $hang}),
	'ok,timeout', 'recorded attempts: the post-restart timeout, then success');

########################################################################
# 3. DROP EXTENSION stops the worker; CREATE EXTENSION starts it.
########################################################################

ok(worker_pid('postgres') ne '', 'worker runs before DROP EXTENSION');
$t0 = time();
$node->safe_psql('postgres', 'DROP EXTENSION integration');
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('integration worker', 'integration handler worker') AND datname = 'postgres'",
		'0'),
	'DROP EXTENSION makes both workers exit');
note sprintf('workers gone %.2f s after DROP EXTENSION', time() - $t0);
ok(time() - $t0 < 5, 'promptly');

$node->safe_psql('postgres', 'CREATE EXTENSION integration');
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM integration.worker_status() WHERE database = 'postgres'", '2'),
	'CREATE EXTENSION starts both workers again');
is(worker_pid('postgres') =~ /^\d+$/ ? 1 : 0, 1, 'one integration worker in pg_stat_activity');
is(worker_pid('postgres', 'integration handler worker') =~ /^\d+$/ ? 1 : 0, 1,
	'and one integration handler worker');

########################################################################
# 3b. DROP and CREATE EXTENSION in one transaction while requests are in flight.
#     The new tables reuse the old delivery ids and ctids: the old requests'
#     results must not land on the new deliveries.  The worker restarts instead.
########################################################################

register('before', receiver_url($recv, '/before-recreate', delay_ms => 2000), '["old.*"]');
tenant_psql($node,
	q{SELECT count(integration.publish_event('old.x', jsonb_build_object('i', i))) FROM generate_series(1, 5) i});
ok($node->poll_query_until('postgres',
		"SELECT in_flight = 5 FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'"),
	'five requests in flight before the extension is created again');
my $old_pid = worker_pid('postgres');
$t0 = time();
$node->safe_psql('postgres', 'BEGIN; DROP EXTENSION integration; CREATE EXTENSION integration; COMMIT;');
# The new deliveries hang at their endpoint, so they are still 'sending' when the old
# requests (2 s) answer 200.
my $after = register('after', receiver_url($recv, '/after-recreate', hang => 1), '["new.*"]');
tenant_psql($node, "UPDATE integration.webhook_endpoints SET timeout_ms = 20000 WHERE id = $after");
tenant_psql($node,
	q{SELECT count(integration.publish_event('new.x', jsonb_build_object('i', i))) FROM generate_series(1, 5) i});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM integration.deliveries WHERE status = 'sending'"),
	'the new deliveries are being sent');
usleep(1_000_000) while time() - $t0 < 3;
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'sending') || ' sending, ' || count(*) FILTER (WHERE status = 'delivered') || ' delivered' FROM integration.deliveries"),
	'5 sending, 0 delivered', 'after the old requests answered, no new delivery reads delivered');
isnt(worker_pid('postgres'), $old_pid, 'a new worker serves the new extension');
tenant_psql($node, "SELECT integration.update_webhook(id => $after, is_active => false)");

########################################################################
# 4. DROP DATABASE of a database whose worker runs.
########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION integration');
ok($node->poll_query_until('postgres',
		"SELECT count(*) FROM integration.worker_status() WHERE database = 'app'", '2'),
	'database app has its workers');
# Someone who may not drop it must not stop its workers by trying.
$node->safe_psql('postgres', 'CREATE ROLE intruder LOGIN');
my $app_pid = $node->safe_psql('postgres',
	"SELECT string_agg(pid::text, ',' ORDER BY role) FROM integration.worker_status() WHERE database = 'app'");
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE app',
	extra_params => [ '-U', 'intruder' ]);
isnt($ret, 0, 'a non-owner cannot drop the database');
like($stderr, qr/must be owner/, 'and is told why');
usleep(300_000);
is($node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY role) FROM integration.worker_status() WHERE database = 'app'"),
	$app_pid, 'the workers of app are untouched');
($ret, $stdout, $stderr) = $node->psql('postgres', 'BEGIN; DROP DATABASE app; COMMIT');
isnt($ret, 0, 'DROP DATABASE inside a transaction block fails');
is($node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY role) FROM integration.worker_status() WHERE database = 'app'"),
	$app_pid, 'and leaves the workers alone');

($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE app');
is($ret, 0, 'DROP DATABASE succeeds') or diag($stderr);
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'app'"),
	'0', 'the database is gone');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM integration.worker_status() WHERE database IS DISTINCT FROM 'postgres'"),
	'0', 'and so are its workers');
isnt(worker_pid('postgres'), '', "postgres' worker is unaffected");

########################################################################
# 5. The teardown sequence test scripts use: DROP EXTENSION and DROP DATABASE at once,
#    and DROP DATABASE right after the worker was terminated.  The worker, which
#    exited and waits to be started again, must stop for good, not fail to connect to
#    the dropped database every second forever.
########################################################################

# When a worker ends for good (exit code 0, or a restart that found its database
# dropped), the postmaster unregisters it and never starts it again; it says so at
# DEBUG1.  Waiting for that for both workers of a database replaces waiting several
# restart delays (1 s each) to see that nothing happens.  A new session shows the
# level once the postmaster has reloaded, since backends inherit it.
$node->safe_psql('postgres', 'ALTER SYSTEM SET log_min_messages = debug1; SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', 'SHOW log_min_messages', 'debug1'),
	'the postmaster logs at DEBUG1 for the teardowns');

sub worker_names
{
	my ($oid) = @_;
	return map { "$_ for database $oid" } ('integration worker', 'integration handler worker');
}

# Waits until the log from $from on says that the postmaster unregistered both
# workers of database $oid; returns the log from $from on.
sub wait_unregistered
{
	my ($oid, $from) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $log;
	while (1)
	{
		$log = slurp_file($node->logfile, $from);
		return $log
		  if !grep { index($log, qq{unregistering background worker "$_"}) < 0 } worker_names($oid);
		return $log if time() >= $deadline;
		usleep(50_000);
	}
}

sub teardown_case
{
	my ($db, $first) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION integration');
	ok($node->poll_query_until('postgres',
			"SELECT count(*) FROM integration.worker_status() WHERE database = '$db'", '2'),
		"database $db has its workers");
	my $oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
	my $log_from = -s $node->logfile;
	if ($first eq 'drop extension')
	{
		$node->safe_psql($db, 'DROP EXTENSION integration');
	}
	else
	{
		$node->safe_psql('postgres',
			"SELECT pg_terminate_backend(pid) FROM integration.worker_status() WHERE database = '$db'");
	}
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "DROP DATABASE $db");
	is($ret, 0, "$first, then DROP DATABASE $db at once: it is dropped") or diag($stderr);
	# Until both are unregistered, whatever restarts either would make has been made.
	my $log = wait_unregistered($oid, $log_from);
	my @fatal = ($log =~ /FATAL:  database \d+ does not exist/g);
	is(scalar @fatal, 0, "$first, DROP DATABASE: no worker tries to connect to it");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity"
			  . " WHERE backend_type IN ('integration worker', 'integration handler worker')"
			  . " AND datname IS DISTINCT FROM 'postgres'"),
		'0', "$first, DROP DATABASE: no worker of it runs");
	# Nothing of either worker after it was unregistered (the log read again now) but
	# the postmaster's note of that process's exit.
	my @after;
	for my $name (worker_names($oid))
	{
		my $at = index($log, qq{unregistering background worker "$name"});
		push @after, "$name: never unregistered" if $at < 0;
		next if $at < 0;
		my ($rest) = substr(slurp_file($node->logfile, $log_from), $at) =~ /\n(.*)/s;
		push @after, grep { /\Q$name\E(?!\d)/ && !/"\Q$name\E" \(PID \d+\) exited with exit code 0$/ }
		  split /\n/, $rest // '';
	}
	is(join("\n", @after), '',
		"$first, DROP DATABASE: and none is started again: the postmaster unregistered both");
}

teardown_case('teardown1', 'drop extension');
teardown_case('teardown2', 'terminate');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET log_min_messages; SELECT pg_reload_conf()');
isnt(worker_pid('postgres'), '', "postgres' worker is unaffected by the teardowns");

stop_receiver($recv);
$node->stop;
done_testing();
