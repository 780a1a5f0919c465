/*
 * Block ciphers in ECB, CBC, XTS and CTR mode (Nettle; AES-XTS through GnuTLS,
 * whose AES-NI XTS code is several times faster than a per-block mode), IV
 * generators (plain, plain64, essiv) and LUKS's anti-forensic splitter.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/crypto.h"
#include <nettle/aes.h>
#include <nettle/des.h>
#include <nettle/cast128.h>
#include <nettle/serpent.h>
#include <nettle/twofish.h>
#include <nettle/cbc.h>
#include <nettle/ctr.h>
#include <nettle/xts.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

const char *const QCryptoCipherAlgorithm_str[QCRYPTO_CIPHER_ALG__MAX] = {
    [QCRYPTO_CIPHER_ALG_AES_128] = "aes-128",
    [QCRYPTO_CIPHER_ALG_AES_192] = "aes-192",
    [QCRYPTO_CIPHER_ALG_AES_256] = "aes-256",
    [QCRYPTO_CIPHER_ALG_DES] = "des",
    [QCRYPTO_CIPHER_ALG_3DES] = "3des",
    [QCRYPTO_CIPHER_ALG_CAST5_128] = "cast5-128",
    [QCRYPTO_CIPHER_ALG_SERPENT_128] = "serpent-128",
    [QCRYPTO_CIPHER_ALG_SERPENT_192] = "serpent-192",
    [QCRYPTO_CIPHER_ALG_SERPENT_256] = "serpent-256",
    [QCRYPTO_CIPHER_ALG_TWOFISH_128] = "twofish-128",
    [QCRYPTO_CIPHER_ALG_TWOFISH_192] = "twofish-192",
    [QCRYPTO_CIPHER_ALG_TWOFISH_256] = "twofish-256",
    [QCRYPTO_CIPHER_ALG_SM4] = "sm4",
};

const char *const QCryptoCipherMode_str[QCRYPTO_CIPHER_MODE__MAX] = {
    [QCRYPTO_CIPHER_MODE_ECB] = "ecb",
    [QCRYPTO_CIPHER_MODE_CBC] = "cbc",
    [QCRYPTO_CIPHER_MODE_XTS] = "xts",
    [QCRYPTO_CIPHER_MODE_CTR] = "ctr",
};

const char *const QCryptoIVGenAlgorithm_str[QCRYPTO_IVGEN_ALG__MAX] = {
    [QCRYPTO_IVGEN_ALG_PLAIN] = "plain",
    [QCRYPTO_IVGEN_ALG_PLAIN64] = "plain64",
    [QCRYPTO_IVGEN_ALG_ESSIV] = "essiv",
};

/* ---- per-algorithm glue to Nettle ---- */

typedef struct CipherImpl {
    size_t key_len, block_len, ctx_size;
    void (*set_enc)(void *ctx, const uint8_t *key);
    void (*set_dec)(void *ctx, const uint8_t *key);
    nettle_cipher_func *enc, *dec;
} CipherImpl;

