/*
 * qcow2: the on-disk format (header, extensions, table entry bits) and the driver
 * state shared by qcow2.c (open/close/header), qcow2-cluster.c (guest->host
 * mapping), qcow2-refcount.c (host cluster allocator), qcow2-cache.c (table
 * cache), qcow2-check.c (check/repair), qcow2-create.c (create, preallocation,
 * resize, amend) and qcow2-measure.c (qemu-img measure).
 */
#ifndef BLOCK_QCOW2_H
#define BLOCK_QCOW2_H

#include "block/block_int.h"
#include "crypto/block.h"

#define QCOW_MAGIC 0x514649fbU      /* "QFI\xfb" */

#define QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ULL << 4)
#define QCOW2_INCOMPAT_MASK        0x1fULL

#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_COMPAT_MASK           0x1ULL

#define QCOW2_AUTOCLEAR_BITMAPS       (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ULL << 1)
#define QCOW2_AUTOCLEAR_MASK          0x3ULL

#define QCOW2_EXT_MAGIC_END            0x00000000U
#define QCOW2_EXT_MAGIC_BACKING_FORMAT 0xe2792acaU
#define QCOW2_EXT_MAGIC_FEATURE_TABLE  0x6803f857U
#define QCOW2_EXT_MAGIC_BITMAPS        0x23852875U
#define QCOW2_EXT_MAGIC_CRYPTO_HEADER  0x0537be77U
#define QCOW2_EXT_MAGIC_DATA_FILE      0x44415441U

#define QCOW_CRYPT_NONE 0
#define QCOW_CRYPT_AES  1
#define QCOW_CRYPT_LUKS 2

#define QCOW2_COMPRESSION_TYPE_ZLIB 0
#define QCOW2_COMPRESSION_TYPE_ZSTD 1

#define QCOW_OFLAG_COPIED     (1ULL << 63)
#define QCOW_OFLAG_COMPRESSED (1ULL << 62)
#define QCOW_OFLAG_ZERO       (1ULL << 0)

#define L1E_OFFSET_MASK   0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK   0x00fffffffffffe00ULL
#define REFT_OFFSET_MASK  0xfffffffffffffe00ULL
#define L1E_RESERVED_MASK 0x7f000000000001ffULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL

#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21
#define DEFAULT_CLUSTER_SIZE 65536

/* QEMU's limits: L1 table up to 32 MiB, refcount table up to 8 MiB */
#define QCOW_MAX_L1_SIZE       (32 * MiB)
#define QCOW_MAX_REFTABLE_SIZE (8 * MiB)
#define QCOW_MAX_SNAPSHOTS     65536
#define QCOW2_MAX_BACKING_NAME 1023

#define DEFAULT_L2_CACHE_MAX_SIZE (32 * MiB)
/* BDRV_O_SEQUENTIAL: one pass in order needs a table or two at a time */
#define SEQUENTIAL_L2_CACHE_SIZE (1 * MiB)
#define MIN_L2_CACHE_CLUSTERS      2
#define MIN_REFCOUNT_CACHE_CLUSTERS 4
#define DEFAULT_REFCOUNT_CACHE_CLUSTERS 4

/* The first 104 bytes of a version 3 header (version 2 uses the first 72). */
typedef struct QEMU_PACKED QCowHeader {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    /* version 3 */
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    /* optional */
    uint8_t compression_type;
    uint8_t padding[7];
} QCowHeader;

#define QCOW2_V2_HEADER_SIZE 72
#define QCOW2_V3_HEADER_SIZE 104

/* An extension we do not interpret, kept to be written back unchanged. */
typedef struct Qcow2UnknownExt {
    uint32_t magic;
    uint32_t len;
    uint8_t *data;
} Qcow2UnknownExt;

typedef struct Qcow2Feature {
    uint8_t type;   /* 0 incompatible, 1 compatible, 2 autoclear */
    uint8_t bit;
    char name[46];
} QEMU_PACKED Qcow2Feature;

typedef struct Qcow2Cache Qcow2Cache;

