# Retention run by the worker on its own schedule (src/retention.c), with periods of
# seconds: finished deliveries, their attempts and events, and log rows go once their
# period has passed, and not before; a delivery waiting for a retry, and its event,
# stay, however old.  Nothing here calls integration.purge_expired().

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $period = 6;
my $node = new_integration_node('retention',
	"integration.retention_delivered = '${period}s'",
	"integration.retention_failed = '${period}s'",
	"integration.retention_logs = '${period}s'",
	"integration.retention_interval = '1s'",
	"integration.retry_schedule = '100ms, 100ms'");
my $recv = start_receiver();

sub q1 { return tenant_psql($node, $_[0]); }

sub register
{
	my ($name, $url, $events, $schedule) = @_;
	my $id = q1(qq{SELECT id FROM integration.register_webhook('$name', '$url', '$events')});
	q1("UPDATE integration.webhook_endpoints SET retry_schedule = '$schedule' WHERE id = $id")
	  if defined $schedule;
	return $id;
}

# ok answers 200; bad 500 (failed after three attempts); waiting 500 with an hour
# before its retry, so its deliveries stay pending.
my $ok = register('ok', receiver_url($recv, '/ok'), '["order.created", "order.both"]');
my $bad = register('bad', receiver_url($recv, '/bad', status => 500), '["order.failed"]');
my $waiting = register('waiting', receiver_url($recv, '/waiting', status => 500),
	'["order.waiting", "order.both"]', '1h');

# Publishes the events of one batch, each with the batch's name in its payload.
sub publish_batch
{
	my ($batch) = @_;
	q1(qq{
		SELECT integration.publish_event(e, jsonb_build_object('batch', '$batch', 'n', n))
		  FROM (VALUES ('order.created', 1), ('order.created', 2), ('order.failed', 3),
					   ('order.waiting', 4), ('order.both', 5)) AS v(e, n)});
	ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) FILTER (WHERE d.status = 'delivered') = 3
		   AND count(*) FILTER (WHERE d.status = 'failed') = 1
		   AND count(*) FILTER (WHERE d.status = 'pending' AND d.attempts = 1) = 2
		  FROM integration.deliveries d
		  JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
		 WHERE e.payload::jsonb -> 'data' ->> 'batch' = '$batch'}),
		"batch $batch: 3 delivered, 1 failed after its attempts, 2 waiting for a retry");
	return;
}

# What is left of a batch: each event with its deliveries, "endpoint:status", and the
# number of their attempts recorded.
sub batch_state
{
	my ($batch) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT e.event || ' ' || coalesce(string_agg(
				   CASE d.endpoint_id WHEN $ok THEN 'ok' WHEN $bad THEN 'bad' ELSE 'waiting' END
				   || ':' || d.status, ',' ORDER BY d.endpoint_id), '-')
			   || ' attempts=' || coalesce(sum((SELECT count(*) FROM integration.delivery_attempts a
												 WHERE a.tenant_id = d.tenant_id
												   AND a.delivery_id = d.id)), 0)
		  FROM integration.webhook_events e
		  LEFT JOIN integration.deliveries d ON d.tenant_id = e.tenant_id AND d.event_id = e.id
		 WHERE e.payload::jsonb -> 'data' ->> 'batch' = '$batch'
		 GROUP BY e.id, e.event ORDER BY e.id});
}

my $full = join("\n",
	'order.created ok:delivered attempts=0',
	'order.created ok:delivered attempts=0',
	'order.failed bad:failed attempts=3',
	'order.waiting waiting:pending attempts=1',
	'order.both ok:delivered,waiting:pending attempts=1');
my $kept = join("\n",
	'order.waiting waiting:pending attempts=1',
	'order.both waiting:pending attempts=1');

my $pid = $node->safe_psql('postgres', 'SELECT pid FROM integration.workers');

########################################################################
# 1. Batch A expires; batch B, published half a period later, is still whole when A
#    is gone.
########################################################################

