/*
 * qcow2 metadata cache: a bounded set of cluster-sized tables (L2 tables or
 * refcount blocks) with LRU eviction and write-back.
 *
 * Write-back order is what keeps images consistent after a crash: a cache may
 * depend on another (the L2 cache depends on the refcount cache), in which case
 * the dependency is written AND flushed to disk before any of this cache's dirty
 * tables is written. Tables are kept in big-endian on-disk form.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

static int cache_flush_dependency(BlockDriverState *bs, Qcow2Cache *c);

typedef struct Qcow2CachedTable {
    uint64_t offset;     /* 0: unused */
    uint64_t lru;
    int ref;             /* pinned while > 0 */
    bool dirty;
} Qcow2CachedTable;

struct Qcow2Cache {
    Qcow2CachedTable *entries;
    uint8_t *tables;
    int size;
    int table_size;
    uint64_t lru_counter;
    Qcow2Cache *depends;
    bool depends_on_flush;
    GHashTable *index;   /* offset -> entry index + 1 */
};

static inline void *table_addr(Qcow2Cache *c, int i)
{
    return c->tables + (size_t)i * c->table_size;
}

static int table_index(Qcow2Cache *c, void *table)
{
    ptrdiff_t d = (uint8_t *)table - c->tables;
    int i = d / c->table_size;

    assert(d >= 0 && i < c->size && d % c->table_size == 0);
    return i;
}

Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables, int table_size)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    void *mem = NULL;

    c->size = num_tables;
    c->table_size = table_size;
    c->entries = g_new0(Qcow2CachedTable, num_tables);
    if (posix_memalign(&mem, 4096, (size_t)num_tables * table_size)) {
        g_free(c->entries);
        g_free(c);
        return NULL;
    }
    c->tables = mem;
    c->index = g_hash_table_new(g_int64_hash, g_int64_equal);
    return c;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    g_hash_table_destroy(c->index);
    free(c->tables);
    g_free(c->entries);
    g_free(c);
}

int qcow2_cache_set_dependency(BlockDriverState *bs, Qcow2Cache *c,
                               Qcow2Cache *dependency)
{
    int ret;

    if (c->depends == dependency) {
        return 0;
    }
    /* Break a cycle: satisfy the other direction first. */
    if (dependency->depends == c || dependency->depends_on_flush) {
        ret = cache_flush_dependency(bs, dependency);
        if (ret < 0) {
            return ret;
        }
    }
    if (c->depends) {
        ret = cache_flush_dependency(bs, c);
        if (ret < 0) {
            return ret;
        }
    }
    c->depends = dependency;
    return 0;
}

void qcow2_cache_depends_on_flush(Qcow2Cache *c)
{
    c->depends_on_flush = true;
}

static int cache_flush_dependency(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = 0;

    if (c->depends) {
        ret = qcow2_cache_flush(bs, c->depends);
        if (ret == 0) {
            c->depends = NULL;
        }
    } else if (c->depends_on_flush) {
        ret = bdrv_flush(bs->file);
        if (ret == 0) {
            c->depends_on_flush = false;
        }
    }
    return ret;
}

int qcow2_cache_flush_dependency(BlockDriverState *bs, Qcow2Cache *c)
{
    return cache_flush_dependency(bs, c);
}

static int cache_entry_flush(BlockDriverState *bs, Qcow2Cache *c, int i)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2CachedTable *e = &c->entries[i];
    int ret;

    if (!e->dirty || !e->offset) {
        return 0;
    }
    if (s->signaled_corruption && s->read_only) {
        /* once corruption stopped writes, no cached table reaches the disk */
        return -EIO;
    }
    if (c->depends || c->depends_on_flush) {
        ret = cache_flush_dependency(bs, c);
        if (ret < 0) {
            return ret;
        }
    }
    ret = qcow2_pre_write_overlap_check(bs, c == s->refcount_block_cache ?
                                        QCOW2_OL_REFCOUNT_BLOCK : QCOW2_OL_ACTIVE_L2,
                                        e->offset, c->table_size, false);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, c == s->refcount_block_cache ? BLKDBG_REFBLOCK_UPDATE_PART
                                                         : BLKDBG_L2_UPDATE);
    ret = bdrv_pwrite(bs->file, e->offset, c->table_size, table_addr(c, i), 0);
    if (ret < 0) {
        return ret;
    }
    e->dirty = false;
    return 0;
}

int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c)
{
    int result = 0;

    for (int i = 0; i < c->size; i++) {
        int ret = cache_entry_flush(bs, c, i);
        if (ret < 0 && result != -ENOSPC) {
            result = ret;
        }
    }
    return result;
}

int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c)
{
    BDRVQcow2State *s = bs->opaque;
    int result = qcow2_cache_write(bs, c);

    if (result == 0) {
        result = bdrv_flush(bs->file);
    }
    /* R2: new refcount blocks are on disk now: hook them up, durably */
    if (result == 0 && c == s->refcount_block_cache && s->reftable_pending_end) {
        result = qcow2_refcount_write_hookups(bs);
        if (result == 0) {
            result = bdrv_flush(bs->file);
        }
    }
    return result;
}

