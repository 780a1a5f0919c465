/*
 * The "preallocate" filter, between a format and its file: a write that goes
 * past the end of the file's data first makes the file "prealloc-size" (128 MiB)
 * longer than that write, rounded up to "prealloc-align" (1 MiB), with
 * fallocate'd space, so that a growing image does not extend its file write
 * after write. Users above see the data's end as the length; a resize within
 * the preallocated area only moves that end. When the node closes, the file is
 * cut back to the end of the data. Read-only nodes preallocate nothing.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

typedef struct BDRVPreallocateState {
    int64_t prealloc_size;
    int64_t prealloc_align;
    int64_t data_end;       /* what users see as the length; -1: not tracked */
    int64_t file_end;       /* the file's real length, preallocation included */
} BDRVPreallocateState;

static const char *const preallocate_runtime_opts[] = {
    "prealloc-align", "prealloc-size", NULL,
};

static int preallocate_open(BlockDriverState *bs, JsonObject *opts, int flags,
                            GError **errp)
{
    BDRVPreallocateState *s = bs->opaque;
    GError *local = NULL;

    s->prealloc_align = opts_get_size(opts, "prealloc-align", 1 * MiB, &local);
    if (!local) {
        s->prealloc_size = opts_get_size(opts, "prealloc-size", 128 * MiB, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (s->prealloc_align % BDRV_SECTOR_SIZE) {
        error_setg(errp, "prealloc-align parameter of preallocate filter is not "
                   "aligned to %llu", BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    s->data_end = s->file_end = -1;
    if (flags & BDRV_O_RDWR) {
        s->data_end = s->file_end = bdrv_getlength(bs->file);
    }
    bs->request_alignment = bs->file->request_alignment;
    return 0;
}

/* The file is cut back to the data when the node goes. */
static void preallocate_close(BlockDriverState *bs)
{
    BDRVPreallocateState *s = bs->opaque;

    if (s->data_end >= 0 && s->file_end > s->data_end) {
        bdrv_truncate(bs->file, s->data_end, true, PREALLOC_MODE_OFF, 0, NULL);
    }
}

/* Before a write up to @end: preallocate when it leaves the preallocated area. */
static void preallocate_before_write(BlockDriverState *bs, int64_t end)
{
    BDRVPreallocateState *s = bs->opaque;
    int64_t align = MAX(s->prealloc_align, 1), new_end;

    if (s->data_end < 0 || end <= s->file_end) {
        return;
    }
    new_end = QEMU_ALIGN_UP(end + s->prealloc_size, align);
    /* best effort: without the space the write itself still grows the file */
    if (bdrv_truncate(bs->file, new_end, false, PREALLOC_MODE_FALLOC, 0, NULL) == 0) {
        s->file_end = new_end;
    }
}

static void preallocate_after_write(BlockDriverState *bs, int64_t end, int ret)
{
    BDRVPreallocateState *s = bs->opaque;

    if (ret == 0 && s->data_end >= 0 && end > s->data_end) {
        s->data_end = end;
        s->file_end = MAX(s->file_end, end);
    }
}

static int preallocate_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             void *buf, int flags)
{
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

static int preallocate_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              const void *buf, int flags)
{
    int ret;

    preallocate_before_write(bs, offset + bytes);
    ret = bdrv_pwrite(bs->file, offset, bytes, buf, flags);
    preallocate_after_write(bs, offset + bytes, ret);
    return ret;
}

static int preallocate_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, int flags)
{
    int ret;

    preallocate_before_write(bs, offset + bytes);
    ret = bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
    preallocate_after_write(bs, offset + bytes, ret);
    return ret;
}

static int preallocate_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return bdrv_pdiscard(bs->file, offset, bytes);
}

static int preallocate_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                                PreallocMode prealloc, int flags, GError **errp)
{
    BDRVPreallocateState *s = bs->opaque;
    int ret;

    if (s->data_end >= 0 && prealloc == PREALLOC_MODE_FALLOC &&
        offset >= s->data_end && offset <= s->file_end) {
        /* inside the preallocated area: the space is there and reads as zeros */
        s->data_end = offset;
        return 0;
    }
    if (s->data_end >= 0 && s->file_end > s->data_end) {
        /* any other resize: our own preallocation goes first, as in QEMU */
        ret = bdrv_truncate(bs->file, s->data_end, true, PREALLOC_MODE_OFF, 0, errp);
        if (ret < 0) {
            return ret;
        }
        s->file_end = s->data_end;
    }
    ret = bdrv_truncate(bs->file, offset, exact, prealloc, flags, errp);
    if (ret == 0 && s->data_end >= 0) {
        s->data_end = s->file_end = bdrv_getlength(bs->file);
    }
    return ret;
}

static int64_t preallocate_getlength(BlockDriverState *bs)
{
    BDRVPreallocateState *s = bs->opaque;

    return s->data_end >= 0 ? s->data_end : bdrv_getlength(bs->file);
}

static int preallocate_block_status(BlockDriverState *bs, int64_t offset,
                                    int64_t bytes, int64_t *pnum, int64_t *map,
                                    BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

BlockDriver bdrv_preallocate = {
    .format_name = "preallocate",
    .instance_size = sizeof(BDRVPreallocateState),
    .is_filter = true,
    .runtime_opts = preallocate_runtime_opts,
    .open = preallocate_open,
    .close = preallocate_close,
    .pread = preallocate_pread,
    .pwrite = preallocate_pwrite,
    .pwrite_zeroes = preallocate_pwrite_zeroes,
    .pdiscard = preallocate_pdiscard,
    .truncate = preallocate_truncate,
    .getlength = preallocate_getlength,
    .block_status = preallocate_block_status,
};
