/*
 * LUKS1, the on-disk format of cryptsetup (its published specification): the
 * 592-byte header, eight key slots holding the master key split by the
 * anti-forensic splitter and encrypted with a PBKDF2-derived key, and a payload
 * encrypted with the master key. Images are laid out as QEMU lays them out (key
 * material from 4 KiB on, each slot 4 KiB aligned, payload after slot 7), so
 * cryptsetup and QEMU read ours and we read theirs. Headers are checked before
 * anything is derived from them: a hostile one is refused, never looped on.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "crypto/block.h"
#include "crypto/secret.h"

#define LUKS_MAGIC "LUKS\xba\xbe"
#define LUKS_MAGIC_LEN 6
#define LUKS_VERSION 1
#define LUKS_HEADER_LEN 592
#define LUKS_DIGEST_LEN 20
#define LUKS_SALT_LEN 32
#define LUKS_UUID_LEN 40
#define LUKS_NAME_LEN 32
#define LUKS_SLOT_ENABLED 0x00AC71F3U
#define LUKS_SLOT_DISABLED 0x0000DEADU
#define LUKS_SECTOR 512
#define LUKS_KEY_SLOT_OFFSET 4096     /* bytes: key material starts here */
#define LUKS_ALIGN 4096               /* key material areas are aligned so */
#define LUKS_MIN_ITERS 1000
#define NSLOTS QCRYPTO_BLOCK_LUKS_NUM_KEY_SLOTS

typedef struct LuksSlot {
    uint32_t active;
    uint32_t iterations;
    uint8_t salt[LUKS_SALT_LEN];
    uint32_t key_offset;        /* sectors */
    uint32_t stripes;
} LuksSlot;

typedef struct LuksHeader {
    uint16_t version;
    char cipher_name[LUKS_NAME_LEN + 1];
    char cipher_mode[LUKS_NAME_LEN + 1];
    char hash_spec[LUKS_NAME_LEN + 1];
    uint32_t payload_offset;    /* sectors */
    uint32_t master_key_len;
    uint8_t mk_digest[LUKS_DIGEST_LEN];
    uint8_t mk_digest_salt[LUKS_SALT_LEN];
    uint32_t mk_digest_iterations;
    char uuid[LUKS_UUID_LEN + 1];
    LuksSlot slots[NSLOTS];
} LuksHeader;

typedef struct QCryptoBlockLUKS {
    LuksHeader header;
    QCryptoCipherAlgorithm cipher_alg;
    QCryptoCipherMode cipher_mode;
    QCryptoIVGenAlgorithm ivgen_alg;
    QCryptoHashAlgorithm ivgen_hash_alg;
    bool has_ivgen_hash;
    QCryptoCipherAlgorithm ivgen_cipher_alg;
    QCryptoHashAlgorithm hash_alg;
    uint8_t *master_key;        /* NULL when opened without I/O */
} QCryptoBlockLUKS;

/* ---- names ---- */

static const struct {
    const char *name;
    size_t key_len;
    QCryptoCipherAlgorithm alg;
} luks_ciphers[] = {
    { "aes", 16, QCRYPTO_CIPHER_ALG_AES_128 },
    { "aes", 24, QCRYPTO_CIPHER_ALG_AES_192 },
    { "aes", 32, QCRYPTO_CIPHER_ALG_AES_256 },
    { "cast5", 16, QCRYPTO_CIPHER_ALG_CAST5_128 },
    { "serpent", 16, QCRYPTO_CIPHER_ALG_SERPENT_128 },
    { "serpent", 24, QCRYPTO_CIPHER_ALG_SERPENT_192 },
    { "serpent", 32, QCRYPTO_CIPHER_ALG_SERPENT_256 },
    { "twofish", 16, QCRYPTO_CIPHER_ALG_TWOFISH_128 },
    { "twofish", 24, QCRYPTO_CIPHER_ALG_TWOFISH_192 },
    { "twofish", 32, QCRYPTO_CIPHER_ALG_TWOFISH_256 },
};

static const char *luks_cipher_name(QCryptoCipherAlgorithm alg)
{
    for (size_t i = 0; i < ARRAY_SIZE(luks_ciphers); i++) {
        if (luks_ciphers[i].alg == alg) {
            return luks_ciphers[i].name;
        }
    }
    return NULL;
}

static int luks_cipher_lookup(const char *name, size_t key_len,
                              QCryptoCipherAlgorithm *alg, GError **errp)
{
    for (size_t i = 0; i < ARRAY_SIZE(luks_ciphers); i++) {
        if (!strcmp(luks_ciphers[i].name, name) && luks_ciphers[i].key_len == key_len) {
            *alg = luks_ciphers[i].alg;
            return 0;
        }
    }
    error_setg(errp, "Algorithm '%s' with key size %zu unsupported", name, key_len);
    return -1;
}

/* The ESSIV cipher: the payload cipher's family, keyed by a @hash digest. */
static int luks_essiv_cipher(QCryptoCipherAlgorithm alg, QCryptoHashAlgorithm hash,
                             QCryptoCipherAlgorithm *out, GError **errp)
{
    const char *name = luks_cipher_name(alg);
    size_t dlen = qcrypto_hash_digest_len(hash);

    if (name && luks_cipher_lookup(name, dlen, out, NULL) == 0) {
        return 0;
    }
    error_setg(errp, "No %s cipher with key size %zu available",
               name ? name : QCryptoCipherAlgorithm_str[alg], dlen);
    return -1;
}

