/* The training configuration (libconfig syntax; every key in docs/config.md).
 * Loading validates everything before any work starts: unknown keys (with the
 * closest valid key), wrong types and bad values are FT_EINPUT errors that
 * name file:line and the key. */
#ifndef FTUNE_CONFIG_H
#define FTUNE_CONFIG_H

#include <stdint.h>

#include "ftune/model.h"
#include "ftune/optim.h"
#include "ftune/preprocess.h"
#include "ftune/pretrained.h"

#define FT_PATH_MAX 512
#define FT_MAX_LAYERS 256
#define FT_MAX_CLASSES 4096
#define FT_PATTERN_MAX 128 /* a "layer.param" glob of freeze.params / freeze.train_params */

enum { FT_TASK_CLASSIFY = 0, FT_TASK_LM = 1 }; /* train.task */

typedef struct ft_config {
    char origin[FT_PATH_MAX]; /* file the config came from */
    char *text;               /* canonical text (with --set applied), stored in checkpoints */

    /* run */
    char run_dir[FT_PATH_MAX];
    uint64_t seed;
    int threads; /* BLAS threads per rank; 0 = auto */

    /* data */
    char train_path[FT_PATH_MAX];
    char eval_path[FT_PATH_MAX]; /* may be empty */
    int shuffle;
    int k_shot;   /* > 0: train on k rows per class drawn from the seed (few-shot) */
    int prefetch; /* read the next batch on a background thread */

    /* model */
    ft_shape input;
    ft_layer_spec *layers;
    int nlayers;
    ft_preprocess preprocess; /* model.preprocess: applied to every batch read */

    /* pretrained weights */
    char pretrained[FT_PATH_MAX]; /* may be empty */
    char (*reinit)[FT_NAME_MAX];
    int nreinit;
    ft_name_map pretrained_map; /* pretrained.map: layer -> safetensors name prefix */

    /* freezing by parameter name (src/freeze.c applies it once the model is built) */
    char (*freeze_params)[FT_PATTERN_MAX]; /* freeze.params: globs over "layer.param" */
    int nfreeze_params;
    char (*train_params)[FT_PATTERN_MAX]; /* freeze.train_params: only these (and the below) */
    int ntrain_params;
    int bitfit; /* freeze.bitfit: biases, norm parameters and the head train */

    /* lora: adapters on the linear weights of the matched layers (lora_* layer keys) */
    int lora; /* the group is present */
    int lora_rank;
    char (*lora_targets)[FT_NAME_MAX]; /* lora.targets as given; NULL = every linear weight */
    int nlora_targets;

    /* train */
    int epochs;
    long max_steps; /* 0 = no limit; stops after this many optimizer steps */
    int batch_size; /* global batch (all ranks together) */
    int accum_steps;
    ft_optim_cfg optim;
    ft_schedule_cfg schedule;
    float clip_grad_norm; /* 0 = off */
    int max_bad_steps;    /* stop after this many consecutive non-finite steps; 0 = never */
    int task;             /* FT_TASK_*: classification, or a causal LM over [T, V] logits */
    float label_smoothing;
    float *class_weights; /* NULL or nclass_weights entries */
    int nclass_weights;
    int feature_cache;          /* 0 off, 1 auto, 2 memory, 3 disk (mpi/featcache.h) */
    long long feature_cache_mb; /* auto: memory budget per rank */

    /* eval */
    long eval_every; /* steps; 0 = only before the first step and at the end */
    int eval_batch_size;
    char best_metric[32]; /* accuracy | macro_f1 | loss */

    /* checkpoint */
    long checkpoint_every; /* steps; 0 = only at the end */
    int keep_last;
    int checkpoint_continue; /* checkpoint.on_error: 0 stop, 1 continue */

    /* log */
    long log_every;
    int progress; /* -1 auto (terminal), 0 plain lines, 1 bar */
} ft_config;

/* Loads path and applies overrides "a.b.c=value" (value typed as libconfig
 * would parse it). */
int ft_config_load(ft_config *c, const char *path, const char *const *sets, int nsets, ft_err *err);
/* Loads from text (e.g. the copy stored in a model file); origin names it. */
int ft_config_load_string(ft_config *c, const char *text, const char *origin, ft_err *err);
void ft_config_free(ft_config *c);

/* text (a stored config) without the lora group and the layers' lora_* keys
 * (`ftune export --merge-lora`); *out is malloc'd. */
int ft_config_text_without_lora(const char *text, char **out, ft_err *err);

#endif
