/*
 * qcow2 host cluster allocator: the refcount table and refcount blocks.
 *
 * Invariants this file keeps (tests name them as R1..R6):
 *  R1. A cluster's refcount counts the references to it from the header, the L1
 *      table, L2 tables, the refcount table and blocks, snapshot tables and the
 *      bitmap structures; refcount 0 means free, 1 means owned by exactly one
 *      user (an L2 entry for it may carry the COPIED flag), >1 means shared.
 *  R2. A refcount increase reaches the disk before any table entry that makes
 *      the cluster reachable: the L2 cache depends on the refcount cache, and a
 *      new refcount block is written and flushed before the refcount table entry
 *      that hooks it up. The hook-up waits in memory (reftable_pending_*) until
 *      the refcount cache is next flushed, which then writes it and flushes
 *      again: every path that writes an L1/L2 entry or header field flushes the
 *      refcount cache first, so new blocks cost no flush of their own.
 *  R3. A refcount decrease reaches the disk only after the entry that referenced
 *      the cluster is gone on disk: the refcount cache then depends on the L2
 *      cache. A crash can therefore leak clusters, never double-own them.
 *  R4. A new refcount block is placed at the first free cluster at or after the
 *      end of the range being allocated; if that cluster lies in the range the
 *      block describes, the block counts itself.
 *  R5. The refcount table grows by writing a complete new table (and the blocks
 *      describing it) into free space past the end of the image, flushing, then
 *      switching the header to it, and only then freeing the old table.
 *  R6. Guest data in an external data file is not refcounted.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* ---- entries in a refcount block (on-disk, big-endian for >= 8 bits) ---- */

/*
 * Are entries [from, to) of @block all zero? Answered for whole bytes at a time
 * (false, "don't know", where the range does not start and end on a byte): the
 * allocator's scans and range updates take their fast path on it.
 */
static bool refblock_range_is_zero(BDRVQcow2State *s, const void *block, uint64_t from,
                                   uint64_t to)
{
    uint64_t a = from << s->refcount_order, b = to << s->refcount_order;
    const uint8_t *p = (const uint8_t *)block + a / 8;
    size_t len = (b - a) / 8;

    if (a % 8 || b % 8 || len == 0) {
        return false;
    }
    return p[0] == 0 && (len == 1 || !memcmp(p, p + 1, len - 1));
}

/* Set entries [from, to) of @block, all zero now, to @value (byte-wide or wider). */
static void refblock_fill(BDRVQcow2State *s, void *block, uint64_t from, uint64_t to,
                          uint64_t value)
{
    switch (s->refcount_order) {
    case 3:
        memset((uint8_t *)block + from, value, to - from);
        break;
    case 4: {
        uint16_t v = GUINT16_TO_BE(value), *p = block;
        for (uint64_t i = from; i < to; i++) {
            p[i] = v;
        }
        break;
    }
    case 5: {
        uint32_t v = GUINT32_TO_BE(value), *p = block;
        for (uint64_t i = from; i < to; i++) {
            p[i] = v;
        }
        break;
    }
    default:
        for (uint64_t i = from; i < to; i++) {
            qcow2_refblock_set(s, block, i, value);
        }
    }
}

uint64_t qcow2_refblock_get(BDRVQcow2State *s, const void *block, uint64_t index)
{
    const uint8_t *b = block;

    switch (s->refcount_order) {
    case 0: return (b[index / 8] >> (index % 8)) & 0x1;
    case 1: return (b[index / 4] >> (2 * (index % 4))) & 0x3;
    case 2: return (b[index / 2] >> (4 * (index % 2))) & 0xf;
    case 3: return b[index];
    case 4: return GUINT16_FROM_BE(((const uint16_t *)block)[index]);
    case 5: return GUINT32_FROM_BE(((const uint32_t *)block)[index]);
    default: return GUINT64_FROM_BE(((const uint64_t *)block)[index]);
    }
}

void qcow2_refblock_set(BDRVQcow2State *s, void *block, uint64_t index, uint64_t value)
{
    uint8_t *b = block;

    switch (s->refcount_order) {
    case 0: b[index / 8] = (b[index / 8] & ~(0x1 << (index % 8))) |
                           ((value & 0x1) << (index % 8)); break;
    case 1: b[index / 4] = (b[index / 4] & ~(0x3 << (2 * (index % 4)))) |
                           ((value & 0x3) << (2 * (index % 4))); break;
    case 2: b[index / 2] = (b[index / 2] & ~(0xf << (4 * (index % 2)))) |
                           ((value & 0xf) << (4 * (index % 2))); break;
    case 3: b[index] = value; break;
    case 4: ((uint16_t *)block)[index] = GUINT16_TO_BE(value); break;
    case 5: ((uint32_t *)block)[index] = GUINT32_TO_BE(value); break;
    default: ((uint64_t *)block)[index] = GUINT64_TO_BE(value); break;
    }
}

/* ---- table ---- */

int qcow2_refcount_init(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bytes = (uint64_t)s->refcount_table_size * sizeof(uint64_t);
    int ret;

    s->refcount_table = g_try_malloc0(MAX(bytes, 8));
    if (!s->refcount_table) {
        return -ENOMEM;
    }
    if (bytes) {
        BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_LOAD);
        ret = bdrv_pread(bs->file, s->refcount_table_offset, bytes, s->refcount_table, 0);
        if (ret < 0) {
            return ret;
        }
        for (uint32_t i = 0; i < s->refcount_table_size; i++) {
            s->refcount_table[i] = GUINT64_FROM_BE(s->refcount_table[i]);
        }
    }
    return 0;
}

void qcow2_refcount_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    g_free(s->refcount_table);
    s->refcount_table = NULL;
}

uint64_t qcow2_refcount_covered_clusters(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return (uint64_t)s->refcount_table_size << s->refcount_block_bits;
}

