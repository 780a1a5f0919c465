/*
 * qcow2 image creation (qemu-img create and QMP blockdev-create), preallocation,
 * resize (truncate) and amend.
 *
 * ONE decision point, qcow2_effective_prealloc(), tells create, resize, amend and
 * blockdev-create which preallocation to apply: data_file_raw lifts "off" to
 * "metadata", so an image whose data file is a raw image always maps every guest
 * cluster 1:1 onto it.
 *
 * Creation writes a minimal image (header, refcount table, one refcount block),
 * opens it with the driver and grows it to its size through qcow2_truncate(), so
 * creating and growing share one code path. Metadata preallocation writes whole
 * L2 tables in large sequential writes and updates refcounts range by range.
 *
 * Growing never shows old data: before the header takes the new size, the area
 * past the old end is made to read as zeros (stale L2 entries dropped, the cut-off
 * tail of a partial last cluster zeroed, a non-raw data file cut at the old end,
 * zero clusters where a longer backing file would show through). Shrinking gives
 * the space back: cut-off clusters and L2 tables are discarded in the image file,
 * emptied refcount blocks dropped, the image and data files truncated.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/qcow2.h"

PreallocMode qcow2_effective_prealloc(PreallocMode requested, bool data_file_raw)
{
    if (data_file_raw && requested == PREALLOC_MODE_OFF) {
        return PREALLOC_MODE_METADATA;
    }
    return requested;
}

/* In QEMU's order: the "Formatting" line prints them this way. */
const CreateOptDesc qcow2_create_opt_descs[] = {
    { "encryption", OPT_BOOL, "Encrypt the image with format 'aes'. (Deprecated in "
      "favor of encrypt.format=aes)", NULL },
    { "encrypt.format", OPT_STRING, "Encrypt the image, format choices: 'aes', 'luks'",
      NULL },
    { "encrypt.key-secret", OPT_STRING, "ID of secret providing qcow AES key or LUKS "
      "passphrase", NULL },
    { "encrypt.cipher-alg", OPT_STRING, "Name of encryption cipher algorithm", NULL },
    { "encrypt.cipher-mode", OPT_STRING, "Name of encryption cipher mode", NULL },
    { "encrypt.ivgen-alg", OPT_STRING, "Name of IV generator algorithm", NULL },
    { "encrypt.ivgen-hash-alg", OPT_STRING, "Name of IV generator hash algorithm", NULL },
    { "encrypt.hash-alg", OPT_STRING, "Name of encryption hash algorithm", NULL },
    { "encrypt.iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { "cluster_size", OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", OPT_STRING, "Preallocation mode (allowed values: off, metadata, "
      "falloc, full)", NULL },
    { "compression_type", OPT_STRING, "Compression method used for image cluster "
      "compression", "zlib" },
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { "compat", OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "backing_file", OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", OPT_STRING, "Image format of the base image", NULL },
    { "data_file", OPT_STRING, "File name of an external data file", NULL },
    { "data_file_raw", OPT_BOOL, "The external data file must stay valid as a raw "
      "image", NULL },
    { "keep_data_file", OPT_BOOL, "Use the existing data file as it is: never create, "
      "truncate or write it", NULL, true },
    { "lazy_refcounts", OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", OPT_NUMBER, "Width of a reference count entry in bits", "16" },
    { NULL },
};

const CreateOptDesc qcow2_amend_opt_descs[] = {
    { "compat", OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { "backing_file", OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", OPT_STRING, "Image format of the base image", NULL },
    { "data_file", OPT_STRING, "File name of an external data file", NULL },
    { "data_file_raw", OPT_BOOL, "The external data file must stay valid as a raw "
      "image", NULL },
    { "lazy_refcounts", OPT_BOOL, "Postpone refcount updates", NULL },
    { "refcount_bits", OPT_NUMBER, "Width of a reference count entry in bits", NULL },
    { "encrypt.state", OPT_STRING, "Select new state of affected keyslots "
      "(active/inactive)", NULL },
    { "encrypt.keyslot", OPT_NUMBER, "Select a single keyslot to modify explicitly",
      NULL },
    { "encrypt.old-secret", OPT_STRING, "Select all keyslots that match this password",
      NULL },
    { "encrypt.new-secret", OPT_STRING, "New secret to set in the matching keyslots. "
      "Empty string to erase", NULL },
    { "encrypt.iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { NULL },
};

typedef struct Qcow2CreateParams {
    uint64_t size;
    bool has_size;
    int version;
    uint64_t cluster_size;
    PreallocMode prealloc;
    bool lazy_refcounts;
    int refcount_bits;
    char *backing_file;
    char *backing_fmt;
    char *data_file;
    bool has_data_file;
    bool data_file_raw;
    bool keep_data_file;
    int compression_type;
    bool extended_l2;
    bool has_crypto;
    QCryptoBlockCreateOptions crypto;
} Qcow2CreateParams;

static void params_clear(Qcow2CreateParams *p)
{
    if (p->has_crypto) {
        qcrypto_block_create_options_clear(&p->crypto);
    }
    g_free(p->backing_file);
    g_free(p->backing_fmt);
    g_free(p->data_file);
}

/* ---- validation shared by qemu-img and blockdev-create ---- */

static int parse_version(const char *v, int *version, GError **errp)
{
    if (!v || !strcmp(v, "1.1") || !strcmp(v, "v3")) {
        *version = 3;
    } else if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
        *version = 2;
    } else {
        error_setg(errp, "Parameter 'version' does not accept value '%s'", v);
        return -EINVAL;
    }
    return 0;
}

/*
 * The first cluster holds the header, its extensions and the backing file name:
 * a name that does not fit fails as QEMU's fails when it writes them (the data
 * file's name with the header, then the backing file's), but before any file is
 * touched.
 */
static int validate_header_fits(Qcow2CreateParams *p, GError **errp)
{
    size_t hlen = p->version >= 3 ? QEMU_ALIGN_UP(QCOW2_V3_HEADER_SIZE + 1, 8)
                                   : QCOW2_V2_HEADER_SIZE;
    size_t df = p->has_data_file ? 8 + QEMU_ALIGN_UP(strlen(p->data_file), 8) : 0;
    size_t bf, n;

    if (hlen + df + 8 > p->cluster_size) {
        error_setg_errno(errp, ENOSPC, "Could not update qcow2 header");
        return -ENOSPC;
    }
    if (!p->backing_file) {
        return 0;
    }
    n = strlen(p->backing_file);
    bf = p->backing_fmt ? 8 + QEMU_ALIGN_UP(strlen(p->backing_fmt), 8) : 0;
    if (n > QCOW2_MAX_BACKING_NAME || hlen + bf + df + 8 + n > p->cluster_size) {
        int err = n > QCOW2_MAX_BACKING_NAME ? EINVAL : ENOSPC;
        error_setg_errno(errp, err, "Could not assign backing file '%s' with format '%s'",
                         p->backing_file, p->backing_fmt ? p->backing_fmt : "(null)");
        return -err;
    }
    return 0;
}

static int validate_params(Qcow2CreateParams *p, GError **errp)
{
    int ret;

    if (!is_power_of_2(p->cluster_size) || p->cluster_size < (1 << MIN_CLUSTER_BITS) ||
        p->cluster_size > (1 << MAX_CLUSTER_BITS)) {
        error_setg(errp, "Cluster size must be a power of two between %d and %dk",
                   1 << MIN_CLUSTER_BITS, 1 << (MAX_CLUSTER_BITS - 10));
        return -EINVAL;
    }
    if (!is_power_of_2(p->refcount_bits) || p->refcount_bits > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 "
                   "bits");
        return -EINVAL;
    }
    if (p->version < 3 && p->refcount_bits != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require compatibility "
                   "level 1.1 or above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (p->version < 3 && p->lazy_refcounts) {
        error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 "
                   "and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (p->compression_type != QCOW2_COMPRESSION_TYPE_ZLIB && p->version < 3) {
        error_setg(errp, "Non-zlib compression type is only supported with "
                   "compatibility level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (p->has_data_file && p->version < 3) {
        error_setg(errp, "External data files are only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (p->data_file_raw && !p->has_data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -EINVAL;
    }
    if (p->data_file_raw && p->backing_file) {
        error_setg(errp, "Backing file and data-file-raw cannot be used at the same time");
        return -EINVAL;
    }
    if (p->extended_l2 && p->version < 3) {
        error_setg(errp, "Extended L2 entries are only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (p->extended_l2 && p->cluster_size < 16 * KiB) {
        error_setg(errp, "Extended L2 entries are only supported with cluster sizes of "
                   "at least %d bytes", 16384);
        return -EINVAL;
    }
    if (p->backing_file && p->prealloc != PREALLOC_MODE_OFF && !p->extended_l2) {
        error_setg(errp, "Backing file and preallocation can only be used at the same "
                   "time if extended_l2 is on");
        return -EINVAL;
    }
    if (p->has_size && !QEMU_IS_ALIGNED(p->size, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "Image size must be a multiple of %llu bytes",
                   BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    ret = validate_header_fits(p, errp);
    if (ret < 0) {
        return ret;
    }
    if (p->has_size && p->size > INT64_MAX) {
        error_setg(errp, "Could not resize image: Image size cannot be negative");
        return -EINVAL;
    }
    if (p->has_size &&
        qcow2_l1_entries_for(p->size, ctz64(p->cluster_size),
                             ctz64(p->cluster_size) - 3 - p->extended_l2) >
        QCOW_MAX_L1_SIZE / sizeof(uint64_t)) {
        /* (qemu-img create says "The image size is too large for file format") */
        error_setg(errp, "Could not resize image: Failed to grow the L1 table: %s",
                   g_strerror(EFBIG));
        return -EFBIG;
    }
    if (p->has_size && p->size > (uint64_t)INT64_MAX - p->cluster_size) {
        error_setg(errp, "Image size is too large");
        return -EFBIG;
    }
    if (p->keep_data_file) {
        if (!p->has_data_file) {
            error_setg(errp, "Must not use 'keep_data_file=on' without 'data_file'");
            return -EINVAL;
        }
        if (p->prealloc == PREALLOC_MODE_FALLOC || p->prealloc == PREALLOC_MODE_FULL) {
            error_setg(errp, "Preallocating more than only metadata would overwrite the "
                       "external data file's content and is therefore incompatible with "
                       "'keep_data_file=on'");
            return -EINVAL;
        }
        if (!p->data_file_raw && p->prealloc != PREALLOC_MODE_METADATA) {
            error_setg(errp, "'keep_data_file=on' requires 'preallocation=metadata' or "
                       "'data_file_raw=on', or the file contents will not be visible");
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- the minimal image: header, refcount table, one refcount block ---- */

static int write_initial_image(BlockDriverState *file, Qcow2CreateParams *p,
                               const char *data_file_name, GError **errp)
{
    uint64_t cs = p->cluster_size;
    int refcount_order = ctz64(p->refcount_bits);
    g_autofree uint8_t *buf = NULL;
    void *mem = NULL;
    size_t hlen = p->version >= 3 ? QEMU_ALIGN_UP(QCOW2_V3_HEADER_SIZE + 1, 8)
                                   : QCOW2_V2_HEADER_SIZE;
    size_t off;
    int ret;

    if (posix_memalign(&mem, 4096, 3 * cs)) {
        error_setg(errp, "Could not allocate memory");
        return -ENOMEM;
    }
    buf = mem;
    memset(buf, 0, 3 * cs);
    stl_be(buf, QCOW_MAGIC);
    stl_be(buf + 4, p->version);
    stl_be(buf + 20, ctz64(cs));                          /* cluster_bits */
    stq_be(buf + 48, cs);                                  /* refcount_table_offset */
    stl_be(buf + 56, 1);                                   /* refcount_table_clusters */
    if (p->version >= 3) {
        uint64_t incompat = (p->has_data_file ? QCOW2_INCOMPAT_DATA_FILE : 0) |
                            (p->compression_type ? QCOW2_INCOMPAT_COMPRESSION : 0) |
                            (p->extended_l2 ? QCOW2_INCOMPAT_EXTL2 : 0);
        uint64_t compat = p->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0;
        uint64_t autoclear = p->data_file_raw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0;
        stq_be(buf + 72, incompat);
        stq_be(buf + 80, compat);
        stq_be(buf + 88, autoclear);
        stl_be(buf + 96, refcount_order);
        stl_be(buf + 100, hlen);
        buf[104] = p->compression_type;
    }
    off = hlen;
    if (p->backing_fmt && p->backing_file) {
        size_t n = strlen(p->backing_fmt);
        stl_be(buf + off, QCOW2_EXT_MAGIC_BACKING_FORMAT);
        stl_be(buf + off + 4, n);
        memcpy(buf + off + 8, p->backing_fmt, n);
        off += 8 + QEMU_ALIGN_UP(n, 8);
    }
    if (data_file_name) {
        size_t n = strlen(data_file_name);
        if (off + 16 + n > cs / 2) {
            error_setg(errp, "Data file name too long");
            return -EINVAL;
        }
        stl_be(buf + off, QCOW2_EXT_MAGIC_DATA_FILE);
        stl_be(buf + off + 4, n);
        memcpy(buf + off + 8, data_file_name, n);
        off += 8 + QEMU_ALIGN_UP(n, 8);
    }
    off += 8;                                              /* end of extensions */
    if (p->backing_file) {
        size_t n = strlen(p->backing_file);
        if (n > QCOW2_MAX_BACKING_NAME || off + n > cs) {
            error_setg(errp, "Backing file name too long");
            return -EINVAL;
        }
        memcpy(buf + off, p->backing_file, n);
        stq_be(buf + 8, off);
        stl_be(buf + 16, n);
    }
    /* refcount table: one block at cluster 2, counting clusters 0, 1 and 2 */
    stq_be(buf + cs, 2 * cs);
    {
        BDRVQcow2State tmp = { .refcount_order = refcount_order };
        for (int i = 0; i < 3; i++) {
            qcow2_refblock_set(&tmp, buf + 2 * cs, i, 1);
        }
    }
    ret = bdrv_pwrite(file, 0, 3 * cs, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write qcow2 header");
        return ret;
    }
    return 0;
}

static int truncate_image(BlockDriverState *bs, int64_t offset, bool exact,
                          PreallocMode prealloc, bool formatting, GError **errp);
/* What a read-write qcow2 node asks of its image file and data file (block.c). */
#define QCOW2_FILE_PERM \
    (BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE | BLK_PERM_RESIZE)
#define QCOW2_FILE_SHARED (BLK_PERM_ALL & ~(BLK_PERM_WRITE | BLK_PERM_RESIZE))
#define QCOW2_DATA_FILE_SHARED (BLK_PERM_ALL & ~BLK_PERM_RESIZE)

static int qcow2_format_locked(BlockDriverState *file, BlockDriverState *data_file,
                               const char *data_file_name, Qcow2CreateParams *p,
                               PreallocMode mode, GError **errp);

/*
 * Format @file (and @data_file) as a qcow2 image described by @p, then grow it to
 * its size with the effective preallocation.
 */
static int qcow2_format(BlockDriverState *file, BlockDriverState *data_file,
                        const char *data_file_name, Qcow2CreateParams *p, GError **errp)
{
    PreallocMode mode = qcow2_effective_prealloc(p->prealloc, p->data_file_raw);
    int ret;

    /*
     * Hold what the qcow2 node will hold before the first byte is written (a
     * blockdev-create's nodes may have had no user so far): another process
     * using either file makes this fail with nothing changed.
     */
    ret = bdrv_perm_attach(file, p, QCOW2_FILE_PERM, QCOW2_FILE_SHARED, errp);
    if (ret == 0 && data_file) {
        ret = bdrv_perm_attach(data_file, p,
                               bdrv_is_read_only(data_file) ? BLK_PERM_CONSISTENT_READ
                                                            : QCOW2_FILE_PERM,
                               QCOW2_DATA_FILE_SHARED, errp);
    }
    if (ret == 0) {
        ret = qcow2_format_locked(file, data_file, data_file_name, p, mode, errp);
    }
    bdrv_perm_detach(file, p);
    if (data_file) {
        bdrv_perm_detach(data_file, p);
    }
    return ret;
}

static int qcow2_format_locked(BlockDriverState *file, BlockDriverState *data_file,
                               const char *data_file_name, Qcow2CreateParams *p,
                               PreallocMode mode, GError **errp)
{
    g_autoptr(JsonObject) opts = json_object_new();
    BlockDriverState *bs;
    int ret;

    ret = write_initial_image(file, p, data_file_name, errp);
    if (ret < 0) {
        return ret;
    }
    opts_set_str(opts, "driver", "qcow2");
    opts_set_str(opts, "file", bdrv_get_node_name(file));
    if (data_file) {
        opts_set_str(opts, "data-file", bdrv_get_node_name(data_file));
    }
    json_object_set_null_member(opts, "backing");
    /* small caches: preallocation streams its tables */
    opts_set_str(opts, "l2-cache-size", "0");
    bs = bdrv_open(NULL, opts, BDRV_O_RDWR | BDRV_O_NO_BACKING, errp);
    if (!bs) {
        return -EIO;
    }
    /* no bitmaps yet; the data file was just made for this size (or is kept) */
    ret = truncate_image(bs, p->size, true, mode, true, errp);
    if (ret < 0) {
        error_prepend(errp, "Could not resize image: ");
    }
    if (ret == 0 && p->has_crypto) {
        /* as QEMU: the LUKS header comes after what preallocation placed */
        ret = qcow2_crypto_create(bs, &p->crypto, errp);
    }
    if (ret == 0) {
        /* the final header: feature table and every extension */
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
        }
    }
    if (ret == 0) {
        ret = bdrv_flush(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush the new image");
        }
    }
    bdrv_unref(bs);
    return ret;
}

/* ---- preallocation ---- */

/* Batch of consecutive new L2 tables, written in large sequential writes. */
typedef struct L2Batch {
    BlockDriverState *bs;
    uint8_t *buf;
    size_t cap;          /* bytes */
    uint64_t start;      /* host offset of the first table in buf */
    size_t used;
} L2Batch;

static int l2_batch_flush(L2Batch *b)
{
    int ret = 0;

    if (b->used) {
        BLKDBG_EVENT(b->bs->file, BLKDBG_L2_ALLOC_WRITE);
        ret = bdrv_pwrite(b->bs->file, b->start, b->used, b->buf, 0);
        b->used = 0;
    }
    return ret;
}

/* A zeroed table slot at @host in the batch (flushing if not contiguous). */
static int l2_batch_add(L2Batch *b, uint64_t host, uint64_t **table)
{
    BDRVQcow2State *s = b->bs->opaque;
    int ret;

    if (b->used && (host != b->start + b->used || b->used + s->cluster_size > b->cap)) {
        ret = l2_batch_flush(b);
        if (ret < 0) {
            return ret;
        }
    }
    if (!b->used) {
        b->start = host;
    }
    *table = (uint64_t *)(b->buf + b->used);
    memset(*table, 0, s->cluster_size);
    b->used += s->cluster_size;
    return 0;
}

/* Fill L2 entries [first, first+n) of a table for guest clusters from @guest. */
static void fill_entries(BlockDriverState *bs, uint64_t *table, int first, int n,
                         uint64_t guest, uint64_t host)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t e = (has_data_file(bs) ? guest : host) | QCOW_OFLAG_COPIED;

    for (int i = 0; i < n; i++, e += s->cluster_size) {
        qcow2_l2_set(s, table, first + i, e);
    }
}

/*
 * Map guest clusters [offset, new_length) that are not yet allocated: 1:1 in the
 * data file, or interleaved "L2 table, its data clusters" in the image file
 * (QEMU's metadata layout). With @contiguous_host (falloc/full), data clusters come
 * from @host_base onwards instead.
 */
/*
 * Clusters the allocator hands out again (freed by a discard, a failed write)
 * still hold their old bytes in the file; a preallocated guest cluster must read
 * as zeros, so zero the part of [host, host+len) below the file's old end.
 */
static int zero_reused(BlockDriverState *bs, uint64_t host, uint64_t len, int64_t old_eof)
{
    if ((int64_t)host >= old_eof) {
        return 0;
    }
    return bdrv_pwrite_zeroes(bs->file, host, MIN(len, (uint64_t)old_eof - host),
                              BDRV_REQ_MAY_UNMAP);
}

static int prealloc_metadata(BlockDriverState *bs, uint64_t offset, uint64_t new_length,
                             bool contiguous, uint64_t host_base, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cs = s->cluster_size;
    uint64_t first_cl = offset >> s->cluster_bits;
    uint64_t end_cl = DIV_ROUND_UP(new_length, cs);
    uint32_t l1_first = UINT32_MAX, l1_last = 0;
    L2Batch batch = { .bs = bs };
    int64_t old_eof = bdrv_getlength(bs->file);
    void *mem = NULL;
    int ret = 0;

    if (old_eof < 0) {
        error_setg_errno(errp, -old_eof, "Could not get the image file size");
        return old_eof;
    }

    batch.cap = MAX((size_t)cs, (size_t)(2 * MiB));
    batch.cap = QEMU_ALIGN_DOWN(batch.cap, cs);
    if (posix_memalign(&mem, 4096, batch.cap)) {
        error_setg(errp, "Could not allocate memory");
        return -ENOMEM;
    }
    batch.buf = mem;

    for (uint64_t cl = first_cl; cl < end_cl;) {
        uint32_t l1i = cl >> s->l2_bits;
        int l2i = cl & (s->l2_size - 1);
        int n = MIN((uint64_t)(s->l2_size - l2i), end_cl - cl);
        uint64_t l2_off = s->l1_table[l1i] & L1E_OFFSET_MASK;
        uint64_t data_host = 0;
        uint64_t *table;

        if (l2_off && (s->l1_table[l1i] & QCOW_OFLAG_COPIED)) {
            /* an existing table: map its unallocated entries through the cache */
            uint64_t *l2;
            int idx;
            ret = qcow2_get_l2_table(bs, cl << s->cluster_bits, &l2, &idx, true);
            if (ret < 0) {
                goto out;
            }
            for (int i = 0; i < n; i++) {
                uint64_t e = qcow2_l2_get(s, l2, l2i + i);
                Qcow2ClusterType t = qcow2_get_cluster_type(bs, e);
                uint64_t host;
                if (t != QCOW2_CLUSTER_UNALLOCATED && t != QCOW2_CLUSTER_ZERO_PLAIN) {
                    continue;
                }
                if (has_data_file(bs)) {
                    host = (cl + i) << s->cluster_bits;
                } else if (contiguous) {
                    host = host_base;
                    host_base += cs;
                } else {
                    int64_t h = qcow2_alloc_clusters(bs, cs);
                    ret = h < 0 ? h : zero_reused(bs, h, cs, old_eof);
                    if (ret < 0) {
                        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
                        goto out;
                    }
                    host = h;
                }
                qcow2_l2_set(s, l2, l2i + i, host | QCOW_OFLAG_COPIED |
                             (t == QCOW2_CLUSTER_ZERO_PLAIN &&
                              has_data_file(bs) && !data_file_is_raw(bs) ?
                              QCOW_OFLAG_ZERO : 0));
            }
            qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
            cl += n;
            continue;
        }
        if (l2_off) {
            error_setg(errp, "Cannot preallocate over a shared L2 table");
            ret = -ENOTSUP;
            goto out;
        }
        /* a new table, then (internal data) its data clusters right after it */
        {
            int64_t h = qcow2_alloc_clusters(bs, cs);
            if (h < 0) {
                ret = h;
                goto out;
            }
            l2_off = h;
        }
        if (!has_data_file(bs)) {
            if (contiguous) {
                data_host = host_base;
                host_base += (uint64_t)n * cs;
            } else {
                int64_t h = qcow2_alloc_clusters(bs, (uint64_t)n * cs);
                ret = h < 0 ? h : zero_reused(bs, h, (uint64_t)n * cs, old_eof);
                if (ret < 0) {
                    goto out;
                }
                data_host = h;
            }
        }
        ret = l2_batch_add(&batch, l2_off, &table);
        if (ret < 0) {
            goto out;
        }
        fill_entries(bs, table, l2i, n, cl << s->cluster_bits, data_host);
        s->l1_table[l1i] = l2_off | QCOW_OFLAG_COPIED;
        l1_first = MIN(l1_first, l1i);
        l1_last = MAX(l1_last, l1i);
        cl += n;
    }
    ret = l2_batch_flush(&batch);
    if (ret < 0) {
        goto out;
    }
    /* the file covers every cluster now allocated (the last data run is a hole) */
    if (!has_data_file(bs) && !contiguous) {
        int64_t flen = bdrv_getlength(bs->file);
        uint64_t end = qcow2_highest_allocated_end(bs);
        if (flen >= 0 && (uint64_t)flen < end) {
            ret = bdrv_truncate(bs->file, end, false, PREALLOC_MODE_OFF, 0, NULL);
            if (ret < 0) {
                goto out;
            }
        }
    }
    /* R2/C5: refcounts and tables on disk before the L1 entries that reach them */
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        goto out;
    }
    if (l1_first != UINT32_MAX) {
        ret = qcow2_write_l1_entries(bs, l1_first, l1_last - l1_first + 1);
        if (ret == 0) {
            ret = bdrv_flush(bs->file);
        }
    }
out:
    free(batch.buf);
    if (ret < 0 && !(errp && *errp)) {
        error_setg_errno(errp, -ret, "Could not preallocate metadata");
    }
    return ret;
}

/* Clusters of guest [offset, new_length) not mapped yet (internal data). */
static int64_t count_unmapped(BlockDriverState *bs, uint64_t offset, uint64_t new_length)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t n = 0;

    if (s->extended_l2) {
        /* whole clusters: the ones without a host cluster */
        for (offset = start_of_cluster(s, offset); offset < new_length;
             offset += s->cluster_size) {
            uint64_t *l2;
            int idx, ret = qcow2_get_l2_table(bs, offset, &l2, &idx, false);
            if (ret < 0) {
                return ret;
            }
            if (!l2) {
                n++;
                continue;
            }
            n += qcow2_get_cluster_type(bs, qcow2_l2_get(s, l2, idx)) ==
                 QCOW2_CLUSTER_UNALLOCATED;
            qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        }
        return n;
    }
    while (offset < new_length) {
        uint64_t bytes = new_length - offset, host;
        Qcow2ClusterType t;
        int ret = qcow2_get_host_offset(bs, offset, &bytes, &host, &t);
        if (ret < 0) {
            return ret;
        }
        if (t == QCOW2_CLUSTER_UNALLOCATED || t == QCOW2_CLUSTER_ZERO_PLAIN) {
            n += DIV_ROUND_UP(bytes + offset_into_cluster(s, offset), s->cluster_size);
        }
        offset += bytes;
    }
    return n;
}

/*
 * Does the partial cluster at the old end @old (not cluster aligned) hold guest
 * data below @old that a new host cluster must take over: a mapping (its tail
 * may be unallocated in the file, or compressed), or backing file data?
 * Unallocated and zero clusters without backing data are new clusters like the
 * ones after them.
 */
static int head_needs_copy(BlockDriverState *bs, uint64_t old)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cl = start_of_cluster(s, old), bytes = s->cluster_size, host;
    Qcow2ClusterType t;
    int64_t blen;
    int ret = qcow2_get_host_offset(bs, cl, &bytes, &host, &t);

    if (ret < 0) {
        return ret;
    }
    if (t == QCOW2_CLUSTER_ZERO_PLAIN) {
        return 0;
    }
    if (t != QCOW2_CLUSTER_UNALLOCATED) {
        return 1;
    }
    if (!bs->backing) {
        return 0;
    }
    blen = bdrv_getlength(bs->backing);
    return blen < 0 ? blen : (uint64_t)blen > cl;
}

/*
 * Move the partial cluster at the old end @old to the preallocated host cluster
 * @host: its guest content below @old is copied there (the rest was preallocated
 * as zeros), then the L2 entry points to it and the old cluster is freed, as a
 * copy-on-write does (C1, R2, R3).
 */
static int relocate_head(BlockDriverState *bs, uint64_t old, uint64_t host)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cl = start_of_cluster(s, old), len = old - cl;
    Qcow2ClusterAlloc m = { .guest_offset = cl, .host_offset = host, .nb_clusters = 1,
                            .needs_link = true };
    g_autofree uint8_t *buf = g_malloc(len);
    uint64_t *l2;
    int idx, ret;

    ret = qcow2_co_pread(bs, cl, len, buf, 0);
    if (ret == 0) {
        ret = qcow2_pre_write_overlap_check(bs, 0, host, s->cluster_size, true);
    }
    if (ret == 0) {
        BLKDBG_EVENT(bs->file, BLKDBG_COW_WRITE);
        ret = bdrv_pwrite(bs->file, host, len, buf, 0);
    }
    if (ret == 0) {
        ret = qcow2_get_l2_table(bs, cl, &l2, &idx, true);
    }
    if (ret < 0) {
        return ret;
    }
    m.old_entries = g_new(uint64_t, 1);
    m.old_entries[0] = qcow2_l2_get(s, l2, idx);
    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
    ret = qcow2_alloc_cluster_link_l2(bs, &m);
    g_free(m.old_entries);
    return ret;
}

int qcow2_preallocate(BlockDriverState *bs, uint64_t offset, uint64_t new_length,
                      PreallocMode mode, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t nb_data, host_base, file_end;
    int head = 0, ret;

    if (mode == PREALLOC_MODE_OFF || new_length <= offset) {
        return 0;
    }
    if (has_data_file(bs) || mode == PREALLOC_MODE_METADATA) {
        return prealloc_metadata(bs, start_of_cluster(s, offset), new_length, false, 0,
                                 errp);
    }
    /*
     * falloc/full with internal data: all new data clusters in one contiguous host
     * range at the end of the file, the L2 tables wherever the allocator puts them,
     * then the file itself preallocated over that range. A partial cluster at the
     * old end is part of the new area: if it is mapped or shows backing data, it
     * moves to the first cluster of that range, keeping its content below @offset.
     */
    if (offset_into_cluster(s, offset)) {
        head = head_needs_copy(bs, offset);
        if (head < 0) {
            error_setg_errno(errp, -head, "Could not preallocate");
            return head;
        }
    }
    nb_data = count_unmapped(bs, head ? start_of_cluster(s, offset) + s->cluster_size :
                             start_of_cluster(s, offset), new_length);
    if (nb_data < 0) {
        error_setg_errno(errp, -nb_data, "Could not preallocate");
        return nb_data;
    }
    nb_data += head;
    file_end = bdrv_getlength(bs->file);
    if (file_end < 0) {
        error_setg_errno(errp, -file_end, "Could not get the image file size");
        return file_end;
    }
    ret = qcow2_relocate_reftable_for(bs, size_to_clusters(s, file_end), nb_data +
                                      DIV_ROUND_UP(nb_data, s->l2_size) + 1, &host_base);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not allocate refcount structures");
        return ret;
    }
    ret = qcow2_update_refcounts(bs, host_base, nb_data * s->cluster_size, 1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not allocate data clusters");
        return ret;
    }
    ret = bdrv_truncate(bs->file, host_base + nb_data * s->cluster_size, false, mode, 0,
                        errp);
    if (ret < 0) {
        error_prepend(errp, "Failed to resize underlying file: ");
        return ret;
    }
    if (head) {
        ret = relocate_head(bs, offset, host_base);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not preallocate");
            return ret;
        }
        host_base += s->cluster_size;
    }
    offset = start_of_cluster(s, offset) + (head ? s->cluster_size : 0);
    return prealloc_metadata(bs, offset, MAX(offset, new_length), true, host_base, errp);
}

/* ---- resize ---- */

/* Commit a new virtual size: the header field, then the in-memory state. */
static int set_virtual_size(BlockDriverState *bs, uint64_t size, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t be = GUINT64_TO_BE(size);
    int ret = bdrv_pwrite(bs->file, offsetof(QCowHeader, size), 8, &be, 0);

    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        /* the header may hold either size now: loaded bitmaps must stay in_use */
        qcow2_bitmaps_abandon(bs);
        error_setg_errno(errp, -ret, "Failed to update the image size");
        return ret;
    }
    s->size = size;
    s->l1_vm_state_index = qcow2_l1_entries_for(size, s->cluster_bits, s->l2_bits);
    return 0;
}

static int qcow2_shrink(BlockDriverState *bs, uint64_t offset, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t end = QEMU_ALIGN_UP(s->size, s->cluster_size);
    uint64_t start = QEMU_ALIGN_UP(offset, s->cluster_size);
    int ret;

    /* drop every cluster past the new end: they become unallocated */
    if (end > start) {
        ret = qcow2_discard_unmap_range(bs, start, end - start);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to discard cropped clusters");
            return ret;
        }
    }
    ret = qcow2_flush_caches(bs);
    if (ret == 0) {
        ret = qcow2_shrink_l1_table(bs, qcow2_l1_entries_for(offset, s->cluster_bits, s->l2_bits));
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to reduce the number of L2 tables");
        return ret;
    }
    /* refcount blocks left counting nothing go, as in QEMU, before the size */
    ret = qcow2_shrink_reftable(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to discard unused refblocks");
        return ret;
    }
    /* give the freed tail of the image file back */
    {
        int64_t last = qcow2_last_used_cluster(bs);
        int64_t flen = bdrv_getlength(bs->file);
        if (last >= 0 && flen > (last + 1) << s->cluster_bits) {
            ret = bdrv_truncate(bs->file, (last + 1) << s->cluster_bits, false,
                                PREALLOC_MODE_OFF, 0, NULL);
        }
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to truncate the image file");
        return ret;
    }
    ret = set_virtual_size(bs, offset, errp);
    if (ret < 0) {
        return ret;
    }
    if (bs->data_file && has_data_file(bs)) {
        /*
         * The data file ends where the image does, as in QEMU: the space of the
         * cut-off clusters goes back to the host, the bytes of the partial last
         * cluster past the end too (a raw data file keeps matching the image).
         */
        ret = bdrv_truncate(bs->data_file, offset, true, PREALLOC_MODE_OFF, 0, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* Does a backing file show data at guest offsets at and past @offset? */
static int backing_shows_past(BlockDriverState *bs, uint64_t offset)
{
    int64_t blen;

    if (!bs->backing || data_file_is_raw(bs)) {
        return 0;
    }
    blen = bdrv_getlength(bs->backing);
    return blen < 0 ? blen : (uint64_t)blen > offset;
}

/*
 * L2 entries past the old end (clusters [ALIGN_UP(@old), @new_size) within the
 * @old_l1_size L1 entries the image had) are dropped before the area becomes
 * part of the disk: a shrink clears them, but an image that was cut off another
 * way may still map old data there. A data_file_raw image keeps its 1:1 map.
 */
static int drop_stale_mappings(BlockDriverState *bs, uint64_t old, uint64_t new_size,
                               uint64_t old_l1_size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = QEMU_ALIGN_UP(old, s->cluster_size);
    uint64_t end = MIN(QEMU_ALIGN_UP(new_size, s->cluster_size),
                       old_l1_size << (s->l2_bits + s->cluster_bits));

    if (data_file_is_raw(bs) || end <= start) {
        return 0;
    }
    return qcow2_discard_unmap_range(bs, start, end - start);
}

/*
 * The partial cluster at the old end @old: what lies past @old in it must read
 * as zeros once the image grows to @new_size. Its bytes there may be old data
 * (a shrink keeps the cluster whole), a compressed cluster's, or the backing
 * file's (@backing_shows: it is longer than @old). Zeros are written through the
 * normal write path, which copies the part below @old into a new cluster where
 * the cluster cannot be written in place. An external data file was cut at
 * @old already; falloc/full growth of internal data moves the cluster instead
 * (qcow2_preallocate()); a raw data file is the guest's content as it is.
 */
static int zero_cut_tail(BlockDriverState *bs, uint64_t old, uint64_t new_size,
                         PreallocMode mode, bool backing_shows)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cl = start_of_cluster(s, old), bytes = s->cluster_size, host, len;
    Qcow2ClusterType t;
    g_autofree uint8_t *zero = NULL;
    int ret;

    if (new_size <= old || !offset_into_cluster(s, old) || data_file_is_raw(bs) ||
        (!has_data_file(bs) && !s->extended_l2 &&
         (mode == PREALLOC_MODE_FALLOC || mode == PREALLOC_MODE_FULL))) {
        return 0;
    }
    /* (extended L2: the subcluster at the old end tells) */
    ret = qcow2_get_host_offset(bs, s->extended_l2 ? old : cl, &bytes, &host, &t);
    if (ret < 0) {
        return ret;
    }
    if (!(t == QCOW2_CLUSTER_NORMAL && !has_data_file(bs)) &&
        t != QCOW2_CLUSTER_COMPRESSED &&
        !(t == QCOW2_CLUSTER_UNALLOCATED && backing_shows)) {
        return 0;
    }
    len = MIN(cl + s->cluster_size, new_size) - old;
    zero = g_malloc0(len);
    return qcow2_co_pwrite(bs, old, len, zero, 0);
}

/* Resize, with the persistent bitmaps following the new size. */
int qcow2_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                   PreallocMode prealloc, int flags, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->has_bitmaps_ext && !s->read_only && (uint64_t)offset != s->size) {
        ret = qcow2_bitmaps_can_resize(bs, errp);
        if (ret == 0) {
            ret = qcow2_bitmaps_begin_changes(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update the bitmap directory");
            }
        }
        if (ret < 0) {
            return ret;
        }
    }
    ret = truncate_image(bs, offset, exact, prealloc, false, errp);
    qcow2_bitmaps_resize(bs, s->size);
    return ret;
}

/*
 * Resize to @offset. @formatting: qcow2_format() growing a fresh image to its
 * size, whose data file was just made for that size (nothing stale to cut off)
 * or is kept as it is (read-only).
 */
static int truncate_image(BlockDriverState *bs, int64_t offset, bool exact,
                          PreallocMode prealloc, bool formatting, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old = s->size, old_l1_size = s->l1_size;
    PreallocMode mode = qcow2_effective_prealloc(prealloc, data_file_is_raw(bs));
    uint64_t l1_needed, zero_start;
    bool backing_shows, zero_new;
    int ret;

    if (s->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!QEMU_IS_ALIGNED(offset, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "The new size must be a multiple of %llu", BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    if (has_data_file(bs) && !bs->data_file) {
        error_setg(errp, "Cannot resize without access to the data file");
        return -ENOMEDIUM;
    }
    /* v3 snapshots record their disk size; v2 ones do not */
    if (s->nb_snapshots && s->version < 3) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -ENOTSUP;
    }
    if ((uint64_t)offset < old) {
        if (prealloc != PREALLOC_MODE_OFF) {
            error_setg(errp, "Preallocation can't be used for shrinking an image");
            return -EINVAL;
        }
        return qcow2_shrink(bs, offset, errp);
    }
    if ((uint64_t)offset == old && s->l1_size >= qcow2_l1_entries_for(old, s->cluster_bits, s->l2_bits)
        && old) {
        return 0;
    }

    l1_needed = qcow2_l1_entries_for(offset, s->cluster_bits, s->l2_bits);
    if (l1_needed * 8 > QCOW_MAX_L1_SIZE) {
        /* QEMU's messages for create and for resize */
        if (formatting) {
            error_setg(errp, "The image size is too large for file format 'qcow2' "
                       "(try using a larger cluster size)");
        } else {
            error_setg_errno(errp, EFBIG, "Failed to grow the L1 table");
        }
        return -EFBIG;
    }
    /*
     * A backing file longer than the image would show through the new area: it
     * becomes zero clusters (as in QEMU; unless falloc/full preallocation gives
     * it zeroed data clusters in the image file). Version 2 has no zero flag.
     */
    ret = (uint64_t)offset > old ? backing_shows_past(bs, old) : 0;
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not get the backing file size");
        return ret;
    }
    backing_shows = ret;
    /* (extended L2: preallocated subclusters are not allocated, as in QEMU) */
    zero_new = backing_shows && (has_data_file(bs) || s->extended_l2 ||
                                 (mode != PREALLOC_MODE_FALLOC &&
                                  mode != PREALLOC_MODE_FULL));
    if (zero_new && s->version < 3) {
        error_setg_errno(errp, ENOTSUP, "Failed to zero out new clusters");
        return -ENOTSUP;
    }
    ret = qcow2_grow_l1_table(bs, l1_needed, true);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to grow the L1 table");
        return ret;
    }
    /*
     * The data file grows first. A raw one keeps whatever it holds past the old
     * end (docs/data-file-raw.md); any other is cut at the old end first, so that
     * the new area reads as zeros whatever was left there.
     */
    if (bs->data_file && !bdrv_is_read_only(bs->data_file)) {
        int64_t dlen = bdrv_getlength(bs->data_file);
        if (dlen < 0) {
            error_setg_errno(errp, -dlen, "Could not get the data file size");
            return dlen;
        }
        if (!data_file_is_raw(bs) && !formatting && dlen > (int64_t)old) {
            ret = bdrv_truncate(bs->data_file, old, true, PREALLOC_MODE_OFF, 0, errp);
            if (ret < 0) {
                error_prepend(errp, "Could not resize the data file: ");
                return ret;
            }
            dlen = old;
        }
        /* preallocation maps whole clusters: the data file covers the last one */
        int64_t want = mode == PREALLOC_MODE_OFF ? offset :
                       (int64_t)QEMU_ALIGN_UP(offset, s->cluster_size);
        if (dlen < want || mode == PREALLOC_MODE_FALLOC) {
            PreallocMode dmode = mode == PREALLOC_MODE_METADATA ? PREALLOC_MODE_OFF : mode;
            int64_t target = MAX(dlen, want);
            if (dmode == PREALLOC_MODE_FALLOC || dmode == PREALLOC_MODE_FULL) {
                /* preallocate only what is new: existing bytes stay as they are */
                ret = dlen < want ? bdrv_truncate(bs->data_file, target, false, dmode, 0,
                                                  errp) : 0;
            } else {
                ret = bdrv_truncate(bs->data_file, target, false, PREALLOC_MODE_OFF, 0,
                                    errp);
            }
            if (ret < 0) {
                error_prepend(errp, "Could not resize the data file: ");
                return ret;
            }
        }
    }
    /* everything past the old end reads as zeros before the header says it exists */
    ret = drop_stale_mappings(bs, old, offset, old_l1_size);
    if (ret == 0) {
        ret = zero_cut_tail(bs, old, offset, mode, backing_shows);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to clear the area past the old end");
        return ret;
    }
    ret = qcow2_preallocate(bs, old, offset, mode, errp);
    if (ret < 0) {
        return ret;
    }
    zero_start = QEMU_ALIGN_UP(old, s->cluster_size);
    if (zero_new && (uint64_t)offset > zero_start) {
        ret = qcow2_cluster_zeroize(bs, zero_start,
                                    QEMU_ALIGN_UP(offset, s->cluster_size) - zero_start, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to zero out new clusters");
            return ret;
        }
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to flush the metadata");
        return ret;
    }
    return set_virtual_size(bs, offset, errp);
}

