/*
 * The job state machine and the job commands (query-jobs, job-dismiss, job-cancel,
 * job-finalize, job-pause, job-resume, job-complete, and the block-job-* ones with
 * query-block-jobs). A job goes created -> running; its worker thread then reports
 * back to the main loop, which walks it through waiting -> pending -> concluded on
 * success, or aborting -> concluded on failure or cancellation, and to null when
 * dismissed, emitting JOB_STATUS_CHANGE for each step as QEMU does. Create and
 * amend jobs finalize and never dismiss themselves (blockdev-create's jobs have no
 * such options); block jobs follow their auto-finalize/auto-dismiss options, may
 * pause (paused, or standby when ready) and emit BLOCK_JOB_READY, _PENDING,
 * _COMPLETED and _CANCELLED.
 */
#include "job.h"
#include "qmp-commands.h"

typedef enum JobStatus {
    JOB_STATUS_CREATED, JOB_STATUS_RUNNING, JOB_STATUS_PAUSED, JOB_STATUS_READY,
    JOB_STATUS_STANDBY, JOB_STATUS_WAITING, JOB_STATUS_PENDING, JOB_STATUS_ABORTING,
    JOB_STATUS_CONCLUDED, JOB_STATUS_UNDEFINED, JOB_STATUS_NULL,
} JobStatus;

static const char *const job_status_str[] = {
    "created", "running", "paused", "ready", "standby", "waiting", "pending",
    "aborting", "concluded", "undefined", "null",
};

struct Job {
    int refcnt;             /* atomic: the list's, and each pending callback's */
    char *id;
    char *type;
    JobStatus status;       /* the main loop's */
    int64_t progress_current, progress_total;  /* block jobs: under job_mutex */
    char *error;
    bool cancelled;         /* block jobs: under job_mutex */
    GThread *thread;
    JobRunFunc run;
    void *opaque;
    GDestroyNotify free_opaque;
    int ret;                /* set by the worker */
    GError *err;

    /* block jobs */
    const BlockJobDriver *drv;
    bool auto_finalize, auto_dismiss;
    bool worker_done_handled;   /* the main loop took the worker's result */
    /* under job_mutex: what the commands ask of the worker */
    bool soft_cancel;           /* block-job-cancel of a ready job */
    bool complete_requested;
    int pause_count;
    int64_t speed;
    bool sleeping;              /* the worker waits (rate limit, pause, ready) */
    const char *io_status;      /* "ok", or why an error stopped the job */
    struct JobTxn *txn;         /* a grouped transaction's jobs, or NULL */
    int on_source_error, on_target_error;   /* ON_ERROR_* */
};

/* QAPI BlockdevOnError, in qapi_blockdev_on_error's order */
enum { ON_ERROR_REPORT, ON_ERROR_IGNORE, ON_ERROR_ENOSPC, ON_ERROR_STOP, ON_ERROR_AUTO };

static GList *jobs;             /* newest first, as query-jobs lists them */

/*
 * The block jobs of one transaction with completion-mode "grouped": they
 * finalize together once all succeeded, and when one fails or is cancelled,
 * the others are cancelled.
 */
typedef struct JobTxn {
    GList *jobs;                /* Job*, newest first (QEMU's order) */
    bool aborting;
} JobTxn;

static JobTxn *open_txn;        /* jobs created now join it */
static int running_threads;
static GMutex job_mutex;
static GCond job_cond;

bool job_any_running(void)
{
    return running_threads > 0;
}

static void job_set_status(Job *job, JobStatus status)
{
    JsonObject *data = json_object_new();

    job->status = status;
    json_object_set_string_member(data, "status", job_status_str[status]);
    json_object_set_string_member(data, "id", job->id);
    qsd_emit_event("JOB_STATUS_CHANGE", data);
}

static Job *job_find(const char *id)
{
    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        if (!strcmp(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
            return false;
        }
    }
    return true;
}

static bool job_check_id(const char *id, GError **errp)
{
    if (!id_wellformed(id)) {
        error_setg(errp, "Invalid job ID '%s'", id);
        return false;
    }
    if (job_find(id)) {
        error_setg(errp, "Job ID '%s' already in use", id);
        return false;
    }
    return true;
}

static void job_unref(Job *job)
{
    if (!g_atomic_int_dec_and_test(&job->refcnt)) {
        return;
    }
    if (job->txn) {
        job->txn->jobs = g_list_remove(job->txn->jobs, job);
        /* the transaction still being built frees it at its end */
        if (!job->txn->jobs && job->txn != open_txn) {
            g_free(job->txn);
        }
    }
    if (job->free_opaque) {
        job->free_opaque(job->opaque);
    }
    g_clear_error(&job->err);
    g_free(job->id);
    g_free(job->type);
    g_free(job->error);
    g_free(job);
}

