/*
 * The "file" protocol driver: the only code that touches file descriptors.
 * pread/pwrite loops, write zeroes and discard via fallocate, flush via fdatasync,
 * truncate with preallocation, block status via SEEK_DATA/SEEK_HOLE, O_DIRECT
 * alignment probing, and OFD byte-range locks laid out as QEMU lays them out, so
 * that our tools and QEMU's see each other's locks.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/aio.h"
#include <sys/uio.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <linux/cdrom.h>

#ifndef F_OFD_SETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

/* QEMU's lock byte layout: 100 + bit for each permission held,
 * 200 + bit for each permission not shared with other users. */
#define LOCK_PERM_BASE   100
#define LOCK_SHARED_BASE 200

typedef struct BDRVRawState {
    int fd;
    bool is_block_dev;
    bool is_device;      /* a host_device/host_cdrom node (char or block device) */
    bool is_cdrom;
    bool use_lock;
    bool has_zero_range;
    bool has_punch_hole;
    bool dirty;          /* written since the last successful fdatasync (atomic:
                          * set after a write, cleared as a flush starts) */
    GRWLock size_lock;   /* writes hold it shared; growing the file by ftruncate
                          * holds it alone, so a concurrent write never sees
                          * the file shrink under it */
    uint64_t perm;       /* lock bytes held: permissions used (100 + bit) */
    uint64_t unshared;   /* and permissions not shared (200 + bit) */
} BDRVRawState;

static const char *const file_runtime_opts[] = {
    "filename", "locking", "aio", "aio-max-batch", "pr-manager", "drop-cache",
    "x-check-cache-dropped", NULL,
};

static const char *const perm_names[] = {
    "consistent read", "write", "write unchanged", "resize",
};

static int ofd_lock(int fd, int64_t byte, int type, bool test, bool *conflict)
{
    struct flock fl = {
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
        .l_type = type,
    };

    if (test) {
        if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
            return -errno;
        }
        *conflict = fl.l_type != F_UNLCK;
        return 0;
    }
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        return -errno;
    }
    return 0;
}

/*
 * Hold exactly the lock bytes for @perm and @unshared (read locks: any number of
 * holders); with @keep, bytes already held stay held (only adding).
 */
static int raw_set_lock_bytes(BDRVRawState *s, uint64_t perm, uint64_t unshared,
                              bool keep)
{
    for (int i = 0; i < (int)ARRAY_SIZE(perm_names); i++) {
        uint64_t bit = 1ULL << i;
        struct { int64_t byte; bool want, held; } b[2] = {
            { LOCK_PERM_BASE + i, perm & bit, s->perm & bit },
            { LOCK_SHARED_BASE + i, unshared & bit, s->unshared & bit },
        };
        for (int j = 0; j < 2; j++) {
            int ret = 0;
            if (b[j].want && !b[j].held) {
                ret = ofd_lock(s->fd, b[j].byte, F_RDLCK, false, NULL);
            } else if (!b[j].want && b[j].held && !keep) {
                ret = ofd_lock(s->fd, b[j].byte, F_UNLCK, false, NULL);
            }
            if (ret < 0) {
                return ret;
            }
        }
    }
    return 0;
}

/*
 * Does another process's lock forbid @perm or @unshared? QEMU's order: every
 * permission we need first, then every one we unshare.
 */
static int raw_check_lock_bytes(BDRVRawState *s, uint64_t perm, uint64_t unshared,
                                const char *filename, GError **errp)
{
    bool conflict = false;

    for (int i = 0; i < (int)ARRAY_SIZE(perm_names); i++) {
        if ((perm & (1ULL << i)) &&
            ofd_lock(s->fd, LOCK_SHARED_BASE + i, F_WRLCK, true, &conflict) == 0 &&
            conflict) {
            error_setg(errp, "Failed to get \"%s\" lock\n"
                       "Is another process using the image [%s]?",
                       perm_names[i], filename);
            return -EAGAIN;
        }
    }
    for (int i = 0; i < (int)ARRAY_SIZE(perm_names); i++) {
        if ((unshared & (1ULL << i)) &&
            ofd_lock(s->fd, LOCK_PERM_BASE + i, F_WRLCK, true, &conflict) == 0 &&
            conflict) {
            error_setg(errp, "Failed to get shared \"%s\" lock\n"
                       "Is another process using the image [%s]?",
                       perm_names[i], filename);
            return -EAGAIN;
        }
    }
    return 0;
}

