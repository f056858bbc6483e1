// Shared pieces of the loopback platform servers: responses, time formats, seeded
// record stores, sorting and HMAC.  Nothing here knows a platform; each platform module
// (../shopify.mjs etc.) builds its wire format from these.

import crypto from 'node:crypto';

// A response as the platform modules return it, which server.mjs writes: body is a
// string or a Buffer written as is, or any other value written as JSON.
export function json(status, value, headers = {}) {
	return { status, body: value, headers: { 'Content-Type': 'application/json; charset=utf-8', ...headers } };
}

// An error the platform modules throw from deep inside a handler; the module's handler
// turns it into its platform's error shape.
export class PlatformError extends Error {
	constructor(status, body, headers = {}) {
		super(typeof body === 'string' ? body : JSON.stringify(body));
		this.status = status;
		this.body = body;
		this.headers = headers;
	}
}

export function hmacBase64(key, data) {
	return crypto.createHmac('sha256', key).update(data).digest('base64');
}

export function hmacHex(key, data) {
	return crypto.createHmac('sha256', key).update(data).digest('hex');
}

export function sha256Hex(data) {
	return crypto.createHash('sha256').update(data).digest('hex');
}

export function randomHex(bytes) {
	return crypto.randomBytes(bytes).toString('hex');
}

export function uuid() {
	return crypto.randomUUID();
}

// Constant-time comparison of two strings (false when the lengths differ).
export function safeEqual(a, b) {
	const x = Buffer.from(String(a));
	const y = Buffer.from(String(b));
	return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// ---- time ---------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, '0');

// YYYY-MM-DDTHH:MM:SS of a moment shifted by offsetMin minutes (no zone suffix).
export function localParts(ms, offsetMin = 0) {
	const d = new Date(ms + offsetMin * 60000);
	return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function offsetSuffix(offsetMin) {
	const sign = offsetMin < 0 ? '-' : '+';
	const a = Math.abs(offsetMin);
	return `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

// 2025-01-01T00:00:00-05:00 (seconds, the shop's offset): Shopify.
export function isoWithOffset(ms, offsetMin) {
	return localParts(ms, offsetMin) + offsetSuffix(offsetMin);
}

// 2025-01-01T00:00:00.000Z: HubSpot.
export function isoMillisZ(ms) {
	return new Date(ms).toISOString();
}

// 2025-01-01 00:00:00 (UTC, naive): Odoo's DEFAULT_SERVER_DATETIME_FORMAT.
export function odooDatetime(ms) {
	return localParts(ms, 0).replace('T', ' ');
}

// Parses an ISO 8601 date-time; without a zone it is read at offsetMin.  Returns ms or
// NaN.  Accepts a date alone (midnight) and a space instead of the T.
export function parseDateTime(text, offsetMin = 0) {
	if (typeof text !== 'string') return NaN;
	const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(text.trim());
	if (!m) return NaN;
	const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
	if (+mo < 1 || +mo > 12 || +d < 1 || +d > 31 || +h > 23 || +mi > 59 || +s > 60) return NaN;
	let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, Math.floor(+(frac + '000').slice(0, 3)));
	let off = offsetMin;
	if (zone) {
		if (zone.toUpperCase() === 'Z') off = 0;
		else {
			const z = zone.replace(':', '');
			off = (z[0] === '-' ? -1 : 1) * (parseInt(z.slice(1, 3), 10) * 60 + parseInt(z.slice(3, 5), 10));
		}
	}
	return ms - off * 60000;
}

// ---- records ------------------------------------------------------------------------

// One resource's records in insertion order, by id.  Each record carries its moments in
// ms (created_ms, updated_ms); the modules render them in their platform's format.
// version counts changes (insert, and changed() that writers call), so that a listing
// can keep its filtered, sorted rows between the pages of one pull.
export class Store {
	constructor(firstId = 1) {
		this.rows = new Map();
		this.nextId = firstId;
		this.firstId = firstId;
		this.version = 0;
	}

	changed() {
		this.version++;
	}

	insert(row) {
		this.version++;
		if (row.id === undefined) row.id = this.nextId++;
		else if (row.id >= this.nextId) this.nextId = row.id + 1;
		this.rows.set(row.id, row);
		return row;
	}

	get(id) {
		return this.rows.get(Number(id));
	}

	all() {
		return [...this.rows.values()];
	}

	get size() {
		return this.rows.size;
	}

	clear() {
		this.rows.clear();
		this.nextId = this.firstId;
		this.version++;
	}
}

// {resource: number of records} of a module's stores, for the control API's state.
export function storeCounts(stores) {
	return Object.fromEntries(Object.entries(stores).map(([k, s]) => [k, s.size]));
}

// The rows of the last few distinct queries, by a key that includes the store's version:
// a pull of many pages filters and sorts once, not once a page.
export class QueryCache {
	constructor(size = 16) {
		this.size = size;
		this.map = new Map();
	}

	get(key, compute) {
		let v = this.map.get(key);
		if (v === undefined) {
			v = compute();
			if (this.map.size >= this.size) this.map.delete(this.map.keys().next().value);
			this.map.set(key, v);
		}
		return v;
	}
}

// The first index in sorted rows at which pred(row) is true, pred being false then true
// along the rows (binary search).
export function firstIndex(rows, pred) {
	let lo = 0;
	let hi = rows.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if (pred(rows[mid])) hi = mid;
		else lo = mid + 1;
	}
	return lo;
}

// The moments of seeded records: record i of count at start + floor(i / per_second) s
// (+ step_ms * (i % per_second) when spread_ms is given), so many share a second.
// op.records (explicit list) wins over op.count.
export function seedMoments(op, defaultStart) {
	const start = op.start !== undefined ? parseDateTime(String(op.start), 0) : defaultStart;
	if (Number.isNaN(start)) throw new Error(`seed: bad start ${op.start}`);
	const perSecond = Math.max(1, op.per_second ?? 1);
	const spread = op.spread_ms ?? 0;
	const count = op.count ?? 0;
	const out = [];
	for (let i = 0; i < count; i++) {
		out.push(start + Math.floor(i / perSecond) * 1000 + (i % perSecond) * spread);
	}
	return out;
}

// Compares by a list of [key(row), direction] pairs; direction 1 or -1.
export function comparator(keys) {
	return (a, b) => {
		for (const [key, dir] of keys) {
			const x = key(a);
			const y = key(b);
			if (x < y) return -dir;
			if (x > y) return dir;
		}
		return 0;
	};
}

// ---- bodies -------------------------------------------------------------------------

export function parseJsonBody(text) {
	if (text === '') return undefined;
	return JSON.parse(text);
}

// PHP's json_encode defaults, which wp_json_encode keeps: "/" written as "\/" and every
// character outside ASCII as \uXXXX (UTF-16 code units, lower-case hex).  WordPress
// writes REST responses and WooCommerce webhook bodies this way, and the webhook
// signature is over these bytes.
export function phpJsonEncode(value) {
	return JSON.stringify(value)
		.replace(/\//g, '\\/')
		.replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

// Pick the members of obj named in a comma-separated list (Shopify's fields=).
export function pickFields(obj, fields) {
	if (!fields) return obj;
	const out = {};
	for (const f of String(fields).split(',').map((s) => s.trim()).filter(Boolean)) {
		if (f in obj) out[f] = obj[f];
	}
	return out;
}

export function clone(v) {
	return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
