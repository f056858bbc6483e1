# integration.adapter_timeout: a connector kind's adapters, run by the delivery worker
# for every tenant, cannot stall it.  Tenant A's kind is written in SQL; its
# build_request or interpret_response sleeps 30 s for some operations, far beyond the
# 300 ms limit; tenant B publishes webhook events to a healthy endpoint meanwhile.
#
#   1. The setting: its default, unit, context and bounds.
#   2. Each of A's slow adapters is cut short: every attempt fails with
#      "adapter slowkind.<adapter> exceeded integration.adapter_timeout (300 ms)", is
#      retried on the schedule, and the call ends failed after its three attempts; what
#      the adapter wrote is rolled back; an adapter that catches the cancel and returns
#      late fails the same way.  A's quick call succeeds.
#   3. Meanwhile each of B's events is delivered within 3 s of its commit (each of A's
#      adapters holds the worker 300 ms at most, where it held it 30 s).
#   4. A real cancel of the worker (pg_cancel_backend()) is still no call's fault:
#      with the limit off (0), a call whose adapter sleeps is cancelled, its
#      transaction rolled back and tried again, and its attempt not counted.
#   5. An adapter that waits on a row lock held by a prepared transaction: the
#      worker's lock_timeout (1 s) ends each attempt, which is that call's failure, on
#      its schedule; another call queued with it succeeds meanwhile, and no worker
#      transaction fails.
#   The delivery worker is the same process throughout, and nothing crashed (the END
#   block of IntegrationTest checks the log).

# test/run: alone (its checks bound latencies beside adapters that sleep).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('adapter_timeout',
	"integration.adapter_timeout = '300ms'",
	"integration.retry_schedule = '1s, 1s'",
	'max_prepared_transactions = 2');
my $recv = start_receiver();

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub a_sql { return tenant_psql($node, $_[0], 'tenant_a'); }
sub b_sql { return tenant_psql($node, $_[0], 'tenant_b'); }

sub worker_pid
{
	return q1("SELECT pid FROM integration.worker_status() WHERE role = 'delivery' AND database = 'postgres'");
}

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery' AND pid IS NOT NULL"),
	'the delivery worker runs');
my $pid = worker_pid();

########################################################################
# 1. The setting.
########################################################################

is(q1(q{SELECT concat_ws('|', setting, unit, context, min_val, max_val, boot_val)
		  FROM pg_settings WHERE name = 'integration.adapter_timeout'}),
	'300|ms|sighup|0|3600000|5000', 'integration.adapter_timeout: ms, reload, 0 to 1 h, 5 s by default');
