/*
 * qemu-img commit: write what an image holds over its backing file into the
 * backing file (or, with -b, into a backing file further down the chain, the
 * images in between included), then make the image empty as QEMU does (not
 * with -d or -b).
 *
 * The chain opens its backing files read-only, so the image is opened twice: once
 * to find the base, then again with the base opened read-write beforehand and
 * referenced by node name in the chain. The copy follows block status: what one
 * of the images above the base allocates (or reads as zeros past the end of a
 * short one) is written into the base, zeros as zero writes; a base shorter than
 * the image grows first. The base is made stable before the image is emptied, so
 * that a crash in between leaves the data in both places.
 */
#include "qemu-img.h"
#include <time.h>

#define COMMIT_BUF_SIZE (4 * MiB)
#define COMMIT_BASE_NODE "qemu-img-commit-base"

typedef struct CommitState {
    BlockDriverState *top;
    BlockDriverState *base;
    int64_t length;
    uint64_t rate_limit;         /* bytes per second, 0: none */
    int64_t written;
    bool progress;
    int64_t total;               /* -p: bytes to copy */
    struct timespec start;
    uint8_t *buf;
} CommitState;

/* What decides [offset, offset + *pnum) above the base. */
typedef enum CommitRange {
    RANGE_BASE,                  /* nothing above the base: left alone */
    RANGE_ZERO,                  /* reads as zeros */
    RANGE_DATA,                  /* data in *from */
} CommitRange;

static int range_above_base(CommitState *s, int64_t offset, int64_t bytes,
                            int64_t *pnum, BlockDriverState **from)
{
    int64_t n = bytes;

    for (BlockDriverState *l = s->top; l && l != s->base; l = bdrv_backing_child(l)) {
        int64_t len = bdrv_getlength(l), p, map;
        BlockDriverState *file;
        int ret;

        if (len < 0) {
            return len;
        }
        if (offset >= len) {
            *pnum = n;          /* past the end of a short image: zeros */
            return RANGE_ZERO;
        }
        n = MIN(n, len - offset);
        ret = bdrv_block_status(l, offset, n, &p, &map, &file);
        if (ret < 0) {
            return ret;
        }
        if (p <= 0) {
            return -EIO;
        }
        if (ret & BDRV_BLOCK_ALLOCATED) {
            *pnum = p;
            *from = l;
            return (ret & BDRV_BLOCK_ZERO) ? RANGE_ZERO : RANGE_DATA;
        }
        n = MIN(n, p);
    }
    *pnum = n;
    return RANGE_BASE;
}

/* -r: hold the copy back to the rate limit. */
static void commit_throttle(CommitState *s)
{
    struct timespec now;
    double elapsed, due;

    if (!s->rate_limit) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    elapsed = (now.tv_sec - s->start.tv_sec) + (now.tv_nsec - s->start.tv_nsec) / 1e9;
    due = (double)s->written / s->rate_limit;
    if (due > elapsed) {
        g_usleep((gulong)((due - elapsed) * G_USEC_PER_SEC));
    }
}

/* -p: the bytes the copy will write, for the progress line (as QEMU's job counts). */
static int commit_count(CommitState *s)
{
    for (int64_t offset = 0, n = 0; offset < s->length; offset += n) {
        BlockDriverState *from;
        int ret = range_above_base(s, offset, s->length - offset, &n, &from);

        if (ret < 0) {
            return ret;
        }
        if (ret != RANGE_BASE) {
            s->total += n;
        }
    }
    return 0;
}