/* Main loop: the worker of a create/amend job finished. */
static gboolean job_completed(gpointer opaque)
{
    Job *job = opaque;

    g_thread_join(job->thread);
    job->thread = NULL;
    running_threads--;
    job->progress_current = job->progress_total = 1;
    if (job->cancelled) {
        job->error = g_strdup("Operation canceled");
    } else if (job->ret < 0) {
        job->error = job->err ? qmp_error_desc(job->err->message)
                              : g_strdup(g_strerror(-job->ret));
    }
    g_clear_error(&job->err);
    if (job->error) {
        job_set_status(job, JOB_STATUS_ABORTING);
    } else {
        job_set_status(job, JOB_STATUS_WAITING);
        job_set_status(job, JOB_STATUS_PENDING);
    }
    job_set_status(job, JOB_STATUS_CONCLUDED);
    return G_SOURCE_REMOVE;
}

static gpointer job_thread(gpointer opaque)
{
    Job *job = opaque;

    block_lock();
    job->ret = job->run(job->opaque, &job->err);
    if (job->ret < 0 && !job->err) {
        error_setg_errno(&job->err, -job->ret, "Job failed");
    }
    block_unlock();
    g_idle_add(job_completed, job);
    return NULL;
}

static Job *job_new(const char *id, const char *type, void *opaque,
                    GDestroyNotify free_opaque)
{
    Job *job = g_new0(Job, 1);

    job->refcnt = 1;
    job->id = g_strdup(id);
    job->type = g_strdup(type);
    job->opaque = opaque;
    job->free_opaque = free_opaque;
    jobs = g_list_prepend(jobs, job);
    job_set_status(job, JOB_STATUS_CREATED);
    return job;
}

Job *job_start(const char *id, const char *type, JobRunFunc run, void *opaque,
               GDestroyNotify free_opaque, GError **errp)
{
    Job *job;

    if (!job_check_id(id, errp)) {
        if (free_opaque) {
            free_opaque(opaque);
        }
        return NULL;
    }
    job = job_new(id, type, opaque, free_opaque);
    job->progress_total = 1;
    job->run = run;
    job_set_status(job, JOB_STATUS_RUNNING);
    running_threads++;
    job->thread = g_thread_new("job", job_thread, job);
    return job;
}

/* ---- block jobs ---- */

const char *job_get_id(Job *job)
{
    return job->id;
}

Job *block_job_create(const char *id, const BlockJobDriver *drv, void *opaque,
                      GDestroyNotify free_opaque, bool auto_finalize,
                      bool auto_dismiss, GError **errp)
{
    Job *job;

    if (!job_check_id(id, errp)) {
        return NULL;
    }
    job = job_new(id, drv->type, opaque, free_opaque);
    job->drv = drv;
    job->io_status = "ok";
    if (open_txn) {
        job->txn = open_txn;
        open_txn->jobs = g_list_prepend(open_txn->jobs, job);
    }
    job->auto_finalize = auto_finalize;
    job->auto_dismiss = auto_dismiss;
    return job;
}

void block_job_abandon(Job *job)
{
    job->free_opaque = NULL;        /* the caller still owns it */
    job_set_status(job, JOB_STATUS_NULL);
    jobs = g_list_remove(jobs, job);
    job_unref(job);
}

void block_job_discard(Job *job)
{
    job_set_status(job, JOB_STATUS_ABORTING);
    job_set_status(job, JOB_STATUS_CONCLUDED);
    block_job_abandon(job);
}

void job_txn_begin(void)
{
    open_txn = g_new0(JobTxn, 1);
}

void job_txn_end(void)
{
    if (!open_txn->jobs) {
        g_free(open_txn);
    }
    open_txn = NULL;
}

static int drain_depth;          /* jobs_drain_begin() calls not ended yet */
static GList *late_drained;     /* jobs job_drained() paused meanwhile */

void job_drained(Job *job)
{
    if (job->status != JOB_STATUS_RUNNING) {
        return;
    }
    job_set_status(job, JOB_STATUS_PAUSED);
    if (drain_depth > 0) {
        /* it runs again when the drain around it ends, as in QEMU */
        g_atomic_int_inc(&job->refcnt);
        late_drained = g_list_append(late_drained, job);
    } else {
        job_set_status(job, JOB_STATUS_RUNNING);
    }
}

GList *jobs_drain_begin(BlockDriverState *bs)
{
    GList *paused = NULL;

    drain_depth++;

    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;

        if (job->drv && (job->status == JOB_STATUS_RUNNING ||
                         job->status == JOB_STATUS_READY) &&
            (!bs || bdrv_perm_group_above(bs, job))) {
            /* a ready job pauses as standby, as QEMU's */
            job_set_status(job, job->status == JOB_STATUS_READY ? JOB_STATUS_STANDBY
                                                                : JOB_STATUS_PAUSED);
            g_atomic_int_inc(&job->refcnt);
            paused = g_list_prepend(paused, job);
        }
    }
    return g_list_reverse(paused);
}

