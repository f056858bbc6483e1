# Endpoint protection (#15), against the receiver on loopback:
#   a. a 5 requests/s limit over 200 deliveries: no one-second window at the receiver
#      holds more than rate + burst, the whole takes as long as the limit says, and every
#      delivery takes one attempt (it runs on a tenant of its own while b, c and e run);
#   b. a 429 with Retry-After holds an endpoint without a configured limit back for the
#      whole Retry-After, halves its rate, and the endpoint recovers;
#   c. a failing endpoint opens its circuit within the window; then the receiver sees
#      only probes, spaced by the doubling cooldown; its recovery closes the circuit; each
#      transition is logged for the tenant, and the deliveries held back used no attempt;
#   d. a restart with an open circuit keeps it open: nothing reaches the endpoint before
#      its stored probe time (run first, the restart before a starts: its waits pass
#      while the others run);
#   e. beside a tenant with 20,000 queued deliveries to a slow endpoint, a healthy
#      tenant's events arrive as promptly as when idle (figures printed);
#   f. what counts as a failure: 408s open a circuit, 404s (the endpoint is up) do not.

# test/run: alone (its checks bound a rate limit's window and span, and latencies).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# The cooldown is 5 s for d's circuit, which opens first; d's restart makes it 1 s.
my $node = new_integration_node('protection',
	"integration.circuit_cooldown = '5s'",
	'track_commit_timestamp = on',
	"integration.retry_schedule = '" . join(', ', ('500ms') x 30) . "'");
my $recv = start_receiver();

sub register
{
	my ($tenant, $name, $url, $events, $extra) = @_;
	$extra = $extra ? ", $extra" : '';
	return tenant_psql($node, qq{
		SELECT id FROM integration.register_webhook(name => '$name', url => '$url',
			events => '$events'$extra)}, $tenant);
}

sub publish
{
	my ($tenant, $event, $n) = @_;
	tenant_psql($node, qq{SELECT count(integration.publish_event('$event', jsonb_build_object('i', g)))
						   FROM generate_series(1, $n) g}, $tenant);
	return;
}

# Arrival times at the receiver of the requests to $path, oldest first.
sub arrivals
{
	my ($path) = @_;
	# Settled: the receiver writes its log up to 20 ms after it answers, and the worker
	# may have recorded the delivery before then.
	return sort { $a <=> $b } map { $_->{t} } grep { $_->{path_only} eq $path } read_log_settled($recv);
}

# One row of endpoint_health as the tenant sees it, as a hash.
sub health
{
	my ($tenant, $id) = @_;
	my @cols = qw(circuit requests failures rate_limit effective_rate in_flight pending);
	my $row = tenant_psql($node,
		'SELECT ' . join(q{ || '|' || }, map { "coalesce($_" . "::text, '')" } @cols)
		  . " FROM integration.endpoint_health WHERE endpoint_id = $id", $tenant);
	my %h;
	@h{@cols} = split /\|/, $row, -1;
	return \%h;
}

sub wait_until
{
	my ($cond, $timeout) = @_;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(20_000);
	}
	return $cond->();
}

sub circuit_events
{
	my ($tenant) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(event, ' ' ORDER BY id) FROM integration.integration_logs"
		  . " WHERE tenant_id = '$tenant' AND event LIKE 'circuit.%'");
}

########################################################################
# d. A restart with an open circuit: nothing until its probe.  First, so that its
#    waits (the stored probe time, then twice the cooldown) pass while the others run;
#    the server restarts with the cooldown of 1 s they expect.
########################################################################

receiver_plan($recv, '/down2', 'status=503');
my $down2 = register('restartco', 'down2', receiver_url($recv, '/down2'), '["down2.*"]');
publish('restartco', 'down2.x', 20);
ok(wait_until(sub { health('restartco', $down2)->{circuit} eq 'open' }, 10),
	'd: the circuit opens');
usleep(300_000);
my $probe_at = $node->safe_psql('postgres',
	"SELECT extract(epoch FROM next_probe_at) FROM integration.target_circuits"
	  . " WHERE tenant_id = 'restartco' AND state = 'open'");
ok($probe_at ne '', 'd: the open circuit and its next probe are stored');
$node->safe_psql('postgres', "ALTER SYSTEM SET integration.circuit_cooldown = '1s'");
$node->restart;
my $restarted = time();
is(health('restartco', $down2)->{circuit}, 'open', 'd: after the restart it is open still');
usleep(int(($probe_at + 1.5 - time()) * 1_000_000)) if $probe_at + 1.5 > time();
my @after_restart = grep { $_ > $restarted - 0.5 } arrivals('/down2');
is(scalar @after_restart, 1, 'd: from the restart to just past the stored probe time, one request');
ok(@after_restart && $after_restart[0] >= $probe_at - 0.05,
	sprintf('d: and it is the probe, at its time (%.2f s after it was due)',
		(@after_restart ? $after_restart[0] : 0) - $probe_at));
