/*
 * Dirty bitmaps of a node (include/block/dirty-bitmap.h): the in-memory ones
 * (QMP's persistent=false, on any node), kept here as plain bit arrays, one bit
 * per granularity-sized block, set from the generic write/zero-write/discard
 * paths of block/io.c and resized with the node; and the QMP view of both kinds
 * together. Persistent bitmaps stay the driver's (qcow2-bitmap*.c); this file
 * only remembers when QMP added them, so that the node lists every bitmap
 * newest first as QEMU does, and reaches them through bdrv_bitmap_op and friends.
 *
 * Writes may run in several worker threads at once (block/aio.c), so the
 * bitmaps of every node are guarded by one mutex.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"

typedef struct BdrvDirtyBitmap {
    char *name;
    /* a persistent bitmap the driver keeps (no bits here), listed for its
     * place in the order; @recording overrides the driver's on a read-only
     * node, where QEMU lets it change in memory only */
    bool persistent;
    bool has_recording;
    bool recording;
    /* persistent, loaded with the image (not added by QMP): listed in the
     * driver's order, after those QMP added */
    bool loaded;
    /* persistent=true asked for on a read-only node: kept in memory, shown
     * persistent, and lost at close (QEMU's warning) */
    bool lost;
    BdrvBitmapBits bits;
} BdrvDirtyBitmap;

static GMutex dbm_lock;

void bdrv_bitmap_bits_free(BdrvBitmapBits *b)
{
    if (b) {
        g_free(b->words);
        g_free(b);
    }
}

static uint64_t bits_for(int64_t size, uint64_t granularity)
{
    return size <= 0 ? 0 : ((uint64_t)size + granularity - 1) / granularity;
}

static bool bits_init(BdrvBitmapBits *b, int64_t size, uint64_t granularity)
{
    b->granularity = granularity;
    b->size = MAX(size, 0);
    b->nb_bits = bits_for(size, granularity);
    b->words = g_try_new0(uint64_t, MAX(DIV_ROUND_UP(b->nb_bits, 64), 1));
    return b->words != NULL;
}

static void bits_set(BdrvBitmapBits *b, uint64_t first, uint64_t end)
{
    while (first < end && first % 64) {
        b->words[first / 64] |= 1ULL << (first % 64);
        first++;
    }
    while (end - first >= 64) {
        b->words[first / 64] = ~0ULL;
        first += 64;
    }
    while (first < end) {
        b->words[first / 64] |= 1ULL << (first % 64);
        first++;
    }
}

static bool bits_get(const BdrvBitmapBits *b, uint64_t bit)
{
    return (b->words[bit / 64] >> (bit % 64)) & 1;
}

/* Mark the bytes [offset, offset+bytes) dirty, clipped to the bitmap. */
static void bits_set_bytes(BdrvBitmapBits *b, uint64_t offset, uint64_t bytes)
{
    uint64_t end;

    if (!bytes || offset >= (uint64_t)b->size) {
        return;
    }
    end = MIN(offset + bytes, (uint64_t)b->size);
    bits_set(b, offset / b->granularity, DIV_ROUND_UP(end, b->granularity));
}

static void bitmap_free(gpointer p)
{
    BdrvDirtyBitmap *bm = p;

    g_free(bm->name);
    g_free(bm->bits.words);
    g_free(bm);
}

static GPtrArray *bitmaps_of(BlockDriverState *bs)
{
    if (!bs->dirty_bitmaps) {
        bs->dirty_bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    }
    return bs->dirty_bitmaps;
}

static BdrvDirtyBitmap *find_entry(BlockDriverState *bs, const char *name)
{
    for (guint i = 0; bs->dirty_bitmaps && i < bs->dirty_bitmaps->len; i++) {
        BdrvDirtyBitmap *bm = bs->dirty_bitmaps->pdata[i];
        if (!strcmp(bm->name, name)) {
            return bm;
        }
    }
    return NULL;
}

