/*
 * The "secret" object (--object secret,id=,data=|file=,format=raw|base64
 * [,keyid=,iv=]): passphrases and keys handed to the block layer by id. The
 * bytes are wiped when the object goes.
 */
#ifndef CRYPTO_SECRET_H
#define CRYPTO_SECRET_H

#include "qemu/osdep.h"
#include "qemu/objects.h"

extern const UserObjectType qcrypto_secret_type;

/* A copy of the secret's bytes (NUL-terminated too); free it with
 * qcrypto_secret_wipe_free(). -1 with "No secret with id 'x'". */
int qcrypto_secret_lookup(const char *id, uint8_t **data, size_t *len, GError **errp);
/* The secret as a UTF-8 string (a passphrase); NULL on error. Free with
 * qcrypto_secret_wipe_free(p, strlen(p)). */
char *qcrypto_secret_lookup_as_utf8(const char *id, GError **errp);
/* Overwrite @len bytes at @p with zeros, then free. */
void qcrypto_secret_wipe_free(void *p, size_t len);

#endif
