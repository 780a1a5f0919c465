/*
 * Block jobs on backing chains: block-commit (active: copy, wait in "ready" for
 * job-complete, pivot the device's users to the base; non-active: copy, then drop
 * the committed nodes from the chain) and block-stream (copy what the chain above
 * the base holds into the top node, then make the base its backing file). The
 * data goes through the block layer (block status skips what is not allocated
 * above the base), the target is flushed before any backing link changes, and
 * each job tells the permission model what it needs and shares on every node it
 * uses, in QEMU's terms ("stream job 'j'", "intermediate node").
 */
#include "job.h"
#include "qmp-commands.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "job-filter.h"

#define COPY_CHUNK (512 * 1024)  /* QEMU's commit and stream buffer size */
#define TRACK_GRANULARITY 65536     /* QEMU's mirror: the default granularity */
#define MIRROR_CHUNK (1024 * 1024)  /* QEMU's mirror: the largest request */
#define MIRROR_IN_FLIGHT 16         /* QEMU's mirror: requests in flight at most */

const QArg qapi_block_commit_args[] = {
    { "job-id", QT_STR, true, NULL, NULL, NULL },
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "base-node", QT_STR, true, NULL, NULL, NULL },
    { "base", QT_STR, true, NULL, NULL, NULL },
    { "top-node", QT_STR, true, NULL, NULL, NULL },
    { "top", QT_STR, true, NULL, NULL, NULL },
    { "backing-file", QT_STR, true, NULL, NULL, NULL },
    { "backing-mask-protocol", QT_BOOL, true, NULL, NULL, NULL },
    { "speed", QT_INT, true, NULL, NULL, NULL },
    { "on-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "filter-node-name", QT_STR, true, NULL, NULL, NULL },
    { "auto-finalize", QT_BOOL, true, NULL, NULL, NULL },
    { "auto-dismiss", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_stream_args[] = {
    { "job-id", QT_STR, true, NULL, NULL, NULL },
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "base", QT_STR, true, NULL, NULL, NULL },
    { "base-node", QT_STR, true, NULL, NULL, NULL },
    { "backing-file", QT_STR, true, NULL, NULL, NULL },
    { "backing-mask-protocol", QT_BOOL, true, NULL, NULL, NULL },
    { "bottom", QT_STR, true, NULL, NULL, NULL },
    { "speed", QT_INT, true, NULL, NULL, NULL },
    { "on-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "filter-node-name", QT_STR, true, NULL, NULL, NULL },
    { "auto-finalize", QT_BOOL, true, NULL, NULL, NULL },
    { "auto-dismiss", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_blockdev_mirror_args[] = {
    { "job-id", QT_STR, true, NULL, NULL, NULL },
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "target", QT_STR, false, NULL, NULL, NULL },
    { "replaces", QT_STR, true, NULL, NULL, NULL },
    { "sync", QT_ENUM, false, qapi_mirror_sync_mode, NULL, NULL },
    { "speed", QT_INT, true, NULL, NULL, NULL },
    { "granularity", QT_INT, true, NULL, NULL, NULL },
    { "buf-size", QT_INT, true, NULL, NULL, NULL },
    { "on-source-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "on-target-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "filter-node-name", QT_STR, true, NULL, NULL, NULL },
    { "copy-mode", QT_ENUM, true, qapi_mirror_copy_mode, NULL, NULL },
    { "auto-finalize", QT_BOOL, true, NULL, NULL, NULL },
    { "auto-dismiss", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

typedef enum { MIRROR_NO, MIRROR_FULL, MIRROR_TOP, MIRROR_NONE } MirrorSync;

/* One node a job uses; its address owns the permissions taken on the node. */
typedef struct JobUse {
    BlockDriverState *bs;
} JobUse;

typedef struct ChainJob {
    Job *job;
    bool stream;
    bool active;                /* commit of the device's active layer, or a mirror */
    MirrorSync mirror;          /* blockdev-mirror (base: its target), or MIRROR_NO */
    BlockDriverState *device;   /* the job's main node */
    BlockDriverState *top;      /* commit: the top-most committed node */
    BlockDriverState *base;     /* commit target; stream: the new backing (or NULL) */
    char *backing_file;         /* the backing file name to record, or NULL */
    GPtrArray *uses;            /* JobUse* */
    /* nodes an external snapshot had made read-only, writable for the job:
     * read-only again at its end, unless the active commit pivoted onto it */
    GPtrArray *reopened;
    bool pivoted;
    /* drive-mirror's target was opened without its backing file: the one it
     * gets at the pivot (the source's backing file, or the source) */
    bool pivot_backing_set;
    BlockDriverState *pivot_backing;
    /* the target is new and reads as zeroes (drive-mirror): only what the
     * source's chain allocates is copied, as QEMU's mirror without zero_target */
    bool target_zeroed;
    /* QEMU's filter over the device while the job runs (mirror_top for a
     * mirror or active commit, copy-on-read for a stream), or NULL */
    BlockDriverState *filter;
    int filter_use;             /* the job's (empty) use of it: drains find it */
} ChainJob;

static GList *chain_jobs;       /* ChainJob* running on some nodes */

static void remove_filter(ChainJob *cj);

/* Turn the nodes of @reopened read-only again (and free the list). */
static void restore_read_only(GPtrArray *reopened)
{
    for (guint i = 0; reopened && i < reopened->len; i++) {
        bdrv_make_read_only(reopened->pdata[i], NULL);
    }
    if (reopened) {
        g_ptr_array_free(reopened, TRUE);
    }
}

static void chain_job_free(gpointer p)
{
    ChainJob *cj = p;

    g_free(cj->backing_file);
    g_ptr_array_unref(cj->uses);
    restore_read_only(cj->reopened);    /* a job that never ran */
    g_free(cj);
}

/* The job whose main node @bs is, if any. */
static ChainJob *chain_job_on(BlockDriverState *bs)
{
    for (GList *l = chain_jobs; l; l = l->next) {
        ChainJob *cj = l->data;
        if (cj->device == bs) {
            return cj;
        }
    }
    return NULL;
}

static const char *chain_job_type(ChainJob *cj)
{
    return cj->stream ? "stream" : cj->mirror ? "mirror" : "commit";
}

/* The mirror job whose target @bs is, if any. */
static ChainJob *mirror_job_into(BlockDriverState *bs)
{
    for (GList *l = chain_jobs; l; l = l->next) {
        ChainJob *cj = l->data;
        if (cj->mirror && cj->base == bs) {
            return cj;
        }
    }
    return NULL;
}

/* The commit, stream or mirror job using @bs (any node it took), if any. */
static ChainJob *chain_job_using(BlockDriverState *bs)
{
    for (GList *l = chain_jobs; l; l = l->next) {
        ChainJob *cj = l->data;
        for (guint i = 0; i < cj->uses->len; i++) {
            if (((JobUse *)cj->uses->pdata[i])->bs == bs) {
                return cj;
            }
        }
    }
    return NULL;
}

bool qsd_block_job_busy(BlockDriverState *bs, GError **errp)
{
    ChainJob *cj = chain_job_using(bs);

    if (cj) {
        error_setg(errp, "Node '%s' is busy: block device is in use by block job: %s",
                   bdrv_get_node_name(bs), chain_job_type(cj));
    }
    return cj;
}

bool qsd_block_job_blocks_resize(BlockDriverState *bs, GError **errp)
{
    if (chain_job_using(bs)) {
        error_setg(errp, "Device '(null)' is in use");
        return true;
    }
    return false;
}

bool qsd_block_job_blocks_del(BlockDriverState *bs, GError **errp)
{
    ChainJob *cj = chain_job_using(bs);

    if (cj && cj->device == bs) {
        return qsd_block_job_busy(bs, errp);
    }
    if (cj) {
        error_setg(errp, "Node %s is in use", bdrv_get_node_name(bs));
    }
    return cj;
}

/* Does another node use @bs as a child (then it is no root)? */
static bool node_has_parent(BlockDriverState *bs)
{
    for (BlockDriverState *n = bdrv_next_node(NULL); n; n = bdrv_next_node(n)) {
        if (bdrv_backing_child(n) == bs || bdrv_file_child(n) == bs ||
            bdrv_data_file_child(n) == bs) {
            return true;
        }
    }
    return false;
}

/* Take @perm on @bs and share @shared, for the job's conflict messages. */
static bool job_use(ChainJob *cj, BlockDriverState *bs, const char *desc,
                    const char *child, uint64_t perm, uint64_t shared, GError **errp)
{
    JobUse *u = g_new0(JobUse, 1);

    if (bdrv_perm_attach_user(bs, u, desc, child, cj->job, perm, shared, errp) < 0) {
        g_free(u);
        return false;
    }
    u->bs = bs;
    bdrv_ref(bs);
    g_ptr_array_add(cj->uses, u);
    return true;
}

static void job_drop_uses(ChainJob *cj)
{
    if (cj->active) {
        bdrv_perm_put_behind(cj->device, cj->job, false);
    }
    for (guint i = cj->uses->len; i > 0; i--) {
        JobUse *u = cj->uses->pdata[i - 1];
        bdrv_perm_detach(u->bs, u);
        bdrv_unref(u->bs);
        g_free(u);
    }
    g_ptr_array_set_size(cj->uses, 0);
    chain_jobs = g_list_remove(chain_jobs, cj);
}

/* ---- copying ---- */

/*
 * Is [offset, offset+bytes) allocated in a node from @top down to @base
 * (exclusive)? 1/0 for the first *pnum bytes, or -errno. A node shorter than the
 * range has nothing there.
 */
static int allocated_above(BlockDriverState *top, BlockDriverState *base,
                           int64_t offset, int64_t bytes, int64_t *pnum)
{
    for (BlockDriverState *l = top; l && l != base; l = bdrv_backing_child(l)) {
        int64_t p = 0;
        int r;

        if (offset >= bdrv_getlength(l)) {
            continue;
        }
        r = bdrv_is_allocated(l, offset, bytes, &p);
        if (r < 0) {
            return r;
        }
        if (r) {
            *pnum = p;
            return 1;
        }
        if (p > 0) {
            bytes = MIN(bytes, p);
        }
    }
    *pnum = bytes;
    return 0;
}

static bool buffer_is_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Copy what @from reads at [offset, offset+bytes) into @to. @detect_zeroes:
 * a buffer of zero bytes is written as a zero write, as QEMU's stream does
 * (its copy-on-read); QEMU's commit writes such data as data. On failure,
 * *@err_read tells whether the read or the write failed.
 */
static int copy_range(BlockDriverState *from, BlockDriverState *to, int64_t offset,
                      int64_t bytes, uint8_t *buf, bool detect_zeroes, bool *err_read)
{
    int ret = bdrv_pread(from, offset, bytes, buf, 0);

    *err_read = ret < 0;
    if (ret < 0) {
        return ret;
    }
    if (detect_zeroes && buffer_is_zero(buf, bytes)) {
        return bdrv_pwrite_zeroes(to, offset, bytes, 0);
    }
    return bdrv_pwrite(to, offset, bytes, buf, 0);
}

/*
 * One pass over [0, len): the ranges allocated from @top down to @base go into
 * @to (read through @from). @count: only add up their size into *@total.
 * @progress: report every range (stream, commit) or only the copied ones (active
 * commit). @locked: the caller holds the block layer lock for the whole pass.
 */
static int copy_pass(Job *job, BlockDriverState *from, BlockDriverState *top,
                     BlockDriverState *base, BlockDriverState *to, int64_t len,
                     bool count, bool all_progress, bool locked, int64_t *total,
                     GError **errp)
{
    g_autofree uint8_t *buf = count ? NULL : g_malloc(COPY_CHUNK);

    for (int64_t off = 0; off < len; ) {
        int64_t n = MIN(COPY_CHUNK, len - off);
        bool err_read = true;
        int r;

        if (!locked) {
            job_pause_point(job);
            if (job_is_cancelled(job)) {
                return -ECANCELED;
            }
            block_lock();
        }
        r = allocated_above(top, base, off, n, &n);
        if (r > 0 && !count) {
            r = copy_range(from, to, off, n, buf, false, &err_read);
            r = r < 0 ? r : 1;
        }
        if (!locked) {
            block_unlock();
        }
        if (r < 0 && !locked &&
            job_io_error(job, err_read, r) != JOB_ERROR_REPORT) {
            continue;       /* QEMU's commit tries the same range again */
        }
        if (r < 0) {
            error_setg(errp, "%s", g_strerror(-r));
            return r;
        }
        if (count) {
            *total += r ? n : 0;
        } else if (!locked && (r || all_progress)) {
            job_progress_add(job, n);
            if (r) {
                job_rate_limit(job, n);
            }
        }
        off += n;
    }
    return 0;
}

/*
 * Does blockdev-mirror copy [off, off+*n)? 1 (*n cut to the range that is
 * the same all along), 0 (*n: how far it does not), -errno. Block layer locked.
 */
static int mirror_wants(ChainJob *cj, int64_t off, int64_t *n)
{
    if (cj->mirror == MIRROR_TOP) {
        return bdrv_is_allocated(cj->top, off, *n, n);
    } else if (cj->target_zeroed) {
        return allocated_above(cj->top, NULL, off, *n, n);
    }
    return 1;
}

/* Block layer locked: the size of what blockdev-mirror copies, into *@total. */
static int mirror_count(ChainJob *cj, int64_t len, int64_t *total, GError **errp)
{
    for (int64_t off = 0; off < len; ) {
        int64_t n = MIN(MIRROR_CHUNK, len - off);
        int r = mirror_wants(cj, off, &n);

        if (r < 0) {
            error_setg(errp, "%s", g_strerror(-r));
            return r;
        }
        *total += r ? n : 0;
        off += n;
    }
    return 0;
}

/*
 * Mirror [off, off+*n) of the source into the target (block layer taken
 * here): what block status calls zero as zeroes, the rest as data, zero
 * bytes included. 1 copied (*n: how much), 0 nothing to copy there, -errno
 * (*err_read: reading failed).
 */
static int mirror_chunk(ChainJob *cj, int64_t off, int64_t *n, uint8_t *buf,
                        bool *err_read)
{
    int r;

    block_lock();
    *err_read = true;
    r = mirror_wants(cj, off, n);
    if (r > 0) {
        int64_t st = bdrv_block_status_above(cj->top, off, *n, n);

        r = st < 0 ? st : (st & BDRV_BLOCK_ZERO) ?
            (*err_read = false, bdrv_pwrite_zeroes(cj->base, off, *n, 0)) :
            copy_range(cj->top, cj->base, off, *n, buf, false, err_read);
        r = r < 0 ? r : 1;
    }
    block_unlock();
    return r;
}

/*
 * blockdev-mirror's pass over [0, len) of the source (cj->top) into the
 * target (cj->base): sync full every range, sync top those the source's own
 * layer holds. A chunk that fails is handled by the error policy after the
 * chunks QEMU's mirror would have in flight beside it are done; ignored and
 * stopped ones are copied again at the end.
 */
static int mirror_pass(Job *job, ChainJob *cj, int64_t len, GError **errp)
{
    g_autofree uint8_t *buf = g_malloc(MIRROR_CHUNK);
    g_autoptr(GArray) redo = g_array_new(FALSE, FALSE, sizeof(int64_t));
    int64_t off = 0;

    while (off < len || redo->len) {
        bool from_redo = off >= len, err_read;
        int64_t o = from_redo ? g_array_index(redo, int64_t, 0) : off;
        int64_t n = from_redo ? g_array_index(redo, int64_t, 1) : MIN(MIRROR_CHUNK, len - off);
        int r;

        if (from_redo) {
            g_array_remove_range(redo, 0, 2);
        }
        job_pause_point(job);
        if (job_is_cancelled(job)) {
            return -ECANCELED;
        }
        r = mirror_chunk(cj, o, &n, buf, &err_read);
        if (!from_redo) {
            off = o + n;
        }
        if (r > 0) {
            job_progress_add(job, n);
            job_rate_limit(job, n);
        } else if (r < 0) {
            for (int i = 1; !from_redo && i < MIRROR_IN_FLIGHT && off < len; i++) {
                int64_t n2 = MIN(MIRROR_CHUNK, len - off);
                bool er;
                int r2 = mirror_chunk(cj, off, &n2, buf, &er);

                if (r2 > 0) {
                    job_progress_add(job, n2);
                } else if (r2 < 0) {
                    g_array_append_val(redo, off);
                    g_array_append_val(redo, n2);
                }
                off += n2;
            }
            if (job_io_error(job, err_read, r) == JOB_ERROR_REPORT) {
                error_setg(errp, "%s", g_strerror(-r));
                return r;
            }
            g_array_append_val(redo, o);
            g_array_append_val(redo, n);
        }
    }
    return 0;
}

static int flush_locked(BlockDriverState *bs, GError **errp)
{
    int ret;

    block_lock();
    ret = bdrv_flush(bs);
    block_unlock();
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush '%s'", bdrv_get_node_name(bs));
    }
    return ret;
}

static int stream_run(Job *job, void *opaque, GError **errp)
{
    ChainJob *cj = opaque;
    BlockDriverState *below;
    int64_t len;
    int ret, ignored = 0;

    block_lock();
    len = bdrv_getlength(cj->device);
    below = bdrv_backing_child(cj->device);
    block_unlock();
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the image size");
        return len;
    }
    job_progress_set_total(job, len);
    if (below && below != cj->base) {
        g_autofree uint8_t *buf = g_malloc(COPY_CHUNK);

        for (int64_t off = 0; off < len; ) {
            int64_t n = MIN(COPY_CHUNK, len - off);
            bool err_read = true;
            int r;

            job_pause_point(job);
            if (job_is_cancelled(job)) {
                return -ECANCELED;
            }
            block_lock();
            /* what the top holds already stays; what it shows from above the
             * base is copied up (read through the top) */
            r = bdrv_is_allocated(cj->device, off, n, &n);
            if (r == 0) {
                r = allocated_above(below, cj->base, off, n, &n);
                if (r > 0) {
                    r = copy_range(cj->device, cj->device, off, n, buf, true, &err_read);
                    r = r < 0 ? r : 1;
                }
            } else if (r > 0) {
                r = 0;
            }
            block_unlock();
            if (r < 0) {
                JobErrorAction a = job_io_error(job, err_read, r);

                if (a == JOB_ERROR_RETRY) {
                    continue;
                }
                if (a == JOB_ERROR_REPORT) {
                    error_setg(errp, "%s", g_strerror(-r));
                    return r;
                }
                /* ignored: QEMU's stream goes on, and fails at the end */
                ignored = ignored ? ignored : r;
                r = 0;
            }
            job_progress_add(job, n);
            if (r) {
                job_rate_limit(job, n);
            }
            off += n;
        }
    } else {
        job_progress_set_total(job, 0);     /* nothing to stream */
    }
    if (ignored < 0) {
        error_setg(errp, "%s", g_strerror(-ignored));
        return ignored;
    }
    ret = flush_locked(cj->device, errp);
    return ret < 0 ? ret : 0;
}

static int commit_run(Job *job, void *opaque, GError **errp)
{
    ChainJob *cj = opaque;
    int64_t len, base_len, total = 0, off, n;
    g_autofree uint8_t *buf = NULL;
    int ret;

    block_lock();
    len = bdrv_getlength(cj->top);
    base_len = bdrv_getlength(cj->base);
    ret = len < 0 ? len : base_len < 0 ? base_len : 0;
    if (ret == 0 && cj->mirror && base_len != len) {
        error_setg(errp, "Source and target image have different sizes");
        ret = -EINVAL;
    } else if (ret == 0 && base_len < len) {
        /* the base grows to the top's size, as QEMU's commit does */
        ret = bdrv_truncate(cj->base, len, false, PREALLOC_MODE_OFF, 0, errp);
    }
    block_unlock();
    if (ret < 0) {
        if (errp && !*errp) {
            error_setg_errno(errp, -ret, "Could not get the image size");
        }
        return ret;
    }
    if (!cj->active) {
        job_progress_set_total(job, len);
        ret = copy_pass(job, cj->top, cj->top, cj->base, cj->base, len, false, true,
                        false, NULL, errp);
        return ret < 0 ? ret : flush_locked(cj->base, errp);
    }

    /* active: the allocated ranges are the work; then wait in "ready" */
    block_lock();
    /* the device's users keep writing to the top: what they change is copied
     * again before the pivot */
    bdrv_track_writes(cj->top, TRACK_GRANULARITY);
    if (cj->mirror == MIRROR_NONE) {
        ret = 0;
    } else if (cj->mirror) {
        ret = mirror_count(cj, len, &total, errp);
    } else {
        ret = copy_pass(job, cj->top, cj->top, cj->base, NULL, len, true, false, true,
                        &total, errp);
    }
    block_unlock();
    if (ret < 0) {
        return ret;
    }
    job_progress_set_total(job, total);
    if (cj->mirror == MIRROR_NONE) {
        ret = 0;
    } else if (cj->mirror) {
        ret = mirror_pass(job, cj, len, errp);
    } else {
        ret = copy_pass(job, cj->top, cj->top, cj->base, cj->base, len, false, false,
                        false, NULL, errp);
    }
    if (ret == 0) {
        ret = flush_locked(cj->base, errp);
    }
    if (ret < 0) {
        return ret;
    }
    ret = job_ready_wait(job);
    if (ret <= 0) {
        return ret;     /* cancelled, or ends without pivot */
    }
    /* what was written since goes too, with the users held off until the pivot */
    buf = g_malloc(COPY_CHUNK);
    block_lock();
    while (ret >= 0 && bdrv_track_take(cj->top, &off, &n)) {
        n = MIN(n, len - off);
        job_progress_grow(job, n);
        for (int64_t done = 0; ret >= 0 && done < n; done += COPY_CHUNK) {
            bool err_read;

            ret = copy_range(cj->top, cj->base, off + done, MIN(COPY_CHUNK, n - done),
                             buf, false, &err_read);
        }
        job_progress_add(job, n);
    }
    ret = ret < 0 ? ret : bdrv_flush(cj->base);
    block_unlock();
    if (ret < 0 && errp && !*errp) {
        error_setg_errno(errp, -ret, "Could not flush '%s'",
                         bdrv_get_node_name(cj->base));
    }
    return ret < 0 ? ret : 0;
}

/* Record @backing as @bs's backing file: header first, then the graph. */
static bool set_backing(ChainJob *cj, BlockDriverState *bs, BlockDriverState *backing,
                        GError **errp)
{
    const char *name = backing ? (cj->backing_file ? cj->backing_file :
                                  bdrv_get_filename(backing)) : NULL;
    int ret = bdrv_change_backing_file(bs, name,
                                       backing ? bdrv_get_format_name(backing) : NULL);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not change the backing file of '%s'",
                         bdrv_get_filename(bs));
        return false;
    }
    return bdrv_set_backing(bs, backing, errp) == 0;
}

static bool stream_finalize(Job *job, void *opaque, bool completed, GError **errp)
{
    ChainJob *cj = opaque;

    return set_backing(cj, cj->device, cj->base, errp);
}

static BlockDriverState *overlay_of(BlockDriverState *from, BlockDriverState *bs)
{
    for (BlockDriverState *l = from; l; l = bdrv_backing_child(l)) {
        if (bdrv_backing_child(l) == bs) {
            return l;
        }
    }
    return NULL;
}

static bool commit_finalize(Job *job, void *opaque, bool completed, GError **errp)
{
    ChainJob *cj = opaque;
    BlockDriverState *overlay;

    if (cj->active) {
        if (completed) {
            if (cj->mirror) {
                /* the job's own use of its target, which shares no writing,
                 * goes first: the exports take the target over */
                for (guint i = 0; i < cj->uses->len; i++) {
                    JobUse *u = cj->uses->pdata[i];
                    if (u->bs == cj->base) {
                        bdrv_perm_detach(u->bs, u);
                    }
                }
            }
            if (cj->pivot_backing_set &&
                bdrv_set_backing(cj->base, cj->pivot_backing, errp) < 0) {
                return false;
            }
            if (cj->filter) {
                qsd_export_replace_node(cj->filter, cj->base);
                bdrv_replace_in_parents(cj->filter, cj->base, NULL);
            }
            qsd_export_replace_node(cj->top, cj->base);
            cj->pivoted = true;
        }
        return true;
    }
    overlay = overlay_of(cj->device, cj->top);
    return !overlay || set_backing(cj, overlay, cj->base, errp);
}

static void chain_job_clean(Job *job, void *opaque)
{
    ChainJob *cj = opaque;

    if (cj->active) {
        bdrv_track_stop(cj->top);
    }
    /* the job's uses go first: the filter's users then fit on the device */
    job_drop_uses(cj);
    remove_filter(cj);
    if (cj->pivoted && cj->reopened) {
        /* the new active layer stays writable */
        g_ptr_array_remove(cj->reopened, cj->base);
    }
    restore_read_only(g_steal_pointer(&cj->reopened));
}

static const BlockJobDriver commit_driver = {
    .type = "commit",
    .run = commit_run,
    .finalize = commit_finalize,
    .clean = chain_job_clean,
};

static const BlockJobDriver mirror_driver = {
    .type = "mirror",
    .run = commit_run,
    .finalize = commit_finalize,
    .clean = chain_job_clean,
};

static const BlockJobDriver stream_driver = {
    .type = "stream",
    .run = stream_run,
    .finalize = stream_finalize,
    .clean = chain_job_clean,
};

/* ---- commands ---- */

/* The node @node (by node name) or @file (a backing file name) of @bs's chain. */
static BlockDriverState *chain_node(BlockDriverState *bs, const char *node,
                                    const char *file, GError **errp)
{
    BlockDriverState *n;

    if (node) {
        n = bdrv_find_node(node);
        if (!n) {
            error_setg(errp, "Cannot find device='' nor node-name='%s'", node);
        }
        return n;
    }
    n = bdrv_find_backing_image(bs, file);
    if (!n) {
        error_setg(errp, "Can't find '%s' in the backing chain", file);
    }
    return n;
}

static bool in_chain(BlockDriverState *top, BlockDriverState *bs)
{
    for (BlockDriverState *l = top; l; l = bdrv_backing_child(l)) {
        if (l == bs) {
            return true;
        }
    }
    return false;
}

static const char *job_id_arg(JsonObject *args, BlockDriverState *device, GError **errp)
{
    const char *id = opts_peek_str(args, "job-id");

    if (!id) {
        error_setg(errp, "An explicit job ID is required for this node");
    }
    return id;
}

static bool speed_arg(JsonObject *args, int64_t *speed, GError **errp)
{
    *speed = json_object_has_member(args, "speed") ?
             json_object_get_int_member(args, "speed") : 0;
    if (*speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return false;
    }
    return true;
}

/* the device's anonymous bitmap in QEMU: the mirror's record of writes */
static void device_bitmaps(BlockDriverState *bs, JsonArray *arr, void *opaque)
{
    bdrv_anon_bitmap_describe(arr, true, TRACK_GRANULARITY, 0);
}

/*
 * Put QEMU's filter over the device (named @name, or automatically): the
 * device's users (exports, parent nodes) move onto it. A non-active commit
 * gets none here (QEMU's commit_top sits inside the backing chain).
 */
static bool insert_filter(ChainJob *cj, const char *name, GError **errp)
{
    BlockDriverState *bottom = NULL;

    if (cj->stream) {
        cj->filter = bdrv_open_job_filter(&bdrv_copy_on_read, cj->device, name, errp);
        /* only what lies above the base is copied up */
        for (BlockDriverState *l = bdrv_backing_child(cj->device);
             cj->base && l && l != cj->base; l = bdrv_backing_child(l)) {
            bottom = l;
        }
        if (cj->filter) {
            bdrv_cor_set_bottom(cj->filter, bottom);
        }
    } else if (cj->active) {
        cj->filter = bdrv_open_job_filter(&bdrv_mirror_top, cj->device, name, errp);
    } else {
        return true;
    }
    if (!cj->filter) {
        return false;
    }
    if (!job_filter_insert(cj->filter, cj->device, cj->job, cj->active, &cj->filter_use,
                           errp)) {
        g_clear_pointer(&cj->filter, bdrv_unref);
        return false;
    }
    if (cj->active) {
        bdrv_anon_bitmaps_add(cj->device, device_bitmaps, cj);
    }
    return true;
}

/* Take the filter off: its users move onto what it filters (or, after a
 * pivot, already went to the target). */
static void remove_filter(ChainJob *cj)
{
    if (cj->filter) {
        bdrv_anon_bitmaps_remove(cj->device, device_bitmaps, cj);
    }
    job_filter_remove(&cj->filter, &cj->filter_use);
}

static bool start_chain_job(ChainJob *cj, const BlockJobDriver *drv, const char *id,
                            JsonObject *args, GError **errp)
{
    bool ok;
    int64_t speed;

    cj->uses = g_ptr_array_new();
    cj->backing_file = g_strdup(opts_peek_str(args, "backing-file"));
    cj->job = block_job_create(id, drv, cj, chain_job_free,
                               opts_get_bool(args, "auto-finalize", true, NULL),
                               opts_get_bool(args, "auto-dismiss", true, NULL), errp);
    if (!cj->job) {
        chain_job_free(cj);
        return false;
    }
    chain_jobs = g_list_prepend(chain_jobs, cj);
    block_job_set_error_policy(cj->job, args);
    ok = speed_arg(args, &speed, errp);
    if (ok) {
        g_autofree char *desc = g_strdup_printf("%s job '%s'", drv->type, id);
        uint64_t inter_perm = cj->stream ? BLK_PERM_CONSISTENT_READ : 0;
        uint64_t inter_shared = cj->stream ?
            BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED :
            BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED | BLK_PERM_RESIZE;
        BlockDriverState *from = cj->stream ? bdrv_backing_child(cj->device) :
                                 bdrv_backing_child(cj->top);

        job_set_speed(cj->job, speed);
        if (cj->active) {
            bdrv_perm_put_behind(cj->device, cj->job, true);
        }
        ok = job_use(cj, cj->device, desc, "main node", 0, BLK_PERM_ALL, errp);
        if (ok && !cj->stream && cj->top != cj->device) {
            ok = job_use(cj, cj->top, QSD_EXPORT_USER, "root",
                         BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL, errp);
        }
        for (BlockDriverState *l = from; ok && !cj->mirror && l && l != cj->base;
             l = bdrv_backing_child(l)) {
            ok = job_use(cj, l, desc, "intermediate node", inter_perm, inter_shared,
                         errp);
        }
        if (ok && cj->mirror) {
            ok = job_use(cj, cj->base, QSD_EXPORT_USER, "root",
                         BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE,
                         BLK_PERM_ALL & ~(BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                                          BLK_PERM_RESIZE), errp);
        } else if (ok && !cj->stream) {
            /* resize only when the base must grow to the top's size */
            bool grow = bdrv_getlength(cj->base) < bdrv_getlength(cj->top);
            ok = job_use(cj, cj->base, QSD_EXPORT_USER, "root",
                         BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                         (grow ? BLK_PERM_RESIZE : 0),
                         cj->active ? BLK_PERM_ALL :
                         BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED, errp);
        }
    }
    if (ok) {
        ok = insert_filter(cj, opts_peek_str(args, "filter-node-name"), errp);
    }
    if (!ok) {
        job_drop_uses(cj);
        block_job_abandon(cj->job);
        chain_job_free(cj);
        return false;
    }
    block_job_run(cj->job);
    return true;
}

/*
 * Make @bs's backing child @target writable: in place if an external snapshot
 * made it read-only (added to @reopened), else by opening it again.
 */
static bool make_writable(BlockDriverState *parent, BlockDriverState **target,
                          GPtrArray *reopened, GError **errp)
{
    if (!bdrv_is_read_only(*target)) {
        return true;
    }
    if (bdrv_is_read_only_in_place(*target)) {
        if (bdrv_make_writable_again(*target, errp) < 0) {
            return false;
        }
        g_ptr_array_add(reopened, *target);
        return true;
    }
    if (!parent || bdrv_reopen_backing_rw(parent, errp) < 0) {
        if (errp && !*errp) {
            error_setg(errp, "Block node is read-only");
        }
        return false;
    }
    *target = bdrv_backing_child(parent);
    return true;
}

JsonNode *qmp_block_commit(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *base_node = opts_peek_str(args, "base-node");
    const char *base_file = opts_peek_str(args, "base");
    const char *top_node = opts_peek_str(args, "top-node");
    const char *top_file = opts_peek_str(args, "top");
    BlockDriverState *bs = bdrv_find_node(device), *top, *base;
    GPtrArray *reopened;
    const char *id;
    ChainJob *cj;

    if (!bs) {
        g_set_error(errp, QMP_ERROR_DEVICE_NOT_FOUND, 0, "Device '%s' not found", device);
        return NULL;
    }
    /* a backup's source has QEMU's filter above it, its target the job */
    if (node_has_parent(bs) || chain_job_on(bs) || qsd_backup_uses_node(bs)) {
        error_setg(errp, "Need a root block node");
        return NULL;
    }
    if (base_node && base_file) {
        error_setg(errp, "'base-node' and 'base' are mutually exclusive");
        return NULL;
    }
    if (top_node && top_file) {
        error_setg(errp, "'top-node' and 'top' are mutually exclusive");
        return NULL;
    }
    top = top_node || top_file ? chain_node(bs, top_node, top_file, errp) : bs;
    if (!top) {
        return NULL;
    }
    if (!in_chain(bs, top)) {
        error_setg(errp, "'%s' is not in this backing file chain",
                   top_node ? top_node : top_file);
        return NULL;
    }
    if (base_node || base_file) {
        base = chain_node(bs, base_node, base_file, errp);
        if (!base) {
            return NULL;
        }
    } else {
        base = top;
        while (bdrv_backing_child(base)) {
            base = bdrv_backing_child(base);
        }
    }
    if (base == top) {
        error_setg(errp, "cannot commit an image into itself");
        return NULL;
    }
    if (!in_chain(top, base)) {
        error_setg(errp, "'%s' is not in this backing file chain",
                   base_node ? base_node : base_file ? base_file :
                   bdrv_get_node_name(base));
        return NULL;
    }
    id = job_id_arg(args, bs, errp);
    if (!id) {
        return NULL;
    }
    /* the base is written, and the top's overlay gets a new backing file name */
    reopened = g_ptr_array_new();
    if (!make_writable(overlay_of(top, base), &base, reopened, errp)) {
        restore_read_only(reopened);
        return NULL;
    }
    if (top != bs) {
        BlockDriverState *overlay = overlay_of(bs, top);
        if (overlay != bs &&
            !make_writable(overlay_of(bs, overlay), &overlay, reopened, errp)) {
            restore_read_only(reopened);
            return NULL;
        }
    }
    cj = g_new0(ChainJob, 1);
    cj->reopened = reopened;
    cj->device = bs;
    cj->top = top;
    cj->base = base;
    cj->active = top == bs;
    return start_chain_job(cj, &commit_driver, id, args, errp) ?
           qjson_empty_object() : NULL;
}

JsonNode *qmp_block_stream(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *base_node = opts_peek_str(args, "base-node");
    const char *base_file = opts_peek_str(args, "base");
    const char *bottom = opts_peek_str(args, "bottom");
    BlockDriverState *bs = bdrv_find_node(device), *base = NULL;
    ChainJob *cj, *busy;
    const char *id;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return NULL;
    }
    if (base_node && base_file) {
        error_setg(errp, "'base' and 'base-node' cannot be specified at the same time");
        return NULL;
    }
    if (bottom && (base_node || base_file)) {
        error_setg(errp, "'bottom' and 'base-node' cannot be specified at the same time");
        return NULL;
    }
    if (base_node || base_file) {
        base = chain_node(bs, base_node, base_file, errp);
        if (!base) {
            return NULL;
        }
        if (base == bs || !in_chain(bs, base)) {
            error_setg(errp, "Node '%s' is not a backing image of '%s'",
                       bdrv_get_node_name(base), device);
            return NULL;
        }
    } else if (bottom) {
        BlockDriverState *b = bdrv_find_node(bottom);
        if (!b || b == bs || !in_chain(bs, b)) {
            error_setg(errp, "Node '%s' is not a backing image of '%s'", bottom, device);
            return NULL;
        }
        base = bdrv_backing_child(b);
    }
    if (backup_target_busy(bs, errp)) {
        return NULL;
    }
    busy = chain_job_on(bs);
    if (busy) {
        error_setg(errp, "Node '%s' is busy: block device is in use by block job: %s",
                   device, chain_job_type(busy));
        return NULL;
    }
    if (bdrv_is_read_only(bs)) {
        error_setg(errp, "Block node is read-only");
        return NULL;
    }
    id = job_id_arg(args, bs, errp);
    if (!id) {
        return NULL;
    }
    cj = g_new0(ChainJob, 1);
    cj->stream = true;
    cj->device = bs;
    cj->top = bs;
    cj->base = base;
    return start_chain_job(cj, &stream_driver, id, args, errp) ?
           qjson_empty_object() : NULL;
}

