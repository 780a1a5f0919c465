/*
 * The "quorum" driver: N children ("children", a list) that should hold the
 * same data. Writes, zero writes and discards go to every child and succeed
 * when at least "vote-threshold" children succeeded. Reads read every child and
 * vote on the data: the version most children returned wins (on a tie, the
 * version first returned by a later child, as QEMU picks it) if at least
 * vote-threshold children returned it, else the read fails with EIO.
 * "rewrite-corrupted" writes the winning version back over children that
 * returned another; "read-pattern=fifo" reads only the first child that reads
 * successfully; "blkverify" (two children, threshold 2) ends the process on a
 * mismatch, as QEMU's does. QEMU's QUORUM_* events have no listener in our
 * tools and are not emitted. The node has no plain filename and no folder.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"

typedef struct BDRVQuorumState {
    BlockDriverState **children;    /* n slots, attached as filtered children */
    int n;
    int threshold;
    bool blkverify;
    bool rewrite_corrupted;
    bool fifo;
} BDRVQuorumState;

static const char *const quorum_runtime_opts[] = {
    "children", "vote-threshold", "blkverify", "rewrite-corrupted", "read-pattern",
    NULL,
};

static const char *const quorum_strong_opts[] = {
    "vote-threshold", "blkverify", "rewrite-corrupted", "read-pattern", NULL,
};

/* The child references: a JSON array, or an object keyed "0", "1", ... */
static GPtrArray *child_nodes(JsonObject *opts)
{
    GPtrArray *list = g_ptr_array_new();
    JsonNode *n = opts_has(opts, "children") ? json_object_get_member(opts, "children")
                                             : NULL;

    if (n && JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_ptr_array_add(list, json_array_get_element(a, i));
        }
    } else if (n && JSON_NODE_HOLDS_OBJECT(n)) {
        JsonObject *o = json_node_get_object(n);
        for (int i = 0;; i++) {
            g_autofree char *key = g_strdup_printf("%d", i);
            if (!json_object_has_member(o, key)) {
                break;
            }
            g_ptr_array_add(list, json_object_get_member(o, key));
        }
    }
    return list;
}

static void quorum_close(BlockDriverState *bs)
{
    BDRVQuorumState *s = bs->opaque;

    for (int i = 0; s->children && i < s->n; i++) {
        bdrv_unref_child(bs, &s->children[i]);
    }
    g_clear_pointer(&s->children, g_free);
}

static int quorum_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVQuorumState *s = bs->opaque;
    g_autoptr(GPtrArray) nodes = child_nodes(opts);
    g_autofree char *pattern = opts_get_str(opts, "read-pattern");
    GError *local = NULL;
    int64_t len = -1;
    int ret;

    s->threshold = opts_get_int(opts, "vote-threshold", 0, &local);
    if (!local) {
        s->blkverify = opts_get_bool(opts, "blkverify", false, &local);
    }
    if (!local) {
        s->rewrite_corrupted = opts_get_bool(opts, "rewrite-corrupted", false, &local);
    }
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (nodes->len < 1) {
        error_setg(errp, "Number of provided children must be 1 or more");
        return -EINVAL;
    }
    if (s->threshold < 1) {
        error_setg(errp, "Parameter 'vote-threshold' expects a value >= 1");
        return -EINVAL;
    }
    if (s->threshold > (int)nodes->len) {
        error_setg(errp, "threshold may not exceed children count");
        return -EINVAL;
    }
    if (pattern && strcmp(pattern, "quorum") && strcmp(pattern, "fifo")) {
        error_setg(errp, "Please set read-pattern as fifo or quorum");
        return -EINVAL;
    }
    s->fifo = pattern && !strcmp(pattern, "fifo");
    if (s->blkverify && (nodes->len != 2 || s->threshold != 2)) {
        error_setg(errp, "blkverify=on can only be set if there are exactly two files "
                   "and vote-threshold is 2");
        return -EINVAL;
    }
    if (s->rewrite_corrupted && s->blkverify) {
        error_setg(errp, "rewrite-corrupted=on cannot be used with blkverify=on");
        return -EINVAL;
    }

    s->n = nodes->len;
    s->children = g_new0(BlockDriverState *, s->n);
    for (int i = 0; i < s->n; i++) {
        g_autoptr(JsonObject) holder = json_object_new();
        JsonNode *c = nodes->pdata[i];

        json_object_set_member(holder, "child", json_node_copy(c));
        s->children[i] = bdrv_open_child(bs, holder, "child", NULL, true,
                                         flags & ~BDRV_O_PROTOCOL, errp);
        if (!s->children[i]) {
            ret = -EINVAL;
            goto fail;
        }
        ret = bdrv_attach_child_perm(bs, s->children[i], &s->children[i],
                                     BDRV_CHILD_FILTERED, errp);
        if (ret < 0) {
            goto fail;
        }
        bs->request_alignment = MAX(bs->request_alignment,
                                    s->children[i]->request_alignment);
    }
    /* every child must be as long as the first (QEMU's words when not) */
    for (int i = 0; i < s->n; i++) {
        int64_t l = bdrv_getlength(s->children[i]);
        if (l < 0 || (len >= 0 && l != len)) {
            error_setg_errno(errp, l < 0 ? -l : EIO,
                             "Could not refresh total sector count");
            ret = l < 0 ? l : -EIO;
            goto fail;
        }
        len = l;
    }
    return 0;

