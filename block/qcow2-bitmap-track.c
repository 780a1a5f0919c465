/*
 * qcow2 persistent dirty bitmaps, recorded: before the first change through a
 * read-write image, every consistent bitmap is loaded and flagged in_use on disk;
 * writes, zero writes and discards set bits in the enabled ("auto") ones; a resize
 * resizes all of them; on close they are written back and in_use is cleared.
 *
 * Bitmap data is held in cluster-sized chunks, read from the image only when a
 * bit in them has to change, so memory follows what we write, not the image's
 * fields. A changed chunk goes to a newly allocated cluster; the table is
 * rewritten to a new place when anything changed; the directory entry is updated
 * in place, then in_use is cleared, and only then are the old clusters freed.
 * A crash before the flag is cleared leaves the bitmap in_use (QEMU's meaning:
 * "not saved, do not trust"), never a bitmap that claims to be clean but is not.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/qcow2.h"

#define BME_TABLE_RESERVED  0xff000000000001feULL
#define BME_TABLE_ALL_ONES  1ULL
#define BME_MAX_TABLE_BYTES (64 * MiB)

typedef struct Qcow2Bitmap {
    Qcow2BitmapEntry *e;        /* directory entry; e->flags tracks the disk */
    bool recording;             /* the auto flag: changes are recorded */
    bool broken;                /* could not be tracked: left in_use, not stored */
    uint64_t disk_size;         /* guest bytes the bits cover */
    uint64_t nb_chunks;         /* cluster-sized pieces of bitmap data */
    uint64_t *table;            /* entry per chunk (host order), as on disk */
    uint64_t old_table_size;    /* entries of the table on disk */
    uint64_t *freed;            /* old data clusters to free once stored */
    uint64_t nb_freed;
    uint8_t **chunks;           /* materialized chunks, NULL: not read yet */
    bool *changed;              /* chunk differs from what its table entry says */
} Qcow2Bitmap;

static uint64_t bitmap_bits(uint64_t disk_size, int gbits)
{
    return DIV_ROUND_UP(disk_size, 1ULL << gbits);
}

static uint64_t bitmap_chunks(BDRVQcow2State *s, uint64_t disk_size, int gbits)
{
    return DIV_ROUND_UP(DIV_ROUND_UP(bitmap_bits(disk_size, gbits), 8), s->cluster_size);
}

static void bitmap_free(gpointer p)
{
    Qcow2Bitmap *bm = p;

    for (uint64_t i = 0; i < bm->nb_chunks; i++) {
        g_free(bm->chunks[i]);
    }
    g_free(bm->chunks);
    g_free(bm->changed);
    g_free(bm->table);
    g_free(bm->freed);
    qcow2_bitmap_entry_free(bm->e);
    g_free(bm);
}

void qcow2_bitmaps_release(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->bitmaps) {
        g_ptr_array_free(s->bitmaps, TRUE);
        s->bitmaps = NULL;
    }
}

void qcow2_bitmaps_abandon(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    for (guint k = 0; s->bitmaps && k < s->bitmaps->len; k++) {
        ((Qcow2Bitmap *)s->bitmaps->pdata[k])->broken = true;
    }
}

/* Why a bitmap cannot be tracked, or NULL. */
static const char *unsupported_reason(BlockDriverState *bs, Qcow2BitmapEntry *e)
{
    BDRVQcow2State *s = bs->opaque;

    if (e->type != BME_TYPE_DIRTY_TRACKING) {
        return "it is not a dirty tracking bitmap";
    }
    if (e->granularity_bits < 9 || e->granularity_bits > 31) {
        return "its granularity is not supported";
    }
    if (e->extra_data_size) {
        return "it has extra data";
    }
    if (e->table_size != bitmap_chunks(s, s->size, e->granularity_bits)) {
        return "its size does not match the disk";
    }
    if ((uint64_t)e->table_size * 8 > BME_MAX_TABLE_BYTES) {
        return "its table is too large";
    }
    if (e->table_size && (!e->table_offset || offset_into_cluster(s, e->table_offset))) {
        return "its table offset is invalid";
    }
    return NULL;
}

