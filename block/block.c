/*
 * The node graph: the driver table, opening images (filename, json:, options tree,
 * format probing, temporary snapshot overlays), children (file, backing, data-file),
 * node names, references and closing, and the permissions users of a node need and
 * share (QEMU's model: they become the OFD locks other processes see). I/O lives in
 * io.c.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "block/aio.h"
#include <libgen.h>

static BlockDriver *const block_drivers[] = {
    &bdrv_qcow2,
    &bdrv_raw,
    &bdrv_file,
    &bdrv_host_device,
    &bdrv_host_cdrom,
    &bdrv_blkdebug,
    &bdrv_crypto_luks,
    &bdrv_bochs,
    &bdrv_null_co,
    &bdrv_null_aio,
    &bdrv_blkverify,
    &bdrv_copy_on_read,
    &bdrv_copy_before_write,
    &bdrv_snapshot_access,
    &bdrv_compress,
    &bdrv_quorum,
    &bdrv_preallocate,
    &bdrv_throttle,
    &bdrv_nbd_stub,
#ifdef CONFIG_SSH
    &bdrv_ssh_stub,
#endif
};

/* Options every node takes, whatever its driver. */
static const char *const generic_opts[] = {
    "driver", "node-name", "read-only", "auto-read-only", "cache", "discard",
    "detect-zeroes", "force-share", NULL,
};

static GList *all_nodes;          /* every open node, in creation order */
/* The node whose backing file is being opened (for loop detection). */
static __thread BlockDriverState *opening_backing_parent;
static uint64_t auto_node_counter;

const char *const PreallocMode_str[PREALLOC_MODE__MAX] = {
    [PREALLOC_MODE_OFF] = "off",
    [PREALLOC_MODE_METADATA] = "metadata",
    [PREALLOC_MODE_FALLOC] = "falloc",
    [PREALLOC_MODE_FULL] = "full",
};

int prealloc_mode_parse(const char *s)
{
    for (int i = 0; i < PREALLOC_MODE__MAX; i++) {
        if (!strcmp(s, PreallocMode_str[i])) {
            return i;
        }
    }
    return -1;
}

int bdrv_parse_cache_mode(const char *mode, int *flags)
{
    *flags &= ~BDRV_O_CACHE_MASK;
    if (!strcmp(mode, "off") || !strcmp(mode, "none")) {
        *flags |= BDRV_O_NOCACHE;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE | BDRV_O_WRITETHROUGH;
    } else if (!strcmp(mode, "writeback")) {
        /* default */
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
    } else if (!strcmp(mode, "writethrough")) {
        *flags |= BDRV_O_WRITETHROUGH;
    } else {
        return -1;
    }
    return 0;
}

int bdrv_parse_discard_flags(const char *mode, int *flags)
{
    if (!strcmp(mode, "off") || !strcmp(mode, "ignore")) {
        *flags &= ~BDRV_O_UNMAP;
    } else if (!strcmp(mode, "on") || !strcmp(mode, "unmap")) {
        *flags |= BDRV_O_UNMAP;
    } else {
        return -1;
    }
    return 0;
}

BlockDriver *bdrv_find_format(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(block_drivers); i++) {
        if (!strcmp(block_drivers[i]->format_name, name)) {
            g_autoptr(GError) err = NULL;
            BlockDriver *drv = bdrv_module_resolve(block_drivers[i], &err);

            if (!drv) {
                /* the caller goes on to say "Unknown driver" */
                error_report("%s", err->message);
            }
            return drv;
        }
    }
    return NULL;
}

bool bdrv_filename_is_special(const char *name)
{
    /* "proto:rest" (json: too) with the colon before any slash */
    return name[strcspn(name, ":/")] == ':';
}

/* Does @drv's name prefix ("nbd" or "nbd+unix" in "nbd+unix://...") match? */
static bool protocol_matches(const BlockDriver *drv, const char *name, size_t len)
{
    if (drv->protocol_name && strlen(drv->protocol_name) == len &&
        !strncmp(drv->protocol_name, name, len)) {
        return true;
    }
    for (const char *const *a = drv->protocol_aliases; a && *a; a++) {
        if (strlen(*a) == len && !strncmp(*a, name, len)) {
            return true;
        }
    }
    return false;
}

/* A device node a plain name opens as (QEMU's host_device/host_cdrom probing). */
static const BlockDriver *find_device_driver(const char *filename)
{
    struct stat st;

    if (g_str_has_prefix(filename, "/dev/cdrom")) {
        return &bdrv_host_cdrom;
    }
    if (stat(filename, &st) == 0 && (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode))) {
        return &bdrv_host_device;
    }
    return NULL;
}

/*
 * The protocol driver for a filename given as a name (not as a "filename"
 * option): its "proto:" prefix, else a device driver for device nodes, else file.
 */
const BlockDriver *bdrv_find_protocol(const char *filename, bool allow_prefix,
                                      GError **errp)
{
    const BlockDriver *dev = find_device_driver(filename);
    size_t len;

    if (dev) {
        return dev;
    }
    if (!allow_prefix || !bdrv_filename_is_special(filename)) {
        return &bdrv_file;
    }
    len = strcspn(filename, ":");
    for (size_t i = 0; i < ARRAY_SIZE(block_drivers); i++) {
        if (protocol_matches(block_drivers[i], filename, len)) {
            return bdrv_module_resolve(block_drivers[i], errp);
        }
    }
    error_setg(errp, "Unknown protocol '%.*s'", (int)len, filename);
    return NULL;
}

/*
 * Put a filename given as a name into @opts for protocol @drv: the driver
 * parses it, or it becomes the "filename" option.
 */
static int protocol_take_filename(const BlockDriver *drv, const char *filename,
                                  JsonObject *opts, GError **errp)
{
    if (drv->parse_filename) {
        return drv->parse_filename(filename, opts, errp);
    }
    opts_set_str(opts, "filename", filename);
    return 0;
}

/* g_ptr_array_sort passes pointers to the elements */
static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void bdrv_iterate_format(void (*fn)(void *opaque, const char *name), void *opaque)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();

    for (size_t i = 0; i < ARRAY_SIZE(block_drivers); i++) {
        g_ptr_array_add(names, (gpointer)block_drivers[i]->format_name);
    }
    g_ptr_array_sort(names, compare_names);
    for (guint i = 0; i < names->len; i++) {
        fn(opaque, names->pdata[i]);
    }
}

const char *bdrv_get_format_name(BlockDriverState *bs)
{
    return bs->drv->format_name;
}

bool bdrv_supports_backing(BlockDriverState *bs)
{
    return bs->drv->supports_backing;
}

BlockDriverState *bdrv_skip_filters(BlockDriverState *bs)
{
    while (bs && bs->drv->is_filter && bs->file) {
        bs = bs->file;
    }
    return bs;
}

bool bdrv_is_protocol(BlockDriverState *bs)
{
    return bs->drv->is_protocol;
}

/* ---- node names ---- */

const char *bdrv_get_node_name(BlockDriverState *bs)
{
    return bs->node_name;
}