static void cache_index_remove(Qcow2Cache *c, int i)
{
    if (c->entries[i].offset) {
        g_hash_table_remove(c->index, &c->entries[i].offset);
    }
}

static void cache_index_add(Qcow2Cache *c, int i)
{
    g_hash_table_insert(c->index, &c->entries[i].offset, GINT_TO_POINTER(i + 1));
}

int qcow2_cache_empty(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = qcow2_cache_flush(bs, c);

    if (ret < 0) {
        return ret;
    }
    for (int i = 0; i < c->size; i++) {
        assert(c->entries[i].ref == 0);
        cache_index_remove(c, i);
        c->entries[i].offset = 0;
        c->entries[i].lru = 0;
    }
    c->lru_counter = 0;
    return 0;
}

static int cache_do_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset,
                        void **table, bool read_from_disk)
{
    BDRVQcow2State *s = bs->opaque;
    gpointer found;
    int i, ret, victim = -1;
    uint64_t min_lru = UINT64_MAX;

    assert(offset != 0);
    if (!QEMU_IS_ALIGNED(offset, c->table_size)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Cannot get entry from %s cache: "
                                "Offset %#" PRIx64 " is unaligned",
                                c == s->l2_table_cache ? "L2 table" : "refcount block",
                                offset);
        return -EIO;
    }
    found = g_hash_table_lookup(c->index, &offset);
    if (found) {
        i = GPOINTER_TO_INT(found) - 1;
        goto done;
    }
    /* evict the least recently used unpinned entry */
    for (i = 0; i < c->size; i++) {
        if (c->entries[i].ref == 0 && c->entries[i].lru < min_lru) {
            min_lru = c->entries[i].lru;
            victim = i;
            if (c->entries[i].offset == 0) {
                break;
            }
        }
    }
    if (victim < 0) {
        return -ENOSPC;    /* every entry pinned: a bug in the caller */
    }
    i = victim;
    ret = cache_entry_flush(bs, c, i);
    if (ret < 0) {
        return ret;
    }
    cache_index_remove(c, i);
    c->entries[i].offset = 0;
    if (read_from_disk) {
        /* refcount blocks signal theirs where an update looks one up */
        if (c == s->l2_table_cache) {
            BLKDBG_EVENT(bs->file, BLKDBG_L2_LOAD);
        }
        ret = bdrv_pread(bs->file, offset, c->table_size, table_addr(c, i), 0);
        if (ret < 0) {
            return ret;
        }
    }
    c->entries[i].offset = offset;
    cache_index_add(c, i);
done:
    c->entries[i].ref++;
    *table = table_addr(c, i);
    return 0;
}

int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table)
{
    return cache_do_get(bs, c, offset, table, true);
}

int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset,
                          void **table)
{
    return cache_do_get(bs, c, offset, table, false);
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    int i = table_index(c, *table);

    c->entries[i].ref--;
    *table = NULL;
    if (c->entries[i].ref == 0) {
        c->entries[i].lru = ++c->lru_counter;
    }
    assert(c->entries[i].ref >= 0);
}

void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table)
{
    c->entries[table_index(c, table)].dirty = true;
}

void qcow2_cache_discard(Qcow2Cache *c, void *table)
{
    int i = table_index(c, table);

    assert(c->entries[i].ref == 0);
    cache_index_remove(c, i);
    c->entries[i].offset = 0;
    c->entries[i].lru = 0;
    c->entries[i].dirty = false;
}

void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset)
{
    gpointer found = g_hash_table_lookup(c->index, &offset);

    if (found) {
        int i = GPOINTER_TO_INT(found) - 1;
        if (c->entries[i].ref == 0) {
            qcow2_cache_discard(c, table_addr(c, i));
        }
    }
}

bool qcow2_cache_is_table_offset(Qcow2Cache *c, uint64_t offset)
{
    return g_hash_table_contains(c->index, &offset);
}

/* ALL: also refcount blocks that lazy refcounts would leave cached */
static int write_caches(BlockDriverState *bs, bool all)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (!s->l2_table_cache) {
        return 0;
    }
    ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    if (s->refcount_block_cache) {
        /* new refcount blocks waiting for their hook-up: flushed first (R2) */
        if (s->reftable_pending_end) {
            ret = qcow2_cache_flush(bs, s->refcount_block_cache);
        } else if (all || qcow2_need_accurate_refcounts(s)) {
            ret = qcow2_cache_write(bs, s->refcount_block_cache);
        }
    }
    return ret;
}

/* The guest's flush: with lazy refcounts, refcount blocks may stay cached. */
int qcow2_write_caches(BlockDriverState *bs)
{
    return write_caches(bs, false);
}

/* Everything, refcount blocks included, on stable storage (metadata operations, close). */
int qcow2_flush_caches(BlockDriverState *bs)
{
    int ret = write_caches(bs, true);

    if (ret < 0) {
        return ret;
    }
    return bdrv_flush(bs->file);
}
