/* Byte-string -> int32 hash map (see strmap.h). */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t ft_strmap_hash(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int grow_slots(ft_strmap *m)
{
    size_t ns = m->nslot ? m->nslot * 2 : 64;
    uint32_t *s = calloc(ns, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = (size_t)m->ent[i].hash & (ns - 1);
        while (s[j])
            j = (j + 1) & (ns - 1);
        s[j] = (uint32_t)(i + 1);
    }
    free(m->slot);
    m->slot = s;
    m->nslot = ns;
    return 0;
}

static size_t find(const ft_strmap *m, const char *k, size_t len, uint64_t h)
{
    size_t j = (size_t)h & (m->nslot - 1);
    while (m->slot[j]) {
        const struct ft_strmap_ent *e = &m->ent[m->slot[j] - 1];
        if (e->hash == h && e->len == len && memcmp(m->keys + e->off, k, len) == 0)
            return j;
        j = (j + 1) & (m->nslot - 1);
    }
    return j;
}

int ft_strmap_put(ft_strmap *m, const char *k, size_t len, int32_t val)
{
    if ((m->n + 1) * 2 > m->nslot && grow_slots(m))
        return -1;
    if (m->n >= UINT32_MAX - 1)
        return -1;
    uint64_t h = ft_strmap_hash(k, len);
    size_t j = find(m, k, len, h);
    if (m->slot[j]) {
        m->ent[m->slot[j] - 1].val = val;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct ft_strmap_ent *e = realloc(m->ent, cap * sizeof *e);
        if (!e)
            return -1;
        m->ent = e;
        m->cap = cap;
    }
    if (m->keys_len + len + 1 > m->keys_cap) {
        size_t cap = m->keys_cap ? m->keys_cap : 4096;
        while (cap < m->keys_len + len + 1)
            cap *= 2;
        char *nk = realloc(m->keys, cap);
        if (!nk)
            return -1;
        m->keys = nk;
        m->keys_cap = cap;
    }
    memcpy(m->keys + m->keys_len, k, len);
    m->keys[m->keys_len + len] = '\0';
    m->ent[m->n] = (struct ft_strmap_ent){m->keys_len, len, h, val};
    m->keys_len += len + 1;
    m->slot[j] = (uint32_t)(++m->n);
    return 0;
}

int ft_strmap_get(const ft_strmap *m, const char *k, size_t len, int32_t *val)
{
    if (!m->nslot)
        return 0;
    size_t j = find(m, k, len, ft_strmap_hash(k, len));
    if (!m->slot[j])
        return 0;
    *val = m->ent[m->slot[j] - 1].val;
    return 1;
}

const char *ft_strmap_key(const ft_strmap *m, size_t i, size_t *len)
{
    if (i >= m->n)
        return NULL;
    if (len)
        *len = m->ent[i].len;
    return m->keys + m->ent[i].off;
}

void ft_strmap_free(ft_strmap *m)
{
    free(m->slot);
    free(m->ent);
    free(m->keys);
    memset(m, 0, sizeof *m);
}
