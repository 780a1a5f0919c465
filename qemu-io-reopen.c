/*
 * qemu-io's reopen command: change the open image's read-only mode, cache mode
 * and driver options (reopen [-r|-w] [-c cache] [-o options]), with QEMU 7.2's
 * checks and messages.
 *
 * The block layer has no in-place reopen yet, so the change is made by closing
 * the image (which flushes everything) and opening it again with the merged
 * options. What QEMU refuses is refused before anything is closed: options no
 * node can change ("Cannot change the option 'X'"), -r/-w or -c mixed with the
 * options they set, malformed booleans. If the new open still fails (a driver
 * rejects a value), the image is opened again as it was, so later commands run
 * against the old settings, as after QEMU's failed reopen.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "qemu-io.h"
#include <getopt.h>

/* Options of every node that a reopen may change. */
static const char *const changeable_generic[] = {
    "read-only", "auto-read-only", "cache", "discard", "detect-zeroes", "force-share",
    NULL,
};

/* Driver options that name what the node is built on: never changed by a reopen. */
static const char *const fixed_driver_opts[] = {
    "filename", "data-file", "backing", "encrypt", "file", "image", NULL,
};

static bool in_list(const char *const *list, const char *key)
{
    for (; list && *list; list++) {
        if (!strcmp(*list, key)) {
            return true;
        }
    }
    return false;
}

static bool same_string(JsonObject *o, const char *key, const char *current)
{
    g_autofree char *v = opts_get_str(o, key);

    return v && current && !strcmp(v, current);
}

/* Refuse what the reopen of @bs may not change; @o holds its new options. */
static bool check_node(BlockDriverState *bs, JsonObject *o, GError **errp)
{
    g_autoptr(GList) members = json_object_get_members(o);

    for (GList *m = members; m; m = m->next) {
        const char *key = m->data;
        JsonNode *node = json_object_get_member(o, key);
        BlockDriverState *child = NULL;
        bool ok;

        if (!strcmp(key, "driver")) {
            ok = same_string(o, key, bs->drv->format_name);
        } else if (!strcmp(key, "node-name")) {
            ok = same_string(o, key, bs->node_name);
        } else if (!strcmp(key, "file") || !strcmp(key, "backing") ||
                   !strcmp(key, "data-file")) {
            child = !strcmp(key, "file") ? bs->file :
                    !strcmp(key, "backing") ? bs->backing : bs->data_file;
            if (child && JSON_NODE_HOLDS_OBJECT(node)) {
                if (!check_node(child, json_node_get_object(node), errp)) {
                    return false;
                }
                continue;
            }
            /* a node reference: only the node it is now */
            ok = child && same_string(o, key, child->node_name);
        } else if (in_list(changeable_generic, key)) {
            ok = true;
        } else if (!strcmp(key, "filename")) {
            ok = same_string(o, key, opts_peek_str(bs->options, "filename"));
        } else {
            ok = in_list(bs->drv->runtime_opts, key) && !in_list(fixed_driver_opts, key);
        }
        if (!ok) {
            error_setg(errp, "Cannot change the option '%s'", key);
            return false;
        }
    }
    return true;
}

/* QEMU's message for a boolean that is not on or off, with its dotted name. */
static bool check_bools(JsonObject *o, GError **errp)
{
    static const char *const bools[] = {
        "read-only", "auto-read-only", "force-share", "cache.direct", "cache.no-flush",
    };
    g_autoptr(JsonObject) flat = opts_flatten(o);

    for (size_t i = 0; i < G_N_ELEMENTS(bools); i++) {
        g_autofree char *v = opts_get_str(flat, bools[i]);

        if (v && strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "true") &&
            strcmp(v, "false")) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", bools[i]);
            return false;
        }
    }
    return true;
}

/*
 * Options that stand for each other (qcow2's cache sizes, which fix each other
 * as a whole; its overlap-check template and switches): a new value of one
 * replaces the old values of all, as QEMU joins old and new reopen options.
 */
static void drop_replaced(JsonObject *old, JsonObject *changes)
{
    static const char *const cache_sizes[] = {
        "cache-size", "l2-cache-size", "refcount-cache-size", NULL,
    };

    for (const char *const *k = cache_sizes; *k; k++) {
        if (opts_has(changes, *k)) {
            for (const char *const *d = cache_sizes; *d; d++) {
                json_object_remove_member(old, *d);
            }
            break;
        }
    }
    if (opts_has(changes, "overlap-check")) {
        json_object_remove_member(old, "overlap-check");
    }
}

static void reopen_help(void)
{
    printf(
"\n"
" Changes the open options of an already opened image\n"
"\n"
" Example:\n"
" 'reopen -o lazy-refcounts=on' - activates lazy refcount writeback on a qcow2 image\n"
"\n"
" -r, -- Reopen the image read-only\n"
" -w, -- Reopen the image read-write\n"
" -c, -- Change the cache mode to the given value\n"
" -o, -- Changes block driver options (cf. 'open' command)\n"
"\n");
}

