# list_deliveries(status => 'sending') with the delivery worker's counts of its claims
# (src/sending_counts.c): the deliveries in flight are listed, exactly, for the tenant
# whose they are and for no other; a snapshot taken while they were sending still
# lists them after their outcomes are written (the worker uncounts a claim only once
# no snapshot can see it 'sending'); the counts drop to 0 once nothing is in flight,
# so the listing reads nothing; rows inserted 'sending' by hand count too, unless
# rolled back; a new worker counts afresh; two tenants counted in one bucket get no
# bound; and without a worker there is no count, and the listing reads the tenant's
# deliveries.  An idle logical replication slot is there throughout.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# A retry far away: a delivery whose request timed out stays pending, not claimed again.
# wal_level logical: for the idle replication slot below; prepared transactions for
# the last case.
my $node = new_integration_node('sending_counts',
	"integration.retry_schedule = '1h'",
	'integration.circuit_min_requests = 0', 'wal_level = logical',
	'max_prepared_transactions = 2');
my $recv = start_receiver();

my $bound = q{SELECT coalesce(integration._sending_bound()::text, 'null')};
my $listed = q{SELECT count(*) || ':' || count(*) FILTER (WHERE status = 'sending')
				 FROM integration.list_deliveries(50, status => 'sending')};

# Runs $sql as $tenant until it returns $expected (30 s at most); true if it did.
sub poll_tenant
{
	my ($sql, $tenant, $expected) = @_;
	for (1 .. 300)
	{
		return 1 if tenant_psql($node, $sql, $tenant) eq $expected;
		usleep(100_000);
	}
	return 0;
}

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'"),
	'the delivery worker runs');
# A logical replication slot that nobody reads keeps its catalog_xmin for good: it
# guards catalog rows for decoding, never a snapshot that lists deliveries, so every
# "drops to 0" below must hold with it there.
$node->safe_psql('postgres',
	q{SELECT pg_create_logical_replication_slot('idle_slot', 'test_decoding')});
ok(poll_tenant($bound, 'acme', '0'), 'with nothing claimed, the bound of acme is 0');
is(tenant_psql($node, $listed), '0:0', 'and nothing is listed sending');

# Three requests hang until their endpoint's timeout, long enough for the checks made
# while they hang.  Another endpoint's hang until the end of the test.
my $hang = register_for($node, 'acme', 'hang', receiver_url($recv, '/hang', hang => 1), '["hang.*"]');
tenant_psql($node, "UPDATE integration.webhook_endpoints SET timeout_ms = 8000 WHERE id = $hang");
my $long = register_for($node, 'acme', 'long', receiver_url($recv, '/long', hang => 1), '["long.*"]');
tenant_psql($node, "UPDATE integration.webhook_endpoints SET timeout_ms = 600000 WHERE id = $long");
my $other = register_for($node, 'globex', 'fine', receiver_url($recv, '/fine'), '["fine.*"]');
# An endpoint of acme that nothing is published to: the hand-written deliveries below.
my $other_acme = register_for($node, 'acme', 'idle', receiver_url($recv, '/idle'), '["idle.*"]');
tenant_psql($node, q{SELECT integration.publish_event('fine.x', '{}')}, 'globex');
tenant_psql($node, q{SELECT integration.publish_event('hang.x', jsonb_build_object('i', i))
					  FROM generate_series(1, 3) i});
my @r = wait_for_requests($recv, 3, 10, sub { $_[0]{path_only} eq '/hang' });
is(scalar @r, 3, '3 requests hang at the receiver');

# A snapshot taken while the 3 are sending must keep seeing them so after their
# outcomes are written: the counts must not drop under it.
my $s = $node->background_psql('postgres', on_error_stop => 1);
$s->query_safe(q{SET integration.tenant_id = 'acme'});
$s->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ});
is($s->query_safe($listed), '3:3', 'a REPEATABLE READ transaction lists the 3 sending');

is(tenant_psql($node, $bound), '3', 'the bound of acme is 3');
is(tenant_psql($node, $listed), '3:3', 'the 3 are listed sending');
is(tenant_psql($node, "SELECT count(*) FROM integration.list_deliveries(2, status => 'sending')"),
	'2', 'a limit below them still applies');
ok(poll_tenant(q{SELECT count(*) FROM integration.list_deliveries(status => 'delivered')}, 'globex', '1'),
	"globex's delivery arrived");
