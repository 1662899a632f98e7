/* Classification metrics from one array of double counters (see metrics.h),
 * so ranks sum them with one all-reduce and the summary is computed once.
 *
 * Conventions follow scikit-learn's defaults:
 *  - per class: precision = tp / predicted, recall = tp / support, and any
 *    0/0 is 0 (zero_division=0), so F1 is 0 as well;
 *  - macro-F1 is the unweighted mean of F1 over the classes present in the
 *    labels or the predictions (f1_score(average="macro") with labels=None).
 *    Classes absent from both have no defined F1 and would only drag the mean
 *    towards 0 on a small evaluation set; they are still listed per class. */
#include "ftune/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/err.h"

#define HDR 3 /* samples, loss sum, top-5 hits */

int ft_metrics_init(ft_metrics *m, int classes)
{
    memset(m, 0, sizeof *m);
    if (classes < 1)
        return FT_EINPUT;
    size_t cc;
    if (!ft_mul_size((size_t)classes, (size_t)classes, &cc) || cc > SIZE_MAX - HDR)
        return FT_ERUNTIME;
    m->counts = calloc(cc + HDR, sizeof(double));
    if (!m->counts)
        return FT_ERUNTIME;
    m->classes = classes;
    m->ncounts = cc + HDR;
    return FT_OK;
}

void ft_metrics_reset(ft_metrics *m)
{
    if (m->counts)
        memset(m->counts, 0, m->ncounts * sizeof(double));
}

void ft_metrics_free(ft_metrics *m)
{
    free(m->counts);
    m->counts = NULL;
    m->ncounts = 0;
}

/* Position of class `label` when logits are sorted descending, ties broken
 * by lower index first (the same rule as the argmax, so rank 0 == top-1). */
static int rank_of(const float *x, int classes, int label)
{
    const float v = x[label];
    int r = 0;
    for (int j = 0; j < classes; j++) {
        const float xj = x[j];
        if (xj > v || (xj == v && j < label))
            r++;
    }
    return r;
}

void ft_metrics_add(ft_metrics *m, const float *logits, const int *labels, const float *losses,
                    int n)
{
    const int C = m->classes;
    double *conf = m->counts + HDR;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * C;
        const int y = labels[i];
        /* Rejecting bad labels is the dataset's job; here just never index out of bounds. */
        if (y < 0 || y >= C)
            continue;
        int pred = 0;
        for (int j = 1; j < C; j++)
            if (x[j] > x[pred])
                pred = j;
        m->counts[0] += 1.0;
        if (losses)
            m->counts[1] += losses[i];
        if (C > 5 && rank_of(x, C, y) < 5)
            m->counts[2] += 1.0;
        conf[(size_t)y * C + pred] += 1.0;
    }
}

typedef struct class_stats {
    double precision, recall, f1, support, predicted;
} class_stats;

static class_stats class_at(const ft_metrics *m, int k)
{
    const int C = m->classes;
    const double *conf = m->counts + HDR;
    class_stats s = {0};
    for (int j = 0; j < C; j++) {
        s.support += conf[(size_t)k * C + j];
        s.predicted += conf[(size_t)j * C + k];
    }
    const double tp = conf[(size_t)k * C + k];
    s.precision = s.predicted > 0 ? tp / s.predicted : 0.0;
    s.recall = s.support > 0 ? tp / s.support : 0.0;
    /* 2tp / (2tp + fp + fn): equal to the harmonic mean, and 0 when tp == 0. */
    const double den = s.support + s.predicted;
    s.f1 = den > 0 ? 2.0 * tp / den : 0.0;
    return s;
}

ft_metrics_summary ft_metrics_summarize(const ft_metrics *m)
{
    ft_metrics_summary s = {0};
    const int C = m->classes;
    if (!m->counts || C < 1) {
        s.top5 = -1.0;
        return s;
    }
    const double *conf = m->counts + HDR;
    s.samples = m->counts[0];
    double correct = 0.0, f1_sum = 0.0;
    int present = 0;
    for (int k = 0; k < C; k++) {
        correct += conf[(size_t)k * C + k];
        class_stats cs = class_at(m, k);
        if (cs.support > 0 || cs.predicted > 0) {
            f1_sum += cs.f1;
            present++;
        }
    }
    if (s.samples > 0) {
        s.loss = m->counts[1] / s.samples;
        s.accuracy = correct / s.samples;
    }
    s.top5 = C > 5 ? (s.samples > 0 ? m->counts[2] / s.samples : 0.0) : -1.0;
    s.macro_f1 = present ? f1_sum / present : 0.0;
    return s;
}

