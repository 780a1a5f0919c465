/*
 * The options tree: parsing key=val strings, json: filenames, nesting dotted keys,
 * typed getters, and a serialiser that prints JSON the way QEMU prints it.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "qemu/option.h"
#include <math.h>

/* Read one key or value up to an unescaped @stop char (or ',' / end). */
static const char *keyval_read(const char *p, char stop, GString *out)
{
    for (;;) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(out, ',');
            p += 2;
        } else if (*p == ',' || *p == '\0' || (stop && *p == stop)) {
            return p;
        } else {
            g_string_append_c(out, *p++);
        }
    }
}

JsonObject *keyval_parse_flat(const char *str, const char *implied_key, GError **errp)
{
    JsonObject *obj = json_object_new();
    const char *p = str;
    bool first = true;

    if (!str || !*str) {
        return obj;
    }
    for (;;) {
        g_autoptr(GString) key = g_string_new(NULL);
        g_autoptr(GString) val = g_string_new(NULL);

        p = keyval_read(p, '=', key);
        if (*p != '=') {
            if (first && implied_key) {
                json_object_set_string_member(obj, implied_key, key->str);
                goto next;
            }
            if (key->len == 0 && *p == '\0') {
                break;      /* trailing comma */
            }
            error_setg(errp, "Invalid parameter '%s'", key->str);
            goto fail;
        }
        if (key->len == 0) {
            error_setg(errp, "Invalid option name ''");
            goto fail;
        }
        p = keyval_read(p + 1, 0, val);
        json_object_set_string_member(obj, key->str, val->str);
next:
        first = false;
        if (*p == '\0') {
            break;
        }
        p++;            /* skip ',' */
        if (*p == '\0') {
            break;
        }
    }
    return obj;

fail:
    json_object_unref(obj);
    return NULL;
}

JsonObject *keyval_parse(const char *str, const char *implied_key, GError **errp)
{
    JsonObject *flat = keyval_parse_flat(str, implied_key, errp);
    JsonObject *nested;

    if (!flat) {
        return NULL;
    }
    nested = opts_crumple(flat, errp);
    json_object_unref(flat);
    return nested;
}

static JsonNode *node_clone_crumpled(JsonNode *node, GError **errp);

/* Insert value at dotted path into obj, creating intermediate objects. */
static bool crumple_insert(JsonObject *obj, const char *key, JsonNode *value,
                           GError **errp)
{
    const char *dot = strchr(key, '.');
    JsonObject *child;
    g_autofree char *head = NULL;

    if (!dot) {
        JsonNode *old = json_object_get_member(obj, key);
        if (old && JSON_NODE_HOLDS_OBJECT(old) && JSON_NODE_HOLDS_OBJECT(value)) {
            opts_merge(json_node_get_object(old), json_node_get_object(value));
            json_node_unref(value);
            return true;
        }
        if (old && JSON_NODE_HOLDS_OBJECT(old)) {
            error_setg(errp, "Parameter '%s' used inconsistently", key);
            json_node_unref(value);
            return false;
        }
        json_object_set_member(obj, key, value);
        return true;
    }
    head = g_strndup(key, dot - key);
    if (!*head || !dot[1]) {
        error_setg(errp, "Invalid parameter '%s'", key);
        json_node_unref(value);
        return false;
    }
    if (json_object_has_member(obj, head)) {
        JsonNode *n = json_object_get_member(obj, head);
        if (!JSON_NODE_HOLDS_OBJECT(n)) {
            error_setg(errp, "Parameter '%s' used inconsistently", head);
            json_node_unref(value);
            return false;
        }
        child = json_node_get_object(n);
    } else {
        child = json_object_new();
        json_object_set_object_member(obj, head, child);
    }
    return crumple_insert(child, dot + 1, value, errp);
}

