/*
 * The options model: every way of naming options (-o key=val,... strings,
 * --image-opts dotted keys, json:{...} filenames, QMP arguments) becomes ONE
 * representation, a json-glib object tree, nested by the dots in the keys.
 * Values from strings stay strings; typed getters accept either form.
 */
#ifndef QEMU_OPTION_H
#define QEMU_OPTION_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>

/*
 * Parse "key=val,key2=val2" into a flat object of strings ("a.b" keys stay dotted).
 * ",," in a key or value stands for one comma. If @implied_key is non-NULL, a first
 * element without '=' is the value of that key. A key given twice keeps the last
 * value. Errors: empty key, missing '=' ("Invalid parameter 'x'").
 */
JsonObject *keyval_parse_flat(const char *str, const char *implied_key, GError **errp);

/* Same, then nested by dots: "file.filename=x" -> {"file": {"filename": "x"}}. */
JsonObject *keyval_parse(const char *str, const char *implied_key, GError **errp);

/* Nest an object's dotted keys (recursively); conflicts are errors. New object. */
JsonObject *opts_crumple(JsonObject *obj, GError **errp);
/* The reverse: a new flat object with dotted keys for nested objects. */
JsonObject *opts_flatten(JsonObject *obj);

/* Parse the JSON after "json:" into a nested options object. */
JsonObject *opts_parse_json_filename(const char *filename, GError **errp);

/* Deep copy. */
JsonObject *opts_clone(JsonObject *obj);
/* Copy every member of src into dst (src wins on conflict, objects merged). */
void opts_merge(JsonObject *dst, JsonObject *src);

/*
 * Typed getters. A missing key yields the default / NULL and no error. A value of
 * the wrong shape sets errp with QEMU's wording and returns the default.
 */
/* String value (numbers and booleans are converted); NULL if absent. Caller frees. */
char *opts_get_str(JsonObject *o, const char *key);
/* Borrowed string if the member is a JSON string, else NULL. */
const char *opts_peek_str(JsonObject *o, const char *key);
bool opts_get_bool(JsonObject *o, const char *key, bool def, GError **errp);
uint64_t opts_get_size(JsonObject *o, const char *key, uint64_t def, GError **errp);
int64_t opts_get_int(JsonObject *o, const char *key, int64_t def, GError **errp);
/* Child object member, or NULL. */
JsonObject *opts_get_object(JsonObject *o, const char *key);
bool opts_has(JsonObject *o, const char *key);
/* Is the member an explicit JSON null? */
bool opts_is_null(JsonObject *o, const char *key);
void opts_set_str(JsonObject *o, const char *key, const char *val);
/* Set a dotted key ("file.filename") in a nested object, creating levels. */
void opts_set_str_path(JsonObject *o, const char *dotted, const char *val);

/* Serialise compactly, members in insertion order: {"a": "b", "c": {...}} as QEMU. */
char *opts_to_json(JsonObject *o);
char *json_node_to_string_qemu(JsonNode *node, bool pretty);

#endif
