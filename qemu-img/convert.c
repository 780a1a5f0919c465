/*
 * qemu-img convert: copy one or more source images (concatenated) into a target
 * image created with the sources' total size (or an existing one with -n). The
 * copy follows block status through the sources' backing chains and keeps the
 * target sparse: ranges that read as zeros and zero runs of at least -S bytes in
 * the data are skipped on a zero-initialised target and written as zeroes
 * otherwise. -c writes whole clusters with BDRV_REQ_WRITE_COMPRESSED.
 *
 * Like QEMU, a first pass queries the block status of all sources (what -p
 * counts), then the copy pass queries it again extent by extent. --salvage
 * turns source errors into warnings: a failing block status query is narrowed
 * down to the sector it fails on (with -c: to the first sector of a cluster),
 * which is then taken as data; a failing read is retried sector by sector and
 * the sectors that still fail read as zeros.
 */
#include "qemu-img.h"
#include "read-ahead.h"

#define CONVERT_BUF_SIZE (2 * MiB)
#define MAX_MIN_SPARSE (16 * MiB)

typedef struct ConvertState {
    BlockDriverState **src;
    int64_t *src_sizes;
    int src_num;
    int64_t total_size;
    BlockDriverState *target;
    bool target_zero;        /* the target reads as zeros where we write nothing */
    bool target_backing;     /* the target has a backing file: what the source's
                              * top image does not allocate is left to it */
    bool compressed;
    int64_t min_sparse;      /* 0: no zero detection, write everything */
    int64_t cluster_size;    /* -c: the unit of compressed writes */
    int64_t done;            /* -p: bytes of progress so far, of progress_total */
    int64_t progress_total;
    bool progress;
    bool quiet;
    bool salvage;            /* --salvage */
    uint8_t *buf;
} ConvertState;

