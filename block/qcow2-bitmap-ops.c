/*
 * qcow2 persistent dirty bitmaps, managed: add, remove, clear, enable, disable
 * and merge (qemu-img bitmap), with QEMU's rules and messages. Operations work
 * on the bitmaps loaded by qcow2-bitmap-track.c; they reach the image when the
 * bitmaps are stored (qemu-img bitmap stores explicitly, close does otherwise).
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/qcow2-bitmap-int.h"

/* Only version 3 images have the bitmaps extension. */
bool qcow2_supports_persistent_bitmaps(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    return s->version >= 3;
}

static void set_inconsistent_error(GError **errp, const char *name)
{
    error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used\n"
               "Try block-dirty-bitmap-remove to delete this bitmap from disk", name);
}

/* A bitmap the operation may change: found, and not inconsistent. */
static Qcow2Bitmap *find_usable(BlockDriverState *bs, const char *name, GError **errp)
{
    Qcow2Bitmap *bm = qcow2_bitmap_find(bs, name);

    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (bm->inconsistent || bm->broken) {
        set_inconsistent_error(errp, name);
        return NULL;
    }
    return bm;
}

/* Is there any bitmap of that name on disk, loaded or not? */
static bool name_taken(BlockDriverState *bs, const char *name)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    g_autoptr(GError) err = NULL;

    if (qcow2_bitmap_find(bs, name)) {
        return true;
    }
    if (!s->has_bitmaps_ext || qcow2_bitmaps_read_directory(bs, list, &err) < 0) {
        return false;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        bool removed = false;

        for (guint k = 0; k < s->bitmaps->len; k++) {
            Qcow2Bitmap *bm = s->bitmaps->pdata[k];
            removed |= bm->removed && bm->e->dir_offset == e->dir_offset;
        }
        if (!removed && !strcmp(e->name, name)) {
            return true;
        }
    }
    return false;
}

static guint live_count(BDRVQcow2State *s)
{
    guint n = 0;

    for (guint k = 0; k < s->bitmaps->len; k++) {
        n += !((Qcow2Bitmap *)s->bitmaps->pdata[k])->removed;
    }
    return n;
}

