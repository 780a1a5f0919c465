/*
 * qcow2 internal snapshots: the snapshot table (reading, validating, writing a
 * new copy), and the operations on it: create, apply (goto), delete, list, and
 * temporarily showing a snapshot on a read-only node (convert/measure -l).
 *
 * Ordering (crash safety). The snapshot table is never changed in place: a new
 * table is written and flushed, then one header write switches to it, then the
 * old table is freed. References a snapshot adds are counted (and flushed)
 * before anything can reach them; references it drops are uncounted only after
 * nothing reaches them any more. A crash therefore leaks clusters at worst.
 * The one window nobody can close: between a refcount change and the COPIED
 * flags that follow it, QEMU's check reports OFLAG_COPIED mismatches (data is
 * safe: a cluster is never written in place while a snapshot shares it, since
 * refcounts go up before the COPIED flags go away, and come down only after the
 * snapshot is gone).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

#define SNAPSHOT_ENTRY_FIXED 40
#define SNAPSHOT_EXTRA_SIZE 24          /* what QEMU 7.2 writes */
#define SNAPSHOT_MAX_EXTRA 1024
#define QCOW_MAX_SNAPSHOTS_SIZE (64 * MiB)

/*
 * How the table is read. Strict (open, snapshot operations): an entry with more
 * than SNAPSHOT_MAX_EXTRA bytes of extra data, or a table past
 * QCOW_MAX_SNAPSHOTS_SIZE, is an error naming the repair. With @repair (check
 * -r all) such extra data is cut to SNAPSHOT_MAX_EXTRA bytes and the entries
 * past the limit are dropped, each reported (unless @quiet) and counted.
 */
typedef struct SnapshotTableRead {
    bool repair, quiet;
    uint64_t extent;        /* out: bytes the entries kept take on disk */
    uint32_t fixed;         /* out: repairs made */
    bool rewrite;           /* out: kept entries changed, the table needs rewriting */
} SnapshotTableRead;

static int read_table_ex(BlockDriverState *bs, uint32_t nb, GPtrArray *out,
                         SnapshotTableRead *rd, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = s->snapshots_offset;
    uint64_t off = start;                  /* past the file's end reads zeros */
    uint64_t table_size = 0;               /* as kept in memory */

    for (uint32_t i = 0; i < nb; i++) {
        uint8_t hdr[SNAPSHOT_ENTRY_FIXED];
        Qcow2SnapshotInfo *sn;
        uint32_t extra, keep_extra;
        uint16_t id_len, name_len;
        g_autofree uint8_t *rest = NULL;
        uint64_t disk_len;
        int ret;

        /* entries start 8-byte aligned; the last one's padding is not counted */
        off = QEMU_ALIGN_UP(off, 8);
        ret = bdrv_pread(bs->file, off, sizeof(hdr), hdr, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read snapshot table");
            return ret;
        }
        extra = ldl_be(hdr + 36);
        id_len = lduw_be(hdr + 12);
        name_len = lduw_be(hdr + 14);
        keep_extra = extra;
        if (extra > SNAPSHOT_MAX_EXTRA) {
            if (!rd || !rd->repair) {
                error_setg(errp, "Too much extra metadata in snapshot table entry %u\n"
                           "You can force-remove this extra metadata with qemu-img "
                           "check -r all", i);
                return -EFBIG;
            }
            if (!rd->quiet) {
                fprintf(stderr, "Discarding too much extra metadata in snapshot table "
                        "entry %u (%" PRIu32 " > %u)\n", i, extra, SNAPSHOT_MAX_EXTRA);
            }
            keep_extra = SNAPSHOT_MAX_EXTRA;
            rd->fixed++;
            rd->rewrite = true;
        }
        disk_len = SNAPSHOT_ENTRY_FIXED + (uint64_t)extra + id_len + name_len;
        table_size += QEMU_ALIGN_UP(SNAPSHOT_ENTRY_FIXED + keep_extra + id_len +
                                    name_len, 8);
        if (table_size > QCOW_MAX_SNAPSHOTS_SIZE) {
            if (!rd || !rd->repair) {
                error_setg(errp, "Snapshot table is too big\nYou can force-remove all "
                           "%u overhanging snapshots with qemu-img check -r all", nb - i);
                return -EFBIG;
            }
            if (!rd->quiet) {
                fprintf(stderr, "Discarding %u overhanging snapshots (snapshot table "
                        "is too big)\n", nb - i);
            }
            rd->fixed += nb - i;
            break;
        }
        rest = g_malloc0((size_t)keep_extra + id_len + name_len + 1);
        ret = bdrv_pread(bs->file, off + sizeof(hdr), keep_extra, rest, 0);
        if (ret == 0) {
            ret = bdrv_pread(bs->file, off + sizeof(hdr) + extra, id_len + name_len,
                             rest + keep_extra, 0);
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read snapshot table");
            return ret;
        }
        sn = g_new0(Qcow2SnapshotInfo, 1);
        sn->l1_table_offset = ldq_be(hdr);
        sn->l1_size = ldl_be(hdr + 8);
        sn->date_sec = ldl_be(hdr + 16);
        sn->date_nsec = ldl_be(hdr + 20);
        sn->vm_clock_nsec = ldq_be(hdr + 24);
        sn->vm_state_size = ldl_be(hdr + 32);
        if (keep_extra >= 8) {
            sn->vm_state_size = ldq_be(rest);
        }
        sn->disk_size = keep_extra >= 16 ? ldq_be(rest + 8) : s->size;
        sn->icount = keep_extra >= 24 ? (int64_t)ldq_be(rest + 16) : -1;
        sn->extra_size = keep_extra;
        sn->extra = g_memdup2(rest, keep_extra);
        sn->entry_size = disk_len;
        sn->id_str = g_strndup((char *)rest + keep_extra, id_len);
        sn->name = g_strndup((char *)rest + keep_extra + id_len, name_len);
        if (out) {
            g_ptr_array_add(out, sn);
        } else {
            qcow2_snapshot_info_free(sn);
        }
        off += disk_len;
    }
    if (rd) {
        rd->extent = off - start;
    }
    if (nb == s->nb_snapshots) {
        s->snapshots_size = off - start;
    }
    return 0;
}

