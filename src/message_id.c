/*
 * message_id.c
 *		Message ids: the webhook-id every event is sent with.
 *
 * An id is "msg_" and 22 base62 characters that spell a 128-bit number: its first
 * 48 bits are the Unix time in milliseconds, the other 80 random.  No counter and no
 * coordination is involved, so ids stay unique across databases, across a dropped
 * and re-created extension and across a point-in-time restore, where a sequence
 * would start again from a value it has already handed out; and an id tells a
 * receiver nothing about how many events other tenants publish.  Two ids made in the
 * same millisecond collide with probability 2^-80.  The fixed width and an alphabet
 * in ASCII order make ids sort by time in the C collation, which keeps an index on
 * them (a receiver's dedupe table, say) appending at its right edge.
 *
 * PostgreSQL 15 has no UUIDv7 generator, and a receiver sees text anyway; this is
 * the shape Svix's ids have, "msg_" and base62.
 */
#include "postgres.h"

#include <openssl/rand.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "message_id.h"

#define MESSAGE_ID_PREFIX "msg_"
#define MESSAGE_ID_DIGITS 22	/* 62^22 > 2^128 */

StaticAssertDecl(sizeof(MESSAGE_ID_PREFIX) - 1 + MESSAGE_ID_DIGITS == MESSAGE_ID_LEN,
				 "MESSAGE_ID_LEN is the prefix and the digits");

/*
 * The random bits come from OpenSSL a pool at a time.  RAND_bytes() checks for a fork
 * (getpid()) and takes its locks at every call: 10 bytes a call, once per event, that
 * was about a tenth of a bulk publish's time (perf of bench/run publish's INSERT of
 * 100,000 tracked rows).  The pool belongs to the process that drew it (MyProcPid),
 * so a child never reuses its parent's bytes.
 */
#define RANDOM_POOL_BYTES 1000
static uint8 random_pool[RANDOM_POOL_BYTES];
static int	random_left = 0;
static int	random_owner = 0;

static void
random_bytes(uint8 *dst, int n)
{
	Assert(n <= RANDOM_POOL_BYTES);
	if (random_left < n || random_owner != MyProcPid)
	{
		if (RAND_bytes(random_pool, sizeof(random_pool)) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a message id"),
					 errdetail("OpenSSL's random number generator failed.")));
		random_left = sizeof(random_pool);
		random_owner = MyProcPid;
	}
	memcpy(dst, random_pool + sizeof(random_pool) - random_left, n);
	random_left -= n;
}

/* Unix time in milliseconds, from PostgreSQL's clock. */
static uint64
unix_millis(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return (uint64) (now / 1000) +
		(uint64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

/* See message_id.h */
void
MessageIdFill(char *dst)
{
	static const char digits[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	uint8		n[16];			/* big-endian */
	uint32		limbs[4];
	uint64		ms = unix_millis();

	for (int i = 0; i < 6; i++)
		n[i] = (uint8) (ms >> (8 * (5 - i)));
	random_bytes(n + 6, sizeof(n) - 6);

	memcpy(dst, MESSAGE_ID_PREFIX, sizeof(MESSAGE_ID_PREFIX) - 1);

	/* The number as four 32-bit limbs, most significant first. */
	for (int i = 0; i < 4; i++)
		limbs[i] = (uint32) n[4 * i] << 24 | (uint32) n[4 * i + 1] << 16 |
			(uint32) n[4 * i + 2] << 8 | n[4 * i + 3];

	/*
	 * Long division of the 128-bit number by 62, one digit per pass, lowest
	 * first.
	 */
	for (int d = MESSAGE_ID_LEN - 1; d >= (int) sizeof(MESSAGE_ID_PREFIX) - 1; d--)
	{
		uint64		rem = 0;

		for (int i = 0; i < 4; i++)
		{
			uint64		cur = (rem << 32) | limbs[i];

			limbs[i] = (uint32) (cur / 62);
			rem = cur % 62;
		}
		dst[d] = digits[rem];
	}
	dst[MESSAGE_ID_LEN] = '\0';
}

/* See message_id.h */
char *
MessageIdGenerate(void)
{
	char	   *id = palloc(MESSAGE_ID_LEN + 1);

	MessageIdFill(id);
	return id;
}

/* See message_id.h */
Datum
MessageIdGenerateText(void)
{
	char		id[MESSAGE_ID_LEN + 1];

	MessageIdFill(id);
	return PointerGetDatum(cstring_to_text_with_len(id, MESSAGE_ID_LEN));
}

/*
 * integration.new_message_id() returns text: the default of
 * webhook_events.message_id, for rows written with plain SQL.
 */
PG_FUNCTION_INFO_V1(integration_new_message_id);
Datum
integration_new_message_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(MessageIdGenerateText());
}