static int add_bitmap(BlockDriverState *bs, const char *name, uint64_t granularity,
                      GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2BitmapEntry *e;
    Qcow2Bitmap *bm;
    uint64_t n;

    if (!*name) {
        error_setg(errp, "Bitmap name cannot be empty");
        return -EINVAL;
    }
    if (name_taken(bs, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return -EEXIST;
    }
    if (!granularity) {
        granularity = MIN(MAX(s->cluster_size, 4096), 65536);
    }
    if (granularity < 512 || granularity > (1ULL << BME_MAX_GRAN_BITS) ||
        (granularity & (granularity - 1))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return -EINVAL;
    }
    if (s->version < 3) {
        error_setg(errp, "Can't make bitmap '%s' persistent in '%s': Cannot store dirty "
                   "bitmaps in qcow2 v2 files", name, bs->node_name);
        return -ENOTSUP;
    }
    if (strlen(name) > BME_MAX_NAME_SIZE) {
        error_setg(errp, "Can't make bitmap '%s' persistent in '%s': Name length "
                   "exceeds maximum (%u characters)", name, bs->node_name,
                   BME_MAX_NAME_SIZE);
        return -EINVAL;
    }
    if (live_count(s) >= BME_MAX_BITMAPS) {
        error_setg(errp, "Can't make bitmap '%s' persistent in '%s': Maximum number of "
                   "persistent bitmaps is already reached", name, bs->node_name);
        return -EINVAL;
    }
    e = g_new0(Qcow2BitmapEntry, 1);
    e->name = g_strdup(name);
    e->type = BME_TYPE_DIRTY_TRACKING;
    e->flags = BME_FLAG_AUTO;
    e->granularity_bits = ctz64(granularity);
    n = qcow2_bitmap_chunks(s, s->size, e->granularity_bits);
    if (n * 8 > 64 * MiB) {
        qcow2_bitmap_entry_free(e);
        error_setg(errp, "Can't make bitmap '%s' persistent in '%s': Too large bitmap",
                   name, bs->node_name);
        return -EFBIG;
    }
    bm = g_new0(Qcow2Bitmap, 1);
    bm->e = e;                  /* dir_offset 0: not on disk yet */
    bm->recording = true;
    bm->disk_size = s->size;
    bm->nb_chunks = n;
    bm->table = g_new0(uint64_t, MAX(n, 1));
    bm->chunks = g_new0(uint8_t *, MAX(n, 1));
    bm->changed = g_new0(bool, MAX(n, 1));
    g_ptr_array_add(s->bitmaps, bm);
    s->bitmaps_dir_changed = true;
    return 0;
}

/* Set in @dst every range whose bit is set in @src (granularities may differ). */
static int merge_bits(BlockDriverState *bs, Qcow2Bitmap *dst, BlockDriverState *src_bs,
                      Qcow2Bitmap *src)
{
    BDRVQcow2State *ss = src_bs->opaque;
    uint64_t chunk_bits = (uint64_t)ss->cluster_size * 8;
    uint64_t gran = 1ULL << src->e->granularity_bits;
    uint64_t bits = qcow2_bitmap_bits(src->disk_size, src->e->granularity_bits);

    for (uint64_t ci = 0; ci < src->nb_chunks; ci++) {
        uint64_t run_start = 0, run_len = 0;
        uint8_t *c;
        int ret;

        if (!src->chunks[ci] && !src->changed[ci] && !src->table[ci]) {
            continue;           /* an unallocated all-zero chunk */
        }
        ret = qcow2_bitmap_materialize(src_bs, src, ci);
        if (ret < 0) {
            return ret;
        }
        c = src->chunks[ci];
        for (uint64_t b = 0; b < chunk_bits && ci * chunk_bits + b < bits; b++) {
            uint64_t bit = ci * chunk_bits + b;

            if (!(b % 8) && !c[b / 8] && !run_len) {
                b += 7;         /* a zero byte */
                continue;
            }
            if (c[b / 8] & (1u << (b % 8))) {
                if (!run_len) {
                    run_start = bit;
                }
                run_len++;
            } else if (run_len) {
                ret = qcow2_bitmap_set_range(bs, dst, run_start * gran, run_len * gran);
                if (ret < 0) {
                    return ret;
                }
                run_len = 0;
            }
        }
        if (run_len) {
            ret = qcow2_bitmap_set_range(bs, dst, run_start * gran, run_len * gran);
            if (ret < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int merge_bitmap(BlockDriverState *bs, Qcow2Bitmap *dst, BlockDriverState *src_bs,
                        const char *src_name, GError **errp)
{
    g_autoptr(GPtrArray) list = NULL;
    Qcow2Bitmap *src = NULL, *tmp = NULL;
    int ret;

    if (!src_bs || src_bs == bs) {
        src_bs = bs;
        src = find_usable(bs, src_name, errp);
        if (!src) {
            return -ENOENT;
        }
    } else {
        BDRVQcow2State *ss = src_bs->opaque;

        if (src_bs->drv != bs->drv || !ss->has_bitmaps_ext) {
            error_setg(errp, "Dirty bitmap '%s' not found", src_name);
            return -ENOENT;
        }
        list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
        ret = qcow2_bitmaps_read_directory(src_bs, list, errp);
        if (ret < 0) {
            return ret;
        }
        for (guint i = 0; i < list->len && !tmp; i++) {
            Qcow2BitmapEntry *e = list->pdata[i];
            if (strcmp(e->name, src_name)) {
                continue;
            }
            if (e->flags & BME_FLAG_IN_USE) {
                set_inconsistent_error(errp, src_name);
                return -EINVAL;
            }
            if (qcow2_bitmap_unsupported_reason(src_bs, e)) {
                error_setg(errp, "Bitmap '%s' doesn't satisfy the constraints", src_name);
                return -EINVAL;
            }
            tmp = qcow2_bitmap_load(src_bs, g_ptr_array_steal_index(list, i));
            if (!tmp) {
                error_setg(errp, "Could not read bitmap '%s'", src_name);
                return -EIO;
            }
        }
        if (!tmp) {
            error_setg(errp, "Dirty bitmap '%s' not found", src_name);
            return -ENOENT;
        }
        src = tmp;
    }
    if (src->disk_size != dst->disk_size) {
        error_setg(errp, "Bitmaps are of different sizes (destination size is %" PRIu64
                   ", source size is %" PRIu64 ") and can't be merged",
                   dst->disk_size, src->disk_size);
        qcow2_bitmap_free(tmp);
        return -EINVAL;
    }
    ret = merge_bits(bs, dst, src_bs, src);
    qcow2_bitmap_free(tmp);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not merge bitmap '%s'", src_name);
    }
    return ret;
}

int qcow2_bitmap_op(BlockDriverState *bs, BdrvBitmapOp op, const char *name,
                    uint64_t granularity, BlockDriverState *src, const char *src_name,
                    GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2Bitmap *bm;
    int ret;

    if (s->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    ret = qcow2_bitmaps_begin_changes(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not load the bitmaps");
        return ret;
    }
    switch (op) {
    case BDRV_BITMAP_ADD:
        return add_bitmap(bs, name, granularity, errp);
    case BDRV_BITMAP_REMOVE:
        bm = qcow2_bitmap_find(bs, name);
        if (!bm) {
            error_setg(errp, "Dirty bitmap '%s' not found", name);
            return -ENOENT;
        }
        bm->removed = true;
        s->bitmaps_dir_changed = true;
        return 0;
    case BDRV_BITMAP_CLEAR:
        bm = find_usable(bs, name, errp);
        if (!bm) {
            return -EINVAL;
        }
        for (uint64_t i = 0; i < bm->nb_chunks; i++) {
            g_clear_pointer(&bm->chunks[i], g_free);
            bm->changed[i] = true;      /* no chunk and changed: zeros */
        }
        return 0;
    case BDRV_BITMAP_ENABLE:
    case BDRV_BITMAP_DISABLE:
        bm = find_usable(bs, name, errp);
        if (!bm) {
            return -EINVAL;
        }
        bm->recording = op == BDRV_BITMAP_ENABLE;
        bm->e->flags = bm->recording ? bm->e->flags | BME_FLAG_AUTO
                                     : bm->e->flags & ~BME_FLAG_AUTO;
        return 0;
    case BDRV_BITMAP_MERGE:
        bm = find_usable(bs, name, errp);
        if (!bm) {
            return -EINVAL;
        }
        return merge_bitmap(bs, bm, src, src_name, errp);
    }
    error_setg(errp, "Unknown bitmap operation");
    return -EINVAL;
}

int qcow2_bitmap_set_dirty(BlockDriverState *bs, const char *name, int64_t offset,
                           int64_t bytes, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2Bitmap *bm;
    int ret;

    if (s->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    ret = qcow2_bitmaps_begin_changes(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not load the bitmaps");
        return ret;
    }
    bm = find_usable(bs, name, errp);
    if (!bm) {
        return -EINVAL;
    }
    ret = qcow2_bitmap_set_range(bs, bm, offset, bytes);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not merge into bitmap '%s'", name);
    }
    return ret;
}

/* Dirty bytes of a bitmap: set bits times the granularity, as QEMU counts. */
static uint64_t dirty_count(BlockDriverState *bs, Qcow2Bitmap *bm)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bits = qcow2_bitmap_bits(bm->disk_size, bm->e->granularity_bits);
    uint64_t chunk_bits = (uint64_t)s->cluster_size * 8, n = 0;
    g_autofree uint8_t *tmp = g_malloc(s->cluster_size);

    for (uint64_t i = 0; i < bm->nb_chunks; i++) {
        uint64_t valid = MIN(chunk_bits, bits - i * chunk_bits);
        const uint8_t *c = bm->chunks[i];

        if (!c && bm->changed[i]) {
            continue;                   /* cleared */
        }
        if (!c && !(bm->table[i] & L2E_OFFSET_MASK)) {
            n += (bm->table[i] & 1) ? valid : 0;
            continue;
        }
        if (!c) {
            if (bdrv_pread(bs->file, bm->table[i] & L2E_OFFSET_MASK, s->cluster_size,
                           tmp, 0) < 0) {
                continue;
            }
            c = tmp;
        }
        for (uint64_t b = 0; b < valid; b += 8) {
            uint8_t byte = c[b / 8];
            if (valid - b < 8) {
                byte &= (1u << (valid - b)) - 1;
            }
            n += __builtin_popcount(byte);
        }
    }
    return n << bm->e->granularity_bits;
}

static void add_info(JsonArray *arr, const char *name, bool recording, uint64_t gran,
                     uint64_t count, bool inconsistent)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "name", name);
    json_object_set_boolean_member(o, "recording", recording);
    json_object_set_boolean_member(o, "persistent", true);
    json_object_set_boolean_member(o, "busy", false);
    json_object_set_int_member(o, "granularity", gran);
    json_object_set_int_member(o, "count", count);
    if (inconsistent) {
        json_object_set_boolean_member(o, "inconsistent", true);
    }
    json_array_add_object_element(arr, o);
}

JsonArray *qcow2_bitmaps_query(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GError) err = NULL;
    JsonArray *arr = json_array_new();

    if (s->bitmaps) {
        for (guint k = s->bitmaps->len; k-- > 0;) {
            Qcow2Bitmap *bm = s->bitmaps->pdata[k];
            bool bad = bm->inconsistent || bm->broken;

            if (!bm->removed) {
                add_info(arr, bm->e->name, bm->recording && !bad,
                         1ULL << bm->e->granularity_bits, bad ? 0 : dirty_count(bs, bm),
                         bad);
            }
        }
    } else if (s->has_bitmaps_ext) {
        list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
        if (qcow2_bitmaps_read_directory(bs, list, &err) < 0) {
            list->len = 0;
        }
        for (guint i = list->len; i-- > 0;) {
            Qcow2BitmapEntry *e = list->pdata[i];
            Qcow2Bitmap *bm;

            if (qcow2_bitmap_unsupported_reason(bs, e)) {
                continue;
            }
            if (e->flags & BME_FLAG_IN_USE) {
                add_info(arr, e->name, false, 1ULL << e->granularity_bits, 0, true);
                continue;
            }
            bm = qcow2_bitmap_load(bs, g_ptr_array_steal_index(list, i));
            if (!bm) {
                qcow2_bitmap_entry_free(e);
            } else {
                add_info(arr, bm->e->name, bm->e->flags & BME_FLAG_AUTO,
                         1ULL << bm->e->granularity_bits, dirty_count(bs, bm), false);
                qcow2_bitmap_free(bm);
            }
        }
    }
    if (!json_array_get_length(arr)) {
        json_array_unref(arr);
        return NULL;
    }
    return arr;
}

/* Is bit @bit of @bm set? Reads its chunk in if needed; -errno on failure. */
static int bit_is_set(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t bit)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t chunk_bits = (uint64_t)s->cluster_size * 8;
    uint64_t ci = bit / chunk_bits, b = bit % chunk_bits;
    int ret = qcow2_bitmap_materialize(bs, bm, ci);

    if (ret < 0) {
        return ret;
    }
    return (bm->chunks[ci][b / 8] >> (b % 8)) & 1;
}