/* ---- qemu-img create ---- */

static int parse_create_opts(JsonObject *opts, Qcow2CreateParams *p, GError **errp)
{
    GError *local = NULL;
    g_autofree char *compat = opts_get_str(opts, "compat");
    g_autofree char *pa = opts_get_str(opts, "preallocation");
    g_autofree char *ct = opts_get_str(opts, "compression_type");

    p->has_size = opts_has(opts, "size");
    p->size = opts_get_size(opts, "size", 0, &local);
    p->cluster_size = local ? 0 : opts_get_size(opts, "cluster_size", DEFAULT_CLUSTER_SIZE,
                                                 &local);
    p->lazy_refcounts = local ? false : opts_get_bool(opts, "lazy_refcounts", false, &local);
    p->refcount_bits = local ? 0 : opts_get_int(opts, "refcount_bits", 16, &local);
    p->data_file_raw = local ? false : opts_get_bool(opts, "data_file_raw", false, &local);
    p->keep_data_file = local ? false : opts_get_bool(opts, "keep_data_file", false, &local);
    if (local) {
        if (g_str_has_prefix(local->message, "Parameter 'keep_data_file' expects")) {
            g_autofree char *v = opts_get_str(opts, "keep_data_file");
            error_setg(errp, "Invalid value '%s' for 'keep_data_file': Must be 'on' or "
                       "'off'", v);
            g_error_free(local);
            return -EINVAL;
        }
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (parse_version(compat, &p->version, errp) < 0) {
        return -EINVAL;
    }
    p->prealloc = PREALLOC_MODE_OFF;
    if (pa) {
        int m = prealloc_mode_parse(pa);
        if (m < 0) {
            error_setg(errp, "Parameter 'preallocation' does not accept value '%s'", pa);
            return -EINVAL;
        }
        p->prealloc = m;
    }
    p->compression_type = QCOW2_COMPRESSION_TYPE_ZLIB;
    if (ct && !strcmp(ct, "zstd")) {
        p->compression_type = QCOW2_COMPRESSION_TYPE_ZSTD;
    } else if (ct && strcmp(ct, "zlib")) {
        error_setg(errp, "Parameter 'compression-type' does not accept value '%s'", ct);
        return -EINVAL;
    }
    p->extended_l2 = opts_get_bool(opts, "extended_l2", false, &local);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (qcow2_crypto_parse_create_opts(opts, &p->crypto, &p->has_crypto, errp) < 0) {
        return -EINVAL;
    }
    p->backing_file = opts_get_str(opts, "backing_file");
    p->backing_fmt = opts_get_str(opts, "backing_fmt");
    p->data_file = opts_get_str(opts, "data_file");
    p->has_data_file = p->data_file && *p->data_file;
    return 0;
}

/* The size of a backing file, for create without a size. */
static int backing_size(Qcow2CreateParams *p, const char *filename, GError **errp)
{
    g_autoptr(JsonObject) o = json_object_new();
    g_autofree char *path = bdrv_path_combine(filename, p->backing_file);
    BlockDriverState *b;
    int64_t len;

    if (p->backing_fmt) {
        opts_set_str(o, "driver", p->backing_fmt);
    }
    b = bdrv_open(path, o, BDRV_O_NO_BACKING | BDRV_O_FORCE_SHARE, errp);
    if (!b) {
        error_prepend(errp, "Could not open backing image: ");
        return -ENOENT;
    }
    len = bdrv_getlength(b);
    bdrv_unref(b);
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get backing image size");
        return len;
    }
    p->size = len;
    p->has_size = true;
    return 0;
}

