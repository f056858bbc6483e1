# Retention of the connector framework's tables run by the worker on its own schedule
# (src/retention_connectors.c), with periods of seconds:
#
#   1. handled inbound events (processed, skipped) and succeeded calls go once
#      retention_delivered has passed, failed ones once retention_failed has; a pending
#      event and a pending call stay, however old;
#   2. an event of a connector whose dedupe window is longer than the period stays
#      while it counts for deduplication, and the platform's replay of it is still a
#      duplicate; once the connector's window is shortened, it goes;
#   3. a deleted connector's synced records go retention_delivered after the delete, a
#      live connector's stay;
#   4. the worker ran throughout, and no retention transaction failed.
# Nothing here calls integration.purge_expired() (test/sql/retention.sql does).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $delivered = 4;
my $failed = 10;
my $node = new_integration_node('retention_connectors',
	"integration.retention_delivered = '${delivered}s'",
	"integration.retention_failed = '${failed}s'",
	"integration.retention_interval = '1s'",
	"integration.inbound_dedupe_window = '2s'",
	"integration.retry_schedule = '100ms'");
my $recv = start_receiver();
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub app { return tenant_psql($node, "SET ROLE app;\n$_[0]"); }

# Receives one signed webhook of type $type with delivery id $id; returns "status id".
sub receive
{
	my ($connector, $id, $type) = @_;
	my $body = qq({"type":"$type","data":{"id":"$id"}});
	return app(qq{
		SELECT r.status || ' ' || r.inbound_id
		  FROM integration.receive_webhook($connector,
				   integration.sign('standard', '$secret', \$b\$$body\$b\$, '$id'), \$b\$$body\$b\$) r});
}

# The inbound events, "external_id:status" by external id (the ids of sessions' events
# come from cached identity values); connector calls, "operation:status" in order.
my $inbound_sql = q{SELECT string_agg(external_id || ':' || status, ' ' ORDER BY external_id COLLATE "C")
					  FROM integration.inbound_events};
sub inbound { return q1($inbound_sql); }

sub calls
{
	return q1(q{SELECT string_agg(operation || ':' || status, ' ' ORDER BY id)
				  FROM integration.connector_calls});
}

create_app_role($node, 'app');
q1(q{
	CREATE TABLE public.handled (event_id bigint, external_id text);
	GRANT ALL ON public.handled TO app;
});
app(q{
	CREATE FUNCTION public.on_order(e integration.inbound_events) RETURNS void
		LANGUAGE plpgsql
	AS $$
	BEGIN
		IF e.topic = 'order.bad' THEN
			RAISE EXCEPTION 'cannot handle %', e.external_id;
		END IF;
		INSERT INTO public.handled (event_id, external_id) VALUES (e.id, e.external_id);
	END
	$$;
	SELECT integration.on_inbound('orders', '["generic.order.*"]',
								  'public.on_order(integration.inbound_events)');
});
my $base = receiver_url($recv, '');
# short: the server's dedupe window (2 s, shorter than the periods); long: one hour.
my $short = app(qq{
	SELECT id FROM integration.create_connector('generic', 'short', '$base',
		'{"token": "t-0123456789"}', '{}', '$secret')});
my $long = app(qq{
	SELECT id FROM integration.create_connector('generic', 'long', '$base',
		'{"token": "t-0123456789"}', '{}', '$secret', dedupe_window => '1 hour')});

########################################################################
# 1. What goes after its period, and what stays.
########################################################################

like(receive($short, 's-ok', 'order.created'), qr/^accepted \d+$/, 'a webhook for a handler');
like(receive($short, 's-skip', 'note.added'), qr/^accepted \d+$/, 'one no handler wants');
like(receive($short, 's-bad', 'order.bad'), qr/^accepted \d+$/, 'one its handler fails on');
my ($kept) = receive($long, 'l-ok', 'order.created') =~ /^accepted (\d+)$/;
ok(defined $kept, 'one for a handler, to the connector with the long window');
my $ok_call = app(qq{SELECT integration.call_connector($short, 'POST /ok', '{}')});
my $bad_call = app(qq{SELECT integration.call_connector($short, 'GET /gone', '{"status": "404"}')});
# Waiting, long ago: an event and a call, each due in an hour.
q1(qq{
	INSERT INTO integration.inbound_events (tenant_id, connector_id, external_id, topic, event,
											payload, next_attempt_at, received_at)
	VALUES ('acme', $short, 'old-pending', 'order.created', 'generic.order.created', '{}',
			now() + interval '1 hour', now() - interval '1 day');
	INSERT INTO integration.connector_calls (tenant_id, connector_id, operation, next_attempt_at,
											 created_at)
	VALUES ('acme', $short, 'POST /later', now() + interval '1 hour', now() - interval '1 day');
});

ok( $node->poll_query_until('postgres', qq{
		SELECT ($inbound_sql) = 'call:$ok_call:skipped call:$bad_call:skipped l-ok:processed'
			   || ' old-pending:pending s-bad:failed s-ok:processed s-skip:skipped'}),
	'every event handled: processed, skipped, failed after its attempts; the calls\' completions skipped')
  or diag(inbound());
