/*
 * Argument validation against the small QMP schema of qapi.h, error classes, and
 * JSON helpers. The checks run in schema order, as QEMU's input visitor does: each
 * declared member (missing? right type? known enum value?) and then any member
 * left over ("Parameter 'x' is unexpected"). Nested names are dotted
 * ("options.size"); enum values and alternates name the bare member, as QEMU does.
 */
#include "qapi.h"
#include "qemu/cutils.h"
#include "qemu/option.h"

G_DEFINE_QUARK(qmp-command-not-found, qmp_command_not_found)
G_DEFINE_QUARK(qmp-device-not-found, qmp_device_not_found)
G_DEFINE_QUARK(qmp-device-not-active, qmp_device_not_active)

const char *qmp_error_class(const GError *err)
{
    if (err->domain == QMP_ERROR_COMMAND_NOT_FOUND) {
        return "CommandNotFound";
    }
    if (err->domain == QMP_ERROR_DEVICE_NOT_FOUND) {
        return "DeviceNotFound";
    }
    if (err->domain == QMP_ERROR_DEVICE_NOT_ACTIVE) {
        return "DeviceNotActive";
    }
    return "GenericError";
}

JsonNode *qjson_empty_object(void)
{
    return qjson_object_node(json_object_new());
}

JsonNode *qjson_object_node(JsonObject *obj)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(n, obj);
    return n;
}

static bool holds(JsonNode *n, GType type)
{
    return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == type;
}

static bool type_error(GError **errp, const char *name, const char *expected)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s", name, expected);
    return false;
}

static bool check_enum(JsonNode *n, const QArg *a, const char *full, GError **errp)
{
    if (!holds(n, G_TYPE_STRING)) {
        return type_error(errp, full, "string");
    }
    if (!g_strv_contains((const char *const *)a->values, json_node_get_string(n))) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", a->name,
                   json_node_get_string(n));
        return false;
    }
    return true;
}

static const QArg *union_variant(const QArg *a, JsonObject *obj)
{
    const char *disc = a->members[0].name;
    JsonNode *n = obj ? json_object_get_member(obj, disc) : NULL;
    const char *val = n && holds(n, G_TYPE_STRING) ? json_node_get_string(n) : NULL;

    for (const QVariant *v = a->variants; v && v->value; v++) {
        if (val && !strcmp(v->value, val)) {
            return v->members;
        }
    }
    return NULL;
}

static bool check_declared(JsonObject *obj, const QArg *list, const char *prefix,
                           GError **errp);
static bool check_leftovers(JsonObject *obj, const QArg *base, const QArg *variant,
                            const char *prefix, GError **errp);

static bool check_one(JsonNode *n, const QArg *a, const char *full, GError **errp);

/* An array whose elements are each checked as @elem, named "full[i]". */
static bool check_list(JsonNode *n, const QArg *elem, const char *full, GError **errp)
{
    JsonArray *arr;

    if (!JSON_NODE_HOLDS_ARRAY(n)) {
        return type_error(errp, full, "array");
    }
    arr = json_node_get_array(n);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        g_autofree char *name = g_strdup_printf("%s[%u]", full, i);

        if (!check_one(json_array_get_element(arr, i), elem, name, errp)) {
            return false;
        }
    }
    return true;
}

