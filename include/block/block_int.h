/*
 * The driver interface: the BlockDriver vtable every format and protocol driver
 * fills in, the BlockDriverState node, creation option tables and debug events.
 * Only block/ code includes this header.
 */
#ifndef BLOCK_BLOCK_INT_H
#define BLOCK_BLOCK_INT_H

#include "block/block.h"
#include "qemu/error.h"

/* Debug events at metadata update points, for blkdebug (QEMU's names). */
typedef enum BlkdebugEvent {
#define BLKDBG_EVENT_LIST(X) \
    X(L1_UPDATE, "l1_update") X(L1_GROW_ALLOC_TABLE, "l1_grow_alloc_table") \
    X(L1_GROW_WRITE_TABLE, "l1_grow_write_table") \
    X(L1_GROW_ACTIVATE_TABLE, "l1_grow_activate_table") \
    X(L2_LOAD, "l2_load") X(L2_UPDATE, "l2_update") \
    X(L2_UPDATE_COMPRESSED, "l2_update_compressed") \
    X(L2_ALLOC_COW_READ, "l2_alloc_cow_read") X(L2_ALLOC_WRITE, "l2_alloc_write") \
    X(READ_AIO, "read_aio") X(READ_BACKING_AIO, "read_backing_aio") \
    X(READ_COMPRESSED, "read_compressed") X(WRITE_AIO, "write_aio") \
    X(WRITE_COMPRESSED, "write_compressed") X(VMSTATE_LOAD, "vmstate_load") \
    X(VMSTATE_SAVE, "vmstate_save") X(COW_READ, "cow_read") X(COW_WRITE, "cow_write") \
    X(REFTABLE_LOAD, "reftable_load") X(REFTABLE_GROW, "reftable_grow") \
    X(REFTABLE_UPDATE, "reftable_update") X(REFBLOCK_LOAD, "refblock_load") \
    X(REFBLOCK_UPDATE, "refblock_update") X(REFBLOCK_UPDATE_PART, "refblock_update_part") \
    X(REFBLOCK_ALLOC, "refblock_alloc") X(REFBLOCK_ALLOC_HOOKUP, "refblock_alloc_hookup") \
    X(REFBLOCK_ALLOC_WRITE, "refblock_alloc_write") \
    X(REFBLOCK_ALLOC_WRITE_BLOCKS, "refblock_alloc_write_blocks") \
    X(REFBLOCK_ALLOC_WRITE_TABLE, "refblock_alloc_write_table") \
    X(REFBLOCK_ALLOC_SWITCH_TABLE, "refblock_alloc_switch_table") \
    X(CLUSTER_ALLOC, "cluster_alloc") X(CLUSTER_ALLOC_BYTES, "cluster_alloc_bytes") \
    X(CLUSTER_FREE, "cluster_free") X(FLUSH_TO_OS, "flush_to_os") \
    X(FLUSH_TO_DISK, "flush_to_disk") X(PWRITEV_RMW_HEAD, "pwritev_rmw_head") \
    X(PWRITEV_RMW_AFTER_HEAD, "pwritev_rmw_after_head") \
    X(PWRITEV_RMW_TAIL, "pwritev_rmw_tail") \
    X(PWRITEV_RMW_AFTER_TAIL, "pwritev_rmw_after_tail") X(PWRITEV, "pwritev") \
    X(PWRITEV_ZERO, "pwritev_zero") X(PWRITEV_DONE, "pwritev_done") \
    X(EMPTY_IMAGE_PREPARE, "empty_image_prepare") X(L1_SHRINK_WRITE_TABLE, "l1_shrink_write_table") \
    X(L1_SHRINK_FREE_L2_CLUSTERS, "l1_shrink_free_l2_clusters") \
    X(COR_WRITE, "cor_write") X(CLUSTER_ALLOC_SPACE, "cluster_alloc_space") X(NONE, "none")
#define BLKDBG_ENUM(id, name) BLKDBG_##id,
    BLKDBG_EVENT_LIST(BLKDBG_ENUM)
#undef BLKDBG_ENUM
    BLKDBG__MAX,
} BlkdebugEvent;

extern const char *const BlkdebugEvent_str[BLKDBG__MAX];

