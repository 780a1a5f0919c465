/*
 * Hashes, PBKDF2 (Nettle) and its calibration against this thread's CPU time,
 * random bytes (GnuTLS) and wiping key material.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/crypto.h"
#include <time.h>
#include <nettle/md5.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <nettle/ripemd160.h>
#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <nettle/nettle-meta.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

const char *const QCryptoHashAlgorithm_str[QCRYPTO_HASH_ALG__MAX] = {
    [QCRYPTO_HASH_ALG_MD5] = "md5",
    [QCRYPTO_HASH_ALG_SHA1] = "sha1",
    [QCRYPTO_HASH_ALG_SHA224] = "sha224",
    [QCRYPTO_HASH_ALG_SHA256] = "sha256",
    [QCRYPTO_HASH_ALG_SHA384] = "sha384",
    [QCRYPTO_HASH_ALG_SHA512] = "sha512",
    [QCRYPTO_HASH_ALG_RIPEMD160] = "ripemd160",
};

static const struct nettle_hash *const hash_impls[QCRYPTO_HASH_ALG__MAX] = {
    [QCRYPTO_HASH_ALG_MD5] = &nettle_md5,
    [QCRYPTO_HASH_ALG_SHA1] = &nettle_sha1,
    [QCRYPTO_HASH_ALG_SHA224] = &nettle_sha224,
    [QCRYPTO_HASH_ALG_SHA256] = &nettle_sha256,
    [QCRYPTO_HASH_ALG_SHA384] = &nettle_sha384,
    [QCRYPTO_HASH_ALG_SHA512] = &nettle_sha512,
    [QCRYPTO_HASH_ALG_RIPEMD160] = &nettle_ripemd160,
};

int qcrypto_enum_parse(const char *const *table, int n, const char *name)
{
    for (int i = 0; name && i < n; i++) {
        if (table[i] && !strcmp(table[i], name)) {
            return i;
        }
    }
    return -1;
}

void qcrypto_wipe(void *p, size_t len)
{
    if (p && len) {
        explicit_bzero(p, len);
    }
}

size_t qcrypto_hash_digest_len(QCryptoHashAlgorithm alg)
{
    return hash_impls[alg]->digest_size;
}

void qcrypto_hash_bytesv(QCryptoHashAlgorithm alg, const uint8_t *const *bufs,
                         const size_t *lens, int niov, uint8_t *digest)
{
    const struct nettle_hash *h = hash_impls[alg];
    g_autofree void *ctx = g_malloc(h->context_size);

    h->init(ctx);
    for (int i = 0; i < niov; i++) {
        h->update(ctx, lens[i], bufs[i]);
    }
    h->digest(ctx, h->digest_size, digest);
    qcrypto_wipe(ctx, h->context_size);
}

void qcrypto_hash_bytes(QCryptoHashAlgorithm alg, const uint8_t *buf, size_t len,
                        uint8_t *digest)
{
    qcrypto_hash_bytesv(alg, &buf, &len, 1, digest);
}

/* ---- PBKDF2 ---- */

#define PBKDF2_HMAC(type, size)                                                 \
    do {                                                                        \
        struct hmac_##type##_ctx ctx;                                           \
        hmac_##type##_set_key(&ctx, nkey, key);                                 \
        PBKDF2(&ctx, hmac_##type##_update, hmac_##type##_digest, size,          \
               (unsigned)iterations, nsalt, salt, nout, out);                   \
        qcrypto_wipe(&ctx, sizeof(ctx));                                        \
    } while (0)

