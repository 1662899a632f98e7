/* Strict, bounded JSON parser (see include/ftune/json.h). Recursive descent;
 * the recursion depth is bounded by max_depth, every buffer size by the
 * input length. */
#include "ftune/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *p;
    size_t len, pos;
    int max_depth;
    size_t max_values, values;
    ft_err *err;
} parser;

static int perr(parser *P, size_t at, const char *what)
{
    return ft_fail(P->err, FT_EINPUT, "JSON: %s at byte %zu", what, at);
}

static void skip_ws(parser *P)
{
    while (P->pos < P->len) {
        unsigned char c = P->p[P->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        P->pos++;
    }
}

static int peek(const parser *P)
{
    return P->pos < P->len ? P->p[P->pos] : -1;
}

/* ---- strings ---------------------------------------------------------------- */

static int hex4(parser *P, size_t at, unsigned *out)
{
    if (P->len - P->pos < 4)
        return perr(P, at, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = P->p[P->pos + (size_t)k];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return perr(P, P->pos + (size_t)k, "bad hex digit in a \\u escape");
        v = v * 16 + d;
    }
    P->pos += 4;
    *out = v;
    return FT_OK;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t k;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) {
        k = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        k = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        k = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

/* At the opening quote. The decoded string is never longer than its source. */
static int parse_string(parser *P, char **out, size_t *outlen)
{
    size_t start = P->pos++;
    size_t end = P->pos;
    /* find the closing quote first, to size the buffer */
    while (end < P->len && P->p[end] != '"') {
        if (P->p[end] == '\\')
            end++;
        end++;
    }
    if (end >= P->len)
        return perr(P, start, "unterminated string");
    unsigned char *buf = malloc(end - P->pos + 1);
    if (!buf)
        return ft_fail(P->err, FT_ERUNTIME, "JSON: out of memory");
    size_t o = 0;
    while (P->pos < end) {
        size_t at = P->pos;
        unsigned char c = P->p[P->pos];
        if (c < 0x20) {
            free(buf);
            return perr(P, at, "control character in a string (escape it)");
        }
        if (c != '\\') {
            size_t k = utf8_len(P->p + P->pos, end - P->pos);
            if (k == 0) {
                free(buf);
                return perr(P, at, "invalid UTF-8 in a string");
            }
            memcpy(buf + o, P->p + P->pos, k);
            o += k;
            P->pos += k;
            continue;
        }
        P->pos++;
        c = P->p[P->pos++];
        switch (c) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '/': buf[o++] = '/'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(P, at, &cp)) {
                free(buf);
                return P->err->code;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return perr(P, at, "lone low surrogate in a \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (P->pos + 2 > end || P->p[P->pos] != '\\' || P->p[P->pos + 1] != 'u') {
                    free(buf);
                    return perr(P, at, "high surrogate not followed by a low surrogate");
                }
                P->pos += 2;
                if (hex4(P, at, &lo)) {
                    free(buf);
                    return P->err->code;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return perr(P, at, "high surrogate not followed by a low surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* 6 or 12 source bytes give at most 4 output bytes */
            o += put_utf8(buf + o, cp);
            break;
        }
        default: free(buf); return perr(P, at, "invalid escape in a string");
        }
    }
    P->pos = end + 1;
    buf[o] = '\0';
    *out = (char *)buf;
    *outlen = o;
    return FT_OK;
}

/* ---- numbers ------------------------------------------------------------------ */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(parser *P, ft_json *v)
{
    size_t start = P->pos;
    int integral = 1;
    if (peek(P) == '-')
        P->pos++;
    if (peek(P) == '0') {
        P->pos++;
        if (is_digit(peek(P)))
            return perr(P, start, "leading zero in a number");
    } else if (is_digit(peek(P))) {
        while (is_digit(peek(P)))
            P->pos++;
    } else {
        return perr(P, start, "invalid number");
    }
    if (peek(P) == '.') {
        integral = 0;
        P->pos++;
        if (!is_digit(peek(P)))
            return perr(P, P->pos, "expected a digit after the decimal point");
        while (is_digit(peek(P)))
            P->pos++;
    }
    if (peek(P) == 'e' || peek(P) == 'E') {
        integral = 0;
        P->pos++;
        if (peek(P) == '+' || peek(P) == '-')
            P->pos++;
        if (!is_digit(peek(P)))
            return perr(P, P->pos, "expected a digit in the exponent");
        while (is_digit(peek(P)))
            P->pos++;
    }
    size_t n = P->pos - start;
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return ft_fail(P->err, FT_ERUNTIME, "JSON: out of memory");
    memcpy(buf, P->p + start, n);
    buf[n] = '\0';
    v->type = FT_JSON_NUMBER;
    v->d = strtod(buf, NULL); /* overflow gives +-HUGE_VAL */
    if (integral) {
        errno = 0;
        char *end;
        long long i = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0') {
            v->is_int = 1;
            v->i = (int64_t)i;
        }
    }
    if (buf != small)
        free(buf);
    if (!isfinite(v->d))
        return perr(P, start, "number out of range");
    return FT_OK;
}

/* ---- values ---------------------------------------------------------------------- */

static int parse_value(parser *P, ft_json *v, int depth);

static int literal(parser *P, const char *word)
{
    size_t n = strlen(word);
    if (P->len - P->pos < n || memcmp(P->p + P->pos, word, n) != 0)
        return 0;
    P->pos += n;
    return 1;
}

/* Appends one item slot; capacity doubles. */
static int grow(parser *P, ft_json *v, size_t *cap, int with_keys)
{
    if (v->n < *cap)
        return FT_OK;
    size_t nc = *cap ? 2 * *cap : 4;
    ft_json *items = realloc(v->items, nc * sizeof *items);
    if (!items)
        return ft_fail(P->err, FT_ERUNTIME, "JSON: out of memory");
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys)
            return ft_fail(P->err, FT_ERUNTIME, "JSON: out of memory");
        v->keys = keys;
    }
    *cap = nc;
    return FT_OK;
}

