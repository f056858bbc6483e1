# The payment and CRM building blocks, checked with the platforms' own npm libraries
# (test/interop/platforms.mjs runs them; test/interop/package.json pins the versions):
#
#   1. Stripe: integration.stripe_form_encode() of each payload equals, byte for byte, the
#      body stripe-node itself sends for the same object (stripe.customers.create against
#      a server on 127.0.0.1 that records the request), for nested metadata, arrays of
#      objects, empty values, numbers, every printable ASCII character, UTF-8, member
#      order, and the vectors of stripe-node's own tests.
#   2. HubSpot v3: what integration.sign_request() signs, @hubspot/api-client's
#      Signature.isValid accepts (with the URI decoded as HubSpot's guide says), and a
#      changed body it rejects; what the library signs, integration.verify() accepts with
#      the URI as HubSpot sends it, and refuses changed, under another secret, or stale,
#      at the same age as the library does.
#   3. Adyen: items integration.adyen_sign_item() signed pass @adyen/api-library's
#      hmacValidator.validateHMAC, and fail it changed; items and whole notifications the
#      library signed pass integration.adyen_verify_item(), adyen_verify_notification()
#      and verify('adyen') on the raw body, and fail them changed or under another key.
#
# Node and the packages are required: without them this test fails, it never skips.
# $ENV{INTEGRATION_INTEROP} is the test/interop directory with node_modules (test/run
# sets it; to run this file alone, set it to the project's test/interop).

use strict;
use warnings;

use IntegrationTest;
use IPC::Run ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Strings stay bytes throughout, as in 012_interop.pl: what Perl writes, psql sends and
# Node reads is the UTF-8 of this file, byte for byte.
my $json = JSON::PP->new->canonical;

my $interop = $ENV{INTEGRATION_INTEROP};
ok(defined $interop && -f "$interop/platforms.mjs", 'INTEGRATION_INTEROP names the test/interop directory')
  or diag('set INTEGRATION_INTEROP to the project\'s test/interop (test/run does)');
for my $p (qw(stripe @hubspot/api-client @adyen/api-library))
{
	ok(defined $interop && -f "$interop/node_modules/$p/package.json", "npm package $p is installed")
	  or diag('run scripts/install-deps, which runs npm ci in test/interop');
}
if (!Test::More->builder->is_passing)
{
	done_testing();
	exit;
}

my $tmp = PostgreSQL::Test::Utils::tempdir('platforms');
my $node = new_integration_node('platforms');

sub dq { return '$interop$' . $_[0] . '$interop$'; }

# One statement per line of output (see 012_interop.pl for why the downgrade).
sub sql_lines
{
	my $sql = join('', @_);
	utf8::downgrade($sql);
	return split /\n/, $node->safe_psql('postgres', $sql);
}

########################################################################
# The cases
########################################################################

my @stripe_payloads = (
	[ 'payment intent' => '{"amount": 2000, "currency": "usd", "customer": "cus_123", "payment_method_types": ["card", "sepa_debit"], "capture_method": "manual", "confirm": true, "metadata": {"order_id": "SO123", "note": "Zoë & co. (gift)"}}' ],
	[ 'nested metadata' => '{"metadata": {"a": {"b": {"c": "deep"}}, "k e y": "v a l", "ünï": "cødé"}, "description": "x"}' ],
	[ 'arrays of objects' => '{"items": [{"price": "price_1", "quantity": 2}, {"price": "price_2", "quantity": 1, "tax_rates": ["txr_1", "txr_2"]}], "expand": ["latest_invoice.payment_intent"]}' ],
	[ 'empty values' => '{"description": "", "metadata": "", "email": null, "tax_ids": [], "shipping": {}, "a": [[], {}, null, ""]}' ],
	[ 'booleans and nested arrays' => '{"t": true, "f": false, "m": [[1, 2], [3]]}' ],
	[ 'numbers' => '{"n": [0, -0, 1.5, 1.50, 100, -12.345, 0.1, 1e3, 9007199254740992, 123456789012345680, 1e20, 1e21, 1.5e300, 0.000001, 0.0000001, 1.2e-7, 5e-324]}' ],
	[ 'printable ASCII' => $json->encode({ s => join('', map { chr } 32 .. 126), join('', map { chr } 32 .. 126) => 'k' }) ],
	[ 'UTF-8' => '{"name": "Zoë ☃ 日本語 😀", "address": {"line1": "Straße 1", "city": "Zürich"}}' ],
	[ 'member order' => '{"metadata": {"x": "a", "10": "b", "2": "c", "02": "d", "-1": "e", "4294967294": "f", "4294967295": "g"}, "1": "top", "0": "first"}' ],
	[ 'empty names' => '{"": {"": 1}, "a": {"": 2}}' ],
	[ 'brackets' => '{"k[x]": "v[0]", "a b": "+&=?#/", "c": {"[": "]"}}' ],
	[ 'deep' => '{"a": [[[[[1]]]]], "b": {"c": {"d": {"e": {"f": [{"g": null}]}}}}}' ],
	[ 'fifty metadata keys' => $json->encode({ metadata => { map { ("key_$_" => "value $_ = " . ($_ * 7)) } 1 .. 50 } }) ],
	[ 'empty object' => '{}' ],
	# stripe-node test/utils.spec.ts queryStringifyRequestData
	[ 'stripe-node basic types' => '{"a": 1, "b": "foo"}' ],
	[ 'stripe-node deeply nested' => '{"a": {"b": {"c": {"d": 2}}}}' ],
	[ 'stripe-node arrays of objects' => '{"a": [{"b": "c"}, {"b": "d"}]}' ],
	[ 'stripe-node indexed arrays' => '{"a": {"0": {"b": "c"}, "1": {"b": "d"}}}' ],
	[ 'stripe-node shallow nested' => '{"test": 1, "foo": "baz", "somethingElse": "::\"\"%&", "nested": {"1": 2, "a n o t h e r": null}}' ],
);

