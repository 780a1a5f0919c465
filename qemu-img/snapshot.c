/*
 * qemu-img snapshot: list (-l), create (-c), apply (-a) or delete (-d) internal
 * snapshots through the block layer's snapshot calls, with QEMU's messages.
 */
#include "qemu-img.h"

enum {
    SNAPSHOT_NONE,
    SNAPSHOT_LIST,
    SNAPSHOT_CREATE,
    SNAPSHOT_APPLY,
    SNAPSHOT_DELETE,
};

static void list_snapshots(BlockDriverState *bs)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(
        (GDestroyNotify)json_object_unref);
    int n = bdrv_snapshot_list(bs, list);

    if (n <= 0 || list->len == 0) {
        return;
    }
    printf("Snapshot list:\n");
    bdrv_snapshot_dump_header();
    for (guint i = 0; i < list->len; i++) {
        bdrv_snapshot_dump(list->pdata[i]);
    }
}

/* Is there a snapshot with this name? (qemu-img -d looks names up, not IDs) */
static bool snapshot_exists(BlockDriverState *bs, const char *name)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(
        (GDestroyNotify)json_object_unref);

    if (bdrv_snapshot_list(bs, list) <= 0) {
        return false;
    }
    for (guint i = 0; i < list->len; i++) {
        JsonObject *sn = list->pdata[i];
        if (json_object_has_member(sn, "name") &&
            !g_strcmp0(json_object_get_string_member(sn, "name"), name)) {
            return true;
        }
    }
    return false;
}

static int run_action(BlockDriverState *bs, int action, const char *name)
{
    g_autoptr(GError) err = NULL;
    int ret;

    switch (action) {
    case SNAPSHOT_LIST:
        list_snapshots(bs);
        return 0;
    case SNAPSHOT_CREATE:
        ret = bdrv_snapshot_create(bs, name);
        if (ret < 0) {
            error_report("Could not create snapshot '%s': %d (%s)", name, ret,
                         img_strerror(ret));
        }
        return ret;
    case SNAPSHOT_APPLY:
        ret = bdrv_snapshot_goto(bs, name, &err);
        if (ret < 0) {
            error_report("Could not apply snapshot '%s': %s", name, err->message);
        }
        return ret;
    case SNAPSHOT_DELETE:
        if (!snapshot_exists(bs, name)) {
            error_report("Could not delete snapshot '%s': snapshot not found", name);
            return -ENOENT;
        }
        ret = bdrv_snapshot_delete(bs, name, &err);
        if (ret < 0) {
            error_report("Could not delete snapshot '%s': %s", name, err->message);
        }
        return ret;
    }
    return 0;
}

int img_snapshot(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *name = NULL;
    bool quiet = false, image_opts = false, force_share = false;
    int action = SNAPSHOT_NONE, flags = BDRV_O_RDWR, c, ret;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":la:c:d:hqU", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action != SNAPSHOT_NONE) {
                error_exit("Cannot mix '-l', '-a', '-c', '-d'");
            }
            action = c == 'l' ? SNAPSHOT_LIST : c == 'a' ? SNAPSHOT_APPLY :
                     c == 'c' ? SNAPSHOT_CREATE : SNAPSHOT_DELETE;
            name = optarg;
            if (c == 'l') {
                flags &= ~BDRV_O_RDWR;
            }
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
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
    if (optind != argc - 1) {
        error_exit("Expecting one image file name");
    }
    filename = argv[optind];

    bs = img_open(image_opts, filename, NULL, flags, false, quiet, force_share);
    if (!bs) {
        return EXIT_FAILURE;
    }
    ret = run_action(bs, action, name);
    bdrv_unref(bs);
    return ret < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
