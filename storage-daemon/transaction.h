/*
 * QMP "transaction": its actions run one after the other, each leaving what
 * it takes to undo it (on_abort) or to finish it (on_commit); if any action
 * fails, the ones before it are undone in reverse order, so the transaction
 * happens whole or not at all.
 */
#ifndef QSD_TRANSACTION_H
#define QSD_TRANSACTION_H

#include "daemon.h"

typedef struct QsdTransaction QsdTransaction;
typedef void (*QsdTxFn)(void *data);

/* After a successful action: @commit runs if the whole transaction succeeds,
 * @abort if it fails; @free (may be NULL) frees @data afterwards either way. */
void qsd_tx_add(QsdTransaction *tx, QsdTxFn commit, QsdTxFn abort, void *data,
                GDestroyNotify free);

/* Bitmap @name of @bs is to be removed when @tx commits: until then it is busy. */
void qsd_tx_mark_removing(QsdTransaction *tx, BlockDriverState *bs, const char *name);
bool qsd_tx_removing(QsdTransaction *tx, BlockDriverState *bs, const char *name);

/* The bitmap actions (bitmap-cmds.c): @tx NULL runs the plain QMP command. */
bool qsd_bitmap_add(JsonObject *args, QsdTransaction *tx, GError **errp);
bool qsd_bitmap_remove(JsonObject *args, QsdTransaction *tx, GError **errp);
bool qsd_bitmap_clear(JsonObject *args, QsdTransaction *tx, GError **errp);
bool qsd_bitmap_set_recording(JsonObject *args, bool recording, QsdTransaction *tx,
                              GError **errp);
bool qsd_bitmap_merge(JsonObject *args, QsdTransaction *tx, GError **errp);
/* The blockdev-backup action (backup-job.c): the job runs when @tx commits. */
bool qsd_backup_action(JsonObject *args, QsdTransaction *tx, GError **errp);
/* The drive-backup action (backup-cmd.c): creates its target, then the same. */
bool qsd_drive_backup_action(JsonObject *args, QsdTransaction *tx, GError **errp);
/* The external snapshot actions (snapshot-cmds.c). */
bool qsd_snapshot_sync(JsonObject *args, QsdTransaction *tx, GError **errp);
bool qsd_snapshot(JsonObject *args, QsdTransaction *tx, GError **errp);
/* The internal snapshot action (internal-snapshot-cmds.c): an abort deletes it. */
bool qsd_snapshot_internal(JsonObject *args, QsdTransaction *tx, GError **errp);
/* A command that QEMU runs as a transaction of one action @type (with its
 * drains): the reply, or NULL with errp set. */
JsonNode *qsd_transaction_run_one(const char *type, JsonObject *args, GError **errp);

#endif
