/*
 * The NBD server, served from the GLib main loop over UNIX and TCP sockets:
 * connections (accepting, buffering, the client flags; the options are
 * nbd-negotiate.c's, the TLS session nbd-tls.c's) and the
 * transmission phase (READ with
 * structured replies that skip holes, WRITE, FLUSH, TRIM, CACHE, WRITE_ZEROES,
 * BLOCK_STATUS with one chunk per selected context, DISC), with the meta contexts
 * base:allocation, qemu:allocation-depth and any number of qemu:dirty-bitmap:NAME,
 * numbered as QEMU numbers them. Shared by the storage daemon
 * and qemu-nbd (which supply the export registry and the block layer lock).
 * Each connection buffers its input and output (consumed from a moving start,
 * so that large transfers are not shifted byte by byte). Complete messages are
 * handled in order with the block layer lock held (block_io_begin); READ,
 * WRITE, WRITE_ZEROES, TRIM and FLUSH become requests of the block layer's
 * request layer (block/aio.c), so that many are in flight at once, and their
 * replies go out from the completion callbacks, in whatever order they
 * complete (each carries its handle). Block status, the rest of a structured
 * read, runs synchronously. A connection pauses (reading and handling) while a
 * job holds the lock or waits for it, while too many of its requests are in
 * flight, or while its client does not read its replies. A client that goes
 * away with requests in flight stays allocated, closed, until they are back. A
 * client that breaks the protocol is disconnected; the server goes on serving
 * the others.
 */
#include "nbd-server-int.h"
#include "block/aio.h"
#include <glib-unix.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>

#define READ_CHUNK      (256 * 1024)
#define OUTBUF_HIGH     (64 * MiB)
#define MAX_OPTION_LEN  NBD_MAX_BUFFER_SIZE
#define RETRY_MS        10
#define MAX_IN_FLIGHT   64      /* requests of one client in the request layer */

/* A part of a READ's reply: a hole, or data read into the request's buffer. */
typedef struct NbdExtent {
    struct NbdReq *req;
    uint64_t off;
    uint32_t len;
    bool hole;
    bool file;              /* sent from @fd (owned) at @foff, without a read */
    int fd;
    int64_t foff;
    int ret;
} NbdExtent;

/* A request in the request layer; replied to once all its parts are back. */
typedef struct NbdReq {
    NbdClient *c;
    uint16_t type;
    uint16_t flags;
    uint64_t handle;
    uint32_t len;
    uint8_t *buf;           /* READ: the data extents, back to back; WRITE: payload */
    size_t buf_cap;         /* buf's allocated size (buf_get) */
    NbdExtent *ext;         /* READ: the reply's parts in order */
    unsigned n_ext;
    unsigned pending;       /* parts not back yet */
    bool simple;            /* READ: simple reply (no structured replies) */
    int ret;
} NbdReq;

static struct {
    int fd;
    guint watch;
    char *unix_path;
    GList *clients;
    int max_clients;            /* 0: no limit */
    void (*client_gone)(void);  /* called after a client is closed */
    GQueue kicks;               /* clients a completion changed, for kicks_run() */
    guint kick_idle;
    guint aio_watch;            /* bdrv_aio_notifier_fd() */
} server = { .fd = -1 };

#define COMPACT_AT (4 * MiB)

static void client_close(NbdClient *c);
static void client_free(NbdClient *c);
static void client_update_watches(NbdClient *c);
static void client_process(NbdClient *c);
static void client_kick(NbdClient *c);
static ssize_t client_tls_send(void *opaque, const uint8_t *buf, size_t len);
static void client_tls_start(NbdClient *c);
static void client_tls_handshake(NbdClient *c);

/* see nbd-server-int.h */
void nbd_client_fail(NbdClient *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (c->state == NC_TRANSMISSION) {
        error_report("Disconnect client, due to: %s", msg);
    } else {
        error_report("option negotiation failed: %s", msg);
    }
    c->closing = true;
}

#define EOF_MSG "Unexpected end-of-file before all data were read"

/* ---- output ---- */

static gboolean client_writable(GIOChannel *ch, GIOCondition cond, gpointer opaque);

static void client_flush(NbdClient *c)
{
    if (c->tls ? nbd_outq_send_fn(&c->outq, client_tls_send, c) < 0
               : nbd_outq_send(&c->outq, c->fd) < 0) {
        client_close(c);
        return;
    }
    if (nbd_out_pending(c) == 0 && c->closing && c->in_flight == 0) {
        client_close(c);
        return;
    }
    if (nbd_out_pending(c) == 0 && c->tls_starting) {
        client_tls_start(c);
        return;
    }
    client_update_watches(c);
}

static gboolean client_writable(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    NbdClient *c = opaque;

    c->out_watch = 0;
    if (c->tls_handshaking) {
        client_tls_handshake(c);
        return G_SOURCE_REMOVE;
    }
    client_flush(c);
    if (g_list_find(server.clients, c)) {
        client_process(c);
    }
    return G_SOURCE_REMOVE;
}

/* ---- transmission replies ---- */

static uint32_t nbd_errno(int err)
{
    switch (err) {
    case 0: return 0;
    case EPERM: case EACCES: case EROFS: return NBD_EPERM;
    case EIO: return NBD_EIO;
    case ENOMEM: return NBD_ENOMEM;
    case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case ENOTSUP: return NBD_ENOTSUP;
    case ESHUTDOWN: return NBD_ESHUTDOWN;
    default: return NBD_EINVAL;
    }
}

