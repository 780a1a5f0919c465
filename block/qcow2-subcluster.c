/*
 * qcow2 extended L2 entries (incompatible feature bit 4): guest writes and zero
 * writes at subcluster granularity. Each L2 entry is the standard 64-bit
 * descriptor followed by a bitmap: bit x "subcluster x is allocated" (its data
 * is at host + x * subcluster_size), bit 32 + x "subcluster x reads as zeros";
 * neither: it reads from the backing file (or zeros without one). Lookups (reads,
 * block status) live in qcow2-cluster.c, whole-cluster zero/discard there too.
 *
 * Rules this file keeps, as QEMU 7.2 does (its iotest 271 shows the bitmaps):
 *  S1. A write into a cluster that has a host cluster only this entry references
 *      (COPIED) goes there in place; a partially written subcluster that was not
 *      allocated gets the rest of its old content (zeros or backing) around it.
 *      The written subclusters become allocated, their zero bits clear.
 *  S2. Otherwise the write gets a new host cluster; clusters that need one and
 *      follow each other in the request get contiguous host clusters. Copied are
 *      the partial subclusters at either end and, from a shared cluster, every
 *      subcluster between the write and its allocated ones (all of a compressed
 *      cluster). Subclusters outside that range keep their zero bits.
 *  S3. Data (with what it copies) is written before the L2 entry (C1); the old
 *      host cluster loses its reference after the entry changed.
 *  S4. A subcluster-aligned zero write into part of a cluster only flips bitmap
 *      bits; into a compressed cluster it is refused (-ENOTSUP: the caller writes
 *      zeros as data).
 *  S5. Invalid entries (a subcluster both allocated and zero, or allocated
 *      without a host cluster) mark the image corrupt.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* May this entry's host cluster be written in place (S1)? */
static bool ext_in_place(BlockDriverState *bs, uint64_t e)
{
    return !(e & QCOW_OFLAG_COMPRESSED) && qcow2_ext_has_host(bs, e) &&
           (has_data_file(bs) || (e & QCOW_OFLAG_COPIED));
}

static uint64_t ext_host(BlockDriverState *bs, uint64_t e, uint64_t guest_cluster)
{
    return has_data_file(bs) ? guest_cluster : (e & L2E_OFFSET_MASK);
}

/* Validate an entry before a write; -EIO with the image marked corrupt if bad. */
static int ext_check_entry(BlockDriverState *bs, uint64_t e, uint64_t bm, uint64_t guest,
                           int l2_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host = e & L2E_OFFSET_MASK;

    if (!(e & QCOW_OFLAG_COMPRESSED) && offset_into_cluster(s, host)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation offset %#"
                                PRIx64 " unaligned (L2 offset: %#" PRIx64
                                ", L2 index: %#x)", host,
                                (uint64_t)(s->l1_table[offset_to_l1_index(s, guest)] &
                                L1E_OFFSET_MASK), l2_index);
        return -EIO;
    }
    if ((e & QCOW_OFLAG_COMPRESSED) && has_data_file(bs)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Compressed cluster entry found in "
                                "image with external data file (L2 offset: %#" PRIx64
                                ")", guest);
        return -EIO;
    }
    if (!qcow2_ext_entry_valid(bs, e, bm)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Invalid cluster entry found (L2 "
                                "offset: %#" PRIx64 ", L2 index: %#x)",
                                (uint64_t)(s->l1_table[offset_to_l1_index(s, guest)] &
                                L1E_OFFSET_MASK), l2_index);
        return -EIO;
    }
    return 0;
}

/* Does the image (with its backing chain) read [offset, offset + bytes) as zeros? */
static bool range_is_zero(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    while (bytes > 0) {
        int64_t pnum = 0;
        int st = bdrv_block_status_above(bs, offset, bytes, &pnum);

        if (st < 0 || !(st & BDRV_BLOCK_ZERO) || pnum <= 0) {
            return false;
        }
        offset += pnum;
        bytes -= MIN((uint64_t)pnum, bytes);
    }
    return true;
}

/*
 * Write guest [guest + r_start + (w_start - r_start), ...): the bytes
 * [w_start, w_end) of the cluster at @guest come from @buf, the rest of
 * [r_start, r_end) is the old content (read through the image as it is now).
 * The result goes to @host + r_start.
 */