/* Offset of the refcount block for @cluster_index, 0 if none; -EIO if corrupt. */
static int64_t refblock_offset(BlockDriverState *bs, int64_t cluster_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t ti = cluster_index >> s->refcount_block_bits;
    uint64_t off;

    if (ti >= s->refcount_table_size) {
        return 0;
    }
    off = s->refcount_table[ti] & REFT_OFFSET_MASK;
    if (off > (uint64_t)(BDRV_MAX_LENGTH - s->cluster_size)) {
        /*
         * No file can hold a block there: the read fails with EIO, as QEMU's
         * does (it is not marked corrupt). A block that could exist but lies
         * past the end of the file reads as zeroes, as QEMU's does.
         */
        return -EIO;
    }
    if (off && offset_into_cluster(s, off)) {
        qcow2_signal_corruption(bs, true, off, s->cluster_size, "Refblock offset %#"
                                PRIx64 " unaligned (reftable index: %#" PRIx64 ")",
                                off, ti);
        return -EIO;
    }
    return off;
}

int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t *refcount)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t off = refblock_offset(bs, cluster_index);
    void *block;
    int ret;

    if (off <= 0) {
        *refcount = 0;
        return off;
    }
    ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);
    if (ret < 0) {
        return ret;
    }
    *refcount = qcow2_refblock_get(s, block,
                                   cluster_index & (s->refcount_block_size - 1));
    qcow2_cache_put(s->refcount_block_cache, &block);
    return 0;
}

/*
 * Refcounts of clusters [first, first + n), all covered by one refcount block,
 * into @out: one cache lookup for the lot, for walks over every cluster.
 */
int qcow2_get_refcounts(BlockDriverState *bs, int64_t first, int64_t n, uint64_t *out)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t off = refblock_offset(bs, first);
    uint64_t idx = first & (s->refcount_block_size - 1);
    void *block;
    int ret;

    assert(n >= 0 && idx + n <= (uint64_t)s->refcount_block_size);
    if (off <= 0) {
        memset(out, 0, n * sizeof(*out));
        return off;
    }
    ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);
    if (ret < 0) {
        return ret;
    }
    for (int64_t i = 0; i < n; i++) {
        out[i] = qcow2_refblock_get(s, block, idx + i);
    }
    qcow2_cache_put(s->refcount_block_cache, &block);
    return 0;
}

/* Write refcount table entries [first, first+n) to disk. */
static int write_reftable_entries(BlockDriverState *bs, uint64_t first, uint64_t n)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *buf = g_new(uint64_t, n);
    int ret;

    for (uint64_t i = 0; i < n; i++) {
        buf[i] = GUINT64_TO_BE(s->refcount_table[first + i]);
    }
    ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_REFCOUNT_TABLE,
                                        s->refcount_table_offset + first * 8, n * 8,
                                        false);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_UPDATE);
    return bdrv_pwrite(bs->file, s->refcount_table_offset + first * 8, n * 8, buf, 0);
}

/* Is @cluster_index free (refcount 0, blocks missing count as free)? */
static int cluster_is_free(BlockDriverState *bs, int64_t cluster_index)
{
    uint64_t rc;
    int ret = qcow2_get_refcount(bs, cluster_index, &rc);

    return ret < 0 ? ret : rc == 0;
}

/*
 * First run of @n free clusters at or after @from. Scans a refcount block at a
 * time. Returns the first cluster index or -errno.
 */
static int64_t find_free_range(BlockDriverState *bs, int64_t from, int64_t n)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start = from, i = from;
    uint64_t limit = (QCOW_MAX_REFTABLE_SIZE / 8) << s->refcount_block_bits;

    while (i - start < n) {
        int64_t off = refblock_offset(bs, i);
        int64_t block_end = (i | (s->refcount_block_size - 1)) + 1;
        void *block;
        int ret;

        if ((uint64_t)i >= limit) {
            return -EFBIG;
        }
        if (off < 0) {
            return off;
        }
        if (off == 0) {
            i = block_end;        /* a missing block: everything in it is free */
            continue;
        }
        ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);
        if (ret < 0) {
            return ret;
        }
        {
            /* free up to the block's end or the range's: skip it in one test */
            int64_t stop = MIN(block_end, start + n);
            uint64_t mask = s->refcount_block_size - 1;
            if (refblock_range_is_zero(s, block, i & mask, ((stop - 1) & mask) + 1)) {
                i = stop;
            }
        }
        for (; i < block_end && i - start < n; i++) {
            if (qcow2_refblock_get(s, block, i & (s->refcount_block_size - 1))) {
                start = i + 1;
            }
        }
        qcow2_cache_put(s->refcount_block_cache, &block);
    }
    return start;
}

static int write_refcount_area(BlockDriverState *bs, uint64_t area_start,
                               uint64_t additional, bool exact, int64_t extra_index,
                               uint64_t extra_offset, uint64_t *area_end);

/* Write a zeroed refcount block at cluster @index (counting itself if it can). */
static int write_new_refblock(BlockDriverState *bs, uint64_t ti, int64_t index)
{
    BDRVQcow2State *s = bs->opaque;
    void *block;
    int ret;

    ret = qcow2_cache_get_empty(bs, s->refcount_block_cache,
                                (uint64_t)index << s->cluster_bits, &block);
    if (ret < 0) {
        return ret;
    }
    memset(block, 0, s->cluster_size);
    if ((uint64_t)(index >> s->refcount_block_bits) == ti) {
        qcow2_refblock_set(s, block, index & (s->refcount_block_size - 1), 1);
    }
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
    qcow2_cache_put(s->refcount_block_cache, &block);
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE);
    return 0;       /* written and flushed with the cache, before its hook-up (R2) */
}

/*
 * R2: write the refcount table entries of new blocks. The caller has written and
 * flushed the refcount cache (the blocks are on disk) and flushes after this.
 */
int qcow2_refcount_write_hookups(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t first = s->reftable_pending_first;
    uint64_t end = MIN(s->reftable_pending_end, (uint64_t)s->refcount_table_size);
    int ret;

    if (first >= end) {
        s->reftable_pending_first = s->reftable_pending_end = 0;
        return 0;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_HOOKUP);
    ret = write_reftable_entries(bs, first, end - first);
    if (ret == 0) {
        s->reftable_pending_first = s->reftable_pending_end = 0;
    }
    return ret;
}