JsonObject *opts_crumple(JsonObject *obj, GError **errp)
{
    JsonObject *res = json_object_new();
    GList *members = json_object_get_members(obj), *l;

    for (l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *v = node_clone_crumpled(json_object_get_member(obj, key), errp);
        if (!v || !crumple_insert(res, key, v, errp)) {
            g_list_free(members);
            json_object_unref(res);
            return NULL;
        }
    }
    g_list_free(members);
    return res;
}

static JsonNode *node_clone_crumpled(JsonNode *node, GError **errp)
{
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        JsonObject *c = opts_crumple(json_node_get_object(node), errp);
        JsonNode *n;
        if (!c) {
            return NULL;
        }
        n = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(n, c);
        return n;
    }
    return json_node_copy(node);
}

static void flatten_into(JsonObject *dst, JsonObject *src, const char *prefix)
{
    GList *members = json_object_get_members(src), *l;

    for (l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *v = json_object_get_member(src, key);
        g_autofree char *full = prefix ? g_strdup_printf("%s.%s", prefix, key)
                                       : g_strdup(key);
        if (JSON_NODE_HOLDS_OBJECT(v)) {
            flatten_into(dst, json_node_get_object(v), full);
        } else {
            json_object_set_member(dst, full, json_node_copy(v));
        }
    }
    g_list_free(members);
}

JsonObject *opts_flatten(JsonObject *obj)
{
    JsonObject *res = json_object_new();

    flatten_into(res, obj, NULL);
    return res;
}

JsonObject *opts_parse_json_filename(const char *filename, GError **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    const char *text = filename;
    JsonNode *root;

    strstart(filename, "json:", &text);
    if (!json_parser_load_from_data(parser, text, -1, &local)) {
        error_setg(errp, "Could not parse the JSON options: %s", local->message);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(errp, "Invalid JSON object given");
        return NULL;
    }
    return opts_crumple(json_node_get_object(root), errp);
}

JsonObject *opts_clone(JsonObject *obj)
{
    JsonObject *res = json_object_new();

    opts_merge(res, obj);
    return res;
}

void opts_merge(JsonObject *dst, JsonObject *src)
{
    GList *members = json_object_get_members(src), *l;

    for (l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *v = json_object_get_member(src, key);
        JsonNode *old = json_object_get_member(dst, key);

        if (JSON_NODE_HOLDS_OBJECT(v)) {
            if (!old || !JSON_NODE_HOLDS_OBJECT(old)) {
                JsonObject *child = json_object_new();
                json_object_set_object_member(dst, key, child);
                old = json_object_get_member(dst, key);
            }
            opts_merge(json_node_get_object(old), json_node_get_object(v));
        } else {
            json_object_set_member(dst, key, json_node_copy(v));
        }
    }
    g_list_free(members);
}

char *opts_get_str(JsonObject *o, const char *key)
{
    JsonNode *n;

    if (!o || !json_object_has_member(o, key)) {
        return NULL;
    }
    n = json_object_get_member(o, key);
    if (!JSON_NODE_HOLDS_VALUE(n)) {
        return NULL;
    }
    switch (json_node_get_value_type(n)) {
    case G_TYPE_STRING:
        return g_strdup(json_node_get_string(n));
    case G_TYPE_BOOLEAN:
        return g_strdup(json_node_get_boolean(n) ? "on" : "off");
    case G_TYPE_INT64:
        return g_strdup_printf("%" PRId64, json_node_get_int(n));
    case G_TYPE_DOUBLE:
        return g_strdup_printf("%g", json_node_get_double(n));
    default:
        return NULL;
    }
}

const char *opts_peek_str(JsonObject *o, const char *key)
{
    JsonNode *n;

    if (!o || !json_object_has_member(o, key)) {
        return NULL;
    }
    n = json_object_get_member(o, key);
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        return json_node_get_string(n);
    }
    return NULL;
}

