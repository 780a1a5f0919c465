/*
 * The "nbd" protocol driver: a client of an NBD server, on libnbd. It owns the
 * filename syntaxes (nbd://, nbd+tcp://, nbd+unix:// URLs and the legacy
 * nbd:unix:PATH / nbd:HOST:PORT forms, each with an export name), the address
 * options (server.*, and the legacy flat host/port/path), connecting with a
 * deadline (open-timeout retries, QEMU's error wording for what the server
 * refused), block status from base:allocation or an x-dirty-bitmap context,
 * request splitting to the server's block sizes, a timeout on requests the
 * server never answers, and reconnecting for reconnect-delay seconds when the
 * connection drops.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/aio.h"
#include "block/nbd-client.h"
#include "qemu/objects.h"
#include <libnbd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define NBD_DEFAULT_PORT        "10809"
#define NBD_MAX_REQUEST         (32 * MiB)      /* when the server names none */
#define NBD_MAX_ZERO_TRIM       (1 * GiB)
/* a server that says nothing for this long is taken for dead (x-timeout) */
#define NBD_DEFAULT_TIMEOUT_S   300
#define NBD_HANDSHAKE_TIMEOUT_S 60

typedef struct BDRVNBDState {
    struct nbd_handle *h;
    NbdServerAddr addr;
    char *export;
    char *tls_creds;         /* tls-creds: the credentials' id (NULL: no TLS) */
    char *meta;              /* the context block status asks (NULL: none) */
    bool meta_is_depth;      /* qemu:allocation-depth: depths beyond 2 read as 2 */
    double reconnect_delay;
    double open_timeout;
    double timeout;          /* seconds without progress before giving up */
    int64_t size;
    uint32_t max_request;
    bool read_only, can_flush, can_trim, can_zero, can_fast_zero, has_meta;
    char *server_msg;        /* the server's text for the last refused option */
} BDRVNBDState;

static const char *const nbd_protocol_aliases[] = { "nbd+tcp", "nbd+unix", NULL };

/* what a json: name of a node lists: the address as it was given */
static const char *const nbd_strong_opts[] = {
    "server.", "host", "port", "path", "export", NULL,
};

static const char *const nbd_runtime_opts[] = {
    "filename", "server", "export", "tls-creds", "tls-hostname", "x-dirty-bitmap",
    "reconnect-delay", "open-timeout", "host", "port", "path", "x-timeout", NULL,
};

static int64_t now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

/* ---- addresses and file names ---- */

void nbd_server_addr_clear(NbdServerAddr *a)
{
    g_clear_pointer(&a->path, g_free);
    g_clear_pointer(&a->host, g_free);
    g_clear_pointer(&a->port, g_free);
}

/* nbd[+tcp|+unix]://[host[:port]]/export[?socket=path] */
static bool parse_uri(const char *filename, NbdServerAddr *addr, char **export)
{
    g_autoptr(GUri) uri = g_uri_parse(filename, G_URI_FLAGS_ENCODED_QUERY |
                                      G_URI_FLAGS_NON_DNS, NULL);
    const char *scheme, *path, *query, *host;
    int port;

    if (!uri) {
        return false;
    }
    scheme = g_uri_get_scheme(uri);
    path = g_uri_get_path(uri);
    query = g_uri_get_query(uri);
    host = g_uri_get_host(uri);
    port = g_uri_get_port(uri);
    if (!strcmp(scheme, "nbd") || !strcmp(scheme, "nbd+tcp")) {
        addr->is_unix = false;
    } else if (!strcmp(scheme, "nbd+unix")) {
        addr->is_unix = true;
    } else {
        return false;
    }
    if (g_uri_get_userinfo(uri) || g_uri_get_fragment(uri) ||
        (path[0] && path[0] != '/')) {
        return false;
    }
    if (addr->is_unix) {
        if ((host && *host) || port != -1 || !query ||
            !g_str_has_prefix(query, "socket=") || strchr(query, '&')) {
            return false;
        }
        addr->path = g_uri_unescape_string(query + strlen("socket="), NULL);
        if (!addr->path) {
            return false;
        }
    } else {
        if (query || !host || !*host || port > 65535) {
            return false;
        }
        addr->host = g_strdup(host);
        addr->port = port == -1 ? g_strdup(NBD_DEFAULT_PORT)
                                : g_strdup_printf("%d", port);
    }
    *export = g_strdup(path[0] ? path + 1 : "");
    return true;
}

