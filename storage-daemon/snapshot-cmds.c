/*
 * External snapshots: blockdev-snapshot-sync (creates the overlay image, or
 * opens an existing one, and puts it on top of a node) and blockdev-snapshot
 * (a node added with "backing": null goes on top), as commands and as
 * transaction actions. QEMU 7.2's argument schemas, its checks in its order
 * and its messages (compared with Debian's daemon). Putting the overlay on
 * top moves the node's exports onto it and makes the node its backing file;
 * once the transaction commits, the old node turns read-only in place
 * (block/read-only.c); an abort puts everything back. An overlay that
 * blockdev-snapshot-sync opened is held only by what uses it: with no export
 * on the node, it is closed again right away, as in QEMU's daemon.
 * Also change-backing-file, which rewrites the backing file name in the header
 * of an image of a chain (after a snapshot, say), the graph left as it is.
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "transaction.h"

const QArg qapi_blockdev_snapshot_sync_args[] = {
    { "device", QT_STR, true, NULL, NULL, NULL },
    { "node-name", QT_STR, true, NULL, NULL, NULL },
    { "snapshot-file", QT_STR, false, NULL, NULL, NULL },
    { "snapshot-node-name", QT_STR, true, NULL, NULL, NULL },
    { "format", QT_STR, true, NULL, NULL, NULL },
    { "mode", QT_ENUM, true, qapi_new_image_mode, NULL, NULL },
    QARG_END,
};

const QArg qapi_change_backing_file_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "image-node-name", QT_STR, false, NULL, NULL, NULL },
    { "backing-file", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_blockdev_snapshot_args[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "overlay", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

typedef struct Snapshot {
    BlockDriverState *old;      /* the node snapshotted: the overlay's backing */
    BlockDriverState *overlay;
    bool opened;                /* blockdev-snapshot-sync's: ours to drop */
} Snapshot;

/* QEMU's op blockers for an external snapshot of @bs: a backing file, a job's. */
static bool node_busy(BlockDriverState *bs, GError **errp)
{
    BlockDriverState *parent = qsd_backing_parent(bs);

    if (parent) {
        error_setg(errp, "Node '%s' is busy: node is used as backing hd of '%s'",
                   bdrv_get_node_name(bs), bdrv_get_node_name(parent));
        return true;
    }
    return qsd_block_job_busy(bs, errp) || backup_target_busy(bs, errp);
}

/* Is @bs some node's file or data file (QEMU: the overlay is not a root)? */
static bool used_as_file(BlockDriverState *bs)
{
    for (BlockDriverState *n = bdrv_next_node(NULL); n; n = bdrv_next_node(n)) {
        if (bdrv_file_child(n) == bs || bdrv_data_file_child(n) == bs) {
            return true;
        }
    }
    return false;
}

static bool overlay_usable(BlockDriverState *overlay, GError **errp)
{
    if (qsd_export_uses_node(overlay) || used_as_file(overlay)) {
        error_setg(errp, "The overlay is already in use");
        return false;
    }
    if (bdrv_backing_child(overlay)) {
        error_setg(errp, "The overlay already has a backing image");
        return false;
    }
    if (!bdrv_supports_backing(overlay)) {
        error_setg(errp, "The overlay does not support backing images");
        return false;
    }
    return true;
}

static void snapshot_free(void *p)
{
    Snapshot *s = p;

    if (s->opened) {
        /* with no export on it, nothing else holds the overlay: it goes */
        bdrv_unref(s->overlay);
    }
    g_free(s);
}

static void snapshot_commit(void *p)
{
    Snapshot *s = p;
    g_autoptr(GError) err = NULL;

    if (bdrv_make_read_only(s->old, &err) < 0) {
        /* QEMU cannot fail here either: what stays on disk is in use, not wrong */
        error_report("Could not make '%s' read-only: %s", bdrv_get_node_name(s->old),
                     err->message);
    }
}

static void snapshot_abort(void *p)
{
    Snapshot *s = p;

    /* the old node may be held only by the overlay now: keep it meanwhile */
    bdrv_ref(s->old);
    bdrv_set_backing(s->overlay, NULL, NULL);
    bdrv_replace_in_parents(s->overlay, s->old, NULL);
    qsd_export_replace_node(s->overlay, s->old);
    bdrv_unref(s->old);
}

/*
 * Put @s->overlay on top of @s->old: its users (exports, and nodes using it as
 * their file: QEMU moves every parent) move over, then the backing link.
 */
static bool snapshot_append(Snapshot *s, QsdTransaction *tx, GError **errp)
{
    bool ok;

    /* the old node may be held only by its users: keep it meanwhile */
    bdrv_ref(s->old);
    qsd_export_replace_node(s->old, s->overlay);
    ok = bdrv_replace_in_parents(s->old, s->overlay, errp) == 0 &&
         bdrv_set_backing(s->overlay, s->old, errp) == 0;
    if (!ok) {
        bdrv_replace_in_parents(s->overlay, s->old, NULL);
        qsd_export_replace_node(s->overlay, s->old);
    }
    bdrv_unref(s->old);
    if (!ok) {
        snapshot_free(s);
        return false;
    }
    qsd_tx_add(tx, snapshot_commit, snapshot_abort, s, snapshot_free);
    return true;
}

/* Create the overlay image as QEMU's daemon does: qemu-img create's way,
 * with the node's file name and format as its backing file, its size. */
