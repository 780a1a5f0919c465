/*
 * A client's output queue for the NBD server: replies go out in order as
 * segments, some owned bytes (headers, option replies), some borrowed data
 * buffers (READ payloads) that are sent in place and released once the socket
 * took them, so that read data is never copied into an output buffer, and file
 * ranges sent with sendfile(), which the process does not copy at all.
 */
#ifndef NBD_OUTQ_H
#define NBD_OUTQ_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

typedef void NbdOutRelease(uint8_t *buf, size_t cap);

typedef struct NbdOutQueue {
    GQueue segs;        /* NbdOutSeg, oldest first; all go before @tail */
    size_t seg_bytes;   /* bytes of @segs not sent yet */
    size_t head_sent;   /* bytes of the first segment already sent */
    GByteArray *tail;   /* small bytes appended last (the caller writes here) */
    guint tail_sent;    /* bytes of @tail already sent */
} NbdOutQueue;

void nbd_outq_init(NbdOutQueue *q);
/* Drop everything not sent yet, releasing borrowed buffers. */
void nbd_outq_clear(NbdOutQueue *q);
size_t nbd_outq_pending(const NbdOutQueue *q);
/*
 * Queue @len bytes at @data after everything queued so far. The queue releases
 * @owner with @release (g_free when NULL) once they are sent or dropped; when
 * @owner is NULL, @data must stay valid until then by other means.
 */
void nbd_outq_add(NbdOutQueue *q, const uint8_t *data, size_t len,
                  uint8_t *owner, size_t owner_cap, NbdOutRelease *release);
/*
 * Queue @len bytes at @offset of file @fd, sent straight from the file with
 * sendfile() (zero-copy); the queue owns @fd and closes it once they are sent
 * or dropped. The file must hold them until then.
 */
void nbd_outq_add_file(NbdOutQueue *q, int fd, off_t offset, size_t len);
/*
 * Send as much as @fd takes without blocking. Returns 0 (all sent, or the
 * socket is full) or a negative errno when the connection is broken.
 */
int nbd_outq_send(NbdOutQueue *q, int fd);

/* A sender of bytes (TLS): how many it took (> 0), or -errno (-EAGAIN: full). */
typedef ssize_t NbdOutSendFn(void *opaque, const uint8_t *buf, size_t len);
/* nbd_outq_send() through @fn, one segment's bytes per call. */
int nbd_outq_send_fn(NbdOutQueue *q, NbdOutSendFn *fn, void *opaque);

#endif
