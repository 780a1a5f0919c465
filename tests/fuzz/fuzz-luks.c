/*
 * Fuzz target: LUKS headers from the fuzzer's bytes (held in a memfd), as a luks
 * file or, when the bytes start with qcow2's magic, as a LUKS-encrypted qcow2
 * image. The header is always opened without a key (qemu-img info's path) and
 * its info built; when every iteration count in it is small, the image is also
 * unlocked with the key "fuzz" and read, written, and given and stripped of a
 * key slot. Unlocking a header with large counts is slow by design (that is
 * what PBKDF2 is for), so the fuzzer is kept off it; hostile counts are bounded
 * at open (iotest 180 covers them).
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "qemu/objects.h"
#include "fuzz-memfd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHEAP_ITERS 20000
#define LUKS_HDR 592

static int image_fd = -1;

/* Are the PBKDF2 counts of the LUKS header at @h small enough to unlock it? */
static bool luks_cheap(const uint8_t *h, size_t avail)
{
    if (avail < LUKS_HDR || memcmp(h, "LUKS\xba\xbe", 6) || ldl_be(h + 164) > CHEAP_ITERS) {
        return false;
    }
    for (int i = 0; i < 8; i++) {
        const uint8_t *s = h + 208 + 48 * i;
        if (ldl_be(s) == 0x00AC71F3 && ldl_be(s + 4) > CHEAP_ITERS) {
            return false;
        }
    }
    return true;
}

/* The LUKS header of a qcow2 image, through its crypto header extension. */
static const uint8_t *qcow2_luks_header(const uint8_t *d, size_t size, size_t *avail)
{
    uint32_t hlen = size >= 104 && ldl_be(d + 4) >= 3 ? ldl_be(d + 100) : 72;

    for (uint64_t off = hlen; off + 8 <= size && off < 65536;) {
        uint32_t magic = ldl_be(d + off), len = ldl_be(d + off + 4);
        if (magic == 0) {
            break;
        }
        if (magic == 0x0537be77 && len == 16 && off + 24 <= size) {
            uint64_t at = ldq_be(d + off + 8);
            if (at < size) {
                *avail = size - at;
                return d + at;
            }
            return NULL;
        }
        off += 8 + QEMU_ALIGN_UP((uint64_t)len, 8);
    }
    return NULL;
}

static void exercise(BlockDriverState *bs, const char *prefix)
{
    uint8_t buf[4096];
    int64_t len = bdrv_getlength(bs);
    g_autoptr(JsonObject) add = json_object_new();
    g_autoptr(JsonObject) del = json_object_new();
    g_autoptr(GError) err = NULL, err2 = NULL;
    g_autofree char *k_state = g_strconcat(prefix, "state", NULL);
    g_autofree char *k_new = g_strconcat(prefix, "new-secret", NULL);
    g_autofree char *k_iter = g_strconcat(prefix, "iter-time", NULL);
    g_autofree char *k_slot = g_strconcat(prefix, "keyslot", NULL);

    if (len <= 0) {
        return;
    }
    bdrv_pread(bs, 0, MIN(len, (int64_t)sizeof(buf)), buf, 0);
    memset(buf, 0x5a, sizeof(buf));
    bdrv_pwrite(bs, len / 2, MIN(len - len / 2, 1536), buf, 0);
    bdrv_pread(bs, len / 2, MIN(len - len / 2, 1536), buf, 0);
    opts_set_str(add, k_state, "active");
    opts_set_str(add, k_new, "fz");
    opts_set_str(add, k_iter, "1");
    opts_set_str(add, k_slot, "7");
    bdrv_amend(bs, add, true, &err);
    opts_set_str(del, k_state, "inactive");
    opts_set_str(del, k_slot, "7");
    bdrv_amend(bs, del, true, &err2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    bool qcow2 = size >= 4 && ldl_be(data) == 0x514649fbU;
    const char *prefix = qcow2 ? "encrypt." : "";
    const uint8_t *hdr = data;
    size_t avail = size;
    g_autofree char *img = NULL, *secret = NULL;
    g_autoptr(GError) err = NULL;
    BlockDriverState *bs;

    if (!init) {
        bool help;
        user_object_add_cmdline("secret,id=fz,data=fuzz", &help, NULL);
        init = true;
    }
    if (size > 16 * MiB || fuzz_qcow2_l1_too_big(data, size)) {
        return 0;
    }
    fuzz_memfd_fill(&image_fd, "fuzz-luks", data, size);
    img = g_strdup_printf("/proc/self/fd/%d", image_fd);
    secret = g_strconcat(prefix, "key-secret", NULL);
    for (int pass = 0; pass < 2; pass++) {
        g_autoptr(JsonObject) opts = json_object_new();

        if (pass == 1) {
            /* legacy AES (crypt_method 1) has no PBKDF: always cheap */
            bool aes = qcow2 && size >= 36 && ldl_be(data + 32) == 1;
            if (qcow2 && !aes) {
                hdr = qcow2_luks_header(data, size, &avail);
            }
            if (!aes && (!hdr || !luks_cheap(hdr, avail))) {
                break;
            }
        }
        opts_set_str(opts, "driver", qcow2 ? "qcow2" : "luks");
        opts_set_str_path(opts, "file.driver", "file");
        opts_set_str_path(opts, "file.filename", img);
        opts_set_str_path(opts, "file.locking", "off");
        if (pass == 1) {
            opts_set_str_path(opts, secret, "fz");
        }
        g_clear_error(&err);
        bs = bdrv_open(NULL, opts, pass ? BDRV_O_RDWR | BDRV_O_NO_BACKING
                                        : BDRV_O_NO_IO | BDRV_O_NO_BACKING, &err);
        if (!bs) {
            continue;
        }
        if (pass == 0) {
            g_autoptr(GError) e = NULL;
            JsonNode *info = bdrv_get_specific_info(bs, &e);
            if (info) {
                json_node_unref(info);
            }
        } else {
            exercise(bs, prefix);
        }
        bdrv_unref(bs);
    }
    return 0;
}
