/*
 * Unit tests of the payload encryption (crypto/block-payload.c): a streamed
 * encryption gives the same bytes as one in a piece, hands them to its sink in
 * order, stops at a sink's error, and decrypts back; split requests too.
 */
#include "qemu/osdep.h"
#include "crypto/block.h"

static QCryptoBlock *new_block(QCryptoIVGenAlgorithm ivgen)
{
    QCryptoBlock *b = g_new0(QCryptoBlock, 1);
    uint8_t key[64];

    for (unsigned i = 0; i < sizeof(key); i++) {
        key[i] = i * 7 + 3;
    }
    b->format = QCRYPTO_BLOCK_FORMAT_QCOW;
    g_assert_cmpint(qcrypto_block_init_cipher(b, QCRYPTO_CIPHER_ALG_AES_256,
                                              QCRYPTO_CIPHER_MODE_XTS, key, sizeof(key),
                                              ivgen, QCRYPTO_CIPHER_ALG_AES_256,
                                              QCRYPTO_HASH_ALG_SHA256, NULL), ==, 0);
    return b;
}

typedef struct Sink {
    GByteArray *got;    /* what the sink was handed, in order */
    unsigned calls;
    unsigned fail_at;   /* fail the call with this number (from 1), 0: never */
    const uint8_t *dst;
} Sink;

static int sink(void *opaque, size_t done, const uint8_t *buf, size_t len)
{
    Sink *s = opaque;

    s->calls++;
    if (s->calls == s->fail_at) {
        return -ENOSPC;
    }
    g_assert_cmpuint(done, ==, s->got->len);        /* in order, no gap */
    g_assert_true(buf == s->dst + done);
    g_assert_cmpuint(len, >, 0);
    g_byte_array_append(s->got, buf, len);
    return 0;
}

static uint8_t *pattern(size_t len)
{
    uint8_t *p = g_malloc(len);

    for (size_t i = 0; i < len; i++) {
        p[i] = (i * 131 + (i >> 9)) & 0xff;
    }
    return p;
}

static void check_stream(QCryptoIVGenAlgorithm ivgen)
{
    static const size_t lens[] = { 512, 4096, 128 * KiB, 256 * KiB, 300 * KiB + 512,
                                   1 * MiB, 5 * MiB + 1536, 16 * MiB };
    g_autoptr(QCryptoBlock) b = new_block(ivgen);

    for (unsigned i = 0; i < G_N_ELEMENTS(lens); i++) {
        size_t len = lens[i];
        uint64_t off = 3 * MiB + 512 * i;
        g_autofree uint8_t *src = pattern(len);
        g_autofree uint8_t *want = g_malloc(len);
        g_autofree uint8_t *dst = g_malloc(len);
        Sink s = { .got = g_byte_array_new(), .dst = dst };

        g_assert_cmpint(qcrypto_block_encrypt_to(b, off, src, want, len, NULL), ==, 0);
        g_assert_cmpint(qcrypto_block_encrypt_stream(b, off, src, dst, len, sink, &s, NULL),
                        ==, 0);
        g_assert_cmpuint(s.got->len, ==, len);
        g_assert_true(memcmp(s.got->data, want, len) == 0);
        g_assert_true(memcmp(src, want, MIN(len, 512)) != 0);
        g_assert_cmpint(qcrypto_block_decrypt(b, off, s.got->data, len, NULL), ==, 0);
        g_assert_true(memcmp(s.got->data, src, len) == 0);
        g_byte_array_free(s.got, TRUE);
    }
}

static void test_stream_plain64(void)
{
    check_stream(QCRYPTO_IVGEN_ALG_PLAIN64);
}

static void test_stream_essiv(void)
{
    check_stream(QCRYPTO_IVGEN_ALG_ESSIV);
}

/* A sink's error ends the request with it; nothing is handed on after it. */
static void test_stream_sink_error(void)
{
    g_autoptr(QCryptoBlock) b = new_block(QCRYPTO_IVGEN_ALG_PLAIN64);
    size_t len = 4 * MiB;
    g_autofree uint8_t *src = pattern(len);
    g_autofree uint8_t *dst = g_malloc(len);

    for (unsigned fail_at = 1; fail_at <= 3; fail_at++) {
        Sink s = { .got = g_byte_array_new(), .dst = dst, .fail_at = fail_at };
        int ret = qcrypto_block_encrypt_stream(b, 0, src, dst, len, sink, &s, NULL);

        /* one part only when a single core does it all */
        g_assert_cmpuint(s.calls, <=, fail_at);
        g_assert_cmpint(ret, ==, s.calls == fail_at ? -ENOSPC : 0);
        g_assert_true(g_get_num_processors() == 1 || s.calls == fail_at);
        g_byte_array_free(s.got, TRUE);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/crypto/payload/stream-plain64", test_stream_plain64);
    g_test_add_func("/crypto/payload/stream-essiv", test_stream_essiv);
    g_test_add_func("/crypto/payload/stream-sink-error", test_stream_sink_error);
    return g_test_run();
}
