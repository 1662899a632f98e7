/* CSV with numeric feature columns and one integer label column. Two passes
 * over the file (validate and count, then convert), so only a chunk of rows
 * is ever in memory. Output: inputs [N, F] float32, labels int32. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"

#define ROWS_PER_CHUNK 4096
#define CHUNK_VALUES (1 << 20)
#define MAX_LABEL ((1 << 24) - 1)

typedef struct csv {
    const char *path;
    FILE *f;
    char *line;
    size_t cap;
    unsigned long lineno;
    char delim;
    int ncols;     /* fields per row, from the first data row */
    int label_col; /* resolved (0-based) */
    int header;    /* the first non-blank line is a header */
    char **names;  /* header fields, for messages (NULL without header) */
    char **fields; /* split line, pointers into line */
    int nfields, fields_cap;
} csv;

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/* Splits c->line in place on c->delim; trims blanks and one pair of quotes. */
static int split(csv *c, ft_err *err)
{
    c->nfields = 0;
    char *s = c->line;
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
    for (;;) {
        if (c->nfields == c->fields_cap) {
            int cap = c->fields_cap ? 2 * c->fields_cap : 64;
            char **nf = realloc(c->fields, (size_t)cap * sizeof *nf);
            if (!nf)
                return ft_fail(err, FT_ERUNTIME, "out of memory splitting %s:%lu", c->path,
                               c->lineno);
            c->fields = nf;
            c->fields_cap = cap;
        }
        char *end = strchr(s, c->delim);
        if (end)
            *end = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            s[--n] = '\0';
        if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
            s[n - 1] = '\0';
            s++;
        }
        c->fields[c->nfields++] = s;
        if (!end)
            break;
        s = end + 1;
    }
    return FT_OK;
}

/* Next non-blank line into c->line; 0 at end of file, 1 if a line was read. */
static int next_line(csv *c, ft_err *err)
{
    for (;;) {
        errno = 0;
        ssize_t r = getline(&c->line, &c->cap, c->f);
        if (r < 0) {
            if (ferror(c->f))
                return -ft_fail(err, FT_EINPUT, "%s: read error: %s", c->path, strerror(errno));
            return 0;
        }
        c->lineno++;
        if (!is_blank(c->line))
            return 1;
    }
}

static int parse_float(const char *s, float *out)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || fabs(v) > 3.4e38)
        return 0;
    *out = (float)v;
    return 1;
}

/* Integer label; "3.0" is accepted (pandas writes floats for int columns with NaN). */
static int parse_label(const char *s, long *out)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end) {
        double d = strtod(s, &end);
        if (*end || !isfinite(d) || d != floor(d) || fabs(d) > 1e9)
            return 0;
        v = (long)d;
    } else if (errno) {
        return 0;
    }
    *out = v;
    return 1;
}

static const char *col_name(const csv *c, int col, char *buf, size_t len)
{
    if (c->names && col < c->ncols)
        snprintf(buf, len, " (\"%s\")", c->names[col]);
    else
        buf[0] = '\0';
    return buf;
}

/* A text field in the first line read as data is most likely a header. */
static const char *header_hint(const csv *c)
{
    return !c->header && c->lineno == 1 ? " (is line 1 a header?)" : "";
}

