// Shopify-compatible Admin REST API (the legacy REST surface the connectors pull from),
// written from Shopify's public documentation (shopify.dev admin-rest usage pages:
// versioning, pagination, rate limits; the orders, products, customers, inventory level,
// fulfillment order and fulfillment resources) and the wire facts collected in
// ../../../shared/reference/connector-wire-details.md §2.
//
//   /admin/api/<YYYY-MM>/<resource>.json   X-Shopify-Access-Token, else 401
//   leaky bucket per shop (40, leaking 2/s): X-Shopify-Shop-Api-Call-Limit: used/40,
//   429 + Retry-After when full
//   cursor pagination: Link <...?limit=N&page_info=T>; rel="previous", <...>; rel="next";
//   with page_info only limit and fields may be passed (else 400); a page_info that is
//   not exactly one this server issued is 400
//   webhooks: X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256 of the raw body under the app
//   secret, with X-Shopify-Topic, -Shop-Domain, -API-Version, -Webhook-Id, -Event-Id,
//   -Triggered-At
//
// Record moments are whole seconds, rendered in the shop's time zone with its offset
// (2025-01-01T00:00:00-05:00), as Shopify renders them.

import { PlatformError, QueryCache, Store, storeCounts, clone, firstIndex, hmacBase64, hmacHex, isoWithOffset, json,
	parseDateTime, parseJsonBody, pickFields, seedMoments, uuid } from './lib/common.mjs';

const DEFAULTS = {
	access_token: 'shpat_loopback_token',
	app_secret: 'shopify_app_secret',
	shop_domain: 'loopback-shop.myshopify.com',
	api_versions: ['2024-10', '2025-01', '2025-04', '2025-07', '2025-10'],
	timezone_offset_minutes: -300,
	bucket_size: 40,
	leak_per_second: 2,
	retry_after: '2.0',
	location_ids: [65544149101, 65544149102],
	webhook_subscriptions: [],
};

const PAGE_INFO_ONLY = ['limit', 'fields', 'page_info'];
const UNAUTHORIZED = '[API] Invalid API key or access token (unrecognized login or wrong password)';
const THROTTLED = 'Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.';

