/*
 * curl_ceiling: the throughput a plain libcurl multi client reaches against
 * a webhook receiver, as the ceiling the extension's delivery worker is
 * compared with.
 *
 * Design
 *   One curl multi handle with C easy handles that are reused for the whole
 *   run, so connections stay in the multi's cache and are kept alive; the
 *   connection limit is C, so there are exactly C keep-alive connections.
 *   Every finished transfer is immediately replaced by a new one until N have
 *   been started, which keeps C requests in flight.  Each request carries a
 *   JSON body and Standard-Webhooks style headers of realistic size with a
 *   fresh webhook-id, so the per-request work resembles a real delivery.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BODY_BYTES	256
#define MAX_REPORTED_ERRORS	5

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	char error[CURL_ERROR_SIZE];
};

struct run {
	const char *url;
	const char *body;
	size_t body_len;
	uint64_t started;
	uint64_t finished;
	uint64_t ok_2xx;
	uint64_t failed;
	unsigned errors_reported;
};

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* A JSON event padded to exactly `bytes` (or the smallest valid event). */
static char *
make_body(size_t bytes, size_t *len)
{
	static const char head[] =
		"{\"type\":\"invoice.paid\",\"timestamp\":\"2024-01-01T00:00:00Z\","
		"\"data\":{\"id\":\"inv_0001\",\"amount\":4200,\"pad\":\"";
	static const char tail[] = "\"}}";
	size_t fixed = sizeof head - 1 + sizeof tail - 1;
	size_t total = bytes > fixed ? bytes : fixed;
	char *body = malloc(total + 1);

	if (!body)
		return NULL;
	memcpy(body, head, sizeof head - 1);
	memset(body + sizeof head - 1, 'x', total - fixed);
	memcpy(body + total - (sizeof tail - 1), tail, sizeof tail);
	*len = total;
	return body;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0, used = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t n;

		if (used == cap) {
			char *grown;

			cap = cap ? cap * 2 : 65536;
			grown = realloc(data, cap);
			if (!grown) {
				free(data);
				fclose(f);
				return NULL;
			}
			data = grown;
		}
		n = fread(data + used, 1, cap - used, f);
		used += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(data);
		data = NULL;
	}
	fclose(f);
	*len = used;
	return data;
}

/*
 * Standard Webhooks header shapes: a 31-character message id, a unix
 * timestamp and a "v1,<base64 HMAC-SHA256>" signature.  The id changes per
 * request, so the header list is rebuilt each time as a sender would.
 */
static bool
prepare(struct run *run, struct slot *slot, uint64_t seq)
{
	char line[160];
	struct curl_slist *list = NULL, *next;

	curl_slist_free_all(slot->headers);
	slot->headers = NULL;
	list = curl_slist_append(list, "Content-Type: application/json");
	snprintf(line, sizeof line, "webhook-id: msg_2ZbcJ1yVq8XhR0t%012" PRIu64, seq);
	if (list && (next = curl_slist_append(list, line)))
		list = next;
	else
		goto fail;
	snprintf(line, sizeof line, "webhook-timestamp: %lld", (long long) time(NULL));
	if ((next = curl_slist_append(list, line)))
		list = next;
	else
		goto fail;
	if ((next = curl_slist_append(list,
			"webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")))
		list = next;
	else
		goto fail;
	/* No Expect: 100-continue round trip for larger bodies. */
	if ((next = curl_slist_append(list, "Expect:")))
		list = next;
	else
		goto fail;
	slot->headers = list;
	slot->error[0] = '\0';
	curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, slot->headers);
	curl_easy_setopt(slot->easy, CURLOPT_URL, run->url);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, run->body);
	curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) run->body_len);
	return true;
fail:
	curl_slist_free_all(list);
	return false;
}

static CURL *
new_easy(struct slot *slot)
{
	CURL *easy = curl_easy_init();

	if (!easy)
		return NULL;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, slot);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, slot->error);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	return easy;
}

static void
usage(FILE *f)
{
	fputs("usage: curl_ceiling --url URL --count N --concurrency C\n"
	      "                    [--body-file FILE | --body-bytes B] [--max-seconds S]\n"
	      "POSTs N JSON webhook requests keeping C in flight over C keep-alive\n"
	      "connections; exits non-zero unless every request got a 2xx.\n", f);
}

