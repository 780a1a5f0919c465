/*
 * qcow2 persistent dirty bitmaps, recorded: before the first change through a
 * read-write image, every consistent bitmap is loaded and flagged in_use on disk;
 * writes, zero writes and discards set bits in the enabled ("auto") ones; a resize
 * resizes all of them; on close they are written back and in_use is cleared.
 *
 * Bitmap data is held in cluster-sized chunks, read from the image only when a
 * bit in them has to change, so memory follows what we write, not the image's
 * fields. On store, as QEMU does (the offsets its iotests 190 and 303 print),
 * every bitmap is written anew: each non-zero chunk to a newly allocated
 * cluster (unchanged ones are read first), then a new table; then a new
 * directory with in_use cleared, and only then are the old clusters freed.
 * A crash before the flag is cleared leaves the bitmap in_use (QEMU's meaning:
 * "not saved, do not trust"), never a bitmap that claims to be clean but is not.
 * When bitmaps were added or removed, the directory is written anew instead and
 * the header switched to it in one write.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/qcow2-bitmap-int.h"

#define BME_TABLE_RESERVED  0xff000000000001feULL
#define BME_TABLE_ALL_ONES  1ULL
#define BME_MAX_TABLE_BYTES (64 * MiB)


uint64_t qcow2_bitmap_bits(uint64_t disk_size, int gbits)
{
    return DIV_ROUND_UP(disk_size, 1ULL << gbits);
}

uint64_t qcow2_bitmap_chunks(BDRVQcow2State *s, uint64_t disk_size, int gbits)
{
    return DIV_ROUND_UP(DIV_ROUND_UP(qcow2_bitmap_bits(disk_size, gbits), 8), s->cluster_size);
}

void qcow2_bitmap_free(Qcow2Bitmap *bm)
{
    if (!bm) {
        return;
    }
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

static void bitmap_free(gpointer p)
{
    qcow2_bitmap_free(p);
}

void qcow2_bitmaps_release(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->bitmaps) {
        g_ptr_array_free(s->bitmaps, TRUE);
        s->bitmaps = NULL;
    }    if (s->ro_bitmaps) {
        g_ptr_array_free(s->ro_bitmaps, TRUE);
        s->ro_bitmaps = NULL;
    }
}

void qcow2_bitmaps_abandon(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    s->bitmaps_abandoned = true;
}

Qcow2Bitmap *qcow2_bitmap_find(BlockDriverState *bs, const char *name)
{
    BDRVQcow2State *s = bs->opaque;

    for (guint k = 0; s->bitmaps && k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (!bm->removed && !strcmp(bm->e->name, name)) {
            return bm;
        }
    }
    return NULL;
}

/* Why a bitmap cannot be tracked, or NULL. */
const char *qcow2_bitmap_unsupported_reason(BlockDriverState *bs, Qcow2BitmapEntry *e)
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
    if (e->table_size != qcow2_bitmap_chunks(s, s->size, e->granularity_bits)) {
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

Qcow2Bitmap *qcow2_bitmap_load(BlockDriverState *bs, Qcow2BitmapEntry *e)
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
    bm->inconsistent = e->flags & BME_FLAG_IN_USE;
    bm->recording = (e->flags & BME_FLAG_AUTO) && !bm->inconsistent;
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
    g_autoptr(GPtrArray) to_flag = NULL;
    g_autoptr(GPtrArray) untracked = NULL;
    g_autoptr(GError) err = NULL;
    guint flagged = 0;
    int ret;

    if (s->bitmaps) {
        return 0;
    }
    if (!s->has_bitmaps_ext) {
        s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
        return 0;
    }
    list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    ret = qcow2_bitmaps_read_directory(bs, list, &err);
    if (ret < 0) {
        return ret;
    }
    seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    s->bitmaps_dir_changed = false;
    s->bitmaps_abandoned = false;
    /* entries to flag in_use: loaded ones until stored, enabled ones we cannot
     * track for good; the untracked ones are kept here until then */
    to_flag = g_ptr_array_new();
    untracked = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    while (list->len) {
        Qcow2BitmapEntry *e = g_ptr_array_steal_index(list, 0);
        bool in_use = e->flags & BME_FLAG_IN_USE;
        Qcow2Bitmap *bm = NULL;

        if (!qcow2_bitmap_unsupported_reason(bs, e)) {
            /* in_use ones too: they can be removed (and refuse anything else) */
            bm = qcow2_bitmap_load(bs, e);
            if (bm && !claim_clusters(bs, bm, seen)) {
                bm->e = NULL;           /* e stays ours */
                bitmap_free(bm);
                bm = NULL;
            }
        }
        if (!in_use && (bm || (e->flags & BME_FLAG_AUTO))) {
            g_ptr_array_add(to_flag, e);
        }
        if (bm) {
            g_ptr_array_add(s->bitmaps, bm);
        } else {
            g_ptr_array_add(untracked, e);
        }
    }
    for (guint i = 0; i < to_flag->len && ret == 0; i++) {
        Qcow2BitmapEntry *e = to_flag->pdata[i];
        ret = qcow2_bitmap_write_flags(bs, e, e->flags | BME_FLAG_IN_USE);
        flagged = ret == 0 ? i + 1 : i;
    }
    if (ret == 0 && flagged) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        /* not begun: put back the flags we changed (best effort: a flag left
         * in_use is safe), and the next change tries again */
        for (guint i = 0; i < flagged; i++) {
            Qcow2BitmapEntry *e = to_flag->pdata[i];
            qcow2_bitmap_write_flags(bs, e, e->flags & ~BME_FLAG_IN_USE);
        }
        if (flagged) {
            bdrv_flush(bs->file);
        }
        qcow2_bitmaps_release(bs);
    }
    return ret;
}

