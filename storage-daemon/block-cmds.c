/*
 * Block node commands: blockdev-add and --blockdev (with the BlockdevOptions
 * schema they are checked against), blockdev-del, query-named-block-nodes (the
 * BlockDeviceInfo fields libvirt reads, in QEMU's member order), block_resize
 * and block-set-write-threshold (with its BLOCK_WRITE_THRESHOLD event).
 * Keeps the list of nodes the monitor owns (those blockdev-add opened).
 */
#include "daemon.h"
#include "block/dirty-bitmap.h"
#include "qmp-commands.h"

static GList *owned_nodes;      /* BlockDriverState* opened by blockdev-add */

/* ---- the BlockdevOptions schema ---- */

static const char *const driver_values[] = {
    "blkdebug", "blkverify", "bochs", "compress", "copy-before-write", "copy-on-read",
    "file", "host_cdrom", "host_device", "luks", "null-aio", "null-co", "preallocate",
    "qcow2", "quorum", "raw", "snapshot-access", "throttle", NULL,
};
static const char *const read_pattern_values[] = { "quorum", "fifo", NULL };
static const char *const discard_values[] = { "ignore", "unmap", NULL };
static const char *const detect_zeroes_values[] = { "off", "on", "unmap", NULL };
static const char *const on_off_auto_values[] = { "auto", "on", "off", NULL };
static const char *const aio_values[] = { "threads", "native", "io_uring", NULL };