BlockDriverState *bdrv_find_node(const char *node_name)
{
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;
        if (!strcmp(bs->node_name, node_name)) {
            return bs;
        }
    }
    return NULL;
}

BlockDriverState *bdrv_next_node(BlockDriverState *prev)
{
    GList *l = prev ? g_list_find(all_nodes, prev) : NULL;

    if (!prev) {
        return all_nodes ? all_nodes->data : NULL;
    }
    return l && l->next ? l->next->data : NULL;
}

static bool node_name_valid(const char *name)
{
    if (!g_ascii_isalpha(name[0])) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
            return false;
        }
    }
    return strlen(name) < 32;
}

static int bdrv_assign_node_name(BlockDriverState *bs, const char *name, GError **errp)
{
    if (name) {
        if (!node_name_valid(name)) {
            error_setg(errp, "Invalid node-name: '%s'", name);
            return -EINVAL;
        }
        if (bdrv_find_node(name)) {
            error_setg(errp, "Duplicate nodes with node-name='%s'", name);
            return -EINVAL;
        }
        bs->node_name = g_strdup(name);
    } else {
        bs->node_name = g_strdup_printf("#block%03" PRIu64, auto_node_counter++);
        bs->auto_node_name = true;
    }
    return 0;
}

/* ---- accessors ---- */

BlockDriverState *bdrv_file_child(BlockDriverState *bs) { return bs->file; }
BlockDriverState *bdrv_backing_child(BlockDriverState *bs) { return bs->backing; }
BlockDriverState *bdrv_data_file_child(BlockDriverState *bs) { return bs->data_file; }
const char *bdrv_get_filename(BlockDriverState *bs) { return bs->filename; }
int bdrv_get_refcnt(BlockDriverState *bs) { return bs->refcnt; }
JsonObject *bdrv_get_options(BlockDriverState *bs) { return bs->options; }
bool bdrv_is_encrypted(BlockDriverState *bs) { return bs->encrypted; }
bool bdrv_is_read_only(BlockDriverState *bs) { return !(bs->open_flags & BDRV_O_RDWR); }
int bdrv_get_flags(BlockDriverState *bs) { return bs->open_flags; }
const char *bdrv_get_backing_filename(BlockDriverState *bs) { return bs->backing_file; }
const char *bdrv_get_backing_format(BlockDriverState *bs) { return bs->backing_format; }

char *bdrv_get_full_filename(BlockDriverState *bs)
{
    return g_strdup(bs->filename);
}

char *bdrv_path_combine(const char *base, const char *name)
{
    g_autofree char *dir = NULL;

    /* absolute paths, json: and protocol names stand on their own (QEMU's rule) */
    if (g_path_is_absolute(name) || !base || !*base || bdrv_filename_is_special(name)) {
        return g_strdup(name);
    }
    dir = g_path_get_dirname(base);
    if (!strcmp(dir, ".")) {
        return g_strdup(name);
    }
    return g_build_filename(dir, name, NULL);
}

/* @name as resolved against the folder of @image (json: images: as it is). */
static char *resolve_against(BlockDriverState *image, const char *name)
{
    if (bdrv_filename_is_special(image->filename)) {
        return g_strdup(name);
    }
    return bdrv_path_combine(image->filename, name);
}

/* Do two paths name the same existing file (after resolving links and dots)? */
static bool same_real_path(const char *a, const char *b)
{
    char *ra = realpath(a, NULL);
    char *rb = ra ? realpath(b, NULL) : NULL;
    bool same = ra && rb && !strcmp(ra, rb);

    free(ra);
    free(rb);
    return same;
}

BlockDriverState *bdrv_find_backing_image(BlockDriverState *bs, const char *name)
{
    bool name_special = bdrv_filename_is_special(name);

    for (BlockDriverState *cur = bs; cur && cur->backing; cur = cur->backing) {
        BlockDriverState *below = cur->backing;
        g_autofree char *want = NULL, *have = NULL;

        if (!cur->backing_file || (cur->options &&
                                   json_object_has_member(cur->options, "backing"))) {
            /* the backing node came from options: only its own name can match */
            if (below->filename && !strcmp(name, below->filename)) {
                return below;
            }
            continue;
        }
        have = resolve_against(cur, cur->backing_file);
        if (name_special || bdrv_filename_is_special(cur->backing_file)) {
            /* protocols and json: are compared as written */
            if (!strcmp(name, cur->backing_file) || !strcmp(name, have)) {
                return below;
            }
            continue;
        }
        want = resolve_against(cur, name);
        if (same_real_path(want, have)) {
            return below;
        }
    }
    return NULL;
}

/* ---- opening ---- */

bool bdrv_is_generic_opt(const char *key)
{
    return g_strv_contains(generic_opts, key);
}

static int check_unknown_opts(BlockDriverState *bs, JsonObject *opts, GError **errp)
{
    GList *members, *l;
    int ret = 0;

    if (bs->drv->checks_own_opts) {
        return 0;
    }
    members = json_object_get_members(opts);

    for (l = members; l; l = l->next) {
        const char *key = l->data;
        bool known = g_strv_contains(generic_opts, key);

        if (!bs->drv->is_protocol && (!strcmp(key, "file"))) {
            known = true;
        }
        if (bs->drv->runtime_opts && g_strv_contains((const char *const *)
                                                     bs->drv->runtime_opts, key)) {
            known = true;
        }
        if (!known) {
            if (bs->drv->is_protocol) {
                error_setg(errp, "Block protocol '%s' doesn't support the option '%s'",
                           bs->drv->format_name, key);
            } else {
                error_setg(errp, "Block format '%s' does not support the option '%s'",
                           bs->drv->format_name, key);
            }
            ret = -EINVAL;
            break;
        }
    }
    g_list_free(members);
    return ret;
}

