# End-to-end delivery through the background worker to a real HTTP receiver on
# loopback: what is sent (bytes, headers, signature), retries, final failure,
# timeouts, redirects, response caps, 410 Gone, Retry-After, isolation of a slow
# endpoint, redelivery, and that a rolled-back transaction sends nothing.

# test/run: alone (its checks bound latencies and the worker's CPU ticks).

use strict;
use warnings;

use Encode ();
use IntegrationTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Circuit breakers off: these cases count the attempts made to endpoints that keep
# failing (1,000 in case 16), which an open circuit would hold back;
# 018_endpoint_protection.pl tests circuits.
my $node = new_integration_node('delivery',
	"integration.retry_schedule = '100ms, 100ms'",
	'integration.circuit_min_requests = 0');
my $recv = start_receiver();
my $json = JSON::PP->new->utf8;

# 32 bytes of key, as integration.generate_secret() makes them.
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ0Fb6qZ7Lw8=';

# Registers an endpoint for tenant acme; returns its id.
sub register
{
	my ($name, $url, $events, %opt) = @_;
	my $headers = $opt{headers} // '{}';
	my $id = tenant_psql($node, qq{
		SELECT id FROM integration.register_webhook(name => '$name', url => '$url',
			events => '$events', secret => '$secret', headers => '$headers')});
	my @set;
	push @set, "timeout_ms = $opt{timeout_ms}" if defined $opt{timeout_ms};
	push @set, "retry_schedule = '$opt{retry_schedule}'"
	  if defined $opt{retry_schedule};
	tenant_psql($node,
		"UPDATE integration.webhook_endpoints SET " . join(', ', @set) . " WHERE id = $id")
	  if @set;
	return $id;
}

sub q1 { return tenant_psql($node, $_[0]); }

# Waits until the query returns 't'.  The test user is a superuser, so row-level
# security does not hide other tenants' rows: no tenant needed to read.
sub poll_ok
{
	my ($sql, $what) = @_;
	ok($node->poll_query_until('postgres', $sql), $what);
}

# The requests to $path the receiver has taken so far: its log is written up to 20 ms
# after a request, and the delivery may be recorded sooner.
sub requests_to
{
	my ($path) = @_;
	return grep { $_->{path_only} eq $path } read_log_settled($recv);
}

sub hex_of { return unpack('H*', $_[0]); }

########################################################################
# 1. A write to a tracked table is delivered byte for byte, signed.
########################################################################

$node->safe_psql('postgres', q{
	CREATE TABLE orders (tenant_id text NOT NULL, id int PRIMARY KEY, item text,
						 amount numeric);
	SELECT integration.track_table('orders', 'order');
});
my $e2e = register('e2e', receiver_url($recv, '/e2e'), '["order.*"]',
	headers => '{"X-Api-Key": "k-123", "X-Trace": "t\u00e9st", "X-Empty": ""}');

q1(q{INSERT INTO orders VALUES ('acme', 1, 'café ☃ "quoted"', 12.50)});
poll_ok(
	"SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $e2e",
	'tracked insert is delivered');

my ($e2e_delivery, $e2e_event, $payload_hex, $payload_len) = split /\|/, q1(qq{
	SELECT d.id, d.event_id, encode(convert_to(e.payload, 'UTF8'), 'hex'),
		   octet_length(e.payload)
	  FROM integration.deliveries d JOIN integration.webhook_events e ON e.id = d.event_id
	 WHERE d.endpoint_id = $e2e});

my @r = wait_for_requests($recv, 1, 10, sub { $_[0]{path_only} eq '/e2e' });
is(scalar @r, 1, 'exactly one request for the insert');
my $req = $r[0];
is($req->{method}, 'POST', 'method is POST');
is(hex_of($req->{body}), $payload_hex,
	'body is byte for byte the stored payload');
is($req->{body_len}, $payload_len, 'body length equals the payload length');
is($req->{headers}{'content-type'}, 'application/json', 'content-type');
like($req->{headers}{'user-agent'}, qr{^pg-integration/\S+$}, 'user-agent');
my $e2e_msg = q1("SELECT message_id FROM integration.webhook_events WHERE id = $e2e_event");
like($e2e_msg, qr/^msg_[0-9A-Za-z]{22}$/, 'the event has a message id: msg_ and 22 base62 characters');
is($req->{headers}{'webhook-id'}, $e2e_msg, "webhook-id is the event's message id");
is(q1("SELECT message_id FROM integration.webhook_deliveries WHERE event_id = $e2e_event"), $e2e_msg,
	'webhook_deliveries shows it');
# Logs are for changes, failures and operators' actions (issue #20): publishing the
# event and delivering it wrote none; registering the endpoint wrote the one.
is(q1(qq{SELECT string_agg(event, ',') FROM integration.integration_logs
		  WHERE (context->>'endpoint_id')::bigint = $e2e OR (context->>'delivery_id')::bigint = $e2e_delivery}),
	'webhook.registered', 'a published and delivered event writes no log row');
like($req->{headers}{'webhook-timestamp'}, qr/^\d+$/, 'webhook-timestamp is unix seconds');
ok(abs($req->{headers}{'webhook-timestamp'} - time()) < 60,
	'webhook-timestamp is now');
ok(verify_signature($secret, $req->{headers}, $req->{body}),
	'signature verifies independently with the endpoint secret');
ok(!verify_signature('whsec_' . ('A' x 43) . '=', $req->{headers}, $req->{body}),
	'and does not verify with another secret');
ok(!verify_signature($secret, $req->{headers}, $req->{body} . ' '),
	'and does not verify for another body');
is($req->{headers}{'x-api-key'}, 'k-123', 'custom header sent');
is($req->{headers}{'x-trace'}, "t\xc3\xa9st", 'custom header value sent as UTF-8');
is($req->{headers}{'x-empty'}, '', 'a custom header with an empty value is sent, empty');
ok(!exists $req->{headers}{expect}, 'no Expect header');
my $doc = $json->decode($req->{body});
is($doc->{type}, 'order.created', 'envelope type');
is($doc->{data}{new}{item}, Encode::decode_utf8('café ☃ "quoted"'),
	'row data survives the round trip');
