/*
 * The QMP "transaction" command: its argument schema (TransactionAction, a
 * union on "type" whose variants wrap their arguments in "data"), checked
 * whole before anything runs, as QEMU's visitor does; then each action runs,
 * and on the first failure the ones before it are undone in reverse order.
 * Actions: all of QEMU 7.2's: the dirty bitmap commands, blockdev-backup,
 * drive-backup, blockdev-snapshot, blockdev-snapshot-sync,
 * blockdev-snapshot-internal-sync and "abort". The
 * snapshot commands run as a transaction of one action, as in QEMU.
 */
#include "transaction.h"
#include "qmp-commands.h"
#include "job.h"

typedef struct TxEntry {
    QsdTxFn commit, abort;
    void *data;
    GDestroyNotify free;
} TxEntry;

typedef struct TxRemoval {
    BlockDriverState *bs;
    char *name;
} TxRemoval;

struct QsdTransaction {
    GArray *entries;        /* TxEntry, in the order the actions ran */
    GArray *removals;       /* TxRemoval: bitmaps busy until the commit */
};

void qsd_tx_add(QsdTransaction *tx, QsdTxFn commit, QsdTxFn abort, void *data,
                GDestroyNotify free)
{
    TxEntry e = { commit, abort, data, free };

    g_array_append_val(tx->entries, e);
}

void qsd_tx_mark_removing(QsdTransaction *tx, BlockDriverState *bs, const char *name)
{
    TxRemoval r = { bs, g_strdup(name) };

    g_array_append_val(tx->removals, r);
}

bool qsd_tx_removing(QsdTransaction *tx, BlockDriverState *bs, const char *name)
{
    for (guint i = 0; tx && i < tx->removals->len; i++) {
        TxRemoval *r = &g_array_index(tx->removals, TxRemoval, i);

        if (r->bs == bs && !strcmp(r->name, name)) {
            return true;
        }
    }
    return false;
}

/* ---- the schema ---- */

static const QArg abort_args[] = { QARG_END };

#define WRAP(args) (const QArg[]) { { "data", QT_STRUCT, false, NULL, args, NULL }, QARG_END }

/* QEMU 7.2's TransactionActionKind, in its order */
static const char *const action_kinds[] = {
    "abort", "block-dirty-bitmap-add", "block-dirty-bitmap-remove",
    "block-dirty-bitmap-clear", "block-dirty-bitmap-enable", "block-dirty-bitmap-disable",
    "block-dirty-bitmap-merge", "blockdev-backup", "blockdev-snapshot",
    "blockdev-snapshot-internal-sync", "blockdev-snapshot-sync", "drive-backup", NULL,
};

static const QArg action_base[] = {
    { "type", QT_ENUM, false, action_kinds, NULL, NULL },
    QARG_END,
};

/* the actions we run; the others only need their "data" to be an object */
static const QVariant action_variants[] = {
    { "abort", WRAP(abort_args) },
    { "block-dirty-bitmap-add", WRAP(qapi_block_dirty_bitmap_add_args) },
    { "block-dirty-bitmap-remove", WRAP(qapi_block_dirty_bitmap_args) },
    { "block-dirty-bitmap-clear", WRAP(qapi_block_dirty_bitmap_args) },
    { "block-dirty-bitmap-enable", WRAP(qapi_block_dirty_bitmap_args) },
    { "block-dirty-bitmap-disable", WRAP(qapi_block_dirty_bitmap_args) },
    { "block-dirty-bitmap-merge", WRAP(qapi_block_dirty_bitmap_merge_args) },
    { "blockdev-backup", WRAP(qapi_blockdev_backup_args) },
    { "blockdev-snapshot", WRAP(qapi_blockdev_snapshot_args) },
    { "blockdev-snapshot-internal-sync", WRAP(qapi_blockdev_snapshot_internal_args) },
    { "blockdev-snapshot-sync", WRAP(qapi_blockdev_snapshot_sync_args) },
    { "drive-backup", WRAP(qapi_drive_backup_args) },
    { NULL, NULL },
};

static const char *const completion_modes[] = { "individual", "grouped", NULL };

static const QArg transaction_properties[] = {
    { "completion-mode", QT_ENUM, true, completion_modes, NULL, NULL },
    QARG_END,
};

const QArg qapi_transaction_args[] = {
    { "actions", QT_UNION_LIST, false, NULL, action_base, action_variants },
    { "properties", QT_STRUCT, true, NULL, transaction_properties, NULL },
    QARG_END,
};

/* ---- running it ---- */

