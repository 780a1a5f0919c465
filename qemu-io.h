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

/* Open @name (may be NULL with --image-opts style @opts) as the current image. */
int qemuio_open(const char *name, JsonObject *opts, int flags, bool writethrough);
void qemuio_close(void);

/*
 * Run one command line. Returns 0 on success, -1 on a failed command (the exit code
 * becomes 1), and sets *quit when the command asks to stop.
 */
int qemuio_command(const char *line, bool *quit);

#endif
