# Outbound safety, end to end: the worker connects to no blocked address, however the
# URL names it, in both HTTP modes.  Receivers listen on 127.0.0.1, 127.0.0.2 and
# [::1] (that part is skipped only when ::1 cannot be bound) and count every TCP
# connection they accept.
#
# For each value of integration.http_thread:
#   A. nothing allowed: endpoints by IP literal (also decimal and IPv4-mapped) and by
#      the name localhost get zero connections; each attempt fails with error class
#      blocked_address naming the address, is retried on the schedule, is logged to
#      integration_logs, and leaves last_response empty;
#   B. '127.0.0.1/32' allowed: only 127.0.0.1 receives (localhost too, over IPv4);
#   C. allowed again removed: a connection kept alive from B carries no request;
#   D. integration.https_only: an http URL fails with blocked_scheme, nothing sent;
#   E. integration.proxy: the proxy's address is what is checked, and a URL whose
#      host is a blocked IP literal is refused before it reaches the proxy.  The
#      server runs with no_proxy naming the proxied endpoint's host, and the request
#      still goes through the proxy: the environment exempts nothing from it.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $loopback_refused =
  'refused: 127.0.0.0/8 (loopback) is blocked; see integration.allowed_networks';

sub run_mode
{
	my ($mode) = @_;
	my $r1 = start_receiver();
	my $r2 = start_receiver(host => '127.0.0.2');
	my $r6 = eval { start_receiver(host => '::1') };
	diag("[$mode] no receiver on ::1, the IPv6 cases are skipped: $@") unless $r6;

	# The server's environment exempts the proxied endpoint's host from any proxy (E):
	# the worker must not heed it.
	local $ENV{no_proxy} = 'hooks.example.invalid';
	local $ENV{NO_PROXY} = 'hooks.example.invalid';

	# The last allowed_networks line wins over new_integration_node's own.
	my $node = new_integration_node("outbound_$mode",
		"integration.allowed_networks = ''",
		"integration.retry_schedule = '1s, 1s'",
		"integration.http_thread = $mode");
	is($node->safe_psql('postgres', 'SHOW integration.http_thread'), $mode,
		"[$mode] integration.http_thread = $mode");

	my $q = sub { return tenant_psql($node, $_[0]); };
	my $reload = sub {
		my ($settings) = @_;
		$node->safe_psql('postgres', join('', map { "ALTER SYSTEM $_;\n" } @$settings)
			  . 'SELECT pg_reload_conf();');
	};

	# Endpoints by IP literal are stored with plain DML, which registration's check
	# of the URL does not reach; the worker must refuse them itself.  By name, through
	# the API (names are checked only when the worker connects).
	my $p1 = $r1->{port};
	my %url = (
		ip4 => receiver_url($r1, '/ip4'),
		dec => "http://2130706433:$p1/dec",
		mapped => "http://[::ffff:127.0.0.1]:$p1/mapped",
		name4 => "http://localhost:$p1/name4",
		ip4b => receiver_url($r2, '/ip4b'));
	if ($r6)
	{
		$url{ip6} = receiver_url($r6, '/ip6');
		$url{name6} = "http://localhost:$r6->{port}/name6";
	}
	my %ep;
	for my $k (sort keys %url)
	{
		$ep{$k} = $k =~ /^name/
		  ? $q->(qq{SELECT id FROM integration.register_webhook(name => '$k',
				url => '$url{$k}', events => '["probe.*"]')})
		  : $q->(qq{INSERT INTO integration.webhook_endpoints (name, url, events)
				VALUES ('$k', '$url{$k}', '["probe.*"]') RETURNING id});
	}
	my $nep = scalar keys %ep;
	# For E, through a proxy.
	$ep{proxied} = $q->(q{SELECT id FROM integration.register_webhook(name => 'proxied',
		url => 'http://hooks.example.invalid/proxied', events => '["proxy.*"]')});
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET integration.tenant_id = 'acme'; SELECT integration.register_webhook(name => 'x', url => '$url{dec}', events => '[\"*\"]')");
	like($err, qr/points to a blocked address/, "[$mode] the API refuses a decimal loopback URL");

	# The last event published, and the delivery of it to endpoint $k.
	my $last_event = sub {
		return $q->("SELECT max(id) FROM integration.webhook_events WHERE event = '$_[0]'");
	};
	my $delivery = sub {
		my ($event_id, $k) = @_;
		return "integration.deliveries WHERE event_id = $event_id AND endpoint_id = $ep{$k}";
	};
	my $attempt_classes = sub {
		my ($event_id, $k) = @_;
		return $q->(qq{SELECT string_agg(coalesce(a.error_class, '-'), ',' ORDER BY a.attempt)
			FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
			WHERE d.event_id = $event_id AND d.endpoint_id = $ep{$k}});
	};
	my $requests = sub {
		my ($r, $path) = @_;
		usleep(100_000);    # the receiver writes its log up to 20 ms after a request
		return scalar grep { $_->{path_only} eq $path } read_log($r);
	};

	# A reload reaches the worker a moment after pg_reload_conf() returns: publish
	# until the first attempt to endpoint $k of a new event fails with error class
	# $class, or delivers ($class 'delivered').
	my $publish_until = sub {
		my ($event, $k, $class) = @_;
		for my $try (1 .. 20)
		{
			$q->("SELECT integration.publish_event('$event', '{}')");
			my $eid = $last_event->($event);
			$node->poll_query_until('postgres',
				"SELECT attempts >= 1 FROM " . $delivery->($eid, $k))
			  or return undef;
			my ($first) = split /,/, $attempt_classes->($eid, $k) // '';
			$first //= $q->("SELECT status FROM " . $delivery->($eid, $k));
			return $eid if $first eq $class;
			usleep(200_000);
		}
		return undef;
	};

	########################################################################
	# A. Nothing allowed.
	########################################################################

	$q->("SELECT integration.publish_event('probe.a', '{}')");
	my $ea = $last_event->('probe.a');
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = $nep AND bool_and(status = 'failed' AND attempts = 3)
			   FROM integration.deliveries WHERE event_id = $ea"),
		"[$mode] A: every delivery fails after its three attempts");
	is($q->(qq{SELECT count(*) FILTER (WHERE a.error_class = 'blocked_address'
								 AND a.status_code IS NULL AND a.response_excerpt IS NULL)
					|| '/' || count(*)
				 FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
				WHERE d.event_id = $ea}),
		3 * $nep . '/' . 3 * $nep,
		"[$mode] A: every attempt is blocked_address, with no status and no response");
	is($q->(qq{SELECT count(*) FROM integration.deliveries
				WHERE event_id = $ea AND last_response IS NULL AND last_status_code IS NULL}),
		$nep, "[$mode] A: last_response stays empty");
	is($q->("SELECT last_error FROM " . $delivery->($ea, 'ip4')),
		"connection to 127.0.0.1 $loopback_refused", "[$mode] A: the message names the address");
	is($q->("SELECT last_error FROM " . $delivery->($ea, 'dec')),
		"connection to 127.0.0.1 $loopback_refused", "[$mode] A: decimal 2130706433 is 127.0.0.1");
	is($q->("SELECT last_error FROM " . $delivery->($ea, 'mapped')),
		'connection to ::ffff:127.0.0.1 refused: its IPv4 address 127.0.0.1 is in 127.0.0.0/8 (loopback), which is blocked; see integration.allowed_networks',
		"[$mode] A: IPv4-mapped IPv6 is judged by its IPv4 address");
	like($q->("SELECT last_error FROM " . $delivery->($ea, 'name4')),
		qr/^connection to (127\.0\.0\.1|::1) refused: (127\.0\.0\.0\/8|::1\/128) \(loopback\) is blocked/,
		"[$mode] A: localhost is refused after it resolves");
	like($q->("SELECT last_error FROM " . $delivery->($ea, 'ip4b')),
		qr/^connection to 127\.0\.0\.2 \Q$loopback_refused\E$/, "[$mode] A: 127.0.0.2 too");
	if ($r6)
	{
		is($q->("SELECT last_error FROM " . $delivery->($ea, 'ip6')),
			'connection to ::1 refused: ::1/128 (loopback) is blocked; see integration.allowed_networks',
			"[$mode] A: ::1 too");
	}

	# Retried on the schedule (1 s, +/-20% jitter), and logged for the tenant.
	ok($q->(qq{SELECT bool_and(gap >= interval '750 ms') FROM (
				SELECT a.started_at - lag(a.started_at) OVER (PARTITION BY a.delivery_id ORDER BY a.attempt) AS gap
				  FROM integration.delivery_attempts a JOIN integration.deliveries d ON d.id = a.delivery_id
				 WHERE d.event_id = $ea) g WHERE gap IS NOT NULL}) eq 't',
		"[$mode] A: each retry came after the scheduled delay");
	is($q->(qq{SELECT string_agg(event || ':' || level || ':' || n, ',' ORDER BY event) FROM (
				SELECT event, level, count(*) AS n FROM integration.integration_logs
				 WHERE (context->>'delivery_id')::bigint IN (SELECT id FROM integration.deliveries WHERE event_id = $ea)
				   AND context->>'error_class' = 'blocked_address'
				 GROUP BY event, level) l}),
		"delivery.failed:error:$nep,delivery.retrying:warning:" . 2 * $nep,
		"[$mode] A: each attempt is in integration_logs of the tenant");
	like($q->(qq{SELECT message FROM integration.integration_logs
				  WHERE event = 'delivery.failed' AND (context->>'delivery_id')::bigint =
						(SELECT id FROM } . $delivery->($ea, 'ip4') . ')'),
		qr/attempt 3 failed for good: connection to 127\.0\.0\.1 \Q$loopback_refused\E$/,
		"[$mode] A: the log message names the address");

	is(receiver_connections($r1), 0, "[$mode] A: no TCP connection reached 127.0.0.1");
	is(receiver_connections($r2), 0, "[$mode] A: none reached 127.0.0.2");
	is(receiver_connections($r6), 0, "[$mode] A: none reached ::1") if $r6;

	########################################################################
	# B. 127.0.0.1/32 allowed: only 127.0.0.1 receives.
	########################################################################

	$reload->([ "SET integration.allowed_networks = '127.0.0.1/32'" ]);
	$q->("SELECT integration.publish_event('probe.b', '{}')");
	my $eb = $last_event->('probe.b');
	my $to_r1 = join(',', map { $ep{$_} } qw(ip4 dec mapped name4));
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = $nep AND bool_and(CASE WHEN endpoint_id IN ($to_r1)
						THEN status = 'delivered' ELSE status = 'failed' END)
			   FROM integration.deliveries WHERE event_id = $eb"),
		"[$mode] B: the endpoints on 127.0.0.1 are delivered to, the others fail");
	for my $k (qw(ip4 dec mapped name4))
	{
		is($requests->($r1, "/$k"), 1, "[$mode] B: 127.0.0.1 received the request to $k");
	}
	like($attempt_classes->($eb, 'ip4b'), qr/^blocked_address(,blocked_address)*$/,
		"[$mode] B: 127.0.0.2 stays blocked");
	is(receiver_connections($r2), 0, "[$mode] B: no TCP connection reached 127.0.0.2");
	if ($r6)
	{
		like($attempt_classes->($eb, 'ip6'), qr/^blocked_address(,blocked_address)*$/,
			"[$mode] B: ::1 stays blocked");
		# localhost resolves to ::1 too, which stays blocked; 127.0.0.1 is tried on that
		# port, where nothing listens.
		like($attempt_classes->($eb, 'name6'), qr/,connect$/,
			"[$mode] B: localhost on the ::1 receiver's port: connect, over IPv4 only");
		is(receiver_connections($r6), 0, "[$mode] B: no TCP connection reached ::1");
	}

	########################################################################
	# C. Allowed no more: the connection kept alive from B carries nothing.
	########################################################################

	$reload->([ 'RESET integration.allowed_networks' ]);
	my $ec = $publish_until->('probe.c', 'ip4', 'blocked_address');
	ok(defined $ec, "[$mode] C: after the reload, 127.0.0.1 is blocked again");
	SKIP:
	{
		skip 'the reload never took effect', 3 unless defined $ec;
		my $conns = receiver_connections($r1);
		my $reqs = $requests->($r1, '/ip4');
		ok($node->poll_query_until('postgres',
				"SELECT status = 'failed' AND attempts = 3 FROM " . $delivery->($ec, 'ip4')),
			"[$mode] C: the delivery fails after its retries");
		is($requests->($r1, '/ip4') . '/' . receiver_connections($r1), "$reqs/$conns",
			"[$mode] C: no request and no new connection reached 127.0.0.1");
		is($q->("SELECT last_error FROM " . $delivery->($ec, 'ip4')),
			"connection to 127.0.0.1 $loopback_refused", "[$mode] C: blocked_address, naming it");
	}

	########################################################################
	# D. integration.https_only: http URLs are not sent.
	########################################################################

	$reload->([ "SET integration.allowed_networks = '127.0.0.1/32'",
		'SET integration.https_only = on' ]);
	my $reqs_d = $requests->($r1, '/ip4');
	my $ed = $publish_until->('probe.d', 'ip4', 'blocked_scheme');
	ok(defined $ed, "[$mode] D: an http URL fails with blocked_scheme");
	SKIP:
	{
		skip 'the reload never took effect', 2 unless defined $ed;
		is($q->("SELECT last_error FROM " . $delivery->($ed, 'ip4')),
			'not sent: the URL is not https and integration.https_only is on',
			"[$mode] D: the message says why");
		ok($node->poll_query_until('postgres',
				"SELECT status = 'failed' AND last_response IS NULL FROM " . $delivery->($ed, 'ip4'))
			  && $requests->($r1, '/ip4') == $reqs_d + ($q->(
				  "SELECT count(*) FROM integration.deliveries WHERE endpoint_id = $ep{ip4}
					  AND event_id > $eb AND status = 'delivered'")),
			"[$mode] D: nothing reached the receiver for it");
	}

	########################################################################
	# E. integration.proxy: the check applies to the proxy's address.
	########################################################################

	$reload->([ 'RESET integration.https_only',
		"SET integration.proxy = 'http://127.0.0.2:$r2->{port}'" ]);
	my $ee = $publish_until->('proxy.e', 'proxied', 'blocked_address');
	ok(defined $ee, "[$mode] E: a proxy on a blocked address is refused");
	is($q->("SELECT last_error FROM " . $delivery->($ee, 'proxied')),
		"connection to proxy 127.0.0.2 $loopback_refused", "[$mode] E: the message names the proxy")
	  if defined $ee;
	is(receiver_connections($r2), 0, "[$mode] E: no TCP connection reached the proxy");

	$reload->([ "SET integration.allowed_networks = '127.0.0.2/32'" ]);
	my $ef = $publish_until->('proxy.f', 'proxied', 'delivered');
	ok(defined $ef,
		"[$mode] E: once its address is allowed, requests go through the proxy, no_proxy notwithstanding");
	my ($via) = grep { $_->{path_only} eq '/proxied' } read_log($r2);
	is($via && $via->{headers}{host}, 'hooks.example.invalid',
		"[$mode] E: the proxy got the request for the name it resolves");
	# A blocked IP literal is refused before the proxy: the callback sees only the
	# proxy's address.
	$q->("SELECT integration.publish_event('probe.e', '{}')");
	my $eg = $last_event->('probe.e');
	ok($node->poll_query_until('postgres',
			"SELECT attempts >= 1 FROM " . $delivery->($eg, 'ip4')),
		"[$mode] E: a literal 127.0.0.1 through the proxy is tried");
	is($q->("SELECT last_error FROM " . $delivery->($eg, 'ip4')),
		"connection to 127.0.0.1 $loopback_refused",
		"[$mode] E: and refused, before the proxy sees it");
	is($requests->($r2, '/ip4'), 0, "[$mode] E: the proxy got no request for it");

	$node->stop('fast');
	stop_receiver($_) for grep { defined } ($r1, $r2, $r6);
}

run_mode('on');
run_mode('off');
done_testing();
