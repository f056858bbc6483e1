# Auto-disable and replay (issue #15, item 5), with the real worker and receivers on
# loopback:
#   1. an endpoint whose receiver is gone (connections refused) fails every attempt; the
#      worker disables it once that has lasted integration.disable_after (3 s here), not
#      before, and records why and when; a streak of failures that ends in a success
#      is forgotten;
#   2. the tenant's other endpoint that subscribes to endpoint.disabled receives that
#      event; the disabled endpoint does not, nor does another tenant's subscriber;
#   3. events keep being published while it is disabled: they are recorded for it as
#      skipped, and nothing is sent to it, even once its receiver is back;
#   4. enable_webhook(replay_since) sends exactly the events published since then that it
#      did not receive: the receiver gets each of their webhook-ids once, and no other.
# The failing endpoint's circuit opens (3 failed requests) long before disable_after:
# the worker disables it at the first failed probe after that, closes its circuit, and
# skips at once what the circuit held.

use strict;
use warnings;

use IntegrationTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('disable',
	"integration.retry_schedule = '300ms, 300ms, 300ms'",
	"integration.disable_after = '3s'",
	"integration.circuit_min_requests = 3",
	"integration.circuit_cooldown = '1s'");

sub q1 { return $node->safe_psql('postgres', $_[0]); }

my $recv = start_receiver();
my $port = $recv->{port};
my $watch = start_receiver();
my $a_url = receiver_url($recv, '/a');

my $ep = tenant_psql($node, "SELECT id FROM integration.register_webhook('shop', '$a_url', '[\"order.*\"]')");
my ($watcher, $watcher_secret) = split /\|/, tenant_psql($node,
	"SELECT id || '|' || secret FROM integration.register_webhook('ops', '" . receiver_url($watch, '/ops')
	  . "', '[\"endpoint.disabled\"]')");
tenant_psql($node,
	"SELECT id FROM integration.register_webhook('other', '" . receiver_url($watch, '/other')
	  . "', '[\"endpoint.disabled\", \"order.*\"]')", 'other-tenant');
is(q1("SELECT setting || unit FROM pg_settings WHERE name = 'integration.disable_after'"), '3s',
	'integration.disable_after is 3 s');

sub publish
{
	my ($n) = @_;
	return tenant_psql($node, "SELECT integration.publish_event('order.created', '{\"n\": $n}')");
}

sub deliveries_of
{
	my ($where) = @_;
	return q1("SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $ep AND $where");
}

########################################################################
# 1. Healthy, then failing until disabled.
########################################################################

publish(0);
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM integration.deliveries WHERE endpoint_id = $ep AND status = 'delivered'"),
	'event 0 is delivered while the receiver is up');
is(q1("SELECT count(*) FROM integration.endpoint_failures"), '0', 'no streak of failures while it succeeds');

# A streak that ends in a success goes away: two 503s, then 200.
my $flaky = tenant_psql($node, "SELECT id FROM integration.register_webhook('flaky', '"
	  . receiver_url($watch, '/flaky', status => '503x2') . "', '[\"flaky.*\"]')");
tenant_psql($node, "SELECT integration.publish_event('flaky.x', '{}')");
ok($node->poll_query_until('postgres', "SELECT status = 'delivered' AND attempts = 3 FROM integration.deliveries WHERE endpoint_id = $flaky"),
	'a flaky endpoint fails twice, then delivers');
is(q1("SELECT count(*) FROM integration.endpoint_failures WHERE endpoint_id = $flaky"), '0',
	'its streak of failures ended with the success');
is(q1("SELECT count(*) FROM integration.delivery_attempts a JOIN integration.deliveries d
		ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id WHERE d.endpoint_id = $flaky"), '2',
	'after two failed attempts');

stop_receiver($recv);
my $n = 1;
publish($n);
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM integration.endpoint_failures WHERE endpoint_id = $ep"),
	'the first failure starts a streak');

# One event every 300 ms, so that attempts keep failing past disable_after.
my $deadline = time() + 20;
while (time() < $deadline && q1("SELECT is_active FROM integration.webhook_endpoints WHERE id = $ep") eq 't')
{
	usleep(300_000);
	publish(++$n);
}
my $last_before = $n;
is(q1("SELECT is_active FROM integration.webhook_endpoints WHERE id = $ep"), 'f',
	"the worker disabled the endpoint (after $n events)");
