/*
 * The "copy-before-write" filter and its "snapshot-access" reader: QEMU 7.2's
 * way of fleecing. copy-before-write sits over a node ("file") that its users
 * write through it; before a write, zero write or discard changes a cluster
 * for the first time, the cluster's old data is copied into "target". What
 * the filter was created over thus stays readable as it was at that moment:
 * a snapshot-access node over the filter reads it, from the target where the
 * cluster was copied and from the filtered node where it was not. With
 * "bitmap", only the clusters dirty in that bitmap make up the snapshot (the
 * others are neither copied nor readable: EINVAL, as QEMU's). A discard
 * through snapshot-access gives clusters up: they are no longer copied nor
 * readable. A snapshot-access node over anything else opens, and then fails
 * its reads with ENOTSUP, as QEMU's.
 *
 * The copy granularity is 64 KiB, or the target's cluster size if larger. A
 * lock orders the copies against snapshot reads of the same clusters: a
 * cluster not copied yet is read from the filtered node under the lock, so a
 * write cannot change it meanwhile (the write copies it first, under the same
 * lock).
 *
 * A backup job puts a copy-before-write node without a target over its
 * source (bdrv_open_job_filter), as QEMU does: it passes everything through,
 * and the job copies.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"

#define CBW_MIN_CLUSTER 65536

typedef struct BDRVCbwState {
    BlockDriverState *target;
    GMutex lock;
    int64_t cluster;
    uint64_t nb_clusters;
    uint8_t *copied;        /* bit per cluster: its old data is in the target */
    uint8_t *access;        /* bit per cluster: part of the snapshot */
} BDRVCbwState;

static bool bit(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

static void bit_put(uint8_t *map, uint64_t i, bool v)
{
    if (v) {
        map[i / 8] |= 1u << (i % 8);
    } else {
        map[i / 8] &= ~(1u << (i % 8));
    }
}

static const char *const cbw_runtime_opts[] = {
    "target", "bitmap", "on-cbw-error", "cbw-timeout", NULL,
};

/* Clusters outside the bitmap @ref ({"node", "name"}) are not in the snapshot. */
static int cbw_apply_bitmap(BDRVCbwState *s, JsonObject *ref, GError **errp)
{
    const char *node = opts_peek_str(ref, "node");
    const char *name = opts_peek_str(ref, "name");
    BlockDriverState *bs = node ? bdrv_find_node(node) : NULL;
    g_autoptr(BdrvBitmapBits) bits = NULL;

    if (!bs || !name) {
        error_setg(errp, "Dirty bitmap '%s' not found", name ? name : "");
        return -ENOENT;
    }
    bits = bdrv_dirty_bitmap_get_bits(bs, name, errp);
    if (!bits) {
        return -ENOENT;
    }
    for (uint64_t c = 0; c < s->nb_clusters; c++) {
        uint64_t first = c * s->cluster / bits->granularity;
        uint64_t end = MIN(((c + 1) * s->cluster + bits->granularity - 1) /
                           bits->granularity, bits->nb_bits);
        bool dirty = false;

        for (uint64_t b = first; b < end && !dirty; b++) {
            dirty = bits->words[b / 64] & (1ull << (b % 64));
        }
        bit_put(s->access, c, dirty);
    }
    return 0;
}

static int cbw_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVCbwState *s = bs->opaque;
    BlockDriverInfo bdi;
    int64_t len;
    int ret;

    if (!opts_has(opts, "target")) {
        error_setg(errp, "Parameter 'target' is missing");
        return -EINVAL;
    }
    s->target = bdrv_open_child(bs, opts, "target", NULL, true, flags, errp);
    if (!s->target) {
        return -EINVAL;
    }
    /* what the filter copies is written there; nobody may resize it */
    ret = bdrv_attach_child_perm(bs, s->target, &s->target, BDRV_CHILD_DATA, errp);
    if (ret < 0) {
        goto fail;
    }
    len = bdrv_getlength(bs->file);
    if (len < 0) {
        ret = len;
        error_setg_errno(errp, -ret, "Could not get the size of the filtered node");
        goto fail;
    }
    s->cluster = CBW_MIN_CLUSTER;
    if (bdrv_get_info(s->target, &bdi) == 0 && bdi.cluster_size > s->cluster) {
        s->cluster = bdi.cluster_size;
    }
    s->nb_clusters = (len + s->cluster - 1) / s->cluster;
    s->copied = g_malloc0((s->nb_clusters + 7) / 8 + 1);
    s->access = g_malloc((s->nb_clusters + 7) / 8 + 1);
    memset(s->access, 0xff, (s->nb_clusters + 7) / 8 + 1);
    if (json_object_has_member(opts, "bitmap")) {
        JsonNode *n = json_object_get_member(opts, "bitmap");

        ret = JSON_NODE_HOLDS_OBJECT(n) ?
              cbw_apply_bitmap(s, json_node_get_object(n), errp) : -EINVAL;
        if (ret < 0) {
            if (errp && !*errp) {
                error_setg(errp, "Invalid parameter type for 'bitmap', expected: object");
            }
            goto fail;
        }
    }
    g_mutex_init(&s->lock);
    bs->request_alignment = MAX(bs->file->request_alignment,
                                s->target->request_alignment);
    return 0;

fail:
    g_clear_pointer(&s->copied, g_free);
    g_clear_pointer(&s->access, g_free);
    bdrv_unref_child(bs, &s->target);
    return ret;
}