is($doc->{data}{new}{id}, 1, 'row id in the payload');

########################################################################
# 2. 500 once, then 200: retried with the same webhook-id.
########################################################################

my $retry = register('retry', receiver_url($recv, '/retry', status => '500x1'),
	'["retry.*"]');
q1(q{SELECT integration.publish_event('retry.test', '{"n": 1}')});
poll_ok(
	"SELECT status = 'delivered' AND attempts = 2 FROM integration.deliveries WHERE endpoint_id = $retry",
	'500 then 200: delivered on the second attempt');
@r = requests_to('/retry');
is(scalar @r, 2, 'receiver saw two requests');
my $retry_event = q1("SELECT event_id FROM integration.deliveries WHERE endpoint_id = $retry");
my $retry_msg = q1("SELECT message_id FROM integration.webhook_events WHERE id = $retry_event");
isnt($retry_msg, $e2e_msg, 'another event has another message id');
is_deeply([ map { $_->{headers}{'webhook-id'} } @r ],
	[ $retry_msg, $retry_msg ],
	'both attempts carry the same webhook-id');
ok(verify_signature($secret, $_->{headers}, $_->{body}), 'retry signature verifies')
  for @r;
is(q1(qq{SELECT string_agg(attempt || ':' || coalesce(status_code::text, '-') || ':'
								|| coalesce(error_class, '-'), ',' ORDER BY attempt)
		   FROM integration.webhook_delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		  WHERE d.endpoint_id = $retry}),
	'1:500:http_status,2:200:-', 'attempt history (every attempt): 500 then 200');

########################################################################
# 3. 500 always: failed after 1 + 2 retries, logged.
########################################################################

my $fail = register('fail', receiver_url($recv, '/fail', status => '500'),
	'["fail.*"]');
q1(q{SELECT integration.publish_event('fail.test', '{"n": 2}')});
poll_ok(
	"SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $fail",
	'always 500: delivery fails');
my $fail_delivery = q1("SELECT id FROM integration.deliveries WHERE endpoint_id = $fail");
is(q1("SELECT attempts || '|' || last_status_code || '|' || last_error FROM integration.deliveries WHERE id = $fail_delivery"),
	'3|500|HTTP 500', 'attempts 3, last status 500');
is(q1("SELECT count(*) FROM integration.delivery_attempts WHERE delivery_id = $fail_delivery"),
	'3', 'three rows in delivery_attempts');
is(q1(qq{SELECT count(*) FROM integration.integration_logs
		  WHERE event = 'delivery.failed' AND level = 'error'
			AND (context->>'delivery_id')::bigint = $fail_delivery}),
	'1', 'one delivery.failed log row');
is(q1(qq{SELECT count(*) FROM integration.integration_logs
		  WHERE event = 'delivery.retrying' AND (context->>'delivery_id')::bigint = $fail_delivery}),
	'2', 'two delivery.retrying log rows');
is(scalar(requests_to('/fail')), 3, 'receiver saw exactly three requests');

########################################################################
# 4. Timeout: the endpoint's timeout_ms, error class timeout.
########################################################################

my $slow = register('timeout', receiver_url($recv, '/timeout', delay_ms => 3000),
	'["timeout.*"]', timeout_ms => 300, retry_schedule => '');
my $t0 = time();
q1(q{SELECT integration.publish_event('timeout.test', '{}')});
poll_ok(
	"SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $slow",
	'timed-out delivery fails (no retries for this endpoint)');
ok(time() - $t0 < 2.5, 'it failed well before the receiver would have answered');
is(q1(qq{SELECT a.error_class || '|' || (a.duration_ms BETWEEN 250 AND 1500) || '|'
			  || (a.status_code IS NULL) || '|' || d.attempts
		   FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		  WHERE d.endpoint_id = $slow}),
	'timeout|true|true|1', 'error_class timeout after about 300 ms');

########################################################################
# 5. Redirects are not followed.
########################################################################

my $target = "http%3A%2F%2F127.0.0.1%3A$recv->{port}%2Fredirect-target";
my $redir = register('redirect', receiver_url($recv, '/redir', redirect => $target),
	'["redir.*"]', retry_schedule => '');
q1(q{SELECT integration.publish_event('redir.test', '{}')});
poll_ok(
	"SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $redir",
	'redirected delivery fails');
is(q1(qq{SELECT d.last_status_code || '|' || a.error_class || '|' || d.last_error
		   FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
		  WHERE d.endpoint_id = $redir}),
	'302|redirect|HTTP 302: redirects are not followed', 'last_status_code 302, error_class redirect');
is(scalar(requests_to('/redir')), 1, 'receiver saw one request');
is(scalar(requests_to('/redirect-target')), 0, 'the redirect target was never requested');

########################################################################
# 6. A large response is read only up to integration.max_response_bytes.
########################################################################

my $big = register('big', receiver_url($recv, '/big', body_bytes => 100000), '["big.*"]');
q1(q{SELECT integration.publish_event('big.test', '{}')});
poll_ok(
	"SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $big",
	'delivery with a 100 kB response is delivered');
is(q1("SELECT last_status_code || '|' || length(last_response) || '|' || (last_response = repeat('x', 16384)) FROM integration.deliveries WHERE endpoint_id = $big"),
	'200|16384|true', 'response stored capped at 16384 bytes');

########################################################################
# 7. 410 Gone disables the endpoint and fails the delivery at once.
########################################################################

my $gone = register('gone', receiver_url($recv, '/gone', status => 410), '["gone.*"]');
q1(q{SELECT integration.publish_event('gone.test', '{}')});
poll_ok(
	"SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $gone",
	'410: delivery failed');
is(q1("SELECT attempts || '|' || last_status_code FROM integration.deliveries WHERE endpoint_id = $gone"),
	'1|410', 'no retry after 410');
