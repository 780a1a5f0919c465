/*
 * qcow2 guest -> host mapping: L1 and L2 tables, cluster allocation for writes,
 * copy-on-write, zero clusters, discard, compressed clusters, L1 growth.
 *
 * Invariants this file keeps (tests name them as C1..C6):
 *  C1. Guest data (including the copied-on-write parts of partially written
 *      clusters) is written before the L2 entry that points to it.
 *  C2. The COPIED flag is set on an L1/L2 entry exactly when the table or cluster
 *      it points to has refcount 1; only COPIED clusters are written in place,
 *      anything else is copied into a fresh cluster first.
 *  C3. With an external data file a guest cluster lives at the same offset in the
 *      data file; such clusters are never shared, never compressed, and are
 *      always written in place (partial writes into unallocated or zero clusters
 *      still copy the rest of the cluster, from zeros or the backing file).
 *  C4. With data_file_raw a mapped guest cluster lives 1:1 in the data file and
 *      the data file holds its content: zero writes keep a mapped cluster mapped
 *      and write zeros to the data file too (unmapping zero writes unmap it).
 *      A discard unmaps the cluster, as QEMU 7.2 does (its iotest 244): the
 *      image reads zeros there while the data file may keep stale data
 *      (discard=unmap passes the discard down); the next write maps it 1:1
 *      again. The zero flag a zero write sets is off on disk before the data
 *      file changes under it again, so a crash never leaves the image reading
 *      zeros where the data file holds data.
 *  C5. A new L2 table is on disk (with the refcount that owns it, R2) before the
 *      L1 entry that points to it.
 *  C6. Zero flags are only used on version 3 images; on version 2 a discarded
 *      cluster becomes unallocated, unless the image has a backing file: its data
 *      would show through, so discard leaves such clusters alone.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"
#include <zlib.h>

Qcow2ClusterType qcow2_get_cluster_type(BlockDriverState *bs, uint64_t l2_entry)
{
    BDRVQcow2State *s = bs->opaque;

    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if (s->extended_l2) {
        /* the cluster as a whole: the zero flag is unused, the bitmap tells more */
        return qcow2_ext_has_host(bs, l2_entry) ? QCOW2_CLUSTER_NORMAL
                                                : QCOW2_CLUSTER_UNALLOCATED;
    }
    if ((l2_entry & QCOW_OFLAG_ZERO) && s->version >= 3) {
        return (l2_entry & L2E_OFFSET_MASK) ? QCOW2_CLUSTER_ZERO_ALLOC
                                            : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    if (!(l2_entry & L2E_OFFSET_MASK)) {
        /* host offset 0 is valid only in an external data file (COPIED set) */
        if (has_data_file(bs) && (l2_entry & QCOW_OFLAG_COPIED)) {
            return QCOW2_CLUSTER_NORMAL;
        }
        return QCOW2_CLUSTER_UNALLOCATED;
    }
    return QCOW2_CLUSTER_NORMAL;
}

/* ---- L1 ---- */

int qcow2_write_l1_entries(BlockDriverState *bs, int first, int n)
{
    BDRVQcow2State *s = bs->opaque;
    /* write whole 512-byte sectors around the entries, as a unit */
    int start = QEMU_ALIGN_DOWN(first, 64);
    int end = MIN((int)s->l1_size, (int)QEMU_ALIGN_UP(first + n, 64));
    g_autofree uint64_t *buf = g_new0(uint64_t, MAX(end - start, 1));
    int ret;

    for (int i = start; i < end; i++) {
        buf[i - start] = GUINT64_TO_BE(s->l1_table[i]);
    }
    ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L1,
                                        s->l1_table_offset + start * 8,
                                        (end - start) * 8, false);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_UPDATE);
    return bdrv_pwrite(bs->file, s->l1_table_offset + start * 8, (end - start) * 8,
                       buf, 0);
}

int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t new_size = min_size, new_bytes;
    int64_t new_offset;
    g_autofree uint64_t *new_table = NULL, *be = NULL;
    uint8_t data[12];
    int ret;

    if (min_size <= s->l1_size) {
        return 0;
    }
    if (!exact) {
        /*
         * grow by steps of 1.5x (rounded up) until it fits, to amortise repeated
         * growth: QEMU's sizes, so VM state writes leave the same L1 table (a
         * size past the limit is -EFBIG even where @min_size would fit)
         */
        new_size = MAX(s->l1_size, 1);
        while (new_size < min_size) {
            new_size = DIV_ROUND_UP(new_size * 3, 2);
        }
    }
    if (new_size * 8 > QCOW_MAX_L1_SIZE) {
        return -EFBIG;
    }
    new_bytes = QEMU_ALIGN_UP(new_size * 8, 512);
    new_table = g_try_malloc0(new_bytes);
    be = g_try_malloc0(new_bytes);
    if (!new_table || !be) {
        return -ENOMEM;
    }
    memcpy(new_table, s->l1_table, s->l1_size * 8);

    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_ALLOC_TABLE);
    new_offset = qcow2_alloc_clusters(bs, new_bytes);
    if (new_offset < 0) {
        return new_offset;
    }
    /* the refcounts of the new table are on disk before the header points to it */
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }
    for (uint64_t i = 0; i < new_size; i++) {
        be[i] = GUINT64_TO_BE(new_table[i]);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_WRITE_TABLE);
    ret = qcow2_pre_write_overlap_check(bs, 0, new_offset, new_bytes, false);
    if (ret < 0) {
        goto fail;
    }
    ret = bdrv_pwrite(bs->file, new_offset, new_size * 8, be, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        goto fail;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_GROW_ACTIVATE_TABLE);
    {
        uint32_t be_size = GUINT32_TO_BE(new_size);
        uint64_t be_off = GUINT64_TO_BE(new_offset);
        memcpy(data, &be_size, 4);
        memcpy(data + 4, &be_off, 8);
    }
    ret = bdrv_pwrite(bs->file, offsetof(QCowHeader, l1_size), 12, data, 0);
    if (ret < 0) {
        goto fail;
    }
    {
        uint64_t old_offset = s->l1_table_offset;
        uint64_t old_bytes = (uint64_t)s->l1_size * 8;
        g_free(s->l1_table);
        s->l1_table = g_steal_pointer(&new_table);
        s->l1_table_offset = new_offset;
        s->l1_size = new_size;
        if (old_bytes) {
            qcow2_free_clusters(bs, old_offset, old_bytes);
        }
    }
    return 0;

