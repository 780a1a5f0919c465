/*
 * The backup block job (blockdev-backup; the command and its checks are in
 * backup-cmd.c): copies a source node to a target node of the same size.
 * sync=full copies everything, top what the source's top layer holds,
 * incremental/bitmap the clusters a dirty bitmap marks, none nothing up front.
 * A before-write notifier on the source copies the old data of a cluster not
 * copied yet before any write changes it (copy-before-write), so the target
 * ends up as the source was at the start; sync=none does only that, until
 * cancelled (fleecing). At the end the bitmap follows bitmap-mode, QEMU's
 * semantics.
 */
#include "backup-int.h"
#include "block/aio.h"
#include "block/block_int.h"
#include "job-filter.h"

#define COPY_CHUNK (1024 * 1024)    /* at most this much per step */
#define BACKUP_IN_FLIGHT 64         /* chunks QEMU's block-copy copies at once */

static GList *backup_jobs;      /* BackupJob* from start to clean */

static void remove_filter(BackupJob *b);

/* ---- bits ---- */

static BdrvBitmapBits *bits_new(uint64_t granularity, int64_t size)
{
    BdrvBitmapBits *b = g_new0(BdrvBitmapBits, 1);

    b->granularity = granularity;
    b->size = size;
    b->nb_bits = size > 0 ? DIV_ROUND_UP(size, granularity) : 0;
    b->words = g_new0(uint64_t, b->nb_bits / 64 + 1);
    return b;
}

static bool bit_get(const BdrvBitmapBits *b, uint64_t i)
{
    return b->words[i / 64] & (1ULL << (i % 64));
}

static void bit_put(BdrvBitmapBits *b, uint64_t i, bool on)
{
    if (on) {
        b->words[i / 64] |= 1ULL << (i % 64);
    } else {
        b->words[i / 64] &= ~(1ULL << (i % 64));
    }
}

static void bits_set_range(BdrvBitmapBits *b, int64_t offset, int64_t bytes)
{
    for (uint64_t i = offset / b->granularity;
         i < b->nb_bits && (int64_t)(i * b->granularity) < offset + bytes; i++) {
        bit_put(b, i, true);
    }
}

/* Clear every bit (of a copy made by the block layer: exactly its words). */
static void bits_clear(BdrvBitmapBits *b)
{
    memset(b->words, 0, DIV_ROUND_UP(b->nb_bits, 64) * sizeof(uint64_t));
}

static int64_t bits_count_bytes(const BdrvBitmapBits *b)
{
    int64_t n = 0;

    for (uint64_t i = 0; i < b->nb_bits; i++) {
        if (bit_get(b, i)) {
            n += MIN((int64_t)b->granularity, b->size - (int64_t)(i * b->granularity));
        }
    }
    return n;
}

/* ---- copying ---- */

/*
 * Block layer locked: copy [offset, offset+bytes) of src to the target. What the
 * source's block status calls zero is written as zeroes; everything else as
 * data, zero bytes too, as QEMU's backup does (it only detects zeroes when the
 * target node asks for it with detect-zeroes). On failure, b->err_read tells
 * whether a read of the source or a write to the target failed.
 */
