// Stripe-compatible API (/v1/...), written from Stripe's public API reference and guides
// (authentication, errors, idempotent requests, pagination, events, payment intents,
// refunds, customers, testing: declined payment methods, webhook signatures) and the
// wire facts in ../../../shared/reference/connector-wire-details.md §1.
//
//   auth: Authorization: Bearer <secret key> (or Basic with the key as user name)
//   bodies: application/x-www-form-urlencoded, parsed the way Stripe parses them: a[b][c]
//   nests, a[0] / a[] index arrays, "" unsets (metadata[k]= removes k); unknown
//   parameters are 400 parameter_unknown
//   Idempotency-Key (POST): the first request whose parameters validate stores its status
//   and body, errors and injected 500s included; the same key with the same parameters
//   replays it with Idempotent-Replayed: true; with other parameters or another endpoint
//   it is 400 idempotency_error; while the first is still running, 409; keys expire after
//   24 h (on this server's clock, which the control API moves)
//   declines: payment_method pm_card_chargeDeclined* → 402 card_error with code,
//   decline_code and the payment intent
//   errors carry Stripe-Should-Retry
//   GET /v1/balance: the captured charges net of refunds, per currency (the cheap call
//   a client makes to check its key)
//   GET /v1/events: created[gt|gte|lt|lte], starting_after, ending_before, limit,
//   type, types[]; newest first; has_more; events older than 30 days are gone
//   webhooks: Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body" under the
//   endpoint secret, whsec_ included>

import crypto from 'node:crypto';
import { PlatformError, clone, hmacHex, sleep } from './lib/common.mjs';

const DEFAULTS = {
	secret_key: 'sk_test_loopback',
	webhook_secret: 'whsec_loopback',
	api_version: '2024-06-20',
	account: 'acct_loopback',
	webhook_subscriptions: [],
};

const DAY = 86400 * 1000;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomId(prefix, n = 24) {
	const bytes = crypto.randomBytes(n);
	let s = '';
	for (const b of bytes) s += ALNUM[b % ALNUM.length];
	return `${prefix}_${s}`;
}

