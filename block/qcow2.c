/*
 * qcow2 driver: probing, opening (header, extensions, feature bits, data file and
 * backing children, caches), the dirty/corrupt flags, rewriting the header,
 * closing, info, and the driver vtable. Guest I/O lives in qcow2-io.c.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/qcow2.h"

static const char *const qcow2_runtime_opts[] = {
    "data-file", "backing", "lazy-refcounts", "pass-discard-request",
    "pass-discard-snapshot", "pass-discard-other", "overlap-check", "cache-size",
    "l2-cache-size", "l2-cache-entry-size", "refcount-cache-size",
    "cache-clean-interval", "encrypt", "discard-no-unref", NULL,
};

static const Qcow2Feature known_features[] = {
    { 0, 0, "dirty bit" },
    { 0, 1, "corrupt bit" },
    { 0, 2, "external data file" },
    { 0, 3, "compression type" },
    { 0, 4, "extended L2 entries" },
    { 1, 0, "lazy refcounts" },
    { 2, 0, "bitmaps" },
    { 2, 1, "raw external data" },
};

static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    /* any version from 2 up: open() then names the unsupported ones */
    if (buf_size >= 8 && ldl_be(buf) == QCOW_MAGIC && ldl_be(buf + 4) >= 2) {
        return 100;
    }
    return 0;
}

/* ---- header ---- */

static void header_to_cpu(QCowHeader *h)
{
    h->magic = GUINT32_FROM_BE(h->magic);
    h->version = GUINT32_FROM_BE(h->version);
    h->backing_file_offset = GUINT64_FROM_BE(h->backing_file_offset);
    h->backing_file_size = GUINT32_FROM_BE(h->backing_file_size);
    h->cluster_bits = GUINT32_FROM_BE(h->cluster_bits);
    h->size = GUINT64_FROM_BE(h->size);
    h->crypt_method = GUINT32_FROM_BE(h->crypt_method);
    h->l1_size = GUINT32_FROM_BE(h->l1_size);
    h->l1_table_offset = GUINT64_FROM_BE(h->l1_table_offset);
    h->refcount_table_offset = GUINT64_FROM_BE(h->refcount_table_offset);
    h->refcount_table_clusters = GUINT32_FROM_BE(h->refcount_table_clusters);
    h->nb_snapshots = GUINT32_FROM_BE(h->nb_snapshots);
    h->snapshots_offset = GUINT64_FROM_BE(h->snapshots_offset);
    h->incompatible_features = GUINT64_FROM_BE(h->incompatible_features);
    h->compatible_features = GUINT64_FROM_BE(h->compatible_features);
    h->autoclear_features = GUINT64_FROM_BE(h->autoclear_features);
    h->refcount_order = GUINT32_FROM_BE(h->refcount_order);
    h->header_length = GUINT32_FROM_BE(h->header_length);
}

/* "Unsupported qcow2 feature(s): a, b, Unknown incompatible feature: 20" */
static void report_unsupported(BDRVQcow2State *s, uint64_t mask, GError **errp)
{
    g_autoptr(GString) msg = g_string_new(NULL);
    uint64_t unnamed = 0;

    for (int bit = 0; bit < 64; bit++) {
        const char *name = NULL;
        if (!(mask & (1ULL << bit))) {
            continue;
        }
        for (int i = 0; i < s->nb_features; i++) {
            if (s->feature_table[i].type == 0 && s->feature_table[i].bit == bit) {
                name = s->feature_table[i].name;
                break;
            }
        }
        if (name) {
            g_string_append_printf(msg, "%s%.46s", msg->len ? ", " : "", name);
        } else {
            unnamed |= 1ULL << bit;
        }
    }
    if (unnamed) {
        g_string_append_printf(msg, "%sUnknown incompatible feature: %" PRIx64,
                               msg->len ? ", " : "", unnamed);
    }
    error_setg(errp, "Unsupported qcow2 feature(s): %s", msg->str);
}

static void free_unknown_ext(gpointer p)
{
    Qcow2UnknownExt *e = p;

    g_free(e->data);
    g_free(e);
}

