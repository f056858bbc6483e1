# The scheduler's accounting of a sync run's chained pages (src/scheduler.c,
# src/call_job.c: begin_next(), request_ahead(), SchedulerMayHandOver()), against the
# loopback Shopify-compatible server:
#
#   1. A page whose adapter asks for a wait takes one token of its connector's rate
#      limit, not two: over ten pages that each wait 0.5 s, a connector limited to 1 a
#      second with a bucket of 30 has given exactly ten tokens.
#   1b. The token a next page took to begin in the slot of the page before goes back
#      when that transaction fails (a deferred trigger's serialization failure at
#      commit): the page is begun again a second later, ten pages take ten tokens, and
#      nothing is left in flight.
#   2. A request sent ahead for a page whose call is then never begun (the page's
#      write fails, and the run ends) holds its connector's request slot until it is
#      back: with integration.max_concurrency_per_endpoint = 1 and that request answered
#      after 3 s, the connector shows it in flight, and the next run's first request
#      waits for it.  The run's error says the page could not be stored, not that the
#      response adapter failed.
#   3. Likewise when the transaction that recorded the page fails (a serialization
#      failure) with the request on its way: the page is recorded again 1 s later, and
#      the next page's request waits for the first one's answer instead of going twice
#      at once.
#   4. A limit lowered while a run chains its pages holds at once: three streams of one
#      connector at integration.max_concurrency_per_endpoint 3, then a reload to 1: no
#      two requests at once after it; a connector without a rate limit given one of 2 a
#      second mid-run: its remaining pages keep to it.

# test/run: alone (its checks count rate-limit tokens against elapsed time).

use strict;
use warnings;

use IntegrationTest;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use Time::Local qw(timegm);

my $node = new_integration_node('sched_accounting', "integration.request_timeout = '20s'");
my $shop = PlatformServer->start('shopify');
my $api = '/admin/api/2025-01/';
my $orders_path = "${api}orders.json";

sub sql { return tenant_psql($node, "SET ROLE acct_app;\n$_[0]", 'acct-tenant'); }

# The request log's times (ISO 8601, UTC) in seconds.
sub epoch
{
	my ($y, $mo, $d, $h, $mi, $sec) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):([\d.]+)Z$/ or die "bad time $_[0]";
	return timegm(0, $mi, $h, $d, $mo - 1, $y) + $sec;
}

# Polls a superuser's query until it returns $want, for at most $secs; returns the last answer.
sub poll_for
{
	my ($query, $want, $secs) = @_;
	my $deadline = time() + $secs;
	my $got;
	while (1)
	{
		$got = $node->safe_psql('postgres', $query);
		return $got if $got eq $want || time() >= $deadline;
		usleep(50_000);
	}
}

sub set_per_endpoint
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET integration.max_concurrency_per_endpoint = $_[0]; SELECT pg_reload_conf()");
	return;
}

create_app_role($node, 'acct_app');
my $token = $shop->credential('access_token');
for my $resource ('orders', 'products', 'customers')
{
	is($shop->seed($resource, count => 2500, per_second => 100, start => '2025-01-01T00:00:00Z')->{total},
		2500, "the store has 2,500 $resource: ten pages of 250");
}

sub connector
{
	my ($name, $settings) = @_;
	return sql("SELECT id FROM integration.create_connector('shopify', '$name', '" . $shop->url . "',
		'{\"access_token\": \"$token\"}', '$settings')");
}

# Waits for the connector's streams to have ended $runs runs each; checks every order.
sub run_ends
{
	my ($conn, $name, $streams, $runs) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) FILTER (WHERE status = 'idle' AND runs = $runs) = $streams
			   FROM integration.sync_streams WHERE connector_id = $conn"),
		"$name: the run ends");
	is($node->safe_psql('postgres', "SELECT count(*) || '|' || count(DISTINCT (stream, external_id))
			FROM integration.external_records WHERE connector_id = $conn"),
		2500 * $streams . '|' . 2500 * $streams, "$name: each record stored once");
	return;
}

########################################################################
# 1. A page with a wait takes one token.
########################################################################

