/*
 * qcow2 guest I/O: reads (unallocated, zero, normal, compressed clusters, backing
 * fall-through), writes with copy-on-write of partial clusters, zero writes,
 * discard, compressed writes, flush and block status.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

static inline BlockDriverState *data_node(BlockDriverState *bs)
{
    return bs->data_file ? bs->data_file : bs->file;
}

/* Does a backing file show through unallocated clusters? Never with data-file-raw. */
static inline BlockDriverState *visible_backing(BlockDriverState *bs)
{
    return data_file_is_raw(bs) ? NULL : bs->backing;
}

/* Read guest data stored at @host (guest offset @guest), decrypted if need be. */
int qcow2_data_read(BlockDriverState *bs, uint64_t host, uint64_t guest, int64_t len,
                     uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;      /* marked corrupt while this request ran */
    }
    ret = bdrv_pread(data_node(bs), host, len, buf, 0);
    if (ret == 0 && s->crypto) {
        ret = qcow2_crypto_decrypt(bs, host, guest, buf, len);
    }
    return ret;
}

#define CRYPT_BOUNCE (1 * MiB)

/* Write guest data to @host (guest offset @guest), encrypted if need be: the
 * caller's buffer is never changed. */
int qcow2_data_write(BlockDriverState *bs, uint64_t host, uint64_t guest, int64_t len,
                      const uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *bounce;
    int ret = 0;

    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;      /* marked corrupt while this request ran */
    }
    if (!s->crypto) {
        return bdrv_pwrite(data_node(bs), host, len, buf, 0);
    }
    /* one buffer for the life of the node: a fresh one per write costs page faults */
    if (!s->crypt_bounce && posix_memalign((void **)&s->crypt_bounce, 4096, CRYPT_BOUNCE)) {
        s->crypt_bounce = NULL;
        return -ENOMEM;
    }
    bounce = s->crypt_bounce;
    for (int64_t done = 0; done < len && ret == 0; done += CRYPT_BOUNCE) {
        int64_t n = MIN(len - done, CRYPT_BOUNCE);

        ret = qcow2_crypto_write(bs, data_node(bs), host + done, guest + done, buf + done,
                                 bounce, n);
    }
    return ret;
}

/* Read guest [offset, offset+bytes) of the backing chain, zeros past its end. */
static int read_backing(BlockDriverState *bs, int64_t offset, int64_t bytes, uint8_t *buf)
{
    BlockDriverState *backing = visible_backing(bs);
    int64_t blen, n;

    if (!backing) {
        memset(buf, 0, bytes);
        return 0;
    }
    blen = bdrv_getlength(backing);
    if (blen < 0) {
        return blen;
    }
    n = offset < blen ? MIN(bytes, blen - offset) : 0;
    if (n > 0) {
        int ret;
        BLKDBG_EVENT(bs->file, BLKDBG_READ_BACKING_AIO);
        ret = bdrv_pread(backing, offset, n, buf, 0);
        if (ret < 0) {
            return ret;
        }
    }
    memset(buf + n, 0, bytes - n);
    return 0;
}