/* Parse the header extensions between @start and @end. */
static int read_extensions(BlockDriverState *bs, const uint8_t *buf, uint64_t start,
                           uint64_t end, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off = start;
    int ret;

    while (off < end) {
        uint32_t magic, len;
        const uint8_t *data = buf + off + 8;

        /* an extension header that crosses the end is too large too */
        if (end - off < 8) {
            error_setg(errp, "Header extension too large");
            return -EINVAL;
        }
        magic = ldl_be(buf + off);
        len = ldl_be(buf + off + 4);
        off += 8;
        if (len > end - off) {
            error_setg(errp, "Header extension too large");
            return -EINVAL;
        }
        switch (magic) {
        case QCOW2_EXT_MAGIC_END:
            return 0;
        case QCOW2_EXT_MAGIC_BACKING_FORMAT:
            if (len > 15) {
                error_setg(errp, "ERROR: ext_backing_format: len=%u too large (>=%u)",
                           len, 16);
                return -EINVAL;
            }
            g_free(s->image_backing_format);
            s->image_backing_format = g_strndup((const char *)data, len);
            break;
        case QCOW2_EXT_MAGIC_FEATURE_TABLE:
            g_free(s->feature_table);
            /* a short last entry counts, zero-padded (QEMU's 036 has 14-byte ones) */
            s->nb_features = DIV_ROUND_UP(len, sizeof(Qcow2Feature));
            s->feature_table = g_malloc0(s->nb_features * sizeof(Qcow2Feature));
            memcpy(s->feature_table, data, len);
            break;
        case QCOW2_EXT_MAGIC_DATA_FILE:
            g_free(s->image_data_file);
            s->image_data_file = g_strndup((const char *)data, len);
            if (strlen(s->image_data_file) != len) {
                error_setg(errp, "Invalid data file name");
                return -EINVAL;
            }
            break;
        case QCOW2_EXT_MAGIC_BITMAPS:
            if (len != 24) {
                error_setg(errp, "bitmaps_ext: Invalid extension length");
                return -EINVAL;
            }
            s->has_bitmaps_ext = true;
            s->nb_bitmaps = ldl_be(data);
            s->bitmap_directory_size = ldq_be(data + 8);
            s->bitmap_directory_offset = ldq_be(data + 16);
            if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
                /* stale: not used, and a read-write open drops it (qcow2_open) */
                warn_report_unterminated("a program lacking bitmap support modified "
                                         "this file, so all bitmaps are now considered "
                                         "inconsistent\nSome clusters may be leaked, "
                                         "run 'qemu-img check -r' on the image file "
                                         "to fix.");
                s->has_bitmaps_ext = false;
                s->stale_bitmaps_ext = true;
            } else {
                ret = qcow2_bitmaps_check_ext(bs, ldl_be(data + 4), errp);
                if (ret < 0) {
                    return ret;
                }
            }
            /* fall through: kept verbatim as well */
            /* FALLTHROUGH */
        default: {
            Qcow2UnknownExt *e = g_new0(Qcow2UnknownExt, 1);
            e->magic = magic;
            e->len = len;
            e->data = g_memdup2(data, len);
            g_ptr_array_add(s->unknown_exts, e);
            break;
        }
        case QCOW2_EXT_MAGIC_CRYPTO_HEADER:
            if (len != 16) {
                error_setg(errp, "Invalid encryption header extension length: %u", len);
                return -EINVAL;
            }
            s->crypto_header_offset = ldq_be(data);
            s->crypto_header_length = ldq_be(data + 8);
            s->has_crypto_header = true;
            break;
        }
        off += QEMU_ALIGN_UP(len, 8);
    }
    return 0;
}

/* Serialise the header cluster: header, extensions in QEMU's order, backing name. */
static int build_header(BlockDriverState *bs, uint8_t *buf, size_t buflen)
{
    BDRVQcow2State *s = bs->opaque;
    QCowHeader h = { 0 };
    size_t hlen = s->version >= 3 ? QEMU_ALIGN_UP(QCOW2_V3_HEADER_SIZE + 1, 8)
                                   : QCOW2_V2_HEADER_SIZE;
    size_t off;

    memset(buf, 0, buflen);
    h.magic = GUINT32_TO_BE(QCOW_MAGIC);
    h.version = GUINT32_TO_BE(s->version);
    h.cluster_bits = GUINT32_TO_BE(s->cluster_bits);
    h.size = GUINT64_TO_BE(s->size);
    h.crypt_method = GUINT32_TO_BE(s->crypt_method);
    h.l1_size = GUINT32_TO_BE(s->l1_size);
    h.l1_table_offset = GUINT64_TO_BE(s->l1_table_offset);
    h.refcount_table_offset = GUINT64_TO_BE(s->refcount_table_offset);
    h.refcount_table_clusters =
        GUINT32_TO_BE(size_to_clusters(s, (uint64_t)s->refcount_table_size * 8));
    h.nb_snapshots = GUINT32_TO_BE(s->nb_snapshots);
    h.snapshots_offset = GUINT64_TO_BE(s->snapshots_offset);
    if (s->version >= 3) {
        h.incompatible_features = GUINT64_TO_BE(s->incompatible_features);
        h.compatible_features = GUINT64_TO_BE(s->compatible_features);
        h.autoclear_features = GUINT64_TO_BE(s->autoclear_features);
        h.refcount_order = GUINT32_TO_BE(s->refcount_order);
        h.header_length = GUINT32_TO_BE(hlen);
        h.compression_type = s->compression_type;
    }
    memcpy(buf, &h, MIN(hlen, sizeof(h)));
    off = hlen;

#define PUT_EXT(magic_, data_, len_) do {                               \
        size_t l_ = (len_);                                             \
        if (off + 8 + QEMU_ALIGN_UP(l_, 8) + 8 > buflen) {              \
            return -ENOSPC;                                             \
        }                                                               \
        stl_be(buf + off, (magic_));                                    \
        stl_be(buf + off + 4, l_);                                      \
        if (l_) {                                                       \
            memcpy(buf + off + 8, (data_), l_);                         \
        }                                                               \
        off += 8 + QEMU_ALIGN_UP(l_, 8);                                \
    } while (0)

    if (s->image_backing_format && bs->backing_file) {
        PUT_EXT(QCOW2_EXT_MAGIC_BACKING_FORMAT, s->image_backing_format,
                strlen(s->image_backing_format));
    }
    if (s->image_data_file) {
        PUT_EXT(QCOW2_EXT_MAGIC_DATA_FILE, s->image_data_file, strlen(s->image_data_file));
    }
    if (s->crypt_method == QCOW_CRYPT_LUKS && s->has_crypto_header) {
        uint8_t ext[16];
        stq_be(ext, s->crypto_header_offset);
        stq_be(ext + 8, s->crypto_header_length);
        PUT_EXT(QCOW2_EXT_MAGIC_CRYPTO_HEADER, ext, sizeof(ext));
    }
    {
        /*
         * The feature table is optional. QEMU 7.2 writes it only with clusters
         * larger than 4 KiB; we do the same so that headers come out identical.
         */
        size_t others = 8 + (bs->backing_file ? strlen(bs->backing_file) : 0);
        for (guint i = 0; i < s->unknown_exts->len; i++) {
            others += 8 + QEMU_ALIGN_UP(((Qcow2UnknownExt *)s->unknown_exts->pdata[i])->len,
                                        8);
        }
        if (s->version >= 3 && s->cluster_size > 4096 &&
            off + 8 + sizeof(known_features) + others <= buflen) {
            PUT_EXT(QCOW2_EXT_MAGIC_FEATURE_TABLE, known_features,
                    sizeof(known_features));
        }
    }
    for (guint i = 0; i < s->unknown_exts->len; i++) {
        Qcow2UnknownExt *e = s->unknown_exts->pdata[i];
        PUT_EXT(e->magic, e->data, e->len);
    }
