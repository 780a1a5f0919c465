/*
 * qcow2 compressed clusters: zlib (raw deflate, 4 KiB window, as QEMU) and zstd
 * (one frame per cluster; on reading, what follows the frame up to the end of
 * the last sector is ignored, as QEMU does). Writing compresses a run of
 * clusters on every core, then stores them in order, so that images come out
 * the same whatever the number of threads.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include <zlib.h>
#include <zstd.h>
#include <pthread.h>

/* Compress @in (@in_len) into @out (@out_len): the size, 0 if it does not fit,
 * -EIO on error. */
static ssize_t compress_zlib(uint8_t *out, size_t out_len, const uint8_t *in,
                             size_t in_len)
{
    z_stream strm = { 0 };
    ssize_t ret;
    int zret;

    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -EIO;
    }
    strm.next_in = (uint8_t *)in;
    strm.avail_in = in_len;
    strm.next_out = out;
    strm.avail_out = out_len;
    zret = deflate(&strm, Z_FINISH);
    ret = zret == Z_STREAM_END ? (ssize_t)(out_len - strm.avail_out) :
          zret == Z_OK || zret == Z_BUF_ERROR ? 0 : -EIO;
    deflateEnd(&strm);
    return ret;
}

static ssize_t compress_zstd(ZSTD_CCtx *cctx, uint8_t *out, size_t out_len,
                             const uint8_t *in, size_t in_len)
{
    ZSTD_outBuffer output = { out, out_len, 0 };
    ZSTD_inBuffer input = { in, in_len, 0 };
    size_t r;

    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only);
    r = ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_end);
    if (ZSTD_isError(r)) {
        return -EIO;
    }
    /* r > 0: the frame did not fit */
    return r ? 0 : (ssize_t)output.pos;
}

static int decompress_zlib(uint8_t *out, size_t out_len, const uint8_t *in,
                           size_t in_len)
{
    z_stream strm = { 0 };
    int ret, zret;

    if (inflateInit2(&strm, -12) != Z_OK) {
        return -EIO;
    }
    strm.next_in = (uint8_t *)in;
    strm.avail_in = in_len;
    strm.next_out = out;
    strm.avail_out = out_len;
    zret = inflate(&strm, Z_FINISH);
    ret = ((zret == Z_STREAM_END || zret == Z_BUF_ERROR || zret == Z_OK) &&
           strm.avail_out == 0) ? 0 : -EIO;
    inflateEnd(&strm);
    return ret;
}

static int decompress_zstd(uint8_t *out, size_t out_len, const uint8_t *in,
                           size_t in_len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_outBuffer output = { out, out_len, 0 };
    ZSTD_inBuffer input = { in, in_len, 0 };
    int ret = 0;

    if (!dctx) {
        return -EIO;
    }
    /* the frame may be followed by garbage: stop once the cluster is full */
    while (output.pos < output.size) {
        size_t last_in = input.pos, last_out = output.pos;
        size_t r = ZSTD_decompressStream(dctx, &output, &input);

        if (ZSTD_isError(r)) {
            ret = -EIO;
            break;
        }
        if (output.pos == output.size) {
            break;
        }
        if (input.pos <= last_in && output.pos <= last_out) {
            ret = -EIO;         /* no progress: truncated or corrupt */
            break;
        }
        if (r == 0 && input.pos == input.size) {
            ret = -EIO;         /* the frame ended early */
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return ret == 0 && output.pos == output.size ? 0 : -EIO;
}

int qcow2_decompress(int type, uint8_t *out, size_t out_len, const uint8_t *in,
                     size_t in_len)
{
    return type == QCOW2_COMPRESSION_TYPE_ZSTD ?
           decompress_zstd(out, out_len, in, in_len) :
           decompress_zlib(out, out_len, in, in_len);
}

/* ---- compressing a run of clusters on every core ---- */

typedef struct CompressJob {
    int type;
    size_t cluster_size;
    const uint8_t *in;          /* n clusters */
    uint8_t *out;               /* n clusters */
    ssize_t *out_len;
    int n, first, step;         /* this worker's clusters: first, first+step, ... */
    int ret;
} CompressJob;

static void *compress_worker(void *opaque)
{
    CompressJob *j = opaque;
    ZSTD_CCtx *cctx = j->type == QCOW2_COMPRESSION_TYPE_ZSTD ? ZSTD_createCCtx() : NULL;

    if (j->type == QCOW2_COMPRESSION_TYPE_ZSTD && !cctx) {
        j->ret = -ENOMEM;
        return NULL;
    }
    for (int i = j->first; i < j->n; i += j->step) {
        const uint8_t *in = j->in + (size_t)i * j->cluster_size;
        uint8_t *out = j->out + (size_t)i * j->cluster_size;
        /* one byte less than a cluster: a compressed cluster must be smaller */
        ssize_t r = cctx ? compress_zstd(cctx, out, j->cluster_size - 1, in,
                                         j->cluster_size)
                         : compress_zlib(out, j->cluster_size - 1, in,
                                         j->cluster_size);
        if (r < 0) {
            j->ret = r;
            break;
        }
        j->out_len[i] = r;
    }
    ZSTD_freeCCtx(cctx);
    return NULL;
}

int qcow2_compress_clusters(int type, size_t cluster_size, const uint8_t *in, int n,
                            uint8_t *out, ssize_t *out_len)
{
    int nthreads = MIN(MAX(g_get_num_processors(), 1), 8);
    CompressJob jobs[8];
    pthread_t threads[8];
    bool started[8] = { false };
    int ret = 0;

    nthreads = MIN(nthreads, n);
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (CompressJob) {
            .type = type, .cluster_size = cluster_size, .in = in, .out = out,
            .out_len = out_len, .n = n, .first = t, .step = nthreads,
        };
    }
    for (int t = 1; t < nthreads; t++) {
        started[t] = pthread_create(&threads[t], NULL, compress_worker, &jobs[t]) == 0;
        if (!started[t]) {
            /* no thread: this one does that share too */
            jobs[t].first = n;
        }
    }
    compress_worker(&jobs[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) {
            pthread_join(threads[t], NULL);
        } else {
            jobs[t].first = t;
            compress_worker(&jobs[t]);
        }
    }
    for (int t = 0; t < nthreads; t++) {
        if (jobs[t].ret < 0) {
            ret = jobs[t].ret;
        }
    }
    return ret;
}
