/*
 * Write thresholds (QEMU's block-set-write-threshold): a node remembers one
 * offset; the first write, zero write or discard reaching past it through
 * the generic request paths clears it and is reported (once) to whoever
 * registered for it, the daemon's BLOCK_WRITE_THRESHOLD event. Set on a
 * qcow2 node's file, it tells how far the image has grown on a thin block
 * device. Requests may run in several threads: the threshold is taken with
 * a compare-and-swap, so exactly one of them reports it.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

static BdrvWriteThresholdFunc notify;

void bdrv_write_threshold_set_notify(BdrvWriteThresholdFunc fn)
{
    notify = fn;
}

void bdrv_write_threshold_set(BlockDriverState *bs, uint64_t threshold)
{
    __atomic_store_n(&bs->write_threshold, threshold, __ATOMIC_SEQ_CST);
}

uint64_t bdrv_write_threshold_get(BlockDriverState *bs)
{
    return __atomic_load_n(&bs->write_threshold, __ATOMIC_SEQ_CST);
}

void bdrv_write_threshold_check(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    uint64_t t = __atomic_load_n(&bs->write_threshold, __ATOMIC_SEQ_CST);
    uint64_t end = (uint64_t)offset + (uint64_t)bytes;

    if (!t || end <= t) {
        return;
    }
    if (__atomic_compare_exchange_n(&bs->write_threshold, &t, 0, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) && notify) {
        notify(bs->node_name, t, end - t);
    }
}
