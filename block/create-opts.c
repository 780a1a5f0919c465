/*
 * Creation and amend option lists as the tools show and check them: a format's
 * list merged with its protocol's (formats are created on the "file" protocol),
 * the -o help texts, value checking with QEMU's messages (values are rewritten in
 * canonical form: sizes and numbers in decimal), and the option part of
 * qemu-img create's "Formatting '...', fmt=..." line.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"

/* The protocol a format's image files are created on (NULL for protocols). */
static const BlockDriver *create_protocol(const BlockDriver *drv)
{
    return drv->is_protocol ? NULL : &bdrv_file;
}

/* The format's options, then those of its protocol the format does not have. */
static GPtrArray *merged_descs(const BlockDriver *drv, bool with_protocol)
{
    GPtrArray *list = g_ptr_array_new();
    const BlockDriver *proto = with_protocol ? create_protocol(drv) : NULL;

    for (const CreateOptDesc *d = drv->create_opt_descs; d && d->name; d++) {
        g_ptr_array_add(list, (gpointer)d);
    }
    for (const CreateOptDesc *d = proto ? proto->create_opt_descs : NULL;
         d && d->name; d++) {
        bool dup = false;
        for (guint i = 0; i < list->len && !dup; i++) {
            dup = !strcmp(((const CreateOptDesc *)list->pdata[i])->name, d->name);
        }
        if (!dup) {
            g_ptr_array_add(list, (gpointer)d);
        }
    }
    return list;
}

static GPtrArray *descs_array(const CreateOptDesc *descs)
{
    GPtrArray *list = g_ptr_array_new();

    for (const CreateOptDesc *d = descs; d && d->name; d++) {
        g_ptr_array_add(list, (gpointer)d);
    }
    return list;
}

static const CreateOptDesc *find_desc(GPtrArray *list, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = list->pdata[i];
        if (!strcmp(d->name, name)) {
            return d;
        }
    }
    return NULL;
}

static gint compare_descs(gconstpointer a, gconstpointer b)
{
    const CreateOptDesc *da = *(const CreateOptDesc *const *)a;
    const CreateOptDesc *db = *(const CreateOptDesc *const *)b;

    return strcmp(da->name, db->name);
}

/* "title\n" then "  name=<type>  - help" lines sorted by name. */
static char *descs_help(const char *title, GPtrArray *list)
{
    static const char *const type_names[] = {
        [OPT_STRING] = "str", [OPT_BOOL] = "bool (on/off)",
        [OPT_NUMBER] = "num", [OPT_SIZE] = "size",
    };
    GString *s = g_string_new(NULL);
    g_autoptr(GPtrArray) sorted = g_ptr_array_copy(list, NULL, NULL);

    g_string_append_printf(s, "%s\n", title);
    g_ptr_array_sort(sorted, compare_descs);
    for (guint i = 0; i < sorted->len; i++) {
        const CreateOptDesc *d = sorted->pdata[i];
        g_autofree char *head = NULL;

        if (d->hidden) {
            continue;
        }
        head = g_strdup_printf("%s=<%s>", d->name, type_names[d->type]);
        g_string_append_printf(s, "  %-22s - %s\n", head, d->help);
    }
    return g_string_free(s, FALSE);
}

char *bdrv_create_opts_help(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autofree char *title = NULL;
    g_autoptr(GPtrArray) list = NULL;

    if (!drv || !drv->create_opt_descs) {
        return NULL;
    }
    title = g_strdup_printf("Supported %s options:", fmt);
    list = merged_descs(drv, false);
    return descs_help(title, list);
}

char *bdrv_create_opts_help_merged(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = NULL;

    if (!drv || !drv->create_opt_descs) {
        return NULL;
    }
    list = merged_descs(drv, true);
    return descs_help("Supported options:", list);
}

char *bdrv_amend_opts_help(const char *fmt)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autofree char *title = NULL;
    g_autoptr(GPtrArray) list = NULL;

    if (!drv || !drv->amend || !drv->amend_opt_descs) {
        return NULL;
    }
    title = g_strdup_printf("Amend options for '%s':", fmt);
    list = descs_array(drv->amend_opt_descs);
    return descs_help(title, list);
}

