/*
 * The NBD server's per-client output queue: owned and borrowed segments sent
 * in order with one sendmsg() per batch, and file segments with sendfile()
 * (see nbd-outq.h).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "nbd-outq.h"

#define OUTQ_IOV 64     /* segments per sendmsg() */

typedef struct NbdOutSeg {
    const uint8_t *data;
    size_t len;
    uint8_t *owner;
    size_t owner_cap;
    NbdOutRelease *release;
    int fd;                 /* a file segment: @len bytes at @foff of @fd, or -1 */
    off_t foff;
} NbdOutSeg;

void nbd_outq_init(NbdOutQueue *q)
{
    g_queue_init(&q->segs);
    q->seg_bytes = q->head_sent = 0;
    q->tail = g_byte_array_new();
    q->tail_sent = 0;
}

static void release_owner(uint8_t *owner, size_t cap, NbdOutRelease *release)
{
    if (owner) {
        if (release) {
            release(owner, cap);
        } else {
            g_free(owner);
        }
    }
}

static void seg_free(NbdOutSeg *s)
{
    release_owner(s->owner, s->owner_cap, s->release);
    if (s->fd >= 0) {
        close(s->fd);
    }
    g_free(s);
}

void nbd_outq_clear(NbdOutQueue *q)
{
    NbdOutSeg *s;

    while ((s = g_queue_pop_head(&q->segs))) {
        seg_free(s);
    }
    q->seg_bytes = q->head_sent = 0;
    g_byte_array_set_size(q->tail, 0);
    q->tail_sent = 0;
}

size_t nbd_outq_pending(const NbdOutQueue *q)
{
    return q->seg_bytes + q->tail->len - q->tail_sent;
}

static void push_seg(NbdOutQueue *q, const uint8_t *data, size_t len, uint8_t *owner,
                     size_t owner_cap, NbdOutRelease *release)
{
    NbdOutSeg *s = g_new(NbdOutSeg, 1);

    *s = (NbdOutSeg) { data, len, owner, owner_cap, release, -1, 0 };
    g_queue_push_tail(&q->segs, s);
    q->seg_bytes += len;
}

/* Move the tail's unsent bytes into a segment of their own, so that they keep
 * their place before what is queued next. */
static void seal_tail(NbdOutQueue *q)
{
    guint pending = q->tail->len - q->tail_sent;
    uint8_t *bytes;

    if (pending == 0) {
        g_byte_array_set_size(q->tail, 0);
        q->tail_sent = 0;
        return;
    }
    if (q->tail_sent == 0) {
        gsize len;

        bytes = g_byte_array_steal(q->tail, &len);
    } else {
        bytes = g_memdup2(q->tail->data + q->tail_sent, pending);
        g_byte_array_set_size(q->tail, 0);
    }
    q->tail_sent = 0;
    push_seg(q, bytes, pending, bytes, pending, NULL);
}

void nbd_outq_add(NbdOutQueue *q, const uint8_t *data, size_t len,
                  uint8_t *owner, size_t owner_cap, NbdOutRelease *release)
{
    seal_tail(q);
    if (len == 0 && g_queue_is_empty(&q->segs)) {
        /* nothing before it waits to be sent: release it now */
        release_owner(owner, owner_cap, release);
        return;
    }
    push_seg(q, data, len, owner, owner_cap, release);
}

void nbd_outq_add_file(NbdOutQueue *q, int fd, off_t offset, size_t len)
{
    NbdOutSeg *s;

    seal_tail(q);
    push_seg(q, NULL, len, NULL, 0, NULL);
    s = g_queue_peek_tail(&q->segs);
    s->fd = fd;
    s->foff = offset;
}

/* Account for @n bytes that the socket took. */
static void consume(NbdOutQueue *q, size_t n)
{
    NbdOutSeg *s;

    /* segments with nothing left to send go as soon as they reach the head */
    while ((s = g_queue_peek_head(&q->segs)) && (n > 0 || s->len == q->head_sent)) {
        size_t left = s->len - q->head_sent;

        if (n < left) {
            q->head_sent += n;
            q->seg_bytes -= n;
            return;
        }
        n -= left;
        q->seg_bytes -= left;
        q->head_sent = 0;
        seg_free(g_queue_pop_head(&q->segs));
    }
    q->tail_sent += n;
    if (q->tail_sent == q->tail->len) {
        g_byte_array_set_size(q->tail, 0);
        q->tail_sent = 0;
    }
}

/* A file segment at the head: straight from the file into the socket. */
static ssize_t send_file_head(NbdOutQueue *q, int sock, NbdOutSeg *s)
{
    off_t at = s->foff + q->head_sent;
    ssize_t n = sendfile(sock, s->fd, &at, s->len - q->head_sent);

    if (n == 0) {
        errno = EIO;        /* the file ended early: the reply cannot be completed */
        return -1;
    }
    return n;
}

int nbd_outq_send(NbdOutQueue *q, int fd)
{
    while (nbd_outq_pending(q) > 0) {
        struct iovec iov[OUTQ_IOV];
        struct msghdr msg = { .msg_iov = iov };
        size_t skip = q->head_sent;
        NbdOutSeg *head = g_queue_peek_head(&q->segs);
        GList *l;
        ssize_t n;

        if (head && head->fd >= 0 && head->len > q->head_sent) {
            n = send_file_head(q, fd, head);
            goto sent;
        }
        for (l = q->segs.head; l && msg.msg_iovlen < OUTQ_IOV; l = l->next) {
            NbdOutSeg *s = l->data;

            if (s->fd >= 0 && s->len > skip) {
                break;      /* sent by itself once it is the head */
            }
            if (s->len > skip) {
                iov[msg.msg_iovlen++] = (struct iovec) {
                    (void *)(s->data + skip), s->len - skip,
                };
            }
            skip = 0;
        }
        if (!l && msg.msg_iovlen < OUTQ_IOV && q->tail->len > q->tail_sent) {
            iov[msg.msg_iovlen++] = (struct iovec) {
                q->tail->data + q->tail_sent, q->tail->len - q->tail_sent,
            };
        }
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
sent:
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EPIPE;
        }
        consume(q, n);
    }
    return 0;
}

#define FILE_CHUNK (64 * 1024)

int nbd_outq_send_fn(NbdOutQueue *q, NbdOutSendFn *fn, void *opaque)
{
    g_autofree uint8_t *chunk = NULL;

    while (nbd_outq_pending(q) > 0) {
        NbdOutSeg *s = g_queue_peek_head(&q->segs);
        const uint8_t *buf;
        size_t len;
        ssize_t n;

        if (s && s->fd >= 0 && s->len > q->head_sent) {
            /* a file segment: read a chunk of it for the sender */
            len = MIN(s->len - q->head_sent, FILE_CHUNK);
            chunk = chunk ? chunk : g_malloc(FILE_CHUNK);
            n = pread(s->fd, chunk, len, s->foff + q->head_sent);
            if (n <= 0) {
                return n < 0 ? -errno : -EIO;
            }
            buf = chunk;
            len = n;
        } else if (s) {
            buf = s->data + q->head_sent;
            len = s->len - q->head_sent;
        } else {
            buf = q->tail->data + q->tail_sent;
            len = q->tail->len - q->tail_sent;
        }
        if (len == 0) {
            consume(q, 0);          /* an empty segment: drop it */
            continue;
        }
        n = fn(opaque, buf, len);
        if (n == -EINTR) {
            continue;
        }
        if (n == -EAGAIN) {
            return 0;
        }
        if (n <= 0) {
            return n < 0 ? n : -EPIPE;
        }
        consume(q, n);
    }
    return 0;
}
