/*
 * blkdebug breakpoints: what qemu-io's break, wait_break, resume and
 * remove_break do, with QEMU 7.2's messages.
 *
 * A breakpoint names an event and a tag. The first request that signals the
 * event on the node stops there (the breakpoint is used up): it prints
 * "blkdebug: Suspended request 'TAG'" and waits in its worker thread
 * (block/aio.c), keeping whatever locks it holds, until the polling thread
 * resumes it by tag. Resuming waits until the resumed request has settled
 * (stopped at its next breakpoint of the same event, or left the event), then
 * prints "blkdebug: Resuming request 'TAG'"; a request that left the event goes
 * on only after that. This gives QEMU's output order, where a resumed request
 * runs until it waits for I/O before the resume is reported.
 * remove_break resumes every request stopped under the tag, then drops the
 * tag's breakpoints; it fails (ENOENT) if the tag had none.
 *
 * One lock and one condition for every node: breakpoints are a test tool, and
 * an event on a node without breakpoints costs one atomic read.
 */
#include "qemu/osdep.h"
#include "blkdebug-break.h"
#include "block/aio.h"

typedef struct BreakRule {
    BlockDriverState *bs;
    BlkdebugEvent event;
    char *tag;
} BreakRule;

typedef struct Suspended {
    BlockDriverState *bs;
    char *tag;
    bool resumed;
    bool holds_lock;        /* stopped while holding a node lock */
    uint64_t seq;           /* the resume that woke it */
} Suspended;

static GMutex lock;
static GCond cond;
static GPtrArray *rules;        /* BreakRule, in the order set */
static GPtrArray *suspended;    /* Suspended, oldest first */
static int n_rules;             /* atomic: breakpoints anywhere */
static int n_suspended;         /* atomic: requests stopped anywhere */
static uint64_t resume_seq;     /* resumes issued */
static uint64_t settled_seq;    /* the last resumed request that settled */
static uint64_t printed_seq;    /* the last resume that was reported */

static void init_lists(void)
{
    if (!rules) {
        rules = g_ptr_array_new();
        suspended = g_ptr_array_new();
    }
}

static void free_rule(BreakRule *r)
{
    g_free(r->tag);
    g_free(r);
}

static BreakRule *find_rule(BlockDriverState *bs, BlkdebugEvent event)
{
    for (guint i = 0; i < rules->len; i++) {
        BreakRule *r = rules->pdata[i];

        if (r->bs == bs && r->event == event) {
            return r;
        }
    }
    return NULL;
}

void blkdebug_break_event(BlockDriverState *bs, BlkdebugEvent event)
{
    uint64_t settles = 0;   /* the resume this request owes a settle to */
    BreakRule *r;

    if (!g_atomic_int_get(&n_rules)) {
        return;
    }
    g_mutex_lock(&lock);
    while ((r = find_rule(bs, event))) {
        Suspended *sp = g_new0(Suspended, 1);

        g_ptr_array_remove(rules, r);
        g_atomic_int_add(&n_rules, -1);
        sp->bs = bs;
        sp->holds_lock = bdrv_node_locks_held() > 0;
        sp->tag = g_steal_pointer(&r->tag);
        free_rule(r);
        g_ptr_array_add(suspended, sp);
        g_atomic_int_inc(&n_suspended);
        printf("blkdebug: Suspended request '%s'\n", sp->tag);
        if (settles) {
            settled_seq = settles;
        }
        g_cond_broadcast(&cond);
        while (!sp->resumed) {
            g_cond_wait(&cond, &lock);
        }
        settles = sp->seq;
        g_free(sp->tag);
        g_free(sp);
    }
    if (settles) {
        /* go on only once the resumer printed, as QEMU's order has it */
        settled_seq = settles;
        g_cond_broadcast(&cond);
        while (printed_seq < settles) {
            g_cond_wait(&cond, &lock);
        }
    }
    g_mutex_unlock(&lock);
}

