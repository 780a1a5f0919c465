/*
 * Generic I/O: what every driver would otherwise repeat. Range checks, read-only
 * checks, alignment and bounce buffers for O_DIRECT, FUA as write+flush, fallbacks
 * for drivers that leave a callback NULL, flush propagation to children, block
 * status resolution down to the protocol layer, and the hooks around writes
 * (before-write notifiers, the write tracking of an active commit).
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"

#define BOUNCE_MEM_ALIGN 4096
#define ZERO_CHUNK (1 * MiB)
/* copy-on-read copies at most this much at a time */
#define COR_CHUNK (16 * MiB)

static int check_request(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    int64_t len;

    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    /*
     * Under a format, protocols read zeros past EOF and grow on writes, and so
     * do the filters standing in for them; a node a tool opened itself is held
     * to its length (QEMU's BlockBackend), whatever its driver.
     */
    if ((bs->open_flags & BDRV_O_NO_USER) &&
        (bs->drv->is_protocol || (bs->drv->is_filter && !bs->drv->is_format))) {
        return 0;
    }
    len = bdrv_getlength(bs);
    if (len < 0) {
        return len;
    }
    if (offset + bytes > len) {
        return -EIO;
    }
    return 0;
}

static bool request_aligned(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            const void *buf)
{
    uint32_t align = bs->request_alignment;

    if (align <= 1) {
        return true;
    }
    return QEMU_IS_ALIGNED(offset, align) && QEMU_IS_ALIGNED(bytes, align) &&
           (!buf || QEMU_IS_ALIGNED((uintptr_t)buf, BOUNCE_MEM_ALIGN));
}

static void *bounce_alloc(size_t size)
{
    void *p = NULL;

    if (posix_memalign(&p, BOUNCE_MEM_ALIGN, MAX(size, 1))) {
        return NULL;
    }
    return p;
}

/* Read through an aligned bounce buffer covering the request. */
static int bounce_read(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                       int flags)
{
    uint32_t align = bs->request_alignment;
    int64_t start = QEMU_ALIGN_DOWN(offset, align);
    int64_t end = QEMU_ALIGN_UP(offset + bytes, align);
    uint8_t *b = bounce_alloc(end - start);
    int ret;

    if (!b) {
        return -ENOMEM;
    }
    ret = bs->drv->pread(bs, start, end - start, b, flags);
    if (ret == 0) {
        memcpy(buf, b + (offset - start), bytes);
    }
    free(b);
    return ret;
}

/* Read-modify-write through an aligned bounce buffer. */
static int bounce_write(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        const void *buf, int flags)
{
    uint32_t align = bs->request_alignment;
    int64_t start = QEMU_ALIGN_DOWN(offset, align);
    int64_t end = QEMU_ALIGN_UP(offset + bytes, align);
    uint8_t *b = bounce_alloc(end - start);
    int ret = 0;

    if (!b) {
        return -ENOMEM;
    }
    if (start != offset) {
        ret = bs->drv->pread(bs, start, align, b, 0);
    }
    if (ret == 0 && end != offset + bytes && (end - align >= start + (int64_t)align ||
                                              start == offset)) {
        ret = bs->drv->pread(bs, end - align, align, b + (end - align - start), 0);
    }
    if (ret == 0) {
        memcpy(b + (offset - start), buf, bytes);
        ret = bs->drv->pwrite(bs, start, end - start, b, flags);
    }
    free(b);
    return ret;
}

static int do_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                    int flags)
{
    if (!request_aligned(bs, offset, bytes, buf)) {
        return bounce_read(bs, offset, bytes, buf, flags);
    }
    return bs->drv->pread(bs, offset, bytes, buf, flags);
}

