/*
 * qcow2 request concurrency: the node's own lock and its locked entry points.
 * block/aio.c may run a qcow2 node's requests in several threads at once
 * (docs/devel/architecture.md, "Requests in flight"). Every request holds the
 * node's lock while it reads or changes metadata (tables, caches, refcounts,
 * allocation) and lets go of it around guest data I/O, as QEMU's qcow2 drops
 * its lock around data: requests on other clusters then run meanwhile, while
 * requests on the same cluster were kept in order by block/aio.c
 * (serialize_align). A fatal corruption makes the node unusable: every later
 * request fails with -ENOMEDIUM, as QEMU's (which drops the node's driver).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include "block/aio.h"

/* Recursive: a request that calls into its own node again keeps the lock. */
void qcow2_lock(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    GThread *self = g_thread_self();

    if (__atomic_load_n(&s->lock_owner, __ATOMIC_RELAXED) == self) {
        s->lock_depth++;
        return;
    }
    g_mutex_lock(&s->lock);
    __atomic_store_n(&s->lock_owner, self, __ATOMIC_RELAXED);
    s->lock_depth = 1;
    bdrv_node_lock_note(1);
}

void qcow2_unlock(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (--s->lock_depth == 0) {
        bdrv_node_lock_note(-1);
        __atomic_store_n(&s->lock_owner, NULL, __ATOMIC_RELAXED);
        g_mutex_unlock(&s->lock);
    }
}

/*
 * Around guest data I/O: let other requests in, unless this request entered
 * the node more than once (a nested call keeps the lock) or data I/O needs the
 * node's state (encryption shares one context and bounce buffer).
 */
bool qcow2_io_unlock(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->lock_depth != 1 || s->crypto) {
        return false;
    }
    qcow2_unlock(bs);
    return true;
}

void qcow2_io_relock(BlockDriverState *bs, bool unlocked)
{
    if (unlocked) {
        qcow2_lock(bs);
    }
}

bool qcow2_is_dead(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return __atomic_load_n(&s->dead, __ATOMIC_SEQ_CST);
}

void qcow2_set_dead(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    __atomic_store_n(&s->dead, true, __ATOMIC_SEQ_CST);
}

int qcow2_locked_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                       int flags)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_co_pread(bs, offset, bytes, buf, flags);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        const void *buf, int flags)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_co_pwrite(bs, offset, bytes, buf, flags);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               int flags)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_co_pwrite_zeroes(bs, offset, bytes, flags);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_co_pdiscard(bs, offset, bytes);
    qcow2_unlock(bs);
    return ret;
}

/* A dead node has nothing left to write back (QEMU: a flush without a driver succeeds). */
int qcow2_locked_flush_to_os(BlockDriverState *bs)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return 0;
    }
    qcow2_lock(bs);
    ret = qcow2_co_flush_to_os(bs);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_co_block_status(bs, offset, bytes, pnum, map, file);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_load_vmstate(bs, buf, pos, bytes);
    qcow2_unlock(bs);
    return ret;
}

int qcow2_locked_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos,
                              int64_t bytes)
{
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    qcow2_lock(bs);
    ret = qcow2_save_vmstate(bs, buf, pos, bytes);
    qcow2_unlock(bs);
    return ret;
}