static void simple_reply(NbdClient *c, uint64_t handle, int err)
{
    put32(c->out, NBD_SIMPLE_REPLY_MAGIC);
    put32(c->out, nbd_errno(err));
    put64(c->out, handle);
}

static void chunk_header(NbdClient *c, uint16_t flags, uint16_t type, uint64_t handle,
                         uint32_t len)
{
    put32(c->out, NBD_STRUCTURED_REPLY_MAGIC);
    put16(c->out, flags);
    put16(c->out, type);
    put64(c->out, handle);
    put32(c->out, len);
}

/* An error reply; structured ones carry @msg (may be NULL) as QEMU's do. */
static void error_reply_msg(NbdClient *c, uint64_t handle, int err, const char *msg)
{
    uint16_t msglen = msg ? strlen(msg) : 0;

    if (!c->structured) {
        simple_reply(c, handle, err);
        return;
    }
    chunk_header(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, handle, 6 + msglen);
    put32(c->out, nbd_errno(err));
    put16(c->out, msglen);
    if (msglen) {
        g_byte_array_append(c->out, (const guint8 *)msg, msglen);
    }
}

static void error_reply(NbdClient *c, uint64_t handle, int err)
{
    error_reply_msg(c, handle, err, NULL);
}

/* ---- requests in flight ---- */

/*
 * Data buffers of requests, kept for reuse: allocating and freeing one of a
 * few hundred KiB per request makes malloc grow and trim the heap each time.
 */
#define SPARE_BUFS 16
static struct {
    uint8_t *buf;
    size_t size;
} spare_bufs[SPARE_BUFS];
static unsigned n_spare_bufs;

static uint8_t *buf_get(size_t size, size_t *cap)
{
    for (unsigned i = 0; i < n_spare_bufs; i++) {
        if (spare_bufs[i].size >= size) {
            uint8_t *buf = spare_bufs[i].buf;

            *cap = spare_bufs[i].size;
            spare_bufs[i] = spare_bufs[--n_spare_bufs];
            return buf;
        }
    }
    *cap = MAX(size, 1);
    return g_malloc(*cap);
}

static void buf_put(uint8_t *buf, size_t cap)
{
    if (!buf) {
        return;
    }
    if (n_spare_bufs < SPARE_BUFS && cap <= 4 * MiB) {
        spare_bufs[n_spare_bufs].buf = buf;
        spare_bufs[n_spare_bufs++].size = cap;
    } else {
        g_free(buf);
    }
}

static NbdReq *req_new(NbdClient *c, uint16_t type, uint16_t flags, uint64_t handle,
                       uint32_t len)
{
    NbdReq *r = g_new0(NbdReq, 1);

    r->c = c;
    r->type = type;
    r->flags = flags;
    r->handle = handle;
    r->len = len;
    c->in_flight++;
    if (type == NBD_CMD_READ) {
        c->in_flight_bytes += len;
    }
    return r;
}

/*
 * Queue a READ's reply: its parts in order, up to the first that failed. The
 * data goes out from the request's buffer, which the output queue then owns.
 */
static void read_reply(NbdClient *c, NbdReq *r)
{
    uint32_t at = 0;

    if (r->simple) {
        if (r->ret < 0) {
            simple_reply(c, r->handle, -r->ret);
        } else {
            simple_reply(c, r->handle, 0);
            nbd_outq_add(&c->outq, r->buf, r->len, NULL, 0, NULL);
        }
        goto out;
    }
    for (unsigned i = 0; i < r->n_ext; i++) {
        NbdExtent *e = &r->ext[i];
        uint16_t done = i + 1 == r->n_ext ? NBD_REPLY_FLAG_DONE : 0;

        if (e->hole) {
            chunk_header(c, done, NBD_REPLY_TYPE_OFFSET_HOLE, r->handle, 12);
            put64(c->out, e->off);
            put32(c->out, e->len);
            continue;
        }
        if (e->ret < 0) {
            error_reply(c, r->handle, -e->ret);
            break;
        }
        chunk_header(c, done, NBD_REPLY_TYPE_OFFSET_DATA, r->handle, 8 + e->len);
        put64(c->out, e->off);
        if (e->file) {
            nbd_outq_add_file(&c->outq, e->fd, e->foff, e->len);
            e->file = false;    /* the queue owns the descriptor now */
            continue;
        }
        nbd_outq_add(&c->outq, r->buf + at, e->len, NULL, 0, NULL);
        at += e->len;
    }
out:
    /* released once the replies queued so far are sent */
    nbd_outq_add(&c->outq, NULL, 0, r->buf, r->buf_cap, buf_put);
    r->buf = NULL;
}

/* Every part of @r is back: reply (unless the client is gone) and let it go. */
static void req_finish(NbdReq *r)
{
    NbdClient *c = r->c;

    if (!c->dead) {
        if (r->type == NBD_CMD_READ) {
            read_reply(c, r);
        } else if (r->ret < 0) {
            error_reply(c, r->handle, -r->ret);
        } else {
            simple_reply(c, r->handle, 0);
        }
    }
    c->in_flight--;
    if (r->type == NBD_CMD_READ) {
        c->in_flight_bytes -= r->len;
    }
    buf_put(r->buf, r->buf_cap);
    for (unsigned i = 0; i < r->n_ext; i++) {
        if (r->ext[i].file) {
            close(r->ext[i].fd);
        }
    }
    g_free(r->ext);
    g_free(r);
    client_kick(c);
}