typedef struct BDRVQcow2State {
    int cluster_bits;
    int cluster_size;
    int l2_bits;            /* log2 of L2 entries per table */
    int l2_size;            /* L2 entries per table */
    /* extended L2 (incompatible bit 4): 16-byte entries, 32 subclusters each */
    bool extended_l2;
    int l2_slot_shift;      /* log2 of 64-bit words per L2 entry (0 or 1) */
    int subcluster_bits;
    int subcluster_size;
    int refcount_order;
    int refcount_bits;
    int refcount_block_bits; /* log2 of refcount entries per block */
    int refcount_block_size; /* refcount entries per block */
    uint64_t refcount_max;

    int version;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t header_length;
    uint8_t compression_type;
    uint32_t crypt_method;
    QCryptoBlock *crypto;           /* encryption (crypt_method != 0) */
    uint64_t crypto_header_offset;  /* LUKS header in the image file */
    uint64_t crypto_header_length;
    bool has_crypto_header;
    /* IVs from host offsets (LUKS) rather than guest offsets (legacy AES) */
    bool crypt_physical_offset;
    uint8_t *crypt_bounce;          /* CRYPT_BOUNCE bytes, kept while open */
    uint64_t size;          /* virtual size */

    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t *l1_table;     /* host byte order */
    uint32_t l1_vm_state_index;

    uint64_t refcount_table_offset;
    uint32_t refcount_table_size;   /* entries */
    uint64_t *refcount_table;       /* host byte order */
    uint64_t free_cluster_index;    /* allocation hint */
    uint64_t free_byte_offset;      /* where the next compressed data may go */
    bool packing_compressed;        /* qcow2_alloc_bytes() adds its references */
    uint64_t alloc_end;             /* highest cluster index allocated + 1 */
    /* refcount table entries [first, end) of new blocks not yet on disk (R2) */
    uint64_t reftable_pending_first;
    uint64_t reftable_pending_end;  /* 0: none */

    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_size;        /* bytes of the table as read; 0: unknown */

    /* header extensions */
    char *image_backing_format;
    char *image_data_file;
    Qcow2Feature *feature_table;
    int nb_features;
    GPtrArray *unknown_exts;        /* of Qcow2UnknownExt* */
    bool has_bitmaps_ext;
    bool stale_bitmaps_ext;         /* present, but its autoclear bit is off */
    uint32_t nb_bitmaps;
    uint64_t bitmap_directory_size;
    uint64_t bitmap_directory_offset;
    GPtrArray *bitmaps;             /* of Qcow2Bitmap*: loaded for tracking, or NULL */
    GPtrArray *ro_bitmaps;          /* read-only nodes: loaded to be queried (NBD) */
    bool bitmaps_dir_changed;       /* bitmaps added or removed: new directory */
    bool bitmaps_abandoned;         /* size commit failed: store nothing */

    Qcow2Cache *l2_table_cache;
    Qcow2Cache *refcount_block_cache;
    uint64_t l2_cache_size;         /* bytes */
    uint8_t *l2_window;             /* read-only status walks: L2 tables read ahead */
    uint64_t l2_window_start;       /* host offset of the window's first table */
    uint64_t l2_window_len;         /* bytes valid in the window, 0: none */
    uint64_t refcount_cache_size;
    int overlap_skip;               /* QCOW2_OL_* kinds overlap-check turned off */

    bool use_lazy_refcounts;
    bool header_dirty_set;          /* we set the dirty bit in the header */
    bool data_file_is_external;
    bool metadata_preallocation_checked;
    bool metadata_preallocation;
    bool read_only;
    bool opened;                    /* open() completed */
    bool signaled_corruption;
    bool dead;                      /* fatally corrupt: requests fail (atomic) */
    GMutex lock;                    /* see qcow2-lock.c */
    GThread *lock_owner;            /* the thread holding it (atomic) */
    int lock_depth;                 /* times the holder took it */
} BDRVQcow2State;

static inline bool has_data_file(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    return s->incompatible_features & QCOW2_INCOMPAT_DATA_FILE;
}

static inline bool data_file_is_raw(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    return s->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW;
}

/*
 * Lazy refcounts: while the dirty bit is set, refcount updates may stay in
 * the cache until the image is closed (check -r repairs them after a crash),
 * so L2 updates need not wait for them and flushes leave them cached.
 */
static inline bool qcow2_need_accurate_refcounts(BDRVQcow2State *s)
{
    return !(s->incompatible_features & QCOW2_INCOMPAT_DIRTY);
}

static inline int64_t start_of_cluster(BDRVQcow2State *s, int64_t offset)
{
    return offset & ~((int64_t)s->cluster_size - 1);
}

static inline int64_t offset_into_cluster(BDRVQcow2State *s, int64_t offset)
{
    return offset & (s->cluster_size - 1);
}

static inline uint64_t size_to_clusters(BDRVQcow2State *s, uint64_t size)
{
    return (size + (s->cluster_size - 1)) >> s->cluster_bits;
}

static inline int offset_to_l1_index(BDRVQcow2State *s, uint64_t offset)
{
    return offset >> (s->l2_bits + s->cluster_bits);
}

static inline int offset_to_l2_index(BDRVQcow2State *s, int64_t offset)
{
    return (offset >> s->cluster_bits) & (s->l2_size - 1);
}

/* L1 entries needed for a virtual size (QEMU's rounding); @l2_bits is log2 of
 * the entries per L2 table (cluster_bits - 3, or - 4 with extended L2). */
static inline uint64_t qcow2_l1_entries_for(uint64_t size, int cluster_bits, int l2_bits)
{
    int shift = cluster_bits + l2_bits;
    return DIV_ROUND_UP(size, 1ULL << shift);
}