int blkdebug_breakpoint(BlockDriverState *bs, const char *event, const char *tag)
{
    BreakRule *r;
    int ev;

    for (ev = 0; ev < BLKDBG__MAX; ev++) {
        if (!strcmp(event, BlkdebugEvent_str[ev])) {
            break;
        }
    }
    if (ev == BLKDBG__MAX) {
        return -ENOENT;
    }
    r = g_new0(BreakRule, 1);
    *r = (BreakRule) { .bs = bs, .event = ev, .tag = g_strdup(tag) };
    g_mutex_lock(&lock);
    init_lists();
    g_ptr_array_add(rules, r);
    g_atomic_int_inc(&n_rules);
    g_mutex_unlock(&lock);
    return 0;
}

/* Under the lock: wake the oldest request stopped under @tag, wait until it settled. */
static int resume_locked(BlockDriverState *bs, const char *tag, bool quiet)
{
    uint64_t seq;

    for (guint i = 0; suspended && i < suspended->len; i++) {
        Suspended *sp = suspended->pdata[i];

        if ((bs && sp->bs != bs) || (tag && strcmp(sp->tag, tag))) {
            continue;
        }
        g_ptr_array_remove_index(suspended, i);
        g_atomic_int_add(&n_suspended, -1);
        seq = ++resume_seq;
        sp->seq = seq;
        sp->resumed = true;     /* the request frees sp once it wakes */
        g_cond_broadcast(&cond);
        while (settled_seq < seq) {
            g_cond_wait(&cond, &lock);
        }
        if (!quiet) {
            printf("blkdebug: Resuming request '%s'\n", tag);
        }
        printed_seq = seq;
        g_cond_broadcast(&cond);
        return 0;
    }
    return -ENOENT;
}

int blkdebug_resume(BlockDriverState *bs, const char *tag)
{
    int ret;

    g_mutex_lock(&lock);
    ret = resume_locked(bs, tag, false);
    g_mutex_unlock(&lock);
    return ret;
}

int blkdebug_remove_breakpoint(BlockDriverState *bs, const char *tag)
{
    bool found = false;

    g_mutex_lock(&lock);
    while (resume_locked(bs, tag, false) == 0) {
        /* every request stopped under the tag */
    }
    for (guint i = 0; rules && i < rules->len;) {
        BreakRule *r = rules->pdata[i];

        if (r->bs == bs && !strcmp(r->tag, tag)) {
            g_ptr_array_remove_index(rules, i);
            g_atomic_int_add(&n_rules, -1);
            free_rule(r);
            found = true;
        } else {
            i++;
        }
    }
    g_mutex_unlock(&lock);
    return found ? 0 : -ENOENT;
}

bool blkdebug_is_suspended(BlockDriverState *bs, const char *tag)
{
    bool found = false;

    g_mutex_lock(&lock);
    for (guint i = 0; suspended && i < suspended->len && !found; i++) {
        Suspended *sp = suspended->pdata[i];

        found = sp->bs == bs && !strcmp(sp->tag, tag);
    }
    g_mutex_unlock(&lock);
    return found;
}

int bdrv_debug_suspended_requests(void)
{
    int n;

    g_mutex_lock(&lock);
    n = suspended ? (int)suspended->len : 0;
    g_mutex_unlock(&lock);
    return n;
}

int bdrv_debug_suspended_holding_locks(void)
{
    int n = 0;

    g_mutex_lock(&lock);
    for (guint i = 0; suspended && i < suspended->len; i++) {
        n += ((Suspended *)suspended->pdata[i])->holds_lock;
    }
    g_mutex_unlock(&lock);
    return n;
}

bool bdrv_debug_breakpoints_in_use(void)
{
    /* lock-free: the request layer asks this for every request */
    return g_atomic_int_get(&n_rules) > 0 || g_atomic_int_get(&n_suspended) > 0;
}

void bdrv_debug_resume_all(void)
{
    g_mutex_lock(&lock);
    while (resume_locked(NULL, NULL, true) == 0) {
        /* quietly: the tool is closing its image */
    }
    g_mutex_unlock(&lock);
}

void blkdebug_break_close(BlockDriverState *bs)
{
    g_mutex_lock(&lock);
    for (guint i = 0; rules && i < rules->len;) {
        BreakRule *r = rules->pdata[i];

        if (r->bs == bs) {
            g_ptr_array_remove_index(rules, i);
            g_atomic_int_add(&n_rules, -1);
            free_rule(r);
        } else {
            i++;
        }
    }
    g_mutex_unlock(&lock);
}
