/*
 * The "raw" format driver: guest data is the file's bytes, optionally a window of
 * it (the offset and size options). A probed (not named) raw image refuses writes
 * to its first sector that would make it look like another format.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

typedef struct BDRVRawFormatState {
    uint64_t offset;
    uint64_t size;
    bool has_size;
} BDRVRawFormatState;

static const char *const raw_runtime_opts[] = { "offset", "size", NULL };
/* a window of the file is not the file: named by json: */
static const char *const raw_strong_opts[] = { "offset", "size", NULL };

static int raw_fmt_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVRawFormatState *s = bs->opaque;
    GError *local = NULL;
    int64_t file_len;

    s->offset = opts_get_size(opts, "offset", 0, &local);
    if (!local) {
        s->has_size = opts_has(opts, "size");
        s->size = opts_get_size(opts, "size", 0, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    file_len = bdrv_getlength(bs->file);
    if (file_len < 0) {
        error_setg_errno(errp, -file_len, "Could not get image size");
        return file_len;
    }
    if (s->offset > (uint64_t)file_len) {
        error_setg(errp, "The sum of offset (%" PRIu64 ") and size (0) has to be "
                   "smaller or equal to the  actual size of the containing file (%"
                   PRId64 ")", s->offset, file_len);
        return -EINVAL;
    }
    if (s->has_size && s->offset + s->size > (uint64_t)file_len) {
        error_setg(errp, "The sum of offset (%" PRIu64 ") and size (%" PRIu64 ") has "
                   "to be smaller or equal to the  actual size of the containing file "
                   "(%" PRId64 ")", s->offset, s->size, file_len);
        return -EINVAL;
    }
    if (s->has_size && !QEMU_IS_ALIGNED(s->size, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "Specified size is not multiple of %llu", BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    bs->request_alignment = bs->file->request_alignment;
    return 0;
}

static int raw_fmt_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1;      /* anything is raw, with the lowest score */
}

static int64_t raw_fmt_getlength(BlockDriverState *bs)
{
    BDRVRawFormatState *s = bs->opaque;
    int64_t len;

    if (s->has_size) {
        return s->size;
    }
    len = bdrv_getlength(bs->file);
    if (len < 0) {
        return len;
    }
    /* whole sectors, as QEMU counts them: the tail of a partial one reads zeros */
    return QEMU_ALIGN_UP(MAX(0, len - (int64_t)s->offset), BDRV_SECTOR_SIZE);
}

static int raw_fmt_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                         int flags)
{
    BDRVRawFormatState *s = bs->opaque;

    BLKDBG_EVENT(bs->file, BLKDBG_READ_AIO);
    return bdrv_pread(bs->file, offset + s->offset, bytes, buf, flags);
}

/* Would writing @buf at @offset turn a probed raw image into something else? */
static bool raw_write_changes_format(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                     const void *buf)
{
    uint8_t sector[512];
    int64_t n;

    if (!bs->probed_raw || offset >= 512) {
        return false;
    }
    if (bdrv_pread(bs->file, 0, 512, sector, 0) < 0) {
        return true;
    }
    n = MIN(bytes, 512 - offset);
    memcpy(sector + offset, buf, n);
    return bdrv_probe_claims(sector, sizeof(sector));
}

static int raw_fmt_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          const void *buf, int flags)
{
    BDRVRawFormatState *s = bs->opaque;

    if (raw_write_changes_format(bs, offset, bytes, buf)) {
        return -EPERM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
    return bdrv_pwrite(bs->file, offset + s->offset, bytes, buf, flags);
}

static int raw_fmt_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                 int flags)
{
    BDRVRawFormatState *s = bs->opaque;

    return bdrv_pwrite_zeroes(bs->file, offset + s->offset, bytes, flags);
}

static int raw_fmt_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVRawFormatState *s = bs->opaque;

    return bdrv_pdiscard(bs->file, offset + s->offset, bytes);
}

static int raw_fmt_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVRawFormatState *s = bs->opaque;
    int ret = bdrv_block_status(bs->file, offset + s->offset, bytes, pnum, NULL, NULL);

    if (ret < 0) {
        return ret;
    }
    if (*pnum == 0) {
        /* the zero tail of a partial last sector, past the file's end */
        *pnum = bytes;
        ret = BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
    }
    *map = offset + s->offset;
    *file = bs->file;
    /* the file's status as it is: null-co's nothing stays unallocated */
    return (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED)) |
           BDRV_BLOCK_OFFSET_VALID;
}

static int raw_fmt_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                            PreallocMode prealloc, int flags, GError **errp)
{
    BDRVRawFormatState *s = bs->opaque;

    if (s->has_size) {
        error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    return bdrv_truncate(bs->file, offset + s->offset, exact, prealloc, flags, errp);
}

/* the file's (none over ssh, nbd or null: qemu-io's info then shows only the format) */
static int raw_fmt_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return bdrv_get_info(bs->file, bdi);
}

static const CreateOptDesc raw_create_opts_desc[] = {
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { NULL },
};

static int raw_fmt_create_opts(const char *filename, JsonObject *opts, GError **errp)
{
    return bdrv_create_file(filename, opts, errp);
}

/* qemu-img measure: a raw image holds every byte, allocated or not. */
static int raw_fmt_measure(JsonObject *opts, BlockDriverState *in_bs,
                           BlockMeasureInfo *info, GError **errp)
{
    uint64_t size;
    int ret;

    ret = bdrv_measure_virtual_size(opts, in_bs, &size, errp);
    if (ret < 0) {
        return ret;
    }
    info->required = info->fully_allocated = QEMU_ALIGN_UP(size, BDRV_SECTOR_SIZE);
    return 0;
}

BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(BDRVRawFormatState),
    .is_filter = true,
    .thread_safe_reads = true,
    .thread_safe = true,
    .runtime_opts = raw_runtime_opts,
    .strong_opts = raw_strong_opts,
    .is_format = true,
    .probe = raw_fmt_probe,
    .open = raw_fmt_open,
    .pread = raw_fmt_pread,
    .pwrite = raw_fmt_pwrite,
    .pwrite_zeroes = raw_fmt_pwrite_zeroes,
    .pdiscard = raw_fmt_pdiscard,
    .getlength = raw_fmt_getlength,
    .truncate = raw_fmt_truncate,
    .block_status = raw_fmt_block_status,
    .maps_data_as_is = true,
    .get_info = raw_fmt_get_info,
    .create_opts = raw_fmt_create_opts,
    .create_opt_descs = raw_create_opts_desc,
    .measure = raw_fmt_measure,
};
