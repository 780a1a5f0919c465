/*
 * qemu-io: the disk exerciser's front end. Parses the command line, opens the image
 * (filename, -f, --image-opts, json:; -s under a throw-away overlay), then runs -c
 * commands or reads commands from stdin, and exits 1 if any command failed, as QEMU
 * 7.2's qemu-io does.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "block/aio.h"
#include "qemu-io.h"
#include "qemu/objects.h"
#include <getopt.h>

BlockDriverState *qemuio_bs;
bool qemuio_writethrough;
char *qemuio_open_name;
JsonObject *qemuio_open_opts;
int qemuio_open_flags;

int qemuio_open_err(const char *name, JsonObject *opts, int flags, bool writethrough,
                    GError **errp)
{
    if (qemuio_bs) {
        error_setg(errp, "file open already, try 'help close'");
        return -EBUSY;
    }
    if (writethrough) {
        flags |= BDRV_O_WRITETHROUGH;
    }
    if ((flags & BDRV_O_FORCE_SHARE) && opts && opts_has(opts, "force-share")) {
        g_autofree char *v = opts_get_str(opts, "force-share");
        if (!v || strcmp(v, "on")) {
            error_setg(errp, "-U conflicts with image options");
            return -EINVAL;
        }
    }
    qemuio_bs = bdrv_open(name, opts, flags, errp);
    if (!qemuio_bs) {
        return -EIO;
    }
    qemuio_writethrough = writethrough;
    g_free(qemuio_open_name);
    qemuio_open_name = g_strdup(name);
    if (qemuio_open_opts) {
        json_object_unref(qemuio_open_opts);
    }
    qemuio_open_opts = opts ? opts_clone(opts) : NULL;
    qemuio_open_flags = flags & ~BDRV_O_WRITETHROUGH;
    return 0;
}

int qemuio_open(const char *name, JsonObject *opts, int flags, bool writethrough)
{
    g_autoptr(GError) err = NULL;
    int ret = qemuio_open_err(name, opts, flags, writethrough, &err);

    if (ret == -EIO) {
        if (name) {
            error_report("can't open device %s: %s", name, err->message);
        } else {
            error_report("can't open: %s", err->message);
        }
    } else if (ret < 0) {
        error_report("%s", err->message);
    }
    return ret;
}

/*
 * What was submitted completes (and is reported) before the next command.
 * -EDEADLK, with requests still in flight, if one is stopped at a breakpoint:
 * waiting for it would never end.
 */
int qemuio_drain(void)
{
    if (!bdrv_debug_breakpoints_in_use()) {
        bdrv_aio_drain(NULL);
        return 0;
    }
    while (bdrv_aio_in_flight(NULL) > 0) {
        if (bdrv_debug_suspended_requests() > 0) {
            return -EDEADLK;
        }
        if (!bdrv_aio_poll(false)) {
            g_usleep(100);
        }
    }
    return 0;
}

/*
 * A request while one is stopped at a breakpoint (the only time one is still in
 * flight as a command runs): through the request layer, beside the stopped
 * one, unless it would have to wait for it (same cluster, or a node lock the
 * stopped one holds), where QEMU's qemu-io would wait forever. Returns
 * -EDEADLK then, having said why.
 */
static int beside_stopped(BdrvAioOp op, int64_t offset, int64_t bytes, void *buf,
                          int flags, const char *what)
{
    if (bdrv_debug_suspended_holding_locks() > 0 ||
        bdrv_aio_would_wait(qemuio_bs, op, offset, bytes)) {
        printf("%s: cannot run beside the request suspended at a breakpoint "
               "(resume it first)\n", what);
        return -EDEADLK;
    }
    return bdrv_aio_run(qemuio_bs, op, offset, bytes, buf, flags);
}

int qemuio_pread(int64_t offset, int64_t bytes, void *buf, int flags)
{
    return bdrv_aio_in_flight(NULL) > 0 ?
           beside_stopped(BDRV_AIO_READ, offset, bytes, buf, flags, "read") :
           bdrv_pread(qemuio_bs, offset, bytes, buf, flags);
}

