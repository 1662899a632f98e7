/* GPT-2 byte-level BPE: the GPT-2 pre-tokenizer regex written out by hand,
 * the byte -> symbol map, merges by rank, and a cache of encoded chunks. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

uint32_t ft_bpe_byte_cp(int b)
{
    /* Printable bytes map to themselves; the others (0-32, 127-160, 173)
     * to 256, 257, ... in byte order (GPT-2's bytes_to_unicode). */
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
            n++;
    return 256u + (uint32_t)n;
}

int ft_bpe_init_bytes(ft_tokenizer *t, ft_err *err)
{
    for (size_t k = 0; k < sizeof t->cp_byte / sizeof t->cp_byte[0]; k++)
        t->cp_byte[k] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = ft_bpe_byte_cp(b);
        char s[4];
        size_t n = ft_utf8_put(cp, s, sizeof s);
        int32_t id;
        if (!ft_strmap_get(&t->vocab, s, n, &id))
            return ft_fail(err, FT_EINPUT,
                           "%s: the vocabulary has no symbol for byte 0x%02X ('%.*s'); a "
                           "byte-level BPE vocabulary needs all 256",
                           t->path, b, (int)n, s);
        t->byte_id[b] = id;
        t->cp_byte[cp] = (int16_t)b;
    }
    return FT_OK;
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

int ft_bpe_add_merge(ft_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if (t->nmerge_slots == 0) {
        t->nmerge_slots = 1024;
        t->merges = calloc(t->nmerge_slots, sizeof *t->merges);
        if (!t->merges)
            return -1;
    }
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = (size_t)mix(key) & (t->nmerge_slots - 1);
    while (t->merges[j].key && t->merges[j].key != key)
        j = (j + 1) & (t->nmerge_slots - 1);
    if (t->merges[j].key == key)
        return 0; /* a repeated pair keeps its first (best) rank */
    t->merges[j] = (ft_bpe_merge){key, rank, merged};
    if (++t->nmerges * 2 > t->nmerge_slots) {
        size_t ns = t->nmerge_slots * 2;
        ft_bpe_merge *m = calloc(ns, sizeof *m);
        if (!m)
            return -1;
        for (size_t i = 0; i < t->nmerge_slots; i++) {
            if (!t->merges[i].key)
                continue;
            size_t k = (size_t)mix(t->merges[i].key) & (ns - 1);
            while (m[k].key)
                k = (k + 1) & (ns - 1);
            m[k] = t->merges[i];
        }
        free(t->merges);
        t->merges = m;
        t->nmerge_slots = ns;
    }
    return 0;
}

static const ft_bpe_merge *get_merge(const ft_tokenizer *t, int32_t a, int32_t b)
{
    if (!t->nmerge_slots)
        return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = (size_t)mix(key) & (t->nmerge_slots - 1);
    while (t->merges[j].key) {
        if (t->merges[j].key == key)
            return &t->merges[j];
        j = (j + 1) & (t->nmerge_slots - 1);
    }
    return NULL;
}

/* ---- pre-tokenizer --------------------------------------------------------------------- */

static int is_space(const ft_tokenizer *t, uint32_t c)
{
    if (c & FT_U_RAWBYTE)
        return 0;
    if ((c >= 9 && c <= 13) || c == ' ' || c == 0xA0 || c == 0x1680 ||
        (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
        c == 0x3000)
        return 1;
    /* JavaScript's \s also has U+FEFF; Unicode White_Space (Oniguruma) has U+0085. */
    return t->ws_onig ? c == 0x85 : c == 0xFEFF;
}

static int is_letter(uint32_t c)
{
    if (c < 0x80)
        return (c | 32) >= 'a' && (c | 32) <= 'z';
    return ft_u_category(c) <= FT_UC_LO;
}

static int is_number(uint32_t c)
{
    if (c < 0x80)
        return c >= '0' && c <= '9';
    int k = ft_u_category(c);
    return k >= FT_UC_ND && k <= FT_UC_NO;
}

static int is_other(const ft_tokenizer *t, uint32_t c)
{
    return !is_space(t, c) && !is_letter(c) && !is_number(c);
}

/* Length of the regex match at i:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_at(const ft_tokenizer *t, const uint32_t *c, size_t n, size_t i)
{
    if (c[i] == '\'' && i + 1 < n) {
        uint32_t a = c[i + 1], b = i + 2 < n ? c[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    for (int k = 0; k < 2; k++) {
        int (*cls)(uint32_t) = k == 0 ? is_letter : is_number;
        size_t j = i;
        if (c[j] == ' ' && j + 1 < n && cls(c[j + 1]))
            j++;
        if (cls(c[j])) {
            while (j < n && cls(c[j]))
                j++;
            return j - i;
        }
    }
    {
        size_t j = i;
        if (c[j] == ' ' && j + 1 < n && is_other(t, c[j + 1]))
            j++;
        if (is_other(t, c[j])) {
            while (j < n && is_other(t, c[j]))
                j++;
            return j - i;
        }
    }
    /* c[i] is whitespace: \s+(?!\S) backtracks to leave the last space for
     * the next word; a single space before a non-space falls to \s+. */
    size_t j = i;
    while (j < n && is_space(t, c[j]))
        j++;
    if (j == n || j - i == 1)
        return j - i;
    return j - i - 1;
}

