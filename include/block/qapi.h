/*
 * Image information as QEMU's QAPI types describe it (ImageInfo, SnapshotInfo,
 * ImageCheck), built as json-glib objects whose members are in the order QEMU
 * prints them, and their human-readable dumps. Shared by qemu-img and the
 * storage daemon.
 */
#ifndef BLOCK_QAPI_H
#define BLOCK_QAPI_H

#include "block/block.h"

/*
 * ImageInfo of one node: filename, format, virtual-size, actual-size, cluster-size,
 * dirty-flag, backing-filename / full-backing-filename / backing-filename-format,
 * snapshots, format-specific. NULL with errp set if the size cannot be read.
 */
JsonObject *bdrv_query_image_info(BlockDriverState *bs, GError **errp);

/* qemu-img info's human dump of an ImageInfo object (to stdout). */
void bdrv_image_info_dump(JsonObject *info);

/* The "ID TAG VM SIZE DATE VM CLOCK ICOUNT" header and one line per snapshot. */
void bdrv_snapshot_dump_header(void);
void bdrv_snapshot_dump(JsonObject *sn);

/* Rebuild an object with its members in QEMU's order: those named in @order
 * (NULL-terminated) by rank, any others after them. Returns a new reference. */
JsonObject *qapi_order_members(JsonObject *obj, const char *const *order);

/* Pretty-printed JSON as QEMU's qemu-img prints it, with a trailing newline. */
void qapi_print_json(JsonNode *node);
void qapi_print_json_object(JsonObject *obj);

#endif
