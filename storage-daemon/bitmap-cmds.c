/*
 * Dirty bitmap QMP commands: block-dirty-bitmap-add, -remove, -clear, -enable,
 * -disable, -merge and x-debug-block-dirty-bitmap-sha256, with their argument
 * schemas and QEMU 7.2's checks in its order (node, bitmap, busy, read-only,
 * inconsistent) and messages; each also runs as a transaction action, leaving
 * what undoes it. The bitmaps themselves live in the block core
 * (block/dirty-bitmap.c; persistent ones in the format driver).
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "transaction.h"
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

static const QArg bitmap_ref_members[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

static const char *const bitmap_or_str[] = { "BlockDirtyBitmapOrStr", NULL };

const QArg qapi_block_dirty_bitmap_merge_args[] = {
    { "node", QT_STR, false, NULL, NULL, NULL },
    { "target", QT_STR, false, NULL, NULL, NULL },
    { "bitmaps", QT_ALT_LIST, false, bitmap_or_str, bitmap_ref_members, NULL },
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
                          QsdTransaction *tx, BdrvDirtyBitmapDesc *d, GError **errp)
{
    if (!bdrv_dirty_bitmap_describe(bs, name, d)) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return false;
    }
    if ((flags & CHECK_BUSY) &&
        (qsd_export_uses_bitmap(bs, name) || qsd_tx_removing(tx, bs, name))) {
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

static BlockDriverState *lookup(JsonObject *args, unsigned flags, QsdTransaction *tx,
                                BdrvDirtyBitmapDesc *d, GError **errp)
{
    BlockDriverState *bs = lookup_node(json_object_get_string_member(args, "node"), errp);

    if (!bs || !lookup_bitmap(bs, json_object_get_string_member(args, "name"), flags, tx,
                              d, errp)) {
        return NULL;
    }
    return bs;
}

/* ---- what undoes or finishes an action in a transaction ---- */

typedef struct BitmapUndo {
    BlockDriverState *bs;
    char *name;
    BdrvBitmapBits *bits;   /* the bits before the action */
    bool recording;         /* the recording state before the action */
} BitmapUndo;

static BitmapUndo *undo_new(BlockDriverState *bs, const char *name)
{
    BitmapUndo *u = g_new0(BitmapUndo, 1);

    u->bs = bs;
    u->name = g_strdup(name);
    return u;
}

static void undo_free(void *data)
{
    BitmapUndo *u = data;

    bdrv_bitmap_bits_free(u->bits);
    g_free(u->name);
    g_free(u);
}

static void undo_add(void *data)
{
    BitmapUndo *u = data;

    bdrv_dirty_bitmap_remove(u->bs, u->name, NULL);
}

static void undo_bits(void *data)
{
    BitmapUndo *u = data;

    bdrv_dirty_bitmap_set_bits(u->bs, u->name, u->bits, NULL);
}

static void undo_recording(void *data)
{
    BitmapUndo *u = data;

    bdrv_dirty_bitmap_set_recording(u->bs, u->name, u->recording, NULL);
}

static void commit_remove(void *data)
{
    BitmapUndo *u = data;
    g_autoptr(GError) err = NULL;

    if (bdrv_dirty_bitmap_remove(u->bs, u->name, &err) < 0) {
        error_report("transaction: removing bitmap '%s': %s", u->name, err->message);
    }
}

/* Keep @name's bits, to be put back if the transaction fails. */
static bool save_bits(QsdTransaction *tx, BlockDriverState *bs, const char *name,
                      GError **errp)
{
    BitmapUndo *u;

    if (!tx) {
        return true;
    }
    u = undo_new(bs, name);
    u->bits = bdrv_dirty_bitmap_get_bits(bs, name, errp);
    if (!u->bits) {
        undo_free(u);
        return false;
    }
    qsd_tx_add(tx, NULL, undo_bits, u, undo_free);
    return true;
}

/* ---- the actions ---- */

