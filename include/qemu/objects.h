/*
 * User-creatable objects (--object TYPE,id=ID,...): a registry the tools fill
 * from their command lines and drivers look objects up in by id. Only the
 * types something here uses are accepted (secret, tls-creds-x509, tls-creds-psk).
 */
#ifndef QEMU_OBJECTS_H
#define QEMU_OBJECTS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include <json-glib/json-glib.h>

/* Add an object from "qom-type,id=ID,key=val..." ("help" is not handled here). */
bool user_object_add(const char *optarg, GError **errp);
/* The options of object @id ("qom-type" included), or NULL; borrowed. */
JsonObject *user_object_find(const char *id);
/* Drop every object (tools that exit need not). */
void user_objects_clear(void);

#endif