my ($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET integration.adapter_timeout = -1");
like($err, qr/-1 ms is outside the valid range for parameter "integration\.adapter_timeout" \(0 \.\. 3600000\)/,
	'a negative limit is refused');
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET integration.adapter_timeout = '2h'");
like($err, qr/outside the valid range for parameter "integration\.adapter_timeout"/, 'so is more than an hour');

########################################################################
# 2. Tenant A's kind, written in SQL, whose adapters sleep for some operations.
########################################################################

q1(q{
	CREATE TABLE public.interpreted (op text);
	CREATE TABLE public.lockme (id integer);
	INSERT INTO public.lockme VALUES (1);
	-- The operations whose build_request sleeps 30 s (part 4 empties it).
	CREATE TABLE public.sleepy (op text);
	INSERT INTO public.sleepy VALUES ('sleep_build');

	-- call_connector() runs build_request in the caller's session too, to check the
	-- call: the adapters are slow in the delivery worker only.
	CREATE FUNCTION public.in_worker() RETURNS boolean LANGUAGE sql AS $$
		SELECT backend_type = 'integration worker' FROM pg_stat_activity WHERE pid = pg_backend_pid()
	$$;

	CREATE FUNCTION public.slow_build(c integration.connector_context, op text, payload jsonb, key text)
		RETURNS integration.connector_request LANGUAGE plpgsql AS $$
	BEGIN
		IF NOT public.in_worker() THEN
			NULL;
		ELSIF EXISTS (SELECT FROM public.sleepy s WHERE s.op = slow_build.op) THEN
			PERFORM pg_sleep(30);
		ELSIF op = 'locked' THEN
			PERFORM FROM public.lockme FOR UPDATE;
		END IF;
		RETURN ROW('POST', '/a/' || op, NULL, NULL, payload::text)::integration.connector_request;
	END $$;

	CREATE FUNCTION public.slow_interpret(c integration.connector_context, op text, status integer,
										  headers jsonb, body text)
		RETURNS integration.connector_outcome LANGUAGE plpgsql AS $$
	BEGIN
		-- A write that must not stay when the adapter is cut short.
		INSERT INTO public.interpreted VALUES (op);
		IF op = 'sleep_interpret' THEN
			PERFORM pg_sleep(30);
		ELSIF op = 'swallow' THEN
			BEGIN
				PERFORM pg_sleep(30);
			EXCEPTION WHEN query_canceled THEN
				PERFORM pg_sleep(0.5);		-- caught, and late all the same
			END;
		END IF;
		RETURN ROW('succeeded', NULL, jsonb_build_object('status', status), NULL)::integration.connector_outcome;
	END $$;

	SELECT integration.register_connector_kind('slowkind', 'none', 'none',
		build_request => 'public.slow_build(integration.connector_context, text, jsonb, text)',
		interpret_response => 'public.slow_interpret(integration.connector_context, text, integer, jsonb, text)');
});
my $conn = a_sql("SELECT id FROM integration.create_connector('slowkind', 'slow', '"
	  . receiver_url($recv, '') . "', '{}')");

my $b_ep = b_sql("SELECT id FROM integration.register_webhook(name => 'healthy', url => '"
	  . receiver_url($recv, '/b') . "', events => '[\"b.*\"]')");

my %call = map { ($_ => a_sql("SELECT integration.call_connector($conn, '$_', '{}')")) }
  qw(ok sleep_build sleep_interpret swallow);

# B publishes one event every 200 ms, each in its own transaction, while A's calls run
# their three attempts (about 3 s of retry delays and up to 2.5 s of cut-short adapters).
my $started = time();
my $published = 0;
while (time() - $started < 6)
{
	b_sql("SELECT integration.publish_event('b.tick', '{\"i\": $published}')");
	$published++;
	usleep(200_000);
}

for my $op (qw(sleep_build sleep_interpret swallow))
{
	ok($node->poll_query_until('postgres',
			"SELECT status = 'failed' FROM integration.connector_calls WHERE id = $call{$op}"),
		"A's $op call ends failed");
}
my $adapter = {
	sleep_build => 'build_request',
	sleep_interpret => 'interpret_response',
	swallow => 'interpret_response'
};
for my $op (qw(sleep_build sleep_interpret swallow))
{
	is(a_sql("SELECT concat_ws('|', status, attempts, last_error) FROM integration.connector_calls WHERE id = $call{$op}"),
		"failed|3|adapter slowkind.$adapter->{$op} exceeded integration.adapter_timeout (300 ms)",
		"$op: three attempts, each cut short after 300 ms, the last one's error recorded");
}
is(a_sql("SELECT concat_ws('|', status, attempts, last_status_code, result) FROM integration.connector_calls WHERE id = $call{ok}"),
	'succeeded|1|200|{"status": 200}', 'A\'s quick call succeeds at its first attempt');

# The requests: none for a call whose request was never built, one per attempt for
# the calls whose response adapter was cut short (each attempt sends again).
my @reqs = read_log_for('/a/');
my %sent;
$sent{ $_->{path_only} }++ for @reqs;
is_deeply(\%sent, { '/a/ok' => 1, '/a/sleep_interpret' => 3, '/a/swallow' => 3 },
	'requests: one for the quick call, three for each call whose response adapter was cut short, none unbuilt');
my @times = map { $_->{t} } grep { $_->{path_only} eq '/a/sleep_interpret' } @reqs;
cmp_ok($times[2] - $times[0], '>=', 1.6, 'its attempts followed the schedule (1 s, 1 s, each +/-20%)');

is(q1("SELECT string_agg(op, ',' ORDER BY op) FROM public.interpreted"), 'ok',
	'what the cut-short adapters wrote was rolled back; the quick call\'s write stayed');

########################################################################
# 3. B's deliveries went out meanwhile.
########################################################################

ok($node->poll_query_until('postgres',
		"SELECT count(*) = $published FROM integration.deliveries WHERE tenant_id = 'tenant_b' AND status = 'delivered'"),
	"all $published of B's events are delivered");
my $worst = q1("SELECT max(extract(epoch FROM d.delivered_at - e.created_at))
				  FROM integration.deliveries d JOIN integration.webhook_events e
					ON e.tenant_id = d.tenant_id AND e.id = d.event_id
				 WHERE d.tenant_id = 'tenant_b' AND d.endpoint_id = $b_ep");
cmp_ok($worst, '<', 3, "each within 3 s of its commit, the slowest in $worst s (A's adapters sleep 30 s)");
is(q1("SELECT count(*) FROM integration.deliveries WHERE tenant_id = 'tenant_b' AND attempts <> 1"), '0',
	'each at its first attempt');

########################################################################
# 4. A real cancel of the worker: the transaction's failure, not the call's.
########################################################################

q1("ALTER SYSTEM SET integration.adapter_timeout = 0; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', "SELECT current_setting('integration.adapter_timeout') = '0'"),
	'the limit is off');
# The worker reads the reload at its next turn: a moment for it.
usleep(500_000);
my $cancelled = a_sql("SELECT integration.call_connector($conn, 'sleep_build', '{\"n\": 2}')");
ok($node->poll_query_until('postgres',
		"SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $pid"),
	'with no limit, the worker sleeps in the request adapter');
# Its next build will not sleep; this one goes on sleeping until cancelled.
q1("DELETE FROM public.sleepy");
is(q1("SELECT pg_cancel_backend($pid)"), 't', 'and is cancelled');
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM integration.connector_calls WHERE id = $cancelled"),
	'the call is built again, and succeeds');
is(a_sql("SELECT concat_ws('|', attempts, last_error) FROM integration.connector_calls WHERE id = $cancelled"),
	'1', 'the cancelled attempt did not count against it (one attempt, no error)');
like(slurp_file($node->logfile), qr/making connector calls failed: canceling statement due to user request/,
	'the worker logged the cancel as its transaction\'s failure');

########################################################################
# 5. An adapter waiting on a lock: its call's failure, not the transaction's.
########################################################################

q1("BEGIN; SELECT FROM public.lockme FOR UPDATE; PREPARE TRANSACTION 'hold'");
my $transactions_failed = () = slurp_file($node->logfile) =~ /making connector calls failed/g;
my $locked = a_sql("SELECT integration.call_connector($conn, 'locked', '{}')");
my $beside = a_sql("SELECT integration.call_connector($conn, 'ok', '{\"n\": 3}')");
ok($node->poll_query_until('postgres',
		"SELECT status = 'succeeded' FROM integration.connector_calls WHERE id = $beside"),
	'a call queued beside one whose adapter waits on a lock succeeds');
ok($node->poll_query_until('postgres',
		"SELECT status = 'failed' FROM integration.connector_calls WHERE id = $locked"),
	'the waiting one ends failed');
is(a_sql("SELECT concat_ws('|', attempts, last_error) FROM integration.connector_calls WHERE id = $locked"),
	'3|the request could not be built: canceling statement due to lock timeout',
	'after three attempts on the schedule, each ended by the worker\'s lock_timeout');
my $transactions_failed_now = () = slurp_file($node->logfile) =~ /making connector calls failed/g;
is($transactions_failed_now, $transactions_failed, 'no worker transaction failed meanwhile');
q1("ROLLBACK PREPARED 'hold'");

is(worker_pid(), $pid, 'the delivery worker is the same process throughout');

done_testing();

# The receiver's requests whose path starts with $prefix.
sub read_log_for
{
	my ($prefix) = @_;
	return grep { index($_->{path_only}, $prefix) == 0 } read_log($recv);
}
