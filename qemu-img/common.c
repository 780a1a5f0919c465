/*
 * What qemu-img's subcommands share: error exits with QEMU's wording, getopt
 * errors, size and option-list parsing, cache modes, opening images (--image-opts,
 * json:, --untrusted), block status and the progress line.
 */
#include "qemu-img.h"
#include "qemu/objects.h"

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

void img_add_object(const char *arg)
{
    GError *err = NULL;
    bool help = false;

    if (!user_object_add_cmdline(arg, &help, &err)) {
        error_report_err(err);
        exit(1);
    }
    if (help) {
        exit(0);
    }
}

void img_report_bad_size(const char *what)
{
    error_report("Invalid %s specified. You may use k, M, G, T, P or E suffixes for",
                 what);
    error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
}

int64_t img_cvtnum(const char *what, const char *value, int64_t min, int64_t max)
{
    uint64_t n;
    int ret = qemu_strtosz(value, NULL, &n);

    if (ret == -ERANGE || (ret == 0 && (n > (uint64_t)max || n < (uint64_t)min))) {
        error_report("Invalid %s specified. Must be between %" PRId64 " and %" PRId64 ".",
                     what, min, max);
        return -1;
    }
    if (ret < 0) {
        img_report_bad_size(what);
        return -1;
    }
    return n;
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
    return img_open_opts(image_opts, filename, fmt, NULL, flags, writethrough, quiet,
                         force_share);
}

BlockDriverState *img_open_opts(bool image_opts, const char *filename, const char *fmt,
                                JsonObject *extra, int flags, bool writethrough,
                                bool quiet, bool force_share)
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
    if (extra) {
        /* nested first: dotted keys of the user and objects of @extra mix */
        JsonObject *nested = opts_crumple(opts, &err);

        if (!nested) {
            error_report("Could not open '%s': %s", filename, err->message);
            return NULL;
        }
        json_object_unref(opts);
        opts = nested;
        opts_merge(opts, extra);
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
    if (extra) {
        opts_merge(opts, extra);
    }
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

/*
 * Absolute progress a driver reports (amend): printed when it moved on by the
 * step, or went back (QEMU's amend announces another walk over the refcounts
 * that way, iotest 112), or is at the start.
 */
void img_progress_report(double percent)
{
    if (!progress.enabled) {
        return;
    }
    progress.current = MIN(percent, 100.0);
    if (progress.current - progress.last_print >= progress.min_step ||
        progress.current < progress.last_print || progress.current == 0 ||
        progress.current == 100.0) {
        progress.last_print = progress.current;
        progress_print_line();
    }
}

void img_progress_add(float delta)
{
    float current;

    if (!progress.enabled) {
        return;
    }
    /* float, as QEMU adds its steps up */
    current = (float)progress.current + delta / 100.0f * 100.0f;
    progress.current = MIN(current, 100.0f);
    if (progress.current - progress.last_print >= progress.min_step ||
        progress.current == 100.0) {
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
        /* a filter shows the backing chain of the node it filters */
        backing = bdrv_backing_child(bdrv_skip_filters(bs));
        if (!backing || offset >= bdrv_getlength(backing)) {
            /* nothing below a node that could have a backing file: zeros */
            if (backing || bdrv_supports_backing(bdrv_skip_filters(bs))) {
                ret |= BDRV_BLOCK_ZERO;
            }
            /* nothing is there: no offset to show (null-co without read-zeroes) */
            if (!(ret & BDRV_BLOCK_ZERO)) {
                ret &= ~BDRV_BLOCK_OFFSET_VALID;
            }
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
