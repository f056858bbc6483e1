/*
 * receiver: a controllable HTTP/1.1 webhook receiver for tests and benchmarks.
 *
 * Design
 *   One thread, one level-triggered epoll instance, non-blocking sockets,
 *   libc only.  Each connection is a small state machine:
 *
 *     HEADERS -> BODY_LENGTH | BODY_CHUNKED -> [DELAY] -> RESPONDING -> HEADERS
 *
 *   with HANG (never answer), LINGER (write side shut, draining input before
 *   close, so an error response is not destroyed by a TCP reset) and CLOSED
 *   as side exits.  conn_drive() is the only place that advances the machine
 *   and the only place that frees a connection, so no handler ever touches a
 *   connection after it is gone and pipelined requests are served by a loop
 *   instead of recursion.
 *
 *   A request is parsed straight out of the per-connection input buffer.
 *   Chunked bodies are decoded in place (decoded data is never longer than
 *   its encoding), so a finished request is always the contiguous region
 *   [0, consumed) of that buffer: headers, then the body.  After the response
 *   that region is dropped and parsing resumes on whatever follows it.
 *
 *   The response to a request is built as soon as the request is complete;
 *   delay_ms only postpones writing it.  Delays sit in a binary min-heap of
 *   connection deadlines that drives the epoll_wait timeout, so a slow answer
 *   never blocks anybody else.  Large bodies are streamed from one shared
 *   64 KiB pattern buffer, so body_bytes=64MiB costs no memory per request.
 *
 *   The request log is JSON Lines, appended to an in-memory buffer and written
 *   when it reaches 64 KiB or 20 ms after its first unwritten line, and at exit.
 *   Signals arrive through a signalfd: nothing is shared with a handler.
 *
 * Behaviour is chosen per request by query parameters; see usage().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IN_BUF_INITIAL		(8 * 1024)
#define IN_BUF_KEEP		(64 * 1024)	/* shrink back to initial above this */
#define OUT_BUF_KEEP		(16 * 1024)
#define MAX_HEADER_BYTES	(64 * 1024)
#define MAX_HEADERS		100
#define DEFAULT_MAX_BODY	(2 * 1024 * 1024)
#define MAX_CHUNK_LINE		1024
#define MAX_TRAILER_BYTES	(16 * 1024)
#define MAX_RESPONSE_BODY	(64ULL * 1024 * 1024)
#define MAX_DELAY_MS		(3600ULL * 1000)
#define MAX_HEADER_PAD		(16ULL * 1024 * 1024)
#define PATTERN_BYTES		(64 * 1024)
#define LINGER_US		(2 * 1000000LL)
#define LOG_FLUSH_US		(20 * 1000LL)
#define LOG_FLUSH_BYTES		(64 * 1024)
#define LOG_BUF_KEEP		(4 * 1024 * 1024)
#define MAX_COUNTER_KEYS	65536
#define MAX_EVENTS		256
#define MAX_PATH_PLANS		64
#define MAX_PLAN_BYTES		1024
#define ACCEPTS_PER_WAKEUP	64

enum conn_state {
	ST_HEADERS,
	ST_BODY_LENGTH,
	ST_BODY_CHUNKED,
	ST_DELAY,
	ST_RESPONDING,
	ST_HANG,
	ST_LINGER,
	ST_CLOSED,
};

enum chunk_state {
	CH_SIZE,
	CH_DATA,
	CH_DATA_END,
	CH_TRAILER,
};

/* Offsets, not pointers: the input buffer may be reallocated while reading. */
struct header {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

struct request {
	uint32_t method_off, method_len;
	uint32_t target_off, target_len;
	size_t header_len;		/* request line + headers + blank line */
	uint64_t content_length;
	bool has_content_length;
	bool chunked;
	bool keep_alive;
	bool expect_continue;
	bool is_head;
	enum chunk_state chunk_state;
	size_t parse_pos;		/* next undecoded byte of a chunked body */
	size_t body_end;		/* end of the decoded body so far */
	uint64_t chunk_left;
	size_t trailer_bytes;
	size_t body_len;
	size_t consumed;		/* bytes of the buffer this request occupies */
	unsigned nheaders;
	struct header headers[MAX_HEADERS];	/* last: reset skips it */
};

struct conn {
	int fd;
	uint32_t events;		/* what epoll is currently asked for */
	enum conn_state state;
	uint64_t id;
	char *in;
	size_t in_len, in_cap;
	size_t scan_pos;		/* where to resume looking for the blank line */
	struct request req;
	char *out;
	size_t out_off, out_len, out_cap;
	uint64_t pattern_left;		/* streamed body bytes still to send after out */
	bool close_after;		/* close (via LINGER) once the output is sent */
	bool close_planned;		/* close=1 after a delay: no answer at all */
	bool reset_on_close;
	bool peer_eof;
	int64_t deadline_us;
	ptrdiff_t heap_index;		/* -1 when no timer is armed */
	struct conn *prev, *next;
};

struct timer_heap {
	struct conn **items;
	size_t len, cap;
};

struct counter_entry {
	char *key;
	size_t key_len;
	uint64_t hash;
	uint64_t count;
};

/* Request counts per path+key, for status=NNNxK ("fail K times, then 200"). */
struct counter_table {
	struct counter_entry *slots;
	size_t cap, used;
};

struct request_log {
	int fd;				/* -1: logging disabled */
	char *buf;
	size_t len, cap;
	int64_t flush_due_us;
	bool failed;
};

/* A query string that /__plan set for a path, used instead of the request's own. */
struct path_plan {
	char path[MAX_PLAN_BYTES];
	char query[MAX_PLAN_BYTES];
	size_t path_len, query_len;
};

struct server {
	int epfd;
	int listen_fd;
	int signal_fd;
	int reserve_fd;			/* spare fd, given up to shed connections on EMFILE */
	bool quiet;
	bool stopping;
	int64_t stop_at_us;		/* 0: no --max-seconds limit */
	size_t max_body;
	size_t max_in_cap;
	char *pattern;
	struct timer_heap timers;
	struct counter_table counters;
	struct path_plan plans[MAX_PATH_PLANS];
	unsigned nplans;
	struct request_log log;
	struct conn *conns;
	uint64_t next_conn_id;
	uint64_t stat_requests;
	uint64_t stat_body_bytes;
	uint64_t stat_open_conns;
	uint64_t stat_accepted;
	struct timespec stat_last_at;	/* wall clock of the latest counted request */
	/*
	 * Since the last /__reset: the longest interval between two consecutive
	 * counted requests (a client that stopped sending) and the wall clock of
	 * the request that ended it, and the longest turn of the event loop (this
	 * receiver itself busy or blocked, e.g. in a log write), which tells the
	 * two apart.
	 */
	int64_t stat_prev_us;		/* monotonic; 0: no request counted yet */
	int64_t stat_max_gap_us;
	struct timespec stat_max_gap_end;
	int64_t stat_max_turn_us;
	/* Only their addresses matter: epoll tags for the non-connection fds. */
	char listen_tag;
	char signal_tag;
};

/* What the query string asks for. */
struct plan {
	int status;
	bool status_given;
	bool fail_spec;			/* status=NNNxK was given */
	uint64_t fail_times;		/* its K */
	uint64_t delay_ms;
	uint64_t body_bytes;
	const char *redirect;
	size_t redirect_len;
	const char *retry_after;
	size_t retry_after_len;
	const char *key;
	size_t key_len;
	int close_mode;			/* 0 no, 1 FIN, 2 RST */
	bool hang;
	bool garbage;			/* answer without an HTTP status line */
	uint64_t header_bytes;		/* pad the answer with one header this long */
};

struct reply {
	int status;
	const char *location;
	size_t location_len;
	const char *retry_after;
	size_t retry_after_len;
	const char *content_type;
	const char *body;
	size_t body_len;
	uint64_t pattern_len;		/* streamed body instead of body/body_len */
	uint64_t header_pad;		/* an X-Padding header of this many bytes */
	bool close;
};

static void conn_drive(struct server *srv, struct conn *c);

/* ---------------------------------------------------------------- utilities */

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t) (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static int
hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool
is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static char
ascii_lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char) (ch + 32) : ch;
}