int qcow2_co_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                   int flags)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *p = buf;
    g_autofree uint8_t *cluster = NULL;

    while (bytes > 0) {
        uint64_t cur = bytes, host;
        Qcow2ClusterType type;
        bool unlocked;
        int ret = qcow2_get_host_offset(bs, offset, &cur, &host, &type);

        if (ret < 0) {
            return ret;
        }
        switch (type) {
        case QCOW2_CLUSTER_UNALLOCATED:
            unlocked = qcow2_io_unlock(bs);
            ret = read_backing(bs, offset, cur, p);
            qcow2_io_relock(bs, unlocked);
            break;
        case QCOW2_CLUSTER_ZERO_PLAIN:
        case QCOW2_CLUSTER_ZERO_ALLOC:
            memset(p, 0, cur);
            break;
        case QCOW2_CLUSTER_NORMAL:
            if (!bs->data_file && has_data_file(bs)) {
                return -ENOMEDIUM;
            }
            unlocked = qcow2_io_unlock(bs);
            BLKDBG_EVENT(bs->file, BLKDBG_READ_AIO);
            ret = qcow2_data_read(bs, host, offset, cur, p);
            qcow2_io_relock(bs, unlocked);
            break;
        case QCOW2_CLUSTER_COMPRESSED:
            if (!cluster) {
                cluster = g_malloc(s->cluster_size);
            }
            ret = qcow2_decompress_cluster(bs, host, cluster);
            if (ret == 0) {
                memcpy(p, cluster + offset_into_cluster(s, offset), cur);
            }
            break;
        }
        if (ret < 0) {
            return ret;
        }
        p += cur;
        offset += cur;
        bytes -= cur;
    }
    return 0;
}

/* Read part of a cluster as it was before a write (the source of copy-on-write). */
static int read_old_content(BlockDriverState *bs, uint64_t old_entry, uint64_t guest_off,
                            int64_t len, uint8_t *dst)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *cluster = NULL;
    int ret;

    if (len <= 0) {
        return 0;
    }
    switch (qcow2_get_cluster_type(bs, old_entry)) {
    case QCOW2_CLUSTER_NORMAL:
        return qcow2_data_read(bs, (old_entry & L2E_OFFSET_MASK) +
                         offset_into_cluster(s, guest_off), guest_off, len, dst);
    case QCOW2_CLUSTER_COMPRESSED:
        cluster = g_malloc(s->cluster_size);
        ret = qcow2_decompress_cluster(bs, old_entry, cluster);
        if (ret == 0) {
            memcpy(dst, cluster + offset_into_cluster(s, guest_off), len);
        }
        return ret;
    case QCOW2_CLUSTER_UNALLOCATED:
        return read_backing(bs, guest_off, len, dst);
    default:
        memset(dst, 0, len);
        return 0;
    }
}

/* Write one assembled cluster: old content around [data_off, data_off+data_len). */
static int write_cow_cluster(BlockDriverState *bs, uint64_t old_entry, uint64_t guest_cl,
                             uint64_t host_cl, uint64_t data_off, uint64_t data_len,
                             const uint8_t *data)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *c = NULL;
    void *mem = NULL;
    bool cow, old_zero;
    int ret;

    if (posix_memalign(&mem, 4096, s->cluster_size)) {
        return -ENOMEM;
    }
    c = mem;
    /*
     * QEMU's events for a copy-on-write: cow_read, write_aio, cow_write, where
     * old content that is known to be zero is neither read nor counted as COW
     */
    cow = data_off || data_len < (uint64_t)s->cluster_size;
    old_zero = qcow2_get_cluster_type(bs, old_entry) == QCOW2_CLUSTER_ZERO_PLAIN ||
               qcow2_get_cluster_type(bs, old_entry) == QCOW2_CLUSTER_ZERO_ALLOC ||
               (qcow2_get_cluster_type(bs, old_entry) == QCOW2_CLUSTER_UNALLOCATED &&
                !bs->backing);
    if (cow && !old_zero) {
        BLKDBG_EVENT(bs->file, BLKDBG_COW_READ);
    }
    ret = read_old_content(bs, old_entry, guest_cl, data_off, c);
    if (ret == 0) {
        ret = read_old_content(bs, old_entry, guest_cl + data_off + data_len,
                               s->cluster_size - data_off - data_len,
                               c + data_off + data_len);
    }
    if (ret < 0) {
        free(g_steal_pointer(&c));
        return ret;
    }
    memcpy(c + data_off, data, data_len);
    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
    if (cow && !old_zero) {
        BLKDBG_EVENT(bs->file, BLKDBG_COW_WRITE);
    }
    ret = qcow2_data_write(bs, host_cl, guest_cl, s->cluster_size, c);
    free(g_steal_pointer(&c));
    return ret;
}

