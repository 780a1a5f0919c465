/*
 * String helpers: size parsing with suffixes (qemu_strtosz), human-readable sizes in
 * the two styles QEMU prints (qemu-img's size_to_str, qemu-io's cvtstr), and small
 * string utilities.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"

/*
 * Parse a size: decimal (optionally with a fraction) or 0x hex, with an optional
 * suffix B/K/M/G/T/P/E (case-insensitive, powers of 1024). A number without a
 * suffix is multiplied by @default_unit (1 for bytes). On success store the value
 * and return 0; -EINVAL for non-numeric input or an unknown suffix (and for a
 * negative value), -ERANGE if it does not fit in 63 bits.
 * If @end is non-NULL, parsing may stop early and *end is set to the rest.
 */
int qemu_strtosz_unit(const char *nptr, const char **end, uint64_t default_unit,
                      uint64_t *result);
int qemu_strtosz(const char *nptr, const char **end, uint64_t *result);

/* Plain integer parsing with full-string check; 0 or -EINVAL/-ERANGE. */
int qemu_strtoi64(const char *nptr, int base, int64_t *result);
int qemu_strtou64(const char *nptr, int base, uint64_t *result);

/* "1.5 GiB", "512 B", "0.977 GiB": qemu-img's human style (%0.3g). */
char *size_to_str(uint64_t val);
/* "1.500 KiB", "1 MiB", "1000 bytes": qemu-io's style (%.3f, ".000" dropped). */
void cvtstr(double value, char *str, size_t size);

/* Join argv-like words with spaces. */
char *str_join_argv(int argc, char **argv);

/* True if s starts with prefix; *rest (if non-NULL) gets what follows it. */
bool strstart(const char *s, const char *prefix, const char **rest);

/* Parse "on"/"off" (and yes/no/true/false as QEMU's keyval does not: only on|off). */
int qemu_parse_onoff(const char *s, bool *out);

#endif