static bool buffer_is_zero(const uint8_t *buf, int64_t len)
{
    /* all bytes equal to the first, and the first is zero */
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

static int write_zeroes(ConvertState *s, int64_t offset, int64_t n)
{
    int ret;

    if (s->target_zero || n == 0) {
        return 0;
    }
    ret = bdrv_pwrite_zeroes(s->target, offset, n, BDRV_REQ_MAY_UNMAP);
    if (ret < 0) {
        error_report("error while writing at byte %" PRId64 ": %s", offset,
                     img_strerror(ret));
    }
    return ret;
}

static int write_data(ConvertState *s, int64_t offset, int64_t n, const uint8_t *buf,
                      int flags)
{
    int ret = bdrv_pwrite(s->target, offset, n, buf, flags);

    if (ret < 0) {
        error_report("error while writing at byte %" PRId64 ": %s", offset,
                     img_strerror(ret));
    }
    return ret;
}

/* Length of the run of zero (or non-zero) 512-byte sectors at @buf. */
static int64_t sector_run(const uint8_t *buf, int64_t n, bool zero)
{
    int64_t pos = 0;

    while (pos < n) {
        int64_t len = MIN((int64_t)BDRV_SECTOR_SIZE, n - pos);
        if (buffer_is_zero(buf + pos, len) != zero) {
            break;
        }
        pos += len;
    }
    return pos;
}

/*
 * Write a chunk of source data (one block status extent, at most the buffer): an
 * all-zero chunk becomes a hole (or zero writes), and so do the zero runs the
 * loop below picks, with -S aligned ends; everything else is written as data.
 */
static int write_sparse(ConvertState *s, int64_t offset, int64_t n, const uint8_t *buf)
{
    int64_t pos = 0, data_start = -1;
    int ret;

    if (s->min_sparse == 0) {
        return write_data(s, offset, n, buf, 0);
    }
    if (buffer_is_zero(buf, n)) {
        /* a chunk that is all zeros is left out whatever its length (QEMU's) */
        return write_zeroes(s, offset, n);
    }
    while (pos < n) {
        int64_t run = sector_run(buf + pos, n - pos, true);
        /*
         * A zero run of at least -S that starts the chunk is a hole from there;
         * after data, the data runs on to the next -S boundary of the image. A
         * hole ends at the last -S boundary in the run (facts from QEMU: its
         * iotest 122, and random patterns compared with QEMU 7.2).
         */
        int64_t hole = pos == 0 ? 0 : QEMU_ALIGN_UP(offset + pos, s->min_sparse) - offset;
        int64_t hole_end = offset + pos + run == s->total_size ? pos + run :
                           QEMU_ALIGN_DOWN(offset + pos + run, s->min_sparse) - offset;

        if (pos == 0 && run < s->min_sparse) {
            hole_end = 0;
        } else if (pos == 0 && hole_end <= hole) {
            hole_end = run;
        }

        if (run && hole_end > hole) {
            if (data_start < 0 && hole > pos) {
                data_start = pos;
            }
            if (data_start >= 0) {
                ret = write_data(s, offset + data_start, hole - data_start,
                                 buf + data_start, 0);
                if (ret < 0) {
                    return ret;
                }
                data_start = -1;
            }
            ret = write_zeroes(s, offset + hole, hole_end - hole);
            if (ret < 0) {
                return ret;
            }
            pos = hole_end;
            continue;
        }
        /* a short zero run is written along with the data around it */
        if (data_start < 0) {
            data_start = pos;
        }
        pos += run;
        pos += sector_run(buf + pos, n - pos, false);
    }
    if (data_start >= 0) {
        return write_data(s, offset + data_start, n - data_start, buf + data_start, 0);
    }
    return 0;
}

/*
 * Read [offset, offset + n) of source @bs into @buf. With --salvage a failing
 * read is retried sector by sector; a sector that still fails is warned about
 * (at its offset in the target) and reads as zeros.
 */
static int source_read(ConvertState *s, BlockDriverState *bs, int64_t offset,
                       int64_t n, uint8_t *buf, int64_t target_offset)
{
    int ret = bdrv_pread(bs, offset, n, buf, 0);

    if (ret >= 0) {
        return 0;
    }
    if (!s->salvage) {
        error_report("error while reading at byte %" PRId64 ": %s", target_offset,
                     img_strerror(ret));
        return ret;
    }
    for (int64_t pos = 0, len; pos < n; pos += len) {
        int64_t sector_end = QEMU_ALIGN_UP(offset + pos + 1, BDRV_SECTOR_SIZE);

        len = MIN(sector_end - (offset + pos), n - pos);
        ret = bdrv_pread(bs, offset + pos, len, buf + pos, 0);
        if (ret < 0) {
            if (!s->quiet) {
                warn_report("error while reading offset %" PRId64 ": %s",
                            target_offset + pos, img_strerror(ret));
            }
            memset(buf + pos, 0, len);
        }
    }
    return 0;
}

/*
 * Block status of [offset, offset + n) of source @bs. A failing query ends the
 * convert; with --salvage it is narrowed (same start, halved) until it succeeds
 * or is one sector long: that sector is warned about and taken as data.
 */
static int source_status(ConvertState *s, BlockDriverState *bs, int64_t offset,
                         int64_t n, int64_t target_offset, ImgBlockStatus *st)
{
    int ret = img_block_status(bs, offset, n, st);

    if (ret >= 0) {
        return 0;
    }
    if (!s->salvage) {
        error_report("error while reading block status at offset %" PRId64 ": %s",
                     target_offset, img_strerror(ret));
        return ret;
    }
    while (ret < 0 && n > (int64_t)BDRV_SECTOR_SIZE) {
        n = MAX(QEMU_ALIGN_DOWN(n / 2, BDRV_SECTOR_SIZE), (int64_t)BDRV_SECTOR_SIZE);
        ret = img_block_status(bs, offset, n, st);
    }
    if (ret < 0) {
        if (!s->quiet) {
            warn_report("error while reading block status at offset %" PRId64 ": %s",
                        target_offset, img_strerror(ret));
        }
        *st = (ImgBlockStatus) {
            .pnum = n,
            .flags = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED,
        };
    }
    return 0;
}

/*
 * -p counts what is copied as data, as QEMU does: extents that do not read as
 * zeros (every extent with -S 0, except for -c) and, when the target has a
 * backing file, only what the source's top image allocates.
 */
static bool extent_counts(ConvertState *s, const ImgBlockStatus *st)
{
    if (s->target_backing && !((st->flags & BDRV_BLOCK_ALLOCATED) && st->depth == 0)) {
        return false;
    }
    return (s->min_sparse == 0 && !s->compressed) || !(st->flags & BDRV_BLOCK_ZERO);
}

/* Bytes of [offset, offset + n) of the concatenated sources that count for -p. */
static int64_t progress_bytes(ConvertState *s, int64_t offset, int64_t n)
{
    int64_t base = 0, counted = 0;

    for (int i = 0; i < s->src_num && n > 0; i++) {
        while (n > 0 && offset < base + s->src_sizes[i]) {
            ImgBlockStatus st;
            int64_t len = MIN(n, base + s->src_sizes[i] - offset);

            if (img_block_status(s->src[i], offset - base, len, &st) < 0) {
                st.pnum = len;
                st.flags = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
                st.depth = 0;
            }
            len = MIN(len, st.pnum);
            counted += extent_counts(s, &st) ? len : 0;
            offset += len;
            n -= len;
        }
        base += s->src_sizes[i];
    }
    return counted;
}

/*
 * QEMU's first pass over the sources: their block status, what -p counts, into
 * *@total. A query that fails ends the convert (--salvage: see source_status).
 * With -c and --salvage the queries start at cluster boundaries, as QEMU's.
 */
static int count_pass(ConvertState *s, int64_t *total)
{
    int64_t base = 0, counted = 0;
    bool by_cluster = s->compressed && s->salvage;

    for (int i = 0; i < s->src_num; i++) {
        for (int64_t offset = 0, n; offset < s->src_sizes[i]; offset += n) {
            ImgBlockStatus st;
            int ret;

            n = s->src_sizes[i] - offset;
            if (by_cluster) {
                n = MIN(n, s->cluster_size - (base + offset) % s->cluster_size);
            }
            ret = source_status(s, s->src[i], offset, n, base + offset, &st);
            if (ret < 0) {
                return ret;
            }
            if (!by_cluster) {
                n = MIN(n, st.pnum);
            }
            counted += extent_counts(s, &st) ? n : 0;
        }
        base += s->src_sizes[i];
    }
    *total = counted;
    return 0;
}

static void account(ConvertState *s, int64_t n)
{
    if (!s->progress || n == 0) {
        return;
    }
    s->done += n;
    if (s->progress_total > 0) {
        img_progress_set(100.0 * s->done / s->progress_total);
    }
}

/*
 * The extent at @offset of source @bs (at most @n bytes): its length, whether
 * it is read as zeros, left to the target's backing file, and counted by -p.
 */
typedef struct Extent {
    int64_t offset, n;
    bool zero, skip, counts;
} Extent;

static int source_extent(ConvertState *s, BlockDriverState *bs, int64_t offset,
                         int64_t n, int64_t base, Extent *e)
{
    *e = (Extent) { .offset = offset, .n = n, .counts = true };
    if (s->min_sparse > 0 || s->target_backing || s->progress || s->salvage) {
        ImgBlockStatus st;
        int ret = source_status(s, bs, offset, n, base + offset, &st);

        if (ret < 0) {
            return ret;
        }
        e->n = st.pnum;
        e->zero = s->min_sparse > 0 && (st.flags & BDRV_BLOCK_ZERO);
        e->skip = s->target_backing && !((st.flags & BDRV_BLOCK_ALLOCATED) && st.depth == 0);
        e->counts = extent_counts(s, &st);
    }
    return 0;
}

/*
 * Copy one source to the target at @base, extent by extent. A source far away
 * (read_ahead_wanted) has its next data extent read while this one is written:
 * its block status is then queried one extent ahead, before the write.
 */
static int convert_source(ConvertState *s, BlockDriverState *bs, int64_t size,
                          int64_t base, ReadAhead *ra)
{
    int64_t offset = 0;
    Extent e, next = { .offset = -1 };

    while (offset < size) {
        int ret = 0, next_ret = 0;

        if (next.offset == offset) {
            e = next;
        } else if ((ret = source_extent(s, bs, offset, MIN(size - offset, CONVERT_BUF_SIZE),
                                        base, &e)) < 0) {
            return ret;
        }
        if (e.skip) {
            ret = 0;
        } else if (e.zero) {
            ret = write_zeroes(s, base + offset, e.n);
        } else {
            uint8_t *data = read_ahead_take(ra, bs, offset, e.n);

            if (!data) {
                data = s->buf;
                ret = source_read(s, bs, offset, e.n, data, base + offset);
            }
            if (ret == 0 && ra && offset + e.n < size && !s->salvage) {
                /* a failed query (reported) ends the copy after this write */
                next_ret = source_extent(s, bs, offset + e.n,
                                         MIN(size - offset - e.n, CONVERT_BUF_SIZE), base,
                                         &next);
                if (next_ret == 0 && !next.skip && !next.zero) {
                    read_ahead_start(ra, bs, next.offset, next.n);
                }
            }
            if (ret == 0) {
                ret = write_sparse(s, base + offset, e.n, data);
            }
            ret = ret < 0 ? ret : next_ret;
        }
        if (ret < 0) {
            return ret;
        }
        offset += e.n;
        account(s, e.counts ? e.n : 0);
    }
    return 0;
}

/* Does the source's top image allocate anything in [offset, offset + n)? */
static int top_allocates(BlockDriverState *bs, int64_t offset, int64_t n)
{
    while (n > 0) {
        ImgBlockStatus st;
        int ret = img_block_status(bs, offset, n, &st);

        if (ret < 0) {
            return ret;
        }
        if ((st.flags & BDRV_BLOCK_ALLOCATED) && st.depth == 0) {
            return 1;
        }
        offset += st.pnum;
        n -= st.pnum;
    }
    return 0;
}

/* Read @n bytes of the concatenated sources at @offset into @buf. */
static int read_concat(ConvertState *s, int64_t offset, int64_t n, uint8_t *buf)
{
    int64_t base = 0;

    for (int i = 0; i < s->src_num && n > 0; i++) {
        if (offset < base + s->src_sizes[i]) {
            int64_t len = MIN(n, base + s->src_sizes[i] - offset);
            int ret = source_read(s, s->src[i], offset - base, len, buf, offset);
            if (ret < 0) {
                return ret;
            }
            buf += len;
            offset += len;
            n -= len;
        }
        base += s->src_sizes[i];
    }
    return 0;
}

/*
 * --salvage with -c: the cluster at @offset (of the concatenated sources) is
 * queried from its start and then read, as QEMU's salvaging compressed convert
 * does; *@alloc: does the source's top image have it (when the target has a
 * backing file, else 1).
 */
static int salvage_cluster(ConvertState *s, int64_t offset, int64_t n, uint8_t *buf,
                           int *alloc)
{
    int64_t base = 0;
    int i = 0;
    ImgBlockStatus st;

    while (i < s->src_num - 1 && offset >= base + s->src_sizes[i]) {
        base += s->src_sizes[i++];
    }
    source_status(s, s->src[i], offset - base,
                  MIN(n, base + s->src_sizes[i] - offset), offset, &st);
    *alloc = 1;
    if (s->target_backing && !(st.flags & BDRV_BLOCK_ALLOCATED && st.depth == 0)) {
        /* what the query did not cover; a failure counts as allocated data */
        *alloc = top_allocates(s->src[0], offset, n) != 0;
    }
    return read_concat(s, offset, n, buf);
}

/*
 * -c: whole clusters, all-zero clusters left out (unless -S 0: then they are
 * written compressed too) and, over a backing file, the clusters the source's
 * top layer does not allocate. Runs of data clusters go to the target in one
 * compressed write, which compresses them on every core.
 */
static int convert_compressed(ConvertState *s)
{
    int64_t chunk = MAX(QEMU_ALIGN_DOWN(CONVERT_BUF_SIZE, s->cluster_size),
                        s->cluster_size);

    for (int64_t base = 0; base < s->total_size; base += chunk) {
        int64_t len = MIN(chunk, s->total_size - base);
        int64_t run_start = -1;         /* first data cluster not yet written */
        int ret = s->salvage ? 0 : read_concat(s, base, len, s->buf);

        if (ret < 0) {
            return ret;
        }
        /* n == 0 past the last (maybe partial) cluster: the run still open goes */
        for (int64_t off = 0, n; ; off += n) {
            bool data = false;
            int alloc = 1;          /* the source's top layer has the cluster */

            n = MIN(s->cluster_size, len - off);
            if (n > 0 && s->salvage) {
                ret = salvage_cluster(s, base + off, n, s->buf + off, &alloc);
                if (ret < 0) {
                    return ret;
                }
            } else if (n > 0 && s->target_backing) {
                /* a backing file means a single source */
                alloc = top_allocates(s->src[0], base + off, n);
                if (alloc < 0) {
                    error_report("error while reading block status at offset %"
                                 PRId64 ": %s", base + off, img_strerror(alloc));
                    return alloc;
                }
            }
            if (n > 0) {
                data = alloc && (s->min_sparse == 0 || !buffer_is_zero(s->buf + off, n));
            }
            if (run_start >= 0 && !data) {
                ret = write_data(s, base + run_start, off - run_start,
                                 s->buf + run_start, BDRV_REQ_WRITE_COMPRESSED);
                if (ret < 0) {
                    return ret;
                }
                account(s, s->progress ? progress_bytes(s, base + run_start,
                                                        off - run_start) : 0);
                run_start = -1;
            }
            if (n == 0) {
                break;
            }
            if (data) {
                if (run_start < 0) {
                    run_start = off;
                }
            } else {
                /* zeros are written as such; what the backing file shows, not */
                if (alloc && (ret = write_zeroes(s, base + off, n)) < 0) {
                    return ret;
                }
                account(s, s->progress ? progress_bytes(s, base + off, n) : 0);
            }
        }
    }
    return 0;
}

static int convert_do_copy(ConvertState *s)
{
    int64_t base = 0;
    int ret = 0;

    s->buf = g_malloc(MAX(CONVERT_BUF_SIZE, s->cluster_size));
    if (s->compressed) {
        ret = convert_compressed(s);
        if (ret == 0) {
            /* the end-of-stream compressed write QEMU's convert ends with; a
             * target that cannot compress fails it, silently */
            ret = bdrv_pwrite(s->target, 0, 0, s->buf, BDRV_REQ_WRITE_COMPRESSED);
            if (ret < 0) {
                g_free(s->buf);
                return ret;
            }
        }
    } else {
        for (int i = 0; i < s->src_num && ret == 0; i++) {
            ReadAhead *ra = read_ahead_wanted(s->src[i]) ? read_ahead_new(CONVERT_BUF_SIZE)
                                                          : NULL;

            ret = convert_source(s, s->src[i], s->src_sizes[i], base, ra);
            read_ahead_free(ra);
            base += s->src_sizes[i];
        }
    }
    if (ret == 0) {
        ret = bdrv_flush(s->target);
        if (ret < 0) {
            error_report("error while flushing: %s", img_strerror(ret));
        }
    }
    g_free(s->buf);
    return ret;
}

typedef struct ConvertOpts {
    const char *fmt, *out_fmt, *out_filename, *options, *cache, *src_cache;
    const char *out_baseimg, *backing_fmt;        /* -B, -F */
    int64_t min_sparse;
    bool explicit_min_sparse, copy_range, compress, progress, quiet, skip_create;
    bool image_opts, tgt_image_opts, target_is_zero, force_share, untrusted;
    bool salvage, bitmaps, skip_broken_bitmaps;
    int num_coroutines;
    ImgSnapshotParam snapshot;                    /* -l */
} ConvertOpts;

static void parse_size_opt(const char *arg, const char *what, uint64_t *out)
{
    if (qemu_strtosz(arg, NULL, out) < 0) {
        error_report("Invalid %s specified. You may use k, M, G, T, P or E suffixes "
                     "for", what);
        error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                     "exabytes.");
        exit(EXIT_FAILURE);
    }
}