/* nbd:unix:PATH[:exportname=NAME] or nbd:HOST:PORT[:exportname=NAME] */
static bool parse_legacy(const char *filename, NbdServerAddr *addr, char **export,
                         GError **errp)
{
    g_autofree char *rest = g_strdup(filename + strlen("nbd:"));
    char *ex = strstr(rest, ":exportname=");
    char *colon;

    if (ex) {
        *ex = '\0';
        *export = g_strdup(ex + strlen(":exportname="));
    } else {
        *export = g_strdup("");
    }
    if (g_str_has_prefix(rest, "unix:")) {
        addr->is_unix = true;
        addr->path = g_strdup(rest + strlen("unix:"));
        return true;
    }
    colon = strrchr(rest, ':');
    if (!colon || colon == rest || !colon[1]) {
        error_setg(errp, "error parsing address '%s'", rest);
        g_clear_pointer(export, g_free);
        return false;
    }
    *colon = '\0';
    addr->is_unix = false;
    if (rest[0] == '[' && colon[-1] == ']') {
        colon[-1] = '\0';
        addr->host = g_strdup(rest + 1);
    } else {
        addr->host = g_strdup(rest);
    }
    addr->port = g_strdup(colon + 1);
    return true;
}

bool nbd_parse_filename(const char *filename, NbdServerAddr *addr, char **export,
                        GError **errp)
{
    if (strstr(filename, "://")) {
        if (!parse_uri(filename, addr, export)) {
            nbd_server_addr_clear(addr);
            error_setg(errp, "No valid URL specified");
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(filename, "nbd:")) {
        return parse_legacy(filename, addr, export, errp);
    }
    error_setg(errp, "No valid URL specified");
    return false;
}

char *nbd_canonical_name(const NbdServerAddr *addr, const char *export)
{
    const char *slash = export && *export ? "/" : "";

    if (addr->is_unix) {
        return g_strdup_printf("nbd+unix://%s%s?socket=%s", slash, export ? export : "",
                               addr->path);
    }
    if (strchr(addr->host, ':')) {
        return g_strdup_printf("nbd://[%s]:%s%s%s", addr->host, addr->port, slash,
                               export ? export : "");
    }
    return g_strdup_printf("nbd://%s:%s%s%s", addr->host, addr->port, slash,
                           export ? export : "");
}

/* ---- connecting ---- */

int nbd_socket_connect(const NbdServerAddr *addr, GError **errp)
{
    int fd = -1, err = 0;

    if (addr->is_unix) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };

        if (strlen(addr->path) >= sizeof(un.sun_path)) {
            error_setg(errp, "UNIX socket path '%s' is too long", addr->path);
            return -1;
        }
        strcpy(un.sun_path, addr->path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
            error_setg_errno(errp, errno, "Failed to connect to '%s'", addr->path);
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        return fd;
    } else {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res, *ai;
        int rc = getaddrinfo(addr->host, addr->port, &hints, &res);

        if (rc) {
            error_setg(errp, "address resolution failed for %s:%s: %s", addr->host,
                       addr->port, gai_strerror(rc));
            return -1;
        }
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                break;
            }
            err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            error_setg_errno(errp, err, "Failed to connect to '%s:%s'", addr->host,
                             addr->port);
        }
        return fd;
    }
}

/*
 * Oldstyle servers that send no export flags at all (eflags 0, not even
 * NBD_FLAG_HAS_FLAGS): QEMU takes them as "no features", libnbd refuses them.
 * Such a connection goes through a relay thread that hands libnbd the greeting
 * with HAS_FLAGS set and copies everything else through unchanged.
 */
#define OLDSTYLE_GREETING   152
#define OLDSTYLE_MAGIC      0x00420281861253ULL
#define OLDSTYLE_EFLAGS_AT  26

typedef struct Relay {
    int a, b;
} Relay;

static gpointer relay_thread(gpointer opaque)
{
    Relay *r = opaque;
    struct pollfd p[2] = { { .fd = r->a, .events = POLLIN },
                           { .fd = r->b, .events = POLLIN } };
    g_autofree char *buf = g_malloc(256 * KiB);

    while (poll(p, 2, -1) >= 0 || errno == EINTR) {
        for (int i = 0; i < 2; i++) {
            ssize_t n, off = 0;

            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            n = read(p[i].fd, buf, 256 * KiB);
            if (n <= 0) {
                goto out;
            }
            while (off < n) {
                ssize_t w = write(p[1 - i].fd, buf + off, n - off);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                if (w <= 0) {
                    goto out;
                }
                off += w;
            }
        }
    }
out:
    shutdown(r->a, SHUT_RDWR);
    shutdown(r->b, SHUT_RDWR);
    close(r->a);
    close(r->b);
    g_free(r);
    return NULL;
}