static bool
equals_nocase(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(s[i]) != lit[i])
			return false;
	return true;
}

/* Header values we echo back must not smuggle in CR/LF or other controls. */
static bool
is_safe_header_value(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char) s[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

/* '+' is left alone: redirect targets may legitimately contain it. */
static size_t
percent_decode(char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < len &&
		    (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
			s[o++] = (char) (hi * 16 + lo);
			i += 2;
		} else
			s[o++] = s[i];
	}
	return o;
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

/* ---------------------------------------------------------------- timers */

static bool
timer_before(const struct timer_heap *h, size_t a, size_t b)
{
	return h->items[a]->deadline_us < h->items[b]->deadline_us;
}

static void
timer_swap(struct timer_heap *h, size_t a, size_t b)
{
	struct conn *t = h->items[a];

	h->items[a] = h->items[b];
	h->items[b] = t;
	h->items[a]->heap_index = (ptrdiff_t) a;
	h->items[b]->heap_index = (ptrdiff_t) b;
}

static void
timer_sift_up(struct timer_heap *h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(h, i, parent))
			break;
		timer_swap(h, i, parent);
		i = parent;
	}
}

static void
timer_sift_down(struct timer_heap *h, size_t i)
{
	for (;;) {
		size_t left = 2 * i + 1, right = left + 1, min = i;

		if (left < h->len && timer_before(h, left, min))
			min = left;
		if (right < h->len && timer_before(h, right, min))
			min = right;
		if (min == i)
			break;
		timer_swap(h, i, min);
		i = min;
	}
}

static void
timer_cancel(struct timer_heap *h, struct conn *c)
{
	size_t i, last;

	if (c->heap_index < 0)
		return;
	i = (size_t) c->heap_index;
	last = --h->len;
	if (i != last) {
		h->items[i] = h->items[last];
		h->items[i]->heap_index = (ptrdiff_t) i;
		timer_sift_down(h, i);
		timer_sift_up(h, i);
	}
	c->heap_index = -1;
}

static bool
timer_arm(struct timer_heap *h, struct conn *c, int64_t deadline_us)
{
	timer_cancel(h, c);
	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct conn **items = realloc(h->items, cap * sizeof *items);

		if (!items)
			return false;
		h->items = items;
		h->cap = cap;
	}
	c->deadline_us = deadline_us;
	c->heap_index = (ptrdiff_t) h->len;
	h->items[h->len++] = c;
	timer_sift_up(h, h->len - 1);
	return true;
}

/* ---------------------------------------------------------------- fail counters */

static uint64_t
hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char) s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void
counters_clear(struct counter_table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].key);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->used = 0;
}

static bool
counters_grow(struct counter_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct counter_entry *slots = calloc(cap, sizeof *slots);

	if (!slots)
		return false;
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (!t->slots[i].key)
			continue;
		for (j = t->slots[i].hash & (cap - 1); slots[j].key; j = (j + 1) & (cap - 1))
			;
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return true;
}

/*
 * Count one more request for key and return the new count.  The table is
 * wiped when it reaches MAX_COUNTER_KEYS so a client inventing keys forever
 * cannot grow it without bound; tests use a handful of keys.
 */
static uint64_t
counters_bump(struct counter_table *t, const char *key, size_t key_len)
{
	uint64_t hash = hash_bytes(key, key_len);
	size_t i;

	if ((t->used + 1) * 10 > t->cap * 7) {
		if (t->used >= MAX_COUNTER_KEYS)
			counters_clear(t);
		if (!counters_grow(t))
			return UINT64_MAX;
	}
	for (i = hash & (t->cap - 1); t->slots[i].key; i = (i + 1) & (t->cap - 1)) {
		struct counter_entry *e = &t->slots[i];

		if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
			return ++e->count;
	}
	t->slots[i].key = malloc(key_len ? key_len : 1);
	if (!t->slots[i].key)
		return UINT64_MAX;
	memcpy(t->slots[i].key, key, key_len);
	t->slots[i].key_len = key_len;
	t->slots[i].hash = hash;
	t->slots[i].count = 1;
	t->used++;
	return 1;
}

/* ---------------------------------------------------------------- request log */

static void
log_flush(struct request_log *log)
{
	size_t off = 0;

	while (off < log->len && !log->failed) {
		ssize_t n = write(log->fd, log->buf + off, log->len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "receiver: writing log: %s (logging stops)\n", strerror(errno));
			log->failed = true;
			break;
		}
		off += (size_t) n;
	}
	log->len = 0;
	if (log->cap > LOG_BUF_KEEP) {
		free(log->buf);
		log->buf = NULL;
		log->cap = 0;
	}
}

static bool
log_reserve(struct request_log *log, size_t extra)
{
	size_t cap;
	char *buf;

	if (log->len + extra <= log->cap)
		return true;
	cap = log->cap ? log->cap : 256 * 1024;
	while (cap < log->len + extra)
		cap *= 2;
	buf = realloc(log->buf, cap);
	if (!buf)
		return false;
	log->buf = buf;
	log->cap = cap;
	return true;
}

static void
log_put(struct request_log *log, const char *s, size_t len)
{
	if (!log_reserve(log, len))
		return;
	memcpy(log->buf + log->len, s, len);
	log->len += len;
}

static void
log_puts(struct request_log *log, const char *s)
{
	log_put(log, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s[0], or 0 if it is not one (RFC 3629). */
static size_t
utf8_sequence_len(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need;

	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		need = 3;
		if (s[0] == 0xE0)
			lo = 0xA0;	/* overlong */
		else if (s[0] == 0xED)
			hi = 0x9F;	/* surrogates */
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		need = 4;
		if (s[0] == 0xF0)
			lo = 0x90;
		else if (s[0] == 0xF4)
			hi = 0x8F;	/* above U+10FFFF */
	} else
		return 0;
	if (avail < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return need;
}

/*
 * JSON string contents.  Valid UTF-8 passes through unchanged; a byte that is
 * not part of valid UTF-8 is written as \u00XX so the line stays parseable
 * whatever a misbehaving client sends.
 */
static void
log_put_escaped(struct request_log *log, const char *s, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char) s[i];
		char esc[8];

		if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\')
			continue;
		if (ch >= 0x80) {
			size_t n = utf8_sequence_len((const unsigned char *) s + i, len - i);

			if (n > 0) {
				i += n - 1;
				continue;
			}
		}
		log_put(log, s + run, i - run);
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char) ch;
			log_put(log, esc, 2);
		} else {
			snprintf(esc, sizeof esc, "\\u%04x", ch);
			log_put(log, esc, 6);
		}
		run = i + 1;
	}
	log_put(log, s + run, len - run);
}

