/*
 * The "throttle" filter: every request through it first waits for the limits
 * of its throttle group ("throttle-group", a throttle-group object; see
 * throttle-groups.c), which all nodes of the group share. Reads count as reads;
 * writes, zero writes and discards as writes. Without limits in the group the
 * only cost is one check per request.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/throttle-groups.h"

typedef struct BDRVThrottleState {
    ThrottleGroup *tg;
} BDRVThrottleState;

static const char *const throttle_runtime_opts[] = { "throttle-group", NULL };
static const char *const throttle_strong_opts[] = { "throttle-group", NULL };

static int throttle_open(BlockDriverState *bs, JsonObject *opts, int flags,
                         GError **errp)
{
    BDRVThrottleState *s = bs->opaque;
    g_autofree char *group = opts_get_str(opts, "throttle-group");

    if (!group) {
        error_setg(errp, "Please specify a throttle group");
        return -EINVAL;
    }
    s->tg = throttle_group_ref(group);
    if (!s->tg) {
        error_setg(errp, "Throttle group '%s' does not exist", group);
        return -EINVAL;
    }
    bs->request_alignment = bs->file->request_alignment;
    return 0;
}

static void throttle_close(BlockDriverState *bs)
{
    BDRVThrottleState *s = bs->opaque;

    throttle_group_unref(s->tg);
    s->tg = NULL;
}

static int throttle_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          void *buf, int flags)
{
    BDRVThrottleState *s = bs->opaque;

    throttle_group_account(s->tg, false, bytes);
    return bdrv_pread(bs->file, offset, bytes, buf, flags);
}

static int throttle_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           const void *buf, int flags)
{
    BDRVThrottleState *s = bs->opaque;

    throttle_group_account(s->tg, true, bytes);
    return bdrv_pwrite(bs->file, offset, bytes, buf, flags);
}

static int throttle_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int flags)
{
    BDRVThrottleState *s = bs->opaque;

    throttle_group_account(s->tg, true, bytes);
    return bdrv_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int throttle_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    BDRVThrottleState *s = bs->opaque;

    throttle_group_account(s->tg, true, bytes);
    return bdrv_pdiscard(bs->file, offset, bytes);
}

static int throttle_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                             PreallocMode prealloc, int flags, GError **errp)
{
    return bdrv_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

static int throttle_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                 int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    return bdrv_block_status(bs->file, offset, bytes, pnum, map, file);
}

BlockDriver bdrv_throttle = {
    .format_name = "throttle",
    .instance_size = sizeof(BDRVThrottleState),
    .is_filter = true,
    .runtime_opts = throttle_runtime_opts,
    .strong_opts = throttle_strong_opts,
    .open = throttle_open,
    .close = throttle_close,
    .pread = throttle_pread,
    .pwrite = throttle_pwrite,
    .pwrite_zeroes = throttle_pwrite_zeroes,
    .pdiscard = throttle_pdiscard,
    .truncate = throttle_truncate,
    .block_status = throttle_block_status,
};