static void req_part_done(NbdReq *r)
{
    if (--r->pending == 0) {
        req_finish(r);
    }
}

static void read_extent_done(void *opaque, int ret)
{
    NbdExtent *e = opaque;

    e->ret = ret;
    if (ret < 0 && e->req->ret == 0) {
        e->req->ret = ret;
    }
    req_part_done(e->req);
}

static void flush_after_trim_done(void *opaque, int ret)
{
    NbdReq *r = opaque;

    r->ret = ret;
    req_finish(r);
}

static void req_done(void *opaque, int ret)
{
    NbdReq *r = opaque;

    r->ret = ret;
    /* a closed client has let go of its export: nobody waits for the flush */
    if (ret == 0 && r->type == NBD_CMD_TRIM && (r->flags & NBD_CMD_FLAG_FUA) &&
        !r->c->dead) {
        bdrv_aio_submit(r->c->exp->bs, BDRV_AIO_FLUSH, 0, 0, NULL, 0,
                        flush_after_trim_done, r);
        return;
    }
    req_finish(r);
}

/* Start a READ's data reads: the extents that are not holes, one request each. */
static void read_submit(NbdReq *r)
{
    BlockDriverState *bs = r->c->exp->bs;
    uint32_t at = 0, need = 0;

    for (unsigned i = 0; i < r->n_ext; i++) {
        need += r->ext[i].hole || r->ext[i].file ? 0 : r->ext[i].len;
    }
    r->buf = buf_get(need, &r->buf_cap);
    r->pending = 1;     /* ours, so that no completion finishes it early */
    for (unsigned i = 0; i < r->n_ext; i++) {
        NbdExtent *e = &r->ext[i];

        e->req = r;
        if (e->hole || e->file) {
            continue;
        }
        r->pending++;
        bdrv_aio_submit(bs, BDRV_AIO_READ, e->off, e->len, r->buf + at, 0,
                        read_extent_done, e);
        at += e->len;
    }
    req_part_done(r);
}

/*
 * Zero-copy: a data extent that lies in host files as it is (a read-only
 * export of nodes opened read-only, without TLS) goes out with sendfile()
 * from those files, one data chunk per piece (so not with @df, which asks
 * for one chunk).
 * Appends the pieces, up to the first that cannot be mapped (whose rest is
 * appended to be read as usual); false, appending nothing, when none can.
 */
