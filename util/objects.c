/*
 * User-creatable objects (--object in every tool, the daemon's object-add and
 * object-del): parsing the command-line forms, checking the generic properties
 * with QEMU's messages, and the registry of live objects by id. The object
 * types with behaviour live with their users (crypto/secret.c for "secret",
 * block/throttle-groups.c for "throttle-group"); the others are kept as their
 * options (tls-creds-*, which the nbd client and server read; authz-simple,
 * which the nbd server checks clients against).
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/objects.h"
#include "crypto/secret.h"
#include "block/throttle-groups.h"

/* Types kept as their options, for the drivers that read them */
#define OPTIONS_TYPE(n) { .name = (n) }
static const char *const authz_simple_props[] = { "identity", NULL };
static const char *const authz_simple_help[] = { "identity=<string>", NULL };
static const char *const tls_anon_help[] = {
    "dir=<string>", "endpoint=<QCryptoTLSCredsEndpoint>", "priority=<string>",
    "verify-peer=<bool>", NULL,
};
static const char *const tls_psk_help[] = {
    "dir=<string>", "endpoint=<QCryptoTLSCredsEndpoint>", "priority=<string>",
    "username=<string>", "verify-peer=<bool>", NULL,
};
static const char *const tls_x509_help[] = {
    "dir=<string>", "endpoint=<QCryptoTLSCredsEndpoint>", "passwordid=<string>",
    "priority=<string>", "sanity-check=<bool>", "verify-peer=<bool>", NULL,
};
static const UserObjectType options_types[] = {
    /* the NBD server's --tls-authz (storage-daemon/nbd-tls.c) */
    { .name = "authz-simple", .props = authz_simple_props,
      .prop_help = authz_simple_help },
    OPTIONS_TYPE("iothread"),
    { .name = "tls-creds-anon", .prop_help = tls_anon_help },
    { .name = "tls-creds-psk", .prop_help = tls_psk_help },
    { .name = "tls-creds-x509", .prop_help = tls_x509_help },
};

static const UserObjectType *const object_types[] = {
    &qcrypto_secret_type,
    &throttle_group_type,
    &options_types[0], &options_types[1], &options_types[2], &options_types[3],
    &options_types[4],
};

/* For "--object help", in QEMU's (alphabetical) order */
static const char *const help_type_names[] = {
    "authz-simple", "iothread", "secret", "throttle-group", "tls-creds-anon", "tls-creds-psk",
    "tls-creds-x509", NULL,
};

typedef struct UserObject {
    char *id;
    const UserObjectType *type;
    void *obj;              /* create()'s result, NULL for option-only types */
    JsonObject *opts;       /* qom-type, id and (option-only types) the properties */
} UserObject;

static GPtrArray *objects;   /* of UserObject*, in creation order */

static const UserObjectType *find_type(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(object_types); i++) {
        if (!strcmp(object_types[i]->name, name)) {
            return object_types[i];
        }
    }
    return NULL;
}

static UserObject *find_object(const char *id)
{
    for (guint i = 0; objects && i < objects->len; i++) {
        UserObject *o = objects->pdata[i];
        if (!strcmp(o->id, id)) {
            return o;
        }
    }
    return NULL;
}

JsonObject *user_object_find(const char *id)
{
    UserObject *o = id ? find_object(id) : NULL;

    return o ? o->opts : NULL;
}

void *user_object_get(const char *id, const char *type)
{
    UserObject *o = id ? find_object(id) : NULL;

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

bool user_object_create(const char *type_name, const char *id, JsonObject *props,
                        GError **errp)
{
    const UserObjectType *type = type_name ? find_type(type_name) : NULL;
    GList *members;
    UserObject *o;
    void *obj = NULL;
    bool ok = true;

    if (!type) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'",
                   type_name ? type_name : "");
        return false;
    }
    if (!id || !id_wellformed(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier\n"
                   "Identifiers consist of letters, digits, '-', '.', '_', starting "
                   "with a letter.");
        return false;
    }
    members = type->props ? json_object_get_members(props) : NULL;
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(type->props, l->data)) {
            error_setg(errp, "Parameter '%s' is unexpected", (char *)l->data);
            ok = false;
            break;
        }
    }
    g_list_free(members);
    if (!ok) {
        return false;
    }
    if (find_object(id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    if (type->create) {
        obj = type->create(id, props, errp);
        if (!obj) {
            return false;
        }
    }
    if (!objects) {
        objects = g_ptr_array_new();
    }
    o = g_new0(UserObject, 1);
    o->id = g_strdup(id);
    o->type = type;
    o->obj = obj;
    o->opts = type->create ? json_object_new() : opts_clone(props);
    opts_set_str(o->opts, "qom-type", type->name);
    opts_set_str(o->opts, "id", id);
    g_ptr_array_add(objects, o);
    return true;
}

/* @args: qom-type, id and the type's properties (not modified) */
static bool user_object_add(JsonObject *args, GError **errp)
{
    g_autoptr(JsonObject) props = opts_clone(args);
    const char *type = opts_peek_str(args, "qom-type");
    const char *id = opts_peek_str(args, "id");

    if (!opts_has(args, "qom-type")) {
        error_setg(errp, "Parameter 'qom-type' is missing");
        return false;
    }
    if (!type || !find_type(type)) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'",
                   type ? type : "");
        return false;
    }
    if (!opts_has(args, "id")) {
        error_setg(errp, "Parameter 'id' is missing");
        return false;
    }
    json_object_remove_member(props, "qom-type");
    json_object_remove_member(props, "id");
    return user_object_create(type, id, props, errp);
}

static void print_help(const char *type_name)
{
    const UserObjectType *type = type_name ? find_type(type_name) : NULL;

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

bool user_object_add_cmdline(const char *arg, bool *help_printed, GError **errp)
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
            return false;
        }
        root = json_parser_get_root(parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            error_setg(errp, "Invalid JSON object given");
            return false;
        }
        args = json_object_ref(json_node_get_object(root));
        return user_object_add(args, errp);
    }
    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        print_help(NULL);
        *help_printed = true;
        return true;
    }
    if (g_str_has_suffix(arg, ",help") || g_str_has_suffix(arg, ",?")) {
        g_autofree char *type = g_strndup(arg, strcspn(arg, ","));
        print_help(type);
        *help_printed = true;
        return true;
    }
    /* nested: throttle-group takes limits.NAME=... */
    args = keyval_parse(arg, "qom-type", errp);
    if (!args) {
        return false;
    }
    return user_object_add(args, errp);
}

static void user_object_free(UserObject *o)
{
    json_object_unref(o->opts);
    g_free(o->id);
    g_free(o);
}

int user_object_del(const char *id, GError **errp)
{
    UserObject *o = id ? find_object(id) : NULL;

    if (!o) {
        error_setg(errp, "object '%s' not found", id ? id : "");
        return -ENOENT;
    }
    if (o->type->destroy) {
        int ret = o->type->destroy(o->obj, o->id, errp);
        if (ret < 0) {
            return ret;
        }
    }
    g_ptr_array_remove(objects, o);
    user_object_free(o);
    return 0;
}

void user_objects_clear(void)
{
    while (objects && objects->len) {
        UserObject *o = objects->pdata[objects->len - 1];

        /* at exit: what cannot be deleted (a group still in use) is let go */
        if (o->type->destroy) {
            o->type->destroy(o->obj, o->id, NULL);
        }
        g_ptr_array_remove_index(objects, objects->len - 1);
        user_object_free(o);
    }
    g_clear_pointer(&objects, g_ptr_array_unref);
}
