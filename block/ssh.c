/*
 * The "ssh" protocol driver: an image file on an SSH server, read and written
 * over SFTP with libssh. It owns the ssh://[user@]host[:port]/path filename
 * syntax (with ?host_key_check=...), the options (server.host/port, path, user,
 * host-key-check.mode/type/hash, and the legacy flat host/port/host_key_check),
 * checking the server's host key (known_hosts, a md5/sha1/sha256 hash, or not
 * at all), authenticating through ssh-agent only, and creating image files
 * (qemu-img create, blockdev-create). Errors use QEMU's wording. One SSH
 * session per node; libssh sessions are not thread-safe, so a mutex serialises
 * the node's requests. Built as the block-ssh module (block/module.c).
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/aio.h"
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define SSH_DEFAULT_PORT    "22"
/* bytes per SFTP read or write request: OpenSSH takes up to 256 KiB packets */
#define SSH_MAX_REQUEST     (64 * KiB)

typedef enum SshHostKeyMode {
    SSH_HKC_KNOWN_HOSTS,
    SSH_HKC_NONE,
    SSH_HKC_HASH,
} SshHostKeyMode;

typedef enum SshHashType {
    SSH_HASH_MD5,
    SSH_HASH_SHA1,
    SSH_HASH_SHA256,
} SshHashType;

static const char *const ssh_hash_names[] = { "md5", "sha1", "sha256" };

/* Where the file is and how the server is trusted: the options, checked. */
typedef struct SshLocation {
    char *host;
    char *port;
    char *path;
    char *user;
    SshHostKeyMode mode;
    SshHashType hash_type;
    char *hash;
    char *legacy_hkc;       /* host_key_check as given (the URL's): in the name */
} SshLocation;

typedef struct BDRVSSHState {
    GMutex lock;            /* one request at a time on the session */
    SshLocation loc;
    ssh_session session;
    sftp_session sftp;
    sftp_file file;
    int64_t size;
    bool can_fsync;         /* the server has fsync@openssh.com */
} BDRVSSHState;

static const char *const ssh_runtime_opts[] = {
    "server", "path", "user", "host-key-check", "host", "port", "host_key_check", NULL,
};

/* what a json: name of a node lists */
static const char *const ssh_strong_opts[] = {
    "host", "port", "path", "user", "host_key_check", "server.", NULL,
};

static void ssh_location_clear(SshLocation *l)
{
    g_clear_pointer(&l->host, g_free);
    g_clear_pointer(&l->port, g_free);
    g_clear_pointer(&l->path, g_free);
    g_clear_pointer(&l->user, g_free);
    g_clear_pointer(&l->hash, g_free);
    g_clear_pointer(&l->legacy_hkc, g_free);
}

/* ---- filenames and options ---- */

/*
 * ssh://[user@]host[:port]/path[?host_key_check=...] -> the legacy flat options
 * (host, port, path, user, host_key_check). Other query parameters are ignored,
 * as QEMU ignores them; a URL that does not parse sets nothing, and open() then
 * finds the server missing, as QEMU does.
 */
static int ssh_parse_filename(const char *filename, JsonObject *opts, GError **errp)
{
    g_autoptr(GUri) uri = g_uri_parse(filename, G_URI_FLAGS_ENCODED_QUERY |
                                      G_URI_FLAGS_NON_DNS, NULL);
    const char *host, *path, *user, *query;
    int port;

    if (!uri) {
        return 0;
    }
    if (strcmp(g_uri_get_scheme(uri), "ssh")) {
        error_setg(errp, "URI scheme must be 'ssh'");
        return -EINVAL;
    }
    host = g_uri_get_host(uri);
    path = g_uri_get_path(uri);
    user = g_uri_get_user(uri);
    query = g_uri_get_query(uri);
    port = g_uri_get_port(uri);
    if (!host || !*host) {
        error_setg(errp, "missing hostname in URI");
        return -EINVAL;
    }
    if (!path || !*path) {
        error_setg(errp, "missing remote path in URI");
        return -EINVAL;
    }
    if (user && *user) {
        opts_set_str(opts, "user", user);
    }
    opts_set_str(opts, "host", host);
    if (port != -1) {
        g_autofree char *p = g_strdup_printf("%d", port);
        opts_set_str(opts, "port", p);
    }
    opts_set_str(opts, "path", path);
    if (query) {
        g_auto(GStrv) params = g_strsplit(query, "&", -1);

        for (int i = 0; params[i]; i++) {
            if (g_str_has_prefix(params[i], "host_key_check=")) {
                g_autofree char *v = g_uri_unescape_string(
                    params[i] + strlen("host_key_check="), NULL);
                opts_set_str(opts, "host_key_check", v ? v : "");
            }
        }
    }
    return 0;
}

