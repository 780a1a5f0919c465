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
 *   header, refcount table, one refcount block, L1 table, nothing else) in
 *   place, in QEMU's order: the image is marked dirty first, then the L1 table
 *   is zeroed (the data is in the backing file already: reads fall through to
 *   it), the clusters of the new tables are zeroed, the header is pointed at
 *   them by one 20-byte write of its table fields (inside the first sector),
 *   the refcount block and table are written, the file is cut and the dirty
 *   bit cleared. Killed or failed in between, the image is dirty: it reads as
 *   before, and its refcounts (leaks, or tables zeroed) are rebuilt by the
 *   repair every read-write open of a dirty image makes, QEMU's or ours (098
 *   shows what that repair finds at each step). After a failure the node
 *   writes nothing more and leaves the dirty bit set. Images this cannot
 *   rebuild (version 2, which has no dirty bit, snapshots, bitmaps, external
 *   data file, a LUKS header in its clusters, an L1 table too big for one
 *   refcount block) are emptied by discarding every cluster instead, as QEMU
 *   does.
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

static uint64_t l1_clusters(BDRVQcow2State *s)
{
    return DIV_ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);
}

static bool can_rebuild(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return s->version >= 3 && !s->nb_snapshots && !s->has_bitmaps_ext &&
           !s->nb_bitmaps && !has_data_file(bs) && !s->has_crypto_header &&
           3 + l1_clusters(s) <= (uint64_t)s->refcount_block_size;
}

/*
 * The steps of make_empty_rebuild once the image is marked dirty, in QEMU's
 * order (each one announced by its blkdebug event, which 098 fails in turn).
 */
static int rebuild_tables(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t nb_tables = 3 + l1_clusters(s);
    Qcow2TableFields f = {
        .l1_table_offset = GUINT64_TO_BE(3 * cs),
        .refcount_table_offset = GUINT64_TO_BE(cs),
        .refcount_table_clusters = GUINT32_TO_BE(1),
    };
    g_autofree uint64_t *rt = NULL;
    g_autofree uint8_t *rb = NULL;
    GError *err = NULL;
    int ret;

    /* the data is gone (it is in the backing file) */
    BLKDBG_EVENT(bs->file, BLKDBG_L1_UPDATE);
    ret = bdrv_pwrite_zeroes(bs->file, s->l1_table_offset, l1_clusters(s) * cs, 0);
    if (ret < 0) {
        return ret;
    }
    memset(s->l1_table, 0, (size_t)s->l1_size * 8);

    /* the clusters the new tables take, whatever was there */
    BLKDBG_EVENT(bs->file, BLKDBG_EMPTY_IMAGE_PREPARE);
    ret = bdrv_pwrite_zeroes(bs->file, cs, (nb_tables - 1) * cs, 0);
    if (ret < 0) {
        return ret;
    }

    /* the header moves to them: one write inside the first sector */
    BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_UPDATE);
    ret = bdrv_pwrite(bs->file, TABLE_FIELDS_OFFSET, sizeof(f), &f, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    s->l1_table_offset = 3 * cs;

    /* refcount 1 for the header and the tables, in the one refcount block */
    rt = g_try_malloc0(cs);
    rb = g_try_malloc0(cs);
    if (!rt || !rb) {
        return -ENOMEM;
    }
    for (uint64_t c = 0; c < nb_tables; c++) {
        qcow2_refblock_set(s, rb, c, 1);
    }
    rt[0] = GUINT64_TO_BE(2 * cs);
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC);
    ret = bdrv_pwrite(bs->file, 2 * cs, cs, rb, 0);
    if (ret == 0) {
        ret = bdrv_pwrite(bs->file, cs, cs, rt, 0);
    }
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    qcow2_refcount_close(bs);
    s->refcount_table_offset = cs;
    s->refcount_table_size = cs / 8;
    s->free_cluster_index = 0;
    s->free_byte_offset = 0;
    s->alloc_end = 0;
    s->reftable_pending_first = s->reftable_pending_end = 0;
    s->metadata_preallocation_checked = false;
    ret = qcow2_refcount_init(bs);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_truncate(bs->file, nb_tables * cs, true, PREALLOC_MODE_OFF, 0, &err);
    if (ret < 0) {
        g_error_free(err);
    }
    return ret;
}

static int make_empty_rebuild(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    bool was_dirty = s->incompatible_features & QCOW2_INCOMPAT_DIRTY;
    int ret;

    /* start from what is on disk: the caches written out, then dropped */
    ret = qcow2_cache_empty(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_empty(bs, s->refcount_block_cache);
    }
    if (ret < 0) {
        return ret;
    }
    qcow2_l2_window_free(bs);
    ret = qcow2_mark_dirty(bs);
    if (ret == 0) {
        ret = rebuild_tables(bs);
    }
    if (ret < 0) {
        /*
         * Tables half rewritten: the dirty bit stays for the repair at the next
         * open, and this node, whose tables in memory no longer match the
         * disk, writes nothing more.
         */
        s->header_dirty_set = false;
        s->read_only = true;
        return ret;
    }
    return was_dirty ? 0 : qcow2_mark_clean(bs);
}

int qcow2_make_empty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = QEMU_ALIGN_UP(s->size, s->cluster_size);
    int ret;

    if (s->read_only) {
        return -EACCES;
    }
    if (can_rebuild(bs)) {
        return make_empty_rebuild(bs);
    }
    /* everything deallocated, cluster by cluster */
    ret = qcow2_cluster_discard(bs, 0, end, true);
    if (ret < 0) {
        return ret;
    }
    return qcow2_flush_caches(bs);
}
