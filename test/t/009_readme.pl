# README's "Getting started" runs as written: every ```sql block of that section, in
# order, in psql, against a server with the extension, with the example endpoint's URL
# pointed at a local receiver.  The two events it publishes arrive there, signed.

use strict;
use warnings;

use File::Basename qw(dirname);
use IntegrationTest;
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

stop_receiver($recv);
$node->stop;
done_testing();