/* Apply the generic options that change flags: read-only, cache.*, force-share. */
static int apply_generic_opts(JsonObject *opts, int *flags, GError **errp)
{
    GError *local = NULL;
    JsonObject *cache = opts_get_object(opts, "cache");

    if (opts_get_bool(opts, "read-only", false, &local)) {
        *flags &= ~BDRV_O_RDWR;
    }
    if (opts_get_bool(opts, "force-share", false, &local)) {
        *flags |= BDRV_O_FORCE_SHARE;
    }
    if (opts_has(opts, "discard")) {
        g_autofree char *d = opts_get_str(opts, "discard");
        if ((!d || bdrv_parse_discard_flags(d, flags) < 0) && !local) {
            error_setg(&local, "Invalid discard option");
        }
    }
    if (cache) {
        if (opts_has(cache, "direct")) {
            *flags &= ~BDRV_O_NOCACHE;
            if (opts_get_bool(cache, "direct", false, &local)) {
                *flags |= BDRV_O_NOCACHE;
            }
        }
        if (opts_has(cache, "no-flush")) {
            *flags &= ~BDRV_O_NO_FLUSH;
            if (opts_get_bool(cache, "no-flush", false, &local)) {
                *flags |= BDRV_O_NO_FLUSH;
            }
        }
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if ((*flags & BDRV_O_FORCE_SHARE) && (*flags & BDRV_O_RDWR)) {
        error_setg(errp, "force-share=on can only be used with read-only images");
        return -EINVAL;
    }
    if ((*flags & BDRV_O_COPY_ON_READ) && !(*flags & BDRV_O_RDWR)) {
        error_setg(errp, "Can't use copy-on-read on read-only device");
        return -EINVAL;
    }
    return 0;
}

/* ---- permissions ---- */

typedef struct BdrvPermUser {
    const void *owner;
    uint64_t perm;
    uint64_t shared;
    /* for conflict messages: "node 'x'", "an unnamed block device"...; NULL for a
     * tool's own open, which is not checked against other users in-process */
    char *desc;
    char *child;                /* the child's name: "backing", "root"... */
    BlockDriverState *parent;   /* the parent node, for a node's child */
    const void *group;          /* the job the user belongs to, or NULL */
    /* an active commit put a filter between this user and the node: what it
     * needs no longer reaches the node's backing file (QEMU's commit_top) */
    const void *behind;
} BdrvPermUser;

static void perm_user_free(gpointer p)
{
    BdrvPermUser *u = p;

    g_free(u->desc);
    g_free(u->child);
    g_free(u);
}

static BdrvPermUser *perm_user_find(BlockDriverState *bs, const void *owner)
{
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        BdrvPermUser *u = bs->perm_users->pdata[i];
        if (u->owner == owner) {
            return u;
        }
    }
    return NULL;
}

/* What the node's users need together, and what they all let others have. */
static void perm_cumulative(BlockDriverState *bs, uint64_t *perm, uint64_t *shared)
{
    *perm = 0;
    *shared = BLK_PERM_ALL;
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        BdrvPermUser *u = bs->perm_users->pdata[i];
        *perm |= u->perm;
        *shared &= u->shared;
    }
}

static char *perm_names(uint64_t perm)
{
    static const char *const names[] = {
        "consistent read", "write", "write unchanged", "resize",
    };
    GString *s = g_string_new(NULL);

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        if (perm & (1ull << i)) {
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", names[i]);
        }
    }
    return g_string_free(s, false);
}

/*
 * Users of one process that conflict: one needs what the other does not share.
 * Only users with a description take part (a tool's own open is alone on its
 * node), and two children of nodes are not held against each other (the graph
 * was accepted when it was opened). Newest users first, as QEMU's.
 */
static int perm_check_conflicts(BlockDriverState *bs, GError **errp)
{
    GPtrArray *users = bs->perm_users;

    for (guint i = users ? users->len : 0; i > 0; i--) {
        BdrvPermUser *a = users->pdata[i - 1];
        for (guint j = users->len; j > 0; j--) {
            BdrvPermUser *b = users->pdata[j - 1];
            uint64_t clash = b->perm & ~a->shared & BLK_PERM_ALL;
            g_autofree char *names = NULL;

            if (a == b || !clash || !a->desc || !b->desc || (a->parent && b->parent) ||
                (a->group && a->group == b->group)) {
                continue;
            }
            names = perm_names(clash);
            error_setg(errp, "Permission conflict on node '%s': permissions '%s' are "
                       "both required by %s (uses node '%s' as '%s' child) and "
                       "unshared by %s (uses node '%s' as '%s' child).",
                       bs->node_name, names, b->desc, bs->node_name, b->child,
                       a->desc, bs->node_name, a->child);
            return -EPERM;
        }
    }
    return 0;
}

static int perm_refresh(BlockDriverState *bs, GError **errp);

/*
 * What a node asks of its backing file follows its own users: consistent reads
 * when somebody reads it, and others may write or resize the backing file only
 * while this node's users let others write (QEMU's default for COW children).
 * A tool's own open (no description) leaves the backing file shared.
 */
static int perm_refresh_backing(BlockDriverState *bs, GError **errp)
{
    BdrvPermUser *u = bs->backing ? perm_user_find(bs->backing, &bs->backing) : NULL;
    uint64_t perm = 0, shared = BLK_PERM_ALL;

    if (!u || u->parent != bs) {
        return 0;
    }
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        BdrvPermUser *p = bs->perm_users->pdata[i];
        if (!p->behind) {
            perm |= p->perm;
        }
        if (p->desc) {
            shared &= p->shared;
        }
    }
    perm &= BLK_PERM_CONSISTENT_READ;
    shared = (shared & BLK_PERM_WRITE) || (bs->open_flags & BDRV_O_FORCE_SHARE) ?
             BLK_PERM_ALL : BLK_PERM_ALL & ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
    if (u->perm == perm && u->shared == shared) {
        return 0;
    }
    return bdrv_perm_attach(bs->backing, &bs->backing, perm, shared, errp);
}

/* Push the node's needs on: to the child of a filter, to a protocol's locks. */
static int perm_refresh(BlockDriverState *bs, GError **errp)
{
    uint64_t perm, shared;
    int ret;

    perm_cumulative(bs, &perm, &shared);
    if ((perm & BLK_PERM_WRITE) && !(perm & BLK_PERM_RESIZE) &&
        bs->request_alignment > 1) {
        int64_t len = bdrv_getlength(bs);
        if (len >= 0 && len % bs->request_alignment) {
            error_setg(errp, "Cannot get 'write' permission without 'resize': Image "
                       "size is not a multiple of request alignment");
            return -EPERM;
        }
    }
    ret = perm_refresh_backing(bs, errp);
    if (ret < 0) {
        return ret;
    }
    if (bs->filtered_slots && bs->filtered_slots->len) {
        for (guint i = 0; i < bs->filtered_slots->len; i++) {
            BlockDriverState **slot = bs->filtered_slots->pdata[i];
            ret = bdrv_perm_attach(*slot, slot, perm, shared, errp);
            if (ret < 0) {
                return ret;
            }
        }
        return 0;
    }
    if (bs->drv->set_perm) {
        return bs->drv->set_perm(bs, perm, shared, errp);
    }
    return 0;
}

static int perm_attach(BlockDriverState *bs, const void *owner, const char *desc,
                       const char *child, BlockDriverState *parent, const void *group,
                       uint64_t perm, uint64_t shared, GError **errp)
{
    BdrvPermUser *u = perm_user_find(bs, owner);
    BdrvPermUser old = { 0 };
    bool existed = u != NULL;
    int ret;

    if (!bs->perm_users) {
        bs->perm_users = g_ptr_array_new_with_free_func(perm_user_free);
    }
    if (existed) {
        old = *u;
    } else {
        u = g_new0(BdrvPermUser, 1);
        u->owner = owner;
        u->desc = g_strdup(desc);
        u->child = g_strdup(child);
        u->parent = parent;
        u->group = group;
        g_ptr_array_add(bs->perm_users, u);
    }
    u->perm = perm;
    u->shared = shared;
    ret = perm_check_conflicts(bs, errp);
    if (ret == 0) {
        ret = perm_refresh(bs, errp);
    }
    if (ret < 0) {
        /* back to what was held: giving up needs cannot fail */
        if (existed) {
            u->perm = old.perm;
            u->shared = old.shared;
        } else {
            g_ptr_array_remove(bs->perm_users, u);
        }
        perm_refresh(bs, NULL);
    }
    return ret;
}