fail:
    qcow2_free_unused_clusters(bs, new_offset, new_bytes);
    return ret;
}

/* ---- L2 tables ---- */

/* Allocate a new L2 table for L1 index @l1_index (copying a shared one). C5. */
static int l2_allocate(BlockDriverState *bs, int l1_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    int64_t l2_offset;
    void *table, *old_table;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_L2_ALLOC_COW_READ);
    l2_offset = qcow2_alloc_clusters_for(bs, s->cluster_size, "L2 table");
    if (l2_offset < 0) {
        return l2_offset;
    }
    ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }
    ret = qcow2_cache_get_empty(bs, s->l2_table_cache, l2_offset, &table);
    if (ret < 0) {
        goto fail;
    }
    if (old) {
        ret = qcow2_cache_get(bs, s->l2_table_cache, old, &old_table);
        if (ret < 0) {
            qcow2_cache_put(s->l2_table_cache, &table);
            goto fail;
        }
        memcpy(table, old_table, s->cluster_size);
        qcow2_cache_put(s->l2_table_cache, &old_table);
    } else {
        memset(table, 0, s->cluster_size);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, table);
    qcow2_cache_put(s->l2_table_cache, &table);

    BLKDBG_EVENT(bs->file, BLKDBG_L2_ALLOC_WRITE);
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0) {
        goto fail;
    }
    s->l1_table[l1_index] = l2_offset | QCOW_OFLAG_COPIED;
    ret = qcow2_write_l1_entries(bs, l1_index, 1);
    if (ret < 0) {
        s->l1_table[l1_index] = old;
        goto fail;
    }
    if (old) {
        /* the shared table loses one reference (R3 ordering by the cache) */
        qcow2_free_clusters(bs, old, s->cluster_size);
    }
    return 0;

fail:
    qcow2_cache_forget(s->l2_table_cache, l2_offset);
    qcow2_free_unused_clusters(bs, l2_offset, s->cluster_size);
    return ret;
}

int qcow2_get_l2_table(BlockDriverState *bs, uint64_t offset, uint64_t **l2_table,
                       int *l2_index, bool allocate)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_index = offset_to_l1_index(s, offset);
    uint64_t l1e, l2_offset;
    int ret;

    *l2_table = NULL;
    *l2_index = offset_to_l2_index(s, offset);
    if (l1_index >= s->l1_size) {
        if (!allocate) {
            return 0;
        }
        ret = qcow2_grow_l1_table(bs, l1_index + 1, false);
        if (ret < 0) {
            return ret;
        }
    }
    l1e = s->l1_table[l1_index];
    l2_offset = l1e & L1E_OFFSET_MASK;
    if (l2_offset && offset_into_cluster(s, l2_offset)) {
        qcow2_signal_corruption(bs, true, l2_offset, -1, "L2 table offset %#" PRIx64
                                " unaligned (L1 index: %#" PRIx64 ")", l2_offset,
                                l1_index);
        return -EIO;
    }
    if (allocate && (!l2_offset || !(l1e & QCOW_OFLAG_COPIED))) {
        ret = l2_allocate(bs, l1_index);
        if (ret < 0) {
            return ret;
        }
        l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
        if (!l2_offset) {
            return -EIO;       /* never hand a caller that allocates no table */
        }
    }
    if (!l2_offset) {
        return 0;
    }
    ret = qcow2_cache_get(bs, s->l2_table_cache, l2_offset, (void **)l2_table);
    return ret < 0 ? ret : 0;
}

static inline BlockDriverState *data_node_of(BlockDriverState *bs)
{
    return bs->data_file ? bs->data_file : bs->file;
}


/* Validate an L2 entry for reading; -EIO (and corruption marked) if bad. */
static int check_l2_entry(BlockDriverState *bs, uint64_t entry, uint64_t guest_offset)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2ClusterType t = qcow2_get_cluster_type(bs, entry);
    uint64_t host = entry & L2E_OFFSET_MASK;

    if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
        if (offset_into_cluster(s, host)) {
            qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation offset %#"
                                    PRIx64 " unaligned (L2 offset: %#" PRIx64
                                    ", L2 index: %#x)", host,
                                    (uint64_t)(s->l1_table[offset_to_l1_index(s,
                                    guest_offset)] & L1E_OFFSET_MASK),
                                    offset_to_l2_index(s, guest_offset));
            return -EIO;
        }
        if (has_data_file(bs) && host != (uint64_t)start_of_cluster(s, guest_offset) &&
            t == QCOW2_CLUSTER_NORMAL) {
            qcow2_signal_corruption(bs, true, -1, -1, "External data file cluster "
                                    "for guest offset %#" PRIx64 " is mapped to %#"
                                    PRIx64, start_of_cluster(s, guest_offset), host);
            return -EIO;
        }
    }
    if (t == QCOW2_CLUSTER_COMPRESSED && has_data_file(bs)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Compressed cluster entry found in "
                                "image with external data file (L2 offset: %#" PRIx64
                                ")", guest_offset);
        return -EIO;
    }
    return 0;
}

/*
 * Status walks over an image opened read-only (qemu-img map, the block status of
 * convert's and compare's sources) read the L2 tables through a window instead of
 * the cache: tables that lie back to back in the image file, as preallocation
 * writes them, are read in one request of up to L2_WINDOW_BYTES, and nothing is
 * kept. Walking a 1 TiB image then reads its 128 MiB of L2 tables once, in big
 * sequential requests, with 1 MiB of memory instead of a 32 MiB cache. Opened
 * read-only, nothing in the cache can be newer than the file.
 */
#define L2_WINDOW_BYTES (1 * MiB)

