/*
 * The "blkdebug" filter driver: rule-based fault injection for tests.
 *
 * It passes every request through to its "image" child (held as bs->file) and
 * fails some of them on purpose. Rules come from the "inject-error" and
 * "set-state" options (or an ini-style "config" file with [inject-error] and
 * [set-state] sections), with QEMU's option names and semantics as observed with
 * QEMU 7.2:
 *
 *  - A rule names an event (BlkdebugEvent_str: "l2_update", "flush_to_disk", ...).
 *    When the event is signalled to this node, the rules for it whose "state" is
 *    0 or the current state apply: if any of them are inject-error rules, they
 *    become the active rules (replacing those active before); a set-state rule
 *    moves the engine to "new_state" once all were looked at. The state starts
 *    at 1. Rules for the event "none" are looked at when the node
 *    opens, so they are active from the start.
 *  - An active inject-error rule fails every later request whose type is in its
 *    "iotype" (default: read, write, write-zeroes, discard, flush; or
 *    "block-status", which only fails block status queries) and which
 *    contains the first byte of its "sector" (default: any) with -"errno"
 *    (default EIO); a "once" rule is dropped after it fired. "immediately" fails
 *    the same way (there are no asynchronous callbacks here to skip). Active
 *    rules are tried in the order given; a rule stays active until it fired
 *    (once) or another event activates other rules.
 *  - A flush with no write since the last successful flush is a no-op (as in
 *    QEMU, where such flushes never reach the driver), so it never fails.
 *  - "align" sets the node's request alignment (the generic layer then does
 *    read-modify-write); "max-transfer", "max-write-zero" and "max-discard" split
 *    requests. "opt-*" and the "*-child-perms" options are accepted and have no
 *    effect: there is no permission system and no optimal sizes to report.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "blkdebug-break.h"

enum {
    BLKDEBUG_IO_READ,
    BLKDEBUG_IO_WRITE,
    BLKDEBUG_IO_WRITE_ZEROES,
    BLKDEBUG_IO_DISCARD,
    BLKDEBUG_IO_FLUSH,
    BLKDEBUG_IO_BLOCK_STATUS,
    BLKDEBUG_IO__MAX,
};

static const char *const iotype_names[BLKDEBUG_IO__MAX] = {
    "read", "write", "write-zeroes", "discard", "flush", "block-status",
};

/* the default: every type but block-status, which is only failed when named */
#define BLKDEBUG_IO_ALL ((1u << BLKDEBUG_IO_BLOCK_STATUS) - 1)

typedef struct BlkdebugRule {
    BlkdebugEvent event;
    bool inject;            /* inject-error, else set-state */
    int64_t state;          /* 0: any state */
    int64_t new_state;      /* set-state */
    int64_t error;          /* inject-error: positive errno; <= 0 never fails */
    unsigned iotypes;       /* bit mask of BLKDEBUG_IO_* */
    int64_t offset;         /* first byte of "sector", or -1 for any */
    bool once;
    bool active;
} BlkdebugRule;

typedef struct BDRVBlkdebugState {
    int64_t state;
    GPtrArray *rules;       /* every rule, in the order given */
    GPtrArray *active;      /* active inject-error rules, newest first */
    uint64_t max_transfer;
    uint64_t max_write_zero;
    uint64_t max_discard;
    uint64_t opt_write_zero;   /* optimal alignments of zero writes and discards */
    uint64_t opt_discard;
    uint64_t write_gen;     /* bumped by every modifying request */
    uint64_t flushed_gen;   /* write_gen at the last successful flush */
    GMutex lock;            /* rules, active, state, flushed_gen: requests may
                             * run in several threads at once (write_gen is
                             * atomic); never held while a request is stopped */
} BDRVBlkdebugState;

static const char *const blkdebug_runtime_opts[] = {
    "image", "x-image", "config", "align", "max-transfer", "opt-write-zero",
    "max-write-zero", "opt-discard", "max-discard", "inject-error", "set-state",
    "take-child-perms", "unshare-child-perms", NULL,
};

/* what changes what the node shows: a node given any of them has a json: name */
static const char *const blkdebug_strong_opts[] = {
    "config", "align", "max-transfer", "opt-write-zero", "max-write-zero",
    "opt-discard", "max-discard", "inject-error.", "set-state.", NULL,
};