static bool check_one(JsonNode *n, const QArg *a, const char *full, GError **errp)
{
    switch (a->type) {
    case QT_STR:
        return holds(n, G_TYPE_STRING) || type_error(errp, full, "string");
    case QT_INT:
        return holds(n, G_TYPE_INT64) || type_error(errp, full, "integer");
    case QT_SIZE:
        if (holds(n, G_TYPE_INT64)) {
            return true;     /* QEMU takes negative numbers modulo 2^64 */
        }
        if (holds(n, G_TYPE_DOUBLE)) {
            error_setg(errp, "Parameter '%s' expects uint64", full);
            return false;
        }
        return type_error(errp, full, "integer");
    case QT_UINT64:
        if (!holds(n, G_TYPE_INT64)) {
            error_setg(errp, "Parameter '%s' expects uint64", full);
            return false;
        }
        return true;
    case QT_UINT32:
        if (!holds(n, G_TYPE_INT64)) {
            error_setg(errp, "Parameter '%s' expects uint64", full);
            return false;
        }
        if (json_node_get_int(n) < 0 || json_node_get_int(n) > UINT32_MAX) {
            error_setg(errp, "Parameter '%s' expects uint32_t", full);
            return false;
        }
        return true;
    case QT_BOOL:
        return holds(n, G_TYPE_BOOLEAN) || type_error(errp, full, "boolean");
    case QT_NUMBER:
        return holds(n, G_TYPE_INT64) || holds(n, G_TYPE_DOUBLE) ||
               type_error(errp, full, "number");
    case QT_ENUM:
        return check_enum(n, a, full, errp);
    case QT_ENUM_LIST: {
        QArg e = *a;
        e.type = QT_ENUM;
        e.name = "null";        /* QEMU names list elements 'null' in enum errors */
        return check_list(n, &e, full, errp);
    }
    case QT_STRUCT:
        if (!JSON_NODE_HOLDS_OBJECT(n)) {
            return type_error(errp, full, "object");
        }
        return check_declared(json_node_get_object(n), a->members, full, errp) &&
               check_leftovers(json_node_get_object(n), a->members, NULL, full, errp);
    case QT_UNION: {
        JsonObject *obj;
        if (!JSON_NODE_HOLDS_OBJECT(n)) {
            return type_error(errp, full, "object");
        }
        obj = json_node_get_object(n);
        return check_declared(obj, a->members, full, errp) &&
               check_declared(obj, union_variant(a, obj), full, errp) &&
               check_leftovers(obj, a->members, union_variant(a, obj), full, errp);
    }
    case QT_REF:
    case QT_REF_OR_NULL:
        if (holds(n, G_TYPE_STRING)) {
            return true;
        }
        if (a->type == QT_REF_OR_NULL && JSON_NODE_HOLDS_NULL(n)) {
            return true;
        }
        if (JSON_NODE_HOLDS_OBJECT(n) && !a->members) {
            return true;        /* checked when the node is opened */
        }
        if (JSON_NODE_HOLDS_OBJECT(n)) {
            QArg u = *a;
            u.type = QT_UNION;
            return check_one(n, &u, full, errp);
        }
        return type_error(errp, a->name,
                          a->type == QT_REF ? "BlockdevRef" : "BlockdevRefOrNull");
    case QT_UNION_LIST:
    case QT_ALT_LIST: {
        QArg e = *a;
        e.type = a->type == QT_UNION_LIST ? QT_UNION : QT_ALT;
        return check_list(n, &e, full, errp);
    }
    case QT_ALT:
        if (JSON_NODE_HOLDS_OBJECT(n)) {
            return qapi_check(json_node_get_object(n), a->members, full, errp);
        }
        /* sic: QEMU names the element 'null' here */
        return holds(n, G_TYPE_STRING) || type_error(errp, "null", a->values[0]);
    case QT_OBJECT_ANY:
        return JSON_NODE_HOLDS_OBJECT(n) || type_error(errp, full, "object");
    case QT_ANY:
        return true;
    }
    return true;
}

static char *full_name(const char *prefix, const char *name)
{
    return prefix ? g_strdup_printf("%s.%s", prefix, name) : g_strdup(name);
}

/* Check the members @list declares: present unless optional, of the right type. */
static bool check_declared(JsonObject *obj, const QArg *list, const char *prefix,
                           GError **errp)
{
    for (const QArg *a = list; a && a->name; a++) {
        g_autofree char *full = full_name(prefix, a->name);
        JsonNode *n = obj ? json_object_get_member(obj, a->name) : NULL;

        if (!n) {
            if (!a->optional) {
                error_setg(errp, "Parameter '%s' is missing", full);
                return false;
            }
            continue;
        }
        if (!check_one(n, a, full, errp)) {
            return false;
        }
    }
    return true;
}

static bool declares(const QArg *list, const char *key)
{
    for (const QArg *a = list; a && a->name; a++) {
        if (!strcmp(a->name, key)) {
            return true;
        }
    }
    return false;
}

