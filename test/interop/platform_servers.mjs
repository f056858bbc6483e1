// The loopback platform servers (test/platforms) driven by the platforms' own npm
// libraries, so that what the servers do is checked by code their authors did not write
// (test/t/021_platform_servers.pl makes the assertions):
//
//   stripe               payment intents with an Idempotency-Key sent twice (the replay),
//                        a reused key with other parameters, a decline, capture and
//                        refund, customers with metadata, the events list paged by the
//                        library, and stripe.webhooks.constructEvent on a server webhook;
//   @hubspot/api-client  contacts search paged with `after`, batch upsert, an oversized
//                        batch refused, and Signature.isValid (v3) on a server webhook;
//   @shopify/shopify-api webhooks.validate on a server webhook.
//
//   node platform_servers.mjs CASES.json
//
// CASES.json: {"stripe": {port, secret_key, webhook: {headers, body, secret}},
//              "hubspot": {port, token, since_ms, until_ms, webhook: {url, headers, body, secret}},
//              "shopify": {webhook: {headers, body, secret}}}
// Prints one JSON object of observations; exits non-zero only when it cannot run.

import { readFileSync } from 'node:fs';
import Stripe from 'stripe';
import { Client, Signature } from '@hubspot/api-client';
import '@shopify/shopify-api/adapters/node';
import { shopifyApi, LogSeverity } from '@shopify/shopify-api';

const casesPath = process.argv[2];
if (!casesPath) {
	console.error('usage: node platform_servers.mjs CASES.json');
	process.exit(2);
}
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));

function header(headers, name) {
	const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
	return key === undefined ? undefined : headers[key];
}

async function caught(fn) {
	try {
		return { ok: await fn() };
	} catch (e) {
		return { error: e };
	}
}

async function stripeChecks(c) {
	const stripe = new Stripe(c.secret_key, {
		host: '127.0.0.1',
		port: c.port,
		protocol: 'http',
		maxNetworkRetries: 0,
		telemetry: false,
	});
	const out = {};
	const params = { amount: 2000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, metadata: { order_id: 'SO-1' } };
	const first = await stripe.paymentIntents.create(params, { idempotencyKey: 'sdk-order-SO-1' });
	const second = await stripe.paymentIntents.create(params, { idempotencyKey: 'sdk-order-SO-1' });
	out.replay = {
		same_id: first.id === second.id,
		first_status: first.status,
		first_replayed: first.lastResponse.headers['idempotent-replayed'] ?? null,
		second_replayed: second.lastResponse.headers['idempotent-replayed'] ?? null,
		metadata: second.metadata,
	};
	const mismatch = await caught(() => stripe.paymentIntents.create({ ...params, amount: 2001 }, { idempotencyKey: 'sdk-order-SO-1' }));
	out.mismatch = { type: mismatch.error?.type, status: mismatch.error?.statusCode, raw_type: mismatch.error?.raw?.type };
	const declined = await caught(() => stripe.paymentIntents.create({ amount: 1500, currency: 'eur', payment_method: 'pm_card_chargeDeclinedInsufficientFunds', confirm: true }));
	out.decline = {
		type: declined.error?.type,
		status: declined.error?.statusCode,
		code: declined.error?.code,
		decline_code: declined.error?.decline_code,
		pi_status: declined.error?.payment_intent?.status,
		should_retry: declined.error?.headers?.['stripe-should-retry'] ?? null,
	};
	const manual = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, capture_method: 'manual' });
	const captured = await stripe.paymentIntents.capture(manual.id, { amount_to_capture: 4000 });
	const refund = await stripe.refunds.create({ payment_intent: manual.id, amount: 1500 });
	out.capture = { before: manual.status, after: captured.status, received: captured.amount_received, refund_status: refund.status, refund_amount: refund.amount };
	const customer = await stripe.customers.create({ email: 'sdk@example.com', name: 'Zoë Sdk', metadata: { erp_id: '42', note: 'a & b' }, address: { line1: 'Straße 1', city: 'Zürich' } });
	const updated = await stripe.customers.update(customer.id, { metadata: { note: '' } });
	out.customer = { email: customer.email, name: customer.name, address: customer.address, metadata_after_unset: updated.metadata };
	const page = await stripe.events.list({ limit: 3 });
	const all = await stripe.events.list({ limit: 100 }).autoPagingToArray({ limit: 10000 });
	out.events = { first_page: page.data.length, has_more: page.has_more, total: all.length, unique: new Set(all.map((e) => e.id)).size };
	try {
		const w = c.webhook;
		const ev = stripe.webhooks.constructEvent(w.body, header(w.headers, 'Stripe-Signature'), w.secret);
		out.webhook = { result: 'ok', id: ev.id, type: ev.type };
	} catch (e) {
		out.webhook = { result: `rejected: ${e.message}` };
	}
	try {
		const w = c.webhook;
		stripe.webhooks.constructEvent(`${w.body} `, header(w.headers, 'Stripe-Signature'), w.secret);
		out.webhook_tampered = 'accepted';
	} catch (e) {
		out.webhook_tampered = 'rejected';
	}
	return out;
}