#undef PUT_EXT
    off += 8;   /* end-of-extensions marker (zeros) */

    if (bs->backing_file) {
        size_t n = strlen(bs->backing_file);
        if (off + n > buflen) {
            return -ENOSPC;
        }
        memcpy(buf + off, bs->backing_file, n);
        stq_be(buf + offsetof(QCowHeader, backing_file_offset), off);
        stl_be(buf + offsetof(QCowHeader, backing_file_size), n);
        off += n;
    }
    return off;
}

int qcow2_update_header(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    size_t buflen = MIN(s->cluster_size, 64 * 1024);
    g_autofree uint8_t *buf = NULL;
    int len;

    if (s->cluster_size < (int)buflen) {
        buflen = s->cluster_size;
    }
    buf = g_malloc0(s->cluster_size);
    len = build_header(bs, buf, s->cluster_size);
    if (len < 0) {
        return len;
    }
    /* rewrite the whole first cluster: nothing else may live there */
    return bdrv_pwrite(bs->file, 0, s->cluster_size, buf, 0);
}

static int write_incompat_bits(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t v = GUINT64_TO_BE(s->incompatible_features);

    if (s->version < 3) {
        return 0;
    }
    return bdrv_pwrite(bs->file, offsetof(QCowHeader, incompatible_features), 8, &v, 0);
}

int qcow2_mark_dirty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        return 0;
    }
    ret = bdrv_flush(bs->file);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features |= QCOW2_INCOMPAT_DIRTY;
    ret = write_incompat_bits(bs);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    s->header_dirty_set = true;
    return ret;
}

int qcow2_mark_clean(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (!(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    ret = write_incompat_bits(bs);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    s->header_dirty_set = false;
    return ret;
}

int qcow2_mark_corrupt(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
    return write_incompat_bits(bs);
}

void qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (fatal && !s->read_only) {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further corruption events "
                "will be suppressed\n", msg);
        if (!s->signaled_corruption) {
            qcow2_mark_corrupt(bs);
        }
        s->read_only = true;       /* no further writes */
        qcow2_set_dead(bs);        /* nor requests at all (QEMU drops the driver) */
    } else if (!s->signaled_corruption) {
        fprintf(stderr, "qcow2: Image is corrupt: %s; further non-fatal corruption events "
                "will be suppressed\n", msg);
    }
    s->signaled_corruption = true;
}

/* ---- cache options ---- */

int qcow2_read_cache_options(BlockDriverState *bs, JsonObject *opts, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    GError *local = NULL;
    bool has_total = opts_has(opts, "cache-size");
    bool has_l2 = opts_has(opts, "l2-cache-size");
    bool has_rc = opts_has(opts, "refcount-cache-size");
    uint64_t total = opts_get_size(opts, "cache-size", 0, &local);
    uint64_t l2 = opts_get_size(opts, "l2-cache-size", 0, local ? NULL : &local);
    uint64_t rc = opts_get_size(opts, "refcount-cache-size", 0, local ? NULL : &local);
    /* enough L2 to cover the whole image, up to the default maximum */
    uint64_t l2_needed = MAX(DIV_ROUND_UP(s->size, (uint64_t)s->cluster_size /
                                          (8 << s->l2_slot_shift)),
                             (uint64_t)MIN_L2_CACHE_CLUSTERS * s->cluster_size);
    uint64_t min_rc = (uint64_t)MIN_REFCOUNT_CACHE_CLUSTERS * s->cluster_size;

    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (has_total && has_l2 && has_rc) {
        error_setg(errp, "cache-size, l2-cache-size and refcount-cache-size may not be "
                   "set at the same time");
        return -EINVAL;
    }
    if (has_total) {
        if (has_l2 && l2 > total) {
            error_setg(errp, "l2-cache-size may not exceed cache-size");
            return -EINVAL;
        }
        if (has_rc && rc > total) {
            error_setg(errp, "refcount-cache-size may not exceed cache-size");
            return -EINVAL;
        }
        if (has_l2) {
            rc = total - l2;
        } else if (has_rc) {
            l2 = total - rc;
        } else {
            l2 = MIN(total - MIN(total, min_rc), l2_needed);
            rc = total - l2;
        }
    } else {
        if (!has_l2) {
            l2 = MIN(l2_needed, (uint64_t)((bs->open_flags & BDRV_O_SEQUENTIAL) ?
                                           SEQUENTIAL_L2_CACHE_SIZE :
                                           DEFAULT_L2_CACHE_MAX_SIZE));
        }
        if (!has_rc) {
            rc = (uint64_t)DEFAULT_REFCOUNT_CACHE_CLUSTERS * s->cluster_size;
        }
    }
    if (opts_has(opts, "l2-cache-entry-size")) {
        /* validated as QEMU does; our L2 cache always holds whole tables */
        uint64_t entry = opts_get_size(opts, "l2-cache-entry-size", 0, &local);

        if (local) {
            error_propagate(errp, local);
            return -EINVAL;
        }
        if (entry < 512 || entry > (uint64_t)s->cluster_size || (entry & (entry - 1))) {
            error_setg(errp, "L2 cache entry size must be a power of two between %d "
                       "and the cluster size (%d)", 512, s->cluster_size);
            return -EINVAL;
        }
    }
    /* QEMU's limits, counted in cache entries */
    {
        uint64_t entry = opts_get_size(opts, "l2-cache-entry-size", s->cluster_size, NULL);

        if (l2 / MAX(entry, 512) > INT_MAX) {
            error_setg(errp, "L2 cache size too big");
            return -EINVAL;
        }
        if (rc / s->cluster_size > INT_MAX) {
            error_setg(errp, "Refcount cache size too big");
            return -EINVAL;
        }
    }
    if (opts_has(opts, "cache-clean-interval")) {
        g_autofree char *v = opts_get_str(opts, "cache-clean-interval");
        uint64_t secs;

        /* a negative number wraps around, as QEMU's unsigned parsing does */
        if (!v || qemu_strtou64(v[0] == '-' ? v + 1 : v, 0, &secs) < 0) {
            error_setg(errp, "Parameter 'cache-clean-interval' expects a number");
            return -EINVAL;
        }
        if (v[0] == '-' || secs > UINT_MAX) {
            error_setg(errp, "Cache clean interval too big");
            return -EINVAL;
        }
    }
    /* more L2 cache than the image can use is never allocated (as QEMU) */
    l2 = MIN(l2, l2_needed);
    s->l2_cache_size = MAX(l2, (uint64_t)MIN_L2_CACHE_CLUSTERS * s->cluster_size);
    s->refcount_cache_size = MAX(rc, min_rc);
    return 0;
}

