// The payment and CRM building blocks against the platforms' official npm libraries
// (test/t/015_platform_interop.pl makes the assertions):
//
//   stripe               each payload goes through stripe-node's own request path
//                        (customers.create against a server on 127.0.0.1, which records
//                        the body), so integration.stripe_form_encode() can be compared
//                        with what stripe-node really sends, byte for byte;
//   @hubspot/api-client  Signature.isValid (v3) judges what integration.sign_request()
//                        signed, and Signature.getSignature signs requests for
//                        integration.verify();
//   @adyen/api-library   hmacValidator.validateHMAC judges items integration.adyen_sign_item()
//                        signed, and hmacValidator.calculateHmac signs items and whole
//                        notifications for integration.adyen_verify_item() and verify('adyen').
//
//   node platforms.mjs CASES.json
//
// CASES.json: {"stripe": [{name, payload}],                     payload: JSON text
//              "hubspot_verify": [{name, secret, method, url, body, headers}],
//              "hubspot_sign": [{name, secret, method, url, body, age_ms}],
//              "adyen_verify": [{name, key, item}],              item: JSON text, signed
//              "adyen_sign": [{name, key, items}]}               items: JSON texts
// Prints {"stripe": [{name, method, path, content_type, body}],
//         "hubspot_verified": [{name, result, tampered}],
//         "hubspot_signed": [{name, timestamp, signature, library_accepts}],
//         "adyen_verified": [{name, result, tampered}],
//         "adyen_signed": [{name, items, notification}]}
// where result is 'ok' or why not and tampered 'rejected' or why not.  Exits non-zero
// only when it cannot run.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import Stripe from 'stripe';
import { Signature } from '@hubspot/api-client';
import { hmacValidator as HmacValidator } from '@adyen/api-library';

const casesPath = process.argv[2];
if (!casesPath) {
	console.error('usage: node platforms.mjs CASES.json');
	process.exit(2);
}
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));

// stripe-node sends each payload to a server on 127.0.0.1 that records the request and
// answers as Stripe would; the key is a placeholder, nothing leaves the machine.
async function stripeBodies(payloads) {
	const seen = [];
	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			seen.push({
				method: req.method,
				path: req.url,
				content_type: req.headers['content-type'],
				body: Buffer.concat(chunks).toString('utf8'),
			});
			res.writeHead(200, { 'Content-Type': 'application/json', 'Request-Id': 'req_interop' });
			res.end('{"id": "cus_interop", "object": "customer"}');
		});
	});
	await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
	const stripe = new Stripe('sk_test_interop_offline', {
		host: '127.0.0.1',
		port: server.address().port,
		protocol: 'http',
		maxNetworkRetries: 0,
		telemetry: false,
	});
	const out = [];
	for (const p of payloads) {
		const before = seen.length;
		// The object JSON.parse makes of the jsonb's text: the same members in the same order.
		await stripe.customers.create(JSON.parse(p.payload));
		if (seen.length !== before + 1) {
			throw new Error(`stripe-node sent ${seen.length - before} requests for ${p.name}`);
		}
		out.push({ name: p.name, ...seen[before] });
	}
	server.close();
	return out;
}

function header(headers, name) {
	const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
	return key === undefined ? undefined : headers[key];
}

// Signature.isValid answers a boolean, and throws for a stale timestamp.
function hubspotValid(c, body) {
	try {
		const ok = Signature.isValid({
			signatureVersion: 'v3',
			signature: header(c.headers, 'X-HubSpot-Signature-v3'),
			clientSecret: c.secret,
			requestBody: body,
			url: c.url,
			method: c.method,
			timestamp: header(c.headers, 'X-HubSpot-Request-Timestamp'),
		});
		return ok ? 'ok' : 'rejected: signature mismatch';
	} catch (e) {
		return `rejected: ${e.message}`;
	}
}

function hubspotVerify(list) {
	return list.map((c) => ({
		name: c.name,
		result: hubspotValid(c, c.body),
		tampered: hubspotValid(c, c.body + ' '),
	}));
}

// The library signs at now - age_ms; whether it accepts its own signature at that age is
// recorded too, so the test can compare the two windows.
function hubspotSign(list) {
	return list.map((c) => {
		const timestamp = String(Date.now() - (c.age_ms ?? 0));
		const signature = Signature.getSignature(c.method, 'v3', {
			clientSecret: c.secret,
			requestBody: c.body,
			url: c.url,
			timestamp,
		});
		const headers = { 'X-HubSpot-Signature-v3': signature, 'X-HubSpot-Request-Timestamp': timestamp };
		return {
			name: c.name,
			timestamp,
			signature,
			library_accepts: hubspotValid({ ...c, headers }, c.body),
		};
	});
}

const adyen = new HmacValidator();

function adyenValid(item, key) {
	try {
		return adyen.validateHMAC(item, key) ? 'ok' : 'rejected: signature mismatch';
	} catch (e) {
		return `error: ${e.message}`;
	}
}

function adyenVerify(list) {
	return list.map((c) => {
		const item = JSON.parse(c.item);
		const tampered = { ...item, merchantReference: `${item.merchantReference ?? ''}x` };
		return { name: c.name, result: adyenValid(item, c.key), tampered: adyenValid(tampered, c.key) };
	});
}

// Each item signed by the library, alone and as the notification Adyen would post
// (pretty-printed, as its servers send it).
function adyenSign(list) {
	return list.map((c) => {
		const items = c.items.map((text) => {
			const item = JSON.parse(text);
			const hmacSignature = adyen.calculateHmac(item, c.key);
			return { ...item, additionalData: { ...(item.additionalData ?? {}), hmacSignature } };
		});
		const notification = {
			live: 'false',
			notificationItems: items.map((item) => ({ NotificationRequestItem: item })),
		};
		return {
			name: c.name,
			items: items.map((item) => JSON.stringify(item)),
			notification: JSON.stringify(notification, null, 2),
		};
	});
}

const result = {
	stripe: await stripeBodies(cases.stripe ?? []),
	hubspot_verified: hubspotVerify(cases.hubspot_verify ?? []),
	hubspot_signed: hubspotSign(cases.hubspot_sign ?? []),
	adyen_verified: adyenVerify(cases.adyen_verify ?? []),
	adyen_signed: adyenSign(cases.adyen_sign ?? []),
};
console.log(JSON.stringify(result));
