# Secret rotation (issue #15, item 6), checked by the official Standard Webhooks
# libraries (standardwebhooks and svix, as in 012_interop.pl), each with one secret at a
# time, as a receiver that knows one secret verifies:
#   1. before the rotation, the endpoint's secret verifies, the next one does not exist;
#   2. during the grace period, a receiver that knows only the old secret verifies every
#      delivery, and so does one that knows only the new secret: webhook-signature
#      carries both, space-separated;
#   3. after the grace, only the new secret verifies, and the worker purges the old one;
#   4. a retired secret is re-encrypted by reencrypt_secrets() under a new key, and the
#      worker still signs with it;
#   5. no secret, old or new, reaches the server log.
# Node and the packages are required ($ENV{INTEGRATION_INTEROP}, as for 012_interop.pl):
# without them this test fails, it never skips.

use strict;
use warnings;

use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $json = JSON::PP->new->canonical;
my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -f "$interop/deliveries.mjs", 'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
for my $p (qw(standardwebhooks svix))
{
	ok(defined $interop && -f "$interop/node_modules/$p/package.json", "npm package $p is installed")
	  or diag('run scripts/install-deps, which runs npm ci in test/interop');
}
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

my $node = new_integration_node('rotation', "integration.idle_recheck_interval = '1s'");
my $tmp = PostgreSQL::Test::Utils::tempdir('rotation');
my $recv = start_receiver();
my $url = receiver_url($recv, '/hook');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

my ($ep, $old) = split /\|/, tenant_psql($node,
	"SELECT id || '|' || secret FROM integration.register_webhook('r', '$url', '[\"*\"]')");

