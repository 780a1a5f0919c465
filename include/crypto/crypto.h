/*
 * Cryptographic primitives for encrypted images, all from Nettle and GnuTLS
 * (nothing hand-written): hashes, PBKDF2 and its calibration, block ciphers in
 * ECB/CBC/XTS/CTR mode, IV generators (plain, plain64, essiv), LUKS's
 * anti-forensic splitter, and random bytes. Names are QEMU's QAPI names.
 */
#ifndef CRYPTO_CRYPTO_H
#define CRYPTO_CRYPTO_H

#include "qemu/osdep.h"

/* ---- hashes ---- */
typedef enum QCryptoHashAlgorithm {
    QCRYPTO_HASH_ALG_MD5,
    QCRYPTO_HASH_ALG_SHA1,
    QCRYPTO_HASH_ALG_SHA224,
    QCRYPTO_HASH_ALG_SHA256,
    QCRYPTO_HASH_ALG_SHA384,
    QCRYPTO_HASH_ALG_SHA512,
    QCRYPTO_HASH_ALG_RIPEMD160,
    QCRYPTO_HASH_ALG__MAX,
} QCryptoHashAlgorithm;

extern const char *const QCryptoHashAlgorithm_str[QCRYPTO_HASH_ALG__MAX];
/* index of @name in @table (size @n), or -1 */
int qcrypto_enum_parse(const char *const *table, int n, const char *name);
size_t qcrypto_hash_digest_len(QCryptoHashAlgorithm alg);
/* digest of the concatenation of @niov buffers */
void qcrypto_hash_bytesv(QCryptoHashAlgorithm alg, const uint8_t *const *bufs,
                         const size_t *lens, int niov, uint8_t *digest);
void qcrypto_hash_bytes(QCryptoHashAlgorithm alg, const uint8_t *buf, size_t len,
                        uint8_t *digest);

/* ---- PBKDF2 ---- */
int qcrypto_pbkdf2(QCryptoHashAlgorithm hash, const uint8_t *key, size_t nkey,
                   const uint8_t *salt, size_t nsalt, uint64_t iterations,
                   uint8_t *out, size_t nout, GError **errp);
/*
 * Iterations of PBKDF2 that take @ms milliseconds of this thread's CPU time
 * (measured with the thread CPU clock, over at least 100 ms). 0 with errp set.
 */
uint64_t qcrypto_pbkdf2_count_iters_ms(QCryptoHashAlgorithm hash, size_t nkey,
                                       size_t nout, uint64_t ms, GError **errp);

/* ---- ciphers ---- */
typedef enum QCryptoCipherAlgorithm {
    QCRYPTO_CIPHER_ALG_AES_128,
    QCRYPTO_CIPHER_ALG_AES_192,
    QCRYPTO_CIPHER_ALG_AES_256,
    QCRYPTO_CIPHER_ALG_DES,
    QCRYPTO_CIPHER_ALG_3DES,
    QCRYPTO_CIPHER_ALG_CAST5_128,
    QCRYPTO_CIPHER_ALG_SERPENT_128,
    QCRYPTO_CIPHER_ALG_SERPENT_192,
    QCRYPTO_CIPHER_ALG_SERPENT_256,
    QCRYPTO_CIPHER_ALG_TWOFISH_128,
    QCRYPTO_CIPHER_ALG_TWOFISH_192,
    QCRYPTO_CIPHER_ALG_TWOFISH_256,
    QCRYPTO_CIPHER_ALG_SM4,
    QCRYPTO_CIPHER_ALG__MAX,
} QCryptoCipherAlgorithm;

typedef enum QCryptoCipherMode {
    QCRYPTO_CIPHER_MODE_ECB,
    QCRYPTO_CIPHER_MODE_CBC,
    QCRYPTO_CIPHER_MODE_XTS,
    QCRYPTO_CIPHER_MODE_CTR,
    QCRYPTO_CIPHER_MODE__MAX,
} QCryptoCipherMode;

extern const char *const QCryptoCipherAlgorithm_str[QCRYPTO_CIPHER_ALG__MAX];
extern const char *const QCryptoCipherMode_str[QCRYPTO_CIPHER_MODE__MAX];

/* key length of the algorithm (one key: XTS takes twice this) */
size_t qcrypto_cipher_get_key_len(QCryptoCipherAlgorithm alg);
size_t qcrypto_cipher_get_block_len(QCryptoCipherAlgorithm alg);
bool qcrypto_cipher_supports(QCryptoCipherAlgorithm alg, QCryptoCipherMode mode);

typedef struct QCryptoCipher QCryptoCipher;
/* @nkey: the algorithm's key length, twice that for XTS. NULL with errp set. */
QCryptoCipher *qcrypto_cipher_new(QCryptoCipherAlgorithm alg, QCryptoCipherMode mode,
                                  const uint8_t *key, size_t nkey, GError **errp);
void qcrypto_cipher_free(QCryptoCipher *c);
/* The IV for the next encrypt/decrypt call (CBC, XTS, CTR): one block. */
int qcrypto_cipher_setiv(QCryptoCipher *c, const uint8_t *iv, size_t niv, GError **errp);
/* @len a multiple of the block size (XTS: at least one block). 0 or -1. */
int qcrypto_cipher_encrypt(QCryptoCipher *c, const void *in, void *out, size_t len,
                           GError **errp);
int qcrypto_cipher_decrypt(QCryptoCipher *c, const void *in, void *out, size_t len,
                           GError **errp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QCryptoCipher, qcrypto_cipher_free)

/* ---- IV generators ---- */
typedef enum QCryptoIVGenAlgorithm {
    QCRYPTO_IVGEN_ALG_PLAIN,
    QCRYPTO_IVGEN_ALG_PLAIN64,
    QCRYPTO_IVGEN_ALG_ESSIV,
    QCRYPTO_IVGEN_ALG__MAX,
} QCryptoIVGenAlgorithm;

extern const char *const QCryptoIVGenAlgorithm_str[QCRYPTO_IVGEN_ALG__MAX];

typedef struct QCryptoIVGen QCryptoIVGen;
/* essiv: @cipheralg/@hash are those of the ESSIV cipher, keyed by hash(@key) */
QCryptoIVGen *qcrypto_ivgen_new(QCryptoIVGenAlgorithm alg,
                                QCryptoCipherAlgorithm cipheralg,
                                QCryptoHashAlgorithm hash, const uint8_t *key,
                                size_t nkey, GError **errp);
int qcrypto_ivgen_calculate(QCryptoIVGen *ivgen, uint64_t sector, uint8_t *iv,
                            size_t niv, GError **errp);
void qcrypto_ivgen_free(QCryptoIVGen *ivgen);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QCryptoIVGen, qcrypto_ivgen_free)

/* ---- LUKS anti-forensic splitter ---- */
/* @in (@blocklen bytes) -> @out (@blocklen * @stripes bytes), random stripes */
int qcrypto_afsplit_encode(QCryptoHashAlgorithm hash, size_t blocklen, uint32_t stripes,
                           const uint8_t *in, uint8_t *out, GError **errp);
int qcrypto_afsplit_decode(QCryptoHashAlgorithm hash, size_t blocklen, uint32_t stripes,
                           const uint8_t *in, uint8_t *out, GError **errp);

/* ---- random bytes (GnuTLS's generator) ---- */
int qcrypto_random_bytes(void *buf, size_t len, GError **errp);

/* Overwrite @len bytes with zeros (not optimised away). */
void qcrypto_wipe(void *p, size_t len);

#endif
