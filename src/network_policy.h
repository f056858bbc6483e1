/*
 * network_policy.h
 *		Which addresses the worker may connect to: the built-in list of blocked ranges,
 *		integration.allowed_networks and integration.blocked_networks, and the parser
 *		of IP literals in URLs (network_policy.c).
 *
 * Contract.  A NetworkPolicy is immutable once built.  NetworkPolicyAcquire() and
 * NetworkPolicyRelease() run on a backend's main thread only (they palloc and keep the
 * reference count), as does NetworkPolicyDefineGucs().  Everything else declared here
 * is pure C on its arguments (libc and libcurl's URL parser only: no palloc, no
 * ereport, no setting read) and may run on the HTTP thread, on a policy that the main
 * thread holds a reference to.
 */
#ifndef INTEGRATION_NETWORK_POLICY_H
#define INTEGRATION_NETWORK_POLICY_H

#include <sys/socket.h>

/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" and a NUL */
#define NET_TEXT_MAX 52

/* An IPv4 or IPv6 address; IPv4 in the first 4 bytes. */
typedef struct NetAddr
{
	int			family;			/* AF_INET or AF_INET6 */
	uint8		bytes[16];
} NetAddr;

/* A network in CIDR form: address with its host bits zero, and a prefix length. */
typedef struct NetRange
{
	NetAddr		net;
	int			bits;
	char		cidr[NET_TEXT_MAX]; /* "127.0.0.0/8" */
	const char *label;			/* "loopback"; NULL: from a setting */
} NetRange;

/* Why an address is blocked. */
typedef struct NetVerdict
{
	const NetRange *range;		/* the range that blocks it, in the policy */
	bool		by_setting;		/* in integration.blocked_networks */
	bool		embedded;		/* matched the IPv4 address inside */
} NetVerdict;

typedef struct NetworkPolicy NetworkPolicy;

extern bool integration_https_only;

extern void NetworkPolicyDefineGucs(void);
extern NetworkPolicy *NetworkPolicyAcquire(void);
extern void NetworkPolicyRelease(NetworkPolicy *policy);

extern bool NetworkPolicyBlocks(const NetworkPolicy *policy, const NetAddr *addr,
								NetVerdict *why);
extern bool NetworkPolicyHttpsOnly(const NetworkPolicy *policy);
extern bool NetAddrFromSockaddr(const struct sockaddr *sa, NetAddr *out);
extern bool NetAddrFromText(const char *str, NetAddr *out);
extern bool NetAddrFromUrlHost(const char *host, NetAddr *out);
extern void NetAddrFormat(const NetAddr *addr, char *buf, size_t len);
extern bool NetAddrFromUrl(const char *url, NetAddr *out);
extern void NetVerdictFormat(const NetAddr *addr, const NetVerdict *why, char *buf,
							 size_t len);
extern void NetRefusalFormat(const NetAddr *addr, const NetVerdict *why, bool proxy,
							 char *buf, size_t len);

#endif