ok(poll_tenant($bound, 'globex', '0'), 'the bound of globex drops to 0');
is(tenant_psql($node, $listed, 'globex'), '0:0', 'globex lists none of acme\'s as its own');

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM integration.deliveries WHERE endpoint_id = $hang AND status = 'pending'"
		  . " AND last_error IS NOT NULL"),
	'their requests timed out and the outcomes are written (pending, the retry an hour away)');
is($s->query_safe($listed), '3:3', 'the transaction, whose snapshot predates them, still lists the 3');
is($s->query_safe($bound), '3', 'its bound stays 3 while it runs');
$s->query_safe(q{COMMIT});
ok(poll_tenant($bound, 'acme', '0'), 'once it has ended, the bound drops to 0');
is(tenant_psql($node, $listed), '0:0', 'and none is listed sending');
$s->quit;

# Rows inserted 'sending' by hand are counted too (the statement trigger), and taken
# back with a transaction or subtransaction that rolls back.
my $ev = tenant_psql($node, q{SELECT max(event_id) FROM integration.deliveries WHERE status = 'pending'});
my $insert = "INSERT INTO integration.deliveries (event_id, endpoint_id, status, next_attempt_at, lease_expires_at)"
  . " VALUES ($ev, $other_acme, 'sending', NULL, now() + interval '1 hour')";
tenant_psql($node, "BEGIN; $insert; ROLLBACK;");
tenant_psql($node, "BEGIN; SAVEPOINT a; $insert; ROLLBACK TO SAVEPOINT a; COMMIT;");
is(tenant_psql($node, $bound), '0', 'an insert rolled back, or its savepoint, leaves the bound at 0');
tenant_psql($node, "BEGIN; SAVEPOINT a; $insert; RELEASE SAVEPOINT a; COMMIT;");
is(tenant_psql($node, $bound), '1', 'a committed insert of a sending row counts');
is(tenant_psql($node, $listed), '1:1', 'and the row is listed sending');
tenant_psql($node, "DELETE FROM integration.deliveries WHERE endpoint_id = $other_acme");
is(tenant_psql($node, $bound), '1', 'deleted, it stays counted: the bound errs high, never low');
is(tenant_psql($node, $listed), '0:0', 'and the listing finds none');

# A new worker counts from its first transaction, which returned the claims of the
# one before it to pending.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'");
tenant_psql($node, q{SELECT integration.publish_event('long.x', '{"i": 4}')});
@r = wait_for_requests($recv, 1, 10, sub { $_[0]{path_only} eq '/long' });
is(scalar @r, 1, 'a fourth request hangs');
is(tenant_psql($node, $bound), '2', 'the bound of acme is 2, the deleted row still counted');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE database = 'postgres'"
		  . " AND role = 'delivery' AND pid <> $pid"),
	'a new delivery worker took over');
# The new worker returned the claim to pending and claims it again: it hangs once more.
@r = wait_for_requests($recv, 2, 15, sub { $_[0]{path_only} eq '/long' });
is(scalar @r, 2, 'the fourth is sent again by the new worker');
is(tenant_psql($node, $bound), '1', 'the new worker counts its claim');
is(tenant_psql($node, $listed), '1:1', 'and it is listed sending');

# A tenant whose id falls in acme's bucket: once both have deliveries counted there,
# neither gets a bound (it would hold the other's count), and both list by reading.
my $twin = $node->safe_psql('postgres', q{
	SELECT 'twin' || i FROM generate_series(1, 1000000) i
	 WHERE hashtext('twin' || i) & 1023 = hashtext('acme') & 1023 LIMIT 1});
my $twin_ep = register_for($node, $twin, 'never', receiver_url($recv, '/never'), '["never.*"]');
my $twin_ep2 = register_for($node, $twin, 'none', receiver_url($recv, '/none'), '["none.*"]');
tenant_psql($node, q{SELECT integration.publish_event('never.x', '{}')}, $twin);
ok(poll_tenant(q{SELECT count(*) FROM integration.list_deliveries(status => 'delivered')}, $twin, '1'),
	"$twin, in acme's bucket, has a delivery delivered");
is(tenant_psql($node, $bound, $twin), 'null', "$twin gets no bound while acme's claim is counted in their bucket, not acme's count");
is(tenant_psql($node, $listed, $twin), '0:0', 'and lists none');
tenant_psql($node, "INSERT INTO integration.deliveries (event_id, endpoint_id, status, next_attempt_at, lease_expires_at)"
	  . " SELECT max(event_id), $twin_ep2, 'sending', NULL, now() + interval '1 hour' FROM integration.deliveries"
	  . " WHERE tenant_id = '$twin'", $twin);