static const char *const inject_error_keys[] = {
    "event", "state", "iotype", "errno", "sector", "once", "immediately", NULL,
};

static const char *const set_state_keys[] = {
    "event", "state", "new_state", NULL,
};

/* ---- parsing rules ---- */

static int parse_event(JsonObject *o, BlkdebugEvent *ev, GError **errp)
{
    g_autofree char *name = opts_get_str(o, "event");

    if (!name) {
        error_setg(errp, "Missing event name for rule");
        return -EINVAL;
    }
    for (int i = 0; i < BLKDBG__MAX; i++) {
        if (!strcmp(name, BlkdebugEvent_str[i])) {
            *ev = i;
            return 0;
        }
    }
    error_setg(errp, "invalid parameter value: %s", name);
    return -EINVAL;
}

static int parse_iotype(JsonObject *o, unsigned *mask, GError **errp)
{
    g_autofree char *name = opts_get_str(o, "iotype");

    if (!name) {
        *mask = BLKDEBUG_IO_ALL;
        return 0;
    }
    for (int i = 0; i < BLKDEBUG_IO__MAX; i++) {
        if (!strcmp(name, iotype_names[i])) {
            *mask = 1u << i;
            return 0;
        }
    }
    error_setg(errp, "invalid parameter value: %s", name);
    return -EINVAL;
}

/* A boolean as QEMU reads one from json: and keyval alike: true/false, "on"/"off". */
static bool get_onoff(JsonObject *o, const char *key, GError **errp)
{
    g_autofree char *v = opts_get_str(o, key);
    bool b = false;

    if (v && qemu_parse_onoff(v, &b) < 0) {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
    }
    return b;
}

/* One rule of kind @section ("inject-error" or "set-state") from an object. */
static BlkdebugRule *parse_rule(JsonObject *o, const char *section, GError **errp)
{
    bool inject = !strcmp(section, "inject-error");
    const char *const *keys = inject ? inject_error_keys : set_state_keys;
    g_autofree BlkdebugRule *r = g_new0(BlkdebugRule, 1);
    GList *members = json_object_get_members(o);
    GError *local = NULL;

    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(keys, l->data)) {
            error_setg(errp, "[%s] section doesn't support the option '%s'", section,
                       (const char *)l->data);
            g_list_free(members);
            return NULL;
        }
    }
    g_list_free(members);
    if (parse_event(o, &r->event, errp) < 0) {
        return NULL;
    }
    r->inject = inject;
    r->state = opts_get_int(o, "state", 0, &local);
    if (inject) {
        if (!local && parse_iotype(o, &r->iotypes, errp) < 0) {
            return NULL;
        }
        r->error = opts_get_int(o, "errno", EIO, local ? NULL : &local);
        r->offset = opts_get_int(o, "sector", -1, local ? NULL : &local);
        r->once = get_onoff(o, "once", local ? NULL : &local);
        get_onoff(o, "immediately", local ? NULL : &local);
        if (r->offset >= 0) {
            r->offset = r->offset > INT64_MAX / 512 ? INT64_MAX : r->offset * 512;
        }
    } else {
        r->new_state = opts_get_int(o, "new_state", 0, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return NULL;
    }
    return g_steal_pointer(&r);
}

/* Does every key look like a list index ("0", "1", ...)? */
static bool is_index_object(JsonObject *o)
{
    GList *members = json_object_get_members(o);
    bool all = members != NULL;

    for (GList *l = members; l && all; l = l->next) {
        const char *k = l->data;
        all = *k && strspn(k, "0123456789") == strlen(k);
    }
    g_list_free(members);
    return all;
}

static int add_rule_node(BDRVBlkdebugState *s, JsonNode *n, const char *section,
                         int index, GError **errp)
{
    BlkdebugRule *r;

    if (!JSON_NODE_HOLDS_OBJECT(n)) {
        error_setg(errp, "[%s] section (index %d) does not consist of keys", section,
                   index);
        return -EINVAL;
    }
    r = parse_rule(json_node_get_object(n), section, errp);
    if (!r) {
        return -EINVAL;
    }
    g_ptr_array_add(s->rules, r);
    return 0;
}

/*
 * The rules under option @section: a JSON array of objects, an object keyed by
 * list indices (--image-opts "inject-error.0.event=..."), or one object.
 */
