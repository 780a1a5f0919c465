/*
 * The public block layer API: opening images into a graph of nodes, synchronous
 * I/O on nodes, block status, creating images, and the flags that go with them.
 * Front ends (qemu-img, qemu-io, the storage daemon) use only this header.
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include "qemu/osdep.h"
#include "qemu/option.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;

/* Open flags */
#define BDRV_O_RDWR         0x0002  /* open read-write */
#define BDRV_O_SNAPSHOT     0x0008  /* image read-only under a temporary overlay (-s) */
#define BDRV_O_NOCACHE      0x0020  /* O_DIRECT (cache=none, directsync) */
#define BDRV_O_NO_BACKING   0x0100  /* do not open the backing file */
#define BDRV_O_NO_FLUSH     0x0200  /* flushes do nothing (cache=unsafe) */
#define BDRV_O_WRITETHROUGH 0x0400  /* flush after every write (writethrough, directsync) */
#define BDRV_O_PROTOCOL     0x0800  /* open a protocol node only, no format layer */
#define BDRV_O_FORCE_SHARE  0x1000  /* -U: take no locks that block others */
#define BDRV_O_NO_DATA_FILE 0x2000  /* do not open an external data file (info/map/check) */
#define BDRV_O_UNTRUSTED    0x4000  /* refuse images that refer to other files */
#define BDRV_O_NO_IO        0x8000  /* metadata only (info): no consistent read needed */
#define BDRV_O_CHECK        0x10000 /* opened for qemu-img check: corrupt/dirty tolerated */
#define BDRV_O_NO_SHARE     0x40000 /* read-only; others may not write or resize */
#define BDRV_O_UNMAP        0x80000 /* discard=unmap: pass discards down to the files */
#define BDRV_O_RESIZE       0x100000 /* the user resizes the image (qemu-img resize) */
/* open a node nobody uses yet (blockdev-add, children): it needs nothing, so it
 * takes no locks until a parent or an export attaches to it */
#define BDRV_O_NO_USER      0x200000
/* one pass in order (commit, rebase): drivers keep their default metadata caches
 * small */
#define BDRV_O_SEQUENTIAL   0x400000
/* every read copies what it reads from below (the backing chain) into this node
 * (qemu-io -C); only the node opened gets it, not its children */
#define BDRV_O_COPY_ON_READ 0x800000

/*
 * Permissions, QEMU's model: every user of a node says what it needs (perm) and
 * what it lets other users have at the same time (shared). A node's needs are
 * the union of its users' perms, the intersection of their shared sets; protocol
 * drivers turn them into OFD locks other processes see (file-posix.c), filters
 * pass them on to their child. A node opened as a child has no user until its
 * parent attaches (and so takes no locks: QEMU's blockdev-add of a bare file).
 */
#define BLK_PERM_CONSISTENT_READ 0x01
#define BLK_PERM_WRITE           0x02
#define BLK_PERM_WRITE_UNCHANGED 0x04
#define BLK_PERM_RESIZE          0x08
#define BLK_PERM_ALL             0x0f

/*
 * Add (or replace) @owner's use of @bs: @perm needed, @shared allowed to others.
 * Fails, leaving everything as it was, when another process's locks conflict.
 * Such a user is not checked against the other users within this process (a
 * tool's open is alone on its node). 0 or -errno.
 */
int bdrv_perm_attach(BlockDriverState *bs, const void *owner, uint64_t perm,
                     uint64_t shared, GError **errp);
/*
 * The same for a user the storage daemon names in conflict messages: @desc ("an
 * unnamed block device", "stream job 'j'") uses the node as @child ("root",
 * "intermediate node"); @group (a job, or NULL) ties the uses of one job together.
 * Such users are also checked against the other users of the node in this
 * process: "Permission conflict on node 'x': permissions 'write' are both
 * required by ... and unshared by ...", QEMU's words.
 */
int bdrv_perm_attach_user(BlockDriverState *bs, const void *owner, const char *desc,
                          const char *child, const void *group, uint64_t perm,
                          uint64_t shared, GError **errp);