is(tenant_psql($node, $bound) . '|' . tenant_psql($node, $bound, $twin), 'null|null',
	"with a sending delivery of each counted in it, the bucket gives neither a bound");
is(tenant_psql($node, $listed) . '|' . tenant_psql($node, $listed, $twin), '1:1|1:1',
	'and each lists its own one');
# Gone before the workers start again, so that acme alone is counted in that bucket then.
tenant_psql($node, "DELETE FROM integration.deliveries WHERE endpoint_id = $twin_ep2", $twin);

# Without a worker nothing counts: the bound is NULL, and the claim the stopped worker
# left 'sending' is found by reading the tenant's deliveries.
$node->append_conf('postgresql.conf', 'integration.worker_enabled = off');
$node->restart;
is(tenant_psql($node, $bound), 'null', 'with the workers off, no bound');
is(tenant_psql($node, $listed), '1:1', 'and the claim left sending is listed');

# A row inserted 'sending' by a transaction that is still open when a new worker
# starts, and that commits after that worker's first transaction: the worker before
# counted it (or none did), and the first transaction could not return it to
# 'pending' (not committed yet).  It must be listed all the same.
$node->append_conf('postgresql.conf', 'integration.worker_enabled = on');
$node->restart;
ok(poll_tenant(q{SELECT integration._sending_bound() IS NOT NULL}, 'acme', 't'),
	'with the workers on again, there is a bound');
$pid = $node->safe_psql('postgres',
	"SELECT pid FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'");
my $open = $node->background_psql('postgres', on_error_stop => 1);
$open->query_safe(q{SET integration.tenant_id = 'acme'});
$open->query_safe(q{BEGIN});
$open->query_safe($insert);
my $log_at = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->wait_for_log(qr/integration worker started for database "postgres"/, $log_at),
	'a new delivery worker started while the insert was open');
is(tenant_psql($node, $bound), 'null',
	'while a transaction that was writing deliveries at its start is open, it has no bound');
$open->query_safe(q{COMMIT});
$open->quit;
is( tenant_psql($node,
		"SELECT count(*) FROM integration.list_deliveries(50, status => 'sending')"
		  . " WHERE endpoint_id = $other_acme"),
	'1',
	'the row inserted sending before the new worker started is listed');
ok(poll_tenant(q{SELECT integration._sending_bound() IS NOT NULL}, 'acme', 't'),
	'once that transaction has ended, the worker counts again');
is( tenant_psql($node,
		"SELECT count(*) FROM integration.list_deliveries(50, status => 'sending')"
		  . " WHERE endpoint_id = $other_acme"),
	'1',
	'and the row is still listed: the worker counted it');
is( tenant_psql($node,
		q{SELECT (SELECT count(*) FROM integration.list_deliveries(50, status => 'sending'))
			   = (SELECT count(*) FROM integration.deliveries WHERE status = 'sending')}),
	't',
	'the listing finds every row its snapshot sees sending');

# The same with the insert prepared (two-phase) when the worker starts: its locks
# outlive its session, and it commits later.
tenant_psql($node, "DELETE FROM integration.deliveries WHERE endpoint_id = $other_acme");
tenant_psql($node, "BEGIN; $insert; PREPARE TRANSACTION 'sending_insert';");
$pid = $node->safe_psql('postgres',
	"SELECT pid FROM integration.worker_status() WHERE database = 'postgres' AND role = 'delivery'");
$log_at = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->wait_for_log(qr/integration worker started for database "postgres"/, $log_at),
	'a new delivery worker started while the insert was prepared');
is(tenant_psql($node, $bound), 'null', 'while it is prepared, no bound');
$node->safe_psql('postgres', "COMMIT PREPARED 'sending_insert'");
is( tenant_psql($node,
		"SELECT count(*) FROM integration.list_deliveries(50, status => 'sending')"
		  . " WHERE endpoint_id = $other_acme"),
	'1',
	'committed, the prepared row is listed');
ok(poll_tenant(q{SELECT integration._sending_bound() IS NOT NULL}, 'acme', 't'),
	'and the worker counts again');
is( tenant_psql($node,
		"SELECT count(*) FROM integration.list_deliveries(50, status => 'sending')"
		  . " WHERE endpoint_id = $other_acme"),
	'1',
	'with the prepared row counted');

done_testing();
