/*
 * drive-mirror: blockdev-mirror into an image file the command creates (or
 * opens, mode=existing), QEMU 7.2's argument schema (DriveMirror) and its
 * checks in its order (compared with Debian's daemon). The target is created
 * in the source's format by default, with the source's size, over nothing
 * (sync=full), the source (sync=none) or the source's backing file (top); it
 * is opened without its backing file, which it gets at the pivot. The job
 * itself is blockdev-mirror's (block-jobs.c).
 */
#include "daemon.h"
#include "qmp-commands.h"

const QArg qapi_drive_mirror_args[] = {
    { "job-id", QT_STR, true, NULL, NULL, NULL },
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "target", QT_STR, false, NULL, NULL, NULL },
    { "format", QT_STR, true, NULL, NULL, NULL },
    { "node-name", QT_STR, true, NULL, NULL, NULL },
    { "replaces", QT_STR, true, NULL, NULL, NULL },
    { "sync", QT_ENUM, false, qapi_mirror_sync_mode, NULL, NULL },
    { "mode", QT_ENUM, true, qapi_new_image_mode, NULL, NULL },
    { "speed", QT_INT, true, NULL, NULL, NULL },
    { "granularity", QT_UINT32, true, NULL, NULL, NULL },
    { "buf-size", QT_INT, true, NULL, NULL, NULL },
    { "on-source-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "on-target-error", QT_ENUM, true, qapi_blockdev_on_error, NULL, NULL },
    { "unmap", QT_BOOL, true, NULL, NULL, NULL },
    { "copy-mode", QT_ENUM, true, qapi_mirror_copy_mode, NULL, NULL },
    { "auto-finalize", QT_BOOL, true, NULL, NULL, NULL },
    { "auto-dismiss", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

/* What the target image goes over: nothing, the source, or its backing file. */
static BlockDriverState *target_backing(BlockDriverState *bs, const char *sync)
{
    if (!strcmp(sync, "full")) {
        return NULL;
    }
    return !strcmp(sync, "none") ? bs : bdrv_backing_child(bs);
}

static bool create_target(JsonObject *args, BlockDriverState *bs, const char *fmt,
                          GError **errp)
{
    BlockDriverState *backing = target_backing(bs, opts_peek_str(args, "sync"));
    int64_t size = bdrv_getlength(bs);
    BdrvImgCreateParams p = {
        .filename = opts_peek_str(args, "target"),
        .fmt = fmt,
        .size = size,
        .unsafe = true,
        .base_filename = backing ? bdrv_get_filename(backing) : NULL,
        .base_fmt = backing ? bdrv_get_format_name(backing) : NULL,
    };

    if (size < 0) {
        error_setg_errno(errp, -size, "Could not get image size");
        return false;
    }
    return bdrv_img_create(&p, errp) == 0;
}

/* blockdev-mirror's arguments for drive-mirror's @args into @target. */
static JsonObject *mirror_args_for(JsonObject *args, BlockDriverState *target)
{
    static const char *const drive_only[] = { "format", "mode", "node-name", "unmap", NULL };
    JsonObject *m = json_object_new();
    g_autoptr(GList) members = json_object_get_members(args);

    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(drive_only, l->data)) {
            json_object_set_member(m, l->data,
                                   json_node_copy(json_object_get_member(args, l->data)));
        }
    }
    opts_set_str(m, "target", bdrv_get_node_name(target));
    return m;
}

JsonNode *qmp_drive_mirror(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *fmt = opts_peek_str(args, "format");
    const char *mode = opts_peek_str(args, "mode");
    const char *node_name = opts_peek_str(args, "node-name");
    bool existing = mode && !strcmp(mode, "existing");
    BlockDriverState *bs = bdrv_find_node(device), *target;
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(JsonObject) margs = NULL;
    int flags;
    bool ok;

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return NULL;
    }
    if (!qsd_mirror_source_ok(bs, errp)) {
        return NULL;
    }
    if (!fmt && !existing) {
        fmt = bdrv_get_format_name(bs);
    }
    if (json_object_has_member(args, "replaces") && !node_name) {
        error_setg(errp, "a node-name must be provided when replacing a named node "
                   "of the graph");
        return NULL;
    }
    if (!existing && !create_target(args, bs, fmt, errp)) {
        return NULL;
    }
    if (fmt) {
        opts_set_str(opts, "driver", fmt);
    }
    if (node_name) {
        opts_set_str(opts, "node-name", node_name);
    }
    flags = (bdrv_get_flags(bs) & (BDRV_O_CACHE_MASK | BDRV_O_UNMAP)) | BDRV_O_RDWR |
            BDRV_O_NO_USER | BDRV_O_NO_BACKING;
    target = bdrv_open(opts_peek_str(args, "target"), opts, flags, errp);
    if (!target) {
        return NULL;
    }
    margs = mirror_args_for(args, target);
    ok = qsd_drive_mirror_start(margs, target_backing(bs, opts_peek_str(args, "sync")),
                                !existing, errp);
    bdrv_unref(target);     /* the job holds it, or it goes */
    return ok ? qjson_empty_object() : NULL;
}
