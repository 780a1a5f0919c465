/*
 * FUSE exports (block-export-add "type": "fuse"): a node appears as one regular
 * file mounted over an existing regular file (the mountpoint), through libfuse3's
 * low-level API. The session's /dev/fuse fd is served from the daemon's GLib
 * main loop, as the NBD server's sockets are: reads, writes, zero writes,
 * discards and flushes go to the block layer's request layer (block/aio.c) and
 * are answered from their callbacks, so the kernel's requests run side by side;
 * while a job holds the block layer (block_io_begin fails) the fd is left alone
 * and retried.
 * Reads, writes, fallocate (grow, punch hole, zero range), fsync, truncate,
 * SEEK_DATA/SEEK_HOLE, chmod/chown as QEMU 7.2's FUSE export answers them.
 */
#define FUSE_USE_VERSION 31
#include "fuse-export.h"

#include "block/aio.h"
#include <fuse_lowlevel.h>
#include <glib-unix.h>
#include <sys/stat.h>

#define FUSE_RETRY_MS       10
#define FUSE_MAX_READ       (64 * 1024 * 1024)
#define FUSE_BATCH          64      /* requests handled per wakeup */

struct FuseExport {
    BlockDriverState *bs;
    char *mountpoint;
    bool writable;
    bool growable;
    bool allow_other;
    struct fuse_session *se;
    struct fuse_buf buf;
    guint watch;
    guint retry;
    guint aio_watch;        /* bdrv_aio_notifier_fd() */
    mode_t st_mode;
    uid_t st_uid;
    gid_t st_gid;
    time_t created;
};

typedef enum FuseReqKind { FUSE_REQ_READ, FUSE_REQ_WRITE, FUSE_REQ_OTHER } FuseReqKind;

/* A request in the request layer, answered from its callback. */
typedef struct FuseReq {
    fuse_req_t req;
    FuseReqKind kind;
    uint8_t *buf;           /* READ: the data; WRITE: a copy of the payload */
    size_t size;
} FuseReq;

static void fuse_req_done(void *opaque, int ret)
{
    FuseReq *r = opaque;

    if (ret < 0) {
        fuse_reply_err(r->req, -ret);
    } else if (r->kind == FUSE_REQ_READ) {
        fuse_reply_buf(r->req, (const char *)r->buf, r->size);
    } else if (r->kind == FUSE_REQ_WRITE) {
        fuse_reply_write(r->req, r->size);
    } else {
        fuse_reply_err(r->req, 0);
    }
    g_free(r->buf);
    g_free(r);
}

/* Start @op for @req; its callback replies. @buf (may be NULL) becomes the request's. */
static void fuse_submit(fuse_req_t req, FuseReqKind kind, BdrvAioOp op, int64_t off,
                        int64_t bytes, uint8_t *buf, size_t size, int flags)
{
    FuseExport *fe = fuse_req_userdata(req);
    FuseReq *r = g_new0(FuseReq, 1);

    r->req = req;
    r->kind = kind;
    r->buf = buf;
    r->size = size;
    bdrv_aio_submit(fe->bs, op, off, bytes, buf, flags, fuse_req_done, r);
}

/* Mountpoints of our exports: statting one of them would ask ourselves. */
static GHashTable *mountpoints;

/* ---- requests ---- */

static void fuse_fill_stat(FuseExport *fe, struct stat *st, int64_t len)
{
    int64_t alloc = bdrv_get_allocated_file_size(fe->bs);

    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_ROOT_ID;
    st->st_mode = fe->st_mode;
    st->st_nlink = 1;
    st->st_uid = fe->st_uid;
    st->st_gid = fe->st_gid;
    st->st_size = len;
    st->st_blksize = bdrv_get_request_alignment(fe->bs);
    st->st_blocks = DIV_ROUND_UP(alloc < 0 ? len : alloc, 512);
    st->st_atime = st->st_mtime = st->st_ctime = fe->created;
}

static void fuse_reply_stat(fuse_req_t req, FuseExport *fe)
{
    int64_t len = bdrv_getlength(fe->bs);
    struct stat st;

    if (len < 0) {
        fuse_reply_err(req, -len);
        return;
    }
    fuse_fill_stat(fe, &st, len);
    fuse_reply_attr(req, &st, 1.0);
}

