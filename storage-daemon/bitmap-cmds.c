/*
 * Dirty bitmap QMP commands: block-dirty-bitmap-add, -remove, -clear, -enable,
 * -disable, -merge and x-debug-block-dirty-bitmap-sha256, with their argument
 * schemas and QEMU 7.2's checks in its order (node, bitmap, busy, read-only,
 * inconsistent) and messages. The bitmaps themselves live in the block core
 * (block/dirty-bitmap.c; persistent ones in the format driver).
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "block/dirty-bitmap.h"

const QArg qapi_block_dirty_bitmap_add_args[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    { "granularity", QT_UINT32, true, NULL, NULL, NULL },
    { "persistent", QT_BOOL, true, NULL, NULL, NULL },
    { "disabled", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_dirty_bitmap_args[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_dirty_bitmap_merge_args[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "target", QT_STR, false, NULL, NULL, NULL },
    { "bitmaps", QT_ANY, false, NULL, NULL, NULL },
    QARG_END,
};

/* What an operation needs of a bitmap (QEMU's BDRV_BITMAP_* check flags). */
enum {
    CHECK_BUSY = 1,
    CHECK_RO = 2,
    CHECK_INCONSISTENT = 4,
    CHECK_DEFAULT = CHECK_BUSY | CHECK_RO | CHECK_INCONSISTENT,
    CHECK_ALLOW_RO = CHECK_BUSY | CHECK_INCONSISTENT,
};

static BlockDriverState *lookup_node(const char *node, GError **errp)
{
    BlockDriverState *bs = bdrv_find_node(node);

    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
    }
    return bs;
}

/* Find bitmap @name of @bs and check it may be used as @flags says. */
static bool lookup_bitmap(BlockDriverState *bs, const char *name, unsigned flags,
                          BdrvDirtyBitmapDesc *d, GError **errp)
{
    if (!bdrv_dirty_bitmap_describe(bs, name, d)) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return false;
    }
    if ((flags & CHECK_BUSY) && qsd_export_uses_bitmap(bs, name)) {
        error_setg(errp, "Bitmap '%s' is currently in use by another operation and "
                   "cannot be used", name);
        return false;
    }
    if ((flags & CHECK_RO) && d->readonly) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified", name);
        return false;
    }
    if ((flags & CHECK_INCONSISTENT) && d->inconsistent) {
        /* QMP shows no hint ("Try block-dirty-bitmap-remove ...") */
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used", name);
        return false;
    }
    return true;
}

static BlockDriverState *lookup(JsonObject *args, unsigned flags, BdrvDirtyBitmapDesc *d,
                                GError **errp)
{
    BlockDriverState *bs = lookup_node(json_object_get_string_member(args, "node"), errp);

    if (!bs || !lookup_bitmap(bs, json_object_get_string_member(args, "name"), flags, d,
                              errp)) {
        return NULL;
    }
    return bs;
}

JsonNode *qmp_block_dirty_bitmap_add(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *node = json_object_get_string_member(args, "node");
    const char *name = json_object_get_string_member(args, "name");
    uint64_t gran = 0;
    BlockDriverState *bs;

    if (!*name) {
        error_setg(errp, "Bitmap name cannot be empty");
        return NULL;
    }
    bs = bdrv_find_node(node);
    if (!bs) {
        /* the daemon has no devices: only node names resolve */
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", node, node);
        return NULL;
    }
    if (json_object_has_member(args, "granularity")) {
        gran = json_object_get_int_member(args, "granularity");
        if (gran < 512 || (gran & (gran - 1))) {
            error_setg(errp, "Granularity must be power of 2 and at least 512");
            return NULL;
        }
    }
    if (bdrv_dirty_bitmap_add(bs, name, gran,
                              opts_get_bool(args, "persistent", false, NULL),
                              opts_get_bool(args, "disabled", false, NULL), errp) < 0) {
        return NULL;
    }
    return qjson_empty_object();
}

JsonNode *qmp_block_dirty_bitmap_remove(JsonObject *args, Monitor *mon, GError **errp)
{
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_BUSY | CHECK_RO, &d, errp);

    if (!bs || bdrv_dirty_bitmap_remove(bs, json_object_get_string_member(args, "name"),
                                        errp) < 0) {
        return NULL;
    }
    return qjson_empty_object();
}

JsonNode *qmp_block_dirty_bitmap_clear(JsonObject *args, Monitor *mon, GError **errp)
{
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_DEFAULT, &d, errp);

    if (!bs || bdrv_dirty_bitmap_clear(bs, json_object_get_string_member(args, "name"),
                                       errp) < 0) {
        return NULL;
    }
    return qjson_empty_object();
}

