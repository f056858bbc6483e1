/*
 * secret_object.h
 *		JSON objects whose string values are secrets, each sealed on its own (an
 *		endpoint's custom headers): a walk that rebuilds the object value by value.
 *
 * Each value is sealed with its row's context and its key appended
 * (SecretContextForKey()), so a value moved to another key, row or column does not open.
 * The keys stay readable: they are names (header names), checked and listed as such.
 *
 * Contract: SecretObjectMap() calls fn for every string value of obj's top level, in
 * order, with the key and a palloc'd NUL-terminated copy of the value, and returns the
 * object rebuilt from fn's results, or obj itself when fn returned every value it was
 * given (nothing to store or return anew).  Values that are not strings and nested
 * containers stay as they are; obj that is not an object is returned as it is.
 */
#ifndef INTEGRATION_SECRET_OBJECT_H
#define INTEGRATION_SECRET_OBJECT_H

#include "utils/jsonb.h"

/* What to put in place of value (value itself: keep it). */
typedef char *(*SecretValueMap) (void *arg, const char *key, int keylen, char *value);

extern Jsonb *SecretObjectMap(Jsonb *obj, SecretValueMap fn, void *arg);
extern bool SecretObjectHasPlainValue(Jsonb *obj);

#endif							/* INTEGRATION_SECRET_OBJECT_H */
