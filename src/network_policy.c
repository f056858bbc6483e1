/*
 * network_policy.c
 *		Which addresses webhook requests may reach: the built-in blocked ranges, the
 *		settings that open and add ranges, and IP literals in URLs.
 *
 * The check that matters is made when the worker connects, after DNS, on the address
 * libcurl is about to open a socket to (http_curl.c): a host name can resolve to
 * 127.0.0.1, and a DNS answer can change between any earlier check and the connect.
 * Registration refuses only what it can decide from the URL alone, a host written as
 * an IP address (validate.c).
 *
 * The judgement of one address, first match wins:
 *   1. in integration.blocked_networks: blocked (the operator said so);
 *   2. in integration.allowed_networks: allowed (opened on purpose, e.g. '127.0.0.1/32'
 *      for tests or '10.20.0.0/16' for an internal ERP);
 *   3. in the built-in list (loopback, private, link-local, ...): blocked;
 *   4. otherwise allowed.
 * An IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:0:0/96,
 * IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by each step on
 * the IPv6 address first and on the IPv4 address inside it second, so ::ffff:127.0.0.1
 * is loopback and '127.0.0.1/32' opens it too.  Teredo 2001::/32 is blocked whole: its
 * addresses carry a client's IPv4 address too (inverted), and a host with a Teredo
 * interface sends to them over UDP to that address, but no webhook receiver is on one.
 *
 * Threads.  The settings are parsed once, in their check hooks.  A NetworkPolicy is
 * an immutable snapshot of them and of the built-in list, built on a backend's main
 * thread when a setting has changed since the last one (NetworkPolicyAcquire()).  Each
 * HTTP request holds a reference to the snapshot in force when it started, taken and
 * dropped on the main thread (http_client.c), so the HTTP thread reads a snapshot that
 * cannot change or go away under it, and needs no lock of its own: the request, and
 * with it the pointer, crosses threads under http_thread.c's mutex.  Everything below
 * the "Pure functions" line calls libc (and libcurl's URL parser) only.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>

#include "utils/guc.h"
#include "utils/memutils.h"

#include "integration.h"
#include "network_policy.h"

struct NetworkPolicy
{
	int			refs;			/* main thread only */
	uint64		generation;		/* settings_generation when built */
	bool		https_only;
	int			nblocked;		/* ranges[0, nblocked): blocked_networks */
	int			nallowed;		/* then allowed_networks */
	int			nbuiltin;		/* then the built-in list */
	NetRange	ranges[FLEXIBLE_ARRAY_MEMBER];
};

/* A parsed setting: the extra of its check hook (malloc'd, owned by the GUC code). */
typedef struct NetRangeList
{
	int			n;
	NetRange	ranges[FLEXIBLE_ARRAY_MEMBER];
} NetRangeList;

/* Blocked unless allowed_networks opens them; labels appear in error messages. */
static const struct
{
	const char *cidr;
	const char *label;
}			builtin_ranges[] =