/* ---- L2 entries in a table as read from disk (big endian) ---- */

#define QCOW_EXTL2_SUBCLUSTERS 32
#define QCOW_L2_BITMAP_ALL_ALLOC 0x00000000ffffffffULL
#define QCOW_L2_BITMAP_ALL_ZEROES 0xffffffff00000000ULL

/* The 64-bit descriptor of entry @i (standard part of an extended entry). */
static inline uint64_t qcow2_l2_get(BDRVQcow2State *s, const uint64_t *t, int i)
{
    return GUINT64_FROM_BE(t[(size_t)i << s->l2_slot_shift]);
}

static inline void qcow2_l2_set(BDRVQcow2State *s, uint64_t *t, int i, uint64_t v)
{
    t[(size_t)i << s->l2_slot_shift] = GUINT64_TO_BE(v);
}

/* The subcluster bitmap of extended entry @i: bits 0-31 allocated, 32-63 zero. */
static inline uint64_t qcow2_l2_bitmap_get(const uint64_t *t, int i)
{
    return GUINT64_FROM_BE(t[((size_t)i << 1) + 1]);
}

static inline void qcow2_l2_bitmap_set(uint64_t *t, int i, uint64_t v)
{
    t[((size_t)i << 1) + 1] = GUINT64_TO_BE(v);
}

/* Bitmap bits of subclusters [first, first + n) (allocation half). */
static inline uint32_t qcow2_sc_mask(int first, int n)
{
    return n >= 32 ? 0xffffffffU : (((1U << n) - 1) << first);
}

/* Guest cluster kinds from an L2 entry */
typedef enum Qcow2ClusterType {
    QCOW2_CLUSTER_UNALLOCATED,
    QCOW2_CLUSTER_ZERO_PLAIN,   /* zero flag, no host offset */
    QCOW2_CLUSTER_ZERO_ALLOC,   /* zero flag with a preallocated host offset */
    QCOW2_CLUSTER_NORMAL,
    QCOW2_CLUSTER_COMPRESSED,
} Qcow2ClusterType;

Qcow2ClusterType qcow2_get_cluster_type(BlockDriverState *bs, uint64_t l2_entry);

/* Host byte range [*start, *start + *len) holding a compressed cluster's data:
 * from the sector containing its offset, nb_csectors * 512 bytes. */
static inline void qcow2_compressed_range(BDRVQcow2State *s, uint64_t l2_entry,
                                          uint64_t *start, uint64_t *len)
{
    int x = 62 - (s->cluster_bits - 8);
    uint64_t off = l2_entry & ((1ULL << x) - 1);
    uint64_t nb_csectors = ((l2_entry >> x) & ((1ULL << (s->cluster_bits - 8)) - 1)) + 1;

    *start = off & ~511ULL;
    *len = nb_csectors * 512;
}

/* Extended L2: does the entry point to a host cluster (its subclusters' home)? */
static inline bool qcow2_ext_has_host(BlockDriverState *bs, uint64_t l2_entry)
{
    return (l2_entry & L2E_OFFSET_MASK) ||
           (has_data_file(bs) && (l2_entry & QCOW_OFLAG_COPIED));
}

/* Extended L2: a subcluster both allocated and zero, or allocated without a host
 * cluster, is invalid (compressed clusters ignore their bitmap). */
static inline bool qcow2_ext_entry_valid(BlockDriverState *bs, uint64_t l2_entry,
                                         uint64_t bitmap)
{
    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        return true;
    }
    if ((uint32_t)(bitmap & (bitmap >> 32))) {
        return false;
    }
    return (uint32_t)bitmap == 0 || qcow2_ext_has_host(bs, l2_entry);
}

/* Metadata kinds for overlap checks */
#define QCOW2_OL_MAIN_HEADER    (1 << 0)
#define QCOW2_OL_ACTIVE_L1      (1 << 1)
#define QCOW2_OL_ACTIVE_L2      (1 << 2)
#define QCOW2_OL_REFCOUNT_TABLE (1 << 3)
#define QCOW2_OL_REFCOUNT_BLOCK (1 << 4)
#define QCOW2_OL_SNAPSHOT_TABLE (1 << 5)
#define QCOW2_OL_INACTIVE_L1    (1 << 6)
#define QCOW2_OL_INACTIVE_L2    (1 << 7)
#define QCOW2_OL_BITMAP_DIRECTORY (1 << 8)
#define QCOW2_OL_CHEAP (QCOW2_OL_MAIN_HEADER | QCOW2_OL_ACTIVE_L1 | \
                        QCOW2_OL_REFCOUNT_TABLE | QCOW2_OL_REFCOUNT_BLOCK | \
                        QCOW2_OL_SNAPSHOT_TABLE | QCOW2_OL_INACTIVE_L1 | \
                        QCOW2_OL_BITMAP_DIRECTORY)