/* An in-memory bitmap (with bits) of that name, or NULL. */
static BdrvDirtyBitmap *find_mem(BlockDriverState *bs, const char *name)
{
    BdrvDirtyBitmap *bm = find_entry(bs, name);

    return bm && !bm->persistent ? bm : NULL;
}

/* The driver's description of persistent bitmap @name (a new reference), or NULL. */
static JsonObject *find_persistent(BlockDriverState *bs, const char *name)
{
    g_autoptr(JsonArray) list = bdrv_query_dirty_bitmaps_driver(bs);

    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *o = json_array_get_object_element(list, i);
        if (!strcmp(json_object_get_string_member(o, "name"), name)) {
            return json_object_ref(o);
        }
    }
    return NULL;
}

uint64_t bdrv_dirty_bitmap_default_granularity(BlockDriverState *bs)
{
    BlockDriverInfo bdi;

    if (bdrv_get_info(bs, &bdi) == 0 && bdi.cluster_size > 0) {
        return MIN(MAX((uint64_t)bdi.cluster_size, 4096), 65536);
    }
    return 65536;
}

bool bdrv_dirty_bitmap_describe(BlockDriverState *bs, const char *name,
                                BdrvDirtyBitmapDesc *desc)
{
    BdrvDirtyBitmapDesc d = { 0 };
    BdrvDirtyBitmap *bm;
    g_autoptr(JsonObject) o = NULL;

    g_mutex_lock(&dbm_lock);
    bm = find_entry(bs, name);
    if (bm && !bm->persistent) {
        d.persistent = bm->lost;
        d.recording = bm->recording;
        d.granularity = bm->bits.granularity;
        d.size = bm->bits.size;
        g_mutex_unlock(&dbm_lock);
        goto found;
    }
    g_mutex_unlock(&dbm_lock);
    o = find_persistent(bs, name);
    if (!o) {
        return false;
    }
    d.persistent = true;
    d.readonly = bdrv_is_read_only(bs);
    d.recording = json_object_get_boolean_member(o, "recording");
    if (bm && bm->has_recording) {
        d.recording = bm->recording;
    }
    d.inconsistent = json_object_get_boolean_member_with_default(o, "inconsistent",
                                                                 false);
    d.granularity = json_object_get_int_member(o, "granularity");
    d.size = bdrv_getlength(bs);
found:
    if (desc) {
        *desc = d;
    }
    return true;
}

int bdrv_dirty_bitmap_add(BlockDriverState *bs, const char *name, uint64_t granularity,
                          bool persistent, bool disabled, GError **errp)
{
    BdrvDirtyBitmap *bm;
    int64_t len;
    int ret;

    if (!granularity) {
        granularity = bdrv_dirty_bitmap_default_granularity(bs);
    }
    if (persistent && !bs->drv->bitmap_op) {
        error_setg(errp, "Can't store persistent bitmaps to %s: Operation not supported",
                   bdrv_get_node_name(bs));
        return -ENOTSUP;
    }
    if (bdrv_dirty_bitmap_describe(bs, name, NULL)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return -EEXIST;
    }
    if (persistent && !bdrv_is_read_only(bs)) {
        ret = bdrv_bitmap_op(bs, BDRV_BITMAP_ADD, name, granularity, NULL, NULL, errp);
        if (ret == 0 && disabled) {
            ret = bdrv_bitmap_op(bs, BDRV_BITMAP_DISABLE, name, 0, NULL, NULL, errp);
        }
        if (ret < 0) {
            return ret;
        }
        bm = g_new0(BdrvDirtyBitmap, 1);
        bm->name = g_strdup(name);
        bm->persistent = true;
        g_mutex_lock(&dbm_lock);
        g_ptr_array_add(bitmaps_of(bs), bm);
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
        error_setg(errp, "Bitmap name too long: %s", name);
        return -EINVAL;
    }
    len = bdrv_getlength(bs);
    if (len < 0) {
        error_setg_errno(errp, -len, "could not get length of device");
        return len;
    }
    bm = g_new0(BdrvDirtyBitmap, 1);
    bm->name = g_strdup(name);
    bm->recording = !disabled;
    bm->lost = persistent;
    if (!bits_init(&bm->bits, len, granularity)) {
        bitmap_free(bm);
        error_setg(errp, "Could not allocate dirty bitmap");
        return -ENOMEM;
    }
    g_mutex_lock(&dbm_lock);
    g_ptr_array_add(bitmaps_of(bs), bm);
    g_mutex_unlock(&dbm_lock);
    return 0;
}

