// A small helpdesk API, the platform of the worked example in docs/connector-kinds.md
// (a connector kind written only in SQL, t/028_sql_kind.pl).  It is no real product: its
// wire format is the one the guide documents, shaped like the platforms' (an API key
// header, JSON bodies, an error envelope, Retry-After, idempotency keys, cursor
// pagination, signed webhooks).
//
//   auth: X-Helpdesk-Key: <api_key>, else 401 {"error": {"code": "unauthorized", ...}}
//   POST /api/v1/tickets {"ticket": {"subject", "requester", "priority"}} → 201
//     {"ticket": {...}}; a missing or invalid field is 422 {"error": {"code": "invalid",
//     "message", "field"}}; Idempotency-Key: the same key again replays the first answer
//     (Idempotent-Replayed: true), with another body it is 409 idempotency_conflict
//   GET /api/v1/tickets?updated_since=<ISO 8601>&limit=<1..100, default 50>: the tickets
//     updated at or after updated_since, oldest change first (updated_at, then id), as
//     {"tickets": [...], "next_cursor": "<opaque>" | null}; the next page is
//     ?cursor=<next_cursor>, with which only limit may be given (else 400); a cursor
//     this server did not issue is 400 invalid_cursor
//   webhooks: POST {"event": "ticket.updated", "ticket": {...}} with X-Helpdesk-Event,
//     X-Helpdesk-Delivery (the same on every retry of one delivery),
//     X-Helpdesk-Timestamp (unix seconds of this attempt) and X-Helpdesk-Signature:
//     v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the webhook secret>
//
// Moments are whole seconds in UTC, written 2026-01-01T00:00:00Z.

import { PlatformError, Store, clone, hmacHex, json, parseDateTime, seedMoments, storeCounts, uuid } from './lib/common.mjs';

const DEFAULTS = {
	api_key: 'hd_loopback_key',
	webhook_secret: 'hd_webhook_secret',
	webhook_subscriptions: [],
};