static bool buffer_is_zero(const uint8_t *p, int64_t n)
{
    return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/*
 * Copy-on-read as QEMU does it: the request grows to whole clusters (up to the
 * end of the node); what is not allocated in @bs itself is read (from the
 * backing chain) and written into @bs, as a zero write when it reads as zeros,
 * after the cor_write debug event; what is allocated is only read.
 */
static int pread_copy_on_read(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              void *buf, int flags)
{
    BlockDriverInfo bdi;
    int64_t cluster = bdrv_get_info(bs, &bdi) == 0 && bdi.cluster_size > 0 ?
                      bdi.cluster_size : 1;
    int64_t len = bdrv_getlength(bs);
    int64_t pos, end;
    uint8_t *bounce = NULL;
    int ret = 0;

    if (len < 0) {
        return len;
    }
    pos = QEMU_ALIGN_DOWN(offset, cluster);
    end = MIN(QEMU_ALIGN_UP(offset + bytes, cluster), len);
    flags &= ~BDRV_REQ_COPY_ON_READ;
    while (pos < end && ret >= 0) {
        int64_t n, lo, hi;
        int alloc = bdrv_is_allocated(bs, pos, MIN(end - pos, COR_CHUNK), &n);

        if (alloc < 0) {
            ret = alloc;
            break;
        }
        n = MIN(n, COR_CHUNK);
        lo = MAX(pos, offset);
        hi = MIN(pos + n, offset + bytes);
        if (alloc) {
            if (hi > lo) {
                ret = do_pread(bs, lo, hi - lo, (uint8_t *)buf + (lo - offset), flags);
            }
        } else {
            if (!bounce) {
                bounce = bounce_alloc(COR_CHUNK);
                if (!bounce) {
                    return -ENOMEM;
                }
            }
            ret = do_pread(bs, pos, n, bounce, flags);
            if (ret == 0) {
                bdrv_debug_event(bs, BLKDBG_COR_WRITE);
                ret = buffer_is_zero(bounce, n) ? bdrv_pwrite_zeroes(bs, pos, n, 0)
                                                : bdrv_pwrite(bs, pos, n, bounce, 0);
            }
            if (ret == 0 && hi > lo) {
                memcpy((uint8_t *)buf + (lo - offset), bounce + (lo - pos), hi - lo);
            }
        }
        pos += n;
    }
    free(bounce);
    return ret;
}

int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf, int flags)
{
    int ret = check_request(bs, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (bytes == 0) {
        return 0;
    }
    if ((flags & BDRV_REQ_COPY_ON_READ) || (bs->open_flags & BDRV_O_COPY_ON_READ)) {
        return pread_copy_on_read(bs, offset, bytes, buf, flags);
    }
    return do_pread(bs, offset, bytes, buf, flags);
}

/*
 * Generic blkdebug events (QEMU's): pwritev/pwritev_zero before and pwritev_done
 * after a write on the node itself; flush_to_os/flush_to_disk on its file child.
 */
static void debug_event_self(BlockDriverState *bs, BlkdebugEvent event)
{
    if (bs->drv->debug_event) {
        bs->drv->debug_event(bs, event);
    }
}

/* Note a change of [offset, offset+bytes) for bdrv_track_take (an active commit). */
static void track_write(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    if (!bs->track_bits || bytes <= 0) {
        return;
    }
    for (int64_t i = offset / bs->track_gran;
         i < bs->track_chunks && i * bs->track_gran < offset + bytes; i++) {
        bs->track_bits[i / 8] |= 1 << (i % 8);
    }
}

typedef struct BdrvBeforeWrite {
    BdrvBeforeWriteFunc fn;
    void *opaque;
} BdrvBeforeWrite;

/* Run @bs's before-write notifiers for a change of [offset, offset+bytes). */
static int before_write(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    if (bytes > 0) {
        bdrv_write_threshold_check(bs, offset, bytes);
    }
    if (!bs->before_write || bytes <= 0) {
        return 0;
    }
    for (guint i = 0; i < bs->before_write->len; i++) {
        BdrvBeforeWrite *n = bs->before_write->pdata[i];
        int ret = n->fn(bs, offset, bytes, n->opaque);

        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

void bdrv_add_before_write(BlockDriverState *bs, BdrvBeforeWriteFunc fn, void *opaque)
{
    BdrvBeforeWrite *n = g_new0(BdrvBeforeWrite, 1);

    n->fn = fn;
    n->opaque = opaque;
    if (!bs->before_write) {
        bs->before_write = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(bs->before_write, n);
}

void bdrv_remove_before_write(BlockDriverState *bs, BdrvBeforeWriteFunc fn,
                              void *opaque)
{
    for (guint i = 0; bs->before_write && i < bs->before_write->len; i++) {
        BdrvBeforeWrite *n = bs->before_write->pdata[i];

        if (n->fn == fn && n->opaque == opaque) {
            g_ptr_array_remove_index(bs->before_write, i);
            break;
        }
    }
    if (bs->before_write && bs->before_write->len == 0) {
        g_ptr_array_unref(bs->before_write);
        bs->before_write = NULL;
    }
}

static int finish_write(BlockDriverState *bs, int ret, int flags)
{
    debug_event_self(bs, BLKDBG_PWRITEV_DONE);
    if (ret == 0 && (flags & BDRV_REQ_FUA)) {
        ret = bdrv_flush(bs);
    }
    return ret;
}

int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf,
                int flags)
{
    int ret = check_request(bs, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        return -EPERM;      /* QEMU's errno for a write to a read-only node */
    }
    if (bytes == 0) {
        /* an empty compressed write asks the driver whether it can compress */
        return (flags & BDRV_REQ_WRITE_COMPRESSED) ?
               bs->drv->pwrite(bs, offset, 0, buf, flags) : 0;
    }
    ret = before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    debug_event_self(bs, BLKDBG_PWRITEV);
    track_write(bs, offset, bytes);
    if (!request_aligned(bs, offset, bytes, buf)) {
        ret = bounce_write(bs, offset, bytes, buf, flags & ~BDRV_REQ_FUA);
    } else {
        ret = bs->drv->pwrite(bs, offset, bytes, buf, flags & ~BDRV_REQ_FUA);
    }
    bdrv_dirty_bitmaps_mark(bs, offset, bytes);
    return finish_write(bs, ret, flags);
}

int bdrv_pwrite_zero_buffer(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    static void *zero_buf;
    int64_t done = 0;

    if (!zero_buf) {
        zero_buf = bounce_alloc(ZERO_CHUNK);
        if (!zero_buf) {
            return -ENOMEM;
        }
        memset(zero_buf, 0, ZERO_CHUNK);
    }
    while (done < bytes) {
        int64_t n = MIN(bytes - done, ZERO_CHUNK);
        int ret;

        if (!request_aligned(bs, offset + done, n, zero_buf)) {
            ret = bounce_write(bs, offset + done, n, zero_buf, 0);
        } else {
            ret = bs->drv->pwrite(bs, offset + done, n, zero_buf, 0);
        }
        if (ret < 0) {
            return ret;
        }
        done += n;
    }
    return 0;
}

int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags)
{
    int ret = check_request(bs, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        return -EPERM;
    }
    if (bytes == 0) {
        return 0;
    }
    ret = before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    debug_event_self(bs, BLKDBG_PWRITEV_ZERO);
    track_write(bs, offset, bytes);
    ret = -ENOTSUP;
    if (bs->drv->pwrite_zeroes) {
        ret = bs->drv->pwrite_zeroes(bs, offset, bytes, flags & ~BDRV_REQ_FUA);
    }
    if (ret == -ENOTSUP && !(flags & BDRV_REQ_NO_FALLBACK)) {
        ret = bdrv_pwrite_zero_buffer(bs, offset, bytes);
    }
    bdrv_dirty_bitmaps_mark(bs, offset, bytes);
    return finish_write(bs, ret, flags);
}

static int do_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes, bool always)
{
    int ret = check_request(bs, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        return -EPERM;
    }
    /* discard=ignore (blockdev-add's default): the request succeeds, nothing changes */
    if (bytes == 0 || !bs->drv->pdiscard || (!always && !(bs->open_flags & BDRV_O_UNMAP))) {
        return 0;
    }
    ret = before_write(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    track_write(bs, offset, bytes);
    ret = bs->drv->pdiscard(bs, offset, bytes);
    bdrv_dirty_bitmaps_mark(bs, offset, bytes);
    return ret;
}

int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return do_pdiscard(bs, offset, bytes, false);
}

int bdrv_pdiscard_always(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    return do_pdiscard(bs, offset, bytes, true);
}

int bdrv_flush(BlockDriverState *bs)
{
    int ret = 0, r;

    if (!bs || !(bs->open_flags & BDRV_O_RDWR)) {
        return 0;
    }
    if (bs->file) {
        bdrv_debug_event(bs->file, BLKDBG_FLUSH_TO_OS);
    }
    if (bs->drv->flush_to_os) {
        ret = bs->drv->flush_to_os(bs);
    }
    if (!(bs->open_flags & BDRV_O_NO_FLUSH) && bs->file) {
        bdrv_debug_event(bs->file, BLKDBG_FLUSH_TO_DISK);
    }
    if (bs->data_file && bs->data_file != bs->file) {
        r = bdrv_flush(bs->data_file);
        ret = ret < 0 ? ret : r;
    }
    if (bs->file) {
        r = bdrv_flush(bs->file);
        ret = ret < 0 ? ret : r;
    }
    if (!(bs->open_flags & BDRV_O_NO_FLUSH) && bs->drv->flush_to_disk) {
        r = bs->drv->flush_to_disk(bs);
        ret = ret < 0 ? ret : r;
    }
    return ret;
}

/*
 * The VM state area: the first driver down the "file" chain that keeps one
 * serves it. The range is checked as a guest request is (QEMU: -EIO past
 * BDRV_MAX_LENGTH), never against the node's length.
 */
static int check_vmstate_request(int64_t pos, int64_t bytes)
{
    if (pos < 0 || bytes < 0 || pos > BDRV_MAX_LENGTH || bytes > BDRV_MAX_LENGTH - pos) {
        return -EIO;
    }
    return 0;
}

int bdrv_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes)
{
    int ret = check_vmstate_request(pos, bytes);

    if (ret < 0) {
        return ret;
    }
    for (; bs; bs = bs->file) {
        if (bs->drv->load_vmstate) {
            return bs->drv->load_vmstate(bs, buf, pos, bytes);
        }
    }
    return -ENOTSUP;
}