static int oldstyle_fixup(int fd)
{
    uint8_t g[OLDSTYLE_GREETING];
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t magic;
    ssize_t n = 0;
    int sv[2];
    Relay *r;

    /* wait (briefly) for the whole greeting to be there to look at */
    for (int i = 0; i < 50; i++) {
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        n = recv(fd, g, sizeof(g), MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0 || n == sizeof(g) || (n >= 16 && memcmp(g + 8, "\0\x42", 2))) {
            break;
        }
        g_usleep(1000);
    }
    if (n < (ssize_t)sizeof(g)) {
        return fd;
    }
    memcpy(&magic, g + 8, 8);
    if (GUINT64_FROM_BE(magic) != OLDSTYLE_MAGIC || (g[OLDSTYLE_EFLAGS_AT + 1] & 1)) {
        return fd;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        recv(fd, g, sizeof(g), MSG_WAITALL) != sizeof(g)) {
        return fd;
    }
    g[OLDSTYLE_EFLAGS_AT + 1] |= 1;     /* NBD_FLAG_HAS_FLAGS */
    if (write(sv[0], g, sizeof(g)) != sizeof(g)) {
        close(sv[0]);
        close(sv[1]);
        return fd;
    }
    r = g_new(Relay, 1);
    r->a = fd;
    r->b = sv[0];
    g_thread_unref(g_thread_new("nbd-relay", relay_thread, r));
    return sv[1];
}

/* libnbd only says why the server refused an option in its debug messages */
static int nbd_debug_cb(void *opaque, const char *context, const char *msg)
{
    char **server_msg = opaque;
    const char *p = strstr(msg, "server error message: ");

    if (p) {
        g_free(*server_msg);
        *server_msg = g_strdup(p + strlen("server error message: "));
    }
    return 0;
}

/*
 * Wait until @done says so, the handle dies, or @deadline (ms, monotonic) passes:
 * 0, -ETIMEDOUT, or -errno from libnbd.
 */
static int nbd_wait(struct nbd_handle *h, bool (*done)(void *), void *opaque,
                    int64_t deadline)
{
    while (!done(opaque)) {
        int64_t left = deadline - now_ms();
        int r;

        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) {
            return -ENOTCONN;
        }
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        r = nbd_poll(h, MIN(left, 1000));
        if (r < 0) {
            int e = nbd_get_errno();
            return -(e ? e : EIO);
        }
    }
    return 0;
}

static bool h_not_connecting(void *opaque)
{
    struct nbd_handle *h = opaque;

    return !nbd_aio_is_connecting(h);
}

static bool h_closed(void *opaque)
{
    struct nbd_handle *h = opaque;

    return nbd_aio_is_closed(h) || nbd_aio_is_dead(h);
}

typedef struct OptDone {
    bool done;
    int err;
} OptDone;

static int opt_done_cb(void *opaque, int *error)
{
    OptDone *d = opaque;

    d->done = true;
    d->err = *error;
    return 1;
}

static bool opt_done(void *opaque)
{
    return ((OptDone *)opaque)->done;
}

/* QEMU's words for an NBD_OPT_GO the server refused (by libnbd's errno). */
static void go_error(GError **errp, int err, const char *server_msg, bool tls)
{
    const char *what;
    const char *hint = "";

    switch (err) {
    case ENOENT:
        what = "Requested export not available";
        break;
    case ENOTSUP:
        what = "TLS negotiation required before option 7 (go)";
        if (!tls) {
            hint = "\nDid you forget a valid tls-creds?";
        }
        break;
    case EINVAL:
        what = "Invalid parameters for option 7 (go)";
        break;
    case ESHUTDOWN:
        what = "Server shutting down before option 7 (go)";
        break;
    default:
        what = "Denied by server for option 7 (go)";
        break;
    }
    if (server_msg) {
        error_setg(errp, "%s%s\nserver reported: %s", what, hint, server_msg);
    } else {
        error_setg(errp, "%s%s", what, hint);
    }
}

/*
 * QEMU's words for the TLS failures libnbd reports in its own (false: not a
 * TLS failure): the server refusing STARTTLS, a failed handshake, the server
 * hanging up after the handshake.
 */
static bool tls_error(GError **errp, const char *server_msg)
{
    const char *msg = nbd_get_error();
    const char *p;

    if (!msg) {
        return false;
    }
    if (strstr(msg, "server refused TLS")) {
        if (server_msg) {
            error_setg(errp, "Denied by server for option 5 (starttls)\n"
                       "server reported: %s", server_msg);
        } else {
            error_setg(errp, "Denied by server for option 5 (starttls)");
        }
        return true;
    }
    if (strstr(msg, "gnutls_record_recv: The TLS connection was non-properly "
               "terminated")) {
        /* the server hung up after the handshake (it refused the client) */
        error_setg(errp, "Failed to read option reply: Cannot read from TLS "
                   "channel: Software caused connection abort");
        return true;
    }
    p = strstr(msg, "gnutls_handshake: ");
    if (p) {
        g_autofree char *why = g_strdup(p + strlen("gnutls_handshake: "));
        char *end = strstr(why, " (-");

        if (end) {
            *end = 0;
        }
        error_setg(errp, "TLS handshake failed: %s", why);
        return true;
    }
    return false;
}