bool bdrv_create_opt_known(const char *fmt, const char *key)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = NULL;

    if (!drv) {
        return false;
    }
    list = merged_descs(drv, true);
    return find_desc(list, key) != NULL;
}

const char *bdrv_create_opt_default(const char *fmt, const char *key)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = NULL;
    const CreateOptDesc *d;

    if (!drv) {
        return NULL;
    }
    list = merged_descs(drv, true);
    d = find_desc(list, key);
    return d ? d->def_value_str : NULL;
}

/* ---- values ---- */

static int suffix_shift(char c)
{
    static const char suffixes[] = "BKMGTPE";
    const char *p = c ? strchr(suffixes, g_ascii_toupper(c)) : NULL;

    return p ? (int)(p - suffixes) * 10 : -1;
}

/*
 * A size option value: decimal with an optional fraction and suffix, or 0x hex
 * without either; the whole unsigned 64-bit range. 0, -EINVAL or -ERANGE.
 */
int bdrv_parse_option_size(const char *str, uint64_t *result)
{
    const char *p = str;
    unsigned __int128 v = 0;
    uint64_t frac_num = 0, frac_den = 1;
    int shift = 0;

    if (!g_ascii_isdigit(*p)) {
        return -EINVAL;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (!g_ascii_isxdigit(*p)) {
            return -EINVAL;
        }
        for (; g_ascii_isxdigit(*p); p++) {
            v = v * 16 + g_ascii_xdigit_value(*p);
            if (v > UINT64_MAX) {
                return -ERANGE;
            }
        }
        if (*p) {
            return -EINVAL;
        }
        *result = v;
        return 0;
    }
    for (; g_ascii_isdigit(*p); p++) {
        v = v * 10 + (*p - '0');
        if (v > UINT64_MAX) {
            return -ERANGE;
        }
    }
    if (*p == '.') {
        p++;
        if (!g_ascii_isdigit(*p)) {
            return -EINVAL;
        }
        for (; g_ascii_isdigit(*p); p++) {
            if (frac_den < UINT64_C(1000000000000000000)) {
                frac_num = frac_num * 10 + (*p - '0');
                frac_den *= 10;
            }
        }
    }
    if (*p) {
        shift = suffix_shift(*p);
        if (shift < 0 || p[1]) {
            return -EINVAL;
        }
    }
    if (frac_num && !shift) {
        return -EINVAL;            /* a fraction of a byte */
    }
    v <<= shift;
    v += ((unsigned __int128)frac_num << shift) / frac_den;
    if (v > UINT64_MAX) {
        return -ERANGE;
    }
    *result = v;
    return 0;
}

static int parse_bool_value(const char *s, bool *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
        *out = true;
    } else if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
        *out = false;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* A number option value: decimal, 0x hex or 0 octal; a leading '-' wraps around. */
static int parse_number_value(const char *s, uint64_t *out)
{
    const char *p = s;
    bool neg = false;
    char *end;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!g_ascii_isdigit(*p)) {
        return -EINVAL;
    }
    errno = 0;
    *out = g_ascii_strtoull(p, &end, 0);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (*end) {
        return -EINVAL;
    }
    if (neg) {
        *out = -*out;
    }
    return 0;
}

/* Check one value against its type; sizes and numbers become decimal. */
static int check_value(JsonObject *opts, const CreateOptDesc *d, GError **errp)
{
    g_autofree char *val = opts_get_str(opts, d->name);
    uint64_t n;
    bool b;
    int ret;

    switch (d->type) {
    case OPT_BOOL:
        if (parse_bool_value(val, &b) < 0) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", d->name);
            return -EINVAL;
        }
        return 0;
    case OPT_NUMBER:
        ret = parse_number_value(val, &n);
        if (ret == -ERANGE) {
            error_setg(errp, "Value '%s' is out of range for parameter '%s'", val,
                       d->name);
            return ret;
        } else if (ret < 0) {
            error_setg(errp, "Parameter '%s' expects a number", d->name);
            return ret;
        }
        break;
    case OPT_SIZE:
        ret = bdrv_parse_option_size(val, &n);
        if (ret == -ERANGE) {
            error_setg(errp, "Value '%s' is out of range for parameter '%s'", val,
                       d->name);
            return ret;
        } else if (ret < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64\n"
                       "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                       "tera-, peta-\nand exabytes, respectively.", d->name);
            return ret;
        }
        break;
    default:
        return 0;
    }
    /* numbers keep their sign (QEMU prints them signed); sizes stay unsigned */
    {
        g_autofree char *canon = d->type == OPT_NUMBER ?
            g_strdup_printf("%" PRId64, (int64_t)n) : g_strdup_printf("%" PRIu64, n);
        opts_set_str(opts, d->name, canon);
    }
    return 0;
}

