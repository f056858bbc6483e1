// An independent Shopify-compatible and WooCommerce store for checking the shopify and
// woocommerce connector kinds, written from the platforms' documentation and
// ../shared/reference/connector-wire-details.md §2, §3 (not from the extension's code):
//
//   Shopify  GET /admin/api/2025-01/{orders,customers,products}.json: X-Shopify-Access-Token;
//            updated_at_min inclusive, order=updated_at asc, limit <= 250, orders open
//            unless status=any; Link <...>; rel="previous", <...>; rel="next" with an
//            opaque page_info beside which only limit and fields may be sent (400
//            otherwise); a leaky bucket of 40 calls draining 2 a second, reported in
//            X-Shopify-Shop-Api-Call-Limit, 429 with Retry-After "2.0" when full.
//            POST inventory_levels/set.json, PUT variants/<id>.json, POST products.json,
//            POST orders/<id>/{close,open,cancel}.json, POST fulfillments.json.
//   WooCommerce  /wp-json/wc/v3: Basic ck:cs; per_page <= 100, page, orderby (date, id,
//            include, title, slug, modified: "modified ID"), order, modified_after and
//            modified_before exclusive, compared with date_modified_gmt when
//            dates_are_gmt=true, else with the site's local date_modified (site zone
//            +02:00); a value with a zone is converted to the site's zone first, as
//            WP_Date_Query does.  X-WP-Total, X-WP-TotalPages, Link rel="prev"/"next"
//            built from the request's own parameters plus page; a page past the end
//            empty, or (config past_end_400) 400 rest_post_invalid_page_number as
//            WordPress's posts controller answers it.  PUT products/<id>,
//            PUT orders/<id>, POST products.
//
// Control (no auth, for the test): POST /__ctl/{seed,update,fault,log,clear,get,bucket}.
// Listens on 127.0.0.1; prints the port on stdout; exits after argv[2] seconds (900).
import http from 'node:http';
import crypto from 'node:crypto';

const TOKEN = 'shpat_independent_0001';
const CK = 'ck_independent', CS = 'cs_independent';
const SITE_OFFSET_MIN = 120;   // the WordPress site's zone, +02:00
let port = 0;

const shop = { orders: new Map(), customers: new Map(), products: new Map(),
			   levels: new Map(), items: new Set([808950810]), locations: new Set([655441491]) };
const woo = { orders: new Map(), products: new Map(), customers: new Map() };
let log = [], faults = [], once = [], listCount = 0, nextId = 5000000000001, wooId = 100;
let config = { inclusive: false, link_minimal: false, past_end_400: false };
let bucket = { used: 0, at: Date.now(), size: 40, leak: 2 };

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
// Shopify renders times in the shop's zone (-05:00) with the offset.
const shopTime = (ms) => new Date(ms - 5 * 3600e3).toISOString().slice(0, 19) + '-05:00';
const wpGmt = (ms) => new Date(ms).toISOString().slice(0, 19);
const wpLocal = (ms) => new Date(ms + SITE_OFFSET_MIN * 60e3).toISOString().slice(0, 19);

function send(res, status, body, headers = {})
{
	const text = typeof body === 'string' ? body : JSON.stringify(body);
	res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
	res.end(text);
	return status;
}

function shopOrder(o)
{
	return { id: o.id, name: '#' + o.id, email: `c${o.id}@example.com`, note: o.note ?? null,
			 total_price: o.total_price ?? '10.00', currency: 'USD', closed_at: o.closed_at ?? null,
			 cancelled_at: null, financial_status: 'paid', created_at: shopTime(o.created),
			 updated_at: shopTime(o.updated), admin_graphql_api_id: `gid://shopify/Order/${o.id}` };
}

function leak()
{
	const now = Date.now();
	bucket.used = Math.max(0, bucket.used - (now - bucket.at) / 1000 * bucket.leak);
	bucket.at = now;
}

function pageToken(obj) { return Buffer.from(JSON.stringify(obj)).toString('base64url'); }

