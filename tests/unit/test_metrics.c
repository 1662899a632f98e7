/* Metrics on small hand-made confusions, with the expected values written out. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/metrics.h"

#include "testutil.h"

#define TOL 1e-12

/* A logits row that predicts class `pred` out of `classes`. */
static void onehot(float *row, int classes, int pred)
{
    for (int j = 0; j < classes; j++)
        row[j] = j == pred ? 2.0f : -1.0f;
}

/* 5 classes, 10 samples, (true, predicted):
 *   (0,0) (0,0) (0,1) (1,1) (1,0) (2,1) (2,2) (2,2) (2,2) (3,0)
 * Confusion (rows true):      predicted totals: 4 3 3 0 0
 *   0: 2 1 0 0 0   support 3
 *   1: 1 1 0 0 0   support 2
 *   2: 0 1 3 0 0   support 4
 *   3: 1 0 0 0 0   support 1 (never predicted: precision 0/0 -> 0)
 *   4: 0 0 0 0 0   absent from labels and predictions
 * class 0: P 2/4, R 2/3, F1 4/7;  class 1: P 1/3, R 1/2, F1 2/5;
 * class 2: P 3/3, R 3/4, F1 6/7;  class 3: 0, 0, 0.
 * macro-F1 over the 4 present classes: (4/7 + 2/5 + 6/7 + 0) / 4 = 0.457142857...
 * accuracy 6/10; losses 0.0 .. 0.9 -> mean 0.45; top-5 n/a with 5 classes. */
enum { C5 = 5, N5 = 10 };
static const int T5[N5] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 3};
static const int P5[N5] = {0, 0, 1, 1, 0, 1, 2, 2, 2, 0};

static void fill5(ft_metrics *m, int lo, int hi)
{
    float logits[N5 * C5], losses[N5];
    for (int i = 0; i < N5; i++) {
        onehot(logits + i * C5, C5, P5[i]);
        losses[i] = 0.1f * (float)i;
    }
    ft_metrics_add(m, logits + lo * C5, T5 + lo, losses + lo, hi - lo);
}

static void test_confusion(void)
{
    ft_metrics m;
    CHECK(ft_metrics_init(&m, C5) == 0);
    CHECK(m.ncounts == 3 + 25);
    fill5(&m, 0, N5);

    CHECK(m.counts[0] == 10.0);
    CHECK_NEAR(m.counts[1], 4.5, 1e-6);
    CHECK(m.counts[2] == 0.0);
    static const double conf[25] = {2, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 3,
                                    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 25; i++)
        CHECK(m.counts[3 + i] == conf[i]);

    ft_metrics_summary s = ft_metrics_summarize(&m);
    CHECK(s.samples == 10.0);
    CHECK_NEAR(s.accuracy, 0.6, TOL);
    CHECK_NEAR(s.loss, 0.45, 1e-6);
    CHECK(s.top5 < 0);
    CHECK_NEAR(s.macro_f1, 0.45714285714285713, TOL);
    CHECK_NEAR(ft_metrics_value(&s, "accuracy"), 0.6, TOL);
    CHECK_NEAR(ft_metrics_value(&s, "macro_f1"), 0.45714285714285713, TOL);
    CHECK_NEAR(ft_metrics_value(&s, "loss"), 0.45, 1e-6);
    CHECK(isnan(ft_metrics_value(&s, "nonsense")));

    /* Ranks sum their counters: two halves added elementwise give the same summary. */
    ft_metrics a, b;
    CHECK(ft_metrics_init(&a, C5) == 0 && ft_metrics_init(&b, C5) == 0);
    fill5(&a, 0, 4);
    fill5(&b, 4, N5);
    ft_metrics_add(&b, NULL, NULL, NULL, 0); /* a rank with no rows */
    for (size_t i = 0; i < a.ncounts; i++)
        a.counts[i] += b.counts[i];
    for (size_t i = 0; i < a.ncounts; i++)
        CHECK_NEAR(a.counts[i], m.counts[i], 1e-6);

    ft_metrics_reset(&a);
    ft_metrics_summary z = ft_metrics_summarize(&a);
    CHECK(z.samples == 0 && z.accuracy == 0 && z.loss == 0 && z.macro_f1 == 0);
    ft_metrics_free(&a);
    ft_metrics_free(&b);
    CHECK(a.counts == NULL);

    /* Table */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ft_metrics_print(&m, f);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "precision");
    CHECK_STR_CONTAINS(buf, "    0     0.5000     0.6667     0.5714          3");
    CHECK_STR_CONTAINS(buf, "    3     0.0000     0.0000     0.0000          1");
    CHECK_STR_CONTAINS(buf, "accuracy  0.6000");
    CHECK_STR_CONTAINS(buf, "macro_f1  0.4571");
    CHECK_STR_CONTAINS(buf, "loss      0.45");
    CHECK_STR_CONTAINS(buf, "top5      n/a");
    CHECK_STR_CONTAINS(buf, "confusion");
    CHECK_STR_CONTAINS(buf, "   2   0   1   3   0   0\n");
    free(buf);

    /* JSON: one line, every key. */
    buf = NULL;
    f = open_memstream(&buf, &len);
    ft_metrics_json(&m, f);
    fclose(f);
    CHECK(len > 0 && buf[len - 1] == '\n' && strchr(buf, '\n') == buf + len - 1);
    CHECK(buf[0] == '{' && buf[len - 2] == '}');
    CHECK_STR_CONTAINS(buf, "\"samples\":10,");
    CHECK_STR_CONTAINS(buf, "\"loss\":0.45");
    CHECK_STR_CONTAINS(buf, "\"accuracy\":0.6,");
    CHECK_STR_CONTAINS(buf, "\"top5\":null,");
    CHECK_STR_CONTAINS(buf, "\"macro_f1\":0.4571428571,");
    CHECK_STR_CONTAINS(buf, "\"per_class\":[{\"class\":0,\"precision\":0.5,\"recall\":0.6666666667,"
                            "\"f1\":0.5714285714,\"support\":3},");
    CHECK_STR_CONTAINS(buf, "{\"class\":3,\"precision\":0,\"recall\":0,\"f1\":0,\"support\":1}");
    CHECK_STR_CONTAINS(buf, "\"confusion\":[[2,1,0,0,0],[1,1,0,0,0],[0,1,3,0,0],[1,0,0,0,0],"
                            "[0,0,0,0,0]]}");
    free(buf);
    ft_metrics_free(&m);
}