/* ---- header (de)serialisation ---- */

static void header_decode(const uint8_t *buf, LuksHeader *h)
{
    const uint8_t *p = buf + LUKS_MAGIC_LEN;

    memset(h, 0, sizeof(*h));
    h->version = lduw_be(p);
    p += 2;
    memcpy(h->cipher_name, p, LUKS_NAME_LEN);
    p += LUKS_NAME_LEN;
    memcpy(h->cipher_mode, p, LUKS_NAME_LEN);
    p += LUKS_NAME_LEN;
    memcpy(h->hash_spec, p, LUKS_NAME_LEN);
    p += LUKS_NAME_LEN;
    h->payload_offset = ldl_be(p);
    h->master_key_len = ldl_be(p + 4);
    p += 8;
    memcpy(h->mk_digest, p, LUKS_DIGEST_LEN);
    p += LUKS_DIGEST_LEN;
    memcpy(h->mk_digest_salt, p, LUKS_SALT_LEN);
    p += LUKS_SALT_LEN;
    h->mk_digest_iterations = ldl_be(p);
    p += 4;
    memcpy(h->uuid, p, LUKS_UUID_LEN);
    p += LUKS_UUID_LEN;
    for (int i = 0; i < NSLOTS; i++) {
        LuksSlot *s = &h->slots[i];
        s->active = ldl_be(p);
        s->iterations = ldl_be(p + 4);
        memcpy(s->salt, p + 8, LUKS_SALT_LEN);
        s->key_offset = ldl_be(p + 8 + LUKS_SALT_LEN);
        s->stripes = ldl_be(p + 12 + LUKS_SALT_LEN);
        p += 16 + LUKS_SALT_LEN;
    }
}

static void header_encode(const LuksHeader *h, uint8_t *buf)
{
    uint8_t *p = buf;

    memset(buf, 0, LUKS_HEADER_LEN);
    memcpy(p, LUKS_MAGIC, LUKS_MAGIC_LEN);
    p += LUKS_MAGIC_LEN;
    stw_be(p, h->version);
    p += 2;
    memcpy(p, h->cipher_name, strnlen(h->cipher_name, LUKS_NAME_LEN));
    p += LUKS_NAME_LEN;
    memcpy(p, h->cipher_mode, strnlen(h->cipher_mode, LUKS_NAME_LEN));
    p += LUKS_NAME_LEN;
    memcpy(p, h->hash_spec, strnlen(h->hash_spec, LUKS_NAME_LEN));
    p += LUKS_NAME_LEN;
    stl_be(p, h->payload_offset);
    stl_be(p + 4, h->master_key_len);
    p += 8;
    memcpy(p, h->mk_digest, LUKS_DIGEST_LEN);
    p += LUKS_DIGEST_LEN;
    memcpy(p, h->mk_digest_salt, LUKS_SALT_LEN);
    p += LUKS_SALT_LEN;
    stl_be(p, h->mk_digest_iterations);
    p += 4;
    memcpy(p, h->uuid, strnlen(h->uuid, LUKS_UUID_LEN));
    p += LUKS_UUID_LEN;
    for (int i = 0; i < NSLOTS; i++) {
        const LuksSlot *s = &h->slots[i];
        stl_be(p, s->active);
        stl_be(p + 4, s->iterations);
        memcpy(p + 8, s->salt, LUKS_SALT_LEN);
        stl_be(p + 8 + LUKS_SALT_LEN, s->key_offset);
        stl_be(p + 12 + LUKS_SALT_LEN, s->stripes);
        p += 16 + LUKS_SALT_LEN;
    }
}

/* bytes of one slot's key material as stored: whole sectors */
static size_t split_key_bytes(const LuksHeader *h)
{
    return QEMU_ALIGN_UP((size_t)h->master_key_len * QCRYPTO_BLOCK_LUKS_STRIPES, LUKS_SECTOR);
}

/* ---- checks of an untrusted header ---- */

