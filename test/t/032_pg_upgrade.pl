# pg_upgrade of a database that uses the extension.  pg_upgrade keeps no function's OID,
# so it refuses a database with a regproc or regprocedure column in any table
# ("Checking for reg* data types in user tables"); the extension's tables name functions
# by signature instead (connector_kinds' adapters, inbound_handlers' handlers).
#
#   1. An old cluster with a kind written in SQL (normalise, build_request,
#      interpret_response), a connector of it and a handler: no table of the database has
#      a column of a reg* type pg_upgrade refuses, and pg_upgrade --check passes.
#   2. pg_upgrade (same major version: the checks and the transfer are the same) into a
#      fresh cluster, which then starts: the kind's and the handler's signatures name
#      the same functions, call_connector() builds a request with the kind's adapter, and
#      a webhook received is normalised by the kind and handed to the handler by the
#      worker.
#   3. A function renamed since it was registered: the webhook is refused with
#      undefined_function naming the kind, the column and the signature; a handler
#      renamed fails its event with the same, and the worker goes on.

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @conf = ("integration.retry_schedule = '1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s'");
my $old = new_integration_node('old', @conf);

sub q_old { return $old->safe_psql('postgres', $_[0]); }

create_app_role($old, 'app');
q_old(q{
	CREATE FUNCTION public.up_normalise(c integration.connector_context, h jsonb, b text)
		RETURNS SETOF integration.normalised_event
		LANGUAGE sql
	AS $$ SELECT (b::jsonb ->> 'id', b::jsonb ->> 'type', NULL, b::jsonb)::integration.normalised_event $$;
	CREATE FUNCTION public.up_build(c integration.connector_context, op text, p jsonb, k text)
		RETURNS integration.connector_request
		LANGUAGE sql
	AS $$ SELECT ('POST', '/' || op, NULL, NULL, p::text)::integration.connector_request $$;
	CREATE FUNCTION public.up_interpret(c integration.connector_context, op text, s integer,
										h jsonb, b text)
		RETURNS integration.connector_outcome
		LANGUAGE sql
	AS $$ SELECT ('succeeded', NULL, NULL, NULL)::integration.connector_outcome $$;
	SELECT name FROM integration.register_connector_kind('upkind', 'none', 'none',
		normalise => 'public.up_normalise(integration.connector_context, jsonb, text)',
		build_request => 'public.up_build(integration.connector_context, text, jsonb, text)',
		interpret_response => 'public.up_interpret(integration.connector_context, text, integer, jsonb, text)');
	CREATE TABLE public.handled (external_id text, handler text);
	GRANT ALL ON public.handled TO app;
	GRANT EXECUTE ON FUNCTION public.up_normalise(integration.connector_context, jsonb, text),
		public.up_build(integration.connector_context, text, jsonb, text),
		public.up_interpret(integration.connector_context, text, integer, jsonb, text) TO app;
});
tenant_psql($old, q{
	SET ROLE app;
	CREATE FUNCTION public.up_handler(e integration.inbound_events) RETURNS void
		LANGUAGE sql
	AS $$ INSERT INTO public.handled VALUES (e.external_id, 'up_handler') $$;
	SELECT integration.on_inbound('up', '["upkind.**"]', 'public.up_handler(integration.inbound_events)')});
my $conn = tenant_psql($old, q{SET ROLE app;
	SELECT id FROM integration.create_connector('upkind', 'up', 'https://api.example.invalid', '{}')});
like($conn, qr/^\d+$/, 'a connector of a kind written in SQL, and a handler');

is(q_old(q{SELECT verify_function IS NULL, normalise_function, build_request_function,
				  interpret_response_function
			 FROM integration.connector_kinds WHERE name = 'upkind'}),
	't|public.up_normalise(integration.connector_context,jsonb,text)'
	  . '|public.up_build(integration.connector_context,text,jsonb,text)'
	  . '|public.up_interpret(integration.connector_context,text,integer,jsonb,text)',
	'the kind names its adapters by schema-qualified signature');
is(q_old(q{SELECT handler FROM integration.inbound_handlers}),
	'public.up_handler(integration.inbound_events)', 'and the handler its function');

# Plain SQL writes are brought to that form; a function that does not exist is refused,
# also as a bare OID.
is(q_old(q{UPDATE integration.connector_kinds
			  SET normalise_function = 'public.up_normalise(integration.connector_context,  pg_catalog.jsonb, text)'
			WHERE name = 'upkind' RETURNING normalise_function}),
	'public.up_normalise(integration.connector_context,jsonb,text)', 'a direct write is canonicalised');
my ($rc, $out, $err) = $old->psql('postgres', q{UPDATE integration.connector_kinds
	SET normalise_function = 'public.nope(integration.connector_context, jsonb, text)' WHERE name = 'upkind'});
like($err, qr/ERROR:  function "public\.nope\(integration\.connector_context, jsonb, text\)" does not exist/,
	'a missing function is refused');
($rc, $out, $err) = $old->psql('postgres', q{UPDATE integration.connector_kinds
	SET normalise_function = '123456789' WHERE name = 'upkind'});
like($err, qr/ERROR:  function with OID 123456789 does not exist/, 'so is an OID of none');