static Qcow2Bitmap *load_bitmap(BlockDriverState *bs, Qcow2BitmapEntry *e)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2Bitmap *bm;
    uint64_t *t;

    t = g_try_new(uint64_t, MAX(e->table_size, 1));
    if (!t) {
        return NULL;
    }
    if (e->table_size && bdrv_pread(bs->file, e->table_offset,
                                    (int64_t)e->table_size * 8, t, 0) < 0) {
        g_free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < e->table_size; i++) {
        t[i] = GUINT64_FROM_BE(t[i]);
        if ((t[i] & BME_TABLE_RESERVED) ||
            ((t[i] & L2E_OFFSET_MASK) && (t[i] & BME_TABLE_ALL_ONES)) ||
            offset_into_cluster(s, t[i] & L2E_OFFSET_MASK)) {
            g_free(t);
            return NULL;
        }
    }
    bm = g_new0(Qcow2Bitmap, 1);
    bm->e = e;
    bm->recording = e->flags & BME_FLAG_AUTO;
    bm->disk_size = s->size;
    bm->nb_chunks = e->table_size;
    bm->old_table_size = e->table_size;
    bm->table = t;
    bm->chunks = g_new0(uint8_t *, MAX(bm->nb_chunks, 1));
    bm->changed = g_new0(bool, MAX(bm->nb_chunks, 1));
    return bm;
}

/*
 * Every cluster a bitmap's table and data occupy will be freed once the bitmap
 * is stored anew, so each must be the bitmap's alone: refcount 1, no metadata
 * there, and not claimed twice (by this or another bitmap). A hostile or broken
 * image fails this and its bitmap is not tracked (left alone or flagged in_use).
 */
static bool claim_clusters(BlockDriverState *bs, Qcow2Bitmap *bm, GHashTable *seen)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t table_clusters = size_to_clusters(s, bm->old_table_size * 8);

    for (uint64_t i = 0; i < table_clusters + bm->old_table_size; i++) {
        uint64_t off = i < table_clusters ?
                       bm->e->table_offset + (i << s->cluster_bits) :
                       bm->table[i - table_clusters] & L2E_OFFSET_MASK;
        uint64_t refcount, *key;

        if (!off) {
            continue;
        }
        if (g_hash_table_contains(seen, &off) ||
            qcow2_check_metadata_overlap(bs, 0, off, s->cluster_size) ||
            qcow2_get_refcount(bs, off >> s->cluster_bits, &refcount) < 0 ||
            refcount != 1) {
            return false;
        }
        key = g_new(uint64_t, 1);
        *key = off;
        g_hash_table_add(seen, key);
    }
    return true;
}

int qcow2_bitmaps_begin_changes(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GHashTable) seen = NULL;
    g_autoptr(GError) err = NULL;
    bool wrote = false;
    int ret;

    if (!s->has_bitmaps_ext || s->bitmaps) {
        return 0;
    }
    list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    ret = qcow2_bitmaps_read_directory(bs, list, &err);
    if (ret < 0) {
        return ret;
    }
    seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    while (list->len) {
        Qcow2BitmapEntry *e = g_ptr_array_steal_index(list, 0);
        Qcow2Bitmap *bm = NULL;

        if (!(e->flags & BME_FLAG_IN_USE) && !unsupported_reason(bs, e)) {
            bm = load_bitmap(bs, e);
            if (bm && !claim_clusters(bs, bm, seen)) {
                bm->e = NULL;           /* e stays ours */
                bitmap_free(bm);
                bm = NULL;
            }
        }
        if (!(e->flags & BME_FLAG_IN_USE) && (bm || (e->flags & BME_FLAG_AUTO))) {
            /* loaded ones until stored; enabled ones we cannot track for good */
            ret = qcow2_bitmap_write_flags(bs, e, e->flags | BME_FLAG_IN_USE);
            if (ret < 0) {
                if (bm) {
                    bitmap_free(bm);
                } else {
                    qcow2_bitmap_entry_free(e);
                }
                /* not begun: the next change tries again (and fails if this does) */
                qcow2_bitmaps_release(bs);
                return ret;
            }
            wrote = true;
        }
        if (bm) {
            g_ptr_array_add(s->bitmaps, bm);
        } else {
            qcow2_bitmap_entry_free(e);
        }
    }
    ret = wrote ? bdrv_flush(bs->file) : 0;
    if (ret < 0) {
        qcow2_bitmaps_release(bs);
    }
    return ret;
}

/* Clear the bits of the last chunk past the end of the bitmap. */
static void mask_tail(BDRVQcow2State *s, Qcow2Bitmap *bm)
{
    uint64_t bits = bitmap_bits(bm->disk_size, bm->e->granularity_bits);
    uint64_t chunk_bits = (uint64_t)s->cluster_size * 8;
    uint64_t last = bm->nb_chunks - 1;
    uint64_t used;
    uint8_t *c;

    if (!bm->nb_chunks || !(c = bm->chunks[last])) {
        return;
    }
    used = bits - last * chunk_bits;
    if (used % 8) {
        uint8_t keep = (1u << (used % 8)) - 1;
        if (c[used / 8] & ~keep) {
            c[used / 8] &= keep;
            bm->changed[last] = true;
        }
    }
    for (uint64_t i = DIV_ROUND_UP(used, 8); i < (uint64_t)s->cluster_size; i++) {
        if (c[i]) {
            memset(c + i, 0, s->cluster_size - i);
            bm->changed[last] = true;
            break;
        }
    }
}

