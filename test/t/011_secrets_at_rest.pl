# Endpoint secrets encrypted at rest (issue #14, item 7), on real servers: without a
# key file (plain text, said once in the server log and in worker_status()) and the
# move to a key file; the key file's checks; what pg_dump, the table's data file and
# the WAL hold; deliveries that verify with the original secrets; key rotation with
# reencrypt_secrets(), under a concurrent update; a secret that does not decrypt
# (wrong key, a ciphertext copied to another tenant) failing its own deliveries with
# secret_unavailable while the worker goes on; custom header values, encrypted the same
# way, sent as registered, and rotated with the secrets.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use IntegrationTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $recv = start_receiver();
my %secret = (
	a => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ0Fb6qZ7Lw8=',
	b => 'whsec_yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=',
	c => 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
);

# The key id as the extension derives it, computed independently.
sub key_id { return substr(sha256_hex('integration key id' . pack('H*', $_[0])), 0, 8); }

sub register
{
	my ($node, $tenant, $name, $secret) = @_;
	my $url = receiver_url($recv, "/@{[$node->name]}/$name");
	my $arg = defined $secret ? ", secret => '$secret'" : '';
	return split /\|/, tenant_psql($node, qq{
		SELECT id, secret FROM integration.register_webhook(name => '$name', url => '$url',
			events => '["*"]'$arg)}, $tenant);
}

# Dispatches one event to the endpoint, waits for its delivery, and checks that the
# request the receiver got is signed with $secret.
sub delivers_signed
{
	my ($node, $tenant, $ep, $name, $secret, $what) = @_;
	my $d = tenant_psql($node,
		"SELECT integration.dispatch_webhook(id => $ep, event => 'test.ping', payload => '{}')",
		$tenant);
	ok($node->poll_query_until('postgres',
			"SELECT status = 'delivered' FROM integration.deliveries WHERE id = $d"),
		"$what: delivered");
	my $msg = $node->safe_psql('postgres',
		"SELECT message_id FROM integration.webhook_deliveries WHERE id = $d");
	my ($req) = wait_for_requests($recv, 1, 10,
		sub { $_[0]{path_only} eq "/@{[$node->name]}/$name" && $_[0]{headers}{'webhook-id'} eq $msg });
	ok($req && verify_signature($secret, $req->{headers}, $req->{body}),
		"$what: signed with the original secret");
	return $d;
}

sub stored { return $_[0]->safe_psql('postgres', "SELECT secret FROM integration.webhook_endpoints WHERE id = $_[1]"); }

########################################################################
# 1. No key file: secrets are stored as before, and the server says so once, in its
#    log and in worker_status().
########################################################################

my $plain = new_integration_node('plain', "integration.encryption_key_file = ''",
	"integration.retry_schedule = '200ms'");
my $log = slurp_file($plain->logfile);
is(scalar(() = $log =~ /integration: integration\.encryption_key_file is not set, so endpoint secrets are stored unencrypted/g),
	1, 'without a key file the server log says once that secrets are stored unencrypted');
ok($plain->poll_query_until('postgres', "SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery'"),
	'the worker runs');
is($plain->safe_psql('postgres',
		"SELECT secrets_encrypted, encryption_key_id IS NULL FROM integration.worker_status() WHERE role = 'delivery'"),
	'f|t', 'worker_status(): secrets not encrypted, no key id');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM integration.encryption_keys()'), '0',
	'encryption_keys(): none');
my ($p1) = register($plain, 'acme', 'p1', $secret{a});
is(stored($plain, $p1), $secret{a}, 'the secret is stored as given');
delivers_signed($plain, 'acme', $p1, 'p1', $secret{a}, 'plain text mode');
my ($rc, $out, $err) = $plain->psql('postgres', 'SELECT integration.reencrypt_secrets()');
like($err, qr/ERROR:  no encryption key is loaded/, 'reencrypt_secrets() without a key: an error');

# The move to a key file: restart with one, then encrypt what is stored.
my $k0 = random_key();
write_key_file(key_file_path($plain), $k0);
$plain->append_conf('postgresql.conf',
	"integration.encryption_key_file = '" . key_file_path($plain) . "'");
