/*
 * qemu-img: the disk image utility's entry point. The global options (-h, -V, -T),
 * the table of subcommands, the help text, and the helpers the subcommands share
 * (error exits, getopt errors, opening images, -o lists, cache modes, progress).
 * Each subcommand lives in its own qemu-img-<name>.c file.
 */
#include "qemu-img.h"
#include <signal.h>

typedef struct ImgCmd {
    const char *name;
    int (*handler)(int argc, char **argv);
} ImgCmd;

static const ImgCmd img_cmds[] = {
    { "amend", img_amend },
    { "bench", img_bench },
    { "bitmap", img_bitmap },
    { "check", img_check },
    { "compare", img_compare },
    { "convert", img_convert },
    { "create", img_create },
    { "info", img_info },
    { "map", img_map },
    { "resize", img_resize },
    { "snapshot", img_snapshot },
    { NULL, NULL },
};

static const char *const help_syntax =
"  amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename\n"
"  bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename\n"
"  bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap\n"
"  check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] [--untrusted] filename\n"
"  compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] [--untrusted] filename1 filename2\n"
"  convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] [-m num_coroutines] [-W] [--untrusted] filename [filename2 [...]] output_filename\n"
"  create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]\n"
"  info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] [--untrusted] filename\n"
"  map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] [--untrusted] filename\n"
"  snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename\n"
"  resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size\n";

static const char *const help_params =
"Command parameters:\n"
"  'filename' is a disk image filename\n"
"  'objectdef' is a QEMU user creatable object definition. See the qemu(1)\n"
"    manual page for a description of the object properties. The most common\n"
"    object type is a 'secret', which is used to supply passwords and/or\n"
"    encryption keys.\n"
"  'fmt' is the disk image format. It is guessed automatically in most cases\n"
"  'cache' is the cache mode used to write the output disk image, the valid\n"
"    options are: 'none', 'writeback' (default, except for convert), 'writethrough',\n"
"    'directsync' and 'unsafe' (default for convert)\n"
"  'src_cache' is the cache mode used to read input disk images, the valid\n"
"    options are the same as for the 'cache' option\n"
"  'size' is the disk image size in bytes. Optional suffixes\n"
"    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),\n"
"    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are\n"
"    supported. 'b' is ignored.\n"
"  'output_filename' is the destination disk image filename\n"
"  'output_fmt' is the destination format\n"
"  'options' is a comma separated list of format specific options in a\n"
"    name=value format. Use -o help for an overview of the options supported by\n"
"    the used format\n"
"  '-c' indicates that target image must be compressed (qcow format only)\n"
"  '-u' allows unsafe backing chains. For image creation, allow creating without\n"
"       attempting to open the backing file.\n"
"  '-h' with or without a command shows this help and lists the supported formats\n"
"  '-p' show progress of command (only certain commands)\n"
"  '-q' use Quiet mode - do not print any output (except errors)\n"
"  '-S' indicates the consecutive number of bytes (defaults to 4k) that must\n"
"       contain only zeros for qemu-img to create a sparse image during\n"
"       conversion. If the number of bytes is 0, the source will not be scanned for\n"
"       unallocated or zero sectors, and the destination image will always be\n"
"       fully allocated\n"
"  '--output' takes the format in which the output must be done (human or json)\n"
"  '-n' skips the target volume creation (useful if the volume is created\n"
"       prior to running qemu-img)\n"
"  '--untrusted' refuses images that refer to other files (a backing file or an\n"
"       external data file): use it on images from untrusted sources\n"
"\n"
"Parameters to bitmap subcommand:\n"
"  'bitmap' is the name of the bitmap to manipulate, through one or more\n"
"       actions from '--add', '--remove', '--clear', '--enable', '--disable',\n"
"       or '--merge source'\n"
"  '-g granularity' sets the granularity for '--add' actions\n"
"  '-b source' and '-F src_fmt' tell '--merge' actions to find the source\n"
"       bitmaps from an alternative file\n"
"\n"
"Parameters to check subcommand:\n"
"  '-r' tries to repair any inconsistencies that are found during the check.\n"
"       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all\n"
"       kinds of errors, with a higher risk of choosing the wrong fix or\n"
"       hiding corruption that has already occurred.\n"
"\n"
"Parameters to convert subcommand:\n"
"  '-m' specifies how many coroutines work in parallel during the convert\n"
"       process (defaults to 8)\n"
"  '-W' allow to write to the target out of order rather than sequential\n"
"\n"
"Parameters to snapshot subcommand:\n"
"  'snapshot' is the name of the snapshot to create, apply or delete\n"
"  '-a' applies a snapshot (revert disk to saved state)\n"
"  '-c' creates a snapshot\n"
"  '-d' deletes a snapshot\n"
"  '-l' lists all snapshots in the given image\n"
"\n"
"Parameters to compare subcommand:\n"
"  '-f' first image format\n"
"  '-F' second image format\n"
"  '-s' run in Strict mode - fail on different image size or sector allocation\n";