static bool zero_copy_pieces(NbdClient *c, GArray *ext, const NbdExtent *e, bool df)
{
    BlockDriverState *bs = c->exp->bs;
    uint64_t pos = e->off, end = e->off + e->len;

    if (c->exp->writable || c->tls || df) {
        return false;
    }
    while (pos < end) {
        NbdExtent piece = { .off = pos, .file = true };
        int64_t n;
        int fd;

        if (!bdrv_map_host_file(bs, pos, end - pos, &n, &fd, &piece.foff) ||
            (piece.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            break;
        }
        piece.len = n;
        g_array_append_val(ext, piece);
        pos += n;
    }
    if (pos == e->off) {
        return false;
    }
    if (pos < end) {
        NbdExtent rest = { .off = pos, .len = end - pos };

        g_array_append_val(ext, rest);
    }
    return true;
}

/*
 * A structured READ: holes found by block status (unless @df) become hole
 * chunks, the rest is read by requests; the reply goes out once all are back.
 */
static void read_structured(NbdClient *c, uint64_t handle, uint16_t flags, uint64_t off,
                            uint32_t len)
{
    BlockDriverState *bs = c->exp->bs;
    bool df = flags & NBD_CMD_FLAG_DF;
    uint64_t end = off + len, pos = off;
    g_autoptr(GArray) ext = g_array_new(FALSE, TRUE, sizeof(NbdExtent));
    NbdReq *r;

    if (len == 0) {
        chunk_header(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, handle, 0);
        return;
    }
    if (!df) {
        bdrv_aio_node_lock(bs);
    }
    while (pos < end) {
        int64_t pnum = end - pos;
        int st = df ? 0 : bdrv_block_status_above(bs, pos, end - pos, &pnum);
        NbdExtent e = { 0 };

        if (st < 0 || pnum <= 0) {
            st = 0;
            pnum = end - pos;
        }
        e.hole = st & BDRV_BLOCK_ZERO;
        /* extend over following extents of the same kind */
        while (!df && pos + pnum < end) {
            int64_t more;
            int st2 = bdrv_block_status_above(bs, pos + pnum, end - pos - pnum, &more);
            if (st2 < 0 || more <= 0 || !!(st2 & BDRV_BLOCK_ZERO) != e.hole) {
                break;
            }
            pnum += more;
        }
        e.off = pos;
        e.len = pnum;
        if (e.hole || !zero_copy_pieces(c, ext, &e, df)) {
            g_array_append_val(ext, e);
        }
        pos += pnum;
    }
    if (!df) {
        bdrv_aio_node_unlock(bs);
    }
    r = req_new(c, NBD_CMD_READ, flags, handle, len);
    r->n_ext = ext->len;
    r->ext = (NbdExtent *)g_array_free(g_steal_pointer(&ext), FALSE);
    read_submit(r);
}

/*
 * One context's status of the first *pnum bytes at @pos: base:allocation flags,
 * the allocation depth (0: unallocated, 1: this image, 2+: a backing file), or
 * dirty (1) in one of the export's bitmaps. -errno on failure.
 */
static int64_t context_status(NbdClient *c, unsigned id, uint64_t pos,
                              uint64_t bytes, int64_t *pnum)
{
    BlockDriverState *bs = c->exp->bs;
    NbdExportBitmap *bm;
    int st;

    switch (id) {
    case NBD_META_ID_BASE_ALLOCATION:
        st = bdrv_block_status_above(bs, pos, bytes, pnum);
        if (st < 0) {
            return st;
        }
        return (st & BDRV_BLOCK_DATA ? 0 : NBD_STATE_HOLE) |
               (st & BDRV_BLOCK_ZERO ? NBD_STATE_ZERO : 0);
    case NBD_META_ID_ALLOCATION_DEPTH: {
        int64_t depth = 1;

        *pnum = bytes;
        for (BlockDriverState *b = bs; b; depth++) {
            int64_t n;
            int r = bdrv_is_allocated(b, pos, *pnum, &n);

            if (r < 0) {
                return r;
            }
            if (n > 0) {
                *pnum = MIN(*pnum, n);
            }
            if (r) {
                return depth;
            }
            b = bdrv_backing_child(b) ? bdrv_backing_child(b) :
                !bdrv_supports_backing(b) ? bdrv_file_child(b) : NULL;
        }
        return 0;
    }
    default:
        bm = &c->exp->bitmaps[id - NBD_META_ID_DIRTY_BITMAP];
        st = bdrv_dirty_bitmap_status(bm->bs, bm->name, pos, bytes, pnum);
        return st < 0 ? st : (st ? NBD_STATE_DIRTY : 0);
    }
}

/* The extents of one context as a BLOCK_STATUS chunk; -errno if status fails. */
static int block_status_chunk(NbdClient *c, uint64_t handle, unsigned id, uint64_t off,
                              uint32_t len, bool req_one, bool done)
{
    g_autoptr(GByteArray) ext = g_byte_array_new();
    uint64_t pos = off, end = off + len;
    uint32_t last_flags = 0, count = 0;

    while (pos < end) {
        int64_t pnum = 0;
        int64_t st = context_status(c, id, pos, end - pos, &pnum);
        uint32_t flags;

        if (st < 0) {
            return st;
        }
        if (pnum <= 0) {
            break;
        }
        flags = st;
        if (count && flags == last_flags) {
            /* merge with the previous descriptor */
            uint32_t prev = get32(ext->data + ext->len - 8);
            uint32_t v = GUINT32_TO_BE(prev + (uint32_t)pnum);
            memcpy(ext->data + ext->len - 8, &v, 4);
        } else {
            if (req_one && count) {
                break;
            }
            put32(ext, pnum);
            put32(ext, flags);
            count++;
            last_flags = flags;
        }
        pos += pnum;
    }
    chunk_header(c, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS, handle,
                 4 + ext->len);
    put32(c->out, id);
    g_byte_array_append(c->out, ext->data, ext->len);
    return 0;
}

/* The contexts selected for this connection's export. */
static unsigned meta_selected(NbdClient *c)
{
    unsigned n = MIN(c->n_meta, nbd_meta_count(c->exp)), count = 0;

    for (unsigned id = 0; id < n; id++) {
        count += c->meta[id];
    }
    return count;
}

/* One chunk per selected context, in id order; the last one says DONE. */
static void block_status_reply(NbdClient *c, uint64_t handle, uint64_t off,
                               uint32_t len, bool req_one)
{
    unsigned n = MIN(c->n_meta, nbd_meta_count(c->exp));
    unsigned left = meta_selected(c);
    guint at = c->out->len;

    bdrv_aio_node_lock(c->exp->bs);
    for (unsigned id = 0; id < n && left; id++) {
        int ret;

        if (!c->meta[id]) {
            continue;
        }
        left--;
        ret = block_status_chunk(c, handle, id, off, len, req_one, left == 0);
        if (ret < 0) {
            g_byte_array_set_size(c->out, at);
            error_reply(c, handle, -ret);
            break;
        }
    }
    bdrv_aio_node_unlock(c->exp->bs);
}

static void handle_request(NbdClient *c, uint16_t flags, uint16_t type, uint64_t handle,
                           uint64_t off, uint32_t len, const uint8_t *payload)
{
    BlockDriverState *bs = c->exp->bs;
    int64_t size = bdrv_getlength(bs);
    bool in_bounds = size >= 0 && off <= (uint64_t)size && len <= size - off;
    int ret = 0;
    NbdReq *r;

    switch (type) {
    case NBD_CMD_READ:
        if (!in_bounds || len > NBD_MAX_BUFFER_SIZE) {
            error_reply(c, handle, EINVAL);
        } else if (c->structured) {
            read_structured(c, handle, flags, off, len);
        } else {
            r = req_new(c, type, flags, handle, len);
            r->simple = true;
            r->n_ext = 1;
            r->ext = g_new0(NbdExtent, 1);
            r->ext[0].off = off;
            r->ext[0].len = len;
            read_submit(r);
        }
        return;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        if (!c->exp->writable) {
            ret = -EPERM;
        } else if (!in_bounds) {
            ret = -ENOSPC;
        } else if (type == NBD_CMD_WRITE) {
            r = req_new(c, type, flags, handle, len);
            r->buf = buf_get(len, &r->buf_cap);
            memcpy(r->buf, payload, len);
            bdrv_aio_submit(bs, BDRV_AIO_WRITE, off, len, r->buf,
                            flags & NBD_CMD_FLAG_FUA ? BDRV_REQ_FUA : 0, req_done, r);
            return;
        } else if (type == NBD_CMD_TRIM) {
            r = req_new(c, type, flags, handle, len);
            bdrv_aio_submit(bs, BDRV_AIO_DISCARD, off, len, NULL, 0, req_done, r);
            return;
        } else {
            int f = (flags & NBD_CMD_FLAG_NO_HOLE ? 0 : BDRV_REQ_MAY_UNMAP) |
                    (flags & NBD_CMD_FLAG_FAST_ZERO ? BDRV_REQ_NO_FALLBACK : 0) |
                    (flags & NBD_CMD_FLAG_FUA ? BDRV_REQ_FUA : 0);

            r = req_new(c, type, flags, handle, len);
            bdrv_aio_submit(bs, BDRV_AIO_WRITE_ZEROES, off, len, NULL, f, req_done, r);
            return;
        }
        break;
    case NBD_CMD_FLUSH:
        /* the request layer runs it after every write submitted before it */
        r = req_new(c, type, flags, handle, 0);
        bdrv_aio_submit(bs, BDRV_AIO_FLUSH, 0, 0, NULL, 0, req_done, r);
        return;
    case NBD_CMD_CACHE:
        ret = in_bounds ? 0 : -EINVAL;
        break;
    case NBD_CMD_BLOCK_STATUS:
        if (!meta_selected(c)) {
            error_reply_msg(c, handle, EINVAL, "CMD_BLOCK_STATUS not negotiated");
            return;
        }
        if (!in_bounds || len == 0) {
            ret = -EINVAL;
            break;
        }
        block_status_reply(c, handle, off, len, flags & NBD_CMD_FLAG_REQ_ONE);
        return;
    default:
        ret = -EINVAL;
        break;
    }
    if (ret < 0) {
        error_reply(c, handle, -ret);
    } else {
        simple_reply(c, handle, 0);
    }
}

/* ---- input ---- */

/* Handle one complete message at the start of c->in; bytes consumed, 0 if incomplete. */
static size_t process_one(NbdClient *c)
{
    const uint8_t *p = c->in->data + c->in_pos;
    size_t avail = nbd_in_avail(c);

    switch (c->state) {
    case NC_CLIENT_FLAGS: {
        uint32_t flags;
        if (avail < 4) {
            return 0;
        }
        flags = get32(p);
        if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
            nbd_client_fail(c, "Unknown client flags 0x%" PRIx32 " received", flags);
            return avail;
        }
        c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
        c->state = NC_OPTIONS;
        return 4;
    }
    case NC_OPTIONS: {
        uint32_t opt, len;
        if (avail < 16) {
            return 0;
        }
        opt = get32(p + 8);
        len = get32(p + 12);
        if (get64(p) != NBD_OPTS_MAGIC) {
            nbd_client_fail(c, "Bad magic received");
            return avail;
        }
        if (len > MAX_OPTION_LEN) {
            nbd_client_fail(c, "len (%" PRIu32 " ) is larger than max len (%u)", len,
                        (unsigned)MAX_OPTION_LEN);
            return avail;
        }
        if (avail < 16 + (size_t)len) {
            return 0;
        }
        nbd_handle_option(c, opt, p + 16, len);
        return 16 + len;
    }
    case NC_TRANSMISSION: {
        uint16_t flags, type;
        uint32_t len;
        if (avail < NBD_REQUEST_SIZE) {
            return 0;
        }
        flags = get16(p + 4);
        type = get16(p + 6);
        len = get32(p + 24);
        if (get32(p) != NBD_REQUEST_MAGIC) {
            nbd_client_fail(c, "Request handling failed in intermediate state");
            return avail;
        }
        if (type == NBD_CMD_WRITE && len > NBD_MAX_BUFFER_SIZE) {
            nbd_client_fail(c, "len (%" PRIu32 ") is larger than max len (%u)", len,
                        (unsigned)NBD_MAX_BUFFER_SIZE);
            return avail;
        }
        if (type == NBD_CMD_WRITE && avail < NBD_REQUEST_SIZE + (size_t)len) {
            return 0;
        }
        if (type == NBD_CMD_DISC) {
            c->closing = true;
            return avail;
        }
        handle_request(c, flags, type, get64(p + 8), get64(p + 16), len,
                       p + NBD_REQUEST_SIZE);
        return NBD_REQUEST_SIZE + (type == NBD_CMD_WRITE ? len : 0);
    }
    }
    return 0;
}

