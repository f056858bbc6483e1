/*
 * message_id.h
 *		Message ids: "msg_" and a time-ordered 128-bit random number in base62.
 */
#ifndef INTEGRATION_MESSAGE_ID_H
#define INTEGRATION_MESSAGE_ID_H

#include "fmgr.h"

#define MESSAGE_ID_LEN 26		/* "msg_" and 22 base62 digits */

/* Writes a fresh id and its NUL into dst[MESSAGE_ID_LEN + 1]; ereports on failure */
extern void MessageIdFill(char *dst);

/* A fresh id, palloc'd */
extern char *MessageIdGenerate(void);

/* A fresh id as a text datum, palloc'd */
extern Datum MessageIdGenerateText(void);

#endif
