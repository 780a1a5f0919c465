/*
 * qemu-img measure: how large a new image of the output format gets, for --size N
 * or for a copy of an existing image (its allocated data, optionally of an
 * internal snapshot). The numbers come from the output format's driver
 * (bdrv_measure); this file owns the command line, its checks in QEMU's order and
 * wording, and the human and JSON output.
 */
#include "qemu-img.h"

bool img_parse_snapshot_param(const char *arg, ImgSnapshotParam *sn)
{
    g_autoptr(JsonObject) o = NULL;
    g_autoptr(GError) err = NULL;
    GList *members;
    bool ok = true;

    sn->given = true;
    if (!g_str_has_prefix(arg, "snapshot.")) {
        sn->id_or_name = arg;
        return true;
    }
    o = img_parse_option_list(arg, &err);
    members = o ? json_object_get_members(o) : NULL;
    for (GList *l = members; l && ok; l = l->next) {
        const char *key = l->data;
        if (strcmp(key, "snapshot.id") && strcmp(key, "snapshot.name")) {
            error_report("Invalid parameter '%s'", key);
            ok = false;
        }
    }
    g_list_free(members);
    if (!o || !ok) {
        error_report("Failed in parsing snapshot param '%s'", arg);
        return false;
    }
    sn->id = opts_get_str(o, "snapshot.id");
    sn->name = opts_get_str(o, "snapshot.name");
    return true;
}

static void print_info(const BlockMeasureInfo *info, OutputFormat output_format)
{
    g_autoptr(JsonObject) o = NULL;

    if (output_format == OFORMAT_HUMAN) {
        printf("required size: %" PRIu64 "\n", info->required);
        printf("fully allocated size: %" PRIu64 "\n", info->fully_allocated);
        if (info->has_bitmaps) {
            printf("bitmaps size: %" PRIu64 "\n", info->bitmaps);
        }
        return;
    }
    o = json_object_new();
    if (info->has_bitmaps) {
        json_object_set_int_member(o, "bitmaps", info->bitmaps);
    }
    json_object_set_int_member(o, "required", info->required);
    json_object_set_int_member(o, "fully-allocated", info->fully_allocated);
    qapi_print_json_object(o);
}

int img_load_snapshot(BlockDriverState *bs, const ImgSnapshotParam *sn)
{
    g_autoptr(GError) err = NULL;
    int ret;

    if (!sn->given) {
        return 0;
    }
    if (sn->id_or_name) {
        /* an ID first, then a name */
        ret = bdrv_snapshot_load_tmp(bs, sn->id_or_name, NULL, &err);
        if (ret == -ENOENT) {
            g_clear_error(&err);
            ret = bdrv_snapshot_load_tmp(bs, NULL, sn->id_or_name, &err);
        }
    } else {
        ret = bdrv_snapshot_load_tmp(bs, sn->id, sn->name, &err);
    }
    if (ret < 0) {
        error_report("Failed to load snapshot: %s", err->message);
    }
    return ret;
}

/* Open the source, with its snapshot loaded when -l names one. */
static BlockDriverState *open_source(bool image_opts, const char *filename,
                                     const char *fmt, bool force_share,
                                     const ImgSnapshotParam *sn)
{
    BlockDriverState *bs;

    /* a plain read-only open, as info's (QEMU's measure is no convert) */
    bs = img_open(image_opts, filename, fmt, 0, false, false, force_share);
    if (bs && img_load_snapshot(bs, sn) < 0) {
        bdrv_unref(bs);
        return NULL;
    }
    return bs;
}

int img_measure(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "size", required_argument, NULL, OPTION_SIZE },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    OutputFormat output_format = OFORMAT_HUMAN;
    ImgSnapshotParam sn = { 0 };
    bool image_opts = false, force_share = false;
    const char *filename = NULL, *fmt = NULL, *out_fmt = "raw";
    g_autofree char *options = NULL;
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(GError) err = NULL;
    BlockDriverState *in_bs = NULL;
    BlockMeasureInfo info;
    int64_t img_size = -1;
    int ret = EXIT_FAILURE;
    int c;

    /* QEMU's measure lets getopt report bad options, then shows the help */
    while ((c = getopt_long(argc, argv, "hf:O:o:l:U", long_options, NULL)) != -1) {
        switch (c) {
        case '?':
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            if (!img_accumulate_options(&options, optarg)) {
                goto out;
            }
            break;
        case 'l':
            if (!img_parse_snapshot_param(optarg, &sn)) {
                goto out;
            }
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OUTPUT:
            output_format = img_parse_output_format(optarg);
            break;
        case OPTION_SIZE:
            img_size = img_cvtnum("image size", optarg, 0, INT64_MAX);
            if (img_size < 0) {
                goto out;
            }
            break;
        }
    }

    if (argc - optind > 1) {
        error_report("At most one filename argument is allowed.");
        goto out;
    }
    if (argc - optind == 1) {
        filename = argv[optind];
    }
    if (!filename && (image_opts || fmt || sn.given)) {
        error_report("--image-opts, -f, and -l require a filename argument.");
        goto out;
    }
    if (filename && img_size != -1) {
        error_report("--size N cannot be used together with a filename.");
        goto out;
    }
    if (!filename && img_size == -1) {
        error_report("Either --size N or one filename must be specified.");
        goto out;
    }
    if (filename && image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        goto out;
    }

    if (filename) {
        in_bs = open_source(image_opts, filename, fmt, force_share, &sn);
        if (!in_bs) {
            goto out;
        }
    }
    if (!bdrv_find_format(out_fmt)) {
        error_report("Unknown file format '%s'", out_fmt);
        goto out;
    }
    if (!bdrv_format_can_create(out_fmt)) {
        error_report("Format driver '%s' does not support image creation", out_fmt);
        goto out;
    }
    opts = img_parse_option_list(options, &err);
    if (!opts || bdrv_create_opts_check(out_fmt, opts, &err) < 0) {
        error_report("%s", err->message);
        error_report("Invalid options for file format '%s'", out_fmt);
        goto out;
    }
    if (img_size != -1) {
        g_autofree char *s = g_strdup_printf("%" PRId64, img_size);
        opts_set_str(opts, "size", s);
    }
    if (bdrv_measure(out_fmt, opts, in_bs, &info, &err) < 0) {
        error_report("%s", err->message);
        goto out;
    }
    print_info(&info, output_format);
    ret = EXIT_SUCCESS;
out:
    if (in_bs) {
        bdrv_unref(in_bs);
    }
    g_free(sn.id);
    g_free(sn.name);
    return ret;
}