int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes)
{
    int ret = check_vmstate_request(pos, bytes);

    if (ret < 0) {
        return ret;
    }
    for (; bs; bs = bs->file) {
        if (bs->drv->save_vmstate) {
            if (!(bs->open_flags & BDRV_O_RDWR)) {
                return -EACCES;
            }
            return bs->drv->save_vmstate(bs, buf, pos, bytes);
        }
    }
    return -ENOTSUP;
}

/*
 * Grow or shrink through the driver. Growing an image whose backing file is
 * longer than the image was would let the backing file's data show in the new
 * area: as QEMU does, the new area is written as zeroes (zero clusters, or
 * preallocated clusters flagged zero).
 */
static int bdrv_truncate_over_backing(BlockDriverState *bs, int64_t offset, bool exact,
                                      PreallocMode prealloc, int flags, GError **errp)
{
    int64_t old_len = bdrv_getlength(bs), new_len, backing_len;
    int ret = bs->drv->truncate(bs, offset, exact, prealloc, flags, errp);

    /* falloc and full preallocation write zeros as data already */
    if (ret < 0 || old_len < 0 || !bs->backing ||
        (prealloc != PREALLOC_MODE_OFF && prealloc != PREALLOC_MODE_METADATA)) {
        return ret;
    }
    new_len = bdrv_getlength(bs);
    backing_len = bdrv_getlength(bs->backing);
    if (new_len <= old_len || backing_len <= old_len) {
        return 0;
    }
    ret = bdrv_pwrite_zeroes(bs, old_len, new_len - old_len, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to zero out new clusters");
    }
    return ret;
}