/* Write guest data into a fresh mapping @m, copying old content around it (C1). */
static int write_new_data(BlockDriverState *bs, Qcow2ClusterAlloc *m, uint64_t offset,
                              uint64_t bytes, const uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t head = m->cow_start_bytes, tail = m->cow_end_bytes;
    uint64_t first_end = MIN(cs, head + bytes);   /* data end inside the first cluster */
    int ret;

    if (!head && !tail) {
        BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
        return qcow2_data_write(bs, m->host_offset, offset, bytes, buf);
    }
    if (m->nb_clusters == 1) {
        return write_cow_cluster(bs, m->old_entries[0], m->guest_offset, m->host_offset,
                                 head, bytes, buf);
    }
    /* first cluster */
    if (head) {
        ret = write_cow_cluster(bs, m->old_entries[0], m->guest_offset, m->host_offset,
                                head, first_end - head, buf);
    } else {
        ret = qcow2_data_write(bs, m->host_offset, m->guest_offset, cs, buf);
    }
    if (ret < 0) {
        return ret;
    }
    /* middle clusters straight from the caller's buffer */
    {
        uint64_t mid_start = cs, mid_end = (uint64_t)(m->nb_clusters - 1) * cs;
        if (mid_end > mid_start) {
            BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
            ret = qcow2_data_write(bs, m->host_offset + mid_start, m->guest_offset + mid_start,
                             mid_end - mid_start, buf + (mid_start - head));
            if (ret < 0) {
                return ret;
            }
        }
    }
    /* last cluster */
    {
        uint64_t last = (uint64_t)(m->nb_clusters - 1) * cs;
        uint64_t len = cs - tail;
        if (tail) {
            return write_cow_cluster(bs, m->old_entries[m->nb_clusters - 1],
                                     m->guest_offset + last, m->host_offset + last, 0,
                                     len, buf + (last - head));
        }
        return qcow2_data_write(bs, m->host_offset + last, m->guest_offset + last, cs,
                          buf + (last - head));
    }
}

/*
 * The same, with the node's lock released while the data goes out, unless old
 * content to copy is compressed (decompressing uses the node's state).
 */
static int write_new_clusters(BlockDriverState *bs, Qcow2ClusterAlloc *m, uint64_t offset,
                              uint64_t bytes, const uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    bool compressed_cow, unlocked;
    int ret;

    ret = qcow2_pre_write_overlap_check(bs, 0, m->host_offset,
                                        (int64_t)m->nb_clusters * s->cluster_size, true);
    if (ret < 0) {
        return ret;
    }
    compressed_cow =
        (m->cow_start_bytes &&
         qcow2_get_cluster_type(bs, m->old_entries[0]) == QCOW2_CLUSTER_COMPRESSED) ||
        (m->cow_end_bytes &&
         qcow2_get_cluster_type(bs, m->old_entries[m->nb_clusters - 1]) ==
         QCOW2_CLUSTER_COMPRESSED);
    unlocked = !compressed_cow && qcow2_io_unlock(bs);
    ret = write_new_data(bs, m, offset, bytes, buf);
    qcow2_io_relock(bs, unlocked);
    if (ret == 0 && qcow2_is_dead(bs)) {
        ret = -ENOMEDIUM;
    }
    return ret;
}

/* Before the first write: lazy refcounts mark the image dirty; bitmaps are loaded. */
static int prepare_first_write(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->use_lazy_refcounts && !(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        ret = qcow2_mark_dirty(bs);
        if (ret < 0) {
            return ret;
        }
    }
    return qcow2_bitmaps_begin_changes(bs);
}

static int check_writable(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->read_only) {
        return s->signaled_corruption ? -EIO : -EACCES;
    }
    if (has_data_file(bs) && !bs->data_file) {
        return -ENOMEDIUM;
    }
    return prepare_first_write(bs);
}

