# Statistics taken while a large transaction was still inserting, for the kinds of work
# other than deliveries (t/035 has those): the handler worker checks inbound_events,
# the worker's calls connector_calls, and each analyzes its table itself, once
# (src/table_statistics.c, WatchedTable).
#
# An ANALYZE that runs while a transaction inserts thousands of rows counts none of
# them but records the pages they fill, so the planner takes the table for empty until
# the next ANALYZE.  autovacuum is off here: every ANALYZE is either this test's or a
# worker's.  The test's own ANALYZE runs in a transaction that holds the table's SHARE
# UPDATE EXCLUSIVE lock from before it until after the insert has committed: no
# worker's ANALYZE can come in between, which would count none of the rows either.
#
#   1. inbound_events: 1,000 inbound events inserted in one transaction, analyzed while
#      it is open (0 rows over 64 pages or more); the handler worker runs handlers while
#      the lock is held, then analyzes the table, once, and every event is handled once.
#      No handler runs while the worker holds the lock of its ANALYZE (a transaction of
#      its own), which a DBA's VACUUM or ALTER TABLE would wait for.
#   2. connector_calls: the same with 1,000 calls queued by call_connector() in one
#      transaction; the worker makes calls while the lock is held, then analyzes the
#      table, once, and every call is sent once.
# inbound_events goes first: the calls' completion events are inbound events too, and
# an ANALYZE would count them.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The calls go to one connector, at the default cap of 16 in flight.
my $node = new_integration_node('stale_statistics_kinds', 'autovacuum = off');
my $recv = start_receiver();
my $n = 1000;

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub poll_ok
{
	my ($sql, $name) = @_;
	ok($node->poll_query_until('postgres', $sql), $name);
}

# reltuples, and whether relpages is 64 or more, of integration.$table.
sub stats
{
	my ($table) = @_;
	return q1(qq{SELECT reltuples::bigint || ' rows, ' || (relpages >= 64)::text
				   FROM pg_catalog.pg_class WHERE oid = 'integration.$table'::regclass});
}

# The table's ANALYZEs: by hand (the test's, a worker's) / by autovacuum.
sub analyzes
{
	my ($table) = @_;
	return q1(qq{SELECT analyze_count || '/' || autoanalyze_count FROM pg_catalog.pg_stat_user_tables
				  WHERE relid = 'integration.$table'::regclass});
}

# Runs $insert (SQL, tenant acme) in a transaction left open, and ANALYZE of
# integration.$table in another one that holds the table's lock; commits the insert.
# While the lock is held the work goes on ($progress, SQL, becomes true) and the
# statistics stay the test's; once it is gone, $who analyzes the table.  Returns the
# value of $left (SQL) just before the lock goes.
sub analyzed_after_insert
{
	my ($table, $insert, $progress, $work, $who, $left) = @_;
	my $writer = $node->background_psql('postgres');
	$writer->query_safe(q{BEGIN});
	$writer->query_safe(q{SET LOCAL integration.tenant_id = 'acme'});
	$writer->query_safe($insert);
	my $locker = $node->background_psql('postgres');
	$locker->query_safe(q{BEGIN});
	$locker->query_safe(qq{LOCK TABLE integration.$table IN SHARE UPDATE EXCLUSIVE MODE});
	$locker->query_safe(qq{ANALYZE integration.$table});
	is(stats($table), '0 rows, true', "an ANALYZE during the insert: $table has 0 rows over 64 pages or more");
	$writer->query_safe(q{COMMIT});
	$writer->quit;

	poll_ok($progress, "$work while the lock is held");
	is(stats($table), '0 rows, true', "$table keeps the test's statistics while the lock is held");
	is(analyzes($table), '1/0', "only the test analyzed $table so far");
	my $remaining = defined $left ? q1($left) : undef;
	$locker->query_safe(q{COMMIT});
	$locker->quit;
	poll_ok(qq{SELECT reltuples >= $n FROM pg_catalog.pg_class WHERE oid = 'integration.$table'::regclass},
		"$who analyzed $table: it counts its rows");
	return $remaining;
}

########################################################################
# 1. inbound_events, the handler worker's.
########################################################################