/* Read chunk @i into memory (its cluster was vetted by claim_clusters). */
static int materialize(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t i)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off = bm->table[i] & L2E_OFFSET_MASK;
    uint8_t *c;

    if (bm->chunks[i]) {
        return 0;
    }
    c = g_try_malloc0(s->cluster_size);
    if (!c) {
        return -ENOMEM;
    }
    if (off) {
        int ret = bdrv_pread(bs->file, off, s->cluster_size, c, 0);

        if (ret < 0) {
            g_free(c);
            return ret;
        }
    } else if (bm->table[i] & BME_TABLE_ALL_ONES) {
        memset(c, 0xff, s->cluster_size);
    }
    bm->chunks[i] = c;
    if (i == bm->nb_chunks - 1) {
        mask_tail(s, bm);
    }
    return 0;
}

static void set_bits(uint8_t *c, uint64_t first, uint64_t end)
{
    while (first < end && first % 8) {
        c[first / 8] |= 1u << (first % 8);
        first++;
    }
    if (end - first >= 8) {
        memset(c + first / 8, 0xff, (end - first) / 8);
        first += (end - first) / 8 * 8;
    }
    while (first < end) {
        c[first / 8] |= 1u << (first % 8);
        first++;
    }
}

void qcow2_bitmaps_set_dirty(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t chunk_bits = (uint64_t)s->cluster_size * 8;

    if (!s->bitmaps || !bytes) {
        return;
    }
    for (guint k = 0; k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        int gbits = bm->e->granularity_bits;
        uint64_t first, end;

        if (!bm->recording || bm->broken || offset >= bm->disk_size) {
            continue;
        }
        first = offset >> gbits;
        end = MIN(bitmap_bits(bm->disk_size, gbits),
                  ((MIN(offset + bytes, bm->disk_size) - 1) >> gbits) + 1);
        while (first < end) {
            uint64_t ci = first / chunk_bits;
            uint64_t stop = MIN(end, (ci + 1) * chunk_bits);

            if (materialize(bs, bm, ci) < 0) {
                bm->broken = true;      /* stays in_use on disk */
                break;
            }
            set_bits(bm->chunks[ci], first - ci * chunk_bits, stop - ci * chunk_bits);
            bm->changed[ci] = true;
            first = stop;
        }
    }
}

int qcow2_bitmaps_can_resize(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    int ret;

    if (!s->has_bitmaps_ext) {
        return 0;
    }
    list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    ret = qcow2_bitmaps_read_directory(bs, list, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        bool tracked = false;
        const char *why;

        for (guint k = 0; s->bitmaps && k < s->bitmaps->len; k++) {
            Qcow2Bitmap *bm = s->bitmaps->pdata[k];
            if (bm->e->dir_offset == e->dir_offset && !bm->broken) {
                tracked = true;
            }
        }
        if (tracked) {
            continue;
        }
        if (e->flags & BME_FLAG_IN_USE) {
            error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used\n"
                       "Try block-dirty-bitmap-remove to delete this bitmap from disk",
                       e->name);
            return -EINVAL;
        }
        why = unsupported_reason(bs, e);
        if (!why && s->bitmaps) {
            why = "its table is invalid";     /* consistent, yet it did not load */
        }
        if (why) {
            error_setg(errp, "Cannot resize an image with bitmap '%s': %s", e->name, why);
            return -ENOTSUP;
        }
    }
    return 0;
}

int qcow2_bitmaps_resize(BlockDriverState *bs, uint64_t new_size)
{
    BDRVQcow2State *s = bs->opaque;

    for (guint k = 0; s->bitmaps && k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        uint64_t n;

        if (bm->broken || bm->disk_size == new_size) {
            continue;
        }
        /* the old last chunk's tail bits were outside the bitmap: clear them */
        if (bm->nb_chunks && materialize(bs, bm, bm->nb_chunks - 1) < 0) {
            bm->broken = true;
            continue;
        }
        n = bitmap_chunks(s, new_size, bm->e->granularity_bits);
        if (n * 8 > BME_MAX_TABLE_BYTES) {
            bm->broken = true;
            continue;
        }
        for (uint64_t i = n; i < bm->nb_chunks; i++) {
            if (bm->table[i] & L2E_OFFSET_MASK) {
                bm->freed = g_renew(uint64_t, bm->freed, bm->nb_freed + 1);
                bm->freed[bm->nb_freed++] = bm->table[i] & L2E_OFFSET_MASK;
            }
            g_free(bm->chunks[i]);
        }
        bm->table = g_renew(uint64_t, bm->table, MAX(n, 1));
        bm->chunks = g_renew(uint8_t *, bm->chunks, MAX(n, 1));
        bm->changed = g_renew(bool, bm->changed, MAX(n, 1));
        for (uint64_t i = bm->nb_chunks; i < n; i++) {
            bm->table[i] = 0;
            bm->chunks[i] = NULL;
            bm->changed[i] = false;
        }
        bm->nb_chunks = n;
        bm->disk_size = new_size;
        if (n && materialize(bs, bm, n - 1) < 0) {
            bm->broken = true;
            continue;
        }
        mask_tail(s, bm);
    }
    return 0;
}

