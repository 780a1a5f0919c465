/*
 * Jobs: long-running operations (blockdev-create, amend) run by a worker thread
 * that holds the block layer lock, with QEMU's job state machine and its
 * JOB_STATUS_CHANGE events emitted from the main loop.
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

#endif
