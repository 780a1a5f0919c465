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

/* Open @name (may be NULL with --image-opts style @opts) as the current image. */
int qemuio_open(const char *name, JsonObject *opts, int flags, bool writethrough);
/* The same, leaving the error in @errp for the caller to print. */
int qemuio_open_err(const char *name, JsonObject *opts, int flags, bool writethrough,
                    GError **errp);
void qemuio_close(void);

/*
 * Run one command line. Returns 0 on success, -1 on a failed command (the exit code
 * becomes 1), and sets *quit when the command asks to stop.
 */
int qemuio_command(const char *line, bool *quit);

#endif
