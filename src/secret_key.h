/*
 * secret_key.h
 *		The keys that encrypt stored secrets, read once at server start from
 *		integration.encryption_key_file.
 *
 * Contract: SecretKeyLoad() runs in the postmaster, from _PG_init while the library is
 * preloaded, and every backend inherits the keys it read.  Afterwards the keys never
 * change: adding or removing one takes a restart.  Nothing here logs key material.
 */
#ifndef INTEGRATION_SECRET_KEY_H
#define INTEGRATION_SECRET_KEY_H

/* AES-256: 32 bytes of key. */
#define SECRET_KEY_BYTES 32
/* A key id: 8 lowercase hex digits, the first 4 bytes of a SHA-256 of the key. */
#define SECRET_KEY_ID_LEN 8
/* Most keys one file may hold: the current one and those still to retire. */
#define SECRET_MAX_KEYS 16

/* One key, and the id stored with every value it encrypts. */
typedef struct SecretKey
{
	char		id[SECRET_KEY_ID_LEN + 1];
	unsigned char key[SECRET_KEY_BYTES];
} SecretKey;

extern char *integration_encryption_key_file;

extern void SecretKeyDefineGucs(void);
extern void SecretKeyLoad(void);

/* The key that encrypts (the file's first), or NULL when no key file is set. */
extern const SecretKey *SecretKeyCurrent(void);

/* The key with this id, or NULL when the file does not hold it. */
extern const SecretKey *SecretKeyFind(const char *id);

/* The keys loaded, the current one first. */
extern int	SecretKeyCount(void);
extern const SecretKey *SecretKeyAt(int i);

#endif							/* INTEGRATION_SECRET_KEY_H */