#define QCOW2_OL_ALL (QCOW2_OL_CHEAP | QCOW2_OL_ACTIVE_L2 | QCOW2_OL_INACTIVE_L2)

/* qcow2.c */
int qcow2_update_header(BlockDriverState *bs);
int qcow2_mark_dirty(BlockDriverState *bs);
int qcow2_mark_clean(BlockDriverState *bs);
int qcow2_mark_corrupt(BlockDriverState *bs);
/* Report detected corruption, mark the image corrupt; fatal: also stop writes. */
void qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...) G_GNUC_PRINTF_CHECK(5, 6);
/* Write the whole L1 table (or entries [first, first+n)) to disk. */
int qcow2_write_l1_entries(BlockDriverState *bs, int first, int n);
/* Pick the L2/refcount cache sizes from options (QEMU's defaults and rules). */
int qcow2_read_cache_options(BlockDriverState *bs, JsonObject *opts, GError **errp);
/* overlap-check (a template name, or an object of template and per-kind switches) */
int qcow2_read_overlap_options(BlockDriverState *bs, JsonObject *opts, GError **errp);

/* qcow2-refcount.c */
int qcow2_refcount_init(BlockDriverState *bs);
void qcow2_refcount_close(BlockDriverState *bs);
int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index, uint64_t *refcount);
int qcow2_update_cluster_refcount(BlockDriverState *bs, int64_t cluster_index,
                                  int64_t addend);
/* Add @addend to the refcount of every cluster overlapping [offset, offset+length). */
int qcow2_update_refcounts(BlockDriverState *bs, int64_t offset, int64_t length,
                           int64_t addend);
/*
 * A snapshot's reference to clusters the image already uses (QEMU's): where a
 * refcount block is missing, it is made and -EAGAIN returned, the refcounts
 * left as they were.
 */
int qcow2_update_refcounts_existing(BlockDriverState *bs, int64_t offset,
                                    int64_t length, int64_t addend);
/* Allocate @size bytes of contiguous clusters in the image file; offset or -errno. */
int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size);
/* The same; @what ("L2 table", ...) names the allocation in a corruption report. */
int64_t qcow2_alloc_clusters_for(BlockDriverState *bs, uint64_t size, const char *what);
/* Allocate @nb_clusters at exactly @offset where free; number allocated or -errno. */
int64_t qcow2_alloc_clusters_at(BlockDriverState *bs, uint64_t offset, int64_t nb_clusters);
/* Sub-cluster allocation for compressed data; offset or -errno. */
int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size);
void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size);
/* Give back clusters just allocated that no table on disk came to refer to. */
void qcow2_free_unused_clusters(BlockDriverState *bs, int64_t offset, int64_t size);
/* Index of the last cluster with a non-zero refcount (-1: none), or -errno. */
int64_t qcow2_last_used_cluster(BlockDriverState *bs);
/* Drop refcount blocks that count nothing but themselves (after a shrink). */
int qcow2_shrink_reftable(BlockDriverState *bs);
/* End of the highest cluster allocated while the image was open. */
uint64_t qcow2_highest_allocated_end(BlockDriverState *bs);
/* Free what an L2 entry points to (data clusters only for internal data). */
void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry, int nb_clusters);
/*
 * Is [offset, offset+size) free of the metadata kinds in @ign's complement? 0,
 * the kind, or -errno when a snapshot's L1 table cannot be read (inactive L2).
 */
int qcow2_check_metadata_overlap(BlockDriverState *bs, int ign, int64_t offset,
                                 int64_t size);
/* Overlap check before a write; signals corruption and returns -EIO on overlap. */
int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign, int64_t offset,
                                  int64_t size, bool data_file);
/* Rebuild all refcounts from the metadata (dirty image, lazy refcounts). */
int qcow2_rebuild_refcounts(BlockDriverState *bs, GError **errp);
/* Total host clusters covered by the refcount structures. */
uint64_t qcow2_refcount_covered_clusters(BlockDriverState *bs);
/* Helpers on raw refcount blocks (for check and rebuild) */
uint64_t qcow2_refblock_get(BDRVQcow2State *s, const void *block, uint64_t index);
void qcow2_refblock_set(BDRVQcow2State *s, void *block, uint64_t index, uint64_t value);
/* Decide whether the image looks metadata-preallocated (for block status). */
bool qcow2_detect_metadata_preallocation(BlockDriverState *bs);
/*
 * Move the refcount table to cluster @start_cluster (with any refcount blocks it
 * needs) so that it covers @additional clusters after itself; *host_base is the
 * first byte after the new structures (QEMU's layout for falloc/full).
 */
int qcow2_relocate_reftable_for(BlockDriverState *bs, uint64_t start_cluster,
                                uint64_t additional, int64_t *host_base);
