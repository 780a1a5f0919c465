/*
 * Requests in flight at the same time: worker threads over the synchronous
 * block layer, serialized per node. Each node that gets requests has a queue
 * of them in submission order; a request waits for the earlier ones it
 * conflicts with (overlapping, one of them writing; a flush waits for earlier
 * writes), then runs the node's synchronous call under the node's I/O lock,
 * unless it is a read and every node below reads thread-safely (file, null,
 * raw over those), in which case reads run side by side. Completions go back
 * to the polling thread through one queue. A request that would not wait (a
 * read served by the page cache, a buffered write) on an idle node runs in
 * the submitting thread instead: see try_inline().
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "block/block_int.h"
#include <sys/eventfd.h>

#define AIO_WORKERS 16

typedef struct BdrvAioQueue {
    GMutex lock;        /* protects reqs */
    GCond cond;         /* a request left reqs */
    GQueue reqs;        /* requests not yet finished, in submission order */
    GMutex io_lock;     /* held around driver calls that are not thread-safe */
    int pending;        /* submitted, callback not run yet (polling thread only) */
    bool direct;        /* some node below bypasses the page cache (O_DIRECT); a
                         * performance hint only, taken when the queue is made */
    int64_t align;      /* requests conflict by blocks of this size (see
                         * conflict_align()), taken when the queue is made */
} BdrvAioQueue;

typedef struct AioReq {
    BlockDriverState *bs;
    BdrvAioOp op;
    int64_t offset;
    int64_t bytes;
    void *buf;
    int flags;
    bool parallel;      /* runs without the node's I/O lock */
    BlockCompletionFunc *cb;
    void *opaque;
    int ret;
    struct AioReq *next;    /* in inline_done or the free list (polling thread) */
} AioReq;

static GThreadPool *workers;
static GAsyncQueue *done;
static int total_pending;
static int worker_pending;      /* of those, handed to workers (polling thread only) */
static __thread bool in_nowait;     /* this thread runs a read that must not block */
/* Polling thread only: requests it ran itself, oldest first, and spare ones */
static AioReq *inline_head, *inline_tail;
static AioReq *spare_reqs;

static __thread int node_locks;

/*
 * The wake-up for a main loop (bdrv_aio_notifier_fd()): an eventfd written when
 * completions become ready while none were announced yet. @notified is set by
 * whoever announces and cleared by the poller before it looks at the queues,
 * so a completion handed over after that is announced again.
 */
static int notify_fd = -1;
static gint notified;

static void notify(void)
{
    int fd = g_atomic_int_get(&notify_fd);
    uint64_t one = 1;

    if (fd >= 0 && !g_atomic_int_exchange(&notified, 1)) {
        while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
            /* retry */
        }
    }
}

int bdrv_aio_notifier_fd(void)
{
    if (notify_fd < 0) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

        g_assert(fd >= 0);
        g_atomic_int_set(&notify_fd, fd);
    }
    return notify_fd;
}

/* The poller is about to look at the queues: a later completion notifies again. */
static void notify_clear(void)
{
    uint64_t n;

    if (notify_fd >= 0) {
        /* always read: an announcement may land after its flag was cleared */
        g_atomic_int_set(&notified, 0);
        while (read(notify_fd, &n, sizeof(n)) < 0 && errno == EINTR) {
            /* retry */
        }
    }
}

void bdrv_node_lock_note(int delta)
{
    node_locks += delta;
}

int bdrv_node_locks_held(void)
{
    return node_locks;
}

bool bdrv_aio_nowait(void)
{
    return in_nowait;
}

static bool is_write(BdrvAioOp op)
{
    return op != BDRV_AIO_READ;
}

static bool conflicts(const AioReq *earlier, const AioReq *req, int64_t align)
{
    if (req->op == BDRV_AIO_FLUSH) {
        return is_write(earlier->op);
    }
    if (earlier->op == BDRV_AIO_FLUSH) {
        return false;
    }
    if (!is_write(earlier->op) && !is_write(req->op)) {
        return false;
    }
    return QEMU_ALIGN_DOWN(earlier->offset, align) < req->offset + req->bytes &&
           QEMU_ALIGN_DOWN(req->offset, align) < earlier->offset + earlier->bytes;
}