my $hs_secret = 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy';
my $hs_other = 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz';
# [name, method, URI as HubSpot sends it, URI decoded as its guide says, body]
my @hubspot = (
	[ 'SDK example', 'POST', 'https://www.example.com/webhook_uri', undef, '{"example_field":"example_value"}' ],
	[ 'webhook batch with a query', 'POST', 'https://app.example.com/hubspot/webhooks?portal=62515&source=crm', undef,
		'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]' ],
	[ 'GET without body', 'GET', 'https://app.example.com/crm-card?userId=1&portalId=2', undef, '' ],
	[ 'UTF-8 body', 'POST', 'https://www.example.com/webhook_uri', undef, '[{"eventId":2,"propertyName":"firstname","propertyValue":"Zoë ☃ 日本語 😀"}]' ],
	[ 'encoded URI', 'POST', 'https://www.example.com/hook?email=a%40b.c&t=x%3Ay%2Fz%2C%28w%29&sp=a%20b',
		'https://www.example.com/hook?email=a@b.c&t=x:y/z,(w)&sp=a%20b', '{"x":1}' ],
	[ '1 MB body', 'POST', 'https://www.example.com/webhook_uri', undef, '{"blob":"' . ('0123456789abcdef' x 65536) . '"}' ],
);

my $ad_key = '44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056';
my $ad_other = '74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174';
my @adyen_items = (
	[ 'python SDK item' => '{"pspReference": "7914073381342284", "merchantReference": "TestPayment-1407325143704", "merchantAccountCode": "TestMerchant", "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION", "success": "true", "eventDate": "2019-05-06T17:15:34.121+02:00", "operations": ["CANCEL", "CAPTURE", "REFUND"], "paymentMethod": "visa"}' ],
	[ 'node SDK item' => '{"pspReference": "pspReference", "originalReference": "originalReference", "merchantAccountCode": "merchantAccount", "merchantReference": "reference", "amount": {"currency": "EUR", "value": 1000}, "eventCode": "CAPTURE", "eventDate": "1970-01-01T00:00:00.000Z", "paymentMethod": "VISA", "reason": "reason", "success": "true"}' ],
	[ 'colon and backslash' => '{"pspReference": "M8NB66SBZSGLNK82", "merchantAccountCode": "Acme:EU", "merchantReference": "order:42\\\\a\\\\b", "amount": {"currency": "EUR", "value": 1000}, "eventCode": "AUTHORISATION", "success": "true"}' ],
	[ 'UTF-8 reference' => '{"pspReference": "X3GWNS6KJ8NKGK82", "merchantAccountCode": "Acme", "merchantReference": "Zoë ☃ 日本語 😀", "amount": {"currency": "JPY", "value": 0}, "eventCode": "REFUND", "success": "false"}' ],
	[ 'null original, boolean success' => '{"pspReference": "P1", "originalReference": null, "merchantAccountCode": "M", "merchantReference": "R", "amount": {"currency": "USD", "value": 99}, "eventCode": "CANCELLATION", "success": true, "additionalData": {"authCode": "076181"}}' ],
);