void jobs_drain_end(GList *paused)
{
    if (--drain_depth == 0) {
        /* the jobs started meanwhile run first, as in QEMU */
        paused = g_list_concat(late_drained, paused);
        late_drained = NULL;
    }
    for (GList *l = paused; l; l = l->next) {
        Job *job = l->data;

        if (job->status == JOB_STATUS_PAUSED) {
            job_set_status(job, JOB_STATUS_RUNNING);
        } else if (job->status == JOB_STATUS_STANDBY) {
            job_set_status(job, JOB_STATUS_READY);
        }
        job_unref(job);
    }
    g_list_free(paused);
}

void job_set_speed(Job *job, int64_t speed)
{
    g_mutex_lock(&job_mutex);
    job->speed = speed;
    g_cond_broadcast(&job_cond);
    g_mutex_unlock(&job_mutex);
}

bool job_is_cancelled(Job *job)
{
    bool c;

    g_mutex_lock(&job_mutex);
    c = job->cancelled;
    g_mutex_unlock(&job_mutex);
    return c;
}

void job_pause_point(Job *job)
{
    g_mutex_lock(&job_mutex);
    job->sleeping = true;
    while (job->pause_count > 0 && !job->cancelled) {
        g_cond_wait(&job_cond, &job_mutex);
    }
    job->sleeping = false;
    g_mutex_unlock(&job_mutex);
}

void job_progress_set_total(Job *job, int64_t total)
{
    g_mutex_lock(&job_mutex);
    job->progress_total = total;
    g_mutex_unlock(&job_mutex);
}

void job_progress_add(Job *job, int64_t done)
{
    g_mutex_lock(&job_mutex);
    job->progress_current += done;
    g_mutex_unlock(&job_mutex);
}

void job_progress_grow(Job *job, int64_t more)
{
    g_mutex_lock(&job_mutex);
    job->progress_total += more;
    g_mutex_unlock(&job_mutex);
}

void job_rate_limit(Job *job, int64_t bytes)
{
    gint64 deadline;

    g_mutex_lock(&job_mutex);
    if (job->speed > 0 && bytes > 0) {
        deadline = g_get_monotonic_time() +
                   (gint64)MIN((double)bytes * G_USEC_PER_SEC / job->speed,
                               (double)G_MAXINT64 / 4);
        /* until the deadline, a cancel, or speed 0 (block-job-set-speed) */
        job->sleeping = true;
        while (!job->cancelled && job->speed > 0 &&
               g_cond_wait_until(&job_cond, &job_mutex, deadline)) {
        }
        job->sleeping = false;
    }
    g_mutex_unlock(&job_mutex);
}

void job_wait_cancelled(Job *job)
{
    g_mutex_lock(&job_mutex);
    job->sleeping = true;
    while (!job->cancelled && !job->soft_cancel) {
        g_cond_wait(&job_cond, &job_mutex);
    }
    job->sleeping = false;
    g_mutex_unlock(&job_mutex);
}

static int on_error_arg(JsonObject *args, const char *key)
{
    const char *v = opts_peek_str(args, "on-error");

    v = v ? v : opts_peek_str(args, key);
    for (int i = 0; v && qapi_blockdev_on_error[i]; i++) {
        if (!strcmp(v, qapi_blockdev_on_error[i])) {
            return i;
        }
    }
    return ON_ERROR_REPORT;
}

void block_job_set_error_policy(Job *job, JsonObject *args)
{
    job->on_source_error = on_error_arg(args, "on-source-error");
    job->on_target_error = on_error_arg(args, "on-target-error");
}

typedef struct JobErrorEvent {
    Job *job;
    bool is_read;
    const char *action;
} JobErrorEvent;

/* Main loop: BLOCK_JOB_ERROR, then "paused" if the error stopped the job. */
static gboolean job_error_idle(gpointer opaque)
{
    JobErrorEvent *ev = opaque;
    Job *job = ev->job;
    JsonObject *data = json_object_new();
    bool paused;

    json_object_set_string_member(data, "device", job->id);
    json_object_set_string_member(data, "operation", ev->is_read ? "read" : "write");
    json_object_set_string_member(data, "action", ev->action);
    qsd_emit_event("BLOCK_JOB_ERROR", data);
    g_mutex_lock(&job_mutex);
    paused = job->pause_count > 0;
    g_mutex_unlock(&job_mutex);
    if (!strcmp(ev->action, "stop") && paused) {
        if (job->status == JOB_STATUS_RUNNING) {
            job_set_status(job, JOB_STATUS_PAUSED);
        } else if (job->status == JOB_STATUS_READY) {
            job_set_status(job, JOB_STATUS_STANDBY);
        }
    }
    job_unref(job);
    g_free(ev);
    return G_SOURCE_REMOVE;
}

