/*
 * QMP monitors and their character devices: a --chardev is a listening UNIX socket
 * (one client at a time, as QEMU's socket chardev: further clients wait in the
 * listen backlog until the current one leaves) or stdio; a --monitor binds a QMP
 * monitor to one. Per client: the greeting, a JSON stream of requests, a queue of
 * parsed requests dispatched in order (a request that needs the block layer while
 * a job holds it waits on a timer, and reading pauses meanwhile), buffered
 * non-blocking output with CRLF line ends, and event delivery.
 */
#include "daemon.h"
#include "qmp-dispatch.h"
#include "qmp-json.h"
#include <sys/socket.h>
#include <sys/un.h>

#define READ_CHUNK      65536
#define OUTBUF_HIGH     (1 * MiB)   /* stop reading while this much is unsent */
#define RETRY_MS        10

typedef struct Chardev {
    char *id;
    bool is_stdio;
    char *path;             /* socket path (server) */
    int listen_fd;
    guint listen_watch;
    Monitor *mon;
} Chardev;

typedef struct PendingReq {
    JsonNode *req;
    GError *err;
} PendingReq;

struct Monitor {
    Chardev *chr;
    bool pretty;
    int in_fd, out_fd;      /* -1: no client */
    guint in_watch, out_watch, retry_timer;
    JsonStream *stream;
    GQueue pending;         /* of PendingReq */
    GByteArray *outbuf;
    QmpSession session;
    JsonNode *quit_reply;   /* sent at shutdown, after the events it causes */
};

static GPtrArray *chardevs;     /* of Chardev* */
static GPtrArray *monitors;     /* of Monitor* */

static void monitor_disconnect(Monitor *mon);
static void monitor_update_read_watch(Monitor *mon);
static void monitor_process(Monitor *mon);

JsonObject *qsd_timestamp(void)
{
    JsonObject *ts = json_object_new();
    gint64 now = g_get_real_time();

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    return ts;
}

/* ---- output ---- */

static gboolean monitor_out_ready(GIOChannel *ch, GIOCondition cond, gpointer opaque);

static void monitor_flush(Monitor *mon)
{
    while (mon->out_fd >= 0 && mon->outbuf->len > 0) {
        ssize_t n = write(mon->out_fd, mon->outbuf->data, mon->outbuf->len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            if (!mon->out_watch) {
                GIOChannel *ch = g_io_channel_unix_new(mon->out_fd);
                mon->out_watch = g_io_add_watch(ch, G_IO_OUT | G_IO_ERR | G_IO_HUP,
                                                monitor_out_ready, mon);
                g_io_channel_unref(ch);
            }
            return;
        }
        if (n <= 0) {
            monitor_disconnect(mon);
            return;
        }
        g_byte_array_remove_range(mon->outbuf, 0, n);
    }
}

static gboolean monitor_out_ready(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;

    mon->out_watch = 0;
    monitor_flush(mon);
    if (mon->in_fd >= 0) {
        monitor_update_read_watch(mon);
        monitor_process(mon);
    }
    return G_SOURCE_REMOVE;
}

/*
 * QEMU's pretty form for monitors: CRLF line ends, 4-space indents, and empty
 * objects and arrays opened and closed on lines of their own.
 */
static void pretty_print(GString *s, JsonNode *n, int level)
{
    bool obj = JSON_NODE_HOLDS_OBJECT(n);
    GList *keys = NULL, *l;
    guint len;

    if (!obj && !JSON_NODE_HOLDS_ARRAY(n)) {
        g_autofree char *text = json_node_to_string_qemu(n, false);
        g_string_append(s, text);
        return;
    }
    if (obj) {
        keys = json_object_get_members(json_node_get_object(n));
        len = g_list_length(keys);
    } else {
        len = json_array_get_length(json_node_get_array(n));
    }
    g_string_append_c(s, obj ? '{' : '[');
    l = keys;
    for (guint i = 0; i < len; i++) {
        g_string_append(s, i ? ",\r\n" : "\r\n");
        for (int j = 0; j <= level; j++) {
            g_string_append(s, "    ");
        }
        if (obj) {
            JsonNode *key = json_node_new(JSON_NODE_VALUE);
            g_autofree char *k = NULL;

            json_node_set_string(key, l->data);
            k = json_node_to_string_qemu(key, false);
            json_node_unref(key);
            g_string_append_printf(s, "%s: ", k);
            pretty_print(s, json_object_get_member(json_node_get_object(n), l->data),
                         level + 1);
            l = l->next;
        } else {
            pretty_print(s, json_array_get_element(json_node_get_array(n), i),
                         level + 1);
        }
    }
    g_string_append(s, "\r\n");
    for (int j = 0; j < level; j++) {
        g_string_append(s, "    ");
    }
    g_string_append_c(s, obj ? '}' : ']');
    g_list_free(keys);
}