static void
log_request(struct server *srv, const struct conn *c)
{
	struct request_log *log = &srv->log;
	const struct request *r = &c->req;
	const char *in = c->in;
	bool first = true;
	struct timespec now;
	char num[64];

	if (log->fd < 0 || log->failed)
		return;
	if (log->len == 0)
		log->flush_due_us = mono_us() + LOG_FLUSH_US;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(num, sizeof num, "{\"t\":%lld.%06ld,\"method\":\"",
		 (long long) now.tv_sec, now.tv_nsec / 1000);
	log_puts(log, num);
	log_put_escaped(log, in + r->method_off, r->method_len);
	log_puts(log, "\",\"path\":\"");
	log_put_escaped(log, in + r->target_off, r->target_len);
	log_puts(log, "\",\"headers\":{");
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct header *h = &r->headers[i];
		bool seen = false;

		/* A repeated header was printed, joined, at its first occurrence. */
		for (unsigned j = 0; j < i && !seen; j++)
			seen = r->headers[j].name_len == h->name_len &&
				memcmp(in + r->headers[j].name_off, in + h->name_off, h->name_len) == 0;
		if (seen)
			continue;
		log_puts(log, first ? "\"" : ",\"");
		first = false;
		log_put_escaped(log, in + h->name_off, h->name_len);
		log_puts(log, "\":\"");
		log_put_escaped(log, in + h->value_off, h->value_len);
		for (unsigned j = i + 1; j < r->nheaders; j++) {
			const struct header *o = &r->headers[j];

			if (o->name_len != h->name_len ||
			    memcmp(in + o->name_off, in + h->name_off, h->name_len) != 0)
				continue;
			log_puts(log, ", ");
			log_put_escaped(log, in + o->value_off, o->value_len);
		}
		log_puts(log, "\"");
	}
	log_puts(log, "},\"body\":\"");
	log_put_escaped(log, in + r->header_len, r->body_len);
	snprintf(num, sizeof num, "\",\"body_len\":%zu,\"conn\":%" PRIu64 "}\n", r->body_len, c->id);
	log_puts(log, num);
	if (log->len >= LOG_FLUSH_BYTES)
		log_flush(log);
}

/* ---------------------------------------------------------------- buffers */

static bool
in_reserve(struct conn *c, size_t cap)
{
	char *buf;

	if (cap <= c->in_cap)
		return true;
	buf = realloc(c->in, cap);
	if (!buf)
		return false;
	c->in = buf;
	c->in_cap = cap;
	return true;
}

static bool
out_append(struct conn *c, const char *data, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 512;
		char *buf;

		while (cap < c->out_len + len)
			cap *= 2;
		buf = realloc(c->out, cap);
		if (!buf)
			return false;
		c->out = buf;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return true;
}

static bool
out_printf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool
out_printf(struct conn *c, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t) n >= sizeof small)
		return false;	/* callers only format short, bounded lines */
	return out_append(c, small, (size_t) n);
}

static bool
output_pending(const struct conn *c)
{
	return c->out_off < c->out_len || c->pattern_left > 0;
}

/* Returns 1 when everything is sent, 0 when the socket is full, -1 on error. */
static int
flush_output(struct server *srv, struct conn *c)
{
	while (output_pending(c)) {
		struct iovec iov[2];
		struct msghdr msg;
		int niov = 0;
		ssize_t n;
		size_t sent;

		if (c->out_off < c->out_len) {
			iov[niov].iov_base = c->out + c->out_off;
			iov[niov].iov_len = c->out_len - c->out_off;
			niov++;
		}
		if (c->pattern_left > 0) {
			iov[niov].iov_base = srv->pattern;
			iov[niov].iov_len = c->pattern_left < PATTERN_BYTES ?
				(size_t) c->pattern_left : PATTERN_BYTES;
			niov++;
		}
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t) niov;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		sent = (size_t) n;
		if (c->out_off < c->out_len) {
			size_t part = c->out_len - c->out_off;

			if (sent < part) {
				c->out_off += sent;
				continue;
			}
			sent -= part;
			c->out_off = c->out_len = 0;
		}
		c->pattern_left -= sent;
	}
	return 1;
}

/* ---------------------------------------------------------------- responses */

static bool
queue_reply(struct conn *c, const struct reply *rep)
{
	bool no_body = rep->status == 204 || rep->status == 304;
	uint64_t length = rep->pattern_len ? rep->pattern_len : rep->body_len;
	bool ok;

	ok = out_printf(c, "HTTP/1.1 %d %s\r\n", rep->status, reason_phrase(rep->status));
	if (!no_body)
		ok = ok && out_printf(c, "Content-Length: %" PRIu64 "\r\n", length);
	ok = ok && out_printf(c, "Connection: %s\r\n", rep->close ? "close" : "keep-alive");
	if (rep->content_type && !no_body)
		ok = ok && out_printf(c, "Content-Type: %s\r\n", rep->content_type);
	if (rep->location) {
		ok = ok && out_append(c, "Location: ", 10);
		ok = ok && out_append(c, rep->location, rep->location_len);
		ok = ok && out_append(c, "\r\n", 2);
	}
	if (rep->retry_after) {
		ok = ok && out_append(c, "Retry-After: ", 13);
		ok = ok && out_append(c, rep->retry_after, rep->retry_after_len);
		ok = ok && out_append(c, "\r\n", 2);
	}
	if (rep->header_pad) {
		static const char pad[4096] = {[0 ... 4095] = 'x'};
		uint64_t left = rep->header_pad;

		ok = ok && out_append(c, "X-Padding: ", 11);
		while (ok && left > 0) {
			size_t n = left < sizeof pad ? (size_t) left : sizeof pad;

			ok = out_append(c, pad, n);
			left -= n;
		}
		ok = ok && out_append(c, "\r\n", 2);
	}
	ok = ok && out_append(c, "\r\n", 2);
	if (!no_body && !c->req.is_head) {
		if (rep->pattern_len)
			c->pattern_left = rep->pattern_len;
		else if (rep->body_len)
			ok = ok && out_append(c, rep->body, rep->body_len);
	}
	if (rep->close)
		c->close_after = true;
	return ok;
}

/* Protocol errors: the framing can no longer be trusted, so answer and close. */
static void
start_error(struct conn *c, int status)
{
	struct reply rep = {0};
	char body[96];
	int n = snprintf(body, sizeof body, "%d %s\n", status, reason_phrase(status));

	rep.status = status;
	rep.content_type = "text/plain";
	rep.body = body;
	rep.body_len = (size_t) n;
	rep.close = true;
	c->pattern_left = 0;
	c->state = queue_reply(c, &rep) ? ST_RESPONDING : ST_CLOSED;
}

/* ---------------------------------------------------------------- parsing */

static bool
is_reading_state(enum conn_state st)
{
	return st == ST_HEADERS || st == ST_BODY_LENGTH || st == ST_BODY_CHUNKED;
}

static void
request_reset(struct request *r)
{
	memset(r, 0, offsetof(struct request, headers));
}

/*
 * Find the end of the header section; accepts bare LF line ends as RFC 9112
 * allows.  Returns the offset just past the blank line, or 0 if incomplete.
 */
static size_t
find_header_end(struct conn *c)
{
	const char *buf = c->in;
	size_t len = c->in_len;
	size_t i = c->scan_pos;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t j;

		if (!nl)
			break;
		j = (size_t) (nl - buf) + 1;
		if (j < len && buf[j] == '\n')
			return j + 1;
		if (j + 1 < len && buf[j] == '\r' && buf[j + 1] == '\n')
			return j + 2;
		if (j == len || (buf[j] == '\r' && j + 1 == len)) {
			c->scan_pos = (size_t) (nl - buf);	/* undecided: look again later */
			return 0;
		}
		i = j;
	}
	c->scan_pos = len;
	return 0;
}