JobErrorAction job_io_error(Job *job, bool is_read, int err)
{
    int policy = is_read ? job->on_source_error : job->on_target_error;
    JobErrorEvent *ev = g_new0(JobErrorEvent, 1);
    JobErrorAction action;

    if (policy == ON_ERROR_ENOSPC) {
        policy = err == -ENOSPC ? ON_ERROR_STOP : ON_ERROR_REPORT;
    }
    if (policy == ON_ERROR_AUTO) {
        policy = ON_ERROR_REPORT;   /* a job has no device policy to follow */
    }
    action = policy == ON_ERROR_IGNORE ? JOB_ERROR_IGNORE :
             policy == ON_ERROR_STOP ? JOB_ERROR_RETRY : JOB_ERROR_REPORT;
    ev->job = job;
    ev->is_read = is_read;
    ev->action = qapi_blockdev_on_error[policy];
    g_mutex_lock(&job_mutex);
    g_atomic_int_inc(&job->refcnt);   /* for the callback */
    if (action == JOB_ERROR_RETRY) {
        job->pause_count++;
        job->io_status = err == -ENOSPC ? "nospace" : "failed";
    }
    g_mutex_unlock(&job_mutex);
    g_idle_add(job_error_idle, ev);
    if (action == JOB_ERROR_RETRY) {
        job_pause_point(job);
    }
    return action;
}

static JsonObject *block_job_event_data(Job *job)
{
    JsonObject *data = json_object_new();

    g_mutex_lock(&job_mutex);
    json_object_set_string_member(data, "device", job->id);
    json_object_set_int_member(data, "len", job->progress_total);
    json_object_set_int_member(data, "offset", job->progress_current);
    json_object_set_int_member(data, "speed", job->speed);
    g_mutex_unlock(&job_mutex);
    json_object_set_string_member(data, "type", job->type);
    return data;
}

/* Main loop: the worker reached "ready". */
static gboolean job_ready_idle(gpointer opaque)
{
    Job *job = opaque;

    if (job->status == JOB_STATUS_RUNNING || job->status == JOB_STATUS_PAUSED) {
        bool paused;

        g_mutex_lock(&job_mutex);
        paused = job->pause_count > 0;
        g_mutex_unlock(&job_mutex);
        job_set_status(job, paused ? JOB_STATUS_STANDBY : JOB_STATUS_READY);
        qsd_emit_event("BLOCK_JOB_READY", block_job_event_data(job));
    }
    job_unref(job);
    return G_SOURCE_REMOVE;
}

int job_ready_wait(Job *job)
{
    int ret;

    g_atomic_int_inc(&job->refcnt);   /* for the callback */
    g_idle_add(job_ready_idle, job);
    g_mutex_lock(&job_mutex);
    job->sleeping = true;
    while (!job->cancelled && !job->soft_cancel && !job->complete_requested) {
        g_cond_wait(&job_cond, &job_mutex);
    }
    job->sleeping = false;
    ret = job->cancelled ? -ECANCELED : job->complete_requested ? 1 : 0;
    g_mutex_unlock(&job_mutex);
    return ret;
}

static void block_job_conclude(Job *job)
{
    job_set_status(job, JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss) {
        job_set_status(job, JOB_STATUS_NULL);
        jobs = g_list_remove(jobs, job);
        job_unref(job);
    }
}

/* Block layer locked: the job failed or was cancelled: "aborting". */
static void block_job_abort_begin(Job *job, bool cancelled)
{
    if (cancelled && !job->error) {
        job->error = g_strdup(g_strerror(ECANCELED));
    }
    job_set_status(job, JOB_STATUS_ABORTING);
}

/* Block layer locked: an aborting job drops its uses and ends. */
static void block_job_abort_end(Job *job, bool cancelled)
{
    JsonObject *data;

    job->drv->clean(job, job->opaque);
    data = block_job_event_data(job);
    if (cancelled) {
        qsd_emit_event("BLOCK_JOB_CANCELLED", data);
    } else {
        json_object_set_string_member(data, "error", job->error);
        qsd_emit_event("BLOCK_JOB_COMPLETED", data);
    }
    block_job_conclude(job);
}

static void block_job_abort(Job *job, bool cancelled)
{
    block_job_abort_begin(job, cancelled);
    block_job_abort_end(job, cancelled);
}

