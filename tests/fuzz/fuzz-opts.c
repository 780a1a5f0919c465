/*
 * Fuzz target: the option parsers. The first byte picks keyval_parse (with or
 * without an implied key), keyval_parse_flat or opts_parse_json_filename; every
 * result then goes through opts_flatten, opts_crumple, opts_to_json, a clone
 * and merge, and the typed getters.
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "qemu/option.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use(JsonObject *o)
{
    g_autoptr(JsonObject) flat = opts_flatten(o);
    g_autoptr(JsonObject) again = opts_crumple(flat, NULL);
    g_autoptr(JsonObject) copy = opts_clone(o);
    g_autofree char *text = opts_to_json(o);
    GList *members = json_object_get_members(o);

    g_assert(text && text[0] == '{');
    if (again) {
        /* what was flattened nests again without losing members */
        g_assert(json_object_get_size(again) <= json_object_get_size(flat));
    }
    opts_merge(copy, flat);
    for (GList *l = members; l; l = l->next) {
        g_autofree char *s = opts_get_str(o, l->data);
        g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;

        g_assert(!s || strlen(s) <= 64 * 1024 + 32);
        opts_get_bool(o, l->data, false, &e1);
        opts_get_size(o, l->data, 0, &e2);
        opts_get_int(o, l->data, 0, &e3);
        opts_peek_str(o, l->data);
        opts_get_object(o, l->data);
    }
    g_list_free(members);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *s = NULL;
    g_autoptr(GError) err = NULL;
    JsonObject *o = NULL;

    if (size < 1 || size > 64 * 1024) {
        return 0;
    }
    s = g_strndup((const char *)data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        o = keyval_parse(s, NULL, &err);
        break;
    case 1:
        o = keyval_parse(s, "filename", &err);
        break;
    case 2:
        o = keyval_parse_flat(s, NULL, &err);
        break;
    default: {
        g_autofree char *j = g_strconcat("json:", s, NULL);
        o = opts_parse_json_filename(j, &err);
        break;
    }
    }
    if (o) {
        use(o);
        json_object_unref(o);
    }
    return 0;
}