# Publishes $count events of a phase and waits until they are delivered.
my %phase_of;    # webhook-id -> phase
sub publish_phase
{
	my ($phase, $count) = @_;
	tenant_psql($node, "SELECT count(integration.publish_event('rotation.$phase', jsonb_build_object('i', g)))
		  FROM generate_series(1, $count) g");
	ok($node->poll_query_until('postgres', "SELECT count(*) = $count FROM integration.webhook_deliveries
		  WHERE event = 'rotation.$phase' AND status = 'delivered'"),
		"the $count events of phase '$phase' are delivered");
	$phase_of{$_} = $phase for split /\n/, q1("SELECT message_id FROM integration.webhook_events
		  WHERE event = 'rotation.$phase'");
	return;
}

# Checks the phase's logged requests with the libraries, one secret at a time; returns
# {accepted => [count per secret], requests, signatures per request}.
sub verify_phase
{
	my ($phase, @secrets) = @_;
	my $log = "$tmp/$phase.jsonl";
	# The receiver writes its log up to 20 ms after it answered: wait until the log
	# holds every request it counted.
	read_log_settled($recv);
	open(my $in, '<:raw', $recv->{log}) or die "$recv->{log}: $!";
	open(my $out, '>:raw', $log) or die "$log: $!";
	my ($n, %signatures) = (0);
	while (my $line = <$in>)
	{
		last unless $line =~ /\n\z/;
		my $req = JSON::PP->new->decode($line);
		next unless ($phase_of{ $req->{headers}{'webhook-id'} } // '') eq $phase;
		print $out $line;
		$n++;
		$signatures{ scalar(split ' ', $req->{headers}{'webhook-signature'}) }++;
	}
	close $in;
	close $out;
	my $endpoints = "$tmp/$phase.json";
	open(my $fh, '>:raw', $endpoints) or die "$endpoints: $!";
	print $fh $json->encode({ '/hook' => \@secrets });
	close $fh;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run([ 'node', "$interop/deliveries.mjs", $log, $endpoints ], '>', \$stdout, '2>', \$stderr)
	  or die "node deliveries.mjs failed: $stderr";
	my $r = $json->decode($stdout);
	return { requests => $n, signatures => [ sort keys %signatures ], libs => $r->{accepted} };
}

sub accepted
{
	my ($r, $lib, $i) = @_;
	return $r->{libs}{$lib}{'/hook'}[$i] // 0;
}

########################################################################
# 1. Before the rotation.
########################################################################

publish_phase('before', 3);

########################################################################
# 2. Rotated, within the grace period: both secrets verify.
########################################################################

my $new = tenant_psql($node, "SELECT integration.rotate_secret($ep, grace => '6 seconds')");
like($new, qr{^whsec_[A-Za-z0-9+/]{43}=$}, 'rotate_secret() returns a new generated secret');
isnt($new, $old, 'a different one');
my $expires = q1("SELECT extract(epoch FROM expires_at) FROM integration.retired_secrets WHERE endpoint_id = $ep");
publish_phase('grace', 4);
is(q1("SELECT bool_and(delivered_at < to_timestamp($expires)) FROM integration.deliveries d
		JOIN integration.webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id
	   WHERE e.event = 'rotation.grace'"), 't', 'all sent before the grace ended');

########################################################################
# 3. After the grace: only the new secret.
########################################################################

ok($node->poll_query_until('postgres', "SELECT now() > to_timestamp($expires)"), 'the grace period ends');
publish_phase('after', 3);
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM integration.retired_secrets"),
	'the worker purges the expired secret');

for my $case (
	[ 'before', 3, [ 3, 0 ], '1', 'before the rotation, only the old secret verifies' ],
	[ 'grace',  4, [ 4, 4 ], '2', 'during the grace, a receiver with only the old secret and one with only the new one both verify' ],
	[ 'after',  3, [ 0, 3 ], '1', 'after the grace, only the new secret verifies' ])
{
	my ($phase, $count, $want, $sigs, $what) = @$case;
	my $r = verify_phase($phase, $old, $new);
	is($r->{requests}, $count, "$count requests of phase '$phase' logged");
	is_deeply($r->{signatures}, [$sigs], "each with $sigs signature(s) in webhook-signature");
	for my $lib (qw(standardwebhooks svix))
	{
		is_deeply([ accepted($r, $lib, 0), accepted($r, $lib, 1) ], $want, "$lib: $what");
	}
}

########################################################################
# 4. A new key: the retired secret is re-encrypted, and still signs.
########################################################################

my $new2 = tenant_psql($node, "SELECT integration.rotate_secret($ep, grace => '1 hour')");
my $key1 = q1("SELECT key_id FROM integration.encryption_keys() WHERE encrypts");
my $old_hex = do { local $/; open(my $fh, '<', key_file_path($node)) or die; <$fh> };
$old_hex =~ s/\s+//g;
write_key_file(key_file_path($node), random_key(), $old_hex);
$node->restart;
my $key2 = q1("SELECT key_id FROM integration.encryption_keys() WHERE encrypts");
isnt($key2, $key1, 'a new key encrypts');
is(q1("SELECT integration.secret_key_id(secret) FROM integration.retired_secrets WHERE endpoint_id = $ep"), $key1,
	'the retired secret is under the old key');
is(q1("SELECT integration.reencrypt_secrets()"), '2', 'reencrypt_secrets() changes the endpoint\'s secret and the retired one');
is(q1("SELECT integration.secret_key_id(secret) FROM integration.retired_secrets WHERE endpoint_id = $ep"), $key2,
	'the retired secret is under the new key');
publish_phase('rekeyed', 2);
my $r = verify_phase('rekeyed', $new, $new2);
for my $lib (qw(standardwebhooks svix))
{
	is_deeply([ accepted($r, $lib, 0), accepted($r, $lib, 1) ], [ 2, 2 ],
		"$lib: the retired secret, re-encrypted, still signs beside the current one");
}

########################################################################
# 5. No secret in the server log.
########################################################################

my $log = slurp_file($node->logfile);
for my $s ([ old => $old ], [ new => $new ], [ newest => $new2 ])
{
	(my $b64 = $s->[1]) =~ s/^whsec_//;
	is(index($log, substr($b64, 0, 16)), -1, "the $s->[0] secret is not in the server log");
}
is(q1("SELECT count(*) FROM integration.integration_logs l
	   WHERE strpos(l::text, substr('$new', 7, 16)) > 0 OR strpos(l::text, substr('$old', 7, 16)) > 0"), '0',
	'nor in integration_logs');

unlike(slurp_file($node->logfile), qr/integration worker: .* failed:/,
	'no transaction of the worker failed');

stop_receiver($recv);
$node->stop;
done_testing();
