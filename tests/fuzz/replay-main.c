/*
 * The main() of a fuzz target built without libFuzzer: replays every file
 * named on the command line (folders: every file in them, sorted) through
 * LLVMFuzzerTestOneInput, so that make check runs the seed corpus and the
 * crash reproducers on every build, sanitizer builds included.
 */
#include "qemu/osdep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(path, &buf, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    return 0;
}

static gint compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int replay_dir(const char *dir, int *count)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;

    if (!d) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    while ((n = g_dir_read_name(d))) {
        if (n[0] != '.') {
            g_ptr_array_add(names, g_build_filename(dir, n, NULL));
        }
    }
    g_ptr_array_sort(names, compare_paths);
    for (guint i = 0; i < names->len; i++) {
        if (replay_file(names->pdata[i]) < 0) {
            return -1;
        }
        (*count)++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int count = 0;

    for (int i = 1; i < argc; i++) {
        int ret;
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            ret = replay_dir(argv[i], &count);
        } else {
            ret = replay_file(argv[i]);
            count++;
        }
        if (ret < 0) {
            return 1;
        }
    }
    printf("1..1\nok 1 - replayed %d inputs\n", count);
    return count > 0 ? 0 : 1;
}
