/* ftune report RUN... [--json] [--metric accuracy|macro_f1|loss]
 *
 * One table of several runs (a sweep, a job array): for each run directory
 * the key hyper-parameters from the stored config and the final evaluation,
 * sorted by a metric. Single process, no MPI. Sources, in order:
 *   - RUN/model.h5: root attributes "config" (the run's full config) and
 *     "metrics" (JSON of the final evaluation);
 *   - RUN/metrics.jsonl: the eval lines (the last "final" one when model.h5
 *     has no metrics, the best value over all, the step count), and the last
 *     train line for a run that has not finished;
 *   - the newest checkpoint or best.h5 for the config of an unfinished run.
 * A RUN may also be a model file (its directory is the run directory). */
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ftune/config.h"
#include "ftune/h5io.h"
#include "ftune/h5util.h"

#include "commands.h"
#include "rundir.h"

static const char report_usage[] =
    "usage: ftune report RUN... [--json] [--metric accuracy|macro_f1|loss]\n"
    "\n"
    "Tabulates the final results of several runs, e.g. the run directories of a sweep:\n"
    "  ftune report runs/sweep-1234/*\n"
    "For each run: its status, optimizer and learning rate, freeze.upto, global batch,\n"
    "epochs, optimizer steps taken, the final accuracy, macro-F1 and loss, and the best\n"
    "value of the metric over the run's evaluations (with its step). Rows are sorted by the\n"
    "final value of the metric, best first; runs without results come last.\n"
    "\n"
    "  RUN            a run directory (run.dir) or a model file in one\n"
    "  --metric NAME  accuracy (default), macro_f1 or loss (lower is better)\n"
    "  --json         one JSON array, one object per run (null where unknown)\n"
    "  -h, --help     show this help\n"
    "\n"
    "Reads RUN/model.h5 (config and final metrics), RUN/metrics.jsonl and, for an\n"
    "unfinished run, its newest checkpoint. Exit status 2 when a RUN does not exist or\n"
    "no run has results (the table of the others is still printed).\n";

/* ---- a small reader for the JSON that ftune itself writes ---------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* End of the string starting at the opening quote p (just past the closing quote). */
static const char *skip_string(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : p;
}

/* End of the JSON value at p. */
static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/* The raw text of member `key` of the object at json (strings without their quotes;
 * no unescaping: ftune's values need none). malloc'd, or NULL when absent. */
static char *json_member(const char *json, const char *key)
{
    if (!json)
        return NULL;
    const char *p = skip_ws(json);
    if (*p != '{')
        return NULL;
    p++;
    size_t klen = strlen(key);
    for (;;) {
        p = skip_ws(p);
        if (*p != '"')
            return NULL;
        const char *k = p + 1, *kend = skip_string(p);
        p = skip_ws(kend);
        if (*p != ':')
            return NULL;
        p = skip_ws(p + 1);
        const char *v = p, *vend = skip_value(p);
        if (vend == v)
            return NULL;
        if ((size_t)(kend - 1 - k) == klen && !strncmp(k, key, klen)) {
            if (*v == '"') {
                v++;
                vend--;
            }
            size_t n = (size_t)(vend - v);
            char *out = malloc(n + 1);
            if (out) {
                memcpy(out, v, n);
                out[n] = '\0';
            }
            return out;
        }
        p = skip_ws(vend);
        if (*p != ',')
            return NULL;
        p++;
    }
}

/* A number member (NaN when absent or null). */
static double json_number(const char *json, const char *key)
{
    char *v = json_member(json, key);
    double d = NAN;
    if (v && *v && strcmp(v, "null") != 0) {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (!errno && end != v)
            d = x;
    }
    free(v);
    return d;
}

/* ---- one run --------------------------------------------------------------------------- */

enum { M_ACCURACY, M_MACRO_F1, M_LOSS };
static const char *const metric_names[] = {"accuracy", "macro_f1", "loss"};