static void cbw_close(BlockDriverState *bs)
{
    BDRVCbwState *s = bs->opaque;

    if (!s->target) {
        return;         /* a backup job's filter: nothing was set up */
    }
    bdrv_unref_child(bs, &s->target);
    g_free(s->copied);
    g_free(s->access);
    g_mutex_clear(&s->lock);
}

/* Lock held: copy the clusters of [offset, offset+bytes) not copied yet. */
static int cbw_copy_locked(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVCbwState *s = bs->opaque;
    int64_t len = bdrv_getlength(bs->file);
    g_autofree uint8_t *buf = NULL;

    if (len < 0) {
        return len;
    }
    for (uint64_t c = offset / s->cluster;
         c < s->nb_clusters && (int64_t)(c * s->cluster) < offset + bytes; c++) {
        int64_t start = c * s->cluster, n = MIN(s->cluster, len - start);
        int ret;

        if (bit(s->copied, c) || !bit(s->access, c)) {
            continue;
        }
        if (!buf) {
            buf = g_malloc(s->cluster);
        }
        ret = bdrv_pread(bs->file, start, n, buf, 0);
        if (ret == 0) {
            ret = bdrv_pwrite(s->target, start, n, buf, 0);
        }
        if (ret < 0) {
            return ret;     /* on-cbw-error=break-guest-write: the write fails */
        }
        bit_put(s->copied, c, true);
    }
    return 0;
}

static int cbw_before(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVCbwState *s = bs->opaque;
    int ret;

    if (!s->target) {
        return 0;       /* a backup job's filter: the job copies */
    }
    g_mutex_lock(&s->lock);
    ret = cbw_copy_locked(bs, offset, bytes);
    g_mutex_unlock(&s->lock);
    return ret;
}

static int cbw_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                     int flags)
{
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

static int cbw_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const void *buf, int flags)
{
    int ret = cbw_before(bs, offset, bytes);

    return ret < 0 ? ret : bdrv_pwrite(bs->file, offset, bytes, buf, flags);
}

static int cbw_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int flags)
{
    int ret = cbw_before(bs, offset, bytes);

    return ret < 0 ? ret : bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int cbw_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int ret = cbw_before(bs, offset, bytes);

    return ret < 0 ? ret : bdrv_pdiscard(bs->file, offset, bytes);
}

static int cbw_flush_to_os(BlockDriverState *bs)
{
    BDRVCbwState *s = bs->opaque;

    return s->target ? bdrv_flush(s->target) : 0;
}

static int cbw_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

static int cbw_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                        PreallocMode prealloc, int flags, GError **errp)
{
    error_setg(errp, "Cannot resize a copy-before-write filter's node");
    return -ENOTSUP;
}

BlockDriver bdrv_copy_before_write = {
    .format_name = "copy-before-write",
    .instance_size = sizeof(BDRVCbwState),
    .is_filter = true,
    .named_by_file = true,
    .runtime_opts = cbw_runtime_opts,
    .open = cbw_open,
    .close = cbw_close,
    .pread = cbw_pread,
    .pwrite = cbw_pwrite,
    .pwrite_zeroes = cbw_pwrite_zeroes,
    .pdiscard = cbw_pdiscard,
    .flush_to_os = cbw_flush_to_os,
    .truncate = cbw_truncate,
    .block_status = cbw_block_status,
};

