/*
 * qemu-io's command table and commands: read, write, readv, writev, discard, flush,
 * truncate, length, map, alloc, info, open, close, sleep, help, quit. Output is
 * printed the way QEMU's qemu-io prints it, line for line.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "block/aio.h"
#include "qemu-io.h"
#include <getopt.h>
#include <sys/time.h>

#define REQUEST_MAX_BYTES 2147483136LL   /* largest single request, as QEMU's */


static const cmdinfo_t *find_command(const char *name);

/* ---- helpers ---- */

int64_t qemuio_cvtnum(const char *s)
{
    uint64_t v;
    int ret = qemu_strtosz(s, NULL, &v);

    if (ret < 0) {
        return ret;
    }
    return v;
}

void qemuio_print_cvtnum_err(int64_t rc, const char *arg)
{
    switch (rc) {
    case -EINVAL:
        printf("Parsing error: non-numeric argument,"
               " or extraneous/unrecognized suffix -- %s\n", arg);
        break;
    case -ERANGE:
        printf("Parsing error: argument too large -- %s\n", arg);
        break;
    default:
        printf("Parsing error: %s\n", arg);
    }
}

void qemuio_command_usage(const cmdinfo_t *ci)
{
    printf("%s %s -- %s\n", ci->name, ci->args, ci->oneline);
}

int qemuio_parse_pattern(const char *arg)
{
    char *end;
    long pattern = strtol(arg, &end, 0);

    if (pattern < 0 || pattern > UINT8_MAX || *end != '\0') {
        printf("%s is not a valid pattern byte\n", arg);
        return -1;
    }
    return pattern;
}

/*
 * I/O buffers are reused from one command to the next (up to a cap): allocating
 * fresh pages for every request would cost more page faults than the I/O itself.
 */
#define IO_BUF_KEEP (64 * MiB)

static void *io_buf_cache;
static size_t io_buf_cache_len;

static void *qemu_io_alloc(size_t len, int pattern)
{
    void *buf = NULL;

    if (io_buf_cache && io_buf_cache_len >= len) {
        buf = io_buf_cache;
        io_buf_cache = NULL;
    } else if (posix_memalign(&buf, 4096, MAX(len, 1))) {
        return NULL;
    } else {
        free(io_buf_cache);
        io_buf_cache = NULL;
        io_buf_cache_len = MAX(len, 1);
    }
    memset(buf, pattern, len);
    return buf;
}

static void qemu_io_free(void *buf)
{
    if (!io_buf_cache && io_buf_cache_len <= IO_BUF_KEEP) {
        io_buf_cache = buf;
    } else {
        free(buf);
        if (!io_buf_cache) {
            io_buf_cache_len = 0;
        }
    }
}

/* Is @buf all @pattern? (no second buffer needed) */
bool qemuio_buf_is_pattern(const uint8_t *buf, size_t len, uint8_t pattern)
{
    return len == 0 || (buf[0] == pattern && (len == 1 || !memcmp(buf, buf + 1, len - 1)));
}

void qemuio_dump_buffer(const void *buffer, int64_t offset, int64_t len)
{
    const uint8_t *p = buffer;

    for (int64_t i = 0; i < len; i += 16) {
        const uint8_t *s = p;
        int j;

        printf("%08" PRIx64 ":  ", offset + i);
        for (j = 0; j < 16 && i + j < len; j++, p++) {
            printf("%02x ", *p);
        }
        printf(" ");
        for (j = 0; j < 16 && i + j < len; j++, s++) {
            putchar(g_ascii_isalnum(*s) ? *s : '.');
        }
        printf("\n");
    }
}

static double tdiv(double value, struct timespec t)
{
    double secs = t.tv_sec + t.tv_nsec / 1e9;
    return value / secs;
}

struct timespec qemuio_tsub(struct timespec a, struct timespec b)
{
    struct timespec r = { a.tv_sec - b.tv_sec, a.tv_nsec - b.tv_nsec };

    if (r.tv_nsec < 0) {
        r.tv_sec--;
        r.tv_nsec += 1000000000;
    }
    return r;
}

/* "SS.cc sec" under a second, else "H:MM:SS.cc" (always that with -C), as QEMU's */
static void timestr(struct timespec t, char *buf, size_t size, bool machine)
{
    unsigned cs = t.tv_nsec / 10000000;
    unsigned long secs = t.tv_sec;

    if (machine || secs >= 1) {
        snprintf(buf, size, "%lu:%02lu:%02lu.%02u", secs / 3600, (secs / 60) % 60,
                 secs % 60, cs);
    } else {
        snprintf(buf, size, "%02lu.%02u sec", secs, cs);
    }
}

