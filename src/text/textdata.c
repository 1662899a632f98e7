/* ftune data import-text: TSV / CSV / JSONL text rows -> token ids in an
 * HDF5 dataset (see ft_import_text in ftune/tokenizer.h, docs/text.md). */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"
#include "ftune/h5util.h"
#include "ftune/json.h"
#include "ftune/tokenizer.h"

#include "tok_internal.h"

enum { FMT_TSV, FMT_CSV, FMT_JSONL };

void ft_text_import_opts_init(ft_text_import_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_len = 128;
    o->target_max_len = 0; /* = max_len */
    o->pad_id = -1;
    o->specials = -1;
}

/* ---- record reader ------------------------------------------------------------------------ */

typedef struct {
    FILE *f;
    const char *path;
    int fmt;
    size_t line;     /* lines read so far */
    size_t rec_line; /* first line of the current record */
    char *lbuf;
    size_t lcap;
    ft_buf fields; /* field bytes, each NUL-terminated */
    size_t *off;   /* field start offsets into fields.p */
    size_t nf, fcap;
    ft_json *json;
} reader;

static int reader_open(reader *r, const char *path, int fmt, ft_err *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->fmt = fmt;
    r->f = fopen(path, "rb");
    if (!r->f)
        return ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    return FT_OK;
}

static void reader_close(reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->lbuf);
    free(r->fields.p);
    free(r->off);
    ft_json_free(r->json);
    memset(r, 0, sizeof *r);
}

/* Reads one physical line (without \n and a trailing \r); 0 at EOF. */
static int read_line(reader *r, size_t *len)
{
    ssize_t n = getline(&r->lbuf, &r->lcap, r->f);
    if (n <= 0)
        return 0;
    r->line++;
    if (n && r->lbuf[n - 1] == '\n')
        n--;
    if (n && r->lbuf[n - 1] == '\r')
        n--;
    r->lbuf[n] = '\0';
    *len = (size_t)n;
    return 1;
}

/* Fields are NUL-terminated in r->fields; off[i] is where field i starts. */
static int end_field(reader *r, ft_err *err)
{
    return ft_buf_put(&r->fields, "", 1) ? ft_fail(err, FT_ERUNTIME, "out of memory") : FT_OK;
}

static int new_field(reader *r, ft_err *err)
{
    if (r->nf && end_field(r, err))
        return err->code;
    if (r->nf == r->fcap) {
        r->fcap = r->fcap ? 2 * r->fcap : 16;
        size_t *o = realloc(r->off, r->fcap * sizeof *o);
        if (!o)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        r->off = o;
    }
    if (ft_buf_put(&r->fields, "", 0))
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    r->off[r->nf++] = r->fields.n;
    return FT_OK;
}

