#!/usr/bin/env node
// Loopback platform servers for the connector tests, the demo and the benchmarks.
//
//   node test/platforms/server.mjs --platform shopify|woocommerce|stripe|hubspot|odoo|helpdesk
//        --port 0 --state-dir DIR [--config JSON] [--max-seconds N]
//
// Each platform module (shopify.mjs, ...) re-implements, from the platform's public
// documentation, the part of its API the connectors use (helpdesk.mjs is the made-up
// platform of docs/connector-kinds.md's worked example); this file is what they share:
// the HTTP server on 127.0.0.1, the request log, injected faults, the clock, webhook
// deliveries and the control API.  The port is the first line on stdout.
//
// Control API: POST /__control with a JSON object {"op": ...}; the answer is JSON.
// Control requests are not logged and need no credentials.
//
//   {"op":"seed","resource":"orders","count":N,"start":ISO,"per_second":K,"fields":{}}
//   {"op":"seed","resource":"orders","records":[{...,"updated_at":ISO}]}
//   {"op":"update","resource":R,"id":ID,"fields":{},"updated_at":ISO}   (moment: now)
//   {"op":"get","resource":R,"id":ID}  {"op":"list","resource":R}
//   {"op":"fault","kind":K,"count":1,"after":0,"match":{"method":"GET","path":"/x"},
//        "retry_after":"2.0","status":500,"body":"...","ms":1000}
//      kinds: 429 500 502 503 status hang reset hang_after reset_after delay, and the
//      platform's own (odoo: serialization_failure); the next `count` requests that match
//      (after skipping `after` of them) get it.  *_after kinds run the request first.
//   {"op":"faults"}  {"op":"clear_faults"}
//   {"op":"log","since":SEQ,"path":PREFIX}  {"op":"clear_log"}
//   {"op":"config","set":{...}}  (merged into the platform's configuration; returns it)
//   {"op":"clock","advance_s":S} | {"op":"clock","set":ISO} | {"op":"clock","real":true}
//   {"op":"webhook","url":URL,"events":[{...}],"order":[0,1,0],"send":true}
//   {"op":"reset"}  (data, log, faults, clock, idempotency and rate-limit state)
//   {"op":"state"}
//
// docs/tests.md describes each platform's part: what it implements and what it does not.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sleep } from './lib/common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PLATFORMS = ['shopify', 'woocommerce', 'stripe', 'hubspot', 'odoo', 'helpdesk'];

function usage(msg) {
	if (msg) console.error(`server.mjs: ${msg}`);
	console.error('usage: node server.mjs --platform ' + PLATFORMS.join('|') +
		' --port N --state-dir DIR [--config JSON] [--max-seconds N] [--host 127.0.0.1]');
	process.exit(2);
}

let args;
try {
	args = parseArgs({
		options: {
			platform: { type: 'string' },
			port: { type: 'string', default: '0' },
			'state-dir': { type: 'string' },
			config: { type: 'string' },
			'max-seconds': { type: 'string', default: '3600' },
			host: { type: 'string', default: '127.0.0.1' },
		},
	}).values;
} catch (e) {
	usage(e.message);
}
if (!PLATFORMS.includes(args.platform)) usage(`unknown platform ${args.platform}`);
if (!args['state-dir']) usage('--state-dir is required');
// Loopback only: these servers accept any control request from anyone who reaches them.
if (!/^127\.\d+\.\d+\.\d+$/.test(args.host)) usage('--host must be a 127.x.x.x address');
const stateDir = path.resolve(args['state-dir']);
fs.mkdirSync(stateDir, { recursive: true });

const RUNTIME_FAULTS = ['429', '500', '502', '503', 'status', 'hang', 'reset', 'hang_after', 'reset_after', 'delay'];

// ---- the runtime the platform modules see ----------------------------------------