async function hubspotChecks(c) {
	const client = new Client({ accessToken: c.token, basePath: `http://127.0.0.1:${c.port}`, numberOfApiCallRetries: 0 });
	const out = {};
	const ids = [];
	let after;
	let pages = 0;
	let total;
	do {
		const res = await client.crm.contacts.searchApi.doSearch({
			filterGroups: [{ filters: [
				{ propertyName: 'hs_lastmodifieddate', operator: 'GTE', value: String(c.since_ms) },
				{ propertyName: 'hs_lastmodifieddate', operator: 'LT', value: String(c.until_ms) },
			] }],
			sorts: [{ propertyName: 'hs_lastmodifieddate', direction: 'ASCENDING' }],
			properties: ['email'],
			limit: 200,
			after,
		});
		pages++;
		total = res.total;
		ids.push(...res.results.map((r) => r.id));
		after = res.paging?.next?.after;
	} while (after !== undefined);
	out.search = { pages, total, seen: ids.length, unique: new Set(ids).size };
	const up = await client.crm.contacts.batchApi.upsert({
		inputs: [
			{ idProperty: 'email', id: 'SDK.Upsert@Example.com', properties: { firstname: 'Sdk' } },
			{ idProperty: 'email', id: 'contact1@example.com', properties: { firstname: 'Changed' } },
		],
	});
	out.upsert = { status: up.status, results: up.results.map((r) => ({ email: r.properties.email, firstname: r.properties.firstname, new: r._new ?? r['new'] })) };
	const inputs = Array.from({ length: 101 }, (_, i) => ({ idProperty: 'email', id: `bulk${i}@example.com`, properties: {} }));
	const big = await caught(() => client.crm.contacts.batchApi.upsert({ inputs }));
	let body = big.error?.body;
	if (typeof body === 'string') body = JSON.parse(body);
	out.too_many = { code: big.error?.code, category: body?.category };
	const w = c.webhook;
	const valid = (bodyText) => {
		try {
			return Signature.isValid({
				signatureVersion: 'v3',
				signature: header(w.headers, 'X-HubSpot-Signature-v3'),
				clientSecret: w.secret,
				requestBody: bodyText,
				url: w.url,
				method: 'POST',
				timestamp: header(w.headers, 'X-HubSpot-Request-Timestamp'),
			}) ? 'ok' : 'rejected';
		} catch (e) {
			return `rejected: ${e.message}`;
		}
	};
	out.webhook = valid(w.body);
	out.webhook_tampered = valid(`${w.body} `);
	return out;
}

async function shopifyChecks(c) {
	const api = shopifyApi({
		apiKey: 'loopback-test',
		apiSecretKey: c.webhook.secret,
		hostName: 'localhost',
		isEmbeddedApp: false,
		logger: { level: LogSeverity.Error, log: async (severity, message) => console.error(message) },
	});
	const check = async (body) => {
		const r = await api.webhooks.validate({
			rawBody: body,
			rawRequest: { method: 'POST', url: '/webhooks', headers: c.webhook.headers },
			rawResponse: {},
		});
		return r.valid ? { result: 'ok', topic: r.topic, webhookId: r.webhookId, domain: r.domain } : { result: `rejected: ${r.reason}` };
	};
	return { webhook: await check(c.webhook.body), webhook_tampered: (await check(`${c.webhook.body} `)).result.startsWith('rejected') ? 'rejected' : 'accepted' };
}

const result = {
	stripe: cases.stripe ? await stripeChecks(cases.stripe) : null,
	hubspot: cases.hubspot ? await hubspotChecks(cases.hubspot) : null,
	shopify: cases.shopify ? await shopifyChecks(cases.shopify) : null,
};
console.log(JSON.stringify(result));