static int reopen_f(int argc, char **argv)
{
    g_autoptr(JsonObject) flat = NULL, changes = NULL, merged = NULL, old_opts = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *name = NULL;
    int flags = qemuio_open_flags, old_flags = qemuio_open_flags, c, cache_flags = 0;
    bool writethrough = qemuio_writethrough, old_writethrough = qemuio_writethrough;
    bool has_rw = false, has_cache = false;

    getopt_reset();
    while ((c = getopt(argc, argv, "c:o:rw")) != -1) {
        switch (c) {
        case 'c':
            if (bdrv_parse_cache_mode(optarg, &cache_flags) < 0) {
                error_report("Invalid cache option: %s", optarg);
                return -EINVAL;
            }
            has_cache = true;
            break;
        case 'o':
            if (flat) {
                json_object_unref(flat);
            }
            flat = keyval_parse_flat(optarg, NULL, &err);
            if (!flat) {
                error_report("%s", err->message);
                return -EINVAL;
            }
            break;
        case 'r':
        case 'w':
            if (has_rw) {
                error_report("Only one -r/-w option may be given");
                return -EINVAL;
            }
            has_rw = true;
            flags = c == 'r' ? flags & ~BDRV_O_RDWR : flags | BDRV_O_RDWR;
            break;
        default:
            qemuio_command_usage(&qemuio_reopen_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        qemuio_command_usage(&qemuio_reopen_cmd);
        return -EINVAL;
    }
    /*
     * qcow2's overlap-check is a template name or an object with a template:
     * given both ways at once, they must agree (QEMU's check and message).
     */
    if (flat && opts_has(flat, "overlap-check") && opts_has(flat, "overlap-check.template")) {
        g_autofree char *a = opts_get_str(flat, "overlap-check");
        g_autofree char *b = opts_get_str(flat, "overlap-check.template");

        if (g_strcmp0(a, b)) {
            error_report("Conflicting values for qcow2 options 'overlap-check' ('%s') "
                         "and 'overlap-check.template' ('%s')", a, b);
            return -EINVAL;
        }
        json_object_remove_member(flat, "overlap-check");
    }
    changes = flat ? opts_crumple(flat, &err) : json_object_new();
    if (!changes) {
        error_report("%s", err->message);
        return -EINVAL;
    }
    if (has_rw && opts_has(changes, "read-only")) {
        error_report("Cannot set both -r/-w and 'read-only'");
        return -EINVAL;
    }
    if (has_cache && opts_get_object(changes, "cache")) {
        error_report("Cannot set both -c and the cache options");
        return -EINVAL;
    }
    if (!check_bools(changes, &err) || !check_node(qemuio_bs, changes, &err)) {
        error_report("%s", err->message);
        return -EINVAL;
    }
    if (qemuio_open_flags & BDRV_O_SNAPSHOT) {
        error_report("reopen is not supported under a temporary overlay (-s)");
        return -ENOTSUP;
    }

    if (has_cache) {
        flags = (flags & ~BDRV_O_CACHE_MASK) | (cache_flags & BDRV_O_CACHE_MASK);
        writethrough = (cache_flags & BDRV_O_WRITETHROUGH) != 0;
    }
    if (opts_has(changes, "read-only")) {
        bool ro = opts_get_bool(changes, "read-only", false, NULL);

        /* qemu-io itself still writes: only -r drops that (QEMU's check) */
        if (ro && (flags & BDRV_O_RDWR)) {
            error_report("Read-only block node '%s' cannot support read-write users",
                         qemuio_bs->node_name);
            return -EPERM;
        }
        flags = ro ? flags & ~BDRV_O_RDWR : flags | BDRV_O_RDWR;
        json_object_remove_member(changes, "read-only");
    }

    /* the new options: what opened the image, with the changes over it */
    old_opts = qemuio_open_opts ? opts_clone(qemuio_open_opts) : NULL;
    merged = qemuio_open_opts ? opts_crumple(qemuio_open_opts, NULL) : NULL;
    if (!merged) {
        merged = json_object_new();
    }
    if (has_rw) {
        json_object_remove_member(merged, "read-only");
    }
    drop_replaced(merged, changes);
    opts_merge(merged, changes);
    name = g_strdup(qemuio_open_name);

    qemuio_close();
    if (qemuio_open_err(name, merged, flags, writethrough, &err) == 0) {
        return 0;
    }
    error_report("%s", err->message);
    /* the driver refused the new settings: go on with the old ones */
    qemuio_open(name, old_opts, old_flags, old_writethrough);
    return -EINVAL;
}

const cmdinfo_t qemuio_reopen_cmd = {
    .name = "reopen", .cfunc = reopen_f, .argmin = 0, .argmax = -1, .needs_file = true,
    .args = "[(-r|-w)] [-c cache] [-o options]",
    .oneline = "reopens an image with new options",
    .help = reopen_help,
};
