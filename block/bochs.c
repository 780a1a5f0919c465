/*
 * The "bochs" format driver: read-only access to the Bochs emulator's growing
 * ("Redolog"/"Growing") disk images, versions 1 and 2, as QEMU offers it: probe,
 * open with QEMU's header checks and messages, reads (with QEMU's wrapping
 * offset arithmetic for hostile slot numbers), and the block status of a
 * format without its own (everything is data, mapped nowhere). No creation,
 * writes, amendment or checks.
 *
 * Layout: a 512-byte header (magic, type, subtype, version, header size, then
 * the redolog fields: catalog entries, bitmap size, extent size, for version 2
 * a reserved word, and the disk size in bytes), at the header size the catalog
 * (one little-endian 32-bit slot number per extent, 0xffffffff: unallocated),
 * right after it the slots: each holds the extent's bitmap (one bit per 512-byte
 * sector, least significant bit first; set: the sector is in the image) padded
 * to whole sectors, then the extent's sectors. What no set bit covers reads as
 * zeros.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

#define BOCHS_HEADER_SIZE 512
#define BOCHS_MAGIC "Bochs Virtual HD Image"
#define BOCHS_TYPE "Redolog"
#define BOCHS_SUBTYPE "Growing"
#define BOCHS_VERSION_1 0x00010000
#define BOCHS_VERSION_2 0x00020000

/* header field offsets */
#define BOCHS_OFF_MAGIC 0       /* 32 bytes */
#define BOCHS_OFF_TYPE 32       /* 16 bytes */
#define BOCHS_OFF_SUBTYPE 48    /* 16 bytes */
#define BOCHS_OFF_VERSION 64
#define BOCHS_OFF_HEADER 68
#define BOCHS_OFF_CATALOG 72
#define BOCHS_OFF_BITMAP 76
#define BOCHS_OFF_EXTENT 80
#define BOCHS_OFF_DISK_V1 84
#define BOCHS_OFF_DISK_V2 88    /* after a reserved (timestamp) word */

/* QEMU's limits on what it opens */
#define BOCHS_MAX_CATALOG 0x100000
#define BOCHS_MAX_EXTENT (8 * MiB)

#define BOCHS_UNALLOCATED 0xffffffffu

typedef struct BDRVBochsState {
    uint32_t *catalog;          /* host-endian slot numbers */
    uint32_t catalog_size;
    uint32_t data_offset;       /* the first slot */
    uint64_t bitmap_blocks;     /* sectors of each slot's bitmap */
    uint64_t extent_sectors;
    uint64_t total_sectors;
} BDRVBochsState;

/* A NUL-terminated string at the start of a header field (QEMU compares so). */
static bool field_is(const uint8_t *hdr, int off, const char *s)
{
    return !memcmp(hdr + off, s, strlen(s) + 1);
}

/* Is @hdr (BOCHS_HEADER_SIZE bytes) a growing Bochs image header we know? */
static bool bochs_header_ok(const uint8_t *hdr)
{
    uint32_t version = ldl_le(hdr + BOCHS_OFF_VERSION);

    return field_is(hdr, BOCHS_OFF_MAGIC, BOCHS_MAGIC) &&
           field_is(hdr, BOCHS_OFF_TYPE, BOCHS_TYPE) &&
           field_is(hdr, BOCHS_OFF_SUBTYPE, BOCHS_SUBTYPE) &&
           (version == BOCHS_VERSION_1 || version == BOCHS_VERSION_2);
}

static int bochs_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    uint8_t hdr[BOCHS_HEADER_SIZE] = { 0 };

    /* a file shorter than the header reads as zeros past its end */
    memcpy(hdr, buf, MIN(MAX(buf_size, 0), BOCHS_HEADER_SIZE));
    return bochs_header_ok(hdr) ? 100 : 0;
}