static void fuse_op_init(void *opaque, struct fuse_conn_info *conn)
{
    /* libfuse wants the max_read of the mount options repeated here */
    conn->max_read = FUSE_MAX_READ;
}

static void fuse_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    /* the root is the file itself: there is nothing to look up in it */
    fuse_reply_err(req, ENOENT);
}

static void fuse_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_stat(req, fuse_req_userdata(req));
}

/* Resize the node to @size: 0 or -errno. */
static int fuse_truncate(FuseExport *fe, int64_t size, PreallocMode prealloc)
{
    g_autoptr(GError) err = NULL;

    bdrv_aio_drain(fe->bs);     /* never beside requests in flight */
    return bdrv_truncate(fe->bs, size, true, prealloc, 0, &err);
}

static void fuse_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                            int to_set, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_req_userdata(req);
    int supported = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE;

    if (fe->allow_other) {
        supported |= FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
    }
    if (to_set & ~supported) {
        fuse_reply_err(req, ENOTSUP);
        return;
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        /* only the owner may use a file others cannot reach */
        if (!fe->allow_other && (attr->st_mode & (S_IRWXG | S_IRWXO))) {
            fuse_reply_err(req, EPERM);
            return;
        }
        if (!fe->writable && (attr->st_mode & (S_IWUSR | S_IWGRP | S_IWOTH))) {
            fuse_reply_err(req, EROFS);
            return;
        }
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        int ret;

        if (!fe->writable) {
            fuse_reply_err(req, EACCES);
            return;
        }
        ret = fuse_truncate(fe, attr->st_size, PREALLOC_MODE_OFF);
        if (ret < 0) {
            fuse_reply_err(req, -ret);
            return;
        }
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        fe->st_mode = S_IFREG | (attr->st_mode & 07777);
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        fe->st_uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        fe->st_gid = attr->st_gid;
    }
    fuse_reply_stat(req, fe);
}

static void fuse_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    /* no page cache: every read and write reaches the node */
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

static void fuse_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_req_userdata(req);
    int64_t len = bdrv_getlength(fe->bs);
    uint8_t *buf;

    if (len < 0) {
        fuse_reply_err(req, -len);
        return;
    }
    if (off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size = MIN((int64_t)size, len - off);      /* a short read at EOF, as cp wants */
    buf = g_try_malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fuse_submit(req, FUSE_REQ_READ, BDRV_AIO_READ, off, size, buf, size, 0);
}

/* A write-type request: the node's length, or -1 once @req got its error reply. */
static int64_t writable_length(fuse_req_t req, FuseExport *fe)
{
    int64_t len;

    if (!fe->writable) {
        fuse_reply_err(req, EACCES);
        return -1;
    }
    len = bdrv_getlength(fe->bs);
    if (len < 0) {
        fuse_reply_err(req, -len);
        return -1;
    }
    return len;
}

static void fuse_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                          off_t off, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_req_userdata(req);
    int64_t len = writable_length(req, fe);
    int ret;

    if (len < 0) {
        return;
    }
    if (off + (int64_t)size > len) {
        if (fe->growable) {
            ret = fuse_truncate(fe, off + size, PREALLOC_MODE_OFF);
            if (ret < 0) {
                fuse_reply_err(req, -ret);
                return;
            }
        } else if (off >= len) {
            fuse_reply_err(req, EIO);
            return;
        } else {
            size = len - off;           /* a short write up to EOF */
        }
    }
    /* libfuse owns @buf only until we return */
    fuse_submit(req, FUSE_REQ_WRITE, BDRV_AIO_WRITE, off, size,
                g_memdup2(buf, size), size, 0);
}

