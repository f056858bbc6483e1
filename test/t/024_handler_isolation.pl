# A hostile tenant's slow inbound handlers beside healthy tenants, on a real server:
#
#   1. Each database has two workers, a delivery worker and a handler worker, each with
#      its own row in worker_status().
#   2. Tenant "hostile" receives 20 webhooks whose handler sleeps 5 s each (pg_sleep;
#      integration.handler_timeout is 10 s, so each call takes its full 5 s: 100 s of
#      handler time in all).  Meanwhile tenant "healthy" publishes 20 events, one every
#      250 ms, to an endpoint that answers at once: each is delivered within 2 s of
#      its commit, while the handler worker sits in the hostile tenant's handlers.
#   3. Tenant "neighbour" receives 5 webhooks with a quick handler while the hostile
#      tenant's backlog is still running: they are handled as soon as the hostile
#      call in progress ends, within 7 s of their receipt, before the hostile tenant's
#      next event (at most one hostile event is handled meanwhile: the one running).
#
# The bounds.  A delivery takes milliseconds from commit to recorded delivery
# (wake-up at commit, one claim, one loopback request, its result written within
# 10 ms), and test 006_fairness asserts 1 s under a 1,000,000-event backlog; 2 s leaves
# room for a loaded machine and is still less than one hostile handler call (5 s).
# Where handlers ran on the delivery worker's own thread, every delivery waited for the
# hostile handlers of the batch in progress (up to 32 events, 160 s), so this test
# failed there.  A quick handler in the handler worker waits for the hostile call in
# progress (at most 5 s) and then runs before the hostile tenant's next event, whose
# handlers have taken 5 s of time the neighbour has not: 5 s plus 2 s as above.
# Latencies are measured in the database, from the start of the publishing (or
# receiving) transaction, which comes before its commit.

# test/run: alone (its checks bound latencies beside a hostile tenant's handlers).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('handler_isolation',
	"integration.handler_timeout = '10s'",
	"integration.retry_schedule = '1h'");
my $recv = start_receiver();
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub app { return tenant_psql($node, "SET ROLE app;\n$_[0]", $_[1]); }

sub poll_ok
{
	my ($sql, $name) = @_;
	ok($node->poll_query_until('postgres', $sql), $name);
}

create_app_role($node, 'app');
q1(q{
	CREATE TABLE public.handled (
		n			bigserial PRIMARY KEY,
		tenant_id	text NOT NULL,
		event_id	bigint NOT NULL
	);
	GRANT ALL ON public.handled, public.handled_n_seq TO app;
});
app(q{
	CREATE FUNCTION public.on_slow(e integration.inbound_events) RETURNS void
		LANGUAGE plpgsql
	AS $$
	BEGIN
		INSERT INTO public.handled (tenant_id, event_id) VALUES (e.tenant_id, e.id);
		PERFORM pg_sleep(5);
	END
	$$;
	CREATE FUNCTION public.on_quick(e integration.inbound_events) RETURNS void
		LANGUAGE sql
	AS $$ INSERT INTO public.handled (tenant_id, event_id) VALUES (e.tenant_id, e.id) $$;
}, 'hostile');

# A generic connector of $tenant whose events of every topic go to $handler.
sub connector_with_handler
{
	my ($tenant, $handler) = @_;
	my $conn = app(qq{
		SELECT id FROM integration.create_connector('generic', 'shop', 'https://api.example.invalid',
			'{"token": "t-0123456789"}', '{}', '$secret')}, $tenant);
	app(qq{SELECT integration.on_inbound('all', '["generic.**"]',
			'public.$handler(integration.inbound_events)')}, $tenant);
	return $conn;
}

# Receives $n signed webhooks into $conn in one transaction; returns how many were accepted.
sub receive_many
{
	my ($tenant, $conn, $n) = @_;
	return app(qq{
		SELECT count(*) FROM generate_series(1, $n) g,
			LATERAL (SELECT format('{"type":"order.created","timestamp":"t","data":{"id":"%s-%s"}}',
								   '$tenant', g) AS body) b,
			LATERAL integration.receive_webhook($conn,
				integration.sign('standard', '$secret', b.body, '$tenant-' || g), b.body) r
		 WHERE r.status = 'accepted'}, $tenant);
}

my $hostile = connector_with_handler('hostile', 'on_slow');
my $neighbour = connector_with_handler('neighbour', 'on_quick');
my $ep = tenant_psql($node, qq{
	SELECT id FROM integration.register_webhook(name => 'healthy',
		url => '@{[receiver_url($recv, '/healthy')]}', events => '["order.*"]')}, 'healthy');