int bdrv_perm_attach(BlockDriverState *bs, const void *owner, uint64_t perm,
                     uint64_t shared, GError **errp)
{
    return perm_attach(bs, owner, NULL, NULL, NULL, NULL, perm, shared, errp);
}

int bdrv_perm_attach_user(BlockDriverState *bs, const void *owner, const char *desc,
                          const char *child, const void *group, uint64_t perm,
                          uint64_t shared, GError **errp)
{
    return perm_attach(bs, owner, desc, child, NULL, group, perm, shared, errp);
}

/* Does @group use @bs directly? */
static bool perm_group_on(BlockDriverState *bs, const void *group)
{
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        if (((BdrvPermUser *)bs->perm_users->pdata[i])->group == group) {
            return true;
        }
    }
    return false;
}

void bdrv_perm_put_behind(BlockDriverState *bs, const void *group, bool behind)
{
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        BdrvPermUser *u = bs->perm_users->pdata[i];
        /* the present users, or the job's own filter node over @bs (which
         * the users move onto) */
        bool user = (u->desc && !u->parent) ||
                    (u->parent && u->parent != bs && perm_group_on(u->parent, group));

        if (behind && user && !u->group && !u->behind) {
            u->behind = group;
        } else if (!behind && u->behind == group) {
            u->behind = NULL;
        }
    }
    perm_refresh(bs, NULL);
}

bool bdrv_perm_group_above(BlockDriverState *bs, const void *group)
{
    for (guint i = 0; bs->perm_users && i < bs->perm_users->len; i++) {
        BdrvPermUser *u = bs->perm_users->pdata[i];
        if (u->group == group ||
            (u->parent && u->parent != bs && bdrv_perm_group_above(u->parent, group))) {
            return true;
        }
    }
    return false;
}

void bdrv_perm_detach(BlockDriverState *bs, const void *owner)
{
    BdrvPermUser *u = perm_user_find(bs, owner);

    if (u) {
        g_ptr_array_remove(bs->perm_users, u);
        perm_refresh(bs, NULL);
    }
}

/*
 * What a parent asks of a child, by role (as QEMU 7.2's defaults, checked against
 * its lock bytes): a format's image file is read consistently, written and resized
 * when the parent is writable, and nobody else may write or resize it (metadata
 * lives there); an external data file only keeps others from resizing it; a
 * backing file is only read. -U (force-share) shares everything; metadata-only
 * opens (qemu-img info) need no consistent read.
 */
static void child_perm(BlockDriverState *parent, BlockDriverState *child,
                       BdrvChildRole role, uint64_t *perm, uint64_t *shared)
{
    int flags = parent->open_flags;
    uint64_t read = (flags & BDRV_O_NO_IO) ? 0 : BLK_PERM_CONSISTENT_READ;
    bool rw = (flags & BDRV_O_RDWR) && !bdrv_is_read_only(child);

    switch (role) {
    case BDRV_CHILD_FILTERED:
        perm_cumulative(parent, perm, shared);
        return;
    case BDRV_CHILD_STORAGE:
        *perm = read | (rw ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0);
        *shared = BLK_PERM_ALL & ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
        break;
    case BDRV_CHILD_DATA:
        *perm = read | (rw ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0);
        *shared = BLK_PERM_ALL & ~BLK_PERM_RESIZE;
        break;
    case BDRV_CHILD_COW:
    default:
        *perm = read;
        *shared = BLK_PERM_ALL;
        break;
    }
    if (flags & BDRV_O_FORCE_SHARE) {
        *shared = BLK_PERM_ALL;
    }
}

int bdrv_attach_child_perm(BlockDriverState *parent, BlockDriverState *child,
                           BlockDriverState **slot, BdrvChildRole role,
                           GError **errp)
{
    static const char *const child_names[] = {
        [BDRV_CHILD_STORAGE] = "file", [BDRV_CHILD_DATA] = "data-file",
        [BDRV_CHILD_COW] = "backing", [BDRV_CHILD_FILTERED] = "file",
    };
    g_autofree char *desc = g_strdup_printf("node '%s'", parent->node_name);
    uint64_t perm, shared;
    int ret;

    child_perm(parent, child, role, &perm, &shared);
    ret = perm_attach(child, slot, desc, child_names[role], parent, NULL, perm, shared,
                      errp);
    if (ret == 0 && role == BDRV_CHILD_COW && slot == &parent->backing) {
        /* what the parent's users need decides */
        ret = perm_refresh_backing(parent, errp);
        if (ret < 0) {
            bdrv_perm_detach(child, slot);
        }
    }
    if (ret == 0 && role == BDRV_CHILD_FILTERED) {
        if (!parent->filtered_slots) {
            parent->filtered_slots = g_ptr_array_new();
        }
        if (!g_ptr_array_find(parent->filtered_slots, slot, NULL)) {
            g_ptr_array_add(parent->filtered_slots, slot);
        }
    }
    return ret;
}

void bdrv_unref_child(BlockDriverState *parent, BlockDriverState **slot)
{
    BlockDriverState *child = *slot;

    if (parent && parent->filtered_slots) {
        g_ptr_array_remove(parent->filtered_slots, slot);
    }
    if (child) {
        *slot = NULL;
        bdrv_perm_detach(child, slot);
        bdrv_unref(child);
    }
}

/*
 * The tool's own use of the node it opened (QEMU's BlockBackend): read, write
 * when read-write, resize for qemu-img resize; everything shared, except that a
 * convert source (BDRV_O_NO_SHARE) keeps others from writing and resizing.
 */
static int attach_root_perm(BlockDriverState *bs, int flags, GError **errp)
{
    uint64_t perm = ((flags & BDRV_O_NO_IO) ? 0 : BLK_PERM_CONSISTENT_READ) |
                    ((flags & BDRV_O_RDWR) ? BLK_PERM_WRITE : 0) |
                    ((flags & BDRV_O_RESIZE) ? BLK_PERM_RESIZE : 0);
    uint64_t shared = BLK_PERM_ALL;

    if ((flags & BDRV_O_NO_SHARE) && !(flags & BDRV_O_FORCE_SHARE)) {
        shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
    }
    return bdrv_perm_attach(bs, bs, perm, shared, errp);
}

/* Drop the references a node holds on its children. */
static void bdrv_release_children(BlockDriverState *bs)
{
    bdrv_unref_child(bs, &bs->backing);
    if (bs->data_file && bs->data_file != bs->file) {
        bdrv_unref_child(bs, &bs->data_file);
    }
    bdrv_unref_child(bs, &bs->file);
    bs->backing = bs->data_file = bs->file = NULL;
}

static BlockDriverState *bdrv_new(const BlockDriver *drv)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);

    bs->drv = drv;
    bs->refcnt = 1;
    bs->request_alignment = 1;
    if (drv->instance_size) {
        bs->opaque = g_malloc0(drv->instance_size);
    }
    return bs;
}