struct nbd_handle *nbd_client_connect(const NbdServerAddr *addr, const char *export,
                                      const char *tls_creds, const char *const *metas,
                                      bool opt_mode, double timeout_s,
                                      char **server_msg, GError **errp)
{
    struct nbd_handle *h;
    int64_t deadline = now_ms() + (int64_t)(timeout_s * 1000);
    int fd, ret;

    fd = nbd_socket_connect(addr, errp);
    if (fd < 0) {
        return NULL;
    }
    h = nbd_create();
    if (!h) {
        close(fd);
        error_setg(errp, "%s", nbd_get_error());
        return NULL;
    }
    nbd_set_debug_callback(h, (nbd_debug_callback) {
                               .callback = nbd_debug_cb, .user_data = server_msg });
    nbd_set_debug(h, true);
    nbd_set_export_name(h, export ? export : "");
    nbd_set_full_info(h, true);
    nbd_set_pread_initialize(h, false);
    for (int i = 0; metas && metas[i]; i++) {
        nbd_add_meta_context(h, metas[i]);
    }
    if (tls_creds) {
        JsonObject *o = user_object_find(tls_creds);
        const char *dir = opts_peek_str(o, "dir");

        nbd_set_tls(h, LIBNBD_TLS_REQUIRE);
        if (!strcmp(opts_peek_str(o, "qom-type"), "tls-creds-psk")) {
            g_autofree char *keys = g_build_filename(dir, "keys.psk", NULL);
            const char *user = opts_peek_str(o, "username");

            /* QEMU's default username */
            nbd_set_tls_username(h, user ? user : "qemu");
            nbd_set_tls_psk_file(h, keys);
        } else {
            nbd_set_tls_certificates(h, dir);
            if (addr->is_unix) {
                nbd_set_tls_verify_peer(h, false);
            }
        }
    }
    nbd_set_opt_mode(h, true);
    fd = oldstyle_fixup(fd);
    if (nbd_aio_connect_socket(h, fd) < 0) {
        close(fd);
        if (tls_creds && tls_error(errp, opt_mode ? NULL : *server_msg)) {
            goto fail;
        }
        goto fail_libnbd;
    }
    ret = nbd_wait(h, h_not_connecting, h, deadline);
    if (ret == -ETIMEDOUT) {
        error_setg(errp, "Server did not complete the handshake in time");
        goto fail;
    }
    if (ret < 0 || nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) {
        if (tls_creds && tls_error(errp, opt_mode ? NULL : *server_msg)) {
            goto fail;
        }
        goto fail_handshake;
    }
    if (nbd_aio_is_negotiating(h) && !opt_mode) {
        OptDone d = { 0 };

        if (nbd_aio_opt_go(h, (nbd_completion_callback) {
                               .callback = opt_done_cb, .user_data = &d }) < 0) {
            goto fail_libnbd;
        }
        ret = nbd_wait(h, opt_done, &d, deadline);
        if (ret == -ETIMEDOUT) {
            error_setg(errp, "Server did not complete the handshake in time");
            goto fail;
        }
        if (ret < 0) {
            goto fail_handshake;
        }
        if (d.err) {
            go_error(errp, d.err, *server_msg, tls_creds != NULL);
            /* say goodbye (NBD_OPT_ABORT) rather than just hang up */
            if (nbd_aio_opt_abort(h) == 0) {
                nbd_wait(h, h_closed, h, now_ms() + 1000);
            }
            goto fail;
        }
    }
    nbd_set_debug(h, false);
    return h;

fail_handshake:
    error_setg(errp, "Failed to read initial magic: Unexpected end-of-file before "
               "all data were read");
    goto fail;
fail_libnbd:
    error_setg(errp, "%s", nbd_get_error());
fail:
    nbd_close(h);
    return NULL;
}

static int nbd_connect_once(BDRVNBDState *s, GError **errp)
{
    const char *metas[2] = { s->meta, NULL };
    struct nbd_handle *h;

    g_clear_pointer(&s->server_msg, g_free);
    h = nbd_client_connect(&s->addr, s->export, s->tls_creds, metas, false,
                           MAX(s->open_timeout, NBD_HANDSHAKE_TIMEOUT_S),
                           &s->server_msg, errp);
    if (!h) {
        return -EIO;
    }
    if (s->h) {
        nbd_close(s->h);
    }
    s->h = h;
    return 0;
}

/* Read what the server offers; on a reconnect it must be the same export. */
static int nbd_read_info(BlockDriverState *bs, GError **errp)
{
    BDRVNBDState *s = bs->opaque;
    int64_t size = nbd_get_size(s->h);
    int64_t min = nbd_get_block_size(s->h, LIBNBD_SIZE_MINIMUM);
    int64_t max = nbd_get_block_size(s->h, LIBNBD_SIZE_MAXIMUM);

    if (size < 0) {
        error_setg(errp, "%s", nbd_get_error());
        return -EIO;
    }
    s->size = size;
    s->read_only = nbd_is_read_only(s->h) == 1;
    s->can_flush = nbd_can_flush(s->h) == 1;
    s->can_trim = nbd_can_trim(s->h) == 1;
    s->can_zero = nbd_can_zero(s->h) == 1;
    s->can_fast_zero = nbd_can_fast_zero(s->h) == 1;
    s->has_meta = s->meta && nbd_can_meta_context(s->h, s->meta) == 1;
    s->max_request = max > 0 ? MIN(max, NBD_MAX_REQUEST) : NBD_MAX_REQUEST;
    bs->request_alignment = min > 0 ? min : 1;
    s->max_request = QEMU_ALIGN_DOWN(s->max_request, bs->request_alignment);
    return 0;
}

