# docs/connector-kinds.md ("Writing a connector kind") as a test: every ```sql block of
# the guide, in order, as written, against the loopback helpdesk platform
# (test/platforms/helpdesk.mjs), each as the role its first line names ("-- as a
# superuser", "-- as helpdesk_app"), with the guide's base URL pointed at the server and
# psql variables for what the guide says an HTTP front or \gset supplies:
#
#   1. the kind, written only in SQL and PL/pgSQL, registered with
#      register_connector_kind() by a superuser; the application's role (no superuser)
#      creates its handler and its connector, and test_connector() succeeds;
#   2. inbound: a signed delivery accepted as helpdesk.ticket.updated, its retry a
#      duplicate, a changed body, another secret's signature and a stale timestamp
#      rejected and logged; the handler keeps the ticket;
#   3. a call: ticket.create made by the worker with the API key and the idempotency key,
#      the ticket created on the platform once, the result handed to the handler; a
#      refused ticket failed after one attempt with the platform's error;
#   (the pull of tickets across pages waits for incremental sync: see the guide)

use strict;
use warnings;

use File::Basename qw(dirname);
use IntegrationTest;
use JSON::PP;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $json = JSON::PP->new->canonical;

# test/run stages the guide next to this file, as it does README.md for t/009.
my $doc = slurp_file(dirname(__FILE__) . '/connector-kinds.md');
my @blocks = ($doc =~ /^```sql\n(.*?)^```/msg);
is(scalar @blocks, 12, 'the guide has its 12 SQL blocks');
my ($api_key) = $doc =~ /"api_key": "([^"]+)"/;
my ($secret) = $doc =~ /inbound_secret => '([^']+)'/;
ok(defined $api_key && defined $secret, 'and names the API key and the webhook secret it uses');

my $hd = PlatformServer->start('helpdesk', config => { api_key => $api_key, webhook_secret => $secret });
$hd->seed('tickets', count => 7, per_second => 2, start => '2026-01-01T00:00:00Z');

my $node = new_integration_node('sql_kind', "integration.retry_schedule = '200ms, 200ms'");
# The application's role: no superuser, granted the API (docs/tenancy-and-security.md),
# its sessions with tenant acme selected.
# The blocks connect as it.
create_app_role($node, 'helpdesk_app');
$node->safe_psql('postgres', q{
	ALTER ROLE helpdesk_app LOGIN;
	ALTER ROLE helpdesk_app SET integration.tenant_id = 'acme';
});

my $n = 0;

# Runs the next block of the guide as the role it names, with psql variables; returns
# its output (unaligned, tuples only, | between columns).
sub block
{
	my (%vars) = @_;
	my $sql = $blocks[ $n++ ];
	my $i = $n;
	my ($who) = $sql =~ /^-- as (a superuser|helpdesk_app)\n/;
	ok(defined $who, "block $i says who runs it") or return '';
	$sql =~ s{https://acme\.helpdesk\.example}{$hd->url}ge;
	my @params = ('-F', '|', map { ('-v', "$_=$vars{$_}") } sort keys %vars);
	push @params, '-U', 'helpdesk_app' if $who eq 'helpdesk_app';
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1, extra_params => \@params);
	is($ret, 0, "block $i runs as $who") or diag("$sql\n$err");
	unlike($err, qr/ERROR|WARNING/, "block $i prints no error");
	return $out;
}

sub app { return tenant_psql($node, $_[0]); }

########################################################################
# 1. The kind, its registration, the handler, the connector.
########################################################################

block() for 1 .. 5;    # the schema and the four functions
is(block(), "helpdesk|header:X-Helpdesk-Key(api_key)|adapter", 'the kind is registered');
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'helpdesk_app'"), 'f',
	'the application\'s role is no superuser');
block();    # the handler
is(block(), 't|200|', 'the application creates its connector, and test_connector() reaches the platform');
my $conn = app("SELECT id FROM integration.connectors WHERE name = 'support'");
my ($probe) = $hd->requests(path => '/api/v1/tickets');
is_deeply([ $probe->{method}, $probe->{query}, $probe->{headers}{'x-helpdesk-key'} ],
	[ 'GET', 'limit=1', $api_key ], 'test_connector() sent the test operation with the API key in X-Helpdesk-Key');