/* Signal a debug event to a node (a no-op unless it is a blkdebug node). */
void bdrv_debug_event(BlockDriverState *bs, BlkdebugEvent event);
/* Would an event signalled to @bs reach a blkdebug node? */
bool bdrv_debug_listening(BlockDriverState *bs);
#define BLKDBG_EVENT(child, evt) bdrv_debug_event((child), (evt))

/* The largest image length (and request end) QEMU accepts: INT64_MAX rounded
 * down to 1 GiB; requests beyond it fail with -EIO. */
#define BDRV_MAX_LENGTH QEMU_ALIGN_DOWN(INT64_MAX, 1 * GiB)

/* Creation option description (qemu-img -o names). */
typedef enum CreateOptType {
    OPT_STRING,
    OPT_BOOL,
    OPT_NUMBER,
    OPT_SIZE,
} CreateOptType;

typedef struct CreateOptDesc {
    const char *name;
    CreateOptType type;
    const char *help;
    /* value printed in the "Formatting" line when the user gave none; NULL: omit */
    const char *def_value_str;
    /* an extension QEMU 7.2 lacks: accepted, but not listed in -o help */
    bool hidden;
} CreateOptDesc;

struct BlockDriver {
    const char *format_name;
    /* a stub for a driver in a loadable module (block/module.c): block-MODULE.so
     * holds the real one as bdrv_MODULE */
    const char *module;
    size_t instance_size;
    /* false for protocol drivers (file, blkdebug), which read a filename */
    bool is_protocol;
    /* each request waits on a network (nbd, ssh): copies read ahead */
    bool high_latency;
    /* an image format (raw, qcow2): a node over a plainly named file without
     * strong options is named by that file's name (other filters get json:) */
    bool is_format;
    /* a filter named after its file child as a format is (QEMU's names for
     * copy-before-write and snapshot-access nodes) */
    bool named_by_file;
    /* can have a backing file: what it leaves unallocated without one reads as zeros */
    bool supports_backing;
    /* not a protocol, but opens its children itself in open() (quorum): the
     * generic layer opens no "file" child for it */
    bool own_children;
    /* passes requests through to bs->file (raw, blkdebug): the child is given what
     * the node's own users need and share, as QEMU's filters do */
    bool is_filter;
    /* pread may run in several threads at once and beside the node's writes
     * (block/aio.c runs such reads side by side when every node below can) */
    bool thread_safe_reads;
    /* every request, writes too, may run in several threads at once: the driver
     * guards its own state (file, raw, null, blkdebug, qcow2); block/aio.c runs
     * them side by side when every node below is thread-safe too */
    bool thread_safe;
    /* option keys open() takes besides the generic ones; NULL-terminated */
    const char *const *runtime_opts;
    /* open() rejects unknown keys itself, as QEMU's QAPI-typed drivers (ssh) do:
     * "Parameter 'x' is unexpected", after the checks for missing ones */
    bool checks_own_opts;
    /*
     * Options that change what the node shows (QEMU's "strong" options): a node
     * given one cannot be named by a plain filename, so its name becomes a json:
     * filename that lists them. A key ending in '.' covers every key under it.
     */
    const char *const *strong_opts;

    /* Filename prefix ("null-co" for "null-co://", "blkdebug" for "blkdebug:..."). */
    const char *protocol_name;
    /* More prefixes of the same driver ("nbd+tcp", "nbd+unix"); NULL-terminated */
    const char *const *protocol_aliases;
    /* a protocol whose images are created in a node that exists already (nbd):
     * QEMU's simple creation opens it, fits it to the size, zeroes sector 0 */
    bool create_simple;
    /*
     * Turn a filename given to a protocol driver into its options (into @opts,
     * which holds the options given besides). NULL: the name is the "filename".
     */
    int (*parse_filename)(const char *filename, JsonObject *opts, GError **errp);
    /*
     * Name the node after open: add the children's full options to @full (which
     * holds "driver" and the strong options) and return a plain filename that
     * opens the same node, or NULL when there is none (the name is then json:).
     * NULL: protocols are named by their "filename", formats and filters by
     * their file child.
     */
    char *(*refresh_filename)(BlockDriverState *bs, JsonObject *full, bool has_strong);
    /* Folder relative backing file names are taken from. NULL: the file child's,
     * or a protocol's file name's. */
    char *(*dirname)(BlockDriverState *bs, GError **errp);

    /* Score 0..100 for the first sectors of an image; NULL: never probed. */
    int (*probe)(const uint8_t *buf, int buf_size, const char *filename);