publish_batch('A');
is(batch_state('A'), $full, 'batch A: every delivery and attempt recorded');
usleep(int(($period / 2) * 1_000_000));
publish_batch('B');
my $b_published = time();

ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.deliveries d
							 JOIN integration.webhook_events e
							   ON e.tenant_id = d.tenant_id AND e.id = d.event_id
							WHERE e.payload::jsonb -> 'data' ->> 'batch' = 'A'
							  AND d.status IN ('delivered', 'failed'))}),
	'the worker removes batch A\'s finished deliveries on its own');
my $b_state = batch_state('B');
my $b_logs = $node->safe_psql('postgres', q{
	SELECT count(*) FROM integration.integration_logs l
	 WHERE (l.context ->> 'delivery_id')::bigint IN (
		   SELECT d.id FROM integration.deliveries d
			 JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
			WHERE e.payload::jsonb -> 'data' ->> 'batch' = 'B')});
my $b_age = time() - $b_published;
is(batch_state('A'), $kept,
	'batch A: what is left is the deliveries waiting for a retry, their attempts and their events');
SKIP:
{
	skip sprintf('batch B is %.1f s old already (a slow machine)', $b_age), 2
	  if $b_age > $period - 0.5;
	is($b_state, $full, sprintf('batch B, %.1f s old, is whole', $b_age));
	# bad: two retries and the failure; waiting: one retry each.
	is($b_logs, '5', 'and so are the log rows of its failed attempts');
}

# Log rows go after the period too, whatever they are about.
ok( $node->poll_query_until('postgres', qq{
		SELECT NOT EXISTS (SELECT FROM integration.integration_logs
							WHERE created_at < now() - interval '@{[$period + 3]} s')}),
	'no log row is kept much longer than the period');

########################################################################
# 2. Batch B goes the same way; the kept rows of both batches stay.
########################################################################

ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 4 AND bool_and(d.status = 'pending')
		  FROM integration.deliveries d}),
	'batch B\'s finished deliveries go too: four pending deliveries are left');
is(batch_state('B'), $kept, 'batch B: the waiting deliveries and their events stay');
is(batch_state('A'), $kept, 'batch A: still the same');
is($node->safe_psql('postgres', 'SELECT count(*) FROM integration.webhook_events'), '4',
	'four events are left, each with a pending delivery');

########################################################################
# 3. Once a kept delivery finishes, it and then its event go at a later pass; an
#    event goes only with its last delivery.
########################################################################

$node->safe_psql('postgres', qq{
	UPDATE integration.deliveries d
	   SET status = 'delivered', next_attempt_at = NULL, delivered_at = now() - interval '1 hour'
	  FROM integration.webhook_events e
	 WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id
	   AND e.payload::jsonb -> 'data' ->> 'batch' = 'A' AND e.event = 'order.waiting'});
ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.webhook_events e
							WHERE e.payload::jsonb -> 'data' ->> 'batch' = 'A'
							  AND e.event = 'order.waiting')}),
	'a kept delivery that finished goes, and its event with it');
is(batch_state('A'), 'order.both waiting:pending attempts=1',
	'the other event of batch A stays with its pending delivery');

########################################################################
# 4. The worker kept delivering throughout: same process, a fresh event is delivered
#    at once, and no retention transaction failed.
########################################################################

is($node->safe_psql('postgres', 'SELECT pid FROM integration.workers'), $pid,
	'the same worker ran throughout');
q1(q{SELECT integration.publish_event('order.created', '{"batch": "C"}')});
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM integration.deliveries d
		  JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
		 WHERE e.payload::jsonb -> 'data' ->> 'batch' = 'C' AND d.status = 'delivered'}),
	'a fresh event is delivered');
my $log = slurp_file($node->logfile);
unlike($log, qr/removing expired rows failed/, 'no retention transaction failed');
unlike($log, qr/TRAP|terminated by signal/, 'no crash');

stop_receiver($recv);
$node->stop;
done_testing();
