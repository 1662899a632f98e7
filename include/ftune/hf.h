/* Hugging Face checkpoint import: a directory with config.json and
 * model.safetensors of a GPT-2 (GPT2Model, GPT2LMHeadModel,
 * GPT2ForSequenceClassification) or BERT (BertModel,
 * BertForSequenceClassification, BertForPreTraining) model becomes an ftune
 * configuration and a model holding its weights, mapped as the tables in
 * docs/text.md ("Hugging Face checkpoints") describe: GPT-2's Conv1D weights
 * are transposed, BERT's query/key/value are concatenated into attn_qkv.
 *
 * The classification head (score / classifier) is read from the checkpoint
 * when it has one; otherwise, or with new_head, a fresh head of `classes`
 * units is initialised as ftune initialises any new layer. With `lm` (GPT-2
 * only) the chain ends in an lm_head tied to wte instead, for train.task =
 * "lm"; a checkpoint's lm_head.weight must then equal wte.weight. Tensors the
 * model does not use (a tied lm_head of a classifier import, attention mask
 * buffers, position_ids, pretraining heads) are listed in `skipped`. Every problem with the files
 * is FT_EINPUT naming the file and the JSON key or tensor. */
#ifndef FTUNE_HF_H
#define FTUNE_HF_H

#include <stdint.h>

#include "ftune/config.h"
#include "ftune/model.h"

typedef struct ft_hf_opts {
    const char *config_path;  /* config.json */
    const char *weights_path; /* model.safetensors */
    /* Written as pretrained.file in the generated config (the model file the
     * caller saves); NULL writes a placeholder. */
    const char *model_path;
    const char *head_name; /* the head's tensor prefix and layer name; NULL: "score" for GPT-2,
                              "classifier" for BERT */
    int classes;           /* > 0: units of the head (must match a checkpoint head unless
                              new_head); 0: take the checkpoint's */
    int new_head;          /* 1: ignore the checkpoint's head, start a fresh one */
    int lm;                /* 1: a GPT-2 language model (lm_head tied to wte, train.task = "lm")
                              instead of a classifier; excludes classes, new_head, head_name */
    int seq_len;           /* model.input [T]; 0: the model's maximum positions */
    uint64_t seed;         /* initialisation of a fresh head, and run.seed */
} ft_hf_opts;

void ft_hf_opts_default(ft_hf_opts *o);

typedef struct ft_hf_result {
    ft_config cfg;       /* the generated configuration */
    ft_model model;      /* built from cfg, every parameter set */
    char *config_text;   /* the generated config with comments, for the user to edit */
    char *notes;         /* conversions worth telling the user, one per line ("" if none) */
    char *skipped;       /* unused tensors, grouped: "lm_head.weight, h.*.attn.bias (12)" */
    int nskipped;        /* number of unused tensors */
    char model_type[16]; /* "gpt2" | "bert" */
    char prefix[32];     /* "transformer.", "bert." or "" */
    int fresh_head;      /* 1 when the head was initialised, not read */
    int lm;              /* 1: the chain ends in lm_head tied to wte (opts.lm) */
    int lm_head_checked; /* lm: the checkpoint's lm_head.weight was found equal to wte.weight */
} ft_hf_result;

/* Finds config.json and model.safetensors: path is a directory holding both,
 * or the .safetensors file (its directory holds config.json). config, when
 * not NULL, names config.json explicitly. Fills cfg_out and st_out
 * (FT_PATH_MAX bytes each); a missing file is FT_EINPUT naming it. */
int ft_hf_locate(const char *path, const char *config, char *cfg_out, char *st_out, ft_err *err);

/* Reads the checkpoint and fills out (free with ft_hf_result_free, also
 * after an error). */
int ft_hf_import(const ft_hf_opts *o, ft_hf_result *out, ft_err *err);
void ft_hf_result_free(ft_hf_result *r);

#endif
