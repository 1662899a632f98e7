/* Optimizers, schedules and clipping. Semantics follow torch.optim so that
 * results can be checked against PyTorch:
 *  SGD:   g += wd*p; buf = mu*buf + g; g = nesterov ? g + mu*buf : buf; p -= lr*g
 *  AdamW: p *= 1 - lr*wd; m,v EMA; p -= lr * mhat / (sqrt(vhat) + eps)
 * Optimizer state exists only for the gradient arena (trainable params). */
#ifndef FTUNE_OPTIM_H
#define FTUNE_OPTIM_H

#include "ftune/model.h"

enum ft_optim_type { FT_OPT_SGD = 1, FT_OPT_ADAMW };
enum ft_sched_type { FT_SCHED_CONSTANT = 1, FT_SCHED_STEP, FT_SCHED_COSINE };

typedef struct ft_optim_cfg {
    int type;
    float lr;
    float momentum; /* SGD */
    int nesterov;   /* SGD */
    float weight_decay;
    float beta1, beta2, eps; /* AdamW */
} ft_optim_cfg;

typedef struct ft_schedule_cfg {
    int type;
    long warmup_steps; /* linear from lr/warmup_steps up to lr */
    long step_size;    /* step: multiply by gamma every step_size steps */
    float gamma;
    long total_steps; /* cosine: decays to min_lr at total_steps */
    float min_lr;
} ft_schedule_cfg;

/* Learning rate for optimizer step `step` (0-based). */
float ft_schedule_lr(const ft_schedule_cfg *s, float base_lr, long step);

typedef struct ft_optim {
    ft_optim_cfg cfg;
    float *state; /* SGD: 1 x ngrads (momentum); AdamW: 2 x ngrads (m, v) */
    size_t nstate;
    long t; /* steps taken */
} ft_optim;

int ft_optim_init(ft_optim *o, const ft_optim_cfg *cfg, const ft_model *m, ft_err *err);
/* One update of every trainable parameter with learning rate lr (times
 * each layer's lr_mult). */
void ft_optim_step(ft_optim *o, ft_model *m, float lr);
void ft_optim_free(ft_optim *o);
/* State floats per gradient float (1 for SGD, 2 for AdamW). */
int ft_optim_state_per_param(int type);

/* Global L2 norm of the gradient arena, and scaling to max_norm (if > 0 and
 * exceeded). Returns the norm before clipping. */
double ft_grad_norm(const float *g, size_t n);
double ft_clip_grad_norm(float *g, size_t n, double max_norm);

#endif
