/*
 * Internal snapshots over QMP: blockdev-snapshot-internal-sync (a command, and
 * a transaction action that an abort deletes again) and
 * blockdev-snapshot-delete-internal-sync (which answers with what it deleted).
 * QEMU 7.2's checks in its order and its messages (compared with Debian's
 * daemon). The daemon runs no VM: like QEMU's, it records the wall clock as
 * the snapshot's VM clock, no VM state and no instruction count.
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "transaction.h"

const QArg qapi_blockdev_snapshot_internal_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_blockdev_snapshot_delete_internal_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "id", QT_STR, true, NULL, NULL, NULL },
    { "name", QT_STR, true, NULL, NULL, NULL },
    QARG_END,
};

/* QEMU's qmp_get_root_bs(): a node the user may snapshot. */
static BlockDriverState *root_node(const char *device, GError **errp)
{
    BlockDriverState *bs = bdrv_find_node(device);

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return NULL;
    }
    for (BlockDriverState *n = bdrv_next_node(NULL); n; n = bdrv_next_node(n)) {
        if (bdrv_file_child(n) == bs || bdrv_backing_child(n) == bs ||
            bdrv_data_file_child(n) == bs) {
            error_setg(errp, "Need a root block node");
            return NULL;
        }
    }
    return bs;
}

/* The snapshot with ID @id and/or name @name (either may be NULL), or NULL. */
static JsonObject *find_snapshot(GPtrArray *list, const char *id, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        JsonObject *o = list->pdata[i];

        if ((!id || !g_strcmp0(opts_peek_str(o, "id"), id)) &&
            (!name || !g_strcmp0(opts_peek_str(o, "name"), name))) {
            return o;
        }
    }
    return NULL;
}

static GPtrArray *snapshot_list(BlockDriverState *bs, GError **errp)
{
    GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    int ret = bdrv_snapshot_list(bs, list);

    if (ret < 0) {
        error_setg(errp, "Failed to get a snapshot list: %s", g_strerror(-ret));
        g_ptr_array_free(list, TRUE);
        return NULL;
    }
    return list;
}

/*
 * Delete snapshot @sn of @bs: by the key that finds no other one (the block
 * layer looks a key up as a name first, then as an ID).
 */
static int delete_snapshot(BlockDriverState *bs, GPtrArray *list, JsonObject *sn,
                           GError **errp)
{
    const char *id = opts_peek_str(sn, "id");
    JsonObject *by_name = find_snapshot(list, NULL, id);

    return bdrv_snapshot_delete(bs, by_name && by_name != sn ? opts_peek_str(sn, "name")
                                                             : id, errp);
}

typedef struct InternalSnapshot {
    BlockDriverState *bs;
    char *id, *name;
} InternalSnapshot;

static void internal_free(void *p)
{
    InternalSnapshot *s = p;

    bdrv_unref(s->bs);
    g_free(s->id);
    g_free(s->name);
    g_free(s);
}

static void internal_abort(void *p)
{
    InternalSnapshot *s = p;
    g_autoptr(GPtrArray) list = snapshot_list(s->bs, NULL);
    JsonObject *sn = list ? find_snapshot(list, s->id, s->name) : NULL;

    if (sn) {
        delete_snapshot(s->bs, list, sn, NULL);
    }
}

bool qsd_snapshot_internal(JsonObject *args, QsdTransaction *tx, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *name = opts_peek_str(args, "name");
    g_autoptr(GPtrArray) list = NULL;
    BlockDriverState *bs = root_node(device, errp);
    InternalSnapshot *s;
    JsonObject *sn;
    int ret;

    if (!bs) {
        return false;
    }
    if (bdrv_is_read_only(bs)) {
        error_setg(errp, "Device '%s' is read only", device);
        return false;
    }
    if (!bdrv_supports_snapshots(bs)) {
        error_setg(errp, "Block format '%s' used by device '%s' does not support "
                   "internal snapshots", bdrv_get_format_name(bs), device);
        return false;
    }
    if (!*name) {
        error_setg(errp, "Name is empty");
        return false;
    }
    list = snapshot_list(bs, errp);
    if (!list) {
        return false;
    }
    if (find_snapshot(list, NULL, name)) {
        error_setg(errp, "Snapshot with name '%s' already exists on device '%s'", name,
                   device);
        return false;
    }
    /* no VM here: QEMU's virtual clock runs as the wall clock, no icount */
    ret = bdrv_snapshot_create_vm(bs, name, g_get_real_time() * 1000, -1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to create snapshot '%s' on device '%s'",
                         name, device);
        return false;
    }
    g_ptr_array_set_size(list, 0);
    if (bdrv_snapshot_list(bs, list) < 0 || !(sn = find_snapshot(list, NULL, name))) {
        return true;    /* made, but not to be found again: nothing to undo */
    }
    s = g_new0(InternalSnapshot, 1);
    bdrv_ref(bs);
    s->bs = bs;
    s->id = g_strdup(opts_peek_str(sn, "id"));
    s->name = g_strdup(name);
    qsd_tx_add(tx, NULL, internal_abort, s, internal_free);
    return true;
}

JsonNode *qmp_blockdev_snapshot_internal_sync(JsonObject *args, Monitor *mon,
                                              GError **errp)
{
    return qsd_transaction_run_one("blockdev-snapshot-internal-sync", args, errp);
}

JsonNode *qmp_blockdev_snapshot_delete_internal_sync(JsonObject *args, Monitor *mon,
                                                     GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *id = opts_peek_str(args, "id");
    const char *name = opts_peek_str(args, "name");
    g_autoptr(GPtrArray) list = NULL;
    BlockDriverState *bs = root_node(device, errp);
    JsonObject *sn, *info;

    if (!bs) {
        return NULL;
    }
    if (!id && !name) {
        error_setg(errp, "Name or id must be provided");
        return NULL;
    }
    list = snapshot_list(bs, errp);
    if (!list) {
        return NULL;
    }
    sn = find_snapshot(list, id, name);
    if (!sn) {
        error_setg(errp, "Snapshot with id '%s' and name '%s' does not exist on "
                   "device '%s'", id ? id : "null", name ? name : "null", device);
        return NULL;
    }
    if (delete_snapshot(bs, list, sn, errp) < 0) {
        return NULL;
    }
    /* SnapshotInfo, in the order QEMU's reply lists its members */
    info = json_object_new();
    json_object_set_int_member(info, "vm-clock-nsec",
                               json_object_get_int_member(sn, "vm-clock-nsec"));
    json_object_set_string_member(info, "name", opts_peek_str(sn, "name"));
    json_object_set_int_member(info, "date-sec", json_object_get_int_member(sn, "date-sec"));
    json_object_set_int_member(info, "date-nsec",
                               json_object_get_int_member(sn, "date-nsec"));
    json_object_set_int_member(info, "vm-clock-sec",
                               json_object_get_int_member(sn, "vm-clock-sec"));
    json_object_set_string_member(info, "id", opts_peek_str(sn, "id"));
    json_object_set_int_member(info, "vm-state-size",
                               json_object_get_int_member(sn, "vm-state-size"));
    if (json_object_has_member(sn, "icount")) {
        json_object_set_int_member(info, "icount", json_object_get_int_member(sn, "icount"));
    }
    return qjson_object_node(info);
}