int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                  int flags, GError **errp)
{
    int ret;

    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (offset > BDRV_MAX_LENGTH) {
        error_setg(errp, "offset(%" PRId64 ") exceeds maximum(%" PRId64 ")", offset,
                   BDRV_MAX_LENGTH);
        return -EFBIG;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!bs->drv->truncate) {
        error_setg(errp, "Image format driver does not support resize");
        return -ENOTSUP;
    }
    ret = bdrv_truncate_over_backing(bs, offset, exact, prealloc, flags, errp);
    bdrv_dirty_bitmaps_resize(bs);
    return ret;
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    int64_t len;

    if (!bs->drv->getlength) {
        return bs->file ? bdrv_getlength(bs->file) : -ENOMEDIUM;
    }
    len = bs->drv->getlength(bs);
    /* QEMU counts a node's length in whole sectors: a file's partial last
     * sector reads as zeros up to the sector's end */
    if (len > 0 && bs->drv->is_protocol) {
        len = QEMU_ALIGN_UP(len, BDRV_SECTOR_SIZE);
    }
    return len;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    int64_t total = 0, r;

    if (bs->drv->get_allocated_file_size) {
        return bs->drv->get_allocated_file_size(bs);
    }
    /* a protocol that does not say (blkdebug, blkverify): unknown, as in QEMU */
    if (!bs->file || bs->drv->is_protocol) {
        return -ENOTSUP;
    }
    /* formats: the sum of their files */
    total = bdrv_get_allocated_file_size(bs->file);
    if (total >= 0 && bs->data_file && bs->data_file != bs->file) {
        r = bdrv_get_allocated_file_size(bs->data_file);
        /* a data file left closed (BDRV_O_NO_DATA_FILE) adds nothing we know of */
        if (r == -ENOTSUP) {
            r = 0;
        }
        total = r < 0 ? r : total + r;
    }
    return total;
}

