/*
 * Prototypes of every QMP command handler (one qmp_ function per command), for the
 * command table in qmp-cmds.c, and the argument schemas shared between modules.
 */
#ifndef QSD_QMP_COMMANDS_H
#define QSD_QMP_COMMANDS_H

#include "qmp-dispatch.h"

#define QMP_HANDLER(fn) JsonNode *fn(JsonObject *args, Monitor *mon, GError **errp)

/* qmp-cmds.c */
QMP_HANDLER(qmp_qmp_capabilities);
QMP_HANDLER(qmp_query_version);
QMP_HANDLER(qmp_query_commands);
QMP_HANDLER(qmp_quit);
JsonNode *qmp_version_info(void);

/* block-cmds.c */
QMP_HANDLER(qmp_blockdev_add);
QMP_HANDLER(qmp_blockdev_del);
QMP_HANDLER(qmp_query_named_block_nodes);
QMP_HANDLER(qmp_block_resize);
QMP_HANDLER(qmp_block_set_write_threshold);
extern const QArg qapi_block_set_write_threshold_args[];
extern const QArg qapi_blockdev_options;     /* the BlockdevOptions union */
extern const QArg qapi_blockdev_del_args[];
extern const QArg qapi_query_named_block_nodes_args[];
extern const QArg qapi_block_resize_args[];

/* job.c */
QMP_HANDLER(qmp_query_jobs);
QMP_HANDLER(qmp_job_dismiss);
QMP_HANDLER(qmp_block_job_dismiss);
QMP_HANDLER(qmp_job_cancel);
QMP_HANDLER(qmp_job_finalize);
QMP_HANDLER(qmp_job_pause);
QMP_HANDLER(qmp_job_resume);
QMP_HANDLER(qmp_job_complete);
QMP_HANDLER(qmp_query_block_jobs);
QMP_HANDLER(qmp_block_job_cancel);
QMP_HANDLER(qmp_block_job_complete);
QMP_HANDLER(qmp_block_job_pause);
QMP_HANDLER(qmp_block_job_resume);
QMP_HANDLER(qmp_block_job_set_speed);
QMP_HANDLER(qmp_block_job_finalize);
extern const QArg qapi_job_id_args[];
extern const QArg qapi_block_job_device_args[];
extern const QArg qapi_block_job_cancel_args[];
extern const QArg qapi_block_job_set_speed_args[];

/* drive-mirror.c */
QMP_HANDLER(qmp_drive_mirror);
extern const QArg qapi_drive_mirror_args[];

/* nbd-legacy-cmds.c */
QMP_HANDLER(qmp_nbd_server_add);
QMP_HANDLER(qmp_nbd_server_remove);
QMP_HANDLER(qmp_query_block);
extern const QArg qapi_nbd_server_add_args[];
extern const QArg qapi_nbd_server_remove_args[];

/* internal-snapshot-cmds.c */
QMP_HANDLER(qmp_blockdev_snapshot_internal_sync);
QMP_HANDLER(qmp_blockdev_snapshot_delete_internal_sync);
extern const QArg qapi_blockdev_snapshot_internal_args[];
extern const QArg qapi_blockdev_snapshot_delete_internal_args[];

/* snapshot-cmds.c */
QMP_HANDLER(qmp_blockdev_snapshot_sync);
QMP_HANDLER(qmp_blockdev_snapshot);
QMP_HANDLER(qmp_change_backing_file);
extern const QArg qapi_change_backing_file_args[];
extern const QArg qapi_blockdev_snapshot_sync_args[];
extern const QArg qapi_blockdev_snapshot_args[];

/* block-jobs.c */
QMP_HANDLER(qmp_block_commit);
QMP_HANDLER(qmp_blockdev_mirror);
QMP_HANDLER(qmp_block_stream);
extern const QArg qapi_block_commit_args[];
extern const QArg qapi_blockdev_mirror_args[];
extern const QArg qapi_block_stream_args[];

/* backup-job.c */
QMP_HANDLER(qmp_blockdev_backup);
QMP_HANDLER(qmp_drive_backup);
extern const QArg qapi_blockdev_backup_args[];
extern const QArg qapi_drive_backup_args[];
/* create.c */
QMP_HANDLER(qmp_blockdev_create);
QMP_HANDLER(qmp_x_blockdev_amend);
QMP_HANDLER(qmp_blockdev_amend);
extern const QArg qapi_blockdev_create_args[];
extern const QArg qapi_x_blockdev_amend_args[];
extern const QArg qapi_blockdev_amend_args[];

/* export.c */
QMP_HANDLER(qmp_block_export_add);
QMP_HANDLER(qmp_block_export_del);
QMP_HANDLER(qmp_query_block_exports);
QMP_HANDLER(qmp_nbd_server_start);
QMP_HANDLER(qmp_nbd_server_stop);
extern const QArg qapi_block_export_options;
extern const QArg qapi_block_export_del_args[];
extern const QArg qapi_nbd_server_start_args[];

/* bitmap-cmds.c */
QMP_HANDLER(qmp_block_dirty_bitmap_add);
QMP_HANDLER(qmp_block_dirty_bitmap_remove);
QMP_HANDLER(qmp_block_dirty_bitmap_clear);
QMP_HANDLER(qmp_block_dirty_bitmap_enable);
QMP_HANDLER(qmp_block_dirty_bitmap_disable);
QMP_HANDLER(qmp_block_dirty_bitmap_merge);
QMP_HANDLER(qmp_x_debug_block_dirty_bitmap_sha256);
extern const QArg qapi_block_dirty_bitmap_add_args[];
extern const QArg qapi_block_dirty_bitmap_args[];
extern const QArg qapi_block_dirty_bitmap_merge_args[];

/* transaction.c */
QMP_HANDLER(qmp_transaction);
extern const QArg qapi_transaction_args[];

/* object-cmds.c */
QMP_HANDLER(qmp_object_add);
QMP_HANDLER(qmp_object_del);
extern const QArg qapi_object_add_options;
extern const QArg qapi_object_del_args[];

#endif