static void hookup_pending(BDRVQcow2State *s, uint64_t ti)
{
    if (s->reftable_pending_end == 0) {
        s->reftable_pending_first = ti;
        s->reftable_pending_end = ti + 1;
    } else {
        s->reftable_pending_first = MIN(s->reftable_pending_first, ti);
        s->reftable_pending_end = MAX(s->reftable_pending_end, ti + 1);
    }
}

/*
 * Make sure the refcount block covering @cluster_index exists (R4). @hint is the
 * first cluster past the range the caller is allocating. Returns 1 if the
 * refcount table had to grow (a caller searching for free clusters starts over),
 * else 0, or -errno.
 */
static int ensure_refblock(BlockDriverState *bs, int64_t cluster_index, int64_t hint)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t ti = cluster_index >> s->refcount_block_bits;
    int64_t new_index, off;
    int ret;

    off = refblock_offset(bs, cluster_index);
    if (off != 0) {
        return off < 0 ? off : 0;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC);
    /* the first free cluster at or after the search pointer (R4) */
    for (new_index = MAX(hint, 0);; new_index++) {
        ret = cluster_is_free(bs, new_index);
        if (ret < 0) {
            return ret;
        }
        if (ret) {
            break;
        }
    }
    if (new_index == 0) {
        /* no block counts the header: the refcount table is damaged (R1) */
        qcow2_signal_corruption(bs, true, 0, s->cluster_size, "Preventing invalid "
                                "allocation of refcount block at offset 0");
        return -EIO;
    }
    s->free_cluster_index = MAX(s->free_cluster_index, (uint64_t)new_index + 1);
    if (ti < s->refcount_table_size) {
        int grew = 0;
        if ((uint64_t)(new_index >> s->refcount_block_bits) != ti) {
            /*
             * Counted elsewhere; that range may need its own block first, and
             * that may grow the table (1): the count is due all the same, and
             * the caller must learn that the table moved.
             */
            ret = ensure_refblock(bs, new_index, new_index + 1);
            if (ret >= 0) {
                grew = ret;
                ret = qcow2_update_cluster_refcount(bs, new_index, 1);
            }
            if (ret < 0) {
                return ret;
            }
        }
        /* R2: the block (and its own refcount) is on disk before the hook-up,
         * which the next flush of the refcount cache writes */
        ret = write_new_refblock(bs, ti, new_index);
        if (ret < 0) {
            return ret;
        }
        s->refcount_table[ti] = (uint64_t)new_index << s->cluster_bits;
        hookup_pending(s, ti);
        return grew;
    }
    /*
     * The table is full (R5). The new block describes cluster_index's range;
     * a new table and the blocks describing it go right past every range in use
     * so far, and all of it is switched to at once.
     */
    ret = write_new_refblock(bs, ti, new_index);
    if (ret < 0) {
        return ret;
    }
    {
        uint64_t blocks_used = DIV_ROUND_UP(MAX((uint64_t)cluster_index + 1,
                                                (uint64_t)new_index + 1),
                                            s->refcount_block_size);
        uint64_t area_start = blocks_used * s->refcount_block_size;

        if ((uint64_t)(new_index >> s->refcount_block_bits) != ti) {
            /*
             * The new block sits in the next range, which has no block either:
             * start the area right after it, so that the area's first block
             * describes (and counts) it.
             */
            area_start = new_index + 1;
        }
        BLKDBG_EVENT(bs->file, BLKDBG_REFTABLE_GROW);
        ret = write_refcount_area(bs, area_start, 0, false,
                                  ti, (uint64_t)new_index << s->cluster_bits, NULL);
        /* the table moved (and the old one was freed): searches start over */
        return ret < 0 ? ret : 1;
    }
}

/*
 * R5: write a new refcount table into the area starting at cluster @area_start,
 * preceded by the refcount blocks missing for [area_start, area end + @additional)
 * (the area counts itself). The table holds the old entries plus, if @extra_index
 * >= 0, a block at @extra_offset for that index. @exact sizes the table to what
 * is needed. Otherwise (the table grows as writes need it) the sizes are QEMU's,
 * so that images come out with its layout: see growth_refblocks(). Then the
 * header switches to the new table at once and the old table is freed.
 * *@area_end gets the first cluster after the area.
 */
/*
 * Growth sizing (probed from QEMU 7.2): the number of refcount blocks an image
 * of @clusters clusters needs once those blocks and a table listing them are
 * counted too (a fixed point), where the first time the fixed point is reached
 * the clusters grow by half the table's clusters and the search goes on once
 * more. The growing table then gets entries for that many blocks plus half
 * again, and every block missing from the area's index up to that count is
 * created in the area, ahead of the table, even those covering nothing yet.
 */
static uint64_t growth_refblocks(BDRVQcow2State *s, uint64_t clusters)
{
    uint64_t per_block = s->refcount_block_size;
    uint64_t entries_per_cluster = s->cluster_size / 8;
    uint64_t blocks = 0, table = 0, total = 0, prev;
    bool bumped = false;

    for (;;) {
        prev = total;
        blocks = DIV_ROUND_UP(clusters + table + blocks, per_block);
        table = DIV_ROUND_UP(blocks, entries_per_cluster);
        total = clusters + blocks + table;
        if (total != prev) {
            continue;
        }
        if (bumped) {
            return blocks;
        }
        bumped = true;
        clusters += DIV_ROUND_UP(table, 2);
        total = 0;
    }
}

static bool block_exists(BDRVQcow2State *s, uint64_t bi, int64_t extra_index)
{
    return (int64_t)bi == extra_index ||
           (bi < s->refcount_table_size && s->refcount_table[bi]);
}

