// WooCommerce REST API v3 (/wp-json/wc/v3/...), written from WooCommerce's source and
// documentation (class-wc-rest-authentication.php, class-wc-rest-crud-controller.php's
// get_collection_params / get_items / get_objects, class-wc-webhook.php's deliver and
// deliver_ping) and the wire facts in ../../../shared/reference/connector-wire-details.md §3.
//
//   auth: consumer_key/consumer_secret as query parameters, else HTTP Basic (WooCommerce
//   over HTTPS; this server is plain HTTP but accepts what the HTTPS path accepts, not
//   OAuth 1.0a).  An unknown key authenticates nobody (so the permission check answers
//   401 woocommerce_rest_cannot_view); a known key with a wrong secret is 401
//   woocommerce_rest_authentication_error "Consumer secret is invalid.".
//   collections: per_page 1..100 (else 400 rest_invalid_param), page, offset, orderby,
//   order, modified_after/before and after/before (exclusive, as WP_Date_Query's after
//   and before are; against the _gmt columns when dates_are_gmt=true, else the site's
//   local time), X-WP-Total, X-WP-TotalPages, Link rel="prev"/"next"; a page past the
//   end is an empty array with the totals (get_objects re-counts), not an error.
//   Customers are WordPress users: modified_after does not apply to them.
//   Errors: WP_Error JSON {code, message, data: {status}}.
//   Bodies are written as PHP's json_encode writes them ("\/", \uXXXX), and webhook
//   signatures are over those bytes: X-WC-Webhook-Signature = base64 HMAC-SHA256 under
//   the secret after wp_specialchars_decode; the ping is the form body webhook_id=N with
//   no X-WC-* header.

import crypto from 'node:crypto';
import { PlatformError, QueryCache, Store, storeCounts, clone, comparator, hmacBase64, localParts, parseDateTime,
	phpJsonEncode, seedMoments } from './lib/common.mjs';

const DEFAULTS = {
	consumer_key: 'ck_loopback_key',
	consumer_secret: 'cs_loopback_secret',
	key_permissions: 'read_write',
	webhook_secret: 'woo_webhook_secret',
	webhook_id: 1,
	gmt_offset_minutes: 0,
	wc_version: '9.4.2',
	wp_version: '6.6.2',
	wp_salt: 'loopback-nonce-salt',
	webhook_subscriptions: [],
};

const ORDER_STATUSES = ['pending', 'processing', 'on-hold', 'completed', 'cancelled', 'refunded', 'failed', 'checkout-draft'];
const POST_TYPES = { orders: 'shop_order', products: 'product', coupons: 'shop_coupon' };
const WC_DATE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}(?::\d{2})?)?$/;

function wpError(status, code, message, extra = {}) {
	return new PlatformError(status, { code, message, data: { status, ...extra } });
}

// rest_invalid_param as WP_REST_Request::has_valid_params reports it.
function invalidParam(param, reason, code) {
	return new PlatformError(400, {
		code: 'rest_invalid_param',
		message: `Invalid parameter(s): ${param}`,
		data: { status: 400, params: { [param]: reason }, details: { [param]: { code, message: reason, data: null } } },
	});
}

