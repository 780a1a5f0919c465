/*
 * The "copy-on-read" filter: reads through it copy what they read from the
 * backing chain of its "file" child into that child (QEMU's copy-on-read, see
 * io.c), so the child fills up with its backing data as it is read. With
 * "bottom" (a node in the child's backing chain), only data that is allocated
 * above and including that node is copied. Everything else passes through. The
 * filter always needs to write its child, so it cannot be used read-only.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

typedef struct BDRVCopyOnReadState {
    BlockDriverState *bottom;   /* borrowed: a node of bs->file's backing chain */
} BDRVCopyOnReadState;

static const char *const cor_runtime_opts[] = { "bottom", NULL };

static int cor_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVCopyOnReadState *s = bs->opaque;
    const char *bottom = opts_peek_str(opts, "bottom");

    if (bdrv_is_read_only(bs->file) || !(flags & BDRV_O_RDWR)) {
        error_setg(errp, "Block node is read-only");
        return -EACCES;
    }
    if (bottom) {
        BlockDriverState *b = bdrv_find_node(bottom);
        BlockDriverState *p;

        if (!b) {
            error_setg(errp, "Bottom node '%s' not found", bottom);
            return -EINVAL;
        }
        for (p = bs->file->backing; p && p != b; p = p->backing) {
            /* walk down */
        }
        if (!p) {
            error_setg(errp, "Bottom node '%s' is not a backing file of the filtered "
                       "node", bottom);
            return -EINVAL;
        }
        s->bottom = b;
    }
    bs->request_alignment = bs->file->request_alignment;
    return 0;
}

/* Is [offset, offset + bytes) allocated between the child's backing and bottom? */
static int allocated_above_bottom(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int64_t *pnum)
{
    BDRVCopyOnReadState *s = bs->opaque;
    int64_t best = bytes;

    for (BlockDriverState *p = bs->file->backing; p; p = p->backing) {
        int64_t n;
        int ret = bdrv_is_allocated(p, offset, bytes, &n);

        if (ret < 0) {
            return ret;
        }
        if (ret) {
            *pnum = n;
            return 1;
        }
        best = MIN(best, n > 0 ? n : bytes);
        if (p == s->bottom) {
            break;
        }
    }
    *pnum = best;
    return 0;
}

static int cor_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                     int flags)
{
    BDRVCopyOnReadState *s = bs->opaque;

    if (!s->bottom) {
        return bdrv_pread(bs->file, offset, bytes, buf, flags | BDRV_REQ_COPY_ON_READ);
    }
    while (bytes > 0) {
        int64_t n;
        int ret = allocated_above_bottom(bs, offset, bytes, &n);

        if (ret < 0) {
            return ret;
        }
        n = MIN(MAX(n, 1), bytes);
        ret = bdrv_pread(bs->file, offset, n, buf,
                         flags | (ret ? BDRV_REQ_COPY_ON_READ : 0));
        if (ret < 0) {
            return ret;
        }
        offset += n;
        bytes -= n;
        buf = (uint8_t *)buf + n;
    }
    return 0;
}

void bdrv_cor_set_bottom(BlockDriverState *filter, BlockDriverState *bottom)
{
    BDRVCopyOnReadState *s = filter->opaque;

    s->bottom = bottom;
}

BlockDriver bdrv_copy_on_read = {
    .format_name = "copy-on-read",
    .instance_size = sizeof(BDRVCopyOnReadState),
    .is_filter = true,
    .runtime_opts = cor_runtime_opts,
    .open = cor_open,
    .pread = cor_pread,
    .pwrite = bdrv_filter_pass_pwrite,
    .pwrite_zeroes = bdrv_filter_pass_pwrite_zeroes,
    .pdiscard = bdrv_filter_pass_pdiscard,
    .truncate = bdrv_filter_pass_truncate,
    .block_status = bdrv_filter_pass_block_status,
};