static int copy_out(BackupJob *b, int64_t offset, int64_t bytes)
{
    g_autofree uint8_t *buf = NULL;
    int64_t pnum;
    int ret;

    if (b->sync == SYNC_TOP) {
        ret = bdrv_is_allocated(b->src, offset, bytes, &pnum);
        if (ret < 0) {
            b->err_read = true;
            return ret;
        }
        if (pnum <= 0 || pnum > bytes) {
            pnum = bytes;
        }
        if (!ret) {
            return pnum >= bytes ? 0 : copy_out(b, offset + pnum, bytes - pnum);
        }
        if (pnum < bytes) {
            ret = copy_out(b, offset, pnum);
            return ret < 0 ? ret : copy_out(b, offset + pnum, bytes - pnum);
        }
    }
    ret = bdrv_block_status_above(b->src, offset, bytes, &pnum);
    if (ret >= 0 && pnum > 0 && pnum < bytes && bytes > b->cluster) {
        /* one extent at a time, in whole clusters, as QEMU's block-copy:
         * what reads as zero is written as zero, not as (compressed) data */
        int64_t split = MAX(QEMU_ALIGN_DOWN(pnum, b->cluster), b->cluster);

        ret = copy_out(b, offset, split);
        return ret < 0 ? ret : copy_out(b, offset + split, bytes - split);
    }
    b->err_read = false;
    if (ret >= 0 && (ret & BDRV_BLOCK_ZERO) && pnum >= bytes) {
        return bdrv_pwrite_zeroes(b->target, offset, bytes, 0);
    }
    buf = g_malloc(bytes);
    ret = bdrv_pread(b->src, offset, bytes, buf, 0);
    if (ret < 0) {
        b->err_read = true;
        return ret;
    }
    if (b->compress) {
        for (int64_t done = 0; done < bytes; done += b->cluster) {
            ret = bdrv_pwrite(b->target, offset + done, MIN(b->cluster, bytes - done),
                              buf + done, BDRV_REQ_WRITE_COMPRESSED);
            if (ret < 0) {
                return ret;
            }
        }
        return 0;
    }
    return bdrv_pwrite(b->target, offset, bytes, buf, 0);
}

/* Block layer locked, b->lock held: copy the clusters [first, end) and clear them. */
static int copy_clusters(BackupJob *b, uint64_t first, uint64_t end)
{
    int64_t offset = first * b->cluster;
    int64_t bytes = MIN((int64_t)(end * b->cluster), b->len) - offset;
    int ret = copy_out(b, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = first; i < end; i++) {
        bit_put(b->to_copy, i, false);
    }
    job_progress_add(b->job, bytes);
    return 0;
}

/* The before-write notifier on src: save what is about to change. */
static int backup_before_write(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               void *opaque)
{
    BackupJob *b = opaque;
    int ret = 0;

    g_mutex_lock(&b->lock);
    for (uint64_t i = offset / b->cluster;
         ret >= 0 && i < b->to_copy->nb_bits && (int64_t)(i * b->cluster) < offset + bytes;
         i++) {
        if (bit_get(b->to_copy, i)) {
            /*
             * This runs in the source's request (maybe in a request worker):
             * requests on the target (an export of it) may be in flight, so
             * hold the target's I/O lock as they do
             */
            bdrv_aio_node_lock(b->target);
            ret = copy_clusters(b, i, i + 1);
            bdrv_aio_node_unlock(b->target);
            b->cbw_bytes += ret < 0 ? 0 : b->cluster;
        }
    }
    if (ret >= 0 && b->new_writes) {
        bits_set_range(b->new_writes, offset, bytes);
    }
    g_mutex_unlock(&b->lock);
    return ret;
}

/*
 * b->lock held: the next run of clusters to copy at or after @from, at most
 * COPY_CHUNK long, as [*first, *end); its length in bytes (0: none left).
 */
static int64_t next_chunk(BackupJob *b, uint64_t from, uint64_t *first, uint64_t *end)
{
    uint64_t f = from, e;

    while (f < b->to_copy->nb_bits && !bit_get(b->to_copy, f)) {
        f++;
    }
    e = f;
    while (e < b->to_copy->nb_bits && bit_get(b->to_copy, e) &&
           (e - f) * b->cluster < COPY_CHUNK) {
        e++;
    }
    *first = f;
    *end = e;
    return f < e ? MIN((int64_t)(e * b->cluster), b->len) - (int64_t)(f * b->cluster) : 0;
}