// wp_specialchars_decode($secret, ENT_QUOTES)
function specialcharsDecode(s) {
	return String(s).replace(/&(amp|lt|gt|quot|#0*39|#x0*27);/gi, (m, e) =>
		({ amp: '&', lt: '<', gt: '>', quot: '"' })[e.toLowerCase()] ?? "'");
}

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const stores = {
		orders: new Store(101),
		products: new Store(501),
		customers: new Store(2),
		coupons: new Store(901),
	};
	const listings = new QueryCache();
	const changed = () => Object.values(stores).forEach((st) => st.changed());

	const off = () => config.gmt_offset_minutes;
	const local = (ms) => (ms === null ? null : localParts(ms, off()));
	const gmt = (ms) => (ms === null ? null : localParts(ms, 0));
	const nowS = () => Math.floor(rt.now() / 1000) * 1000;
	const money = (n) => (Math.round(Number(n) * 100) / 100).toFixed(2);

	function dates(row) {
		return {
			date_created: local(row.created_ms),
			date_created_gmt: gmt(row.created_ms),
			date_modified: local(row.updated_ms),
			date_modified_gmt: gmt(row.updated_ms),
		};
	}

	function links(origin, res, id) {
		return {
			self: [{ href: `${origin}/wp-json/wc/v3/${res}/${id}` }],
			collection: [{ href: `${origin}/wp-json/wc/v3/${res}` }],
		};
	}

	const address = (a = {}) => ({
		first_name: a.first_name ?? '', last_name: a.last_name ?? '', company: a.company ?? '',
		address_1: a.address_1 ?? '', address_2: a.address_2 ?? '', city: a.city ?? '', state: a.state ?? '',
		postcode: a.postcode ?? '', country: a.country ?? '', ...(a.email !== undefined ? { email: a.email } : {}),
		...(a.phone !== undefined ? { phone: a.phone } : {}),
	});

	const render = {
		orders: (o, origin) => ({
			id: o.id,
			parent_id: 0,
			status: o.status,
			currency: 'EUR',
			version: config.wc_version,
			prices_include_tax: false,
			date_created: local(o.created_ms),
			date_modified: local(o.updated_ms),
			discount_total: '0.00',
			shipping_total: '0.00',
			total: o.total,
			total_tax: '0.00',
			customer_id: o.customer_id,
			order_key: o.order_key,
			billing: address({ ...o.billing, email: o.billing?.email ?? '', phone: o.billing?.phone ?? '' }),
			shipping: address(o.shipping),
			payment_method: 'bacs',
			payment_method_title: 'Direct bank transfer',
			transaction_id: '',
			customer_note: o.customer_note ?? '',
			date_created_gmt: gmt(o.created_ms),
			date_modified_gmt: gmt(o.updated_ms),
			date_completed: local(o.completed_ms),
			date_completed_gmt: gmt(o.completed_ms),
			date_paid: local(o.created_ms),
			date_paid_gmt: gmt(o.created_ms),
			line_items: o.line_items,
			meta_data: [],
			_links: links(origin, 'orders', o.id),
		}),
		products: (p, origin) => ({
			id: p.id,
			name: p.name,
			slug: p.slug,
			permalink: `${origin}/product/${p.slug}/`,
			...dates(p),
			type: 'simple',
			status: p.status,
			sku: p.sku,
			price: p.sale_price !== '' ? p.sale_price : p.regular_price,
			regular_price: p.regular_price,
			sale_price: p.sale_price,
			on_sale: p.sale_price !== '',
			manage_stock: p.manage_stock,
			stock_quantity: p.manage_stock ? p.stock_quantity : null,
			stock_status: p.manage_stock ? (p.stock_quantity > 0 ? 'instock' : 'outofstock') : p.stock_status,
			meta_data: [],
			_links: links(origin, 'products', p.id),
		}),
		customers: (c, origin) => ({
			id: c.id,
			...dates(c),
			email: c.email,
			first_name: c.first_name,
			last_name: c.last_name,
			role: 'customer',
			username: c.username,
			billing: address({ ...c.billing, email: c.billing?.email ?? '', phone: c.billing?.phone ?? '' }),
			shipping: address(c.shipping),
			is_paying_customer: false,
			avatar_url: '',
			meta_data: [],
			_links: links(origin, 'customers', c.id),
		}),
		coupons: (c, origin) => ({
			id: c.id,
			code: c.code,
			amount: c.amount,
			...dates(c),
			discount_type: c.discount_type,
			description: '',
			usage_count: 0,
			meta_data: [],
			_links: links(origin, 'coupons', c.id),
		}),
	};

	// ---- data ------------------------------------------------------------------------

	function addOrder(f, c, u) {
		const items = (f.line_items ?? [{ name: 'Item', quantity: 1, price: 10 }]).map((li, i) => {
			const product = li.product_id ? stores.products.get(li.product_id) : undefined;
			const qty = Number(li.quantity ?? 1);
			const price = Number(li.price ?? product?.regular_price ?? 10);
			return {
				id: i + 1,
				name: li.name ?? product?.name ?? 'Item',
				product_id: product?.id ?? li.product_id ?? 0,
				variation_id: 0,
				quantity: qty,
				subtotal: money(price * qty),
				total: money(price * qty),
				sku: product?.sku ?? '',
				price,
			};
		});
		const o = {
			created_ms: c,
			updated_ms: u,
			completed_ms: null,
			status: f.status ?? 'processing',
			customer_id: f.customer_id ?? 0,
			billing: f.billing ?? {},
			shipping: f.shipping ?? {},
			customer_note: f.customer_note ?? '',
			line_items: items,
			total: money(items.reduce((s, li) => s + li.price * li.quantity, 0)),
			order_key: `wc_order_${crypto.randomBytes(7).toString('base64url')}`,
		};
		if (f.id !== undefined) o.id = Number(f.id);
		return stores.orders.insert(o);
	}

	function addProduct(f, c, u) {
		const p = stores.products.insert({
			created_ms: c,
			updated_ms: u,
			name: f.name ?? 'Product',
			status: f.status ?? 'publish',
			sku: f.sku ?? '',
			regular_price: f.regular_price ?? '',
			sale_price: f.sale_price ?? '',
			manage_stock: f.manage_stock ?? false,
			stock_quantity: f.stock_quantity === undefined || f.stock_quantity === null ? null : Number(f.stock_quantity),
			stock_status: f.stock_status ?? 'instock',
			...(f.id !== undefined ? { id: Number(f.id) } : {}),
		});
		if (!p.manage_stock) p.stock_quantity = null;
		p.slug = f.slug ?? `${String(p.name).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}-${p.id}`;
		return p;
	}

	function addCustomer(f, c, u) {
		const row = stores.customers.insert({
			created_ms: c,
			updated_ms: u,
			email: f.email,
			first_name: f.first_name ?? '',
			last_name: f.last_name ?? '',
			billing: f.billing ?? {},
			shipping: f.shipping ?? {},
			...(f.id !== undefined ? { id: Number(f.id) } : {}),
		});
		row.username = f.username ?? String(f.email ?? `user${row.id}`).split('@')[0];
		return row;
	}

	function addCoupon(f, c, u) {
		return stores.coupons.insert({
			created_ms: c,
			updated_ms: u,
			code: f.code ?? `code${stores.coupons.nextId}`,
			amount: f.amount !== undefined ? money(f.amount) : '10.00',
			discount_type: f.discount_type ?? 'percent',
			...(f.id !== undefined ? { id: Number(f.id) } : {}),
		});
	}

	const adders = { orders: addOrder, products: addProduct, customers: addCustomer, coupons: addCoupon };

	// ---- auth --------------------------------------------------------------------------

	// Returns 'ok', 'anonymous' or throws the authentication error.
	function authenticate(req, writing) {
		let key = req.query.get('consumer_key');
		let secret = req.query.get('consumer_secret');
		if (!key || !secret) {
			const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
			if (m) {
				const text = Buffer.from(m[1], 'base64').toString('utf8');
				const i = text.indexOf(':');
				if (i >= 0) {
					key = text.slice(0, i);
					secret = text.slice(i + 1);
				}
			}
		}
		if (!key || !secret) return 'anonymous';
		if (key !== config.consumer_key) return 'anonymous';
		if (secret !== config.consumer_secret) {
			throw wpError(401, 'woocommerce_rest_authentication_error', 'Consumer secret is invalid.');
		}
		const perms = config.key_permissions;
		if (writing && perms === 'read') {
			throw wpError(401, 'woocommerce_rest_authentication_error', 'The API key provided does not have write permissions.');
		}
		if (!writing && perms === 'write') {
			throw wpError(401, 'woocommerce_rest_authentication_error', 'The API key provided does not have read permissions.');
		}
		return 'ok';
	}

	// ---- collections -----------------------------------------------------------------------

	function intParam(q, name, min, max) {
		if (!q.has(name)) return undefined;
		const raw = q.get(name);
		if (!/^-?\d+$/.test(raw)) throw invalidParam(name, `${name} is not of type integer.`, 'rest_invalid_type');
		const n = Number(raw);
		if (min !== undefined && max !== undefined && (n < min || n > max)) {
			throw invalidParam(name, `${name} must be between ${min} (inclusive) and ${max} (inclusive)`, 'rest_out_of_bounds');
		}
		if (min !== undefined && n < min) throw invalidParam(name, `${name} must be greater than or equal to ${min}`, 'rest_out_of_bounds');
		return n;
	}

	function enumParam(q, name, values, dflt) {
		if (!q.has(name)) return dflt;
		const v = q.get(name);
		if (!values.includes(v)) {
			const list = values.length > 1 ? `${values.slice(0, -1).join(', ')}, and ${values.at(-1)}` : values[0];
			throw invalidParam(name, `${name} is not one of ${list}.`, 'rest_not_in_enum');
		}
		return v;
	}

	function boolParam(q, name) {
		if (!q.has(name)) return false;
		const v = q.get(name).toLowerCase();
		if (['true', '1'].includes(v)) return true;
		if (['false', '0', ''].includes(v)) return false;
		throw invalidParam(name, `${name} is not of type boolean.`, 'rest_invalid_type');
	}

	// A date parameter as WP_Date_Query reads it: in the column's zone unless it names one.
	function dateParam(q, name, gmtColumn) {
		if (!q.has(name)) return undefined;
		const v = q.get(name);
		if (!WC_DATE.test(v)) throw invalidParam(name, 'Invalid date.', 'rest_invalid_date');
		return Math.floor(parseDateTime(v, gmtColumn ? 0 : off()) / 1000) * 1000;
	}

	function listItems(req, res) {
		const q = req.query;
		const perPage = intParam(q, 'per_page', 1, 100) ?? 10;
		const page = intParam(q, 'page', 1) ?? 1;
		const offset = intParam(q, 'offset');
		const order = enumParam(q, 'order', ['asc', 'desc'], res === 'customers' ? 'asc' : 'desc');
		const orderbys = res === 'customers' ? ['id', 'include', 'name', 'registered_date']
			: ['date', 'id', 'include', 'title', 'slug', 'modified'];
		const orderby = enumParam(q, 'orderby', orderbys, res === 'customers' ? 'name' : 'date');
		const include = (q.get('include') ?? '').split(',').filter(Boolean).map(Number);
		const exclude = (q.get('exclude') ?? '').split(',').filter(Boolean).map(Number);
		let bounds = {};
		if (res !== 'customers') {
			const useGmt = boolParam(q, 'dates_are_gmt');
			bounds = {
				after: dateParam(q, 'after', useGmt),
				before: dateParam(q, 'before', useGmt),
				modified_after: dateParam(q, 'modified_after', useGmt),
				modified_before: dateParam(q, 'modified_before', useGmt),
			};
		}
		let wanted = null;
		if (res === 'orders' && q.has('status')) {
			wanted = q.get('status').split(',');
			for (const s of wanted) enumParam(new URLSearchParams({ status: s }), 'status', ['any', 'trash', ...ORDER_STATUSES]);
			if (wanted.includes('any')) wanted = null;
		}
		const email = res === 'customers' ? q.get('email') : null;
		const queryKey = JSON.stringify([res, stores[res].version, bounds, wanted, email, include, exclude, orderby, order]);
		const rows = listings.get(queryKey, () => {
			const dir = order === 'asc' ? 1 : -1;
			const key = {
				date: (r) => r.created_ms,
				registered_date: (r) => r.created_ms,
				modified: (r) => r.updated_ms,
				id: (r) => r.id,
				title: (r) => r.name ?? r.code ?? '',
				slug: (r) => r.slug ?? r.code ?? '',
				name: (r) => `${r.first_name} ${r.last_name}`,
				include: (r) => include.indexOf(r.id),
			}[orderby];
			// WooCommerce appends ID to date and modified ("modified ID") for stable paging.
			return stores[res].all().filter((r) =>
				(bounds.after === undefined || r.created_ms > bounds.after) &&
				(bounds.before === undefined || r.created_ms < bounds.before) &&
				(bounds.modified_after === undefined || r.updated_ms > bounds.modified_after) &&
				(bounds.modified_before === undefined || r.updated_ms < bounds.modified_before) &&
				(wanted === null || wanted.includes(r.status)) &&
				(email === null || r.email === email) &&
				(!include.length || include.includes(r.id)) &&
				(!exclude.length || !exclude.includes(r.id)))
				.sort(comparator([[key, dir], [(r) => r.id, dir]]));
		});
		const total = rows.length;
		const start = offset !== undefined ? offset : (page - 1) * perPage;
		const pageRows = rows.slice(start, start + perPage);
		const maxPages = Math.ceil(total / perPage);

		const base = new URL(`${req.origin}/wp-json/wc/v3/${res}`);
		for (const [k, v] of q) base.searchParams.append(k, v);
		const withPage = (n) => {
			const u = new URL(base);
			u.searchParams.set('page', String(n));
			return u.toString();
		};
		const link = [];
		if (page > 1) link.push(`<${withPage(Math.min(page - 1, maxPages))}>; rel="prev"`);
		if (maxPages > page) link.push(`<${withPage(page + 1)}>; rel="next"`);
		const headers = { 'X-WP-Total': String(total), 'X-WP-TotalPages': String(maxPages) };
		if (link.length) headers.Link = link;
		return wpJson(200, pageRows.map((r) => render[res](r, req.origin)), headers);
	}

	// ---- writes ---------------------------------------------------------------------------

	function typeCheck(body, name, type) {
		if (!(name in body)) return;
		const v = body[name];
		const ok = {
			string: typeof v === 'string',
			integer: (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v)),
			boolean: typeof v === 'boolean' || ['true', 'false', '1', '0'].includes(String(v)),
			number: (typeof v === 'number') || (typeof v === 'string' && v !== '' && !Number.isNaN(Number(v))),
		}[type];
		if (!ok) throw invalidParam(name, `${name} is not of type ${type}.`, 'rest_invalid_type');
	}

	const asBool = (v) => v === true || ['true', '1'].includes(String(v));

	function writeProduct(p, b, creating) {
		for (const k of ['name', 'regular_price', 'sale_price', 'sku', 'status', 'stock_status']) typeCheck(b, k, 'string');
		typeCheck(b, 'stock_quantity', 'integer');
		typeCheck(b, 'manage_stock', 'boolean');
		if (b.status !== undefined) enumParam(new URLSearchParams({ status: b.status }), 'status', ['draft', 'pending', 'private', 'publish', 'future']);
		if (b.sku !== undefined && b.sku !== '' && stores.products.all().some((x) => x.sku === b.sku && x !== p)) {
			throw wpError(400, 'product_invalid_sku', 'Invalid or duplicated SKU.', { resource_id: p?.id ?? 0, unique_sku: `${b.sku}-1` });
		}
		if (creating) {
			const ms = nowS();
			p = addProduct({}, ms, ms);
		}
		for (const k of ['name', 'regular_price', 'sale_price', 'sku', 'status', 'stock_status']) if (k in b) p[k] = b[k];
		if ('manage_stock' in b) p.manage_stock = asBool(b.manage_stock);
		// WC_Product::set_stock_quantity is applied only while the product manages stock.
		if ('stock_quantity' in b && p.manage_stock) p.stock_quantity = b.stock_quantity === null ? null : Number(b.stock_quantity);
		if (!p.manage_stock) p.stock_quantity = null;
		p.updated_ms = nowS();
		return p;
	}

	function writeOrder(o, b, creating) {
		if (b.status !== undefined) enumParam(new URLSearchParams({ status: String(b.status) }), 'status', ORDER_STATUSES);
		typeCheck(b, 'customer_note', 'string');
		typeCheck(b, 'customer_id', 'integer');
		if (creating) {
			const ms = nowS();
			o = addOrder({ status: 'pending', line_items: b.line_items ?? [], customer_id: b.customer_id, billing: b.billing }, ms, ms);
		}
		if (b.status !== undefined && b.status !== o.status) {
			o.status = b.status;
			if (b.status === 'completed') o.completed_ms = nowS();
		}
		for (const k of ['customer_note', 'billing', 'shipping']) if (k in b) o[k] = b[k];
		if ('customer_id' in b) o.customer_id = Number(b.customer_id);
		o.updated_ms = nowS();
		return o;
	}

	function writeCustomer(c, b, creating) {
		for (const k of ['email', 'first_name', 'last_name', 'username']) typeCheck(b, k, 'string');
		if (b.email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(b.email)) {
			throw invalidParam('email', 'Invalid email address.', 'rest_invalid_email');
		}
		if (creating && !b.email) {
			throw new PlatformError(400, { code: 'rest_missing_callback_param', message: 'Missing parameter(s): email', data: { status: 400, params: ['email'] } });
		}
		if (b.email !== undefined && stores.customers.all().some((x) => x.email === b.email && x !== c)) {
			throw wpError(400, 'registration-error-email-exists', 'An account is already registered with your email address. <a href="#" class="showlogin">Please log in.</a>');
		}
		if (creating) {
			const ms = nowS();
			c = addCustomer({ email: b.email }, ms, ms);
		}
		for (const k of ['email', 'first_name', 'last_name', 'billing', 'shipping']) if (k in b) c[k] = b[k];
		c.updated_ms = nowS();
		return c;
	}

	function writeCoupon(c, b, creating) {
		typeCheck(b, 'code', 'string');
		typeCheck(b, 'amount', 'string');
		if (creating && !b.code) {
			throw new PlatformError(400, { code: 'rest_missing_callback_param', message: 'Missing parameter(s): code', data: { status: 400, params: ['code'] } });
		}
		if (creating) {
			const ms = nowS();
			c = addCoupon({ code: b.code }, ms, ms);
		}
		if ('code' in b) c.code = b.code;
		if ('amount' in b) c.amount = money(b.amount);
		if ('discount_type' in b) c.discount_type = b.discount_type;
		c.updated_ms = nowS();
		return c;
	}

	const writers = { orders: writeOrder, products: writeProduct, customers: writeCustomer, coupons: writeCoupon };
	const singular = { orders: 'order', products: 'product', customers: 'customer', coupons: 'coupon' };

	function wpJson(status, value, headers = {}) {
		return {
			status,
			headers: { 'Content-Type': 'application/json; charset=UTF-8', ...headers },
			body: phpJsonEncode(value),
		};
	}

	function invalidId(res, status) {
		if (res === 'customers') return wpError(status, 'woocommerce_rest_invalid_id', 'Invalid resource ID.');
		return wpError(status, `woocommerce_rest_${POST_TYPES[res]}_invalid_id`, 'Invalid ID.');
	}

	function route(req) {
		const m = /^\/wp-json\/wc\/v3\/(orders|products|customers|coupons)(?:\/(\d+))?\/?$/.exec(req.path);
		if (!m) throw wpError(404, 'rest_no_route', 'No route was found matching the URL and request method.');
		const [, res, idText] = m;
		const method = req.method;
		const writing = ['POST', 'PUT', 'PATCH'].includes(method);
		if (!['GET', 'HEAD', 'POST', 'PUT', 'PATCH'].includes(method) || (idText === undefined && ['PUT', 'PATCH'].includes(method))) {
			throw wpError(404, 'rest_no_route', 'No route was found matching the URL and request method.');
		}
		const who = authenticate(req, writing);
		let body = {};
		if (writing && req.bodyText.trim() !== '') {
			try {
				body = JSON.parse(req.bodyText);
			} catch {
				throw wpError(400, 'rest_invalid_json', 'Invalid JSON body passed.', { json_error_code: 4, json_error_message: 'Syntax error' });
			}
		}
		if (who !== 'ok') {
			if (!writing && idText === undefined) throw wpError(401, 'woocommerce_rest_cannot_view', 'Sorry, you cannot list resources.');
			if (!writing) throw wpError(401, 'woocommerce_rest_cannot_view', 'Sorry, you cannot view this resource.');
			if (idText === undefined) throw wpError(401, 'woocommerce_rest_cannot_create', 'Sorry, you are not allowed to create resources.');
			throw wpError(401, 'woocommerce_rest_cannot_edit', 'Sorry, you are not allowed to edit this resource.');
		}
		if (idText === undefined && !writing) return listItems(req, res);
		if (idText === undefined) {
			if (body.id) {
				throw wpError(400, `woocommerce_rest_${POST_TYPES[res] ?? 'customer'}_exists`, `Cannot create existing ${POST_TYPES[res] ?? 'customer'}.`);
			}
			const row = writers[res](null, body, true);
			changed();
			rt.emit(`${singular[res]}.created`, { id: row.id });
			return wpJson(201, render[res](row, req.origin), { Location: `${req.origin}/wp-json/wc/v3/${res}/${row.id}` });
		}
		const row = stores[res].get(idText);
		if (!writing) {
			if (!row) throw invalidId(res, 404);
			return wpJson(200, render[res](row, req.origin));
		}
		if (!row) throw invalidId(res, 400);
		writers[res](row, body, false);
		changed();
		rt.emit(`${singular[res]}.updated`, { id: row.id });
		return wpJson(200, render[res](row, req.origin));
	}

	function handle(req) {
		try {
			return route(req);
		} catch (e) {
			if (!(e instanceof PlatformError)) throw e;
			return wpJson(e.status, e.body, e.headers);
		}
	}

	// ---- webhooks -------------------------------------------------------------------------

	// wp_hash($id . strtotime('now')): the same for every delivery of one webhook within
	// one second, and different for a retry a second later.
	function deliveryId(webhookId) {
		const t = Math.floor(rt.now() / 1000);
		return crypto.createHmac('md5', config.wp_salt).update(`${webhookId}${t}`).digest('hex');
	}

	// spec: {topic: 'order.updated', id, update, payload, body, secret, webhook_id, ping}
	function buildWebhook(spec) {
		const ua = `WooCommerce/${config.wc_version} Hookshot (WordPress/${config.wp_version})`;
		const webhookId = spec.webhook_id ?? config.webhook_id;
		if (spec.ping) {
			return {
				method: 'POST',
				headers: { 'User-Agent': ua, 'Content-Type': 'application/x-www-form-urlencoded' },
				body: `webhook_id=${webhookId}`,
				webhook_id: webhookId,
				ping: true,
			};
		}
		const topic = spec.topic;
		if (!topic || !topic.includes('.')) throw new Error('webhook: topic like order.updated is required');
		const [resource, event] = topic.split('.');
		const res = `${resource}s`;
		if (spec.update) controlUpdate({ resource: res, id: spec.id, fields: spec.update, updated_at: spec.updated_at });
		let payload = spec.payload;
		if (payload === undefined && spec.body === undefined) {
			if (event === 'deleted') payload = { id: Number(spec.id) };
			else {
				const row = stores[res]?.get(spec.id);
				if (!row) throw new Error(`webhook: no ${res} ${spec.id}`);
				payload = render[res](row, spec.origin ?? rt.origin);
			}
		}
		const body = spec.body ?? phpJsonEncode(payload).trim();
		return {
			method: 'POST',
			headers: {
				'User-Agent': ua,
				'Content-Type': 'application/json',
				'X-WC-Webhook-Source': `${spec.origin ?? rt.origin}/`,
				'X-WC-Webhook-Topic': topic,
				'X-WC-Webhook-Resource': resource,
				'X-WC-Webhook-Event': event,
				'X-WC-Webhook-Signature': hmacBase64(specialcharsDecode(spec.secret ?? config.webhook_secret), body),
				'X-WC-Webhook-ID': String(webhookId),
				'X-WC-Webhook-Delivery-ID': deliveryId(webhookId),
			},
			body,
			webhook_id: webhookId,
		};
	}

	// A repeat of the same payload gets a fresh delivery id (WooCommerce makes it at send time).
	function redeliver(d) {
		if (d.ping) return { ...d };
		return { ...d, headers: { ...d.headers, 'X-WC-Webhook-Delivery-ID': deliveryId(d.webhook_id) } };
	}

	// ---- control ---------------------------------------------------------------------------

	function controlUpdate(op) {
		const store = stores[op.resource];
		if (!store) throw new Error(`unknown resource ${op.resource}`);
		const row = store.get(op.id);
		if (!row) throw new Error(`no ${op.resource} ${op.id}`);
		Object.assign(row, op.fields ?? {});
		changed();
		row.updated_ms = op.updated_at !== undefined ? Math.floor(parseDateTime(op.updated_at, 0) / 1000) * 1000 : nowS();
		return render[op.resource](row, rt.origin);
	}

	function control(op) {
		switch (op.op) {
		case 'seed': {
			const add = adders[op.resource];
			if (!add) throw new Error(`seed: unknown resource ${op.resource} (orders, products, customers, coupons)`);
			const out = [];
			const sec = (ms) => Math.floor(ms / 1000) * 1000;
			if (op.records) {
				for (const r of op.records) {
					const u = sec(parseDateTime(r.updated_at ?? new Date(rt.now()).toISOString(), 0));
					const c = r.created_at !== undefined ? sec(parseDateTime(r.created_at, 0)) : u;
					const { updated_at: _u, created_at: _c, ...fields } = r;
					out.push(add(fields, c, u));
				}
			} else {
				for (const ms of seedMoments(op, Date.UTC(2025, 0, 1))) {
					const n = stores[op.resource].size + 1;
					const base = {
						orders: { billing: { email: `buyer${n}@example.com` } },
						products: { name: `Product ${n}`, sku: `SKU-${n}`, regular_price: `${10 + (n % 90)}.00`, manage_stock: true, stock_quantity: 5 },
						customers: { email: `customer${n}@example.com`, first_name: 'Customer', last_name: `${n}` },
						coupons: { code: `coupon${n}` },
					}[op.resource];
					out.push(add({ ...base, ...(op.fields ?? {}) }, sec(ms), sec(ms)));
				}
			}
			return { count: out.length, ids: out.map((r) => r.id), total: stores[op.resource].size };
		}
		case 'update':
			return { record: controlUpdate(op) };
		case 'get': {
			const row = stores[op.resource]?.get(op.id);
			return { record: row ? render[op.resource](row, rt.origin) : null };
		}
		case 'list':
			if (!stores[op.resource]) throw new Error(`unknown resource ${op.resource}`);
			return { records: stores[op.resource].all().map((r) => render[op.resource](r, rt.origin)) };
		default:
			return undefined;
		}
	}

	function faultResponse(f) {
		if (f.kind === '500') {
			return wpJson(500, {
				code: 'internal_server_error',
				message: '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org/documentation/article/faq-troubleshooting/">Learn more about troubleshooting WordPress.</a></p>',
				data: { status: 500 },
				additional_errors: [],
			});
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
