/*
 * Image information as QEMU's QAPI types describe it: ImageInfo and SnapshotInfo
 * built as json-glib objects in QEMU's member order (QEMU prints its dictionaries
 * in hash order; the orders below were read off QEMU 7.2's output), and the human
 * dumps qemu-img info prints.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "block/qapi.h"
#include <time.h>

static const char *const image_info_order[] = {
    "backing-image", "compressed", "backing-filename-format", "snapshots",
    "virtual-size", "filename", "cluster-size", "format", "actual-size",
    "format-specific", "full-backing-filename", "encrypted", "backing-filename",
    "dirty-flag", NULL,
};

static const char *const snapshot_info_order[] = {
    "icount", "vm-clock-nsec", "name", "date-sec", "date-nsec", "vm-clock-sec", "id",
    "vm-state-size", NULL,
};

JsonObject *qapi_order_members(JsonObject *obj, const char *const *order)
{
    JsonObject *out = json_object_new();
    GList *members = json_object_get_members(obj);

    for (const char *const *k = order; *k; k++) {
        if (json_object_has_member(obj, *k)) {
            json_object_set_member(out, *k, json_object_dup_member(obj, *k));
        }
    }
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(order, l->data)) {
            json_object_set_member(out, l->data, json_object_dup_member(obj, l->data));
        }
    }
    g_list_free(members);
    return out;
}

void qapi_print_json(JsonNode *node)
{
    g_autofree char *s = json_node_to_string_qemu(node, true);

    printf("%s\n", s);
}

void qapi_print_json_object(JsonObject *obj)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(n, obj);
    qapi_print_json(n);
    json_node_unref(n);
}

static JsonArray *query_snapshots(BlockDriverState *bs)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(
        (GDestroyNotify)json_object_unref);
    JsonArray *arr;
    int n = bdrv_snapshot_list(bs, list);

    if (n <= 0 || list->len == 0) {
        return NULL;
    }
    arr = json_array_new();
    for (guint i = 0; i < list->len; i++) {
        json_array_add_object_element(arr, qapi_order_members(list->pdata[i],
                                                              snapshot_info_order));
    }
    return arr;
}

JsonObject *bdrv_query_image_info(BlockDriverState *bs, GError **errp)
{
    g_autoptr(JsonObject) info = json_object_new();
    g_autofree char *filename = bdrv_get_full_filename(bs);
    const char *backing = bdrv_get_backing_filename(bs);
    const char *backing_fmt = bdrv_get_backing_format(bs);
    int64_t size = bdrv_getlength(bs), actual;
    BlockDriverInfo bdi;
    bool has_info;
    JsonArray *snapshots;
    JsonNode *spec;
    GError *local = NULL;

    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'", filename);
        return NULL;
    }
    json_object_set_string_member(info, "filename", filename);
    json_object_set_string_member(info, "format", bdrv_get_format_name(bs));
    json_object_set_int_member(info, "virtual-size", size);
    actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        json_object_set_int_member(info, "actual-size", actual);
    }
    /* (QEMU: both only from a driver that answers for its info: not null-co) */
    has_info = bdrv_get_info(bs, &bdi) == 0;
    if (has_info && bdi.cluster_size != 0) {
        json_object_set_int_member(info, "cluster-size", bdi.cluster_size);
    }
    if (bdrv_is_encrypted(bs)) {
        json_object_set_boolean_member(info, "encrypted", true);
    }
    if (has_info) {
        json_object_set_boolean_member(info, "dirty-flag", bdrv_is_dirty(bs));
    }
    if (backing && *backing) {
        g_autofree char *full = bdrv_get_full_backing_filename(bs, NULL);

        json_object_set_string_member(info, "backing-filename", backing);
        if (full) {
            json_object_set_string_member(info, "full-backing-filename", full);
        }
        if (backing_fmt) {
            json_object_set_string_member(info, "backing-filename-format", backing_fmt);
        }
    }
    snapshots = query_snapshots(bs);
    if (snapshots) {
        json_object_set_array_member(info, "snapshots", snapshots);
    }
    spec = bdrv_get_specific_info(bs, &local);
    if (local) {
        error_propagate(errp, local);
        if (spec) {
            json_node_unref(spec);
        }
        return NULL;
    }
    if (spec) {
        json_object_set_member(info, "format-specific", spec);
    }
    return qapi_order_members(info, image_info_order);
}