is(q1("SELECT is_active || '|' || coalesce(disabled_reason, '-') FROM integration.webhook_endpoints WHERE id = $gone"),
	'false|the receiver answered 410 Gone', 'endpoint disabled');
is(q1("SELECT count(*) FROM integration.integration_logs WHERE event = 'webhook.disabled' AND (context->>'endpoint_id')::bigint = $gone"),
	'1', 'webhook.disabled logged');
is(q1(q{SELECT integration.publish_event('gone.test', '{}')}), '0',
	'a disabled endpoint gets no new deliveries');
poll_ok("SELECT count(*) = 1 FROM integration.deliveries WHERE endpoint_id = $gone AND status = 'skipped'",
	'the event is recorded for it as skipped, for enable_webhook() to replay (017_auto_disable.pl)');
is(scalar(requests_to('/gone')), 1, 'receiver saw one request');

########################################################################
# 8. Retry-After replaces the scheduled delay.
########################################################################

my $ra = register('retry-after',
	receiver_url($recv, '/ra', status => '503x1', retry_after => 2), '["ra.*"]');
q1(q{SELECT integration.publish_event('ra.test', '{}')});
poll_ok(
	"SELECT attempts = 1 AND status = 'pending' FROM integration.deliveries WHERE endpoint_id = $ra",
	'503 with Retry-After: pending after one attempt');
my $gap = q1("SELECT extract(epoch FROM next_attempt_at - last_attempt_at) FROM integration.deliveries WHERE endpoint_id = $ra");
ok($gap >= 1.9 && $gap <= 2.5, "next attempt 2 s later (gap $gap s)");
poll_ok(
	"SELECT status = 'delivered' AND attempts = 2 FROM integration.deliveries WHERE endpoint_id = $ra",
	'delivered on the second attempt');
@r = requests_to('/ra');
is(scalar @r, 2, 'receiver saw two requests');
my $arrival_gap = $r[1]{t} - $r[0]{t};
ok($arrival_gap >= 1.9 && $arrival_gap <= 3.0,
	"second request arrived 2 s after the first ($arrival_gap s)");

########################################################################
# 8b. A receiver that resets the connection, or closes it without answering: a
#     network error, recorded and retried like any failure.
########################################################################

for my $mode ('rst', '1')
{
	my $ep = register("close-$mode", receiver_url($recv, "/close-$mode", close => $mode),
		'["close.*"]', retry_schedule => '100ms');
	q1(qq{SELECT integration.publish_event('close.test', '{}')});
	poll_ok(
		"SELECT status = 'failed' FROM integration.deliveries WHERE endpoint_id = $ep",
		"close=$mode: the delivery fails after its two attempts");
	is(q1(qq{SELECT string_agg(a.attempt || ':' || a.error_class || ':' || (a.status_code IS NULL),
								',' ORDER BY a.attempt)
			   FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
			  WHERE d.endpoint_id = $ep}),
		'1:network:true,2:network:true', "close=$mode: both attempts are network errors without a status");
	tenant_psql($node, "SELECT integration.delete_webhook($ep)");
}

########################################################################
# 9. A slow endpoint does not delay a fast one.
########################################################################

my $slowlane = register('slow lane', receiver_url($recv, '/slowlane', delay_ms => 3000),
	'["lane.slow"]');
my $fastlane = register('fast lane', receiver_url($recv, '/fastlane'), '["lane.fast"]');
q1(q{SELECT integration.publish_event('lane.slow', jsonb_build_object('i', i))
	   FROM generate_series(1, 10) i});
@r = wait_for_requests($recv, 10, 10, sub { $_[0]{path_only} eq '/slowlane' });
is(scalar @r, 10, 'ten slow requests are in flight');
q1(q{SELECT integration.publish_event('lane.fast', jsonb_build_object('i', i))
	   FROM generate_series(1, 10) i});
poll_ok(
	"SELECT count(*) = 10 FROM integration.deliveries WHERE endpoint_id = $fastlane AND status = 'delivered'",
	'ten fast deliveries delivered');
is(q1("SELECT count(*) FILTER (WHERE status = 'sending') || '|' || count(*) FILTER (WHERE status = 'delivered') FROM integration.deliveries WHERE endpoint_id = $slowlane"),
	'10|0', 'while the slow ones are still in flight');
my $fast_latency = q1(qq{SELECT extract(epoch FROM max(delivered_at) - min(created_at))
						   FROM integration.deliveries WHERE endpoint_id = $fastlane});
ok($fast_latency < 1.0, "fast ones delivered within 1 s of commit ($fast_latency s)");
poll_ok(
	"SELECT count(*) = 10 FROM integration.deliveries WHERE endpoint_id = $slowlane AND status = 'delivered'",
	'the slow ones are delivered too');
is(q1(qq{SELECT (SELECT max(delivered_at) FROM integration.deliveries WHERE endpoint_id = $fastlane)
			  < (SELECT min(delivered_at) FROM integration.deliveries WHERE endpoint_id = $slowlane)}),
	't', 'every fast delivery completed before any slow one');

########################################################################
# 9b. An endpoint at integration.max_concurrency_per_endpoint (16 here) with a
#     backlog of due deliveries: the worker waits for it without spinning, and
#     another endpoint's retry still runs on time.
########################################################################

my $full = register('full', receiver_url($recv, '/full', delay_ms => 5000), '["full.*"]');
q1("SELECT integration.dispatch_webhook($full, 'full.x', jsonb_build_object('i', i)) FROM generate_series(1, 16) i");
@r = wait_for_requests($recv, 16, 10, sub { $_[0]{path_only} eq '/full' });
is(scalar @r, 16, 'sixteen requests to the full endpoint are in flight');
q1("SELECT integration.dispatch_webhook($full, 'full.x', jsonb_build_object('i', i)) FROM generate_series(17, 24) i");
my $retry2 = register('retry beside full', receiver_url($recv, '/beside', status => '500x1'),
	'["beside.*"]', retry_schedule => '200ms');