/* clusters compressed together (in parallel) before they are stored in order */
#define COMPRESS_BATCH 64

static int write_compressed(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            const uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    g_autofree uint8_t *in = NULL, *out = NULL;
    ssize_t out_len[COMPRESS_BATCH];

    if (has_data_file(bs) || s->crypto) {
        return -ENOTSUP;
    }
    if (offset_into_cluster(s, offset)) {
        return -EINVAL;
    }
    if (bytes % cs && offset + bytes != (int64_t)s->size) {
        return -EINVAL;
    }
    if (bytes == 0) {
        /* the end of a compressed stream: the file ends on a whole sector (QEMU) */
        int64_t len = bdrv_getlength(bs->file);

        if (len < 0) {
            return len;
        }
        if (len % BDRV_SECTOR_SIZE) {
            return bdrv_truncate(bs->file, QEMU_ALIGN_UP(len, BDRV_SECTOR_SIZE), false,
                                 PREALLOC_MODE_OFF, 0, NULL);
        }
        return 0;
    }
    while (bytes > 0) {
        int n = MIN(DIV_ROUND_UP(bytes, cs), COMPRESS_BATCH);
        int64_t batch = MIN(bytes, (int64_t)n * cs);
        int ret;

        if (!in) {
            in = g_malloc((size_t)n * cs);
            out = g_malloc((size_t)n * cs);
        }
        /* whole clusters: the image's partial last one is padded with zeros */
        memcpy(in, buf, batch);
        memset(in + batch, 0, (size_t)n * cs - batch);
        ret = qcow2_compress_clusters(s->compression_type, cs, in, n, out, out_len);
        if (ret < 0) {
            return ret;
        }
        for (int i = 0; i < n; i++) {
            int64_t len = MIN(cs, batch - (int64_t)i * cs);
            uint64_t host;

            if (out_len[i] == 0) {
                /* incompressible: store it normally */
                ret = qcow2_co_pwrite(bs, offset, len, buf, 0);
            } else {
                ret = qcow2_alloc_compressed_cluster(bs, offset, out_len[i], &host);
                if (ret == 0) {
                    ret = qcow2_pre_write_overlap_check(bs, 0, host, out_len[i], false);
                }
                if (ret == 0) {
                    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_COMPRESSED);
                    ret = bdrv_pwrite(bs->file, host, out_len[i],
                                      out + (size_t)i * cs, 0);
                }
            }
            if (ret < 0) {
                return ret;
            }
            offset += len;
            buf += len;
            bytes -= len;
        }
    }
    return 0;
}

/*
 * Write guest [offset, offset+bytes): @offset may lie past the disk (the VM state
 * area), the L1 table grows as far as it must. Dirty bitmaps follow the disk only.
 */
static int do_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     const void *buf, int flags, bool vmstate)
{
    const uint8_t *p = buf;
    uint64_t next_host = 0;     /* where the request's last piece ended in the file */
    int ret = check_writable(bs);

    if (ret < 0) {
        return ret;
    }
    if (!vmstate) {
        qcow2_bitmaps_set_dirty(bs, offset, bytes);
    }
    if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        return write_compressed(bs, offset, bytes, buf);
    }
    if (((BDRVQcow2State *)bs->opaque)->extended_l2) {
        return qcow2_ext_pwrite(bs, offset, bytes, buf);
    }
    while (bytes > 0) {
        uint64_t cur = bytes, host = next_host;
        Qcow2ClusterAlloc m;

        ret = qcow2_alloc_host_offset(bs, offset, &cur, &host, &m);
        if (ret < 0) {
            return ret;
        }
        if (m.needs_link) {
            ret = qcow2_raw_clear_zero_flags(bs, &m);
            if (ret == 0) {
                ret = write_new_clusters(bs, &m, offset, cur, p);
            }
            if (ret == 0) {
                ret = qcow2_alloc_cluster_link_l2(bs, &m);
            }
            if (ret < 0) {
                qcow2_alloc_cluster_abort(bs, &m);
                return ret;
            }
        } else {
            bool unlocked;

            ret = qcow2_pre_write_overlap_check(bs, 0, host, cur, true);
            if (ret < 0) {
                return ret;
            }
            unlocked = qcow2_io_unlock(bs);
            BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
            ret = qcow2_data_write(bs, host, offset, cur, p);
            qcow2_io_relock(bs, unlocked);
            if (ret < 0) {
                return ret;
            }
        }
        next_host = host + cur;
        p += cur;
        offset += cur;
        bytes -= cur;
    }
    return 0;
}

