/*
 * What the backup job (backup-job.c) and its command (backup-cmd.c) share:
 * the job's state and the steps that set it up, start it and undo it.
 */
#ifndef QSD_BACKUP_INT_H
#define QSD_BACKUP_INT_H

#include "job.h"
#include "block/dirty-bitmap.h"

#define BACKUP_CLUSTER 65536        /* QEMU's backup cluster size (at least) */

enum { SYNC_TOP, SYNC_FULL, SYNC_NONE, SYNC_INCREMENTAL, SYNC_BITMAP };
enum { MODE_ON_SUCCESS, MODE_NEVER, MODE_ALWAYS };

typedef struct BackupJob {
    Job *job;
    BlockDriverState *src, *target;
    int sync;
    char *bitmap;               /* the sync bitmap of src, or NULL */
    int bitmap_mode;
    bool compress;
    bool succeeded;             /* finalized: the bitmap follows success */
    int64_t len;
    int64_t cluster;
    /*
     * Under lock: the clusters still to copy (by the worker, or by the
     * before-write notifier), and what was written to src since the start
     * (at the sync bitmap's granularity; NULL without a recording bitmap).
     */
    GMutex lock;
    BdrvBitmapBits *to_copy;
    BdrvBitmapBits *new_writes;
    bool hooked;
    bool err_read;              /* under lock: the last copy failed reading src */
    char *filter_name;          /* filter-node-name, or a made-up "#blockNNN" */
    BlockDriverState *filter;   /* QEMU's copy-before-write node over src, running */
    int64_t cbw_bytes;          /* under lock: what writes had copied first */
    /* a transaction's action: the source's drain (jobs_drain_begin) until it ends */
    GList *drained;
    bool drain_held;
    int src_use, target_use;    /* their addresses own the permissions */
    int filter_use;             /* the job's (empty) use of its filter */
} BackupJob;


extern const BlockJobDriver backup_driver;
/* Frees what backup_prepare() made (the job's free_opaque). */
void backup_free(gpointer p);
/*
 * Set up what to copy and the copy-before-write notifier: from now on the
 * target gets the source as it is now. The job does not run yet.
 */
bool backup_setup(BackupJob *b, GError **errp);
/* Run the job (running, and QEMU's paused/running of its filter insertion). */
void backup_go(BackupJob *b);
/* Undo a job that never ran: @created_events: aborting, concluded, null (a
 * failed transaction), else only null; frees @b. */
void backup_unwind(BackupJob *b, bool created_events);
/* Is @bs the source of a backup job, so no target (QEMU's conflict message)? */
bool backup_source_conflict(BlockDriverState *bs, const char *filter, GError **errp);

#endif