const rt = {
	origin: `http://${args.host}`,
	clockOffset: 0,
	clockFrozen: null,
	now() {
		return this.clockFrozen ?? Date.now() + this.clockOffset;
	},
	emitQueue: Promise.resolve(),
	// A platform calls emit(topic, spec) when its data changes; deliveries go to the
	// configured subscriptions ({topic, url}), one at a time, in order.
	emit(topic, spec) {
		const subs = (platform.config.webhook_subscriptions ?? []).filter(
			(s) => s.topic === topic || s.topic === '*');
		for (const s of subs) {
			if (!isLoopbackUrl(s.url)) {
				this.log(`webhook subscription ${topic} skipped: ${s.url} is not http on a loopback address`);
				continue;
			}
			const delivery = platform.buildWebhook({ ...spec, topic, url: s.url });
			this.emitQueue = this.emitQueue.then(() => deliver(s.url, delivery)).catch(() => {});
		}
	},
	log(msg) {
		fs.appendFileSync(path.join(stateDir, 'server.log'), `${new Date().toISOString()} ${msg}\n`);
	},
};

const mod = await import(path.join(here, `${args.platform}.mjs`));
let platform = mod.createPlatform(rt, args.config ? JSON.parse(args.config) : {});
const initialConfig = args.config ? JSON.parse(args.config) : {};

// ---- request log ------------------------------------------------------------------

let requestLog = [];
let seq = 0;
const logFile = path.join(stateDir, 'requests.jsonl');

function bodyForLog(buf) {
	const text = buf.toString('utf8');
	if (Buffer.from(text, 'utf8').equals(buf)) return { body: text };
	return { body: text, body_base64: buf.toString('base64') };
}

function queryParams(searchParams) {
	const out = {};
	for (const [k, v] of searchParams) {
		if (k in out) out[k] = [].concat(out[k], v);
		else out[k] = v;
	}
	return out;
}

// ---- faults -----------------------------------------------------------------------

let faults = [];

function faultMatches(f, req) {
	const m = f.match ?? {};
	if (m.method && m.method.toUpperCase() !== req.method) return false;
	if (m.path) {
		if (m.path.startsWith('re:')) {
			if (!new RegExp(m.path.slice(3)).test(req.path)) return false;
		} else if (!req.path.startsWith(m.path)) return false;
	}
	if (m.body_contains && !req.bodyText.includes(m.body_contains)) return false;
	return true;
}

function takeFault(req) {
	for (const f of faults) {
		if (f.remaining <= 0 || !faultMatches(f, req)) continue;
		if (f.skip > 0) {
			f.skip--;
			continue;
		}
		f.remaining--;
		f.used++;
		return f;
	}
	return null;
}

const GATEWAY_HTML = {
	502: '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n',
	503: '<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n',
};

// The answer a status fault gives: the platform's own error shape where it has one,
// else (502, 503 from a gateway in front of it) an HTML page.
function faultResponse(f, req) {
	if (f.kind === 'status') {
		return { status: f.status ?? 500, headers: f.headers ?? { 'Content-Type': 'text/plain' }, body: f.body ?? '' };
	}
	const r = platform.faultResponse?.(f, req);
	if (r) return r;
	const status = Number(f.kind);
	return {
		status,
		headers: { 'Content-Type': 'text/html', ...(f.retry_after ? { 'Retry-After': f.retry_after } : {}) },
		body: GATEWAY_HTML[status] ?? `${status}\n`,
	};
}

// ---- outbound webhooks --------------------------------------------------------------

const webhookLog = path.join(stateDir, 'webhooks.jsonl');

function isLoopbackUrl(u) {
	try {
		const url = new URL(u);
		return url.protocol === 'http:' && (/^127\.\d+\.\d+\.\d+$/.test(url.hostname) ||
			url.hostname === 'localhost' || url.hostname === '[::1]');
	} catch {
		return false;
	}
}

// POSTs one delivery ({method, headers, body}) to url; resolves to what came back.
function deliver(url, d) {
	return new Promise((resolve) => {
		const record = (result) => {
			const entry = { t: new Date().toISOString(), url, method: d.method ?? 'POST', headers: d.headers, body: d.body, ...result };
			fs.appendFileSync(webhookLog, JSON.stringify(entry) + '\n');
			resolve(entry);
		};
		const body = Buffer.from(d.body, 'utf8');
		const req = http.request(url, {
			method: d.method ?? 'POST',
			headers: { ...d.headers, 'Content-Length': body.length },
			timeout: 10000,
		}, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => record({ status: res.statusCode, response: Buffer.concat(chunks).toString('utf8').slice(0, 65536) }));
		});
		req.on('timeout', () => req.destroy(new Error('timeout after 10 s')));
		req.on('error', (e) => record({ status: null, error: e.message }));
		req.end(body);
	});
}