static int write_refcount_area(BlockDriverState *bs, uint64_t area_start,
                               uint64_t additional, bool exact, int64_t extra_index,
                               uint64_t extra_offset, uint64_t *area_end)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t per_block = s->refcount_block_size;
    uint64_t entries_per_cluster = s->cluster_size / 8;
    uint64_t old_entries = s->refcount_table_size;
    uint64_t old_offset = s->refcount_table_offset;
    uint64_t old_clusters = size_to_clusters(s, old_entries * 8);
    uint64_t first_block = area_start / per_block;
    uint64_t nb_new = 0, table_clusters = 0, entries, end, last_block;
    uint64_t new_table_offset;
    g_autofree uint64_t *table = NULL;
    g_autofree uint8_t *blocks = NULL;
    g_autofree uint64_t *new_index = NULL;
    uint8_t hdr[12];
    int ret;

    /* a new block for @extra_index that lies in a range without a block needs one */
    if (extra_index >= 0) {
        uint64_t be = (extra_offset >> s->cluster_bits) / per_block;
        if ((int64_t)be != extra_index && !block_exists(s, be, -1) && be < first_block) {
            first_block = be;
        }
    }
    if (!exact) {
        uint64_t total = growth_refblocks(s, area_start + additional);
        uint64_t want = total + DIV_ROUND_UP(total, 2);

        want = MAX(want, MAX(old_entries, (uint64_t)(extra_index + 1)));
        table_clusters = DIV_ROUND_UP(want, entries_per_cluster);
        for (uint64_t bi = first_block; bi < total; bi++) {
            if (!block_exists(s, bi, extra_index)) {
                nb_new++;
            }
        }
        /* the blocks must cover the area itself (always so for QEMU's sizes) */
        end = area_start + nb_new + table_clusters;
        last_block = MAX(total, (uint64_t)(extra_index + 1)) - 1;
        if ((end + additional - 1) / per_block <= last_block) {
            goto sized;
        }
        nb_new = table_clusters = 0;
    }
    /* fixed point: blocks for the area itself, a table holding all blocks */
    for (;;) {
        uint64_t needed, tc, missing = 0;
        end = area_start + nb_new + table_clusters;
        last_block = (end + additional - 1) / per_block;
        for (uint64_t bi = first_block; bi <= last_block; bi++) {
            if (!block_exists(s, bi, extra_index)) {
                missing++;
            }
        }
        needed = MAX(last_block + 1, (uint64_t)(extra_index + 1));
        needed = MAX(needed, old_entries);
        tc = DIV_ROUND_UP(needed, entries_per_cluster);
        if (missing <= nb_new && tc <= table_clusters) {
            break;
        }
        nb_new = MAX(nb_new, missing);
        table_clusters = MAX(table_clusters, tc);
    }
    last_block = (end + additional - 1) / per_block;
sized:
    entries = table_clusters * entries_per_cluster;
    if (entries * 8 > QCOW_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }
    new_table_offset = (area_start + nb_new) << s->cluster_bits;

    table = g_try_new0(uint64_t, entries);
    blocks = g_try_malloc0(MAX(nb_new, 1) * s->cluster_size);
    new_index = g_try_new0(uint64_t, MAX(nb_new, 1));
    if (!table || !blocks || !new_index) {
        return -ENOMEM;
    }
    memcpy(table, s->refcount_table, old_entries * 8);
    if (extra_index >= 0) {
        table[extra_index] = extra_offset;
    }
    {
        uint64_t k = 0;
        for (uint64_t bi = first_block; bi <= last_block && k < nb_new; bi++) {
            if (!block_exists(s, bi, extra_index)) {
                table[bi] = (area_start + k) << s->cluster_bits;
                new_index[k++] = bi;
            }
        }
    }
    /* a new block for @extra_index placed outside its own range counts there */
    if (extra_index >= 0 &&
        (uint64_t)(extra_offset >> s->cluster_bits) / per_block != (uint64_t)extra_index) {
        uint64_t c = extra_offset >> s->cluster_bits, bi = c / per_block, k;
        for (k = 0; k < nb_new && new_index[k] != bi; k++) {
        }
        if (k < nb_new) {
            qcow2_refblock_set(s, blocks + k * s->cluster_size, c % per_block, 1);
        } else if (block_exists(s, bi, -1)) {
            ret = qcow2_update_refcounts(bs, c << s->cluster_bits, 1, 1);
            if (ret < 0) {
                return ret;
            }
        } else {
            return -EIO;    /* cannot happen: the area covers the block's range */
        }
    }
    /* the area counts its own clusters: in a new block, or through the cache */
    for (uint64_t c = area_start; c < end; c++) {
        uint64_t bi = c / per_block, k;
        for (k = 0; k < nb_new && new_index[k] != bi; k++) {
        }
        if (k < nb_new) {
            qcow2_refblock_set(s, blocks + k * s->cluster_size, c % per_block, 1);
        } else {
            ret = qcow2_update_refcounts(bs, c << s->cluster_bits, 1, 1);
            if (ret < 0) {
                return ret;
            }
        }
    }
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE_BLOCKS);
    if (nb_new) {
        ret = bdrv_pwrite(bs->file, area_start << s->cluster_bits,
                          nb_new * s->cluster_size, blocks, 0);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint64_t e = 0; e < entries; e++) {
        table[e] = GUINT64_TO_BE(table[e]);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_WRITE_TABLE);
    ret = bdrv_pwrite(bs->file, new_table_offset, table_clusters * s->cluster_size, table,
                      0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    /* switch the header: refcount_table_offset and refcount_table_clusters */
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC_SWITCH_TABLE);
    stq_be(hdr, new_table_offset);
    stl_be(hdr + 8, table_clusters);
    ret = bdrv_pwrite(bs->file, offsetof(QCowHeader, refcount_table_offset), 12, hdr, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        return ret;
    }
    for (uint64_t e = 0; e < entries; e++) {
        table[e] = GUINT64_FROM_BE(table[e]);
    }
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&table);
    s->refcount_table_offset = new_table_offset;
    s->refcount_table_size = entries;
    s->alloc_end = MAX(s->alloc_end, end);
    /* only now free the old table */
    qcow2_free_clusters(bs, old_offset, old_clusters << s->cluster_bits);
    if (area_end) {
        *area_end = end;
    }
    return 0;
}

int qcow2_relocate_reftable_for(BlockDriverState *bs, uint64_t start_cluster,
                                uint64_t additional, int64_t *host_base)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t area_end;
    int ret;

    ret = write_refcount_area(bs, start_cluster, additional, true, -1, 0, &area_end);
    if (ret < 0) {
        return ret;
    }
    *host_base = area_end << s->cluster_bits;
    return 0;
}