static int commit_copy(CommitState *s)
{
    int64_t base_len = bdrv_getlength(s->base);
    int64_t done = 0;
    int ret;

    if (s->progress) {
        ret = commit_count(s);
        if (ret < 0) {
            return ret;
        }
    }

    if (base_len < 0) {
        return base_len;
    }
    if (base_len < s->length) {
        g_autoptr(GError) err = NULL;

        ret = bdrv_truncate(s->base, s->length, true, PREALLOC_MODE_OFF, 0, &err);
        if (ret < 0) {
            return ret;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    for (int64_t offset = 0, n = 0; offset < s->length; offset += n) {
        BlockDriverState *from = NULL;
        int r;

        ret = range_above_base(s, offset, MIN(s->length - offset, COMMIT_BUF_SIZE), &n,
                               &from);
        if (ret < 0) {
            return ret;
        }
        if (ret == RANGE_ZERO) {
            r = bdrv_pwrite_zeroes(s->base, offset, n, BDRV_REQ_MAY_UNMAP);
        } else if (ret == RANGE_DATA) {
            r = bdrv_pread(from, offset, n, s->buf, 0);
            if (r == 0) {
                r = bdrv_pwrite(s->base, offset, n, s->buf, 0);
            }
            s->written += n;
        } else {
            r = 0;
        }
        if (r < 0) {
            return r;
        }
        if (ret != RANGE_BASE && s->total) {
            done += n;
            img_progress_set(100.0 * done / s->total);
        }
        commit_throttle(s);
    }
    /* the data is in the base for good before anything is taken from the image */
    return bdrv_flush(s->base);
}

/*
 * How to open the base again read-write, as the chain opened it: the options
 * that named it (a "backing" object of its parent's options, or the base's own
 * options when they gave it), else the name in the parent's header resolved
 * against the parent's folder (*path, may stay NULL) with the format it was
 * found to have; under a node name the chain can refer to (*node_name).
 */
static JsonObject *base_reopen_spec(BlockDriverState *parent, BlockDriverState *base,
                                    char **path, char **node_name)
{
    const char *backing = bdrv_get_backing_filename(parent);
    JsonObject *parent_opts = bdrv_get_options(parent);
    JsonObject *base_opts = bdrv_get_options(base);
    JsonObject *given = parent_opts ? opts_get_object(parent_opts, "backing") : NULL;
    JsonObject *opts;

    *path = NULL;
    if (given) {
        opts = opts_clone(given);
    } else if (!backing) {
        opts = base_opts ? opts_clone(base_opts) : json_object_new();
    } else {
        opts = json_object_new();
    }
    if (backing && !opts_has(opts, "file") && !opts_has(opts, "filename")) {
        /* the header names the file, as bdrv_open_backing does */
        *path = bdrv_get_full_backing_filename(parent, NULL);
        if (!*path) {
            *path = g_strdup(backing);
        }
        if (!opts_has(opts, "driver") && !g_str_has_prefix(*path, "json:")) {
            opts_set_str(opts, "driver", bdrv_get_format_name(base));
        }
    }
    if (base_opts && opts_peek_str(base_opts, "node-name")) {
        *node_name = g_strdup(opts_peek_str(base_opts, "node-name"));
    } else {
        *node_name = g_strdup(COMMIT_BASE_NODE);
    }
    opts_set_str(opts, "node-name", *node_name);
    return opts;
}

int img_commit(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *cache = BDRV_DEFAULT_CACHE, *base_name = NULL;
    bool progress = false, quiet = false, drop = false, image_opts = false;
    bool writethrough;
    /* one pass in order: small metadata caches, peak memory the same at any size */
    int flags = BDRV_O_RDWR | BDRV_O_UNMAP | BDRV_O_SEQUENTIAL;
    int depth = 0, c, ret = EXIT_FAILURE;
    uint64_t rate_limit = 0;
    CommitState s = { 0 };
    BlockDriverState *bs = NULL, *base, *parent;
    g_autoptr(JsonObject) extra = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) base_opts = NULL;
    g_autofree char *base_key = NULL, *base_path = NULL, *node_name = NULL;
    int r;

    while ((c = getopt_long(argc, argv, ":f:ht:b:dpqr:", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'b':
            base_name = optarg;
            /* -b implies -d: the image keeps its data */
            drop = true;
            break;
        case 'd':
            drop = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'r':
            if (qemu_strtosz(optarg, NULL, &rate_limit) < 0) {
                img_report_bad_size("rate limit");
                return EXIT_FAILURE;
            }
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
    filename = argv[optind];

    if (img_parse_cache(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        return EXIT_FAILURE;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }
    bs = img_open(image_opts, filename, fmt, flags, writethrough, quiet, false);
    if (!bs) {
        return EXIT_FAILURE;
    }
    img_progress_init(progress, 1.0);

    if (base_name) {
        base = bdrv_find_backing_image(bs, base_name);
        if (!base) {
            error_report("Did not find '%s' in the backing chain of '%s'", base_name,
                         filename);
            goto out;
        }
    } else {
        base = bdrv_backing_child(bs);
        if (!base) {
            error_report("Image does not have a backing file");
            goto out;
        }
    }
    /* the base is opened again read-write, the chain above it refers to it */
    parent = bs;
    for (depth = 1; bdrv_backing_child(parent) != base; depth++) {
        parent = bdrv_backing_child(parent);
    }
    base_opts = base_reopen_spec(parent, base, &base_path, &node_name);
    bdrv_unref(bs);         /* its read-only opens would keep the base locked */
    bs = NULL;
    s.base = bdrv_open(base_path, base_opts, img_cache_flags(flags, writethrough), &err);
    if (!s.base) {
        /* QEMU reports a failed reopen as it is (a lock, mostly) */
        error_report("%s", err->message);
        goto out;
    }
    extra = json_object_new();
    base_key = g_strnfill(depth * 8 - 1, '.');
    for (int i = 0; i < depth; i++) {
        memcpy(base_key + i * 8, "backing", 7);
    }
    opts_set_str_path(extra, base_key, node_name);
    bs = img_open_opts(image_opts, filename, fmt, extra, flags, writethrough, quiet,
                       false);
    if (!bs) {
        goto out;
    }
    base = bs;
    for (int i = 0; i < depth && base; i++) {
        base = bdrv_backing_child(base);
    }
    if (base != s.base) {
        error_report("Could not reopen the backing chain of '%s'", filename);
        goto out;
    }

    s.top = bs;
    s.rate_limit = rate_limit;
    s.progress = progress;
    s.length = bdrv_getlength(bs);
    if (s.length < 0) {
        error_report("Block job failed: %s", img_strerror(s.length));
        goto out;
    }
    s.buf = g_malloc(COMMIT_BUF_SIZE);
    r = commit_copy(&s);
    if (r < 0) {
        error_report("Block job failed: %s", img_strerror(r));
        goto out;
    }
    img_progress_finish();
    if (!drop) {
        g_autoptr(GError) empty_err = NULL;

        r = bdrv_make_empty(bs, &empty_err);
        if (r < 0 && r != -ENOTSUP) {
            error_report("%s", empty_err->message);
            goto out;
        }
    }
    img_progress_end();
    if (!quiet) {
        printf("Image committed.\n");
    }
    ret = EXIT_SUCCESS;

out:
    img_progress_end();
    g_free(s.buf);
    if (bs) {
        bdrv_unref(bs);
    }
    if (s.base) {
        bdrv_unref(s.base);
    }
    return ret;
}
