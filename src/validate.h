/*
 * validate.h
 *		Validation of what users store on an endpoint and send as a payload.
 */
#ifndef INTEGRATION_VALIDATE_H
#define INTEGRATION_VALIDATE_H

#define ENDPOINT_URL_MAX_LEN 2048
#define ENDPOINT_MAX_HEADERS 50
#define HEADER_VALUE_MAX_LEN 4096
#define HEADER_NAME_MAX_LEN 256

extern int	integration_max_payload_bytes;

extern void ValidateDefineGucs(void);
extern void CheckPayloadSize(size_t len);
extern bool HeaderNameIsReserved(const char *name, size_t len);

#endif
