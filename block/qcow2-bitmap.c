/*
 * qcow2 persistent dirty bitmaps: the bitmap directory on disk, parsed for info,
 * for check (its clusters are referenced) and for tracking; flag updates in place.
 * Recording writes into bitmaps lives in qcow2-bitmap-track.c.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

#define BME_FIXED_SIZE  24
#define BME_MAX_NAME    1023
#define BME_MAX_TABLE   (64 * MiB)

typedef Qcow2BitmapEntry BitmapEntry;

void qcow2_bitmap_entry_free(gpointer p)
{
    BitmapEntry *e = p;

    if (e) {
        g_free(e->name);
        g_free(e);
    }
}

int qcow2_bitmaps_read_directory(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *dir = NULL;
    uint64_t off = 0;
    int ret;

    if (s->bitmap_directory_size > 64 * MiB) {
        error_setg(errp, "Bitmap directory too large");
        return -EFBIG;
    }
    dir = g_try_malloc0(s->bitmap_directory_size + 1);
    if (!dir) {
        return -ENOMEM;
    }
    ret = bdrv_pread(bs->file, s->bitmap_directory_offset, s->bitmap_directory_size,
                     dir, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap directory");
        return ret;
    }
    for (uint32_t i = 0; i < s->nb_bitmaps; i++) {
        BitmapEntry *e;
        uint32_t extra;
        uint16_t name_size;

        if (off + BME_FIXED_SIZE > s->bitmap_directory_size) {
            error_setg(errp, "Bitmap directory is truncated");
            return -EINVAL;
        }
        name_size = lduw_be(dir + off + 18);
        extra = ldl_be(dir + off + 20);
        if (name_size > BME_MAX_NAME || extra > s->bitmap_directory_size ||
            off + BME_FIXED_SIZE + extra + name_size > s->bitmap_directory_size) {
            error_setg(errp, "Invalid bitmap directory entry");
            return -EINVAL;
        }
        e = g_new0(BitmapEntry, 1);
        e->dir_offset = s->bitmap_directory_offset + off;
        e->table_offset = ldq_be(dir + off);
        e->table_size = ldl_be(dir + off + 8);
        e->flags = ldl_be(dir + off + 12);
        e->type = dir[off + 16];
        e->granularity_bits = dir[off + 17];
        e->extra_data_size = extra;
        e->name = g_strndup((char *)dir + off + BME_FIXED_SIZE + extra, name_size);
        g_ptr_array_add(out, e);
        off += QEMU_ALIGN_UP(BME_FIXED_SIZE + extra + name_size, 8);
    }
    return 0;
}

JsonArray *qcow2_bitmaps_info(BlockDriverState *bs, GError **errp)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    JsonArray *arr;

    if (qcow2_bitmaps_read_directory(bs, list, errp) < 0) {
        return NULL;
    }
    for (guint i = 0; i < list->len; i++) {
        BitmapEntry *e = list->pdata[i];
        if (e->granularity_bits > 62) {
            /* not representable, and far outside what QEMU accepts (9..31) */
            error_setg(errp, "Bitmap '%s' doesn't satisfy the constraints", e->name);
            return NULL;
        }
    }
    arr = json_array_new();
    for (guint i = 0; i < list->len; i++) {
        BitmapEntry *e = list->pdata[i];
        JsonObject *o = json_object_new();
        JsonArray *flags = json_array_new();

        if (e->flags & BME_FLAG_IN_USE) {
            json_array_add_string_element(flags, "in-use");
        }
        if (e->flags & BME_FLAG_AUTO) {
            json_array_add_string_element(flags, "auto");
        }
        json_object_set_array_member(o, "flags", flags);
        json_object_set_string_member(o, "name", e->name);
        json_object_set_int_member(o, "granularity", 1LL << e->granularity_bits);
        json_array_add_object_element(arr, o);
    }
    return arr;
}

int qcow2_bitmap_write_flags(BlockDriverState *bs, Qcow2BitmapEntry *e, uint32_t flags)
{
    uint32_t be = GUINT32_TO_BE(flags);
    int ret = bdrv_pwrite(bs->file, e->dir_offset + 12, 4, &be, 0);

    if (ret == 0) {
        e->flags = flags;
    }
    return ret;
}

int qcow2_bitmaps_for_each_ref(BlockDriverState *bs, Qcow2RefFn fn, void *opaque)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    g_autoptr(GError) err = NULL;
    int ret;

    if (!s->has_bitmaps_ext) {
        return 0;
    }
    ret = qcow2_bitmaps_read_directory(bs, list, &err);
    if (ret < 0) {
        return ret;
    }
    fn(opaque, s->bitmap_directory_offset, s->bitmap_directory_size);
    for (guint i = 0; i < list->len; i++) {
        BitmapEntry *e = list->pdata[i];
        g_autofree uint64_t *table = NULL;

        if ((uint64_t)e->table_size * 8 > BME_MAX_TABLE) {
            return -EFBIG;
        }
        fn(opaque, e->table_offset, (uint64_t)e->table_size * 8);
        table = g_new(uint64_t, MAX(e->table_size, 1));
        ret = bdrv_pread(bs->file, e->table_offset, (int64_t)e->table_size * 8, table, 0);
        if (ret < 0) {
            return ret;
        }
        for (uint32_t j = 0; j < e->table_size; j++) {
            uint64_t d = GUINT64_FROM_BE(table[j]) & L2E_OFFSET_MASK;
            if (d) {
                fn(opaque, d, s->cluster_size);
            }
        }
    }
    return 0;
}
