/*
 * "mirror_top": the filter node QEMU's mirror and active commit jobs put over
 * their source while they run (bdrv_open_job_filter). It passes every request
 * through to its child; the job tracks the writes on the child itself. It is
 * not in the driver list: users cannot create one.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

static int mt_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                    int flags)
{
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

static int mt_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     const void *buf, int flags)
{
    return bdrv_pwrite(bs->file, offset, bytes, buf, flags);
}

static int mt_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int flags)
{
    return bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int mt_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return bdrv_pdiscard(bs->file, offset, bytes);
}

static int mt_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                       PreallocMode prealloc, int flags, GError **errp)
{
    return bdrv_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

static int mt_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

BlockDriver bdrv_mirror_top = {
    .format_name = "mirror_top",
    .is_filter = true,
    .named_by_file = true,
    .pread = mt_pread,
    .pwrite = mt_pwrite,
    .pwrite_zeroes = mt_pwrite_zeroes,
    .pdiscard = mt_pdiscard,
    .truncate = mt_truncate,
    .block_status = mt_block_status,
};
