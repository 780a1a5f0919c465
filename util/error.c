/*
 * Error helpers: one GError domain carrying errno codes, and stderr reporting in
 * QEMU's "program: message" form.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"

static const char *progname = "qemu";

G_DEFINE_QUARK(qemu-error-quark, qemu_error)

void error_setg(GError **errp, const char *fmt, ...)
{
    va_list ap;

    if (!errp || *errp) {
        return;
    }
    va_start(ap, fmt);
    *errp = g_error_new_valist(QEMU_ERROR, EINVAL, fmt, ap);
    va_end(ap);
}

void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (!errp || *errp) {
        return;
    }
    if (errnum < 0) {
        errnum = -errnum;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    *errp = g_error_new(QEMU_ERROR, errnum, "%s: %s", msg, g_strerror(errnum));
}

void error_prepend(GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *prefix = NULL;
    char *msg;

    if (!errp || !*errp) {
        return;
    }
    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    msg = g_strconcat(prefix, (*errp)->message, NULL);
    g_free((*errp)->message);
    (*errp)->message = msg;
}

void error_propagate(GError **dst, GError *src)
{
    if (!src) {
        return;
    }
    if (dst && !*dst) {
        *dst = src;
    } else {
        g_error_free(src);
    }
}

int error_get_errno(const GError *err)
{
    if (err && err->domain == QEMU_ERROR && err->code > 0) {
        return err->code;
    }
    return EINVAL;
}

void error_set_progname(const char *name)
{
    progname = name;
}

/* NULL means stderr (looked up at each report, as stderr may be reopened). */
static FILE *report_out;

static FILE *report_stream(void)
{
    return report_out ? report_out : stderr;
}

void error_set_output(FILE *out)
{
    report_out = out;
}

const char *error_get_progname(void)
{
    return progname;
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    fprintf(report_stream(), "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(report_stream(), fmt, ap);
    va_end(ap);
    fputc('\n', report_stream());
}

void warn_report(const char *fmt, ...)
{
    va_list ap;

    fprintf(report_stream(), "%s: warning: ", progname);
    va_start(ap, fmt);
    vfprintf(report_stream(), fmt, ap);
    va_end(ap);
    fputc('\n', report_stream());
}

void warn_report_unterminated(const char *fmt, ...)
{
    va_list ap;

    fprintf(report_stream(), "%s: warning: ", progname);
    va_start(ap, fmt);
    vfprintf(report_stream(), fmt, ap);
    va_end(ap);
}

void error_report_err(GError *err)
{
    if (err) {
        error_report("%s", err->message);
        g_error_free(err);
    }
}
