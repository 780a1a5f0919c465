/*
 * Preloaded into Debian's QEMU binaries (the oracle) by our test runners only.
 *
 * On the machines we test on, getrusage(RUSAGE_THREAD) advances in coarse
 * steps: a thread that ran 2.6 ms of CPU often reads as 0 ms. QEMU's LUKS
 * key-slot timing measures its first PBKDF2 round that way, and a 0 ms reading
 * makes it fail with "Unable to get accurate CPU usage", so Debian's QEMU
 * fails LUKS creation now and then through no fault of the tools under test.
 * This answers RUSAGE_THREAD from the thread's scheduler clock
 * (CLOCK_THREAD_CPUTIME_ID), which counts the same CPU time in nanoseconds;
 * every other request goes to the C library unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

int getrusage(int who, struct rusage *usage)
{
    static int (*next)(int, struct rusage *);
    struct timespec ts;

    if (!next) {
        next = (int (*)(int, struct rusage *))dlsym(RTLD_NEXT, "getrusage");
        if (!next) {
            return -1;
        }
    }
    if (next(who, usage) < 0) {
        return -1;
    }
    if (who == RUSAGE_THREAD && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) {
        /* all of it as user time: a caller timing its work adds the two */
        usage->ru_utime.tv_sec = ts.tv_sec;
        usage->ru_utime.tv_usec = ts.tv_nsec / 1000;
        usage->ru_stime.tv_sec = 0;
        usage->ru_stime.tv_usec = 0;
    }
    return 0;
}
