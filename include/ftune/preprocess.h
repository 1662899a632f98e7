/* Input preprocessing stored with the model (config group model.preprocess),
 * applied to every batch right after it is read, in training and in
 * evaluation:
 *
 *   x = x * scale;                        (scale first)
 *   layout "nhwc": each stored sample [H, W, C] -> the model's [C, H, W];
 *   x[c, ...] = (x[c, ...] - mean[c]) / std[c]   (per channel c = first
 *   dimension of model.input; one value applies to every channel).
 *
 * So a model trained on raw 0..255 pixels, on normalised inputs or on
 * channels-last data is fed what it was trained on. */
#ifndef FTUNE_PREPROCESS_H
#define FTUNE_PREPROCESS_H

#include "ftune/data.h"
#include "ftune/layer.h"

enum ft_layout { FT_LAYOUT_NCHW = 0, FT_LAYOUT_NHWC = 1 };

typedef struct ft_preprocess {
    float scale;       /* default 1; 0 reads as 1, so a zeroed struct is the identity */
    float *mean, *std; /* NULL (0 and 1) or nmean / nstd values: 1 or channels */
    int nmean, nstd;
    int layout; /* enum ft_layout */
} ft_preprocess;

/* The identity (scale 1, no mean/std, NCHW). */
void ft_preprocess_init(ft_preprocess *p);
void ft_preprocess_free(ft_preprocess *p);
/* 1 when apply would change nothing. */
int ft_preprocess_is_identity(const ft_preprocess *p);
/* Checks p against the model input: finite non-zero scale, mean/std of
 * length 1 or channels (= input->d[0]), std > 0, "nhwc" only for a
 * [C, H, W] input. Messages name model.preprocess and the key. */
int ft_preprocess_check(const ft_preprocess *p, const ft_shape *input, ft_err *err);
/* Transforms n samples of x in place (ft_shape_count(input) floats each).
 * Allocates one sample of scratch for "nhwc"; FT_ERUNTIME if that fails. */
int ft_preprocess_apply(const ft_preprocess *p, const ft_shape *input, float *x, int n,
                        ft_err *err);
/* Attaches p to an open dataset: every ft_dataset_read then applies it for
 * a model whose input is `input` (p must outlive d; NULL detaches). Checks
 * the stored sample shape against the layout where it can tell them apart:
 * with "nhwc", [C, H, W] samples for C > 1 are refused, and with "nchw",
 * [H, W, C] samples (C > 1) are refused with a hint to set the layout. */
int ft_dataset_set_preprocess(ft_dataset *d, const ft_preprocess *p, const ft_shape *input,
                              ft_err *err);

/* "nchw" / "nhwc". */
const char *ft_layout_name(int layout);

#endif