/* The legacy host_key_check: no, yes, or md5:/sha1:/sha256:HASH. */
static int ssh_parse_legacy_hkc(const char *hkc, SshLocation *l, GError **errp)
{
    if (!strcmp(hkc, "no")) {
        l->mode = SSH_HKC_NONE;
        return 0;
    }
    if (!strcmp(hkc, "yes")) {
        l->mode = SSH_HKC_KNOWN_HOSTS;
        return 0;
    }
    for (int t = 0; t < (int)ARRAY_SIZE(ssh_hash_names); t++) {
        size_t n = strlen(ssh_hash_names[t]);

        if (!strncmp(hkc, ssh_hash_names[t], n) && hkc[n] == ':') {
            l->mode = SSH_HKC_HASH;
            l->hash_type = t;
            l->hash = g_strdup(hkc + n + 1);
            return 0;
        }
    }
    error_setg(errp, "unknown host_key_check setting (%s)", hkc);
    return -EINVAL;
}

/* host-key-check: {mode: none|hash|known_hosts, type: md5|sha1|sha256, hash} */
static int ssh_parse_hkc(JsonObject *hkc, SshLocation *l, GError **errp)
{
    static const char *const mode_names[] = {
        [SSH_HKC_KNOWN_HOSTS] = "known_hosts", [SSH_HKC_NONE] = "none",
        [SSH_HKC_HASH] = "hash",
    };
    g_autofree char *mode = opts_get_str(hkc, "mode");
    g_autofree char *type = NULL;
    int m, t;

    if (!mode) {
        error_setg(errp, "Parameter 'host-key-check.mode' is missing");
        return -EINVAL;
    }
    for (m = 0; m < (int)ARRAY_SIZE(mode_names) && strcmp(mode, mode_names[m]); m++) {
        /* find it */
    }
    if (m == (int)ARRAY_SIZE(mode_names)) {
        error_setg(errp, "Parameter 'mode' does not accept value '%s'", mode);
        return -EINVAL;
    }
    l->mode = m;
    if (m != SSH_HKC_HASH) {
        if (opts_has(hkc, "type") || opts_has(hkc, "hash")) {
            error_setg(errp, "Parameter 'host-key-check.%s' is unexpected",
                       opts_has(hkc, "type") ? "type" : "hash");
            return -EINVAL;
        }
        return 0;
    }
    type = opts_get_str(hkc, "type");
    if (!type) {
        error_setg(errp, "Parameter 'host-key-check.type' is missing");
        return -EINVAL;
    }
    for (t = 0; t < (int)ARRAY_SIZE(ssh_hash_names) && strcmp(type, ssh_hash_names[t]);
         t++) {
        /* find it */
    }
    if (t == (int)ARRAY_SIZE(ssh_hash_names)) {
        error_setg(errp, "Parameter 'type' does not accept value '%s'", type);
        return -EINVAL;
    }
    l->hash_type = t;
    l->hash = opts_get_str(hkc, "hash");
    if (!l->hash) {
        error_setg(errp, "Parameter 'host-key-check.hash' is missing");
        return -EINVAL;
    }
    return 0;
}

/*
 * The options (a node's, or blockdev-create's "location") into @l. The legacy
 * host/port replace the server object, host_key_check the host-key-check one.
 */