my $worker_pid = q1("SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
sub cpu_ticks
{
	my @f = split ' ', slurp_file("/proc/$worker_pid/stat") =~ s/^.*\) //sr;
	return $f[11] + $f[12];    # utime + stime
}
my $ticks0 = cpu_ticks();
my $t0 = time;
q1("SELECT integration.dispatch_webhook($retry2, 'beside.x', '{}')");
poll_ok(
	"SELECT status = 'delivered' AND attempts = 2 FROM integration.deliveries WHERE endpoint_id = $retry2",
	'a retry beside the full endpoint is delivered');
my $beside_s = time - $t0;
ok($beside_s < 1.5, "its retry ran on schedule while the other endpoint was full (${beside_s} s)");
usleep((1.2 - (time - $t0)) * 1e6) if time - $t0 < 1.2;
my $ticks = cpu_ticks() - $ticks0;
my $window = sprintf('%.1f', time - $t0);
is(q1("SELECT count(*) FILTER (WHERE status = 'pending') || '|' || count(*) FILTER (WHERE status = 'sending') FROM integration.deliveries WHERE endpoint_id = $full"),
	'8|16', 'the backlog waits pending while the endpoint is full');
# A worker that re-ran its claim while waiting would use all of a core: about 100
# ticks a second.
cmp_ok($ticks, '<', 25, "the worker idles while the endpoint is full ($ticks CPU ticks in $window s)");
poll_ok(
	"SELECT count(*) = 24 FROM integration.deliveries WHERE endpoint_id = $full AND status = 'delivered'",
	'the backlog is delivered once the endpoint has room');

########################################################################
# 10. redeliver() sends again with the same webhook-id.
########################################################################

is(q1("SELECT integration.redeliver($e2e_delivery)"), $e2e_delivery, 'redeliver returns the id');
@r = wait_for_requests($recv, 2, 10, sub { $_[0]{path_only} eq '/e2e' });
is(scalar @r, 2, 'receiver saw the delivery again');
is($r[1]{headers}{'webhook-id'}, $e2e_msg, 'redelivery has the same webhook-id');
is(hex_of($r[1]{body}), $payload_hex, 'redelivery has the same body');
ok(verify_signature($secret, $r[1]{headers}, $r[1]{body}), 'redelivery signature verifies');
poll_ok(
	"SELECT status = 'delivered' AND attempts = 1 FROM integration.deliveries WHERE id = $e2e_delivery",
	'redelivered delivery is delivered with a fresh attempt count');

########################################################################
# 11. retry_failed() requeues failed deliveries.
########################################################################

q1(qq{SELECT integration.update_webhook(id => $fail, url => '@{[receiver_url($recv, '/fail-fixed')]}')});
is(q1("SELECT integration.retry_failed(endpoint_id => $fail)"), '1',
	'retry_failed requeues the failed delivery');
poll_ok(
	"SELECT status = 'delivered' AND attempts = 1 FROM integration.deliveries WHERE id = $fail_delivery",
	'requeued delivery is delivered');
@r = requests_to('/fail-fixed');
is(scalar @r, 1, 'it arrived at the fixed URL');
my $fail_event = q1("SELECT event_id FROM integration.deliveries WHERE id = $fail_delivery");
is($r[0]{headers}{'webhook-id'},
	q1("SELECT message_id FROM integration.webhook_events WHERE id = $fail_event"),
	'with the original webhook-id');
is(q1("SELECT integration.retry_failed(endpoint_id => $fail)"), '0',
	'nothing left to requeue for that endpoint');

########################################################################
# 12. Monitoring: worker_status() and pg_stat_activity.
########################################################################

my ($wpid, $wstate, $wdelivered) = split /\|/, $node->safe_psql('postgres',
	"SELECT pid, state, delivered FROM integration.worker_status() WHERE role = 'delivery' AND database = 'postgres'");
ok($wpid > 0, "worker_status shows the worker (pid $wpid)");
ok($wdelivered > 0, "its delivered counter is positive ($wdelivered)");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'integration worker' AND datname = 'postgres' AND pid = $wpid"),
	'1', "pg_stat_activity lists it as 'integration worker'");

# What it waits on, and since when.  Idle, it sleeps in its loop.  Then a table lock
# holds up its next store transaction: worker_status() names the step, the lock and
# when the step began; once the lock goes, the transaction is logged with where its
# time went (integration.log_min_duration, here 0: every worker transaction).
poll_ok("SELECT state = 'idle' AND wait_event_type = 'Extension' AND wait_event = 'Extension'"
	  . " AND state_since <= clock_timestamp() FROM integration.worker_status() WHERE role = 'delivery'",
	'worker_status(): idle, waiting in its loop (Extension)');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET integration.log_min_duration = 0; SELECT pg_reload_conf()");
my $mon = register('monitored', receiver_url($recv, '/mon'), '["mon.*"]');
usleep(300_000);    # the reload and the endpoint's refresh reach the worker
my $mon_lock = $node->background_psql('postgres');
$mon_lock->query_safe('BEGIN');
$mon_lock->query_safe('LOCK TABLE integration.deliveries IN ACCESS EXCLUSIVE MODE');
my $log_at = -s $node->logfile;
q1(q{SELECT integration.publish_event('mon.x', '{}')});
poll_ok("SELECT state = 'claiming' AND wait_event_type = 'Lock' AND wait_event = 'relation'"
	  . " AND state_since <= clock_timestamp() FROM integration.worker_status() WHERE role = 'delivery'",
	'worker_status(): claiming, waiting for a relation lock');
usleep(300_000);
is($node->safe_psql('postgres',
		"SELECT state, wait_event, clock_timestamp() - state_since >= interval '250 ms'"
		  . " FROM integration.worker_status() WHERE role = 'delivery'"),
	'claiming|relation|t', 'and state_since says for how long');
$mon_lock->query_safe('COMMIT');
$mon_lock->quit;
poll_ok("SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $mon",
	'once the lock is gone, the event is delivered');
