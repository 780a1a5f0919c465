/*
 * qemu-img map: walk the image's block status down the backing chain (depth is
 * the layer that decides the content), coalesce adjacent extents as QEMU does and
 * print them as a human table of data extents or as one JSON object per extent.
 */
#include "qemu-img.h"

typedef struct MapEntry {
    int64_t start;
    int64_t length;
    int flags;               /* BDRV_BLOCK_* */
    int depth;
    bool has_offset;
    int64_t offset;
    const char *filename;    /* the file holding the data (human output) */
} MapEntry;

/* Status of one extent through the backing chain, as a map entry. */
static int get_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            MapEntry *e)
{
    ImgBlockStatus st;
    int ret;

    /* map looks through filter drivers on top (QEMU's: a blkdebug block-status
     * rule does not fail it); raw, which may shift offsets, is kept */
    while (bdrv_skip_filters(bs) != bs && strcmp(bdrv_get_format_name(bs), "raw")) {
        bs = bdrv_file_child(bs);
    }
    ret = img_block_status(bs, offset, bytes, &st);

    if (ret < 0) {
        return ret;
    }
    *e = (MapEntry) {
        .start = offset,
        .length = st.pnum,
        .flags = st.flags,
        .depth = st.depth,
        .has_offset = (st.flags & BDRV_BLOCK_OFFSET_VALID) != 0,
        .offset = st.offset,
        .filename = st.file ? bdrv_get_filename(st.file) : NULL,
    };
    return 0;
}

static bool entry_mergeable(const MapEntry *curr, const MapEntry *next)
{
    if (curr->length == 0 || curr->flags != next->flags ||
        curr->depth != next->depth || curr->has_offset != next->has_offset) {
        return false;
    }
    if (g_strcmp0(curr->filename, next->filename)) {
        return false;
    }
    return !curr->has_offset || curr->offset + curr->length == next->offset;
}

static int dump_map_entry(OutputFormat fmt, const MapEntry *e, const MapEntry *next)
{
    switch (fmt) {
    case OFORMAT_HUMAN:
        if ((e->flags & BDRV_BLOCK_DATA) && !e->has_offset) {
            error_report("File contains external, encrypted or compressed clusters.");
            return -1;
        }
        /* data that reads as zeros (preallocated, a hole below) is not listed */
        if ((e->flags & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) == BDRV_BLOCK_DATA &&
            e->has_offset) {
            printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n",
                   (uint64_t)e->start, (uint64_t)e->length, (uint64_t)e->offset,
                   e->filename);
        }
        return 0;
    case OFORMAT_JSON:
        printf("{ \"start\": %" PRId64 ", \"length\": %" PRId64 ","
               " \"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
               e->start, e->length, e->depth,
               (e->flags & BDRV_BLOCK_ALLOCATED) ? "true" : "false",
               (e->flags & BDRV_BLOCK_ZERO) ? "true" : "false",
               (e->flags & BDRV_BLOCK_DATA) ? "true" : "false");
        if (e->has_offset) {
            printf(", \"offset\": %" PRId64, e->offset);
        }
        printf("}");
        if (next) {
            printf(",\n");
        }
        return 0;
    }
    return -1;
}

int img_map(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "start-offset", required_argument, NULL, 's' },
        { "max-length", required_argument, NULL, 'l' },
        { "untrusted", no_argument, NULL, OPTION_UNTRUSTED },
        { NULL, 0, NULL, 0 },
    };
    OutputFormat output_format = OFORMAT_HUMAN;
    bool image_opts = false, force_share = false, untrusted = false;
    const char *filename, *fmt = NULL;
    int64_t start_offset = 0, max_length = -1, length, offset;
    BlockDriverState *bs;
    MapEntry curr = { .length = 0 }, next;
    uint64_t v;
    int c, ret = 0;

    while ((c = getopt_long(argc, argv, ":f:s:l:hU", long_options, NULL)) != -1) {
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
        case 's':
            if (qemu_strtosz(optarg, NULL, &v) < 0) {
                img_report_bad_size("start offset");
                return EXIT_FAILURE;
            }
            start_offset = v;
            break;
        case 'l':
            if (qemu_strtosz(optarg, NULL, &v) < 0) {
                img_report_bad_size("max length");
                return EXIT_FAILURE;
            }
            max_length = v;
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

    bs = img_open(image_opts, filename, fmt,
                  img_inspect_flags(image_opts, filename, untrusted) &
                  ~BDRV_O_NO_BACKING, false, false, force_share);
    if (!bs) {
        return EXIT_FAILURE;
    }
    length = bdrv_getlength(bs);
    if (length < 0) {
        error_report("Failed to get size for '%s'", filename);
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }
    if (max_length != -1) {
        /* QEMU's arithmetic: an overflowing end leaves nothing to map */
        length = MIN((int64_t)((uint64_t)start_offset + (uint64_t)max_length), length);
    }

    if (output_format == OFORMAT_HUMAN) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    } else {
        printf("[");
    }
    curr.start = start_offset;
    for (offset = start_offset; offset < length; offset += next.length) {
        int64_t n = MIN(1 * GiB, length - offset);

        ret = get_block_status(bs, offset, n, &next);
        if (ret < 0) {
            error_report("Could not read file metadata: %s", img_strerror(ret));
            goto out;
        }
        if (entry_mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (curr.length > 0) {
            ret = dump_map_entry(output_format, &curr, &next);
            if (ret < 0) {
                goto out;
            }
        }
        curr = next;
    }
    ret = dump_map_entry(output_format, &curr, NULL);
    if (output_format == OFORMAT_JSON) {
        printf("]\n");
    }
out:
    bdrv_unref(bs);
    return ret < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