static int ssh_parse_location(JsonObject *opts, SshLocation *l, GError **errp)
{
    JsonObject *server = opts_get_object(opts, "server");
    JsonObject *hkc = opts_get_object(opts, "host-key-check");
    g_autofree char *legacy_hkc = opts_get_str(opts, "host_key_check");

    if (opts_has(opts, "host")) {
        GError *local = NULL;
        int64_t port = opts_get_int(opts, "port", 22, &local);

        if (local) {
            error_propagate(errp, local);
            return -EINVAL;
        }
        l->host = opts_get_str(opts, "host");
        l->port = g_strdup_printf("%" PRId64, port);
    } else if (!server) {
        error_setg(errp, "Parameter 'server' is missing");
        return -EINVAL;
    } else {
        l->host = opts_get_str(server, "host");
        if (!l->host) {
            error_setg(errp, "Parameter 'server.host' is missing");
            return -EINVAL;
        }
        l->port = opts_get_str(server, "port");
        if (!l->port) {
            error_setg(errp, "Parameter 'server.port' is missing");
            return -EINVAL;
        }
    }
    l->path = opts_get_str(opts, "path");
    if (!l->path) {
        error_setg(errp, "Parameter 'path' is missing");
        return -EINVAL;
    }
    l->user = opts_get_str(opts, "user");
    if (!l->user) {
        l->user = g_strdup(g_get_user_name());
    }
    l->mode = SSH_HKC_KNOWN_HOSTS;
    if (legacy_hkc) {
        l->legacy_hkc = g_strdup(legacy_hkc);
        return ssh_parse_legacy_hkc(legacy_hkc, l, errp);
    }
    if (hkc) {
        return ssh_parse_hkc(hkc, l, errp);
    }
    return 0;
}

/* ---- the session ---- */

/* "what: libssh's text (libssh error code: N)" */
static void ssh_session_error(GError **errp, ssh_session session, const char *what)
{
    const char *msg = session ? ssh_get_error(session) : NULL;

    if (msg && *msg) {
        error_setg(errp, "%s: %s (libssh error code: %d)", what, msg,
                   ssh_get_error_code(session));
    } else {
        error_setg(errp, "%s (libssh error code: %d)", what,
                   session ? ssh_get_error_code(session) : 0);
    }
}

/* "what: libssh's text (libssh error code: N, sftp error code: M)" */
static void ssh_sftp_error(GError **errp, BDRVSSHState *s, const char *what)
{
    const char *msg = ssh_get_error(s->session);
    int sftp_err = s->sftp ? sftp_get_error(s->sftp) : 0;

    if (msg && *msg) {
        error_setg(errp, "%s: %s (libssh error code: %d, sftp error code: %d)", what,
                   msg, ssh_get_error_code(s->session), sftp_err);
    } else {
        error_setg(errp, "%s (libssh error code: %d, sftp error code: %d)", what,
                   ssh_get_error_code(s->session), sftp_err);
    }
}

/* The server's key against known_hosts (the user's, and the system's). */
static int ssh_check_known_hosts(BDRVSSHState *s, GError **errp)
{
    enum ssh_known_hosts_e state = ssh_session_is_known_server(s->session);
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t len = 0;
    char *fp;

    switch (state) {
    case SSH_KNOWN_HOSTS_OK:
        return 0;
    case SSH_KNOWN_HOSTS_CHANGED:
        if (ssh_get_server_publickey(s->session, &key) == SSH_OK &&
            ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) == 0) {
            fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
            error_setg(errp, "host key (%s key with fingerprint %s) does not match "
                       "the one in known_hosts; this may be a possible attack",
                       ssh_key_type_to_char(ssh_key_type(key)), fp);
            ssh_string_free_char(fp);
            ssh_clean_pubkey_hash(&hash);
        } else {
            error_setg(errp, "host key does not match the one in known_hosts; this "
                       "may be a possible attack");
        }
        ssh_key_free(key);
        return -EINVAL;
    case SSH_KNOWN_HOSTS_OTHER:
        error_setg(errp, "host key for this server not found, another type exists");
        return -EINVAL;
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
        error_setg(errp, "no host key was found in known_hosts");
        return -EINVAL;
    default:
        ssh_session_error(errp, s->session, "known_hosts check failed");
        return -EINVAL;
    }
}

/* The server's key against host-key-check.hash (hex, any case). */
static int ssh_check_hash(BDRVSSHState *s, GError **errp)
{
    static const enum ssh_publickey_hash_type types[] = {
        [SSH_HASH_MD5] = SSH_PUBLICKEY_HASH_MD5,
        [SSH_HASH_SHA1] = SSH_PUBLICKEY_HASH_SHA1,
        [SSH_HASH_SHA256] = SSH_PUBLICKEY_HASH_SHA256,
    };
    const SshLocation *l = &s->loc;
    const char *name = ssh_hash_names[l->hash_type];
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t len = 0;
    g_autoptr(GString) hex = g_string_new(NULL);
    int ret = 0;

    if (ssh_get_server_publickey(s->session, &key) != SSH_OK) {
        ssh_session_error(errp, s->session, "failed to read remote host key");
        return -EINVAL;
    }
    if (ssh_get_publickey_hash(key, types[l->hash_type], &hash, &len) < 0) {
        ssh_session_error(errp, s->session, "failed reading the hash of the remote "
                          "host key");
        ssh_key_free(key);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        g_string_append_printf(hex, "%02x", hash[i]);
    }
    if (g_ascii_strcasecmp(hex->str, l->hash)) {
        error_setg(errp, "remote host %s key fingerprint '%s:%s' does not match "
                   "host_key_check '%s:%s'", ssh_key_type_to_char(ssh_key_type(key)),
                   name, hex->str, name, l->hash);
        ret = -EPERM;
    }
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return ret;
}