my $slow_line = '';
for (1 .. 50)
{
	($slow_line) = slurp_file($node->logfile, $log_at) =~
	  /(integration worker: claiming deliveries took (\d+) ms: (\d+) ms in statements, \d+ ms committing)/;
	last if $slow_line;
	usleep(100_000);
}
my ($held_ms) = $slow_line =~ /took (\d+) ms/;
ok(defined $held_ms && $held_ms >= 250,
	"the server log says how long the held-up transaction took, and where: '$slow_line'");
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET integration.log_min_duration; SELECT pg_reload_conf()");

########################################################################
# 13. A rolled-back transaction sends nothing.
########################################################################

my $rb = register('rollback', receiver_url($recv, '/rb'), '["rb.*"]');
q1(q{
	BEGIN;
	SELECT integration.publish_event('rb.rolledback', '{"n": 1}');
	ROLLBACK;
	SELECT integration.publish_event('rb.committed', '{"n": 2}');
});
poll_ok(
	"SELECT count(*) = 1 AND bool_and(status = 'delivered') FROM integration.deliveries WHERE endpoint_id = $rb",
	'the committed event is delivered');
usleep(200_000);
@r = requests_to('/rb');
is(scalar @r, 1, 'the receiver saw one request');
is($json->decode($r[0]{body})->{type}, 'rb.committed', 'for the committed event only');
is(q1("SELECT count(*) FROM integration.webhook_events WHERE event = 'rb.rolledback'"),
	'0', 'no event row for the rolled-back transaction');

########################################################################
# 14. Fan-out of events whose endpoint list the worker cannot take as it is.
########################################################################

# An event written by hand lists its endpoint twice, an endpoint hard-deleted after the
# event was written, and another tenant's endpoint: one delivery, to the one real
# endpoint of its tenant.  A plain INSERT or UPDATE cannot name another tenant's
# endpoint (issue #13): a superuser's session_replication_role = replica, which skips
# the check, writes it here.
my $fan = register('fan-out', receiver_url($recv, '/fan'), '["fan.*"]');
my $gone = register('gone', receiver_url($recv, '/gone-hard'), '["nothing.*"]');
my $foreign = tenant_psql($node, qq{
	SELECT id FROM integration.register_webhook(name => 'other tenant',
		url => '@{[receiver_url($recv, '/foreign')]}', events => '["fan.*"]')}, 'globex');
my ($rc, $out, $err) = $node->psql('postgres', qq{
	SET integration.tenant_id = 'acme';
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
	VALUES ('fan.forged', integration.envelope('fan.forged', '{}'), ARRAY[$fan, $foreign])});
like($err, qr/webhook $foreign of an event is not an endpoint of tenant "acme"/,
	'a plain INSERT cannot name another tenant\'s endpoint');
# (A hand-written event wakes nobody: _wake_worker_at_commit() does what publishing does.)
my $odd = q1(qq{
	BEGIN;
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
	VALUES ('fan.odd', integration.envelope('fan.odd', '{}'), ARRAY[$fan, $gone, $fan]);
	DELETE FROM integration.webhook_endpoints WHERE id = $gone;
	SET LOCAL session_replication_role = replica;
	UPDATE integration.webhook_events SET endpoint_ids = endpoint_ids || ARRAY[$foreign]::bigint[]
	 WHERE event = 'fan.odd';
	SET LOCAL session_replication_role = origin;
	DO \$\$ BEGIN PERFORM integration._wake_worker_at_commit(); END \$\$;
	COMMIT;
	SELECT id FROM integration.webhook_events WHERE event = 'fan.odd'});
poll_ok("SELECT NOT EXISTS (SELECT FROM integration.webhook_event_queue WHERE event_id = $odd)",
	'the odd event is fanned out');
poll_ok(
	"SELECT count(*) = 1 AND bool_and(status = 'delivered' AND endpoint_id = $fan) FROM integration.deliveries WHERE event_id = $odd",
	'into one delivery, to its own tenant\'s live endpoint, delivered');
is(scalar(requests_to('/fan')), 1, 'one request for it');
is(scalar(requests_to('/foreign')) + scalar(requests_to('/gone-hard')), 0,
	'none to the deleted or the foreign endpoint');

# An event written while the endpoint-list constraint was not there (dropped here)
# names a NULL endpoint: the fan-out skips that one, and goes on for everyone.
q1("ALTER TABLE integration.webhook_events DROP CONSTRAINT webhook_events_endpoint_ids_check");
my $with_null = q1(qq{
	BEGIN;
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
	VALUES ('fan.null', integration.envelope('fan.null', '{}'), ARRAY[NULL, $fan]::bigint[]);
	DO \$\$ BEGIN PERFORM integration._wake_worker_at_commit(); END \$\$;
	COMMIT;
	SELECT id FROM integration.webhook_events WHERE event = 'fan.null'});
poll_ok(
	"SELECT count(*) = 1 AND bool_and(status = 'delivered' AND endpoint_id = $fan) FROM integration.deliveries WHERE event_id = $with_null",
	'an event naming a NULL endpoint is delivered to the endpoint it also names');

# A delivery inserted by hand for an event not yet fanned out: the fan-out makes no
# second one, and neither it nor later events get stuck.
my $manual = q1(qq{
	BEGIN;
	INSERT INTO integration.webhook_events (event, payload, endpoint_ids)
	VALUES ('fan.manual', integration.envelope('fan.manual', '{}'), ARRAY[$fan]);
	INSERT INTO integration.deliveries (event_id, endpoint_id)
	SELECT id, $fan FROM integration.webhook_events WHERE event = 'fan.manual';
	DO \$\$ BEGIN PERFORM integration._wake_worker_at_commit(); END \$\$;
	COMMIT;
	SELECT id FROM integration.webhook_events WHERE event = 'fan.manual'});
q1(q{SELECT integration.publish_event('fan.after', '{"n": 1}')});
poll_ok(
	"SELECT count(*) = 1 AND bool_and(status = 'delivered') FROM integration.deliveries WHERE event_id = $manual",
	'the event with a hand-made delivery has that one delivery, delivered');
