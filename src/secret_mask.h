/*
 * secret_mask.h
 *		How listings show a secret (secret_mask.c).
 */
#ifndef INTEGRATION_SECRET_MASK_H
#define INTEGRATION_SECRET_MASK_H

extern char *SecretMasked(const char *plain, int len);

#endif							/* INTEGRATION_SECRET_MASK_H */