static void bdrv_free(BlockDriverState *bs)
{
    bdrv_aio_node_free(bs);
    bdrv_track_stop(bs);
    bdrv_dirty_bitmaps_release_all(bs);
    g_clear_pointer(&bs->anon_bitmaps, g_array_unref);
    if (bs->before_write) {
        g_ptr_array_unref(bs->before_write);
    }
    if (bs->perm_users) {
        g_ptr_array_unref(bs->perm_users);
    }
    if (bs->filtered_slots) {
        g_ptr_array_unref(bs->filtered_slots);
    }
    g_free(bs->opaque);
    g_free(bs->filename);
    g_free(bs->node_name);
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    g_free(bs->exact_filename);
    if (bs->full_open_options) {
        json_object_unref(bs->full_open_options);
    }
    if (bs->options) {
        json_object_unref(bs->options);
    }
    g_free(bs);
}

bool bdrv_probe_claims(const uint8_t *buf, int len)
{
    for (size_t i = 0; i < ARRAY_SIZE(block_drivers); i++) {
        if (block_drivers[i] != &bdrv_raw && block_drivers[i]->probe &&
            block_drivers[i]->probe(buf, len, NULL) > 1) {
            return true;
        }
    }
    return false;
}

static const BlockDriver *probe_format(BlockDriverState *file, const char *filename,
                                       GError **errp)
{
    uint8_t buf[2048];
    int64_t len = bdrv_getlength(file);
    int n, best_score = 0;
    const BlockDriver *best = &bdrv_raw;
    int ret;

    if (len < 0) {
        error_setg_errno(errp, -len, "Could not determine image size");
        return NULL;
    }
    n = MIN(len, (int64_t)sizeof(buf));
    memset(buf, 0, sizeof(buf));
    ret = bdrv_pread(file, 0, QEMU_ALIGN_UP(n, bdrv_get_request_alignment(file)) >
                     (int64_t)sizeof(buf) ? (int64_t)sizeof(buf) :
                     QEMU_ALIGN_UP(n, bdrv_get_request_alignment(file)), buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read image for determining its format");
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(block_drivers); i++) {
        if (block_drivers[i]->probe) {
            int score = block_drivers[i]->probe(buf, n, filename);
            if (score > best_score) {
                best_score = score;
                best = block_drivers[i];
            }
        }
    }
    return best;
}

/* Open a node that opens its own children (file, blkdebug, quorum): no file child. */
static BlockDriverState *bdrv_open_protocol(const BlockDriver *drv, const char *filename,
                                            JsonObject *opts, int flags, GError **errp)
{
    BlockDriverState *bs = bdrv_new(drv);
    int ret;

    if (filename && !opts_has(opts, "filename") &&
        protocol_take_filename(drv, filename, opts, errp) < 0) {
        goto fail;
    }
    ret = apply_generic_opts(opts, &flags, errp);
    if (ret < 0 || check_unknown_opts(bs, opts, errp) < 0) {
        goto fail;
    }
    bs->open_flags = flags;
    bs->options = opts_clone(opts);
    if (bdrv_assign_node_name(bs, opts_peek_str(opts, "node-name"), errp) < 0) {
        goto fail;
    }
    /* listed before the children its driver opens (QEMU's order) */
    all_nodes = g_list_append(all_nodes, bs);
    bs->filename = opts_get_str(opts, "filename");
    ret = drv->open(bs, opts, flags, errp);
    if (ret < 0) {
        goto fail;
    }
    /* a tool's own open takes its locks now, before anything is written */
    if (!(flags & BDRV_O_NO_USER) && attach_root_perm(bs, flags, errp) < 0) {
        if (drv->close) {
            drv->close(bs);
        }
        bdrv_release_children(bs);
        goto fail;
    }
    bdrv_refresh_filename(bs);
    return bs;

fail:
    all_nodes = g_list_remove(all_nodes, bs);
    bdrv_free(bs);
    return NULL;
}

BlockDriverState *bdrv_open_child(BlockDriverState *parent, JsonObject *parent_opts,
                                  const char *child_name, const char *filename,
                                  bool allow_format, int flags, GError **errp)
{
    JsonNode *ref = parent_opts && json_object_has_member(parent_opts, child_name) ?
                    json_object_get_member(parent_opts, child_name) : NULL;
    g_autoptr(JsonObject) copts = NULL;
    const BlockDriver *drv = NULL;

    if (ref && JSON_NODE_HOLDS_VALUE(ref) &&
        json_node_get_value_type(ref) == G_TYPE_STRING) {
        /* a reference to an existing node */
        BlockDriverState *bs = bdrv_find_node(json_node_get_string(ref));
        if (!bs) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       json_node_get_string(ref), json_node_get_string(ref));
            return NULL;
        }
        bdrv_ref(bs);
        return bs;
    }
    if (ref && JSON_NODE_HOLDS_OBJECT(ref)) {
        copts = opts_clone(json_node_get_object(ref));
    } else {
        copts = json_object_new();
    }
    /* a child has no user until its parent attaches; copy-on-read is the top's */
    flags = (flags | BDRV_O_NO_USER) & ~BDRV_O_COPY_ON_READ;
    if (opts_peek_str(copts, "driver")) {
        drv = bdrv_find_format(opts_peek_str(copts, "driver"));
    }
    if (filename && !opts_has(copts, "filename") && !opts_has(copts, "file")) {
        /* a name from the parent (its filename, blkdebug's image path) */
        if (allow_format || (drv && !drv->is_protocol) ||
            (!drv && opts_has(copts, "driver"))) {
            return bdrv_open(filename, copts, flags, errp);
        }
        if (!drv) {
            drv = bdrv_find_protocol(filename, true, errp);
            if (!drv) {
                return NULL;
            }
            opts_set_str(copts, "driver", drv->format_name);
        }
        if (protocol_take_filename(drv, filename, copts, errp) < 0) {
            return NULL;
        }
        return bdrv_open(NULL, copts, flags, errp);
    }
    if (!opts_has(copts, "driver") && !allow_format) {
        /* a "filename" option is a path: only device nodes change the driver */
        const char *fn = opts_peek_str(copts, "filename");
        drv = fn ? bdrv_find_protocol(fn, false, NULL) : &bdrv_file;
        opts_set_str(copts, "driver", drv->format_name);
    }
    return bdrv_open(NULL, copts, flags, errp);
}

BlockDriverState *bdrv_open_file(const char *filename, int flags, GError **errp)
{
    g_autoptr(JsonObject) opts = json_object_new();

    /* the name is a literal path: never parsed as json: or a protocol */
    opts_set_str(opts, "driver", bdrv_find_protocol(filename, false, NULL)->format_name);
    opts_set_str(opts, "filename", filename);
    return bdrv_open(NULL, opts, flags & ~BDRV_O_COPY_ON_READ, errp);
}

/* A node that names a file but was never opened: all I/O fails. */
static int placeholder_io(BlockDriverState *bs, int64_t o, int64_t b, void *buf, int f)
{
    return -ENOMEDIUM;
}