function shopify(req, res, url, body)
{
	const m = url.pathname.match(/^\/admin\/api\/(\d{4}-\d{2})\/(.+)\.json$/);
	if (!m) return send(res, 404, { errors: 'Not Found' });
	if (req.headers['x-shopify-access-token'] !== TOKEN)
		return send(res, 401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' });
	leak();
	if (bucket.used + 1 > bucket.size)
		return send(res, 429, { errors: 'Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.' },
			{ 'Retry-After': '2.0', 'X-Shopify-Shop-Api-Call-Limit': `${bucket.size}/${bucket.size}` });
	bucket.used += 1;
	const lim = { 'X-Shopify-Shop-Api-Call-Limit': `${Math.ceil(bucket.used)}/${bucket.size}`, 'X-Shopify-API-Version': m[1] };
	const path = m[2];
	const lm = path.match(/^(orders|customers|products)$/);
	if (lm && req.method === 'GET')
	{
		listCount++;
		const f = faults.find((x) => x.nth === listCount);
		if (f && f.status === 'hang') return 'hang';
		if (f && f.status === 429) return send(res, 429, { errors: 'Exceeded 2 calls per second for api client.' }, { 'Retry-After': '1.0', ...lim });
		if (f) return send(res, f.status, { errors: 'Internal Server Error' }, lim);
		const q = url.searchParams;
		const limit = Number(q.get('limit') ?? 50);
		if (!(limit >= 1 && limit <= 250)) return send(res, 400, { errors: { limit: 'Limit must be between 1 and 250' } }, lim);
		let filt;
		if (q.has('page_info'))
		{
			for (const k of q.keys())
				if (!['page_info', 'limit', 'fields'].includes(k))
					return send(res, 400, { errors: { [k]: `${k} cannot be passed when page_info is present. See https://shopify.dev/api/usage/pagination-rest for more information.` } }, lim);
			try { filt = JSON.parse(Buffer.from(q.get('page_info'), 'base64url').toString()); }
			catch { return send(res, 400, { errors: { page_info: 'Invalid value.' } }, lim); }
			if (pageToken(filt) !== q.get('page_info') || filt.r !== lm[1])
				return send(res, 400, { errors: { page_info: 'Invalid value.' } }, lim);
		}
		else
		{
			if (q.has('order') && q.get('order') !== 'updated_at asc')
				return send(res, 400, { errors: { order: 'unsupported in this store' } }, lim);
			filt = { r: lm[1], min: q.has('updated_at_min') ? Date.parse(q.get('updated_at_min')) : null,
					 status: q.get('status') ?? 'open', dir: 'next' };
			if (q.has('updated_at_min') && Number.isNaN(filt.min))
				return send(res, 400, { errors: { updated_at_min: 'Invalid date' } }, lim);
		}
		let all = [...shop[lm[1]].values()]
			.filter((o) => filt.min == null || Math.floor(o.updated / 1000) * 1000 >= filt.min)
			.filter((o) => lm[1] !== 'orders' || filt.status === 'any' || !o.closed_at)
			.sort((a, b) => a.updated - b.updated || a.id - b.id);
		const key = (o) => [Math.floor(o.updated / 1000), o.id];
		const after = (o, k) => key(o)[0] > k[0] || (key(o)[0] === k[0] && o.id > k[1]);
		let start = 0;
		if (filt.last) start = all.findIndex((o) => after(o, filt.last)), start = start < 0 ? all.length : start;
		const page = all.slice(start, start + limit);
		const links = [];
		const base = `http://127.0.0.1:${port}/admin/api/${m[1]}/${lm[1]}.json`;
		if (filt.last && page.length)
			links.push(`<${base}?limit=${limit}&page_info=${pageToken({ ...filt, last: null, before: key(page[0]), dir: 'prev' })}>; rel="previous"`);
		if (start + limit < all.length)
			links.push(`<${base}?limit=${limit}&page_info=${pageToken({ ...filt, last: key(page[page.length - 1]), dir: 'next' })}>; rel="next"`);
		const out = lm[1] === 'orders' ? page.map(shopOrder)
			: page.map((o) => ({ id: o.id, title: o.title ?? `p${o.id}`, email: o.email, updated_at: shopTime(o.updated), created_at: shopTime(o.created) }));
		return send(res, 200, { [lm[1]]: out }, links.length ? { Link: links.join(', '), ...lim } : lim);
	}
	const ct = req.headers['content-type'] ?? '';
	let j = null;
	if (req.method !== 'GET')
	{
		if (!ct.startsWith('application/json')) return send(res, 415, { errors: 'Unsupported Media Type' }, lim);
		try { j = JSON.parse(body); } catch { return send(res, 400, { errors: 'bad json' }, lim); }
	}
	if (path === 'shop' && req.method === 'GET') return send(res, 200, { shop: { id: 1, name: 'independent' } }, lim);
	if (path === 'inventory_levels/set' && req.method === 'POST')
	{
		if (typeof j.inventory_item_id !== 'number' || typeof j.location_id !== 'number' || typeof j.available !== 'number')
			return send(res, 400, { errors: { inventory_item_id: 'Required parameter missing or invalid' } }, lim);
		if (!shop.items.has(j.inventory_item_id)) return send(res, 422, { errors: ['Inventory item does not exist'] }, lim);
		if (!shop.locations.has(j.location_id)) return send(res, 404, { errors: 'Not Found' }, lim);
		const lvl = { inventory_item_id: j.inventory_item_id, location_id: j.location_id, available: j.available, updated_at: shopTime(Date.now()) };
		shop.levels.set(`${j.inventory_item_id}:${j.location_id}`, lvl);
		return send(res, 200, { inventory_level: lvl }, lim);
	}
	let mm;
	if ((mm = path.match(/^variants\/(\d+)$/)) && req.method === 'PUT')
	{
		if (mm[1] !== '39072856') return send(res, 404, { errors: 'Not Found' }, lim);
		if (!j.variant || (j.variant.price !== undefined && Number.isNaN(Number(j.variant.price))))
			return send(res, 422, { errors: { price: ['is not a number'] } }, lim);
		return send(res, 200, { variant: { id: 39072856, price: String(j.variant.price) } }, lim);
	}
	if (path === 'products' && req.method === 'POST')
	{
		if (!j.product || !j.product.title) return send(res, 422, { errors: { title: ["can't be blank"] } }, lim);
		const id = nextId++;
		shop.products.set(id, { id, title: j.product.title, created: Date.now(), updated: Date.now() });
		return send(res, 201, { product: { id, title: j.product.title } }, lim);
	}
	if ((mm = path.match(/^orders\/(\d+)\/(close|open|cancel)$/)) && req.method === 'POST')
	{
		const o = shop.orders.get(Number(mm[1]));
		if (!o) return send(res, 404, { errors: 'Not Found' }, lim);
		o.closed_at = mm[2] === 'open' ? null : shopTime(Date.now());
		o.updated = Date.now();
		return send(res, 200, { order: shopOrder(o) }, lim);
	}
	if (path === 'fulfillments' && req.method === 'POST')
	{
		const f = j.fulfillment;
		if (!f || !Array.isArray(f.line_items_by_fulfillment_order))
			return send(res, 422, { errors: ['line_items_by_fulfillment_order is required'] }, lim);
		return send(res, 201, { fulfillment: { id: 255858046, status: 'success' } }, lim);
	}
	return send(res, 404, { errors: 'Not Found' }, lim);
}

function wooRecord(kind, o)
{
	const r = { id: o.id, date_created: wpLocal(o.created), date_created_gmt: wpGmt(o.created),
				date_modified: wpLocal(o.updated), date_modified_gmt: wpGmt(o.updated),
				_links: { self: [{ href: `http://127.0.0.1:${port}/wp-json/wc/v3/${kind}/${o.id}` }] } };
	if (kind === 'orders') Object.assign(r, { status: o.status ?? 'processing', total: '10.00', customer_note: o.note ?? '' });
	if (kind === 'products') Object.assign(r, { name: o.name ?? `P${o.id}`, regular_price: o.regular_price ?? '1.00',
												stock_quantity: o.stock_quantity ?? null, manage_stock: true });
	if (kind === 'customers') Object.assign(r, { email: `c${o.id}@example.com` });
	return r;
}

const wpErr = (res, status, code, message) => send(res, status, { code, message, data: { status } });

// WP_Date_Query's reading of a date: a value without a zone is the column's own time;
// one with a zone is converted to the site's zone (build_mysql_datetime).
function wpDate(v)
{
	const mm = String(v).match(/^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)?$/);
	if (!mm) return NaN;
	const wall = Date.parse(`${mm[1]}T${mm[2]}Z`);   // as written
	if (!mm[3]) return wall;                          // compared with the column as is
	const abs = Date.parse(`${mm[1]}T${mm[2]}${mm[3] === 'Z' ? 'Z' : mm[3]}`);
	return abs + SITE_OFFSET_MIN * 60e3;              // the site's wall clock, compared with the column as is
}