static int bochs_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVBochsState *s = bs->opaque;
    uint8_t hdr[BOCHS_HEADER_SIZE];
    uint32_t extent_size, bitmap_size;
    uint64_t disk_size;
    int ret;

    if (flags & BDRV_O_RDWR) {
        GError *local = NULL;

        if (!opts_get_bool(opts, "auto-read-only", false, &local) || local) {
            g_clear_error(&local);
            error_setg(errp, "Image is read-only");
            return -EACCES;
        }
        bs->open_flags &= ~BDRV_O_RDWR;
    }
    bs->request_alignment = BDRV_SECTOR_SIZE;

    ret = bdrv_pread(bs->file, 0, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the Bochs header");
        return ret;
    }
    if (!bochs_header_ok(hdr)) {
        error_setg(errp, "Image not in Bochs format");
        return -EINVAL;
    }

    if (ldl_le(hdr + BOCHS_OFF_VERSION) == BOCHS_VERSION_1) {
        disk_size = ldq_le(hdr + BOCHS_OFF_DISK_V1);
    } else {
        disk_size = ldq_le(hdr + BOCHS_OFF_DISK_V2);
    }
    s->total_sectors = disk_size / BDRV_SECTOR_SIZE;

    s->catalog_size = ldl_le(hdr + BOCHS_OFF_CATALOG);
    if (s->catalog_size > BOCHS_MAX_CATALOG) {
        error_setg(errp, "Catalog size is too large");
        return -EFBIG;
    }
    s->catalog = g_new(uint32_t, MAX(s->catalog_size, 1));
    ret = bdrv_pread(bs->file, ldl_le(hdr + BOCHS_OFF_HEADER),
                     (int64_t)s->catalog_size * 4, s->catalog, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read the Bochs catalog");
        return ret;
    }
    for (uint32_t i = 0; i < s->catalog_size; i++) {
        s->catalog[i] = GUINT32_FROM_LE(s->catalog[i]);
    }
    /* a 32-bit sum in QEMU: a header size near 4 GiB wraps to the file's start */
    s->data_offset = (uint32_t)(ldl_le(hdr + BOCHS_OFF_HEADER) + s->catalog_size * 4);

    /* the bitmap takes whole sectors; its size is a 32-bit count (0: 2^32) */
    bitmap_size = ldl_le(hdr + BOCHS_OFF_BITMAP);
    s->bitmap_blocks = 1 + (uint32_t)(bitmap_size - 1) / BDRV_SECTOR_SIZE;

    extent_size = ldl_le(hdr + BOCHS_OFF_EXTENT);
    if (extent_size < BDRV_SECTOR_SIZE) {
        error_setg(errp, "Extent size must be at least 512");
        return -EINVAL;
    }
    if (!is_power_of_2(extent_size)) {
        error_setg(errp, "Extent size %" PRIu32 " is not a power of two", extent_size);
        return -EINVAL;
    }
    if (extent_size > BOCHS_MAX_EXTENT) {
        error_setg(errp, "Extent size %" PRIu32 " is too large", extent_size);
        return -EINVAL;
    }
    s->extent_sectors = extent_size / BDRV_SECTOR_SIZE;

    if ((uint64_t)s->catalog_size * s->extent_sectors < s->total_sectors) {
        error_setg(errp, "Catalog size is too small for this disk size");
        return -EINVAL;
    }
    return 0;
}

static void bochs_close(BlockDriverState *bs)
{
    BDRVBochsState *s = bs->opaque;

    g_free(s->catalog);
    s->catalog = NULL;
}

static int64_t bochs_getlength(BlockDriverState *bs)
{
    BDRVBochsState *s = bs->opaque;

    return s->total_sectors * BDRV_SECTOR_SIZE;
}

/* @bytes at @off of the file, which must lie within the lengths QEMU accepts
 * (offsets that wrapped past 2^63 are negative ones to QEMU). */
static int bochs_read_file(BlockDriverState *bs, uint64_t off, uint64_t bytes, void *buf)
{
    if (off > BDRV_MAX_LENGTH || bytes > BDRV_MAX_LENGTH - off) {
        return -EIO;
    }
    return bdrv_pread(bs->file, off, bytes, buf, 0);
}