/*
 * Make the refcount blocks for clusters [first, last] exist. Returns 0 when they
 * do, 1 if the refcount table had to grow on the way (the caller restarts its
 * search for free clusters, as QEMU does), or -errno. *partial tells whether
 * clusters before the new block's range were part of the request.
 */
static int ensure_refblocks(BlockDriverState *bs, int64_t first, int64_t last,
                            bool *partial)
{
    BDRVQcow2State *s = bs->opaque;

    for (int64_t i = first; i <= last; i = (i | (s->refcount_block_size - 1)) + 1) {
        int64_t off = refblock_offset(bs, i);
        int ret;

        if (off < 0) {
            return off;
        }
        if (off) {
            continue;
        }
        ret = ensure_refblock(bs, i, s->free_cluster_index);
        if (ret <= 0) {
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        if (partial) {
            *partial = i > first;
        }
        return 1;
    }
    return 0;
}

/*
 * Add @addend to the refcount of one cluster. The block must exist unless the
 * refcount grows (then it is created, R4).
 */
int qcow2_update_cluster_refcount(BlockDriverState *bs, int64_t cluster_index,
                                  int64_t addend)
{
    return qcow2_update_refcounts(bs, cluster_index << ((BDRVQcow2State *)bs->opaque)
                                  ->cluster_bits, 1, addend);
}

int qcow2_update_refcounts_existing(BlockDriverState *bs, int64_t offset,
                                    int64_t length, int64_t addend)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t first = offset >> s->cluster_bits;
    int64_t last = (offset + length - 1) >> s->cluster_bits;
    int ret;

    if (addend <= 0 || length <= 0) {
        return qcow2_update_refcounts(bs, offset, length, addend);
    }
    for (int64_t i = first; i <= last; i = (i | (s->refcount_block_size - 1)) + 1) {
        int64_t off = refblock_offset(bs, i);

        if (off < 0) {
            return off;
        }
        if (!off) {
            do {
                ret = ensure_refblocks(bs, first, last, NULL);
            } while (ret == 1);
            return ret < 0 ? ret : -EAGAIN;
        }
    }
    return qcow2_update_refcounts(bs, offset, length, addend);
}

/*
 * @ordered: a decrease waits for the L2 updates that dropped the references
 * (R3); clusters nothing on disk refers to need no such wait.
 */
static int update_refcounts(BlockDriverState *bs, int64_t offset, int64_t length,
                            int64_t addend, bool ordered)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t first, last, i;
    int ret;

    if (length <= 0) {
        return 0;
    }
    first = offset >> s->cluster_bits;
    last = (offset + length - 1) >> s->cluster_bits;
    if (addend > 0 && s->free_byte_offset && !s->packing_compressed &&
        (int64_t)(s->free_byte_offset >> s->cluster_bits) >= first &&
        (int64_t)(s->free_byte_offset >> s->cluster_bits) <= last) {
        /* the cluster compressed data was packed into was freed and is taken
         * now: nothing more goes there */
        s->free_byte_offset = 0;
    }
    if (addend > 0) {
        s->alloc_end = MAX(s->alloc_end, (uint64_t)last + 1);
        do {
            ret = ensure_refblocks(bs, first, last, NULL);
        } while (ret == 1);
        if (ret < 0) {
            return ret;
        }
    }
    if (addend < 0 && ordered) {
        /* R3: decreases wait for the L2 updates that dropped the references */
        ret = qcow2_cache_set_dependency(bs, s->refcount_block_cache,
                                         s->l2_table_cache);
        if (ret < 0) {
            return ret;
        }
    }
    BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_UPDATE);
    for (i = first; i <= last;) {
        int64_t off = refblock_offset(bs, i);
        int64_t block_end = MIN(last + 1, (i | (s->refcount_block_size - 1)) + 1);
        void *block;

        if (off <= 0) {
            if (off == 0) {
                qcow2_signal_corruption(bs, true, -1, -1, "Cannot decrease refcount of "
                                        "cluster %#" PRIx64 ": no refcount block",
                                        (uint64_t)i);
            }
            return off < 0 ? off : -EIO;
        }
        /*
         * QEMU signals these for every refcount block an update looks up,
         * whether the cache holds it or not (lookups for allocation signal
         * nothing): an error injected on the load fails the I/O after it
         */
        BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_ALLOC);
        BLKDBG_EVENT(bs->file, BLKDBG_REFBLOCK_LOAD);
        ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);
        if (ret < 0) {
            return ret;
        }
        if (addend > 0 && (uint64_t)addend <= s->refcount_max && s->refcount_order >= 3) {
            /* fresh allocations: a run of free clusters is filled in one go */
            uint64_t mask = s->refcount_block_size - 1;
            if (refblock_range_is_zero(s, block, i & mask, ((block_end - 1) & mask) + 1)) {
                refblock_fill(s, block, i & mask, ((block_end - 1) & mask) + 1, addend);
                i = block_end;
            }
        }
        for (; i < block_end; i++) {
            uint64_t idx = i & (s->refcount_block_size - 1);
            uint64_t rc = qcow2_refblock_get(s, block, idx);
            if ((addend < 0 && rc < (uint64_t)-addend) ||
                (addend > 0 && (uint64_t)addend > s->refcount_max - rc)) {
                qcow2_cache_put(s->refcount_block_cache, &block);
                /* as QEMU: a refcount that would drop below zero is an
                 * invalid request (the caller reports it), not a corruption */
                return addend < 0 ? -EINVAL : -ERANGE;
            }
            rc += addend;
            qcow2_refblock_set(s, block, idx, rc);
            if (rc == 0) {
                if (i < (int64_t)s->free_cluster_index) {
                    s->free_cluster_index = i;
                }
                /* a freed cluster compressed data was packed into takes more
                 * (as in QEMU) until something else allocates it (above) */
                /* a freed table must not linger in a cache */
                qcow2_cache_forget(s->l2_table_cache, (uint64_t)i << s->cluster_bits);
            }
        }
        qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
        qcow2_cache_put(s->refcount_block_cache, &block);
    }
    return 0;
}

