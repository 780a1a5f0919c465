/*
 * Throttle groups: named sets of QEMU's I/O limits (the "throttle-group"
 * object) that "throttle" nodes share. See block/throttle-groups.c.
 */
#ifndef BLOCK_THROTTLE_GROUPS_H
#define BLOCK_THROTTLE_GROUPS_H

#include "qemu/osdep.h"
#include "qemu/option.h"
#include "qemu/objects.h"

typedef struct ThrottleGroup ThrottleGroup;

/* The "throttle-group" object type (util/objects.c's registry): add and del below. */
extern const UserObjectType throttle_group_type;

/*
 * Create group @id from the object's properties (x-bps-total, x-iops-read-max,
 * ..., x-iops-size, or the same names under "limits"), checked with QEMU's
 * messages. 0 or -errno with errp set.
 */
int throttle_group_add(const char *id, JsonObject *props, GError **errp);
/* Delete group @id: -ENOENT (errp untouched) if there is none, -EBUSY if in use. */
int throttle_group_del(const char *id, GError **errp);

/* A node starts / stops using group @id (NULL: there is none). */
ThrottleGroup *throttle_group_ref(const char *id);
void throttle_group_unref(ThrottleGroup *tg);
const char *throttle_group_name(ThrottleGroup *tg);
/* Wait until the group's limits let a request of @bytes through, and count it. */
void throttle_group_account(ThrottleGroup *tg, bool is_write, uint64_t bytes);

#endif