/* A class that is only predicted counts in macro-F1 with F1 0; one absent
 * from both does not. labels {0, 0}, predictions {0, 1}, 3 classes:
 * class 0: P 1, R 1/2, F1 2/3; class 1: F1 0; class 2 absent -> (2/3 + 0) / 2. */
static void test_macro_union(void)
{
    ft_metrics m;
    CHECK(ft_metrics_init(&m, 3) == 0);
    float logits[6];
    onehot(logits, 3, 0);
    onehot(logits + 3, 3, 1);
    const int labels[2] = {0, 0};
    ft_metrics_add(&m, logits, labels, NULL, 2);
    ft_metrics_summary s = ft_metrics_summarize(&m);
    CHECK_NEAR(s.macro_f1, 1.0 / 3.0, TOL);
    CHECK_NEAR(s.accuracy, 0.5, TOL);
    CHECK(s.loss == 0.0); /* no losses given */

    /* Out-of-range labels are skipped, not counted or written out of bounds. */
    const int badl[2] = {3, -1};
    ft_metrics_add(&m, logits, badl, NULL, 2);
    CHECK(m.counts[0] == 2.0);
    ft_metrics_free(&m);
}

/* Top-5 with 7 classes. Descending logits D = [7..1] predict 0; equal logits E
 * predict 0 too (ties go to the lower index, for argmax and top-5 alike).
 *   D, label 0: correct, top-5 hit
 *   D, label 4: rank 4 -> hit;  D, label 5: rank 5 -> miss
 *   E, label 4: rank 4 -> hit;  E, label 6: rank 6 -> miss
 * accuracy 1/5, top-5 3/5. */
static void test_top5(void)
{
    enum { C = 7 };
    ft_metrics m;
    CHECK(ft_metrics_init(&m, C) == 0);
    float logits[5 * C];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < C; j++)
            logits[i * C + j] = i < 3 ? (float)(C - j) : 0.5f;
    const int labels[5] = {0, 4, 5, 4, 6};
    const float losses[5] = {1, 1, 1, 1, 1};
    ft_metrics_add(&m, logits, labels, losses, 5);
    ft_metrics_summary s = ft_metrics_summarize(&m);
    CHECK_NEAR(s.accuracy, 0.2, TOL);
    CHECK_NEAR(s.top5, 0.6, TOL);
    CHECK(m.counts[2] == 3.0);
    CHECK_NEAR(s.loss, 1.0, TOL);
    /* macro-F1: class 0 P 1/5, R 1, F1 1/3; classes 4, 5, 6 F1 0 -> (1/3) / 4 */
    CHECK_NEAR(s.macro_f1, 1.0 / 12.0, TOL);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ft_metrics_json(&m, f);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "\"top5\":0.6,");
    free(buf);
    ft_metrics_free(&m);

    CHECK(ft_metrics_init(&m, 0) != 0);
}

int main(void)
{
    test_confusion();
    test_macro_union();
    test_top5();
    return tu_done("test_metrics");
}
