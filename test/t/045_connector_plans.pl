# The kept plans of the connector calls (src/call_store.c) are made again once a table
# they read has more than doubled (KeptPlanGet(), src/spi_plan.c), as the delivery
# kind's and the reference checks' are.  The plan cache keeps a plan until ANALYZE
# changes the table's statistics: made while connector_calls was nearly empty and never
# analyzed (a new deployment's first calls), the lock of a call and the begin of its
# attempt walked an index over all of the tenant's calls, or pending calls, to find one
# by its key, and the record of its outcome another (at 20,000 calls: 141, 144 and 176
# pages a call, and the calls went out at a fraction of their rate).  The lock also
# names no status now, with which even a plan made again on statistics that count no
# row walked connector_calls_pending_idx (15 pages a call at 10,000 calls), and the
# begin reaches the locked row by its ctid (planned again, by its key and status: 48).
#
#   1. Five calls, made: the worker plans its statements on a one-page table, never
#      analyzed (autovacuum is off here, as it has not come round yet in a new
#      deployment).
#   2. 20,000 more in one commit, to an endpoint that answers at once, all made, the
#      table still not analyzed; pg_stat_statements (track = all sees the worker's
#      statements): the lock, the begin and the record of each call read a few pages
#      for the call (4, and about 22 and 39 with the index entries their updates add),
#      not walks that grow with the table.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 20000;
my $node = new_statements_node('connector_plans', 'autovacuum = off');
my $recv = start_receiver();
my $base = receiver_url($recv, '');

########################################################################
# 1. The first calls, on a small table.
########################################################################

my $conn = tenant_psql($node, qq{
	SELECT id FROM integration.create_connector('generic', 'api', '$base', '{"token": "plans-token-0001"}')});
tenant_psql($node, qq{
	SELECT count(integration.call_connector($conn, 'POST /first', jsonb_build_object('i', i)))
	  FROM generate_series(1, 5) i});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM integration.connector_calls WHERE status = 'succeeded'"),
	'the first 5 calls are made');
is($node->safe_psql('postgres',
		"SELECT reltuples FROM pg_class WHERE oid = 'integration.connector_calls'::regclass"),
	'-1', 'connector_calls was never analyzed');

########################################################################
# 2. 10,000 more, and what each call's statements read.
########################################################################

$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
tenant_psql($node, qq{
	SELECT count(integration.call_connector($conn, 'POST /bulk',
			jsonb_build_object('i', i, 'note', repeat('x', 200))))
	  FROM generate_series(1, $n) i});
ok($node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM integration.connector_calls"
		  . " WHERE status = 'succeeded' AND operation = 'POST /bulk'"),
	"all $n calls are made");
is($node->safe_psql('postgres',
		"SELECT reltuples FROM pg_class WHERE oid = 'integration.connector_calls'::regclass"),
	'-1', 'and connector_calls is still not analyzed: its plans were made again by its size');

# Each statement ran once a call; its pages a call, with what it read for the call's
# key (a few index and heap pages) and, for the record, the completion event it
# inserts and the trigger that queues it.
foreach my $s (
	[ 'lock', 'k.queued_by::pg_catalog.oid, k.attempts', 10 ],
	[ 'begin', 'last_attempt_at = pg_catalog.now(),', 40 ],
	[ 'record', 'last_status_code = $7, result = $8', 70 ])
{
	my ($name, $fragment, $bound) = @$s;
	my ($calls, $rows, $pages) = statement_totals($node, $fragment);
	cmp_ok($calls, '>=', $n, "the $name ran for each call ($calls runs)");
	cmp_ok($pages / $calls, '<', $bound,
		sprintf('the %s read %.1f pages a call: it found the call, it walked no index', $name,
			$pages / $calls));
}

stop_receiver($recv);
$node->stop;
done_testing();
