/*
 * qemu-img amend: change format-specific options of an existing image through
 * bdrv_amend(), after checking them against the driver's amend option list.
 * -o help prints that list ("Amend options for '<fmt>':").
 */
#include "qemu-img.h"

static void amend_status_cb(BlockDriverState *bs, int64_t done, int64_t total,
                            void *opaque)
{
    img_progress_report(100.0 * done / total);
}

static int print_amend_option_help(const char *fmt)
{
    g_autofree char *help = bdrv_amend_opts_help(fmt);

    if (!help) {
        error_report("Format driver '%s' does not support option amendment", fmt);
        return EXIT_FAILURE;
    }
    printf("%s", help);
    return EXIT_SUCCESS;
}

int img_amend(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force", no_argument, NULL, OPTION_FORCE },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *cache = BDRV_DEFAULT_CACHE;
    bool progress = false, quiet = false, image_opts = false, force = false;
    bool writethrough = false;
    g_autofree char *options = NULL;
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(GError) err = NULL;
    int flags = BDRV_O_RDWR, c, ret = EXIT_FAILURE;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":ho:f:t:pq", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'o':
            if (!img_accumulate_options(&options, optarg)) {
                return EXIT_FAILURE;
            }
            break;
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_FORCE:
            force = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
    if (!options) {
        error_exit("Must specify options (-o)");
    }
    if (quiet) {
        progress = false;
    }
    filename = optind < argc ? argv[optind] : NULL;
    if (fmt && img_has_help_option(options)) {
        return print_amend_option_help(fmt);
    }
    if (optind != argc - 1) {
        error_report("Expecting one image file name");
        return EXIT_FAILURE;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }
    if (img_parse_cache(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        return EXIT_FAILURE;
    }

    bs = img_open(image_opts, filename, fmt, flags, writethrough, quiet, false);
    if (!bs) {
        return EXIT_FAILURE;
    }
    fmt = bdrv_get_format_name(bs);
    if (img_has_help_option(options)) {
        ret = print_amend_option_help(fmt);
        goto out;
    }
    opts = img_parse_option_list(options, &err);
    if (!opts || bdrv_amend_opts_check(fmt, opts, &err) < 0) {
        error_report("%s", err->message);
        goto out;
    }

    bdrv_create_opts_normalize(fmt, opts);
    img_progress_init(progress, 1.0);
    if (bdrv_amend_with_status(bs, opts, force, amend_status_cb, NULL, &err) < 0) {
        img_progress_end();
        error_report("%s", err->message);
        goto out;
    }
    img_progress_set(100.0);
    img_progress_finish();
    img_progress_end();
    ret = EXIT_SUCCESS;
out:
    bdrv_unref(bs);
    return ret;
}
