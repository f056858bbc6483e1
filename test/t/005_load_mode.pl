# The library refuses to work unless it comes from shared_preload_libraries, with an
# ERROR and a hint, and the session survives: for CREATE EXTENSION, for LOAD, and for a
# call to a function of an extension created while the library was preloaded, and for
# any DROP in a database that has the extension (its sql_drop event trigger).

use strict;
use warnings;

use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
init_node($node);
$node->append_conf('postgresql.conf', "fsync = off\n");
$node->start;

my $message = qr/ERROR:  integration must be loaded via shared_preload_libraries/;
my $hint = qr/HINT:  Add integration to shared_preload_libraries in postgresql\.conf and restart the server\./;

# Each statement is followed by SELECT 'alive' in the same session: a FATAL would end
# the session before it.
sub try_then_alive
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "$sql;\nSELECT 'alive'",
		on_error_stop => 0);
	return ($ret, $stdout, $stderr);
}

my ($ret, $out, $err) = try_then_alive('CREATE EXTENSION integration');
like($err, $message, 'CREATE EXTENSION without the preload: the ERROR');
like($err, $hint, 'CREATE EXTENSION without the preload: the hint');
unlike($err, qr/FATAL/, 'CREATE EXTENSION without the preload: no FATAL');
is($out, 'alive', 'CREATE EXTENSION without the preload: the session goes on');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'integration'"),
	'0', 'no extension was created');

($ret, $out, $err) = try_then_alive("LOAD 'integration'");
like($err, $message, 'LOAD without the preload: the ERROR');
like($err, $hint, 'LOAD without the preload: the hint');
is($out, 'alive', 'LOAD without the preload: the session goes on');

# Twice in one session: a library whose _PG_init failed is tried again, and fails again.
($ret, $out, $err) = $node->psql('postgres',
	"LOAD 'integration';\nLOAD 'integration';\nSELECT 'alive'", on_error_stop => 0);
my @errors = ($err =~ /must be loaded via shared_preload_libraries/g);
is(scalar @errors, 2, 'a second LOAD in the same session fails the same way');
is($out, 'alive', 'and the session goes on');

# An extension created while preloaded, then a restart without the preload.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'integration'\n");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION integration');
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;

($ret, $out, $err) = try_then_alive('SELECT integration.current_tenant()');
like($err, $message, 'a function of an existing extension without the preload: the ERROR');
like($err, $hint, 'a function of an existing extension without the preload: the hint');
is($out, 'alive', 'a function of an existing extension without the preload: the session goes on');

($ret, $out, $err) = try_then_alive(
	"SELECT * FROM integration.register_webhook(name => 'x', url => 'https://example.com/', events => '[\"a.*\"]')");
like($err, $message, 'the API without the preload: the ERROR');
is($out, 'alive', 'the API without the preload: the session goes on');

# Any DROP fires the extension's sql_drop event trigger, whose function is in the
# library: the same ERROR, and nothing dropped (docs/operations.md, Troubleshooting).
$node->safe_psql('postgres', 'CREATE TABLE unrelated (a int)');
($ret, $out, $err) = try_then_alive('DROP TABLE unrelated');
like($err, $message, 'a DROP without the preload: the ERROR');
like($err, $hint, 'a DROP without the preload: the hint');
is($out, 'alive', 'a DROP without the preload: the session goes on');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'unrelated'"),
	'1', 'and the table is still there');

# DROP EXTENSION needs no library: the trigger goes with it.
$node->safe_psql('postgres', 'DROP EXTENSION integration CASCADE');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'integration'"),
	'0', 'DROP EXTENSION without the preload works');
$node->safe_psql('postgres', 'DROP TABLE unrelated');

$node->stop;
done_testing();