static int ext_write_range(BlockDriverState *bs, uint64_t guest, uint64_t host,
                           uint64_t r_start, uint64_t r_end, uint64_t w_start,
                           uint64_t w_end, const uint8_t *buf)
{
    g_autofree uint8_t *b = NULL;
    bool cow_events;
    int ret;

    ret = qcow2_pre_write_overlap_check(bs, 0, host + r_start, r_end - r_start, true);
    if (ret < 0) {
        return ret;
    }
    if (r_start == w_start && r_end == w_end) {
        BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
        return qcow2_data_write(bs, host + w_start, guest + w_start, w_end - w_start,
                                buf);
    }
    b = g_try_malloc(r_end - r_start);
    if (!b) {
        return -ENOMEM;
    }
    /* QEMU's events: cow_read, write_aio, cow_write; no COW ones over zeros */
    cow_events = bdrv_debug_listening(bs->file) &&
                 !(range_is_zero(bs, guest + r_start, w_start - r_start) &&
                   range_is_zero(bs, guest + w_end, r_end - w_end));
    if (cow_events) {
        BLKDBG_EVENT(bs->file, BLKDBG_COW_READ);
    }
    ret = qcow2_co_pread(bs, guest + r_start, w_start - r_start, b, 0);
    if (ret == 0) {
        ret = qcow2_co_pread(bs, guest + w_end, r_end - w_end, b + (w_end - r_start), 0);
    }
    if (ret < 0) {
        return ret;
    }
    memcpy(b + (w_start - r_start), buf, w_end - w_start);
    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
    if (cow_events) {
        BLKDBG_EVENT(bs->file, BLKDBG_COW_WRITE);
    }
    return qcow2_data_write(bs, host + r_start, guest + r_start, r_end - r_start, b);
}

/* S1: [offset, offset + len) inside one cluster whose host cluster is ours. */
static int ext_write_in_place(BlockDriverState *bs, uint64_t offset, uint64_t len,
                              const uint8_t *buf, uint64_t e, uint64_t bm)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t guest = start_of_cluster(s, offset);
    uint64_t w_start = offset - guest, w_end = w_start + len;
    uint64_t r_start = w_start, r_end = w_end, nbm;
    int first = w_start >> s->subcluster_bits, last = (w_end - 1) >> s->subcluster_bits;
    uint32_t mask = qcow2_sc_mask(first, last - first + 1);
    uint64_t *l2;
    int l2_index, ret;

    if (!(bm & (1ULL << first))) {
        r_start = (uint64_t)first << s->subcluster_bits;
    }
    if (!(bm & (1ULL << last))) {
        r_end = (uint64_t)(last + 1) << s->subcluster_bits;
    }
    ret = ext_write_range(bs, guest, ext_host(bs, e, guest), r_start, r_end, w_start,
                          w_end, buf);
    if (ret < 0) {
        return ret;
    }
    nbm = (bm | mask) & ~((uint64_t)mask << 32);
    if (nbm == bm) {
        return 0;
    }
    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    qcow2_l2_bitmap_set(l2, l2_index, nbm);
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return 0;
}

/*
 * S2: clusters [0, n) from the one containing @offset all need new host
 * clusters; write [offset, offset + len) into them and link them.
 */
static int ext_write_new(BlockDriverState *bs, uint64_t offset, uint64_t len,
                         const uint8_t *buf, int n, int64_t host, const uint64_t *old_e,
                         const uint64_t *old_bm)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size, guest0 = start_of_cluster(s, offset);
    g_autofree uint64_t *new_bm = g_new(uint64_t, n);
    uint64_t *l2;
    int l2_index, ret;

    for (int i = 0; i < n; i++) {
        uint64_t g = guest0 + (uint64_t)i * cs;
        uint64_t w_start = MAX(offset, g) - g, w_end = MIN(offset + len, g + cs) - g;
        int from = w_start >> s->subcluster_bits, to = (w_end - 1) >> s->subcluster_bits;
        uint32_t alloc = old_bm[i], zero = old_bm[i] >> 32, mask;

        if (old_e[i] & QCOW_OFLAG_COMPRESSED) {
            from = 0;
            to = QCOW_EXTL2_SUBCLUSTERS - 1;
            zero = 0;
        } else if (alloc) {
            /* a shared cluster: its data moves along with the write */
            from = MIN(from, __builtin_ctz(alloc));
            to = MAX(to, 31 - __builtin_clz(alloc));
        }
        mask = qcow2_sc_mask(from, to - from + 1);
        new_bm[i] = mask | ((uint64_t)(zero & ~mask) << 32);
        ret = ext_write_range(bs, g, host + (uint64_t)i * cs,
                              (uint64_t)from << s->subcluster_bits,
                              (uint64_t)(to + 1) << s->subcluster_bits,
                              w_start, w_end, buf + (g + w_start - offset));
        if (ret < 0) {
            goto fail;
        }
    }
    if (qcow2_need_accurate_refcounts(s)) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            goto fail;
        }
    }
    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        qcow2_l2_set(s, l2, l2_index + i, (host + (uint64_t)i * cs) | QCOW_OFLAG_COPIED);
        qcow2_l2_bitmap_set(l2, l2_index + i, new_bm[i]);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    /* S3: the old clusters lose this entry's reference */
    for (int i = 0; i < n; i++) {
        if ((old_e[i] & QCOW_OFLAG_COMPRESSED) ||
            ((old_e[i] & L2E_OFFSET_MASK) &&
             (old_e[i] & L2E_OFFSET_MASK) != host + (uint64_t)i * cs)) {
            qcow2_free_any_cluster(bs, old_e[i], 1);
        }
    }
    return 0;