/* Under q->lock: does an earlier request still in the queue conflict with @req? */
static bool must_wait(BdrvAioQueue *q, AioReq *req)
{
    for (GList *l = q->reqs.head; l && l->data != req; l = l->next) {
        if (conflicts(l->data, req, q->align)) {
            return true;
        }
    }
    return false;
}

/* Can reads of @bs run in several threads at once, and beside its writes? */
static bool reads_thread_safe(BlockDriverState *bs)
{
    if (!bs) {
        return true;
    }
    if (!(bs->drv->thread_safe_reads || bs->drv->thread_safe) ||
        (bs->open_flags & BDRV_O_COPY_ON_READ)) {
        return false;
    }
    return reads_thread_safe(bs->file) && reads_thread_safe(bs->backing) &&
           (bs->data_file == bs->file || reads_thread_safe(bs->data_file));
}

/* Is a child's request alignment within the blocks its parent serializes by? */
static bool within_blocks(BlockDriverState *parent, BlockDriverState *child)
{
    return !child || !parent->serialize_align ||
           child->request_alignment <= parent->serialize_align;
}

/*
 * Can every request on @bs, writes too, run in several threads at once? The
 * nodes it writes to must be thread-safe as well, its backing chain for reads.
 */
static bool all_thread_safe(BlockDriverState *bs)
{
    if (!bs) {
        return true;
    }
    if (!bs->drv->thread_safe || (bs->open_flags & BDRV_O_COPY_ON_READ) ||
        !within_blocks(bs, bs->file) || !within_blocks(bs, bs->data_file)) {
        return false;
    }
    return all_thread_safe(bs->file) && reads_thread_safe(bs->backing) &&
           (bs->data_file == bs->file || all_thread_safe(bs->data_file));
}

/*
 * The block size by which requests on @bs conflict: where a node below reads
 * and writes whole blocks (its request alignment: a write of part of one is a
 * read-modify-write) or allocates them (serialize_align), two requests in one
 * block must not run at the same time.
 */
static int64_t conflict_align(BlockDriverState *bs)
{
    int64_t align;

    if (!bs) {
        return 1;
    }
    align = MAX(MAX(bs->request_alignment, bs->serialize_align), 1);
    align = MAX(align, conflict_align(bs->file));
    if (bs->data_file != bs->file) {
        align = MAX(align, conflict_align(bs->data_file));
    }
    return align;
}

static int run_op(AioReq *req)
{
    switch (req->op) {
    case BDRV_AIO_READ:
        return bdrv_pread(req->bs, req->offset, req->bytes, req->buf, req->flags);
    case BDRV_AIO_WRITE:
        return bdrv_pwrite(req->bs, req->offset, req->bytes, req->buf, req->flags);
    case BDRV_AIO_WRITE_ZEROES:
        return bdrv_pwrite_zeroes(req->bs, req->offset, req->bytes, req->flags);
    case BDRV_AIO_DISCARD:
        return bdrv_pdiscard(req->bs, req->offset, req->bytes);
    case BDRV_AIO_FLUSH:
        return bdrv_flush(req->bs);
    }
    return -EINVAL;
}

static void worker(gpointer data, gpointer user_data)
{
    AioReq *req = data;
    BdrvAioQueue *q = req->bs->aio;

    (void)user_data;
    g_mutex_lock(&q->lock);
    while (must_wait(q, req)) {
        g_cond_wait(&q->cond, &q->lock);
    }
    g_mutex_unlock(&q->lock);

    if (!req->parallel) {
        g_mutex_lock(&q->io_lock);
        node_locks++;
    }
    req->ret = run_op(req);
    if (!req->parallel) {
        node_locks--;
        g_mutex_unlock(&q->io_lock);
    }

    /*
     * Hand the completion over before a request that waited for this one can
     * run (it needs q->lock): callbacks of conflicting requests then run in
     * submission order. Nothing here touches @req after the push, and
     * bdrv_aio_node_free() waits for q->lock before it frees q.
     */
    g_mutex_lock(&q->lock);
    g_queue_remove(&q->reqs, req);
    g_async_queue_push(done, req);
    g_cond_broadcast(&q->cond);
    g_mutex_unlock(&q->lock);
    notify();
}

