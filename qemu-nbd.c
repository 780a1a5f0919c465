/*
 * qemu-nbd: export one image over NBD (QEMU 7.2's command line), and list the
 * exports of another server (-L). The server itself is the storage daemon's
 * (storage-daemon/nbd-server.c); this file owns the command line, the single
 * export it serves, --fork/--pid-file, and when to exit (after the last client
 * unless -t). Kernel devices (-c/-d) only go as far as opening the device.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "qemu/option.h"
#include "qemu/objects.h"
#include "block/block.h"
#include "block/nbd-client.h"
#include "storage-daemon/nbd.h"
#include "storage-daemon/nbd-tls.h"
#include <getopt.h>
#include <glib-unix.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <libnbd.h>

#define NBD_DEFAULT_PORT "10809"
#define NBD_IOC_DISCONNECT  _IO(0xab, 8)
#define NBD_IOC_CLEAR_SOCK  _IO(0xab, 4)

enum {
    OPT_CACHE = 256, OPT_AIO, OPT_DISCARD, OPT_DETECT_ZEROES, OPT_IMAGE_OPTS,
    OPT_OBJECT, OPT_TLSCREDS, OPT_TLSAUTHZ, OPT_TLSHOSTNAME, OPT_FORK, OPT_PID_FILE,
    OPT_SELINUX,
};

static NbdExport the_export;
static GList *export_list;
static GMainLoop *main_loop;
static bool persistent;
static bool had_client;

/* ---- what the shared server needs from its embedder ---- */

NbdExport *nbd_export_find(const char *name)
{
    return the_export.bs && !strcmp(the_export.name, name) ? &the_export : NULL;
}

GList *nbd_export_list(void)
{
    return export_list;
}

void nbd_export_put(NbdExport *exp)
{
    exp->clients--;
}

/* qemu-nbd is single-threaded: the block layer is always ours */
bool block_lock_try(void)
{
    return true;
}

void block_unlock(void)
{
}

bool block_io_begin(void)
{
    return true;
}

void block_io_end(void)
{
}

static void client_gone(void)
{
    had_client = true;
    if (!persistent && nbd_server_client_count() == 0) {
        g_main_loop_quit(main_loop);
    }
}

static gboolean on_signal(gpointer opaque)
{
    g_main_loop_quit(main_loop);
    return G_SOURCE_CONTINUE;
}

/* ---- help ---- */

static void usage(void)
{
    printf(
"Usage: qemu-nbd [OPTIONS] FILE\n"
"  or:  qemu-nbd -L [OPTIONS]\n"
"QEMU Disk Network Block Device Utility\n"
"\n"
"  -h, --help                display this help and exit\n"
"  -V, --version             output version information and exit\n"
"\n"
"Connection properties:\n"
"  -p, --port=PORT           port to listen on (default `10809')\n"
"  -b, --bind=IFACE          interface to bind to (default `0.0.0.0')\n"
"  -k, --socket=PATH         path to the unix socket\n"
"                            (default '/var/lock/qemu-nbd-DEVICE')\n"
"  -e, --shared=NUM          device can be shared by NUM clients (default '1')\n"
"  -t, --persistent          don't exit on the last connection\n"
"  -v, --verbose             display extra debugging information\n"
"  -x, --export-name=NAME    expose export by name (default is empty string)\n"
"  -D, --description=TEXT    export a human-readable description\n"
"\n"
"Exposing part of the image:\n"
"  -o, --offset=OFFSET       offset into the image\n"
"  -A, --allocation-depth    expose the allocation depth\n"
"  -B, --bitmap=NAME         expose a persistent dirty bitmap\n"
"\n"
"General purpose options:\n"
"  -L, --list                list exports available from another NBD server\n"
"  --object type,id=ID,...   define an object such as 'secret' for providing\n"
"                            passwords and/or encryption keys\n"
"  --tls-creds=ID            use id of an earlier --object to provide TLS\n"
"  --tls-authz=ID            use id of an earlier --object to provide\n"
"                            authorization\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
"                            specify tracing options\n"
"  --fork                    fork off the server process and exit the parent\n"
"                            once the server is running\n"
"  --pid-file=PATH           store the server's process ID in the given file\n"
"  --selinux-label=LABEL     set SELinux process label on listening socket\n"
"\n"
"Kernel NBD client support:\n"
"  -c, --connect=DEV         connect FILE to the local NBD device DEV\n"
"  -d, --disconnect          disconnect the specified device\n"
"\n"
"Block device options:\n"
"  -f, --format=FORMAT       set image format (raw, qcow2, ...)\n"
"  -r, --read-only           export read-only\n"
"  -s, --snapshot            use FILE as an external snapshot, create a temporary\n"
"                            file with backing_file=FILE, redirect the write to\n"
"                            the temporary one\n"
"  -l, --load-snapshot=SNAPSHOT_PARAM\n"
"                            load an internal snapshot inside FILE and export it\n"
"                            as an read-only device, SNAPSHOT_PARAM format is\n"
"                            'snapshot.id=[ID],snapshot.name=[NAME]', or\n"
"                            '[ID_OR_NAME]'\n"
"  -n, --nocache             disable host cache\n"
"      --cache=MODE          set cache mode used to access the disk image, the\n"
"                            valid options are: 'none', 'writeback' (default),\n"
"                            'writethrough', 'directsync' and 'unsafe'\n"
"      --aio=MODE            set AIO mode (native, io_uring or threads)\n"
"      --discard=MODE        set discard mode (ignore, unmap)\n"
"      --detect-zeroes=MODE  set detect-zeroes mode (off, on, unmap)\n"
"      --image-opts          treat FILE as a full set of image options\n"
"\n"
"See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n"
"More information on the QEMU project at <https://qemu.org>.\n");
}