my $offset = -s $plain->logfile;
$plain->restart;
ok($plain->log_contains(qr/integration: endpoint secrets are encrypted with key ${\key_id($k0)} \(1 key loaded from/, $offset),
	'with a key file the server log names the key id');
ok($plain->poll_query_until('postgres',
		"SELECT secrets_encrypted AND encryption_key_id = '@{[key_id($k0)]}' FROM integration.worker_status() WHERE role = 'delivery'"),
	'worker_status(): secrets encrypted, with that key');
is($plain->safe_psql('postgres', 'SELECT integration.reencrypt_secrets()'), '1',
	'reencrypt_secrets() encrypts the one stored in plain text');
like(stored($plain, $p1), qr/^enc:v1:${\key_id($k0)}:/, 'it is stored encrypted now');
delivers_signed($plain, 'acme', $p1, 'p1', $secret{a}, 'after the move');

########################################################################
# 2. The key file is checked at server start; a bad one stops the server with a
#    message that names the file and never quotes its content.
########################################################################

my $kf = key_file_path($plain);

# Writes bytes as they are, mode 0600.
sub write_raw
{
	my ($path, $bytes) = @_;
	my $umask = umask(077);
	open(my $fh, '>:raw', $path) or die "$path: $!";
	print $fh $bytes;
	close $fh;
	umask($umask);
	return;
}

sub start_fails_with
{
	my ($node, $pattern, $what) = @_;
	my $from = -s $node->logfile;
	ok(!$node->start(fail_ok => 1), "$what: the server does not start");
	ok($node->log_contains($pattern, $from), "$what: the log says why");
	return substr(slurp_file($node->logfile), $from);
}
$plain->stop;
chmod(0640, $kf);
start_fails_with($plain, qr/FATAL:  encryption key file ".*integration\.key" has group or world access/,
	'group-readable key file');
chmod(0604, $kf);
start_fails_with($plain, qr/FATAL:  encryption key file ".*" has group or world access/,
	'world-readable key file');
write_key_file($kf, 'g' x 64);
my $fatal = start_fails_with($plain,
	qr/FATAL:  line 1 of encryption key file ".*" is not a key of 64 hexadecimal digits/, 'a line that is no key');
unlike($fatal, qr/ggg/, 'the message does not quote the line');
write_key_file($kf, substr($k0, 0, 32));
start_fails_with($plain, qr/FATAL:  line 1 of encryption key file ".*" is not a key of 64 hexadecimal digits/,
	'a line of half a key');
write_raw($kf, substr($k0, 0, 32));
start_fails_with($plain, qr/FATAL:  encryption key file ".*" holds 32 hexadecimal digits/,
	'32 hex digits alone, which would read as 32 raw bytes');
write_key_file($kf, "# comments only");
start_fails_with($plain, qr/FATAL:  encryption key file ".*" holds no key/, 'no key');
write_key_file($kf, $k0, uc $k0);
start_fails_with($plain, qr/FATAL:  encryption key file ".*" holds key ${\key_id($k0)} twice \(line 2\)/,
	'one key twice');
unlink $kf;
start_fails_with($plain, qr/FATAL:  could not open encryption key file ".*": No such file/, 'no file');
# The same key as 32 raw bytes (the file as head -c 32 /dev/urandom makes it).
write_raw($kf, pack('H*', $k0));
$offset = -s $plain->logfile;
$plain->start;
ok($plain->log_contains(qr/encrypted with key ${\key_id($k0)} \(1 key/, $offset),
	'a file of 32 raw bytes is one key: the same key as its 64 hex digits');
delivers_signed($plain, 'acme', $p1, 'p1', $secret{a}, 'raw key file');
my $fulllog = slurp_file($plain->logfile);
ok(index($fulllog, $k0) < 0 && index($fulllog, pack('H*', $k0)) < 0 && index(lc($fulllog), $k0) < 0,
	'the key is nowhere in the server log');
$plain->stop;

########################################################################
# 3. A server with a key: what is stored, dumped and logged holds no secret, and
#    deliveries verify with the original secrets.
########################################################################

# Retries a second apart for half a minute: a delivery waiting for its key outlives
# the restarts below.
my $node = new_integration_node('enc',
	"integration.retry_schedule = '" . join(', ', ('1s') x 30) . "'");
chomp(my $k1 = slurp_file(key_file_path($node)));
my $id1 = key_id($k1);
my ($ea) = register($node, 'acme', 'ea', $secret{a});
my ($eb) = register($node, 'beta', 'eb', $secret{b});
my ($eg, $generated) = register($node, 'acme', 'eg');
like($generated, qr/^whsec_[A-Za-z0-9+\/]{43}=$/, 'register_webhook() shows a generated secret once');
my %plaintext = (ea => $secret{a}, eb => $secret{b}, eg => $generated);
my %ep = (ea => $ea, eb => $eb, eg => $eg);
my %tenant = (ea => 'acme', eb => 'beta', eg => 'acme');
for my $n (sort keys %ep)
{
	like(stored($node, $ep{$n}), qr/^enc:v1:$id1:[A-Za-z0-9+\/]+={0,2}$/, "$n is stored encrypted under key $id1");
}
delivers_signed($node, $tenant{$_}, $ep{$_}, $_, $plaintext{$_}, "$_ under key $id1") for sort keys %ep;

# Every form a secret could take in a file: whole, and its base64 alone.
sub leaks
{
	my ($text) = @_;
	my @hits;
	for my $n (sort keys %plaintext)
	{
		(my $b64 = $plaintext{$n}) =~ s/^whsec_//;
		push @hits, $n if index($text, $b64) >= 0;
	}
	return join(',', @hits);
}
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '--no-sync', '-f', $dump, '-d', 'postgres' ], 'pg_dump runs');
is(leaks(slurp_file($dump)), '', 'pg_dump: no secret in plain text');
# The table's rows as a data-only dump or COPY would carry them (pg_dump leaves an
# extension's tables out unless they are marked for dumping).
my $copy = $node->safe_psql('postgres', 'COPY integration.webhook_endpoints TO STDOUT');
is(leaks($copy), '', "the table's rows: no secret in plain text");
is(scalar(() = $copy =~ /\tenc:v1:$id1:/g), 3, "the table's rows: three encrypted secrets");
$node->safe_psql('postgres', 'CHECKPOINT');
my $relfile = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('integration.webhook_endpoints')");
my $heap = slurp_file($relfile);
ok(index($heap, "enc:v1:$id1:") >= 0, "the table's data file holds the encrypted values");
is(leaks($heap), '', "the table's data file: no secret in plain text");
my $wal = join('', map { slurp_file($_) } glob($node->data_dir . '/pg_wal/0*'));
is(leaks($wal), '', 'the WAL: no secret in plain text');