static void print_version(void)
{
    printf("qemu-img version " QEMU_PKGVERSION "\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n");
}

static void print_format(void *opaque, const char *name)
{
    printf(" %s", name);
}

G_NORETURN void img_help(void)
{
    print_version();
    printf("usage: qemu-img [standard options] command [command options]\n"
           "QEMU disk image utility\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "    '-T', '--trace'      [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
           "                         specify tracing options\n"
           "\n"
           "Command syntax:\n"
           "%s\n%s\nSupported formats:", help_syntax, help_params);
    bdrv_iterate_format(print_format, NULL);
    printf("\n\n"
           "See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n"
           "More information on the QEMU project at <https://qemu.org>.\n");
    exit(EXIT_SUCCESS);
}

/* ---- errors ---- */

G_NORETURN void error_exit(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", error_get_progname());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'qemu-img --help' for more information\n");
    exit(EXIT_FAILURE);
}

G_NORETURN void img_getopt_error(int c, char **argv)
{
    if (c == ':') {
        error_exit("missing argument for option '%s'", argv[optind - 1]);
    }
    error_exit("unrecognized option '%s'", argv[optind - 1]);
}

/* ---- parsing helpers ---- */

void img_report_bad_size(const char *what)
{
    error_report("Invalid %s specified. You may use k, M, G, T, P or E suffixes for",
                 what);
    error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
}

OutputFormat img_parse_output_format(const char *arg)
{
    if (!strcmp(arg, "json")) {
        return OFORMAT_JSON;
    }
    if (!strcmp(arg, "human")) {
        return OFORMAT_HUMAN;
    }
    error_report("--output must be used with human or json as argument.");
    exit(EXIT_FAILURE);
}

int img_parse_cache(const char *mode, int *flags, bool *writethrough)
{
    if (bdrv_parse_cache_mode(mode, flags) < 0) {
        return -1;
    }
    *writethrough = (*flags & BDRV_O_WRITETHROUGH) != 0;
    *flags &= ~BDRV_O_WRITETHROUGH;
    return 0;
}

int img_cache_flags(int flags, bool writethrough)
{
    return writethrough ? flags | BDRV_O_WRITETHROUGH : flags & ~BDRV_O_WRITETHROUGH;
}

/* A list is valid unless empty or ending in an unescaped ','. */
static bool is_valid_option_list(const char *optarg)
{
    size_t len = strlen(optarg), commas = 0;

    if (!len) {
        return false;
    }
    while (commas < len && optarg[len - 1 - commas] == ',') {
        commas++;
    }
    if (commas % 2) {
        return false;
    }
    return optarg[0] != ',';
}

bool img_accumulate_options(char **options, const char *optarg)
{
    char *joined;

    if (!is_valid_option_list(optarg)) {
        error_report("Invalid option list: %s", optarg);
        return false;
    }
    if (!*options) {
        *options = g_strdup(optarg);
        return true;
    }
    joined = g_strdup_printf("%s,%s", *options, optarg);
    g_free(*options);
    *options = joined;
    return true;
}

/* Split at unescaped commas, turning ",," into ','. */
static GPtrArray *split_option_list(const char *options)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = options; *p; p++) {
        if (*p == ',') {
            if (p[1] == ',') {
                g_string_append_c(cur, ',');
                p++;
                continue;
            }
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
            continue;
        }
        g_string_append_c(cur, *p);
    }
    g_ptr_array_add(parts, g_string_free(cur, FALSE));
    return parts;
}