int qcow2_co_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                    const void *buf, int flags)
{
    return do_pwrite(bs, offset, bytes, buf, flags, false);
}

/*
 * The VM state lives in the guest address space right after the disk, from the
 * first L1 entry the disk does not need (l1_vm_state_index): its clusters are
 * allocated, refcounted and snapshotted as the disk's are, but never part of the
 * virtual size. A position that does not fit in the address space is -EFBIG, as
 * an L1 table that cannot grow that far is.
 */
static int vmstate_offset(BlockDriverState *bs, int64_t pos, int64_t bytes,
                          int64_t *offset)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t base = (int64_t)s->l1_vm_state_index << (s->cluster_bits + s->l2_bits);

    if (pos > INT64_MAX - base || bytes > INT64_MAX - base - pos) {
        return -EFBIG;
    }
    *offset = base + pos;
    return 0;
}

int qcow2_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes)
{
    int64_t offset;
    int ret = vmstate_offset(bs, pos, bytes, &offset);

    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_VMSTATE_LOAD);
    return bytes ? qcow2_co_pread(bs, offset, bytes, buf, 0) : 0;
}

int qcow2_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes)
{
    int64_t offset;
    int ret = vmstate_offset(bs, pos, bytes, &offset);

    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_VMSTATE_SAVE);
    return bytes ? do_pwrite(bs, offset, bytes, buf, 0, true) : 0;
}

/*
 * Does guest [offset, offset+bytes) (inside one cluster) read as zeros now, as
 * far as the metadata says (no data is read)? Zero clusters do; data clusters
 * do not; an unallocated one does where the backing chain is unallocated or
 * zero, and past the backing file's end.
 */
static bool range_reads_zero(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = s->cluster_size, host;
    Qcow2ClusterType type;
    BlockDriverState *b;
    int64_t blen;

    if (bytes <= 0) {
        return true;
    }
    /* one kind throughout: the range lies within one cluster (subcluster) */
    cur = bytes;
    if (qcow2_get_host_offset(bs, offset, &cur, &host, &type) < 0) {
        return false;
    }
    if (type == QCOW2_CLUSTER_ZERO_PLAIN || type == QCOW2_CLUSTER_ZERO_ALLOC) {
        return true;
    }
    if (type != QCOW2_CLUSTER_UNALLOCATED) {
        return false;
    }
    b = visible_backing(bs);
    if (!b) {
        return true;
    }
    blen = bdrv_getlength(b);
    if (blen < 0) {
        return false;
    }
    bytes = MIN(offset + bytes, blen) - offset;
    while (bytes > 0) {
        int64_t pnum;
        int ret = bdrv_block_status_above(b, offset, bytes, &pnum);

        if (ret < 0 || !(ret & BDRV_BLOCK_ZERO) || pnum <= 0) {
            return false;
        }
        offset += pnum;
        bytes -= pnum;
    }
    return true;
}

static int write_zero_buffer(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    g_autofree uint8_t *zero = g_malloc0(bytes);

    return qcow2_co_pwrite(bs, offset, bytes, zero, 0);
}

/*
 * Extended L2: zero the subcluster-aligned [start, end) (end may be the image's):
 * whole clusters through their L2 entries, partial ones through their bitmaps.
 * A compressed cluster in part gets zeros written as data, the whole request
 * with it, as QEMU does (S4).
 */
