# Fairness of the worker's scheduler with a hostile tenant beside a healthy one:
#   1. tenant B queues 2,000 events to an endpoint that answers in 3 s; tenant A's
#      fresh event to a healthy endpoint still goes out at once;
#   2. tenant C's endpoints accept connections and never answer; they hold at most
#      C's share of the request slots, and A's deliveries still go out at once;
#   3. while tenant D's 1,000,000-event backlog drains to a fast endpoint, each of
#      A's fresh events arrives within a second of its commit.
# Each latency is measured in the database: the delivery's delivered_at minus its
# event's created_at (the publishing transaction's start).

# test/run: alone (its checks bound latencies beside other tenants' backlogs).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('fairness',
	'integration.max_concurrency = 64',
	'integration.max_concurrency_per_endpoint = 16',
	"integration.retry_schedule = '1h'");
my $recv = start_receiver();

sub register { return register_for($node, @_); }

# Publishes one event for acme and returns its seconds from commit to delivery, or undef.
sub fresh_latency { return fresh_delivery_seconds($node, 'acme', $_[0], $_[1], 20); }

my $a_ep = register('acme', 'healthy', receiver_url($recv, '/healthy'), '["fresh.*"]');

########################################################################
# 1. A slow endpoint's backlog.
########################################################################

my $slow = register('slowco', 'slow', receiver_url($recv, '/slow', delay_ms => 3000), '["slow.*"]');
tenant_psql($node, q{SELECT integration.publish_event('slow.x', jsonb_build_object('i', i))
					  FROM generate_series(1, 2000) i}, 'slowco');
# The slow endpoint has its 16 requests in flight.
my @slow = wait_for_requests($recv, 16, 10, sub { $_[0]{path_only} eq '/slow' });
is(scalar @slow, 16, 'the slow endpoint has its 16 requests in flight');
my $lat = fresh_latency($a_ep, 1);
ok(defined $lat && $lat < 1.0,
	'beside a 2,000-event backlog to a 3 s endpoint, a fresh event arrives within 1 s ('
	  . ($lat // 'never') . ' s)');
is($node->safe_psql('postgres',
		"SELECT count(*) < 100 FROM integration.deliveries WHERE endpoint_id = $slow AND status = 'delivered'"),
	't', 'while the slow backlog is still draining');

# Out of the way for the next part: its requests in flight end within 3 s.
tenant_psql($node, "SELECT integration.update_webhook($slow, is_active => false)", 'slowco');
ok($node->poll_query_until('postgres',
		"SELECT in_flight = 0 FROM integration.worker_status() WHERE role = 'delivery' AND database = 'postgres'"),
	'the slow endpoint, disabled, holds no request slot');

########################################################################
# 2. Endpoints that never answer hold at most their tenant's share.
########################################################################

$node->safe_psql('postgres', 'ALTER SYSTEM SET integration.request_timeout = 20000');
$node->reload;
my @hang;
for my $k (1 .. 4)
{
	push @hang, register('hangco', "hang$k", receiver_url($recv, "/hang$k", hang => 1), '["hang.*"]');
}
tenant_psql($node, q{SELECT integration.publish_event('hang.x', jsonb_build_object('i', i))
					  FROM generate_series(1, 50) i}, 'hangco');
my @hanging = wait_for_requests($recv, 48, 15, sub { $_[0]{path_only} =~ m{^/hang} });
is(scalar @hanging, 48, 'four hanging endpoints of one tenant get 48 requests in flight');
usleep(500_000);    # room for a 49th request, were the cap wrong
@hanging = read_log_settled($recv);
is(scalar(grep { $_->{path_only} =~ m{^/hang} } @hanging), 48,
	'and no more: integration.max_concurrency_per_tenant is three quarters of 64');
$lat = fresh_latency($a_ep, 2);
ok(defined $lat && $lat < 1.0,
	'beside 48 hanging requests of another tenant, a fresh event arrives within 1 s ('
	  . ($lat // 'never') . ' s)');
$lat = fresh_latency($a_ep, 3);
ok(defined $lat && $lat < 1.0, 'and the next one too (' . ($lat // 'never') . ' s)');
for my $id (@hang)
{
	tenant_psql($node, "SELECT integration.update_webhook($id, is_active => false)", 'hangco');
}

########################################################################
# 3. A million-event backlog to a fast endpoint of another tenant, published by one
#    bulk INSERT into a tracked table.
########################################################################

my $fast = register('bulkco', 'fast', receiver_url($recv, '/fast'), '["bulk.*"]');
$node->safe_psql('postgres', q{
	CREATE TABLE bulk_orders (tenant_id text NOT NULL, id bigint NOT NULL, amount numeric,
		PRIMARY KEY (tenant_id, id));
	SELECT integration.track_table('bulk_orders', 'bulk');
	GRANT ALL ON bulk_orders TO PUBLIC;});
tenant_psql($node, q{INSERT INTO bulk_orders SELECT 'bulkco', i, i FROM generate_series(1, 1000000) i},
	'bulkco');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM integration.webhook_events WHERE tenant_id = 'bulkco'"),
	'1000000', 'a million events of another tenant are queued');
my @lat;
for my $i (10 .. 19)
{
	push @lat, fresh_latency($a_ep, $i);
	usleep(200_000);
}
my $backlog_left = $node->safe_psql('postgres',
	"SELECT count(*) FROM integration.webhook_event_queue WHERE tenant_id = 'bulkco'")
  + $node->safe_psql('postgres',
	"SELECT count(*) FROM integration.deliveries WHERE tenant_id = 'bulkco' AND status <> 'delivered'");
my @late = grep { !defined $_ || $_ >= 1.0 } @lat;
is(scalar @late, 0,
	'10 fresh events beside a 1,000,000-event backlog each arrive within 1 s (slowest '
	  . (join(' ', map { $_ // 'never' } sort { ($b // 99) <=> ($a // 99) } @lat))[0]
	  . " s; $backlog_left of the backlog not delivered yet)");
ok($backlog_left > 100000, 'while the backlog is still draining');

stop_receiver($recv);
$node->stop('immediate');
done_testing();
