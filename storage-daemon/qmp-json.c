/*
 * The QMP input stream: a lexer that turns client bytes into JSON tokens, a
 * streamer that groups tokens into top-level values by bracket depth, and a
 * recursive-descent parser that builds JsonNodes. Error texts are QEMU's.
 *
 * Lexer errors (a byte that cannot continue a token) name the bad token including
 * the offending byte ("stray '01'"), drop the value being collected, and lexing
 * restarts after that byte.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qmp-json.h"

#define MAX_NESTING     1024
#define MAX_VALUE_SIZE  (64 * MiB)
#define MAX_TOKENS      (2 * 1024 * 1024)

typedef enum {
    TOK_LCURLY, TOK_RCURLY, TOK_LSQUARE, TOK_RSQUARE, TOK_COLON, TOK_COMMA,
    TOK_STRING, TOK_INTEGER, TOK_FLOAT, TOK_KEYWORD,
} TokenType;

typedef struct Token {
    TokenType type;
    char *text;         /* strings: raw contents between the quotes */
    size_t len;
    char quote;
} Token;

typedef enum {
    LX_START, LX_STRING, LX_ESCAPE, LX_KEYWORD,
    LX_NUM_SIGN, LX_NUM_ZERO, LX_NUM_INT, LX_NUM_DOT, LX_NUM_FRAC,
    LX_NUM_EXP, LX_NUM_EXP_SIGN, LX_NUM_EXP_DIGITS,
    LX_RECOVERY,    /* after an error: skip to whitespace or a structural char */
} LexState;

struct JsonStream {
    JsonStreamFunc func;
    void *opaque;
    LexState state;
    char quote;
    GString *tok;           /* text of the token being lexed */
    GPtrArray *tokens;      /* of Token*, the value being collected */
    int depth;
    size_t size;
};

static void token_free(gpointer p)
{
    Token *t = p;

    g_free(t->text);
    g_free(t);
}

JsonStream *json_stream_new(JsonStreamFunc func, void *opaque)
{
    JsonStream *js = g_new0(JsonStream, 1);

    js->func = func;
    js->opaque = opaque;
    js->tok = g_string_new(NULL);
    js->tokens = g_ptr_array_new_with_free_func(token_free);
    return js;
}

void json_stream_free(JsonStream *js)
{
    if (js) {
        g_string_free(js->tok, TRUE);
        g_ptr_array_free(js->tokens, TRUE);
        g_free(js);
    }
}

/* ---- parser over a token array ---- */

typedef struct Parser {
    Token **toks;
    guint n, pos;
    GError *err;
} Parser;

static void parse_error(Parser *p, const char *fmt, ...) G_GNUC_PRINTF_CHECK(2, 3);
static void parse_error(Parser *p, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (p->err) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->err = g_error_new(QEMU_ERROR, EINVAL, "JSON parse error, %s", msg);
}

static Token *peek(Parser *p)
{
    return p->pos < p->n ? p->toks[p->pos] : NULL;
}

static int hex4(const char *s)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        } else {
            return -1;
        }
    }
    return v;
}

/* Decode a string token's escapes; NULL on error. */
static char *decode_string(Parser *p, const Token *t)
{
    GString *s;
    const char *c = t->text, *end = t->text + t->len;

    if (!g_utf8_validate(t->text, t->len, NULL)) {
        parse_error(p, "invalid UTF-8 sequence in string");
        return NULL;
    }
    s = g_string_sized_new(t->len);
    while (c < end) {
        if (*c != '\\') {
            g_string_append_c(s, *c++);
            continue;
        }
        c++;
        switch (c < end ? *c : 0) {
        case '"': g_string_append_c(s, '"'); break;
        case '\'': g_string_append_c(s, '\''); break;
        case '\\': g_string_append_c(s, '\\'); break;
        case '/': g_string_append_c(s, '/'); break;
        case 'b': g_string_append_c(s, '\b'); break;
        case 'f': g_string_append_c(s, '\f'); break;
        case 'n': g_string_append_c(s, '\n'); break;
        case 'r': g_string_append_c(s, '\r'); break;
        case 't': g_string_append_c(s, '\t'); break;
        case 'u': {
            int cp = end - c >= 5 ? hex4(c + 1) : -1;
            if (cp < 0) {
                goto bad_escape;
            }
            c += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && end - c >= 7 && c[1] == '\\' &&
                c[2] == 'u') {
                int lo = hex4(c + 3);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    c += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff) {
                parse_error(p, "\\u%.4s is not a valid Unicode character", c - 3);
                g_string_free(s, TRUE);
                return NULL;
            }
            if (cp == 0) {
                g_string_append(s, "\xc0\x80");   /* NUL inside a C string */
            } else {
                g_string_append_unichar(s, cp);
            }
            break;
        }
        default:
            goto bad_escape;
        }
        c++;
    }
    return g_string_free(s, FALSE);