/* Next line in [pos, end): returns its length without CR/LF, advances pos. */
static size_t
next_line(const char *buf, size_t *pos, size_t end, size_t *line_start)
{
	const char *nl = memchr(buf + *pos, '\n', end - *pos);
	size_t stop = nl ? (size_t) (nl - buf) : end;
	size_t len;

	*line_start = *pos;
	len = stop - *pos;
	if (len > 0 && buf[stop - 1] == '\r')
		len--;
	*pos = nl ? stop + 1 : end;
	return len;
}

static int
parse_request_line(struct request *r, const char *buf, size_t start, size_t len, bool *http10)
{
	size_t i = start, end = start + len;

	while (i < end && is_tchar((unsigned char) buf[i]))
		i++;
	if (i == start || i - start > 32 || i >= end || buf[i] != ' ')
		return 400;
	r->method_off = (uint32_t) start;
	r->method_len = (uint32_t) (i - start);
	r->target_off = (uint32_t) ++i;
	while (i < end && (unsigned char) buf[i] > 0x20 && buf[i] != 0x7f)
		i++;
	if (i == r->target_off || i >= end || buf[i] != ' ')
		return 400;
	r->target_len = (uint32_t) (i - r->target_off);
	/*
	 * Absolute form, as a client sends to a proxy: serve it as the receiver the proxy
	 * would forward it to, from its path on ("http://host/p?q" is "/p?q").
	 */
	if (r->target_len > 7 && memcmp(buf + r->target_off, "http://", 7) == 0) {
		const char *slash = memchr(buf + r->target_off + 7, '/', r->target_len - 7);

		if (slash == NULL)
			return 400;
		r->target_len -= (uint32_t) (slash - (buf + r->target_off));
		r->target_off = (uint32_t) (slash - buf);
	}
	if (buf[r->target_off] != '/' && !(r->target_len == 1 && buf[r->target_off] == '*'))
		return 400;
	i++;
	if (end - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0) {
		if (end - i == 8 && memcmp(buf + i, "HTTP/", 5) == 0)
			return 505;
		return 400;
	}
	if (buf[i + 7] == '1')
		*http10 = false;
	else if (buf[i + 7] == '0')
		*http10 = true;
	else
		return 505;
	r->is_head = r->method_len == 4 && memcmp(buf + start, "HEAD", 4) == 0;
	return 0;
}