static int read_table(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;

    /* only qemu-img check opens an image with more (and repairs it) */
    if (s->nb_snapshots > QCOW_MAX_SNAPSHOTS) {
        error_setg(errp, "Snapshot table too large");
        return -EFBIG;
    }
    return read_table_ex(bs, s->nb_snapshots, out, NULL, errp);
}

/*
 * qemu-img check's reading of the snapshot table (see qcow2.h).
 */
int qcow2_check_read_snapshot_table(BlockDriverState *bs, int fix, bool quiet,
                                    Qcow2SnapshotCheck *sc)
{
    BDRVQcow2State *s = bs->opaque;
    SnapshotTableRead rd = { .repair = fix & BDRV_FIX_ERRORS, .quiet = quiet };
    g_autoptr(GError) err = NULL;
    uint32_t nb = s->nb_snapshots;
    int ret;

    memset(sc, 0, sizeof(*sc));
    sc->list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    if (nb > QCOW_MAX_SNAPSHOTS) {
        if (!rd.repair) {
            if (!quiet) {
                fprintf(stderr, "qemu-img: ERROR snapshot table too large\n"
                        "You can force-remove all %u overhanging snapshots with "
                        "qemu-img check -r all\n", nb - QCOW_MAX_SNAPSHOTS);
            }
            return -EFBIG;
        }
        if (!quiet) {
            fprintf(stderr, "Discarding %u overhanging snapshots\n",
                    nb - QCOW_MAX_SNAPSHOTS);
        }
        sc->fixed += nb - QCOW_MAX_SNAPSHOTS;
        nb = QCOW_MAX_SNAPSHOTS;
    }
    ret = read_table_ex(bs, nb, sc->list, &rd, &err);
    if (ret < 0) {
        if (!quiet) {
            fprintf(stderr, "qemu-img: ERROR failed to read the snapshot table: %s\n",
                    err->message);
        }
        return ret;
    }
    sc->fixed += rd.fixed;
    sc->rewrite = rd.rewrite;
    sc->extent = rd.extent;
    s->snapshots_size = rd.extent;      /* what the overlap checks protect */
    sc->dropped = sc->list->len != s->nb_snapshots;
    /* qcow2 v3 needs the large VM state size and the disk size in every entry */
    for (guint i = 0; s->version >= 3 && i < sc->list->len; i++) {
        Qcow2SnapshotInfo *sn = sc->list->pdata[i];
        if (sn->extra_size >= 16) {
            continue;
        }
        if (!quiet) {
            fprintf(stderr, "%s snapshot table entry %u is incomplete\n",
                    rd.repair ? "Repairing" : "ERROR", i);
        }
        if (rd.repair) {
            sc->fixed++;
            sc->rewrite = true;
        } else {
            sc->found++;
        }
    }
    return 0;
}

void qcow2_snapshot_check_free(Qcow2SnapshotCheck *sc)
{
    if (sc->list) {
        g_ptr_array_unref(sc->list);
        sc->list = NULL;
    }
}