typedef struct run {
    char name[1024]; /* as given (without a trailing slash) */
    char dir[1024];
    const char *status; /* done | partial | no results */
    /* from the config */
    int have_cfg;
    char optimizer[16];
    double lr;
    char freeze[128];
    int batch, epochs;
    long max_steps;
    /* results */
    long steps; /* -1 unknown */
    double final[3];
    double best;
    long best_step;
} run;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* freeze.upto (the config struct keeps the resulting per-layer flags, not the name) */
static void read_freeze(run *r, const char *text, const ft_config *c)
{
    config_t lc;
    config_init(&lc);
    const char *upto = NULL;
    if (config_read_string(&lc, text) == CONFIG_TRUE &&
        config_lookup_string(&lc, "freeze.upto", &upto) == CONFIG_TRUE && upto && *upto) {
        snprintf(r->freeze, sizeof r->freeze, "%s", upto);
    } else {
        int frozen = 0;
        for (int i = 0; i < c->nlayers; i++)
            frozen += c->layers[i].frozen != 0;
        if (frozen)
            snprintf(r->freeze, sizeof r->freeze, "%d layer%s", frozen, frozen == 1 ? "" : "s");
        else
            snprintf(r->freeze, sizeof r->freeze, "-");
    }
    config_destroy(&lc);
}

static void read_config(run *r, const char *file)
{
    char *text = NULL;
    ft_err err = {0};
    ft_config c;
    memset(&c, 0, sizeof c);
    if (ft_load_config_text(file, &text, &err) == FT_OK &&
        ft_config_load_string(&c, text, file, &err) == FT_OK) {
        r->have_cfg = 1;
        snprintf(r->optimizer, sizeof r->optimizer, "%s",
                 c.optim.type == FT_OPT_ADAMW ? "adamw" : "sgd");
        r->lr = c.optim.lr;
        r->batch = c.batch_size;
        r->epochs = c.epochs;
        r->max_steps = c.max_steps;
        read_freeze(r, text, &c);
    } else {
        fprintf(stderr, "ftune report: %s: cannot read the stored config: %s\n", r->name, err.msg);
    }
    ft_config_free(&c);
    free(text);
}

/* The "metrics" root attribute of a model file (malloc'd JSON or NULL). */
static char *read_metrics_attr(const char *file)
{
    hid_t f;
    ft_err err = {0};
    char *json = NULL;
    int found = 0;
    if (ft_h5_open_read(file, &f, &err) != FT_OK)
        return NULL;
    if (ft_h5_get_str_attr(f, "metrics", &found, &json, &err) != FT_OK || !found) {
        free(json);
        json = NULL;
    }
    H5Fclose(f);
    return json;
}

static int better(int metric, double a, double b)
{
    if (isnan(b))
        return !isnan(a);
    return metric == M_LOSS ? a < b : a > b;
}

/* metrics.jsonl: the last final eval, the best value of `metric`, the steps taken. */
static void read_jsonl(run *r, int metric, char **final_json)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    long last_train = -1;
    while (getline(&line, &cap, f) > 0) {
        char *type = json_member(line, "type");
        if (type && !strcmp(type, "eval")) {
            char *m = json_member(line, "metrics");
            double step = json_number(line, "step");
            double v = json_number(m, metric_names[metric]);
            if (!isnan(v) && step > 0 && better(metric, v, r->best)) {
                r->best = v;
                r->best_step = (long)step;
            }
            char *when = json_member(line, "when");
            if (when && !strcmp(when, "final")) {
                free(*final_json);
                *final_json = m;
                m = NULL;
                r->steps = (long)step;
            }
            free(when);
            free(m);
        } else if (type && !strcmp(type, "train")) {
            double step = json_number(line, "step");
            if (!isnan(step))
                last_train = (long)step;
        }
        free(type);
    }
    free(line);
    fclose(f);
    if (r->steps < 0)
        r->steps = last_train;
}