static int placeholder_wio(BlockDriverState *bs, int64_t o, int64_t b, const void *buf,
                           int f)
{
    return -ENOMEDIUM;
}

static int64_t placeholder_len(BlockDriverState *bs)
{
    return -ENOMEDIUM;
}

static BlockDriver bdrv_placeholder = {
    .format_name = "file",
    .is_protocol = true,
    .pread = placeholder_io,
    .pwrite = placeholder_wio,
    .getlength = placeholder_len,
};

BlockDriverState *bdrv_new_placeholder(const char *filename)
{
    BlockDriverState *bs = bdrv_new(&bdrv_placeholder);

    bs->filename = g_strdup(filename);
    bs->node_name = g_strdup_printf("#block%03" PRIu64, auto_node_counter++);
    bs->auto_node_name = true;
    return bs;
}

/* dev/inode identity of a node's file, to find loops in backing chains */
static bool same_file(BlockDriverState *a, const char *path)
{
    struct stat sa, sb;

    while (a && a->file) {
        a = a->file;
    }
    return a && a->filename && stat(a->filename, &sa) == 0 && stat(path, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

#define MAX_BACKING_CHAIN 1000

static int attach_backing_perm(BlockDriverState *bs, GError **errp)
{
    int ret = bdrv_attach_child_perm(bs, bs->backing, &bs->backing, BDRV_CHILD_COW,
                                     errp);

    if (ret < 0) {
        bdrv_unref(bs->backing);
        bs->backing = NULL;
    }
    return ret;
}

/*
 * Whether the backing child differs from what the image would open by itself
 * (QEMU names a node json:{...} with its "backing" then): the child's name is
 * compared with the image's backing file name resolved against its folder, as
 * strings; a child given by options or by node name that carries that very
 * name (any driver) counts as the image's own.
 */
static bool backing_differs(BlockDriverState *bs)
{
    g_autofree char *full = NULL;

    if (!bs->backing) {
        return bs->backing_file != NULL;
    }
    if (!bs->backing_file) {
        return true;
    }
    full = bdrv_get_full_backing_filename(bs, NULL);
    return !full || !bs->backing->filename || strcmp(full, bs->backing->filename);
}

int bdrv_open_backing(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    JsonNode *node = opts && json_object_has_member(opts, "backing") ?
                     json_object_get_member(opts, "backing") : NULL;
    g_autoptr(JsonObject) bopts = NULL;
    g_autofree char *path = NULL;
    int depth = 0;

    for (BlockDriverState *p = bs; p; p = p->backing_parent) {
        depth++;
    }
    if (depth > MAX_BACKING_CHAIN) {
        error_setg(errp, "Backing file chain too long");
        return -EINVAL;
    }
    if (node && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        BlockDriverState *b = bdrv_find_node(json_node_get_string(node));
        if (!b) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       json_node_get_string(node), json_node_get_string(node));
            return -ENOENT;
        }
        bdrv_ref(b);
        bs->backing = b;
        bs->backing_overridden = backing_differs(bs);
        return attach_backing_perm(bs, errp);
    }
    bs->backing_overridden = node != NULL;
    bopts = node && JSON_NODE_HOLDS_OBJECT(node) ?
            opts_clone(json_node_get_object(node)) : json_object_new();
    if (!opts_has(bopts, "file") && !opts_has(bopts, "filename")) {
        path = bdrv_get_full_backing_filename(bs, errp);
        if (!path) {
            error_prepend(errp, "Could not open backing file: ");
            return -EINVAL;
        }
        /* a loop in the chain would never end */
        for (BlockDriverState *p = bs; p; p = p->backing_parent) {
            if (same_file(p, path)) {
                error_setg(errp, "Backing file '%s' creates a loop in the backing chain",
                           bs->backing_file);
                return -ELOOP;
            }
        }
        if (!opts_has(bopts, "driver") && bs->backing_format) {
            opts_set_str(bopts, "driver", bs->backing_format);
        }
    }
    opening_backing_parent = bs;
    bs->backing = bdrv_open(path, bopts,
                            (flags & ~(BDRV_O_RDWR | BDRV_O_COPY_ON_READ)) |
                            BDRV_O_NO_USER, errp);
    opening_backing_parent = NULL;
    if (!bs->backing) {
        if (path) {
            error_prepend(errp, "Could not open backing file: ");
        }
        return -EINVAL;
    }
    if (node) {
        bs->backing_overridden = backing_differs(bs);
    }
    return attach_backing_perm(bs, errp);
}

int bdrv_set_backing(BlockDriverState *bs, BlockDriverState *backing, GError **errp)
{
    BlockDriverState *old = bs->backing;
    int ret;

    if (backing == old) {
        return 0;
    }
    if (backing) {
        bdrv_ref(backing);
    }
    if (old) {
        bdrv_perm_detach(old, &bs->backing);
    }
    bs->backing = backing;
    ret = backing ? bdrv_attach_child_perm(bs, backing, &bs->backing, BDRV_CHILD_COW,
                                           errp) : 0;
    if (ret < 0) {
        bs->backing = old;
        if (old) {
            bdrv_attach_child_perm(bs, old, &bs->backing, BDRV_CHILD_COW, NULL);
        }
        bdrv_unref(backing);
        return ret;
    }
    if (backing && !backing->backing_parent) {
        backing->backing_parent = bs;
    }
    if (old) {
        if (old->backing_parent == bs) {
            old->backing_parent = NULL;
        }
        bdrv_unref(old);
    }
    bs->backing_overridden = backing_differs(bs);
    bdrv_refresh_filenames_above(bs);
    return 0;
}

void bdrv_refresh_filenames_above(BlockDriverState *bs)
{
    bdrv_refresh_filename(bs);
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *n = l->data;

        if (n != bs && (n->file == bs || n->backing == bs || n->data_file == bs)) {
            if (n->backing == bs) {
                /* a backing file whose name changed no longer is the header's */
                n->backing_overridden = backing_differs(n);
            }
            bdrv_refresh_filenames_above(n);
        }
    }
}

int bdrv_replace_in_parents(BlockDriverState *from, BlockDriverState *to, GError **errp)
{
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *n = l->data;
        BlockDriverState **slots[2] = { &n->file, &n->data_file };

        if (n == to || n->drv->own_children) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            BlockDriverState **slot = slots[i];
            BdrvChildRole role = slot == &n->data_file ? BDRV_CHILD_DATA :
                                 n->drv->is_filter ? BDRV_CHILD_FILTERED :
                                 BDRV_CHILD_STORAGE;

            /* an internal data file is the file itself: one use, the file's */
            if (*slot != from || (i == 1 && n->data_file == n->file)) {
                continue;
            }
            bdrv_ref(to);
            *slot = to;
            if (i == 0 && n->data_file == from) {
                n->data_file = to;
            }
            if (bdrv_attach_child_perm(n, to, slot, role, errp) < 0) {
                *slot = from;
                if (i == 0 && n->data_file == to) {
                    n->data_file = from;
                }
                bdrv_unref(to);
                return -EPERM;
            }
            bdrv_perm_detach(from, slot);
            bdrv_unref(from);
            bdrv_refresh_filenames_above(n);
        }
    }
    return 0;
}

