/*
 * qcow2 consistency check and repair (qemu-img check, and the refcount repair of
 * dirty images on open). It walks every table into its own reference counts,
 * compares them with the on-disk refcounts, checks the COPIED flags, and with -r
 * repairs leaks, refcounts that are too low, COPIED flags, or rebuilds the whole
 * refcount structure past the end of the image. It shares no state with I/O.
 * Messages are QEMU's, on stderr.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

typedef struct CheckState {
    BlockDriverState *bs;
    BDRVQcow2State *s;
    BdrvCheckResult *res;
    int fix;
    uint8_t *ref;           /* computed references per host cluster, ... */
    GHashTable *ref_big;    /* ... REF_BIG: here (cluster index -> references) */
    int64_t nb_clusters;    /* clusters in the image file */
    uint64_t file_len;      /* bytes in the image file */
    int64_t ref_end;        /* one past the highest cluster with a reference */
    bool rebuild;           /* refcount structure must be rebuilt */
    bool quiet;             /* no messages (internal repairs) */
    uint64_t prev_data;     /* last data cluster seen, UINT64_MAX: none yet */
    uint64_t overflows;     /* references past the refcount width (not repairable) */
    Qcow2SnapshotCheck snap; /* the snapshot table as checked (and repaired) */
} CheckState;