/* Validates the split line; writes features (F floats) and the raw label. */
static int parse_row(csv *c, float *feat, long *label, ft_err *err)
{
    if (c->nfields != c->ncols)
        return ft_fail(err, FT_EINPUT, "%s:%lu: %d columns, expected %d like the first row",
                       c->path, c->lineno, c->nfields, c->ncols);
    char nb[160];
    int k = 0;
    for (int j = 0; j < c->ncols; j++) {
        const char *s = c->fields[j];
        if (j == c->label_col) {
            if (!parse_label(s, label))
                return ft_fail(err, FT_EINPUT,
                               "%s:%lu:%d: label column %d%s: expected an integer class index, "
                               "got \"%.40s\"%s",
                               c->path, c->lineno, j + 1, j + 1, col_name(c, j, nb, sizeof nb), s,
                               header_hint(c));
            if (*label < 0 || *label > MAX_LABEL)
                return ft_fail(err, FT_EINPUT,
                               "%s:%lu:%d: label column %d%s: label %ld outside [0, %d]", c->path,
                               c->lineno, j + 1, j + 1, col_name(c, j, nb, sizeof nb), *label,
                               MAX_LABEL);
            continue;
        }
        float v;
        if (!parse_float(s, &v))
            return ft_fail(
                err, FT_EINPUT, "%s:%lu:%d: column %d%s: expected a finite number, got \"%.40s\"%s",
                c->path, c->lineno, j + 1, j + 1, col_name(c, j, nb, sizeof nb), s, header_hint(c));
        if (feat)
            feat[k] = v;
        k++;
    }
    return FT_OK;
}

static int all_numeric(const csv *c)
{
    for (int j = 0; j < c->nfields; j++) {
        float v;
        if (!parse_float(c->fields[j], &v))
            return 0;
    }
    return 1;
}

/* Reads the first non-blank line: delimiter, header, column count. On
 * return c->line holds the first data row (split) or *eof is set. */
static int start(csv *c, const ft_import_opts *o, int *eof, ft_err *err)
{
    *eof = 0;
    int r = next_line(c, err);
    if (r < 0)
        return -r;
    if (r == 0)
        return ft_fail(err, FT_EINPUT, "%s: empty file", c->path);
    /* The first of ',', ';', tab found on the first line is the delimiter. */
    const char *p = strpbrk(c->line, ",;\t");
    c->delim = p ? *p : ',';
    int rc = split(c, err);
    if (rc)
        return rc;
    int want = o ? o->header : -1;
    c->header = want < 0 ? !all_numeric(c) : want;
    if (c->header) {
        free(c->names);
        c->names = NULL;
        /* Keep the names: the line buffer is reused, so copy them. */
        size_t total = 0;
        for (int j = 0; j < c->nfields; j++)
            total += strlen(c->fields[j]) + 1;
        char **names = malloc((size_t)c->nfields * sizeof *names + total);
        if (!names)
            return ft_fail(err, FT_ERUNTIME, "out of memory");
        char *dst = (char *)(names + c->nfields);
        for (int j = 0; j < c->nfields; j++) {
            names[j] = dst;
            dst = stpcpy(dst, c->fields[j]) + 1;
        }
        c->names = names;
        int hdr_cols = c->nfields;
        r = next_line(c, err);
        if (r < 0)
            return -r;
        if (r == 0) {
            *eof = 1;
            return FT_OK;
        }
        if ((rc = split(c, err)) != 0)
            return rc;
        if (c->nfields != hdr_cols)
            return ft_fail(err, FT_EINPUT, "%s:%lu: %d columns, but the header has %d", c->path,
                           c->lineno, c->nfields, hdr_cols);
    }
    c->ncols = c->nfields;
    int lc = o ? o->label_column : -1;
    if (lc < 0)
        lc = c->ncols - 1;
    if (lc >= c->ncols)
        return ft_fail(err, FT_EINPUT, "%s: label column %d (0-based) but the file has %d columns",
                       c->path, lc, c->ncols);
    if (c->ncols < 2)
        return ft_fail(err, FT_EINPUT,
                       "%s:%lu: only 1 column; expected feature columns and a label column",
                       c->path, c->lineno);
    c->label_col = lc;
    return FT_OK;
}

static int keep_index(const ft_import_opts *o, long label)
{
    if (!o || o->nkeep == 0)
        return (int)label;
    for (int i = 0; i < o->nkeep; i++)
        if (o->keep[i] == label)
            return i;
    return -1;
}

static void csv_close(csv *c)
{
    if (c->f)
        fclose(c->f);
    free(c->line);
    free(c->names);
    free(c->fields);
}

