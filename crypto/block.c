/*
 * The crypto block layer's front: create/amend option parsing with QEMU's
 * messages, dispatch to the formats, and the legacy qcow "aes" format
 * (AES-128-CBC, plain64 IVs, the passphrase's first 16 bytes as key). The
 * payload's en/decryption by sector is in crypto/block-payload.c.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/block.h"
#include "crypto/secret.h"

const char *const QCryptoBlockFormat_str[QCRYPTO_BLOCK_FORMAT__MAX] = {
    [QCRYPTO_BLOCK_FORMAT_QCOW] = "aes",
    [QCRYPTO_BLOCK_FORMAT_LUKS] = "luks",
};

void qcrypto_block_create_options_init(QCryptoBlockCreateOptions *o,
                                       QCryptoBlockFormat format)
{
    memset(o, 0, sizeof(*o));
    o->format = format;
    o->cipher_alg = o->cipher_mode = o->ivgen_alg = o->ivgen_hash_alg = -1;
    o->hash_alg = -1;
    o->iter_time = -1;
}

void qcrypto_block_create_options_clear(QCryptoBlockCreateOptions *o)
{
    g_clear_pointer(&o->key_secret, g_free);
}

static int parse_enum(JsonObject *opts, const char *key, const char *const *table, int n,
                      int *out, GError **errp)
{
    g_autofree char *v = opts_get_str(opts, key);

    if (!v) {
        return 0;
    }
    *out = qcrypto_enum_parse(table, n, v);
    if (*out < 0) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", key, v);
        return -1;
    }
    return 0;
}

static int parse_num(JsonObject *opts, const char *prefix, const char *key,
                     int64_t *out, GError **errp)
{
    g_autofree char *v = opts_get_str(opts, key);
    char *end;

    if (!v) {
        return 0;
    }
    errno = 0;
    *out = g_ascii_strtoll(v, &end, 0);
    if (!*v || *end || errno) {
        error_setg(errp, "Parameter '%s%s' expects a number", prefix, key);
        return -1;
    }
    return 0;
}

/* cipher algorithms QAPI accepts (sm4 is not in this build) */
#define CIPHER_ALG_PARSE_MAX QCRYPTO_CIPHER_ALG_SM4

int qcrypto_block_create_options_parse(QCryptoBlockCreateOptions *o, JsonObject *opts,
                                       const char *prefix, GError **errp)
{
    static const char *const luks_keys[] = {
        "key-secret", "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg",
        "hash-alg", "iter-time", "format", NULL,
    };
    static const char *const qcow_keys[] = { "key-secret", "format", NULL };
    const char *const *allowed = o->format == QCRYPTO_BLOCK_FORMAT_LUKS ? luks_keys
                                                                        : qcow_keys;
    GList *members = json_object_get_members(opts);

    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(allowed, l->data)) {
            error_setg(errp, "Parameter '%s%s' is unexpected", prefix,
                       (const char *)l->data);
            g_list_free(members);
            return -1;
        }
    }
    g_list_free(members);
    o->key_secret = opts_get_str(opts, "key-secret");
    if (parse_enum(opts, "cipher-alg", QCryptoCipherAlgorithm_str, CIPHER_ALG_PARSE_MAX,
                   &o->cipher_alg, errp) < 0 ||
        parse_enum(opts, "cipher-mode", QCryptoCipherMode_str, QCRYPTO_CIPHER_MODE__MAX,
                   &o->cipher_mode, errp) < 0 ||
        parse_enum(opts, "ivgen-alg", QCryptoIVGenAlgorithm_str, QCRYPTO_IVGEN_ALG__MAX,
                   &o->ivgen_alg, errp) < 0 ||
        parse_enum(opts, "ivgen-hash-alg", QCryptoHashAlgorithm_str,
                   QCRYPTO_HASH_ALG__MAX, &o->ivgen_hash_alg, errp) < 0 ||
        parse_enum(opts, "hash-alg", QCryptoHashAlgorithm_str, QCRYPTO_HASH_ALG__MAX,
                   &o->hash_alg, errp) < 0 ||
        parse_num(opts, prefix, "iter-time", &o->iter_time, errp) < 0) {
        return -1;
    }
    return 0;
}