/* The header's snapshot count follows the entries check dropped (table unmoved). */
int qcow2_check_drop_snapshots(BlockDriverState *bs, Qcow2SnapshotCheck *sc)
{
    BDRVQcow2State *s = bs->opaque;
    uint32_t old_nb = s->nb_snapshots;
    int ret;

    s->nb_snapshots = sc->list->len;
    ret = qcow2_update_header(bs);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        s->nb_snapshots = old_nb;
        return ret;
    }
    sc->dropped = false;
    return 0;
}

void qcow2_snapshot_info_free(gpointer p)
{
    Qcow2SnapshotInfo *sn = p;

    g_free(sn->id_str);
    g_free(sn->name);
    g_free(sn->extra);
    g_free(sn);
}

int qcow2_read_snapshots(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    return read_table(bs, out, errp);
}

/* QEMU's checks of a snapshot's L1 table location; 0 or -errno with errp set. */
int qcow2_check_snapshot_l1(BlockDriverState *bs, Qcow2SnapshotInfo *sn, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if ((uint64_t)sn->l1_size * 8 > QCOW_MAX_L1_SIZE) {
        error_setg(errp, "Snapshot L1 table too large");
        return -EFBIG;
    }
    if (offset_into_cluster(s, sn->l1_table_offset)) {
        error_setg(errp, "Snapshot L1 table offset invalid");
        return -EINVAL;
    }
    return 0;
}

int qcow2_read_snapshots_check(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    int ret;

    if (!s->nb_snapshots) {
        return 0;
    }
    if (has_data_file(bs)) {
        error_setg(errp, "Images with an external data file cannot have internal "
                   "snapshots");
        return -EINVAL;
    }
    /* qemu-img check reads (and reports, and repairs) the table itself */
    if (bs->open_flags & BDRV_O_CHECK) {
        return 0;
    }
    ret = read_table(bs, list, errp);
    if (ret < 0) {
        /* what check -r all repairs is named as such, without a prefix */
        if (ret != -EFBIG) {
            error_prepend(errp, "Could not read snapshots: ");
        }
        return ret;
    }
    /* as QEMU: a bad snapshot L1 table fails only the operations that use it */
    return 0;
}

/* ---- writing the table ---- */

static void discard_free_range(BlockDriverState *bs, uint64_t off, uint64_t len);

static uint64_t entry_size_for(Qcow2SnapshotInfo *sn)
{
    uint32_t extra = MAX(SNAPSHOT_EXTRA_SIZE, sn->extra_size);

    return QEMU_ALIGN_UP(SNAPSHOT_ENTRY_FIXED + extra + strlen(sn->id_str) +
                         strlen(sn->name), 8);
}

static void serialize_entry(Qcow2SnapshotInfo *sn, uint8_t *p)
{
    uint32_t extra = MAX(SNAPSHOT_EXTRA_SIZE, sn->extra_size);
    size_t id_len = strlen(sn->id_str), name_len = strlen(sn->name);

    stq_be(p, sn->l1_table_offset);
    stl_be(p + 8, sn->l1_size);
    stw_be(p + 12, id_len);
    stw_be(p + 14, name_len);
    stl_be(p + 16, sn->date_sec);
    stl_be(p + 20, sn->date_nsec);
    stq_be(p + 24, sn->vm_clock_nsec);
    /* the 32-bit field holds the size unless it does not fit */
    stl_be(p + 32, sn->vm_state_size > UINT32_MAX ? 0 : sn->vm_state_size);
    stl_be(p + 36, extra);
    p += SNAPSHOT_ENTRY_FIXED;
    if (sn->extra_size > SNAPSHOT_EXTRA_SIZE) {
        memcpy(p, sn->extra, sn->extra_size);      /* unknown extra data survives */
    }
    stq_be(p, sn->vm_state_size);
    stq_be(p + 8, sn->disk_size);
    stq_be(p + 16, sn->icount);
    p += extra;
    memcpy(p, sn->id_str, id_len);
    memcpy(p + id_len, sn->name, name_len);
}

/*
 * Write @list as a new snapshot table, then switch the header to it (one
 * write), then free the old table.
 */