static int ext_zeroize(BlockDriverState *bs, int64_t start, int64_t end, int flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    int64_t cstart = QEMU_ALIGN_UP(start, cs), cend = QEMU_ALIGN_DOWN(end, cs);
    bool head = start % cs != 0, tail = end % cs != 0;
    int ret = 0;

    if (cstart > cend) {
        /* inside one cluster */
        cstart = cend = start;
        head = false;
    }
    if ((head && qcow2_ext_is_compressed(bs, start)) ||
        (tail && qcow2_ext_is_compressed(bs, cend))) {
        return write_zero_buffer(bs, start, end - start);
    }
    if (head) {
        ret = qcow2_ext_zero_subclusters(bs, start, cstart - start);
        if (ret < 0) {
            return ret;
        }
    }
    if (cend > cstart) {
        ret = qcow2_cluster_zeroize(bs, cstart, cend - cstart, flags);
        if (ret < 0) {
            return ret;
        }
    }
    if (tail) {
        ret = qcow2_ext_zero_subclusters(bs, cend, end - cend);
    }
    return ret < 0 ? ret : 0;
}

static int pwrite_zeroes_piece(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               int flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start, end, cs = s->cluster_size;
    int64_t gran = s->extended_l2 ? s->subcluster_size : cs;
    int ret;

    start = offset;
    end = offset + bytes;
    /*
     * Partial clusters (subclusters with extended L2) at either end: when the rest
     * of the granule (outside the request) already reads as zeros, the whole of it
     * becomes zero, as in QEMU (its iotests 154, 271); otherwise zeros are written
     * as data.
     */
    if ((start & (gran - 1)) || (end & (gran - 1))) {
        int64_t head = start & ~(gran - 1);
        int64_t last = (end - 1) & ~(gran - 1);
        int64_t tail_end = MIN(last + gran, (int64_t)s->size);

        if (head == last) {
            if (!range_reads_zero(bs, head, start - head) ||
                !range_reads_zero(bs, end, tail_end - end)) {
                return write_zero_buffer(bs, start, end - start);
            }
            start = head;
            end = tail_end;
        } else {
            if (start & (gran - 1)) {
                if (range_reads_zero(bs, head, start - head)) {
                    start = head;
                } else {
                    ret = write_zero_buffer(bs, start, head + gran - start);
                    if (ret < 0) {
                        return ret;
                    }
                    start = head + gran;
                }
            }
            if (end & (gran - 1)) {
                if (range_reads_zero(bs, end, tail_end - end)) {
                    end = tail_end;
                } else {
                    ret = write_zero_buffer(bs, last, end - last);
                    if (ret < 0) {
                        return ret;
                    }
                    end = last;
                }
            }
        }
    }
    if (end <= start) {
        return 0;
    }
    if (data_file_is_raw(bs)) {
        /* C4: the data file gets the zeros too; mapped clusters stay mapped */
        ret = bdrv_pwrite_zeroes(bs->data_file, start, end - start,
                                 flags & BDRV_REQ_MAY_UNMAP);
        if (ret < 0) {
            return ret;
        }
    }
    if (s->extended_l2) {
        return ext_zeroize(bs, start, end, flags);
    }
    /* the last cluster may be partial at the end of the image */
    return qcow2_cluster_zeroize(bs, start, QEMU_ALIGN_UP(end - start, cs), flags);
}