static void G_GNUC_PRINTF_CHECK(2, 3) check_msg(CheckState *cs, const char *fmt, ...)
{
    va_list ap;

    if (cs->quiet) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/*
 * One byte per host cluster (a 1 TiB image with its data inside has 16 M of
 * them): counts up to REF_BIG - 1 in place, more in a hash table. QEMU keeps a
 * refcount-width entry per cluster.
 */
#define REF_BIG 255
#define REF_SATURATED UINT32_MAX

static uint64_t ref_get(CheckState *cs, int64_t k)
{
    if (cs->ref[k] < REF_BIG) {
        return cs->ref[k];
    }
    return GPOINTER_TO_SIZE(g_hash_table_lookup(cs->ref_big, GSIZE_TO_POINTER(k)));
}

static void ref_inc(CheckState *cs, int64_t k)
{
    uint64_t v;

    cs->ref_end = MAX(cs->ref_end, k + 1);
    if (cs->ref[k] < REF_BIG - 1) {
        cs->ref[k]++;
        return;
    }
    v = ref_get(cs, k);
    if (v < REF_SATURATED) {
        v++;
    }
    cs->ref[k] = REF_BIG;
    g_hash_table_insert(cs->ref_big, GSIZE_TO_POINTER(k), GSIZE_TO_POINTER(v));
}

static void ref_free(CheckState *cs)
{
    g_free(cs->ref);
    cs->ref = NULL;
    if (cs->ref_big) {
        g_hash_table_destroy(cs->ref_big);
        cs->ref_big = NULL;
    }
}

/* Make cs->ref cover @n clusters (the new ones unreferenced); false on ENOMEM. */
static bool ref_grow(CheckState *cs, int64_t n)
{
    uint8_t *grown;

    if (n <= cs->nb_clusters) {
        return true;
    }
    grown = g_try_realloc(cs->ref, n);
    if (!grown) {
        return false;
    }
    memset(grown + cs->nb_clusters, 0, n - cs->nb_clusters);
    cs->ref = grown;
    cs->nb_clusters = n;
    return true;
}

/*
 * On-disk refcounts for walks that change none of them: read an aligned chunk of
 * RC_CHUNK (inside one refcount block) at a time, one cache lookup instead of one
 * per cluster. Where a chunk cannot be read, each cluster is asked for alone,
 * with its own error.
 */
#define RC_CHUNK 512

typedef struct RcReader {
    int64_t start, end;     /* clusters in buf */
    int err;
    uint64_t buf[RC_CHUNK];
} RcReader;

static int rc_read(CheckState *cs, RcReader *r, int64_t i, uint64_t *rc)
{
    if (i < r->start || i >= r->end) {
        int64_t chunk = MIN(RC_CHUNK, cs->s->refcount_block_size);
        r->start = i & ~(chunk - 1);
        r->end = r->start + chunk;
        r->err = qcow2_get_refcounts(cs->bs, r->start, r->end - r->start, r->buf);
    }
    if (r->err < 0) {
        return qcow2_get_refcount(cs->bs, i, rc);
    }
    *rc = r->buf[i - r->start];
    return 0;
}

static RcReader *rc_reader_new(void)
{
    RcReader *r = g_new(RcReader, 1);

    r->start = r->end = 0;
    r->err = 0;
    return r;
}

static void inc_refs(CheckState *cs, uint64_t offset, uint64_t size)
{
    BDRVQcow2State *s = cs->s;
    uint64_t first, last;

    if (size == 0) {
        return;
    }
    first = offset >> s->cluster_bits;
    last = (offset + size - 1) >> s->cluster_bits;
    if (last >= (uint64_t)cs->nb_clusters &&
        offset + size < cs->file_len + s->cluster_size) {
        /* less than a cluster past the end (an unaligned entry): counted, as QEMU
         * counts it, in a table one cluster longer */
        ref_grow(cs, last + 1);
    }
    if (last >= (uint64_t)cs->nb_clusters) {
        check_msg(cs, "ERROR: counting reference for region exceeding the end of "
                "the file by one cluster or more: offset 0x%" PRIx64 " size 0x%" PRIx64
                "\n", offset, size);
        cs->res->corruptions++;
        return;
    }
    for (uint64_t k = first; k <= last; k++) {
        /* the count is kept in the image's refcount width, as QEMU keeps it */
        if (ref_get(cs, k) >= s->refcount_max) {
            check_msg(cs, "ERROR: overflow cluster offset=0x%" PRIx64 "\n"
                      "Use qemu-img amend to increase the refcount entry width or "
                      "qemu-img convert to create a clean copy if the image cannot be "
                      "opened for writing\n", k << s->cluster_bits);
            cs->res->corruptions++;
            cs->overflows++;
            continue;
        }
        ref_inc(cs, k);
    }
}

static void inc_refs_cb(void *opaque, uint64_t offset, uint64_t size)
{
    inc_refs(opaque, offset, size);
}

/* Write entry @j of the L2 table @l2 (a copy read from @l2_offset) as @e. */
static bool repair_l2_entry(CheckState *cs, uint64_t *l2, uint64_t l2_offset, int j,
                            uint64_t e)
{
    BDRVQcow2State *s = cs->s;
    int ret;

    qcow2_l2_set(s, l2, j, e);
    qcow2_cache_forget(s->l2_table_cache, l2_offset);
    ret = qcow2_pre_write_overlap_check(cs->bs, QCOW2_OL_ACTIVE_L2, l2_offset,
                                        s->cluster_size, false);
    if (ret == 0) {
        ret = bdrv_pwrite(cs->bs->file, l2_offset, s->cluster_size, l2, 0);
    }
    if (ret < 0) {
        check_msg(cs, "ERROR: Failed to overwrite L2 table entry: %s\n", strerror(-ret));
        cs->res->check_errors++;
        return false;
    }
    return true;
}

/* Count what an L2 table references. */
static int check_l2(CheckState *cs, uint64_t l2_offset, uint64_t guest_base, bool active)
{
    BDRVQcow2State *s = cs->s;
    BlockDriverState *bs = cs->bs;
    g_autofree uint64_t *l2 = g_malloc(s->cluster_size);
    int ret = bdrv_pread(bs->file, l2_offset, s->cluster_size, l2, 0);

    /* fragmentation is counted within one L2 table, as QEMU counts it */
    cs->prev_data = UINT64_MAX;

    if (ret < 0) {
        check_msg(cs, "ERROR: I/O error in check_refcounts_l2\n");
        cs->res->check_errors++;
        return ret;
    }
    for (int j = 0; j < s->l2_size; j++) {
        uint64_t e = qcow2_l2_get(s, l2, j);
        uint64_t guest = guest_base + ((uint64_t)j << s->cluster_bits);
        uint64_t off = e & L2E_OFFSET_MASK;

        switch (qcow2_get_cluster_type(bs, e)) {
        case QCOW2_CLUSTER_COMPRESSED: {
            uint64_t start, len;
            if (has_data_file(bs)) {
                check_msg(cs, "ERROR compressed cluster %d with data file, "
                        "entry=0x%" PRIx64 "\n", j, e);
                cs->res->corruptions++;
                break;
            }
            if (s->extended_l2 && qcow2_l2_bitmap_get(l2, j)) {
                check_msg(cs, "ERROR compressed cluster %d with non-zero subcluster "
                          "allocation bitmap, entry=0x%" PRIx64 "\n", j, e);
                cs->res->corruptions++;
                break;
            }
            if (e & QCOW_OFLAG_COPIED) {
                check_msg(cs, "ERROR: coffset=0x%" PRIx64 ": Compressed cluster has "
                        "copied flag set\n", (uint64_t)(e & ((1ULL << 62) - 1)));
                cs->res->corruptions++;
            }
            qcow2_compressed_range(s, e, &start, &len);
            if (active) {
                /* a compressed cluster always counts as fragmented */
                cs->res->bfi.allocated_clusters++;
                cs->res->bfi.compressed_clusters++;
                cs->res->bfi.fragmented_clusters++;
            }
            inc_refs(cs, start, len);
            break;
        }
        case QCOW2_CLUSTER_ZERO_ALLOC:
        case QCOW2_CLUSTER_NORMAL: {
            uint64_t bm = s->extended_l2 ? qcow2_l2_bitmap_get(l2, j) : 0;

            if ((uint32_t)(bm & (bm >> 32))) {
                check_msg(cs, "ERROR offset=%" PRIx64 ": Allocated cluster has corrupted "
                          "subcluster allocation bitmap\n", off);
                cs->res->corruptions++;
            }
            if (offset_into_cluster(s, off)) {
                bool has_data = s->extended_l2 ? (uint32_t)bm != 0
                                               : !(e & QCOW_OFLAG_ZERO);
                if (!has_data) {
                    /* nothing to lose: the entry becomes a zero (plain) one */
                    bool repair = cs->fix & BDRV_FIX_ERRORS;
                    check_msg(cs, "%s offset=%" PRIx64 ": Preallocated cluster is not "
                              "properly aligned; L2 entry corrupted.\n",
                              repair ? "Repairing" : "ERROR", off);
                    if (repair && repair_l2_entry(cs, l2, l2_offset, j,
                                                  s->extended_l2 ? 0 : QCOW_OFLAG_ZERO)) {
                        cs->res->corruptions_fixed++;
                        break;
                    }
                    cs->res->corruptions++;
                } else {
                    check_msg(cs, "ERROR offset=%" PRIx64 ": Data cluster is not properly "
                              "aligned; L2 entry corrupted.\n", off);
                    cs->res->corruptions++;
                }
                /* the cluster-sized range it points to still counts as referenced */
            }
            if (has_data_file(bs) && off != guest &&
                qcow2_get_cluster_type(bs, e) == QCOW2_CLUSTER_NORMAL) {
                check_msg(cs, "ERROR offset=%" PRIx64 ": Data cluster of guest offset %#"
                        PRIx64 " is not mapped 1:1 in the external data file\n", off,
                        guest);
                cs->res->corruptions++;
                break;
            }
            if (active) {
                cs->res->bfi.allocated_clusters++;
                if (cs->prev_data != UINT64_MAX && off != cs->prev_data + s->cluster_size) {
                    cs->res->bfi.fragmented_clusters++;
                }
                cs->prev_data = off;
            }
            if (!has_data_file(bs)) {
                inc_refs(cs, off, s->cluster_size);
            }
            break;
        }
        default:
            if (s->extended_l2 && (uint32_t)qcow2_l2_bitmap_get(l2, j)) {
                check_msg(cs, "ERROR: Unallocated cluster has non-zero subcluster "
                          "allocation map\n");
                cs->res->corruptions++;
            }
            break;
        }
    }
    return 0;
}

/* Count an L1 table and everything below it. */
static int check_l1(CheckState *cs, uint64_t l1_offset, uint32_t l1_size, bool active)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l1 = NULL;
    int ret;

    inc_refs(cs, l1_offset, (uint64_t)l1_size * 8);
    if (!l1_size) {
        return 0;
    }
    if (active) {
        l1 = g_memdup2(s->l1_table, (gsize)l1_size * 8);
    } else {
        l1 = g_try_new(uint64_t, l1_size);
        if (!l1) {
            return -ENOMEM;
        }
        ret = bdrv_pread(cs->bs->file, l1_offset, (int64_t)l1_size * 8, l1, 0);
        if (ret < 0) {
            check_msg(cs, "ERROR: I/O error in check_refcounts_l1\n");
            cs->res->check_errors++;
            return ret;
        }
        for (uint32_t i = 0; i < l1_size; i++) {
            l1[i] = GUINT64_FROM_BE(l1[i]);
        }
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2 = l1[i] & L1E_OFFSET_MASK;

        if (!l2) {
            continue;
        }
        if (active && (l1[i] & L1E_RESERVED_MASK)) {
            check_msg(cs, "ERROR found L1 entry with reserved bits set: %" PRIx64 "\n",
                    l1[i]);
            cs->res->corruptions++;
        }
        if (offset_into_cluster(s, l2)) {
            check_msg(cs, "ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; "
                    "L1 entry corrupted\n", l2);
            cs->res->corruptions++;
            continue;
        }
        inc_refs(cs, l2, s->cluster_size);
        ret = check_l2(cs, l2, (uint64_t)i << (s->l2_bits + s->cluster_bits), active);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/* Clusters (bytes of cs->ref) that a repair may grow the check's table to. */
#define CHECK_GROW_BUDGET ((int64_t)256 << 20)

/*
 * A refcount block past the end of the file, with FIX_ERRORS: the file grows to
 * hold it (QEMU's repair; the new area reads as zeroes, an empty block). 0 when
 * it now lies inside the image, else -errno.
 */
static int grow_file_to_refblock(CheckState *cs, uint64_t off)
{
    BDRVQcow2State *s = cs->s;
    g_autoptr(GError) err = NULL;
    int64_t len;
    int ret;

    if (off > (uint64_t)INT64_MAX - s->cluster_size) {
        return -EINVAL;
    }
    /*
     * The check counts one byte per cluster of the file. A refblock terabytes
     * past the end (a hostile or garbled entry) would need gigabytes for that,
     * so past a budget the check ends as QEMU's does when that allocation
     * fails (ENOMEM), but before the file has grown, not after.
     */
    if ((int64_t)size_to_clusters(s, off + s->cluster_size) >
        MAX(CHECK_GROW_BUDGET, cs->nb_clusters + CHECK_GROW_BUDGET / 256)) {
        return -ENOMEM;
    }
    ret = bdrv_truncate(cs->bs->file, off + s->cluster_size, false, PREALLOC_MODE_OFF,
                        0, &err);
    if (ret < 0) {
        if (err && !cs->quiet) {
            error_report("%s", err->message);
        }
        return ret;
    }
    len = bdrv_getlength(cs->bs->file);
    if (len < 0) {
        return len;
    }
    if (!ref_grow(cs, size_to_clusters(s, len))) {
        return -ENOMEM;
    }
    cs->file_len = len;
    return (off >> s->cluster_bits) < (uint64_t)cs->nb_clusters ? 0 : -EINVAL;
}

/*
 * The refcount blocks, as QEMU checks them after everything else: each must be
 * aligned, inside the image (with FIX_ERRORS the image grows to hold one past
 * its end), and referenced once by the time it is counted. Damage only a
 * rebuild repairs asks for one.
 */
static int check_refblocks(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;

    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t off = s->refcount_table[i] & REFT_OFFSET_MASK;
        uint64_t refs;

        if (!off) {
            continue;
        }
        if (offset_into_cluster(s, off)) {
            check_msg(cs, "ERROR refcount block %u is not cluster aligned; refcount "
                    "table entry corrupted\n", i);
            cs->res->corruptions++;
            cs->rebuild = true;
            continue;
        }
        if ((off >> s->cluster_bits) >= (uint64_t)cs->nb_clusters) {
            bool repair = cs->fix & BDRV_FIX_ERRORS;
            int ret;

            check_msg(cs, "%s refcount block %u is outside image\n",
                      repair ? "Repairing" : "ERROR", i);
            if (!repair) {
                cs->res->corruptions++;
                continue;
            }
            ret = grow_file_to_refblock(cs, off);
            if (ret == -ENOMEM) {
                cs->res->check_errors++;
                return ret;
            }
            if (ret < 0) {
                check_msg(cs, "ERROR could not resize image: %s\n", strerror(-ret));
                cs->res->corruptions++;
                cs->rebuild = true;
                continue;
            }
            cs->res->corruptions_fixed++;
            /* just allocated and zeroed: its one reference is this one */
            inc_refs(cs, off, s->cluster_size);
            continue;
        }
        inc_refs(cs, off, s->cluster_size);
        /* used for anything else as well: only a rebuild gives it back */
        refs = ref_get(cs, off >> s->cluster_bits);
        if (refs != 1) {
            check_msg(cs, "ERROR refcount block %u refcount=%" PRIu64 "\n", i, refs);
            cs->res->corruptions++;
            cs->rebuild = true;
        }
    }
    return 0;
}

/* Count every reference in the image into cs->ref. */
static int compute_references(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    BlockDriverState *bs = cs->bs;
    int ret;

    memset(cs->ref, 0, cs->nb_clusters);
    cs->ref_end = 0;
    cs->overflows = 0;
    g_hash_table_remove_all(cs->ref_big);
    cs->prev_data = UINT64_MAX;
    cs->res->bfi.allocated_clusters = 0;
    cs->res->bfi.fragmented_clusters = 0;
    cs->res->bfi.compressed_clusters = 0;

    inc_refs(cs, 0, s->cluster_size);                       /* header */
    ret = check_l1(cs, s->l1_table_offset, s->l1_size, true);
    if (ret < 0) {
        return ret;
    }
    if (cs->snap.list) {
        GPtrArray *snaps = cs->snap.list;

        for (guint i = 0; i < snaps->len; i++) {
            Qcow2SnapshotInfo *sn = snaps->pdata[i];

            /*
             * A damaged entry is reported and skipped, as QEMU does; never
             * read (or allocate for) an L1 table the entry cannot describe.
             */
            if (offset_into_cluster(s, sn->l1_table_offset)) {
                check_msg(cs, "ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": "
                          "L1 table is not cluster aligned; snapshot table entry "
                          "corrupted\n", sn->id_str, sn->name, sn->l1_table_offset);
                cs->res->corruptions++;
                continue;
            }
            if ((uint64_t)sn->l1_size * 8 > QCOW_MAX_L1_SIZE) {
                check_msg(cs, "ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": "
                          "L1 table is too large; snapshot table entry corrupted\n",
                          sn->id_str, sn->name, sn->l1_size);
                cs->res->corruptions++;
                continue;
            }
            ret = check_l1(cs, sn->l1_table_offset, sn->l1_size, false);
            if (ret < 0) {
                return ret;
            }
        }
        /* the snapshot table itself, as far as the entries kept reach on disk */
        inc_refs(cs, s->snapshots_offset, cs->snap.extent);
    }
    /* the LUKS header (encrypted images) */
    if (s->crypt_method == QCOW_CRYPT_LUKS && s->has_crypto_header &&
        s->crypto_header_length) {
        inc_refs(cs, s->crypto_header_offset, s->crypto_header_length);
    }
    /* refcount table and blocks */
    inc_refs(cs, s->refcount_table_offset, (uint64_t)s->refcount_table_size * 8);
    ret = qcow2_bitmaps_for_each_ref(bs, inc_refs_cb, cs);
    if (ret < 0) {
        check_msg(cs, "ERROR: could not read the bitmap directory: %s\n",
                strerror(-ret));
        cs->res->check_errors++;
        return ret;
    }
    return check_refblocks(cs);
}

/*
 * Repair one refcount. A cluster freed this way is referenced by nothing: QEMU
 * discards it (its content reads as zeroes after the repair), and so do we.
 */
static int set_refcount(CheckState *cs, int64_t cluster, uint64_t old, uint64_t new)
{
    int ret = qcow2_update_cluster_refcount(cs->bs, cluster, (int64_t)new - (int64_t)old);

    if (ret == 0 && new == 0 && old) {
        bdrv_pdiscard_always(cs->bs->file, cluster << cs->s->cluster_bits,
                             cs->s->cluster_size);
    }
    return ret;
}

/* Compare computed references with the on-disk refcounts; repair per cs->fix. */
/*
 * Compare computed references with the on-disk refcounts. With @fix 0 every
 * difference is reported (ERROR/Leaked) and counted; with fix flags what may be
 * repaired is repaired ("Repairing") and counted as fixed, what may not is
 * reported and counted. A cluster in use with refcount 0 asks for a rebuild.
 * @count: add to the result counters (not for the quiet clean-up pass).
 */
/*
 * Clusters worth comparing: those referenced, and those a refcount block
 * describes. Past both, reference and refcount are 0; a hostile sparse file
 * can be terabytes long, so the walk must not follow its length.
 */
static int64_t compare_end(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    int64_t covered = 0;

    for (int64_t ti = (int64_t)s->refcount_table_size - 1; ti >= 0; ti--) {
        if (s->refcount_table[ti] & REFT_OFFSET_MASK) {
            covered = (ti + 1) << s->refcount_block_bits;
            break;
        }
    }
    return MIN(cs->nb_clusters, MAX(cs->ref_end, covered));
}

static int compare_refcounts(CheckState *cs, int fix, bool count)
{
    BDRVQcow2State *s = cs->s;
    BdrvCheckResult *res = cs->res;
    g_autofree RcReader *r = rc_reader_new();
    int64_t end = compare_end(cs);

    for (int64_t i = 0; i < end; i++) {
        uint64_t rc;
        uint64_t ref = ref_get(cs, i);
        int ret;

        /* no refcount block for this range: only referenced clusters differ */
        if (!ref && ((uint64_t)(i >> s->refcount_block_bits) >= s->refcount_table_size ||
                     !(s->refcount_table[i >> s->refcount_block_bits] &
                       REFT_OFFSET_MASK))) {
            continue;
        }
        /* repairs change refcounts as they go: then ask for each one afresh */
        ret = fix ? qcow2_get_refcount(cs->bs, i, &rc) : rc_read(cs, r, i, &rc);

        if (ret < 0) {
            check_msg(cs, "Can't get refcount for cluster %" PRId64 ": %s\n", i,
                      strerror(-ret));
            res->check_errors++;
            continue;
        }
        if (rc == ref) {
            continue;
        }
        if (rc < ref) {
            if (rc == 0) {
                /* in use but free: only a new refcount structure is safe */
                cs->rebuild = true;
                if (!fix) {
                    check_msg(cs, "ERROR cluster %" PRId64 " refcount=%" PRIu64
                              " reference=%" PRIu64 "\n", i, rc, ref);
                    res->corruptions += count;
                }
                continue;
            }
            if ((fix & BDRV_FIX_ERRORS) && ref <= s->refcount_max) {
                check_msg(cs, "Repairing cluster %" PRId64 " refcount=%" PRIu64
                          " reference=%" PRIu64 "\n", i, rc, ref);
                if (set_refcount(cs, i, rc, ref) == 0) {
                    res->corruptions_fixed += count;
                    continue;
                }
            } else {
                check_msg(cs, "ERROR cluster %" PRId64 " refcount=%" PRIu64
                          " reference=%" PRIu64 "\n", i, rc, ref);
            }
            res->corruptions += count;
        } else {
            if (fix & BDRV_FIX_LEAKS) {
                check_msg(cs, "Repairing cluster %" PRId64 " refcount=%" PRIu64
                          " reference=%" PRIu64 "\n", i, rc, ref);
                if (set_refcount(cs, i, rc, ref) == 0) {
                    res->leaks_fixed += count;
                    continue;
                }
            } else {
                check_msg(cs, "Leaked cluster %" PRId64 " refcount=%" PRIu64
                          " reference=%" PRIu64 "\n", i, rc, ref);
            }
            res->leaks += count;
        }
    }
    return 0;
}

/* Check (and with FIX_ERRORS repair) COPIED flags against refcounts. */
static int check_oflag_copied(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    BlockDriverState *bs = cs->bs;
    /* QEMU repairs COPIED flags with any -r, leaks included (its iotest 217) */
    bool fix = cs->fix & (BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
    g_autofree RcReader *r = rc_reader_new();   /* COPIED repairs change no refcount */
    int ret;

    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l1e = s->l1_table[i], l2 = l1e & L1E_OFFSET_MASK, rc;
        g_autofree uint64_t *table = NULL;
        bool l2_dirty = false;

        if (!l2 || offset_into_cluster(s, l2)) {
            continue;
        }
        ret = qcow2_get_refcount(bs, l2 >> s->cluster_bits, &rc);
        if (ret < 0) {
            continue;
        }
        if ((rc == 1) != !!(l1e & QCOW_OFLAG_COPIED)) {
            check_msg(cs, "%s OFLAG_COPIED L2 cluster: l1_index=%u l1_entry=%" PRIx64
                    " refcount=%" PRIu64 "\n", fix ? "Repairing" : "ERROR", i, l1e, rc);
            if (fix) {
                s->l1_table[i] = rc == 1 ? l1e | QCOW_OFLAG_COPIED
                                         : l1e & ~QCOW_OFLAG_COPIED;
                if (qcow2_write_l1_entries(bs, i, 1) == 0) {
                    cs->res->corruptions_fixed++;
                } else {
                    cs->res->check_errors++;
                }
            } else {
                cs->res->corruptions++;
            }
        }
        if ((l2 >> s->cluster_bits) >= (uint64_t)cs->nb_clusters) {
            continue;
        }
        table = g_malloc(s->cluster_size);
        ret = bdrv_pread(bs->file, l2, s->cluster_size, table, 0);
        if (ret < 0) {
            cs->res->check_errors++;
            continue;
        }
        for (int j = 0; j < s->l2_size; j++) {
            uint64_t e = qcow2_l2_get(s, table, j), off = e & L2E_OFFSET_MASK, drc;
            Qcow2ClusterType t = qcow2_get_cluster_type(bs, e);

            if (t != QCOW2_CLUSTER_NORMAL && t != QCOW2_CLUSTER_ZERO_ALLOC) {
                continue;
            }
            off = start_of_cluster(s, off);
            if (has_data_file(bs)) {
                drc = 1;       /* C3: data-file clusters are implicitly owned once */
            } else if (rc_read(cs, r, off >> s->cluster_bits, &drc) < 0) {
                continue;
            }
            if ((drc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
                check_msg(cs, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                        " refcount=%" PRIu64 "\n", fix ? "Repairing" : "ERROR", e, drc);
                if (fix) {
                    e = drc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
                    qcow2_l2_set(s, table, j, e);
                    l2_dirty = true;
                    cs->res->corruptions_fixed++;
                } else {
                    cs->res->corruptions++;
                }
            }
        }
        if (l2_dirty) {
            qcow2_cache_forget(s->l2_table_cache, l2);
            ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L2, l2,
                                                s->cluster_size, false);
            if (ret == 0) {
                ret = bdrv_pwrite(bs->file, l2, s->cluster_size, table, 0);
            }
            if (ret < 0) {
                check_msg(cs, "ERROR: Could not write L2 table: %s\n", strerror(-ret));
                cs->res->check_errors++;
            }
        }
    }
    return 0;
}

/*
 * Rebuilding the refcount structure from cs->ref, placed as QEMU 7.2 places it
 * (so that the image layout after a repair is QEMU's, and a device that cannot
 * grow keeps it inside): each refcount block in the first unreferenced cluster
 * at or after the start of the range it describes, the table then in the first
 * run of unreferenced clusters from the start of the image. Every new cluster
 * is counted in cs->ref as it is taken, so the blocks describe themselves and
 * the table; the file grows only where no hole is left. Only unreferenced
 * clusters are written, so guest data and the old structures (referenced) stay
 * as they are until the header switches over.
 */
typedef struct Rebuild {
    uint64_t *table;        /* the new refcount table, host offsets by block index */
    uint64_t entries;       /* its length, a whole number of clusters */
    uint8_t *block;         /* one refcount block, as written */
    int64_t used_from;      /* [used_from, used_to): all referenced, found by a scan */
    int64_t used_to;
} Rebuild;

/* Take the first @n unreferenced clusters in a row from @from on (-errno). */
static int64_t rebuild_alloc(CheckState *cs, Rebuild *rb, int64_t from, int64_t n)
{
    int64_t c = from, run = 0, first_free = -1;

    if (from >= rb->used_from && from < rb->used_to) {
        c = rb->used_to;
    }
    for (; run < n; c++) {
        if (c < cs->nb_clusters && ref_get(cs, c)) {
            run = 0;
            continue;
        }
        if (first_free < 0) {
            first_free = c;
        }
        run++;
    }
    /* clusters only ever get taken: what was seen in use stays in use */
    if (from >= rb->used_from && from <= rb->used_to) {
        rb->used_to = first_free;
    } else {
        rb->used_from = from;
        rb->used_to = first_free;
    }
    if (!ref_grow(cs, c)) {
        return -ENOMEM;
    }
    for (int64_t k = c - n; k < c; k++) {
        ref_inc(cs, k);
    }
    return c - n;
}

/* Write refcount block @bi, a slice of cs->ref. */
static int rebuild_write_block(CheckState *cs, Rebuild *rb, uint64_t bi)
{
    BDRVQcow2State *s = cs->s;
    int64_t first = (int64_t)bi << s->refcount_block_bits;

    memset(rb->block, 0, s->cluster_size);
    for (int64_t j = 0; j < s->refcount_block_size; j++) {
        uint64_t v = first + j < cs->nb_clusters ? ref_get(cs, first + j) : 0;
        if (v) {
            qcow2_refblock_set(s, rb->block, j, MIN(v, s->refcount_max));
        }
    }
    return bdrv_pwrite(cs->bs->file, rb->table[bi], s->cluster_size, rb->block, 0);
}

/*
 * Give every block range with a cluster in use in [@first, @end) its block and
 * write it (again); ranges reached by new blocks past @end as well. 1 if the
 * table had to grow, 0 if not, or -errno.
 */
static int rebuild_place_blocks(CheckState *cs, Rebuild *rb, int64_t first, int64_t end)
{
    BDRVQcow2State *s = cs->s;
    int grown = 0;

    for (int64_t c = first; c < end; c++) {
        uint64_t bi = c >> s->refcount_block_bits;
        int64_t range = (int64_t)bi << s->refcount_block_bits;
        int ret;

        if (c >= cs->nb_clusters || !ref_get(cs, c)) {
            continue;
        }
        if (bi >= rb->entries || !rb->table[bi]) {
            /* never inside a range written already: its block would be stale */
            int64_t b = rebuild_alloc(cs, rb, range, 1);

            if (b < 0) {
                return b;
            }
            end = MAX(end, b + 1);
            if (bi >= rb->entries) {
                uint64_t n = DIV_ROUND_UP((bi + 1) * 8, s->cluster_size) * s->cluster_size / 8;

                if (n * 8 > QCOW_MAX_REFTABLE_SIZE) {
                    return -EFBIG;
                }
                rb->table = g_renew(uint64_t, rb->table, n);
                memset(rb->table + rb->entries, 0, (n - rb->entries) * 8);
                rb->entries = n;
                grown = 1;
            }
            rb->table[bi] = (uint64_t)b << s->cluster_bits;
        }
        ret = rebuild_write_block(cs, rb, bi);
        if (ret < 0) {
            return ret;
        }
        c = range + s->refcount_block_size - 1;
    }
    return grown;
}

/*
 * Write a whole new refcount structure from cs->ref, then switch the header to
 * it. The old structures become leaks that the following leak pass frees.
 */
static int rebuild_refcounts(CheckState *cs, bool quiet)
{
    BDRVQcow2State *s = cs->s;
    BlockDriverState *bs = cs->bs;
    Rebuild rb = { .block = g_malloc(s->cluster_size) };
    int64_t table_start, table_clusters;
    int ret;

    if (!quiet) {
        check_msg(cs, "Rebuilding refcount structure\n");
    }
    /* the caches hold the old structure: drop it */
    ret = qcow2_cache_empty(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto out;
    }
    ret = rebuild_place_blocks(cs, &rb, 0, cs->nb_clusters);
    for (;;) {
        if (ret < 0) {
            goto out;
        }
        table_clusters = size_to_clusters(s, rb.entries * 8);
        table_start = rebuild_alloc(cs, &rb, 0, table_clusters);
        if (table_start < 0) {
            ret = table_start;
            goto out;
        }
        /* the blocks that describe the table's clusters change */
        ret = rebuild_place_blocks(cs, &rb, table_start, table_start + table_clusters);
        if (ret == 0) {
            break;
        }
        /*
         * a longer table: look for a place again; this one stays taken, a leak
         * the leak pass frees, as in QEMU
         */
    }
    for (uint64_t b = 0; b < rb.entries; b++) {
        rb.table[b] = GUINT64_TO_BE(rb.table[b]);
    }
    ret = bdrv_pwrite(bs->file, table_start << s->cluster_bits,
                      table_clusters * s->cluster_size, rb.table, 0);
    for (uint64_t b = 0; b < rb.entries; b++) {
        rb.table[b] = GUINT64_FROM_BE(rb.table[b]);
    }
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        goto out;
    }
    {
        /* one header write switches table (and refcount width) together */
        uint64_t old_offset = s->refcount_table_offset;
        uint32_t old_size = s->refcount_table_size;
        s->refcount_table_offset = table_start << s->cluster_bits;
        s->refcount_table_size = rb.entries;
        ret = qcow2_update_header(bs);
        if (ret == 0) {
            ret = bdrv_flush(bs->file);
        }
        s->refcount_table_offset = old_offset;
        s->refcount_table_size = old_size;
        if (ret < 0) {
            goto out;
        }
    }
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&rb.table);
    s->refcount_table_offset = table_start << s->cluster_bits;
    s->refcount_table_size = rb.entries;
    s->free_cluster_index = 0;
    ret = 0;