########################################################################
# What the extension produces, for the libraries
########################################################################

my @stripe_out = sql_lines(map {
	my $p = dq($_->[1]);
	"SELECT json_build_array(${p}::jsonb::text, integration.stripe_form_encode(${p}::jsonb));\n";
} @stripe_payloads);
is(scalar @stripe_out, scalar @stripe_payloads, 'stripe_form_encode() encoded ' . scalar(@stripe_payloads) . ' payloads');
my (@stripe_cases, %encoded);
for my $i (0 .. $#stripe_payloads)
{
	my ($text, $form) = @{ $json->decode($stripe_out[$i]) };
	push @stripe_cases, { name => $stripe_payloads[$i][0], payload => $text };
	$encoded{ $stripe_payloads[$i][0] } = $form;
}

my @hs_signed = sql_lines(map {
	sprintf("SELECT integration.sign_request('hubspot', %s, '%s', %s, %s);\n",
		dq($hs_secret), $_->[1], dq($_->[2]), dq($_->[4]));
} @hubspot);
my @hubspot_verify = map {
	{ name => $hubspot[$_][0], secret => $hs_secret, method => $hubspot[$_][1],
	  url => $hubspot[$_][3] // $hubspot[$_][2], body => $hubspot[$_][4],
	  headers => $json->decode($hs_signed[$_]) }
} 0 .. $#hubspot;
my @hubspot_sign = map {
	{ name => $_->[0], secret => $hs_secret, method => $_->[1], url => $_->[3] // $_->[2], body => $_->[4] }
} @hubspot;
# The library's window, against the extension's: 299 s old and 301 s old.
push @hubspot_sign, map {
	{ name => "$_ s old", secret => $hs_secret, method => 'POST', url => $hubspot[0][2],
	  body => $hubspot[0][4], age_ms => $_ * 1000 }
} (299, 301);

my @ad_signed = sql_lines(map {
	sprintf("SELECT integration.adyen_sign_item(%s, %s)::text;\n", dq($ad_key), dq($_->[1]));
} @adyen_items);
my @adyen_verify = map { { name => $adyen_items[$_][0], key => $ad_key, item => $ad_signed[$_] } } 0 .. $#adyen_items;
my @adyen_sign = (
	(map { { name => $_->[0], key => $ad_key, items => [ $_->[1] ] } } @adyen_items),
	{ name => 'all items in one notification', key => $ad_key, items => [ map { $_->[1] } @adyen_items ] },
);

my $cases = "$tmp/cases.json";
open(my $fh, '>:raw', $cases) or die "$cases: $!";
print $fh $json->encode({ stripe => \@stripe_cases, hubspot_verify => \@hubspot_verify,
	hubspot_sign => \@hubspot_sign, adyen_verify => \@adyen_verify, adyen_sign => \@adyen_sign });
close $fh;

my ($out, $err) = ('', '');
my $ran = IPC::Run::run([ 'node', "$interop/platforms.mjs", $cases ], '>', \$out, '2>', \$err);
diag("node platforms.mjs: $err") if $err ne '';
ok($ran, 'node platforms.mjs ran') or BAIL_OUT("node platforms.mjs failed: $err");
my $answer = $json->decode($out);

########################################################################
# 1. Stripe: the same bytes as stripe-node
########################################################################

is(scalar @{ $answer->{stripe} }, scalar @stripe_payloads, 'stripe-node sent one request per payload');
for my $r (@{ $answer->{stripe} })
{
	is($r->{body}, $encoded{ $r->{name} }, "stripe_form_encode() = what stripe-node sends: $r->{name}");
}
my ($first) = @{ $answer->{stripe} };
is("$first->{method} $first->{path}", 'POST /v1/customers', 'stripe-node posted to /v1/customers');
is($first->{content_type}, 'application/x-www-form-urlencoded', 'as application/x-www-form-urlencoded');
like($encoded{'payment intent'}, qr/(^|&)metadata\[order_id\]=SO123(&|$)/, 'metadata nests as metadata[order_id]');
like($encoded{'empty values'}, qr/(^|&)description=(&|$)/, 'an empty string is sent as description=');

########################################################################
# 2. HubSpot v3
########################################################################

my %hs_verified = map { $_->{name} => $_ } @{ $answer->{hubspot_verified} };
for my $h (@hubspot)
{
	my $v = $hs_verified{ $h->[0] };
	is($v->{result}, 'ok', "Signature.isValid accepts integration.sign_request(): $h->[0]");
	like($v->{tampered}, qr/^rejected/, "and rejects it with one space added to the body: $h->[0]");
}

my %hs_by_name = map { $_->[0] => $_ } @hubspot;
my @hs_library = @{ $answer->{hubspot_signed} };
my @verdicts = sql_lines(map {
	my $s = $_;
	my $h = $hs_by_name{ $s->{name} } // $hubspot[0];
	# verify() gets the URI as HubSpot sends the request, still percent-encoded, and runs
	# at the time the library signed, plus the signature's age
	my $age = $s->{name} =~ /^(\d+) s old$/ ? $1 : 0;
	my $headers = dq($json->encode({ 'X-HubSpot-Signature-v3' => $s->{signature},
		'X-HubSpot-Request-Timestamp' => $s->{timestamp}, ':method' => $h->[1], ':uri' => $h->[2] }));
	my $now = "'5 minutes', to_timestamp($s->{timestamp} / 1000.0 + $age)";
	"SELECT concat_ws(' ',
		integration.verify('hubspot', " . dq($hs_secret) . ", $headers, " . dq($h->[4]) . ", $now),
		NOT integration.verify('hubspot', " . dq($hs_secret) . ", $headers, " . dq($h->[4]) . " || ' ', $now),
		NOT integration.verify('hubspot', " . dq($hs_other) . ", $headers, " . dq($h->[4]) . ", $now));\n";
} @hs_library);
for my $i (0 .. $#hs_library)
{
	my $s = $hs_library[$i];
	my ($as_is, $changed, $other) = split ' ', $verdicts[$i];
	if ($s->{name} =~ /^(\d+) s old$/)
	{
		my $fresh = $1 < 300;
		is($s->{library_accepts} eq 'ok', $fresh, "Signature.isValid " . ($fresh ? 'accepts' : 'rejects') . " its own signature $s->{name}");
		is($as_is eq 't', $fresh, "integration.verify() agrees: " . ($fresh ? 'accepts' : 'refuses') . " it $s->{name}");
		next;
	}
	is($s->{library_accepts}, 'ok', "Signature.isValid accepts its own signature: $s->{name}");
	is($as_is, 't', "integration.verify() accepts what Signature.getSignature signed: $s->{name}");
	is("$changed $other", 't t', "and refuses it with the body changed or under another secret: $s->{name}");
}

########################################################################
# 3. Adyen
########################################################################

my %ad_verified = map { $_->{name} => $_ } @{ $answer->{adyen_verified} };
for my $a (@adyen_items)
{
	my $v = $ad_verified{ $a->[0] };
	is($v->{result}, 'ok', "hmacValidator.validateHMAC accepts integration.adyen_sign_item(): $a->[0]");
	like($v->{tampered}, qr/^rejected/, "and rejects it with merchantReference changed: $a->[0]");
}

for my $s (@{ $answer->{adyen_signed} })
{
	my $items = join(', ', map { 'integration.adyen_verify_item(' . dq($ad_key) . ', ' . dq($_) . ')' } @{ $s->{items} });
	my $raw = dq($s->{notification});
	my $changed = dq($s->{notification} =~ s/"value": (\d+)/'"value": ' . ($1 + 1)/er);
	my ($line) = sql_lines("SELECT concat_ws(' ',
		(SELECT bool_and(v) FROM unnest(ARRAY[$items]) AS v),
		integration.verify('adyen', " . dq($ad_key) . ", '{}', $raw),
		integration.adyen_verify_notification(" . dq($ad_key) . ", ${raw}::jsonb),
		NOT integration.verify('adyen', " . dq($ad_key) . ", '{}', $changed),
		NOT integration.verify('adyen', " . dq($ad_other) . ", '{}', $raw),
		integration.verify('adyen', " . dq("$ad_other $ad_key") . ", '{}', $raw));\n");
	my ($item_ok, $raw_ok, $parsed_ok, $changed_refused, $other_refused, $rotation_ok) = split ' ', $line;
	my $n = @{ $s->{items} };
	is($item_ok, 't', "adyen_verify_item() accepts the $n item(s) hmacValidator.calculateHmac signed: $s->{name}");
	is("$raw_ok $parsed_ok", 't t', "verify('adyen') accepts the raw notification, adyen_verify_notification() the parsed one: $s->{name}");
	is("$changed_refused $other_refused", 't t', "both refuse an amount changed, or another key: $s->{name}");
	is($rotation_ok, 't', "a key list with the right key second verifies: $s->{name}");
}

$node->stop;
done_testing();