void qemuio_print_report(const char *op, struct timespec t, int64_t offset,
                         int64_t count, int64_t total, int cnt, bool Cflag)
{
    char s1[64], s2[64], ts[64];

    if (t.tv_sec == 0 && t.tv_nsec == 0) {
        t.tv_nsec = 1;    /* avoid dividing by zero */
    }
    timestr(t, ts, sizeof(ts), Cflag);
    if (!Cflag) {
        cvtstr((double)total, s1, sizeof(s1));
        cvtstr(tdiv((double)total, t), s2, sizeof(s2));
        printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n",
               op, total, count, offset);
        printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n",
               s1, cnt, ts, s2, tdiv((double)cnt, t));
    } else {
        printf("%" PRId64 ",%d,%s,%.3f,%.3f\n", total, cnt, ts,
               tdiv((double)total, t), tdiv((double)cnt, t));
    }
}

static void now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

/* Reset getopt for a new command's argv. */
void getopt_reset(void)
{
    optind = 0;
    opterr = 1;
}

static int check_length(int64_t count, const char *arg, bool zero_hint)
{
    if (count > REQUEST_MAX_BYTES) {
        if (zero_hint) {
            printf("length cannot exceed %lld without -n, given %s\n",
                   REQUEST_MAX_BYTES, arg);
        } else {
            printf("length cannot exceed %lld, given %s\n", REQUEST_MAX_BYTES, arg);
        }
        return -EINVAL;
    }
    return 0;
}

/* ---- read ---- */

static const cmdinfo_t read_cmd;

static void read_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" -b, -- read from the VM state rather than the virtual disk\n"
" -C, -- report statistics in a machine parsable format\n"
" -l, -- length for pattern verification (only with -P)\n"
" -p, -- ignored for backwards compatibility\n"
" -P, -- use a pattern to verify read data\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -s, -- start offset for pattern verification (only with -P)\n"
" -v, -- dump buffer to standard output\n"
"\n");
}