fail:
    quorum_close(bs);
    return ret;
}

/* A version of the data and how many children returned it. */
typedef struct QuorumVersion {
    uint8_t *data;
    int votes;
    int first;          /* index of the first child that returned it */
} QuorumVersion;

static int quorum_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                        int flags)
{
    BDRVQuorumState *s = bs->opaque;
    g_autoptr(GPtrArray) versions = g_ptr_array_new();
    g_autofree int *version_of = g_new(int, s->n);
    QuorumVersion *win = NULL;
    int ok = 0, ret = -EIO;

    if (s->fifo) {
        for (int i = 0; i < s->n; i++) {
            ret = bdrv_pread(s->children[i], offset, bytes, buf, flags);
            if (ret == 0) {
                return 0;
            }
        }
        return ret;
    }
    for (int i = 0; i < s->n; i++) {
        uint8_t *data = g_try_malloc(bytes);
        int r;

        version_of[i] = -1;
        if (!data) {
            ret = -ENOMEM;
            continue;
        }
        r = bdrv_pread(s->children[i], offset, bytes, data, flags);
        if (r < 0) {
            ret = r;
            g_free(data);
            continue;
        }
        ok++;
        for (guint v = 0; v < versions->len; v++) {
            QuorumVersion *qv = versions->pdata[v];
            if (!memcmp(qv->data, data, bytes)) {
                qv->votes++;
                version_of[i] = qv->first;
                g_clear_pointer(&data, g_free);
                break;
            }
        }
        if (data) {
            QuorumVersion *qv = g_new0(QuorumVersion, 1);
            qv->data = data;
            qv->votes = 1;
            qv->first = i;
            version_of[i] = i;
            /* newer versions come first: on a tie they win, as in QEMU */
            g_ptr_array_insert(versions, 0, qv);
        }
    }
    if (s->blkverify && versions->len > 1) {
        QuorumVersion *a = versions->pdata[versions->len - 1];
        QuorumVersion *b = versions->pdata[0];
        int64_t i = 0;

        while (i < bytes && a->data[i] == b->data[i]) {
            i++;
        }
        fprintf(stderr, "quorum: offset=%" PRId64 " bytes=%" PRId64 " contents mismatch "
                "at offset %" PRId64 "\n", offset, bytes, offset + i);
        exit(1);
    }
    for (guint v = 0; v < versions->len; v++) {
        QuorumVersion *qv = versions->pdata[v];
        if (!win || qv->votes > win->votes) {
            win = qv;
        }
    }
    if (win && ok && win->votes >= s->threshold) {
        memcpy(buf, win->data, bytes);
        ret = 0;
        if (s->rewrite_corrupted) {
            for (int i = 0; i < s->n; i++) {
                if (version_of[i] >= 0 && version_of[i] != win->first) {
                    bdrv_pwrite(s->children[i], offset, bytes, win->data, 0);
                }
            }
        }
    } else if (ok) {
        ret = -EIO;
    }
    for (guint v = 0; v < versions->len; v++) {
        QuorumVersion *qv = versions->pdata[v];
        g_free(qv->data);
        g_free(qv);
    }
    return ret;
}