static int l2_window_get(BlockDriverState *bs, uint32_t l1_index, uint64_t **table)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    uint64_t cap = MAX((uint64_t)L2_WINDOW_BYTES, (uint64_t)s->cluster_size), len;
    int ret;

    if (s->l2_window_len && l2_offset >= s->l2_window_start &&
        l2_offset - s->l2_window_start < s->l2_window_len) {
        *table = (uint64_t *)(s->l2_window + (l2_offset - s->l2_window_start));
        return 0;
    }
    if (!s->l2_window) {
        void *mem = NULL;
        if (posix_memalign(&mem, 4096, cap)) {
            return -ENOMEM;
        }
        s->l2_window = mem;
    }
    /* this table and the ones right after it in both L1 and the file */
    len = s->cluster_size;
    for (uint32_t i = l1_index + 1; i < s->l1_size && len + s->cluster_size <= cap; i++) {
        if ((s->l1_table[i] & L1E_OFFSET_MASK) != l2_offset + len) {
            break;
        }
        len += s->cluster_size;
    }
    s->l2_window_len = 0;
    BLKDBG_EVENT(bs->file, BLKDBG_L2_LOAD);
    ret = bdrv_pread(bs->file, l2_offset, len, s->l2_window, 0);
    if (ret < 0) {
        return ret;
    }
    s->l2_window_start = l2_offset;
    s->l2_window_len = len;
    *table = (uint64_t *)s->l2_window;
    return 0;
}

/* The L2 table for a lookup: from the window (@scan on a read-only image) or the
 * cache; NULL if none is allocated. Release with l2_put_for_lookup(). */
static int l2_get_for_lookup(BlockDriverState *bs, uint64_t offset, bool scan,
                             uint64_t **l2, int *l2_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_index = offset_to_l1_index(s, offset);
    uint64_t l2_offset;

    if (!scan || !bdrv_is_read_only(bs) || l1_index >= s->l1_size) {
        return qcow2_get_l2_table(bs, offset, l2, l2_index, false);
    }
    *l2 = NULL;
    *l2_index = offset_to_l2_index(s, offset);
    l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    if (!l2_offset || offset_into_cluster(s, l2_offset)) {
        /* none, or the cache path reports the corruption */
        return qcow2_get_l2_table(bs, offset, l2, l2_index, false);
    }
    return l2_window_get(bs, l1_index, l2);
}

static void l2_put_for_lookup(BlockDriverState *bs, uint64_t **l2)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t *p = (uint8_t *)*l2;

    if (s->l2_window && p >= s->l2_window && p < s->l2_window + s->l2_window_len) {
        *l2 = NULL;
        return;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)l2);
}

void qcow2_l2_window_free(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    free(s->l2_window);
    s->l2_window = NULL;
    s->l2_window_len = 0;
}

/*
 * Extended L2 (qcow2-subcluster.c owns the writes): the kind of subcluster @sc of
 * entry (@e, @bm), with its host offset. Compressed clusters ignore the bitmap.
 */
static Qcow2ClusterType ext_sc_type(BlockDriverState *bs, uint64_t e, uint64_t bm,
                                    int sc)
{
    if (e & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_CLUSTER_COMPRESSED;
    }
    if (bm & (1ULL << sc)) {
        return QCOW2_CLUSTER_NORMAL;
    }
    if (bm & (1ULL << (32 + sc))) {
        return qcow2_ext_has_host(bs, e) ? QCOW2_CLUSTER_ZERO_ALLOC
                                         : QCOW2_CLUSTER_ZERO_PLAIN;
    }
    return QCOW2_CLUSTER_UNALLOCATED;
}

/* Subcluster granularity: runs of one kind, across entries of the same table. */
static int ext_get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                               uint64_t *host_offset, Qcow2ClusterType *type, bool scan)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret, sc;
    uint64_t in_cluster = offset_into_cluster(s, offset);
    uint64_t max_clusters, e, bm, want = 0, len;
    Qcow2ClusterType t;
    bool has_host;

    max_clusters = s->l2_size - offset_to_l2_index(s, offset);
    if (*bytes > max_clusters * s->cluster_size - in_cluster) {
        *bytes = max_clusters * s->cluster_size - in_cluster;
    }
    ret = l2_get_for_lookup(bs, offset, scan, &l2, &l2_index);
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *host_offset = 0;
        return 0;
    }
    e = qcow2_l2_get(s, l2, l2_index);
    bm = qcow2_l2_bitmap_get(l2, l2_index);
    ret = check_l2_entry(bs, e, offset);
    if (ret == 0 && !qcow2_ext_entry_valid(bs, e, bm)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Invalid cluster entry found  (L2 "
                                "offset: %#" PRIx64 ", L2 index: %#x)",
                                (uint64_t)(s->l1_table[offset_to_l1_index(s, offset)] &
                                L1E_OFFSET_MASK), l2_index);
        ret = -EIO;
    }
    if (ret < 0) {
        l2_put_for_lookup(bs, &l2);
        return ret;
    }
    sc = in_cluster >> s->subcluster_bits;
    t = ext_sc_type(bs, e, bm, sc);
    *type = t;
    if (t == QCOW2_CLUSTER_COMPRESSED) {
        *host_offset = e;
        l2_put_for_lookup(bs, &l2);
        *bytes = MIN(*bytes, s->cluster_size - in_cluster);
        return 0;
    }
    /* unallocated subclusters of a cluster with a host cluster have an offset too
     * (block status shows it, as QEMU's does) */
    has_host = t != QCOW2_CLUSTER_ZERO_PLAIN && qcow2_ext_has_host(bs, e);
    *host_offset = has_host ? (e & L2E_OFFSET_MASK) + in_cluster : 0;
    if (has_host) {
        want = (e & L2E_OFFSET_MASK) + ((uint64_t)(sc + 1) << s->subcluster_bits);
    }
    len = ((uint64_t)(sc + 1) << s->subcluster_bits) - in_cluster;
    /* the run goes on through subclusters (and entries) of the same kind */
    for (uint64_t i = 0; len < *bytes; ) {
        sc++;
        if (sc == QCOW_EXTL2_SUBCLUSTERS) {
            if (++i >= max_clusters) {
                break;
            }
            sc = 0;
            e = qcow2_l2_get(s, l2, l2_index + i);
            bm = qcow2_l2_bitmap_get(l2, l2_index + i);
            if (offset_into_cluster(s, e & L2E_OFFSET_MASK) ||
                !qcow2_ext_entry_valid(bs, e, bm)) {
                break;
            }
        }
        if (ext_sc_type(bs, e, bm, sc) != t) {
            break;
        }
        if (t == QCOW2_CLUSTER_UNALLOCATED && qcow2_ext_has_host(bs, e) != has_host) {
            break;
        }
        if (has_host) {
            if ((e & L2E_OFFSET_MASK) + ((uint64_t)sc << s->subcluster_bits) != want) {
                break;
            }
            want += s->subcluster_size;
        }
        len += s->subcluster_size;
    }
    l2_put_for_lookup(bs, &l2);
    *bytes = MIN(*bytes, len);
    return 0;
}

