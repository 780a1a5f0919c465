/*
 * A block job's filter node over its node: put in place and taken off
 * (job-filter.c).
 */
#ifndef QSD_JOB_FILTER_H
#define QSD_JOB_FILTER_H

#include "job.h"

/*
 * Move @bs's users onto @filter (opened over @bs), with @job's use of it
 * owned by @use; @behind: what they need stays behind the job (an active
 * commit's). false with errp set (nothing moved) on a permission conflict.
 */
bool job_filter_insert(BlockDriverState *filter, BlockDriverState *bs, Job *job,
                       bool behind, int *use, GError **errp);
/* Move *@filter's users onto what it filters, drop it, clear *@filter. */
void job_filter_remove(BlockDriverState **filter, int *use);

#endif