static int backup_run(Job *job, void *opaque, GError **errp)
{
    BackupJob *b = opaque;
    uint64_t next = 0;
    bool retry = false;
    int ret = 0;

    /* sync=none: the notifier alone copies */
    while (b->sync != SYNC_NONE) {
        uint64_t first, end, f, e;
        int64_t bytes;
        bool err_read = false;

        job_pause_point(job);
        /* a chunk that failed is tried again even if the job was cancelled
         * while the error stopped it, as QEMU's backup does */
        if (!retry && job_is_cancelled(job)) {
            return -ECANCELED;
        }
        retry = false;
        block_lock();
        g_mutex_lock(&b->lock);
        bytes = next_chunk(b, next, &first, &end);
        if (bytes) {
            ret = copy_clusters(b, first, end);
            err_read = b->err_read;
        }
        /*
         * QEMU's block-copy has the chunks after a failing one in flight
         * already: they still land before the error is handled (the job's
         * progress shows them). Those that fail too are left to copy.
         */
        e = end;
        for (int i = 1; ret < 0 && i < BACKUP_IN_FLIGHT &&
                        next_chunk(b, e, &f, &e) > 0; i++) {
            copy_clusters(b, f, e);
        }
        g_mutex_unlock(&b->lock);
        block_unlock();
        if (ret < 0) {
            if (job_io_error(job, err_read, ret) == JOB_ERROR_REPORT) {
                error_setg(errp, "%s", g_strerror(-ret));
                return ret;
            }
            /* ignore and stop (once resumed) copy the failed chunk again */
            ret = 0;
            next = first;
            retry = true;
            continue;
        }
        if (!bytes) {
            break;
        }
        job_rate_limit(job, bytes);
        next = end;
    }
    block_lock();
    ret = bdrv_flush(b->target);
    block_unlock();
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush the target");
        return ret;
    }
    if (b->sync == SYNC_NONE) {
        /* copy-before-write is the job: it runs until cancelled */
        job_wait_cancelled(job);
        return -ECANCELED;
    }
    return 0;
}

/* ---- the end ---- */

static bool backup_finalize(Job *job, void *opaque, bool completed, GError **errp)
{
    BackupJob *b = opaque;

    b->succeeded = true;
    return true;
}

/* Main loop, block layer locked: the bitmap as bitmap-mode says. */
static void backup_sync_bitmap(BackupJob *b)
{
    g_autoptr(BdrvBitmapBits) bits = NULL;
    g_autoptr(GError) err = NULL;

    if (!b->bitmap) {
        return;
    }
    if (b->succeeded && b->bitmap_mode != MODE_NEVER) {
        /* what was copied is clean: only the writes since the start stay */
        bits = bdrv_dirty_bitmap_get_bits(b->src, b->bitmap, &err);
        if (bits) {
            bits_clear(bits);
            if (b->new_writes) {
                bdrv_bitmap_bits_or(bits, b->new_writes);
            }
        }
    } else if (!b->succeeded && b->bitmap_mode == MODE_ALWAYS) {
        /* what was not copied, and the writes since the start */
        bits = bdrv_dirty_bitmap_get_bits(b->src, b->bitmap, &err);
        if (bits) {
            bits_clear(bits);
            bdrv_bitmap_bits_or(bits, b->to_copy);
            if (b->new_writes) {
                bdrv_bitmap_bits_or(bits, b->new_writes);
            }
        }
    }
    /* otherwise the bitmap stays as it is: its bits and the writes since */
    /* set_bits only adds to a persistent bitmap: clear it first */
    if (bits && bdrv_dirty_bitmap_clear(b->src, b->bitmap, &err) == 0) {
        bdrv_dirty_bitmap_set_bits(b->src, b->bitmap, bits, &err);
    }
    if (err) {
        error_report("backup: bitmap '%s': %s", b->bitmap, err->message);
    }
}

static void backup_clean(Job *job, void *opaque)
{
    BackupJob *b = opaque;

    remove_filter(b);
    if (b->hooked) {
        bdrv_remove_before_write(b->src, backup_before_write, b);
        b->hooked = false;
    }
    backup_sync_bitmap(b);
    bdrv_perm_detach(b->src, &b->src_use);
    bdrv_perm_detach(b->target, &b->target_use);
    backup_jobs = g_list_remove(backup_jobs, b);
}

void backup_free(gpointer p)
{
    BackupJob *b = p;

    bdrv_bitmap_bits_free(b->to_copy);
    bdrv_bitmap_bits_free(b->new_writes);
    if (b->src) {
        bdrv_unref(b->src);
    }
    if (b->target) {
        bdrv_unref(b->target);
    }
    g_free(b->bitmap);
    g_free(b->filter_name);
    g_mutex_clear(&b->lock);
    g_free(b);
}

const BlockJobDriver backup_driver = {
    .type = "backup",
    .run = backup_run,
    .finalize = backup_finalize,
    .clean = backup_clean,
};

