/*
 * content_hash.h
 *		A record's content hash: SHA-256 of its payload's text (content_hash.c).
 */
#ifndef INTEGRATION_CONTENT_HASH_H
#define INTEGRATION_CONTENT_HASH_H

#include "utils/jsonb.h"

extern bytea *ContentHash(Jsonb *payload);

#endif