function woocommerce(req, res, url, body)
{
	const auth = (req.headers.authorization ?? '').match(/^Basic (.+)$/);
	const [u, p] = auth ? Buffer.from(auth[1], 'base64').toString().split(':') : [];
	if (u !== CK) return wpErr(res, 401, 'woocommerce_rest_cannot_view', 'Sorry, you cannot list resources.');
	if (p !== CS) return wpErr(res, 401, 'woocommerce_rest_authentication_error', 'Consumer secret is invalid.');
	const path = url.pathname.slice('/wp-json/wc/v3/'.length);
	let mm;
	if ((mm = path.match(/^(orders|products|customers)$/)) && req.method === 'GET')
	{
		listCount++;
		const f = faults.find((x) => x.nth === listCount);
		if (f && f.status === 'hang') return 'hang';
		if (f && f.status === 429) return wpErr(res, 429, 'too_many_requests', 'Too many requests.');
		if (f) return wpErr(res, f.status, 'internal_server_error', 'There has been a critical error on this website.');
		const q = url.searchParams;
		const per = Number(q.get('per_page') ?? 10), page = Number(q.get('page') ?? 1);
		if (!(per >= 1 && per <= 100)) return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): per_page');
		if (!(page >= 1)) return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): page');
		const orderby = q.get('orderby') ?? 'date', order = q.get('order') ?? 'desc';
		const allowed = mm[1] === 'customers' ? ['id', 'include', 'name', 'registered_date'] : ['date', 'id', 'include', 'title', 'slug', 'modified'];
		if (!allowed.includes(orderby)) return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): orderby');
		const gmt = ['true', '1'].includes(q.get('dates_are_gmt'));
		const col = (o) => Math.floor((gmt ? o.updated : o.updated + SITE_OFFSET_MIN * 60e3) / 1000) * 1000;
		let rows = [...woo[mm[1]].values()];
		if (mm[1] !== 'customers')
			for (const [k, cmp] of [['modified_after', (a, b) => (config.inclusive ? a >= b : a > b)], ['modified_before', (a, b) => (config.inclusive ? a <= b : a < b)]])
				if (q.has(k))
				{
					const t = wpDate(q.get(k), gmt);
					if (Number.isNaN(t)) return wpErr(res, 400, 'rest_invalid_param', `Invalid parameter(s): ${k}`);
					rows = rows.filter((o) => cmp(col(o), t));
				}
		const key = orderby === 'modified' ? (o) => [col(o), o.id] : orderby === 'id' ? (o) => [o.id, 0] : (o) => [o.created, o.id];
		rows.sort((a, b) => { const x = key(a), y = key(b); return (x[0] - y[0] || x[1] - y[1]) * (order === 'asc' ? 1 : -1); });
		const total = rows.length, pages = Math.ceil(total / per);
		// WordPress's posts controller refuses a page past the end; WooCommerce's own
		// controllers answer it with an empty page.  past_end_400 plays the former.
		if (config.past_end_400 && page > pages && total > 0)
			return wpErr(res, 400, 'rest_post_invalid_page_number', 'The page number requested is larger than the number of pages available.');
		const out = rows.slice((page - 1) * per, page * per).map((o) => wooRecord(mm[1], o));
		// add_query_arg over the request's own parameters (rest_url base), page replaced.
		const mk = (n) => { const s = new URLSearchParams(config.link_minimal ? {} : q); s.set('page', n); return `http://127.0.0.1:${port}/wp-json/wc/v3/${mm[1]}?${s}`; };
		const links = [];
		if (page > 1) links.push(`<${mk(Math.min(page - 1, Math.max(pages, 1)))}>; rel="prev"`);
		if (pages > page) links.push(`<${mk(page + 1)}>; rel="next"`);
		const h = { 'X-WP-Total': String(total), 'X-WP-TotalPages': String(pages) };
		if (links.length) h.Link = links.join(', ');
		return send(res, 200, out, h);
	}
	let j = null;
	if (req.method === 'PUT' || req.method === 'POST')
		try { j = JSON.parse(body); } catch { return wpErr(res, 400, 'rest_invalid_json', 'Invalid JSON body passed.'); }
	if ((mm = path.match(/^products\/(\d+)$/)) && req.method === 'PUT')
	{
		const o = woo.products.get(Number(mm[1]));
		if (!o) return wpErr(res, 400, 'woocommerce_rest_product_invalid_id', 'Invalid ID.');
		if (j.stock_quantity !== undefined && !Number.isInteger(j.stock_quantity))
			return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): stock_quantity');
		if (j.regular_price !== undefined && typeof j.regular_price !== 'string')
			return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): regular_price');
		Object.assign(o, j, { updated: Date.now() });
		return send(res, 200, wooRecord('products', o));
	}
	if ((mm = path.match(/^orders\/(\d+)$/)) && req.method === 'PUT')
	{
		const o = woo.orders.get(Number(mm[1]));
		if (!o) return wpErr(res, 400, 'woocommerce_rest_shop_order_invalid_id', 'Invalid ID.');
		if (j.status && !['pending', 'processing', 'on-hold', 'completed', 'cancelled', 'refunded', 'failed'].includes(j.status))
			return wpErr(res, 400, 'rest_invalid_param', 'Invalid parameter(s): status');
		Object.assign(o, j, { updated: Date.now() });
		return send(res, 200, wooRecord('orders', o));
	}
	if (path === 'products' && req.method === 'POST')
	{
		if (j.id !== undefined) return wpErr(res, 400, 'woocommerce_rest_product_exists', 'Cannot create existing product.');
		const id = ++wooId;
		woo.products.set(id, { id, ...j, created: Date.now(), updated: Date.now() });
		return send(res, 201, wooRecord('products', woo.products.get(id)), { Location: `/wp-json/wc/v3/products/${id}` });
	}
	return wpErr(res, 404, 'rest_no_route', 'No route was found matching the URL and request method.');
}