#define AES_GLUE(bits)                                                          \
    static void aes##bits##_enc_key(void *c, const uint8_t *k)                  \
    { aes##bits##_set_encrypt_key(c, k); }                                      \
    static void aes##bits##_dec_key(void *c, const uint8_t *k)                  \
    { aes##bits##_set_decrypt_key(c, k); }                                      \
    static void aes##bits##_enc(const void *c, size_t n, uint8_t *d, const uint8_t *s) \
    { aes##bits##_encrypt(c, n, d, s); }                                        \
    static void aes##bits##_dec(const void *c, size_t n, uint8_t *d, const uint8_t *s) \
    { aes##bits##_decrypt(c, n, d, s); }
AES_GLUE(128)
AES_GLUE(192)
AES_GLUE(256)

static void des_key(void *c, const uint8_t *k) { des_set_key(c, k); }
static void des3_key(void *c, const uint8_t *k) { des3_set_key(c, k); }
static void cast5_key(void *c, const uint8_t *k) { cast5_set_key(c, 16, k); }
static void serpent128_key(void *c, const uint8_t *k) { serpent_set_key(c, 16, k); }
static void serpent192_key(void *c, const uint8_t *k) { serpent_set_key(c, 24, k); }
static void serpent256_key(void *c, const uint8_t *k) { serpent_set_key(c, 32, k); }
static void twofish128_key(void *c, const uint8_t *k) { twofish_set_key(c, 16, k); }
static void twofish192_key(void *c, const uint8_t *k) { twofish_set_key(c, 24, k); }
static void twofish256_key(void *c, const uint8_t *k) { twofish_set_key(c, 32, k); }
#define WRAP(name, fn, type)                                                    \
    static void name(const void *c, size_t n, uint8_t *d, const uint8_t *s)     \
    { fn((type *)c, n, d, s); }
WRAP(des_enc, des_encrypt, const struct des_ctx)
WRAP(des_dec, des_decrypt, const struct des_ctx)
WRAP(des3_enc, des3_encrypt, const struct des3_ctx)
WRAP(des3_dec, des3_decrypt, const struct des3_ctx)
WRAP(cast5_enc, cast128_encrypt, const struct cast128_ctx)
WRAP(cast5_dec, cast128_decrypt, const struct cast128_ctx)
WRAP(serpent_enc, serpent_encrypt, const struct serpent_ctx)
WRAP(serpent_dec, serpent_decrypt, const struct serpent_ctx)
WRAP(twofish_enc, twofish_encrypt, const struct twofish_ctx)
WRAP(twofish_dec, twofish_decrypt, const struct twofish_ctx)

static const CipherImpl cipher_impls[QCRYPTO_CIPHER_ALG__MAX] = {
    [QCRYPTO_CIPHER_ALG_AES_128] = { 16, 16, sizeof(struct aes128_ctx), aes128_enc_key,
                                     aes128_dec_key, aes128_enc, aes128_dec },
    [QCRYPTO_CIPHER_ALG_AES_192] = { 24, 16, sizeof(struct aes192_ctx), aes192_enc_key,
                                     aes192_dec_key, aes192_enc, aes192_dec },
    [QCRYPTO_CIPHER_ALG_AES_256] = { 32, 16, sizeof(struct aes256_ctx), aes256_enc_key,
                                     aes256_dec_key, aes256_enc, aes256_dec },
    [QCRYPTO_CIPHER_ALG_DES] = { 8, 8, sizeof(struct des_ctx), des_key, des_key,
                                 des_enc, des_dec },
    [QCRYPTO_CIPHER_ALG_3DES] = { 24, 8, sizeof(struct des3_ctx), des3_key, des3_key,
                                  des3_enc, des3_dec },
    [QCRYPTO_CIPHER_ALG_CAST5_128] = { 16, 8, sizeof(struct cast128_ctx), cast5_key,
                                       cast5_key, cast5_enc, cast5_dec },
    [QCRYPTO_CIPHER_ALG_SERPENT_128] = { 16, 16, sizeof(struct serpent_ctx),
                                         serpent128_key, serpent128_key, serpent_enc,
                                         serpent_dec },
    [QCRYPTO_CIPHER_ALG_SERPENT_192] = { 24, 16, sizeof(struct serpent_ctx),
                                         serpent192_key, serpent192_key, serpent_enc,
                                         serpent_dec },
    [QCRYPTO_CIPHER_ALG_SERPENT_256] = { 32, 16, sizeof(struct serpent_ctx),
                                         serpent256_key, serpent256_key, serpent_enc,
                                         serpent_dec },
    [QCRYPTO_CIPHER_ALG_TWOFISH_128] = { 16, 16, sizeof(struct twofish_ctx),
                                         twofish128_key, twofish128_key, twofish_enc,
                                         twofish_dec },
    [QCRYPTO_CIPHER_ALG_TWOFISH_192] = { 24, 16, sizeof(struct twofish_ctx),
                                         twofish192_key, twofish192_key, twofish_enc,
                                         twofish_dec },
    [QCRYPTO_CIPHER_ALG_TWOFISH_256] = { 32, 16, sizeof(struct twofish_ctx),
                                         twofish256_key, twofish256_key, twofish_enc,
                                         twofish_dec },
    /* SM4 needs Nettle 3.9: not available in this build */
    [QCRYPTO_CIPHER_ALG_SM4] = { 16, 16, 0, NULL, NULL, NULL, NULL },
};

size_t qcrypto_cipher_get_key_len(QCryptoCipherAlgorithm alg)
{
    return cipher_impls[alg].key_len;
}

size_t qcrypto_cipher_get_block_len(QCryptoCipherAlgorithm alg)
{
    return cipher_impls[alg].block_len;
}

bool qcrypto_cipher_supports(QCryptoCipherAlgorithm alg, QCryptoCipherMode mode)
{
    const CipherImpl *ci = &cipher_impls[alg];

    if (!ci->enc) {
        return false;
    }
    return mode != QCRYPTO_CIPHER_MODE_XTS || ci->block_len == 16;
}

struct QCryptoCipher {
    QCryptoCipherAlgorithm alg;
    QCryptoCipherMode mode;
    const CipherImpl *impl;
    void *enc_ctx, *dec_ctx, *twk_ctx;
    uint8_t iv[16];
    size_t niv;
    gnutls_cipher_hd_t gnutls;   /* AES-XTS fast path, or NULL */
};

static void *ctx_new(const CipherImpl *ci, void (*set)(void *, const uint8_t *),
                     const uint8_t *key)
{
    void *ctx = g_malloc0(ci->ctx_size);

    set(ctx, key);
    return ctx;
}

static void ctx_free(const CipherImpl *ci, void *ctx)
{
    if (ctx) {
        qcrypto_wipe(ctx, ci->ctx_size);
        g_free(ctx);
    }
}

QCryptoCipher *qcrypto_cipher_new(QCryptoCipherAlgorithm alg, QCryptoCipherMode mode,
                                  const uint8_t *key, size_t nkey, GError **errp)
{
    const CipherImpl *ci = &cipher_impls[alg];
    size_t want = mode == QCRYPTO_CIPHER_MODE_XTS ? ci->key_len * 2 : ci->key_len;
    QCryptoCipher *c;

    if (!qcrypto_cipher_supports(alg, mode)) {
        error_setg(errp, "Unsupported cipher algorithm %s with %s mode",
                   QCryptoCipherAlgorithm_str[alg], QCryptoCipherMode_str[mode]);
        return NULL;
    }
    if (nkey != want) {
        error_setg(errp, "Cipher key length %zu should be %zu", nkey, want);
        return NULL;
    }
    c = g_new0(QCryptoCipher, 1);
    c->alg = alg;
    c->mode = mode;
    c->impl = ci;
    c->niv = ci->block_len;
    if (mode == QCRYPTO_CIPHER_MODE_XTS &&
        (alg == QCRYPTO_CIPHER_ALG_AES_128 || alg == QCRYPTO_CIPHER_ALG_AES_256)) {
        gnutls_datum_t k = { (unsigned char *)key, nkey };
        if (gnutls_cipher_init(&c->gnutls, alg == QCRYPTO_CIPHER_ALG_AES_128 ?
                               GNUTLS_CIPHER_AES_128_XTS : GNUTLS_CIPHER_AES_256_XTS,
                               &k, NULL) < 0) {
            c->gnutls = NULL;   /* e.g. both halves equal: Nettle takes it */
        }
    }
    if (!c->gnutls) {
        c->enc_ctx = ctx_new(ci, ci->set_enc, key);
        c->dec_ctx = ctx_new(ci, ci->set_dec, key);
        if (mode == QCRYPTO_CIPHER_MODE_XTS) {
            c->twk_ctx = ctx_new(ci, ci->set_enc, key + ci->key_len);
        }
    }
    return c;
}

void qcrypto_cipher_free(QCryptoCipher *c)
{
    if (!c) {
        return;
    }
    if (c->gnutls) {
        gnutls_cipher_deinit(c->gnutls);
    }
    ctx_free(c->impl, c->enc_ctx);
    ctx_free(c->impl, c->dec_ctx);
    ctx_free(c->impl, c->twk_ctx);
    qcrypto_wipe(c->iv, sizeof(c->iv));
    g_free(c);
}

int qcrypto_cipher_setiv(QCryptoCipher *c, const uint8_t *iv, size_t niv, GError **errp)
{
    if (c->mode == QCRYPTO_CIPHER_MODE_ECB) {
        error_setg(errp, "Setting IV is not supported");
        return -1;
    }
    if (niv != c->niv) {
        error_setg(errp, "Expected IV size %zu not %zu", c->niv, niv);
        return -1;
    }
    memcpy(c->iv, iv, niv);
    if (c->gnutls) {
        gnutls_cipher_set_iv(c->gnutls, (void *)iv, niv);
    }
    return 0;
}

static int check_len(QCryptoCipher *c, size_t len, GError **errp)
{
    if (len % c->impl->block_len) {
        error_setg(errp, "Length %zu must be a multiple of block size %zu", len,
                   c->impl->block_len);
        return -1;
    }
    return 0;
}

int qcrypto_cipher_encrypt(QCryptoCipher *c, const void *in, void *out, size_t len,
                           GError **errp)
{
    const CipherImpl *ci = c->impl;

    if (check_len(c, len, errp) < 0) {
        return -1;
    }
    switch (c->mode) {
    case QCRYPTO_CIPHER_MODE_ECB:
        ci->enc(c->enc_ctx, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_CBC:
        cbc_encrypt(c->enc_ctx, ci->enc, ci->block_len, c->iv, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_CTR:
        ctr_crypt(c->enc_ctx, ci->enc, ci->block_len, c->iv, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_XTS:
        if (c->gnutls) {
            if (gnutls_cipher_encrypt2(c->gnutls, in, len, out, len) < 0) {
                error_setg(errp, "Cannot encrypt data");
                return -1;
            }
        } else {
            xts_encrypt_message(c->enc_ctx, c->twk_ctx, ci->enc, c->iv, len, out, in);
        }
        break;
    default:
        g_assert_not_reached();
    }
    return 0;
}

int qcrypto_cipher_decrypt(QCryptoCipher *c, const void *in, void *out, size_t len,
                           GError **errp)
{
    const CipherImpl *ci = c->impl;

    if (check_len(c, len, errp) < 0) {
        return -1;
    }
    switch (c->mode) {
    case QCRYPTO_CIPHER_MODE_ECB:
        ci->dec(c->dec_ctx, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_CBC:
        cbc_decrypt(c->dec_ctx, ci->dec, ci->block_len, c->iv, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_CTR:
        ctr_crypt(c->enc_ctx, ci->enc, ci->block_len, c->iv, len, out, in);
        break;
    case QCRYPTO_CIPHER_MODE_XTS:
        if (c->gnutls) {
            if (gnutls_cipher_decrypt2(c->gnutls, in, len, out, len) < 0) {
                error_setg(errp, "Cannot decrypt data");
                return -1;
            }
        } else {
            xts_decrypt_message(c->dec_ctx, c->twk_ctx, ci->dec, ci->enc, c->iv, len,
                                out, in);
        }
        break;
    default:
        g_assert_not_reached();
    }
    return 0;
}

/* ---- IV generators ---- */

struct QCryptoIVGen {
    QCryptoIVGenAlgorithm alg;
    QCryptoCipher *essiv;
};

QCryptoIVGen *qcrypto_ivgen_new(QCryptoIVGenAlgorithm alg,
                                QCryptoCipherAlgorithm cipheralg,
                                QCryptoHashAlgorithm hash, const uint8_t *key,
                                size_t nkey, GError **errp)
{
    QCryptoIVGen *g = g_new0(QCryptoIVGen, 1);

    g->alg = alg;
    if (alg == QCRYPTO_IVGEN_ALG_ESSIV) {
        uint8_t salt[64];
        size_t nsalt = qcrypto_hash_digest_len(hash);
        size_t need = qcrypto_cipher_get_key_len(cipheralg);

        qcrypto_hash_bytes(hash, key, nkey, salt);
        g->essiv = qcrypto_cipher_new(cipheralg, QCRYPTO_CIPHER_MODE_ECB, salt,
                                      MIN(nsalt, need), errp);
        qcrypto_wipe(salt, sizeof(salt));
        if (!g->essiv) {
            g_free(g);
            return NULL;
        }
    }
    return g;
}

int qcrypto_ivgen_calculate(QCryptoIVGen *g, uint64_t sector, uint8_t *iv, size_t niv,
                            GError **errp)
{
    uint8_t data[16] = { 0 };

    memset(iv, 0, niv);
    switch (g->alg) {
    case QCRYPTO_IVGEN_ALG_PLAIN:
        stl_le(data, (uint32_t)sector);
        memcpy(iv, data, MIN(niv, 4));
        return 0;
    case QCRYPTO_IVGEN_ALG_PLAIN64:
        stq_le(data, sector);
        memcpy(iv, data, MIN(niv, 8));
        return 0;
    case QCRYPTO_IVGEN_ALG_ESSIV: {
        uint8_t buf[16] = { 0 };
        size_t n = MIN(niv, sizeof(buf));

        stq_le(buf, sector);
        if (qcrypto_cipher_encrypt(g->essiv, buf, buf, n, errp) < 0) {
            return -1;
        }
        memcpy(iv, buf, n);
        return 0;
    }
    default:
        g_assert_not_reached();
    }
}

void qcrypto_ivgen_free(QCryptoIVGen *g)
{
    if (g) {
        qcrypto_cipher_free(g->essiv);
        g_free(g);
    }
}

/* ---- anti-forensic splitter (LUKS1 on-disk format spec) ---- */

static void af_xor(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        out[i] = a[i] ^ b[i];
    }
}

/* Replace each digest-sized piece of @block by H(be32(index) || piece). */
static void af_diffuse(QCryptoHashAlgorithm hash, uint8_t *block, size_t len)
{
    size_t dlen = qcrypto_hash_digest_len(hash);
    uint8_t digest[64];

    for (size_t i = 0, off = 0; off < len; i++, off += dlen) {
        size_t n = MIN(dlen, len - off);
        uint8_t idx[4];
        const uint8_t *bufs[2] = { idx, block + off };
        size_t lens[2] = { 4, n };

        stl_be(idx, i);
        qcrypto_hash_bytesv(hash, bufs, lens, 2, digest);
        memcpy(block + off, digest, n);
    }
    qcrypto_wipe(digest, sizeof(digest));
}

int qcrypto_afsplit_encode(QCryptoHashAlgorithm hash, size_t blocklen, uint32_t stripes,
                           const uint8_t *in, uint8_t *out, GError **errp)
{
    g_autofree uint8_t *block = g_malloc0(blocklen);

    if (qcrypto_random_bytes(out, blocklen * (stripes - 1), errp) < 0) {
        return -1;
    }
    for (uint32_t i = 0; i < stripes - 1; i++) {
        af_xor(block, out + (size_t)i * blocklen, block, blocklen);
        af_diffuse(hash, block, blocklen);
    }
    af_xor(in, block, out + (size_t)(stripes - 1) * blocklen, blocklen);
    qcrypto_wipe(block, blocklen);
    return 0;
}

int qcrypto_afsplit_decode(QCryptoHashAlgorithm hash, size_t blocklen, uint32_t stripes,
                           const uint8_t *in, uint8_t *out, GError **errp)
{
    g_autofree uint8_t *block = g_malloc0(blocklen);

    for (uint32_t i = 0; i < stripes - 1; i++) {
        af_xor(block, in + (size_t)i * blocklen, block, blocklen);
        af_diffuse(hash, block, blocklen);
    }
    af_xor(in + (size_t)(stripes - 1) * blocklen, block, out, blocklen);
    qcrypto_wipe(block, blocklen);
    return 0;
}
