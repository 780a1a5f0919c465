/*
 * The user-creatable object registry behind --object: parsing the option
 * string, QEMU's checks on the id and type, and lookups by id.
 */
#include "qemu/osdep.h"
#include "qemu/option.h"
#include "qemu/objects.h"

static GHashTable *objects;     /* id -> JsonObject */

static const char *const known_types[] = {
    "secret", "tls-creds-x509", "tls-creds-psk", "tls-creds-anon", "throttle-group",
    "iothread", NULL,
};

bool user_object_add(const char *optarg, GError **errp)
{
    g_autoptr(JsonObject) o = keyval_parse_flat(optarg, "qom-type", errp);
    const char *type, *id;

    if (!o) {
        return false;
    }
    type = opts_peek_str(o, "qom-type");
    id = opts_peek_str(o, "id");
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
    if (!objects) {
        objects = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)json_object_unref);
    }
    if (g_hash_table_contains(objects, id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    g_hash_table_insert(objects, g_strdup(id), json_object_ref(o));
    return true;
}

JsonObject *user_object_find(const char *id)
{
    return objects ? g_hash_table_lookup(objects, id) : NULL;
}

void user_objects_clear(void)
{
    g_clear_pointer(&objects, g_hash_table_unref);
}