int qcow2_read_overlap_options(BlockDriverState *bs, JsonObject *opts, GError **errp)
{
    static const struct { const char *name; int kinds; } templates[] = {
        { "none", 0 },
        { "constant", QCOW2_OL_CHEAP & ~QCOW2_OL_REFCOUNT_BLOCK },
        { "cached", QCOW2_OL_CHEAP | QCOW2_OL_ACTIVE_L2 },
        { "all", QCOW2_OL_ALL },
    };
    static const struct { const char *key; int kind; } switches[] = {
        { "main-header", QCOW2_OL_MAIN_HEADER }, { "active-l1", QCOW2_OL_ACTIVE_L1 },
        { "active-l2", QCOW2_OL_ACTIVE_L2 }, { "refcount-table", QCOW2_OL_REFCOUNT_TABLE },
        { "refcount-block", QCOW2_OL_REFCOUNT_BLOCK },
        { "snapshot-table", QCOW2_OL_SNAPSHOT_TABLE },
        { "inactive-l1", QCOW2_OL_INACTIVE_L1 }, { "inactive-l2", QCOW2_OL_INACTIVE_L2 },
        { "bitmap-directory", QCOW2_OL_BITMAP_DIRECTORY },
    };
    BDRVQcow2State *s = bs->opaque;
    JsonObject *obj = opts_get_object(opts, "overlap-check");
    g_autofree char *tmpl = obj ? opts_get_str(obj, "template")
                                : opts_get_str(opts, "overlap-check");
    int kinds = -1;

    if (!tmpl) {
        tmpl = g_strdup("cached");
    }
    for (size_t i = 0; i < G_N_ELEMENTS(templates); i++) {
        if (!strcmp(tmpl, templates[i].name)) {
            kinds = templates[i].kinds;
        }
    }
    if (kinds < 0) {
        error_setg(errp, "Unsupported value '%s' for qcow2 option 'overlap-check'. "
                   "Allowed are any of the following: none, constant, cached, all", tmpl);
        return -EINVAL;
    }
    for (size_t i = 0; obj && i < G_N_ELEMENTS(switches); i++) {
        GError *local = NULL;

        if (!opts_has(obj, switches[i].key)) {
            continue;
        }
        if (opts_get_bool(obj, switches[i].key, false, &local)) {
            kinds |= switches[i].kind;
        } else {
            kinds &= ~switches[i].kind;
        }
        if (local) {
            error_propagate(errp, local);
            return -EINVAL;
        }
    }
    s->overlap_skip = QCOW2_OL_ALL & ~kinds;
    return 0;
}

/* ---- opening ---- */

static int validate_table(BlockDriverState *bs, uint64_t offset, uint64_t entries,
                          size_t entry_len, int64_t max_bytes, const char *name,
                          GError **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if (entries > (uint64_t)max_bytes / entry_len) {
        error_setg(errp, "%s too large", name);
        return -EFBIG;
    }
    if (offset_into_cluster(s, offset) ||
        (entries && offset > INT64_MAX - entries * entry_len)) {
        error_setg(errp, "%s offset invalid", name);
        return -EINVAL;
    }
    return 0;
}

static int attach_data_file_perm(BlockDriverState *bs, GError **errp)
{
    int ret = bdrv_attach_child_perm(bs, bs->data_file, &bs->data_file, BDRV_CHILD_DATA,
                                     errp);

    if (ret < 0) {
        bdrv_unref(bs->data_file);
        bs->data_file = NULL;
    }
    return ret;
}

