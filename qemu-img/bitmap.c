/*
 * qemu-img bitmap: add, remove, clear, enable, disable and merge persistent
 * dirty bitmaps of an image, actions applied in the order given, through the
 * block layer's bitmap calls; QEMU's option rules and messages.
 */
#include "qemu-img.h"

typedef struct BitmapAction {
    BdrvBitmapOp op;
    const char *src;            /* --merge SOURCE */
} BitmapAction;

static const char *const op_names[] = {
    [BDRV_BITMAP_ADD] = "add",
    [BDRV_BITMAP_REMOVE] = "remove",
    [BDRV_BITMAP_CLEAR] = "clear",
    [BDRV_BITMAP_ENABLE] = "enable",
    [BDRV_BITMAP_DISABLE] = "disable",
    [BDRV_BITMAP_MERGE] = "merge",
};

int img_bitmap(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "add", no_argument, NULL, OPTION_ADD },
        { "remove", no_argument, NULL, OPTION_REMOVE },
        { "clear", no_argument, NULL, OPTION_CLEAR },
        { "enable", no_argument, NULL, OPTION_ENABLE },
        { "disable", no_argument, NULL, OPTION_DISABLE },
        { "merge", required_argument, NULL, OPTION_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(GArray) actions = g_array_new(FALSE, FALSE, sizeof(BitmapAction));
    const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL, *filename, *name;
    bool image_opts = false, add = false, merge = false;
    uint64_t granularity = 0;
    BlockDriverState *bs = NULL, *src_bs = NULL;
    g_autoptr(GError) err = NULL;
    int c, ret = EXIT_FAILURE;

    while ((c = getopt_long(argc, argv, ":b:hg:F:f:", long_options, NULL)) != -1) {
        BitmapAction act = { 0 };

        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'b':
            src_file = optarg;
            break;
        case 'F':
            src_fmt = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'g':
            if (bdrv_parse_option_size(optarg, &granularity) < 0 ||
                granularity > INT64_MAX) {
                img_report_bad_size("granularity");
                return EXIT_FAILURE;
            }
            break;
        case OPTION_ADD:
        case OPTION_REMOVE:
        case OPTION_CLEAR:
        case OPTION_ENABLE:
        case OPTION_DISABLE:
        case OPTION_MERGE:
            act.op = c == OPTION_ADD ? BDRV_BITMAP_ADD :
                     c == OPTION_REMOVE ? BDRV_BITMAP_REMOVE :
                     c == OPTION_CLEAR ? BDRV_BITMAP_CLEAR :
                     c == OPTION_ENABLE ? BDRV_BITMAP_ENABLE :
                     c == OPTION_DISABLE ? BDRV_BITMAP_DISABLE : BDRV_BITMAP_MERGE;
            act.src = c == OPTION_MERGE ? optarg : NULL;
            add |= c == OPTION_ADD;
            merge |= c == OPTION_MERGE;
            g_array_append_val(actions, act);
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    if (!actions->len) {
        error_report("Need at least one of --add, --remove, --clear, --enable, "
                     "--disable, or --merge");
        return EXIT_FAILURE;
    }
    if (granularity && !add) {
        error_report("granularity only supported with --add");
        return EXIT_FAILURE;
    }
    if (src_fmt && !src_file) {
        error_report("-F only supported with -b");
        return EXIT_FAILURE;
    }
    if (src_file && !merge) {
        error_report("Merge bitmap source file only supported with --merge");
        return EXIT_FAILURE;
    }
    if (optind != argc - 2) {
        error_report("Expecting filename and bitmap name");
        return EXIT_FAILURE;
    }
    filename = argv[optind];
    name = argv[optind + 1];
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }

    bs = img_open(image_opts, filename, fmt, BDRV_O_RDWR, false, false, false);
    if (!bs) {
        return EXIT_FAILURE;
    }
    if (src_file) {
        /* only its bitmaps are read: no backing chain, which may well be the
         * image being changed (QEMU's) */
        src_bs = img_open(false, src_file, src_fmt, BDRV_O_NO_BACKING, false, false,
                          false);
        if (!src_bs) {
            goto out;
        }
    }
    for (guint i = 0; i < actions->len; i++) {
        BitmapAction *act = &g_array_index(actions, BitmapAction, i);

        if (bdrv_bitmap_op(bs, act->op, name, granularity, src_bs, act->src, &err) < 0) {
            error_report("Operation %s on bitmap %s failed: %s", op_names[act->op],
                         name, err->message);
            goto out;
        }
    }
    if (bdrv_bitmaps_store(bs, &err) < 0) {
        error_report("Could not store the bitmaps: %s", err->message);
        goto out;
    }
    ret = EXIT_SUCCESS;
out:
    if (src_bs) {
        bdrv_unref(src_bs);
    }
    bdrv_unref(bs);
    return ret;
}