static void fuse_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                              off_t length, struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_req_userdata(req);
    int64_t len = writable_length(req, fe);
    int ret;

    if (len < 0) {
        return;
    }
    if (mode == 0) {
        /* only growing can allocate: a truncate with preallocation */
        if (off < len) {
            fuse_reply_err(req, EOPNOTSUPP);
            return;
        }
        ret = 0;
        if (off > len) {
            ret = fuse_truncate(fe, off, PREALLOC_MODE_OFF);
        }
        if (ret == 0) {
            ret = fuse_truncate(fe, off + length, PREALLOC_MODE_FALLOC);
        }
    } else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
        int64_t end = MIN(off + length, len);

        if (off < end) {
            fuse_submit(req, FUSE_REQ_OTHER, BDRV_AIO_DISCARD, off, end - off, NULL, 0, 0);
            return;
        }
        ret = 0;
    } else if (mode == FALLOC_FL_ZERO_RANGE ||
               mode == (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)) {
        ret = 0;
        if (off + length > len && !(mode & FALLOC_FL_KEEP_SIZE)) {
            ret = fuse_truncate(fe, off + length, PREALLOC_MODE_OFF);
            len = off + length;
        }
        if (ret == 0 && off + length > len) {
            ret = -EIO;
        } else if (ret == 0) {
            fuse_submit(req, FUSE_REQ_OTHER, BDRV_AIO_WRITE_ZEROES, off, length, NULL, 0,
                        BDRV_REQ_MAY_UNMAP);
            return;
        }
    } else {
        ret = -EOPNOTSUPP;
    }
    fuse_reply_err(req, ret < 0 ? -ret : 0);
}

static void fuse_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    /* answered once every write before it is done and flushed */
    fuse_submit(req, FUSE_REQ_OTHER, BDRV_AIO_FLUSH, 0, 0, NULL, 0, 0);
}

static void fuse_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                          struct fuse_file_info *fi)
{
    fuse_op_flush(req, ino, fi);
}

/* SEEK_DATA / SEEK_HOLE: what reads as zero is a hole, EOF is one too. */
static void fuse_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                          struct fuse_file_info *fi)
{
    FuseExport *fe = fuse_req_userdata(req);
    int64_t len = bdrv_getlength(fe->bs);

    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (len < 0) {
        fuse_reply_err(req, -len);
        return;
    }
    while (off < len) {
        int64_t pnum;
        int st = bdrv_block_status_above(fe->bs, off, len - off, &pnum);
        bool hole;

        if (st < 0) {
            fuse_reply_err(req, -st);
            return;
        }
        hole = st & BDRV_BLOCK_ZERO;
        if (hole == (whence == SEEK_HOLE)) {
            fuse_reply_lseek(req, off);
            return;
        }
        if (pnum <= 0) {
            break;
        }
        off += pnum;
    }
    if (whence == SEEK_HOLE && off <= len) {
        fuse_reply_lseek(req, len);
        return;
    }
    fuse_reply_err(req, ENXIO);
}

static const struct fuse_lowlevel_ops fuse_ops = {
    .init = fuse_op_init,
    .lookup = fuse_op_lookup,
    .getattr = fuse_op_getattr,
    .setattr = fuse_op_setattr,
    .open = fuse_op_open,
    .read = fuse_op_read,
    .write = fuse_op_write,
    .fallocate = fuse_op_fallocate,
    .flush = fuse_op_flush,
    .fsync = fuse_op_fsync,
    .lseek = fuse_op_lseek,
};

/* ---- the session in the main loop ---- */

static gboolean fuse_on_readable(int fd, GIOCondition cond, gpointer opaque);

/* The request layer has completions: run their callbacks (they reply). */
static gboolean fuse_aio_ready(int fd, GIOCondition cond, gpointer opaque)
{
    bdrv_aio_poll(false);
    block_io_end();
    return G_SOURCE_CONTINUE;
}

static gboolean fuse_retry(gpointer opaque)
{
    FuseExport *fe = opaque;

    fe->retry = 0;
    fe->watch = g_unix_fd_add(fuse_session_fd(fe->se), G_IO_IN, fuse_on_readable, fe);
    return G_SOURCE_REMOVE;
}