int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    if (!bs->drv->get_info) {
        /* a filter shows its child's */
        return bs->drv->is_filter && bs->file ? bdrv_get_info(bs->file, bdi) : -ENOTSUP;
    }
    return bs->drv->get_info(bs, bdi);
}

uint32_t bdrv_get_request_alignment(BlockDriverState *bs)
{
    return bs->request_alignment;
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    int64_t len = bdrv_getlength(bs), local_map = 0, fpnum;
    BlockDriverState *local_file = NULL;
    int ret;

    if (len < 0) {
        return len;
    }
    if (offset >= len || bytes <= 0) {
        *pnum = 0;
        return offset >= len ? BDRV_BLOCK_EOF : 0;
    }
    bytes = MIN(bytes, len - offset);
    if (!bs->drv->block_status) {
        if (bs->drv->is_protocol) {
            *pnum = bytes;
            ret = BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_ALLOCATED;
            local_map = offset;
            local_file = bs;
        } else {
            /* pass-through format: the file's status at the same offset */
            ret = bdrv_block_status(bs->file, offset, bytes, pnum, &local_map,
                                    &local_file);
            if (ret < 0) {
                return ret;
            }
            /* a hole that does not read as zeros (NBD) is not allocated */
            ret = (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) |
                  (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO) ?
                   BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_OFFSET_VALID : 0);
            local_map = offset;
            local_file = bs->file;
        }
    } else {
        ret = bs->drv->block_status(bs, offset, bytes, pnum, &local_map, &local_file);
        if (ret < 0) {
            return ret;
        }
        /* a protocol's data or zeros are its own (QEMU: not null-co's nothing) */
        if (bs->drv->is_protocol && (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO))) {
            ret |= BDRV_BLOCK_ALLOCATED;
        }
    }
    if ((ret & BDRV_BLOCK_RECURSE) && (ret & BDRV_BLOCK_OFFSET_VALID) && local_file &&
        !(ret & BDRV_BLOCK_ZERO)) {
        int r = bdrv_block_status(local_file, local_map, *pnum, &fpnum, NULL, NULL);
        if (r >= 0 && fpnum > 0) {
            *pnum = fpnum;
            if (r & BDRV_BLOCK_ZERO) {
                ret |= BDRV_BLOCK_ZERO;
            }
        }
    }
    ret &= ~BDRV_BLOCK_RECURSE;
    if (offset + *pnum == len) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (map) {
        *map = local_map;
    }
    if (file) {
        *file = local_file;
    }
    return ret;
}

