# The shopify and woocommerce kinds against an independently written store
# (test/platforms/independent/store.mjs, from the platforms' documentation, not from the
# extension's code or the other loopback servers), as issue 17 is to be checked:
#
#   1. Shopify: 10,000 orders over 40 pages of 250 with a 429, a 500 and a SIGKILL of the
#      worker mid-run, the store's real leaky bucket (40, draining 2 a second) reported in
#      X-Shopify-Shop-Api-Call-Limit, Link headers with rel="previous" before rel="next":
#      every order stored once and handed on once, every next page asked for with exactly
#      the Link's limit and page_info, byte for byte.
#   2. Shopify webhooks and pulls of one change: handled once, webhook first or pull
#      first; a delivery with the same X-Shopify-Webhook-Id twice is a duplicate; a
#      same-second update at the cursor is brought by the overlap, once.
#   3. WooCommerce: orders over pages with 130 in one second, in a site whose zone is
#      +02:00 (modified_after against date_modified_gmt with dates_are_gmt), then three
#      changed; the ping (form body webhook_id=N, unsigned) accepted as a ping only; a
#      signed webhook and the pull of its change handled once, both ways.
#   4. Updates out: Shopify inventory_levels/set.json, variants, products, order close,
#      fulfillments; WooCommerce PUT products/<id> with Basic auth, PUT orders/<id>,
#      POST products; 422, 404, 401 (and WooCommerce's 400) fail at once, 429 and 5xx
#      are retried.

use strict;
use warnings;

use IntegrationTest;
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64;
use PlatformServer;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $json = JSON::PP->new->canonical;

my $node = new_integration_node('indep',
	"integration.request_timeout = '20s'",
	'restart_after_crash = on');

# The independent store.
my $state = PostgreSQL::Test::Utils::tempdir('independent_store');
my $store_pid = fork();
die "fork: $!" unless defined $store_pid;
if ($store_pid == 0)
{
	open(STDIN, '<', '/dev/null');
	open(STDOUT, '>', "$state/stdout");
	open(STDERR, '>', "$state/stderr");
	exec($ENV{NODE} // 'node', PlatformServer::platforms_dir() . '/independent/store.mjs') or POSIX::_exit(127);
}
my $port;
for (1 .. 500)
{
	if (open(my $fh, '<', "$state/stdout")) { my $l = <$fh>; $port = $1 if defined $l && $l =~ /^(\d+)\n/; }
	last if $port;
	usleep(20_000);
}
die 'the independent store did not start' unless $port;
END { kill 'TERM', $store_pid if $store_pid; }
my $base = "http://127.0.0.1:$port";
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);