static gboolean fuse_on_readable(int fd, GIOCondition cond, gpointer opaque)
{
    FuseExport *fe = opaque;

    if (!block_io_begin()) {
        /* a job has the block layer: leave the requests queued in the kernel */
        fe->watch = 0;
        fe->retry = g_timeout_add(FUSE_RETRY_MS, fuse_retry, fe);
        return G_SOURCE_REMOVE;
    }
    for (int i = 0; i < FUSE_BATCH && !fuse_session_exited(fe->se); i++) {
        int ret = fuse_session_receive_buf(fe->se, &fe->buf);

        if (ret <= 0) {
            break;      /* -EAGAIN: nothing more; 0: interrupted or unmounted */
        }
        fuse_session_process_buf(fe->se, &fe->buf);
    }
    /* requests that completed in this thread are answered now */
    bdrv_aio_poll(false);
    block_io_end();
    if (fuse_session_exited(fe->se)) {
        /* unmounted from outside (fusermount -u): stop watching */
        fe->watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/* Create and mount a session, with allow_other or without: 0 or -1. */
static int fuse_mount(FuseExport *fe, bool allow_other, GError **errp)
{
    g_autofree char *mount_opts =
        g_strdup_printf("max_read=%d,default_permissions%s", FUSE_MAX_READ,
                        allow_other ? ",allow_other" : "");
    char *argv[] = { (char *)"qemu-storage-daemon", (char *)"-o", mount_opts, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);

    fe->se = fuse_session_new(&args, &fuse_ops, sizeof(fuse_ops), fe);
    fuse_opt_free_args(&args);
    if (!fe->se) {
        error_setg(errp, "Failed to set up FUSE session");
        return -1;
    }
    if (fuse_session_mount(fe->se, fe->mountpoint) < 0) {
        fuse_session_destroy(fe->se);
        fe->se = NULL;
        error_setg(errp, "Failed to mount FUSE session to export");
        return -1;
    }
    return 0;
}

FuseExport *fuse_export_new(BlockDriverState *bs, JsonObject *opts, bool writable,
                            GError **errp)
{
    const char *mountpoint = opts_peek_str(opts, "mountpoint");
    const char *allow_other = opts_peek_str(opts, "allow-other");
    g_autofree FuseExport *fe = g_new0(FuseExport, 1);
    GError *local = NULL;
    struct stat st;
    int fd;

    fe->growable = opts_get_bool(opts, "growable", false, &local);
    if (local) {
        error_propagate(errp, local);
        return NULL;
    }
    if (!mountpoints) {
        mountpoints = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    if (g_hash_table_contains(mountpoints, mountpoint)) {
        error_setg(errp, "There already is a FUSE export on '%s'", mountpoint);
        return NULL;
    }
    if (stat(mountpoint, &st) < 0) {
        error_setg(errp, "Failed to stat '%s': %s", mountpoint, g_strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "'%s' is not a regular file", mountpoint);
        return NULL;
    }
    fe->bs = bs;
    fe->mountpoint = g_strdup(mountpoint);
    fe->writable = writable;
    fe->st_mode = S_IFREG | S_IRUSR | (writable ? S_IWUSR : 0);
    fe->st_uid = getuid();
    fe->st_gid = getgid();
    fe->created = time(NULL);
    if (!allow_other || !strcmp(allow_other, "auto")) {
        /* allow_other needs root or user_allow_other: try, then do without */
        fe->allow_other = true;
        if (fuse_mount(fe, true, NULL) < 0) {
            fe->allow_other = false;
        }
    } else {
        fe->allow_other = !strcmp(allow_other, "on");
    }
    if (!fe->se && fuse_mount(fe, fe->allow_other, errp) < 0) {
        g_free(fe->mountpoint);
        return NULL;
    }
    fd = fuse_session_fd(fe->se);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    fe->watch = g_unix_fd_add(fd, G_IO_IN, fuse_on_readable, fe);
    fe->aio_watch = g_unix_fd_add(bdrv_aio_notifier_fd(), G_IO_IN, fuse_aio_ready, NULL);
    g_hash_table_add(mountpoints, g_strdup(mountpoint));
    return g_steal_pointer(&fe);
}

void fuse_export_free(FuseExport *fe)
{
    /* the callbacks of requests in flight reply through the session */
    bdrv_aio_drain(fe->bs);
    if (fe->aio_watch) {
        g_source_remove(fe->aio_watch);
    }
    if (fe->watch) {
        g_source_remove(fe->watch);
    }
    if (fe->retry) {
        g_source_remove(fe->retry);
    }
    fuse_session_unmount(fe->se);
    fuse_session_destroy(fe->se);
    g_hash_table_remove(mountpoints, fe->mountpoint);
    free(fe->buf.mem);
    g_free(fe->mountpoint);
    g_free(fe);
}
