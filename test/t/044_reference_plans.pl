# The reference checks' kept plans (src/references.c) are made again once a table they
# read has more than doubled.  The plan cache keeps a plan until ANALYZE changes the
# table's statistics; the worker's first fan-out, made while webhook_events held a few
# events, planned the event check as a walk of the table for each probe, and once
# 20,000 events had been published at once, every batch's check read thousands of pages
# (bench/run protection: the healthy tenant's events waited behind those cycles, p99
# 30 ms against 3.5 ms).
#
#   1. Five events, delivered, then ANALYZE (as autovacuum would), and five more: the
#      worker's event check is planned on a one-page table, as such.
#   2. 20,000 more in one commit, to an endpoint that answers at once, all fanned out;
#      pg_stat_statements (track = all sees the trigger's statements in the worker):
#      the event check read few pages a call, as index probes do (about 4 a delivery),
#      not the table (thousands a call).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_statements_node('reference_plans', 'autovacuum = off');
my $recv = start_receiver();

########################################################################
# 1. A first fan-out on a small table.
########################################################################

my $url = receiver_url($recv, '/fast');
tenant_psql($node, "SELECT integration.register_webhook('fast', '$url', '[\"r.*\"]')", 'tenant_a');
publish_events($node, 'tenant_a', 'r.x', 5);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM integration.deliveries WHERE status = 'delivered'"),
	'the first 5 are delivered');
# Statistics of the small table, as autovacuum takes them, and a fan-out planned on them.
$node->safe_psql('postgres', 'ANALYZE integration.webhook_events');
publish_events($node, 'tenant_a', 'r.x', 5);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 10 FROM integration.deliveries WHERE status = 'delivered'"),
	'5 more are delivered');

########################################################################
# 2. 20,000 more, and what their event checks read.
########################################################################

$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
publish_events($node, 'tenant_a', 'r.x', 20000);
ok($node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT FROM integration.webhook_event_queue)"
		  . " AND (SELECT count(*) FROM integration.deliveries) = 20010"),
	'all 20,000 are fanned out');

my ($calls, $rows, $pages) = statement_totals($node,
	'SELECT a.tenant_id, a.event_id FROM (SELECT DISTINCT tenant_id, event_id FROM added)');
cmp_ok($calls, '>=', 20000 / 256, "the event check ran for each batch ($calls calls)");
is($rows, 0, 'and found every event');
my $per_delivery = $pages / 20000;
cmp_ok($per_delivery, '<', 10,
	sprintf('it read %.1f pages a delivery (%d a call): index probes, not the table', $per_delivery,
		$pages / $calls));

stop_receiver($recv);
$node->stop;
done_testing();