static int add_rules(BlockDriverState *bs, JsonObject *opts, const char *section,
                     GError **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    JsonNode *n = opts_has(opts, section) ? json_object_get_member(opts, section) : NULL;

    if (!n) {
        return 0;
    }
    if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        guint len = json_array_get_length(a);
        if (len == 0) {
            error_setg(errp, "Block protocol 'blkdebug' doesn't support the option '%s'",
                       section);
            return -EINVAL;
        }
        for (guint i = 0; i < len; i++) {
            if (add_rule_node(s, json_array_get_element(a, i), section, i, errp) < 0) {
                return -EINVAL;
            }
        }
        return 0;
    }
    if (JSON_NODE_HOLDS_OBJECT(n) && is_index_object(json_node_get_object(n))) {
        JsonObject *o = json_node_get_object(n);
        for (int i = 0;; i++) {
            g_autofree char *key = g_strdup_printf("%d", i);
            if (!json_object_has_member(o, key)) {
                if ((guint)i != json_object_get_size(o)) {
                    error_setg(errp, "Parameter '%s' expects a list with indices from 0",
                               section);
                    return -EINVAL;
                }
                return 0;
            }
            if (add_rule_node(s, json_object_get_member(o, key), section, i, errp) < 0) {
                return -EINVAL;
            }
        }
    }
    return add_rule_node(s, n, section, 0, errp);
}

/*
 * The config file: "[inject-error]" / "[set-state]" sections of key = "value"
 * lines, '#' comments, as QEMU's -readconfig format.
 */
static int read_config(BlockDriverState *bs, const char *path, GError **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    g_autofree char *text = NULL;
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(JsonObject) cur = NULL;
    g_autofree char *section = NULL;
    int lineno = 0;

    if (!g_file_get_contents(path, &text, NULL, &local)) {
        error_setg_errno(errp, local->code == G_FILE_ERROR_NOENT ? ENOENT : EIO,
                         "Could not read blkdebug config file");
        return -EINVAL;
    }
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines;; l++) {
        char *line = *l ? g_strstrip(*l) : NULL;
        char *eq;

        lineno++;
        if (!line || line[0] == '[') {
            if (cur && section && strcmp(section, "inject-error") &&
                strcmp(section, "set-state")) {
                g_clear_pointer(&cur, json_object_unref);   /* other sections */
            }
            if (cur) {
                BlkdebugRule *r = parse_rule(cur, section, errp);
                if (!r) {
                    return -EINVAL;
                }
                g_ptr_array_add(s->rules, r);
                g_clear_pointer(&cur, json_object_unref);
            }
            if (!line) {
                return 0;
            }
            g_free(section);
            section = g_strndup(line + 1, strcspn(line + 1, "]"));
            cur = json_object_new();
            continue;
        }
        if (!*line || line[0] == '#') {
            continue;
        }
        eq = strchr(line, '=');
        if (!cur || !eq) {
            error_setg(errp, "%s:%d: parse error", path, lineno);
            return -EINVAL;
        }
        *eq = '\0';
        {
            char *key = g_strstrip(line), *val = g_strstrip(eq + 1);
            size_t n = strlen(val);
            if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
                val[n - 1] = '\0';
                val++;
            }
            opts_set_str(cur, key, val);
        }
    }
}

/* ---- the engine ---- */

static void blkdebug_debug_event(BlockDriverState *bs, BlkdebugEvent event)
{
    BDRVBlkdebugState *s = bs->opaque;
    int64_t new_state;
    bool replaced = false;

    g_mutex_lock(&s->lock);
    new_state = s->state;
    for (guint i = 0; i < s->rules->len; i++) {
        BlkdebugRule *r = s->rules->pdata[i];

        if (r->event != event || (r->state && r->state != s->state)) {
            continue;
        }
        if (!r->inject) {
            new_state = r->new_state;
            continue;
        }
        if (!replaced) {
            /* this event's error rules replace whatever was active */
            for (guint j = 0; j < s->active->len; j++) {
                ((BlkdebugRule *)s->active->pdata[j])->active = false;
            }
            g_ptr_array_set_size(s->active, 0);
            replaced = true;
        }
        r->active = true;
        g_ptr_array_add(s->active, r);
    }
    s->state = new_state;
    g_mutex_unlock(&s->lock);
    blkdebug_break_event(bs, event);
}

