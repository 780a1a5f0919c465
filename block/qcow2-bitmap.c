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

/* At most 65535 bitmaps of at most 1 KiB each (QEMU's limits, its messages). */
#define BME_MAX_BITMAPS     65535
#define BME_MAX_DIR_SIZE    (BME_MAX_BITMAPS * 1024ULL)
/* bitmap table: at most 512 MiB of bitmap data */
#define BME_MAX_PHYS_SIZE   (512 * MiB)
/* bitmap table entry: bits 1-8 and 56-63 reserved; bit 0 only without an offset */
#define BME_TABLE_RESERVED  0xff000000000001feULL
#define BME_TABLE_OFFSET    0x00fffffffffffe00ULL
#define BME_TABLE_ALL_ONES  1ULL

int qcow2_bitmaps_check_ext(BlockDriverState *bs, uint32_t reserved, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if (reserved) {
        error_setg(errp, "bitmaps_ext: Reserved field is not zero");
        return -EINVAL;
    }
    if (s->nb_bitmaps == 0) {
        error_setg(errp, "found bitmaps extension with zero bitmaps");
        return -EINVAL;
    }
    if (s->nb_bitmaps > BME_MAX_BITMAPS) {
        error_setg(errp, "bitmaps_ext: Image has %" PRIu32 " bitmaps, exceeding the "
                   "QEMU supported maximum of %d", s->nb_bitmaps, BME_MAX_BITMAPS);
        return -EINVAL;
    }
    if (offset_into_cluster(s, s->bitmap_directory_offset)) {
        error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
        return -EINVAL;
    }
    if (s->bitmap_directory_size > BME_MAX_DIR_SIZE) {
        error_setg(errp, "bitmaps_ext: bitmap directory size (%" PRIu64 ") exceeds the "
                   "maximum supported size (%llu)", s->bitmap_directory_size,
                   BME_MAX_DIR_SIZE);
        return -EINVAL;
    }
    return 0;
}

/* The constraints QEMU puts on one directory entry (probed from QEMU 7.2). */
static bool entry_ok(BDRVQcow2State *s, const BitmapEntry *e)
{
    return !(e->flags & ~(BME_FLAG_IN_USE | BME_FLAG_AUTO)) &&
           e->type == BME_TYPE_DIRTY_TRACKING &&
           e->granularity_bits >= 9 && e->granularity_bits <= 31 &&
           !offset_into_cluster(s, e->table_offset) && e->table_size != 0 &&
           (uint64_t)e->table_size * s->cluster_size <= BME_MAX_PHYS_SIZE;
}

/*
 * Entries are parsed up to the directory's end; their count must match the
 * extension's, and each entry must fit and meet the constraints, in that order.
 */
int qcow2_bitmaps_read_directory(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *dir = NULL;
    uint64_t off = 0, size = s->bitmap_directory_size;
    uint32_t count = 0;
    int ret;

    if (size == 0) {
        error_setg(errp, "Requested bitmap directory size is zero");
        return -EINVAL;
    }
    if (size > BME_MAX_DIR_SIZE) {
        error_setg(errp, "Bitmap directory too large");
        return -EFBIG;
    }
    dir = g_try_malloc0(size + 1);
    if (!dir) {
        return -ENOMEM;
    }
    ret = bdrv_pread(bs->file, s->bitmap_directory_offset, size, dir, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap directory");
        return ret;
    }
    while (off < size) {
        BitmapEntry *e;
        uint32_t extra;
        uint16_t name_size;

        if (size - off < BME_FIXED_SIZE) {
            error_setg(errp, "Broken bitmap directory");
            return -EINVAL;
        }
        if (++count > s->nb_bitmaps) {
            error_setg(errp, "More bitmaps found than specified in header extension");
            return -EINVAL;
        }
        name_size = lduw_be(dir + off + 18);
        extra = ldl_be(dir + off + 20);
        /* QEMU knows no extra data: an entry that has some is broken to it */
        if (name_size > BME_MAX_NAME || extra ||
            size - off - BME_FIXED_SIZE < name_size) {
            error_setg(errp, "Broken bitmap directory");
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
        if (!entry_ok(s, e)) {
            error_setg(errp, "Bitmap '%s' doesn't satisfy the constraints", e->name);
            return -EINVAL;
        }
        off += QEMU_ALIGN_UP(BME_FIXED_SIZE + extra + name_size, 8);
    }
    if (count < s->nb_bitmaps) {
        error_setg(errp, "Less bitmaps found than specified in header extension");
        return -EINVAL;
    }
    return 0;
}

/*
 * What QEMU checks of every bitmap when it opens an image, read-only and for
 * qemu-img check too (facts from probing QEMU 7.2; its iotest 242): the
 * directory (above); then for each bitmap not in use, its table's entries and
 * that the table is exactly as long as the disk needs.
 */
int qcow2_bitmaps_validate(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_bitmap_entry_free);
    int ret = qcow2_bitmaps_read_directory(bs, list, errp);

    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        g_autofree uint64_t *table = NULL;
        uint64_t bits, need;

        if (e->flags & BME_FLAG_IN_USE) {
            continue;
        }
        table = g_try_new(uint64_t, e->table_size);
        if (!table) {
            return -ENOMEM;
        }
        ret = bdrv_pread(bs->file, e->table_offset, (int64_t)e->table_size * 8, table, 0);
        for (uint32_t j = 0; ret >= 0 && j < e->table_size; j++) {
            uint64_t t = GUINT64_FROM_BE(table[j]);

            if ((t & BME_TABLE_RESERVED) ||
                ((t & BME_TABLE_OFFSET) &&
                 ((t & BME_TABLE_ALL_ONES) || offset_into_cluster(s, t & BME_TABLE_OFFSET)))) {
                ret = -EINVAL;
            }
        }
        if (ret < 0) {
            error_setg(errp, "Could not read bitmap_table table from image for bitmap "
                       "'%s': %s", e->name, g_strerror(-ret));
            return ret;
        }
        bits = DIV_ROUND_UP(s->size, 1ULL << e->granularity_bits);
        need = DIV_ROUND_UP(DIV_ROUND_UP(bits, 8), s->cluster_size);
        if (e->table_size != need) {
            error_setg(errp, "Could not read bitmap '%s' from image: Invalid argument",
                       e->name);
            return -EINVAL;
        }
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