static gboolean client_retry(gpointer opaque)
{
    NbdClient *c = opaque;

    c->retry_timer = 0;
    client_process(c);
    return G_SOURCE_REMOVE;
}

static bool client_has_complete_message(NbdClient *c)
{
    size_t need = c->state == NC_CLIENT_FLAGS ? 4 :
                  c->state == NC_OPTIONS ? 16 : NBD_REQUEST_SIZE;

    return nbd_in_avail(c) >= need;
}

/* Room for another request: not too many in flight, replies not piling up. */
static bool client_has_room(NbdClient *c)
{
    return c->in_flight < MAX_IN_FLIGHT &&
           nbd_out_pending(c) + c->in_flight_bytes < OUTBUF_HIGH;
}

static void client_process(NbdClient *c)
{
    bool locked = false;

    while (!c->closing && !c->tls_starting && client_has_room(c) &&
           client_has_complete_message(c)) {
        size_t used;

        if (!locked && !(locked = block_io_begin())) {
            if (!c->retry_timer) {
                c->retry_timer = g_timeout_add(RETRY_MS, client_retry, c);
            }
            break;
        }
        used = process_one(c);
        if (!used) {
            break;
        }
        c->in_pos += MIN(used, nbd_in_avail(c));
    }
    if (nbd_in_avail(c) == 0) {
        g_byte_array_set_size(c->in, 0);
        c->in_pos = 0;
    } else if (c->in_pos >= COMPACT_AT) {
        g_byte_array_remove_range(c->in, 0, c->in_pos);
        c->in_pos = 0;
    }
    if (locked) {
        /* replies of requests that completed inline go out with this flush */
        bdrv_aio_poll(false);
        if (c->kicked && g_queue_peek_head(&server.kicks) == c && !client_has_complete_message(c)) {
            g_queue_pop_head(&server.kicks);
            c->kicked = false;
        }
        block_io_end();
    }
    if (c->closing) {
        g_byte_array_set_size(c->in, 0);
        c->in_pos = 0;
    }
    client_flush(c);
}