out:
    g_free(rb.table);
    g_free(rb.block);
    return ret;
}

static int image_end_clusters(CheckState *cs)
{
    g_autofree RcReader *r = rc_reader_new();
    int64_t end = 0, limit = compare_end(cs);

    for (int64_t i = 0; i < limit; i++) {
        uint64_t rc = 0;
        if (ref_get(cs, i) || (rc_read(cs, r, i, &rc) == 0 && rc)) {
            end = i + 1;
        }
    }
    return end;
}

static int run_check(CheckState *cs)
{
    int64_t file_len = bdrv_getlength(cs->bs->file);

    if (file_len < 0) {
        cs->res->check_errors++;
        return file_len;
    }
    cs->nb_clusters = size_to_clusters(cs->s, file_len);
    cs->file_len = file_len;
    ref_free(cs);
    cs->ref = g_try_malloc0(MAX(cs->nb_clusters, 1));
    cs->ref_big = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (!cs->ref) {
        cs->res->check_errors++;
        return -ENOMEM;
    }
    return compute_references(cs);
}

int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = bs->opaque;
    CheckState cs = { .bs = bs, .s = s, .res = res, .fix = fix };
    BdrvCheckResult pre;
    int ret;

    /* marked corrupt by an earlier pass: QEMU has no driver left to ask */
    if (qcow2_is_dead(bs)) {
        return -ENOMEDIUM;
    }
    memset(res, 0, sizeof(*res));
    res->bfi.total_clusters = size_to_clusters(s, s->size);
    ret = qcow2_flush_caches(bs);
    if (ret < 0 && !(bs->open_flags & BDRV_O_RDWR)) {
        ret = 0;
    }
    /* the snapshot table first: what it reaches is counted as repaired */
    if (s->nb_snapshots) {
        ret = qcow2_check_read_snapshot_table(bs, fix, cs.quiet, &cs.snap);
        if (ret < 0) {
            goto out;
        }
        /* dropped entries leave the header at once: their clusters only leak */
        if (cs.snap.dropped && (fix & BDRV_FIX_ERRORS)) {
            ret = qcow2_check_drop_snapshots(bs, &cs.snap);
            if (ret < 0) {
                check_msg(&cs, "ERROR failed to update the snapshot count in the image "
                          "header: %s\n", strerror(-ret));
                res->check_errors++;
                goto out;
            }
        }
    }
    ret = run_check(&cs);
    if (ret < 0) {
        goto out;
    }
    /* first report everything as found */
    pre = *res;
    compare_refcounts(&cs, 0, true);
    if (fix && (res->leaks || res->corruptions || cs.rebuild)) {
        BdrvCheckResult found = *res;
        /* damage only a rebuild repairs, seen already: QEMU rebuilds at once */
        bool rebuild_now = cs.rebuild && (fix & BDRV_FIX_ERRORS);

        /* then repair what may be repaired, counting anew */
        res->leaks = 0;
        /* what the walk found stays (as QEMU keeps it), overflows included */
        res->corruptions = rebuild_now ? (int)cs.overflows : pre.corruptions;
        if (!rebuild_now) {
            cs.rebuild = false;
            compare_refcounts(&cs, fix, true);
        }
        if (cs.rebuild && !(fix & BDRV_FIX_ERRORS)) {
            check_msg(&cs, "ERROR need to rebuild refcount structures\n");
            res->corruptions = found.corruptions;
            ret = -EIO;
            goto out;
        }
        if (cs.rebuild) {
            uint64_t in_use_but_free = 0;
            g_autofree RcReader *r = rc_reader_new();
            for (int64_t i = 0; i < cs.ref_end; i++) {
                uint64_t rc;
                if (ref_get(&cs, i) && rc_read(&cs, r, i, &rc) == 0 && rc == 0) {
                    in_use_but_free++;
                }
            }
            ret = rebuild_refcounts(&cs, false);
            if (ret < 0) {
                check_msg(&cs, "ERROR: Could not rebuild the refcount structure: %s\n",
                          strerror(-ret));
                res->check_errors++;
                goto out;
            }
            /* the old structure now leaks: free it (reported, not counted) */
            {
                uint64_t before = res->corruptions;
                ret = run_check(&cs);
                if (ret < 0) {
                    goto out;
                }
                /* repaired by the rebuild: all found but overflows and what the
                 * metadata still gets wrong (counted again just now) */
                if (rebuild_now) {
                    uint64_t left = cs.overflows + (res->corruptions - before);
                    res->corruptions_fixed += (uint64_t)found.corruptions > left ?
                                              found.corruptions - left : 0;
                } else {
                    res->corruptions_fixed += in_use_but_free;
                }
            }
            compare_refcounts(&cs, BDRV_FIX_LEAKS, false);
        }
    }
    check_oflag_copied(&cs);
    /* entries repaired in memory: a new table, the old one (as read) freed */
    if (cs.snap.rewrite && (fix & BDRV_FIX_ERRORS)) {
        ret = qcow2_check_rewrite_snapshots(bs, &cs.snap);
        if (ret < 0) {
            check_msg(&cs, "ERROR failed to update snapshot table: %s\n",
                      strerror(-ret));
            res->check_errors++;
            goto out;
        }
    }
    res->corruptions += cs.snap.found;
    if (!cs.snap.rewrite && !cs.snap.dropped) {
        res->corruptions_fixed += cs.snap.fixed;
    } else {
        res->corruptions += cs.snap.fixed;
    }
    res->image_end_offset = (int64_t)image_end_clusters(&cs) << s->cluster_bits;
    if (fix) {
        ret = qcow2_flush_caches(bs);
        if (ret < 0) {
            res->check_errors++;
        }
        /* repaired refcounts are accurate again: a lazy-refcount image is clean */
        if (ret == 0 && !res->corruptions && !res->check_errors &&
            (s->incompatible_features & QCOW2_INCOMPAT_DIRTY) && !s->read_only) {
            ret = qcow2_mark_clean(bs);
            if (ret < 0) {
                res->check_errors++;
            }
        }
        /* a fully repaired image is consistent again */
        if ((fix & BDRV_FIX_ERRORS) && !res->corruptions && !res->check_errors &&
            (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
            s->incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
            qcow2_update_header(bs);
        }
    }
    ret = 0;
out:
    ref_free(&cs);
    qcow2_snapshot_check_free(&cs.snap);
    return ret;
}

