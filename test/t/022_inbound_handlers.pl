# Inbound handlers run by the handler worker, on a real server:
#
#   1. End to end: Standard Webhooks requests received by receive_webhook() into a
#      generic connector wake the handler worker at commit, which runs the tenant's handler for
#      each event, as the role that registered it (not a superuser), with the event's
#      tenant selected; a handler's own SET search_path applies.
#   2. Order per object: a later event of an object waits while an earlier one is
#      retried, and runs after it.
#   3. Retry, then failed: a handler that always fails is tried on the retry schedule and
#      ends failed, with the error, its writes never kept; a handler that hangs is
#      cancelled after integration.handler_timeout.
#   4. Exactly once across a crash: the worker is killed with SIGKILL while it runs a
#      batch of handlers; after the restart every event's row exists exactly once.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_integration_node('handlers',
	"integration.retry_schedule = '200ms, 200ms'",
	"integration.handler_timeout = '1s'",
	'restart_after_crash = on');
my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub app { return tenant_psql($node, "SET ROLE app;\n$_[0]", $_[1] // 'acme'); }

# Sends each body (a JSON string) to the connector, signed; returns the statuses.
sub receive
{
	my ($connector, @bodies) = @_;
	my $values = join(', ', map { "(\$b\$$_\$b\$)" } @bodies);
	return app(qq{
		SELECT string_agg(r.status, ' ' ORDER BY b.n)
		  FROM (SELECT body, row_number() OVER () AS n FROM (VALUES $values) v(body)) b,
			   LATERAL integration.receive_webhook($connector,
				   integration.sign('standard', '$secret', b.body, 'msg_' || md5(b.body)), b.body) r});
}

create_app_role($node, 'app');
q1(q{
	CREATE TABLE public.handled (
		n			bigserial PRIMARY KEY,
		handler		text NOT NULL,
		tenant_id	text NOT NULL,
		event_id	bigint NOT NULL,
		external_id	text NOT NULL,
		object_id	text,
		who			text NOT NULL,
		superuser	boolean NOT NULL,
		tenant_seen	text
	);
	GRANT ALL ON public.handled, public.handled_n_seq TO app;
});

# The handlers, owned by the application role.
app(q{
	CREATE FUNCTION public.on_order(e integration.inbound_events) RETURNS void
		LANGUAGE plpgsql
	AS $$
	BEGIN
		INSERT INTO public.handled (handler, tenant_id, event_id, external_id, object_id, who,
									superuser, tenant_seen)
		VALUES ('order', e.tenant_id, e.id, e.external_id, e.object_id, current_user,
				(SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
				integration.current_tenant());
		-- Fails its first attempt when asked to (what it wrote goes too).
		IF e.attempts = 0 AND (e.payload #>> '{data,fail_first}')::boolean THEN
			RAISE EXCEPTION 'not yet: %', e.external_id;
		END IF;
	END
	$$;
	-- Unqualified names: its own search_path must win over the worker's.
	CREATE FUNCTION public.on_note(e integration.inbound_events) RETURNS void
		LANGUAGE sql SET search_path = public, pg_catalog
	AS $$
		INSERT INTO handled (handler, tenant_id, event_id, external_id, who, superuser)
		VALUES ('note', e.tenant_id, e.id, e.external_id, current_user, false)
	$$;
	CREATE FUNCTION public.on_poison(e integration.inbound_events) RETURNS void
		LANGUAGE plpgsql
	AS $$
	BEGIN
		INSERT INTO public.handled (handler, tenant_id, event_id, external_id, who, superuser)
		VALUES ('poison', e.tenant_id, e.id, e.external_id, current_user, false);
		IF e.topic = 'order.hang' THEN
			PERFORM pg_sleep(60);
		END IF;
		RAISE EXCEPTION 'cannot digest %', e.external_id USING ERRCODE = 'data_exception';
	END
	$$;
	CREATE FUNCTION public.on_bulk(e integration.inbound_events) RETURNS void
		LANGUAGE plpgsql
	AS $$
	BEGIN
		INSERT INTO public.handled (handler, tenant_id, event_id, external_id, who, superuser)
		VALUES ('bulk', e.tenant_id, e.id, e.external_id, current_user, false);
		-- Slow enough that the worker spends its time inside batches.
		PERFORM pg_sleep(0.002);
	END
	$$;
});

my $conn = app(qq{
	SELECT id FROM integration.create_connector('generic', 'shop', 'https://api.example.invalid',
		'{"token": "t-0123456789"}', '{}', '$secret')});
app(q{
	SELECT integration.on_inbound('orders', '["generic.order.created", "generic.order.paid"]',
								  'public.on_order(integration.inbound_events)');
	SELECT integration.on_inbound('notes', '["generic.note"]', 'public.on_note(integration.inbound_events)');
	SELECT integration.on_inbound('poison', '["generic.order.poison", "generic.order.hang"]',
								  'public.on_poison(integration.inbound_events)');
	SELECT integration.on_inbound('bulk', '["generic.bulk"]', 'public.on_bulk(integration.inbound_events)');
});

sub body
{
	my ($type, $id, $extra) = @_;
	$extra //= '';
	return qq({"type":"$type","timestamp":"2026-01-01T00:00:00Z","data":{"id":"$id"$extra}});
}

########################################################################
# 1. End to end: received, woken at commit, handled as the application role.
########################################################################

my $t0 = time();
is(receive($conn, body('order.created', 'o1'), body('order.created', 'o2'), body('note', 'n1')),
	'accepted accepted accepted', 'three requests accepted');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM integration.inbound_events WHERE status = 'processed'"),
	'the worker handles them');
my $took = time() - $t0;
ok($took < 10, sprintf('within %.1f s of the commit: woken, not found by the idle recheck (60 s)', $took));
is(q1(q{SELECT string_agg(format('%s %s %s %s %s', handler, object_id, who, superuser, tenant_seen), ', ' ORDER BY n)
		FROM public.handled}),
	'order o1 app f acme, order o2 app f acme, note  app f ',
	'each handler ran once per event as role app, not a superuser, with tenant acme selected');
is(q1(q{SELECT count(*) FROM integration.inbound_events e JOIN public.handled h
		ON h.tenant_id = e.tenant_id AND h.event_id = e.id}),
	'3', 'the rows name the events they handled');
ok(q1(q{SELECT inbound_handled >= 3 AND inbound_held = 0 FROM integration.worker_status() WHERE role = 'handler'}) eq 't',
	'worker_status() counts them, in the handler worker\'s row');
is(q1(q{SELECT inbound_handled FROM integration.worker_status() WHERE role = 'delivery'}), '0',
	'the delivery worker ran none');

########################################################################
# 2. Order per object.
########################################################################

is(receive($conn, body('order.created', 'o9', ',"n":1,"fail_first":true'), body('order.paid', 'o9', ',"n":2'), body('order.paid', 'o9', ',"n":3'),
		body('order.created', 'o10')),
	'accepted accepted accepted accepted', 'four events, three of object o9');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM integration.inbound_events WHERE status = 'pending'"),
	'all handled');
is(q1(q{SELECT string_agg(e.payload #>> '{data,n}', ' ' ORDER BY h.n)
		FROM public.handled h JOIN integration.inbound_events e ON e.tenant_id = h.tenant_id AND e.id = h.event_id
	   WHERE h.object_id = 'o9'}),
	'1 2 3', 'o9\'s events ran in the order received, the later ones after the first one\'s retry');
is(q1(q{SELECT attempts FROM integration.inbound_events WHERE payload #>> '{data,n}' = '1'}),
	'2', 'the first took two attempts');

########################################################################
# 3. Retry, then failed; a handler that hangs is cancelled.
########################################################################

is(receive($conn, body('order.poison', 'p1'), body('order.hang', 'h1')),
	'accepted accepted', 'a poisonous event and a hanging one');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM integration.inbound_events WHERE status = 'failed'"),
	'both end failed');
is(q1(q{SELECT string_agg(format('%s %s %s', e.payload #>> '{data,id}', e.attempts, e.last_error), ' | ' ORDER BY e.id)
		FROM integration.inbound_events e WHERE e.status = 'failed'}),
	'p1 3 handler poison: cannot digest msg_' . q1("SELECT md5(\$b\$" . body('order.poison', 'p1') . "\$b\$)")
	  . ' (SQLSTATE 22000) | h1 3 handler poison: the handler exceeded integration.handler_timeout (1000 ms) (SQLSTATE 57014)',
	'each after three attempts (the schedule has two retries), with the error');
is(q1(q{SELECT count(*) FROM public.handled WHERE handler = 'poison'}), '0', 'none of their writes stayed');
is(tenant_psql($node, q{SELECT string_agg(level || ' ' || event, ', ' ORDER BY id) FROM integration.integration_logs
		WHERE source = 'inbound' AND context #>> '{event}' = 'generic.order.poison'}),
	'warning inbound.handler_failed, warning inbound.handler_failed, error inbound.failed',
	'each failed attempt was logged');
is(app(q{SELECT integration.reprocess_inbound_events(status => 'failed')}), '2', 'reprocessed');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 4 FROM integration.integration_logs WHERE event = 'inbound.failed'"),
	'they run, and fail, again');

########################################################################
# 4. Exactly once across a SIGKILL of the worker mid-batch.
########################################################################

my $n_bulk = 2000;
is(app(qq{
	SELECT count(*) FROM generate_series(1, $n_bulk) g,
		LATERAL (SELECT format('{"type":"bulk","timestamp":"t","data":{"id":"b%s"}}', g) AS body) b,
		LATERAL integration.receive_webhook($conn,
			integration.sign('standard', '$secret', b.body, 'bulk_' || g), b.body) r
	 WHERE r.status = 'accepted'}),
	$n_bulk, "$n_bulk events received in one transaction");
my $wpid = q1(q{SELECT pid FROM integration.worker_status() WHERE role = 'handler'});
ok($node->poll_query_until('postgres', qq{
		SELECT (SELECT count(*) FROM public.handled WHERE handler = 'bulk') >= 300
		   AND EXISTS (SELECT FROM pg_stat_activity WHERE pid = $wpid AND state = 'active'
					   AND query = 'running inbound handlers')}),
	'the worker is in the middle of a batch, some hundreds handled');
kill 'KILL', $wpid;
my $handled_before = q1_retry(q{SELECT count(*) FROM public.handled WHERE handler = 'bulk'});
note "handled when the worker was killed: $handled_before";
ok($handled_before >= 300 && $handled_before < $n_bulk, 'killed before the end');

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM integration.inbound_events WHERE event = 'generic.bulk' AND status <> 'processed'"),
	'after the crash and restart, every event is processed');
ok(q1(q{SELECT pid FROM integration.worker_status() WHERE role = 'handler'}) ne $wpid, 'by a new handler worker');
is(q1(q{SELECT count(*) || ' ' || count(DISTINCT event_id) FROM public.handled WHERE handler = 'bulk'}),
	"$n_bulk $n_bulk", 'every event\'s row exists exactly once');
is(q1(q{SELECT count(*) FROM integration.inbound_events e
		 WHERE e.event = 'generic.bulk'
		   AND NOT EXISTS (SELECT FROM public.handled h WHERE h.tenant_id = e.tenant_id AND h.event_id = e.id)}),
	'0', 'and no processed event lacks its row');

# The crash restarts every backend: retry a query until the server is back.
sub q1_retry
{
	my ($sql) = @_;
	my $deadline = time() + 30;
	while (1)
	{
		# A psql that could not connect may exit before it reads the query, which
		# IPC::Run then dies writing (a broken pipe): one more try too.
		my ($ret, $out, $err) = eval { $node->psql('postgres', $sql) };
		return $out if defined $ret && $ret == 0;
		$err //= $@;
		die "server did not come back: $err" if time() > $deadline;
		usleep(100_000);
	}
}

$node->stop;
done_testing();
