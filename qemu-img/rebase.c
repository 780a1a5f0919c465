/*
 * qemu-img rebase: give an image another backing file.
 *
 * Safe mode (the default) keeps what the image reads the same: wherever the image
 * itself allocates nothing, the old backing chain and the new backing file are
 * compared, and the 512-byte sectors that differ are written into the image
 * (from the old chain; as zeroes past its end) before the header names the new
 * backing file. "-b ''" removes the backing file, so everything the old chain
 * holds is copied in. -u (unsafe) only rewrites the header. -c writes the
 * clusters it copies compressed.
 *
 * The walk follows QEMU's: steps of at most 2 MiB cut at the image's allocation
 * boundaries, each unallocated step one tick of the progress line. Ranges where
 * both sides read as zeros (block status) are skipped without reading.
 */
#include "qemu-img.h"

#define REBASE_BUF_SIZE (2 * MiB)

typedef struct RebaseState {
    BlockDriverState *bs;
    BlockDriverState *old_backing;   /* NULL: the image has none */
    BlockDriverState *new_backing;   /* NULL: "-b ''" */
    BlockDriverState *prefix;        /* new_backing, when it is in the old chain */
    int64_t size, old_size, new_size;
    bool compress;
    int64_t cluster_size;            /* -c: the unit of compressed writes */
    uint8_t *buf_old, *buf_new, *buf_cluster;
} RebaseState;

/* Is the 512-byte sector (or shorter tail) @a equal to @b (NULL: zeros)? */
static bool sector_equal(const uint8_t *a, const uint8_t *b, int64_t len)
{
    static const uint8_t zeros[BDRV_SECTOR_SIZE];

    return !memcmp(a, b ? b : zeros, len);
}

/*
 * Compare @a and @b (NULL: zeros) sector by sector: does the first sector
 * differ, and for how many bytes (*run) does that stay so.
 */
static bool diff_run(const uint8_t *a, const uint8_t *b, int64_t len, int64_t *run)
{
    int64_t pos = 0;
    bool differs = false;

    while (pos < len) {
        int64_t n = MIN((int64_t)BDRV_SECTOR_SIZE, len - pos);
        bool d = !sector_equal(a + pos, b ? b + pos : NULL, n);

        if (pos == 0) {
            differs = d;
        } else if (d != differs) {
            break;
        }
        pos += n;
    }
    *run = pos;
    return differs;
}

static bool buffer_is_zero(const uint8_t *buf, int64_t len)
{
    return len == 0 || (buf[0] == 0 && !memcmp(buf, buf + 1, len - 1));
}

/*
 * Allocated in one of the images from @top down to @base (excluded)? A range
 * past the end of one of them reads as zeros there: it counts as allocated.
 */
static int allocated_above(BlockDriverState *top, BlockDriverState *base,
                           int64_t offset, int64_t bytes, int64_t *pnum)
{
    int64_t n = bytes;

    for (BlockDriverState *l = top; l && l != base; l = bdrv_backing_child(l)) {
        int64_t len = bdrv_getlength(l), p;
        int ret;

        if (len < 0) {
            return len;
        }
        if (offset >= len) {
            *pnum = n;
            return 1;
        }
        n = MIN(n, len - offset);
        ret = bdrv_is_allocated(l, offset, n, &p);
        if (ret < 0) {
            return ret;
        }
        if (ret) {
            *pnum = p;
            return 1;
        }
        n = MIN(n, p);
    }
    *pnum = n;
    return 0;
}

/* Does [offset, offset + *n) of @bs read as zeros? Shrinks *n to one status. */
static int reads_as_zero(BlockDriverState *bs, int64_t offset, int64_t *n)
{
    ImgBlockStatus st;
    int ret = img_block_status(bs, offset, *n, &st);

    if (ret < 0) {
        return ret;
    }
    *n = st.pnum;
    return !!(st.flags & BDRV_BLOCK_ZERO);
}

/*
 * Zeroes that must stay zeroes once the new backing file is in place. A zero
 * write may leave the range unallocated where that reads as zeros now (a
 * version 2 qcow2 image without a backing file): what is still unallocated
 * afterwards gets zeros written as data. (QEMU 7.2 leaves it unallocated, and
 * the new backing file's data shows through.) @scratch holds @bytes.
 */