int qemuio_pwrite(int64_t offset, int64_t bytes, const void *buf, int flags)
{
    return bdrv_aio_in_flight(NULL) > 0 ?
           beside_stopped(BDRV_AIO_WRITE, offset, bytes, (void *)buf, flags, "write") :
           bdrv_pwrite(qemuio_bs, offset, bytes, buf, flags);
}

int qemuio_pwrite_zeroes(int64_t offset, int64_t bytes, int flags)
{
    return bdrv_aio_in_flight(NULL) > 0 ?
           beside_stopped(BDRV_AIO_WRITE_ZEROES, offset, bytes, NULL, flags, "write") :
           bdrv_pwrite_zeroes(qemuio_bs, offset, bytes, flags);
}

int qemuio_pdiscard(int64_t offset, int64_t bytes)
{
    return bdrv_aio_in_flight(NULL) > 0 ?
           beside_stopped(BDRV_AIO_DISCARD, offset, bytes, NULL, 0, "discard") :
           bdrv_pdiscard(qemuio_bs, offset, bytes);
}

void qemuio_close(void)
{
    /* unlike QEMU, which waits forever, let stopped requests go on */
    while (qemuio_drain() < 0) {
        bdrv_debug_resume_all();
    }
    if (qemuio_bs) {
        bdrv_unref(qemuio_bs);
        qemuio_bs = NULL;
    }
}

static void usage(const char *name)
{
    printf(
"Usage: %s [OPTIONS]... [-c STRING]... [file]\n"
"QEMU Disk exerciser\n"
"\n"
"  --object OBJECTDEF   define an object such as 'secret' for\n"
"                       passwords and/or encryption keys\n"
"  --image-opts         treat file as option string\n"
"  -c, --cmd STRING     execute command with its arguments\n"
"                       from the given string\n"
"  -f, --format FMT     specifies the block driver to use\n"
"  -r, --read-only      export read-only\n"
"  -s, --snapshot       use snapshot file\n"
"  -n, --nocache        disable host cache, short for -t none\n"
"  -C, --copy-on-read   enable copy-on-read\n"
"  -m, --misalign       misalign allocations for O_DIRECT\n"
"  -k, --native-aio     use kernel AIO implementation\n"
"                       (Linux only, prefer use of -i)\n"
"  -i, --aio=MODE       use AIO mode (threads, native or io_uring)\n"
"  -t, --cache=MODE     use the given cache mode for the image\n"
"  -d, --discard=MODE   use the given discard mode for the image\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
"                       specify tracing options\n"
"                       see qemu-img(1) man page for full description\n"
"  -U, --force-share    force shared permissions\n"
"  -h, --help           display this help and exit\n"
"  -V, --version        output version information and exit\n"
"\n"
"See '%s -c help' for information on available commands.\n"
"\n"
"See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n"
"More information on the QEMU project at <https://qemu.org>.\n",
           name, name);
}

enum { OPTION_OBJECT = 256, OPTION_IMAGE_OPTS };

static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "cmd", required_argument, NULL, 'c' },
    { "format", required_argument, NULL, 'f' },
    { "read-only", no_argument, NULL, 'r' },
    { "snapshot", no_argument, NULL, 's' },
    { "nocache", no_argument, NULL, 'n' },
    { "copy-on-read", no_argument, NULL, 'C' },
    { "misalign", no_argument, NULL, 'm' },
    { "native-aio", no_argument, NULL, 'k' },
    { "aio", required_argument, NULL, 'i' },
    { "discard", required_argument, NULL, 'd' },
    { "cache", required_argument, NULL, 't' },
    { "trace", required_argument, NULL, 'T' },
    { "object", required_argument, NULL, OPTION_OBJECT },
    { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
    { "force-share", no_argument, NULL, 'U' },
    { "options", required_argument, NULL, 'o' },
    { NULL, 0, NULL, 0 }
};

