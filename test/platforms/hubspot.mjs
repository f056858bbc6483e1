// HubSpot-style CRM v3 API, written from HubSpot's public developer documentation (CRM
// objects, CRM search and its limits, batch upsert, API usage and rate-limit headers,
// webhook request validation) and the wire facts in
// ../../../shared/reference/connector-wire-details.md §4.
//
//   auth: Authorization: Bearer <private app token>, else 401 INVALID_AUTHENTICATION
//   POST /crm/v3/objects/{contacts,companies,deals}/search: filterGroups (≤ 5 groups,
//   ≤ 10 filters in a group, ≤ 25 in all), one sort, limit ≤ 200, `after` paging; a
//   query sees at most 10,000 results: a request whose after is 10000 or more is 400
//   (paging.next still points there, as HubSpot's does); search is limited to 5
//   requests a second and its answers carry no X-HubSpot-RateLimit-* header (only
//   X-HubSpot-Correlation-Id), as HubSpot documents
//   other endpoints: a rolling 10-second window (X-HubSpot-RateLimit-Max, -Remaining,
//   -Interval-Milliseconds, -Secondly, -Secondly-Remaining), 429 RATE_LIMIT when spent
//   POST /crm/v3/objects/contacts/batch/upsert: idProperty email, ≤ 100 inputs
//   errors: {status: "error", message, correlationId, category}
//   webhooks: a JSON array of events, X-HubSpot-Signature-v3 = base64 HMAC-SHA256 over
//   method + URI + body + X-HubSpot-Request-Timestamp (ms) under the app's client
//   secret (and the v1 signature beside it)

import crypto from 'node:crypto';
import { PlatformError, QueryCache, Store, storeCounts, clone, comparator, hmacBase64, isoMillisZ, parseDateTime,
	seedMoments, uuid } from './lib/common.mjs';

const DEFAULTS = {
	access_token: 'pat-na1-loopback-token',
	client_secret: 'hubspot_client_secret',
	portal_id: 62515,
	app_id: 54321,
	ten_second_max: 100,
	secondly_max: 10,
	search_per_second: 5,
	search_window_max: 10000,
	webhook_subscriptions: [],
};

const TYPES = {
	contacts: {
		first: 101,
		defaults: ['createdate', 'email', 'firstname', 'hs_object_id', 'lastmodifieddate', 'lastname'],
		modified: 'lastmodifieddate',
		searchable: ['email', 'firstname', 'lastname', 'phone', 'company'],
		singular: 'contact',
	},
	companies: {
		first: 5001,
		defaults: ['createdate', 'domain', 'hs_lastmodifieddate', 'hs_object_id', 'name'],
		modified: 'hs_lastmodifieddate',
		searchable: ['name', 'domain', 'website', 'phone'],
		singular: 'company',
	},
	deals: {
		first: 9001,
		defaults: ['amount', 'closedate', 'createdate', 'dealname', 'dealstage', 'hs_lastmodifieddate', 'hs_object_id', 'pipeline'],
		modified: 'hs_lastmodifieddate',
		searchable: ['dealname', 'amount'],
		singular: 'deal',
	},
};
const AUTO_PROPS = ['createdate', 'lastmodifieddate', 'hs_lastmodifieddate', 'hs_object_id'];
const DATE_PROPS = ['createdate', 'lastmodifieddate', 'hs_lastmodifieddate', 'closedate'];
const OPERATORS = ['EQ', 'NEQ', 'LT', 'LTE', 'GT', 'GTE', 'BETWEEN', 'IN', 'NOT_IN', 'HAS_PROPERTY', 'NOT_HAS_PROPERTY', 'CONTAINS_TOKEN', 'NOT_CONTAINS_TOKEN'];

function hsError(status, category, message, extra = {}) {
	return new PlatformError(status, { status: 'error', message, correlationId: uuid(), category, ...extra });
}

const validation = (message) => hsError(400, 'VALIDATION_ERROR', message);