/*
 * R3 for clusters handed out again: a cluster freed since the L2 cache was last
 * written may still be referenced by an L2 entry on disk. Before new data or
 * metadata can land in it, that entry must be gone on disk, or a crash would
 * show the new content at the old guest offset. Pending decreases are exactly
 * what the refcount cache's dependency on the L2 cache records.
 */
static int settle_frees(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return qcow2_cache_flush_dependency(bs, s->refcount_block_cache);
}

/*
 * The search pointer (free_cluster_index) moves past each allocated range even
 * when it skipped free clusters below it; only frees move it back. After a new
 * refcount block the search restarts. This is QEMU's allocation order, so new
 * images come out with the same layout as QEMU's.
 */
int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size)
{
    return qcow2_alloc_clusters_for(bs, size, NULL);
}

int64_t qcow2_alloc_clusters_for(BlockDriverState *bs, uint64_t size, const char *what)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t n = size_to_clusters(s, size), start;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_ALLOC);
    if (n <= 0) {
        return -EINVAL;
    }
    ret = settle_frees(bs);
    if (ret < 0) {
        return ret;
    }
    for (;;) {
        bool partial = false;
        start = find_free_range(bs, s->free_cluster_index, n);
        if (start < 0) {
            return start;
        }
        if (start == 0) {
            /*
             * The header is always in use: its refcount is damaged (R1). QEMU
             * names what it was allocating; other clusters it would go on to
             * write, and its overlap check would catch that on the header.
             * Without a refcount block for the range QEMU first writes one to
             * the next free cluster: metadata there is what it reports.
             */
            int64_t rb = refblock_offset(bs, 0);
            if (rb < 0) {
                return rb;
            }
            if (rb == 0) {
                int64_t b = find_free_range(bs, n, 1);
                if (b > 0) {
                    ret = qcow2_pre_write_overlap_check(bs, 0, b << s->cluster_bits,
                                                        s->cluster_size, false);
                    if (ret < 0) {
                        return ret;
                    }
                }
            }
            if (what) {
                qcow2_signal_corruption(bs, true, 0, s->cluster_size, "Preventing "
                                        "invalid allocation of %s at offset 0", what);
            } else {
                qcow2_signal_corruption(bs, true, 0, s->cluster_size, "Preventing "
                                        "invalid write on metadata (overlaps with "
                                        "qcow2_header)");
            }
            return -EIO;
        }
        s->free_cluster_index = start + n;
        ret = ensure_refblocks(bs, start, start + n - 1, &partial);
        if (ret < 0) {
            return ret;
        }
        if (ret == 0) {
            break;
        }
        /* a block was allocated: search again (from the range if it was cut) */
        if (partial && start < (int64_t)s->free_cluster_index) {
            s->free_cluster_index = start;
        }
    }
    ret = qcow2_update_refcounts(bs, start << s->cluster_bits, n << s->cluster_bits, 1);
    if (ret < 0) {
        return ret;
    }
    if ((uint64_t)(start + n) << s->cluster_bits > (1ULL << 56)) {
        return -EFBIG;
    }
    return start << s->cluster_bits;
}

/*
 * Allocate the clusters at @offset that are free, up to @nb_clusters, stopping
 * at the first one in use: a write carries on right after its last piece this
 * way, as QEMU's does, even into a gap shorter than the piece. Refcount blocks
 * the range lacks come first (they may take some of its clusters), then the
 * clusters are counted again. The search pointer does not move.
 */
int64_t qcow2_alloc_clusters_at(BlockDriverState *bs, uint64_t offset, int64_t nb_clusters)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t first = offset >> s->cluster_bits, n;
    int ret;

    assert(!offset_into_cluster(s, offset) && offset > 0);
    ret = settle_frees(bs);
    if (ret < 0) {
        return ret;
    }
    for (;;) {
        bool missing = false;

        for (n = 0; n < nb_clusters; n++) {
            ret = cluster_is_free(bs, first + n);
            if (ret < 0) {
                return ret;
            }
            if (!ret) {
                break;
            }
        }
        if (n == 0) {
            return 0;
        }
        for (int64_t i = first; i < first + n;
             i = (i | (s->refcount_block_size - 1)) + 1) {
            int64_t off = refblock_offset(bs, i);
            if (off < 0) {
                return off;
            }
            missing |= off == 0;
        }
        if (!missing) {
            break;
        }
        ret = ensure_refblocks(bs, first, first + n - 1, NULL);
        if (ret < 0) {
            return ret;
        }
    }
    ret = qcow2_update_refcounts(bs, offset, n << s->cluster_bits, 1);
    return ret < 0 ? ret : n;
}

int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t off = s->free_byte_offset, new_cluster;
    uint64_t rc = 0, free_in_cluster;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_ALLOC_BYTES);
    assert(size > 0 && size <= s->cluster_size);
    ret = settle_frees(bs);
    if (ret < 0) {
        return ret;
    }
    /*
     * Compressed data is packed byte by byte, as QEMU packs it: after the chunk
     * before, in the same cluster, or running on into the next cluster when
     * that one is the next to be allocated. Every cluster holds one reference
     * per chunk that touches it.
     */
    if (off && (!offset_into_cluster(s, off) ||
                qcow2_get_refcount(bs, off >> s->cluster_bits, &rc) < 0 ||
                rc >= s->refcount_max)) {
        off = 0;
    }
    free_in_cluster = off ? s->cluster_size - offset_into_cluster(s, off) : 0;
    if (off && free_in_cluster >= (uint64_t)size) {
        s->packing_compressed = true;
        ret = qcow2_update_refcounts(bs, off, size, 1);
        s->packing_compressed = false;
        if (ret < 0) {
            return ret;
        }
    } else {
        new_cluster = qcow2_alloc_clusters_for(bs, s->cluster_size, "compressed cluster");
        if (new_cluster < 0) {
            return new_cluster;
        }
        if (off && QEMU_ALIGN_UP(off, s->cluster_size) == new_cluster) {
            /* the chunk starts in the old cluster: it gets a reference too */
            s->packing_compressed = true;
            ret = qcow2_update_refcounts(bs, off, free_in_cluster, 1);
            s->packing_compressed = false;
            if (ret < 0) {
                return ret;
            }
        } else {
            off = new_cluster;
        }
    }
    s->free_byte_offset = off + size;
    if (!offset_into_cluster(s, s->free_byte_offset)) {
        s->free_byte_offset = 0;
    }
    return off;
}

