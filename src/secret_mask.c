/*
 * secret_mask.c
 *		How every listing shows a secret: eight stars, after the "whsec_" prefix when
 *		it has one, and then its last four characters only when it has sixteen or
 *		more.
 *
 * The one rule for endpoint secrets, custom header values, connector credentials and
 * inbound secrets alike, so that no listing shows more of a value than another does.
 * The last four characters tell a user which of their secrets is set; of a short
 * value (an API key of eight characters, "billing") they would be half of it or all,
 * so a short value shows none.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "secret_mask.h"

#define MASK_PREFIX "whsec_"
#define MASK_STARS "********"
/* A value shows its last four characters only when it has this many or more. */
#define MASK_MIN_CHARS_FOR_TAIL 16

/* A secret's plaintext, plain[0 .. len), as listings show it (palloc'd). */
char *
SecretMasked(const char *plain, int len)
{
	StringInfoData buf;
	int			nchars = pg_mbstrlen_with_len(plain, len);

	initStringInfo(&buf);
	if (len >= (int) strlen(MASK_PREFIX) && strncmp(plain, MASK_PREFIX, strlen(MASK_PREFIX)) == 0)
		appendStringInfoString(&buf, MASK_PREFIX);
	appendStringInfoString(&buf, MASK_STARS);
	if (nchars >= MASK_MIN_CHARS_FOR_TAIL)
	{
		const char *tail = plain;

		for (int i = 0; i < nchars - 4; i++)
			tail += pg_mblen(tail);
		appendBinaryStringInfo(&buf, tail, len - (tail - plain));
	}
	return buf.data;
}

PG_FUNCTION_INFO_V1(integration_mask_secret);

/* mask_secret(secret): a plaintext secret as listings show it. */
Datum
integration_mask_secret(PG_FUNCTION_ARGS)
{
	text	   *secret = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(SecretMasked(VARDATA_ANY(secret),
												  VARSIZE_ANY_EXHDR(secret))));
}
