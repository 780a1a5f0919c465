/*
 * TLS for the NBD server, with GnuTLS: loading the server's credentials
 * (tls-creds-x509: ca-cert.pem, server-cert.pem, server-key.pem and the optional
 * ca-crl.pem in its dir; tls-creds-psk: keys.psk; tls-creds-anon), one
 * non-blocking session per connection (handshake, record I/O over the socket),
 * and the checks after the handshake as QEMU makes them: the client's
 * certificate when verify-peer is on (the default), then the authz-simple
 * object's identity against the certificate's distinguished name (QEMU 7.2
 * checks no identity for PSK clients: knowing the key is enough). Errors are
 * worded as QEMU words them.
 */
#include "nbd-tls.h"
#include "qemu/objects.h"
#include "qemu/option.h"
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

typedef enum NbdTlsKind { TLS_X509, TLS_PSK, TLS_ANON } NbdTlsKind;

static struct {
    bool enabled;
    NbdTlsKind kind;
    bool verify_peer;
    char *priority;
    char *authz_id;
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t psk;
    gnutls_anon_server_credentials_t anon;
} tls;

struct NbdTlsSession {
    gnutls_session_t session;
    int fd;
    GByteArray *pre;        /* bytes read before the handshake, served first */
    bool send_blocked;      /* the last record_send said AGAIN: resume it */
};

/* ---- credentials ---- */

/* "DIR/NAME" if readable; else NULL, and an error if @required. */
static char *creds_file(const char *dir, const char *name, bool required,
                        GError **errp)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    if (access(path, R_OK) < 0) {
        if (required || errno != ENOENT) {
            error_setg_errno(errp, errno, "Unable to access credentials %s", path);
        }
        return NULL;
    }
    return g_steal_pointer(&path);
}

static bool load_x509(const char *dir, GError **errp)
{
    g_autofree char *ca = NULL, *cert = NULL, *key = NULL, *crl = NULL;
    GError *local = NULL;
    int ret;

    if (!(ca = creds_file(dir, "ca-cert.pem", true, errp)) ||
        (!(crl = creds_file(dir, "ca-crl.pem", false, &local)) && local) ||
        !(cert = creds_file(dir, "server-cert.pem", true, errp)) ||
        !(key = creds_file(dir, "server-key.pem", true, errp))) {
        if (local) {
            g_propagate_error(errp, local);
        }
        return false;
    }
    gnutls_certificate_allocate_credentials(&tls.x509);
    ret = gnutls_certificate_set_x509_trust_file(tls.x509, ca, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        error_setg(errp, "Cannot load CA certificate '%s': %s", ca,
                   gnutls_strerror(ret));
        return false;
    }
    ret = gnutls_certificate_set_x509_key_file(tls.x509, cert, key,
                                               GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        error_setg(errp, "Cannot load certificate '%s' & key '%s': %s", cert, key,
                   gnutls_strerror(ret));
        return false;
    }
    if (crl) {
        ret = gnutls_certificate_set_x509_crl_file(tls.x509, crl, GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            error_setg(errp, "Cannot load CRL '%s': %s", crl, gnutls_strerror(ret));
            return false;
        }
    }
    gnutls_certificate_set_known_dh_params(tls.x509, GNUTLS_SEC_PARAM_MEDIUM);
    return true;
}

static bool load_psk(const char *dir, GError **errp)
{
    g_autofree char *keys = creds_file(dir, "keys.psk", true, errp);
    int ret;

    if (!keys) {
        return false;
    }
    gnutls_psk_allocate_server_credentials(&tls.psk);
    ret = gnutls_psk_set_server_credentials_file(tls.psk, keys);
    if (ret < 0) {
        error_setg(errp, "Cannot set PSK server credentials: %s",
                   gnutls_strerror(ret));
        return false;
    }
    gnutls_psk_set_server_known_dh_params(tls.psk, GNUTLS_SEC_PARAM_MEDIUM);
    return true;
}