/* 0, or the -errno an active rule injects into this request (under s->lock). */
static int rule_check_locked(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int iotype)
{
    BDRVBlkdebugState *s = bs->opaque;

    for (guint i = 0; i < s->active->len; i++) {
        BlkdebugRule *r = s->active->pdata[i];
        int64_t err = r->error;

        if (!(r->iotypes & (1u << iotype)) || err <= 0) {
            continue;
        }
        if (r->offset >= 0 && !(r->offset >= offset && r->offset < offset + bytes)) {
            continue;
        }
        if (r->once) {
            g_ptr_array_remove_index(s->active, i);
            g_ptr_array_remove(s->rules, r);     /* frees it */
        }
        return -(int)MIN(err, (int64_t)INT_MAX);
    }
    return 0;
}

static int rule_check(BlockDriverState *bs, int64_t offset, int64_t bytes, int iotype)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret;

    g_mutex_lock(&s->lock);
    ret = rule_check_locked(bs, offset, bytes, iotype);
    g_mutex_unlock(&s->lock);
    return ret;
}

/* ---- I/O ---- */

static int blkdebug_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                          int flags)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret = rule_check(bs, offset, bytes, BLKDEBUG_IO_READ);

    while (ret == 0 && bytes > 0) {
        int64_t n = s->max_transfer ? MIN(bytes, (int64_t)s->max_transfer) : bytes;
        ret = bdrv_pread(bs->file, offset, n, buf, flags);
        buf = (uint8_t *)buf + n;
        offset += n;
        bytes -= n;
    }
    return ret;
}

static int blkdebug_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           const void *buf, int flags)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret = rule_check(bs, offset, bytes, BLKDEBUG_IO_WRITE);

    /* a failed request counts too: the next flush reaches the rules (QEMU) */
    __atomic_add_fetch(&s->write_gen, 1, __ATOMIC_SEQ_CST);

    while (ret == 0 && bytes > 0) {
        int64_t n = s->max_transfer ? MIN(bytes, (int64_t)s->max_transfer) : bytes;
        ret = bdrv_pwrite(bs->file, offset, n, buf, flags);
        buf = (const uint8_t *)buf + n;
        offset += n;
        bytes -= n;
    }
    return ret;
}

/*
 * The length of the next piece of a zero write or discard at @offset, split as
 * QEMU's generic layer splits them under the node's limits: a piece starting off
 * a multiple of the optimal alignment @opt (at least the request alignment)
 * first reaches the request alignment, then the next multiple of @opt; longer
 * pieces end on a multiple, and none is longer than @max (rounded down to the
 * alignment).
 */
static int64_t piece_length(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            uint64_t opt, uint64_t max)
{
    int64_t ra = bs->request_alignment;
    int64_t align = MAX((int64_t)opt, ra);
    int64_t head = offset % align, tail = (offset + bytes) % align, num = bytes;
    int64_t limit = max ? QEMU_ALIGN_DOWN((int64_t)max, align) : 0;

    if (head) {
        num = MIN(num, align - head);
        if (num % ra) {
            num %= ra;
        }
    } else if (tail) {
        if (num > align) {
            num -= tail;
        } else if (tail % ra && tail > ra) {
            num -= tail % ra;
        }
    }
    if (max) {
        num = MIN(num, limit ? limit : (int64_t)max);
    }
    return num;
}

static int blkdebug_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int flags)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret = rule_check(bs, offset, bytes, BLKDEBUG_IO_WRITE_ZEROES);

    /* a failed request counts too: the next flush reaches the rules (QEMU) */
    __atomic_add_fetch(&s->write_gen, 1, __ATOMIC_SEQ_CST);

    int64_t align = MAX((int64_t)s->opt_write_zero, (int64_t)bs->request_alignment);

    while (ret == 0 && bytes > 0) {
        int64_t n = piece_length(bs, offset, bytes, s->opt_write_zero,
                                 s->max_write_zero);
        if (n < align) {
            /* as QEMU's blkdebug: pieces below the alignment are written as
             * zeros (the fallback path), through this node's own writes */
            ret = bdrv_pwrite_zero_buffer(bs, offset, n);
        } else {
            ret = bdrv_pwrite_zeroes(bs->file, offset, n, flags);
        }
        offset += n;
        bytes -= n;
    }
    return ret;
}

