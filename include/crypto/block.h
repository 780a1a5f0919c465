/*
 * Encryption of disk images, as QEMU's "crypto block" layer: a format (LUKS1, or
 * qcow's legacy AES) whose header lives somewhere the caller reads and writes
 * through callbacks, and that encrypts and decrypts payload sectors in place.
 * Used by the luks driver (block/crypto.c) and by qcow2.
 */
#ifndef CRYPTO_BLOCK_H
#define CRYPTO_BLOCK_H

#include "qemu/osdep.h"
#include "qemu/option.h"
#include "crypto/crypto.h"

typedef enum QCryptoBlockFormat {
    QCRYPTO_BLOCK_FORMAT_QCOW,    /* "aes": legacy qcow/qcow2 AES-128-CBC */
    QCRYPTO_BLOCK_FORMAT_LUKS,
    QCRYPTO_BLOCK_FORMAT__MAX,
} QCryptoBlockFormat;

extern const char *const QCryptoBlockFormat_str[QCRYPTO_BLOCK_FORMAT__MAX];

#define QCRYPTO_BLOCK_SECTOR_SIZE 512
/* LUKS1 header limits we accept (a hostile header must not make us loop) */
#define QCRYPTO_BLOCK_LUKS_NUM_KEY_SLOTS 8
#define QCRYPTO_BLOCK_LUKS_STRIPES 4000
#define QCRYPTO_BLOCK_LUKS_MAX_ITERS (1U << 28)
#define QCRYPTO_BLOCK_LUKS_DEFAULT_ITER_TIME_MS 2000

typedef struct QCryptoBlock QCryptoBlock;

/* create options; a field < 0 (or NULL) is unset: the format's default */
typedef struct QCryptoBlockCreateOptions {
    QCryptoBlockFormat format;
    char *key_secret;
    int cipher_alg, cipher_mode, ivgen_alg, ivgen_hash_alg, hash_alg;
    int64_t iter_time;
} QCryptoBlockCreateOptions;

typedef struct QCryptoBlockAmendOptions {
    int state;                  /* 1 active, 0 inactive, -1 missing */
    char *new_secret, *old_secret;
    bool has_keyslot;
    int64_t keyslot;
    int64_t iter_time;          /* -1: default */
} QCryptoBlockAmendOptions;

void qcrypto_block_create_options_init(QCryptoBlockCreateOptions *o,
                                       QCryptoBlockFormat format);
void qcrypto_block_create_options_clear(QCryptoBlockCreateOptions *o);
/*
 * Fill create options from flat string options (key-secret, cipher-alg, ...,
 * iter-time; "format" when @want_format) named with @prefix ("encrypt." in qcow2,
 * "" for luks). QEMU's messages. 0 or -1.
 */
int qcrypto_block_create_options_parse(QCryptoBlockCreateOptions *o, JsonObject *opts,
                                       const char *prefix, GError **errp);
void qcrypto_block_amend_options_clear(QCryptoBlockAmendOptions *o);
/* Amend options from "state", "new-secret", ... under @prefix. 0 or -1. */
int qcrypto_block_amend_options_parse(QCryptoBlockAmendOptions *o, JsonObject *opts,
                                      const char *prefix, GError **errp);

/* Read/write @len bytes at @offset of the header area. 0 or -1 with errp set. */
typedef int (*QCryptoBlockReadFunc)(QCryptoBlock *block, size_t offset, uint8_t *buf,
                                    size_t len, void *opaque, GError **errp);
typedef int (*QCryptoBlockWriteFunc)(QCryptoBlock *block, size_t offset,
                                     const uint8_t *buf, size_t len, void *opaque,
                                     GError **errp);
/* Make the header area @len bytes long (create). 0 or -1. */
typedef int (*QCryptoBlockInitFunc)(QCryptoBlock *block, size_t len, void *opaque,
                                    GError **errp);
/* Make what was written stable (amend orders its writes with it). 0 or -1. */
typedef int (*QCryptoBlockFlushFunc)(QCryptoBlock *block, void *opaque, GError **errp);

/* parse the header only: no key needed, no encryption (qemu-img info) */
#define QCRYPTO_BLOCK_OPEN_NO_IO 1

/*
 * Open: read and check the header, and unless NO_IO unlock it with the secret
 * @key_secret ("Parameter '<prefix>key-secret' is required for cipher" without
 * one; "Invalid password, cannot unlock any keyslot" when it fits no slot).
 */
QCryptoBlock *qcrypto_block_open(QCryptoBlockFormat format, const char *key_secret,
                                 const char *prefix, QCryptoBlockReadFunc readfunc,
                                 void *opaque, unsigned flags, GError **errp);
QCryptoBlock *qcrypto_block_create(const QCryptoBlockCreateOptions *opts,
                                   const char *prefix, QCryptoBlockInitFunc initfunc,
                                   QCryptoBlockWriteFunc writefunc, void *opaque,
                                   GError **errp);
/* Bytes of header area a new image of these options takes (measure). */
int qcrypto_block_calculate_payload_offset(const QCryptoBlockCreateOptions *opts,
                                           const char *prefix, size_t *len,
                                           GError **errp);