static void version(void)
{
    printf("qemu-nbd " QEMU_PKGVERSION "\n"
           "Written by Anthony Liguori.\n"
           "\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
           "This is free software; see the source for copying conditions.  There is NO\n"
           "warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n");
}

static void G_GNUC_NORETURN bad_usage(const char *fmt, ...) G_GNUC_PRINTF_CHECK(1, 2);
static const char *argv0 = "qemu-nbd";

static void G_GNUC_NORETURN bad_usage(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("%s", msg);
    fprintf(stderr, "Try `%s --help' for more information.\n", argv0);
    exit(EXIT_FAILURE);
}

static void G_GNUC_NORETURN fail(const char *msg)
{
    error_report("%s", msg);
    exit(EXIT_FAILURE);
}

/* ---- -L: list another server's exports ---- */

static const char *const flag_names[] = {
    NULL, "readonly", "flush", "fua", "rotational", "trim", "zeroes", "df", "multi",
    "resize", "cache", "fast-zero",
};

static int list_export_cb(void *opaque, const char *name, const char *description)
{
    GPtrArray *names = opaque;

    g_ptr_array_add(names, g_strdup(name));
    return 0;
}

static int list_meta_cb(void *opaque, const char *name)
{
    g_ptr_array_add(opaque, g_strdup(name));
    return 0;
}

/* The transmission flags as QEMU prints them, rebuilt from libnbd's answers. */
static uint16_t export_flags_of(struct nbd_handle *h)
{
    uint16_t f = 1;

    f |= nbd_is_read_only(h) == 1 ? 1 << 1 : 0;
    f |= nbd_can_flush(h) == 1 ? 1 << 2 : 0;
    f |= nbd_can_fua(h) == 1 ? 1 << 3 : 0;
    f |= nbd_is_rotational(h) == 1 ? 1 << 4 : 0;
    f |= nbd_can_trim(h) == 1 ? 1 << 5 : 0;
    f |= nbd_can_zero(h) == 1 ? 1 << 6 : 0;
    f |= nbd_can_df(h) == 1 ? 1 << 7 : 0;
    f |= nbd_can_multi_conn(h) == 1 ? 1 << 8 : 0;
    f |= nbd_can_cache(h) == 1 ? 1 << 10 : 0;
    f |= nbd_can_fast_zero(h) == 1 ? 1 << 11 : 0;
    return f;
}

