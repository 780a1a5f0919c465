/*
 * The "luks" format driver: a LUKS1 volume in a file (QEMU's and cryptsetup's
 * layout), the guest data being the payload after the header, encrypted by
 * 512-byte sector. Create (qemu-img and blockdev-create), open with a key
 * secret (or header only, for qemu-img info), I/O, resize, key slot amend,
 * measure and info. The LUKS logic itself is crypto/block-luks.c.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "crypto/block.h"

#define LUKS_FILE_PERM (BLK_PERM_WRITE | BLK_PERM_RESIZE)
#define LUKS_BOUNCE (1 * MiB)

typedef struct BlockCrypto {
    QCryptoBlock *block;
    uint64_t payload;           /* bytes */
    uint8_t *bounce;            /* LUKS_BOUNCE bytes for writes, kept while open */
} BlockCrypto;

static const char *const luks_runtime_opts[] = { "key-secret", NULL };

static const CreateOptDesc luks_create_opt_descs[] = {
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { "key-secret", OPT_STRING, "ID of the secret that provides the keyslot passphrase",
      NULL },
    { "cipher-alg", OPT_STRING, "Name of encryption cipher algorithm", NULL },
    { "cipher-mode", OPT_STRING, "Name of encryption cipher mode", NULL },
    { "ivgen-alg", OPT_STRING, "Name of IV generator algorithm", NULL },
    { "ivgen-hash-alg", OPT_STRING, "Name of IV generator hash algorithm", NULL },
    { "hash-alg", OPT_STRING, "Name of encryption hash algorithm", NULL },
    { "iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { NULL },
};

static const CreateOptDesc luks_amend_opt_descs[] = {
    { "state", OPT_STRING, "Select new state of affected keyslots (active/inactive)",
      NULL },
    { "keyslot", OPT_NUMBER, "Select a single keyslot to modify explicitly", NULL },
    { "old-secret", OPT_STRING, "Select all keyslots that match this password", NULL },
    { "new-secret", OPT_STRING, "New secret to set in the matching keyslots. Empty "
      "string to erase", NULL },
    { "iter-time", OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { NULL },
};

/* ---- header I/O callbacks: the header is at the start of @opaque (a node) ---- */

static int hdr_read(QCryptoBlock *block, size_t offset, uint8_t *buf, size_t len,
                    void *opaque, GError **errp)
{
    BlockDriverState *file = opaque;
    int64_t flen = bdrv_getlength(file);
    int ret;

    if (flen >= 0 && offset + len > (uint64_t)flen) {
        error_setg(errp, "Could not read encryption header: the file ends at %" PRId64
                   " bytes", flen);
        return -1;
    }
    ret = bdrv_pread(file, offset, len, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read encryption header");
        return -1;
    }
    return 0;
}

static int hdr_write(QCryptoBlock *block, size_t offset, const uint8_t *buf, size_t len,
                     void *opaque, GError **errp)
{
    int ret = bdrv_pwrite(opaque, offset, len, buf, 0);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write encryption header");
        return -1;
    }
    return 0;
}

static int hdr_flush(QCryptoBlock *block, void *opaque, GError **errp)
{
    int ret = bdrv_flush(opaque);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush encryption header");
        return -1;
    }
    return 0;
}

/* ---- open ---- */

static int luks_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= 8 && !memcmp(buf, "LUKS\xba\xbe", 6) && lduw_be(buf + 6) == 1 ?
           100 : 0;
}

static int luks_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BlockCrypto *s = bs->opaque;
    g_autofree char *secret = opts_get_str(opts, "key-secret");
    unsigned cflags = (flags & BDRV_O_NO_IO) ? QCRYPTO_BLOCK_OPEN_NO_IO : 0;

    s->block = qcrypto_block_open(QCRYPTO_BLOCK_FORMAT_LUKS, secret, "", hdr_read,
                                  bs->file, cflags, errp);
    if (!s->block) {
        return -EINVAL;
    }
    s->payload = qcrypto_block_get_payload_offset(s->block);
    bs->encrypted = true;
    bs->request_alignment = MAX(QCRYPTO_BLOCK_SECTOR_SIZE, bs->file->request_alignment);
    return 0;
}

