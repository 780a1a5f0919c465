/*
 * qemu-img check: run the driver's consistency check (optionally repairing leaks
 * or all errors, then checking again), print QEMU's summary or an ImageCheck JSON
 * object, and exit 0/1/2/3/63 as QEMU does.
 */
#include "qemu-img.h"

#define CHECK_NOT_SUPPORTED 63

static const char *const image_check_order[] = {
    "image-end-offset", "compressed-clusters", "total-clusters", "corruptions",
    "corruptions-fixed", "check-errors", "leaks", "leaks-fixed", "allocated-clusters",
    "filename", "format", "fragmented-clusters", NULL,
};

static void dump_human_check(const BdrvCheckResult *r, bool quiet)
{
    if (quiet) {
        return;
    }
    if (!(r->corruptions || r->leaks || r->check_errors)) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%d errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may "
                   "corrupt it.\n", r->corruptions);
        }
        if (r->leaks) {
            printf("\n%d leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   r->leaks);
        }
        if (r->check_errors) {
            printf("\n%d internal errors have occurred during the check.\n",
                   r->check_errors);
        }
    }
    if (r->bfi.total_clusters != 0 && r->bfi.allocated_clusters != 0) {
        printf("%" PRId64 "/%" PRId64 " = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n",
               r->bfi.allocated_clusters, r->bfi.total_clusters,
               r->bfi.allocated_clusters * 100.0 / r->bfi.total_clusters,
               r->bfi.fragmented_clusters * 100.0 / r->bfi.allocated_clusters,
               r->bfi.compressed_clusters * 100.0 / r->bfi.allocated_clusters);
    }
    if (r->image_end_offset > 0) {
        printf("Image end offset: %" PRId64 "\n", r->image_end_offset);
    }
}

static void dump_json_check(const BdrvCheckResult *r, const char *filename,
                            const char *format, bool quiet)
{
    g_autoptr(JsonObject) o = json_object_new();
    g_autoptr(JsonObject) ordered = NULL;

    if (quiet) {
        return;
    }
    json_object_set_string_member(o, "filename", filename);
    json_object_set_string_member(o, "format", format);
    json_object_set_int_member(o, "check-errors", r->check_errors);
    if (r->corruptions) {
        json_object_set_int_member(o, "corruptions", r->corruptions);
    }
    if (r->leaks) {
        json_object_set_int_member(o, "leaks", r->leaks);
    }
    if (r->corruptions_fixed) {
        json_object_set_int_member(o, "corruptions-fixed", r->corruptions_fixed);
    }
    if (r->leaks_fixed) {
        json_object_set_int_member(o, "leaks-fixed", r->leaks_fixed);
    }
    if (r->image_end_offset) {
        json_object_set_int_member(o, "image-end-offset", r->image_end_offset);
    }
    if (r->bfi.total_clusters) {
        json_object_set_int_member(o, "total-clusters", r->bfi.total_clusters);
    }
    if (r->bfi.allocated_clusters) {
        json_object_set_int_member(o, "allocated-clusters", r->bfi.allocated_clusters);
    }
    if (r->bfi.fragmented_clusters) {
        json_object_set_int_member(o, "fragmented-clusters", r->bfi.fragmented_clusters);
    }
    if (r->bfi.compressed_clusters) {
        json_object_set_int_member(o, "compressed-clusters", r->bfi.compressed_clusters);
    }
    ordered = qapi_order_members(o, image_check_order);
    qapi_print_json_object(ordered);
}

/*
 * Check (and repair with @fix); after a repair, check again and report the
 * second result together with what the first one fixed.
 */
static int collect_image_check(BlockDriverState *bs, BdrvCheckResult *result,
                               int fix, OutputFormat output_format, bool quiet)
{
    BdrvCheckResult first;
    int ret = bdrv_check(bs, &first, fix);

    if (ret < 0) {
        return ret;
    }
    *result = first;
    if (fix && (first.corruptions_fixed || first.leaks_fixed)) {
        if (output_format == OFORMAT_HUMAN && !quiet) {
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %d leaked clusters\n"
                   "    %d corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   first.leaks_fixed, first.corruptions_fixed);
        }
        ret = bdrv_check(bs, result, 0);
        result->leaks_fixed = first.leaks_fixed;
        result->corruptions_fixed = first.corruptions_fixed;
    }
    return ret;
}

int img_check(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "untrusted", no_argument, NULL, OPTION_UNTRUSTED },
        { NULL, 0, NULL, 0 },
    };
    OutputFormat output_format = OFORMAT_HUMAN;
    bool quiet = false, image_opts = false, force_share = false, untrusted = false;
    bool writethrough = false;
    const char *filename, *fmt = NULL, *cache = BDRV_DEFAULT_CACHE;
    int flags = BDRV_O_CHECK, fix = 0, c, ret;
    BdrvCheckResult result;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":hf:r:T:qU", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            flags |= BDRV_O_RDWR;
            if (!strcmp(optarg, "leaks")) {
                fix = BDRV_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
            } else {
                error_exit("Unknown option value for -r "
                           "(expecting 'leaks' or 'all'): %s", optarg);
            }
            break;
        case OPTION_OUTPUT:
            output_format = img_parse_output_format(optarg);
            break;
        case 'T':
            cache = optarg;
            break;
        case 'q':
            quiet = true;
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
    filename = img_single_filename(argc, argv, image_opts, fmt);
    if (!filename) {
        return EXIT_FAILURE;
    }
    if (img_parse_cache(cache, &flags, &writethrough) < 0) {
        error_report("Invalid source cache option: %s", cache);
        return EXIT_FAILURE;
    }
    flags |= img_inspect_flags(image_opts, filename, untrusted) & ~BDRV_O_NO_BACKING;
    bs = img_open(image_opts, filename, fmt, flags, writethrough, quiet, force_share);
    if (!bs) {
        return EXIT_FAILURE;
    }

    ret = collect_image_check(bs, &result, fix, output_format, quiet);
    if (ret == -ENOTSUP) {
        error_report("This image format does not support checks");
        bdrv_unref(bs);
        return CHECK_NOT_SUPPORTED;
    }
    if (ret < 0) {
        error_report("Check failed: %s", img_strerror(ret));
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }
    if (output_format == OFORMAT_HUMAN) {
        dump_human_check(&result, quiet);
    } else {
        dump_json_check(&result, filename, bdrv_get_format_name(bs), quiet);
    }
    bdrv_unref(bs);

    if (result.check_errors) {
        error_report("Check failed");
        return EXIT_FAILURE;
    }
    if (result.corruptions) {
        return 2;
    }
    if (result.leaks) {
        return 3;
    }
    return EXIT_SUCCESS;
}
