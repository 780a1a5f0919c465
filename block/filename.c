/*
 * How nodes are named once they are open, as QEMU names them: a node that a
 * plain filename reopens is shown by that name ("t.qcow2", "null-co://",
 * "blkdebug:CONFIG:IMAGE"); any other is shown as "json:{...}" listing its
 * driver, the options that change what it shows (the driver's strong_opts) and
 * its children. Also the folder relative backing file names are taken from,
 * which a json: name does not give.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"

/*
 * QEMU prints these dictionaries in its hash order, not in the order given:
 * the keys below are in that order (read off QEMU 7.2's json: names). Keys not
 * listed follow in the order they were given.
 */
static const char *const key_order[] = {
    "encrypt.key-secret", "backing", "read-pattern", "children", "inject-error.0.state",
    "inject-error.0.immediately", "opt-write-zero", "offset", "read-zeroes", "test",
    "throttle-group", "set-state.0.event", "inject-error.0.once", "max-write-zero",
    "image", "max-transfer", "server.host", "server.port", "server.path", "port", "host",
    "host_key_check", "driver", "path", "user", "export", "server.type", "inject-error.0.iotype",
    "set-state.0.new_state", "inject-error.0.errno", "inject-error.0.event",
    "opt-discard", "max-discard", "set-state.0.state", "inject-error.0.sector",
    "config", "align", "size", "blkverify", "rewrite-corrupted", "vote-threshold",
    "raw", "file", "filename", "key-secret", NULL,
};

static JsonObject *order_keys(JsonObject *obj)
{
    JsonObject *out = json_object_new();
    GList *members = json_object_get_members(obj);

    for (const char *const *k = key_order; *k; k++) {
        if (json_object_has_member(obj, *k)) {
            json_object_set_member(out, *k, json_object_dup_member(obj, *k));
        }
    }
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(key_order, l->data)) {
            json_object_set_member(out, l->data, json_object_dup_member(obj, l->data));
        }
    }
    g_list_free(members);
    return out;
}

/* Flatten objects and arrays into dotted keys ("inject-error.0.event"). */
static void flatten_all(JsonObject *dst, JsonNode *v, const char *key)
{
    if (JSON_NODE_HOLDS_OBJECT(v)) {
        JsonObject *o = json_node_get_object(v);
        GList *members = json_object_get_members(o);
        for (GList *l = members; l; l = l->next) {
            g_autofree char *k = key ? g_strdup_printf("%s.%s", key, (char *)l->data)
                                     : g_strdup(l->data);
            flatten_all(dst, json_object_get_member(o, l->data), k);
        }
        g_list_free(members);
    } else if (JSON_NODE_HOLDS_ARRAY(v)) {
        JsonArray *a = json_node_get_array(v);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_autofree char *k = g_strdup_printf("%s.%u", key, i);
            flatten_all(dst, json_array_get_element(a, i), k);
        }
    } else if (key) {
        json_object_set_member(dst, key, json_node_copy(v));
    }
}

static bool is_strong(const BlockDriver *drv, const char *key)
{
    for (const char *const *k = drv->strong_opts; k && *k; k++) {
        size_t n = strlen(*k);
        if ((*k)[n - 1] == '.' ? !strncmp(key, *k, n) : !strcmp(key, *k)) {
            return true;
        }
    }
    return false;
}

/* Copy the strong options the node was given into @full; were there any? */
static bool add_strong_opts(BlockDriverState *bs, JsonObject *full)
{
    g_autoptr(JsonObject) flat = json_object_new();
    g_autoptr(JsonNode) root = NULL;
    GList *members;
    bool any = false;

    if (!bs->options || !bs->drv->strong_opts) {
        return false;
    }
    root = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(root, bs->options);
    flatten_all(flat, root, NULL);
    members = json_object_get_members(flat);
    for (GList *l = members; l; l = l->next) {
        if (is_strong(bs->drv, l->data)) {
            json_object_set_member(full, l->data, json_object_dup_member(flat, l->data));
            any = true;
        }
    }
    g_list_free(members);
    return any;
}

JsonNode *bdrv_full_options_node(BlockDriverState *bs)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    if (bs->full_open_options) {
        json_node_set_object(n, bs->full_open_options);
    } else {
        json_node_take_object(n, json_object_new());
    }
    return n;
}

void bdrv_refresh_filename(BlockDriverState *bs)
{
    g_autoptr(JsonObject) full = json_object_new();
    char *exact = NULL;
    bool strong;

    opts_set_str(full, "driver", bs->drv->format_name);
    strong = add_strong_opts(bs, full);
    if (bs->drv->refresh_filename) {
        exact = bs->drv->refresh_filename(bs, full, strong);
    } else if (bs->drv->is_protocol || !bs->file) {
        const char *fn = bs->options ? opts_peek_str(bs->options, "filename") : NULL;
        if (!fn) {
            fn = bs->filename;
        }
        if (fn) {
            opts_set_str(full, "filename", fn);
        }
        if (fn && !strong) {
            /* "a:b" would read as protocol "a": "./a:b" names the same file */
            exact = bdrv_filename_is_special(fn) ? g_strconcat("./", fn, NULL)
                                               : g_strdup(fn);
        }
    } else {
        /* formats and filters: named after their file */
        json_object_set_member(full, "file", bdrv_full_options_node(bs->file));
        if (bs->backing_overridden) {
            json_object_set_member(full, "backing", bs->backing ?
                                   bdrv_full_options_node(bs->backing) :
                                   json_node_new(JSON_NODE_NULL));
        }
        if ((bs->drv->is_format || bs->drv->named_by_file) && !strong &&
            !bs->backing_overridden && bs->file->exact_filename) {
            exact = g_strdup(bs->file->exact_filename);
        }
    }
    if (bs->full_open_options) {
        json_object_unref(bs->full_open_options);
    }
    bs->full_open_options = order_keys(full);
    g_free(bs->exact_filename);
    bs->exact_filename = exact;
    g_free(bs->filename);
    if (exact) {
        bs->filename = g_strdup(exact);
    } else {
        g_autofree char *json = opts_to_json(bs->full_open_options);
        bs->filename = g_strdup_printf("json:%s", json);
    }
}

/* "dir/" of a plain name, keeping a "proto:" prefix; "" when it has no folder. */
static char *name_dirname(const char *name)
{
    const char *slash = strrchr(name, '/');

    if (slash) {
        return g_strndup(name, slash - name + 1);
    }
    if (bdrv_filename_is_special(name)) {
        return g_strndup(name, strcspn(name, ":") + 1);
    }
    return g_strdup("");
}

char *bdrv_dirname(BlockDriverState *bs, GError **errp)
{
    if (bs->drv->dirname) {
        return bs->drv->dirname(bs, errp);
    }
    if (bs->file) {
        return bdrv_dirname(bs->file, errp);
    }
    if (bs->exact_filename && bs->drv->is_protocol) {
        return name_dirname(bs->exact_filename);
    }
    error_setg(errp, "Cannot generate a base directory for %s nodes",
               bs->drv->format_name);
    return NULL;
}

char *bdrv_get_full_backing_filename(BlockDriverState *bs, GError **errp)
{
    g_autofree char *dir = NULL;

    if (!bs->backing_file) {
        return NULL;
    }
    if (g_path_is_absolute(bs->backing_file) ||
        bdrv_filename_is_special(bs->backing_file)) {
        return g_strdup(bs->backing_file);
    }
    dir = bdrv_dirname(bs, errp);
    if (!dir) {
        return NULL;
    }
    return g_strconcat(dir, bs->backing_file, NULL);
}
