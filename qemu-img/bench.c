/*
 * qemu-img bench: a sequential read or write benchmark. Requests are issued one
 * after the other (the queue depth is accepted and reported, not used), with
 * optional flushes, and the run time is printed as QEMU prints it.
 */
#include "qemu-img.h"
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

static int run_bench(BlockDriverState *bs, const BenchParams *p, int64_t image_size)
{
    void *buf = NULL;
    int64_t offset = p->offset;
    int ret = 0;

    if (posix_memalign(&buf, 4096, MAX(p->bufsize, 1))) {
        return -ENOMEM;
    }
    memset(buf, p->pattern, p->bufsize);
    for (int i = 0; i < p->count; i++) {
        if (p->write) {
            ret = bdrv_pwrite(bs, offset, p->bufsize, buf, 0);
        } else {
            ret = bdrv_pread(bs, offset, p->bufsize, buf, 0);
        }
        if (ret < 0) {
            break;
        }
        if (p->flush_interval && (i + 1) % p->flush_interval == 0) {
            ret = bdrv_flush(bs);
            if (ret < 0) {
                break;
            }
        }
        /* the next request; past the end it wraps around, modulo the image size
         * (as QEMU's: a step longer than the image wraps more than once) */
        offset += p->step;
        if (offset > image_size - p->bufsize) {
            offset = image_size > 0 ? offset % image_size : 0;
        }
    }
    free(buf);
    return ret;
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
            native_aio = true;    /* accepted; our I/O is synchronous */
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