/* Rewrite the refcount structure with a new refcount width (amend). */
int qcow2_change_refcount_order(BlockDriverState *bs, int new_order);

/* qcow2-cluster.c */
/*
 * Look up the host mapping of guest [offset, offset+*bytes): sets *bytes to the
 * length of the first run of same-kind contiguous clusters, *host_offset (for
 * normal/zero-alloc: host offset of @offset; compressed: the L2 entry) and returns
 * the cluster type or -errno.
 */
int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                          uint64_t *host_offset, Qcow2ClusterType *type);
/* The same for status walks: on a read-only image the L2 tables are read through a
 * window of back-to-back tables, not the cache (qcow2-cluster.c). */
int qcow2_scan_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                           uint64_t *host_offset, Qcow2ClusterType *type);
void qcow2_l2_window_free(BlockDriverState *bs);
/* qcow2-refcount.c: refcounts of [first, first + n) inside one refcount block */
int qcow2_get_refcounts(BlockDriverState *bs, int64_t first, int64_t n, uint64_t *out);
/* qcow2-refcount.c: write the refcount table entries of new blocks (R2) */
int qcow2_refcount_write_hookups(BlockDriverState *bs);
/*
 * Make guest [offset, offset+*bytes) writable in place: returns the host offset
 * for @offset and shrinks *bytes to a contiguous run. Newly allocated clusters
 * are recorded in *m and only linked into L2 by qcow2_alloc_cluster_link_l2 after
 * the data is written.
 */
typedef struct Qcow2ClusterAlloc {
    uint64_t guest_offset;      /* first guest cluster (cluster aligned) */
    uint64_t host_offset;       /* host offset of the first cluster */
    int nb_clusters;
    bool needs_link;            /* new allocation: L2 must be updated */
    bool reused;                /* host clusters are the old zero clusters' own */
    /* bytes within the first/last cluster to copy from the old content */
    uint64_t cow_start_bytes;   /* [cluster start, write start) */
    uint64_t cow_end_offset;    /* [write end, cluster end) as guest offsets */
    uint64_t cow_end_bytes;
    uint64_t old_l2_entries_first; /* L2 entry of the first cluster before the write */
    uint64_t old_l2_entries_last;
    uint64_t *old_entries;      /* old L2 entries of every cluster (for COW/free) */
} Qcow2ClusterAlloc;
/*
 * Map guest [offset, offset + *bytes) for a write (*bytes shrinks to one run).
 * *@host_offset: on entry where the request's previous piece ended in the file
 * (0: none), new clusters go right there when free; on return the host offset.
 */
int qcow2_alloc_host_offset(BlockDriverState *bs, uint64_t offset, uint64_t *bytes,
                            uint64_t *host_offset, Qcow2ClusterAlloc *m);
int qcow2_alloc_cluster_link_l2(BlockDriverState *bs, Qcow2ClusterAlloc *m);
void qcow2_alloc_cluster_abort(BlockDriverState *bs, Qcow2ClusterAlloc *m);
/* data_file_raw (C4): drop the zero flag of @m's clusters on disk before writing. */
int qcow2_raw_clear_zero_flags(BlockDriverState *bs, Qcow2ClusterAlloc *m);
int qcow2_get_l2_table(BlockDriverState *bs, uint64_t offset, uint64_t **l2_table,
                       int *l2_index, bool allocate);
int qcow2_cluster_zeroize(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                          int flags);
int qcow2_cluster_discard(BlockDriverState *bs, uint64_t offset, uint64_t bytes,
                          bool full_discard);
int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact);
int qcow2_shrink_l1_table(BlockDriverState *bs, uint64_t max_size);
/* Make guest clusters in [offset, offset+bytes) unallocated and free them. */
int qcow2_discard_unmap_range(BlockDriverState *bs, uint64_t offset, uint64_t bytes);
/* Turn zero clusters into unallocated or zero-filled data clusters (for v2). */
int qcow2_expand_zero_clusters(BlockDriverState *bs);
int qcow2_alloc_compressed_cluster(BlockDriverState *bs, uint64_t offset,
                                   int compressed_size, uint64_t *host_offset);
int qcow2_decompress_cluster(BlockDriverState *bs, uint64_t l2_entry, uint8_t *out);

/* qcow2-cache.c */
Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_tables, int table_size);
void qcow2_cache_destroy(Qcow2Cache *c);
int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset, void **table);
int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset,
                          void **table);
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table);
int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c);
int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c);
/* Write (and flush) what @c waits for, if anything. */
int qcow2_cache_flush_dependency(BlockDriverState *bs, Qcow2Cache *c);
int qcow2_cache_set_dependency(BlockDriverState *bs, Qcow2Cache *c,
                               Qcow2Cache *dependency);
