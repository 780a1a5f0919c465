/*
 * The job state machine and the job commands (query-jobs, job-dismiss, job-cancel,
 * job-finalize). A job goes created -> running; its worker thread then reports
 * back to the main loop, which walks it through waiting -> pending -> concluded on
 * success, or aborting -> concluded on failure or cancellation, and to null when
 * dismissed, emitting JOB_STATUS_CHANGE for each step as QEMU does. Jobs finalize
 * and never dismiss themselves (blockdev-create's jobs have no such options).
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
    char *id;
    char *type;
    JobStatus status;
    int64_t progress_current, progress_total;
    char *error;
    bool cancelled;
    GThread *thread;
    JobRunFunc run;
    void *opaque;
    GDestroyNotify free_opaque;
    int ret;                /* set by the worker */
    GError *err;
};

static GList *jobs;             /* newest first, as query-jobs lists them */
static int running_threads;

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

/* Main loop: the worker finished. */
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

Job *job_start(const char *id, const char *type, JobRunFunc run, void *opaque,
               GDestroyNotify free_opaque, GError **errp)
{
    Job *job;

    if (!id_wellformed(id)) {
        error_setg(errp, "Invalid job ID '%s'", id);
        goto fail;
    }
    if (job_find(id)) {
        error_setg(errp, "Job ID '%s' already in use", id);
        goto fail;
    }
    job = g_new0(Job, 1);
    job->id = g_strdup(id);
    job->type = g_strdup(type);
    job->progress_total = 1;
    job->run = run;
    job->opaque = opaque;
    job->free_opaque = free_opaque;
    jobs = g_list_prepend(jobs, job);
    job_set_status(job, JOB_STATUS_CREATED);
    job_set_status(job, JOB_STATUS_RUNNING);
    running_threads++;
    job->thread = g_thread_new("job", job_thread, job);
    return job;

fail:
    if (free_opaque) {
        free_opaque(opaque);
    }
    return NULL;
}

static void job_free(Job *job)
{
    if (job->free_opaque) {
        job->free_opaque(job->opaque);
    }
    g_free(job->id);
    g_free(job->type);
    g_free(job->error);
    g_free(job);
}

/* ---- commands ---- */

const QArg qapi_job_id_args[] = {
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

/* Find a job that may take @verb in its current state. */
static Job *job_for_verb(JsonObject *args, const char *verb, const JobStatus *allowed,
                         GError **errp)
{
    Job *job = job_find(opts_peek_str(args, "id"));

    if (!job) {
        error_setg(errp, "Job not found");
        return NULL;
    }
    for (const JobStatus *s = allowed; *s != JOB_STATUS_NULL; s++) {
        if (*s == job->status) {
            return job;
        }
    }
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'",
               job->id, job_status_str[job->status], verb);
    return NULL;
}

JsonNode *qmp_query_jobs(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        JsonObject *o = json_object_new();

        json_object_set_int_member(o, "current-progress", job->progress_current);
        json_object_set_string_member(o, "status", job_status_str[job->status]);
        json_object_set_int_member(o, "total-progress", job->progress_total);
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

JsonNode *qmp_job_dismiss(JsonObject *args, Monitor *mon, GError **errp)
{
    static const JobStatus allowed[] = { JOB_STATUS_CONCLUDED, JOB_STATUS_NULL };
    Job *job = job_for_verb(args, "dismiss", allowed, errp);

    if (!job) {
        return NULL;
    }
    job_set_status(job, JOB_STATUS_NULL);
    jobs = g_list_remove(jobs, job);
    job_free(job);
    return qjson_empty_object();
}

JsonNode *qmp_job_cancel(JsonObject *args, Monitor *mon, GError **errp)
{
    static const JobStatus allowed[] = {
        JOB_STATUS_CREATED, JOB_STATUS_RUNNING, JOB_STATUS_PAUSED, JOB_STATUS_READY,
        JOB_STATUS_STANDBY, JOB_STATUS_WAITING, JOB_STATUS_PENDING, JOB_STATUS_NULL,
    };
    Job *job = job_for_verb(args, "cancel", allowed, errp);

    if (!job) {
        return NULL;
    }
    /*
     * The worker cannot be interrupted inside a driver call (QEMU's cannot either
     * while it preallocates): the job ends as cancelled when the call returns.
     */
    job->cancelled = true;
    return qjson_empty_object();
}

JsonNode *qmp_job_finalize(JsonObject *args, Monitor *mon, GError **errp)
{
    static const JobStatus allowed[] = { JOB_STATUS_PENDING, JOB_STATUS_NULL };

    /* our jobs finalize themselves, so none is ever left pending */
    return job_for_verb(args, "finalize", allowed, errp) ? qjson_empty_object() : NULL;
}
