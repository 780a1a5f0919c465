/*
 * The "blkverify" protocol driver: checks an image under test against a raw
 * copy of what it should hold. Every write goes to both, every read reads both
 * and compares: on any difference it prints QEMU's "blkverify: read offset=...
 * bytes=... contents mismatch at offset ..." and ends the process with status 1,
 * as QEMU's does. The "test" child (format probed) is held as bs->file, the
 * "raw" child (a protocol node) in the driver state. Filename:
 * "blkverify:RAW:TEST"; a name without the prefix is the test image's.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"

typedef struct BDRVBlkverifyState {
    BlockDriverState *raw;
} BDRVBlkverifyState;

static const char *const blkverify_runtime_opts[] = {
    "raw", "test", "x-raw", "x-image", NULL,
};

static int blkverify_parse_filename(const char *filename, JsonObject *opts,
                                    GError **errp)
{
    const char *rest, *colon;

    if (!strstart(filename, "blkverify:", &rest)) {
        opts_set_str(opts, "x-image", filename);
        return 0;
    }
    colon = strchr(rest, ':');
    if (!colon) {
        error_setg(errp, "blkverify requires raw copy and original image path");
        return -EINVAL;
    }
    {
        g_autofree char *raw = g_strndup(rest, colon - rest);
        opts_set_str(opts, "x-raw", raw);
    }
    opts_set_str(opts, "x-image", colon + 1);
    return 0;
}

static int blkverify_open(BlockDriverState *bs, JsonObject *opts, int flags,
                          GError **errp)
{
    BDRVBlkverifyState *s = bs->opaque;
    g_autofree char *xraw = opts_get_str(opts, "x-raw");
    g_autofree char *ximage = opts_get_str(opts, "x-image");
    int cflags = (flags & ~BDRV_O_PROTOCOL);
    int ret;

    if (!opts_has(opts, "raw") && !xraw) {
        error_setg(errp, "A block device must be specified for \"raw\"");
        return -EINVAL;
    }
    s->raw = bdrv_open_child(bs, opts, "raw", xraw, false, cflags, errp);
    if (!s->raw) {
        return -EINVAL;
    }
    ret = bdrv_attach_child_perm(bs, s->raw, &s->raw, BDRV_CHILD_FILTERED, errp);
    if (ret < 0) {
        goto fail;
    }
    if (!opts_has(opts, "test") && !ximage) {
        error_setg(errp, "A block device must be specified for \"test\"");
        ret = -EINVAL;
        goto fail;
    }
    bs->file = bdrv_open_child(bs, opts, "test", ximage, true, cflags, errp);
    if (!bs->file) {
        ret = -EINVAL;
        goto fail;
    }
    ret = bdrv_attach_child_perm(bs, bs->file, &bs->file, BDRV_CHILD_FILTERED, errp);
    if (ret < 0) {
        bdrv_unref_child(bs, &bs->file);
        goto fail;
    }
    bs->request_alignment = MAX(bs->file->request_alignment, s->raw->request_alignment);
    return 0;

fail:
    bdrv_unref_child(bs, &s->raw);
    return ret;
}

static void blkverify_close(BlockDriverState *bs)
{
    BDRVBlkverifyState *s = bs->opaque;

    bdrv_unref_child(bs, &s->raw);
}

static int blkverify_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           void *buf, int flags)
{
    BDRVBlkverifyState *s = bs->opaque;
    g_autofree uint8_t *raw_buf = g_try_malloc(bytes);
    int ret, raw_ret;

    if (!raw_buf) {
        return -ENOMEM;
    }
    ret = bdrv_pread(bs->file, offset, bytes, buf, flags);
    raw_ret = bdrv_pread(s->raw, offset, bytes, raw_buf, flags);
    if (ret == 0 && raw_ret == 0) {
        for (int64_t i = 0; i < bytes; i++) {
            if (((uint8_t *)buf)[i] != raw_buf[i]) {
                fprintf(stderr, "blkverify: read offset=%" PRId64 " bytes=%" PRId64
                        " contents mismatch at offset %" PRId64 "\n", offset, bytes,
                        offset + i);
                exit(1);
            }
        }
    }
    return ret < 0 ? ret : raw_ret;
}

static int blkverify_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            const void *buf, int flags)
{
    BDRVBlkverifyState *s = bs->opaque;
    int ret = bdrv_pwrite(bs->file, offset, bytes, buf, flags);
    int raw_ret = bdrv_pwrite(s->raw, offset, bytes, buf, flags);

    return ret < 0 ? ret : raw_ret;
}

static int blkverify_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                   int flags)
{
    BDRVBlkverifyState *s = bs->opaque;
    int ret = bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
    int raw_ret = bdrv_pwrite_zeroes(s->raw, offset, bytes, flags);

    return ret < 0 ? ret : raw_ret;
}

static int blkverify_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVBlkverifyState *s = bs->opaque;
    int ret = bdrv_pdiscard(bs->file, offset, bytes);
    int raw_ret = bdrv_pdiscard(s->raw, offset, bytes);

    return ret < 0 ? ret : raw_ret;
}

/* The generic layer flushes the test image (bs->file); the raw copy here. */
static int blkverify_flush(BlockDriverState *bs)
{
    BDRVBlkverifyState *s = bs->opaque;

    return bdrv_flush(s->raw);
}

/* QEMU's blkverify shows its raw copy's info */
static int blkverify_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVBlkverifyState *s = bs->opaque;

    return bdrv_get_info(s->raw, bdi);
}

static int64_t blkverify_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file);
}

/* "blkverify:RAW:TEST" when both children have plain names */
static char *blkverify_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                        bool has_strong)
{
    BDRVBlkverifyState *s = bs->opaque;

    json_object_set_member(full, "raw", bdrv_full_options_node(s->raw));
    json_object_set_member(full, "test", bdrv_full_options_node(bs->file));
    if (!s->raw->exact_filename || !bs->file->exact_filename) {
        return NULL;
    }
    return g_strdup_printf("blkverify:%s:%s", s->raw->exact_filename,
                           bs->file->exact_filename);
}

BlockDriver bdrv_blkverify = {
    .format_name = "blkverify",
    .protocol_name = "blkverify",
    .instance_size = sizeof(BDRVBlkverifyState),
    .is_protocol = true,
    .is_filter = true,
    .runtime_opts = blkverify_runtime_opts,
    .parse_filename = blkverify_parse_filename,
    .refresh_filename = blkverify_refresh_filename,
    .open = blkverify_open,
    .close = blkverify_close,
    .pread = blkverify_pread,
    .pwrite = blkverify_pwrite,
    .pwrite_zeroes = blkverify_pwrite_zeroes,
    .pdiscard = blkverify_pdiscard,
    .flush_to_disk = blkverify_flush,
    .getlength = blkverify_getlength,
    .get_info = blkverify_get_info,
};
