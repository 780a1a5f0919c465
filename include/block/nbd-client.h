/*
 * The NBD client pieces that the nbd block driver (block/nbd.c) shares with
 * qemu-nbd's --list: server addresses and their URL forms, connecting a socket
 * with QEMU's error wording, and a libnbd handshake with a deadline.
 */
#ifndef BLOCK_NBD_CLIENT_H
#define BLOCK_NBD_CLIENT_H

#include "qemu/osdep.h"
#include "qemu/error.h"

struct nbd_handle;

typedef struct NbdServerAddr {
    bool is_unix;
    char *path;     /* UNIX socket */
    char *host;     /* TCP */
    char *port;
} NbdServerAddr;

void nbd_server_addr_clear(NbdServerAddr *a);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(NbdServerAddr, nbd_server_addr_clear)
/*
 * Parse nbd://host[:port]/export, nbd+tcp://..., nbd+unix:///export?socket=PATH,
 * nbd:unix:PATH[:exportname=NAME] or nbd:HOST:PORT[:exportname=NAME].
 */
bool nbd_parse_filename(const char *filename, NbdServerAddr *addr, char **export,
                        GError **errp);
/* The URL QEMU shows for the export ("nbd+unix:///exp?socket=PATH"). */
char *nbd_canonical_name(const NbdServerAddr *addr, const char *export);
/* A connected stream socket, or -1 with "Failed to connect to '...'". */
int nbd_socket_connect(const NbdServerAddr *addr, GError **errp);
/*
 * Connect and negotiate within @timeout_s seconds: with @opt_mode the handle is
 * left negotiating (for listing exports), else the export is opened (NBD_OPT_GO)
 * with the meta contexts @metas (NULL-terminated, may be NULL). *@server_msg gets
 * the server's own text for a refused option. TLS with the credentials object
 * @tls_creds (checked by nbd_tls_creds_dir): x509 or PSK.
 */
struct nbd_handle *nbd_client_connect(const NbdServerAddr *addr, const char *export,
                                      const char *tls_creds, const char *const *metas,
                                      bool opt_mode, double timeout_s,
                                      char **server_msg, GError **errp);
/*
 * The folder of the tls-creds-x509 or tls-creds-psk object @id (--object), for a
 * client endpoint; NULL with QEMU's message when there is none.
 */
char *nbd_tls_creds_dir(const char *id, GError **errp);

#endif
