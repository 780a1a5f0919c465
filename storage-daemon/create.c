/*
 * Image creation and amendment as jobs: blockdev-create (the driver's QMP create
 * callback, with the BlockdevCreateOptions schema), x-blockdev-amend (QEMU 7.2's
 * name and schema) and blockdev-amend (ours: the qcow2 options qemu-img amend
 * changes), both calling bdrv_amend in a job of type "amend".
 */
#include "job.h"
#include "qmp-commands.h"
#include "block/block_int.h"

/* ---- schemas ---- */

static const char *const create_driver_values[] = {
    "file", "luks", "qcow2", "raw", "ssh", NULL,
};
static const char *const prealloc_values[] = { "off", "metadata", "falloc", "full", NULL };
static const char *const qcow2_version_values[] = { "v2", "v3", NULL };
static const char *const compression_values[] = { "zlib", "zstd", NULL };
static const char *const backing_fmt_values[] = { "file", "qcow2", "raw", NULL };

static const QArg create_base[] = {
    { "driver", QT_ENUM, false, create_driver_values, NULL, NULL },
    QARG_END,
};

static const QArg create_file_members[] = {
    { "filename", QT_STR, false, NULL, NULL, NULL },
    { "size", QT_SIZE, false, NULL, NULL, NULL },
    { "preallocation", QT_ENUM, true, prealloc_values, NULL, NULL },
    { "nocow", QT_BOOL, true, NULL, NULL, NULL },
    { "extent-size-hint", QT_SIZE, true, NULL, NULL, NULL },
    QARG_END,
};

static const QArg create_qcow2_members[] = {
    { "file", QT_REF, false, NULL, NULL, NULL },
    { "data-file", QT_REF, true, NULL, NULL, NULL },
    { "data-file-raw", QT_BOOL, true, NULL, NULL, NULL },
    { "extended-l2", QT_BOOL, true, NULL, NULL, NULL },
    { "size", QT_SIZE, false, NULL, NULL, NULL },
    { "version", QT_ENUM, true, qcow2_version_values, NULL, NULL },
    { "backing-file", QT_STR, true, NULL, NULL, NULL },
    { "backing-fmt", QT_ENUM, true, backing_fmt_values, NULL, NULL },
    { "encrypt", QT_OBJECT_ANY, true, NULL, NULL, NULL },
    { "cluster-size", QT_SIZE, true, NULL, NULL, NULL },
    { "preallocation", QT_ENUM, true, prealloc_values, NULL, NULL },
    { "lazy-refcounts", QT_BOOL, true, NULL, NULL, NULL },
    { "refcount-bits", QT_INT, true, NULL, NULL, NULL },
    { "compression-type", QT_ENUM, true, compression_values, NULL, NULL },
    QARG_END,
};

static const char *const cipher_alg_values[] = {
    "aes-128", "aes-192", "aes-256", "des", "3des", "cast5-128", "serpent-128",
    "serpent-192", "serpent-256", "twofish-128", "twofish-192", "twofish-256", NULL,
};
static const char *const cipher_mode_values[] = { "ecb", "cbc", "xts", "ctr", NULL };
static const char *const ivgen_values[] = { "plain", "plain64", "essiv", NULL };
static const char *const hash_values[] = {
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160", NULL,
};
static const char *const luks_prealloc_values[] = { "off", "falloc", "full", NULL };