static void luks_close(BlockDriverState *bs)
{
    BlockCrypto *s = bs->opaque;

    g_clear_pointer(&s->block, qcrypto_block_free);
    if (s->bounce) {
        qcrypto_wipe(s->bounce, LUKS_BOUNCE);
        g_clear_pointer(&s->bounce, g_free);
    }
}

static int64_t luks_getlength(BlockDriverState *bs)
{
    BlockCrypto *s = bs->opaque;
    int64_t len = bdrv_getlength(bs->file);

    if (len < 0) {
        return len;
    }
    /* a file cut short of its payload holds no guest data */
    return len > (int64_t)s->payload ?
           QEMU_ALIGN_DOWN(len - (int64_t)s->payload, QCRYPTO_BLOCK_SECTOR_SIZE) : 0;
}

/* ---- I/O ---- */

static int luks_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                      int flags)
{
    BlockCrypto *s = bs->opaque;
    g_autoptr(GError) err = NULL;
    int ret;

    if (!qcrypto_block_has_cipher(s->block)) {
        return -EIO;
    }
    ret = bdrv_pread(bs->file, s->payload + offset, bytes, buf, 0);
    if (ret < 0) {
        return ret;
    }
    if (qcrypto_block_decrypt(s->block, offset, buf, bytes, &err) < 0) {
        return -EIO;
    }
    return 0;
}

static int luks_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       const void *buf, int flags)
{
    BlockCrypto *s = bs->opaque;
    uint8_t *bounce;
    int ret = 0;

    if (!qcrypto_block_has_cipher(s->block)) {
        return -EIO;
    }
    if (!s->bounce) {
        s->bounce = g_malloc(LUKS_BOUNCE);
    }
    bounce = s->bounce;
    for (int64_t done = 0; done < bytes && ret == 0; done += LUKS_BOUNCE) {
        int64_t n = MIN(bytes - done, LUKS_BOUNCE);
        g_autoptr(GError) err = NULL;

        BdrvWriteAt w = { bs->file, s->payload + offset + done };

        ret = qcrypto_block_encrypt_stream(s->block, offset + done,
                                           (const uint8_t *)buf + done, bounce, n,
                                           bdrv_write_at, &w, &err);
    }
    return ret;
}

static int luks_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                         PreallocMode prealloc, int flags, GError **errp)
{
    BlockCrypto *s = bs->opaque;

    if (offset > INT64_MAX - (int64_t)s->payload) {
        error_setg(errp, "The requested file size is too large");
        return -EFBIG;
    }
    return bdrv_truncate(bs->file, offset + s->payload, exact, prealloc, flags, errp);
}

/* QEMU's luks node reports data without an offset (the file holds ciphertext) */
static int luks_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                             int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    *pnum = bytes;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
}

static int luks_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return 0;
}

static JsonNode *luks_get_specific_info(BlockDriverState *bs, GError **errp)
{
    BlockCrypto *s = bs->opaque;
    JsonObject *top = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_object_set_string_member(top, "type", "luks");
    json_object_set_object_member(top, "data", qcrypto_block_get_info(s->block, false));
    json_node_take_object(node, top);
    return node;
}

/* ---- create ---- */

typedef struct LuksCreateState {
    BlockDriverState *file;
    uint64_t size;
    PreallocMode prealloc;
} LuksCreateState;

static int luks_init_header(QCryptoBlock *block, size_t headerlen, void *opaque,
                            GError **errp)
{
    LuksCreateState *c = opaque;

    if (c->size > (uint64_t)INT64_MAX - headerlen) {
        error_setg(errp, "The requested file size is too large");
        return -1;
    }
    return bdrv_truncate(c->file, headerlen + c->size, false, c->prealloc, 0, errp) < 0 ?
           -1 : 0;
}