static int read_run(run *r, const char *arg, int metric)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", arg);
    size_t n = strlen(r->name);
    while (n > 1 && r->name[n - 1] == '/')
        r->name[--n] = '\0';
    char model[1100];
    if (is_file(r->name)) {
        snprintf(model, sizeof model, "%s", r->name);
        snprintf(r->dir, sizeof r->dir, "%s", r->name);
        char *slash = strrchr(r->dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(r->dir, sizeof r->dir, ".");
    } else if (is_dir(r->name)) {
        snprintf(r->dir, sizeof r->dir, "%s", r->name);
        snprintf(model, sizeof model, "%s/model.h5", r->dir);
    } else {
        fprintf(stderr, "ftune report: %s: no such run directory or model file\n", r->name);
        return 2;
    }
    r->steps = -1;
    r->best = NAN;
    r->best_step = -1;
    for (int k = 0; k < 3; k++)
        r->final[k] = NAN;

    char *final_json = NULL;
    int have_model = is_file(model);
    if (have_model) {
        read_config(r, model);
        final_json = read_metrics_attr(model);
    } else {
        /* an unfinished run: the config of its newest checkpoint, else best.h5 */
        static char ckpts[1][1024];
        char best[1100];
        snprintf(best, sizeof best, "%s/best.h5", r->dir);
        if (ft_rundir_list_ckpts(r->dir, ckpts, 1) == 1)
            read_config(r, ckpts[0]);
        else if (is_file(best))
            read_config(r, best);
    }
    char *jsonl_final = NULL;
    read_jsonl(r, metric, &jsonl_final);
    if (!final_json) {
        final_json = jsonl_final;
        jsonl_final = NULL;
    }
    free(jsonl_final);
    for (int k = 0; k < 3; k++)
        r->final[k] = json_number(final_json, metric_names[k]);
    free(final_json);
    if (isnan(r->best) && !isnan(r->final[metric])) {
        r->best = r->final[metric];
        r->best_step = r->steps;
    }
    int any = !isnan(r->final[0]) || !isnan(r->final[1]) || !isnan(r->final[2]);
    r->status = have_model ? "done" : any || r->steps >= 0 ? "partial" : "no results";
    if (!have_model && !any)
        fprintf(stderr, "ftune report: %s: no model.h5 and no final evaluation yet\n", r->name);
    else if (have_model && !any)
        fprintf(stderr,
                "ftune report: %s: no evaluation results (was data.eval set for this run?)\n",
                r->name);
    return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

static int g_metric;

static int cmp_runs(const void *pa, const void *pb)
{
    const run *a = pa, *b = pb;
    double x = a->final[g_metric], y = b->final[g_metric];
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    if (x == y)
        return strcmp(a->name, b->name);
    return better(g_metric, x, y) ? -1 : 1;
}

static void fmt_num(char *buf, size_t len, double v, const char *fmt)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, fmt, v);
}

#define NCOL 12
#define CELL 160