/* The options of TLS credentials @creds_id for a server endpoint. */
static JsonObject *find_creds(const char *creds_id, GError **errp)
{
    JsonObject *o = user_object_find(creds_id);
    const char *type, *endpoint;

    if (!o) {
        error_setg(errp, "No TLS credentials with id '%s'", creds_id);
        return NULL;
    }
    type = opts_peek_str(o, "qom-type");
    if (!type || !g_str_has_prefix(type, "tls-creds-")) {
        error_setg(errp, "Object with id '%s' is not TLS credentials", creds_id);
        return NULL;
    }
    endpoint = opts_peek_str(o, "endpoint");
    if (!endpoint || strcmp(endpoint, "server")) {
        error_setg(errp, "Expected TLS credentials for a server endpoint");
        return NULL;
    }
    return o;
}

bool nbd_tls_server_check(const char *creds_id, GError **errp)
{
    return find_creds(creds_id, errp) != NULL;
}

bool nbd_tls_server_setup(const char *creds_id, const char *authz_id, GError **errp)
{
    JsonObject *o;
    const char *type, *dir, *priority;
    GError *local = NULL;
    bool ok;

    nbd_tls_server_clear();
    if (!creds_id) {
        tls.authz_id = g_strdup(authz_id);
        return true;
    }
    o = find_creds(creds_id, errp);
    if (!o) {
        return false;
    }
    type = opts_peek_str(o, "qom-type");
    dir = opts_peek_str(o, "dir");
    priority = opts_peek_str(o, "priority");
    tls.verify_peer = opts_get_bool(o, "verify-peer", true, &local);
    if (local) {
        g_propagate_error(errp, local);
        return false;
    }
    if (!strcmp(type, "tls-creds-x509")) {
        tls.kind = TLS_X509;
        ok = dir ? load_x509(dir, errp) :
             (error_setg(errp, "Missing 'dir' property value"), false);
        tls.priority = g_strdup(priority ? priority : "NORMAL");
    } else if (!strcmp(type, "tls-creds-psk")) {
        tls.kind = TLS_PSK;
        ok = dir ? load_psk(dir, errp) :
             (error_setg(errp, "Missing 'dir' property value"), false);
        tls.priority = g_strdup_printf("%s:+ECDHE-PSK:+DHE-PSK:+PSK",
                                       priority ? priority : "NORMAL");
    } else if (!strcmp(type, "tls-creds-anon")) {
        tls.kind = TLS_ANON;
        gnutls_anon_allocate_server_credentials(&tls.anon);
        gnutls_anon_set_server_known_dh_params(tls.anon, GNUTLS_SEC_PARAM_MEDIUM);
        tls.priority = g_strdup_printf("%s:+ANON-DH:+ANON-ECDH",
                                       priority ? priority : "NORMAL");
        ok = true;
    } else {
        error_setg(errp, "Object with id '%s' is not TLS credentials", creds_id);
        ok = false;
    }
    if (!ok) {
        nbd_tls_server_clear();
        return false;
    }
    tls.enabled = true;
    tls.authz_id = g_strdup(authz_id);
    return true;
}

void nbd_tls_server_clear(void)
{
    g_clear_pointer(&tls.x509, gnutls_certificate_free_credentials);
    g_clear_pointer(&tls.psk, gnutls_psk_free_server_credentials);
    g_clear_pointer(&tls.anon, gnutls_anon_free_server_credentials);
    g_clear_pointer(&tls.priority, g_free);
    g_clear_pointer(&tls.authz_id, g_free);
    tls.enabled = false;
}

bool nbd_tls_server_enabled(void)
{
    return tls.enabled;
}

/* ---- the transport: the socket, after any bytes read before the handshake ---- */