create_app_role($node, 'app');
q1(q{
	CREATE TABLE public.handled (event_id bigint NOT NULL, i integer NOT NULL, analyzing bigint NOT NULL);
	GRANT ALL ON public.handled TO app;
});
tenant_psql($node, q{
	SET ROLE app;
	-- Whether the handler's session holds the lock an ANALYZE takes; slow enough that
	-- events are left when the test's lock goes.
	CREATE FUNCTION public.on_bulk(e integration.inbound_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO public.handled VALUES (e.id, (e.payload ->> 'i')::integer,
				(SELECT count(*) FROM pg_catalog.pg_locks l
				  WHERE l.pid = pg_catalog.pg_backend_pid() AND l.mode = 'ShareUpdateExclusiveLock'
					AND l.relation = 'integration.inbound_events'::regclass));
			  SELECT pg_catalog.pg_sleep(0.002) $$;
	SELECT FROM integration.on_inbound('bulk', '["generic.bulk"]', 'public.on_bulk(integration.inbound_events)')});
my $conn = tenant_psql($node, q{
	SET ROLE app;
	SELECT id FROM integration.create_connector('generic', 'shop', 'https://api.example.invalid',
		'{"token": "t-0123456789"}', '{}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')});

my $left = analyzed_after_insert('inbound_events', qq{
		INSERT INTO integration.inbound_events (connector_id, external_id, topic, event, payload)
		SELECT $conn, 'bulk-' || i, 'bulk', 'generic.bulk',
			   jsonb_build_object('i', i, 'note', repeat('x', 1000))
		  FROM generate_series(1, $n) i},
	q{SELECT count(*) >= 100 FROM public.handled}, 'handlers run', 'the handler worker',
	qq{SELECT $n - count(*) FROM public.handled});
cmp_ok($left, '>=', 100, 'events were left to handle when the lock went');
poll_ok(qq{SELECT count(*) = $n FROM integration.inbound_events WHERE event = 'generic.bulk' AND status = 'processed'},
	'every inbound event is processed');
is(q1(q{SELECT count(*) || ' ' || count(DISTINCT event_id) || ' ' || count(DISTINCT i) FROM public.handled}),
	"$n $n $n", 'each handled once');
is(analyzes('inbound_events'), '2/0', 'the handler worker analyzed inbound_events once');
is(q1(q{SELECT count(*) FILTER (WHERE analyzing > 0) FROM public.handled}), '0',
	'no handler ran while the worker held the lock of its ANALYZE');

########################################################################
# 2. connector_calls, the worker's calls.
########################################################################

my $base = receiver_url($recv, '');
my $calls_conn = tenant_psql($node, qq{
	SELECT id FROM integration.create_connector('generic', 'api', '$base', '{"token": "calls-token-0001"}')});
analyzed_after_insert('connector_calls', qq{
		SELECT count(integration.call_connector($calls_conn, 'POST /bulk',
				jsonb_build_object('i', i, 'note', repeat('x', 1000))))
		  FROM generate_series(1, $n) i},
	q{SELECT count(*) >= 100 FROM integration.connector_calls WHERE status = 'succeeded'},
	'calls are made', 'the worker');
poll_ok(qq{SELECT count(*) = $n FROM integration.connector_calls WHERE status = 'succeeded'},
	'every call succeeded');
is(q1(q{SELECT count(*) FILTER (WHERE attempts = 1) FROM integration.connector_calls}), $n,
	'each at its first attempt');
my @reqs = wait_for_requests($recv, $n, 30, sub { $_[0]{path_only} eq '/bulk' });
my %seen;
$seen{ ($_->{body} =~ /"i": (\d+)/)[0] // 'none' }++ for @reqs;
is(scalar(@reqs) . ' ' . scalar(keys %seen), "$n $n", 'the receiver got each call once');
is(analyzes('connector_calls'), '2/0', 'the worker analyzed connector_calls once');

########################################################################
# What the workers said, once per table.
########################################################################

my $log = slurp_file($node->logfile);
my @inbound = $log =~ /(integration handler worker analyzed table "inbound_events": its statistics counted 0 rows in its \d+ pages)/g;
my @calls = $log =~ /(integration worker analyzed table "connector_calls": its statistics counted 0 rows in its \d+ pages)/g;
is(scalar @inbound, 1, 'the handler worker says once what it analyzed and why');
is(scalar @calls, 1, 'the worker says once what it analyzed and why');
is(scalar(() = $log =~ /analyzed table/g), 2, 'and no other table was analyzed');

done_testing();