/* Commands from stdin, one per line, with QEMU's "qemu-io> " prompt. */
static int command_loop_stdin(void)
{
    char line[4096];
    int failed = 0;
    bool quit = false;

    for (;;) {
        printf("qemu-io> ");
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin)) {
            break;
        }
        line[strcspn(line, "\n")] = '\0';
        if (qemuio_command(line, &quit) < 0) {
            failed = 1;
        }
        if (quit) {
            break;
        }
    }
    return failed;
}

int main(int argc, char **argv)
{
    int flags = BDRV_O_RDWR | BDRV_O_UNMAP, c, ret = 0;
    bool writethrough = true, image_opts = false, quit = false;
    const char *fmt = NULL, *progname = "qemu-io";
    g_autoptr(GPtrArray) cmds = g_ptr_array_new();
    g_autoptr(JsonObject) opts = NULL;

    error_set_progname(progname);
    while ((c = getopt_long(argc, argv, "hc:d:f:rsnCmki:t:T:UVo:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 's': flags |= BDRV_O_SNAPSHOT; break;
        case 'C': flags |= BDRV_O_COPY_ON_READ; break;
        case 'm':
        case 'k':
        case 'i':
        case 'T':
            break;
        case OPTION_OBJECT: {
            GError *err = NULL;
            bool help = false;

            if (!user_object_add_cmdline(optarg, &help, &err)) {
                error_report_err(err);
                return 1;
            }
            if (help) {
                return 0;
            }
            break;
        }
        case 'n':
            flags |= BDRV_O_NOCACHE;
            writethrough = false;
            break;
        case 'd':
            if (bdrv_parse_discard_flags(optarg, &flags) < 0) {
                error_report("Invalid discard option: %s", optarg);
                return 1;
            }
            break;
        case 'f': fmt = optarg; break;
        case 'c': g_ptr_array_add(cmds, optarg); break;
        case 'r': flags &= ~BDRV_O_RDWR; break;
        case 't':
            if (bdrv_parse_cache_mode(optarg, &flags) < 0) {
                error_report("Invalid cache option: %s", optarg);
                return 1;
            }
            writethrough = (flags & BDRV_O_WRITETHROUGH) != 0;
            break;
        case 'U': flags |= BDRV_O_FORCE_SHARE; break;
        case 'o': {
            g_autoptr(GError) err = NULL;
            opts = keyval_parse_flat(optarg, NULL, &err);
            if (!opts) {
                error_report("Invalid options: %s", err->message);
                return 1;
            }
            break;
        }
        case OPTION_IMAGE_OPTS: image_opts = true; break;
        case 'V':
            printf("%s version " QEMU_PKGVERSION "\n"
                   "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project "
                   "developers\n", progname);
            return 0;
        case 'h':
            usage(progname);
            return 0;
        default:
            usage(progname);
            return 1;
        }
    }
    if (argc - optind > 1) {
        usage(progname);
        return 1;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return 1;
    }

    if (optind < argc) {
        const char *name = argv[optind];
        if (image_opts) {
            g_autoptr(GError) err = NULL;
            JsonObject *io = keyval_parse_flat(name, NULL, &err);
            if (!io) {
                error_report("Invalid option list: %s", err->message);
                return 1;
            }
            if (opts) {
                opts_merge(io, opts);
            }
            ret = qemuio_open(NULL, io, flags, writethrough);
            json_object_unref(io);
        } else {
            if (fmt) {
                if (!opts) {
                    opts = json_object_new();
                }
                opts_set_str(opts, "driver", fmt);
            }
            ret = qemuio_open(name, opts, flags, writethrough);
        }
        if (ret < 0) {
            return 1;
        }
        ret = 0;
    }

    if (cmds->len == 0) {
        ret = command_loop_stdin();
    } else {
        for (guint i = 0; i < cmds->len && !quit; i++) {
            if (qemuio_command(cmds->pdata[i], &quit) < 0) {
                ret = 1;
            }
        }
    }
    qemuio_close();
    return ret;
}