static int parse_array(parser *P, ft_json *v, int depth)
{
    size_t cap = 0;
    v->type = FT_JSON_ARRAY;
    P->pos++;
    skip_ws(P);
    if (peek(P) == ']') {
        P->pos++;
        return FT_OK;
    }
    for (;;) {
        if (grow(P, v, &cap, 0))
            return P->err->code;
        ft_json *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        v->n++;
        skip_ws(P);
        if (parse_value(P, item, depth + 1))
            return P->err->code;
        skip_ws(P);
        int c = peek(P);
        P->pos++;
        if (c == ']')
            return FT_OK;
        if (c != ',')
            return perr(P, P->pos - 1,
                        c < 0 ? "unterminated array" : "expected ',' or ']' in an array");
    }
}

typedef struct keyref {
    const char *k;
    size_t i;
} keyref;

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(((const keyref *)a)->k, ((const keyref *)b)->k);
}

/* Sorted index for lookups; duplicate keys are an error (they are in
 * safetensors, and a strict reader should not pick one silently). */
static int index_object(parser *P, ft_json *v)
{
    if (v->n == 0)
        return FT_OK;
    keyref *r = malloc(v->n * sizeof *r);
    v->sorted = malloc(v->n * sizeof *v->sorted);
    if (!r || !v->sorted) {
        free(r);
        return ft_fail(P->err, FT_ERUNTIME, "JSON: out of memory");
    }
    for (size_t i = 0; i < v->n; i++)
        r[i] = (keyref){v->keys[i], i};
    qsort(r, v->n, sizeof *r, cmp_keys);
    for (size_t i = 0; i < v->n; i++)
        v->sorted[i] = r[i].i;
    for (size_t i = 1; i < v->n; i++)
        if (strcmp(r[i - 1].k, r[i].k) == 0) {
            size_t later = r[i].i > r[i - 1].i ? r[i].i : r[i - 1].i;
            char what[160];
            snprintf(what, sizeof what, "duplicate key \"%.100s\" in an object", r[i].k);
            free(r);
            return perr(P, v->items[later].pos, what);
        }
    free(r);
    return FT_OK;
}

