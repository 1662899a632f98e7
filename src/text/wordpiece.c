/* BERT WordPiece: the Hugging Face BertNormalizer + BertPreTokenizer +
 * WordPiece model, and the variant of the npm package bert-tokenizer. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static int oom(ft_err *err)
{
    return ft_fail(err, FT_ERUNTIME, "out of memory");
}

/* Unicode White_Space (Rust's char::is_whitespace). */
static int is_white_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int is_control(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    return ft_u_category(c) >= FT_UC_CC;
}

static int is_bert_punct(uint32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    int k = ft_u_category(c);
    return k >= FT_UC_PC && k <= FT_UC_PO;
}

static int is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest-match-first over word[0..n); prefix goes before every
 * piece but the first, first_prefix before the first. UNK for the whole
 * word when some position has no match. */
static int wordpiece_word(const ft_tokenizer *t, const uint32_t *w, size_t n, const char *prefix,
                          int npm, ft_ids *out, ft_err *err)
{
    if (t->max_word_chars > 0 && n > (size_t)t->max_word_chars)
        return ft_ids_push(out, t->unk_id) ? oom(err) : FT_OK;
    size_t mark = out->n;
    ft_buf b = {0};
    size_t start = 0;
    int unknown = 0;
    while (start < n) {
        size_t end = n;
        int32_t id = -1;
        while (start < end) {
            b.n = 0;
            if (start > 0 && prefix[0] && ft_buf_put(&b, prefix, strlen(prefix))) {
                free(b.p);
                return oom(err);
            }
            for (size_t k = start; k < end; k++)
                if (ft_buf_cp(&b, w[k])) {
                    free(b.p);
                    return oom(err);
                }
            int32_t v;
            if (ft_strmap_get(&t->vocab, b.p, b.n, &v)) {
                if (!npm || v >= 999) {
                    id = v;
                    break;
                }
                /* bert-tokenizer's trie holds ids >= 999 and [CLS]/[SEP] only */
                if (b.n == 5 && (!memcmp(b.p, "[CLS]", 5) || !memcmp(b.p, "[SEP]", 5))) {
                    id = b.p[1] == 'C' ? 101 : 102;
                    break;
                }
            }
            end--;
        }
        if (id < 0) {
            unknown = 1;
            break;
        }
        if (ft_ids_push(out, id)) {
            free(b.p);
            return oom(err);
        }
        start = end;
    }
    free(b.p);
    if (unknown) {
        out->n = mark;
        if (ft_ids_push(out, t->unk_id))
            return oom(err);
    }
    return FT_OK;
}

int ft_wordpiece_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err)
{
    ft_ustr a = {0}, b = {0};
    int rc = FT_OK;
    /* clean text and CJK padding */
    for (size_t i = 0; i < n && rc == FT_OK; i++) {
        uint32_t c = cps[i];
        if (c & FT_U_RAWBYTE)
            c = 0xFFFD; /* invalid UTF-8 reads as U+FFFD */
        if (t->clean_text) {
            if (c == 0 || c == 0xFFFD || is_control(c))
                continue;
            if (is_white_space(c))
                c = ' ';
        }
        int cjk = t->chinese_chars && is_cjk(c);
        if ((cjk && ft_ustr_push(&a, ' ')) || ft_ustr_push(&a, c) || (cjk && ft_ustr_push(&a, ' ')))
            rc = oom(err);
    }
    if (rc == FT_OK && t->strip_accents) {
        if (ft_u_nfd(a.v, a.n, &b))
            rc = oom(err);
        a.n = 0;
        for (size_t i = 0; i < b.n && rc == FT_OK; i++)
            if (ft_u_category(b.v[i]) != FT_UC_MN && ft_ustr_push(&a, b.v[i]))
                rc = oom(err);
    }
    if (rc == FT_OK && t->lowercase) {
        if (ft_u_lower(a.v, a.n, 0, &b))
            rc = oom(err);
        ft_ustr tmp = a;
        a = b;
        b = tmp;
    }
    /* split on whitespace; punctuation characters are words of their own */
    size_t i = 0;
    while (rc == FT_OK && i < a.n) {
        if (is_white_space(a.v[i])) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (!is_bert_punct(a.v[i]))
            while (j < a.n && !is_white_space(a.v[j]) && !is_bert_punct(a.v[j]))
                j++;
        rc = wordpiece_word(t, a.v + i, j - i, t->prefix, 0, out, err);
        i = j;
    }
    ft_ustr_free(&a);
    ft_ustr_free(&b);
    return rc;
}

/* bert-tokenizer 1.1.8 (dist/index.js), step by step:
 *   cleanText: drop U+0000, U+FFFD and C0/C1 controls other than \t \n \r;
 *     \t \n \r and Zs become ' ';
 *   runSplitOnPunctuation: a space before each punctuation character (its
 *     Unicode 12.1 list, BMP only) unless one is there, and after it unless
 *     the next character is a space;
 *   runStripAccents: NFD, then remove the FIRST occurrence of each
 *     non-spacing mark only (String.replace with a string pattern);
 *   toLowerCase (JavaScript: Final_Sigma applies) when lower-casing;
 *   split on ' ' (so doubled spaces give empty words), then per word
 *     U+2581 + NFKC(toLowerCase(word)) ("[CLS]" / "[SEP]" kept), and
 *     greedy longest match over one dictionary without "##" (ids >= 999
 *     plus [CLS]=101, [SEP]=102), [UNK] = 100 for a word with no match. */