ok(slurp_file($node->logfile) =~ /1 endpoint circuits not closed at the last stop restored/,
	'd: the worker says it restored the circuit');
ok(wait_until(sub { circuit_events('restartco') =~ /circuit\.half_opened circuit\.opened$/ }, 5),
	'd: the failed probe opens it again');
is( $node->safe_psql('postgres',
		"SELECT state || ' ' || cooldown_ms FROM integration.target_circuits WHERE tenant_id = 'restartco'"),
	'open 10000', 'd: with twice the cooldown');

# Disabled while open: at its next probe the worker finds it disabled, closes the
# circuit, and its deliveries fail as sent to a disabled endpoint, not a probe at a time.
tenant_psql($node, "SELECT integration.update_webhook(id => $down2, is_active => false)", 'restartco');
# (Checked at the end.)

########################################################################
# a. Started now, checked at the end: 200 deliveries at 5 per second.
########################################################################

my $limited = register('ratelim', 'limited', receiver_url($recv, '/limited'), '["rl.*"]',
	'rate_limit => 5');
publish('ratelim', 'rl.x', 200);
# What waits for a token waits as pending, not in a request slot: at 5/s to a receiver
# on loopback, at most one request is ever out.
my $hl;
ok(wait_until(sub { $hl = health('ratelim', $limited); $hl->{pending} >= 150 }, 5),
	'a: the deliveries waiting for tokens count as pending');
ok($hl->{in_flight} <= 1,
	"a: and hold no request slot ($hl->{in_flight} in flight, $hl->{pending} pending)");

########################################################################
# c. A failing endpoint: its circuit opens, only probes reach it, and it closes.
########################################################################

receiver_plan($recv, '/down', 'status=500');
my $down = register('downco', 'down', receiver_url($recv, '/down'), '["down.*"]');
publish('downco', 'down.x', 30);
ok(wait_until(sub { health('downco', $down)->{circuit} eq 'open' }, 10),
	'c: the failing endpoint\'s circuit opens');
my $h = health('downco', $down);
ok($h->{requests} >= 10 && $h->{failures} >= 0.7 * $h->{requests},
	"c: it opened on at least 10 requests, at least 70% failed, within the window ($h->{failures} of $h->{requests})");
# The requests already in flight when it opened come back; nothing else goes out.
usleep(300_000);
my @burst = arrivals('/down');
my $n0 = scalar @burst;
ok($n0 >= 10 && $n0 <= 16,
	"c: the requests sent before it opened ($n0) are at most the endpoint's concurrency");
# Two probes fail (after 1 s, then 2 s more); then the endpoint recovers.
my @seen = wait_for_requests($recv, $n0 + 2, 10, sub { $_[0]{path_only} eq '/down' });
is(scalar @seen, $n0 + 2, 'c: two probes reach the endpoint while it fails');
receiver_plan($recv, '/down', '');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 30 FROM integration.deliveries WHERE tenant_id = 'downco' AND status = 'delivered'"),
	'c: once it recovers, the third probe closes the circuit and every delivery arrives');
my @down = arrivals('/down');
my @gaps = map { $down[ $n0 - 1 + $_ ] - $down[ $n0 - 2 + $_ ] } 1 .. 3;
ok( $gaps[0] >= 0.95 && $gaps[1] >= 1.95 && $gaps[2] >= 3.95,
	sprintf('c: the probes are the only requests, spaced by the doubling cooldown '
		  . '(1 s, 2 s, 4 s): %.2f s, %.2f s, %.2f s', @gaps));
is( circuit_events('downco'),
	'circuit.opened circuit.half_opened circuit.opened circuit.half_opened circuit.opened '
	  . 'circuit.half_opened circuit.closed',
	'c: every transition is logged for the tenant, in order');
is( $node->safe_psql('postgres',
		"SELECT sum(attempts) FROM integration.deliveries WHERE tenant_id = 'downco'"),
	30 + $n0 + 2,
	'c: attempts are the first burst, the two failed probes and one success each: '
	  . 'the deliveries held back used none');
is(health('downco', $down)->{circuit}, 'closed', 'c: endpoint_health shows it closed again');
is( $node->safe_psql('postgres',
		"SELECT state || ' ' || (opened_at IS NULL) FROM integration.target_circuits WHERE tenant_id = 'downco'"),
	'closed true', 'c: the stored circuit is closed');