/*
 * The client hung up (or, with TLS, the read failed: c->read_error says why):
 * complain if it left in the middle of something.
 */
static void client_eof(NbdClient *c)
{
    const char *why = c->read_error ? c->read_error : EOF_MSG;

    if (c->closing) {
        return;
    }
    switch (c->state) {
    case NC_CLIENT_FLAGS:
        nbd_client_fail(c, "Failed to read client flags: %s", why);
        break;
    case NC_OPTIONS:
        if (nbd_in_avail(c) < 8) {
            nbd_client_fail(c, "Failed to read opts magic: %s", why);
        } else {
            nbd_client_fail(c, "Failed to read option: %s", why);
        }
        break;
    case NC_TRANSMISSION:
        if (nbd_in_avail(c) >= NBD_REQUEST_SIZE) {
            nbd_client_fail(c, "Failed to read CMD_WRITE data: %s", why);
        } else if (nbd_in_avail(c) > 0) {
            nbd_client_fail(c, "Failed to read request: %s", why);
        }
        break;
    }
}

/* ---- TLS (nbd-tls.c holds the session) ---- */

/* The output queue's sender through the session: bytes taken, or -errno. */
static ssize_t client_tls_send(void *opaque, const uint8_t *buf, size_t len)
{
    NbdClient *c = opaque;
    g_autoptr(GError) err = NULL;

    return nbd_tls_session_send(c->tls, buf, len, &err);
}

/*
 * recv() into c->in at @old through the session, then whatever the session
 * still holds decrypted (no socket event would announce it): bytes read, 0 at
 * the end, or -1 with errno (EAGAIN; EIO with c->read_error set).
 */
static ssize_t client_tls_recv(NbdClient *c, guint old)
{
    g_autoptr(GError) err = NULL;
    ssize_t n = nbd_tls_session_recv(c->tls, c->in->data + old, c->in->len - old,
                                     &err);
    size_t more;

    while (n > 0 && (size_t)n == c->in->len - old &&
           (more = nbd_tls_session_pending(c->tls)) > 0) {
        ssize_t m;

        g_byte_array_set_size(c->in, c->in->len + more);
        m = nbd_tls_session_recv(c->tls, c->in->data + old + n, more, NULL);
        if (m <= 0) {
            break;
        }
        n += m;
    }
    if (n < 0) {
        if (err) {
            g_free(c->read_error);
            c->read_error = g_strdup(err->message);
        }
        errno = -n;
        return -1;
    }
    return n;
}

/* The STARTTLS ack is out: the handshake starts. */
static void client_tls_start(NbdClient *c)
{
    g_autoptr(GError) err = NULL;

    c->tls_starting = false;
    c->tls = nbd_tls_session_new(c->fd, c->in->data + c->in_pos, nbd_in_avail(c), &err);
    g_byte_array_set_size(c->in, 0);
    c->in_pos = 0;
    if (!c->tls) {
        nbd_client_fail(c, "%s", err->message);
        client_close(c);
        return;
    }
    c->tls_handshaking = true;
    client_tls_handshake(c);
}

/* A step of the handshake (the watches wait for the direction it needs). */
static void client_tls_handshake(NbdClient *c)
{
    g_autoptr(GError) err = NULL;
    int ret = nbd_tls_session_handshake(c->tls, &err);

    if (ret < 0) {
        nbd_client_fail(c, "%s", err->message);
        client_close(c);
        return;
    }
    if (ret > 0) {
        c->tls_handshaking = false;
    }
    client_update_watches(c);
}

