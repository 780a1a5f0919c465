/*
 * The "compress" filter: every write through it is a compressed write to its
 * "file" child (which must be a format that compresses: qcow2). Its requests
 * are aligned to the child's cluster size, so the generic layer turns a partial
 * cluster write into a read-modify-write of whole clusters, each written
 * compressed. Reads, zero writes and discards pass through.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

static int compress_open(BlockDriverState *bs, JsonObject *opts, int flags,
                         GError **errp)
{
    BlockDriverInfo bdi;

    if (!bs->file->drv->supports_compressed_writes) {
        error_setg(errp, "Compression is not supported for underlying format: %s",
                   bs->file->drv->format_name);
        return -ENOTSUP;
    }
    bs->request_alignment = bs->file->request_alignment;
    if (bdrv_get_info(bs->file, &bdi) == 0 && bdi.cluster_size > 0) {
        bs->request_alignment = MAX(bs->request_alignment, (uint32_t)bdi.cluster_size);
    }
    return 0;
}

static int compress_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          void *buf, int flags)
{
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

static int compress_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           const void *buf, int flags)
{
    return bdrv_pwrite(bs->file, offset, bytes, buf, flags | BDRV_REQ_WRITE_COMPRESSED);
}

static int compress_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int flags)
{
    return bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int compress_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return bdrv_pdiscard(bs->file, offset, bytes);
}

static int compress_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                 int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

BlockDriver bdrv_compress = {
    .format_name = "compress",
    .is_filter = true,
    .open = compress_open,
    .pread = compress_pread,
    .pwrite = compress_pwrite,
    .pwrite_zeroes = compress_pwrite_zeroes,
    .pdiscard = compress_pdiscard,
    .block_status = compress_block_status,
};