/*
 * Amend's new refcount width, in walks over the old refcount table as QEMU
 * makes them (its progress shows them, iotest 112): allocation walks give every
 * range of the new width that holds a cluster in use a new refcount block, and
 * then the new table, through the allocator (so they land where QEMU's land);
 * they repeat until one allocates nothing. A last walk writes the new blocks,
 * each cluster keeping its refcount (leaks and too-low counts included; the
 * caller refused counts the new width cannot hold). Then the header switches to
 * the new table and width, and the old table and blocks are freed.
 */
typedef struct OrderChange {
    uint64_t *blocks;           /* new refcount block offsets by new index */
    uint64_t nb_blocks;         /* entries in @blocks */
    uint64_t table_offset;      /* the new table, 0 while none */
    uint64_t table_entries;
    int new_bits;               /* log2 of refcounts per new block */
} OrderChange;

static void order_progress(BlockDriverState *bs, int walk, int walks, uint64_t i)
{
    BDRVQcow2State *s = bs->opaque;

    bdrv_amend_report(bs, (int64_t)walk * s->refcount_table_size + i,
                      (int64_t)walks * s->refcount_table_size);
}

/* One allocation walk; 1 if it allocated anything, 0 if not, or -errno. */
static int order_alloc_walk(BlockDriverState *bs, OrderChange *oc, int walk)
{
    BDRVQcow2State *s = bs->opaque;
    int walks = MAX(walk + 2, 3);
    uint64_t per_new = 1ULL << oc->new_bits, highest = 0;
    bool allocated = false, any = false;
    g_autofree uint64_t *rc = g_new(uint64_t, s->refcount_block_size);

    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        int64_t first = (int64_t)i << s->refcount_block_bits;
        int ret;

        /* progress before each entry, and after the last */
        order_progress(bs, walk, walks, i);
        if (!(s->refcount_table[i] & REFT_OFFSET_MASK)) {
            continue;
        }
        ret = qcow2_get_refcounts(bs, first, s->refcount_block_size, rc);
        if (ret < 0) {
            return ret;
        }
        for (uint64_t j = 0; j < (uint64_t)s->refcount_block_size; j++) {
            uint64_t ni = (first + j) >> oc->new_bits;
            int64_t off;

            if (!rc[j]) {
                continue;
            }
            any = true;
            highest = MAX(highest, ni);
            if (ni >= oc->nb_blocks) {
                uint64_t n = MAX(ni + 1, oc->nb_blocks * 2);
                oc->blocks = g_renew(uint64_t, oc->blocks, n);
                memset(oc->blocks + oc->nb_blocks, 0, (n - oc->nb_blocks) * 8);
                oc->nb_blocks = n;
            }
            if (!oc->blocks[ni]) {
                off = qcow2_alloc_clusters(bs, s->cluster_size);
                if (off < 0) {
                    return off;
                }
                oc->blocks[ni] = off;
                allocated = true;
                /* the table may have grown, the block's range is done */
                ret = qcow2_get_refcounts(bs, first, s->refcount_block_size, rc);
                if (ret < 0) {
                    return ret;
                }
            }
            /* the rest of this new block's range inside the old block */
            j = MIN((ni + 1) * per_new - first, (uint64_t)s->refcount_block_size) - 1;
        }
    }
    order_progress(bs, walk + 1, walks, 0);
    if (any && oc->table_entries < highest + 1) {
        uint64_t bytes = QEMU_ALIGN_UP((highest + 1) * 8, s->cluster_size);
        int64_t off;

        if (oc->table_offset) {
            qcow2_free_clusters(bs, oc->table_offset, oc->table_entries * 8);
        }
        off = qcow2_alloc_clusters(bs, bytes);
        if (off < 0) {
            oc->table_offset = 0;
            return off;
        }
        oc->table_offset = off;
        oc->table_entries = bytes / 8;
        allocated = true;
    }
    return allocated;
}

