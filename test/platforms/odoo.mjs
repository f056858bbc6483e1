// Odoo-style JSON-RPC (POST /jsonrpc, services common and object), written from Odoo's
// external API documentation and source (odoo/service/model.py execute_kw and its
// checks, odoo/http.py serialize_exception and the JSON-RPC error wrapper,
// osv/expression.py normalize_domain, the ORM's x2many commands) and the wire facts in
// ../../../shared/reference/connector-wire-details.md §8.
//
//   {"jsonrpc":"2.0","method":"call","params":{"service":"object","method":"execute_kw",
//    "args":[db, uid, api_key, model, method, args, kwargs]},"id":N}
//   a wrong db, uid or key: the error envelope with odoo.exceptions.AccessDenied
//   search_read(domain, fields, offset, limit, order) with Odoo's domain language
//   (prefix &, |, ! and implicit &); order "write_date asc, id asc"; rows that tie on
//   every ordering key come back in no particular order (shuffled per query), as
//   PostgreSQL's sort with LIMIT/OFFSET gives them
//   create / write / read / unlink / search / search_count for res.partner,
//   product.product, sale.order (order_line commands [0,0,{...}], [1,id,{...}],
//   [2,id,0], [4,id,0], [5,0,0], [6,0,[ids]]) and sale.order.line; sale.order
//   action_confirm
//   errors: HTTP 200 with {"jsonrpc":"2.0","id":..,"error":{"code":200,"message":"Odoo
//   Server Error","data":{"name":..,"debug":..,"message":..,"arguments":[..],"context":{}}}}
//   write_date and create_date: "YYYY-MM-DD HH:MM:SS" (UTC, naive), compared in domains
//   at full precision as PostgreSQL compares them

import crypto from 'node:crypto';
import { clone, odooDatetime, parseDateTime, seedMoments } from './lib/common.mjs';

const DEFAULTS = {
	db: 'odoo',
	login: 'admin',
	api_key: 'odoo_loopback_api_key',
	uid: 2,
	server_version: '17.0',
};

class OdooError extends Error {
	constructor(name, message, code = 200) {
		super(message);
		this.odooName = name;
		this.code = code;
	}
}

const userError = (m) => new OdooError('odoo.exceptions.UserError', m);
const valueError = (m) => new OdooError('builtins.ValueError', m);
const MANDATORY = 'The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.';

// Field types: char, text, bool, float, int, datetime, m2o:<model>, o2m:<model>:<inverse>,
// selection:[...]; required fields must be set on create; readonly ones are ignored on write.
const MODELS = {
	'res.partner': {
		description: 'Contact',
		order: [['name', 1], ['id', -1]],
		fields: {
			name: { type: 'char', required: true },
			email: { type: 'char' },
			phone: { type: 'char' },
			is_company: { type: 'bool' },
			active: { type: 'bool' },
			ref: { type: 'char' },
			street: { type: 'char' },
			city: { type: 'char' },
			zip: { type: 'char' },
		},
		display: (r) => r.name,
	},
	'product.product': {
		description: 'Product Variant',
		order: [['default_code', 1], ['name', 1], ['id', 1]],
		fields: {
			name: { type: 'char', required: true },
			default_code: { type: 'char' },
			list_price: { type: 'float' },
			active: { type: 'bool' },
			qty_available: { type: 'float', readonly: true },
		},
		display: (r) => (r.default_code ? `[${r.default_code}] ${r.name}` : r.name),
	},
	'sale.order': {
		description: 'Sales Order',
		order: [['date_order', -1], ['id', -1]],
		fields: {
			name: { type: 'char', readonly: true },
			partner_id: { type: 'm2o:res.partner', required: true },
			date_order: { type: 'datetime' },
			state: { type: 'selection', values: ['draft', 'sent', 'sale', 'cancel'] },
			client_order_ref: { type: 'char' },
			note: { type: 'text' },
			order_line: { type: 'o2m:sale.order.line:order_id' },
			amount_untaxed: { type: 'float', readonly: true },
			amount_total: { type: 'float', readonly: true },
		},
		display: (r) => r.name,
	},
	'sale.order.line': {
		description: 'Sales Order Line',
		order: [['order_id', 1], ['sequence', 1], ['id', 1]],
		fields: {
			order_id: { type: 'm2o:sale.order', required: true },
			product_id: { type: 'm2o:product.product', required: true },
			name: { type: 'text' },
			sequence: { type: 'int' },
			product_uom_qty: { type: 'float' },
			price_unit: { type: 'float' },
			price_subtotal: { type: 'float', readonly: true },
		},
		display: (r) => r.name,
	},
};
const MAGIC = { id: { type: 'int', readonly: true }, create_date: { type: 'datetime', readonly: true }, write_date: { type: 'datetime', readonly: true }, display_name: { type: 'char', readonly: true } };