/*
 * An active commit of @bs (job @group) stands between the node and its present
 * users (exports, or the job's filter node over @bs that they use): from now on
 * (@behind) what they need no longer reaches @bs's backing file, as behind
 * QEMU's commit filter; !@behind undoes it.
 */
void bdrv_perm_put_behind(BlockDriverState *bs, const void *group, bool behind);
/*
 * Whether job @group uses @bs or a node above it (a parent, its parent...):
 * draining @bs reaches such a job in QEMU, which pauses it for the while.
 */
bool bdrv_perm_group_above(BlockDriverState *bs, const void *group);
/* Drop @owner's use of @bs (if any): its locks follow. */
void bdrv_perm_detach(BlockDriverState *bs, const void *owner);

/* Cache modes, as parsed from -t */
#define BDRV_O_CACHE_MASK (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | BDRV_O_WRITETHROUGH)
/* Parse none|writeback|writethrough|directsync|unsafe into flags; -1 if unknown. */
int bdrv_parse_cache_mode(const char *mode, int *flags);
/* Parse off|ignore|on|unmap into BDRV_O_UNMAP; -1 if unknown. */
int bdrv_parse_discard_flags(const char *mode, int *flags);

/* Request flags */
#define BDRV_REQ_MAY_UNMAP        0x0004  /* zero write may deallocate */
#define BDRV_REQ_FUA              0x0010  /* data must be stable when the call returns */
#define BDRV_REQ_WRITE_COMPRESSED 0x0020  /* write compressed (qcow2 without data file) */
#define BDRV_REQ_NO_FALLBACK      0x0100  /* zero write: fail rather than write zeros */
#define BDRV_REQ_COPY_ON_READ     0x0200  /* read: copy what is read from below up */

/* Block status flags */
#define BDRV_BLOCK_DATA         0x01  /* reads come from data (not known zero) */
#define BDRV_BLOCK_ZERO         0x02  /* reads as zero */
#define BDRV_BLOCK_OFFSET_VALID 0x04  /* *map is the offset in *file */
#define BDRV_BLOCK_ALLOCATED    0x10  /* content determined by this layer */
#define BDRV_BLOCK_EOF          0x20  /* the range reaches the end of the node */
#define BDRV_BLOCK_RECURSE      0x40  /* ask *file for DATA/ZERO of the mapped range */

typedef enum PreallocMode {
    PREALLOC_MODE_OFF,
    PREALLOC_MODE_METADATA,
    PREALLOC_MODE_FALLOC,
    PREALLOC_MODE_FULL,
    PREALLOC_MODE__MAX,
} PreallocMode;

extern const char *const PreallocMode_str[PREALLOC_MODE__MAX];
/* Parse a preallocation name; -1 if unknown. */
int prealloc_mode_parse(const char *s);

/* Results of a consistency check (qemu-img check). */
typedef struct BdrvCheckResult {
    int corruptions;
    int leaks;
    int check_errors;
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset;
    struct {
        int64_t total_clusters;
        int64_t allocated_clusters;
        int64_t fragmented_clusters;
        int64_t compressed_clusters;
    } bfi;
} BdrvCheckResult;

#define BDRV_FIX_LEAKS  1
#define BDRV_FIX_ERRORS 2

typedef struct BlockDriverInfo {
    int cluster_size;
    int64_t vm_state_offset;
    bool is_dirty;
} BlockDriverInfo;

/* Human dump of format-specific info ({"type":..., "data": {...}}), QEMU's layout:
 * "key name: value" lines, nested members indented by 4 more spaces. */
void bdrv_specific_info_dump(JsonNode *info, int indent);

/* ---- drivers ---- */
BlockDriver *bdrv_find_format(const char *name);
const char *bdrv_get_format_name(BlockDriverState *bs);
/* Does the node's driver take a backing file (qcow2)? What it leaves unallocated
 * then reads from below, or as zeros; elsewhere it is only "not data". */
bool bdrv_supports_backing(BlockDriverState *bs);
/* The first node at or below @bs that is not a filter (blkdebug, raw, throttle,
 * copy-on-read...): whose backing chain the filters show. */