/* No authentication, or the identities ssh-agent holds (as QEMU: nothing else). */
static int ssh_authenticate(BDRVSSHState *s, GError **errp)
{
    int rc = ssh_userauth_none(s->session, NULL);
    int methods;

    if (rc == SSH_AUTH_SUCCESS) {
        return 0;
    }
    if (rc == SSH_AUTH_ERROR) {
        ssh_session_error(errp, s->session, "failed to authenticate");
        return -EPERM;
    }
    methods = ssh_userauth_list(s->session, NULL);
    if (methods & SSH_AUTH_METHOD_PUBLICKEY &&
        ssh_userauth_agent(s->session, NULL) == SSH_AUTH_SUCCESS) {
        return 0;
    }
    error_setg(errp, "failed to authenticate using publickey authentication and "
               "the identities held by your ssh-agent");
    return -EPERM;
}

/* A TCP connection to host:port, with QEMU's words when there is none. */
static int ssh_inet_connect(const char *host, const char *port, GError **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res);
    int fd = -1, err = 0;

    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host, port,
                   gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to connect to '%s:%s'", host, port);
    }
    return fd;
}

/* Connect, check the host key, authenticate, start SFTP, open the file. */
static int ssh_connect_file(BDRVSSHState *s, int oflags, mode_t mode, GError **errp)
{
    SshLocation *l = &s->loc;
    unsigned int port;
    uint64_t port64;
    sftp_attributes attrs;
    int fd, ret;

    if (!g_ascii_isdigit(l->port[0]) || qemu_strtou64(l->port, 10, &port64) < 0 ||
        port64 > UINT_MAX) {
        error_setg(errp, "Use only numeric port value");
        return -EINVAL;
    }
    port = port64;
    fd = ssh_inet_connect(l->host, l->port, errp);
    if (fd < 0) {
        return -EHOSTUNREACH;
    }
    s->session = ssh_new();
    if (!s->session) {
        close(fd);
        error_setg(errp, "failed to initialize libssh session");
        return -ENOMEM;
    }
    /* the session owns the socket from here on, and closes it */
    if (ssh_options_set(s->session, SSH_OPTIONS_FD, &fd) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_HOST, l->host) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(s->session, SSH_OPTIONS_USER, l->user) < 0) {
        ssh_session_error(errp, s->session, "failed to set the session options");
        return -EINVAL;
    }
    if (ssh_connect(s->session) != SSH_OK) {
        ssh_session_error(errp, s->session, "failed to establish SSH session");
        return -EINVAL;
    }
    if (l->mode == SSH_HKC_KNOWN_HOSTS) {
        ret = ssh_check_known_hosts(s, errp);
    } else if (l->mode == SSH_HKC_HASH) {
        ret = ssh_check_hash(s, errp);
    } else {
        ret = 0;
    }
    if (ret < 0) {
        return ret;
    }
    ret = ssh_authenticate(s, errp);
    if (ret < 0) {
        return ret;
    }
    s->sftp = sftp_new(s->session);
    if (!s->sftp) {
        ssh_session_error(errp, s->session, "failed to create sftp handle");
        return -EINVAL;
    }
    if (sftp_init(s->sftp) < 0) {
        ssh_sftp_error(errp, s, "failed to initialize sftp handle");
        return -EINVAL;
    }
    s->can_fsync = sftp_extension_supported(s->sftp, "fsync@openssh.com", "1");
    s->file = sftp_open(s->sftp, l->path, oflags, mode);
    if (!s->file) {
        g_autofree char *what = g_strdup_printf("failed to open remote file '%s'",
                                                l->path);
        ssh_sftp_error(errp, s, what);
        return -EINVAL;
    }
    attrs = sftp_fstat(s->file);
    if (!attrs) {
        ssh_sftp_error(errp, s, "failed to read file attributes");
        return -EINVAL;
    }
    s->size = attrs->size;
    sftp_attributes_free(attrs);
    return 0;
}