/*
 * The node's users' needs as lock bytes. As QEMU does, the new bytes are taken
 * before others' are checked (two processes racing both see the conflict), and
 * the old set comes back when the check fails.
 */
static int raw_set_perm(BlockDriverState *bs, uint64_t perm, uint64_t shared,
                        GError **errp)
{
    BDRVRawState *s = bs->opaque;
    uint64_t unshared = BLK_PERM_ALL & ~shared;
    uint64_t old_perm = s->perm, old_unshared = s->unshared;
    int ret;

    if (!s->use_lock || s->fd < 0) {
        return 0;
    }
    ret = raw_set_lock_bytes(s, perm, unshared, true);
    if (ret == 0) {
        s->perm |= perm;
        s->unshared |= unshared;
        ret = raw_check_lock_bytes(s, perm, unshared, bs->filename, errp);
        if (ret < 0) {
            raw_set_lock_bytes(s, old_perm, old_unshared, false);
            s->perm = old_perm;
            s->unshared = old_unshared;
            return ret;
        }
        ret = raw_set_lock_bytes(s, perm, unshared, false);
        s->perm = perm;
        s->unshared = unshared;
        if (ret == 0) {
            return 0;
        }
    }
    if (ret == -EINVAL || ret == -ENOTSUP || ret == -ENOLCK) {
        /* the file system has no OFD locks: go on unlocked, as QEMU's auto does */
        s->use_lock = false;
        return 0;
    }
    error_setg_errno(errp, -ret, "Failed to lock image [%s]", bs->filename);
    return ret;
}

/* Find the smallest O_DIRECT request alignment the file accepts. */
static uint32_t probe_direct_alignment(int fd)
{
    static const uint32_t sizes[] = { 512, 1024, 2048, 4096 };
    void *buf = NULL;
    uint32_t found = 4096;

    if (posix_memalign(&buf, 4096, 4096)) {
        return found;
    }
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        ssize_t r = pread(fd, buf, sizes[i], 0);
        if (r >= 0 || errno != EINVAL) {
            found = sizes[i];
            break;
        }
    }
    free(buf);
    return found;
}

/* "file:NAME", "host_device:NAME", "host_cdrom:NAME": the prefix goes */
static int raw_parse_filename(const char *filename, JsonObject *opts, GError **errp)
{
    const char *drv = opts_peek_str(opts, "driver");
    g_autofree char *prefix = g_strdup_printf("%s:", drv ? drv : "file");

    strstart(filename, prefix, &filename);
    opts_set_str(opts, "filename", filename);
    return 0;
}

static int raw_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVRawState *s = bs->opaque;
    g_autofree char *filename = opts_get_str(opts, "filename");
    g_autofree char *locking = opts_get_str(opts, "locking");
    int oflags = O_CLOEXEC;
    struct stat st;
    int ret;

    s->fd = -1;
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is required");
        return -EINVAL;
    }
    if (!*filename) {
        error_setg(errp, "The 'file' block driver requires a file name");
        return -EINVAL;
    }
    if (locking && strcmp(locking, "on") && strcmp(locking, "off") &&
        strcmp(locking, "auto")) {
        error_setg(errp, "Parameter 'locking' does not accept value '%s'", locking);
        return -EINVAL;
    }
    oflags |= (flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & BDRV_O_NOCACHE) {
        oflags |= O_DIRECT;
    }
    s->fd = open(filename, oflags);
    if (s->fd < 0) {
        ret = -errno;
        if (ret == -EROFS) {
            ret = -EACCES;
        }
        error_setg_errno(errp, -ret, "Could not open '%s'", filename);
        return ret;
    }
    if (fstat(s->fd, &st) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not stat '%s'", filename);
        goto fail;
    }
    s->is_device = bs->drv != &bdrv_file;
    s->is_cdrom = bs->drv == &bdrv_host_cdrom;
    if (!s->is_device && !S_ISREG(st.st_mode)) {
        error_setg(errp, "'file' driver requires '%s' to be a regular file", filename);
        ret = -EINVAL;
        goto fail;
    }
    if (s->is_device && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        error_setg(errp, "'%s' driver requires '%s' to be either a character or block "
                   "device", bs->drv->format_name, filename);
        ret = -EINVAL;
        goto fail;
    }
    s->is_block_dev = S_ISBLK(st.st_mode);
    s->has_zero_range = true;
    s->has_punch_hole = true;
    if (flags & BDRV_O_NOCACHE) {
        bs->request_alignment = probe_direct_alignment(s->fd);
    }

    /* the locks follow the node's users (raw_set_perm); none are held yet */
    s->use_lock = !(locking && !strcmp(locking, "off"));
    s->perm = 0;
    s->unshared = 0;
    g_rw_lock_init(&s->size_lock);   /* allocates: only once the open succeeds */
    return 0;