BlockDriverState *bdrv_skip_filters(BlockDriverState *bs);
/* Is it a protocol node (file, null-co, blkdebug...)? */
bool bdrv_is_protocol(BlockDriverState *bs);
/* Iterate format + protocol names, as in "Supported formats:". */
void bdrv_iterate_format(void (*fn)(void *opaque, const char *name), void *opaque);

/* ---- opening ---- */
/*
 * Open an image. @filename may be NULL (then @options must say where), a path, or
 * "json:{...}". @options (may be NULL; not consumed) are merged over what the filename
 * yields. @options["driver"] names the format; without it the format is probed.
 * Errors use QEMU's wording ("Could not open 'x': No such file or directory").
 * With BDRV_O_SNAPSHOT the image is opened read-only and the node returned is a
 * temporary qcow2 overlay over it, already unlinked: writes vanish on close.
 */
BlockDriverState *bdrv_open(const char *filename, JsonObject *options, int flags,
                            GError **errp);
void bdrv_ref(BlockDriverState *bs);
/* Drop a reference; at zero, flush, close and free the node and its children. */
void bdrv_unref(BlockDriverState *bs);

/* ---- node graph ---- */
const char *bdrv_get_node_name(BlockDriverState *bs);
BlockDriverState *bdrv_find_node(const char *node_name);
/* Iterate all named nodes (user-named and automatic). Returns next after prev. */
BlockDriverState *bdrv_next_node(BlockDriverState *prev);
BlockDriverState *bdrv_file_child(BlockDriverState *bs);
BlockDriverState *bdrv_backing_child(BlockDriverState *bs);
BlockDriverState *bdrv_data_file_child(BlockDriverState *bs);
const char *bdrv_get_filename(BlockDriverState *bs);
/* References held on the node: its parents', exports' and its owner's. */
int bdrv_get_refcnt(BlockDriverState *bs);
/* The node's options as opened (children nested); borrowed, may be NULL. */
JsonObject *bdrv_get_options(BlockDriverState *bs);
bool bdrv_is_read_only(BlockDriverState *bs);
int bdrv_get_flags(BlockDriverState *bs);
/* The backing file name stored in the image, and its format (may be NULL). */
const char *bdrv_get_backing_filename(BlockDriverState *bs);
const char *bdrv_get_backing_format(BlockDriverState *bs);
/* Is this a name with a protocol prefix ("proto:...") or json:, not a path? */
bool bdrv_filename_is_special(const char *name);
/* Make a path relative to @base's folder, as backing files are resolved. */
char *bdrv_path_combine(const char *base, const char *name);
/* The folder ("dir/", or "") relative names are resolved in; NULL with errp set
 * when the node has none ("Cannot generate a base directory for quorum nodes"). */
char *bdrv_dirname(BlockDriverState *bs, GError **errp);
/* The backing file name stored in @bs, resolved against bdrv_dirname(); NULL
 * (errp set) when it cannot be, or when there is none (errp untouched). */
char *bdrv_get_full_backing_filename(BlockDriverState *bs, GError **errp);
/* "json:{...}" or the plain file name describing how to reopen this node. */
char *bdrv_get_full_filename(BlockDriverState *bs);

/* ---- I/O (0 or -errno) ---- */
int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf, int flags);
int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf,
                int flags);
int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
/*
 * A discard the node passes on whatever its discard= option says: a format
 * driver freeing what the guest can no longer reach (the clusters a shrink cuts
 * off), as QEMU's protocol children do by default.
 */
int bdrv_pdiscard_always(BlockDriverState *bs, int64_t offset, int64_t bytes);
int bdrv_flush(BlockDriverState *bs);

/*
 * blkdebug breakpoints, on the first blkdebug node down @bs's file chain
 * (-ENOTSUP if there is none; -ENOENT for an unknown event or tag). A request
 * stopped at a breakpoint waits in its worker thread until resumed.
 */
