/*
 * Block drivers built as loadable modules, as QEMU's Debian packages build
 * some of theirs: a driver whose library is large (libnbd brings libxml2 and
 * ICU, about 2 MiB of every process's memory; libssh brings OpenSSL's libcrypto)
 * is a stub in the driver table
 * and loads from block-NAME.so (block-nbd.so, block-ssh.so) the first time an
 * image needs it. Modules are
 * looked for in $QEMU_MODULE_DIR, next to the running executable, then in the
 * installed module folder.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include <gmodule.h>

static const char *const nbd_protocol_aliases[] = { "nbd+tcp", "nbd+unix", NULL };

/* The names the table and the filename parser need before the module loads. */
BlockDriver bdrv_nbd_stub = {
    .format_name = "nbd",
    .protocol_name = "nbd",
    .protocol_aliases = nbd_protocol_aliases,
    .module = "nbd",
};

#ifdef CONFIG_SSH
BlockDriver bdrv_ssh_stub = {
    .format_name = "ssh",
    .protocol_name = "ssh",
    .module = "ssh",
};
#endif

static GMutex module_lock;

static GModule *open_in(const char *dir, const char *file, GError **last)
{
    g_autofree char *path = NULL;
    GModule *m;

    if (!dir || !*dir) {
        return NULL;
    }
    path = g_build_filename(dir, file, NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        return NULL;
    }
    m = g_module_open(path, G_MODULE_BIND_LOCAL);
    if (!m) {
        g_clear_error(last);
        g_set_error(last, G_IO_ERROR, G_IO_ERROR_FAILED, "Failed to open module: %s",
                    g_module_error());
    }
    return m;
}

static BlockDriver *load(const BlockDriver *stub, GError **errp)
{
    g_autofree char *file = g_strdup_printf("block-%s.so", stub->module);
    g_autofree char *sym = g_strdup_printf("bdrv_%s", stub->module);
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *exe_dir = exe ? g_path_get_dirname(exe) : NULL;
    /* the build tree's modules, for the daemon built in build/storage-daemon/ */
    g_autofree char *build_dir =
        exe_dir && g_str_has_suffix(exe_dir, "/storage-daemon") ?
        g_path_get_dirname(exe_dir) : NULL;
    const char *dirs[] = { g_getenv("QEMU_MODULE_DIR"), exe_dir, build_dir,
                           CONFIG_MODULE_DIR };
    GError *last = NULL;
    gpointer drv = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(dirs); i++) {
        GModule *m = open_in(dirs[i], file, &last);

        if (!m) {
            continue;
        }
        if (g_module_symbol(m, sym, &drv) && drv) {
            g_module_make_resident(m);
            g_clear_error(&last);
            return drv;
        }
        g_clear_error(&last);
        g_set_error(&last, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "Module %s has no driver %s", file, sym);
        g_module_close(m);
    }
    if (last) {
        g_propagate_error(errp, last);
    } else {
        error_setg(errp, "Module %s not found (looked in the executable's folder and %s)",
                   file, CONFIG_MODULE_DIR);
    }
    return NULL;
}

BlockDriver *bdrv_module_resolve(BlockDriver *drv, GError **errp)
{
    static BlockDriver *loaded[8];
    static const BlockDriver *stubs[8];
    BlockDriver *real = NULL;
    size_t i;

    if (!drv || !drv->module) {
        return drv;
    }
    g_mutex_lock(&module_lock);
    for (i = 0; i < G_N_ELEMENTS(stubs) && stubs[i]; i++) {
        if (stubs[i] == drv) {
            real = loaded[i];
            break;
        }
    }
    if (!real && i < G_N_ELEMENTS(stubs)) {
        real = load(drv, errp);
        if (real) {
            stubs[i] = drv;
            loaded[i] = real;
        }
    }
    g_mutex_unlock(&module_lock);
    return real;
}