# (d's tenant, restartco, has a circuit of its own.)
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM integration.integration_logs"
		  . " WHERE tenant_id NOT IN ('downco', 'restartco') AND event LIKE 'circuit.%'"),
	'0', 'c: no other tenant got a circuit log row');

########################################################################
# f. A 408 is a failure like a 5xx; a 404 shows the endpoint is up.
########################################################################

receiver_plan($recv, '/t408', 'status=408');
my $t408 = register('statusco', 't408', receiver_url($recv, '/t408'), '["t408.*"]');
my $nf = register('statusco', 'notfound', receiver_url($recv, '/notfound', status => '404'), '["nf.*"]');
publish('statusco', 't408.x', 12);
publish('statusco', 'nf.x', 12);
ok(wait_until(sub { health('statusco', $t408)->{circuit} eq 'open' }, 10),
	'f: 408 answers open the circuit');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 12 FROM integration.deliveries d JOIN integration.webhook_events e"
		  . " ON e.tenant_id = d.tenant_id AND e.id = d.event_id"
		  . " WHERE d.tenant_id = 'statusco' AND e.event = 'nf.x' AND d.attempts > 0"),
	'f: the 404 endpoint answered each of its 12 deliveries');
$h = health('statusco', $nf);
is("$h->{circuit} $h->{failures} " . ($h->{requests} >= 12 ? 'counted' : "$h->{requests} counted"),
	'closed 0 counted', 'f: its 404s count as requests, none as a failure: the circuit stays closed');
# The 408 endpoint recovers.
receiver_plan($recv, '/t408', '');
ok(wait_until(sub { health('statusco', $t408)->{circuit} eq 'closed' }, 10),
	'f: the 408 endpoint\'s circuit closes at the first probe it answers with 200');

########################################################################
# b. 429 with Retry-After: the endpoint (no configured limit) is held back, slowed down,
#    and recovers.
########################################################################

my $busy = register('busyco', 'busy',
	receiver_url($recv, '/busy', status => '429x4', retry_after => 2, key => 'busy'), '["busy.*"]');
publish('busyco', 'busy.x', 16);
my @first = wait_for_requests($recv, 16, 10, sub { $_[0]{path_only} eq '/busy' });
is(scalar @first, 16, 'b: 16 requests reach the endpoint at once; the first 4 get 429, Retry-After: 2');
ok(wait_until(sub { health('busyco', $busy)->{effective_rate} ne '' }, 5),
	'b: the 429 slows the endpoint down');
is(health('busyco', $busy)->{effective_rate}, '8',
	'b: to half the 16 requests per second it was sent');
publish('busyco', 'busy.x', 24);
my @busy = wait_for_requests($recv, 44, 15, sub { $_[0]{path_only} eq '/busy' });
is(scalar @busy, 44, 'b: the 24 new deliveries and the 4 retries arrive');
@busy = arrivals('/busy');
my $held = $busy[16] - $busy[15];
ok($held >= 1.9, sprintf('b: nothing reaches it for the Retry-After: %.2f s after the 429s', $held));
my @after = @busy[ 16 .. 43 ];
my $first_second = grep { $_ < $after[0] + 1.0 } @after;
my $spread = $after[-1] - $after[0];
ok( $first_second <= 16 && $spread >= 1.5,
	sprintf('b: then at the halved rate: %d of 28 in the first second (bucket 8 + 8/s), all in %.2f s',
		$first_second, $spread));
ok(wait_until(sub { health('busyco', $busy)->{effective_rate} eq '' }, 15),
	'b: the endpoint recovers: unlimited again');
is( $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'delivered') || ' ' || sum(attempts)"
		  . " FROM integration.deliveries WHERE tenant_id = 'busyco'"),
	'40 44', 'b: all 40 delivered; only the four 429s cost an attempt each');
is(health('busyco', $busy)->{circuit}, 'closed', 'b: 4 failures of 16 do not open its circuit');

########################################################################
# e. Fair scheduling: a healthy tenant beside 20,000 deliveries to a slow endpoint.
########################################################################

my $fresh = register('freshco', 'fresh', receiver_url($recv, '/fresh'), '["fresh.*"]');
my $slow = register('bulkco', 'slow', receiver_url($recv, '/slow', delay_ms => 2000), '["bulk.*"]');