/* Block layer locked: a pending job finalizes. */
static void block_job_finalize(Job *job)
{
    g_autoptr(GError) err = NULL;
    bool completed;

    g_mutex_lock(&job_mutex);
    completed = job->complete_requested;
    g_mutex_unlock(&job_mutex);
    if (!job->drv->finalize(job, job->opaque, completed, &err)) {
        job->error = qmp_error_desc(err->message);
        block_job_abort(job, false);
        return;
    }
    job->drv->clean(job, job->opaque);
    qsd_emit_event("BLOCK_JOB_COMPLETED", block_job_event_data(job));
    block_job_conclude(job);
}

static void block_job_cancel(Job *job, bool force);
static void block_job_join(Job *job);

/*
 * Block layer locked: a job of a grouped transaction is done: @failed (with
 * @cancelled, or an error). It waits until all are done, then all go pending
 * and finalize (newest first, as QEMU's). The first one that fails aborts the
 * group: those done with it abort now, the others are cancelled and end as
 * their workers stop.
 */
static void txn_job_done(Job *job, bool cancelled, bool failed)
{
    JobTxn *txn = job->txn;
    GList *done = NULL;
    bool all_auto = true;

    if (txn->aborting) {
        block_job_abort(job, cancelled || !job->error);
        return;
    }
    if (!failed) {
        job_set_status(job, JOB_STATUS_WAITING);
        for (GList *l = txn->jobs; l; l = l->next) {
            if (((Job *)l->data)->status != JOB_STATUS_WAITING) {
                return;     /* the others are still at work */
            }
        }
        for (GList *l = txn->jobs; l; l = l->next) {
            Job *o = l->data;

            job_set_status(o, JOB_STATUS_PENDING);
            if (!o->auto_finalize) {
                JsonObject *data = json_object_new();
                json_object_set_string_member(data, "type", o->type);
                json_object_set_string_member(data, "id", o->id);
                qsd_emit_event("BLOCK_JOB_PENDING", data);
                all_auto = false;
            }
        }
        /* one job without auto-finalize holds the group for job-finalize */
        for (GList *l = txn->jobs; all_auto && l; l = l->next) {
            block_job_finalize(l->data);
        }
        return;
    }
    txn->aborting = true;
    block_job_abort_begin(job, cancelled);
    for (GList *l = txn->jobs; l; l = l->next) {
        Job *o = l->data;

        if (o == job) {
            continue;
        }
        if (o->thread) {
            block_job_cancel(o, true);
        }
        if (o->thread && !cancelled) {
            /*
             * After an error, QEMU waits for the others to stop and ends them
             * all together (a cancelled job ends before the others stop)
             */
            block_unlock();
            block_job_join(o);
            block_lock();
        }
        if (!o->thread && o->status != JOB_STATUS_CONCLUDED &&
            o->status != JOB_STATUS_NULL && o->status != JOB_STATUS_ABORTING) {
            block_job_abort_begin(o, true);
            done = g_list_append(done, o);
        }
    }
    /* they end in the group's order, the failed one among them */
    for (GList *l = txn->jobs; l; l = l->next) {
        if (l->data == job) {
            block_job_abort_end(job, cancelled);
        } else if (g_list_find(done, l->data)) {
            block_job_abort_end(l->data, true);
        }
    }
    g_list_free(done);
}

/* Main loop: wait for the worker to end; its result is the caller's. */
static void block_job_join(Job *job)
{
    job->worker_done_handled = true;
    g_thread_join(job->thread);
    job->thread = NULL;
    running_threads--;
}

/* Main loop: take the result of a block job's worker (once). */
static void block_job_worker_done(Job *job)
{
    bool cancelled;

    if (job->worker_done_handled) {
        return;
    }
    block_job_join(job);
    g_mutex_lock(&job_mutex);
    cancelled = job->cancelled;
    g_mutex_unlock(&job_mutex);

    block_lock();
    if (job->txn && !(cancelled && (job->ret == -ECANCELED || job->ret == 0)) &&
        job->ret < 0) {
        job->error = job->err ? qmp_error_desc(job->err->message)
                              : g_strdup(g_strerror(-job->ret));
    }
    if (job->txn) {
        txn_job_done(job, cancelled && (job->ret == -ECANCELED || job->ret == 0),
                     job->ret < 0 || cancelled);
    } else if (cancelled && (job->ret == -ECANCELED || job->ret == 0)) {
        block_job_abort(job, true);
    } else if (job->ret < 0) {
        job->error = job->err ? qmp_error_desc(job->err->message)
                              : g_strdup(g_strerror(-job->ret));
        block_job_abort(job, false);
    } else {
        job_set_status(job, JOB_STATUS_WAITING);
        job_set_status(job, JOB_STATUS_PENDING);
        if (job->auto_finalize) {
            block_job_finalize(job);
        } else {
            JsonObject *data = json_object_new();
            json_object_set_string_member(data, "type", job->type);
            json_object_set_string_member(data, "id", job->id);
            qsd_emit_event("BLOCK_JOB_PENDING", data);
        }
    }
    g_clear_error(&job->err);
    block_unlock();
}