static int parse_object(parser *P, ft_json *v, int depth)
{
    size_t cap = 0;
    v->type = FT_JSON_OBJECT;
    P->pos++;
    skip_ws(P);
    if (peek(P) == '}') {
        P->pos++;
        return FT_OK;
    }
    for (;;) {
        skip_ws(P);
        if (peek(P) != '"')
            return perr(P, P->pos,
                        peek(P) < 0 ? "unterminated object" : "expected a string key in an object");
        if (grow(P, v, &cap, 1))
            return P->err->code;
        ft_json *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        v->keys[v->n] = NULL;
        v->n++;
        size_t kpos = P->pos, klen;
        if (parse_string(P, &v->keys[v->n - 1], &klen))
            return P->err->code;
        if (strlen(v->keys[v->n - 1]) != klen)
            return perr(P, kpos, "object key contains a NUL character");
        skip_ws(P);
        if (peek(P) != ':')
            return perr(P, P->pos, "expected ':' after an object key");
        P->pos++;
        skip_ws(P);
        if (parse_value(P, item, depth + 1))
            return P->err->code;
        skip_ws(P);
        int c = peek(P);
        P->pos++;
        if (c == '}')
            return index_object(P, v);
        if (c != ',')
            return perr(P, P->pos - 1,
                        c < 0 ? "unterminated object" : "expected ',' or '}' in an object");
    }
}

static int parse_value(parser *P, ft_json *v, int depth)
{
    v->pos = P->pos;
    if (++P->values > P->max_values) {
        char what[96];
        snprintf(what, sizeof what, "more than %zu values", P->max_values);
        return perr(P, P->pos, what);
    }
    if (depth > P->max_depth) {
        char what[96];
        snprintf(what, sizeof what, "nesting deeper than %d levels", P->max_depth);
        return perr(P, P->pos, what);
    }
    int c = peek(P);
    switch (c) {
    case -1: return perr(P, P->pos, "unexpected end of input, expected a value");
    case '{': return parse_object(P, v, depth);
    case '[': return parse_array(P, v, depth);
    case '"': v->type = FT_JSON_STRING; return parse_string(P, &v->s, &v->len);
    case 't':
    case 'f':
        if (literal(P, "true") || literal(P, "false")) {
            v->type = FT_JSON_BOOL;
            v->b = c == 't';
            return FT_OK;
        }
        break;
    case 'n':
        if (literal(P, "null")) {
            v->type = FT_JSON_NULL;
            return FT_OK;
        }
        break;
    default:
        if (c == '-' || is_digit(c))
            return parse_number(P, v);
    }
    return perr(P, P->pos, "unexpected character, expected a value");
}

static void free_inner(ft_json *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        free_inner(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->sorted);
}

void ft_json_free(ft_json *v)
{
    if (!v)
        return;
    free_inner(v);
    free(v);
}

int ft_json_parse_ex(const char *text, size_t len, const ft_json_limits *lim, ft_json **out,
                     ft_err *err)
{
    *out = NULL;
    int max_depth = lim && lim->max_depth > 0 ? lim->max_depth : FT_JSON_MAX_DEPTH;
    size_t max_len = lim && lim->max_len > 0 ? lim->max_len : FT_JSON_MAX_LEN;
    size_t max_values = lim && lim->max_values > 0 ? lim->max_values : FT_JSON_MAX_VALUES;
    if (len > max_len)
        return ft_fail(err, FT_EINPUT, "JSON: the text is %zu bytes, more than the limit of %zu",
                       len, max_len);
    if (!text && len)
        return ft_fail(err, FT_EINPUT, "JSON: no text");
    parser P = {(const unsigned char *)text, len, 0, max_depth, max_values, 0, err};
    ft_json *v = calloc(1, sizeof *v);
    if (!v)
        return ft_fail(err, FT_ERUNTIME, "JSON: out of memory");
    skip_ws(&P);
    int rc = parse_value(&P, v, 1);
    if (!rc) {
        skip_ws(&P);
        if (P.pos < P.len)
            rc = perr(&P, P.pos, "unexpected text after the value");
    }
    if (rc) {
        ft_json_free(v);
        return rc;
    }
    *out = v;
    return FT_OK;
}

