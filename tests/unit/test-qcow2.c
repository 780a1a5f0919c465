/*
 * Unit tests for the qcow2 driver's internals: the preallocation decision point,
 * the on-disk layout of new images (sizes equal QEMU's), 1:1 mapping of
 * data_file_raw images through create and resize, refcount entry packing, and
 * write/read round trips with copy-on-write.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

static char *tmpdir;

static char *path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static int64_t file_size(const char *p)
{
    struct stat st;

    g_assert_cmpint(stat(p, &st), ==, 0);
    return st.st_size;
}

static void create(const char *name, const char *optstr)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) opts = keyval_parse_flat(optstr, NULL, &err);
    g_autofree char *p = path(name);

    g_assert_no_error(err);
    g_assert_cmpint(bdrv_create("qcow2", p, opts, &err), ==, 0);
    g_assert_no_error(err);
}

static BlockDriverState *open_rw(const char *name)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *p = path(name);
    g_autoptr(JsonObject) o = json_object_new();
    BlockDriverState *bs;

    opts_set_str(o, "driver", "qcow2");
    bs = bdrv_open(p, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    g_assert_nonnull(bs);
    return bs;
}

/* Every guest cluster maps to the same offset in the data file. */
static void assert_one_to_one(BlockDriverState *bs)
{
    int64_t len = bdrv_getlength(bs), off = 0;

    while (off < len) {
        int64_t pnum, map;
        BlockDriverState *file;
        int ret = bdrv_block_status(bs, off, len - off, &pnum, &map, &file);
        g_assert_cmpint(ret, >=, 0);
        g_assert_true(ret & BDRV_BLOCK_ALLOCATED);
        g_assert_true(ret & BDRV_BLOCK_OFFSET_VALID);
        g_assert_cmpint(map, ==, off);
        g_assert_true(file == bdrv_data_file_child(bs));
        off += pnum;
    }
}

/* The decision point: only data_file_raw lifts "off" to "metadata". */
static void test_effective_prealloc(void)
{
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_OFF, true), ==,
                    PREALLOC_MODE_METADATA);
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_OFF, false), ==,
                    PREALLOC_MODE_OFF);
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_METADATA, false), ==,
                    PREALLOC_MODE_METADATA);
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_FALLOC, true), ==,
                    PREALLOC_MODE_FALLOC);
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_FULL, true), ==,
                    PREALLOC_MODE_FULL);
    g_assert_cmpint(qcow2_effective_prealloc(PREALLOC_MODE_FULL, false), ==,
                    PREALLOC_MODE_FULL);
}

/* QEMU's layout gives these exact file sizes for 64 MiB images. */
static void test_layout_sizes(void)
{
    g_autofree char *a = path("plain.qcow2");
    g_autofree char *b = path("ext.qcow2");
    g_autofree char *c = path("raw.qcow2");
    g_autofree char *d = path("raw.img");
    g_autofree char *opts_b = g_strdup_printf("size=64M,data_file=%s/ext.img", tmpdir);
    g_autofree char *opts_c = g_strdup_printf("size=64M,data_file=%s,data_file_raw=on", d);

    create("plain.qcow2", "size=64M");
    g_assert_cmpint(file_size(a), ==, 196616);
    create("ext.qcow2", opts_b);
    g_assert_cmpint(file_size(b), ==, 196616);
    create("raw.qcow2", opts_c);
    g_assert_cmpint(file_size(c), ==, 327680);
    g_assert_cmpint(file_size(d), ==, 64 * MiB);
}

/* C4: create and grow keep a data_file_raw image mapped 1:1 (invariant C4). */
static void test_raw_one_to_one_create_and_grow(void)
{
    g_autofree char *d = path("grow.img");
    g_autofree char *opts = g_strdup_printf("size=1M,cluster_size=512,data_file=%s,"
                                            "data_file_raw=on", d);
    g_autoptr(GError) err = NULL;
    BlockDriverState *bs;
    BdrvCheckResult res;

    create("grow.qcow2", opts);
    bs = open_rw("grow.qcow2");
    assert_one_to_one(bs);
    g_assert_cmpint(bdrv_truncate(bs, 3 * MiB, false, PREALLOC_MODE_OFF, 0, &err), ==, 0);
    g_assert_no_error(err);
    assert_one_to_one(bs);
    g_assert_cmpint(file_size(d), ==, 3 * MiB);
    g_assert_cmpint(bdrv_check(bs, &res, 0), ==, 0);
    g_assert_cmpint(res.corruptions + res.leaks + res.check_errors, ==, 0);
    bdrv_unref(bs);
}

/* Refcount entries of every width pack and unpack (R1's storage). */
static void test_refblock_widths(void)
{
    uint8_t block[512];

    for (int order = 0; order <= 6; order++) {
        BDRVQcow2State s = { .refcount_order = order };
        uint64_t max = order == 6 ? UINT64_MAX : (1ULL << (1 << order)) - 1;
        int entries = 512 * 8 >> order;

        memset(block, 0, sizeof(block));
        for (int i = 0; i < entries; i++) {
            qcow2_refblock_set(&s, block, i, (i * 7919ULL) & max);
        }
        for (int i = 0; i < entries; i++) {
            g_assert_cmpuint(qcow2_refblock_get(&s, block, i), ==, (i * 7919ULL) & max);
        }
    }
}

/* C1/C2: partial writes copy the rest of the cluster; the image checks clean. */
static void test_cow_roundtrip(void)
{
    BlockDriverState *bs;
    uint8_t buf[8192], out[8192];
    BdrvCheckResult res;

    create("cow.qcow2", "size=1M,cluster_size=4k");
    bs = open_rw("cow.qcow2");
    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(bs, 0, 8192, buf, 0), ==, 0);
    memset(buf, 0x22, 100);
    g_assert_cmpint(bdrv_pwrite(bs, 4000, 100, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_pread(bs, 0, 8192, out, 0), ==, 0);
    for (int i = 0; i < 8192; i++) {
        g_assert_cmpint(out[i], ==, (i >= 4000 && i < 4100) ? 0x22 : 0x11);
    }
    g_assert_cmpint(bdrv_pwrite_zeroes(bs, 4096, 4096, 0), ==, 0);
    g_assert_cmpint(bdrv_pread(bs, 4096, 4096, out, 0), ==, 0);
    for (int i = 0; i < 4096; i++) {
        g_assert_cmpint(out[i], ==, 0);
    }
    g_assert_cmpint(bdrv_check(bs, &res, 0), ==, 0);
    g_assert_cmpint(res.corruptions + res.leaks + res.check_errors, ==, 0);
    bdrv_unref(bs);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_test_add_func("/qcow2/effective-prealloc", test_effective_prealloc);
    g_test_add_func("/qcow2/layout-sizes", test_layout_sizes);
    g_test_add_func("/qcow2/C4/raw-one-to-one", test_raw_one_to_one_create_and_grow);
    g_test_add_func("/qcow2/R1/refblock-widths", test_refblock_widths);
    g_test_add_func("/qcow2/C1-C2/cow-roundtrip", test_cow_roundtrip);
    ret = g_test_run();
    {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) {
            ret = ret ? ret : 1;
        }
    }
    g_free(tmpdir);
    return ret;
}
