/*
 * qcow2 persistent dirty bitmaps in memory: the state shared by the tracking
 * code (qcow2-bitmap-track.c: load, record, resize, store) and the bitmap
 * operations of qemu-img bitmap (qcow2-bitmap-ops.c).
 */
#ifndef BLOCK_QCOW2_BITMAP_INT_H
#define BLOCK_QCOW2_BITMAP_INT_H

#include "block/qcow2.h"

#define BME_MAX_NAME_SIZE   1023
#define BME_MAX_BITMAPS     65535
#define BME_MIN_GRAN_BITS   9
#define BME_MAX_GRAN_BITS   31

typedef struct Qcow2Bitmap {
    Qcow2BitmapEntry *e;        /* directory entry; dir_offset 0: not on disk yet */
    bool recording;             /* the auto flag: changes are recorded */
    bool inconsistent;          /* in_use when loaded: kept as is, only removable */
    bool broken;                /* could not be tracked: left in_use, not stored */
    bool removed;               /* qemu-img bitmap --remove: gone when stored */
    bool rewrite_table;         /* store writes a new table even if nothing changed */
    uint64_t disk_size;         /* guest bytes the bits cover */
    uint64_t nb_chunks;         /* cluster-sized pieces of bitmap data */
    uint64_t *table;            /* entry per chunk (host order), as on disk */
    uint64_t old_table_size;    /* entries of the table on disk */
    uint64_t *freed;            /* old data clusters to free once stored */
    uint64_t nb_freed;
    uint8_t **chunks;           /* materialized chunks, NULL: not read yet */
    bool *changed;              /* chunk differs from its table entry (NULL: zeros) */
} Qcow2Bitmap;

/* Bits and cluster-sized chunks of a bitmap over @disk_size bytes. */
uint64_t qcow2_bitmap_bits(uint64_t disk_size, int gbits);
uint64_t qcow2_bitmap_chunks(BDRVQcow2State *s, uint64_t disk_size, int gbits);
/* A bitmap read from @bs's directory entry @e (which it takes), or NULL. */
Qcow2Bitmap *qcow2_bitmap_load(BlockDriverState *bs, Qcow2BitmapEntry *e);
void qcow2_bitmap_free(Qcow2Bitmap *bm);
/* Chunk @i in memory (read from @bs, or zeros / ones as its entry says). */
int qcow2_bitmap_materialize(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t i);
/* Set the bits for guest bytes [offset, offset+bytes); -errno if a chunk fails. */
int qcow2_bitmap_set_range(BlockDriverState *bs, Qcow2Bitmap *bm, uint64_t offset,
                           uint64_t bytes);
/* Why a directory entry cannot be used as a bitmap of this image, or NULL. */
const char *qcow2_bitmap_unsupported_reason(BlockDriverState *bs, Qcow2BitmapEntry *e);
/* Loaded bitmap (not removed) named @name, or NULL. */
Qcow2Bitmap *qcow2_bitmap_find(BlockDriverState *bs, const char *name);

#endif
