/*
 * qemu-io's blkdebug breakpoint commands: break, wait_break, resume and
 * remove_break, with QEMU 7.2's messages. They run while requests are in
 * flight (a request stopped at a breakpoint stays in flight until resumed);
 * the breakpoints themselves live in block/blkdebug-break.c.
 */
#include "qemu/osdep.h"
#include "block/aio.h"
#include "qemu-io.h"

static int break_f(int argc, char **argv)
{
    int ret = bdrv_debug_breakpoint(qemuio_bs, argv[1], argv[2]);

    (void)argc;
    if (ret < 0) {
        printf("Could not set breakpoint: %s\n", strerror(-ret));
        return ret;
    }
    return 0;
}

const cmdinfo_t qemuio_break_cmd = {
    .name = "break", .argmin = 2, .argmax = 2, .cfunc = break_f,
    .needs_file = true, .async = true, .args = "event tag",
    .oneline = "sets a breakpoint on event and tags the stopped request as tag",
};

static int remove_break_f(int argc, char **argv)
{
    int ret = bdrv_debug_remove_breakpoint(qemuio_bs, argv[1]);

    (void)argc;
    if (ret < 0) {
        printf("Could not remove breakpoint %s: %s\n", argv[1], strerror(-ret));
        return ret;
    }
    return 0;
}

const cmdinfo_t qemuio_remove_break_cmd = {
    .name = "remove_break", .argmin = 1, .argmax = 1, .cfunc = remove_break_f,
    .needs_file = true, .async = true, .args = "tag",
    .oneline = "remove a breakpoint by tag",
};

static int resume_f(int argc, char **argv)
{
    int ret = bdrv_debug_resume(qemuio_bs, argv[1]);

    (void)argc;
    if (ret < 0) {
        printf("Could not resume request: %s\n", strerror(-ret));
        return ret;
    }
    return 0;
}

const cmdinfo_t qemuio_resume_cmd = {
    .name = "resume", .argmin = 1, .argmax = 1, .cfunc = resume_f,
    .needs_file = true, .async = true, .args = "tag",
    .oneline = "resumes the request tagged as tag",
};

/* Like QEMU's, waits for as long as it takes: completions are reported meanwhile. */
static int wait_break_f(int argc, char **argv)
{
    (void)argc;
    while (!bdrv_debug_is_suspended(qemuio_bs, argv[1])) {
        if (!bdrv_aio_poll(false)) {
            g_usleep(200);
        }
    }
    return 0;
}

const cmdinfo_t qemuio_wait_break_cmd = {
    .name = "wait_break", .argmin = 1, .argmax = 1, .cfunc = wait_break_f,
    .needs_file = true, .async = true, .args = "tag",
    .oneline = "waits for the suspension of a request",
};
