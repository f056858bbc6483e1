=pod

=head1 NAME

IntegrationTest - helpers for the TAP tests of the integration extension's delivery worker

=head1 SYNOPSIS

  use IntegrationTest;

  my $node = new_integration_node('main', "integration.retry_schedule = '100ms, 100ms'");
  my $recv = start_receiver();
  my $url  = receiver_url($recv, '/hook', status => 200);
  ...
  my @reqs = wait_for_requests($recv, 3, 10);
  ok(verify_signature($secret, $reqs[0]{headers}, $reqs[0]{body}));
  stop_receiver($recv);

=head1 DESCRIPTION

Starts the controllable receiver (test/receiver/receiver, path in
$ENV{INTEGRATION_RECEIVER}) on 127.0.0.1, reads its JSON-lines request log, and
checks Standard Webhooks signatures independently of the extension's C code.
Receivers still running when the test script exits are killed by an END block, which
also fails the script when a server process of one of its nodes died of a signal
other than SIGKILL or failed an assertion (a crash the postmaster recovered from
can hide behind checks that pass).

=cut

package IntegrationTest;

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use Exporter 'import';
use Fcntl qw(:flock);
use File::Path ();
use File::Spec;
use IO::Socket::IP;
use IPC::Run ();
use JSON::PP;
use MIME::Base64 qw(decode_base64 encode_base64);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  new_integration_node init_node integration_conf tenant_psql create_app_role key_file_path random_key
  write_key_file
  start_receiver stop_receiver receiver_url read_log read_log_settled wait_for_requests
  receiver_connections receiver_plan
  verify_signature expected_signature poll_across_crash
  register_for fresh_delivery_seconds
  new_statements_node statement_totals publish_events
);

# Every wait in these tests is bounded; poll_query_until's default of 180 s would
# make a hung test look like a slow one.
$PostgreSQL::Test::Utils::timeout_default = 30
  unless defined $ENV{PG_TEST_TIMEOUT_DEFAULT};

my $owner_pid = $$;
my @receivers;
my @nodes;

=pod

=over

=item poll_across_crash($node, $dbname, $query)

poll_query_until() for the moments after a server process was killed, while the
postmaster restarts everything: poll_query_until() writes its query to psql's
standard input, and a psql that could not connect has exited before reading it, so
IPC::Run dies of a broken pipe (exit status 32) instead of trying again.  Here the
query goes as an argument (psql -c), and a failed connection is one more try.  True
once the query returns 't' within the default timeout.

=cut

sub poll_across_crash
{
	my ($node, $dbname, $query) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr($dbname), '-c', $query ],
			'<', \undef, '>', \$out, '2>', \$err);
		chomp $out;
		return 1 if $out eq 't';
		usleep(100_000);
	}
	return 0;
}

=pod

=item new_integration_node($name, @conf_lines)

Initialises and starts a cluster that preloads the extension, appends the given
postgresql.conf lines, and creates the extension in database postgres.  Endpoint
secrets are encrypted under a fresh key in key_file_path($node); a conf line
C<integration.encryption_key_file = ''> turns that off.  Webhooks may reach 127.0.0.1,
where the receivers listen (integration.allowed_networks); a later line of
@conf_lines overrides it.  Returns the PostgreSQL::Test::Cluster.

=cut