static void ssh_state_close(BDRVSSHState *s)
{
    if (s->file) {
        sftp_close(s->file);
        s->file = NULL;
    }
    if (s->sftp) {
        sftp_free(s->sftp);
        s->sftp = NULL;
    }
    if (s->session) {
        if (ssh_is_connected(s->session)) {
            ssh_disconnect(s->session);
        }
        ssh_free(s->session);
        s->session = NULL;
    }
    ssh_location_clear(&s->loc);
}

/* ---- I/O ---- */

static int ssh_write_at(BDRVSSHState *s, int64_t offset, int64_t bytes, const void *buf)
{
    const uint8_t *p = buf;

    if (sftp_seek64(s->file, offset) < 0) {
        return -EIO;
    }
    while (bytes > 0) {
        ssize_t n = sftp_write(s->file, p, MIN(bytes, SSH_MAX_REQUEST));

        if (n <= 0) {
            return -EIO;
        }
        p += n;
        bytes -= n;
        offset += n;
    }
    s->size = MAX(s->size, offset);
    return 0;
}

static int ssh_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf,
                     int flags)
{
    BDRVSSHState *s = bs->opaque;
    g_autoptr(GMutexLocker) locker = NULL;
    uint8_t *p = buf;

    if (bdrv_aio_nowait()) {
        return -EAGAIN;     /* the network always waits: a worker thread reads it */
    }
    locker = g_mutex_locker_new(&s->lock);

    if (sftp_seek64(s->file, offset) < 0) {
        return -EIO;
    }
    while (bytes > 0) {
        ssize_t n = sftp_read(s->file, p, MIN(bytes, SSH_MAX_REQUEST));

        if (n < 0) {
            return -EIO;
        }
        if (n == 0) {
            /* beyond the end of the file: zeros */
            memset(p, 0, bytes);
            break;
        }
        p += n;
        bytes -= n;
    }
    return 0;
}

static int ssh_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      const void *buf, int flags)
{
    BDRVSSHState *s = bs->opaque;
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&s->lock);

    return ssh_write_at(s, offset, bytes, buf);
}

/* fsync@openssh.com where the server has it; without it there is nothing to do */
static int ssh_flush(BlockDriverState *bs)
{
    BDRVSSHState *s = bs->opaque;
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&s->lock);

    if (!s->can_fsync) {
        return 0;
    }
    return sftp_fsync(s->file) < 0 ? -EIO : 0;
}

static int64_t ssh_getlength(BlockDriverState *bs)
{
    BDRVSSHState *s = bs->opaque;

    /* whole sectors, as QEMU counts them: a partial last one reads as zeros */
    return QEMU_ALIGN_UP(s->size, BDRV_SECTOR_SIZE);
}

static int64_t ssh_get_allocated_file_size(BlockDriverState *bs)
{
    return -ENOTSUP;
}

/* A file grows by a zero byte written at its new end; it never shrinks. */
static int ssh_grow(BDRVSSHState *s, int64_t offset, GError **errp)
{
    static const uint8_t zero;

    if (offset > s->size && ssh_write_at(s, offset - 1, 1, &zero) < 0) {
        ssh_sftp_error(errp, s, "Failed to grow file");
        return -EIO;
    }
    return 0;
}

static int ssh_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                        PreallocMode prealloc, int flags, GError **errp)
{
    BDRVSSHState *s = bs->opaque;
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&s->lock);

    if (prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Unsupported preallocation mode '%s'",
                   PreallocMode_str[prealloc]);
        return -ENOTSUP;
    }
    if (offset < s->size) {
        error_setg(errp, "ssh driver does not support shrinking files");
        return -ENOTSUP;
    }
    return ssh_grow(s, offset, errp);
}

/* ---- open, close, names ---- */

/* QAPI's check, after the missing options: "filename" is not ours either */
static int ssh_check_unknown_opts(JsonObject *opts, GError **errp)
{
    GList *members = json_object_get_members(opts);
    int ret = 0;

    for (GList *m = members; m; m = m->next) {
        const char *key = m->data;

        if (!bdrv_is_generic_opt(key) && !g_strv_contains(ssh_runtime_opts, key)) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            ret = -EINVAL;
            break;
        }
    }
    g_list_free(members);
    return ret;
}

