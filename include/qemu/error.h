/*
 * The error model: GError with one domain whose code is an errno value, plus
 * QEMU-style reporting helpers ("prog: message" on stderr).
 */
#ifndef QEMU_ERROR_H
#define QEMU_ERROR_H

#include "qemu/osdep.h"

#define QEMU_ERROR (qemu_error_quark())
GQuark qemu_error_quark(void);

/* Set *errp (if errp is non-NULL and *errp is NULL) to a formatted message. */
void error_setg(GError **errp, const char *fmt, ...) G_GNUC_PRINTF_CHECK(2, 3);
/* Same, appending ": strerror(errnum)" and keeping errnum as the code. */
void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF_CHECK(3, 4);
/* Prefix an existing error's message. */
void error_prepend(GError **errp, const char *fmt, ...) G_GNUC_PRINTF_CHECK(2, 3);
/* Move src into *dst (or drop it if dst is NULL). */
void error_propagate(GError **dst, GError *src);
/* errno carried by an error (EINVAL if it has none). */
int error_get_errno(const GError *err);

/* The program name used by error_report ("qemu-img", ...). */
void error_set_progname(const char *name);
/* Send reports to OUT instead of stderr (NULL: back to stderr). */
void error_set_output(FILE *out);
const char *error_get_progname(void);
/* Print "progname: message\n" to stderr. */
void error_report(const char *fmt, ...) G_GNUC_PRINTF_CHECK(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF_CHECK(1, 2);
/* The same without the final newline (a few QEMU warnings end so). */
void warn_report_unterminated(const char *fmt, ...) G_GNUC_PRINTF_CHECK(1, 2);
/* Print an error's message with error_report and free it. */
void error_report_err(GError *err);

#endif