int64_t qcow2_last_used_cluster(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    for (int64_t ti = (int64_t)s->refcount_table_size - 1; ti >= 0; ti--) {
        uint64_t off = s->refcount_table[ti] & REFT_OFFSET_MASK;
        void *block;
        int ret;

        if (!off) {
            continue;
        }
        ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);
        if (ret < 0) {
            return ret;
        }
        for (int64_t i = s->refcount_block_size - 1; i >= 0; i--) {
            if (qcow2_refblock_get(s, block, i)) {
                qcow2_cache_put(s->refcount_block_cache, &block);
                return (ti << s->refcount_block_bits) + i;
            }
        }
        qcow2_cache_put(s->refcount_block_cache, &block);
    }
    return -1;
}

/*
 * Does the refcount block at @off, entry @ti of the table, count nothing but
 * (if it lies in its own range) itself? 1 yes, 0 no, or -errno.
 */
static int refblock_unused(BlockDriverState *bs, uint64_t ti, uint64_t off)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t self = off >> s->cluster_bits;
    int64_t self_idx = (self >> s->refcount_block_bits) == ti ?
                       (int64_t)(self & (s->refcount_block_size - 1)) : -1;
    void *block;
    int ret = qcow2_cache_get(bs, s->refcount_block_cache, off, &block);

    if (ret < 0) {
        return ret;
    }
    ret = refblock_range_is_zero(s, block, 0, s->refcount_block_size);
    if (!ret && self_idx >= 0) {
        ret = 1;
        for (int64_t i = 0; i < s->refcount_block_size && ret; i++) {
            if (qcow2_refblock_get(s, block, i) && i != self_idx) {
                ret = 0;
            }
        }
    }
    qcow2_cache_put(s->refcount_block_cache, &block);
    return ret;
}

/*
 * After a shrink, as QEMU does: refcount blocks that count nothing any more but
 * themselves are dropped, so that no table entry points to an empty block and
 * their space goes back to the host. The table entries are cleared on disk
 * (flushed) before a block is freed (R3); a block counted by another block then
 * loses that reference, one counting itself just goes.
 */
int qcow2_shrink_reftable(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *dropped = g_new0(uint64_t, MAX(s->refcount_table_size, 1));
    uint64_t first = UINT64_MAX, last = 0;
    int ret = qcow2_flush_caches(bs);      /* pending hook-ups are on disk too */

    if (ret < 0) {
        return ret;
    }
    for (uint64_t ti = 0; ti < s->refcount_table_size; ti++) {
        uint64_t off = s->refcount_table[ti] & REFT_OFFSET_MASK;
        if (!off) {
            continue;
        }
        ret = refblock_unused(bs, ti, off);
        if (ret < 0) {
            return ret;
        }
        if (ret) {
            dropped[ti] = s->refcount_table[ti];
            s->refcount_table[ti] = 0;
            first = MIN(first, ti);
            last = ti;
        }
    }
    if (first == UINT64_MAX) {
        return 0;
    }
    ret = write_reftable_entries(bs, first, last - first + 1);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        /* on disk the blocks may still be hooked up: keep them */
        for (uint64_t ti = first; ti <= last; ti++) {
            s->refcount_table[ti] |= dropped[ti];
        }
        return ret;
    }
    for (uint64_t ti = first; ti <= last && ret == 0; ti++) {
        uint64_t off = dropped[ti] & REFT_OFFSET_MASK;
        uint64_t cover = (off >> s->cluster_bits) >> s->refcount_block_bits;

        if (!off) {
            continue;
        }
        qcow2_cache_forget(s->refcount_block_cache, off);
        if (cover != ti) {
            /* the block counting it must exist: else the table is damaged */
            if (cover >= s->refcount_table_size ||
                !(s->refcount_table[cover] & REFT_OFFSET_MASK)) {
                qcow2_signal_corruption(bs, true, -1, -1, "Refblock at %#" PRIx64
                                        " is not covered by the refcount structures",
                                        off);
                ret = -EIO;
                break;
            }
            ret = qcow2_update_refcounts(bs, off, s->cluster_size, -1);
            if (ret < 0) {
                break;
            }
        }
        s->free_cluster_index = MIN(s->free_cluster_index, off >> s->cluster_bits);
        bdrv_pdiscard_always(bs->file, off, s->cluster_size);
    }
    if (ret < 0) {
        return ret;
    }
    return qcow2_flush_caches(bs);
}

uint64_t qcow2_highest_allocated_end(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return s->alloc_end << s->cluster_bits;
}

int qcow2_update_refcounts(BlockDriverState *bs, int64_t offset, int64_t length,
                           int64_t addend)
{
    return update_refcounts(bs, offset, length, addend, true);
}

void qcow2_free_unused_clusters(BlockDriverState *bs, int64_t offset, int64_t size)
{
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_FREE);
    /* a cache that cannot be written back does not keep them taken (QEMU) */
    ret = update_refcounts(bs, offset, size, -1, false);
    if (ret < 0) {
        fprintf(stderr, "qcow2_free_clusters failed: %s\n", strerror(-ret));
    }
}

void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size)
{
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_CLUSTER_FREE);
    ret = qcow2_update_refcounts(bs, offset, size, -1);
    if (ret < 0) {
        /* the clusters leak; check -r leaks recovers them */
        fprintf(stderr, "qcow2_free_clusters failed: %s\n", strerror(-ret));
    }
}

