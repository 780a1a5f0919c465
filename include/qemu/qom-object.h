/*
 * User-creatable objects, as QEMU's tools take them: "--object TYPE,id=ID,..."
 * (or its JSON form) on the command line and object-add/object-del in QMP. A
 * small registry of object types (secret today) and of the objects created,
 * shared by qemu-img, qemu-io and the storage daemon.
 */
#ifndef QEMU_QOM_OBJECT_H
#define QEMU_QOM_OBJECT_H

#include "qemu/osdep.h"
#include "qemu/option.h"

typedef struct QomObjectType {
    const char *name;
    /* property names the type takes besides qom-type and id; NULL-terminated */
    const char *const *props;
    /* help lines for "TYPE,help": "  name=<type>" without the indent */
    const char *const *prop_help;
    /* make the object from its properties (strings or JSON values); NULL on error */
    void *(*create)(const char *id, JsonObject *props, GError **errp);
    void (*destroy)(void *obj);
} QomObjectType;

/*
 * One --object argument: "help", "TYPE,help", "TYPE,id=ID,prop=val,..." or a JSON
 * object. Help is printed to stdout and *@help_printed set (the caller exits 0).
 * 0, or -1 with errp set in QEMU's words.
 */
int qom_object_add_cmdline(const char *arg, bool *help_printed, GError **errp);
/* QMP object-add: {"qom-type": ..., "id": ..., props...}. 0 or -1. */
int qom_object_add(JsonObject *args, GError **errp);
/* QMP object-del. 0 or -1 ("object 'x' not found"). */
int qom_object_del(const char *id, GError **errp);
/* The object @id if it exists and is of @type (NULL: any type). */
void *qom_object_find(const char *id, const char *type);
/* Destroy every object (at exit: secrets are wiped). */
void qom_object_del_all(void);

#endif