int ft_import_csv(const char *path, const char *out, const ft_import_opts *o, uint64_t *written,
                  ft_err *err)
{
    if (written)
        *written = 0;
    for (int i = 0; o && i < o->nkeep; i++) {
        if (o->keep[i] < 0)
            return ft_fail(err, FT_EINPUT, "class %d: classes are indices >= 0", o->keep[i]);
        for (int j = 0; j < i; j++)
            if (o->keep[j] == o->keep[i])
                return ft_fail(err, FT_EINPUT, "class %d is listed twice", o->keep[i]);
    }
    float scale = o && o->scale != 0.0f ? o->scale : 1.0f;
    csv c = {.path = path};
    c.f = fopen(path, "r");
    if (!c.f)
        return ft_fail(err, FT_EINPUT, "%s: cannot open: %s", path, strerror(errno));

    /* Pass 1: validate every row, count the kept ones, find the label range. */
    int eof, rc = start(&c, o, &eof, err);
    uint64_t kept = 0;
    long maxlab = -1;
    for (int more = !eof; !rc && more;) {
        long label;
        if ((rc = parse_row(&c, NULL, &label, err)) != 0)
            break;
        if (keep_index(o, label) >= 0)
            kept++;
        if (label > maxlab)
            maxlab = label;
        int r = next_line(&c, err);
        if (r < 0)
            rc = -r;
        else if ((more = r) && (rc = split(&c, err)) != 0)
            break;
    }
    if (!rc && maxlab < 0)
        rc = ft_fail(err, FT_EINPUT, "%s: no data rows", path);
    if (!rc && kept == 0)
        rc = ft_fail(err, FT_EINPUT, "%s: no row has one of the selected classes", path);
    if (rc) {
        csv_close(&c);
        return rc;
    }

    /* Pass 2: convert in chunks of rows. */
    int nfeat = c.ncols - 1;
    int classes = o && o->nkeep ? o->nkeep : (int)maxlab + 1;
    ft_shape sample = ft_shape1(nfeat);
    /* a chunk of at most ~1M values (one row at least), however wide the rows are */
    int per_chunk = nfeat > CHUNK_VALUES / ROWS_PER_CHUNK ? CHUNK_VALUES / nfeat : ROWS_PER_CHUNK;
    if (per_chunk < 1)
        per_chunk = 1;
    float *x = ft_alloc_floats((size_t)per_chunk * (size_t)nfeat, err);
    int *y = malloc((size_t)per_chunk * sizeof *y);
    ft_dataset_writer w;
    if (!x || !y)
        rc =
            ft_fail(err, FT_ERUNTIME, "out of memory for %d rows of %d features", per_chunk, nfeat);
    else
        rc = ft_dataset_create(&w, out, kept, &sample, classes, err);
    if (!rc) {
        rewind(c.f);
        c.lineno = 0;
        rc = start(&c, o, &eof, err);
        int m = 0;
        for (int more = !eof; !rc && more;) {
            long label;
            rc = parse_row(&c, x + (size_t)m * (size_t)nfeat, &label, err);
            int cls = rc ? -1 : keep_index(o, label);
            if (cls >= 0) {
                for (int k = 0; k < nfeat; k++)
                    x[(size_t)m * (size_t)nfeat + (size_t)k] *= scale;
                y[m++] = cls;
            }
            int r = rc ? 0 : next_line(&c, err);
            if (r < 0)
                rc = -r;
            else if (!rc && (more = r) != 0)
                rc = split(&c, err);
            if (!rc && (m == per_chunk || !more)) {
                rc = ft_dataset_append(&w, x, y, (uint64_t)m, err);
                m = 0;
            }
        }
        /* finish checks the count, so a file changed between passes fails. */
        if (!rc && (rc = ft_dataset_finish(&w, err)) == 0 && written)
            *written = kept;
        else if (rc)
            ft_dataset_abort(&w);
    }
    ft_free_floats(x);
    free(y);
    csv_close(&c);
    return rc;
}
