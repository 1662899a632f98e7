/* LoRA adapter files (docs/formats.md, "Adapter files"): with a lora group
 * and a pretrained.file, training writes checkpoints and models that store
 * only what trains (the adapters, the parameters freeze.train_params makes
 * trainable) and a reference to the base model; resuming, `ftune eval`,
 * `ftune inspect` and `ftune export --merge-lora` load the base first and
 * check its fingerprint. */
#ifndef FTUNE_ADAPTER_H
#define FTUNE_ADAPTER_H

#include "ftune/config.h"
#include "ftune/h5io.h"

/* 1 when training with c writes adapter files (lora and pretrained.file). */
int ft_adapter_mode(const ft_config *c);

/* The reference to c's pretrained.file for m, whose base parameters were
 * just loaded from it: the path as given, its absolute path, the
 * fingerprint. An unresolvable path is FT_EINPUT. */
int ft_base_ref_make(const ft_config *c, const ft_model *m, ft_base_ref *ref, ft_err *err);

/* Loads a model or checkpoint file into m, built from c (the file's config)
 * with ft_config_build_model. A plain file: ft_load_weights (strict). An
 * adapter file: m initialised from c's seed, the base model loaded as
 * training loaded it (pretrained.reinit, pretrained.map) from its absolute
 * path, or the path as given when that is gone, its fingerprint compared,
 * then the stored tensors. A missing or changed base is FT_EINPUT naming
 * both files. *is_adapter and *ref (both may be NULL) tell which it was. */
int ft_load_model_file(const ft_config *c, const char *path, ft_model *m, ft_base_ref *ref,
                       int *is_adapter, ft_err *err);

/* Folds every adapter of m (built from c) into its weight:
 * W += (alpha / r) B A with the layer's lora_alpha and lora_rank, then sets
 * B to zero (the model computes the same function without dropout).
 * Returns the number of adapters folded. */
int ft_lora_merge(ft_model *m, const ft_config *c);

#endif