static int open_data_file(BlockDriverState *bs, JsonObject *opts, int flags,
                          GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    bool given = opts_has(opts, "data-file");

    if (!has_data_file(bs)) {
        if (given) {
            /* QEMU opens the given file first: its own errors come before this */
            BlockDriverState *df = (flags & BDRV_O_UNTRUSTED) ? NULL :
                bdrv_open_child(bs, opts, "data-file", NULL, false,
                                flags & ~(BDRV_O_NO_DATA_FILE | BDRV_O_CHECK), errp);
            if (!df && !(flags & BDRV_O_UNTRUSTED)) {
                return -EINVAL;
            }
            if (df) {
                bdrv_unref(df);
            }
            error_setg(errp, "'data-file' can only be set for images with an external "
                       "data file");
            return -EINVAL;
        }
        if (data_file_is_raw(bs) && !(flags & BDRV_O_NO_DATA_FILE)) {
            error_setg(errp, "data-file-raw requires a data file");
            return -EINVAL;
        }
        bs->data_file = NULL;
        return 0;
    }
    if (flags & BDRV_O_UNTRUSTED) {
        error_setg(errp, "Image refers to an external data file ('%s'); refusing to "
                   "open it in untrusted mode", s->image_data_file ? s->image_data_file
                                                                  : "");
        return -EPERM;
    }
    if (given) {
        bs->data_file = bdrv_open_child(bs, opts, "data-file", NULL, false,
                                        flags & ~(BDRV_O_NO_DATA_FILE | BDRV_O_CHECK),
                                        errp);
        return bs->data_file ? attach_data_file_perm(bs, errp) : -EINVAL;
    }
    if (!s->image_data_file) {
        if ((flags & BDRV_O_NO_IO) && (flags & BDRV_O_NO_DATA_FILE)) {
            /* qemu-img info of an image whose data file name was cleared: QEMU
             * shows it, without a data file line */
            bs->data_file = NULL;
            return 0;
        }
        error_setg(errp, "'data-file' is required for this image");
        return -EINVAL;
    }
    if (flags & BDRV_O_NO_DATA_FILE) {
        /* info/map/check: name the file but do not touch it */
        bs->data_file = bdrv_new_placeholder(s->image_data_file);
        return 0;
    }
    /* the stored name is a literal local path, never json: or a protocol */
    bs->data_file = bdrv_open_file(s->image_data_file,
                                   (flags & ~(BDRV_O_NO_DATA_FILE | BDRV_O_CHECK)) |
                                   BDRV_O_NO_USER, errp);
    return bs->data_file ? attach_data_file_perm(bs, errp) : -ENOENT;
}

static int open_backing(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    JsonNode *node = opts && json_object_has_member(opts, "backing") ?
                     json_object_get_member(opts, "backing") : NULL;
    /* read-only; what it may share is the backing role's (bdrv_open_backing) */
    int bflags = flags & ~(BDRV_O_RDWR | BDRV_O_NO_DATA_FILE | BDRV_O_CHECK |
                           BDRV_O_NO_SHARE | BDRV_O_RESIZE);

    if (node && JSON_NODE_HOLDS_NULL(node)) {
        return 0;
    }
    if (flags & BDRV_O_NO_BACKING) {
        return 0;
    }
    if (!node && !bs->backing_file) {
        return 0;
    }
    if ((flags & BDRV_O_UNTRUSTED) && (bs->backing_file || node)) {
        error_setg(errp, "Image refers to a backing file ('%s'); refusing to open it in "
                   "untrusted mode", bs->backing_file ? bs->backing_file : "");
        return -EPERM;
    }
    return bdrv_open_backing(bs, opts, bflags, errp);
}

