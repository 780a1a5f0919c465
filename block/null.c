/*
 * The "null-co" protocol driver (QEMU's null block device): a node of a given
 * size (1 GiB unless size= says otherwise) whose writes vanish and whose reads
 * leave the buffer as it is, or zero it with read-zeroes=on. Used as a cheap
 * export or backing node by tests (null-co:// file names).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

typedef struct BDRVNullState {
    int64_t length;
    bool read_zeroes;
} BDRVNullState;

static const char *const null_runtime_opts[] = {
    "filename", "size", "latency-ns", "read-zeroes", NULL,
};

static int null_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVNullState *s = bs->opaque;
    const char *fn = opts_peek_str(opts, "filename");
    GError *local = NULL;

    if (fn && strcmp(fn, "null-co://")) {
        error_setg(errp, "The only allowed filename for this driver is 'null-co://'");
        return -EINVAL;
    }
    s->length = opts_get_size(opts, "size", 1 * GiB, &local);
    if (!local) {
        opts_get_int(opts, "latency-ns", 0, &local);
    }
    if (!local) {
        s->read_zeroes = opts_get_bool(opts, "read-zeroes", false, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    g_free(bs->filename);
    bs->filename = g_strdup("null-co://");
    return 0;
}

static int null_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                      int flags)
{
    BDRVNullState *s = bs->opaque;

    if (s->read_zeroes) {
        memset(buf, 0, bytes);
    }
    return 0;
}

static int null_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       const void *buf, int flags)
{
    return 0;
}

static int null_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int flags)
{
    return 0;
}

static int64_t null_getlength(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;

    return s->length;
}

static int64_t null_allocated_size(BlockDriverState *bs)
{
    return 0;
}

static int null_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVNullState *s = bs->opaque;

    *pnum = bytes;
    *map = offset;
    *file = bs;
    /* nothing is data; with read-zeroes it reads as zeros */
    return s->read_zeroes ? BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID : 0;
}

BlockDriver bdrv_null_co = {
    .format_name = "null-co",
    .instance_size = sizeof(BDRVNullState),
    .is_protocol = true,
    .runtime_opts = null_runtime_opts,
    .open = null_open,
    .pread = null_pread,
    .pwrite = null_pwrite,
    .pwrite_zeroes = null_pwrite_zeroes,
    .getlength = null_getlength,
    .get_allocated_file_size = null_allocated_size,
    .block_status = null_block_status,
};