/* Interpret the headers that affect framing and connection reuse. */
static int
apply_header(struct request *r, const char *name, size_t name_len,
	     const char *value, size_t value_len, bool http10, int *te_count)
{
	if (name_len == 14 && memcmp(name, "content-length", 14) == 0) {
		uint64_t cl;

		if (!parse_u64(value, value_len, UINT64_MAX / 2, &cl))
			return 400;
		if (r->has_content_length && cl != r->content_length)
			return 400;
		r->has_content_length = true;
		r->content_length = cl;
	} else if (name_len == 17 && memcmp(name, "transfer-encoding", 17) == 0) {
		if (++*te_count > 1 || http10)
			return 400;
		if (!equals_nocase(value, value_len, "chunked"))
			return 501;
		r->chunked = true;
	} else if (name_len == 10 && memcmp(name, "connection", 10) == 0) {
		size_t i = 0;

		while (i < value_len) {
			size_t s, e;

			while (i < value_len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
				i++;
			s = i;
			while (i < value_len && value[i] != ',')
				i++;
			e = i;
			while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
				e--;
			if (equals_nocase(value + s, e - s, "close"))
				r->keep_alive = false;
			else if (equals_nocase(value + s, e - s, "keep-alive"))
				r->keep_alive = true;
		}
	} else if (name_len == 6 && memcmp(name, "expect", 6) == 0) {
		if (equals_nocase(value, value_len, "100-continue") && !http10)
			r->expect_continue = true;
	}
	return 0;
}

/* Returns 0 when more input is needed, 1 when the headers are complete, or an error status. */
static int
parse_headers(struct server *srv, struct conn *c)
{
	struct request *r = &c->req;
	size_t end, pos = 0, start, len, skip = 0;
	bool http10 = false;
	int te_count = 0, rc;

	/* RFC 9112 2.2: tolerate empty lines before the request line. */
	while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n'))
		skip++;
	if (skip > 0) {
		memmove(c->in, c->in + skip, c->in_len - skip);
		c->in_len -= skip;
		c->scan_pos = 0;
	}
	end = find_header_end(c);
	if (end == 0)
		return c->in_len >= MAX_HEADER_BYTES ? 431 : 0;
	if (end > MAX_HEADER_BYTES)
		return 431;

	len = next_line(c->in, &pos, end, &start);
	if (memchr(c->in + start, '\r', len))
		return 400;
	r->keep_alive = true;
	rc = parse_request_line(r, c->in, start, len, &http10);
	if (rc)
		return rc;
	if (http10)
		r->keep_alive = false;

	r->nheaders = 0;
	while (pos < end) {
		char *line;
		const char *colon;
		size_t name_len, vs, ve;

		len = next_line(c->in, &pos, end, &start);
		if (len == 0)
			break;
		line = c->in + start;
		if (line[0] == ' ' || line[0] == '\t')
			return 400;	/* obsolete line folding */
		colon = memchr(line, ':', len);
		if (!colon || colon == line)
			return 400;
		name_len = (size_t) (colon - line);
		for (size_t i = 0; i < name_len; i++) {
			if (!is_tchar((unsigned char) line[i]))
				return 400;
			line[i] = ascii_lower(line[i]);
		}
		vs = name_len + 1;
		ve = len;
		while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
			vs++;
		while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		if (!is_safe_header_value(line + vs, ve - vs))
			return 400;
		if (r->nheaders == MAX_HEADERS)
			return 431;
		r->headers[r->nheaders].name_off = (uint32_t) start;
		r->headers[r->nheaders].name_len = (uint32_t) name_len;
		r->headers[r->nheaders].value_off = (uint32_t) (start + vs);
		r->headers[r->nheaders].value_len = (uint32_t) (ve - vs);
		r->nheaders++;
		rc = apply_header(r, line, name_len, line + vs, ve - vs, http10, &te_count);
		if (rc)
			return rc;
	}
	if (r->chunked && r->has_content_length)
		return 400;	/* ambiguous framing: the classic smuggling vector */
	r->header_len = end;
	if (r->chunked) {
		r->parse_pos = r->body_end = end;
		r->chunk_state = CH_SIZE;
		c->state = ST_BODY_CHUNKED;
	} else if (r->content_length > srv->max_body) {
		return 413;
	} else if (r->content_length > 0) {
		if (!in_reserve(c, end + (size_t) r->content_length))
			return 413;
		c->state = ST_BODY_LENGTH;
	} else {
		r->consumed = end;
		return 1;
	}
	/* Clients that wait for 100 Continue would otherwise stall for ~1 s. */
	if (r->expect_continue && c->in_len == end &&
	    !out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
		return 500;
	return 1;
}

static int
parse_chunked(struct server *srv, struct conn *c)
{
	struct request *r = &c->req;

	for (;;) {
		char *p = c->in + r->parse_pos;
		size_t avail = c->in_len - r->parse_pos;

		switch (r->chunk_state) {
		case CH_SIZE: {
			const char *nl = memchr(p, '\n', avail);
			size_t line_len, i, end;
			uint64_t size = 0;
			int digit;

			if (!nl)
				return avail > MAX_CHUNK_LINE ? 400 : 0;
			line_len = (size_t) (nl - p);
			if (line_len > MAX_CHUNK_LINE)
				return 400;
			for (i = 0; i < line_len && (digit = hex_value(p[i])) >= 0; i++) {
				if (size > (UINT64_MAX >> 4))
					return 413;
				size = size * 16 + (uint64_t) digit;
			}
			if (i == 0)
				return 400;
			end = line_len;
			if (end > i && p[end - 1] == '\r')
				end--;
			while (i < end && (p[i] == ' ' || p[i] == '\t'))
				i++;
			if (i < end && p[i] != ';')
				return 400;
			for (; i < end; i++)	/* extensions are ignored, but must be sane */
				if (p[i] == '\r' || p[i] == '\0')
					return 400;
			if (size > srv->max_body - (r->body_end - r->header_len))
				return 413;
			r->parse_pos += line_len + 1;
			if (size == 0)
				r->chunk_state = CH_TRAILER;
			else {
				r->chunk_left = size;
				r->chunk_state = CH_DATA;
			}
			break;
		}
		case CH_DATA: {
			size_t n;

			if (avail == 0)
				return 0;
			n = avail < r->chunk_left ? avail : (size_t) r->chunk_left;
			if (r->body_end != r->parse_pos)
				memmove(c->in + r->body_end, p, n);
			r->body_end += n;
			r->parse_pos += n;
			r->chunk_left -= n;
			if (r->chunk_left == 0)
				r->chunk_state = CH_DATA_END;
			break;
		}
		case CH_DATA_END:
			if (avail == 0)
				return 0;
			if (p[0] == '\n')
				r->parse_pos += 1;
			else if (p[0] == '\r') {
				if (avail < 2)
					return 0;
				if (p[1] != '\n')
					return 400;
				r->parse_pos += 2;
			} else
				return 400;
			r->chunk_state = CH_SIZE;
			break;
		case CH_TRAILER: {
			const char *nl = memchr(p, '\n', avail);
			size_t line_len;

			if (!nl)
				return avail > MAX_TRAILER_BYTES ? 431 : 0;
			line_len = (size_t) (nl - p);
			r->parse_pos += line_len + 1;
			if (line_len == 0 || (line_len == 1 && p[0] == '\r')) {
				r->body_len = r->body_end - r->header_len;
				r->consumed = r->parse_pos;
				return 1;
			}
			r->trailer_bytes += line_len + 1;
			if (r->trailer_bytes > MAX_TRAILER_BYTES)
				return 431;
			break;
		}
		}
	}
}

/* Returns 0 when more input is needed, 1 when the request is complete, or an error status. */
static int
parse_request(struct server *srv, struct conn *c)
{
	struct request *r = &c->req;
	int rc;

	if (c->state == ST_HEADERS) {
		rc = parse_headers(srv, c);
		if (rc != 1)
			return rc;
		if (c->state == ST_HEADERS)
			return 1;	/* no body */
	}
	if (c->state == ST_BODY_LENGTH) {
		if (c->in_len - r->header_len < r->content_length)
			return 0;
		r->body_len = (size_t) r->content_length;
		r->consumed = r->header_len + r->body_len;
		return 1;
	}
	return parse_chunked(srv, c);
}

/* ---------------------------------------------------------------- request handling */

static const char *
parse_plan(char *query, size_t len, struct plan *plan)
{
	size_t i = 0;

	while (i < len) {
		char *name = query + i, *value;
		size_t seg_end = i, name_len, value_len;
		char *eq;

		while (seg_end < len && query[seg_end] != '&')
			seg_end++;
		eq = memchr(name, '=', seg_end - i);
		name_len = eq ? (size_t) (eq - name) : seg_end - i;
		value = eq ? eq + 1 : query + seg_end;
		value_len = eq ? (size_t) (query + seg_end - value) : 0;
		value_len = percent_decode(value, value_len);
		i = seg_end + 1;

#define NAME_IS(lit) (name_len == sizeof(lit) - 1 && memcmp(name, lit, name_len) == 0)
		if (NAME_IS("status")) {
			const char *x = memchr(value, 'x', value_len);
			size_t code_len = x ? (size_t) (x - value) : value_len;
			uint64_t code;

			if (!parse_u64(value, code_len, 599, &code) || code < 200)
				return "status must be 200..599, optionally followed by xK";
			if (x && !parse_u64(x + 1, value_len - code_len - 1, UINT32_MAX, &plan->fail_times))
				return "status=NNNxK needs a number K";
			plan->fail_spec = x != NULL;
			plan->status = (int) code;
			plan->status_given = true;
		} else if (NAME_IS("delay_ms")) {
			if (!parse_u64(value, value_len, MAX_DELAY_MS, &plan->delay_ms))
				return "delay_ms must be 0..3600000";
		} else if (NAME_IS("body_bytes")) {
			if (!parse_u64(value, value_len, MAX_RESPONSE_BODY, &plan->body_bytes))
				return "body_bytes must be 0..67108864";
		} else if (NAME_IS("redirect")) {
			if (value_len == 0 || !is_safe_header_value(value, value_len))
				return "redirect must be a non-empty URL without control characters";
			plan->redirect = value;
			plan->redirect_len = value_len;
		} else if (NAME_IS("retry_after")) {
			if (value_len == 0 || !is_safe_header_value(value, value_len))
				return "retry_after must be non-empty without control characters";
			plan->retry_after = value;
			plan->retry_after_len = value_len;
		} else if (NAME_IS("close")) {
			if (value_len == 1 && value[0] == '1')
				plan->close_mode = 1;
			else if (value_len == 3 && memcmp(value, "rst", 3) == 0)
				plan->close_mode = 2;
			else if (!(value_len == 1 && value[0] == '0'))
				return "close must be 0, 1 or rst";
		} else if (NAME_IS("hang")) {
			if (value_len != 1 || (value[0] != '0' && value[0] != '1'))
				return "hang must be 0 or 1";
			plan->hang = value[0] == '1';
		} else if (NAME_IS("garbage")) {
			if (value_len != 1 || (value[0] != '0' && value[0] != '1'))
				return "garbage must be 0 or 1";
			plan->garbage = value[0] == '1';
		} else if (NAME_IS("header_bytes")) {
			if (!parse_u64(value, value_len, MAX_HEADER_PAD, &plan->header_bytes))
				return "header_bytes must be 0..16777216";
		} else if (NAME_IS("key")) {
			plan->key = value;
			plan->key_len = value_len;
		}
#undef NAME_IS
	}
	return NULL;
}

/*
 * /__plan?path=/P&q=QUERY: remembers QUERY (percent-decoded) for /P; an empty q forgets
 * it.  target is what follows "/__plan" in the request target.  Returns an error or NULL.
 */
static const char *
set_path_plan(struct server *srv, char *target, size_t len)
{
	char *path = NULL, *query = NULL;
	size_t path_len = 0, query_len = 0, i;
	bool have_q = false;

	if (len == 0 || target[0] != '?')
		return "usage: /__plan?path=/P&q=QUERY";
	target++, len--;
	for (i = 0; i < len;) {
		char *name = target + i, *eq;
		size_t seg_end = i;

		while (seg_end < len && target[seg_end] != '&')
			seg_end++;
		eq = memchr(name, '=', seg_end - i);
		if (eq) {
			size_t name_len = (size_t) (eq - name);
			size_t value_len = percent_decode(eq + 1, (size_t) (target + seg_end - eq - 1));

			if (name_len == 4 && memcmp(name, "path", 4) == 0)
				path = eq + 1, path_len = value_len;
			else if (name_len == 1 && name[0] == 'q')
				query = eq + 1, query_len = value_len, have_q = true;
		}
		i = seg_end + 1;
	}
	if (!path || path_len == 0 || path[0] != '/' || !have_q)
		return "path=/P and q= are both needed";
	if (path_len >= MAX_PLAN_BYTES || query_len >= MAX_PLAN_BYTES)
		return "path or q too long";
	for (i = 0; i < srv->nplans; i++)
		if (srv->plans[i].path_len == path_len &&
		    memcmp(srv->plans[i].path, path, path_len) == 0)
			break;
	if (query_len == 0) {
		if (i < srv->nplans)
			srv->plans[i] = srv->plans[--srv->nplans];
		return NULL;
	}
	if (i == srv->nplans) {
		if (srv->nplans == MAX_PATH_PLANS)
			return "too many plans";
		srv->nplans++;
	}
	memcpy(srv->plans[i].path, path, path_len);
	srv->plans[i].path_len = path_len;
	memcpy(srv->plans[i].query, query, query_len);
	srv->plans[i].query_len = query_len;
	return NULL;
}

/* The query /__plan set for this path, or NULL. */
static const struct path_plan *
path_plan_for(const struct server *srv, const char *path, size_t path_len)
{
	for (unsigned i = 0; i < srv->nplans; i++)
		if (srv->plans[i].path_len == path_len &&
		    memcmp(srv->plans[i].path, path, path_len) == 0)
			return &srv->plans[i];
	return NULL;
}

/* Control endpoints under /__ are not logged and not counted. */
static bool
handle_control(struct server *srv, struct conn *c, const char *path, size_t path_len)
{
	struct reply rep = {0};
	char body[512];
	int n;

	if (path_len == 8 && memcmp(path, "/__stats", 8) == 0)
		n = snprintf(body, sizeof body,
			     "{\"requests\":%" PRIu64 ",\"bytes\":%" PRIu64
			     ",\"connections\":%" PRIu64 ",\"accepted\":%" PRIu64
			     ",\"last_at\":%lld.%06ld,\"max_gap_ms\":%.3f"
			     ",\"max_gap_end\":%lld.%06ld,\"max_turn_ms\":%.3f}\n",
			     srv->stat_requests, srv->stat_body_bytes,
			     srv->stat_open_conns, srv->stat_accepted,
			     (long long) srv->stat_last_at.tv_sec, srv->stat_last_at.tv_nsec / 1000,
			     srv->stat_max_gap_us / 1000.0,
			     (long long) srv->stat_max_gap_end.tv_sec, srv->stat_max_gap_end.tv_nsec / 1000,
			     srv->stat_max_turn_us / 1000.0);
	else if (path_len == 8 && memcmp(path, "/__reset", 8) == 0) {
		counters_clear(&srv->counters);
		srv->stat_requests = srv->stat_body_bytes = 0;
		srv->stat_prev_us = srv->stat_max_gap_us = srv->stat_max_turn_us = 0;
		srv->stat_max_gap_end = (struct timespec) {0};
		n = snprintf(body, sizeof body, "{\"ok\":true}\n");
	} else if (path_len == 7 && memcmp(path, "/__plan", 7) == 0) {
		const char *err = set_path_plan(srv, c->in + c->req.target_off + 7,
						c->req.target_len - 7);

		rep.status = err ? 400 : 200;
		n = snprintf(body, sizeof body, err ? "{\"error\":\"%s\"}\n" : "{\"ok\":true}\n", err);
	} else
		return false;
	if (rep.status == 0)
		rep.status = 200;
	rep.content_type = "application/json";
	rep.body = body;
	rep.body_len = (size_t) n;
	rep.close = !c->req.keep_alive;
	c->state = queue_reply(c, &rep) ? ST_RESPONDING : ST_CLOSED;
	return true;
}

static void
handle_request(struct server *srv, struct conn *c)
{
	struct request *r = &c->req;
	char *target = c->in + r->target_off;
	size_t target_len = r->target_len;
	const char *qmark = memchr(target, '?', target_len);
	size_t path_len = qmark ? (size_t) (qmark - target) : target_len;
	struct plan plan = {0};
	struct reply rep = {0};
	const char *err;
	const struct path_plan *set;
	char set_query[MAX_PLAN_BYTES];
	int64_t now_us;

	if (handle_control(srv, c, target, path_len))
		return;
	srv->stat_requests++;
	srv->stat_body_bytes += r->body_len;
	clock_gettime(CLOCK_REALTIME, &srv->stat_last_at);
	now_us = mono_us();
	if (srv->stat_prev_us != 0 && now_us - srv->stat_prev_us > srv->stat_max_gap_us) {
		srv->stat_max_gap_us = now_us - srv->stat_prev_us;
		srv->stat_max_gap_end = srv->stat_last_at;
	}
	srv->stat_prev_us = now_us;
	log_request(srv, c);	/* before the query is decoded in place below */

	plan.status = 200;
	set = path_plan_for(srv, target, path_len);
	if (set) {
		/* parse_plan() decodes in place, and the plan points into it. */
		memcpy(set_query, set->query, set->query_len);
		err = parse_plan(set_query, set->query_len, &plan);
	} else
		err = qmark ? parse_plan(target + path_len + 1, target_len - path_len - 1, &plan) : NULL;
	if (err) {
		rep.status = 400;
		rep.content_type = "text/plain";
		rep.body = err;
		rep.body_len = strlen(err);
		rep.close = !r->keep_alive;
		c->state = queue_reply(c, &rep) ? ST_RESPONDING : ST_CLOSED;
		return;
	}
	if (plan.hang) {
		c->state = ST_HANG;
		return;
	}
	if (plan.fail_spec) {
		size_t id_len = path_len + 1 + plan.key_len;
		char *id = malloc(id_len);
		uint64_t seen = UINT64_MAX;

		if (id) {
			memcpy(id, target, path_len);
			id[path_len] = '\0';
			memcpy(id + path_len + 1, plan.key, plan.key_len);
			seen = counters_bump(&srv->counters, id, id_len);
			free(id);
		}
		if (seen > plan.fail_times)
			plan.status = 200;
	}
	if (plan.redirect && !plan.status_given)
		plan.status = 302;

	if (plan.close_mode) {
		c->reset_on_close = plan.close_mode == 2;
		c->close_planned = true;
		c->state = ST_CLOSED;
	} else if (plan.garbage) {
		static const char garbage[] = "THIS IS NOT HTTP\r\n\r\n";

		c->close_after = true;
		c->state = out_append(c, garbage, sizeof garbage - 1) ?
			ST_RESPONDING : ST_CLOSED;
	} else {
		rep.status = plan.status;
		rep.location = plan.redirect;
		rep.location_len = plan.redirect_len;
		rep.retry_after = plan.retry_after;
		rep.retry_after_len = plan.retry_after_len;
		rep.content_type = plan.body_bytes ? "text/plain" : NULL;
		rep.pattern_len = plan.body_bytes;
		rep.header_pad = plan.header_bytes;
		rep.close = !r->keep_alive;
		c->state = queue_reply(c, &rep) ? ST_RESPONDING : ST_CLOSED;
	}
	/* The answer (or the close) is ready; a delay only holds it back. */
	if (plan.delay_ms > 0 && (c->state == ST_RESPONDING || c->close_planned)) {
		c->state = ST_DELAY;
		if (!timer_arm(&srv->timers, c, mono_us() + (int64_t) plan.delay_ms * 1000))
			c->state = ST_CLOSED;
	}
}

/* ---------------------------------------------------------------- connections */

static void
conn_free(struct server *srv, struct conn *c)
{
	if (c->reset_on_close) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	timer_cancel(&srv->timers, c);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->in);
	free(c->out);
	free(c);
	srv->stat_open_conns--;
}

static void
update_events(struct server *srv, struct conn *c)
{
	uint32_t want = 0;

	if (!c->peer_eof) {
		if (c->state == ST_HANG || c->state == ST_LINGER)
			want |= EPOLLIN;
		else if (is_reading_state(c->state))
			want |= c->in_len < srv->max_in_cap ? EPOLLIN : 0;
		else if (c->in_len < c->in_cap)
			want |= EPOLLIN;	/* busy: buffer what fits, no more */
	}
	if (c->state != ST_DELAY && output_pending(c))
		want |= EPOLLOUT;
	if (want != c->events) {
		struct epoll_event ev = { .events = want, .data.ptr = c };

		if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
			c->events = want;
	}
}

static void
conn_next_request(struct conn *c)
{
	size_t rest = c->in_len - c->req.consumed;

	if (rest > 0)
		memmove(c->in, c->in + c->req.consumed, rest);
	c->in_len = rest;
	c->scan_pos = 0;
	request_reset(&c->req);
	c->close_planned = false;
	if (c->in_cap > IN_BUF_KEEP && rest <= IN_BUF_INITIAL) {
		char *buf = realloc(c->in, IN_BUF_INITIAL);

		if (buf) {
			c->in = buf;
			c->in_cap = IN_BUF_INITIAL;
		}
	}
	if (c->out_cap > OUT_BUF_KEEP && !output_pending(c)) {
		free(c->out);
		c->out = NULL;
		c->out_cap = c->out_off = c->out_len = 0;
	}
	c->state = ST_HEADERS;
}

/* Half-close and drain, so the client reads our error before any reset. */
static void
start_linger(struct server *srv, struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = ST_LINGER;
	if (!timer_arm(&srv->timers, c, mono_us() + LINGER_US))
		c->state = ST_CLOSED;
}

static void
conn_drive(struct server *srv, struct conn *c)
{
	for (;;) {
		int rc;

		switch (c->state) {
		case ST_HEADERS:
		case ST_BODY_LENGTH:
		case ST_BODY_CHUNKED:
			rc = parse_request(srv, c);
			if (rc == 0) {
				if (c->in_len < srv->max_in_cap)
					goto settle;
				start_error(c, 413);	/* cannot make progress */
			} else if (rc == 1)
				handle_request(srv, c);
			else
				start_error(c, rc);
			break;
		case ST_RESPONDING:
			rc = flush_output(srv, c);
			if (rc < 0)
				c->state = ST_CLOSED;
			else if (rc == 0)
				goto settle;
			else if (!c->close_after)
				conn_next_request(c);
			else if (c->peer_eof)
				c->state = ST_CLOSED;
			else
				start_linger(srv, c);
			break;
		case ST_CLOSED:
			conn_free(srv, c);
			return;
		case ST_DELAY:
		case ST_HANG:
		case ST_LINGER:
			goto settle;
		}
	}
settle:
	if (c->peer_eof) {
		if (c->state == ST_DELAY || c->state == ST_RESPONDING)
			c->close_after = true;	/* still answer a half-closed client */
		else {
			conn_free(srv, c);
			return;
		}
	}
	update_events(srv, c);
}

static void
conn_read(struct server *srv, struct conn *c)
{
	ssize_t n;

	if (c->state == ST_HANG || c->state == ST_LINGER) {
		char scratch[16384];

		n = read(c->fd, scratch, sizeof scratch);
		if (n == 0)
			c->peer_eof = true;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->state = ST_CLOSED;
		return;
	}
	if (c->in_len == c->in_cap) {
		size_t cap = c->in_cap * 2;

		if (!is_reading_state(c->state) || c->in_cap >= srv->max_in_cap)
			return;
		if (cap > srv->max_in_cap)
			cap = srv->max_in_cap;
		if (!in_reserve(c, cap)) {
			c->state = ST_CLOSED;
			return;
		}
	}
	n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n > 0)
		c->in_len += (size_t) n;
	else if (n == 0)
		c->peer_eof = true;
	else if (errno != EAGAIN && errno != EINTR)
		c->state = ST_CLOSED;
}