static int read_f(int argc, char **argv)
{
    bool Cflag = false, qflag = false, vflag = false, Pflag = false;
    bool sflag = false, lflag = false, bflag = false;
    int c, pattern = 0, ret = 0;
    int64_t offset, count, pattern_offset = 0, pattern_count = 0;
    struct timespec t1, t2;
    uint8_t *buf;

    getopt_reset();
    while ((c = getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        switch (c) {
        case 'b': bflag = true; break;
        case 'C': Cflag = true; break;
        case 'l':
            lflag = true;
            pattern_count = qemuio_cvtnum(optarg);
            if (pattern_count < 0) {
                qemuio_print_cvtnum_err(pattern_count, optarg);
                return pattern_count;
            }
            break;
        case 'p': break;
        case 'P':
            Pflag = true;
            pattern = qemuio_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 's':
            sflag = true;
            pattern_offset = qemuio_cvtnum(optarg);
            if (pattern_offset < 0) {
                qemuio_print_cvtnum_err(pattern_offset, optarg);
                return pattern_offset;
            }
            break;
        case 'v': vflag = true; break;
        default:
            qemuio_command_usage(&read_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qemuio_command_usage(&read_cmd);
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    optind++;
    count = qemuio_cvtnum(argv[optind]);
    if (count < 0) {
        qemuio_print_cvtnum_err(count, argv[optind]);
        return count;
    }
    if (check_length(count, argv[optind], false) < 0) {
        return -EINVAL;
    }
    if (!Pflag && (lflag || sflag)) {
        qemuio_command_usage(&read_cmd);
        return -EINVAL;
    }
    if (!lflag) {
        pattern_count = count - pattern_offset;
    }
    if (pattern_count < 0 || pattern_offset < 0 || pattern_offset + pattern_count > count) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }
    if (bflag) {
        if (!QEMU_IS_ALIGNED(offset, BDRV_SECTOR_SIZE)) {
            printf("%" PRId64 " is not a sector-aligned value for 'offset'\n", offset);
            return -EINVAL;
        }
        if (!QEMU_IS_ALIGNED(count, BDRV_SECTOR_SIZE)) {
            printf("%" PRId64 " is not a sector-aligned value for 'count'\n", count);
            return -EINVAL;
        }
    }

    buf = qemu_io_alloc(count, 0xab);
    if (!buf) {
        return -ENOMEM;
    }
    now(&t1);
    ret = bflag ? bdrv_load_vmstate(qemuio_bs, buf, offset, count)
                : qemuio_pread(offset, count, buf, 0);
    now(&t2);
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    if (Pflag && !qemuio_buf_is_pattern(buf + pattern_offset, pattern_count, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64
               " bytes\n", offset + pattern_offset, pattern_count);
        ret = -EINVAL;
    }
    if (qflag) {
        goto out;
    }
    if (vflag) {
        qemuio_dump_buffer(buf, offset, count);
    }
    qemuio_print_report("read", qemuio_tsub(t2, t1), offset, count, count, 1, Cflag);
out:
    qemu_io_free(buf);
    return ret;
}

static const cmdinfo_t read_cmd = {
    .name = "read", .altname = "r", .cfunc = read_f, .argmin = 2, .argmax = -1,
    .needs_file = true, .overtakes = true,
    .args = "[-abCqv] [-P pattern [-s off] [-l len]] off len",
    .oneline = "reads a number of bytes at a specified offset",
    .help = read_help,
};

/* ---- readv ---- */

static const cmdinfo_t readv_cmd;

static void readv_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset into multiple buffers\n"
"\n"
" Example:\n"
" 'readv -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" Uses multiple iovec buffers if more than one byte range is specified.\n"
" -C, -- report statistics in a machine parsable format\n"
" -P, -- use a pattern to verify read data\n"
" -v, -- dump buffer to standard output\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

/* Sum the lengths argv[0..n) into *total; -1 after printing an error. */
int qemuio_parse_lengths(int n, char **argv, int64_t *total)
{
    *total = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = qemuio_cvtnum(argv[i]);
        if (len < 0) {
            qemuio_print_cvtnum_err(len, argv[i]);
            return -1;
        }
        if (len > REQUEST_MAX_BYTES - *total) {
            printf("Argument '%s' exceeds maximum size %lld\n", argv[i],
                   REQUEST_MAX_BYTES);
            return -1;
        }
        *total += len;
    }
    return 0;
}

static int readv_f(int argc, char **argv)
{
    bool Cflag = false, qflag = false, vflag = false, Pflag = false;
    int c, pattern = 0, ret;
    int64_t offset, count;
    struct timespec t1, t2;
    uint8_t *buf;

    getopt_reset();
    while ((c = getopt(argc, argv, "CP:qv")) != -1) {
        switch (c) {
        case 'C': Cflag = true; break;
        case 'P':
            Pflag = true;
            pattern = qemuio_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 'v': vflag = true; break;
        default:
            qemuio_command_usage(&readv_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&readv_cmd);
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    optind++;
    if (qemuio_parse_lengths(argc - optind, argv + optind, &count) < 0) {
        return -EINVAL;
    }
    buf = qemu_io_alloc(count, 0xab);
    now(&t1);
    ret = qemuio_pread(offset, count, buf, 0);
    now(&t2);
    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
        goto out;
    }
    if (Pflag && !qemuio_buf_is_pattern(buf, count, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64
               " bytes\n", offset, count);
        ret = -EINVAL;
    }
    if (qflag) {
        goto out;
    }
    if (vflag) {
        qemuio_dump_buffer(buf, offset, count);
    }
    qemuio_print_report("read", qemuio_tsub(t2, t1), offset, count, count, 1, Cflag);
out:
    qemu_io_free(buf);
    return ret;
}

static const cmdinfo_t readv_cmd = {
    .name = "readv", .cfunc = readv_f, .argmin = 2, .argmax = -1, .needs_file = true,
    .overtakes = true,
    .args = "[-Cqv] [-P pattern] off len [len..]",
    .oneline = "reads a number of bytes at a specified offset",
    .help = readv_help,
};

/* ---- write ---- */

static const cmdinfo_t write_cmd;

static void write_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'write 512 1k' - writes 1 kilobyte at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" -b, -- write to the VM state rather than the virtual disk\n"
" -c, -- write compressed data with blk_write_compressed\n"
" -f, -- use Force Unit Access semantics\n"
" -n, -- with -z, don't allow slow fallback\n"
" -p, -- ignored for backwards compatibility\n"
" -P, -- use different pattern to fill file\n"
" -s, -- use a pattern file to fill the write buffer\n"
" -C, -- report statistics in a machine parsable format\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -u, -- with -z, allow unmapping\n"
" -z, -- write zeroes using blk_co_pwrite_zeroes\n"
"\n");
}

/*
 * The write buffer from @file: its first @count bytes, repeated from the start
 * if it is shorter. Only what is needed is read, so /dev/urandom works.
 */
static uint8_t *load_pattern_file(const char *file, int64_t count)
{
    FILE *f = fopen(file, "r");
    uint8_t *buf;
    size_t len;

    if (!f) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        return NULL;
    }
    buf = qemu_io_alloc(count, 0);
    len = fread(buf, 1, count, f);
    if (ferror(f)) {
        fprintf(stderr, "%s: %s\n", file, strerror(errno));
        goto fail;
    }
    if (len == 0) {
        fprintf(stderr, "%s: file is empty\n", file);
        goto fail;
    }
    fclose(f);
    for (int64_t i = len; i < count; i += len) {
        memcpy(buf + i, buf, MIN((int64_t)len, count - i));
    }
    return buf;

fail:
    fclose(f);
    qemu_io_free(buf);
    return NULL;
}