// The URI as HubSpot's v3 validation guide has it signed: these percent-encodings decoded.
const V3_DECODE = { '%3A': ':', '%2F': '/', '%3F': '?', '%40': '@', '%21': '!', '%24': '$', '%27': "'", '%28': '(', '%29': ')', '%2A': '*', '%2C': ',', '%3B': ';' };
export function v3Uri(uri) {
	return uri.replace(/%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi, (m) => V3_DECODE[m.toUpperCase()]);
}

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const stores = Object.fromEntries(Object.entries(TYPES).map(([k, t]) => [k, new Store(t.first)]));
	const windows = { general: [], secondly: [], search: [] };
	let nextEventId = 1000;
	const searches = new QueryCache();

	// ---- records ---------------------------------------------------------------------

	function propsOf(type, row) {
		const p = { ...row.properties };
		p.createdate = isoMillisZ(row.created_ms);
		p[TYPES[type].modified] = isoMillisZ(row.updated_ms);
		p.hs_lastmodifieddate = isoMillisZ(row.updated_ms);
		if (type === 'contacts') p.lastmodifieddate = isoMillisZ(row.updated_ms);
		p.hs_object_id = String(row.id);
		return p;
	}

	function render(type, row, wanted) {
		const all = propsOf(type, row);
		const names = new Set([...TYPES[type].defaults, ...(wanted ?? [])]);
		const properties = {};
		for (const n of [...names].sort()) properties[n] = all[n] ?? null;
		return {
			id: String(row.id),
			properties,
			createdAt: isoMillisZ(row.created_ms),
			updatedAt: isoMillisZ(row.updated_ms),
			archived: false,
		};
	}

	function stringProps(props) {
		const out = {};
		for (const [k, v] of Object.entries(props ?? {})) {
			if (v === null || v === undefined) out[k] = '';
			else out[k] = String(v);
		}
		if (out.email !== undefined) out.email = out.email.toLowerCase();
		return out;
	}

	function add(type, props, createdMs, updatedMs, id) {
		return stores[type].insert({
			...(id !== undefined ? { id: Number(id) } : {}),
			properties: stringProps(props),
			created_ms: createdMs,
			updated_ms: updatedMs,
		});
	}

	// Sets properties; returns the names whose values changed.
	function setProps(row, props) {
		const changed = [];
		for (const [k, v] of Object.entries(stringProps(props))) {
			if (row.properties[k] !== v) {
				row.properties[k] = v;
				changed.push(k);
			}
		}
		if (changed.length) {
			row.updated_ms = rt.now();
			for (const st of Object.values(stores)) st.changed();
		}
		return changed;
	}

	// ---- rate limits ---------------------------------------------------------------------

	function admit(list, windowMs, max) {
		const now = Date.now();
		while (list.length && list[0] <= now - windowMs) list.shift();
		if (list.length >= max) return false;
		list.push(now);
		return true;
	}

	function rateLimited(policy, message) {
		return hsError(429, undefined, message, { errorType: 'RATE_LIMIT', policyName: policy, groupName: `api-calls:${config.app_id}` });
	}

	function generalHeaders() {
		const now = Date.now();
		const inWindow = windows.general.filter((t) => t > now - 10000).length;
		const inSecond = windows.secondly.filter((t) => t > now - 1000).length;
		return {
			'X-HubSpot-RateLimit-Interval-Milliseconds': '10000',
			'X-HubSpot-RateLimit-Max': String(config.ten_second_max),
			'X-HubSpot-RateLimit-Remaining': String(Math.max(0, config.ten_second_max - inWindow)),
			'X-HubSpot-RateLimit-Secondly': String(config.secondly_max),
			'X-HubSpot-RateLimit-Secondly-Remaining': String(Math.max(0, config.secondly_max - inSecond)),
		};
	}

	// ---- search ----------------------------------------------------------------------------

	function propValue(type, row, name) {
		return propsOf(type, row)[name];
	}

	// The value search compares: the moments kept on the row as ms, others parsed.
	function comparableProp(type, row, name) {
		if (name === 'createdate') return row.created_ms;
		if (name === 'lastmodifieddate' || name === 'hs_lastmodifieddate') return row.updated_ms;
		if (name === 'hs_object_id') return row.id;
		return asComparable(name, row.properties[name]);
	}

	function asComparable(name, v) {
		if (v === undefined || v === null) return v;
		if (DATE_PROPS.includes(name)) {
			if (/^-?\d+$/.test(String(v))) return Number(v);
			const ms = parseDateTime(String(v), 0);
			return Number.isNaN(ms) ? String(v) : ms;
		}
		const s = String(v);
		return s !== '' && !Number.isNaN(Number(s)) ? Number(s) : s.toLowerCase();
	}

	function filterMatches(type, row, f) {
		const auto = AUTO_PROPS.includes(f.propertyName);
		const raw = auto ? undefined : row.properties[f.propertyName];
		const has = auto || (raw !== undefined && raw !== null && raw !== '');
		const text = () => String(auto ? propValue(type, row, f.propertyName) : raw).toLowerCase();
		const a = comparableProp(type, row, f.propertyName);
		const v = asComparable(f.propertyName, f.value);
		switch (f.operator) {
		case 'HAS_PROPERTY': return has;
		case 'NOT_HAS_PROPERTY': return !has;
		case 'EQ': return has && a === v;
		case 'NEQ': return !has || a !== v;
		case 'LT': return has && a < v;
		case 'LTE': return has && a <= v;
		case 'GT': return has && a > v;
		case 'GTE': return has && a >= v;
		case 'BETWEEN': return has && a >= v && a <= asComparable(f.propertyName, f.highValue);
		case 'IN': return has && (f.values ?? []).map((x) => asComparable(f.propertyName, x)).includes(a);
		case 'NOT_IN': return !has || !(f.values ?? []).map((x) => asComparable(f.propertyName, x)).includes(a);
		case 'CONTAINS_TOKEN': return has && text().includes(String(f.value).replace(/\*/g, '').toLowerCase());
		case 'NOT_CONTAINS_TOKEN': return !has || !text().includes(String(f.value).replace(/\*/g, '').toLowerCase());
		default: return false;
		}
	}

	function search(type, body) {
		if (body === null || typeof body !== 'object' || Array.isArray(body)) throw validation('Invalid input JSON: the body must be a JSON object');
		const groups = body.filterGroups ?? [];
		if (!Array.isArray(groups)) throw validation('filterGroups must be an array');
		if (groups.length > 5) throw validation(`The maximum number of filterGroups is 5, but ${groups.length} were provided.`);
		let total = 0;
		for (const g of groups) {
			const fs = g?.filters ?? [];
			if (!Array.isArray(fs)) throw validation('filters must be an array');
			if (fs.length > 10) throw validation(`The maximum number of filters in a filterGroup is 10, but ${fs.length} were provided.`);
			total += fs.length;
			for (const f of fs) {
				if (!f || typeof f.propertyName !== 'string') throw validation('Each filter needs a propertyName');
				if (!OPERATORS.includes(f.operator)) throw validation(`Invalid operator ${f.operator}. Use one of ${OPERATORS.join(', ')}.`);
				if (['EQ', 'NEQ', 'LT', 'LTE', 'GT', 'GTE', 'BETWEEN', 'CONTAINS_TOKEN', 'NOT_CONTAINS_TOKEN'].includes(f.operator) && f.value === undefined) {
					throw validation(`Filter on ${f.propertyName} with operator ${f.operator} needs a value`);
				}
				if (f.operator === 'BETWEEN' && f.highValue === undefined) throw validation(`BETWEEN on ${f.propertyName} needs a highValue`);
				if (['IN', 'NOT_IN'].includes(f.operator) && !Array.isArray(f.values)) throw validation(`${f.operator} on ${f.propertyName} needs values`);
			}
		}
		if (total > 25) throw validation(`The maximum number of filters is 25, but ${total} were provided.`);
		const limit = body.limit ?? 10;
		if (!Number.isInteger(limit) || limit < 1 || limit > 200) {
			throw validation(`limit must be between 1 and 200, but was ${limit}.`);
		}
		let after = 0;
		if (body.after !== undefined && body.after !== null && body.after !== '') {
			if (!/^\d+$/.test(String(body.after))) throw validation(`Invalid after: ${body.after}`);
			after = Number(body.after);
		}
		if (after >= config.search_window_max) {
			throw validation(`The search window of ${config.search_window_max} results is exceeded: after=${after}. Narrow the query (for example by hs_object_id or by date) to see more results.`);
		}
		const sorts = body.sorts ?? [];
		if (!Array.isArray(sorts)) throw validation('sorts must be an array');
		if (sorts.length > 1) throw validation('Only one sort is allowed.');
		let sortKey = [(r) => r.id, 1];
		if (sorts.length === 1) {
			const s = sorts[0];
			const name = typeof s === 'string' ? s.replace(/^-/, '') : s.propertyName;
			const dir = typeof s === 'string' ? (s.startsWith('-') ? -1 : 1) : (s.direction === 'DESCENDING' ? -1 : 1);
			if (typeof s !== 'string' && s.direction !== undefined && !['ASCENDING', 'DESCENDING'].includes(s.direction)) {
				throw validation(`Invalid sort direction ${s.direction}. Use ASCENDING or DESCENDING.`);
			}
			sortKey = [(r) => comparableProp(type, r, name) ?? '', dir];
		}
		const rows = searches.get(JSON.stringify([type, stores[type].version, groups, sorts, body.query ?? null]), () => {
			let list = stores[type].all();
			if (groups.length) list = list.filter((r) => groups.some((g) => (g.filters ?? []).every((f) => filterMatches(type, r, f))));
			if (body.query) {
				const q = String(body.query).toLowerCase();
				list = list.filter((r) => TYPES[type].searchable.some((p) => (r.properties[p] ?? '').toLowerCase().includes(q)));
			}
			return list.sort(comparator([sortKey, [(r) => r.id, 1]]));
		});
		const end = Math.min(after + limit, rows.length, config.search_window_max);
		const page = rows.slice(after, end);
		const out = { total: rows.length, results: page.map((r) => render(type, r, body.properties)) };
		if (end < rows.length) out.paging = { next: { after: String(end) } };
		return out;
	}

	// ---- writes ----------------------------------------------------------------------------

	function emitChanges(type, row, created, changed) {
		const singular = TYPES[type].singular;
		if (created) rt.emit(`${singular}.creation`, { objectId: row.id, subscriptionType: `${singular}.creation` });
		else {
			for (const p of changed) {
				rt.emit(`${singular}.propertyChange`, { objectId: row.id, subscriptionType: `${singular}.propertyChange`, propertyName: p, propertyValue: row.properties[p] });
			}
		}
	}

	function batchUpsert(body) {
		const inputs = body?.inputs;
		if (!Array.isArray(inputs)) throw validation('Invalid input JSON: inputs must be an array');
		if (inputs.length === 0) throw validation('inputs must not be empty');
		if (inputs.length > 100) throw validation(`Batch input cannot contain more than 100 inputs, but ${inputs.length} were provided.`);
		const seen = new Set();
		const dups = new Set();
		for (const inp of inputs) {
			if (inp?.idProperty !== 'email') {
				throw validation(`${inp?.idProperty ?? 'idProperty'} is not a unique identifier property for contacts. Use idProperty email.`);
			}
			if (typeof inp.id !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(inp.id)) throw validation(`Email address ${inp.id} is invalid`);
			const id = inp.id.toLowerCase();
			if (seen.has(id)) dups.add(id);
			seen.add(id);
		}
		if (dups.size) throw validation(`Duplicate IDs found in batch input: [${[...dups].join(', ')}]. IDs must be unique`);
		const startedAt = new Date(rt.now()).toISOString();
		const results = inputs.map((inp) => {
			const email = inp.id.toLowerCase();
			let row = stores.contacts.all().find((r) => r.properties.email === email);
			const isNew = !row;
			let changed = [];
			if (isNew) {
				const ms = rt.now();
				row = add('contacts', { ...(inp.properties ?? {}), email }, ms, ms);
			} else {
				changed = setProps(row, inp.properties ?? {});
			}
			emitChanges('contacts', row, isNew, changed);
			return { ...render('contacts', row, Object.keys(inp.properties ?? {})), new: isNew };
		});
		return { status: 'COMPLETE', results, startedAt, completedAt: new Date(rt.now()).toISOString() };
	}

	function route(req, body) {
		const m = /^\/crm\/v3\/objects\/(contacts|companies|deals)(?:\/([^/]+))?(?:\/([^/]+))?\/?$/.exec(req.path);
		if (!m) throw hsError(404, 'OBJECT_NOT_FOUND', 'resource not found');
		const [, type, a, b] = m;
		const method = req.method;
		const wanted = (req.query.get('properties') ?? '').split(',').filter(Boolean);
		if (a === 'search' && !b && method === 'POST') return { status: 200, body: search(type, body), search: true };
		if (a === 'batch' && b === 'upsert' && method === 'POST') {
			if (type !== 'contacts') throw validation('This server implements batch upsert for contacts only.');
			return { status: 200, body: batchUpsert(body) };
		}
		if (!a && method === 'GET') {
			const limit = Number(req.query.get('limit') ?? 10);
			if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw validation(`limit must be between 1 and 100, but was ${req.query.get('limit')}.`);
			const after = Number(req.query.get('after') ?? 0);
			const rows = stores[type].all().sort((x, y) => x.id - y.id).filter((r) => r.id > after);
			const page = rows.slice(0, limit);
			const out = { results: page.map((r) => render(type, r, wanted)) };
			if (rows.length > limit) {
				const next = String(page.at(-1).id);
				out.paging = { next: { after: next, link: `${req.origin}${req.path}?after=${next}` } };
			}
			return { status: 200, body: out };
		}
		if (!a && method === 'POST') {
			const props = body?.properties;
			if (!props || typeof props !== 'object') throw validation('Invalid input JSON: properties is required');
			if (type === 'contacts' && props.email) {
				const existing = stores.contacts.all().find((r) => r.properties.email === String(props.email).toLowerCase());
				if (existing) throw hsError(409, 'CONFLICT', `Contact already exists. Existing ID: ${existing.id}`);
			}
			const ms = rt.now();
			const row = add(type, props, ms, ms);
			emitChanges(type, row, true, []);
			return { status: 201, body: render(type, row, Object.keys(props)) };
		}
		if (a && !b && /^\d+$/.test(a)) {
			const row = stores[type].get(a);
			if (!row) throw hsError(404, 'OBJECT_NOT_FOUND', 'resource not found');
			if (method === 'GET') return { status: 200, body: render(type, row, wanted) };
			if (method === 'PATCH') {
				const props = body?.properties;
				if (!props || typeof props !== 'object') throw validation('Invalid input JSON: properties is required');
				const changed = setProps(row, props);
				emitChanges(type, row, false, changed);
				return { status: 200, body: render(type, row, Object.keys(props)) };
			}
		}
		throw hsError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${req.path}`);
	}

	function reply(status, body, headers) {
		return {
			status,
			headers: { 'Content-Type': 'application/json;charset=utf-8', 'X-HubSpot-Correlation-Id': body?.correlationId ?? uuid(), ...headers },
			body: JSON.stringify(body),
		};
	}

	function handle(req) {
		const isSearch = /\/search\/?$/.test(req.path) && req.method === 'POST';
		try {
			const h = req.headers.authorization ?? '';
			const m = /^Bearer\s+(.+)$/i.exec(h);
			if (!m) {
				throw hsError(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview');
			}
			if (m[1].trim() !== config.access_token) {
				throw hsError(401, 'INVALID_AUTHENTICATION', 'The access token provided is invalid or has been revoked.');
			}
			if (isSearch) {
				if (!admit(windows.search, 1000, config.search_per_second)) throw rateLimited('SECONDLY', 'You have reached your secondly limit.');
			} else {
				if (!admit(windows.secondly, 1000, config.secondly_max)) throw rateLimited('SECONDLY', 'You have reached your secondly limit.');
				if (!admit(windows.general, 10000, config.ten_second_max)) {
					windows.secondly.pop();
					throw rateLimited('TEN_SECONDLY_ROLLING', 'You have reached your ten_secondly_rolling limit.');
				}
			}
			let body;
			if (['POST', 'PATCH', 'PUT'].includes(req.method)) {
				try {
					body = req.bodyText === '' ? undefined : JSON.parse(req.bodyText);
				} catch (e) {
					throw validation(`Invalid input JSON on line 1: ${e.message}`);
				}
			}
			const r = route(req, body);
			return reply(r.status, r.body, r.search ? {} : generalHeaders());
		} catch (e) {
			if (!(e instanceof PlatformError)) throw e;
			return reply(e.status, e.body, isSearch || e.status === 401 ? {} : generalHeaders());
		}
	}

	// ---- webhooks ----------------------------------------------------------------------------

	function sign(d, timestamp) {
		const uri = v3Uri(d.url);
		return {
			...d.headers,
			'X-HubSpot-Signature': crypto.createHash('sha256').update(d.secret + d.body).digest('hex'),
			'X-HubSpot-Signature-Version': 'v1',
			'X-HubSpot-Signature-v3': hmacBase64(d.secret, `POST${uri}${d.body}${timestamp}`),
			'X-HubSpot-Request-Timestamp': String(timestamp),
		};
	}

	function eventOf(e) {
		return {
			eventId: e.eventId ?? nextEventId++,
			subscriptionId: e.subscriptionId ?? 12345,
			portalId: config.portal_id,
			appId: config.app_id,
			occurredAt: e.occurredAt ?? rt.now(),
			subscriptionType: e.subscriptionType,
			attemptNumber: 0,
			objectId: Number(e.objectId),
			...(e.propertyName !== undefined ? { propertyName: e.propertyName, propertyValue: e.propertyValue } : {}),
			changeSource: e.changeSource ?? 'CRM',
			...(e.subscriptionType?.endsWith('.creation') ? { changeFlag: 'NEW' } : {}),
		};
	}

	// spec: {url, events: [{subscriptionType, objectId, propertyName, propertyValue}]} or one
	// event's fields directly; body (raw) overrides; secret; timestamp (ms)
	function buildWebhook(spec) {
		if (!spec.url) throw new Error('webhook: hubspot signs the target URL, so url is required');
		const list = spec.events ?? [spec];
		for (const e of list) if (!e.subscriptionType && spec.body === undefined) throw new Error('webhook: subscriptionType is required');
		const events = spec.body === undefined ? list.map(eventOf) : null;
		const body = spec.body ?? JSON.stringify(events);
		const d = {
			method: 'POST',
			url: spec.url,
			secret: spec.secret ?? config.client_secret,
			events,
			headers: { 'Content-Type': 'application/json', 'User-Agent': 'HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon-executor' },
			body,
		};
		d.headers = sign(d, spec.timestamp ?? rt.now());
		return d;
	}

	// A retry carries the same events with attemptNumber counted up, signed anew.
	function redeliver(d, n) {
		const body = d.events ? JSON.stringify(d.events.map((e) => ({ ...e, attemptNumber: n }))) : d.body;
		const next = { ...d, body, headers: { ...d.headers } };
		next.headers = sign(next, rt.now());
		return next;
	}

	// ---- control -----------------------------------------------------------------------------

	function control(op) {
		const type = op.resource;
		switch (op.op) {
		case 'seed': {
			if (!stores[type]) throw new Error(`seed: unknown resource ${type} (contacts, companies, deals)`);
			const out = [];
			if (op.records) {
				for (const r of op.records) {
					const u = parseDateTime(r.updated_at ?? new Date(rt.now()).toISOString(), 0);
					const c = r.created_at !== undefined ? parseDateTime(r.created_at, 0) : u;
					out.push(add(type, r.properties ?? {}, c, u, r.id));
				}
			} else {
				for (const ms of seedMoments(op, Date.UTC(2025, 0, 1))) {
					const n = stores[type].size + 1;
					const base = {
						contacts: { email: `contact${n}@example.com`, firstname: 'Contact', lastname: `${n}` },
						companies: { name: `Company ${n}`, domain: `company${n}.example.com` },
						deals: { dealname: `Deal ${n}`, amount: `${100 * n}`, dealstage: 'appointmentscheduled', pipeline: 'default' },
					}[type];
					out.push(add(type, { ...base, ...(op.fields ?? {}) }, ms, ms));
				}
			}
			return { count: out.length, ids: out.map((r) => String(r.id)), total: stores[type].size };
		}
		case 'update': {
			const row = stores[type]?.get(op.id);
			if (!row) throw new Error(`no ${type} ${op.id}`);
			Object.assign(row.properties, stringProps(op.fields ?? {}));
			stores[type].changed();
			row.updated_ms = op.updated_at !== undefined ? parseDateTime(op.updated_at, 0) : rt.now();
			return { record: render(type, row, Object.keys(row.properties)) };
		}
		case 'get': {
			const row = stores[type]?.get(op.id);
			return { record: row ? render(type, row, Object.keys(row.properties)) : null };
		}
		case 'list':
			if (!stores[type]) throw new Error(`unknown resource ${type}`);
			return { records: stores[type].all().map((r) => render(type, r, Object.keys(r.properties))) };
		default:
			return undefined;
		}
	}

	function faultResponse(f) {
		if (f.kind === '429') {
			return reply(429, { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', correlationId: uuid(), policyName: 'TEN_SECONDLY_ROLLING', groupName: `api-calls:${config.app_id}` },
				f.retry_after ? { 'Retry-After': f.retry_after } : {});
		}
		if (f.kind === '500') {
			return reply(500, { status: 'error', message: 'internal error', correlationId: uuid(), category: 'INTERNAL_ERROR' });
		}
		return undefined;
	}

	return {
		config,
		handle,
		control,
		buildWebhook,
		redeliver,
		faultResponse,
		state: () => ({ counts: storeCounts(stores) }),
	};
}