static void parse_args(int argc, char **argv, ConvertOpts *o)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "target-image-opts", no_argument, NULL, OPTION_TARGET_IMAGE_OPTS },
        { "target-is-zero", no_argument, NULL, OPTION_TARGET_IS_ZERO },
        { "untrusted", no_argument, NULL, OPTION_UNTRUSTED },
        { "salvage", no_argument, NULL, OPTION_SALVAGE },
        { "bitmaps", no_argument, NULL, OPTION_BITMAPS },
        { "skip-broken-bitmaps", no_argument, NULL, OPTION_SKIP_BROKEN },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, ":hf:O:B:F:Cco:l:S:pt:T:qnm:WUr:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            o->fmt = optarg;
            break;
        case 'O':
            o->out_fmt = optarg;
            break;
        case 'l':
            if (!img_parse_snapshot_param(optarg, &o->snapshot)) {
                exit(EXIT_FAILURE);
            }
            break;
        case 'B':
            o->out_baseimg = optarg;
            break;
        case 'F':
            o->backing_fmt = optarg;
            break;
        case 'C':
            o->copy_range = true;
            break;
        case 'c':
            o->compress = true;
            break;
        case 'o':
            if (!img_accumulate_options((char **)&o->options, optarg)) {
                exit(EXIT_FAILURE);
            }
            break;
        case 'S':
            parse_size_opt(optarg, "buffer size for sparse output", &v);
            if (v > MAX_MIN_SPARSE || v % BDRV_SECTOR_SIZE) {
                error_report("Invalid buffer size for sparse output specified. "
                             "Valid sizes are multiples of %llu up to %" PRId64
                             ". Select 0 to disable sparse detection (fully "
                             "allocates output).", BDRV_SECTOR_SIZE, MAX_MIN_SPARSE);
                exit(EXIT_FAILURE);
            }
            o->min_sparse = v;
            o->explicit_min_sparse = true;
            break;
        case 'p':
            o->progress = true;
            break;
        case 't':
            o->cache = optarg;
            break;
        case 'T':
            o->src_cache = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'n':
            o->skip_create = true;
            break;
        case 'm':
            if (qemu_strtoi64(optarg, 10, (int64_t *)&v) < 0 || (int64_t)v < 1 ||
                (int64_t)v > 16) {
                error_report("Invalid number of coroutines. Allowed number of "
                             "coroutines is between 1 and 16");
                exit(EXIT_FAILURE);
            }
            o->num_coroutines = v;
            break;
        case 'W':
            break;            /* out-of-order writes: we write in order anyway */
        case 'U':
            o->force_share = true;
            break;
        case 'r':
            parse_size_opt(optarg, "rate limit", &v);   /* accepted, not enforced */
            break;
        case OPTION_IMAGE_OPTS:
            o->image_opts = true;
            break;
        case OPTION_TARGET_IMAGE_OPTS:
            o->tgt_image_opts = true;
            break;
        case OPTION_TARGET_IS_ZERO:
            o->target_is_zero = true;
            break;
        case OPTION_UNTRUSTED:
            o->untrusted = true;
            break;
        case OPTION_SALVAGE:
            o->salvage = true;
            break;
        case OPTION_BITMAPS:
            o->bitmaps = true;
            break;
        case OPTION_SKIP_BROKEN:
            o->skip_broken_bitmaps = true;
            break;
        case OPTION_OBJECT:
            img_add_object(optarg);
            break;
        }
    }
}

