/*
 * Unit tests for util/cutils.c: size parsing with suffixes and both human size styles.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

static void test_strtosz_valid(void)
{
    static const struct { const char *in; uint64_t out; } cases[] = {
        { "0", 0 }, { "512", 512 }, { "64k", 65536 }, { "64K", 65536 },
        { "1M", 1048576 }, { "2G", 2147483648ULL }, { "1T", 1099511627776ULL },
        { "1P", 1125899906842624ULL }, { "1.5k", 1536 }, { "0x10", 16 },
        { "1b", 1 }, { "1B", 1 }, { "7E", 7ULL << 60 },
        { "9223372036854775807", INT64_MAX },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t v = 0;
        g_assert_cmpint(qemu_strtosz(cases[i].in, NULL, &v), ==, 0);
        g_assert_cmpuint(v, ==, cases[i].out);
    }
}

static void test_strtosz_invalid(void)
{
    static const char *const einval[] = { "", "-1", "1Q", "abc", "1.k", "1.5", "k" };
    static const char *const erange[] = { "9223372036854775808", "8E", "99999999999E" };
    uint64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(einval); i++) {
        g_assert_cmpint(qemu_strtosz(einval[i], NULL, &v), ==, -EINVAL);
    }
    for (size_t i = 0; i < ARRAY_SIZE(erange); i++) {
        g_assert_cmpint(qemu_strtosz(erange[i], NULL, &v), ==, -ERANGE);
    }
}

static void test_strtosz_end(void)
{
    const char *end;
    uint64_t v;

    g_assert_cmpint(qemu_strtosz("4k,rest", &end, &v), ==, 0);
    g_assert_cmpuint(v, ==, 4096);
    g_assert_cmpstr(end, ==, ",rest");
}

static void test_size_to_str(void)
{
    static const struct { uint64_t in; const char *out; } cases[] = {
        { 0, "0 B" }, { 512, "512 B" }, { 999, "999 B" }, { 1024, "1 KiB" },
        { 1536 * 1024, "1.5 MiB" }, { 1048576000, "0.977 GiB" },
        { 1073741824, "1 GiB" }, { 1074790400, "1 GiB" }, { 67108864, "64 MiB" },
        { 1ULL << 40, "1 TiB" },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *s = size_to_str(cases[i].in);
        g_assert_cmpstr(s, ==, cases[i].out);
    }
}

static void test_cvtstr(void)
{
    static const struct { double in; const char *out; } cases[] = {
        { 0, "0 bytes" }, { 1000, "1000 bytes" }, { 1536, "1.500 KiB" },
        { 1023 * 1024, "1023 KiB" }, { 1025 * 1024, "1.001 MiB" },
        { 3999, "3.905 KiB" }, { 1048576, "1 MiB" }, { 536870912, "512 MiB" },
        { 0.908331, "0.908331 bytes" }, { 634.7946021, "634.794602 bytes" },
    };
    char buf[64];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cvtstr(cases[i].in, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, cases[i].out);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cutils/strtosz/valid", test_strtosz_valid);
    g_test_add_func("/cutils/strtosz/invalid", test_strtosz_invalid);
    g_test_add_func("/cutils/strtosz/end", test_strtosz_end);
    g_test_add_func("/cutils/size_to_str", test_size_to_str);
    g_test_add_func("/cutils/cvtstr", test_cvtstr);
    return g_test_run();
}
