/*
 * The blockdev-backup and drive-backup commands and transaction actions
 * (drive-backup creates its target image first): QEMU 7.2's argument
 * schema (BlockdevBackup) and its checks in its order, with its messages
 * (compared with Debian's daemon), then the job (backup-job.c) is created and
 * run; in a transaction it runs only when the transaction commits.
 */
#include "backup-int.h"
#include "qmp-commands.h"
#include "transaction.h"

static const char *const bitmap_mode_values[] = {
    "on-success", "never", "always", NULL,
};

static const QArg x_perf_members[] = {
    { "use-copy-range", QT_BOOL, true, NULL, NULL, NULL },
    { "max-workers", QT_INT, true, NULL, NULL, NULL },
    { "max-chunk", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

/* QEMU's BackupCommon, the members both backup commands start with */
#define BACKUP_COMMON_ARGS \
    { "job-id", QT_STR, true, NULL, NULL, NULL }, \
    { "device", QT_STR, false, NULL, NULL, NULL }, \
    { "sync", QT_ENUM, false, qapi_mirror_sync_mode, NULL, NULL }, \
    { "speed", QT_INT, true, NULL, NULL, NULL }, \
    { "bitmap", QT_STR, true, NULL, NULL, NULL }, \
    { "bitmap-mode", QT_ENUM, true, bitmap_mode_values, NULL, NULL }, \
    { "compress", QT_BOOL, true, NULL, NULL, NULL }, \
    { "on-source-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL }, \
    { "on-target-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL }, \
    { "auto-finalize", QT_BOOL, true, NULL, NULL, NULL }, \
    { "auto-dismiss", QT_BOOL, true, NULL, NULL, NULL }, \
    { "filter-node-name", QT_STR, true, NULL, NULL, NULL }, \
    { "x-perf", QT_STRUCT, true, NULL, x_perf_members, NULL }

/* QEMU's BlockdevBackup: BackupCommon's members, then the target node */
const QArg qapi_blockdev_backup_args[] = {
    BACKUP_COMMON_ARGS,
    { "target", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

/* QEMU's DriveBackup: the target is an image file, created unless it exists */
const QArg qapi_drive_backup_args[] = {
    BACKUP_COMMON_ARGS,
    { "target", QT_STR, false, NULL, NULL, NULL },
    { "format", QT_STR, true, NULL, NULL, NULL },
    { "mode", QT_ENUM, true, qapi_new_image_mode, NULL, NULL },
    QARG_END,
};

static int enum_index(const char *const *values, const char *v)
{
    for (int i = 0; values[i]; i++) {
        if (!strcmp(values[i], v)) {
            return i;
        }
    }
    return -1;
}

/* ---- the command ---- */

static BlockDriverState *find_node(const char *name, GError **errp)
{
    BlockDriverState *bs = bdrv_find_node(name);

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", name, name);
    }
    return bs;
}

/* The checks of the sync bitmap, in QEMU's order; @sync may become bitmap. */
static bool check_bitmap(JsonObject *args, BlockDriverState *bs, int *sync,
                         int *mode, GError **errp)
{
    const char *bitmap = opts_peek_str(args, "bitmap");
    const char *mode_str = opts_peek_str(args, "bitmap-mode");
    BdrvDirtyBitmapDesc d;

    if ((*sync == SYNC_INCREMENTAL || *sync == SYNC_BITMAP) && !bitmap) {
        error_setg(errp, "must provide a valid bitmap name for '%s' sync mode",
                   qapi_mirror_sync_mode[*sync]);
        return false;
    }
    if (!bitmap) {
        if (mode_str) {
            error_setg(errp, "Cannot specify bitmap sync mode without a bitmap");
            return false;
        }
        return true;
    }
    if (!bdrv_dirty_bitmap_describe(bs, bitmap, &d)) {
        error_setg(errp, "Bitmap '%s' could not be found", bitmap);
        return false;
    }
    if (!mode_str && *sync != SYNC_INCREMENTAL) {
        error_setg(errp, "Bitmap sync mode must be given when providing a bitmap");
        return false;
    }
    /* incremental is bitmap with on-success, which it need not name */
    *mode = mode_str ? enum_index(bitmap_mode_values, mode_str) : MODE_ON_SUCCESS;
    if (*sync == SYNC_INCREMENTAL) {
        if (*mode != MODE_ON_SUCCESS) {
            error_setg(errp, "Bitmap sync mode must be '%s' when using sync mode '%s'",
                       "on-success", "incremental");
            return false;
        }
        *sync = SYNC_BITMAP;
    }
    if (qsd_export_uses_bitmap(bs, bitmap)) {   /* exports' and backups' */
        error_setg(errp, "Bitmap '%s' is currently in use by another operation and "
                   "cannot be used", bitmap);
        return false;
    }
    if (d.inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used", bitmap);
        return false;
    }
    if (*sync == SYNC_NONE) {
        error_setg(errp, "sync mode '%s' does not produce meaningful bitmap outputs",
                   "none");
        return false;
    }
    if (*mode == MODE_NEVER && (*sync == SYNC_FULL || *sync == SYNC_TOP)) {
        error_setg(errp, "Bitmap sync mode '%s' has no meaningful effect when combined "
                   "with sync mode '%s'", "never", qapi_mirror_sync_mode[*sync]);
        return false;
    }
    return true;
}

/* x-perf.max-workers (before the sizes) or .max-chunk (after the filter). */
static bool check_x_perf(JsonObject *args, int64_t cluster, bool chunk, GError **errp)
{
    JsonObject *perf = json_object_has_member(args, "x-perf") ?
                       json_object_get_object_member(args, "x-perf") : NULL;

    if (!perf) {
        return true;
    }
    if (!chunk && json_object_has_member(perf, "max-workers")) {
        int64_t w = json_object_get_int_member(perf, "max-workers");
        if (w < 1 || w > INT_MAX) {
            error_setg(errp, "max-workers must be between 1 and %d", INT_MAX);
            return false;
        }
    }
    if (chunk && json_object_has_member(perf, "max-chunk")) {
        int64_t c = json_object_get_int_member(perf, "max-chunk");
        if (c && c < cluster) {
            error_setg(errp, "Required max-chunk (%" PRId64 ") is less than backup "
                       "cluster size (%" PRId64 ")", c, cluster);
            return false;
        }
    }
    return true;
}

/*
 * The target's checks (QEMU's filter insertion), in QEMU's order. The filter's
 * name goes to *@filter_name.
 */
static bool check_target(JsonObject *args, BlockDriverState *target,
                         char **filter_name, GError **errp)
{
    static unsigned filter_count;
    const char *filter = opts_peek_str(args, "filter-node-name");

    if (filter && bdrv_find_node(filter)) {
        error_setg(errp, "Could not create node: Duplicate nodes with node-name='%s'",
                   filter);
        return false;
    }
    *filter_name = filter ? g_strdup(filter) :
                   g_strdup_printf("#block%03u", 100 + filter_count++ % 900);
    if (bdrv_is_read_only(target)) {
        error_setg(errp, "Could not create node: Block node is read-only");
    } else {
        backup_source_conflict(target, *filter_name, errp);
    }
    if (errp && *errp) {
        g_clear_pointer(filter_name, g_free);
        return false;
    }
    return true;
}

static int64_t backup_cluster_size(BlockDriverState *target)
{
    BlockDriverInfo bdi;

    if (bdrv_get_info(target, &bdi) == 0 && bdi.cluster_size > BACKUP_CLUSTER) {
        return bdi.cluster_size;
    }
    return BACKUP_CLUSTER;
}

/* Everything checked and set up: the job, not started yet; NULL with errp set. */
static BackupJob *backup_prepare(JsonObject *args, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *id = opts_peek_str(args, "job-id");
    BlockDriverState *src, *target;
    int sync = enum_index(qapi_mirror_sync_mode, opts_peek_str(args, "sync"));
    int mode = MODE_ON_SUCCESS;
    bool compress = opts_get_bool(args, "compress", false, NULL);
    int64_t len, speed, cluster;
    char *filter_name = NULL;
    BackupJob *b;

    src = find_node(device, errp);
    target = src ? find_node(opts_peek_str(args, "target"), errp) : NULL;
    if (!target || !check_bitmap(args, src, &sync, &mode, errp)) {
        return NULL;
    }
    if (src == target) {
        error_setg(errp, "Source and target cannot be the same");
        return NULL;
    }
    if (compress && !bdrv_supports_compressed_writes(bdrv_get_format_name(target))) {
        /* QEMU names the target's device, which a node has not */
        error_setg(errp, "Compression is not supported for this drive ");
        return NULL;
    }
    if (backup_target_busy(src, errp) || backup_target_busy(target, errp) ||
        qsd_block_job_busy(src, errp) || qsd_block_job_busy(target, errp)) {
        return NULL;
    }
    if (!check_x_perf(args, 0, false, errp)) {
        return NULL;
    }
    len = bdrv_getlength(src);
    if (len < 0) {
        error_setg_errno(errp, -len, "Unable to get length for '%s'", device);
        return NULL;
    }
    if (len != bdrv_getlength(target)) {
        error_setg(errp, "Source and target image have different sizes");
        return NULL;
    }
    cluster = backup_cluster_size(target);
    if (!check_target(args, target, &filter_name, errp)) {
        return NULL;
    }
    if (!check_x_perf(args, cluster, true, errp)) {
        g_free(filter_name);
        return NULL;
    }

    b = g_new0(BackupJob, 1);
    g_mutex_init(&b->lock);
    b->sync = sync;
    b->bitmap_mode = mode;
    b->compress = compress;
    b->len = len;
    b->cluster = cluster;
    b->bitmap = g_strdup(opts_peek_str(args, "bitmap"));
    b->filter_name = filter_name;
    b->job = block_job_create(id ? id : "", &backup_driver, b, backup_free,
                              opts_get_bool(args, "auto-finalize", true, NULL),
                              opts_get_bool(args, "auto-dismiss", true, NULL), errp);
    if (!b->job) {
        backup_free(b);
        return NULL;
    }
    block_job_set_error_policy(b->job, args);
    speed = json_object_has_member(args, "speed") ?
            json_object_get_int_member(args, "speed") : 0;
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        block_job_abandon(b->job);
        backup_free(b);
        return NULL;
    }
    job_set_speed(b->job, speed);
    {
        g_autofree char *desc = g_strdup_printf("backup job '%s'", id);

        if (bdrv_perm_attach_user(src, &b->src_use, desc, "source", b->job,
                                  BLK_PERM_CONSISTENT_READ,
                                  BLK_PERM_ALL & ~BLK_PERM_RESIZE, errp) < 0) {
            block_job_abandon(b->job);
            backup_free(b);
            return NULL;
        }
        /*
         * others may write too, as QEMU's target allows: a fleecing target
         * whose backing file is the source (which an export writes) needs it
         */
        if (bdrv_perm_attach_user(target, &b->target_use, desc, "target", b->job,
                                  BLK_PERM_WRITE, BLK_PERM_ALL & ~BLK_PERM_RESIZE,
                                  errp) < 0) {
            bdrv_perm_detach(src, &b->src_use);
            block_job_abandon(b->job);
            backup_free(b);
            return NULL;
        }
    }
    bdrv_ref(src);
    b->src = src;
    bdrv_ref(target);
    b->target = target;
    return b;
}

/* QEMU runs the command as a transaction of one action */
JsonNode *qmp_blockdev_backup(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_transaction_run_one("blockdev-backup", args, errp);
}

/*
 * ---- the transaction action: the job starts when the transaction commits ----
 * The source stays drained from the action to the transaction's end: jobs
 * using it show paused until then, as in QEMU.
 */

static void tx_backup_commit(void *data)
{
    BackupJob *b = data;
    GList *drained = g_steal_pointer(&b->drained);
    bool held = b->drain_held;

    backup_go(b);
    if (held) {
        jobs_drain_end(drained);
    }
}

static void tx_backup_abort(void *data)
{
    BackupJob *b = data;
    GList *drained = g_steal_pointer(&b->drained);
    bool held = b->drain_held;

    backup_unwind(b, true);
    if (held) {
        jobs_drain_end(drained);
    }
}

bool qsd_backup_action(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    BlockDriverState *src = device ? bdrv_find_node(device) : NULL;
    GList *drained = src ? jobs_drain_begin(src) : NULL;
    BackupJob *b = backup_prepare(args, errp);

    if (b && !backup_setup(b, errp)) {
        backup_unwind(b, true);
        b = NULL;
    }
    if (!b) {
        if (src) {
            jobs_drain_end(drained);
        }
        return false;
    }
    b->drained = drained;
    b->drain_held = src != NULL;
    qsd_tx_add(tx, tx_backup_commit, tx_backup_abort, b, NULL);
    return true;
}

/* ---- drive-backup: the same, into an image file it creates (or opens) ---- */

/*
 * Create (unless mode=existing) and open drive-backup's target as QEMU does:
 * in the source's format by default, its size; sync=top puts the source's
 * backing file under it, sync=none the source itself (the target's reads of
 * what was not copied fall through to it). A new node with an automatic name.
 */
static BlockDriverState *drive_backup_target(JsonObject *args, BlockDriverState *src,
                                             GError **errp)
{
    const char *file = opts_peek_str(args, "target");
    const char *mode = opts_peek_str(args, "mode");
    const char *fmt = opts_peek_str(args, "format");
    const char *sync = opts_peek_str(args, "sync");
    bool existing = mode && !strcmp(mode, "existing");
    BlockDriverState *source = NULL, *target;
    g_autoptr(JsonObject) opts = json_object_new();
    int flags = (bdrv_get_flags(src) & (BDRV_O_CACHE_MASK | BDRV_O_UNMAP)) |
                BDRV_O_RDWR | BDRV_O_NO_USER;

    if (!fmt && !existing) {
        fmt = bdrv_get_format_name(src);
    }
    if (!strcmp(sync, "top")) {
        source = bdrv_backing_child(src);
    } else if (!strcmp(sync, "none")) {
        source = src;
        flags |= BDRV_O_NO_BACKING;
    }
    if (!existing) {
        int64_t size = bdrv_getlength(src);
        BdrvImgCreateParams p = {
            .filename = file, .fmt = fmt, .size = size, .unsafe = true,
            .base_filename = source ? bdrv_get_filename(source) : NULL,
            .base_fmt = source ? bdrv_get_format_name(source) : NULL,
        };

        if (size < 0) {
            error_setg_errno(errp, -size, "Could not get image size");
            return NULL;
        }
        if (bdrv_img_create(&p, errp) < 0) {
            return NULL;
        }
    }
    if (fmt) {
        opts_set_str(opts, "driver", fmt);
    }
    target = bdrv_open(file, opts, flags, errp);
    if (target && !strcmp(sync, "none") && bdrv_set_backing(target, src, errp) < 0) {
        bdrv_unref(target);
        return NULL;
    }
    return target;
}

/* The blockdev-backup arguments for drive-backup's @args into @target. */
static JsonObject *backup_args_for(JsonObject *args, BlockDriverState *target)
{
    JsonObject *b = json_object_new();
    g_autoptr(GList) members = json_object_get_members(args);

    for (GList *m = members; m; m = m->next) {
        if (strcmp(m->data, "format") && strcmp(m->data, "mode")) {
            json_object_set_member(b, m->data,
                                   json_node_copy(json_object_get_member(args, m->data)));
        }
    }
    opts_set_str(b, "target", bdrv_get_node_name(target));
    return b;
}

/* drive-backup, a transaction action (the command is one too). */
static bool drive_backup(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    BlockDriverState *src = find_node(opts_peek_str(args, "device"), errp);
    g_autoptr(JsonObject) bargs = NULL;
    BlockDriverState *target;
    bool ok;

    if (!src) {
        return false;
    }
    target = drive_backup_target(args, src, errp);
    if (!target) {
        return false;
    }
    bargs = backup_args_for(args, target);
    ok = qsd_backup_action(bargs, tx, errp);
    bdrv_unref(target);     /* the job holds it, or it goes */
    return ok;
}

/* QEMU runs the command as a transaction of one action */
JsonNode *qmp_drive_backup(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_transaction_run_one("drive-backup", args, errp);
}

bool qsd_drive_backup_action(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    return drive_backup(args, tx, errp);
}
