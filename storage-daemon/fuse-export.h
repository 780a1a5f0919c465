/*
 * FUSE exports (fuse-export.c, built when libfuse3 is found: CONFIG_FUSE): the
 * node appears as a regular file mounted over the mountpoint; export.c keeps the
 * registry and calls these to mount and unmount.
 */
#ifndef QSD_FUSE_EXPORT_H
#define QSD_FUSE_EXPORT_H

#include "daemon.h"

typedef struct FuseExport FuseExport;

/*
 * Mount @bs over the regular file opts["mountpoint"] (with opts "growable" and
 * "allow-other"); NULL and QEMU's error if the mountpoint is missing, not a
 * regular file, already one of ours, or the mount fails. Called with the block
 * layer lock held.
 */
FuseExport *fuse_export_new(BlockDriverState *bs, JsonObject *opts, bool writable,
                            GError **errp);
/* Unmount (lazily: open files keep working until closed) and free. */
void fuse_export_free(FuseExport *fe);

#endif
