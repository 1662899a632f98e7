/* Compact vocabularies (ft_vocab_map in ftune/tokenizer.h, docs/text.md): a small
 * model's embedding and LM head need rows only for the ids a corpus uses; the
 * tokenizer ids outside the map share one UNK id. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/h5util.h"
#include "ftune/tokenizer.h"

#include "tok_internal.h"

void ft_vocab_map_free(ft_vocab_map *m)
{
    free(m->ids);
    free(m->compact);
    memset(m, 0, sizeof *m);
}

/* compact[] from ids[0..n-2]; ids[n-1] (the UNK entry) maps nothing to itself. */
static int fill_compact(ft_vocab_map *m, const char *path, ft_err *err)
{
    m->compact = malloc((size_t)m->ntok * sizeof *m->compact);
    if (!m->compact)
        return ft_fail(err, FT_ERUNTIME, "out of memory");
    for (int32_t i = 0; i < m->ntok; i++)
        m->compact[i] = m->n - 1;
    for (int32_t c = 0; c + 1 < m->n; c++) {
        int32_t id = m->ids[c];
        if (id < 0 || id >= m->ntok)
            return ft_fail(err, FT_EINPUT,
                           "%s: vocab_map[%d] = %d is not an id of the tokenizer (0..%d)", path,
                           (int)c, (int)id, (int)m->ntok - 1);
        if (m->compact[id] != m->n - 1)
            return ft_fail(err, FT_EINPUT, "%s: vocab_map lists tokenizer id %d twice (%d and %d)",
                           path, (int)id, (int)m->compact[id], (int)c);
        m->compact[id] = c;
    }
    int32_t unk = m->ids[m->n - 1];
    if (unk < -1 || unk >= m->ntok)
        return ft_fail(err, FT_EINPUT,
                       "%s: vocab_map[%d] (the UNK entry) = %d: expected -1 or a tokenizer id "
                       "(0..%d)",
                       path, (int)m->n - 1, (int)unk, (int)m->ntok - 1);
    return FT_OK;
}

typedef struct {
    int32_t id;
    uint64_t count;
} id_count;

static int by_count(const void *a, const void *b)
{
    const id_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int ft_vocab_map_build(ft_vocab_map *m, const ft_tokenizer *t, const uint64_t *counts, int limit,
                       const int32_t *extra, int nextra, ft_err *err)
{
    memset(m, 0, sizeof *m);
    size_t ntok = ft_tokenizer_vocab_size(t);
    if (ntok == 0 || ntok > INT32_MAX - 1)
        return ft_fail(err, FT_EINPUT, "tokenizer vocabulary of %zu ids: cannot map", ntok);
    m->ntok = (int32_t)ntok;
    char *keep = calloc(ntok, 1);
    id_count *order = malloc(ntok * sizeof *order);
    int rc = keep && order ? FT_OK : ft_fail(err, FT_ERUNTIME, "out of memory");
    int kept = 0;
    static const int specials[] = {FT_TOK_UNK, FT_TOK_CLS,  FT_TOK_SEP,
                                   FT_TOK_PAD, FT_TOK_MASK, FT_TOK_EOS};
    for (int i = 0; rc == FT_OK && i < (int)(sizeof specials / sizeof *specials) + nextra; i++) {
        int32_t id = i < 6 ? ft_tokenizer_special(t, specials[i]) : extra[i - 6];
        if (id >= 0 && id < m->ntok && !keep[id]) {
            keep[id] = 1;
            kept++;
        }
    }
    if (rc == FT_OK && limit <= kept)
        rc = ft_fail(err, FT_EINPUT,
                     "vocab limit %d: the %d special id%s (always kept) leave no room; expected "
                     "more than %d",
                     limit, kept, kept == 1 ? "" : "s", kept);
    size_t nord = 0;
    for (int32_t id = 0; rc == FT_OK && id < m->ntok; id++)
        if (!keep[id] && counts[id])
            order[nord++] = (id_count){id, counts[id]};
    if (rc == FT_OK) {
        qsort(order, nord, sizeof *order, by_count);
        for (size_t i = 0; i < nord && kept < limit; i++, kept++)
            keep[order[i].id] = 1;
        m->n = kept + 1;
        m->ids = malloc((size_t)m->n * sizeof *m->ids);
        if (!m->ids)
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    }
    if (rc == FT_OK) {
        int32_t c = 0;
        for (int32_t id = 0; id < m->ntok; id++)
            if (keep[id])
                m->ids[c++] = id;
        m->ids[c] = ft_tokenizer_special(t, FT_TOK_UNK);
        rc = fill_compact(m, "vocab map", err);
    }
    free(keep);
    free(order);
    if (rc)
        ft_vocab_map_free(m);
    return rc;
}

int ft_vocab_map_read(ft_vocab_map *m, const char *path, const ft_tokenizer *t, ft_err *err)
{
    memset(m, 0, sizeof *m);
    hid_t f;
    int rc = ft_h5_open_read(path, &f, err);
    if (rc)
        return rc;
    hid_t ds = -1, space = -1, type = -1;
    size_t ntok = ft_tokenizer_vocab_size(t);
    char tbuf[32];
    if (H5Lexists(f, "vocab_map", H5P_DEFAULT) <= 0) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: no vocab_map dataset (expected a file written by 'ftune data "
                     "import-text --vocab-limit')",
                     path);
        goto out;
    }
    ds = H5Dopen2(f, "vocab_map", H5P_DEFAULT);
    space = ds < 0 ? -1 : H5Dget_space(ds);
    type = ds < 0 ? -1 : H5Dget_type(ds);
    if (ds < 0 || space < 0 || type < 0) {
        rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot open vocab_map", path);
        goto out;
    }
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 1)
        H5Sget_simple_extent_dims(space, dims, NULL);
    if (rank != 1 || H5Tget_class(type) != H5T_INTEGER || dims[0] < 2 || dims[0] > ntok + 1) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: vocab_map is %s of rank %d (%llu entries); expected 1-D integers, 2 to "
                     "%zu entries (the tokenizer's %zu ids + UNK)",
                     path, ft_h5_type_str(type, tbuf, sizeof tbuf), rank,
                     (unsigned long long)dims[0], ntok + 1, ntok);
        goto out;
    }
    m->n = (int32_t)dims[0];
    m->ntok = (int32_t)ntok;
    m->ids = malloc((size_t)m->n * sizeof *m->ids);
    if (!m->ids) {
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        goto out;
    }
    if (H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->ids) < 0) {
        rc = ft_h5_fail(err, FT_EINPUT, "%s: cannot read vocab_map", path);
        goto out;
    }
    /* a map made with another vocabulary would silently give other tokens */
    int found = 0;
    long long tv = 0;
    rc = ft_h5_get_int_attr(f, "tokenizer_vocab_size", &found, &tv, err);
    if (rc) {
        ft_err_prefix(err, "%s", path);
        goto out;
    }
    if (found && tv != (long long)ntok) {
        rc = ft_fail(err, FT_EINPUT,
                     "%s: vocab_map was made for a tokenizer of %lld ids; this one has %zu", path,
                     tv, ntok);
        goto out;
    }
    rc = fill_compact(m, path, err);