sub ctl
{
	my ($op, $arg) = @_;
	my $r = $http->request('POST', "$base/__ctl/$op", { content => $json->encode($arg // {}) });
	die "control $op: $r->{status} $r->{content}" unless $r->{success};
	return $json->decode($r->{content});
}

sub sql { return tenant_psql($node, "SET ROLE indep_app;\n$_[0]", 'indep'); }
sub dq { return '$q$' . $_[0] . '$q$'; }
sub poll { ok($node->poll_query_until('postgres', $_[0]), $_[1]); }

create_app_role($node, 'indep_app');
$node->safe_psql('postgres', q{
	CREATE TABLE public.handled (n bigserial, event text, external_id text, rec_id text, note text);
	GRANT ALL ON public.handled, public.handled_n_seq TO indep_app;
	CREATE FUNCTION public.on_event(e integration.inbound_events) RETURNS void LANGUAGE sql
	AS $$ INSERT INTO public.handled (event, external_id, rec_id, note)
		  VALUES (e.event, e.external_id, e.payload ->> 'id', coalesce(e.payload ->> 'note', e.payload ->> 'customer_note')) $$;
});
sql(q{SELECT integration.on_inbound('all', '["shopify.orders.*", "woocommerce.order.*"]', 'public.on_event(integration.inbound_events)')});
sub handled_upto { return $node->safe_psql('postgres', 'SELECT coalesce(max(n), 0) FROM public.handled'); }

my $shop_secret = 'independent-shopify-app-secret';
my $conn = sql("SELECT id FROM integration.create_connector('shopify', 'indep-shop', '$base',
	'{\"access_token\": \"shpat_independent_0001\"}',
	'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"],
	  \"retry_schedule\": \"200ms, 200ms, 500ms, 1s, 1s\"}', '$shop_secret')");

sub state_of
{
	my ($c, $stream, $cols) = @_;
	return sql("SELECT concat_ws('|', $cols) FROM integration.sync_state WHERE connector_id = $c AND stream = '$stream'");
}

sub run_sync
{
	my ($c, $stream, $runs) = @_;
	sql("SELECT integration.sync_now($c, '$stream')");
	poll("SELECT status = 'idle' AND runs = $runs FROM integration.sync_state WHERE connector_id = $c AND stream = '$stream'",
		"$stream run $runs of connector $c ends");
}

########################################################################
# 1. Shopify: 10,000 orders, a 429, a 500, a SIGKILL, the real bucket
########################################################################

my $seed = ctl('seed', { platform => 'shopify', resource => 'orders', count => 10000, per_second => 100,
		start => '2025-01-01T00:00:00Z' });
my @ids = @{ $seed->{ids} };
ctl('fault', { faults => [ { nth => 9, status => 429 }, { nth => 17, status => 500 }, { nth => 26, status => 'hang' } ] });
ctl('bucket', { size => 12 });    # small enough that a run at full speed would empty it
ctl('clear');
sql("SELECT integration.sync_now($conn)");

my @hung;
for (my $i = 0; $i < 1200 && !@hung; $i++)
{
	@hung = grep { ($_->{status} // '') eq 'hang' } @{ ctl('log') };
	usleep(100_000) unless @hung;
}
is(scalar @hung, 1, 'shopify: a page request hangs mid-run');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM integration.worker_status() WHERE role = 'delivery'");
kill 'KILL', $pid;
ok(poll_across_crash($node, 'postgres',
		"SELECT count(*) = 1 AND bool_and(pid <> $pid) FROM integration.worker_status() WHERE role = 'delivery'"),
	'shopify: the server restarted after the SIGKILL');
poll("SELECT status = 'idle' AND runs = 1 FROM integration.sync_state WHERE connector_id = $conn AND stream = 'orders'",
	'shopify: the run ends');
is(state_of($conn, 'orders', 'runs, pages, records_seen, records_changed, errors'), '1|40|10000|10000|0',
	'shopify: one run, 40 pages, 10,000 seen and changed, no error');
is(state_of($conn, 'orders', "to_char(cursor_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"), '2025-01-01 00:01:39',
	'shopify: the cursor is the latest updated_at');

my @log = grep { $_->{path} eq '/admin/api/2025-01/orders.json' } @{ ctl('log') };
my %st;
$st{ $_->{status} }++ for @log;
is_deeply(\%st, { 200 => 40, 429 => 1, 500 => 1, hang => 1 },
	'shopify: 40 pages, the injected 429 and 500, the hung request; the bucket never ran out');
my ($thr) = grep { $log[$_]{status} eq '429' } 0 .. $#log;
cmp_ok($log[ $thr + 1 ]{t} - $log[$thr]{t}, '>=', 0.95, 'shopify: the page after the 429 waited for its Retry-After (1.0 s)');
like($log[0]{raw_query}, qr/^(?=.*\blimit=250\b)(?=.*\bstatus=any\b)(?=.*\border=updated_at(\+|%20)asc\b)/,
	'shopify: the first page asks for 250 in updated_at order, every status');
# Every request after a 200 asks for exactly what that 200's Link rel="next" named.
my ($bad, $prev_next) = (0, undef);
for my $r (@log)
{
	if (defined $prev_next)
	{
		$bad++, diag("asked $r->{raw_query}, Link said $prev_next") unless $r->{raw_query} eq $prev_next;
	}
	if ($r->{status} eq '200')
	{
		my ($next) = ($r->{link} // '') =~ /<[^>?]*\?([^>]*)>; rel="next"/;
		$prev_next = $next;
	}
}
is($bad, 0, 'shopify: every next page is the Link\'s rel="next" query, verbatim (limit and page_info only)');
is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records WHERE connector_id = $conn"),
	'10000|10000', 'shopify: each order stored once');
poll('SELECT count(*) >= 10000 FROM public.handled', 'shopify: the handler runs for every order');
sleep 1;
is($node->safe_psql('postgres', "SELECT count(*) || '|' || count(DISTINCT rec_id) || '|' || string_agg(DISTINCT event, ',') FROM public.handled"),
	'10000|10000|shopify.orders.updated', 'shopify: each order handed on once, as shopify.orders.updated');

########################################################################
# 2. Shopify webhooks and pulls of one change; same-second overlap
########################################################################

sub deliver
{
	my ($c, $d) = @_;
	return sql("SELECT string_agg(status || ':' || coalesce(event, ''), ',') FROM integration.receive_webhook($c, "
		  . dq($json->encode($d->{headers})) . ', ' . dq($d->{body}) . ')');
}

sub shop_webhook
{
	my ($topic, $order, $wid, %o) = @_;
	return ctl('webhook', { platform => 'shopify', secret => $o{secret} // $shop_secret, topic => $topic,
			body => $json->encode($order), webhook_id => $wid, event_id => $o{event_id} });
}

my ($a_id, $b_id, $c_id, $d_id) = @ids[ 100, 200, 300, 400 ];
my $mark = handled_upto();
# A: the webhook first (the store changed, its webhook delivered twice), then the pull.
my $a = ctl('update', { platform => 'shopify', resource => 'orders', id => $a_id, fields => { note => 'A webhook first' } });
my $wa = shop_webhook('orders/updated', $a, 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043');
is(deliver($conn, $wa), 'accepted:shopify.orders.updated', 'shopify: the webhook of A is accepted as shopify.orders.updated');
is(deliver($conn, $wa), 'duplicate:shopify.orders.updated', 'shopify: the same X-Shopify-Webhook-Id again is a duplicate');
my $forged = shop_webhook('orders/updated', $a, 'f-1', secret => 'not-the-secret');
is(deliver($conn, $forged), 'rejected:', 'shopify: a delivery signed with another secret is rejected');
# B: the pull first, then its webhook.
my $b = ctl('update', { platform => 'shopify', resource => 'orders', id => $b_id, fields => { note => 'B pull first' } });
run_sync($conn, 'orders', 2);
is(state_of($conn, 'orders', 'run_records_changed, errors'), '1|0', 'shopify: the pull finds B changed, A already known');
is(deliver($conn, shop_webhook('orders/updated', $b, 'w-b-1')), 'duplicate:shopify.orders.updated',
	'shopify: B\'s webhook after the pull is a duplicate');
is(deliver($conn, shop_webhook('orders/paid', $b, 'w-b-2')), 'duplicate:shopify.orders.paid',
	'shopify: so is another topic about the same version of B');
poll("SELECT count(*) >= 2 FROM public.handled WHERE n > $mark", 'shopify: the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(rec_id || ':' || note, ',' ORDER BY n) FROM public.handled WHERE n > $mark"),
	"$a_id:A webhook first,$b_id:B pull first", 'shopify: each change handed on once, whichever came first');

# Same second: C at T is pulled (cursor T); then D and C again, both stamped T.
my $t = '2030-01-01T00:00:00Z';
ctl('update', { platform => 'shopify', resource => 'orders', id => $c_id, fields => { note => 'C at T' }, at => $t });
run_sync($conn, 'orders', 3);
is(state_of($conn, 'orders', "run_records_changed, to_char(cursor_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"),
	'1|2030-01-01 00:00:00', 'shopify: the cursor is T');
$mark = handled_upto();
ctl('update', { platform => 'shopify', resource => 'orders', id => $d_id, fields => { note => 'D at T' }, at => $t });
ctl('update', { platform => 'shopify', resource => 'orders', id => $c_id, fields => { note => 'C again at T' }, at => $t });
run_sync($conn, 'orders', 4);
is(state_of($conn, 'orders', 'run_records_changed'), '2', 'shopify: the overlap brings both same-second updates');
run_sync($conn, 'orders', 5);
is(state_of($conn, 'orders', 'run_records_changed'), '0', 'shopify: and the next run nothing');
poll("SELECT count(*) >= 2 FROM public.handled WHERE n > $mark", 'shopify: the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(rec_id || ':' || note, ',' ORDER BY rec_id) FROM public.handled WHERE n > $mark"),
	join(',', sort "$c_id:C again at T", "$d_id:D at T"), 'shopify: each handed on once');

########################################################################
# 3. WooCommerce pull, ping, webhook and pull of one change
########################################################################

my $wc_secret = 'independent-wc-webhook-secret';
my $wc = sql("SELECT id FROM integration.create_connector('woocommerce', 'indep-wc', '$base',
	'{\"consumer_key\": \"ck_independent\", \"consumer_secret\": \"cs_independent\"}',
	'{\"sync_interval\": 0, \"sync_overlap\": 60, \"sync_streams\": [\"orders\"],
	  \"retry_schedule\": \"200ms, 200ms, 500ms, 1s, 1s\"}', '$wc_secret')");
my @w = @{ ctl('seed', { platform => 'woo', resource => 'orders', count => 100, per_second => 1, start => '2025-03-01T10:00:00Z' })->{ids} };
push @w, @{ ctl('seed', { platform => 'woo', resource => 'orders', count => 130, per_second => 200, start => '2025-03-01T10:05:00Z' })->{ids} };
push @w, @{ ctl('seed', { platform => 'woo', resource => 'orders', count => 130, per_second => 2, start => '2025-03-01T10:06:00Z' })->{ids} };
ctl('fault', {});
ctl('clear');
$mark = handled_upto();
run_sync($wc, 'orders', 1);
is(state_of($wc, 'orders', "records_seen >= 360, records_changed, errors, coalesce(last_error, ''), to_char(cursor_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"),
	't|360|0||2025-03-01 10:07:04', 'woocommerce: 360 orders pulled, the cursor their latest date_modified_gmt');
is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records WHERE connector_id = $wc"),
	'360|360', 'woocommerce: each order stored once');
my @wl = grep { $_->{path} eq '/wp-json/wc/v3/orders' } @{ ctl('log') };
is(scalar(grep { $_->{status} ne '200' } @wl), 0, 'woocommerce: no request refused');
is(scalar(grep { $_->{raw_query} !~ /dates_are_gmt=true/ } @wl), 0, 'woocommerce: every listing asks for GMT dates');
is(scalar(grep { ($_->{headers}{authorization} // '') ne 'Basic ' . encode_base64('ck_independent:cs_independent', '') } @wl), 0,
	'woocommerce: with Basic auth of the consumer key and secret');

my @changed = @w[ 0, 150, 359 ];
ctl('update', { platform => 'woo', resource => 'orders', id => $_, fields => { note => "changed $_" }, at => '2025-03-02T00:00:00Z' })
  for @changed;
run_sync($wc, 'orders', 2);
is(state_of($wc, 'orders', 'run_records_changed, errors'), '3|0', 'woocommerce: a second run finds the 3 changed');
poll("SELECT count(*) >= 363 FROM public.handled WHERE n > $mark", 'woocommerce: the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT count(*) || '|' || count(DISTINCT rec_id || event) FROM public.handled WHERE n > $mark"),
	'363|363', 'woocommerce: 360 new and 3 changes handed on, once each');
is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT event, ',' ORDER BY event) FROM public.handled WHERE n > $mark"),
	'woocommerce.order.created,woocommerce.order.updated', 'woocommerce: as the webhooks name them');

# The ping: form body, no X-WC-* header, unsigned.
is(deliver($wc, { headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }, body => 'webhook_id=17' }), 'accepted:',
	'woocommerce: the unsigned ping is accepted, storing nothing');
is(deliver($wc, { headers => { 'Content-Type' => 'application/json' }, body => '{"id": 1, "webhook_id": 17}' }), 'rejected:',
	'woocommerce: an unsigned JSON body is no ping: rejected');
is(deliver($wc, { headers => { 'X-WC-Webhook-Topic' => 'order.updated', 'X-WC-Webhook-ID' => '17' }, body => 'webhook_id=17' }),
	'rejected:', 'woocommerce: a ping body with WooCommerce headers but no signature is rejected');

sub wc_webhook
{
	my ($topic, $rec, %o) = @_;
	return ctl('webhook', { platform => 'woo', secret => $o{secret} // $wc_secret, topic => $topic,
			body => $json->encode($rec), webhook_id => 17 });
}
$mark = handled_upto();
# E: webhook first (delivered twice, new delivery id each time), then the pull.
my $e = ctl('update', { platform => 'woo', resource => 'orders', id => $w[10], fields => { note => 'E webhook first' } });
is(deliver($wc, wc_webhook('order.updated', $e)), 'accepted:woocommerce.order.updated', 'woocommerce: E\'s webhook accepted');
is(deliver($wc, wc_webhook('order.updated', $e)), 'duplicate:woocommerce.order.updated',
	'woocommerce: resent with a new delivery id: a duplicate');
is(deliver($wc, wc_webhook('order.updated', $e, secret => 'wrong')), 'rejected:', 'woocommerce: a wrong signature is rejected');
# F: pull first, then its webhook.
my $f = ctl('update', { platform => 'woo', resource => 'orders', id => $w[20], fields => { note => 'F pull first' } });
run_sync($wc, 'orders', 3);
is(state_of($wc, 'orders', 'run_records_changed, errors'), '1|0', 'woocommerce: the pull finds F changed, E already known');
is(deliver($wc, wc_webhook('order.updated', $f)), 'duplicate:woocommerce.order.updated',
	'woocommerce: F\'s webhook after the pull is a duplicate');
poll("SELECT count(*) >= 2 FROM public.handled WHERE n > $mark", 'woocommerce: the handler runs');
sleep 1;
is($node->safe_psql('postgres', "SELECT string_agg(rec_id || ':' || note, ',' ORDER BY n) FROM public.handled WHERE n > $mark"),
	"$w[10]:E webhook first,$w[20]:F pull first", 'woocommerce: each change handed on once, whichever came first');

# A store whose modified_after and modified_before include their bound (WooCommerce's
# do not): pages that a run would otherwise ask for again and again, 60 products in
# each of two seconds and 150 in one second, then 5 more.
ctl('config', { inclusive => JSON::PP::true });
ctl('seed', { platform => 'woo', resource => 'products', %$_ })
  for { count => 60, per_second => 100, start => '2025-04-01T10:00:00Z' },
  { count => 60, per_second => 100, start => '2025-04-01T10:00:01Z' },
  { count => 150, per_second => 1000, start => '2025-04-01T11:00:00Z' },
  { count => 5, per_second => 1, start => '2025-04-01T11:00:05Z' };
my $incl = sql("SELECT id FROM integration.create_connector('woocommerce', 'indep-wc-incl', '$base',
	'{\"consumer_key\": \"ck_independent\", \"consumer_secret\": \"cs_independent\"}',
	'{\"sync_interval\": 0, \"sync_streams\": [\"products\"], \"retry_schedule\": \"200ms\"}')");
ctl('clear');
for my $run (1, 2)
{
	sql("SELECT integration.sync_now($incl, 'products')");
	my $ended = 0;
	for (1 .. 300)
	{
		last if $ended = sql("SELECT status = 'idle' AND runs = $run FROM integration.sync_state
			WHERE connector_id = $incl AND stream = 'products'") eq 't';
		usleep(100_000);
	}
	ok($ended, "woocommerce, bounds included: run $run ends");
}
cmp_ok(scalar(grep { $_->{path} eq '/wp-json/wc/v3/products' } @{ ctl('log') }), '<=', 20,
	'woocommerce, bounds included: in a few requests, not the same page again and again');
is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records WHERE connector_id = $incl"),
	'275|275', 'woocommerce, bounds included: the first run stores every product once');
is(state_of($incl, 'products', 'records_changed, errors'), '275|0', 'woocommerce, bounds included: the second run finds no change');
ctl('config', { inclusive => JSON::PP::false });

# A store that answers a page past the end with 400, as WordPress's posts controller
# does (WooCommerce's own controllers answer an empty page): a second with exactly 100
# changed products, one full page, must not lead the pull to ask for a page past its end.
ctl('config', { past_end_400 => JSON::PP::true });
ctl('seed', { platform => 'woo', resource => 'products', %$_ })
  for { count => 100, per_second => 1000, start => '2025-05-01T10:00:00Z' },
  { count => 3, per_second => 1, start => '2025-05-01T10:00:05Z' };
my $pastend = sql("SELECT id FROM integration.create_connector('woocommerce', 'indep-wc-pastend', '$base',
	'{\"consumer_key\": \"ck_independent\", \"consumer_secret\": \"cs_independent\"}',
	'{\"sync_interval\": 0, \"sync_streams\": [\"products\"], \"retry_schedule\": \"200ms\"}')");
ctl('clear');
run_sync($pastend, 'products', 1);
is(join(',', map { $_->{status} } grep { $_->{path} eq '/wp-json/wc/v3/products' && $_->{status} != 200 } @{ ctl('log') }),
	'', 'woocommerce, 400 past the end: no page past the end asked for');
is(sql("SELECT count(*) || '|' || count(DISTINCT external_id) FROM integration.external_records WHERE connector_id = $pastend"),
	'378|378', 'woocommerce, 400 past the end: every product stored once (275 before, 103 new)');
is(state_of($pastend, 'products', 'errors'), '0', 'woocommerce, 400 past the end: no error');
ctl('config', { past_end_400 => JSON::PP::false });

########################################################################
# 4. Updates out
########################################################################

sub call
{
	my ($c, $op, $payload) = @_;
	my $id = sql("SELECT integration.call_connector($c, '$op', " . dq($json->encode($payload)) . ')');
	poll("SELECT status IN ('succeeded', 'failed') FROM integration.connector_calls WHERE id = $id", "call $op ends");
	return sql("SELECT concat_ws('|', status, attempts, coalesce(last_status_code::text, ''), coalesce(last_error, '')) FROM integration.connector_calls WHERE id = $id");
}
sub last_req { my @l = grep { $_->{path} eq $_[0] } @{ ctl('log') }; return $l[-1]; }

ctl('clear');
is(call($conn, 'inventory_level.set', { inventory_item_id => 808950810, location_id => 655441491, available => 42 }),
	'succeeded|1|200|', 'shopify: inventory_level.set succeeds');
my $r = last_req('/admin/api/2025-01/inventory_levels/set.json');
is_deeply([ $r->{method}, $r->{headers}{'x-shopify-access-token'}, $json->decode($r->{body}) ],
	[ 'POST', 'shpat_independent_0001', { inventory_item_id => 808950810, location_id => 655441491, available => 42 } ],
	'shopify: POST inventory_levels/set.json with the token, inventory_item_id, location_id, available');
is(ctl('get', { platform => 'shopify', resource => 'levels', id => '808950810:655441491' })->{available}, 42,
	'shopify: the store has 42 available');
is(call($conn, 'inventory_level.set', { inventory_item_id => 1, location_id => 655441491, available => 1 }),
	'failed|1|422|HTTP 422: Inventory item does not exist', 'shopify: 422 fails at once');
is(call($conn, 'inventory_level.set', { inventory_item_id => 808950810, location_id => 2, available => 1 }),
	'failed|1|404|HTTP 404: Not Found', 'shopify: 404 fails at once');
ctl('fault', { once => [ { path => '/inventory_levels/set.json', status => 429, retry_after => '1.0' },
						 { path => '/inventory_levels/set.json', status => 502 } ] });
is(call($conn, 'inventory_level.set', { inventory_item_id => 808950810, location_id => 655441491, available => 40 }),
	'succeeded|3|200|', 'shopify: a 429 and a 502 are retried');
is(call($conn, 'variant.update', { id => 39072856, price => '19.99' }), 'succeeded|1|200|', 'shopify: variant.update (price)');
is_deeply($json->decode(last_req('/admin/api/2025-01/variants/39072856.json')->{body}), { variant => { id => 39072856, price => '19.99' } },
	'shopify: PUT variants/<id>.json {"variant": {...}}');
is(call($conn, 'product.create', { title => 'Widget' }), 'succeeded|1|201|', 'shopify: product.create');
is(call($conn, 'product.create', { body_html => 'x' }), "failed|1|422|HTTP 422: title can't be blank", 'shopify: its 422');
is(call($conn, 'order.close', { id => $ids[5] }), 'succeeded|1|200|', 'shopify: order.close');
is(call($conn, 'fulfillment.create', { line_items_by_fulfillment_order => [ { fulfillment_order_id => 1 } ] }),
	'succeeded|1|201|', 'shopify: fulfillment.create');
my $bad_tok = sql("SELECT id FROM integration.create_connector('shopify', 'indep-bad', '$base', '{\"access_token\": \"shpat_wrong\"}',
	'{\"sync_interval\": 0}')");
is(call($bad_tok, 'inventory_level.set', { inventory_item_id => 808950810, location_id => 655441491, available => 1 }),
	'failed|1|401|HTTP 401: [API] Invalid API key or access token (unrecognized login or wrong password)', 'shopify: 401 fails at once');

my $prod = ctl('seed', { platform => 'woo', resource => 'products', count => 1, start => '2025-01-01T00:00:00Z' })->{ids}[0];
is(call($wc, 'product.update', { id => $prod, stock_quantity => 7, regular_price => '19.99' }), 'succeeded|1|200|',
	'woocommerce: product.update succeeds');
$r = last_req("/wp-json/wc/v3/products/$prod");
is_deeply([ $r->{method}, $r->{headers}{authorization}, $json->decode($r->{body}) ],
	[ 'PUT', 'Basic ' . encode_base64('ck_independent:cs_independent', ''), { stock_quantity => 7, regular_price => '19.99' } ],
	'woocommerce: PUT /wp-json/wc/v3/products/<id> with Basic auth, stock_quantity and regular_price');
is(ctl('get', { platform => 'woo', resource => 'products', id => $prod })->{stock_quantity}, 7, 'woocommerce: the store has 7');
is(call($wc, 'product.update', { id => 999999, stock_quantity => 1 }),
	'failed|1|400|HTTP 400: Invalid ID. (woocommerce_rest_product_invalid_id)', 'woocommerce: an unknown product fails at once');
is(call($wc, 'order.update', { id => $w[0], status => 'completed' }), 'succeeded|1|200|', 'woocommerce: order.update status');
is(ctl('get', { platform => 'woo', resource => 'orders', id => $w[0] })->{status}, 'completed', 'woocommerce: the order is completed');
is(call($wc, 'product.create', { name => 'Widget', regular_price => '5.00' }), 'succeeded|1|201|', 'woocommerce: product.create');
ctl('fault', { once => [ { path => "/products/$prod", status => 500, body => { code => 'x', message => 'boom', data => { status => 500 } } },
						 { path => "/products/$prod", status => 429, retry_after => '1' } ] });
is(call($wc, 'product.update', { id => $prod, stock_quantity => 3 }), 'succeeded|3|200|', 'woocommerce: a 500 and a 429 are retried');
my $wc_bad = sql("SELECT id FROM integration.create_connector('woocommerce', 'indep-wc-bad', '$base',
	'{\"consumer_key\": \"ck_independent\", \"consumer_secret\": \"cs_wrong\"}', '{\"sync_interval\": 0}')");
is(call($wc_bad, 'product.update', { id => $prod, stock_quantity => 1 }),
	'failed|1|401|HTTP 401: Consumer secret is invalid. (woocommerce_rest_authentication_error)', 'woocommerce: 401 fails at once');

kill 'TERM', $store_pid;
waitpid($store_pid, 0);
$store_pid = undef;
$node->stop;
done_testing();