function control(path, j)
{
	if (path === 'seed')
	{
		// {platform, resource, count, start (ISO), per_second}
		const ids = [];
		const t0 = Date.parse(j.start);
		for (let i = 0; i < j.count; i++)
		{
			const t = t0 + Math.floor(i / (j.per_second ?? 1)) * 1000;
			const id = j.platform === 'shopify' ? nextId++ : ++wooId;
			(j.platform === 'shopify' ? shop : woo)[j.resource].set(id, { id, created: t, updated: t });
			ids.push(id);
		}
		return { ids };
	}
	if (path === 'update')
	{
		const o = (j.platform === 'shopify' ? shop : woo)[j.resource].get(j.id);
		Object.assign(o, j.fields ?? {});
		o.updated = j.at ? Date.parse(j.at) : Date.now();
		return j.platform === 'shopify' ? shopOrder(o) : wooRecord(j.resource, o);
	}
	if (path === 'get')
	{
		if (j.platform === 'shopify' && j.resource === 'levels') return shop.levels.get(j.id) ?? null;
		const o = (j.platform === 'shopify' ? shop : woo)[j.resource].get(j.id);
		return o ? (j.platform === 'shopify' ? (j.resource === 'orders' ? shopOrder(o) : o) : wooRecord(j.resource, o)) : null;
	}
	if (path === 'fault') { faults = j.faults ?? []; once = j.once ?? []; listCount = 0; return { ok: true }; }
	if (path === 'webhook')
	{
		// A delivery as the platform signs it: Shopify base64(HMAC-SHA256(secret, body)) in
		// X-Shopify-Hmac-Sha256; WooCommerce the same in X-WC-Webhook-Signature.
		const sig = crypto.createHmac('sha256', j.secret).update(j.body).digest('base64');
		return j.platform === 'shopify'
			? { body: j.body, headers: { 'Content-Type': 'application/json', 'X-Shopify-Topic': j.topic,
										 'X-Shopify-Hmac-Sha256': sig, 'X-Shopify-Shop-Domain': 'independent.myshopify.com',
										 'X-Shopify-API-Version': '2025-01', 'X-Shopify-Webhook-Id': j.webhook_id,
										 'X-Shopify-Triggered-At': new Date().toISOString(),
										 ...(j.event_id ? { 'X-Shopify-Event-Id': j.event_id } : {}) } }
			: { body: j.body, headers: { 'Content-Type': 'application/json', 'X-WC-Webhook-Source': 'https://independent.example/',
										 'X-WC-Webhook-Topic': j.topic, 'X-WC-Webhook-Resource': j.topic.split('.')[0],
										 'X-WC-Webhook-Event': j.topic.split('.')[1], 'X-WC-Webhook-Signature': sig,
										 'X-WC-Webhook-ID': String(j.webhook_id),
										 'X-WC-Webhook-Delivery-ID': crypto.randomBytes(16).toString('hex') } };
	}
	if (path === 'config') { Object.assign(config, j); return config; }
	if (path === 'bucket') { Object.assign(bucket, j); return bucket; }
	if (path === 'log') return log;
	if (path === 'clear') { log = []; return { ok: true }; }
	throw new Error('unknown control ' + path);
}