/* A bitmap we may change: loaded, trusted, still there. */
static bool usable(Qcow2Bitmap *bm)
{
    return !bm->broken && !bm->inconsistent && !bm->removed;
}

/* Clear the bits of the last chunk past the end of the bitmap. */
static void mask_tail(BDRVQcow2State *s, Qcow2Bitmap *bm)
{
    uint64_t bits = qcow2_bitmap_bits(bm->disk_size, bm->e->granularity_bits);
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
int qcow2_bitmap_materialize(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t i)
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
    if (bm->changed[i]) {
        /* cleared: zeros, whatever the old cluster holds */
    } else if (off) {
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

int qcow2_bitmap_set_range(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t offset,
                           uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t chunk_bits = (uint64_t)s->cluster_size * 8;
    int gbits = bm->e->granularity_bits;
    uint64_t first, end;

    if (offset >= bm->disk_size || !bytes) {
        return 0;
    }
    first = offset >> gbits;
    end = MIN(qcow2_bitmap_bits(bm->disk_size, gbits),
              ((MIN(offset + bytes, bm->disk_size) - 1) >> gbits) + 1);
    while (first < end) {
        uint64_t ci = first / chunk_bits;
        uint64_t stop = MIN(end, (ci + 1) * chunk_bits);
        int ret = qcow2_bitmap_materialize(bs, bm, ci);

        if (ret < 0) {
            return ret;
        }
        set_bits(bm->chunks[ci], first - ci * chunk_bits, stop - ci * chunk_bits);
        bm->changed[ci] = true;
        first = stop;
    }
    return 0;
}

void qcow2_bitmaps_set_dirty(BlockDriverState *bs, uint64_t offset, uint64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;

    if (!s->bitmaps) {
        return;
    }
    for (guint k = 0; k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];

        if (bm->recording && usable(bm) &&
            qcow2_bitmap_set_range(bs, bm, offset, bytes) < 0) {
            bm->broken = true;      /* stays in_use on disk */
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
            if (bm->e->dir_offset == e->dir_offset &&
                (bm->removed || (!bm->broken && !bm->inconsistent))) {
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
        why = qcow2_bitmap_unsupported_reason(bs, e);
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

        if (!usable(bm) || bm->disk_size == new_size) {
            continue;
        }
        /* the old last chunk's tail bits were outside the bitmap: clear them */
        if (bm->nb_chunks && qcow2_bitmap_materialize(bs, bm, bm->nb_chunks - 1) < 0) {
            bm->broken = true;
            continue;
        }
        n = qcow2_bitmap_chunks(s, new_size, bm->e->granularity_bits);
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
        if (n && qcow2_bitmap_materialize(bs, bm, n - 1) < 0) {
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
    bool any = bm->nb_chunks != bm->old_table_size || bm->rewrite_table;
    g_autofree uint64_t *be = NULL;
    int64_t off;
    int ret;

    for (uint64_t i = 0; i < bm->nb_chunks; i++) {
        uint64_t old = bm->table[i] & L2E_OFFSET_MASK;

        if (!bm->changed[i]) {
            continue;
        }
        any = true;
        if (!bm->chunks[i] || chunk_is_zero(s, bm->chunks[i])) {
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

/* A stored bitmap's directory entry: fixed part, name, padding to 8. */
static void emit_entry(GByteArray *out, Qcow2Bitmap *bm, uint64_t table_offset)
{
    static const uint8_t zeros[8];
    size_t name_len = strlen(bm->e->name);
    uint8_t fixed[24];

    stq_be(fixed, table_offset);
    stl_be(fixed + 8, bm->nb_chunks);
    stl_be(fixed + 12, bm->e->flags & ~BME_FLAG_IN_USE);
    fixed[16] = BME_TYPE_DIRTY_TRACKING;
    fixed[17] = bm->e->granularity_bits;
    stw_be(fixed + 18, name_len);
    stl_be(fixed + 20, 0);
    g_byte_array_append(out, fixed, sizeof(fixed));
    g_byte_array_append(out, (const uint8_t *)bm->e->name, name_len);
    g_byte_array_append(out, zeros, -(24 + name_len) & 7);
}

static Qcow2Bitmap *bitmap_at(BDRVQcow2State *s, uint64_t dir_offset, guint *k)
{
    for (guint i = 0; i < s->bitmaps->len; i++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[i];
        if (bm->e->dir_offset == dir_offset) {
            *k = i;
            return bm;
        }
    }
    return NULL;
}

/* Point the header at a new directory (or at none), in one header write. */
static int switch_directory(BlockDriverState *bs, uint32_t count, uint64_t offset,
                            uint64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2UnknownExt *ext = NULL, saved = { 0 };
    uint64_t saved_autoclear = s->autoclear_features;
    uint64_t saved_off = s->bitmap_directory_offset, saved_size = s->bitmap_directory_size;
    uint32_t saved_nb = s->nb_bitmaps;
    bool saved_has = s->has_bitmaps_ext;
    int ret;

    for (guint i = 0; i < s->unknown_exts->len; i++) {
        Qcow2UnknownExt *e = s->unknown_exts->pdata[i];
        if (e->magic == QCOW2_EXT_MAGIC_BITMAPS) {
            saved = *e;
            saved.data = g_memdup2(e->data, e->len);
        }
    }
    for (guint i = 0; i < s->unknown_exts->len; i++) {
        Qcow2UnknownExt *e = s->unknown_exts->pdata[i];
        if (e->magic == QCOW2_EXT_MAGIC_BITMAPS) {
            ext = e;
            if (!count) {
                g_ptr_array_remove_index(s->unknown_exts, i);   /* frees it */
                ext = NULL;
            }
            break;
        }
    }
    if (count && !ext) {
        ext = g_new0(Qcow2UnknownExt, 1);
        ext->magic = QCOW2_EXT_MAGIC_BITMAPS;
        g_ptr_array_add(s->unknown_exts, ext);
    }
    if (ext) {
        g_free(ext->data);
        ext->len = 24;
        ext->data = g_malloc0(24);
        stl_be(ext->data, count);
        stq_be(ext->data + 8, size);
        stq_be(ext->data + 16, offset);
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    s->has_bitmaps_ext = count != 0;
    s->nb_bitmaps = count;
    s->bitmap_directory_offset = count ? offset : 0;
    s->bitmap_directory_size = count ? size : 0;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        /* the header (most likely) still names the old directory: so do we */
        for (guint i = 0; i < s->unknown_exts->len; i++) {
            if (((Qcow2UnknownExt *)s->unknown_exts->pdata[i])->magic ==
                QCOW2_EXT_MAGIC_BITMAPS) {
                g_ptr_array_remove_index(s->unknown_exts, i);
                break;
            }
        }
        if (saved.data) {
            g_ptr_array_add(s->unknown_exts, g_memdup2(&saved, sizeof(saved)));
            saved.data = NULL;
        }
        s->autoclear_features = saved_autoclear;
        s->has_bitmaps_ext = saved_has;
        s->nb_bitmaps = saved_nb;
        s->bitmap_directory_offset = saved_off;
        s->bitmap_directory_size = saved_size;
        return ret;
    }
    g_free(saved.data);
    return bdrv_flush(bs->file);
}

/*
 * Bitmaps were added or removed: a new directory with every entry we keep
 * (ours updated and with in_use cleared, the others byte for byte), written to
 * new clusters; then the header switches to it; the old one is freed by the caller.
 */
static int rewrite_directory(BlockDriverState *bs, const uint64_t *tables, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autofree uint8_t *raw = NULL;
    uint64_t off = 0, old_size = s->bitmap_directory_size;
    int64_t new_off = 0;
    uint32_t count = 0;
    int ret;

    if (s->has_bitmaps_ext) {
        raw = g_try_malloc(MAX(old_size, 1));
        if (!raw) {
            return -ENOMEM;
        }
        ret = bdrv_pread(bs->file, s->bitmap_directory_offset, old_size, raw, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read the bitmap directory");
            return ret;
        }
    }
    for (uint32_t i = 0; raw && i < s->nb_bitmaps; i++) {
        uint64_t len;
        Qcow2Bitmap *bm;
        guint k;

        if (off + 24 > old_size) {
            error_setg(errp, "Bitmap directory is truncated");
            return -EINVAL;
        }
        len = QEMU_ALIGN_UP(24 + (uint64_t)ldl_be(raw + off + 20) + lduw_be(raw + off + 18), 8);
        if (off + len > old_size) {
            error_setg(errp, "Bitmap directory is truncated");
            return -EINVAL;
        }
        bm = bitmap_at(s, s->bitmap_directory_offset + off, &k);
        if (bm && bm->removed) {
            off += len;
            continue;
        }
        if (bm && usable(bm)) {
            emit_entry(out, bm, tables[k] ? tables[k] : bm->e->table_offset);
        } else {
            g_byte_array_append(out, raw + off, len);   /* not ours to change */
        }
        count++;
        off += len;
    }
    /* new ones after them, newest first (QEMU appends its in-memory list) */
    for (guint k = s->bitmaps->len; k-- > 0;) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (!bm->e->dir_offset && !bm->removed) {
            emit_entry(out, bm, tables[k]);
            count++;
        }
    }
    if (count) {
        new_off = qcow2_alloc_clusters(bs, out->len);
        if (new_off < 0) {
            error_setg_errno(errp, -new_off, "Could not allocate the bitmap directory");
            return new_off;
        }
        ret = bdrv_pwrite(bs->file, new_off, out->len, out->data, 0);
        if (ret == 0) {
            ret = qcow2_flush_caches(bs);
        }
        if (ret < 0) {
            qcow2_free_clusters(bs, new_off, out->len);
            error_setg_errno(errp, -ret, "Could not write the bitmap directory");
            return ret;
        }
    }
    {
        bool had = s->has_bitmaps_ext;
        uint64_t old_off = s->bitmap_directory_offset;

        ret = switch_directory(bs, count, new_off, out->len);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update the qcow2 header");
            return ret;
        }
        if (had) {
            qcow2_free_clusters(bs, old_off, old_size);
        }
    }
    return 0;
}

/* Bitmaps unchanged in number: table pointers, then in_use, updated in place. */
static int update_directory_in_place(BlockDriverState *bs, const uint64_t *tables,
                                     GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    for (guint k = 0; k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        uint8_t ent[12];

        if (!usable(bm) || !tables[k]) {
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
    for (guint k = 0; ret == 0 && k < s->bitmaps->len; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (usable(bm)) {
            ret = qcow2_bitmap_write_flags(bs, bm->e, bm->e->flags & ~BME_FLAG_IN_USE);
        }
    }
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not update the bitmap directory");
    }
    return ret;
}

static void free_clusters_of(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t new_table)
{
    BDRVQcow2State *s = bs->opaque;

    if (bm->removed) {
        /* its table and every data cluster it still points to */
        for (uint64_t i = 0; i < bm->nb_chunks; i++) {
            if (bm->table[i] & L2E_OFFSET_MASK) {
                qcow2_free_clusters(bs, bm->table[i] & L2E_OFFSET_MASK, s->cluster_size);
            }
        }
    }
    if ((bm->removed || new_table) && bm->old_table_size && bm->e->dir_offset) {
        qcow2_free_clusters(bs, bm->e->table_offset, bm->old_table_size * 8);
    }
    for (uint64_t i = 0; i < bm->nb_freed; i++) {
        qcow2_free_clusters(bs, bm->freed[i], s->cluster_size);
    }
    bm->nb_freed = 0;
}

int qcow2_bitmaps_store(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *tables = NULL;
    guint n;
    int ret;

    if (!s->bitmaps || !s->bitmaps->len || s->signaled_corruption || s->bitmaps_abandoned) {
        return 0;
    }
    n = s->bitmaps->len;
    tables = g_new0(uint64_t, n);
    /* whatever fails from here, no second attempt: what is on disk stays in_use */
    s->bitmaps_abandoned = true;
    for (guint k = 0; k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (usable(bm)) {
            /* as QEMU: every bitmap is written anew, data, table and directory */
            for (uint64_t i = 0; i < bm->nb_chunks; i++) {
                if (!bm->changed[i] && bm->table[i]) {
                    ret = qcow2_bitmap_materialize(bs, bm, i);
                    if (ret < 0) {
                        error_setg_errno(errp, -ret, "Could not read bitmap '%s'",
                                         bm->e->name);
                        return ret;
                    }
                    bm->changed[i] = true;
                }
            }
            bm->rewrite_table = true;
            s->bitmaps_dir_changed = true;
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
    ret = s->bitmaps_dir_changed ? rewrite_directory(bs, tables, errp) :
                                   update_directory_in_place(bs, tables, errp);
    if (ret < 0) {
        return ret;
    }
    /* only now is nothing pointing at the old clusters any more */
    for (guint k = 0; k < n; k++) {
        Qcow2Bitmap *bm = s->bitmaps->pdata[k];
        if (usable(bm) || bm->removed) {
            free_clusters_of(bs, bm, tables[k]);
        }
    }
    /* stored: a later change loads them again and flags them in_use first */
    qcow2_bitmaps_release(bs);
    s->bitmaps_abandoned = false;
    return 0;
}
