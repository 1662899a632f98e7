/* Fuzzes the strict JSON parser (src/json.c) that reads safetensors headers and Keras
 * model_config: parse with tight limits (depth 16, 10000 values) and with the defaults, then
 * walk the whole tree through the accessors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/json.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const ft_json *v, int depth)
{
    if (!v || depth > FT_JSON_MAX_DEPTH + 1)
        abort(); /* deeper than the parser allows */
    size_t n = 1;
    int64_t i;
    double d;
    int b;
    ft_json_int64(v, &i);
    ft_json_double(v, &d);
    ft_json_bool(v, &b);
    const char *s = ft_json_string(v);
    if (s && strlen(s) > v->len)
        abort();
    for (size_t k = 0; k < ft_json_len(v); k++) {
        const char *key = ft_json_key_at(v, k);
        if (key && ft_json_get(v, key) == NULL)
            abort(); /* every key can be looked up */
        n += walk(ft_json_at(v, k), depth + 1);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ft_json *v = NULL;
    ft_err err = {0};
    ft_json_limits lim = {16, 0, 10000};
    int rc = ft_json_parse_ex((const char *)data, size, &lim, &v, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK && walk(v, 0) > 10000)
        abort(); /* the value limit holds */
    ft_json_free(v);
    v = NULL;
    ft_err_clear(&err);
    rc = ft_json_parse((const char *)data, size, &v, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        walk(v, 0);
        /* strings escape to something that parses back */
        if (v->type == FT_JSON_STRING && v->len == strlen(v->s)) {
            size_t need = ft_json_escape(NULL, 0, v->s);
            char *esc = malloc(need + 1);
            if (esc) {
                ft_json_escape(esc, need + 1, v->s);
                ft_json *back = NULL;
                ft_err e2 = {0};
                if (ft_json_parse(esc, need, &back, &e2) != FT_OK || strcmp(back->s, v->s) != 0)
                    abort();
                ft_json_free(back);
                free(esc);
            }
        }
    }
    ft_json_free(v);
    return 0;
}