    /*
     * Open: @opts is the node's own options (children already removed for formats,
     * whose "file" child is open in bs->file). 0 or -errno with errp set.
     */
    int (*open)(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp);
    /* Release driver state; children are released by the generic layer. */
    void (*close)(BlockDriverState *bs);

    /* I/O: requests are within the node's length and aligned to request_alignment. */
    int (*pread)(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                 int flags);
    int (*pwrite)(BlockDriverState *bs, int64_t offset, int64_t bytes, const void *buf,
                  int flags);
    /* NULL, or -ENOTSUP without BDRV_REQ_NO_FALLBACK: the generic layer writes zeros. */
    int (*pwrite_zeroes)(BlockDriverState *bs, int64_t offset, int64_t bytes, int flags);
    /*
     * The VM state area (qemu-io read -b / write -b): bytes at @pos of a separate
     * address space the format keeps next to the disk. NULL: the request goes on
     * to the "file" child (filters, raw), or -ENOTSUP at a node without one.
     */
    int (*load_vmstate)(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes);
    int (*save_vmstate)(BlockDriverState *bs, const void *buf, int64_t pos,
                        int64_t bytes);
    /* NULL: discard is a successful no-op (discard is advisory). */
    int (*pdiscard)(BlockDriverState *bs, int64_t offset, int64_t bytes);
    /* Write cached state down to the children (they are flushed after). NULL: none. */
    int (*flush_to_os)(BlockDriverState *bs);
    /* Make written data stable (fdatasync); skipped under cache=unsafe. NULL: none. */
    int (*flush_to_disk)(BlockDriverState *bs);

    /*
     * What the node's users need (@perm) and let others have (@shared), BLK_PERM_*:
     * a protocol makes other processes see it (file-posix: QEMU's OFD lock bytes)
     * and fails, changing nothing, when another process's needs conflict.
     */
    int (*set_perm)(BlockDriverState *bs, uint64_t perm, uint64_t shared, GError **errp);

