/*
 * Fuzz target: open a qcow2 image made of the fuzzer's bytes (held in a memfd,
 * opened through /proc/self/fd) and run a fixed sequence on it: reads at the
 * start, middle and end, a bounded block status walk, writes, zero writes, a
 * discard, a flush and a consistency check. Backing files are never opened; an
 * image that wants an external data file gets a second, empty memfd.
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "fuzz-memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STATUS_STEPS 256
#define IO_LEN 4096

static int image_fd = -1, data_fd = -1;

/* Does the header ask for an external data file (incompatible bit 2, v3)? */
static bool wants_data_file(const uint8_t *data, size_t size)
{
    return size >= 80 && ldl_be(data + 4) >= 3 && (data[79] & 0x4);
}

static void exercise(BlockDriverState *bs)
{
    g_autofree uint8_t *buf = g_malloc0(IO_LEN);
    int64_t len = bdrv_getlength(bs), off, pnum, map;
    BdrvCheckResult res;
    BlockDriverState *file;
    struct stat st;
    int steps = 0;

    if (len <= 0) {
        return;
    }
    bdrv_pread(bs, 0, MIN(len, IO_LEN), buf, 0);
    bdrv_pread(bs, len / 2, MIN(len - len / 2, IO_LEN), buf, 0);
    bdrv_pread(bs, len - MIN(len, IO_LEN), MIN(len, IO_LEN), buf, 0);
    for (off = 0; off < len && steps < MAX_STATUS_STEPS; steps++) {
        int ret = bdrv_block_status(bs, off, len - off, &pnum, &map, &file);
        if (ret < 0 || pnum <= 0) {
            break;
        }
        off += pnum;
    }
    memset(buf, 0xa5, IO_LEN);
    bdrv_pwrite(bs, 0, MIN(len, IO_LEN), buf, 0);
    bdrv_pwrite(bs, len / 3, MIN(len - len / 3, 3 * 512), buf, 0);
    bdrv_pwrite_zeroes(bs, len / 2, MIN(len - len / 2, 64 * KiB), BDRV_REQ_MAY_UNMAP);
    bdrv_pdiscard(bs, 0, MIN(len, 128 * KiB));
    bdrv_pread(bs, 0, MIN(len, IO_LEN), buf, 0);
    bdrv_flush(bs);
    /*
     * check needs memory in proportion to the image file's length; writes
     * through damaged L2 entries can make the (sparse) file terabytes long.
     * That is a known limit of check (QEMU's too), not something to report.
     */
    if (fstat(image_fd, &st) == 0 && st.st_size <= 32 * MiB) {
        bdrv_check(bs, &res, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *img = NULL, *df = NULL;
    BlockDriverState *bs;

    if (size > 16 * MiB || fuzz_qcow2_l1_too_big(data, size)) {
        return 0;
    }
    fuzz_memfd_fill(&image_fd, "fuzz-image", data, size);
    img = g_strdup_printf("/proc/self/fd/%d", image_fd);
    opts_set_str(opts, "driver", "qcow2");
    opts_set_str_path(opts, "file.driver", "file");
    opts_set_str_path(opts, "file.filename", img);
    opts_set_str_path(opts, "file.locking", "off");
    if (wants_data_file(data, size)) {
        fuzz_memfd_fill(&data_fd, "fuzz-data", NULL, 0);
        df = g_strdup_printf("/proc/self/fd/%d", data_fd);
        opts_set_str_path(opts, "data-file.driver", "file");
        opts_set_str_path(opts, "data-file.filename", df);
        opts_set_str_path(opts, "data-file.locking", "off");
    }
    bs = bdrv_open(NULL, opts, BDRV_O_RDWR | BDRV_O_UNMAP | BDRV_O_NO_BACKING, &err);
    if (!bs) {
        return 0;
    }
    exercise(bs);
    bdrv_unref(bs);
    return 0;
}