static int get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                           uint64_t *host_offset, Qcow2ClusterType *type, bool scan)
{
    if (((BDRVQcow2State *)bs->opaque)->extended_l2) {
        return ext_get_host_offset(bs, offset, bytes, host_offset, type, scan);
    }

    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret;
    uint64_t in_cluster = offset_into_cluster(s, offset);
    uint64_t max_clusters, entry, n, step;
    Qcow2ClusterType t;

    /* never look past the L2 table the first cluster is in */
    max_clusters = s->l2_size - offset_to_l2_index(s, offset);
    if (*bytes > max_clusters * s->cluster_size - in_cluster) {
        *bytes = max_clusters * s->cluster_size - in_cluster;
    }
    ret = l2_get_for_lookup(bs, offset, scan, &l2, &l2_index);
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        *type = QCOW2_CLUSTER_UNALLOCATED;
        *host_offset = 0;
        return 0;
    }
    entry = qcow2_l2_get(s, l2, l2_index);
    ret = check_l2_entry(bs, entry, offset);
    if (ret < 0) {
        l2_put_for_lookup(bs, &l2);
        return ret;
    }
    t = qcow2_get_cluster_type(bs, entry);
    max_clusters = t == QCOW2_CLUSTER_COMPRESSED ? 1 :
                   size_to_clusters(s, *bytes + in_cluster);
    /*
     * The run goes on while entries have the same type (and, with a host offset,
     * the next host cluster). An entry equal to the first one plus n clusters
     * (with the same flags) is of the same type: checked first, it makes long 1:1
     * runs cost one comparison per entry. @step is 0 where the offset does not
     * count, and too close to the end of the offset field nothing is shortcut.
     */
    step = (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) ? s->cluster_size : 0;
    if (step && (entry & L2E_OFFSET_MASK) + max_clusters * step > L2E_OFFSET_MASK) {
        step = UINT64_MAX;
    }
    n = 1;
    if (step != UINT64_MAX) {
        uint64_t want = entry + step;
        while (n < max_clusters && qcow2_l2_get(s, l2, l2_index + n) == want) {
            n++;
            want += step;
        }
    }
    for (; n < max_clusters; n++) {
        uint64_t e = qcow2_l2_get(s, l2, l2_index + n);
        if (qcow2_get_cluster_type(bs, e) != t) {
            break;
        }
        if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
            (e & L2E_OFFSET_MASK) != (entry & L2E_OFFSET_MASK) + n * s->cluster_size) {
            break;
        }
    }
    l2_put_for_lookup(bs, &l2);
    *bytes = MIN(*bytes, n * s->cluster_size - in_cluster);
    *type = t;
    if (t == QCOW2_CLUSTER_COMPRESSED) {
        *host_offset = entry;
    } else if (t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) {
        *host_offset = (entry & L2E_OFFSET_MASK) + in_cluster;
    } else {
        *host_offset = 0;
    }
    return 0;
}

int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                          uint64_t *host_offset, Qcow2ClusterType *type)
{
    return get_host_offset(bs, offset, bytes, host_offset, type, false);
}

int qcow2_scan_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                           uint64_t *host_offset, Qcow2ClusterType *type)
{
    return get_host_offset(bs, offset, bytes, host_offset, type, true);
}

/* Can this entry be overwritten in place (C2, C3)? */
static bool in_place_writable(BlockDriverState *bs, uint64_t entry)
{
    Qcow2ClusterType t = qcow2_get_cluster_type(bs, entry);

    return t == QCOW2_CLUSTER_NORMAL && (has_data_file(bs) || (entry & QCOW_OFLAG_COPIED));
}

/* A preallocated zero cluster that only this L2 entry references (C2)? */
static bool zero_alloc_reusable(BlockDriverState *bs, uint64_t entry)
{
    return qcow2_get_cluster_type(bs, entry) == QCOW2_CLUSTER_ZERO_ALLOC &&
           (entry & QCOW_OFLAG_COPIED);
}

