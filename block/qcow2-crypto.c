/*
 * qcow2 encryption: the legacy AES method (crypt_method 1: IVs from guest
 * offsets) and LUKS (crypt_method 2: a LUKS header in clusters of the image
 * file, found through the 0x0537be77 header extension; IVs from host offsets).
 * Opening with encrypt.key-secret, creating the header, key slot amend, info.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* ---- the LUKS header inside the image file ---- */

static int hdr_read(QCryptoBlock *block, size_t offset, uint8_t *buf, size_t len,
                    void *opaque, GError **errp)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (offset > s->crypto_header_length || len > s->crypto_header_length - offset) {
        error_setg(errp, "Request for data outside of extension header");
        return -1;
    }
    ret = bdrv_pread(bs->file, s->crypto_header_offset + offset, len, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read encryption header");
        return -1;
    }
    return 0;
}

static int hdr_write(QCryptoBlock *block, size_t offset, const uint8_t *buf, size_t len,
                     void *opaque, GError **errp)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (offset > s->crypto_header_length || len > s->crypto_header_length - offset) {
        error_setg(errp, "Request for data outside of extension header");
        return -1;
    }
    ret = bdrv_pwrite(bs->file, s->crypto_header_offset + offset, len, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write encryption header");
        return -1;
    }
    return 0;
}

static int hdr_flush(QCryptoBlock *block, void *opaque, GError **errp)
{
    BlockDriverState *bs = opaque;
    int ret = bdrv_flush(bs->file);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush encryption header");
        return -1;
    }
    return 0;
}

/* New image: the header gets zeroed clusters of its own (init callback). */
static int hdr_init(QCryptoBlock *block, size_t headerlen, void *opaque, GError **errp)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;
    int64_t off = qcow2_alloc_clusters(bs, headerlen);
    int ret;

    if (off < 0) {
        error_setg_errno(errp, -off, "Could not allocate cluster for LUKS header");
        return -1;
    }
    s->crypto_header_offset = off;
    s->crypto_header_length = headerlen;
    s->has_crypto_header = true;
    ret = bdrv_pwrite_zeroes(bs->file, off, size_to_clusters(s, headerlen) *
                             s->cluster_size, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not zero fill encryption header");
        return -1;
    }
    return 0;
}

/* ---- open ---- */

int qcow2_crypto_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    JsonObject *enc = opts_get_object(opts, "encrypt");
    g_autofree char *fmt = enc ? opts_get_str(enc, "format") : NULL;
    g_autofree char *secret = enc ? opts_get_str(enc, "key-secret") : NULL;
    QCryptoBlockFormat format;
    int64_t file_len;

    if (s->crypt_method == QCOW_CRYPT_NONE) {
        if (fmt) {
            error_setg(errp, "No encryption in image header, but options specified "
                       "format '%s'", fmt);
            return -EINVAL;
        }
        return 0;
    }
    if (s->crypt_method > QCOW_CRYPT_LUKS) {
        error_setg(errp, "Unsupported encryption method: %" PRIu32, s->crypt_method);
        return -EINVAL;
    }
    format = s->crypt_method == QCOW_CRYPT_AES ? QCRYPTO_BLOCK_FORMAT_QCOW
                                               : QCRYPTO_BLOCK_FORMAT_LUKS;
    if (fmt && strcmp(fmt, QCryptoBlockFormat_str[format])) {
        error_setg(errp, "Header reported '%s' encryption format but options specify "
                   "'%s'", QCryptoBlockFormat_str[format], fmt);
        return -EINVAL;
    }
    if (format == QCRYPTO_BLOCK_FORMAT_LUKS) {
        if (!s->has_crypto_header) {
            error_setg(errp, "No encryption header extension found");
            return -EINVAL;
        }
        file_len = bdrv_getlength(bs->file);
        if (offset_into_cluster(s, s->crypto_header_offset)) {
            error_setg(errp, "Encryption header offset '%" PRIu64 "' is not a multiple "
                       "of cluster size '%d'", s->crypto_header_offset, s->cluster_size);
            return -EINVAL;
        }
        if (file_len >= 0 && (s->crypto_header_offset > (uint64_t)file_len ||
                              s->crypto_header_length >
                              (uint64_t)file_len - s->crypto_header_offset)) {
            error_setg(errp, "Encryption header exceeds the end of the image file");
            return -EINVAL;
        }
    }
    s->crypto = qcrypto_block_open(format, secret, "encrypt.", hdr_read, bs,
                                   (flags & BDRV_O_NO_IO) ? QCRYPTO_BLOCK_OPEN_NO_IO : 0,
                                   errp);
    if (!s->crypto) {
        return -EINVAL;
    }
    s->crypt_physical_offset = format == QCRYPTO_BLOCK_FORMAT_LUKS;
    bs->encrypted = true;
    return 0;
}

/* ---- data ---- */

/* the sector numbers of the IVs: the host offset for LUKS, the guest's for AES */
static uint64_t crypt_offset(BDRVQcow2State *s, uint64_t host, uint64_t guest)
{
    return s->crypt_physical_offset ? host : guest;
}

int qcow2_crypto_write(BlockDriverState *bs, BlockDriverState *data, uint64_t host,
                       uint64_t guest, const uint8_t *src, uint8_t *dst, size_t len)
{
    BDRVQcow2State *s = bs->opaque;
    BdrvWriteAt w = { data, host };
    g_autoptr(GError) err = NULL;

    if (!s->crypto || !qcrypto_block_has_cipher(s->crypto)) {
        return -EIO;
    }
    return qcrypto_block_encrypt_stream(s->crypto, crypt_offset(s, host, guest), src, dst,
                                        len, bdrv_write_at, &w, &err);
}