static gboolean block_job_done_idle(gpointer opaque)
{
    Job *job = opaque;

    block_job_worker_done(job);
    job_unref(job);
    return G_SOURCE_REMOVE;
}

static gpointer block_job_thread(gpointer opaque)
{
    Job *job = opaque;

    job->ret = job->drv->run(job, job->opaque, &job->err);
    if (job->ret < 0 && job->ret != -ECANCELED && !job->err) {
        error_setg_errno(&job->err, -job->ret, "Job failed");
    }
    g_idle_add(block_job_done_idle, job);
    return NULL;
}

void block_job_run(Job *job)
{
    job_set_status(job, JOB_STATUS_RUNNING);
    running_threads++;
    g_atomic_int_inc(&job->refcnt);          /* for block_job_done_idle */
    job->thread = g_thread_new("block-job", block_job_thread, job);
}

/* Ask a block job to stop: @force, or else a ready job completes without pivot. */
static void block_job_cancel(Job *job, bool force)
{
    g_mutex_lock(&job_mutex);
    if (!force && (job->status == JOB_STATUS_READY || job->status == JOB_STATUS_STANDBY)) {
        job->soft_cancel = true;
    } else {
        job->cancelled = true;
        /* a paused job runs again to end, as QEMU's does */
        job->pause_count = 0;
    }
    g_cond_broadcast(&job_cond);
    g_mutex_unlock(&job_mutex);
    if (job->cancelled && job->status == JOB_STATUS_PAUSED) {
        job_set_status(job, JOB_STATUS_RUNNING);
    } else if (job->cancelled && job->status == JOB_STATUS_STANDBY) {
        job_set_status(job, JOB_STATUS_READY);
    }
    if (job->thread == NULL && job->txn && !job->txn->aborting &&
        (job->status == JOB_STATUS_WAITING || job->status == JOB_STATUS_PENDING)) {
        /* done, waiting for its group (or job-finalize): the group aborts */
        block_lock();
        txn_job_done(job, true, true);
        block_unlock();
    } else if (job->thread == NULL && job->status == JOB_STATUS_PENDING) {
        /* the worker is done: waiting for job-finalize */
        block_lock();
        block_job_abort(job, true);
        block_unlock();
    }
}

bool job_settling(void)
{
    bool settling = false;

    g_mutex_lock(&job_mutex);
    for (GList *l = jobs; l && !settling; l = l->next) {
        Job *job = l->data;
        settling = job->drv && job->thread &&
                   (job->cancelled || job->soft_cancel || job->complete_requested);
    }
    g_mutex_unlock(&job_mutex);
    return settling;
}

void job_cancel_all_sync(void)
{
    GList *copy = g_list_copy(jobs);

    /* cancelling one job of a group can end the others: hold them all */
    for (GList *l = copy; l; l = l->next) {
        g_atomic_int_inc(&((Job *)l->data)->refcnt);
    }
    /* QEMU's shutdown drains the graph first: the jobs pause, oldest first */
    for (GList *l = g_list_last(copy); l; l = l->prev) {
        Job *job = l->data;

        if (job->drv && job->status == JOB_STATUS_READY) {
            job_set_status(job, JOB_STATUS_STANDBY);
        } else if (job->drv && job->status == JOB_STATUS_RUNNING) {
            job_set_status(job, JOB_STATUS_PAUSED);
        }
    }
    /* then each, newest first, runs again to be cancelled */
    for (GList *l = copy; l; l = l->next) {
        Job *job = l->data;

        if (!job->drv || job->status == JOB_STATUS_CONCLUDED ||
            job->status == JOB_STATUS_NULL || job->status == JOB_STATUS_ABORTING) {
            continue;
        }
        if (job->status == JOB_STATUS_STANDBY) {
            job_set_status(job, JOB_STATUS_READY);
        } else if (job->status == JOB_STATUS_PAUSED) {
            job_set_status(job, JOB_STATUS_RUNNING);
        }
        block_job_cancel(job, true);
        if (job->thread) {
            block_job_worker_done(job);
        }
    }
    g_list_free_full(copy, (GDestroyNotify)job_unref);
}

/* ---- commands ---- */

