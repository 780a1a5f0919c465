/*
 * qemu-img compare: walk both images extent by extent (block status through their
 * backing chains), skip ranges both read as zeros, compare the rest sector by
 * sector, then check that the longer image's tail reads as zeros. Strict mode (-s)
 * also fails on different sizes or allocation. Exits 0 (identical), 1 (different),
 * 2 (open errors), 3 (block status errors), 4 (read errors).
 */
#include "qemu-img.h"

#define COMPARE_BUF_SIZE (2 * MiB)
#define STATUS_MASK (BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_ZERO | BDRV_BLOCK_DATA | \
                     BDRV_BLOCK_OFFSET_VALID)

enum {
    COMPARE_IDENTICAL = 0,
    COMPARE_DIFFERENT = 1,
    COMPARE_ERR_OPEN = 2,
    COMPARE_ERR_STATUS = 3,
    COMPARE_ERR_READ = 4,
};

typedef struct CompareImage {
    const char *filename;
    BlockDriverState *bs;
    int64_t size;
} CompareImage;

/* Offset of the first 512-byte sector where the buffers differ, or -1. */
static int64_t first_mismatch(const uint8_t *a, const uint8_t *b, int64_t n)
{
    for (int64_t i = 0; i < n; i += BDRV_SECTOR_SIZE) {
        int64_t len = MIN((int64_t)BDRV_SECTOR_SIZE, n - i);
        if (memcmp(a + i, b + i, len)) {
            return i;
        }
    }
    return -1;
}

static int read_chunk(CompareImage *img, int64_t offset, int64_t n, uint8_t *buf)
{
    int ret = bdrv_pread(img->bs, offset, n, buf, 0);

    if (ret < 0) {
        error_report("Error while reading offset %" PRId64 " of %s: %s", offset,
                     img->filename, img_strerror(ret));
        return COMPARE_ERR_READ;
    }
    return 0;
}

static int get_status(CompareImage *img, int64_t offset, ImgBlockStatus *st)
{
    int ret = img_block_status(img->bs, offset, img->size - offset, st);

    if (ret < 0) {
        error_report("Sector allocation test failed for %s", img->filename);
        return COMPARE_ERR_STATUS;
    }
    return 0;
}

/* Compare [offset, offset + n) of both images. */
static int compare_range(CompareImage *a, CompareImage *b, int64_t offset, int64_t n,
                         uint8_t *buf1, uint8_t *buf2, bool quiet)
{
    while (n > 0) {
        int64_t len = MIN(n, COMPARE_BUF_SIZE), pos;
        int ret;

        if ((ret = read_chunk(a, offset, len, buf1)) ||
            (ret = read_chunk(b, offset, len, buf2))) {
            return ret;
        }
        pos = first_mismatch(buf1, buf2, len);
        if (pos >= 0) {
            if (!quiet) {
                printf("Content mismatch at offset %" PRId64 "!\n", offset + pos);
            }
            return COMPARE_DIFFERENT;
        }
        offset += len;
        n -= len;
    }
    return COMPARE_IDENTICAL;
}

/* The longer image's tail must read as zeros. */
static int check_tail(CompareImage *img, int64_t offset, uint8_t *buf, uint8_t *zero,
                      bool quiet)
{
    while (offset < img->size) {
        ImgBlockStatus st;
        int ret = get_status(img, offset, &st);

        if (ret) {
            return ret;
        }
        if (!(st.flags & BDRV_BLOCK_ZERO)) {
            for (int64_t done = 0; done < st.pnum; ) {
                int64_t len = MIN(st.pnum - done, COMPARE_BUF_SIZE), pos;

                if ((ret = read_chunk(img, offset + done, len, buf))) {
                    return ret;
                }
                pos = first_mismatch(buf, zero, len);
                if (pos >= 0) {
                    if (!quiet) {
                        printf("Content mismatch at offset %" PRId64 "!\n",
                               offset + done + pos);
                    }
                    return COMPARE_DIFFERENT;
                }
                done += len;
            }
        }
        offset += st.pnum;
        img_progress_set(100.0 * offset / img->size);
    }
    return COMPARE_IDENTICAL;
}

