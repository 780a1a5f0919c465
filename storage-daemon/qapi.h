/*
 * A small schema for QMP arguments: each command describes its arguments with a
 * table of QArg, and qapi_check() validates an arguments object against it in
 * QEMU's order and with QEMU's error texts (missing, unexpected, wrong type, bad
 * enum value), before the command runs. Also: error classes and JSON builders.
 */
#ifndef QSD_QAPI_H
#define QSD_QAPI_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

typedef enum QType {
    QT_STR,
    QT_INT,         /* any integer */
    QT_SIZE,        /* a non-negative integer (uint64) */
    QT_UINT32,      /* an integer 0..UINT32_MAX */
    QT_UINT64,      /* QAPI's uint64: any integer (negative ones wrap), else
                       "Parameter 'x' expects uint64" */
    QT_BOOL,
    QT_NUMBER,      /* integer or float */
    QT_ENUM,        /* a string from .values */
    QT_ENUM_LIST,   /* an array of strings from .values */
    QT_STRUCT,      /* an object with .members */
    QT_UNION,       /* an object: .members (the first is the discriminator enum),
                       then the members of the .variants entry it selects */
    QT_REF,         /* BlockdevRef: a node name, or an object checked as .members */
    QT_REF_OR_NULL, /* the same, or null */
    QT_UNION_LIST,  /* an array of QT_UNION objects (.members, .variants);
                       elements are named "name[i]" in errors */
    QT_ALT,         /* a string, or an object checked as .members; .values[0]
                       names the alternate type */
    QT_ALT_LIST,    /* an array of QT_ALT */
    QT_ANY,         /* anything (checked by the command) */
    QT_OBJECT_ANY,  /* any object */
} QType;

typedef struct QArg QArg;
typedef struct QVariant {
    const char *value;
    const QArg *members;     /* may be NULL: no members of its own */
} QVariant;

struct QArg {
    const char *name;
    QType type;
    bool optional;
    const char *const *values;   /* QT_ENUM, QT_ENUM_LIST: NULL-terminated */
    const QArg *members;         /* QT_STRUCT, QT_UNION base, QT_REF target */
    const QVariant *variants;    /* QT_UNION: terminated by a NULL value */
};

/* Members lists end with an entry whose name is NULL. */
#define QARG_END { NULL, 0, false, NULL, NULL, NULL }

/*
 * Validate @args (may be NULL: no arguments) against @members. @prefix names the
 * enclosing member for nested errors ("options"), or NULL at the top.
 */
bool qapi_check(JsonObject *args, const QArg *members, const char *prefix, GError **errp);
/* Validate @args as the union @u (a QT_UNION entry) with its members at top level. */
bool qapi_check_union(JsonObject *args, const QArg *u, const char *prefix, GError **errp);

/*
 * Options given as key=value strings (--blockdev driver=file,...): turn each value
 * into the type @u's schema gives it (on/off, numbers, sizes), in place.
 */
bool qapi_keyval_typed(JsonObject *obj, const QArg *u, GError **errp);

/* Error classes: GenericError is the default; these domains select others. */
#define QMP_ERROR_COMMAND_NOT_FOUND (qmp_command_not_found_quark())
GQuark qmp_command_not_found_quark(void);
#define QMP_ERROR_DEVICE_NOT_FOUND (qmp_device_not_found_quark())
GQuark qmp_device_not_found_quark(void);
#define QMP_ERROR_DEVICE_NOT_ACTIVE (qmp_device_not_active_quark())
GQuark qmp_device_not_active_quark(void);
const char *qmp_error_class(const GError *err);

/* JSON building helpers */
JsonNode *qjson_empty_object(void);
JsonNode *qjson_object_node(JsonObject *obj);   /* takes the reference */

/* QAPI enums several commands share: QEMU 7.2's values, in its order */
extern const char *const qapi_mirror_sync_mode[];   /* MirrorSyncMode */
extern const char *const qapi_blockdev_on_error[];  /* BlockdevOnError */
extern const char *const qapi_new_image_mode[];     /* NewImageMode */
extern const char *const qapi_mirror_copy_mode[];   /* MirrorCopyMode */

#endif