bad_escape:
    parse_error(p, "invalid escape sequence in string");
    g_string_free(s, TRUE);
    return NULL;
}

static JsonNode *parse_value(Parser *p);

static JsonNode *parse_object(Parser *p)
{
    JsonObject *obj = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    Token *t;

    json_node_take_object(node, obj);
    p->pos++;                                   /* '{' */
    t = peek(p);
    if (t && t->type == TOK_RCURLY) {
        p->pos++;
        return node;
    }
    for (;;) {
        JsonNode *key = parse_value(p), *val;
        const char *k;

        if (!key) {
            goto fail;
        }
        if (!JSON_NODE_HOLDS_VALUE(key) || json_node_get_value_type(key) != G_TYPE_STRING) {
            json_node_unref(key);
            parse_error(p, "key is not a string in object");
            goto fail;
        }
        t = peek(p);
        if (!t || t->type != TOK_COLON) {
            json_node_unref(key);
            parse_error(p, "missing : in object pair");
            goto fail;
        }
        p->pos++;
        val = parse_value(p);
        if (!val) {
            json_node_unref(key);
            goto fail;
        }
        k = json_node_get_string(key);
        if (json_object_has_member(obj, k)) {
            json_node_unref(key);
            json_node_unref(val);
            parse_error(p, "duplicate key");
            goto fail;
        }
        json_object_set_member(obj, k, val);
        json_node_unref(key);
        t = peek(p);
        if (t && t->type == TOK_RCURLY) {
            p->pos++;
            return node;
        }
        if (!t || t->type != TOK_COMMA) {
            parse_error(p, "expected separator in dict");
            goto fail;
        }
        p->pos++;
    }
fail:
    json_node_unref(node);
    return NULL;
}

static JsonNode *parse_array(Parser *p)
{
    JsonArray *arr = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);
    Token *t;

    json_node_take_array(node, arr);
    p->pos++;                                   /* '[' */
    t = peek(p);
    if (t && t->type == TOK_RSQUARE) {
        p->pos++;
        return node;
    }
    for (;;) {
        JsonNode *val = parse_value(p);

        if (!val) {
            goto fail;
        }
        json_array_add_element(arr, val);
        t = peek(p);
        if (t && t->type == TOK_RSQUARE) {
            p->pos++;
            return node;
        }
        if (!t || t->type != TOK_COMMA) {
            parse_error(p, "expected separator in list");
            goto fail;
        }
        p->pos++;
    }
fail:
    json_node_unref(node);
    return NULL;
}

static JsonNode *parse_number(Parser *p, Token *t)
{
    JsonNode *node = json_node_new(JSON_NODE_VALUE);
    gint64 i;
    char *end;

    if (t->type == TOK_INTEGER) {
        errno = 0;
        i = g_ascii_strtoll(t->text, &end, 10);
        if (errno == 0 && *end == '\0') {
            json_node_set_int(node, i);
            return node;
        }
    }
    json_node_set_double(node, g_ascii_strtod(t->text, NULL));
    return node;
}

static JsonNode *parse_value(Parser *p)
{
    Token *t = peek(p);
    JsonNode *node;
    char *s;

    if (!t) {
        parse_error(p, "expecting value");
        return NULL;
    }
    switch (t->type) {
    case TOK_LCURLY:
        return parse_object(p);
    case TOK_LSQUARE:
        return parse_array(p);
    case TOK_STRING:
        s = decode_string(p, t);
        if (!s) {
            return NULL;
        }
        p->pos++;
        node = json_node_new(JSON_NODE_VALUE);
        json_node_set_string(node, s);
        g_free(s);
        return node;
    case TOK_INTEGER:
    case TOK_FLOAT:
        p->pos++;
        return parse_number(p, t);
    case TOK_KEYWORD:
        p->pos++;
        if (!strcmp(t->text, "null")) {
            return json_node_new(JSON_NODE_NULL);
        }
        if (!strcmp(t->text, "true") || !strcmp(t->text, "false")) {
            node = json_node_new(JSON_NODE_VALUE);
            json_node_set_boolean(node, t->text[0] == 't');
            return node;
        }
        parse_error(p, "invalid keyword '%s'", t->text);
        return NULL;
    default:
        parse_error(p, "expecting value");
        return NULL;
    }
}

