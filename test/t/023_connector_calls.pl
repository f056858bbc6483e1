# Queued connector calls end to end, on a real server, with the generic kind against the
# local receiver:
#
#   1. call_connector() queues in the caller's transaction (a rolled-back call is never
#      made); the worker sends it with the credentials and the idempotency key in the
#      kind's header, records succeeded and the result, and writes the completion
#      event generic.call.succeeded.
#   2. A 503 is retried on the schedule and then succeeds, both attempts with the same
#      Idempotency-Key; a 404 fails for good after one attempt, with its event
#      generic.call.failed; a connector's own retry schedule (settings.retry_schedule)
#      counts.
#   3. A 429 with Retry-After: 2 is tried again after two seconds, not after the
#      200 ms of the schedule, and the connector's other calls wait as long.
#   4. A disabled connector's calls wait, and go out when it is enabled again; a deleted
#      connector's calls fail, each with its event.
#   5. The kind's adapters run as the role that queued the call, with its tenant.
#   6. The worker killed with SIGKILL while a call is in flight: after the restart the
#      call is sent again with the same key, and its cut-short attempt counts.
#   7. The backlog view and worker_status() show the calls; an application's handler of
#      the completion events (on_inbound()) records every call that ended, once.
#   8. A connector's settings.rate_limit paces its calls (the endpoint-protection
#      limiter, per connector).
#   9. A failing connector's circuit opens, holds its calls back but for probes, and
#      closes when it recovers; connector_health and the logs show it.
#  10. A connector's calls beyond its concurrency go out as its slots free up, not a
#      round at a time on a timer.
#  11. More due calls than the worker can remember as passed over (64), held locked by
#      another session, are claimed again once a second, not in a loop.
#  12. An operator retries a failed call (sent again with its idempotency key, its end
#      handed to the handlers again) and cancels a waiting one (never sent, its end
#      handed on as a failure).

# test/run: alone (its checks bound waits, rates and the worker's transactions in a window).

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('calls',
	"integration.retry_schedule = '200ms, 200ms, 200ms'",
	"integration.request_timeout = '3s'",
	"integration.circuit_min_requests = 4",
	"integration.circuit_cooldown = '1s'",
	'restart_after_crash = on');
my $recv = start_receiver();
my $base = receiver_url($recv, '');

sub sql { return tenant_psql($node, $_[0]); }

# Waits until the call's status is one of the given ones; returns its row as a hash.
sub call_row
{
	my ($id) = @_;
	my $row = sql("SELECT row_to_json(k) FROM integration.connector_calls k WHERE id = $id");
	return $row eq '' ? undef : $json->decode($row);
}

sub wait_call
{
	my ($id, $status) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT status = '$status' FROM integration.connector_calls WHERE id = $id"),
		"call $id is $status");
	return call_row($id);
}

