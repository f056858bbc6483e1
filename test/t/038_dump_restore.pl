# pg_dump and pg_restore of a database that uses the extension (docs/operations.md#backup-and-restore).
#
#   1. Two tenants' state, made through the API and the worker: endpoints (one with a
#      rotated secret), events delivered and pending after a failed attempt, attempts,
#      logs, failing streaks, connectors with a queued call, handlers and inbound events,
#      a connector's sync streams and a synced record, a kind of the user's own (registered
#      again without a stream its connector's settings name); secrets and custom header
#      values encrypted under the key file.  The worker is then pointed at no database, so nothing changes.
#   2. pg_dump -Fc | pg_restore (also in parallel, as docs/operations.md says), and
#      pg_dump | psql, each into a new database of the same cluster, as the superuser and with nothing more: every table of the
#      extension has exactly the rows dumped (no queue row, stream or log row added, no
#      secret encrypted twice, no reference check failing for the order pg_dump loads
#      tables in), every identity sequence continues after the restored ids.
#   3. In the copy: row-level security and the tenant bindings still isolate the
#      tenants, the secrets and header values decrypt (a webhook signed with the restored
#      inbound secret is accepted); the plain dump holds no header value.
#   4. Into a database the workers serve: they do not start during the restore;
#      start_worker() starts them, and a pending delivery goes out signed with the
#      restored secret, with the restored header's value.
#   5. Into another cluster, the roles restored first, without the key file and with a
#      smaller integration.max_payload_bytes: the rows are the same (an event larger
#      than that limit included), the secrets and header values kept as dumped and
#      unavailable there.
#   6. Not a restore: a superuser's session with check_function_bodies off that calls
#      the API or writes a tracked table gets every trigger.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $recv = start_receiver();
my @conf = ("integration.retry_schedule = '1h'", "integration.database_name = 'postgres'");
my $node = new_integration_node('dump', @conf);
my $inbound = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