static void
conn_event(struct server *srv, struct conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP))
		c->state = ST_CLOSED;	/* reset or fully closed: nothing can be delivered */
	if (c->state != ST_CLOSED && c->state != ST_DELAY && (events & EPOLLOUT) &&
	    flush_output(srv, c) < 0)
		c->state = ST_CLOSED;
	if (c->state != ST_CLOSED && (events & EPOLLIN))
		conn_read(srv, c);
	conn_drive(srv, c);
}

static void
accept_connections(struct server *srv)
{
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;
		struct conn *c;
		struct epoll_event ev;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && srv->reserve_fd >= 0) {
				/* Out of fds: accept-and-close one so the listener does not spin. */
				close(srv->reserve_fd);
				fd = accept(srv->listen_fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = calloc(1, sizeof *c);
		if (c)
			c->in = malloc(IN_BUF_INITIAL);
		if (!c || !c->in) {
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->in_cap = IN_BUF_INITIAL;
		c->heap_index = -1;
		c->id = ++srv->next_conn_id;
		c->state = ST_HEADERS;
		c->events = EPOLLIN;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c->in);
			free(c);
			close(fd);
			continue;
		}
		c->next = srv->conns;
		if (srv->conns)
			srv->conns->prev = c;
		srv->conns = c;
		srv->stat_open_conns++;
		srv->stat_accepted++;
	}
}