/* Refuse members that neither @base nor @variant declares. */
static bool check_leftovers(JsonObject *obj, const QArg *base, const QArg *variant,
                            const char *prefix, GError **errp)
{
    GList *keys = obj ? json_object_get_members(obj) : NULL;
    bool ok = true;

    for (GList *l = keys; l; l = l->next) {
        if (!declares(base, l->data) && !declares(variant, l->data)) {
            g_autofree char *full = full_name(prefix, l->data);
            error_setg(errp, "Parameter '%s' is unexpected", full);
            ok = false;
            break;
        }
    }
    g_list_free(keys);
    return ok;
}

bool qapi_check(JsonObject *args, const QArg *members, const char *prefix, GError **errp)
{
    return check_declared(args, members, prefix, errp) &&
           check_leftovers(args, members, NULL, prefix, errp);
}

bool qapi_check_union(JsonObject *args, const QArg *u, const char *prefix, GError **errp)
{
    const QArg *variant = union_variant(u, args);

    return check_declared(args, u->members, prefix, errp) &&
           check_declared(args, variant, prefix, errp) &&
           check_leftovers(args, u->members, variant, prefix, errp);
}

/* ---- key=value options: strings to the schema's types ---- */

static bool convert_members(JsonObject *obj, const QArg *list, const char *prefix,
                            GError **errp);

static bool convert_union(JsonObject *obj, const QArg *u, const char *prefix,
                          GError **errp)
{
    return convert_members(obj, u->members, prefix, errp) &&
           convert_members(obj, union_variant(u, obj), prefix, errp);
}

static bool convert_scalar(JsonObject *obj, const QArg *a, const char *full,
                           GError **errp)
{
    const char *s = json_node_get_string(json_object_get_member(obj, a->name));
    uint64_t u;
    int64_t i;
    bool b;

    switch (a->type) {
    case QT_BOOL:
        /* QEMU's keyval booleans: on/yes/true/y and off/no/false/n */
        if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "y")) {
            s = "on";
        } else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "n")) {
            s = "off";
        }
        if (qemu_parse_onoff(s, &b) < 0) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", full);
            return false;
        }
        json_object_set_boolean_member(obj, a->name, b);
        return true;
    case QT_INT:
        if (qemu_strtoi64(s, 0, &i) < 0) {
            error_setg(errp, "Parameter '%s' expects integer", full);
            return false;
        }
        json_object_set_int_member(obj, a->name, i);
        return true;
    case QT_SIZE:
        if (qemu_strtosz(s, NULL, &u) < 0) {
            error_setg(errp, "Parameter '%s' expects a size value", full);
            return false;
        }
        json_object_set_int_member(obj, a->name, (int64_t)u);
        return true;
    case QT_NUMBER:
        json_object_set_double_member(obj, a->name, g_ascii_strtod(s, NULL));
        return true;
    default:
        return true;
    }
}

static bool convert_members(JsonObject *obj, const QArg *list, const char *prefix,
                            GError **errp)
{
    for (const QArg *a = list; a && a->name; a++) {
        g_autofree char *full = full_name(prefix, a->name);
        JsonNode *n = json_object_get_member(obj, a->name);

        if (!n) {
            continue;
        }
        if (holds(n, G_TYPE_STRING)) {
            if (!convert_scalar(obj, a, full, errp)) {
                return false;
            }
        } else if (JSON_NODE_HOLDS_OBJECT(n)) {
            JsonObject *child = json_node_get_object(n);
            bool ok = true;

            if (a->type == QT_STRUCT) {
                ok = convert_members(child, a->members, full, errp);
            } else if (a->members && (a->type == QT_UNION || a->type == QT_REF ||
                                      a->type == QT_REF_OR_NULL)) {
                ok = convert_union(child, a, full, errp);
            }
            if (!ok) {
                return false;
            }
        }
    }
    return true;
}

bool qapi_keyval_typed(JsonObject *obj, const QArg *u, GError **errp)
{
    return u->type == QT_UNION ? convert_union(obj, u, NULL, errp) :
           convert_members(obj, u->members, NULL, errp);
}

const char *const qapi_mirror_sync_mode[] = {
    "top", "full", "none", "incremental", "bitmap", NULL,
};
const char *const qapi_blockdev_on_error[] = {
    "report", "ignore", "enospc", "stop", "auto", NULL,
};
const char *const qapi_new_image_mode[] = { "existing", "absolute-paths", NULL };
const char *const qapi_mirror_copy_mode[] = { "background", "write-blocking", NULL };
