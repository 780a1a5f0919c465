/*
 * qemu-img create: parse the command line and hand it to bdrv_img_create()
 * (block/img-create.c: the backing file, the "Formatting" line, the creation).
 * Also -o help for create and convert.
 */
#include "qemu-img.h"

int img_print_create_opts_help(const char *filename, const char *fmt)
{
    g_autofree char *help = NULL;

    if (!bdrv_find_format(fmt)) {
        error_report("Unknown file format '%s'", fmt);
        return EXIT_FAILURE;
    }
    help = filename ? bdrv_create_opts_help_merged(fmt) : bdrv_create_opts_help(fmt);
    if (!help) {
        error_report("Format driver '%s' does not support image creation", fmt);
        return EXIT_FAILURE;
    }
    printf("%s", help);
    if (!filename) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    return EXIT_SUCCESS;
}

/* The size argument: QEMU's messages for bad and out-of-range sizes. */
static int64_t parse_image_size(const char *arg)
{
    uint64_t sval;
    int ret = qemu_strtosz(arg, NULL, &sval);

    if (ret == -ERANGE || (ret == 0 && sval > INT64_MAX)) {
        error_report("Invalid image size specified. Must be between 0 and %" PRId64 ".",
                     INT64_MAX);
        exit(EXIT_FAILURE);
    }
    if (ret < 0) {
        img_report_bad_size("image size");
        exit(EXIT_FAILURE);
    }
    return sval;
}

int img_create(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { NULL, 0, NULL, 0 },
    };
    BdrvImgCreateParams p = { .fmt = "raw", .size = -1,
                             .parse_options = img_parse_option_list };
    g_autofree char *options = NULL;
    g_autoptr(GError) err = NULL;
    int c;

    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'F':
            p.base_fmt = optarg;
            break;
        case 'b':
            p.base_filename = optarg;
            break;
        case 'f':
            p.fmt = optarg;
            break;
        case 'o':
            if (!img_accumulate_options(&options, optarg)) {
                return EXIT_FAILURE;
            }
            break;
        case 'q':
            p.quiet = true;
            break;
        case 'u':
            p.unsafe = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }

    p.filename = optind < argc ? argv[optind] : NULL;
    if (options && img_has_help_option(options)) {
        return img_print_create_opts_help(p.filename, p.fmt);
    }
    if (optind >= argc) {
        error_exit("Expecting image file name");
    }
    optind++;
    if (optind < argc) {
        p.size = parse_image_size(argv[optind++]);
    }
    if (optind != argc) {
        error_exit("Unexpected argument: %s", argv[optind]);
    }
    p.options = options;
    if (bdrv_img_create(&p, &err) < 0) {
        if (strstr(err->message, "\nDetected format of ")) {
            /* QEMU prints this hint without a final newline */
            fprintf(stderr, "%s: %s: %s", error_get_progname(), p.filename,
                    err->message);
        } else {
            error_report("%s: %s", p.filename, err->message);
        }
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