int qcow2_alloc_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                            uint64_t *host_offset, Qcow2ClusterAlloc *m)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret;
    uint64_t in_cluster = offset_into_cluster(s, offset);
    uint64_t max_clusters, entry, n;
    int64_t host;
    bool reuse;

    memset(m, 0, sizeof(*m));
    max_clusters = MIN((uint64_t)(s->l2_size - offset_to_l2_index(s, offset)),
                       size_to_clusters(s, *bytes + in_cluster));
    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    entry = qcow2_l2_get(s, l2, l2_index);
    if ((entry & QCOW_OFLAG_COPIED) &&
        (qcow2_get_cluster_type(bs, entry) == QCOW2_CLUSTER_NORMAL ||
         qcow2_get_cluster_type(bs, entry) == QCOW2_CLUSTER_ZERO_ALLOC) &&
        offset_into_cluster(s, entry & L2E_OFFSET_MASK)) {
        /* a cluster to write in place: QEMU names it by its guest offset */
        qcow2_signal_corruption(bs, true, -1, -1, "%s cluster offset %#" PRIx64
                                " unaligned (guest offset: %#" PRIx64 ")",
                                entry & QCOW_OFLAG_ZERO ? "Preallocated zero" : "Data",
                                (uint64_t)(entry & L2E_OFFSET_MASK), offset);
        ret = -EIO;
        goto out;
    }
    ret = check_l2_entry(bs, entry, offset);
    if (ret < 0) {
        goto out;
    }
    /*
     * Clusters written in place: data clusters only this entry references (C2,
     * C3) and preallocated zero clusters no snapshot shares. The latter keep
     * their host clusters, as in QEMU (its iotest 066): the data goes there,
     * then their L2 entries drop the zero flag (C1). One run, one file write.
     */
    reuse = !has_data_file(bs) && zero_alloc_reusable(bs, entry);
    if (in_place_writable(bs, entry) || reuse) {
        for (n = 1; n < max_clusters; n++) {
            uint64_t e = qcow2_l2_get(s, l2, l2_index + n);
            bool z = !has_data_file(bs) && zero_alloc_reusable(bs, e);

            if ((!in_place_writable(bs, e) && !z) || (e & L2E_OFFSET_MASK) !=
                (entry & L2E_OFFSET_MASK) + n * s->cluster_size) {
                break;
            }
            reuse |= z;
        }
        *bytes = MIN(*bytes, n * s->cluster_size - in_cluster);
        *host_offset = (entry & L2E_OFFSET_MASK) + in_cluster;
        if (!reuse) {
            goto out;
        }
        host = entry & L2E_OFFSET_MASK;
    } else {
        /* a run of clusters that all need new mappings */
        for (n = 1; n < max_clusters; n++) {
            uint64_t e = qcow2_l2_get(s, l2, l2_index + n);

            if (in_place_writable(bs, e) ||
                (!has_data_file(bs) && zero_alloc_reusable(bs, e))) {
                break;
            }
        }
        host = -1;
    }
    m->old_entries = g_new(uint64_t, n);
    for (uint64_t i = 0; i < n; i++) {
        m->old_entries[i] = qcow2_l2_get(s, l2, l2_index + i);
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);

    if (reuse) {
        /* host is set: the clusters stay where they are */
    } else if (has_data_file(bs)) {
        host = start_of_cluster(s, offset);          /* C3 */
    } else {
        host = -1;
        if (*host_offset) {
            /* right after the request's last piece, as much as is free there */
            int64_t k = qcow2_alloc_clusters_at(bs, *host_offset, n);
            if (k > 0) {
                n = k;
                host = *host_offset;
            } else if (k < 0) {
                host = k;
            }
        }
        if (host == -1) {
            host = qcow2_alloc_clusters(bs, n * s->cluster_size);
        }
        if (host < 0) {
            g_free(m->old_entries);
            m->old_entries = NULL;
            return host;
        }
    }
    *bytes = MIN(*bytes, n * s->cluster_size - in_cluster);
    m->guest_offset = start_of_cluster(s, offset);
    m->host_offset = host;
    m->nb_clusters = n;
    m->needs_link = true;
    m->reused = reuse;
    m->cow_start_bytes = in_cluster;
    m->cow_end_offset = offset + *bytes;
    m->cow_end_bytes = m->guest_offset + n * s->cluster_size - m->cow_end_offset;
    *host_offset = host + in_cluster;
    return 0;

out:
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return ret;
}