sub q1 { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
sub app { return tenant_psql($node, "SET ROLE app;\n$_[0]", $_[1], $_[2]); }

create_app_role($node, 'app');
q1(q{CREATE ROLE beta_app NOLOGIN IN ROLE app; SELECT integration.bind_role('beta_app', 'beta')});
q1(q{
	CREATE TABLE public.handled (external_id text);
	GRANT ALL ON public.handled TO app;
});

# 1. Both tenants, the same way; acme's failing endpoint's secret is rotated.
my (%ok, %fail, %secret, %conn, %header);
for my $t ('acme', 'beta')
{
	($ok{$t}) = split /\|/, app(qq{SELECT id, secret FROM integration.register_webhook('ok',
		'@{[receiver_url($recv, "/ok-$t")]}', '["order.*"]')}, $t);
	$header{$t} = "Bearer hdr-$t-5e2d9c71";
	($fail{$t}, $secret{$t}) = split /\|/, app(qq{SELECT id, secret FROM integration.register_webhook('fail',
		'@{[receiver_url($recv, "/fail-$t", status => 500)]}', '["order.*"]',
		headers => '{"Authorization": "$header{$t}"}')}, $t);
	app(q{SELECT integration.publish_event('order.created', '{"n": 1}');
		  SELECT integration.publish_event('order.paid', '{"n": 2}');
		  SELECT integration.log('info', 'test', 'test.note', 'a note')}, $t);
	$conn{$t} = app(qq{SELECT id FROM integration.create_connector('generic', 'shop',
		'https://api.example.invalid', '{"token": "t-0123456789"}', '{}', '$inbound')}, $t);
	app(qq{SELECT integration.call_connector($conn{$t}, 'POST /orders', '{"a": 1}')}, $t)
	  if $t eq 'acme';
}
my $retired = $secret{acme};
$secret{acme} = app(qq{SELECT integration.rotate_secret($fail{acme}, '7 days')}, 'acme');
q1(q{
	CREATE FUNCTION public.on_order(e integration.inbound_events) RETURNS void
		LANGUAGE sql AS $$ INSERT INTO public.handled VALUES (e.external_id) $$;
	GRANT EXECUTE ON FUNCTION public.on_order(integration.inbound_events) TO app;
});
# A kind of the user's own, and a connector of it that pulls one of its streams; the
# kind registered again without that stream, the connector's settings still name it.
q1(q{
	CREATE FUNCTION public.mine_build(c integration.connector_context, operation text, payload jsonb,
									  idempotency_key text)
		RETURNS integration.connector_request LANGUAGE sql STABLE
		AS $$ SELECT ('GET', '/items', NULL, NULL, NULL)::integration.connector_request $$;
	CREATE FUNCTION public.mine_normalise(c integration.connector_context, headers jsonb, body text)
		RETURNS SETOF integration.normalised_event LANGUAGE sql STABLE
		AS $$ SELECT NULL::text, 'items/updated', NULL::text, body::jsonb $$;
	CREATE FUNCTION public.mine_record(c integration.connector_context, topic text, payload jsonb)
		RETURNS integration.external_record LANGUAGE sql STABLE
		AS $$ SELECT ROW('items', payload ->> 'id', now(), payload)::integration.external_record $$;
});
sub register_mine
{
	q1(qq{SELECT integration.register_connector_kind('mine', 'none', 'none',
		normalise => 'public.mine_normalise(integration.connector_context, jsonb, text)',
		build_request => 'public.mine_build(integration.connector_context, text, jsonb, text)',
		interpret_response => 'integration.generic_interpret_response(integration.connector_context, text, integer, jsonb, text)',
		record => 'public.mine_record(integration.connector_context, text, jsonb)',
		pull_streams => '$_[0]', replace => true)});
}
register_mine('{items,orders}');
app(q{SELECT integration.create_connector('mine', 'mine', 'https://mine.example.invalid', NULL,
	'{"sync_interval": 0, "sync_streams": ["orders", "items"]}')}, 'acme');
register_mine('{items}');
app(q{SELECT integration.register_event_type('order.created', '{"type": "object"}', 'an order')}, 'acme');
app(q{SELECT integration.on_inbound('orders', '["generic.order.*"]', 'public.on_order(integration.inbound_events)')},
	'beta');
# A handler whose role became BYPASSRLS after it registered: the worker refuses to run
# it, and a restore loads it as dumped.
q1(q{CREATE ROLE late_app NOLOGIN IN ROLE app});
tenant_psql($node, q{SET ROLE late_app;
	SELECT integration.on_inbound('late', '["nothing.*"]', 'public.on_order(integration.inbound_events)')}, 'acme');
q1(q{ALTER ROLE late_app BYPASSRLS});
sub receive
{
	my ($t, $id, $db) = @_;
	my $body = qq({"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"$id"}});
	return app(qq{SELECT status FROM integration.receive_webhook($conn{$t},
		integration.sign('standard', '$inbound', \$b\$$body\$b\$, 'msg_$id'), \$b\$$body\$b\$)}, $t, $db);
}
is(receive('beta', 'in1') . ' ' . receive('acme', 'in2'), 'accepted accepted', 'inbound events received');
# A connector that pulls a stream (its sync_streams row, made by a trigger), and a
# record synced by hand: the pull itself needs a platform's server (t/025).
my $shop = app(q{SELECT id FROM integration.create_connector('shopify', 'store',
	'https://store.example.invalid', '{"access_token": "shpat_0123456789"}',
	'{"sync_interval": 0, "sync_streams": ["orders"]}')}, 'acme');
q1(qq{INSERT INTO integration.external_records (tenant_id, connector_id, stream, external_id,
		external_updated_at, payload, content_hash, source)
	  VALUES ('acme', $shop, 'orders', 'o1', '2026-01-01', '{"id": "o1"}',
			  sha256('{"id": "o1"}'::jsonb::text::bytea), 'pull')});

ok($node->poll_query_until('postgres', q{
	SELECT count(*) FILTER (WHERE status = 'delivered') = 4
	   AND count(*) FILTER (WHERE status = 'pending' AND attempts = 1) = 4
	   AND (SELECT count(*) FROM integration.delivery_attempts) = 4
	   AND (SELECT count(*) FROM integration.inbound_events WHERE status = 'processed') = 1
	   AND (SELECT count(*) FROM integration.inbound_events WHERE status = 'skipped') = 1
	   AND (SELECT count(*) FROM integration.connector_calls WHERE status = 'pending' AND attempts > 0) = 1
	  FROM integration.deliveries}),
	'the worker delivered, failed once, handled the inbound events and tried the call');

# Quiet from now on: the worker serves no database.
$node->append_conf('postgresql.conf', "integration.database_name = 'none'");
$node->restart;
# With no worker, an event published now stays queued; and a circuit, which opens
# after more failures than this test makes, is written as the worker writes one.
app(q{SELECT integration.publish_event('order.shipped', '{"n": 3}')}, 'acme');
# An event larger than the other cluster's integration.max_payload_bytes (section 5).
app(qq{SELECT integration.publish_event('order.large', '{"s": "@{['x' x 2000]}"}')}, 'acme');
q1(qq{INSERT INTO integration.target_circuits (tenant_id, kind, target_id, state, opened_at,
		next_probe_at, cooldown_ms, last_failure_at)
	  VALUES ('acme', 'webhook', $fail{acme}, 'open', now(), now() + interval '1 minute', 60000, now())});

my @tables = split /\n/, q1(q{
	SELECT c.relname FROM pg_class c JOIN pg_depend d ON d.objid = c.oid
	 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'integration')
	   AND d.deptype = 'e' AND c.relkind = 'r' ORDER BY 1});
is(scalar(@tables), 18, 'the extension has 18 tables');
is(q1(q{SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_extension e,
		unnest(e.extconfig) AS x(oid) JOIN pg_class c ON c.oid = x.oid
		WHERE e.extname = 'integration' AND c.relkind = 'S'}),
	join(' ', sort map { "${_}_id_seq" } qw(connector_calls connectors deliveries delivery_attempts
		inbound_events inbound_handlers integration_logs retired_secrets webhook_endpoints webhook_events)),
	'every identity sequence is configuration');

# Each table's rows, sorted.  The kinds the extension ships are created by CREATE
# EXTENSION, at the time it runs.
my %row = map { $_ => 't::text' } @tables;
$row{connector_kinds} = "(to_jsonb(t) - 'created_at' - 'updated_at')::text";
sub digests
{
	my ($db, $on) = @_;
	return ($on // $node)->safe_psql($db, join("\nUNION ALL ", map {
		"SELECT '$_', count(*), md5(coalesce(string_agg($row{$_}, '|' ORDER BY $row{$_} COLLATE \"C\"), '')) FROM integration.$_ t"
	} @tables) . "\nORDER BY 1");
}
my $source = digests('postgres');
is(join(' ', map { (split /\|/)[0] } grep { (split /\|/)[1] == 0 } split /\n/, $source),
	'', 'the source has rows in every table');