poll_ok(
	"SELECT count(*) = 1 FROM integration.deliveries d JOIN integration.webhook_events e ON e.id = d.event_id WHERE e.event = 'fan.after' AND d.status = 'delivered'",
	'and the event after it is delivered too');
is(q1("SELECT count(*) FROM integration.webhook_event_queue"), '0',
	'nothing is left to fan out');

########################################################################
# 15. An event that commits late, with a lower id than a backlog being drained: the
#     fan-out, which continues each full batch after its last event, still takes it.
########################################################################

my $late = register('late', receiver_url($recv, '/late'), '["late.*"]');
my $bg = $node->background_psql('postgres');
$bg->query_safe(q{BEGIN});
$bg->query_safe(q{SET LOCAL integration.tenant_id = 'acme'});
$bg->query_safe(q{SELECT integration.publish_event('late.first', '{}')});
my $late_id = $bg->query_safe(q{SELECT id FROM integration.webhook_events WHERE event = 'late.first'});
q1(q{SELECT count(integration.publish_event('late.bulk', jsonb_build_object('i', i))) FROM generate_series(1, 3000) i});
$bg->query_safe(q{COMMIT});
my $late_committed = time;
$bg->quit;
poll_ok("SELECT count(*) = 3001 FROM integration.deliveries WHERE endpoint_id = $late AND status = 'delivered'",
	'the backlog and the late event are delivered');
# Not delivered (or no delivery at all) reads as infinitely late.
my $late_s = q1(qq{SELECT coalesce(max(extract(epoch FROM d.delivered_at)), 'Infinity')
					 FROM integration.deliveries d
					WHERE d.endpoint_id = $late AND d.event_id = $late_id}) - $late_committed;
ok($late_s < 5, "the late event was delivered ${late_s} s after its commit, not at the idle recheck");

########################################################################
# 16. Retries that come due while a fan-out of many batches runs: none waits for the
#     idle recheck.  1,000 events each go to an endpoint that always answers 500
#     (3 attempts, 100 ms and 150 ms apart) and to one that answers 200.
########################################################################

my $always500 = register('always 500', receiver_url($recv, '/always500', status => 500),
	'["mixed.*"]', retry_schedule => '100ms, 150ms');
my $beside_ok = register('beside it', receiver_url($recv, '/mixedok'), '["mixed.*"]');
my $t_mixed = time;
q1(q{SELECT count(integration.publish_event('mixed.x', jsonb_build_object('i', i))) FROM generate_series(1, 1000) i});
poll_ok("SELECT count(*) = 1000 FROM integration.deliveries WHERE endpoint_id = $always500 AND status = 'failed' AND attempts = 3",
	'every delivery to the failing endpoint failed after its 3 attempts');
my $mixed_s = time - $t_mixed;
ok($mixed_s < 20, "all their retries ran as they came due (${mixed_s} s; a lost one waits for the 60 s recheck)");
is(q1("SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $beside_ok AND status = 'delivered'"),
	'1000', 'and the endpoint beside it got all 1,000');

########################################################################
# 17. Rows that change under a request in flight.  VACUUM FULL moves the delivery
#     rows, so their outcomes are written by key instead of by ctid; a delivery
#     deleted with its event leaves no attempt or log behind.
########################################################################

my $moving = register('moving', receiver_url($recv, '/moving', delay_ms => 1500), '["move.*"]');
q1(q{SELECT count(integration.publish_event('move.x', jsonb_build_object('i', i))) FROM generate_series(1, 3) i});
poll_ok("SELECT count(*) = 3 FROM integration.deliveries WHERE endpoint_id = $moving AND status = 'sending'",
	'three requests out');
my $ctids_before = q1("SELECT string_agg(ctid::text, ' ' ORDER BY id) FROM integration.deliveries WHERE endpoint_id = $moving");
$node->safe_psql('postgres', 'VACUUM FULL integration.deliveries');
isnt(q1("SELECT string_agg(ctid::text, ' ' ORDER BY id) FROM integration.deliveries WHERE endpoint_id = $moving"),
	$ctids_before, 'VACUUM FULL moved their rows');
poll_ok("SELECT count(*) = 3 FROM integration.deliveries WHERE endpoint_id = $moving AND status = 'delivered'",
	'their outcomes are written all the same');
is(scalar(requests_to('/moving')), 3, 'each was sent once');

# A result belongs to its claim: a row claimed again meanwhile (by hand here: another
# lease, and the row moves) does not take the old claim's outcome.
my $reclaimed = register('reclaimed', receiver_url($recv, '/reclaimed', delay_ms => 1500), '["reclaim.*"]');
q1(q{SELECT integration.publish_event('reclaim.x', '{}')});
poll_ok("SELECT count(*) = 1 FROM integration.deliveries WHERE endpoint_id = $reclaimed AND status = 'sending'",
	'a request out');
q1("UPDATE integration.deliveries SET lease_expires_at = lease_expires_at + interval '1 hour' WHERE endpoint_id = $reclaimed");
poll_ok("SELECT in_flight = 0 FROM integration.worker_status() WHERE role = 'delivery'", 'its answer came back');
is(q1("SELECT status || ' ' || attempts FROM integration.deliveries WHERE endpoint_id = $reclaimed"),
	'sending 0', "the old claim's outcome is not written over the new claim");
q1("UPDATE integration.deliveries SET status = 'failed', last_error = 'given up by the test', lease_expires_at = NULL WHERE endpoint_id = $reclaimed");

my $doomed = register('doomed', receiver_url($recv, '/doomed', status => 500, delay_ms => 1000), '["doom.*"]');
q1(q{SELECT integration.publish_event('doom.x', '{}')});
poll_ok("SELECT count(*) = 1 FROM integration.deliveries WHERE endpoint_id = $doomed AND status = 'sending'",
	'a request out to an endpoint that will answer 500');