fail:
    if (!has_data_file(bs)) {
        qcow2_free_clusters(bs, host, (uint64_t)n * cs);
    }
    return ret;
}

/*
 * Host clusters for @n new guest clusters from @offset: 1:1 in a data file, else
 * right after the request's previous piece (@next_host, 0: none) as far as it
 * is free there (*n shrinks), as QEMU places them, else wherever they fit.
 */
static int64_t ext_alloc(BlockDriverState *bs, uint64_t offset, uint64_t next_host,
                         int *n)
{
    BDRVQcow2State *s = bs->opaque;

    if (has_data_file(bs)) {
        return start_of_cluster(s, offset);         /* C3 */
    }
    if (next_host && !offset_into_cluster(s, next_host)) {
        int64_t k = qcow2_alloc_clusters_at(bs, next_host, *n);
        if (k < 0) {
            return k;
        }
        if (k > 0) {
            *n = k;
            return next_host;
        }
    }
    return qcow2_alloc_clusters(bs, (uint64_t)*n * s->cluster_size);
}

/* One piece of a write: in place in one cluster, or new clusters for a run.
 * *@next_host: where the previous piece ended in the file, then this one. */
static int ext_write_piece(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                           const uint8_t *buf, uint64_t *done, uint64_t *next_host)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t in_cluster = offset_into_cluster(s, offset);
    uint64_t nmax, e, bm, len;
    int64_t host;
    g_autofree uint64_t *old_e = NULL, *old_bm = NULL;
    uint64_t *l2;
    int l2_index, ret, n;

    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    nmax = MIN((uint64_t)(s->l2_size - l2_index), size_to_clusters(s, bytes + in_cluster));
    e = qcow2_l2_get(s, l2, l2_index);
    bm = qcow2_l2_bitmap_get(l2, l2_index);
    ret = ext_check_entry(bs, e, bm, offset, l2_index);
    if (ret < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        return ret;
    }
    if (ext_in_place(bs, e)) {
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        len = MIN(bytes, s->cluster_size - in_cluster);
        *done = len;
        *next_host = ext_host(bs, e, start_of_cluster(s, offset)) + in_cluster + len;
        return ext_write_in_place(bs, offset, len, buf, e, bm);
    }
    old_e = g_new(uint64_t, nmax);
    old_bm = g_new(uint64_t, nmax);
    old_e[0] = e;
    old_bm[0] = bm;
    for (n = 1; n < (int)nmax; n++) {
        e = qcow2_l2_get(s, l2, l2_index + n);
        bm = qcow2_l2_bitmap_get(l2, l2_index + n);
        if (ext_in_place(bs, e) || !qcow2_ext_entry_valid(bs, e, bm) ||
            (!(e & QCOW_OFLAG_COMPRESSED) && offset_into_cluster(s, e & L2E_OFFSET_MASK))) {
            break;      /* the next piece handles (or reports) it */
        }
        old_e[n] = e;
        old_bm[n] = bm;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    host = ext_alloc(bs, offset, *next_host, &n);
    if (host < 0) {
        return host;
    }
    len = MIN(bytes, (uint64_t)n * s->cluster_size - in_cluster);
    *done = len;
    *next_host = host + in_cluster + len;
    return ext_write_new(bs, offset, len, buf, n, host, old_e, old_bm);
}

int qcow2_ext_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     const uint8_t *buf)
{
    uint64_t next_host = 0;

    while (bytes > 0) {
        uint64_t done = 0;
        int ret = ext_write_piece(bs, offset, bytes, buf, &done, &next_host);

        if (ret < 0) {
            return ret;
        }
        offset += done;
        bytes -= done;
        buf += done;
    }
    return 0;
}

bool qcow2_ext_is_compressed(BlockDriverState *bs, uint64_t offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index;
    bool ret;

    if (qcow2_get_l2_table(bs, offset, &l2, &l2_index, false) < 0 || !l2) {
        return false;
    }
    ret = qcow2_l2_get(s, l2, l2_index) & QCOW_OFLAG_COMPRESSED;
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return ret;
}

int qcow2_ext_zero_subclusters(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t in_cluster = offset_into_cluster(s, offset), e, bm, nbm;
    int first = in_cluster >> s->subcluster_bits;
    int n = DIV_ROUND_UP(bytes, s->subcluster_size);
    uint32_t mask = qcow2_sc_mask(first, n);
    uint64_t *l2;
    int l2_index, ret;

    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    e = qcow2_l2_get(s, l2, l2_index);
    bm = qcow2_l2_bitmap_get(l2, l2_index);
    ret = ext_check_entry(bs, e, bm, offset, l2_index);
    if (ret == 0 && (e & QCOW_OFLAG_COMPRESSED)) {
        ret = -ENOTSUP;                 /* S4 */
    }
    if (ret == 0) {
        nbm = (bm & ~(uint64_t)mask) | ((uint64_t)mask << 32);
        if (nbm != bm) {
            qcow2_l2_bitmap_set(l2, l2_index, nbm);
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        }
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return ret;
}