int bdrv_block_status_above(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum)
{
    int ret;

    for (;;) {
        BlockDriverState *backing;

        ret = bdrv_block_status(bs, offset, bytes, pnum, NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (*pnum <= 0) {
            /* past the end of a shorter backing file: zeros */
            *pnum = bytes;
            return BDRV_BLOCK_ZERO;
        }
        bytes = *pnum;
        if ((ret & BDRV_BLOCK_ALLOCATED) || !bdrv_supports_backing(bs)) {
            break;
        }
        backing = bs->backing;
        if (!backing || offset >= bdrv_getlength(backing)) {
            ret |= BDRV_BLOCK_ZERO;
            break;
        }
        bs = backing;
    }
    return ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED);
}

void bdrv_track_writes(BlockDriverState *bs, int64_t granularity)
{
    int64_t len = bdrv_getlength(bs);

    bdrv_track_stop(bs);
    bs->track_gran = granularity;
    bs->track_chunks = len > 0 ? DIV_ROUND_UP(len, granularity) : 0;
    bs->track_bits = g_malloc0(bs->track_chunks / 8 + 1);
}

void bdrv_track_stop(BlockDriverState *bs)
{
    g_free(bs->track_bits);
    bs->track_bits = NULL;
    bs->track_chunks = 0;
}

bool bdrv_track_take(BlockDriverState *bs, int64_t *offset, int64_t *bytes)
{
    int64_t i = 0, j;

    while (bs->track_bits && i < bs->track_chunks &&
           !(bs->track_bits[i / 8] & (1 << (i % 8)))) {
        i++;
    }
    if (!bs->track_bits || i >= bs->track_chunks) {
        return false;
    }
    for (j = i; j < bs->track_chunks && (bs->track_bits[j / 8] & (1 << (j % 8))); j++) {
        bs->track_bits[j / 8] &= ~(1 << (j % 8));
    }
    *offset = i * bs->track_gran;
    *bytes = (j - i) * bs->track_gran;
    return true;
}

int bdrv_is_allocated(BlockDriverState *bs, int64_t offset, int64_t bytes, int64_t *pnum)
{
    int ret = bdrv_block_status(bs, offset, bytes, pnum, NULL, NULL);

    if (ret < 0) {
        return ret;
    }
    return !!(ret & BDRV_BLOCK_ALLOCATED);
}

int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    memset(res, 0, sizeof(*res));
    if (!bs->drv->check) {
        return -ENOTSUP;
    }
    return bs->drv->check(bs, res, fix);
}

