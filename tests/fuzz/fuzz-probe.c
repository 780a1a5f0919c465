/*
 * Fuzz target: an image of the fuzzer's bytes (held in a memfd) opened
 * read-only with its format probed, as qemu-img info and convert open an image
 * given without -f: whatever format claims it (bochs, qcow2, else raw; luks and
 * encrypted qcow2 fail for want of a key) has its header checked and, when it
 * opens, is read at the start, middle and end, walked with block status and
 * asked for its info.
 * Backing files are never opened. The seeds are bochs images (the format with
 * no target of its own), from tests/qemu-iotests/bochs_image.py.
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "fuzz-memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STATUS_STEPS 256
#define IO_LEN (64 * 1024)

static int image_fd = -1;

static void exercise(BlockDriverState *bs)
{
    g_autofree uint8_t *buf = g_malloc0(IO_LEN);
    int64_t len = bdrv_getlength(bs), off, pnum, map;
    BlockDriverInfo bdi;
    BlockDriverState *file;
    int steps = 0;

    bdrv_get_info(bs, &bdi);
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *img = NULL;
    BlockDriverState *bs;

    if (size > 16 * MiB) {
        return 0;
    }
    fuzz_memfd_fill(&image_fd, "fuzz-image", data, size);
    img = g_strdup_printf("/proc/self/fd/%d", image_fd);
    opts_set_str_path(opts, "file.driver", "file");
    opts_set_str_path(opts, "file.filename", img);
    opts_set_str_path(opts, "file.locking", "off");
    bs = bdrv_open(NULL, opts, BDRV_O_NO_BACKING, &err);
    if (!bs) {
        return 0;
    }
    exercise(bs);
    bdrv_unref(bs);
    return 0;
}
