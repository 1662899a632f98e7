/* Layer settings as a small typed key/value list. The config loader fills
 * it from libconfig (with line numbers); tests and the model file loader can
 * build one by hand. Each layer kind declares the keys it accepts in a
 * ft_keydef table, so validation and "did you mean" are generic. */
#ifndef FTUNE_KV_H
#define FTUNE_KV_H

#include "ftune/err.h"

enum ft_kv_type { FT_KV_INT = 1, FT_KV_FLOAT, FT_KV_BOOL, FT_KV_STRING, FT_KV_INT_LIST };

#define FT_KV_MAX 24
#define FT_KV_LIST_MAX 8

typedef struct ft_kv {
    char key[32];
    int type;
    long i;      /* INT, BOOL */
    double d;    /* FLOAT (an INT value is accepted where FLOAT is asked) */
    char s[256]; /* STRING */
    int list[FT_KV_LIST_MAX];
    int list_len;
    int line; /* source line, 0 if unknown */
} ft_kv;

typedef struct ft_kvlist {
    ft_kv items[FT_KV_MAX];
    int n;
    char where[320]; /* "file.cfg:12" or "model.h5", for messages */
} ft_kvlist;

/* Declaration of one accepted key. */
typedef struct ft_keydef {
    const char *key;
    int type;
    int required;
    const char *help; /* one line for docs and messages */
} ft_keydef;

/* Builders (used by tests and by code that synthesises layers). */
void ft_kv_set_int(ft_kvlist *kv, const char *key, long v);
void ft_kv_set_float(ft_kvlist *kv, const char *key, double v);
void ft_kv_set_bool(ft_kvlist *kv, const char *key, int v);
void ft_kv_set_string(ft_kvlist *kv, const char *key, const char *v);
void ft_kv_set_ints(ft_kvlist *kv, const char *key, const int *v, int n);

const ft_kv *ft_kv_find(const ft_kvlist *kv, const char *key);
long ft_kv_int(const ft_kvlist *kv, const char *key, long dflt);
double ft_kv_float(const ft_kvlist *kv, const char *key, double dflt);
int ft_kv_bool(const ft_kvlist *kv, const char *key, int dflt);
const char *ft_kv_string(const ft_kvlist *kv, const char *key, const char *dflt);

/* Checks kv against defs (NULL-key terminated): unknown keys (with the
 * closest valid key suggested), wrong types and missing required keys are
 * FT_EINPUT errors naming kv->where, the line and the key. `context` names
 * the owner, e.g. "layer 'conv1' (conv2d)". */
int ft_kv_validate(const ft_kvlist *kv, const ft_keydef *defs, const char *context, ft_err *err);

/* Levenshtein distance, and the closest candidate (NULL if none is close). */
int ft_edit_distance(const char *a, const char *b);
const char *ft_closest(const char *word, const char *const *candidates, int n);

#endif
