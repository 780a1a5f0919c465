/*
 * The "secret" object type: its data comes inline (data=) or from a file
 * (file=), raw or base64, and may itself be AES-256-CBC encrypted with another
 * secret as the key (keyid=, iv=), as libvirt passes passphrases. Lookups hand
 * out copies; every copy and the object are wiped when freed.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/secret.h"
#include "crypto/crypto.h"

typedef struct QCryptoSecret {
    uint8_t *data;
    size_t len;
} QCryptoSecret;

static const char *const secret_props[] = {
    "data", "file", "format", "keyid", "iv", "loaded", NULL,
};

static const char *const secret_prop_help[] = {
    "data=<string>", "file=<string>", "format=<QCryptoSecretFormat>",
    "iv=<string>", "keyid=<string>", "loaded=<bool>", NULL,
};

void qcrypto_secret_wipe_free(void *p, size_t len)
{
    if (p) {
        qcrypto_wipe(p, len);
        g_free(p);
    }
}

static uint8_t *b64_decode(const char *in, size_t inlen, size_t *outlen, GError **errp)
{
    /* QEMU accepts the base64 alphabet, '=' padding and nothing else */
    for (size_t i = 0; i < inlen; i++) {
        if (!g_ascii_isalnum(in[i]) && in[i] != '+' && in[i] != '/' && in[i] != '=') {
            error_setg(errp, "Base64 data contains invalid characters");
            return NULL;
        }
    }
    if (inlen % 4) {
        error_setg(errp, "Base64 data length %zu is not a multiple of 4", inlen);
        return NULL;
    }
    {
        g_autofree char *copy = g_strndup(in, inlen);
        gsize n = 0;
        guchar *out = g_base64_decode(copy, &n);

        qcrypto_wipe(copy, inlen);
        *outlen = n;
        return out;
    }
}

static uint8_t *secret_decrypt(const char *keyid, const char *iv_b64, const uint8_t *in,
                               size_t inlen, size_t *outlen, GError **errp)
{
    g_autofree uint8_t *iv = NULL;
    uint8_t *key = NULL, *out = NULL;
    size_t nkey = 0, niv = 0;
    g_autoptr(QCryptoCipher) c = NULL;

    if (qcrypto_secret_lookup(keyid, &key, &nkey, errp) < 0) {
        return NULL;
    }
    if (nkey != 32) {
        error_setg(errp, "Key should be 32 bytes in length");
        goto out;
    }
    if (!iv_b64) {
        error_setg(errp, "IV is required to decrypt secret");
        goto out;
    }
    iv = b64_decode(iv_b64, strlen(iv_b64), &niv, errp);
    if (!iv) {
        goto out;
    }
    if (niv != 16) {
        error_setg(errp, "IV should be 16 bytes in length not %zu", niv);
        goto out;
    }
    if (inlen % 16) {
        error_setg(errp, "Length %zu must be a multiple of block size 16", inlen);
        goto out;
    }
    c = qcrypto_cipher_new(QCRYPTO_CIPHER_ALG_AES_256, QCRYPTO_CIPHER_MODE_CBC, key,
                           nkey, errp);
    if (!c || qcrypto_cipher_setiv(c, iv, niv, errp) < 0) {
        goto out;
    }
    out = g_malloc0(inlen + 1);
    if (qcrypto_cipher_decrypt(c, in, out, inlen, errp) < 0) {
        qcrypto_secret_wipe_free(out, inlen + 1);
        out = NULL;
        goto out;
    }
    /* PKCS#7 padding */
    *outlen = inlen;
    if (inlen && out[inlen - 1] <= 16 && out[inlen - 1] <= inlen) {
        *outlen = inlen - out[inlen - 1];
        qcrypto_wipe(out + *outlen, inlen - *outlen);
    }
out:
    qcrypto_secret_wipe_free(key, nkey);
    return out;
}