static int blkdebug_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret = rule_check(bs, offset, bytes, BLKDEBUG_IO_DISCARD);

    /* a failed request counts too: the next flush reaches the rules (QEMU) */
    __atomic_add_fetch(&s->write_gen, 1, __ATOMIC_SEQ_CST);
    uint32_t align = bs->request_alignment;

    while (ret == 0 && bytes > 0) {
        int64_t n = piece_length(bs, offset, bytes, s->opt_discard, s->max_discard);
        /* a piece off the request alignment is dropped: discard is advisory */
        if (QEMU_IS_ALIGNED(offset, align) && QEMU_IS_ALIGNED(n, align)) {
            ret = bdrv_pdiscard(bs->file, offset, n);
        }
        offset += n;
        bytes -= n;
    }
    return ret;
}

/* Runs after the child was flushed; skipped under cache=unsafe (as in QEMU). */
static int blkdebug_flush_to_disk(BlockDriverState *bs)
{
    BDRVBlkdebugState *s = bs->opaque;
    uint64_t gen = __atomic_load_n(&s->write_gen, __ATOMIC_SEQ_CST);
    int ret = 0;

    g_mutex_lock(&s->lock);
    if (gen != s->flushed_gen) {
        ret = rule_check_locked(bs, 0, 0, BLKDEBUG_IO_FLUSH);
        if (ret == 0) {
            s->flushed_gen = gen;
        }
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

static int64_t blkdebug_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file);
}

