/* Byte-string -> int32 hash map (open addressing, FNV-1a), internal to
 * src/text. Keys are copied into one arena. */
#ifndef FTUNE_TEXT_STRMAP_H
#define FTUNE_TEXT_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ft_strmap {
    uint32_t *slot; /* index into ent + 1; 0 = empty */
    size_t nslot;   /* power of two */
    struct ft_strmap_ent {
        size_t off, len;
        uint64_t hash;
        int32_t val;
    } * ent;
    size_t n, cap;
    char *keys;
    size_t keys_len, keys_cap;
} ft_strmap;

uint64_t ft_strmap_hash(const char *k, size_t len);
/* Inserts or overwrites; returns 0, or -1 when out of memory. */
int ft_strmap_put(ft_strmap *m, const char *k, size_t len, int32_t val);
/* 1 and *val when present, else 0. */
int ft_strmap_get(const ft_strmap *m, const char *k, size_t len, int32_t *val);
/* Key i in insertion order (NUL-terminated). */
const char *ft_strmap_key(const ft_strmap *m, size_t i, size_t *len);
void ft_strmap_free(ft_strmap *m);

#endif