static int luks_create_write(QCryptoBlock *block, size_t offset, const uint8_t *buf,
                             size_t len, void *opaque, GError **errp)
{
    return hdr_write(block, offset, buf, len, ((LuksCreateState *)opaque)->file, errp);
}

static int luks_format(LuksCreateState *c, const QCryptoBlockCreateOptions *copts,
                       GError **errp)
{
    QCryptoBlock *block = qcrypto_block_create(copts, "", luks_init_header,
                                               luks_create_write, c, errp);

    if (!block) {
        return -EINVAL;
    }
    qcrypto_block_free(block);
    return bdrv_flush(c->file);
}

/* the crypto options of a luks create or measure: every key but the generic ones */
static int luks_crypto_opts(JsonObject *opts, QCryptoBlockCreateOptions *copts,
                            GError **errp)
{
    g_autoptr(JsonObject) c = json_object_new();
    GList *members = json_object_get_members(opts);

    for (GList *l = members; l; l = l->next) {
        const char *k = l->data;
        if (strcmp(k, "size") && strcmp(k, "preallocation") && strcmp(k, "nocow") &&
            strcmp(k, "extent_size_hint") && strcmp(k, "driver") && strcmp(k, "file") &&
            strcmp(k, "extent-size-hint")) {
            json_object_set_member(c, k, json_object_dup_member(opts, k));
        }
    }
    g_list_free(members);
    qcrypto_block_create_options_init(copts, QCRYPTO_BLOCK_FORMAT_LUKS);
    return qcrypto_block_create_options_parse(copts, c, "", errp);
}

static int luks_parse_prealloc(JsonObject *opts, PreallocMode *out, GError **errp)
{
    g_autofree char *pa = opts_get_str(opts, "preallocation");
    int m = pa ? prealloc_mode_parse(pa) : PREALLOC_MODE_OFF;

    if (m < 0 || m == PREALLOC_MODE_METADATA) {
        error_setg(errp, "Parameter 'preallocation' does not accept value '%s'", pa);
        return -EINVAL;
    }
    *out = m;
    return 0;
}

static int luks_create_opts(const char *filename, JsonObject *opts, GError **errp)
{
    QCryptoBlockCreateOptions copts;
    LuksCreateState c = { 0 };
    GError *local = NULL;
    bool created = false;
    int ret;

    c.size = QEMU_ALIGN_UP(opts_get_size(opts, "size", 0, &local),
                           QCRYPTO_BLOCK_SECTOR_SIZE);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (luks_parse_prealloc(opts, &c.prealloc, errp) < 0) {
        return -EINVAL;
    }
    ret = luks_crypto_opts(opts, &copts, errp);
    if (ret == 0 && !copts.key_secret) {
        error_setg(errp, "Parameter 'key-secret' is required for cipher");
        ret = -1;
    }
    if (ret < 0) {
        qcrypto_block_create_options_clear(&copts);
        return -EINVAL;
    }
    c.file = bdrv_create_file_open(filename, LUKS_FILE_PERM, BLK_PERM_ALL, &created,
                                   errp);
    if (!c.file) {
        qcrypto_block_create_options_clear(&copts);
        return -EIO;
    }
    ret = bdrv_create_file_fill(c.file, 0, PREALLOC_MODE_OFF, errp);
    if (ret == 0) {
        ret = luks_format(&c, &copts, errp);
    }
    bdrv_create_file_close(c.file, created, ret < 0);
    qcrypto_block_create_options_clear(&copts);
    return ret;
}

