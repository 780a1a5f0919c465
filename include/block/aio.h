/*
 * Requests in flight at the same time (block/aio.c): the block layer's one
 * concurrency model. A request submitted here runs on a worker thread, through
 * the same synchronous driver calls as everything else; its completion callback
 * runs later in the thread that polls (the tool's main thread). See
 * docs/devel/architecture.md, "Requests in flight".
 */
#ifndef BLOCK_AIO_H
#define BLOCK_AIO_H

#include "block/block.h"

typedef enum BdrvAioOp {
    BDRV_AIO_READ,
    BDRV_AIO_WRITE,
    BDRV_AIO_WRITE_ZEROES,
    BDRV_AIO_DISCARD,
    BDRV_AIO_FLUSH,
} BdrvAioOp;

/* Runs in the polling thread once the request is done: @ret is 0 or -errno. */
typedef void BlockCompletionFunc(void *opaque, int ret);

/*
 * Start a request on @bs (a node that its opener owns: the tool's image, an
 * export's node). @buf belongs to the request until @cb has run (unused for
 * zeroes, discard and flush). Requests that overlap an earlier one still in
 * flight, where either writes, wait for it: they take effect in submission
 * order. A flush waits for every earlier write. Everything else may run at
 * the same time and complete in any order.
 */
void bdrv_aio_submit(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes,
                     void *buf, int flags, BlockCompletionFunc *cb, void *opaque);

/*
 * Run the callbacks of finished requests in this thread. With @blocking, first
 * wait for one to finish if any is in flight. Returns how many callbacks ran.
 */
int bdrv_aio_poll(bool blocking);

/*
 * A file descriptor for a main loop to watch: it becomes readable when
 * callbacks are ready to run (a worker handed a completion over, or a request
 * ran in the submitting thread), and bdrv_aio_poll() makes it unreadable
 * again. Created on the first call; completions before it are not announced.
 */
int bdrv_aio_notifier_fd(void);

/* Wait until no request is in flight on @bs (NULL: on any node), running callbacks. */
void bdrv_aio_drain(BlockDriverState *bs);

/* Requests submitted on @bs (NULL: any node) whose callback has not run yet. */
int bdrv_aio_in_flight(BlockDriverState *bs);

/* Submit a request and wait for it (other requests' callbacks run meanwhile). */
int bdrv_aio_run(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes,
                 void *buf, int flags);

/*
 * Is this thread running a read that must not wait for a device? The file
 * driver then answers -EAGAIN where it would block (block/aio.c's fast path).
 */
bool bdrv_aio_nowait(void);

/*
 * Would a request (@op on [@offset, @offset + @bytes) of @bs) have to wait for
 * one already in flight on @bs, as it conflicts with it or needs the node's
 * I/O lock that one holds?
 */
bool bdrv_aio_would_wait(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes);

/*
 * Node locks (the request layer's I/O lock, a driver's own lock such as
 * qcow2's) that this thread holds: a request stopped at a breakpoint while
 * holding one keeps every other request of that node waiting.
 */
void bdrv_node_lock_note(int delta);
int bdrv_node_locks_held(void);

/*
 * Around a synchronous call on @bs (block status) made while requests of @bs
 * may be in flight: hold the node's I/O lock, which requests take unless the
 * nodes below are thread-safe for them. The polling thread must not submit
 * or poll meanwhile.
 */
void bdrv_aio_node_lock(BlockDriverState *bs);
void bdrv_aio_node_unlock(BlockDriverState *bs);

/* Free a node's request state (no request may be in flight); block.c calls it. */
void bdrv_aio_node_free(BlockDriverState *bs);

#endif