// {"op":"webhook"}: builds each event once (a platform's retry repeats what it built,
// re-signed where the platform signs each attempt), then sends them in `order`, which may
// repeat (duplicates) and permute (out of order) indexes into `events`.
async function webhookOp(op) {
	const events = op.events ?? [];
	if (!Array.isArray(events) || events.length === 0) throw new Error('webhook: events must be a non-empty array');
	const built = events.map((e) => platform.buildWebhook({ url: op.url, ...e }));
	const order = op.order ?? built.map((_, i) => i);
	for (const i of order) {
		if (!Number.isInteger(i) || i < 0 || i >= built.length) throw new Error(`webhook: order index ${i} out of range`);
	}
	const sent = [];
	const times = new Map();
	const shown = (d) => ({ method: d.method ?? 'POST', headers: d.headers, body: d.body });
	const plan = order.map((i) => {
		const n = times.get(i) ?? 0;
		times.set(i, n + 1);
		const d = n === 0 ? built[i] : platform.redeliver(built[i], n);
		return { index: i, attempt: n, delivery: d };
	});
	if ((op.send !== undefined && !op.send) || !op.url) {
		return { deliveries: plan.map((p) => ({ index: p.index, attempt: p.attempt, ...shown(p.delivery) })) };
	}
	if (!isLoopbackUrl(op.url)) throw new Error('webhook: url must be http on a loopback address');
	for (const p of plan) {
		const r = await deliver(op.url, p.delivery);
		sent.push({ index: p.index, attempt: p.attempt, ...r });
	}
	return { deliveries: sent };
}

// ---- control ----------------------------------------------------------------------

let hung = new Set();

function resetAll() {
	platform = mod.createPlatform(rt, initialConfig);
	requestLog = [];
	faults = [];
	rt.clockOffset = 0;
	rt.clockFrozen = null;
	for (const res of hung) res.socket?.destroy();
	hung = new Set();
}

async function control(op) {
	switch (op.op) {
	case 'fault': {
		const kinds = [...RUNTIME_FAULTS, ...(platform.faultKinds ?? [])];
		const kind = String(op.kind);
		if (!kinds.includes(kind)) throw new Error(`fault: unknown kind ${kind} (known: ${kinds.join(', ')})`);
		const f = {
			id: faults.length + 1,
			kind,
			remaining: op.count ?? 1,
			skip: op.after ?? 0,
			used: 0,
			match: op.match ?? {},
			retry_after: op.retry_after,
			status: op.status,
			body: op.body,
			headers: op.headers,
			ms: op.ms,
		};
		faults.push(f);
		return { fault: f };
	}
	case 'faults':
		return { faults };
	case 'clear_faults':
		faults = [];
		return { ok: true };
	case 'log': {
		let entries = requestLog.filter((e) => e.seq > (op.since ?? 0));
		if (op.path) entries = entries.filter((e) => e.path.startsWith(op.path));
		if (op.method) entries = entries.filter((e) => e.method === op.method.toUpperCase());
		return { requests: entries, last_seq: seq };
	}
	case 'clear_log':
		requestLog = [];
		return { ok: true, last_seq: seq };
	case 'clock':
		if (op.real) {
			rt.clockOffset = 0;
			rt.clockFrozen = null;
		} else if (op.set !== undefined) {
			const t = Date.parse(op.set);
			if (Number.isNaN(t)) throw new Error(`clock: bad time ${op.set}`);
			rt.clockFrozen = op.freeze === false ? null : t;
			rt.clockOffset = t - Date.now();
		} else if (op.advance_s !== undefined) {
			if (rt.clockFrozen !== null) rt.clockFrozen += op.advance_s * 1000;
			rt.clockOffset += op.advance_s * 1000;
		}
		return { now: new Date(rt.now()).toISOString() };
	case 'webhook':
		return webhookOp(op);
	case 'reset':
		resetAll();
		return { ok: true };
	case 'config':
		Object.assign(platform.config, op.set ?? {});
		platform.configChanged?.();
		return { config: platform.config };
	case 'state':
		return {
			platform: args.platform,
			now: new Date(rt.now()).toISOString(),
			requests: seq,
			config: platform.config,
			...(platform.state?.() ?? {}),
		};
	default: {
		const r = await platform.control?.(op);
		if (r === undefined) throw new Error(`unknown op ${op.op}`);
		return r;
	}
	}
}