/* Open @bs's backing file from its header again, read-write or read-only. */
static BlockDriverState *open_backing_again(BlockDriverState *bs, const char *path,
                                            const char *fmt, bool rw, GError **errp)
{
    g_autoptr(JsonObject) opts = json_object_new();
    int flags = (bs->open_flags & (BDRV_O_CACHE_MASK | BDRV_O_UNMAP)) | BDRV_O_NO_USER |
                (rw ? BDRV_O_RDWR : 0);
    BlockDriverState *b;

    opts_set_str(opts, "driver", fmt);
    opening_backing_parent = bs;
    b = bdrv_open(path, opts, flags, errp);
    opening_backing_parent = NULL;
    return b;
}

int bdrv_reopen_backing_rw(BlockDriverState *bs, GError **errp)
{
    BlockDriverState *old = bs->backing;
    g_autofree char *path = NULL;
    g_autofree char *fmt = NULL;
    BlockDriverState *b;

    if (!old || !bdrv_is_read_only(old)) {
        return 0;
    }
    if (!old->auto_node_name || old->refcnt > 1 || bs->backing_overridden) {
        error_setg(errp, "Block node is read-only");
        return -EACCES;
    }
    path = bdrv_get_full_backing_filename(bs, errp);
    if (!path) {
        return -EINVAL;
    }
    fmt = g_strdup(bdrv_get_format_name(old));
    /* its read-only use keeps others (a read-write open too) from writing */
    bdrv_unref_child(bs, &bs->backing);
    b = open_backing_again(bs, path, fmt, true, errp);
    if (!b) {
        b = open_backing_again(bs, path, fmt, false, NULL);
    }
    if (b) {
        bs->backing = b;
        if (attach_backing_perm(bs, NULL) < 0) {
            return -EPERM;
        }
    }
    return b && !bdrv_is_read_only(b) ? 0 : -EACCES;
}

/*
 * Put a temporary qcow2 overlay over @base (qemu-io -s): created in $TMPDIR, or
 * /var/tmp, as vl.XXXXXX, and unlinked as soon as it is open, so that writes land
 * there and vanish when it is closed. Takes over the caller's reference to @base.
 */
static BlockDriverState *bdrv_append_temp_snapshot(BlockDriverState *base, int flags,
                                                   GError **errp)
{
    const char *tmpdir = g_getenv("TMPDIR");
    g_autofree char *tmp = NULL, *size = NULL;
    g_autoptr(JsonObject) copts = json_object_new();
    g_autoptr(JsonObject) oopts = json_object_new();
    BlockDriverState *bs = NULL;
    int64_t len = bdrv_getlength(base);
    int fd;

    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get image size");
        goto out;
    }
    tmp = g_strdup_printf("%s/vl.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/var/tmp");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open temporary file '%s'", tmp);
        goto out;
    }
    close(fd);
    /* qcow2 sizes are whole sectors: the tail of an odd-sized image reads as zeros */
    size = g_strdup_printf("%" PRIu64, (uint64_t)QEMU_ALIGN_UP(len, BDRV_SECTOR_SIZE));
    opts_set_str(copts, "size", size);
    if (bdrv_create("qcow2", tmp, copts, errp) < 0) {
        error_prepend(errp, "Could not create temporary overlay '%s': ", tmp);
        goto out_unlink;
    }
    /* the image file names no backing file: the image is linked in as a node */
    opts_set_str(oopts, "driver", "qcow2");
    opts_set_str_path(oopts, "file.driver", "file");
    opts_set_str_path(oopts, "file.filename", tmp);
    opts_set_str(oopts, "backing", bdrv_get_node_name(base));
    bs = bdrv_open(NULL, oopts, flags, errp);
out_unlink:
    unlink(tmp);
out:
    bdrv_unref(base);
    return bs;
}

BlockDriverState *bdrv_open(const char *filename, JsonObject *options, int flags,
                            GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;
    const BlockDriver *drv = NULL;
    const char *drvname;
    BlockDriverState *bs = NULL, *file = NULL;
    int ret;

    if (flags & BDRV_O_SNAPSHOT) {
        /* the image: read-only, and nobody may write it while it backs the overlay */
        int base_flags = flags & ~(BDRV_O_SNAPSHOT | BDRV_O_RDWR | BDRV_O_COPY_ON_READ);
        /* the overlay: its data are thrown away, so never flushed nor uncached */
        int overlay_flags = (flags & ~(BDRV_O_SNAPSHOT | BDRV_O_FORCE_SHARE |
                                       BDRV_O_NOCACHE)) | BDRV_O_NO_FLUSH;

        if (!(flags & BDRV_O_FORCE_SHARE)) {
            base_flags |= BDRV_O_NO_SHARE;
        }
        bs = bdrv_open(filename, options, base_flags, errp);
        return bs ? bdrv_append_temp_snapshot(bs, overlay_flags, errp) : NULL;
    }

    if (filename && g_str_has_prefix(filename, "json:")) {
        opts = opts_parse_json_filename(filename, errp);
        if (!opts) {
            return NULL;
        }
        if (options) {
            opts_merge(opts, options);
        }
        filename = NULL;
    } else {
        opts = options ? opts_crumple(options, errp) : json_object_new();
        if (!opts) {
            return NULL;
        }
    }

    drvname = opts_peek_str(opts, "driver");
    if (!drvname && (flags & BDRV_O_PROTOCOL)) {
        const char *fn = filename ? filename : opts_peek_str(opts, "filename");
        drv = fn ? bdrv_find_protocol(fn, filename != NULL, errp) : &bdrv_file;
        if (!drv) {
            return NULL;
        }
        drvname = drv->format_name;
    }
    if (drvname) {
        drv = bdrv_find_format(drvname);
        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", drvname);
            return NULL;
        }
    }
    if (!filename && !opts_has(opts, "file") && !opts_has(opts, "filename") &&
        !(drv && (drv->is_protocol || drv->own_children))) {
        error_setg(errp, "A block device must be specified for \"file\"");
        return NULL;
    }
    if (drv && (drv->is_protocol || drv->own_children)) {
        return bdrv_open_protocol(drv, filename, opts, flags, errp);
    }
    if (!filename && !opts_has(opts, "file") && opts_has(opts, "filename")) {
        /* {"driver": "raw", "filename": "x"} is a shorthand for file.filename */
        g_autofree char *fn = opts_get_str(opts, "filename");
        json_object_remove_member(opts, "filename");
        opts_set_str_path(opts, "file.filename", fn);
    }

    ret = apply_generic_opts(opts, &flags, errp);
    if (ret < 0) {
        return NULL;
    }

    /* A format node: open its file child first. */
    file = bdrv_open_child(NULL, opts, "file", filename, false,
                           flags & ~BDRV_O_PROTOCOL, errp);
    if (!file) {
        return NULL;
    }
    if (!drv) {
        drv = probe_format(file, filename ? filename : file->filename, errp);
        if (!drv) {
            goto fail;
        }
    }
    bs = bdrv_new(drv);
    bs->backing_parent = opening_backing_parent;
    opening_backing_parent = NULL;
    bs->file = file;
    file = NULL;
    bs->open_flags = flags;
    /* a protocol's name as it canonicalises it (QEMU's refreshed file name) */
    bs->filename = g_strdup(filename && strcmp(bs->file->drv->format_name, "nbd") ? filename :
                            bs->file->filename);
    if (!opts_has(opts, "driver")) {
        bs->probed_raw = (drv == &bdrv_raw);
        if (bs->probed_raw && (flags & BDRV_O_RDWR)) {
            fprintf(stderr,
                    "WARNING: Image format was not specified for '%s' and probing "
                    "guessed raw.\n"
                    "         Automatically detecting the format is dangerous for raw "
                    "images, write operations on block 0 will be restricted.\n"
                    "         Specify the 'raw' format explicitly to remove the "
                    "restrictions.\n", bs->filename);
        }
    }
    if (check_unknown_opts(bs, opts, errp) < 0) {
        goto fail;
    }
    bs->options = opts_clone(opts);
    if (bdrv_assign_node_name(bs, opts_peek_str(opts, "node-name"), errp) < 0) {
        goto fail;
    }
    /* after its file, before the children its driver opens (QEMU's order) */
    all_nodes = g_list_append(all_nodes, bs);
    /* the locks are held before the driver reads (and maybe repairs) anything */
    if (bdrv_attach_child_perm(bs, bs->file, &bs->file,
                               drv->is_filter ? BDRV_CHILD_FILTERED : BDRV_CHILD_STORAGE,
                               errp) < 0 ||
        (!(flags & BDRV_O_NO_USER) && attach_root_perm(bs, flags, errp) < 0)) {
        goto fail;
    }
    ret = drv->open(bs, opts, flags, errp);
    if (ret == 0 && opts_is_null(opts, "backing") && bs->backing_file) {
        bs->backing_overridden = true;      /* "backing": null hides the image's */
    }
    if (ret < 0) {
        /* the driver releases what it set up; the children go here */
        if (drv->close) {
            drv->close(bs);
        }
        goto fail;
    }
    bdrv_refresh_filename(bs);
    return bs;

