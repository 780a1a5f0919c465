/*
 * The NBD server's handshake after the client flags (fixed newstyle options):
 * EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY, LIST/SET_META_CONTEXT
 * and STARTTLS (the session itself is nbd-server.c's and nbd-tls.c's), with
 * QEMU 7.2's replies and error texts; and the meta contexts an export offers.
 */
#include "nbd-server-int.h"

/* ---- option replies ---- */

static void send_rep(NbdClient *c, uint32_t opt, uint32_t type, const void *data,
                     uint32_t len)
{
    put64(c->out, NBD_REP_MAGIC);
    put32(c->out, opt);
    put32(c->out, type);
    put32(c->out, len);
    if (len) {
        g_byte_array_append(c->out, data, len);
    }
}

static void send_rep_err(NbdClient *c, uint32_t opt, uint32_t type, const char *fmt,
                         ...) G_GNUC_PRINTF_CHECK(4, 5);
static void send_rep_err(NbdClient *c, uint32_t opt, uint32_t type, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    send_rep(c, opt, type, msg, strlen(msg));
}

static uint16_t export_flags(NbdClient *c, NbdExport *exp)
{
    /* every connection shares the node and its cache: multi-conn is safe */
    uint16_t flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                     NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN;

    if (!exp->multi_conn) {
        flags &= ~NBD_FLAG_CAN_MULTI_CONN;
    }
    if (exp->writable) {
        flags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                 NBD_FLAG_SEND_FAST_ZERO;
    } else {
        flags |= NBD_FLAG_READ_ONLY;
    }
    if (c->structured) {
        flags |= NBD_FLAG_SEND_DF;
    }
    return flags;
}

static void client_attach(NbdClient *c, NbdExport *exp)
{
    if (c->meta_exp != exp) {
        /* the contexts were selected for another export's name */
        g_clear_pointer(&c->meta, g_free);
        c->n_meta = 0;
    }
    c->exp = exp;
    exp->clients++;
    c->state = NC_TRANSMISSION;
}

static NbdExport *find_live_export(const char *name)
{
    NbdExport *exp = nbd_export_find(name);

    return exp && !exp->shutting_down ? exp : NULL;
}

/* NBD_OPT_EXPORT_NAME: no way to report errors but hanging up. */
static void opt_export_name(NbdClient *c, const uint8_t *data, uint32_t len)
{
    g_autofree char *name = g_strndup((const char *)data, len);
    NbdExport *exp = find_live_export(name);
    static const uint8_t zeroes[124];
    int64_t size;

    if (!exp || (size = bdrv_getlength(exp->bs)) < 0) {
        c->closing = true;
        return;
    }
    put64(c->out, size);
    put16(c->out, export_flags(c, exp));
    if (!c->no_zeroes) {
        g_byte_array_append(c->out, zeroes, sizeof(zeroes));
    }
    client_attach(c, exp);
}

/* NBD_OPT_INFO and NBD_OPT_GO */
static void opt_info(NbdClient *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
    uint32_t namelen;
    uint16_t nreq;
    bool want_name = false, want_desc = false;
    g_autofree char *name = NULL;
    g_autoptr(GByteArray) b = g_byte_array_new();
    NbdExport *exp;
    int64_t size;

    if (len < 6 || (namelen = get32(data)) > len - 6 ||
        (nreq = get16(data + 4 + namelen), 6 + namelen + 2 * (uint64_t)nreq != len)) {
        send_rep_err(c, opt, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    name = g_strndup((const char *)data + 4, namelen);
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t type = get16(data + 6 + namelen + 2 * i);
        want_name |= type == NBD_INFO_NAME;
        want_desc |= type == NBD_INFO_DESCRIPTION;
    }
    exp = find_live_export(name);
    if (!exp) {
        send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN, "export '%s' not present", name);
        return;
    }
    size = bdrv_getlength(exp->bs);
    if (size < 0) {
        send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN, "export '%s' has no size", name);
        return;
    }
    if (want_name) {
        put16(b, NBD_INFO_NAME);
        g_byte_array_append(b, (const guint8 *)exp->name, strlen(exp->name));
        send_rep(c, opt, NBD_REP_INFO, b->data, b->len);
        g_byte_array_set_size(b, 0);
    }
    if (want_desc && exp->description) {
        put16(b, NBD_INFO_DESCRIPTION);
        g_byte_array_append(b, (const guint8 *)exp->description,
                            strlen(exp->description));
        send_rep(c, opt, NBD_REP_INFO, b->data, b->len);
        g_byte_array_set_size(b, 0);
    }
    /* any alignment works (the block layer bounces); 4k is efficient */
    put16(b, NBD_INFO_BLOCK_SIZE);
    put32(b, 1);
    put32(b, 4096);
    put32(b, NBD_MAX_BUFFER_SIZE);
    send_rep(c, opt, NBD_REP_INFO, b->data, b->len);
    g_byte_array_set_size(b, 0);
    put16(b, NBD_INFO_EXPORT);
    put64(b, size);
    put16(b, export_flags(c, exp));
    send_rep(c, opt, NBD_REP_INFO, b->data, b->len);
    send_rep(c, opt, NBD_REP_ACK, NULL, 0);
    if (opt == NBD_OPT_GO) {
        client_attach(c, exp);
    }
}