// osv/expression.py normalize_domain: an implicit & between consecutive terms.
function normalizeDomain(domain) {
	if (!Array.isArray(domain)) throw valueError(`Invalid domain: ${JSON.stringify(domain)}`);
	const result = [];
	let expected = 1;
	const arity = { '!': 1, '&': 2, '|': 2 };
	for (const token of domain) {
		if (expected === 0) {
			result.unshift('&');
			expected = 1;
		}
		if (Array.isArray(token)) expected -= 1;
		else if (token in arity) expected += arity[token] - 1;
		else throw valueError(`Invalid leaf ${JSON.stringify(token)}`);
		result.push(token);
	}
	if (domain.length && expected !== 0) throw valueError(`This domain is syntactically not correct: ${JSON.stringify(domain)}`);
	return result;
}

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const tables = Object.fromEntries(Object.keys(MODELS).map((m) => [m, new Map()]));
	const nextIds = Object.fromEntries(Object.keys(MODELS).map((m) => [m, 1]));
	nextIds['res.partner'] = 7;
	let orderSeq = 1;

	const fieldDef = (model, name) => MODELS[model].fields[name] ?? MAGIC[name];

	function checkField(model, name) {
		if (!fieldDef(model, name)) throw valueError(`Invalid field '${name}' on model '${model}'`);
	}

	// ---- values ------------------------------------------------------------------------

	function displayName(model, id) {
		const r = tables[model].get(id);
		return r ? MODELS[model].display(r) : false;
	}

	function readValue(model, r, name) {
		if (name === 'id') return r.id;
		if (name === 'display_name') return MODELS[model].display(r) || false;
		if (name === 'create_date') return odooDatetime(r.create_ms);
		if (name === 'write_date') return odooDatetime(r.write_ms);
		const def = fieldDef(model, name);
		const v = r[name];
		if (def.type.startsWith('m2o:')) {
			const target = def.type.slice(4);
			return v ? [v, displayName(target, v)] : false;
		}
		if (def.type.startsWith('o2m:')) {
			const [, target, inverse] = def.type.split(':');
			return [...tables[target].values()].filter((x) => x[inverse] === r.id).sort((a, b) => a.id - b.id).map((x) => x.id);
		}
		if (def.type === 'datetime') return v ? odooDatetime(v) : false;
		if (def.type === 'float' || def.type === 'int') return v ?? 0;
		if (def.type === 'bool') return v ?? false;
		return v === undefined || v === null || v === '' ? false : v;
	}

	function comparableValue(model, r, name) {
		if (name === 'create_date') return r.create_ms;
		if (name === 'write_date') return r.write_ms;
		if (name === 'id') return r.id;
		const def = fieldDef(model, name);
		if (def.type.startsWith('m2o:')) return r[name] ?? null;
		if (def.type === 'datetime') return r[name] ?? null;
		const v = readValue(model, r, name);
		return v === false && def.type !== 'bool' ? null : v;
	}

	function literal(model, name, v) {
		const def = fieldDef(model, name);
		if (v === false || v === null) return null;
		if (def.type === 'datetime') {
			const ms = parseDateTime(String(v), 0);
			if (Number.isNaN(ms)) throw valueError(`time data '${v}' does not match format '%Y-%m-%d %H:%M:%S'`);
			return ms;
		}
		if (Array.isArray(v) && def.type.startsWith('m2o:')) return v[0];
		return v;
	}

	function likeMatch(actual, pattern, ci, anchored) {
		if (actual === null || actual === undefined || actual === false) return false;
		let p = String(pattern);
		let a = String(actual);
		if (ci) {
			p = p.toLowerCase();
			a = a.toLowerCase();
		}
		if (!anchored) return a.includes(p);
		const re = new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.')}$`, 's');
		return re.test(a);
	}

	function leafMatches(model, r, [name, op, value]) {
		if (typeof name !== 'string') throw valueError(`Invalid leaf ${JSON.stringify([name, op, value])}`);
		if (name.includes('.')) throw valueError(`This server does not follow related paths in domains: ${name}`);
		checkField(model, name);
		const a = comparableValue(model, r, name);
		switch (op) {
		case '=': case '==': {
			const v = literal(model, name, value);
			return v === null ? a === null || a === false : a === v;
		}
		case '!=': case '<>': {
			const v = literal(model, name, value);
			return v === null ? !(a === null || a === false) : a !== v;
		}
		case '<': return a !== null && a < literal(model, name, value);
		case '<=': return a !== null && a <= literal(model, name, value);
		case '>': return a !== null && a > literal(model, name, value);
		case '>=': return a !== null && a >= literal(model, name, value);
		case 'in': case 'not in': {
			if (!Array.isArray(value)) throw valueError(`The domain term '${JSON.stringify([name, op, value])}' should have a list value.`);
			const set = value.map((v) => literal(model, name, v));
			const found = set.includes(a) || (a === null && set.includes(null));
			return op === 'in' ? found : !found;
		}
		case 'like': return likeMatch(a, value, false, false);
		case 'ilike': return likeMatch(a, value, true, false);
		case 'not like': return !likeMatch(a, value, false, false);
		case 'not ilike': return !likeMatch(a, value, true, false);
		case '=like': return likeMatch(a, value, false, true);
		case '=ilike': return likeMatch(a, value, true, true);
		default:
			throw valueError(`Invalid leaf ${JSON.stringify([name, op, value])}`);
		}
	}

	function compileDomain(model, domain) {
		const tokens = normalizeDomain(domain ?? []);
		if (!tokens.length) return () => true;
		let i = 0;
		const parse = () => {
			const t = tokens[i++];
			if (t === '&' || t === '|') {
				const x = parse();
				const y = parse();
				return t === '&' ? (r) => x(r) && y(r) : (r) => x(r) || y(r);
			}
			if (t === '!') {
				const x = parse();
				return (r) => !x(r);
			}
			// validate the leaf once
			const [name] = t;
			if (typeof name === 'string' && !name.includes('.')) checkField(model, name);
			return (r) => leafMatches(model, r, t);
		};
		const fn = parse();
		return fn;
	}

	function parseOrder(model, order) {
		if (order === undefined || order === null || order === false || order === '') return MODELS[model].order;
		const out = [];
		for (const part of String(order).split(',')) {
			const m = /^\s*([a-z_][a-z0-9_]*)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*$/i.exec(part);
			if (!m || !fieldDef(model, m[1])) {
				throw valueError(`Invalid "order" specified (${order}). A valid "order" specification is a comma-separated list of valid field names (optionally followed by asc/desc for the direction)`);
			}
			out.push([m[1], (m[2] ?? 'asc').toLowerCase() === 'desc' ? -1 : 1]);
		}
		return out;
	}

	// Sorted by the order keys; rows equal on all of them in a random order (per query).
	function searchRows(model, domain, offset, limit, order) {
		const match = compileDomain(model, domain);
		const keys = parseOrder(model, order);
		const rows = [...tables[model].values()].filter((r) => r.active !== false || model === 'sale.order' || model === 'sale.order.line').filter(match);
		const shuffle = new Map(rows.map((r) => [r.id, crypto.randomInt(1 << 30)]));
		rows.sort((x, y) => {
			for (const [name, dir] of keys) {
				let a = comparableValue(model, x, name);
				let b = comparableValue(model, y, name);
				if (typeof a === 'string') a = a.toLowerCase();
				if (typeof b === 'string') b = b.toLowerCase();
				// PostgreSQL: NULLS LAST ascending, FIRST descending
				if (a === null && b !== null) return dir;
				if (b === null && a !== null) return -dir;
				if (a < b) return -dir;
				if (a > b) return dir;
			}
			return shuffle.get(x.id) - shuffle.get(y.id);
		});
		const start = offset ?? 0;
		return limit === undefined || limit === null || limit === false ? rows.slice(start) : rows.slice(start, start + limit);
	}

	function readRows(model, rows, fields) {
		const names = fields && fields.length ? fields : [...Object.keys(MODELS[model].fields), 'id', 'display_name', 'create_date', 'write_date'];
		for (const f of names) checkField(model, f);
		return rows.map((r) => {
			const out = { id: r.id };
			for (const f of names) out[f] = readValue(model, r, f);
			return out;
		});
	}

	// ---- writes --------------------------------------------------------------------------

	function recompute(model, r) {
		if (model === 'sale.order.line') {
			r.price_subtotal = Math.round((r.product_uom_qty ?? 0) * (r.price_unit ?? 0) * 100) / 100;
			const order = tables['sale.order'].get(r.order_id);
			if (order) recompute('sale.order', order);
		}
		if (model === 'sale.order') {
			const lines = [...tables['sale.order.line'].values()].filter((l) => l.order_id === r.id);
			r.amount_untaxed = Math.round(lines.reduce((s, l) => s + (l.price_subtotal ?? 0), 0) * 100) / 100;
			r.amount_total = r.amount_untaxed;
		}
	}

	function setValues(model, r, vals, creating, ms) {
		if (vals === null || typeof vals !== 'object' || Array.isArray(vals)) throw valueError(`Invalid values: ${JSON.stringify(vals)}`);
		const later = [];
		for (const [k, v] of Object.entries(vals)) {
			checkField(model, k);
			const def = fieldDef(model, k);
			if (def.readonly) continue;
			if (def.type.startsWith('m2o:')) {
				const target = def.type.slice(4);
				if (v === false || v === null) r[k] = null;
				else if (!Number.isInteger(v)) throw valueError(`Wrong value for ${model}.${k}: ${JSON.stringify(v)}`);
				else if (!tables[target].has(v)) {
					throw new OdooError('odoo.exceptions.ValidationError', `The operation cannot be completed: another model requires the record being deleted. If possible, archive it instead.\n\nModel: ${MODELS[model].description} (${model})\nConstraint: ${model.replace(/\./g, '_')}_${k}_fkey`);
				} else r[k] = v;
			} else if (def.type.startsWith('o2m:')) {
				later.push([def, v]);
			} else if (def.type === 'datetime') {
				r[k] = v === false || v === null ? null : literal(model, k, v);
			} else if (def.type === 'selection') {
				if (v !== false && !def.values.includes(v)) throw valueError(`Wrong value for ${model}.${k}: '${v}'`);
				r[k] = v === false ? null : v;
			} else if (def.type === 'float' || def.type === 'int') {
				if (v !== false && typeof v !== 'number') throw valueError(`Wrong value for ${model}.${k}: ${JSON.stringify(v)}`);
				r[k] = v === false ? 0 : v;
			} else if (def.type === 'bool') {
				r[k] = Boolean(v);
			} else {
				r[k] = v === false ? null : String(v);
			}
		}
		if (creating) {
			for (const [k, def] of Object.entries(MODELS[model].fields)) {
				if (def.required && (r[k] === undefined || r[k] === null || r[k] === '')) {
					const label = k.replace(/_id$/, '').replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
					throw new OdooError('odoo.exceptions.ValidationError', `${MANDATORY}\n\nModel: ${MODELS[model].description} (${model})\nField: ${label} (${k})`);
				}
			}
		}
		return later;
	}

	function applyCommands(model, r, def, commands, ms) {
		const [, target, inverse] = def.type.split(':');
		if (!Array.isArray(commands)) throw valueError(`Wrong value for ${model}.${def}: ${JSON.stringify(commands)}`);
		for (const c of commands) {
			if (!Array.isArray(c) || c.length < 1) throw valueError(`Invalid x2many command ${JSON.stringify(c)}`);
			const [op, id, vals] = c;
			const lines = () => [...tables[target].values()].filter((x) => x[inverse] === r.id);
			if (op === 0) createRecord(target, { ...vals, [inverse]: r.id }, ms);
			else if (op === 1) writeRecords(target, [id], vals, ms);
			else if (op === 2 || op === 3) tables[target].delete(id);
			else if (op === 4) writeRecords(target, [id], { [inverse]: r.id }, ms);
			else if (op === 5) for (const l of lines()) tables[target].delete(l.id);
			else if (op === 6) {
				for (const l of lines()) if (!vals.includes(l.id)) tables[target].delete(l.id);
				for (const lid of vals) writeRecords(target, [lid], { [inverse]: r.id }, ms);
			} else throw valueError(`Invalid x2many command ${JSON.stringify(c)}`);
		}
		recompute(model, r);
	}

	function createRecord(model, vals, ms) {
		const r = { id: nextIds[model], create_ms: ms, write_ms: ms };
		if (model === 'res.partner' || model === 'product.product') r.active = true;
		if (model === 'sale.order') {
			r.state = 'draft';
			r.date_order = ms;
		}
		if (model === 'sale.order.line') {
			const product = vals?.product_id ? tables['product.product'].get(vals.product_id) : undefined;
			r.product_uom_qty = 1;
			if (product) {
				r.price_unit = product.list_price ?? 0;
				r.name = MODELS['product.product'].display(product);
			}
			r.sequence = 10;
		}
		const later = setValues(model, r, vals, true, ms);
		nextIds[model]++;
		if (model === 'sale.order') r.name = `S${String(orderSeq++).padStart(5, '0')}`;
		tables[model].set(r.id, r);
		for (const [def, v] of later) applyCommands(model, r, def, v, ms);
		recompute(model, r);
		return r.id;
	}

	function writeRecords(model, ids, vals, ms) {
		const rows = ids.map((id) => tables[model].get(id));
		const missingIds = ids.filter((id, i) => !rows[i]);
		if (missingIds.length) {
			throw new OdooError('odoo.exceptions.MissingError', `Record does not exist or has been deleted.\n(Record: ${model}(${missingIds.join(', ')},), User: ${config.uid})`);
		}
		for (const r of rows) {
			const later = setValues(model, r, vals, false, ms);
			for (const [def, v] of later) applyCommands(model, r, def, v, ms);
			r.write_ms = ms;
			recompute(model, r);
			if (model === 'sale.order.line') {
				const order = tables['sale.order'].get(r.order_id);
				if (order) order.write_ms = ms;
			}
		}
		return true;
	}

	// ---- execute_kw ----------------------------------------------------------------------------

	function kw(args, kwargs, index, name, dflt) {
		if (kwargs && name in kwargs) return kwargs[name];
		if (args.length > index) return args[index];
		return dflt;
	}

	function ids(v) {
		const list = Array.isArray(v) ? v : [v];
		if (!list.every(Number.isInteger)) throw valueError(`Invalid ids: ${JSON.stringify(v)}`);
		return list;
	}

	function executeKw(model, method, args, kwargs) {
		if (!MODELS[model]) throw userError(`Object ${model} doesn't exist`);
		if (!Array.isArray(args)) throw valueError('args must be a list');
		if (kwargs !== undefined && (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs))) throw valueError('kwargs must be a dict');
		if (method.startsWith('_')) {
			throw new OdooError('odoo.exceptions.AccessError', `Private methods (such as ${model}.${method}) cannot be called remotely.`);
		}
		const ms = rt.now();
		switch (method) {
		case 'search_read': {
			const rows = searchRows(model, kw(args, kwargs, 0, 'domain', []), kw(args, kwargs, 2, 'offset', 0), kw(args, kwargs, 3, 'limit', null), kw(args, kwargs, 4, 'order', null));
			return readRows(model, rows, kw(args, kwargs, 1, 'fields', null));
		}
		case 'search':
			return searchRows(model, kw(args, kwargs, 0, 'domain', []), kw(args, kwargs, 1, 'offset', 0), kw(args, kwargs, 2, 'limit', null), kw(args, kwargs, 3, 'order', null)).map((r) => r.id);
		case 'search_count':
			return searchRows(model, kw(args, kwargs, 0, 'domain', []), 0, kw(args, kwargs, 1, 'limit', null), 'id').length;
		case 'read': {
			const list = ids(kw(args, kwargs, 0, 'ids', []));
			const rows = list.map((id) => tables[model].get(id)).filter(Boolean);
			return readRows(model, rows, kw(args, kwargs, 1, 'fields', null));
		}
		case 'create': {
			const vals = kw(args, kwargs, 0, 'vals_list', undefined);
			if (Array.isArray(vals)) return vals.map((v) => createRecord(model, v, ms));
			return createRecord(model, vals, ms);
		}
		case 'write':
			return writeRecords(model, ids(kw(args, kwargs, 0, 'ids', [])), kw(args, kwargs, 1, 'vals', {}), ms);
		case 'unlink':
			for (const id of ids(kw(args, kwargs, 0, 'ids', []))) tables[model].delete(id);
			return true;
		case 'action_confirm': {
			if (model !== 'sale.order') break;
			const list = ids(kw(args, kwargs, 0, 'ids', []));
			for (const id of list) {
				const r = tables[model].get(id);
				if (!r) throw new OdooError('odoo.exceptions.MissingError', `Record does not exist or has been deleted.\n(Record: ${model}(${id},), User: ${config.uid})`);
				if (!['draft', 'sent'].includes(r.state)) throw userError(`The following orders are not in a state requiring confirmation: ${r.name}`);
				r.state = 'sale';
				r.write_ms = ms;
			}
			return true;
		}
		case 'fields_get': {
			const out = {};
			for (const [k, d] of Object.entries({ ...MODELS[model].fields, ...MAGIC })) {
				out[k] = { type: d.type.split(':')[0].replace('m2o', 'many2one').replace('o2m', 'one2many').replace('bool', 'boolean').replace('int', 'integer'), required: Boolean(d.required), readonly: Boolean(d.readonly) };
			}
			return out;
		}
		default:
			break;
		}
		throw new OdooError('builtins.AttributeError', `The method '${method}' does not exist on the model '${model}'`);
	}

	function dispatch(params) {
		const { service, method, args } = params ?? {};
		if (!Array.isArray(args)) throw valueError('params.args must be a list');
		if (service === 'common') {
			if (method === 'version') {
				return { server_version: config.server_version, server_version_info: [...config.server_version.split('.').map(Number), 0, 'final', 0, ''], server_serie: config.server_version, protocol_version: 1 };
			}
			if (method === 'authenticate' || method === 'login') {
				const [db, login, password] = args;
				if (db !== config.db) throw noDatabase(db);
				return login === config.login && password === config.api_key ? config.uid : false;
			}
			throw new OdooError('builtins.NameError', `Method not available ${method}`);
		}
		if (service === 'db' && method === 'list') return [config.db];
		if (service !== 'object') throw new OdooError('builtins.Exception', `No such service ${service}`);
		if (method !== 'execute_kw' && method !== 'execute') throw new OdooError('builtins.NameError', `Method not available ${method}`);
		const [db, uid, password, model, m, a = [], k = {}] = args;
		if (db !== config.db) throw noDatabase(db);
		if (uid !== config.uid || password !== config.api_key) throw new OdooError('odoo.exceptions.AccessDenied', 'Access Denied');
		if (method === 'execute') return executeKw(model, m, args.slice(4), {});
		return executeKw(model, m, a, k);
	}

	function noDatabase(db) {
		return new OdooError('psycopg2.OperationalError', `connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: FATAL:  database "${db}" does not exist\n`);
	}

	function envelope(id, name, message, code = 200) {
		const cls = name.split('.').pop();
		return {
			jsonrpc: '2.0',
			id,
			error: {
				code,
				message: code === 404 ? '404: Not Found' : 'Odoo Server Error',
				data: {
					name,
					debug: `Traceback (most recent call last):\n  File "/usr/lib/python3/dist-packages/odoo/http.py", line 1770, in _serve_db\n    return service_model.retrying(self._serve_ir_http, self.env)\n${cls}: ${message}\n`,
					message,
					arguments: [message],
					context: {},
				},
			},
		};
	}

	function reply(obj) {
		return { status: 200, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj) };
	}

	function handle(req) {
		if (req.path !== '/jsonrpc' && req.path !== '/json/2' && !req.path.startsWith('/web/')) {
			return { status: 404, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: '<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n' };
		}
		if (req.path !== '/jsonrpc') {
			return reply(envelope(null, 'werkzeug.exceptions.NotFound', '404 Not Found: The requested URL was not found on the server.', 404));
		}
		if (req.method !== 'POST') {
			return { status: 405, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: '<!doctype html>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n' };
		}
		let msg;
		try {
			msg = JSON.parse(req.bodyText);
		} catch {
			return reply(envelope(null, 'werkzeug.exceptions.BadRequest', '400 Bad Request: Invalid JSON data'));
		}
		const id = msg?.id ?? null;
		try {
			if (msg?.jsonrpc !== '2.0' || typeof msg.params !== 'object') throw new OdooError('werkzeug.exceptions.BadRequest', '400 Bad Request: Invalid JSON-RPC data');
			const result = dispatch(msg.params);
			return reply({ jsonrpc: '2.0', id, result });
		} catch (e) {
			if (!(e instanceof OdooError)) throw e;
			return reply(envelope(id, e.odooName, e.message, e.code));
		}
	}

	// ---- control -------------------------------------------------------------------------------

	function render(model, r) {
		return readRows(model, [r], null)[0];
	}

	function control(op) {
		const model = op.resource;
		switch (op.op) {
		case 'seed': {
			if (!MODELS[model]) throw new Error(`seed: unknown model ${model} (${Object.keys(MODELS).join(', ')})`);
			const out = [];
			const one = (fields, ms) => {
				const n = nextIds[model];
				const base = {
					'res.partner': () => ({ name: `Partner ${n}`, email: `partner${n}@example.com` }),
					'product.product': () => ({ name: `Product ${n}`, default_code: `P${n}`, list_price: 10 + (n % 90) }),
					'sale.order': () => ({ partner_id: [...tables['res.partner'].keys()][0] ?? createRecord('res.partner', { name: 'Customer' }, ms) }),
					'sale.order.line': () => ({}),
				}[model]();
				return createRecord(model, { ...base, ...fields }, ms);
			};
			if (op.records) {
				for (const r of op.records) {
					const { write_date: w, create_date: c, ...fields } = r;
					const wm = parseDateTime(w ?? odooDatetime(rt.now()), 0);
					const id = one(fields, c !== undefined ? parseDateTime(c, 0) : wm);
					tables[model].get(id).write_ms = wm;
					out.push(id);
				}
			} else {
				for (const ms of seedMoments(op, Date.UTC(2025, 0, 1))) out.push(one(op.fields ?? {}, ms));
			}
			return { count: out.length, ids: out, total: tables[model].size };
		}
		case 'update': {
			const r = tables[model]?.get(op.id);
			if (!r) throw new Error(`no ${model} ${op.id}`);
			const ms = op.updated_at !== undefined ? parseDateTime(op.updated_at, 0) : rt.now();
			writeRecords(model, [r.id], op.fields ?? {}, ms);
			return { record: render(model, r) };
		}
		case 'get': {
			const r = tables[model]?.get(op.id);
			return { record: r ? render(model, r) : null };
		}
		case 'list':
			if (!tables[model]) throw new Error(`unknown model ${model}`);
			return { records: [...tables[model].values()].map((r) => render(model, r)) };
		default:
			return undefined;
		}
	}

	// serialization_failure: what Odoo answers when PostgreSQL's serialization failure
	// outlasts its own retries; the request changed nothing.
	function faultResponse(f, req) {
		if (f.kind !== 'serialization_failure') return undefined;
		let id = null;
		try {
			id = JSON.parse(req.bodyText)?.id ?? null;
		} catch {
			// no id
		}
		return reply(envelope(id, 'psycopg2.errors.SerializationFailure', 'could not serialize access due to concurrent update\n'));
	}

	return {
		config,
		handle,
		control,
		faultResponse,
		faultKinds: ['serialization_failure'],
		buildWebhook() {
			throw new Error('odoo sends no webhooks');
		},
		redeliver(d) {
			return d;
		},
		state: () => ({ counts: Object.fromEntries(Object.entries(tables).map(([k, t]) => [k, t.size])) }),
	};
}