static const QArg cache_members[] = {
    { "direct", QT_BOOL, true, NULL, NULL, NULL },
    { "no-flush", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg blockdev_base[] = {
    { "driver", QT_ENUM, false, driver_values, NULL, NULL },
    { "node-name", QT_STR, true, NULL, NULL, NULL },
    { "discard", QT_ENUM, true, discard_values, NULL, NULL },
    { "cache", QT_STRUCT, true, NULL, cache_members, NULL },
    { "read-only", QT_BOOL, true, NULL, NULL, NULL },
    { "auto-read-only", QT_BOOL, true, NULL, NULL, NULL },
    { "force-share", QT_BOOL, true, NULL, NULL, NULL },
    { "detect-zeroes", QT_ENUM, true, detect_zeroes_values, NULL, NULL },
    QARG_END,
};

/* Inline child options ({"file": {...}}) are checked as BlockdevOptions too. */
static const QVariant blockdev_variants[19];

static const QArg file_members[] = {
    { "filename", QT_STR, false, NULL, NULL, NULL },
    { "pr-manager", QT_STR, true, NULL, NULL, NULL },
    { "locking", QT_ENUM, true, on_off_auto_values, NULL, NULL },
    { "aio", QT_ENUM, true, aio_values, NULL, NULL },
    { "aio-max-batch", QT_INT, true, NULL, NULL, NULL },
    { "drop-cache", QT_BOOL, true, NULL, NULL, NULL },
    { "x-check-cache-dropped", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg raw_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "offset", QT_INT, true, NULL, NULL, NULL },
    { "size", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg qcow2_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "backing", QT_REF_OR_NULL, true, NULL, blockdev_base, blockdev_variants },
    { "lazy-refcounts", QT_BOOL, true, NULL, NULL, NULL },
    { "pass-discard-request", QT_BOOL, true, NULL, NULL, NULL },
    { "pass-discard-snapshot", QT_BOOL, true, NULL, NULL, NULL },
    { "pass-discard-other", QT_BOOL, true, NULL, NULL, NULL },
    { "overlap-check", QT_ANY, true, NULL, NULL, NULL },
    { "cache-size", QT_INT, true, NULL, NULL, NULL },
    { "l2-cache-size", QT_INT, true, NULL, NULL, NULL },
    { "l2-cache-entry-size", QT_INT, true, NULL, NULL, NULL },
    { "refcount-cache-size", QT_INT, true, NULL, NULL, NULL },
    { "cache-clean-interval", QT_INT, true, NULL, NULL, NULL },
    { "encrypt", QT_ANY, true, NULL, NULL, NULL },
    { "data-file", QT_REF, true, NULL, blockdev_base, blockdev_variants },
    QARG_END,
};

static const QArg luks_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "key-secret", QT_STR, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg blkdebug_members[] = {
    { "image", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "config", QT_STR, true, NULL, NULL, NULL },
    { "align", QT_INT, true, NULL, NULL, NULL },
    { "max-transfer", QT_INT, true, NULL, NULL, NULL },
    { "opt-write-zero", QT_INT, true, NULL, NULL, NULL },
    { "max-write-zero", QT_INT, true, NULL, NULL, NULL },
    { "opt-discard", QT_INT, true, NULL, NULL, NULL },
    { "max-discard", QT_INT, true, NULL, NULL, NULL },
    { "inject-error", QT_ANY, true, NULL, NULL, NULL },
    { "set-state", QT_ANY, true, NULL, NULL, NULL },
    { "take-child-perms", QT_ANY, true, NULL, NULL, NULL },
    { "unshare-child-perms", QT_ANY, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg blkverify_members[] = {
    { "test", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "raw", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    QARG_END,
};

static const QArg null_members[] = {
    { "size", QT_INT, true, NULL, NULL, NULL },
    { "latency-ns", QT_SIZE, true, NULL, NULL, NULL },
    { "read-zeroes", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg filter_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    QARG_END,
};

static const QArg cor_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "bottom", QT_STR, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg preallocate_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "prealloc-align", QT_INT, true, NULL, NULL, NULL },
    { "prealloc-size", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg throttle_members[] = {
    { "throttle-group", QT_STR, false, NULL, NULL, NULL },
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    QARG_END,
};

static const QArg quorum_members[] = {
    { "blkverify", QT_BOOL, true, NULL, NULL, NULL },
    { "children", QT_ANY, false, NULL, NULL, NULL },
    { "vote-threshold", QT_INT, false, NULL, NULL, NULL },
    { "rewrite-corrupted", QT_BOOL, true, NULL, NULL, NULL },
    { "read-pattern", QT_ENUM, true, read_pattern_values, NULL, NULL },
    QARG_END,
};

static const QArg bitmap_ref_members[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};
static const char *const on_cbw_error_values[] = {
    "break-guest-write", "break-snapshot", NULL,
};

static const QArg cbw_members[] = {
    { "file", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "target", QT_REF, false, NULL, blockdev_base, blockdev_variants },
    { "bitmap", QT_STRUCT, true, NULL, bitmap_ref_members, NULL },
    { "on-cbw-error", QT_ENUM, true, on_cbw_error_values, NULL, NULL },
    { "cbw-timeout", QT_UINT32, true, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant blockdev_variants[19] = {
    { "blkdebug", blkdebug_members },
    { "blkverify", blkverify_members },
    { "bochs", filter_members },
    { "compress", filter_members },
    { "copy-before-write", cbw_members },
    { "copy-on-read", cor_members },
    { "file", file_members },
    { "host_cdrom", file_members },
    { "host_device", file_members },
    { "luks", luks_members },
    { "null-aio", null_members },
    { "null-co", null_members },
    { "preallocate", preallocate_members },
    { "qcow2", qcow2_members },
    { "quorum", quorum_members },
    { "raw", raw_members },
    { "snapshot-access", filter_members },
    { "throttle", throttle_members },
    { NULL, NULL },
};

const QArg qapi_blockdev_options = {
    "options", QT_UNION, false, NULL, blockdev_base, blockdev_variants,
};

const QArg qapi_blockdev_del_args[] = {
    { "node-name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_query_named_block_nodes_args[] = {
    { "flat", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_set_write_threshold_args[] = {
    { "node-name", QT_STR, false, NULL, NULL, NULL },
    { "write-threshold", QT_UINT64, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_resize_args[] = {
    { "device", QT_STR, true, NULL, NULL, NULL },
    { "node-name", QT_STR, true, NULL, NULL, NULL },
    { "size", QT_INT, false, NULL, NULL, NULL },
    QARG_END,
};

/* ---- blockdev-add / blockdev-del ---- */

/*
 * A node using @bs as its backing file, the one QEMU names ("node is used as
 * backing hd of 'x'": the newest such node, its op blocker being checked first).
 */
BlockDriverState *qsd_backing_parent(BlockDriverState *bs)
{
    BlockDriverState *found = NULL;

    for (BlockDriverState *n = bdrv_next_node(NULL); n; n = bdrv_next_node(n)) {
        if (bdrv_backing_child(n) == bs) {
            found = n;
        }
    }
    return found;
}


bool qsd_blockdev_add(JsonObject *opts, GError **errp)
{
    GError *local = NULL;
    BlockDriverState *bs;
    /* nobody uses the node yet: it takes locks when a parent or export attaches */
    int flags = BDRV_O_RDWR | BDRV_O_NO_USER;

    if (!opts_peek_str(opts, "node-name")) {
        error_setg(errp, "'node-name' must be specified for the root node");
        return false;
    }
    if (opts_get_bool(opts, "read-only", false, &local)) {
        flags &= ~BDRV_O_RDWR;
    }
    if (local) {
        error_propagate(errp, local);
        return false;
    }
    bs = bdrv_open(NULL, opts, flags, errp);
    if (!bs) {
        return false;
    }
    owned_nodes = g_list_append(owned_nodes, bs);
    return true;
}

JsonNode *qmp_blockdev_add(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_blockdev_add(args, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_blockdev_del(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *name = opts_peek_str(args, "node-name");
    BlockDriverState *bs = bdrv_find_node(name);

    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'", name);
        return NULL;
    }
    /* QEMU's order: in use by an export, busy (op blockers), not owned */
    if (qsd_export_uses_node(bs)) {
        error_setg(errp, "Node %s is in use", name);
        return NULL;
    }
    if (backup_target_busy(bs, errp) || qsd_block_job_blocks_del(bs, errp)) {
        return NULL;
    }
    if (qsd_backing_parent(bs)) {
        error_setg(errp, "Node '%s' is busy: node is used as backing hd of '%s'", name,
                   bdrv_get_node_name(qsd_backing_parent(bs)));
        return NULL;
    }
    if (!g_list_find(owned_nodes, bs)) {
        error_setg(errp, "Node %s is not owned by the monitor", name);
        return NULL;
    }
    if (bdrv_get_refcnt(bs) > 1) {
        error_setg(errp, "Block device %s is in use", name);
        return NULL;
    }
    owned_nodes = g_list_remove(owned_nodes, bs);
    bdrv_unref(bs);
    return qjson_empty_object();
}

void qsd_blockdev_close_all(void)
{
    /* newest first: a node added later may use one added earlier */
    GList *l = g_list_last(owned_nodes);

    while (l) {
        GList *prev = l->prev;
        bdrv_unref(l->data);
        l = prev;
    }
    g_list_free(owned_nodes);
    owned_nodes = NULL;
}

/* ---- query-named-block-nodes ---- */

static JsonObject *image_info(BlockDriverState *bs, bool flat, GError **errp)
{
    JsonObject *img = json_object_new();
    BlockDriverInfo bdi;
    BlockDriverState *backing = bdrv_backing_child(bs);
    const char *backing_file = bdrv_get_backing_filename(bs);
    const char *backing_fmt = bdrv_get_backing_format(bs);
    int64_t actual = bdrv_get_allocated_file_size(bs);
    JsonNode *spec;

    /* members in the order QEMU 7.2 prints them */
    if (backing && !flat) {
        JsonObject *b = image_info(backing, false, errp);
        if (!b) {
            json_object_unref(img);
            return NULL;
        }
        json_object_set_object_member(img, "backing-image", b);
    }
    if (backing_file && backing_fmt) {
        json_object_set_string_member(img, "backing-filename-format", backing_fmt);
    }
    json_object_set_int_member(img, "virtual-size", bdrv_getlength(bs));
    json_object_set_string_member(img, "filename", bdrv_get_filename(bs));
    if (bdrv_get_info(bs, &bdi) == 0 && bdi.cluster_size > 0) {
        json_object_set_int_member(img, "cluster-size", bdi.cluster_size);
    }
    json_object_set_string_member(img, "format", bdrv_get_format_name(bs));
    if (actual >= 0) {
        json_object_set_int_member(img, "actual-size", actual);
    }
    spec = bdrv_get_specific_info(bs, NULL);
    if (spec) {
        json_object_set_member(img, "format-specific", spec);
    }
    if (backing_file) {
        g_autofree char *full = backing ? g_strdup(bdrv_get_filename(backing)) :
                                bdrv_get_full_backing_filename(bs, NULL);
        if (full) {
            json_object_set_string_member(img, "full-backing-filename", full);
        }
        json_object_set_string_member(img, "backing-filename", backing_file);
    }
    /* only from a driver that answers for its info (QEMU: not null-co) */
    if (bdrv_get_info(bs, &bdi) == 0) {
        json_object_set_boolean_member(img, "dirty-flag", bdrv_is_dirty(bs));
    }
    return img;
}

static JsonObject *block_device_info(BlockDriverState *bs, bool flat, GError **errp)
{
    JsonObject *info, *cache, *img = image_info(bs, flat, errp);
    BlockDriverState *backing = bdrv_backing_child(bs);
    const char *dz = opts_peek_str(bdrv_get_options(bs), "detect-zeroes");
    int flags = bdrv_get_flags(bs);
    int depth = 0;

    if (!img) {
        return NULL;
    }
    for (BlockDriverState *b = backing; b; b = bdrv_backing_child(b)) {
        depth++;
    }
    info = json_object_new();
    json_object_set_int_member(info, "iops_rd", 0);
    json_object_set_string_member(info, "detect_zeroes", dz ? dz : "off");
    json_object_set_object_member(info, "image", img);
    json_object_set_int_member(info, "iops_wr", 0);
    json_object_set_boolean_member(info, "ro", bdrv_is_read_only(bs));
    json_object_set_string_member(info, "node-name", bdrv_get_node_name(bs));
    json_object_set_int_member(info, "backing_file_depth", depth);
    json_object_set_string_member(info, "drv", bdrv_get_format_name(bs));
    json_object_set_int_member(info, "iops", 0);
    json_object_set_int_member(info, "bps_wr", 0);
    json_object_set_int_member(info, "write_threshold",
                               (int64_t)bdrv_write_threshold_get(bs));
    {
        JsonArray *bitmaps = bdrv_query_dirty_bitmaps(bs);
        for (guint i = 0; bitmaps && i < json_array_get_length(bitmaps); i++) {
            JsonObject *o = json_array_get_object_element(bitmaps, i);
            const char *name = json_object_get_string_member(o, "name");

            /* an exported bitmap is busy */
            json_object_set_boolean_member(o, "busy", qsd_export_uses_bitmap(bs, name));
        }
        /* and those block jobs keep for themselves, as QEMU lists them */
        bitmaps = bdrv_anon_bitmaps_prepend(bs, bitmaps);
        if (bitmaps) {
            json_object_set_array_member(info, "dirty-bitmaps", bitmaps);
        }
    }
    if (backing) {
        json_object_set_string_member(info, "backing_file", bdrv_get_filename(backing));
    }
    json_object_set_boolean_member(info, "encrypted", bdrv_is_encrypted(bs));
    json_object_set_int_member(info, "bps", 0);
    json_object_set_int_member(info, "bps_rd", 0);
    cache = json_object_new();
    json_object_set_boolean_member(cache, "no-flush", !!(flags & BDRV_O_NO_FLUSH));
    json_object_set_boolean_member(cache, "direct", !!(flags & BDRV_O_NOCACHE));
    json_object_set_boolean_member(cache, "writeback", !(flags & BDRV_O_WRITETHROUGH));
    json_object_set_object_member(info, "cache", cache);
    json_object_set_string_member(info, "file", bdrv_get_filename(bs));
    return info;
}

JsonNode *qmp_query_named_block_nodes(JsonObject *args, Monitor *mon, GError **errp)
{
    bool flat = opts_get_bool(args, "flat", false, NULL);
    g_autoptr(GPtrArray) nodes = g_ptr_array_new();
    JsonArray *arr = json_array_new();
    JsonNode *n;

    for (BlockDriverState *bs = bdrv_next_node(NULL); bs; bs = bdrv_next_node(bs)) {
        g_ptr_array_add(nodes, bs);
    }
    /* QEMU lists the most recently named node first */
    for (guint i = nodes->len; i > 0; i--) {
        JsonObject *info = block_device_info(nodes->pdata[i - 1], flat, errp);
        if (!info) {
            json_array_unref(arr);
            return NULL;
        }
        json_array_add_object_element(arr, info);
    }
    n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, arr);
    return n;
}

/* ---- block_resize ---- */

JsonNode *qmp_block_resize(JsonObject *args, Monitor *mon, GError **errp)
{
    static const char resize_user;
    const char *device = opts_peek_str(args, "device");
    const char *node = opts_peek_str(args, "node-name");
    int64_t size = json_object_get_int_member(args, "size");
    BlockDriverState *bs = node ? bdrv_find_node(node) : NULL;
    int ret;

    if (!bs) {
        /* the daemon has no devices (BlockBackends): only node names resolve */
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                   device ? device : "", node ? node : "");
        return NULL;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return NULL;
    }
    if (qsd_backup_blocks_resize(bs, errp) || qsd_block_job_blocks_resize(bs, errp)) {
        return NULL;
    }
    if (qsd_backing_parent(bs)) {
        /* QEMU's op blocker on a backing file, in block_resize's words */
        error_setg(errp, "Device '%s' is in use", device ? device : "(null)");
        return NULL;
    }
    if (size % BDRV_SECTOR_SIZE) {
        error_setg(errp, "The new size must be a multiple of %d", (int)BDRV_SECTOR_SIZE);
        return NULL;
    }
    /* as QEMU's: a user that resizes, for the time of the resize (locks follow) */
    if (bdrv_perm_attach(bs, &resize_user, BLK_PERM_RESIZE, BLK_PERM_ALL, errp) < 0) {
        return NULL;
    }
    ret = bdrv_truncate(bs, size, false, PREALLOC_MODE_OFF, 0, errp);
    bdrv_perm_detach(bs, &resize_user);
    return ret < 0 ? NULL : qjson_empty_object();
}

/* ---- block-set-write-threshold ---- */

typedef struct ThresholdEvent {
    char *node_name;
    uint64_t threshold, exceeded;
} ThresholdEvent;

/* Main loop: the event, in QEMU's member order. */
static gboolean threshold_event(gpointer p)
{
    ThresholdEvent *e = p;
    JsonObject *data = json_object_new();

    json_object_set_string_member(data, "node-name", e->node_name);
    json_object_set_int_member(data, "write-threshold", (int64_t)e->threshold);
    json_object_set_int_member(data, "amount-exceeded", (int64_t)e->exceeded);
    qsd_emit_event("BLOCK_WRITE_THRESHOLD", data);
    g_free(e->node_name);
    g_free(e);
    return G_SOURCE_REMOVE;
}

/* Any thread (the request's): the event goes out from the main loop. */
static void threshold_crossed(const char *node_name, uint64_t threshold, uint64_t exceeded)
{
    ThresholdEvent *e = g_new0(ThresholdEvent, 1);

    e->node_name = g_strdup(node_name);
    e->threshold = threshold;
    e->exceeded = exceeded;
    g_idle_add(threshold_event, e);
}

JsonNode *qmp_block_set_write_threshold(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *node = opts_peek_str(args, "node-name");
    BlockDriverState *bs = bdrv_find_node(node);

    if (!bs) {
        error_setg(errp, "Device '%s' not found", node);
        return NULL;
    }
    bdrv_write_threshold_set_notify(threshold_crossed);
    bdrv_write_threshold_set(bs, (uint64_t)json_object_get_int_member(args,
                                                                      "write-threshold"));
    return qjson_empty_object();
}