static int write_f(int argc, char **argv)
{
    bool Cflag = false, qflag = false, bflag = false, Pflag = false, zflag = false;
    bool cflag = false, nflag = false, uflag = false, fflag = false;
    const char *file = NULL;
    int c, pattern = 0xcd, ret, flags = 0;
    int64_t offset, count;
    struct timespec t1, t2;
    uint8_t *buf = NULL;

    getopt_reset();
    while ((c = getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'b': bflag = true; break;
        case 'c': cflag = true; break;
        case 'C': Cflag = true; break;
        case 'f': fflag = true; break;
        case 'n': nflag = true; break;
        case 'p': break;
        case 'P':
            Pflag = true;
            pattern = qemuio_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 's': file = optarg; break;
        case 'u': uflag = true; break;
        case 'z': zflag = true; break;
        default:
            qemuio_command_usage(&write_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qemuio_command_usage(&write_cmd);
        return -EINVAL;
    }
    if (bflag && zflag) {
        printf("-b and -z cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (fflag && (bflag || cflag)) {
        printf("-f and -b or -c cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (nflag && !zflag) {
        printf("-n requires -z to be specified\n");
        return -EINVAL;
    }
    if (uflag && !zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (zflag + Pflag + (file != NULL) > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same time\n");
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    optind++;
    count = qemuio_cvtnum(argv[optind]);
    if (count < 0) {
        qemuio_print_cvtnum_err(count, argv[optind]);
        return count;
    }
    if (count > REQUEST_MAX_BYTES && !(zflag && nflag)) {
        check_length(count, argv[optind], zflag || true);
        return -EINVAL;
    }
    if (bflag || cflag) {
        if (!QEMU_IS_ALIGNED(offset, BDRV_SECTOR_SIZE)) {
            printf("%" PRId64 " is not a sector-aligned value for 'offset'\n", offset);
            return -EINVAL;
        }
        if (!QEMU_IS_ALIGNED(count, BDRV_SECTOR_SIZE)) {
            printf("%" PRId64 " is not a sector-aligned value for 'count'\n", count);
            return -EINVAL;
        }
    }
    if (!zflag) {
        if (file) {
            buf = load_pattern_file(file, count);
            if (!buf) {
                return -EINVAL;
            }
        } else {
            buf = qemu_io_alloc(count, pattern);
        }
    }
    if (fflag || qemuio_writethrough) {
        flags |= BDRV_REQ_FUA;
    }
    if (uflag) {
        flags |= BDRV_REQ_MAY_UNMAP;
    }
    if (nflag) {
        flags |= BDRV_REQ_NO_FALLBACK;
    }
    now(&t1);
    if (bflag) {
        /* no FUA for the VM state: a write-through backend flushes after it (QEMU) */
        ret = bdrv_save_vmstate(qemuio_bs, buf, offset, count);
        if (ret == 0 && qemuio_writethrough) {
            ret = bdrv_flush(qemuio_bs);
        }
    } else if (zflag) {
        ret = qemuio_pwrite_zeroes(offset, count, flags);
    } else if (cflag) {
        ret = qemuio_pwrite(offset, count, buf, flags | BDRV_REQ_WRITE_COMPRESSED);
    } else {
        ret = qemuio_pwrite(offset, count, buf, flags);
    }
    now(&t2);
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
        goto out;
    }
    if (!qflag) {
        qemuio_print_report("wrote", qemuio_tsub(t2, t1), offset, count, count, 1, Cflag);
    }
out:
    qemu_io_free(buf);
    return ret;
}

static const cmdinfo_t write_cmd = {
    .name = "write", .altname = "w", .cfunc = write_f, .argmin = 2, .argmax = -1,
    .needs_file = true, .overtakes = true, .needs_write = true,
    .args = "[-bcCfnquz] [-P pattern | -s source_file] off len",
    .oneline = "writes a number of bytes at a specified offset",
    .help = write_help,
};

/* ---- writev ---- */

static const cmdinfo_t writev_cmd;

static void writev_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset source from multiple buffers\n"
"\n"
" Example:\n"
" 'writev 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" -P, -- use different pattern to fill file\n"
" -C, -- report statistics in a machine parsable format\n"
" -f, -- use Force Unit Access semantics\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int writev_f(int argc, char **argv)
{
    bool Cflag = false, qflag = false;
    int c, pattern = 0xcd, ret, flags = 0;
    int64_t offset, count;
    struct timespec t1, t2;
    uint8_t *buf;

    getopt_reset();
    while ((c = getopt(argc, argv, "CfqP:")) != -1) {
        switch (c) {
        case 'C': Cflag = true; break;
        case 'f': flags |= BDRV_REQ_FUA; break;
        case 'q': qflag = true; break;
        case 'P':
            pattern = qemuio_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        default:
            qemuio_command_usage(&writev_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qemuio_command_usage(&writev_cmd);
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    optind++;
    if (qemuio_parse_lengths(argc - optind, argv + optind, &count) < 0) {
        return -EINVAL;
    }
    if (qemuio_writethrough) {
        flags |= BDRV_REQ_FUA;
    }
    buf = qemu_io_alloc(count, pattern);
    now(&t1);
    ret = qemuio_pwrite(offset, count, buf, flags);
    now(&t2);
    if (ret < 0) {
        printf("writev failed: %s\n", strerror(-ret));
    } else if (!qflag) {
        qemuio_print_report("wrote", qemuio_tsub(t2, t1), offset, count, count, 1, Cflag);
    }
    qemu_io_free(buf);
    return ret;
}

static const cmdinfo_t writev_cmd = {
    .name = "writev", .cfunc = writev_f, .argmin = 2, .argmax = -1, .needs_file = true,
    .overtakes = true, .needs_write = true,
    .args = "[-Cfq] [-P pattern] off len [len..]",
    .oneline = "writes a number of bytes at a specified offset",
    .help = writev_help,
};

/* ---- discard ---- */

static const cmdinfo_t discard_cmd;

static void discard_help(void)
{
    printf(
"\n"
" discards a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'discard 512 1k' - discards 1 kilobyte from 512 bytes into the file\n"
"\n"
" Discards a segment of the currently open file.\n"
" -C, -- report statistics in a machine parsable format\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int discard_f(int argc, char **argv)
{
    bool Cflag = false, qflag = false;
    int c, ret;
    int64_t offset, bytes;
    struct timespec t1, t2;

    getopt_reset();
    while ((c = getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C': Cflag = true; break;
        case 'q': qflag = true; break;
        default:
            qemuio_command_usage(&discard_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qemuio_command_usage(&discard_cmd);
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    optind++;
    bytes = qemuio_cvtnum(argv[optind]);
    if (bytes < 0) {
        qemuio_print_cvtnum_err(bytes, argv[optind]);
        return bytes;
    }
    if (bytes > REQUEST_MAX_BYTES) {
        printf("length cannot exceed %lld, given %s\n", REQUEST_MAX_BYTES, argv[optind]);
        return -EINVAL;
    }
    now(&t1);
    ret = qemuio_pdiscard(offset, bytes);
    now(&t2);
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
        return ret;
    }
    if (!qflag) {
        qemuio_print_report("discard", qemuio_tsub(t2, t1), offset, bytes, bytes, 1, Cflag);
    }
    return 0;
}

static const cmdinfo_t discard_cmd = {
    .name = "discard", .altname = "d", .cfunc = discard_f, .argmin = 2, .argmax = -1,
    .needs_file = true, .overtakes = true, .needs_write = true, .args = "[-Cq] off len",
    .oneline = "discards a number of bytes at a specified offset",
    .help = discard_help,
};

/* ---- flush, truncate, length, info ---- */

static int flush_f(int argc, char **argv)
{
    return bdrv_flush(qemuio_bs);
}

static const cmdinfo_t flush_cmd = {
    .name = "flush", .altname = "f", .cfunc = flush_f, .needs_file = true,
    .oneline = "flush all in-core file state to disk",
};

static const cmdinfo_t truncate_cmd;

static int truncate_f(int argc, char **argv)
{
    int c, prealloc = PREALLOC_MODE_OFF, ret;
    int64_t offset;
    GError *err = NULL;

    getopt_reset();
    while ((c = getopt(argc, argv, "m:")) != -1) {
        switch (c) {
        case 'm':
            prealloc = prealloc_mode_parse(optarg);
            if (prealloc < 0) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return -EINVAL;
            }
            break;
        default:
            qemuio_command_usage(&truncate_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        qemuio_command_usage(&truncate_cmd);
        return -EINVAL;
    }
    offset = qemuio_cvtnum(argv[optind]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    ret = bdrv_truncate(qemuio_bs, offset, false, prealloc, 0, &err);
    if (ret < 0) {
        error_report_err(err);
        return ret;
    }
    return 0;
}

static const cmdinfo_t truncate_cmd = {
    .name = "truncate", .altname = "t", .cfunc = truncate_f, .argmin = 1, .argmax = 3,
    .needs_file = true, .needs_write = true, .args = "[-m prealloc_mode] off",
    .oneline = "truncates the current file at the given offset",
};

static int length_f(int argc, char **argv)
{
    int64_t size = bdrv_getlength(qemuio_bs);
    char s1[64];

    if (size < 0) {
        printf("getlength: %s\n", strerror(-size));
        return size;
    }
    cvtstr(size, s1, sizeof(s1));
    printf("%s\n", s1);
    return 0;
}

static const cmdinfo_t length_cmd = {
    .name = "length", .altname = "l", .cfunc = length_f, .needs_file = true,
    .oneline = "gets the length of the current file",
};

static int info_f(int argc, char **argv)
{
    BlockDriverInfo bdi;
    char s1[64], s2[64];
    int ret;
    g_autoptr(GError) err = NULL;
    JsonNode *spec;

    printf("format name: %s\n", bdrv_get_format_name(qemuio_bs));
    if (bdrv_is_protocol(qemuio_bs)) {
        /* QEMU's qemu-io prints a protocol node's name twice */
        printf("format name: %s\n", bdrv_get_format_name(qemuio_bs));
    }
    ret = bdrv_get_info(qemuio_bs, &bdi);
    if (ret) {
        return ret;
    }
    cvtstr(bdi.cluster_size, s1, sizeof(s1));
    cvtstr(bdi.vm_state_offset, s2, sizeof(s2));
    printf("cluster size: %s\n", s1);
    printf("vm state offset: %s\n", s2);
    spec = bdrv_get_specific_info(qemuio_bs, &err);
    if (err) {
        error_report("%s", err->message);
        return -EIO;
    }
    if (spec) {
        printf("Format specific information:\n");
        bdrv_specific_info_dump(spec, 4);
        json_node_unref(spec);
    }
    return 0;
}

static const cmdinfo_t info_cmd = {
    .name = "info", .altname = "i", .cfunc = info_f, .needs_file = true,
    .oneline = "prints information about the current file",
};

/* ---- map, alloc ---- */

static int alloc_f(int argc, char **argv)
{
    int64_t offset, bytes, remaining, sum_alloc = 0, num;
    char s1[64];
    int ret;

    offset = qemuio_cvtnum(argv[1]);
    if (offset < 0) {
        qemuio_print_cvtnum_err(offset, argv[1]);
        return offset;
    }
    if (argc == 3) {
        bytes = qemuio_cvtnum(argv[2]);
        if (bytes < 0) {
            qemuio_print_cvtnum_err(bytes, argv[2]);
            return bytes;
        }
    } else {
        bytes = BDRV_SECTOR_SIZE;
    }
    remaining = bytes;
    while (remaining) {
        ret = bdrv_is_allocated(qemuio_bs, offset + bytes - remaining, remaining, &num);
        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        if (num == 0) {
            /* the end of the image: the count stops there, as QEMU's does */
            bytes -= remaining;
            break;
        }
        remaining -= num;
        if (ret) {
            sum_alloc += num;
        }
    }
    cvtstr(offset, s1, sizeof(s1));
    printf("%" PRId64 "/%" PRId64 " bytes allocated at offset %s\n", sum_alloc, bytes, s1);
    return 0;
}

static const cmdinfo_t alloc_cmd = {
    .name = "alloc", .altname = "a", .cfunc = alloc_f, .argmin = 1, .argmax = 2,
    .needs_file = true, .args = "offset [count]",
    .oneline = "checks if offset is allocated in the file",
};

static int map_f(int argc, char **argv)
{
    int64_t offset = 0, length = bdrv_getlength(qemuio_bs), num;
    char s1[64], s2[64];
    int ret;

    if (length < 0) {
        error_report("Failed to query image length: %s", strerror(-length));
        return length;
    }
    while (offset < length) {
        int64_t start = offset;
        /* this node's own allocation only, as QEMU's map (not its backing chain) */
        ret = bdrv_is_allocated(qemuio_bs, offset, length - offset, &num);
        if (ret < 0) {
            error_report("Failed to get allocation status: %s", strerror(-ret));
            return ret;
        }
        /* merge following extents of the same kind */
        offset += num;
        while (offset < length) {
            int64_t n2;
            int r2 = bdrv_is_allocated(qemuio_bs, offset, length - offset, &n2);
            if (r2 < 0 || r2 != ret || n2 == 0) {
                break;
            }
            offset += n2;
        }
        cvtstr(offset - start, s1, sizeof(s1));
        cvtstr(start, s2, sizeof(s2));
        printf("%s (0x%" PRIx64 ") bytes %s allocated at offset %s (0x%" PRIx64 ")\n",
               s1, offset - start, ret ? "   " : "not", s2, start);
        if (num == 0) {
            break;
        }
    }
    return 0;
}

static const cmdinfo_t map_cmd = {
    .name = "map", .altname = "m", .cfunc = map_f, .needs_file = true, .args = "",
    .oneline = "prints the allocated areas of a file",
};

/* ---- open, close, sleep, help, quit ---- */

static const cmdinfo_t open_cmd;

static void open_help(void)
{
    printf(
"\n"
" opens a new file in the requested mode\n"
"\n"
" Example:\n"
" 'open -n -o driver=raw /tmp/data' - opens raw data file read-write, uncached\n"
"\n"
" Opens a file for subsequent use by all of the other qemu-io commands.\n"
" -r, -- open file read-only\n"
" -s, -- use snapshot file\n"
" -C, -- use copy-on-read\n"
" -n, -- disable host cache, short for -t none\n"
" -U, -- force shared permissions\n"
" -k, -- use kernel AIO implementation (Linux only, prefer use of -i)\n"
" -i, -- use AIO mode (threads, native or io_uring)\n"
" -t, -- use the given cache mode for the image\n"
" -d, -- use the given discard mode for the image\n"
" -o, -- options to be given to the block driver\n"
"\n");
}

static int open_f(int argc, char **argv)
{
    int flags = BDRV_O_RDWR | BDRV_O_UNMAP, c;
    bool writethrough = false;
    g_autoptr(JsonObject) opts = NULL;
    const char *fmt = NULL;

    getopt_reset();
    while ((c = getopt(argc, argv, "snCro:ki:t:d:Uf:")) != -1) {
        switch (c) {
        case 's': flags |= BDRV_O_SNAPSHOT; break;
        case 'n':
            flags |= BDRV_O_NOCACHE;
            writethrough = false;
            break;
        case 'C': flags |= BDRV_O_COPY_ON_READ; break;
        case 'r': flags &= ~BDRV_O_RDWR; break;
        case 'k': break;
        case 'i': break;
        case 'd':
            if (bdrv_parse_discard_flags(optarg, &flags) < 0) {
                error_report("Invalid discard option: %s", optarg);
                return -EINVAL;
            }
            break;
        case 'U': flags |= BDRV_O_FORCE_SHARE; break;
        case 'f': fmt = optarg; break;   /* our extension: -f fmt */
        case 't':
            if (bdrv_parse_cache_mode(optarg, &flags) < 0) {
                error_report("Invalid cache option: %s", optarg);
                return -EINVAL;
            }
            writethrough = (flags & BDRV_O_WRITETHROUGH) != 0;
            break;
        case 'o': {
            g_autoptr(GError) err = NULL;
            if (opts) {
                json_object_unref(opts);
            }
            opts = keyval_parse_flat(optarg, NULL, &err);
            if (!opts) {
                printf("could not parse option list -- %s\n", optarg);
                return -EINVAL;
            }
            break;
        }
        default:
            qemuio_command_usage(&open_cmd);
            return -EINVAL;
        }
    }
    if (fmt) {
        if (!opts) {
            opts = json_object_new();
        }
        opts_set_str(opts, "driver", fmt);
    }
    if (optind == argc - 1) {
        return qemuio_open(argv[optind], opts, flags, writethrough);
    } else if (optind == argc) {
        return qemuio_open(NULL, opts, flags, writethrough);
    }
    qemuio_command_usage(&open_cmd);
    return -EINVAL;
}

static const cmdinfo_t open_cmd = {
    .name = "open", .altname = "o", .cfunc = open_f, .argmin = 1, .argmax = -1,
    .args = "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
    .oneline = "open the file specified by path",
    .help = open_help,
};

static int close_f(int argc, char **argv)
{
    qemuio_close();
    return 0;
}

static const cmdinfo_t close_cmd = {
    .name = "close", .altname = "c", .cfunc = close_f, .needs_file = true,
    .oneline = "close the current open file",
};

static int sleep_f(int argc, char **argv)
{
    char *endp;
    long ms = strtol(argv[1], &endp, 10);
    int64_t end;

    if (ms < 0 || *endp) {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    /* requests in flight go on, and their completions are reported */
    end = g_get_monotonic_time() + ms * 1000;
    while (g_get_monotonic_time() < end) {
        if (!bdrv_aio_poll(false)) {
            g_usleep(MIN(1000, MAX(0, end - g_get_monotonic_time())));
        }
    }
    return 0;
}

static const cmdinfo_t sleep_cmd = {
    .name = "sleep", .argmin = 1, .argmax = 1, .cfunc = sleep_f, .async = true,
    .oneline = "waits for the given value in milliseconds",
};

/* Crash simulation: leave the image exactly as a killed process would. */
static void sigraise_help(void)
{
    printf(
"\n"
" raises the given signal\n"
"\n"
" Example:\n"
" 'sigraise %i' - raises SIGTERM\n"
"\n"
" Invokes raise(signal), where \"signal\" is the mandatory integer argument\n"
" given to sigraise.\n"
"\n", SIGTERM);
}

static int sigraise_f(int argc, char **argv)
{
    int64_t sig = qemuio_cvtnum(argv[1]);

    if (sig < 0) {
        qemuio_print_cvtnum_err(sig, argv[1]);
        return sig;
    }
    if (sig > NSIG) {
        printf("signal argument '%s' is too large to be a valid signal\n", argv[1]);
        return -EINVAL;
    }
    /* what was printed so far must reach the reader before we die */
    fflush(stdout);
    fflush(stderr);
    raise(sig);
    return 0;
}

static const cmdinfo_t sigraise_cmd = {
    .name = "sigraise", .cfunc = sigraise_f, .argmin = 1, .argmax = 1,
    .args = "signal", .oneline = "raises a signal", .help = sigraise_help,
};

/* a crash, as QEMU's: nothing is flushed or closed (bitmaps stay in use) */
static int abort_f(int argc, char **argv)
{
    abort();
}

static const cmdinfo_t abort_cmd = {
    .name = "abort", .cfunc = abort_f, .argmin = 0, .argmax = 0,
    .oneline = "simulate a program crash using abort(3)",
};

static int help_f(int argc, char **argv);

static const cmdinfo_t help_cmd = {
    .name = "help", .altname = "?", .cfunc = help_f, .argmin = 0, .argmax = 1,
    .args = "[command]", .oneline = "help for one or all commands",
};

static int quit_f(int argc, char **argv)
{
    return 0;
}

static const cmdinfo_t quit_cmd = {
    .name = "quit", .altname = "q", .cfunc = quit_f, .argmin = -1, .argmax = -1,
    .oneline = "exit the program",
};

static const cmdinfo_t *const cmdtab[] = {
    &abort_cmd, &qemuio_aio_flush_cmd, &qemuio_aio_read_cmd, &qemuio_aio_write_cmd,
    &alloc_cmd, &qemuio_break_cmd, &close_cmd, &discard_cmd, &flush_cmd, &help_cmd,
    &info_cmd, &length_cmd, &map_cmd, &open_cmd, &quit_cmd, &read_cmd, &readv_cmd,
    &qemuio_remove_break_cmd, &qemuio_reopen_cmd, &qemuio_resume_cmd, &sigraise_cmd,
    &sleep_cmd, &truncate_cmd, &qemuio_wait_break_cmd, &write_cmd, &writev_cmd,
};

static void help_oneline(const cmdinfo_t *ct)
{
    printf("%s ", ct->name);
    if (ct->args) {
        printf("%s ", ct->args);
    }
    printf("-- %s\n", ct->oneline);
}

static int help_f(int argc, char **argv)
{
    if (argc == 1) {
        for (size_t i = 0; i < ARRAY_SIZE(cmdtab); i++) {
            help_oneline(cmdtab[i]);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    {
        const cmdinfo_t *ct = find_command(argv[1]);
        if (!ct) {
            printf("command %s not found\n", argv[1]);
            return -EINVAL;
        }
        help_oneline(ct);
        if (ct->help) {
            ct->help();
        }
    }
    return 0;
}

static const cmdinfo_t *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(cmdtab); i++) {
        const cmdinfo_t *ct = cmdtab[i];
        if (!strcmp(ct->name, name) || (ct->altname && !strcmp(ct->altname, name))) {
            return ct;
        }
    }
    return NULL;
}

static bool check_argc(const cmdinfo_t *ct, int argc)
{
    int n = argc - 1;

    if (ct->argmin < 0 || (n >= ct->argmin && (ct->argmax < 0 || n <= ct->argmax))) {
        return true;
    }
    if (ct->argmax == -1) {
        fprintf(stderr, "bad argument count %d to %s, expected at least %d arguments\n",
                n, ct->name, ct->argmin);
    } else if (ct->argmin == ct->argmax) {
        fprintf(stderr, "bad argument count %d to %s, expected %d arguments\n",
                n, ct->name, ct->argmin);
    } else {
        fprintf(stderr, "bad argument count %d to %s, expected between %d and %d "
                "arguments\n", n, ct->name, ct->argmin, ct->argmax);
    }
    return false;
}

int qemuio_command(const char *line, bool *quit)
{
    g_auto(GStrv) argv = NULL;
    const cmdinfo_t *ct;
    int argc;

    *quit = false;
    argv = g_strsplit_set(line, " \t\n", -1);
    /* drop empty words */
    {
        int j = 0;
        for (int i = 0; argv[i]; i++) {
            if (*argv[i]) {
                argv[j++] = argv[i];
            } else {
                g_free(argv[i]);
            }
        }
        argv[j] = NULL;
        argc = j;
    }
    if (argc == 0) {
        return 0;
    }
    ct = find_command(argv[0]);
    if (!ct) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        return -1;
    }
    if (ct->needs_file && !qemuio_bs) {
        fprintf(stderr, "no file open, try 'help open'\n");
        return -1;
    }
    if (!check_argc(ct, argc)) {
        return -1;
    }
    if (ct->needs_write && bdrv_is_read_only(qemuio_bs)) {
        error_report("Block node is read-only");
        return -1;
    }
    if (ct == &quit_cmd) {
        *quit = true;       /* qemuio_close() waits for what is in flight */
        return 0;
    }
    if (!ct->async && qemuio_drain() < 0 && !ct->overtakes) {
        printf("%s: cannot run while a request is suspended at a breakpoint "
               "(resume it first)\n", ct->name);
        return -1;
    }
    return ct->cfunc(argc, argv) < 0 ? -1 : 0;
}
