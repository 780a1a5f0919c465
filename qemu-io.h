/*
 * qemu-io internals shared by the front end (qemu-io.c: arguments, opening, the
 * command loop) and the command table (qemu-io-cmds.c).
 */
#ifndef QEMU_IO_H
#define QEMU_IO_H

#include "block/block.h"

/* The open image (NULL when none) and how it was opened. */
extern BlockDriverState *qemuio_bs;
extern bool qemuio_writethrough;
/* What opened it (for reopen): the name (may be NULL), options (may be NULL), flags. */
extern char *qemuio_open_name;
extern JsonObject *qemuio_open_opts;
extern int qemuio_open_flags;

typedef int (*cmdfunc_t)(int argc, char **argv);

typedef struct cmdinfo {
    const char *name;
    const char *altname;
    cmdfunc_t cfunc;
    int argmin;
    int argmax;            /* -1: no maximum */
    bool needs_file;
    bool needs_write;      /* refused on a read-only image */
    bool async;            /* runs while requests are in flight (others wait for them) */
    bool overtakes;        /* runs while a request is stopped at a breakpoint: its
                            * own request goes beside it (qemuio_pread() ...) */
    const char *args;
    const char *oneline;
    void (*help)(void);
} cmdinfo_t;

/* Reset getopt for a new command's argv. */
void getopt_reset(void);
/* Print a command's usage line. */
void qemuio_command_usage(const cmdinfo_t *ci);
/* The reopen command (qemu-io-reopen.c). */
extern const cmdinfo_t qemuio_reopen_cmd;
/* The asynchronous commands (qemu-io-aio.c). */
extern const cmdinfo_t qemuio_aio_read_cmd, qemuio_aio_write_cmd, qemuio_aio_flush_cmd;
/* The blkdebug breakpoint commands (qemu-io-break.c). */
extern const cmdinfo_t qemuio_break_cmd, qemuio_remove_break_cmd, qemuio_resume_cmd,
    qemuio_wait_break_cmd;

/* Helpers the command files share (qemu-io-cmds.c). */
int64_t qemuio_cvtnum(const char *s);
void qemuio_print_cvtnum_err(int64_t rc, const char *arg);
int qemuio_parse_pattern(const char *arg);
/* Sum the lengths in @argv into @total: 0, or -1 after printing why not. */
int qemuio_parse_lengths(int n, char **argv, int64_t *total);
bool qemuio_buf_is_pattern(const uint8_t *buf, size_t len, uint8_t pattern);
void qemuio_dump_buffer(const void *buffer, int64_t offset, int64_t len);
struct timespec qemuio_tsub(struct timespec a, struct timespec b);
void qemuio_print_report(const char *op, struct timespec t, int64_t offset,
                         int64_t count, int64_t total, int cnt, bool Cflag);

/* Open @name (may be NULL with --image-opts style @opts) as the current image. */
int qemuio_open(const char *name, JsonObject *opts, int flags, bool writethrough);
/* The same, leaving the error in @errp for the caller to print. */
int qemuio_open_err(const char *name, JsonObject *opts, int flags, bool writethrough,
                    GError **errp);
void qemuio_close(void);
/* Wait for every request in flight: 0, or -EDEADLK if one is stopped at a breakpoint. */
int qemuio_drain(void);

/*
 * Run one command line. Returns 0 on success, -1 on a failed command (the exit code
 * becomes 1), and sets *quit when the command asks to stop.
 */
int qemuio_command(const char *line, bool *quit);

/*
 * A command's request on the open image. Commands run once what was submitted
 * has completed, except while a request is stopped at a breakpoint: then the
 * command's request goes through the request layer (block/aio.h), beside the
 * stopped one and kept in order with it, as QEMU's qemu-io runs it.
 */
int qemuio_pread(int64_t offset, int64_t bytes, void *buf, int flags);
int qemuio_pwrite(int64_t offset, int64_t bytes, const void *buf, int flags);
int qemuio_pwrite_zeroes(int64_t offset, int64_t bytes, int flags);
int qemuio_pdiscard(int64_t offset, int64_t bytes);

#endif