static bool run_action(QsdTransaction *tx, const char *type, JsonObject *data,
                       bool grouped, GError **errp)
{
    if (!strcmp(type, "abort")) {
        error_setg(errp, "Transaction aborted using Abort action");
        return false;
    }
    if (grouped && strcmp(type, "blockdev-backup") && strcmp(type, "drive-backup")) {
        /* only the backup actions take part in a grouped completion */
        error_setg(errp, "Action '%s' does not support Transaction property "
                   "completion-mode = grouped", type);
        return false;
    }
    if (!strcmp(type, "block-dirty-bitmap-add")) {
        return qsd_bitmap_add(data, tx, errp);
    } else if (!strcmp(type, "block-dirty-bitmap-remove")) {
        return qsd_bitmap_remove(data, tx, errp);
    } else if (!strcmp(type, "block-dirty-bitmap-clear")) {
        return qsd_bitmap_clear(data, tx, errp);
    } else if (!strcmp(type, "block-dirty-bitmap-enable")) {
        return qsd_bitmap_set_recording(data, true, tx, errp);
    } else if (!strcmp(type, "block-dirty-bitmap-disable")) {
        return qsd_bitmap_set_recording(data, false, tx, errp);
    } else if (!strcmp(type, "block-dirty-bitmap-merge")) {
        return qsd_bitmap_merge(data, tx, errp);
    } else if (!strcmp(type, "blockdev-backup")) {
        return qsd_backup_action(data, tx, errp);
    } else if (!strcmp(type, "drive-backup")) {
        return qsd_drive_backup_action(data, tx, errp);
    } else if (!strcmp(type, "blockdev-snapshot-sync")) {
        return qsd_snapshot_sync(data, tx, errp);
    } else if (!strcmp(type, "blockdev-snapshot")) {
        return qsd_snapshot(data, tx, errp);
    } else if (!strcmp(type, "blockdev-snapshot-internal-sync")) {
        return qsd_snapshot_internal(data, tx, errp);
    }
    error_setg(errp, "Transaction action '%s' is not supported by this daemon", type);
    return false;
}

static void tx_finish(QsdTransaction *tx, bool ok)
{
    for (guint k = 0; k < tx->entries->len; k++) {
        /* commit in order, undo in reverse order */
        guint i = ok ? k : tx->entries->len - 1 - k;
        TxEntry *e = &g_array_index(tx->entries, TxEntry, i);
        QsdTxFn fn = ok ? e->commit : e->abort;

        if (fn) {
            fn(e->data);
        }
    }
    for (guint i = 0; i < tx->entries->len; i++) {
        TxEntry *e = &g_array_index(tx->entries, TxEntry, i);

        if (e->free) {
            e->free(e->data);
        }
    }
    for (guint i = 0; i < tx->removals->len; i++) {
        g_free(g_array_index(tx->removals, TxRemoval, i).name);
    }
    g_array_free(tx->entries, TRUE);
    g_array_free(tx->removals, TRUE);
}

/*
 * Run the actions of @arr (all or nothing). QEMU drains all nodes first (every
 * running job pauses a moment); actions that need it drain their own nodes
 * for the while (a backup its source).
 */
static bool run_actions(JsonArray *arr, bool grouped, GError **errp)
{
    QsdTransaction tx;
    bool ok = true;

    jobs_drain_end(jobs_drain_begin(NULL));

    if (grouped) {
        job_txn_begin();
    }
    tx.entries = g_array_new(FALSE, FALSE, sizeof(TxEntry));
    tx.removals = g_array_new(FALSE, FALSE, sizeof(TxRemoval));
    for (guint i = 0; ok && i < json_array_get_length(arr); i++) {
        JsonObject *a = json_array_get_object_element(arr, i);

        ok = run_action(&tx, json_object_get_string_member(a, "type"),
                        json_object_get_object_member(a, "data"), grouped, errp);
    }
    tx_finish(&tx, ok);
    if (grouped) {
        job_txn_end();
    }
    return ok;
}

JsonNode *qsd_transaction_run_one(const char *type, JsonObject *args, GError **errp)
{
    g_autoptr(JsonArray) arr = json_array_new();
    JsonObject *a = json_object_new();

    json_object_set_string_member(a, "type", type);
    json_object_set_object_member(a, "data", json_object_ref(args));
    json_array_add_object_element(arr, a);
    return run_actions(arr, false, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_transaction(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonObject *props = json_object_has_member(args, "properties") ?
        json_object_get_object_member(args, "properties") : NULL;
    const char *mode = props && json_object_has_member(props, "completion-mode") ?
        json_object_get_string_member(props, "completion-mode") : "individual";

    return run_actions(json_object_get_array_member(args, "actions"),
                       !strcmp(mode, "grouped"), errp) ? qjson_empty_object() : NULL;
}