static int parse_cipher_mode(QCryptoBlockLUKS *luks, size_t key_len, GError **errp)
{
    LuksHeader *h = &luks->header;
    g_autofree char *mode = g_strdup(h->cipher_mode);
    char *ivgen = strchr(mode, '-'), *ivhash;
    int m, iv, hash;

    if (ivgen) {
        *ivgen++ = '\0';
    }
    m = qcrypto_enum_parse(QCryptoCipherMode_str, QCRYPTO_CIPHER_MODE__MAX, mode);
    if (m < 0) {
        error_setg(errp, "Cipher mode '%s' is not supported", mode);
        return -1;
    }
    luks->cipher_mode = m;
    if (m == QCRYPTO_CIPHER_MODE_XTS) {
        if (key_len % 2) {
            error_setg(errp, "Invalid key length %zu for XTS mode", key_len);
            return -1;
        }
        key_len /= 2;
    }
    if (luks_cipher_lookup(h->cipher_name, key_len, &luks->cipher_alg, errp) < 0) {
        return -1;
    }
    if (!qcrypto_cipher_supports(luks->cipher_alg, luks->cipher_mode)) {
        error_setg(errp, "Cipher '%s' in '%s' mode is not supported", h->cipher_name,
                   mode);
        return -1;
    }
    ivhash = ivgen ? strchr(ivgen, ':') : NULL;
    if (ivhash) {
        *ivhash++ = '\0';
    }
    iv = ivgen ? qcrypto_enum_parse(QCryptoIVGenAlgorithm_str, QCRYPTO_IVGEN_ALG__MAX,
                                    ivgen) : QCRYPTO_IVGEN_ALG_PLAIN64;
    if (iv < 0) {
        error_setg(errp, "IV generator '%s' is not supported", ivgen);
        return -1;
    }
    luks->ivgen_alg = iv;
    if (iv == QCRYPTO_IVGEN_ALG_ESSIV) {
        if (!ivhash) {
            error_setg(errp, "Missing IV generator hash specification");
            return -1;
        }
        hash = qcrypto_enum_parse(QCryptoHashAlgorithm_str, QCRYPTO_HASH_ALG__MAX,
                                  ivhash);
        if (hash < 0) {
            error_setg(errp, "Hash algorithm '%s' is not supported", ivhash);
            return -1;
        }
        luks->ivgen_hash_alg = hash;
        luks->has_ivgen_hash = true;
        if (luks_essiv_cipher(luks->cipher_alg, hash, &luks->ivgen_cipher_alg,
                              errp) < 0) {
            return -1;
        }
    } else {
        luks->ivgen_cipher_alg = luks->cipher_alg;
        luks->ivgen_hash_alg = QCRYPTO_HASH_ALG_SHA256;
    }
    return 0;
}