fail:
    close(s->fd);
    s->fd = -1;
    return ret;
}

static void raw_close(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    if (s->fd >= 0) {
        close(s->fd);     /* OFD locks go with the last descriptor */
        s->fd = -1;
    }
    g_rw_lock_clear(&s->size_lock);
}

static int raw_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                     int flags)
{
    BDRVRawState *s = bs->opaque;
    uint8_t *p = buf;

    bool nowait = bdrv_aio_nowait();

    while (bytes > 0) {
        struct iovec iov = { p, MIN(bytes, (int64_t)1 << 30) };
        ssize_t r = nowait ? preadv2(s->fd, &iov, 1, offset, RWF_NOWAIT)
                           : pread(s->fd, p, iov.iov_len, offset);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (nowait) {
                return -EAGAIN;     /* not cached (or no RWF_NOWAIT): a worker reads it */
            }
            return -errno;
        }
        if (r == 0) {
            memset(p, 0, bytes);     /* past EOF reads as zeros */
            return 0;
        }
        p += r;
        offset += r;
        bytes -= r;
    }
    return 0;
}

/* Requests may run in several threads at once (block/aio.c): see size_lock. */
static void mark_dirty(BDRVRawState *s)
{
    __atomic_store_n(&s->dirty, true, __ATOMIC_SEQ_CST);
}

/* Grow the file to @size if it is shorter; never shrinks it. */
static int grow_to(BDRVRawState *s, int64_t size)
{
    struct stat st;
    int ret = 0;

    g_rw_lock_writer_lock(&s->size_lock);
    if (fstat(s->fd, &st) < 0) {
        ret = -errno;
    } else if (st.st_size < size && ftruncate(s->fd, size) < 0) {
        ret = -errno;
    }
    g_rw_lock_writer_unlock(&s->size_lock);
    return ret;
}

static int do_pwrite(BDRVRawState *s, int64_t offset, int64_t bytes, const uint8_t *p)
{
    while (bytes > 0) {
        ssize_t r = pwrite(s->fd, p, MIN(bytes, (int64_t)1 << 30), offset);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -ENOSPC;
        }
        p += r;
        offset += r;
        bytes -= r;
    }
    return 0;
}

static int raw_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const void *buf, int flags)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    (void)flags;
    g_rw_lock_reader_lock(&s->size_lock);
    ret = do_pwrite(s, offset, bytes, buf);
    g_rw_lock_reader_unlock(&s->size_lock);
    mark_dirty(s);
    return ret;
}

static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (s->is_cdrom && !s->is_block_dev) {
        return -ENOMEDIUM;        /* no disc in a character device */
    }
    if (s->is_cdrom && ioctl(s->fd, CDROM_DRIVE_STATUS, CDSL_CURRENT) != CDS_DISC_OK) {
        return -ENOMEDIUM;
    }
    if (s->is_device && !s->is_block_dev) {
        return 0;                 /* a character device has no length */
    }
    if (s->is_block_dev) {
        uint64_t size;
        if (ioctl(s->fd, BLKGETSIZE64, &size) == 0) {
            return size;
        }
        return lseek(s->fd, 0, SEEK_END);
    }
    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return st.st_size;
}

