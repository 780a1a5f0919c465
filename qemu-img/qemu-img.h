/*
 * What qemu-img's subcommand files share: the command functions, error exits with
 * QEMU's wording, getopt error handling, opening images, -o option lists, cache
 * modes, output formats and the progress line.
 */
#ifndef QEMU_IMG_H
#define QEMU_IMG_H

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "block/block.h"
#include "block/qapi.h"
#include <getopt.h>

/* Long option codes shared by the subcommands (above any short option char). */
enum {
    OPTION_OUTPUT = 256,
    OPTION_BACKING_CHAIN,
    OPTION_OBJECT,
    OPTION_IMAGE_OPTS,
    OPTION_PATTERN,
    OPTION_FLUSH_INTERVAL,
    OPTION_NO_DRAIN,
    OPTION_TARGET_IMAGE_OPTS,
    OPTION_SIZE,
    OPTION_PREALLOCATION,
    OPTION_SHRINK,
    OPTION_SALVAGE,
    OPTION_TARGET_IS_ZERO,
    OPTION_ADD,
    OPTION_REMOVE,
    OPTION_CLEAR,
    OPTION_ENABLE,
    OPTION_DISABLE,
    OPTION_MERGE,
    OPTION_BITMAPS,
    OPTION_FORCE,
    OPTION_SKIP_BROKEN,
    OPTION_START_OFFSET,
    OPTION_MAX_LENGTH,
    OPTION_UNTRUSTED,
};

typedef enum OutputFormat {
    OFORMAT_JSON,
    OFORMAT_HUMAN,
} OutputFormat;

/* Default cache modes (QEMU's): writeback, and unsafe for convert's target. */
#define BDRV_DEFAULT_CACHE "writeback"

/* ---- subcommands (one file each) ---- */
int img_amend(int argc, char **argv);
int img_bench(int argc, char **argv);
int img_bitmap(int argc, char **argv);
int img_check(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_create(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_info(int argc, char **argv);
int img_map(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_snapshot(int argc, char **argv);

/* ---- create (create.c), shared with convert ---- */
/* -o help: the format's options, merged with the protocol's given a file name. */
int img_print_create_opts_help(const char *filename, const char *fmt);

/* ---- errors ---- */
/* "qemu-img: <msg>" and "Try 'qemu-img --help' for more information", exit 1. */
G_NORETURN void error_exit(const char *fmt, ...) G_GNUC_PRINTF_CHECK(1, 2);
/* getopt returned ':' or '?': report argv[optind - 1] as QEMU does, exit 1. */
G_NORETURN void img_getopt_error(int c, char **argv);
/*
 * The one image operand of info/map/check/bench: exits with QEMU's usage error
 * unless exactly one is left; NULL (after the error) if --image-opts and -f are
 * both given.
 */
const char *img_single_filename(int argc, char **argv, bool image_opts, const char *fmt);
/* -h inside a subcommand: the global help, exit 0. */
G_NORETURN void img_help(void);

/* --object: create the object now (QEMU's order); help exits 0, errors exit 1 */
void img_add_object(const char *arg);

/* ---- parsing helpers ---- */
/* QEMU's two lines for a size argument it cannot parse: "Invalid @what specified.
 * You may use k, M, G, T, P or E suffixes for" / "kilobytes, ... and exabytes." */
void img_report_bad_size(const char *what);
/*
 * A size argument (suffixes allowed) in [min, max], min >= 0: QEMU's "Invalid @what
 * specified. Must be between..." or the suffix message; -1 after reporting.
 */
int64_t img_cvtnum(const char *what, const char *value, int64_t min, int64_t max);
/* --output=human|json; exits with QEMU's message otherwise. */
OutputFormat img_parse_output_format(const char *arg);
/* -t / -T cache mode into flags and writethrough; 0 or -1 if unknown. */
int img_parse_cache(const char *mode, int *flags, bool *writethrough);
/*
 * Append one -o argument to *options (joined with ','), after checking it is a
 * valid option list ("Invalid option list: ..."). false after reporting.
 */
bool img_accumulate_options(char **options, const char *optarg);
/* Does the option list ask for help ("help" or "?" as an element)? */
bool img_has_help_option(const char *options);
/*
 * Parse a -o list the way QEMU's QemuOpts does: "key=value" pairs split at ','
 * (",," is a comma), "key" alone means key=on and "nokey" key=off. Later keys win.
 * Returns a flat object of strings, NULL on error.
 */
JsonObject *img_parse_option_list(const char *options, GError **errp);

/* -l of measure and convert: "snapshot.id=..,snapshot.name=.." or an ID or name */
typedef struct ImgSnapshotParam {
    const char *id_or_name;
    char *id;
    char *name;
    bool given;
} ImgSnapshotParam;
/* Parse -l's argument (false after QEMU's message). */
bool img_parse_snapshot_param(const char *arg, ImgSnapshotParam *sn);
/* Show that snapshot on read-only @bs (nothing if none given); "Failed to load
 * snapshot: ..." on error. */
int img_load_snapshot(BlockDriverState *bs, const ImgSnapshotParam *sn);

/* ---- opening images ---- */
/*
 * Open an image the way qemu-img opens its images: @filename is a path, json:, or
 * with @image_opts a key=value,... list; @fmt names the driver (NULL: probe).
 * Errors are reported as "Could not open '<name>': <reason>"; NULL then.
 */
BlockDriverState *img_open(bool image_opts, const char *filename, const char *fmt,
                           int flags, bool writethrough, bool quiet, bool force_share);
/* The same with @extra options merged over what the arguments give (may be NULL). */
BlockDriverState *img_open_opts(bool image_opts, const char *filename, const char *fmt,
                                JsonObject *extra, int flags, bool writethrough,
                                bool quiet, bool force_share);
/* Cache flags + writethrough as set by -t/-T. */
int img_cache_flags(int flags, bool writethrough);

/*
 * Flags for images that are only inspected (info, map, check): no backing file
 * (callers that want it clear the bit), no external data file unless the user's
 * options name one, BDRV_O_UNTRUSTED with --untrusted.
 */
int img_inspect_flags(bool image_opts, const char *filename, bool untrusted);

/* Block status through the backing chain. */
typedef struct ImgBlockStatus {
    int64_t pnum;                /* bytes the status holds for */
    int flags;                   /* BDRV_BLOCK_*: ALLOCATED if any layer allocates;
                                  * ZERO added when no layer does */
    int depth;                   /* the layer that decided (0: the image itself) */
    int64_t offset;              /* with OFFSET_VALID: offset in @file */
    BlockDriverState *file;      /* with OFFSET_VALID: the node holding the data */
} ImgBlockStatus;
int img_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     ImgBlockStatus *st);

/* ---- progress (-p) ---- */
void img_progress_init(bool enabled, double min_step);
/* Set the progress to @percent (0..100); prints when it moved by min_step. */
void img_progress_set(double percent);
/* Absolute progress reported by a driver; a step back is printed too. */
void img_progress_report(double percent);
/* Add @delta percent; prints when it moved by min_step, and at 100% every time. */
void img_progress_add(float delta);
/* Print 100% (again, as QEMU does when a job completes). */
void img_progress_finish(void);
/* End the progress output with a newline. */
void img_progress_end(void);

/* Read or write error position messages ("error while reading at byte N: ..."). */
const char *img_strerror(int ret);

#endif