static JsonNode *set_recording(JsonObject *args, bool recording, GError **errp)
{
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_ALLOW_RO, &d, errp);

    if (!bs || bdrv_dirty_bitmap_set_recording(bs,
                                               json_object_get_string_member(args, "name"),
                                               recording, errp) < 0) {
        return NULL;
    }
    return qjson_empty_object();
}

JsonNode *qmp_block_dirty_bitmap_enable(JsonObject *args, Monitor *mon, GError **errp)
{
    return set_recording(args, true, errp);
}

JsonNode *qmp_block_dirty_bitmap_disable(JsonObject *args, Monitor *mon, GError **errp)
{
    return set_recording(args, false, errp);
}

static const QArg bitmap_ref_members[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

/* Check the "bitmaps" list (BlockDirtyBitmapOrStr items) as QEMU's visitor does. */
static JsonArray *check_bitmap_list(JsonObject *args, GError **errp)
{
    JsonNode *list = json_object_get_member(args, "bitmaps");
    JsonArray *arr;

    if (!JSON_NODE_HOLDS_ARRAY(list)) {
        error_setg(errp, "Invalid parameter type for 'bitmaps', expected: array");
        return NULL;
    }
    arr = json_node_get_array(list);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *n = json_array_get_element(arr, i);
        g_autofree char *where = g_strdup_printf("bitmaps[%u]", i);

        if (JSON_NODE_HOLDS_OBJECT(n)) {
            if (!qapi_check(json_node_get_object(n), bitmap_ref_members, where, errp)) {
                return NULL;
            }
        } else if (!JSON_NODE_HOLDS_VALUE(n) ||
                   json_node_get_value_type(n) != G_TYPE_STRING) {
            /* sic: QEMU names list items 'null' */
            error_setg(errp, "Invalid parameter type for 'null', expected: "
                       "BlockDirtyBitmapOrStr");
            return NULL;
        }
    }
    return arr;
}

JsonNode *qmp_block_dirty_bitmap_merge(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *target = json_object_get_string_member(args, "target");
    g_autoptr(BdrvBitmapBits) acc = NULL;
    BdrvDirtyBitmapDesc td;
    BlockDriverState *bs;
    JsonArray *arr = check_bitmap_list(args, errp);

    if (!arr) {
        return NULL;
    }
    bs = lookup_node(json_object_get_string_member(args, "node"), errp);
    if (!bs || !lookup_bitmap(bs, target, CHECK_DEFAULT, &td, errp)) {
        return NULL;
    }
    acc = bdrv_dirty_bitmap_get_bits(bs, target, errp);
    if (!acc) {
        return NULL;
    }
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *n = json_array_get_element(arr, i);
        BlockDriverState *src_bs = bs;
        const char *src;
        g_autoptr(BdrvBitmapBits) bits = NULL;
        BdrvDirtyBitmapDesc sd;

        if (JSON_NODE_HOLDS_OBJECT(n)) {
            JsonObject *o = json_node_get_object(n);

            src_bs = lookup_node(json_object_get_string_member(o, "node"), errp);
            if (!src_bs) {
                return NULL;
            }
            src = json_object_get_string_member(o, "name");
        } else {
            src = json_node_get_string(n);
        }
        if (!lookup_bitmap(src_bs, src, CHECK_ALLOW_RO, &sd, errp)) {
            return NULL;
        }
        if (sd.size != td.size) {
            error_setg(errp, "Bitmaps are of different sizes (destination size is %"
                       PRId64 ", source size is %" PRId64 ") and can't be merged",
                       td.size, sd.size);
            return NULL;
        }
        bits = bdrv_dirty_bitmap_get_bits(src_bs, src, errp);
        if (!bits) {
            return NULL;
        }
        bdrv_bitmap_bits_or(acc, bits);
    }
    if (bdrv_dirty_bitmap_set_bits(bs, target, acc, errp) < 0) {
        return NULL;
    }
    return qjson_empty_object();
}

JsonNode *qmp_x_debug_block_dirty_bitmap_sha256(JsonObject *args, Monitor *mon,
                                                GError **errp)
{
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, 0, &d, errp);
    g_autoptr(BdrvBitmapBits) bits = NULL;
    g_autofree char *sum = NULL;
    JsonObject *o;

    if (!bs) {
        return NULL;
    }
    bits = bdrv_dirty_bitmap_get_bits(bs, json_object_get_string_member(args, "name"),
                                      errp);
    if (!bits) {
        return NULL;
    }
    sum = bdrv_bitmap_bits_sha256(bits);
    o = json_object_new();
    json_object_set_string_member(o, "sha256", sum);
    return qjson_object_node(o);
}