void qcrypto_block_amend_options_clear(QCryptoBlockAmendOptions *o)
{
    g_clear_pointer(&o->new_secret, g_free);
    g_clear_pointer(&o->old_secret, g_free);
}

int qcrypto_block_amend_options_parse(QCryptoBlockAmendOptions *o, JsonObject *opts,
                                      const char *prefix, GError **errp)
{
    g_autofree char *state = opts_get_str(opts, "state");

    memset(o, 0, sizeof(*o));
    o->state = -1;
    o->iter_time = -1;
    if (!state) {
        error_setg(errp, "Parameter 'state' is missing");
        return -1;
    }
    if (!strcmp(state, "active")) {
        o->state = 1;
    } else if (!strcmp(state, "inactive")) {
        o->state = 0;
    } else {
        error_setg(errp, "Parameter 'state' does not accept value '%s'", state);
        return -1;
    }
    o->new_secret = opts_get_str(opts, "new-secret");
    o->old_secret = opts_get_str(opts, "old-secret");
    if (opts_has(opts, "keyslot")) {
        o->has_keyslot = true;
        if (parse_num(opts, prefix, "keyslot", &o->keyslot, errp) < 0) {
            return -1;
        }
    }
    return parse_num(opts, prefix, "iter-time", &o->iter_time, errp);
}

/* ---- the legacy qcow "aes" format ---- */

static QCryptoBlock *qcow_open(const char *key_secret, const char *prefix,
                               unsigned flags, GError **errp)
{
    QCryptoBlock *block = g_new0(QCryptoBlock, 1);
    uint8_t keybuf[16] = { 0 };
    char *password;
    size_t len;

    block->format = QCRYPTO_BLOCK_FORMAT_QCOW;
    block->cipher_alg = QCRYPTO_CIPHER_ALG_AES_128;
    block->niv = 16;
    if (flags & QCRYPTO_BLOCK_OPEN_NO_IO) {
        return block;
    }
    if (!key_secret) {
        error_setg(errp, "Parameter '%skey-secret' is required for cipher", prefix);
        goto fail;
    }
    password = qcrypto_secret_lookup_as_utf8(key_secret, errp);
    if (!password) {
        goto fail;
    }
    len = strlen(password);
    memcpy(keybuf, password, MIN(len, sizeof(keybuf)));
    qcrypto_secret_wipe_free(password, len);
    if (qcrypto_block_init_cipher(block, QCRYPTO_CIPHER_ALG_AES_128,
                                  QCRYPTO_CIPHER_MODE_CBC, keybuf, sizeof(keybuf),
                                  QCRYPTO_IVGEN_ALG_PLAIN64, QCRYPTO_CIPHER_ALG_AES_128,
                                  QCRYPTO_HASH_ALG_SHA256, errp) < 0) {
        qcrypto_wipe(keybuf, sizeof(keybuf));
        goto fail;
    }
    qcrypto_wipe(keybuf, sizeof(keybuf));
    return block;
fail:
    qcrypto_block_free(block);
    return NULL;
}

QCryptoBlock *qcrypto_block_open(QCryptoBlockFormat format, const char *key_secret,
                                 const char *prefix, QCryptoBlockReadFunc readfunc,
                                 void *opaque, unsigned flags, GError **errp)
{
    if (format == QCRYPTO_BLOCK_FORMAT_LUKS) {
        return qcrypto_block_luks_open(key_secret, prefix, readfunc, opaque, flags,
                                       errp);
    }
    return qcow_open(key_secret, prefix, flags, errp);
}