static void
run_timers(struct server *srv)
{
	int64_t now = mono_us();

	while (srv->timers.len > 0 && srv->timers.items[0]->deadline_us <= now) {
		struct conn *c = srv->timers.items[0];

		timer_cancel(&srv->timers, c);
		if (c->state == ST_DELAY)
			c->state = c->close_planned ? ST_CLOSED : ST_RESPONDING;
		else if (c->state == ST_LINGER)
			c->state = ST_CLOSED;
		conn_drive(srv, c);
	}
}

static int
wait_timeout_ms(const struct server *srv)
{
	int64_t due = INT64_MAX, now, ms;

	if (srv->timers.len > 0)
		due = srv->timers.items[0]->deadline_us;
	if (srv->log.len > 0 && srv->log.flush_due_us < due)
		due = srv->log.flush_due_us;
	if (srv->stop_at_us > 0 && srv->stop_at_us < due)
		due = srv->stop_at_us;
	if (due == INT64_MAX)
		return -1;
	now = mono_us();
	if (due <= now)
		return 0;
	ms = (due - now + 999) / 1000;	/* round up: never wake before a deadline */
	return ms > 60000 ? 60000 : (int) ms;
}

/* ---------------------------------------------------------------- setup */

static void
usage(FILE *f)
{
	fputs(
	"usage: receiver [--host ADDR] [--port N] [--port-file FILE] [--log FILE|-] [--quiet]\n"
	"                [--max-seconds N] [--max-body BYTES]\n"
	"\n"
	"HTTP/1.1 receiver on 127.0.0.1 (or --host, an IPv4 or IPv6 address such as\n"
	"127.0.0.2 or ::1) for webhook tests.  Per-request behaviour\n"
	"comes from the query string:\n"
	"  status=NNN       response status (200..599, default 200)\n"
	"  status=NNNxK     NNN for the first K requests with the same path+key, then 200\n"
	"  key=K            counter key for status=NNNxK (default: the path alone)\n"
	"  delay_ms=N       answer after N ms (other connections are not blocked)\n"
	"  body_bytes=N     response body of N bytes of 'x' (max 64 MiB, streamed)\n"
	"  redirect=URL     302 (or status=3xx) with Location: URL (percent-decoded)\n"
	"  retry_after=S    add Retry-After: S\n"
	"  close=1|rst      close without answering (FIN, or a TCP reset)\n"
	"  hang=1           never answer\n"
	"  garbage=1        answer with a line that is not an HTTP status line, then close\n"
	"  header_bytes=N   add an X-Padding header of N bytes (max 16 MiB)\n"
	"GET /__stats returns {\"requests\":N,\"bytes\":M,...,\"last_at\":T,\"max_gap_ms\":G,\n"
	"  \"max_gap_end\":E,\"max_turn_ms\":B}: the longest interval between two consecutive\n"
	"  counted requests and when it ended, and the longest the receiver itself was busy or\n"
	"  blocked between two waits; /__reset clears counters and all three.\n"
	"GET /__plan?path=/P&q=QUERY (QUERY percent-encoded) answers every later request to /P\n"
	"  as if its query string were QUERY, whatever it is; q empty forgets the plan of /P.\n"
	"  So a test can make an endpoint fail, hang or answer 429, then recover.\n"
	"A request in absolute form (http://host/path, as sent to a proxy) is served as /path.\n"
	"--port 0 picks a free port; --log appends one JSON line per request.\n",
	f);
}

