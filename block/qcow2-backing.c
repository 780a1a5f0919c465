/*
 * qcow2: what qemu-img rebase and commit change in an image apart from guest
 * data: the backing file name and format in the header (change_backing_file),
 * and emptying the image after its data went into the backing file (make_empty).
 *
 * Crash safety, with a process killed at any point (kill -9) in mind:
 *
 * - A new backing file name is recorded only after everything written before it
 *   is on disk (the clusters rebase copied in), by one write of the header
 *   cluster that starts with the page holding header, extensions and name: the
 *   image names either the old backing file or the new one.
 *
 * - Emptying rebuilds the image as a freshly created one looks (QEMU's layout:
 *   header, refcount table, one refcount block, L1 table, nothing else), but
 *   never overwrites metadata the image on disk still uses. Empty tables are
 *   first written as a complete second set past the end of the file and the
 *   header is switched to them by one 20-byte write of its table fields (inside
 *   the first sector); only then are the final tables written over clusters the
 *   old image used, the header switched again, and the file cut. Each of the two
 *   sets accounts exactly for the clusters it uses: whatever the moment of the
 *   crash, the image is the old one or an empty one, without leaks. Images this
 *   cannot rebuild (version 2, snapshots, bitmaps, external data file, a LUKS
 *   header in its clusters, an L1 table too big for one refcount block) are
 *   emptied by discarding every cluster instead, as QEMU does.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* ---- the backing file name ---- */

int qcow2_change_backing_file(BlockDriverState *bs, const char *backing_file,
                              const char *backing_fmt)
{
    BDRVQcow2State *s = bs->opaque;
    char *old_file = bs->backing_file, *old_fmt = s->image_backing_format;
    int ret;

    if (backing_file && strlen(backing_file) > QCOW2_MAX_BACKING_NAME) {
        return -EINVAL;
    }
    if (backing_file && data_file_is_raw(bs)) {
        /* the raw data file is the whole image: nothing can show through */
        return -EINVAL;
    }
    if (s->read_only) {
        return -EACCES;
    }
    /* what rebase copied in must be stable before the header relies on it */
    ret = bdrv_flush(bs);
    if (ret < 0) {
        return ret;
    }
    bs->backing_file = g_strdup(backing_file);
    s->image_backing_format = backing_file ? g_strdup(backing_fmt) : NULL;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        g_free(bs->backing_file);
        g_free(s->image_backing_format);
        bs->backing_file = old_file;
        s->image_backing_format = old_fmt;
        return ret;
    }
    g_free(old_file);
    g_free(old_fmt);
    g_free(bs->backing_format);
    bs->backing_format = g_strdup(s->image_backing_format);
    return bdrv_flush(bs->file);
}

/* ---- emptying ---- */

/* The header fields that place the tables, contiguous from offset 40. */
typedef struct QEMU_PACKED Qcow2TableFields {
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
} Qcow2TableFields;

#define TABLE_FIELDS_OFFSET offsetof(QCowHeader, l1_table_offset)

/*
 * The tables of an empty image placed from cluster @first on: refcount table,
 * refcount blocks, L1 table, in this order (QEMU's order for @first == 1).
 */
typedef struct EmptyTables {
    uint64_t first;
    uint64_t rt_clusters;
    uint64_t nb_refblocks;
    uint64_t l1_clusters;
    uint64_t rb_lo, rb_hi;      /* refcount block indexes of the area */
} EmptyTables;

static uint64_t tables_end(const EmptyTables *t)
{
    return t->first + t->rt_clusters + t->nb_refblocks + t->l1_clusters;
}

/* Refcount blocks covering cluster 0 and the area, in order of their index. */
static uint64_t nth_refblock_index(const EmptyTables *t, uint64_t n)
{
    if (t->rb_lo > 0) {
        return n == 0 ? 0 : t->rb_lo + n - 1;
    }
    return n;
}

/* Size the tables for @first: each count depends on the area the others make. */
static int plan_tables(BDRVQcow2State *s, uint64_t first, EmptyTables *t)
{
    *t = (EmptyTables) {
        .first = first,
        .rt_clusters = 1,
        .nb_refblocks = 1,
        .l1_clusters = DIV_ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size),
    };
    for (int i = 0; i < 64; i++) {
        uint64_t last = tables_end(t) - 1;
        uint64_t lo = first >> s->refcount_block_bits;
        uint64_t hi = last >> s->refcount_block_bits;
        uint64_t rb = hi - lo + 1 + (lo > 0);
        uint64_t rt = DIV_ROUND_UP((hi + 1) * 8, s->cluster_size);

        t->rb_lo = lo;
        t->rb_hi = hi;
        if (rb == t->nb_refblocks && rt == t->rt_clusters) {
            return rt * s->cluster_size <= QCOW_MAX_REFTABLE_SIZE ? 0 : -EFBIG;
        }
        t->nb_refblocks = MAX(rb, t->nb_refblocks);
        t->rt_clusters = MAX(rt, t->rt_clusters);
    }
    return -EFBIG;
}

