/*
 * Where guest bytes lie in a host file as they are, for zero-copy readers
 * (the NBD server's sendfile): a walk down a node's block status through
 * drivers that map data 1:1 to a file-posix node that reads it through the
 * page cache, on nodes that nobody can ever write.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

/* Opened read-only, and not as a read-write node made read-only for a while
 * (those can be made writable again): what its file holds cannot change. */
static bool never_written(BlockDriverState *bs)
{
    return bdrv_is_read_only(bs) && !bs->ro_in_place &&
           !(bs->open_flags & BDRV_O_COPY_ON_READ);
}

bool bdrv_map_host_file(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        int64_t *pnum, int *fd, int64_t *fd_offset)
{
    for (int depth = 0; depth < 8 && bs && bs->drv && never_written(bs); depth++) {
        int64_t n, map = 0, len;
        BlockDriverState *file = NULL;
        int ret;

        if (bs->drv->host_fd) {
            int f = bs->drv->host_fd(bs);

            len = bdrv_getlength(bs);
            if (f < 0 || len < 0 || offset >= len) {
                return false;
            }
            *pnum = MIN(bytes, len - offset);
            *fd = f;
            *fd_offset = offset;
            return true;
        }
        if (!bs->drv->maps_data_as_is) {
            return false;
        }
        ret = bdrv_block_status(bs, offset, bytes, &n, &map, &file);
        if (ret < 0 || n <= 0 || !file || (ret & BDRV_BLOCK_ZERO) ||
            (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID)) !=
            (BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID)) {
            return false;
        }
        bytes = n;
        offset = map;
        bs = file;
    }
    return false;
}