my $dump = $node->basedir . '/db.dump';
my $plain = $node->basedir . '/db.sql';
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump -Fc');
command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $plain ], 'pg_dump (plain)');
# A role bound by row-level security: pg_dump's default (row_security off) refuses to
# dump a table whose policies apply to it; with --enable-row-security it dumps the
# rows of the tenant its session selects, and of no tenant without one.
q1(q{CREATE ROLE dumper LOGIN IN ROLE app});
command_fails_like([ 'pg_dump', '-U', 'dumper', '-d', $node->connstr('postgres'), '-f', '/dev/null' ],
	qr/query would be affected by row-level security policy for table "\w+"/,
	'pg_dump as a role bound by row-level security fails');
{
	local $ENV{PGOPTIONS} = '-c integration.tenant_id=beta';
	command_like([ 'pg_dump', '-U', 'dumper', '--enable-row-security', '-a', '-t', 'integration.webhook_endpoints',
				   '-d', $node->connstr('postgres') ],
		qr/COPY integration\.webhook_endpoints .*\n(beta\t[^\n]*\n){2}\\\.\n/,
		'with --enable-row-security, only the selected tenant\'s rows');
}
q1('CREATE DATABASE copy_fc');
q1('CREATE DATABASE copy_plain');
q1('CREATE DATABASE copy_jobs');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('copy_fc'), $dump ],
	'pg_restore into a new database');
# In parallel (docs/operations.md): pg_restore -j loads each table's data in a session
# of its own, in any order, but the extension's tables refer to each other by foreign
# keys that exist before their rows come; so their data first, in the dump's order,
# then everything else with -j.
{
	my $list = sub {
		my ($keep) = @_;
		my $file = $node->basedir . ($keep ? '/integration.list' : '/rest.list');
		my ($toc) = run_command([ 'pg_restore', '-l', $dump ]);
		my @toc = split /\n/, $toc;
		open my $fh, '>', $file or die $!;
		print $fh map { "$_\n" } grep { (/ TABLE DATA integration / ? 1 : 0) == $keep } @toc;
		close $fh;
		return $file;
	};
	my $db = $node->connstr('copy_jobs');
	command_ok([ 'pg_restore', '--exit-on-error', '--section=pre-data', '-d', $db, $dump ],
		'pg_restore -j: the schema');
	command_ok([ 'pg_restore', '--exit-on-error', '-L', $list->(1), '-d', $db, $dump ],
		'pg_restore -j: the extension\'s tables in order');
	command_ok([ 'pg_restore', '--exit-on-error', '-j', '3', '--section=data', '--section=post-data',
				 '-L', $list->(0), '-d', $db, $dump ],
		'pg_restore -j: the rest with -j 3');
}
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy_plain'), '-f', $plain ],
	'psql of the plain dump into another');