static int write_table_over(BlockDriverState *bs, GPtrArray *list, uint64_t old_size)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old_offset = s->snapshots_offset, size = 0, pos = 0;
    uint64_t last_pad = 0;
    uint32_t old_nb = s->nb_snapshots;
    g_autofree uint8_t *buf = NULL;
    int64_t offset = 0;
    int ret;

    for (guint i = 0; i < list->len; i++) {
        size += entry_size_for(list->pdata[i]);
    }
    if (size > QCOW_MAX_SNAPSHOTS_SIZE) {
        return -EFBIG;
    }
    if (size) {
        offset = qcow2_alloc_clusters(bs, size);
        if (offset < 0) {
            return offset;
        }
        buf = g_malloc0(size);
        for (guint i = 0; i < list->len; i++) {
            Qcow2SnapshotInfo *sn = list->pdata[i];
            serialize_entry(sn, buf + pos);
            pos += entry_size_for(sn);
            last_pad = entry_size_for(sn) - (SNAPSHOT_ENTRY_FIXED +
                       MAX(SNAPSHOT_EXTRA_SIZE, sn->extra_size) + strlen(sn->id_str) +
                       strlen(sn->name));
        }
        /* refcounts (R2) and everything the new entries reach are on disk first */
        ret = qcow2_flush_caches(bs);
        if (ret < 0) {
            goto fail;
        }
        ret = qcow2_pre_write_overlap_check(bs, 0, offset, size, false);
        if (ret < 0) {
            goto fail;
        }
        /* as QEMU: the last entry's padding is not written */
        ret = bdrv_pwrite(bs->file, offset, size - last_pad, buf, 0);
        if (ret < 0) {
            goto fail;
        }
        ret = bdrv_flush(bs->file);
        if (ret < 0) {
            goto fail;
        }
    } else {
        ret = qcow2_flush_caches(bs);
        if (ret < 0) {
            return ret;
        }
    }
    s->nb_snapshots = list->len;
    s->snapshots_offset = offset;
    s->snapshots_size = size - last_pad;
    ret = qcow2_update_header(bs);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        s->nb_snapshots = old_nb;
        s->snapshots_offset = old_offset;
        s->snapshots_size = old_size;
        goto fail;
    }
    if (old_nb && old_size) {
        qcow2_free_clusters(bs, old_offset, old_size);
        discard_free_range(bs, old_offset, old_size);
    }
    return 0;

fail:
    if (size) {
        qcow2_free_clusters(bs, offset, size);
    }
    return ret;
}

/* The same, freeing the current table where it lies (all of it, as read). */
static int write_table(BlockDriverState *bs, GPtrArray *list)
{
    BDRVQcow2State *s = bs->opaque;
    SnapshotTableRead rd = { 0 };
    uint64_t old_size = 0;

    /* a table that cannot be read is left in place (a leak at worst) */
    if (s->nb_snapshots && s->nb_snapshots <= QCOW_MAX_SNAPSHOTS &&
        read_table_ex(bs, s->nb_snapshots, NULL, &rd, NULL) == 0) {
        old_size = rd.extent;
    }
    return write_table_over(bs, list, old_size);
}

int qcow2_check_rewrite_snapshots(BlockDriverState *bs, Qcow2SnapshotCheck *sc)
{
    int ret = write_table_over(bs, sc->list, sc->extent);

    if (ret == 0) {
        sc->rewrite = sc->dropped = false;
    }
    return ret;
}

/* qcow2 v3 needs 16 bytes of extra data in every entry: rewrite if one lacks them. */
int qcow2_snapshots_upgrade(BlockDriverState *bs, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    bool need = false;
    int ret;

    if (!s->nb_snapshots) {
        return 0;
    }
    ret = read_table(bs, list, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < list->len; i++) {
        need |= ((Qcow2SnapshotInfo *)list->pdata[i])->extra_size < 16;
    }
    if (!need) {
        return 0;
    }
    ret = write_table(bs, list);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update the snapshot table");
    }
    return ret;
}

/*
 * Pass down discards of the image file clusters under [off, off+len) now free.
 * As in QEMU (pass-discard-snapshot defaults to on, and the file node always
 * takes discards from its format driver), whatever the node's discard option.
 */
static void discard_free_range(BlockDriverState *bs, uint64_t off, uint64_t len)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t start = 0, run = 0;

    if (!len) {
        return;
    }
    for (uint64_t c = off >> s->cluster_bits; c <= (off + len - 1) >> s->cluster_bits;
         c++) {
        uint64_t rc = 1;
        if (qcow2_get_refcount(bs, c, &rc) == 0 && rc == 0) {
            if (run && start + run == c << s->cluster_bits) {
                run += s->cluster_size;
                continue;
            }
            if (run) {
                bdrv_pdiscard_always(bs->file, start, run);
            }
            start = c << s->cluster_bits;
            run = s->cluster_size;
        }
    }
    if (run) {
        bdrv_pdiscard_always(bs->file, start, run);
    }
}

/* ---- refcounts of everything an L1 table reaches ---- */