static int write_zeroes(RebaseState *s, int64_t offset, int64_t bytes,
                        uint8_t *scratch)
{
    int64_t end = offset + bytes, n;
    int ret = bdrv_pwrite_zeroes(s->bs, offset, bytes, 0);

    for (; ret == 0 && offset < end; offset += n) {
        ret = bdrv_is_allocated(s->bs, offset, end - offset, &n);
        if (ret == 0) {
            memset(scratch, 0, n);
            ret = bdrv_pwrite(s->bs, offset, n, scratch, 0);
        } else if (ret > 0) {
            ret = 0;
        }
    }
    return ret;
}

/* -c: the whole clusters around a differing run, compressed, from the image. */
static int write_compressed_run(RebaseState *s, int64_t offset, int64_t bytes)
{
    int64_t start = QEMU_ALIGN_DOWN(offset, s->cluster_size);
    int64_t end = MIN(QEMU_ALIGN_UP(offset + bytes, s->cluster_size), s->size);

    for (int64_t c = start; c < end; c += s->cluster_size) {
        int64_t n = MIN(s->cluster_size, end - c);
        int ret;

        ret = bdrv_is_allocated(s->bs, c, n, &n);
        if (ret < 0) {
            return ret;
        }
        if (ret) {
            continue;       /* written with the run before */
        }
        /* unallocated: the image reads its old chain, the content to keep */
        ret = bdrv_pread(s->bs, c, n, s->buf_cluster, 0);
        if (ret < 0) {
            return ret;
        }
        if (buffer_is_zero(s->buf_cluster, n)) {
            ret = write_zeroes(s, c, n, s->buf_cluster);
        } else {
            ret = bdrv_pwrite(s->bs, c, n, s->buf_cluster, BDRV_REQ_WRITE_COMPRESSED);
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * Write into the image where the old content (@old; NULL: the old chain ends
 * before @offset, written as zeroes) and the new one (@new, NULL: zeros) differ,
 * over [offset, offset + bytes).
 */
static int write_differences(RebaseState *s, int64_t offset, int64_t bytes,
                             const uint8_t *old, const uint8_t *new)
{
    int64_t pos = 0;

    while (pos < bytes) {
        int64_t run;
        bool differs;
        int ret = 0;

        if (old) {
            differs = diff_run(old + pos, new ? new + pos : NULL, bytes - pos, &run);
        } else {
            differs = diff_run(new + pos, NULL, bytes - pos, &run);
        }
        if (differs) {
            if (s->compress) {
                ret = write_compressed_run(s, offset + pos, run);
            } else if (!old) {
                /* the old chain ends before: s->buf_old is free */
                ret = write_zeroes(s, offset + pos, run, s->buf_old);
            } else {
                ret = bdrv_pwrite(s->bs, offset + pos, run, old + pos, 0);
            }
            if (ret < 0) {
                error_report("Error while writing to COW image: %s", img_strerror(ret));
                return ret;
            }
        }
        pos += run;
    }
    return 0;
}

/* One unallocated step [offset, offset + n): compare and copy. */
static int rebase_step(RebaseState *s, int64_t offset, int64_t n)
{
    int64_t end = offset + n;

    while (offset < end) {
        int64_t len = end - offset, l;
        bool old_past_end = offset >= s->old_size;
        bool old_zero = old_past_end, new_zero = !s->new_backing || offset >= s->new_size;
        const uint8_t *old = NULL;
        int ret;

        if (!old_zero) {
            l = len;
            ret = reads_as_zero(s->old_backing, offset, &l);
            if (ret < 0) {
                goto status_error;
            }
            old_zero = ret;
            len = l;
        }
        if (!new_zero) {
            l = len;
            ret = reads_as_zero(s->new_backing, offset, &l);
            if (ret < 0) {
                goto status_error;
            }
            new_zero = ret;
            len = l;
        }
        if (old_zero && new_zero) {
            offset += len;          /* zeros on both sides */
            continue;
        }
        if (!old_zero) {
            ret = bdrv_pread(s->old_backing, offset, len, s->buf_old, 0);
            if (ret < 0) {
                error_report("error while reading from old backing file");
                return ret;
            }
            old = s->buf_old;
        } else if (!old_past_end) {
            /* the old chain reads zeros here: written as data, as QEMU does */
            memset(s->buf_old, 0, len);
            old = s->buf_old;
        }
        if (!new_zero) {
            ret = bdrv_pread(s->new_backing, offset, len, s->buf_new, 0);
            if (ret < 0) {
                error_report("error while reading from new backing file");
                return ret;
            }
        }
        ret = write_differences(s, offset, len, old, new_zero ? NULL : s->buf_new);
        if (ret < 0) {
            return ret;
        }
        offset += len;
        continue;

status_error:
        error_report("error while reading image metadata: %s", img_strerror(ret));
        return ret;
    }
    return 0;
}

static int rebase_copy(RebaseState *s)
{
    float step;

    if (s->size > 0) {
        step = (float)100 / (s->size / MIN(s->size, (int64_t)REBASE_BUF_SIZE));
    } else {
        step = 0;
    }
    for (int64_t offset = 0, n; offset < s->size; offset += n) {
        int ret;

        n = MIN((int64_t)REBASE_BUF_SIZE, s->size - offset);
        ret = bdrv_is_allocated(s->bs, offset, n, &n);
        if (ret < 0) {
            error_report("error while reading image metadata: %s", img_strerror(ret));
            return ret;
        }
        if (ret) {
            continue;
        }
        if (s->prefix) {
            /* nothing between the old backing file and the new one: same data */
            ret = allocated_above(s->old_backing, s->prefix, offset, n, &n);
            if (ret < 0) {
                error_report("error while reading image metadata: %s",
                             img_strerror(ret));
                return ret;
            }
            if (!ret) {
                continue;
            }
        }
        /* the backing files may be shorter than the image */
        if (offset < s->old_size) {
            n = MIN(n, s->old_size - offset);
        }
        if (s->new_backing && offset < s->new_size) {
            n = MIN(n, s->new_size - offset);
        }
        ret = rebase_step(s, offset, n);
        if (ret < 0) {
            return ret;
        }
        img_progress_add(step);
    }
    return 0;
}

/* Open the new backing file (or find it in the old chain) for safe mode. */
static int open_new_backing(RebaseState *s, const char *out_baseimg,
                            const char *out_basefmt, int src_flags, bool force_share)
{
    const char *name = bdrv_get_filename(s->bs);
    g_autofree char *path = NULL;
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(GError) err = NULL;

    /* relative to the image's folder, as the image will resolve it */
    if (bdrv_filename_is_special(out_baseimg) || !name ||
        bdrv_filename_is_special(name)) {
        path = g_strdup(out_baseimg);
    } else {
        path = bdrv_path_combine(name, out_baseimg);
    }
    s->prefix = bdrv_find_backing_image(s->bs, path);
    if (s->prefix) {
        bdrv_ref(s->prefix);
        s->new_backing = s->prefix;
        return 0;
    }
    if (out_basefmt) {
        opts_set_str(opts, "driver", out_basefmt);
    }
    /* read-only, and nobody may write it while we compare (QEMU's locks) */
    src_flags |= force_share ? BDRV_O_FORCE_SHARE : BDRV_O_NO_SHARE;
    s->new_backing = bdrv_open(path, opts, src_flags, &err);
    if (!s->new_backing) {
        error_report("Could not open new backing file '%s': %s", out_baseimg,
                     err->message);
        return -1;
    }
    return 0;
}

static int rebase_safe(RebaseState *s, const char *filename, const char *out_baseimg,
                       const char *out_basefmt, int src_flags, bool force_share)
{
    s->old_backing = bdrv_backing_child(s->bs);
    if (*out_baseimg &&
        open_new_backing(s, out_baseimg, out_basefmt, src_flags, force_share) < 0) {
        return -1;
    }
    s->size = bdrv_getlength(s->bs);
    if (s->size < 0) {
        error_report("Could not get size of '%s': %s", filename, img_strerror(s->size));
        return -1;
    }
    if (s->old_backing) {
        s->old_size = bdrv_getlength(s->old_backing);
        if (s->old_size < 0) {
            error_report("Could not get size of '%s': %s",
                         bdrv_get_backing_filename(s->bs), img_strerror(s->old_size));
            return -1;
        }
    }
    if (s->new_backing) {
        s->new_size = bdrv_getlength(s->new_backing);
        if (s->new_size < 0) {
            error_report("Could not get size of '%s': %s", out_baseimg,
                         img_strerror(s->new_size));
            return -1;
        }
    }
    if (s->compress) {
        BlockDriverInfo bdi;

        if (bdrv_get_info(s->bs, &bdi) < 0 || bdi.cluster_size <= 0) {
            error_report("Compression not supported for this file format");
            return -1;
        }
        s->cluster_size = bdi.cluster_size;
        s->buf_cluster = g_malloc(s->cluster_size);
    }
    s->buf_old = g_malloc(REBASE_BUF_SIZE);
    s->buf_new = g_malloc(REBASE_BUF_SIZE);
    return rebase_copy(s);
}

int img_rebase(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *cache = BDRV_DEFAULT_CACHE;
    const char *src_cache = BDRV_DEFAULT_CACHE;
    const char *out_baseimg = NULL, *out_basefmt = NULL;
    bool unsafe = false, progress = false, quiet = false, image_opts = false;
    bool force_share = false, compress = false, writethrough, src_writethrough;
    int flags, src_flags = 0, c, ret = -1;
    RebaseState s = { 0 };

    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qUc", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            out_basefmt = optarg;
            break;
        case 'b':
            out_baseimg = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'T':
            src_cache = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            force_share = true;
            break;
        case 'c':
            compress = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 1) {
        error_exit("Expecting one image file name");
    }
    if (!unsafe && !out_baseimg) {
        error_exit("Must specify backing file (-b) or use unsafe mode (-u)");
    }
    filename = argv[optind];

    img_progress_init(progress, 2.0);
    /* one pass in order: small metadata caches, peak memory the same at any size */
    flags = BDRV_O_RDWR | BDRV_O_SEQUENTIAL | (unsafe ? BDRV_O_NO_BACKING : 0);
    if (img_parse_cache(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        goto out;
    }
    if (img_parse_cache(src_cache, &src_flags, &src_writethrough) < 0) {
        error_report("Invalid source cache option: %s", src_cache);
        goto out;
    }
    src_flags = img_cache_flags(src_flags, src_writethrough) | BDRV_O_SEQUENTIAL;
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        goto out;
    }
    /* unsafe mode does not open the old backing file: it may be gone */
    s.bs = img_open(image_opts, filename, fmt, flags, writethrough, quiet, false);
    if (!s.bs) {
        goto out;
    }
    if (out_basefmt && !bdrv_find_format(out_basefmt)) {
        error_report("Invalid format name: '%s'", out_basefmt);
        goto out;
    }
    if (compress && !bdrv_supports_compressed_writes(bdrv_get_format_name(s.bs))) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    s.compress = compress;

    if (!unsafe && rebase_safe(&s, filename, out_baseimg, out_basefmt, src_flags,
                               force_share) < 0) {
        goto out;
    }

    /* the image now reads the same on either backing file: switch */
    if (out_baseimg && *out_baseimg && !out_basefmt) {
        ret = -EINVAL;
    } else if (out_baseimg && *out_baseimg) {
        ret = bdrv_change_backing_file(s.bs, out_baseimg, out_basefmt);
    } else {
        ret = bdrv_change_backing_file(s.bs, NULL, NULL);
    }
    if (ret == -ENOSPC) {
        error_report("Could not change the backing file to '%s': No space left in the "
                     "file header", out_baseimg);
    } else if (ret == -EINVAL && out_baseimg && !out_basefmt) {
        error_report("Could not change the backing file to '%s': backing format must "
                     "be specified", out_baseimg);
    } else if (ret < 0) {
        error_report("Could not change the backing file to '%s': %s",
                     out_baseimg ? out_baseimg : "(null)", img_strerror(ret));
    }
    img_progress_finish();

out:
    img_progress_end();
    if (s.new_backing) {
        bdrv_unref(s.new_backing);
    }
    g_free(s.buf_old);
    g_free(s.buf_new);
    g_free(s.buf_cluster);
    if (s.bs) {
        bdrv_unref(s.bs);
    }
    return ret < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