static gboolean client_readable(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    NbdClient *c = opaque;
    guint old = c->in->len;
    ssize_t n;

    if (c->tls_handshaking) {
        client_tls_handshake(c);
        return G_SOURCE_CONTINUE;
    }
    g_byte_array_set_size(c->in, old + READ_CHUNK);
    do {
        n = c->tls ? client_tls_recv(c, old) : recv(c->fd, c->in->data + old,
                                                    READ_CHUNK, 0);
    } while (n < 0 && errno == EINTR);
    g_byte_array_set_size(c->in, old + MAX(n, 0));
    if (n < 0 && errno == EAGAIN) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        client_eof(c);
        c->in_watch = 0;
        client_close(c);
        return G_SOURCE_REMOVE;
    }
    client_process(c);
    return G_SOURCE_CONTINUE;
}

/* Read while we can make progress; write while output is pending. */
static void client_update_watches(NbdClient *c)
{
    bool want_read = !c->closing && !c->retry_timer && client_has_room(c);
    bool want_write = nbd_out_pending(c) > 0;
    GIOChannel *ch = NULL;

    if (c->tls_handshaking) {
        want_write = nbd_tls_session_want_write(c->tls);
        want_read = !want_write;
    }

    if (want_read != !!c->in_watch || (want_write && !c->out_watch)) {
        ch = g_io_channel_unix_new(c->fd);
    }
    if (want_read && !c->in_watch) {
        c->in_watch = g_io_add_watch(ch, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                     client_readable, c);
    } else if (!want_read && c->in_watch) {
        g_source_remove(c->in_watch);
        c->in_watch = 0;
    }
    if (want_write && !c->out_watch) {
        c->out_watch = g_io_add_watch(ch, G_IO_OUT | G_IO_HUP | G_IO_ERR,
                                      client_writable, c);
    }
    if (ch) {
        g_io_channel_unref(ch);
    }
}

static void server_update_accept(void);

/*
 * Close the connection. The client's memory stays until its requests in flight
 * are back (their callbacks find it dead and send nothing): client_free().
 */
static void client_close(NbdClient *c)
{
    NbdExport *exp = c->exp;

    if (!g_list_find(server.clients, c)) {
        return;
    }
    server.clients = g_list_remove(server.clients, c);
    if (c->in_watch) {
        g_source_remove(c->in_watch);
        c->in_watch = 0;
    }
    if (c->out_watch) {
        g_source_remove(c->out_watch);
        c->out_watch = 0;
    }
    if (c->retry_timer) {
        g_source_remove(c->retry_timer);
        c->retry_timer = 0;
    }
    if (c->tls) {
        /* what the client sent meanwhile, lest closing reset the connection
         * (the client would not see the end of the TLS stream) */
        char junk[4096];
        while (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0) {
        }
        nbd_tls_session_free(c->tls);
    }
    g_free(c->read_error);
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->exp = NULL;
    if (c->in_flight == 0) {
        client_free(c);
    }
    /* may wait for the requests in flight (the daemon's lock) */
    if (exp) {
        nbd_export_put(exp);
    }
    server_update_accept();
    if (server.client_gone) {
        server.client_gone();
    }
}

static void client_free(NbdClient *c)
{
    if (c->kicked) {
        g_queue_remove(&server.kicks, c);
    }
    g_byte_array_unref(c->in);
    nbd_outq_clear(&c->outq);
    g_byte_array_unref(c->outq.tail);
    g_free(c->meta);
    g_free(c);
}

/* Clients whose requests completed: reply, go on reading, or free the dead. */
static void kicks_run(void)
{
    NbdClient *c;

    while ((c = g_queue_pop_head(&server.kicks))) {
        c->kicked = false;
        if (!c->dead) {
            client_process(c);
        } else if (c->in_flight == 0) {
            client_free(c);
        }
    }
}

static gboolean kick_idle(gpointer opaque)
{
    server.kick_idle = 0;
    kicks_run();
    block_io_end();
    return G_SOURCE_REMOVE;
}

/* A request of @c completed (in a bdrv_aio_poll() callback): deal with it later. */
static void client_kick(NbdClient *c)
{
    if (!c->kicked) {
        c->kicked = true;
        g_queue_push_tail(&server.kicks, c);
    }
    if (!server.kick_idle) {
        server.kick_idle = g_idle_add(kick_idle, NULL);
    }
}

/* The request layer has completions: run their callbacks, then the clients. */
static gboolean aio_ready(int fd, GIOCondition cond, gpointer opaque)
{
    bdrv_aio_poll(false);
    kicks_run();
    block_io_end();
    return G_SOURCE_CONTINUE;
}

static gboolean server_accept(GIOChannel *ch, GIOCondition cond, gpointer opaque);

/* Listen while there is room for another client (qemu-nbd -e). */
static void server_update_accept(void)
{
    bool want = server.fd >= 0 &&
                (!server.max_clients ||
                 (int)g_list_length(server.clients) < server.max_clients);

    if (want && !server.watch) {
        GIOChannel *ch = g_io_channel_unix_new(server.fd);
        server.watch = g_io_add_watch(ch, G_IO_IN, server_accept, NULL);
        g_io_channel_unref(ch);
    } else if (!want && server.watch) {
        g_source_remove(server.watch);
        server.watch = 0;
    }
}

void nbd_server_set_limits(int max_clients, void (*client_gone)(void))
{
    server.max_clients = max_clients;
    server.client_gone = client_gone;
    server_update_accept();
}

int nbd_server_client_count(void)
{
    return g_list_length(server.clients);
}

