#include "ftune/kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ft_kv *kv_slot(ft_kvlist *kv, const char *key)
{
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->items[i].key, key) == 0)
            return &kv->items[i];
    if (kv->n >= FT_KV_MAX)
        return NULL;
    ft_kv *e = &kv->items[kv->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    return e;
}

void ft_kv_set_int(ft_kvlist *kv, const char *key, long v)
{
    ft_kv *e = kv_slot(kv, key);
    if (e) {
        e->type = FT_KV_INT;
        e->i = v;
        e->d = (double)v;
    }
}

void ft_kv_set_float(ft_kvlist *kv, const char *key, double v)
{
    ft_kv *e = kv_slot(kv, key);
    if (e) {
        e->type = FT_KV_FLOAT;
        e->d = v;
    }
}

void ft_kv_set_bool(ft_kvlist *kv, const char *key, int v)
{
    ft_kv *e = kv_slot(kv, key);
    if (e) {
        e->type = FT_KV_BOOL;
        e->i = v != 0;
    }
}

void ft_kv_set_string(ft_kvlist *kv, const char *key, const char *v)
{
    ft_kv *e = kv_slot(kv, key);
    if (e) {
        e->type = FT_KV_STRING;
        snprintf(e->s, sizeof e->s, "%s", v);
    }
}

void ft_kv_set_ints(ft_kvlist *kv, const char *key, const int *v, int n)
{
    ft_kv *e = kv_slot(kv, key);
    if (e) {
        e->type = FT_KV_INT_LIST;
        e->list_len = n < FT_KV_LIST_MAX ? n : FT_KV_LIST_MAX;
        memcpy(e->list, v, sizeof(int) * (size_t)e->list_len);
    }
}

const ft_kv *ft_kv_find(const ft_kvlist *kv, const char *key)
{
    if (!kv)
        return NULL;
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->items[i].key, key) == 0)
            return &kv->items[i];
    return NULL;
}

long ft_kv_int(const ft_kvlist *kv, const char *key, long dflt)
{
    const ft_kv *e = ft_kv_find(kv, key);
    return e && (e->type == FT_KV_INT || e->type == FT_KV_BOOL) ? e->i : dflt;
}

double ft_kv_float(const ft_kvlist *kv, const char *key, double dflt)
{
    const ft_kv *e = ft_kv_find(kv, key);
    if (!e)
        return dflt;
    if (e->type == FT_KV_FLOAT)
        return e->d;
    if (e->type == FT_KV_INT)
        return (double)e->i;
    return dflt;
}

int ft_kv_bool(const ft_kvlist *kv, const char *key, int dflt)
{
    const ft_kv *e = ft_kv_find(kv, key);
    return e && e->type == FT_KV_BOOL ? (int)e->i : dflt;
}

const char *ft_kv_string(const ft_kvlist *kv, const char *key, const char *dflt)
{
    const ft_kv *e = ft_kv_find(kv, key);
    return e && e->type == FT_KV_STRING ? e->s : dflt;
}

static const char *type_name(int t)
{
    switch (t) {
    case FT_KV_INT: return "an integer";
    case FT_KV_FLOAT: return "a number";
    case FT_KV_BOOL: return "a boolean (true/false)";
    case FT_KV_STRING: return "a string";
    case FT_KV_INT_LIST: return "a list of integers";
    default: return "a value";
    }
}

static int type_ok(int want, int have)
{
    return want == have || (want == FT_KV_FLOAT && have == FT_KV_INT);
}

/* Optimal string alignment distance: Levenshtein plus swaps of two adjacent
 * letters, the commonest typo ("dri" for "dir"). */
int ft_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (int)(la > lb ? la : lb);
    int rows[3][64];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *ft_closest(const char *word, const char *const *candidates, int n)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < n; i++) {
        int d = ft_edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    /* only suggest plausible typos */
    int len = (int)strlen(word);
    int limit = len <= 4 ? 1 : (len <= 8 ? 2 : 3);
    return best_d <= limit ? best : NULL;
}

static void where_str(const ft_kvlist *kv, const ft_kv *e, char *buf, size_t len)
{
    if (e && e->line > 0)
        snprintf(buf, len, "%s:%d", kv->where[0] ? kv->where : "config", e->line);
    else
        snprintf(buf, len, "%s", kv->where[0] ? kv->where : "config");
}

int ft_kv_validate(const ft_kvlist *kv, const ft_keydef *defs, const char *context, ft_err *err)
{
    const char *names[64];
    int nnames = 0;
    for (const ft_keydef *d = defs; d && d->key && nnames < 64; d++)
        names[nnames++] = d->key;

    char where[400];
    for (int i = 0; i < kv->n; i++) {
        const ft_kv *e = &kv->items[i];
        const ft_keydef *def = NULL;
        for (const ft_keydef *d = defs; d && d->key; d++)
            if (strcmp(d->key, e->key) == 0)
                def = d;
        where_str(kv, e, where, sizeof where);
        if (!def) {
            const char *near = ft_closest(e->key, names, nnames);
            if (near)
                return ft_fail(err, FT_EINPUT, "%s: unknown key '%s' in %s (did you mean '%s'?)",
                               where, e->key, context, near);
            return ft_fail(err, FT_EINPUT, "%s: unknown key '%s' in %s", where, e->key, context);
        }
        if (!type_ok(def->type, e->type))
            return ft_fail(err, FT_EINPUT, "%s: key '%s' in %s must be %s, not %s", where, e->key,
                           context, type_name(def->type), type_name(e->type));
    }
    for (const ft_keydef *d = defs; d && d->key; d++) {
        if (d->required && !ft_kv_find(kv, d->key)) {
            where_str(kv, NULL, where, sizeof where);
            return ft_fail(err, FT_EINPUT, "%s: %s is missing required key '%s' (%s)", where,
                           context, d->key, type_name(d->type));
        }
    }
    return FT_OK;
}
