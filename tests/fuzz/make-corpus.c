/*
 * Writes the seed corpus of the qcow2 fuzz target: small valid images of every
 * kind our block layer makes (versions 2 and 3, cluster sizes 512 to 64k,
 * refcount widths 1 to 64 bits (64k clusters are left out: too large a seed), lazy refcounts, a backing file name, external
 * data files plain and raw, metadata preallocation), with data, zero and
 * discarded clusters and compressed clusters, persistent dirty bitmaps (enabled
 * and disabled, writes recorded) (no snapshots: we cannot make them yet).
 * Usage: make-corpus OUTDIR   (the files are committed in tests/fuzz/corpus/)
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "qemu/error.h"

typedef struct Seed {
    const char *name;
    const char *opts;    /* qemu-img -o style */
    int64_t size;
    bool compressed;
    bool snapshot;
    bool bitmaps;
} Seed;

static const Seed seeds[] = {
    { "v3-512", "cluster_size=512", 256 * KiB, true, false },
    { "v3-1k-rc1", "cluster_size=1024,refcount_bits=1", 128 * KiB, false, false },
    { "v3-2k-rc64", "cluster_size=2048,refcount_bits=64", 256 * KiB, false, false },
    { "v3-4k-rc8", "cluster_size=4096,refcount_bits=8", 512 * KiB, true, false },
    { "v3-4k-lazy", "cluster_size=4096,lazy_refcounts=on", 256 * KiB, false, false },
    { "v2-1k", "compat=0.10,cluster_size=1024", 128 * KiB, true, false },
    { "v3-4k-backing", "cluster_size=4096,backing_file=base.img,backing_fmt=raw",
      256 * KiB, false, false },
    { "v3-4k-datafile", "cluster_size=4096,data_file=corpus.data", 256 * KiB, false,
      false },
    { "v3-4k-datafile-raw", "cluster_size=4096,data_file=corpus.data,data_file_raw=on",
      256 * KiB, false, false },
    { "v3-1k-prealloc", "cluster_size=1024,preallocation=metadata", 64 * KiB, false,
      false },
    { "v3-1k-bitmaps", "cluster_size=1024", 256 * KiB, false, false, true },
};

static int make_one(const char *dir, const Seed *sd, GError **errp)
{
    g_autofree char *path = g_strdup_printf("%s/%s", dir, sd->name);
    g_autoptr(JsonObject) o = keyval_parse_flat(sd->opts, NULL, errp);
    g_autoptr(JsonObject) oo = json_object_new();
    g_autofree char *size = g_strdup_printf("%" PRId64, sd->size);
    g_autofree uint8_t *buf = g_malloc(16 * KiB);
    BlockDriverState *bs;
    int ret = 0;

    if (!o) {
        return -EINVAL;
    }
    opts_set_str(o, "size", size);
    if (bdrv_create("qcow2", path, o, errp) < 0) {
        return -EIO;
    }
    opts_set_str(oo, "driver", "qcow2");
    bs = bdrv_open(path, oo, BDRV_O_RDWR | BDRV_O_UNMAP | BDRV_O_NO_BACKING, errp);
    if (!bs) {
        return -EIO;
    }
    if (sd->bitmaps) {
        ret |= bdrv_bitmap_op(bs, BDRV_BITMAP_ADD, "b0", 0, NULL, NULL, errp);
        ret |= bdrv_bitmap_op(bs, BDRV_BITMAP_ADD, "b1", 512, NULL, NULL, errp);
        ret |= bdrv_bitmap_op(bs, BDRV_BITMAP_ADD, "b2", 0, NULL, NULL, errp);
        ret |= bdrv_bitmap_op(bs, BDRV_BITMAP_DISABLE, "b2", 0, NULL, NULL, errp);
        ret |= bdrv_bitmaps_store(bs, errp);
    }
    memset(buf, 0x5a, 16 * KiB);
    ret |= bdrv_pwrite(bs, 0, 3 * KiB, buf, 0);
    ret |= bdrv_pwrite(bs, sd->size / 2 + 512, 9 * KiB, buf, 0);
    ret |= bdrv_pwrite_zeroes(bs, sd->size / 4, 8 * KiB, 0);
    ret |= bdrv_pdiscard(bs, sd->size / 2, 4 * KiB);
    if (sd->compressed) {
        memset(buf, 0x11, 16 * KiB);
        ret |= bdrv_pwrite(bs, sd->size - 16 * KiB, 16 * KiB, buf,
                           BDRV_REQ_WRITE_COMPRESSED);
    }
    if (sd->snapshot) {
        ret |= bdrv_snapshot_create(bs, "snap0");
        memset(buf, 0x77, 16 * KiB);
        ret |= bdrv_pwrite(bs, 0, 1 * KiB, buf, 0);
    }
    bdrv_unref(bs);
    if (ret) {
        g_set_error(errp, QEMU_ERROR, EIO, "I/O on %s failed", path);
        return -EIO;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-corpus OUTDIR\n");
        return 2;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(seeds); i++) {
        g_autoptr(GError) err = NULL;
        if (make_one(argv[1], &seeds[i], &err) < 0) {
            fprintf(stderr, "%s: %s\n", seeds[i].name, err ? err->message : "failed");
            return 1;
        }
    }
    /*
     * The data file is not part of the corpus: the target makes its own. Its
     * relative name resolves against the working directory (QEMU's rule), so
     * that is where it was created; older runs may have left one in OUTDIR.
     */
    g_autofree char *df = g_strdup_printf("%s/corpus.data", argv[1]);
    unlink(df);
    unlink("corpus.data");
    return 0;
}