static void *secret_create(const char *id, JsonObject *props, GError **errp)
{
    g_autofree char *data = opts_get_str(props, "data");
    g_autofree char *file = opts_get_str(props, "file");
    g_autofree char *format = opts_get_str(props, "format");
    g_autofree char *keyid = opts_get_str(props, "keyid");
    g_autofree char *iv = opts_get_str(props, "iv");
    uint8_t *raw = NULL, *tmp;
    size_t rawlen = 0, tmplen;
    bool base64 = false;
    QCryptoSecret *s;

    if (format) {
        if (!strcmp(format, "base64")) {
            base64 = true;
        } else if (strcmp(format, "raw")) {
            error_setg(errp, "Parameter 'format' does not accept value '%s'", format);
            goto fail;
        }
    }
    if (data && file) {
        error_setg(errp, "'file' and 'data' are mutually exclusive");
        goto fail;
    }
    if (!data && !file) {
        error_setg(errp, "Either 'file' or 'data' must be provided");
        goto fail;
    }
    if (file) {
        gchar *contents = NULL;
        gsize n = 0;
        GError *local = NULL;

        if (!g_file_get_contents(file, &contents, &n, &local)) {
            error_setg(errp, "Unable to read %s: %s", file, local->message);
            g_error_free(local);
            goto fail;
        }
        raw = (uint8_t *)contents;
        rawlen = n;
    } else {
        rawlen = strlen(data);
        raw = (uint8_t *)g_strndup(data, rawlen);
        qcrypto_wipe(data, rawlen);
    }
    if (base64) {
        tmp = b64_decode((const char *)raw, rawlen, &tmplen, errp);
        qcrypto_secret_wipe_free(raw, rawlen);
        raw = tmp;
        rawlen = tmplen;
        if (!raw) {
            goto fail;
        }
    }
    if (keyid) {
        tmp = secret_decrypt(keyid, iv, raw, rawlen, &tmplen, errp);
        qcrypto_secret_wipe_free(raw, rawlen);
        raw = tmp;
        rawlen = tmplen;
        if (!raw) {
            goto fail;
        }
    } else if (iv) {
        error_setg(errp, "'iv' requires 'keyid' to be set");
        goto fail_raw;
    }
    s = g_new0(QCryptoSecret, 1);
    s->data = g_malloc(rawlen + 1);
    memcpy(s->data, raw, rawlen);
    s->data[rawlen] = 0;
    s->len = rawlen;
    qcrypto_secret_wipe_free(raw, rawlen);
    return s;

fail_raw:
    qcrypto_secret_wipe_free(raw, rawlen);
fail:
    return NULL;
}

static int secret_destroy(void *obj, const char *id, GError **errp)
{
    QCryptoSecret *s = obj;

    qcrypto_secret_wipe_free(s->data, s->len + 1);
    g_free(s);
    return 0;
}

const UserObjectType qcrypto_secret_type = {
    .name = "secret",
    .props = secret_props,
    .prop_help = secret_prop_help,
    .create = secret_create,
    .destroy = secret_destroy,
};

int qcrypto_secret_lookup(const char *id, uint8_t **data, size_t *len, GError **errp)
{
    QCryptoSecret *s = user_object_get(id, "secret");

    if (!s) {
        if (user_object_find(id)) {
            error_setg(errp, "Object with id '%s' is not a secret", id);
        } else {
            error_setg(errp, "No secret with id '%s'", id);
        }
        return -1;
    }
    *data = g_malloc(s->len + 1);
    memcpy(*data, s->data, s->len + 1);
    *len = s->len;
    return 0;
}

char *qcrypto_secret_lookup_as_utf8(const char *id, GError **errp)
{
    uint8_t *data;
    size_t len;

    if (qcrypto_secret_lookup(id, &data, &len, errp) < 0) {
        return NULL;
    }
    if (!g_utf8_validate((const char *)data, len, NULL)) {
        error_setg(errp, "Data from secret %s is not valid UTF-8", id);
        qcrypto_secret_wipe_free(data, len + 1);
        return NULL;
    }
    return (char *)data;
}