/* ---- for the other modules ---- */

bool qsd_backup_uses_bitmap(BlockDriverState *bs, const char *name)
{
    for (GList *l = backup_jobs; l; l = l->next) {
        BackupJob *b = l->data;

        if (b->src == bs && b->bitmap && !strcmp(b->bitmap, name)) {
            return true;
        }
    }
    return false;
}

bool qsd_backup_uses_node(BlockDriverState *bs)
{
    for (GList *l = backup_jobs; l; l = l->next) {
        BackupJob *b = l->data;

        if (b->src == bs || b->target == bs) {
            return true;
        }
    }
    return false;
}

bool qsd_backup_blocks_resize(BlockDriverState *bs, GError **errp)
{
    const char *name = bdrv_get_node_name(bs);

    for (GList *l = backup_jobs; l; l = l->next) {
        BackupJob *b = l->data;

        if (b->target == bs) {
            /* QEMU names the device, which a node has not */
            error_setg(errp, "Device '(null)' is in use");
            return true;
        }
    }
    for (GList *l = backup_jobs; l; l = l->next) {
        BackupJob *b = l->data;

        if (b->src == bs) {
            error_setg(errp, "Permission conflict on node '%s': permissions 'resize' "
                       "are both required by an unnamed block device (uses node '%s' "
                       "as 'root' child) and unshared by node '%s' (uses node '%s' as "
                       "'file' child).", name, name, b->filter_name, name);
            return true;
        }
    }
    return false;
}

/* Is @bs the target of a backup job (QEMU's op blocker on it)? */
bool backup_target_busy(BlockDriverState *bs, GError **errp)
{
    for (GList *l = backup_jobs; l; l = l->next) {
        if (((BackupJob *)l->data)->target == bs) {
            error_setg(errp, "Node '%s' is busy: block device is in use by block job: "
                       "backup", bdrv_get_node_name(bs));
            return true;
        }
    }
    return false;
}

/*
 * Is @bs the source of a backup job? QEMU's copy-before-write filter on it then
 * keeps others from writing to it: a target cannot be such a node.
 */
bool backup_source_conflict(BlockDriverState *bs, const char *filter,
                                   GError **errp)
{
    for (GList *l = backup_jobs; l; l = l->next) {
        BackupJob *b = l->data;

        if (b->src == bs) {
            error_setg(errp, "Could not create node: Permission conflict on node '%s': "
                       "permissions 'write' are both required by node '%s' (uses node "
                       "'%s' as 'target' child) and unshared by node '%s' (uses node "
                       "'%s' as 'file' child).", bdrv_get_node_name(bs), filter,
                       bdrv_get_node_name(bs), b->filter_name, bdrv_get_node_name(bs));
            return true;
        }
    }
    return false;
}

/*
 * sync=top: the clusters the source's top layer holds something of (all of
 * them without a backing file, as QEMU counts).
 */
static bool top_clusters(BackupJob *b, GError **errp)
{
    if (!bdrv_backing_child(b->src)) {
        bits_set_range(b->to_copy, 0, b->len);
        return true;
    }
    for (int64_t off = 0; off < b->len; ) {
        int64_t pnum = 0;
        int ret = bdrv_is_allocated(b->src, off, b->len - off, &pnum);

        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read the allocation of '%s'",
                             bdrv_get_node_name(b->src));
            return false;
        }
        if (pnum <= 0) {
            pnum = MIN(b->cluster, b->len - off);
        }
        if (ret) {
            bits_set_range(b->to_copy, off, pnum);
        }
        off += pnum;
    }
    return true;
}

/*
 * Set up what to copy and the copy-before-write notifier: from now on the
 * target gets the source as it is now. The job does not run yet.
 */
