# Connectors end to end, on a real server:
#
#   1. Inbound webhooks signed by the platforms' official npm libraries (standardwebhooks
#      and svix for the generic kind; stripe and @octokit/webhooks-methods for kinds
#      registered here with those schemes) are accepted by receive_webhook(), stored
#      once when sent twice, and rejected when the body changed by one byte; a connector
#      whose secret list holds the signing secret second accepts them too.
#   2. test_connector() makes one authenticated call to the local receiver through libcurl:
#      bearer, basic and query credentials arrive as the kinds say; a status the kind
#      calls a failure comes back as ok = false with the status; an address the outbound
#      policy blocks is refused before any connection.
#   3. No log row, of a rejection or a test call, quotes a credential, a secret or a
#      signature.
#
# Node and the packages are required (test/interop, as 012_interop.pl): without them this
# test fails, it never skips.

use strict;
use warnings;

use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $json = JSON::PP->new->canonical;

my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -f "$interop/schemes.mjs", 'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
for my $p (qw(standardwebhooks svix stripe @octokit/webhooks-methods))
{
	ok(defined $interop && -f "$interop/node_modules/$p/package.json", "npm package $p is installed");
}
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

my $tmp = PostgreSQL::Test::Utils::tempdir('connectors');
my $node = new_integration_node('connectors');

sub dq { return '$c$' . $_[0] . '$c$'; }

sub sql
{
	my ($sql) = @_;
	utf8::downgrade($sql);
	return tenant_psql($node, $sql);
}

########################################################################
# 1. What the official libraries sign, receive_webhook() accepts.
########################################################################

sub std_secret { return 'whsec_' . encode_base64(pack('C*', @_), ''); }
my $std = std_secret(map { $_ * 5 % 256 } 1 .. 32);
my $std_other = std_secret(map { $_ * 3 % 256 } 1 .. 24);
my $stripe_secret = 'whsec_connectors0stripe0secret';
my $github_secret = "It's a Secret to Everybody";

# Stripe's is the shipped kind.  A kind for GitHub, written in SQL: the topic from
# GitHub's X-GitHub-Event header and the delivery id from X-GitHub-Delivery.
$node->safe_psql('postgres', q{
	CREATE FUNCTION github_normalise(c integration.connector_context, headers jsonb, body text)
		RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
		AS $$ SELECT integration.header(headers, 'x-github-delivery'), integration.header(headers, 'x-github-event'),
					 NULL::text, body::jsonb $$;
	SELECT integration.register_connector_kind('github', 'bearer', 'github',
		normalise => 'github_normalise(integration.connector_context, jsonb, text)');
});
my %connector;
for my $c ([ std => 'generic', $std ], [ std_rotated => 'generic', "$std_other $std" ],
	[ stripe => 'stripe', $stripe_secret ], [ stripe_rotated => 'stripe', "whsec_older0one $stripe_secret" ],
	[ github => 'github', $github_secret ])
{
	my ($name, $kind, $secret) = @$c;
	$connector{$name} = sql(
		"SELECT id FROM integration.create_connector(" . join(', ', map { dq($_) }
			  ($kind, $name, 'https://api.example.invalid',
				'{"' . ($kind eq 'stripe' ? 'secret_key' : 'token') . '": "connector-token-' . $name . '"}',
				'{}', $secret))
		  . ")");
}

