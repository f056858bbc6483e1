# Interoperability, proven with other people's code: each platform's official npm
# library (test/interop/package.json, installed by scripts/install-deps with npm ci)
# checks what the extension sends and signs, and signs what integration.verify() must
# accept.
#
#   1. What the worker sends: real deliveries (ASCII, UTF-8, ~200 kB, an empty object,
#      null, a tracked row; endpoints with one secret and with two; retried attempts) reach
#      the receiver, and `standardwebhooks` and `svix` verify every logged request with
#      each secret of its endpoint.  Tampered copies, and another secret, are rejected.
#   2. What integration.sign() produces is accepted by standardwebhooks and svix
#      (standard), stripe (stripe), @octokit/webhooks-methods (github) and
#      @shopify/shopify-api (shopify), and a body changed by one space is rejected.
#   3. What standardwebhooks, svix, stripe and @octokit/webhooks-methods sign,
#      integration.verify() accepts; changed, stale or under another secret, it refuses.
#
# WooCommerce publishes no verifier on npm: test/sql/signing.sql keeps its known answers.
# Node and the packages are required: without them this test fails, it never skips.
# $ENV{INTEGRATION_INTEROP} is the test/interop directory with node_modules (test/run
# sets it; to run this file alone, set it to the project's test/interop).

use strict;
use warnings;

use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Strings stay bytes throughout (no utf8 flag, as read_log does): what Perl writes, psql
# sends and Node reads is the UTF-8 of this file, byte for byte.
my $json = JSON::PP->new->canonical;

########################################################################
# 0. Node and the official libraries are there.
########################################################################

my $interop = $ENV{INTEGRATION_INTEROP};
my @packages = qw(standardwebhooks svix stripe @octokit/webhooks-methods @shopify/shopify-api);
ok(defined $interop && -f "$interop/deliveries.mjs",
	'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
my ($node_version, $node_err) = ('', '');
my $have_node = eval {
	IPC::Run::run([ 'node', '--version' ], '>', \$node_version, '2>', \$node_err);
};
chomp $node_version;
ok($have_node, "node runs ($node_version)") or diag("node: $@ $node_err");
for my $p (@packages)
{
	ok(defined $interop && -f "$interop/node_modules/$p/package.json", "npm package $p is installed")
	  or diag("run scripts/install-deps, which runs npm ci in test/interop");
}
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

# Runs a script of test/interop; returns its JSON answer.
sub run_node
{
	my ($script, @args) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'node', "$interop/$script", @args ], '>', \$out, '2>', \$err);
	diag("node $script: $err") if $err ne '';
	die "node $script failed (exit $?): $err" unless $ok;
	return $json->decode($out);
}

my $tmp = PostgreSQL::Test::Utils::tempdir('interop');

sub write_json
{
	my ($name, $data) = @_;
	my $path = "$tmp/$name";
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $json->encode($data);
	close $fh;
	return $path;
}

# Standard Webhooks secrets of the three allowed key sizes: whsec_ + base64 of the key.
sub std_secret { return 'whsec_' . encode_base64(pack('C*', @_), ''); }
my $std_24 = std_secret(map { $_ * 7 % 256 } 1 .. 24);
my $std_64 = std_secret(map { 255 - $_ } 0 .. 63);
my $std_other = std_secret(map { $_ * 3 % 256 } 1 .. 32);

my $node = new_integration_node('interop', "integration.retry_schedule = '100ms, 100ms'");

# One statement per line of output.  The statements are bytes: a string that JSON::PP
# returned is flagged as characters, and IPC::Run would send the UTF-8 of each byte of
# a body joined to it, so the flag goes before psql sees the text.
sub sql_lines
{
	my $sql = join('', @_);
	utf8::downgrade($sql);
	my @out = split /\n/, $node->safe_psql('postgres', $sql);
	return @out;
}

########################################################################
# 1. Every request the worker sends verifies with standardwebhooks and svix.
########################################################################