########################################################################
# 4. Rotation: a new key first in the file, restart, reencrypt_secrets(), the old
#    key removed, restart.
########################################################################

my $k2 = random_key();
my $id2 = key_id($k2);
write_key_file(key_file_path($node), $k2, $k1);
$node->restart;
is($node->safe_psql('postgres', 'SELECT key_id, encrypts FROM integration.encryption_keys()'),
	"$id2|t\n$id1|f", 'encryption_keys(): the new key encrypts, the old one still decrypts');
ok($node->poll_query_until('postgres',
		"SELECT encryption_key_id = '$id2' FROM integration.worker_status() WHERE role = 'delivery'"),
	'worker_status() names the new key');
delivers_signed($node, 'acme', $ea, 'ea', $secret{a}, 'old key still in the file');
is($node->safe_psql('postgres',
		'SELECT integration.secret_key_id(secret), count(*) FROM integration.webhook_endpoints GROUP BY 1'),
	"$id1|3", 'all three still under the old key');
# A concurrent update of one endpoint's secret holds its row: reencrypt_secrets()
# waits for it, and then counts only what still needed the new key.
my $updater = $node->background_psql('postgres');
$updater->query_safe('BEGIN');
$updater->query_safe(qq{SET LOCAL integration.tenant_id = 'acme'});
$updater->query_safe(qq{SELECT integration.update_webhook(id => $ea, secret => '$secret{c}')});
my $reenc = $node->background_psql('postgres');
$reenc->query_until(qr/started/, "\\echo started\nSELECT 'changed=' || integration.reencrypt_secrets();\n");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%reencrypt_secrets()%' AND wait_event_type = 'Lock'"),
	'reencrypt_secrets() waits for the row being updated');
$updater->query_safe('COMMIT');
$updater->quit;
like($reenc->query_until(qr/changed=\d+/, ''), qr/changed=2/,
	'reencrypt_secrets() returns 2: the updated secret was under the new key already');
$reenc->quit;
$plaintext{ea} = $secret{c};
is($node->safe_psql('postgres', 'SELECT integration.reencrypt_secrets()'), '0', 'a second run changes nothing');
is($node->safe_psql('postgres',
		'SELECT integration.secret_key_id(secret), count(*) FROM integration.webhook_endpoints GROUP BY 1'),
	"$id2|3", 'all three under the new key');
write_key_file(key_file_path($node), $k2);
$node->restart;
is($node->safe_psql('postgres', 'SELECT key_id FROM integration.encryption_keys()'), $id2,
	'the old key is gone');
delivers_signed($node, $tenant{$_}, $ep{$_}, $_, $plaintext{$_}, "$_ after the rotation") for sort keys %ep;

########################################################################
# 5. A secret that does not decrypt fails its own deliveries, with error class
#    secret_unavailable, and sends nothing; the worker and everything else go on.
########################################################################

