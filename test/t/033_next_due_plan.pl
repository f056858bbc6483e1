# The worker's lookup of the next due delivery (StoreNextDue() in src/delivery_claim.c)
# is planned without a sort.  Planned for its first row on statistics that saw a few
# hundred pending deliveries among many, a full scan of deliveries_pending_idx and a sort
# once looked cheaper than the walk of deliveries_due_idx, and beside a 100,000-event
# backlog each lookup read every pending delivery, at every claim cycle of the drain
# (bench/run backlog, bench/README.md).  Those statistics take a table of a million rows
# to reproduce; what this test pins is the remedy, on the plan the worker really runs:
#
#   1. An endpoint at its concurrency limit (1, its receiver answering after 300 ms) with
#      events pending: the claims leave it out, and the worker looks up the next due
#      time after each.
#   2. auto_explain (nested statements, log_settings) logs that lookup's plans: each
#      says it was planned with enable_sort off, walks deliveries_due_idx and sorts
#      nothing.
#   3. enable_sort is off for that statement alone: the worker's other statements are
#      planned with the session's settings (the claim's head, the same kind of walk,
#      says nothing of enable_sort), and all deliveries arrive.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = new_integration_node('next_due_plan',
	"shared_preload_libraries = 'integration, auto_explain'",
	'auto_explain.log_min_duration = 0',
	'auto_explain.log_nested_statements = on',
	'auto_explain.log_settings = on',
	'integration.max_concurrency_per_endpoint = 1');
my $recv = start_receiver();

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery' AND pid IS NOT NULL"),
	'the delivery worker runs');

########################################################################
# 1. A saturated endpoint with pending deliveries.
########################################################################

my $url = receiver_url($recv, '/slow', delay_ms => 300);
tenant_psql($node, "SELECT integration.register_webhook('slow', '$url', '[\"slow.*\"]')", 'tenant_a');
tenant_psql($node,
	"SELECT count(integration.publish_event('slow.x', jsonb_build_object('n', g))) FROM generate_series(1, 20) g",
	'tenant_a');

# The worker's plans of the lookup, as auto_explain logged them: each entry from its
# first line to the next line that starts with a timestamp.
sub logged_plans
{
	my ($query_start) = @_;
	my @plans;
	my $current;
	for my $line (split /\n/, slurp_file($node->logfile))
	{
		if ($line =~ /^\d{4}-\d\d-\d\d /)
		{
			push @plans, $current if defined $current && $current =~ /\Q$query_start\E/;
			$current = $line =~ /duration: .* plan:/ ? "$line\n" : undef;
		}
		elsif (defined $current)
		{
			$current .= "$line\n";
		}
	}
	push @plans, $current if defined $current && $current =~ /\Q$query_start\E/;
	return @plans;
}

my $next_due = 'Query Text: SELECT d.next_attempt_at FROM integration.deliveries d WHERE d.next_attempt_at > $1';
my @plans;
for (1 .. 100)
{
	@plans = logged_plans($next_due);
	last if @plans;
	usleep(100_000);
}
ok(@plans > 0, 'the worker looked up the next due delivery with an endpoint left out');

########################################################################
# 2. Planned without a sort.
########################################################################

is(scalar(grep { /Settings: .*enable_sort = 'off'/ } @plans), scalar(@plans),
	'every plan of the lookup was made with enable_sort off');
is(scalar(grep { /Index Scan using deliveries_due_idx/ && !/Sort/ } @plans), scalar(@plans),
	'every plan of the lookup walks deliveries_due_idx and sorts nothing');

########################################################################
# 3. For that statement alone.
########################################################################

my @heads = logged_plans('Query Text: SELECT d.ctid, d.endpoint_id FROM integration.deliveries d WHERE d.next_attempt_at <= pg_catalog.now()');
ok(@heads > 0, 'the claim head was planned too');
is(scalar(grep { /enable_sort/ } @heads), 0, "the claim head's plans say nothing of enable_sort");
is($node->safe_psql('postgres', 'SHOW enable_sort'), 'on', 'a session of the database still sorts');

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM integration.deliveries WHERE status = 'delivered'", 't'),
	'all 20 deliveries arrive');

stop_receiver($recv);
$node->stop;
done_testing();