static ssize_t tls_push(gnutls_transport_ptr_t opaque, const void *buf, size_t len)
{
    NbdTlsSession *s = opaque;
    ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);

    if (n < 0) {
        gnutls_transport_set_errno(s->session, errno);
    }
    return n;
}

static ssize_t tls_pull(gnutls_transport_ptr_t opaque, void *buf, size_t len)
{
    NbdTlsSession *s = opaque;
    ssize_t n;

    if (s->pre && s->pre->len) {
        n = MIN(len, s->pre->len);
        memcpy(buf, s->pre->data, n);
        g_byte_array_remove_range(s->pre, 0, n);
        return n;
    }
    n = recv(s->fd, buf, len, 0);
    if (n < 0) {
        gnutls_transport_set_errno(s->session, errno);
    }
    return n;
}

/* ---- sessions ---- */

NbdTlsSession *nbd_tls_session_new(int fd, const void *pre, size_t pre_len,
                                   GError **errp)
{
    NbdTlsSession *s = g_new0(NbdTlsSession, 1);
    const char *err_pos = NULL;
    int ret;

    s->fd = fd;
    if (pre_len) {
        s->pre = g_byte_array_new();
        g_byte_array_append(s->pre, pre, pre_len);
    }
    ret = gnutls_init(&s->session, GNUTLS_SERVER | GNUTLS_NONBLOCK);
    if (ret < 0) {
        error_setg(errp, "Cannot initialize TLS session: %s", gnutls_strerror(ret));
        g_free(s);
        return NULL;
    }
    ret = gnutls_priority_set_direct(s->session, tls.priority, &err_pos);
    if (ret < 0) {
        error_setg(errp, "Unable to set TLS session priority %s: %s", tls.priority,
                   gnutls_strerror(ret));
        nbd_tls_session_free(s);
        return NULL;
    }
    switch (tls.kind) {
    case TLS_X509:
        gnutls_credentials_set(s->session, GNUTLS_CRD_CERTIFICATE, tls.x509);
        if (tls.verify_peer) {
            gnutls_certificate_server_set_request(s->session, GNUTLS_CERT_REQUEST);
        }
        break;
    case TLS_PSK:
        gnutls_credentials_set(s->session, GNUTLS_CRD_PSK, tls.psk);
        break;
    case TLS_ANON:
        gnutls_credentials_set(s->session, GNUTLS_CRD_ANON, tls.anon);
        break;
    }
    gnutls_transport_set_ptr(s->session, s);
    gnutls_transport_set_push_function(s->session, tls_push);
    gnutls_transport_set_pull_function(s->session, tls_pull);
    return s;
}

void nbd_tls_session_free(NbdTlsSession *s)
{
    if (!s) {
        return;
    }
    gnutls_deinit(s->session);
    if (s->pre) {
        g_byte_array_unref(s->pre);
    }
    g_free(s);
}

/* Is the authz object's identity @who? */
static bool authz_allows(const char *who, GError **errp)
{
    JsonObject *o = user_object_find(tls.authz_id);
    const char *type = o ? opts_peek_str(o, "qom-type") : NULL;
    const char *identity;

    if (!o || !type || strcmp(type, "authz-simple")) {
        error_setg(errp, "Cannot find QAuthZ object '%s'", tls.authz_id);
        return false;
    }
    identity = opts_peek_str(o, "identity");
    return identity && !strcmp(identity, who);
}

