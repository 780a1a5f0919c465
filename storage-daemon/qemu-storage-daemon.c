/*
 * qemu-storage-daemon: the command line (--blockdev, --chardev, --monitor,
 * --nbd-server, --export, --pidfile, --daemonize), processed in order as QEMU
 * does; the GLib main loop; the block layer lock; and a clean exit on quit,
 * SIGTERM or SIGINT (jobs finish, exports end, every node is flushed and closed,
 * sockets and the pid file are removed).
 */
#include "daemon.h"
#include "qapi.h"
#include "qmp-commands.h"
#include "qmp-json.h"
#include "qemu/objects.h"
#include "block/aio.h"
#include <getopt.h>
#include <glib-unix.h>
#include <signal.h>

static GMainLoop *main_loop;
static GMutex block_mutex;
static char *pidfile;
/*
 * The main loop holds block_mutex on behalf of requests in flight (io_held,
 * main loop only); lock_waiters counts threads waiting in block_lock(), which
 * stops the main loop from submitting more until the lock has gone to them.
 */
static GThread *main_thread;
static bool io_held;
static gint lock_waiters;

/* Main loop: the lock is held for requests in flight; wait for them, keep it. */
static void io_hold_take_over(void)
{
    io_held = false;    /* first: callbacks run by the drain see it taken */
    bdrv_aio_drain(NULL);
}

bool block_lock_try(void)
{
    if (io_held) {
        io_hold_take_over();
        return true;
    }
    return g_mutex_trylock(&block_mutex);
}

void block_lock(void)
{
    if (g_thread_self() == main_thread && io_held) {
        io_hold_take_over();
        return;
    }
    g_atomic_int_inc(&lock_waiters);
    g_mutex_lock(&block_mutex);
    g_atomic_int_dec_and_test(&lock_waiters);
}

void block_unlock(void)
{
    g_mutex_unlock(&block_mutex);
}

bool block_io_begin(void)
{
    if (g_atomic_int_get(&lock_waiters)) {
        return false;       /* let the job in once the requests are back */
    }
    if (io_held) {
        return true;
    }
    if (!g_mutex_trylock(&block_mutex)) {
        return false;
    }
    io_held = true;
    return true;
}

void block_io_end(void)
{
    if (io_held && bdrv_aio_in_flight(NULL) == 0) {
        io_held = false;
        g_mutex_unlock(&block_mutex);
    }
}

static bool quit_requested;

void qsd_request_quit(void)
{
    quit_requested = true;
    if (main_loop) {
        g_main_loop_quit(main_loop);
    }
}

bool qsd_quit_requested(void)
{
    return quit_requested;
}

static gboolean on_signal(gpointer opaque)
{
    qsd_request_quit();
    return G_SOURCE_CONTINUE;
}

static void help(void)
{
    printf("Usage: qemu-storage-daemon [options]\n"
           "QEMU storage daemon\n"
           "\n"
           "  -h, --help             display this help and exit\n"
           "  -V, --version          output version information and exit\n"
           "\n"
           "  --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]\n"
           "             [,cache.direct=on|off][,cache.no-flush=on|off]\n"
           "             [,read-only=on|off][,auto-read-only=on|off]\n"
           "             [,force-share=on|off][,detect-zeroes=on|off|unmap]\n"
           "             [,driver specific parameters...]\n"
           "                         configure a block backend (also as JSON)\n"
           "\n"
           "  --chardev socket,id=<id>,path=<path>,server=on,wait=off\n"
           "  --chardev stdio,id=<id>\n"
           "                         configure a character device backend\n"
           "\n"
           "  --daemonize            daemonize the process, and have the parent exit\n"
           "                         once startup is complete\n"
           "\n"
           "  --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]\n"
           "           [,description=<text>][,writable=on|off]\n"
           "           [,allocation-depth=on|off][,bitmaps.<n>=<name>]\n"
           "                         export the specified block node over NBD\n"
           "                         (requires --nbd-server; also as JSON)\n"
           "\n"
#ifdef CONFIG_FUSE
           "  --export [type=]fuse,id=<id>,node-name=<node-name>,mountpoint=<file>\n"
           "           [,growable=on|off][,writable=on|off][,allow-other=on|off|auto]\n"
           "                         export the specified block node over FUSE\n"
           "\n"
#endif
           "  --monitor [chardev=]name[,mode=control][,pretty[=on|off]]\n"
           "                         configure a QMP monitor\n"
           "\n"
           "  --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>\n"
           "               [,tls-creds=<id>][,tls-authz=<id>]\n"
           "  --nbd-server addr.type=unix,addr.path=<path>\n"
           "               [,tls-creds=<id>][,tls-authz=<id>]\n"
           "                         start an NBD server for exporting block nodes\n"
           "\n"
           "  --pidfile <path>       write process ID to a file after startup\n");
}