int qcow2_crypto_decrypt(BlockDriverState *bs, uint64_t host, uint64_t guest,
                         uint8_t *buf, size_t len)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GError) err = NULL;

    if (!s->crypto || !qcrypto_block_has_cipher(s->crypto)) {
        return -EIO;
    }
    if (qcrypto_block_decrypt(s->crypto, crypt_offset(s, host, guest), buf, len, &err) < 0) {
        return -EIO;
    }
    return 0;
}

/* ---- create ---- */

int qcow2_crypto_parse_create_opts(JsonObject *opts, QCryptoBlockCreateOptions *c,
                                   bool *has_crypto, GError **errp)
{
    g_autoptr(JsonObject) enc = json_object_new();
    JsonObject *nested = opts_get_object(opts, "encrypt");
    GList *members = json_object_get_members(opts);
    g_autofree char *fmt = NULL;
    GError *local = NULL;
    bool has_alias = opts_has(opts, "encryption");
    bool alias = opts_get_bool(opts, "encryption", false, &local);
    int format;

    *has_crypto = false;
    if (local) {
        error_propagate(errp, local);
        g_list_free(members);
        return -EINVAL;
    }
    for (GList *l = members; l; l = l->next) {
        const char *k = l->data;
        if (g_str_has_prefix(k, "encrypt.")) {
            json_object_set_member(enc, k + 8, json_object_dup_member(opts, k));
        }
    }
    g_list_free(members);
    if (nested) {
        opts_merge(enc, nested);
    }
    fmt = opts_get_str(enc, "format");
    if (has_alias && fmt) {
        error_setg(errp, "'encrypt.format' and its alias 'encryption' can't be used at "
                   "the same time");
        return -EINVAL;
    }
    if (!fmt && alias) {
        fmt = g_strdup("aes");
    }
    if (!fmt) {
        if (json_object_get_size(enc)) {
            error_setg(errp, "Parameter 'encrypt.format' is missing");
            return -EINVAL;
        }
        return 0;
    }
    format = qcrypto_enum_parse(QCryptoBlockFormat_str, QCRYPTO_BLOCK_FORMAT__MAX, fmt);
    if (format < 0) {
        error_setg(errp, "Parameter 'format' does not accept value '%s'", fmt);
        return -EINVAL;
    }
    json_object_remove_member(enc, "format");
    qcrypto_block_create_options_init(c, format);
    if (qcrypto_block_create_options_parse(c, enc, "encrypt.", errp) < 0) {
        qcrypto_block_create_options_clear(c);
        return -EINVAL;
    }
    *has_crypto = true;
    return 0;
}

int qcow2_crypto_header_size(const QCryptoBlockCreateOptions *opts, bool has_crypto,
                             uint64_t *len, GError **errp)
{
    size_t n = 0;

    *len = 0;
    if (!has_crypto) {
        return 0;
    }
    if (qcrypto_block_calculate_payload_offset(opts, "encrypt.", &n, errp) < 0) {
        return -EINVAL;
    }
    *len = n;
    return 0;
}

int qcow2_crypto_create(BlockDriverState *bs, const QCryptoBlockCreateOptions *opts,
                        GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    QCryptoBlock *block = qcrypto_block_create(opts, "encrypt.", hdr_init, hdr_write, bs,
                                               errp);

    if (!block) {
        return -EINVAL;
    }
    s->crypto = block;
    s->crypt_method = opts->format == QCRYPTO_BLOCK_FORMAT_LUKS ? QCOW_CRYPT_LUKS
                                                                : QCOW_CRYPT_AES;
    s->crypt_physical_offset = opts->format == QCRYPTO_BLOCK_FORMAT_LUKS;
    bs->encrypted = true;
    return 0;
}

/* ---- amend ---- */

int qcow2_crypto_amend(BlockDriverState *bs, JsonObject *enc, bool force, GError **errp)
{
    BDRVQcow2State *s = bs->opaque;
    QCryptoBlockAmendOptions o;
    int ret;

    if (!s->crypto) {
        error_setg(errp, "Can't amend encryption options - encryption not present");
        return -EINVAL;
    }
    if (qcrypto_block_get_format(s->crypto) != QCRYPTO_BLOCK_FORMAT_LUKS) {
        error_setg(errp, "Amending encryption options of the '%s' format is not "
                   "supported", QCryptoBlockFormat_str[qcrypto_block_get_format(s->crypto)]);
        return -ENOTSUP;
    }
    ret = qcrypto_block_amend_options_parse(&o, enc, "encrypt.", errp);
    if (ret == 0) {
        ret = qcrypto_block_amend(s->crypto, &o, "encrypt.", hdr_read, hdr_write,
                                  hdr_flush, bs, force, errp);
    }
    qcrypto_block_amend_options_clear(&o);
    return ret < 0 ? -EINVAL : 0;
}

/* ---- info ---- */

JsonObject *qcow2_crypto_info(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    JsonObject *o;

    if (!s->crypto) {
        return NULL;
    }
    o = qcrypto_block_get_info(s->crypto, true);
    if (!o) {
        o = json_object_new();
        json_object_set_string_member(o, "format", "aes");
    }
    return o;
}
