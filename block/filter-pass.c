/*
 * Filters' pass-through callbacks (a request goes to the "file" child as it
 * is), shared by the filter drivers, and "mirror_top", made of nothing else:
 * the node QEMU's mirror and active commit jobs put over their source while
 * they run (bdrv_open_job_filter); the job tracks the writes on the child
 * itself. mirror_top is not in the driver list: users cannot create one.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

int bdrv_filter_pass_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           void *buf, int flags)
{
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

int bdrv_filter_pass_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            const void *buf, int flags)
{
    return bdrv_pwrite(bs->file, offset, bytes, buf, flags);
}

int bdrv_filter_pass_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                   int flags)
{
    return bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
}

int bdrv_filter_pass_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return bdrv_pdiscard(bs->file, offset, bytes);
}

int bdrv_filter_pass_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                              PreallocMode prealloc, int flags, GError **errp)
{
    return bdrv_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

int bdrv_filter_pass_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

BlockDriver bdrv_mirror_top = {
    .format_name = "mirror_top",
    .is_filter = true,
    .named_by_file = true,
    .pread = bdrv_filter_pass_pread,
    .pwrite = bdrv_filter_pass_pwrite,
    .pwrite_zeroes = bdrv_filter_pass_pwrite_zeroes,
    .pdiscard = bdrv_filter_pass_pdiscard,
    .truncate = bdrv_filter_pass_truncate,
    .block_status = bdrv_filter_pass_block_status,
};
