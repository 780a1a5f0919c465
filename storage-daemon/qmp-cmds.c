/*
 * The QMP command table (the one place every command is listed) and the protocol
 * commands: qmp_capabilities, query-version, query-commands and quit.
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "qemu/objects.h"

static const char *const cap_values[] = { "oob", NULL };

static const QArg qmp_capabilities_args[] = {
    { "enable", QT_ENUM_LIST, true, cap_values, NULL, NULL },
    QARG_END,
};

/* ---- user-creatable objects (QEMU's ObjectOptions, the types we have) ---- */

static const char *const qom_type_values[] = { "secret", NULL };
static const char *const secret_format_values[] = { "raw", "base64", NULL };

static const QArg object_base[] = {
    { "qom-type", QT_ENUM, false, qom_type_values, NULL, NULL },
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

static const QArg secret_members[] = {
    { "data", QT_STR, true, NULL, NULL, NULL },
    { "file", QT_STR, true, NULL, NULL, NULL },
    { "format", QT_ENUM, true, secret_format_values, NULL, NULL },
    { "keyid", QT_STR, true, NULL, NULL, NULL },
    { "iv", QT_STR, true, NULL, NULL, NULL },
    { "loaded", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant object_variants[] = {
    { "secret", secret_members },
    { NULL, NULL },
};

static const QArg qapi_object_add_args = {
    "options", QT_UNION, false, NULL, object_base, object_variants,
};

static const QArg qapi_object_del_args[] = {
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

static JsonNode *qmp_object_add(JsonObject *args, Monitor *mon, GError **errp)
{
    return user_object_add(args, errp) ? qjson_empty_object() : NULL;
}

static JsonNode *qmp_object_del(JsonObject *args, Monitor *mon, GError **errp)
{
    return user_object_del(opts_peek_str(args, "id"), errp) ? qjson_empty_object()
                                                            : NULL;
}

const QmpCommand qmp_commands[] = {
    { "qmp_capabilities", qmp_qmp_capabilities, qmp_capabilities_args, NULL, 0 },
    { "query-version", qmp_query_version, NULL, NULL, 0 },
    { "query-commands", qmp_query_commands, NULL, NULL, 0 },
    { "quit", qmp_quit, NULL, NULL, 0 },
    { "blockdev-add", qmp_blockdev_add, NULL, &qapi_blockdev_options, QCO_BLOCK },
    { "blockdev-del", qmp_blockdev_del, qapi_blockdev_del_args, NULL, QCO_BLOCK },
    { "query-named-block-nodes", qmp_query_named_block_nodes,
      qapi_query_named_block_nodes_args, NULL, QCO_BLOCK },
    { "block_resize", qmp_block_resize, qapi_block_resize_args, NULL, QCO_BLOCK },
    { "blockdev-create", qmp_blockdev_create, qapi_blockdev_create_args, NULL, 0 },
    { "x-blockdev-amend", qmp_x_blockdev_amend, qapi_x_blockdev_amend_args, NULL,
      QCO_BLOCK },
    { "blockdev-amend", qmp_blockdev_amend, qapi_blockdev_amend_args, NULL, QCO_BLOCK },
    { "query-jobs", qmp_query_jobs, NULL, NULL, 0 },
    { "job-dismiss", qmp_job_dismiss, qapi_job_id_args, NULL, 0 },
    { "job-cancel", qmp_job_cancel, qapi_job_id_args, NULL, 0 },
    { "job-finalize", qmp_job_finalize, qapi_job_id_args, NULL, 0 },
    { "nbd-server-start", qmp_nbd_server_start, qapi_nbd_server_start_args, NULL, 0 },
    { "nbd-server-stop", qmp_nbd_server_stop, NULL, NULL, QCO_BLOCK },
    { "block-export-add", qmp_block_export_add, NULL, &qapi_block_export_options,
      QCO_BLOCK },
    { "block-export-del", qmp_block_export_del, qapi_block_export_del_args, NULL,
      QCO_BLOCK },
    { "query-block-exports", qmp_query_block_exports, NULL, NULL, 0 },
    { "object-add", qmp_object_add, NULL, &qapi_object_add_args, 0 },
    { "object-del", qmp_object_del, qapi_object_del_args, NULL, 0 },
    { NULL, NULL, NULL, NULL, 0 },
};

JsonNode *qmp_version_info(void)
{
    JsonObject *v = json_object_new(), *q = json_object_new();

    json_object_set_int_member(q, "micro", QSD_VERSION_MICRO);
    json_object_set_int_member(q, "minor", QSD_VERSION_MINOR);
    json_object_set_int_member(q, "major", QSD_VERSION_MAJOR);
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "qcow2-tools " QEMU_PKGVERSION);
    return qjson_object_node(v);
}

JsonNode *qmp_qmp_capabilities(JsonObject *args, Monitor *mon, GError **errp)
{
    /* the dispatcher switches the session to command mode on success */
    return qjson_empty_object();
}

JsonNode *qmp_query_version(JsonObject *args, Monitor *mon, GError **errp)
{
    return qmp_version_info();
}

JsonNode *qmp_query_commands(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (const QmpCommand *c = qmp_commands; c->name; c++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", c->name);
        json_array_add_object_element(arr, o);
    }
    json_node_take_array(n, arr);
    return n;
}

JsonNode *qmp_quit(JsonObject *args, Monitor *mon, GError **errp)
{
    qsd_request_quit();
    return qjson_empty_object();
}