/* Does any node from @bs down bypass the page cache (O_DIRECT)? */
static bool uses_direct_io(BlockDriverState *bs)
{
    if (!bs) {
        return false;
    }
    if (bs->open_flags & BDRV_O_NOCACHE) {
        return true;
    }
    return uses_direct_io(bs->file) || uses_direct_io(bs->backing) ||
           (bs->data_file != bs->file && uses_direct_io(bs->data_file));
}

/*
 * The fast path: run @req in the submitting thread when nothing is queued on
 * its node (so it overtakes nothing) and it will not wait for a device. Reads
 * run in "no wait" mode: the file driver reads the page cache with
 * RWF_NOWAIT and answers -EAGAIN where it would have to wait, and the read
 * then goes to a worker after all. Writes go into the page cache. With
 * O_DIRECT every request may wait for the device, and with blkdebug
 * breakpoints a request may stop: both always go to workers. Returns whether
 * @req ran (its completion is queued like a worker's).
 */
static bool try_inline(BdrvAioQueue *q, AioReq *req)
{
    bool locked = false;

    if ((req->op != BDRV_AIO_READ && req->op != BDRV_AIO_WRITE) || q->direct ||
        (req->bs->open_flags & BDRV_O_COPY_ON_READ) || bdrv_debug_breakpoints_in_use()) {
        return false;
    }
    g_mutex_lock(&q->lock);
    if (!g_queue_is_empty(&q->reqs)) {
        g_mutex_unlock(&q->lock);
        return false;
    }
    g_mutex_unlock(&q->lock);
    if (!req->parallel) {
        if (!g_mutex_trylock(&q->io_lock)) {
            return false;
        }
        locked = true;
    }
    in_nowait = req->op == BDRV_AIO_READ;
    req->ret = run_op(req);
    in_nowait = false;
    if (locked) {
        g_mutex_unlock(&q->io_lock);
    }
    if (req->op == BDRV_AIO_READ && req->ret == -EAGAIN) {
        return false;
    }
    req->next = NULL;
    if (inline_tail) {
        inline_tail->next = req;
    } else {
        inline_head = req;
    }
    inline_tail = req;
    notify();
    return true;
}

void bdrv_aio_submit(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes,
                     void *buf, int flags, BlockCompletionFunc *cb, void *opaque)
{
    AioReq *req = spare_reqs;
    BdrvAioQueue *q;

    if (req) {
        spare_reqs = req->next;
    } else {
        req = g_new0(AioReq, 1);
    }

    if (!workers) {
        /* FIFO: a request is picked up no later than any request after it, so
         * the earlier requests a worker waits for are already running */
        workers = g_thread_pool_new(worker, NULL, AIO_WORKERS, FALSE, NULL);
        done = g_async_queue_new();
    }
    if (!bs->aio) {
        q = bs->aio = g_new0(BdrvAioQueue, 1);
        g_mutex_init(&q->lock);
        g_cond_init(&q->cond);
        g_mutex_init(&q->io_lock);
        g_queue_init(&q->reqs);
        q->direct = uses_direct_io(bs);
        q->align = conflict_align(bs);
    }
    q = bs->aio;
    bdrv_ref(bs);
    *req = (AioReq) {
        .bs = bs, .op = op, .offset = offset, .bytes = bytes, .buf = buf,
        .flags = flags, .cb = cb, .opaque = opaque,
        .parallel = (op == BDRV_AIO_READ && reads_thread_safe(bs)) || all_thread_safe(bs),
    };
    if (op == BDRV_AIO_FLUSH) {
        req->offset = 0;
        req->bytes = INT64_MAX;
    }
    q->pending++;
    total_pending++;
    if (try_inline(q, req)) {
        return;
    }
    worker_pending++;
    g_mutex_lock(&q->lock);
    g_queue_push_tail(&q->reqs, req);
    g_mutex_unlock(&q->lock);
    g_thread_pool_push(workers, req, NULL);
}