/* The client's certificate chain, when verify-peer asks for it, then authz. */
static bool check_x509(NbdTlsSession *s, GError **errp)
{
    unsigned status = 0, n = 0;
    const gnutls_datum_t *certs;
    int ret;

    if (!tls.verify_peer) {
        return true;
    }
    ret = gnutls_certificate_verify_peers2(s->session, &status);
    if (ret < 0) {
        error_setg(errp, "Verify failed: %s", gnutls_strerror(ret));
        return false;
    }
    if (status) {
        const char *why = "The certificate is not trusted";

        if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
            why = "The certificate hasn't got a known issuer";
        } else if (status & GNUTLS_CERT_REVOKED) {
            why = "The certificate has been revoked";
        } else if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
            why = "The certificate uses an insecure algorithm";
        } else if (status & GNUTLS_CERT_EXPIRED) {
            why = "The certificate has expired";
        } else if (status & GNUTLS_CERT_NOT_ACTIVATED) {
            why = "The certificate is not yet activated";
        }
        error_setg(errp, "%s", why);
        return false;
    }
    certs = gnutls_certificate_get_peers(s->session, &n);
    if (!certs || !n) {
        error_setg(errp, "No certificate peers");
        return false;
    }
    if (tls.authz_id) {
        gnutls_x509_crt_t crt;
        char dn[1024];
        size_t dnlen = sizeof(dn);
        bool ok;

        gnutls_x509_crt_init(&crt);
        ret = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
        if (ret >= 0) {
            ret = gnutls_x509_crt_get_dn(crt, dn, &dnlen);
        }
        gnutls_x509_crt_deinit(crt);
        if (ret < 0) {
            error_setg(errp, "Cannot read the certificate's name: %s",
                       gnutls_strerror(ret));
            return false;
        }
        ok = authz_allows(dn, errp);
        if (!ok) {
            if (errp && !*errp) {
                error_setg(errp, "TLS x509 authz check for %s is denied", dn);
            }
            return false;
        }
    }
    return true;
}

int nbd_tls_session_handshake(NbdTlsSession *s, GError **errp)
{
    int ret = gnutls_handshake(s->session);

    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        return 0;
    }
    if (ret < 0) {
        error_setg(errp, "TLS handshake failed: %s", gnutls_strerror(ret));
        return -1;
    }
    switch (tls.kind) {
    case TLS_X509:
        return check_x509(s, errp) ? 1 : -1;
    case TLS_PSK:
        /* as QEMU 7.2: tls-authz checks x509 clients only */
        break;
    case TLS_ANON:
        break;
    }
    return 1;
}

bool nbd_tls_session_want_write(NbdTlsSession *s)
{
    return gnutls_record_get_direction(s->session) == 1;
}

/* QEMU's words for a failed read or write on the TLS channel. */
static void io_error(int ret, bool reading, GError **errp)
{
    const char *what = reading ? "Cannot read from TLS channel" :
                                 "Cannot write to TLS channel";

    if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        error_setg_errno(errp, ECONNABORTED, "%s", what);
    } else {
        error_setg(errp, "%s: %s", what, gnutls_strerror(ret));
    }
}

ssize_t nbd_tls_session_recv(NbdTlsSession *s, void *buf, size_t len, GError **errp)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = gnutls_record_recv(s->session, (char *)buf + done, len - done);

        if (n > 0) {
            done += n;
            continue;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            return done ? (ssize_t)done : -EAGAIN;
        }
        if (done) {
            /* the end or the error comes again on the next call */
            return done;
        }
        if (n == 0) {
            return 0;
        }
        io_error(n, true, errp);
        return -EIO;
    }
    return done;
}

size_t nbd_tls_session_pending(NbdTlsSession *s)
{
    return gnutls_record_check_pending(s->session);
}

ssize_t nbd_tls_session_send(NbdTlsSession *s, const void *buf, size_t len,
                             GError **errp)
{
    /*
     * After GNUTLS_E_AGAIN, GnuTLS holds the record it made of the bytes given
     * then: it must be called again with no data, and then says how many of
     * those it sent. The caller gives the same bytes again (or more of them).
     */
    ssize_t n = s->send_blocked ? gnutls_record_send(s->session, NULL, 0)
                                : gnutls_record_send(s->session, buf, len);

    s->send_blocked = n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED;
    if (n >= 0) {
        return n;
    }
    if (s->send_blocked) {
        return -EAGAIN;
    }
    io_error(n, false, errp);
    return -EIO;
}
