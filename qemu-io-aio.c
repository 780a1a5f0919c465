/*
 * qemu-io's asynchronous commands: aio_read, aio_write and aio_flush. A request
 * is submitted through block/aio.c and the command returns at once; its result
 * is printed when its completion runs, which is when qemu-io next waits for
 * requests (before any other command, and before it exits), as QEMU's prints
 * it from its main loop.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/aio.h"
#include "qemu-io.h"
#include <getopt.h>

typedef struct AioCtx {
    bool write;
    bool Cflag, qflag, vflag, Pflag, zflag;
    int pattern;
    int64_t offset;
    int64_t count;
    uint8_t *buf;
    struct timespec t1;
} AioCtx;

static void aio_ctx_free(AioCtx *ctx)
{
    free(ctx->buf);
    g_free(ctx);
}

static void aio_done(void *opaque, int ret)
{
    AioCtx *ctx = opaque;
    struct timespec t2;

    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("%s failed: %s\n", ctx->write ? "aio_write" : "readv", strerror(-ret));
        goto out;
    }
    if (!ctx->write && ctx->Pflag &&
        !qemuio_buf_is_pattern(ctx->buf, ctx->count, ctx->pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64 " bytes\n",
               ctx->offset, ctx->count);
    }
    if (ctx->qflag) {
        goto out;
    }
    if (ctx->vflag) {
        qemuio_dump_buffer(ctx->buf, ctx->offset, ctx->count);
    }
    qemuio_print_report(ctx->write ? "wrote" : "read", qemuio_tsub(t2, ctx->t1),
                        ctx->offset, ctx->count, ctx->count, 1, ctx->Cflag);
out:
    aio_ctx_free(ctx);
}

/* The offset and the lengths that follow it: 0, or -1 after printing why not. */
static int parse_range(AioCtx *ctx, int argc, char **argv)
{
    ctx->offset = qemuio_cvtnum(argv[optind]);
    if (ctx->offset < 0) {
        qemuio_print_cvtnum_err(ctx->offset, argv[optind]);
        return -1;
    }
    optind++;
    if (ctx->zflag) {
        ctx->count = qemuio_cvtnum(argv[optind]);
        if (ctx->count < 0) {
            qemuio_print_cvtnum_err(ctx->count, argv[optind]);
            return -1;
        }
        return 0;
    }
    return qemuio_parse_lengths(argc - optind, argv + optind, &ctx->count);
}

static void *alloc_buf(int64_t count, int pattern)
{
    void *buf = NULL;

    if (posix_memalign(&buf, 4096, MAX(count, 1))) {
        return NULL;
    }
    memset(buf, pattern, count);
    return buf;
}

/* ---- aio_read ---- */