my $now = time();
my @bodies = (
	[ ASCII => '{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"inv_1","amount":9900}}' ],
	[ 'UTF-8' => '{"type":"note.added","timestamp":"2026-01-01T00:00:00Z","data":{"id":"n_1","text":"Zoë ☃ 日本語 😀 \"q\" \\\\ \\n"}}' ],
	[ '200 kB' => '{"type":"report.ready","timestamp":"2026-01-01T00:00:00Z","data":{"id":"r_1","blob":"' . ('0123456789abcdef' x 12500) . '"}}' ],
);
my (@sign, %target);
my $n = 0;
for my $b (@bodies)
{
	my ($bname, $body) = @$b;
	for my $c ([ standardwebhooks => 'std', $std ], [ standardwebhooks => 'std_rotated', $std ],
		[ svix => 'std', $std ], [ stripe => 'stripe', $stripe_secret ],
		[ stripe => 'stripe_rotated', $stripe_secret ], [ '@octokit/webhooks-methods' => 'github', $github_secret ])
	{
		my ($lib, $conn, $secret) = @$c;
		$n++;
		# Stripe's body carries its event id; each case its own.
		(my $b2 = $body) =~ s/^\{/{"id":"evt_$n","object":"event",/;
		push @sign, { library => $lib, secret => $secret, body => $b2, msg_id => "msg_conn$n",
			timestamp => $now, name => "$lib to $conn, $bname body" };
		$target{"$lib to $conn, $bname body"} = $conn;
	}
}
open(my $fh, '>:raw', "$tmp/cases.json") or die $!;
print $fh $json->encode({ verify => [], sign => \@sign });
close $fh;
my ($out, $err) = ('', '');
IPC::Run::run([ 'node', "$interop/schemes.mjs", "$tmp/cases.json" ], '>', \$out, '2>', \$err)
  or die "node schemes.mjs failed: $err";
my $signed = $json->decode($out)->{signed};
is(scalar @$signed, scalar @sign, 'the libraries signed ' . scalar(@sign) . ' bodies');

my (@wrong, %accepted_by);
for my $s (@$signed)
{
	my ($case) = grep { $_->{name} eq $s->{name} } @sign;
	my $headers = $json->encode($s->{headers});
	# GitHub's event and delivery headers are not signed: the platform sends them along.
	$headers = $json->encode({ %{ $s->{headers} }, 'X-GitHub-Event' => 'issues.opened',
			'X-GitHub-Delivery' => $case->{msg_id} })
	  if $s->{library} eq '@octokit/webhooks-methods';
	my $id = $connector{ $target{ $s->{name} } };
	my $call = sub {
		my ($body) = @_;
		return "(SELECT string_agg(status, ',') FROM integration.receive_webhook($id, "
		  . dq($headers) . ", " . dq($body) . "))";
	};
	my $r = sql("SELECT concat_ws(' ', " . $call->($case->{body}) . ', ' . $call->($case->{body})
		  . ', ' . $call->($case->{body} . ' ') . ")");
	if ($r eq 'accepted duplicate rejected') { $accepted_by{ $s->{library} }++; }
	else { push @wrong, "$s->{name}: $r"; }
}
for my $lib (qw(standardwebhooks svix stripe @octokit/webhooks-methods))
{
	my $want = grep { $_->{library} eq $lib } @sign;
	is($accepted_by{$lib} // 0, $want,
		"all $want requests $lib signed are accepted once, a duplicate the second time, rejected with one byte added");
}
is(scalar @wrong, 0, 'receive_webhook() agreed with the libraries on every request') or diag(join("\n", @wrong));
is( sql("SELECT string_agg(DISTINCT event, ',' ORDER BY event) FROM integration.inbound_events"),
	'generic.invoice.paid,generic.note.added,generic.report.ready,github.issues.opened,'
	  . 'stripe.invoice.paid,stripe.note.added,stripe.report.ready',
	'the events are named <kind>.<topic>');
is(sql("SELECT payload #>> '{data,text}' = " . dq("Zoë ☃ 日本語 😀 \"q\" \\ \n")
	  . " FROM integration.inbound_events WHERE external_id = 'msg_conn7'"),
	't', 'a UTF-8 body is stored as it was sent');

########################################################################
# 2. test_connector() against the local receiver.
########################################################################

my $recv = start_receiver();
my $base = receiver_url($recv, '');
$node->safe_psql('postgres', q{
	-- A kind whose test call carries the query its settings name, authenticated with
	-- query parameters.
	CREATE FUNCTION probe_build(c integration.connector_context, operation text, payload jsonb, key text)
		RETURNS integration.connector_request LANGUAGE sql STABLE
		AS $$ SELECT 'GET', '/probe', (c).settings -> 'query', '{"X-Probe": "1"}'::jsonb, NULL::text $$;
	SELECT integration.register_connector_kind('probe', 'query', 'none',
		build_request => 'probe_build(integration.connector_context, text, jsonb, text)',
		interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)');
	CREATE FUNCTION basic_build(c integration.connector_context, operation text, payload jsonb, key text)
		RETURNS integration.connector_request LANGUAGE sql STABLE
		AS $$ SELECT 'POST', '/basic', NULL::jsonb, '{"Content-Type": "application/json"}'::jsonb, '{"ping":true}' $$;
	SELECT integration.register_connector_kind('basicapi', 'basic', 'none',
		build_request => 'basic_build(integration.connector_context, text, jsonb, text)',
		interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)');
});
my $gen = sql("SELECT id FROM integration.create_connector('generic', 'api', " . dq($base . '/v1/')
	  . ", '{\"token\": \"bearer-token-4f9a2c\"}', '{\"test_path\": \"/health\"}')");
my $probe_ok = sql("SELECT id FROM integration.create_connector('probe', 'probe-ok', " . dq($base)
	  . ", '{\"api_key\": \"query-key-77b1&x=y\"}', '{\"query\": {\"check\": \"yes\"}}')");
my $probe_503 = sql("SELECT id FROM integration.create_connector('probe', 'probe-503', " . dq($base)
	  . ", '{\"api_key\": \"query-key-77b1&x=y\"}', '{\"query\": {\"status\": \"503\"}}')");
my $basic = sql("SELECT id FROM integration.create_connector('basicapi', 'basic', " . dq($base)
	  . ", '{\"username\": \"ada\", \"password\": \"pass-word-5e1d\"}')");

is(sql("SELECT concat_ws('|', ok, status, latency > '0' AND latency < '10s', error) FROM integration.test_connector($gen)"),
	't|200|t', 'the generic kind\'s test call succeeds');
is(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($probe_ok)"),
	't|200', 'so does the probe kind\'s');
like(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($probe_503)"),
	qr/^f\|503\|HTTP 503/, 'a 503 is a failure with its status');
is(sql("SELECT concat_ws('|', ok, status) FROM integration.test_connector($basic)"), 't|200', 'and basic auth');
my @reqs = wait_for_requests($recv, 4, 10);
is(scalar @reqs, 4, 'the receiver got four requests');
my %by_path = map { $_->{path_only} => $_ } @reqs;
is($by_path{'/v1/health'}{method}, 'GET', 'generic: GET base_url + test_path');
is($by_path{'/v1/health'}{headers}{authorization}, 'Bearer bearer-token-4f9a2c', 'with the bearer token');
like($by_path{'/v1/health'}{headers}{'user-agent'}, qr{^pg-integration/}, 'and the extension\'s User-Agent');
my @probes = sort map { $_->{path} } grep { $_->{path_only} eq '/probe' } @reqs;
like($probes[0], qr{^/probe\?check=yes&api_key=query-key-77b1%26x%3[dD]y$},
	'probe: the adapter\'s query, then the credential, URL-encoded');
like($probes[1], qr{^/probe\?status=503&api_key=query-key-77b1%26x%3[dD]y$}, 'for each connector');
is($by_path{'/probe'}{headers}{'x-probe'}, '1', 'with the adapter\'s header');
ok(!exists $by_path{'/probe'}{headers}{authorization}, 'and no Authorization header');
is($by_path{'/basic'}{method}, 'POST', 'basic: the adapter\'s method');
is($by_path{'/basic'}{body}, '{"ping":true}', 'and body');
is($by_path{'/basic'}{headers}{authorization}, 'Basic ' . encode_base64('ada:pass-word-5e1d', ''),
	'with HTTP Basic credentials');

# The outbound policy applies at connect time: with loopback no longer allowed, the call
# is refused before any connection.
my $before = receiver_connections($recv);
$node->append_conf('postgresql.conf', "integration.allowed_networks = ''");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('integration.allowed_networks') = ''");
like(sql("SELECT concat_ws('|', ok, status, error) FROM integration.test_connector($gen)"),
	qr/^f\|0\|blocked_address: .*127\.0\.0\.1/, 'a blocked address is the call\'s error, with status 0');
is(receiver_connections($recv), $before, 'and no connection reached the receiver');
stop_receiver($recv);

########################################################################
# 3. No log row quotes a secret, a credential or a signature.
########################################################################

my $logs = sql("SELECT string_agg(message || ' ' || context::text, E'\\n') FROM integration.integration_logs");
my @rejections = split /\n/, sql("SELECT context ->> 'reason' FROM integration.integration_logs WHERE event = 'inbound.rejected'");
is(scalar @rejections, scalar @sign, 'every tampered request left a rejection row');
is(scalar(grep { $_ eq 'signature_invalid' } @rejections), scalar @sign, 'each saying the signature did not match');
like($logs, qr/connector \d+ tested: ok/, 'the test calls are logged');
my @leaks;
for my $secret ($std, $std_other, $stripe_secret, $github_secret, 'bearer-token-4f9a2c', 'query-key-77b1',
	'pass-word-5e1d', 'connector-token-', encode_base64('ada:pass-word-5e1d', ''))
{
	push @leaks, $secret if index($logs, $secret) >= 0;
}
for my $s (@$signed)
{
	for my $v (values %{ $s->{headers} })
	{
		for my $sig ($v =~ /(?:v1,|v1=|sha256=)([A-Za-z0-9+\/=]{20,})/g)
		{
			push @leaks, $sig if index($logs, $sig) >= 0;
		}
	}
}
is(scalar @leaks, 0, 'no log row quotes a secret, credential or signature') or diag(join("\n", @leaks));

$node->stop;
done_testing();