enum {
    OPT_BLOCKDEV = 256, OPT_CHARDEV, OPT_DAEMONIZE, OPT_EXPORT, OPT_MONITOR,
    OPT_NBD_SERVER, OPT_OBJECT, OPT_PIDFILE,
};

/*
 * A command-line object given as JSON ("{...}") or as key=value with an
 * implied first key, the latter typed by @schema. NULL with errp set.
 */
static JsonObject *cli_parse_object(const char *arg, const char *implied_key,
                                    const QArg *schema, GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;

    if (arg[0] == '{') {
        JsonNode *n = qmp_json_parse(arg, strlen(arg), errp);
        if (!n) {
            return NULL;
        }
        if (!JSON_NODE_HOLDS_OBJECT(n)) {
            json_node_unref(n);
            error_setg(errp, "Invalid parameter type for 'null', expected: object");
            return NULL;
        }
        opts = json_object_ref(json_node_get_object(n));
        json_node_unref(n);
    } else {
        opts = keyval_parse(arg, implied_key, errp);
        if (!opts || !qapi_keyval_typed(opts, schema, errp)) {
            return NULL;
        }
    }
    return g_steal_pointer(&opts);
}

/* --blockdev: JSON or key=value, checked against the BlockdevOptions schema. */
static bool cli_blockdev(const char *arg, GError **errp)
{
    g_autoptr(JsonObject) opts = cli_parse_object(arg, "driver", &qapi_blockdev_options,
                                                  errp);

    return opts && qapi_check_union(opts, &qapi_blockdev_options, NULL, errp) &&
           qsd_blockdev_add(opts, errp);
}

static bool cli_nbd_server(const char *arg, GError **errp)
{
    g_autoptr(JsonObject) opts = keyval_parse(arg, NULL, errp);
    JsonObject *addr;

    if (!opts) {
        return false;
    }
    addr = opts_get_object(opts, "addr");
    if (!addr) {
        error_setg(errp, "Parameter 'addr' is missing");
        return false;
    }
    if (!opts_peek_str(addr, "type")) {
        error_setg(errp, "Parameter 'addr.type' is missing");
        return false;
    }
    return qsd_nbd_server_start(addr, opts_peek_str(opts, "tls-creds"),
                                opts_peek_str(opts, "tls-authz"), errp);
}

static bool cli_export(const char *arg, GError **errp)
{
    /* JSON too, as --blockdev takes it (the way to give a list of bitmaps) */
    g_autoptr(JsonObject) opts = cli_parse_object(arg, "type", &qapi_block_export_options,
                                                  errp);

    if (!opts) {
        return false;
    }
    if (!qapi_check_union(opts, &qapi_block_export_options, NULL, errp)) {
        return false;
    }
    return qsd_export_add(opts, errp);
}

static bool cli_keyval(const char *arg, const char *implied,
                       bool (*fn)(JsonObject *, GError **), GError **errp)
{
    g_autoptr(JsonObject) opts = keyval_parse(arg, implied, errp);

    return opts && fn(opts, errp);
}

static bool write_pidfile(const char *path, GError **errp)
{
    g_autofree char *text = g_strdup_printf("%d\n", (int)getpid());

    if (!g_file_set_contents(path, text, -1, NULL)) {
        error_setg_errno(errp, errno, "cannot create PID file");
        return false;
    }
    return true;
}