int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event, const char *tag);
int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag);
int bdrv_debug_resume(BlockDriverState *bs, const char *tag);
bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag);
/* requests stopped at a breakpoint on any node; resume them all, quietly */
int bdrv_debug_suspended_requests(void);
/* of those, the ones that stopped holding a node's lock (its requests wait) */
int bdrv_debug_suspended_holding_locks(void);
/* is any breakpoint set, or any request stopped at one? */
bool bdrv_debug_breakpoints_in_use(void);
void bdrv_debug_resume_all(void);
/*
 * The VM state area (QEMU's bdrv_load_vmstate/bdrv_save_vmstate): 0 or -errno;
 * -ENOTSUP where no format in the chain keeps one (only qcow2 does).
 */
int bdrv_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes);
int bdrv_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes);
/* Resize; exact=false allows the driver to round up. */
int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact, PreallocMode prealloc,
                  int flags, GError **errp);
int64_t bdrv_getlength(BlockDriverState *bs);
/* Bytes the node's files occupy on the host (-ENOTSUP if unknown). */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi);
/* Minimum alignment of requests on this node (1 unless O_DIRECT). */
uint32_t bdrv_get_request_alignment(BlockDriverState *bs);

/*
 * Block status of [offset, offset+bytes) at this node: returns BDRV_BLOCK_* flags
 * for the first *pnum bytes (>0 unless at EOF), or -errno. map and file are set when
 * OFFSET_VALID. DATA/ZERO are resolved from the protocol layer below formats.
 */
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file);
/*
 * What a reader of @bs sees in the first *pnum bytes of the range, through the
 * whole backing chain: BDRV_BLOCK_DATA / ZERO (unallocated everywhere: zeros).
 */
int bdrv_block_status_above(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            int64_t *pnum);
/*
 * A writer of parts at consecutive offsets (qcrypto_block_encrypt_stream()'s
 * sink): @done bytes after @offset of @bs.
 */
typedef struct BdrvWriteAt {
    BlockDriverState *bs;
    int64_t offset;
} BdrvWriteAt;
int bdrv_write_at(void *opaque, size_t done, const uint8_t *buf, size_t len);
/*
 * Zero-copy reads: true when the first *pnum bytes at @offset of @bs are, as
 * they are, the bytes at *fd_offset of host file *fd (the file node's own
 * descriptor, read through the page cache), and every node on the way was
 * opened read-only for good, so that they stay so. False for holes, zeros,
 * encrypted or compressed data, backing files, filters and O_DIRECT.
 */
bool bdrv_map_host_file(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        int64_t *pnum, int *fd, int64_t *fd_offset);
/*
 * Record which ranges (of @granularity bytes) writes, zero writes and discards
 * through @bs itself change from now on (an active commit's dirty ranges);
 * bdrv_track_take() hands out and clears the first dirty run, false when none.
 */
void bdrv_track_writes(BlockDriverState *bs, int64_t granularity);
void bdrv_track_stop(BlockDriverState *bs);
bool bdrv_track_take(BlockDriverState *bs, int64_t *offset, int64_t *bytes);
/*
 * Before-write notifiers: @fn runs before every write, zero write and discard
 * of [offset, offset+bytes) that reaches @bs through the generic request paths,
 * before the data changes (a backup's copy-before-write). A negative return
 * fails the request with that error, and the data stays as it was.
 */
typedef int (*BdrvBeforeWriteFunc)(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                   void *opaque);
void bdrv_add_before_write(BlockDriverState *bs, BdrvBeforeWriteFunc fn, void *opaque);
void bdrv_remove_before_write(BlockDriverState *bs, BdrvBeforeWriteFunc fn,
                              void *opaque);
/*
 * Write thresholds (block/write-threshold.c): the first write, zero write or
 * discard reaching past @threshold (0: none) clears it and calls the notify
 * function (from whatever thread ran the request) with the node's name, the
 * threshold and by how much the request went past it.
 */
typedef void (*BdrvWriteThresholdFunc)(const char *node_name, uint64_t threshold,
                                       uint64_t exceeded);
void bdrv_write_threshold_set_notify(BdrvWriteThresholdFunc fn);
void bdrv_write_threshold_set(BlockDriverState *bs, uint64_t threshold);
uint64_t bdrv_write_threshold_get(BlockDriverState *bs);
/* Is the range allocated in this layer (not just the backing chain)? 1/0/-errno. */
int bdrv_is_allocated(BlockDriverState *bs, int64_t offset, int64_t bytes, int64_t *pnum);

