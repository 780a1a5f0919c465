/*
 * Payload en/decryption by 512-byte sector (the IV of each sector comes from
 * its number), spread over the cores: large requests are split into parts for
 * the workers of one process-wide pool, and a streamed encryption hands each
 * encrypted part to its writer while the following parts are still encrypted.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/block.h"

/*
 * Sectors [0, n) of @src (numbered from @sector) into @dst (may be @src) with
 * one context.
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

/* ---- the pool: shared (non-exclusive) threads, idle ones kept for the next
 *      request (creating a thread per request cost as much as it saved) ---- */

typedef struct PoolTask PoolTask;
struct PoolTask {
    void (*run)(PoolTask *task);
};

static void pool_func(gpointer data, gpointer user_data)
{
    PoolTask *t = data;

    t->run(t);
}

static int crypt_cores(void)
{
    static gsize cores;

    if (g_once_init_enter(&cores)) {
        g_once_init_leave(&cores, MAX(1, (int)g_get_num_processors()));
    }
    return cores;
}

/* Hand @task to a worker; false when no thread is to be had. */
static bool pool_push(PoolTask *task)
{
    static GThreadPool *pool;

    if (g_once_init_enter(&pool)) {
        g_once_init_leave(&pool, g_thread_pool_new(pool_func, NULL,
                                                   QCRYPTO_BLOCK_MAX_THREADS - 1,
                                                   FALSE, NULL));
    }
    return g_thread_pool_push(pool, task, NULL);
}

/* Up to @want contexts for as many threads (a context carries its IV): the
 * payload's own for thread 0, made once per block for the others. */
static int payload_contexts(QCryptoBlock *block, int want)
{
    want = MIN(MIN(want, crypt_cores()), QCRYPTO_BLOCK_MAX_THREADS);
    if (!block->key) {
        return 1;
    }
    for (int t = 1; t < want; t++) {
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
            return t;
        }
    }
    return MAX(want, 1);
}

static QCryptoCipher *context_cipher(QCryptoBlock *block, int t)
{
    return t ? block->extra_cipher[t] : block->cipher;
}

static QCryptoIVGen *context_ivgen(QCryptoBlock *block, int t)
{
    return t ? block->extra_ivgen[t] : block->ivgen;
}

/* ---- a request split into equal parts, one per thread ---- */

typedef struct CryptBatch {
    GMutex lock;
    GCond done;
    int pending;            /* parts handed to the pool, not finished yet */
} CryptBatch;

typedef struct CryptJob {
    PoolTask task;
    QCryptoBlock *block;
    int context;
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
    j->ret = crypt_sectors(j->block, context_cipher(j->block, j->context),
                           context_ivgen(j->block, j->context), j->sector, j->src, j->dst,
                           j->n, j->encrypt, NULL);
}

static void crypt_job_task(PoolTask *task)
{
    CryptJob *j = (CryptJob *)task;
    CryptBatch *b = j->batch;

    crypt_job_run(j);
    g_mutex_lock(&b->lock);
    if (--b->pending == 0) {
        g_cond_signal(&b->done);
    }
    g_mutex_unlock(&b->lock);
}

/*
 * Requests from this size on are split over the cores. Below it, handing half
 * of a request to another core (waking it, and moving the data between the
 * cores' caches) cost more than the half of the cipher it saved: reading 1 GiB
 * of a LUKS qcow2 image in 1 MiB requests took 0.38 s on one core and
 * 0.40-0.49 s split in two; in 4 MiB requests 0.45 s and 0.44 s.
 */