void qcow2_cache_depends_on_flush(Qcow2Cache *c);
void qcow2_cache_discard(Qcow2Cache *c, void *table);
/* Drop the entry caching @offset if present (clean or dirty). */
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset);
int qcow2_cache_empty(BlockDriverState *bs, Qcow2Cache *c);
bool qcow2_cache_is_table_offset(Qcow2Cache *c, uint64_t offset);
/* Write back everything in crash-safe order (refcounts, then L2). */
int qcow2_write_caches(BlockDriverState *bs);
int qcow2_flush_caches(BlockDriverState *bs);

/* qcow2-lock.c: the node's lock, released around guest data I/O */
void qcow2_lock(BlockDriverState *bs);
void qcow2_unlock(BlockDriverState *bs);
bool qcow2_io_unlock(BlockDriverState *bs);
void qcow2_io_relock(BlockDriverState *bs, bool unlocked);
bool qcow2_is_dead(BlockDriverState *bs);
void qcow2_set_dead(BlockDriverState *bs);
int qcow2_locked_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                       int flags);
int qcow2_locked_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        const void *buf, int flags);
int qcow2_locked_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                               int flags);
int qcow2_locked_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int qcow2_locked_flush_to_os(BlockDriverState *bs);
int qcow2_locked_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                              int64_t *pnum, int64_t *map, BlockDriverState **file);
int qcow2_locked_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes);
int qcow2_locked_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos,
                              int64_t bytes);

/* qcow2-io.c */
int qcow2_co_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                   int flags);
int qcow2_co_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                    const void *buf, int flags);
/* The VM state area (qcow2-io.c): @pos bytes past the disk's last L1 entry. */
int qcow2_load_vmstate(BlockDriverState *bs, void *buf, int64_t pos, int64_t bytes);
int qcow2_save_vmstate(BlockDriverState *bs, const void *buf, int64_t pos, int64_t bytes);
int qcow2_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                           int flags);
int qcow2_co_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int qcow2_co_flush_to_os(BlockDriverState *bs);
int qcow2_co_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                          int64_t *pnum, int64_t *map, BlockDriverState **file);

/* Guest data at @host (guest offset @guest) of the data node, en/decrypted. */
int qcow2_data_read(BlockDriverState *bs, uint64_t host, uint64_t guest, int64_t len,
                    uint8_t *buf);
int qcow2_data_write(BlockDriverState *bs, uint64_t host, uint64_t guest, int64_t len,
                     const uint8_t *buf);

/* qcow2-subcluster.c: extended L2 entries (writes and partial zero writes) */
int qcow2_ext_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     const uint8_t *buf);
/* Zero subclusters [offset, offset + bytes) of one cluster (subcluster aligned, the
 * end may be the image's); -ENOTSUP for a compressed cluster. */
int qcow2_ext_zero_subclusters(BlockDriverState *bs, uint64_t offset, uint64_t bytes);
bool qcow2_ext_is_compressed(BlockDriverState *bs, uint64_t offset);

/* qcow2-crypto.c: encryption (legacy AES and LUKS) */
/* Open the encryption of an image whose header names crypt_method. */
int qcow2_crypto_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp);
/* Set up encryption on a new image (the LUKS header goes into new clusters). */
int qcow2_crypto_create(BlockDriverState *bs, const QCryptoBlockCreateOptions *opts,
                        GError **errp);
/* qemu-img amend -o encrypt.*: add or erase LUKS key slots. */
int qcow2_crypto_amend(BlockDriverState *bs, JsonObject *enc, bool force, GError **errp);
/* The "encrypt" member of qcow2's format-specific info, or NULL. */
JsonObject *qcow2_crypto_info(BlockDriverState *bs);
/*
 * Encrypt data of guest @guest from @src into @dst (@src left as it is) and
 * write it to @host of @data, a part at a time as each part is encrypted; or
 * decrypt data read from @host in place. Aligned to 512.
 */
int qcow2_crypto_write(BlockDriverState *bs, BlockDriverState *data, uint64_t host,
                       uint64_t guest, const uint8_t *src, uint8_t *dst, size_t len);
int qcow2_crypto_decrypt(BlockDriverState *bs, uint64_t host, uint64_t guest,
                         uint8_t *buf, size_t len);
/* Bytes of LUKS header a new image with these options holds (measure), 0 for
 * none or AES. */
int qcow2_crypto_header_size(const QCryptoBlockCreateOptions *opts, bool has_crypto,
                             uint64_t *len, GError **errp);
/* Parse -o encryption / encrypt.* (flat or a nested "encrypt" object). */
int qcow2_crypto_parse_create_opts(JsonObject *opts, QCryptoBlockCreateOptions *c,
                                   bool *has_crypto, GError **errp);

/* qcow2-compress.c */
/* Decompress one cluster (@out_len bytes) of compression @type. 0 or -EIO. */
int qcow2_decompress(int type, uint8_t *out, size_t out_len, const uint8_t *in,
                     size_t in_len);
