/*
 * The QMP input stream: splits the bytes a client sends into JSON values the way
 * QEMU's monitor does (values may span lines, several may share one; newlines are
 * only whitespace), and parses each into a JsonNode with QEMU's extensions
 * (single-quoted strings) and QEMU's error texts ("JSON parse error, ...").
 */
#ifndef QSD_QMP_JSON_H
#define QSD_QMP_JSON_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

typedef struct JsonStream JsonStream;

/*
 * Called once per complete value: @value is the parsed JSON (owned by the callee)
 * or NULL with @err set (borrowed) when the value was malformed.
 */
typedef void (*JsonStreamFunc)(void *opaque, JsonNode *value, GError *err);

JsonStream *json_stream_new(JsonStreamFunc func, void *opaque);
void json_stream_free(JsonStream *js);
/* Feed bytes; calls func for every value completed by them. */
void json_stream_feed(JsonStream *js, const char *buf, size_t len);

/* Parse one complete JSON text (no trailing garbage) with QEMU's error texts. */
JsonNode *qmp_json_parse(const char *text, size_t len, GError **errp);

#endif