bool qsd_mirror_source_ok(BlockDriverState *bs, GError **errp)
{
    /* QEMU's mirror filter goes on top of the source: it must be a root */
    if (node_has_parent(bs) || chain_job_on(bs) || mirror_job_into(bs) ||
        qsd_backup_uses_node(bs)) {
        error_setg(errp, "Need a root block node");
        return false;
    }
    return true;
}

/* blockdev-mirror, and drive-mirror once its target is open (@drive). */
static bool mirror_start(JsonObject *args, bool drive, BlockDriverState *pivot_backing,
                         bool target_new, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *target_name = opts_peek_str(args, "target");
    const char *sync = opts_peek_str(args, "sync");
    const char *replaces = opts_peek_str(args, "replaces");
    const char *id = opts_peek_str(args, "job-id");
    BlockDriverState *bs = bdrv_find_node(device), *target, *parent;
    ChainJob *cj;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return false;
    }
    target = bdrv_find_node(target_name);
    if (!target) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", target_name,
                   target_name);
        return false;
    }
    if (bs == target) {
        error_setg(errp, "Can't mirror node into itself");
        return false;
    }
    if (!qsd_mirror_source_ok(bs, errp)) {
        return false;
    }
    if (qsd_block_job_busy(target, errp)) {
        return false;
    }
    parent = qsd_backing_parent(target);
    if (parent) {
        error_setg(errp, "Node '%s' is busy: node is used as backing hd of '%s'",
                   target_name, bdrv_get_node_name(parent));
        return false;
    }
    if (backup_target_busy(target, errp)) {
        return false;
    }
    if (!strcmp(sync, "incremental") || !strcmp(sync, "bitmap")) {
        error_setg(errp, "Sync mode '%s' not supported", sync);
        return false;
    }
    if (json_object_has_member(args, "granularity")) {
        int64_t g = json_object_get_int_member(args, "granularity");
        if (g < 512 || g > 64 * MiB) {
            error_setg(errp, "Parameter 'granularity' expects a value in range "
                       "[512B, 64MB]");
            return false;
        }
        if (g & (g - 1)) {
            error_setg(errp, "Parameter 'granularity' expects a power of 2");
            return false;
        }
    }
    if (json_object_has_member(args, "buf-size") &&
        json_object_get_int_member(args, "buf-size") < 0) {
        error_setg(errp, "Invalid parameter 'buf-size'");
        return false;
    }
    if (replaces && !bdrv_find_node(replaces)) {
        error_setg(errp, "Failed to find node with node-name='%s'", replaces);
        return false;
    }
    cj = g_new0(ChainJob, 1);
    cj->device = bs;
    cj->top = bs;
    cj->base = target;
    cj->active = true;
    cj->mirror = !strcmp(sync, "full") ? MIRROR_FULL :
                 !strcmp(sync, "top") ? MIRROR_TOP : MIRROR_NONE;
    cj->pivot_backing_set = drive && cj->mirror != MIRROR_FULL;
    cj->target_zeroed = drive && target_new;
    cj->pivot_backing = pivot_backing;
    /* without a job-id, QEMU names the job after the device: "" for a node */
    return start_chain_job(cj, &mirror_driver, id ? id : "", args, errp);
}

JsonNode *qmp_blockdev_mirror(JsonObject *args, Monitor *mon, GError **errp)
{
    return mirror_start(args, false, NULL, false, errp) ? qjson_empty_object() : NULL;
}

bool qsd_drive_mirror_start(JsonObject *args, BlockDriverState *pivot_backing,
                            bool target_new, GError **errp)
{
    return mirror_start(args, true, pivot_backing, target_new, errp);
}