my $k3 = random_key();
my $id3 = key_id($k3);
write_key_file(key_file_path($node), $k3);
$node->restart;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery'"),
	'the worker runs under a key file without the key in use');
my $wpid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
my $before = scalar(grep { $_->{path_only} eq '/enc/ea' } read_log($recv));
# Dispatches one event to an endpoint and waits for $n failed attempts; returns the
# delivery and what its attempts say ("class: error", one line per distinct one).
sub fails_attempts
{
	my ($tenant, $ep, $n, $what) = @_;
	my $d = tenant_psql($node,
		"SELECT integration.dispatch_webhook(id => $ep, event => 'test.ping', payload => '{}')", $tenant);
	ok($node->poll_query_until('postgres',
			"SELECT count(*) >= $n FROM integration.delivery_attempts WHERE delivery_id = $d"),
		$what);
	return ($d, $node->safe_psql('postgres',
			"SELECT DISTINCT error_class || ': ' || error FROM integration.delivery_attempts WHERE delivery_id = $d"));
}
my ($dw, $why) = fails_attempts('acme', $ea, 2, 'the delivery fails, attempt after attempt');
is($why,
	"secret_unavailable: the secret is encrypted under key $id2, which integration.encryption_key_file does not hold",
	'error class secret_unavailable, naming the missing key');
is($node->safe_psql('postgres', "SELECT status FROM integration.deliveries WHERE id = $dw"), 'pending',
	'and is retried on the schedule');
usleep(200_000);
is(scalar(grep { $_->{path_only} eq '/enc/ea' } read_log($recv)), $before, 'no request was sent');
is($node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM integration.integration_logs WHERE tenant_id = 'acme' AND context->>'error_class' = 'secret_unavailable'"),
	't', "the tenant's log shows it");
is(tenant_psql($node, "SELECT secret FROM integration.show_webhook(id => $ea)", 'acme'), '(unavailable)',
	'show_webhook() says the secret is unavailable');
my ($enew) = register($node, 'acme', 'enew', $secret{a});
delivers_signed($node, 'acme', $enew, 'enew', $secret{a}, 'a new endpoint meanwhile');
is($node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'"), $wpid, 'the same worker runs on');

# A ciphertext copied into another tenant's row (triggers skipped) does not decrypt.
$node->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	UPDATE integration.webhook_endpoints SET secret = (SELECT secret FROM integration.webhook_endpoints WHERE id = $enew)
	 WHERE tenant_id = 'beta' AND id = $eb});
(undef, $why) = fails_attempts('beta', $eb, 1, "another tenant's ciphertext: the delivery fails");
is($why,
	"secret_unavailable: the secret encrypted under key $id3 does not decrypt for this row: it was altered, or copied from another row",
	'it is bound to its tenant and endpoint');

# The key put back: the delivery waiting for it goes out, signed right.
write_key_file(key_file_path($node), $k3, $k2);
$node->restart;
ok($node->poll_query_until('postgres', "SELECT status = 'delivered' FROM integration.deliveries WHERE id = $dw"),
	'with the key back, the waiting delivery is delivered');
my $msg = $node->safe_psql('postgres', "SELECT message_id FROM integration.webhook_deliveries WHERE id = $dw");
my ($req) = wait_for_requests($recv, 1, 10, sub { $_[0]{headers}{'webhook-id'} eq $msg });
ok($req && verify_signature($secret{c}, $req->{headers}, $req->{body}), 'signed with the original secret');

########################################################################
# 6. Custom header values: stored encrypted like the secret (nothing of them in the
#    dump, the table's rows, its data file or the WAL), sent as registered, re-encrypted
#    by reencrypt_secrets(), and failing the endpoint's deliveries when one does not
#    decrypt.
########################################################################

my %header = ('Authorization' => 'Bearer hdr-7c1e5a9b-token', 'X-Api-Key' => 'apikey-3d8f0b62e4');
my $hjson = '{"Authorization": "' . $header{Authorization} . '", "X-Api-Key": "' . $header{'X-Api-Key'} . '"}';
my $hurl = receiver_url($recv, '/enc/eh');
my ($eh, $shown) = split /\|/, tenant_psql($node, qq{
	SELECT id, headers FROM integration.register_webhook(name => 'eh', url => '$hurl',
		events => '["*"]', secret => '$secret{a}', headers => '$hjson')}, 'acme');
# (jsonb orders the keys: shorter first.)
is($shown, '{"X-Api-Key": "' . $header{'X-Api-Key'} . '", "Authorization": "' . $header{Authorization} . '"}',
	'register_webhook() shows the header values as given');