/*
 * Add @addend (+1, -1 or 0) to the refcount of every L2 table and data cluster
 * that L1 table @l1 (host order, @l1_size entries) reaches, and set the COPIED
 * flags of the entries to match the refcounts afterwards (in the L2 tables, and
 * in @l1 itself; *l1_changed tells whether @l1 changed). The L2 tables of a
 * deleted L1 table that get freed here are dropped from the cache unwritten.
 * Clusters freed go to @freed (if not NULL), for discards once the change is
 * on disk.
 */
typedef struct FreedRange {
    uint64_t offset, len;
} FreedRange;

static void note_freed(GArray *freed, uint64_t offset, uint64_t len)
{
    FreedRange r = { offset, len };

    if (freed) {
        g_array_append_val(freed, r);
    }
}

static int update_l1_refcounts(BlockDriverState *bs, uint64_t *l1, uint32_t l1_size,
                               int addend, bool *l1_changed, GArray *freed)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    *l1_changed = false;
    if (addend > 0) {
        /* refcount increases reach the disk before the COPIED flags go (C2) */
        ret = qcow2_cache_set_dependency(bs, s->l2_table_cache, s->refcount_block_cache);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_offset = l1[i] & L1E_OFFSET_MASK, rc;
        uint64_t *l2;
        bool dirty = false;

        if (!l2_offset) {
            continue;
        }
        if (offset_into_cluster(s, l2_offset)) {
            qcow2_signal_corruption(bs, true, l2_offset, -1, "L2 table offset %#"
                                    PRIx64 " unaligned (L1 index: %#" PRIx32 ")",
                                    l2_offset, i);
            return -EIO;
        }
        ret = qcow2_cache_get(bs, s->l2_table_cache, l2_offset, (void **)&l2);
        if (ret < 0) {
            return ret;
        }
        for (int j = 0; j < s->l2_size; j++) {
            uint64_t e = qcow2_l2_get(s, l2, j), ne = e;
            uint64_t host = e & L2E_OFFSET_MASK;

            switch (qcow2_get_cluster_type(bs, e)) {
            case QCOW2_CLUSTER_COMPRESSED: {
                uint64_t start, len;
                qcow2_compressed_range(s, e, &start, &len);
                if (addend) {
                    ret = qcow2_update_refcounts_existing(bs, start, len, addend);
                    if (addend < 0) {
                        note_freed(freed, start, len);   /* discarded where free */
                    }
                }
                rc = 2;         /* compressed clusters never carry COPIED */
                break;
            }
            case QCOW2_CLUSTER_NORMAL:
            case QCOW2_CLUSTER_ZERO_ALLOC:
                if (offset_into_cluster(s, host)) {
                    qcow2_cache_put(s->l2_table_cache, (void **)&l2);
                    qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation "
                                            "offset %#" PRIx64 " unaligned (L2 "
                                            "offset: %#" PRIx64 ", L2 index: %#x)",
                                            host, l2_offset, j);
                    return -EIO;
                }
                ret = 0;
                if (addend) {
                    ret = qcow2_update_refcounts_existing(bs, host, 1, addend);
                }
                if (ret == 0) {
                    ret = qcow2_get_refcount(bs, host >> s->cluster_bits, &rc);
                }
                if (ret == 0 && addend < 0 && rc == 0) {
                    note_freed(freed, host, s->cluster_size);
                }
                break;
            default:
                ret = 0;
                rc = 0;
                break;
            }
            if (ret < 0) {
                qcow2_cache_put(s->l2_table_cache, (void **)&l2);
                return ret == -ERANGE ? -EINVAL : ret;  /* QEMU's code for overflow */
            }
            if (rc == 1) {
                ne |= QCOW_OFLAG_COPIED;
            } else {
                ne &= ~QCOW_OFLAG_COPIED;
            }
            if (ne != e) {
                qcow2_l2_set(s, l2, j, ne);
                dirty = true;
            }
        }
        if (dirty) {
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, l2);
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&l2);
        if (addend) {
            ret = qcow2_update_refcounts_existing(bs, l2_offset, 1, addend);
            if (ret < 0) {
                return ret == -ERANGE ? -EINVAL : ret;
            }
        }
        ret = qcow2_get_refcount(bs, l2_offset >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if (addend < 0 && rc == 0) {
            note_freed(freed, l2_offset, s->cluster_size);
        }
        {
            uint64_t ne = rc == 1 ? l1[i] | QCOW_OFLAG_COPIED : l1[i] & ~QCOW_OFLAG_COPIED;
            if (ne != l1[i]) {
                l1[i] = ne;
                *l1_changed = true;
            }
        }
    }
    return 0;
}