# Publishes $n events for freshco 100 ms apart; returns their commit-to-arrival seconds.
sub fresh_round
{
	my ($round, $n) = @_;
	for my $i (1 .. $n)
	{
		tenant_psql($node,
			"SELECT integration.publish_event('fresh.x', '{\"round\": \"$round\", \"i\": $i}')",
			'freshco');
		usleep(100_000);
	}
	my %arrived;
	wait_until(
		sub {
			%arrived = map { ($_->{headers}{'webhook-id'} => $_->{t}) }
			  grep { $_->{path_only} eq '/fresh' } read_log($recv);
			my $got = $node->safe_psql('postgres',
				"SELECT string_agg(message_id, ' ') FROM integration.webhook_events"
				  . " WHERE tenant_id = 'freshco' AND payload::jsonb -> 'data' ->> 'round' = '$round'");
			return !grep { !exists $arrived{$_} } split / /, $got;
		},
		20);
	my @lat;
	for my $row (split /\n/, $node->safe_psql('postgres',
		"SELECT message_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))"
		  . " FROM integration.webhook_events"
		  . " WHERE tenant_id = 'freshco' AND payload::jsonb -> 'data' ->> 'round' = '$round'"))
	{
		my ($id, $committed) = split /\|/, $row;
		push @lat, exists $arrived{$id} ? $arrived{$id} - $committed : undef;
	}
	return @lat;
}

sub figures
{
	my @l = sort { $a <=> $b } grep { defined } @_;
	return 'none arrived' unless @l;
	my $p = sub { $l[ int($_[0] * $#l + 0.5) ] * 1000 };
	return sprintf('p50 %.1f ms, p99 %.1f ms, max %.1f ms', $p->(0.5), $p->(0.99), $l[-1] * 1000);
}

my @idle = fresh_round('idle', 20);
publish('bulkco', 'bulk.x', 20000);
my @slow = wait_for_requests($recv, 16, 10, sub { $_[0]{path_only} eq '/slow' });
is(scalar @slow, 16, 'e: the slow endpoint has its 16 requests in flight');
my $backlog_at_start = $node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM integration.webhook_event_queue WHERE tenant_id = 'bulkco')"
	  . " + (SELECT count(*) FROM integration.deliveries WHERE tenant_id = 'bulkco' AND status <> 'delivered')");
my @busy_lat = fresh_round('backlog', 20);
my $in_flight = health('bulkco', $slow)->{in_flight};
diag('e: healthy tenant, commit to arrival, idle: ' . figures(@idle));
diag("e: beside $backlog_at_start queued deliveries to a 2 s endpoint: " . figures(@busy_lat));
my @late = grep { !defined $_ || $_ >= 2.0 } @busy_lat;
is(scalar @late, 0, 'e: each of 20 fresh events arrives within 2 s of its commit beside the backlog');
ok($backlog_at_start >= 19000, "e: the backlog was there ($backlog_at_start queued)");
ok($in_flight <= 16, "e: the backlogged tenant holds at most its endpoint's 16 slots ($in_flight)");
# Out of the way: its deliveries go with its events.
$node->safe_psql('postgres', "DELETE FROM integration.webhook_events WHERE tenant_id = 'bulkco'");

########################################################################
# a, checked: every delivery arrived, at the limit.
########################################################################

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 200 FROM integration.deliveries WHERE tenant_id = 'ratelim' AND status = 'delivered'"),
	'a: all 200 rate-limited deliveries arrive');
my @rl = arrivals('/limited');
is(scalar @rl, 200, 'a: the receiver got 200 requests, no more');
my ($worst, $j) = (0, 0);
for my $i (0 .. $#rl)
{
	$j++ while $j < $#rl && $rl[ $j + 1 ] < $rl[$i] + 1.0;
	$worst = $j - $i + 1 if $j - $i + 1 > $worst;
}
ok($worst <= 10, "a: no one-second window holds more than rate + burst = 10 requests ($worst)");
my $span = $rl[-1] - $rl[0];
ok($span >= 38.0 && $span <= 41.5,
	sprintf('a: the 200 took %.1f s, as 5 at once and 195 at 5/s (39 s) say', $span));
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM integration.deliveries WHERE tenant_id = 'ratelim' AND attempts = 1"),
	'200', 'a: each took one attempt: waiting for a token uses none');

########################################################################
# d, checked: the endpoint disabled while open.
########################################################################

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 20 FROM integration.deliveries WHERE tenant_id = 'restartco' AND status = 'failed'"),
	'd: disabled, its deliveries fail at its next probe time');
like(circuit_events('restartco'), qr/circuit\.closed$/, 'd: and its circuit is closed');
is( $node->safe_psql('postgres',
		"SELECT message FROM integration.integration_logs WHERE tenant_id = 'restartco'"
		  . " AND event = 'circuit.closed'"),
	"webhook $down2: circuit closed: the endpoint is disabled or deleted", 'd: saying why');

stop_receiver($recv);
$node->stop('immediate');
done_testing();
