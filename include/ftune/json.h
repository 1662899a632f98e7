/* A small, strict, bounded JSON parser (RFC 8259) for file headers and
 * model descriptions read from untrusted files (safetensors headers, Keras
 * model_config), plus a string escaper for writers.
 *
 * Strict: no comments, no trailing commas, no NaN/Infinity, no leading zeros,
 * no duplicate object keys, no control characters in strings, valid UTF-8
 * only; \u escapes (surrogate pairs included) become UTF-8. Bounded: the
 * input length and the nesting depth are limited, so a hostile file cannot
 * exhaust the stack or the memory. Errors are FT_EINPUT and give the byte
 * offset ("JSON: expected ':' after an object key at byte 17"); callers add
 * the file name. */
#ifndef FTUNE_JSON_H
#define FTUNE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ftune/err.h"

enum ft_json_type {
    FT_JSON_NULL = 0,
    FT_JSON_BOOL,
    FT_JSON_NUMBER,
    FT_JSON_STRING,
    FT_JSON_ARRAY,
    FT_JSON_OBJECT
};

#define FT_JSON_MAX_DEPTH 64
#define FT_JSON_MAX_LEN ((size_t)100000000)  /* 100 MB, the safetensors header bound */
#define FT_JSON_MAX_VALUES ((size_t)1000000) /* about 100 MB of parsed values */

/* Limits of one parse; a zero field takes the default above. max_values
 * bounds the memory of the parsed tree (a value takes about 100 bytes, so
 * "[0,0,0,...]" would otherwise cost 50 times its text). */
typedef struct ft_json_limits {
    int max_depth;
    size_t max_len;
    size_t max_values;
} ft_json_limits;

typedef struct ft_json ft_json;
struct ft_json {
    int type;   /* enum ft_json_type */
    size_t pos; /* byte offset of the value in the input (for messages) */
    /* BOOL */
    int b;
    /* NUMBER: d always; is_int and i when the literal has no fraction or
     * exponent and fits in int64 */
    double d;
    int is_int;
    int64_t i;
    /* STRING: UTF-8, NUL-terminated; len excludes the terminator (a \u0000
     * escape inside a value is kept, so use len for binary-safe access) */
    char *s;
    size_t len;
    /* ARRAY and OBJECT: n items in document order; OBJECT also has keys[n]
     * and sorted[n] (indices ordered by key, for lookups) */
    ft_json *items;
    char **keys;
    size_t *sorted;
    size_t n;
};

/* Parses text[0..len) (need not be NUL-terminated). *out is NULL on error. */
int ft_json_parse(const char *text, size_t len, ft_json **out, ft_err *err);
/* The same with explicit limits (NULL = the defaults). */
int ft_json_parse_ex(const char *text, size_t len, const ft_json_limits *lim, ft_json **out,
                     ft_err *err);
void ft_json_free(ft_json *v);

/* "null", "boolean", "number", "string", "array", "object". */
const char *ft_json_type_name(int type);

/* Accessors. Each is NULL-safe: a NULL or wrong-typed value gives NULL, 0 or
 * "not found". */
const ft_json *ft_json_get(const ft_json *obj, const char *key); /* NULL if absent */
size_t ft_json_len(const ft_json *v);                            /* array/object size */
const ft_json *ft_json_at(const ft_json *v, size_t i);           /* array/object item */
const char *ft_json_key_at(const ft_json *obj, size_t i);
int ft_json_is(const ft_json *v, int type);

/* Typed reads: return 1 and set *out when v has that type (an integer
 * for ft_json_int64; any number for ft_json_double), else 0. */
int ft_json_int64(const ft_json *v, int64_t *out);
int ft_json_double(const ft_json *v, double *out);
int ft_json_bool(const ft_json *v, int *out);
const char *ft_json_string(const ft_json *v); /* NULL unless a string */

/* Object member with a default when absent or of another type. */
const char *ft_json_get_string(const ft_json *obj, const char *key, const char *dflt);
int64_t ft_json_get_int64(const ft_json *obj, const char *key, int64_t dflt);
double ft_json_get_double(const ft_json *obj, const char *key, double dflt);
int ft_json_get_bool(const ft_json *obj, const char *key, int dflt);

/* Writers: s as a quoted JSON string ("a\"b\n"). Control characters are
 * escaped; other bytes (UTF-8) are copied. ft_json_escape writes at most cap
 * bytes including the NUL (like snprintf) and returns the full length. */
size_t ft_json_escape(char *dst, size_t cap, const char *s);
int ft_json_write_string(FILE *f, const char *s); /* 0, or EOF on a write error */

#endif