static void complete(AioReq *req)
{
    BlockDriverState *bs = req->bs;

    bs->aio->pending--;
    total_pending--;
    if (req->cb) {
        req->cb(req->opaque, req->ret);
    }
    req->next = spare_reqs;
    spare_reqs = req;
    bdrv_unref(bs);
}

int bdrv_aio_poll(bool blocking)
{
    AioReq *req;
    int n = 0;

    if (!done) {
        return 0;
    }
    notify_clear();
    while ((req = inline_head)) {
        inline_head = req->next;
        if (!inline_head) {
            inline_tail = NULL;
        }
        complete(req);
        n++;
        blocking = false;
    }
    if (!worker_pending) {
        return n;
    }
    if (blocking) {
        worker_pending--;
        complete(g_async_queue_pop(done));
        n++;
    }
    while (worker_pending && (req = g_async_queue_try_pop(done))) {
        worker_pending--;
        complete(req);
        n++;
    }
    return n;
}

int bdrv_aio_in_flight(BlockDriverState *bs)
{
    if (!bs) {
        return total_pending;
    }
    return bs->aio ? bs->aio->pending : 0;
}

void bdrv_aio_drain(BlockDriverState *bs)
{
    while (bdrv_aio_in_flight(bs) > 0) {
        bdrv_aio_poll(true);
    }
}

typedef struct RunWait {
    bool done;
    int ret;
} RunWait;

static void run_done(void *opaque, int ret)
{
    RunWait *w = opaque;

    w->done = true;
    w->ret = ret;
}

int bdrv_aio_run(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes,
                 void *buf, int flags)
{
    RunWait w = { false, 0 };

    bdrv_aio_submit(bs, op, offset, bytes, buf, flags, run_done, &w);
    while (!w.done) {
        bdrv_aio_poll(true);
    }
    return w.ret;
}

bool bdrv_aio_would_wait(BlockDriverState *bs, BdrvAioOp op, int64_t offset, int64_t bytes)
{
    BdrvAioQueue *q = bs->aio;
    AioReq probe = { .bs = bs, .op = op, .offset = offset, .bytes = bytes };
    bool parallel = (op == BDRV_AIO_READ && reads_thread_safe(bs)) || all_thread_safe(bs);
    bool wait = false;

    if (!q) {
        return false;
    }
    if (op == BDRV_AIO_FLUSH) {
        probe.offset = 0;
        probe.bytes = INT64_MAX;
    }
    g_mutex_lock(&q->lock);
    for (GList *l = q->reqs.head; l && !wait; l = l->next) {
        AioReq *r = l->data;

        wait = conflicts(r, &probe, q->align) || (!parallel && !r->parallel);
    }
    g_mutex_unlock(&q->lock);
    return wait;
}

void bdrv_aio_node_lock(BlockDriverState *bs)
{
    if (bs->aio) {
        g_mutex_lock(&bs->aio->io_lock);
        node_locks++;
    }
}

void bdrv_aio_node_unlock(BlockDriverState *bs)
{
    if (bs->aio) {
        node_locks--;
        g_mutex_unlock(&bs->aio->io_lock);
    }
}

void bdrv_aio_node_free(BlockDriverState *bs)
{
    BdrvAioQueue *q = bs->aio;

    if (!q) {
        return;
    }
    g_assert(q->pending == 0);
    /* the last worker may still be leaving q->lock after handing over its
     * completion (see worker()): wait for it */
    g_mutex_lock(&q->lock);
    g_mutex_unlock(&q->lock);
    g_mutex_clear(&q->lock);
    g_cond_clear(&q->cond);
    g_mutex_clear(&q->io_lock);
    g_free(q);
    bs->aio = NULL;
}