int qcow2_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           int flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t gran = s->subcluster_size, head, end;
    int ret = check_writable(bs);

    if (ret < 0) {
        return ret;
    }
    qcow2_bitmaps_set_dirty(bs, offset, bytes);
    if (s->version < 3 && !data_file_is_raw(bs) && (bs->backing || bs->backing_file)) {
        /* no zero flag: the generic layer writes zeros. Without a backing file an
         * unallocated cluster reads as zeros: QEMU deallocates (C6) */
        return -ENOTSUP;
    }
    if (!s->extended_l2) {
        return pwrite_zeroes_piece(bs, offset, bytes, flags);
    }
    /*
     * Extended L2: QEMU's block layer hands the driver the unaligned head, the
     * subcluster-aligned middle and the unaligned tail one by one; each decides
     * on its own (a head grown to a whole subcluster stays a partial cluster).
     */
    end = offset + bytes;
    head = MIN(end, QEMU_ALIGN_UP(offset, gran));
    if (head > offset) {
        ret = pwrite_zeroes_piece(bs, offset, head - offset, flags);
        if (ret < 0 || head == end) {
            return ret;
        }
        offset = head;
    }
    if (QEMU_ALIGN_DOWN(end, gran) > offset) {
        ret = pwrite_zeroes_piece(bs, offset, QEMU_ALIGN_DOWN(end, gran) - offset, flags);
        if (ret < 0) {
            return ret;
        }
        offset = QEMU_ALIGN_DOWN(end, gran);
    }
    return end > offset ? pwrite_zeroes_piece(bs, offset, end - offset, flags) : 0;
}

int qcow2_co_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start = QEMU_ALIGN_UP(offset, s->cluster_size);
    int64_t end = offset + bytes == (int64_t)s->size ?
                  QEMU_ALIGN_UP(offset + bytes, s->cluster_size) :
                  QEMU_ALIGN_DOWN(offset + bytes, s->cluster_size);
    int ret = check_writable(bs);

    if (ret < 0) {
        return ret;
    }
    qcow2_bitmaps_set_dirty(bs, offset, bytes);
    if (end <= start) {
        return 0;
    }
    ret = qcow2_cluster_discard(bs, start, end - start, false);
    /*
     * QEMU's block layer sends an unaligned tail as a request of its own: one
     * the clusters' discard found the image corrupt for fails without a driver
     */
    if (ret == 0 && offset + bytes > end && qcow2_is_dead(bs)) {
        ret = -ENOMEDIUM;
    }
    return ret;
}

int qcow2_co_flush_to_os(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->read_only) {
        return 0;
    }
    return qcow2_write_caches(bs);
}

int qcow2_co_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = bytes, host;
    Qcow2ClusterType type;
    int ret, status = 0;

    if (!s->metadata_preallocation_checked) {
        s->metadata_preallocation = !has_data_file(bs) &&
                                    qcow2_detect_metadata_preallocation(bs);
        s->metadata_preallocation_checked = true;
    }
    ret = qcow2_scan_host_offset(bs, offset, &cur, &host, &type);
    if (ret < 0) {
        return ret;
    }
    *pnum = cur;
    switch (type) {
    case QCOW2_CLUSTER_UNALLOCATED:
        if (host && !s->crypto) {
            /* extended L2: a subcluster not allocated in a host cluster */
            *map = host;
            *file = data_node(bs);
            return BDRV_BLOCK_OFFSET_VALID;
        }
        return 0;
    case QCOW2_CLUSTER_ZERO_PLAIN:
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
    case QCOW2_CLUSTER_ZERO_ALLOC:
        status = BDRV_BLOCK_ZERO;
        break;
    case QCOW2_CLUSTER_NORMAL:
        status = BDRV_BLOCK_DATA;
        if (s->metadata_preallocation) {
            status |= BDRV_BLOCK_RECURSE;
        }
        break;
    case QCOW2_CLUSTER_COMPRESSED:
        return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
    }
    if (s->crypto) {
        /* the file holds ciphertext: no offset to read the guest's data at (QEMU) */
        return (status & ~BDRV_BLOCK_RECURSE) | BDRV_BLOCK_ALLOCATED;
    }
    *map = host;
    *file = data_node(bs);
    return status | BDRV_BLOCK_ALLOCATED | BDRV_BLOCK_OFFSET_VALID;
}
