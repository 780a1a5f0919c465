/*
 * qemu-img dd: copy an image's bytes, block by block, into a new image of the
 * output format, as QEMU 7.2 does: dd-style operands (if=, of=, bs=, count=,
 * skip=), the output created with the size left to copy (count limits the size
 * before skip is taken off it), every byte written (no sparseness), and QEMU's
 * messages, including "cannot skip to specified offset" that still exits 0.
 */
#include "qemu-img.h"

#define DD_DEFAULT_BS 512

typedef struct DdOpts {
    const char *in_filename;
    const char *out_filename;
    int64_t bs;
    int64_t count;          /* -1: not given */
    int64_t skip;           /* -1: not given */
} DdOpts;

/* One "key=value" operand; false after reporting. */
static bool parse_operand(const char *arg, DdOpts *o)
{
    const char *eq = strchr(arg, '=');
    g_autofree char *key = eq ? g_strndup(arg, eq - arg) : g_strdup(arg);
    const char *value = eq ? eq + 1 : NULL;

    if (!value) {
        error_report("unrecognized operand %s", key);
        return false;
    }
    if (!strcmp(key, "bs")) {
        o->bs = img_cvtnum("bs", value, 1, INT_MAX);
        return o->bs > 0;
    } else if (!strcmp(key, "count")) {
        o->count = img_cvtnum("count", value, 0, INT64_MAX);
        return o->count >= 0;
    } else if (!strcmp(key, "skip")) {
        o->skip = img_cvtnum("skip", value, 0, INT64_MAX);
        return o->skip >= 0;
    } else if (!strcmp(key, "if")) {
        o->in_filename = value;
        return true;
    } else if (!strcmp(key, "of")) {
        o->out_filename = value;
        return true;
    }
    error_report("unrecognized operand %s", key);
    return false;
}

/* Create the output image of @size bytes (sector-aligned, as QEMU's drivers do). */
static bool create_output(const char *fmt, const char *filename, int64_t size)
{
    g_autoptr(JsonObject) opts = json_object_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *s = g_strdup_printf("%" PRId64,
                                         (int64_t)QEMU_ALIGN_UP(size, BDRV_SECTOR_SIZE));

    opts_set_str(opts, "size", s);
    if (bdrv_create(fmt, filename, opts, &err) < 0) {
        error_report("%s: error while creating output image: %s", filename,
                     err->message);
        return false;
    }
    return true;
}

/* Copy [in_pos, size) of @in to @out from offset 0, @bs bytes at a time. */
static bool copy_blocks(BlockDriverState *in, BlockDriverState *out, int64_t in_pos,
                        int64_t size, int64_t bs)
{
    g_autofree uint8_t *buf = NULL;
    int64_t out_pos = 0;

    if (in_pos >= size) {
        return true;
    }
    buf = g_malloc(MIN(bs, size - in_pos));
    while (in_pos < size) {
        int64_t bytes = MIN(bs, size - in_pos);
        int ret = bdrv_pread(in, in_pos, bytes, buf, 0);

        if (ret < 0) {
            error_report("error while reading from input image file: %s",
                         img_strerror(ret));
            return false;
        }
        in_pos += bytes;
        ret = bdrv_pwrite(out, out_pos, bytes, buf, 0);
        if (ret < 0) {
            error_report("error while writing to output image file: %s",
                         img_strerror(ret));
            return false;
        }
        out_pos += bytes;
    }
    return true;
}

int img_dd(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    DdOpts o = { .bs = DD_DEFAULT_BS, .count = -1, .skip = -1 };
    const char *fmt = NULL, *out_fmt = "raw";
    bool image_opts = false, force_share = false;
    BlockDriverState *in = NULL, *out = NULL;
    int64_t size, in_pos = 0;
    int ret = EXIT_FAILURE;
    int c;

    while ((c = getopt_long(argc, argv, ":hf:O:U", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (!parse_operand(argv[i], &o)) {
            return EXIT_FAILURE;
        }
    }
    if (!o.in_filename || !o.out_filename) {
        error_report("Must specify both input and output files");
        return EXIT_FAILURE;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }

    /*
     * A plain read-only open, as QEMU's dd does (convert's NO_SHARE would stop
     * dd of= onto its own input, which QEMU allows for raw images)
     */
    in = img_open(image_opts, o.in_filename, fmt, 0, false, false, force_share);
    if (!in) {
        goto out;
    }
    if (!bdrv_find_format(out_fmt)) {
        error_report("Unknown file format");
        goto out;
    }
    if (!bdrv_format_can_create(out_fmt)) {
        error_report("Format driver '%s' does not support image creation", out_fmt);
        goto out;
    }
    size = bdrv_getlength(in);
    if (size < 0) {
        error_report("Failed to get size for '%s'", o.in_filename);
        goto out;
    }
    /* count shortens the input before skip is taken off it, as in QEMU */
    if (o.count >= 0 && o.count <= INT64_MAX / o.bs && size > o.count * o.bs) {
        size = o.count * o.bs;
    }
    if (o.skip >= 0) {
        if (o.skip > INT64_MAX / o.bs || size < o.skip * o.bs) {
            error_report("%s: cannot skip to specified offset", o.in_filename);
            in_pos = size;
        } else {
            in_pos = o.skip * o.bs;
        }
    }

    if (!create_output(out_fmt, o.out_filename, size - in_pos)) {
        goto out;
    }
    /* --image-opts is for the input only: the output is the file just created */
    out = img_open(false, o.out_filename, out_fmt, BDRV_O_RDWR, false, false, false);
    if (!out) {
        goto out;
    }
    if (copy_blocks(in, out, in_pos, size, o.bs)) {
        ret = EXIT_SUCCESS;
    }
out:
    if (out) {
        bdrv_unref(out);
    }
    if (in) {
        bdrv_unref(in);
    }
    return ret;
}
