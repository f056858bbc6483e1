/*
 * secret_object.c
 *		Walks a JSON object of secrets (secret_object.h): the one loop that the sealing
 *		trigger, the masking of listings and the worker's decryption share.
 */
#include "postgres.h"

#include "secret_box.h"
#include "secret_object.h"

/* See secret_object.h. */
Jsonb *
SecretObjectMap(Jsonb *obj, SecretValueMap fn, void *arg)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *result = NULL;
	char	   *key = NULL;
	int			keylen = 0;
	bool		changed = false;

	if (!JB_ROOT_IS_OBJECT(obj) || JB_ROOT_IS_SCALAR(obj))
		return obj;
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = v.val.string.val;
			keylen = v.val.string.len;
		}
		else if (tok == WJB_VALUE && v.type == jbvString)
		{
			char	   *value = pnstrdup(v.val.string.val, v.val.string.len);
			char	   *mapped = fn(arg, key, keylen, value);

			if (mapped != value)
			{
				changed = true;
				v.val.string.val = mapped;
				v.val.string.len = strlen(mapped);
			}
		}
		result = pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	return changed ? JsonbValueToJsonb(result) : obj;
}

/* Whether obj (an object) has a string value that is not sealed. */
bool
SecretObjectHasPlainValue(Jsonb *obj)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;

	if (!JB_ROOT_IS_OBJECT(obj) || JB_ROOT_IS_SCALAR(obj))
		return false;
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_VALUE && v.type == jbvString &&
			(v.val.string.len < (int) strlen(SECRET_SEALED_PREFIX) ||
			 strncmp(v.val.string.val, SECRET_SEALED_PREFIX, strlen(SECRET_SEALED_PREFIX)) != 0))
			return true;
	return false;
}
