/*
 * The filter node a block job puts over its node while it runs (QEMU's
 * copy-before-write for backup, mirror_top, copy-on-read for stream): the
 * node's users (exports, parent nodes) move onto the filter, and back onto
 * what it filters when the job ends. The job's own (empty) use of the filter
 * ties it to the drains that reach the filter.
 */
#include "job-filter.h"

bool job_filter_insert(BlockDriverState *filter, BlockDriverState *bs, Job *job,
                       bool behind, int *use, GError **errp)
{
    bdrv_perm_attach_user(filter, use, "block job", "filter", job, 0, BLK_PERM_ALL,
                          NULL);
    if (behind) {
        /* the users moving onto the filter stay behind the job (active commit) */
        bdrv_perm_put_behind(bs, job, true);
    }
    bdrv_ref(bs);
    qsd_export_replace_node(bs, filter);
    if (bdrv_replace_in_parents(bs, filter, errp) < 0) {
        bdrv_replace_in_parents(filter, bs, NULL);
        qsd_export_replace_node(filter, bs);
        bdrv_perm_detach(filter, use);
        bdrv_unref(bs);
        return false;
    }
    bdrv_unref(bs);
    return true;
}

void job_filter_remove(BlockDriverState **filter, int *use)
{
    BlockDriverState *below;

    if (!*filter) {
        return;
    }
    below = bdrv_file_child(*filter);
    /* QEMU drains the filter to take it off: the jobs above pause a moment */
    jobs_drain_end(jobs_drain_begin(*filter));
    bdrv_perm_detach(*filter, use);
    bdrv_ref(below);
    qsd_export_replace_node(*filter, below);
    bdrv_replace_in_parents(*filter, below, NULL);
    g_clear_pointer(filter, bdrv_unref);
    bdrv_unref(below);
}