static const QArg create_luks_members[] = {
    { "file", QT_REF, false, NULL, NULL, NULL },
    { "size", QT_SIZE, false, NULL, NULL, NULL },
    { "preallocation", QT_ENUM, true, luks_prealloc_values, NULL, NULL },
    { "key-secret", QT_STR, true, NULL, NULL, NULL },
    { "cipher-alg", QT_ENUM, true, cipher_alg_values, NULL, NULL },
    { "cipher-mode", QT_ENUM, true, cipher_mode_values, NULL, NULL },
    { "ivgen-alg", QT_ENUM, true, ivgen_values, NULL, NULL },
    { "ivgen-hash-alg", QT_ENUM, true, hash_values, NULL, NULL },
    { "hash-alg", QT_ENUM, true, hash_values, NULL, NULL },
    { "iter-time", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

/* ssh: the location (server, path, user, host-key-check) the driver checks */
static const QArg create_ssh_members[] = {
    { "location", QT_OBJECT_ANY, false, NULL, NULL, NULL },
    { "size", QT_SIZE, false, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant create_variants[] = {
    { "file", create_file_members },
    { "luks", create_luks_members },
    { "qcow2", create_qcow2_members },
    { "raw", NULL },
    { "ssh", create_ssh_members },
    { NULL, NULL },
};

const QArg qapi_blockdev_create_args[] = {
    { "job-id", QT_STR, false, NULL, NULL, NULL },
    { "options", QT_UNION, false, NULL, create_base, create_variants },
    QARG_END,
};

/* QEMU 7.2's x-blockdev-amend: qcow2 can only change its encryption */
static const QArg x_amend_qcow2_members[] = {
    { "encrypt", QT_OBJECT_ANY, true, NULL, NULL, NULL },
    QARG_END,
};

static const char *const keyslot_state_values[] = { "active", "inactive", NULL };
static const QArg amend_luks_members[] = {
    { "state", QT_ENUM, false, keyslot_state_values, NULL, NULL },
    { "new-secret", QT_STR, true, NULL, NULL, NULL },
    { "old-secret", QT_STR, true, NULL, NULL, NULL },
    { "keyslot", QT_INT, true, NULL, NULL, NULL },
    { "iter-time", QT_INT, true, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant x_amend_variants[] = {
    { "file", NULL },
    { "luks", amend_luks_members },
    { "qcow2", x_amend_qcow2_members },
    { "raw", NULL },
    { NULL, NULL },
};

const QArg qapi_x_blockdev_amend_args[] = {
    { "job-id", QT_STR, false, NULL, NULL, NULL },
    { "node-name", QT_STR, false, NULL, NULL, NULL },
    { "options", QT_UNION, false, NULL, create_base, x_amend_variants },
    { "force", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

/* blockdev-amend: what qemu-img amend can change in a qcow2 image */
static const char *const compat_values[] = { "0.10", "v2", "1.1", "v3", NULL };

static const QArg amend_qcow2_members[] = {
    { "compat", QT_ENUM, true, compat_values, NULL, NULL },
    { "data-file", QT_STR, true, NULL, NULL, NULL },
    { "data-file-raw", QT_BOOL, true, NULL, NULL, NULL },
    { "lazy-refcounts", QT_BOOL, true, NULL, NULL, NULL },
    { "refcount-bits", QT_INT, true, NULL, NULL, NULL },
    { "backing-file", QT_STR, true, NULL, NULL, NULL },
    { "backing-fmt", QT_ENUM, true, backing_fmt_values, NULL, NULL },
    { "encrypt", QT_OBJECT_ANY, true, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant amend_variants[] = {
    { "file", NULL },
    { "luks", amend_luks_members },
    { "qcow2", amend_qcow2_members },
    { "raw", NULL },
    { NULL, NULL },
};

const QArg qapi_blockdev_amend_args[] = {
    { "job-id", QT_STR, false, NULL, NULL, NULL },
    { "node-name", QT_STR, false, NULL, NULL, NULL },
    { "options", QT_UNION, false, NULL, create_base, amend_variants },
    { "force", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

/* ---- blockdev-create ---- */

typedef struct CreateJob {
    BlockDriver *drv;
    JsonObject *opts;
} CreateJob;

static void create_job_free(gpointer p)
{
    CreateJob *cj = p;

    json_object_unref(cj->opts);
    g_free(cj);
}

static int create_job_run(void *opaque, GError **errp)
{
    CreateJob *cj = opaque;

    return cj->drv->create(cj->opts, errp);
}

JsonNode *qmp_blockdev_create(JsonObject *args, Monitor *mon, GError **errp)
{
    JsonObject *opts = json_object_get_object_member(args, "options");
    BlockDriver *drv = bdrv_find_format(json_object_get_string_member(opts, "driver"));
    CreateJob *cj;

    if (!drv || !drv->create) {
        error_setg(errp, "Driver does not support blockdev-create");
        return NULL;
    }
    cj = g_new0(CreateJob, 1);
    cj->drv = drv;
    cj->opts = opts_clone(opts);
    if (!job_start(opts_peek_str(args, "job-id"), "create", create_job_run, cj,
                   create_job_free, errp)) {
        return NULL;
    }
    return qjson_empty_object();
}

/* ---- amend ---- */

typedef struct AmendJob {
    BlockDriverState *bs;
    JsonObject *opts;       /* qemu-img -o names and string values */
    bool force;
} AmendJob;

static void amend_job_free(gpointer p)
{
    AmendJob *aj = p;

    json_object_unref(aj->opts);
    g_free(aj);
}

static int amend_job_run(void *opaque, GError **errp)
{
    AmendJob *aj = opaque;
    int ret = bdrv_amend(aj->bs, aj->opts, aj->force, errp);

    bdrv_unref(aj->bs);     /* taken when the job started */
    aj->bs = NULL;
    return ret;
}

/* QMP options ("lazy-refcounts": true) -> qemu-img amend's (lazy_refcounts=on);
 * luks's amend options are named alike in both. */
static JsonObject *amend_opts_from_qmp(JsonObject *qmp, bool keep_names)
{
    JsonObject *o = json_object_new();
    GList *keys = json_object_get_members(qmp);

    for (GList *l = keys; l; l = l->next) {
        const char *key = l->data;
        g_autofree char *name = keep_names ? g_strdup(key) :
                                g_strdelimit(g_strdup(key), "-", '_');
        g_autofree char *val = NULL;
        JsonNode *n = json_object_get_member(qmp, key);

        if (!strcmp(key, "driver")) {
            continue;
        }
        if (!JSON_NODE_HOLDS_VALUE(n)) {
            json_object_set_member(o, name, json_node_copy(n));
            continue;
        }
        val = opts_get_str(qmp, key);
        if (!strcmp(key, "compat")) {
            /* the schema's v2/v3 spellings are -o compat's 0.10/1.1 */
            const char *v = !strcmp(val, "v2") ? "0.10" : !strcmp(val, "v3") ? "1.1" : val;
            opts_set_str(o, name, v);
        } else {
            opts_set_str(o, name, val);
        }
    }
    g_list_free(keys);
    return o;
}

static JsonNode *amend_common(const char *cmd, JsonObject *args, GError **errp)
{
    const char *node = opts_peek_str(args, "node-name");
    JsonObject *opts = json_object_get_object_member(args, "options");
    const char *driver = opts_peek_str(opts, "driver");
    BlockDriverState *bs = bdrv_find_node(node);
    AmendJob *aj;

    if (!bs) {
        error_setg(errp, "Cannot find device='' nor node-name='%s'", node);
        return NULL;
    }
    if (strcmp(bdrv_get_format_name(bs), driver)) {
        error_setg(errp, "%s doesn't support changing the block driver", cmd);
        return NULL;
    }
    aj = g_new0(AmendJob, 1);
    aj->bs = bs;
    aj->opts = amend_opts_from_qmp(opts, !strcmp(driver, "luks"));
    aj->force = opts_get_bool(args, "force", false, NULL);
    bdrv_ref(bs);
    if (!job_start(opts_peek_str(args, "job-id"), "amend", amend_job_run, aj,
                   amend_job_free, errp)) {
        bdrv_unref(bs);
        return NULL;
    }
    return qjson_empty_object();
}

JsonNode *qmp_x_blockdev_amend(JsonObject *args, Monitor *mon, GError **errp)
{
    return amend_common("x-blockdev-amend", args, errp);
}

JsonNode *qmp_blockdev_amend(JsonObject *args, Monitor *mon, GError **errp)
{
    return amend_common("blockdev-amend", args, errp);
}