// ---- HTTP ---------------------------------------------------------------------------

function send(res, r) {
	let body = r.body ?? '';
	if (!(typeof body === 'string' || Buffer.isBuffer(body))) body = JSON.stringify(body);
	const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
	const headers = { ...r.headers, 'Content-Length': buf.length };
	res.writeHead(r.status, headers);
	res.end(r.method === 'HEAD' ? undefined : buf);
}

async function handle(req, res) {
	const chunks = [];
	for await (const c of req) chunks.push(c);
	const raw = Buffer.concat(chunks);
	const url = new URL(req.url, 'http://loopback');

	if (url.pathname === '/__control') {
		let out;
		let status = 200;
		try {
			if (req.method !== 'POST') throw new Error('POST a JSON object');
			out = await control(JSON.parse(raw.toString('utf8') || '{}'));
		} catch (e) {
			status = 400;
			out = { error: e.message };
		}
		send(res, { status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(out) });
		return;
	}

	const entry = {
		seq: ++seq,
		t: new Date().toISOString(),
		method: req.method,
		path: url.pathname,
		query: url.search.startsWith('?') ? url.search.slice(1) : '',
		params: queryParams(url.searchParams),
		headers: req.headers,
		...bodyForLog(raw),
	};
	requestLog.push(entry);
	const request = {
		method: req.method,
		url: req.url,
		path: url.pathname,
		query: url.searchParams,
		rawQuery: entry.query,
		headers: req.headers,
		body: raw,
		bodyText: raw.toString('utf8'),
		origin: `http://${req.headers.host ?? `${args.host}:${port}`}`,
		seq: entry.seq,
	};

	const f = takeFault(request);
	if (f) entry.fault = f.kind;
	let r;
	try {
		if (f && (f.kind === 'reset' || f.kind === 'hang')) {
			entry.status = f.kind;
			finishLog(entry);
			if (f.kind === 'reset') req.socket.resetAndDestroy();
			else hung.add(res);
			return;
		}
		if (f && f.kind === 'delay') {
			request.delayMs = f.ms ?? 1000;
			if (!platform.handlesDelay) await sleep(request.delayMs);
		}
		if (f && !['delay', 'hang_after', 'reset_after'].includes(f.kind)) r = faultResponse(f, request);
		else r = await platform.handle(request);
	} catch (e) {
		rt.log(`handler error: ${e.stack}`);
		r = { status: 500, headers: { 'Content-Type': 'text/plain' }, body: `loopback server bug: ${e.message}\n` };
	}
	r.method = req.method;
	entry.status = r.status;
	entry.response_headers = r.headers;
	finishLog(entry);
	if (f && f.kind === 'reset_after') {
		req.socket.resetAndDestroy();
		return;
	}
	if (f && f.kind === 'hang_after') {
		hung.add(res);
		return;
	}
	send(res, r);
}

function finishLog(entry) {
	fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
}

const server = http.createServer((req, res) => {
	handle(req, res).catch((e) => {
		rt.log(`request failed: ${e.stack}`);
		try {
			res.destroy();
		} catch {
			// already gone
		}
	});
});
server.keepAliveTimeout = 30000;
server.headersTimeout = 35000;
server.requestTimeout = 0;

let port;
server.listen(Number(args.port), args.host, () => {
	port = server.address().port;
	rt.origin = `http://${args.host}:${port}`;
	fs.writeFileSync(path.join(stateDir, 'port'), `${port}\n`);
	process.stdout.write(`${port}\n`);
});
server.on('error', (e) => {
	console.error(`server.mjs: ${e.message}`);
	process.exit(1);
});

function shutdown() {
	for (const res of hung) res.socket?.destroy();
	server.close();
	server.closeAllConnections?.();
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// Bounded life, so a server whose harness died does not outlive the test run.
setTimeout(shutdown, Number(args['max-seconds']) * 1000).unref();
