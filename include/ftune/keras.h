/* Keras HDF5 import: full-model files (`model.save("x.h5")`: model_config
 * plus /model_weights) and weights-only files (`save_weights("x.h5")`, Keras
 * 1 and 2), turned into an ftune configuration and a model whose parameters
 * are converted to ftune's NCHW / PyTorch layouts (docs/import-export.md,
 * "Keras"). Every problem with the file is FT_EINPUT with a message that
 * names the file and, where there is one, the Keras layer. */
#ifndef FTUNE_KERAS_H
#define FTUNE_KERAS_H

#include "ftune/config.h"
#include "ftune/model.h"

/* Spatial flip of convolution kernels (Theano convolved with flipped
 * kernels; Keras files written with the Theano backend need it). */
enum { FT_KERAS_FLIP_AUTO = -1, FT_KERAS_FLIP_NO = 0, FT_KERAS_FLIP_YES = 1 };

/* Data format of a weights-only Keras 2 file (it does not record it): it
 * decides whether the first dense layer after a flatten has its inputs
 * reordered from (H, W, C) to ftune's (C, H, W) order. */
enum { FT_KERAS_FORMAT_AUTO = 0, FT_KERAS_CHANNELS_LAST, FT_KERAS_CHANNELS_FIRST };

typedef struct ft_keras_opts {
    /* An ftune config describing the model: required for weights-only files
     * (no model_config), optional otherwise (then it replaces model_config).
     * Weights are matched to its layers by name, or else by order. */
    const char *config_path;
    /* > 0: the generated config gets model.preprocess.scale = input_scale
     * (a model trained on raw 0..255 pixels, fed ftune's x/255 datasets,
     * needs 255). 0: no preprocess group. */
    double input_scale;
    int flip;        /* FT_KERAS_FLIP_*; AUTO flips for the Theano backend */
    int data_format; /* FT_KERAS_FORMAT_*; AUTO: from model_config, else channels_last
                        (Keras 2) or the kernel layout (Keras 1) */
    /* Written as pretrained.file in the generated config (the model file the
     * caller saves); NULL leaves the pretrained group out. */
    const char *model_path;
} ft_keras_opts;

void ft_keras_opts_default(ft_keras_opts *o);

typedef struct ft_keras_result {
    ft_config cfg;          /* the model's configuration (generated, or the user's) */
    ft_model model;         /* built from cfg, every parameter filled from the file */
    char *config_text;      /* the generated config with comments, for the user to edit
                               (NULL when the user supplied the config) */
    char *notes;            /* conversions worth telling the user, one per line ("" if none) */
    char keras_version[32]; /* "" when the file has none (Keras 1) */
    char backend[32];       /* "" when the file does not say */
    int weights_only;       /* the file had no model_config */
} ft_keras_result;

/* Reads the Keras file at path and fills out (free with
 * ft_keras_result_free, also after an error). */
int ft_keras_import(const char *path, const ft_keras_opts *opts, ft_keras_result *out, ft_err *err);
void ft_keras_result_free(ft_keras_result *r);

/* The Keras layer types the importer understands, for messages and docs. */
const char *ft_keras_supported_types(void);

#endif