/* ---- requests ---- */

typedef struct Cmd {
    struct nbd_handle *h;
    int64_t cookie;
    int ret;            /* 0 until it completes: then 1, or -errno */
} Cmd;

static bool cmd_done(void *opaque)
{
    Cmd *c = opaque;
    int r = nbd_aio_command_completed(c->h, c->cookie);

    if (r < 0) {
        int e = nbd_get_errno();
        c->ret = -(e ? e : EIO);
    } else if (r > 0) {
        c->ret = 1;
    }
    return c->ret != 0;
}

/* Has the connection been lost (as opposed to the server failing a request)? */
static bool nbd_conn_lost(BDRVNBDState *s)
{
    return !s->h || nbd_aio_is_dead(s->h) || nbd_aio_is_closed(s->h);
}

/* Reconnect within reconnect-delay; 0 once connected again. */
static int nbd_reconnect(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    int64_t deadline = now_ms() + (int64_t)(s->reconnect_delay * 1000);
    int64_t wait = 50;

    while (true) {
        g_autoptr(GError) err = NULL;
        int64_t old_size = s->size;

        if (nbd_connect_once(s, &err) == 0 && nbd_read_info(bs, &err) == 0) {
            if (s->size == old_size) {
                return 0;
            }
            s->size = old_size;
            return -EIO;
        }
        if (now_ms() + wait > deadline) {
            return -EIO;
        }
        g_usleep(wait * 1000);
        wait = MIN(wait * 2, 1000);
    }
}

typedef int64_t (*NbdIssueFn)(BDRVNBDState *s, void *opaque);

/*
 * Issue a request with @issue and wait for it. When the connection is lost and
 * reconnect-delay allows, reconnect and send it again.
 */
static int nbd_do_request(BlockDriverState *bs, NbdIssueFn issue, void *opaque)
{
    BDRVNBDState *s = bs->opaque;

    while (true) {
        Cmd c = { .h = s->h };
        int ret;

        if (nbd_conn_lost(s)) {
            if (s->reconnect_delay <= 0 || nbd_reconnect(bs) < 0) {
                return -EIO;
            }
            c.h = s->h;
        }
        c.cookie = issue(s, opaque);
        if (c.cookie < 0) {
            ret = -(nbd_get_errno() ? nbd_get_errno() : EIO);
        } else {
            ret = nbd_wait(s->h, cmd_done, &c, now_ms() + (int64_t)(s->timeout * 1000));
            if (ret == 0 && c.ret < 0) {
                ret = c.ret;
            }
            if (ret == -ETIMEDOUT) {
                /* the server stopped answering: this connection is done for */
                nbd_shutdown(s->h, LIBNBD_SHUTDOWN_ABANDON_PENDING);
                nbd_close(s->h);
                s->h = NULL;
            }
        }
        if (ret == 0) {
            return 0;
        }
        if (!nbd_conn_lost(s) || s->reconnect_delay <= 0) {
            return ret == -ENOTCONN ? -EIO : ret;
        }
    }
}

typedef struct IoArgs {
    int64_t offset;
    int64_t bytes;
    void *buf;
    uint32_t flags;
    /* block status */
    int64_t *pnum;
    uint32_t *status;
} IoArgs;

static int64_t issue_pread(BDRVNBDState *s, void *opaque)
{
    IoArgs *a = opaque;

    return nbd_aio_pread(s->h, a->buf, a->bytes, a->offset, NBD_NULL_COMPLETION, 0);
}

static int64_t issue_pwrite(BDRVNBDState *s, void *opaque)
{
    IoArgs *a = opaque;

    return nbd_aio_pwrite(s->h, a->buf, a->bytes, a->offset, NBD_NULL_COMPLETION,
                          a->flags);
}

static int64_t issue_zero(BDRVNBDState *s, void *opaque)
{
    IoArgs *a = opaque;

    return nbd_aio_zero(s->h, a->bytes, a->offset, NBD_NULL_COMPLETION, a->flags);
}

static int64_t issue_trim(BDRVNBDState *s, void *opaque)
{
    IoArgs *a = opaque;

    return nbd_aio_trim(s->h, a->bytes, a->offset, NBD_NULL_COMPLETION, 0);
}

static int64_t issue_flush(BDRVNBDState *s, void *opaque)
{
    return nbd_aio_flush(s->h, NBD_NULL_COMPLETION, 0);
}