static void print_table(const run *runs, int n, int metric)
{
    char best_head[32];
    snprintf(best_head, sizeof best_head, "best %s", metric_names[metric]);
    const char *heads[NCOL] = {"run",    "status", "optimizer", "lr",       "freeze", "batch",
                               "epochs", "steps",  "accuracy",  "macro-F1", "loss",   best_head};
    /* numbers right-aligned, text left-aligned */
    static const int right[NCOL] = {0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0};
    char(*cells)[NCOL][CELL] = calloc((size_t)n, sizeof *cells);
    if (!cells)
        return;
    int w[NCOL];
    for (int c = 0; c < NCOL; c++)
        w[c] = (int)strlen(heads[c]);
    for (int i = 0; i < n; i++) {
        const run *r = &runs[i];
        char(*row)[CELL] = cells[i];
        snprintf(row[0], CELL, "%s", r->name);
        snprintf(row[1], CELL, "%s", r->status);
        if (r->have_cfg) {
            snprintf(row[2], CELL, "%s", r->optimizer);
            snprintf(row[3], CELL, "%g", r->lr);
            snprintf(row[4], CELL, "%s", r->freeze);
            snprintf(row[5], CELL, "%d", r->batch);
            if (r->max_steps > 0)
                snprintf(row[6], CELL, "%d (max %ld steps)", r->epochs, r->max_steps);
            else
                snprintf(row[6], CELL, "%d", r->epochs);
        } else {
            for (int c = 2; c <= 6; c++)
                snprintf(row[c], CELL, "?");
        }
        if (r->steps >= 0)
            snprintf(row[7], CELL, "%ld", r->steps);
        else
            snprintf(row[7], CELL, "-");
        fmt_num(row[8], CELL, r->final[M_ACCURACY], "%.4f");
        fmt_num(row[9], CELL, r->final[M_MACRO_F1], "%.4f");
        fmt_num(row[10], CELL, r->final[M_LOSS], "%.4f");
        if (isnan(r->best))
            snprintf(row[11], CELL, "-");
        else if (r->best_step >= 0)
            snprintf(row[11], CELL, "%.4f @%ld", r->best, r->best_step);
        else
            snprintf(row[11], CELL, "%.4f", r->best);
        for (int c = 0; c < NCOL; c++) {
            int l = (int)strlen(row[c]);
            if (l > w[c])
                w[c] = l;
        }
    }
    for (int i = -1; i < n; i++) {
        for (int c = 0; c < NCOL; c++) {
            const char *t = i < 0 ? heads[c] : cells[i][c];
            if (c == NCOL - 1)
                printf("  %s", t);
            else
                printf(right[c] ? "%s%*s" : "%s%-*s", c ? "  " : "", w[c], t);
        }
        putchar('\n');
    }
    free(cells);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* digits: 7 for values that were float32 (the config's lr), 10 for the metrics */
static void json_num(const char *key, double v, int digits)
{
    printf(",\"%s\":", key);
    if (isnan(v))
        fputs("null", stdout);
    else
        printf("%.*g", digits, v);
}

static void print_json(const run *runs, int n, int metric)
{
    putchar('[');
    for (int i = 0; i < n; i++) {
        const run *r = &runs[i];
        fputs(i ? ",\n{\"run\":" : "\n{\"run\":", stdout);
        json_str(r->name);
        fputs(",\"status\":", stdout);
        json_str(r->status);
        if (r->have_cfg) {
            fputs(",\"optimizer\":", stdout);
            json_str(r->optimizer);
            json_num("lr", r->lr, 7);
            fputs(",\"freeze_upto\":", stdout);
            json_str(r->freeze);
            printf(",\"batch_size\":%d,\"epochs\":%d,\"max_steps\":%ld", r->batch, r->epochs,
                   r->max_steps);
        } else {
            fputs(",\"optimizer\":null,\"lr\":null,\"freeze_upto\":null,\"batch_size\":null,"
                  "\"epochs\":null,\"max_steps\":null",
                  stdout);
        }
        if (r->steps >= 0)
            printf(",\"steps\":%ld", r->steps);
        else
            fputs(",\"steps\":null", stdout);
        json_num("accuracy", r->final[M_ACCURACY], 10);
        json_num("macro_f1", r->final[M_MACRO_F1], 10);
        json_num("loss", r->final[M_LOSS], 10);
        printf(",\"best_metric\":\"%s\"", metric_names[metric]);
        json_num("best", r->best, 10);
        if (r->best_step >= 0)
            printf(",\"best_step\":%ld}", r->best_step);
        else
            fputs(",\"best_step\":null}", stdout);
    }
    fputs(n ? "\n]\n" : "]\n", stdout);
}

int cmd_report(int argc, char **argv)
{
    int json = 0, metric = M_ACCURACY, nruns = 0, options = 1;
    const char **names = calloc((size_t)(argc > 0 ? argc : 1), sizeof *names);
    if (!names)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(report_usage, stdout);
            free(names);
            return 0;
        } else if (options && !strcmp(a, "--json")) {
            json = 1;
        } else if (options && (!strcmp(a, "--metric") || !strncmp(a, "--metric=", 9))) {
            const char *m = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
            metric = -1;
            for (int k = 0; m && k < 3; k++)
                if (!strcmp(m, metric_names[k]) || (k == M_MACRO_F1 && !strcmp(m, "macro-f1")))
                    metric = k;
            if (metric < 0) {
                fprintf(stderr,
                        "ftune report: --metric needs accuracy, macro_f1 or loss (got '%s')\n",
                        m ? m : "");
                free(names);
                return 2;
            }
        } else if (options && !strcmp(a, "--")) {
            options = 0;
        } else if (options && a[0] == '-' && a[1]) {
            fprintf(stderr, "ftune report: unknown option '%s' (see 'ftune report --help')\n", a);
            free(names);
            return 2;
        } else {
            names[nruns++] = a;
        }
    }
    if (nruns == 0) {
        fputs("ftune report: no run given\n", stderr);
        fputs(report_usage, stderr);
        free(names);
        return 2;
    }
    ft_h5_quiet();
    run *runs = calloc((size_t)nruns, sizeof *runs);
    if (!runs) {
        free(names);
        return 1;
    }
    int n = 0, with_results = 0, missing = 0;
    for (int i = 0; i < nruns; i++) {
        if (read_run(&runs[n], names[i], metric)) {
            missing++;
            continue;
        }
        const run *r = &runs[n++];
        with_results += !isnan(r->final[0]) || !isnan(r->final[1]) || !isnan(r->final[2]);
    }
    g_metric = metric;
    qsort(runs, (size_t)n, sizeof *runs, cmp_runs);
    if (json)
        print_json(runs, n, metric);
    else if (n)
        print_table(runs, n, metric);
    fflush(stdout);
    free(runs);
    free(names);
    if (!with_results) {
        fputs("ftune report: no run has results\n", stderr);
        return 2;
    }
    return missing ? 2 : 0;
}