    int64_t (*getlength)(BlockDriverState *bs);
    int64_t (*get_allocated_file_size)(BlockDriverState *bs);
    int (*get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    int (*truncate)(BlockDriverState *bs, int64_t offset, bool exact,
                    PreallocMode prealloc, int flags, GError **errp);
    /*
     * Status of the first *pnum bytes of [offset, offset+bytes). Return BDRV_BLOCK_*
     * flags; with OFFSET_VALID set *map and *file. NULL: everything is allocated data
     * at the same offset in bs->file (or plain data for protocols).
     */
    int (*block_status)(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        int64_t *pnum, int64_t *map, BlockDriverState **file);
    /* Reading data that block_status maps (DATA | OFFSET_VALID, not ZERO) gives
     * the bytes of *file at *map as they are: no cipher, no filter between */
    bool maps_data_as_is;
    /* The host file descriptor that pread reads through the page cache at the
     * same offsets, or -1 (O_DIRECT) */
    int (*host_fd)(BlockDriverState *bs);

    /* true if pwrite() takes BDRV_REQ_WRITE_COMPRESSED (qemu-img convert -c) */
    bool supports_compressed_writes;

    /* qemu-img create with -o options (strings). */
    int (*create_opts)(const char *filename, JsonObject *opts, GError **errp);
    /* blockdev-create with QMP options (children as node names). */
    int (*create)(JsonObject *opts, GError **errp);
    const CreateOptDesc *create_opt_descs;   /* terminated by a NULL name */

    /*
     * qemu-img measure: fill @info for a new image created with @opts (checked -o
     * options) holding a copy of @in_bs's data, or empty of @opts' "size" when
     * @in_bs is NULL. 0 or -errno with errp set. NULL: not supported.
     */
    int (*measure)(JsonObject *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                   GError **errp);

    int (*amend)(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp);
    /* options amend() takes (qemu-img amend -o help); terminated by a NULL name */
    const CreateOptDesc *amend_opt_descs;
    int (*check)(BlockDriverState *bs, BdrvCheckResult *res, int fix);
    JsonNode *(*get_specific_info)(BlockDriverState *bs, GError **errp);
    bool (*is_dirty)(BlockDriverState *bs);
    /* an internal snapshot; @vm_clock_nsec and @icount recorded in its entry */
    int (*snapshot_create)(BlockDriverState *bs, const char *name, int64_t vm_clock_nsec,
                           int64_t icount);
    int (*snapshot_list)(BlockDriverState *bs, GPtrArray *out);
    /* apply / delete the snapshot whose ID or name is @name; NULL: unsupported */
    int (*snapshot_goto)(BlockDriverState *bs, const char *name, GError **errp);
    int (*snapshot_delete)(BlockDriverState *bs, const char *name, GError **errp);
    /*
     * Make a read-only node show the internal snapshot whose ID is @id and name is
     * @name (NULL matches any) until it is closed. NULL: unsupported.
     */
    int (*snapshot_load_tmp)(BlockDriverState *bs, const char *id, const char *name,
                             GError **errp);
    /* persistent dirty bitmaps: see bdrv_bitmap_op / bdrv_bitmaps_store */
    int (*bitmap_op)(BlockDriverState *bs, BdrvBitmapOp op, const char *name,
                     uint64_t granularity, BlockDriverState *src, const char *src_name,
                     GError **errp);
    int (*bitmaps_store)(BlockDriverState *bs, GError **errp);
    JsonArray *(*query_bitmaps)(BlockDriverState *bs);
    /* can this node hold persistent bitmaps (qcow2: v3)? NULL: no */
    bool (*supports_persistent_bitmaps)(BlockDriverState *bs);
    /* mark [offset, offset+bytes) dirty in persistent bitmap @name (QMP merge) */
    int (*bitmap_set_dirty)(BlockDriverState *bs, const char *name, int64_t offset,
                            int64_t bytes, GError **errp);
    /* dirty (1) or clean (0) are the first *pnum bytes of the range in bitmap @name */
    int (*bitmap_status)(BlockDriverState *bs, const char *name, int64_t offset,
                         int64_t bytes, int64_t *pnum);
    /* bdrv_change_backing_file (bs->backing_file updated on success); NULL: -ENOTSUP */
    int (*change_backing_file)(BlockDriverState *bs, const char *backing_file,
                               const char *backing_fmt);
    /* bdrv_make_empty: deallocate everything; NULL: the format cannot */
    int (*make_empty)(BlockDriverState *bs);
    /*
     * The node turns read-only (@ro) in place, or read-write again after that
     * (block/read-only.c): write down what a read-write open keeps in memory or
     * flags on disk (qcow2: its persistent bitmaps, the dirty bit), or take it
     * up again. The generic layer has flushed the node. NULL: nothing to do.
     */
    int (*set_read_only)(BlockDriverState *bs, bool ro, GError **errp);
    /* blkdebug: an event happened on this node */
    void (*debug_event)(BlockDriverState *bs, BlkdebugEvent event);
    /* blkdebug breakpoints (qemu-io's break, remove_break, resume, wait_break) */
    int (*debug_breakpoint)(BlockDriverState *bs, const char *event, const char *tag);
    int (*debug_remove_breakpoint)(BlockDriverState *bs, const char *tag);
    int (*debug_resume)(BlockDriverState *bs, const char *tag);
    bool (*debug_is_suspended)(BlockDriverState *bs, const char *tag);
};

struct BlockDriverState {
    const BlockDriver *drv;
    void *opaque;
    BdrvAmendStatusCB *amend_status_cb; /* set during bdrv_amend_with_status() */
    void *amend_status_opaque;
    int refcnt;
    int open_flags;
    char *filename;          /* file name shown to users: exact_filename or json: */
    char *exact_filename;    /* a plain filename that opens this node, or NULL */
    JsonObject *full_open_options; /* driver, strong options, children: the json: name */
    bool backing_overridden; /* the backing child came from options, not the image */
    char *node_name;         /* user-given or automatic "#blockNNN" */
    bool auto_node_name;
    JsonObject *options;     /* the node's options as opened, children nested */

    BlockDriverState *file;       /* "file" child (formats) */
    BlockDriverState *backing;    /* "backing" child, or NULL */
    BlockDriverState *data_file;  /* qcow2 external data file; == NULL if internal */
    BlockDriverState *backing_parent; /* the node this one is the backing file of */

    char *backing_file;      /* backing file name stored in the image */
    char *backing_format;
    bool probed_raw;         /* format guessed as raw: writes to sector 0 guarded */
    bool encrypted;          /* the driver encrypts guest data (luks, qcow2 encrypt) */
    uint32_t request_alignment;
    /* requests that touch the same block of this size (a power of two; 0: none)
     * keep their submission order, even where their bytes do not overlap: a
     * qcow2 cluster, which its copy-on-write and allocation span */
    uint32_t serialize_align;