static int nbd_pread_drv(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                         int flags)
{
    BDRVNBDState *s = bs->opaque;
    uint8_t *p = buf;

    if (bdrv_aio_nowait()) {
        return -EAGAIN;     /* the network always waits: a worker thread reads it */
    }
    while (bytes > 0) {
        IoArgs a = { .offset = offset, .buf = p };
        int ret;

        if (offset >= s->size) {
            /* past the end of the export: zeros, as a protocol reads them */
            memset(p, 0, bytes);
            return 0;
        }
        a.bytes = MIN(MIN(bytes, s->max_request), s->size - offset);
        ret = nbd_do_request(bs, issue_pread, &a);
        if (ret < 0) {
            return ret;
        }
        offset += a.bytes;
        p += a.bytes;
        bytes -= a.bytes;
    }
    return 0;
}

static int nbd_pwrite_drv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          const void *buf, int flags)
{
    BDRVNBDState *s = bs->opaque;
    const uint8_t *p = buf;

    if (s->read_only) {
        return -EACCES;
    }
    if (offset + bytes > s->size) {
        return -EIO;
    }
    while (bytes > 0) {
        IoArgs a = { .offset = offset, .buf = (void *)p };
        int ret;

        a.bytes = MIN(bytes, s->max_request);
        ret = nbd_do_request(bs, issue_pwrite, &a);
        if (ret < 0) {
            return ret;
        }
        offset += a.bytes;
        p += a.bytes;
        bytes -= a.bytes;
    }
    return 0;
}

static int nbd_zero_trim(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         NbdIssueFn issue, uint32_t nbd_flags)
{
    uint32_t align = MAX(bs->request_alignment, 1);
    int64_t chunk = QEMU_ALIGN_DOWN(NBD_MAX_ZERO_TRIM, align);

    while (bytes > 0) {
        IoArgs a = { .offset = offset, .bytes = MIN(bytes, chunk), .flags = nbd_flags };
        int ret = nbd_do_request(bs, issue, &a);

        if (ret < 0) {
            return ret;
        }
        offset += a.bytes;
        bytes -= a.bytes;
    }
    return 0;
}

static int nbd_pwrite_zeroes_drv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                 int flags)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t nbd_flags = 0;

    if (s->read_only) {
        return -EACCES;
    }
    if (offset + bytes > s->size) {
        return -EIO;
    }
    if (!s->can_zero) {
        return -ENOTSUP;
    }
    if (flags & BDRV_REQ_NO_FALLBACK) {
        if (!s->can_fast_zero) {
            return -ENOTSUP;
        }
        nbd_flags |= LIBNBD_CMD_FLAG_FAST_ZERO;
    }
    if (!(flags & BDRV_REQ_MAY_UNMAP)) {
        nbd_flags |= LIBNBD_CMD_FLAG_NO_HOLE;
    }
    return nbd_zero_trim(bs, offset, bytes, issue_zero, nbd_flags);
}

static int nbd_pdiscard_drv(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVNBDState *s = bs->opaque;

    if (!s->can_trim || s->read_only) {
        return 0;
    }
    if (offset >= s->size) {
        return 0;
    }
    return nbd_zero_trim(bs, offset, MIN(bytes, s->size - offset), issue_trim, 0);
}

static int nbd_flush_drv(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    if (!s->can_flush || s->read_only) {
        return 0;
    }
    return nbd_do_request(bs, issue_flush, NULL);
}

/* ---- block status ---- */

typedef struct ExtentArgs {
    const char *meta;
    bool is_depth;
    int64_t pnum;
    uint32_t flags;
    bool got;
} ExtentArgs;

static int extent_cb(void *opaque, const char *metacontext, uint64_t offset,
                     uint32_t *entries, size_t nr_entries, int *error)
{
    ExtentArgs *e = opaque;

    if (strcmp(metacontext, e->meta) || nr_entries < 2 || e->got) {
        return 0;
    }
    e->pnum = entries[0];
    e->flags = entries[1];
    if (e->is_depth && e->flags > 2) {
        e->flags = 2;
    }
    e->got = true;
    return 0;
}

static int64_t issue_block_status(BDRVNBDState *s, void *opaque)
{
    IoArgs *a = opaque;
    ExtentArgs *e = a->buf;

    e->got = false;
    return nbd_aio_block_status(s->h, a->bytes, a->offset,
                                (nbd_extent_callback) { .callback = extent_cb,
                                                        .user_data = e },
                                NBD_NULL_COMPLETION, LIBNBD_CMD_FLAG_REQ_ONE);
}

