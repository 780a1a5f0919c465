/*
 * Human-readable dumps of block information shared by qemu-img info and qemu-io info:
 * format-specific info printed as "key name: value" lines, nested members indented.
 */
#include "qemu/osdep.h"
#include "block/block.h"

static void dump_node(JsonNode *node, int indent, const char *key);

static void print_key(int indent, const char *key, bool has_value)
{
    g_autofree char *k = g_strdup(key);

    for (char *p = k; *p; p++) {
        if (*p == '-') {
            *p = ' ';
        }
    }
    printf("%*s%s:%s", indent, "", k, has_value ? " " : "\n");
}

static void dump_scalar(JsonNode *node)
{
    switch (json_node_get_value_type(node)) {
    case G_TYPE_STRING:
        printf("%s\n", json_node_get_string(node));
        break;
    case G_TYPE_BOOLEAN:
        printf("%s\n", json_node_get_boolean(node) ? "true" : "false");
        break;
    case G_TYPE_INT64:
        printf("%" PRId64 "\n", json_node_get_int(node));
        break;
    case G_TYPE_DOUBLE:
        printf("%g\n", json_node_get_double(node));
        break;
    default:
        printf("\n");
    }
}

static void dump_node(JsonNode *node, int indent, const char *key)
{
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        JsonObject *o = json_node_get_object(node);
        GList *members = json_object_get_members(o);
        if (key) {
            print_key(indent, key, false);
            indent += 4;
        }
        for (GList *l = members; l; l = l->next) {
            dump_node(json_object_get_member(o, l->data), indent, l->data);
        }
        g_list_free(members);
    } else if (JSON_NODE_HOLDS_ARRAY(node)) {
        JsonArray *a = json_node_get_array(node);
        if (key) {
            print_key(indent, key, false);
            indent += 4;
        }
        for (guint i = 0; i < json_array_get_length(a); i++) {
            g_autofree char *idx = g_strdup_printf("[%u]", i);
            dump_node(json_array_get_element(a, i), indent, idx);
        }
    } else if (JSON_NODE_HOLDS_VALUE(node)) {
        if (key) {
            print_key(indent, key, true);
        }
        dump_scalar(node);
    }
}

void bdrv_specific_info_dump(JsonNode *info, int indent)
{
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(info) ? json_node_get_object(info) : NULL;
    JsonNode *data = o && json_object_has_member(o, "data") ?
                     json_object_get_member(o, "data") : NULL;

    if (data) {
        dump_node(data, indent, NULL);
    }
}