const QArg qapi_job_id_args[] = {
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_job_device_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_job_cancel_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "force", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

const QArg qapi_block_job_set_speed_args[] = {
    { "device", QT_STR, false, NULL, NULL, NULL },
    { "speed", QT_INT, false, NULL, NULL, NULL },
    QARG_END,
};

static bool job_verb_allowed(Job *job, const char *verb, const JobStatus *allowed,
                             GError **errp)
{
    for (const JobStatus *s = allowed; *s != JOB_STATUS_NULL; s++) {
        if (*s == job->status) {
            return true;
        }
    }
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'",
               job->id, job_status_str[job->status], verb);
    return false;
}

/* Find a job that may take @verb in its current state. */
static Job *job_for_verb(JsonObject *args, const char *verb, const JobStatus *allowed,
                         GError **errp)
{
    Job *job = job_find(opts_peek_str(args, "id"));

    if (!job) {
        error_setg(errp, "Job not found");
        return NULL;
    }
    return job_verb_allowed(job, verb, allowed, errp) ? job : NULL;
}

/* The block job named by @key ("device"; "id" for dismiss and finalize) of the
 * block-job-* commands, which do not find other jobs. */
static Job *block_job_by(JsonObject *args, const char *key, const char *verb,
                         const JobStatus *allowed, GError **errp)
{
    const char *id = opts_peek_str(args, key);
    Job *job = job_find(id);

    if (!job || !job->drv) {
        g_set_error(errp, QMP_ERROR_DEVICE_NOT_ACTIVE, 0, "Block job '%s' not found", id);
        return NULL;
    }
    return job_verb_allowed(job, verb, allowed, errp) ? job : NULL;
}

static const JobStatus cancel_states[] = {
    JOB_STATUS_CREATED, JOB_STATUS_RUNNING, JOB_STATUS_PAUSED, JOB_STATUS_READY,
    JOB_STATUS_STANDBY, JOB_STATUS_WAITING, JOB_STATUS_PENDING, JOB_STATUS_NULL,
};
static const JobStatus pause_states[] = {
    JOB_STATUS_CREATED, JOB_STATUS_RUNNING, JOB_STATUS_PAUSED, JOB_STATUS_READY,
    JOB_STATUS_STANDBY, JOB_STATUS_NULL,
};
static const JobStatus complete_states[] = { JOB_STATUS_READY, JOB_STATUS_NULL };
static const JobStatus finalize_states[] = { JOB_STATUS_PENDING, JOB_STATUS_NULL };
static const JobStatus dismiss_states[] = { JOB_STATUS_CONCLUDED, JOB_STATUS_NULL };

JsonNode *qmp_query_jobs(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        JsonObject *o = json_object_new();

        g_mutex_lock(&job_mutex);
        json_object_set_int_member(o, "current-progress", job->progress_current);
        json_object_set_string_member(o, "status", job_status_str[job->status]);
        json_object_set_int_member(o, "total-progress", job->progress_total);
        g_mutex_unlock(&job_mutex);
        json_object_set_string_member(o, "type", job->type);
        json_object_set_string_member(o, "id", job->id);
        if (job->error) {
            json_object_set_string_member(o, "error", job->error);
        }
        json_array_add_object_element(arr, o);
    }
    json_node_take_array(n, arr);
    return n;
}

JsonNode *qmp_query_block_jobs(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        JsonObject *o;
        bool ready = job->status == JOB_STATUS_READY || job->status == JOB_STATUS_STANDBY;

        if (!job->drv) {
            continue;
        }
        o = json_object_new();
        g_mutex_lock(&job_mutex);
        json_object_set_boolean_member(o, "auto-finalize", job->auto_finalize);
        json_object_set_string_member(o, "io-status", job->io_status);
        json_object_set_string_member(o, "device", job->id);
        json_object_set_boolean_member(o, "auto-dismiss", job->auto_dismiss);
        json_object_set_boolean_member(o, "busy", job->status == JOB_STATUS_RUNNING &&
                                       job->pause_count == 0 && !job->sleeping);
        json_object_set_int_member(o, "len", job->progress_total);
        json_object_set_int_member(o, "offset", job->progress_current);
        json_object_set_string_member(o, "status", job_status_str[job->status]);
        json_object_set_boolean_member(o, "paused", job->pause_count > 0);
        json_object_set_int_member(o, "speed", job->speed);
        json_object_set_boolean_member(o, "ready", ready);
        json_object_set_string_member(o, "type", job->type);
        if (job->error) {
            json_object_set_string_member(o, "error", job->error);
        }
        g_mutex_unlock(&job_mutex);
        json_array_add_object_element(arr, o);
    }
    json_node_take_array(n, arr);
    return n;
}

static JsonNode *job_dismiss(Job *job)
{
    job_set_status(job, JOB_STATUS_NULL);
    jobs = g_list_remove(jobs, job);
    job_unref(job);
    return qjson_empty_object();
}

JsonNode *qmp_job_dismiss(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "dismiss", dismiss_states, errp);

    return job ? job_dismiss(job) : NULL;
}