/* ---- human dumps ---- */

void bdrv_snapshot_dump_header(void)
{
    printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
           "ICOUNT");
}

static int64_t member_int(JsonObject *o, const char *key, int64_t def)
{
    return json_object_has_member(o, key) ? json_object_get_int_member(o, key) : def;
}

void bdrv_snapshot_dump(JsonObject *sn)
{
    const char *id = json_object_has_member(sn, "id") ?
                     json_object_get_string_member(sn, "id") : "";
    const char *name = json_object_has_member(sn, "name") ?
                       json_object_get_string_member(sn, "name") : "";
    g_autofree char *vm_size = size_to_str(member_int(sn, "vm-state-size", 0));
    time_t date = member_int(sn, "date-sec", 0);
    int64_t clock_sec = member_int(sn, "vm-clock-sec", 0);
    int64_t clock_nsec = member_int(sn, "vm-clock-nsec", 0);
    int64_t icount = member_int(sn, "icount", -1);
    char date_buf[64] = "", clock_buf[64], icount_buf[32] = "";
    struct tm tm;

    if (localtime_r(&date, &tm)) {
        strftime(date_buf, sizeof(date_buf), "%Y-%m-%d %H:%M:%S", &tm);
    }
    snprintf(clock_buf, sizeof(clock_buf), "%02" PRId64 ":%02d:%02d.%03d",
             clock_sec / 3600, (int)((clock_sec / 60) % 60), (int)(clock_sec % 60),
             (int)(clock_nsec / 1000000));
    if (icount != -1) {
        snprintf(icount_buf, sizeof(icount_buf), "%" PRId64, icount);
    }
    /* the ID and tag keep a space when they overflow; the date, VM clock and
     * icount columns do not (a VM clock past 99999 hours touches the date) */
    printf("%-9s %-16s %8s%20s%13s%11s\n", id, name, vm_size, date_buf, clock_buf,
           icount_buf);
}

static const char *str_member(JsonObject *o, const char *key)
{
    return json_object_has_member(o, key) ? json_object_get_string_member(o, key) : NULL;
}

void bdrv_image_info_dump(JsonObject *info)
{
    int64_t size = json_object_get_int_member(info, "virtual-size");
    g_autofree char *size_buf = size_to_str(size);
    const char *backing = str_member(info, "backing-filename");
    const char *full_backing = str_member(info, "full-backing-filename");
    const char *backing_fmt = str_member(info, "backing-filename-format");

    printf("image: %s\n"
           "file format: %s\n"
           "virtual size: %s (%" PRId64 " bytes)\n",
           str_member(info, "filename"), str_member(info, "format"), size_buf, size);
    if (json_object_has_member(info, "actual-size")) {
        g_autofree char *disk = size_to_str(json_object_get_int_member(info,
                                                                       "actual-size"));
        printf("disk size: %s\n", disk);
    } else {
        printf("disk size: unavailable\n");
    }
    if (json_object_has_member(info, "encrypted") &&
        json_object_get_boolean_member(info, "encrypted")) {
        printf("encrypted: yes\n");
    }
    if (json_object_has_member(info, "cluster-size")) {
        printf("cluster_size: %" PRId64 "\n",
               json_object_get_int_member(info, "cluster-size"));
    }
    if (json_object_has_member(info, "dirty-flag") &&
        json_object_get_boolean_member(info, "dirty-flag")) {
        printf("cleanly shut down: no\n");
    }
    if (backing) {
        printf("backing file: %s", backing);
        if (!full_backing) {
            printf(" (cannot determine actual path)");
        } else if (strcmp(backing, full_backing)) {
            printf(" (actual path: %s)", full_backing);
        }
        printf("\n");
    }
    if (backing_fmt) {
        printf("backing file format: %s\n", backing_fmt);
    }
    if (json_object_has_member(info, "snapshots")) {
        JsonArray *sns = json_object_get_array_member(info, "snapshots");

        printf("Snapshot list:\n");
        bdrv_snapshot_dump_header();
        for (guint i = 0; i < json_array_get_length(sns); i++) {
            bdrv_snapshot_dump(json_array_get_object_element(sns, i));
        }
    }
    if (json_object_has_member(info, "format-specific")) {
        printf("Format specific information:\n");
        bdrv_specific_info_dump(json_object_get_member(info, "format-specific"), 4);
    }
}
