/*
 * Daemon-wide state shared by the storage daemon's modules: the block layer lock
 * (the block layer is single-threaded; job worker threads and the main loop take
 * turns), the quit request, the version we report, and each module's entry points.
 */
#ifndef QSD_DAEMON_H
#define QSD_DAEMON_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/option.h"
#include "block/block.h"
#include <json-glib/json-glib.h>

/* The version reported by the greeting and query-version (see the docs). */
#define QSD_VERSION_MAJOR 7
#define QSD_VERSION_MINOR 2
#define QSD_VERSION_MICRO 0

/*
 * The block layer lock. Worker threads block on it; the main loop only tries it,
 * and retries later when a worker holds it, so that it stays responsive.
 * The main loop keeps holding it while requests it submitted to the block
 * layer's request layer (block/aio.c: the NBD server's) are in flight; taking
 * it (block_lock_try, block_lock) waits for those requests first, so nothing
 * else ever runs beside them.
 */
bool block_lock_try(void);
void block_lock(void);
void block_unlock(void);

/*
 * The main loop is about to submit requests (block_io_begin: false while a job
 * holds the lock or waits for it; retry later), or is done submitting for now
 * (block_io_end: the lock goes once no request is in flight any more). The
 * NBD server calls these; the embedding program (daemon, qemu-nbd) owns them.
 */
bool block_io_begin(void);
void block_io_end(void);

/* Ask the main loop to exit (quit, SIGTERM, SIGINT). */
void qsd_request_quit(void);
/* has quit been asked for (QMP quit, a signal)? */
bool qsd_quit_requested(void);

/* ---- block nodes added by the monitor or --blockdev (block-cmds.c) ---- */
/* Open a node from QMP-shaped options (BlockdevOptions); the monitor owns it. */
bool qsd_blockdev_add(JsonObject *opts, GError **errp);
/* Close every monitor-owned node (at exit). */
void qsd_blockdev_close_all(void);
/*
 * A node using @bs as its backing file, the one QEMU names ("Node 'x' is busy:
 * node is used as backing hd of 'y'", its op blocker): NULL when none.
 */
BlockDriverState *qsd_backing_parent(BlockDriverState *bs);

/* ---- jobs (job.c) ---- */
/* Is any job's worker thread still running? */
bool job_any_running(void);
/*
 * Is a block job ending (cancelled, or completing) whose worker has not reported
 * yet? The monitor holds further commands back meanwhile: QEMU runs a job to its
 * end before the next command once it is told to stop.
 */
bool job_settling(void);
/* Cancel every block job and wait for it to end (quit, signals). */
void job_cancel_all_sync(void);

/* ---- backup jobs (backup-job.c) ---- */
/* Is bitmap @name of @bs the sync bitmap of a backup job? */
bool qsd_backup_uses_bitmap(BlockDriverState *bs, const char *name);
/* Is @bs a backup job's target ("Node 'x' is busy: ...", QEMU's op blocker)? */
bool backup_target_busy(BlockDriverState *bs, GError **errp);
/* Is @bs the source or the target of a backup job? */
bool qsd_backup_uses_node(BlockDriverState *bs);
/*
 * May @bs not be resized because of a backup job? QEMU's words: its target
 * "Device '(null)' is in use", its source a permission conflict with the
 * job's filter.
 */
bool qsd_backup_blocks_resize(BlockDriverState *bs, GError **errp);

/* ---- commit, stream and mirror jobs (block-jobs.c) ---- */
/*
 * Is @bs a node a commit, stream or mirror job took? Then it is busy for other
 * jobs ("Node 'x' is busy: block device is in use by block job: commit"), may
 * not be resized ("Device '(null)' is in use"), and blockdev-del finds the
 * job's main node busy, any other "in use": QEMU's words for each.
 */
bool qsd_block_job_busy(BlockDriverState *bs, GError **errp);
bool qsd_block_job_blocks_resize(BlockDriverState *bs, GError **errp);
bool qsd_block_job_blocks_del(BlockDriverState *bs, GError **errp);
/* May @bs be a mirror's source ("Need a root block node", QEMU's words)? */
bool qsd_mirror_source_ok(BlockDriverState *bs, GError **errp);
/*
 * blockdev-mirror's job for drive-mirror, whose target (named in @args) was
 * opened without its backing file: it gets @pivot_backing at the pivot
 * (sync=top, none); a @target_new (created, reading as zeroes) gets only what
 * the source's chain allocates. false with errp set.
 */
bool qsd_drive_mirror_start(JsonObject *args, BlockDriverState *pivot_backing,
                            bool target_new, GError **errp);

/* ---- NBD server and exports (export.c) ---- */
/* How conflict messages name an export's use of its node (QEMU's BlockBackend). */
#define QSD_EXPORT_USER "an unnamed block device"
/* Move every export of @from onto @to (an active commit's pivot). */
void qsd_export_replace_node(BlockDriverState *from, BlockDriverState *to);
/* Start the NBD server on @addr, with TLS if @tls_creds (both ids may be NULL). */
bool qsd_nbd_server_start(JsonObject *addr, const char *tls_creds,
                          const char *tls_authz, GError **errp);
bool qsd_export_add(JsonObject *opts, GError **errp);
/* Is @bs used by an export? */
bool qsd_export_uses_node(BlockDriverState *bs);
/*
 * Is bitmap @name of @bs busy, as QEMU's: offered by an export, or the sync
 * bitmap of a backup job?
 */
bool qsd_export_uses_bitmap(BlockDriverState *bs, const char *name);
void qsd_export_close_all(void);

/* Listen on a UNIX socket, replacing a stale socket file: the fd, or -1
 * (nbd-server.c, which qemu-nbd shares; the monitor's sockets use it too). */
int qsd_unix_listen(const char *path, GError **errp);

/* ---- monitors (monitor.c) ---- */
bool qsd_chardev_add(JsonObject *opts, GError **errp);
bool qsd_monitor_add(JsonObject *opts, GError **errp);
/* Send an event to every negotiated client; takes ownership of @data (may be NULL). */
void qsd_emit_event(const char *name, JsonObject *data);
/* Flush pending output, close clients and listeners, remove socket files. */
void qsd_monitor_close_all(void);

/* Microseconds since the epoch, split as QMP timestamps want them. */
JsonObject *qsd_timestamp(void);

#endif