static int nbd_block_status_drv(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVNBDState *s = bs->opaque;
    ExtentArgs e = { .meta = s->meta, .is_depth = s->meta_is_depth };
    IoArgs a = { .offset = offset, .buf = &e };
    int ret;

    *map = offset;
    *file = bs;
    if (offset >= s->size) {
        *pnum = bytes;
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    }
    bytes = MIN(bytes, s->size - offset);
    if (!s->has_meta) {
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    a.bytes = MIN(bytes, UINT32_MAX & ~(int64_t)(MAX(bs->request_alignment, 1) - 1));
    ret = nbd_do_request(bs, issue_block_status, &a);
    if (ret < 0) {
        return ret;
    }
    if (!e.got || e.pnum <= 0) {
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    *pnum = MIN(e.pnum, bytes);
    ret = (e.flags & LIBNBD_STATE_HOLE ? 0 : BDRV_BLOCK_DATA) |
          (e.flags & LIBNBD_STATE_ZERO ? BDRV_BLOCK_ZERO : 0);
    /* a hole that does not read as zeros is not allocated: no offset either */
    return ret ? ret | BDRV_BLOCK_OFFSET_VALID : 0;
}

/* ---- open and close ---- */

static int nbd_parse_server(JsonObject *server, NbdServerAddr *addr, GError **errp)
{
    g_autofree char *type = opts_get_str(server, "type");

    if (!type) {
        error_setg(errp, "Parameter 'type' is missing");
        return -EINVAL;
    }
    if (!strcmp(type, "unix")) {
        addr->is_unix = true;
        addr->path = opts_get_str(server, "path");
        if (!addr->path) {
            error_setg(errp, "Parameter 'path' is missing");
            return -EINVAL;
        }
    } else if (!strcmp(type, "inet")) {
        addr->is_unix = false;
        addr->host = opts_get_str(server, "host");
        if (!addr->host) {
            error_setg(errp, "Parameter 'host' is missing");
            return -EINVAL;
        }
        addr->port = opts_get_str(server, "port");
        if (!addr->port) {
            error_setg(errp, "Parameter 'port' is missing");
            return -EINVAL;
        }
    } else {
        error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
        return -EINVAL;
    }
    return 0;
}

static double nbd_get_seconds(JsonObject *opts, const char *key, GError **errp)
{
    int64_t v;

    if (!opts_has(opts, key)) {
        return 0;
    }
    v = opts_get_int(opts, key, 0, errp);
    if (v < 0) {
        error_setg(errp, "Parameter '%s' expects uint32_t", key);
        return 0;
    }
    return v;
}

static int nbd_open_state(BlockDriverState *bs, JsonObject *opts, int flags,
                          GError **errp)
{
    BDRVNBDState *s = bs->opaque;
    g_autofree char *filename = opts_get_str(opts, "filename");
    JsonObject *server = opts_get_object(opts, "server");
    GError *local = NULL;
    g_autofree char *tls_creds = opts_get_str(opts, "tls-creds");
    int ret;

    if (filename) {
        if (server || opts_has(opts, "host") || opts_has(opts, "path") ||
            opts_has(opts, "export")) {
            error_setg(errp, "Block protocol 'nbd' doesn't support the option "
                       "'filename'");
            return -EINVAL;
        }
        if (!nbd_parse_filename(filename, &s->addr, &s->export, errp)) {
            return -EINVAL;
        }
    } else if (server) {
        if (opts_has(opts, "host") || opts_has(opts, "path")) {
            error_setg(errp, "Cannot use 'server' and path/host at the same time");
            return -EINVAL;
        }
        ret = nbd_parse_server(server, &s->addr, errp);
        if (ret < 0) {
            return ret;
        }
    } else if (opts_has(opts, "path")) {
        if (opts_has(opts, "host")) {
            error_setg(errp, "path and host may not be used at the same time");
            return -EINVAL;
        }
        s->addr.is_unix = true;
        s->addr.path = opts_get_str(opts, "path");
    } else if (opts_has(opts, "host")) {
        s->addr.host = opts_get_str(opts, "host");
        s->addr.port = opts_has(opts, "port") ? opts_get_str(opts, "port")
                                              : g_strdup(NBD_DEFAULT_PORT);
    } else {
        error_setg(errp, "NBD server address missing");
        return -EINVAL;
    }
    if (!s->export) {
        s->export = opts_has(opts, "export") ? opts_get_str(opts, "export")
                                             : g_strdup("");
    }
    s->reconnect_delay = nbd_get_seconds(opts, "reconnect-delay", &local);
    if (!local) {
        s->open_timeout = nbd_get_seconds(opts, "open-timeout", &local);
    }
    if (!local) {
        s->timeout = opts_has(opts, "x-timeout") ?
                     nbd_get_seconds(opts, "x-timeout", &local) : NBD_DEFAULT_TIMEOUT_S;
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (s->timeout <= 0) {
        s->timeout = NBD_DEFAULT_TIMEOUT_S;
    }
    if (tls_creds) {
        g_autofree char *dir = nbd_tls_creds_dir(tls_creds, errp);

        if (!dir) {
            return -EINVAL;
        }
        s->tls_creds = g_strdup(tls_creds);
    }
    s->meta = opts_get_str(opts, "x-dirty-bitmap");
    if (!s->meta) {
        s->meta = g_strdup(LIBNBD_CONTEXT_BASE_ALLOCATION);
    }
    s->meta_is_depth = !strcmp(s->meta, "qemu:allocation-depth");

    g_free(bs->filename);
    bs->filename = nbd_canonical_name(&s->addr, s->export);

    /* open-timeout: keep trying to connect until it runs out */
    {
        int64_t deadline = now_ms() + (int64_t)(s->open_timeout * 1000);

        while (true) {
            GError *cerr = NULL;

            ret = nbd_connect_once(s, &cerr);
            if (ret == 0) {
                break;
            }
            if (now_ms() >= deadline) {
                error_propagate(errp, cerr);
                return ret;
            }
            g_error_free(cerr);
            g_usleep(MIN(100, MAX(1, deadline - now_ms())) * 1000);
        }
    }
    ret = nbd_read_info(bs, errp);
    if (ret < 0) {
        return ret;
    }
    if (strcmp(s->meta, LIBNBD_CONTEXT_BASE_ALLOCATION) && !s->has_meta) {
        error_setg(errp, "Could not open image: Invalid argument");
        return -EINVAL;
    }
    if ((flags & BDRV_O_RDWR) && s->read_only) {
        error_setg(errp, "Could not open '%s': Read-only file system", bs->filename);
        return -EACCES;
    }
    return 0;
}

static void nbd_close_drv(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    if (s->h) {
        if (nbd_aio_is_ready(s->h)) {
            nbd_shutdown(s->h, 0);
        }
        nbd_close(s->h);
        s->h = NULL;
    }
    nbd_server_addr_clear(&s->addr);
    g_clear_pointer(&s->export, g_free);
    g_clear_pointer(&s->tls_creds, g_free);
    g_clear_pointer(&s->meta, g_free);
    g_clear_pointer(&s->server_msg, g_free);
}

/* The block layer does not close a node whose open failed: free what we got. */
static int nbd_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    int ret = nbd_open_state(bs, opts, flags, errp);

    if (ret < 0) {
        nbd_close_drv(bs);
    }
    return ret;
}

static int64_t nbd_getlength_drv(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    return s->size;
}

static int64_t nbd_allocated_size(BlockDriverState *bs)
{
    return -ENOTSUP;
}

static int nbd_truncate_drv(BlockDriverState *bs, int64_t offset, bool exact,
                            PreallocMode prealloc, int flags, GError **errp)
{
    BDRVNBDState *s = bs->opaque;

    if (offset != s->size && exact) {
        error_setg(errp, "Cannot resize NBD nodes");
        return -ENOTSUP;
    }
    if (offset > s->size) {
        error_setg(errp, "Cannot grow NBD nodes");
        return -EINVAL;
    }
    return 0;
}

/* The server's address as QEMU canonicalises it ("nbd://host:port/export"). */
static char *nbd_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                  bool has_strong)
{
    BDRVNBDState *s = bs->opaque;

    return nbd_canonical_name(&s->addr, s->export);
}

BlockDriver bdrv_nbd = {
    .format_name = "nbd",
    .protocol_name = "nbd",
    .protocol_aliases = nbd_protocol_aliases,
    .create_simple = true,
    .instance_size = sizeof(BDRVNBDState),
    .is_protocol = true,
    .high_latency = true,
    .runtime_opts = nbd_runtime_opts,
    .strong_opts = nbd_strong_opts,
    .refresh_filename = nbd_refresh_filename,
    .open = nbd_open,
    .close = nbd_close_drv,
    .pread = nbd_pread_drv,
    .pwrite = nbd_pwrite_drv,
    .pwrite_zeroes = nbd_pwrite_zeroes_drv,
    .pdiscard = nbd_pdiscard_drv,
    .flush_to_disk = nbd_flush_drv,
    .getlength = nbd_getlength_drv,
    .get_allocated_file_size = nbd_allocated_size,
    .truncate = nbd_truncate_drv,
    .block_status = nbd_block_status_drv,
};

char *nbd_tls_creds_dir(const char *id, GError **errp)
{
    JsonObject *o = user_object_find(id);
    const char *type = o ? opts_peek_str(o, "qom-type") : NULL;
    const char *endpoint;

    if (!o || !type || !g_str_has_prefix(type, "tls-creds")) {
        error_setg(errp, "No TLS credentials with id '%s'", id);
        return NULL;
    }
    endpoint = opts_peek_str(o, "endpoint");
    if (endpoint && strcmp(endpoint, "client")) {
        error_setg(errp, "Expecting TLS credentials with a client endpoint");
        return NULL;
    }
    if ((strcmp(type, "tls-creds-x509") && strcmp(type, "tls-creds-psk")) ||
        !opts_peek_str(o, "dir")) {
        error_setg(errp, "TLS credentials '%s' are not supported by this NBD client",
                   id);
        return NULL;
    }
    return g_strdup(opts_peek_str(o, "dir"));
}