# A bucket of 4 calls: each page leaves 3 of room, and the kind asks for a wait of 0.5 s.
$shop->config(bucket_size => 4);
$shop->clear_log;
my $waits = connector('waits',
	'{"sync_interval": 0, "sync_streams": ["orders"], "rate_limit": 1, "rate_limit_burst": 30}');
sql("SELECT integration.sync_now($waits, 'orders')");
run_ends($waits, 'waits', 1, 1);
my ($now, $tokens) = split /\|/, $node->safe_psql('postgres',
	"SELECT extract(epoch FROM clock_timestamp()) || '|' || tokens
	   FROM integration._target_health('connector') WHERE target_id = $waits");
my @reqs = $shop->requests(path => $orders_path);
is(scalar @reqs, 10, 'waits: ten requests');
is(scalar(grep { ($_->{response_headers}{'X-Shopify-Shop-Api-Call-Limit'} // '') eq '1/4' } @reqs[0 .. 8]),
	9, 'waits: each page but the last left 3 calls of room (a wait of 0.5 s)');
# The bucket held 30 and grew by 1 a second since the first request took its token; it
# never filled up again (10 tokens taken in about 6 s).
my $taken = 30 + ($now - epoch($reqs[0]{t})) - $tokens;
cmp_ok(abs($taken - 10), '<', 0.5, 'waits: ten requests took ten tokens')
  or diag("tokens taken: $taken");
$shop->config(bucket_size => 100000);

########################################################################
# 1b. A token taken for a page begun in the slot of the page before goes back when
#     that transaction fails.
########################################################################

# The seventh page's write takes 0.6 s more, so that the eighth page, queued to wait
# 0.5 s from when the transaction began, is due by the time it could be begun in the
# seventh one's slot (a page with a wait has no request sent ahead).  The first
# transaction that begins it fails at commit (a serialization failure in a deferred
# trigger), and is done again a second later.  A page every 0.5 s at 1 a second keeps
# the bucket below its size from the first page on, even over the 2 s or so of those
# two transactions (a fuller bucket would hide a lost token: it would not grow past
# its size), so ten pages must have taken ten tokens, not eleven.
$shop->config(bucket_size => 4);
$shop->clear_log;
my $log_at = -s $node->logfile;
my $retried = connector('retried',
	'{"sync_interval": 0, "sync_streams": ["orders"], "rate_limit": 1, "rate_limit_burst": 60}');
$node->safe_psql('postgres', qq{
	CREATE TABLE public.slow_xact (xid xid8 NOT NULL);
	CREATE FUNCTION public.slow_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS \$\$
	BEGIN
		IF (SELECT run_pages FROM integration.sync_streams WHERE connector_id = $retried) = 6
		   AND NOT EXISTS (SELECT FROM public.slow_xact WHERE xid = pg_current_xact_id()) THEN
			PERFORM pg_sleep(0.6);
			INSERT INTO public.slow_xact VALUES (pg_current_xact_id());
		END IF;
		RETURN NULL;
	END \$\$;
	CREATE TRIGGER slow_write AFTER INSERT ON integration.external_records
		FOR EACH STATEMENT EXECUTE FUNCTION public.slow_write();
	CREATE SEQUENCE public.commit_count;
	CREATE FUNCTION public.fail_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS \$\$
	BEGIN
		IF EXISTS (SELECT FROM public.slow_xact WHERE xid = pg_current_xact_id())
		   AND nextval('public.commit_count') = 1 THEN
			RAISE EXCEPTION 'the next page cannot be begun' USING ERRCODE = 'serialization_failure';
		END IF;
		RETURN NULL;
	END \$\$;
	CREATE CONSTRAINT TRIGGER fail_commit AFTER UPDATE ON integration.connector_calls
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'sending')
		EXECUTE FUNCTION public.fail_commit();
});
sql("SELECT integration.sync_now($retried, 'orders')");
run_ends($retried, 'retried', 1, 1);
($now, $tokens) = split /\|/, $node->safe_psql('postgres',
	"SELECT extract(epoch FROM clock_timestamp()) || '|' || tokens
	   FROM integration._target_health('connector') WHERE target_id = $retried");
like(slurp_file($node->logfile, $log_at), qr/making connector calls failed: the next page cannot be begun/,
	'retried: the transaction that began the eighth page failed once');
is($node->safe_psql('postgres', "SELECT concat_ws('|', pages, errors) FROM integration.sync_streams
		WHERE connector_id = $retried"), '10|0', 'retried: ten pages, no error');
@reqs = $shop->requests(path => $orders_path);
is(scalar @reqs, 10, 'retried: ten requests');
$taken = 60 + ($now - epoch($reqs[0]{t})) - $tokens;
cmp_ok(abs($taken - 10), '<', 0.5, 'retried: ten requests took ten tokens')
  or diag("tokens taken: $taken");
is(poll_for("SELECT in_flight FROM integration._target_health('connector') WHERE target_id = $retried",
		'0', 2),
	'0', 'retried: nothing in flight');
is(sql("SELECT count(*) FILTER (WHERE attempts = 1) FROM integration.connector_calls WHERE connector_id = $retried"),
	'10', 'retried: each page call made one attempt');
$node->safe_psql('postgres', q{
	DROP TRIGGER slow_write ON integration.external_records;
	DROP TRIGGER fail_commit ON integration.connector_calls;
});
$shop->config(bucket_size => 100000);

########################################################################
# 2. A request sent ahead for a call never begun holds its slot until it is back.
########################################################################

set_per_endpoint(1);
$node->safe_psql('postgres', q{
	CREATE TABLE public.fail_write (errcode text NOT NULL, times integer NOT NULL);
	CREATE SEQUENCE public.fail_count;
	CREATE FUNCTION public.fail_write() RETURNS trigger LANGUAGE plpgsql
	AS $$
	DECLARE
		code text;
	BEGIN
		SELECT w.errcode INTO code FROM public.fail_write w WHERE nextval('public.fail_count') <= w.times;
		IF FOUND THEN
			RAISE EXCEPTION 'the page write fails' USING ERRCODE = code;
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER fail_write AFTER INSERT ON integration.external_records
		FOR EACH STATEMENT EXECUTE FUNCTION public.fail_write();
	INSERT INTO public.fail_write VALUES ('P0001', 1000000);
});
$shop->clear_log;
# The second request (the second page, sent ahead) is answered after 3 s.
$shop->fault('delay', count => 1, after => 1, ms => 3000, match => { path => $orders_path });
my $orphan = connector('orphan', '{"sync_interval": 0, "sync_streams": ["orders"]}');
sql("SELECT integration.sync_now($orphan, 'orders')");
ok($node->poll_query_until('postgres',
		"SELECT status = 'idle' AND errors = 1 FROM integration.sync_streams WHERE connector_id = $orphan"),
	'orphan: the first page fails, and the run ends');
# The response adapter did its part: the error says the page could not be stored.
is($node->safe_psql('postgres', "SELECT s.last_error || '|' || k.last_error
		FROM integration.sync_streams s JOIN integration.connector_calls k ON k.connector_id = s.connector_id
	   WHERE s.connector_id = $orphan AND k.status = 'failed'"),
	'the page could not be stored: the page write fails|the page could not be stored: the page write fails',
	'orphan: the stream and its call say the page could not be stored, not that the adapter failed');
is(poll_for("SELECT in_flight FROM integration._target_health('connector') WHERE target_id = $orphan",
		'1', 2),
	'1', 'orphan: the second page\'s request, on its way, is in flight');
$node->safe_psql('postgres', 'DELETE FROM public.fail_write');
sql("SELECT integration.sync_now($orphan, 'orders')");
run_ends($orphan, 'orphan', 1, 1);
@reqs = $shop->requests(path => $orders_path);
is(scalar @reqs, 12, 'orphan: twelve requests: one page, one sent ahead, ten pages');
ok(defined $reqs[1]{params}{page_info} && ($reqs[1]{fault} // '') eq 'delay',
	'orphan: the second request is the second page, answered late');
ok(!defined $reqs[2]{params}{page_info}, 'orphan: the third request is the next run\'s first page');
cmp_ok(epoch($reqs[2]{t}) - epoch($reqs[1]{t}), '>=', 2.98,
	'orphan: it went once the request sent ahead was back');

########################################################################
# 3. The same when the page's transaction fails with the request on its way.
########################################################################

$node->safe_psql('postgres',
	"ALTER SEQUENCE public.fail_count RESTART; INSERT INTO public.fail_write VALUES ('40001', 1)");
$shop->clear_log;
$shop->fault('delay', count => 1, after => 1, ms => 3000, match => { path => $orders_path });
my $failed = connector('failed', '{"sync_interval": 0, "sync_streams": ["orders"]}');
sql("SELECT integration.sync_now($failed, 'orders')");
run_ends($failed, 'failed', 1, 1);
is($node->safe_psql('postgres', "SELECT concat_ws('|', pages, errors) FROM integration.sync_streams
		WHERE connector_id = $failed"), '10|0', 'failed: ten pages, no error: the failed write was done again');
@reqs = $shop->requests(path => $orders_path);
is(scalar @reqs, 11, 'failed: eleven requests: the second page twice');
is($reqs[2]{params}{page_info}, $reqs[1]{params}{page_info}, 'failed: the second page asked for again');
cmp_ok(epoch($reqs[2]{t}) - epoch($reqs[1]{t}), '>=', 2.98,
	'failed: once the request sent ahead was back, not beside it');
is(sql("SELECT count(*) FILTER (WHERE attempts = 1) FROM integration.connector_calls WHERE connector_id = $failed"),
	'10', 'failed: each page call made one attempt');
$node->safe_psql('postgres', 'DROP TRIGGER fail_write ON integration.external_records');

########################################################################
# 4. Limits lowered during a run.
########################################################################

# Whether any request of @reqs (each answered $ms after it came) that came after $from
# came while another was being answered; returns how many did.
sub overlaps
{
	my ($from, $ms, @r) = @_;
	my @t = sort { $a <=> $b } map { epoch($_->{t}) } @r;
	my $n = 0;
	for my $i (0 .. $#t)
	{
		next if $t[$i] < $from;
		$n++ if grep { $_ != $i && $t[$_] <= $t[$i] && $t[$i] < $t[$_] + $ms / 1000 - 0.01 } 0 .. $#t;
	}
	return $n;
}

set_per_endpoint(3);
$shop->clear_log;
$shop->fault('delay', count => 1000, ms => 300, match => { path => $api });
my $streams = connector('streams', '{"sync_interval": 0}');
sql("SELECT integration.sync_now($streams)");
$shop->wait_for_requests(6, 20, path => $api);
cmp_ok(overlaps(0, 300, $shop->requests(path => $api)), '>', 0,
	'streams: three streams pull at once');
set_per_endpoint(1);
my $reloaded = time();
run_ends($streams, 'streams', 3, 1);
@reqs = $shop->requests(path => $api);
is(scalar @reqs, 30, 'streams: thirty requests');
# What was in flight at the reload is answered within 0.3 s; nothing after it overlaps.
is(overlaps($reloaded + 0.5, 300, @reqs), 0, 'streams: after the reload to 1, one request at a time');

$shop->control(op => 'clear_faults');
$shop->clear_log;
$shop->fault('delay', count => 1000, ms => 200, match => { path => $orders_path });
my $rate = connector('rate', '{"sync_interval": 0, "sync_streams": ["orders"]}');
sql("SELECT integration.sync_now($rate, 'orders')");
$shop->wait_for_requests(3, 20, path => $orders_path);
sql("SELECT integration.update_connector($rate,
		settings => '{\"sync_interval\": 0, \"sync_streams\": [\"orders\"], \"rate_limit\": 2, \"rate_limit_burst\": 1}')");
my $updated = time();
run_ends($rate, 'rate', 1, 1);
my @t = grep { $_ >= $updated + 0.3 } map { epoch($_->{t}) } $shop->requests(path => $orders_path);
cmp_ok(scalar @t, '>=', 4, 'rate: pages went after the limit');
my $worst = 0;
for my $i (0 .. $#t)
{
	for my $j ($i + 1 .. $#t)
	{
		my $over = ($j - $i + 1) - (1 + 2 * ($t[$j] - $t[$i] + 0.01));
		$worst = $over if $over > $worst;
	}
}
is($worst, 0, 'rate: after the update, at most 1 + 2t page requests in any t seconds');

$node->stop;
done_testing();