static char *monitor_format(Monitor *mon, JsonNode *msg)
{
    GString *s;

    if (!mon->pretty) {
        return json_node_to_string_qemu(msg, false);
    }
    s = g_string_new(NULL);
    pretty_print(s, msg, 0);
    return g_string_free(s, FALSE);
}

static void monitor_send(Monitor *mon, JsonNode *msg)
{
    g_autofree char *text = monitor_format(mon, msg);

    if (mon->out_fd < 0) {
        return;
    }
    g_byte_array_append(mon->outbuf, (const guint8 *)text, strlen(text));
    g_byte_array_append(mon->outbuf, (const guint8 *)"\r\n", 2);
    if (!mon->out_watch) {
        monitor_flush(mon);
    }
}

void qsd_emit_event(const char *name, JsonObject *data)
{
    JsonObject *ev = json_object_new();
    JsonNode *node;

    json_object_set_object_member(ev, "timestamp", qsd_timestamp());
    json_object_set_string_member(ev, "event", name);
    if (data) {
        json_object_set_object_member(ev, "data", data);
    }
    node = qjson_object_node(ev);
    for (guint i = 0; monitors && i < monitors->len; i++) {
        Monitor *mon = monitors->pdata[i];
        if (mon->in_fd >= 0 && mon->session.negotiated) {
            monitor_send(mon, node);
        }
    }
    json_node_unref(node);
}

/* ---- input ---- */

static void pending_free(PendingReq *p)
{
    if (p->req) {
        json_node_unref(p->req);
    }
    if (p->err) {
        g_error_free(p->err);
    }
    g_free(p);
}

static void monitor_got_value(void *opaque, JsonNode *value, GError *err)
{
    Monitor *mon = opaque;
    PendingReq *p = g_new0(PendingReq, 1);

    p->req = value;
    p->err = err ? g_error_copy(err) : NULL;
    g_queue_push_tail(&mon->pending, p);
}

static gboolean monitor_retry(gpointer opaque)
{
    Monitor *mon = opaque;

    mon->retry_timer = 0;
    monitor_process(mon);
    monitor_update_read_watch(mon);
    return G_SOURCE_REMOVE;
}

/* Dispatch queued requests in order until done or one must wait. */
static void monitor_process(Monitor *mon)
{
    while (mon->in_fd >= 0 && !g_queue_is_empty(&mon->pending) &&
           mon->outbuf->len < OUTBUF_HIGH) {
        PendingReq *p = g_queue_peek_head(&mon->pending);
        JsonNode *reply = NULL;

        QmpDispatchResult r = qmp_dispatch(mon, p->req, p->err, &mon->session,
                                           &reply);

        if (mon->in_fd < 0) {
            /* the client went away meanwhile (its queue is gone with it) */
            if (reply) {
                json_node_unref(reply);
            }
            return;
        }
        if (r == QMP_DISPATCH_RETRY) {
            if (!mon->retry_timer) {
                mon->retry_timer = g_timeout_add(RETRY_MS, monitor_retry, mon);
            }
            return;
        }
        g_queue_pop_head(&mon->pending);
        pending_free(p);
        if (reply && qsd_quit_requested() && !mon->quit_reply) {
            /* as QEMU's daemon: the reply comes after the shutdown's events */
            mon->quit_reply = reply;
            return;
        }
        if (reply) {
            monitor_send(mon, reply);
            json_node_unref(reply);
        }
    }
}