void nbd_server_add_client(int fd)
{
    NbdClient *c = g_new0(NbdClient, 1);

    if (!server.aio_watch) {
        server.aio_watch = g_unix_fd_add(bdrv_aio_notifier_fd(), G_IO_IN, aio_ready, NULL);
    }

    c->fd = fd;
    c->in = g_byte_array_new();
    nbd_outq_init(&c->outq);
    c->out = c->outq.tail;
    c->state = NC_CLIENT_FLAGS;
    server.clients = g_list_append(server.clients, c);
    put64(c->out, NBD_INIT_MAGIC);
    put64(c->out, NBD_OPTS_MAGIC);
    put16(c->out, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    client_flush(c);
}

/*
 * A UNIX socket's send buffer (208 KiB by default) holds less than one of
 * nbdcopy's 256 KiB reads: the server then sends each reply in pieces, woken
 * each time the client has read some. With 4 MiB (as far as wmem_max allows)
 * a few replies go in one go: nbdcopy of 1 GiB took 0.15 s instead of 0.22 s.
 * TCP sockets keep the kernel's autotuning, which a fixed size would turn off.
 */
static void widen_unix_send_buffer(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int size = 4 * MiB;

    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.ss_family == AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
}

static gboolean server_accept(GIOChannel *ch, GIOCondition cond, gpointer opaque)
{
    int fd = accept4(server.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        return G_SOURCE_CONTINUE;
    }
    widen_unix_send_buffer(fd);
    nbd_server_add_client(fd);
    if (server.max_clients &&
        (int)g_list_length(server.clients) >= server.max_clients) {
        server.watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/* ---- exported bitmaps ---- */

BlockDriverState *nbd_find_bitmap(BlockDriverState *bs, const char *name,
                                  bool chain, bool writable, GError **errp)
{
    for (BlockDriverState *b = bs; b;
         b = !chain ? NULL : bdrv_backing_child(b) ?: bdrv_file_child(b)) {
        g_autoptr(JsonArray) list = bdrv_query_dirty_bitmaps(b);

        for (guint i = 0; list && i < json_array_get_length(list); i++) {
            JsonObject *o = json_array_get_object_element(list, i);

            if (strcmp(json_object_get_string_member(o, "name"), name)) {
                continue;
            }
            /* QEMU's: only where the bitmap could still change under the
             * read-only export (a node opened read-write) */
            if (json_object_get_boolean_member(o, "recording") && !writable &&
                !bdrv_is_read_only(b)) {
                error_setg(errp, "Enabled bitmap '%s' incompatible with readonly "
                           "export", name);
                return NULL;
            }
            return b;
        }
    }
    if (chain) {
        error_setg(errp, "Bitmap '%s' is not found", name);
    } else {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
    }
    return NULL;
}

/* ---- the listener ---- */

int qsd_unix_listen(const char *path, GError **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return -1;
    }
    if (listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

int nbd_inet_listen(const char *host, const char *port, GError **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *res, *ai;
    int fd = -1, rc, one = 1, err = 0;

    rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host ? host : "",
                   port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to bind socket");
    }
    return fd;
}

bool nbd_server_start(JsonObject *addr, GError **errp)
{
    const char *type = opts_peek_str(addr, "type");

    if (server.fd >= 0) {
        error_setg(errp, "NBD server already running");
        return false;
    }
    if (type && !strcmp(type, "unix")) {
        const char *path = opts_peek_str(addr, "path");
        if (!path) {
            error_setg(errp, "Parameter 'addr.path' is missing");
            return false;
        }
        server.fd = qsd_unix_listen(path, errp);
        if (server.fd >= 0) {
            server.unix_path = g_strdup(path);
        }
    } else if (type && !strcmp(type, "inet")) {
        g_autofree char *port = opts_get_str(addr, "port");
        if (!port) {
            error_setg(errp, "Parameter 'addr.port' is missing");
            return false;
        }
        server.fd = nbd_inet_listen(opts_peek_str(addr, "host"), port, errp);
    } else {
        error_setg(errp, "Parameter 'addr.type' does not accept value '%s'",
                   type ? type : "");
        return false;
    }
    if (server.fd < 0) {
        return false;
    }
    listen(server.fd, 16);
    server_update_accept();
    return true;
}

bool nbd_server_running(void)
{
    return server.fd >= 0;
}

void nbd_server_drop_clients(NbdExport *exp)
{
    GList *l = server.clients;

    while (l) {
        GList *next = l->next;
        NbdClient *c = l->data;
        if (c->exp == exp) {
            client_close(c);
        }
        l = next;
    }
}

void nbd_server_stop(void)
{
    nbd_tls_server_clear();
    while (server.clients) {
        client_close(server.clients->data);
    }
    /* the closed clients' requests in flight: wait, then free the clients */
    bdrv_aio_drain(NULL);
    kicks_run();
    if (server.kick_idle) {
        g_source_remove(server.kick_idle);
        server.kick_idle = 0;
    }
    block_io_end();
    if (server.watch) {
        g_source_remove(server.watch);
        server.watch = 0;
    }
    if (server.fd >= 0) {
        close(server.fd);
        server.fd = -1;
    }
    if (server.unix_path) {
        unlink(server.unix_path);
        g_free(server.unix_path);
        server.unix_path = NULL;
    }
}