/*
 * --bitmaps, before the target is created: the source must hold persistent
 * bitmaps, and none may be inconsistent (in use) unless --skip-broken-bitmaps.
 * Bitmaps are looked at in QEMU's order, newest first.
 */
static int bitmaps_precheck(ConvertOpts *o, ConvertState *s)
{
    JsonArray *list;
    int ret = 0;

    if (!o->bitmaps) {
        return 0;
    }
    if (!bdrv_supports_persistent_bitmaps(s->src[0])) {
        error_report("Source lacks bitmap support");
        return -ENOTSUP;
    }
    list = bdrv_query_dirty_bitmaps(s->src[0]);
    for (guint i = 0; list && i < json_array_get_length(list) && ret == 0; i++) {
        JsonObject *bm = json_array_get_object_element(list, i);

        if (json_object_get_boolean_member_with_default(bm, "inconsistent", false) &&
            !o->skip_broken_bitmaps) {
            error_report("Cannot copy inconsistent bitmap '%s'\n"
                         "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' "
                         "to delete it", json_object_get_string_member(bm, "name"));
            ret = -EINVAL;
        }
    }
    if (list) {
        json_array_unref(list);
    }
    return ret;
}

/* Is there a bitmap named @name in @list (bdrv_query_dirty_bitmaps)? */
static bool bitmap_listed(JsonArray *list, const char *name)
{
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *bm = json_array_get_object_element(list, i);
        if (!strcmp(json_object_get_string_member(bm, "name"), name)) {
            return true;
        }
    }
    return false;
}