export function createPlatform(rt, overrides = {}) {
	const config = { ...clone(DEFAULTS), ...overrides };
	const stores = {
		orders: new Store(5000000000001),
		products: new Store(7000000000001),
		customers: new Store(6000000000001),
	};
	const variants = new Store(4000000000001);
	const lineItemIds = new Store(1000000000001);
	const fulfillmentOrders = new Store(3000000000001);
	const fulfillments = new Store(2500000000001);
	const inventory = new Map(); // "item:location" -> {available, updated_ms}
	let nextOrderNumber = 1001;
	const bucket = { level: 0, at: Date.now() };
	const listings = new QueryCache();
	const pageKey = `page_info:${config.shop_domain}`;

	const off = () => config.timezone_offset_minutes;
	const ts = (ms) => (ms === null || ms === undefined ? null : isoWithOffset(ms, off()));
	const nowS = () => Math.floor(rt.now() / 1000) * 1000;
	const gid = (kind, id) => `gid://shopify/${kind}/${id}`;

	// ---- rendering ---------------------------------------------------------------

	function renderVariant(v) {
		return {
			id: v.id,
			product_id: v.product_id,
			title: v.title,
			price: v.price,
			sku: v.sku,
			position: v.position,
			compare_at_price: v.compare_at_price ?? null,
			inventory_item_id: v.inventory_item_id,
			inventory_quantity: inventoryTotal(v.inventory_item_id),
			inventory_management: 'shopify',
			created_at: ts(v.created_ms),
			updated_at: ts(v.updated_ms),
			admin_graphql_api_id: gid('ProductVariant', v.id),
		};
	}

	const render = {
		orders: (o) => ({
			id: o.id,
			admin_graphql_api_id: gid('Order', o.id),
			name: `#${o.order_number}`,
			order_number: o.order_number,
			email: o.email,
			created_at: ts(o.created_ms),
			updated_at: ts(o.updated_ms),
			processed_at: ts(o.created_ms),
			closed_at: ts(o.closed_ms),
			cancelled_at: ts(o.cancelled_ms),
			cancel_reason: o.cancel_reason ?? null,
			currency: o.currency,
			financial_status: o.financial_status,
			fulfillment_status: o.fulfillment_status,
			total_price: o.total_price,
			subtotal_price: o.total_price,
			total_tax: '0.00',
			note: o.note ?? null,
			tags: o.tags ?? '',
			customer: o.customer ?? null,
			line_items: o.line_items.map((li) => ({ ...li })),
			fulfillments: o.fulfillment_ids.map((id) => renderFulfillment(fulfillments.get(id))),
		}),
		products: (p) => ({
			id: p.id,
			admin_graphql_api_id: gid('Product', p.id),
			title: p.title,
			body_html: p.body_html ?? '',
			vendor: p.vendor ?? 'Loopback',
			product_type: p.product_type ?? '',
			handle: p.handle,
			status: p.status,
			tags: p.tags ?? '',
			created_at: ts(p.created_ms),
			updated_at: ts(p.updated_ms),
			published_at: ts(p.created_ms),
			variants: p.variant_ids.map((id) => renderVariant(variants.get(id))),
			options: [{ name: 'Title', position: 1, values: ['Default Title'] }],
			images: [],
		}),
		customers: (c) => ({
			id: c.id,
			admin_graphql_api_id: gid('Customer', c.id),
			email: c.email ?? null,
			first_name: c.first_name ?? null,
			last_name: c.last_name ?? null,
			phone: c.phone ?? null,
			state: 'enabled',
			verified_email: true,
			tags: c.tags ?? '',
			currency: 'USD',
			created_at: ts(c.created_ms),
			updated_at: ts(c.updated_ms),
		}),
	};

	function renderFulfillment(f) {
		return {
			id: f.id,
			order_id: f.order_id,
			name: f.name,
			status: 'success',
			service: 'manual',
			location_id: f.location_id,
			tracking_company: f.tracking_company ?? null,
			tracking_number: f.tracking_numbers[0] ?? null,
			tracking_numbers: f.tracking_numbers,
			tracking_url: f.tracking_urls[0] ?? null,
			tracking_urls: f.tracking_urls,
			line_items: f.line_items,
			created_at: ts(f.created_ms),
			updated_at: ts(f.created_ms),
			admin_graphql_api_id: gid('Fulfillment', f.id),
		};
	}

	function renderFulfillmentOrder(fo) {
		return {
			id: fo.id,
			order_id: fo.order_id,
			assigned_location_id: fo.location_id,
			status: fo.status,
			request_status: 'unsubmitted',
			line_items: fo.line_items.map((l) => ({
				id: l.id,
				shop_id: 1,
				fulfillment_order_id: fo.id,
				line_item_id: l.line_item_id,
				inventory_item_id: l.inventory_item_id ?? null,
				quantity: l.quantity,
				fulfillable_quantity: l.quantity - l.fulfilled,
				variant_id: l.variant_id ?? null,
			})),
		};
	}

	function inventoryTotal(itemId) {
		let n = 0;
		for (const [k, v] of inventory) if (k.startsWith(`${itemId}:`)) n += v.available;
		return n;
	}

	// ---- data ----------------------------------------------------------------------

	function money(n) {
		return (Math.round(Number(n) * 100) / 100).toFixed(2);
	}

	function addOrder(fields, createdMs, updatedMs) {
		const order = {
			created_ms: createdMs,
			updated_ms: updatedMs,
			closed_ms: null,
			cancelled_ms: null,
			order_number: nextOrderNumber++,
			email: fields.email ?? null,
			currency: fields.currency ?? 'USD',
			financial_status: fields.financial_status ?? 'paid',
			fulfillment_status: null,
			note: fields.note ?? null,
			tags: fields.tags ?? '',
			customer: fields.customer ?? null,
			fulfillment_ids: [],
		};
		if (fields.id !== undefined) order.id = Number(fields.id);
		const items = fields.line_items ?? [{ title: `Item ${order.order_number}`, price: '10.00', quantity: 1 }];
		order.line_items = items.map((li) => {
			const variant = li.variant_id !== undefined ? variants.get(li.variant_id) : undefined;
			return {
				id: lineItemIds.insert({}).id,
				variant_id: variant?.id ?? li.variant_id ?? null,
				product_id: variant?.product_id ?? li.product_id ?? null,
				title: li.title ?? (variant ? stores.products.get(variant.product_id)?.title : 'Item'),
				quantity: Number(li.quantity ?? 1),
				price: money(li.price ?? variant?.price ?? '0'),
				sku: li.sku ?? variant?.sku ?? null,
				fulfillable_quantity: Number(li.quantity ?? 1),
			};
		});
		order.total_price = money(order.line_items.reduce((s, li) => s + Number(li.price) * li.quantity, 0));
		if (fields.closed_at) order.closed_ms = parseDateTime(fields.closed_at, off());
		stores.orders.insert(order);
		fulfillmentOrders.insert({
			order_id: order.id,
			location_id: config.location_ids[0],
			status: 'open',
			line_items: order.line_items.map((li) => ({
				id: lineItemIds.insert({}).id,
				line_item_id: li.id,
				variant_id: li.variant_id,
				inventory_item_id: li.variant_id ? variants.get(li.variant_id)?.inventory_item_id : null,
				quantity: li.quantity,
				fulfilled: 0,
			})),
		});
		return order;
	}

	function addProduct(fields, createdMs, updatedMs) {
		const product = {
			created_ms: createdMs,
			updated_ms: updatedMs,
			title: fields.title,
			body_html: fields.body_html ?? '',
			vendor: fields.vendor ?? 'Loopback',
			product_type: fields.product_type ?? '',
			status: fields.status ?? 'active',
			tags: fields.tags ?? '',
			variant_ids: [],
		};
		if (fields.id !== undefined) product.id = Number(fields.id);
		stores.products.insert(product);
		product.handle = fields.handle ?? `${String(product.title).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}-${product.id}`;
		const vs = fields.variants?.length ? fields.variants : [{}];
		vs.forEach((vf, i) => addVariant(product, vf, i + 1, createdMs));
		return product;
	}

	function addVariant(product, vf, position, ms) {
		const v = variants.insert({
			product_id: product.id,
			title: vf.title ?? 'Default Title',
			price: money(vf.price ?? '19.99'),
			compare_at_price: vf.compare_at_price ?? null,
			sku: vf.sku ?? `SKU-${product.id}-${position}`,
			position,
			created_ms: ms,
			updated_ms: ms,
		});
		v.inventory_item_id = v.id + 500000000000;
		inventory.set(`${v.inventory_item_id}:${config.location_ids[0]}`,
			{ available: Number(vf.inventory_quantity ?? 0), updated_ms: ms });
		product.variant_ids.push(v.id);
		return v;
	}

	function addCustomer(fields, createdMs, updatedMs) {
		const c = {
			created_ms: createdMs,
			updated_ms: updatedMs,
			email: fields.email ?? null,
			first_name: fields.first_name ?? null,
			last_name: fields.last_name ?? null,
			phone: fields.phone ?? null,
			tags: fields.tags ?? '',
		};
		if (fields.id !== undefined) c.id = Number(fields.id);
		return stores.customers.insert(c);
	}

	const adders = { orders: addOrder, products: addProduct, customers: addCustomer };

	function variantByInventoryItem(itemId) {
		return variants.all().find((v) => v.inventory_item_id === Number(itemId));
	}

	// ---- errors and auth -------------------------------------------------------------

	const notFound = () => new PlatformError(404, { errors: 'Not Found' });
	const missing = (param) => new PlatformError(400, { errors: { [param]: 'Required parameter missing or invalid' } });
	const invalid = (errors) => new PlatformError(422, { errors });

	function leak() {
		const now = Date.now();
		bucket.level = Math.max(0, bucket.level - ((now - bucket.at) / 1000) * config.leak_per_second);
		bucket.at = now;
	}

	function callLimit() {
		return `${Math.min(config.bucket_size, Math.ceil(bucket.level - 1e-9))}/${config.bucket_size}`;
	}

	function throttled(retryAfter) {
		return json(429, { errors: THROTTLED }, {
			'Retry-After': retryAfter ?? config.retry_after,
			'X-Shopify-Shop-Api-Call-Limit': `${config.bucket_size}/${config.bucket_size}`,
		});
	}

	// The version a request is served with: a release it names, the oldest supported for a
	// retired one (Shopify falls forward), none (404) for anything else.
	function resolveVersion(v) {
		const list = [...config.api_versions].sort();
		if (v === undefined) return list[0];
		if (list.includes(v)) return v;
		if (/^\d{4}-(01|04|07|10)$/.test(v) && v < list[0]) return list[0];
		return null;
	}

	// ---- pagination -------------------------------------------------------------------

	function encodePageInfo(payload) {
		const text = JSON.stringify(payload);
		const sig = hmacHex(pageKey, text).slice(0, 16);
		return Buffer.from(JSON.stringify({ ...payload, sig })).toString('base64url');
	}

	function decodePageInfo(token, resource) {
		if (!/^[A-Za-z0-9_-]+$/.test(token)) return null;
		try {
			const obj = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
			if (Buffer.from(JSON.stringify(obj)).toString('base64url') !== token) return null;
			const { sig, ...payload } = obj;
			if (sig !== hmacHex(pageKey, JSON.stringify(payload)).slice(0, 16)) return null;
			if (payload.resource !== resource) return null;
			return payload;
		} catch {
			return null;
		}
	}

	const SORTABLE = {
		orders: ['id', 'created_at', 'updated_at', 'processed_at'],
		products: ['id', 'created_at', 'updated_at', 'title'],
		customers: ['id', 'created_at', 'updated_at'],
	};

	function sortAccessor(field) {
		if (field === 'id') return (row) => row.id;
		if (field === 'title') return (row) => row.title;
		if (field === 'processed_at') return (row) => row.created_ms;
		const k = field.replace('_at', '_ms');
		return (row) => row[k];
	}

	function sortValue(row, field) {
		return sortAccessor(field)(row);
	}

	function parseFilters(resource, q) {
		const f = {};
		for (const k of ['updated_at_min', 'updated_at_max', 'created_at_min', 'created_at_max']) {
			if (q.has(k)) {
				const ms = parseDateTime(q.get(k), off());
				if (Number.isNaN(ms)) throw new PlatformError(400, { errors: { [k]: `${k} is invalid` } });
				f[k] = ms;
			}
		}
		if (q.has('since_id')) f.since_id = Number(q.get('since_id'));
		if (q.has('ids')) f.ids = q.get('ids').split(',').map(Number);
		if (resource === 'orders') {
			f.status = q.get('status') ?? 'open';
			for (const k of ['financial_status', 'fulfillment_status']) if (q.has(k)) f[k] = q.get(k);
		} else if (resource === 'products' && q.has('status')) {
			f.status = q.get('status');
		}
		let order = 'id asc';
		if (q.has('order')) {
			const [field, dir = 'asc'] = q.get('order').trim().split(/\s+/);
			if (SORTABLE[resource].includes(field) && ['asc', 'desc'].includes(dir.toLowerCase())) order = `${field} ${dir.toLowerCase()}`;
		}
		return { filters: f, order };
	}

	function applyFilters(resource, rows, f) {
		return rows.filter((r) => {
			if (f.updated_at_min !== undefined && r.updated_ms < f.updated_at_min) return false;
			if (f.updated_at_max !== undefined && r.updated_ms > f.updated_at_max) return false;
			if (f.created_at_min !== undefined && r.created_ms < f.created_at_min) return false;
			if (f.created_at_max !== undefined && r.created_ms > f.created_at_max) return false;
			if (f.since_id !== undefined && r.id <= f.since_id) return false;
			if (f.ids && !f.ids.includes(r.id)) return false;
			if (resource === 'orders') {
				if (f.status === 'open' && (r.closed_ms !== null || r.cancelled_ms !== null)) return false;
				if (f.status === 'closed' && r.closed_ms === null) return false;
				if (f.status === 'cancelled' && r.cancelled_ms === null) return false;
				if (f.financial_status && f.financial_status !== 'any' && r.financial_status !== f.financial_status) return false;
				if (f.fulfillment_status && f.fulfillment_status !== 'any') {
					const fs = r.fulfillment_status;
					if (f.fulfillment_status === 'shipped' && fs !== 'fulfilled') return false;
					if (f.fulfillment_status === 'unshipped' && fs !== null) return false;
					if (f.fulfillment_status === 'partial' && fs !== 'partial') return false;
				}
			}
			if (resource === 'products' && f.status && !f.status.split(',').includes(r.status)) return false;
			return true;
		});
	}

	function listResource(req, resource, version) {
		const q = req.query;
		let limit = 50;
		if (q.has('limit')) {
			limit = Number(q.get('limit'));
			if (!Number.isInteger(limit) || limit < 1 || limit > 250) {
				throw new PlatformError(400, { errors: { limit: 'limit must be an integer between 1 and 250' } });
			}
		}
		let state;
		if (q.has('page_info')) {
			for (const k of new Set(q.keys())) {
				if (!PAGE_INFO_ONLY.includes(k)) {
					throw new PlatformError(400, { errors: { [k]: `${k} cannot be passed when page_info is present. See https://shopify.dev/api/usage/pagination-rest for more information.` } });
				}
			}
			state = decodePageInfo(q.get('page_info'), resource);
			if (!state) throw new PlatformError(400, { errors: { page_info: 'Invalid value.' } });
		} else {
			const { filters, order } = parseFilters(resource, q);
			state = { resource, filters, order, direction: 'next', last_id: null, last_value: null };
		}
		const [field, dirWord] = state.order.split(' ');
		const dir = dirWord === 'desc' ? -1 : 1;
		const val = sortAccessor(field);
		const cmp = (a, b) => {
			const x = val(a);
			const y = val(b);
			if (x < y) return -dir;
			if (x > y) return dir;
			return (a.id - b.id) * dir;
		};
		const rows = listings.get(`${resource}|${stores[resource].version}|${state.order}|${JSON.stringify(state.filters)}`,
			() => applyFilters(resource, stores[resource].all(), state.filters).sort(cmp));
		const cursor = state.last_id === null ? null : { id: state.last_id, v: state.last_value };
		// A stand-in row that sorts where the cursor is.
		const cursorRow = (c) => {
			const row = { id: c.id };
			if (field === 'title') row.title = c.v;
			else if (field === 'processed_at') row.created_ms = c.v;
			else if (field !== 'id') row[field.replace('_at', '_ms')] = c.v;
			return row;
		};
		let page;
		let start;
		if (!cursor) {
			start = 0;
			page = rows.slice(0, limit);
		} else if (state.direction === 'next') {
			const c = cursorRow(cursor);
			start = firstIndex(rows, (r) => cmp(r, c) > 0);
			page = rows.slice(start, start + limit);
		} else {
			const c = cursorRow(cursor);
			const end = firstIndex(rows, (r) => cmp(r, c) >= 0);
			start = Math.max(0, end - limit);
			page = rows.slice(start, end);
		}
		const hasPrev = cursor !== null && start > 0;
		const hasNext = start + page.length < rows.length;
		const links = [];
		const base = `${req.origin}/admin/api/${version}/${resource}.json`;
		const fields = q.get('fields');
		const link = (row, direction) => {
			const token = encodePageInfo({
				resource,
				filters: state.filters,
				order: state.order,
				direction,
				last_id: row.id,
				last_value: sortValue(row, field),
			});
			return `${base}?limit=${limit}${fields ? `&fields=${encodeURIComponent(fields)}` : ''}&page_info=${token}`;
		};
		if (page.length && hasPrev) links.push(`<${link(page[0], 'prev')}>; rel="previous"`);
		if (page.length && hasNext) links.push(`<${link(page[page.length - 1], 'next')}>; rel="next"`);
		const body = { [resource]: page.map((r) => pickFields(render[resource](r), fields)) };
		return { body, headers: links.length ? { Link: links.join(', ') } : {} };
	}

	// ---- writes ------------------------------------------------------------------------

	function touch(row, ms) {
		row.updated_ms = ms ?? nowS();
		for (const st of Object.values(stores)) st.changed();
	}

	function root(body, name) {
		const v = body?.[name];
		if (v === null || typeof v !== 'object' || Array.isArray(v)) throw missing(name);
		return v;
	}

	function checkEmail(email) {
		if (email !== undefined && email !== null && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(String(email))) {
			throw invalid({ email: ['is invalid'] });
		}
	}

	function validPrice(p) {
		return p === undefined || /^\d+(\.\d+)?$/.test(String(p));
	}

	function updateOrder(order, u) {
		checkEmail(u.email);
		for (const k of ['email', 'note', 'tags']) if (k in u) order[k] = u[k];
		touch(order);
	}

	function createProduct(p) {
		if (!p.title || String(p.title).trim() === '') throw invalid({ title: ["can't be blank"] });
		if (p.status !== undefined && !['active', 'archived', 'draft'].includes(p.status)) {
			throw invalid({ status: ['is not included in the list'] });
		}
		for (const v of p.variants ?? []) if (!validPrice(v.price)) throw invalid({ 'variants.price': ['is not a number'] });
		const ms = nowS();
		return addProduct(p, ms, ms);
	}

	function updateProduct(product, p) {
		if ('title' in p && String(p.title ?? '').trim() === '') throw invalid({ title: ["can't be blank"] });
		if (p.status !== undefined && !['active', 'archived', 'draft'].includes(p.status)) {
			throw invalid({ status: ['is not included in the list'] });
		}
		for (const v of p.variants ?? []) {
			if (!validPrice(v.price)) throw invalid({ 'variants.price': ['is not a number'] });
			if (v.id !== undefined && !product.variant_ids.includes(Number(v.id))) throw notFound();
		}
		const ms = nowS();
		for (const k of ['title', 'body_html', 'vendor', 'product_type', 'status', 'tags']) if (k in p) product[k] = p[k];
		for (const vf of p.variants ?? []) {
			if (vf.id === undefined) addVariant(product, vf, product.variant_ids.length + 1, ms);
			else updateVariant(variants.get(vf.id), vf, ms);
		}
		touch(product, ms);
	}

	function updateVariant(v, vf, ms) {
		if ('price' in vf) v.price = money(vf.price);
		if ('compare_at_price' in vf) v.compare_at_price = vf.compare_at_price === null ? null : money(vf.compare_at_price);
		if ('sku' in vf) v.sku = vf.sku;
		v.updated_ms = ms;
	}

	function setInventory(body) {
		for (const k of ['location_id', 'inventory_item_id']) {
			if (body?.[k] === undefined || !/^\d+$/.test(String(body[k]))) throw missing(k);
		}
		if (body.available === undefined || body.available === null || !/^-?\d+$/.test(String(body.available))) throw missing('available');
		const item = Number(body.inventory_item_id);
		const loc = Number(body.location_id);
		const variant = variantByInventoryItem(item);
		if (!variant) throw invalid(['Inventory item does not exist']);
		if (!config.location_ids.includes(loc)) throw invalid(['Location does not exist']);
		const ms = nowS();
		const level = { available: Number(body.available), updated_ms: ms };
		inventory.set(`${item}:${loc}`, level);
		variant.updated_ms = ms;
		const product = stores.products.get(variant.product_id);
		touch(product, ms);
		rt.emit('inventory_levels/update', { inventory_item_id: item, location_id: loc });
		rt.emit('products/update', { id: product.id });
		return { inventory_level: renderLevel(item, loc) };
	}

	function renderLevel(item, loc) {
		const l = inventory.get(`${item}:${loc}`);
		return {
			inventory_item_id: item,
			location_id: loc,
			available: l.available,
			updated_at: ts(l.updated_ms),
			admin_graphql_api_id: `gid://shopify/InventoryLevel/${loc}?inventory_item_id=${item}`,
		};
	}

	function createFulfillment(body) {
		const f = root(body, 'fulfillment');
		const groups = f.line_items_by_fulfillment_order;
		if (!Array.isArray(groups) || groups.length === 0) throw missing('line_items_by_fulfillment_order');
		const plan = [];
		let orderId = null;
		for (const g of groups) {
			const fo = fulfillmentOrders.get(g.fulfillment_order_id);
			if (!fo) throw notFound();
			if (orderId !== null && fo.order_id !== orderId) throw invalid(['All fulfillment orders must belong to the same order.']);
			orderId = fo.order_id;
			if (fo.status !== 'open' && fo.status !== 'in_progress') {
				throw invalid([`Fulfillment order ${fo.id} has an unfulfillable status= ${fo.status}.`]);
			}
			const wanted = g.fulfillment_order_line_items ??
				fo.line_items.map((l) => ({ id: l.id, quantity: l.quantity - l.fulfilled }));
			for (const w of wanted) {
				const line = fo.line_items.find((l) => l.id === Number(w.id));
				if (!line) throw notFound();
				const qty = Number(w.quantity);
				if (!Number.isInteger(qty) || qty < 1 || qty > line.quantity - line.fulfilled) {
					throw invalid(['Invalid fulfillment order line item quantity requested.']);
				}
				plan.push({ fo, line, qty });
			}
		}
		const order = stores.orders.get(orderId);
		if (order.cancelled_ms !== null) throw invalid(['Cannot fulfill a cancelled order.']);
		const ms = nowS();
		const tracking = f.tracking_info ?? {};
		const numbers = tracking.number ? [String(tracking.number)] : (tracking.numbers ?? []).map(String);
		const urls = tracking.url ? [String(tracking.url)] : (tracking.urls ?? []).map(String);
		for (const p of plan) p.line.fulfilled += p.qty;
		for (const fo of new Set(plan.map((p) => p.fo))) {
			fo.status = fo.line_items.every((l) => l.fulfilled === l.quantity) ? 'closed' : 'in_progress';
		}
		const ful = fulfillments.insert({
			order_id: order.id,
			name: `#${order.order_number}.${order.fulfillment_ids.length + 1}`,
			location_id: plan[0].fo.location_id,
			tracking_company: tracking.company ?? null,
			tracking_numbers: numbers,
			tracking_urls: urls,
			created_ms: ms,
			line_items: plan.map((p) => {
				const li = order.line_items.find((x) => x.id === p.line.line_item_id);
				return { ...li, quantity: p.qty };
			}),
		});
		for (const li of order.line_items) {
			const done = plan.filter((p) => p.line.line_item_id === li.id).reduce((s, p) => s + p.qty, 0);
			li.fulfillable_quantity -= done;
		}
		order.fulfillment_ids.push(ful.id);
		order.fulfillment_status = order.line_items.every((li) => li.fulfillable_quantity === 0) ? 'fulfilled' : 'partial';
		touch(order, ms);
		if (order.fulfillment_status === 'fulfilled') rt.emit('orders/fulfilled', { id: order.id });
		rt.emit('orders/updated', { id: order.id });
		return json(201, { fulfillment: renderFulfillment(ful) });
	}

	// ---- routing ---------------------------------------------------------------------------

	function route(req, version, resourcePath) {
		const m = req.method;
		const parts = resourcePath.split('/');
		let body;
		if (['POST', 'PUT'].includes(m)) {
			try {
				body = parseJsonBody(req.bodyText) ?? {};
			} catch {
				throw new PlatformError(400, { errors: 'Bad Request: the body is not valid JSON' });
			}
		}
		const [res, id, action] = parts;
		if (res === 'shop' && parts.length === 1 && m === 'GET') {
			return json(200, { shop: { id: 1, name: 'Loopback Shop', domain: config.shop_domain, myshopify_domain: config.shop_domain, iana_timezone: 'America/New_York', currency: 'USD' } });
		}
		if (res === 'locations' && parts.length === 1 && m === 'GET') {
			return json(200, { locations: config.location_ids.map((lid, i) => ({ id: lid, name: i === 0 ? 'Main warehouse' : `Location ${i + 1}`, active: true })) });
		}
		if (stores[res]) {
			const store = stores[res];
			const singular = res.slice(0, -1);
			if (parts.length === 1 && m === 'GET') {
				const { body: b, headers } = listResource(req, res, version);
				return json(200, b, headers);
			}
			if (parts.length === 2 && id === 'count' && m === 'GET') {
				const { filters } = parseFilters(res, req.query);
				return json(200, { count: applyFilters(res, store.all(), filters).length });
			}
			if (parts.length === 1 && m === 'POST') {
				const fields = root(body, singular);
				let row;
				if (res === 'products') row = createProduct(fields);
				else if (res === 'customers') {
					checkEmail(fields.email);
					if (!fields.email && !fields.phone && !fields.first_name && !fields.last_name) {
						throw invalid({ customer: ['Customer must have a name, phone number or email address'] });
					}
					if (fields.email && store.all().some((c) => c.email === fields.email)) throw invalid({ email: ['has already been taken'] });
					const ms = nowS();
					row = addCustomer(fields, ms, ms);
				} else {
					if (!Array.isArray(fields.line_items) || fields.line_items.length === 0) {
						throw invalid({ line_items: ['must have at least one line item'] });
					}
					checkEmail(fields.email);
					const ms = nowS();
					row = addOrder(fields, ms, ms);
				}
				rt.emit(`${res}/create`, { id: row.id });
				return json(201, { [singular]: render[res](row) });
			}
			if (!/^\d+$/.test(id ?? '')) throw notFound();
			const row = store.get(id);
			if (!row) throw notFound();
			if (parts.length === 2 && m === 'GET') return json(200, { [singular]: pickFields(render[res](row), req.query.get('fields')) });
			if (parts.length === 2 && m === 'PUT') {
				const fields = root(body, singular);
				if (res === 'orders') updateOrder(row, fields);
				else if (res === 'products') updateProduct(row, fields);
				else {
					checkEmail(fields.email);
					if (fields.email && store.all().some((c) => c.email === fields.email && c.id !== row.id)) {
						throw invalid({ email: ['has already been taken'] });
					}
					for (const k of ['email', 'first_name', 'last_name', 'phone', 'tags']) if (k in fields) row[k] = fields[k];
					touch(row);
				}
				rt.emit(`${res}/${res === 'orders' ? 'updated' : 'update'}`, { id: row.id });
				return json(200, { [singular]: render[res](row) });
			}
			if (res === 'orders' && parts.length === 3 && m === 'POST' && ['close', 'open', 'cancel'].includes(action)) {
				if (action === 'close') row.closed_ms = row.closed_ms ?? nowS();
				if (action === 'open') row.closed_ms = null;
				if (action === 'cancel') {
					if (row.cancelled_ms !== null) throw invalid({ base: ['Order has already been cancelled'] });
					if (row.fulfillment_status === 'fulfilled') throw invalid({ base: ['Cannot cancel an order that has been fulfilled'] });
					row.cancelled_ms = nowS();
					row.cancel_reason = body.reason ?? 'other';
				}
				touch(row);
				if (action === 'cancel') rt.emit('orders/cancelled', { id: row.id });
				rt.emit('orders/updated', { id: row.id });
				return json(200, { order: render.orders(row) });
			}
			if (res === 'orders' && parts.length === 3 && m === 'GET' && action === 'fulfillment_orders') {
				return json(200, { fulfillment_orders: fulfillmentOrders.all().filter((fo) => fo.order_id === row.id).map(renderFulfillmentOrder) });
			}
			if (res === 'orders' && parts.length === 3 && m === 'GET' && action === 'fulfillments') {
				return json(200, { fulfillments: row.fulfillment_ids.map((fid) => renderFulfillment(fulfillments.get(fid))) });
			}
			throw notFound();
		}
		if (res === 'variants' && parts.length === 2 && /^\d+$/.test(id)) {
			const v = variants.get(id);
			if (!v) throw notFound();
			if (m === 'GET') return json(200, { variant: renderVariant(v) });
			if (m === 'PUT') {
				const vf = root(body, 'variant');
				if (!validPrice(vf.price)) throw invalid({ price: ['is not a number'] });
				const ms = nowS();
				updateVariant(v, vf, ms);
				touch(stores.products.get(v.product_id), ms);
				rt.emit('products/update', { id: v.product_id });
				return json(200, { variant: renderVariant(v) });
			}
		}
		if (res === 'inventory_levels' && parts.length === 2 && id === 'set' && m === 'POST') {
			return json(200, setInventory(body));
		}
		if (res === 'inventory_levels' && parts.length === 1 && m === 'GET') {
			const items = (req.query.get('inventory_item_ids') ?? '').split(',').filter(Boolean).map(Number);
			const locs = (req.query.get('location_ids') ?? '').split(',').filter(Boolean).map(Number);
			if (!items.length && !locs.length) throw new PlatformError(422, { errors: ['inventory_item_ids or location_ids is required'] });
			const levels = [];
			for (const k of inventory.keys()) {
				const [item, loc] = k.split(':').map(Number);
				if ((items.length && !items.includes(item)) || (locs.length && !locs.includes(loc))) continue;
				levels.push(renderLevel(item, loc));
			}
			return json(200, { inventory_levels: levels });
		}
		if (res === 'fulfillments' && parts.length === 1 && m === 'POST') return createFulfillment(body);
		throw notFound();
	}

	function handle(req) {
		let m = /^\/admin\/api\/([^/]+)\/(.+)\.json$/.exec(req.path);
		let requested;
		let resourcePath;
		if (m) [, requested, resourcePath] = m;
		else if ((m = /^\/admin\/(.+)\.json$/.exec(req.path))) resourcePath = m[1];
		else return json(404, { errors: 'Not Found' });
		const version = resolveVersion(requested);
		if (!version) return json(404, { errors: 'Not Found' });
		const token = req.headers['x-shopify-access-token'];
		if (token !== config.access_token) return json(401, { errors: UNAUTHORIZED });
		leak();
		if (bucket.level + 1 > config.bucket_size) return throttled();
		bucket.level += 1;
		const common = {
			'X-Shopify-Shop-Api-Call-Limit': callLimit(),
			'X-Shopify-API-Version': version,
			'X-Request-Id': uuid(),
		};
		try {
			const r = route(req, version, resourcePath);
			r.headers = { ...r.headers, ...common };
			return r;
		} catch (e) {
			if (!(e instanceof PlatformError)) throw e;
			return json(e.status, e.body, { ...e.headers, ...common });
		}
	}

	// ---- webhooks ----------------------------------------------------------------------

	// spec: {topic, id, update: {fields}, payload: {...}, body: 'raw', secret, api_version,
	// webhook_id, event_id, triggered_at}
	function buildWebhook(spec) {
		const topic = spec.topic;
		if (!topic) throw new Error('webhook: topic is required');
		const [res, verb] = topic.split('/');
		let payload = spec.payload;
		if (spec.update) controlUpdate({ resource: res, id: spec.id, fields: spec.update, updated_at: spec.updated_at });
		if (payload === undefined && spec.body === undefined) {
			if (verb === 'delete') payload = { id: Number(spec.id) };
			else if (res === 'inventory_levels') payload = renderLevel(spec.inventory_item_id, spec.location_id);
			else if (stores[res]) {
				const row = stores[res].get(spec.id);
				if (!row) throw new Error(`webhook: no ${res} ${spec.id}`);
				payload = render[res](row);
			} else payload = {};
		}
		const body = spec.body ?? JSON.stringify(payload);
		return {
			method: 'POST',
			headers: {
				'Content-Type': 'application/json',
				'User-Agent': 'Shopify-Captain-Hook',
				'X-Shopify-Topic': topic,
				'X-Shopify-Hmac-Sha256': hmacBase64(spec.secret ?? config.app_secret, body),
				'X-Shopify-Shop-Domain': config.shop_domain,
				'X-Shopify-API-Version': spec.api_version ?? [...config.api_versions].sort().at(-1),
				'X-Shopify-Webhook-Id': spec.webhook_id ?? uuid(),
				'X-Shopify-Event-Id': spec.event_id ?? uuid(),
				'X-Shopify-Triggered-At': spec.triggered_at ?? new Date(rt.now()).toISOString(),
			},
			body,
		};
	}

	// Shopify retries with the original payload and headers.
	function redeliver(d) {
		return { ...d, headers: { ...d.headers } };
	}

	// ---- control ---------------------------------------------------------------------------

	function controlUpdate(op) {
		const store = stores[op.resource];
		if (!store) throw new Error(`unknown resource ${op.resource}`);
		const row = store.get(op.id);
		if (!row) throw new Error(`no ${op.resource} ${op.id}`);
		const f = op.fields ?? {};
		if (op.resource === 'products') {
			const { variants: vs, ...rest } = f;
			Object.assign(row, rest);
			for (const vf of vs ?? []) updateVariant(variants.get(vf.id), vf, nowS());
		} else {
			for (const [k, v] of Object.entries(f)) {
				if (['closed_at', 'cancelled_at'].includes(k)) row[k.replace('_at', '_ms')] = v === null ? null : parseDateTime(v, off());
				else row[k] = v;
			}
		}
		touch(row, op.updated_at !== undefined ? parseDateTime(op.updated_at, off()) : undefined);
		return render[op.resource](row);
	}

	function control(op) {
		switch (op.op) {
		case 'seed': {
			const add = adders[op.resource];
			if (!add) throw new Error(`seed: unknown resource ${op.resource} (orders, products, customers)`);
			const out = [];
			if (op.records) {
				for (const r of op.records) {
					const u = parseDateTime(r.updated_at ?? new Date(rt.now()).toISOString(), off());
					const c = r.created_at !== undefined ? parseDateTime(r.created_at, off()) : u;
					out.push(add({ title: `Product`, ...r }, Math.floor(c / 1000) * 1000, Math.floor(u / 1000) * 1000));
				}
			} else {
				const moments = seedMoments(op, Date.UTC(2025, 0, 1));
				moments.forEach((ms, i) => {
					const n = stores[op.resource].size + 1;
					const base = op.resource === 'products' ? { title: `Product ${n}`, variants: [{ price: `${10 + (i % 90)}.00`, inventory_quantity: 5 }] }
						: op.resource === 'customers' ? { email: `customer${n}@example.com`, first_name: 'Customer', last_name: `${n}` }
							: { email: `buyer${n}@example.com` };
					const s = Math.floor(ms / 1000) * 1000;
					out.push(add({ ...base, ...(op.fields ?? {}) }, s, s));
				});
			}
			return { count: out.length, ids: out.map((r) => r.id), total: stores[op.resource].size };
		}
		case 'update':
			return { record: controlUpdate(op) };
		case 'get': {
			if (op.resource === 'inventory_levels') {
				const l = inventory.get(`${op.inventory_item_id}:${op.location_id}`);
				return { record: l ? renderLevel(op.inventory_item_id, op.location_id) : null };
			}
			const row = stores[op.resource]?.get(op.id);
			return { record: row ? render[op.resource](row) : null };
		}
		case 'list':
			if (!stores[op.resource]) throw new Error(`unknown resource ${op.resource}`);
			return { records: stores[op.resource].all().map(render[op.resource]) };
		default:
			return undefined;
		}
	}

	function faultResponse(f) {
		if (f.kind === '429') return throttled(f.retry_after);
		if (f.kind === '500') return json(500, { errors: 'Internal Server Error' }, f.retry_after ? { 'Retry-After': f.retry_after } : {});
		return undefined;
	}

	return {
		config,
		handle,
		control,
		buildWebhook,
		redeliver,
		faultResponse,
		state: () => ({ bucket: { level: Math.round(bucket.level * 100) / 100, size: config.bucket_size },
			counts: storeCounts(stores) }),
	};
}
