/* Classification metrics. All counters live in one double array so that
 * ranks can sum them with a single all-reduce (exact for counts < 2^53). */
#ifndef FTUNE_METRICS_H
#define FTUNE_METRICS_H

#include <stdio.h>

typedef struct ft_metrics {
    int classes;
    /* counts layout: [0] samples, [1] loss sum, [2] top-5 hits,
     * [3 .. 3 + C*C) confusion matrix, row = true class, column = predicted */
    double *counts;
    size_t ncounts;
} ft_metrics;

int ft_metrics_init(ft_metrics *m, int classes);
void ft_metrics_reset(ft_metrics *m);
/* Adds n rows of logits (n x classes) with labels and per-sample losses. */
void ft_metrics_add(ft_metrics *m, const float *logits, const int *labels, const float *losses,
                    int n);
void ft_metrics_free(ft_metrics *m);

typedef struct ft_metrics_summary {
    double samples, loss, accuracy, top5, macro_f1; /* top5 < 0 when classes <= 5 */
} ft_metrics_summary;
ft_metrics_summary ft_metrics_summarize(const ft_metrics *m);
double ft_metrics_value(const ft_metrics_summary *s, const char *name); /* accuracy|macro_f1|loss */

/* Human table: per-class precision/recall/F1, macro-F1, confusion matrix. */
void ft_metrics_print(const ft_metrics *m, FILE *f);
/* One JSON object: samples, loss, accuracy, top5, macro_f1, per_class, confusion. */
void ft_metrics_json(const ft_metrics *m, FILE *f);

#endif