/*
 * qemu-img create -f qcow2: every option is checked first; then the data file and
 * the image file are created (or opened) and locked as the qcow2 node will lock
 * them, and only then emptied and formatted. A failure removes the files this
 * call created (QEMU removes even files that existed; we never do).
 */
int qcow2_create_opts(const char *filename, JsonObject *opts, GError **errp)
{
    Qcow2CreateParams p = { 0 };
    BlockDriverState *file = NULL, *data = NULL;
    bool file_created = false, data_created = false;
    int ret;

    ret = parse_create_opts(opts, &p, errp);
    if (ret < 0) {
        goto out;
    }
    if (!p.has_size && p.backing_file) {
        ret = backing_size(&p, filename, errp);
        if (ret < 0) {
            goto out;
        }
    }
    if (!p.has_size) {
        error_setg(errp, "Image creation needs a size parameter");
        ret = -EINVAL;
        goto out;
    }
    /* as QEMU's qemu-img create: a whole number of sectors */
    if (p.size <= UINT64_MAX - (BDRV_SECTOR_SIZE - 1)) {
        p.size = QEMU_ALIGN_UP(p.size, BDRV_SECTOR_SIZE);
    }
    ret = validate_params(&p, errp);
    if (ret < 0) {
        goto out;
    }
    if (p.has_data_file && bdrv_filename_is_special(p.data_file)) {
        error_setg(errp, "The data file name '%s' looks like a protocol or json: "
                   "filename; only plain local file names are allowed", p.data_file);
        ret = -EINVAL;
        goto out;
    }

    /* every file held before any is changed; keep_data_file's is only read */
    if (p.has_data_file) {
        if (p.keep_data_file) {
            data = bdrv_open_file(p.data_file, 0, errp);
        } else {
            data = bdrv_create_file_open(p.data_file, QCOW2_FILE_PERM,
                                         QCOW2_DATA_FILE_SHARED, &data_created, errp);
        }
        if (!data) {
            ret = -ENOENT;
            goto out;
        }
    }
    file = bdrv_create_file_open(filename, QCOW2_FILE_PERM, QCOW2_FILE_SHARED,
                                 &file_created, errp);
    if (!file) {
        ret = -EIO;
        goto out;
    }

    if (data && !p.keep_data_file) {
        PreallocMode dmode = p.prealloc == PREALLOC_MODE_FALLOC ||
                             p.prealloc == PREALLOC_MODE_FULL ? p.prealloc
                                                              : PREALLOC_MODE_OFF;
        ret = bdrv_create_file_fill(data, p.size, dmode, errp);
        if (ret < 0) {
            /* QEMU preallocates the data file while resizing the new image */
            error_prepend(errp, "Could not resize image: ");
            goto out;
        }
    }
    ret = bdrv_create_file_fill(file, 0, PREALLOC_MODE_OFF, errp);
    if (ret < 0) {
        goto out;
    }
    ret = qcow2_format(file, data, p.has_data_file ? p.data_file : NULL, &p, errp);
out:
    bdrv_create_file_close(file, file_created, ret < 0);
    if (data && p.keep_data_file) {
        bdrv_unref(data);
    } else {
        bdrv_create_file_close(data, data_created, ret < 0);
    }
    params_clear(&p);
    return ret;
}

