# README's "Getting started" runs as written: every ```sql block of that section, in
# order, in psql, against a server with the extension, with the example endpoint's URL
# pointed at a local receiver.  The two events it publishes arrive there, signed.
#
# So does "Receiving webhooks": its SQL creates the connector, its HTTP front (the ```js
# block) runs under Node.js with node-postgres from test/interop ($ENV{INTEGRATION_INTEROP},
# set by test/run), and requests signed as Standard Webhooks senders sign them get 200,
# once stored; a changed one, or one for another tenant, gets 401 and a log row.

use strict;
use warnings;

use File::Basename qw(dirname);
use HTTP::Tiny;
use IntegrationTest;
use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = dirname(__FILE__) . '/README.md';
my $text = slurp_file($readme);
my ($section) = $text =~ /^## Getting started\n(.*?)^## /ms;
ok(defined $section, 'README has a Getting started section');
my @blocks = ($section =~ /^```sql\n(.*?)^```/msg);
cmp_ok(scalar @blocks, '>=', 4, 'with its SQL examples (' . scalar(@blocks) . ' blocks)');

my $node = new_integration_node('readme', "integration.retry_schedule = '100ms'");
my $recv = start_receiver();
my $url = receiver_url($recv, '/hooks/orders');

my $i = 0;
my $secret;
for my $sql (@blocks)
{
	$i++;
	$sql =~ s{https://erp\.example\.com/hooks/orders}{$url}g;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql,
		on_error_stop => 1, extra_params => [ '-A', '-t', '-F', '|' ]);
	is($ret, 0, "block $i runs without an error") or diag("$sql\n$stderr");
	unlike($stderr, qr/ERROR/, "block $i prints no error");
	($secret) = $stdout =~ /\|(whsec_\S+)/ if $i == 1;
}
ok(defined $secret, 'the first block shows the new secret');

my @r = wait_for_requests($recv, 2, 20, sub { $_[0]{path_only} eq '/hooks/orders' });
is(scalar @r, 2, 'both events reach the receiver');
my %types = map { ($_->{body} =~ /"type":"([^"]+)"/)[0] => 1 } @r;
is(join(',', sort keys %types), 'invoice.paid,order.created', 'invoice.paid and order.created');
is(scalar(grep { verify_signature($secret, $_->{headers}, $_->{body}) } @r), 2,
	'both signed with the secret the first block showed');
is($r[0]{headers}{authorization}, 'Bearer erp-token', "the endpoint's own header is sent");

########################################################################
# Receiving webhooks: the connector, and the HTTP front in front of receive_webhook().
########################################################################

my ($inbound) = $text =~ /^## Receiving webhooks\n(.*?)^## /ms;
ok(defined $inbound, 'README has a Receiving webhooks section');
my @in_sql = ($inbound =~ /^```sql\n(.*?)^```/msg);
my ($front) = ($inbound =~ /^```js\n(.*?)^```/ms);
is(scalar @in_sql, 1, 'with one SQL example');
ok(defined $front, 'and the HTTP front');
my $connector = $node->safe_psql('postgres', $in_sql[0]);
like($connector, qr/^\d+$/, 'the SQL example creates a connector');
my ($in_secret) = $in_sql[0] =~ /inbound_secret => '(whsec_[^']+)'/;

my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -d "$interop/node_modules/pg", 'node-postgres is installed in test/interop')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
# An ES module resolves "pg" from its own directory: the front goes next to node_modules.
my $front_file = "$interop/readme-front-$$.mjs";
open(my $fh, '>', $front_file) or die "$front_file: $!";
print $fh $front;
close $fh;
my $front_port = PostgreSQL::Test::Cluster::get_free_port();
my $front_h = IPC::Run::start([ 'node', $front_file ],
	'<', \undef, '>', "$front_file.out", '2>&1',
	init => sub {
		$ENV{PGHOST} = $node->host;
		$ENV{PGPORT} = $node->port;
		$ENV{PGDATABASE} = 'postgres';
		$ENV{PGUSER} = scalar getpwuid($<);
		$ENV{PORT} = $front_port;
	});
my $http = HTTP::Tiny->new(timeout => 10);
my $up = 0;
for (1 .. 100)
{
	$up = 1, last if $http->get("http://127.0.0.1:$front_port/")->{status} == 404;
	select(undef, undef, undef, 0.1);
}
ok($up, 'the front listens') or diag(slurp_file("$front_file.out"));

# A Standard Webhooks delivery: the same request posted twice, then tampered, then to
# another tenant.
my $body = '{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"in_42","amount":9900}}';
my $ts = time();
my %headers = (
	'content-type' => 'application/json',
	'webhook-id' => 'msg_readme_1',
	'webhook-timestamp' => $ts,
	'webhook-signature' => expected_signature($in_secret, 'msg_readme_1', $ts, $body));
my $post = sub {
	my ($path, $b) = @_;
	return $http->post("http://127.0.0.1:$front_port$path", { headers => \%headers, content => $b })->{status};
};
is($post->("/inbound/acme/$connector", $body), 200, 'a signed delivery gets 200');
is($post->("/inbound/acme/$connector", $body), 200, 'and again, sent twice');
is($post->("/inbound/acme/$connector", $body . ' '), 401, 'a changed body gets 401');
is($post->("/inbound/globex/$connector", $body), 401, 'so does the delivery posted for another tenant');
IPC::Run::kill_kill($front_h);
unlink $front_file, "$front_file.out";
is( $node->safe_psql('postgres', "SELECT concat_ws(' ', count(*), min(tenant_id), min(event), min(external_id)) FROM integration.inbound_events"),
	'1 acme generic.invoice.paid msg_readme_1', 'the delivery is stored once, as generic.invoice.paid');
# The test's role is a superuser, whom row-level security does not restrict: each
# tenant's rows are picked by hand.
is( $node->safe_psql('postgres', "SELECT string_agg(tenant_id || ' ' || (context ->> 'reason'), ', ' ORDER BY id)"
		  . " FROM integration.integration_logs WHERE event = 'inbound.rejected'"),
	'acme signature_invalid, globex connector_not_found',
	'the changed one left a log row saying why, and the other tenant\'s says it has no such connector');

stop_receiver($recv);
$node->stop;
done_testing();