static void aio_read_help(void)
{
    printf(
"\n"
" asynchronously reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'aio_read -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" The read is performed asynchronously and the aio_flush command must be\n"
" used to ensure all outstanding aio requests have been completed.\n"
" Note that due to its asynchronous nature, this command will be\n"
" considered successful once the request is submitted, independently\n"
" of potential I/O errors or pattern mismatches.\n"
" -C, -- report statistics in a machine parsable format\n"
" -P, -- use a pattern to verify read data\n"
" -i, -- treat request as invalid, for exercising stats\n"
" -v, -- dump buffer to standard output\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int aio_read_f(int argc, char **argv)
{
    g_autofree AioCtx *ctx = g_new0(AioCtx, 1);
    bool iflag = false;
    int c;

    getopt_reset();
    while ((c = getopt(argc, argv, "CP:iqv")) != -1) {
        switch (c) {
        case 'C': ctx->Cflag = true; break;
        case 'P':
            ctx->Pflag = true;
            ctx->pattern = qemuio_parse_pattern(optarg);
            if (ctx->pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'i': iflag = true; break;
        case 'q': ctx->qflag = true; break;
        case 'v': ctx->vflag = true; break;
        default:
            qemuio_command_usage(&qemuio_aio_read_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&qemuio_aio_read_cmd);
        return -EINVAL;
    }
    if (parse_range(ctx, argc, argv) < 0) {
        return -EINVAL;
    }
    if (iflag) {
        printf("injecting invalid read request\n");
        return 0;
    }
    ctx->buf = alloc_buf(ctx->count, 0xab);
    if (!ctx->buf) {
        return -ENOMEM;
    }
    clock_gettime(CLOCK_MONOTONIC, &ctx->t1);
    bdrv_aio_submit(qemuio_bs, BDRV_AIO_READ, ctx->offset, ctx->count, ctx->buf, 0,
                    aio_done, ctx);
    g_steal_pointer(&ctx);
    return 0;
}

const cmdinfo_t qemuio_aio_read_cmd = {
    .name = "aio_read", .cfunc = aio_read_f, .argmin = 2, .argmax = -1,
    .needs_file = true, .async = true,
    .args = "[-Ciqv] [-P pattern] off len [len..]",
    .oneline = "asynchronously reads a number of bytes",
    .help = aio_read_help,
};

/* ---- aio_write ---- */

static void aio_write_help(void)
{
    printf(
"\n"
" asynchronously writes a range of bytes from the given offset source\n"
" from multiple buffers\n"
"\n"
" Example:\n"
" 'aio_write 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" The write is performed asynchronously and the aio_flush command must be\n"
" used to ensure all outstanding aio requests have been completed.\n"
" Note that due to its asynchronous nature, this command will be\n"
" considered successful once the request is submitted, independently\n"
" of potential I/O errors or pattern mismatches.\n"
" -P, -- use different pattern to fill file\n"
" -C, -- report statistics in a machine parsable format\n"
" -f, -- use Force Unit Access semantics\n"
" -i, -- treat request as invalid, for exercising stats\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -u, -- with -z, allow unmapping\n"
" -z, -- write zeroes using blk_aio_pwrite_zeroes\n"
"\n");
}

static int aio_write_f(int argc, char **argv)
{
    g_autofree AioCtx *ctx = g_new0(AioCtx, 1);
    bool iflag = false;
    int c, pattern = 0xcd, flags = 0;

    ctx->write = true;
    getopt_reset();
    while ((c = getopt(argc, argv, "CfiqP:uz")) != -1) {
        switch (c) {
        case 'C': ctx->Cflag = true; break;
        case 'f': flags |= BDRV_REQ_FUA; break;
        case 'i': iflag = true; break;
        case 'q': ctx->qflag = true; break;
        case 'u': flags |= BDRV_REQ_MAY_UNMAP; break;
        case 'P':
            pattern = qemuio_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'z': ctx->zflag = true; break;
        default:
            qemuio_command_usage(&qemuio_aio_write_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&qemuio_aio_write_cmd);
        return -EINVAL;
    }
    if (ctx->zflag && optind != argc - 2) {
        printf("-z supports only a single length parameter\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && !ctx->zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (parse_range(ctx, argc, argv) < 0) {
        return -EINVAL;
    }
    if (iflag) {
        printf("injecting invalid write request\n");
        return 0;
    }
    if (qemuio_writethrough) {
        flags |= BDRV_REQ_FUA;
    }
    if (ctx->zflag) {
        /* QEMU 7.2 never starts the clock for -z: its time is the clock's value */
        bdrv_aio_submit(qemuio_bs, BDRV_AIO_WRITE_ZEROES, ctx->offset, ctx->count, NULL,
                        flags, aio_done, ctx);
    } else {
        ctx->buf = alloc_buf(ctx->count, pattern);
        if (!ctx->buf) {
            return -ENOMEM;
        }
        clock_gettime(CLOCK_MONOTONIC, &ctx->t1);
        bdrv_aio_submit(qemuio_bs, BDRV_AIO_WRITE, ctx->offset, ctx->count, ctx->buf,
                        flags, aio_done, ctx);
    }
    g_steal_pointer(&ctx);
    return 0;
}

const cmdinfo_t qemuio_aio_write_cmd = {
    .name = "aio_write", .cfunc = aio_write_f, .argmin = 2, .argmax = -1,
    .needs_file = true, .needs_write = true, .async = true,
    .args = "[-Cfiquz] [-P pattern] off len [len..]",
    .oneline = "asynchronously writes a number of bytes",
    .help = aio_write_help,
};

/* ---- aio_flush ---- */

static int aio_flush_f(int argc, char **argv)
{
    /* qemuio_command() has waited for every request already */
    return 0;
}

const cmdinfo_t qemuio_aio_flush_cmd = {
    .name = "aio_flush", .cfunc = aio_flush_f, .argmin = 0, .argmax = 0,
    .needs_file = true,
    .oneline = "completes all outstanding aio requests",
};