/* ---- BPE ------------------------------------------------------------------------------- */

static int bpe_word(const ft_tokenizer *t, int32_t *w, size_t *pm)
{
    size_t m = *pm;
    while (m > 1) {
        const ft_bpe_merge *best = NULL;
        for (size_t i = 0; i + 1 < m; i++) {
            const ft_bpe_merge *g = get_merge(t, w[i], w[i + 1]);
            if (g && (!best || g->rank < best->rank))
                best = g;
        }
        if (!best)
            break;
        int32_t a = (int32_t)(((best->key - 1) >> 32) & 0xFFFFFFFFu);
        int32_t b = (int32_t)((best->key - 1) & 0xFFFFFFFFu);
        size_t o = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && w[i] == a && w[i + 1] == b) {
                w[o++] = best->merged;
                i += 2;
            } else {
                w[o++] = w[i++];
            }
        }
        m = o;
    }
    *pm = m;
    return 0;
}

#define CACHE_MAX_ENTRIES 200000
#define CACHE_MAX_BYTES 256

static int encode_chunk(ft_tokenizer *t, const char *bytes, size_t nb, ft_ids *out, ft_err *err)
{
    int32_t at;
    if (nb <= CACHE_MAX_BYTES && ft_strmap_get(&t->cache, bytes, nb, &at)) {
        int32_t cnt = t->cache_ids[at];
        for (int32_t k = 0; k < cnt; k++)
            if (ft_ids_push(out, t->cache_ids[at + 1 + k]))
                return ft_fail(err, FT_ERUNTIME, "out of memory");
        return FT_OK;
    }
    int32_t stackw[64];
    int32_t *w = nb <= 64 ? stackw : malloc(nb * sizeof *w);
    if (!w)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t k = 0; k < nb; k++)
        w[k] = t->byte_id[(unsigned char)bytes[k]];
    size_t m = nb;
    bpe_word(t, w, &m);
    int rc = FT_OK;
    for (size_t k = 0; k < m && rc == FT_OK; k++)
        if (ft_ids_push(out, w[k]))
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    if (rc == FT_OK && nb <= CACHE_MAX_BYTES) {
        if (t->cache.n >= CACHE_MAX_ENTRIES) {
            ft_strmap_free(&t->cache);
            t->cache_n = 0;
        }
        if (t->cache_n + m + 1 > t->cache_cap) {
            size_t cap = t->cache_cap ? t->cache_cap * 2 : 4096;
            while (cap < t->cache_n + m + 1)
                cap *= 2;
            int32_t *p = realloc(t->cache_ids, cap * sizeof *p);
            if (p) {
                t->cache_ids = p;
                t->cache_cap = cap;
            }
        }
        if (t->cache_n + m + 1 <= t->cache_cap &&
            ft_strmap_put(&t->cache, bytes, nb, (int32_t)t->cache_n) == 0) {
            t->cache_ids[t->cache_n] = (int32_t)m;
            memcpy(t->cache_ids + t->cache_n + 1, w, m * sizeof *w);
            t->cache_n += m + 1;
        }
    }
    if (w != stackw)
        free(w);
    return rc;
}

int ft_bpe_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err)
{
    ft_buf b = {0};
    int rc = FT_OK;
    for (size_t i = 0; i < n && rc == FT_OK;) {
        size_t len = match_at(t, cps, n, i);
        if (len == 0)
            len = 1; /* cannot happen: every character matches some branch */
        b.n = 0;
        for (size_t k = i; k < i + len; k++)
            if (ft_buf_cp(&b, cps[k]))
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        if (rc == FT_OK)
            rc = encode_chunk(t, b.p, b.n, out, err);
        i += len;
    }
    free(b.p);
    return rc;
}

int ft_bpe_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, ft_buf *out, ft_err *err)
{
    ft_ustr u = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->nids || !t->id2tok[ids[i]]) {
            ft_ustr_free(&u);
            return ft_fail(err, FT_EINPUT, "decode: token id %d is not in the vocabulary (%s)",
                           (int)ids[i], t->path);
        }
        const char *s = t->id2tok[ids[i]];
        u.n = 0;
        if (ft_utf8_decode(s, strlen(s), &u)) {
            ft_ustr_free(&u);
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        }
        for (size_t k = 0; k < u.n; k++) {
            uint32_t c = u.v[k];
            /* A symbol outside the byte map (an added token such as
             * <|endoftext|>) is written as its own text. */
            int ok;
            if (c < 0x144 && t->cp_byte[c] >= 0) {
                unsigned char byte = (unsigned char)t->cp_byte[c];
                ok = ft_buf_put(out, &byte, 1) == 0;
            } else {
                ok = ft_buf_cp(out, c) == 0;
            }
            if (!ok) {
                ft_ustr_free(&u);
                return ft_fail(err, FT_ERUNTIME, "out of memory");
            }
        }
    }
    ft_ustr_free(&u);
    return FT_OK;
}