static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static int do_fallocate(int fd, int mode, int64_t offset, int64_t bytes)
{
    int r;

    do {
        r = fallocate(fd, mode, offset, bytes);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static int do_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int flags)
{
    BDRVRawState *s = bs->opaque;
    int64_t len = raw_getlength(bs);
    int ret;

    if (s->is_block_dev) {
        return -ENOTSUP;
    }
    mark_dirty(s);
    /* Past EOF a hole is already zero: extend the file size. */
    if (len >= 0 && offset >= len) {
        return grow_to(s, offset + bytes);
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && s->has_punch_hole) {
        ret = do_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, MIN(bytes, len - offset));
        if (ret == 0) {
            return offset + bytes > len ? grow_to(s, offset + bytes) : 0;
        }
        if (ret == -EOPNOTSUPP || ret == -ENOTSUP) {
            s->has_punch_hole = false;
        } else {
            return ret;
        }
    }
    if (s->has_zero_range) {
        ret = do_fallocate(s->fd, FALLOC_FL_ZERO_RANGE, offset, bytes);
        if (ret == 0) {
            return 0;
        }
        if (ret != -EOPNOTSUPP && ret != -ENOTSUP && ret != -EINVAL) {
            return ret;
        }
        s->has_zero_range = false;
    }
    return -ENOTSUP;
}

static int raw_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int flags)
{
    int ret = do_pwrite_zeroes(bs, offset, bytes, flags);

    mark_dirty(bs->opaque);
    return ret;
}

static int raw_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (s->is_block_dev || !s->has_punch_hole) {
        return 0;
    }
    ret = do_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes);
    mark_dirty(s);
    if (ret == -EOPNOTSUPP || ret == -ENOTSUP) {
        s->has_punch_hole = false;
        return 0;
    }
    return ret;
}

/*
 * fdatasync only what this node wrote since its last successful flush, as QEMU
 * skips flushing a node whose write generation has not moved: flushing a clean
 * file still costs a journal commit, several milliseconds per flush on ext4.
 */
static int raw_flush_to_disk(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    int r;

    /* a write that ends after this point leaves the flag set for the next flush */
    if (!__atomic_exchange_n(&s->dirty, false, __ATOMIC_SEQ_CST)) {
        return 0;
    }
    do {
        r = fdatasync(s->fd);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        mark_dirty(s);
        return -errno;
    }
    return 0;
}

/*
 * An empty file that grows gets its first block written (with zeros), as QEMU
 * does, so that O_DIRECT alignment can be probed on it later; `qemu-img map`
 * shows that block as data.
 */
static int allocate_first_block(BlockDriverState *bs, int64_t size)
{
    int64_t n = MIN(size, 4096);

    return n > 0 ? bdrv_pwrite_zero_buffer(bs, 0, n) : 0;
}

static int raw_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                        PreallocMode prealloc, int flags, GError **errp)
{
    BDRVRawState *s = bs->opaque;
    int64_t cur = raw_getlength(bs);
    int ret;

    if (cur < 0) {
        error_setg_errno(errp, -cur, "Could not determine current size");
        return cur;
    }
    s->dirty = true;
    if (s->is_device) {
        if (offset > cur || (exact && offset != cur)) {
            error_setg(errp, "Cannot grow device files");
            return -EINVAL;
        }
        return 0;
    }
    if (prealloc != PREALLOC_MODE_OFF && offset < cur) {
        error_setg(errp, "Preallocation mode '%s' unsupported for shrinking",
                   PreallocMode_str[prealloc]);
        return -ENOTSUP;
    }
    switch (prealloc) {
    case PREALLOC_MODE_OFF:
        if (ftruncate(s->fd, offset) < 0) {
            ret = -errno;
            error_setg_errno(errp, -ret, "Failed to resize the file");
            return ret;
        }
        return cur == 0 ? allocate_first_block(bs, offset) : 0;
    case PREALLOC_MODE_FALLOC:
        if (offset > cur) {
            ret = do_fallocate(s->fd, 0, cur, offset - cur);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not preallocate new data");
                return ret;
            }
        }
        return cur == 0 ? allocate_first_block(bs, offset) : 0;
    case PREALLOC_MODE_FULL: {
        int64_t pos = cur;
        const int64_t chunk = 16 * MiB;
        if (ftruncate(s->fd, offset) < 0) {
            ret = -errno;
            error_setg_errno(errp, -ret, "Failed to resize the file");
            return ret;
        }
        while (pos < offset) {
            int64_t n = MIN(chunk, offset - pos);
            ret = bdrv_pwrite_zero_buffer(bs, pos, n);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not write zeros for preallocation");
                return ret;
            }
            pos += n;
        }
        return 0;
    }
    default:
        error_setg(errp, "Unsupported preallocation mode: %s", PreallocMode_str[prealloc]);
        return -ENOTSUP;
    }
}