my $recv = start_receiver();
my $std_32 = $node->safe_psql('postgres', 'SELECT integration.generate_secret()');
my %endpoints = (
	'/one'   => [$std_32],
	'/two'   => [ $std_24, $std_64 ],
	# the first two requests get 503, so two events are signed and sent twice
	'/retry' => [ $node->safe_psql('postgres', 'SELECT integration.generate_secret()') ],
);
my %query = ('/retry' => { status => '503x2' });
for my $path (sort keys %endpoints)
{
	my $url = receiver_url($recv, $path, %{ $query{$path} // {} });
	my $secret = join ' ', @{ $endpoints{$path} };
	tenant_psql($node, qq{
		SELECT integration.register_webhook(name => '$path', url => '$url',
			events => '["*"]', secret => '$secret')});
}

$node->safe_psql('postgres', q{
	CREATE TABLE customers (tenant_id text NOT NULL, id int PRIMARY KEY, name text);
	SELECT integration.track_table('customers', 'customer');
});
tenant_psql($node, q{
	BEGIN;
	SELECT integration.publish_event('invoice.paid', '{"invoice_id": 42, "amount": "99.00"}');
	SELECT integration.publish_event('note.added',
		'{"text": "Zoë Ångström, naïve café ☃ 日本語 😀", "quoted": "say \"hi\"\\n\ttab", "escaped": "\u00e9"}');
	SELECT integration.publish_event('report.ready',
		jsonb_build_object('rows', (SELECT jsonb_agg(jsonb_build_object('i', i, 'label', 'Ünïcödé row ' || i))
									  FROM generate_series(1, 5000) AS i)));
	SELECT integration.publish_event('ping', '{}');
	SELECT integration.publish_event('nothing', NULL);
	INSERT INTO customers VALUES ('acme', 1, 'Søren Kierkegaard ✓');
	COMMIT;
});
my $events = 6;
my %expected = ('/one' => $events, '/two' => $events, '/retry' => $events + 2);
my $total = 0;
$total += $_ for values %expected;

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 3 * $events FROM integration.deliveries WHERE status = 'delivered'"),
	'all ' . 3 * $events . ' deliveries are delivered');
wait_for_requests($recv, $total, 30);
stop_receiver($recv);    # writes out the rest of its log
my @logged = read_log($recv);
is(scalar @logged, $total, "the receiver logged $total requests");
my ($large) = grep { $_->{body} =~ /"report\.ready"/ } @logged;
cmp_ok($large->{body_len}, '>', 190_000, "one body is large ($large->{body_len} bytes)");
my %retry_ids = map { $_->{headers}{'webhook-id'} => 1 } grep { $_->{path_only} eq '/retry' } @logged;
is(scalar keys %retry_ids, $events,
	"the $expected{'/retry'} requests to /retry carry the $events events' ids: two were retries");

my $r = run_node('deliveries.mjs', $recv->{log}, write_json('endpoints.json', \%endpoints));
is($r->{requests}, $total, "Node read the same $total requests");
is_deeply($r->{by_path}, \%expected, 'to the three endpoints');
is_deeply($r->{body_bytes_differ}, [], 'every logged body gives back its exact bytes');
for my $lib (qw(standardwebhooks svix))
{
	for my $path (sort keys %endpoints)
	{
		my $n = @{ $endpoints{$path} };
		for my $s (0 .. $n - 1)
		{
			is($r->{accepted}{$lib}{$path}[$s], $expected{$path},
				"$lib Webhook.verify accepts all $expected{$path} requests to $path"
				  . ($n > 1 ? ' with secret ' . ($s + 1) . " of $n" : ''));
		}
	}
	for my $tamper ('another secret', 'body + one space', 'each signature changed',
		'webhook-id changed', 'webhook-timestamp + 1 s')
	{
		is($r->{tampered}{$lib}{$tamper}, $total,
			"$lib rejects all $total requests with $tamper");
	}
}
is(scalar @{ $r->{rejections} }, 0, 'no request was rejected')
  or diag(explain($r->{rejections}));
is(scalar @{ $r->{tampered_accepted} }, 0, 'no tampered request was accepted')
  or diag(explain($r->{tampered_accepted}));

########################################################################
# 2. What integration.sign() produces, the platforms' libraries accept.
########################################################################

my %bodies = (
	'ASCII'        => '{"id":"evt_1","object":"event","type":"invoice.paid","data":{"amount":9900}}',
	'UTF-8'        => '{"id":"evt_2","object":"event","name":"Zoë ☃ 日本語 😀","quote":"\"x\" \\\\ \\n"}',
	'200 kB'       => '{"id":"evt_3","object":"event","blob":"' . ('0123456789abcdef' x 12500) . '","end":"é"}',
	'empty object' => '{}',
);
my @body_names = sort keys %bodies;
my $stripe_1 = 'whsec_interop0stripe0first0secret';
my $stripe_2 = 'whsec_interop0stripe0second0secret';
my $github = "It's a Secret to Everybody";
my $shopify = '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';
my %schemes = (
	standard => [ $std_32, "$std_24 $std_64" ],
	stripe   => [ $stripe_1, "$stripe_1 $stripe_2" ],
	github   => [$github],
	shopify  => [$shopify],
);
my %libraries = (
	standard => [qw(standardwebhooks svix)],
	stripe   => ['stripe'],
	github   => ['@octokit/webhooks-methods'],
	shopify  => ['@shopify/shopify-api'],
);

sub dollar_quote { return '$interop$' . $_[0] . '$interop$'; }

# integration.sign() for every scheme, secret and body, signed now.
my @verify;
for my $scheme (sort keys %schemes)
{
	for my $secret (@{ $schemes{$scheme} })
	{
		for my $b (@body_names)
		{
			push @verify, { scheme => $scheme, secret => $secret, body => $bodies{$b},
				name => "$scheme, " . scalar(split(' ', $secret)) . " secret(s), $b body" };
		}
	}
}
# Stripe's tolerance, against the timestamp the extension signed: 299 s old is in, 301 s is out.
for my $age (299, 301)
{
	push @verify, { scheme => 'stripe', secret => $stripe_1, body => $bodies{ASCII},
		timestamp => 1700000000, received_at => 1700000000 + $age, name => "stripe, $age s old" };
}
my @signed = sql_lines(map {
	sprintf("SELECT integration.sign('%s', %s, %s, NULL, %s);\n", $_->{scheme},
		dollar_quote($_->{secret}), dollar_quote($_->{body}), $_->{timestamp} // 'NULL')
} @verify);
is(scalar @signed, scalar @verify, 'integration.sign() signed ' . scalar(@verify) . ' bodies');
$verify[$_]{headers} = $json->decode($signed[$_]) for 0 .. $#verify;

########################################################################
# 3. What the libraries sign, integration.verify() accepts.
########################################################################

my $ts = 1700000000;
my @sign;
my %signer_scheme = (
	standardwebhooks => 'standard',
	svix => 'standard',
	stripe => 'stripe',
	'@octokit/webhooks-methods' => 'github',
);
for my $b (@body_names)
{
	my $i = 0;
	for my $c ([ standardwebhooks => $std_32 ], [ standardwebhooks => "$std_24 $std_64" ],
		[ svix => $std_32 ], [ stripe => $stripe_2 ], [ '@octokit/webhooks-methods' => $github ])
	{
		push @sign, { library => $c->[0], secret => $c->[1], body => $bodies{$b},
			msg_id => 'msg_2KWPBgLlAfxdpx2AI54pPJ' . $i++, timestamp => $ts,
			name => "$c->[0], " . scalar(split(' ', $c->[1])) . " secret(s), $b body" };
	}
}

my $answer = run_node('schemes.mjs', write_json('cases.json', { verify => \@verify, sign => \@sign }));

# Direction 2: group the answers by scheme and library.
my (%checked, %accepted, %tamper_rejected, @bad);
for my $v (@{ $answer->{verified} })
{
	my ($case) = grep { $_->{name} eq $v->{name} } @verify;
	next if $case->{received_at};
	my $key = "$case->{scheme}|$v->{library}";
	$checked{$key}++;
	if ($v->{result} eq 'ok') { $accepted{$key}++; }
	else { push @bad, "$v->{name}, $v->{library}, secret $v->{secret}: $v->{result}"; }
	if ($v->{tampered} =~ /^rejected/) { $tamper_rejected{$key}++; }
	else { push @bad, "$v->{name}, $v->{library}, body + ' ': $v->{tampered}"; }
}
for my $scheme (sort keys %libraries)
{
	# For standard and stripe each secret of a list is checked on its own.
	my $keys = $scheme =~ /^(standard|stripe)$/
	  ? scalar(map { split ' ' } @{ $schemes{$scheme} }) : @{ $schemes{$scheme} };
	my $want = @body_names * $keys;
	for my $lib (@{ $libraries{$scheme} })
	{
		my $key = "$scheme|$lib";
		is($checked{$key} // 0, $want, "$lib checked integration.sign('$scheme') $want times")
		  or diag(explain($answer->{verified}));
		is($accepted{$key} // 0, $want, "$lib accepts every integration.sign('$scheme') signature");
		is($tamper_rejected{$key} // 0, $want, "$lib rejects each of them with one space added to the body");
	}
}
is(scalar @bad, 0, 'no library refused a signature or accepted a changed body') or diag(join("\n", @bad));
my %stripe_age = map { $_->{name} => $_->{result} } grep { $_->{name} =~ /s old$/ } @{ $answer->{verified} };
is($stripe_age{'stripe, 299 s old'}, 'ok', "stripe accepts a signature 299 s old (tolerance 300 s)");
like($stripe_age{'stripe, 301 s old'} // '', qr/^rejected: .*tolerance/,
	"stripe rejects it 301 s old: it reads the extension's t= as the signing time");

# Direction 3: each library-signed request through integration.verify(), as is, with one
# space added to the body, under another secret, and for standard and stripe 301 s late.
# A standard or stripe receiver that rotates holds two secrets: the one the library used
# is the second.
is(scalar @{ $answer->{signed} }, scalar @sign, 'the libraries signed ' . scalar(@sign) . ' bodies');
my %other_secret = (standard => $std_other, stripe => $stripe_1, github => 'another secret');
my @verdicts = sql_lines(map {
	my $s = $_;
	my ($case) = grep { $_->{name} eq $s->{name} } @sign;
	my $scheme = $signer_scheme{ $s->{library} };
	my $secret = dollar_quote($case->{secret});
	my $wrong = dollar_quote($other_secret{$scheme});
	my $headers = dollar_quote($json->encode($s->{headers}));
	my $body = dollar_quote($case->{body});
	my $now = "'5 minutes', to_timestamp($ts + 10)";
	my ($rotated, $late) = ('true', 'true');    # github has neither
	if ($scheme ne 'github')
	{
		$rotated = "integration.verify('$scheme', "
		  . dollar_quote("$other_secret{$scheme} $case->{secret}") . ", $headers, $body, $now)";
		$late = "NOT integration.verify('$scheme', $secret, $headers, $body, "
		  . "'5 minutes', to_timestamp($ts + 301))";
	}
	"SELECT concat_ws(' ',
		integration.verify('$scheme', $secret, $headers, $body, $now),
		$rotated,
		NOT integration.verify('$scheme', $secret, $headers, $body || ' ', $now),
		NOT integration.verify('$scheme', $wrong, $headers, $body, $now),
		$late);\n";
} @{ $answer->{signed} });
my (%verified, %refused, @wrong);
for my $i (0 .. $#{ $answer->{signed} })
{
	my $s = $answer->{signed}[$i];
	my ($as_is, $rotated, @refusals) = split ' ', $verdicts[$i] // '';
	$verified{ $s->{library} } += ($as_is // '') eq 't' && ($rotated // '') eq 't';
	$refused{ $s->{library} } += 3 == grep { $_ eq 't' } @refusals;
	push @wrong, "$s->{name}: $verdicts[$i] for " . $json->encode($s->{headers})
	  unless ($verdicts[$i] // '') eq 't t t t t';
}
for my $lib (sort keys %signer_scheme)
{
	my $want = grep { $_->{library} eq $lib } @sign;
	my $scheme = $signer_scheme{$lib};
	my $github = $scheme eq 'github';
	is($verified{$lib} // 0, $want,
		"integration.verify('$scheme') accepts all $want bodies $lib signed"
		  . ($github ? '' : ', with its secret alone and in a rotation list'));
	is($refused{$lib} // 0, $want,
		"and refuses each with one space added, under another secret"
		  . ($github ? '' : ' or 301 s late'));
}
is(scalar @wrong, 0, 'integration.verify() agreed with the libraries on every case')
  or diag(join("\n", @wrong));

$node->stop;
done_testing();