QCryptoBlock *qcrypto_block_create(const QCryptoBlockCreateOptions *opts,
                                   const char *prefix, QCryptoBlockInitFunc initfunc,
                                   QCryptoBlockWriteFunc writefunc, void *opaque,
                                   GError **errp)
{
    if (opts->format == QCRYPTO_BLOCK_FORMAT_LUKS) {
        return qcrypto_block_luks_create(opts, prefix, initfunc, writefunc, opaque,
                                         errp);
    }
    /* qcow: nothing on disk; the key must be there */
    return qcow_open(opts->key_secret, prefix, 0, errp);
}

int qcrypto_block_calculate_payload_offset(const QCryptoBlockCreateOptions *opts,
                                           const char *prefix, size_t *len,
                                           GError **errp)
{
    if (opts->format == QCRYPTO_BLOCK_FORMAT_LUKS) {
        return qcrypto_block_luks_payload_len(opts, prefix, len, errp);
    }
    *len = 0;
    return 0;
}

int qcrypto_block_amend(QCryptoBlock *block, const QCryptoBlockAmendOptions *opts,
                        const char *prefix, QCryptoBlockReadFunc readfunc,
                        QCryptoBlockWriteFunc writefunc, QCryptoBlockFlushFunc flushfunc,
                        void *opaque, bool force, GError **errp)
{
    if (block->format != QCRYPTO_BLOCK_FORMAT_LUKS) {
        error_setg(errp, "Crypto format not supported for amend");
        return -1;
    }
    return qcrypto_block_luks_amend(block, opts, prefix, readfunc, writefunc, flushfunc,
                                    opaque, force, errp);
}

JsonObject *qcrypto_block_get_info(QCryptoBlock *block, bool with_format)
{
    if (block->format != QCRYPTO_BLOCK_FORMAT_LUKS) {
        return NULL;
    }
    return qcrypto_block_luks_get_info(block, with_format);
}

QCryptoBlockFormat qcrypto_block_get_format(QCryptoBlock *block)
{
    return block->format;
}

uint64_t qcrypto_block_get_payload_offset(QCryptoBlock *block)
{
    return block->payload_offset;
}

bool qcrypto_block_has_cipher(QCryptoBlock *block)
{
    return block->cipher != NULL;
}

int qcrypto_block_init_cipher(QCryptoBlock *block, QCryptoCipherAlgorithm alg,
                              QCryptoCipherMode mode, const uint8_t *key, size_t nkey,
                              QCryptoIVGenAlgorithm ivgen_alg,
                              QCryptoCipherAlgorithm ivgen_cipher_alg,
                              QCryptoHashAlgorithm ivgen_hash_alg, GError **errp)
{
    block->cipher_alg = alg;
    block->cipher_mode = mode;
    block->ivgen_alg = ivgen_alg;
    block->ivgen_cipher_alg = ivgen_cipher_alg;
    block->ivgen_hash_alg = ivgen_hash_alg;
    block->niv = mode == QCRYPTO_CIPHER_MODE_ECB ? 0 : qcrypto_cipher_get_block_len(alg);
    block->cipher = qcrypto_cipher_new(alg, mode, key, nkey, errp);
    if (!block->cipher) {
        return -1;
    }
    block->ivgen = qcrypto_ivgen_new(ivgen_alg, ivgen_cipher_alg, ivgen_hash_alg, key,
                                     nkey, errp);
    if (!block->ivgen) {
        return -1;
    }
    block->key = g_memdup2(key, nkey);
    block->nkey = nkey;
    return 0;
}

void qcrypto_block_free(QCryptoBlock *block)
{
    if (!block) {
        return;
    }
    if (block->format == QCRYPTO_BLOCK_FORMAT_LUKS) {
        qcrypto_block_luks_free(block);
    }
    qcrypto_cipher_free(block->cipher);
    qcrypto_ivgen_free(block->ivgen);
    for (int t = 0; t < QCRYPTO_BLOCK_MAX_THREADS; t++) {
        qcrypto_cipher_free(block->extra_cipher[t]);
        qcrypto_ivgen_free(block->extra_ivgen[t]);
    }
    if (block->key) {
        qcrypto_wipe(block->key, block->nkey);
        g_free(block->key);
    }
    g_free(block);
}