int bdrv_amend(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp)
{
    if (!bs->drv->amend) {
        error_setg(errp, "Format driver '%s' does not support option amendment",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    return bs->drv->amend(bs, opts, force, errp);
}

int bdrv_amend_with_status(BlockDriverState *bs, JsonObject *opts, bool force,
                           BdrvAmendStatusCB *cb, void *opaque, GError **errp)
{
    int ret;

    bs->amend_status_cb = cb;
    bs->amend_status_opaque = opaque;
    ret = bdrv_amend(bs, opts, force, errp);
    bs->amend_status_cb = NULL;
    bs->amend_status_opaque = NULL;
    return ret;
}

void bdrv_amend_report(BlockDriverState *bs, int64_t done, int64_t total)
{
    if (bs->amend_status_cb && total > 0) {
        bs->amend_status_cb(bs, done, total, bs->amend_status_opaque);
    }
}

int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt)
{
    if (!bs->drv->change_backing_file) {
        return -ENOTSUP;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        return -EACCES;
    }
    return bs->drv->change_backing_file(bs, backing_file, backing_fmt);
}

int bdrv_make_empty(BlockDriverState *bs, GError **errp)
{
    int ret;

    if (!bs->drv->make_empty) {
        error_setg(errp, "Format driver '%s' cannot empty images",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    ret = bs->drv->make_empty(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to empty %s", bs->filename);
    }
    return ret;
}

JsonNode *bdrv_get_specific_info(BlockDriverState *bs, GError **errp)
{
    return bs->drv->get_specific_info ? bs->drv->get_specific_info(bs, errp) : NULL;
}

bool bdrv_is_dirty(BlockDriverState *bs)
{
    return bs->drv->is_dirty ? bs->drv->is_dirty(bs) : false;
}

int bdrv_snapshot_create(BlockDriverState *bs, const char *name)
{
    /* qemu-img records no VM clock and no instruction count: 0, as QEMU's */
    return bdrv_snapshot_create_vm(bs, name, 0, 0);
}

int bdrv_snapshot_create_vm(BlockDriverState *bs, const char *name, int64_t vm_clock_nsec,
                            int64_t icount)
{
    return bs->drv->snapshot_create ?
           bs->drv->snapshot_create(bs, name, vm_clock_nsec, icount) : -ENOTSUP;
}

bool bdrv_supports_snapshots(BlockDriverState *bs)
{
    return bs->drv->snapshot_create != NULL;
}

int bdrv_snapshot_list(BlockDriverState *bs, GPtrArray *out)
{
    return bs->drv->snapshot_list ? bs->drv->snapshot_list(bs, out) : -ENOTSUP;
}

int bdrv_dirty_bitmap_status(BlockDriverState *bs, const char *name, int64_t offset,
                             int64_t bytes, int64_t *pnum)
{
    int ret = bdrv_dirty_bitmap_mem_status(bs, name, offset, bytes, pnum);

    if (ret != -ENOENT) {
        return ret;
    }
    while (bs && !bs->drv->bitmap_status && bs->drv->is_filter) {
        bs = bs->file;
    }
    if (!bs || !bs->drv->bitmap_status) {
        return -ENOENT;
    }
    return bs->drv->bitmap_status(bs, name, offset, bytes, pnum);
}

int bdrv_bitmap_op(BlockDriverState *bs, BdrvBitmapOp op, const char *name,
                   uint64_t granularity, BlockDriverState *src, const char *src_name,
                   GError **errp)
{
    if (!bs->drv->bitmap_op) {
        /* QEMU's words; its node names are "#blockNNN" too */
        if (op == BDRV_BITMAP_ADD) {
            error_setg(errp, "Can't store persistent bitmaps to %s: "
                       "Operation not supported", bs->node_name);
        } else {
            error_setg(errp, "Dirty bitmap '%s' not found", name);
        }
        return -ENOTSUP;
    }
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    return bs->drv->bitmap_op(bs, op, name, granularity, src, src_name, errp);
}

int bdrv_bitmaps_store(BlockDriverState *bs, GError **errp)
{
    return bs->drv->bitmaps_store ? bs->drv->bitmaps_store(bs, errp) : 0;
}

bool bdrv_supports_persistent_bitmaps(BlockDriverState *bs)
{
    return bs->drv->supports_persistent_bitmaps &&
           bs->drv->supports_persistent_bitmaps(bs);
}

JsonArray *bdrv_query_dirty_bitmaps_driver(BlockDriverState *bs)
{
    return bs->drv->query_bitmaps ? bs->drv->query_bitmaps(bs) : NULL;
}

JsonArray *bdrv_query_dirty_bitmaps(BlockDriverState *bs)
{
    return bdrv_dirty_bitmaps_query(bs, bdrv_query_dirty_bitmaps_driver(bs));
}

int bdrv_bitmap_set_dirty(BlockDriverState *bs, const char *name, int64_t offset,
                          int64_t bytes, GError **errp)
{
    if (!bs->drv->bitmap_set_dirty) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return -ENOENT;
    }
    return bs->drv->bitmap_set_dirty(bs, name, offset, bytes, errp);
}

int bdrv_snapshot_goto(BlockDriverState *bs, const char *name, GError **errp)
{
    if (!bs->drv->snapshot_goto) {
        error_setg(errp, "Block driver does not support snapshots");
        return -ENOTSUP;
    }
    return bs->drv->snapshot_goto(bs, name, errp);
}

int bdrv_snapshot_delete(BlockDriverState *bs, const char *name, GError **errp)
{
    if (!bs->drv->snapshot_delete) {
        error_setg(errp, "Block driver does not support snapshots");
        return -ENOTSUP;
    }
    return bs->drv->snapshot_delete(bs, name, errp);
}

int bdrv_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                           GError **errp)
{
    if (!bs->drv->snapshot_load_tmp) {
        error_setg(errp, "Block format '%s' used by device '' does not support "
                   "temporarily loading internal snapshots", bs->drv->format_name);
        return -ENOTSUP;
    }
    return bs->drv->snapshot_load_tmp(bs, id, name, errp);
}

/* ---- creation ---- */

int bdrv_create(const char *fmt, const char *filename, JsonObject *opts, GError **errp)
{
    BlockDriver *drv = bdrv_find_format(fmt);

    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -ENOENT;
    }
    if (!drv->create_opts) {
        error_setg(errp, "Format driver '%s' does not support image creation", fmt);
        return -ENOTSUP;
    }
    return drv->create_opts(filename, opts, errp);
}