int ft_json_parse(const char *text, size_t len, ft_json **out, ft_err *err)
{
    return ft_json_parse_ex(text, len, NULL, out, err);
}

/* ---- accessors --------------------------------------------------------------------- */

const char *ft_json_type_name(int type)
{
    switch (type) {
    case FT_JSON_NULL: return "null";
    case FT_JSON_BOOL: return "boolean";
    case FT_JSON_NUMBER: return "number";
    case FT_JSON_STRING: return "string";
    case FT_JSON_ARRAY: return "array";
    case FT_JSON_OBJECT: return "object";
    default: return "?";
    }
}

const ft_json *ft_json_get(const ft_json *obj, const char *key)
{
    if (!obj || obj->type != FT_JSON_OBJECT || !key || !obj->sorted)
        return NULL;
    size_t lo = 0, hi = obj->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t k = obj->sorted[mid];
        int c = strcmp(obj->keys[k], key);
        if (c == 0)
            return &obj->items[k];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t ft_json_len(const ft_json *v)
{
    return v && (v->type == FT_JSON_ARRAY || v->type == FT_JSON_OBJECT) ? v->n : 0;
}

const ft_json *ft_json_at(const ft_json *v, size_t i)
{
    return i < ft_json_len(v) ? &v->items[i] : NULL;
}

const char *ft_json_key_at(const ft_json *obj, size_t i)
{
    return obj && obj->type == FT_JSON_OBJECT && i < obj->n ? obj->keys[i] : NULL;
}

int ft_json_is(const ft_json *v, int type)
{
    return v && v->type == type;
}

int ft_json_int64(const ft_json *v, int64_t *out)
{
    if (!v || v->type != FT_JSON_NUMBER || !v->is_int)
        return 0;
    *out = v->i;
    return 1;
}

int ft_json_double(const ft_json *v, double *out)
{
    if (!v || v->type != FT_JSON_NUMBER)
        return 0;
    *out = v->d;
    return 1;
}

int ft_json_bool(const ft_json *v, int *out)
{
    if (!v || v->type != FT_JSON_BOOL)
        return 0;
    *out = v->b;
    return 1;
}

const char *ft_json_string(const ft_json *v)
{
    return v && v->type == FT_JSON_STRING ? v->s : NULL;
}

const char *ft_json_get_string(const ft_json *obj, const char *key, const char *dflt)
{
    const char *s = ft_json_string(ft_json_get(obj, key));
    return s ? s : dflt;
}

int64_t ft_json_get_int64(const ft_json *obj, const char *key, int64_t dflt)
{
    int64_t v;
    return ft_json_int64(ft_json_get(obj, key), &v) ? v : dflt;
}

double ft_json_get_double(const ft_json *obj, const char *key, double dflt)
{
    double v;
    return ft_json_double(ft_json_get(obj, key), &v) ? v : dflt;
}

int ft_json_get_bool(const ft_json *obj, const char *key, int dflt)
{
    int v;
    return ft_json_bool(ft_json_get(obj, key), &v) ? v : dflt;
}

/* ---- writing ------------------------------------------------------------------------- */

size_t ft_json_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (n + 1 < cap)                                                                           \
            dst[n] = (char)(ch);                                                                   \
        n++;                                                                                       \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        unsigned char c = *p;
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            for (; *esc; esc++)
                PUT(*esc);
        } else if (c < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", c);
            for (const char *q = u; *q; q++)
                PUT(*q);
        } else {
            PUT(c);
        }
    }
    PUT('"');
#undef PUT
    if (cap > 0)
        dst[n < cap ? n : cap - 1] = '\0';
    return n;
}

int ft_json_write_string(FILE *f, const char *s)
{
    char small[256];
    size_t n = ft_json_escape(small, sizeof small, s);
    if (n < sizeof small)
        return fputs(small, f) < 0 ? EOF : 0;
    char *buf = malloc(n + 1);
    if (!buf)
        return EOF;
    ft_json_escape(buf, n + 1, s);
    int rc = fputs(buf, f) < 0 ? EOF : 0;
    free(buf);
    return rc;
}