static int blkdebug_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                             PreallocMode prealloc, int flags, GError **errp)
{
    BDRVBlkdebugState *s = bs->opaque;

    __atomic_add_fetch(&s->write_gen, 1, __ATOMIC_SEQ_CST);
    return bdrv_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

static int blkdebug_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                 int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    int ret = rule_check(bs, offset, bytes, BLKDEBUG_IO_BLOCK_STATUS);

    if (ret < 0) {
        return ret;
    }
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

/* ---- open and close ---- */

static int get_limit(JsonObject *opts, const char *key, uint64_t *out, GError **errp)
{
    GError *local = NULL;

    *out = opts_get_size(opts, key, 0, &local);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    return 0;
}

/* A limit must fit an int and be a multiple of @base (if any): QEMU's checks. */
static int check_limit(const char *key, uint64_t val, uint64_t base, GError **errp)
{
    if (val > INT32_MAX || (base && val % base)) {
        error_setg(errp, "Cannot meet constraints with %s %" PRIu64, key, val);
        return -EINVAL;
    }
    return 0;
}

static void blkdebug_close(BlockDriverState *bs);

static int blkdebug_do_open(BlockDriverState *bs, JsonObject *opts, int flags,
                            GError **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    g_autofree char *config = opts_get_str(opts, "config");
    g_autofree char *ximage = NULL;
    uint64_t align;
    int ret;

    if (config) {
        ret = read_config(bs, config, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (add_rules(bs, opts, "inject-error", errp) < 0 ||
        add_rules(bs, opts, "set-state", errp) < 0) {
        return -EINVAL;
    }
    if (get_limit(opts, "align", &align, errp) < 0 ||
        get_limit(opts, "max-transfer", &s->max_transfer, errp) < 0 ||
        get_limit(opts, "max-write-zero", &s->max_write_zero, errp) < 0 ||
        get_limit(opts, "max-discard", &s->max_discard, errp) < 0 ||
        get_limit(opts, "opt-write-zero", &s->opt_write_zero, errp) < 0 ||
        get_limit(opts, "opt-discard", &s->opt_discard, errp) < 0) {
        return -EINVAL;
    }
    if (align & (align - 1)) {
        error_setg(errp, "Cannot meet constraints with align %" PRIu64, align);
        return -EINVAL;
    }
    if (check_limit("align", align, 0, errp) < 0 ||
        check_limit("max-transfer", s->max_transfer, align, errp) < 0 ||
        check_limit("opt-write-zero", s->opt_write_zero, align, errp) < 0 ||
        check_limit("max-write-zero", s->max_write_zero,
                    MAX(s->opt_write_zero, align), errp) < 0 ||
        check_limit("opt-discard", s->opt_discard, align, errp) < 0 ||
        check_limit("max-discard", s->max_discard, MAX(s->opt_discard, align),
                    errp) < 0) {
        return -EINVAL;
    }

    ximage = opts_get_str(opts, "x-image");
    if (!opts_has(opts, "image") && !ximage) {
        error_setg(errp, "A block device must be specified for \"image\"");
        return -EINVAL;
    }
    bs->file = bdrv_open_child(bs, opts, "image", ximage, false,
                               flags & ~BDRV_O_PROTOCOL, errp);
    if (!bs->file) {
        return -EINVAL;
    }
    /* a filter: the image gets what blkdebug's own users need */
    ret = bdrv_attach_child_perm(bs, bs->file, &bs->file, BDRV_CHILD_FILTERED, errp);
    if (ret < 0) {
        return ret;
    }
    bs->request_alignment = MAX((uint32_t)align, bs->file->request_alignment);

    /* rules for "none" hold from the start */
    blkdebug_debug_event(bs, BLKDBG_NONE);
    return 0;
}

static int blkdebug_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret;

    g_mutex_init(&s->lock);
    s->rules = g_ptr_array_new_with_free_func(g_free);
    s->active = g_ptr_array_new();
    s->state = 1;
    ret = blkdebug_do_open(bs, opts, flags, errp);
    if (ret < 0) {
        /* the generic layer only frees the node on failure */
        blkdebug_close(bs);
        bdrv_unref_child(bs, &bs->file);
    }
    return ret;
}

static void blkdebug_close(BlockDriverState *bs)
{
    BDRVBlkdebugState *s = bs->opaque;

    g_clear_pointer(&s->active, g_ptr_array_unref);
    g_clear_pointer(&s->rules, g_ptr_array_unref);
    blkdebug_break_close(bs);
    g_mutex_clear(&s->lock);
}

/*
 * "blkdebug:CONFIG:IMAGE" (CONFIG may be empty): the config file and the image's
 * name; a name without the prefix is the image's.
 */
static int blkdebug_parse_filename(const char *filename, JsonObject *opts,
                                   GError **errp)
{
    const char *rest, *colon;

    if (!strstart(filename, "blkdebug:", &rest)) {
        opts_set_str(opts, "x-image", filename);
        return 0;
    }
    colon = strchr(rest, ':');
    if (!colon) {
        error_setg(errp, "blkdebug requires both config file and image path");
        return -EINVAL;
    }
    if (colon != rest) {
        g_autofree char *config = g_strndup(rest, colon - rest);
        opts_set_str(opts, "config", config);
    }
    opts_set_str(opts, "x-image", colon + 1);
    return 0;
}

/* "blkdebug:CONFIG:IMAGE" while no option but the config file was given */
static char *blkdebug_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                       bool has_strong)
{
    g_autofree char *config = opts_get_str(full, "config");
    guint plain = 1 + (config ? 1 : 0);   /* driver, config */

    json_object_set_member(full, "image", bdrv_full_options_node(bs->file));
    if (json_object_get_size(full) - 1 > plain || !bs->file->exact_filename) {
        return NULL;
    }
    return g_strdup_printf("blkdebug:%s:%s", config ? config : "",
                           bs->file->exact_filename);
}

BlockDriver bdrv_blkdebug = {
    .format_name = "blkdebug",
    .protocol_name = "blkdebug",
    .strong_opts = blkdebug_strong_opts,
    .parse_filename = blkdebug_parse_filename,
    .refresh_filename = blkdebug_refresh_filename,
    .instance_size = sizeof(BDRVBlkdebugState),
    .is_protocol = true,
    .is_filter = true,
    .thread_safe = true,
    .runtime_opts = blkdebug_runtime_opts,
    .open = blkdebug_open,
    .close = blkdebug_close,
    .pread = blkdebug_pread,
    .pwrite = blkdebug_pwrite,
    .pwrite_zeroes = blkdebug_pwrite_zeroes,
    .pdiscard = blkdebug_pdiscard,
    .flush_to_disk = blkdebug_flush_to_disk,
    .getlength = blkdebug_getlength,
    .truncate = blkdebug_truncate,
    .block_status = blkdebug_block_status,
    .debug_event = blkdebug_debug_event,
    .debug_breakpoint = blkdebug_breakpoint,
    .debug_remove_breakpoint = blkdebug_remove_breakpoint,
    .debug_resume = blkdebug_resume,
    .debug_is_suspended = blkdebug_is_suspended,
};
