/*
 * tenant.h
 *		The current tenant (integration.tenant_id) and its validation.
 */
#ifndef INTEGRATION_TENANT_H
#define INTEGRATION_TENANT_H

#define TENANT_ID_MAX_LEN 64

extern bool tenant_id_is_valid(const char *s, size_t len);
extern void tenant_define_gucs(void);
extern const char *current_tenant(void);
extern const char *require_tenant(void);

#endif