bool opts_get_bool(JsonObject *o, const char *key, bool def, GError **errp)
{
    JsonNode *n;
    bool v;

    if (!o || !json_object_has_member(o, key)) {
        return def;
    }
    n = json_object_get_member(o, key);
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_BOOLEAN) {
        return json_node_get_boolean(n);
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        const char *s = json_node_get_string(n);
        if (qemu_parse_onoff(s, &v) == 0) {
            return v;
        }
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
        return def;
    }
    error_setg(errp, "Invalid parameter type for '%s', expected: boolean", key);
    return def;
}

uint64_t opts_get_size(JsonObject *o, const char *key, uint64_t def, GError **errp)
{
    JsonNode *n;
    uint64_t v;

    if (!o || !json_object_has_member(o, key)) {
        return def;
    }
    n = json_object_get_member(o, key);
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64) {
        if (json_node_get_int(n) < 0) {
            goto bad;
        }
        return json_node_get_int(n);
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        guint64 u;
        if (qemu_strtosz(json_node_get_string(n), NULL, &v) == 0) {
            return v;
        }
        /* checked -o values are plain decimals, up to 2^64 - 1 (size=9E) */
        if (g_ascii_string_to_unsigned(json_node_get_string(n), 10, 0, UINT64_MAX, &u,
                                       NULL)) {
            return u;
        }
    }
bad:
    error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64\n"
               "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
               "and exabytes, respectively.", key);
    return def;
}

int64_t opts_get_int(JsonObject *o, const char *key, int64_t def, GError **errp)
{
    JsonNode *n;
    int64_t v;

    if (!o || !json_object_has_member(o, key)) {
        return def;
    }
    n = json_object_get_member(o, key);
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64) {
        return json_node_get_int(n);
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING &&
        qemu_strtoi64(json_node_get_string(n), 0, &v) == 0) {
        return v;
    }
    error_setg(errp, "Parameter '%s' expects a number", key);
    return def;
}

JsonObject *opts_get_object(JsonObject *o, const char *key)
{
    JsonNode *n;

    if (!o || !json_object_has_member(o, key)) {
        return NULL;
    }
    n = json_object_get_member(o, key);
    return JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

bool opts_has(JsonObject *o, const char *key)
{
    return o && json_object_has_member(o, key);
}

bool opts_is_null(JsonObject *o, const char *key)
{
    return o && json_object_has_member(o, key) &&
           JSON_NODE_HOLDS_NULL(json_object_get_member(o, key));
}

void opts_set_str(JsonObject *o, const char *key, const char *val)
{
    json_object_set_string_member(o, key, val);
}

void opts_set_str_path(JsonObject *o, const char *dotted, const char *val)
{
    const char *dot = strchr(dotted, '.');
    g_autofree char *head = NULL;
    JsonObject *child;

    if (!dot) {
        json_object_set_string_member(o, dotted, val);
        return;
    }
    head = g_strndup(dotted, dot - dotted);
    child = opts_get_object(o, head);
    if (!child) {
        child = json_object_new();
        json_object_set_object_member(o, head, child);
    }
    opts_set_str_path(child, dot + 1, val);
}

/* ---- QEMU-style JSON output ---- */

/*
 * Strings are printed in ASCII as QEMU prints them: other characters as \uXXXX
 * (upper-case hex, surrogate pairs above U+FFFF), invalid UTF-8 as \uFFFD, and
 * the two-byte form C0 80 (how a NUL is kept inside a C string) as \u0000.
 */
static void json_escape(GString *s, const char *str)
{
    const unsigned char *p = (const unsigned char *)str;

    g_string_append_c(s, '"');
    while (*p) {
        gunichar c;

        switch (*p) {
        case '"': g_string_append(s, "\\\""); p++; continue;
        case '\\': g_string_append(s, "\\\\"); p++; continue;
        case '\b': g_string_append(s, "\\b"); p++; continue;
        case '\f': g_string_append(s, "\\f"); p++; continue;
        case '\n': g_string_append(s, "\\n"); p++; continue;
        case '\r': g_string_append(s, "\\r"); p++; continue;
        case '\t': g_string_append(s, "\\t"); p++; continue;
        }
        if (*p < 0x80) {
            if (*p < 0x20 || *p == 0x7f) {
                g_string_append_printf(s, "\\u%04X", *p);
            } else {
                g_string_append_c(s, *p);
            }
            p++;
            continue;
        }
        if (p[0] == 0xc0 && p[1] == 0x80) {
            g_string_append(s, "\\u0000");
            p += 2;
            continue;
        }
        c = g_utf8_get_char_validated((const char *)p, -1);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append(s, "\\uFFFD");
            p++;
            continue;
        }
        if (c > 0xffff) {
            c -= 0x10000;
            g_string_append_printf(s, "\\u%04X\\u%04X", 0xd800 + (c >> 10),
                                   0xdc00 + (c & 0x3ff));
        } else {
            g_string_append_printf(s, "\\u%04X", c);
        }
        p = (const unsigned char *)g_utf8_next_char(p);
    }
    g_string_append_c(s, '"');
}