/* The active L1 table's refcounts and COPIED flags; writes the L1 if it changed. */
static int update_active_refcounts(BlockDriverState *bs, int addend)
{
    BDRVQcow2State *s = bs->opaque;
    bool changed;
    int ret = update_l1_refcounts(bs, s->l1_table, s->l1_size, addend, &changed, NULL);

    if (ret < 0) {
        return ret;
    }
    ret = qcow2_flush_caches(bs);
    if (ret == 0 && changed) {
        ret = qcow2_write_l1_entries(bs, 0, s->l1_size);
    }
    return ret;
}

static int read_l1(BlockDriverState *bs, Qcow2SnapshotInfo *sn, uint64_t **out)
{
    uint64_t *l1 = g_new0(uint64_t, MAX(sn->l1_size, 1));
    int ret = bdrv_pread(bs->file, sn->l1_table_offset, (int64_t)sn->l1_size * 8, l1, 0);

    if (ret < 0) {
        g_free(l1);
        return ret;
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    *out = l1;
    return 0;
}

/*
 * The inactive L2 overlap check (overlap-check=all or inactive-l2=on): every
 * snapshot's L1 table is read from the disk each time, as QEMU does; a table
 * whose location is invalid fails the check with QEMU's code (so the write).
 */
int qcow2_snapshots_l2_overlap(BlockDriverState *bs, int64_t offset, int64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    int ret = read_table(bs, list, NULL);

    for (guint i = 0; ret == 0 && i < list->len; i++) {
        Qcow2SnapshotInfo *sn = list->pdata[i];
        g_autofree uint64_t *l1 = NULL;

        ret = qcow2_check_snapshot_l1(bs, sn, NULL);
        if (ret == 0) {
            ret = read_l1(bs, sn, &l1);
        }
        for (uint32_t j = 0; ret == 0 && j < sn->l1_size; j++) {
            uint64_t l2 = l1[j] & L1E_OFFSET_MASK;

            if (l2 && offset < (int64_t)(l2 + s->cluster_size) &&
                (int64_t)l2 < offset + size) {
                return 1;
            }
        }
    }
    return ret;
}

/* Discard what @freed lists, where it is still free (after the flush). */
static void discard_freed(BlockDriverState *bs, GArray *freed)
{
    for (guint i = 0; i < freed->len; i++) {
        FreedRange *r = &g_array_index(freed, FreedRange, i);
        discard_free_range(bs, r->offset, r->len);
    }
}

/* Write an inactive L1 table (host order) back, with its COPIED flags (as QEMU). */
static int write_l1_copy(BlockDriverState *bs, uint64_t offset, const uint64_t *l1,
                         uint32_t l1_size)
{
    g_autofree uint64_t *buf = g_new0(uint64_t, MAX(l1_size, 1));
    int ret;

    for (uint32_t i = 0; i < l1_size; i++) {
        buf[i] = GUINT64_TO_BE(l1[i]);
    }
    ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_INACTIVE_L1, offset,
                                        (int64_t)l1_size * 8, false);
    if (ret < 0) {
        return ret;
    }
    return bdrv_pwrite(bs->file, offset, (int64_t)l1_size * 8, buf, 0);
}

/* ---- create / apply / delete ---- */

static Qcow2SnapshotInfo *find_snapshot(GPtrArray *list, const char *name, bool id_first,
                                        guint *index)
{
    for (int pass = 0; pass < 2; pass++) {
        bool by_id = (pass == 0) == id_first;
        for (guint i = 0; i < list->len; i++) {
            Qcow2SnapshotInfo *sn = list->pdata[i];
            if (!strcmp(by_id ? sn->id_str : sn->name, name)) {
                if (index) {
                    *index = i;
                }
                return sn;
            }
        }
    }
    return NULL;
}

