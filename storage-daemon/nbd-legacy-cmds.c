/*
 * nbd-server-add and nbd-server-remove: QEMU's older NBD export commands,
 * which scripts still use, run as block-export-add and block-export-del do
 * (export.c) with QEMU 7.2's mapping: the export's id and name default to
 * the device, a writable export of a read-only node quietly becomes
 * read-only, one optional bitmap. Also query-block: the daemon has no
 * devices (BlockBackends with names), so the list is empty, as in QEMU's.
 */
#include "daemon.h"
#include "qmp-commands.h"

const QArg qapi_nbd_server_add_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "name", QT_STR, true, NULL, NULL, NULL },
    { "description", QT_STR, true, NULL, NULL, NULL },
    { "writable", QT_BOOL, true, NULL, NULL, NULL },
    { "bitmap", QT_STR, true, NULL, NULL, NULL },
    QARG_END,
};

static const char *const remove_mode_values[] = { "safe", "hard", NULL };

const QArg qapi_nbd_server_remove_args[] = {
    { "name", QT_STR, false, NULL, NULL, NULL },
    { "mode", QT_ENUM, true, remove_mode_values, NULL, NULL },
    QARG_END,
};

JsonNode *qmp_nbd_server_add(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *device = opts_peek_str(args, "device");
    const char *name = opts_peek_str(args, "name");
    const char *desc = opts_peek_str(args, "description");
    const char *bitmap = opts_peek_str(args, "bitmap");
    BlockDriverState *bs = bdrv_find_node(device);
    g_autoptr(JsonObject) opts = json_object_new();

    if (!bs) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", device, device);
        return NULL;
    }
    name = name ? name : device;
    opts_set_str(opts, "type", "nbd");
    opts_set_str(opts, "id", name);
    opts_set_str(opts, "node-name", device);
    opts_set_str(opts, "name", name);
    if (desc) {
        opts_set_str(opts, "description", desc);
    }
    json_object_set_boolean_member(opts, "writable",
                                   opts_get_bool(args, "writable", false, NULL) &&
                                   !bdrv_is_read_only(bs));
    if (bitmap) {
        JsonArray *list = json_array_new();

        json_array_add_string_element(list, bitmap);
        json_object_set_array_member(opts, "bitmaps", list);
    }
    return qsd_export_add(opts, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_nbd_server_remove(JsonObject *args, Monitor *mon, GError **errp)
{
    g_autoptr(JsonObject) del = json_object_new();

    opts_set_str(del, "id", opts_peek_str(args, "name"));
    if (opts_peek_str(args, "mode")) {
        opts_set_str(del, "mode", opts_peek_str(args, "mode"));
    }
    return qmp_block_export_del(del, mon, errp);
}

JsonNode *qmp_query_block(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    json_node_take_array(n, json_array_new());
    return n;
}