########################################################################
# 1. Two workers.
########################################################################

poll_ok(q{SELECT count(*) = 2 FROM integration.worker_status() WHERE database = 'postgres'},
	'both workers run');
is(q1(q{SELECT string_agg(role, ',' ORDER BY role) FROM integration.worker_status()}),
	'delivery,handler', 'a delivery worker and a handler worker, each with its row');
my $hpid = q1(q{SELECT pid FROM integration.worker_status() WHERE role = 'handler'});
my $dpid = q1(q{SELECT pid FROM integration.worker_status() WHERE role = 'delivery'});
isnt($hpid, $dpid, 'two processes');

########################################################################
# 2. The hostile tenant's handlers beside the healthy tenant's deliveries.
########################################################################

is(receive_many('hostile', $hostile, 20), '20', 'the hostile tenant receives 20 webhooks');
poll_ok(qq{SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $hpid},
	'the handler worker sleeps in a hostile handler');
is(q1(q{SELECT state || ' ' || in_flight FROM integration.worker_status() WHERE role = 'handler'}),
	'handling 0', "its row says so, and it holds none of the delivery worker's request slots");

my @latency;
for my $i (1 .. 20)
{
	tenant_psql($node, "SELECT integration.publish_event('order.placed', '{\"i\": $i}')", 'healthy');
	my $sql = "SELECT extract(epoch FROM d.delivered_at - e.created_at)"
	  . " FROM integration.deliveries d JOIN integration.webhook_events e"
	  . " ON e.tenant_id = d.tenant_id AND e.id = d.event_id"
	  . " WHERE d.tenant_id = 'healthy' AND d.endpoint_id = $ep AND d.status = 'delivered'"
	  . " AND e.payload::jsonb -> 'data' ->> 'i' = '$i'";
	my $deadline = time() + 20;
	my $s = '';
	while (time() < $deadline)
	{
		$s = q1($sql);
		last if $s ne '';
		usleep(20_000);
	}
	push @latency, $s eq '' ? 999 : $s;
	usleep(250_000);
}
my ($max) = sort { $b <=> $a } @latency;
note 'healthy delivery latencies (s): ' . join(' ', map { sprintf('%.3f', $_) } @latency);
is(scalar(grep { $_ < 2 } @latency), 20,
	sprintf('each of the healthy tenant\'s 20 deliveries arrived within 2 s of its commit (slowest %.3f s)', $max));
is(scalar(wait_for_requests($recv, 20, 5, sub { $_[0]{path_only} eq '/healthy' })), 20,
	'the receiver has all 20');
my $hostile_done = q1(q{SELECT count(*) FROM integration.inbound_events
						WHERE tenant_id = 'hostile' AND status = 'processed'});
note "hostile events handled meanwhile: $hostile_done";
ok($hostile_done < 20, 'all the while the hostile handlers kept the handler worker busy');
is(q1(q{SELECT inbound_handled FROM integration.worker_status() WHERE role = 'delivery'}), '0',
	'the delivery worker ran no handler');

########################################################################
# 3. The neighbour's quick handlers beside the hostile tenant's slow ones.
########################################################################

poll_ok(qq{SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $hpid},
	'a hostile handler is running');
my $hostile_before = q1(q{SELECT count(*) FROM public.handled WHERE tenant_id = 'hostile'});
is(receive_many('neighbour', $neighbour, 5), '5', 'the neighbour receives 5 webhooks');
poll_ok(q{SELECT count(*) = 5 FROM integration.inbound_events
		   WHERE tenant_id = 'neighbour' AND status = 'processed'},
	'they are handled');
my $hostile_after = q1(q{SELECT count(*) FROM public.handled WHERE tenant_id = 'hostile'});
my $slowest = q1(q{SELECT max(extract(epoch FROM processed_at - received_at))
					 FROM integration.inbound_events WHERE tenant_id = 'neighbour'});
note sprintf('neighbour handled within %.3f s; hostile events handled meanwhile: %d',
	$slowest, $hostile_after - $hostile_before);
ok($slowest < 7, sprintf('each within 7 s of its receipt (slowest %.3f s)', $slowest));
ok($hostile_after - $hostile_before <= 1,
	'before the hostile tenant\'s next event: only the one in progress ended meanwhile');
is(q1(q{SELECT count(*) FROM public.handled WHERE tenant_id = 'neighbour'}), '5',
	'each neighbour event handled once');

stop_receiver($recv);
$node->stop('fast');
done_testing();