/* ---- backing files: qemu-img rebase and commit ---- */
/*
 * Record another backing file in the image's header: @backing_file (NULL: none)
 * and its format @backing_fmt (NULL: none). What is written so far is made stable
 * first; the open backing child is left as it is. 0 or -errno: -ENOTSUP (the
 * format has no backing files), -EINVAL (name too long), -ENOSPC (no room in the
 * header), -EACCES (read-only).
 */
int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt);
/*
 * Make @backing (NULL: none) the backing child of @bs in the open graph (what
 * reads of unallocated clusters fall through to); the image's header is left
 * alone (bdrv_change_backing_file). The old backing child is dropped.
 */
int bdrv_set_backing(BlockDriverState *bs, BlockDriverState *backing, GError **errp);
/*
 * Every node using @from as its file or data file uses @to instead (@to itself
 * excepted): an external snapshot of a node that is some format's file, as
 * QEMU's bdrv_append() moves all parents. 0, or -EPERM with errp set when a
 * parent's needs conflict on @to (the parents moved before it stay moved).
 */
int bdrv_replace_in_parents(BlockDriverState *from, BlockDriverState *to, GError **errp);
/* @bs's name, and those of the nodes above it, after its children changed. */
void bdrv_refresh_filenames_above(BlockDriverState *bs);
/*
 * Make @bs's backing child writable (a commit into it): a read-only backing file
 * the image's header named is opened again read-write in its place (a new
 * automatic node name). "Block node is read-only" for one given by the user.
 */
int bdrv_reopen_backing_rw(BlockDriverState *bs, GError **errp);
/*
 * Turn @bs read-only in place, keeping the node (its name, its parents): what
 * it caches is written down (qcow2 stores its persistent bitmaps and clears
 * its dirty bit), its automatically named file children follow, and its use
 * of the others no longer asks to write, so their locks let others write
 * (the old top of an external snapshot, as QEMU's). No-op if already so.
 */
int bdrv_make_read_only(BlockDriverState *bs, GError **errp);
/*
 * Undo bdrv_make_read_only(): @bs read-write again, in place (a commit into
 * it). "Block node is read-only" for a node opened read-only.
 */
int bdrv_make_writable_again(BlockDriverState *bs, GError **errp);
/* Was @bs turned read-only by bdrv_make_read_only() (and not back since)? */
bool bdrv_is_read_only_in_place(BlockDriverState *bs);
/*
 * Make the image empty: nothing allocated, its backing file shows through
 * everywhere (qemu-img commit, after the data went into the backing file).
 * -ENOTSUP with errp set if the format cannot; 0 or -errno.
 */
int bdrv_make_empty(BlockDriverState *bs, GError **errp);
/*
 * The node of @bs's backing chain (below @bs) that @name refers to, or NULL. A
 * relative @name is taken relative to the folder of each image in turn and
 * compared with that image's backing file as the same path; names with a
 * protocol prefix or json: are compared as they are written.
 */
BlockDriverState *bdrv_find_backing_image(BlockDriverState *bs, const char *name);

/* ---- check, amend, info ---- */
int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, int fix);
int bdrv_amend(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp);
/* Progress of a long amend (qemu-img amend -p): @done of @total work units. */
typedef void BdrvAmendStatusCB(BlockDriverState *bs, int64_t done, int64_t total,
                               void *opaque);
int bdrv_amend_with_status(BlockDriverState *bs, JsonObject *opts, bool force,
                           BdrvAmendStatusCB *cb, void *opaque, GError **errp);
/* For drivers: report amend progress to the caller's callback, if any. */
void bdrv_amend_report(BlockDriverState *bs, int64_t done, int64_t total);
/* Format-specific info as QEMU's "format-specific" JSON member; NULL if none. */
JsonNode *bdrv_get_specific_info(BlockDriverState *bs, GError **errp);
/* Does the node encrypt guest data (ImageInfo's "encrypted")? */
bool bdrv_is_encrypted(BlockDriverState *bs);
/* Is the image's dirty flag set? */
bool bdrv_is_dirty(BlockDriverState *bs);

