/*
 * Fuzz target: the NBD server's input parser (storage-daemon/nbd-server.c, as
 * the daemon and qemu-nbd run it). The bytes are what one client sends over a
 * socket, from the client flags on: option haggling, then transmission requests
 * against a writable 1 MiB null-co export named "" (with allocation depth and two
 * dirty-bitmap contexts). The server must answer or hang up, and never crash,
 * leak or read past what it was sent.
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "storage-daemon/nbd.h"
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static NbdExport fuzz_export;
static GList *fuzz_exports;

NbdExport *nbd_export_find(const char *name)
{
    return !strcmp(name, fuzz_export.name) ? &fuzz_export : NULL;
}

GList *nbd_export_list(void)
{
    return fuzz_exports;
}

void nbd_export_put(NbdExport *exp)
{
    exp->clients--;
}

bool block_lock_try(void)
{
    return true;
}

void block_unlock(void)
{
}

bool block_io_begin(void)
{
    return true;
}

void block_io_end(void)
{
}

static void fuzz_init(void)
{
    g_autoptr(JsonObject) o = json_object_new();
    g_autoptr(GError) err = NULL;

    error_set_progname("fuzz-nbd");
    opts_set_str(o, "driver", "null-co");
    opts_set_str(o, "size", "1048576");
    opts_set_str(o, "read-zeroes", "on");
    fuzz_export.bs = bdrv_open(NULL, o, BDRV_O_RDWR, &err);
    g_assert(fuzz_export.bs);
    fuzz_export.name = g_strdup("");
    fuzz_export.id = g_strdup("fuzz");
    fuzz_export.writable = true;
    fuzz_export.multi_conn = true;
    fuzz_export.alloc_depth = true;
    /* two bitmap contexts (ids 2 and 3); the node has no bitmaps, so their
     * block status fails, which exercises the error path between chunks */
    fuzz_export.bitmaps = g_new0(NbdExportBitmap, 2);
    fuzz_export.bitmaps[0] = (NbdExportBitmap) { g_strdup("b0"), fuzz_export.bs };
    fuzz_export.bitmaps[1] = (NbdExportBitmap) { g_strdup("b1"), fuzz_export.bs };
    fuzz_export.nb_bitmaps = 2;
    fuzz_exports = g_list_append(NULL, &fuzz_export);
    /*
     * The server's complaints are expected: keep them quiet, but leave
     * stderr itself alone (libFuzzer reports its statistics there).
     */
    error_set_output(fopen("/dev/null", "w"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    int sv[2];
    size_t sent = 0;
    char sink[65536];

    if (!inited) {
        fuzz_init();
        inited = true;
    }
    if (size > 1 * MiB ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        return 0;
    }
    nbd_server_add_client(sv[0]);
    /* feed the input, draining replies, until it is all sent or the server quits */
    for (int spins = 0; spins < 100000 && nbd_server_client_count() > 0; spins++) {
        ssize_t n;

        if (sent < size) {
            n = send(sv[1], data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += n;
            } else if (n < 0 && errno != EAGAIN) {
                break;
            }
            if (sent == size) {
                shutdown(sv[1], SHUT_WR);
            }
        }
        while (recv(sv[1], sink, sizeof(sink), 0) > 0) {
            /* replies are not checked, only drained */
        }
        g_main_context_iteration(NULL, FALSE);
    }
    close(sv[1]);
    for (int spins = 0; spins < 1000 && nbd_server_client_count() > 0; spins++) {
        g_main_context_iteration(NULL, FALSE);
    }
    nbd_server_stop();
    return 0;
}
