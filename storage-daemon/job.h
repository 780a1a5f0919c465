/*
 * Jobs: long-running operations run by a worker thread, with QEMU's job state
 * machine and its JOB_STATUS_CHANGE events emitted from the main loop. Two kinds:
 * blockdev-create/amend jobs (one driver call with the block layer locked) and
 * block jobs (commit, stream: a copy loop that takes the lock per step, can be
 * paused, cancelled, rate limited, and may wait in "ready" for job-complete),
 * which also emit the BLOCK_JOB_* events.
 */
#ifndef QSD_JOB_H
#define QSD_JOB_H

#include "daemon.h"

typedef struct Job Job;

/* The job's work, run in the worker thread with the block layer locked. */
typedef int (*JobRunFunc)(void *opaque, GError **errp);

/*
 * Create and start a job of @type ("create", "amend"): emits "created" and
 * "running", then runs @run in a thread. @opaque is freed with @free_opaque.
 */
Job *job_start(const char *id, const char *type, JobRunFunc run, void *opaque,
               GDestroyNotify free_opaque, GError **errp);

/* ---- block jobs ---- */

typedef struct BlockJobDriver {
    const char *type;       /* "commit", "stream" */
    /*
     * The worker: without the block layer lock (take it for each step), calling
     * job_pause_point() between steps. 0, -ECANCELED when cancelled, or -errno.
     */
    int (*run)(Job *job, void *opaque, GError **errp);
    /*
     * Main loop, block layer locked, after the worker succeeded: make the result
     * part of the graph (pivot, new backing file). false with errp set on failure.
     * @completed: job-complete was asked for (an active commit pivots only then).
     */
    bool (*finalize)(Job *job, void *opaque, bool completed, GError **errp);
    /* Main loop, block layer locked: the job ends (any way); drop its uses. */
    void (*clean)(Job *job, void *opaque);
} BlockJobDriver;

/*
 * Create a block job (emits "created"); it does not run until block_job_run().
 * @opaque is freed with @free_opaque when the job goes away.
 */
Job *block_job_create(const char *id, const BlockJobDriver *drv, void *opaque,
                      GDestroyNotify free_opaque, bool auto_finalize,
                      bool auto_dismiss, GError **errp);
/* Start the worker (emits "running"). */
void block_job_run(Job *job);
/* Setting the job up failed after block_job_create(): emits "null", frees it. */
void block_job_abandon(Job *job);
/* A created job's transaction failed: aborting, concluded, null; frees it. */
void block_job_discard(Job *job);
const char *job_get_id(Job *job);
/*
 * Block jobs created between these two calls form one group (a transaction
 * with completion-mode "grouped"): they finalize together once all succeeded,
 * and when one fails or is cancelled, the others are cancelled.
 */
void job_txn_begin(void);
void job_txn_end(void);
/* The graph around a running job changed: QEMU drains it (paused, running). */
void job_drained(Job *job);
/*
 * QEMU drains nodes around some commands (every transaction drains them all;
 * block-export-del the export's node), and each running block job that uses a
 * drained node, or a node above it, pauses for the while: "paused" now and
 * "running" at jobs_drain_end() ("standby" and "ready" for a ready job). @bs
 * NULL: every running or ready block job. The jobs only show the states;
 * their work goes on.
 */
GList *jobs_drain_begin(BlockDriverState *bs);
void jobs_drain_end(GList *paused);

void job_set_speed(Job *job, int64_t speed);

/*
 * The job's error policies from its command's arguments: "on-error" (stream,
 * commit) for both reads and writes, else "on-source-error" for reads and
 * "on-target-error" for writes (backup, mirror). Report when absent; "auto"
 * reports too, as QEMU's jobs do.
 */
void block_job_set_error_policy(Job *job, JsonObject *args);

typedef enum JobErrorAction {
    JOB_ERROR_REPORT,   /* fail the job with the error */
    JOB_ERROR_IGNORE,   /* go on, as the job's kind does (retry or skip) */
    JOB_ERROR_RETRY,    /* the job was stopped and resumed (or cancelled): retry */
} JobErrorAction;

/*
 * Worker: a read (@is_read) or write failed with -errno @err. Emits
 * BLOCK_JOB_ERROR with the action the policy picks. Stop (and enospc for
 * ENOSPC) pauses the job with io-status "failed" ("nospace") and returns
 * JOB_ERROR_RETRY once it is resumed or cancelled.
 */
JobErrorAction job_io_error(Job *job, bool is_read, int err);

/* ---- for the worker ---- */
bool job_is_cancelled(Job *job);
/* Wait here while the job is paused. */
void job_pause_point(Job *job);
void job_progress_set_total(Job *job, int64_t total);
void job_progress_add(Job *job, int64_t done);
/* More work turned up (writes to an active commit's top): the total grows. */
void job_progress_grow(Job *job, int64_t more);
/* After @bytes were copied: sleep as the job's speed asks (woken by cancel). */
void job_rate_limit(Job *job, int64_t bytes);
/*
 * Everything is copied: the job is "ready" (BLOCK_JOB_READY). Waits until
 * job-complete (1), block-job-cancel without force (0: the job ends as completed,
 * without pivot, as QEMU's mirror does) or job-cancel (-ECANCELED).
 */
int job_ready_wait(Job *job);

/* Wait until the job is cancelled (a job whose work is done by others). */
void job_wait_cancelled(Job *job);

/* Cancel every job and wait for them (quit, signals): the events come first. */
void job_cancel_all_sync(void);

#endif