/* ---- snapshots (internal) ---- */
int bdrv_snapshot_create(BlockDriverState *bs, const char *name);
/* The same with the VM clock and instruction count (-1: none) to record, as a
 * running QEMU records them (the daemon's blockdev-snapshot-internal-sync). */
int bdrv_snapshot_create_vm(BlockDriverState *bs, const char *name, int64_t vm_clock_nsec,
                            int64_t icount);
/* Can the node's format keep internal snapshots at all? */
bool bdrv_supports_snapshots(BlockDriverState *bs);
/* Number of snapshots; fills a GPtrArray of JsonObject per snapshot if non-NULL. */
int bdrv_snapshot_list(BlockDriverState *bs, GPtrArray *out);
/* Revert the image to / delete the snapshot with this ID or name. 0 or -errno with
 * errp set ("Block driver does not support snapshots" without driver support). */
int bdrv_snapshot_goto(BlockDriverState *bs, const char *name, GError **errp);
int bdrv_snapshot_delete(BlockDriverState *bs, const char *name, GError **errp);
/*
 * Read-only nodes (qemu-img measure -l): show the snapshot with ID @id and name
 * @name (NULL matches any) from now on; the virtual size stays the image's.
 * "Can't find snapshot" when none matches.
 */
int bdrv_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                           GError **errp);

/* ---- persistent dirty bitmaps (qemu-img bitmap) ---- */
typedef enum BdrvBitmapOp {
    BDRV_BITMAP_ADD,        /* @granularity: 0 for the default */
    BDRV_BITMAP_REMOVE,
    BDRV_BITMAP_CLEAR,
    BDRV_BITMAP_ENABLE,
    BDRV_BITMAP_DISABLE,
    BDRV_BITMAP_MERGE,      /* bitmap @src_name of @src (NULL: this image) into @name */
} BdrvBitmapOp;
/* Apply one operation to bitmap @name; kept in memory until bdrv_bitmaps_store. */
int bdrv_bitmap_op(BlockDriverState *bs, BdrvBitmapOp op, const char *name,
                   uint64_t granularity, BlockDriverState *src, const char *src_name,
                   GError **errp);
/* Write the bitmaps back now (close does it too, without reporting to the caller). */
int bdrv_bitmaps_store(BlockDriverState *bs, GError **errp);
/* QMP's "dirty-bitmaps" of a node (name, recording, persistent, busy, granularity,
 * count, inconsistent), newest first as QEMU lists them; NULL when it has none. */
JsonArray *bdrv_query_dirty_bitmaps(BlockDriverState *bs);
/* Can @bs hold persistent dirty bitmaps (qcow2 v3)? The node itself, no filter
 * looked through (QEMU's convert --bitmaps check). */
bool bdrv_supports_persistent_bitmaps(BlockDriverState *bs);
/*
 * Is the first *@pnum bytes of [offset, offset+bytes) dirty (1) or clean (0) in
 * persistent bitmap @name of @bs (or the first node below it that has bitmaps)?
 * -ENOENT when there is no such bitmap.
 */
int bdrv_dirty_bitmap_status(BlockDriverState *bs, const char *name, int64_t offset,
                             int64_t bytes, int64_t *pnum);

/* Can an image file be created under @filename's protocol ("file:", a device, no
 * prefix)? QEMU's messages for unknown ones and for those that cannot create. */
int bdrv_create_check_protocol(const char *filename, GError **errp);

/* ---- creating images ---- */
/*
 * Create an image of format @fmt from qemu-img style options (-o names, strings,
 * "size" included). Prints nothing. Errors in QEMU's words.
 */
int bdrv_create(const char *fmt, const char *filename, JsonObject *opts, GError **errp);

/* What to create (bdrv_img_create): qemu-img create's arguments. */
typedef struct BdrvImgCreateParams {
    const char *filename;
    const char *fmt;
    const char *base_filename;   /* -b */
    const char *base_fmt;        /* -F */
    int64_t size;                /* -1: from the options or the backing file */
    bool unsafe;                 /* -u: do not open the backing file */
    bool quiet;                  /* no "Formatting" line */
    const char *options;         /* -o list, may be NULL */
    /* turns @options into creation options, after the format checks */
    JsonObject *(*parse_options)(const char *options, GError **errp);
} BdrvImgCreateParams;

