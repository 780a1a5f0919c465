/*
 * Unit tests for the request layer (block/aio.c): requests through its fast
 * path (run in the submitting thread) and through worker threads (a read the
 * page cache cannot serve, O_DIRECT) return the right data, overlapping
 * writes take effect in the order they were issued on both paths, and
 * callbacks only run when the submitter polls.
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/block_int.h"

#define CHUNK 4096
#define NCHUNKS 256

static char *tmpdir;

static BlockDriverState *open_file(const char *name, int flags)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *p = g_build_filename(tmpdir, name, NULL);
    g_autoptr(JsonObject) o = json_object_new();
    BlockDriverState *bs;

    if (!g_file_test(p, G_FILE_TEST_EXISTS)) {
        int fd = open(p, O_CREAT | O_WRONLY, 0600);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, CHUNK * NCHUNKS), ==, 0);
        close(fd);
    }
    opts_set_str(o, "driver", "file");
    bs = bdrv_open(p, o, flags, &err);
    if (!bs && (flags & BDRV_O_NOCACHE)) {
        return NULL;    /* a file system without O_DIRECT (tmpfs) */
    }
    g_assert_no_error(err);
    g_assert_nonnull(bs);
    return bs;
}

/* Drop the file's pages from the page cache: reads must go to a worker. */
static void evict(const char *name)
{
    g_autofree char *p = g_build_filename(tmpdir, name, NULL);
    int fd = open(p, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fdatasync(fd), ==, 0);
    g_assert_cmpint(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), ==, 0);
    close(fd);
}

typedef struct Done {
    int count;
    int errors;
} Done;

static void count_cb(void *opaque, int ret)
{
    Done *d = opaque;

    d->count++;
    d->errors += ret < 0;
}

static void write_pattern(BlockDriverState *bs, uint8_t *bufs, int base)
{
    Done d = { 0, 0 };

    for (int i = 0; i < NCHUNKS; i++) {
        memset(bufs + i * CHUNK, base + i, CHUNK);
        bdrv_aio_submit(bs, BDRV_AIO_WRITE, (int64_t)i * CHUNK, CHUNK, bufs + i * CHUNK, 0,
                        count_cb, &d);
    }
    g_assert_cmpint(d.count, ==, 0);    /* callbacks wait for the poll */
    bdrv_aio_drain(bs);
    g_assert_cmpint(d.count, ==, NCHUNKS);
    g_assert_cmpint(d.errors, ==, 0);
}

static void check_pattern(BlockDriverState *bs, uint8_t *bufs, int base)
{
    Done d = { 0, 0 };

    memset(bufs, 0xee, CHUNK * NCHUNKS);
    for (int i = 0; i < NCHUNKS; i++) {
        bdrv_aio_submit(bs, BDRV_AIO_READ, (int64_t)i * CHUNK, CHUNK, bufs + i * CHUNK, 0,
                        count_cb, &d);
    }
    bdrv_aio_drain(bs);
    g_assert_cmpint(d.count, ==, NCHUNKS);
    g_assert_cmpint(d.errors, ==, 0);
    for (int i = 0; i < NCHUNKS; i++) {
        g_assert_cmpint(bufs[i * CHUNK], ==, (uint8_t)(base + i));
        g_assert_cmpint(bufs[i * CHUNK + CHUNK - 1], ==, (uint8_t)(base + i));
    }
}

static void test_cached_and_uncached(void)
{
    BlockDriverState *bs = open_file("a.raw", BDRV_O_RDWR);
    uint8_t *bufs = g_malloc(CHUNK * NCHUNKS);

    write_pattern(bs, bufs, 1);
    check_pattern(bs, bufs, 1);     /* from the page cache: the fast path */
    evict("a.raw");
    check_pattern(bs, bufs, 1);     /* not cached: workers read it */
    g_free(bufs);
    bdrv_unref(bs);
}

static void test_direct(void)
{
    BlockDriverState *bs = open_file("b.raw", BDRV_O_RDWR | BDRV_O_NOCACHE);
    uint8_t *bufs = NULL;

    if (!bs) {
        g_test_skip("no O_DIRECT on this file system");
        return;
    }
    g_assert_cmpint(posix_memalign((void **)&bufs, 4096, CHUNK * NCHUNKS), ==, 0);
    write_pattern(bs, bufs, 7);
    check_pattern(bs, bufs, 7);
    free(bufs);
    bdrv_unref(bs);
}

/* Many writes to one block, then a read: the last write issued wins. */
static void overlapping(int flags, const char *name)
{
    BlockDriverState *bs = open_file(name, flags);
    uint8_t *bufs = NULL, *rd = NULL;
    Done d = { 0, 0 };

    if (!bs) {
        g_test_skip("no O_DIRECT on this file system");
        return;
    }
    g_assert_cmpint(posix_memalign((void **)&bufs, 4096, CHUNK * 64), ==, 0);
    g_assert_cmpint(posix_memalign((void **)&rd, 4096, CHUNK), ==, 0);
    for (int i = 0; i < 64; i++) {
        memset(bufs + i * CHUNK, i + 1, CHUNK);
        bdrv_aio_submit(bs, BDRV_AIO_WRITE, 0, CHUNK, bufs + i * CHUNK, 0, count_cb, &d);
    }
    bdrv_aio_submit(bs, BDRV_AIO_READ, 0, CHUNK, rd, 0, count_cb, &d);
    bdrv_aio_drain(bs);
    g_assert_cmpint(d.count, ==, 65);
    g_assert_cmpint(d.errors, ==, 0);
    g_assert_cmpint(rd[0], ==, 64);
    g_assert_cmpint(rd[CHUNK - 1], ==, 64);
    free(bufs);
    free(rd);
    bdrv_unref(bs);
}

static void test_overlapping_cached(void)
{
    overlapping(BDRV_O_RDWR, "c.raw");
}

static void test_overlapping_direct(void)
{
    overlapping(BDRV_O_RDWR | BDRV_O_NOCACHE, "d.raw");
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("test-aio-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/aio/cached-and-uncached", test_cached_and_uncached);
    g_test_add_func("/aio/direct", test_direct);
    g_test_add_func("/aio/overlapping-writes/cached", test_overlapping_cached);
    g_test_add_func("/aio/overlapping-writes/direct", test_overlapping_direct);
    ret = g_test_run();
    for (const char *const *n = (const char *const[]){ "a.raw", "b.raw", "c.raw", "d.raw",
                                                       NULL }; *n; n++) {
        g_autofree char *p = g_build_filename(tmpdir, *n, NULL);
        unlink(p);
    }
    rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