    /* who uses this node (BdrvPermUser: a parent node's child slot, a tool's open,
     * an export) and what they need and share; see bdrv_perm_attach() */
    GPtrArray *perm_users;
    /* the slots (BlockDriverState **) of children attached as BDRV_CHILD_FILTERED:
     * they get what this node's users need and share */
    GPtrArray *filtered_slots;

    /* bdrv_add_before_write(): BdrvBeforeWrite*, NULL while there are none */
    GPtrArray *before_write;

    /* bdrv_track_writes(): one bit per @track_gran bytes written since */
    uint8_t *track_bits;
    int64_t track_gran, track_chunks;

    /* in-memory dirty bitmaps and the order of QMP's persistent ones, oldest
     * first (block/dirty-bitmap.c) */
    GPtrArray *dirty_bitmaps;
    /* bdrv_anon_bitmaps_add(): the bitmaps jobs keep on this node, oldest first */
    GArray *anon_bitmaps;

    /* requests in flight on this node (block/aio.c), created with the first one */
    struct BdrvAioQueue *aio;

    /* block-set-write-threshold's offset (0: none); block/write-threshold.c */
    uint64_t write_threshold;

    /* opened read-write and turned read-only in place (bdrv_make_read_only):
     * its files are still open for writing, so it can turn back */
    bool ro_in_place;
};

/* The driver's own persistent bitmaps (bdrv_query_dirty_bitmaps without the
 * in-memory ones); NULL when it has none. */
JsonArray *bdrv_query_dirty_bitmaps_driver(BlockDriverState *bs);
/* Mark a range dirty in the driver's persistent bitmap @name. */
int bdrv_bitmap_set_dirty(BlockDriverState *bs, const char *name, int64_t offset,
                          int64_t bytes, GError **errp);

/* A write of [offset, offset+bytes) reached @bs: report a crossed threshold. */
void bdrv_write_threshold_check(BlockDriverState *bs, int64_t offset, int64_t bytes);

/* Driver table (block.c) */
extern BlockDriver bdrv_file;
extern BlockDriver bdrv_host_device;
extern BlockDriver bdrv_host_cdrom;
extern BlockDriver bdrv_raw;
extern BlockDriver bdrv_qcow2;
extern BlockDriver bdrv_blkdebug;
extern BlockDriver bdrv_crypto_luks;
extern BlockDriver bdrv_bochs;
/* stands in for "nbd" (the block-nbd module) until bdrv_module_resolve() */
extern BlockDriver bdrv_nbd_stub;
#ifdef CONFIG_SSH
/* and "ssh" (the block-ssh module) */
extern BlockDriver bdrv_ssh_stub;
#endif
/* The driver itself for a module's stub (loaded at the first call), else @drv. */
BlockDriver *bdrv_module_resolve(BlockDriver *drv, GError **errp);
extern BlockDriver bdrv_null_co;
extern BlockDriver bdrv_null_aio;
extern BlockDriver bdrv_blkverify;
extern BlockDriver bdrv_copy_on_read;
extern BlockDriver bdrv_copy_before_write;
extern BlockDriver bdrv_mirror_top;     /* not in the driver list: jobs' own */
/* Filters' pass-through callbacks: the request goes to bs->file as it is. */
int bdrv_filter_pass_pread(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           void *buf, int flags);
int bdrv_filter_pass_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                            const void *buf, int flags);
int bdrv_filter_pass_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                   int flags);
int bdrv_filter_pass_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int bdrv_filter_pass_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                              PreallocMode prealloc, int flags, GError **errp);
int bdrv_filter_pass_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                                  int64_t *pnum, int64_t *map, BlockDriverState **file);
/* A copy-on-read job filter copies only what lies above and in @bottom. */
void bdrv_cor_set_bottom(BlockDriverState *filter, BlockDriverState *bottom);
/*
 * A block job's own filter node of @drv over @child (QEMU's backup filter, a
 * copy-before-write node without a target: it passes everything through),
 * named @node_name or automatically; its users are attached to it later.
 */
BlockDriverState *bdrv_open_job_filter(const BlockDriver *drv, BlockDriverState *child,
                                       const char *node_name, GError **errp);
