/*
 * qcow2 internal snapshots: reading and validating the snapshot table, listing
 * snapshots, and refusing to create them (images with an external data file
 * cannot have internal snapshots at all; creation is not implemented otherwise).
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

#define SNAPSHOT_ENTRY_FIXED 40

static int read_table(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t off = s->snapshots_offset;
    int64_t file_len = bdrv_getlength(bs->file);

    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        uint8_t hdr[SNAPSHOT_ENTRY_FIXED];
        Qcow2SnapshotInfo *sn;
        uint32_t extra;
        uint16_t id_len, name_len;
        g_autofree uint8_t *rest = NULL;
        uint64_t rest_len;
        int ret;

        if (off + SNAPSHOT_ENTRY_FIXED > (uint64_t)file_len) {
            error_setg(errp, "Snapshot table exceeds the image file");
            return -EINVAL;
        }
        ret = bdrv_pread(bs->file, off, sizeof(hdr), hdr, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read snapshot table");
            return ret;
        }
        extra = ldl_be(hdr + 36);
        id_len = lduw_be(hdr + 12);
        name_len = lduw_be(hdr + 14);
        if (extra > 1024) {
            error_setg(errp, "Too much extra metadata in snapshot table entry %u", i);
            return -EFBIG;
        }
        rest_len = (uint64_t)extra + id_len + name_len;
        rest = g_malloc0(rest_len + 1);
        ret = bdrv_pread(bs->file, off + sizeof(hdr), rest_len, rest, 0);
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
        if (extra >= 8) {
            sn->vm_state_size = ldq_be(rest);
        }
        sn->disk_size = extra >= 16 ? ldq_be(rest + 8) : s->size;
        sn->icount = extra >= 24 ? (int64_t)ldq_be(rest + 16) : -1;
        sn->entry_size = QEMU_ALIGN_UP(SNAPSHOT_ENTRY_FIXED + rest_len, 8);
        sn->id_str = g_strndup((char *)rest + extra, id_len);
        sn->name = g_strndup((char *)rest + extra + id_len, name_len);
        if (out) {
            g_ptr_array_add(out, sn);
        } else {
            qcow2_snapshot_info_free(sn);
        }
        off += QEMU_ALIGN_UP(SNAPSHOT_ENTRY_FIXED + rest_len, 8);
    }
    return 0;
}

void qcow2_snapshot_info_free(gpointer p)
{
    Qcow2SnapshotInfo *sn = p;

    g_free(sn->id_str);
    g_free(sn->name);
    g_free(sn);
}

int qcow2_read_snapshots(BlockDriverState *bs, GPtrArray *out, GError **errp)
{
    return read_table(bs, out, errp);
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
    ret = read_table(bs, list, errp);
    if (ret < 0) {
        error_prepend(errp, "Could not read snapshots: ");
        return ret;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2SnapshotInfo *sn = list->pdata[i];
        if ((uint64_t)sn->l1_size * 8 > QCOW_MAX_L1_SIZE) {
            error_setg(errp, "Could not read snapshots: Snapshot L1 table too large");
            return -EFBIG;
        }
        if (offset_into_cluster(s, sn->l1_table_offset)) {
            error_setg(errp, "Could not read snapshots: Snapshot L1 table offset "
                       "invalid");
            return -EINVAL;
        }
    }
    return 0;
}

int qcow2_snapshot_create(BlockDriverState *bs, const char *name)
{
    /* Not with a data file (the format forbids it), and not implemented otherwise. */
    return -ENOTSUP;
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
    if ((uint64_t)sn->l1_size * 8 > QCOW_MAX_L1_SIZE) {
        error_setg(errp, "Snapshot L1 table too large");
        return -EFBIG;
    }
    if (offset_into_cluster(s, sn->l1_table_offset)) {
        error_setg(errp, "Snapshot L1 table offset invalid");
        return -EINVAL;
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
