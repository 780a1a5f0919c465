/*
 * User-creatable objects, as QEMU's tools take them: "--object TYPE,id=ID,..."
 * (or its JSON form) on the command line and object-add/object-del in the
 * daemon's QMP. One registry of object types and of the objects created, shared
 * by qemu-img, qemu-io, qemu-nbd and the storage daemon; drivers look objects
 * up by id (the nbd client's TLS credentials, secrets, throttle groups).
 */
#ifndef QEMU_OBJECTS_H
#define QEMU_OBJECTS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/option.h"
#include <json-glib/json-glib.h>

typedef struct UserObjectType {
    const char *name;
    /*
     * Property names the type takes besides qom-type and id, NULL-terminated;
     * NULL: any property gets through to create() (which checks them with
     * QEMU's messages), or, without create(), is kept unchecked with the
     * object's options (tls-creds-*: the nbd client reads them).
     */
    const char *const *props;
    /* help lines for "TYPE,help": "name=<type>" without the indent */
    const char *const *prop_help;
    /*
     * Make the object from its properties (strings or JSON values); NULL on
     * error (a type whose state lives in its module returns any non-NULL
     * token). The properties of a type with create() are not kept: a secret's
     * data lives only in its object.
     */
    void *(*create)(const char *id, JsonObject *props, GError **errp);
    /* Delete: 0, or -errno with errp set when it cannot go now (-EBUSY: in use). */
    int (*destroy)(void *obj, const char *id, GError **errp);
} UserObjectType;

/*
 * One --object argument: "help", "TYPE,help", "TYPE,id=ID,prop=val,..." or a JSON
 * object. Help is printed to stdout and *@help_printed set (the caller exits 0).
 * false with errp set in QEMU's words.
 */
bool user_object_add_cmdline(const char *arg, bool *help_printed, GError **errp);
/* Add object @id of @type with properties @props (neither "qom-type" nor "id"):
 * object-add, after its schema check. */
bool user_object_create(const char *type, const char *id, JsonObject *props,
                        GError **errp);
/* Delete object @id: -ENOENT ("object 'ID' not found"), -EBUSY when in use. */
int user_object_del(const char *id, GError **errp);
/* The options of object @id ("qom-type" and "id" included), or NULL; borrowed. */
JsonObject *user_object_find(const char *id);
/* The object made by create() for @id if it exists and is of @type (NULL: any). */
void *user_object_get(const char *id, const char *type);
/* Delete every object (at exit: secrets are wiped). */
void user_objects_clear(void);

#endif