/*
 * Read @nb_sectors sectors from @sector on, all in one extent, into @buf. Runs of
 * set bitmap bits are read in one request each.
 */
static int bochs_read_extent(BlockDriverState *bs, uint64_t sector, uint64_t nb_sectors,
                             uint8_t *buf)
{
    BDRVBochsState *s = bs->opaque;
    uint64_t index = sector / s->extent_sectors;
    uint64_t in_extent = sector % s->extent_sectors;
    uint32_t slot = s->catalog[index];
    uint64_t slot_offset, data_offset, first_byte, i = 0;
    uint8_t bitmap[BOCHS_MAX_EXTENT / BDRV_SECTOR_SIZE / 8];
    int ret;

    if (slot == BOCHS_UNALLOCATED) {
        memset(buf, 0, nb_sectors * BDRV_SECTOR_SIZE);
        return 0;
    }
    /*
     * QEMU's arithmetic: 64-bit, wrapping; an offset that ends up past QEMU's
     * largest length (or negative) fails the read with EIO, others read
     * (zeros past the end of the file)
     */
    slot_offset = s->data_offset +
                  (uint64_t)slot * (s->bitmap_blocks + s->extent_sectors) * BDRV_SECTOR_SIZE;
    /* the bitmap's bytes for these sectors, wherever the bitmap's size puts them */
    first_byte = in_extent / 8;
    ret = bochs_read_file(bs, slot_offset + first_byte,
                          (in_extent + nb_sectors - 1) / 8 - first_byte + 1, bitmap);
    if (ret < 0) {
        return ret;
    }
    data_offset = slot_offset + (s->bitmap_blocks + in_extent) * BDRV_SECTOR_SIZE;
    while (i < nb_sectors) {
        bool set;
        uint64_t run = 0;

#define BOCHS_BIT(n) \
    ((bitmap[((in_extent + (n)) / 8) - first_byte] >> ((in_extent + (n)) % 8)) & 1)
        set = BOCHS_BIT(i);
        while (i + run < nb_sectors && BOCHS_BIT(i + run) == set) {
            run++;
        }
#undef BOCHS_BIT
        if (set) {
            ret = bochs_read_file(bs, data_offset + i * BDRV_SECTOR_SIZE,
                                  run * BDRV_SECTOR_SIZE, buf + i * BDRV_SECTOR_SIZE);
            if (ret < 0) {
                return ret;
            }
        } else {
            memset(buf + i * BDRV_SECTOR_SIZE, 0, run * BDRV_SECTOR_SIZE);
        }
        i += run;
    }
    return 0;
}

static int bochs_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                       int flags)
{
    BDRVBochsState *s = bs->opaque;
    uint64_t sector = offset / BDRV_SECTOR_SIZE;
    uint64_t nb_sectors = bytes / BDRV_SECTOR_SIZE;
    uint8_t *p = buf;

    while (nb_sectors > 0) {
        uint64_t n = MIN(nb_sectors, s->extent_sectors - sector % s->extent_sectors);
        int ret = bochs_read_extent(bs, sector, n, p);

        if (ret < 0) {
            return ret;
        }
        sector += n;
        nb_sectors -= n;
        p += n * BDRV_SECTOR_SIZE;
    }
    return 0;
}

/* As QEMU shows a format without block status: all data, at no file offset. */
static int bochs_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    *pnum = bytes;
    *map = 0;
    *file = NULL;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
}

BlockDriver bdrv_bochs = {
    .format_name = "bochs",
    .instance_size = sizeof(BDRVBochsState),
    .is_format = true,
    .thread_safe_reads = true,
    .probe = bochs_probe,
    .open = bochs_open,
    .close = bochs_close,
    .pread = bochs_pread,
    .getlength = bochs_getlength,
    .block_status = bochs_block_status,
};