static int raw_host_fd(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    return bs->open_flags & BDRV_O_NOCACHE ? -1 : s->fd;
}

static int raw_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVRawState *s = bs->opaque;
    off_t data, hole;

    *map = offset;
    *file = bs;
    if (s->is_device) {
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* nothing but a hole up to EOF */
            *pnum = bytes;
            return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
        }
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    }
    hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole < 0 || hole <= offset) {
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    *pnum = MIN(bytes, hole - offset);
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

/* -o options of qemu-img create -f raw / the file protocol, in QEMU's order (the
 * "Formatting" line lists them in this order) */
static const CreateOptDesc file_create_opts[] = {
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { "nocow", OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)", NULL },
    { "preallocation", OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)", NULL },
    { "extent_size_hint", OPT_SIZE, "Extent size hint for the image file, 0 to disable",
      NULL },
    { NULL },
};

/* ---- creating files ---- */

BlockDriverState *bdrv_create_file_open(const char *filename, uint64_t perm,
                                        uint64_t shared, bool *created, GError **errp)
{
    g_autoptr(JsonObject) o = json_object_new();
    const BlockDriver *proto = bdrv_find_protocol(filename, true, errp);
    BlockDriverState *bs;
    int fd;

    if (!proto) {
        return NULL;
    }
    if (proto->create_simple) {
        /* an image made on an NBD export: it exists, and is never removed */
        *created = false;
        bs = bdrv_open(filename, o, BDRV_O_RDWR | BDRV_O_PROTOCOL | BDRV_O_NO_USER,
                       errp);
        if (bs && bdrv_perm_attach(bs, bs, perm, shared, errp) < 0) {
            bdrv_unref(bs);
            bs = NULL;
        }
        return bs;
    }
    if (proto->create_opts && proto->parse_filename != raw_parse_filename) {
        /* a protocol that makes its own files (ssh): an empty one, then opened;
         * like QEMU, a failed creation leaves it there */
        g_autoptr(JsonObject) c = json_object_new();

        *created = false;
        json_object_set_int_member(c, "size", 0);
        if (proto->create_opts(filename, c, errp) < 0) {
            return NULL;
        }
        bs = bdrv_open(filename, o, BDRV_O_RDWR | BDRV_O_PROTOCOL | BDRV_O_NO_USER,
                       errp);
        if (bs && bdrv_perm_attach(bs, bs, perm, shared, errp) < 0) {
            bdrv_unref(bs);
            bs = NULL;
        }
        return bs;
    }
    if (proto->parse_filename != raw_parse_filename) {
        error_setg(errp, "Protocol driver '%s' does not support image creation",
                   proto->format_name);
        return NULL;
    }
    /* "file:NAME": the file is NAME */
    opts_set_str(o, "driver", proto->format_name);
    raw_parse_filename(filename, o, NULL);
    filename = opts_peek_str(o, "filename");
    /* O_EXCL tells whether this creation makes the file (only then may it go again) */
    fd = open(filename, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) {
        /* an existing file, a device, or a dangling symlink: made through the link */
        fd = open(filename, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not create '%s'", filename);
        return NULL;
    }
    close(fd);
    if (proto == &bdrv_file) {
        /* a plain name that is a device node opens as one */
        opts_set_str(o, "driver", bdrv_find_protocol(filename, false, NULL)->format_name);
    }
    bs = bdrv_open(NULL, o, BDRV_O_RDWR | BDRV_O_NO_USER, errp);
    if (bs && bdrv_perm_attach(bs, bs, perm, shared, errp) < 0) {
        bdrv_unref(bs);
        bs = NULL;
    }
    if (!bs && *created) {
        unlink(filename);
    }
    return bs;
}

int bdrv_create_file_fill(BlockDriverState *bs, uint64_t size, PreallocMode prealloc,
                          GError **errp)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (bs->drv->create_simple) {
        /* QEMU's simple creation: fit the node to the size, zero the first sector */
        if (prealloc != PREALLOC_MODE_OFF) {
            error_setg(errp, "Unsupported preallocation mode '%s'",
                       PreallocMode_str[prealloc]);
            return -ENOTSUP;
        }
        ret = bdrv_truncate(bs, size, false, prealloc, 0, errp);
        if (ret < 0) {
            return ret;
        }
        ret = bdrv_pwrite_zeroes(bs, 0, MIN((int64_t)BDRV_SECTOR_SIZE, bdrv_getlength(bs)),
                                 BDRV_REQ_MAY_UNMAP);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write to the new image");
        }
        return ret;
    }
    if (bs->drv->create_opts && bs->drv->parse_filename != raw_parse_filename) {
        /* made empty by bdrv_create_file_open(): it only grows */
        if (prealloc != PREALLOC_MODE_OFF) {
            error_setg(errp, "Unsupported preallocation mode '%s'",
                       PreallocMode_str[prealloc]);
            return -ENOTSUP;
        }
        return size ? bdrv_truncate(bs, size, false, prealloc, 0, errp) : 0;
    }
    if (bs->drv->open != raw_open) {
        error_setg(errp, "Not a file node");
        return -EINVAL;
    }
    if (size > INT64_MAX) {
        error_setg_errno(errp, EINVAL, "Could not resize file");
        return -EINVAL;
    }
    if (s->is_device) {
        /* a device keeps its size and contents: it only has to be large enough */
        int64_t len = raw_getlength(bs);
        if (len >= 0 && size > (uint64_t)len) {
            error_setg(errp, "Cannot grow device files");
            return -EINVAL;
        }
        return 0;
    }
    if (!s->is_block_dev && ftruncate(s->fd, 0) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not resize file");
        return ret;
    }
    if (size > 0 || prealloc != PREALLOC_MODE_OFF) {
        ret = raw_truncate(bs, size, true, prealloc, 0, errp);
        if (ret < 0) {
            if (prealloc == PREALLOC_MODE_OFF && !s->is_block_dev) {
                /* QEMU's words for a plain resize that fails while creating */
                g_clear_error(errp);
                error_setg_errno(errp, -ret, "Could not resize file");
            }
            /* give the space back, as QEMU does (best effort: the error stands) */
            if (!s->is_block_dev) {
                (void)!ftruncate(s->fd, 0);
            }
            return ret;
        }
    }
    ret = bdrv_flush(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush the new file");
    }
    return ret;
}