int qcow2_snapshot_create(BlockDriverState *bs, const char *name, int64_t vm_clock_nsec,
                          int64_t icount)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    g_autofree uint64_t *l1 = NULL;
    Qcow2SnapshotInfo *sn;
    uint64_t max_id = 0;
    int64_t l1_offset, now;
    int ret;

    /* the format forbids internal snapshots with an external data file */
    if (has_data_file(bs)) {
        return -ENOTSUP;
    }
    if (s->nb_snapshots >= QCOW_MAX_SNAPSHOTS) {
        return -EFBIG;
    }
    ret = read_table(bs, list, NULL);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < list->len; i++) {
        uint64_t id = g_ascii_strtoull(((Qcow2SnapshotInfo *)list->pdata[i])->id_str,
                                       NULL, 10);
        max_id = MAX(max_id, id);
    }
    now = g_get_real_time();
    sn = g_new0(Qcow2SnapshotInfo, 1);
    sn->id_str = g_strdup_printf("%" PRIu64, max_id + 1);
    sn->name = g_strdup(name);
    sn->date_sec = now / G_USEC_PER_SEC;
    sn->date_nsec = (now % G_USEC_PER_SEC) * 1000;
    sn->disk_size = s->size;
    sn->vm_clock_nsec = vm_clock_nsec;
    sn->icount = icount;
    sn->l1_size = s->l1_size;
    g_ptr_array_add(list, sn);

    /* 1. a copy of the active L1 table (verbatim, as QEMU writes it) */
    l1_offset = qcow2_alloc_clusters(bs, MAX((uint64_t)s->l1_size * 8, 1));
    if (l1_offset < 0) {
        return l1_offset;
    }
    sn->l1_table_offset = l1_offset;
    l1 = g_new0(uint64_t, MAX(s->l1_size, 1));
    for (uint32_t i = 0; i < s->l1_size; i++) {
        l1[i] = GUINT64_TO_BE(s->l1_table[i]);
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, l1_offset, (int64_t)s->l1_size * 8, false);
    if (ret < 0) {
        goto fail;
    }
    if (s->l1_size) {
        ret = bdrv_pwrite(bs->file, l1_offset, (int64_t)s->l1_size * 8, l1, 0);
        if (ret < 0) {
            goto fail;
        }
    }
    /* 2. everything it reaches gains a reference; COPIED flags go */
    ret = update_active_refcounts(bs, 1);
    if (ret < 0) {
        /* references already taken stay (leaks), and so does the copy, as in QEMU */
        qcow2_flush_caches(bs);
        return ret;
    }
    /* 3. the new table, switched to by one header write */
    ret = write_table(bs, list);
    if (ret < 0) {
        /* the references taken stay: leaks, never shared clusters written */
        goto fail;
    }
    return 0;

fail:
    qcow2_free_clusters(bs, l1_offset, MAX((uint64_t)s->l1_size * 8, 1));
    return ret;
}

static int do_goto(BlockDriverState *bs, const char *name, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    g_autofree uint64_t *sn_l1 = NULL;
    g_autofree uint64_t *old_l1 = NULL;
    g_autoptr(GError) local_err = NULL;
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(FreedRange));
    Qcow2SnapshotInfo *sn;
    uint32_t old_size;
    bool changed;
    int ret;

    ret = read_table(bs, list, errp);
    if (ret < 0) {
        return ret;
    }
    sn = find_snapshot(list, name, true, NULL);
    if (!sn) {
        return -ENOENT;
    }
    ret = qcow2_check_snapshot_l1(bs, sn, &local_err);
    if (ret < 0) {
        error_report("%s", local_err->message);
        return ret;
    }
    if (sn->disk_size != s->size) {
        ret = qcow2_truncate(bs, sn->disk_size, false, PREALLOC_MODE_OFF, 0, errp);
        if (ret < 0) {
            return ret;
        }
    }
    ret = read_l1(bs, sn, &sn_l1);
    if (ret < 0) {
        return ret;
    }
    if (sn->l1_size > s->l1_size) {
        ret = qcow2_grow_l1_table(bs, sn->l1_size, true);
        if (ret < 0) {
            return ret;
        }
    }
    /* 1. the snapshot's clusters gain the active table's reference (leaks only) */
    ret = update_l1_refcounts(bs, sn_l1, sn->l1_size, 1, &changed, NULL);
    if (ret == 0 && changed) {
        ret = write_l1_copy(bs, sn->l1_table_offset, sn_l1, sn->l1_size);
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret < 0) {
        return ret;
    }
    /* 2. one write of the active L1 switches to the snapshot's tables, all shared */
    old_size = s->l1_size;
    old_l1 = g_memdup2(s->l1_table, (gsize)old_size * 8);
    for (uint32_t i = 0; i < s->l1_size; i++) {
        s->l1_table[i] = i < sn->l1_size ? sn_l1[i] & ~QCOW_OFLAG_COPIED : 0;
    }
    ret = qcow2_write_l1_entries(bs, 0, s->l1_size);
    if (ret == 0) {
        ret = bdrv_flush(bs->file);
    }
    if (ret < 0) {
        memcpy(s->l1_table, old_l1, (gsize)old_size * 8);
        return ret;
    }
    qcow2_l2_window_free(bs);
    /* 3. the old tables lose the active reference; 4. COPIED where now unshared */
    ret = update_l1_refcounts(bs, old_l1, old_size, -1, &changed, freed);
    if (ret < 0) {
        return ret;
    }
    ret = update_active_refcounts(bs, 0);
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        discard_freed(bs, freed);
    }
    return ret;
}

