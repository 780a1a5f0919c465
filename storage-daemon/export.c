/*
 * Block exports: the export registry (NBD exports, and FUSE exports when built
 * with libfuse3) and the QMP commands that manage it (block-export-add,
 * block-export-del, query-block-exports, nbd-server-start, nbd-server-stop),
 * also used by --export and --nbd-server. An export holds a reference to its
 * node; deleting it waits for its NBD clients to go (or, in mode "hard",
 * disconnects them; a FUSE export is unmounted at once) and then emits
 * BLOCK_EXPORT_DELETED.
 */
#include "nbd.h"
#include "nbd-tls.h"
#include "qmp-commands.h"
#include "job.h"
#ifdef CONFIG_FUSE
#include "fuse-export.h"
#endif

static GList *exports;      /* NbdExport*, newest first as QEMU lists them */

/* ---- schemas ---- */

/* without libfuse3, "fuse" is no type at all, as in a QEMU built without FUSE */
static const char *const export_type_values[] = {
    "nbd", "vhost-user-blk",
#ifdef CONFIG_FUSE
    "fuse",
#endif
    "vduse-blk", NULL,
};

static const QArg export_base[] = {
    { "type", QT_ENUM, false, export_type_values, NULL, NULL },
    { "id", QT_STR, false, NULL, NULL, NULL },
    { "fixed-iothread", QT_BOOL, true, NULL, NULL, NULL },
    { "iothread", QT_STR, true, NULL, NULL, NULL },
    { "node-name", QT_STR, false, NULL, NULL, NULL },
    { "writable", QT_BOOL, true, NULL, NULL, NULL },
    { "writethrough", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg export_nbd_members[] = {
    { "name", QT_STR, true, NULL, NULL, NULL },
    { "description", QT_STR, true, NULL, NULL, NULL },
    { "bitmaps", QT_ANY, true, NULL, NULL, NULL },
    { "allocation-depth", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

#ifdef CONFIG_FUSE
static const char *const fuse_allow_other_values[] = { "off", "on", "auto", NULL };

static const QArg export_fuse_members[] = {
    { "mountpoint", QT_STR, false, NULL, NULL, NULL },
    { "growable", QT_BOOL, true, NULL, NULL, NULL },
    { "allow-other", QT_ENUM, true, fuse_allow_other_values, NULL, NULL },
    QARG_END,
};
#endif

static const QVariant export_variants[] = {
    { "nbd", export_nbd_members },
    { "vhost-user-blk", NULL },
#ifdef CONFIG_FUSE
    { "fuse", export_fuse_members },
#endif
    { "vduse-blk", NULL },
    { NULL, NULL },
};

const QArg qapi_block_export_options = {
    "options", QT_UNION, false, NULL, export_base, export_variants,
};

static const char *const export_del_mode_values[] = { "safe", "hard", NULL };

const QArg qapi_block_export_del_args[] = {
    { "id", QT_STR, false, NULL, NULL, NULL },
    { "mode", QT_ENUM, true, export_del_mode_values, NULL, NULL },
    QARG_END,
};

static const char *const addr_type_values[] = { "inet", "unix", "vsock", "fd", NULL };

static const QArg inet_members[] = {
    { "numeric", QT_BOOL, true, NULL, NULL, NULL },
    { "to", QT_INT, true, NULL, NULL, NULL },
    { "ipv4", QT_BOOL, true, NULL, NULL, NULL },
    { "ipv6", QT_BOOL, true, NULL, NULL, NULL },
    { "keep-alive", QT_BOOL, true, NULL, NULL, NULL },
    { "mptcp", QT_BOOL, true, NULL, NULL, NULL },
    { "host", QT_STR, false, NULL, NULL, NULL },
    { "port", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

static const QArg unix_members[] = {
    { "path", QT_STR, false, NULL, NULL, NULL },
    { "abstract", QT_BOOL, true, NULL, NULL, NULL },
    { "tight", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg inet_wrapper[] = {
    { "data", QT_STRUCT, false, NULL, inet_members, NULL },
    QARG_END,
};

static const QArg unix_wrapper[] = {
    { "data", QT_STRUCT, false, NULL, unix_members, NULL },
    QARG_END,
};

static const QArg addr_base[] = {
    { "type", QT_ENUM, false, addr_type_values, NULL, NULL },
    QARG_END,
};

static const QVariant addr_variants[] = {
    { "inet", inet_wrapper },
    { "unix", unix_wrapper },
    { "vsock", NULL },
    { "fd", NULL },
    { NULL, NULL },
};

const QArg qapi_nbd_server_start_args[] = {
    { "addr", QT_UNION, false, NULL, addr_base, addr_variants },
    { "tls-creds", QT_STR, true, NULL, NULL, NULL },
    { "tls-authz", QT_STR, true, NULL, NULL, NULL },
    { "max-connections", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

/* ---- the registry ---- */

NbdExport *nbd_export_find(const char *name)
{
    for (GList *l = exports; l; l = l->next) {
        NbdExport *exp = l->data;
        if (!exp->fuse && !strcmp(exp->name, name)) {
            return exp;
        }
    }
    return NULL;
}

GList *nbd_export_list(void)
{
    return exports;
}

static NbdExport *export_find_id(const char *id)
{
    for (GList *l = exports; l; l = l->next) {
        NbdExport *exp = l->data;
        if (!strcmp(exp->id, id)) {
            return exp;
        }
    }
    return NULL;
}

bool qsd_export_uses_node(BlockDriverState *bs)
{
    for (GList *l = exports; l; l = l->next) {
        if (((NbdExport *)l->data)->bs == bs) {
            return true;
        }
    }
    return false;
}

bool qsd_export_uses_bitmap(BlockDriverState *bs, const char *name)
{
    for (GList *l = exports; l; l = l->next) {
        NbdExport *exp = l->data;

        for (unsigned i = 0; i < exp->nb_bitmaps; i++) {
            if (exp->bitmaps[i].bs == bs && !strcmp(exp->bitmaps[i].name, name)) {
                return true;
            }
        }
    }
    return qsd_backup_uses_bitmap(bs, name);
}

static void export_free_bitmaps(NbdExport *exp)
{
    for (unsigned i = 0; i < exp->nb_bitmaps; i++) {
        g_free(exp->bitmaps[i].name);
    }
    g_free(exp->bitmaps);
}

static void export_delete(NbdExport *exp)
{
    JsonObject *data = json_object_new();

    exports = g_list_remove(exports, exp);
    json_object_set_string_member(data, "id", exp->id);
#ifdef CONFIG_FUSE
    if (exp->fuse) {
        fuse_export_free(exp->fuse);
    }
#endif
    bdrv_flush(exp->bs);
    bdrv_perm_detach(exp->bs, exp);
    bdrv_unref(exp->bs);
    qsd_emit_event("BLOCK_EXPORT_DELETED", data);
    g_free(exp->id);
    g_free(exp->name);
    g_free(exp->description);
    export_free_bitmaps(exp);
    g_free(exp);
}

/* One entry of "bitmaps" (BlockDirtyBitmapOrStr): a bitmap in @bs's chain, or
 * {"node": N, "name": B} for one on a given node. */
static bool export_add_bitmap(NbdExport *exp, JsonNode *n, guint i, bool writable,
                              GError **errp)
{
    g_autofree char *where = g_strdup_printf("bitmaps[%u]", i);
    BlockDriverState *node = exp->bs;
    const char *name;
    bool chain = true;

    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        name = json_node_get_string(n);
    } else if (JSON_NODE_HOLDS_OBJECT(n)) {
        static const char *const members[] = { "node", "name" };
        JsonObject *o = json_node_get_object(n);
        g_autoptr(GList) keys = json_object_get_members(o);
        const char *val[2];

        for (int k = 0; k < 2; k++) {
            JsonNode *m = json_object_get_member(o, members[k]);

            if (!m) {
                error_setg(errp, "Parameter '%s.%s' is missing", where, members[k]);
                return false;
            }
            if (!JSON_NODE_HOLDS_VALUE(m) ||
                json_node_get_value_type(m) != G_TYPE_STRING) {
                error_setg(errp, "Invalid parameter type for '%s.%s', expected: "
                           "string", where, members[k]);
                return false;
            }
            val[k] = json_node_get_string(m);
        }
        for (GList *l = keys; l; l = l->next) {
            if (strcmp(l->data, "node") && strcmp(l->data, "name")) {
                error_setg(errp, "Parameter '%s.%s' is unexpected", where,
                           (const char *)l->data);
                return false;
            }
        }
        node = bdrv_find_node(val[0]);
        if (!node) {
            error_setg(errp, "Node '%s' not found", val[0]);
            return false;
        }
        name = val[1];
        chain = false;
    } else {
        /* sic: QEMU names no member here */
        error_setg(errp, "Invalid parameter type for 'null', expected: "
                   "BlockDirtyBitmapOrStr");
        return false;
    }
    node = nbd_find_bitmap(node, name, chain, writable, errp);
    if (!node) {
        return false;
    }
    if (qsd_export_uses_bitmap(node, name)) {
        /* another export has it (this one may name it twice) */
        error_setg(errp, "Bitmap '%s' is currently in use by another operation "
                   "and cannot be used", name);
        return false;
    }
    exp->bitmaps[exp->nb_bitmaps].name = g_strdup(name);
    exp->bitmaps[exp->nb_bitmaps].bs = node;
    exp->nb_bitmaps++;
    return true;
}

/*
 * "bitmaps": a list (or, from key=value options, an object whose keys are
 * 0, 1, ...) of bitmaps to offer, in the order given, which is their ids' order.
 */
static bool export_add_bitmaps(NbdExport *exp, JsonObject *opts, bool writable,
                               GError **errp)
{
    JsonNode *list = json_object_get_member(opts, "bitmaps");
    g_autoptr(GPtrArray) items = g_ptr_array_new();

    if (!list) {
        return true;
    }
    if (JSON_NODE_HOLDS_ARRAY(list)) {
        JsonArray *a = json_node_get_array(list);

        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_ptr_array_add(items, json_array_get_element(a, i));
        }
    } else if (JSON_NODE_HOLDS_OBJECT(list)) {
        JsonObject *o = json_node_get_object(list);
        guint n = json_object_get_size(o);

        for (guint i = 0; i < n; i++) {
            g_autofree char *key = g_strdup_printf("%u", i);
            JsonNode *e = json_object_get_member(o, key);

            if (!e) {
                error_setg(errp, "Parameter 'bitmaps.%s' missing", key);
                return false;
            }
            g_ptr_array_add(items, e);
        }
    } else {
        error_setg(errp, "Invalid parameter type for 'bitmaps', expected: array");
        return false;
    }
    exp->bitmaps = g_new0(NbdExportBitmap, items->len);
    for (guint i = 0; i < items->len; i++) {
        if (!export_add_bitmap(exp, items->pdata[i], i, writable, errp)) {
            return false;
        }
    }
    return true;
}

void nbd_export_put(NbdExport *exp)
{
    exp->clients--;
    if (exp->shutting_down && exp->clients == 0) {
        /* the last client left a deleted export: finish with the lock held */
        if (block_lock_try()) {
            export_delete(exp);
            block_unlock();
        } else {
            exp->clients = 0;   /* qsd_export_close_all or the next del finishes it */
        }
    }
}

/* The export's "writable" option (default off), refused on a read-only node. */
static bool export_writable_opt(JsonObject *opts, BlockDriverState *bs, bool *writable,
                                GError **errp)
{
    GError *local = NULL;

    *writable = opts_get_bool(opts, "writable", false, &local);
    if (local) {
        error_propagate(errp, local);
        return false;
    }
    if (*writable && bdrv_is_read_only(bs)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return false;
    }
    return true;
}

#ifdef CONFIG_FUSE
/* A FUSE export of @bs: mounted over opts["mountpoint"]. */
static bool export_add_fuse(JsonObject *opts, BlockDriverState *bs, GError **errp)
{
    NbdExport *exp;
    bool writable;

    if (!export_writable_opt(opts, bs, &writable, errp)) {
        return false;
    }
    exp = g_new0(NbdExport, 1);
    /* read (and write, and resize: truncate, growable); others may do anything,
     * another FUSE export of the node too (QEMU's iotest 237 has two) */
    if (bdrv_perm_attach_user(bs, exp, QSD_EXPORT_USER, "root", NULL,
                              BLK_PERM_CONSISTENT_READ |
                              (writable ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0),
                              BLK_PERM_ALL, errp) < 0) {
        g_free(exp);
        return false;
    }
    exp->fuse = fuse_export_new(bs, opts, writable, errp);
    if (!exp->fuse) {
        bdrv_perm_detach(bs, exp);
        g_free(exp);
        return false;
    }
    exp->id = g_strdup(opts_peek_str(opts, "id"));
    exp->bs = bs;
    exp->writable = writable;
    bdrv_ref(bs);
    exports = g_list_prepend(exports, exp);
    return true;
}
#endif

bool qsd_export_add(JsonObject *opts, GError **errp)
{
    const char *id = opts_peek_str(opts, "id");
    const char *node = opts_peek_str(opts, "node-name");
    const char *name = opts_peek_str(opts, "name");
    const char *type = opts_peek_str(opts, "type");
    GError *local = NULL;
    BlockDriverState *bs;
    NbdExport *exp;
    bool writable;

    if (export_find_id(id)) {
        error_setg(errp, "Block export id '%s' is already in use", id);
        return false;
    }
    if (strcmp(type, "nbd")
#ifdef CONFIG_FUSE
        && strcmp(type, "fuse")
#endif
        ) {
        error_setg(errp, "Export type '%s' is not supported", type);
        return false;
    }
    bs = bdrv_find_node(node);
    if (!bs) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", node);
        return false;
    }
#ifdef CONFIG_FUSE
    if (!strcmp(type, "fuse")) {
        return export_add_fuse(opts, bs, errp);
    }
#endif
    if (!nbd_server_running()) {
        error_setg(errp, "NBD server not running");
        return false;
    }
    name = name ? name : node;
    if (strlen(name) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "export name '%s' too long", name);
        return false;
    }
    if (nbd_export_find(name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return false;
    }
    if (!export_writable_opt(opts, bs, &writable, errp)) {
        return false;
    }
    exp = g_new0(NbdExport, 1);
    exp->bs = bs;
    exp->alloc_depth = opts_get_bool(opts, "allocation-depth", false, &local);
    if (local) {
        error_propagate(errp, local);
        g_free(exp);
        return false;
    }
    if (!export_add_bitmaps(exp, opts, writable, errp)) {
        export_free_bitmaps(exp);
        g_free(exp);
        return false;
    }
    /* as QEMU's exports: read (and write), and nobody may resize the node meanwhile */
    if (bdrv_perm_attach_user(bs, exp, QSD_EXPORT_USER, "root", NULL,
                              BLK_PERM_CONSISTENT_READ | (writable ? BLK_PERM_WRITE : 0),
                              BLK_PERM_ALL & ~BLK_PERM_RESIZE, errp) < 0) {
        export_free_bitmaps(exp);
        g_free(exp);
        return false;
    }
    exp->id = g_strdup(id);
    exp->name = g_strdup(name);
    exp->description = g_strdup(opts_peek_str(opts, "description"));
    exp->bs = bs;
    exp->writable = writable;
    exp->multi_conn = true;     /* every connection shares the node and its cache */
    bdrv_ref(bs);
    exports = g_list_prepend(exports, exp);
    return true;
}

void qsd_export_close_all(void)
{
    nbd_server_stop();      /* drops every client */
    while (exports) {
        /* oldest first, as QEMU's daemon deletes them */
        export_delete(g_list_last(exports)->data);
    }
}

/* ---- commands ---- */

JsonNode *qmp_block_export_add(JsonObject *args, Monitor *mon, GError **errp)
{
    return qsd_export_add(args, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_block_export_del(JsonObject *args, Monitor *mon, GError **errp)
{
    const char *id = opts_peek_str(args, "id");
    const char *mode = opts_peek_str(args, "mode");
    NbdExport *exp = export_find_id(id);

    if (!exp) {
        error_setg(errp, "Export '%s' is not found", id);
        return NULL;
    }
    if (exp->shutting_down) {
        error_setg(errp, "Export '%s' is already shutting down", id);
        return NULL;
    }
    if (exp->clients && !(mode && !strcmp(mode, "hard"))) {
        error_setg(errp, "export '%s' still in use", id);
        return NULL;
    }
    /* QEMU drains the export's node twice as it lets go of it */
    for (int i = 0; i < 2; i++) {
        jobs_drain_end(jobs_drain_begin(exp->bs));
    }
    exp->shutting_down = true;
    nbd_server_drop_clients(exp);
    if (exports && g_list_find(exports, exp)) {
        /* dropping the clients may have finished the deletion already */
        if (exp->clients <= 0) {
            export_delete(exp);
        }
    }
    return qjson_empty_object();
}

JsonNode *qmp_query_block_exports(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (GList *l = exports; l; l = l->next) {
        NbdExport *exp = l->data;
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "node-name", bdrv_get_node_name(exp->bs));
        json_object_set_boolean_member(o, "shutting-down", exp->shutting_down);
        json_object_set_string_member(o, "type", exp->fuse ? "fuse" : "nbd");
        json_object_set_string_member(o, "id", exp->id);
        json_array_add_object_element(arr, o);
    }
    json_node_take_array(n, arr);
    return n;
}

bool qsd_nbd_server_start(JsonObject *addr, const char *tls_creds,
                          const char *tls_authz, GError **errp)
{
    if (nbd_server_running()) {
        error_setg(errp, "NBD server already running");
        return false;
    }
    if (!nbd_tls_server_setup(tls_creds, tls_authz, errp)) {
        return false;
    }
    if (!nbd_server_start(addr, errp)) {
        nbd_tls_server_clear();
        return false;
    }
    return true;
}

JsonNode *qmp_nbd_server_start(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonObject *addr = json_object_get_object_member(args, "addr");
    JsonObject *data = json_object_get_object_member(addr, "data");
    g_autoptr(JsonObject) flat = data ? opts_clone(data) : json_object_new();

    opts_set_str(flat, "type", opts_peek_str(addr, "type"));
    return qsd_nbd_server_start(flat, opts_peek_str(args, "tls-creds"),
                                opts_peek_str(args, "tls-authz"), errp) ?
           qjson_empty_object() : NULL;
}

JsonNode *qmp_nbd_server_stop(JsonObject *args, Monitor *mon, GError **errp)
{
    if (!nbd_server_running()) {
        error_setg(errp, "NBD server not running");
        return NULL;
    }
    nbd_server_stop();
    while (exports) {
        /* oldest first, as QEMU's daemon deletes them */
        export_delete(g_list_last(exports)->data);
    }
    return qjson_empty_object();
}

void qsd_export_replace_node(BlockDriverState *from, BlockDriverState *to)
{
    for (GList *l = exports; l; l = l->next) {
        NbdExport *exp = l->data;
        g_autoptr(GError) err = NULL;

        /* a FUSE export keeps its node (its mount holds it) */
        if (exp->bs != from || exp->fuse) {
            continue;
        }
        /* the job held what the export needs on @to: this cannot conflict */
        if (bdrv_perm_attach_user(to, exp, QSD_EXPORT_USER, "root", NULL,
                                  BLK_PERM_CONSISTENT_READ |
                                  (exp->writable ? BLK_PERM_WRITE : 0),
                                  BLK_PERM_ALL & ~BLK_PERM_RESIZE, &err) < 0) {
            continue;
        }
        bdrv_ref(to);
        bdrv_perm_detach(from, exp);
        exp->bs = to;
        bdrv_unref(from);
    }
}
