/*
 * String helpers: size parsing with suffixes and the two human size styles.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include <math.h>

static int suffix_shift(char c)
{
    switch (g_ascii_toupper(c)) {
    case 'B': return 0;
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    case 'T': return 40;
    case 'P': return 50;
    case 'E': return 60;
    default: return -1;
    }
}

int qemu_strtosz_unit(const char *nptr, const char **end, uint64_t default_unit,
                      uint64_t *result)
{
    const char *p = nptr;
    uint64_t ival = 0;
    double fraction = 0;
    uint64_t mul;
    int shift;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (*p == '-' || !*p) {
        if (end) {
            *end = nptr;
        }
        return -EINVAL;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        char *e;
        if (!g_ascii_isxdigit(p[2])) {
            if (end) {
                *end = nptr;
            }
            return -EINVAL;
        }
        errno = 0;
        ival = g_ascii_strtoull(p + 2, &e, 16);
        if (errno == ERANGE) {
            return -ERANGE;
        }
        p = e;
        /* hex numbers take no suffix (and no fraction) */
        if (end) {
            *end = p;
        } else if (*p) {
            return -EINVAL;
        }
        if (ival > INT64_MAX) {
            return -ERANGE;
        }
        *result = ival;
        return 0;
    }
    if (!g_ascii_isdigit(*p)) {
        if (end) {
            *end = nptr;
        }
        return -EINVAL;
    }
    while (g_ascii_isdigit(*p)) {
        unsigned d = *p - '0';
        if (ival > (UINT64_MAX - d) / 10) {
            return -ERANGE;
        }
        ival = ival * 10 + d;
        p++;
    }
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (!g_ascii_isdigit(*p)) {
            if (end) {
                *end = nptr;
            }
            return -EINVAL;
        }
        while (g_ascii_isdigit(*p)) {
            fraction += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    mul = default_unit;
    if (*p && (shift = suffix_shift(*p)) >= 0) {
        mul = UINT64_C(1) << shift;
        p++;
    }
    if (end) {
        *end = p;
    } else if (*p) {
        return -EINVAL;
    }
    if (fraction != 0 && mul == 1) {
        /* a fraction of a byte makes no sense */
        return -EINVAL;
    }
    if (ival > INT64_MAX / mul) {
        return -ERANGE;
    }
    ival *= mul;
    if (fraction != 0) {
        double extra = floor(fraction * (double)mul);
        if ((double)ival + extra > (double)INT64_MAX) {
            return -ERANGE;
        }
        ival += (uint64_t)extra;
    }
    if (ival > INT64_MAX) {
        return -ERANGE;
    }
    *result = ival;
    return 0;
}

int qemu_strtosz(const char *nptr, const char **end, uint64_t *result)
{
    return qemu_strtosz_unit(nptr, end, 1, result);
}

int qemu_strtoi64(const char *nptr, int base, int64_t *result)
{
    char *e;

    if (!nptr || !*nptr) {
        return -EINVAL;
    }
    errno = 0;
    *result = g_ascii_strtoll(nptr, &e, base);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (*e || e == nptr) {
        return -EINVAL;
    }
    return 0;
}

int qemu_strtou64(const char *nptr, int base, uint64_t *result)
{
    char *e;

    if (!nptr || !*nptr || *nptr == '-') {
        return -EINVAL;
    }
    errno = 0;
    *result = g_ascii_strtoull(nptr, &e, base);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (*e || e == nptr) {
        return -EINVAL;
    }
    return 0;
}

char *size_to_str(uint64_t val)
{
    static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    uint64_t div;
    int i = 0;

    /*
     * Use the largest unit in which the value is at least 1, switching to the next
     * unit once it reaches 1000 of the current one, so that three significant
     * digits always suffice.
     */
    while (i < 6 && val >= (UINT64_C(1000) << (10 * i))) {
        i++;
    }
    div = UINT64_C(1) << (10 * i);
    return g_strdup_printf("%0.3g %sB", (double)val / div, suffixes[i]);
}

void cvtstr(double value, char *str, size_t size)
{
    static const struct { double div; const char *unit; } units[] = {
        { 1152921504606846976.0, "EiB" }, { 1125899906842624.0, "PiB" },
        { 1099511627776.0, "TiB" }, { 1073741824.0, "GiB" },
        { 1048576.0, "MiB" }, { 1024.0, "KiB" },
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(units); i++) {
        if (value >= units[i].div) {
            char *dot;
            snprintf(str, size, "%.3f %s", value / units[i].div, units[i].unit);
            dot = strstr(str, ".000 ");
            if (dot) {
                memmove(dot, dot + 4, strlen(dot + 4) + 1);
            }
            return;
        }
    }
    /* below 1 KiB QEMU prints six decimals (a rate: "0.908331 bytes") */
    snprintf(str, size, "%f bytes", value);
    {
        char *dot = strstr(str, ".000000 ");
        if (dot) {
            memmove(dot, dot + 7, strlen(dot + 7) + 1);
        }
    }
}

char *str_join_argv(int argc, char **argv)
{
    GString *s = g_string_new(NULL);
    int i;

    for (i = 0; i < argc; i++) {
        if (i) {
            g_string_append_c(s, ' ');
        }
        g_string_append(s, argv[i]);
    }
    return g_string_free(s, FALSE);
}

bool strstart(const char *s, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);

    if (strncmp(s, prefix, n)) {
        return false;
    }
    if (rest) {
        *rest = s + n;
    }
    return true;
}

int qemu_parse_onoff(const char *s, bool *out)
{
    if (!strcmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "off")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}
