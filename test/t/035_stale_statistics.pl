# Statistics taken while a large publish was still inserting: the worker notices and
# analyzes the table, without waiting for a lock to do so (src/table_statistics.c).
#
# An ANALYZE that runs while a transaction inserts thousands of events counts none of
# them but records the pages they fill, so the planner takes webhook_events for empty
# until the next ANALYZE, and the worker's lookups of an event by its key could then
# scan all of the tenant's events each (bench/README.md).  autovacuum is off here: every
# ANALYZE is either this test's or the worker's.
#
#   1. The state itself: 5,000 events published in one transaction; an ANALYZE while it
#      is open leaves webhook_events with 0 rows over more than 64 pages.
#   2. While another session holds a lock that ANALYZE would wait for, the worker does
#      not wait: deliveries go on, and the statistics stay as they are.
#   3. Once the lock is gone the worker analyzes webhook_events (and says so in the
#      log), every event is delivered once, and the worker analyzed it once only.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_integration_node('stale_statistics', 'autovacuum = off');
my $recv = start_receiver();

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub poll_ok
{
	my ($sql, $name) = @_;
	ok($node->poll_query_until('postgres', $sql), $name);
}

my $url = receiver_url($recv, '/stale');
my $endpoint = tenant_psql($node, qq{
	SELECT id FROM integration.register_webhook(name => 'stale', url => '$url',
		events => '["stale.*"]')});
my $n = 5000;

sub events_stats
{
	return q1(q{SELECT reltuples::bigint || ' rows, ' || (relpages >= 64)::text
				  FROM pg_catalog.pg_class WHERE oid = 'integration.webhook_events'::regclass});
}

sub analyzes
{
	return q1(q{SELECT analyze_count || '/' || autoanalyze_count FROM pg_catalog.pg_stat_user_tables
				 WHERE relid = 'integration.webhook_events'::regclass});
}

########################################################################
# 1. Statistics taken while the events were being inserted.
########################################################################

my $publisher = $node->background_psql('postgres');
$publisher->query_safe(q{BEGIN});
$publisher->query_safe(q{SET LOCAL integration.tenant_id = 'acme'});
$publisher->query_safe(qq{
	SELECT count(integration.publish_event('stale.created',
			jsonb_build_object('i', i, 'note', repeat('x', 300))))
	  FROM generate_series(1, $n) i});
# A lock ANALYZE waits for (as VACUUM or CREATE INDEX CONCURRENTLY would hold it),
# taken before the test's own ANALYZE, in the same session: a worker that analyzed the
# table in between would count none of the rows either, and then leave the table
# alone until it doubles.  ANALYZE writes reltuples and relpages in place, so other
# sessions see them before this transaction ends.
my $locker = $node->background_psql('postgres');
$locker->query_safe(q{BEGIN});
$locker->query_safe(q{LOCK TABLE integration.webhook_events IN SHARE UPDATE EXCLUSIVE MODE});
$locker->query_safe(q{ANALYZE integration.webhook_events});
is(events_stats(), '0 rows, true', 'an ANALYZE during the publish: webhook_events has 0 rows over 64 pages or more');
$publisher->query_safe(q{COMMIT});
$publisher->quit;

########################################################################
# 2. The worker does not wait for the lock.
########################################################################

poll_ok(qq{SELECT count(*) >= 100 FROM integration.deliveries
			WHERE endpoint_id = $endpoint AND status = 'delivered'},
	'deliveries go on while the lock is held');
is(events_stats(), '0 rows, true', 'the worker left the statistics while it could not take the lock');
is(analyzes(), '1/0', 'only the test analyzed webhook_events so far');

########################################################################
# 3. The lock gone, the worker analyzes the table, once.
########################################################################

$locker->query_safe(q{COMMIT});
$locker->quit;
poll_ok(qq{SELECT reltuples >= $n FROM pg_catalog.pg_class
			WHERE oid = 'integration.webhook_events'::regclass},
	'the worker analyzed webhook_events: it counts its rows');
poll_ok(qq{SELECT count(*) = $n FROM integration.deliveries
			WHERE endpoint_id = $endpoint AND status = 'delivered'},
	'every event is delivered');
is(q1(qq{SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $endpoint}),
	$n, 'one delivery per event');
is(scalar(wait_for_requests($recv, $n, 30)), $n, 'the receiver got each event once');
like(slurp_file($node->logfile),
	qr/analyzed table "webhook_events": its statistics counted 0 rows in its \d+ pages/,
	'the worker says what it analyzed and why');
is(analyzes(), '2/0', 'the worker analyzed webhook_events once');

done_testing();