static int check_opts(GPtrArray *list, GPtrArray *create_list, JsonObject *opts,
                      GError **errp)
{
    GList *members = json_object_get_members(opts);
    int ret = 0;

    for (GList *l = members; l && ret == 0; l = l->next) {
        const char *key = l->data;
        const CreateOptDesc *d = find_desc(list, key);

        if (!d) {
            if (create_list && find_desc(create_list, key)) {
                error_setg(errp, "Invalid parameter '%s'\n"
                           "This option is only supported for image creation", key);
            } else {
                error_setg(errp, "Invalid parameter '%s'", key);
            }
            ret = -EINVAL;
        } else {
            ret = check_value(opts, d, errp);
        }
    }
    g_list_free(members);
    return ret;
}

int bdrv_create_opts_check(const char *fmt, JsonObject *opts, GError **errp)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = NULL;

    if (!drv) {
        error_setg(errp, "Unknown file format '%s'", fmt);
        return -ENOENT;
    }
    list = merged_descs(drv, true);
    return check_opts(list, NULL, opts, errp);
}

int bdrv_amend_opts_check(const char *fmt, JsonObject *opts, GError **errp)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = NULL, create_list = NULL;

    if (!drv || !drv->amend || !drv->amend_opt_descs) {
        error_setg(errp, "Format driver '%s' does not support option amendment", fmt);
        return -ENOTSUP;
    }
    list = descs_array(drv->amend_opt_descs);
    create_list = merged_descs(drv, false);
    return check_opts(list, create_list, opts, errp);
}

void bdrv_create_opts_normalize(const char *fmt, JsonObject *opts)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = drv ? merged_descs(drv, true) : g_ptr_array_new();

    if (drv && drv->amend_opt_descs) {
        for (const CreateOptDesc *d = drv->amend_opt_descs; d->name; d++) {
            g_ptr_array_add(list, (gpointer)d);
        }
    }
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = list->pdata[i];
        g_autofree char *v = opts_get_str(opts, d->name);
        bool b;

        if (v && d->type == OPT_BOOL && parse_bool_value(v, &b) == 0) {
            opts_set_str(opts, d->name, b ? "on" : "off");
        }
    }
}

char *bdrv_create_opts_describe(const char *fmt, JsonObject *opts)
{
    BlockDriver *drv = bdrv_find_format(fmt);
    g_autoptr(GPtrArray) list = drv ? merged_descs(drv, true) : g_ptr_array_new();
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "fmt=%s", fmt);
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = list->pdata[i];
        g_autofree char *v = opts_get_str(opts, d->name);
        uint64_t n;

        if (v && (d->type == OPT_SIZE || d->type == OPT_NUMBER) &&
            qemu_strtou64(v, 10, &n) == 0) {
            g_string_append_printf(s, " %s=%" PRId64, d->name, (int64_t)n);
        } else if (v) {
            /* QEMU prints option lists as they parse: a comma doubled */
            g_auto(GStrv) parts = g_strsplit(v, ",", -1);
            g_autofree char *escaped = g_strjoinv(",,", parts);
            g_string_append_printf(s, " %s=%s", d->name, escaped);
        } else if (d->def_value_str) {
            g_string_append_printf(s, " %s=%s", d->name, d->def_value_str);
        }
    }
    return g_string_free(s, FALSE);
}