/*
 * Compress @n whole clusters of @in into the cluster-sized slots of @out, in
 * parallel; @out_len[i] is the compressed size, or 0 when cluster i does not
 * compress below cluster_size - 1. 0 or -errno.
 */
int qcow2_compress_clusters(int type, size_t cluster_size, const uint8_t *in, int n,
                            uint8_t *out, ssize_t *out_len);

/* qcow2-check.c */
int qcow2_check(BlockDriverState *bs, BdrvCheckResult *res, int fix);

/* qcow2-create.c */
/* THE decision point: effective preallocation for create/resize/amend. */
PreallocMode qcow2_effective_prealloc(PreallocMode requested, bool data_file_raw);
int qcow2_create_opts(const char *filename, JsonObject *opts, GError **errp);
int qcow2_create_qmp(JsonObject *opts, GError **errp);
int qcow2_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                   PreallocMode prealloc, int flags, GError **errp);
int qcow2_amend(BlockDriverState *bs, JsonObject *opts, bool force, GError **errp);
/* Preallocate metadata (and data per @mode) for guest [offset, new_length). */
int qcow2_preallocate(BlockDriverState *bs, uint64_t offset, uint64_t new_length,
                      PreallocMode mode, GError **errp);
extern const CreateOptDesc qcow2_create_opt_descs[];
extern const CreateOptDesc qcow2_amend_opt_descs[];

/* qcow2-measure.c: qemu-img measure for qcow2 targets (BlockDriver.measure). */
int qcow2_measure(JsonObject *opts, BlockDriverState *in_bs, BlockMeasureInfo *info,
                  GError **errp);

/* qcow2-bitmap.c */
#define BME_FLAG_IN_USE (1U << 0)
#define BME_FLAG_AUTO   (1U << 1)
#define BME_FLAG_EXTRA_DATA_COMPATIBLE (1U << 2)
#define BME_TYPE_DIRTY_TRACKING 1

typedef struct Qcow2BitmapEntry {
    uint64_t dir_offset;        /* where this entry sits in the file */
    uint64_t table_offset;
    uint32_t table_size;
    uint32_t flags;
    uint8_t type;
    uint8_t granularity_bits;
    uint32_t extra_data_size;
    char *name;
} Qcow2BitmapEntry;

void qcow2_bitmap_entry_free(gpointer e);
/* Parse the bitmap directory into @out (of Qcow2BitmapEntry*). */
int qcow2_bitmaps_read_directory(BlockDriverState *bs, GPtrArray *out, GError **errp);
JsonArray *qcow2_bitmaps_info(BlockDriverState *bs, GError **errp);
/* QEMU's checks of a bitmaps extension's fields (@reserved: its second word). */
int qcow2_bitmaps_check_ext(BlockDriverState *bs, uint32_t reserved, GError **errp);
/* QEMU's checks of the bitmap directory at open; the error is QEMU's message. */
int qcow2_bitmaps_validate(BlockDriverState *bs, GError **errp);
/* Rewrite the flags word of one directory entry in place. */
int qcow2_bitmap_write_flags(BlockDriverState *bs, Qcow2BitmapEntry *e, uint32_t flags);
/* For check: add the bitmap directory, tables and data clusters to @refcounts. */
typedef void (*Qcow2RefFn)(void *opaque, uint64_t offset, uint64_t size);
int qcow2_bitmaps_for_each_ref(BlockDriverState *bs, Qcow2RefFn fn, void *opaque);

/* qcow2-bitmap-track.c */
/*
 * Before the first change (write, zero write, discard, resize): load every
 * consistent bitmap, flag it in_use on disk, and from then on record changes in
 * the enabled ("auto") ones. Bitmaps we cannot track that are enabled are left
 * flagged in_use, so nobody trusts a stale one.
 */
int qcow2_bitmaps_begin_changes(BlockDriverState *bs);
/* Record a change of guest bytes [offset, offset+bytes) in the enabled bitmaps. */
void qcow2_bitmaps_set_dirty(BlockDriverState *bs, uint64_t offset, uint64_t bytes);
/* Before a resize: refuse when an in_use (inconsistent) bitmap is present. */
int qcow2_bitmaps_can_resize(BlockDriverState *bs, GError **errp);
/* After a resize: the loaded bitmaps cover the new size (new bits clear). */
int qcow2_bitmaps_resize(BlockDriverState *bs, uint64_t new_size);
/* Never store the loaded bitmaps: they stay in_use on disk (not trusted). */
void qcow2_bitmaps_abandon(BlockDriverState *bs);
/* On close: write the loaded bitmaps back and clear their in_use flags. */
int qcow2_bitmaps_store(BlockDriverState *bs, GError **errp);
void qcow2_bitmaps_release(BlockDriverState *bs);

