# The outcome of a delivery claimed from 'pending' is written where its claim left it,
# in the worker's one outcome statement, like the outcome of a delivery fanned out
# claimed.  A claim of pending deliveries locks them (FOR UPDATE SKIP LOCKED) and then
# updates them, and PostgreSQL keeps that lock in the new row version's xmax; the
# outcome statement, which writes only row versions that nobody has locked since their
# claim, once took that lock for someone else's and sent every such outcome the slow
# way: a second statement that looks for locks and a third that writes by key, both
# planned at each cycle (src/row_unlocked.c).  Retries and every backlog beyond an
# endpoint's room go through such claims.
#
#   1. An endpoint limited to one request at a time gets 30 events: the fan-out claims
#      what the worker may hold for it and leaves the rest pending, claimed later.
#   2. pg_stat_statements (track = all sees the worker's statements): deliveries were
#      claimed from pending, all 30 outcomes were written by the outcome statement, and
#      neither slow-way statement ever ran.
#   3. A backlog to an endpoint that answers at once, at the default cap: the fan-out
#      waits for its room batch by batch rather than writing what it cannot hold
#      pending (paced_until() in src/delivery_job.c).  Each of 3,000 events arrives
#      exactly once, at the first attempt, and the worker never stalls on the wait.
#   4. Claims given back unsent when a circuit opens go back to 'pending' at once, those
#      taken from 'pending' too (StoreReturnClaims() tests the row the same way): an
#      endpoint that fails, one request at a time, opens its circuit on its tenth
#      request, the first eight fanned out claimed and the rest claimed from pending;
#      what the worker held for it is pending again within seconds, not when its lease
#      runs out (the request timeout and a margin, 30 s and more).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = new_statements_node('claimed_outcomes', 'integration.max_concurrency_per_endpoint = 1');
my $recv = start_receiver();

########################################################################
# 1. More deliveries than the worker holds for a one-at-a-time endpoint.
########################################################################

my $url = receiver_url($recv, '/one', delay_ms => 20);
tenant_psql($node, "SELECT integration.register_webhook('one', '$url', '[\"one.*\"]')", 'tenant_a');
$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
publish_events($node, 'tenant_a', 'one.x', 30);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 30 FROM integration.deliveries WHERE status = 'delivered'"),
	'all 30 deliveries are delivered');
is(wait_for_requests($recv, 30), 30, 'the receiver got 30 requests');

########################################################################
# 2. Which statements wrote the outcomes.
########################################################################

my (undef, $claimed) = statement_totals($node, 'FROM locked l');
cmp_ok($claimed, '>', 0, "deliveries were claimed from pending ($claimed)");
my (undef, $by_ctid) = statement_totals($node, 'AND integration.row_unlocked(d.xmax, r.claim_xmax)');
is($by_ctid, 30, 'the outcome statement wrote all 30 outcomes where their claims left them');
is((statement_totals($node, 'FOR NO KEY UPDATE OF d SKIP LOCKED'))[0], 0,
	'no outcome needed the look for rows locked by others');
is((statement_totals($node, 'AS r(tenant_id, id, status, attempt'))[0], 0, 'nor the write by key');

# Sets integration.max_concurrency_per_endpoint, reloads; true once the server has it.
sub set_endpoint_cap
{
	my ($cap) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET integration.max_concurrency_per_endpoint = $cap");
	$node->reload;
	return $node->poll_query_until('postgres',
		"SELECT setting = '$cap' FROM pg_settings WHERE name = 'integration.max_concurrency_per_endpoint'");
}

########################################################################
# 3. A fast endpoint's backlog at the default cap.
########################################################################

ok(set_endpoint_cap(16), 'the per-endpoint cap is at its default, 16');
my $fast = receiver_url($recv, '/fast');
tenant_psql($node, "SELECT integration.register_webhook('fast', '$fast', '[\"fast.*\"]')", 'tenant_b');
publish_events($node, 'tenant_b', 'fast.x', 3000);
my @fast = wait_for_requests($recv, 3000, 60, sub { $_[0]->{path_only} eq '/fast' });
is(scalar(@fast), 3000, 'the fast endpoint got 3,000 requests');
my %ids = map { ($_->{headers}{'webhook-id'} // '') => 1 } @fast;
is(scalar(keys %ids), 3000, 'each for another event');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3000 FROM integration.deliveries WHERE tenant_id = 'tenant_b'"
		  . " AND status = 'delivered' AND attempts = 1"),
	'all 3,000 delivered at their first attempt');

########################################################################
# 4. A failing endpoint's circuit opens: what the worker held goes back.
########################################################################

ok(set_endpoint_cap(1), 'the per-endpoint cap is 1 again');
receiver_plan($recv, '/down', 'status=500');
my $down_url = receiver_url($recv, '/down');
my $down = tenant_psql($node,
	"SELECT id FROM integration.register_webhook('down', '$down_url', '[\"down.*\"]')", 'tenant_c');
publish_events($node, 'tenant_c', 'down.x', 40);
ok($node->poll_query_until('postgres',
		"SELECT state = 'open' FROM integration.target_circuits WHERE tenant_id = 'tenant_c' AND target_id = $down"),
	'the failing endpoint\'s circuit opens');
my $opened = time();
ok($node->poll_query_until('postgres',
		"SELECT count(*) FILTER (WHERE status = 'pending') = 40 AND count(*) = 40"
		  . " FROM integration.deliveries WHERE tenant_id = 'tenant_c'"),
	'all 40 deliveries are pending again');
my $waited = time() - $opened;
cmp_ok($waited, '<', 10, sprintf('within %.1f s of the opening, long before a lease runs out', $waited));
my (undef, $given_back) = statement_totals($node, 'AS r(tid, id, lease, due, claim_xmax)');
cmp_ok($given_back, '>', 0, "claims were given back unsent ($given_back)");

stop_receiver($recv);
$node->stop;
done_testing();