my $plain_text = slurp_file($plain);
ok(index($plain_text, '"Authorization": "enc:v1:') >= 0
	  && !(grep { index($plain_text, "hdr-$_-") >= 0 } 'acme', 'beta'),
	'the plain dump holds the header values encrypted, and not as given');

for my $db ('copy_fc', 'copy_plain', 'copy_jobs')
{
	is(digests($db), $source, "$db: every table has exactly the rows dumped");
	my @ids = qw(connector_calls connectors deliveries delivery_attempts inbound_events
	  inbound_handlers integration_logs retired_secrets webhook_endpoints webhook_events);
	is(q1(join("\nUNION ALL ", map {
		"SELECT nextval(pg_get_serial_sequence('integration.$_', 'id')) > coalesce(max(id), 0) FROM integration.$_"
	} @ids), $db), join("\n", map { 't' } @ids),
		"$db: every identity sequence continues after the restored ids");
	is(app(q{SELECT string_agg(DISTINCT tenant_id, ' ') FROM integration.webhook_endpoints}, 'beta', $db)
		. ' ' . app(q{SELECT count(*) FROM integration.deliveries WHERE tenant_id = 'acme'}, 'beta', $db),
		'beta 0', "$db: row-level security keeps beta to its own rows");
	is(q1(q{SET ROLE beta_app; SELECT string_agg(DISTINCT tenant_id, ' ') FROM integration.connectors}, $db),
		'beta', "$db: the restored binding makes beta_app act as beta");
	my ($rc, $out, $err) = $node->psql($db, q{SET ROLE beta_app; SET integration.tenant_id = 'acme';
		SELECT count(*) FROM integration.connectors});
	like($err, qr/DETAIL:  role "beta_app" cannot act as tenant "acme": Role "beta_app" is bound to tenant "beta" in/, "$db: and only as beta");
	is(q1(q{SELECT string_agg(integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, id::text),
							  ' ' ORDER BY tenant_id, id) FROM integration.webhook_endpoints WHERE name = 'fail'}, $db),
		join(' ', map { 'whsec_********' . substr($secret{$_}, -4) } 'acme', 'beta'),
		"$db: the endpoints' secrets decrypt, the rotated one included");
	is(q1(q{SELECT integration.mask_stored_secret(secret, 'webhook_endpoints.secret', tenant_id, endpoint_id::text)
			  FROM integration.retired_secrets}, $db),
		'whsec_********' . substr($retired, -4), "$db: so does the retired secret");
	is(q1(q{SELECT string_agg(integration.mask_stored_secrets(headers, 'webhook_endpoints.headers', tenant_id, id::text)::text,
							  ' ' ORDER BY tenant_id, id) FROM integration.webhook_endpoints WHERE name = 'fail'}, $db),
		join(' ', map { '{"Authorization": "********' . substr($header{$_}, -4) . '"}' } 'acme', 'beta'),
		"$db: and so do the header values");
	is(receive('acme', "again-$db", $db), 'accepted', "$db: a webhook signed with the restored inbound secret is accepted");
}

# 4. Restored into a database the workers serve: CREATE EXTENSION's commit does not
# start them while the tables are still to be loaded; start_worker() does, after.  The
# pending deliveries of beta's failing endpoint, made due at an endpoint that answers
# now, go out signed with the restored secret.
$node->append_conf('postgresql.conf', "integration.database_name = ''");
$node->restart;
q1('CREATE DATABASE copy_live');
# pg_restore shows the server's warnings with --verbose only.
command_checks_all([ 'pg_restore', '--verbose', '--exit-on-error', '-d', $node->connstr('copy_live'), $dump ], 0, [qr/^$/],
	[qr/WARNING:  the integration workers of database "copy_live" do not start while a dump is restored\nHINT:  When the restore is complete, run SELECT integration.start_worker\(\); in the database, or restart the server\./],
	'pg_restore into a database the workers serve warns that they do not start');
app(qq{SELECT integration.update_webhook($fail{beta}, url => '@{[receiver_url($recv, "/fixed")]}')}, 'beta', 'copy_live');
q1(qq{UPDATE integration.deliveries SET next_attempt_at = now()
	   WHERE tenant_id = 'beta' AND endpoint_id = $fail{beta} AND status = 'pending'}, 'copy_live');
is(q1(q{SELECT count(*) FROM pg_stat_activity WHERE datname = 'copy_live' AND backend_type LIKE 'integration%'}),
	'0', 'no worker runs in the restored database');