const DECLINES = {
	pm_card_chargeDeclined: { code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
	pm_card_chargeDeclinedInsufficientFunds: { code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
	pm_card_chargeDeclinedLostCard: { code: 'card_declined', decline_code: 'lost_card', message: 'Your card was declined.' },
	pm_card_chargeDeclinedStolenCard: { code: 'card_declined', decline_code: 'stolen_card', message: 'Your card was declined.' },
	pm_card_chargeDeclinedFraudulent: { code: 'card_declined', decline_code: 'fraudulent', message: 'Your card was declined.' },
	pm_card_chargeDeclinedExpiredCard: { code: 'expired_card', decline_code: 'expired_card', message: 'Your card has expired.' },
	pm_card_chargeDeclinedIncorrectCvc: { code: 'incorrect_cvc', decline_code: 'incorrect_cvc', message: "Your card's security code is incorrect." },
	pm_card_chargeDeclinedProcessingError: { code: 'processing_error', decline_code: 'processing_error', message: 'An error occurred while processing your card. Try again in a little bit.' },
};

const CURRENCIES = ['usd', 'eur', 'gbp', 'chf', 'jpy', 'cad', 'aud', 'sek', 'nok', 'dkk', 'pln'];
const ZERO_DECIMAL = ['jpy'];

// ---- the form body ----------------------------------------------------------------------

function decodeComponent(s) {
	return decodeURIComponent(s.replace(/\+/g, ' '));
}

// a[b][0][c]=v → {a: {b: [{c: 'v'}]}}.  Objects whose keys are exactly 0..n-1 become
// arrays, except metadata, whose keys are the caller's.
export function parseForm(text) {
	const root = {};
	if (text === '') return root;
	for (const pair of text.split('&')) {
		if (pair === '') continue;
		const eq = pair.indexOf('=');
		const rawKey = eq < 0 ? pair : pair.slice(0, eq);
		const rawVal = eq < 0 ? '' : pair.slice(eq + 1);
		let key;
		let val;
		try {
			key = decodeComponent(rawKey);
			val = decodeComponent(rawVal);
		} catch {
			throw badRequest(`Invalid request: the body is not valid form encoding near ${rawKey}`);
		}
		const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
		if (!m) throw badRequest(`Invalid request: unparsable parameter name ${key}`);
		const path = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
		let node = root;
		for (let i = 0; i < path.length; i++) {
			let seg = path[i];
			const last = i === path.length - 1;
			if (seg === '') seg = String(Object.keys(node).length);
			if (last) {
				if (typeof node[seg] === 'object' && node[seg] !== null) throw badRequest(`Invalid request: conflicting values for ${key}`);
				node[seg] = val;
			} else {
				if (node[seg] === undefined || node[seg] === '') node[seg] = {};
				if (typeof node[seg] !== 'object') throw badRequest(`Invalid request: conflicting values for ${key}`);
				node = node[seg];
			}
		}
	}
	return arrayify(root, false);
}

function arrayify(v, inMetadata) {
	if (typeof v !== 'object' || v === null) return v;
	const keys = Object.keys(v);
	for (const k of keys) v[k] = arrayify(v[k], k === 'metadata');
	if (!inMetadata && keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map((k) => v[k]);
	return v;
}

// The parameters in a canonical text, to compare an idempotent retry with the original.
function canonical(v) {
	if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
	if (typeof v === 'object' && v !== null) {
		return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
	}
	return JSON.stringify(v);
}

// ---- errors -------------------------------------------------------------------------------

function stripeError(status, error, headers = {}) {
	const retry = status === 409 || status === 429 || status >= 500;
	return new PlatformError(status, { error }, { 'Stripe-Should-Retry': String(retry), ...headers });
}

function badRequest(message, param, code) {
	return stripeError(400, {
		...(code ? { code, doc_url: `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}` } : {}),
		message,
		...(param ? { param } : {}),
		type: 'invalid_request_error',
	});
}

const missingParam = (p) => badRequest(`Missing required param: ${p}.`, p, 'parameter_missing');
const noSuch = (what, id, param = 'id') => stripeError(404, {
	code: 'resource_missing',
	doc_url: 'https://stripe.com/docs/error-codes/resource-missing',
	message: `No such ${what}: '${id}'`,
	param,
	type: 'invalid_request_error',
});

// ---- parameter schemas ---------------------------------------------------------------------

// type: int, bool, string, hash (any object), array, enum:[...]; required marks required.
const COMMON = { expand: 'array', metadata: 'metadata' };
const SCHEMAS = {
	'POST /v1/payment_intents': {
		...COMMON, amount: 'int!', currency: 'currency!', customer: 'string', payment_method: 'string',
		payment_method_types: 'array', capture_method: ['automatic', 'automatic_async', 'manual'],
		confirm: 'bool', confirmation_method: ['automatic', 'manual'], description: 'string',
		receipt_email: 'string', statement_descriptor: 'string', statement_descriptor_suffix: 'string',
		setup_future_usage: ['on_session', 'off_session'], off_session: 'bool', return_url: 'string',
		automatic_payment_methods: 'hash', shipping: 'hash', payment_method_options: 'hash',
		transfer_group: 'string', on_behalf_of: 'string',
	},
	'POST /v1/payment_intents/:id': {
		...COMMON, amount: 'int', currency: 'currency', customer: 'string', description: 'string',
		payment_method: 'string', receipt_email: 'string', shipping: 'hash',
	},
	'POST /v1/payment_intents/:id/confirm': { ...COMMON, payment_method: 'string', return_url: 'string', off_session: 'bool' },
	'POST /v1/payment_intents/:id/capture': { ...COMMON, amount_to_capture: 'int' },
	'POST /v1/payment_intents/:id/cancel': { expand: 'array', cancellation_reason: ['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned'] },
	'POST /v1/refunds': {
		...COMMON, payment_intent: 'string', charge: 'string', amount: 'int',
		reason: ['duplicate', 'fraudulent', 'requested_by_customer'],
	},
	'POST /v1/customers': {
		...COMMON, email: 'string', name: 'string', phone: 'string', description: 'string',
		address: 'hash', shipping: 'hash', payment_method: 'string', preferred_locales: 'array',
		invoice_settings: 'hash', tax_exempt: ['none', 'exempt', 'reverse'],
	},
	'POST /v1/customers/:id': {
		...COMMON, email: 'string', name: 'string', phone: 'string', description: 'string',
		address: 'hash', shipping: 'hash', preferred_locales: 'array', invoice_settings: 'hash',
		tax_exempt: ['none', 'exempt', 'reverse'], default_source: 'string',
	},
};

function validate(schemaKey, params) {
	const schema = SCHEMAS[schemaKey];
	if (!schema) return;
	for (const k of Object.keys(params)) {
		if (!(k in schema)) {
			throw badRequest(`Received unknown parameter: ${k}`, k, 'parameter_unknown');
		}
	}
	for (const [k, typeSpec] of Object.entries(schema)) {
		const required = typeof typeSpec === 'string' && typeSpec.endsWith('!');
		const type = typeof typeSpec === 'string' ? typeSpec.replace('!', '') : typeSpec;
		const v = params[k];
		if (v === undefined) {
			if (required) throw missingParam(k);
			continue;
		}
		if (Array.isArray(type)) {
			if (v !== '' && !type.includes(v)) {
				throw badRequest(`Invalid ${k}: must be one of ${type.join(', ')}`, k, 'parameter_invalid_string');
			}
		} else if (type === 'int') {
			if (!/^-?\d+$/.test(String(v))) throw badRequest(`Invalid integer: ${typeof v === 'object' ? 'object' : v}`, k, 'parameter_invalid_integer');
		} else if (type === 'bool') {
			if (!['true', 'false'].includes(String(v))) throw badRequest(`Invalid boolean: ${v}`, k, 'parameter_invalid_boolean');
		} else if (type === 'currency') {
			if (!CURRENCIES.includes(String(v).toLowerCase())) throw badRequest(`Invalid currency: ${v}. Stripe currently supports these currencies: ${CURRENCIES.join(', ')}`, k, 'parameter_invalid_string');
		} else if (type === 'string') {
			if (typeof v !== 'string') throw badRequest(`Invalid string: ${canonical(v)}`, k, 'parameter_invalid_string');
		} else if (type === 'hash' || type === 'metadata') {
			if (v !== '' && (typeof v !== 'object' || Array.isArray(v))) throw badRequest(`Invalid hash`, k, 'parameter_invalid_hash');
			if (type === 'metadata' && typeof v === 'object') {
				for (const [mk, mv] of Object.entries(v)) {
					if (typeof mv !== 'string') throw badRequest(`Invalid metadata[${mk}]: metadata values must be strings`, `metadata[${mk}]`);
					if (mk.length > 40) throw badRequest('Metadata keys can have up to 40 characters.', `metadata[${mk}]`);
					if (mv.length > 500) throw badRequest('Metadata values can have up to 500 characters.', `metadata[${mk}]`);
				}
			}
		} else if (type === 'array') {
			if (v !== '' && !Array.isArray(v)) throw badRequest(`Invalid array`, k, 'parameter_invalid_array');
		}
	}
}

// metadata on update: metadata= clears, metadata[k]= removes k, others set.
function mergeMetadata(old, update) {
	if (update === undefined) return old;
	if (update === '') return {};
	const out = { ...old };
	for (const [k, v] of Object.entries(update)) {
		if (v === '') delete out[k];
		else out[k] = v;
	}
	return out;
}

const str = (v) => (v === undefined || v === '' ? null : v);

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const intents = new Map();
	const charges = new Map();
	const refunds = new Map();
	const customers = new Map();
	const events = []; // oldest first
	const idempotency = new Map(); // key -> {endpoint, params, status, headers, body, at, inFlight, requestId}
	const nowSec = () => Math.floor(rt.now() / 1000);

	// ---- events --------------------------------------------------------------------------

	function addEvent(type, object, request, previous, createdSec) {
		const ev = {
			id: randomId('evt'),
			object: 'event',
			api_version: config.api_version,
			created: createdSec ?? nowSec(),
			data: { object: clone(object), ...(previous ? { previous_attributes: previous } : {}) },
			livemode: false,
			pending_webhooks: (config.webhook_subscriptions ?? []).length,
			request: { id: request?.requestId ?? null, idempotency_key: request?.idempotencyKey ?? null },
			type,
		};
		events.push(ev);
		rt.emit(type, { event_id: ev.id });
		return ev;
	}

	// ---- objects ---------------------------------------------------------------------------

	function newCustomer(p, createdSec) {
		const c = {
			id: randomId('cus', 14),
			object: 'customer',
			address: p.address && p.address !== '' ? p.address : null,
			balance: 0,
			created: createdSec ?? nowSec(),
			currency: null,
			default_source: null,
			delinquent: false,
			description: str(p.description),
			email: str(p.email),
			invoice_prefix: crypto.randomBytes(4).toString('hex').toUpperCase(),
			livemode: false,
			metadata: mergeMetadata({}, p.metadata),
			name: str(p.name),
			phone: str(p.phone),
			preferred_locales: p.preferred_locales && p.preferred_locales !== '' ? p.preferred_locales : [],
			shipping: p.shipping && p.shipping !== '' ? p.shipping : null,
			tax_exempt: p.tax_exempt ?? 'none',
		};
		customers.set(c.id, c);
		return c;
	}

	function updateCustomer(c, p) {
		const previous = {};
		for (const k of ['email', 'name', 'phone', 'description', 'address', 'shipping', 'tax_exempt', 'preferred_locales']) {
			if (!(k in p)) continue;
			const v = k === 'preferred_locales' ? (p[k] === '' ? [] : p[k]) : str(p[k]);
			if (canonical(c[k]) !== canonical(v)) {
				previous[k] = c[k];
				c[k] = v;
			}
		}
		if ('metadata' in p) {
			const m = mergeMetadata(c.metadata, p.metadata);
			if (canonical(m) !== canonical(c.metadata)) {
				previous.metadata = c.metadata;
				c.metadata = m;
			}
		}
		return previous;
	}

	function newIntent(p) {
		const id = randomId('pi');
		const pi = {
			id,
			object: 'payment_intent',
			amount: Number(p.amount),
			amount_capturable: 0,
			amount_received: 0,
			canceled_at: null,
			cancellation_reason: null,
			capture_method: p.capture_method ?? 'automatic_async',
			client_secret: `${id}_secret_${randomId('x', 25).slice(2)}`,
			confirmation_method: p.confirmation_method ?? 'automatic',
			created: nowSec(),
			currency: String(p.currency).toLowerCase(),
			customer: str(p.customer),
			description: str(p.description),
			last_payment_error: null,
			latest_charge: null,
			livemode: false,
			metadata: mergeMetadata({}, p.metadata),
			payment_method: str(p.payment_method),
			payment_method_types: p.payment_method_types && p.payment_method_types !== '' ? p.payment_method_types : ['card'],
			receipt_email: str(p.receipt_email),
			status: p.payment_method ? 'requires_confirmation' : 'requires_payment_method',
		};
		intents.set(id, pi);
		return pi;
	}

	function chargeObject(pi, captured, failure) {
		const ch = {
			id: randomId('ch'),
			object: 'charge',
			amount: pi.amount,
			amount_captured: captured ? pi.amount : 0,
			amount_refunded: 0,
			captured,
			created: nowSec(),
			currency: pi.currency,
			customer: pi.customer,
			failure_code: failure?.code ?? null,
			failure_message: failure?.message ?? null,
			livemode: false,
			metadata: clone(pi.metadata),
			outcome: failure
				? { network_status: 'declined_by_network', reason: failure.decline_code, type: 'issuer_declined', seller_message: 'The bank did not return any further details with this decline.' }
				: { network_status: 'approved_by_network', reason: null, type: 'authorized', seller_message: 'Payment complete.' },
			paid: !failure,
			payment_intent: pi.id,
			payment_method: pi.payment_method,
			refunded: false,
			status: failure ? 'failed' : 'succeeded',
		};
		charges.set(ch.id, ch);
		return ch;
	}

	// Confirms pi with its payment method: a decline returns the 402 error body.
	function confirm(pi, request) {
		const pm = pi.payment_method;
		if (!/^pm_/.test(pm ?? '')) throw noSuch('PaymentMethod', pm, 'payment_method');
		const decline = DECLINES[pm];
		if (decline) {
			const ch = chargeObject(pi, false, decline);
			pi.latest_charge = ch.id;
			const pmObject = { id: pm, object: 'payment_method', type: 'card', card: { brand: 'visa', last4: '0002' } };
			pi.last_payment_error = {
				charge: ch.id,
				code: decline.code,
				decline_code: decline.decline_code,
				doc_url: `https://stripe.com/docs/error-codes/${decline.code.replace(/_/g, '-')}`,
				message: decline.message,
				payment_method: pmObject,
				type: 'card_error',
			};
			pi.status = 'requires_payment_method';
			pi.payment_method = null;
			addEvent('charge.failed', ch, request);
			addEvent('payment_intent.payment_failed', pi, request);
			return stripeError(402, {
				charge: ch.id,
				code: decline.code,
				decline_code: decline.decline_code,
				doc_url: `https://stripe.com/docs/error-codes/${decline.code.replace(/_/g, '-')}`,
				message: decline.message,
				payment_intent: clone(pi),
				payment_method: pmObject,
				request_log_url: `https://dashboard.stripe.com/test/logs/${request.requestId}`,
				type: 'card_error',
			});
		}
		const manual = pi.capture_method === 'manual';
		const ch = chargeObject(pi, !manual);
		pi.latest_charge = ch.id;
		pi.last_payment_error = null;
		if (manual) {
			pi.status = 'requires_capture';
			pi.amount_capturable = pi.amount;
			addEvent('charge.succeeded', ch, request);
			addEvent('payment_intent.amount_capturable_updated', pi, request);
		} else {
			pi.status = 'succeeded';
			pi.amount_received = pi.amount;
			addEvent('charge.succeeded', ch, request);
			addEvent('payment_intent.succeeded', pi, request);
		}
		return null;
	}

	function getIntent(id) {
		const pi = intents.get(id);
		if (!pi) throw noSuch('payment_intent', id);
		return pi;
	}

	function amountText(n, cur) {
		return ZERO_DECIMAL.includes(cur) ? `${n}` : `$${(n / 100).toFixed(2)}`;
	}

	// ---- endpoints ---------------------------------------------------------------------------

	function execute(endpoint, id, p, request) {
		switch (endpoint) {
		case 'POST /v1/payment_intents': {
			if (Number(p.amount) < 50) {
				throw badRequest(`Amount must be at least $0.50 ${String(p.currency).toLowerCase()}`, 'amount', 'amount_too_small');
			}
			if (p.customer && !customers.has(p.customer)) throw noSuch('customer', p.customer, 'customer');
			if (p.confirm === 'true' && !p.payment_method) {
				throw badRequest('You cannot confirm this PaymentIntent because it\'s missing a payment method. To confirm the PaymentIntent with cus_, specify a payment method attached to this customer along with the customer ID.', 'payment_method', 'payment_intent_unexpected_state');
			}
			const pi = newIntent(p);
			addEvent('payment_intent.created', pi, request);
			if (p.confirm === 'true') {
				const err = confirm(pi, request);
				if (err) throw err;
			}
			return pi;
		}
		case 'GET /v1/payment_intents/:id':
			return getIntent(id);
		case 'POST /v1/payment_intents/:id': {
			const pi = getIntent(id);
			if (['succeeded', 'canceled'].includes(pi.status) && ('amount' in p || 'currency' in p)) {
				throw badRequest(`This PaymentIntent's amount could not be updated because it has a status of ${pi.status}.`, 'amount', 'payment_intent_unexpected_state');
			}
			for (const k of ['amount', 'currency', 'customer', 'description', 'payment_method', 'receipt_email']) {
				if (k in p) pi[k] = k === 'amount' ? Number(p[k]) : str(p[k]);
			}
			pi.metadata = mergeMetadata(pi.metadata, p.metadata);
			if (pi.payment_method && pi.status === 'requires_payment_method') pi.status = 'requires_confirmation';
			return pi;
		}
		case 'POST /v1/payment_intents/:id/confirm': {
			const pi = getIntent(id);
			if (!['requires_payment_method', 'requires_confirmation', 'requires_action'].includes(pi.status)) {
				throw badRequest(`This PaymentIntent's payment_method could not be updated because it has a status of ${pi.status}. You may only update the payment_method of a PaymentIntent with one of the following statuses: requires_payment_method, requires_confirmation, requires_action.`, undefined, 'payment_intent_unexpected_state');
			}
			if (p.payment_method) pi.payment_method = p.payment_method;
			if (!pi.payment_method) throw badRequest('You cannot confirm this PaymentIntent because it\'s missing a payment method.', 'payment_method', 'payment_intent_unexpected_state');
			const err = confirm(pi, request);
			if (err) throw err;
			return pi;
		}
		case 'POST /v1/payment_intents/:id/capture': {
			const pi = getIntent(id);
			if (pi.status !== 'requires_capture') {
				throw badRequest(`This PaymentIntent could not be captured because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.`, undefined, 'payment_intent_unexpected_state');
			}
			const amount = p.amount_to_capture !== undefined ? Number(p.amount_to_capture) : pi.amount_capturable;
			if (amount > pi.amount_capturable || amount < 1) {
				throw badRequest(`The amount to capture (${amount}) must be between 1 and the amount capturable (${pi.amount_capturable}).`, 'amount_to_capture', 'amount_too_large');
			}
			const ch = charges.get(pi.latest_charge);
			ch.captured = true;
			ch.amount_captured = amount;
			pi.amount_received = amount;
			pi.amount_capturable = 0;
			pi.status = 'succeeded';
			pi.metadata = mergeMetadata(pi.metadata, p.metadata);
			addEvent('charge.captured', ch, request);
			addEvent('payment_intent.succeeded', pi, request);
			return pi;
		}
		case 'POST /v1/payment_intents/:id/cancel': {
			const pi = getIntent(id);
			const ok = ['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action', 'processing'];
			if (!ok.includes(pi.status)) {
				throw badRequest(`You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be canceled: ${ok.join(', ')}.`, undefined, 'payment_intent_unexpected_state');
			}
			pi.status = 'canceled';
			pi.canceled_at = nowSec();
			pi.cancellation_reason = p.cancellation_reason ?? null;
			pi.amount_capturable = 0;
			addEvent('payment_intent.canceled', pi, request);
			return pi;
		}
		case 'POST /v1/refunds': {
			let ch;
			if (p.charge) {
				ch = charges.get(p.charge);
				if (!ch) throw noSuch('charge', p.charge, 'charge');
			} else if (p.payment_intent) {
				const pi = intents.get(p.payment_intent);
				if (!pi) throw noSuch('payment_intent', p.payment_intent, 'payment_intent');
				ch = pi.latest_charge ? charges.get(pi.latest_charge) : null;
				if (!ch || pi.status !== 'succeeded') {
					throw badRequest(`This PaymentIntent (${pi.id}) does not have a successful charge to refund.`, 'payment_intent', 'charge_not_refundable');
				}
			} else {
				throw badRequest('One of the following params should be provided for this request: payment_intent or charge.', undefined, 'parameter_missing');
			}
			const remaining = ch.amount_captured - ch.amount_refunded;
			if (remaining <= 0) throw badRequest(`Charge ${ch.id} has already been refunded.`, undefined, 'charge_already_refunded');
			const amount = p.amount !== undefined ? Number(p.amount) : remaining;
			if (amount > remaining) {
				throw badRequest(`Refund amount (${amountText(amount, ch.currency)}) is greater than unrefunded amount on charge (${amountText(remaining, ch.currency)})`, 'amount', 'amount_too_large');
			}
			if (amount < 1) throw badRequest('Invalid positive integer', 'amount', 'parameter_invalid_integer');
			const re = {
				id: randomId('re'),
				object: 'refund',
				amount,
				charge: ch.id,
				created: nowSec(),
				currency: ch.currency,
				metadata: mergeMetadata({}, p.metadata),
				payment_intent: ch.payment_intent,
				reason: p.reason ?? null,
				status: 'succeeded',
			};
			refunds.set(re.id, re);
			ch.amount_refunded += amount;
			ch.refunded = ch.amount_refunded === ch.amount_captured;
			addEvent('refund.created', re, request);
			addEvent('charge.refunded', ch, request);
			return re;
		}
		case 'GET /v1/refunds/:id': {
			const re = refunds.get(id);
			if (!re) throw noSuch('refund', id);
			return re;
		}
		case 'GET /v1/charges/:id': {
			const ch = charges.get(id);
			if (!ch) throw noSuch('charge', id);
			return ch;
		}
		case 'POST /v1/customers': {
			const c = newCustomer(p);
			addEvent('customer.created', c, request);
			return c;
		}
		case 'GET /v1/customers/:id': {
			const c = customers.get(id);
			if (!c) throw noSuch('customer', id);
			return c;
		}
		case 'POST /v1/customers/:id': {
			const c = customers.get(id);
			if (!c) throw noSuch('customer', id);
			const previous = updateCustomer(c, p);
			if (Object.keys(previous).length) addEvent('customer.updated', c, request, previous);
			return c;
		}
		case 'GET /v1/balance': {
			// What the succeeded charges net of refunds add up to, per currency, all available.
			const byCurrency = new Map();
			for (const ch of charges.values()) {
				byCurrency.set(ch.currency, (byCurrency.get(ch.currency) ?? 0) + ch.amount_captured - ch.amount_refunded);
			}
			const amounts = [...byCurrency.entries()].map(([currency, amount]) => ({ amount, currency, source_types: { card: amount } }));
			return {
				object: 'balance',
				available: amounts.length ? amounts : [{ amount: 0, currency: 'usd', source_types: { card: 0 } }],
				livemode: false,
				pending: (amounts.length ? amounts : [{ currency: 'usd' }]).map((a) => ({ amount: 0, currency: a.currency, source_types: { card: 0 } })),
			};
		}
		case 'GET /v1/events':
			return listEvents(request.query);
		case 'GET /v1/events/:id': {
			const ev = events.find((e) => e.id === id);
			if (!ev) throw noSuch('event', id);
			return ev;
		}
		case 'GET /v1/customers':
			return listObjects([...customers.values()], request.query, '/v1/customers');
		case 'GET /v1/payment_intents':
			return listObjects([...intents.values()], request.query, '/v1/payment_intents');
		default:
			throw stripeError(404, {
				message: `Unrecognized request URL (${request.method}: ${request.path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
				type: 'invalid_request_error',
			});
		}
	}

	function limitParam(q) {
		if (q.limit === undefined) return 10;
		if (!/^\d+$/.test(String(q.limit))) throw badRequest(`Invalid integer: ${q.limit}`, 'limit', 'parameter_invalid_integer');
		const n = Number(q.limit);
		if (n < 1 || n > 100) throw badRequest('This value must be greater than or equal to 1 and less than or equal to 100.', 'limit', 'parameter_invalid_integer');
		return n;
	}

	function createdFilter(q) {
		const c = q.created;
		if (c === undefined) return () => true;
		if (typeof c === 'string') {
			if (!/^\d+$/.test(c)) throw badRequest(`Invalid integer: ${c}`, 'created', 'parameter_invalid_integer');
			return (o) => o.created === Number(c);
		}
		const ops = { gt: (a, b) => a > b, gte: (a, b) => a >= b, lt: (a, b) => a < b, lte: (a, b) => a <= b };
		const tests = [];
		for (const [k, v] of Object.entries(c)) {
			if (!ops[k]) throw badRequest(`Received unknown parameter: created[${k}]`, `created[${k}]`, 'parameter_unknown');
			if (!/^\d+$/.test(String(v))) throw badRequest(`Invalid integer: ${v}`, `created[${k}]`, 'parameter_invalid_integer');
			tests.push((o) => ops[k](o.created, Number(v)));
		}
		return (o) => tests.every((t) => t(o));
	}

	// Newest first; starting_after / ending_before by object id.
	function page(rows, q, url, what) {
		if (q.starting_after !== undefined && q.ending_before !== undefined) {
			throw badRequest('You may only specify one of these parameters: ending_before, starting_after.', undefined, 'parameter_invalid_string');
		}
		const limit = limitParam(q);
		let start = 0;
		let slice;
		if (q.starting_after !== undefined) {
			const i = rows.findIndex((r) => r.id === q.starting_after);
			if (i < 0) throw noSuch(what, q.starting_after, 'starting_after');
			start = i + 1;
			slice = rows.slice(start, start + limit);
			return { object: 'list', data: slice, has_more: start + limit < rows.length, url };
		}
		if (q.ending_before !== undefined) {
			const i = rows.findIndex((r) => r.id === q.ending_before);
			if (i < 0) throw noSuch(what, q.ending_before, 'ending_before');
			slice = rows.slice(Math.max(0, i - limit), i);
			return { object: 'list', data: slice, has_more: i - limit > 0, url };
		}
		slice = rows.slice(0, limit);
		return { object: 'list', data: slice, has_more: limit < rows.length, url };
	}

	function listEvents(q) {
		for (const k of Object.keys(q)) {
			if (!['created', 'limit', 'starting_after', 'ending_before', 'type', 'types', 'delivery_success', 'expand'].includes(k)) {
				throw badRequest(`Received unknown parameter: ${k}`, k, 'parameter_unknown');
			}
		}
		if (q.type !== undefined && q.types !== undefined) {
			throw badRequest('You may only specify one of these parameters: type, types.', undefined, 'parameter_invalid_string');
		}
		const horizon = nowSec() - 30 * 86400;
		const match = createdFilter(q);
		const typeMatch = (t) => {
			const pattern = q.type;
			if (pattern !== undefined) {
				if (pattern.endsWith('.*')) return t.startsWith(pattern.slice(0, -1));
				return t === pattern;
			}
			if (q.types !== undefined) return [].concat(q.types).includes(t);
			return true;
		};
		// events[] is oldest first; the list is newest first, same-second events by
		// creation order reversed.
		const rows = [];
		for (let i = events.length - 1; i >= 0; i--) {
			const e = events[i];
			if (e.created >= horizon && match(e) && typeMatch(e.type)) rows.push(e);
		}
		return page(rows, q, '/v1/events', 'event');
	}

	function listObjects(all, q, url) {
		const match = createdFilter(q);
		const rows = all.filter((o) => match(o) && (q.customer === undefined || o.customer === q.customer) &&
			(q.email === undefined || o.email === q.email)).reverse();
		return page(rows, { ...q, customer: undefined, email: undefined }, url, url.split('/').pop().replace(/s$/, ''));
	}

	// ---- requests ----------------------------------------------------------------------------

	function route(method, path) {
		const m = /^\/v1\/([a-z_]+)(?:\/([A-Za-z0-9_]+))?(?:\/([a-z_]+))?\/?$/.exec(path);
		if (!m) return { endpoint: `${method} ${path}`, id: undefined };
		const [, res, id, action] = m;
		let endpoint = `${method} /v1/${res}`;
		if (id) endpoint += '/:id';
		if (action) endpoint += `/${action}`;
		return { endpoint, id };
	}

	function authenticate(req) {
		let key;
		const h = req.headers.authorization ?? '';
		let m;
		if ((m = /^Bearer\s+(.+)$/i.exec(h))) key = m[1].trim();
		else if ((m = /^Basic\s+(.+)$/i.exec(h))) key = Buffer.from(m[1], 'base64').toString('utf8').split(':')[0];
		if (!key) {
			throw stripeError(401, {
				message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
				type: 'invalid_request_error',
			}, { 'WWW-Authenticate': 'Bearer realm="Stripe"' });
		}
		if (key !== config.secret_key) {
			const masked = key.length > 12 ? `${key.slice(0, 8)}${'*'.repeat(key.length - 12)}${key.slice(-4)}` : '*'.repeat(key.length);
			throw stripeError(401, { message: `Invalid API Key provided: ${masked}`, type: 'invalid_request_error' },
				{ 'WWW-Authenticate': 'Bearer realm="Stripe"' });
		}
	}

	function headersFor(request) {
		return {
			'Content-Type': 'application/json',
			'Request-Id': request.requestId,
			'Stripe-Version': request.stripeVersion,
			...(request.idempotencyKey !== undefined ? { 'Idempotency-Key': request.idempotencyKey } : {}),
		};
	}

	function reply(status, body, request, extra = {}) {
		return { status, headers: { ...headersFor(request), ...extra }, body: JSON.stringify(body, null, 2) };
	}

	function parseRequest(req) {
		const request = {
			method: req.method,
			path: req.path,
			requestId: randomId('req', 14),
			stripeVersion: req.headers['stripe-version'] ?? config.api_version,
			idempotencyKey: req.method === 'POST' ? req.headers['idempotency-key'] : undefined,
		};
		const { endpoint, id } = route(req.method, req.path);
		request.endpoint = endpoint;
		request.id = id;
		return request;
	}

	function params(req, request) {
		if (req.method === 'GET' || req.method === 'DELETE') {
			const p = parseForm(req.rawQuery);
			request.query = p;
			return p;
		}
		const ct = (req.headers['content-type'] ?? '').toLowerCase();
		if (req.bodyText !== '' && !ct.startsWith('application/x-www-form-urlencoded')) {
			throw badRequest('Invalid request: the body must be application/x-www-form-urlencoded (see https://stripe.com/docs/api).');
		}
		return parseForm(req.bodyText);
	}

	function stored(request, endpointAndParams) {
		const key = request.idempotencyKey;
		if (key === undefined) return undefined;
		const rec = idempotency.get(key);
		if (!rec) return undefined;
		if (rt.now() - rec.at >= DAY) {
			idempotency.delete(key);
			return undefined;
		}
		if (rec.inFlight) {
			throw stripeError(409, {
				message: `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`,
				type: 'idempotency_error',
			});
		}
		if (rec.endpoint !== endpointAndParams.endpoint) {
			throw stripeError(400, {
				message: `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${rec.endpoint.replace(':id', rec.id ?? ':id')}' vs '${endpointAndParams.endpoint.replace(':id', request.id ?? ':id')}'). Try using a key other than '${key}' if you meant to execute a different request.`,
				type: 'idempotency_error',
			});
		}
		if (rec.params !== endpointAndParams.params || rec.id !== request.id) {
			throw stripeError(400, {
				message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
				type: 'idempotency_error',
			});
		}
		return rec;
	}

	async function handle(req) {
		const request = parseRequest(req);
		let p;
		let rec;
		try {
			authenticate(req);
			p = params(req, request);
			if (request.idempotencyKey !== undefined && request.idempotencyKey.length > 255) {
				throw badRequest('Idempotency-Key must be at most 255 characters long.', undefined, 'idempotency_key_in_use');
			}
			const canon = canonical(p);
			const prior = stored(request, { endpoint: request.endpoint, params: canon });
			if (prior) {
				return {
					status: prior.status,
					headers: { ...prior.headers, 'Request-Id': request.requestId, 'Idempotent-Replayed': 'true', 'Original-Request': prior.requestId },
					body: prior.body,
				};
			}
			validate(request.endpoint, p);
			// From here on the endpoint executes, so its result is kept under the key.
			if (request.idempotencyKey !== undefined) {
				rec = { endpoint: request.endpoint, id: request.id, params: canon, at: rt.now(), inFlight: true, requestId: request.requestId };
				idempotency.set(request.idempotencyKey, rec);
			}
			if (req.delayMs) await sleep(req.delayMs);
			const result = execute(request.endpoint, request.id, p, request);
			const r = reply(200, result, request);
			if (rec) Object.assign(rec, { status: r.status, headers: r.headers, body: r.body, inFlight: false });
			return r;
		} catch (e) {
			if (!(e instanceof PlatformError)) throw e;
			const r = reply(e.status, e.body, request, e.headers);
			if (rec) Object.assign(rec, { status: r.status, headers: r.headers, body: r.body, inFlight: false });
			return r;
		}
	}

	// An injected 500 on a POST with an Idempotency-Key counts as a failure inside the
	// endpoint: Stripe saves it, and a retry with the same key gets it back.  A retry with
	// the same key cannot succeed, so it says Stripe-Should-Retry: false.
	function faultResponse(f, req) {
		const request = parseRequest(req);
		if (f.kind === '429') {
			return reply(429, { error: { code: 'rate_limit', doc_url: 'https://stripe.com/docs/error-codes/rate-limit', message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.', type: 'invalid_request_error' } },
				request, { 'Stripe-Should-Retry': 'true', ...(f.retry_after ? { 'Retry-After': f.retry_after } : {}) });
		}
		if (f.kind !== '500') return undefined;
		const body = { error: { message: 'An unknown error occurred', type: 'api_error' } };
		let p;
		try {
			authenticate(req);
			p = params(req, request);
			validate(request.endpoint, p);
		} catch {
			return reply(500, body, request, { 'Stripe-Should-Retry': 'true' });
		}
		const key = request.idempotencyKey;
		if (key === undefined || (idempotency.has(key) && rt.now() - idempotency.get(key).at < DAY)) {
			return reply(500, body, request, { 'Stripe-Should-Retry': 'true' });
		}
		const r = reply(500, body, request, { 'Stripe-Should-Retry': 'false' });
		idempotency.set(key, { endpoint: request.endpoint, id: request.id, params: canonical(p), at: rt.now(), inFlight: false, requestId: request.requestId, status: 500, headers: r.headers, body: r.body });
		return r;
	}

	// ---- webhooks ------------------------------------------------------------------------------

	function sign(body, t, secrets) {
		return [`t=${t}`, ...secrets.map((s) => `v1=${hmacHex(s, `${t}.${body}`)}`)].join(',');
	}

	// spec: {event_id} (an event of this server) | {type, object} (a new event) |
	// {body: raw}; secret or secrets (several v1), timestamp (t)
	function buildWebhook(spec) {
		let body = spec.body;
		let eventId = spec.event_id;
		if (body === undefined) {
			let ev;
			if (eventId !== undefined) {
				ev = events.find((e) => e.id === eventId);
				if (!ev) throw new Error(`webhook: no event ${eventId}`);
			} else if (spec.type) {
				ev = addEvent(spec.type, spec.object ?? {}, null);
				eventId = ev.id;
			} else throw new Error('webhook: event_id, type or body is required');
			body = JSON.stringify(ev, null, 2);
		}
		const secrets = spec.secrets ?? [spec.secret ?? config.webhook_secret];
		const t = spec.timestamp ?? nowSec();
		return {
			method: 'POST',
			headers: {
				'Content-Type': 'application/json; charset=utf-8',
				'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
				'Stripe-Signature': sign(body, t, secrets),
			},
			body,
			secrets,
			event_id: eventId,
		};
	}

	// Each attempt is signed anew with its own timestamp.
	function redeliver(d) {
		return { ...d, headers: { ...d.headers, 'Stripe-Signature': sign(d.body, nowSec(), d.secrets) } };
	}

	// ---- control -----------------------------------------------------------------------------

	function control(op) {
		switch (op.op) {
		case 'seed': {
			const start = op.start !== undefined ? Math.floor(Date.parse(op.start) / 1000) : nowSec() - 3600;
			const perSecond = Math.max(1, op.per_second ?? 1);
			const out = [];
			for (let i = 0; i < (op.count ?? 0); i++) {
				const created = start + Math.floor(i / perSecond);
				if (op.resource === 'customers') {
					const n = customers.size + 1;
					const c = newCustomer({ email: `customer${n}@example.com`, name: `Customer ${n}`, ...(op.fields ?? {}) }, created);
					addEvent('customer.created', c, null, null, created);
					out.push(c.id);
				} else if (op.resource === 'payment_intents') {
					const pi = newIntent({ amount: '1000', currency: 'usd', payment_method: 'pm_card_visa', ...(op.fields ?? {}) });
					pi.created = created;
					const ch = chargeObject(pi, true);
					ch.created = created;
					pi.latest_charge = ch.id;
					pi.status = 'succeeded';
					pi.amount_received = pi.amount;
					addEvent('payment_intent.created', pi, null, null, created);
					addEvent('charge.succeeded', ch, null, null, created);
					addEvent('payment_intent.succeeded', pi, null, null, created);
					out.push(pi.id);
				} else throw new Error(`seed: unknown resource ${op.resource} (customers, payment_intents)`);
			}
			return { count: out.length, ids: out, events: events.length };
		}
		case 'get': {
			const maps = { payment_intents: intents, customers, charges, refunds };
			if (op.resource === 'events') return { record: events.find((e) => e.id === op.id) ?? null };
			if (op.resource === 'idempotency') {
				const r = idempotency.get(op.id);
				return { record: r ? { endpoint: r.endpoint, status: r.status, at: new Date(r.at).toISOString(), in_flight: r.inFlight } : null };
			}
			return { record: maps[op.resource]?.get(op.id) ?? null };
		}
		case 'list': {
			const maps = { payment_intents: intents, customers, charges, refunds };
			if (op.resource === 'events') return { records: events };
			if (!maps[op.resource]) throw new Error(`unknown resource ${op.resource}`);
			return { records: [...maps[op.resource].values()] };
		}
		default:
			return undefined;
		}
	}

	return {
		config,
		handle,
		control,
		buildWebhook,
		redeliver,
		faultResponse,
		handlesDelay: true,
		state: () => ({
			counts: { payment_intents: intents.size, charges: charges.size, refunds: refunds.size, customers: customers.size, events: events.length, idempotency_keys: idempotency.size },
		}),
	};
}
