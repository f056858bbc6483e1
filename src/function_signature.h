/*
 * function_signature.h
 *		Functions that the extension's tables name by signature (function_signature.c).
 */
#ifndef INTEGRATION_FUNCTION_SIGNATURE_H
#define INTEGRATION_FUNCTION_SIGNATURE_H

extern Oid	FunctionBySignature(const char *signature);

#endif