static bool chunk_is_zero(BDRVQcow2State *s, const uint8_t *c)
{
    for (int i = 0; i < s->cluster_size; i++) {
        if (c[i]) {
            return false;
        }
    }
    return true;
}

/* Write the changed chunks and a new table; the directory still points at the old. */
static int store_data(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t *new_table_offset)
{
    BDRVQcow2State *s = bs->opaque;
    bool any = bm->nb_chunks != bm->old_table_size;
    g_autofree uint64_t *be = NULL;
    int64_t off;
    int ret;

    for (uint64_t i = 0; i < bm->nb_chunks; i++) {
        uint64_t old = bm->table[i] & L2E_OFFSET_MASK;

        if (!bm->changed[i]) {
            continue;
        }
        any = true;
        if (chunk_is_zero(s, bm->chunks[i])) {
            bm->table[i] = 0;
        } else {
            off = qcow2_alloc_clusters(bs, s->cluster_size);
            if (off < 0) {
                return off;
            }
            ret = bdrv_pwrite(bs->file, off, s->cluster_size, bm->chunks[i], 0);
            if (ret < 0) {
                qcow2_free_clusters(bs, off, s->cluster_size);
                return ret;
            }
            bm->table[i] = off;
        }
        bm->changed[i] = false;
        if (old) {
            bm->freed = g_renew(uint64_t, bm->freed, bm->nb_freed + 1);
            bm->freed[bm->nb_freed++] = old;
        }
    }
    *new_table_offset = 0;
    if (!any || !bm->nb_chunks) {
        return 0;
    }
    be = g_new(uint64_t, bm->nb_chunks);
    for (uint64_t i = 0; i < bm->nb_chunks; i++) {
        be[i] = GUINT64_TO_BE(bm->table[i]);
    }
    off = qcow2_alloc_clusters(bs, bm->nb_chunks * 8);
    if (off < 0) {
        return off;
    }
    ret = bdrv_pwrite(bs->file, off, bm->nb_chunks * 8, be, 0);
    if (ret < 0) {
        qcow2_free_clusters(bs, off, bm->nb_chunks * 8);
        return ret;
    }
    *new_table_offset = off;
    return 0;
}

int qcow2_bitmaps_store(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *tables = NULL;
    guint n;
    int ret;

    if (!s->bitmaps || !s->bitmaps->len || s->signaled_corruption) {
        return 0;
    }
    n = s->bitmaps->len;
    tables = g_new0(uint64_t, n);
    for (guint k = 0; k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (!bm->broken) {
            ret = store_data(bs, bm, &tables[k]);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not write bitmap '%s'", bm->e->name);
                return ret;
            }
        }
    }
    /* new data and tables, and their refcounts, on disk before anything points there */
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write bitmaps");
        return ret;
    }
    for (guint k = 0; k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        uint8_t ent[12];

        if (bm->broken || !tables[k]) {
            continue;
        }
        stq_be(ent, tables[k]);
        stl_be(ent + 8, bm->nb_chunks);
        ret = bdrv_pwrite(bs->file, bm->e->dir_offset, sizeof(ent), ent, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update bitmap '%s'", bm->e->name);
            return ret;
        }
    }
    ret = bdrv_flush(bs->file);
    for (guint k = 0; ret == 0 && k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (!bm->broken) {
            ret = qcow2_bitmap_write_flags(bs, bm->e, bm->e->flags & ~BME_FLAG_IN_USE);
        }
    }
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not update the bitmap directory");
        return ret;
    }
    /* only now is nothing pointing at the old clusters any more */
    for (guint k = 0; k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];

        if (bm->broken) {
            continue;
        }
        if (tables[k] && bm->old_table_size) {
            qcow2_free_clusters(bs, bm->e->table_offset, bm->old_table_size * 8);
        }
        if (tables[k]) {
            bm->e->table_offset = tables[k];
            bm->old_table_size = bm->nb_chunks;
        }
        for (uint64_t i = 0; i < bm->nb_freed; i++) {
            qcow2_free_clusters(bs, bm->freed[i], s->cluster_size);
        }
        bm->nb_freed = 0;
    }
    return 0;
}