/* A modifying request on every child: it succeeds if vote-threshold did. */
static int quorum_vote_result(BDRVQuorumState *s, int *rets)
{
    int ok = 0, err = 0;

    for (int i = 0; i < s->n; i++) {
        if (rets[i] == 0) {
            ok++;
        } else if (!err) {
            err = rets[i];
        }
    }
    return ok >= s->threshold ? 0 : (err ? err : -EIO);
}

static int quorum_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                         const void *buf, int flags)
{
    BDRVQuorumState *s = bs->opaque;
    g_autofree int *rets = g_new(int, s->n);

    for (int i = 0; i < s->n; i++) {
        rets[i] = bdrv_pwrite(s->children[i], offset, bytes, buf, flags);
    }
    return quorum_vote_result(s, rets);
}

static int quorum_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                int flags)
{
    BDRVQuorumState *s = bs->opaque;
    g_autofree int *rets = g_new(int, s->n);

    for (int i = 0; i < s->n; i++) {
        rets[i] = bdrv_pwrite_zeroes(s->children[i], offset, bytes, flags);
    }
    return quorum_vote_result(s, rets);
}

static int quorum_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVQuorumState *s = bs->opaque;
    g_autofree int *rets = g_new(int, s->n);

    for (int i = 0; i < s->n; i++) {
        rets[i] = bdrv_pdiscard(s->children[i], offset, bytes);
    }
    return quorum_vote_result(s, rets);
}

static int quorum_flush(BlockDriverState *bs)
{
    BDRVQuorumState *s = bs->opaque;
    g_autofree int *rets = g_new(int, s->n);

    for (int i = 0; i < s->n; i++) {
        rets[i] = bdrv_flush(s->children[i]);
    }
    return quorum_vote_result(s, rets);
}

static int64_t quorum_getlength(BlockDriverState *bs)
{
    BDRVQuorumState *s = bs->opaque;
    int64_t len = bdrv_getlength(s->children[0]);

    for (int i = 1; i < s->n && len >= 0; i++) {
        if (bdrv_getlength(s->children[i]) != len) {
            return -EIO;
        }
    }
    return len;
}

static int64_t quorum_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVQuorumState *s = bs->opaque;
    int64_t total = 0;

    for (int i = 0; i < s->n; i++) {
        int64_t r = bdrv_get_allocated_file_size(s->children[i]);
        if (r < 0) {
            return r;
        }
        total += r;
    }
    return total;
}

static int quorum_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    *pnum = bytes;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
}

/* json: only, with the children as a list */
static char *quorum_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                     bool has_strong)
{
    BDRVQuorumState *s = bs->opaque;
    JsonArray *children = json_array_new();

    for (int i = 0; i < s->n; i++) {
        json_array_add_element(children, bdrv_full_options_node(s->children[i]));
    }
    json_object_set_array_member(full, "children", children);
    return NULL;
}

static char *quorum_dirname(BlockDriverState *bs, GError **errp)
{
    error_setg(errp, "Cannot generate a base directory for quorum nodes");
    return NULL;
}

BlockDriver bdrv_quorum = {
    .format_name = "quorum",
    .instance_size = sizeof(BDRVQuorumState),
    .own_children = true,
    .runtime_opts = quorum_runtime_opts,
    .strong_opts = quorum_strong_opts,
    .refresh_filename = quorum_refresh_filename,
    .dirname = quorum_dirname,
    .open = quorum_open,
    .close = quorum_close,
    .pread = quorum_pread,
    .pwrite = quorum_pwrite,
    .pwrite_zeroes = quorum_pwrite_zeroes,
    .pdiscard = quorum_pdiscard,
    .flush_to_disk = quorum_flush,
    .getlength = quorum_getlength,
    .get_allocated_file_size = quorum_get_allocated_file_size,
    .block_status = quorum_block_status,
};