/* Create bitmap @bm (of the source's list) in the target with the source's bits. */
static int copy_one_bitmap(ConvertState *s, JsonObject *bm)
{
    const char *name = json_object_get_string_member(bm, "name");
    g_autoptr(GError) err = NULL;

    if (bdrv_bitmap_op(s->target, BDRV_BITMAP_ADD, name,
                       json_object_get_int_member(bm, "granularity"), NULL, NULL,
                       &err) < 0 ||
        (!json_object_get_boolean_member(bm, "recording") &&
         bdrv_bitmap_op(s->target, BDRV_BITMAP_DISABLE, name, 0, NULL, NULL,
                        &err) < 0)) {
        error_report("Failed to create bitmap %s: %s", name, err->message);
        return -EINVAL;
    }
    if (bdrv_bitmap_op(s->target, BDRV_BITMAP_MERGE, name, 0, s->src[0], name,
                       &err) < 0) {
        error_report("Failed to populate bitmap %s: %s", name, err->message);
        bdrv_bitmap_op(s->target, BDRV_BITMAP_REMOVE, name, 0, NULL, NULL, NULL);
        return -EINVAL;
    }
    return 0;
}

/*
 * --bitmaps, after the data: copy the source's persistent bitmaps (name,
 * granularity, enabled or not, bits) into the target. QEMU goes through them
 * newest first and stops at the first that cannot be created or filled; the
 * ones before it are kept. We find that one first, then create the others
 * newest first, as QEMU does: the target stores new bitmaps newest first, so
 * its directory lists them in the source's order.
 */