# The receiver's requests for one path.
sub requests_for
{
	my ($path, $n, $timeout) = @_;
	return wait_for_requests($recv, $n, $timeout // 10, sub { $_[0]{path_only} eq $path });
}

# The application: a role, and a handler of the calls' completion events (issue #16
# item 4) that records each in a table of its own.
$node->safe_psql('postgres', q{
	CREATE ROLE calls_app NOLOGIN;
	GRANT USAGE ON SCHEMA integration TO calls_app;
	GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA integration TO calls_app;
	GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO calls_app;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO calls_app;
	CREATE TABLE call_results (call_id bigint, event text, status_code integer, error text);
	GRANT INSERT, SELECT ON call_results TO calls_app;
	CREATE FUNCTION record_call(e integration.inbound_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO public.call_results VALUES ((e.payload ->> 'call_id')::bigint, e.event,
											   (e.payload ->> 'status_code')::integer, e.payload ->> 'error') $$;
});
sql("SET ROLE calls_app;
	SELECT integration.on_inbound('call results', '[\"generic.call.*\"]', 'record_call(integration.inbound_events)')");

my $conn = sql(
	"SELECT id FROM integration.create_connector('generic', 'shop', '$base', '{\"token\": \"calls-token-0001\"}')");

########################################################################
# 1. Queued in the caller's transaction, sent, recorded, handed on.
########################################################################

sql("BEGIN; SELECT integration.call_connector($conn, 'POST /never', '{}'); ROLLBACK;");
my $ok = sql("SELECT integration.call_connector($conn, 'POST /orders', '{\"sku\": \"A-1\", \"qty\": 2}')");
my $row = wait_call($ok, 'succeeded');
my @reqs = requests_for('/orders', 1);
is(scalar @reqs, 1, 'the call was sent once');
is($reqs[0]{method}, 'POST', 'as a POST');
is($reqs[0]{body}, '{"qty": 2, "sku": "A-1"}', 'with the payload as its JSON body');
is($reqs[0]{headers}{authorization}, 'Bearer calls-token-0001', 'authenticated as the kind says');
is($reqs[0]{headers}{'idempotency-key'}, $row->{idempotency_key},
	'with the generated idempotency key in Idempotency-Key');
like($row->{idempotency_key}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'which is a random UUID');
is_deeply([ @$row{qw(attempts last_status_code last_error)} ], [ 1, 200, undef ],
	'one attempt, status 200, no error');
ok(defined $row->{finished_at} && !defined $row->{next_attempt_at} && !defined $row->{lease_expires_at},
	'finished, nothing scheduled, no lease');
is(scalar(requests_for('/never', 1, 0)), 0, 'a call rolled back with its transaction is never made');

my $result = sql("SELECT integration.call_connector($conn, 'GET /report', '{\"body_bytes\": \"4\"}')");
$row = wait_call($result, 'succeeded');
is($json->encode($row->{result}), '"xxxx"', 'the result is what the kind made of the body');
is((requests_for('/report', 1))[0]{path}, '/report?body_bytes=4', 'a GET takes its payload as the query');

is(sql("SELECT concat_ws('|', topic, event, payload ->> 'call_id', payload ->> 'operation',
						 payload ->> 'status', payload ->> 'status_code', payload ->> 'attempts',
						 payload ->> 'idempotency_key' = (SELECT idempotency_key FROM integration.connector_calls WHERE id = $ok))
		  FROM integration.inbound_events WHERE external_id = 'call:$ok'"),
	"call.succeeded|generic.call.succeeded|$ok|POST /orders|succeeded|200|1|t",
	'the completion event generic.call.succeeded carries the call');
ok($node->poll_query_until('postgres',
		"SELECT status = 'processed' FROM integration.inbound_events WHERE external_id = 'call:$ok'"),
	'the handlers take it');
is($node->safe_psql('postgres', "SELECT concat_ws('|', event, status_code) FROM call_results WHERE call_id = $ok"),
	'generic.call.succeeded|200', 'and the application\'s handler recorded the call\'s success');
is(sql("SELECT payload -> 'result' FROM integration.inbound_events WHERE external_id = 'call:$result'"),
	'"xxxx"', 'and carries the result');

########################################################################
# 2. Retried with the same key; failed for good; a connector's own schedule.
########################################################################

my $retry = sql("SELECT integration.call_connector($conn, 'DELETE /orders/7',
		'{\"status\": \"503x1\", \"key\": \"r1\"}', 'order-7-cancel')");
$row = wait_call($retry, 'succeeded');
@reqs = requests_for('/orders/7', 2);
is(scalar @reqs, 2, 'a 503 is tried again, then succeeds');
is_deeply([ map { $_->{headers}{'idempotency-key'} } @reqs ], [ 'order-7-cancel', 'order-7-cancel' ],
	'both attempts carry the idempotency key the caller gave');
is($row->{attempts}, 2, 'two attempts');
is(sql("SELECT integration.call_connector($conn, 'DELETE /orders/7',
		'{\"status\": \"503x1\", \"key\": \"r1\"}', 'order-7-cancel')"), $retry,
	'the same key, operation and payload again are the same call');

my $gone = sql("SELECT integration.call_connector($conn, 'DELETE /orders/8', '{\"status\": \"404\"}')");
$row = wait_call($gone, 'failed');
is_deeply([ @$row{qw(attempts last_status_code last_error)} ], [ 1, 404, 'HTTP 404' ],
	'a 404 fails for good at once, with its status and error');
is(scalar(requests_for('/orders/8', 2, 1)), 1, 'and is not tried again');
is(sql("SELECT concat_ws('|', event, payload ->> 'status', payload ->> 'status_code', payload ->> 'error')
		  FROM integration.inbound_events WHERE external_id = 'call:$gone'"),
	'generic.call.failed|failed|404|HTTP 404', 'its completion event is generic.call.failed, with the error');

my $short = sql("SELECT id FROM integration.create_connector('generic', 'short', '$base',
		'{\"token\": \"calls-token-0002\"}', '{\"retry_schedule\": \"100ms\"}')");
my $flaky = sql("SELECT integration.call_connector($short, 'GET /down', '{\"status\": \"500\"}')");
$row = wait_call($flaky, 'failed');
is_deeply([ @$row{qw(attempts last_status_code)} ], [ 2, 500 ],
	'a connector\'s settings.retry_schedule of one delay allows two attempts');

########################################################################
# 3. Retry-After is honoured, and holds the connector's other calls back.
########################################################################

my $limited = sql("SELECT integration.call_connector($conn, 'GET /limited',
		'{\"status\": \"429x1\", \"key\": \"ra\", \"retry_after\": \"2\"}')");
ok($node->poll_query_until('postgres',
		"SELECT attempts = 1 AND status = 'pending' FROM integration.connector_calls WHERE id = $limited"),
	'a 429 leaves the call pending');
my $behind = sql("SELECT integration.call_connector($conn, 'GET /behind', '{}')");
$row = wait_call($limited, 'succeeded');
wait_call($behind, 'succeeded');
@reqs = requests_for('/limited', 2);
my $gap = $reqs[1]{t} - $reqs[0]{t};
cmp_ok($gap, '>=', 1.9, "the retry waited for Retry-After: 2 (${gap}s), not the schedule's 200 ms");
my ($other) = requests_for('/behind', 1);
cmp_ok($other->{t} - $reqs[0]{t}, '>=', 1.9, 'and so did another call to the same connector');

########################################################################
# 4. Disabled connectors' calls wait; deleted connectors' calls fail.
########################################################################

sql("SELECT integration.update_connector($short, is_active => false)");
my $paused = sql("SELECT integration.call_connector($short, 'GET /paused', '{}')");
sleep 1;
is(sql("SELECT concat_ws('|', status, attempts) FROM integration.connector_calls WHERE id = $paused"),
	'pending|0', 'a disabled connector\'s call waits');
is(sql("SELECT concat_ws('|', pending, due, sending) FROM integration.connector_call_backlog WHERE connector_id = $short"),
	'1|1|0', 'the backlog view shows it pending and due');
sql("SELECT integration.update_connector($short, is_active => true)");
wait_call($paused, 'succeeded');
is(scalar(requests_for('/paused', 1)), 1, 'and it goes out when the connector is enabled again');

sql("SELECT integration.update_connector($short, is_active => false)");
my $orphan = sql("SELECT integration.call_connector($short, 'GET /orphan', '{}')");
sql("SELECT integration.delete_connector($short)");
$row = wait_call($orphan, 'failed');
is_deeply([ @$row{qw(attempts last_error)} ], [ 0, "connector $short was deleted" ],
	'a deleted connector\'s queued call fails without an attempt');
is(sql("SELECT event FROM integration.inbound_events WHERE external_id = 'call:$orphan'"),
	'generic.call.failed', 'with its completion event');

########################################################################
# 5. Adapters run as the role that queued the call, with its tenant.
########################################################################

$node->safe_psql('postgres', q{
	CREATE FUNCTION whoami_request(c integration.connector_context, operation text, payload jsonb, key text)
		RETURNS integration.connector_request LANGUAGE sql STABLE
		AS $$ SELECT ('GET', '/whoami', NULL,
					  jsonb_build_object('X-Role', current_user::text, 'X-Tenant', integration.current_tenant()),
					  NULL)::integration.connector_request $$;
	GRANT EXECUTE ON FUNCTION whoami_request(integration.connector_context, text, jsonb, text) TO calls_app;
	SELECT integration.register_connector_kind('whoami', 'none', 'none',
		build_request => 'whoami_request(integration.connector_context, text, jsonb, text)',
		interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)');
});
my $who = sql("SET ROLE calls_app;
	SELECT integration.call_connector(
		(SELECT id FROM integration.create_connector('whoami', 'me', '$base', '{}')), 'whoami', '{}')");
wait_call($who, 'succeeded');
my ($whoreq) = requests_for('/whoami', 1);
is_deeply([ $whoreq->{headers}{'x-role'}, $whoreq->{headers}{'x-tenant'} ], [ 'calls_app', 'acme' ],
	'the worker built the request as calls_app, with tenant acme selected');

########################################################################
# 7 (before the crash resets the counters). worker_status() counts calls.
########################################################################

is($node->safe_psql('postgres',
		"SELECT concat_ws('|', calls_succeeded, calls_failed_attempts, calls_held) FROM integration.worker_status() WHERE role = 'delivery'"),
	'7|5|0', 'the delivery worker\'s row of worker_status() counts 7 calls succeeded, 5 attempts that did not, none held');

########################################################################
# 8. A connector's rate limit (settings.rate_limit): calls go out at that pace.
########################################################################

my $paced = sql("SELECT id FROM integration.create_connector('generic', 'paced', '$base',
		'{\"token\": \"calls-token-0004\"}', '{\"rate_limit\": 2, \"rate_limit_burst\": 1}')");
my @paced = map { sql("SELECT integration.call_connector($paced, 'POST /paced', '{\"n\": $_}')") } 1 .. 5;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 5 FROM integration.connector_calls WHERE connector_id = $paced AND status = 'succeeded'"),
	'five calls to a connector limited to 2 per second succeed');
my @t = sort { $a <=> $b } map { $_->{t} } requests_for('/paced', 5);
cmp_ok($t[-1] - $t[0], '>=', 1.9,
	sprintf('and go out at its pace: the fifth %.2f s after the first (four half-second gaps)', $t[-1] - $t[0]));
is(sql("SELECT concat_ws('|', circuit, rate_limit, effective_rate) FROM integration.connector_health WHERE connector_id = $paced"),
	'closed|2|2', 'connector_health shows its rate limit and circuit');

########################################################################
# 9. A failing connector's circuit opens, only probes reach it, and it closes.
########################################################################

receiver_plan($recv, '/flaky', 'status=500');
my $flaky_conn = sql("SELECT id FROM integration.create_connector('generic', 'flaky', '$base',
		'{\"token\": \"calls-token-0005\"}', '{\"retry_schedule\": \"" . join(', ', ('100ms') x 20) . "\"}')");
my @flaky = map { sql("SELECT integration.call_connector($flaky_conn, 'POST /flaky', '{\"n\": $_}')") } 1 .. 6;
ok($node->poll_query_until('postgres',
		"SELECT circuit = 'open' FROM integration.connector_health WHERE connector_id = $flaky_conn"),
	'the failing connector\'s circuit opens');
my $n0 = scalar(requests_for('/flaky', 6));
sleep 1;
cmp_ok(scalar(requests_for('/flaky', 100, 0)), '<=', $n0 + 1,
	"while it is open its calls wait: $n0 requests, then at most one probe a second");
receiver_plan($recv, '/flaky', '');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 6 FROM integration.connector_calls WHERE connector_id = $flaky_conn AND status = 'succeeded'"),
	'once the platform recovers, a probe closes the circuit and every call succeeds');
like($node->safe_psql('postgres',
		"SELECT string_agg(event, ' ' ORDER BY id) FROM integration.integration_logs"
		  . " WHERE event LIKE 'circuit.%' AND (context ->> 'connector_id')::bigint = $flaky_conn"),
	qr/^circuit\.opened circuit\.half_opened .*circuit\.closed$/,
	'its transitions are logged with the connector\'s id, opened first and closed last');
is(sql("SELECT circuit FROM integration.connector_health WHERE connector_id = $flaky_conn"), 'closed',
	'connector_health shows it closed again');

########################################################################
# 6. SIGKILL of the worker with a call in flight: sent again with the same key.
########################################################################

my $crash_conn = sql("SELECT id FROM integration.create_connector('generic', 'crash', '$base',
		'{\"token\": \"calls-token-0003\"}')");
# The receiver does not answer /hang: the call stays in flight until the worker is killed.
receiver_plan($recv, '/hang', 'hang=1');
my $crash = sql("SELECT integration.call_connector($crash_conn, 'POST /hang', '{}', 'crash-key-1')");
@reqs = requests_for('/hang', 1);
is(scalar @reqs, 1, 'the call is in flight');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
is(call_row($crash)->{status}, 'sending', 'and sending');
kill 'KILL', $pid;
receiver_plan($recv, '/hang', '');
ok(poll_across_crash($node, 'postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $pid) FROM integration.worker_status() WHERE role = 'delivery'"),
	'the server restarted after the crash, with a new worker');
$row = wait_call($crash, 'succeeded');
@reqs = requests_for('/hang', 2);
my @keys = map { $_->{headers}{'idempotency-key'} } @reqs;
is_deeply(\@keys, [ 'crash-key-1', 'crash-key-1' ],
	'the attempt cut short and the one after the restart carry the same key');
is($row->{attempts}, 2, 'the cut-short attempt counted: two attempts');
is(sql("SELECT concat_ws('|', event, payload ->> 'attempts') FROM integration.inbound_events WHERE external_id = 'call:$crash'"),
	'generic.call.succeeded|2', 'its completion event says two attempts');

########################################################################
# 10. A connector's calls beyond its concurrency (integration.max_concurrency_per_endpoint,
#     16) go out as its slots free up: each claim that found the connector full was
#     forgotten when its calls ended, and a round went out a second or more apart.
########################################################################

my $bulk = sql(
	"SELECT id FROM integration.create_connector('generic', 'bulk', '$base', '{\"token\": \"calls-token-0006\"}')");
my $nbulk = 320;
my $t0 = time;
sql("SELECT count(integration.call_connector($bulk, 'POST /bulk', pg_catalog.jsonb_build_object('n', g)))
	   FROM pg_catalog.generate_series(1, $nbulk) g");
@reqs = requests_for('/bulk', $nbulk, 60);
my $took = time - $t0;
is(scalar @reqs, $nbulk, "all $nbulk calls to one connector were made");
note(sprintf('the %d calls took %.1f s', $nbulk, $took));
cmp_ok($took, '<', 8,
	"within 8 s of their commit (20 rounds of 16; a round a second, as before, took 20 s or more)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = $nbulk AND bool_and(status = 'succeeded' AND attempts = 1)
		   FROM integration.connector_calls WHERE connector_id = $bulk"),
	'each succeeded at its first attempt');

########################################################################
# 11. 70 due calls held locked by another session: the worker remembers 64 as passed
#     over for a second; the others must wait for that second too.  The slot each
#     gave back asked for a claim, which took it again at once: some 13,000
#     transactions a second, a core busy, for as long as the lock lasted.
########################################################################

my $held = sql(
	"SELECT id FROM integration.create_connector('generic', 'held', '$base', '{\"token\": \"calls-token-0007\"}')");
sql("SELECT integration.update_connector($held, is_active => false)");
sql("SELECT count(integration.call_connector($held, 'POST /held', '{}')) FROM pg_catalog.generate_series(1, 70)");
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
is($locker->query_safe(
		"SELECT count(*) FROM (SELECT FROM integration.connector_calls WHERE connector_id = $held FOR UPDATE) l"),
	'70', 'another session holds the 70 calls locked');
sql("SELECT integration.update_connector($held, is_active => true)");
# A call to another connector wakes the worker, whose claim finds the held ones due.
my $wake = sql("SELECT integration.call_connector($bulk, 'POST /wake', '{}')");
wait_call($wake, 'succeeded');
sleep 1;
my $xacts = "SELECT xact_commit + xact_rollback FROM pg_catalog.pg_stat_database WHERE datname = 'postgres'";
my $x0 = $node->safe_psql('postgres', $xacts);
sleep 3;
my $spent = $node->safe_psql('postgres', $xacts) - $x0;
cmp_ok($spent, '<', 1000, "while they stay locked the worker is nearly idle: $spent transactions in 3 s");
$locker->query_safe('COMMIT');
$locker->quit;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 70 AND bool_and(status = 'succeeded' AND attempts = 1)
		   FROM integration.connector_calls WHERE connector_id = $held"),
	'once the lock goes, each is made, at its first attempt');
is(scalar(requests_for('/held', 70)), 70, 'seventy requests');

########################################################################
# Every call that ended was handed to the application's handler exactly once, the one
# cut short by the crash included.
########################################################################

my $ended = "SELECT count(*) FROM integration.connector_calls k JOIN integration.connectors c
				ON c.tenant_id = k.tenant_id AND c.id = k.connector_id
			 WHERE c.kind = 'generic' AND k.status IN ('succeeded', 'failed')";
ok($node->poll_query_until('postgres',
		"SELECT ($ended) = (SELECT count(*) FROM call_results)"),
	'the handler recorded as many results as generic calls ended');
is($node->safe_psql('postgres',
		"SELECT count(*) - count(DISTINCT call_id) FROM call_results"), '0', 'each once');
is($node->safe_psql('postgres',
		"SELECT string_agg(concat_ws(':', event, status_code, error), ', ' ORDER BY call_id)
		   FROM call_results WHERE call_id IN ($gone, $orphan)"),
	"generic.call.failed:404:HTTP 404, generic.call.failed:connector $short was deleted",
	'failures too, with their status and error');

########################################################################
# 12. retry_connector_call() and cancel_connector_call().
########################################################################

# The 404 of section 2, retried.
my $gone_key = sql("SELECT idempotency_key FROM integration.connector_calls WHERE id = $gone");
is(sql("SELECT concat_ws('|', status, attempts, next_attempt_at IS NOT NULL, finished_at IS NULL)
		  FROM integration.retry_connector_call($gone)"),
	'pending|0|t|t', 'retry_connector_call() queues a failed call again, due now, attempts cleared');
@reqs = requests_for('/orders/8', 2);
is_deeply([ map { $_->{headers}{'idempotency-key'} } @reqs ], [ $gone_key, $gone_key ],
	'it is sent again with the idempotency key it was queued with');
$row = wait_call($gone, 'failed');
is_deeply([ @$row{qw(attempts last_status_code last_error)} ], [ 1, 404, 'HTTP 404' ],
	'and fails again, after one attempt of its own');
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM call_results WHERE call_id = $gone"),
	'the handler learns of its end again');
is(sql("SELECT string_agg(concat_ws(':', event, dedupe_expired), ', ' ORDER BY id)
		  FROM integration.inbound_events WHERE external_id = 'call:$gone'"),
	'generic.call.failed:t, generic.call.failed:f',
	'two completion events, the first no longer counting for deduplication');

# A call that waits for its disabled connector, cancelled: never sent.
my $later = sql("SELECT id FROM integration.create_connector('generic', 'later', '$base',
		'{\"token\": \"calls-token-0008\"}')");
sql("SELECT integration.update_connector($later, is_active => false)");
my $waiting = sql("SELECT integration.call_connector($later, 'POST /cancelled', '{}')");
is(sql("SELECT concat_ws('|', status, attempts, last_error, next_attempt_at IS NULL, finished_at IS NOT NULL)
		  FROM integration.cancel_connector_call($waiting)"),
	'failed|0|cancelled by postgres|t|t', 'cancel_connector_call() ends a pending call as failed, saying who');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM call_results WHERE call_id = $waiting AND event = 'generic.call.failed'
		    AND error = 'cancelled by postgres'"),
	'the handler learns of it as of any failed call');
sql("SELECT integration.update_connector($later, is_active => true)");
my $sent = sql("SELECT integration.call_connector($later, 'POST /after', '{}')");
wait_call($sent, 'succeeded');
is(scalar(requests_for('/cancelled', 1, 0)), 0, 'the cancelled call is never sent, once its connector is enabled');
is(sql("SELECT string_agg(event, ' ' ORDER BY id) FROM integration.integration_logs
		 WHERE event IN ('call.retried', 'call.cancelled')"),
	'call.retried call.cancelled', 'both are logged');

stop_receiver($recv);
$node->stop;
done_testing();
