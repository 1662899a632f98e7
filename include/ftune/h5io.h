/* ftune model and checkpoint files (HDF5; layout in docs/formats.md).
 * A model file is a checkpoint without optimizer and training state. Files
 * are written under a temporary name, flushed and renamed, so a crash never
 * leaves a half-written file under the final name, and carry a checksum of
 * the parameter data that is verified on load. */
#ifndef FTUNE_H5IO_H
#define FTUNE_H5IO_H

#include <stdint.h>

#include "ftune/model.h"
#include "ftune/optim.h"

typedef struct ft_train_state {
    long step;          /* optimizer steps taken */
    long epoch;         /* current epoch (0-based) */
    uint64_t epoch_pos; /* global samples of this epoch already consumed */
    uint64_t samples_seen;
    uint64_t seed;
    int world_size;
    double best_metric; /* best eval value so far (NaN if none) */
    long best_step;
    double last_metric;
} ft_train_state;

/* Writes the model (every layer's parameters, with attributes type, shape,
 * trainable), the config text and the ftune version; with o and st also
 * the optimizer state and training state (a checkpoint). */
int ft_save(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
            const ft_train_state *st, ft_err *err);
/* ft_save plus metrics_json (may be NULL), stored as the root attribute
 * "metrics" and shown by ft_inspect. Failures are FT_ERUNTIME and name path;
 * the temporary file is removed and path is left as it was. */
int ft_save_ex(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
               const ft_train_state *st, const char *metrics_json, ft_err *err);

/* LoRA adapter files (docs/formats.md): a model or checkpoint that stores
 * only the tensors ft_param_in_adapter keeps (the trainable parameters and
 * the buffers of training layers) plus a reference to the base model the
 * rest comes from: its path as given (pretrained.file), its absolute path
 * when saved and an FNV-1a 64 fingerprint over the float32 bytes of every
 * other parameter of the model, in layer and parameter order, after the
 * base was loaded. */
typedef struct ft_base_ref {
    char path[1024];
    char resolved[4096];
    uint64_t fingerprint;
    uint64_t values; /* floats the fingerprint covers */
} ft_base_ref;

/* 1 when p of l is stored in an adapter file, 0 when it comes from the base. */
int ft_param_in_adapter(const ft_layer *l, const ft_param *p);
/* The fingerprint of m's base parameters (those not in an adapter file);
 * *values (may be NULL) = how many floats it covers. */
uint64_t ft_base_fingerprint(const ft_model *m, uint64_t *values);
/* ft_save_ex, but with base != NULL an adapter file referencing base. */
int ft_save_adapter(const char *path, const ft_model *m, const char *config_text, const ft_optim *o,
                    const ft_train_state *st, const char *metrics_json, const ft_base_ref *base,
                    ft_err *err);
/* *found = 1 and *ref filled when path is an adapter file, else *found = 0. */
int ft_read_base_ref(const char *path, ft_base_ref *ref, int *found, ft_err *err);
/* ft_load_weights (strict, no reinit) that accepts an adapter file: its
 * base parameters are left as they are in m (load the base first; see
 * ft_load_model_file in pretrained.h). ft_load_weights refuses adapter files. */
int ft_load_adapter_weights(const char *path, ft_model *m, ft_err *err);

/* Reads the config text stored in a model or checkpoint file (malloc'd). */
int ft_load_config_text(const char *path, char **text, ft_err *err);

/* Loads parameters by layer name into m. Layers named in reinit are skipped
 * (they keep their fresh initialisation). A shape mismatch on any other layer
 * is an error naming the layer and both shapes; a model layer with parameters
 * that is absent from the file is an error unless strict == 0 (then it is
 * reported through warn and keeps its initialisation; parameter-free layers
 * may always be absent); layers in the file but not in the model are
 * reported through warn (may be NULL). The file's parameter checksum is
 * verified and every check is made before m is modified. */
typedef void (*ft_warn_fn)(const char *msg, void *user);
int ft_load_weights(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                    int strict, ft_warn_fn warn, void *user, ft_err *err);

/* Loads optimizer and training state from a checkpoint (weights via
 * ft_load_weights). o must be initialised (ft_optim_init) for m with the
 * checkpoint's optimizer type; state is matched to m's trainable parameters
 * by layer and parameter name, and a different trainable set is FT_EINPUT. */
int ft_load_train_state(const char *path, const ft_model *m, ft_optim *o, ft_train_state *st,
                        ft_err *err);

/* Summary of a file for `ftune inspect` (prints to f): format, versions,
 * layers with shapes and counts, totals, training state and metrics. The
 * parameter checksum is verified; a mismatch is reported (after the summary)
 * as FT_EINPUT. ft_inspect_json prints the same as one JSON object. */
int ft_inspect(const char *path, void *f /* FILE* */, ft_err *err);
int ft_inspect_json(const char *path, void *f /* FILE* */, ft_err *err);

#endif