is(tenant_psql($node, "SELECT headers FROM integration.show_webhook(id => $eh)", 'acme'),
	'{"X-Api-Key": "********62e4", "Authorization": "********oken"}', 'show_webhook() masks each value');

# Every value of %header, found in $text.
sub header_leaks
{
	my ($text) = @_;
	return join(',', grep { index($text, $header{$_}) >= 0 } sort keys %header);
}
sub header_keys
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT coalesce(integration.secret_key_id(v), 'plain'), ',')"
		  . " FROM integration.webhook_endpoints, jsonb_each_text(headers) AS e(k, v) WHERE id = $eh");
}
is(header_keys(), $id3, "the header values are stored encrypted under key $id3");
$node->command_ok([ 'pg_dump', '--no-sync', '-f', $dump, '-d', 'postgres' ], 'pg_dump runs');
is(header_leaks(slurp_file($dump)), '', 'pg_dump: no header value in plain text');
is(header_leaks($node->safe_psql('postgres', 'COPY integration.webhook_endpoints TO STDOUT')), '',
	"the table's rows: no header value in plain text");
$node->safe_psql('postgres', 'CHECKPOINT');
is(header_leaks(slurp_file($relfile)), '', "the table's data file: no header value in plain text");
is(header_leaks(join('', map { slurp_file($_) } glob($node->data_dir . '/pg_wal/0*'))), '',
	'the WAL: no header value in plain text');

# Dispatches one event to eh and returns the request the receiver got.
sub eh_request
{
	my ($what) = @_;
	my $d = tenant_psql($node,
		"SELECT integration.dispatch_webhook(id => $eh, event => 'test.ping', payload => '{}')", 'acme');
	ok($node->poll_query_until('postgres',
			"SELECT status = 'delivered' FROM integration.deliveries WHERE id = $d"),
		"$what: delivered");
	my $m = $node->safe_psql('postgres', "SELECT message_id FROM integration.webhook_deliveries WHERE id = $d");
	my ($r) = wait_for_requests($recv, 1, 10,
		sub { $_[0]{path_only} eq '/enc/eh' && $_[0]{headers}{'webhook-id'} eq $m });
	return $r;
}
$req = eh_request('with custom headers');
is($req && $req->{headers}{authorization}, $header{Authorization}, 'the Authorization value on the wire is the one registered');
is($req && $req->{headers}{'x-api-key'}, $header{'X-Api-Key'}, 'and so is the X-Api-Key value');

# Rotation: the new key first, reencrypt_secrets(), the old ones removed.  The copy in
# beta's row above is set back to a secret of its own first: it would not re-encrypt.
$node->safe_psql('postgres', "UPDATE integration.webhook_endpoints SET secret = '$secret{b}' WHERE tenant_id = 'beta' AND id = $eb");
my $k4 = random_key();
my $id4 = key_id($k4);
write_key_file(key_file_path($node), $k4, $k3, $k2);
$node->restart;
ok($node->safe_psql('postgres', 'SELECT integration.reencrypt_secrets()') > 0, 'reencrypt_secrets() runs');
is(header_keys(), $id4, "the header values are under the new key $id4");
write_key_file(key_file_path($node), $k4);
$node->restart;
$req = eh_request('after the rotation');
is($req && $req->{headers}{authorization}, $header{Authorization}, 'after the rotation: the value on the wire is the one registered');

# A header value that does not decrypt (copied under another name, triggers skipped)
# fails the endpoint's deliveries, and sends nothing.
$before = scalar(grep { $_->{path_only} eq '/enc/eh' } read_log($recv));
$node->safe_psql('postgres', qq{
	SET session_replication_role = replica;
	UPDATE integration.webhook_endpoints
	   SET headers = jsonb_build_object('X-Moved', headers->'Authorization') WHERE id = $eh});
(undef, $why) = fails_attempts('acme', $eh, 1, 'a header value that does not decrypt: the delivery fails');
is($why,
	"secret_unavailable: custom header \"X-Moved\": the secret encrypted under key $id4 does not decrypt for this row: it was altered, or copied from another row",
	'error class secret_unavailable, naming the header');
usleep(200_000);
is(scalar(grep { $_->{path_only} eq '/enc/eh' } read_log($recv)), $before, 'no request was sent');
is(tenant_psql($node, "SELECT headers FROM integration.show_webhook(id => $eh)", 'acme'),
	'{"X-Moved": "(unavailable)"}', 'show_webhook() says the value is unavailable');

stop_receiver($recv);
$node->stop;
done_testing();
