/*
 * qemu-img bench: a read or write benchmark with up to -d requests in flight
 * through the request layer (block/aio.c), optional flushes (after draining
 * the requests in flight, unless --no-drain), and the run time printed as
 * QEMU prints it.
 */
#include "qemu-img.h"
#include "block/aio.h"
#include <time.h>

typedef struct BenchParams {
    int count;
    int depth;
    int64_t offset;
    int64_t bufsize;
    int64_t step;
    int pattern;
    int flush_interval;
    bool write;
    bool drain_on_flush;
} BenchParams;

static G_NORETURN void bad_size(const char *what)
{
    img_report_bad_size(what);
    exit(EXIT_FAILURE);
}

static int parse_int_arg(const char *arg, int min, const char *err)
{
    int64_t v;

    if (qemu_strtoi64(arg, 0, &v) < 0 || v < min || v > INT_MAX) {
        error_report("%s", err);
        exit(EXIT_FAILURE);
    }
    return v;
}

/*
 * Up to @depth requests in flight through the request layer. Buffers are made
 * when a request needs one and none is free, so a run whose requests finish
 * at once (the request layer's fast path) uses one or two, not @depth.
 */
typedef struct BenchRun {
    BlockDriverState *bs;
    const BenchParams *p;
    int64_t image_size;
    int64_t offset;         /* of the next request */
    int issued, in_flight, since_flush;
    int ret;
    uint8_t **free_bufs;    /* buffers of finished requests (at most depth) */
    int n_free;
    GPtrArray *all_bufs;
} BenchRun;

static void bench_cb(void *opaque, int ret);

static uint8_t *bench_buffer(BenchRun *r)
{
    void *buf = NULL;

    if (r->n_free) {
        return r->free_bufs[--r->n_free];
    }
    if (posix_memalign(&buf, 4096, MAX(r->p->bufsize, 1))) {
        return NULL;
    }
    memset(buf, r->p->pattern, r->p->bufsize);
    g_ptr_array_add(r->all_bufs, buf);
    return buf;
}

static int bench_issue(BenchRun *r)
{
    uint8_t *buf = bench_buffer(r);

    if (!buf) {
        return -ENOMEM;
    }
    r->issued++;
    r->in_flight++;
    bdrv_aio_submit(r->bs, r->p->write ? BDRV_AIO_WRITE : BDRV_AIO_READ, r->offset,
                    r->p->bufsize, buf, 0, bench_cb, buf);
    /* the next request; past the end it wraps around, modulo the image size
     * (as QEMU's: a step longer than the image wraps more than once) */
    r->offset += r->p->step;
    if (r->offset > r->image_size - r->p->bufsize) {
        r->offset = r->image_size > 0 ? r->offset % r->image_size : 0;
    }
    return 0;
}

static BenchRun *bench_run;     /* the run in progress, for its callbacks */

static void bench_cb(void *opaque, int ret)
{
    BenchRun *r = bench_run;

    r->free_bufs[r->n_free++] = opaque;
    r->in_flight--;
    if (ret < 0 && r->ret == 0) {
        r->ret = ret;
    }
}

static int run_bench(BlockDriverState *bs, const BenchParams *p, int64_t image_size)
{
    BenchRun r = { .bs = bs, .p = p, .image_size = image_size, .offset = p->offset };
    int ret = 0;

    r.free_bufs = g_new(uint8_t *, p->depth);
    r.all_bufs = g_ptr_array_new_with_free_func(free);
    bench_run = &r;
    while (r.ret == 0 && ret == 0 && (r.issued < p->count || r.in_flight)) {
        while (r.ret == 0 && ret == 0 && r.issued < p->count && r.in_flight < p->depth) {
            ret = bench_issue(&r);
            if (ret == 0 && p->flush_interval && ++r.since_flush == p->flush_interval) {
                r.since_flush = 0;
                if (p->drain_on_flush) {
                    bdrv_aio_drain(bs);
                }
                ret = bdrv_aio_run(bs, BDRV_AIO_FLUSH, 0, 0, NULL, 0);
            }
            /* finished requests give their buffers back */
            bdrv_aio_poll(false);
        }
        if (r.in_flight) {
            bdrv_aio_poll(true);
        }
    }
    bdrv_aio_drain(bs);
    bench_run = NULL;
    g_free(r.free_bufs);
    g_ptr_array_unref(r.all_bufs);
    return r.ret ? r.ret : ret;
}