/*
 * The bitmap to query: a writable node tracks its bitmaps from now on (as QEMU
 * loads them when it opens an image read-write); a read-only one loads it once.
 */
static Qcow2Bitmap *bitmap_for_query(BlockDriverState *bs, const char *name)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GError) err = NULL;

    if (!bdrv_is_read_only(bs)) {
        return qcow2_bitmaps_begin_changes(bs) < 0 ? NULL : qcow2_bitmap_find(bs, name);
    }
    for (guint i = 0; s->ro_bitmaps && i < s->ro_bitmaps->len; i++) {
        Qcow2Bitmap *bm = s->ro_bitmaps->pdata[i];
        if (!strcmp(bm->e->name, name)) {
            return bm;
        }
    }
    if (!s->has_bitmaps_ext) {
        return NULL;
    }
    list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    if (qcow2_bitmaps_read_directory(bs, list, &err) < 0) {
        return NULL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        Qcow2Bitmap *bm;

        if (strcmp(e->name, name) || qcow2_bitmap_unsupported_reason(bs, e)) {
            continue;
        }
        bm = qcow2_bitmap_load(bs, g_ptr_array_steal_index(list, i));
        if (bm) {
            if (!s->ro_bitmaps) {
                s->ro_bitmaps = g_ptr_array_new_with_free_func(
                    (GDestroyNotify)qcow2_bitmap_free);
            }
            g_ptr_array_add(s->ro_bitmaps, bm);
        }
        return bm;
    }
    return NULL;
}

int qcow2_bitmap_status(BlockDriverState *bs, const char *name, int64_t offset,
                        int64_t bytes, int64_t *pnum)
{
    Qcow2Bitmap *bm = bitmap_for_query(bs, name);
    uint64_t end, pos;
    int gbits, first;

    if (!bm) {
        return -ENOENT;
    }
    if (bm->inconsistent || bm->broken) {
        return -EINVAL;
    }
    gbits = bm->e->granularity_bits;
    end = MIN((uint64_t)(offset + bytes), bm->disk_size);
    if ((uint64_t)offset >= end) {
        *pnum = bytes;
        return 0;
    }
    first = bit_is_set(bs, bm, (uint64_t)offset >> gbits);
    if (first < 0) {
        return first;
    }
    pos = (((uint64_t)offset >> gbits) + 1) << gbits;
    while (pos < end) {
        int b = bit_is_set(bs, bm, pos >> gbits);
        if (b < 0) {
            return b;
        }
        if (b != first) {
            break;
        }
        pos += 1ULL << gbits;
    }
    *pnum = MIN(pos, end) - offset;
    return first;
}