static int ssh_open(BlockDriverState *bs, JsonObject *opts, int flags, GError **errp)
{
    BDRVSSHState *s = bs->opaque;
    int ret;

    g_mutex_init(&s->lock);
    /* QEMU's ssh node works in whole sectors: short writes are read-modify-write
     * and a file ends on a sector boundary once written there */
    bs->request_alignment = BDRV_SECTOR_SIZE;
    ret = ssh_parse_location(opts, &s->loc, errp);
    if (ret == 0) {
        ret = ssh_check_unknown_opts(opts, errp);
    }
    if (ret == 0) {
        ret = ssh_connect_file(s, flags & BDRV_O_RDWR ? O_RDWR : O_RDONLY, 0, errp);
    }
    if (ret < 0) {
        /* the block layer does not close a node whose open failed */
        ssh_state_close(s);
        g_mutex_clear(&s->lock);
    }
    return ret;
}

static void ssh_close(BlockDriverState *bs)
{
    BDRVSSHState *s = bs->opaque;

    ssh_state_close(s);
    g_mutex_clear(&s->lock);
}

/* "ssh://user@host:port/path", with the ?host_key_check=... it was given */
static char *ssh_refresh_filename(BlockDriverState *bs, JsonObject *full,
                                  bool has_strong)
{
    BDRVSSHState *s = bs->opaque;
    const SshLocation *l = &s->loc;

    return g_strdup_printf("ssh://%s@%s:%s%s%s%s", l->user, l->host, l->port, l->path,
                           l->legacy_hkc ? "?host_key_check=" : "",
                           l->legacy_hkc ? l->legacy_hkc : "");
}

/* ---- creation ---- */

/* Make (or empty) the file at @location and give it @size bytes. */
static int ssh_create_file(JsonObject *location, int64_t size, GError **errp)
{
    BDRVSSHState s = { 0 };
    int ret;

    ret = ssh_parse_location(location, &s.loc, errp);
    if (ret == 0) {
        ret = ssh_connect_file(&s, O_RDWR | O_CREAT | O_TRUNC, 0644, errp);
    }
    if (ret == 0) {
        s.size = 0;
        ret = ssh_grow(&s, size, errp);
    }
    ssh_state_close(&s);
    return ret;
}

/* blockdev-create: {location: {server, path, user, host-key-check}, size} */
static int ssh_create(JsonObject *opts, GError **errp)
{
    JsonObject *location = opts_get_object(opts, "location");
    GError *local = NULL;
    int64_t size = opts_get_int(opts, "size", 0, &local);

    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (!location) {
        error_setg(errp, "Parameter 'location' is missing");
        return -EINVAL;
    }
    return ssh_create_file(location, size, errp);
}

/* qemu-img create: the filename's options and -o size */
static int ssh_create_opts(const char *filename, JsonObject *opts, GError **errp)
{
    g_autoptr(JsonObject) location = json_object_new();
    GError *local = NULL;
    uint64_t size = opts_get_size(opts, "size", 0, &local);
    int ret;

    if (local) {
        error_propagate(errp, local);
        return -EINVAL;
    }
    if (size > INT64_MAX) {
        error_setg(errp, "Image size too large");
        return -EINVAL;
    }
    ret = ssh_parse_filename(filename, location, errp);
    if (ret < 0) {
        return ret;
    }
    return ssh_create_file(location, size, errp);
}

static const CreateOptDesc ssh_create_opt_descs[] = {
    { "size", OPT_SIZE, "Virtual disk size", NULL },
    { NULL },
};

BlockDriver bdrv_ssh = {
    .format_name = "ssh",
    .protocol_name = "ssh",
    .instance_size = sizeof(BDRVSSHState),
    .is_protocol = true,
    .high_latency = true,
    .runtime_opts = ssh_runtime_opts,
    .checks_own_opts = true,
    .strong_opts = ssh_strong_opts,
    .parse_filename = ssh_parse_filename,
    .refresh_filename = ssh_refresh_filename,
    .open = ssh_open,
    .close = ssh_close,
    .pread = ssh_pread,
    .pwrite = ssh_pwrite,
    .flush_to_disk = ssh_flush,
    .getlength = ssh_getlength,
    .get_allocated_file_size = ssh_get_allocated_file_size,
    .truncate = ssh_truncate,
    .create = ssh_create,
    .create_opts = ssh_create_opts,
    .create_opt_descs = ssh_create_opt_descs,
};