static void indent(GString *s, int level)
{
    g_string_append_c(s, '\n');
    for (int i = 0; i < level; i++) {
        g_string_append(s, "    ");
    }
}

static void node_to_string(GString *s, JsonNode *node, bool pretty, int level)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_NULL:
        g_string_append(s, "null");
        break;
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(node)) {
        case G_TYPE_STRING:
            json_escape(s, json_node_get_string(node));
            break;
        case G_TYPE_BOOLEAN:
            g_string_append(s, json_node_get_boolean(node) ? "true" : "false");
            break;
        case G_TYPE_INT64:
            g_string_append_printf(s, "%" PRId64, json_node_get_int(node));
            break;
        case G_TYPE_DOUBLE: {
            char buf[G_ASCII_DTOSTR_BUF_SIZE];
            double d = json_node_get_double(node);
            if (isnan(d)) {
                g_string_append(s, "null");
            } else if (isinf(d)) {
                /* still JSON, and it reads back as the same infinity */
                g_string_append(s, d > 0 ? "1e999" : "-1e999");
            } else {
                g_string_append(s, g_ascii_dtostr(buf, sizeof(buf), d));
            }
            break;
        }
        default:
            g_string_append(s, "null");
        }
        break;
    case JSON_NODE_OBJECT: {
        JsonObject *o = json_node_get_object(node);
        GList *members = json_object_get_members(o), *l;
        g_string_append_c(s, '{');
        for (l = members; l; l = l->next) {
            if (l != members) {
                g_string_append(s, pretty ? "," : ", ");
            }
            if (pretty) {
                indent(s, level + 1);
            }
            json_escape(s, l->data);
            g_string_append(s, ": ");
            node_to_string(s, json_object_get_member(o, l->data), pretty, level + 1);
        }
        if (pretty && members) {
            indent(s, level);
        }
        g_list_free(members);
        g_string_append_c(s, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);
        guint n = json_array_get_length(a);
        g_string_append_c(s, '[');
        for (guint i = 0; i < n; i++) {
            if (i) {
                g_string_append(s, pretty ? "," : ", ");
            }
            if (pretty) {
                indent(s, level + 1);
            }
            node_to_string(s, json_array_get_element(a, i), pretty, level + 1);
        }
        if (pretty && n) {
            indent(s, level);
        }
        g_string_append_c(s, ']');
        break;
    }
    }
}

char *json_node_to_string_qemu(JsonNode *node, bool pretty)
{
    GString *s = g_string_new(NULL);

    node_to_string(s, node, pretty, 0);
    return g_string_free(s, FALSE);
}

char *opts_to_json(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    char *res;

    json_node_set_object(n, o);
    res = json_node_to_string_qemu(n, false);
    json_node_unref(n);
    return res;
}