/* ---- blockdev-create ---- */

static BlockDriverState *qmp_node(JsonObject *opts, const char *key, GError **errp)
{
    JsonNode *n = opts_has(opts, key) ? json_object_get_member(opts, key) : NULL;
    BlockDriverState *bs;

    if (!n) {
        return NULL;
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        bs = bdrv_find_node(json_node_get_string(n));
        if (!bs) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       json_node_get_string(n), json_node_get_string(n));
        }
        return bs;
    }
    error_setg(errp, "Invalid parameter type for '%s', expected: string", key);
    return NULL;
}

/* QMP blockdev-create member names -> qemu-img -o names */
static const char *const qmp_to_create_opt[][2] = {
    { "size", "size" }, { "version", "compat" }, { "cluster-size", "cluster_size" },
    { "preallocation", "preallocation" }, { "lazy-refcounts", "lazy_refcounts" },
    { "refcount-bits", "refcount_bits" }, { "backing-file", "backing_file" },
    { "backing-fmt", "backing_fmt" }, { "data-file-raw", "data_file_raw" },
    { "compression-type", "compression_type" }, { "extended-l2", "extended_l2" },
    { "encrypt", "encrypt" },
};

int qcow2_create_qmp(JsonObject *opts, GError **errp)
{
    Qcow2CreateParams p = { 0 };
    g_autoptr(JsonObject) o = json_object_new();
    BlockDriverState *file, *data = NULL;
    int ret;

    file = qmp_node(opts, "file", errp);
    if (!file) {
        if (errp && !*errp) {
            error_setg(errp, "Parameter 'file' is missing");
        }
        return -EINVAL;
    }
    if (opts_has(opts, "data-file")) {
        data = qmp_node(opts, "data-file", errp);
        if (!data) {
            return -EINVAL;
        }
        /* the name stored in the image: the node's file name */
        opts_set_str(o, "data_file", bdrv_get_filename(data));
    }
    if (!opts_has(opts, "size")) {
        error_setg(errp, "Parameter 'size' is missing");
        return -EINVAL;
    }
    /* one parser for both: QMP names become -o names (values keep their types) */
    for (size_t i = 0; i < G_N_ELEMENTS(qmp_to_create_opt); i++) {
        if (opts_has(opts, qmp_to_create_opt[i][0])) {
            json_object_set_member(o, qmp_to_create_opt[i][1],
                                   json_node_copy(json_object_get_member(
                                       opts, qmp_to_create_opt[i][0])));
        }
    }
    /* blockdev-create formats onto an existing data file node as it is */
    ret = parse_create_opts(o, &p, errp);
    if (ret == 0) {
        ret = validate_params(&p, errp);
    }
    if (ret == 0) {
        ret = qcow2_format(file, data, p.has_data_file ? p.data_file : NULL, &p, errp);
    }
    params_clear(&p);
    return ret;
}