int qcrypto_pbkdf2(QCryptoHashAlgorithm hash, const uint8_t *key, size_t nkey,
                   const uint8_t *salt, size_t nsalt, uint64_t iterations,
                   uint8_t *out, size_t nout, GError **errp)
{
    if (iterations == 0 || iterations > UINT32_MAX) {
        error_setg(errp, "PBKDF iterations %" PRIu64 " must be between 1 and %u",
                   iterations, UINT32_MAX);
        return -1;
    }
    switch (hash) {
    case QCRYPTO_HASH_ALG_MD5:
        PBKDF2_HMAC(md5, MD5_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_SHA1:
        PBKDF2_HMAC(sha1, SHA1_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_SHA224:
        PBKDF2_HMAC(sha224, SHA224_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_SHA256:
        PBKDF2_HMAC(sha256, SHA256_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_SHA384:
        PBKDF2_HMAC(sha384, SHA384_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_SHA512:
        PBKDF2_HMAC(sha512, SHA512_DIGEST_SIZE);
        break;
    case QCRYPTO_HASH_ALG_RIPEMD160:
        PBKDF2_HMAC(ripemd160, RIPEMD160_DIGEST_SIZE);
        break;
    default:
        error_setg(errp, "PBKDF does not support hash algorithm %d", hash);
        return -1;
    }
    return 0;
}

/* this thread's CPU time in ns: precise (scheduler accounting), unlike getrusage */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0 &&
        clock_gettime(CLOCK_MONOTONIC, &ts) < 0) {
        return -1;
    }
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* measured iterations per second, per hash, for this process */
static uint64_t pbkdf2_rate[QCRYPTO_HASH_ALG__MAX];

uint64_t qcrypto_pbkdf2_count_iters_ms(QCryptoHashAlgorithm hash, size_t nkey,
                                       size_t nout, uint64_t ms, GError **errp)
{
    uint8_t key[64] = { 0 }, salt[32] = { 0 }, out[64];
    uint64_t iterations = 1 << 14, rate = pbkdf2_rate[hash];
    size_t dlen = qcrypto_hash_digest_len(hash);
    unsigned __int128 total;

    if (!rate) {
        /* at least 100 ms of CPU time: clock granularity and scheduling noise
         * stay below a few per cent */
        uint64_t best_iters = 0;
        int64_t best_delta = 0;

        for (int tries = 0; tries < 40; tries++) {
            int64_t t0 = thread_cpu_ns(), t1, delta;

            /* one output block: each further block costs as much again */
            if (qcrypto_pbkdf2(hash, key, MIN(nkey, sizeof(key)), salt, sizeof(salt),
                               iterations, out, dlen, errp) < 0) {
                return 0;
            }
            t1 = thread_cpu_ns();
            if (t0 < 0 || t1 < 0) {
                error_setg(errp, "Unable to get accurate CPU usage");
                return 0;
            }
            delta = t1 - t0;
            if (delta > best_delta) {
                best_iters = iterations;
                best_delta = delta;
            }
            if (delta >= 100000000LL) {
                rate = (uint64_t)((unsigned __int128)iterations * 1000000000ULL / delta);
                break;
            }
            if (iterations >= UINT32_MAX / 16) {
                break;
            }
            iterations = delta < 10000000LL ? iterations * 10 :
                         iterations * 120000000ULL / delta;
        }
        if (!rate && best_delta > 0) {
            /* the clock never reached 100 ms: the longest measurement will do */
            rate = (uint64_t)((unsigned __int128)best_iters * 1000000000ULL / best_delta);
        }
        if (!rate) {
            error_setg(errp, "Unable to get accurate CPU usage");
            return 0;
        }
        pbkdf2_rate[hash] = rate;
    }
    total = (unsigned __int128)rate * ms / 1000 / DIV_ROUND_UP(MAX(nout, 1), dlen);
    if (total > UINT32_MAX) {
        error_setg(errp, "PBKDF iterations %" PRIu64 " too large to scale",
                   (uint64_t)MIN(total, (unsigned __int128)UINT64_MAX));
        return 0;
    }
    return MAX((uint64_t)total, 1);
}

int qcrypto_random_bytes(void *buf, size_t len, GError **errp)
{
    int ret = gnutls_rnd(GNUTLS_RND_RANDOM, buf, len);

    if (ret < 0) {
        error_setg(errp, "Cannot get random bytes: %s", gnutls_strerror(ret));
        return -1;
    }
    return 0;
}