/*
 * The contexts an export offers, by id: base:allocation, qemu:allocation-depth
 * (if offered), then one per bitmap in the export's order.
 */
unsigned nbd_meta_count(NbdExport *exp)
{
    return NBD_META_ID_DIRTY_BITMAP + exp->nb_bitmaps;
}

char *nbd_meta_name(NbdExport *exp, unsigned id)
{
    switch (id) {
    case NBD_META_ID_BASE_ALLOCATION:
        return g_strdup("base:allocation");
    case NBD_META_ID_ALLOCATION_DEPTH:
        return exp->alloc_depth ? g_strdup("qemu:allocation-depth") : NULL;
    default:
        return id < nbd_meta_count(exp) ?
            g_strdup_printf("qemu:dirty-bitmap:%s",
                            exp->bitmaps[id - NBD_META_ID_DIRTY_BITMAP].name) : NULL;
    }
}

typedef enum MetaMatch { MATCH_NONE, MATCH_PREFIX, MATCH_EXACT } MetaMatch;

/* Does query @q (LIST may use the "base:", "qemu:", "qemu:dirty-bitmap:" prefixes)
 * select context @name? */
static MetaMatch meta_matches(const char *q, uint32_t qlen, const char *name,
                              bool list)
{
    if (qlen == strlen(name) && !memcmp(q, name, qlen)) {
        return MATCH_EXACT;
    }
    if (!list) {
        return MATCH_NONE;
    }
    if ((qlen == 5 && !memcmp(q, "base:", 5)) || (qlen == 5 && !memcmp(q, "qemu:", 5))) {
        return !strncmp(name, q, 5) ? MATCH_PREFIX : MATCH_NONE;
    }
    return qlen == 18 && !memcmp(q, "qemu:dirty-bitmap:", 18) &&
           g_str_has_prefix(name, "qemu:dirty-bitmap:") ? MATCH_PREFIX : MATCH_NONE;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT */
static void opt_meta_context(NbdClient *c, uint32_t opt, const uint8_t *data,
                             uint32_t len)
{
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    uint32_t namelen, nq, pos;
    g_autofree char *name = NULL;
    g_autofree bool *match = NULL;
    unsigned n = 0;
    NbdExport *exp;

    if (!c->structured) {
        send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                     "request option '%s' when structured reply is not negotiated",
                     opt == NBD_OPT_SET_META_CONTEXT ? "NBD_OPT_SET_META_CONTEXT" :
                     "NBD_OPT_LIST_META_CONTEXT");
        return;
    }
    if (len < 8 || (namelen = get32(data)) > len - 8) {
        send_rep_err(c, opt, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    name = g_strndup((const char *)data + 4, namelen);
    nq = get32(data + 4 + namelen);
    pos = 8 + namelen;
    exp = find_live_export(name);
    if (exp) {
        n = nbd_meta_count(exp);
        match = g_new0(bool, n);
    }
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t qlen;
        const char *q;

        if (len - pos < 4 || (qlen = get32(data + pos)) > len - pos - 4) {
            send_rep_err(c, opt, NBD_REP_ERR_INVALID, "Invalid request length");
            return;
        }
        q = (const char *)data + pos + 4;
        for (unsigned id = 0; id < n; id++) {
            g_autofree char *m = nbd_meta_name(exp, id);
            MetaMatch mm = m ? meta_matches(q, qlen, m, list) : MATCH_NONE;

            if (mm != MATCH_NONE) {
                match[id] = true;
            }
            if (mm == MATCH_EXACT) {
                break;      /* a name exported twice is selected once, first id */
            }
        }
        pos += 4 + qlen;
    }
    if (pos != len) {
        send_rep_err(c, opt, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    if (!exp) {
        send_rep_err(c, opt, NBD_REP_ERR_UNKNOWN, "export '%s' not present", name);
        return;
    }
    for (unsigned id = 0; id < n; id++) {
        g_autofree char *m = nbd_meta_name(exp, id);
        g_autoptr(GByteArray) b = g_byte_array_new();

        if (list && nq == 0) {
            match[id] = m != NULL;
        }
        if (!m || !match[id]) {
            continue;
        }
        /* as QEMU: LIST names the contexts without an id */
        put32(b, list ? 0 : id);
        g_byte_array_append(b, (const guint8 *)m, strlen(m));
        send_rep(c, opt, NBD_REP_META_CONTEXT, b->data, b->len);
    }
    if (!list) {
        g_free(c->meta);
        c->meta = g_steal_pointer(&match);
        c->n_meta = n;
        c->meta_exp = exp;
    }
    send_rep(c, opt, NBD_REP_ACK, NULL, 0);
}

static void opt_list(NbdClient *c, uint32_t len)
{
    if (len) {
        send_rep_err(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "Invalid request length");
        return;
    }
    /* oldest first */
    for (GList *l = g_list_last(nbd_export_list()); l; l = l->prev) {
        NbdExport *exp = l->data;
        g_autoptr(GByteArray) b = g_byte_array_new();

        if (exp->shutting_down || exp->fuse) {
            continue;
        }
        put32(b, strlen(exp->name));
        g_byte_array_append(b, (const guint8 *)exp->name, strlen(exp->name));
        if (exp->description) {
            g_byte_array_append(b, (const guint8 *)exp->description,
                                strlen(exp->description));
        }
        send_rep(c, NBD_OPT_LIST, NBD_REP_SERVER, b->data, b->len);
    }
    send_rep(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

void nbd_handle_option(NbdClient *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
    if (nbd_tls_server_enabled() && !c->tls && opt != NBD_OPT_STARTTLS) {
        /* as QEMU: EXPORT_NAME cannot be refused, ABORT gets no ack */
        if (opt == NBD_OPT_EXPORT_NAME) {
            nbd_client_fail(c, "Option 0x%" PRIx32 " not permitted before TLS", opt);
            return;
        }
        send_rep_err(c, opt, NBD_REP_ERR_TLS_REQD,
                     "Option 0x%" PRIx32 " not permitted before TLS", opt);
        if (opt == NBD_OPT_ABORT) {
            c->closing = true;
        }
        return;
    }
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        opt_export_name(c, data, len);
        break;
    case NBD_OPT_ABORT:
        send_rep(c, opt, NBD_REP_ACK, NULL, 0);
        c->closing = true;
        break;
    case NBD_OPT_LIST:
        opt_list(c, len);
        break;
    case NBD_OPT_STARTTLS:
        if (!nbd_tls_server_enabled()) {
            send_rep_err(c, opt, NBD_REP_ERR_POLICY, "TLS not configured");
        } else if (len) {
            send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                         "option 'starttls' has unexpected length");
            nbd_client_fail(c, "option 'starttls' has unexpected length");
        } else if (c->tls) {
            send_rep_err(c, opt, NBD_REP_ERR_INVALID, "TLS already enabled");
        } else {
            send_rep(c, opt, NBD_REP_ACK, NULL, 0);
            c->tls_starting = true;     /* once the ack is out */
        }
        break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        opt_info(c, opt, data, len);
        break;
    case NBD_OPT_STRUCTURED_REPLY:
        if (len) {
            send_rep_err(c, opt, NBD_REP_ERR_INVALID, "Invalid request length");
        } else if (c->structured) {
            send_rep_err(c, opt, NBD_REP_ERR_INVALID,
                         "structured reply already negotiated");
        } else {
            c->structured = true;
            send_rep(c, opt, NBD_REP_ACK, NULL, 0);
        }
        break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        opt_meta_context(c, opt, data, len);
        break;
    default:
        send_rep_err(c, opt, NBD_REP_ERR_UNSUP, "Unsupported option %" PRIu32, opt);
        break;
    }
}