/* A listening socket on host (an IPv4 or IPv6 address) and port; -1 on failure. */
static int
open_listener(const char *host, int port)
{
	struct sockaddr_in addr4;
	struct sockaddr_in6 addr6;
	struct sockaddr *addr;
	socklen_t len;
	int fd, one = 1;

	memset(&addr4, 0, sizeof addr4);
	memset(&addr6, 0, sizeof addr6);
	if (inet_pton(AF_INET, host, &addr4.sin_addr) == 1) {
		addr4.sin_family = AF_INET;
		addr4.sin_port = htons((uint16_t) port);
		addr = (struct sockaddr *) &addr4;
		len = sizeof addr4;
	} else if (inet_pton(AF_INET6, host, &addr6.sin6_addr) == 1) {
		addr6.sin6_family = AF_INET6;
		addr6.sin6_port = htons((uint16_t) port);
		addr = (struct sockaddr *) &addr6;
		len = sizeof addr6;
	} else {
		errno = EINVAL;
		return -1;
	}
	fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, addr, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
write_port_file(const char *path, int port)
{
	char tmp[4096], text[32];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long) getpid());
	int len = snprintf(text, sizeof text, "%d\n", port);
	int fd;

	if (n < 0 || (size_t) n >= sizeof tmp)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, text, (size_t) len) != len) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Many concurrent connections need more than the usual 1024 descriptors. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'f'},
		{"log", required_argument, NULL, 'l'},
		{"quiet", no_argument, NULL, 'q'},
		{"max-seconds", required_argument, NULL, 's'},
		{"max-body", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct server srv;
	const char *port_file = NULL, *log_path = NULL, *host = "127.0.0.1";
	uint64_t port = 0, max_seconds = 0, max_body = DEFAULT_MAX_BODY;
	struct epoll_event ev, events[MAX_EVENTS];
	struct sockaddr_storage bound;
	socklen_t bound_len = sizeof bound;
	sigset_t sigs;
	int opt;

	memset(&srv, 0, sizeof srv);
	srv.log.fd = -1;
	while ((opt = getopt_long(argc, argv, "H:p:f:l:qs:b:h", options, NULL)) != -1) {
		switch (opt) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			if (!parse_u64(optarg, strlen(optarg), 65535, &port))
				goto bad_usage;
			break;
		case 'f':
			port_file = optarg;
			break;
		case 'l':
			log_path = strcmp(optarg, "-") == 0 ? NULL : optarg;
			break;
		case 'q':
			srv.quiet = true;
			break;
		case 's':
			if (!parse_u64(optarg, strlen(optarg), 100000000, &max_seconds))
				goto bad_usage;
			break;
		case 'b':
			if (!parse_u64(optarg, strlen(optarg), 1ULL << 30, &max_body))
				goto bad_usage;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad_usage;
		}
	}
	if (optind != argc)
		goto bad_usage;

	srv.max_body = (size_t) max_body;
	srv.max_in_cap = MAX_HEADER_BYTES + srv.max_body + 64 * 1024;
	srv.pattern = malloc(PATTERN_BYTES);
	if (!srv.pattern)
		return 1;
	memset(srv.pattern, 'x', PATTERN_BYTES);
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);

	if (log_path) {
		srv.log.fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (srv.log.fd < 0) {
			fprintf(stderr, "receiver: %s: %s\n", log_path, strerror(errno));
			return 1;
		}
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	srv.signal_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	srv.epfd = epoll_create1(EPOLL_CLOEXEC);
	srv.listen_fd = open_listener(host, (int) port);
	srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (srv.signal_fd < 0 || srv.epfd < 0 || srv.listen_fd < 0) {
		fprintf(stderr, "receiver: cannot listen on %s port %" PRIu64 ": %s\n", host, port, strerror(errno));
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &srv.listen_tag;
	epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.listen_fd, &ev);
	ev.data.ptr = &srv.signal_tag;
	epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.signal_fd, &ev);

	if (getsockname(srv.listen_fd, (struct sockaddr *) &bound, &bound_len) < 0)
		return 1;
	port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
		     : ((struct sockaddr_in *) &bound)->sin_port);
	if (port_file && write_port_file(port_file, (int) port) < 0) {
		fprintf(stderr, "receiver: writing %s: %s\n", port_file, strerror(errno));
		return 1;
	}
	if (!srv.quiet) {
		bool v6 = strchr(host, ':') != NULL;

		printf("listening on %s%s%s:%" PRIu64 "\n", v6 ? "[" : "", host, v6 ? "]" : "", port);
		fflush(stdout);
	}
	if (max_seconds > 0)
		srv.stop_at_us = mono_us() + (int64_t) max_seconds * 1000000;

	while (!srv.stopping) {
		int n = epoll_wait(srv.epfd, events, MAX_EVENTS, wait_timeout_ms(&srv));
		int64_t turn_began = mono_us();
		int64_t turn_us;

		if (n < 0 && errno != EINTR) {
			perror("receiver: epoll_wait");
			break;
		}
		for (int i = 0; i < n; i++) {
			void *tag = events[i].data.ptr;

			if (tag == &srv.listen_tag)
				accept_connections(&srv);
			else if (tag == &srv.signal_tag) {
				struct signalfd_siginfo si;

				while (read(srv.signal_fd, &si, sizeof si) == (ssize_t) sizeof si)
					srv.stopping = true;
			} else
				conn_event(&srv, tag, events[i].events);
		}
		run_timers(&srv);
		if (srv.log.len > 0 && mono_us() >= srv.log.flush_due_us)
			log_flush(&srv.log);
		if (srv.stop_at_us > 0 && mono_us() >= srv.stop_at_us)
			srv.stopping = true;
		turn_us = mono_us() - turn_began;
		if (turn_us > srv.stat_max_turn_us)
			srv.stat_max_turn_us = turn_us;
	}

	if (srv.log.fd >= 0) {
		log_flush(&srv.log);
		close(srv.log.fd);
	}
	while (srv.conns)
		conn_free(&srv, srv.conns);
	counters_clear(&srv.counters);
	free(srv.timers.items);
	free(srv.log.buf);
	free(srv.pattern);
	close(srv.listen_fd);
	close(srv.epfd);
	close(srv.signal_fd);
	if (srv.reserve_fd >= 0)
		close(srv.reserve_fd);
	return 0;

bad_usage:
	usage(stderr);
	return 2;
}
