/*
 * The NBD server: protocol constants (from the NBD protocol specification), the
 * export registry the server serves from, and the server's entry points.
 */
#ifndef QSD_NBD_H
#define QSD_NBD_H

#include "daemon.h"

/* Handshake */
#define NBD_INIT_MAGIC          0x4e42444d41474943ULL   /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          0x49484156454F5054ULL   /* "IHAVEOPT" */
#define NBD_REP_MAGIC           0x0003e889045565a9ULL

#define NBD_FLAG_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_NO_ZEROES      (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_C_NO_ZEROES    (1 << 1)

#define NBD_OPT_EXPORT_NAME     1
#define NBD_OPT_ABORT           2
#define NBD_OPT_LIST            3
#define NBD_OPT_STARTTLS        5
#define NBD_OPT_INFO            6
#define NBD_OPT_GO              7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

#define NBD_REP_ACK             1
#define NBD_REP_SERVER          2
#define NBD_REP_INFO            3
#define NBD_REP_META_CONTEXT    4
#define NBD_REP_ERR(v)          ((1U << 31) | (v))
#define NBD_REP_ERR_UNSUP       NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY      NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID     NBD_REP_ERR(3)
#define NBD_REP_ERR_TLS_REQD    NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN     NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN    NBD_REP_ERR(7)

#define NBD_INFO_EXPORT         0
#define NBD_INFO_NAME           1
#define NBD_INFO_DESCRIPTION    2
#define NBD_INFO_BLOCK_SIZE     3

/* Transmission flags */
#define NBD_FLAG_HAS_FLAGS      (1 << 0)
#define NBD_FLAG_READ_ONLY      (1 << 1)
#define NBD_FLAG_SEND_FLUSH     (1 << 2)
#define NBD_FLAG_SEND_FUA       (1 << 3)
#define NBD_FLAG_SEND_TRIM      (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1 << 6)
#define NBD_FLAG_SEND_DF        (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1 << 8)
#define NBD_FLAG_SEND_CACHE     (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1 << 11)

/* Transmission */
#define NBD_REQUEST_MAGIC       0x25609513
#define NBD_SIMPLE_REPLY_MAGIC  0x67446698
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33ef
#define NBD_REQUEST_SIZE        28

#define NBD_CMD_READ            0
#define NBD_CMD_WRITE           1
#define NBD_CMD_DISC            2
#define NBD_CMD_FLUSH           3
#define NBD_CMD_TRIM            4
#define NBD_CMD_CACHE           5
#define NBD_CMD_WRITE_ZEROES    6
#define NBD_CMD_BLOCK_STATUS    7

#define NBD_CMD_FLAG_FUA        (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE    (1 << 1)
#define NBD_CMD_FLAG_DF         (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE    (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO  (1 << 4)

#define NBD_REPLY_FLAG_DONE     (1 << 0)
#define NBD_REPLY_TYPE_NONE     0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR    ((1 << 15) | 1)

#define NBD_STATE_HOLE          (1 << 0)
#define NBD_STATE_ZERO          (1 << 1)
#define NBD_STATE_DIRTY         (1 << 0)   /* qemu:dirty-bitmap: */

/* Errors on the wire */
#define NBD_EPERM       1
#define NBD_EIO         5
#define NBD_ENOMEM      12
#define NBD_EINVAL      22
#define NBD_ENOSPC      28
#define NBD_EOVERFLOW   75
#define NBD_ENOTSUP     95
#define NBD_ESHUTDOWN   108

#define NBD_MAX_BUFFER_SIZE     (32 * MiB)
#define NBD_MAX_STRING_SIZE     4096
/* Meta context ids as QEMU assigns them: fixed for the first two, then one per
 * exported bitmap in the export's order. */
#define NBD_META_ID_BASE_ALLOCATION 0
#define NBD_META_ID_ALLOCATION_DEPTH 1
#define NBD_META_ID_DIRTY_BITMAP 2

/* A dirty bitmap an export offers as qemu:dirty-bitmap:NAME. */
typedef struct NbdExportBitmap {
    char *name;
    BlockDriverState *bs;   /* the node the bitmap lives in */
} NbdExportBitmap;

/* An export the NBD server offers, or a FUSE export (export.c owns them). */
typedef struct NbdExport {
    char *id;               /* block export id */
    char *name;             /* NBD export name */
    char *description;      /* may be NULL */
    BlockDriverState *bs;
    bool writable;
    bool multi_conn;        /* advertise NBD_FLAG_CAN_MULTI_CONN */
    bool alloc_depth;       /* offer qemu:allocation-depth */
    NbdExportBitmap *bitmaps;   /* offered as qemu:dirty-bitmap:NAME, */
    unsigned nb_bitmaps;        /* ids NBD_META_ID_DIRTY_BITMAP + index */
    bool shutting_down;
    int clients;            /* connections using it */
    struct FuseExport *fuse;    /* a FUSE export (no NBD name): its mount */
} NbdExport;

/*
 * The export registry is the embedding program's (the daemon's export.c,
 * qemu-nbd.c), and so is the block layer lock (block_lock_try/block_unlock).
 * Look up by NBD name; every export in the order NBD_OPT_LIST shows. */
NbdExport *nbd_export_find(const char *name);
GList *nbd_export_list(void);
/* A client stopped using @exp (it may be deleted now). */
void nbd_export_put(NbdExport *exp);

/* nbd-server.c */
/*
 * The node that holds dirty bitmap @name: @bs or, with @chain, the first in its
 * chain (backing files, filtered children) that does; NULL and QEMU's error if
 * none does. A bitmap still recording on a node opened read-write cannot go
 * with a read-only (!@writable) export.
 */
BlockDriverState *nbd_find_bitmap(BlockDriverState *bs, const char *name, bool chain,
                                  bool writable, GError **errp);
/* Listen on {"type": "unix", "path": P} or {"type": "inet", "host": H, "port": N}. */
bool nbd_server_start(JsonObject *addr, GError **errp);
bool nbd_server_running(void);
/* Close the listener and every client. */
void nbd_server_stop(void);
/* Disconnect every client of @exp. */
void nbd_server_drop_clients(NbdExport *exp);
/*
 * qemu-nbd: accept at most @max_clients connections at a time (0: any number),
 * and call @client_gone after each connection has been closed.
 */
void nbd_server_set_limits(int max_clients, void (*client_gone)(void));
/* Serve a connected (non-blocking) socket as a new client (accept, fuzzing). */
void nbd_server_add_client(int fd);
/* Connections open now. */
int nbd_server_client_count(void);
/* Listen on TCP @host (NULL/"": any) and @port; the fd, or -1. */
int nbd_inet_listen(const char *host, const char *port, GError **errp);

#endif