int qcow2_change_refcount_order(BlockDriverState *bs, int new_order)
{
    BDRVQcow2State *s = bs->opaque;
    OrderChange oc = { .new_bits = s->cluster_bits - (new_order - 3) };
    g_autofree uint64_t *old_blocks = NULL;
    g_autofree uint64_t *table = NULL;
    g_autofree uint8_t *buf = NULL;
    g_autofree uint64_t *rc = NULL;
    uint64_t old_table_offset, old_table_bytes, per_new = 1ULL << oc.new_bits;
    uint32_t nb_old = 0;
    int walk, ret;

    ret = qcow2_flush_caches(bs);
    for (walk = 0; ret >= 0; walk++) {
        ret = order_alloc_walk(bs, &oc, walk);
        if (ret == 0) {
            break;
        }
    }
    if (ret < 0) {
        goto out;
    }
    walk++;
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        goto out;
    }
    /* the writing walk: each new block from the refcounts it takes over */
    buf = g_malloc(s->cluster_size);
    rc = g_new(uint64_t, MIN(per_new, (uint64_t)s->refcount_block_size));
    for (uint64_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t first = i << s->refcount_block_bits;
        uint64_t end = first + s->refcount_block_size;

        order_progress(bs, walk, walk + 1, i);
        for (uint64_t ni = first >> oc.new_bits; ni < oc.nb_blocks &&
             ni * per_new < end; ni++) {
            uint64_t lo = MAX(ni * per_new, first), hi = MIN((ni + 1) * per_new, end);

            if (!oc.blocks[ni]) {
                continue;
            }
            if (lo == ni * per_new || lo == first) {
                if (lo == ni * per_new) {
                    memset(buf, 0, s->cluster_size);
                } else {
                    ret = bdrv_pread(bs->file, oc.blocks[ni], s->cluster_size, buf, 0);
                    if (ret < 0) {
                        goto out;
                    }
                }
            }
            if (s->refcount_table[i] & REFT_OFFSET_MASK) {
                ret = qcow2_get_refcounts(bs, lo, hi - lo, rc);
                if (ret < 0) {
                    goto out;
                }
                for (uint64_t c = lo; c < hi; c++) {
                    if (rc[c - lo]) {
                        uint64_t v = rc[c - lo];
                        /* the new width's setter, the old width still in force */
                        int old_order = s->refcount_order;
                        s->refcount_order = new_order;
                        qcow2_refblock_set(s, buf, c - ni * per_new, v);
                        s->refcount_order = old_order;
                    }
                }
            }
            ret = bdrv_pwrite(bs->file, oc.blocks[ni], s->cluster_size, buf, 0);
            if (ret < 0) {
                goto out;
            }
        }
    }
    order_progress(bs, walk + 1, walk + 1, 0);
    table = g_new0(uint64_t, oc.table_entries);
    for (uint64_t ni = 0; ni < MIN(oc.nb_blocks, oc.table_entries); ni++) {
        table[ni] = GUINT64_TO_BE(oc.blocks[ni]);
    }
    ret = bdrv_pwrite(bs->file, oc.table_offset, oc.table_entries * 8, table, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        goto out;
    }
    /* switch: the header gets the new table and width in one write */
    old_table_offset = s->refcount_table_offset;
    old_table_bytes = (uint64_t)s->refcount_table_size * 8;
    old_blocks = g_new(uint64_t, MAX(s->refcount_table_size, 1));
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        if (s->refcount_table[i] & REFT_OFFSET_MASK) {
            old_blocks[nb_old++] = s->refcount_table[i] & REFT_OFFSET_MASK;
        }
    }
    ret = qcow2_cache_empty(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto out;
    }
    s->refcount_order = new_order;
    s->refcount_bits = 1 << new_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                                             : (1ULL << s->refcount_bits) - 1;
    s->refcount_block_bits = oc.new_bits;
    s->refcount_block_size = 1 << oc.new_bits;
    for (uint64_t e = 0; e < oc.table_entries; e++) {
        table[e] = GUINT64_FROM_BE(table[e]);
    }
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&table);
    s->refcount_table_offset = oc.table_offset;
    s->refcount_table_size = oc.table_entries;
    s->free_cluster_index = 0;
    ret = qcow2_update_header(bs);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        goto out;
    }
    /* the old structure is referenced no more */
    for (uint32_t i = 0; i < nb_old; i++) {
        qcow2_free_clusters(bs, old_blocks[i], s->cluster_size);
    }
    qcow2_free_clusters(bs, old_table_offset, old_table_bytes);
    ret = qcow2_flush_caches(bs);
out:
    g_free(oc.blocks);
    return ret;
}
