/* Fuzzes the config loader. Input: config text, optionally followed by a NUL byte and
 * newline-separated --set overrides (then the text goes through a file and ft_config_load,
 * else through ft_config_load_string, the path a model file's stored config takes). A config
 * that loads is built into a model, as `ftune train` and `ftune eval` do. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/config.h"
#include "ftune/model.h"

#include "fuzz_common.h"

#define MAX_SETS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t tlen = strlen(text);

    ft_config c;
    ft_err err = {0};
    int rc;
    if (tlen < size) {
        /* text NUL sets: the sets are the lines after the first NUL */
        char *sets[MAX_SETS];
        int nsets = 0;
        for (char *p = text + tlen + 1; p < text + size && nsets < MAX_SETS;) {
            char *nl = memchr(p, '\n', (size_t)(text + size - p));
            if (nl)
                *nl = '\0';
            sets[nsets++] = p;
            p = nl ? nl + 1 : text + size;
        }
        char path[512];
        fz_write(path, sizeof path, "fuzz.cfg", data, tlen);
        rc = ft_config_load(&c, path, (const char *const *)sets, nsets, &err);
    } else {
        rc = ft_config_load_string(&c, text, "fuzz.cfg", &err);
    }
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        /* the canonical text must load again (it is what checkpoints store) */
        ft_config c2;
        ft_err e2 = {0};
        int rc2 = ft_config_load_string(&c2, c.text, "canonical", &e2);
        fz_check_err(&e2, rc2);
        if (rc2 != FT_OK) {
            fprintf(stderr, "canonical text does not load: %s\n%s\n", e2.msg, c.text);
            abort();
        }
        ft_config_free(&c2);
        ft_model m;
        ft_err e3 = {0};
        rc = ft_model_build(&m, &c.input, c.layers, c.nlayers, &e3);
        fz_check_err(&e3, rc);
        ft_model_free(&m);
        ft_config_free(&c);
    }
    free(text);
    return 0;
}