const server = http.createServer((req, res) =>
{
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () =>
	{
		const body = Buffer.concat(chunks).toString();
		const url = new URL(req.url, 'http://127.0.0.1');
		if (url.pathname.startsWith('/__ctl/'))
		{
			try { return send(res, 200, control(url.pathname.slice(7), body ? JSON.parse(body) : {})); }
			catch (e) { return send(res, 500, { error: String(e) }); }
		}
		const entry = { t: Date.now() / 1000, method: req.method, path: url.pathname,
						raw_query: req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '',
						headers: req.headers, body };
		log.push(entry);
		let st;
		const k = once.findIndex((f) => url.pathname.endsWith(f.path));
		if (k >= 0)
		{
			const [f] = once.splice(k, 1);
			entry.status = send(res, f.status, f.body ?? { errors: 'Fault' }, f.retry_after ? { 'Retry-After': f.retry_after } : {});
			return;
		}
		if (url.pathname.startsWith('/admin/api/')) st = shopify(req, res, url, body);
		else if (url.pathname.startsWith('/wp-json/wc/v3/')) st = woocommerce(req, res, url, body);
		else st = send(res, 404, { errors: 'Not Found' });
		entry.status = st;
		entry.link = res.getHeader('link') ?? null;
	});
});
server.listen(0, '127.0.0.1', () => { port = server.address().port; console.log(port); });
// Never outlive a test that died without stopping it.
setTimeout(() => process.exit(0), Number(process.argv[2] ?? 900) * 1000).unref();
