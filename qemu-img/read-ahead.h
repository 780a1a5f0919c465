/*
 * Reading ahead for sources far away (qemu-img/read-ahead.c): one read in
 * flight while the caller writes what the previous one brought.
 */
#ifndef QEMU_IMG_READ_AHEAD_H
#define QEMU_IMG_READ_AHEAD_H

typedef struct ReadAhead ReadAhead;

/* Does @bs (or a node under it) wait on a network for each request? */
bool read_ahead_wanted(BlockDriverState *bs);
/* Two buffers of @bufsize bytes: one being read into, one the caller uses. */
ReadAhead *read_ahead_new(size_t bufsize);
/* Start reading [@offset, @offset + @n) of @bs (after the read in flight). */
void read_ahead_start(ReadAhead *ra, BlockDriverState *bs, int64_t offset, int64_t n);
/*
 * The data of [@offset, @offset + @n) of @bs if it was read ahead (waits for
 * it), NULL if it was not or the read failed. It stays valid until the second
 * read_ahead_start() after this.
 */
uint8_t *read_ahead_take(ReadAhead *ra, BlockDriverState *bs, int64_t offset, int64_t n);
/* Waits for a read in flight. */
void read_ahead_free(ReadAhead *ra);

#endif