{
	{"0.0.0.0/8", "\"this\" network"},
	{"10.0.0.0/8", "private"},
	{"100.64.0.0/10", "shared address space, CGNAT"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local, cloud metadata"},
	{"172.16.0.0/12", "private"},
	{"192.0.0.0/24", "IETF protocol assignments"},
	{"192.0.2.0/24", "documentation"},
	{"192.168.0.0/16", "private"},
	{"198.18.0.0/15", "benchmarking"},
	{"198.51.100.0/24", "documentation"},
	{"203.0.113.0/24", "documentation"},
	{"224.0.0.0/4", "multicast"},
	{"255.255.255.255/32", "broadcast"},
	{"240.0.0.0/4", "reserved"},
	{"::/128", "unspecified"},
	{"::1/128", "loopback"},
	{"100::/64", "discard-only"},
	{"64:ff9b:1::/48", "NAT64, local use"},
	{"2001::/32", "Teredo"},
	{"2001:2::/48", "benchmarking"},
	{"2001:db8::/32", "documentation"},
	{"fc00::/7", "unique local"},
	{"fe80::/10", "link-local"},
	{"fec0::/10", "site-local"},
	{"ff00::/8", "multicast"},
};

bool		integration_https_only = false;
static char *allowed_networks_string = NULL;
static char *blocked_networks_string = NULL;

/* The parsed settings in force, and a counter bumped whenever one of them changes. */
static const NetRangeList *allowed_networks;
static const NetRangeList *blocked_networks;
static uint64 settings_generation = 1;

/* This backend's latest snapshot; it holds one reference to it. */
static NetworkPolicy *current_policy;

typedef enum CidrError
{
	CIDR_OK,
	CIDR_SYNTAX,
	CIDR_PREFIX,
	CIDR_HOST_BITS
} CidrError;

static CidrError parse_cidr(const char *str, NetRange *out);

/* ------------------------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------------------------ */

/*
 * Check hook of both network lists: parses "10.0.0.0/8, fd00::/8" into a NetRangeList.
 * Refuses an entry that is not a network in CIDR form, or that has host bits set (as
 * the cidr type does), so that what is opened or blocked is exactly what is written.
 */
static bool
check_networks(char **newval, void **extra, GucSource source)
{
	const char *s = *newval ? *newval : "";
	int			max = 1;
	NetRangeList *list;
	char	   *copy;
	bool		ok = true;

	for (const char *p = s; *p; p++)
		if (*p == ',')
			max++;
	list = malloc(offsetof(NetRangeList, ranges) + sizeof(NetRange) * max);
	copy = strdup(s);
	if (list == NULL || copy == NULL)
	{
		free(list);
		free(copy);
		return false;
	}
	list->n = 0;

	for (char *next = copy; next != NULL && ok;)
	{
		char	   *tok = NextListEntry(&next);

		if (*tok == '\0' && next == NULL && list->n == 0)
			break;				/* the empty list */
		switch (parse_cidr(tok, &list->ranges[list->n]))
		{
			case CIDR_OK:
				list->n++;
				continue;
			case CIDR_SYNTAX:
				if (*tok == '\0')
					GUC_check_errdetail("The list has an empty entry.");
				else
					GUC_check_errdetail("\"%s\" is not an IPv4 or IPv6 network in CIDR notation.", tok);
				break;
			case CIDR_PREFIX:
				GUC_check_errdetail("The prefix length of \"%s\" is out of range: 0 to 32 for IPv4, 0 to 128 for IPv6.", tok);
				break;
			case CIDR_HOST_BITS:
				GUC_check_errdetail("\"%s\" has bits set to the right of its prefix length.", tok);
				GUC_check_errhint("Write the network as %s.", list->ranges[list->n].cidr);
				ok = false;
				continue;
		}
		GUC_check_errhint("Write a comma-separated list of networks such as '10.20.0.0/16, fd00:1::/64'; an address alone stands for itself.");
		ok = false;
	}
	free(copy);
	if (!ok)
	{
		free(list);
		return false;
	}
	*extra = list;
	return true;
}

static void
assign_allowed_networks(const char *newval, void *extra)
{
	allowed_networks = (const NetRangeList *) extra;
	settings_generation++;
}

static void
assign_blocked_networks(const char *newval, void *extra)
{
	blocked_networks = (const NetRangeList *) extra;
	settings_generation++;
}

static void
assign_https_only(bool newval, void *extra)
{
	settings_generation++;
}

void
NetworkPolicyDefineGucs(void)
{
	DefineCustomStringVariable("integration.allowed_networks",
							   "Networks that webhook requests may reach although the built-in list blocks them, e.g. '127.0.0.1/32' for tests.",
							   "Comma-separated networks in CIDR notation.  integration.blocked_networks wins over this list.",
							   &allowed_networks_string, "",
							   PGC_SIGHUP, 0,
							   check_networks, assign_allowed_networks, NULL);
	DefineCustomStringVariable("integration.blocked_networks",
							   "Networks that webhook requests may not reach, besides the built-in list.",
							   "Comma-separated networks in CIDR notation.  Wins over integration.allowed_networks.",
							   &blocked_networks_string, "",
							   PGC_SIGHUP, 0,
							   check_networks, assign_blocked_networks, NULL);
	DefineCustomBoolVariable("integration.https_only",
							 "Whether webhook URLs must be https; http URLs are then refused at registration and when sent.",
							 NULL, &integration_https_only, false,
							 PGC_SIGHUP, 0,
							 NULL, assign_https_only, NULL);
}

/* Copies list's ranges into dst; returns how many. */
static int
copy_ranges(NetRange *dst, const NetRangeList *list)
{
	if (list == NULL)
		return 0;
	memcpy(dst, list->ranges, sizeof(NetRange) * list->n);
	return list->n;
}

/*
 * The policy of the settings in force, with a reference for the caller, who gives it
 * back with NetworkPolicyRelease().  Main thread only.  A new snapshot is built only
 * when a setting has changed since the last one.
 */
NetworkPolicy *
NetworkPolicyAcquire(void)
{
	if (current_policy == NULL || current_policy->generation != settings_generation)
	{
		int			nbuiltin = lengthof(builtin_ranges);
		int			nallowed = allowed_networks ? allowed_networks->n : 0;
		int			nblocked = blocked_networks ? blocked_networks->n : 0;
		NetworkPolicy *p;

		p = MemoryContextAllocZero(TopMemoryContext,
								   offsetof(NetworkPolicy, ranges) +
								   sizeof(NetRange) * (nblocked + nallowed + nbuiltin));
		p->refs = 1;			/* current_policy's */
		p->generation = settings_generation;
		p->https_only = integration_https_only;
		p->nblocked = copy_ranges(p->ranges, blocked_networks);
		p->nallowed = copy_ranges(p->ranges + p->nblocked, allowed_networks);
		p->nbuiltin = nbuiltin;
		for (int i = 0; i < nbuiltin; i++)
		{
			NetRange   *r = &p->ranges[p->nblocked + p->nallowed + i];

			if (parse_cidr(builtin_ranges[i].cidr, r) != CIDR_OK)
				elog(ERROR, "bad built-in network \"%s\"", builtin_ranges[i].cidr);
			r->label = builtin_ranges[i].label;
		}
		if (current_policy)
			NetworkPolicyRelease(current_policy);
		current_policy = p;
	}
	current_policy->refs++;
	return current_policy;
}

/* Gives back a reference taken by NetworkPolicyAcquire().  Main thread only. */
void
NetworkPolicyRelease(NetworkPolicy *policy)
{
	Assert(policy->refs > 0);
	if (--policy->refs == 0)
		pfree(policy);
}

/* ------------------------------------------------------------------------------------
 * Pure functions: libc only, safe on the HTTP thread.
 * ------------------------------------------------------------------------------------ */

/* Whether the first r->bits bits of a equal r's network. */
static bool
range_contains(const NetRange *r, const NetAddr *a)
{
	int			full = r->bits / 8;
	int			rest = r->bits % 8;
	uint8		mask;

	if (r->net.family != a->family)
		return false;
	if (memcmp(r->net.bytes, a->bytes, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8) (0xff << (8 - rest));
	return (a->bytes[full] & mask) == r->net.bytes[full];
}

/*
 * The IPv4 address an IPv6 address carries, if it is of a form that does: mapped
 * ::ffff:a.b.c.d, translated ::ffff:0:a.b.c.d, compatible ::a.b.c.d, NAT64
 * 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::.  A connection to any of them can end at
 * that IPv4 address (the kernel maps the first, gateways translate the others).
 */
static bool
embedded_ipv4(const NetAddr *a, NetAddr *v4)
{
	static const uint8 zero[12] = {0};
	const uint8 *b = a->bytes;
	const uint8 *inner;

	if (a->family != AF_INET6)
		return false;
	if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
		inner = b + 12;
	else if (memcmp(b, zero, 8) == 0 && b[8] == 0xff && b[9] == 0xff &&
			 b[10] == 0 && b[11] == 0)
		inner = b + 12;
	else if (memcmp(b, zero, 12) == 0)
		inner = b + 12;
	else if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
			 memcmp(b + 4, zero, 8) == 0)
		inner = b + 12;
	else if (b[0] == 0x20 && b[1] == 0x02)
		inner = b + 2;
	else
		return false;
	memset(v4, 0, sizeof(*v4));
	v4->family = AF_INET;
	memcpy(v4->bytes, inner, 4);
	return true;
}

/* The first of ranges[0, n) that contains a candidate, candidates in order; or NULL. */
static const NetRange *
first_match(const NetRange *ranges, int n, const NetAddr *cand, int ncand, int *which)
{
	for (int c = 0; c < ncand; c++)
		for (int i = 0; i < n; i++)
			if (range_contains(&ranges[i], &cand[c]))
			{
				*which = c;
				return &ranges[i];
			}
	return NULL;
}

/* Whether policy blocks addr; if so, *why says which range does (see the banner). */
bool
NetworkPolicyBlocks(const NetworkPolicy *policy, const NetAddr *addr, NetVerdict *why)
{
	NetAddr		cand[2];
	int			ncand = 1;
	int			which = 0;
	const NetRange *r;

	cand[0] = *addr;
	if (embedded_ipv4(addr, &cand[1]))
		ncand = 2;

	r = first_match(policy->ranges, policy->nblocked, cand, ncand, &which);
	if (r != NULL)
	{
		why->range = r;
		why->by_setting = true;
		why->embedded = which == 1;
		return true;
	}
	if (first_match(policy->ranges + policy->nblocked, policy->nallowed, cand, ncand, &which))
		return false;
	r = first_match(policy->ranges + policy->nblocked + policy->nallowed, policy->nbuiltin,
					cand, ncand, &which);
	if (r != NULL)
	{
		why->range = r;
		why->by_setting = false;
		why->embedded = which == 1;
		return true;
	}
	return false;
}

/* Whether requests under policy must use https (integration.https_only). */
bool
NetworkPolicyHttpsOnly(const NetworkPolicy *policy)
{
	return policy->https_only;
}

/* The address of an AF_INET or AF_INET6 socket address; false for any other family. */
bool
NetAddrFromSockaddr(const struct sockaddr *sa, NetAddr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET)
	{
		out->family = AF_INET;
		memcpy(out->bytes, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6)
	{
		out->family = AF_INET6;
		memcpy(out->bytes, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

/*
 * A textual address in standard form: dotted quad, or IPv6 with an optional zone id
 * ("fe80::1%eth0"), without brackets.
 */
bool
NetAddrFromText(const char *str, NetAddr *out)
{
	char		buf[INET6_ADDRSTRLEN + 1];
	size_t		len = strcspn(str, "%");

	memset(out, 0, sizeof(*out));
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, str, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, out->bytes) == 1)
	{
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, out->bytes) == 1)
	{
		out->family = AF_INET6;
		return true;
	}
	return false;
}

/*
 * An IPv4 address in any form inet_aton() accepts, as the system resolver does, and
 * the way glibc reads it: one to four parts separated by dots, each starting with a
 * digit and read by strtoul() as decimal, octal (leading 0) or hex (leading 0x); the
 * last part fills the bytes that remain, so "127.1" is 127.0.0.1 and "2130706433" is
 * too.
 */
static bool
parse_ipv4_any_form(const char *s, uint8 out[4])
{
	unsigned long parts[4];
	int			n = 0;
	const char *p = s;
	unsigned long v;

	for (;;)
	{
		char	   *end;

		if (*p < '0' || *p > '9' || n == 4)
			return false;
		errno = 0;
		v = strtoul(p, &end, 0);
		if (errno != 0 || v > 0xffffffffUL)
			return false;
		parts[n++] = v;
		p = end;
		if (*p == '.')
			p++;
		else if (*p == '\0')
			break;
		else
			return false;		/* "0x", "08", "1.2.3.4x" */
	}

	v = parts[n - 1];
	if (v > (0xffffffffUL >> (8 * (n - 1))))
		return false;
	for (int i = 0; i < n - 1; i++)
	{
		if (parts[i] > 255)
			return false;
		v |= parts[i] << (8 * (3 - i));
	}
	out[0] = (uint8) (v >> 24);
	out[1] = (uint8) (v >> 16);
	out[2] = (uint8) (v >> 8);
	out[3] = (uint8) v;
	return true;
}

/*
 * The address a URL's host stands for when it is an IP literal: "[::1]" and
 * "[fe80::1%25eth0]" (zone ids ignored), or an IPv4 address in any form the resolver
 * accepts, with one trailing dot ignored.  False for a host name.
 */
bool
NetAddrFromUrlHost(const char *host, NetAddr *out)
{
	char		buf[256];
	size_t		len = strlen(host);

	memset(out, 0, sizeof(*out));
	if (host[0] == '[')
	{
		if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(buf))
			return false;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		buf[strcspn(buf, "%")] = '\0';
		if (inet_pton(AF_INET6, buf, out->bytes) != 1)
			return false;
		out->family = AF_INET6;
		return true;
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, host, len + 1);
	if (buf[len - 1] == '.')
		buf[len - 1] = '\0';
	if (strchr(buf, ':'))
		return NetAddrFromText(buf, out);
	if (!parse_ipv4_any_form(buf, out->bytes))
		return false;
	out->family = AF_INET;
	return true;
}