static bool create_overlay(BlockDriverState *old, const char *file, const char *fmt,
                           GError **errp)
{
    int64_t size = bdrv_getlength(old);
    BdrvImgCreateParams p = {
        .filename = file,
        .fmt = fmt,
        .base_filename = bdrv_get_filename(old),
        .base_fmt = bdrv_get_format_name(old),
        .size = size,
        .unsafe = true,         /* format and size are known: QEMU opens nothing */
    };

    if (size < 0) {
        error_setg_errno(errp, -size, "Could not get image size");
        return false;
    }
    return bdrv_img_create(&p, errp) == 0;
}

bool qsd_snapshot_sync(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *node_name = opts_peek_str(args, "node-name");
    const char *file = opts_peek_str(args, "snapshot-file");
    const char *new_name = opts_peek_str(args, "snapshot-node-name");
    const char *fmt = opts_peek_str(args, "format");
    const char *mode = opts_peek_str(args, "mode");
    g_autoptr(JsonObject) opts = json_object_new();
    BlockDriverState *bs = node_name ? bdrv_find_node(node_name) : NULL;
    Snapshot *s;
    int flags;

    /* the daemon has no devices (BlockBackends with names): nodes only */
    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   device ? device : "", node_name ? node_name : "");
        return false;
    }
    if (node_busy(bs, errp)) {
        return false;
    }
    if (node_name && !new_name) {
        error_setg(errp, "New overlay node-name missing");
        return false;
    }
    if (new_name && bdrv_find_node(new_name)) {
        error_setg(errp, "New overlay node-name already in use");
        return false;
    }
    fmt = fmt ? fmt : "qcow2";
    if (!bdrv_find_format(fmt)) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return false;
    }
    if ((!mode || strcmp(mode, "existing")) && !create_overlay(bs, file, fmt, errp)) {
        return false;
    }
    opts_set_str(opts, "driver", fmt);
    if (new_name) {
        opts_set_str(opts, "node-name", new_name);
    }
    /* as the node was opened, without the overlay's own backing file */
    flags = (bdrv_get_flags(bs) & (BDRV_O_RDWR | BDRV_O_CACHE_MASK | BDRV_O_UNMAP)) |
            BDRV_O_NO_USER | BDRV_O_NO_BACKING;
    s = g_new0(Snapshot, 1);
    s->old = bs;
    s->overlay = bdrv_open(file, opts, flags, errp);
    if (!s->overlay) {
        g_free(s);
        return false;
    }
    s->opened = true;
    if (!overlay_usable(s->overlay, errp)) {
        snapshot_free(s);
        return false;
    }
    return snapshot_append(s, tx, errp);
}

bool qsd_snapshot(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *node = opts_peek_str(args, "node");
    const char *overlay_name = opts_peek_str(args, "overlay");
    BlockDriverState *bs = bdrv_find_node(node), *overlay;
    Snapshot *s;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", node, node);
        return false;
    }
    overlay = bdrv_find_node(overlay_name);
    if (!overlay) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", overlay_name,
                   overlay_name);
        return false;
    }
    if (node_busy(bs, errp) || !overlay_usable(overlay, errp)) {
        return false;
    }
    s = g_new0(Snapshot, 1);
    s->old = bs;
    s->overlay = overlay;
    return snapshot_append(s, tx, errp);
}

JsonNode *qmp_blockdev_snapshot_sync(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_transaction_run_one("blockdev-snapshot-sync", args, errp);
}

JsonNode *qmp_blockdev_snapshot(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_transaction_run_one("blockdev-snapshot", args, errp);
}

/* ---- change-backing-file ---- */

/* Is @image in the backing chain of @top (itself included)? */
static bool in_chain_of(BlockDriverState *top, BlockDriverState *image)
{
    for (BlockDriverState *l = top; l; l = bdrv_backing_child(l)) {
        if (l == image) {
            return true;
        }
    }
    return false;
}

JsonNode *qmp_change_backing_file(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *image_name = opts_peek_str(args, "image-node-name");
    const char *file = opts_peek_str(args, "backing-file");
    BlockDriverState *bs = bdrv_find_node(device), *image, *backing;
    bool reopened = false;
    int ret;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return NULL;
    }
    if (qsd_backing_parent(bs) || used_as_file(bs)) {
        error_setg(errp, "Need a root block node");
        return NULL;
    }
    image = bdrv_find_node(image_name);
    if (!image) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", image_name);
        return NULL;
    }
    backing = bdrv_backing_child(image);
    if (!backing) {
        error_setg(errp, "not allowing backing file change on an image without a "
                   "backing file");
        return NULL;
    }
    if (!in_chain_of(bs, image)) {
        error_setg(errp, "image file not in chain");
        return NULL;
    }
    if (qsd_block_job_busy(image, errp)) {
        return NULL;
    }
    /* a node a snapshot made read-only is written for the while, as QEMU's
     * reopens it read-write */
    if (bdrv_is_read_only_in_place(image)) {
        if (bdrv_make_writable_again(image, errp) < 0) {
            return NULL;
        }
        reopened = true;
    }
    ret = bdrv_change_backing_file(image, file, bdrv_get_format_name(backing));
    if (reopened) {
        bdrv_make_read_only(image, NULL);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not change backing file to '%s'", file);
        return NULL;
    }
    /* the header no longer names the backing node: its json: name shows it */
    bdrv_refresh_filenames_above(backing);
    return qjson_empty_object();
}