fail:
    if (file) {
        bdrv_unref(file);
    }
    if (bs) {
        all_nodes = g_list_remove(all_nodes, bs);
        bdrv_release_children(bs);
        bdrv_free(bs);
    }
    return NULL;
}

BlockDriverState *bdrv_open_job_filter(const BlockDriver *drv, BlockDriverState *child,
                                       const char *node_name, GError **errp)
{
    BlockDriverState *bs = bdrv_new(drv);

    bs->open_flags = (child->open_flags & ~BDRV_O_PROTOCOL) | BDRV_O_RDWR | BDRV_O_NO_USER;
    bs->options = json_object_new();
    json_object_set_string_member(bs->options, "driver", drv->format_name);
    json_object_set_string_member(bs->options, "file", bdrv_get_node_name(child));
    if (bdrv_assign_node_name(bs, node_name, errp) < 0) {
        bdrv_free(bs);
        return NULL;
    }
    bdrv_ref(child);
    bs->file = child;
    bs->filename = g_strdup(child->filename);
    bs->request_alignment = child->request_alignment;
    all_nodes = g_list_append(all_nodes, bs);
    if (bdrv_attach_child_perm(bs, child, &bs->file, BDRV_CHILD_FILTERED, errp) < 0) {
        all_nodes = g_list_remove(all_nodes, bs);
        bdrv_release_children(bs);
        bdrv_free(bs);
        return NULL;
    }
    bdrv_refresh_filename(bs);
    return bs;
}

void bdrv_ref(BlockDriverState *bs)
{
    bs->refcnt++;
}

void bdrv_unref(BlockDriverState *bs)
{
    if (!bs || --bs->refcnt > 0) {
        return;
    }
    all_nodes = g_list_remove(all_nodes, bs);
    bdrv_flush(bs);
    if (bs->drv->close) {
        bs->drv->close(bs);
    }
    bdrv_release_children(bs);
    bdrv_free(bs);
}

/* ---- misc driver-facing helpers ---- */

const char *const BlkdebugEvent_str[BLKDBG__MAX] = {
#define BLKDBG_NAME(id, name) [BLKDBG_##id] = name,
    BLKDBG_EVENT_LIST(BLKDBG_NAME)
#undef BLKDBG_NAME
};

void bdrv_debug_event(BlockDriverState *bs, BlkdebugEvent event)
{
    while (bs) {
        if (bs->drv->debug_event) {
            bs->drv->debug_event(bs, event);
            return;
        }
        bs = bs->file;
    }
}

bool bdrv_debug_listening(BlockDriverState *bs)
{
    for (; bs; bs = bs->file) {
        if (bs->drv->debug_event) {
            return true;
        }
    }
    return false;
}

/* The node that takes breakpoints: the first blkdebug down the file chain. */
static BlockDriverState *debug_node(BlockDriverState *bs)
{
    while (bs && !bs->drv->debug_breakpoint) {
        bs = bs->file;
    }
    return bs;
}

int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event, const char *tag)
{
    bs = debug_node(bs);
    return bs ? bs->drv->debug_breakpoint(bs, event, tag) : -ENOTSUP;
}

int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs ? bs->drv->debug_remove_breakpoint(bs, tag) : -ENOTSUP;
}

int bdrv_debug_resume(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs ? bs->drv->debug_resume(bs, tag) : -ENOTSUP;
}

bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs && bs->drv->debug_is_suspended(bs, tag);
}

static gint compare_desc_names(gconstpointer a, gconstpointer b)
{
    const CreateOptDesc *da = *(const CreateOptDesc *const *)a;
    const CreateOptDesc *db = *(const CreateOptDesc *const *)b;

    return strcmp(da->name, db->name);
}

char *create_opts_help(const char *title, const CreateOptDesc *descs)
{
    static const char *const type_names[] = {
        [OPT_STRING] = "str", [OPT_BOOL] = "bool (on/off)",
        [OPT_NUMBER] = "num", [OPT_SIZE] = "size",
    };
    GString *s = g_string_new(NULL);
    g_autoptr(GPtrArray) sorted = g_ptr_array_new();

    g_string_append_printf(s, "%s\n", title);
    for (const CreateOptDesc *d = descs; d && d->name; d++) {
        g_ptr_array_add(sorted, (gpointer)d);
    }
    g_ptr_array_sort(sorted, compare_desc_names);
    for (guint i = 0; i < sorted->len; i++) {
        const CreateOptDesc *d = sorted->pdata[i];
        g_autofree char *head = NULL;

        if (d->hidden) {
            continue;
        }
        head = g_strdup_printf("%s=<%s>", d->name, type_names[d->type]);
        g_string_append_printf(s, "  %-22s - %s\n", head, d->help);
    }
    return g_string_free(s, FALSE);
}