is(q1('SELECT integration.start_worker()', 'copy_live'), 't', 'start_worker() starts them');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM pg_stat_activity
	WHERE datname = 'copy_live' AND backend_type LIKE 'integration%'}), 'both of them');
ok($node->poll_query_until('copy_live', qq{SELECT count(*) = 2 FROM integration.deliveries
	WHERE tenant_id = 'beta' AND endpoint_id = $fail{beta} AND status = 'delivered'}),
	'the worker delivers the copy\'s pending deliveries');
my @fixed = grep { $_->{path_only} eq '/fixed' } read_log_settled($recv);
is(scalar(grep { verify_signature($secret{beta}, $_->{headers}, $_->{body}) } @fixed), 2,
	'signed with the restored secret');
is(join(' ', map { $_->{headers}{authorization} // 'none' } @fixed), "$header{beta} $header{beta}",
	'with the restored header value, as registered');

# 5. Another cluster, without the key file: the roles first (pg_dumpall --globals-only),
# then the dump; the secrets are kept as dumped, and do not open there.  Its
# integration.max_payload_bytes is below an event's size: what was published under the
# source's limit is restored all the same (the limit is the envelope's CHECK).
my $other = new_integration_node('nokey', "integration.encryption_key_file = ''",
	"integration.database_name = 'none'", "integration.max_payload_bytes = '1kB'");
my $globals = $node->basedir . '/globals.sql';
command_ok([ 'pg_dumpall', '--globals-only', '-d', $node->connstr('postgres'), '-f', $globals ],
	'pg_dumpall --globals-only');
# The bootstrap superuser exists on both: that one statement fails, the others run.
command_ok([ 'psql', '-X', '-q', '-d', $other->connstr('postgres'), '-f', $globals ], 'the roles restored');
$other->safe_psql('postgres', 'CREATE DATABASE copy');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('copy'), $dump ],
	'pg_restore into a cluster without the key');
is(digests('copy', $other), $source, 'every table has exactly the rows dumped');
is($other->safe_psql('copy', qq{SELECT integration.mask_stored_secret(secret, 'webhook_endpoints.secret',
		tenant_id, id::text) FROM integration.webhook_endpoints WHERE tenant_id = 'beta' AND id = $fail{beta}}),
	'(unavailable)', 'a secret does not open without its key');
is($other->safe_psql('copy', qq{SELECT integration.mask_stored_secrets(headers, 'webhook_endpoints.headers',
		tenant_id, id::text) FROM integration.webhook_endpoints WHERE tenant_id = 'beta' AND id = $fail{beta}}),
	'{"Authorization": "(unavailable)"}', 'nor does a header value');
$other->stop;

# 6. Not a restore: a superuser's session with check_function_bodies off (a migration
# made from a dump, another extension's script) that calls the API, or writes a business
# table that publishes, gets every trigger.  The plain INSERT of publishing (a trigger of
# the DBA's own on webhook_events rules out the fast path) queues the events; a new
# connector gets its sync streams.  Rolled back: the copy's worker sees none of it.
is(q1(q{BEGIN;
	SET LOCAL check_function_bodies = off;
	SET LOCAL integration.tenant_id = 'acme';
	CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
	CREATE TRIGGER audit AFTER INSERT ON integration.webhook_events
		FOR EACH STATEMENT EXECUTE FUNCTION public.audit();
	CREATE TABLE public.orders (tenant_id text, n int);
	DO $$ BEGIN
		PERFORM integration.track_table('public.orders', 'order', 'tenant_id');
		PERFORM integration.publish_event('order.late', '{"n": 4}');
		PERFORM integration.create_connector('shopify', 'late', 'https://late.example.invalid',
			'{"access_token": "shpat_0123456789"}', '{"sync_interval": 0, "sync_streams": ["orders"]}');
	END $$;
	INSERT INTO public.orders VALUES ('acme', 5);
	SELECT string_agg(e.event || '=' || (SELECT count(*) FROM integration.webhook_event_queue q
										  WHERE q.tenant_id = e.tenant_id AND q.event_id = e.id), ' ' ORDER BY e.id)
	  FROM integration.webhook_events e WHERE e.created_at = now();
	SELECT count(*) FROM integration.sync_streams s JOIN integration.connectors c
		ON c.tenant_id = s.tenant_id AND c.id = s.connector_id WHERE c.name = 'late';
	ROLLBACK}, 'copy_fc'),
	"order.late=1 order.created=1\n1",
	'a superuser\'s session with check_function_bodies off queues its events and makes sync streams');

$node->stop;
stop_receiver($recv);
done_testing();