int ft_npm_bert_encode(ft_tokenizer *t, const uint32_t *cps, size_t n, ft_ids *out, ft_err *err)
{
    ft_ustr a = {0}, b = {0}, w = {0}, x = {0};
    uint32_t *removed = NULL;
    size_t nremoved = 0, capremoved = 0;
    int rc = FT_OK;
    for (size_t i = 0; i < n && rc == FT_OK; i++) {
        uint32_t c = cps[i];
        if (c & FT_U_RAWBYTE)
            c = 0xFFFD;
        if (c == 0 || c == 0xFFFD || (c < 32 && c != 9 && c != 10 && c != 13) ||
            (c >= 127 && c <= 159))
            continue;
        if (c == 9 || c == 10 || c == 13 || ft_u_category(c) == FT_UC_ZS)
            c = ' ';
        if (ft_ustr_push(&a, c))
            rc = oom(err);
    }
    uint32_t prev = (uint32_t)-1;
    int prev_punct = 0;
    for (size_t i = 0; i < a.n && rc == FT_OK; i++) {
        uint32_t c = a.v[i];
        int punct = ft_u_in(c, ft_ucd_npm_punct, ft_ucd_npm_punct_n);
        if ((punct && prev != ' ') || (!punct && prev_punct && c != ' '))
            rc = ft_ustr_push(&b, ' ') ? oom(err) : FT_OK;
        if (rc == FT_OK && ft_ustr_push(&b, c))
            rc = oom(err);
        prev = c;
        prev_punct = punct;
    }
    if (rc == FT_OK && ft_u_nfd(b.v, b.n, &a))
        rc = oom(err);
    b.n = 0;
    for (size_t i = 0; i < a.n && rc == FT_OK; i++) {
        uint32_t c = a.v[i];
        if (ft_u_in(c, ft_ucd_npm_mn, ft_ucd_npm_mn_n)) {
            size_t k = 0;
            while (k < nremoved && removed[k] != c)
                k++;
            if (k == nremoved) {
                if (nremoved == capremoved) {
                    capremoved = capremoved ? 2 * capremoved : 16;
                    uint32_t *r = realloc(removed, capremoved * sizeof *r);
                    if (!r) {
                        rc = oom(err);
                        break;
                    }
                    removed = r;
                }
                removed[nremoved++] = c;
                continue; /* the first one is removed, later ones stay */
            }
        }
        if (ft_ustr_push(&b, c))
            rc = oom(err);
    }
    if (rc == FT_OK && t->lowercase) {
        if (ft_u_lower(b.v, b.n, 1, &a))
            rc = oom(err);
        ft_ustr tmp = a;
        a = b;
        b = tmp;
    }
    /* b holds the text; split on ' ' keeping empty words */
    size_t i = 0;
    while (rc == FT_OK && i <= b.n) {
        size_t j = i;
        while (j < b.n && b.v[j] != ' ')
            j++;
        static const uint32_t cls[5] = {'[', 'C', 'L', 'S', ']'},
                              sep[5] = {'[', 'S', 'E', 'P', ']'};
        const uint32_t *word = b.v + i;
        size_t len = j - i;
        if (len == 5 && (!memcmp(word, cls, sizeof cls) || !memcmp(word, sep, sizeof sep))) {
            rc = wordpiece_word(t, word, len, "", 1, out, err);
        } else {
            w.n = 0;
            if (ft_u_lower(word, len, 1, &x) || ft_u_nfkc(x.v, x.n, &w))
                rc = oom(err);
            x.n = 0;
            if (rc == FT_OK && (ft_ustr_push(&x, 0x2581)))
                rc = oom(err);
            for (size_t k = 0; k < w.n && rc == FT_OK; k++)
                if (ft_ustr_push(&x, w.v[k]))
                    rc = oom(err);
            if (rc == FT_OK)
                rc = wordpiece_word(t, x.v, x.n, "", 1, out, err);
        }
        i = j + 1;
    }
    free(removed);
    ft_ustr_free(&a);
    ft_ustr_free(&b);
    ft_ustr_free(&w);
    ft_ustr_free(&x);
    return rc;
}

int ft_wordpiece_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, ft_buf *out,
                        ft_err *err)
{
    size_t plen = strlen(t->prefix);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->nids || !t->id2tok[ids[i]])
            return ft_fail(err, FT_EINPUT, "decode: token id %d is not in the vocabulary (%s)",
                           (int)ids[i], t->path);
        const char *s = t->id2tok[ids[i]];
        size_t len = strlen(s);
        int join = 0;
        if (t->kind == FT_TOK_NPM_BERT) {
            if (len >= 3 && !memcmp(s, "\xE2\x96\x81", 3)) {
                s += 3;
                len -= 3;
            } else if (i > 0) {
                join = 1;
            }
        } else if (plen && len >= plen && !memcmp(s, t->prefix, plen)) {
            s += plen;
            len -= plen;
            join = 1;
        }
        if ((out->n > 0 && !join && ft_buf_put(out, " ", 1)) || ft_buf_put(out, s, len))
            return oom(err);
    }
    return FT_OK;
}