const PRIORITIES = ['low', 'normal', 'high'];
const STATUSES = ['open', 'pending', 'solved'];

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function error(status, code, message, extra = {}) {
	return new PlatformError(status, { error: { code, message, ...extra } });
}

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const tickets = new Store(1001);
	const idempotency = new Map(); // key -> {body, status, response}
	const nowS = () => Math.floor(rt.now() / 1000) * 1000;

	function render(t) {
		return {
			id: t.id,
			subject: t.subject,
			requester: t.requester,
			priority: t.priority,
			status: t.status,
			created_at: iso(t.created_ms),
			updated_at: iso(t.updated_ms),
		};
	}

	function addTicket(f, created, updated) {
		return tickets.insert({
			subject: f.subject ?? 'Ticket',
			requester: f.requester ?? 'someone@example.com',
			priority: f.priority ?? 'normal',
			status: f.status ?? 'open',
			created_ms: created,
			updated_ms: updated,
		});
	}

	function checkTicket(t) {
		if (t === null || typeof t !== 'object' || Array.isArray(t)) throw error(422, 'invalid', 'ticket must be an object', { field: 'ticket' });
		for (const k of ['subject', 'requester']) {
			if (typeof t[k] !== 'string' || t[k].trim() === '') throw error(422, 'invalid', `${k} is required`, { field: k });
		}
		if (!/^[^@\s]+@[^@\s]+$/.test(t.requester)) throw error(422, 'invalid', 'requester must be an email address', { field: 'requester' });
		if (t.priority !== undefined && !PRIORITIES.includes(t.priority)) {
			throw error(422, 'invalid', `priority must be one of ${PRIORITIES.join(', ')}`, { field: 'priority' });
		}
		for (const k of Object.keys(t)) {
			if (!['subject', 'requester', 'priority'].includes(k)) throw error(422, 'invalid', `unknown field ${k}`, { field: k });
		}
	}

	function create(req) {
		let body;
		try {
			body = JSON.parse(req.bodyText);
		} catch {
			throw error(400, 'bad_request', 'the body must be JSON');
		}
		const key = req.headers['idempotency-key'];
		if (key !== undefined) {
			const prior = idempotency.get(key);
			if (prior) {
				if (prior.body !== req.bodyText) throw error(409, 'idempotency_conflict', `key ${key} was used with another body`);
				return { ...prior.response, headers: { ...prior.response.headers, 'Idempotent-Replayed': 'true' } };
			}
		}
		checkTicket(body?.ticket);
		const ms = nowS();
		const t = addTicket(body.ticket, ms, ms);
		const r = json(201, { ticket: render(t) }, { Location: `/api/v1/tickets/${t.id}` });
		if (key !== undefined) idempotency.set(key, { body: req.bodyText, response: r });
		rt.emit('ticket.created', { id: t.id });
		return r;
	}

	// The cursor names the position after the last ticket of a page and the query.
	function encodeCursor(c) {
		return Buffer.from(JSON.stringify(c)).toString('base64url');
	}

	function decodeCursor(text) {
		try {
			const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
			if ([c.s, c.u, c.i].every(Number.isInteger) && encodeCursor(c) === text) return c;
		} catch {
			// below
		}
		throw error(400, 'invalid_cursor', 'the cursor is not one this API issued');
	}

	function list(req) {
		const q = req.query;
		let limit = 50;
		if (q.has('limit')) {
			if (!/^\d+$/.test(q.get('limit')) || Number(q.get('limit')) < 1 || Number(q.get('limit')) > 100) {
				throw error(400, 'bad_request', 'limit must be from 1 to 100');
			}
			limit = Number(q.get('limit'));
		}
		let since = 0;
		let after = null;
		if (q.has('cursor')) {
			for (const k of q.keys()) {
				if (!['cursor', 'limit'].includes(k)) throw error(400, 'bad_request', `${k} cannot be given with cursor`);
			}
			const c = decodeCursor(q.get('cursor'));
			since = c.s;
			after = [c.u, c.i];
		} else if (q.has('updated_since')) {
			since = parseDateTime(q.get('updated_since'), 0);
			if (Number.isNaN(since)) throw error(400, 'bad_request', 'updated_since must be an ISO 8601 moment');
		}
		const rows = tickets.all()
			.filter((t) => t.updated_ms >= since)
			.filter((t) => !after || t.updated_ms > after[0] || (t.updated_ms === after[0] && t.id > after[1]))
			.sort((a, b) => a.updated_ms - b.updated_ms || a.id - b.id);
		const page = rows.slice(0, limit);
		const last = page.at(-1);
		const next = rows.length > limit ? encodeCursor({ s: since, u: last.updated_ms, i: last.id }) : null;
		return json(200, { tickets: page.map(render), next_cursor: next });
	}

	function handle(req) {
		try {
			if (req.headers['x-helpdesk-key'] !== config.api_key) {
				throw error(401, 'unauthorized', 'a valid X-Helpdesk-Key is required');
			}
			if (req.path === '/api/v1/tickets' && req.method === 'POST') return create(req);
			if (req.path === '/api/v1/tickets' && req.method === 'GET') return list(req);
			throw error(404, 'not_found', `no route ${req.method} ${req.path}`);
		} catch (e) {
			if (!(e instanceof PlatformError)) throw e;
			return json(e.status, e.body, e.headers);
		}
	}

	// ---- webhooks ----------------------------------------------------------------------

	function sign(body, t, secret) {
		return `v1=${hmacHex(secret, `${t}.${body}`)}`;
	}

	// spec: {event, id} (a ticket of this server) or {event, body}; secret, timestamp,
	// delivery
	function buildWebhook(spec) {
		const event = spec.event ?? spec.topic;
		if (!event) throw new Error('webhook: event is required');
		let body = spec.body;
		if (body === undefined) {
			const t = tickets.get(spec.id);
			if (!t) throw new Error(`webhook: no ticket ${spec.id}`);
			body = JSON.stringify({ event, ticket: render(t) });
		}
		const secret = spec.secret ?? config.webhook_secret;
		const ts = spec.timestamp ?? Math.floor(rt.now() / 1000);
		return {
			method: 'POST',
			headers: {
				'Content-Type': 'application/json',
				'X-Helpdesk-Event': event,
				'X-Helpdesk-Delivery': spec.delivery ?? uuid(),
				'X-Helpdesk-Timestamp': String(ts),
				'X-Helpdesk-Signature': sign(body, ts, secret),
			},
			body,
			secret,
		};
	}

	// A retry: the same delivery id and body, this attempt's timestamp and signature.
	function redeliver(d) {
		const ts = Math.floor(rt.now() / 1000);
		return { ...d, headers: { ...d.headers, 'X-Helpdesk-Timestamp': String(ts), 'X-Helpdesk-Signature': sign(d.body, ts, d.secret) } };
	}

	// ---- control -----------------------------------------------------------------------

	function control(op) {
		switch (op.op) {
		case 'seed': {
			if (op.resource !== 'tickets') throw new Error('seed: the resource is tickets');
			const out = [];
			if (op.records) {
				for (const r of op.records) {
					const u = parseDateTime(r.updated_at ?? iso(rt.now()), 0);
					out.push(addTicket(r, parseDateTime(r.created_at ?? iso(u), 0), u));
				}
			} else {
				for (const ms of seedMoments(op, Date.UTC(2026, 0, 1))) {
					const s = Math.floor(ms / 1000) * 1000;
					out.push(addTicket({ subject: `Ticket ${tickets.size + 1}`, ...(op.fields ?? {}) }, s, s));
				}
			}
			return { count: out.length, ids: out.map((t) => t.id), total: tickets.size };
		}
		case 'update': {
			const t = tickets.get(op.id);
			if (!t) throw new Error(`no ticket ${op.id}`);
			for (const [k, v] of Object.entries(op.fields ?? {})) {
				if (k === 'status' && !STATUSES.includes(v)) throw new Error(`bad status ${v}`);
				t[k] = v;
			}
			t.updated_ms = op.updated_at !== undefined ? parseDateTime(op.updated_at, 0) : nowS();
			tickets.changed?.();
			rt.emit('ticket.updated', { id: t.id });
			return { record: render(t) };
		}
		case 'get': {
			const t = tickets.get(op.id);
			return { record: t ? render(t) : null };
		}
		case 'list':
			return { records: tickets.all().map(render) };
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
		state: () => ({ counts: storeCounts({ tickets }) }),
	};
}