#define PARALLEL_MIN (4 * MiB)

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
    if (len >= PARALLEL_MIN) {
        nthreads = payload_contexts(block, len / (PARALLEL_MIN / 2));
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
            .task.run = crypt_job_task,
            .block = block,
            .context = t,
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
        if (!pool_push(&jobs[t].task)) {
            crypt_job_task(&jobs[t].task);      /* no thread to be had: do it here */
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

/*
 * ---- streamed encryption ----
 * The request is cut into parts. The calling thread and one worker take the
 * parts in turn; the calling thread hands each part to the sink, in order, as
 * soon as it is encrypted, and encrypts a part itself only when the next one
 * is not ready. So the sink's copy into the page cache runs beside the cipher
 * rather than after it.
 */
#define STREAM_PART (128 * KiB)
#define STREAM_MAX_PARTS 64

typedef struct CryptStream {
    PoolTask task;
    QCryptoBlock *block;
    uint64_t sector;
    const uint8_t *src;
    uint8_t *dst;
    size_t nsec, part;      /* sectors in all, and per part */
    int nparts;
    GMutex lock;
    GCond cond;
    int next;               /* the next part to be taken */
    bool done[STREAM_MAX_PARTS];
    bool failed;            /* a part failed to encrypt */
    bool stop;              /* take no more parts */
    bool worker_gone;       /* the worker touches nothing of this any more */
} CryptStream;

/* Encrypt part @p with the context of thread @t; false when that failed. */
static bool stream_part(CryptStream *cs, int p, int t)
{
    size_t first = p * cs->part, n = MIN(cs->part, cs->nsec - first);

    return crypt_sectors(cs->block, context_cipher(cs->block, t),
                         context_ivgen(cs->block, t), cs->sector + first,
                         cs->src + first * QCRYPTO_BLOCK_SECTOR_SIZE,
                         cs->dst + first * QCRYPTO_BLOCK_SECTOR_SIZE, n, true, NULL) == 0;
}

static void stream_worker(PoolTask *task)
{
    CryptStream *cs = (CryptStream *)task;

    g_mutex_lock(&cs->lock);
    while (!cs->stop && cs->next < cs->nparts) {
        int p = cs->next++;
        bool ok;

        g_mutex_unlock(&cs->lock);
        ok = stream_part(cs, p, 1);
        g_mutex_lock(&cs->lock);
        cs->done[p] = ok;
        cs->failed |= !ok;
        cs->stop |= !ok;
        g_cond_signal(&cs->cond);
    }
    cs->worker_gone = true;
    g_cond_signal(&cs->cond);
    g_mutex_unlock(&cs->lock);
}

int qcrypto_block_encrypt_stream(QCryptoBlock *block, uint64_t offset, const uint8_t *src,
                                 uint8_t *dst, size_t len, QCryptoBlockSink sink,
                                 void *opaque, GError **errp)
{
    CryptStream cs = {
        .task.run = stream_worker,
        .block = block,
        .sector = offset / QCRYPTO_BLOCK_SECTOR_SIZE,
        .src = src,
        .dst = dst,
        .nsec = len / QCRYPTO_BLOCK_SECTOR_SIZE,
    };
    size_t per = DIV_ROUND_UP(len, STREAM_MAX_PARTS * QCRYPTO_BLOCK_SECTOR_SIZE);
    size_t part_bytes = MAX(STREAM_PART, per * QCRYPTO_BLOCK_SECTOR_SIZE);
    int ret = 0;

    g_assert(block->cipher);
    g_assert(!(offset % QCRYPTO_BLOCK_SECTOR_SIZE) && !(len % QCRYPTO_BLOCK_SECTOR_SIZE));
    if (len < 2 * STREAM_PART || payload_contexts(block, 2) < 2) {
        if (block_crypt(block, offset, src, dst, len, true, errp) < 0) {
            return -EIO;
        }
        return sink(opaque, 0, dst, len);
    }
    cs.part = part_bytes / QCRYPTO_BLOCK_SECTOR_SIZE;
    cs.nparts = DIV_ROUND_UP(cs.nsec, cs.part);
    g_mutex_init(&cs.lock);
    g_cond_init(&cs.cond);
    if (!pool_push(&cs.task)) {
        cs.worker_gone = true;      /* no thread to be had: all parts here */
    }
    g_mutex_lock(&cs.lock);
    for (int w = 0; w < cs.nparts && ret == 0;) {
        if (cs.done[w]) {
            size_t at = w * part_bytes;

            g_mutex_unlock(&cs.lock);
            ret = sink(opaque, at, dst + at, MIN(part_bytes, len - at));
            g_mutex_lock(&cs.lock);
            w++;
        } else if (cs.failed) {
            error_setg(errp, "Cannot encrypt data");
            ret = -EIO;
        } else if (cs.next < cs.nparts) {
            int p = cs.next++;
            bool ok;

            g_mutex_unlock(&cs.lock);
            ok = stream_part(&cs, p, 0);
            g_mutex_lock(&cs.lock);
            cs.done[p] = ok;
            cs.failed |= !ok;
        } else {
            g_cond_wait(&cs.cond, &cs.lock);
        }
    }
    /* the worker writes into @dst and @cs: it must be gone before they are */
    cs.stop = true;
    while (!cs.worker_gone) {
        g_cond_wait(&cs.cond, &cs.lock);
    }
    g_mutex_unlock(&cs.lock);
    g_mutex_clear(&cs.lock);
    g_cond_clear(&cs.cond);
    return ret;
}