/* Write the tables: refcount 1 for cluster 0 and for each table cluster. */
static int write_tables(BlockDriverState *bs, const EmptyTables *t)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t rt_entries = t->rt_clusters * cs / 8;
    uint64_t rb_first = t->first + t->rt_clusters;
    g_autofree uint64_t *rt = g_try_malloc0(t->rt_clusters * cs);
    g_autofree uint8_t *rb = g_try_malloc0(t->nb_refblocks * cs);
    int ret;

    if (!rt || !rb) {
        return -ENOMEM;
    }
    for (uint64_t n = 0; n < t->nb_refblocks; n++) {
        uint64_t idx = nth_refblock_index(t, n);
        uint64_t lo = idx << s->refcount_block_bits;
        uint64_t hi = lo + s->refcount_block_size;

        assert(idx < rt_entries);
        rt[idx] = GUINT64_TO_BE((rb_first + n) * cs);
        if (lo == 0) {
            qcow2_refblock_set(s, rb + n * cs, 0, 1);
        }
        for (uint64_t c = MAX(lo, t->first); c < MIN(hi, tables_end(t)); c++) {
            qcow2_refblock_set(s, rb + n * cs, c - lo, 1);
        }
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC);
    ret = bdrv_pwrite(bs->file, rb_first * cs, t->nb_refblocks * cs, rb, 0);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_UPDATE);
    ret = bdrv_pwrite(bs->file, t->first * cs, t->rt_clusters * cs, rt, 0);
    if (ret < 0) {
        return ret;
    }
    if (t->l1_clusters) {
        BLKDBG_EVENT(bs->file, BLKDBG_L1_UPDATE);
        ret = bdrv_pwrite_zeroes(bs->file, (rb_first + t->nb_refblocks) * cs,
                                 t->l1_clusters * cs, 0);
        if (ret < 0) {
            return ret;
        }
    }
    return bdrv_flush(bs->file);
}

/*
 * Point the header at @t's tables (one write inside the first sector), make it
 * stable, and take the tables over in memory.
 */
static int switch_to_tables(BlockDriverState *bs, const EmptyTables *t)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t l1_offset = (t->first + t->rt_clusters + t->nb_refblocks) * cs;
    Qcow2TableFields f = {
        .l1_table_offset = GUINT64_TO_BE(l1_offset),
        .refcount_table_offset = GUINT64_TO_BE(t->first * cs),
        .refcount_table_clusters = GUINT32_TO_BE(t->rt_clusters),
    };
    int ret;

    ret = bdrv_pwrite(bs->file, TABLE_FIELDS_OFFSET, sizeof(f), &f, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    s->l1_table_offset = l1_offset;
    memset(s->l1_table, 0, (size_t)s->l1_size * 8);
    qcow2_refcount_close(bs);
    s->refcount_table_offset = t->first * cs;
    s->refcount_table_size = t->rt_clusters * cs / 8;
    s->free_cluster_index = 0;
    s->free_byte_offset = 0;
    s->alloc_end = 0;
    s->reftable_pending_first = s->reftable_pending_end = 0;
    s->metadata_preallocation_checked = false;
    return qcow2_refcount_init(bs);
}

static bool can_rebuild(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_clusters = DIV_ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);

    return s->version >= 3 && !s->nb_snapshots && !s->has_bitmaps_ext &&
           !s->nb_bitmaps && !has_data_file(bs) && !s->has_crypto_header &&
           3 + l1_clusters <= (uint64_t)s->refcount_block_size;
}

static int make_empty_rebuild(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    EmptyTables shadow, final;
    int64_t file_len;
    GError *err = NULL;
    int ret;

    ret = plan_tables(s, 1, &final);
    if (ret < 0) {
        return ret;
    }
    assert(final.rt_clusters == 1 && final.nb_refblocks == 1);
    /* start from what is on disk: the caches written out, then dropped */
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_empty(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_empty(bs, s->refcount_block_cache);
    }
    if (ret < 0) {
        return ret;
    }
    qcow2_l2_window_free(bs);
    file_len = bdrv_getlength(bs->file);
    if (file_len < 0) {
        return file_len;
    }
    /* the second set goes past both the file's end and the final tables */
    ret = plan_tables(s, MAX(DIV_ROUND_UP((uint64_t)file_len, s->cluster_size),
                             tables_end(&final)), &shadow);
    if (ret < 0) {
        return ret;
    }
    ret = write_tables(bs, &shadow);
    if (ret == 0) {
        ret = switch_to_tables(bs, &shadow);
    }
    if (ret < 0) {
        return ret;
    }
    /* the old image is gone; clusters 1.. are free in the second set */
    ret = write_tables(bs, &final);
    if (ret == 0) {
        ret = switch_to_tables(bs, &final);
    }
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_truncate(bs->file, tables_end(&final) * s->cluster_size, true,
                        PREALLOC_MODE_OFF, 0, &err);
    if (ret < 0) {
        g_error_free(err);
    }
    return ret;
}

int qcow2_make_empty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = QEMU_ALIGN_UP(s->size, s->cluster_size);
    int ret;

    if (s->read_only) {
        return -EACCES;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EMPTY_IMAGE_PREPARE);
    if (can_rebuild(bs)) {
        ret = make_empty_rebuild(bs);
        if (ret != -EFBIG) {
            return ret;
        }
    }
    /* everything deallocated, cluster by cluster */
    ret = qcow2_cluster_discard(bs, 0, end, true);
    if (ret < 0) {
        return ret;
    }
    return qcow2_flush_caches(bs);
}