bool qsd_bitmap_add(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *node = json_object_get_string_member(args, "node");
    const char *name = json_object_get_string_member(args, "name");
    uint64_t gran = 0;
    BlockDriverState *bs;

    if (!*name) {
        error_setg(errp, "Bitmap name cannot be empty");
        return false;
    }
    bs = bdrv_find_node(node);
    if (!bs) {
        /* the daemon has no devices: only node names resolve */
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", node, node);
        return false;
    }
    if (json_object_has_member(args, "granularity")) {
        gran = json_object_get_int_member(args, "granularity");
        if (gran < 512 || (gran & (gran - 1))) {
            error_setg(errp, "Granularity must be power of 2 and at least 512");
            return false;
        }
    }
    if (bdrv_dirty_bitmap_add(bs, name, gran,
                              opts_get_bool(args, "persistent", false, NULL),
                              opts_get_bool(args, "disabled", false, NULL), errp) < 0) {
        return false;
    }
    if (tx) {
        qsd_tx_add(tx, NULL, undo_add, undo_new(bs, name), undo_free);
    }
    return true;
}

/* In a transaction the bitmap stays (busy) until the commit, which removes it. */
bool qsd_bitmap_remove(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *name = json_object_get_string_member(args, "name");
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_BUSY | CHECK_RO, tx, &d, errp);

    if (!bs) {
        return false;
    }
    if (tx) {
        qsd_tx_mark_removing(tx, bs, name);
        qsd_tx_add(tx, commit_remove, NULL, undo_new(bs, name), undo_free);
        return true;
    }
    return bdrv_dirty_bitmap_remove(bs, name, errp) == 0;
}

bool qsd_bitmap_clear(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *name = json_object_get_string_member(args, "name");
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_DEFAULT, tx, &d, errp);

    return bs && save_bits(tx, bs, name, errp) &&
           bdrv_dirty_bitmap_clear(bs, name, errp) == 0;
}

bool qsd_bitmap_set_recording(JsonObject *args, bool recording, QsdTransaction *tx,
                              GError **errp)
{
    const char *name = json_object_get_string_member(args, "name");
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, CHECK_ALLOW_RO, tx, &d, errp);

    if (!bs || bdrv_dirty_bitmap_set_recording(bs, name, recording, errp) < 0) {
        return false;
    }
    if (tx) {
        BitmapUndo *u = undo_new(bs, name);

        u->recording = d.recording;
        qsd_tx_add(tx, NULL, undo_recording, u, undo_free);
    }
    return true;
}

JsonNode *qmp_block_dirty_bitmap_add(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_add(args, NULL, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_block_dirty_bitmap_remove(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_remove(args, NULL, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_block_dirty_bitmap_clear(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_clear(args, NULL, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_block_dirty_bitmap_enable(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_set_recording(args, true, NULL, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_block_dirty_bitmap_disable(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_set_recording(args, false, NULL, errp) ? qjson_empty_object() : NULL;
}

bool qsd_bitmap_merge(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *target = json_object_get_string_member(args, "target");
    g_autoptr(BdrvBitmapBits) acc = NULL;
    BdrvDirtyBitmapDesc td;
    BlockDriverState *bs;
    JsonArray *arr = json_object_get_array_member(args, "bitmaps");

    bs = lookup_node(json_object_get_string_member(args, "node"), errp);
    if (!bs || !lookup_bitmap(bs, target, CHECK_DEFAULT, tx, &td, errp)) {
        return false;
    }
    acc = bdrv_dirty_bitmap_get_bits(bs, target, errp);
    if (!acc) {
        return false;
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
                return false;
            }
            src = json_object_get_string_member(o, "name");
        } else {
            src = json_node_get_string(n);
        }
        if (!lookup_bitmap(src_bs, src, CHECK_ALLOW_RO, tx, &sd, errp)) {
            return false;
        }
        if (sd.size != td.size) {
            error_setg(errp, "Bitmaps are of different sizes (destination size is %"
                       PRId64 ", source size is %" PRId64 ") and can't be merged",
                       td.size, sd.size);
            return false;
        }
        bits = bdrv_dirty_bitmap_get_bits(src_bs, src, errp);
        if (!bits) {
            return false;
        }
        bdrv_bitmap_bits_or(acc, bits);
    }
    return save_bits(tx, bs, target, errp) &&
           bdrv_dirty_bitmap_set_bits(bs, target, acc, errp) == 0;
}

JsonNode *qmp_block_dirty_bitmap_merge(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_bitmap_merge(args, NULL, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_x_debug_block_dirty_bitmap_sha256(JsonObject *args, Monitor *mon,
                                                GError **errp)
{
    BdrvDirtyBitmapDesc d;
    BlockDriverState *bs = lookup(args, 0, NULL, &d, errp);
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