/* ---- amend ---- */

static int amend_refcount_bits(BlockDriverState *bs, int bits, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t new_max = bits == 64 ? UINT64_MAX : (1ULL << bits) - 1;
    uint64_t nb = qcow2_refcount_covered_clusters(bs);
    int ret;

    /* shared clusters (internal snapshots) may need more than the new width */
    for (uint64_t c = 0; bits < s->refcount_bits && c < nb; c++) {
        uint64_t rc = 0;
        if (qcow2_get_refcount(bs, c, &rc) == 0 && rc > new_max) {
            error_setg(errp, "Cannot decrease refcount entry width to %i bits: Cluster "
                       "at offset %#" PRIx64 " has a refcount of %" PRIu64, bits,
                       c << s->cluster_bits, rc);
            return -EINVAL;
        }
    }
    ret = qcow2_change_refcount_order(bs, ctz64(bits));

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to change the refcount width");
    }
    return ret;
}

/*
 * A v2 snapshot has no disk size of its own: it is taken to be the image's.
 * Snapshots of another size (the image has been resized since) would change
 * size, so they prevent the downgrade, as in QEMU.
 */
static int check_snapshots_for_v2(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) snaps = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    int ret = qcow2_read_snapshots(bs, snaps, errp);

    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < snaps->len; i++) {
        Qcow2SnapshotInfo *sn = snaps->pdata[i];
        if (sn->disk_size != s->size) {
            error_setg(errp, "Internal snapshots prevent downgrade of image");
            return -ENOTSUP;
        }
    }
    return 0;
}

