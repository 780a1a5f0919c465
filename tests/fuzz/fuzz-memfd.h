/*
 * The fuzz targets' image files: memfds refilled with the fuzzer's bytes for
 * each input, on a "filesystem" whose files stop at FUZZ_FILE_MAX. A hostile
 * header can make a repair grow the image to where its refcount table points,
 * terabytes away; a real disk may hold that (and the check then walks every
 * cluster, seconds of work, minutes under the sanitizers), but the fuzzer is
 * after wrong behaviour, not big files. So growing a file past the limit
 * fails with EFBIG here, as on a filesystem with a small maximum file size.
 */
#ifndef FUZZ_MEMFD_H
#define FUZZ_MEMFD_H

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define FUZZ_FILE_MAX (256 * MiB)

/*
 * The same goes for qcow2 images with huge L1 tables: every metadata write
 * checks each L1 entry for an overlap (QEMU's cached overlap check does too),
 * which a hostile 1M-entry table makes 100x slower under the sanitizers than
 * in a release build, past the fuzzer's timeout. Such inputs are skipped.
 */
#define FUZZ_L1_MAX 65536

static inline bool fuzz_qcow2_l1_too_big(const uint8_t *data, size_t size)
{
    return size >= 40 && ldl_be(data) == 0x514649fbU && ldl_be(data + 36) > FUZZ_L1_MAX;
}

/* Make *fd (created on first use) hold exactly @data. */
static inline void fuzz_memfd_fill(int *fd, const char *name, const uint8_t *data,
                                   size_t size)
{
    if (*fd < 0) {
        struct rlimit rl = { FUZZ_FILE_MAX, FUZZ_FILE_MAX };

        signal(SIGXFSZ, SIG_IGN);       /* EFBIG instead of the signal */
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
            abort();
        }
        *fd = memfd_create(name, MFD_CLOEXEC);
        if (*fd < 0) {
            abort();
        }
    }
    if (ftruncate(*fd, 0) < 0 || (size && pwrite(*fd, data, size, 0) != (ssize_t)size)) {
        abort();
    }
}

#endif
