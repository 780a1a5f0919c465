/*
 * The crypto block layer's front: create/amend option parsing with QEMU's
 * messages, dispatch to the formats, payload encryption by sector (the IV of
 * each 512-byte sector comes from its number), and the legacy qcow "aes"
 * format (AES-128-CBC, plain64 IVs, the passphrase's first 16 bytes as key).
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

/*
 * Sectors [first, first + n) of @src (numbered from @sector) into @dst (may be
 * @src) with one context.
 */
static int crypt_sectors(QCryptoBlock *block, QCryptoCipher *cipher, QCryptoIVGen *ivgen,
                         uint64_t sector, const uint8_t *src, uint8_t *dst, size_t n,
                         bool encrypt, GError **errp)
{
    uint8_t iv[16];

    for (size_t i = 0; i < n; i++, sector++) {
        const uint8_t *in = src + i * QCRYPTO_BLOCK_SECTOR_SIZE;
        uint8_t *out = dst + i * QCRYPTO_BLOCK_SECTOR_SIZE;
        int ret;

        if (block->niv &&
            (qcrypto_ivgen_calculate(ivgen, sector, iv, block->niv, errp) < 0 ||
             qcrypto_cipher_setiv(cipher, iv, block->niv, errp) < 0)) {
            return -1;
        }
        ret = encrypt ?
            qcrypto_cipher_encrypt(cipher, in, out, QCRYPTO_BLOCK_SECTOR_SIZE, errp) :
            qcrypto_cipher_decrypt(cipher, in, out, QCRYPTO_BLOCK_SECTOR_SIZE, errp);
        if (ret < 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * Large requests are split over the cores: the calling thread does the first
 * part, workers of one process-wide pool (kept between requests: creating a
 * thread per request cost as much as the encryption it saved) the others.
 */
typedef struct CryptBatch {
    GMutex lock;
    GCond done;
    int pending;            /* parts handed to the pool, not finished yet */
} CryptBatch;

typedef struct CryptJob {
    QCryptoBlock *block;
    QCryptoCipher *cipher;
    QCryptoIVGen *ivgen;
    uint64_t sector;
    const uint8_t *src;
    uint8_t *dst;
    size_t n;
    bool encrypt;
    int ret;
    CryptBatch *batch;
} CryptJob;

static void crypt_job_run(CryptJob *j)
{
    j->ret = crypt_sectors(j->block, j->cipher, j->ivgen, j->sector, j->src, j->dst, j->n,
                           j->encrypt, NULL);
}

static void crypt_pool_func(gpointer data, gpointer user_data)
{
    CryptJob *j = data;
    CryptBatch *b = j->batch;

    crypt_job_run(j);
    g_mutex_lock(&b->lock);
    if (--b->pending == 0) {
        g_cond_signal(&b->done);
    }
    g_mutex_unlock(&b->lock);
}

static int crypt_cores(void)
{
    static gsize cores;

    if (g_once_init_enter(&cores)) {
        g_once_init_leave(&cores, MAX(1, (int)g_get_num_processors()));
    }
    return cores;
}

static GThreadPool *crypt_pool(void)
{
    static GThreadPool *pool;

    if (g_once_init_enter(&pool)) {
        /* shared (non-exclusive) threads: idle ones are kept for the next request */
        g_once_init_leave(&pool, g_thread_pool_new(crypt_pool_func, NULL,
                                                   QCRYPTO_BLOCK_MAX_THREADS - 1,
                                                   FALSE, NULL));
    }
    return pool;
}

/* requests from this size on are split over the cores */
#define PARALLEL_MIN (256 * KiB)

static int block_crypt(QCryptoBlock *block, uint64_t offset, const uint8_t *src,
                       uint8_t *dst, size_t len, bool encrypt, GError **errp)
{
    uint64_t sector = offset / QCRYPTO_BLOCK_SECTOR_SIZE;
    size_t nsec = len / QCRYPTO_BLOCK_SECTOR_SIZE, per;
    int nthreads = 1;
    CryptJob jobs[QCRYPTO_BLOCK_MAX_THREADS];
    CryptBatch batch = { 0 };
    int ret = 0;

    g_assert(block->cipher);
    g_assert(!(offset % QCRYPTO_BLOCK_SECTOR_SIZE) && !(len % QCRYPTO_BLOCK_SECTOR_SIZE));
    if (len >= PARALLEL_MIN && block->key) {
        nthreads = MIN(MIN(crypt_cores(), QCRYPTO_BLOCK_MAX_THREADS),
                       (int)(len / (PARALLEL_MIN / 2)));
    }
    /* one cipher context per part: a context carries its IV */
    for (int t = 1; t < nthreads; t++) {
        if (!block->extra_cipher[t]) {
            block->extra_cipher[t] = qcrypto_cipher_new(block->cipher_alg,
                                                        block->cipher_mode, block->key,
                                                        block->nkey, NULL);
            block->extra_ivgen[t] = qcrypto_ivgen_new(block->ivgen_alg,
                                                      block->ivgen_cipher_alg,
                                                      block->ivgen_hash_alg, block->key,
                                                      block->nkey, NULL);
        }
        if (!block->extra_cipher[t] || !block->extra_ivgen[t]) {
            nthreads = t;
            break;
        }
    }
    if (nthreads == 1) {
        return crypt_sectors(block, block->cipher, block->ivgen, sector, src, dst, nsec,
                             encrypt, errp);
    }
    per = DIV_ROUND_UP(nsec, nthreads);
    g_mutex_init(&batch.lock);
    g_cond_init(&batch.done);
    for (int t = 0; t < nthreads; t++) {
        size_t first = MIN(nsec, t * per);
        jobs[t] = (CryptJob) {
            .block = block,
            .cipher = t ? block->extra_cipher[t] : block->cipher,
            .ivgen = t ? block->extra_ivgen[t] : block->ivgen,
            .sector = sector + first,
            .src = src + first * QCRYPTO_BLOCK_SECTOR_SIZE,
            .dst = dst + first * QCRYPTO_BLOCK_SECTOR_SIZE,
            .n = MIN(per, nsec - first),
            .encrypt = encrypt,
            .batch = &batch,
        };
    }
    batch.pending = nthreads - 1;
    for (int t = 1; t < nthreads; t++) {
        if (!g_thread_pool_push(crypt_pool(), &jobs[t], NULL)) {
            crypt_pool_func(&jobs[t], NULL);    /* no thread to be had: do it here */
        }
    }
    crypt_job_run(&jobs[0]);
    g_mutex_lock(&batch.lock);
    while (batch.pending > 0) {
        g_cond_wait(&batch.done, &batch.lock);
    }
    g_mutex_unlock(&batch.lock);
    g_mutex_clear(&batch.lock);
    g_cond_clear(&batch.done);
    for (int t = 0; t < nthreads; t++) {
        ret = ret < 0 ? ret : jobs[t].ret;
    }
    if (ret < 0) {
        error_setg(errp, "Cannot %s data", encrypt ? "encrypt" : "decrypt");
    }
    return ret;
}

int qcrypto_block_encrypt(QCryptoBlock *block, uint64_t offset, uint8_t *buf,
                          size_t len, GError **errp)
{
    return block_crypt(block, offset, buf, buf, len, true, errp);
}

int qcrypto_block_encrypt_to(QCryptoBlock *block, uint64_t offset, const uint8_t *src,
                             uint8_t *dst, size_t len, GError **errp)
{
    return block_crypt(block, offset, src, dst, len, true, errp);
}

int qcrypto_block_decrypt(QCryptoBlock *block, uint64_t offset, uint8_t *buf,
                          size_t len, GError **errp)
{
    return block_crypt(block, offset, buf, buf, len, false, errp);
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
