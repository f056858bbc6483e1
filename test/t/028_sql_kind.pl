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
#   4. a pull: sync_now() pulls every ticket across pages of three (the cursor followed
#      verbatim), stores each in external_records, hands each to the handler once (the
#      version the webhook delivered not again); a second run hands on only the ticket
#      changed since.

use strict;
use warnings;

use File::Basename qw(dirname);
use IntegrationTest;
use JSON::PP;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::Local qw(timegm);

my $json = JSON::PP->new->canonical;

# test/run stages the guide next to this file, as it does README.md for t/009.
my $doc = slurp_file(dirname(__FILE__) . '/connector-kinds.md');
my @blocks = ($doc =~ /^```sql\n(.*?)^```/msg);
is(scalar @blocks, 15, 'the guide has its 15 SQL blocks');
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

# 2026-01-01T00:00:00Z → seconds since 1970.
sub epoch
{
	my @t = ($_[0] // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/ or return undef;
	return timegm($t[5], $t[4], $t[3], $t[2], $t[1] - 1, $t[0]);
}

########################################################################
# 1. The kind, its registration, the handler, the connector.
########################################################################

block() for 1 .. 6;    # the schema and the five functions
is(block(), "helpdesk|header:X-Helpdesk-Key(api_key)|adapter|{tickets}", 'the kind is registered');
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

########################################################################
# 4. A pull across pages.
########################################################################

my $seq = $hd->last_seq;
is(block(connector_id => $conn), 'tickets', 'sync_now() starts a run of tickets');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 8 FROM integration.external_records WHERE connector_id = $conn AND stream = 'tickets'"),
	'the run stored all 8 tickets');
my @pages = $hd->requests(since => $seq, path => '/api/v1/tickets');
is(scalar @pages, 3, 'from three pages of three');
is_deeply([ map { join(',', sort keys %{ $_->{params} }) } @pages ], [ 'limit', 'cursor,limit', 'cursor,limit' ],
	'the first without updated_since (a first run pulls everything), the next ones with the cursor alone');
is(scalar(split /\n/, block(connector_id => $conn)), 9, 'the guide\'s queries list the 8 records and the stream\'s state');
ok($node->poll_query_until('postgres', "SELECT count(*) = 8 FROM support_tickets"), 'the handler has all 8 tickets');
is($node->safe_psql('postgres', "SELECT string_agg(id || ':' || seen, ' ' ORDER BY id) FROM support_tickets WHERE seen > 1"),
	"$created->{id}:2",
	'each once, but the created one, which the call\'s result brought before the pull did: the webhook\'s version of 1003 was not handed again');

$hd->update('tickets', 1005, { status => 'solved' });
$seq = $hd->last_seq;
$n = 12;
block(connector_id => $conn);
ok($node->poll_query_until('postgres', "SELECT status = 'solved' FROM support_tickets WHERE id = 1005"),
	'a second run hands on the ticket changed since');
my ($req) = $hd->requests(since => $seq, path => '/api/v1/tickets');
is(epoch($req->{params}{updated_since}), epoch($created->{updated_at}) - 60,
	'asking from the cursor (the latest updated_at of the first run, the created ticket\'s) minus the 60 s overlap');
is($node->safe_psql('postgres', "SELECT string_agg(id || ':' || seen, ' ' ORDER BY id) FROM support_tickets WHERE seen > 1"),
	"1005:2 $created->{id}:2", 'and nothing else');

# Testing a kind: the adapter called directly.
$n = $#blocks;
is(block(), 'GET|/api/v1/tickets|{"limit": "10", "updated_since": "2026-03-01T11:00:00Z"}',
	'the guide\'s direct call of build_request gives what the guide says');

$hd->stop;
$node->stop;
done_testing();