void bdrv_create_file_close(BlockDriverState *bs, bool created, bool failed)
{
    if (!bs) {
        return;
    }
    if (failed && created) {
        /* still locked while it goes: nobody else can have started using it */
        unlink(bs->filename);
    }
    bdrv_unref(bs);
}

/* Parse and check everything before a file is created or touched. */
static int raw_create_check(JsonObject *opts, uint64_t *size, PreallocMode *prealloc,
                            GError **errp)
{
    GError *local = NULL;
    g_autofree char *pa = opts_get_str(opts, "preallocation");
    uint64_t sz = opts_get_size(opts, "size", 0, &local);

    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    /* like QEMU, files are created with a whole number of sectors */
    if (sz > INT64_MAX - (BDRV_SECTOR_SIZE - 1)) {
        /* more than a file can hold (QEMU makes an empty file first) */
        error_setg_errno(errp, EINVAL, "Could not resize file");
        return -EINVAL;
    }
    *size = QEMU_ALIGN_UP(sz, BDRV_SECTOR_SIZE);
    *prealloc = PREALLOC_MODE_OFF;
    if (pa) {
        int m = prealloc_mode_parse(pa);
        if (m < 0) {
            error_setg(errp, "invalid parameter value: %s", pa);
            return -EINVAL;
        }
        if (m == PREALLOC_MODE_METADATA) {
            /* (QEMU empties an existing file first; we touch nothing) */
            error_setg(errp, "Unsupported preallocation mode: %s", pa);
            return -ENOTSUP;
        }
        *prealloc = m;
    }
    return 0;
}

/*
 * qemu-img create -f raw and the file protocol: every option checked first, the
 * file created (or opened) and locked as QEMU's create locks it (write and resize,
 * everything shared: a raw image that a raw user writes may be recreated, as with
 * QEMU), and only then emptied and grown. A file this call created is removed
 * again when the creation fails; an existing one is never removed.
 */
