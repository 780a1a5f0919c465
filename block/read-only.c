/*
 * Turning an open read-write node read-only in place, and back: the old top of
 * an external snapshot (blockdev-snapshot, blockdev-snapshot-sync) becomes the
 * overlay's read-only backing file, as QEMU's does, and a commit into it later
 * makes it writable again. The node stays the same object (name, parents,
 * bitmaps); only what it may do changes. Its files stay open as they were, so
 * the way back needs no new open; what others see changes with the locks.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"

/* The role in which @bs uses the child in @slot (as block.c attached it). */
static BdrvChildRole slot_role(BlockDriverState *bs, BlockDriverState **slot)
{
    if (slot == &bs->data_file) {
        return BDRV_CHILD_DATA;
    }
    return bs->drv->is_filter ? BDRV_CHILD_FILTERED : BDRV_CHILD_STORAGE;
}

/* @bs's file and external data file slots, the children its flags decide on. */
static int child_slots(BlockDriverState *bs, BlockDriverState **slots[2])
{
    int n = 0;

    if (bs->drv->own_children) {
        return 0;       /* quorum: its children are its own business */
    }
    if (bs->file) {
        slots[n++] = &bs->file;
    }
    if (bs->data_file && bs->data_file != bs->file) {
        slots[n++] = &bs->data_file;
    }
    return n;
}

/* Does the child follow its parent's mode? Only an automatic child used by no
 * one else: a node the user named keeps its own, QEMU's rule. */
static bool child_follows(BlockDriverState *child)
{
    return child->auto_node_name && bdrv_get_refcnt(child) == 1;
}

int bdrv_make_read_only(BlockDriverState *bs, GError **errp)
{
    BlockDriverState **slots[2];
    int n, ret;

    if (bdrv_is_read_only(bs)) {
        return 0;
    }
    ret = bdrv_flush(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush '%s'", bdrv_get_node_name(bs));
        return ret;
    }
    if (bs->drv->set_read_only) {
        ret = bs->drv->set_read_only(bs, true, errp);
        if (ret < 0) {
            return ret;
        }
    }
    bs->open_flags &= ~BDRV_O_RDWR;
    bs->ro_in_place = true;
    n = child_slots(bs, slots);
    for (int i = 0; i < n; i++) {
        BlockDriverState *child = *slots[i];

        if (child_follows(child)) {
            /* what it holds was written down with the parent's flush */
            bdrv_make_read_only(child, NULL);
        }
        /* giving up the need to write cannot conflict */
        bdrv_attach_child_perm(bs, child, slots[i], slot_role(bs, slots[i]), NULL);
    }
    return 0;
}

bool bdrv_is_read_only_in_place(BlockDriverState *bs)
{
    return bs->ro_in_place && bdrv_is_read_only(bs);
}

int bdrv_make_writable_again(BlockDriverState *bs, GError **errp)
{
    BlockDriverState **slots[2];
    int n, ret;

    if (!bdrv_is_read_only(bs)) {
        return 0;
    }
    if (!bs->ro_in_place) {
        error_setg(errp, "Block node is read-only");
        return -EACCES;
    }
    n = child_slots(bs, slots);
    for (int i = 0; i < n; i++) {
        BlockDriverState *child = *slots[i];

        if (child_follows(child) && bdrv_is_read_only(child)) {
            ret = bdrv_make_writable_again(child, errp);
            if (ret < 0) {
                goto undo;
            }
        }
    }
    bs->open_flags |= BDRV_O_RDWR;
    for (int i = 0; i < n; i++) {
        ret = bdrv_attach_child_perm(bs, *slots[i], slots[i], slot_role(bs, slots[i]),
                                     errp);
        if (ret < 0) {
            goto undo;
        }
    }
    if (bs->drv->set_read_only) {
        ret = bs->drv->set_read_only(bs, false, errp);
        if (ret < 0) {
            goto undo;
        }
    }
    bs->ro_in_place = false;
    return 0;

undo:
    bs->open_flags &= ~BDRV_O_RDWR;
    for (int i = 0; i < n; i++) {
        BlockDriverState *child = *slots[i];

        if (child_follows(child)) {
            bdrv_make_read_only(child, NULL);
        }
        bdrv_attach_child_perm(bs, child, slots[i], slot_role(bs, slots[i]), NULL);
    }
    return ret;
}
