# The OpenAPI document integration.openapi() produces is valid OpenAPI 3.1, as judged
# by someone else's validator (@seriousme/openapi-schema-validator, which checks it
# against the OpenAPI Initiative's JSON Schema for 3.1 and resolves its $refs): with no
# tracked table, with a tracked table of numeric, timestamptz, jsonb, array, enum,
# varchar and nullable columns, with a registered event type, and after a column is
# added (which shows up).  A document broken on purpose is refused, so the check can
# fail.  Node and the package are required: without them this test fails.
# $ENV{INTEGRATION_INTEROP} is the test/interop directory with node_modules.

use strict;
use warnings;

use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $json = JSON::PP->new->canonical;
my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -f "$interop/openapi.mjs", 'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
ok(defined $interop && -f "$interop/node_modules/\@seriousme/openapi-schema-validator/package.json",
	'npm package @seriousme/openapi-schema-validator is installed')
  or diag('run scripts/install-deps, which runs npm ci in test/interop');
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

my $tmp = PostgreSQL::Test::Utils::tempdir('openapi');

# Validates documents (Perl structures); returns the validator's answer for each.
sub validate
{
	my @docs = @_;
	my @files;
	for my $i (0 .. $#docs)
	{
		my $path = "$tmp/doc$i.json";
		open(my $fh, '>:raw', $path) or die "$path: $!";
		print $fh $json->encode($docs[$i]);
		close $fh;
		push @files, $path;
	}
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'node', "$interop/openapi.mjs", @files ], '>', \$out, '2>', \$err)
	  or die "node openapi.mjs failed (exit $?): $err";
	return @{ $json->decode($out) };
}

my $node = new_integration_node('openapi');
sub doc
{
	return $json->decode(tenant_psql($node, q{SELECT integration.openapi('https://erp.example.com/api')}));
}

my $empty = doc();

$node->safe_psql('postgres', q{
	CREATE TYPE invoice_status AS ENUM ('open', 'paid', 'void');
	CREATE TABLE invoices (
		tenant_id text NOT NULL,
		id bigint PRIMARY KEY,
		amount numeric(12, 2) NOT NULL CHECK (amount >= 0),
		issued_at timestamptz NOT NULL DEFAULT now(),
		lines jsonb,
		tags text[],
		scores double precision[],
		status invoice_status NOT NULL DEFAULT 'open',
		reference varchar(40),
		paid boolean);
	SELECT integration.track_table(tbl => 'invoices', event_prefix => 'invoice');
});
tenant_psql($node, q{
	SELECT integration.register_webhook(name => 'all', url => 'https://hooks.example.com/all', events => '["*"]');
	SELECT integration.register_event_type('customer.merged',
		'{"type": "object", "required": ["into"], "properties": {"into": {"type": "integer"},
		  "from": {"type": "array", "items": {"type": "integer"}}}}', 'Two customers became one');
	SELECT integration.publish_event('shipment.sent', '{"carrier": "x"}');
});
my $tracked = doc();

$node->safe_psql('postgres', 'ALTER TABLE invoices ADD COLUMN due_on date');
my $altered = doc();

my @r = validate($empty, $tracked, $altered);
for my $i (0 .. 2)
{
	my $name = (qw(no-tracked-table tracked-table column-added))[$i];
	is($r[$i]{version}, '3.1', "$name: the validator reads it as OpenAPI 3.1");
	ok($r[$i]{valid}, "$name: valid") or diag(explain($r[$i]{errors}));
}

is_deeply([ sort keys %{ $tracked->{webhooks} } ],
	[qw(customer.merged endpoint.disabled invoice.created invoice.deleted invoice.updated shipment.sent)],
	'webhooks: the tracked table\'s events, the registered type, the extension\'s own event and the published name');
my $row = $tracked->{webhooks}{'invoice.updated'}{post}{requestBody}{content}{'application/json'}{schema}
  {properties}{data}{properties}{new};
is_deeply($row->{properties}{amount}, { type => 'number', minimum => 0 }, 'numeric with its CHECK');
is_deeply($row->{properties}{issued_at}, { type => 'string', format => 'date-time' }, 'timestamptz');
is_deeply($row->{properties}{lines}, {}, 'jsonb: any JSON value');
is_deeply($row->{properties}{tags}, { type => [ 'array', 'null' ], items => { type => 'string' } },
	'nullable text[]');
is_deeply($row->{properties}{status}, { type => 'string', enum => [qw(open paid void)], default => 'open' },
	'enum with its default');
is_deeply($row->{properties}{reference}, { type => [ 'string', 'null' ], maxLength => 40 }, 'varchar(40), nullable');
ok(!exists $row->{properties}{due_on}, 'no due_on before the column exists');
is_deeply(
	$altered->{webhooks}{'invoice.created'}{post}{requestBody}{content}{'application/json'}{schema}
	  {properties}{data}{properties}{new}{properties}{due_on},
	{ type => [ 'string', 'null' ], format => 'date' },
	'the added column is in the next document');
is($tracked->{servers}[0]{url}, 'https://erp.example.com/api', 'the server URL given');

# Broken on purpose: the validator must refuse these.
my %broken = %$tracked;
delete $broken{info};
my %bad_ref = %$tracked;
$bad_ref{paths} = { '/x' => { get => { responses => { '200' => { description => 'ok',
	content => { 'application/json' => { schema => { '$ref' => '#/components/schemas/Nope' } } } } } } } };
my @bad = validate(\%broken, \%bad_ref);
ok(!$bad[0]{valid}, 'a document without info is refused');
ok(!$bad[1]{valid}, 'a document with a dangling $ref is refused');

$node->stop;
done_testing();