/* Has a socket client closed its end (nothing more to read, ever)? */
static bool peer_gone(Monitor *mon)
{
    char c;

    if (mon->chr->is_stdio) {
        return false;
    }
    return recv(mon->in_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static gboolean monitor_readable(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;
    char *buf = g_malloc(READ_CHUNK);
    ssize_t n;

    do {
        n = read(mon->in_fd, buf, READ_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
        g_free(buf);
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        g_free(buf);
        mon->in_watch = 0;
        monitor_disconnect(mon);
        return G_SOURCE_REMOVE;
    }
    json_stream_feed(mon->stream, buf, n);
    g_free(buf);
    if (peer_gone(mon)) {
        /* as QEMU: requests of a client that has hung up are dropped */
        mon->in_watch = 0;
        monitor_disconnect(mon);
        return G_SOURCE_REMOVE;
    }
    monitor_process(mon);
    if (mon->in_fd < 0) {
        return G_SOURCE_REMOVE;     /* disconnected while sending */
    }
    if (!g_queue_is_empty(&mon->pending) || mon->outbuf->len >= OUTBUF_HIGH) {
        mon->in_watch = 0;          /* pause reading until the backlog is gone */
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void monitor_update_read_watch(Monitor *mon)
{
    bool want = mon->in_fd >= 0 && g_queue_is_empty(&mon->pending) &&
                mon->outbuf->len < OUTBUF_HIGH;

    if (want && !mon->in_watch) {
        GIOChannel *ch = g_io_channel_unix_new(mon->in_fd);
        mon->in_watch = g_io_add_watch(ch, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                       monitor_readable, mon);
        g_io_channel_unref(ch);
    }
}

/* ---- clients ---- */

JsonNode *qmp_version_info(void);

static void monitor_greet(Monitor *mon)
{
    JsonObject *qmp = json_object_new(), *greeting = json_object_new();
    JsonArray *caps = json_array_new();
    JsonNode *node;

    json_array_add_string_element(caps, "oob");
    json_object_set_member(qmp, "version", qmp_version_info());
    json_object_set_array_member(qmp, "capabilities", caps);
    json_object_set_object_member(greeting, "QMP", qmp);
    node = qjson_object_node(greeting);
    monitor_send(mon, node);
    json_node_unref(node);
}

static void monitor_connect(Monitor *mon, int in_fd, int out_fd)
{
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->stream = json_stream_new(monitor_got_value, mon);
    mon->session = (QmpSession) { 0 };
    g_byte_array_set_size(mon->outbuf, 0);
    monitor_greet(mon);
    if (mon->in_fd >= 0) {
        monitor_update_read_watch(mon);
    }
}

static gboolean chardev_accept(GIOChannel *ch, GIOCondition cond, gpointer opaque);

static void chardev_listen_watch(Chardev *chr)
{
    if (chr->listen_fd >= 0 && !chr->listen_watch) {
        GIOChannel *ch = g_io_channel_unix_new(chr->listen_fd);
        chr->listen_watch = g_io_add_watch(ch, G_IO_IN, chardev_accept, chr);
        g_io_channel_unref(ch);
    }
}

static void monitor_disconnect(Monitor *mon)
{
    bool is_stdio = mon->chr->is_stdio;

    if (mon->in_fd < 0) {
        return;
    }
    if (mon->in_watch) {
        g_source_remove(mon->in_watch);
        mon->in_watch = 0;
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
    if (mon->retry_timer) {
        g_source_remove(mon->retry_timer);
        mon->retry_timer = 0;
    }
    g_queue_clear_full(&mon->pending, (GDestroyNotify)pending_free);
    json_stream_free(mon->stream);
    mon->stream = NULL;
    if (!is_stdio) {
        close(mon->in_fd);
    }
    mon->in_fd = mon->out_fd = -1;
    g_byte_array_set_size(mon->outbuf, 0);
    mon->session = (QmpSession) { 0 };
    if (!is_stdio) {
        chardev_listen_watch(mon->chr);
    }
}

static gboolean chardev_accept(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    int fd = accept4(chr->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        return G_SOURCE_CONTINUE;
    }
    if (!chr->mon) {
        close(fd);          /* no monitor on this chardev: nobody to talk to */
        return G_SOURCE_CONTINUE;
    }
    /* one client at a time: the next waits in the backlog */
    chr->listen_watch = 0;
    monitor_connect(chr->mon, fd, fd);
    return G_SOURCE_REMOVE;
}

/* ---- --chardev and --monitor ---- */

static Chardev *chardev_find(const char *id)
{
    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        Chardev *c = chardevs->pdata[i];
        if (!strcmp(c->id, id)) {
            return c;
        }
    }
    return NULL;
}


bool qsd_chardev_add(JsonObject *opts, GError **errp)
{
    const char *backend = opts_peek_str(opts, "backend");
    const char *id = opts_peek_str(opts, "id");
    GError *local = NULL;
    Chardev *chr;

    if (!id) {
        error_setg(errp, "chardev: no id specified");
        return false;
    }
    if (chardev_find(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    chr = g_new0(Chardev, 1);
    chr->id = g_strdup(id);
    chr->listen_fd = -1;
    if (backend && !strcmp(backend, "stdio")) {
        chr->is_stdio = true;
    } else if (backend && !strcmp(backend, "socket")) {
        const char *path = opts_peek_str(opts, "path");
        bool server = opts_get_bool(opts, "server", false, &local);
        bool wait = opts_get_bool(opts, "wait", true, &local);

        if (local) {
            error_propagate(errp, local);
            goto fail;
        }
        if (!path) {
            error_setg(errp, "chardev: socket: only UNIX sockets (path=) are supported");
            goto fail;
        }
        if (!server || wait) {
            error_setg(errp, "chardev: socket: only server=on,wait=off is supported");
            goto fail;
        }
        chr->path = g_strdup(path);
        chr->listen_fd = qsd_unix_listen(path, errp);
        if (chr->listen_fd < 0) {
            goto fail;
        }
    } else {
        error_setg(errp, "'%s' is not a valid char driver name", backend ? backend : "");
        goto fail;
    }
    if (!chardevs) {
        chardevs = g_ptr_array_new();
    }
    g_ptr_array_add(chardevs, chr);
    return true;

fail:
    g_free(chr->id);
    g_free(chr->path);
    g_free(chr);
    return false;
}

bool qsd_monitor_add(JsonObject *opts, GError **errp)
{
    const char *id = opts_peek_str(opts, "chardev");
    const char *mode = opts_peek_str(opts, "mode");
    GError *local = NULL;
    Chardev *chr;
    Monitor *mon;
    bool pretty;

    if (!id) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    if (mode && strcmp(mode, "control")) {
        error_setg(errp, "Only QMP is supported");
        return false;
    }
    pretty = opts_get_bool(opts, "pretty", false, &local);
    if (local) {
        error_propagate(errp, local);
        return false;
    }
    chr = chardev_find(id);
    if (!chr) {
        error_setg(errp, "chardev \"%s\" not found", id);
        return false;
    }
    if (chr->mon) {
        error_setg(errp, "Device '%s' is in use", id);
        return false;
    }
    mon = g_new0(Monitor, 1);
    mon->chr = chr;
    mon->pretty = pretty;
    mon->in_fd = mon->out_fd = -1;
    mon->outbuf = g_byte_array_new();
    g_queue_init(&mon->pending);
    chr->mon = mon;
    if (!monitors) {
        monitors = g_ptr_array_new();
    }
    g_ptr_array_add(monitors, mon);
    if (chr->is_stdio) {
        monitor_connect(mon, STDIN_FILENO, STDOUT_FILENO);
    } else {
        chardev_listen_watch(chr);
    }
    return true;
}

void qsd_monitor_close_all(void)
{
    for (guint i = 0; monitors && i < monitors->len; i++) {
        Monitor *mon = monitors->pdata[i];
        int flags;

        /* the reply to quit must reach the client: finish writing, blocking */
        if (mon->out_fd >= 0 && !mon->chr->is_stdio) {
            flags = fcntl(mon->out_fd, F_GETFL);
            fcntl(mon->out_fd, F_SETFL, flags & ~O_NONBLOCK);
        }
        if (mon->out_watch) {
            g_source_remove(mon->out_watch);
            mon->out_watch = 0;
        }
        if (mon->quit_reply) {
            monitor_send(mon, mon->quit_reply);
            json_node_unref(g_steal_pointer(&mon->quit_reply));
        }
        monitor_flush(mon);
        monitor_disconnect(mon);
        g_byte_array_unref(mon->outbuf);
        g_free(mon);
    }
    for (guint i = 0; chardevs && i < chardevs->len; i++) {
        Chardev *chr = chardevs->pdata[i];
        if (chr->listen_watch) {
            g_source_remove(chr->listen_watch);
        }
        if (chr->listen_fd >= 0) {
            close(chr->listen_fd);
            unlink(chr->path);
        }
        g_free(chr->id);
        g_free(chr->path);
        g_free(chr);
    }
    if (monitors) {
        g_ptr_array_free(monitors, TRUE);
        monitors = NULL;
    }
    if (chardevs) {
        g_ptr_array_free(chardevs, TRUE);
        chardevs = NULL;
    }
}