static int list_exports(const NbdServerAddr *addr, const char *tls_creds)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *server_msg = NULL;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    struct nbd_handle *h = nbd_client_connect(addr, "", tls_creds, NULL, true, 60,
                                              &server_msg, &err);

    if (!h) {
        error_report_err(g_steal_pointer(&err));
        return EXIT_FAILURE;
    }
    if (!nbd_aio_is_negotiating(h)) {
        error_report("Server does not support export lists");
        nbd_close(h);
        return EXIT_FAILURE;
    }
    if (nbd_opt_list(h, (nbd_list_callback) { .callback = list_export_cb,
                                              .user_data = names }) < 0) {
        if (!tls_creds && nbd_get_errno() == ENOTSUP && server_msg &&
            strstr(server_msg, "not permitted before TLS")) {
            /* NBD_REP_ERR_TLS_REQD, in QEMU's words */
            error_report("TLS negotiation required before option 3 (list)");
        } else {
            error_report("%s", nbd_get_error());
        }
        nbd_close(h);
        return EXIT_FAILURE;
    }
    printf("exports available: %u\n", names->len);
    for (guint i = 0; i < names->len; i++) {
        g_autoptr(GPtrArray) metas = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *desc = NULL;
        uint16_t flags;

        nbd_set_export_name(h, names->pdata[i]);
        nbd_set_full_info(h, true);
        printf(" export: '%s'\n", (char *)names->pdata[i]);
        if (nbd_opt_info(h) < 0) {
            continue;
        }
        desc = nbd_get_export_description(h);
        if (desc && *desc) {
            printf("  description: %s\n", desc);
        }
        flags = export_flags_of(h);
        printf("  size:  %" PRId64 "\n", nbd_get_size(h));
        printf("  flags: 0x%x (", flags);
        for (size_t b = 1; b < ARRAY_SIZE(flag_names); b++) {
            if (flags & (1 << b)) {
                printf(" %s", flag_names[b]);
            }
        }
        printf(" )\n");
        if (nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM) > 0) {
            printf("  min block: %" PRId64 "\n", nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM));
            printf("  opt block: %" PRId64 "\n",
                   nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED));
            printf("  max block: %" PRId64 "\n", nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM));
        }
        if (nbd_opt_list_meta_context(h, (nbd_context_callback) {
                                          .callback = list_meta_cb,
                                          .user_data = metas }) >= 0) {
            printf("  available meta contexts: %u\n", metas->len);
            for (guint m = 0; m < metas->len; m++) {
                printf("   %s\n", (char *)metas->pdata[m]);
            }
        }
    }
    nbd_opt_abort(h);
    nbd_close(h);
    return EXIT_SUCCESS;
}

/* ---- the export ---- */

/* -l: "snapshot.id=ID,snapshot.name=NAME" or "ID_OR_NAME" */
static int load_snapshot(BlockDriverState *bs, const char *param, GError **errp)
{
    if (g_str_has_prefix(param, "snapshot.")) {
        g_autoptr(JsonObject) o = keyval_parse_flat(param, NULL, errp);
        if (!o) {
            return -EINVAL;
        }
        return bdrv_snapshot_load_tmp(bs, opts_peek_str(o, "snapshot.id"),
                                      opts_peek_str(o, "snapshot.name"), errp);
    }
    if (bdrv_snapshot_load_tmp(bs, param, NULL, NULL) == 0) {
        return 0;
    }
    return bdrv_snapshot_load_tmp(bs, NULL, param, errp);
}

/* ---- --fork ---- */

static int fork_pipe[2] = { -1, -1 };

