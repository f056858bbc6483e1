// Both directions between integration.sign()/verify() and each platform's official
// library:
//
//   - every header set that integration.sign() made is verified by the platform's
//     library, and a copy with one space added to the body must be rejected by it;
//   - the libraries that can sign (standardwebhooks, svix, stripe, @octokit/webhooks-methods)
//     sign bodies, for 012_interop.pl to check with integration.verify().
//
//   node schemes.mjs CASES.json
//
// CASES.json: {"verify": [{name, scheme, secret, body, headers, received_at?}],
//              "sign":   [{name, library, secret, body, msg_id?, timestamp?}]}
// A `secret` of scheme standard or stripe may be a space-separated list; each of its
// secrets is checked on its own, as a receiver that knows one of them would.
// `received_at` (Unix seconds) is when Stripe's library is told the request arrived.
// Prints {"verified": [{name, library, secret, result, tampered}], "signed": [{name,
// library, headers}]}, where result is 'ok' or why not and tampered is 'rejected' or why
// not; 012_interop.pl makes the assertions.  Exits non-zero only when it cannot run.

import { readFileSync } from 'node:fs';
import * as standardwebhooks from 'standardwebhooks';
import * as svix from 'svix';
import Stripe from 'stripe';
import * as octokit from '@octokit/webhooks-methods';
import '@shopify/shopify-api/adapters/node';
import { shopifyApi, LogSeverity } from '@shopify/shopify-api';

const casesPath = process.argv[2];
if (!casesPath) {
	console.error('usage: node schemes.mjs CASES.json');
	process.exit(2);
}
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));

// Only the webhook helpers are used: no request ever leaves the process, so the key is a
// placeholder.
const stripe = new Stripe('sk_test_interop_offline');
const STRIPE_TOLERANCE = 300;

// Shopify's library validates webhooks against the app's API secret key, so it takes an
// app configuration; hostName and apiKey are required but play no part in the HMAC.
function shopify(secret) {
	return shopifyApi({
		apiKey: 'interop-test',
		apiSecretKey: secret,
		hostName: 'localhost',
		isEmbeddedApp: false,
		// stdout carries the result: the library's log goes to stderr.
		logger: { level: LogSeverity.Error, log: async (severity, message) => console.error(message) },
	});
}

// Shopify's library also requires the headers that describe the event, which are not signed.
const SHOPIFY_EVENT_HEADERS = {
	'X-Shopify-Topic': 'orders/create',
	'X-Shopify-Shop-Domain': 'interop.myshopify.com',
	'X-Shopify-API-Version': '2025-01',
	'X-Shopify-Webhook-Id': 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043',
};

function header(headers, name) {
	const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
	return key === undefined ? undefined : headers[key];
}

// Each verifier resolves to 'ok' or to why not; a library's own "invalid signature"
// answer starts with 'rejected', anything else (a crash, a wrong argument) does not.
async function standardVerify(Library, secret, c, body) {
	try {
		new Library(secret).verify(body, c.headers);
		return 'ok';
	} catch (e) {
		const known = e instanceof standardwebhooks.WebhookVerificationError ||
			e instanceof svix.WebhookVerificationError;
		return `${known ? 'rejected' : 'error'}: ${e.name}: ${e.message}`;
	}
}

const VERIFIERS = {
	standard: {
		standardwebhooks: (secret, c, body) => standardVerify(standardwebhooks.Webhook, secret, c, Buffer.from(body)),
		svix: (secret, c, body) => standardVerify(svix.Webhook, secret, c, body),
	},
	stripe: {
		stripe: async (secret, c, body) => {
			try {
				stripe.webhooks.constructEvent(Buffer.from(body), header(c.headers, 'Stripe-Signature'),
					secret, STRIPE_TOLERANCE, undefined,
					c.received_at === undefined ? undefined : c.received_at * 1000);
				return 'ok';
			} catch (e) {
				const known = e instanceof Stripe.errors.StripeSignatureVerificationError;
				return `${known ? 'rejected' : 'error'}: ${e.name}: ${e.message}`;
			}
		},
	},
	github: {
		'@octokit/webhooks-methods': async (secret, c, body) => {
			try {
				return await octokit.verify(secret, body, header(c.headers, 'X-Hub-Signature-256'))
					? 'ok' : 'rejected: verify() returned false';
			} catch (e) {
				return `error: ${e.name}: ${e.message}`;
			}
		},
	},
	shopify: {
		'@shopify/shopify-api': async (secret, c, body) => {
			try {
				const check = await shopify(secret).webhooks.validate({
					rawBody: body,
					rawRequest: { method: 'POST', url: '/webhooks', headers: { ...SHOPIFY_EVENT_HEADERS, ...c.headers } },
					rawResponse: {},
				});
				if (check.valid)
					return 'ok';
				return `${check.reason === 'invalid_hmac' ? 'rejected' : 'error'}: ${JSON.stringify(check)}`;
			} catch (e) {
				return `error: ${e.name}: ${e.message}`;
			}
		},
	},
};
VERIFIERS.svix = VERIFIERS.standard;

const SIGNERS = {
	standardwebhooks: (c) => ({
		'webhook-id': c.msg_id,
		'webhook-timestamp': String(c.timestamp),
		'webhook-signature': c.secret.split(' ')
			.map((s) => new standardwebhooks.Webhook(s).sign(c.msg_id, new Date(c.timestamp * 1000), c.body))
			.join(' '),
	}),
	// A Svix sender uses Svix's own header names.
	svix: (c) => ({
		'svix-id': c.msg_id,
		'svix-timestamp': String(c.timestamp),
		'svix-signature': new svix.Webhook(c.secret).sign(c.msg_id, new Date(c.timestamp * 1000), c.body),
	}),
	stripe: (c) => ({
		'Stripe-Signature': stripe.webhooks.generateTestHeaderString({
			payload: c.body, secret: c.secret, timestamp: c.timestamp,
		}),
	}),
	'@octokit/webhooks-methods': async (c) => ({
		'X-Hub-Signature-256': await octokit.sign(c.secret, c.body),
	}),
};

const out = { verified: [], signed: [] };

for (const c of cases.verify) {
	const libraries = VERIFIERS[c.scheme.toLowerCase()];
	if (!libraries)
		throw new Error(`no official verifier for scheme ${c.scheme}`);
	const secrets = ['standard', 'svix', 'stripe'].includes(c.scheme.toLowerCase())
		? c.secret.split(' ') : [c.secret];
	for (const [library, check] of Object.entries(libraries)) {
		for (const [i, secret] of secrets.entries()) {
			out.verified.push({
				name: c.name, library, secret: i,
				result: await check(secret, c, c.body),
				tampered: await check(secret, c, c.body + ' '),
			});
		}
	}
}

for (const c of cases.sign) {
	const sign = SIGNERS[c.library];
	if (!sign)
		throw new Error(`no signer for library ${c.library}`);
	out.signed.push({ name: c.name, library: c.library, headers: await sign(c) });
}

console.log(JSON.stringify(out));