int img_bench(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "flush-interval", required_argument, NULL, OPTION_FLUSH_INTERVAL },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "pattern", required_argument, NULL, OPTION_PATTERN },
        { "no-drain", no_argument, NULL, OPTION_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BenchParams p = {
        .count = 75000, .depth = 64, .bufsize = 4096, .drain_on_flush = true,
    };
    const char *filename, *fmt = NULL;
    bool quiet = false, image_opts = false, force_share = false, writethrough = false;
    bool native_aio = false;
    int flags = 0, c, ret;
    uint64_t v;
    int64_t image_size;
    struct timespec t0, t1;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":hc:d:f:ni:o:qs:S:t:wU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'c':
            p.count = parse_int_arg(optarg, 0, "Invalid request count specified");
            break;
        case 'd':
            p.depth = parse_int_arg(optarg, 1, "Invalid queue depth specified");
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'n':
            native_aio = true;    /* accepted; requests run on worker threads */
            break;
        case 'i':
            if (strcmp(optarg, "threads") && strcmp(optarg, "native") &&
                strcmp(optarg, "io_uring")) {
                error_report("Invalid aio option: %s", optarg);
                return EXIT_FAILURE;
            }
            native_aio = !strcmp(optarg, "native");
            break;
        case 'o':
            if (qemu_strtosz(optarg, NULL, &v) < 0) {
                bad_size("offset");
            }
            p.offset = v;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            if (qemu_strtosz(optarg, NULL, &v) < 0 || v > INT_MAX) {
                bad_size("buffer size");
            }
            p.bufsize = v;
            break;
        case 'S':
            if (qemu_strtosz(optarg, NULL, &v) < 0 || v > INT_MAX) {
                bad_size("step_size");
            }
            p.step = v;
            break;
        case 't':
            if (img_parse_cache(optarg, &flags, &writethrough) < 0) {
                error_report("Invalid cache mode");
                return EXIT_FAILURE;
            }
            break;
        case 'w':
            flags |= BDRV_O_RDWR;
            p.write = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_PATTERN:
            p.pattern = parse_int_arg(optarg, 0, "Invalid pattern byte specified");
            if (p.pattern > 0xff) {
                error_report("Invalid pattern byte specified");
                return EXIT_FAILURE;
            }
            break;
        case OPTION_FLUSH_INTERVAL:
            p.flush_interval = parse_int_arg(optarg, 0,
                                             "Invalid flush interval specified");
            break;
        case OPTION_NO_DRAIN:
            p.drain_on_flush = false;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    filename = img_single_filename(argc, argv, image_opts, fmt);
    if (!filename) {
        return EXIT_FAILURE;
    }
    if (p.flush_interval && !p.write) {
        error_report("--flush-interval is only available in write tests");
        return EXIT_FAILURE;
    }
    if (p.flush_interval && p.flush_interval < p.depth) {
        error_report("Flush interval can't be smaller than depth");
        return EXIT_FAILURE;
    }
    if (p.step == 0) {
        p.step = p.bufsize;
    }

    if (native_aio && !(flags & BDRV_O_NOCACHE)) {
        /* QEMU's native AIO needs O_DIRECT */
        error_report("Could not open '%s': aio=native was specified, but it requires "
                     "cache.direct=on, which was not specified.", filename);
        return EXIT_FAILURE;
    }
    bs = img_open(image_opts, filename, fmt, flags, writethrough, quiet, force_share);
    if (!bs) {
        return EXIT_FAILURE;
    }
    image_size = bdrv_getlength(bs);
    if (image_size < 0) {
        error_report("Could not get image size: %s", img_strerror(image_size));
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }

    /* QEMU prints these lines even with -q */
    printf("Sending %d %s requests, %" PRId64 " bytes each, %d in parallel "
           "(starting at offset %" PRId64 ", step size %" PRId64 ")\n",
           p.count, p.write ? "write" : "read", p.bufsize, p.depth, p.offset, p.step);
    if (p.flush_interval) {
        printf("Sending flush every %d requests\n", p.flush_interval);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ret = run_bench(bs, &p, image_size);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bdrv_unref(bs);
    if (ret < 0) {
        error_report("Failed request: %s", img_strerror(ret));
        return EXIT_FAILURE;
    }
    printf("Run completed in %3.3f seconds.\n",
           (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return EXIT_SUCCESS;
}
