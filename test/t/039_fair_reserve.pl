# Fairness when more than one tenant's endpoints hang.  Requests that hang keep their
# slots until the request timeout, and integration.max_concurrency_per_tenant (48 of
# 64) alone leaves the rest to the first other tenant that takes them: with a second
# tenant whose endpoints hang too, every slot hung and a third tenant's fresh event
# waited for the timeout (18.8 s of 20).  The scheduler keeps the last free slots (4
# of 64) for tenants that hold none:
#   1. one tenant's four hanging endpoints get 48 slots, a second tenant's 12, not 16;
#   2. a healthy tenant's fresh events still arrive within a second;
#   3. a third tenant whose endpoints hang gets one slot, and the healthy tenant's
#      events still arrive within a second.

# test/run: alone (its checks bound latencies beside other tenants' hanging requests).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('fair_reserve',
	'integration.max_concurrency = 64',
	'integration.max_concurrency_per_endpoint = 16',
	'integration.request_timeout = 20000',
	"integration.retry_schedule = '1h'");
my $recv = start_receiver();

sub register { return register_for($node, @_); }

# Publishes one event for acme and returns its seconds from commit to delivery, or undef.
sub fresh_latency { return fresh_delivery_seconds($node, 'acme', $_[0], $_[1], 30); }

# Four endpoints of tenant that never answer, and 50 events to each.
sub hang_tenant
{
	my ($tenant) = @_;
	for my $k (1 .. 4)
	{
		register($tenant, "hang$k", receiver_url($recv, "/$tenant/hang$k", hang => 1), '["hang.*"]');
	}
	tenant_psql($node, q{SELECT integration.publish_event('hang.x', jsonb_build_object('i', i))
						  FROM generate_series(1, 50) i}, $tenant);
}

# The requests the receiver holds for each tenant, once no more come in.
sub hanging
{
	my ($want, $timeout) = @_;
	wait_for_requests($recv, $want, $timeout, sub { $_[0]{path_only} =~ m{/hang} });
	usleep(500_000);    # room for more, were the limits wrong
	my %n;
	$n{ (split m{/}, $_->{path_only})[1] }++
	  for grep { $_->{path_only} =~ m{/hang} } read_log_settled($recv);
	return join(', ', map { "$_ $n{$_}" } sort keys %n);
}

sub under_a_second
{
	my ($lat, $what) = @_;
	ok(defined $lat && $lat < 1.0, "$what, a fresh event arrives within 1 s (" . ($lat // 'never') . ' s)');
}

my $a_ep = register('acme', 'healthy', receiver_url($recv, '/healthy'), '["fresh.*"]');

hang_tenant('hangb');
is(hanging(48, 15), 'hangb 48', 'the first tenant whose endpoints hang gets 48 slots');
hang_tenant('hangc');
is(hanging(60, 15), 'hangb 48, hangc 12',
	'a second one gets 12: the last 4 free slots are kept for tenants that hold none');
under_a_second(fresh_latency($a_ep, 1), 'beside 60 hanging requests of two tenants');
under_a_second(fresh_latency($a_ep, 2), 'and again');

hang_tenant('hangd');
is(hanging(61, 15), 'hangb 48, hangc 12, hangd 1', 'a third one gets one of those 4');
under_a_second(fresh_latency($a_ep, 3), 'beside 61 hanging requests of three tenants');
under_a_second(fresh_latency($a_ep, 4), 'and again');

stop_receiver($recv);
$node->stop('immediate');
done_testing();