static int qcow2_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *hbuf = NULL;
    QCowHeader h;
    uint64_t ext_end;
    uint32_t hlen;
    int64_t file_len;
    GError *local = NULL;
    int ret;

    g_mutex_init(&s->lock);     /* allocates nothing: a failed open leaks nothing */
    s->unknown_exts = g_ptr_array_new_with_free_func(free_unknown_ext);
    s->read_only = !(flags & BDRV_O_RDWR);

    ret = bdrv_pread(bs->file, 0, sizeof(h), &h, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    header_to_cpu(&h);
    if (h.magic != QCOW_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    if (h.version < 2 || h.version > 3) {
        error_setg(errp, "Unsupported qcow2 version %" PRIu32, h.version);
        return -ENOTSUP;
    }
    if (h.cluster_bits < MIN_CLUSTER_BITS || h.cluster_bits > MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%" PRIu32, h.cluster_bits);
        return -EINVAL;
    }
    s->version = h.version;
    s->cluster_bits = h.cluster_bits;
    s->cluster_size = 1 << s->cluster_bits;
    hlen = h.version == 2 ? QCOW2_V2_HEADER_SIZE : h.header_length;
    if (h.version >= 3 && hlen < QCOW2_V3_HEADER_SIZE) {
        error_setg(errp, "qcow2 header too short");
        return -EINVAL;
    }
    if (hlen > (uint32_t)s->cluster_size) {
        error_setg(errp, "qcow2 header exceeds cluster size");
        return -EINVAL;
    }
    /*
     * Bytes past the header's length are not header fields: in a v2 image the
     * extensions and the backing file name start at byte 72, so the v3 fields
     * there (feature bits, refcount order, compression type at byte 104) read as
     * their defaults, whatever those bytes hold.
     */
    if (hlen < sizeof(h)) {
        memset((uint8_t *)&h + hlen, 0, sizeof(h) - hlen);
    }
    if (h.version == 2) {
        h.refcount_order = 4;
    }
    h.header_length = hlen;
    s->header_length = h.header_length;
    s->incompatible_features = h.incompatible_features;
    s->compatible_features = h.compatible_features;
    s->autoclear_features = h.autoclear_features;
    s->compression_type = h.compression_type;
    s->crypt_method = h.crypt_method;
    s->size = h.size;

    /* the whole header cluster: extensions and the backing file name live there */
    hbuf = g_malloc0(s->cluster_size);
    ret = bdrv_pread(bs->file, 0, s->cluster_size, hbuf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    if (h.backing_file_offset > (uint64_t)s->cluster_size) {
        error_setg(errp, "Invalid backing file offset");
        return -EINVAL;
    }
    ext_end = s->cluster_size;
    if (h.backing_file_offset && h.backing_file_offset < ext_end) {
        ext_end = h.backing_file_offset;
    }
    ret = read_extensions(bs, hbuf, h.header_length, ext_end, errp);
    if (ret < 0) {
        return ret;
    }

    if (s->incompatible_features & ~QCOW2_INCOMPAT_MASK) {
        report_unsupported(s, s->incompatible_features & ~QCOW2_INCOMPAT_MASK, errp);
        return -ENOTSUP;
    }
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) && (flags & BDRV_O_RDWR) &&
        !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened read/write");
        return -EACCES;
    }
    s->extended_l2 = s->incompatible_features & QCOW2_INCOMPAT_EXTL2;
    if (s->extended_l2 && s->cluster_bits < 14) {
        error_setg(errp, "Extended L2 entries are only supported with cluster sizes of "
                   "at least %d bytes", 16384);
        return -EINVAL;
    }
    if (s->compression_type > QCOW2_COMPRESSION_TYPE_ZSTD) {
        error_setg(errp, "qcow2: unknown compression type: %u", s->compression_type);
        return -ENOTSUP;
    }
    if (s->compression_type == QCOW2_COMPRESSION_TYPE_ZLIB &&
        (s->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit must not be "
                   "set");
        return -EINVAL;
    }
    if (s->compression_type != QCOW2_COMPRESSION_TYPE_ZLIB &&
        !(s->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit must be set");
        return -EINVAL;
    }
    if (h.refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not exceed 64 bits");
        return -EINVAL;
    }
    s->refcount_order = h.refcount_order;
    s->refcount_bits = 1 << s->refcount_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                                             : (1ULL << s->refcount_bits) - 1;
    s->refcount_block_bits = s->cluster_bits - (s->refcount_order - 3);
    s->refcount_block_size = 1 << s->refcount_block_bits;
    s->l2_slot_shift = s->extended_l2 ? 1 : 0;
    s->l2_bits = s->cluster_bits - 3 - s->l2_slot_shift;
    s->l2_size = 1 << s->l2_bits;
    s->subcluster_bits = s->cluster_bits - (s->extended_l2 ? 5 : 0);
    s->subcluster_size = 1 << s->subcluster_bits;

    file_len = bdrv_getlength(bs->file);
    if (file_len < 0) {
        error_setg_errno(errp, -file_len, "Could not get image size");
        return file_len;
    }

    /* refcount table */
    if ((uint64_t)h.refcount_table_clusters * s->cluster_size > QCOW_MAX_REFTABLE_SIZE) {
        error_setg(errp, "Reference count table too large");
        return -EINVAL;
    }
    if (h.refcount_table_clusters == 0 && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "Image does not contain a reference count table");
        return -EINVAL;
    }
    ret = validate_table(bs, h.refcount_table_offset,
                         (uint64_t)h.refcount_table_clusters * s->cluster_size / 8, 8,
                         QCOW_MAX_REFTABLE_SIZE, "Reference count table", errp);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table_offset = h.refcount_table_offset;
    s->refcount_table_size = (uint64_t)h.refcount_table_clusters * s->cluster_size / 8;

    /* snapshots */
    /* qemu-img check opens it to drop the overhanging entries */
    if (h.nb_snapshots > QCOW_MAX_SNAPSHOTS && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "Snapshot table too large");
        return -EINVAL;
    }
    ret = validate_table(bs, h.snapshots_offset,
                         MIN(h.nb_snapshots, QCOW_MAX_SNAPSHOTS), 40, 64 * MiB,
                         "Snapshot table", errp);
    if (ret < 0) {
        return ret;
    }
    s->nb_snapshots = h.nb_snapshots;
    s->snapshots_offset = h.snapshots_offset;

    /* L1 table */
    ret = validate_table(bs, h.l1_table_offset, h.l1_size, 8, QCOW_MAX_L1_SIZE,
                         "Active L1 table", errp);
    if (ret < 0) {
        return ret;
    }
    s->l1_size = h.l1_size;
    s->l1_table_offset = h.l1_table_offset;
    {
        /* in 64 bits: the index is 32 bits wide and the rounding can wrap */
        int shift = s->cluster_bits + s->l2_bits;
        uint64_t l1_needed = s->size > INT64_MAX - (1ULL << shift) ? UINT64_MAX :
                             qcow2_l1_entries_for(s->size, s->cluster_bits, s->l2_bits);
        if (l1_needed > INT_MAX) {
            error_setg(errp, "Image is too big");
            return -EFBIG;
        }
        s->l1_vm_state_index = l1_needed;
    }
    if (s->size && h.l1_size < s->l1_vm_state_index) {
        error_setg(errp, "L1 table is too small");
        return -EINVAL;
    }
    if (s->l1_size) {
        s->l1_table = g_try_new0(uint64_t, s->l1_size);
        if (!s->l1_table) {
            error_setg(errp, "Could not allocate L1 table");
            return -ENOMEM;
        }
        /* (no debug event: QEMU's blkdebug rules do not see the L1 table load) */
        ret = bdrv_pread(bs->file, s->l1_table_offset, (int64_t)s->l1_size * 8,
                         s->l1_table, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read L1 table");
            return ret;
        }
        for (uint32_t i = 0; i < s->l1_size; i++) {
            s->l1_table[i] = GUINT64_FROM_BE(s->l1_table[i]);
        }
    } else {
        s->l1_table = g_new0(uint64_t, 1);
    }

    /* backing file name */
    if (h.backing_file_offset) {
        if (h.backing_file_size > QCOW2_MAX_BACKING_NAME ||
            h.backing_file_size >= (uint64_t)s->cluster_size) {
            error_setg(errp, "Backing file name too long");
            return -EINVAL;
        }
        if (h.backing_file_offset + h.backing_file_size > (uint64_t)s->cluster_size) {
            error_setg(errp, "Invalid backing file offset");
            return -EINVAL;
        }
        /* an empty name is no backing file */
        if (h.backing_file_size) {
            bs->backing_file = g_strndup((const char *)hbuf + h.backing_file_offset,
                                         h.backing_file_size);
            bs->backing_format = g_strdup(s->image_backing_format);
        }
    }
    if (s->image_data_file && !has_data_file(bs)) {
        /* a stale name without the feature bit: ignored, as QEMU does */
        g_clear_pointer(&s->image_data_file, g_free);
    }
    ret = qcow2_crypto_open(bs, opts, flags, errp);
    if (ret < 0) {
        return ret;
    }

    ret = qcow2_read_cache_options(bs, opts, errp);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_read_overlap_options(bs, opts, errp);
    if (ret < 0) {
        return ret;
    }
    s->l2_table_cache = qcow2_cache_create(bs, s->l2_cache_size / s->cluster_size,
                                           s->cluster_size);
    s->refcount_block_cache = qcow2_cache_create(bs, s->refcount_cache_size /
                                                 s->cluster_size, s->cluster_size);
    if (!s->l2_table_cache || !s->refcount_block_cache) {
        error_setg(errp, "Could not allocate metadata caches");
        return -ENOMEM;
    }
    ret = qcow2_refcount_init(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not initialize refcount handling");
        return ret;
    }
    ret = qcow2_read_snapshots_check(bs, errp);
    if (ret < 0) {
        return ret;
    }

    s->use_lazy_refcounts = opts_get_bool(opts, "lazy-refcounts",
                                          s->compatible_features &
                                          QCOW2_COMPAT_LAZY_REFCOUNTS, &local);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (s->use_lazy_refcounts && s->version < 3) {
        error_setg(errp, "Lazy refcounts require a qcow2 image with at least qemu 1.1 "
                   "compatibility level");
        return -EINVAL;
    }

    ret = open_data_file(bs, opts, flags, errp);
    if (ret < 0) {
        return ret;
    }
    if (!bs->data_file) {
        bs->data_file = NULL;
    }
    ret = open_backing(bs, opts, flags, errp);
    if (ret < 0) {
        return ret;
    }

    /*
     * Clear autoclear bits we do not know (check -r too, as QEMU's: 036), and
     * drop a bitmaps extension whose autoclear bit a program cleared.
     */
    if (!s->read_only && ((s->autoclear_features & ~QCOW2_AUTOCLEAR_MASK) ||
                          s->stale_bitmaps_ext)) {
        s->autoclear_features &= QCOW2_AUTOCLEAR_MASK;
        for (guint i = s->unknown_exts->len; i-- > 0;) {
            if (((Qcow2UnknownExt *)s->unknown_exts->pdata[i])->magic ==
                QCOW2_EXT_MAGIC_BITMAPS) {
                g_ptr_array_remove_index(s->unknown_exts, i);
            }
        }
        s->stale_bitmaps_ext = false;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
    }
    if (!s->read_only && !(flags & BDRV_O_CHECK)) {
        /* a dirty image (lazy refcounts, crash): repair refcounts first */
        if (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) {
            BdrvCheckResult res;
            ret = qcow2_check(bs, &res, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
            if (ret < 0 || res.check_errors || res.corruptions) {
                error_setg_errno(errp, ret < 0 ? -ret : EIO,
                                 "Could not repair dirty image");
                return ret < 0 ? ret : -EIO;
            }
            ret = qcow2_mark_clean(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update qcow2 header");
                return ret;
            }
        }
    }
    if (s->has_bitmaps_ext) {
        ret = qcow2_bitmaps_validate(bs, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (!s->read_only && !(flags & BDRV_O_CHECK) && s->has_bitmaps_ext) {
        /* as QEMU: a read-write open loads the bitmaps and flags them in_use;
         * if that fails, the first change tries again and fails with it */
        qcow2_bitmaps_begin_changes(bs);
    }
    /* encrypted data is whole 512-byte sectors: the generic layer does the rest */
    bs->request_alignment = s->crypto ? QCRYPTO_BLOCK_SECTOR_SIZE : 1;
    /* requests on one cluster stay in order: copy-on-write spans it */
    bs->serialize_align = s->cluster_size;
    s->opened = true;
    return 0;
}

/* Free the driver state (no I/O): the end of close, and of a failed open. */
static void qcow2_release(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    g_clear_pointer(&s->l2_table_cache, qcow2_cache_destroy);
    g_clear_pointer(&s->refcount_block_cache, qcow2_cache_destroy);
    qcow2_l2_window_free(bs);
    qcow2_bitmaps_release(bs);
    qcow2_refcount_close(bs);
    g_clear_pointer(&s->l1_table, g_free);
    g_clear_pointer(&s->crypto, qcrypto_block_free);
    if (s->crypt_bounce) {
        qcrypto_wipe(s->crypt_bounce, 1 * MiB);     /* it held plaintext */
        free(s->crypt_bounce);
        s->crypt_bounce = NULL;
    }
    g_clear_pointer(&s->image_backing_format, g_free);
    g_clear_pointer(&s->image_data_file, g_free);
    g_clear_pointer(&s->feature_table, g_free);
    if (s->unknown_exts) {
        g_ptr_array_free(s->unknown_exts, TRUE);
        s->unknown_exts = NULL;
    }
}

/*
 * The node turns read-only in place (the old top of an external snapshot), or
 * back: as at close, the persistent bitmaps are stored (in_use cleared) and
 * the dirty bit goes; back to read-write, the bitmaps are loaded and flagged
 * in_use again, as by a read-write open. A bitmap that cannot be stored stays
 * in_use on disk: inconsistent, never silently wrong.
 */
static int qcow2_set_read_only(BlockDriverState *bs, bool ro, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    qcow2_lock(bs);
    if (!ro) {
        s->read_only = false;
        if (s->has_bitmaps_ext) {
            /* a failure shows at the first change, as after an open */
            qcow2_bitmaps_begin_changes(bs);
        }
        goto out;
    }
    if (s->signaled_corruption) {
        s->read_only = true;
        goto out;
    }
    if (qcow2_bitmaps_store(bs, errp) < 0) {
        ret = -EIO;
        goto out;
    }
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    }
    if (ret == 0 && s->header_dirty_set) {
        ret = qcow2_mark_clean(bs);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write the image's metadata");
        goto out;
    }
    s->read_only = true;
out:
    qcow2_unlock(bs);
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->opened && !s->read_only && s->l2_table_cache) {
        GError *err = NULL;
        int ret;

        if (qcow2_bitmaps_store(bs, &err) < 0) {
            error_report("Failed to store bitmaps: %s", err->message);
            g_error_free(err);
        }
        /* QEMU's messages: a failed write-back on close is reported, not silent */
        ret = qcow2_cache_flush(bs, s->l2_table_cache);
        if (ret < 0) {
            error_report("Failed to flush the L2 table cache: %s", strerror(-ret));
        }
        ret = qcow2_cache_flush(bs, s->refcount_block_cache);
        if (ret < 0) {
            error_report("Failed to flush the refcount block cache: %s",
                         strerror(-ret));
        }
        if (s->header_dirty_set && !s->signaled_corruption) {
            qcow2_mark_clean(bs);
        }
    }
    qcow2_release(bs);
    g_mutex_clear(&s->lock);
}

