/* UTF-8, character classes, NFD/NFKC and lower-casing over the generated
 * tables (see unicode.h). */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

int ft_ustr_push(ft_ustr *s, uint32_t cp)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = cp;
    return 0;
}

void ft_ustr_free(ft_ustr *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

int ft_utf8_decode(const char *text, size_t len, ft_ustr *out)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        uint32_t cp = 0;
        size_t need = 0;
        uint32_t min = 0;
        if (c < 0x80) {
            cp = c;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F;
            need = 1;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            need = 2;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            need = 3;
            min = 0x10000;
        } else {
            need = (size_t)-1; /* invalid lead byte */
        }
        int ok = need != (size_t)-1;
        for (size_t k = 1; ok && k <= need; k++) {
            if (i + k >= len || (p[i + k] & 0xC0) != 0x80)
                ok = 0;
            else
                cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (ok && need && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
            ok = 0;
        if (!ok) {
            if (ft_ustr_push(out, FT_U_RAWBYTE | c))
                return -1;
            i++;
            continue;
        }
        if (ft_ustr_push(out, cp))
            return -1;
        i += need + 1;
    }
    return 0;
}

size_t ft_utf8_put(uint32_t cp, char *buf, size_t cap)
{
    unsigned char b[4];
    size_t n;
    if (cp & FT_U_RAWBYTE) {
        b[0] = (unsigned char)(cp & 0xFF);
        n = 1;
    } else if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (n <= cap)
        memcpy(buf, b, n);
    return n;
}

int ft_u_category(uint32_t cp)
{
    if (cp >= 0x110000)
        return FT_UC_CN;
    size_t lo = 0, hi = ft_ucd_cat_n; /* last start <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ft_ucd_cat_start[mid] <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return ft_ucd_cat_val[lo];
}

int ft_u_in(uint32_t cp, const ft_urange *r, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int ft_u_ccc(uint32_t cp)
{
    size_t lo = 0, hi = ft_ucd_ccc_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ft_ucd_ccc[mid].lo)
            hi = mid;
        else if (cp > ft_ucd_ccc[mid].hi)
            lo = mid + 1;
        else
            return ft_ucd_ccc[mid].ccc;
    }
    return 0;
}

static const ft_ucd_decomp *find_decomp(uint32_t cp)
{
    size_t lo = 0, hi = ft_ucd_decomps_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ft_ucd_decomps[mid].cp)
            hi = mid;
        else if (cp > ft_ucd_decomps[mid].cp)
            lo = mid + 1;
        else
            return &ft_ucd_decomps[mid];
    }
    return NULL;
}

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7 };
enum { LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

/* Full (recursive) decomposition of one code point. */
static int decompose(uint32_t cp, int compat, ft_ustr *out)
{
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        if (ft_ustr_push(out, LBASE + s / NCOUNT) ||
            ft_ustr_push(out, VBASE + (s % NCOUNT) / TCOUNT))
            return -1;
        if (s % TCOUNT && ft_ustr_push(out, TBASE + s % TCOUNT))
            return -1;
        return 0;
    }
    const ft_ucd_decomp *d = (cp & FT_U_RAWBYTE) ? NULL : find_decomp(cp);
    if (!d || (d->compat && !compat))
        return ft_ustr_push(out, cp);
    for (uint32_t k = 0; k < d->len; k++)
        if (decompose(ft_ucd_decomp_pool[d->off + k], compat, out))
            return -1;
    return 0;
}

/* Canonical ordering: a stable sort of each run of non-starters by class. */
static void canonical_order(ft_ustr *s)
{
    for (size_t i = 1; i < s->n; i++) {
        uint32_t c = s->v[i];
        int cc = ft_u_ccc(c);
        if (cc == 0)
            continue;
        size_t j = i;
        while (j > 0) {
            int pc = ft_u_ccc(s->v[j - 1]);
            if (pc <= cc)
                break;
            s->v[j] = s->v[j - 1];
            j--;
        }
        s->v[j] = c;
    }
}

static int decompose_all(const uint32_t *s, size_t n, int compat, ft_ustr *out)
{
    out->n = 0;
    for (size_t i = 0; i < n; i++)
        if (decompose(s[i], compat, out))
            return -1;
    canonical_order(out);
    return 0;
}

int ft_u_nfd(const uint32_t *s, size_t n, ft_ustr *out)
{
    return decompose_all(s, n, 0, out);
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    size_t lo = 0, hi = ft_ucd_comps_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ft_ucd_comp *c = &ft_ucd_comps[mid];
        if (a < c->first || (a == c->first && b < c->second))
            hi = mid;
        else if (a > c->first || b > c->second)
            lo = mid + 1;
        else
            return c->composite;
    }
    return 0;
}

/* Canonical composition in place (UAX #15). */
static void compose(ft_ustr *s)
{
    if (s->n == 0)
        return;
    size_t starter = 0, w = 1;
    int starter_ok = ft_u_ccc(s->v[0]) == 0;
    int last_cc = starter_ok ? 0 : 256;
    for (size_t i = 1; i < s->n; i++) {
        uint32_t c = s->v[i];
        int cc = ft_u_ccc(c);
        uint32_t comp = 0;
        if (starter_ok && (last_cc < cc || (last_cc == 0 && w == starter + 1)))
            comp = compose_pair(s->v[starter], c);
        if (comp) {
            s->v[starter] = comp;
            continue;
        }
        if (cc == 0) {
            starter = w;
            starter_ok = 1;
        }
        last_cc = cc;
        s->v[w++] = c;
    }
    s->n = w;
}

int ft_u_nfkc(const uint32_t *s, size_t n, ft_ustr *out)
{
    if (decompose_all(s, n, 1, out))
        return -1;
    compose(out);
    return 0;
}

int ft_u_lower1(uint32_t cp, uint32_t out[2])
{
    if (cp == 0x130) {
        out[0] = 0x69;
        out[1] = 0x307;
        return 2;
    }
    out[0] = cp;
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z')
            out[0] = cp + 32;
        return 1;
    }
    size_t lo = 0, hi = ft_ucd_lower_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ft_ucd_lower[mid].from)
            hi = mid;
        else if (cp > ft_ucd_lower[mid].from)
            lo = mid + 1;
        else {
            out[0] = ft_ucd_lower[mid].to;
            break;
        }
    }
    return 1;
}

static int is_ignorable(uint32_t c)
{
    return ft_u_in(c, ft_ucd_case_ignorable, ft_ucd_case_ignorable_n);
}

static int is_cased(uint32_t c)
{
    return ft_u_in(c, ft_ucd_cased, ft_ucd_cased_n);
}

/* U+03A3 at s[i]: preceded by a cased letter (skipping case-ignorables) and
 * not followed by one. */
static int final_sigma_at(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_ignorable(s[j - 1]))
        j--;
    if (j == 0 || !is_cased(s[j - 1]))
        return 0;
    j = i + 1;
    while (j < n && is_ignorable(s[j]))
        j++;
    return j == n || !is_cased(s[j]);
}

int ft_u_lower(const uint32_t *s, size_t n, int final_sigma, ft_ustr *out)
{
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l[2];
        int k;
        if (s[i] == 0x3A3 && final_sigma && final_sigma_at(s, n, i)) {
            l[0] = 0x3C2;
            k = 1;
        } else {
            k = ft_u_lower1(s[i], l);
        }
        for (int j = 0; j < k; j++)
            if (ft_ustr_push(out, l[j]))
                return -1;
    }
    return 0;
}