double ft_metrics_value(const ft_metrics_summary *s, const char *name)
{
    if (!strcmp(name, "accuracy"))
        return s->accuracy;
    if (!strcmp(name, "macro_f1"))
        return s->macro_f1;
    if (!strcmp(name, "loss"))
        return s->loss;
    if (!strcmp(name, "top5"))
        return s->top5;
    if (!strcmp(name, "samples"))
        return s->samples;
    return NAN;
}

/* A matrix of thousands of classes is unreadable on a terminal; the JSON
 * output always has it. */
#define PRINT_CONFUSION_MAX 64

void ft_metrics_print(const ft_metrics *m, FILE *f)
{
    const int C = m->classes;
    const double *conf = m->counts + HDR;
    ft_metrics_summary s = ft_metrics_summarize(m);

    fprintf(f, "%7s %10s %10s %10s %10s\n", "class", "precision", "recall", "f1", "support");
    for (int k = 0; k < C; k++) {
        class_stats cs = class_at(m, k);
        fprintf(f, "%7d %10.4f %10.4f %10.4f %10.0f\n", k, cs.precision, cs.recall, cs.f1,
                cs.support);
    }
    fprintf(f, "\n%-9s %.0f\n", "samples", s.samples);
    fprintf(f, "%-9s %.4f\n", "accuracy", s.accuracy);
    fprintf(f, "%-9s %.4f\n", "macro_f1", s.macro_f1);
    fprintf(f, "%-9s %.4f\n", "loss", s.loss);
    if (s.top5 >= 0)
        fprintf(f, "%-9s %.4f\n", "top5", s.top5);
    else
        fprintf(f, "%-9s n/a (%d classes)\n", "top5", C);

    if (C > PRINT_CONFUSION_MAX) {
        fprintf(f, "\nconfusion matrix omitted (%d classes; the JSON output has it)\n", C);
        return;
    }
    /* Column width fits the largest count and the largest class index. */
    double maxv = C - 1;
    for (size_t i = 0; i < (size_t)C * C; i++)
        if (conf[i] > maxv)
            maxv = conf[i];
    int w = snprintf(NULL, 0, "%.0f", maxv) + 1;
    if (w < 4)
        w = 4;
    fprintf(f, "\nconfusion matrix (rows = true class, columns = predicted)\n%*s", w, "");
    for (int j = 0; j < C; j++)
        fprintf(f, "%*d", w, j);
    fputc('\n', f);
    for (int k = 0; k < C; k++) {
        fprintf(f, "%*d", w, k);
        for (int j = 0; j < C; j++)
            fprintf(f, "%*.0f", w, conf[(size_t)k * C + j]);
        fputc('\n', f);
    }
}

/* JSON has no NaN or Infinity: a diverged loss is written as null. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

void ft_metrics_json(const ft_metrics *m, FILE *f)
{
    const int C = m->classes;
    const double *conf = m->counts + HDR;
    ft_metrics_summary s = ft_metrics_summarize(m);

    fprintf(f, "{\"samples\":%.0f,\"loss\":", s.samples);
    json_num(f, s.loss);
    fputs(",\"accuracy\":", f);
    json_num(f, s.accuracy);
    fputs(",\"top5\":", f);
    if (s.top5 >= 0)
        json_num(f, s.top5);
    else
        fputs("null", f);
    fputs(",\"macro_f1\":", f);
    json_num(f, s.macro_f1);
    fputs(",\"per_class\":[", f);
    for (int k = 0; k < C; k++) {
        class_stats cs = class_at(m, k);
        fprintf(f, "%s{\"class\":%d,\"precision\":", k ? "," : "", k);
        json_num(f, cs.precision);
        fputs(",\"recall\":", f);
        json_num(f, cs.recall);
        fputs(",\"f1\":", f);
        json_num(f, cs.f1);
        fprintf(f, ",\"support\":%.0f}", cs.support);
    }
    fputs("],\"confusion\":[", f);
    for (int k = 0; k < C; k++) {
        fputs(k ? ",[" : "[", f);
        for (int j = 0; j < C; j++)
            fprintf(f, "%s%.0f", j ? "," : "", conf[(size_t)k * C + j]);
        fputc(']', f);
    }
    fputs("]}\n", f);
}
