/*
 * qcow2 size measurement (qemu-img measure): the file size a new qcow2 image
 * needs, for a virtual size and creation options, or for a copy of another image's
 * allocated data, with QEMU 7.2's numbers, option rules and messages.
 *
 * What is counted is the layout qcow2-create.c writes and grows: the header
 * cluster, the L1 table, one L2 table for every L1 entry the virtual size needs,
 * the refcount table and blocks covering all of that (and themselves), then the
 * data clusters. "required" holds the data clusters the source allocates (in the
 * target's cluster size), "fully allocated" every guest cluster. Nothing is read
 * but the source's block status (and its bitmap directory), so terabyte images
 * measure in milliseconds.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/qcow2.h"

typedef struct Qcow2MeasureParams {
    uint64_t cluster_size;
    uint64_t l2_entry_size;     /* 8, or 16 with extended_l2 */
    int64_t refcount_bits;
    int version;
    PreallocMode prealloc;
    bool has_backing;
} Qcow2MeasureParams;

/* The options, checked in QEMU's order and with measure's own messages. */
static int parse_params(JsonObject *opts, Qcow2MeasureParams *p, GError **errp)
{
    const char *compat = opts_peek_str(opts, "compat");
    const char *pa = opts_peek_str(opts, "preallocation");
    GError *local = NULL;
    bool extended_l2;

    p->cluster_size = opts_get_size(opts, "cluster_size", DEFAULT_CLUSTER_SIZE, &local);
    extended_l2 = local ? false : opts_get_bool(opts, "extended_l2", false, &local);
    p->refcount_bits = local ? 0 : opts_get_int(opts, "refcount_bits", 16, &local);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (!is_power_of_2(p->cluster_size) || p->cluster_size < (1 << MIN_CLUSTER_BITS) ||
        p->cluster_size > (1 << MAX_CLUSTER_BITS)) {
        error_setg(errp, "Cluster size must be a power of two between %d and %dk",
                   1 << MIN_CLUSTER_BITS, 1 << (MAX_CLUSTER_BITS - 10));
        return -EINVAL;
    }
    if (extended_l2 && p->cluster_size < 16 * KiB) {
        error_setg(errp, "Extended L2 entries are only supported with cluster sizes of "
                   "at least 16384 bytes");
        return -EINVAL;
    }
    p->l2_entry_size = extended_l2 ? 16 : 8;
    if (!compat || !strcmp(compat, "1.1")) {
        p->version = 3;
    } else if (!strcmp(compat, "0.10")) {
        p->version = 2;
    } else {
        error_setg(errp, "Invalid compatibility level: '%s'", compat);
        return -EINVAL;
    }
    if (p->refcount_bits <= 0 || p->refcount_bits > 64 ||
        !is_power_of_2(p->refcount_bits)) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 "
                   "bits");
        return -EINVAL;
    }
    if (p->version < 3 && p->refcount_bits != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require compatibility "
                   "level 1.1 or above (use compat=1.1 or greater)");
        return -EINVAL;
    }
    p->prealloc = PREALLOC_MODE_OFF;
    if (pa) {
        int m = prealloc_mode_parse(pa);
        if (m < 0) {
            error_setg(errp, "invalid parameter value: %s", pa);
            return -EINVAL;
        }
        p->prealloc = m;
    }
    p->has_backing = opts_peek_str(opts, "backing_file") != NULL;
    return 0;
}

/*
 * Refcount table and block clusters for @clusters clusters plus themselves: the
 * least n with blocks(clusters + n) + table(blocks) == n.
 */
static uint64_t refcount_clusters(uint64_t clusters, uint64_t cluster_size,
                                  uint64_t refcount_bits)
{
    uint64_t per_block = cluster_size * 8 / refcount_bits;
    uint64_t n = 0;

    for (;;) {
        uint64_t blocks = DIV_ROUND_UP(clusters + n, per_block);
        uint64_t table = DIV_ROUND_UP(blocks * 8, cluster_size);

        if (blocks + table <= n) {
            return n;
        }
        n = blocks + table;
    }
}

/* Bytes of everything but data for an image of @aligned_size (cluster multiple). */
static int metadata_size(uint64_t aligned_size, const Qcow2MeasureParams *p,
                         uint64_t *meta, GError **errp)
{
    uint64_t cs = p->cluster_size;
    uint64_t data_clusters = aligned_size / cs;
    uint64_t l2_tables = DIV_ROUND_UP(data_clusters, cs / p->l2_entry_size);
    uint64_t clusters;

    if (l2_tables * 8 > QCOW_MAX_L1_SIZE) {
        error_setg(errp, "The image size is too large (try using a larger cluster size)");
        return -EFBIG;
    }
    clusters = 1 + DIV_ROUND_UP(l2_tables * 8, cs) + l2_tables;
    clusters += refcount_clusters(data_clusters + clusters, cs, p->refcount_bits);
    *meta = clusters * cs;
    return 0;
}

/*
 * Block status as a reader of @bs sees it through the backing chain: the flags of
 * the first layer that allocates the range; without BDRV_BLOCK_ALLOCATED when none
 * does (the range reads as zeros).
 */