my $doomed_id = q1("SELECT id FROM integration.deliveries WHERE endpoint_id = $doomed");
q1("DELETE FROM integration.webhook_events WHERE event = 'doom.x'");
# worker_status() counts a request out of flight once its result went through a
# store transaction.
poll_ok("SELECT in_flight = 0 FROM integration.worker_status() WHERE role = 'delivery'",
	'the receiver answered it after its event was deleted');
is(scalar(requests_to('/doomed')), 1, 'one request');
is(q1("SELECT count(*) FROM integration.integration_logs WHERE context ->> 'delivery_id' = '$doomed_id'")
	  . ' ' . q1("SELECT count(*) FROM integration.delivery_attempts WHERE delivery_id = $doomed_id"),
	'0 0', 'no log line and no attempt for the deleted delivery');

########################################################################
# 18. A change to an endpoint applies to its deliveries that are claimed and wait
#     for a slot.  40 events go to each of two slow endpoints, 16 requests at a time
#     (integration.max_concurrency_per_endpoint); while the first 16 are out, one
#     endpoint gets a new URL and the other is disabled.
########################################################################

my $re_url = register('new url', receiver_url($recv, '/url-old', delay_ms => 1500), '["chg.url"]');
my $re_off = register('switched off', receiver_url($recv, '/url-off', delay_ms => 1500), '["chg.off"]');
q1(q{SELECT count(integration.publish_event(e, jsonb_build_object('i', i)))
	   FROM generate_series(1, 40) i, unnest(ARRAY['chg.url', 'chg.off']) e});
poll_ok("SELECT count(*) = 80 FROM integration.deliveries WHERE endpoint_id IN ($re_url, $re_off) AND status = 'sending'",
	'all 80 deliveries are claimed');
q1(qq{SELECT integration.update_webhook(id => $re_url, url => '@{[receiver_url($recv, '/url-new')]}')});
q1("SELECT integration.update_webhook(id => $re_off, is_active => false)");
poll_ok("SELECT count(*) = 80 FROM integration.deliveries WHERE endpoint_id IN ($re_url, $re_off) AND status IN ('delivered', 'failed')",
	'all 80 are done');
is(scalar(requests_to('/url-old')) . ' old, ' . scalar(requests_to('/url-new')) . ' new',
	'16 old, 24 new', 'the 24 that waited for a slot went to the new URL');
is(scalar(requests_to('/url-off')), 16, 'only the 16 already out reached the disabled endpoint');
is(q1("SELECT count(*) FILTER (WHERE status = 'delivered') || ' delivered, ' || count(*) FILTER (WHERE status = 'failed') || ' failed' FROM integration.deliveries WHERE endpoint_id = $re_off"),
	'16 delivered, 24 failed', 'the others failed as sent to a disabled endpoint');

# While the worker cannot read the endpoints (a table lock: every store transaction
# fails), what waits for a slot does not go out with settings known to be old.
my $re_url2 = register('new url under a lock', receiver_url($recv, '/url2-old', delay_ms => 1500), '["chg.url2"]');
q1(q{SELECT count(integration.publish_event('chg.url2', jsonb_build_object('i', i))) FROM generate_series(1, 40) i});
poll_ok("SELECT count(*) = 40 FROM integration.deliveries WHERE endpoint_id = $re_url2 AND status = 'sending'",
	'40 claimed, 16 of them out');
my $table_lock = $node->background_psql('postgres');
$table_lock->query_safe('BEGIN');
$table_lock->query_safe('LOCK TABLE integration.deliveries IN ACCESS EXCLUSIVE MODE');
q1(qq{SELECT integration.update_webhook(id => $re_url2, url => '@{[receiver_url($recv, '/url2-new')]}')});
usleep(2_500_000);    # the first 16 answer meanwhile, and their slots come free
$table_lock->query_safe('COMMIT');
$table_lock->quit;
poll_ok("SELECT count(*) = 40 FROM integration.deliveries WHERE endpoint_id = $re_url2 AND status = 'delivered'",
	'all 40 are delivered once the lock is gone');
is(scalar(requests_to('/url2-old')) . ' old, ' . scalar(requests_to('/url2-new')) . ' new',
	'16 old, 24 new', 'none of those waiting went out with the old URL');

# The worker's last error (the lock timeout above) can come from any tenant's work: it
# is shown to roles with the privileges of pg_read_all_stats, as pg_stat_activity shows
# other roles' queries, and to no one else.
like($node->safe_psql('postgres', "SELECT last_error FROM integration.worker_status() WHERE role = 'delivery'"),
	qr/^canceling statement due to lock timeout$/, 'a superuser sees the worker\'s last error');
create_app_role($node, 'status_reader');
my $status_as_app = q{SET ROLE status_reader; SELECT concat_ws('|', state IS NOT NULL, last_error IS NULL, last_error_at IS NULL)
	FROM integration.workers WHERE role = 'delivery'};
is($node->safe_psql('postgres', $status_as_app), 't|t|t',
	'an application role sees the worker\'s state but not its last error');
$node->safe_psql('postgres', 'GRANT pg_read_all_stats TO status_reader');
is($node->safe_psql('postgres', $status_as_app), 't|f|f', 'a member of pg_read_all_stats sees it');

########################################################################
# 19. A row lock another session holds for long stalls nobody else: one on a
#     delivery whose request is out, one FOR UPDATE on an endpoint.  The worker
#     waits a second for each (lock_timeout), then goes around them, and comes
#     back to them once they are released.
########################################################################

my $held_d = register('held delivery', receiver_url($recv, '/held-d', delay_ms => 500), '["held.d"]');
my $held_e = register('held endpoint', receiver_url($recv, '/held-e'), '["held.e"]');
my $free = register('free', receiver_url($recv, '/free'), '["free.*"]');
q1(q{SELECT integration.publish_event('held.d', '{}')});
poll_ok("SELECT count(*) = 1 FROM integration.deliveries WHERE endpoint_id = $held_d AND status = 'sending'",
	'a request out');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe("SELECT id FROM integration.deliveries WHERE endpoint_id = $held_d FOR UPDATE");
