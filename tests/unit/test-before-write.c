/*
 * Unit tests for the block layer's before-write notifiers (block/io.c): they
 * run before a write, a zero write and a discard change the data (so they can
 * still read the old data), a failing one fails the request and leaves the
 * data alone, and a removed one runs no more.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

#define SIZE (64 * 1024)

static char *tmpdir;

typedef struct Seen {
    int calls;
    int64_t offset, bytes;
    uint8_t old;        /* the first byte of the range before the change */
    int fail;           /* return this (0: succeed) */
} Seen;

static int notifier(BlockDriverState *bs, int64_t offset, int64_t bytes, void *opaque)
{
    Seen *s = opaque;

    s->calls++;
    s->offset = offset;
    s->bytes = bytes;
    g_assert_cmpint(bdrv_pread(bs, offset, 1, &s->old, 0), ==, 0);
    return s->fail;
}

static BlockDriverState *open_file(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *p = g_build_filename(tmpdir, "img", NULL);
    g_autoptr(JsonObject) o = json_object_new();
    BlockDriverState *bs;
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, SIZE), ==, 0);
    close(fd);
    opts_set_str(o, "driver", "file");
    bs = bdrv_open(p, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    g_assert_nonnull(bs);
    return bs;
}

static uint8_t byte_at(BlockDriverState *bs, int64_t offset)
{
    uint8_t b;

    g_assert_cmpint(bdrv_pread(bs, offset, 1, &b, 0), ==, 0);
    return b;
}

static void test_notifier(void)
{
    BlockDriverState *bs = open_file();
    uint8_t buf[4096];
    Seen s = { 0 };

    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf, 0), ==, 0);
    bdrv_add_before_write(bs, notifier, &s);

    /* a write: the notifier sees the range and the old data */
    memset(buf, 0x22, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(s.calls, ==, 1);
    g_assert_cmpint(s.offset, ==, 0);
    g_assert_cmpint(s.bytes, ==, sizeof(buf));
    g_assert_cmpint(s.old, ==, 0x11);
    g_assert_cmpint(byte_at(bs, 0), ==, 0x22);

    /* a zero write and a discard too */
    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 0, 512, 0), ==, 0);
    g_assert_cmpint(s.calls, ==, 2);
    g_assert_cmpint(s.old, ==, 0x22);
    g_assert_cmpint(bdrv_pdiscard_always(bs, 4096, 4096), ==, 0);
    g_assert_cmpint(s.calls, ==, 3);
    g_assert_cmpint(s.offset, ==, 4096);

    /* a failing notifier fails the write, which changes nothing */
    s.fail = -EIO;
    memset(buf, 0x33, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 1024, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(byte_at(bs, 1024), ==, 0x22);
    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 1024, 512, 0), ==, -EIO);
    g_assert_cmpint(byte_at(bs, 1024), ==, 0x22);

    /* removed: no more calls */
    bdrv_remove_before_write(bs, notifier, &s);
    g_assert_cmpint(bdrv_pwrite(bs, 1024, 512, buf, 0), ==, 0);
    g_assert_cmpint(s.calls, ==, 5);
    g_assert_null(bs->before_write);
    bdrv_unref(bs);
}

int main(int argc, char **argv)
{
    int ret;
    g_autofree char *img = NULL;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("test-before-write-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/io/before-write", test_notifier);
    ret = g_test_run();
    img = g_build_filename(tmpdir, "img", NULL);
    unlink(img);
    rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