/*
 * Create an image as qemu-img create does, printing "Formatting '...', ..."
 * unless quiet. 0 or -errno, errp set (without the file name prefix qemu-img
 * adds).
 */
int bdrv_img_create(const BdrvImgCreateParams *p, GError **errp);
/*
 * Creation options (block/create-opts.c). A format's list is merged with that of
 * the protocol its files are created on ("file"): the format's entries first.
 */
/* -o help without a file name: "Supported <fmt> options:\n  name=<type> - help\n"...
 * for the format's own options; NULL if @fmt is unknown or cannot create. */
char *bdrv_create_opts_help(const char *fmt);
/* -o help with a file name: "Supported options:\n"... for the merged list. */
char *bdrv_create_opts_help_merged(const char *fmt);
/*
 * Check -o options (a flat object of strings) against the merged list: unknown
 * keys ("Invalid parameter 'x'"), bool/number/size values with QEMU's messages.
 * Sizes and numbers are rewritten in decimal. 0 or -errno.
 */
int bdrv_create_opts_check(const char *fmt, JsonObject *opts, GError **errp);
/* Rewrite checked bool values (yes/no/true/false) as on/off for the drivers. */
void bdrv_create_opts_normalize(const char *fmt, JsonObject *opts);
/* The "Formatting '...', fmt=..." line's option part, in QEMU's order, with the
 * defaults of unset options. */
char *bdrv_create_opts_describe(const char *fmt, JsonObject *opts);
/* Is @key a creation option of @fmt (merged list)? */
bool bdrv_create_opt_known(const char *fmt, const char *key);
/* The default value of creation option @key of @fmt, or NULL if it has none. */
const char *bdrv_create_opt_default(const char *fmt, const char *key);
/* Parse a size option value (suffixes, fractions, the full 64-bit range). */
int bdrv_parse_option_size(const char *str, uint64_t *result);
/* qemu-img amend -o help: "Amend options for '<fmt>':\n"...; NULL if the format
 * cannot amend. */
char *bdrv_amend_opts_help(const char *fmt);
/* Check amend options as bdrv_create_opts_check does; creation-only options get
 * "This option is only supported for image creation". */
int bdrv_amend_opts_check(const char *fmt, JsonObject *opts, GError **errp);

/* Can @fmt create images at all (qemu-img create, convert -O, measure -O)? */
bool bdrv_format_can_create(const char *fmt);

/* ---- measuring (qemu-img measure) ---- */
typedef struct BlockMeasureInfo {
    uint64_t required;          /* file bytes the new image needs for its data */
    uint64_t fully_allocated;   /* file bytes with every guest cluster allocated */
    bool has_bitmaps;           /* the source's persistent bitmaps can be copied */
    uint64_t bitmaps;           /* with has_bitmaps: the bytes they take */
} BlockMeasureInfo;
/*
 * How large a new image of format @fmt gets: a copy of @in_bs's contents (its
 * allocated data through the backing chain), or with @in_bs NULL an empty image of
 * @opts' "size". @opts are -o options already checked (bdrv_create_opts_check).
 * "Block driver 'x' does not support size measurement" for other formats.
 */
int bdrv_measure(const char *fmt, JsonObject *opts, BlockDriverState *in_bs,
                 BlockMeasureInfo *info, GError **errp);
/* For drivers' measure: the virtual size of @in_bs, or else @opts' "size". */
int bdrv_measure_virtual_size(JsonObject *opts, BlockDriverState *in_bs,
                              uint64_t *size, GError **errp);

/* Can the format write compressed data (BDRV_REQ_WRITE_COMPRESSED) at all? A driver
 * may still refuse it for a particular image (-ENOTSUP). */
bool bdrv_supports_compressed_writes(const char *fmt);

/* Open a plain file as a protocol node (no probing), used for data files. */
BlockDriverState *bdrv_open_file(const char *filename, int flags, GError **errp);

#endif