/* Fork; the parent waits for the child to finish startup and exits with its status. */
static int daemonize_start(void)
{
    int fds[2];
    pid_t pid;
    char c;

    if (pipe(fds) < 0) {
        error_report("cannot create pipe: %s", g_strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        error_report("cannot fork: %s", g_strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        ssize_t n;

        close(fds[1]);
        /* the child writes one byte once startup succeeded */
        do {
            n = read(fds[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        exit(n == 1 && c == 'k' ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

static void daemonize_finish(int fd)
{
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
    if (chdir("/") < 0) {
        /* nothing else to do about it */
    }
    while (write(fd, "k", 1) < 0 && errno == EINTR) {
    }
    close(fd);
}

static void process_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "blockdev", required_argument, NULL, OPT_BLOCKDEV },
        { "chardev", required_argument, NULL, OPT_CHARDEV },
        { "daemonize", no_argument, NULL, OPT_DAEMONIZE },
        { "export", required_argument, NULL, OPT_EXPORT },
        { "help", no_argument, NULL, 'h' },
        { "monitor", required_argument, NULL, OPT_MONITOR },
        { "nbd-server", required_argument, NULL, OPT_NBD_SERVER },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "pidfile", required_argument, NULL, OPT_PIDFILE },
        { "trace", required_argument, NULL, 'T' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c, longindex = -1;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "-hT:V", longopts, &longindex)) != -1) {
        GError *err = NULL;
        bool ok = true;
        g_autofree char *opt = longindex >= 0 ?
                               g_strdup_printf("--%s", longopts[longindex].name) :
                               g_strdup(argv[optind - 1]);

        longindex = -1;
        switch (c) {
        case 'h':
            help();
            exit(0);
        case 'V':
            printf("qemu-storage-daemon version %d.%d.%d (qcow2-tools %s)\n",
                   QSD_VERSION_MAJOR, QSD_VERSION_MINOR, QSD_VERSION_MICRO,
                   QEMU_PKGVERSION);
            exit(0);
        case 'T':
            break;          /* tracing is not implemented; accepted and ignored */
        case OPT_BLOCKDEV:
            ok = cli_blockdev(optarg, &err);
            break;
        case OPT_CHARDEV:
            ok = cli_keyval(optarg, "backend", qsd_chardev_add, &err);
            break;
        case OPT_MONITOR:
            ok = cli_keyval(optarg, "chardev", qsd_monitor_add, &err);
            break;
        case OPT_NBD_SERVER:
            ok = cli_nbd_server(optarg, &err);
            break;
        case OPT_EXPORT:
            ok = cli_export(optarg, &err);
            break;
        case OPT_OBJECT: {
            bool help = false;

            ok = user_object_add_cmdline(optarg, &help, &err);
            if (ok && help) {
                exit(0);
            }
            break;
        }
        case OPT_PIDFILE:
            g_free(pidfile);
            pidfile = g_canonicalize_filename(optarg, NULL);
            break;
        case OPT_DAEMONIZE:
            break;          /* handled before anything else */
        case 1:
            error_report("%s: Unexpected argument", optarg);
            exit(1);
        case '?':
        default:
            if (optopt) {
                error_report("option requires an argument -- '%c'", optopt);
            } else {
                error_report("unrecognized option '%s'", opt);
            }
            exit(1);
        }
        if (!ok) {
            if (optarg && c != OPT_OBJECT) {
                error_report("%s %s: %s", opt, optarg, err->message);
            } else {
                error_report("%s", err->message);
            }
            g_error_free(err);
            exit(1);
        }
    }
}

static bool want_daemonize(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--daemonize")) {
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    GError *err = NULL;
    int daemon_fd = -1;

    error_set_progname("qemu-storage-daemon");
    signal(SIGPIPE, SIG_IGN);
    if (want_daemonize(argc, argv)) {
        daemon_fd = daemonize_start();
    }
    main_thread = g_thread_self();
    main_loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);

    process_args(argc, argv);
    if (pidfile && !write_pidfile(pidfile, &err)) {
        error_report("%s", err->message);
        g_error_free(err);
        exit(1);
    }
    if (daemon_fd >= 0) {
        daemonize_finish(daemon_fd);
    }

    g_main_loop_run(main_loop);

    /* block jobs are cancelled; other workers cannot be: let them finish */
    job_cancel_all_sync();
    while (job_any_running()) {
        g_main_context_iteration(NULL, TRUE);
    }
    block_lock();
    qsd_export_close_all();
    qsd_blockdev_close_all();
    block_unlock();
    qsd_monitor_close_all();
    if (pidfile) {
        unlink(pidfile);
        g_free(pidfile);
    }
    g_main_loop_unref(main_loop);
    return 0;
}