bool img_has_help_option(const char *options)
{
    g_autoptr(GPtrArray) parts = NULL;

    if (!options) {
        return false;
    }
    parts = split_option_list(options);
    for (guint i = 0; i < parts->len; i++) {
        if (!strcmp(parts->pdata[i], "help") || !strcmp(parts->pdata[i], "?")) {
            return true;
        }
    }
    return false;
}

JsonObject *img_parse_option_list(const char *options, GError **errp)
{
    JsonObject *obj = json_object_new();
    g_autoptr(GPtrArray) parts = NULL;

    if (!options) {
        return obj;
    }
    /* '=' splits before ",," is decoded: a key cannot contain an escaped comma */
    parts = split_option_list(options);
    for (guint i = 0; i < parts->len; i++) {
        const char *part = parts->pdata[i];
        const char *eq = strchr(part, '=');

        if (eq) {
            g_autofree char *key = g_strndup(part, eq - part);
            json_object_set_string_member(obj, key, eq + 1);
        } else if (g_str_has_prefix(part, "no")) {
            json_object_set_string_member(obj, part + 2, "off");
        } else {
            json_object_set_string_member(obj, part, "on");
        }
    }
    return obj;
}

/* ---- opening images ---- */

/*
 * An --image-opts string as QEMU reads it: key=value pairs; a bare first element
 * names the "file" node, later bare elements are deprecated booleans.
 */
static JsonObject *parse_image_opts(const char *str)
{
    JsonObject *obj = json_object_new();
    g_autoptr(GPtrArray) parts = split_option_list(str);

    for (guint i = 0; i < parts->len && *str; i++) {
        const char *part = parts->pdata[i];
        const char *eq = strchr(part, '=');

        if (eq) {
            g_autofree char *key = g_strndup(part, eq - part);
            json_object_set_string_member(obj, key, eq + 1);
        } else if (i == 0) {
            json_object_set_string_member(obj, "file", part);
        } else {
            bool no = g_str_has_prefix(part, "no");
            const char *key = no ? part + 2 : part;

            warn_report("short-form boolean option '%s' deprecated\n"
                        "Please use %s=%s instead", part, key, no ? "off" : "on");
            json_object_set_string_member(obj, key, no ? "off" : "on");
        }
    }
    return obj;
}

static bool names_driver_or_file(JsonObject *opts)
{
    GList *members = json_object_get_members(opts);
    bool found = false;

    for (GList *l = members; l && !found; l = l->next) {
        const char *key = l->data;
        found = !strcmp(key, "driver") || !strcmp(key, "file") ||
                g_str_has_prefix(key, "file.");
    }
    g_list_free(members);
    return found;
}

BlockDriverState *img_open(bool image_opts, const char *filename, const char *fmt,
                           int flags, bool writethrough, bool quiet, bool force_share)
{
    g_autoptr(JsonObject) opts = NULL;
    g_autoptr(GError) err = NULL;
    BlockDriverState *bs;

    if (image_opts) {
        opts = parse_image_opts(filename);
        if (fmt) {
            opts_set_str(opts, "driver", fmt);
        }
        if (!names_driver_or_file(opts)) {
            error_report("Could not open '%s': Must specify either driver or file",
                         filename);
            return NULL;
        }
    } else {
        opts = json_object_new();
        if (fmt) {
            opts_set_str(opts, "driver", fmt);
        }
    }
    if (force_share) {
        g_autofree char *v = image_opts && opts_has(opts, "force-share") ?
                             opts_get_str(opts, "force-share") : NULL;
        if (image_opts && opts_has(opts, "force-share") && (!v || strcmp(v, "on"))) {
            error_report("--force-share/-U conflicts with image options");
            return NULL;
        }
        flags |= BDRV_O_FORCE_SHARE;
    }
    flags = img_cache_flags(flags, writethrough);
    bs = bdrv_open(image_opts ? NULL : filename, opts, flags, &err);
    if (!bs) {
        error_report("Could not open '%s': %s", filename, err->message);
        return NULL;
    }
    return bs;
}

/* ---- progress ---- */

