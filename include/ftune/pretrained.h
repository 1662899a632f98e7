/* Pre-trained weights from ftune model files or safetensors, and export to
 * safetensors with PyTorch names.
 *
 * Tensor names: parameter p of layer L is "<L>.<p>" (PyTorch's state_dict
 * naming; ftune's parameter names are PyTorch's: weight, bias, running_mean,
 * running_var), or "<prefix>.<p>" when pretrained.map maps L to a module
 * prefix (map = { conv1 = "features.0"; } reads features.0.weight). Layouts
 * are PyTorch's (dense [out, in], conv [out, in, kh, kw]), so nothing is
 * transposed. */
#ifndef FTUNE_PRETRAINED_H
#define FTUNE_PRETRAINED_H

#include <stddef.h>

#include "ftune/h5io.h"
#include "ftune/model.h"

#define FT_PREFIX_MAX 256

typedef struct ft_name_map_entry {
    char layer[FT_NAME_MAX];
    char prefix[FT_PREFIX_MAX]; /* may be empty: tensors are then named "<param>" */
} ft_name_map_entry;

/* ftune layer -> module prefix (config: pretrained.map). */
typedef struct ft_name_map {
    ft_name_map_entry *v;
    int n;
} ft_name_map;

/* The prefix mapped to layer, or NULL when it is not mapped. */
const char *ft_name_map_find(const ft_name_map *map, const char *layer);
void ft_name_map_free(ft_name_map *map);
/* The tensor name of a layer's parameter ("features.0.weight"). */
const char *ft_tensor_name(const ft_name_map *map, const char *layer, const char *param, char *buf,
                           size_t len);

enum ft_weights_format { FT_FMT_UNKNOWN = 0, FT_FMT_HDF5, FT_FMT_SAFETENSORS };
/* Detects the format by its magic bytes; an unreadable file or a format that
 * is neither (a PyTorch .pt zip or pickle is named as such) is FT_EINPUT. */
int ft_weights_format(const char *path, int *format, ft_err *err);

/* Loads pre-trained weights into m. HDF5 (an ftune model or checkpoint):
 * ft_load_weights, matched by layer name (map unused). safetensors: each
 * parameter from its tensor name (above); F16, BF16 and F64 are converted.
 * Layers in reinit are skipped. Every check is made before m is changed:
 *  - a parameter whose tensor is missing, has another shape or is not
 *    stored as F32, F16, BF16 or F64 is an error naming the file, layer,
 *    tensor and shapes (with the pretrained.reinit / pretrained.map hint);
 *  - a tensor "<prefix>.<name>" that the layer does not have (a bias the
 *    layer was declared without) is an error;
 *  - tensors nothing used are reported in one warning (num_batches_tracked
 *    buffers are ignored silently). */
int ft_load_pretrained(const char *path, ft_model *m, const char *const *reinit, int nreinit,
                       const ft_name_map *map, ft_warn_fn warn, void *user, ft_err *err);

/* Writes m's parameters as float32 safetensors under their tensor names,
 * plus an int64 "<prefix>.num_batches_tracked" = 0 per batchnorm layer (as
 * in a PyTorch state_dict), with __metadata__ meta (nmeta key/value pairs). */
int ft_save_safetensors(const char *path, const ft_model *m, const ft_name_map *map,
                        const char *const *meta, size_t nmeta, ft_err *err);

#endif