static int convert_copy_bitmaps(ConvertState *s, bool skip_broken)
{
    JsonArray *list = bdrv_query_dirty_bitmaps(s->src[0]);
    JsonArray *have = bdrv_query_dirty_bitmaps(s->target);
    guint n = list ? json_array_get_length(list) : 0, fail = n;
    bool same_size = bdrv_getlength(s->src[0]) == bdrv_getlength(s->target);
    g_autoptr(GError) err = NULL;
    int ret = 0;

    for (guint i = 0; i < n; i++) {
        JsonObject *bm = json_array_get_object_element(list, i);
        const char *name = json_object_get_string_member(bm, "name");

        if (json_object_get_boolean_member_with_default(bm, "inconsistent", false)) {
            if (skip_broken) {      /* else refused before the copy */
                warn_report("Skipping inconsistent bitmap '%s'", name);
            }
            continue;
        }
        if (bitmap_listed(have, name) || !same_size) {
            fail = i;
            break;
        }
    }
    for (guint i = 0; i < fail && ret == 0; i++) {
        JsonObject *bm = json_array_get_object_element(list, i);

        if (!json_object_get_boolean_member_with_default(bm, "inconsistent", false)) {
            ret = copy_one_bitmap(s, bm);
        }
    }
    if (ret == 0 && fail < n) {
        ret = copy_one_bitmap(s, json_array_get_object_element(list, fail));
    }
    if (bdrv_bitmaps_store(s->target, &err) < 0 && ret == 0) {
        error_report("%s", err->message);
        ret = -EIO;
    }
    if (list) {
        json_array_unref(list);
    }
    if (have) {
        json_array_unref(have);
    }
    return ret;
}