$locker->query_safe("SELECT id FROM integration.webhook_endpoints WHERE id = $held_e FOR UPDATE");
# More than 16 fan-out batches (64 each) wait for the locked endpoint: the worker
# must get past them, and not take them up again and again.
q1(q{SELECT count(integration.publish_event('held.e', jsonb_build_object('i', i))) FROM generate_series(1, 1100) i});
my $t_held = time;
q1(q{SELECT count(integration.publish_event('free.x', jsonb_build_object('i', i))) FROM generate_series(1, 20) i});
poll_ok("SELECT count(*) = 20 FROM integration.deliveries WHERE endpoint_id = $free AND status = 'delivered'",
	'other deliveries go out while the locks are held');
my $held_s = time - $t_held;
ok($held_s < 10, "within ${held_s} s");
is(q1("SELECT status FROM integration.deliveries WHERE endpoint_id = $held_d"), 'sending',
	'the locked delivery keeps its outcome for later');
is(q1("SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $held_e"), '0',
	'the events for the locked endpoint wait in the queue');
$worker_pid = q1("SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
$ticks0 = cpu_ticks();
# New events meanwhile wake fan-outs: they go out, and the held ones stay put.
q1(q{SELECT integration.publish_event('free.y', '{}')}) for 1 .. 5;
usleep(1_500_000);
$ticks = cpu_ticks() - $ticks0;
ok($ticks < 40, "and the worker does not spin on them ($ticks CPU ticks in 1.5 s)");
poll_ok("SELECT count(*) = 25 FROM integration.deliveries WHERE endpoint_id = $free AND status = 'delivered'",
	'events published meanwhile go out too');
$locker->query_safe('COMMIT');
$locker->quit;
poll_ok("SELECT status = 'delivered' FROM integration.deliveries WHERE endpoint_id = $held_d",
	'once the lock is gone, the outcome is written');
poll_ok("SELECT count(*) = 1100 AND bool_and(status = 'delivered') FROM integration.deliveries WHERE endpoint_id = $held_e",
	'and the held events are fanned out and delivered');
is(scalar(requests_to('/held-d')) . ' ' . scalar(requests_to('/held-e')), '1 1100', 'each sent once');

########################################################################
# 19b. An event row another session holds locked (FOR UPDATE, as a DELETE of it not
#      yet committed would): its fan-out waits for the lock, nothing else does, and
#      the worker takes it once the lock is released.
########################################################################

my $held_ev_ep = register('held event', receiver_url($recv, '/held-ev'), '["held.ev"]');
# The endpoint locked first, so the event waits in the queue; then the event locked by
# a second session, and the endpoint released: the fan-out's retries meet the event.
my $ep_locker = $node->background_psql('postgres');
$ep_locker->query_safe('BEGIN');
$ep_locker->query_safe("SELECT id FROM integration.webhook_endpoints WHERE id = $held_ev_ep FOR UPDATE");
q1(q{SELECT integration.publish_event('held.ev', '{"locked": true}')});
usleep(300_000);
my $ev_locker = $node->background_psql('postgres');
$ev_locker->query_safe('BEGIN');
$ev_locker->query_safe(q{SELECT id FROM integration.webhook_events WHERE event = 'held.ev' FOR UPDATE});
$ep_locker->query_safe('COMMIT');
$ep_locker->quit;
is(q1("SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $held_ev_ep"), '0',
	'the event whose endpoint was locked is still queued');
q1(q{SELECT count(integration.publish_event('free.z', jsonb_build_object('i', i))) FROM generate_series(1, 10) i});
poll_ok("SELECT count(*) = 10 FROM integration.deliveries d JOIN integration.webhook_events e"
	  . " ON e.tenant_id = d.tenant_id AND e.id = d.event_id"
	  . " WHERE d.endpoint_id = $free AND e.event = 'free.z' AND d.status = 'delivered'",
	'events published after a locked one go out while it is held');
$ev_locker->query_safe('COMMIT');
$ev_locker->quit;
poll_ok("SELECT count(*) = 1 AND bool_and(status = 'delivered') FROM integration.deliveries WHERE endpoint_id = $held_ev_ep",
	'the locked event is delivered once the lock is gone');
is(scalar(requests_to('/held-ev')), 1, 'once');

########################################################################
# 20. Bindings of roles to tenants leave the worker (a superuser) alone: a bound role's
#     event, published with no tenant set, and another tenant's go out alike.
########################################################################

$node->safe_psql('postgres', q{
	CREATE ROLE bound_acme NOLOGIN;
	GRANT USAGE ON SCHEMA integration TO bound_acme;
	GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO bound_acme;
	GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO bound_acme;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO bound_acme;
	SELECT integration.bind_role('bound_acme', 'acme');
});
my $bound_ep = register('bound', receiver_url($recv, '/bound'), '["bound.*"]');
my $bound_url = receiver_url($recv, '/bound-globex');
my $globex_ep = tenant_psql($node, qq{
	SELECT id FROM integration.register_webhook(name => 'globex', url => '$bound_url',
		events => '["bound.*"]')}, 'globex');
is($node->safe_psql('postgres', q{SET ROLE bound_acme;
	SELECT integration.publish_event('bound.x', '{"by": "bound_acme"}')}), '1',
	'a role bound to acme publishes with no tenant set');
tenant_psql($node, q{SELECT integration.publish_event('bound.x', '{"by": "globex"}')}, 'globex');
poll_ok("SELECT count(*) = 2 AND bool_and(status = 'delivered') FROM integration.deliveries"
	  . " WHERE endpoint_id IN ($bound_ep, $globex_ep) AND tenant_id IN ('acme', 'globex')",
	'the worker delivers both');
is(scalar(requests_to('/bound')) . ' ' . scalar(requests_to('/bound-globex')), '1 1', 'once each');

stop_receiver($recv);
$node->stop;
done_testing();
