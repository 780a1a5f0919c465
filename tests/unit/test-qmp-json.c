/*
 * Unit tests for the QMP input stream (storage-daemon/qmp-json.c): values split
 * across reads and sharing a read, QEMU's JSON extensions, error texts, and
 * recovery after a lexer error.
 */
#include "qemu/osdep.h"
#include "qemu/option.h"
#include "storage-daemon/qmp-json.h"

typedef struct Collected {
    GPtrArray *texts;       /* serialised values, or "ERR: message" */
} Collected;

static void collect(void *opaque, JsonNode *value, GError *err)
{
    Collected *c = opaque;

    if (value) {
        g_ptr_array_add(c->texts, json_node_to_string_qemu(value, false));
        json_node_unref(value);
    } else {
        g_ptr_array_add(c->texts, g_strdup_printf("ERR: %s", err->message));
    }
}

static char *feed_all(const char *const *chunks)
{
    Collected c = { g_ptr_array_new_with_free_func(g_free) };
    JsonStream *js = json_stream_new(collect, &c);
    char *joined;

    for (const char *const *p = chunks; *p; p++) {
        json_stream_feed(js, *p, strlen(*p));
    }
    json_stream_free(js);
    g_ptr_array_add(c.texts, NULL);
    joined = g_strjoinv(" | ", (char **)c.texts->pdata);
    g_ptr_array_free(c.texts, TRUE);
    return joined;
}

static void test_split_and_shared(void)
{
    const char *const split[] = { "{\"exe", "cute\": \"x\",", "\n \"id\": 1}", NULL };
    const char *const shared[] = { "{\"a\": 1} [2] \"s\" 3 ", NULL };
    g_autofree char *a = feed_all(split);
    g_autofree char *b = feed_all(shared);

    g_assert_cmpstr(a, ==, "{\"execute\": \"x\", \"id\": 1}");
    g_assert_cmpstr(b, ==, "{\"a\": 1} | [2] | \"s\" | 3");
}

static void test_extensions(void)
{
    const char *const in[] = { "{'a': 'it\\'s', \"b\": \"\\u00e9\\u0000\"}", NULL };
    g_autofree char *out = feed_all(in);

    g_assert_cmpstr(out, ==, "{\"a\": \"it's\", \"b\": \"\\u00E9\\u0000\"}");
}

static void test_errors(void)
{
    const char *const in[] = {
        "{\"a\": }", "{\"a\" 1}", "{\"a\": 1, \"a\": 2}", "{\"a\": tru}", "{1: 2}",
        "[1 2]", "}", NULL,
    };
    g_autofree char *out = feed_all(in);

    g_assert_cmpstr(out, ==,
                    "ERR: JSON parse error, expecting value | "
                    "ERR: JSON parse error, missing : in object pair | "
                    "ERR: JSON parse error, duplicate key | "
                    "ERR: JSON parse error, invalid keyword 'tru' | "
                    "ERR: JSON parse error, key is not a string in object | "
                    "ERR: JSON parse error, expected separator in list | "
                    "ERR: JSON parse error, expecting value");
}

static void test_recovery(void)
{
    const char *const in[] = { "{\"a\": 01} {\"b\": 2}\n", "@ {\"c\": 3}", NULL };
    g_autofree char *out = feed_all(in);

    /*
     * The bad token includes the byte that broke it; the value being collected
     * is dropped and lexing resumes at the next whitespace or structural
     * character, so the stray '}' is an error of its own (as in QEMU 7.2).
     */
    g_assert_cmpstr(out, ==, "ERR: JSON parse error, stray '01' | "
                    "ERR: JSON parse error, expecting value | {\"b\": 2} | "
                    "ERR: JSON parse error, stray '@' | {\"c\": 3}");
}

static void test_parse_one(void)
{
    g_autoptr(GError) err = NULL;
    const char *good = "{\"a\": [1, 2.5, null, true]}";
    JsonNode *n = qmp_json_parse(good, strlen(good), &err);
    g_autofree char *text = NULL;

    g_assert_no_error(err);
    text = json_node_to_string_qemu(n, false);
    g_assert_cmpstr(text, ==, "{\"a\": [1, 2.5, null, true]}");
    json_node_unref(n);
    n = qmp_json_parse("{\"a\": 1", 7, &err);
    g_assert_null(n);
    g_assert_cmpstr(err->message, ==, "JSON parse error, premature EOI");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp-json/split-and-shared", test_split_and_shared);
    g_test_add_func("/qmp-json/extensions", test_extensions);
    g_test_add_func("/qmp-json/errors", test_errors);
    g_test_add_func("/qmp-json/recovery", test_recovery);
    g_test_add_func("/qmp-json/parse-one", test_parse_one);
    return g_test_run();
}