static int chain_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        int64_t *pnum)
{
    for (;;) {
        BlockDriverState *backing;
        int ret = bdrv_block_status(bs, offset, bytes, pnum, NULL, NULL);

        if (ret < 0) {
            return ret;
        }
        if (*pnum <= 0) {
            return -EIO;
        }
        backing = bdrv_backing_child(bs);
        if ((ret & BDRV_BLOCK_ALLOCATED) || !backing ||
            offset >= bdrv_getlength(backing)) {
            return ret;
        }
        bytes = *pnum;
        bs = backing;
    }
}

/*
 * Bytes of the target's clusters (@cluster_size) that hold data of @bs: every
 * cluster touched by allocated, non-zero data, each counted once.
 */
static int count_data(BlockDriverState *bs, uint64_t size, uint64_t cluster_size,
                      uint64_t *out, GError **errp)
{
    uint64_t offset = 0, counted_end = 0, total = 0;

    while (offset < size) {
        int64_t pnum;
        int ret = chain_status(bs, offset, size - offset, &pnum);

        if (ret < 0) {
            error_setg_errno(errp, -ret, "Unable to get block status");
            return ret;
        }
        if (!(ret & BDRV_BLOCK_ZERO) &&
            (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) ==
            (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) {
            uint64_t start = MAX(QEMU_ALIGN_DOWN(offset, cluster_size), counted_end);
            uint64_t end = QEMU_ALIGN_UP(offset + pnum, cluster_size);

            total += end - start;
            counted_end = end;
        }
        offset += pnum;
    }
    *out = total;
    return 0;
}

/*
 * The persistent bitmaps of a qcow2 v3 source, copied into clusters of
 * @cluster_size: each bitmap's data and table, and the directory. false when the
 * source cannot have any (not qcow2, or version 2).
 */
static int measure_bitmaps(BlockDriverState *in_bs, uint64_t size, uint64_t cluster_size,
                           BlockMeasureInfo *info, GError **errp)
{
    BDRVQcow2State *s;
    g_autoptr(GPtrArray) dir = NULL;
    uint64_t total = 0, dir_bytes = 0;
    int ret;

    if (in_bs->drv != &bdrv_qcow2) {
        return 0;
    }
    s = in_bs->opaque;
    if (s->version < 3) {
        return 0;
    }
    info->has_bitmaps = true;
    if (!s->nb_bitmaps) {
        return 0;
    }
    dir = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    ret = qcow2_bitmaps_read_directory(in_bs, dir, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < dir->len; i++) {
        Qcow2BitmapEntry *e = dir->pdata[i];
        uint64_t bits = DIV_ROUND_UP(size, 1ULL << e->granularity_bits);
        uint64_t data_clusters = DIV_ROUND_UP(DIV_ROUND_UP(bits, 8), cluster_size);

        total += data_clusters * cluster_size;
        total += QEMU_ALIGN_UP(data_clusters * 8, cluster_size);
        dir_bytes += QEMU_ALIGN_UP(24 + strlen(e->name), 8);
    }
    info->bitmaps = total + QEMU_ALIGN_UP(dir_bytes, cluster_size);
    return 0;
}

int qcow2_measure(JsonObject *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                  GError **errp)
{
    Qcow2MeasureParams p;
    uint64_t size, aligned, meta, data = 0;
    int ret;

    ret = parse_params(opts, &p, errp);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_measure_virtual_size(opts, in_bs, &size, errp);
    if (ret < 0) {
        return ret;
    }
    size = QEMU_ALIGN_UP(size, BDRV_SECTOR_SIZE);
    aligned = QEMU_ALIGN_UP(size, p.cluster_size);
    ret = metadata_size(aligned, &p, &meta, errp);
    if (ret < 0) {
        return ret;
    }
    {
        /* a LUKS header takes clusters of its own */
        QCryptoBlockCreateOptions copts;
        bool has_crypto = false;
        uint64_t hdr = 0;

        ret = qcow2_crypto_parse_create_opts(opts, &copts, &has_crypto, errp);
        if (ret == 0) {
            ret = qcow2_crypto_header_size(&copts, has_crypto, &hdr, errp);
        }
        if (has_crypto) {
            qcrypto_block_create_options_clear(&copts);
        }
        if (ret < 0) {
            return -EINVAL;
        }
        meta += QEMU_ALIGN_UP(hdr, p.cluster_size);
    }
    info->fully_allocated = meta + aligned;
    if (p.prealloc == PREALLOC_MODE_FALLOC || p.prealloc == PREALLOC_MODE_FULL ||
        (in_bs && p.has_backing)) {
        /* every cluster is written, or may have to be (the backing file's data) */
        info->required = info->fully_allocated;
    } else if (in_bs) {
        ret = count_data(in_bs, size, p.cluster_size, &data, errp);
        if (ret < 0) {
            return ret;
        }
        info->required = meta + data;
    } else {
        info->required = meta;
    }
    if (in_bs && p.version >= 3) {
        ret = measure_bitmaps(in_bs, size, p.cluster_size, info, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}