static int downgrade_to_v2(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (has_data_file(bs)) {
        error_setg(errp, "Cannot downgrade an image with a data file");
        return -ENOTSUP;
    }
    if (s->refcount_order != 4) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -ENOTSUP;
    }
    if (s->incompatible_features & QCOW2_INCOMPAT_EXTL2) {
        error_setg(errp, "Cannot downgrade an image with incompatible features %#"
                   PRIx64 " set", (uint64_t)QCOW2_INCOMPAT_EXTL2);
        return -ENOTSUP;
    }
    if (s->has_bitmaps_ext) {
        error_setg(errp, "Cannot downgrade an image with bitmaps");
        return -ENOTSUP;
    }
    ret = check_snapshots_for_v2(bs, errp);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_expand_zero_clusters(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to turn zero into data clusters");
        return ret;
    }
    ret = qcow2_mark_clean(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to make the image clean");
        return ret;
    }
    s->version = 2;
    s->compatible_features = 0;
    s->incompatible_features = 0;
    s->autoclear_features = 0;
    s->use_lazy_refcounts = false;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the image header");
    }
    return ret;
}

int qcow2_amend(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GError *local = NULL;
    g_autofree char *compat = opts_get_str(opts, "compat");
    int version = s->version, ret;
    bool has_lazy = opts_has(opts, "lazy_refcounts");
    bool lazy = opts_get_bool(opts, "lazy_refcounts", false, &local);
    bool has_bits = opts_has(opts, "refcount_bits");
    int64_t bits = opts_get_int(opts, "refcount_bits", s->refcount_bits,
                                local ? NULL : &local);
    bool has_size = opts_has(opts, "size");
    uint64_t size = opts_get_size(opts, "size", s->size, local ? NULL : &local);
    bool has_raw = opts_has(opts, "data_file_raw");
    bool raw = opts_get_bool(opts, "data_file_raw", false, local ? NULL : &local);
    bool has_df = opts_has(opts, "data_file");
    g_autofree char *df = opts_get_str(opts, "data_file");
    g_autofree char *bfile = opts_get_str(opts, "backing_file");
    g_autofree char *bfmt = opts_get_str(opts, "backing_fmt");
    g_autoptr(JsonObject) enc = json_object_new();
    GList *members = json_object_get_members(opts);

    for (GList *l = members; l; l = l->next) {
        const char *k = l->data;
        if (g_str_has_prefix(k, "encrypt.")) {
            json_object_set_member(enc, k + 8, json_object_dup_member(opts, k));
        } else if (!strcmp(k, "encrypt") && opts_get_object(opts, k)) {
            opts_merge(enc, opts_get_object(opts, k));
        }
    }
    g_list_free(members);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (opts_has(enc, "format")) {
        g_autofree char *ef = opts_get_str(enc, "format");
        if (ef && strcmp(ef, "luks")) {
            error_setg(errp, "Amend can't be used to change the qcow2 encryption "
                       "format");
            return -EINVAL;
        }
        json_object_remove_member(enc, "format");
    }
    /* only the backing file and format the image already names pass (both) */
    if ((opts_has(opts, "backing_file") || opts_has(opts, "backing_fmt")) &&
        (g_strcmp0(bfile, bs->backing_file && *bs->backing_file ?
                   bs->backing_file : NULL) ||
         g_strcmp0(bfmt, bs->backing_format && *bs->backing_format ?
                   bs->backing_format : NULL))) {
        error_setg(errp, "Cannot amend the backing file\n"
                   "You can use 'qemu-img rebase' instead.");
        return -ENOTSUP;
    }
    if (compat && parse_version(compat, &version, NULL) < 0) {
        error_setg(errp, "Unknown compatibility level %s", compat);
        return -EINVAL;
    }
    if (has_bits && (!is_power_of_2(bits) || bits > 64)) {
        error_setg(errp, "Refcount width must be a power of two and may not exceed 64 "
                   "bits");
        return -EINVAL;
    }
    /* a new width other than 16 for a v2 image; keeping a wider one is the other */
    if (version < 3 && has_bits && bits != 16 && bits != s->refcount_bits) {
        error_setg(errp, "Refcount widths other than 16 bits require compatibility "
                   "level 1.1 or above (use compat=1.1 or greater)");
        return -EINVAL;
    }
    if (version < 3 && (has_bits ? bits : s->refcount_bits) != 16) {
        error_setg(errp, "compat=0.10 requires refcount_bits=16");
        return -EINVAL;
    }
    if (version < 3 && has_lazy && lazy) {
        error_setg(errp, "Lazy refcounts only supported with compatibility level 1.1 "
                   "and above (use compat=1.1 or greater)");
        return -EINVAL;
    }
    if (has_df && df && *df && !has_data_file(bs)) {
        error_setg(errp, "data-file can only be set for images that use an external "
                   "data file");
        return -EINVAL;
    }
    if (has_df && df && *df && bdrv_filename_is_special(df)) {
        error_setg(errp, "The data file name '%s' looks like a protocol or json: "
                   "filename; only plain local file names are allowed", df);
        return -EINVAL;
    }
    if (has_raw && raw && !data_file_is_raw(bs)) {
        /* the existing mapping was never promised to be 1:1 */
        error_setg(errp, "data-file-raw cannot be set on existing images");
        return -EINVAL;
    }
    if (has_size && !QEMU_IS_ALIGNED(size, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "The new size must be a multiple of %llu", BDRV_SECTOR_SIZE);
        return -EINVAL;
    }

    /* apply: version upgrade first, downgrade last */
    if (version > s->version) {
        /* v3 entries carry the disk size (and the large VM state size) */
        ret = qcow2_snapshots_upgrade(bs, errp);
        if (ret < 0) {
            return ret;
        }
        s->version = version;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to update the image header");
            return ret;
        }
    }
    if (has_df) {
        g_free(s->image_data_file);
        s->image_data_file = df && *df ? g_strdup(df) : NULL;
    }
    if (has_raw && !raw) {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    }
    if (has_lazy && version >= 3) {
        if (lazy) {
            s->compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        } else {
            ret = qcow2_mark_clean(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Failed to make the image clean");
                return ret;
            }
            s->compatible_features &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
        }
        s->use_lazy_refcounts = lazy;
    }
    if (has_df || has_raw || has_lazy) {
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to update the image header");
            return ret;
        }
    }
    if (json_object_get_size(enc)) {
        ret = qcow2_crypto_amend(bs, enc, force, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (has_bits && bits != s->refcount_bits) {
        ret = amend_refcount_bits(bs, bits, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (has_size && size != s->size) {
        /* the same decision point as resize: a raw data file grows 1:1 */
        ret = qcow2_truncate(bs, size, false, PREALLOC_MODE_OFF, 0, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (version < s->version) {
        ret = downgrade_to_v2(bs, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}