/* addr in standard form, e.g. "127.0.0.1" or "::ffff:127.0.0.1". */
void
NetAddrFormat(const NetAddr *addr, char *buf, size_t len)
{
	if (inet_ntop(addr->family, addr->bytes, buf, len) == NULL)
		strlcpy(buf, "?", len);
}

/*
 * Why addr is blocked, as a clause: "127.0.0.0/8 (loopback) is blocked", "10.0.0.0/8
 * is in integration.blocked_networks", or for an address judged by the IPv4 address
 * it carries "its IPv4 address 127.0.0.1 is in 127.0.0.0/8 (loopback), which is
 * blocked".
 */
void
NetVerdictFormat(const NetAddr *addr, const NetVerdict *why, char *buf, size_t len)
{
	const char *what = why->by_setting ? "in integration.blocked_networks" : "blocked";
	NetAddr		v4;

	if (why->embedded && embedded_ipv4(addr, &v4))
	{
		char		inner[INET6_ADDRSTRLEN];

		NetAddrFormat(&v4, inner, sizeof(inner));
		if (why->by_setting)
			snprintf(buf, len, "its IPv4 address %s is in %s, which is %s",
					 inner, why->range->cidr, what);
		else
			snprintf(buf, len, "its IPv4 address %s is in %s (%s), which is %s",
					 inner, why->range->cidr, why->range->label, what);
	}
	else if (why->by_setting)
		snprintf(buf, len, "%s is %s", why->range->cidr, what);
	else
		snprintf(buf, len, "%s (%s) is %s", why->range->cidr, why->range->label, what);
}