int bdrv_dirty_bitmap_remove(BlockDriverState *bs, const char *name, GError **errp)
{
    BdrvDirtyBitmap *bm;
    int ret = 0;

    g_mutex_lock(&dbm_lock);
    bm = find_entry(bs, name);
    if (bm && !bm->persistent) {
        g_ptr_array_remove(bs->dirty_bitmaps, bm);
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    g_mutex_unlock(&dbm_lock);
    ret = bdrv_bitmap_op(bs, BDRV_BITMAP_REMOVE, name, 0, NULL, NULL, errp);
    if (ret == 0 && bm) {
        g_mutex_lock(&dbm_lock);
        g_ptr_array_remove(bs->dirty_bitmaps, bm);
        g_mutex_unlock(&dbm_lock);
    }
    return ret;
}

int bdrv_dirty_bitmap_clear(BlockDriverState *bs, const char *name, GError **errp)
{
    BdrvDirtyBitmap *bm;

    g_mutex_lock(&dbm_lock);
    bm = find_mem(bs, name);
    if (bm) {
        memset(bm->bits.words, 0, DIV_ROUND_UP(bm->bits.nb_bits, 64) * 8);
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    g_mutex_unlock(&dbm_lock);
    return bdrv_bitmap_op(bs, BDRV_BITMAP_CLEAR, name, 0, NULL, NULL, errp);
}

int bdrv_dirty_bitmap_set_recording(BlockDriverState *bs, const char *name,
                                    bool recording, GError **errp)
{
    BdrvDirtyBitmap *bm;

    g_mutex_lock(&dbm_lock);
    bm = find_mem(bs, name);
    if (bm) {
        bm->recording = recording;
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    g_mutex_unlock(&dbm_lock);
    if (bdrv_is_read_only(bs)) {
        /* QEMU: in memory only, nothing can be written to a read-only node */
        g_mutex_lock(&dbm_lock);
        bm = find_entry(bs, name);
        if (!bm) {
            bm = g_new0(BdrvDirtyBitmap, 1);
            bm->name = g_strdup(name);
            bm->persistent = true;
            bm->loaded = true;
            g_ptr_array_add(bitmaps_of(bs), bm);
        }
        bm->has_recording = true;
        bm->recording = recording;
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    return bdrv_bitmap_op(bs, recording ? BDRV_BITMAP_ENABLE : BDRV_BITMAP_DISABLE,
                          name, 0, NULL, NULL, errp);
}

BdrvBitmapBits *bdrv_dirty_bitmap_get_bits(BlockDriverState *bs, const char *name,
                                           GError **errp)
{
    g_autoptr(BdrvBitmapBits) b = g_new0(BdrvBitmapBits, 1);
    BdrvDirtyBitmapDesc d;
    BdrvDirtyBitmap *bm;
    int64_t pos = 0;

    g_mutex_lock(&dbm_lock);
    bm = find_mem(bs, name);
    if (bm) {
        *b = bm->bits;
        b->words = g_memdup2(bm->bits.words,
                             MAX(DIV_ROUND_UP(bm->bits.nb_bits, 64), 1) * 8);
        g_mutex_unlock(&dbm_lock);
        return g_steal_pointer(&b);
    }
    g_mutex_unlock(&dbm_lock);
    if (!bdrv_dirty_bitmap_describe(bs, name, &d)) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (!bits_init(b, d.size, d.granularity)) {
        error_setg(errp, "Could not allocate dirty bitmap");
        return NULL;
    }
    while (pos < d.size) {
        int64_t pnum = 0;
        int st = bdrv_dirty_bitmap_status(bs, name, pos, d.size - pos, &pnum);

        if (st < 0 || pnum <= 0) {
            error_setg_errno(errp, st < 0 ? -st : EIO, "Could not read bitmap '%s'",
                             name);
            return NULL;
        }
        if (st) {
            bits_set_bytes(b, pos, pnum);
        }
        pos += pnum;
    }
    return g_steal_pointer(&b);
}

void bdrv_bitmap_bits_or(BdrvBitmapBits *dst, const BdrvBitmapBits *src)
{
    if (dst->granularity == src->granularity && dst->nb_bits == src->nb_bits) {
        for (uint64_t i = 0; i < DIV_ROUND_UP(dst->nb_bits, 64); i++) {
            dst->words[i] |= src->words[i];
        }
        return;
    }
    for (uint64_t i = 0; i < src->nb_bits; i++) {
        if (!(i % 64) && !src->words[i / 64]) {
            i += 63;
            continue;
        }
        if (bits_get(src, i)) {
            bits_set_bytes(dst, i * src->granularity, src->granularity);
        }
    }
}

int bdrv_dirty_bitmap_set_bits(BlockDriverState *bs, const char *name,
                               const BdrvBitmapBits *bits, GError **errp)
{
    BdrvDirtyBitmap *bm;
    uint64_t run = 0;

    g_mutex_lock(&dbm_lock);
    bm = find_mem(bs, name);
    if (bm) {
        g_autoptr(BdrvBitmapBits) copy = g_new0(BdrvBitmapBits, 1);

        if (bits_init(copy, bm->bits.size, bm->bits.granularity)) {
            bdrv_bitmap_bits_or(copy, bits);
            g_free(bm->bits.words);
            bm->bits.words = g_steal_pointer(&copy->words);
        }
        g_mutex_unlock(&dbm_lock);
        return 0;
    }
    g_mutex_unlock(&dbm_lock);
    /* a persistent target: merging only adds bits, so add the runs */
    for (uint64_t i = 0; i <= bits->nb_bits; i++) {
        if (i < bits->nb_bits && bits_get(bits, i)) {
            run++;
            continue;
        }
        if (run) {
            uint64_t start = (i - run) * bits->granularity;
            int ret = bdrv_bitmap_set_dirty(bs, name, start,
                                            MIN(run * bits->granularity,
                                                bits->size - start), errp);
            if (ret < 0) {
                return ret;
            }
            run = 0;
        }
    }
    return 0;
}

char *bdrv_bitmap_bits_sha256(const BdrvBitmapBits *bits)
{
    size_t n = MAX(DIV_ROUND_UP(bits->nb_bits, 64), 1) * 8;
    g_autofree uint8_t *le = g_malloc(n);

    /* QEMU hashes its bit array as it lies in memory: 64-bit little-endian words */
    for (size_t i = 0; i < n / 8; i++) {
        stq_le(le + i * 8, bits->words[i]);
    }
    if (!bits->nb_bits) {
        n = 0;
    }
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, le, n);
}

void bdrv_dirty_bitmaps_mark(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    if (!bs->dirty_bitmaps || bytes <= 0) {
        return;
    }
    g_mutex_lock(&dbm_lock);
    for (guint i = 0; i < bs->dirty_bitmaps->len; i++) {
        BdrvDirtyBitmap *bm = bs->dirty_bitmaps->pdata[i];

        if (!bm->persistent && bm->recording) {
            bits_set_bytes(&bm->bits, offset, bytes);
        }
    }
    g_mutex_unlock(&dbm_lock);
}

void bdrv_dirty_bitmaps_resize(BlockDriverState *bs)
{
    int64_t len;

    if (!bs->dirty_bitmaps) {
        return;
    }
    len = bdrv_getlength(bs);
    if (len < 0) {
        return;
    }
    g_mutex_lock(&dbm_lock);
    for (guint i = 0; i < bs->dirty_bitmaps->len; i++) {
        BdrvDirtyBitmap *bm = bs->dirty_bitmaps->pdata[i];
        BdrvBitmapBits nb;
        uint64_t keep;

        if (bm->persistent || bm->bits.size == len || !bits_init(&nb, len,
                                                                 bm->bits.granularity)) {
            continue;
        }
        keep = MIN(nb.nb_bits, bm->bits.nb_bits);
        for (uint64_t b = 0; b < keep; b++) {
            if (bits_get(&bm->bits, b)) {
                bits_set(&nb, b, b + 1);
            }
        }
        g_free(bm->bits.words);
        bm->bits = nb;
    }
    g_mutex_unlock(&dbm_lock);
}

void bdrv_dirty_bitmaps_release_all(BlockDriverState *bs)
{
    bool lost = false;

    if (!bs->dirty_bitmaps) {
        return;
    }
    for (guint i = 0; i < bs->dirty_bitmaps->len; i++) {
        lost |= ((BdrvDirtyBitmap *)bs->dirty_bitmaps->pdata[i])->lost;
    }
    if (lost) {
        error_report("Lost persistent bitmaps during inactivation of node '%s': "
                     "No write access", bdrv_get_node_name(bs));
    }
    g_mutex_lock(&dbm_lock);
    g_ptr_array_free(bs->dirty_bitmaps, TRUE);
    bs->dirty_bitmaps = NULL;
    g_mutex_unlock(&dbm_lock);
}

static uint64_t count_bits(const BdrvBitmapBits *b)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < DIV_ROUND_UP(b->nb_bits, 64); i++) {
        n += __builtin_popcountll(b->words[i]);
    }
    return n;
}

static JsonObject *mem_info(BdrvDirtyBitmap *bm)
{
    JsonObject *o = json_object_new();
    /* QEMU's count: set bits times the granularity, the last one not clipped */
    uint64_t count = count_bits(&bm->bits) * bm->bits.granularity;

    json_object_set_string_member(o, "name", bm->name);
    json_object_set_boolean_member(o, "recording", bm->recording);
    json_object_set_boolean_member(o, "persistent", bm->lost);
    json_object_set_boolean_member(o, "busy", false);
    json_object_set_int_member(o, "granularity", bm->bits.granularity);
    json_object_set_int_member(o, "count", count);
    return o;
}

typedef struct AnonBitmaps {
    BdrvAnonBitmapsFn fn;
    void *opaque;
} AnonBitmaps;

void bdrv_anon_bitmaps_add(BlockDriverState *bs, BdrvAnonBitmapsFn fn, void *opaque)
{
    AnonBitmaps a = { fn, opaque };

    if (!bs->anon_bitmaps) {
        bs->anon_bitmaps = g_array_new(FALSE, FALSE, sizeof(AnonBitmaps));
    }
    g_array_append_val(bs->anon_bitmaps, a);
}

void bdrv_anon_bitmaps_remove(BlockDriverState *bs, BdrvAnonBitmapsFn fn, void *opaque)
{
    for (guint i = 0; bs->anon_bitmaps && i < bs->anon_bitmaps->len; i++) {
        AnonBitmaps *a = &g_array_index(bs->anon_bitmaps, AnonBitmaps, i);

        if (a->fn == fn && a->opaque == opaque) {
            g_array_remove_index(bs->anon_bitmaps, i);
            break;
        }
    }
    if (bs->anon_bitmaps && !bs->anon_bitmaps->len) {
        g_clear_pointer(&bs->anon_bitmaps, g_array_unref);
    }
}

void bdrv_anon_bitmap_describe(JsonArray *arr, bool recording, uint64_t granularity,
                               int64_t count)
{
    JsonObject *o = json_object_new();

    json_object_set_boolean_member(o, "recording", recording);
    json_object_set_boolean_member(o, "persistent", false);
    json_object_set_boolean_member(o, "busy", false);
    json_object_set_int_member(o, "granularity", granularity);
    json_object_set_int_member(o, "count", count);
    json_array_add_object_element(arr, o);
}

JsonArray *bdrv_anon_bitmaps_prepend(BlockDriverState *bs, JsonArray *named)
{
    JsonArray *arr;

    if (!bs->anon_bitmaps) {
        return named;
    }
    arr = json_array_new();
    for (guint i = bs->anon_bitmaps->len; i-- > 0;) {
        AnonBitmaps *a = &g_array_index(bs->anon_bitmaps, AnonBitmaps, i);

        a->fn(bs, arr, a->opaque);
    }
    for (guint i = 0; named && i < json_array_get_length(named); i++) {
        json_array_add_element(arr, json_node_copy(json_array_get_element(named, i)));
    }
    if (named) {
        json_array_unref(named);
    }
    return arr;
}

JsonArray *bdrv_dirty_bitmaps_query(BlockDriverState *bs, JsonArray *persistent)
{
    JsonArray *arr;
    guint np = persistent ? json_array_get_length(persistent) : 0;
    g_autofree bool *used = g_new0(bool, MAX(np, 1));

    if (!bs->dirty_bitmaps || !bs->dirty_bitmaps->len) {
        return persistent;
    }
    arr = json_array_new();
    g_mutex_lock(&dbm_lock);
    for (guint i = bs->dirty_bitmaps->len; i-- > 0;) {
        BdrvDirtyBitmap *bm = bs->dirty_bitmaps->pdata[i];

        if (!bm->persistent) {
            json_array_add_object_element(arr, mem_info(bm));
            continue;
        }
        for (guint k = 0; k < np; k++) {
            JsonObject *o = json_array_get_object_element(persistent, k);

            if (!used[k] && !strcmp(json_object_get_string_member(o, "name"), bm->name)) {
                if (bm->has_recording) {
                    json_object_set_boolean_member(o, "recording", bm->recording);
                }
                if (!bm->loaded) {
                    json_array_add_object_element(arr, json_object_ref(o));
                    used[k] = true;
                }
                break;
            }
        }
    }
    g_mutex_unlock(&dbm_lock);
    /* then those loaded with the image, in the driver's order */
    for (guint k = 0; k < np; k++) {
        if (!used[k]) {
            json_array_add_object_element(arr, json_object_ref(
                json_array_get_object_element(persistent, k)));
        }
    }
    if (persistent) {
        json_array_unref(persistent);
    }
    if (!json_array_get_length(arr)) {
        json_array_unref(arr);
        return NULL;
    }
    return arr;
}

int bdrv_dirty_bitmap_mem_status(BlockDriverState *bs, const char *name, int64_t offset,
                                 int64_t bytes, int64_t *pnum)
{
    BdrvDirtyBitmap *bm;
    uint64_t bit, end, pos;
    bool first;

    g_mutex_lock(&dbm_lock);
    bm = find_mem(bs, name);
    if (!bm) {
        g_mutex_unlock(&dbm_lock);
        return -ENOENT;
    }
    end = MIN((uint64_t)(offset + bytes), (uint64_t)bm->bits.size);
    if ((uint64_t)offset >= end) {
        g_mutex_unlock(&dbm_lock);
        *pnum = bytes;
        return 0;
    }
    bit = offset / bm->bits.granularity;
    first = bits_get(&bm->bits, bit);
    pos = (bit + 1) * bm->bits.granularity;
    while (pos < end && bits_get(&bm->bits, pos / bm->bits.granularity) == first) {
        pos += bm->bits.granularity;
    }
    g_mutex_unlock(&dbm_lock);
    *pnum = MIN(pos, end) - offset;
    return first;
}