/* The parent waits for the server to be listening (a byte) or to fail (EOF). */
static void fork_server(void)
{
    pid_t pid;
    char c;

    if (pipe(fork_pipe) < 0) {
        error_report("Failed to create pipe: %s", strerror(errno));
        exit(EXIT_FAILURE);
    }
    pid = fork();
    if (pid < 0) {
        error_report("Failed to fork: %s", strerror(errno));
        exit(EXIT_FAILURE);
    }
    if (pid > 0) {
        ssize_t n;

        close(fork_pipe[1]);
        do {
            n = read(fork_pipe[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        exit(n == 1 && c == 'R' ? EXIT_SUCCESS : EXIT_FAILURE);
    }
    close(fork_pipe[0]);
    setsid();
}

static void fork_ready(void)
{
    int fd;

    if (fork_pipe[1] < 0) {
        return;
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    (void)!write(fork_pipe[1], "R", 1);
    close(fork_pipe[1]);
    fork_pipe[1] = -1;
}

/* ---- kernel devices ---- */

static int disconnect_device(const char *dev)
{
    int fd = open(dev, O_RDWR);

    if (fd < 0) {
        error_report("Cannot open %s: %s", dev, strerror(errno));
        return EXIT_FAILURE;
    }
    if (ioctl(fd, NBD_IOC_DISCONNECT) < 0 || ioctl(fd, NBD_IOC_CLEAR_SOCK) < 0) {
        error_report("Cannot disconnect %s: %s", dev, strerror(errno));
        close(fd);
        return EXIT_FAILURE;
    }
    close(fd);
    printf("%s disconnected\n", dev);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    static const struct option lopt[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "bind", required_argument, NULL, 'b' },
        { "port", required_argument, NULL, 'p' },
        { "socket", required_argument, NULL, 'k' },
        { "offset", required_argument, NULL, 'o' },
        { "read-only", no_argument, NULL, 'r' },
        { "allocation-depth", no_argument, NULL, 'A' },
        { "bitmap", required_argument, NULL, 'B' },
        { "connect", required_argument, NULL, 'c' },
        { "disconnect", no_argument, NULL, 'd' },
        { "list", no_argument, NULL, 'L' },
        { "snapshot", no_argument, NULL, 's' },
        { "load-snapshot", required_argument, NULL, 'l' },
        { "nocache", no_argument, NULL, 'n' },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "aio", required_argument, NULL, OPT_AIO },
        { "discard", required_argument, NULL, OPT_DISCARD },
        { "detect-zeroes", required_argument, NULL, OPT_DETECT_ZEROES },
        { "shared", required_argument, NULL, 'e' },
        { "format", required_argument, NULL, 'f' },
        { "persistent", no_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "tls-creds", required_argument, NULL, OPT_TLSCREDS },
        { "tls-hostname", required_argument, NULL, OPT_TLSHOSTNAME },
        { "tls-authz", required_argument, NULL, OPT_TLSAUTHZ },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "trace", required_argument, NULL, 'T' },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { "selinux-label", required_argument, NULL, OPT_SELINUX },
        { NULL, 0, NULL, 0 },
    };
    const char *bindto = NULL, *port = NULL, *sockpath = NULL, *device = NULL;
    const char *fmt = NULL, *export_name = NULL, *desc = NULL;
    const char *snapshot_param = NULL, *tls_creds = NULL, *pid_file = NULL;
    const char *tls_authz = NULL;
    const char *detect_zeroes = NULL, *aio = NULL;
    bool readonly = false, disconnect = false, list = false, image_opts = false;
    bool alloc_depth = false, do_fork = false, seen_aio = false, seen_cache = false;
    bool seen_discard = false;
    int flags = BDRV_O_RDWR, shared = 1, ch;
    uint64_t dev_offset = 0;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) opts = NULL;
    g_autofree char *tls_dir = NULL;
    BlockDriverState *bs;
    g_auto(NbdServerAddr) addr = { 0 };
    g_autoptr(JsonObject) saddr = json_object_new();
    g_autoptr(GPtrArray) bitmaps = g_ptr_array_new();    /* -B, in order */

    error_set_progname("qemu-nbd");
    argv0 = argv[0];
    signal(SIGPIPE, SIG_IGN);
    while ((ch = getopt_long(argc, argv, "hVb:o:p:rsnc:dvk:e:f:tl:x:T:D:AB:L", lopt,
                             NULL)) != -1) {
        int64_t v;

        switch (ch) {
        case 'h':
            usage();
            return EXIT_SUCCESS;
        case 'V':
            version();
            return EXIT_SUCCESS;
        case 'b':
            bindto = optarg;
            break;
        case 'p':
            port = optarg;
            if (qemu_strtoi64(optarg, 0, &v) < 0 || v < 0 || v > 65535) {
                bad_usage("Invalid port number '%s'", optarg);
            }
            break;
        case 'k':
            sockpath = optarg;
            if (sockpath[0] != '/') {
                bad_usage("socket path must be absolute");
            }
            break;
        case 'o':
            if (qemu_strtou64(optarg, 0, &dev_offset) < 0) {
                bad_usage("Invalid offset '%s'", optarg);
            }
            break;
        case 'r':
            readonly = true;
            flags &= ~BDRV_O_RDWR;
            break;
        case 's':
            flags |= BDRV_O_SNAPSHOT;
            break;
        case 'l':
            snapshot_param = optarg;
            readonly = true;
            flags &= ~BDRV_O_RDWR;
            break;
        case 'n':
            optarg = (char *)"none";
            /* fall through */
        case OPT_CACHE:
            if (seen_cache) {
                bad_usage("-n and --cache can only be specified once");
            }
            seen_cache = true;
            if (bdrv_parse_cache_mode(optarg, &flags) < 0) {
                bad_usage("Invalid cache mode '%s'", optarg);
            }
            break;
        case OPT_AIO:
            if (seen_aio) {
                bad_usage("--aio can only be specified once");
            }
            seen_aio = true;
            if (strcmp(optarg, "native") && strcmp(optarg, "threads") &&
                strcmp(optarg, "io_uring")) {
                bad_usage("invalid aio mode '%s'", optarg);
            }
            aio = optarg;
            break;
        case OPT_DISCARD:
            if (seen_discard) {
                bad_usage("--discard can only be specified once");
            }
            seen_discard = true;
            if (bdrv_parse_discard_flags(optarg, &flags) < 0) {
                bad_usage("Invalid discard mode `%s'", optarg);
            }
            break;
        case OPT_DETECT_ZEROES:
            if (strcmp(optarg, "off") && strcmp(optarg, "on") &&
                strcmp(optarg, "unmap")) {
                bad_usage("Invalid detect-zeroes mode '%s'", optarg);
            }
            detect_zeroes = optarg;
            break;
        case 'c':
            device = optarg;
            break;
        case 'd':
            disconnect = true;
            break;
        case 'e':
            if (qemu_strtoi64(optarg, 0, &v) < 0 || v < 1 || v > INT_MAX) {
                bad_usage("Invalid shared device number '%s'", optarg);
            }
            shared = v;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 't':
            persistent = true;
            break;
        case 'v':
            break;
        case 'x':
            export_name = optarg;
            if (strlen(export_name) > NBD_MAX_STRING_SIZE) {
                bad_usage("export name '%s' too long", export_name);
            }
            break;
        case 'D':
            desc = optarg;
            if (strlen(desc) > NBD_MAX_STRING_SIZE) {
                bad_usage("description '%s' too long", desc);
            }
            break;
        case 'A':
            alloc_depth = true;
            break;
        case 'B':
            g_ptr_array_add(bitmaps, optarg);
            break;
        case 'L':
            list = true;
            break;
        case 'T':
            break;
        case OPT_OBJECT: {
            bool help = false;

            if (!user_object_add_cmdline(optarg, &help, &err)) {
                error_report_err(g_steal_pointer(&err));
                return EXIT_FAILURE;
            }
            if (help) {
                return EXIT_SUCCESS;
            }
            break;
        }
        case OPT_TLSCREDS:
            tls_creds = optarg;
            break;
        case OPT_TLSAUTHZ:
            tls_authz = optarg;
            break;
        case OPT_TLSHOSTNAME:
            break;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPT_FORK:
            do_fork = true;
            break;
        case OPT_PID_FILE:
            pid_file = optarg;
            break;
        case OPT_SELINUX:
            error_report("SELinux support not enabled in this binary");
            return EXIT_FAILURE;
        case ':':
        case '?':
        default:
            error_report("Try `%s --help' for more information.", argv0);
            return EXIT_FAILURE;
        }
    }

    if (list) {
        if (argc != optind) {
            fail("List mode is incompatible with a file name");
        }
        if (export_name || device || disconnect || fmt || snapshot_param || desc) {
            fail("List mode is incompatible with per-device settings");
        }
        if (shared != 1) {
            fail("List mode is incompatible with multiple clients");
        }
    } else if (argc - optind != 1) {
        bad_usage("Invalid number of arguments");
    }
    if (export_name && device) {
        bad_usage("-x and -c are mutually exclusive");
    }
    if (sockpath && (bindto || port)) {
        bad_usage("--socket and --bind/--port are mutually exclusive");
    }
    if (image_opts && fmt) {
        bad_usage("--image-opts and -f are mutually exclusive");
    }
    if (tls_creds) {
        if (device) {
            bad_usage("TLS is not supported with a host device");
        }
        if (list) {
            tls_dir = nbd_tls_creds_dir(tls_creds, &err);
            g_clear_error(&err);
        } else if (!nbd_tls_server_check(tls_creds, &err)) {
            error_report("Failed to get TLS creds: %s", err->message);
            return EXIT_FAILURE;
        } else if (!nbd_tls_server_setup(tls_creds, tls_authz, &err)) {
            /* QEMU loads the files with the object */
            error_report_err(g_steal_pointer(&err));
            return EXIT_FAILURE;
        }
    }
    if (tls_authz) {
        if (!tls_creds) {
            error_report("--tls-authz is not permitted without --tls-creds");
            return EXIT_FAILURE;
        }
        if (list) {
            error_report("TLS authorization is incompatible with export list");
            return EXIT_FAILURE;
        }
    }

    if (sockpath) {
        addr.is_unix = true;
        addr.path = g_strdup(sockpath);
    } else {
        addr.host = g_strdup(bindto ? bindto : list ? "localhost" : "0.0.0.0");
        addr.port = g_strdup(port ? port : NBD_DEFAULT_PORT);
    }
    if (list) {
        return list_exports(&addr, tls_dir ? tls_creds : NULL);
    }
    if (disconnect) {
        return disconnect_device(argv[optind]);
    }
    if (!sockpath && device) {
        addr.is_unix = true;
        addr.path = g_strdup_printf("/var/lock/qemu-nbd-%s", strrchr(device, '/') ?
                                    strrchr(device, '/') + 1 : device);
    }

    if (do_fork) {
        fork_server();
    }

    /* the image */
    if (image_opts) {
        opts = keyval_parse_flat(argv[optind], NULL, &err);
        if (!opts) {
            error_report("Failed to blk_new_open '%s': %s", argv[optind], err->message);
            return EXIT_FAILURE;
        }
    } else {
        opts = json_object_new();
        if (fmt) {
            opts_set_str(opts, "driver", fmt);
        }
    }
    if (detect_zeroes) {
        opts_set_str(opts, "detect-zeroes", detect_zeroes);
    }
    if (aio && !image_opts) {
        opts_set_str_path(opts, "file.aio", aio);
    }
    bs = bdrv_open(image_opts ? NULL : argv[optind], opts, flags, &err);
    if (!bs) {
        error_report("Failed to blk_new_open '%s': %s", argv[optind], err->message);
        return EXIT_FAILURE;
    }
    if (snapshot_param && load_snapshot(bs, snapshot_param, &err) < 0) {
        error_report("Failed to load snapshot: %s", err->message);
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }
    if (dev_offset) {
        g_autoptr(JsonObject) ropts = json_object_new();
        g_autofree char *off = g_strdup_printf("%" PRIu64, dev_offset);
        BlockDriverState *raw;

        opts_set_str(ropts, "driver", "raw");
        opts_set_str(ropts, "offset", off);
        opts_set_str(ropts, "file", bdrv_get_node_name(bs));
        raw = bdrv_open(NULL, ropts, flags & ~BDRV_O_SNAPSHOT, &err);
        bdrv_unref(bs);
        if (!raw) {
            error_report("Failed to blk_new_open '%s': %s", argv[optind], err->message);
            return EXIT_FAILURE;
        }
        bs = raw;
    }
    /* as QEMU's qemu-nbd: the export's list holds the last -B first */
    the_export.bitmaps = g_new0(NbdExportBitmap, bitmaps->len);
    for (guint i = 0; i < bitmaps->len; i++) {
        const char *name = bitmaps->pdata[bitmaps->len - 1 - i];
        BlockDriverState *b = nbd_find_bitmap(bs, name, true, !readonly, &err);

        if (!b) {
            error_report_err(g_steal_pointer(&err));
            bdrv_unref(bs);
            return EXIT_FAILURE;
        }
        the_export.bitmaps[i].name = g_strdup(name);
        the_export.bitmaps[i].bs = b;
        the_export.nb_bitmaps++;
    }
    if (device) {
        int fd = open(device, O_RDWR);
        if (fd < 0) {
            error_report("Failed to open %s: %s", device, strerror(errno));
        } else {
            close(fd);
            error_report("Failed to connect %s: kernel NBD devices are not supported",
                         device);
        }
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }

    the_export.id = g_strdup("qemu-nbd");
    the_export.name = g_strdup(export_name ? export_name : "");
    the_export.description = g_strdup(desc);
    the_export.bs = bs;
    the_export.writable = !readonly;
    the_export.multi_conn = shared > 1;
    the_export.alloc_depth = alloc_depth;
    export_list = g_list_append(NULL, &the_export);

    if (addr.is_unix) {
        opts_set_str(saddr, "type", "unix");
        opts_set_str(saddr, "path", addr.path);
    } else {
        opts_set_str(saddr, "type", "inet");
        opts_set_str(saddr, "host", addr.host);
        opts_set_str(saddr, "port", addr.port);
    }
    if (!nbd_server_start(saddr, &err)) {
        error_report_err(g_steal_pointer(&err));
        bdrv_unref(bs);
        return EXIT_FAILURE;
    }
    nbd_server_set_limits(shared, client_gone);
    if (pid_file) {
        g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
        if (!g_file_set_contents(pid_file, pid, -1, &err)) {
            error_report("Failed to write pid file '%s': %s", pid_file, err->message);
            nbd_server_stop();
            bdrv_unref(bs);
            return EXIT_FAILURE;
        }
    }
    main_loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    fork_ready();
    g_main_loop_run(main_loop);

    nbd_server_stop();
    bdrv_flush(bs);
    bdrv_unref(bs);
    if (pid_file) {
        unlink(pid_file);
    }
    nbd_server_addr_clear(&addr);
    return EXIT_SUCCESS;
}