/*
 * The message of a refused connection: "connection to 127.0.0.1 refused: 127.0.0.0/8
 * (loopback) is blocked; see integration.allowed_networks".  proxy: addr is the
 * proxy's.
 */
void
NetRefusalFormat(const NetAddr *addr, const NetVerdict *why, bool proxy, char *buf,
				 size_t len)
{
	char		addr_text[INET6_ADDRSTRLEN];
	char		reason[256];

	NetAddrFormat(addr, addr_text, sizeof(addr_text));
	NetVerdictFormat(addr, why, reason, sizeof(reason));
	snprintf(buf, len, "connection to %s%s refused: %s%s",
			 proxy ? "proxy " : "", addr_text, reason,
			 why->by_setting ? "" : "; see integration.allowed_networks");
}

/* The address of url's host when the host is an IP literal (NetAddrFromUrlHost()). */
bool
NetAddrFromUrl(const char *url, NetAddr *out)
{
	CURLU	   *h = curl_url();
	char	   *host = NULL;
	bool		found = false;

	if (h == NULL)
		return false;
	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		found = NetAddrFromUrlHost(host, out);
		curl_free(host);
	}
	curl_url_cleanup(h);
	return found;
}

/*
 * Parses "a.b.c.d/n", "x:y::z/n", or an address alone (a /32 or /128), strictly, into
 * out.  On CIDR_HOST_BITS, out->cidr is the network the entry probably meant.
 */
