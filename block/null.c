/*
 * The "null-co" and "null-aio" protocol drivers: a device of "size" bytes
 * (default 1 GiB) that keeps nothing. Writes, zero writes and discards succeed
 * and are dropped; reads leave the caller's buffer as it was, or fill it with
 * zeros with "read-zeroes". Every request first waits "latency-ns". Block
 * status says zero with read-zeroes and nothing otherwise (QEMU's answers),
 * and the only filename is "null-co://" ("null-aio://"). The two differ only in
 * name: here every request is synchronous. They measure the block layer's own
 * cost per request.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include <time.h>

typedef struct BDRVNullState {
    int64_t length;
    int64_t latency_ns;
    bool read_zeroes;
} BDRVNullState;

static const char *const null_runtime_opts[] = {
    "filename", "size", "latency-ns", "read-zeroes", NULL,
};

static const char *const null_strong_opts[] = { "size", "read-zeroes", NULL };

static int null_parse_filename(const char *filename, JsonObject *opts, GError **errp)
{
    const char *drv = opts_peek_str(opts, "driver");
    g_autofree char *name = g_strdup_printf("%s://", drv ? drv : "null-co");

    if (strcmp(filename, name)) {
        error_setg(errp, "The only allowed filename for this driver is '%s'", name);
        return -EINVAL;
    }
    return 0;
}

static int null_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVNullState *s = bs->opaque;
    GError *local = NULL;

    s->length = opts_get_size(opts, "size", 1 * GiB, &local);
    if (!local) {
        s->latency_ns = opts_get_int(opts, "latency-ns", 0, &local);
    }
    if (!local) {
        s->read_zeroes = opts_get_bool(opts, "read-zeroes", false, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (s->length < 0) {
        error_setg(errp, "Parameter 'size' expects a non-negative number below 2^64\n"
                   "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                   "tera-, peta-\nand exabytes, respectively.");
        return -EINVAL;
    }
    if (s->latency_ns < 0) {
        error_setg(errp, "latency-ns is invalid");
        return -EINVAL;
    }
    return 0;
}

static void null_wait(BDRVNullState *s)
{
    if (s->latency_ns) {
        struct timespec ts = {
            .tv_sec = s->latency_ns / 1000000000,
            .tv_nsec = s->latency_ns % 1000000000,
        };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
            /* the rest of the wait */
        }
    }
}

static int null_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                      int flags)
{
    BDRVNullState *s = bs->opaque;

    if (s->read_zeroes) {
        memset(buf, 0, bytes);
    }
    null_wait(s);
    return 0;
}

static int null_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       const void *buf, int flags)
{
    null_wait(bs->opaque);
    return 0;
}

static int null_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int flags)
{
    null_wait(bs->opaque);
    return 0;
}

static int null_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    null_wait(bs->opaque);
    return 0;
}

static int null_flush(BlockDriverState *bs)
{
    null_wait(bs->opaque);
    return 0;
}

static int64_t null_getlength(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;

    return s->length;
}

static int64_t null_get_allocated_file_size(BlockDriverState *bs)
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
    return BDRV_BLOCK_OFFSET_VALID | (s->read_zeroes ? BDRV_BLOCK_ZERO : 0);
}

/* "null-co://" unless a size or read-zeroes was given */
static char *null_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                   bool has_strong)
{
    return has_strong ? NULL : g_strdup_printf("%s://", bs->drv->format_name);
}

#define NULL_COMMON \
    .instance_size = sizeof(BDRVNullState), \
    .is_protocol = true, \
    .thread_safe_reads = true, \
    .thread_safe = true, \
    .runtime_opts = null_runtime_opts, \
    .strong_opts = null_strong_opts, \
    .parse_filename = null_parse_filename, \
    .refresh_filename = null_refresh_filename, \
    .open = null_open, \
    .pread = null_pread, \
    .pwrite = null_pwrite, \
    .pwrite_zeroes = null_pwrite_zeroes, \
    .pdiscard = null_pdiscard, \
    .flush_to_disk = null_flush, \
    .getlength = null_getlength, \
    .get_allocated_file_size = null_get_allocated_file_size, \
    .block_status = null_block_status

BlockDriver bdrv_null_co = {
    .format_name = "null-co",
    .protocol_name = "null-co",
    NULL_COMMON,
};

BlockDriver bdrv_null_aio = {
    .format_name = "null-aio",
    .protocol_name = "null-aio",
    NULL_COMMON,
};