/* Create the target (unless -n) and open it. */
static BlockDriverState *open_target(ConvertOpts *o, ConvertState *s)
{
    int flags = BDRV_O_RDWR;
    bool writethrough = false;
    BlockDriverState *bs;
    int64_t len;
    /* the new image is opened with the key secrets it was created with (QEMU) */
    g_autoptr(JsonObject) secrets = json_object_new();
    g_autoptr(JsonObject) nested_secrets = NULL;

    if (img_parse_cache(o->cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", o->cache);
        return NULL;
    }
    if (!o->skip_create) {
        g_autofree char *size = g_strdup_printf("%" PRId64, s->total_size);
        g_autoptr(JsonObject) opts = NULL;
        g_autoptr(GError) err = NULL;

        if (bdrv_create_check_protocol(o->out_filename, &err) < 0) {
            error_report("%s", err->message);
            return NULL;
        }
        opts = img_parse_option_list(o->options, &err);
        if (!opts || bdrv_create_opts_check(o->out_fmt, opts, &err) < 0) {
            error_report("%s", err->message);
            return NULL;
        }
        if (bitmaps_precheck(o, s) < 0) {
            return NULL;
        }
        if (o->out_baseimg) {
            opts_set_str(opts, "backing_file", o->out_baseimg);
        }
        if (o->backing_fmt) {
            opts_set_str(opts, "backing_fmt", o->backing_fmt);
        }
        if (opts_has(opts, "backing_file") && !opts_has(opts, "backing_fmt")) {
            error_report("Use of backing file requires explicit backing format");
            return NULL;
        }
        opts_set_str(opts, "size", size);
        bdrv_create_opts_normalize(o->out_fmt, opts);
        {
            GList *members = json_object_get_members(opts);
            for (GList *l = members; l; l = l->next) {
                if (g_str_has_suffix(l->data, "key-secret")) {
                    json_object_set_member(secrets, l->data,
                                           json_object_dup_member(opts, l->data));
                }
            }
            g_list_free(members);
        }
        if (bdrv_create(o->out_fmt, o->out_filename, opts, &err) < 0) {
            error_report("%s: error while converting %s: %s", o->out_filename,
                         o->out_fmt, err->message);
            return NULL;
        }
    }
    if (o->skip_create && bitmaps_precheck(o, s) < 0) {
        return NULL;
    }
    if (json_object_get_size(secrets)) {
        nested_secrets = opts_crumple(secrets, NULL);
    }
    bs = img_open_opts(o->tgt_image_opts, o->out_filename,
                       o->tgt_image_opts ? NULL : o->out_fmt, nested_secrets, flags,
                       writethrough, o->quiet, false);
    if (!bs) {
        return NULL;
    }
    len = bdrv_getlength(bs);
    if (o->skip_create && len >= 0 && len < s->total_size) {
        error_report("output file is smaller than input file");
        bdrv_unref(bs);
        return NULL;
    }
    if (o->bitmaps && !bdrv_supports_persistent_bitmaps(bs)) {
        error_report("Format driver '%s' does not support bitmaps",
                     bdrv_get_format_name(bs));
        bdrv_unref(bs);
        return NULL;
    }
    if (o->compress && bdrv_is_encrypted(bs)) {
        error_report("Compression and encryption not supported at the same time");
        bdrv_unref(bs);
        return NULL;
    }
    if (o->compress) {
        BlockDriverInfo bdi;
        if (bdrv_get_info(bs, &bdi) < 0 || bdi.cluster_size <= 0) {
            error_report("could not get block driver info");
            bdrv_unref(bs);
            return NULL;
        }
        s->cluster_size = bdi.cluster_size;
    }
    return bs;
}

static int target_is_zero_refused(void)
{
    error_report("Cannot use --target-is-zero when the destination image has a "
                 "backing file");
    return EXIT_SUCCESS;      /* sic: QEMU 7.2 exits with status 0 here */
}

int img_convert(int argc, char **argv)
{
    ConvertOpts o = {
        .out_fmt = NULL, .cache = "unsafe", .src_cache = BDRV_DEFAULT_CACHE,
        .min_sparse = 8 * BDRV_SECTOR_SIZE, .num_coroutines = 8,
    };
    ConvertState s = { 0 };
    int src_flags = BDRV_O_NO_SHARE, ret = EXIT_FAILURE;
    bool src_writethrough = false;
    g_autofree char *options = NULL;

    parse_args(argc, argv, &o);
    options = (char *)o.options;
    /* freed on every return; o.snapshot keeps pointing at them until then */
    g_autofree char *snapshot_id = o.snapshot.id;
    g_autofree char *snapshot_name = o.snapshot.name;

    if (o.skip_broken_bitmaps && !o.bitmaps) {
        error_report("Use of --skip-broken-bitmaps requires --bitmaps");
        return EXIT_FAILURE;
    }
    if (o.copy_range && o.compress) {
        error_report("Cannot enable copy offloading when -c is used");
        return EXIT_FAILURE;
    }
    if (o.copy_range && o.explicit_min_sparse) {
        error_report("Cannot enable copy offloading when -S is used");
        return EXIT_FAILURE;
    }
    if (o.copy_range && o.salvage) {
        error_report("Cannot use copy offloading in salvaging mode");
        return EXIT_FAILURE;
    }
    if (o.skip_create && options) {
        error_report("-o has no effect when skipping image creation");
        return EXIT_FAILURE;
    }
    if (o.target_is_zero && !o.skip_create) {
        error_report("--target-is-zero requires use of -n flag");
        return EXIT_FAILURE;
    }
    if (o.tgt_image_opts && !o.skip_create) {
        error_report("--target-image-opts requires use of -n flag");
        return EXIT_FAILURE;
    }
    if (o.image_opts && o.fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }
    if (o.tgt_image_opts && o.out_fmt) {
        error_report("--target-image-opts and -O are mutually exclusive");
        return EXIT_FAILURE;
    }
    if (!o.out_fmt && !o.tgt_image_opts) {
        o.out_fmt = "raw";
    }
    if (o.quiet) {
        o.progress = false;
    }
    s.src_num = argc - optind - 1;
    o.out_filename = s.src_num >= 1 ? argv[argc - 1] : NULL;

    if (options && img_has_help_option(options)) {
        return img_print_create_opts_help(o.out_filename, o.out_fmt);
    }
    if (s.src_num < 1) {
        error_report("Must specify image file name");
        return EXIT_FAILURE;
    }
    if (img_parse_cache(o.src_cache, &src_flags, &src_writethrough) < 0) {
        error_report("Invalid source cache option: %s", o.src_cache);
        return EXIT_FAILURE;
    }
    if (o.untrusted) {
        src_flags |= BDRV_O_UNTRUSTED;
    }
    if (o.force_share) {
        src_flags &= ~BDRV_O_NO_SHARE;
    }

    if (s.src_num > 1 && o.snapshot.given) {
        error_report("No support for concatenating multiple snapshot");
        return EXIT_FAILURE;
    }
    s.src = g_new0(BlockDriverState *, s.src_num);
    s.src_sizes = g_new0(int64_t, s.src_num);
    for (int i = 0; i < s.src_num; i++) {
        s.src[i] = img_open(o.image_opts, argv[optind + i], o.fmt, src_flags,
                            src_writethrough, o.quiet, o.force_share);
        if (!s.src[i] || img_load_snapshot(s.src[i], &o.snapshot) < 0) {
            goto out;
        }
        s.src_sizes[i] = bdrv_getlength(s.src[i]);
        if (s.src_sizes[i] < 0) {
            error_report("Could not get size of %s: %s", argv[optind + i],
                         img_strerror(s.src_sizes[i]));
            goto out;
        }
        s.total_size += s.src_sizes[i];
    }

    if (o.out_fmt && !bdrv_find_format(o.out_fmt)) {
        error_report("Unknown file format '%s'", o.out_fmt);
        goto out;
    }
    /* a read-only format (bochs) is refused before any option is looked at */
    if (o.out_fmt && !o.skip_create && !bdrv_format_can_create(o.out_fmt)) {
        error_report("Format driver '%s' does not support image creation", o.out_fmt);
        goto out;
    }
    if (o.out_baseimg && s.src_num > 1) {
        error_report("Having a backing file for the target makes no sense when "
                     "concatenating multiple input images");
        goto out;
    }
    if (o.out_baseimg && (!o.out_fmt || !bdrv_create_opt_known(o.out_fmt,
                                                               "backing_file"))) {
        error_report("Backing file not supported for file format '%s'",
                     o.out_fmt ? o.out_fmt : "");
        goto out;
    }
    if (o.compress && (!o.out_fmt || !bdrv_supports_compressed_writes(o.out_fmt))) {
        error_report("Compression not supported for this file format");
        goto out;
    }
    if (o.bitmaps && s.src_num > 1) {
        error_report("Copying bitmaps only possible with single source");
        goto out;
    }

    if (o.out_baseimg && o.target_is_zero) {
        ret = target_is_zero_refused();
        goto out;
    }
    s.target = open_target(&o, &s);
    if (!s.target) {
        goto out;
    }
    /* a backing file given for the new target (-B or -o backing_file=) */
    s.target_backing = !o.skip_create && bdrv_get_backing_filename(s.target);
    s.target_backing = s.target_backing || o.out_baseimg;
    /* --target-is-zero is the user's word, even over a backing file (QEMU's) */
    s.target_zero = o.target_is_zero || (!o.skip_create && !s.target_backing);
    if (s.target_zero && !o.target_is_zero && bdrv_is_encrypted(s.target) &&
        s.total_size > 0) {
        /* preallocated clusters of an encrypted image hold no encrypted zeros
         * (QEMU's has_zero_init is false for them) */
        int64_t pnum = 0;
        int st = bdrv_block_status(s.target, 0, s.total_size, &pnum, NULL, NULL);
        s.target_zero = st >= 0 && !(st & BDRV_BLOCK_ALLOCATED);
    }
    s.compressed = o.compress;
    s.min_sparse = o.min_sparse;
    s.quiet = o.quiet;
    s.salvage = o.salvage;

    s.progress = o.progress;
    img_progress_init(o.progress, 1.0);
    if (count_pass(&s, &s.progress_total) == 0 && convert_do_copy(&s) == 0 &&
        (!o.bitmaps || convert_copy_bitmaps(&s, o.skip_broken_bitmaps) == 0)) {
        ret = EXIT_SUCCESS;
        img_progress_finish();
    }
    img_progress_end();

out:
    if (s.target) {
        bdrv_unref(s.target);
    }
    for (int i = 0; s.src && i < s.src_num; i++) {
        if (s.src[i]) {
            bdrv_unref(s.src[i]);
        }
    }
    g_free(s.src);
    g_free(s.src_sizes);
    return ret;
}