void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry, int nb_clusters)
{
    BDRVQcow2State *s = bs->opaque;

    switch (qcow2_get_cluster_type(bs, l2_entry)) {
    case QCOW2_CLUSTER_COMPRESSED: {
        uint64_t off, len;
        qcow2_compressed_range(s, l2_entry, &off, &len);
        qcow2_free_clusters(bs, off, len);
        break;
    }
    case QCOW2_CLUSTER_NORMAL:
    case QCOW2_CLUSTER_ZERO_ALLOC:
        if (offset_into_cluster(s, l2_entry & L2E_OFFSET_MASK)) {
            /* the entry goes, what it pointed to stays (QEMU: non-fatal) */
            qcow2_signal_corruption(bs, false, -1, -1, "Cannot free unaligned "
                                    "cluster %#" PRIx64, (uint64_t)(l2_entry & L2E_OFFSET_MASK));
            break;
        }
        if (!has_data_file(bs)) {       /* R6 */
            qcow2_free_clusters(bs, l2_entry & L2E_OFFSET_MASK,
                                (int64_t)nb_clusters << s->cluster_bits);
        }
        break;
    default:
        break;
    }
}

/* ---- overlap checks ---- */

static bool ranges_overlap(int64_t a, int64_t alen, int64_t b, int64_t blen)
{
    /* in unsigned arithmetic: a hostile image's offsets may sit near INT64_MAX */
    return (uint64_t)a < (uint64_t)b + (uint64_t)blen &&
           (uint64_t)b < (uint64_t)a + (uint64_t)alen;
}

int qcow2_check_metadata_overlap(BlockDriverState *bs, int ign, int64_t offset,
                                 int64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    int chk = QCOW2_OL_ALL & ~s->overlap_skip;
    int ret;

    chk &= ~ign;
    if (size <= 0) {
        return 0;
    }
    if ((chk & QCOW2_OL_MAIN_HEADER) && offset < s->cluster_size) {
        return QCOW2_OL_MAIN_HEADER;
    }
    if ((chk & QCOW2_OL_ACTIVE_L1) && s->l1_size &&
        ranges_overlap(offset, size, s->l1_table_offset, s->l1_size * 8)) {
        return QCOW2_OL_ACTIVE_L1;
    }
    if ((chk & QCOW2_OL_REFCOUNT_TABLE) &&
        ranges_overlap(offset, size, s->refcount_table_offset,
                       (int64_t)s->refcount_table_size * 8)) {
        return QCOW2_OL_REFCOUNT_TABLE;
    }
    if ((chk & QCOW2_OL_SNAPSHOT_TABLE) && s->nb_snapshots &&
        ranges_overlap(offset, size, s->snapshots_offset,
                       s->snapshots_size ? s->snapshots_size : (uint64_t)s->cluster_size)) {
        return QCOW2_OL_SNAPSHOT_TABLE;
    }
    if ((chk & QCOW2_OL_BITMAP_DIRECTORY) && s->has_bitmaps_ext &&
        ranges_overlap(offset, size, s->bitmap_directory_offset,
                       s->bitmap_directory_size)) {
        return QCOW2_OL_BITMAP_DIRECTORY;
    }
    if (chk & QCOW2_OL_REFCOUNT_BLOCK) {
        for (uint32_t i = 0; i < s->refcount_table_size; i++) {
            uint64_t b = s->refcount_table[i] & REFT_OFFSET_MASK;
            if (b && ranges_overlap(offset, size, b, s->cluster_size)) {
                return QCOW2_OL_REFCOUNT_BLOCK;
            }
        }
    }
    if (chk & QCOW2_OL_ACTIVE_L2) {
        for (uint32_t i = 0; i < s->l1_size; i++) {
            uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
            if (l2 && ranges_overlap(offset, size, l2, s->cluster_size)) {
                return QCOW2_OL_ACTIVE_L2;
            }
        }
    }
    if ((chk & QCOW2_OL_INACTIVE_L2) && s->nb_snapshots) {
        ret = qcow2_snapshots_l2_overlap(bs, offset, size);
        if (ret) {
            return ret < 0 ? ret : QCOW2_OL_INACTIVE_L2;
        }
    }
    return 0;
}

static const char *metadata_ol_name(int kind)
{
    switch (kind) {
    case QCOW2_OL_MAIN_HEADER: return "qcow2_header";
    case QCOW2_OL_ACTIVE_L1: return "active L1 table";
    case QCOW2_OL_ACTIVE_L2: return "active L2 table";
    case QCOW2_OL_REFCOUNT_TABLE: return "refcount table";
    case QCOW2_OL_REFCOUNT_BLOCK: return "refcount block";
    case QCOW2_OL_SNAPSHOT_TABLE: return "snapshot table";
    case QCOW2_OL_INACTIVE_L1: return "inactive L1 table";
    case QCOW2_OL_INACTIVE_L2: return "inactive L2 table";
    case QCOW2_OL_BITMAP_DIRECTORY: return "bitmap directory";
    default: return "metadata";
    }
}

int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign, int64_t offset,
                                  int64_t size, bool data_file)
{
    int kind;

    if (data_file && has_data_file(bs)) {
        return 0;      /* the data file holds no metadata */
    }
    kind = qcow2_check_metadata_overlap(bs, ign, offset, size);
    if (kind < 0) {
        return kind;            /* the write fails with it, as QEMU's */
    }
    if (kind) {
        qcow2_signal_corruption(bs, true, offset, size, "Preventing invalid write on "
                                "metadata (overlaps with %s)", metadata_ol_name(kind));
        return -EIO;
    }
    return 0;
}

bool qcow2_detect_metadata_preallocation(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t file_len = bdrv_getlength(bs->file);
    int64_t real = bdrv_get_allocated_file_size(bs->file);
    uint64_t referenced = 0, covered;

    if (file_len < 0 || real < 0) {
        return false;
    }
    covered = MIN(qcow2_refcount_covered_clusters(bs), size_to_clusters(s, file_len));
    /* a refcount block's worth (up to 4096 entries) per cache lookup */
    for (uint64_t i = 0; i < covered;) {
        uint64_t chunk[4096];
        uint64_t n = MIN(MIN((uint64_t)ARRAY_SIZE(chunk), covered - i),
                         s->refcount_block_size - (i & (s->refcount_block_size - 1)));
        if (qcow2_get_refcounts(bs, i, n, chunk) < 0) {
            return false;
        }
        for (uint64_t k = 0; k < n; k++) {
            referenced += chunk[k] > 0;
        }
        i += n;
    }
    /* more clusters referenced than the host actually stores */
    return referenced > size_to_clusters(s, real);
}