/* Next non-blank record; *eof = 1 at the end. */
static int reader_next(reader *r, int *eof, ft_err *err)
{
    size_t len;
    *eof = 0;
    r->fields.n = 0;
    r->nf = 0;
    for (;;) {
        if (!read_line(r, &len)) {
            if (ferror(r->f))
                return ft_fail(err, FT_ERUNTIME, "%s: read error", r->path);
            *eof = 1;
            return FT_OK;
        }
        size_t k = 0;
        while (k < len && (r->lbuf[k] == ' ' || r->lbuf[k] == '\t'))
            k++;
        if (k < len || (r->fmt == FMT_TSV && len > 0))
            break; /* a TSV line of tabs is a record of empty fields */
    }
    r->rec_line = r->line;
    if (r->fmt == FMT_JSONL) {
        ft_json_free(r->json);
        r->json = NULL;
        ft_err e = {0};
        if (ft_json_parse(r->lbuf, len, &r->json, &e))
            return ft_fail(err, FT_EINPUT, "%s:%zu: %s", r->path, r->rec_line, e.msg);
        if (!ft_json_is(r->json, FT_JSON_OBJECT))
            return ft_fail(err, FT_EINPUT, "%s:%zu: expected a JSON object per line, got %s",
                           r->path, r->rec_line, ft_json_type_name(r->json->type));
        return FT_OK;
    }
    int rc = new_field(r, err);
    if (r->fmt == FMT_TSV) {
        for (size_t i = 0; i < len && rc == FT_OK; i++)
            rc = r->lbuf[i] == '\t' ? new_field(r, err)
                                    : (ft_buf_put(&r->fields, r->lbuf + i, 1)
                                           ? ft_fail(err, FT_ERUNTIME, "out of memory")
                                           : FT_OK);
        return rc ? rc : end_field(r, err);
    }
    /* CSV (RFC 4180): quoted fields may hold commas, "" and line breaks */
    size_t i = 0;
    int quoted = 0, was_quoted = 0;
    while (rc == FT_OK) {
        if (i >= len) {
            if (!quoted)
                break;
            if (ft_buf_put(&r->fields, "\n", 1))
                return ft_fail(err, FT_ERUNTIME, "out of memory");
            if (!read_line(r, &len))
                return ft_fail(err, FT_EINPUT, "%s:%zu: unterminated quoted field", r->path,
                               r->rec_line);
            i = 0;
            continue;
        }
        char c = r->lbuf[i++];
        if (quoted) {
            if (c == '"' && i < len && r->lbuf[i] == '"') {
                rc = ft_buf_put(&r->fields, "\"", 1) ? ft_fail(err, FT_ERUNTIME, "out of memory")
                                                     : FT_OK;
                i++;
            } else if (c == '"') {
                quoted = 0;
                was_quoted = 1;
            } else {
                rc = ft_buf_put(&r->fields, &c, 1) ? ft_fail(err, FT_ERUNTIME, "out of memory")
                                                   : FT_OK;
            }
        } else if (c == ',') {
            rc = new_field(r, err);
            was_quoted = 0;
        } else if (c == '"' && r->fields.n == r->off[r->nf - 1] && !was_quoted) {
            quoted = 1;
        } else if (was_quoted && c != ' ') {
            return ft_fail(err, FT_EINPUT, "%s:%zu: text after a closing quote in field %zu",
                           r->path, r->line, r->nf);
        } else if (!was_quoted) {
            rc = ft_buf_put(&r->fields, &c, 1) ? ft_fail(err, FT_ERUNTIME, "out of memory") : FT_OK;
        }
    }
    return rc ? rc : end_field(r, err);
}

/* A field: JSONL key, or column index. */
typedef struct {
    const char *spec;
    const char *key; /* JSONL */
    int col;         /* TSV/CSV */
} field;

static int is_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int resolve_field(reader *r, field *fd, const char *spec, const char *dflt_key, int dflt_col,
                         int header, ft_err *err)
{
    fd->spec = spec ? spec : dflt_key;
    fd->key = NULL;
    fd->col = -1;
    if (r->fmt == FMT_JSONL) {
        fd->key = fd->spec;
        return FT_OK;
    }
    if (spec && is_digits(spec)) {
        fd->col = atoi(spec);
        return FT_OK;
    }
    if (!header) {
        if (spec)
            return ft_fail(err, FT_EINPUT,
                           "%s: field '%s' names a column, but the file has no header (add "
                           "--header, or give a 0-based column number)",
                           r->path, spec);
        fd->col = dflt_col;
        return FT_OK;
    }
    for (size_t i = 0; i < r->nf; i++)
        if (!strcmp(r->fields.p + r->off[i], fd->spec)) {
            fd->col = (int)i;
            return FT_OK;
        }
    return ft_fail(err, FT_EINPUT, "%s:%zu: the header has no column '%s'", r->path, r->rec_line,
                   fd->spec);
}

/* The field's text; integers in JSONL come as their decimal form. */
static int get_field(reader *r, const field *fd, int allow_int, char *tmp, size_t tmpcap,
                     const char **s, size_t *len, ft_err *err)
{
    if (r->fmt == FMT_JSONL) {
        const ft_json *v = ft_json_get(r->json, fd->key);
        int64_t iv;
        if (!v)
            return ft_fail(err, FT_EINPUT, "%s:%zu: no \"%s\" in this object", r->path, r->rec_line,
                           fd->key);
        if (ft_json_string(v)) {
            *s = v->s;
            *len = v->len;
            return FT_OK;
        }
        if (allow_int && ft_json_int64(v, &iv)) {
            *len = (size_t)snprintf(tmp, tmpcap, "%lld", (long long)iv);
            *s = tmp;
            return FT_OK;
        }
        return ft_fail(err, FT_EINPUT, "%s:%zu: \"%s\" is %s, expected a string%s", r->path,
                       r->rec_line, fd->key, ft_json_type_name(v->type),
                       allow_int ? " or an integer" : "");
    }
    if (fd->col < 0 || (size_t)fd->col >= r->nf)
        return ft_fail(err, FT_EINPUT, "%s:%zu: %zu column%s, no column %d (%s)", r->path,
                       r->rec_line, r->nf, r->nf == 1 ? "" : "s", fd->col, fd->spec);
    *s = r->fields.p + r->off[fd->col];
    *len = strlen(*s);
    return FT_OK;
}

