# Receivers that answer with something libcurl cannot read as HTTP: a status line
# that is not HTTP, and response headers far past libcurl's 100 kB limit.  Both are
# the receiver's protocol errors (error_class 'protocol'), not a request libcurl
# refused ('invalid_request') or a transport failure ('network').

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_integration_node('protocol_errors');
my $recv = start_receiver();

sub q1 { return tenant_psql($node, $_[0]); }

# An endpoint with no retries, so that its one attempt decides.
sub register
{
	my ($name, $url) = @_;
	my $id = q1(qq{SELECT id FROM integration.register_webhook(name => '$name',
		url => '$url', events => '["$name.*"]')});
	q1("UPDATE integration.webhook_endpoints SET retry_schedule = '' WHERE id = $id");
	return $id;
}

# The outcome of an endpoint's one delivery: status|error_class|status_code|has_error.
sub outcome
{
	my ($id) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT status IN ('delivered', 'failed') FROM integration.deliveries WHERE endpoint_id = $id"),
		"endpoint $id: its delivery finished");
	return q1(qq{SELECT d.status || '|' || coalesce(a.error_class, '-') || '|'
							|| coalesce(a.status_code::text, '-') || '|' || (coalesce(a.error, '') <> '')
				   FROM integration.deliveries d
				   LEFT JOIN integration.delivery_attempts a ON a.delivery_id = d.id
				  WHERE d.endpoint_id = $id});
}

ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery'"),
	'the worker runs');

my $garbage = register('garbage', receiver_url($recv, '/garbage', garbage => 1));
my $huge = register('huge', receiver_url($recv, '/huge', header_bytes => 1048576));
my $modest = register('modest', receiver_url($recv, '/modest', header_bytes => 1000));
q1(q{SELECT integration.publish_event(e, '{}') FROM unnest(ARRAY['garbage.x', 'huge.x', 'modest.x']) e});

is(outcome($garbage), 'failed|protocol|-|true',
	'a status line that is not HTTP is a protocol error');
is(outcome($huge), 'failed|protocol|-|true',
	'a 1 MiB response header is a protocol error');
is(outcome($modest), 'delivered|-|-|false',
	'a 1000-byte response header is delivered');

# The requests did reach the receiver: the answer, not the request, was at fault.
my %seen = map { $_->{path_only} => 1 } read_log_settled($recv);
ok($seen{'/garbage'} && $seen{'/huge'}, 'the receiver saw both requests');

$node->stop('fast');
stop_receiver($recv);
done_testing();
