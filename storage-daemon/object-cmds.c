/*
 * User-creatable objects in the daemon: object-add and object-del for the
 * object types QMP can make here, "secret" (crypto/secret.c) and
 * "throttle-group" (block/throttle-groups.c), checked against their QAPI schema
 * (ObjectOptions' branches; throttle-group: "limits" or the x- properties).
 * Objects are made and deleted in the registry every tool's --object fills
 * (util/objects.c), which also serves the daemon's --object.
 */
#include "daemon.h"
#include "qmp-commands.h"
#include "qemu/objects.h"

static const char *const qom_type_values[] = { "secret", "throttle-group", NULL };
static const char *const secret_format_values[] = { "raw", "base64", NULL };

static const QArg secret_members[] = {
    { "data", QT_STR, true, NULL, NULL, NULL },
    { "file", QT_STR, true, NULL, NULL, NULL },
    { "format", QT_ENUM, true, secret_format_values, NULL, NULL },
    { "keyid", QT_STR, true, NULL, NULL, NULL },
    { "iv", QT_STR, true, NULL, NULL, NULL },
    { "loaded", QT_BOOL, true, NULL, NULL, NULL },
    QARG_END,
};

#define LIMIT(prefix, name) \
    { prefix name, QT_INT, true, NULL, NULL, NULL }, \
    { prefix name "-max", QT_INT, true, NULL, NULL, NULL }, \
    { prefix name "-max-length", QT_INT, true, NULL, NULL, NULL }
#define LIMITS(prefix) \
    LIMIT(prefix, "iops-total"), LIMIT(prefix, "iops-read"), \
    LIMIT(prefix, "iops-write"), LIMIT(prefix, "bps-total"), \
    LIMIT(prefix, "bps-read"), LIMIT(prefix, "bps-write"), \
    { prefix "iops-size", QT_INT, true, NULL, NULL, NULL }

static const QArg throttle_limits_members[] = {
    LIMITS(""),
    QARG_END,
};

static const QArg throttle_group_members[] = {
    { "limits", QT_STRUCT, true, NULL, throttle_limits_members, NULL },
    LIMITS("x-"),
    QARG_END,
};

static const QArg object_base[] = {
    { "qom-type", QT_ENUM, false, qom_type_values, NULL, NULL },
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

static const QVariant object_variants[] = {
    { "secret", secret_members },
    { "throttle-group", throttle_group_members },
    { NULL, NULL },
};

const QArg qapi_object_add_options = {
    "options", QT_UNION, false, NULL, object_base, object_variants,
};

const QArg qapi_object_del_args[] = {
    { "id", QT_STR, false, NULL, NULL, NULL },
    QARG_END,
};

JsonNode *qmp_object_add(JsonObject *args, Monitor *mon, GError **errp)
{
    g_autoptr(JsonObject) props = opts_clone(args);
    g_autofree char *type = opts_get_str(args, "qom-type");
    g_autofree char *id = opts_get_str(args, "id");

    json_object_remove_member(props, "qom-type");
    json_object_remove_member(props, "id");
    return user_object_create(type, id, props, errp) ? qjson_empty_object() : NULL;
}

JsonNode *qmp_object_del(JsonObject *args, Monitor *mon, GError **errp)
{
    return user_object_del(opts_peek_str(args, "id"), errp) < 0 ? NULL
                                                                 : qjson_empty_object();
}