bool backup_setup(BackupJob *b, GError **errp)
{
    BdrvDirtyBitmapDesc d;

    b->to_copy = bits_new(b->cluster, b->len);
    if (b->sync == SYNC_FULL) {
        bits_set_range(b->to_copy, 0, b->len);
    } else if (b->sync == SYNC_TOP) {
        if (!top_clusters(b, errp)) {
            return false;
        }
    } else if (b->sync == SYNC_BITMAP) {
        g_autoptr(BdrvBitmapBits) bits = bdrv_dirty_bitmap_get_bits(b->src, b->bitmap,
                                                                    errp);
        if (!bits) {
            return false;
        }
        bdrv_bitmap_bits_or(b->to_copy, bits);
    } else {
        /* sync=none: only what writes would change is copied */
        bits_set_range(b->to_copy, 0, b->len);
    }
    if (b->bitmap && bdrv_dirty_bitmap_describe(b->src, b->bitmap, &d) && d.recording) {
        b->new_writes = bits_new(d.granularity, d.size);
    }
    job_progress_set_total(b->job, b->sync == SYNC_BITMAP || b->sync == SYNC_TOP ?
                           bits_count_bytes(b->to_copy) : b->len);
    bdrv_add_before_write(b->src, backup_before_write, b);
    b->hooked = true;
    backup_jobs = g_list_prepend(backup_jobs, b);
    return true;
}

/* src's anonymous bitmap in QEMU: what is still to copy */
static void src_bitmaps(BlockDriverState *bs, JsonArray *arr, void *opaque)
{
    BackupJob *b = opaque;
    int64_t count;

    g_mutex_lock(&b->lock);
    count = MIN(bits_count_bytes(b->to_copy), b->len);
    g_mutex_unlock(&b->lock);
    bdrv_anon_bitmap_describe(arr, false, b->cluster, count);
}

/* the filter's two in QEMU: what it gives access to, what writes copied */
static void filter_bitmaps(BlockDriverState *bs, JsonArray *arr, void *opaque)
{
    BackupJob *b = opaque;
    int64_t done;

    g_mutex_lock(&b->lock);
    done = MIN(b->cbw_bytes, b->len);
    g_mutex_unlock(&b->lock);
    bdrv_anon_bitmap_describe(arr, false, b->cluster, b->len);
    bdrv_anon_bitmap_describe(arr, false, b->cluster, done);
}

/*
 * Put QEMU's copy-before-write node over src, named filter-node-name or
 * automatically: src's users (exports, parent nodes) move onto it. Writes
 * through it reach src, where the job's notifier copies first.
 */
static void insert_filter(BackupJob *b)
{
    g_autoptr(GError) err = NULL;
    const char *name = b->filter_name[0] == '#' ? NULL : b->filter_name;

    b->filter = bdrv_open_job_filter(&bdrv_copy_before_write, b->src, name, &err);
    if (!b->filter ||
        !job_filter_insert(b->filter, b->src, b->job, false, &b->filter_use, &err)) {
        /* the checks before were QEMU's: nothing left to fail but memory */
        error_report("Could not insert the backup filter: %s", err->message);
        g_clear_pointer(&b->filter, bdrv_unref);
        return;
    }
    g_free(b->filter_name);
    b->filter_name = g_strdup(bdrv_get_node_name(b->filter));
    bdrv_anon_bitmaps_add(b->src, src_bitmaps, b);
    bdrv_anon_bitmaps_add(b->filter, filter_bitmaps, b);
}

/* Take the filter off again: its users move onto what it filters now. */
static void remove_filter(BackupJob *b)
{
    if (b->filter) {
        bdrv_anon_bitmaps_remove(b->src, src_bitmaps, b);
        bdrv_anon_bitmaps_remove(b->filter, filter_bitmaps, b);
    }
    job_filter_remove(&b->filter, &b->filter_use);
}

void backup_go(BackupJob *b)
{
    block_job_run(b->job);
    /* QEMU drains the source while it puts its filter on top */
    job_drained(b->job);
    insert_filter(b);
}

/* Undo backup_prepare() and backup_setup() of a job that never ran. */
void backup_unwind(BackupJob *b, bool created_events)
{
    if (b->hooked) {
        bdrv_remove_before_write(b->src, backup_before_write, b);
    }
    backup_jobs = g_list_remove(backup_jobs, b);
    bdrv_perm_detach(b->src, &b->src_use);
    bdrv_perm_detach(b->target, &b->target_use);
    if (created_events) {
        block_job_discard(b->job);
    } else {
        block_job_abandon(b->job);
    }
    backup_free(b);
}

