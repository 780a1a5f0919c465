/*
 * Creating an image the way qemu-img create does, for every tool that makes
 * one (qemu-img create, the daemon's blockdev-snapshot-sync): the format and
 * option checks, the backing file resolved (its format and, without a size,
 * its size), the "Formatting '...', ..." line on stdout, then bdrv_create().
 * QEMU's bdrv_img_create(), with its messages.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"

/*
 * Open the backing file to learn its format and size. Returns its length, or -1
 * with errp set. *detected receives the probed format name when none was given.
 */
static int64_t probe_backing(const char *filename, const char *backing,
                             const char *backing_fmt, char **detected, GError **errp)
{
    g_autofree char *path = bdrv_path_combine(filename, backing);
    g_autoptr(JsonObject) opts = json_object_new();
    BlockDriverState *bs;
    int64_t size;

    if (backing_fmt) {
        opts_set_str(opts, "driver", backing_fmt);
    }
    /* as QEMU's: an image in use (a running guest's backing file) may be probed */
    bs = bdrv_open(path, opts, BDRV_O_NO_BACKING | BDRV_O_NO_IO | BDRV_O_FORCE_SHARE,
                   errp);
    if (!bs) {
        if (errp && *errp) {
            char *msg = g_strdup_printf("%s\nCould not open backing image.",
                                        (*errp)->message);
            g_free((*errp)->message);
            (*errp)->message = msg;
        }
        return -1;
    }
    size = bdrv_getlength(bs);
    *detected = g_strdup(bdrv_get_format_name(bs));
    bdrv_unref(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "Could not get size of '%s'", path);
        return -1;
    }
    return size;
}

int bdrv_img_create(const BdrvImgCreateParams *p, GError **errp)
{
    g_autoptr(JsonObject) opts = NULL;
    g_autofree char *describe = NULL, *detected = NULL;
    const char *backing, *backing_fmt;
    int64_t backing_size = -1;
    int ret;

    if (!bdrv_find_format(p->fmt)) {
        error_setg(errp, "Unknown file format '%s'", p->fmt);
        return -ENOENT;
    }
    if (!bdrv_format_can_create(p->fmt)) {
        error_setg(errp, "Format driver '%s' does not support image creation", p->fmt);
        return -ENOTSUP;
    }
    if (bdrv_create_check_protocol(p->filename, errp) < 0) {
        return -ENOTSUP;
    }
    opts = p->parse_options ? p->parse_options(p->options, errp) : json_object_new();
    if (!opts) {
        return -EINVAL;
    }
    ret = bdrv_create_opts_check(p->fmt, opts, errp);
    if (ret < 0) {
        return ret;
    }
    if (p->size >= 0) {
        if (opts_has(opts, "size")) {
            error_setg(errp, "The image size must be specified only once");
            return -EINVAL;
        }
        g_autofree char *s = g_strdup_printf("%" PRId64, p->size);
        opts_set_str(opts, "size", s);
    }
    if (p->base_filename) {
        if (!bdrv_create_opt_known(p->fmt, "backing_file")) {
            error_setg(errp, "Backing file not supported for file format '%s'", p->fmt);
            return -EINVAL;
        }
        opts_set_str(opts, "backing_file", p->base_filename);
    }
    if (p->base_fmt) {
        if (!bdrv_create_opt_known(p->fmt, "backing_fmt")) {
            error_setg(errp, "Backing file format not supported for file format '%s'",
                       p->fmt);
            return -EINVAL;
        }
        opts_set_str(opts, "backing_fmt", p->base_fmt);
    }

    backing = opts_peek_str(opts, "backing_file");
    backing_fmt = opts_peek_str(opts, "backing_fmt");
    if (backing && !strcmp(backing, p->filename)) {
        error_setg(errp, "Error: Trying to create an image with the same filename as "
                   "the backing file");
        return -EINVAL;
    }
    if (backing && !*backing) {
        error_setg(errp, "Expected backing file name, got empty string");
        return -EINVAL;
    }
    if (backing && !p->unsafe) {
        backing_size = probe_backing(p->filename, backing, backing_fmt, &detected, errp);
        if (backing_size < 0) {
            return -EIO;
        }
    }
    if (backing && !backing_fmt) {
        if (detected) {
            error_setg(errp, "Backing file specified without backing format\n"
                       "Detected format of %s.", detected);
        } else {
            error_setg(errp, "Backing file specified without backing format");
        }
        return -EINVAL;
    }
    if (!opts_has(opts, "size")) {
        if (backing_size < 0) {
            error_setg(errp, "Image creation needs a size parameter");
            return -EINVAL;
        }
        g_autofree char *s = g_strdup_printf("%" PRId64, backing_size);
        opts_set_str(opts, "size", s);
    }

    if (!p->quiet) {
        describe = bdrv_create_opts_describe(p->fmt, opts);
        printf("Formatting '%s', %s\n", p->filename, describe);
        fflush(stdout);
    }
    bdrv_create_opts_normalize(p->fmt, opts);
    ret = bdrv_create(p->fmt, p->filename, opts, errp);
    if (ret == -EFBIG) {
        /* QEMU's qemu-img create words every "too big" this way */
        g_clear_error(errp);
        error_setg(errp, "The image size is too large for file format '%s'%s", p->fmt,
                   bdrv_create_opt_default(p->fmt, "cluster_size") ?
                   " (try using a larger cluster size)" : "");
    }
    return ret;
}