static JsonNode *parse_tokens(GPtrArray *tokens, GError **errp)
{
    Parser p = { .toks = (Token **)tokens->pdata, .n = tokens->len };
    JsonNode *node = parse_value(&p);

    if (node && p.pos < p.n) {
        json_node_unref(node);
        node = NULL;
        parse_error(&p, "expecting value");
    }
    if (!node) {
        g_propagate_error(errp, p.err);
    }
    return node;
}

/* ---- lexer and streamer ---- */

static void stream_reset(JsonStream *js)
{
    g_ptr_array_set_size(js->tokens, 0);
    js->depth = 0;
    js->size = 0;
    js->state = LX_START;
    g_string_truncate(js->tok, 0);
}

static void stream_error(JsonStream *js, const char *fmt, ...) G_GNUC_PRINTF_CHECK(2, 3);
static void stream_error(JsonStream *js, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    GError *err;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    err = g_error_new(QEMU_ERROR, EINVAL, "JSON parse error, %s", msg);
    stream_reset(js);
    js->func(js->opaque, NULL, err);
    g_error_free(err);
}

/* The token in js->tok plus the offending byte could not be lexed. */
static void lex_error(JsonStream *js, char c)
{
    g_autofree char *text = NULL;

    g_string_append_c(js->tok, c);
    text = g_strdup(js->tok->str);
    stream_error(js, "stray '%s'", text);
    js->state = LX_RECOVERY;
}