int qcow2_alloc_cluster_link_l2(BlockDriverState *bs, Qcow2ClusterAlloc *m)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret;

    if (!m->needs_link) {
        return 0;
    }
    if (qcow2_need_accurate_refcounts(s)) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            return ret;
        }
    }
    ret = qcow2_get_l2_table(bs, m->guest_offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    for (int i = 0; i < m->nb_clusters; i++) {
        qcow2_l2_set(s, l2, l2_index + i, (m->host_offset + (uint64_t)i * s->cluster_size) |
               QCOW_OFLAG_COPIED);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    /* drop the references the old entries held */
    for (int i = 0; i < m->nb_clusters; i++) {
        uint64_t old = m->old_entries[i];
        if ((old & L2E_OFFSET_MASK) != m->host_offset + (uint64_t)i * s->cluster_size ||
            qcow2_get_cluster_type(bs, old) == QCOW2_CLUSTER_COMPRESSED) {
            qcow2_free_any_cluster(bs, old, 1);
        }
    }
    g_free(m->old_entries);
    m->old_entries = NULL;
    return 0;
}

int qcow2_raw_clear_zero_flags(BlockDriverState *bs, Qcow2ClusterAlloc *m)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret, i;

    for (i = 0; i < m->nb_clusters && !(m->old_entries[i] & QCOW_OFLAG_ZERO); i++) {
    }
    if (!data_file_is_raw(bs) || i == m->nb_clusters) {
        return 0;
    }
    ret = qcow2_get_l2_table(bs, m->guest_offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    for (i = 0; i < m->nb_clusters; i++) {
        uint64_t e = qcow2_l2_get(s, l2, l2_index + i);
        if (e & QCOW_OFLAG_ZERO) {
            qcow2_l2_set(s, l2, l2_index + i, e & ~QCOW_OFLAG_ZERO);
        }
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return qcow2_cache_flush(bs, s->l2_table_cache);
}

void qcow2_alloc_cluster_abort(BlockDriverState *bs, Qcow2ClusterAlloc *m)
{
    BDRVQcow2State *s = bs->opaque;

    /* a node marked corrupt meanwhile writes no more metadata */
    if (m->needs_link && !has_data_file(bs) && !m->reused && !qcow2_is_dead(bs)) {
        qcow2_free_unused_clusters(bs, m->host_offset,
                                   (int64_t)m->nb_clusters << s->cluster_bits);
    }
    g_free(m->old_entries);
    m->old_entries = NULL;
}

/* ---- zero and discard ---- */

/*
 * Apply @op to the L2 entries of full clusters in [offset, offset+bytes) within
 * one L2 table. Returns the number of clusters processed or -errno.
 */
typedef enum { L2_OP_ZERO, L2_OP_ZERO_UNMAP, L2_OP_DISCARD, L2_OP_REMOVE } L2Op;

/*
 * Clusters freed one after the other are usually neighbours in the file: their
 * discard requests are merged into one per run (a punched hole per 64 KiB
 * cluster costs a file system transaction each). @always runs pass the file's
 * discard= option by (the clusters a shrink cuts off: QEMU frees their space).
 */
typedef struct DiscardRun {
    BlockDriverState *node;
    uint64_t start, len;
    bool always;
} DiscardRun;

static void discard_run_flush(DiscardRun *r)
{
    if (r->len) {
        if (r->always) {
            bdrv_pdiscard_always(r->node, r->start, r->len);
        } else {
            bdrv_pdiscard(r->node, r->start, r->len);
        }
        r->len = 0;
    }
}

static void discard_run_add(DiscardRun *r, BlockDriverState *node, uint64_t start,
                            uint64_t len)
{
    if (r->len && (r->node != node || r->start + r->len != start)) {
        discard_run_flush(r);
    }
    if (!r->len) {
        r->node = node;
        r->start = start;
    }
    r->len += len;
}

/* Queue the image file clusters under [host, host+len) that are free now. */
static void discard_freed(BlockDriverState *bs, DiscardRun *run, uint64_t host, uint64_t len)
{
    BDRVQcow2State *s = bs->opaque;

    for (uint64_t c = host >> s->cluster_bits; c <= (host + len - 1) >> s->cluster_bits;
         c++) {
        uint64_t rc = 0;
        if (qcow2_get_refcount(bs, c, &rc) == 0 && rc == 0) {
            discard_run_add(run, bs->file, c << s->cluster_bits, s->cluster_size);
        }
    }
}

static int64_t l2_range_op(BlockDriverState *bs, uint64_t offset, uint64_t nb_clusters,
                           L2Op op)
{
    BDRVQcow2State *s = bs->opaque;
    /*
     * Removed clusters (past the end of a shrunk image) always give their space
     * back in the image file; an external data file is truncated by the caller.
     */
    DiscardRun run = { .always = op == L2_OP_REMOVE };
    bool raw = data_file_is_raw(bs);
    /* a raw data file already got its zeros (with MAY_UNMAP) from the caller */
    bool pass_discards = op == L2_OP_REMOVE ? !has_data_file(bs) :
                         op != L2_OP_ZERO && !(raw && op == L2_OP_ZERO_UNMAP) &&
                         (bs->open_flags & BDRV_O_UNMAP);
    uint64_t *l2;
    int l2_index, ret;

    nb_clusters = MIN(nb_clusters, (uint64_t)(s->l2_size - offset_to_l2_index(s, offset)));
    /* a discard over a backing file needs zero entries there too (as in QEMU) */
    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index,
                             (op != L2_OP_DISCARD && op != L2_OP_REMOVE) ||
                             (op == L2_OP_DISCARD && bs->backing && s->version >= 3));
    if (ret < 0) {
        return ret;
    }
    if (!l2) {
        /* no table: unallocated; discard needs nothing, zeroing needs a table */
        return nb_clusters;
    }
    if (!(s->l1_table[offset_to_l1_index(s, offset)] & QCOW_OFLAG_COPIED)) {
        /* a table an internal snapshot shares is copied before it changes */
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint64_t i = 0; i < nb_clusters; i++) {
        uint64_t old = qcow2_l2_get(s, l2, l2_index + i), new = old;
        Qcow2ClusterType t = qcow2_get_cluster_type(bs, old);
        bool unmap = op != L2_OP_ZERO;

        if (s->extended_l2) {
            /* whole clusters: the bitmap says all zeros, or nothing at all */
            uint64_t obm = qcow2_l2_bitmap_get(l2, l2_index + i), nbm;

            if (op == L2_OP_REMOVE) {
                new = 0;
                nbm = 0;
            } else if (op == L2_OP_DISCARD) {
                if (t == QCOW2_CLUSTER_UNALLOCATED && !bs->backing) {
                    continue;
                }
                new = 0;
                nbm = QCOW_L2_BITMAP_ALL_ZEROES;
            } else {
                new = unmap || t != QCOW2_CLUSTER_NORMAL ? 0 : old;
                nbm = QCOW_L2_BITMAP_ALL_ZEROES;
            }
            if (new == old && nbm == obm) {
                continue;
            }
            qcow2_l2_bitmap_set(l2, l2_index + i, nbm);
            if (new == old) {
                qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
                continue;
            }
        } else if (op == L2_OP_REMOVE) {
            new = 0;          /* past the end of a shrunk image */
        } else if (raw) {
            /* C4: a discarded cluster reads as zeros, unmapped; zeroing keeps a
             * mapped cluster mapped unless it may unmap (the caller zeroed the
             * data file either way) */
            if (op == L2_OP_DISCARD && t == QCOW2_CLUSTER_UNALLOCATED) {
                continue;
            }
            if (op != L2_OP_ZERO || t == QCOW2_CLUSTER_UNALLOCATED ||
                t == QCOW2_CLUSTER_ZERO_PLAIN) {
                new = QCOW_OFLAG_ZERO;
            } else {
                new = (start_of_cluster(s, offset) + (i << s->cluster_bits)) |
                      QCOW_OFLAG_COPIED | QCOW_OFLAG_ZERO;
            }
        } else if (s->version < 3) {
            /* C6: discarding would reveal the backing file; discard is advisory */
            if (op == L2_OP_DISCARD && bs->backing) {
                continue;
            }
            new = 0;
        } else if (op == L2_OP_DISCARD) {
            if (t == QCOW2_CLUSTER_UNALLOCATED && !bs->backing) {
                continue;
            }
            if (t == QCOW2_CLUSTER_ZERO_PLAIN) {
                continue;
            }
            new = bs->backing ? 0 : QCOW_OFLAG_ZERO;
            if (bs->backing) {
                new = QCOW_OFLAG_ZERO;   /* discarded data must not reveal the backing */
            }
        } else if (unmap || t == QCOW2_CLUSTER_UNALLOCATED || t == QCOW2_CLUSTER_COMPRESSED ||
                   t == QCOW2_CLUSTER_ZERO_PLAIN) {
            new = QCOW_OFLAG_ZERO;
        } else {
            new = old | QCOW_OFLAG_ZERO;
        }
        if (new == old) {
            continue;
        }
        qcow2_l2_set(s, l2, l2_index + i, new);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        if (t == QCOW2_CLUSTER_COMPRESSED) {
            qcow2_free_any_cluster(bs, old, 1);
            if (op == L2_OP_REMOVE && pass_discards) {
                uint64_t coff, clen;
                qcow2_compressed_range(s, old, &coff, &clen);
                discard_freed(bs, &run, coff, clen);
            }
        } else if ((t == QCOW2_CLUSTER_NORMAL || t == QCOW2_CLUSTER_ZERO_ALLOC) &&
                   !(new & L2E_OFFSET_MASK)) {
            uint64_t host = has_data_file(bs) ? start_of_cluster(s, offset) +
                            (i << s->cluster_bits) : old & L2E_OFFSET_MASK;
            qcow2_free_any_cluster(bs, old, 1);
            /* discard requests reach the file for what is no longer used */
            if (pass_discards) {
                if (has_data_file(bs)) {
                    discard_run_add(&run, data_node_of(bs), host, s->cluster_size);
                } else {
                    discard_freed(bs, &run, host, s->cluster_size);
                }
            }
        }
    }
    discard_run_flush(&run);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return nb_clusters;
}

static int cluster_range_op(BlockDriverState *bs, uint64_t offset, uint64_t bytes, L2Op op)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t nb = bytes >> s->cluster_bits;

    while (nb > 0) {
        int64_t done = l2_range_op(bs, offset, nb, op);
        if (done < 0) {
            return done;
        }
        offset += done << s->cluster_bits;
        nb -= done;
    }
    return 0;
}

int qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset, uint64_t bytes, int flags)
{
    return cluster_range_op(bs, offset, bytes,
                            (flags & BDRV_REQ_MAY_UNMAP) ? L2_OP_ZERO_UNMAP : L2_OP_ZERO);
}

int qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                          bool full_discard)
{
    return cluster_range_op(bs, offset, bytes, full_discard ? L2_OP_REMOVE : L2_OP_DISCARD);
}

int qcow2_discard_unmap_range(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    return cluster_range_op(bs, offset, bytes, L2_OP_REMOVE);
}

/*
 * Downgrade to v2 (no zero flag there): every zero cluster, in the active L1
 * table and in every snapshot's, becomes an unallocated cluster (nothing below
 * shows through) or a data cluster full of zeros. An L2 table shared by several
 * L1 tables (refcount n > 1) is changed in place, once for all of them, and a
 * cluster linked into it gets refcount n.
 *
 * Ordering per L2 table: zeros reach the new (or preallocated) clusters and
 * refcounts reach the disk before the L2 table that references them; a zero
 * cluster that was shared with other tables (its refcount exceeds the L2
 * table's) gets a fresh cluster and loses its references only once the L2
 * table is on disk. A failure midway leaves a consistent image at worst with
 * leaked clusters, part of the zero clusters expanded.
 */
typedef struct ExpandProgress {
    int64_t done;
    int64_t total;
} ExpandProgress;

static int expand_zero_clusters_in_l2(BlockDriverState *bs, uint64_t l2_offset,
                                      const uint8_t *zero_buf)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *new_entries = NULL;
    g_autofree uint64_t *old_shared = NULL;
    int nb_old = 0, nb_changed = 0, ret;
    uint64_t l2_refcount = 0;
    uint64_t *l2;

    ret = qcow2_get_refcount(bs, l2_offset >> s->cluster_bits, &l2_refcount);
    if (ret < 0) {
        return ret;
    }
    if (l2_refcount == 0) {
        qcow2_signal_corruption(bs, true, l2_offset, s->cluster_size, "L2 table at "
                                "%#" PRIx64 " has refcount 0", l2_offset);
        return -EIO;
    }
    ret = qcow2_cache_get(bs, s->l2_table_cache, l2_offset, (void **)&l2);
    if (ret < 0) {
        return ret;
    }
    new_entries = g_new(uint64_t, s->l2_size);
    old_shared = g_new(uint64_t, s->l2_size);
    for (int j = 0; j < s->l2_size; j++) {
        uint64_t e = qcow2_l2_get(s, l2, j), off = e & L2E_OFFSET_MASK, rc = 0;
        Qcow2ClusterType t = qcow2_get_cluster_type(bs, e);
        bool fresh;

        new_entries[j] = e;
        if (t != QCOW2_CLUSTER_ZERO_PLAIN && t != QCOW2_CLUSTER_ZERO_ALLOC) {
            continue;
        }
        nb_changed++;
        if (t == QCOW2_CLUSTER_ZERO_PLAIN && !bs->backing) {
            new_entries[j] = 0;         /* reads zeros in v2 too */
            continue;
        }
        if (t == QCOW2_CLUSTER_ZERO_ALLOC) {
            if (offset_into_cluster(s, off)) {
                ret = -EIO;
                qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation offset "
                                        "%#" PRIx64 " unaligned (L2 offset: %#"
                                        PRIx64 ", L2 index: %#x)", off, l2_offset, j);
                goto fail;
            }
            ret = qcow2_get_refcount(bs, off >> s->cluster_bits, &rc);
            if (ret < 0) {
                goto fail;
            }
        }
        /* a cluster others reach without this table keeps its content */
        fresh = t == QCOW2_CLUSTER_ZERO_PLAIN || rc > l2_refcount;
        if (fresh) {
            int64_t h = qcow2_alloc_clusters(bs, s->cluster_size);
            if (h < 0) {
                ret = h;
                goto fail;
            }
            if (l2_refcount > 1) {
                ret = qcow2_update_cluster_refcount(bs, h >> s->cluster_bits,
                                                    l2_refcount - 1);
                if (ret < 0) {
                    qcow2_free_clusters(bs, h, s->cluster_size);
                    goto fail;
                }
            }
            if (t == QCOW2_CLUSTER_ZERO_ALLOC) {
                old_shared[nb_old++] = off;
            }
            off = h;
            new_entries[j] = off | (l2_refcount == 1 ? QCOW_OFLAG_COPIED : 0);
        } else {
            new_entries[j] = e & ~QCOW_OFLAG_ZERO;
        }
        ret = qcow2_pre_write_overlap_check(bs, 0, off, s->cluster_size, false);
        if (ret == 0) {
            ret = bdrv_pwrite(bs->file, off, s->cluster_size, zero_buf, 0);
        }
        if (ret < 0) {
            goto fail;
        }
    }
    if (!nb_changed) {
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        return 0;
    }
    /* data and refcounts first, then the references */
    ret = bdrv_flush(bs->file);
    if (ret == 0) {
        ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    }
    if (ret < 0) {
        goto fail;
    }
    for (int j = 0; j < s->l2_size; j++) {
        qcow2_l2_set(s, l2, j, new_entries[j]);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    /* the zero clusters that were shared: this table no longer reaches them */
    for (int i = 0; i < nb_old; i++) {
        ret = qcow2_update_cluster_refcount(bs, old_shared[i] >> s->cluster_bits,
                                            -(int64_t)l2_refcount);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;

fail:
    /* clusters allocated so far stay leaked: nothing references them */
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return ret;
}

static int expand_zero_clusters_in_l1(BlockDriverState *bs, const uint64_t *l1,
                                      uint32_t l1_size, const uint8_t *zero_buf,
                                      ExpandProgress *prog)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_offset = l1[i] & L1E_OFFSET_MASK;

        if (l2_offset) {
            if (offset_into_cluster(s, l2_offset)) {
                qcow2_signal_corruption(bs, true, l2_offset, -1, "L2 table offset %#"
                                        PRIx64 " unaligned (L1 index: %#" PRIx32 ")",
                                        l2_offset, i);
                return -EIO;
            }
            ret = expand_zero_clusters_in_l2(bs, l2_offset, zero_buf);
            if (ret < 0) {
                return ret;
            }
        }
        bdrv_amend_report(bs, ++prog->done, prog->total);
    }
    return 0;
}