my ($reason, $held_for, $shown) = split /\|/, tenant_psql($node,
	"SELECT w.disabled_reason, extract(epoch FROM w.disabled_at - f.failing_since) >= 3,
			s.disabled_at = w.disabled_at AND s.disabled_reason = w.disabled_reason AND NOT s.is_active
	   FROM integration.webhook_endpoints w
	   JOIN integration.endpoint_failures f ON f.tenant_id = w.tenant_id AND f.endpoint_id = w.id
	  CROSS JOIN LATERAL (SELECT * FROM integration.show_webhook(w.id)) s
	  WHERE w.id = $ep AND w.tenant_id = integration.current_tenant()");
like($reason, qr/^every attempt failed for longer than integration\.disable_after \(3s\), since \d{4}-/,
	'disabled_reason says why');
is($held_for, 't', 'not before its attempts had failed for 3 s');
is($shown, 't', 'show_webhook() shows it disabled, with the reason and the time');
is(q1("SELECT count(*) FROM integration.integration_logs WHERE event = 'webhook.disabled'
		AND (context ->> 'endpoint_id')::bigint = $ep AND level = 'warning' AND source = 'worker'"),
	'1', 'one webhook.disabled log row');
is(deliveries_of("status = 'delivered'"), '1', 'only event 0 was delivered');

# Its circuit opened first (3 failed requests), probed once a cooldown (1 s, 2 s, ...),
# and the first failed probe after disable_after disabled it, and closed it.
like(q1("SELECT string_agg(event, ',' ORDER BY id) FROM integration.integration_logs
		WHERE (event LIKE 'circuit.%' OR event = 'webhook.disabled') AND context ->> 'endpoint_id' = '$ep'
		  AND id <= (SELECT id FROM integration.integration_logs WHERE event = 'webhook.disabled')"),
	qr/^circuit\.opened,(circuit\.half_opened,circuit\.opened,)*circuit\.half_opened,webhook\.disabled$/,
	'its circuit opened; a failed probe disabled it');
ok($node->poll_query_until('postgres', "SELECT circuit = 'closed' FROM integration.endpoint_health WHERE endpoint_id = $ep"),
	'then its circuit is closed');
is(q1("SELECT message FROM integration.integration_logs WHERE event = 'circuit.closed'
		AND context ->> 'endpoint_id' = '$ep' ORDER BY id DESC LIMIT 1"),
	"webhook $ep: circuit closed: the worker disabled the endpoint", 'saying why');

########################################################################
# 2. endpoint.disabled, to the tenant's subscriber only.
########################################################################

my @got = wait_for_requests($watch, 1, 15, sub { $_[0]{path_only} eq '/ops' });
is(scalar @got, 1, 'the tenant\'s other endpoint received endpoint.disabled');
my $body = decode_json($got[0]{body});
is($body->{type}, 'endpoint.disabled', 'of type endpoint.disabled');
is($body->{data}{endpoint_id}, $ep, 'about the disabled endpoint');
is($body->{data}{reason}, $reason, 'with the reason');
is($body->{data}{url}, $a_url, 'and its url');
ok(defined $body->{data}{failing_since} && defined $body->{data}{disabled_at},
	'and since when it failed, and when it was disabled');
ok(verify_signature($watcher_secret, $got[0]{headers}, $got[0]{body}),
	'signed with the subscriber\'s secret, like every delivery');
is(q1("SELECT count(*) FROM integration.webhook_events e WHERE e.event = 'endpoint.disabled'
		AND $ep = ANY (e.endpoint_ids)"), '0', 'the disabled endpoint is not sent its own endpoint.disabled');
is(q1("SELECT count(*) FROM integration.webhook_events WHERE tenant_id = 'other-tenant'"), '0',
	'another tenant gets nothing');
is(scalar(grep { $_->{path_only} eq '/other' } read_log_settled($watch)), 0,
	'and its subscriber receives nothing');

########################################################################
# 3. Published while disabled: skipped, and nothing is sent.
########################################################################

for (1 .. 3)
{
	publish(++$n);
}
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM integration.webhook_event_queue)
	   AND NOT EXISTS (SELECT FROM integration.deliveries WHERE endpoint_id = $ep AND status IN ('pending', 'sending'))"),
	'every delivery to it is settled: failed or skipped');
my $since_disabled = q1("SELECT count(*) FROM integration.webhook_events e
	  WHERE e.tenant_id = 'acme' AND e.event = 'order.created' AND (e.payload::jsonb #>> '{data,n}')::int > $last_before");
is($since_disabled, '3', 'three events published while disabled');
is(q1("SELECT string_agg(DISTINCT d.status || '/' || d.attempts || '/' || d.last_error, ',')
		 FROM integration.deliveries d JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
		WHERE d.endpoint_id = $ep AND (e.payload::jsonb #>> '{data,n}')::int > $last_before"),
	'skipped/0/skipped: the endpoint is disabled', 'recorded as skipped, without an attempt');
cmp_ok(deliveries_of("status = 'skipped' AND attempts > 0"), '>', 0,
	'retries that came due after the disable were skipped too (by the claim, checked under the endpoint\'s lock)');
is(q1("SELECT count(*) FROM integration.delivery_attempts a JOIN integration.deliveries d
		ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id WHERE d.endpoint_id = $ep AND d.status = 'skipped'
		AND a.started_at > (SELECT disabled_at FROM integration.webhook_endpoints WHERE id = $ep)"),
	'0', 'and no attempt is recorded for a skipped delivery after the disable');

# The receiver comes back, on the same port: nothing reaches it while disabled.
$recv = start_receiver(port => $port);
publish(++$n);
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM integration.webhook_event_queue)"),
	'one more event fanned out');
usleep(500_000);
is(scalar(read_log_settled($recv)), 0, 'the disabled endpoint is sent nothing, its receiver back or not');

########################################################################
# 4. enable_webhook(replay_since): exactly the missed events.
########################################################################

# From event 2 on: event 0 was delivered, and event 1 is older than replay_since.
my $since = q1("SELECT e.created_at FROM integration.webhook_events e
	  WHERE e.tenant_id = 'acme' AND e.event = 'order.created' AND e.payload::jsonb #>> '{data,n}' = '2'");
my @expected = sort split /\n/, q1("SELECT e.message_id FROM integration.webhook_events e
	  WHERE e.tenant_id = 'acme' AND e.event = 'order.created' AND e.created_at >= '$since'");
is(scalar @expected, $n - 1, "events 2 to $n were published since then");
my $status_1 = q1("SELECT d.status FROM integration.deliveries d JOIN integration.webhook_events e
	  ON e.tenant_id = d.tenant_id AND e.id = d.event_id WHERE d.endpoint_id = $ep AND e.payload::jsonb #>> '{data,n}' = '1'");

is(tenant_psql($node, "SELECT integration.enable_webhook($ep, replay_since => '$since')"),
	scalar @expected, 'enable_webhook() requeues ' . scalar(@expected) . ' deliveries');
is(q1("SELECT is_active::text || coalesce(disabled_reason, '-') || coalesce(disabled_at::text, '-')
		 FROM integration.webhook_endpoints WHERE id = $ep"), 'true--', 'enabled, reason and time cleared');
is(q1("SELECT count(*) FROM integration.endpoint_failures WHERE endpoint_id = $ep"), '0', 'its streak is over');

my @arrived = wait_for_requests($recv, scalar @expected, 20);
ok($node->poll_query_until('postgres', "SELECT count(*) = " . scalar(@expected) . " FROM integration.deliveries
	  WHERE endpoint_id = $ep AND status = 'delivered' AND created_at >= '$since'"),
	'all of them delivered');
usleep(500_000);    # room for a request too many, were one sent twice
@arrived = read_log_settled($recv);
my @ids = sort map { $_->{headers}{'webhook-id'} } @arrived;
is_deeply(\@ids, \@expected, 'the receiver got exactly the missed events, each once, with their webhook-ids');
ok(!(grep { decode_json($_->{body})->{type} ne 'order.created' } @arrived), 'and nothing else');
is(q1("SELECT d.status FROM integration.deliveries d JOIN integration.webhook_events e
	  ON e.tenant_id = d.tenant_id AND e.id = d.event_id WHERE d.endpoint_id = $ep AND e.payload::jsonb #>> '{data,n}' = '1'"),
	$status_1, "event 1, older than replay_since, stays $status_1");
is(q1("SELECT count(*) FROM integration.integration_logs WHERE event = 'webhook.enabled'
		AND (context ->> 'requeued')::int = " . scalar(@expected)), '1', 'webhook.enabled is logged with the count');

# Enabled, it gets new events again, and delivers them.
publish(++$n);
@arrived = wait_for_requests($recv, scalar(@expected) + 1, 10);
is(scalar @arrived, scalar(@expected) + 1, 'a new event is delivered at once');

unlike(slurp_file($node->logfile), qr/integration worker: .* failed:/,
	'no transaction of the worker failed');

stop_receiver($recv);
stop_receiver($watch);
$node->stop;
done_testing();