int qcow2_snapshot_goto(BlockDriverState *bs, const char *name, GError **errp)
{
    g_autoptr(GError) err = NULL;
    int ret;

    if (has_data_file(bs)) {
        ret = -ENOTSUP;
    } else {
        ret = do_goto(bs, name, &err);
    }
    if (ret < 0) {
        if (err) {
            error_propagate(errp, g_steal_pointer(&err));
        } else {
            error_setg_errno(errp, -ret, "Failed to load snapshot");
        }
    }
    return ret;
}

int qcow2_snapshot_delete(BlockDriverState *bs, const char *name, GError **errp)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    g_autofree uint64_t *l1 = NULL;
    g_autoptr(GArray) freed = g_array_new(false, false, sizeof(FreedRange));
    Qcow2SnapshotInfo *sn;
    guint index;
    bool changed;
    int ret;

    ret = read_table(bs, list, errp);
    if (ret < 0) {
        return ret;
    }
    sn = find_snapshot(list, name, false, &index);
    if (!sn) {
        error_setg(errp, "Can't find the snapshot");
        return -ENOENT;
    }
    ret = qcow2_check_snapshot_l1(bs, sn, errp);
    if (ret < 0) {
        return ret;
    }
    ret = read_l1(bs, sn, &l1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read l1 table for snapshot");
        return ret;
    }
    sn = g_ptr_array_steal_index(list, index);
    /* 1. the snapshot goes from the table (its references become leaks) */
    ret = write_table(bs, list);
    if (ret < 0) {
        qcow2_snapshot_info_free(sn);
        error_setg_errno(errp, -ret, "Failed to remove snapshot from snapshot list");
        return ret;
    }
    /* 2. its references go, then its L1 table; 3. COPIED where now unshared */
    ret = update_l1_refcounts(bs, l1, sn->l1_size, -1, &changed, freed);
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        qcow2_free_clusters(bs, sn->l1_table_offset, MAX((uint64_t)sn->l1_size * 8, 1));
        note_freed(freed, sn->l1_table_offset, MAX((uint64_t)sn->l1_size * 8, 1));
        ret = update_active_refcounts(bs, 0);
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        discard_freed(bs, freed);
    }
    qcow2_snapshot_info_free(sn);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to free the cluster and L1 table");
    }
    return ret;
}
int qcow2_snapshot_list(BlockDriverState *bs, GPtrArray *out)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    g_autoptr(GError) err = NULL;
    int ret = read_table(bs, list, &err);

    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; out && i < list->len; i++) {
        Qcow2SnapshotInfo *sn = list->pdata[i];
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "id", sn->id_str);
        json_object_set_string_member(o, "name", sn->name);
        json_object_set_int_member(o, "vm-state-size", sn->vm_state_size);
        json_object_set_int_member(o, "date-sec", sn->date_sec);
        json_object_set_int_member(o, "date-nsec", sn->date_nsec);
        json_object_set_int_member(o, "vm-clock-sec", sn->vm_clock_nsec / 1000000000);
        json_object_set_int_member(o, "vm-clock-nsec", sn->vm_clock_nsec % 1000000000);
        if (sn->icount >= 0) {
            json_object_set_int_member(o, "icount", sn->icount);
        }
        g_ptr_array_add(out, o);
    }
    return list->len;
}

int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                            GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(qcow2_snapshot_info_free);
    Qcow2SnapshotInfo *sn = NULL;
    uint64_t *l1;
    int ret;

    if (!s->read_only) {
        error_setg(errp, "Device is not readonly");
        return -EINVAL;
    }
    ret = read_table(bs, list, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < list->len && !sn; i++) {
        Qcow2SnapshotInfo *cand = list->pdata[i];
        if ((!id || !strcmp(cand->id_str, id)) && (!name || !strcmp(cand->name, name))) {
            sn = cand;
        }
    }
    if (!sn) {
        error_setg(errp, "Can't find snapshot");
        return -ENOENT;
    }
    ret = qcow2_check_snapshot_l1(bs, sn, errp);
    if (ret < 0) {
        return ret;
    }
    l1 = g_new0(uint64_t, MAX(sn->l1_size, 1));
    ret = bdrv_pread(bs->file, sn->l1_table_offset, (int64_t)sn->l1_size * 8, l1, 0);
    if (ret < 0) {
        g_free(l1);
        error_setg_errno(errp, -ret, "Failed to read l1 table for snapshot");
        return ret;
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    /* the virtual size stays the image's, as in QEMU: past the L1 reads as zeros */
    qcow2_l2_window_free(bs);
    g_free(s->l1_table);
    s->l1_table = l1;
    s->l1_size = sn->l1_size;
    s->l1_table_offset = sn->l1_table_offset;
    return 0;
}
