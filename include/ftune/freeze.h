/* Freezing by parameter name (freeze.params, freeze.train_params,
 * freeze.bitfit) and LoRA's frozen base, applied to a built model. Names are
 * "<layer>.<param>", e.g. "h.0.attn_qkv_bias", matched as shell globs
 * (fnmatch, '*' also matches '.'). */
#ifndef FTUNE_FREEZE_H
#define FTUNE_FREEZE_H

#include "ftune/config.h"

/* 1 for a LoRA adapter parameter ("<weight>_lora_A" / "<weight>_lora_B"). */
int ft_param_is_adapter(const ft_param *p);

/* Sets the frozen flags of m's parameters from c and rebuilds the gradient
 * arena. A parameter trains when its layer is not frozen, it is learnable,
 * it matches no freeze.params pattern and, when any of freeze.train_params,
 * freeze.bitfit or LoRA adapters is in use, it matches train_params, is
 * kept by BitFit or is an adapter. A layer whose learnable parameters are
 * all frozen becomes a frozen layer. A pattern that matches no parameter, a
 * lora target no layer has and a pretrained.reinit layer that would not
 * train are FT_EINPUT errors naming them. */
int ft_model_freeze_params(ft_model *m, const ft_config *c, ft_err *err);

/* ft_model_build from c's layers, then ft_model_freeze_params. */
int ft_config_build_model(const ft_config *c, ft_model *m, ft_err *err);

#endif