extern BlockDriver bdrv_snapshot_access;
extern BlockDriver bdrv_compress;
extern BlockDriver bdrv_quorum;
extern BlockDriver bdrv_preallocate;
extern BlockDriver bdrv_throttle;

/*
 * The protocol driver that opens @filename: the one its "proto:" prefix names
 * (only with @allow_prefix: a name given as a filename, not as a "filename"
 * option), host_device for device nodes, else file. NULL with errp set for an
 * unknown prefix.
 */
const BlockDriver *bdrv_find_protocol(const char *filename, bool allow_prefix,
                                      GError **errp);

/* ---- names (filename.c) ---- */
/* Work out bs->exact_filename, bs->full_open_options and bs->filename once the
 * node and its children are open. */
void bdrv_refresh_filename(BlockDriverState *bs);
/* The node's full options (for a parent's json: name); new reference. */
JsonNode *bdrv_full_options_node(BlockDriverState *bs);

/*
 * Open a child of @parent: @ref is the options object under @parent's @child_name
 * key, or NULL to use @filename (a plain path, opened as driver "file" unless
 * @allow_format probes it). A string option under the key names an existing node.
 */
BlockDriverState *bdrv_open_child(BlockDriverState *parent, JsonObject *parent_opts,
                                  const char *child_name, const char *filename,
                                  bool allow_format, int flags, GError **errp);

/* Is @key an option every node takes (driver, node-name, read-only, cache...)? */
bool bdrv_is_generic_opt(const char *key);

/* Option helpers for driver open(): fetch and validate known options. */
const char *bdrv_get_creation_opt(JsonObject *opts, const char *name);

/* Generic fallbacks and helpers for drivers */
int bdrv_pwrite_zero_buffer(BlockDriverState *bs, int64_t offset, int64_t bytes);
int bdrv_create_file(const char *filename, JsonObject *opts, GError **errp);
/* Describe the creation option table of a driver for qemu-img -o help. */
char *create_opts_help(const char *title, const CreateOptDesc *descs);

/* What a parent uses a child for; decides the permissions it asks for. */
typedef enum BdrvChildRole {
    BDRV_CHILD_STORAGE,   /* a format's image file: metadata and data (qcow2's file) */
    BDRV_CHILD_DATA,      /* guest data only (qcow2's external data file) */
    BDRV_CHILD_COW,       /* a backing file: only read */
    BDRV_CHILD_FILTERED,  /* the child of a filter: the parent's own users' needs */
} BdrvChildRole;

/*
 * @parent starts using @child (held in @parent's field @slot, the owner of the
 * use) in @role: the locks follow, or nothing changes and -errno is returned.
 */
int bdrv_attach_child_perm(BlockDriverState *parent, BlockDriverState *child,
                           BlockDriverState **slot, BdrvChildRole role,
                           GError **errp);
/* Drop what *@slot is used for by @parent, unref it, clear the slot. */
void bdrv_unref_child(BlockDriverState *parent, BlockDriverState **slot);

/* ---- creating image files (file-posix.c) ---- */
/*
 * Open @filename to create an image in it, creating the file when missing
 * (*@created says so), and take @perm/@shared before anything is changed: a file
 * another process uses conflicts here and stays untouched.
 */
BlockDriverState *bdrv_create_file_open(const char *filename, uint64_t perm,
                                        uint64_t shared, bool *created, GError **errp);
/* Empty the file, then give it @size bytes with @prealloc (QEMU's messages). */
int bdrv_create_file_fill(BlockDriverState *bs, uint64_t size, PreallocMode prealloc,
                          GError **errp);
/* Close it; after a failed creation (@failed) remove it if this creation made it:
 * a file that existed before is never removed. */
void bdrv_create_file_close(BlockDriverState *bs, bool created, bool failed);

/* Would any format other than raw claim this first sector? */
bool bdrv_probe_claims(const uint8_t *buf, int len);



/* A node that only names a file (never opened; all I/O fails with -ENOMEDIUM). */
BlockDriverState *bdrv_new_placeholder(const char *filename);
/*
 * Open @bs's backing file: the "backing" option (object, node name; null handled by
 * the caller) or bs->backing_file resolved against @bs's folder, format from
 * bs->backing_format or probed, read-only. Refuses loops and overlong chains.
 */
int bdrv_open_backing(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp);

#endif
