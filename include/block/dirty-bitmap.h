/*
 * Dirty bitmaps of a node, as QMP manages them (block-dirty-bitmap-*): in-memory
 * bitmaps on any node (QEMU's default, persistent=false), set by every write,
 * zero write and discard that reaches the node through the generic request
 * paths and resized with it; and the node's persistent bitmaps, which the
 * format driver stores (qcow2: bdrv_bitmap_op and friends in block/block.h),
 * seen through the same calls. Names, granularities and rules are QEMU's.
 */
#ifndef BLOCK_DIRTY_BITMAP_H
#define BLOCK_DIRTY_BITMAP_H

#include "block/block.h"

/* QEMU's longest bitmap name (BDRV_BITMAP_MAX_NAME_SIZE) */
#define BDRV_BITMAP_MAX_NAME_SIZE 1023

/* What a bitmap is, whichever kind (bdrv_dirty_bitmap_describe). */
typedef struct BdrvDirtyBitmapDesc {
    bool persistent;        /* stored by the driver */
    bool readonly;          /* persistent on a read-only node: cannot change */
    bool recording;
    bool inconsistent;      /* persistent, flagged in use on disk */
    uint64_t granularity;
    int64_t size;           /* bytes the bitmap covers (the node's length) */
} BdrvDirtyBitmapDesc;

/* A detached copy of a bitmap's bits (merge sources, hashing). */
typedef struct BdrvBitmapBits {
    uint64_t granularity;
    int64_t size;
    uint64_t nb_bits;
    uint64_t *words;        /* bit i: words[i / 64] bit i % 64 */
} BdrvBitmapBits;

void bdrv_bitmap_bits_free(BdrvBitmapBits *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BdrvBitmapBits, bdrv_bitmap_bits_free)

/* The default granularity of a new bitmap on @bs (QEMU's: from the cluster size). */
uint64_t bdrv_dirty_bitmap_default_granularity(BlockDriverState *bs);

/* Is there a bitmap @name on @bs (either kind)? Fills @desc when non-NULL. */
bool bdrv_dirty_bitmap_describe(BlockDriverState *bs, const char *name,
                                BdrvDirtyBitmapDesc *desc);

/*
 * block-dirty-bitmap-add after the QMP checks (name not empty, granularity
 * valid or 0 for the default): "Bitmap already exists", the driver's errors
 * for persistent ones, "Bitmap name too long" for in-memory ones.
 */
int bdrv_dirty_bitmap_add(BlockDriverState *bs, const char *name, uint64_t granularity,
                          bool persistent, bool disabled, GError **errp);
/* Remove / clear / start or stop recording an existing bitmap (checked by the caller). */
int bdrv_dirty_bitmap_remove(BlockDriverState *bs, const char *name, GError **errp);
int bdrv_dirty_bitmap_clear(BlockDriverState *bs, const char *name, GError **errp);
int bdrv_dirty_bitmap_set_recording(BlockDriverState *bs, const char *name,
                                    bool recording, GError **errp);

/* A copy of bitmap @name's bits; NULL with errp set. */
BdrvBitmapBits *bdrv_dirty_bitmap_get_bits(BlockDriverState *bs, const char *name,
                                           GError **errp);
/* Set in @dst every byte range that is dirty in @src (granularities may differ). */
void bdrv_bitmap_bits_or(BdrvBitmapBits *dst, const BdrvBitmapBits *src);
/* Make @name's bits those of @bits (same size): the result of a merge. */
int bdrv_dirty_bitmap_set_bits(BlockDriverState *bs, const char *name,
                               const BdrvBitmapBits *bits, GError **errp);
/* QEMU's x-debug-block-dirty-bitmap-sha256 of the bits (lowercase hex). */
char *bdrv_bitmap_bits_sha256(const BdrvBitmapBits *bits);

/* ---- for the block core ---- */
/* A write, zero write or discard of [offset, offset+bytes) reached @bs. */
void bdrv_dirty_bitmaps_mark(BlockDriverState *bs, int64_t offset, int64_t bytes);
/* @bs's length changed: in-memory bitmaps follow it. */
void bdrv_dirty_bitmaps_resize(BlockDriverState *bs);
/* @bs goes away: drop its in-memory bitmaps. */
void bdrv_dirty_bitmaps_release_all(BlockDriverState *bs);
/* The in-memory bitmaps' part of bdrv_query_dirty_bitmaps, merged with the
 * driver's list @persistent (taken), newest first. NULL when there are none. */
JsonArray *bdrv_dirty_bitmaps_query(BlockDriverState *bs, JsonArray *persistent);

/*
 * Bitmaps a block job keeps on @bs for itself (QEMU's anonymous bitmaps):
 * @fn describes them, newest first, into @arr (bdrv_anon_bitmap_describe) for
 * query-named-block-nodes, which lists them before the named ones. Nothing
 * else sees them (they have no name).
 */
typedef void (*BdrvAnonBitmapsFn)(BlockDriverState *bs, JsonArray *arr, void *opaque);
void bdrv_anon_bitmaps_add(BlockDriverState *bs, BdrvAnonBitmapsFn fn, void *opaque);
void bdrv_anon_bitmaps_remove(BlockDriverState *bs, BdrvAnonBitmapsFn fn, void *opaque);
/* @named (bdrv_query_dirty_bitmaps; taken, may be NULL) with the anonymous
 * bitmaps first: query-named-block-nodes' list. */
JsonArray *bdrv_anon_bitmaps_prepend(BlockDriverState *bs, JsonArray *named);
/* One anonymous bitmap's description (not persistent). */
void bdrv_anon_bitmap_describe(JsonArray *arr, bool recording, uint64_t granularity,
                               int64_t count);
/* Status of an in-memory bitmap (see bdrv_dirty_bitmap_status); -ENOENT when
 * @bs has no in-memory bitmap of that name. */
int bdrv_dirty_bitmap_mem_status(BlockDriverState *bs, const char *name, int64_t offset,
                                 int64_t bytes, int64_t *pnum);

#endif
