/*
 * The QMP command table (the one place every command is listed) and the protocol
 * commands: qmp_capabilities, query-version, query-commands and quit.
 */
#include "daemon.h"
#include "qmp-commands.h"

static const char *const cap_values[] = { "oob", NULL };

static const QArg qmp_capabilities_args[] = {
    { "enable", QT_ENUM_LIST, true, cap_values, NULL, NULL },
    QARG_END,
};

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
    { "block-set-write-threshold", qmp_block_set_write_threshold,
      qapi_block_set_write_threshold_args, NULL, QCO_BLOCK },
    { "blockdev-create", qmp_blockdev_create, qapi_blockdev_create_args, NULL, 0 },
    { "x-blockdev-amend", qmp_x_blockdev_amend, qapi_x_blockdev_amend_args, NULL,
      QCO_BLOCK },
    { "blockdev-amend", qmp_blockdev_amend, qapi_blockdev_amend_args, NULL, QCO_BLOCK },
    { "query-jobs", qmp_query_jobs, NULL, NULL, 0 },
    { "job-dismiss", qmp_job_dismiss, qapi_job_id_args, NULL, 0 },
    { "job-cancel", qmp_job_cancel, qapi_job_id_args, NULL, 0 },
    { "job-finalize", qmp_job_finalize, qapi_job_id_args, NULL, 0 },
    { "job-pause", qmp_job_pause, qapi_job_id_args, NULL, 0 },
    { "job-resume", qmp_job_resume, qapi_job_id_args, NULL, 0 },
    { "job-complete", qmp_job_complete, qapi_job_id_args, NULL, 0 },
    { "block-commit", qmp_block_commit, qapi_block_commit_args, NULL, QCO_BLOCK },
    { "block-stream", qmp_block_stream, qapi_block_stream_args, NULL, QCO_BLOCK },
    { "blockdev-mirror", qmp_blockdev_mirror, qapi_blockdev_mirror_args, NULL,
      QCO_BLOCK },
    { "drive-mirror", qmp_drive_mirror, qapi_drive_mirror_args, NULL, QCO_BLOCK },
    { "blockdev-backup", qmp_blockdev_backup, qapi_blockdev_backup_args, NULL,
      QCO_BLOCK },
    { "drive-backup", qmp_drive_backup, qapi_drive_backup_args, NULL, QCO_BLOCK },
    { "query-block-jobs", qmp_query_block_jobs, NULL, NULL, 0 },
    { "block-job-cancel", qmp_block_job_cancel, qapi_block_job_cancel_args, NULL, 0 },
    { "block-job-complete", qmp_block_job_complete, qapi_block_job_device_args, NULL,
      0 },
    { "block-job-pause", qmp_block_job_pause, qapi_block_job_device_args, NULL, 0 },
    { "block-job-resume", qmp_block_job_resume, qapi_block_job_device_args, NULL, 0 },
    { "block-job-set-speed", qmp_block_job_set_speed, qapi_block_job_set_speed_args,
      NULL, 0 },
    { "block-job-finalize", qmp_block_job_finalize, qapi_job_id_args, NULL, 0 },
    { "block-job-dismiss", qmp_block_job_dismiss, qapi_job_id_args, NULL, 0 },
    { "nbd-server-start", qmp_nbd_server_start, qapi_nbd_server_start_args, NULL, 0 },
    { "nbd-server-stop", qmp_nbd_server_stop, NULL, NULL, QCO_BLOCK },
    { "block-export-add", qmp_block_export_add, NULL, &qapi_block_export_options,
      QCO_BLOCK },
    { "block-export-del", qmp_block_export_del, qapi_block_export_del_args, NULL,
      QCO_BLOCK },
    { "query-block-exports", qmp_query_block_exports, NULL, NULL, 0 },
    { "nbd-server-add", qmp_nbd_server_add, qapi_nbd_server_add_args, NULL, QCO_BLOCK },
    { "nbd-server-remove", qmp_nbd_server_remove, qapi_nbd_server_remove_args, NULL,
      QCO_BLOCK },
    { "query-block", qmp_query_block, NULL, NULL, 0 },
    { "block-dirty-bitmap-add", qmp_block_dirty_bitmap_add,
      qapi_block_dirty_bitmap_add_args, NULL, QCO_BLOCK },
    { "block-dirty-bitmap-remove", qmp_block_dirty_bitmap_remove,
      qapi_block_dirty_bitmap_args, NULL, QCO_BLOCK },
    { "block-dirty-bitmap-clear", qmp_block_dirty_bitmap_clear,
      qapi_block_dirty_bitmap_args, NULL, QCO_BLOCK },
    { "block-dirty-bitmap-enable", qmp_block_dirty_bitmap_enable,
      qapi_block_dirty_bitmap_args, NULL, QCO_BLOCK },
    { "block-dirty-bitmap-disable", qmp_block_dirty_bitmap_disable,
      qapi_block_dirty_bitmap_args, NULL, QCO_BLOCK },
    { "block-dirty-bitmap-merge", qmp_block_dirty_bitmap_merge,
      qapi_block_dirty_bitmap_merge_args, NULL, QCO_BLOCK },
    { "x-debug-block-dirty-bitmap-sha256", qmp_x_debug_block_dirty_bitmap_sha256,
      qapi_block_dirty_bitmap_args, NULL, QCO_BLOCK },
    { "blockdev-snapshot-sync", qmp_blockdev_snapshot_sync,
      qapi_blockdev_snapshot_sync_args, NULL, QCO_BLOCK },
    { "blockdev-snapshot", qmp_blockdev_snapshot, qapi_blockdev_snapshot_args, NULL,
      QCO_BLOCK },
    { "change-backing-file", qmp_change_backing_file, qapi_change_backing_file_args, NULL,
      QCO_BLOCK },
    { "blockdev-snapshot-internal-sync", qmp_blockdev_snapshot_internal_sync,
      qapi_blockdev_snapshot_internal_args, NULL, QCO_BLOCK },
    { "blockdev-snapshot-delete-internal-sync", qmp_blockdev_snapshot_delete_internal_sync,
      qapi_blockdev_snapshot_delete_internal_args, NULL, QCO_BLOCK },
    { "transaction", qmp_transaction, qapi_transaction_args, NULL, QCO_BLOCK },
    { "object-add", qmp_object_add, NULL, &qapi_object_add_options, 0 },
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
    /* as QEMU's: block jobs are cancelled before the reply (their events first) */
    job_cancel_all_sync();
    qsd_request_quit();
    return qjson_empty_object();
}
