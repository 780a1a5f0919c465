/*
 * blkdebug breakpoints (blkdebug-break.c), used by blkdebug.c only: the
 * driver's debug_breakpoint/remove/resume/is_suspended callbacks and the hook
 * that stops a request at an event with a breakpoint on it.
 */
#ifndef BLOCK_BLKDEBUG_BREAK_H
#define BLOCK_BLKDEBUG_BREAK_H

#include "block/block_int.h"

/* @bs signals @event in a request: stop here while a breakpoint says so */
void blkdebug_break_event(BlockDriverState *bs, BlkdebugEvent event);

int blkdebug_breakpoint(BlockDriverState *bs, const char *event, const char *tag);
int blkdebug_remove_breakpoint(BlockDriverState *bs, const char *tag);
int blkdebug_resume(BlockDriverState *bs, const char *tag);
bool blkdebug_is_suspended(BlockDriverState *bs, const char *tag);

/* @bs closes: forget its breakpoints (no request of it can be suspended) */
void blkdebug_break_close(BlockDriverState *bs);

#endif