static int check_header(QCryptoBlockLUKS *luks, GError **errp)
{
    LuksHeader *h = &luks->header;
    int hash;
    size_t material;

    if (h->version != LUKS_VERSION) {
        error_setg(errp, "LUKS version %" PRIu32 " is not supported", h->version);
        return -1;
    }
    if (h->master_key_len == 0 || h->master_key_len > 64) {
        error_setg(errp, "LUKS key length %" PRIu32 " is not supported",
                   h->master_key_len);
        return -1;
    }
    hash = qcrypto_enum_parse(QCryptoHashAlgorithm_str, QCRYPTO_HASH_ALG__MAX,
                              h->hash_spec);
    if (hash < 0) {
        error_setg(errp, "Hash algorithm '%s' is not supported", h->hash_spec);
        return -1;
    }
    luks->hash_alg = hash;
    if (parse_cipher_mode(luks, h->master_key_len, errp) < 0) {
        return -1;
    }
    if (h->mk_digest_iterations == 0 ||
        h->mk_digest_iterations > QCRYPTO_BLOCK_LUKS_MAX_ITERS) {
        error_setg(errp, "LUKS master key iteration count %" PRIu32 " is out of range",
                   h->mk_digest_iterations);
        return -1;
    }
    material = split_key_bytes(h);
    for (int i = 0; i < NSLOTS; i++) {
        LuksSlot *s = &h->slots[i];
        uint64_t start = (uint64_t)s->key_offset * LUKS_SECTOR, end = start + material;

        if (s->active != LUKS_SLOT_ENABLED && s->active != LUKS_SLOT_DISABLED) {
            error_setg(errp, "Keyslot %d state (active/disable) is corrupted", i);
            return -1;
        }
        if (s->active == LUKS_SLOT_ENABLED &&
            (s->iterations == 0 || s->iterations > QCRYPTO_BLOCK_LUKS_MAX_ITERS)) {
            error_setg(errp, "Keyslot %d iteration count %" PRIu32 " is out of range", i,
                       s->iterations);
            return -1;
        }
        if (s->stripes != QCRYPTO_BLOCK_LUKS_STRIPES) {
            error_setg(errp, "Keyslot %d is corrupted (stripes %" PRIu32 " != %d)", i,
                       s->stripes, QCRYPTO_BLOCK_LUKS_STRIPES);
            return -1;
        }
        if (start < LUKS_HEADER_LEN) {
            error_setg(errp, "Keyslot %d is overlapping with the LUKS header", i);
            return -1;
        }
        if (end > (uint64_t)h->payload_offset * LUKS_SECTOR) {
            error_setg(errp, "Keyslot %d is overlapping with the encrypted payload", i);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            uint64_t s2 = (uint64_t)h->slots[j].key_offset * LUKS_SECTOR;
            if (start < s2 + material && s2 < end) {
                error_setg(errp, "Keyslots %d and %d are overlapping in the header", j, i);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- key slots ---- */

static int slot_crypt(QCryptoBlockLUKS *luks, const uint8_t *key, uint8_t *buf,
                      size_t len, bool encrypt, GError **errp)
{
    QCryptoBlock tmp = { .format = QCRYPTO_BLOCK_FORMAT_QCOW };
    int ret = -1;

    tmp.niv = luks->cipher_mode == QCRYPTO_CIPHER_MODE_ECB ? 0 :
              qcrypto_cipher_get_block_len(luks->cipher_alg);
    tmp.cipher = qcrypto_cipher_new(luks->cipher_alg, luks->cipher_mode, key,
                                    luks->header.master_key_len, errp);
    if (tmp.cipher) {
        tmp.ivgen = qcrypto_ivgen_new(luks->ivgen_alg, luks->ivgen_cipher_alg,
                                      luks->ivgen_hash_alg, key,
                                      luks->header.master_key_len, errp);
    }
    if (tmp.ivgen) {
        ret = encrypt ? qcrypto_block_encrypt(&tmp, 0, buf, len, errp)
                      : qcrypto_block_decrypt(&tmp, 0, buf, len, errp);
    }
    qcrypto_cipher_free(tmp.cipher);
    qcrypto_ivgen_free(tmp.ivgen);
    return ret;
}

/* Try @password on slot @i: the master key into @mk, 1 if it fits, 0 if not. */
static int slot_load_key(QCryptoBlock *block, int i, const char *password, uint8_t *mk,
                         QCryptoBlockReadFunc readfunc, void *opaque, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    LuksSlot *s = &h->slots[i];
    size_t mklen = h->master_key_len, material = split_key_bytes(h);
    uint8_t derived[64], digest[LUKS_DIGEST_LEN];
    g_autofree uint8_t *split = NULL;
    int ret = -1;

    if (s->active != LUKS_SLOT_ENABLED) {
        return 0;
    }
    split = g_malloc(material);
    if (qcrypto_pbkdf2(luks->hash_alg, (const uint8_t *)password, strlen(password),
                       s->salt, LUKS_SALT_LEN, s->iterations, derived, mklen,
                       errp) < 0 ||
        readfunc(block, (size_t)s->key_offset * LUKS_SECTOR, split, material, opaque,
                 errp) < 0 ||
        slot_crypt(luks, derived, split, material, false, errp) < 0 ||
        qcrypto_afsplit_decode(luks->hash_alg, mklen, s->stripes, split, mk, errp) < 0 ||
        qcrypto_pbkdf2(luks->hash_alg, mk, mklen, h->mk_digest_salt, LUKS_SALT_LEN,
                       h->mk_digest_iterations, digest, LUKS_DIGEST_LEN, errp) < 0) {
        goto out;
    }
    ret = memcmp(digest, h->mk_digest, LUKS_DIGEST_LEN) == 0;
out:
    qcrypto_wipe(derived, sizeof(derived));
    qcrypto_wipe(split, material);
    return ret;
}

/* Unlock with @password: the slot index, -ENOENT when none fits, -1 on error. */
static int find_key(QCryptoBlock *block, const char *password, uint8_t *mk,
                    QCryptoBlockReadFunc readfunc, void *opaque, GError **errp)
{
    for (int i = 0; i < NSLOTS; i++) {
        int r = slot_load_key(block, i, password, mk, readfunc, opaque, errp);
        if (r < 0) {
            return -1;
        }
        if (r) {
            return i;
        }
    }
    return -ENOENT;
}

static uint64_t iterations_for(QCryptoHashAlgorithm hash, size_t nkey, size_t nout,
                               uint64_t ms, GError **errp)
{
    uint64_t iters = qcrypto_pbkdf2_count_iters_ms(hash, nkey, nout, ms, errp);

    return iters ? MAX(iters, (uint64_t)LUKS_MIN_ITERS) : 0;
}

/* Fill slot @i with the master key under @password; writes its key material
 * (the header is written by the caller). */
static int slot_store_key(QCryptoBlock *block, int i, const char *password,
                          uint64_t iter_time, QCryptoBlockWriteFunc writefunc,
                          void *opaque, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    LuksSlot *s = &h->slots[i];
    size_t mklen = h->master_key_len, material = split_key_bytes(h);
    g_autofree uint8_t *split = g_malloc0(material);
    uint8_t derived[64];
    uint64_t iters;
    int ret = -1;

    iters = iterations_for(luks->hash_alg, strlen(password), mklen, iter_time, errp);
    if (!iters) {
        goto out;
    }
    if (qcrypto_random_bytes(s->salt, LUKS_SALT_LEN, errp) < 0 ||
        qcrypto_pbkdf2(luks->hash_alg, (const uint8_t *)password, strlen(password),
                       s->salt, LUKS_SALT_LEN, iters, derived, mklen, errp) < 0 ||
        qcrypto_afsplit_encode(luks->hash_alg, mklen, QCRYPTO_BLOCK_LUKS_STRIPES,
                               luks->master_key, split, errp) < 0 ||
        slot_crypt(luks, derived, split, material, true, errp) < 0 ||
        writefunc(block, (size_t)s->key_offset * LUKS_SECTOR, split, material, opaque,
                  errp) < 0) {
        goto out;
    }
    s->iterations = iters;
    s->stripes = QCRYPTO_BLOCK_LUKS_STRIPES;
    ret = 0;
out:
    qcrypto_wipe(derived, sizeof(derived));
    qcrypto_wipe(split, material);
    return ret;
}

static int store_header(QCryptoBlock *block, QCryptoBlockWriteFunc writefunc,
                        void *opaque, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    uint8_t buf[LUKS_HEADER_LEN];

    header_encode(&luks->header, buf);
    return writefunc(block, 0, buf, sizeof(buf), opaque, errp);
}

/* ---- payload cipher ---- */

static int setup_payload(QCryptoBlock *block, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;

    return qcrypto_block_init_cipher(block, luks->cipher_alg, luks->cipher_mode,
                                     luks->master_key, luks->header.master_key_len,
                                     luks->ivgen_alg, luks->ivgen_cipher_alg,
                                     luks->ivgen_hash_alg, errp);
}

static QCryptoBlock *luks_block_new(void)
{
    QCryptoBlock *block = g_new0(QCryptoBlock, 1);

    block->format = QCRYPTO_BLOCK_FORMAT_LUKS;
    block->opaque = g_new0(QCryptoBlockLUKS, 1);
    return block;
}

QCryptoBlock *qcrypto_block_luks_open(const char *key_secret, const char *prefix,
                                      QCryptoBlockReadFunc readfunc, void *opaque,
                                      unsigned flags, GError **errp)
{
    QCryptoBlock *block = luks_block_new();
    QCryptoBlockLUKS *luks = block->opaque;
    uint8_t buf[LUKS_HEADER_LEN];
    char *password = NULL;
    int slot;

    if (!(flags & QCRYPTO_BLOCK_OPEN_NO_IO) && !key_secret) {
        error_setg(errp, "Parameter '%skey-secret' is required for cipher", prefix);
        goto fail;
    }
    if (readfunc(block, 0, buf, sizeof(buf), opaque, errp) < 0) {
        goto fail;
    }
    if (memcmp(buf, LUKS_MAGIC, LUKS_MAGIC_LEN)) {
        error_setg(errp, "Volume is not in LUKS format");
        goto fail;
    }
    header_decode(buf, &luks->header);
    if (check_header(luks, errp) < 0) {
        goto fail;
    }
    block->payload_offset = (uint64_t)luks->header.payload_offset * LUKS_SECTOR;
    if (flags & QCRYPTO_BLOCK_OPEN_NO_IO) {
        return block;
    }
    password = qcrypto_secret_lookup_as_utf8(key_secret, errp);
    if (!password) {
        goto fail;
    }
    luks->master_key = g_malloc0(luks->header.master_key_len);
    slot = find_key(block, password, luks->master_key, readfunc, opaque, errp);
    qcrypto_secret_wipe_free(password, strlen(password));
    if (slot == -ENOENT) {
        error_setg(errp, "Invalid password, cannot unlock any keyslot");
        goto fail;
    }
    if (slot < 0 || setup_payload(block, errp) < 0) {
        goto fail;
    }
    return block;
fail:
    qcrypto_block_free(block);
    return NULL;
}

/* ---- creation ---- */

typedef struct LuksLayout {
    size_t mklen;
    uint32_t slot_sectors;      /* one slot's key material, aligned */
    uint32_t payload_sectors;
} LuksLayout;

static int resolve_create_opts(const QCryptoBlockCreateOptions *opts, const char *prefix,
                               QCryptoBlockLUKS *luks, LuksLayout *lay, GError **errp)
{
    size_t key_len, split;

    luks->cipher_alg = opts->cipher_alg >= 0 ? opts->cipher_alg
                                             : QCRYPTO_CIPHER_ALG_AES_256;
    luks->cipher_mode = opts->cipher_mode >= 0 ? opts->cipher_mode
                                               : QCRYPTO_CIPHER_MODE_XTS;
    luks->ivgen_alg = opts->ivgen_alg >= 0 ? opts->ivgen_alg : QCRYPTO_IVGEN_ALG_PLAIN64;
    luks->hash_alg = opts->hash_alg >= 0 ? opts->hash_alg : QCRYPTO_HASH_ALG_SHA256;
    if (!luks_cipher_name(luks->cipher_alg)) {
        error_setg(errp, "Algorithm '%s' not supported",
                   QCryptoCipherAlgorithm_str[luks->cipher_alg]);
        return -1;
    }
    if (!qcrypto_cipher_supports(luks->cipher_alg, luks->cipher_mode)) {
        error_setg(errp, "Cipher '%s' in '%s' mode is not supported",
                   QCryptoCipherAlgorithm_str[luks->cipher_alg],
                   QCryptoCipherMode_str[luks->cipher_mode]);
        return -1;
    }
    if (luks->ivgen_alg == QCRYPTO_IVGEN_ALG_ESSIV) {
        luks->ivgen_hash_alg = opts->ivgen_hash_alg >= 0 ? opts->ivgen_hash_alg
                                                         : QCRYPTO_HASH_ALG_SHA256;
        luks->has_ivgen_hash = true;
        if (luks_essiv_cipher(luks->cipher_alg, luks->ivgen_hash_alg,
                              &luks->ivgen_cipher_alg, errp) < 0) {
            return -1;
        }
    } else {
        luks->ivgen_cipher_alg = luks->cipher_alg;
        luks->ivgen_hash_alg = QCRYPTO_HASH_ALG_SHA256;
    }
    key_len = qcrypto_cipher_get_key_len(luks->cipher_alg);
    lay->mklen = luks->cipher_mode == QCRYPTO_CIPHER_MODE_XTS ? key_len * 2 : key_len;
    split = DIV_ROUND_UP(lay->mklen * QCRYPTO_BLOCK_LUKS_STRIPES, LUKS_SECTOR);
    lay->slot_sectors = QEMU_ALIGN_UP(split, LUKS_ALIGN / LUKS_SECTOR);
    lay->payload_sectors = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR +
                           lay->slot_sectors * NSLOTS;
    return 0;
}

int qcrypto_block_luks_payload_len(const QCryptoBlockCreateOptions *opts,
                                   const char *prefix, size_t *len, GError **errp)
{
    QCryptoBlockLUKS luks = { 0 };
    LuksLayout lay;
    char *password;

    /* as QEMU's: the header is sized for a secret that must exist */
    if (!opts->key_secret) {
        error_setg(errp, "Parameter '%skey-secret' is required for cipher", prefix);
        return -1;
    }
    password = qcrypto_secret_lookup_as_utf8(opts->key_secret, errp);
    if (!password) {
        return -1;
    }
    qcrypto_secret_wipe_free(password, strlen(password));
    if (resolve_create_opts(opts, prefix, &luks, &lay, errp) < 0) {
        return -1;
    }
    *len = (size_t)lay.payload_sectors * LUKS_SECTOR;
    return 0;
}

QCryptoBlock *qcrypto_block_luks_create(const QCryptoBlockCreateOptions *opts,
                                        const char *prefix,
                                        QCryptoBlockInitFunc initfunc,
                                        QCryptoBlockWriteFunc writefunc, void *opaque,
                                        GError **errp)
{
    QCryptoBlock *block = luks_block_new();
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    uint64_t iter_time = opts->iter_time == -1 ? QCRYPTO_BLOCK_LUKS_DEFAULT_ITER_TIME_MS
                                               : (uint64_t)opts->iter_time;
    g_autofree char *uuid = NULL;
    char *password = NULL;
    LuksLayout lay;
    uint64_t iters;

    if (!opts->key_secret) {
        error_setg(errp, "Parameter '%skey-secret' is required for cipher", prefix);
        goto fail;
    }
    if (resolve_create_opts(opts, prefix, luks, &lay, errp) < 0) {
        goto fail;
    }
    password = qcrypto_secret_lookup_as_utf8(opts->key_secret, errp);
    if (!password) {
        goto fail;
    }
    h->version = LUKS_VERSION;
    g_strlcpy(h->cipher_name, luks_cipher_name(luks->cipher_alg), sizeof(h->cipher_name));
    if (luks->has_ivgen_hash) {
        g_snprintf(h->cipher_mode, sizeof(h->cipher_mode), "%s-%s:%s",
                   QCryptoCipherMode_str[luks->cipher_mode],
                   QCryptoIVGenAlgorithm_str[luks->ivgen_alg],
                   QCryptoHashAlgorithm_str[luks->ivgen_hash_alg]);
    } else {
        g_snprintf(h->cipher_mode, sizeof(h->cipher_mode), "%s-%s",
                   QCryptoCipherMode_str[luks->cipher_mode],
                   QCryptoIVGenAlgorithm_str[luks->ivgen_alg]);
    }
    g_strlcpy(h->hash_spec, QCryptoHashAlgorithm_str[luks->hash_alg],
              sizeof(h->hash_spec));
    h->master_key_len = lay.mklen;
    h->payload_offset = lay.payload_sectors;
    uuid = g_uuid_string_random();
    g_strlcpy(h->uuid, uuid, sizeof(h->uuid));
    for (int i = 0; i < NSLOTS; i++) {
        h->slots[i].active = LUKS_SLOT_DISABLED;
        h->slots[i].key_offset = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR +
                                 i * lay.slot_sectors;
        h->slots[i].stripes = QCRYPTO_BLOCK_LUKS_STRIPES;
    }
    luks->master_key = g_malloc(lay.mklen);
    if (qcrypto_random_bytes(luks->master_key, lay.mklen, errp) < 0 ||
        qcrypto_random_bytes(h->mk_digest_salt, LUKS_SALT_LEN, errp) < 0) {
        goto fail;
    }
    /* the master key check costs an eighth of a slot, as cryptsetup's */
    iters = qcrypto_pbkdf2_count_iters_ms(luks->hash_alg, lay.mklen, LUKS_DIGEST_LEN,
                                          iter_time, errp);
    if (!iters) {
        goto fail;
    }
    h->mk_digest_iterations = MAX(iters / 8, (uint64_t)LUKS_MIN_ITERS);
    if (qcrypto_pbkdf2(luks->hash_alg, luks->master_key, lay.mklen, h->mk_digest_salt,
                       LUKS_SALT_LEN, h->mk_digest_iterations, h->mk_digest,
                       LUKS_DIGEST_LEN, errp) < 0 ||
        setup_payload(block, errp) < 0) {
        goto fail;
    }
    block->payload_offset = (uint64_t)lay.payload_sectors * LUKS_SECTOR;
    if (initfunc(block, block->payload_offset, opaque, errp) < 0 ||
        slot_store_key(block, 0, password, iter_time, writefunc, opaque, errp) < 0) {
        goto fail;
    }
    h->slots[0].active = LUKS_SLOT_ENABLED;
    if (store_header(block, writefunc, opaque, errp) < 0) {
        goto fail;
    }
    qcrypto_secret_wipe_free(password, strlen(password));
    return block;
fail:
    if (password) {
        qcrypto_secret_wipe_free(password, strlen(password));
    }
    qcrypto_block_free(block);
    return NULL;
}

/* ---- amend: adding and erasing key slots ---- */

static int count_active(LuksHeader *h)
{
    int n = 0;

    for (int i = 0; i < NSLOTS; i++) {
        n += h->slots[i].active == LUKS_SLOT_ENABLED;
    }
    return n;
}

/* Erase slot @i: the header stops naming it first, then its material is overwritten
 * with random bytes, each step made stable before the next. */
static int erase_slot(QCryptoBlock *block, int i, QCryptoBlockWriteFunc writefunc,
                      QCryptoBlockFlushFunc flushfunc, void *opaque, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    LuksSlot *s = &h->slots[i];
    size_t material = split_key_bytes(h);
    g_autofree uint8_t *garbage = g_malloc(material);

    s->active = LUKS_SLOT_DISABLED;
    s->iterations = 0;
    memset(s->salt, 0, LUKS_SALT_LEN);
    if (store_header(block, writefunc, opaque, errp) < 0 ||
        flushfunc(block, opaque, errp) < 0 ||
        qcrypto_random_bytes(garbage, material, errp) < 0 ||
        writefunc(block, (size_t)s->key_offset * LUKS_SECTOR, garbage, material, opaque,
                  errp) < 0) {
        return -1;
    }
    return flushfunc(block, opaque, errp);
}

/* Write the master key under @password into slot @i and activate it (stable). */
static int add_slot(QCryptoBlock *block, int i, const char *password, uint64_t iter_time,
                    QCryptoBlockWriteFunc writefunc, QCryptoBlockFlushFunc flushfunc,
                    void *opaque, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksSlot saved = luks->header.slots[i];

    if (slot_store_key(block, i, password, iter_time, writefunc, opaque, errp) < 0 ||
        flushfunc(block, opaque, errp) < 0) {
        luks->header.slots[i] = saved;
        return -1;
    }
    luks->header.slots[i].active = LUKS_SLOT_ENABLED;
    if (store_header(block, writefunc, opaque, errp) < 0) {
        return -1;
    }
    return flushfunc(block, opaque, errp);
}

static int amend_add(QCryptoBlock *block, const QCryptoBlockAmendOptions *o,
                     QCryptoBlockWriteFunc writefunc, QCryptoBlockFlushFunc flushfunc,
                     void *opaque, bool force, GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    uint64_t iter_time = o->iter_time == -1 ? QCRYPTO_BLOCK_LUKS_DEFAULT_ITER_TIME_MS
                                            : (uint64_t)o->iter_time;
    char *password;
    int slot = -1, spare = -1, ret = -1;

    if (!o->new_secret) {
        error_setg(errp, "'new-secret' is required to activate a keyslot");
        return -1;
    }
    if (o->old_secret) {
        error_setg(errp, "'old-secret' must not be given when activating keyslots");
        return -1;
    }
    if (o->has_keyslot) {
        slot = o->keyslot;
        if (h->slots[slot].active == LUKS_SLOT_ENABLED && !force) {
            error_setg(errp, "Refusing to overwrite active keyslot %i - please erase it "
                       "first", slot);
            return -1;
        }
    } else {
        for (int i = 0; i < NSLOTS && slot < 0; i++) {
            if (h->slots[i].active != LUKS_SLOT_ENABLED) {
                slot = i;
            }
        }
        if (slot < 0) {
            error_setg(errp, "Can't add a keyslot - all keyslots are in use");
            return -1;
        }
    }
    if (!luks->master_key) {
        error_setg(errp, "The image must be opened with its key to add a keyslot");
        return -1;
    }
    password = qcrypto_secret_lookup_as_utf8(o->new_secret, errp);
    if (!password) {
        return -1;
    }
    if (h->slots[slot].active == LUKS_SLOT_ENABLED) {
        /*
         * Overwriting a working slot in place: a crash in the middle would leave
         * it broken. Put the new key into a free slot first, so that some slot
         * works at every moment, and drop that copy at the end.
         */
        for (int i = 0; i < NSLOTS && spare < 0; i++) {
            if (h->slots[i].active != LUKS_SLOT_ENABLED) {
                spare = i;
            }
        }
        if (spare >= 0 && add_slot(block, spare, password, iter_time, writefunc,
                                   flushfunc, opaque, errp) < 0) {
            goto out;
        }
    }
    if (add_slot(block, slot, password, iter_time, writefunc, flushfunc, opaque,
                 errp) < 0) {
        goto out;
    }
    if (spare >= 0 && erase_slot(block, spare, writefunc, flushfunc, opaque, errp) < 0) {
        goto out;
    }
    ret = 0;
out:
    qcrypto_secret_wipe_free(password, strlen(password));
    return ret;
}

static int amend_erase(QCryptoBlock *block, const QCryptoBlockAmendOptions *o,
                       QCryptoBlockReadFunc readfunc, QCryptoBlockWriteFunc writefunc,
                       QCryptoBlockFlushFunc flushfunc, void *opaque, bool force,
                       GError **errp)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    g_autofree uint8_t *mk = g_malloc0(h->master_key_len);
    char *password = NULL;
    bool match[NSLOTS] = { false };
    int nmatch = 0, ret = -1;

    if (o->new_secret) {
        error_setg(errp, "'new-secret' must not be given when erasing keyslots");
        return -1;
    }
    if (!o->has_keyslot && !o->old_secret) {
        error_setg(errp, "To erase keyslot(s), either explicit keyslot index or the "
                   "password currently contained in them must be given");
        return -1;
    }
    if (o->old_secret) {
        password = qcrypto_secret_lookup_as_utf8(o->old_secret, errp);
        if (!password) {
            return -1;
        }
    }
    if (o->has_keyslot) {
        int i = o->keyslot;

        if (h->slots[i].active != LUKS_SLOT_ENABLED) {
            if (!force) {
                error_setg(errp, "Given keyslot %d is already erased (inactive) ", i);
                goto out;
            }
        } else if (password) {
            int r = slot_load_key(block, i, password, mk, readfunc, opaque, errp);
            if (r < 0) {
                goto out;
            }
            if (!r) {
                error_setg(errp, "Given keyslot %d doesn't contain the given old "
                           "password for erase operation", i);
                goto out;
            }
        }
        if (!force && h->slots[i].active == LUKS_SLOT_ENABLED && count_active(h) == 1) {
            error_setg(errp, "Attempt to erase the only active keyslot %d which will "
                       "erase all the data in the image irreversibly - refusing "
                       "operation", i);
            goto out;
        }
        match[i] = true;
        nmatch = 1;
    } else {
        for (int i = 0; i < NSLOTS; i++) {
            int r = slot_load_key(block, i, password, mk, readfunc, opaque, errp);
            if (r < 0) {
                goto out;
            }
            match[i] = r;
            nmatch += r;
        }
        if (!nmatch) {
            error_setg(errp, "No keyslots match given (old) password for erase "
                       "operation");
            goto out;
        }
        if (!force && nmatch == count_active(h)) {
            error_setg(errp, "All the active keyslots match the (old) password that was "
                       "given and erasing them will erase all the data in the image "
                       "irreversibly - refusing operation");
            goto out;
        }
    }
    for (int i = 0; i < NSLOTS; i++) {
        if (match[i] && erase_slot(block, i, writefunc, flushfunc, opaque, errp) < 0) {
            goto out;
        }
    }
    ret = 0;
out:
    qcrypto_wipe(mk, h->master_key_len);
    if (password) {
        qcrypto_secret_wipe_free(password, strlen(password));
    }
    return ret;
}

int qcrypto_block_luks_amend(QCryptoBlock *block, const QCryptoBlockAmendOptions *o,
                             const char *prefix, QCryptoBlockReadFunc readfunc,
                             QCryptoBlockWriteFunc writefunc,
                             QCryptoBlockFlushFunc flushfunc, void *opaque, bool force,
                             GError **errp)
{
    if (o->has_keyslot && (o->keyslot < 0 || o->keyslot >= NSLOTS)) {
        error_setg(errp, "Invalid keyslot %u specified, must be between 0 and %d",
                   (unsigned)o->keyslot, NSLOTS - 1);
        return -1;
    }
    if (o->state == 1) {
        return amend_add(block, o, writefunc, flushfunc, opaque, force, errp);
    }
    return amend_erase(block, o, readfunc, writefunc, flushfunc, opaque, force, errp);
}

/* ---- info ---- */

JsonObject *qcrypto_block_luks_get_info(QCryptoBlock *block, bool with_format)
{
    QCryptoBlockLUKS *luks = block->opaque;
    LuksHeader *h = &luks->header;
    JsonObject *o = json_object_new();
    JsonArray *slots = json_array_new();
    size_t key_len = qcrypto_cipher_get_key_len(luks->cipher_alg);

    json_object_set_string_member(o, "ivgen-alg", QCryptoIVGenAlgorithm_str[luks->ivgen_alg]);
    json_object_set_string_member(o, "hash-alg", QCryptoHashAlgorithm_str[luks->hash_alg]);
    (void)key_len;
    json_object_set_string_member(o, "cipher-alg",
                                  QCryptoCipherAlgorithm_str[luks->cipher_alg]);
    json_object_set_string_member(o, "uuid", h->uuid);
    if (luks->has_ivgen_hash) {
        json_object_set_string_member(o, "ivgen-hash-alg",
                                      QCryptoHashAlgorithm_str[luks->ivgen_hash_alg]);
    }
    if (with_format) {
        json_object_set_string_member(o, "format", "luks");
    }
    json_object_set_string_member(o, "cipher-mode",
                                  QCryptoCipherMode_str[luks->cipher_mode]);
    for (int i = 0; i < NSLOTS; i++) {
        LuksSlot *s = &h->slots[i];
        JsonObject *so = json_object_new();
        bool active = s->active == LUKS_SLOT_ENABLED;

        json_object_set_boolean_member(so, "active", active);
        if (active) {
            json_object_set_int_member(so, "iters", s->iterations);
        }
        json_object_set_int_member(so, "key-offset", (int64_t)s->key_offset * LUKS_SECTOR);
        if (active) {
            json_object_set_int_member(so, "stripes", s->stripes);
        }
        json_array_add_object_element(slots, so);
    }
    json_object_set_array_member(o, "slots", slots);
    json_object_set_int_member(o, "payload-offset",
                               (int64_t)h->payload_offset * LUKS_SECTOR);
    json_object_set_int_member(o, "master-key-iters", h->mk_digest_iterations);
    return o;
}

void qcrypto_block_luks_free(QCryptoBlock *block)
{
    QCryptoBlockLUKS *luks = block->opaque;

    if (luks) {
        if (luks->master_key) {
            qcrypto_secret_wipe_free(luks->master_key, luks->header.master_key_len);
        }
        qcrypto_wipe(luks, sizeof(*luks));
        g_free(luks);
    }
}
