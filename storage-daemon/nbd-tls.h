/*
 * TLS for the NBD server (NBD_OPT_STARTTLS), with GnuTLS: the server's
 * credentials from a tls-creds-x509, tls-creds-psk or tls-creds-anon object
 * (endpoint=server), the optional authz-simple check of the client's identity,
 * and one non-blocking session per connection that nbd-server.c drives from its
 * socket watches.
 */
#ifndef QSD_NBD_TLS_H
#define QSD_NBD_TLS_H

#include "qemu/osdep.h"
#include "qemu/error.h"

typedef struct NbdTlsSession NbdTlsSession;

/*
 * Serve TLS with the credentials of object @creds_id (NULL: no TLS) and check
 * clients against authz object @authz_id (NULL: any client with valid
 * credentials). The credentials are loaded now; false with QEMU's error if the
 * object is missing, of the wrong kind or its files cannot be loaded.
 */
bool nbd_tls_server_setup(const char *creds_id, const char *authz_id, GError **errp);
/*
 * Is object @creds_id TLS credentials for a server endpoint? (What
 * nbd_tls_server_setup checks before it loads the files.)
 */
bool nbd_tls_server_check(const char *creds_id, GError **errp);
/* Drop the server's credentials (the server stopped). */
void nbd_tls_server_clear(void);
/* Must clients negotiate TLS before anything else? */
bool nbd_tls_server_enabled(void);

/*
 * A server session on connected non-blocking socket @fd; @pre (@pre_len bytes)
 * is what the client sent after NBD_OPT_STARTTLS that was already read.
 */
NbdTlsSession *nbd_tls_session_new(int fd, const void *pre, size_t pre_len,
                                   GError **errp);
void nbd_tls_session_free(NbdTlsSession *s);
/*
 * One step of the handshake: 1 done (the peer was checked and authorized),
 * 0 call again when the socket is ready (nbd_tls_session_want_write says for
 * what), -1 with QEMU's error.
 */
int nbd_tls_session_handshake(NbdTlsSession *s, GError **errp);
bool nbd_tls_session_want_write(NbdTlsSession *s);
/*
 * Read up to @len bytes, more than one record if the socket has them:
 * the count (> 0), 0 at the end of the stream, -EAGAIN, or -EIO with errp set.
 * Decrypted bytes are never left behind in the session past @len: read on
 * while nbd_tls_session_pending() says so.
 */
ssize_t nbd_tls_session_recv(NbdTlsSession *s, void *buf, size_t len, GError **errp);
size_t nbd_tls_session_pending(NbdTlsSession *s);
/*
 * Send from @buf (a call after -EAGAIN must offer the same bytes again, more
 * may follow them): bytes sent, -EAGAIN, or -EIO with errp set.
 */
ssize_t nbd_tls_session_send(NbdTlsSession *s, const void *buf, size_t len,
                             GError **errp);

#endif