int qcow2_expand_zero_clusters(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) snaps = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    g_autofree uint8_t *zero_buf = g_malloc0(s->cluster_size);
    ExpandProgress prog = { 0, s->l1_size };
    int ret;

    ret = qcow2_read_snapshots(bs, snaps, NULL);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < snaps->len; i++) {
        prog.total += ((Qcow2SnapshotInfo *)snaps->pdata[i])->l1_size;
    }
    ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    ret = expand_zero_clusters_in_l1(bs, s->l1_table, s->l1_size, zero_buf, &prog);
    for (guint i = 0; ret == 0 && i < snaps->len; i++) {
        Qcow2SnapshotInfo *sn = snaps->pdata[i];
        g_autofree uint64_t *l1 = NULL;

        GError *err = NULL;

        /* QEMU prints why before the error amend reports */
        ret = qcow2_check_snapshot_l1(bs, sn, &err);
        if (ret < 0) {
            error_report_err(err);
            return ret;
        }
        l1 = g_new0(uint64_t, MAX(sn->l1_size, 1));
        ret = bdrv_pread(bs->file, sn->l1_table_offset, (int64_t)sn->l1_size * 8, l1, 0);
        if (ret < 0) {
            return ret;
        }
        for (uint32_t j = 0; j < sn->l1_size; j++) {
            l1[j] = GUINT64_FROM_BE(l1[j]);
        }
        ret = expand_zero_clusters_in_l1(bs, l1, sn->l1_size, zero_buf, &prog);
    }
    if (ret < 0) {
        return ret;
    }
    return qcow2_flush_caches(bs);
}

/* ---- compressed clusters ---- */

int qcow2_decompress_cluster(BlockDriverState *bs, uint64_t l2_entry, uint8_t *out)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start, len;
    g_autofree uint8_t *in = NULL;
    int ret;

    qcow2_compressed_range(s, l2_entry, &start, &len);
    {
        int x = 62 - (s->cluster_bits - 8);
        uint64_t off = l2_entry & ((1ULL << x) - 1);
        /* read from the real start, up to the end of the last sector */
        len -= off - start;
        start = off;
    }
    in = g_try_malloc(len);
    if (!in) {
        return -ENOMEM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_READ_COMPRESSED);
    ret = bdrv_pread(bs->file, start, len, in, 0);
    if (ret < 0) {
        return ret;
    }
    return qcow2_decompress(s->compression_type, out, s->cluster_size, in, len);
}

int qcow2_alloc_compressed_cluster(BlockDriverState *bs, uint64_t offset,
                                   int compressed_size, uint64_t *host_offset)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l2;
    int l2_index, ret, x = 62 - (s->cluster_bits - 8);
    int64_t host;
    uint64_t entry, nb_csectors;

    ret = qcow2_get_l2_table(bs, offset, &l2, &l2_index, true);
    if (ret < 0) {
        return ret;
    }
    entry = qcow2_l2_get(s, l2, l2_index);
    if (entry & L2E_OFFSET_MASK || (entry & QCOW_OFLAG_COMPRESSED)) {
        /* compression never overwrites allocated data */
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        return -EIO;
    }
    host = qcow2_alloc_bytes(bs, compressed_size);
    if (host < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        return host;
    }
    nb_csectors = ((host + compressed_size - 1) >> 9) - (host >> 9);
    *host_offset = host;
    if (qcow2_need_accurate_refcounts(s)) {
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
            return ret;
        }
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L2_UPDATE_COMPRESSED);
    qcow2_l2_set(s, l2, l2_index, QCOW_OFLAG_COMPRESSED | ((uint64_t)host) | (nb_csectors << x));
    if (s->extended_l2) {
        qcow2_l2_bitmap_set(l2, l2_index, 0);   /* unused with compression */
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    return 0;
}

int qcow2_shrink_l1_table(BlockDriverState *bs, uint64_t max_size)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (max_size >= s->l1_size) {
        return 0;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_L1_SHRINK_WRITE_TABLE);
    for (uint64_t i = max_size; i < s->l1_size; i++) {
        uint64_t rc = 0;
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
        s->l1_table[i] = 0;
        if (l2) {
            /* entries are cleared on disk before the table is freed (R3) */
            ret = qcow2_write_l1_entries(bs, i, 1);
            if (ret < 0) {
                return ret;
            }
            ret = bdrv_flush(bs->file);
            if (ret < 0) {
                return ret;
            }
            BLKDBG_EVENT(bs->file, BLKDBG_L1_SHRINK_FREE_L2_CLUSTERS);
            qcow2_cache_forget(s->l2_table_cache, l2);
            qcow2_free_clusters(bs, l2, s->cluster_size);
            /* unreachable on disk now: its space goes back to the host */
            if (qcow2_get_refcount(bs, l2 >> s->cluster_bits, &rc) == 0 && rc == 0) {
                bdrv_pdiscard_always(bs->file, l2, s->cluster_size);
            }
        }
    }
    return 0;
}
