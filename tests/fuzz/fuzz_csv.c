/* Fuzzes `ftune data import-csv`. Input: 1 byte of options (header mode, label column, a
 * class subset), then the CSV file. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ftune/data.h"

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    char csv[512], out[512];
    fz_write(csv, sizeof csv, "in.csv", data + 1, size - 1);
    fz_path(out, sizeof out, "csv-out.h5");

    static const int keep[] = {2, 0};
    ft_import_opts o = {0};
    o.header = (int)(opt % 3) - 1;              /* detect, no, yes */
    o.label_column = (int)((opt >> 2) % 4) - 1; /* last, 0, 1, 2 */
    o.nkeep = opt & 0x40 ? 2 : 0;
    o.keep = keep;
    o.scale = opt & 0x80 ? 0.5f : 0.0f;
    ft_err err = {0};
    uint64_t written = 0;
    int rc = ft_import_csv(csv, out, &o, &written, &err);
    fz_check_err(&err, rc);
    if (rc == FT_OK) {
        ft_dataset d;
        ft_err e2 = {0};
        int rc2 = ft_dataset_open(&d, out, NULL, &e2);
        if (rc2 != FT_OK || d.n != written) {
            fprintf(stderr, "imported file does not open: %s\n", e2.msg);
            abort();
        }
        ft_dataset_close(&d);
    }
    remove(out);
    return 0;
}