sub new_integration_node
{
	my ($name, @conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	init_node($node);
	write_key_file(key_file_path($node), random_key());
	$node->append_conf('postgresql.conf', integration_conf(key_file_path($node), @conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION integration');
	push @nodes, $node;
	return $node;
}

=pod

=item new_statements_node($name, @conf_lines)

new_integration_node() with pg_stat_statements preloaded, counting nested statements
too (track = all: the worker's SPI statements and those of the triggers they fire),
created in database postgres; returns once the delivery worker runs.

=cut

sub new_statements_node
{
	my ($name, @conf) = @_;
	my $node = new_integration_node($name,
		"shared_preload_libraries = 'integration, pg_stat_statements'",
		'pg_stat_statements.track = all', @conf);

	$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM integration.worker_status() WHERE role = 'delivery' AND pid IS NOT NULL")
	  or die "the delivery worker of $name did not start";
	return $node;
}

=pod

=item publish_events($node, $tenant, $event, $n)

Publishes $n events named $event for $tenant in one transaction, with payloads
C<{"n": 1}> to C<{"n": $n}>; returns how many.

=cut

sub publish_events
{
	my ($node, $tenant, $event, $n) = @_;
	return tenant_psql($node,
		"SELECT count(integration.publish_event('$event', jsonb_build_object('n', g)))"
		  . " FROM generate_series(1, $n) g", $tenant);
}

=pod

=item statement_totals($node, $fragment)

The calls, rows and pages (shared buffers hit or read) of the statements whose text,
with runs of white space made one space, contains $fragment, summed over
pg_stat_statements: a list of three numbers, each 0 when none ran.

=cut

sub statement_totals
{
	my ($node, $fragment) = @_;
	$fragment =~ s/'/''/g;
	return split /\|/, $node->safe_psql('postgres',
		'SELECT coalesce(sum(calls), 0) || \'|\' || coalesce(sum(rows), 0) || \'|\''
		  . ' || coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements'
		  . " WHERE strpos(regexp_replace(query, '\\s+', ' ', 'g'), '$fragment') > 0");
}

=pod

=item init_node($node)

$node->init, with initdb run once per test run: when $ENV{INTEGRATION_INITDB_TEMPLATE}
names a directory (test/run sets it), the first node of the run makes the cluster
there with the very initdb command PostgreSQL::Test::Cluster runs, and every node
copies it instead of running initdb again (about 1.5 s each on 2 cores, some 45 nodes
a run; PostgreSQL 17's Cluster.pm does the same with INITDB_TEMPLATE).  The rest of
init (pg_regress --config-auth, the settings it appends) runs as before.  Without the
variable, or for an init with extra initdb options, it is plain $node->init.

=cut

sub init_node
{
	my ($node, %params) = @_;
	my $template = $ENV{INTEGRATION_INITDB_TEMPLATE};
	return $node->init(%params) if !$template || $params{extra};

	my $pgdata = $node->data_dir;
	my @initdb = ('initdb', '-D', $pgdata, '-A', 'trust', '-N');
	my $system_or_bail = \&PostgreSQL::Test::Utils::system_or_bail;
	no warnings 'redefine';
	local *PostgreSQL::Test::Utils::system_or_bail = sub {
		return $system_or_bail->(@_) unless join("\0", @_) eq join("\0", @initdb);
		# Test scripts running at once make the template once, under a lock.
		open(my $lock, '>', "$template.lock") or die "$template.lock: $!";
		flock($lock, LOCK_EX) or die "flock $template.lock: $!";
		unless (-f "$template/PG_VERSION")
		{
			File::Path::rmtree("$template.tmp");
			$system_or_bail->('initdb', '-D', "$template.tmp", '-A', 'trust', '-N');
			rename("$template.tmp", $template) or die "rename to $template: $!";
		}
		close $lock;
		return $system_or_bail->('cp', '-RPp', $template, $pgdata);
	};
	return $node->init(%params);
}

=pod

=item integration_conf($key_file, @conf_lines)

The postgresql.conf lines new_integration_node appends, with $key_file as the
encryption key file: for a cluster made otherwise (the new cluster of a pg_upgrade).

=cut

sub integration_conf
{
	my ($key_file, @conf) = @_;
	return join("\n",
		"shared_preload_libraries = 'integration'",
		'max_worker_processes = 16',
		'fsync = off',
		"log_min_messages = 'log'",
		"integration.encryption_key_file = '$key_file'",
		"integration.allowed_networks = '127.0.0.1/32'",
		@conf) . "\n";
}

=pod

=item key_file_path($node)

Where new_integration_node writes the node's key file (outside its data directory).

=item random_key()

32 random bytes as 64 hex digits.

=item write_key_file($path, @hex_keys)

Writes the keys, one per line (the first encrypts), with mode 0600.

=cut

sub key_file_path
{
	my ($node) = @_;
	# Absolute: the server resolves a relative path against its data directory.
	return File::Spec->rel2abs($node->basedir . '/integration.key');
}

sub random_key
{
	open(my $fh, '<:raw', '/dev/urandom') or die "/dev/urandom: $!";
	read($fh, my $bytes, 32) == 32 or die "short read from /dev/urandom";
	close $fh;
	return unpack('H*', $bytes);
}

sub write_key_file
{
	my ($path, @keys) = @_;
	my $umask = umask(077);
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh map { "$_\n" } @keys;
	close $fh;
	umask($umask);
	chmod(0600, $path) or die "chmod $path: $!";
	return;
}

=pod

=item tenant_psql($node, $sql [, $tenant [, $db]])

safe_psql with integration.tenant_id set (default tenant 'acme', database postgres).

=cut

sub tenant_psql
{
	my ($node, $sql, $tenant, $db) = @_;
	$tenant //= 'acme';
	$db     //= 'postgres';
	return $node->safe_psql($db, "SET integration.tenant_id = '$tenant';\n$sql");
}

=pod

=item register_for($node, $tenant, $name, $url, $events)

Registers a webhook of $tenant (events: a JSON array of patterns) and returns its id.

=cut
sub register_for
{
	my ($node, $tenant, $name, $url, $events) = @_;
	return tenant_psql($node, qq{
		SELECT id FROM integration.register_webhook(name => '$name', url => '$url',
			events => '$events')}, $tenant);
}

=pod

=item fresh_delivery_seconds($node, $tenant, $ep, $i, $timeout)

Publishes one event fresh.x with payload {"i": $i} for $tenant and returns its seconds
from commit to delivery at endpoint $ep, or undef if it is not delivered within
$timeout seconds (the fairness tests' measure of a fresh event beside a backlog).

=cut
sub fresh_delivery_seconds
{
	my ($node, $tenant, $ep, $i, $timeout) = @_;
	tenant_psql($node, "SELECT integration.publish_event('fresh.x', '{\"i\": $i}')", $tenant);
	my $sql = "SELECT extract(epoch FROM d.delivered_at - e.created_at)"
	  . " FROM integration.deliveries d JOIN integration.webhook_events e"
	  . " ON e.tenant_id = d.tenant_id AND e.id = d.event_id"
	  . " WHERE d.tenant_id = '$tenant' AND d.endpoint_id = $ep AND d.status = 'delivered'"
	  . " AND e.payload::jsonb -> 'data' ->> 'i' = '$i'";
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		my $s = $node->safe_psql('postgres', $sql);
		return $s if $s ne '';
		usleep(20_000);
	}
	return undef;
}

=pod

=item create_app_role($node, $role)

Creates $role (NOLOGIN, not a superuser) as an application's role: it may use every
table, sequence and function of schema integration, and create objects in public (its
own inbound handlers, say), in database postgres.

=cut

sub create_app_role
{
	my ($node, $role) = @_;
	$node->safe_psql('postgres', qq{
		CREATE ROLE $role NOLOGIN;
		GRANT USAGE ON SCHEMA integration TO $role;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration TO $role;
		GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration TO $role;
		GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO $role;
		GRANT CREATE ON SCHEMA public TO $role;
	});
	return;
}

=pod

=item start_receiver(%opts)

Starts a receiver on a free port of 127.0.0.1 (option host: another address,
such as 127.0.0.2 or ::1; option port: that port, e.g. a stopped receiver's, to
bring an endpoint back) and waits until it listens.  Returns {pid, host, port,
log, dir}.  Option max_seconds (default 600) bounds its life even if every
cleanup fails.

=cut

sub start_receiver
{
	my (%opts) = @_;
	my $bin = $ENV{INTEGRATION_RECEIVER}
	  or die "INTEGRATION_RECEIVER is not set: run the tests through test/run";
	die "receiver binary $bin is not executable" unless -x $bin;

	my $dir = PostgreSQL::Test::Utils::tempdir('receiver');
	my $port_file = "$dir/port";
	my $log = "$dir/requests.jsonl";

	my $pid = fork();
	die "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', "$dir/receiver.out");
		open(STDERR, '>&', \*STDOUT);
		exec($bin, '--host', $opts{host} // '127.0.0.1',
			'--port', $opts{port} // 0, '--port-file', $port_file, '--log', $log,
			'--quiet', '--max-seconds', $opts{max_seconds} // 600)
		  or POSIX::_exit(127);
	}

	my $deadline = time() + 10;
	my $port;
	while (time() < $deadline)
	{
		if (-s $port_file && open(my $fh, '<', $port_file))
		{
			my $line = <$fh>;
			close $fh;
			if (defined $line && $line =~ /^(\d+)\s*$/)
			{
				$port = $1;
				last;
			}
		}
		die "receiver exited at start (see $dir/receiver.out)"
		  if waitpid($pid, POSIX::WNOHANG()) == $pid;
		usleep(20_000);
	}
	die "receiver did not write its port file within 10 s" unless $port;

	my $r = {
		pid => $pid,
		host => $opts{host} // '127.0.0.1',
		port => $port,
		log => $log,
		dir => $dir,
		stats_calls => 0
	};
	push @receivers, $r;
	return $r;
}

=pod

=item receiver_url($recv, $path, %query)

http://HOST:PORT$path?k=v&... (query keys sorted, so URLs are stable), the host
in brackets when it is IPv6.

=cut

sub receiver_url
{
	my ($r, $path, %q) = @_;
	my $host = $r->{host} =~ /:/ ? "[$r->{host}]" : $r->{host};
	my $url = "http://$host:$r->{port}$path";
	my @q = map { "$_=$q{$_}" } sort keys %q;
	$url .= '?' . join('&', @q) if @q;
	return $url;
}

=pod

=item stop_receiver($recv)

SIGTERM, then SIGKILL after 5 s; waits for the process.  The receiver writes its
buffered log when it exits on SIGTERM.

=cut

sub stop_receiver
{
	my ($r) = @_;
	return stop_child($r);
}

=pod

=item IntegrationTest::stop_child($holder)

Stops the child process $holder->{pid} (when set) as stop_receiver does, and
clears it; PlatformServer stops its servers with it too.

=cut

sub stop_child
{
	my ($h) = @_;
	return unless $h->{pid};
	kill 'TERM', $h->{pid};
	my $deadline = time() + 5;
	while (time() < $deadline)
	{
		last if waitpid($h->{pid}, POSIX::WNOHANG()) != 0;
		usleep(20_000);
	}
	if (kill(0, $h->{pid}))
	{
		kill 'KILL', $h->{pid};
		waitpid($h->{pid}, 0);
	}
	$h->{pid} = undef;
	return;
}

=pod

=item read_log($recv)

The requests logged so far, oldest first: hashes with t, method, path, headers
(names lowercased by the receiver), body, body_len, conn.  A partly written last
line is left for the next call.  Each call decodes only the lines added since the
last one (JSON::PP takes about a second for the 8,000 requests some scripts make, and
they read the log often); the hashes are shared between calls, not to be changed.

Strings are decoded without JSON::PP's utf8 flag: the log holds raw UTF-8 bytes
and \u00XX for bytes that are not UTF-8, so every character of the result is one
byte of what was on the wire and body compares byte for byte with the payload.

=cut

my $json_bytes = JSON::PP->new;

sub read_log
{
	my ($r) = @_;
	$r->{logged} //= [];
	$r->{log_read} //= 0;
	open(my $fh, '<:raw', $r->{log}) or return @{ $r->{logged} };
	seek($fh, $r->{log_read}, 0) or die "seek $r->{log}: $!";
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n\z/;
		my $q = $json_bytes->decode($line);
		($q->{path_only}) = split /\?/, $q->{path}, 2;
		push @{ $r->{logged} }, $q;
		$r->{log_read} += length($line);
	}
	close $fh;
	return @{ $r->{logged} };
}

=pod

=item wait_for_requests($recv, $n, $timeout_s [, $filter])

Waits until the log holds at least $n requests (for which $filter->($req) is true
when given) or $timeout_s passes; returns those requests.

=cut

sub wait_for_requests
{
	my ($r, $n, $timeout, $filter) = @_;
	my $deadline = time() + ($timeout // 10);
	my @reqs;
	while (1)
	{
		@reqs = read_log($r);
		@reqs = grep { $filter->($_) } @reqs if $filter;
		return @reqs if @reqs >= $n || time() >= $deadline;
		usleep(20_000);
	}
}

=pod

=item receiver_connections($recv)

How many TCP connections the receiver has accepted, those of this function's own
queries of its /__stats excepted: a connection that sent no request counts too.

=cut

sub receiver_connections
{
	my ($r) = @_;
	return receiver_stat($r, 'accepted') - $r->{stats_calls};
}

=pod

=item read_log_settled($recv)

read_log($recv) once the log holds every request the receiver has taken so far (the
requests counter of its /__stats): for counting what arrived, without sleeping out
the receiver's log flush (up to 20 ms after a request).

=cut

sub read_log_settled
{
	my ($r) = @_;
	my $taken = receiver_stat($r, 'requests');
	my $deadline = time() + 10;
	my @reqs;
	while (1)
	{
		@reqs = read_log($r);
		return @reqs if @reqs >= $taken;
		die "the receiver's log holds " . scalar(@reqs) . " of its $taken requests"
		  if time() >= $deadline;
		usleep(5_000);
	}
}

# A number of the receiver's /__stats; the connection for it is counted in stats_calls.
sub receiver_stat
{
	my ($r, $name) = @_;
	my $sock = IO::Socket::IP->new(
		PeerHost => $r->{host},
		PeerPort => $r->{port},
		Timeout => 10) or die "cannot reach the receiver on $r->{host}: $!";
	$r->{stats_calls}++;
	print $sock "GET /__stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	local $/;
	my $reply = <$sock>;
	close $sock;
	my ($n) = ($reply // '') =~ /"$name":(\d+)/
	  or die "no $name in the stats of the receiver on $r->{host}: " . ($reply // '');
	return $n;
}

=pod

=item receiver_plan($recv, $path, $query)

From now on the receiver answers every request to $path as if its query string were
$query (for example 'status=500', or 'status=429&retry_after=2'), whatever the request's
own; an empty $query forgets the plan, and requests are answered by their own query
again.  So a test can make an endpoint fail, hang or answer 429, and then recover.

=cut

sub receiver_plan
{
	my ($r, $path, $query) = @_;
	my $enc = sub {
		(my $v = shift) =~ s/([^A-Za-z0-9_.~\/-])/sprintf('%%%02X', ord($1))/ge;
		return $v;
	};
	my $sock = IO::Socket::IP->new(
		PeerHost => $r->{host},
		PeerPort => $r->{port},
		Timeout => 10) or die "cannot reach the receiver on $r->{host}: $!";
	$r->{stats_calls}++;
	print $sock 'GET /__plan?path=' . $enc->($path) . '&q=' . $enc->($query)
	  . " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	local $/;
	my $reply = <$sock>;
	close $sock;
	die "the receiver refused the plan for $path: " . ($reply // '')
	  unless ($reply // '') =~ /"ok":true/;
	return;
}

=pod

=item expected_signature($secret, $msg_id, $timestamp, $body)

The Standard Webhooks signature "v1,<base64>": HMAC-SHA256 keyed with the base64
decoding of the secret after whsec_, over "$msg_id.$timestamp.$body".

=item verify_signature($secret, \%headers, $body)

True when webhook-signature (one or more space-separated v1 signatures) holds a
valid signature of body under any of the space-separated secrets, for the
headers webhook-id and webhook-timestamp.

=cut

sub expected_signature
{
	my ($secret, $id, $ts, $body) = @_;
	(my $b64 = $secret) =~ s/^whsec_//;
	my $key = decode_base64($b64);
	return 'v1,' . encode_base64(hmac_sha256("$id.$ts.$body", $key), '');
}

sub verify_signature
{
	my ($secrets, $h, $body) = @_;
	my ($id, $ts, $sigs) =
	  @{$h}{qw(webhook-id webhook-timestamp webhook-signature)};
	return 0 unless defined $id && defined $ts && defined $sigs;
	return 0 unless $ts =~ /^\d+$/;
	for my $secret (split ' ', $secrets)
	{
		my $want = expected_signature($secret, $id, $ts, $body);
		for my $sig (split ' ', $sigs)
		{
			return 1 if $sig eq $want;
		}
	}
	return 0;
}

=pod

=back

=cut

# A server process that died of a signal other than the tests' own SIGKILL, or
# failed an assertion, fails the script whatever its tests said: a crash the
# postmaster recovered from can hide behind checks that still pass.
sub crashes_in_logs
{
	my @crashes;
	for my $node (@nodes)
	{
		next unless -f $node->logfile;
		push @crashes, map { $node->name . ": $_" }
		  grep { /terminated by signal (?!9:)\d+|TRAP:/ }
		  split /\n/, slurp_file($node->logfile);
	}
	return @crashes;
}

END
{
	my $exit = $?;
	if ($$ == $owner_pid)
	{
		my @crashes = crashes_in_logs();

		{
			# waitpid() sets $?, which would become the script's exit status.
			local $?;
			for my $r (@receivers)
			{
				next unless $r->{pid};
				kill 'KILL', $r->{pid};
				waitpid($r->{pid}, 0);
			}
		}
		if (@crashes)
		{
			# Test::Builder's own handle: STDERR goes to the regress log.
			require Test::More;
			Test::More->builder->diag(
				join("\n", 'a server process crashed during the test:', @crashes));
			$exit ||= 1;
		}
	}
	$? = $exit;
}

1;
