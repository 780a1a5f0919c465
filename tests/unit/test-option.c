/*
 * Unit tests for util/option.c: key=val parsing with ",," escapes, nesting dotted
 * keys, json: filenames, typed getters and QEMU-style JSON output.
 */
#include "qemu/osdep.h"
#include "qemu/option.h"

static void test_keyval_flat(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) o = keyval_parse_flat("a=1,b=x,,y,c.d=z", NULL, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(opts_peek_str(o, "a"), ==, "1");
    g_assert_cmpstr(opts_peek_str(o, "b"), ==, "x,y");
    g_assert_cmpstr(opts_peek_str(o, "c.d"), ==, "z");
}

static void test_keyval_implied(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) o = keyval_parse_flat("foo.img,size=1M", "filename", &err);

    g_assert_no_error(err);
    g_assert_cmpstr(opts_peek_str(o, "filename"), ==, "foo.img");
    g_assert_cmpstr(opts_peek_str(o, "size"), ==, "1M");
}

static void test_keyval_errors(void)
{
    g_autoptr(GError) err = NULL;
    JsonObject *o = keyval_parse_flat("a=1,noequals", NULL, &err);

    g_assert_null(o);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, "Invalid parameter 'noequals'");
}

static void test_crumple(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) o = keyval_parse("driver=qcow2,file.filename=x,"
                                           "data-file.filename=y,file.driver=file",
                                           NULL, &err);
    JsonObject *file;

    g_assert_no_error(err);
    file = opts_get_object(o, "file");
    g_assert_nonnull(file);
    g_assert_cmpstr(opts_peek_str(file, "filename"), ==, "x");
    g_assert_cmpstr(opts_peek_str(file, "driver"), ==, "file");
    g_assert_cmpstr(opts_peek_str(opts_get_object(o, "data-file"), "filename"), ==, "y");
}

static void test_crumple_conflict(void)
{
    g_autoptr(GError) err = NULL;
    JsonObject *o = keyval_parse("file=x,file.filename=y", NULL, &err);

    g_assert_null(o);
    g_assert_nonnull(err);
}

static void test_json_filename(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) o = opts_parse_json_filename(
        "json:{\"driver\": \"raw\", \"file.filename\": \"a\", \"size\": 512}", &err);
    g_autofree char *size = NULL;

    g_assert_no_error(err);
    g_assert_cmpstr(opts_peek_str(opts_get_object(o, "file"), "filename"), ==, "a");
    size = opts_get_str(o, "size");
    g_assert_cmpstr(size, ==, "512");
    g_assert_cmpuint(opts_get_size(o, "size", 0, NULL), ==, 512);
}

static void test_json_filename_bad(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(opts_parse_json_filename("json:[1]", &err));
    g_assert_cmpstr(err->message, ==, "Invalid JSON object given");
    g_clear_error(&err);
    g_assert_null(opts_parse_json_filename("json:{\"driver\":", &err));
    g_assert_true(g_str_has_prefix(err->message, "Could not parse the JSON options: "));
}

static void test_getters(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) o = keyval_parse_flat("b=on,c=off,s=64k,bad=maybe", NULL, &err);

    g_assert_true(opts_get_bool(o, "b", false, &err));
    g_assert_false(opts_get_bool(o, "c", true, &err));
    g_assert_true(opts_get_bool(o, "missing", true, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(opts_get_size(o, "s", 0, &err), ==, 65536);
    g_assert_no_error(err);
    opts_get_bool(o, "bad", false, &err);
    g_assert_nonnull(err);
}

static void test_json_output(void)
{
    g_autoptr(JsonObject) o = json_object_new();
    g_autoptr(JsonObject) inner = json_object_new();
    g_autofree char *compact = NULL, *pretty = NULL;
    JsonNode *n;

    json_object_set_string_member(inner, "q", "a\"b");
    json_object_set_int_member(o, "n", 5);
    json_object_set_boolean_member(o, "t", true);
    json_object_set_object_member(o, "o", json_object_ref(inner));
    compact = opts_to_json(o);
    g_assert_cmpstr(compact, ==, "{\"n\": 5, \"t\": true, \"o\": {\"q\": \"a\\\"b\"}}");
    n = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(n, o);
    pretty = json_node_to_string_qemu(n, true);
    json_node_unref(n);
    g_assert_cmpstr(pretty, ==, "{\n    \"n\": 5,\n    \"t\": true,\n    \"o\": {\n"
                    "        \"q\": \"a\\\"b\"\n    }\n}");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/option/keyval/flat", test_keyval_flat);
    g_test_add_func("/option/keyval/implied", test_keyval_implied);
    g_test_add_func("/option/keyval/errors", test_keyval_errors);
    g_test_add_func("/option/crumple", test_crumple);
    g_test_add_func("/option/crumple/conflict", test_crumple_conflict);
    g_test_add_func("/option/json-filename", test_json_filename);
    g_test_add_func("/option/json-filename/bad", test_json_filename_bad);
    g_test_add_func("/option/getters", test_getters);
    g_test_add_func("/option/json-output", test_json_output);
    return g_test_run();
}
