=pod

=head1 NAME

PlatformServer - start the loopback platform servers (test/platforms) from TAP tests

=head1 SYNOPSIS

  use PlatformServer;

  my $shop = PlatformServer->start('shopify');
  $shop->seed('orders', count => 1000, per_second => 100);
  $shop->fault('429', after => 2, match => { path => '/admin/api/' }, retry_after => '1.0');
  my $base = $shop->url;                       # http://127.0.0.1:PORT
  ...                                          # point a connector at $base
  my @gets = $shop->requests(method => 'GET', path => '/admin/api/');
  my $r = $shop->http('GET', '/admin/api/2025-01/orders.json?limit=5',
                      headers => { 'X-Shopify-Access-Token' => $shop->credential('access_token') });
  $shop->stop;

=head1 DESCRIPTION

Each server is C<node test/platforms/server.mjs --platform NAME> on 127.0.0.1, run as
the user running the test (under test/run, the cluster's user), with its state
directory (request log requests.jsonl, webhooks.jsonl, server.log) in a fresh
temporary directory.  The servers are found in $ENV{INTEGRATION_PLATFORMS} (test/run
stages test/platforms and sets it), else next to this module in ../platforms; node in
$ENV{NODE}, else on PATH.  Servers still running when the script exits are stopped by
an END block.  docs/tests.md describes what each platform implements.

Strings are bytes, as in IntegrationTest.pm: what the servers send as UTF-8 arrives here
one character per byte, and what a test passes is sent as its bytes.

=cut

package PlatformServer;

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IntegrationTest ();
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

my $json = JSON::PP->new->canonical;
my $owner_pid = $$;
my @servers;

# The defaults of each platform module (DEFAULTS in test/platforms/<name>.mjs).
my %DEFAULT_CREDENTIALS = (
	shopify => { access_token => 'shpat_loopback_token', app_secret => 'shopify_app_secret' },
	woocommerce => {
		consumer_key => 'ck_loopback_key',
		consumer_secret => 'cs_loopback_secret',
		webhook_secret => 'woo_webhook_secret'
	},
	stripe => { secret_key => 'sk_test_loopback', webhook_secret => 'whsec_loopback' },
	hubspot => { access_token => 'pat-na1-loopback-token', client_secret => 'hubspot_client_secret' },
	odoo => { db => 'odoo', login => 'admin', api_key => 'odoo_loopback_api_key', uid => 2 },
	helpdesk => { api_key => 'hd_loopback_key', webhook_secret => 'hd_webhook_secret' },
);

=pod

=head2 Methods

=over

=item PlatformServer->start($platform, %opts)

Starts the server and waits (10 s at most) for its port.  Options: config (a hash
merged over the platform's defaults: credentials, limits, webhook_subscriptions, ...),
max_seconds (default 900: the server exits by itself after that, whatever happens to
the test).  Dies when the server does not start.

=cut

sub platforms_dir
{
	return $ENV{INTEGRATION_PLATFORMS}
	  // File::Spec->catdir(dirname(File::Spec->rel2abs(__FILE__)), '..', 'platforms');
}

sub start
{
	my ($class, $platform, %opts) = @_;
	my $dir = platforms_dir();
	my $script = "$dir/server.mjs";
	die "platform servers not found at $script (set INTEGRATION_PLATFORMS)" unless -f $script;
	my $node = $ENV{NODE} // 'node';

	my $state = PostgreSQL::Test::Utils::tempdir("platform_$platform");
	my @cmd = ($node, $script, '--platform', $platform, '--port', '0',
		'--state-dir', $state, '--max-seconds', $opts{max_seconds} // 900);
	push @cmd, '--config', $json->encode($opts{config}) if $opts{config};

	my $pid = fork();
	die "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>', "$state/stdout");
		open(STDERR, '>', "$state/stderr");
		exec(@cmd) or POSIX::_exit(127);
	}

	my $port;
	my $deadline = time() + 10;
	while (time() < $deadline)
	{
		if (open(my $fh, '<', "$state/stdout"))
		{
			my $line = <$fh>;
			close $fh;
			if (defined $line && $line =~ /^(\d+)\n/)
			{
				$port = $1;
				last;
			}
		}
		if (waitpid($pid, POSIX::WNOHANG()) == $pid)
		{
			my $err = slurp("$state/stderr");
			die "platform server $platform exited at start: $err";
		}
		usleep(20_000);
	}
	die "platform server $platform did not print its port within 10 s" unless $port;

	my $self = bless {
		platform => $platform,
		pid => $pid,
		port => $port,
		dir => $state,
		config => { %{ $opts{config} // {} } },
		start_config => { %{ $opts{config} // {} } },
		http => HTTP::Tiny->new(timeout => 30, keep_alive => 0),
	}, $class;
	push @servers, $self;
	return $self;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text // '';
}

=pod

=item $srv->port, $srv->url([$path]), $srv->dir, $srv->platform

The port, http://127.0.0.1:PORT followed by $path, the state directory, the name.

=item $srv->credential($name)

A credential as the server expects it: the configured one, else the platform's
default (shopify: access_token, app_secret; woocommerce: consumer_key,
consumer_secret, webhook_secret; stripe: secret_key, webhook_secret; hubspot:
access_token, client_secret; odoo: db, login, api_key, uid; helpdesk: api_key,
webhook_secret).

=cut

sub port { return $_[0]{port}; }
sub dir { return $_[0]{dir}; }
sub platform { return $_[0]{platform}; }

sub url
{
	my ($self, $path) = @_;
	return "http://127.0.0.1:$self->{port}" . ($path // '');
}

sub credential
{
	my ($self, $name) = @_;
	return $self->{config}{$name} // $DEFAULT_CREDENTIALS{ $self->{platform} }{$name}
	  // die "no credential $name for $self->{platform}";
}

=pod

=item $srv->control(%op)

POSTs {op => ...} to /__control and returns the decoded answer; dies with the
server's message when it refuses.

=item $srv->seed($resource, %opts), $srv->update($resource, $id, \%fields [, $updated_at]),
$srv->get($resource, $id), $srv->list($resource)

Data: seed count records (options start, per_second, spread_ms, fields) or the given
records (option records), change one (its updated_at is now, or $updated_at),
read one or all as the platform renders them.  seed returns the control answer
({count, ids, total}); get the record or undef; list an array of records.

=item $srv->fault($kind, %opts)

Injects a fault for the next count (default 1) requests that match (option match:
{method, path (prefix, or "re:" and a regex), body_contains}), after skipping after
(default 0) of them.  Kinds: 429, 500, 502, 503 (the platform's error shapes; option
retry_after), status (options status, body, headers), hang, reset (connection reset
before the request is handled), hang_after, reset_after (handled, then the answer is
lost), delay (option ms), and odoo's serialization_failure.

=item $srv->config(%set), $srv->clock(%how), $srv->reset, $srv->state

Merge settings into the platform's configuration (returns it); move the server's
clock (advance_s => S, set => ISO (frozen), real => 1); forget all data, log, faults,
idempotency and rate-limit state; a summary.

=cut

sub control
{
	my ($self, %op) = @_;
	my $res = $self->{http}->post($self->url('/__control'), {
		headers => { 'Content-Type' => 'application/json' },
		content => $json->encode(\%op) });
	my $body = eval { $json->decode($res->{content}) };
	die "control $op{op} on $self->{platform}: HTTP $res->{status} $res->{content}"
	  unless $res->{status} == 200 && $body;
	return $body;
}

sub seed
{
	my ($self, $resource, %opts) = @_;
	return $self->control(op => 'seed', resource => $resource, %opts);
}

sub update
{
	my ($self, $resource, $id, $fields, $updated_at) = @_;
	return $self->control(op => 'update', resource => $resource, id => $id,
		fields => $fields // {}, (defined $updated_at ? (updated_at => $updated_at) : ()))->{record};
}

sub get
{
	my ($self, $resource, $id, %more) = @_;
	return $self->control(op => 'get', resource => $resource, id => $id, %more)->{record};
}

sub list
{
	my ($self, $resource) = @_;
	return @{ $self->control(op => 'list', resource => $resource)->{records} };
}

sub fault
{
	my ($self, $kind, %opts) = @_;
	return $self->control(op => 'fault', kind => "$kind", %opts)->{fault};
}

sub config
{
	my ($self, %set) = @_;
	$self->{config}{$_} = $set{$_} for keys %set;
	return $self->control(op => 'config', set => \%set)->{config};
}

sub clock
{
	my ($self, %how) = @_;
	return $self->control(op => 'clock', %how)->{now};
}

sub reset
{
	my ($self) = @_;
	# The server goes back to the configuration it started with, and so do credentials.
	$self->{config} = { %{ $self->{start_config} } };
	return $self->control(op => 'reset');
}

sub state
{
	my ($self) = @_;
	return $self->control(op => 'state');
}

=pod

=item $srv->requests(%filter)

The logged requests, oldest first: hashes with seq, t, method, path, query (the raw
query string), params (name => value, or an array for a repeated name), headers
(names lower-case), body, status (or 'reset' / 'hang'), fault, response_headers.
Filters: since (a seq), method, path (prefix).

=item $srv->last_seq

The seq of the latest request the server has received (0 before any): pass it as
since to requests() or wait_for_requests() to see only what comes after.

=item $srv->clear_log

Empties the log (seq numbers go on).

=item $srv->wait_for_requests($n, $timeout_s, %filter)

Polls until at least $n logged requests match or the time is up; returns them.

=cut

sub requests
{
	my ($self, %filter) = @_;
	return @{ $self->control(op => 'log', %filter)->{requests} };
}

sub last_seq
{
	my ($self) = @_;
	return $self->control(op => 'log', since => 2**53)->{last_seq};
}

sub clear_log
{
	my ($self) = @_;
	return $self->control(op => 'clear_log');
}

sub wait_for_requests
{
	my ($self, $n, $timeout, %filter) = @_;
	my $deadline = time() + ($timeout // 10);
	my @reqs;
	while (1)
	{
		@reqs = $self->requests(%filter);
		return @reqs if @reqs >= $n || time() >= $deadline;
		usleep(50_000);
	}
}

=pod

=item $srv->webhook(%spec)

Has the server build webhooks (events => [...], each in the platform's terms: shopify
{topic, id, update}, woocommerce {topic, id, update} or {ping => 1}, stripe
{event_id} or {type, object}, hubspot {subscriptionType, objectId, ...}, helpdesk
{event, id}) and POST them to url in order (indexes into events, repeated for
duplicates, permuted for out-of-order deliveries).  Without url (or with send => 0) they are only returned.
Returns the deliveries: {index, attempt, method, headers, body} and, when sent,
{status, response} or {error}.

=cut

sub webhook
{
	my ($self, %spec) = @_;
	return @{ $self->control(op => 'webhook', %spec)->{deliveries} };
}

=pod

=item $srv->http($method, $path, %opts)

A plain HTTP request to the server (options headers, body, timeout); returns
HTTP::Tiny's answer ({status, reason, headers, content}; status 599 when the
connection failed, was reset, or timed out).

=cut

sub http
{
	my ($self, $method, $path, %opts) = @_;
	my $http = HTTP::Tiny->new(timeout => $opts{timeout} // 30, keep_alive => 0);
	return $http->request($method, $self->url($path), {
		headers => $opts{headers} // {},
		(defined $opts{body} ? (content => $opts{body}) : ()) });
}

=pod

=item $srv->stop

SIGTERM, then SIGKILL after 5 s; waits for the process.

=back

=cut

sub stop
{
	my ($self) = @_;
	return IntegrationTest::stop_child($self);
}

END
{
	local $?;
	if ($$ == $owner_pid)
	{
		$_->stop for grep { $_->{pid} } @servers;
	}
}

1;