static int compare_images(CompareImage *a, CompareImage *b, bool strict, bool quiet)
{
    int64_t total = MIN(a->size, b->size), offset = 0;
    g_autofree uint8_t *buf1 = g_malloc(COMPARE_BUF_SIZE);
    g_autofree uint8_t *buf2 = g_malloc0(COMPARE_BUF_SIZE);
    int ret;

    if (a->size != b->size && strict) {
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        return COMPARE_DIFFERENT;
    }
    while (offset < total) {
        ImgBlockStatus st1, st2;
        int64_t n;

        if ((ret = get_status(a, offset, &st1)) || (ret = get_status(b, offset, &st2))) {
            return ret;
        }
        n = MIN(st1.pnum, st2.pnum);
        n = MIN(n, total - offset);
        if (strict && (st1.flags & STATUS_MASK) != (st2.flags & STATUS_MASK)) {
            if (!quiet) {
                printf("Strict mode: Offset %" PRId64 " block status mismatch!\n",
                       offset);
            }
            return COMPARE_DIFFERENT;
        }
        if (!((st1.flags & BDRV_BLOCK_ZERO) && (st2.flags & BDRV_BLOCK_ZERO))) {
            ret = compare_range(a, b, offset, n, buf1, buf2, quiet);
            if (ret) {
                return ret;
            }
        }
        offset += n;
        img_progress_set(100.0 * offset / MAX(a->size, b->size));
    }
    if (a->size != b->size) {
        CompareImage *longer = a->size > b->size ? a : b;

        /* only once the common part matched, on stdout (as QEMU prints it) */
        if (!quiet) {
            printf("Warning: Image size mismatch!\n");
        }
        memset(buf2, 0, COMPARE_BUF_SIZE);
        return check_tail(longer, total, buf1, buf2, quiet);
    }
    return COMPARE_IDENTICAL;
}

int img_compare(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "untrusted", no_argument, NULL, OPTION_UNTRUSTED },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt1 = NULL, *fmt2 = NULL, *cache = BDRV_DEFAULT_CACHE;
    bool progress = false, quiet = false, strict = false, image_opts = false;
    bool force_share = false, untrusted = false, writethrough = false;
    CompareImage a = { 0 }, b = { 0 };
    int flags = 0, c, ret;

    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            strict = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_UNTRUSTED:
            untrusted = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 2) {
        error_exit("Expecting two image file names");
    }
    a.filename = argv[optind++];
    b.filename = argv[optind++];
    if (image_opts && (fmt1 || fmt2)) {
        error_report("--image-opts and --format are mutually exclusive");
        return COMPARE_ERR_OPEN;
    }
    if (img_parse_cache(cache, &flags, &writethrough) < 0) {
        error_report("Invalid source cache option: %s", cache);
        return COMPARE_ERR_OPEN;
    }
    if (untrusted) {
        flags |= BDRV_O_UNTRUSTED;
    }

    img_progress_init(progress, 2.0);
    ret = COMPARE_ERR_OPEN;
    a.bs = img_open(image_opts, a.filename, fmt1, flags, writethrough, quiet,
                    force_share);
    if (!a.bs) {
        goto out;
    }
    b.bs = img_open(image_opts, b.filename, fmt2, flags, writethrough, quiet,
                    force_share);
    if (!b.bs) {
        goto out;
    }
    a.size = bdrv_getlength(a.bs);
    b.size = bdrv_getlength(b.bs);
    if (a.size < 0 || b.size < 0) {
        error_report("Can't get size of %s: %s", a.size < 0 ? a.filename : b.filename,
                     img_strerror(a.size < 0 ? a.size : b.size));
        ret = COMPARE_ERR_READ;
        goto out;
    }

    ret = compare_images(&a, &b, strict, quiet);
    if (ret == COMPARE_IDENTICAL && !quiet) {
        printf("Images are identical.\n");
    }
out:
    if (b.bs) {
        bdrv_unref(b.bs);
    }
    if (a.bs) {
        bdrv_unref(a.bs);
    }
    img_progress_end();
    return ret;
}