static int raw_create_opts(const char *filename, JsonObject *opts, GError **errp)
{
    BlockDriverState *bs;
    PreallocMode prealloc;
    uint64_t size;
    bool created;
    int ret;

    ret = raw_create_check(opts, &size, &prealloc, errp);
    if (ret < 0) {
        return ret;
    }
    bs = bdrv_create_file_open(filename, BLK_PERM_WRITE | BLK_PERM_RESIZE, BLK_PERM_ALL,
                               &created, errp);
    if (!bs) {
        return -EIO;
    }
    ret = bdrv_create_file_fill(bs, size, prealloc, errp);
    bdrv_create_file_close(bs, created, ret < 0);
    return ret;
}

/*
 * blockdev-create for driver "file": QMP options filename, size, preallocation
 * (off, falloc, full), nocow and extent-size-hint (accepted, ignored).
 */
static int raw_create(JsonObject *opts, GError **errp)
{
    g_autofree char *filename = opts_get_str(opts, "filename");
    const char *pa = opts_peek_str(opts, "preallocation");
    int64_t size = opts_get_int(opts, "size", 0, NULL);
    int prealloc = pa ? prealloc_mode_parse(pa) : PREALLOC_MODE_OFF;
    g_autoptr(JsonObject) o = json_object_new();

    if (prealloc < 0 || prealloc == PREALLOC_MODE_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: %s", pa);
        return -ENOTSUP;
    }
    if (size < 0) {
        /* a uint64 beyond what a file can hold (QEMU makes an empty file first) */
        error_setg_errno(errp, EINVAL, "Could not resize file");
        return -EINVAL;
    }
    /* the same path as qemu-img create: check, create, lock, resize */
    opts_set_str(o, "preallocation", PreallocMode_str[prealloc]);
    json_object_set_int_member(o, "size", size);
    return raw_create_opts(filename, o, errp);
}

static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return 0;
}

#define RAW_POSIX_COMMON \
    .create_opts = raw_create_opts, \
    .create_opt_descs = file_create_opts, \
    .instance_size = sizeof(BDRVRawState), \
    .is_protocol = true, \
    .thread_safe_reads = true, \
    .thread_safe = true, \
    .runtime_opts = file_runtime_opts, \
    .parse_filename = raw_parse_filename, \
    .open = raw_open, \
    .close = raw_close, \
    .pread = raw_pread, \
    .pwrite = raw_pwrite, \
    .pwrite_zeroes = raw_pwrite_zeroes, \
    .pdiscard = raw_pdiscard, \
    .flush_to_disk = raw_flush_to_disk, \
    .getlength = raw_getlength, \
    .get_allocated_file_size = raw_get_allocated_file_size, \
    .get_info = raw_get_info, \
    .truncate = raw_truncate, \
    .block_status = raw_block_status, \
    .host_fd = raw_host_fd, \
    .set_perm = raw_set_perm

/* Host devices: character or block devices only, which never grow. */
BlockDriver bdrv_host_device = {
    .format_name = "host_device",
    .protocol_name = "host_device",
    RAW_POSIX_COMMON,
};

BlockDriver bdrv_host_cdrom = {
    .format_name = "host_cdrom",
    .protocol_name = "host_cdrom",
    RAW_POSIX_COMMON,
};

BlockDriver bdrv_file = {
    .format_name = "file",
    .protocol_name = "file",
    .instance_size = sizeof(BDRVRawState),
    .is_protocol = true,
    .thread_safe_reads = true,
    .thread_safe = true,
    .parse_filename = raw_parse_filename,
    .get_info = raw_get_info,
    .runtime_opts = file_runtime_opts,
    .open = raw_open,
    .close = raw_close,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .pwrite_zeroes = raw_pwrite_zeroes,
    .pdiscard = raw_pdiscard,
    .flush_to_disk = raw_flush_to_disk,
    .getlength = raw_getlength,
    .get_allocated_file_size = raw_get_allocated_file_size,
    .truncate = raw_truncate,
    .block_status = raw_block_status,
    .host_fd = raw_host_fd,
    .set_perm = raw_set_perm,
    .create_opts = raw_create_opts,
    .create = raw_create,
    .create_opt_descs = file_create_opts,
};
