/*
 * endpoint_settings.h
 *		An endpoint's request settings as the worker reads them: the one reader that
 *		the fan-out, the claims and the worker's refresh all use.
 */
#ifndef INTEGRATION_ENDPOINT_SETTINGS_H
#define INTEGRATION_ENDPOINT_SETTINGS_H

#include "datatype/timestamp.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/palloc.h"

/*
 * Secrets that rotate_secret() retired and that still sign until their expiry: at most
 * RETIRED_SECRETS_MAX, newest first, decrypted.
 */
#define RETIRED_SECRETS_MAX 3
typedef struct RetiredSecrets
{
	int			count;
	char	   *secrets[RETIRED_SECRETS_MAX];
	TimestampTz expires[RETIRED_SECRETS_MAX];
} RetiredSecrets;

/* An endpoint's request settings now, as StoreReadEndpoints() finds them. */
typedef struct EndpointSettings
{
	const char *tenant_id;		/* the key, filled in by the caller */
	int64		id;
	char	   *url;			/* NULL: no such endpoint any more */
	char	   *secret;			/* decrypted (secret_box.h) */
	char	   *secret_error;	/* why secret is NULL: it, or a retired one,
								 * does not decrypt */
	RetiredSecrets retired;
	Jsonb	   *headers;
	int			timeout_ms;
	char	   *retry_schedule;
	int			rate_limit;		/* 0: unlimited */
	int			rate_limit_burst;	/* 0: rate_limit */
	bool		usable;
	bool		suspended;		/* disabled by the worker, not deleted */
} EndpointSettings;

/* An endpoint of a tenant: a key of its own so that nothing reaches another's. */
typedef struct EndpointSettingsKey
{
	int64		id;
	const char *tenant_id;
} EndpointSettingsKey;

extern HTAB *EndpointSettingsTable(const char *name, long nelem, Size entrysize);

extern void StoreReadEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt);
extern void StoreLockEndpoints(EndpointSettings *eps, int n, MemoryContext mcxt);
extern void EndpointSettingsCopy(EndpointSettings *dst, const EndpointSettings *src,
								 MemoryContext mcxt);
extern int	StorePurgeRetiredSecrets(void);
extern void EndpointSettingsForgetPlans(int tables);

#endif
