/* Causal LM cross-entropy (include/ftune/lmloss.h). */
#include "ftune/lmloss.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static int row_len(const int *len, int i, int T)
{
    if (!len)
        return T;
    return len[i] < 0 ? 0 : len[i] > T ? T : len[i];
}

/* The first position that predicts a target: 0, or the last prompt token. */
static int row_first(const int *prompt, int i)
{
    if (!prompt)
        return 0;
    return prompt[i] > 1 ? prompt[i] - 1 : 0;
}

double ft_lm_targets_prompt(const int *len, const int *prompt, int n, int T)
{
    double c = 0;
    for (int i = 0; i < n; i++) {
        int L = row_len(len, i, T), f = row_first(prompt, i);
        c += L - 1 > f ? L - 1 - f : 0;
    }
    return c;
}

double ft_lm_targets(const int *len, int n, int T)
{
    return ft_lm_targets_prompt(len, NULL, n, T);
}

long ft_lm_bad_row(const float *ids, const int *len, int n, int T, int V)
{
    for (int i = 0; i < n; i++) {
        int L = row_len(len, i, T);
        for (int t = 1; t < L; t++) {
            float id = ids[(size_t)i * T + t];
            if (!(id >= 0.0f && id < (float)V) || id != floorf(id))
                return i;
        }
    }
    return -1;
}

long ft_lm_loss(const float *logits, const float *ids, const int *len, int n, int T, int V,
                float scale, float *dlogits, ft_lm_stats *st)
{
    return ft_lm_loss_prompt(logits, ids, len, NULL, n, T, V, scale, dlogits, st);
}

long ft_lm_loss_prompt(const float *logits, const float *ids, const int *len, const int *prompt,
                       int n, int T, int V, float scale, float *dlogits, ft_lm_stats *st)
{
    /* ids first: a bad target must not leave half a batch counted */
    long bad = ft_lm_bad_row(ids, len, n, T, V);
    if (bad >= 0)
        return bad;
    ft_lm_stats s = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        int L = row_len(len, i, T), first = row_first(prompt, i);
        for (int t = 0; t < T; t++) {
            const float *z = logits + ((size_t)i * T + t) * (size_t)V;
            float *dz = dlogits ? dlogits + ((size_t)i * T + t) * (size_t)V : NULL;
            /* no target here: the prompt, padding, or the last real token */
            if (t < first || t + 1 >= L) {
                if (dz)
                    memset(dz, 0, (size_t)V * sizeof *dz);
                continue;
            }
            int y = (int)ids[(size_t)i * T + t + 1];
            float mx = z[0];
            int arg = 0;
            for (int v = 1; v < V; v++)
                if (z[v] > mx) {
                    mx = z[v];
                    arg = v;
                }
            double sum = 1.0; /* the argmax's exp(0): sum >= 1, log is safe */
            for (int v = 0; v < V; v++)
                if (v != arg)
                    sum += exp((double)(z[v] - mx));
            double lse = (double)mx + log(sum);
            s.nll += lse - (double)z[y];
            s.tokens += 1;
            s.correct += arg == y;
            if (dz) {
                for (int v = 0; v < V; v++)
                    dz[v] = scale * (float)exp((double)z[v] - lse);
                dz[y] -= scale;
            }
        }
    }
    st->nll += s.nll;
    st->tokens += s.tokens;
    st->correct += s.correct;
    return -1;
}