/* QMP's dirty-bitmaps list of this node (see bdrv_query_dirty_bitmaps) */
JsonArray *qcow2_bitmaps_query(BlockDriverState *bs);

/* qcow2-bitmap-ops.c: qemu-img bitmap's operations (BlockDriver.bitmap_op) */
bool qcow2_supports_persistent_bitmaps(BlockDriverState *bs);
int qcow2_bitmap_op(BlockDriverState *bs, BdrvBitmapOp op, const char *name,
                    uint64_t granularity, BlockDriverState *src, const char *src_name,
                    GError **errp);
int qcow2_bitmap_set_dirty(BlockDriverState *bs, const char *name, int64_t offset,
                           int64_t bytes, GError **errp);

/* qcow2-backing.c: BlockDriver.change_backing_file and make_empty */
int qcow2_change_backing_file(BlockDriverState *bs, const char *backing_file,
                              const char *backing_fmt);
int qcow2_make_empty(BlockDriverState *bs);

/* qcow2-snapshot.c */
typedef struct Qcow2SnapshotInfo {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    int64_t icount;
    uint32_t extra_size;        /* extra data as read (kept past the known fields) */
    uint8_t *extra;
    uint64_t entry_size;        /* bytes in the snapshot table, padded */
} Qcow2SnapshotInfo;
void qcow2_snapshot_info_free(gpointer sn);
/* Show snapshot @id / @name (NULL: any) read-only from now on (measure -l). */
int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id, const char *name,
                            GError **errp);
/* Parsed snapshot table (GPtrArray of Qcow2SnapshotInfo). */
int qcow2_read_snapshots(BlockDriverState *bs, GPtrArray *out, GError **errp);
/* QEMU's checks of a snapshot's L1 table location; 0 or -errno with errp set. */
int qcow2_check_snapshot_l1(BlockDriverState *bs, Qcow2SnapshotInfo *sn, GError **errp);
/* Does [offset, offset+size) meet an L2 table of a snapshot? 1, 0 or -errno. */
int qcow2_snapshots_l2_overlap(BlockDriverState *bs, int64_t offset, int64_t size);
int qcow2_read_snapshots_check(BlockDriverState *bs, GError **errp);
/*
 * qemu-img check's view of the snapshot table: reported (on stderr, unless
 * @quiet) and, with BDRV_FIX_ERRORS in @fix, repaired in memory: more than
 * QCOW_MAX_SNAPSHOTS entries, too much extra data in an entry, a table past
 * 64 MiB, v3 entries without the 16 bytes of extra data v3 needs. 0, or -errno
 * when the check cannot go on (-EFBIG: only -r all repairs it).
 */
typedef struct Qcow2SnapshotCheck {
    GPtrArray *list;        /* the entries kept (Qcow2SnapshotInfo) */
    uint64_t extent;        /* bytes they take on disk, from snapshots_offset */
    uint32_t found;         /* corruptions left */
    uint32_t fixed;         /* corruptions repaired (in memory) */
    bool rewrite;           /* entries changed: the table must be rewritten */
    bool dropped;           /* entries dropped: the header count must follow */
} Qcow2SnapshotCheck;
int qcow2_check_read_snapshot_table(BlockDriverState *bs, int fix, bool quiet,
                                    Qcow2SnapshotCheck *sc);
void qcow2_snapshot_check_free(Qcow2SnapshotCheck *sc);
/* Write the repaired count to the header (table unmoved); 0 or -errno. */
int qcow2_check_drop_snapshots(BlockDriverState *bs, Qcow2SnapshotCheck *sc);
/* Write the repaired table anew, freeing the old one (sc->extent); 0 or -errno. */
int qcow2_check_rewrite_snapshots(BlockDriverState *bs, Qcow2SnapshotCheck *sc);
/* amend compat=1.1: give every entry the extra data v3 needs. */
int qcow2_snapshots_upgrade(BlockDriverState *bs, GError **errp);
/* New snapshot @name of the active state; 0 or -errno (QEMU's codes). */
int qcow2_snapshot_create(BlockDriverState *bs, const char *name, int64_t vm_clock_nsec,
                          int64_t icount);
/* Revert to the snapshot with ID (else name) @name. */
int qcow2_snapshot_goto(BlockDriverState *bs, const char *name, GError **errp);
/* Delete the snapshot with name (else ID) @name. */
int qcow2_snapshot_delete(BlockDriverState *bs, const char *name, GError **errp);
int qcow2_snapshot_list(BlockDriverState *bs, GPtrArray *out);

/* Dirty (1) or clean (0) are the first *pnum bytes of [offset, offset+bytes) in
 * persistent bitmap @name; -ENOENT when there is no such bitmap. */
int qcow2_bitmap_status(BlockDriverState *bs, const char *name, int64_t offset,
                        int64_t bytes, int64_t *pnum);

#endif