# What pg_upgrade's check refuses: these types, and domains and arrays over them, in a
# column of a table, an index or a materialised view of any schema but pg_catalog's.
is(q_old(q{
	WITH RECURSIVE refused(oid) AS (
		SELECT t.oid FROM pg_type t
		 WHERE t.typnamespace = 'pg_catalog'::regnamespace
		   AND t.typname IN ('regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig',
							 'regdictionary', 'regnamespace', 'regcollation')
		UNION
		SELECT t.oid FROM pg_type t, refused r
		 WHERE (t.typtype = 'd' AND t.typbasetype = r.oid)
			OR (t.typelem = r.oid AND t.typlen = -1)
			OR (t.typtype = 'c' AND t.typrelid IN
				(SELECT a.attrelid FROM pg_attribute a WHERE a.atttypid = r.oid)))
	SELECT count(*) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	 WHERE c.relkind IN ('r', 'm', 'i') AND a.attnum > 0 AND NOT a.attisdropped
	   AND c.relnamespace <> 'pg_catalog'::regnamespace
	   AND a.atttypid IN (SELECT oid FROM refused)}),
	'0', 'no table column of a reg* type pg_upgrade refuses');

$old->stop;

# The new cluster: initdb only, configured as the old one (the same key file).
my $new = PostgreSQL::Test::Cluster->new('new');
init_node($new);
$new->append_conf('postgresql.conf', integration_conf(key_file_path($old), @conf));

my $bindir = $old->config_data('--bindir');
my @upgrade = ('pg_upgrade', '--no-sync',
	'-d', $old->data_dir, '-D', $new->data_dir,
	'-b', $bindir, '-B', $bindir,
	'-s', $new->host, '-p', $old->port, '-P', $new->port);
command_ok([ @upgrade, '--check' ], 'pg_upgrade --check passes');
# Copying the files (the default), which leaves the old cluster as it was.
command_ok(\@upgrade, 'pg_upgrade upgrades the cluster');

$new->start;

sub q_new { return $new->safe_psql('postgres', $_[0]); }

is(q_new(q{SELECT normalise_function::regprocedure = 'public.up_normalise(integration.connector_context, jsonb, text)'::regprocedure
				  AND build_request_function::regprocedure = 'public.up_build(integration.connector_context, text, jsonb, text)'::regprocedure
			 FROM integration.connector_kinds WHERE name = 'upkind'}),
	't', 'after the upgrade the kind names the same functions');
is(q_new(q{SELECT handler::regprocedure = 'public.up_handler(integration.inbound_events)'::regprocedure
			 FROM integration.inbound_handlers}),
	't', 'and the handler its function');
like(tenant_psql($new, qq{SET ROLE app; SELECT integration.call_connector($conn, 'things', '{"a": 1}')}),
	qr/^\d+$/, 'call_connector() builds the request with the kind\'s adapter');
is(tenant_psql($new, qq{SET ROLE app;
	SELECT status FROM integration.receive_webhook($conn, '{}', '{"id": "e1", "type": "thing.made"}')}),
	'accepted', 'a webhook is normalised by the kind');
ok($new->poll_query_until('postgres', q{SELECT count(*) = 1 FROM public.handled WHERE external_id = 'e1'}),
	'and handed to the handler by the worker');

# 3. Functions renamed: they no longer serve the kind or the handler.
q_new(q{ALTER FUNCTION public.up_build(integration.connector_context, text, jsonb, text) RENAME TO up_build2;
		ALTER FUNCTION public.up_normalise(integration.connector_context, jsonb, text) RENAME TO up_normalise2;
		ALTER FUNCTION public.up_handler(integration.inbound_events) RENAME TO up_handler2;});
($rc, $out, $err) = $new->psql('postgres', qq{SET integration.tenant_id = 'acme'; SET ROLE app;
	SELECT integration.call_connector($conn, 'things', '{"a": 2}')});
like($err, qr/ERROR:  function public\.up_build\(integration\.connector_context,text,jsonb,text\) of connector kind "upkind" does not exist\nDETAIL:  Column build_request_function of the kind names the function by signature/,
	'a renamed adapter: call_connector() raises naming the kind, the column and the signature');
is(tenant_psql($new, qq{SET ROLE app;
	SELECT status FROM integration.receive_webhook($conn, '{}', '{"id": "e2", "type": "thing.made"}')}),
	'rejected', 'a renamed normaliser: the webhook is rejected');
is(q_new(q{SELECT context ->> 'detail' FROM integration.integration_logs
			 WHERE event = 'inbound.rejected' ORDER BY id DESC LIMIT 1}),
	'The kind\'s normaliser could not read the request: function public.up_normalise(integration.connector_context,jsonb,text) of connector kind "upkind" does not exist',
	'the rejection logged names the kind and the signature');
q_new(q{ALTER FUNCTION public.up_normalise2(integration.connector_context, jsonb, text) RENAME TO up_normalise;
		ALTER FUNCTION public.up_build2(integration.connector_context, text, jsonb, text) RENAME TO up_build;});
is(tenant_psql($new, qq{SET ROLE app;
	SELECT status FROM integration.receive_webhook($conn, '{}', '{"id": "e3", "type": "thing.made"}')}),
	'accepted', 'renamed back, the kind works again');
ok($new->poll_query_until('postgres', q{
		SELECT last_error FROM integration.inbound_events WHERE external_id = 'e3'},
		'handler up: function public.up_handler(integration.inbound_events) of inbound handler "up" does not exist (SQLSTATE 42883)'),
	'a renamed handler fails its event, naming the handler and the signature');
q_new(q{ALTER FUNCTION public.up_handler2(integration.inbound_events) RENAME TO up_handler;});
ok($new->poll_query_until('postgres', q{SELECT count(*) = 1 FROM public.handled WHERE external_id = 'e3'}),
	'renamed back, the worker hands the event on its next attempt');

$new->stop;
done_testing();
