/*
 * Fuzz target: the QMP input stream of the storage daemon. The bytes are fed to
 * a JsonStream in pieces whose sizes come from the first byte (values that span
 * reads, several values in one read), and the whole input also goes through
 * qmp_json_parse. Every value that comes out is printed back with QEMU's JSON
 * printer, which must produce text the parser accepts again.
 * Built as a libFuzzer target (make fuzz) and as a corpus replayer (make check).
 */
#include "qemu/osdep.h"
#include "qemu/option.h"
#include "../../storage-daemon/qmp-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_value(void *opaque, JsonNode *value, GError *err)
{
    int *count = opaque;

    (*count)++;
    if (value) {
        g_autofree char *text = json_node_to_string_qemu(value, *count % 2);
        g_autoptr(GError) e = NULL;
        JsonNode *again = qmp_json_parse(text, strlen(text), &e);

        /* what we print must parse again */
        g_assert(again);
        json_node_unref(again);
        json_node_unref(value);
    } else {
        g_assert(err && err->message);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int count = 0;
    size_t piece, off;
    JsonStream *js;
    g_autoptr(GError) err = NULL;
    JsonNode *whole;

    if (size == 0 || size > 1024 * 1024) {
        return 0;
    }
    piece = (data[0] % 64) + 1;
    js = json_stream_new(on_value, &count);
    for (off = 1; off < size; off += piece) {
        json_stream_feed(js, (const char *)data + off, MIN(piece, size - off));
    }
    json_stream_free(js);

    whole = qmp_json_parse((const char *)data + 1, size - 1, &err);
    if (whole) {
        json_node_unref(whole);
    }
    return 0;
}
