# The reference triggers of integration.deliveries under concurrency: what the foreign
# keys they stand in for would do when another transaction inserts a delivery of the
# event or endpoint being deleted.  Two sessions each; the worker is off, so nothing
# else writes deliveries.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_integration_node('references', 'integration.worker_enabled = off');

sub q1 { return tenant_psql($node, $_[0]); }

sub register
{
	my ($name) = @_;
	return q1(qq{SELECT id FROM integration.register_webhook(name => '$name',
		url => 'http://127.0.0.1:9/$name', events => '["ref.*"]')});
}

# An event with one delivery (to $first), and another endpoint to add a second one.
sub event_to
{
	my ($first, $name) = @_;
	my $delivery = q1(qq{SELECT integration.dispatch_webhook($first, '$name', '{}')});
	return q1(qq{SELECT event_id FROM integration.deliveries WHERE id = $delivery});
}

sub session
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe(q{SET integration.tenant_id = 'acme'});
	return $s;
}

my $ep1 = register('first');
my $ep2 = register('second');

my $orphans = q{SELECT count(*) FROM integration.deliveries d
				 WHERE NOT EXISTS (SELECT FROM integration.webhook_events e
								   WHERE e.tenant_id = d.tenant_id AND e.id = d.event_id)};

########################################################################
# 1. REPEATABLE READ: a delivery of the event committed after the deleting
#    transaction's snapshot fails the delete (40001) instead of staying behind
#    without its event, as ON DELETE CASCADE does.
########################################################################

my $ev = event_to($ep1, 'ref.rr');
my $a = session();
$a->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ});
$a->query_safe(q{SELECT count(*) FROM integration.deliveries});	# takes the snapshot
q1(qq{INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES ($ev, $ep2)});
my ($out, $failed) = $a->query(qq{DELETE FROM integration.webhook_events WHERE id = $ev});
ok($failed, 'the REPEATABLE READ delete of the event fails');
like($a->{stderr}, qr/could not serialize access/, '... with a serialization failure');
$a->{stderr} = '';
$a->query_safe(q{ROLLBACK});
is(q1(qq{SELECT count(*) FROM integration.deliveries WHERE event_id = $ev}), '2',
	'both deliveries of the event are still there');
is(q1($orphans), '0', 'no delivery is left without its event');

# Retried, the transaction sees the new delivery and deletes it along.
$a->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ});
$a->query_safe(qq{DELETE FROM integration.webhook_events WHERE id = $ev});
$a->query_safe(q{COMMIT});
is(q1(qq{SELECT count(*) FROM integration.deliveries WHERE event_id = $ev}), '0',
	'retried, the delete takes both deliveries along');

########################################################################
# 2. READ COMMITTED: the delete waits for a transaction that is inserting a
#    delivery of the event (its check locks the event FOR KEY SHARE), then the
#    cascade's fresh snapshot finds that delivery and deletes it.
########################################################################

$ev = event_to($ep1, 'ref.rc');
my $b = session();
$b->query_safe(q{BEGIN});
$b->query_safe(qq{INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES ($ev, $ep2)});
$a->query_until(qr/deleting/, qq{\\echo deleting\nDELETE FROM integration.webhook_events WHERE id = $ev;\n});
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_catalog.pg_locks WHERE NOT granted}),
	'the delete waits for the inserting transaction');
$b->query_safe(q{COMMIT});
is($a->query(q{SELECT 'done'}), 'done', 'the delete finishes once the insert commits');
is(q1(qq{SELECT count(*) FROM integration.deliveries WHERE event_id = $ev}), '0',
	"the event's deliveries are gone, the one committed meanwhile too");
is(q1($orphans), '0', 'no delivery is left without its event');

########################################################################
# 3. The endpoint side: deleting an endpoint (by hand, not delete_webhook())
#    that a delivery committed after the snapshot refers to fails with 23503
#    in REPEATABLE READ too: its check reads with a fresh snapshot.
########################################################################

my $ep3 = register('third');
$ev = event_to($ep1, 'ref.ep');
$a->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ});
$a->query_safe(q{SELECT count(*) FROM integration.deliveries});
q1(qq{INSERT INTO integration.deliveries (event_id, endpoint_id) VALUES ($ev, $ep3)});
($out, $failed) = $a->query(qq{DELETE FROM integration.webhook_endpoints WHERE id = $ep3});
ok($failed, 'deleting an endpoint that a newer delivery refers to fails');
like($a->{stderr}, qr/violates the reference from table "deliveries"/, '... as a foreign key would');
$a->{stderr} = '';
$a->query_safe(q{ROLLBACK});
is(q1(qq{SELECT count(*) FROM integration.webhook_endpoints WHERE id = $ep3}), '1',
	'the endpoint is still there');

$a->quit;
$b->quit;
$node->stop;
done_testing();