bool bdrv_format_can_create(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);

    return drv && drv->create_opts;
}

int bdrv_measure_virtual_size(JsonObject *opts, BlockDriverState *in_bs,
                              uint64_t *size, GError **errp)
{
    if (in_bs) {
        int64_t len = bdrv_getlength(in_bs);

        if (len < 0) {
            error_setg_errno(errp, -len, "Unable to get image virtual_size");
            return len;
        }
        *size = len;
    } else {
        GError *local = NULL;

        *size = opts_get_size(opts, "size", 0, &local);
        if (local) {
            error_propagate(errp, local);
            return -EINVAL;
        }
    }
    return 0;
}

int bdrv_measure(const char *fmt, JsonObject *opts, BlockDriverState *in_bs,
                 BlockMeasureInfo *info, GError **errp)
{
    BlockDriver *drv = bdrv_find_format(fmt);

    memset(info, 0, sizeof(*info));
    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -ENOENT;
    }
    if (!drv->measure) {
        error_setg(errp, "Block driver '%s' does not support size measurement", fmt);
        return -ENOTSUP;
    }
    return drv->measure(opts, in_bs, info, errp);
}

int bdrv_create_check_protocol(const char *filename, GError **errp)
{
    const BlockDriver *proto = bdrv_find_protocol(filename, true, errp);

    if (!proto) {
        return -ENOENT;
    }
    if (!proto->create_opts && !proto->create_simple) {
        error_setg(errp, "Protocol driver '%s' does not support image creation",
                   proto->format_name);
        return -ENOTSUP;
    }
    return 0;
}

int bdrv_create_file(const char *filename, JsonObject *opts, GError **errp)
{
    return bdrv_create("file", filename, opts, errp);
}

bool bdrv_supports_compressed_writes(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);

    return drv && drv->supports_compressed_writes;
}

int bdrv_write_at(void *opaque, size_t done, const uint8_t *buf, size_t len)
{
    BdrvWriteAt *w = opaque;

    return bdrv_pwrite(w->bs, w->offset + done, len, buf, 0);
}
