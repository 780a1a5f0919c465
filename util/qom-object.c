/*
 * User-creatable objects (--object, object-add, object-del): parsing the
 * command-line forms, checking the generic properties with QEMU's messages, and
 * the registry of live objects by id. The object types themselves live with
 * their users (crypto/secret.c for "secret").
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/qom-object.h"
#include "crypto/secret.h"

static const QomObjectType *const object_types[] = {
    &qcrypto_secret_type,
};

/* QEMU's full list, for "--object help": we create only the types above */
static const char *const help_type_names[] = {
    "secret", NULL,
};

typedef struct QomObject {
    char *id;
    const QomObjectType *type;
    void *obj;
} QomObject;

static GPtrArray *objects;   /* of QomObject*, in creation order */

static const QomObjectType *find_type(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(object_types); i++) {
        if (!strcmp(object_types[i]->name, name)) {
            return object_types[i];
        }
    }
    return NULL;
}

static QomObject *find_object(const char *id)
{
    for (guint i = 0; objects && i < objects->len; i++) {
        QomObject *o = objects->pdata[i];
        if (!strcmp(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

void *qom_object_find(const char *id, const char *type)
{
    QomObject *o = id ? find_object(id) : NULL;

    if (!o || (type && strcmp(o->type->name, type))) {
        return NULL;
    }
    return o->obj;
}

static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* @args: qom-type, id and the type's properties (consumed members are not removed) */
static int object_add_checked(JsonObject *args, GError **errp)
{
    const char *type_name = opts_peek_str(args, "qom-type");
    const char *id = opts_peek_str(args, "id");
    const QomObjectType *type;
    g_autoptr(JsonObject) props = json_object_new();
    GList *members;
    QomObject *o;
    void *obj;
    int ret = 0;

    if (!opts_has(args, "qom-type")) {
        error_setg(errp, "Parameter 'qom-type' is missing");
        return -1;
    }
    type = type_name ? find_type(type_name) : NULL;
    if (!type) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'",
                   type_name ? type_name : "");
        return -1;
    }
    if (!opts_has(args, "id")) {
        error_setg(errp, "Parameter 'id' is missing");
        return -1;
    }
    if (!id || !id_wellformed(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier\n"
                   "Identifiers consist of letters, digits, '-', '.', '_', starting "
                   "with a letter.");
        return -1;
    }
    members = json_object_get_members(args);
    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        if (!strcmp(key, "qom-type") || !strcmp(key, "id")) {
            continue;
        }
        if (!g_strv_contains(type->props, key)) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            ret = -1;
            break;
        }
        json_object_set_member(props, key, json_object_dup_member(args, key));
    }
    g_list_free(members);
    if (ret < 0) {
        return ret;
    }
    if (find_object(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return -1;
    }
    obj = type->create(id, props, errp);
    if (!obj) {
        return -1;
    }
    if (!objects) {
        objects = g_ptr_array_new();
    }
    o = g_new0(QomObject, 1);
    o->id = g_strdup(id);
    o->type = type;
    o->obj = obj;
    g_ptr_array_add(objects, o);
    return 0;
}

int qom_object_add(JsonObject *args, GError **errp)
{
    return object_add_checked(args, errp);
}

static void print_help(const char *type_name)
{
    const QomObjectType *type;

    if (!type_name) {
        printf("List of user creatable objects:\n");
        for (const char *const *n = help_type_names; *n; n++) {
            printf("  %s\n", *n);
        }
        return;
    }
    type = find_type(type_name);
    if (!type) {
        printf("List of user creatable objects:\n");
        for (const char *const *n = help_type_names; *n; n++) {
            printf("  %s\n", *n);
        }
        return;
    }
    printf("%s options:\n", type->name);
    for (const char *const *h = type->prop_help; h && *h; h++) {
        printf("  %s\n", *h);
    }
}

int qom_object_add_cmdline(const char *arg, bool *help_printed, GError **errp)
{
    g_autoptr(JsonObject) args = NULL;

    *help_printed = false;
    if (arg[0] == '{') {
        g_autoptr(JsonParser) parser = json_parser_new();
        JsonNode *root;
        GError *local = NULL;

        if (!json_parser_load_from_data(parser, arg, -1, &local)) {
            error_setg(errp, "%s", local->message);
            g_error_free(local);
            return -1;
        }
        root = json_parser_get_root(parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            error_setg(errp, "Invalid JSON object given");
            return -1;
        }
        args = json_object_ref(json_node_get_object(root));
        return object_add_checked(args, errp);
    }
    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        print_help(NULL);
        *help_printed = true;
        return 0;
    }
    if (g_str_has_suffix(arg, ",help") || g_str_has_suffix(arg, ",?")) {
        g_autofree char *type = g_strndup(arg, strcspn(arg, ","));
        print_help(type);
        *help_printed = true;
        return 0;
    }
    args = keyval_parse_flat(arg, "qom-type", errp);
    if (!args) {
        return -1;
    }
    return object_add_checked(args, errp);
}

int qom_object_del(const char *id, GError **errp)
{
    QomObject *o = find_object(id);

    if (!o) {
        error_setg(errp, "object '%s' not found", id);
        return -1;
    }
    g_ptr_array_remove(objects, o);
    o->type->destroy(o->obj);
    g_free(o->id);
    g_free(o);
    return 0;
}

void qom_object_del_all(void)
{
    while (objects && objects->len) {
        QomObject *o = objects->pdata[objects->len - 1];
        qom_object_del(o->id, NULL);
    }
}