static void emit_token(JsonStream *js, TokenType type)
{
    Token *t = g_new0(Token, 1);

    t->type = type;
    t->len = js->tok->len;
    t->text = g_strndup(js->tok->str, js->tok->len);
    t->quote = js->quote;
    g_string_truncate(js->tok, 0);
    js->state = LX_START;
    g_ptr_array_add(js->tokens, t);
    js->size += t->len + 1;

    if (type == TOK_LCURLY || type == TOK_LSQUARE) {
        js->depth++;
    } else if (type == TOK_RCURLY || type == TOK_RSQUARE) {
        js->depth--;
    }
    if (js->depth > MAX_NESTING) {
        stream_error(js, "nesting too deep");
        return;
    }
    if (js->size > MAX_VALUE_SIZE || js->tokens->len > MAX_TOKENS) {
        stream_error(js, "value too large");
        return;
    }
    if (js->depth <= 0) {
        GError *err = NULL;
        JsonNode *node = parse_tokens(js->tokens, &err);

        stream_reset(js);
        js->func(js->opaque, node, err);
        if (err) {
            g_error_free(err);
        }
    }
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Can this byte never appear in UTF-8 text? */
static bool bad_utf8_byte(unsigned char c)
{
    return c == 0xc0 || c == 0xc1 || c >= 0xf5;
}

static void lex_start(JsonStream *js, char c)
{
    static const char single[] = "{}[]:,";
    static const TokenType single_type[] = {
        TOK_LCURLY, TOK_RCURLY, TOK_LSQUARE, TOK_RSQUARE, TOK_COLON, TOK_COMMA,
    };
    const char *p;

    if (is_ws(c)) {
        return;
    }
    if (c && (p = strchr(single, c))) {
        emit_token(js, single_type[p - single]);
    } else if (c == '"' || c == '\'') {
        js->quote = c;
        js->state = LX_STRING;
    } else if (c == '-') {
        g_string_append_c(js->tok, c);
        js->state = LX_NUM_SIGN;
    } else if (c == '0') {
        g_string_append_c(js->tok, c);
        js->state = LX_NUM_ZERO;
    } else if (c >= '1' && c <= '9') {
        g_string_append_c(js->tok, c);
        js->state = LX_NUM_INT;
    } else if (c >= 'a' && c <= 'z') {
        g_string_append_c(js->tok, c);
        js->state = LX_KEYWORD;
    } else {
        lex_error(js, c);
    }
}

/* Feed one byte; returns true if the byte was consumed (else re-feed it). */
static bool lex_char(JsonStream *js, char c)
{
    bool digit = c >= '0' && c <= '9';

    switch (js->state) {
    case LX_START:
        lex_start(js, c);
        return true;
    case LX_RECOVERY:
        if (is_ws(c)) {
            js->state = LX_START;
            return true;
        }
        if (c && strchr("{}[],:", c)) {
            js->state = LX_START;
            return false;
        }
        return true;
    case LX_STRING:
        if (c == js->quote) {
            emit_token(js, TOK_STRING);
        } else if ((unsigned char)c < 0x20 || bad_utf8_byte(c)) {
            g_string_prepend_c(js->tok, js->quote);
            lex_error(js, c);
        } else {
            g_string_append_c(js->tok, c);
            if (c == '\\') {
                js->state = LX_ESCAPE;
            }
        }
        return true;
    case LX_ESCAPE:
        if ((unsigned char)c < 0x20) {
            g_string_prepend_c(js->tok, js->quote);
            lex_error(js, c);
            return true;
        }
        g_string_append_c(js->tok, c);
        js->state = LX_STRING;
        return true;
    case LX_KEYWORD:
        if (c >= 'a' && c <= 'z') {
            g_string_append_c(js->tok, c);
            return true;
        }
        emit_token(js, TOK_KEYWORD);
        return false;
    case LX_NUM_SIGN:
        if (c == '0') {
            js->state = LX_NUM_ZERO;
        } else if (digit) {
            js->state = LX_NUM_INT;
        } else {
            lex_error(js, c);
            return true;
        }
        g_string_append_c(js->tok, c);
        return true;
    case LX_NUM_ZERO:
    case LX_NUM_INT:
        if (digit && js->state == LX_NUM_INT) {
            g_string_append_c(js->tok, c);
        } else if (digit) {
            lex_error(js, c);
        } else if (c == '.') {
            g_string_append_c(js->tok, c);
            js->state = LX_NUM_DOT;
        } else if (c == 'e' || c == 'E') {
            g_string_append_c(js->tok, c);
            js->state = LX_NUM_EXP;
        } else {
            emit_token(js, TOK_INTEGER);
            return false;
        }
        return true;
    case LX_NUM_DOT:
        if (!digit) {
            lex_error(js, c);
            return true;
        }
        g_string_append_c(js->tok, c);
        js->state = LX_NUM_FRAC;
        return true;
    case LX_NUM_FRAC:
        if (digit) {
            g_string_append_c(js->tok, c);
        } else if (c == 'e' || c == 'E') {
            g_string_append_c(js->tok, c);
            js->state = LX_NUM_EXP;
        } else {
            emit_token(js, TOK_FLOAT);
            return false;
        }
        return true;
    case LX_NUM_EXP:
        if (c == '+' || c == '-') {
            g_string_append_c(js->tok, c);
            js->state = LX_NUM_EXP_SIGN;
            return true;
        }
        /* fall through */
    case LX_NUM_EXP_SIGN:
        if (!digit) {
            lex_error(js, c);
            return true;
        }
        g_string_append_c(js->tok, c);
        js->state = LX_NUM_EXP_DIGITS;
        return true;
    case LX_NUM_EXP_DIGITS:
        if (digit) {
            g_string_append_c(js->tok, c);
            return true;
        }
        emit_token(js, TOK_FLOAT);
        return false;
    }
    return true;
}

void json_stream_feed(JsonStream *js, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        /* a string token may be long: copy runs of plain bytes at once */
        if (js->state == LX_STRING) {
            size_t j = i;
            while (j < len && buf[j] != js->quote && buf[j] != '\\' &&
                   (unsigned char)buf[j] >= 0x20 && !bad_utf8_byte(buf[j])) {
                j++;
            }
            if (j > i) {
                g_string_append_len(js->tok, buf + i, j - i);
                if (js->tok->len > MAX_VALUE_SIZE) {
                    stream_error(js, "value too large");
                }
                i = j - 1;
                continue;
            }
        }
        while (!lex_char(js, buf[i])) {
            /* the byte ended a token; feed it again in LX_START */
        }
    }
}

typedef struct ParseResult {
    JsonNode *node;
    GError *err;
    int count;
} ParseResult;

static void collect_one(void *opaque, JsonNode *value, GError *err)
{
    ParseResult *res = opaque;

    if (res->count++ == 0) {
        res->node = value;
        res->err = err ? g_error_copy(err) : NULL;
    } else if (value) {
        json_node_unref(value);
    }
}

JsonNode *qmp_json_parse(const char *text, size_t len, GError **errp)
{
    ParseResult res = { 0 };
    JsonStream *js = json_stream_new(collect_one, &res);

    json_stream_feed(js, text, len);
    json_stream_feed(js, " ", 1);    /* end a trailing number or keyword */
    if (!res.err && (js->tokens->len || js->state != LX_START)) {
        res.err = g_error_new(QEMU_ERROR, EINVAL, "JSON parse error, premature EOI");
    }
    json_stream_free(js);
    if (res.err) {
        g_propagate_error(errp, res.err);
        if (res.node) {
            json_node_unref(res.node);
        }
        return NULL;
    }
    if (res.count != 1) {
        error_setg(errp, "JSON parse error, %s",
                   res.count ? "expecting end of input" : "expecting value");
        if (res.node) {
            json_node_unref(res.node);
        }
        return NULL;
    }
    return res.node;
}
