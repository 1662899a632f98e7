/* Fuzzes the HDF5 dataset reader: the input is written to a file, opened with
 * ft_dataset_open (every check of docs/formats.md) and, when it opens, a few rows are read in
 * sorted order and in shuffled order with a duplicate (the two read paths). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftune/data.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_rows(ft_dataset *d, const uint64_t *idx, int n)
{
    float *x = ft_alloc_floats((size_t)n * d->sample_floats, NULL);
    int *y = calloc((size_t)n, sizeof *y);
    ft_err err = {0};
    if (x && y) {
        int rc = ft_dataset_read(d, idx, n, x, y, &err);
        fz_check_err(&err, rc);
        for (int i = 0; rc == FT_OK && i < n; i++)
            if (y[i] < 0 || y[i] >= d->classes)
                abort(); /* labels were all checked at open */
    }
    ft_free_floats(x);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fz_write(path, sizeof path, "data.h5", data, size);
    ft_dataset d;
    ft_err err = {0};
    int rc = ft_dataset_open(&d, path, NULL, &err);
    fz_check_err(&err, rc);
    if (rc != FT_OK)
        return 0;
    if (d.n == 0 || d.sample_floats == 0 || d.classes < 1)
        abort(); /* documented: N > 0, a usable sample shape, at least one class */
    /* the sample size was checked against the memory limit at open */
    if (d.sample_floats <= ((size_t)1 << 22)) {
        uint64_t n = d.n;
        uint64_t sorted[4] = {0, 1, 2, 3};
        read_rows(&d, sorted, n < 4 ? (int)n : 4);
        uint64_t shuffled[4] = {n - 1, 0, n / 2, n - 1};
        read_rows(&d, shuffled, 4);
    }
    ft_dataset_close(&d);
    return 0;
}
