/*
 * Reading ahead for sources far away (NBD, ssh): while the caller writes one
 * chunk, the next one is already on its way, as a request of the block
 * layer's request layer (block/aio.h) running on a worker thread. Nearby
 * sources are read as they are asked for, in the order they are asked for.
 */
#include "qemu-img.h"
#include "block/aio.h"
#include "block/block_int.h"
#include "read-ahead.h"

struct ReadAhead {
    uint8_t *bufs[2];
    int next;               /* the buffer the next read goes into */
    bool busy;              /* a read in flight: its callback has not run */
    bool ready;             /* a read is done: [offset, offset + n) in bufs[!next] */
    int ret;
    BlockDriverState *bs;
    int64_t offset, n;
};

/* Does any node on the way down from @bs wait on a network for each request? */
bool read_ahead_wanted(BlockDriverState *bs)
{
    for (int depth = 0; bs && bs->drv && depth < 16; depth++) {
        if (bs->drv->high_latency) {
            return true;
        }
        bs = bs->file;
    }
    return false;
}

ReadAhead *read_ahead_new(size_t bufsize)
{
    ReadAhead *ra = g_new0(ReadAhead, 1);

    ra->bufs[0] = g_malloc(bufsize);
    ra->bufs[1] = g_malloc(bufsize);
    return ra;
}

static void read_done(void *opaque, int ret)
{
    ReadAhead *ra = opaque;

    ra->busy = false;
    ra->ready = true;
    ra->ret = ret;
}

static void wait_idle(ReadAhead *ra)
{
    while (ra->busy) {
        bdrv_aio_poll(true);
    }
}

void read_ahead_start(ReadAhead *ra, BlockDriverState *bs, int64_t offset, int64_t n)
{
    wait_idle(ra);
    ra->ready = false;
    ra->busy = true;
    ra->bs = bs;
    ra->offset = offset;
    ra->n = n;
    bdrv_aio_submit(bs, BDRV_AIO_READ, offset, n, ra->bufs[ra->next], 0, read_done, ra);
    ra->next = !ra->next;
}

uint8_t *read_ahead_take(ReadAhead *ra, BlockDriverState *bs, int64_t offset, int64_t n)
{
    if (!ra || !(ra->busy || ra->ready) || ra->bs != bs || ra->offset != offset ||
        ra->n < n) {
        return NULL;
    }
    wait_idle(ra);
    ra->ready = false;
    /* a failed read is read again by the caller, which reports it */
    return ra->ret < 0 ? NULL : ra->bufs[!ra->next];
}

void read_ahead_free(ReadAhead *ra)
{
    if (ra) {
        wait_idle(ra);
        g_free(ra->bufs[0]);
        g_free(ra->bufs[1]);
        g_free(ra);
    }
}