JsonNode *qmp_block_job_dismiss(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "id", "dismiss", dismiss_states, errp);

    return job ? job_dismiss(job) : NULL;
}

JsonNode *qmp_job_cancel(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "cancel", cancel_states, errp);

    if (!job) {
        return NULL;
    }
    if (job->drv) {
        block_job_cancel(job, true);
        return qjson_empty_object();
    }
    /*
     * The worker cannot be interrupted inside a driver call (QEMU's cannot either
     * while it preallocates): the job ends as cancelled when the call returns.
     */
    job->cancelled = true;
    return qjson_empty_object();
}

JsonNode *qmp_block_job_cancel(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "device", "cancel", cancel_states, errp);

    if (!job) {
        return NULL;
    }
    block_job_cancel(job, opts_get_bool(args, "force", false, NULL));
    return qjson_empty_object();
}

static JsonNode *job_do_finalize(Job *job)
{
    if (job->drv && job->txn) {
        /* the whole group finalizes */
        GList *group = g_list_copy(job->txn->jobs);

        for (GList *l = group; l; l = l->next) {
            g_atomic_int_inc(&((Job *)l->data)->refcnt);
        }
        block_lock();
        for (GList *l = group; l; l = l->next) {
            if (((Job *)l->data)->status == JOB_STATUS_PENDING) {
                block_job_finalize(l->data);
            }
        }
        block_unlock();
        g_list_free_full(group, (GDestroyNotify)job_unref);
    } else if (job->drv) {
        block_lock();
        block_job_finalize(job);
        block_unlock();
    }
    /* create jobs finalize themselves, so none is ever left pending */
    return qjson_empty_object();
}

JsonNode *qmp_job_finalize(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "finalize", finalize_states, errp);

    return job ? job_do_finalize(job) : NULL;
}

JsonNode *qmp_block_job_finalize(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "id", "finalize", finalize_states, errp);

    return job ? job_do_finalize(job) : NULL;
}

static JsonNode *job_do_pause(Job *job)
{
    g_mutex_lock(&job_mutex);
    job->pause_count++;
    g_mutex_unlock(&job_mutex);
    if (job->status == JOB_STATUS_RUNNING) {
        job_set_status(job, JOB_STATUS_PAUSED);
    } else if (job->status == JOB_STATUS_READY) {
        job_set_status(job, JOB_STATUS_STANDBY);
    }
    return qjson_empty_object();
}

static JsonNode *job_do_resume(Job *job, GError **errp)
{
    g_mutex_lock(&job_mutex);
    if (job->pause_count == 0) {
        g_mutex_unlock(&job_mutex);
        error_setg(errp, "Can't resume a job that was not paused");
        return NULL;
    }
    job->pause_count--;
    job->io_status = "ok";
    g_cond_broadcast(&job_cond);
    g_mutex_unlock(&job_mutex);
    if (job->pause_count == 0 && job->status == JOB_STATUS_PAUSED) {
        job_set_status(job, JOB_STATUS_RUNNING);
    } else if (job->pause_count == 0 && job->status == JOB_STATUS_STANDBY) {
        job_set_status(job, JOB_STATUS_READY);
    }
    return qjson_empty_object();
}

static JsonNode *job_do_complete(Job *job)
{
    g_mutex_lock(&job_mutex);
    job->complete_requested = true;
    g_cond_broadcast(&job_cond);
    g_mutex_unlock(&job_mutex);
    return qjson_empty_object();
}

JsonNode *qmp_job_pause(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "pause", pause_states, errp);

    return job ? job_do_pause(job) : NULL;
}

JsonNode *qmp_block_job_pause(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "device", "pause", pause_states, errp);

    return job ? job_do_pause(job) : NULL;
}

JsonNode *qmp_job_resume(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "resume", pause_states, errp);

    return job ? job_do_resume(job, errp) : NULL;
}

JsonNode *qmp_block_job_resume(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "device", "resume", pause_states, errp);

    return job ? job_do_resume(job, errp) : NULL;
}

JsonNode *qmp_job_complete(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = job_for_verb(args, "complete", complete_states, errp);

    return job ? job_do_complete(job) : NULL;
}

JsonNode *qmp_block_job_complete(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "device", "complete", complete_states, errp);

    return job ? job_do_complete(job) : NULL;
}

JsonNode *qmp_block_job_set_speed(JsonObject *args, Monitor *mon, GError **errp)
{
    Job *job = block_job_by(args, "device", "set-speed", pause_states, errp);
    int64_t speed = json_object_get_int_member(args, "speed");

    if (!job) {
        return NULL;
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return NULL;
    }
    job_set_speed(job, speed);
    return qjson_empty_object();
}