/* ---- info ---- */

static int64_t qcow2_getlength(BlockDriverState *bs)
{
    return ((BDRVQcow2State *)bs->opaque)->size;
}

static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = bs->opaque;

    bdi->cluster_size = s->cluster_size;
    bdi->vm_state_offset = (int64_t)s->l1_vm_state_index << (s->cluster_bits + s->l2_bits);
    bdi->is_dirty = s->incompatible_features & QCOW2_INCOMPAT_DIRTY;
    return 0;
}

static bool qcow2_is_dirty(BlockDriverState *bs)
{
    return ((BDRVQcow2State *)bs->opaque)->incompatible_features & QCOW2_INCOMPAT_DIRTY;
}


static JsonNode *qcow2_get_specific_info(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    JsonObject *data = json_object_new();
    JsonObject *top = json_object_new();
    JsonNode *node;

    if (s->version == 2) {
        JsonObject *enc = qcow2_crypto_info(bs);

        json_object_set_string_member(data, "compat", "0.10");
        json_object_set_string_member(data, "compression-type", "zlib");
        json_object_set_int_member(data, "refcount-bits", s->refcount_bits);
        if (enc) {
            json_object_set_object_member(data, "encrypt", enc);
        }
    } else {
        json_object_set_string_member(data, "compat", "1.1");
        json_object_set_string_member(data, "compression-type",
                                      s->compression_type ? "zstd" : "zlib");
        json_object_set_boolean_member(data, "lazy-refcounts",
                                       s->compatible_features &
                                       QCOW2_COMPAT_LAZY_REFCOUNTS);
        if (s->has_bitmaps_ext) {
            JsonArray *bitmaps = qcow2_bitmaps_info(bs, errp);
            if (!bitmaps) {
                json_object_unref(data);
                json_object_unref(top);
                return NULL;
            }
            json_object_set_array_member(data, "bitmaps", bitmaps);
        }
        JsonObject *enc = qcow2_crypto_info(bs);

        json_object_set_int_member(data, "refcount-bits", s->refcount_bits);
        if ((has_data_file(bs) || s->image_data_file) && s->image_data_file) {
            json_object_set_string_member(data, "data-file", s->image_data_file);
        }
        if (enc) {
            json_object_set_object_member(data, "encrypt", enc);
        }
        if (has_data_file(bs) || s->image_data_file) {
            json_object_set_boolean_member(data, "data-file-raw", data_file_is_raw(bs));
        }
        json_object_set_boolean_member(data, "corrupt", s->incompatible_features &
                                       QCOW2_INCOMPAT_CORRUPT);
        json_object_set_boolean_member(data, "extended-l2", s->incompatible_features &
                                       QCOW2_INCOMPAT_EXTL2);
    }
    json_object_set_string_member(top, "type", "qcow2");
    json_object_set_object_member(top, "data", data);
    node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, top);
    return node;
}

