/*
 * qemu-img info: open the image (and with --backing-chain each backing file in
 * turn, by name), collect an ImageInfo object per image (block/qapi.c), then print
 * them human-readable or as JSON.
 */
#include "qemu-img.h"

/* Collect the ImageInfo of the image and, with @chain, of its backing files. */
static GPtrArray *collect_image_info_list(bool image_opts, const char *filename,
                                          const char *fmt, bool chain,
                                          bool force_share, bool untrusted)
{
    GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                       g_free, NULL);
    g_autofree char *next_name = g_strdup(filename);
    g_autofree char *next_fmt = g_strdup(fmt);

    while (next_name) {
        BlockDriverState *bs;
        JsonObject *info;
        g_autoptr(GError) err = NULL;
        int flags;

        if (g_hash_table_contains(seen, next_name)) {
            error_report("Backing file '%s' creates an infinite loop.", next_name);
            goto fail;
        }
        g_hash_table_add(seen, g_strdup(next_name));

        /* metadata only: as QEMU's, info needs no consistent read */
        flags = img_inspect_flags(image_opts, next_name, untrusted) | BDRV_O_NO_IO;
        bs = img_open(image_opts, next_name, next_fmt, flags, false, false,
                      force_share);
        if (!bs) {
            goto fail;
        }
        info = bdrv_query_image_info(bs, &err);
        bdrv_unref(bs);
        if (!info) {
            error_report("%s", err->message);
            goto fail;
        }
        g_ptr_array_add(list, info);

        g_free(next_name);
        g_free(next_fmt);
        next_name = next_fmt = NULL;
        image_opts = false;
        if (chain && untrusted && json_object_has_member(info, "backing-filename")) {
            /* following the chain would open a file the image names */
            error_report("Could not open '%s': Image refers to a backing file ('%s'); "
                         "refusing to open it in untrusted mode",
                         json_object_get_string_member(info, "filename"),
                         json_object_get_string_member(info, "backing-filename"));
            goto fail;
        }
        if (chain && json_object_has_member(info, "backing-filename")) {
            const char *full = json_object_has_member(info, "full-backing-filename") ?
                json_object_get_string_member(info, "full-backing-filename") :
                json_object_get_string_member(info, "backing-filename");
            next_name = g_strdup(full);
            if (json_object_has_member(info, "backing-filename-format")) {
                next_fmt = g_strdup(json_object_get_string_member(
                    info, "backing-filename-format"));
            }
        }
    }
    return list;

fail:
    g_ptr_array_unref(list);
    return NULL;
}

static void dump_json_list(GPtrArray *list)
{
    JsonArray *arr = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    for (guint i = 0; i < list->len; i++) {
        json_array_add_object_element(arr, json_object_ref(list->pdata[i]));
    }
    json_node_take_array(node, arr);
    qapi_print_json(node);
    json_node_unref(node);
}

int img_info(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "backing-chain", no_argument, NULL, OPTION_BACKING_CHAIN },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "untrusted", no_argument, NULL, OPTION_UNTRUSTED },
        { NULL, 0, NULL, 0 },
    };
    OutputFormat output_format = OFORMAT_HUMAN;
    bool chain = false, image_opts = false, force_share = false, untrusted = false;
    const char *filename, *fmt = NULL;
    g_autoptr(GPtrArray) list = NULL;
    int c;

    while ((c = getopt_long(argc, argv, ":f:hU", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OUTPUT:
            output_format = img_parse_output_format(optarg);
            break;
        case OPTION_BACKING_CHAIN:
            chain = true;
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

    list = collect_image_info_list(image_opts, filename, fmt, chain, force_share,
                                   untrusted);
    if (!list) {
        return EXIT_FAILURE;
    }
    if (output_format == OFORMAT_JSON) {
        if (chain) {
            dump_json_list(list);
        } else {
            qapi_print_json_object(list->pdata[0]);
        }
        return EXIT_SUCCESS;
    }
    for (guint i = 0; i < list->len; i++) {
        if (i > 0) {
            printf("\n");
        }
        bdrv_image_info_dump(list->pdata[i]);
    }
    return EXIT_SUCCESS;
}