out:
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (ds >= 0)
        H5Dclose(ds);
    H5Fclose(f);
    if (rc)
        ft_vocab_map_free(m);
    return rc;
}

int32_t ft_vocab_map_id(const ft_vocab_map *m, int32_t tok_id)
{
    return tok_id >= 0 && tok_id < m->ntok ? m->compact[tok_id] : m->n - 1;
}

int ft_vocab_map_decode(const ft_tokenizer *t, const ft_vocab_map *m, const int32_t *ids, size_t n,
                        char **out, size_t *len, ft_err *err)
{
    *out = NULL;
    int32_t *tid = malloc((n ? n : 1) * sizeof *tid);
    ft_buf b = {0};
    int rc = tid ? FT_OK : ft_fail(err, FT_ERUNTIME, "out of memory");
    for (size_t i = 0; rc == FT_OK && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->n)
            rc = ft_fail(err, FT_EINPUT, "id %d is not in the vocab map (0..%d)", (int)ids[i],
                         (int)m->n - 1);
        else
            tid[i] = m->ids[ids[i]];
    }
    /* runs of ids with a tokenizer id decode together (GPT-2 pieces can split a UTF-8
     * character); a UNK without one becomes "<unk>" */
    int wp = ft_tokenizer_kind(t) != FT_TOK_BPE;
    for (size_t i = 0; rc == FT_OK && i < n;) {
        size_t j = i;
        while (j < n && tid[j] >= 0)
            j++;
        if (j > i) {
            char *s;
            size_t sl;
            rc = ft_tokenizer_decode(t, tid + i, j - i, &s, &sl, err);
            if (rc == FT_OK && wp && b.n && ft_buf_put(&b, " ", 1))
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
            if (rc == FT_OK && ft_buf_put(&b, s, sl))
                rc = ft_fail(err, FT_ERUNTIME, "out of memory");
            free(s);
        }
        if (rc == FT_OK && j < n &&
            ft_buf_put(&b, wp && b.n ? " <unk>" : "<unk>", wp && b.n ? 6 : 5))
            rc = ft_fail(err, FT_ERUNTIME, "out of memory");
        i = j < n ? j + 1 : j;
    }
    if (rc == FT_OK && ft_buf_put(&b, "", 0))
        rc = ft_fail(err, FT_ERUNTIME, "out of memory");
    free(tid);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    if (len)
        *len = b.n;
    return FT_OK;
}
