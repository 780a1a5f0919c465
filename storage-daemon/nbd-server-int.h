/*
 * The NBD server's insides shared by its files: a client connection's state
 * (nbd-server.c owns its life and its transmission phase, nbd-negotiate.c its
 * option haggling), byte order helpers, and the calls between the two.
 */
#ifndef NBD_SERVER_INT_H
#define NBD_SERVER_INT_H

#include "nbd.h"
#include "nbd-outq.h"
#include "nbd-tls.h"

typedef enum NbdClientState {
    NC_CLIENT_FLAGS,
    NC_OPTIONS,
    NC_TRANSMISSION,
} NbdClientState;

typedef struct NbdClient {
    int fd;
    guint in_watch, out_watch, retry_timer;
    GByteArray *in;
    guint in_pos;           /* bytes of in already consumed */
    NbdOutQueue outq;       /* replies not sent yet */
    GByteArray *out;        /* outq's tail: replies are built here */
    NbdClientState state;
    bool no_zeroes;
    bool structured;
    /* SET_META_CONTEXT's selection, indexed by context id, for meta_exp */
    bool *meta;
    unsigned n_meta;
    NbdExport *meta_exp;    /* compared only, never followed */
    bool closing;           /* close once the output is flushed */
    NbdExport *exp;
    int in_flight;          /* requests whose reply is not written yet */
    uint64_t in_flight_bytes;   /* of those, the bytes reads will reply */
    bool dead;              /* closed; freed when in_flight drops to 0 */
    bool kicked;            /* in server.kicks */
    /* STARTTLS: acked (the session starts once the ack is sent), then TLS */
    bool tls_starting, tls_handshaking;
    NbdTlsSession *tls;
    char *read_error;       /* why the last read failed (TLS), NULL: EOF */
} NbdClient;

static inline guint nbd_in_avail(NbdClient *c)
{
    return c->in->len - c->in_pos;
}

static inline size_t nbd_out_pending(NbdClient *c)
{
    return nbd_outq_pending(&c->outq);
}

/* ---- byte order helpers ---- */


static inline void put16(GByteArray *b, uint16_t v)
{
    v = GUINT16_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 2);
}

static inline void put32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 4);
}

static inline void put64(GByteArray *b, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 8);
}

static inline uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return GUINT16_FROM_BE(v);
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}

/*
 * Hang up on a client that broke the protocol, saying why on stderr in QEMU's
 * words (the handshake and transmission phases word it differently).
 */
void nbd_client_fail(NbdClient *c, const char *fmt, ...) G_GNUC_PRINTF_CHECK(2, 3);

/* ---- nbd-negotiate.c ---- */

/* One option of the handshake (its @len bytes of data at @data). */
void nbd_handle_option(NbdClient *c, uint32_t opt, const uint8_t *data, uint32_t len);
/* The meta contexts @exp offers (ids 0..n-1) and their names. */
unsigned nbd_meta_count(NbdExport *exp);
char *nbd_meta_name(NbdExport *exp, unsigned id);

#endif