static struct {
    bool enabled;
    double min_step;
    double current;
    double last_print;
} progress;

static void progress_print_line(void)
{
    printf("    (%3.2f/100%%)\r", progress.current);
    fflush(stdout);
}

void img_progress_init(bool enabled, double min_step)
{
    progress.enabled = enabled;
    progress.min_step = min_step;
    progress.current = 0;
    progress.last_print = 0;
    if (enabled) {
        progress_print_line();
    }
}

void img_progress_set(double percent)
{
    if (!progress.enabled) {
        return;
    }
    progress.current = MIN(percent, 100.0);
    if (progress.current - progress.last_print >= progress.min_step) {
        progress.last_print = progress.current;
        progress_print_line();
    }
}

void img_progress_finish(void)
{
    if (progress.enabled) {
        progress.current = 100.0;
        progress.last_print = 100.0;
        progress_print_line();
    }
}

void img_progress_end(void)
{
    if (!progress.enabled) {
        return;
    }
    printf("\n");
    fflush(stdout);
    progress.enabled = false;
}

/* ---- block status through the backing chain ---- */

int img_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     ImgBlockStatus *st)
{
    BlockDriverState *file = NULL;
    int64_t map = 0, pnum = 0;
    int depth = 0, ret;

    for (;;) {
        BlockDriverState *backing;

        ret = bdrv_block_status(bs, offset, bytes, &pnum, &map, &file);
        if (ret < 0) {
            return ret;
        }
        if (pnum <= 0) {
            return -EIO;
        }
        bytes = pnum;
        if (ret & BDRV_BLOCK_ALLOCATED) {
            break;
        }
        backing = bdrv_backing_child(bs);
        if (!backing || offset >= bdrv_getlength(backing)) {
            ret |= BDRV_BLOCK_ZERO;        /* nothing below: reads as zeros */
            break;
        }
        bs = backing;
        depth++;
    }
    *st = (ImgBlockStatus) {
        .pnum = pnum,
        .flags = ret & ~BDRV_BLOCK_EOF,
        .depth = depth,
        .offset = map,
        .file = (ret & BDRV_BLOCK_OFFSET_VALID) ? file : NULL,
    };
    return 0;
}

int img_inspect_flags(bool image_opts, const char *filename, bool untrusted)
{
    int flags = BDRV_O_NO_BACKING | BDRV_O_NO_DATA_FILE;

    /* a data-file option the user gives explicitly is honoured */
    if (image_opts) {
        g_autoptr(JsonObject) o = keyval_parse(filename, NULL, NULL);
        if (o && opts_has(o, "data-file")) {
            flags &= ~BDRV_O_NO_DATA_FILE;
        }
    } else if (g_str_has_prefix(filename, "json:")) {
        g_autoptr(JsonObject) o = opts_parse_json_filename(filename, NULL);
        if (o && opts_has(o, "data-file")) {
            flags &= ~BDRV_O_NO_DATA_FILE;
        }
    }
    if (untrusted) {
        flags |= BDRV_O_UNTRUSTED;
    }
    return flags;
}

const char *img_strerror(int ret)
{
    return g_strerror(ret < 0 ? -ret : ret);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "trace", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmdname;
    int c;

    error_set_progname("qemu-img");
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        error_exit("Not enough arguments");
    }
    /* global options stop at the first non-option: the command */
    while ((c = getopt_long(argc, argv, "+:hVT:", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'V':
            print_version();
            return EXIT_SUCCESS;
        case 'T':
            /* tracing is not implemented: accepted and ignored */
            break;
        }
    }
    if (optind >= argc) {
        return EXIT_SUCCESS;
    }
    cmdname = argv[optind];
    argc -= optind;
    argv += optind;
    optind = 0;       /* the subcommand parses its own argv from scratch */

    for (const ImgCmd *cmd = img_cmds; cmd->name; cmd++) {
        if (!strcmp(cmdname, cmd->name)) {
            return cmd->handler(argc, argv);
        }
    }
    error_exit("Command not found: %s", cmdname);
}

const char *img_single_filename(int argc, char **argv, bool image_opts, const char *fmt)
{
    if (optind != argc - 1) {
        error_exit("Expecting one image file name");
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return NULL;
    }
    return argv[optind];
}