########################################################################
# 2. Receiving: accepted, duplicate, rejected.
########################################################################

# Each delivery as the HTTP front passes it: the headers (names as Node gives them,
# lower case) and the body.
sub front
{
	my ($d, $body) = @_;
	my %h = map { (lc $_ => $d->{headers}{$_}) } keys %{ $d->{headers} };
	return (connector_id => $conn, headers => $json->encode(\%h), body => $body // $d->{body});
}

my $receive = $n;
my @deliveries = $hd->webhook(events => [ { event => 'ticket.updated', id => 1003 } ], order => [ 0, 0 ], send => 0);
is(block(front($deliveries[0])), 'accepted|helpdesk.ticket.updated', 'a signed delivery is accepted');
my @again = map { $n = $receive; block(@$_) }
  [ front($deliveries[1]) ], [ front($deliveries[0], $deliveries[0]{body} . ' ') ],
  [ front(($hd->webhook(events => [ { event => 'ticket.updated', id => 1003, secret => 'hd_whsec_other' } ], send => 0))[0]) ],
  [ front(($hd->webhook(events => [ { event => 'ticket.updated', id => 1003, timestamp => time() - 3600 } ], send => 0))[0]) ];
is_deeply(\@again, [ 'duplicate|helpdesk.ticket.updated', 'rejected|', 'rejected|', 'rejected|' ],
	'its retry (a new timestamp and signature) is a duplicate; a changed body, another secret and an hour-old timestamp are rejected');
is($node->safe_psql('postgres',
		"SELECT string_agg(context ->> 'reason', ',') FROM integration.integration_logs WHERE event = 'inbound.rejected'"),
	'signature_invalid,signature_invalid,signature_invalid', 'each rejection logged as signature_invalid');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM support_tickets WHERE id = 1003"),
	'the handler kept the ticket');

########################################################################
# 3. A call.
########################################################################

block(connector_id => $conn);
my $call = app("SELECT id FROM integration.connector_calls WHERE idempotency_key = 'complaint-2026-0042'");
ok($node->poll_query_until('postgres', "SELECT status = 'succeeded' FROM integration.connector_calls WHERE id = $call"),
	'the worker made the call');
my ($created) = grep { $_->{subject} eq 'Invoice 2026-0042 is wrong' } $hd->list('tickets');
is(block(call_id => $call), "succeeded|1|201|$created->{id}", 'ticket.create succeeded at once with the new ticket');
my @posts = $hd->requests(method => 'POST', path => '/api/v1/tickets');
is_deeply([ map { [ @{ $_->{headers} }{qw(x-helpdesk-key idempotency-key content-type)}, $json->decode($_->{body}) ] } @posts ],
	[ [ $api_key, 'complaint-2026-0042', 'application/json',
			{ ticket => { subject => 'Invoice 2026-0042 is wrong', requester => 'jo@example.com', priority => 'high' } } ] ],
	'one POST, with the API key, the idempotency key and the ticket');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM support_tickets WHERE id = $created->{id}"),
	'the completion event handed the new ticket to the handler');

my $refused = app("SELECT integration.call_connector($conn, 'ticket.create', '{\"subject\": \"\", \"requester\": \"jo\@example.com\"}')");
ok($node->poll_query_until('postgres', "SELECT status = 'failed' FROM integration.connector_calls WHERE id = $refused"),
	'a refused ticket fails');
is(app("SELECT concat_ws('|', attempts, last_status_code, last_error) FROM integration.connector_calls WHERE id = $refused"),
	'1|422|HTTP 422: subject is required (invalid)', 'after one attempt, with the platform\'s message and code');

# Testing a kind: the adapter called directly.
$n = $#blocks;
is(block(), 'GET|/api/v1/tickets|{"limit": "10", "updated_since": "2026-03-01T11:00:00Z"}',
	'the guide\'s direct call of build_request gives what the guide says');

$hd->stop;
$node->stop;
done_testing();
