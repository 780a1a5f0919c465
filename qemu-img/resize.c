/*
 * qemu-img resize: grow or shrink an image to an absolute or relative (+/-) size
 * with bdrv_truncate(), refusing to shrink without --shrink as QEMU does.
 */
#include "qemu-img.h"

int img_resize(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "preallocation", required_argument, NULL, OPTION_PREALLOCATION },
        { "shrink", no_argument, NULL, OPTION_SHRINK },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *size_arg = NULL, *num;
    bool quiet = false, image_opts = false, shrink = false;
    int prealloc = PREALLOC_MODE_OFF, relative = 0, c, ret = EXIT_FAILURE;
    int64_t current, total;
    uint64_t n;
    BlockDriverState *bs;
    g_autoptr(GError) err = NULL;

    if (argc < 3) {
        error_exit("Not enough arguments");
    }
    /* A negative size looks like an option: take it off before getopt sees it. */
    if (argc > 1 && argv[argc - 1][0] == '-' && g_ascii_isdigit(argv[argc - 1][1])) {
        size_arg = argv[--argc];
    }
    while ((c = getopt_long(argc, argv, ":f:hq", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_PREALLOCATION:
            prealloc = prealloc_mode_parse(optarg);
            if (prealloc < 0) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return EXIT_FAILURE;
            }
            break;
        case OPTION_SHRINK:
            shrink = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
    if (!size_arg && optind == argc - 2) {
        size_arg = argv[argc - 1];
        argc--;
    }
    if (optind != argc - 1 || !size_arg) {
        error_exit("Expecting image file name and size");
    }
    filename = argv[optind];
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }

    num = size_arg;
    if (*num == '+' || *num == '-') {
        relative = *num == '+' ? 1 : -1;
        num++;
    }
    if (bdrv_parse_option_size(num, &n) < 0) {
        error_report("Parameter 'size' expects a non-negative number below 2^64\n"
                     "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                     "tera-, peta-\nand exabytes, respectively.");
        return EXIT_FAILURE;
    }

    bs = img_open(image_opts, filename, fmt, BDRV_O_RDWR | BDRV_O_RESIZE, false, quiet,
                  false);
    if (!bs) {
        return EXIT_FAILURE;
    }
    current = bdrv_getlength(bs);
    if (current < 0) {
        error_report("Could not get image size: %s", img_strerror(current));
        goto out;
    }
    /* QEMU's signed arithmetic: an overflow makes the size non-positive */
    total = relative ? (int64_t)((uint64_t)current + (uint64_t)relative * n)
                     : (int64_t)n;
    if (total <= 0) {
        error_report("New image size must be positive");
        goto out;
    }
    if (total < current && !shrink) {
        error_report("Use the --shrink option to perform a shrink operation.");
        warn_report("Shrinking an image will delete all data beyond the shrunken "
                    "image's end. Before performing such an operation, make sure "
                    "there is no important data there.");
        goto out;
    }
    if (total < current && prealloc != PREALLOC_MODE_OFF) {
        error_report("Preallocation can only be used for growing images");
        goto out;
    }
    if (bdrv_truncate(bs, total, false, prealloc, 0, &err) < 0) {
        error_report("%s", err->message);
        goto out;
    }
    if (!quiet) {
        printf("Image resized.\n");
    }
    ret = EXIT_SUCCESS;
out:
    bdrv_unref(bs);
    return ret;
}
