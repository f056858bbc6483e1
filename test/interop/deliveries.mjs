// Checks every request in the test receiver's log with the official Standard Webhooks
// libraries, as a customer's receiver would: `standardwebhooks` and `svix`, each
// Webhook.verify() with one secret at a time (a receiver knows one secret of a rotation).
// Each request is also tampered with five ways, and both libraries must reject every
// tampered copy with their WebhookVerificationError.
//
//   node deliveries.mjs LOG.jsonl ENDPOINTS.json
//
// LOG.jsonl is test/receiver/receiver's --log: one JSON object per request with
// `path`, `headers` (names lowercased) and `body` (valid UTF-8 as is, any other byte as
// \u00XX) and `body_len`, the body's length in bytes.  ENDPOINTS.json maps each request
// path (without the query) to the list of secrets of the endpoint behind it.
// Prints one JSON object (see the `report` below); 012_interop.pl makes the assertions.
// Exits non-zero only when it cannot run at all.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as standardwebhooks from 'standardwebhooks';
import * as svix from 'svix';

const LIBRARIES = {
	standardwebhooks: standardwebhooks.Webhook,
	svix: svix.Webhook,
};
const VerificationErrors = [standardwebhooks.WebhookVerificationError, svix.WebhookVerificationError];

const [logPath, endpointsPath] = process.argv.slice(2);
if (!logPath || !endpointsPath) {
	console.error('usage: node deliveries.mjs LOG.jsonl ENDPOINTS.json');
	process.exit(2);
}
const endpoints = JSON.parse(readFileSync(endpointsPath, 'utf8'));

// A partly written last line (the receiver flushes within 20 ms) is not a request yet.
const lines = readFileSync(logPath, 'utf8').split('\n');
lines.pop();
const requests = lines.map((line) => JSON.parse(line));

// Verifies with one library and one secret: 'ok', or why not.
function verify(Library, secret, headers, body) {
	try {
		new Library(secret).verify(body, headers);
		return 'ok';
	} catch (e) {
		const kind = VerificationErrors.some((E) => e instanceof E) ? 'rejected' : 'error';
		return `${kind}: ${e.name}: ${e.message}`;
	}
}

// Changes one character, keeping the string's length and alphabet.
function flipLast(s) {
	const c = s.at(-1);
	return s.slice(0, -1) + (c === 'A' ? 'B' : 'A');
}

const wrongSecret = 'whsec_' + randomBytes(32).toString('base64');

// Each a copy of the request that no receiver may accept.
const TAMPERS = {
	'body + one space': (h, b) => [h, Buffer.concat([b, Buffer.from(' ')])],
	'webhook-id changed': (h, b) => [{ ...h, 'webhook-id': flipLast(h['webhook-id']) }, b],
	'webhook-timestamp + 1 s': (h, b) => [{ ...h, 'webhook-timestamp': String(Number(h['webhook-timestamp']) + 1) }, b],
	'each signature changed': (h, b) => [{
		...h,
		'webhook-signature': h['webhook-signature'].split(' ')
			.map((sig) => sig.slice(0, 3) + (sig[3] === 'A' ? 'B' : 'A') + sig.slice(4)).join(' '),
	}, b],
	'another secret': (h, b) => [h, b, wrongSecret],
};

const report = {
	requests: requests.length,
	by_path: {},
	body_bytes_differ: [],	// requests whose logged body does not give back body_len bytes
	accepted: {},		// library -> path -> secret index -> count
	rejections: [],		// {library, request, path, secret, result}
	tampered: {},		// library -> tamper -> count of copies rejected with the library's error
	tampered_accepted: [],	// {library, request, tamper, result}
};

for (const lib of Object.keys(LIBRARIES)) {
	report.accepted[lib] = {};
	report.tampered[lib] = Object.fromEntries(Object.keys(TAMPERS).map((t) => [t, 0]));
}

requests.forEach((req, i) => {
	const path = req.path.split('?')[0];
	const secrets = endpoints[path];
	const body = Buffer.from(req.body, 'utf8');

	report.by_path[path] = (report.by_path[path] ?? 0) + 1;
	if (body.length !== req.body_len)
		report.body_bytes_differ.push(i);
	for (const [lib, Library] of Object.entries(LIBRARIES)) {
		if (!secrets) {
			report.rejections.push({ library: lib, request: i, path, result: 'no endpoint has this path' });
			continue;
		}
		report.accepted[lib][path] ??= secrets.map(() => 0);
		secrets.forEach((secret, s) => {
			const result = verify(Library, secret, req.headers, body);
			if (result === 'ok')
				report.accepted[lib][path][s]++;
			else
				report.rejections.push({ library: lib, request: i, path, secret: s, result });
		});
		for (const [tamper, make] of Object.entries(TAMPERS)) {
			const [headers, tamperedBody, secret = secrets[0]] = make(req.headers, body);
			const result = verify(Library, secret, headers, tamperedBody);
			if (result.startsWith('rejected'))
				report.tampered[lib][tamper]++;
			else
				report.tampered_accepted.push({ library: lib, request: i, tamper, result });
		}
	}
});

console.log(JSON.stringify(report));