/* ---- HDF5 extras ---------------------------------------------------------------------------- */

static hid_t create_2d(hid_t file, const char *name, hid_t type, uint64_t n, uint64_t t)
{
    hsize_t dims[2] = {n, t};
    hid_t space = H5Screate_simple(t ? 2 : 1, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    return ds;
}

static int write_rows(hid_t ds, hid_t memtype, uint64_t off, uint64_t n, uint64_t t,
                      const void *data)
{
    hid_t fs = H5Dget_space(ds);
    hsize_t o[2] = {off, 0}, c[2] = {n, t};
    hsize_t m = t ? n * t : n;
    hid_t ms = H5Screate_simple(1, &m, NULL);
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, o, NULL, c, NULL);
    if (st >= 0)
        st = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, data);
    H5Sclose(ms);
    H5Sclose(fs);
    return st < 0 ? -1 : 0;
}

static int set_strs_attr(hid_t loc, const char *name, char **v, size_t n)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hsize_t dims = n;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return st < 0 ? -1 : 0;
}

/* ---- import --------------------------------------------------------------------------------- */

static int detect_format(const char *path, const char *fmt, int *out, ft_err *err)
{
    if (fmt) {
        if (!strcmp(fmt, "tsv"))
            *out = FMT_TSV;
        else if (!strcmp(fmt, "csv"))
            *out = FMT_CSV;
        else if (!strcmp(fmt, "jsonl") || !strcmp(fmt, "json"))
            *out = FMT_JSONL;
        else
            return ft_fail(err, FT_EINPUT, "format '%s': expected tsv, csv or jsonl", fmt);
        return FT_OK;
    }
    const char *dot = strrchr(path, '.');
    *out = FMT_TSV;
    if (dot && !strcmp(dot, ".csv"))
        *out = FMT_CSV;
    else if (dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json") || !strcmp(dot, ".ndjson")))
        *out = FMT_JSONL;
    return FT_OK;
}

typedef struct {
    ft_tokenizer *tok;
    int32_t cls, sep, eos, pad; /* tokenizer ids */
    int wordpiece;
    const ft_vocab_map *map; /* NULL: write tokenizer ids */
    uint64_t unk;            /* tokens written as the map's UNK */
} row_ctx;

/* The id written for a tokenizer id: itself, or its compact id. */
static float out_id(row_ctx *c, int32_t id)
{
    if (!c->map)
        return (float)id;
    int32_t m = ft_vocab_map_id(c->map, id);
    c->unk += m == c->map->n - 1;
    return (float)m;
}

/* Tokenizes text into row[0..width): specials, truncation, padding.
 * Returns the real length; *full = tokens before truncation. */
static int make_row(row_ctx *c, const char *s, size_t len, int target, int specials, int width,
                    float *row, ft_ids *ids, int *full, int *out_len, ft_err *err)
{
    ids->n = 0;
    int rc = ft_tokenizer_encode(c->tok, s, len, ids, err);
    if (rc)
        return rc;
    int pre = 0, post = 0;
    int32_t head = -1, tail = -1;
    if (specials) {
        if (c->wordpiece) {
            if (!target && c->cls >= 0) {
                head = c->cls;
                pre = 1;
            }
            if (c->sep >= 0) {
                tail = c->sep;
                post = 1;
            }
        } else if (target && c->eos >= 0) {
            tail = c->eos;
            post = 1;
        }
    }
    int budget = width - pre - post;
    if (budget < 0)
        budget = 0;
    int keep = ids->n > (size_t)budget ? budget : (int)ids->n;
    *full = (int)(ids->n > (size_t)(1 << 30) ? (1 << 30) : ids->n) + pre + post;
    int k = 0;
    if (pre && k < width)
        row[k++] = out_id(c, head);
    for (int i = 0; i < keep; i++)
        row[k++] = out_id(c, ids->v[i]);
    if (post && k < width)
        row[k++] = out_id(c, tail);
    *out_len = k;
    float pad = c->map ? (float)ft_vocab_map_id(c->map, c->pad) : (float)c->pad;
    for (int i = k; i < width; i++)
        row[i] = pad;
    return FT_OK;
}

/* The decoder-only layout of one source -> target pair (docs/text.md, "Source -> target
 * training"): [pre] source sep target eot, padded to width. The target keeps at most cap - 1
 * tokens (cap = --target-max-len, eot included, as its "targets" row); the source gets the
 * room left, and only when even an empty source leaves too little is the target cut further. */
typedef struct {
    int32_t pre;        /* [CLS] or -1 */
    const int32_t *sep; /* separator tokenizer ids */
    int nsep;
    int32_t eot; /* end of text */
} lm_layout;

static void make_lm_row(row_ctx *c, const lm_layout *lm, const ft_ids *src, const ft_ids *tgt,
                        int width, int cap, float *row, int *out_len, int *prompt, int *full,
                        int *src_cut, int *tgt_cut)
{
    int fixed = (lm->pre >= 0) + lm->nsep + 1; /* fits: checked against width up front */
    int nsrc = src->n > (size_t)(1 << 28) ? 1 << 28 : (int)src->n;
    int ntgt = tgt->n > (size_t)(1 << 28) ? 1 << 28 : (int)tgt->n;
    int tkeep = ntgt < cap - 1 ? ntgt : cap - 1;
    if (tkeep > width - fixed)
        tkeep = width - fixed;
    int skeep = width - fixed - tkeep;
    if (skeep > nsrc)
        skeep = nsrc;
    *full = fixed + nsrc + ntgt;
    *src_cut = skeep < nsrc;
    *tgt_cut = tkeep < ntgt;
    int k = 0;
    if (lm->pre >= 0)
        row[k++] = out_id(c, lm->pre);
    for (int i = 0; i < skeep; i++)
        row[k++] = out_id(c, src->v[i]);
    for (int i = 0; i < lm->nsep; i++)
        row[k++] = out_id(c, lm->sep[i]);
    *prompt = k;
    for (int i = 0; i < tkeep; i++)
        row[k++] = out_id(c, tgt->v[i]);
    row[k++] = out_id(c, lm->eot);
    *out_len = k;
    float pad = c->map ? (float)ft_vocab_map_id(c->map, c->pad) : (float)c->pad;
    for (int i = k; i < width; i++)
        row[i] = pad;
}

/* The lm layout's special ids; FT_EINPUT when the tokenizer lacks them or they do not fit. */
static int lm_setup(row_ctx *c, const ft_text_import_opts *o, int T, ft_ids *sep, lm_layout *lm,
                    ft_err *err)
{
    if (!o->generate)
        return ft_fail(err, FT_EINPUT, "the lm layout is for --task generate (source + target)");
    if (o->specials == 0)
        return ft_fail(err, FT_EINPUT,
                       "the lm layout needs its separator and end-of-text tokens; drop "
                       "--no-specials");
    lm->pre = c->wordpiece ? c->cls : -1;
    lm->eot = c->wordpiece ? c->sep : c->eos;
    if (lm->eot < 0)
        return ft_fail(err, FT_EINPUT,
                       "the lm layout needs an end-of-text token (%s), which the "
                       "tokenizer's vocabulary lacks",
                       c->wordpiece ? "[SEP]" : "<|endoftext|>");
    sep->n = 0;
    if (o->separator) {
        int rc = ft_tokenizer_encode(c->tok, o->separator, strlen(o->separator), sep, err);
        if (rc)
            return rc;
        if (sep->n == 0 || sep->n > 64)
            return ft_fail(err, FT_EINPUT, "--separator '%s' is %zu tokens, expected 1 to 64",
                           o->separator, sep->n);
    } else {
        int32_t e = lm->eot;
        if (ft_ids_push(sep, e))
            return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    lm->sep = sep->v;
    lm->nsep = (int)sep->n;
    int fixed = (lm->pre >= 0) + lm->nsep + 1;
    if (T < fixed)
        return ft_fail(err, FT_EINPUT,
                       "max_len %d leaves no room for the lm layout's %d fixed tokens (%sthe "
                       "separator, end-of-text)",
                       T, fixed, lm->pre >= 0 ? "[CLS], " : "");
    return FT_OK;
}

#define CHUNK 256

int ft_import_text(const char *in, const char *out, ft_tokenizer *tok, const ft_text_import_opts *o,
                   ft_text_import_stats *st, ft_err *err)
{
    memset(st, 0, sizeof *st);
    int fmt = FMT_TSV;
    int rc = detect_format(in, o->format, &fmt, err);
    if (rc)
        return rc;
    int T = o->max_len, T2 = o->target_max_len > 0 ? o->target_max_len : o->max_len;
    if (T < 1 || T > (1 << 20) || T2 < 1 || T2 > (1 << 20))
        return ft_fail(err, FT_EINPUT, "max_len %d / target_max_len %d: expected 1 to %d", T, T2,
                       1 << 20);
    int gen = o->generate;
    row_ctx c = {tok,
                 ft_tokenizer_special(tok, FT_TOK_CLS),
                 ft_tokenizer_special(tok, FT_TOK_SEP),
                 ft_tokenizer_special(tok, FT_TOK_EOS),
                 o->pad_id,
                 ft_tokenizer_kind(tok) != FT_TOK_BPE,
                 NULL,
                 0};
    if (c.pad < 0)
        c.pad = ft_tokenizer_special(tok, FT_TOK_PAD);
    if (c.pad < 0)
        c.pad = 0;
    st->pad_id = c.pad;
    int specials = o->specials != 0;
    int lmrow = gen && o->lm_layout;
    lm_layout lm = {-1, NULL, 0, -1};
    ft_ids sepids = {0}, sids = {0};
    if (o->lm_layout && (rc = lm_setup(&c, o, T, &sepids, &lm, err)) != FT_OK) {
        ft_ids_free(&sepids);
        return rc;
    }

    /* pass 1: count rows, collect labels */
    reader r;
    field f1, f2; /* text/source, label/target */
    ft_strmap labels = {0};
    int numeric = !o->classes, eof = 0;
    long long maxnum = -1;
    char tmp[32];
    uint64_t n = 0;
    if (o->vocab_limit > 0 && o->vocab_map) {
        ft_ids_free(&sepids);
        return ft_fail(err, FT_EINPUT, "a vocab limit and a vocab map file exclude each other");
    }
    /* --vocab-limit counts every id of every text (and target), before truncation */
    size_t ntok = ft_tokenizer_vocab_size(tok);
    uint64_t *counts = o->vocab_limit > 0 ? calloc(ntok ? ntok : 1, sizeof *counts) : NULL;
    ft_ids cids = {0};
    ft_vocab_map map = {0};
    if (o->vocab_limit > 0 && !counts) {
        ft_ids_free(&sepids);
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    for (int i = 0; o->classes && i < o->nclasses; i++) {
        int32_t dummy;
        if (ft_strmap_get(&labels, o->classes[i], strlen(o->classes[i]), &dummy))
            rc = ft_fail(err, FT_EINPUT, "--classes: '%s' is listed twice", o->classes[i]);
        else if (ft_strmap_put(&labels, o->classes[i], strlen(o->classes[i]), i))
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        if (rc) {
            free(counts);
            ft_strmap_free(&labels);
            ft_ids_free(&sepids);
            return rc;
        }
    }
    rc = reader_open(&r, in, fmt, err);
    if (rc == FT_OK && o->header && fmt != FMT_JSONL)
        rc = reader_next(&r, &eof, err);
    if (rc == FT_OK && o->header && fmt != FMT_JSONL && eof)
        rc = ft_fail(err, FT_EINPUT, "%s: empty file (expected a header line)", in);
    if (rc == FT_OK)
        rc = resolve_field(&r, &f1, gen ? o->source_field : o->text_field, gen ? "source" : "text",
                           gen ? 0 : 1, o->header, err);
    if (rc == FT_OK)
        rc = resolve_field(&r, &f2, gen ? o->target_field : o->label_field,
                           gen ? "target" : "label", gen ? 1 : 0, o->header, err);
    while (rc == FT_OK) {
        rc = reader_next(&r, &eof, err);
        if (rc || eof)
            break;
        const char *s, *l;
        size_t sl, ll;
        rc = get_field(&r, &f1, 0, tmp, sizeof tmp, &s, &sl, err);
        if (rc == FT_OK)
            rc = get_field(&r, &f2, !gen, tmp, sizeof tmp, &l, &ll, err);
        for (int k = 0; counts && rc == FT_OK && k < 1 + gen; k++) {
            cids.n = 0;
            rc = ft_tokenizer_encode(tok, k ? l : s, k ? ll : sl, &cids, err);
            if (rc)
                ft_err_prefix(err, "%s:%zu", in, r.rec_line);
            for (size_t i = 0; rc == FT_OK && i < cids.n; i++) {
                st->distinct += counts[cids.v[i]] == 0;
                counts[cids.v[i]]++;
            }
        }
        if (rc || gen) {
            n++;
            continue;
        }
        int32_t id;
        if (!ft_strmap_get(&labels, l, ll, &id)) {
            if (o->classes) {
                rc = ft_fail(err, FT_EINPUT, "%s:%zu: label '%.*s' is not in --classes", in,
                             r.rec_line, (int)(ll > 64 ? 64 : ll), l);
                break;
            }
            if (ll == 0) {
                rc = ft_fail(err, FT_EINPUT, "%s:%zu: empty label", in, r.rec_line);
                break;
            }
            if (labels.n >= 65536) {
                rc = ft_fail(err, FT_EINPUT, "%s:%zu: more than 65536 distinct labels", in,
                             r.rec_line);
                break;
            }
            if (ft_strmap_put(&labels, l, ll, (int32_t)labels.n)) {
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
                break;
            }
        }
        char lb[32];
        if (numeric && ll < 10 && (memcpy(lb, l, ll), lb[ll] = '\0', is_digits(lb))) {
            long long v = atoll(lb);
            if (v > maxnum)
                maxnum = v;
        } else {
            numeric = 0;
        }
        n++;
    }
    reader_close(&r);
    if (rc == FT_OK && n == 0)
        rc = ft_fail(err, FT_EINPUT, "%s: no rows", in);
    if (rc == FT_OK && !gen && numeric && maxnum >= 65536)
        numeric = 0;
    int classes = gen ? 1 : numeric ? (int)maxnum + 1 : (int)labels.n;
    if (rc == FT_OK && !gen && o->classes)
        classes = o->nclasses;
    /* the lm layout's separator must survive a compact vocabulary: a separator read as
     * UNK would make every prompt end alike with unknown text */
    int32_t extra[2 + 64] = {c.pad};
    int nextra = 1;
    for (int i = 0; lmrow && i < lm.nsep; i++)
        extra[nextra++] = lm.sep[i];
    if (lmrow)
        extra[nextra++] = lm.eot;
    if (rc == FT_OK && counts) {
        rc = ft_vocab_map_build(&map, tok, counts, o->vocab_limit, extra, nextra, err);
    } else if (rc == FT_OK && o->vocab_map) {
        rc = ft_vocab_map_read(&map, o->vocab_map, tok, err);
        /* padding must stay distinguishable from unknown text */
        if (rc == FT_OK && (c.pad >= map.ntok || map.compact[c.pad] == map.n - 1))
            rc = ft_fail(err, FT_EINPUT, "%s: the padding id %d is not in its vocab_map",
                         o->vocab_map, (int)c.pad);
        for (int i = 1; rc == FT_OK && i < nextra; i++)
            if (extra[i] >= map.ntok || map.compact[extra[i]] == map.n - 1)
                rc = ft_fail(err, FT_EINPUT,
                             "%s: token id %d of the lm layout's %s is not in its vocab_map "
                             "(make the map with the same --layout lm and --separator)",
                             o->vocab_map, (int)extra[i],
                             i < nextra - 1 ? "separator" : "end-of-text");
    }
    free(counts);
    ft_ids_free(&cids);
    if (rc) {
        ft_strmap_free(&labels);
        ft_vocab_map_free(&map);
        ft_ids_free(&sepids);
        return rc;
    }
    if (map.ids) {
        c.map = &map;
        st->pad_id = ft_vocab_map_id(&map, c.pad);
    }
    st->classes = classes;

    /* pass 2: tokenize and write */
    ft_dataset_writer w;
    ft_shape shape = {.rank = 1, .d = {T}};
    rc = ft_dataset_create(&w, out, n, &shape, classes, err);
    if (rc) {
        ft_strmap_free(&labels);
        ft_vocab_map_free(&map);
        ft_ids_free(&sepids);
        return rc;
    }
    hid_t ds_len = -1, ds_tgt = -1, ds_tlen = -1, ds_plen = -1;
    float *x = malloc((size_t)CHUNK * (size_t)T * sizeof *x);
    float *tg = gen ? malloc((size_t)CHUNK * (size_t)T2 * sizeof *tg) : NULL;
    int *y = calloc(CHUNK, sizeof *y);
    int32_t *lens = calloc(CHUNK, sizeof *lens), *tlens = calloc(CHUNK, sizeof *tlens);
    int32_t *plens = calloc(CHUNK, sizeof *plens);
    ft_ids ids = {0};
    if (!x || (gen && !tg) || !y || !lens || !tlens || !plens)
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    if (rc == FT_OK) {
        ds_len = create_2d(w.file, "lengths", H5T_STD_I32LE, n, 0);
        if (gen) {
            ds_tgt = create_2d(w.file, "targets", H5T_IEEE_F32LE, n, (uint64_t)T2);
            ds_tlen = create_2d(w.file, "target_lengths", H5T_STD_I32LE, n, 0);
        }
        if (lmrow)
            ds_plen = create_2d(w.file, "prompt_lengths", H5T_STD_I32LE, n, 0);
        if (ds_len < 0 || (gen && (ds_tgt < 0 || ds_tlen < 0)) || (lmrow && ds_plen < 0))
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot create the text datasets", w.tmp_path);
    }
    if (rc == FT_OK)
        rc = reader_open(&r, in, fmt, err);
    if (rc == FT_OK && o->header && fmt != FMT_JSONL)
        rc = reader_next(&r, &eof, err);
    uint64_t done = 0;
    int filled = 0;
    while (rc == FT_OK) {
        rc = reader_next(&r, &eof, err);
        if (rc)
            break;
        if (!eof) {
            const char *s, *l;
            size_t sl, ll;
            int full, len;
            rc = get_field(&r, &f1, 0, tmp, sizeof tmp, &s, &sl, err);
            if (rc == FT_OK && lmrow) {
                /* the reference target row first: it leaves the target's ids in ids */
                rc = get_field(&r, &f2, 0, tmp, sizeof tmp, &l, &ll, err);
                uint64_t unk = c.unk; /* st->unk_tokens counts inputs only */
                int tlen = 0;
                if (rc == FT_OK)
                    rc = make_row(&c, l, ll, 1, specials, T2, tg + (size_t)filled * (size_t)T2,
                                  &ids, &full, &tlen, err);
                c.unk = unk;
                tlens[filled] = tlen;
                sids.n = 0;
                if (rc == FT_OK)
                    rc = ft_tokenizer_encode(tok, s, sl, &sids, err);
                if (rc) {
                    ft_err_prefix(err, "%s:%zu", in, r.rec_line);
                    break;
                }
                int scut, tcut;
                make_lm_row(&c, &lm, &sids, &ids, T, T2, x + (size_t)filled * (size_t)T, &len,
                            &plens[filled], &full, &scut, &tcut);
                lens[filled] = len;
                st->tokens += (uint64_t)len;
                st->truncated += (uint64_t)scut;
                st->target_truncated += (uint64_t)tcut;
                if (full > st->longest)
                    st->longest = full;
            } else {
                if (rc == FT_OK)
                    rc = make_row(&c, s, sl, 0, specials, T, x + (size_t)filled * (size_t)T, &ids,
                                  &full, &len, err);
                if (rc) {
                    ft_err_prefix(err, "%s:%zu", in, r.rec_line);
                    break;
                }
                lens[filled] = len;
                st->tokens += (uint64_t)len;
                st->truncated += full > T;
                if (full > st->longest)
                    st->longest = full;
                rc = get_field(&r, &f2, !gen, tmp, sizeof tmp, &l, &ll, err);
                if (rc == FT_OK && gen) {
                    uint64_t unk = c.unk; /* st->unk_tokens and st->tokens count inputs only */
                    rc = make_row(&c, l, ll, 1, specials, T2, tg + (size_t)filled * (size_t)T2,
                                  &ids, &full, &len, err);
                    c.unk = unk;
                    if (rc)
                        ft_err_prefix(err, "%s:%zu", in, r.rec_line);
                    tlens[filled] = len;
                    st->target_truncated += full > T2;
                } else if (rc == FT_OK) {
                    int32_t id = 0;
                    if (numeric) {
                        char lb[32];
                        memcpy(lb, l, ll);
                        lb[ll] = '\0';
                        id = (int32_t)atoll(lb);
                    } else {
                        ft_strmap_get(&labels, l, ll, &id);
                    }
                    y[filled] = id;
                }
            }
            if (rc)
                break;
            filled++;
        }
        if (filled == CHUNK || (eof && filled)) {
            rc = ft_dataset_append(&w, x, y, (uint64_t)filled, err);
            if (rc == FT_OK &&
                (write_rows(ds_len, H5T_NATIVE_INT32, done, (uint64_t)filled, 0, lens) ||
                 (gen &&
                  (write_rows(ds_tgt, H5T_NATIVE_FLOAT, done, (uint64_t)filled, (uint64_t)T2, tg) ||
                   write_rows(ds_tlen, H5T_NATIVE_INT32, done, (uint64_t)filled, 0, tlens))) ||
                 (lmrow &&
                  write_rows(ds_plen, H5T_NATIVE_INT32, done, (uint64_t)filled, 0, plens))))
                rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot write rows", w.tmp_path);
            done += (uint64_t)filled;
            filled = 0;
        }
        if (eof)
            break;
    }
    reader_close(&r);
    if (rc == FT_OK && done != n)
        rc = ft_fail(err, FT_EINPUT, "%s: changed while reading (%llu rows, then %llu)", in,
                     (unsigned long long)n, (unsigned long long)done);
    /* attributes */
    const char *sep_text = o->separator ? o->separator
                           : lmrow      ? ft_tokenizer_token(tok, lm.eot)
                                        : "";
    if (rc == FT_OK) {
        hid_t f = w.file;
        const char *tk = ft_tokenizer_kind(tok) == FT_TOK_BPE        ? "gpt2-bpe"
                         : ft_tokenizer_kind(tok) == FT_TOK_NPM_BERT ? "bert-tokenizer-npm"
                                                                     : "wordpiece";
        if (ft_h5_set_str_attr(f, "task", gen ? "generation" : "classification", err) ||
            ft_h5_set_str_attr(f, "tokenizer", tk, err) ||
            ft_h5_set_str_attr(f, "tokenizer_file", tok->path, err) ||
            ft_h5_set_int_attr(f, "vocab_size",
                               c.map ? (long long)map.n : (long long)ft_tokenizer_vocab_size(tok),
                               err) ||
            ft_h5_set_int_attr(f, "pad_id", st->pad_id, err) ||
            (c.map && (ft_h5_set_int_attr(f, "unk_id", map.n - 1, err) ||
                       ft_h5_set_int_attr(f, "tokenizer_vocab_size", map.ntok, err))) ||
            ft_h5_set_int_attr(f, "max_len", T, err) ||
            (gen && ft_h5_set_int_attr(f, "target_max_len", T2, err)) ||
            (lmrow && (ft_h5_set_str_attr(f, "layout", "lm", err) ||
                       ft_h5_set_str_attr(f, "separator", sep_text, err)))) {
            rc = err->code ? err->code : FT_ERUNTIME;
            ft_err_prefix(err, "%s", w.tmp_path);
        }
    }
    if (rc == FT_OK && c.map) {
        hid_t ds = create_2d(w.file, "vocab_map", H5T_STD_I32LE, (uint64_t)map.n, 0);
        if (ds < 0 || write_rows(ds, H5T_NATIVE_INT32, 0, (uint64_t)map.n, 0, map.ids))
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot write vocab_map", w.tmp_path);
        if (ds >= 0)
            H5Dclose(ds);
    }
    if (rc == FT_OK && !gen && !numeric) {
        char **names = calloc((size_t)classes, sizeof *names);
        if (!names)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        for (size_t i = 0; rc == FT_OK && i < labels.n; i++) {
            int32_t id = labels.ent[i].val;
            names[id] = (char *)ft_strmap_key(&labels, i, NULL);
        }
        if (rc == FT_OK && set_strs_attr(w.file, "class_names", names, (size_t)classes))
            rc = ft_h5_fail(err, FT_ERUNTIME, "%s: cannot write class_names", w.tmp_path);
        free(names);
    }
    if (ds_len >= 0)
        H5Dclose(ds_len);
    if (ds_tgt >= 0)
        H5Dclose(ds_tgt);
    if (ds_tlen >= 0)
        H5Dclose(ds_tlen);
    if (ds_plen >= 0)
        H5Dclose(ds_plen);
    if (rc == FT_OK)
        rc = ft_dataset_finish(&w, err);
    else
        ft_dataset_abort(&w);
    st->rows = done;
    st->unk_tokens = c.unk;
    st->vocab_size = c.map ? map.n : (int32_t)ft_tokenizer_vocab_size(tok);
    ft_vocab_map_free(&map);
    free(x);
    free(tg);
    free(y);
    free(lens);
    free(tlens);
    free(plens);
    ft_ids_free(&ids);
    ft_ids_free(&sids);
    ft_ids_free(&sepids);
    ft_strmap_free(&labels);
    return rc;
}