static CidrError
parse_cidr(const char *str, NetRange *out)
{
	char		buf[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(str, '/');
	size_t		len = slash ? (size_t) (slash - str) : strlen(str);
	int			maxbits;
	int			bits;
	bool		host_bits = false;
	char		addr_text[INET6_ADDRSTRLEN];

	memset(out, 0, sizeof(*out));
	if (len == 0 || len >= sizeof(buf))
		return CIDR_SYNTAX;
	memcpy(buf, str, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, out->net.bytes) == 1)
	{
		out->net.family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, out->net.bytes) == 1)
	{
		out->net.family = AF_INET6;
		maxbits = 128;
	}
	else
		return CIDR_SYNTAX;

	bits = maxbits;
	if (slash)
	{
		const char *p = slash + 1;

		if (*p == '\0' || strlen(p) > 3)
			return CIDR_SYNTAX;
		bits = 0;
		for (; *p; p++)
		{
			if (*p < '0' || *p > '9')
				return CIDR_SYNTAX;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > maxbits)
			return CIDR_PREFIX;
	}
	out->bits = bits;

	/* Clear the host bits, noting whether any was set. */
	for (int i = 0; i < maxbits / 8; i++)
	{
		int			keep = Min(Max(bits - i * 8, 0), 8);
		uint8		mask = keep == 0 ? 0 : (uint8) (0xff << (8 - keep));

		if (out->net.bytes[i] & ~mask)
			host_bits = true;
		out->net.bytes[i] &= mask;
	}
	NetAddrFormat(&out->net, addr_text, sizeof(addr_text));
	snprintf(out->cidr, sizeof(out->cidr), "%s/%d", addr_text, bits);
	return host_bits ? CIDR_HOST_BITS : CIDR_OK;
}
