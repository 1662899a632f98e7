/* A growing string for generated text (configs written by the importers). Internal to the
 * core. Out of memory is sticky: ft_sb_take then returns NULL. */
#ifndef FTUNE_SBUF_H
#define FTUNE_SBUF_H

#include <stddef.h>

typedef struct ft_sbuf {
    char *s;
    size_t len, cap;
    int oom;
} ft_sbuf;

void ft_sb_printf(ft_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the string ("" when nothing was written; NULL only when out of memory) and resets b. */
char *ft_sb_take(ft_sbuf *b);

#endif