/* ---- snapshot-access ---- */

static BDRVCbwState *cbw_of(BlockDriverState *bs)
{
    BDRVCbwState *s = bs->file && bs->file->drv == &bdrv_copy_before_write ?
                      bs->file->opaque : NULL;

    return s && s->target ? s : NULL;
}

static int acc_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    bs->request_alignment = bs->file->request_alignment;
    return 0;
}

/* The snapshot's data of [offset, offset+bytes), one cluster at a time. */
static int acc_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                     int flags)
{
    BDRVCbwState *s = cbw_of(bs);
    BlockDriverState *cbw = bs->file;

    if (!s) {
        return -ENOTSUP;
    }
    while (bytes > 0) {
        uint64_t c = offset / s->cluster;
        int64_t n = MIN(bytes, (int64_t)((c + 1) * s->cluster) - offset);
        int ret;

        g_mutex_lock(&s->lock);
        if (!bit(s->access, c)) {
            ret = -EINVAL;
        } else if (bit(s->copied, c)) {
            g_mutex_unlock(&s->lock);
            ret = bdrv_pread(s->target, offset, n, buf, 0);
            g_mutex_lock(&s->lock);
        } else {
            /* not copied: the filtered node still holds it, and no write can
             * change it while the lock is held */
            ret = bdrv_pread(cbw->file, offset, n, buf, 0);
        }
        g_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        buf = (uint8_t *)buf + n;
    }
    return 0;
}

static int acc_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const void *buf, int flags)
{
    return -ENOTSUP;
}

/* Give clusters up: they are no longer copied nor readable. */
static int acc_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVCbwState *s = cbw_of(bs);
    uint64_t first, end;
    int64_t len = bdrv_getlength(bs);

    if (!s) {
        return -ENOTSUP;
    }
    first = (offset + s->cluster - 1) / s->cluster;
    end = (offset + bytes) / s->cluster;
    if (offset + bytes >= len) {
        end = s->nb_clusters;       /* the last cluster may be short */
    }
    g_mutex_lock(&s->lock);
    for (uint64_t c = first; c < end && c < s->nb_clusters; c++) {
        bit_put(s->access, c, false);
    }
    g_mutex_unlock(&s->lock);
    return 0;
}

/*
 * Copied clusters are data (in the target); the others have the filtered
 * node's status, as QEMU's; clusters outside the snapshot have none (EINVAL).
 */
static int acc_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVCbwState *s = cbw_of(bs);
    uint64_t c;
    bool copied;
    int64_t n = 0;

    if (!s) {
        return -ENOTSUP;
    }
    c = offset / s->cluster;
    g_mutex_lock(&s->lock);
    if (!bit(s->access, c)) {
        g_mutex_unlock(&s->lock);
        return -EINVAL;
    }
    copied = bit(s->copied, c);
    while (n < bytes) {
        uint64_t k = (offset + n) / s->cluster;

        if (k >= s->nb_clusters || !bit(s->access, k) || bit(s->copied, k) != copied) {
            break;
        }
        n = MIN(bytes, (int64_t)((k + 1) * s->cluster) - offset);
    }
    g_mutex_unlock(&s->lock);
    n = MAX(n, MIN(bytes, 1));
    if (!copied) {
        BlockDriverState *src = bs->file->file;
        int ret = bdrv_block_status(src, offset, n, pnum, map, file);

        /* what a format leaves unallocated with no backing file reads as zero */
        if (ret >= 0 && !(ret & (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_DATA)) &&
            src->drv->supports_backing && !src->backing) {
            ret |= BDRV_BLOCK_ZERO;
        }
        return ret;
    }
    *pnum = n;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
}

BlockDriver bdrv_snapshot_access = {
    .format_name = "snapshot-access",
    .instance_size = 1,
    .is_filter = true,
    .named_by_file = true,
    .open = acc_open,
    .pread = acc_pread,
    .pwrite = acc_pwrite,
    .pdiscard = acc_pdiscard,
    .block_status = acc_block_status,
};