my $handled_at = time();
my $s_ok_processed = q1(q{SELECT extract(epoch FROM processed_at) FROM integration.inbound_events
						   WHERE external_id = 's-ok'});
is(calls(), 'POST /ok:succeeded GET /gone:failed POST /later:pending',
	'one call succeeded, one failed, one waits');

ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.inbound_events
							WHERE status IN ('processed', 'skipped') AND external_id <> 'l-ok')
		   AND NOT EXISTS (SELECT FROM integration.connector_calls WHERE status = 'succeeded')}),
	'the worker removes the processed and skipped events and the succeeded call on its own');
my $inbound = inbound();
my $calls = calls();
my $age = time() - $handled_at;
cmp_ok(q1("SELECT extract(epoch FROM clock_timestamp()) - $s_ok_processed"), '>=', $delivered,
	'not before its period: s-ok was handled at least retention_delivered ago');
is($inbound =~ s/ s-bad:failed//r, 'l-ok:processed old-pending:pending',
	'the event inside its connector\'s dedupe window stays, and so does the pending one');
is($calls =~ s/GET \/gone:failed ?//r, 'POST /later:pending', 'so does the pending call');
SKIP:
{
	skip sprintf('the failures are %.1f s old already (a slow machine)', $age), 2
	  if $age > $failed - 1;
	like($inbound, qr/s-bad:failed/, sprintf('the failed event, %.1f s old, stays', $age));
	like($calls, qr/GET \/gone:failed/, 'and so does the failed call');
}

########################################################################
# 2. The dedupe window: a replay is still a duplicate; shortened, the row goes.
########################################################################

is(receive($long, 'l-ok', 'order.created'), "duplicate $kept",
	'the platform\'s replay of the kept event, past its period, is a duplicate of it');
my $again = receive($short, 's-ok', 'order.created');
like($again, qr/^accepted \d+$/, 'a replay of a removed one, past its window, is a new event');

ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.inbound_events WHERE status = 'failed')
		   AND NOT EXISTS (SELECT FROM integration.connector_calls WHERE status = 'failed')}),
	'the failed event and call go after retention_failed');
ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.inbound_events WHERE external_id = 's-ok')}),
	'and the new s-ok once handled and past its period');
is(inbound(), 'l-ok:processed old-pending:pending', 'the kept event and the pending one are left');
is(calls(), 'POST /later:pending', 'and the pending call');
is(q1(q{SELECT string_agg(external_id, ' ' ORDER BY external_id COLLATE "C") FROM public.handled}),
	'l-ok s-ok s-ok',
	'the handler saw s-ok twice (the second receipt past its window) and l-ok once');

app(qq{SELECT integration.update_connector($long, dedupe_window => '1 second')});
ok( $node->poll_query_until('postgres', q{
		SELECT NOT EXISTS (SELECT FROM integration.inbound_events WHERE external_id = 'l-ok')}),
	'once its connector\'s window is shortened, the kept event goes');
is(inbound(), 'old-pending:pending', 'the pending event stays');

########################################################################
# 3. A deleted connector's synced records go retention_delivered after the delete,
#    over several batches; a live connector's stay.
########################################################################

my $gone = app(qq{
	SELECT id FROM integration.create_connector('generic', 'gone', '$base',
		'{"token": "t-0123456789"}', '{}', '$secret')});
q1(qq{
	INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
											  external_updated_at, payload, content_hash, source)
	SELECT 'acme', c, 'orders', 'o-' || n, now(), '{}', sha256(''), 'pull'
	  FROM unnest(ARRAY[$gone, $short]) AS c,
		   generate_series(1, CASE WHEN c = $gone THEN 1200 ELSE 3 END) AS n;
});
app(qq{SELECT integration.delete_connector($gone)});
ok( $node->poll_query_until('postgres', qq{
		SELECT NOT EXISTS (SELECT FROM integration.external_records WHERE connector_id = $gone)}),
	'the worker removes the 1,200 synced records of the deleted connector on its own');
cmp_ok(q1(qq{SELECT extract(epoch FROM clock_timestamp() - deleted_at) FROM integration.connectors
			  WHERE id = $gone}), '>=', $delivered,
	'not before retention_delivered after the delete');
is(q1(qq{SELECT count(*) FROM integration.external_records WHERE connector_id = $short}), '3',
	'the live connector\'s records stay');

########################################################################
# 4. The worker ran throughout.
########################################################################

is(q1(q{SELECT count(*) FROM integration.workers WHERE role = 'delivery'}), '1',
	'the delivery worker runs');
my $log = slurp_file($node->logfile);
unlike($log, qr/removing expired rows failed/, 'no retention transaction failed');
unlike($log, qr/TRAP|terminated by signal/, 'no crash');

stop_receiver($recv);
$node->stop;
done_testing();
