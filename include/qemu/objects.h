/*
 * User-creatable objects (--object TYPE,id=ID,... and the daemon's object-add):
 * a registry the tools fill from their command lines and drivers look objects
 * up in by id. Only the types something here uses are accepted (secret,
 * tls-creds-*, throttle-group, iothread); throttle groups are also created in
 * block/throttle-groups.c.
 */
#ifndef QEMU_OBJECTS_H
#define QEMU_OBJECTS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

/* Add an object from "qom-type,id=ID,key=val..." ("help" is not handled here). */
bool user_object_add(const char *optarg, GError **errp);
/* Add object @id of @type with properties @props (neither "qom-type" nor "id"),
 * checked by the type's backend (QEMU's messages). */
bool user_object_create(const char *type, const char *id, JsonObject *props,
                        GError **errp);
/* Delete object @id: -ENOENT ("object 'ID' not found"), -EBUSY when in use. */
int user_object_del(const char *id, GError **errp);
/* The options of object @id ("qom-type" included), or NULL; borrowed. */
JsonObject *user_object_find(const char *id);
/* Drop every object (tools that exit need not). */
void user_objects_clear(void);

#endif