/* Add or erase key slots (QEMU 7.2's rules and messages); crash-safe order. */
int qcrypto_block_amend(QCryptoBlock *block, const QCryptoBlockAmendOptions *opts,
                        const char *prefix, QCryptoBlockReadFunc readfunc,
                        QCryptoBlockWriteFunc writefunc, QCryptoBlockFlushFunc flushfunc,
                        void *opaque, bool force, GError **errp);
/* QEMU's QCryptoBlockInfoLUKS members in its order; NULL for the qcow format. With
 * @format_name the "format" member is put where qcow2's info has it. */
JsonObject *qcrypto_block_get_info(QCryptoBlock *block, bool with_format);
QCryptoBlockFormat qcrypto_block_get_format(QCryptoBlock *block);
/* Payload offset in bytes (LUKS: from the header; qcow: 0). */
uint64_t qcrypto_block_get_payload_offset(QCryptoBlock *block);
/* Can it encrypt (opened without NO_IO)? */
bool qcrypto_block_has_cipher(QCryptoBlock *block);
/*
 * En/decrypt @len bytes in place; @offset (bytes, sector aligned, as is @len)
 * numbers the sectors for the IVs. 0 or -1 with errp set.
 */
int qcrypto_block_encrypt(QCryptoBlock *block, uint64_t offset, uint8_t *buf,
                          size_t len, GError **errp);
int qcrypto_block_decrypt(QCryptoBlock *block, uint64_t offset, uint8_t *buf,
                          size_t len, GError **errp);
/* Encrypt @src into @dst (the caller's data stays as it is: no copy first). */
int qcrypto_block_encrypt_to(QCryptoBlock *block, uint64_t offset, const uint8_t *src,
                             uint8_t *dst, size_t len, GError **errp);
/*
 * Encrypt @src into @dst as qcrypto_block_encrypt_to() does, and hand the
 * result to @sink in order, a part at a time (@done bytes into @dst), each as
 * soon as it is encrypted: the sink's I/O overlaps the encryption of the parts
 * after it. The sink runs on the calling thread and returns 0 or a negative
 * errno. Returns 0, the sink's error, or -EIO with @errp set when the cipher
 * failed.
 */
typedef int (*QCryptoBlockSink)(void *opaque, size_t done, const uint8_t *buf, size_t len);
int qcrypto_block_encrypt_stream(QCryptoBlock *block, uint64_t offset, const uint8_t *src,
                                 uint8_t *dst, size_t len, QCryptoBlockSink sink,
                                 void *opaque, GError **errp);
void qcrypto_block_free(QCryptoBlock *block);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QCryptoBlock, qcrypto_block_free)

/* ---- internal: shared by crypto/block.c and crypto/block-luks.c ---- */
#define QCRYPTO_BLOCK_MAX_THREADS 8

struct QCryptoBlock {
    QCryptoBlockFormat format;
    QCryptoCipher *cipher;      /* payload cipher, NULL with NO_IO */
    QCryptoIVGen *ivgen;
    QCryptoCipherAlgorithm cipher_alg;
    size_t niv;
    uint64_t payload_offset;    /* bytes */
    void *opaque;               /* format state */
    /* what makes more payload ciphers, one per thread of a large request */
    QCryptoCipherMode cipher_mode;
    QCryptoIVGenAlgorithm ivgen_alg;
    QCryptoCipherAlgorithm ivgen_cipher_alg;
    QCryptoHashAlgorithm ivgen_hash_alg;
    uint8_t *key;
    size_t nkey;
    QCryptoCipher *extra_cipher[QCRYPTO_BLOCK_MAX_THREADS];
    QCryptoIVGen *extra_ivgen[QCRYPTO_BLOCK_MAX_THREADS];
};

/* Set up the payload cipher (a copy of @key is kept, wiped on free). 0 or -1. */
int qcrypto_block_init_cipher(QCryptoBlock *block, QCryptoCipherAlgorithm alg,
                              QCryptoCipherMode mode, const uint8_t *key, size_t nkey,
                              QCryptoIVGenAlgorithm ivgen_alg,
                              QCryptoCipherAlgorithm ivgen_cipher_alg,
                              QCryptoHashAlgorithm ivgen_hash_alg, GError **errp);

QCryptoBlock *qcrypto_block_luks_open(const char *key_secret, const char *prefix,
                                      QCryptoBlockReadFunc readfunc, void *opaque,
                                      unsigned flags, GError **errp);
QCryptoBlock *qcrypto_block_luks_create(const QCryptoBlockCreateOptions *opts,
                                        const char *prefix,
                                        QCryptoBlockInitFunc initfunc,
                                        QCryptoBlockWriteFunc writefunc, void *opaque,
                                        GError **errp);
int qcrypto_block_luks_payload_len(const QCryptoBlockCreateOptions *opts,
                                   const char *prefix, size_t *len, GError **errp);
int qcrypto_block_luks_amend(QCryptoBlock *block, const QCryptoBlockAmendOptions *opts,
                             const char *prefix, QCryptoBlockReadFunc readfunc,
                             QCryptoBlockWriteFunc writefunc,
                             QCryptoBlockFlushFunc flushfunc, void *opaque, bool force,
                             GError **errp);
JsonObject *qcrypto_block_luks_get_info(QCryptoBlock *block, bool with_format);
void qcrypto_block_luks_free(QCryptoBlock *block);

#endif