static void
report_failure(struct run *run, const struct slot *slot, CURLcode rc, long status)
{
	if (run->errors_reported++ >= MAX_REPORTED_ERRORS)
		return;
	if (rc != CURLE_OK)
		fprintf(stderr, "curl_ceiling: transfer failed: %s\n",
			slot->error[0] ? slot->error : curl_easy_strerror(rc));
	else
		fprintf(stderr, "curl_ceiling: HTTP status %ld\n", status);
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"url", required_argument, NULL, 'u'},
		{"count", required_argument, NULL, 'n'},
		{"concurrency", required_argument, NULL, 'c'},
		{"body-file", required_argument, NULL, 'f'},
		{"body-bytes", required_argument, NULL, 'b'},
		{"max-seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct run run = {0};
	const char *body_file = NULL;
	uint64_t count = 0, concurrency = 1, body_bytes = DEFAULT_BODY_BYTES, max_seconds = 120;
	struct slot *slots;
	CURLM *multi;
	char *body;
	double start, elapsed, deadline;
	bool timed_out = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "u:n:c:f:b:s:h", options, NULL)) != -1) {
		switch (opt) {
		case 'u':
			run.url = optarg;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, UINT64_C(1) << 40, &count))
				goto bad_usage;
			break;
		case 'c':
			if (!parse_u64(optarg, 1, 10000, &concurrency))
				goto bad_usage;
			break;
		case 'f':
			body_file = optarg;
			break;
		case 'b':
			if (!parse_u64(optarg, 0, 64 * 1024 * 1024, &body_bytes))
				goto bad_usage;
			break;
		case 's':
			if (!parse_u64(optarg, 1, 86400, &max_seconds))
				goto bad_usage;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad_usage;
		}
	}
	if (!run.url || count == 0 || optind != argc)
		goto bad_usage;
	if (concurrency > count)
		concurrency = count;

	body = body_file ? read_file(body_file, &run.body_len) : make_body((size_t) body_bytes, &run.body_len);
	if (!body) {
		fprintf(stderr, "curl_ceiling: cannot load body%s%s\n", body_file ? " from " : "",
			body_file ? body_file : "");
		return 2;
	}
	run.body = body;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	slots = calloc((size_t) concurrency, sizeof *slots);
	if (!multi || !slots)
		return 1;
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) concurrency);

	start = now_seconds();
	deadline = start + (double) max_seconds;
	for (uint64_t i = 0; i < concurrency; i++) {
		slots[i].easy = new_easy(&slots[i]);
		if (!slots[i].easy || !prepare(&run, &slots[i], run.started))
			return 1;
		curl_multi_add_handle(multi, slots[i].easy);
		run.started++;
	}

	while (run.finished < run.started) {
		int running = 0, queued;
		CURLMsg *msg;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &queued))) {
			struct slot *slot;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			run.finished++;
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
				run.ok_2xx++;
			else {
				run.failed++;
				report_failure(&run, slot, msg->data.result, status);
			}
			/* Remove and re-add: the connection returns to the cache and is reused. */
			curl_multi_remove_handle(multi, slot->easy);
			if (run.started < count && !timed_out) {
				if (!prepare(&run, slot, run.started))
					return 1;
				curl_multi_add_handle(multi, slot->easy);
				run.started++;
			}
		}
		if (run.finished == run.started)
			break;
		if (!timed_out && now_seconds() > deadline) {
			timed_out = true;
			break;
		}
		if (curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	}
	elapsed = now_seconds() - start;

	printf("curl_ceiling: %" PRIu64 " requests, %" PRIu64 " concurrency, %.2f s, %.0f req/s, 2xx=%" PRIu64 "\n",
	       run.finished, concurrency, elapsed,
	       elapsed > 0 ? (double) run.finished / elapsed : 0.0, run.ok_2xx);
	if (timed_out)
		fprintf(stderr, "curl_ceiling: stopped after %" PRIu64 " s with %" PRIu64 " of %" PRIu64 " done\n",
			max_seconds, run.finished, count);

	for (uint64_t i = 0; i < concurrency; i++) {
		if (!slots[i].easy)
			continue;
		curl_multi_remove_handle(multi, slots[i].easy);
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].headers);
	}
	free(slots);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	free(body);
	return (run.failed == 0 && run.ok_2xx == count) ? 0 : 1;

bad_usage:
	usage(stderr);
	return 2;
}
