/*
 * The user-creatable object registry behind --object (every tool) and the
 * daemon's object-add/object-del: parsing the option string, QEMU's checks on
 * the id and type, creating the objects that have a backend here (throttle
 * groups, block/throttle-groups.c), deleting them, and lookups by id (the nbd
 * driver's TLS credentials, secrets).
 */
#include "qemu/osdep.h"
#include "qemu/option.h"
#include "qemu/objects.h"
#include "block/throttle-groups.h"

static GHashTable *objects;     /* id -> JsonObject (with "qom-type" and "id") */

static const char *const known_types[] = {
    "secret", "tls-creds-x509", "tls-creds-psk", "tls-creds-anon", "throttle-group",
    "iothread", NULL,
};

bool user_object_create(const char *type, const char *id, JsonObject *props,
                        GError **errp)
{
    g_autoptr(JsonObject) o = NULL;

    if (!g_strv_contains(known_types, type)) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
        return false;
    }
    if (!objects) {
        objects = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)json_object_unref);
    }
    if (g_hash_table_contains(objects, id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    /* the backend checks the properties (QEMU's messages) and makes the object */
    if (!strcmp(type, "throttle-group") && throttle_group_add(id, props, errp) < 0) {
        return false;
    }
    o = opts_clone(props);
    opts_set_str(o, "qom-type", type);
    opts_set_str(o, "id", id);
    g_hash_table_insert(objects, g_strdup(id), g_steal_pointer(&o));
    return true;
}

bool user_object_add(const char *optarg, GError **errp)
{
    g_autoptr(JsonObject) o = keyval_parse(optarg, "qom-type", errp);
    g_autofree char *type = NULL, *id = NULL;

    if (!o) {
        return false;
    }
    type = opts_get_str(o, "qom-type");
    id = opts_get_str(o, "id");
    if (!type) {
        error_setg(errp, "Parameter 'qom-type' is missing");
        return false;
    }
    if (!g_strv_contains(known_types, type)) {
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", type);
        return false;
    }
    if (!id) {
        error_setg(errp, "Parameter 'id' is missing");
        return false;
    }
    json_object_remove_member(o, "qom-type");
    json_object_remove_member(o, "id");
    return user_object_create(type, id, o, errp);
}

int user_object_del(const char *id, GError **errp)
{
    JsonObject *o = user_object_find(id);
    const char *type = o ? opts_peek_str(o, "qom-type") : NULL;

    if (!o) {
        error_setg(errp, "object '%s' not found", id);
        return -ENOENT;
    }
    if (!g_strcmp0(type, "throttle-group")) {
        int ret = throttle_group_del(id, errp);
        if (ret < 0 && ret != -ENOENT) {
            return ret;
        }
    }
    g_hash_table_remove(objects, id);
    return 0;
}

JsonObject *user_object_find(const char *id)
{
    return objects ? g_hash_table_lookup(objects, id) : NULL;
}

void user_objects_clear(void)
{
    g_clear_pointer(&objects, g_hash_table_unref);
}
