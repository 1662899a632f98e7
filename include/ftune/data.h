/* Datasets in HDF5 (docs/formats.md): inputs float32 [N, ...] and labels
 * int32 [N]. Samples are read on demand by index, so a file larger than RAM
 * trains: only the rows of the current batch are in memory. */
#ifndef FTUNE_DATA_H
#define FTUNE_DATA_H

#include <stdint.h>

#include "ftune/layer.h"

typedef struct ft_dataset {
    char path[512];
    int64_t file, inputs, labels; /* hid_t, kept opaque here */
    uint64_t n;
    ft_shape sample; /* per-sample shape */
    size_t sample_floats;
    int classes; /* from the "classes" attribute, else max label + 1 */
    char class_names[64][32];
    int nclass_names;
    /* set by ft_dataset_set_preprocess (ftune/preprocess.h): applied by
     * ft_dataset_read to every batch; NULL = none */
    const struct ft_preprocess *preprocess;
    ft_shape preprocess_input;
    /* optional int32 "lengths" [N] (text datasets): real positions of each row, in
     * [0, sample.d[0]]; read whole at open (4 bytes a row). NULL when absent. */
    int *lengths;
    /* optional int32 "prompt_lengths" [N] (source -> target rows, docs/text.md): tokens
     * before the first target token, in [1, length]; only the target part is trained on
     * (ft_lm_loss_prompt). NULL when absent. */
    int *prompt_lengths;
} ft_dataset;

/* Opens and validates (float32 inputs, int32 labels, same N, labels in
 * [0, classes), N > 0). expect may be NULL; else the sample shape must match.
 * Errors name the file, the dataset and what was expected. */
int ft_dataset_open(ft_dataset *d, const char *path, const ft_shape *expect, ft_err *err);
/* Reads rows idx[0..n) (any order, duplicates allowed) into x (n x
 * sample_floats) and y (n), then applies the attached preprocessing. */
int ft_dataset_read(ft_dataset *d, const uint64_t *idx, int n, float *x, int *y, ft_err *err);
/* Reads every label (n ints) into out. */
int ft_dataset_labels(ft_dataset *d, int *out, ft_err *err);
/* ft_dataset_read that also gives each row's length (d->lengths) into len when
 * the dataset has lengths and len != NULL; *has_len says which. */
int ft_dataset_read_len(ft_dataset *d, const uint64_t *idx, int n, float *x, int *y, int *len,
                        int *has_len, ft_err *err);
/* Copies the prompt lengths of rows idx[0..n) into out and returns 1 when the dataset has
 * them (and out != NULL), else returns 0. */
int ft_dataset_prompts(const ft_dataset *d, const uint64_t *idx, int n, int *out);
void ft_dataset_close(ft_dataset *d);

/* Writer used by importers: creates path with inputs [n, shape] and labels. */
typedef struct ft_dataset_writer {
    int64_t file, inputs, labels;
    uint64_t n, written;
    size_t sample_floats;
    char path[512];
    char tmp_path[600];
} ft_dataset_writer;
int ft_dataset_create(ft_dataset_writer *w, const char *path, uint64_t n, const ft_shape *sample,
                      int classes, ft_err *err);
int ft_dataset_append(ft_dataset_writer *w, const float *x, const int *y, uint64_t n, ft_err *err);
/* Writes to a temporary name and renames on close, so a failed import never
 * leaves a half-written file under the final name. */
int ft_dataset_finish(ft_dataset_writer *w, ft_err *err);
void ft_dataset_abort(ft_dataset_writer *w);

/* Epoch order: a permutation of [0, n) that depends only on (seed, epoch). */
int ft_epoch_order(uint64_t n, uint64_t seed, uint64_t epoch, int shuffle, uint64_t *out);
/* Few-shot selection: k rows of every class c in [0, classes), drawn without
 * replacement by a permutation that depends only on (seed, c). Writes the chosen
 * row indices in increasing order to out (room for classes * k) and their count
 * to *nout. A class with fewer than k rows is FT_EINPUT; *short_class names it. */
int ft_kshot_select(const int *labels, uint64_t n, int classes, int k, uint64_t seed, uint64_t *out,
                    uint64_t *nout, int *short_class, uint64_t *short_count);
/* Balanced contiguous split of count items into parts; part p gets
 * [*begin, *begin + *len). Parts differ in size by at most one. */
void ft_split(uint64_t count, int parts, int part, uint64_t *begin, uint64_t *len);

/* Importers (ftune data import-idx / import-csv). `keep` lists the classes
 * to keep in the order given (they become 0..k-1); nkeep == 0 keeps all. */
typedef struct ft_import_opts {
    const int *keep;
    int nkeep;
    float scale;      /* multiply raw values (IDX bytes) by this; 1/255 by default */
    int label_column; /* CSV: column of the label (0-based), -1 = last */
    int header;       /* CSV: first line is a header (-1 = detect) */
} ft_import_opts;

int ft_import_idx(const char *images, const char *labels, const char *out, const ft_import_opts *o,
                  uint64_t *written, ft_err *err);
int ft_import_csv(const char *csv, const char *out, const ft_import_opts *o, uint64_t *written,
                  ft_err *err);

#endif