/* blockdev-create: {"driver": "luks", "file": NODE, "size": N, key-secret, ...} */
static int luks_create_qmp(JsonObject *opts, GError **errp)
{
    QCryptoBlockCreateOptions copts;
    LuksCreateState c = { 0 };
    const char *fname = opts_peek_str(opts, "file");
    GError *local = NULL;
    int ret;

    if (!fname) {
        error_setg(errp, "Parameter 'file' is missing");
        return -EINVAL;
    }
    c.file = bdrv_find_node(fname);
    if (!c.file) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", fname, fname);
        return -ENOENT;
    }
    if (!opts_has(opts, "size")) {
        error_setg(errp, "Parameter 'size' is missing");
        return -EINVAL;
    }
    c.size = opts_get_size(opts, "size", 0, &local);
    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (luks_parse_prealloc(opts, &c.prealloc, errp) < 0 ||
        luks_crypto_opts(opts, &copts, errp) < 0) {
        return -EINVAL;
    }
    if (!copts.key_secret) {
        error_setg(errp, "Parameter 'key-secret' is required for cipher");
        qcrypto_block_create_options_clear(&copts);
        return -EINVAL;
    }
    ret = bdrv_truncate(c.file, 0, true, PREALLOC_MODE_OFF, 0, errp);
    if (ret == 0) {
        ret = luks_format(&c, &copts, errp);
    }
    qcrypto_block_create_options_clear(&copts);
    return ret;
}

static int luks_measure(JsonObject *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                        GError **errp)
{
    QCryptoBlockCreateOptions copts;
    size_t header;
    uint64_t size;
    int ret;

    ret = bdrv_measure_virtual_size(opts, in_bs, &size, errp);
    if (ret < 0) {
        return ret;
    }
    ret = luks_crypto_opts(opts, &copts, errp);
    if (ret == 0) {
        ret = qcrypto_block_calculate_payload_offset(&copts, "", &header, errp);
    }
    qcrypto_block_create_options_clear(&copts);
    if (ret < 0) {
        return -EINVAL;
    }
    info->required = info->fully_allocated =
        header + QEMU_ALIGN_UP(size, QCRYPTO_BLOCK_SECTOR_SIZE);
    return 0;
}

/* ---- amend ---- */

static int luks_amend(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp)
{
    BlockCrypto *s = bs->opaque;
    QCryptoBlockAmendOptions o;
    g_autoptr(JsonObject) c = json_object_new();
    GList *members = json_object_get_members(opts);
    int ret;

    for (GList *l = members; l; l = l->next) {
        if (strcmp(l->data, "driver")) {
            json_object_set_member(c, l->data, json_object_dup_member(opts, l->data));
        }
    }
    g_list_free(members);
    ret = qcrypto_block_amend_options_parse(&o, c, "", errp);
    if (ret == 0) {
        ret = qcrypto_block_amend(s->block, &o, "", hdr_read, hdr_write, hdr_flush,
                                  bs->file, force, errp);
    }
    qcrypto_block_amend_options_clear(&o);
    return ret < 0 ? -EINVAL : 0;
}

/* a key changes what the node shows: named by json: then, as QEMU does */
static const char *const luks_strong_opts[] = { "key-secret", NULL };

BlockDriver bdrv_crypto_luks = {
    .format_name = "luks",
    .is_format = true,
    .strong_opts = luks_strong_opts,
    .instance_size = sizeof(BlockCrypto),
    .runtime_opts = luks_runtime_opts,
    .probe = luks_probe,
    .open = luks_open,
    .close = luks_close,
    .pread = luks_pread,
    .pwrite = luks_pwrite,
    .getlength = luks_getlength,
    .truncate = luks_truncate,
    .block_status = luks_block_status,
    .get_info = luks_get_info,
    .get_specific_info = luks_get_specific_info,
    .create_opts = luks_create_opts,
    .create = luks_create_qmp,
    .create_opt_descs = luks_create_opt_descs,
    .measure = luks_measure,
    .amend = luks_amend,
    .amend_opt_descs = luks_amend_opt_descs,
};