/* ---- the vtable ---- */

/* the key of an encrypted image: named by json: then, as QEMU does */
static const char *const qcow2_strong_opts[] = { "encrypt.key-secret", NULL };

BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .is_format = true,
    .strong_opts = qcow2_strong_opts,
    .supports_backing = true,
    .thread_safe = true,
    .instance_size = sizeof(BDRVQcow2State),
    .runtime_opts = qcow2_runtime_opts,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .pread = qcow2_locked_pread,
    .pwrite = qcow2_locked_pwrite,
    .pwrite_zeroes = qcow2_locked_pwrite_zeroes,
    .load_vmstate = qcow2_locked_load_vmstate,
    .save_vmstate = qcow2_locked_save_vmstate,
    .pdiscard = qcow2_locked_pdiscard,
    .flush_to_os = qcow2_locked_flush_to_os,
    .getlength = qcow2_getlength,
    .get_info = qcow2_get_info,
    .truncate = qcow2_truncate,
    .block_status = qcow2_locked_block_status,
    .maps_data_as_is = true,
    .create_opts = qcow2_create_opts,
    .create = qcow2_create_qmp,
    .create_opt_descs = qcow2_create_opt_descs,
    .amend = qcow2_amend,
    .measure = qcow2_measure,
    .amend_opt_descs = qcow2_amend_opt_descs,
    .supports_compressed_writes = true,
    .check = qcow2_check,
    .get_specific_info = qcow2_get_specific_info,
    .is_dirty = qcow2_is_dirty,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_goto = qcow2_snapshot_goto,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_load_tmp = qcow2_snapshot_load_tmp,
    .bitmap_op = qcow2_bitmap_op,
    .bitmap_set_dirty = qcow2_bitmap_set_dirty,
    .bitmaps_store = qcow2_bitmaps_store,
    .query_bitmaps = qcow2_bitmaps_query,
    .supports_persistent_bitmaps = qcow2_supports_persistent_bitmaps,
    .bitmap_status = qcow2_bitmap_status,
    .change_backing_file = qcow2_change_backing_file,
    .make_empty = qcow2_make_empty,
    .set_read_only = qcow2_set_read_only,
};
